//! Anomaly detection: precision and recall on synthetic organisations with labelled anomalies
//! and traps (across seeds), zero alerts on a clean organisation, the detectors' rules on hand
//! series, and acknowledgements.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use tokenledger::anomalies::detect::{self, Kind, Scope, Series, Thresholds};
use tokenledger::money::Money;

use crate::common::*;

/// Labelled anomalies start after this many days (the detectors' warm-up).
const WARM_UP_DAYS: i64 = 35;

fn org(dir: &Path, seed: u64, mode: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let exports = dir.join(format!("exports-{seed}"));
    let o = tl(
        &dir.join("unused"),
        &[
            "-q",
            "synth",
            "--out",
            exports.to_str().unwrap(),
            "--months",
            "3",
            "--start",
            "2026-06",
            "--width",
            "1h",
            "--anomalies",
            mode,
            "--seed",
            &seed.to_string(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let data = dir.join(format!("data-{seed}"));
    assert_eq!(ingest(&data, &[&exports]).0, 0);
    (exports, data)
}

/// (date, key) of every alert on an API key after the warm-up, and of all alerts of any scope.
fn alerts(data: &Path) -> (BTreeSet<(String, String)>, usize) {
    let o = tl(
        data,
        &["anomalies", "--format", "json", "--from", "2026-07-06"],
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    let alerting: Vec<&serde_json::Value> = rows.iter().filter(|r| r["alert"] == true).collect();
    let keys = alerting
        .iter()
        .filter(|r| r["scope"] == "api_key")
        .map(|r| {
            (
                r["date"].as_str().unwrap().to_string(),
                r["scope_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (keys, alerting.len())
}

fn labels(exports: &Path) -> BTreeSet<(String, String)> {
    let mut r = csv::Reader::from_path(tokenledger::synth::labels_path(exports)).unwrap();
    r.records()
        .map(|x| x.unwrap())
        .map(|x| (x[0].to_string(), x[1].to_string()))
        .collect()
}

#[test]
fn precision_and_recall_meet_the_bar_across_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    for seed in [21, 22, 23, 24, 25] {
        let (exports, data) = org(tmp.path(), seed, "all");
        let truth = labels(&exports);
        assert_eq!(
            truth.len(),
            7,
            "seed {seed}: spikes ×4, a burst, a new key, a new model"
        );
        let first =
            NaiveDate::from_ymd_opt(2026, 6, 1).unwrap() + chrono::TimeDelta::days(WARM_UP_DAYS);
        assert!(
            truth
                .iter()
                .all(|(d, _)| d.as_str() >= first.to_string().as_str())
        );
        let (got, _) = alerts(&data);
        tp += got.intersection(&truth).count();
        fp += got.difference(&truth).count();
        fn_ += truth.difference(&got).count();
    }
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fn_) as f64;
    eprintln!(
        "anomalies over 5 seeds: tp {tp}, fp {fp}, fn {fn_}: precision {precision:.3}, recall {recall:.3}"
    );
    assert!(
        precision >= 0.9,
        "precision {precision:.3} (tp {tp}, fp {fp})"
    );
    assert!(recall >= 0.95, "recall {recall:.3} (tp {tp}, fn {fn_})");
}

#[test]
fn a_clean_organisation_with_traps_raises_no_alert() {
    // Tiny noisy keys, weekends, a key growing 3% a day, a month-end batch job.
    let tmp = tempfile::tempdir().unwrap();
    for seed in [31, 32] {
        let (_, data) = org(tmp.path(), seed, "traps");
        let (keys, all) = alerts(&data);
        assert!(
            keys.is_empty() && all == 0,
            "seed {seed}: {keys:?} ({all} alerts of any scope)"
        );
        // The trap keys are there and spend.
        let n = sql(
            &data,
            "SELECT COUNT(DISTINCT api_key_name) AS n FROM usage WHERE api_key_name LIKE 'trap-%'",
        );
        assert_eq!(n[0]["n"], 3);
    }
}

#[test]
fn an_acknowledged_finding_is_kept_and_never_alerts_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, data) = org(tmp.path(), 21, "all");
    let o = tl(&data, &["anomalies", "--alerts", "--format", "json"]);
    assert_eq!(code(&o), 3, "alerts are exit 3");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let id = rows[0]["id"].as_str().unwrap().to_string();
    let o = tl(&data, &["anomalies", "ack", &id, "--note", "load test"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = tl(&data, &["anomalies", "--format", "json"]);
    let all: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let same = all.iter().find(|r| r["id"] == id.as_str()).expect("kept");
    assert_eq!(same["acked"], "load test");
    assert_eq!(same["alert"], false);
    // Stable ids: the same findings, the same ids, on a second run.
    let again: Vec<serde_json::Value> =
        serde_json::from_slice(&tl(&data, &["anomalies", "--format", "json"]).stdout).unwrap();
    assert_eq!(all, again);
    let o = tl(&data, &["anomalies", "ack", "nosuchid", "--note", "x"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

// ---- the rules on hand series ---------------------------------------------------------------

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}
fn usd(x: i64) -> Money {
    Money::from_units(x as i128 * 10i128.pow(12))
}
/// A key's series from `(day, dollars)` over `[from, to]` by a function of the day.
fn series(from: &str, to: &str, cost: impl Fn(NaiveDate, i64) -> i64) -> Series {
    let mut s = Series {
        name: Some("k".into()),
        api_key_id: Some("k".into()),
        ..Default::default()
    };
    for (i, day) in d(from).iter_days().take_while(|x| *x <= d(to)).enumerate() {
        let c = usd(cost(day, i as i64));
        if c.is_positive() {
            s.days.insert(day, c);
            s.by_driver.insert((day, "claude-sonnet-4-6".into()), c);
        }
    }
    s
}
fn weekend(day: NaiveDate) -> bool {
    use chrono::Datelike;
    day.weekday().num_days_from_monday() >= 5
}

#[test]
fn weekends_and_steady_growth_are_not_spikes_but_a_jump_is() {
    let th = Thresholds::default();
    // $100 on weekdays, $20 on weekends: the weekend is its own kind of day.
    let s = series("2026-06-01", "2026-08-31", |day, _| {
        if weekend(day) { 20 } else { 100 }
    });
    assert!(detect::spikes(Scope::ApiKey, "k", &s, &th).is_empty());
    // 3% a day for three months (×14): the median of 28 days lags by ~1.5×, under 2.5×.
    let s = series("2026-06-01", "2026-08-31", |_, i| {
        (100.0 * 1.03f64.powi(i as i32)) as i64
    });
    assert!(detect::spikes(Scope::ApiKey, "k", &s, &th).is_empty());
    // A weekday at $800 against $100: a spike of $700, score and ratio far over the bar.
    let s = series("2026-06-01", "2026-07-31", |day, _| {
        if day == d("2026-07-15") {
            800
        } else if weekend(day) {
            20
        } else {
            100
        }
    });
    let f = detect::spikes(Scope::ApiKey, "k", &s, &th);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (
            f[0].date,
            f[0].actual_usd,
            f[0].expected_usd,
            f[0].impact_usd
        ),
        (d("2026-07-15"), usd(800), usd(100), usd(700))
    );
    assert_eq!(f[0].impact_pct, Some(700.0));
    assert!(
        f[0].sentence
            .contains("spent $800.00 on 2026-07-15, $700.00 above its usual $100.00"),
        "{}",
        f[0].sentence
    );
    assert!(
        f[0].sentence.contains("100% of it on claude-sonnet-4-6"),
        "{}",
        f[0].sentence
    );
}

#[test]
fn a_month_end_batch_job_spikes_once_then_is_recurring() {
    use chrono::Datelike;
    let th = Thresholds::default();
    let last = |day: NaiveDate| (day + chrono::TimeDelta::days(1)).month() != day.month();
    let s = series("2026-06-01", "2026-09-30", |day, _| {
        if last(day) { 1500 } else { 100 }
    });
    let f = detect::spikes(Scope::ApiKey, "k", &s, &th);
    // June 30 is new; July 31, August 31 and September 30 repeat the month before.
    let days: Vec<NaiveDate> = f.iter().map(|x| x.date).collect();
    assert_eq!(days, vec![d("2026-06-30")]);
}

#[test]
fn new_keys_new_models_and_reactivated_keys() {
    let th = Thresholds::default();
    let lake_first = d("2026-06-01");
    // A key from the lake's first week is not new; one from 2026-07-10 is.
    let early = series("2026-06-03", "2026-07-31", |_, _| 100);
    assert!(
        detect::key_events("k", &early, lake_first, &th)
            .iter()
            .all(|f| f.kind != Kind::NewKey)
    );
    let late = series("2026-07-10", "2026-07-31", |_, _| 100);
    let f = detect::key_events("k", &late, lake_first, &th);
    assert_eq!(
        f.iter()
            .filter(|f| f.kind == Kind::NewKey)
            .map(|f| f.date)
            .collect::<Vec<_>>(),
        vec![d("2026-07-10")]
    );
    // An established key spends $300 on a model it never used.
    let mut s = series("2026-06-01", "2026-07-31", |_, _| 100);
    s.by_driver
        .insert((d("2026-07-20"), "claude-opus-4-6".into()), usd(300));
    let f: Vec<_> = detect::key_events("k", &s, lake_first, &th)
        .into_iter()
        .filter(|f| f.kind == Kind::NewModelOnKey)
        .collect();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].date, f[0].actual_usd, f[0].driver.as_deref()),
        (d("2026-07-20"), usd(300), Some("claude-opus-4-6"))
    );
    // Quiet from 07-01 to 07-20, spending again on 07-21: reactivated.
    let s = series("2026-06-01", "2026-07-31", |day, _| {
        if day >= d("2026-07-01") && day <= d("2026-07-20") {
            0
        } else {
            100
        }
    });
    let f: Vec<_> = detect::key_events("k", &s, lake_first, &th)
        .into_iter()
        .filter(|f| f.kind == Kind::Reactivated)
        .collect();
    assert_eq!(
        f.iter().map(|f| f.date).collect::<Vec<_>>(),
        vec![d("2026-07-21")]
    );
    assert!(
        f[0].sentence.contains("after 20 days without spend"),
        "{}",
        f[0].sentence
    );
}

#[test]
fn a_limit_reached_on_day_23_is_reported_from_the_first_night_its_projection_crosses_90_percent() {
    let th = Thresholds::default();
    // September at $50 a day, October at $50 a day until the 10th, then $150 a day. The
    // workspace limit of $2,450 is reached on October 23 ($500 + 13 × $150).
    let s = series("2026-09-01", "2026-10-31", |day, _| {
        if day >= d("2026-10-11") { 150 } else { 50 }
    });
    let limit = usd(2450);
    let truth = s
        .days
        .range(d("2026-10-01")..)
        .scan(0i128, |mtd, (day, m)| {
            *mtd += m.units();
            Some((*day, *mtd))
        })
        .find(|(_, mtd)| *mtd >= limit.units())
        .map(|(day, _)| day)
        .unwrap();
    assert_eq!(truth, d("2026-10-23"));
    let f: Vec<_> = detect::limits(Scope::Workspace, "w", &s, limit, &th)
        .into_iter()
        .filter(|x| x.date >= d("2026-10-01"))
        .collect();
    // The burn (the median of the last 7 days) turns to $150 on the 14th, the first night the
    // month-end projection ($1,100 + 17 × $150 = $3,650) passes 90 % of the limit; before it,
    // $1,550 (63 %) was projected every night and nothing was said.
    let first = &f[0];
    assert_eq!(first.date, d("2026-10-14"), "{f:#?}");
    let around: NaiveDate = first.driver.as_deref().unwrap().parse().unwrap();
    assert!(
        (around - truth).num_days().abs() <= 1,
        "projected {around}, reached {truth}"
    );
    assert!(
        first.sentence.contains(
            "workspace k reaches its $2,450.00 monthly limit around Oct 23 (Oct 23–after month end)"
        ) && first.sentence.contains("burning $150.00/day"),
        "{}",
        first.sentence
    );
    // Then the month to date at 90 % ($2,300 on the 22nd) and the limit reached on the 23rd.
    let rest: Vec<(NaiveDate, &str)> = f[1..]
        .iter()
        .map(|x| (x.date, x.sentence.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        rest,
        vec![
            (
                d("2026-10-22"),
                "workspace k reaches its $2,450.00 monthly limit around Oct 23 (Oct 23–Oct 23)"
            ),
            (
                d("2026-10-23"),
                "workspace k reached its $2,450.00 monthly limit on 2026-10-23"
            ),
        ]
    );
    // A flat month at 63 % or at 85 % of its limit says nothing, nor does September.
    for limit in [2450, 1830] {
        let flat = series("2026-09-01", "2026-10-31", |_, _| 50);
        let f = detect::limits(Scope::Workspace, "w", &flat, usd(limit), &th);
        assert!(f.is_empty(), "${limit}: {f:#?}");
    }
}

#[test]
fn an_overnight_burst_is_found_and_a_busy_day_is_not() {
    let th = Thresholds::default();
    let s = series("2026-06-01", "2026-07-31", |_, _| 100);
    let mut hours: BTreeMap<(NaiveDate, u32), Money> = BTreeMap::new();
    for day in d("2026-06-01")
        .iter_days()
        .take_while(|x| *x <= d("2026-07-31"))
    {
        for h in 9..18 {
            hours.insert((day, h), usd(10));
        }
    }
    // 2026-07-20: $200 an hour from midnight to 6, where the key is usually idle.
    for h in 0..6 {
        hours.insert((d("2026-07-20"), h), usd(200));
    }
    // 2026-07-21: a busy day, $30 an hour at the usual hours.
    for h in 9..18 {
        hours.insert((d("2026-07-21"), h), usd(30));
    }
    let f = detect::bursts("k", &s, &hours, &th);
    assert_eq!(
        f.iter().map(|x| x.date).collect::<Vec<_>>(),
        vec![d("2026-07-20")],
        "{f:?}"
    );
    assert_eq!(f[0].impact_usd, usd(1200));
    assert_eq!(f[0].score, 6.0, "six hours");
}

#[test]
fn buckets_belong_to_the_day_and_hour_of_the_business_timezone() {
    use chrono::{NaiveDate, TimeZone, Utc};
    use tokenledger::anomalies::local_day_hour;
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    // 23:00 UTC on 31 October is midnight of 1 November in Berlin (CET, UTC+1).
    let us = Utc
        .with_ymd_and_hms(2026, 10, 31, 23, 0, 0)
        .unwrap()
        .timestamp_micros();
    let nov1 = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let oct31 = NaiveDate::from_ymd_opt(2026, 10, 31).unwrap();
    assert_eq!(local_day_hour(us, false, berlin), Some((nov1, Some(0))));
    assert_eq!(
        local_day_hour(us, false, chrono_tz::Tz::UTC),
        Some((oct31, Some(23)))
    );
    // A daily bucket keeps its UTC date whatever the zone.
    let day = Utc
        .with_ymd_and_hms(2026, 10, 31, 0, 0, 0)
        .unwrap()
        .timestamp_micros();
    assert_eq!(local_day_hour(day, true, berlin), Some((oct31, None)));
}

#[test]
fn the_scan_sums_exactly_what_the_shipped_sql_sums() {
    use std::collections::BTreeMap;
    use tokenledger::lake::Layout;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = crate::common::synth(
        tmp.path(),
        &["--months", "2", "--width", "1h", "--anomalies", "all"],
    );
    crate::common::ingest_ok(&data, &[&out]);
    assert_eq!(
        crate::common::code(&crate::common::tl(&data, &["rate", "-q"])),
        0
    );
    let layout = Layout::new(&data);
    let inp = tokenledger::anomalies::inputs(&layout, chrono_tz::Tz::UTC).unwrap();
    // sql/anomaly_buckets.sql through polars, summed per UTC day and key.
    let f = tokenledger::query::sql(&layout, tokenledger::anomalies::BUCKETS_SQL).unwrap();
    let (start, key, cost) = (
        f.micros("bucket_start").unwrap(),
        f.text("api_key_id").unwrap(),
        f.money("list_cost_usd").unwrap(),
    );
    let mut want: BTreeMap<(chrono::NaiveDate, String), i128> = BTreeMap::new();
    for i in 0..f.height() {
        let Some(k) = key[i].clone() else { continue };
        let d = chrono::DateTime::from_timestamp_micros(start[i].unwrap())
            .unwrap()
            .date_naive();
        *want.entry((d, k)).or_default() += cost[i].unwrap().units();
    }
    let mut got: BTreeMap<(chrono::NaiveDate, String), i128> = BTreeMap::new();
    for ((scope, id), s) in &inp.series {
        if *scope == tokenledger::anomalies::Scope::ApiKey {
            for (d, c) in &s.days {
                got.insert((*d, id.clone()), c.units());
            }
        }
    }
    assert!(!want.is_empty());
    assert_eq!(got, want, "the scan and the SQL agree to the unit");
}

#[test]
fn the_business_timezone_comes_from_the_config_and_a_bad_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    crate::common::ingest_ok(&data, &[&crate::common::fixtures().join("sample")]);
    let cfg = tmp.path().join("tokenledger.toml");
    std::fs::write(&cfg, "timezone = \"Mars/Olympus\"\n").unwrap();
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "anomalies",
        "--format",
        "csv",
    ];
    let o = crate::common::tl(&data, &args);
    assert_eq!(crate::common::code(&o), 2);
    assert!(
        crate::common::stderr(&o).contains("Mars/Olympus"),
        "{}",
        crate::common::stderr(&o)
    );
    std::fs::write(&cfg, "timezone = \"Europe/Berlin\"\n").unwrap();
    let o = crate::common::tl(&data, &args);
    assert!(
        [0, 3].contains(&crate::common::code(&o)),
        "{}",
        crate::common::stderr(&o)
    );
}

/// Every finding of `data` under `config` (`anomalies --format json`, the whole span).
fn findings_with(data: &Path, dir: &Path, config: &str) -> Vec<serde_json::Value> {
    let cfg = dir.join("policy.toml");
    std::fs::write(&cfg, config).unwrap();
    let o = tl(
        data,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "anomalies",
            "--format",
            "json",
        ],
    );
    assert!([0, 3].contains(&code(&o)), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)))
}

fn impact(r: &serde_json::Value) -> rust_decimal::Decimal {
    r["impact_usd"].as_str().unwrap().parse().unwrap()
}

#[test]
fn the_alerting_policy_in_the_config_decides_what_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, data) = org(tmp.path(), 21, "all");
    let base = findings_with(&data, tmp.path(), "");
    let alerting = |rows: &[serde_json::Value]| -> BTreeSet<String> {
        rows.iter()
            .filter(|r| r["alert"] == true)
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let before = alerting(&base);
    assert!(
        before.len() >= 5,
        "the organisation has alerts to filter: {base:?}"
    );

    // min_impact_usd: the median impact of today's alerts; every alert then has at least it,
    // and the alerts below it no longer alert.
    let mut impacts: Vec<rust_decimal::Decimal> = base
        .iter()
        .filter(|r| r["alert"] == true)
        .map(impact)
        .collect();
    impacts.sort();
    let floor = impacts[impacts.len() / 2];
    let rows = findings_with(
        &data,
        tmp.path(),
        &format!("[anomalies]\nmin_impact_usd = \"{floor}\"\n"),
    );
    let after = alerting(&rows);
    assert!(!after.is_empty() && after.len() < before.len(), "{after:?}");
    assert!(
        rows.iter()
            .all(|r| r["alert"] == false || impact(r) >= floor)
    );
    assert!(
        base.iter().any(|r| r["alert"] == true
            && impact(r) < floor
            && !after.contains(r["id"].as_str().unwrap())),
        "an alert below the floor went quiet"
    );

    // min_severity: only high alerts; the medium one that alerted before does not.
    let rows = findings_with(&data, tmp.path(), "[anomalies]\nmin_severity = \"high\"\n");
    assert!(
        rows.iter()
            .all(|r| r["alert"] == false || r["severity"] == "high")
    );
    assert!(
        base.iter()
            .any(|r| r["alert"] == true && r["severity"] != "high"),
        "the organisation has a lower-severity alert to silence"
    );
    assert!(alerting(&rows).len() < before.len());

    // One alert per ongoing anomaly: a finding that passes the policy on a day when the same
    // scope passed within the 7 days before does not alert again (and at least one such
    // repeat exists here, or the rule was not exercised).
    let passes = |r: &serde_json::Value| {
        r["kind"] != "limit" && impact(r) >= rust_decimal::Decimal::from(50)
    };
    let day = |r: &serde_json::Value| d(r["date"].as_str().unwrap());
    let mut repeats = 0;
    for r in base.iter().filter(|r| passes(r)) {
        let earlier = base.iter().any(|e| {
            passes(e)
                && e["scope"] == r["scope"]
                && e["scope_id"] == r["scope_id"]
                && (1..=7).contains(&(day(r) - day(e)).num_days())
        });
        if earlier {
            repeats += 1;
            assert_eq!(r["alert"], false, "an ongoing anomaly alerted again: {r}");
        }
    }
    assert!(repeats > 0, "no ongoing anomaly in the organisation");

    // [anomalies.limits]: an organisation limit of $5,000 a month (about ten days of this
    // organisation's spend) is projected to be passed early in every month, then reaches 90 %
    // and then itself: at most three findings a month, in that order, each alerting even when
    // no other finding is big enough to.
    let rows = findings_with(
        &data,
        tmp.path(),
        "[anomalies]\nmin_impact_usd = \"1000000\"\n[anomalies.limits]\norg = \"5000\"\n",
    );
    let limits: Vec<&serde_json::Value> = rows.iter().filter(|r| r["kind"] == "limit").collect();
    let mut reached = 0;
    for month in ["2026-06", "2026-07", "2026-08"] {
        let texts: Vec<&str> = limits
            .iter()
            .filter(|r| r["date"].as_str().unwrap().starts_with(month))
            .map(|r| r["sentence"].as_str().unwrap())
            .collect();
        assert!(
            (1..=3).contains(&texts.len())
                && texts[0]
                    .starts_with("The organisation reaches its $5,000.00 monthly limit around"),
            "{month}: {texts:?}"
        );
        reached += usize::from(texts.last().unwrap().contains("reached its $5,000.00"));
    }
    assert!(reached >= 2, "most months reach the limit: {limits:?}");
    assert!(
        limits
            .iter()
            .all(|r| r["alert"] == true && r["scope"] == "org")
    );
    assert!(
        rows.iter()
            .all(|r| r["kind"] == "limit" || r["alert"] == false),
        "only the limits pass a $1,000,000 impact floor"
    );
    assert!(
        base.iter().all(|r| r["kind"] != "limit"),
        "no limit, no limit finding"
    );
}

#[test]
fn the_pass_reads_unchanged_parts_from_its_cache_and_a_broken_cache_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data) = org(dir.path(), 7, "all");
    let findings = || {
        let o = tl(&data, &["anomalies", "--format", "json"]);
        assert!([0, 3].contains(&code(&o)), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let first = findings();
    assert!(
        first.contains("\"alert\": true") || first.contains("\"alert\":true"),
        "{first}"
    );
    let cache = data.join("_tokenledger/cache/anomalies");
    let files = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let parts = files();
    assert!(!parts.is_empty(), "one cached sum per part");
    assert_eq!(
        findings(),
        first,
        "read back from the cache: the same findings"
    );
    assert_eq!(files(), parts, "nothing scanned again");
    // A cache file cut short or overwritten is recomputed, never trusted.
    std::fs::write(&parts[0], b"tokenledger anomaly sums 1\n\x05").unwrap();
    std::fs::write(&parts[1], b"not ours").unwrap();
    assert_eq!(findings(), first);
    assert_eq!(
        files(),
        parts,
        "the broken two were written again, under the same keys"
    );
    assert!(
        std::fs::read(&parts[1])
            .unwrap()
            .starts_with(b"tokenledger anomaly sums 1\n")
    );
}
