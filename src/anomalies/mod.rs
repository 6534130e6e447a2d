//! Anomalies: key spikes, new keys, new models on a key, reactivated keys, overnight bursts,
//! spend limits and spend caps (each explained in dollars, with the day a limit is reached), and
//! minutes near a rate limit (from `limits`); then alerting, which decides what is worth a
//! person's attention, once.
//!
//! Owns: building the daily series per API key, workspace, model and the organisation and the
//! hourly series per key from one scan of `rated_usage` (`sql/anomaly_buckets.sql`), with days
//! and hours in the business timezone; detection ([`detect`], pure); alerting (minimum impact and severity, an
//! ongoing anomaly alerts on its first day only, acknowledged findings never alert); the
//! `anomaly_acks` table. Must not: price, change usage, or round (that is `present`).

pub mod cache;
pub mod detect;
pub mod incident;
pub mod scan;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::{StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

pub use detect::{Finding, Kind, Scope, Series, Severity, Thresholds};
pub use incident::Incident;

use crate::lake::LakeError;
use crate::lake::io as lio;
use crate::lake::{Layout, Snapshot, Table, Writer};
use crate::money::Money;
use crate::query::QueryError;

pub const BUCKETS_SQL: &str = include_str!("../../sql/anomaly_buckets.sql");

#[derive(Debug, thiserror::Error)]
pub enum AnomalyError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{0} from sql/anomaly_buckets.sql is not a usable bucket start")]
    Value(String),
    #[error("no finding has id {0:?}: `tokenledger anomalies` lists the ids")]
    UnknownId(String),
}

/// What decides an alert (`[anomalies]` in the config).
#[derive(Debug, Clone)]
pub struct Policy {
    pub thresholds: Thresholds,
    /// A finding alerts only with at least this much impact (default $50).
    pub min_impact_usd: Money,
    pub min_severity: Severity,
    /// Monthly spend limits: `org`, or a workspace id or name → dollars.
    pub limits: BTreeMap<String, Money>,
    /// The business timezone: which day and hour a bucket belongs to.
    pub timezone: Tz,
    /// An incident alerts again each time its running cost reaches another multiple of this
    /// of its first day's cost (default 2).
    pub regrow_factor: rust_decimal::Decimal,
    /// The rate limits and spend caps in force (`[limits.<provider>]` over the dated table).
    pub rates: crate::limits::RateTable,
    /// The window and threshold of rate-limit headroom findings.
    pub headroom: crate::limits::Window,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            thresholds: Thresholds::default(),
            min_impact_usd: Money::from_units(50 * 10i128.pow(12)),
            min_severity: Severity::Low,
            limits: BTreeMap::new(),
            timezone: Tz::UTC,
            regrow_factor: rust_decimal::Decimal::TWO,
            rates: crate::limits::RateTable::default(),
            headroom: crate::limits::Window::default(),
        }
    }
}

impl Policy {
    /// The configured monthly limit of a series: `org`, or a workspace by id or name.
    pub fn limit_of(&self, scope: Scope, id: &str, s: &Series) -> Option<Money> {
        match scope {
            Scope::Org => self.limits.get("org"),
            Scope::Workspace => self
                .limits
                .get(id)
                .or(s.name.as_ref().and_then(|n| self.limits.get(n))),
            _ => None,
        }
        .copied()
    }
}

/// A finding with what alerting made of it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Stable: the same finding has the same id on every run (for `anomalies ack`).
    pub id: String,
    #[serde(flatten)]
    pub finding: Finding,
    pub alert: bool,
    pub acked: Option<String>,
}

/// Everything a daily pass reads.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Per scope and id.
    pub series: BTreeMap<(Scope, String), Series>,
    /// Per key: (day, hour) → cost.
    pub hours: BTreeMap<String, BTreeMap<(NaiveDate, u32), Money>>,
    pub first_day: Option<NaiveDate>,
    /// Per provider: its daily spend (for its monthly spend cap).
    pub providers: BTreeMap<crate::vocab::Provider, Series>,
    /// The rate limits passed in the recent window (`limits::headroom`).
    pub rate_limits: Vec<crate::limits::Passing>,
}

fn add(series: &mut Series, day: NaiveDate, driver: &str, cost: i128) {
    let d = series.days.entry(day).or_default();
    *d = Money::from_units(d.units() + cost);
    let e = series
        .by_driver
        .entry((day, driver.to_string()))
        .or_default();
    *e = Money::from_units(e.units() + cost);
}

/// The business day (and hour, for buckets finer than a day) a bucket belongs to: an hourly
/// or 1-minute bucket by its start in `tz`, a daily bucket by its UTC date.
pub fn local_day_hour(start_us: i64, daily: bool, tz: Tz) -> Option<(NaiveDate, Option<u32>)> {
    let utc = chrono::DateTime::from_timestamp_micros(start_us)?;
    if daily {
        return Some((utc.date_naive(), None));
    }
    let local = utc.with_timezone(&tz);
    Some((local.date_naive(), Some(local.hour())))
}

/// Reads the series of every scope from `rated_usage` (which must be current: `usage_pricing`
/// part by part beside its usage part) in one pass ([`scan`]; `sql/anomaly_buckets.sql` is the same in SQL), days and hours in
/// `tz`.
pub fn inputs(layout: &Layout, tz: Tz) -> Result<Inputs, AnomalyError> {
    let mut inp = Inputs::default();
    let t0 = std::time::Instant::now();
    let files = crate::query::table_files(layout, Table::UsagePricing)?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A part no commit changed since the last pass is read from the cache, not scanned.
    let dir = layout.internal().join("cache").join("anomalies");
    let parts = crate::par::map(&files, jobs, |f| {
        cache::part(&dir, f, &layout.usage_of(f), tz)
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    // Each part is one provider's (its partition): its days make the provider's series.
    for (f, p) in files.iter().zip(&parts) {
        let Some(provider) = Layout::provider_of(f) else {
            continue;
        };
        let e = inp.providers.entry(provider).or_default();
        e.name = Some(format!("{} spend", provider.label()));
        for (&(d, ..), &c) in &p.days {
            let v = e.days.entry(d).or_default();
            *v = Money::from_units(v.units() + c);
        }
    }
    let sums = scan::merge(parts);
    let t1 = t0.elapsed();
    let st = &sums.strings;
    let text = |c: u32| st.get(c).map(str::to_string);
    let name_of = |names: &scan::HashMap<u32, u32>, c: u32| names.get(&c).and_then(|n| text(*n));
    for (&(d, k, w, m), &c) in &sums.days {
        let m = text(m).unwrap_or_else(|| "(no model)".into());
        let wid = text(w).unwrap_or_else(|| "default".into());
        let wname = name_of(&sums.ws_names, w).unwrap_or_else(|| wid.clone());
        let kname = name_of(&sums.key_names, k);
        inp.first_day = Some(inp.first_day.map_or(d, |x| x.min(d)));
        if let Some(k) = text(k) {
            let e = inp.series.entry((Scope::ApiKey, k.clone())).or_default();
            e.name = kname.clone().or(e.name.take());
            e.api_key_id = Some(k);
            add(e, d, &m, c);
        }
        let by_key = kname.or(text(k)).unwrap_or_else(|| "(Console)".into());
        let e = inp.series.entry((Scope::Workspace, wid)).or_default();
        e.name = Some(wname.clone());
        add(e, d, &by_key, c);
        let e = inp.series.entry((Scope::Model, m.clone())).or_default();
        e.name = Some(m.clone());
        add(e, d, &wname, c);
        let e = inp.series.entry((Scope::Org, "org".into())).or_default();
        e.name = Some("organisation".into());
        add(e, d, &wname, c);
    }
    // Per key first (one name per key, not per hour), then each key's hours in order.
    type HourCells = Vec<((NaiveDate, u32), Money)>;
    let mut per_key: HashMap<u32, HourCells> = HashMap::new();
    for (&(k, d, h), &c) in &sums.hours {
        per_key
            .entry(k)
            .or_default()
            .push(((d, h), Money::from_units(c)));
    }
    for (k, mut hours) in per_key {
        hours.sort_unstable_by_key(|x| x.0);
        inp.hours
            .insert(st.values[k as usize].clone(), hours.into_iter().collect());
    }
    tracing::debug!(
        stage = "anomalies",
        "anomalies: scan {:.3} s ({} part(s), {} day cells), series {:.3} s",
        t1.as_secs_f64(),
        files.len(),
        sums.days.len(),
        (t0.elapsed() - t1).as_secs_f64()
    );
    Ok(inp)
}

/// Every finding of every scope, by date.
pub fn detect_all(inp: &Inputs, policy: &Policy) -> Vec<Finding> {
    let th = &policy.thresholds;
    let mut out = Vec::new();
    let empty = BTreeMap::new();
    for ((scope, id), s) in &inp.series {
        out.extend(detect::spikes(*scope, id, s, th));
        if *scope == Scope::ApiKey {
            if let Some(first) = inp.first_day {
                out.extend(detect::key_events(id, s, first, th));
            }
            out.extend(detect::bursts(
                id,
                s,
                inp.hours.get(id).unwrap_or(&empty),
                th,
            ));
        }
    }
    for (scope, id, s, limit, _) in monthly_limits(inp, policy) {
        out.extend(detect::limits(scope, id, s, limit, th));
    }
    out.extend(inp.rate_limits.iter().map(detect::rate_limit));
    out.sort_by(|a, b| {
        (a.date, a.scope, &a.scope_id, a.kind).cmp(&(b.date, b.scope, &b.scope_id, b.kind))
    });
    out
}

/// The stable id of a finding: what, where, when.
pub fn finding_id(f: &Finding) -> String {
    let mut key = format!(
        "{}|{}|{}|{}",
        f.kind.as_str(),
        f.scope.as_str(),
        f.scope_id,
        f.date
    );
    // One class's limit of one day (others' ids stay as they were).
    if f.kind == Kind::RateLimit {
        key.push_str(&format!("|{}", f.driver.as_deref().unwrap_or("")));
    }
    blake3::hash(key.as_bytes()).to_hex()[..12].to_string()
}

/// An anomaly that passed the thresholds within this many days before is the same anomaly
/// going on (it alerted when it began).
pub const ONGOING_DAYS: i64 = 7;

/// Alerting: impact and severity at least the policy's, not acknowledged, and not a later day
/// of an anomaly already going on (the same scope, id and kind passed within a week before).
pub fn alerting(
    findings: Vec<Finding>,
    policy: &Policy,
    acks: &BTreeMap<String, String>,
) -> Vec<Row> {
    // A limit's stage (projected, 90 %, reached) happens once a month and always matters; a
    // rate limit is not money: both pass on severity alone.
    let limit = |f: &Finding| matches!(f.kind, Kind::Limit | Kind::RateLimit);
    let passes = |f: &Finding| {
        f.severity >= policy.min_severity && (limit(f) || f.impact_usd >= policy.min_impact_usd)
    };
    // Spend anomalies of one scope are one anomaly going on whatever their kind; a rate limit
    // only with the same class and limit.
    let key = |f: &Finding| {
        let driver = (f.kind == Kind::RateLimit).then_some(f.driver.as_deref());
        (
            f.kind == Kind::RateLimit,
            f.scope,
            f.scope_id.clone(),
            driver.flatten().map(str::to_string),
        )
    };
    let passing: BTreeSet<(_, NaiveDate)> = findings
        .iter()
        .filter(|f| f.kind != Kind::Limit && passes(f))
        .map(|f| (key(f), f.date))
        .collect();
    let ongoing = |f: &Finding| {
        f.kind != Kind::Limit
            && (1..=ONGOING_DAYS)
                .any(|k| passing.contains(&(key(f), f.date - chrono::TimeDelta::days(k))))
    };
    let marks: Vec<(bool, bool)> = findings.iter().map(|f| (passes(f), ongoing(f))).collect();
    findings
        .into_iter()
        .zip(marks)
        .map(|(f, (passes, ongoing))| {
            let id = finding_id(&f);
            let acked = acks.get(&id).cloned();
            Row {
                alert: passes && !ongoing && acked.is_none(),
                acked,
                id,
                finding: f,
            }
        })
        .collect()
}

/// Every finding, with its alerting, and the inputs it came from.
fn scan_all(layout: &Snapshot, policy: &Policy) -> Result<(Vec<Row>, Inputs), AnomalyError> {
    let t = std::time::Instant::now();
    let mut inp = inputs(layout, policy.timezone)?;
    if let Some(h) =
        crate::limits::headroom(layout, &policy.rates, policy.timezone, &policy.headroom)?
    {
        inp.rate_limits = h.passing;
    }
    let read = t.elapsed();
    let rows = alerting(detect_all(&inp, policy), policy, &acks(layout)?);
    tracing::debug!(
        stage = "anomalies",
        "anomalies: read {:.3} s, detect + alert {:.3} s",
        read.as_secs_f64(),
        (t.elapsed() - read).as_secs_f64()
    );
    Ok((rows, inp))
}

/// Every finding (of every day) and the incidents they make ([`incident`]).
pub fn with_incidents(
    layout: &Snapshot,
    policy: &Policy,
) -> Result<(Vec<Row>, Vec<Incident>), AnomalyError> {
    let (rows, inp) = scan_all(layout, policy)?;
    let end = inp
        .series
        .get(&(Scope::Org, "org".to_string()))
        .and_then(|s| s.days.keys().next_back().copied());
    let incidents = incident::incidents(&rows, &inp.series, end, policy.regrow_factor);
    Ok((rows, incidents))
}

/// The anomalies of `[from, to]`, all scopes or one.
pub fn anomalies(
    layout: &Snapshot,
    policy: &Policy,
    (from, to): (Option<NaiveDate>, Option<NaiveDate>),
    scope: Option<Scope>,
) -> Result<Vec<Row>, AnomalyError> {
    let (rows, _) = scan_all(layout, policy)?;
    Ok(rows
        .into_iter()
        .filter(|r| {
            from.is_none_or(|d| r.finding.date >= d) && to.is_none_or(|d| r.finding.date <= d)
        })
        .filter(|r| scope.is_none_or(|s| r.finding.scope == s))
        .collect())
}

// ---- acknowledgements ----------------------------------------------------------------------

/// id → (note, acked_at in µs) of every acknowledged finding.
fn acks_stored(layout: &Layout) -> Result<BTreeMap<String, (String, i64)>, AnomalyError> {
    use crate::lake::batch::{str_col, ts_col};
    let mut out = BTreeMap::new();
    for b in lio::read_all(&layout.table_file(Table::AnomalyAcks))? {
        let (id, note, at) = (
            str_col(&b, "id")?,
            str_col(&b, "note")?,
            ts_col(&b, "acked_at")?,
        );
        for i in 0..b.num_rows() {
            out.insert(
                id.value(i).to_string(),
                (note.value(i).to_string(), at.value(i)),
            );
        }
    }
    Ok(out)
}

/// id → note of every acknowledged finding.
pub fn acks(layout: &Layout) -> Result<BTreeMap<String, String>, AnomalyError> {
    Ok(acks_stored(layout)?
        .into_iter()
        .map(|(k, (n, _))| (k, n))
        .collect())
}

/// Marks finding `id` as expected (the caller holds the exclusive lock): it is kept and shown
/// as acknowledged, and never alerts again. Acknowledging twice keeps the latest note.
pub fn ack(writer: &Writer, policy: &Policy, id: &str, note: &str) -> Result<Row, AnomalyError> {
    let layout: &Snapshot = writer;
    let all = anomalies(layout, policy, (None, None), None)?;
    let row = all
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| AnomalyError::UnknownId(id.into()))?;
    let mut acks = acks_stored(layout)?;
    acks.insert(
        id.to_string(),
        (note.to_string(), Utc::now().timestamp_micros()),
    );
    let ids: Vec<&str> = acks.keys().map(String::as_str).collect();
    let notes: Vec<&str> = acks.values().map(|v| v.0.as_str()).collect();
    let at: Vec<i64> = acks.values().map(|v| v.1).collect();
    let b = RecordBatch::try_new(
        crate::lake::schema::of(Table::AnomalyAcks),
        vec![
            std::sync::Arc::new(StringArray::from(ids)),
            std::sync::Arc::new(StringArray::from(notes)),
            std::sync::Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")),
        ],
    )
    .expect("anomaly_acks schema");
    writer.replace_table(Table::AnomalyAcks, &[b])?;
    Ok(Row {
        acked: Some(note.to_string()),
        alert: false,
        ..row
    })
}

/// Keys of the findings that alert, as (date, api key) pairs (for evaluations).
pub fn alerted_key_days(rows: &[Row]) -> BTreeSet<(NaiveDate, String)> {
    rows.iter()
        .filter(|r| r.alert && r.finding.scope == Scope::ApiKey)
        .map(|r| (r.finding.date, r.finding.scope_id.clone()))
        .collect()
}

// ---- where each monthly limit stands ---------------------------------------------------------

/// A monthly limit (configured, or a provider's spend cap) and where its latest month stands.
#[derive(Debug, Clone, Serialize)]
pub struct Standing {
    pub scope: Scope,
    pub scope_id: String,
    pub name: String,
    /// `limit` (configured in `[anomalies.limits]`) or `spend_cap` (the provider's tier).
    pub kind: &'static str,
    pub limit_usd: Money,
    /// The series' last day and its month to date.
    pub as_of: NaiveDate,
    pub month_to_date_usd: Money,
    /// The median, second lowest and second highest daily spend of the last 7 days.
    pub burn_usd: (Money, Money, Money),
    pub projected_month_end_usd: Money,
    /// The day the limit was reached, or is at the median burn (earliest, at the high burn;
    /// latest, at the low burn); `None`: not by month end at that pace.
    pub reached_around: Option<NaiveDate>,
    pub range: (Option<NaiveDate>, Option<NaiveDate>),
}

/// Where every monthly limit and spend cap stands at the end of the data.
pub fn standings(layout: &Snapshot, policy: &Policy) -> Result<Vec<Standing>, AnomalyError> {
    let inp = inputs(layout, policy.timezone)?;
    let mut out = Vec::new();
    for (scope, id, s, limit, kind) in monthly_limits(&inp, policy) {
        let Some((&d, _)) = s.days.iter().next_back() else {
            continue;
        };
        let first = d.with_day(1).unwrap_or(d);
        let spent: i128 = s.days.range(first..=d).map(|(_, m)| m.units()).sum();
        let p = detect::Projection::on(s, d, Money::from_units(spent), limit);
        // Already reached: the day it was.
        let reached = s
            .days
            .range(first..=d)
            .scan(0i128, |sum, (day, m)| {
                *sum += m.units();
                Some((*day, *sum))
            })
            .find(|(_, sum)| *sum >= limit.units())
            .map(|(day, _)| day);
        let (around, early, late) = p.reach();
        out.push(Standing {
            scope,
            scope_id: id.to_string(),
            name: s.name.clone().unwrap_or_else(|| id.to_string()),
            kind,
            limit_usd: limit,
            as_of: d,
            month_to_date_usd: p.spent,
            burn_usd: p.burn,
            projected_month_end_usd: p.month_end_total,
            reached_around: reached.or(around),
            range: match reached {
                Some(r) => (Some(r), Some(r)),
                None => (early, late),
            },
        });
    }
    Ok(out)
}

/// Every monthly limit in force and the series it watches: `[anomalies.limits]` (the
/// organisation, workspaces: kind `limit`) and each provider's spend cap (`spend_cap`, over
/// that provider's spend only).
fn monthly_limits<'a>(
    inp: &'a Inputs,
    policy: &Policy,
) -> Vec<(Scope, &'a str, &'a Series, Money, &'static str)> {
    let configured = inp.series.iter().filter_map(|((scope, id), s)| {
        let l = policy.limit_of(*scope, id, s)?;
        Some((*scope, id.as_str(), s, l, "limit"))
    });
    let caps = inp.providers.iter().filter_map(|(p, s)| {
        let cap = policy.rates.providers.get(p)?.spend_cap?;
        Some((Scope::Org, p.as_str(), s, cap, "spend_cap"))
    });
    configured.chain(caps).collect()
}
