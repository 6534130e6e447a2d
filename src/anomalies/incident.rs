//! Incidents: the findings that share a cause, as one thing a person reads, with its running
//! cost to date.
//!
//! A leaked key shows up as a new key on its first day, then as a spike of its workspace,
//! its model and the organisation on every day it keeps spending; those are one incident, and
//! what it cost is the key's spend over its days, not the first day's excess. The rules:
//! - a key's own findings (new key, spike, burst, new model, reactivation), less than
//!   [`super::ONGOING_DAYS`] apart, are one incident caused by the key;
//! - a workspace finding whose driver is a key joins that key's incident (or starts one caused
//!   by the key); a model or organisation finding joins the incident its driving workspace's
//!   finding joined that day; anything else is an incident of its own scope;
//! - a limit's stages (projected to 90 %, 90 % spent, reached) are one incident per scope and month;
//! - a rate limit's findings (one class and limit, organisation or workspace), less than
//!   [`super::ONGOING_DAYS`] apart, are one incident; it alerts again once a minute passed the
//!   limit itself (not only the threshold);
//! - running cost: the cause's spend over the incident's days (first to last, every day
//!   included; a limit incident: the month to date at its latest crossing);
//! - an incident alerts when one of its findings alerts; it alerts again, as an update, each
//!   time its running cost reaches another `regrow_factor` multiple of its first day's cost.
//!
//! Must not: detect (it groups [`super::Row`]s), read the lake, or round.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;

use super::detect::{Kind, Scope, Series};
use super::{ONGOING_DAYS, Row};
use crate::money::Money;

/// One cause and everything found about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// Stable while the cause and first day are: blake3 of (scope, id, first day).
    pub id: String,
    pub scope: Scope,
    pub scope_id: String,
    pub scope_name: String,
    /// The kinds of its findings, each once, in order.
    pub kinds: Vec<Kind>,
    pub first: NaiveDate,
    pub last: NaiveDate,
    /// The cause's spend over `first..=last` (a limit: month to date at `last`).
    pub running_usd: Money,
    /// The cause's spend on `first`: what growth is measured against.
    pub first_day_usd: Money,
    /// The ids of its findings ([`Row::id`]).
    pub members: Vec<String>,
    /// One of its findings alerts.
    pub alert: bool,
    /// The finding that alerts (acknowledging it, `tokenledger anomalies ack ID`, quiets the
    /// incident).
    pub alerting: Option<String>,
    /// `ongoing` when its last day is the last day of the data, else `ended`.
    pub status: &'static str,
    /// How many `regrow_factor` multiples of its first day's cost the running cost reached.
    pub level: u32,
    pub sentence: String,
}

/// Groups `rows` (every finding, alerting or not, of every day) into incidents. `series` are
/// the daily series the findings came from; `data_end` the last day of the data.
pub fn incidents(
    rows: &[Row],
    series: &BTreeMap<(Scope, String), Series>,
    data_end: Option<NaiveDate>,
    regrow_factor: Decimal,
) -> Vec<Incident> {
    let mut b = Builder::default();
    // Key names → ids, for workspace findings whose driver is a key's name.
    // (A key with no name in the lists is named by its id.)
    let key_of: BTreeMap<&str, &str> = series
        .iter()
        .filter(|((s, _), _)| *s == Scope::ApiKey)
        .flat_map(|((_, id), s)| {
            let id = id.as_str();
            [Some((id, id)), s.name.as_deref().map(|n| (n, id))]
        })
        .flatten()
        .collect();
    // Spend anomalies only: limits and rate limits make incidents of their own.
    let spend = |r: &&Row| !matches!(r.finding.kind, Kind::Limit | Kind::RateLimit);
    let by = |scope: Scope| rows.iter().filter(move |r| r.finding.scope == scope);
    for r in by(Scope::ApiKey).filter(spend) {
        b.join((Scope::ApiKey, r.finding.scope_id.clone()), r);
    }
    // Which incident a workspace (by name) joined on a day.
    let mut ws_day: BTreeMap<(String, NaiveDate), usize> = BTreeMap::new();
    for r in by(Scope::Workspace).filter(spend) {
        let f = &r.finding;
        let cause = match f.driver.as_deref().and_then(|d| key_of.get(d)) {
            Some(key) => (Scope::ApiKey, (*key).to_string()),
            None => (Scope::Workspace, f.scope_id.clone()),
        };
        let i = b.join(cause, r);
        if let Some(n) = &f.scope_name {
            ws_day.insert((n.clone(), f.date), i);
        }
    }
    for r in rows
        .iter()
        .filter(|r| matches!(r.finding.scope, Scope::Model | Scope::Org) && spend(r))
    {
        let f = &r.finding;
        match f
            .driver
            .as_ref()
            .and_then(|d| ws_day.get(&(d.clone(), f.date)))
        {
            Some(&i) => b.add(i, r),
            None => {
                b.join((f.scope, f.scope_id.clone()), r);
            }
        }
    }
    let mut out: Vec<Incident> = b
        .groups
        .into_iter()
        .map(|g| finish(g, rows, series, data_end, regrow_factor))
        .collect();
    out.extend(limit_incidents(rows));
    out.extend(rate_incidents(rows, data_end));
    out.sort_by(|a, b| (a.first, &a.scope_id).cmp(&(b.first, &b.scope_id)));
    out
}

/// Findings grouped by cause, in runs less than [`ONGOING_DAYS`] apart.
#[derive(Default)]
struct Builder {
    groups: Vec<Group>,
    /// cause → indexes of its groups.
    of: BTreeMap<(Scope, String), Vec<usize>>,
}

struct Group {
    cause: (Scope, String),
    first: NaiveDate,
    last: NaiveDate,
    rows: Vec<String>,
    kinds: Vec<Kind>,
    alert: bool,
    alerting: Option<String>,
}

impl Builder {
    /// Adds `r` to the group of its cause that it is within [`ONGOING_DAYS`] of, or starts
    /// one; the group's index. (Findings come scope by scope, each scope by date, so a key's
    /// October group exists when its workspace's September finding arrives.)
    fn join(&mut self, cause: (Scope, String), r: &Row) -> usize {
        let d = r.finding.date;
        let near = |g: &Group| {
            (d - g.last).num_days() <= ONGOING_DAYS && (g.first - d).num_days() <= ONGOING_DAYS
        };
        if let Some(&i) = self
            .of
            .get(&cause)
            .and_then(|v| v.iter().find(|&&i| near(&self.groups[i])))
        {
            self.add(i, r);
            return i;
        }
        self.groups.push(Group {
            cause: cause.clone(),
            first: d,
            last: d,
            rows: Vec::new(),
            kinds: Vec::new(),
            alert: false,
            alerting: None,
        });
        let i = self.groups.len() - 1;
        self.of.entry(cause).or_default().push(i);
        self.add(i, r);
        i
    }
    fn add(&mut self, i: usize, r: &Row) {
        let g = &mut self.groups[i];
        g.first = g.first.min(r.finding.date);
        g.last = g.last.max(r.finding.date);
        g.rows.push(r.id.clone());
        if !g.kinds.contains(&r.finding.kind) {
            g.kinds.push(r.finding.kind);
        }
        g.alert |= r.alert;
        if r.alert && g.alerting.is_none() {
            g.alerting = Some(r.id.clone());
        }
    }
}

fn finish(
    g: Group,
    rows: &[Row],
    series: &BTreeMap<(Scope, String), Series>,
    data_end: Option<NaiveDate>,
    factor: Decimal,
) -> Incident {
    let s = series.get(&g.cause);
    let spend = |from: NaiveDate, to: NaiveDate| {
        Money::from_units(
            s.map(|s| s.days.range(from..=to).map(|(_, m)| m.units()).sum())
                .unwrap_or(0),
        )
    };
    let running = spend(g.first, g.last);
    let first_day = spend(g.first, g.first);
    let name = s
        .and_then(|s| s.name.clone())
        .or_else(|| {
            rows.iter()
                .find(|r| r.finding.scope_id == g.cause.1)
                .and_then(|r| r.finding.scope_name.clone())
        })
        .unwrap_or_else(|| g.cause.1.clone());
    let status = if Some(g.last) >= data_end {
        "ongoing"
    } else {
        "ended"
    };
    let (scope, scope_id) = g.cause;
    let days = (g.last - g.first).num_days() + 1;
    let what = g
        .kinds
        .iter()
        .map(|k| k.as_str().replace('_', " "))
        .collect::<Vec<_>>()
        .join(", ");
    let who = match scope {
        Scope::ApiKey => format!("key {name}"),
        Scope::Workspace => format!("workspace {name}"),
        Scope::Model => format!("model {name}"),
        Scope::Org => "the organisation".to_string(),
    };
    let sentence = format!(
        "{who}: {what}; ${} over {days} day(s) {} to {} ({status}, {} finding(s))",
        running.usd(),
        g.first,
        g.last,
        g.rows.len()
    );
    Incident {
        id: incident_id(scope, &scope_id, g.first),
        scope,
        scope_id,
        scope_name: name,
        kinds: g.kinds,
        first: g.first,
        last: g.last,
        running_usd: running,
        first_day_usd: first_day,
        members: g.rows,
        alert: g.alert,
        alerting: g.alerting,
        status,
        level: level(first_day, running, factor),
        sentence,
    }
}

/// One incident per scope and month of limit crossings: the month to date at the latest.
fn limit_incidents(rows: &[Row]) -> Vec<Incident> {
    let mut by: BTreeMap<(Scope, String, i32, u32), Vec<&Row>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.finding.kind == Kind::Limit) {
        let f = &r.finding;
        by.entry((f.scope, f.scope_id.clone(), f.date.year(), f.date.month()))
            .or_default()
            .push(r);
    }
    by.into_iter()
        .map(|((scope, scope_id, ..), rs)| {
            let (first, last) = (rs[0], rs[rs.len() - 1]);
            let name = last
                .finding
                .scope_name
                .clone()
                .unwrap_or_else(|| scope_id.clone());
            Incident {
                id: incident_id(scope, &scope_id, first.finding.date),
                scope,
                scope_id,
                scope_name: name,
                kinds: vec![Kind::Limit],
                first: first.finding.date,
                last: last.finding.date,
                running_usd: last.finding.actual_usd,
                first_day_usd: first.finding.actual_usd,
                members: rs.iter().map(|r| r.id.clone()).collect(),
                alert: rs.iter().any(|r| r.alert),
                alerting: rs.iter().find(|r| r.alert).map(|r| r.id.clone()),
                status: "month to date",
                // Each stage (projected to 90 %, 90 % spent, reached) is news of its own.
                level: rs.len() as u32 - 1,
                sentence: last.finding.sentence.clone(),
            }
        })
        .collect()
}

/// One incident per class and limit (of the organisation or a workspace) and run of days less
/// than [`ONGOING_DAYS`] apart: the busiest minute's finding says it.
fn rate_incidents(rows: &[Row], data_end: Option<NaiveDate>) -> Vec<Incident> {
    let mut by: BTreeMap<(Scope, String, Option<String>), Vec<&Row>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.finding.kind == Kind::RateLimit) {
        let f = &r.finding;
        by.entry((f.scope, f.scope_id.clone(), f.driver.clone()))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for ((scope, scope_id, _), rs) in by {
        let mut runs: Vec<Vec<&Row>> = Vec::new();
        for r in rs {
            match runs.last_mut() {
                Some(run)
                    if (r.finding.date - run[run.len() - 1].finding.date).num_days()
                        < ONGOING_DAYS =>
                {
                    run.push(r)
                }
                _ => runs.push(vec![r]),
            }
        }
        for run in runs {
            let (first, last) = (run[0], run[run.len() - 1]);
            let worst = run
                .iter()
                .max_by(|a, b| a.finding.score.total_cmp(&b.finding.score))
                .unwrap_or(&last);
            out.push(Incident {
                id: incident_id(
                    scope,
                    &format!("{scope_id}|{:?}", first.finding.driver),
                    first.finding.date,
                ),
                scope,
                scope_name: last
                    .finding
                    .scope_name
                    .clone()
                    .unwrap_or_else(|| scope_id.clone()),
                scope_id: scope_id.clone(),
                kinds: vec![Kind::RateLimit],
                first: first.finding.date,
                last: last.finding.date,
                running_usd: Money::ZERO,
                first_day_usd: Money::ZERO,
                members: run.iter().map(|r| r.id.clone()).collect(),
                alert: run.iter().any(|r| r.alert),
                alerting: run.iter().find(|r| r.alert).map(|r| r.id.clone()),
                status: if Some(last.finding.date) == data_end {
                    "ongoing"
                } else {
                    "ended"
                },
                // Passing the limit itself is news of its own.
                level: u32::from(run.iter().any(|r| r.finding.score >= 100.0)),
                sentence: worst.finding.sentence.clone(),
            });
        }
    }
    out
}

fn incident_id(scope: Scope, id: &str, first: NaiveDate) -> String {
    let key = format!("incident|{}|{id}|{first}", scope.as_str());
    blake3::hash(key.as_bytes()).to_hex()[..12].to_string()
}

/// How many times `factor` fits between `base` and `now` (0 when it never grew that much):
/// the re-alert level of a growing amount.
pub fn level(base: Money, now: Money, factor: Decimal) -> u32 {
    if factor <= Decimal::ONE || !base.is_positive() {
        return 0;
    }
    let (Ok(base), Ok(now)) = (base.to_decimal(), now.to_decimal()) else {
        return 0;
    };
    let mut t = base * factor;
    let mut k = 0;
    while t <= now && k < 64 {
        k += 1;
        t *= factor;
    }
    k
}
