//! Console "Usage" CSV exports. Columns are found by name (order-independent); both header
//! generations are read: the newer one splits cache writes into 5m/1h, the older one has a
//! single `usage_input_tokens_cache_write` column, booked as 5-minute writes and flagged
//! (`cache_write_assumed_5m`). Rows carry names, not IDs; `Default` is the default workspace.

use std::collections::BTreeSet;
use std::io::BufRead;

use chrono::NaiveDate;

use super::{FileError, Quarantined, Sink, excerpt};
use crate::model::{
    self, BucketWidth, DEFAULT_WORKSPACE_NAME, SourceFamily, SourceFormat, Tokens, UsageRow,
    check_enum, day_start,
};

struct Columns {
    date: usize,
    model: usize,
    api_key: usize,
    workspace: usize,
    usage_type: usize,
    context_window: usize,
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
    let context_window = req("context_window");
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
        return Err(FileError {
            line: Some(1),
            column: None,
            reason: format!(
                "unknown Console usage CSV header: missing column(s) {}",
                missing.join(", ")
            ),
        });
    }
    Ok(Columns {
        date,
        model,
        api_key,
        workspace,
        usage_type,
        context_window,
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

fn opt_text(rec: &csv::StringRecord, i: Option<usize>) -> Option<String> {
    i.and_then(|i| rec.get(i))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn row(cols: &Columns, rec: &csv::StringRecord, line: u64) -> Result<UsageRow, (String, String)> {
    let date_s = rec.get(cols.date).unwrap_or("").trim();
    let date = NaiveDate::parse_from_str(date_s, "%Y-%m-%d").map_err(|_| {
        (
            "usage_date_utc".to_string(),
            format!("usage_date_utc {date_s:?} is not a YYYY-MM-DD date"),
        )
    })?;
    let model = opt_text(rec, Some(cols.model)).ok_or_else(|| {
        (
            "model_version".to_string(),
            "missing required field model_version".to_string(),
        )
    })?;
    let tier = opt_text(rec, Some(cols.usage_type)).ok_or_else(|| {
        (
            "usage_type".to_string(),
            "missing required field usage_type".to_string(),
        )
    })?;
    check_enum("usage_type", &tier, model::SERVICE_TIERS)
        .map_err(|r| ("usage_type".to_string(), r))?;
    let context_window = context_window_from_display(rec.get(cols.context_window).unwrap_or(""))
        .map_err(|r| ("context_window".to_string(), r))?;
    let inference_geo = opt_text(rec, cols.inference_geo);
    if let Some(g) = &inference_geo {
        check_enum("inference_geo", g, model::INFERENCE_GEOS)
            .map_err(|r| ("inference_geo".to_string(), r))?;
    }
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
    };
    let workspace = opt_text(rec, Some(cols.workspace));
    let (workspace_id, workspace_name) = match workspace.as_deref() {
        None | Some(DEFAULT_WORKSPACE_NAME) => (None, Some(DEFAULT_WORKSPACE_NAME.to_string())),
        Some(name) => (None, Some(name.to_string())),
    };
    Ok(UsageRow {
        bucket_start: day_start(date),
        bucket_width: BucketWidth::Day,
        provider: "anthropic",
        workspace_id,
        workspace_name,
        api_key_id: None,
        api_key_name: opt_text(rec, Some(cols.api_key)),
        model: Some(model),
        service_tier: Some(tier),
        context_window,
        inference_geo,
        speed: opt_text(rec, cols.speed),
        account_id: None,
        service_account_id: None,
        tokens,
        cache_write_assumed_5m: assumed,
        source_format: SourceFormat::AnthropicConsoleUsageCsv,
        source_row: line,
    })
}

/// Parses a Console usage CSV. Coverage is every day from the first to the last date in the
/// file (a day inside that range with no rows is a day with no usage).
pub fn parse_usage<R: BufRead>(mut reader: R, sink: &mut dyn Sink) -> Result<(), FileError> {
    // Skip a UTF-8 byte-order mark.
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
        .map_err(|e| FileError {
            line: Some(1),
            column: None,
            reason: format!("unreadable CSV header: {e}"),
        })?
        .clone();
    let cols = columns(&header)?;
    let mut days = BTreeSet::new();
    let mut rec = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let line = rec.position().map(|p| p.line()).unwrap_or(line);
                let joined = excerpt(&rec.iter().collect::<Vec<_>>().join(","));
                if rec.len() != header.len() {
                    sink.quarantine(Quarantined {
                        location: format!("line {line}"),
                        line: Some(line),
                        field: None,
                        reason: format!(
                            "row has {} fields, the header has {}",
                            rec.len(),
                            header.len()
                        ),
                        excerpt: Some(joined),
                    });
                    continue;
                }
                match row(&cols, &rec, line) {
                    Ok(r) => {
                        days.insert(r.bucket_start.date_naive());
                        sink.usage(r);
                    }
                    Err((field, reason)) => sink.quarantine(Quarantined {
                        location: format!("line {line}"),
                        line: Some(line),
                        field: Some(field),
                        reason,
                        excerpt: Some(joined),
                    }),
                }
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return Err(FileError {
                        line: Some(line),
                        column: None,
                        reason: format!("read error: {e}"),
                    });
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
    if let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) {
        let mut d = first;
        while d <= last {
            let start = day_start(d);
            sink.coverage(
                SourceFamily::ConsoleCsv,
                start,
                start + chrono::TimeDelta::days(1),
            );
            d = d.succ_opt().expect("date in range");
        }
    }
    Ok(())
}
