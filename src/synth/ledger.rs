//! The synthetic organisation's books: a credits CSV (a large prepaid lot bought at the start
//! that the usage cannot use up in a year, a promotional grant, auto-reloads, a Team Premium
//! seat credit) and one Stripe invoice per month of its cost report, as the API returns them.
//!
//! Must not: write the lake (it writes export files an operator would have).

use std::io::Write;

use anyhow::{Context, Result};
use chrono::{Months, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;

use super::cost::MonthCharges;
use super::{SynthOptions, write_json};
use crate::model::day_start;

/// Writes `credits.csv`: lots dated from the first generated day.
pub(super) fn write_credits(a: &SynthOptions, start: NaiveDate, end: NaiveDate) -> Result<()> {
    let path = a.out.join("credits.csv");
    let mut f =
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    let last = end.pred_opt().unwrap_or(end);
    let reload_day = last - chrono::TimeDelta::days(9);
    let promo_expiry = end.checked_add_months(Months::new(1)).unwrap_or(end);
    let rows = [
        format!("synth-prepaid-001,anthropic,prepaid,{start},250000.00,"),
        format!("synth-promo-001,anthropic,promotional,{start},500.00,{promo_expiry}"),
        format!("synth-reload-001,anthropic,auto_reload,{reload_day},1000.00,"),
        format!("synth-reload-002,anthropic,auto_reload,{reload_day},1000.00,"),
        format!("synth-team-premium,anthropic,monthly,{start},500.00,"),
    ];
    writeln!(f, "lot_id,provider,kind,purchased_at,amount_usd,expires_at")?;
    for r in rows {
        writeln!(f, "{r}")?;
    }
    Ok(())
}

#[derive(Serialize)]
struct Period {
    start: i64,
    end: i64,
}

#[derive(Serialize)]
struct Line {
    id: String,
    object: &'static str,
    amount: i64,
    currency: &'static str,
    description: String,
    period: Period,
    quantity: i64,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Lines {
    object: &'static str,
    data: Vec<Line>,
    has_more: bool,
    total_count: usize,
}

#[derive(Serialize)]
struct Amount {
    amount: i64,
}

#[derive(Serialize)]
struct Invoice {
    id: String,
    object: &'static str,
    account_name: &'static str,
    number: String,
    status: &'static str,
    currency: &'static str,
    period_start: i64,
    period_end: i64,
    subtotal: i64,
    tax: i64,
    total: i64,
    amount_due: i64,
    starting_balance: i64,
    total_discount_amounts: Vec<Amount>,
    lines: Lines,
}

#[derive(Serialize)]
struct List {
    object: &'static str,
    data: Vec<Invoice>,
    has_more: bool,
}

/// Cents of a line: the invoice rounds each line (half away from zero).
fn cents(d: Decimal) -> i64 {
    let c = (d * Decimal::ONE_HUNDRED)
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    c.try_into().expect("a month's charge fits i64 cents")
}

/// Writes `invoices.json`: a Stripe list page, one invoice per month the cost report has, with
/// a usage line and a code-execution line, 8% tax, and (on the first) a 10% discount.
pub(super) fn write_invoices(a: &SynthOptions, charges: &MonthCharges) -> Result<usize> {
    let mut data = Vec::new();
    for (n, (month, [usage, code])) in charges.iter().enumerate() {
        let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")?;
        let next = first
            .checked_add_months(Months::new(1))
            .context("month after")?;
        let (ps, pe) = (day_start(first).timestamp(), day_start(next).timestamp());
        let line = |i: usize, amount: i64, what: &str| Line {
            id: format!("il_synth{}{month}{i}", a.seed),
            object: "line_item",
            amount,
            currency: "usd",
            description: format!("{what} - {month}"),
            period: Period { start: ps, end: pe },
            quantity: 1,
            kind: "invoiceitem",
        };
        let lines = vec![
            line(1, cents(*usage), "Claude API usage"),
            line(2, cents(*code), "Code execution"),
        ];
        let subtotal: i64 = lines.iter().map(|l| l.amount).sum();
        let discount = if n == 0 { subtotal / 10 } else { 0 };
        let tax = (subtotal - discount) * 8 / 100;
        let total = subtotal - discount + tax;
        data.push(Invoice {
            id: format!("in_synth{}{}", a.seed, month.replace('-', "")),
            object: "invoice",
            account_name: "Anthropic, PBC",
            number: format!("SYN-{}-{}", a.seed, month),
            status: "paid",
            currency: "usd",
            period_start: ps,
            period_end: pe,
            subtotal,
            tax,
            total,
            amount_due: total,
            starting_balance: 0,
            total_discount_amounts: vec![Amount { amount: discount }],
            lines: Lines {
                object: "list",
                total_count: lines.len(),
                data: lines,
                has_more: false,
            },
        });
    }
    let n = data.len();
    write_json(
        &a.out.join("invoices.json"),
        &List {
            object: "list",
            data,
            has_more: false,
        },
    )?;
    Ok(n)
}
