//! Limits before they bite: rate-limit headroom from a generated minute series (Analytics API
//! usage queries in `1m` buckets, `synth::minutes`), checked against the generator's own
//! per-minute sums; hourly data only as a lower bound; the spend cap and its day in the nightly
//! digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use tokenledger::synth::minutes::{Counts, MinutePlan, Truth, write};

use crate::common::{code, ingest_ok, stderr, tl, tl_cfg};

const SONNET: &str = "claude-sonnet-4-6";

fn planted_minute() -> DateTime<Utc> {
    "2026-11-03T14:07:00Z".parse().unwrap()
}

/// Two days, three workspaces (four keys), three model classes; on Sonnet one planted minute of
/// 1.5 M extra input tokens (the organisation's Sonnet minutes are otherwise under 15 % of the
/// 2 M ITPM of the default table's tier 4).
fn plan(width: &'static str) -> MinutePlan {
    MinutePlan {
        start: NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
        days: 2,
        workspaces: vec![
            ("wrkspc_search".into(), 2),
            ("wrkspc_data".into(), 1),
            // The default workspace with a null id: a workspace, not the organisation.
            (String::new(), 1),
        ],
        models: vec![
            (SONNET.into(), 60_000),
            ("claude-haiku-4-5-20251001".into(), 100_000),
            ("claude-opus-4-7".into(), 40_000),
        ],
        planted: BTreeMap::from([(
            (SONNET.to_string(), planted_minute()),
            Counts {
                input: 1_500_000,
                output: 0,
                requests: 0,
            },
        )]),
        width,
        seed: 7,
    }
}

fn lake(dir: &Path, width: &'static str) -> (PathBuf, Truth) {
    let (files, truth) = write(&plan(width), &dir.join("in")).unwrap();
    let data = dir.join("data");
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    ingest_ok(&data, &paths);
    (data, truth)
}

fn limits_json(data: &Path, cfg: Option<&Path>) -> (i32, serde_json::Value) {
    let args = ["limits", "--days", "7", "--format", "json"];
    let o = match cfg {
        Some(c) => tl_cfg(data, c, &args),
        None => tl(data, &args),
    };
    assert!([0, 3].contains(&code(&o)), "{}", stderr(&o));
    (code(&o), serde_json::from_slice(&o.stdout).unwrap())
}

/// The organisation's series of one model's class from the generator: minute → counts.
fn org_minutes(truth: &Truth, model: &str) -> Vec<(DateTime<Utc>, Counts)> {
    truth
        .iter()
        .filter(|((m, _), _)| m == model)
        .map(|((_, at), c)| (*at, *c))
        .collect()
}

fn stat<'a>(h: &'a serde_json::Value, class: &str, metric: &str) -> &'a serde_json::Value {
    h["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["class"] == class && g["workspace_id"].is_null())
        .and_then(|g| {
            g["stats"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["metric"] == metric)
        })
        .unwrap_or_else(|| panic!("no {class} {metric} in {h:#}"))
}

#[test]
fn a_planted_near_limit_minute_is_one_finding_with_its_model_minute_and_peak() {
    let dir = tempfile::tempdir().unwrap();
    let (data, truth) = lake(dir.path(), "1m");
    let (rc, v) = limits_json(&data, None);
    let h = &v["headroom"];
    assert_eq!(rc, 3, "a minute passed the threshold: exit 3");
    assert!(
        h["sources"]["anthropic"]
            .as_str()
            .is_some_and(|s| s.contains("read 2026-12-07") && s.contains("tier-4, assumed")),
        "the table used is named with its date: {}",
        h["sources"]
    );
    let sonnet = org_minutes(&truth, SONNET);
    let (at, peak) = sonnet
        .iter()
        .max_by_key(|(at, c)| (c.input, std::cmp::Reverse(*at)))
        .map(|(at, c)| (*at, c.input))
        .unwrap();
    assert_eq!(
        at,
        planted_minute(),
        "the generator's busiest Sonnet minute"
    );

    let passing = h["passing"].as_array().unwrap();
    assert_eq!(passing.len(), 1, "exactly one finding: {passing:#?}");
    let p = &passing[0];
    assert_eq!(p["class"], "Claude Sonnet 4.x");
    assert_eq!(p["metric"], "itpm");
    assert!(p["workspace_id"].is_null(), "the organisation's limit");
    assert_eq!(
        p["at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(),
        at
    );
    assert_eq!(
        p["peak"], peak,
        "the organisation's minute: each workspace once (the null-id default too), no cache reads"
    );
    assert_eq!(p["limit"], 2_000_000);
    assert_eq!(p["lower_bound"], false);

    // Every class's peaks, p99 and requests per minute, against the generator.
    for (model, class) in [
        (SONNET, "Claude Sonnet 4.x"),
        ("claude-haiku-4-5-20251001", "Claude Haiku 4.5"),
        ("claude-opus-4-7", "Claude Opus 4.x"),
    ] {
        let minutes = org_minutes(&truth, model);
        for (metric, f) in [
            ("itpm", (|c: &Counts| c.input) as fn(&Counts) -> u64),
            ("otpm", |c| c.output),
            ("rpm", |c| c.requests),
        ] {
            let mut v: Vec<u64> = minutes
                .iter()
                .map(|(_, c)| f(c))
                .filter(|x| *x > 0)
                .collect();
            v.sort_unstable();
            let p99 = v[(v.len() * 99).div_ceil(100) - 1];
            let s = stat(h, class, metric);
            assert_eq!(s["peak"], *v.last().unwrap(), "{class} {metric} peak");
            assert_eq!(s["p99"], p99, "{class} {metric} p99");
        }
    }
    assert!(
        p["sentence"]
            .as_str()
            .unwrap()
            .contains("in the minute 2026-11-03 14:07 UTC")
            && p["sentence"].as_str().unwrap().contains(
                "of the 2,000,000 ITPM limit (built-in table read 2026-12-07, tier-4 assumed)"
            ),
        "{}",
        p["sentence"]
    );

    // The same finding in the anomaly stage: kind rate_limit, once, with an ack id.
    let o = tl(&data, &["anomalies", "--format", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let rl: Vec<&serde_json::Value> = rows.iter().filter(|r| r["kind"] == "rate_limit").collect();
    assert_eq!(rl.len(), 1, "{rl:#?}");
    assert_eq!(rl[0]["alert"], true);
    assert_eq!(rl[0]["date"], "2026-11-03");
    let id = rl[0]["id"].as_str().unwrap().to_string();
    let o = tl(&data, &["anomalies", "ack", &id, "--note", "load test"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = tl(&data, &["anomalies", "--format", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        rows.iter()
            .any(|r| r["id"] == id.as_str() && r["alert"] == false && r["acked"] == "load test")
    );
}

#[test]
fn hourly_data_gives_a_lower_bound_and_no_false_finding() {
    let dir = tempfile::tempdir().unwrap();
    let (data, truth) = lake(dir.path(), "1h");
    let (rc, v) = limits_json(&data, None);
    let h = &v["headroom"];
    assert_eq!(rc, 0, "nothing near a limit: {h:#}");
    assert_eq!(h["passing"].as_array().unwrap().len(), 0);
    let notes = h["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .unwrap()
            .starts_with("only hourly or daily data for")),
        "{notes:?}"
    );
    // The lower bound: the busiest hour's mean per minute, from the generator's minutes.
    let mut hours: BTreeMap<DateTime<Utc>, u64> = BTreeMap::new();
    for (at, c) in org_minutes(&truth, SONNET) {
        let hour = at - TimeDelta::minutes(i64::from(chrono::Timelike::minute(&at)));
        *hours.entry(hour).or_default() += c.input;
    }
    let s = stat(h, "Claude Sonnet 4.x", "itpm");
    assert!(s["peak"].is_null(), "no minute is known: {s}");
    assert_eq!(s["lower_bound"], hours.values().max().unwrap() / 60);
    // The planted minute is in there, averaged away: below the threshold, so no finding.
    assert!(s["lower_bound"].as_u64().unwrap() * 100 < 2_000_000 * 80);
}

#[test]
fn the_spend_cap_is_a_finding_with_its_day_in_the_nightly_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = write(&plan("1m"), &dir.path().join("in")).unwrap();
    let data = dir.path().join("data");
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    ingest_ok(&data, &paths);
    // A cap of 20 days at this pace: two days spent, 27 to go at the same burn pass it.
    let rows = crate::common::sql(
        &data,
        "SELECT CAST(SUM(list_cost) AS VARCHAR) AS c FROM rated_usage",
    );
    let two_days: rust_decimal::Decimal = rows[0]["c"].as_str().unwrap().parse().unwrap();
    let cap = (two_days * rust_decimal::Decimal::TEN).round();
    let cfg = dir.path().join("tokenledger.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\ninputs = [{:?}]\n[mail]\nfinance = [\"finance@example.com\"]\n\
             [limits.anthropic]\nspend_cap_usd = \"{cap}\"\n",
            data.display().to_string(),
            files[0].parent().unwrap().display().to_string()
        ),
    )
    .unwrap();
    // The night after the data: the digest carries what is new within a week before it.
    let o = tl_cfg(
        &data,
        &cfg,
        &["run", "--json", "-q", "--as-of", "2026-11-04"],
    );
    assert!([3, 4].contains(&code(&o)), "{}", stderr(&o));
    let (_, v) = limits_json(&data, Some(&cfg));
    let cap = v["spend"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "spend_cap")
        .unwrap_or_else(|| panic!("no spend cap: {v:#}"));
    assert_eq!(cap["name"], "Anthropic spend");
    assert_eq!(cap["as_of"], "2026-11-03");
    let _ = &cap["limit_usd"];
    // The digest (not the month's finance mail) names the rate limit and the spend cap's
    // projected day.
    let mut eml = String::new();
    let digests: Vec<PathBuf> = walk(&data.join("outbox"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/alerts-"))
        .collect();
    assert_eq!(digests.len(), 1, "one digest: {digests:?}");
    for e in digests {
        eml.push_str(&std::fs::read_to_string(e).unwrap());
    }
    let flat = eml.replace("=\r\n", "").replace("=\n", "");
    assert!(flat.contains("Claude Sonnet 4.x (organisation)"), "{flat}");
    assert!(
        flat.contains("Anthropic spend reaches its $")
            && flat.contains("monthly spend cap around Nov 2"),
        "{flat}"
    );
    // When November is final, the finance mail lists both among the month's alerts.
    let o = tl_cfg(
        &data,
        &cfg,
        &["run", "--json", "-q", "--as-of", "2026-12-04"],
    );
    assert!([0, 3, 4].contains(&code(&o)), "{}", stderr(&o));
    let finance: Vec<PathBuf> = walk(&data.join("outbox/2026-11"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/finance--"))
        .collect();
    assert_eq!(finance.len(), 1, "{finance:?}");
    let text = std::fs::read_to_string(&finance[0]).unwrap();
    let flat = text.replace("=\r\n", "").replace("=\n", "");
    assert!(
        flat.contains("Claude Sonnet 4.x (organisation)") && flat.contains("monthly spend cap"),
        "{flat}"
    );
    let around: NaiveDate = cap["reached_around"].as_str().unwrap().parse().unwrap();
    assert!(
        (around - NaiveDate::from_ymd_opt(2026, 11, 22).unwrap())
            .num_days()
            .abs()
            <= 1,
        "20 days of spend from Nov 2: around Nov 21–22, not {around}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "eml") {
            out.push(p);
        }
    }
    out
}

/// The organisation's real limits, saved from the Admin API (`GET /v1/organizations/rate_limits`,
/// `fixtures/limits/admin-rate-limits.json`): its model groups replace the table's classes and
/// numbers — the planted minute is now over the 1.5 M ITPM of the file — and every output says
/// which limits it used.
#[test]
fn the_admin_apis_rate_limits_win_over_the_built_in_table() {
    let dir = tempfile::tempdir().unwrap();
    let (data, truth) = lake(dir.path(), "1m");
    let cfg = dir.path().join("tokenledger.toml");
    std::fs::copy(
        crate::common::fixtures().join("limits/admin-rate-limits.json"),
        dir.path().join("rate-limits.json"),
    )
    .unwrap();
    std::fs::write(
        &cfg,
        "[limits.anthropic]\nrate_limits_file = \"rate-limits.json\"\n",
    )
    .unwrap();
    let (rc, v) = limits_json(&data, Some(&cfg));
    assert_eq!(rc, 3);
    let h = &v["headroom"];
    assert!(
        h["sources"]["anthropic"]
            .as_str()
            .unwrap()
            .starts_with("the Admin API's rate limits in "),
        "{}",
        h["sources"]
    );
    let passing = h["passing"].as_array().unwrap();
    assert_eq!(passing.len(), 1, "{passing:#?}");
    let peak = org_minutes(&truth, SONNET)
        .iter()
        .map(|(_, c)| c.input)
        .max()
        .unwrap();
    assert_eq!(passing[0]["peak"], peak);
    assert_eq!(passing[0]["limit"], 1_500_000, "the file's Sonnet 4.x ITPM");
    assert!(
        passing[0]["sentence"]
            .as_str()
            .unwrap()
            .contains("ITPM limit (Admin API limits saved "),
        "{}",
        passing[0]["sentence"]
    );
    // The file's Haiku group and the table's Opus class (the file does not list it).
    assert_eq!(stat(h, "Claude Haiku 4.5", "otpm")["limit"], 600_000);
    assert_eq!(stat(h, "Claude Opus 4.x", "itpm")["limit"], 2_000_000);
    // A file that is not the API's is a usage error naming it.
    std::fs::write(dir.path().join("rate-limits.json"), "{\"data\": 3}").unwrap();
    let o = tl_cfg(&data, &cfg, &["limits"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("rate_limits_file") && stderr(&o).contains("rate-limits.json"),
        "{}",
        stderr(&o)
    );
}
