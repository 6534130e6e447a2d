//! Detection as pure functions over daily and hourly list-cost series: no IO, no alerting.
//!
//! The expectations, written so a person can redo them:
//! - `spike`: the day's cost against the median of the same kind of day (weekday or weekend) in
//!   the 28 days before it, once the series has 14 days of history; score = (actual − median) /
//!   (1.4826 × MAD), the MAD floored at 10% of the median and at $1 so that a flat series does not
//!   divide by zero. A day whose same calendar position last month (the last day of the month, or
//!   the same day of the month) was itself a spike of at least half its size is a recurring job
//!   (a month-end batch), not a spike.
//! - `new_key`: a key first seen a week or more after the lake's first day. `new_model_on_key`: a key with 14
//!   days of history spends on a model it never used. `reactivated`: a key that spent nothing for
//!   14 days spends again.
//! - `burst`: three or more hours at 8× the key's usual level for that hour of the same kind of
//!   day (the larger of the median and the mean over the 28 days before) and at least twice its
//!   busy level (the 90th percentile of all its hours then), together at least the floor.
//! - `limit`: a configured monthly limit of a workspace or the organisation, or a provider's
//!   monthly spend cap: the first day the month-end projection (month to date + the median of
//!   the last 7 days' spend × the days left) reaches 90 % of it, the day the month to date
//!   reaches 90 %, and the day it is reached, each with the projected day it is reached and a
//!   range (at the second highest and second lowest of those 7 days).
//! - `rate_limit`: a minute near a rate limit (from `limits::headroom`; not money).
//!
//! Statistics use floats (scores); money (actual, expected, impact) stays exact `Money`.
//!
//! Must not: read the lake, decide what alerts (that is `anomalies::alerting`), or round money.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, TimeDelta};
use serde::Serialize;

use crate::money::Money;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    ApiKey,
    Workspace,
    Model,
    Org,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ApiKey => "api_key",
            Scope::Workspace => "workspace",
            Scope::Model => "model",
            Scope::Org => "org",
        }
    }
    pub fn parse(s: &str) -> Option<Scope> {
        [Scope::ApiKey, Scope::Workspace, Scope::Model, Scope::Org]
            .into_iter()
            .find(|x| x.as_str() == s || (s == "key" && *x == Scope::ApiKey))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Spike,
    NewKey,
    NewModelOnKey,
    Reactivated,
    Burst,
    Limit,
    /// A minute near a rate limit (`limits::headroom`): not money, its score the percent.
    RateLimit,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::NewKey => "new_key",
            Kind::NewModelOnKey => "new_model_on_key",
            Kind::Reactivated => "reactivated",
            Kind::Burst => "burst",
            Kind::Limit => "limit",
            Kind::RateLimit => "rate_limit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Low, Severity::Medium, Severity::High]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// The thresholds of detection (alerting applies its own on top).
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// Days of history before a series can spike.
    pub min_history_days: i64,
    /// Robust z-score a spike must reach.
    pub min_score: f64,
    /// And actual ÷ expected at least this.
    pub min_ratio: f64,
    /// New keys, new models, reactivations and bursts below this many dollars are not findings.
    pub floor_usd: Money,
    /// An hour of a burst is at least this many times its usual level for that hour.
    pub burst_ratio: f64,
    /// A key first seen within this many days of the lake's first day is not new (the lake
    /// simply starts there; a quiet key may first spend on its second day).
    pub new_key_grace_days: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_history_days: 14,
            min_score: 6.0,
            min_ratio: 2.5,
            floor_usd: Money::from_units(20 * 10i128.pow(12)),
            burst_ratio: 8.0,
            new_key_grace_days: 7,
        }
    }
}

/// One thing that looks wrong, scored, in dollars.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub date: NaiveDate,
    pub scope: Scope,
    pub scope_id: String,
    pub scope_name: Option<String>,
    pub api_key_id: Option<String>,
    pub kind: Kind,
    pub actual_usd: Money,
    pub expected_usd: Money,
    pub impact_usd: Money,
    /// (actual − expected) ÷ expected × 100, rounded to a tenth; `None` when expected is 0.
    pub impact_pct: Option<f64>,
    pub score: f64,
    pub severity: Severity,
    /// The dimension behind most of the impact (a key's model; a workspace's key).
    pub driver: Option<String>,
    pub sentence: String,
}

/// A daily series: day → cost, and day → cost by driver (model for a key, key for a workspace).
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: Option<String>,
    pub api_key_id: Option<String>,
    pub days: BTreeMap<NaiveDate, Money>,
    pub by_driver: BTreeMap<(NaiveDate, String), Money>,
}

fn sub(a: Money, b: Money) -> Money {
    Money::from_units(a.units() - b.units())
}

fn f(m: Money) -> f64 {
    m.units() as f64 / 1e12
}

/// The median of exact amounts (the mean of the middle two, to 10⁻¹², for an even count).
pub fn median(v: &mut [Money]) -> Money {
    v.sort();
    let n = v.len();
    if n == 0 {
        Money::ZERO
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        Money::from_units(v[n / 2 - 1].units() + v[n / 2].units()).div_round(2)
    }
}

fn weekend(d: NaiveDate) -> bool {
    d.weekday().num_days_from_monday() >= 5
}

fn last_of_month(d: NaiveDate) -> bool {
    (d + TimeDelta::days(1)).month() != d.month()
}

/// The same calendar position a month earlier: the last day of the previous month for a last
/// day, else the same day of the month (clamped).
fn month_before(d: NaiveDate) -> Option<NaiveDate> {
    let first = d.with_day(1)?;
    let prev_last = first - TimeDelta::days(1);
    if last_of_month(d) {
        Some(prev_last)
    } else {
        prev_last.with_day(d.day().min(prev_last.day()))
    }
}

fn severity(impact: Money, ratio: f64, floor: Money) -> Severity {
    if impact.units() >= floor.units() * 10 || ratio >= 10.0 {
        Severity::High
    } else if impact.units() >= floor.units() * 3 || ratio >= 4.0 {
        Severity::Medium
    } else {
        Severity::Low
    }
}

/// The driver of a day's impact: the dimension whose cost rose most against its own median,
/// with its share of the day's spend.
fn driver(s: &Series, day: NaiveDate, history: &[NaiveDate]) -> Option<(String, f64)> {
    let mut best: Option<(String, Money, Money)> = None;
    let names: BTreeSet<&String> = s
        .by_driver
        .range((day, String::new())..)
        .take_while(|((d, _), _)| *d == day)
        .map(|((_, n), _)| n)
        .collect();
    for n in names {
        let actual = s
            .by_driver
            .get(&(day, n.clone()))
            .copied()
            .unwrap_or(Money::ZERO);
        let mut prev: Vec<Money> = history
            .iter()
            .map(|d| {
                s.by_driver
                    .get(&(*d, n.clone()))
                    .copied()
                    .unwrap_or(Money::ZERO)
            })
            .collect();
        let rise = sub(actual, median(&mut prev));
        if best.as_ref().is_none_or(|(_, b, _)| rise > *b) {
            best = Some((n.clone(), rise, actual));
        }
    }
    let total = s.days.get(&day).copied().unwrap_or(Money::ZERO);
    best.filter(|(_, r, _)| r.is_positive())
        .map(|(n, _, actual)| {
            let share = if total.is_positive() {
                f(actual) / f(total)
            } else {
                0.0
            };
            (n, share)
        })
}

/// The expectation of a day: the median of the same kind of day in the 28 days before.
fn expected_on(s: &Series, day: NaiveDate, first: NaiveDate) -> Money {
    let mut v: Vec<Money> = (1..=28)
        .map(|k| day - TimeDelta::days(k))
        .filter(|d| *d >= first && weekend(*d) == weekend(day))
        .map(|d| s.days.get(&d).copied().unwrap_or(Money::ZERO))
        .collect();
    median(&mut v)
}

/// "key prod-search spent $812.40 on 2026-10-14, $755.30 above its usual $57.10 (median of the
/// 20 previous weekdays); 96% of it on claude-opus-4-6".
fn spike_sentence(
    (scope, id, s): (Scope, &str, &Series),
    day: NaiveDate,
    (actual, expected, n): (Money, Money, usize),
    drv: &Option<(String, f64)>,
) -> String {
    let label = s.name.clone().unwrap_or_else(|| id.to_string());
    let kind = if weekend(day) {
        "weekend day"
    } else {
        "weekday"
    };
    let who = if scope == Scope::Org {
        scope_word(scope).to_string()
    } else {
        format!("{} {label}", scope_word(scope))
    };
    let mut out = format!(
        "{who} spent ${} on {day}, ${} above its usual ${} (median of the {n} previous {kind}s)",
        actual.usd(),
        sub(actual, expected).usd(),
        expected.usd(),
    );
    if let Some((d, share)) = drv {
        out.push_str(&format!("; {:.0}% of it on {d}", share * 100.0));
    }
    out
}

/// Spikes of one series.
pub fn spikes(scope: Scope, id: &str, s: &Series, th: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(&first) = s.days.keys().next() else {
        return out;
    };
    let last = *s.days.keys().next_back().expect("non-empty");
    let cost = |d: NaiveDate| s.days.get(&d).copied().unwrap_or(Money::ZERO);
    for day in first.iter_days().take_while(|d| *d <= last) {
        let actual = cost(day);
        if (day - first).num_days() < th.min_history_days || !actual.is_positive() {
            continue;
        }
        let history: Vec<NaiveDate> = (1..=28)
            .map(|k| day - TimeDelta::days(k))
            .filter(|d| *d >= first && weekend(*d) == weekend(day))
            .collect();
        let mut values: Vec<Money> = history.iter().map(|d| cost(*d)).collect();
        let expected = median(&mut values);
        let mut dev: Vec<f64> = values.iter().map(|v| (f(*v) - f(expected)).abs()).collect();
        dev.sort_by(|a, b| a.total_cmp(b));
        let mad = dev.get(dev.len() / 2).copied().unwrap_or(0.0);
        let spread = (1.4826 * mad).max(0.1 * f(expected)).max(1.0);
        let score = (f(actual) - f(expected)) / spread;
        let ratio = if expected.is_positive() {
            f(actual) / f(expected)
        } else {
            f64::INFINITY
        };
        if score < th.min_score || ratio < th.min_ratio {
            continue;
        }
        // A recurring job: last month's same position was a spike of at least half the size.
        let recurring = month_before(day).is_some_and(|p| {
            p >= first
                && f(cost(p)) >= 0.5 * f(actual)
                && f(cost(p)) >= th.min_ratio * f(expected_on(s, p, first))
        });
        if recurring {
            continue;
        }
        let impact = sub(actual, expected);
        let drv = driver(s, day, &history);
        let sentence = spike_sentence((scope, id, s), day, (actual, expected, history.len()), &drv);
        out.push(Finding {
            date: day,
            scope,
            scope_id: id.to_string(),
            scope_name: s.name.clone(),
            api_key_id: s.api_key_id.clone(),
            kind: Kind::Spike,
            actual_usd: actual,
            expected_usd: expected,
            impact_usd: impact,
            impact_pct: expected
                .is_positive()
                .then_some((ratio - 1.0) * 1000.0_f64)
                .map(|p| p.round() / 10.0),
            score: (score * 10.0).round() / 10.0,
            severity: severity(impact, ratio, th.floor_usd),
            driver: drv.map(|d| d.0),
            sentence,
        });
    }
    out
}

fn scope_word(s: Scope) -> &'static str {
    match s {
        Scope::ApiKey => "key",
        Scope::Workspace => "workspace",
        Scope::Model => "model",
        Scope::Org => "the organisation",
    }
}

/// A finding with no expectation (expected $0): what a new key, model or burst is measured by.
fn plain(
    (scope, id, s): (Scope, &str, &Series),
    day: NaiveDate,
    kind: Kind,
    actual: Money,
    sentence: String,
    th: &Thresholds,
) -> Finding {
    Finding {
        date: day,
        scope,
        scope_id: id.to_string(),
        scope_name: s.name.clone(),
        api_key_id: s.api_key_id.clone(),
        kind,
        actual_usd: actual,
        expected_usd: Money::ZERO,
        impact_usd: actual,
        impact_pct: None,
        score: 0.0,
        severity: severity(actual, 1.0, th.floor_usd),
        driver: None,
        sentence,
    }
}

/// New keys, new models on a key, and reactivated keys (`lake_first`: the lake's first day).
pub fn key_events(id: &str, s: &Series, lake_first: NaiveDate, th: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(&first) = s.days.keys().next() else {
        return out;
    };
    let name = s.name.clone().unwrap_or_else(|| id.to_string());
    if (first - lake_first).num_days() >= th.new_key_grace_days {
        // The first day (or the first three) the key spends above the floor.
        let early: Vec<(&NaiveDate, &Money)> =
            s.days.range(first..first + TimeDelta::days(3)).collect();
        if let Some((d, m)) = early.into_iter().find(|(_, m)| **m >= th.floor_usd) {
            let sentence = format!("new key {name} first spent on {first}; ${} on {d}", m.usd());
            let mut x = plain((Scope::ApiKey, id, s), *d, Kind::NewKey, *m, sentence, th);
            x.driver = s
                .by_driver
                .range((*d, String::new())..)
                .take_while(|((dd, _), _)| dd == d)
                .max_by_key(|(_, v)| **v)
                .map(|((_, n), _)| n.clone());
            out.push(x);
        }
    }
    let mut seen_models: BTreeSet<&str> = BTreeSet::new();
    let mut last_spend: Option<NaiveDate> = None;
    let mut by_day: BTreeMap<NaiveDate, Vec<(&str, Money)>> = BTreeMap::new();
    for ((d, m), v) in &s.by_driver {
        by_day.entry(*d).or_default().push((m.as_str(), *v));
    }
    for (day, models) in by_day {
        let total = s.days.get(&day).copied().unwrap_or(Money::ZERO);
        let established = (day - first).num_days() >= th.min_history_days;
        if established {
            for (m, v) in &models {
                if !seen_models.contains(m) && *v >= th.floor_usd {
                    let sentence = format!(
                        "key {name} spent ${} on {m} on {day}, a model it had never used",
                        v.usd()
                    );
                    let mut x = plain(
                        (Scope::ApiKey, id, s),
                        day,
                        Kind::NewModelOnKey,
                        *v,
                        sentence,
                        th,
                    );
                    x.driver = Some(m.to_string());
                    out.push(x);
                }
            }
        }
        if let Some(prev) = last_spend
            && (day - prev).num_days() > th.min_history_days
            && total >= th.floor_usd
        {
            let quiet = (day - prev).num_days() - 1;
            let sentence = format!(
                "key {name} spent ${} on {day} after {quiet} days without spend",
                total.usd()
            );
            out.push(plain(
                (Scope::ApiKey, id, s),
                day,
                Kind::Reactivated,
                total,
                sentence,
                th,
            ));
        }
        seen_models.extend(models.iter().map(|(m, _)| *m));
        if total.is_positive() {
            last_spend = Some(day);
        }
    }
    out
}

/// The hours of day `i` of `grid` far above their usual level: (excess, actual, usual, hours).
fn burst_hours(
    grid: &[[i128; 24]],
    i: usize,
    day: NaiveDate,
    (busy, floor): (i128, i128),
    th: &Thresholds,
) -> (i128, i128, i128, usize) {
    let before = &grid[i.saturating_sub(28)..i];
    let (mut excess, mut actual_sum, mut expected_sum, mut n_hours) = (0i128, 0i128, 0i128, 0);
    for (h, &actual) in grid[i].iter().enumerate() {
        if actual < floor || actual < 2 * busy {
            continue;
        }
        // The same hour of the same kind of day (weekday or weekend) in the 28 days before.
        let mut prev: Vec<Money> = (1..=before.len())
            .filter(|k| weekend(day - TimeDelta::days(*k as i64)) == weekend(day))
            .map(|k| Money::from_units(grid[i - k][h]))
            .collect();
        // The usual level: the median, or the mean when the hour is mostly idle (a median
        // of 0 would make any active hour a burst).
        let n = prev.len().max(1) as i128;
        let mean = Money::sum(prev.iter().copied())
            .unwrap_or(Money::ZERO)
            .div_round(n);
        let usual = median(&mut prev).max(mean).units();
        if actual as f64 >= th.burst_ratio * (usual as f64).max(floor as f64 / th.burst_ratio) {
            excess += actual - usual;
            actual_sum += actual;
            expected_sum += usual;
            n_hours += 1;
        }
    }
    (excess, actual_sum, expected_sum, n_hours)
}

/// Bursts of one key's hourly series: (day, hour) → cost. A day with hours far above the key's
/// median for that hour over the 14 days before (and above the floor in sum) is one finding.
pub fn bursts(
    id: &str,
    s: &Series,
    hours: &BTreeMap<(NaiveDate, u32), Money>,
    th: &Thresholds,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(&(first, _)) = hours.keys().next() else {
        return out;
    };
    let last = hours.keys().next_back().map_or(first, |k| k.0);
    // A dense grid, day by day from the first: lookups are the hot path (keys × days × hours).
    let n_days = (last - first).num_days() as usize + 1;
    let mut grid = vec![[0i128; 24]; n_days];
    for ((d, h), m) in hours {
        grid[(*d - first).num_days() as usize][*h as usize % 24] = m.units();
    }
    let name = s.name.clone().unwrap_or_else(|| id.to_string());
    let floor = th.floor_usd.units() / 24;
    for (i, day) in first.iter_days().take(n_days).enumerate() {
        if (i as i64) < th.min_history_days || grid[i].iter().filter(|v| **v >= floor).count() < 3 {
            continue;
        }
        let before = &grid[i.saturating_sub(28)..i];
        // The key's busy level: the 90th percentile of all its hours (idle ones included) in the
        // 28 days before. A burst hour is at least twice that, as well as far above its own hour.
        let mut all: Vec<i128> = before.iter().flatten().copied().collect();
        let k = all.len() * 9 / 10;
        let busy = *all.select_nth_unstable(k).1;
        let (excess, actual_sum, expected_sum, n_hours) =
            burst_hours(&grid, i, day, (busy, floor), th);
        let impact = Money::from_units(excess);
        if n_hours >= 3 && impact >= th.floor_usd {
            let (actual, expected) = (
                Money::from_units(actual_sum),
                Money::from_units(expected_sum),
            );
            let sentence = format!(
                "key {name} ran {n_hours} hour(s) on {day} far above its usual level for those hours: ${} against ${}",
                actual.usd(),
                expected.usd()
            );
            let mut x = plain(
                (Scope::ApiKey, id, s),
                day,
                Kind::Burst,
                actual,
                sentence,
                th,
            );
            x.expected_usd = expected;
            x.impact_usd = impact;
            x.impact_pct = expected
                .is_positive()
                .then(|| (f(impact) / f(expected) * 1000.0).round() / 10.0);
            x.score = n_hours as f64;
            out.push(x);
        }
    }
    out
}

/// The burn behind a projection: the median of the last [`BURN_DAYS`] days' spend (days
/// without spend count as $0; only days since the series began), with the second lowest and
/// second highest of them as the range (one outlier each side is ignored).
pub const BURN_DAYS: i64 = 7;

/// (median, low, high) daily burn over the [`BURN_DAYS`] days ending with `day`.
pub fn burn(s: &Series, day: NaiveDate) -> (Money, Money, Money) {
    let first = s.days.keys().next().copied().unwrap_or(day);
    let mut v: Vec<Money> = (0..BURN_DAYS)
        .map(|k| day - TimeDelta::days(k))
        .filter(|d| *d >= first)
        .map(|d| s.days.get(&d).copied().unwrap_or(Money::ZERO))
        .collect();
    let mut sorted = v.clone();
    sorted.sort();
    let n = sorted.len();
    let (lo, hi) = if n >= 5 {
        (sorted[1], sorted[n - 2])
    } else {
        (sorted[0], sorted[n - 1])
    };
    (median(&mut v), lo, hi)
}

/// The day `remaining` is used up at `per_day` from the day after `day` (`None`: no burn).
pub fn reach_day(day: NaiveDate, remaining: i128, per_day: Money) -> Option<NaiveDate> {
    if remaining <= 0 {
        return Some(day);
    }
    let b = per_day.units();
    (b > 0).then(|| day + TimeDelta::days(((remaining + b - 1) / b) as i64))
}

/// Where a monthly limit stands on a day of its month: what the findings say and what
/// `tokenledger limits` shows, computed in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projection {
    pub day: NaiveDate,
    pub month_end: NaiveDate,
    pub limit: Money,
    /// The month to date through `day`.
    pub spent: Money,
    /// The median, second lowest and second highest spend of the last [`BURN_DAYS`] days.
    pub burn: (Money, Money, Money),
    /// `spent` + the median burn × the days left in the month.
    pub month_end_total: Money,
}

impl Projection {
    /// The projection of `limit` on `day`, with `spent` the month to date through it.
    pub fn on(s: &Series, day: NaiveDate, spent: Money, limit: Money) -> Projection {
        let month_end = crate::vocab::Month::of(day).map_or(day, |m| m.end_day());
        let burn = burn(s, day);
        let left = (month_end - day).num_days() as i128;
        Projection {
            day,
            month_end,
            limit,
            spent,
            burn,
            month_end_total: Money::from_units(spent.units() + burn.0.units() * left),
        }
    }
    /// The day the limit is reached at `per_day` from `day` on (`day` itself when it is),
    /// if within the month.
    pub fn reached_at(&self, per_day: Money) -> Option<NaiveDate> {
        reach_day(self.day, self.limit.units() - self.spent.units(), per_day)
            .filter(|x| *x <= self.month_end)
    }
    /// (around, earliest, latest): at the median, the high and the low burn.
    pub fn reach(&self) -> (Option<NaiveDate>, Option<NaiveDate>, Option<NaiveDate>) {
        let (med, lo, hi) = self.burn;
        (
            self.reached_at(med),
            self.reached_at(hi),
            self.reached_at(lo),
        )
    }
    /// 1: projected to 90 % or more, 2: 90 % spent, 3: reached; 0: none of them.
    fn stage(&self) -> u8 {
        let (l, spent) = (self.limit.units().max(1), self.spent.units());
        if spent >= l {
            3
        } else if spent * 10 >= l * 9 {
            2
        } else if self.month_end_total.units() * 10 >= l * 9 {
            1
        } else {
            0
        }
    }
}

/// A monthly limit (a configured one, or the tier's spend cap): the first day the month-end
/// projection (month to date + the median burn × the days left) reaches 90 % of it, the day
/// the month to date reaches 90 %, and the day it is reached — each a finding once a
/// month, saying the projected day the limit is reached and its range (at the second highest
/// and second lowest burn of the last [`BURN_DAYS`] days). A month that stays under 90 % at
/// its pace says nothing.
pub fn limits(scope: Scope, id: &str, s: &Series, limit: Money, th: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    let name = s.name.clone().unwrap_or_else(|| id.to_string());
    let who = match (scope, id) {
        (Scope::Org, "org") => "The organisation".to_string(),
        (Scope::Org, _) => name.clone(),
        _ => format!("{} {name}", scope_word(scope)),
    };
    let what = if scope == Scope::Org && id != "org" {
        "monthly spend cap"
    } else {
        "monthly limit"
    };
    let l = limit.units().max(1);
    // The month walked, the stage it reached so far and its month to date.
    let (mut month, mut reached, mut spent) = (None, 0u8, 0i128);
    for (&d, m) in &s.days {
        let first = d.with_day(1).unwrap_or(d);
        if month != Some(first) {
            (month, reached, spent) = (Some(first), 0, 0);
        }
        spent += m.units();
        let p = Projection::on(s, d, Money::from_units(spent), limit);
        let now = p.stage();
        if now <= reached {
            continue;
        }
        reached = now;
        let projected = p.month_end_total.units();
        let mut x = plain(
            (scope, id, s),
            d,
            Kind::Limit,
            p.spent,
            limit_sentence(&who, what, &p, now),
            th,
        );
        x.expected_usd = limit;
        x.impact_usd = Money::from_units(projected - l);
        x.score = (projected * 100 / l) as f64;
        x.driver = p.reached_at(p.burn.0).map(|a| a.to_string());
        x.severity = match now {
            1 if projected < l => Severity::Medium,
            _ => Severity::High,
        };
        out.push(x);
    }
    out
}

/// What a limit finding says: who, the limit, the projected day and its range (at the high and
/// low burn), the month to date, the burn and the month-end projection.
fn limit_sentence(who: &str, what: &str, p: &Projection, stage: u8) -> String {
    let (limit, d) = (p.limit, p.day);
    let l = limit.units().max(1);
    let day = |x: NaiveDate| x.format("%b %-d").to_string();
    let (around, early, late) = p.reach();
    let head = match (stage, around, early) {
        (3, ..) => format!("{who} reached its ${} {what} on {d}", limit.usd()),
        (_, Some(a), Some(e)) => format!(
            "{who} reaches its ${} {what} around {} ({}–{})",
            limit.usd(),
            day(a),
            day(e),
            late.map_or("after month end".into(), day)
        ),
        _ => format!(
            "{who} is on course for {}% of its ${} {what} by month end",
            p.month_end_total.units() * 100 / l,
            limit.usd()
        ),
    };
    let (med, lo, hi) = p.burn;
    format!(
        "{head}: ${} spent by {d} ({}%), burning ${}/day (median of the last {BURN_DAYS} days; \
         ${}–${}); ${} projected by month end",
        p.spent.usd(),
        p.spent.units() * 100 / l,
        med.usd(),
        lo.usd(),
        hi.usd(),
        p.month_end_total.usd()
    )
}

/// A rate limit passed (from `limits::headroom`): the organisation's class is scoped as a
/// model (its id the class), a workspace's own limit as the workspace; the driver names the
/// class and the limit, so each limit of each class is a finding of its own.
pub fn rate_limit(p: &crate::limits::Passing) -> Finding {
    let pct = (p.peak as f64 * 1000.0 / p.limit.max(1) as f64).round() / 10.0;
    let (scope, scope_id, scope_name) = match &p.workspace_id {
        Some(w) => (
            Scope::Workspace,
            w.clone(),
            p.workspace_name.clone().or(Some(w.clone())),
        ),
        None => (
            Scope::Model,
            format!("{}|{}", p.provider, p.class),
            Some(p.class.clone()),
        ),
    };
    Finding {
        date: p.day,
        scope,
        scope_id,
        scope_name,
        api_key_id: None,
        kind: Kind::RateLimit,
        actual_usd: Money::ZERO,
        expected_usd: Money::ZERO,
        impact_usd: Money::ZERO,
        impact_pct: None,
        score: pct,
        severity: if pct >= 100.0 {
            Severity::High
        } else if pct >= 90.0 {
            Severity::Medium
        } else {
            Severity::Low
        },
        driver: Some(format!("{} {}", p.class, p.metric.as_str())),
        sentence: p.sentence.clone(),
    }
}
