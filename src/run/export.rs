//! `tokenledger export focus`, and the month close's FOCUS export: rate the month, build the
//! three FOCUS 1.4 datasets under one snapshot, write them, and sum what was written.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{RunError, Settings, rate};
use crate::export::focus::{Dataset, Value};
use crate::export::write::{self, Format};
use crate::lake::Snapshot;
use crate::money::Money;
use crate::vocab::{Month, Review};

/// One dataset written.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub dataset: &'static str,
    pub path: PathBuf,
    pub rows: usize,
}

/// What `export focus` wrote, with the Cost and Usage totals (exact) to check it by.
#[derive(Debug, Clone, Serialize)]
pub struct FocusExport {
    pub month: Month,
    pub format: Format,
    pub files: Vec<Written>,
    pub list_cost: Money,
    pub contracted_cost: Money,
    pub effective_cost: Money,
    pub billed_cost: Money,
    /// Usage groups with no list price (their cost columns are 0 and `x_PricingStatus` says
    /// UNPRICED): exit code 3.
    pub unpriced_groups: usize,
}

impl FocusExport {
    pub fn reviews(&self) -> Vec<Review> {
        if self.unpriced_groups == 0 {
            return Vec::new();
        }
        vec![Review::Unpriced {
            month: self.month.key(),
            lines: self.unpriced_groups,
        }]
    }
}

/// The sum of a decimal column.
fn total(d: &Dataset, column: &str) -> Money {
    let Some(i) = d.col(column) else {
        return Money::ZERO;
    };
    Money::from_units(
        d.rows
            .iter()
            .map(|r| match r[i] {
                Value::Dec(v) => v,
                _ => 0,
            })
            .sum(),
    )
}

/// Builds and writes the FOCUS export of `month` into `dir` under the view given.
pub fn write_focus(
    settings: &Settings,
    view: &Snapshot,
    month: Month,
    dir: &Path,
    format: Format,
) -> Result<FocusExport, RunError> {
    let book = super::priced_book(settings, &settings.layout)?;
    let public = crate::pricing::PriceBook::load(&[])
        .map_err(|e| RunError::Usage(format!("the embedded price book does not load: {e}")))?;
    let learned = crate::learned::rates(view, &public)?;
    let public = public.with_learned(learned);
    let req = crate::export::Request {
        month,
        book: &book,
        list_book: &public,
        teams: &super::teams(settings, view)?,
        accounts: &settings.export.accounts,
        as_of: settings.as_of,
    };
    let (focus, unpriced_groups) = crate::export::focus(view, &req)?;
    let mut files = Vec::new();
    for d in [
        &focus.cost_and_usage,
        &focus.invoice_detail,
        &focus.billing_period,
    ] {
        let path = write::write(d, dir, format)?;
        files.push(Written {
            dataset: d.name,
            path,
            rows: d.rows.len(),
        });
    }
    let cu = &focus.cost_and_usage;
    Ok(FocusExport {
        month,
        format,
        files,
        list_cost: total(cu, "ListCost"),
        contracted_cost: total(cu, "ContractedCost"),
        effective_cost: total(cu, "EffectiveCost"),
        billed_cost: total(cu, "BilledCost"),
        unpriced_groups,
    })
}

/// `tokenledger export focus --month M --out DIR`: the month (and the months its invoices
/// touch) rated first, then exported under the view rating left.
pub fn focus(
    settings: &Settings,
    month: Month,
    dir: &Path,
    format: Format,
) -> Result<FocusExport, RunError> {
    let rated = rate(settings, &[month.key()])?;
    // A month no usage export covers is refused (exit 2), never exported as $0 of spend.
    let f = crate::freshness::freshness(&rated.snapshot, settings.as_of)?;
    if !f.usage_covers(month, chrono_tz::UTC) {
        return Err(RunError::Usage(f.no_usage_sentence(month)));
    }
    write_focus(settings, &rated.snapshot, month, dir, format)
}
