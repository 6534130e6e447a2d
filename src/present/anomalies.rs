//! Anomaly findings as table, CSV or JSON: stable columns; money to the cent in tables, exact
//! in CSV and JSON; scores and percentages are statistics, shown as such (never money).
//!
//! Must not: detect, alert or read the lake; it renders what `anomalies` returned.

use super::{Cell, Grid, OutputFormat, money_cell as usd, render_grid};
use crate::anomalies::Row;

pub const COLUMNS: [&str; 17] = [
    "id",
    "date",
    "scope",
    "scope_id",
    "scope_name",
    "api_key_id",
    "kind",
    "actual_usd",
    "expected_usd",
    "impact_usd",
    "impact_pct",
    "score",
    "severity",
    "driver",
    "alert",
    "acked",
    "sentence",
];

/// Dropped first on a narrow terminal.
const OPTIONAL: [&str; 11] = [
    "scope_id",
    "api_key_id",
    "id",
    "impact_pct",
    "score",
    "driver",
    "acked",
    "expected_usd",
    "actual_usd",
    "scope",
    "severity",
];

fn text(s: &Option<String>) -> Cell {
    s.as_ref().map_or(Cell::Null, |s| Cell::Text(s.clone()))
}

pub fn anomalies_grid(rows: &[Row], format: OutputFormat) -> Grid {
    let mut g = Grid {
        columns: COLUMNS.map(String::from).to_vec(),
        rows: Vec::new(),
        footer: None,
    };
    for r in rows {
        let f = &r.finding;
        g.rows.push(vec![
            Cell::Text(r.id.clone()),
            Cell::Text(f.date.to_string()),
            Cell::Text(f.scope.as_str().into()),
            Cell::Text(f.scope_id.clone()),
            text(&f.scope_name),
            text(&f.api_key_id),
            Cell::Text(f.kind.as_str().into()),
            usd(f.actual_usd, format),
            usd(f.expected_usd, format),
            usd(f.impact_usd, format),
            f.impact_pct
                .map_or(Cell::Null, |p| Cell::Text(format!("{p:.1}"))),
            Cell::Text(format!("{:.1}", f.score)),
            Cell::Text(f.severity.as_str().into()),
            text(&f.driver),
            Cell::Text(if r.alert { "yes" } else { "no" }.into()),
            text(&r.acked),
            Cell::Text(f.sentence.clone()),
        ]);
    }
    g
}

pub fn anomalies_text(
    rows: &[Row],
    format: OutputFormat,
    width: Option<usize>,
) -> Result<String, serde_json::Error> {
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(rows)? + "\n",
        OutputFormat::Csv => render_grid(&anomalies_grid(rows, format), format, None, &[]),
        OutputFormat::Table if rows.is_empty() => "no anomalies in that span\n".into(),
        OutputFormat::Table => {
            let alerts = rows.iter().filter(|r| r.alert).count();
            let mut out = format!(
                "{} finding(s), {alerts} alert(s) (exit code 3 when any alerts)\n",
                rows.len()
            );
            out.push_str(&render_grid(
                &anomalies_grid(rows, format),
                format,
                width,
                &OPTIONAL,
            ));
            out
        }
    })
}

/// Incidents as table, CSV or JSON: one line per cause with its running cost.
pub fn incidents_text(
    incidents: &[crate::anomalies::Incident],
    format: OutputFormat,
    width: Option<usize>,
) -> Result<String, serde_json::Error> {
    if format == OutputFormat::Json {
        return Ok(serde_json::to_string_pretty(incidents)? + "\n");
    }
    if format == OutputFormat::Table && incidents.is_empty() {
        return Ok("no incidents in that span\n".into());
    }
    let mut g = Grid {
        columns: [
            "id",
            "first",
            "last",
            "scope",
            "scope_name",
            "kinds",
            "running_usd",
            "findings",
            "status",
            "alert",
            "sentence",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
        footer: None,
    };
    for i in incidents {
        let kinds: Vec<&str> = i.kinds.iter().map(|k| k.as_str()).collect();
        g.rows.push(vec![
            Cell::Text(i.id.clone()),
            Cell::Text(i.first.to_string()),
            Cell::Text(i.last.to_string()),
            Cell::Text(i.scope.as_str().into()),
            Cell::Text(i.scope_name.clone()),
            Cell::Text(kinds.join(",")),
            // A rate limit is not money: no running cost.
            if i.kinds == [crate::anomalies::Kind::RateLimit] {
                Cell::Null
            } else {
                usd(i.running_usd, format)
            },
            Cell::Int(i.members.len() as i128),
            Cell::Text(i.status.into()),
            Cell::Text(if i.alert { "yes" } else { "no" }.into()),
            Cell::Text(i.sentence.clone()),
        ]);
    }
    let mut out = String::new();
    if format == OutputFormat::Table {
        let alerts = incidents.iter().filter(|i| i.alert).count();
        out.push_str(&format!(
            "{} incident(s), {alerts} alerting (exit code 3 when any alerts)\n",
            incidents.len()
        ));
    }
    out.push_str(&render_grid(
        &g,
        format,
        width,
        &["id", "scope", "findings", "sentence"],
    ));
    Ok(out)
}
