//! JSON numbers beyond what a parser can hold (`1e400`, a 500-digit integer) make serde_json
//! fail the whole document. Re-reading such a file through [`QuoteHugeNumbers`] turns each of
//! those numbers into a string, so that only the row that holds it is quarantined (a token
//! count must be an integer) and the good rows of the file load.
//!
//! A streamed page may also hold a string of hundreds of megabytes (a hostile `speed`): read
//! through [`CapLongStrings`], a string longer than [`MAX_STRING`] reaches the parser as its
//! length only, so no more than the cap is ever held, and the field's own check refuses it.
//!
//! Must not: change anything but a number too large to parse or a string too long to hold
//! (structure and every other byte pass through unchanged).

use std::io::{self, BufRead, Read};

/// First character of a string that holds a number too large to parse.
pub const HUGE_MARK: char = '\u{0}';

/// Longest number token kept as a number; longer ones are quoted without being parsed.
const MAX_NUMBER_LEN: usize = 400;

/// A reader that copies JSON text, quoting every number token that does not fit an `f64`.
pub struct QuoteHugeNumbers<R> {
    inner: R,
    /// Quote every number (as `"\u0002<digits>"`, [`NUMBER_MARK`]), not only huge ones: for
    /// formats whose money is a JSON number, so its literal digits reach the decimal.
    all: bool,
    in_string: bool,
    escaped: bool,
    number: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: BufRead> QuoteHugeNumbers<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            all: false,
            in_string: false,
            escaped: false,
            number: Vec::new(),
            out: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    fn flush_number(&mut self) {
        if self.number.is_empty() {
            return;
        }
        let fits = self.number.len() <= MAX_NUMBER_LEN
            && std::str::from_utf8(&self.number)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .is_some_and(f64::is_finite);
        if self.all {
            self.out.extend_from_slice(b"\"\\u0002");
            self.out.extend_from_slice(&self.number);
            self.out.push(b'"');
        } else if fits {
            self.out.extend_from_slice(&self.number);
        } else {
            // A NUL first (escaped) marks the string as a number we quoted: see `HUGE_MARK`.
            self.out.extend_from_slice(b"\"\\u0000");
            self.out.extend_from_slice(&self.number);
            self.out.push(b'"');
        }
        self.number.clear();
    }

    /// Transforms the next chunk of input into `out`.
    fn fill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        let chunk = self.inner.fill_buf()?;
        if chunk.is_empty() {
            self.done = true;
            self.flush_number();
            return Ok(());
        }
        let chunk = chunk.to_vec();
        self.inner.consume(chunk.len());
        for &b in &chunk {
            if self.in_string {
                self.out.push(b);
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else if b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E') {
                // `e`/`E` only continue a number; in `true`/`false`/`null` they are letters.
                if self.number.is_empty() && !(b.is_ascii_digit() || b == b'-') {
                    self.out.push(b);
                } else {
                    self.number.push(b);
                }
            } else {
                self.flush_number();
                if b == b'"' {
                    self.in_string = true;
                }
                self.out.push(b);
            }
        }
        Ok(())
    }
}

impl<R: BufRead> Read for QuoteHugeNumbers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_through(self, buf)
    }
}

/// `bytes` with every out-of-range number quoted (see [`QuoteHugeNumbers`]).
pub fn quote_huge_numbers(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    QuoteHugeNumbers::new(bytes)
        .read_to_end(&mut out)
        .expect("reading from memory cannot fail");
    out
}

/// First character of a string that stands for a JSON number, quoted by
/// [`quote_all_numbers`]; the number's literal text follows.
pub const NUMBER_MARK: char = '\u{2}';

/// `bytes` with every number token turned into a string of its literal text after
/// [`NUMBER_MARK`]: a provider that sends money as JSON numbers (OpenAI's Costs API) keeps
/// every digit it wrote (serde_json would read it through an `f64`).
pub fn quote_all_numbers(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let mut q = QuoteHugeNumbers::new(bytes);
    q.all = true;
    q.read_to_end(&mut out)
        .expect("reading from memory cannot fail");
    out
}

/// The literal text of a number [`quote_all_numbers`] quoted; `None` for anything else (a
/// string the provider sent as a string).
pub fn number_text(v: &serde_json::Value) -> Option<&str> {
    v.as_str()?.strip_prefix(NUMBER_MARK)
}

/// First character of a string that stood for one longer than [`MAX_STRING`]; its length in
/// bytes follows.
pub const LONG_MARK: char = '\u{1}';

/// The longest JSON string a streamed page passes on whole (64 KiB: every real value is far
/// shorter; the dimension limit, 1 KiB, is checked by the field).
pub const MAX_STRING: usize = 64 * 1024;

/// A reader that copies JSON text, replacing every string longer than [`MAX_STRING`] bytes
/// (as written, escapes included) by `"\u0001<its length>"`, without ever holding more than the
/// cap of it.
pub struct CapLongStrings<R> {
    inner: R,
    in_string: bool,
    escaped: bool,
    /// The current string as written, opening quote included, while it is within the cap.
    string: Vec<u8>,
    len: u64,
    capped: bool,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: BufRead> CapLongStrings<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            in_string: false,
            escaped: false,
            string: Vec::new(),
            len: 0,
            capped: false,
            out: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    fn keep(&mut self, b: u8) {
        self.len += 1;
        if self.capped {
            return;
        }
        self.string.push(b);
        if self.string.len() > MAX_STRING {
            self.capped = true;
            self.string = Vec::new();
        }
    }

    fn end_string(&mut self) {
        if self.capped {
            self.out
                .extend_from_slice(format!("\"\\u0001{}\"", self.len).as_bytes());
        } else {
            self.out.append(&mut self.string);
            self.out.push(b'"');
        }
        self.in_string = false;
    }

    /// Transforms the next chunk of input into `out`.
    fn fill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        let chunk = self.inner.fill_buf()?;
        if chunk.is_empty() {
            self.done = true;
            // A string cut off by the end of the input: what was kept, for the parser's error.
            if self.in_string && !self.capped {
                self.out.append(&mut self.string);
            }
            return Ok(());
        }
        let chunk = chunk.to_vec();
        self.inner.consume(chunk.len());
        for b in chunk {
            if !self.in_string {
                if b == b'"' {
                    self.in_string = true;
                    self.capped = false;
                    self.len = 0;
                    self.string.clear();
                    self.string.push(b);
                } else {
                    self.out.push(b);
                }
            } else if self.escaped {
                self.escaped = false;
                self.keep(b);
            } else if b == b'\\' {
                self.escaped = true;
                self.keep(b);
            } else if b == b'"' {
                self.end_string();
            } else {
                self.keep(b);
            }
        }
        Ok(())
    }
}

impl<R: BufRead> Read for CapLongStrings<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_through(self, buf)
    }
}

/// A reader that transforms its input chunk by chunk into a buffer of output.
trait Refill {
    /// Transforms the next chunk of input (or marks the end).
    fn refill(&mut self) -> io::Result<()>;
    /// The output, how much of it was read, and whether the input has ended.
    fn output(&mut self) -> (&[u8], &mut usize, bool);
}

/// [`Read::read`] for a [`Refill`]: what is left of the output, refilled until there is some.
fn read_through(t: &mut impl Refill, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let (out, pos, done) = t.output();
        if *pos < out.len() {
            let n = buf.len().min(out.len() - *pos);
            buf[..n].copy_from_slice(&out[*pos..*pos + n]);
            *pos += n;
            return Ok(n);
        }
        if done {
            return Ok(0);
        }
        t.refill()?;
    }
}

impl<R: BufRead> Refill for QuoteHugeNumbers<R> {
    fn refill(&mut self) -> io::Result<()> {
        self.fill()
    }
    fn output(&mut self) -> (&[u8], &mut usize, bool) {
        (&self.out, &mut self.pos, self.done)
    }
}

impl<R: BufRead> Refill for CapLongStrings<R> {
    fn refill(&mut self) -> io::Result<()> {
        self.fill()
    }
    fn output(&mut self) -> (&[u8], &mut usize, bool) {
        (&self.out, &mut self.pos, self.done)
    }
}
