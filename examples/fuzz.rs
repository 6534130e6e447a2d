//! A structure-aware fuzzer for tokenledger's input parsers (stable Rust: `cargo fuzz` needs
//! nightly). It mutates the shipped fixtures — bytes, JSON tokens, CSV lines — and runs format
//! detection and every parser over each mutant, in memory and as a stream, reporting panics,
//! hangs (a parse over 1 s) and memory (the peak bytes one parse holds, counted by the global
//! allocator, over 512 MiB). It prints figures and asserts nothing; inputs that panic or hang
//! are saved for replay.
//!
//! ```sh
//! cargo run --release --example fuzz -- [INPUTS_PER_PARSER] [SEED] [OUT_DIR]
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokenledger::model::{ApiKey, CostRow, SourceFamily, SourceFormat, UsageRow, Workspace};
use tokenledger::sources::{self, Limits, Quarantined, Sink};

/// Counts live heap bytes and their peak (reset before each parse).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Milliseconds since start when the current parse began (0: none running), for the watchdog.
static RUNNING_SINCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts what a parse emits and keeps nothing: memory is the parser's own.
#[derive(Default)]
struct CountSink {
    rows: u64,
    quarantined: u64,
    buckets: u64,
}

impl Sink for CountSink {
    fn usage(&mut self, _: &UsageRow<'_>) {
        self.rows += 1;
    }
    fn cost(&mut self, _: CostRow) {
        self.rows += 1;
    }
    fn workspace(&mut self, _: Workspace) {
        self.rows += 1;
    }
    fn api_key(&mut self, _: ApiKey) {
        self.rows += 1;
    }
    fn ledger(&mut self, _: tokenledger::model::LedgerItem) {
        self.rows += 1;
    }
    fn quarantine(&mut self, _: Quarantined) {
        self.quarantined += 1;
    }
    fn reset(&mut self) {
        *self = CountSink::default();
    }
    fn coverage(&mut self, _: SourceFamily, _: DateTime<Utc>, _: DateTime<Utc>) {
        self.buckets += 1;
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1e400",
    "-1e400",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "0.5",
    "1e-400",
    "12345678901234567890123456789012345678901234567890",
    "1E2",
    "-0",
    "00012",
];

const STRINGS: &[&str] = &[
    "",
    "0000-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "9999-12-31T00:00:00Z",
    "+262142-12-31T00:00:00Z",
    "2026-10-05T00:00:00+02:00",
    "2026-10-31T12:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-10-01",
    "200000-01-01",
    "2062-10-01",
    "\u{1b}[31m",
    "=cmd|' /C calc'!A0",
    "sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "≤ 200k",
    "> 200k",
    "200k-1M",
    "EUR",
    "batch",
    "priority",
    "\u{0}",
    "\\ud800",
    "9999999999999999999999999999",
    "-0.0000000000001",
];

/// One mutation of `seed`, structure-aware where it can be.
fn mutate(rng: &mut fastrand::Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let rounds = 1 + rng.usize(..4);
    for _ in 0..rounds {
        if b.is_empty() {
            b.push(b'{');
        }
        let at = rng.usize(..b.len());
        // Token replacements keep the document well-formed, so the row-level code is reached;
        // they are drawn most often.
        match rng.u8(..20) {
            0 => b[at] = rng.u8(..),
            1 => b.insert(at, *rng.choice(b"{}[],:\"\\0-e.\n\r\t ").unwrap()),
            2 => {
                let end = (at + rng.usize(..64)).min(b.len());
                b.drain(at..end);
            }
            3 => {
                let end = (at + rng.usize(..256)).min(b.len());
                let piece = b[at..end].to_vec();
                b.splice(at..at, piece); // repeat a slice: buckets, rows, keys twice
            }
            4 => b.truncate(at),
            5 | 12..=15 => replace_token(rng, &mut b, true),
            6 | 16..=19 => replace_token(rng, &mut b, false),
            7 => {
                // Duplicate a whole line (CSV rows, pretty-printed JSON members).
                let lines: Vec<&[u8]> = b.split(|c| *c == b'\n').collect();
                let i = rng.usize(..lines.len());
                let mut out = Vec::new();
                for (k, l) in lines.iter().enumerate() {
                    out.extend_from_slice(l);
                    out.push(b'\n');
                    if k == i {
                        out.extend_from_slice(l);
                        out.push(b'\n');
                    }
                }
                b = out;
            }
            8 => {
                // Splice with another seed.
                let j = rng.usize(..=other.len());
                b.truncate(at);
                b.extend_from_slice(&other[j..]);
            }
            9 => {
                // Deep nesting.
                let depth = rng.usize(..5000);
                let mut nest = vec![b'['; depth];
                nest.extend(std::iter::repeat_n(b']', depth));
                b.splice(at..at, nest);
            }
            10 => {
                // A very long value.
                let long = vec![b'7'; rng.usize(..200_000)];
                b.splice(at..at, long);
            }
            _ => {
                let s = rng.choice(STRINGS).unwrap();
                b.splice(at..at, s.bytes());
            }
        }
    }
    b
}

/// Replaces a JSON number token (or a string's content) near a random place.
fn replace_token(rng: &mut fastrand::Rng, b: &mut Vec<u8>, number: bool) {
    let start = rng.usize(..b.len());
    let pos = if number {
        b[start..].iter().position(|c| c.is_ascii_digit())
    } else {
        b[start..].iter().position(|c| *c == b'"')
    };
    let Some(off) = pos else { return };
    let s = start + off;
    if number {
        let len = b[s..]
            .iter()
            .position(|c| !(c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+')))
            .unwrap_or(b.len() - s);
        let with = rng.choice(NUMBERS).unwrap().as_bytes().to_vec();
        b.splice(s..s + len, with);
    } else {
        let s = s + 1;
        let len = b[s..].iter().position(|c| *c == b'"').unwrap_or(0);
        let with = rng.choice(STRINGS).unwrap().as_bytes().to_vec();
        b.splice(s..s + len, with);
    }
}

fn seeds(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            seeds(&p, out);
        } else if p
            .extension()
            .is_some_and(|x| x == "json" || x == "csv" || x == "bin")
        {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
}

#[derive(Default)]
struct Figures {
    runs: u64,
    panics: u64,
    hangs: u64,
    over_memory: u64,
    ok: u64,
    failed_whole: u64,
    rows: u64,
    quarantined: u64,
    slowest: Duration,
    peak_bytes: usize,
    total: Duration,
}

/// One parse, timed and measured; `Err` is a panic message.
fn run(
    bytes: &[u8],
    format: Option<SourceFormat>,
    stream: bool,
    limits: &Limits,
) -> Result<(bool, CountSink), String> {
    std::panic::catch_unwind(|| {
        let format = match format {
            Some(f) => f,
            None => match sources::detect(bytes) {
                Ok(sources::Detected::Format(f)) => f,
                _ => return (false, CountSink::default()),
            },
        };
        let mut sink = CountSink::default();
        let ok = if stream {
            sources::parse_reader(
                std::io::BufReader::with_capacity(512, bytes),
                format,
                limits,
                &mut sink,
            )
            .is_ok()
        } else {
            sources::parse_bytes(bytes, format, limits, &mut sink).is_ok()
        };
        (ok, sink)
    })
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let per_parser: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let out_dir = PathBuf::from(
        args.get(3)
            .cloned()
            .unwrap_or_else(|| "target/fuzz-findings".into()),
    );
    let mut corpus = Vec::new();
    seeds(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        &mut corpus,
    );
    std::panic::set_hook(Box::new(|_| {})); // panics are counted, not printed
    let limits = Limits::for_today(chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
    // Detection, then each parser forced on every mutant (what `--format` does).
    let targets: Vec<Option<SourceFormat>> = std::iter::once(None)
        .chain(SourceFormat::ALL.into_iter().map(Some))
        .collect();
    let mut rng = fastrand::Rng::with_seed(seed);
    let hang = Duration::from_secs(1);
    let memory_limit = 512 << 20;
    println!(
        "fuzz: {} seed files, {per_parser} mutants per target × {} targets (detect + {} parsers), seed {seed}",
        corpus.len(),
        targets.len(),
        SourceFormat::ALL.len()
    );
    let mut per_target: Vec<(String, Figures)> = Vec::new();
    let started = Instant::now();
    // A parse that never returns cannot be timed from its own thread: the watchdog ends the
    // run after 60 s of one parse and says so (counted as a hang).
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let since = RUNNING_SINCE.load(Ordering::Relaxed);
            let now = started.elapsed().as_millis() as u64;
            if since > 0 && now.saturating_sub(since) > 60_000 {
                println!("HANG: one parse has run for over 60 s; 1 hang, run stopped");
                std::process::exit(3);
            }
        }
    });
    for target in &targets {
        let name = target.map_or("detect → parse".to_string(), |f| f.as_str().to_string());
        let mut fig = Figures::default();
        for i in 0..per_parser {
            let (_, s) = &corpus[rng.usize(..corpus.len())];
            let (_, o) = &corpus[rng.usize(..corpus.len())];
            let input = mutate(&mut rng, s, o);
            let stream = i % 4 == 3;
            PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
            let base = LIVE.load(Ordering::Relaxed);
            let t = Instant::now();
            RUNNING_SINCE.store(started.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
            let res = run(&input, *target, stream, &limits);
            RUNNING_SINCE.store(0, Ordering::Relaxed);
            let took = t.elapsed();
            let held = PEAK.load(Ordering::Relaxed).saturating_sub(base);
            fig.runs += 1;
            fig.total += took;
            fig.slowest = fig.slowest.max(took);
            fig.peak_bytes = fig.peak_bytes.max(held);
            let save = |why: &str| {
                std::fs::create_dir_all(&out_dir).unwrap();
                let p = out_dir.join(format!("{why}-{}-{seed}-{i}.input", name.replace(' ', "_")));
                std::fs::write(&p, &input).unwrap();
            };
            match res {
                Err(msg) => {
                    fig.panics += 1;
                    eprintln!("PANIC in {name} (input {i}): {msg}");
                    save("panic");
                }
                Ok((ok, sink)) => {
                    if ok {
                        fig.ok += 1;
                    } else {
                        fig.failed_whole += 1;
                    }
                    fig.rows += sink.rows;
                    fig.quarantined += sink.quarantined;
                }
            }
            if took > hang {
                fig.hangs += 1;
                eprintln!("HANG in {name} (input {i}): {took:?}");
                save("hang");
            }
            if held > memory_limit {
                fig.over_memory += 1;
                eprintln!("MEMORY in {name} (input {i}): {} MiB", held >> 20);
                save("memory");
            }
        }
        per_target.push((name, fig));
    }
    println!(
        "\n{:<30} {:>8} {:>7} {:>6} {:>7} {:>9} {:>10} {:>11} {:>10} {:>11} {:>10}",
        "target",
        "inputs",
        "panics",
        "hangs",
        "memory",
        "parsed",
        "refused",
        "rows",
        "quarant.",
        "slowest ms",
        "peak MiB"
    );
    let mut totals = (0u64, 0u64, 0u64, 0u64);
    for (name, f) in &per_target {
        println!(
            "{name:<30} {:>8} {:>7} {:>6} {:>7} {:>9} {:>10} {:>11} {:>10} {:>11.1} {:>10.1}",
            f.runs,
            f.panics,
            f.hangs,
            f.over_memory,
            f.ok,
            f.failed_whole,
            f.rows,
            f.quarantined,
            f.slowest.as_secs_f64() * 1e3,
            f.peak_bytes as f64 / (1 << 20) as f64
        );
        totals.0 += f.runs;
        totals.1 += f.panics;
        totals.2 += f.hangs;
        totals.3 += f.over_memory;
    }
    println!(
        "\n{} inputs in {:.1} s: {} panics, {} hangs (> 1 s), {} over 512 MiB",
        totals.0,
        started.elapsed().as_secs_f64(),
        totals.1,
        totals.2,
        totals.3
    );
    if totals.1 + totals.2 + totals.3 > 0 {
        println!("findings saved in {}", out_dir.display());
    }
}
