//! `tokenledger limits` as table, CSV or JSON: the rate-limit headroom of the recent window
//! (one line per class × organisation or workspace × limit) and where each monthly limit and
//! spend cap stands (dollars rounded to cents here, in the table only).

use std::fmt::Write as _;

use crate::grid::{Cell, Grid};
use crate::limits::headroom::{Group, Stat, thousands};
use crate::present::{OutputFormat, render_grid, wrap_prose};
use crate::run::Limits;

fn count(v: Option<u64>) -> Cell {
    v.map_or(Cell::Null, |v| Cell::Int(i128::from(v)))
}

/// A peak: in a table, a lower bound reads `≥ N` (CSV and JSON keep it in a column of its own).
fn peak(s: &Stat, table: bool) -> Cell {
    match (s.peak, s.lower_bound) {
        (None, Some(lb)) if table => Cell::Text(format!("≥ {}", thousands(lb))),
        (p, _) => count(p),
    }
}

fn line(g: &Group, s: &Stat, table: bool) -> Vec<Cell> {
    let who = match (&g.workspace_name, &g.workspace_id) {
        (Some(n), _) | (None, Some(n)) => n.clone(),
        _ => "(organisation)".into(),
    };
    let busiest = g.busiest_hour.as_ref().map_or(Cell::Null, |b| {
        Cell::Text(format!("{} {:02}:00", b.weekday, b.hour))
    });
    vec![
        Cell::Text(g.provider.as_str().into()),
        Cell::Text(g.class.clone()),
        Cell::Text(who),
        Cell::Text(s.metric.as_str().into()),
        peak(s, table),
        s.peak_at.map_or(Cell::Null, |t| {
            Cell::Text(t.format("%Y-%m-%d %H:%M").to_string())
        }),
        count(s.p99),
        count(s.lower_bound),
        count(s.limit),
        Cell::Text(g.limits_from.into()),
        match s.pct() {
            Some(p) if table && s.peak.is_none() => Cell::Text(format!("≥ {p:.1}")),
            Some(p) => Cell::Dec((p * 10.0).round() as i128, 1),
            None => Cell::Null,
        },
        busiest,
    ]
}

/// In a table, a workspace's lines only where its class has a limit (the organisation's line
/// already says "no limit known"); CSV and JSON have every line.
fn headroom_grid(l: &Limits, table: bool) -> Grid {
    let mut g = Grid {
        columns: [
            "provider",
            "class",
            "workspace",
            "limit",
            "peak_minute",
            "peak_at_utc",
            "p99_minute",
            "hourly_lower_bound",
            "per_minute_limit",
            "limit_of",
            "pct_of_limit",
            "busiest_hour",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
        footer: None,
    };
    for grp in l.headroom.iter().flat_map(|h| &h.groups) {
        for s in &grp.stats {
            // Requests nobody counted say nothing.
            if (s.peak.is_none() && s.lower_bound.is_none())
                || (table && grp.workspace_id.is_some() && grp.limits_from == "none")
            {
                continue;
            }
            g.rows.push(line(grp, s, table));
        }
    }
    g
}

fn spend_grid(l: &Limits, format: OutputFormat) -> Grid {
    let usd = |m| crate::present::money_cell(m, format);
    let day = |d: Option<chrono::NaiveDate>| d.map_or(Cell::Null, |d| Cell::Text(d.to_string()));
    let mut g = Grid {
        columns: [
            "name",
            "kind",
            "as_of",
            "spent_usd",
            "limit_usd",
            "burn_usd_a_day",
            "month_end_usd",
            "reached_around",
            "earliest",
            "latest",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
        footer: None,
    };
    for s in &l.spend {
        g.rows.push(vec![
            Cell::Text(s.name.clone()),
            Cell::Text(s.kind.into()),
            Cell::Text(s.as_of.to_string()),
            usd(s.month_to_date_usd),
            usd(s.limit_usd),
            usd(s.burn_usd.0),
            usd(s.projected_month_end_usd),
            day(s.reached_around),
            day(s.range.0),
            day(s.range.1),
        ]);
    }
    g
}

/// The whole `limits` output. CSV is the headroom lines only (one table per file); JSON has
/// everything.
pub fn limits_text(
    l: &Limits,
    format: OutputFormat,
    width: Option<usize>,
) -> Result<String, serde_json::Error> {
    match format {
        OutputFormat::Json => return Ok(serde_json::to_string_pretty(l)? + "\n"),
        OutputFormat::Csv => return Ok(render_grid(&headroom_grid(l, false), format, width, &[])),
        OutputFormat::Table => {}
    }
    let Some(h) = &l.headroom else {
        return Ok("no usage in the lake: no rate-limit headroom to show\n".into());
    };
    // Prose is wrapped to the terminal; the tables fit themselves.
    let mut head = String::new();
    let _ = writeln!(
        head,
        "Rate-limit headroom, {} – {} UTC (a finding at {}% of a limit):",
        h.from.format("%Y-%m-%d %H:%M"),
        h.to.format("%Y-%m-%d %H:%M"),
        h.threshold_pct
    );
    for (p, src) in &h.sources {
        let _ = writeln!(head, "{p} limits: {src}");
    }
    let mut out = wrap_prose(&head, width);
    out.push_str(&render_grid(
        &headroom_grid(l, true),
        format,
        width,
        &[
            "hourly_lower_bound",
            "limit_of",
            "provider",
            "busiest_hour",
            "p99_minute",
        ],
    ));
    let mut prose = String::new();
    if h.passing.is_empty() {
        prose.push_str("No minute reached the threshold.\n");
    }
    for p in &h.passing {
        let _ = writeln!(prose, "NEAR LIMIT {}", p.sentence);
    }
    for n in &h.notes {
        let _ = writeln!(prose, "note: {n}");
    }
    out.push_str(&wrap_prose(&prose, width));
    if !l.spend.is_empty() {
        out.push_str(&wrap_prose(
            "\nMonthly limits and spend caps (spent: the month to date; burn: the median of the \
             last 7 days; month end: spent + burn × the days left):\n",
            width,
        ));
        out.push_str(&render_grid(
            &spend_grid(l, format),
            format,
            width,
            &["kind", "earliest", "latest", "as_of"],
        ));
    }
    Ok(out)
}
