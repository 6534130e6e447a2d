//! Sources: turn provider export files into canonical rows.
//!
//! Owns: detecting a file's format from its content, parsing each supported format in a
//! streaming way (a page or CSV at a time, never a whole export in memory), validating every
//! field, and reporting bad rows with a location and a reason.
//! Must not: touch the lake, decide precedence or restatement (that is `ingest`), resolve names
//! against other files, or price anything.

pub mod anthropic;
pub mod ledger;
mod lenient;
mod limits;
mod numbers;
pub mod openai;
pub mod paged;
mod redact;

pub use limits::Limits;
pub use numbers::{CapLongStrings, MAX_STRING, QuoteHugeNumbers, quote_huge_numbers};
pub use redact::{mask_key_hint, mask_secrets};

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::model::{ApiKey, CostRow, LedgerItem, SourceFamily, SourceFormat, UsageRow, Workspace};

/// A bad row (or a bad file), kept with where it was and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    /// `line 17` for CSV, `data[2].results[5]` for JSON, `file` for a whole file.
    pub location: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    pub field: Option<String>,
    pub reason: String,
    /// The offending text, shortened; never more than 200 characters.
    pub excerpt: Option<String>,
}

/// The file as a whole could not be used (truncated JSON, unknown header, binary junk).
/// Rows emitted before the error are discarded by `ingest`: a half-read export must not
/// restate complete data.
#[derive(Debug, Clone, PartialEq)]
pub struct FileError {
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub reason: String,
    /// A JSON number too large for the parser: the file is re-read with such numbers quoted,
    /// so only their rows are quarantined.
    pub huge_number: bool,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.reason),
            (Some(l), None) => write!(f, "line {l}: {}", self.reason),
            _ => write!(f, "{}", self.reason),
        }
    }
}

impl FileError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self::at(None, None, reason)
    }
    pub fn at(line: Option<u64>, column: Option<u64>, reason: impl Into<String>) -> Self {
        Self {
            line,
            column,
            reason: reason.into(),
            huge_number: false,
        }
    }
}

/// Where parsed things go. `ingest` implements it; tests collect into vectors.
pub trait Sink {
    /// A usage row, lent: a sink that keeps it copies what it keeps.
    fn usage(&mut self, row: &UsageRow<'_>);
    fn cost(&mut self, row: CostRow);
    fn workspace(&mut self, ws: Workspace);
    fn api_key(&mut self, key: ApiKey);
    /// A credit lot, balance snapshot or invoice.
    fn ledger(&mut self, item: LedgerItem);
    fn quarantine(&mut self, q: Quarantined);
    /// An assumption the parser made about the whole file (said in the ingest summary).
    fn note(&mut self, _note: String) {}
    /// Forget everything emitted for this file so far: it is about to be parsed again.
    fn reset(&mut self);
    /// The export covers `[start, end)` for `family` (even if it has no rows there: an empty
    /// bucket restates usage to zero).
    fn coverage(&mut self, family: SourceFamily, start: DateTime<Utc>, end: DateTime<Utc>);
}

/// A sink that keeps everything in memory (tests, small files).
#[derive(Debug, Default)]
pub struct VecSink {
    pub usage: Vec<UsageRow<'static>>,
    pub cost: Vec<CostRow>,
    pub workspaces: Vec<Workspace>,
    pub api_keys: Vec<ApiKey>,
    pub ledger: Vec<LedgerItem>,
    pub quarantined: Vec<Quarantined>,
    pub coverage: Vec<(SourceFamily, DateTime<Utc>, DateTime<Utc>)>,
    pub notes: Vec<String>,
}

impl Sink for VecSink {
    fn usage(&mut self, row: &UsageRow<'_>) {
        self.usage.push(row.clone().into_owned())
    }
    fn cost(&mut self, row: CostRow) {
        self.cost.push(row)
    }
    fn workspace(&mut self, ws: Workspace) {
        self.workspaces.push(ws)
    }
    fn api_key(&mut self, key: ApiKey) {
        self.api_keys.push(key)
    }
    fn ledger(&mut self, item: LedgerItem) {
        self.ledger.push(item)
    }
    fn quarantine(&mut self, q: Quarantined) {
        self.quarantined.push(q)
    }
    fn coverage(&mut self, family: SourceFamily, start: DateTime<Utc>, end: DateTime<Utc>) {
        self.coverage.push((family, start, end))
    }
    fn note(&mut self, note: String) {
        self.notes.push(note)
    }
    fn reset(&mut self) {
        *self = VecSink::default();
    }
}

const PEEK: usize = 64 * 1024;

/// What the content of a file says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Format(SourceFormat),
    /// An Admin API report page whose buckets are all empty (a quiet day): it could be a usage
    /// or a cost report, and only a hint (`--format`, the file's name or folder) can tell.
    EmptyReportPage,
    /// An OpenAI Usage or Costs API page whose buckets are all empty: any of eleven
    /// endpoints; only its folder (named after the format, as `tokenledger pull` writes it) or
    /// `--format` can tell which.
    EmptyOpenAiPage,
}

/// A short description of content tokenledger does not recognise: its type, never its text
/// (an unrecognised file may be a `.env` full of secrets).
fn describe(text: &str) -> String {
    let t = text.trim_start();
    let first = t.lines().next().unwrap_or("");
    if t.starts_with('{') {
        "a JSON object".into()
    } else if t.starts_with('[') {
        "a JSON array".into()
    } else if first.contains(',') {
        format!("CSV-like text ({} columns)", first.split(',').count())
    } else {
        "text".into()
    }
}

/// Detects the format from the first 64 KiB of content (never from the name).
pub fn detect(head: &[u8]) -> Result<Detected, FileError> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // The peek may cut a multi-byte character in half; only the tail may be invalid.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap(),
        Err(e) => {
            return Err(FileError::new(format!(
                "not a text file: invalid UTF-8 at byte {} (binary or wrongly encoded export?)",
                e.valid_up_to()
            )));
        }
    };
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(FileError::new("empty file"));
    }
    // An object (a page, a list, one invoice) or an array (Stripe invoices as a dashboard
    // exports them): the keys inside tell which.
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return detect_json(trimmed);
    }
    let first_line = trimmed.lines().next().unwrap_or("");
    if let Some(f) = ledger::detect_header(first_line) {
        return Ok(Detected::Format(f));
    }
    // Each provider's module is asked in turn.
    if let Some(verdict) = anthropic::detect_header(first_line) {
        return verdict;
    }
    Err(FileError::new(format!(
        "unrecognised content ({}); supported: {}",
        describe(trimmed),
        SourceFormat::ALL.map(|f| f.as_str()).join(", ")
    )))
}

fn detect_json(trimmed: &str) -> Result<Detected, FileError> {
    let mut m = Markers::default();
    m.scan(trimmed.as_bytes());
    m.decide()
}

/// The JSON keys (and `type` values) that tell the Admin API's shapes apart, found with
/// whitespace removed. Keys, not values: `"uncached_input_tokens"` is also a `token_type`
/// value in cost pages, so only `"uncached_input_tokens":` counts.
#[derive(Debug, Default)]
pub(crate) struct Markers {
    found: u32,
}

const MARKERS: [&[u8]; 32] = [
    b"\"tokenledger_query\":",
    b"\"starting_at\":",
    b"\"results\":",
    b"\"group\":",
    b"\"usage\":",
    b"\"cost\":",
    b"\"data_refreshed_at\":",
    b"\"rbac_group_id\":",
    b"\"slack_channel_id\":",
    b"\"amount\":",
    b"\"cost_type\":",
    b"\"uncached_input_tokens\":",
    b"\"output_tokens\":",
    b"\"partial_key_hint\":",
    b"\"type\":\"api_key\"",
    b"\"type\":\"workspace\"",
    b"\"object\":\"invoice\"",
    b"\"amount_due\":",
    b"\"object\":\"organization.costs.result\"",
    b"\"object\":\"organization.project\"",
    b"\"object\":\"organization.project.api_key\"",
    b"\"object\":\"bucket\"",
    // OpenAI's usage results, one per endpoint (`OpenAiEndpoint::result_object`).
    b"\"object\":\"organization.usage.completions.result\"",
    b"\"object\":\"organization.usage.embeddings.result\"",
    b"\"object\":\"organization.usage.moderations.result\"",
    b"\"object\":\"organization.usage.images.result\"",
    b"\"object\":\"organization.usage.audio_speeches.result\"",
    b"\"object\":\"organization.usage.audio_transcriptions.result\"",
    b"\"object\":\"organization.usage.vector_stores.result\"",
    b"\"object\":\"organization.usage.code_interpreter_sessions.result\"",
    b"\"object\":\"organization.usage.file_searches.result\"",
    b"\"object\":\"organization.usage.web_searches.result\"",
];

impl Markers {
    /// Adds the markers found in `text` (a part of the file; parts may be fed in order).
    fn scan(&mut self, text: &[u8]) {
        let squeezed: Vec<u8> = text
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        for (i, m) in MARKERS.iter().enumerate() {
            if self.found & (1 << i) == 0 && memchr::memmem::find(&squeezed, m).is_some() {
                self.found |= 1 << i;
            }
        }
    }
    /// Whether the key `"name":` (or, for `type=…`, the pair `"type":"…"`) was seen.
    pub(crate) fn has(&self, name: &str) -> bool {
        let marker = match name.split_once('=') {
            Some((k, v)) => format!("\"{k}\":\"{v}\""),
            None => format!("\"{name}\":"),
        };
        let i = MARKERS
            .iter()
            .position(|m| *m == marker.as_bytes())
            .expect("a known marker");
        self.found & (1 << i) != 0
    }
    /// The verdict; `EmptyReportPage` and "not recognised" may change with more of the file.
    /// Stripe's invoices first (provider-neutral), then each provider's module in turn.
    fn decide(&self) -> Result<Detected, FileError> {
        if self.has("object=invoice") && self.has("amount_due") {
            return Ok(Detected::Format(SourceFormat::StripeInvoice));
        }
        if let Some(verdict) = anthropic::detect_json(self) {
            return verdict;
        }
        if let Some(verdict) = openai::detect_json(self) {
            return verdict;
        }
        Err(FileError::new(
            "JSON, but not an Admin API usage/cost report page, a workspaces/api_keys list or a \
             Stripe invoice",
        ))
    }
}

/// Reads the head of a file for [`detect`]. A JSON file the head cannot decide (a quiet night
/// of 1-minute buckets before the first row, a list whose first item has a huge name) is read
/// on, part by part, before it is called empty or unrecognised.
pub fn detect_file(path: &Path) -> std::io::Result<Result<Detected, FileError>> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(PEEK);
    (&mut f).take(PEEK as u64).read_to_end(&mut buf)?;
    let first = detect(&buf);
    let undecided = match &first {
        Ok(Detected::EmptyReportPage | Detected::EmptyOpenAiPage) => true,
        Ok(Detected::Format(_)) => false,
        Err(e) => e.reason.starts_with("JSON"),
    };
    if !undecided || buf.len() < PEEK {
        return Ok(first);
    }
    let mut m = Markers::default();
    m.scan(&buf);
    let keep = 64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut window = buf[buf.len() - keep..].to_vec();
    loop {
        let n = f.read(&mut chunk)?;
        if n == 0 {
            return Ok(m.decide());
        }
        window.extend_from_slice(&chunk[..n]);
        m.scan(&window);
        match m.decide() {
            Ok(Detected::Format(f)) => return Ok(Ok(Detected::Format(f))),
            Err(e) if !e.reason.starts_with("JSON") => return Ok(Err(e)),
            _ => {}
        }
        window.drain(..window.len() - keep);
    }
}

/// Files up to this size are read whole and parsed from memory (several times faster);
/// larger ones are streamed, so memory stays bounded whatever the input size.
pub const IN_MEMORY_LIMIT: u64 = 128 * 1024 * 1024;

/// Parses one file of a known format into `sink`, within `limits` (see [`parse_bytes`]).
/// Files up to [`IN_MEMORY_LIMIT`] are parsed from memory; larger ones are streamed, and
/// re-opened for the second reading when numbers had to be quoted.
pub fn parse_file(
    path: &Path,
    format: SourceFormat,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    let open =
        || std::fs::File::open(path).map_err(|e| FileError::new(format!("cannot open: {e}")));
    let file = open()?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    if size <= IN_MEMORY_LIMIT {
        return with_bytes(file, size, |bytes| parse_bytes(bytes, format, limits, sink))?;
    }
    let buffered = |f| BufReader::with_capacity(256 * 1024, f);
    let mut guard = limits::Guard::new(sink, *limits);
    match parse_raw_reader(buffered(file), format, limits, &mut guard) {
        Err(e) if e.huge_number => {
            guard.reset();
            let quoted = BufReader::new(numbers::QuoteHugeNumbers::new(buffered(open()?)));
            parse_raw_reader(quoted, format, limits, &mut guard)?;
        }
        other => other?,
    }
    guard.finish()
}

/// Calls `f` with the whole content of the file at `path`, read once into a buffer of this
/// thread (so the caller can hash and parse the same bytes). A file larger than
/// [`IN_MEMORY_LIMIT`] (or grown past it) is an error: stream it with [`parse_file`] instead.
pub fn with_file_bytes<R>(path: &Path, f: impl FnOnce(&[u8]) -> R) -> Result<R, FileError> {
    let file =
        std::fs::File::open(path).map_err(|e| FileError::new(format!("cannot open: {e}")))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    with_bytes(file, size, f)
}

/// Reads `file` (`size` bytes expected) into the thread's buffer and calls `f` with it. One
/// buffer per thread, reused from file to file: a fresh one would cost a page fault and a
/// zeroed page per 4 KiB of every file (bounded by IN_MEMORY_LIMIT).
fn with_bytes<R>(
    file: std::fs::File,
    size: u64,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, FileError> {
    thread_local!(static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
    BUFFER.with(|buf| {
        let mut bytes = buf.take();
        bytes.clear();
        bytes.reserve(size.min(IN_MEMORY_LIMIT) as usize);
        let read = file
            .take(IN_MEMORY_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| FileError::new(format!("read error: {e}")))
            .and_then(|n| {
                if n as u64 > IN_MEMORY_LIMIT {
                    Err(FileError::new(format!(
                        "the file grew past {} MiB while it was read: ingest it again once it is \
                         complete",
                        IN_MEMORY_LIMIT >> 20
                    )))
                } else {
                    Ok(())
                }
            });
        let res = read.map(|()| f(&bytes));
        buf.replace(bytes);
        res
    })
}

/// Parses a whole file held in memory into `sink`, within `limits`: buckets outside the
/// plausible window are quarantined, and a file whose buckets overlap or span too long fails
/// whole. A JSON file with numbers too large to parse is read a second time with those numbers
/// quoted (the sink is reset in between), so that only the rows holding them are quarantined.
pub fn parse_bytes(
    bytes: &[u8],
    format: SourceFormat,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    let mut guard = limits::Guard::new(sink, *limits);
    match parse_raw_bytes(bytes, format, limits, &mut guard) {
        Err(e) if e.huge_number => {
            guard.reset();
            parse_raw_bytes(&quote_huge_numbers(bytes), format, limits, &mut guard)?;
        }
        other => other?,
    }
    guard.finish()
}

/// Parses a stream of a known format into `sink`, like [`parse_bytes`]; a stream cannot be
/// read twice, so a number too large to parse fails it (files: use [`parse_file`]).
pub fn parse_reader<R: BufRead>(
    reader: R,
    format: SourceFormat,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    let mut guard = limits::Guard::new(sink, *limits);
    parse_raw_reader(reader, format, limits, &mut guard)?;
    guard.finish()
}

fn parse_raw_bytes(
    bytes: &[u8],
    format: SourceFormat,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    use anthropic::{admin, console_csv, lists};
    use paged::Input::Bytes;
    type Nothing = std::io::Empty;
    match format {
        SourceFormat::AnthropicUsageApi => {
            admin::parse_usage::<Nothing>(Bytes(bytes), limits, sink)
        }
        SourceFormat::AnthropicCostApi => admin::parse_cost::<Nothing>(Bytes(bytes), limits, sink),
        SourceFormat::AnthropicAnalyticsCost => {
            anthropic::analytics::parse_cost(bytes, limits, sink)
        }
        SourceFormat::AnthropicAnalyticsUsage => {
            anthropic::analytics::parse_usage(bytes, limits, sink)
        }
        SourceFormat::AnthropicWorkspaces => lists::parse_workspaces::<Nothing>(Bytes(bytes), sink),
        SourceFormat::AnthropicApiKeys => lists::parse_api_keys::<Nothing>(Bytes(bytes), sink),
        SourceFormat::AnthropicConsoleUsageCsv => console_csv::parse_usage(bytes, limits, sink),
        SourceFormat::AnthropicConsoleCostCsv => {
            anthropic::console_cost::parse(bytes, limits, sink)
        }
        SourceFormat::CreditLotsCsv => ledger::parse_lots(bytes, limits, sink),
        SourceFormat::BalanceSnapshotsCsv => ledger::parse_snapshots(bytes, limits, sink),
        SourceFormat::StripeInvoice => ledger::parse_stripe(bytes, limits, sink),
        SourceFormat::InvoiceCsv => ledger::parse_invoice_csv(bytes, limits, sink),
        SourceFormat::OpenAiCosts => openai::costs::parse(bytes, limits, sink),
        SourceFormat::OpenAiProjects => openai::parse_projects(bytes, sink),
        SourceFormat::OpenAiProjectApiKeys => openai::parse_project_api_keys(bytes, sink),
        SourceFormat::OpenAiUsage(e) => openai::usage::parse(bytes, e, limits, sink),
    }
}

fn parse_raw_reader<R: BufRead>(
    reader: R,
    format: SourceFormat,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    use anthropic::{admin, console_csv, lists};
    use paged::Input::Reader;
    // A streamed JSON page never holds a string longer than the cap: a longer one reaches the
    // parser as its length, which the field's check refuses (see `CapLongStrings`).
    fn json<'a, R: BufRead>(r: R) -> paged::Input<'a, BufReader<numbers::CapLongStrings<R>>> {
        Reader(BufReader::new(numbers::CapLongStrings::new(r)))
    }
    match format {
        SourceFormat::AnthropicUsageApi => admin::parse_usage(json(reader), limits, sink),
        SourceFormat::AnthropicCostApi => admin::parse_cost(json(reader), limits, sink),
        SourceFormat::AnthropicWorkspaces => lists::parse_workspaces(json(reader), sink),
        SourceFormat::AnthropicApiKeys => lists::parse_api_keys(json(reader), sink),
        SourceFormat::AnthropicConsoleUsageCsv => console_csv::parse_usage(reader, limits, sink),
        SourceFormat::AnthropicConsoleCostCsv => {
            anthropic::console_cost::parse(reader, limits, sink)
        }
        // Credits and invoice files and Analytics queries are read whole (at most
        // IN_MEMORY_LIMIT).
        SourceFormat::AnthropicAnalyticsCost
        | SourceFormat::AnthropicAnalyticsUsage
        | SourceFormat::CreditLotsCsv
        | SourceFormat::BalanceSnapshotsCsv
        | SourceFormat::StripeInvoice
        | SourceFormat::InvoiceCsv
        | SourceFormat::OpenAiCosts
        | SourceFormat::OpenAiProjects
        | SourceFormat::OpenAiProjectApiKeys
        | SourceFormat::OpenAiUsage(_) => {
            let mut bytes = Vec::new();
            reader
                .take(IN_MEMORY_LIMIT + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| FileError::new(format!("read error: {e}")))?;
            if bytes.len() as u64 > IN_MEMORY_LIMIT {
                return Err(FileError::new(format!(
                    "larger than {} MiB: not a credits, invoice or Analytics query file",
                    IN_MEMORY_LIMIT >> 20
                )));
            }
            parse_raw_bytes(&bytes, format, limits, sink)
        }
    }
}

/// Shortens raw text for a quarantine excerpt.
/// Anything that looks like a secret is masked first.
pub(crate) fn excerpt(s: &str) -> String {
    // Only the head is looked at: a value of hundreds of megabytes is not copied or scanned.
    let head = match s.char_indices().nth(4096) {
        Some((i, _)) => &s[..i],
        None => s,
    };
    let s = mask_secrets(head);
    if s.chars().count() <= 200 {
        s
    } else {
        let mut out: String = s.chars().take(197).collect();
        out.push_str("...");
        out
    }
}

/// A currency code accepted for summing: USD only (no exchange rates), upper-cased. Anything else
/// is refused with the reason, so a foreign amount is never added to dollars.
pub(crate) fn usd_only(currency: &str) -> Result<String, String> {
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!(
            "currency {:?} is not an ISO 4217 code",
            excerpt(currency)
        ));
    }
    if !currency.eq_ignore_ascii_case("USD") {
        return Err(format!(
            "currency {}: only USD amounts are summed (no exchange rates yet), so this row is not loaded",
            currency.to_ascii_uppercase()
        ));
    }
    Ok(currency.to_ascii_uppercase())
}
