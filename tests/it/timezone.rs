//! The business timezone decides which day and month a bucket belongs to, in reports, series
//! and alerts alike; the credits ledger stays on the provider's UTC days and says so.
//! `fixtures/timezone/`: an hourly October with one expensive bucket at 23:00 UTC on Oct 31,
//! 08:00 on 1 November in Tokyo (see fixtures/README.md for the hand-computed figures).

use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// Runs tokenledger on `data` with `cfg`; (exit code, stdout, stderr).
fn with(data: &Path, cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let o = lake_cmd(data)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap();
    (
        code(&o),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr(&o),
    )
}

/// Day → exact list cost of `report --month M --by day`; empty when no usage export covers
/// any instant of the month in the business timezone (the report refuses it, exit 2).
fn by_day(data: &Path, cfg: &Path, month: &str) -> Vec<(String, String)> {
    let (c, out, err) = with(
        data,
        cfg,
        &[
            "report", "--month", month, "--by", "day", "--format", "json",
        ],
    );
    if c == 2 && err.contains(&format!("no usage export covers {month}")) {
        return Vec::new();
    }
    assert_eq!(c, 0, "{err}");
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    v.iter()
        .map(|r| {
            (
                r["day"].as_str().unwrap().to_string(),
                r["list_cost_usd_exact"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn total(rows: &[(String, String)]) -> rust_decimal::Decimal {
    rows.iter()
        .map(|(_, c)| c.parse::<rust_decimal::Decimal>().unwrap())
        .sum()
}

/// The alert digest's text, as written to the outbox by `run`.
fn digest(data: &Path) -> String {
    let mut text = String::new();
    for e in std::fs::read_dir(data.join("outbox")).unwrap() {
        let dir = e.unwrap().path();
        if dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("alerts-")
        {
            for f in std::fs::read_dir(&dir).unwrap() {
                text.push_str(&std::fs::read_to_string(f.unwrap().path()).unwrap());
            }
        }
    }
    assert!(!text.is_empty(), "no alert digest in the outbox");
    text
}

#[test]
fn a_bucket_at_23_utc_on_the_last_day_is_next_month_in_tokyo_and_this_month_in_utc() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = fixtures().join("timezone");
    let mut seen_new_key = Vec::new();
    for (zone, october, november, alert_day) in [
        ("UTC", "171.600000000000", "0", "2026-10-31"),
        (
            "Asia/Tokyo",
            "18.600000000000",
            "153.000000000000",
            "2026-11-01",
        ),
    ] {
        let data = tmp.path().join(zone.replace('/', "-"));
        let cfg = tmp.path().join(format!("{}.toml", zone.replace('/', "-")));
        std::fs::write(&cfg, format!("timezone = \"{zone}\"\n")).unwrap();

        // The nightly job, as of 3 November: the new key's first day is within the alert days.
        let (c, _, err) = with(
            &data,
            &cfg,
            &[
                "-q",
                "run",
                "--inputs",
                fixtures.to_str().unwrap(),
                "--as-of",
                "2026-11-03",
            ],
        );
        assert!(matches!(c, 0 | 3), "{err}");

        // Reports: the 23:00 UTC bucket is October's in UTC and November's in Tokyo.
        let oct = by_day(&data, &cfg, "2026-10");
        let nov = by_day(&data, &cfg, "2026-11");
        assert_eq!(
            total(&oct),
            october.parse().unwrap(),
            "{zone} October: {oct:?}"
        );
        assert_eq!(
            total(&nov),
            november.parse().unwrap(),
            "{zone} November: {nov:?}"
        );
        // Together the two months hold every cent exactly once.
        assert_eq!(
            total(&oct) + total(&nov),
            "171.600000000000".parse().unwrap()
        );
        let days: Vec<&str> = nov.iter().map(|(d, _)| d.as_str()).collect();
        if zone == "Asia/Tokyo" {
            assert_eq!(days, ["2026-11-01"]);
            assert_eq!(oct.first().unwrap().0, "2026-10-01");
        } else {
            assert!(days.is_empty());
            assert_eq!(
                oct.last().unwrap(),
                &("2026-10-31".into(), "153.600000000000".into())
            );
        }
        // The report says in which zone its days are (October: UTC's November is no month
        // the data covers, and is refused).
        let (_, table, _) = with(&data, &cfg, &["report", "--month", "2026-10"]);
        let head = table.lines().next().unwrap();
        if zone == "UTC" {
            assert!(head.starts_with("2026-10 (UTC days)"), "{head}");
        } else {
            assert!(head.starts_with("2026-10 (days in Asia/Tokyo"), "{head}");
        }

        // Series and alerts: the new key's first day is the day of that bucket in the zone.
        let (_, out, err) = with(&data, &cfg, &["anomalies", "--alerts", "--format", "json"]);
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {err}"));
        let new_key = rows
            .iter()
            .find(|r| r["kind"] == "new_key" && r["scope_id"] == "apikey_01TzFreshKey0000001")
            .unwrap_or_else(|| panic!("{zone}: no new_key alert in {rows:?}"));
        assert_eq!(new_key["date"], alert_day, "{zone}");
        assert_eq!(new_key["actual_usd"], "153.000000000000");
        seen_new_key.push(new_key["id"].clone());
        // The digest the nightly run mailed says the same day.
        let mail = digest(&data);
        let said = format!("over 1 day(s) {alert_day} to {alert_day}");
        assert!(
            mail.contains(&said),
            "{zone}: {said:?} not in the digest:\n{mail}"
        );

        // Credits stay on the provider's UTC days, in either zone, and say so.
        let daily_sql = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/credits_daily.sql");
        let (c, out, err) = with(
            &data,
            &cfg,
            &[
                "sql",
                "--format",
                "json",
                "--file",
                daily_sql.to_str().unwrap(),
            ],
        );
        assert_eq!(c, 0, "{err}");
        let daily: Vec<Value> = serde_json::from_str(&out).unwrap();
        let last = daily.iter().find(|r| r["day"] == "2026-10-31").unwrap();
        assert_eq!(last["list_cost_usd"], "153.600000000000", "{zone}");
        let (_, text, _) = with(&data, &cfg, &["credits", "--as-of", "2026-11-03"]);
        assert!(text.contains("UTC days"), "{text}");
        // Reconciliation is on the provider's days too.
        let (_, text, _) = with(&data, &cfg, &["reconcile", "--month", "2026-10"]);
        assert!(text.starts_with("2026-10 (UTC days)"), "{text}");
    }
    // The finding is another one in each zone (its id includes its day).
    assert_ne!(seen_new_key[0], seen_new_key[1]);
}

#[test]
fn changing_the_timezone_re_rates_and_an_unknown_one_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("timezone")]);
    let cfg = tmp.path().join("tokenledger.toml");
    std::fs::write(&cfg, "timezone = \"UTC\"\n").unwrap();
    let (c, out, _) = with(&data, &cfg, &["rate", "--json"]);
    assert_eq!(c, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["months_rated"], serde_json::json!(["2026-10"]));
    // Same zone: nothing to do. Another zone: the calendar columns are derived again.
    let (_, out, _) = with(&data, &cfg, &["rate", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["months_rated"], serde_json::json!([]));
    std::fs::write(&cfg, "timezone = \"America/Los_Angeles\"\n").unwrap();
    let (_, out, _) = with(&data, &cfg, &["rate", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["months_rated"], serde_json::json!(["2026-10"]));
    // In Los Angeles (UTC−7 in October) the 12:00 UTC rows stay on their day, and October's
    // last UTC hours are still October: November gets nothing from this export.
    let oct = by_day(&data, &cfg, "2026-10");
    assert_eq!(total(&oct), "171.600000000000".parse().unwrap());
    // A zone that is not IANA's fails fast with the file, the key's line and the value.
    std::fs::write(&cfg, "timezone = \"Europe/Atlantis\"\n").unwrap();
    let (c, _, err) = with(&data, &cfg, &["report", "--month", "2026-10"]);
    assert_eq!(c, 2, "{err}");
    assert!(
        err.contains("tokenledger.toml")
            && err.contains("line 1")
            && err.contains("Europe/Atlantis"),
        "{err}"
    );
}
