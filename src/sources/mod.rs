//! Sources: turn provider export files into canonical rows.
//!
//! Owns: detecting a file's format from its content, parsing each supported format in a
//! streaming way (a page or CSV at a time, never a whole export in memory), validating every
//! field, and reporting bad rows with a location and a reason.
//! Must not: touch the lake, decide precedence or restatement (that is `ingest`), resolve names
//! against other files, or price anything.

pub mod anthropic_api;
pub mod console_csv;
mod lenient;

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::model::{ApiKey, CostRow, SourceFamily, SourceFormat, UsageRow, Workspace};

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
        Self {
            line: None,
            column: None,
            reason: reason.into(),
        }
    }
}

/// Where parsed things go. `ingest` implements it; tests collect into vectors.
pub trait Sink {
    fn usage(&mut self, row: UsageRow);
    fn cost(&mut self, row: CostRow);
    fn workspace(&mut self, ws: Workspace);
    fn api_key(&mut self, key: ApiKey);
    fn quarantine(&mut self, q: Quarantined);
    /// The export covers `[start, end)` for `family` (even if it has no rows there: an empty
    /// bucket restates usage to zero).
    fn coverage(&mut self, family: SourceFamily, start: DateTime<Utc>, end: DateTime<Utc>);
}

/// A sink that keeps everything in memory (tests, small files).
#[derive(Debug, Default)]
pub struct VecSink {
    pub usage: Vec<UsageRow>,
    pub cost: Vec<CostRow>,
    pub workspaces: Vec<Workspace>,
    pub api_keys: Vec<ApiKey>,
    pub quarantined: Vec<Quarantined>,
    pub coverage: Vec<(SourceFamily, DateTime<Utc>, DateTime<Utc>)>,
}

impl Sink for VecSink {
    fn usage(&mut self, row: UsageRow) {
        self.usage.push(row)
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
    fn quarantine(&mut self, q: Quarantined) {
        self.quarantined.push(q)
    }
    fn coverage(&mut self, family: SourceFamily, start: DateTime<Utc>, end: DateTime<Utc>) {
        self.coverage.push((family, start, end))
    }
}

const PEEK: usize = 64 * 1024;

/// Detects the format from the first 64 KiB of content (never from the name).
pub fn detect(head: &[u8]) -> Result<SourceFormat, FileError> {
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
    if trimmed.starts_with('{') {
        let squeezed: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        // Keys, not values: `"uncached_input_tokens"` is also a `token_type` value in cost pages.
        let has = |k: &str| squeezed.contains(&format!("\"{k}\":"));
        if has("starting_at") {
            if has("amount") || has("cost_type") {
                return Ok(SourceFormat::AnthropicCostApi);
            }
            if has("uncached_input_tokens") || has("output_tokens") {
                return Ok(SourceFormat::AnthropicUsageApi);
            }
            return Err(FileError::new(
                "an Admin API report page without result rows: cannot tell usage from cost; \
                 pass --format anthropic-usage-api or --format anthropic-cost-api",
            ));
        }
        if squeezed.contains("\"type\":\"api_key\"") || has("partial_key_hint") {
            return Ok(SourceFormat::AnthropicApiKeys);
        }
        if squeezed.contains("\"type\":\"workspace\"") {
            return Ok(SourceFormat::AnthropicWorkspaces);
        }
        return Err(FileError::new(
            "JSON, but not an Admin API usage/cost report page or a workspaces/api_keys list",
        ));
    }
    let first_line = trimmed.lines().next().unwrap_or("");
    if first_line.contains("usage_date_utc") {
        if first_line.contains("model_version") && first_line.contains("usage_output_tokens") {
            return Ok(SourceFormat::AnthropicConsoleUsageCsv);
        }
        if first_line.contains("cost_usd") {
            return Err(FileError::new(
                "Console cost CSV is not supported yet; ingest the Admin API cost report instead",
            ));
        }
    }
    let shown: String = first_line.chars().take(120).collect();
    Err(FileError::new(format!(
        "unrecognised content (first line: {shown:?}); supported: {}",
        SourceFormat::ALL.map(|f| f.as_str()).join(", ")
    )))
}

/// Reads the head of a file for [`detect`].
pub fn detect_file(path: &Path) -> std::io::Result<Result<SourceFormat, FileError>> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(PEEK);
    (&mut f).take(PEEK as u64).read_to_end(&mut buf)?;
    Ok(detect(&buf))
}

/// Files up to this size are read whole and parsed from memory (several times faster);
/// larger ones are streamed, so memory stays bounded whatever the input size.
pub const IN_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;

/// Parses one file of a known format into `sink`.
pub fn parse_file(path: &Path, format: SourceFormat, sink: &mut dyn Sink) -> Result<(), FileError> {
    let file =
        std::fs::File::open(path).map_err(|e| FileError::new(format!("cannot open: {e}")))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    if size <= IN_MEMORY_LIMIT {
        let mut bytes = Vec::with_capacity(size as usize);
        BufReader::new(file)
            .read_to_end(&mut bytes)
            .map_err(|e| FileError::new(format!("read error: {e}")))?;
        return parse_bytes(&bytes, format, sink);
    }
    parse_reader(BufReader::with_capacity(256 * 1024, file), format, sink)
}

/// Parses a whole file held in memory.
pub fn parse_bytes(
    bytes: &[u8],
    format: SourceFormat,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    use anthropic_api::Input::Bytes;
    type Nothing = std::io::Empty;
    match format {
        SourceFormat::AnthropicUsageApi => {
            anthropic_api::parse_usage::<Nothing>(Bytes(bytes), sink)
        }
        SourceFormat::AnthropicCostApi => anthropic_api::parse_cost::<Nothing>(Bytes(bytes), sink),
        SourceFormat::AnthropicWorkspaces => {
            anthropic_api::parse_workspaces::<Nothing>(Bytes(bytes), sink)
        }
        SourceFormat::AnthropicApiKeys => {
            anthropic_api::parse_api_keys::<Nothing>(Bytes(bytes), sink)
        }
        SourceFormat::AnthropicConsoleUsageCsv => console_csv::parse_usage(bytes, sink),
    }
}

/// Parses a stream of a known format into `sink`.
pub fn parse_reader<R: BufRead>(
    reader: R,
    format: SourceFormat,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    use anthropic_api::Input::Reader;
    match format {
        SourceFormat::AnthropicUsageApi => anthropic_api::parse_usage(Reader(reader), sink),
        SourceFormat::AnthropicCostApi => anthropic_api::parse_cost(Reader(reader), sink),
        SourceFormat::AnthropicWorkspaces => anthropic_api::parse_workspaces(Reader(reader), sink),
        SourceFormat::AnthropicApiKeys => anthropic_api::parse_api_keys(Reader(reader), sink),
        SourceFormat::AnthropicConsoleUsageCsv => console_csv::parse_usage(reader, sink),
    }
}

/// Shortens raw text for a quarantine excerpt.
pub(crate) fn excerpt(s: &str) -> String {
    if s.chars().count() <= 200 {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(197).collect();
        out.push_str("...");
        out
    }
}
