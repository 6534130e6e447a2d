//! The three-way tie-out of an invoice as a ladder: each subtotal, then the parts that lead to
//! the next. Rounded cents foot: every subtotal = the subtotal above + the parts between.
//!
//! Must not: compute the tie-out (that is `reconcile::tieout`), or read the lake.

use super::{Cell, Grid, OutputFormat, render_grid};
use crate::money;
use crate::reconcile::tieout::{RowKind, TieOut};

pub const COLUMNS: [&str; 5] = [
    "invoice_number",
    "step",
    "kind",
    "amount_usd",
    "amount_usd_exact",
];

/// One row per ladder row of every tie-out.
pub fn tie_outs_grid(ties: &[TieOut]) -> Grid {
    let mut g = Grid {
        columns: COLUMNS.map(String::from).to_vec(),
        rows: Vec::new(),
        footer: None,
    };
    for t in ties {
        for r in &t.rows {
            let kind = match r.kind {
                RowKind::Subtotal => "subtotal",
                RowKind::Known => "known",
                RowKind::Unexplained => "unexplained",
            };
            g.rows.push(vec![
                Cell::Text(t.invoice_number.clone()),
                Cell::Text(r.step.into()),
                Cell::Text(kind.into()),
                Cell::Dec(r.amount_cents, 2),
                Cell::Dec(r.amount_usd.units(), money::SCALE as usize),
            ]);
        }
    }
    g
}

/// The tie-out section of `reconcile` as a table.
pub fn tie_outs_text(ties: &[TieOut], width: Option<usize>) -> String {
    let mut out = String::new();
    for t in ties {
        let verdict = if t.needs_review {
            format!(
                "DOES NOT TIE OUT: ${} unexplained (exit code 3)",
                t.unexplained_usd.usd()
            )
        } else {
            "ties out".to_string()
        };
        out.push_str(&format!(
            "\ninvoice {} ({}, {} .. {}): {verdict}\n",
            t.invoice_number,
            t.provider,
            t.period_start.format("%Y-%m-%d"),
            t.period_end.format("%Y-%m-%d"),
        ));
        let mut g = tie_outs_grid(std::slice::from_ref(t));
        // Zero parts say nothing in a table; subtotals always show.
        g.rows.retain(
            |r| !matches!((&r[2], &r[4]), (Cell::Text(k), Cell::Dec(0, _)) if k != "subtotal"),
        );
        out.push_str(&render_grid(
            &g,
            OutputFormat::Table,
            width,
            &["invoice_number", "amount_usd_exact"],
        ));
        for n in &t.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
    }
    out
}

/// `reconcile --tie-out` in `format`: JSON the typed ladders, CSV one row per step, a table
/// each ladder fitted to the terminal.
pub fn tie_outs_output(
    t: &[crate::reconcile::tieout::TieOut],
    format: super::OutputFormat,
    width: Option<usize>,
) -> Result<String, serde_json::Error> {
    use super::OutputFormat;
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(t)? + "\n",
        OutputFormat::Csv => {
            // A spreadsheet reads a leading `+` or `−` as a formula (and the CSV guard would
            // show an apostrophe): every part is added with its sign, so the words suffice.
            let mut g = tie_outs_grid(t);
            for r in &mut g.rows {
                if let Cell::Text(step) = &mut r[1] {
                    *step = plain_step(step).to_string();
                }
            }
            super::render_grid(&g, format, None, &[])
        }
        OutputFormat::Table => tie_outs_text(t, width),
    })
}

/// A ladder step without its `+ ` / `− ` sign (the amount carries the sign).
pub fn plain_step(step: &str) -> &str {
    step.strip_prefix("+ ")
        .or_else(|| step.strip_prefix("− "))
        .unwrap_or(step)
}
