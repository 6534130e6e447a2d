//! `tokenledger reconcile`: every difference explained or listed.

use crate::common::*;

fn reconcile(data: &std::path::Path) -> (i32, serde_json::Value) {
    let o = tl(
        data,
        &["reconcile", "--month", "2026-10", "--format", "json"],
    );
    (
        code(&o),
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o))),
    )
}

#[test]
fn the_sample_month_is_fully_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let (c, r) = reconcile(&data);
    assert_eq!(c, 0, "{r:#}");
    assert_eq!(r["lines_unexplained"], 0);
    let lines = r["lines"].as_array().unwrap();
    let cause = |charge: &str| {
        lines
            .iter()
            .find(|l| l["charge"] == charge)
            .map(|l| l["cause"].as_str().unwrap().to_string())
    };
    let code_exec = cause("code_execution").unwrap();
    assert!(code_exec.contains("only in the cost report"), "{code_exec}");
    // 12.5 cents at the book's $0.05 per container-hour (code_execution_hour) is 2.5 hours.
    assert!(
        code_exec.contains("2.5 container-hour(s) billed at $0.05/h"),
        "{code_exec}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["cause"].as_str().unwrap().contains("priority tier"))
            .count()
            >= 2
    );
    assert!(r["lines_matched"].as_u64().unwrap() >= 20);
    assert_eq!(r["provider_usd"], "2.195012500000");
    assert_eq!(r["ours_usd"], "2.920112500000");
}

#[test]
fn an_extra_charge_is_listed_as_unexplained_and_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    ingest_ok(&data, &[&fixtures().join("reconcile")]);
    let (c, r) = reconcile(&data);
    assert_eq!(c, 3);
    let bad: Vec<_> = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["status"] == "unexplained")
        .collect();
    assert_eq!(bad.len(), 1, "{r:#}");
    let l = bad[0];
    assert_eq!(l["day"], "2026-10-04");
    assert_eq!(l["workspace_name"], "Search");
    assert_eq!(l["model"], "claude-opus-4-5");
    assert_eq!(l["difference_usd"], "-2.500000000000");
    let search = r["per_workspace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workspace_name"] == "Search")
        .unwrap();
    assert_eq!(search["unexplained_usd"], "-2.500000000000");
    // The nightly job says so too, quietly, through its exit code.
    let o = tl(
        &data,
        &[
            "-q",
            "run",
            "--inputs",
            fixtures().join("sample").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 3);
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "quiet under cron"
    );
    // The table says the same for people.
    let o = tl(&data, &["reconcile", "--month", "2026-10"]);
    assert_eq!(code(&o), 3);
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 unexplained"));
}

#[test]
fn days_missing_on_either_side_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Usage for Oct 1-5, but only the restated Oct 4 cost page: the other days have no cost report.
    ingest_ok(
        &data,
        &[
            &fixtures().join("sample/usage-2026-10-p1.json"),
            &fixtures().join("sample/usage-2026-10-p2.json"),
            &fixtures().join("reconcile"),
        ],
    );
    let (_, r) = reconcile(&data);
    let lines = r["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["day"] == "2026-10-01"
            && l["cause"]
                .as_str()
                .unwrap()
                .contains("no cost report for this day")),
        "{r:#}"
    );
}

#[test]
fn a_synthetic_month_reconciles_with_its_own_cost_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exports = synth(
        tmp.path(),
        &["--width", "1h", "--seed", "31", "--rows-per-bucket", "12"],
    );
    assert!(exports.join("cost/cost-2026-10.json").exists());
    let (c, _) = ingest(&data, &[&exports]);
    assert_eq!(c, 0);
    let (c, r) = reconcile(&data);
    assert_eq!(c, 0, "{:#}", r["lines"]);
    assert_eq!(r["lines_unexplained"], 0);
    assert!(
        r["lines_matched"].as_u64().unwrap() > 300,
        "{}",
        r["lines_matched"]
    );
    let causes: std::collections::BTreeSet<String> = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["cause"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        causes.contains("priority tier") && causes.contains("only in the cost report"),
        "{causes:?}"
    );
}
