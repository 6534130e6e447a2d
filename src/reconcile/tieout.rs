//! The three-way tie-out of one invoice: our list cost for the invoice period → the provider's
//! cost report → the invoice's charges → subtotal → total → amount due, each step broken into
//! known parts and an unexplained rest.
//!
//! Owns: the ladder, its tolerance and its rounding (every rounded part foots to the rounded
//! subtotal below it). Must not: read the lake (it takes the period's [`Reconciliation`]s and
//! the invoice) or render.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{DayParts, Part, Reconciliation};
use crate::model::Invoice;
use crate::money::{self, Money};

/// A row of the ladder: a subtotal, or a part that leads to the next subtotal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    Subtotal,
    Known,
    Unexplained,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub step: &'static str,
    pub kind: RowKind,
    /// Exact (parts from the cost report and usage carry 12 digits; invoice figures are cents).
    pub amount_usd: Money,
    /// Rounded to the cent so that each subtotal = the subtotal above + the parts between.
    pub amount_cents: i128,
}

#[derive(Debug, Clone, Serialize)]
pub struct TieOut {
    pub provider: crate::vocab::Provider,
    pub invoice_number: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub rows: Vec<Row>,
    /// Σ of the unexplained rows.
    pub unexplained_usd: Money,
    pub tolerance_usd: Money,
    pub needs_review: bool,
    pub notes: Vec<String>,
}

/// The UTC days an invoice bills: `[start, end)`, by bucket start.
pub fn period_days(inv: &Invoice) -> Vec<NaiveDate> {
    let first = inv.period_start.date_naive();
    first
        .iter_days()
        .take_while(|d| crate::model::day_start(*d) < inv.period_end)
        .collect()
}

fn m(d: rust_decimal::Decimal) -> Money {
    Money::from_decimal(d).expect("invoice amounts fit the lake's scale")
}

/// Builds the rows of one step: `(label, kind, exact)` parts, rounded to foot from the rounded
/// subtotal `from` to the rounded subtotal `to`.
fn step(rows: &mut Vec<Row>, parts: &[(&'static str, RowKind, Money)], from: Money, to: Money) {
    let units: Vec<i128> = parts.iter().map(|p| p.2.units()).collect();
    let target = to.round_cents() - from.round_cents();
    let cents = money::allocate_cents_to(&units, target);
    for ((step, kind, amount), c) in parts.iter().zip(cents) {
        rows.push(Row {
            step,
            kind: *kind,
            amount_usd: *amount,
            amount_cents: c,
        });
    }
}

fn subtotal(rows: &mut Vec<Row>, step: &'static str, amount: Money) {
    rows.push(Row {
        step,
        kind: RowKind::Subtotal,
        amount_usd: amount,
        amount_cents: amount.round_cents(),
    });
}

fn sum(v: impl IntoIterator<Item = Money>) -> Money {
    Money::sum(v).expect("period totals fit 128 bits")
}

/// The period's side of the tie-out: our list cost, the cost report, the parts between, and
/// what the lake lacks.
struct PeriodSums {
    ours: Money,
    provider: Money,
    parts: BTreeMap<Part, Money>,
    notes: Vec<String>,
}

fn period_sums(inv: &Invoice, recs: &[&Reconciliation]) -> PeriodSums {
    let days: Vec<String> = period_days(inv).iter().map(|d| d.to_string()).collect();
    let mut in_period: BTreeMap<&str, &DayParts> = BTreeMap::new();
    for r in recs {
        in_period.extend(
            r.days
                .iter()
                .filter(|((p, d), _)| *p == inv.provider && days.binary_search(d).is_ok())
                .map(|((_, d), p)| (d.as_str(), p)),
        );
    }
    let mut notes = Vec::new();
    for (i, side) in ["usage export", "cost report"].iter().enumerate() {
        let missing = days
            .iter()
            .filter(|d| {
                !recs
                    .iter()
                    .any(|r| r.covered[i].contains(&(inv.provider, (*d).clone())))
            })
            .count();
        if missing > 0 {
            notes.push(format!(
                "{missing} of the period's {} day(s) have no {side} in the lake",
                days.len()
            ));
        }
    }
    let part = |k: Part| sum(in_period.values().filter_map(|p| p.parts.get(&k).copied()));
    PeriodSums {
        ours: sum(in_period.values().map(|p| p.ours)),
        provider: sum(in_period.values().map(|p| p.provider)),
        parts: Part::ALL.iter().map(|&k| (k, part(k))).collect(),
        notes,
    }
}

fn diff(a: Money, b: Money) -> Money {
    Money::from_units(a.units() - b.units())
}

/// The invoice's own steps, from its charges to the amount due.
fn invoice_steps(rows: &mut Vec<Row>, inv: &Invoice, notes: &mut Vec<String>) -> Money {
    use RowKind::{Known, Unexplained as U};
    let credits = m(inv.credits_applied());
    let charges = if inv.lines_complete {
        sum(inv
            .lines
            .iter()
            .map(|l| m(l.amount))
            .filter(|a| a.is_positive()))
    } else {
        notes.push(
            "the invoice's lines were paged (has_more): charges are subtotal − the credits seen"
                .into(),
        );
        diff(m(inv.subtotal), credits)
    };
    let (sub, disc, tax, total, due) = (
        m(inv.subtotal),
        m(inv.discount),
        m(inv.tax),
        m(inv.total),
        m(inv.amount_due),
    );
    // Stripe applies a credit balance up to the total; a debit balance is added.
    let sb = m(inv.starting_balance);
    let applied = if total.units() + sb.units() >= 0 {
        sb
    } else {
        Money::from_units(-total.units())
    };
    subtotal(rows, "invoice charges (positive lines)", charges);
    let lines_rest = diff(sub, sum([charges, credits]));
    let to_subtotal = [
        (
            "+ credits applied on the invoice (negative lines)",
            Known,
            credits,
        ),
        ("+ unexplained: invoice lines vs subtotal", U, lines_rest),
    ];
    step(rows, &to_subtotal, charges, sub);
    subtotal(rows, "invoice subtotal", sub);
    let arithmetic = diff(
        total,
        Money::from_units(sub.units() - disc.units() + tax.units()),
    );
    let to_total = [
        ("− discounts", Known, Money::from_units(-disc.units())),
        ("+ tax", Known, tax),
        (
            "+ unexplained: invoice total ≠ subtotal − discounts + tax",
            U,
            arithmetic,
        ),
    ];
    step(rows, &to_total, sub, total);
    subtotal(rows, "invoice total", total);
    let to_due = [
        (
            "+ customer balance applied (starting balance)",
            Known,
            applied,
        ),
        (
            "+ unexplained: amount due vs total and balance",
            U,
            diff(due, sum([total, applied])),
        ),
    ];
    step(rows, &to_due, total, due);
    subtotal(rows, "amount due", due);
    charges
}

/// The step between the cost report and the invoice's charges.
const COST_REPORT_VS_INVOICE: &str = "+ unexplained: cost report vs the invoice's charges";

/// Ties `inv` out against the reconciliations of the months its period touches.
pub fn tie_out(inv: &Invoice, recs: &[&Reconciliation], tolerance: Money) -> TieOut {
    use RowKind::{Known, Unexplained as U};
    let mut p = period_sums(inv, recs);
    let mut rows = Vec::new();
    subtotal(
        &mut rows,
        "our list cost of the period (rated usage)",
        p.ours,
    );
    let parts: Vec<(&'static str, RowKind, Money)> = Part::ALL
        .iter()
        .map(|&k| {
            (
                k.label(),
                if k == Part::Unexplained { U } else { Known },
                p.parts[&k],
            )
        })
        .collect();
    step(&mut rows, &parts, p.ours, p.provider);
    subtotal(
        &mut rows,
        "the provider's cost report of the period",
        p.provider,
    );
    let mut invoice_rows = Vec::new();
    let charges = invoice_steps(&mut invoice_rows, inv, &mut p.notes);
    step(
        &mut rows,
        &[(COST_REPORT_VS_INVOICE, U, diff(charges, p.provider))],
        p.provider,
        charges,
    );
    rows.extend(invoice_rows);
    // The cost report has fractional cents and the invoice rounds each line to a cent.
    let line_tolerance = Money::from_units(5_000_000_000 * inv.lines.len().max(1) as i128);
    let limit = |r: &Row| {
        if r.step == COST_REPORT_VS_INVOICE {
            tolerance.max(line_tolerance)
        } else {
            tolerance
        }
    };
    let unexplained: Vec<&Row> = rows.iter().filter(|r| r.kind == U).collect();
    TieOut {
        provider: inv.provider,
        invoice_number: inv.number.clone(),
        period_start: inv.period_start,
        period_end: inv.period_end,
        unexplained_usd: sum(unexplained.iter().map(|r| r.amount_usd)),
        needs_review: unexplained.iter().any(|r| r.amount_usd.abs() > limit(r)),
        tolerance_usd: tolerance,
        notes: p.notes,
        rows,
    }
}
