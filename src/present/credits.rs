//! The credits ledger as table, CSV or JSON. Tables round to cents so that every column foots
//! (largest remainder) and every row cross-foots (`consumed = amount − remaining`); CSV and
//! JSON carry every amount exactly.
//!
//! Must not: compute the ledger (that is `credits`), or read the lake.

use std::fmt::Write as _;

use super::{Cell, Grid, OutputFormat, render_grid};
use crate::credits::{Finding, Ledger};
use crate::money::{self, Money};

pub const LOT_COLUMNS: [&str; 13] = [
    "provider",
    "lot_id",
    "kind",
    "purchased_at",
    "cycle_start",
    "expires_at",
    "amount_usd",
    "consumed_usd",
    "remaining_usd",
    "at_risk_usd",
    "lapsed_usd",
    "status",
    "days_to_expiry",
];

/// Columns a narrow terminal drops first.
const OPTIONAL: [&str; 6] = [
    "provider",
    "cycle_start",
    "days_to_expiry",
    "purchased_at",
    "consumed_usd",
    "kind",
];

fn date(d: Option<chrono::NaiveDate>) -> Cell {
    d.map_or(Cell::Null, |d| Cell::Text(d.to_string()))
}

/// One money column: cents (footed by largest remainder) for a table, exact otherwise.
fn column(values: &[Money], format: OutputFormat) -> (Vec<Cell>, Cell) {
    let units: Vec<i128> = values.iter().map(|m| m.units()).collect();
    let total: i128 = units.iter().sum();
    if format == OutputFormat::Table {
        let c = money::allocate_cents(&units);
        (
            c.into_iter().map(|c| Cell::Dec(c, 2)).collect(),
            Cell::Dec(money::round_cents(total), 2),
        )
    } else {
        let exact = |v| Cell::Dec(v, money::SCALE as usize);
        (units.into_iter().map(exact).collect(), exact(total))
    }
}

/// One row per lot, with a footer of totals.
pub fn lots_grid(l: &Ledger, format: OutputFormat) -> Grid {
    let pick = |f: fn(&crate::credits::ledger::LotRow) -> Money| -> Vec<Money> {
        l.lots.iter().map(f).collect()
    };
    let (amount, amount_t) = column(&pick(|r| r.amount_usd), format);
    let (remaining, remaining_t) = column(&pick(|r| r.remaining_usd), format);
    let (at_risk, at_risk_t) = column(&pick(|r| r.at_risk_usd), format);
    let (lapsed, lapsed_t) = column(&pick(|r| r.lapsed_usd), format);
    let (unused, unused_t) = column(&pick(|r| r.unused_at_expiry_usd), format);
    // consumed = amount − remaining − what it held at expiry, in the cells shown, so every
    // row cross-foots.
    let minus = |a: &Cell, b: &Cell, c: &Cell| match (a, b, c) {
        (Cell::Dec(x, s), Cell::Dec(y, _), Cell::Dec(z, _)) => Cell::Dec(x - y - z, *s),
        _ => Cell::Null,
    };
    let mut g = Grid {
        columns: LOT_COLUMNS.map(String::from).to_vec(),
        rows: Vec::new(),
        footer: None,
    };
    for (i, r) in l.lots.iter().enumerate() {
        g.rows.push(vec![
            Cell::Text(r.provider.to_string()),
            Cell::Text(r.lot_id.clone()),
            Cell::Text(r.kind.as_str().into()),
            date(Some(r.purchased_at)),
            date(r.cycle_start),
            date(r.expires_at),
            amount[i].clone(),
            minus(&amount[i], &remaining[i], &unused[i]),
            remaining[i].clone(),
            at_risk[i].clone(),
            lapsed[i].clone(),
            Cell::Text(r.status.as_str().into()),
            r.days_to_expiry.map_or(Cell::Null, |d| Cell::Int(d.into())),
        ]);
    }
    let mut footer = vec![Cell::Null; LOT_COLUMNS.len()];
    footer[0] = Cell::Text("TOTAL".into());
    footer[6] = amount_t.clone();
    footer[7] = minus(&amount_t, &remaining_t, &unused_t);
    footer[8] = remaining_t;
    footer[9] = at_risk_t;
    footer[10] = lapsed_t;
    g.footer = Some(footer);
    g
}

/// A finding as one sentence (also what the mail will say).
pub fn finding_text(f: &Finding) -> String {
    match f {
        Finding::Expiring {
            provider,
            lot_id,
            expires_at,
            days_left,
            horizon_days,
            remaining_usd,
        } => format!(
            "{provider} lot {lot_id} expires on {expires_at} (in {days_left} days, within {horizon_days}) with ${} left",
            remaining_usd.usd()
        ),
        Finding::AtRisk {
            provider,
            lot_id,
            expires_at,
            at_risk_usd,
        } => format!(
            "{provider} lot {lot_id}: ${} will expire unused on {expires_at} at the current burn",
            at_risk_usd.usd()
        ),
        Finding::LowRunway {
            provider,
            runway_date,
            runway_days,
            min_days,
        } => format!(
            "{provider} credit runs out on {runway_date} ({runway_days} days, under {min_days}) at the current burn"
        ),
        Finding::BalanceMismatch {
            provider,
            as_of,
            snapshot_usd,
            computed_usd,
            difference_usd,
            lots,
        } => format!(
            "{provider} balance on {as_of}: the Console showed ${}, the ledger has ${} (difference ${}; lots: {})",
            snapshot_usd.usd(),
            computed_usd.usd(),
            difference_usd.usd(),
            if lots.is_empty() {
                "none".to_string()
            } else {
                lots.join(", ")
            }
        ),
        Finding::ReloadStorm {
            provider,
            day,
            reloads,
            amount_usd,
        } => format!(
            "{provider}: {reloads} auto-reloads on {day} (${}): a runaway key or a threshold set too low?",
            amount_usd.usd()
        ),
        Finding::NoUsageData {
            provider,
            balance_usd,
        } => format!(
            "{provider}: ${} of credit, but no {provider} usage in the lake: burn, runway and \
             at-risk amounts are unknown (ingest its usage exports)",
            balance_usd.usd()
        ),
        Finding::Lapsed {
            provider,
            lot_id,
            expired_at,
            lapsed_usd,
        } => format!(
            "{provider} lot {lot_id}: ${} expired unused on {expired_at} (lapsed; it is gone)",
            lapsed_usd.usd()
        ),
    }
}

/// The whole ledger: JSON as it is; CSV the lots, exactly; a table with the positions,
/// assertions, reloads, advice and findings under it.
pub fn credits_text(
    l: &Ledger,
    unpriced_rows: i128,
    format: OutputFormat,
    width: Option<usize>,
) -> Result<String, serde_json::Error> {
    match format {
        OutputFormat::Json => Ok(serde_json::to_string_pretty(l)? + "\n"),
        OutputFormat::Csv => Ok(render_grid(&lots_grid(l, format), format, None, &[])),
        OutputFormat::Table => Ok(credits_table(l, unpriced_rows, width)),
    }
}

fn credits_table(l: &Ledger, unpriced_rows: i128, width: Option<usize>) -> String {
    let mut out = format!(
        "credits as of {} (UTC days; the rules: tokenledger credits --help)\n\n",
        l.as_of
    );
    if l.lots.is_empty() {
        out.push_str("no credit lots ingested: ingest a credits CSV (lot_id,provider,kind,purchased_at,amount_usd,expires_at)\n");
    } else {
        out.push_str(&render_grid(
            &lots_grid(l, OutputFormat::Table),
            OutputFormat::Table,
            width,
            &OPTIONAL,
        ));
    }
    out.push_str(&super::wrap_prose(&positions_text(l), width));
    if unpriced_rows > 0 {
        let _ = writeln!(
            out,
            "{unpriced_rows} usage row(s) have no list price: they consume no credit here (exit code 3)"
        );
    }
    out.push_str(&super::wrap_prose(&checks_text(l), width));
    if !l.findings.is_empty() {
        let _ = writeln!(out, "\n{} finding(s) (exit code 3):", l.findings.len());
        for f in &l.findings {
            let _ = writeln!(out, "  - {}", finding_text(f));
        }
    }
    out
}

/// Each provider's balance, burn, runway and uncovered usage.
fn positions_text(l: &Ledger) -> String {
    let mut out = String::new();
    for p in &l.positions {
        let unmeasured = l
            .findings
            .iter()
            .any(|f| matches!(f, Finding::NoUsageData { provider, .. } if *provider == p.provider));
        if unmeasured {
            let _ = writeln!(
                out,
                "\n{}: balance ${}; burn, runway and at-risk amounts unknown: no {} usage in the lake",
                p.provider,
                p.balance_usd.usd(),
                p.provider
            );
            continue;
        }
        let runway = match (p.runway_date, p.runway_days) {
            (Some(d), Some(n)) => format!("{d} ({n} days)"),
            _ if p.burn_per_day_usd.is_positive() => "beyond 3 years".into(),
            _ => "none (no burn)".into(),
        };
        let usd = |m: crate::money::Money| m.usd();
        let _ = writeln!(
            out,
            "\n{}: balance ${}, burn ${}/day (30 days to {}), runway {runway}; usage no lot covered ${} (last 30 days ${})",
            p.provider,
            usd(p.balance_usd),
            usd(p.burn_per_day_usd),
            p.burn_through,
            usd(p.uncovered_usd),
            usd(p.uncovered_last_30d_usd),
        );
        if p.estimated_days > 0 {
            let _ = writeln!(
                out,
                "  {} usage data ends {}: the {} day(s) to {} are estimated at that burn, not zero; balance, runway and at-risk amounts are estimates until the exports catch up",
                p.provider, p.burn_through, p.estimated_days, l.as_of
            );
        }
    }
    out
}

/// Balance assertions, reloads per week and auto-reload advice.
fn checks_text(l: &Ledger) -> String {
    let mut out = String::new();
    for a in &l.assertions {
        let verdict = if a.holds { "holds" } else { "FAILS" };
        let _ = writeln!(
            out,
            "balance assertion {} {}: Console ${}, ledger ${}, difference ${}: {verdict}",
            a.provider,
            a.as_of,
            a.snapshot_usd.usd(),
            a.computed_usd.usd(),
            a.difference_usd.usd()
        );
    }
    for r in &l.reloads {
        let _ = writeln!(
            out,
            "auto-reloads {} week of {}: {} for ${}",
            r.provider,
            r.week_start,
            r.reloads,
            r.amount_usd.usd()
        );
    }
    for a in &l.advice {
        let _ = writeln!(
            out,
            "auto-reload advice {}: threshold at least ${} (48 h of burn), top-up ${}–${} (1–2 weeks)",
            a.provider,
            a.threshold_min_usd.usd(),
            a.top_up_min_usd.usd(),
            a.top_up_max_usd.usd()
        );
        for v in &a.verdict {
            let _ = writeln!(out, "  configured: {v}");
        }
    }
    out
}
