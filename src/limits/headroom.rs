//! Headroom, pure: from the window's sums ([`super::scan::Sums`]) the per-class and
//! per-workspace minute series, their peak, p99 and busiest hour of the week, compared with the
//! limits in force ([`super::table::RateTable`]); and the minutes that passed a threshold.
//!
//! The rules, written so a person can redo them:
//! - a class's organisation series is the sum of its workspaces' minutes; a workspace series is
//!   compared with the workspace's own limits where the config sets them (else shown against
//!   the organisation's, and never a finding of its own: the organisation's series already is);
//! - input counts uncached input and cache writes (cache reads only for a class that counts
//!   them); batch and long-context requests are left out (limits of their own);
//! - p99: of the window's minutes with traffic; the busiest hour of the week: the weekday and
//!   hour (business timezone) with the highest mean input per minute over the window;
//! - a finding: a business day on which a minute reached `threshold_pct` of a limit, naming the
//!   peak minute of each limit passed; hourly or daily buckets only give a lower bound (the
//!   bucket's mean per minute): said, and a finding only when even the lower bound passed.
//!
//! Must not: read the lake, decide what alerts (that is `anomalies`), or price.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use chrono_tz::Tz;
use serde::Serialize;

use super::scan::{Cell, HashMap, Sums};
use super::table::{Limit, RateTable};
use crate::intern::NONE;
use crate::vocab::Provider;

/// Which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Input tokens per minute.
    Itpm,
    /// Output tokens per minute.
    Otpm,
    /// Requests per minute.
    Rpm,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Itpm, Metric::Otpm, Metric::Rpm];
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Itpm => "ITPM",
            Metric::Otpm => "OTPM",
            Metric::Rpm => "RPM",
        }
    }
    fn words(self) -> &'static str {
        match self {
            Metric::Itpm => "input tokens",
            Metric::Otpm => "output tokens",
            Metric::Rpm => "requests",
        }
    }
    fn of(self, c: &Cell) -> Option<u64> {
        match self {
            Metric::Itpm => Some(c.input),
            Metric::Otpm => Some(c.output),
            Metric::Rpm => (!c.requests_unknown).then_some(c.requests),
        }
    }
    fn limit(self, l: &Limit) -> Option<u64> {
        match self {
            Metric::Itpm => l.itpm,
            Metric::Otpm => l.otpm,
            Metric::Rpm => l.rpm,
        }
    }
}

/// One limit of one series over the window.
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub metric: Metric,
    /// The busiest minute (from 1-minute buckets); `None` without them.
    pub peak: Option<u64>,
    pub peak_at: Option<DateTime<chrono::Utc>>,
    /// The 99th percentile of the minutes with traffic (nearest rank).
    pub p99: Option<u64>,
    /// From hourly or daily buckets: their mean per minute, a lower bound of their busiest
    /// minute (the minute can be far higher).
    pub lower_bound: Option<u64>,
    pub limit: Option<u64>,
    /// Minutes of the window with traffic but no request count (RPM only).
    pub unknown_minutes: u64,
}

impl Stat {
    /// Peak ÷ limit in percent (to a tenth; a ratio, not money).
    pub fn pct(&self) -> Option<f64> {
        let (p, l) = (self.peak.or(self.lower_bound)?, self.limit?);
        (l > 0).then(|| (p as f64 * 1000.0 / l as f64).round() / 10.0)
    }
}

/// The busiest hour of the week.
#[derive(Debug, Clone, Serialize)]
pub struct BusyHour {
    pub weekday: String,
    pub hour: u32,
    /// Mean input tokens per minute in that hour over the window.
    pub mean_input_per_minute: u64,
}

/// One series: a class for the organisation, or for one workspace.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub provider: Provider,
    pub class: String,
    /// `None`: the organisation.
    pub workspace_id: Option<String>,
    pub workspace_name: Option<String>,
    /// `organisation`, `workspace` (its own, from the config) or `none` (no limit known).
    pub limits_from: &'static str,
    pub stats: Vec<Stat>,
    pub busiest_hour: Option<BusyHour>,
    /// Days of the window whose data is only hourly or daily.
    pub coarse_days: usize,
    /// Which table the limits are from, in a few words.
    pub limits_label: String,
}

/// A limit passed on one day (one per series, day and limit).
#[derive(Debug, Clone, Serialize)]
pub struct Passing {
    pub day: NaiveDate,
    pub provider: Provider,
    pub class: String,
    pub workspace_id: Option<String>,
    pub workspace_name: Option<String>,
    pub metric: Metric,
    /// The minute (or, for a lower bound, the bucket) and its count.
    pub at: DateTime<chrono::Utc>,
    pub peak: u64,
    pub limit: u64,
    /// Only a lower bound (hourly or daily data).
    pub lower_bound: bool,
    pub sentence: String,
}

/// Everything `tokenledger limits` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Headroom {
    pub from: DateTime<chrono::Utc>,
    pub to: DateTime<chrono::Utc>,
    pub threshold_pct: u32,
    /// Per provider: where its limits come from.
    pub sources: BTreeMap<Provider, String>,
    pub groups: Vec<Group>,
    pub passing: Vec<Passing>,
    pub notes: Vec<String>,
}

/// One series' cells: (minute, cell) by minute, and (start, width in minutes) → cell.
#[derive(Default)]
struct Series {
    minutes: Vec<(i64, Cell)>,
    coarse: BTreeMap<(i64, u32), Cell>,
}

const QUARTER_US: i64 = 900_000_000;

/// The business-zone day, weekday and hour of every quarter hour of the window, computed once
/// (every zone's offset is a multiple of 15 minutes), so a series of minutes converts no time.
struct Clock {
    tz: Tz,
    first: i64,
    quarters: Vec<(NaiveDate, u32, u32)>,
}

impl Clock {
    fn new(from: i64, to: i64, tz: Tz) -> Clock {
        let first = from - from.rem_euclid(QUARTER_US);
        let n = ((to - first).max(0) / QUARTER_US + 1) as usize;
        let quarters = (0..n)
            .map(|q| Self::convert(tz, first + q as i64 * QUARTER_US))
            .collect();
        Clock {
            tz,
            first,
            quarters,
        }
    }
    fn convert(tz: Tz, us: i64) -> (NaiveDate, u32, u32) {
        let l = utc(us).with_timezone(&tz);
        (l.date_naive(), l.weekday().num_days_from_monday(), l.hour())
    }
    /// (day, weekday from Monday = 0, hour) of `us` in the business zone.
    fn at(&self, us: i64) -> (NaiveDate, u32, u32) {
        let q = (us - self.first).div_euclid(QUARTER_US);
        match usize::try_from(q).ok().and_then(|q| self.quarters.get(q)) {
            Some(v) => *v,
            None => Self::convert(self.tz, us),
        }
    }
    /// Minutes of the window per (weekday, hour).
    fn minutes_per_hour_of_week(&self) -> BTreeMap<(u32, u32), u64> {
        let mut out = BTreeMap::new();
        for (_, wd, h) in &self.quarters {
            *out.entry((*wd, *h)).or_default() += 15;
        }
        out
    }
}

/// Computes the headroom of the window `[from, to)` from `sums`.
pub fn headroom(
    sums: &Sums,
    table: &RateTable,
    tz: Tz,
    threshold_pct: u32,
    (from, to): (i64, i64),
) -> Headroom {
    let st = &sums.strings;
    let series = series_of(sums);
    let clock = Clock::new(from, to, tz);
    let hours = clock.minutes_per_hour_of_week();
    let mut out = Headroom {
        from: utc(from),
        to: utc(to),
        threshold_pct,
        sources: table
            .providers
            .iter()
            .map(|(p, r)| (*p, r.source.clone()))
            .collect(),
        groups: Vec::new(),
        passing: Vec::new(),
        notes: Vec::new(),
    };
    for ((c, w), s) in &series {
        let key = st.get(*c).unwrap_or("|");
        let (provider, class) = key.split_once('|').unwrap_or(("", key));
        let Some(provider) = Provider::parse(provider) else {
            continue;
        };
        let ((wid, wname), (limit, limits_from)) = who_and_limit(sums, table, provider, class, *w);
        let mut g = Group {
            provider,
            class: class.to_string(),
            workspace_id: wid,
            workspace_name: wname,
            limits_from,
            stats: Vec::new(),
            busiest_hour: busiest(s, &hours, &clock),
            coarse_days: coarse_days(s, &clock),
            limits_label: match limits_from {
                "workspace" => "the workspace's own, tokenledger.toml".into(),
                _ => table
                    .providers
                    .get(&provider)
                    .map_or_else(String::new, |r| r.label.clone()),
            },
        };
        for m in Metric::ALL {
            g.stats
                .push(stat(s, m, limit.as_ref().and_then(|l| m.limit(l))));
        }
        // A finding: the organisation's series, or a workspace's against its own limits.
        if *w == NONE || limits_from == "workspace" {
            for stat in &g.stats {
                if let Some(l) = stat.limit {
                    out.passing
                        .extend(passing(&g, s, stat.metric, l, threshold_pct, &clock));
                }
            }
        }
        out.groups.push(g);
    }
    notes(&mut out, sums, &series);
    out.passing
        .sort_by(|a, b| (a.day, a.metric, &a.class).cmp(&(b.day, b.metric, &b.class)));
    out
}

type Who = (Option<String>, Option<String>);

/// A series' workspace (id, name; `None` for the organisation) and the limits it is compared
/// with: the workspace's own where configured, else the organisation's.
fn who_and_limit(
    sums: &Sums,
    table: &RateTable,
    provider: Provider,
    class: &str,
    w: u32,
) -> (Who, (Option<Limit>, &'static str)) {
    let st = &sums.strings;
    let rates = table.providers.get(&provider);
    let org = rates.and_then(|r| r.org.get(class)).copied();
    if w == NONE {
        return (
            (None, None),
            org.map_or((None, "none"), |l| (Some(l), "organisation")),
        );
    }
    let id = st.get(w).unwrap_or("default").to_string();
    let name = sums
        .ws_names
        .get(&w)
        .and_then(|n| st.get(*n))
        .map(str::to_string);
    let own = rates.and_then(|r| r.workspace(&id, name.as_deref().unwrap_or(&id), class));
    let limit = match (own, org) {
        (Some(l), _) => (Some(l), "workspace"),
        (None, Some(l)) => (Some(l), "organisation"),
        (None, None) => (None, "none"),
    };
    ((Some(id), name), limit)
}

/// (class, workspace or NONE for the organisation) → its cells: each workspace's, and their
/// sum for the organisation.
fn series_of(sums: &Sums) -> BTreeMap<(u32, u32), Series> {
    let mut minutes: HashMap<(u32, u32), Vec<(i64, Cell)>> = HashMap::default();
    for (&(c, w, at), cell) in &sums.minutes {
        for key in [(c, w), (c, NONE)] {
            minutes.entry(key).or_default().push((at, *cell));
        }
    }
    let mut series: BTreeMap<(u32, u32), Series> = BTreeMap::new();
    for (key, mut v) in minutes {
        // By minute, the workspaces' cells of one minute summed (the organisation's series).
        v.sort_unstable_by_key(|x| x.0);
        let mut out: Vec<(i64, Cell)> = Vec::with_capacity(v.len());
        for (at, c) in v {
            match out.last_mut() {
                Some(last) if last.0 == at => add(&mut last.1, &c),
                _ => out.push((at, c)),
            }
        }
        series.entry(key).or_default().minutes = out;
    }
    for (&(c, w, at, m), cell) in &sums.coarse {
        for key in [(c, w), (c, NONE)] {
            let s = series.entry(key).or_default();
            add(s.coarse.entry((at, m)).or_default(), cell);
        }
    }
    series
}

fn add(e: &mut Cell, c: &Cell) {
    e.input += c.input;
    e.output += c.output;
    e.requests += c.requests;
    e.requests_unknown |= c.requests_unknown;
}

fn utc(us: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn stat(s: &Series, m: Metric, limit: Option<u64>) -> Stat {
    let mut values: Vec<u64> = Vec::with_capacity(s.minutes.len());
    let mut peak: Option<(u64, i64)> = None;
    let mut unknown = 0;
    for (at, c) in &s.minutes {
        match m.of(c) {
            Some(v) => {
                if v > 0 {
                    values.push(v);
                }
                if peak.is_none_or(|p| v > p.0) {
                    peak = Some((v, *at));
                }
            }
            None => unknown += 1,
        }
    }
    let p99 = (!values.is_empty()).then(|| {
        values.sort_unstable();
        // Nearest rank: the smallest value at or above 99 % of the minutes.
        let rank = (values.len() * 99).div_ceil(100).max(1);
        values[rank - 1]
    });
    let lower_bound = s
        .coarse
        .iter()
        .filter_map(|((_, w), c)| m.of(c).map(|v| v / u64::from(*w)))
        .max();
    Stat {
        metric: m,
        peak: peak.map(|p| p.0),
        peak_at: peak.map(|p| utc(p.1)),
        p99,
        lower_bound,
        limit,
        unknown_minutes: unknown,
    }
}

fn busiest(s: &Series, minutes: &BTreeMap<(u32, u32), u64>, clock: &Clock) -> Option<BusyHour> {
    let mut sums: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let cells = s.minutes.iter().map(|(at, c)| (*at, c.input)).chain(
        s.coarse
            .iter()
            .filter(|((_, w), _)| *w == 60)
            .map(|((at, _), c)| (*at, c.input)),
    );
    for (at, v) in cells {
        let (_, wd, h) = clock.at(at);
        *sums.entry((wd, h)).or_default() += v;
    }
    let ((wd, h), mean) = sums
        .iter()
        .map(|(k, v)| (*k, v / minutes.get(k).copied().unwrap_or(60).max(1)))
        .max_by_key(|(k, v)| (*v, std::cmp::Reverse(*k)))?;
    let weekday = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][wd as usize].to_string();
    Some(BusyHour {
        weekday,
        hour: h,
        mean_input_per_minute: mean,
    })
}

/// Business days whose data is only hourly or daily (no minute of them).
fn coarse_days(s: &Series, clock: &Clock) -> usize {
    let day = |at: i64| clock.at(at).0;
    let fine: BTreeSet<NaiveDate> = s.minutes.iter().map(|(at, _)| day(*at)).collect();
    s.coarse
        .keys()
        .map(|(at, _)| day(*at))
        .filter(|d| !fine.contains(d))
        .collect::<BTreeSet<_>>()
        .len()
}

fn series_name(g: &Group) -> String {
    match (&g.workspace_name, &g.workspace_id) {
        (Some(n), _) | (None, Some(n)) => format!("{} in workspace {n}", g.class),
        _ => format!("{} (organisation)", g.class),
    }
}

/// The days on which `m` reached `pct` % of `limit`: the day's busiest such minute (or lower
/// bound) each.
fn passing(g: &Group, s: &Series, m: Metric, limit: u64, pct: u32, clock: &Clock) -> Vec<Passing> {
    let reached = |v: u64| u128::from(v) * 100 >= u128::from(limit) * u128::from(pct);
    let mut best: BTreeMap<NaiveDate, (u64, i64, bool)> = BTreeMap::new();
    let minutes = s
        .minutes
        .iter()
        .filter_map(|(at, c)| Some((*at, m.of(c)?, false)));
    let coarse = s
        .coarse
        .iter()
        .filter_map(|((at, w), c)| Some((*at, m.of(c)? / u64::from(*w), true)));
    for (at, v, lower) in minutes.chain(coarse) {
        if !reached(v) {
            continue;
        }
        let e = best.entry(clock.at(at).0).or_insert((v, at, lower));
        if v > e.0 {
            *e = (v, at, lower);
        }
    }
    let stat = g.stats.iter().find(|x| x.metric == m);
    best.into_iter()
        .map(|(day, (v, at, lower))| {
            let when = utc(at).with_timezone(&clock.tz).format("%Y-%m-%d %H:%M %Z");
            let p = (v as f64 * 1000.0 / limit as f64).round() / 10.0;
            let count = if lower {
                format!(
                    "at least {} {} per minute in the bucket from {when} (hourly or daily data: \
                     its mean per minute, a lower bound)",
                    thousands(v),
                    m.words()
                )
            } else {
                format!("{} {} in the minute {when}", thousands(v), m.words())
            };
            let mut sentence = format!(
                "{}: {count}, {p}% of the {} {} limit ({})",
                series_name(g),
                thousands(limit),
                m.as_str(),
                g.limits_label
            );
            if let Some(p99) = stat.and_then(|s| s.p99) {
                sentence.push_str(&format!("; p99 minute {}", thousands(p99)));
            }
            if let Some(b) = &g.busiest_hour {
                sentence.push_str(&format!(
                    "; busiest hour {} {:02}:00 ({} input tokens/min)",
                    b.weekday,
                    b.hour,
                    thousands(b.mean_input_per_minute)
                ));
            }
            Passing {
                day,
                provider: g.provider,
                class: g.class.clone(),
                workspace_id: g.workspace_id.clone(),
                workspace_name: g.workspace_name.clone(),
                metric: m,
                at: utc(at),
                peak: v,
                limit,
                lower_bound: lower,
                sentence,
            }
        })
        .collect()
}

/// `1234567` → `1,234,567` (the project's one grouping rule, `money::group_thousands`).
pub fn thousands(n: u64) -> String {
    crate::money::group_thousands(&n.to_string())
}

fn notes(out: &mut Headroom, sums: &Sums, series: &BTreeMap<(u32, u32), Series>) {
    let st = &sums.strings;
    let coarse_only: Vec<String> = out
        .groups
        .iter()
        .filter(|g| g.workspace_id.is_none() && g.coarse_days > 0)
        .map(|g| format!("{} ({} day(s))", g.class, g.coarse_days))
        .collect();
    if !coarse_only.is_empty() {
        out.notes.push(format!(
            "only hourly or daily data for {}: the busiest minute is at least the bucket's mean \
             per minute, and may be far higher; pull 1-minute buckets to know",
            coarse_only.join(", ")
        ));
    }
    for c in &sums.unclassified {
        if series.keys().any(|(x, w)| x == c && *w == NONE) {
            let (p, model) = st.get(*c).unwrap_or("").split_once('|').unwrap_or(("", ""));
            out.notes.push(format!(
                "no rate limits known for {p} model {model}: name its class in \
                 [[limits.{p}.class]] and its limits in [limits.{p}.rate.\"<class>\"]"
            ));
        }
    }
    if out.groups.iter().any(|g| {
        g.stats
            .iter()
            .any(|s| s.metric == Metric::Rpm && s.unknown_minutes > 0)
    }) {
        out.notes.push(
            "requests per minute are unknown where the data does not count requests (the legacy \
             usage report, the Console CSV): the Analytics API and OpenAI's usage API do"
                .into(),
        );
    }
    if sums.excluded_batch + sums.excluded_long_context > 0 {
        out.notes.push(format!(
            "left out: {} batch and {} long-context (1M) tokens, which have limits of their own",
            thousands(sums.excluded_batch),
            thousands(sums.excluded_long_context)
        ));
    }
}
