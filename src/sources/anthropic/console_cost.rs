//! Console "Cost" CSV exports: one more provider-side figure (dollars, not cents), loaded into
//! the `cost` table, reconciled, never summed into usage.
//!
//! Headers seen in the wild (`../shared/reference/provider-apis.md` §4, `anthropic-billing.md`
//! §9): `usage_date_utc,model,workspace,api_key,usage_type,context_window,token_type,cost_usd,
//! list_price_usd,cost_type,inference_geo,speed` (12 columns), the same `+ api_key_id,
//! api_key_status` (14), and older 7- and 9-column variants ending `…,token_type,cost_usd
//! [,cost_type]`. Columns are found by name. The model is a display name (`Claude Sonnet 4.5`)
//! and `token_type` uses the Console's own words (`input_no_cache`, `output`, …; the cache
//! ones are not documented), so a row is kept at the grain the reconciliation can trust: the
//! day × workspace total (`cost_type` and `token_type` null, like a cost report not grouped by
//! description), its model, token type, cost type and usage type in `description` for
//! lineage. `list_price_usd` is read as the row's amount at list price (the Analytics API's
//! `list_amount`, which the Console's pairing `cost_usd,list_price_usd` mirrors).
//! Must not: map display names to model ids by guesswork, or read usage.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;

use rust_decimal::Decimal;

use super::console_csv::{
    Refusal, checked_record, context_and_geo, cover, each_record, opt_text, usage_date,
};
use crate::model::{CostRow, DEFAULT_WORKSPACE_NAME, SourceFormat, day_start};
use crate::sources::{FileError, Limits, Sink};
use crate::vocab::Provider;

struct Columns {
    date: usize,
    model: usize,
    workspace: usize,
    cost: usize,
    api_key: Option<usize>,
    usage_type: Option<usize>,
    context_window: Option<usize>,
    token_type: Option<usize>,
    list_price: Option<usize>,
    cost_type: Option<usize>,
    inference_geo: Option<usize>,
}

fn columns(header: &csv::StringRecord) -> Result<Columns, FileError> {
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    let need = ["usage_date_utc", "model", "workspace", "cost_usd"];
    // `model` must be in the header (it tells this export from others); a row may leave it
    // empty (web search, code execution).
    let missing: Vec<&str> = need.iter().copied().filter(|n| find(n).is_none()).collect();
    if !missing.is_empty() {
        return Err(FileError::at(
            Some(1),
            None,
            format!(
                "unknown Console cost CSV header: missing column(s) {}",
                missing.join(", ")
            ),
        ));
    }
    let at = |n: &str| find(n).expect("checked above");
    Ok(Columns {
        date: at("usage_date_utc"),
        model: at("model"),
        workspace: at("workspace"),
        cost: at("cost_usd"),
        api_key: find("api_key"),
        usage_type: find("usage_type"),
        context_window: find("context_window"),
        token_type: find("token_type"),
        list_price: find("list_price_usd"),
        cost_type: find("cost_type"),
        inference_geo: find("inference_geo"),
    })
}

/// Dollars as the Console writes them, read by the ledger's one exact parser
/// ([`crate::sources::ledger::dollars`]: a plain decimal, never an exponent or a thousands
/// separator, at most 12 decimals): (the text as written, the amount).
fn dollars(rec: &csv::StringRecord, col: usize, field: &str) -> Result<(String, Decimal), Refusal> {
    let t = rec.get(col).unwrap_or("").trim();
    Ok((t.to_string(), crate::sources::ledger::dollars(field, t)?))
}

fn row(
    cols: &Columns,
    rec: &csv::StringRecord,
    line: u64,
    limits: &Limits,
) -> Result<CostRow, Refusal> {
    let date = usage_date(rec, cols.date, limits)?;
    let display_model = opt_text(rec, Some(cols.model));
    let (amount_raw, amount) = dollars(rec, cols.cost, "cost_usd")?;
    let list_amount = match cols.list_price {
        Some(c) if opt_text(rec, Some(c)).is_some() => Some(dollars(rec, c, "list_price_usd")?.1),
        _ => None,
    };
    let (context_window, inference_geo) =
        context_and_geo(rec, cols.context_window, cols.inference_geo)?;
    // What the row charges, as the Console says it: kept for lineage, not compared.
    let said: Vec<String> = [
        display_model,
        opt_text(rec, cols.token_type),
        opt_text(rec, cols.cost_type),
        opt_text(rec, cols.usage_type),
        opt_text(rec, cols.api_key).map(|k| format!("key {k}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let start = day_start(date);
    Ok(CostRow {
        bucket_start: start,
        bucket_end: start + chrono::TimeDelta::days(1),
        provider: Provider::Anthropic,
        workspace_id: None,
        workspace_name: Some(
            opt_text(rec, Some(cols.workspace)).unwrap_or_else(|| DEFAULT_WORKSPACE_NAME.into()),
        ),
        description: Some(said.join(" · ")),
        cost_type: None,
        model: None,
        token_type: None,
        service_tier: None,
        context_window,
        inference_geo,
        currency: "USD".into(),
        amount,
        amount_raw,
        list_amount,
        source_format: SourceFormat::AnthropicConsoleCostCsv,
        source_row: line,
    })
}

/// Parses a Console cost CSV. Coverage is every day from the first to the last date in the
/// file, as for the usage CSV; a line repeated verbatim fails the file (it would count twice).
pub fn parse<R: BufRead>(reader: R, limits: &Limits, sink: &mut dyn Sink) -> Result<(), FileError> {
    let mut cols = None;
    let mut days = BTreeSet::new();
    let mut first_line_of: HashMap<Vec<String>, u64> = HashMap::new();
    each_record(reader, sink, |header, rec, line, sink| {
        let c = match &cols {
            Some(c) => c,
            None => cols.insert(columns(header)?),
        };
        let Some(rec) = rec else { return Ok(()) };
        let Some(bad) = checked_record(rec, header.len(), line, sink) else {
            return Ok(());
        };
        let key: Vec<String> = rec.iter().map(|f| f.trim().to_string()).collect();
        if let Some(first) = first_line_of.get(&key) {
            return Err(FileError::at(
                Some(line),
                None,
                format!(
                    "line {line} repeats line {first} field for field; the file is not loaded, \
                     as its cost would be counted twice"
                ),
            ));
        }
        match row(c, rec, line, limits) {
            Ok(r) => {
                first_line_of.insert(key, line);
                days.insert(r.bucket_start.date_naive());
                sink.cost(r);
            }
            Err((field, reason)) => sink.quarantine(bad(Some(field), reason)),
        }
        Ok(())
    })?;
    cover(&days, limits, sink)
}
