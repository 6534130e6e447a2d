//! `GET /organization/costs` pages: `{object:"page", data:[{object:"bucket", start_time,
//! end_time, results:[{object:"organization.costs.result", amount:{value, currency},
//! line_item, project_id, api_key_id, quantity, quantity_unit}]}], has_more, next_page}`.
//!
//! Money policy for this format: the Costs API writes dollars as **JSON numbers**
//! (`0.0003226181279184669`, `1.29e-05`), its own format, so a number is accepted here (every
//! other format refuses money as a JSON number). The literal digits are read from the raw text
//! (never through an `f64`), exponents expanded exactly, and a value with more fractional
//! digits than the lake keeps (12) is rounded once, half to even, and said in the ingest notes;
//! `amount_raw` keeps the text as written. A negative amount, an amount that is a string, a
//! currency other than USD or an unknown `object` is a row error.
//!
//! Each bucket restates its day (buckets are aligned to UTC midnight, `1d` only), empty ones
//! too. `project_id` is the workspace; `line_item` (`"gpt-4o-2024-08-06, input"`, `"Web
//! search"`) is kept as the description, its model part as the model; the rows are compared at
//! the day × project grain (`cost_type` null) until OpenAI usage is read. `api_key_id`,
//! `quantity` and `quantity_unit` have no column yet: they are not kept.

use std::str::FromStr;

use chrono::TimeDelta;
use rust_decimal::{Decimal, RoundingStrategy};

use super::{document, object_is, text, unix_seconds};
use crate::model::{BucketWidth, CostRow, SourceFamily, SourceFormat};
use crate::money::SCALE;
use crate::sources::numbers::number_text;
use crate::sources::{FileError, Limits, Sink, excerpt};
use crate::vocab::Provider;

/// Dollars from the number OpenAI wrote: (its text, the exact decimal at the lake's scale,
/// whether it had to be rounded).
fn dollars(v: Option<&serde_json::Value>) -> Result<(String, Decimal, bool), (String, String)> {
    let field = || "amount.value".to_string();
    let v = v.ok_or_else(|| (field(), "missing amount.value".to_string()))?;
    let t = number_text(v).ok_or_else(|| {
        (
            field(),
            format!(
                "amount.value must be the JSON number the Costs API sends, got {}",
                excerpt(&v.to_string())
            ),
        )
    })?;
    let d = if t.contains(['e', 'E']) {
        Decimal::from_scientific(t)
    } else {
        Decimal::from_str(t)
    }
    .map_err(|e| {
        (
            field(),
            format!("amount.value {t:?} is not a decimal this ledger can hold: {e}"),
        )
    })?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err((field(), format!("amount.value is negative ({t})")));
    }
    let rounded = d.round_dp_with_strategy(SCALE, RoundingStrategy::MidpointNearestEven);
    Ok((t.to_string(), rounded, rounded != d))
}

fn result_row(
    r: &serde_json::Value,
    (start, end): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
    ordinal: u64,
) -> Result<(CostRow, bool), (String, String)> {
    object_is(r, "organization.costs.result")?;
    let amount = r
        .get("amount")
        .filter(|a| a.is_object())
        .ok_or_else(|| ("amount".to_string(), "missing amount object".to_string()))?;
    let currency = text(amount, "currency")?.unwrap_or_default();
    if !currency.eq_ignore_ascii_case("usd") {
        return Err((
            "amount.currency".into(),
            format!("currency {currency:?} is not USD; the ledger is kept in dollars"),
        ));
    }
    let (raw, value, rounded) = dollars(amount.get("value"))?;
    let line_item = text(r, "line_item")?;
    let model = line_item
        .as_deref()
        .and_then(|l| l.split_once(", "))
        .map(|(m, _)| m.trim().to_string());
    Ok((
        CostRow {
            bucket_start: start,
            bucket_end: end,
            provider: Provider::OpenAi,
            workspace_id: text(r, "project_id")?,
            workspace_name: None,
            description: line_item,
            cost_type: None,
            model,
            token_type: None,
            service_tier: None,
            context_window: None,
            inference_geo: None,
            currency: "USD".into(),
            amount: value,
            amount_raw: raw,
            list_amount: None,
            source_format: SourceFormat::OpenAiCosts,
            source_row: ordinal,
        },
        rounded,
    ))
}

/// Parses one Costs API page.
pub fn parse(bytes: &[u8], limits: &Limits, sink: &mut dyn Sink) -> Result<(), FileError> {
    let doc = document(bytes)?;
    let buckets = super::data_of(&doc, "page")?;
    let mut ordinal = 0u64;
    let mut rounded = 0u64;
    for (b, bucket) in buckets.iter().enumerate() {
        let at = format!("data[{b}]");
        let span = object_is(bucket, "bucket").and_then(|_| {
            let s = unix_seconds(bucket, "start_time")?;
            let e = unix_seconds(bucket, "end_time")?;
            match (s, e) {
                (Some(s), Some(e)) if e - s == TimeDelta::days(1) => Ok((s, e)),
                _ => Err((
                    "start_time".to_string(),
                    "a cost bucket must span one UTC day (start_time .. end_time)".to_string(),
                )),
            }
        });
        let span = span.and_then(|(s, e)| {
            limits
                .check_bucket(s, e, BucketWidth::Day)
                .map(|_| (s, e))
                .map_err(|r| ("start_time".to_string(), r))
        });
        let (s, e) = match span {
            Ok(x) => x,
            Err((field, reason)) => {
                let why = format!("{reason}; the bucket restates nothing");
                super::refuse(sink, at, (field, why), bucket);
                continue;
            }
        };
        let results = super::bucket_results(bucket, &at)?;
        sink.coverage(SourceFamily::Api, s, e);
        for (i, r) in results.iter().enumerate() {
            ordinal += 1;
            match result_row(r, (s, e), ordinal) {
                Ok((row, was_rounded)) => {
                    rounded += u64::from(was_rounded);
                    sink.cost(row);
                }
                Err(refusal) => super::refuse(sink, format!("{at}.results[{i}]"), refusal, r),
            }
        }
    }
    if rounded > 0 {
        sink.note(format!(
            "{rounded} amount(s) had more than {SCALE} decimals of a dollar: rounded once, half \
             to even (amount_raw keeps the text)"
        ));
    }
    Ok(())
}
