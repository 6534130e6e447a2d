//! Console "Usage" CSV exports. Columns are found by name (order-independent); both header
//! generations are read: the newer one splits cache writes into 5m/1h, the older one has a
//! single `usage_input_tokens_cache_write` column, booked as 5-minute writes and flagged
//! (`cache_write_assumed_5m`). Rows carry names, not IDs; `Default` is the default workspace.
//!
//! Must not: resolve names to IDs (that is `ingest`, from the lists), or read other formats.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;

use chrono::NaiveDate;

use crate::model::{
    self, BucketWidth, DEFAULT_WORKSPACE_NAME, SourceFamily, SourceFormat, Tokens, UsageRow,
    check_enum, day_start,
};
use crate::sources::{FileError, Limits, Quarantined, Sink, excerpt};
use crate::vocab::Provider;

struct Columns {
    date: usize,
    model: usize,
    api_key: usize,
    workspace: usize,
    usage_type: usize,
    /// Absent in the mid-2025 header: standard context then.
    context_window: Option<usize>,
    no_cache: usize,
    /// (5m, 1h) for the newer header, or the single column of the older one.
    cache_write: CacheWrite,
    cache_read: usize,
    output: usize,
    web_search: Option<usize>,
    inference_geo: Option<usize>,
    speed: Option<usize>,
}

enum CacheWrite {
    Split(usize, usize),
    Single(usize),
}

fn columns(header: &csv::StringRecord) -> Result<Columns, FileError> {
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    let mut missing = Vec::new();
    let mut req = |name: &'static str| {
        let i = find(name);
        if i.is_none() {
            missing.push(name);
        }
        i.unwrap_or(0)
    };
    let date = req("usage_date_utc");
    let model = req("model_version");
    let api_key = req("api_key");
    let workspace = req("workspace");
    let usage_type = req("usage_type");
    let no_cache = req("usage_input_tokens_no_cache");
    let cache_read = req("usage_input_tokens_cache_read");
    let output = req("usage_output_tokens");
    let cache_write = match (
        find("usage_input_tokens_cache_write_5m"),
        find("usage_input_tokens_cache_write_1h"),
        find("usage_input_tokens_cache_write"),
    ) {
        (Some(a), Some(b), _) => CacheWrite::Split(a, b),
        (None, None, Some(c)) => CacheWrite::Single(c),
        _ => {
            missing.push("usage_input_tokens_cache_write_5m + usage_input_tokens_cache_write_1h (or usage_input_tokens_cache_write)");
            CacheWrite::Single(0)
        }
    };
    if !missing.is_empty() {
        return Err(FileError::at(
            Some(1),
            None,
            format!(
                "unknown Console usage CSV header: missing column(s) {}",
                missing.join(", ")
            ),
        ));
    }
    Ok(Columns {
        date,
        model,
        api_key,
        workspace,
        usage_type,
        context_window: find("context_window"),
        no_cache,
        cache_write,
        cache_read,
        output,
        web_search: find("web_search_count"),
        inference_geo: find("inference_geo"),
        speed: find("speed"),
    })
}

/// Console display text for the context window → the API's value.
pub fn context_window_from_display(s: &str) -> Result<Option<String>, String> {
    let t = s.trim();
    let norm: String = t
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    match norm.as_str() {
        "" => Ok(None),
        "≤200k" | "<=200k" | "0-200k" => Ok(Some("0-200k".into())),
        ">200k" | "200k-1m" => Ok(Some("200k-1M".into())),
        _ => Err(format!(
            "unknown context_window {s:?} (expected ≤ 200k, > 200k, 0-200k or 200k-1M)"
        )),
    }
}

fn count(rec: &csv::StringRecord, i: usize, field: &str) -> Result<u64, (String, String)> {
    let v = rec.get(i).unwrap_or("").trim();
    if v.is_empty() {
        return Err((field.into(), format!("missing required field {field}")));
    }
    match v.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n as u64),
        Ok(n) => Err((field.into(), format!("{field} is negative: {n}"))),
        Err(_) => Err((
            field.into(),
            format!("{field} must be a non-negative integer, got {v:?}"),
        )),
    }
}

fn opt_count(
    rec: &csv::StringRecord,
    i: Option<usize>,
    field: &str,
) -> Result<u64, (String, String)> {
    match i {
        Some(i) if !rec.get(i).unwrap_or("").trim().is_empty() => count(rec, i, field),
        _ => Ok(0),
    }
}

pub(super) fn opt_text(rec: &csv::StringRecord, i: Option<usize>) -> Option<String> {
    i.and_then(|i| rec.get(i))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// What the file's header made the parser assume, said once per file in the ingest summary.
fn header_notes(cols: &Columns) -> Vec<String> {
    let mut notes = Vec::new();
    if matches!(cols.cache_write, CacheWrite::Single(_)) {
        notes.push(
            "older Console header: one undivided cache-write column, booked as 5-minute cache \
             writes (cache_write_assumed_5m)"
                .to_string(),
        );
    }
    let absent: Vec<&str> = [
        ("context_window", cols.context_window),
        ("inference_geo", cols.inference_geo),
        ("speed", cols.speed),
    ]
    .iter()
    .filter(|(_, c)| c.is_none())
    .map(|(n, _)| *n)
    .collect();
    if !absent.is_empty() {
        let mut assumed = Vec::new();
        if cols.context_window.is_none() {
            assumed.push("standard context window");
        }
        if cols.inference_geo.is_none() {
            assumed.push("global inference geo");
        }
        if cols.speed.is_none() {
            assumed.push("no speed");
        }
        notes.push(format!(
            "Console header without {}: {} assumed",
            absent.join(", "),
            assumed.join(", ")
        ));
    }
    notes
}

/// A row refused: (field, reason).
pub(super) type Refusal = (String, String);

pub(super) fn refused(field: &str) -> impl FnOnce(String) -> Refusal + '_ {
    move |reason| (field.to_string(), reason)
}

pub(super) fn required(
    rec: &csv::StringRecord,
    col: usize,
    field: &str,
) -> Result<String, Refusal> {
    opt_text(rec, Some(col))
        .ok_or_else(|| refused(field)(format!("missing required field {field}")))
}

pub(super) fn usage_date(
    rec: &csv::StringRecord,
    col: usize,
    limits: &Limits,
) -> Result<NaiveDate, Refusal> {
    let date_s = rec.get(col).unwrap_or("").trim();
    let date = NaiveDate::parse_from_str(date_s, "%Y-%m-%d")
        .ok()
        .filter(|_| date_s.len() == 10)
        .ok_or_else(|| {
            let quoted = excerpt(date_s);
            refused("usage_date_utc")(format!(
                "usage_date_utc {quoted:?} is not a YYYY-MM-DD date"
            ))
        })?;
    limits.check_day(date).map_err(refused("usage_date_utc"))?;
    Ok(date)
}

/// How a record's problems are quarantined (its line and an excerpt), or `None` once a record
/// whose field count is not the header's was quarantined.
pub(super) fn checked_record(
    rec: &csv::StringRecord,
    header_len: usize,
    line: u64,
    sink: &mut dyn Sink,
) -> Option<impl Fn(Option<String>, String) -> Quarantined + use<>> {
    let joined = excerpt(&rec.iter().collect::<Vec<_>>().join(","));
    let bad = move |field: Option<String>, reason: String| Quarantined {
        location: format!("line {line}"),
        line: Some(line),
        field,
        reason,
        excerpt: Some(joined.clone()),
    };
    if rec.len() != header_len {
        let reason = format!("row has {} fields, the header has {header_len}", rec.len());
        sink.quarantine(bad(None, reason));
        return None;
    }
    Some(bad)
}

/// A Console row's context window (display text mapped to the API's value) and inference geo,
/// from their columns when the header has them.
pub(super) fn context_and_geo(
    rec: &csv::StringRecord,
    context_col: Option<usize>,
    geo_col: Option<usize>,
) -> Result<(Option<String>, Option<String>), Refusal> {
    let context_window = match context_col {
        Some(c) => context_window_from_display(rec.get(c).unwrap_or(""))
            .map_err(refused("context_window"))?,
        None => None,
    };
    let inference_geo = opt_text(rec, geo_col);
    if let Some(g) = &inference_geo {
        check_enum("inference_geo", g, model::INFERENCE_GEOS).map_err(refused("inference_geo"))?;
    }
    Ok((context_window, inference_geo))
}

/// The token counts; the flag says the cache writes were assumed to be 5-minute ones.
fn tokens(rec: &csv::StringRecord, cols: &Columns) -> Result<(Tokens, bool), Refusal> {
    let (w5, w1, assumed) = match cols.cache_write {
        CacheWrite::Split(a, b) => (
            count(rec, a, "usage_input_tokens_cache_write_5m")?,
            count(rec, b, "usage_input_tokens_cache_write_1h")?,
            false,
        ),
        CacheWrite::Single(c) => (count(rec, c, "usage_input_tokens_cache_write")?, 0, true),
    };
    let tokens = Tokens {
        uncached_input: count(rec, cols.no_cache, "usage_input_tokens_no_cache")?,
        cache_write_5m: w5,
        cache_write_1h: w1,
        cache_read: count(rec, cols.cache_read, "usage_input_tokens_cache_read")?,
        output: count(rec, cols.output, "usage_output_tokens")?,
        web_search_requests: opt_count(rec, cols.web_search, "web_search_count")?,
        ..Tokens::default()
    };
    Ok((tokens, assumed))
}

fn row(
    cols: &Columns,
    rec: &csv::StringRecord,
    line: u64,
    limits: &Limits,
) -> Result<UsageRow<'static>, Refusal> {
    let date = usage_date(rec, cols.date, limits)?;
    let model = required(rec, cols.model, "model_version")?;
    let tier = required(rec, cols.usage_type, "usage_type")?;
    check_enum("usage_type", &tier, model::SERVICE_TIERS).map_err(refused("usage_type"))?;
    let (context_window, inference_geo) =
        context_and_geo(rec, cols.context_window, cols.inference_geo)?;
    let (tokens, cache_write_assumed_5m) = tokens(rec, cols)?;
    // The Console names workspaces; the default workspace is named too.
    let workspace_name =
        opt_text(rec, Some(cols.workspace)).unwrap_or_else(|| DEFAULT_WORKSPACE_NAME.to_string());
    Ok(UsageRow {
        bucket_start: day_start(date),
        bucket_width: BucketWidth::Day,
        provider: Provider::Anthropic,
        workspace_id: None,
        workspace_name: Some(workspace_name.into()),
        api_key_id: None,
        api_key_name: opt_text(rec, Some(cols.api_key)).map(Into::into),
        model: Some(model.into()),
        service_tier: Some(tier.into()),
        context_window: context_window.map(Into::into),
        inference_geo: inference_geo.map(Into::into),
        speed: opt_text(rec, cols.speed).map(Into::into),
        account_id: None,
        service_account_id: None,
        product: None,
        agent_id: None,
        actor_type: None,
        actor_id: None,
        actor_email: None,
        tokens,
        cache_write_assumed_5m,
        source_format: SourceFormat::AnthropicConsoleUsageCsv,
        source_row: line,
    })
}

/// What the parse has seen so far: the days with rows, and the first line of each (day,
/// dimensions), since a repeated row would be counted twice.
#[derive(Default)]
struct Seen {
    days: BTreeSet<NaiveDate>,
    first_line_of: HashMap<(NaiveDate, [Option<String>; 16]), u64>,
}

/// One record: a usage row or a quarantined line; `Err` when it fails the whole file.
fn record(
    cols: &Columns,
    header_len: usize,
    rec: &csv::StringRecord,
    line: u64,
    limits: &Limits,
    seen: &mut Seen,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    let Some(bad) = checked_record(rec, header_len, line, sink) else {
        return Ok(());
    };
    let r = match row(cols, rec, line, limits) {
        Ok(r) => r,
        Err((field, reason)) => {
            sink.quarantine(bad(Some(field), reason));
            return Ok(());
        }
    };
    let day = r.bucket_start.date_naive();
    let key = (day, r.dimensions().map(|d| d.map(str::to_owned)));
    if let Some(first) = seen.first_line_of.get(&key) {
        return Err(FileError::at(
            Some(line),
            None,
            format!(
                "line {line} repeats the day and dimensions of line {first} (the Console sends \
                 one row per combination); the file is not loaded, as its rows would be counted twice"
            ),
        ));
    }
    seen.first_line_of.insert(key, line);
    seen.days.insert(day);
    sink.usage(&r);
    Ok(())
}

/// Coverage: every day from the first to the last date of the file, unless that spans more
/// than one export can plausibly cover.
pub(super) fn cover(
    days: &BTreeSet<NaiveDate>,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) else {
        return Ok(());
    };
    let span = (last - first).num_days() + 1;
    if span > limits.max_span_days {
        return Err(FileError::new(format!(
            "the file's rows span {span} days ({first} .. {last}), more than one export can \
             plausibly cover ({} days, [ingest] max_span_days); a typo'd date? split the \
             export or raise the limit",
            limits.max_span_days
        )));
    }
    let mut d = first;
    while d <= last {
        let start = day_start(d);
        sink.coverage(
            SourceFamily::Export,
            start,
            start + chrono::TimeDelta::days(1),
        );
        d = d.succ_opt().expect("date in range");
    }
    Ok(())
}

/// Parses a Console usage CSV. Coverage is every day from the first to the last date in the
/// file (a day inside that range with no rows is a day with no usage).
pub fn parse_usage<R: BufRead>(
    reader: R,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    let mut seen = Seen::default();
    let mut cols = None;
    each_record(reader, sink, |header, rec, line, sink| {
        let c = match &cols {
            Some(c) => c,
            None => {
                let c = columns(header)?;
                for n in header_notes(&c) {
                    sink.note(n);
                }
                cols.insert(c)
            }
        };
        match rec {
            Some(rec) => record(c, header.len(), rec, line, limits, &mut seen, sink),
            None => Ok(()),
        }
    })?;
    cover(&seen.days, limits, sink)
}

/// Reads a Console CSV: skips a byte-order mark, reads the header, and hands `each` the header
/// with no record first (to check it), then every record with its line; a row the CSV reader
/// cannot read is quarantined, a read error fails the file.
pub(super) fn each_record<R: BufRead>(
    mut reader: R,
    sink: &mut dyn Sink,
    mut each: impl FnMut(
        &csv::StringRecord,
        Option<&csv::StringRecord>,
        u64,
        &mut dyn Sink,
    ) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let buf = reader
        .fill_buf()
        .map_err(|e| FileError::new(format!("read error: {e}")))?;
    if buf.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(reader.by_ref());
    let header = rdr
        .headers()
        .map_err(|e| FileError::at(Some(1), None, format!("unreadable CSV header: {e}")))?
        .clone();
    each(&header, None, 1, sink)?;
    let mut rec = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut rec) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = rec.position().map(|p| p.line()).unwrap_or(line);
                each(&header, Some(&rec), line, sink)?;
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return Err(FileError::at(Some(line), None, format!("read error: {e}")));
                }
                sink.quarantine(Quarantined {
                    location: format!("line {line}"),
                    line: Some(line),
                    field: None,
                    reason: format!("unreadable CSV row: {e}"),
                    excerpt: None,
                });
            }
        }
    }
}
