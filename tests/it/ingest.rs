//! Ingest end to end through the binary: idempotency, restatement, precedence, exit codes.

use std::path::Path;

use crate::common::*;

/// Hand-computed from fixtures/sample (see fixtures/README.md).
fn sample_expectations() -> [(&'static str, [i64; 7]); 3] {
    // uncached, 5m, 1h, read, output, web, rows
    [
        ("2026-08", [54981, 16369, 0, 1600, 18932, 0, 2]),
        ("2026-09", [350681, 16969, 500, 12000, 43432, 3, 5]),
        ("2026-10", [888000, 3000, 1000, 59200, 109300, 12, 8]),
    ]
}

fn month_totals(data: &Path, month: &str) -> [i64; 7] {
    let t = totals(
        data,
        &format!("WHERE strftime(bucket_start, '%Y-%m') = '{month}'"),
    );
    // Anthropic's five classes and web search; OpenAI's cache-write classes stay zero.
    let names = [0, 1, 2, 3, 4, tokenledger::vocab::WEB_SEARCH].map(|k| TOKEN_COLS[k]);
    for c in TOKEN_COLS.iter().filter(|c| !names.contains(c)) {
        assert_eq!(t[*c].value(), 0, "{c}");
    }
    let mut out = [0; 7];
    for (i, c) in names.iter().enumerate() {
        out[i] = t[*c].value();
    }
    out[6] = t["usage_rows"].value();
    out
}

#[test]
fn sample_lands_with_hand_checked_totals() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (code, summary) = ingest(&data, &[&fixtures().join("sample")]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["files"].as_array().unwrap().len(), 7);
    for (month, expected) in sample_expectations() {
        assert_eq!(month_totals(&data, month), expected, "month {month}");
    }
    // Names come from the key/workspace lists; IDs are resolved for CSV names.
    let rows = sql(
        &data,
        "SELECT DISTINCT api_key_id, api_key_name FROM usage WHERE api_key_name = 'closer-app'",
    );
    assert!(
        rows.iter()
            .all(|r| r["api_key_id"] == "apikey_01Xw3PzQ9vR2mN7bK5jH1gFd"),
        "{rows:?}"
    );
    let rows = sql(
        &data,
        "SELECT COUNT(*) AS n FROM usage WHERE api_key_id IS NULL AND workspace_name = 'Default'",
    );
    assert_eq!(
        rows[0]["n"], 2,
        "Console usage without a key is kept (Oct 1 API row, Sep 30 CSV row)"
    );
    // Lineage: every row names its file and ingest.
    let rows = sql(
        &data,
        "SELECT COUNT(*) AS n FROM usage WHERE source_file LIKE '%fixtures/sample/%' AND ingest_id IS NOT NULL",
    );
    assert_eq!(rows[0]["n"], 15);
    // Multi-page export: both pages, and the empty Oct 3 bucket is recorded as covered.
    let rows = sql(
        &data,
        "SELECT COUNT(*) AS n FROM usage_coverage WHERE family = 'api'",
    );
    assert_eq!(rows[0]["n"], 5);
}

#[test]
fn ingesting_twice_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exports = synth(
        tmp.path(),
        &["--width", "1h", "--console-csv", "--seed", "7"],
    );
    let (c1, _) = ingest(&data, &[&exports, &fixtures().join("sample")]);
    assert_eq!(c1, 0);
    let before = snapshot(&data);
    let (c2, s2) = ingest(&data, &[&exports, &fixtures().join("sample")]);
    assert_eq!(c2, 0);
    assert!(
        s2["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "unchanged"),
        "{s2}"
    );
    assert_eq!(s2["committed"], false);
    assert_eq!(
        snapshot(&data),
        before,
        "second ingest must not touch a single file"
    );
    // A copy of an already-ingested file under another name is recognised by content.
    let copy = tmp.path().join("copy.json");
    std::fs::copy(fixtures().join("sample/usage-2026-10-p1.json"), &copy).unwrap();
    let (c3, s3) = ingest(&data, &[&copy]);
    assert_eq!(c3, 0);
    assert_eq!(s3["files"][0]["status"], "unchanged");
    assert_eq!(snapshot(&data), before);
}

#[test]
fn two_copies_in_one_command_load_once_and_the_first_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, both) = (tmp.path().join("one"), tmp.path().join("both"));
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(inbox.join("b")).unwrap();
    let page = fixtures().join("sample/usage-2026-10-p1.json");
    std::fs::copy(&page, inbox.join("a.json")).unwrap();
    std::fs::copy(&page, inbox.join("b/a-again.json")).unwrap();
    std::fs::copy(
        fixtures().join("sample/cost-2026-10.json"),
        inbox.join("c.json"),
    )
    .unwrap();
    let (c1, _) = ingest(&one, &[&page, &fixtures().join("sample/cost-2026-10.json")]);
    let (c2, s) = ingest(&both, &[&inbox]);
    assert_eq!((c1, c2), (0, 0), "{s}");
    let files = s["files"].as_array().unwrap();
    let status = |name: &str| {
        files
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(name))
            .map(|f| f["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{name} in {s}"))
    };
    assert_eq!(status("/a.json"), "new");
    assert_eq!(status("a-again.json"), "duplicate");
    assert_eq!(status("c.json"), "new");
    // The rows count once, and the manifest holds the content once, under the first name.
    assert_eq!(totals(&both, ""), totals(&one, ""));
    let log = sql(
        &both,
        "SELECT source_file, content_hash, rows_loaded FROM ingest_log ORDER BY source_file",
    );
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0]["source_file"].as_str().unwrap().ends_with("/a.json"));
    // The manifest's hash is the one the next ingest recognises: nothing is read again.
    let (c3, again) = ingest(&both, &[&inbox, &page]);
    assert_eq!(c3, 0);
    assert!(all_unchanged(&again), "{again}");
    // Nothing the duplicate's worker staged is left behind.
    let staging = both.join("_tokenledger/staging");
    let left = std::fs::read_dir(&staging).map_or(0, |d| d.count());
    assert_eq!(left, 0, "staging is empty after the commit");
}

#[test]
fn a_newer_export_restates_the_same_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let day1 = "WHERE strftime(bucket_start, '%Y-%m-%d') = '2026-10-01'";
    let before_other_days = totals(
        &data,
        "WHERE strftime(bucket_start, '%Y-%m-%d') > '2026-10-01'",
    );
    assert_eq!(totals(&data, day1)["usage_rows"], 3);
    let (code, s) = ingest(
        &data,
        &[&fixtures().join("formats/usage-2026-10-01-restated.json")],
    );
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["lake_rows_superseded"], 3);
    let t = totals(&data, day1);
    // Only the newer numbers remain: 1600 + 120000 uncached, 550 + 30000 output; the Console row is gone.
    assert_eq!(
        (
            t["usage_rows"].value(),
            t["uncached_input_tokens"].value(),
            t["output_tokens"].value()
        ),
        (2, 121600, 30550)
    );
    assert_eq!(
        totals(
            &data,
            "WHERE strftime(bucket_start, '%Y-%m-%d') > '2026-10-01'"
        ),
        before_other_days
    );
}

#[test]
fn a_partial_restatement_of_a_coarser_bucket_is_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let before = totals(&data, "");
    let (code, s) = ingest(
        &data,
        &[&fixtures().join("formats/usage-2026-10-02-partial-hours.json")],
    );
    assert_eq!(code, 3, "{s}");
    assert_eq!(
        totals(&data, ""),
        before,
        "the complete daily data stays; the hour is not added on top"
    );
    let q = sql(
        &data,
        "SELECT reason FROM quarantine WHERE source_file LIKE '%partial-hours%'",
    );
    assert_eq!(q.len(), 1);
    assert!(
        q[0]["reason"]
            .as_str()
            .unwrap()
            .contains("restates only part"),
        "{q:?}"
    );
}

#[test]
fn finer_buckets_that_cover_a_whole_day_replace_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let daily = synth(&tmp.path().join("d"), &["--width", "1d", "--seed", "3"]);
    let hourly = synth(&tmp.path().join("h"), &["--width", "1h", "--seed", "4"]);
    let (c, _) = ingest(&data, &[&daily]);
    assert_eq!(c, 0);
    let (c, _) = ingest(&data, &[&hourly]);
    assert_eq!(c, 0);
    let clean = tmp.path().join("clean");
    ingest_ok(&clean, &[&hourly]);
    assert_eq!(
        totals(&data, ""),
        totals(&clean, ""),
        "after the hourly export only hourly rows remain"
    );
    let widths = sql(&data, "SELECT DISTINCT bucket_width FROM usage");
    assert_eq!(widths.len(), 1);
    assert_eq!(widths[0]["bucket_width"], "1h");
}

#[test]
fn admin_api_wins_over_console_csv_in_either_order() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = synth(
        tmp.path(),
        &["--width", "1h", "--console-csv", "--seed", "11"],
    );
    let api_only = tmp.path().join("api_only");
    ingest_ok(
        &api_only,
        &[
            &exports.join("usage"),
            &exports.join("workspaces.json"),
            &exports.join("api_keys.json"),
        ],
    );
    let expected = totals(&api_only, "");
    assert!(expected["usage_rows"] > 100);

    // CSV first, then the API pages: the CSV days leave the lake.
    let a = tmp.path().join("a");
    let (c, s) = ingest(&a, &[&exports.join("console")]);
    assert_eq!(c, 0, "{s}");
    assert!(totals(&a, "")["usage_rows"] > 0);
    ingest_ok(
        &a,
        &[
            &exports.join("usage"),
            &exports.join("workspaces.json"),
            &exports.join("api_keys.json"),
        ],
    );
    assert_eq!(totals(&a, ""), expected);

    // API first, then the CSV: nothing of the CSV is loaded.
    let b = tmp.path().join("b");
    ingest_ok(
        &b,
        &[
            &exports.join("usage"),
            &exports.join("workspaces.json"),
            &exports.join("api_keys.json"),
        ],
    );
    let (c, s) = ingest(&b, &[&exports.join("console")]);
    assert_eq!(c, 0);
    assert_eq!(
        s["by_format"]["anthropic-console-usage-csv"]["rows_loaded"],
        0
    );
    assert!(
        s["by_format"]["anthropic-console-usage-csv"]["rows_superseded"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert_eq!(totals(&b, ""), expected);

    // Same tokens either way: the CSV is the daily sum of the same usage.
    let csv_only = tmp.path().join("csv_only");
    ingest_ok(&csv_only, &[&exports.join("console")]);
    let csv = totals(&csv_only, "");
    for c in TOKEN_COLS {
        assert_eq!(csv[c], expected[c], "{c}");
    }
}

#[test]
fn exit_codes_and_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = tl(
        &data,
        &["ingest", tmp.path().join("nope.json").to_str().unwrap()],
    );
    assert_eq!(code(&o), 2, "a missing path is a usage error");
    assert!(stderr(&o).contains("nope.json"));
    let o = tl(&data, &["ingest"]);
    assert_eq!(code(&o), 2);
    let o = tl(&data, &["usage", "--month", "2026-13"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("YYYY-MM"));
    let o = tl(&data, &["ingest", "--format", "xml", "x"]);
    assert_eq!(code(&o), 2);
    let o = tl(&data, &["sql", "SELECT 1"]);
    assert_eq!(code(&o), 2, "not a lake yet");
    assert!(stderr(&o).contains("no lake at"), "{}", stderr(&o));
    ingest_ok(&data, &[&fixtures().join("sample").join("workspaces.json")]);
    let o = tl(&data, &["sql", "SELECT * FROM nope"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("'nope' was not found") && stderr(&o).contains("tables with data"),
        "{}",
        stderr(&o)
    );
    let o = tl(&data, &["run"]);
    assert_eq!(code(&o), 2, "run with no inputs and no config");
    assert!(stderr(&o).contains("--inputs"));
    let o = tl(&data, &["--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Exit codes"));
}

#[test]
fn a_second_writer_waits_or_fails_clearly() {
    use tokenledger::lake::Layout;
    use tokenledger::lake::txn::{LakeLock, LockMode};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let layout = Layout::new(&data);
    let held = LakeLock::acquire(&layout, LockMode::Exclusive, false).unwrap();
    let sample = fixtures().join("sample");
    let o = tl(&data, &["ingest", "--no-wait", sample.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("another tokenledger run holds the lock"),
        "{}",
        stderr(&o)
    );
    // Without --no-wait it waits, says so, and goes ahead once the lock is free; under -q
    // (errors only, for cron) it waits without a word.
    let waiter = |quiet: bool| {
        let mut c = lake_cmd(&data);
        c.arg("ingest");
        if quiet {
            c.arg("-q");
        }
        c.arg(sample.to_str().unwrap())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut loud, mut quiet) = (waiter(false), waiter(true));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        loud.try_wait().unwrap().is_none() && quiet.try_wait().unwrap().is_none(),
        "they must wait while the lock is held"
    );
    drop(held);
    let (loud, quiet) = (
        loud.wait_with_output().unwrap(),
        quiet.wait_with_output().unwrap(),
    );
    assert_eq!(
        (loud.status.code(), quiet.status.code()),
        (Some(0), Some(0))
    );
    assert!(String::from_utf8_lossy(&loud.stderr).contains("waiting for another run"));
    assert_eq!(
        String::from_utf8_lossy(&quiet.stderr),
        "",
        "-q prints errors only"
    );
    assert_eq!(totals(&data, "")["usage_rows"], 15);
}

#[test]
fn summary_is_json_on_stdout_and_text_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = tl(
        &data,
        &[
            "ingest",
            "--json",
            fixtures().join("sample").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["by_format"]["anthropic-usage-api"]["rows_loaded"], 8);
    assert_eq!(
        v["by_format"]["anthropic-console-usage-csv"]["rows_loaded"],
        7
    );
    assert!(stderr(&o).contains("7 new"));
    let o = tl(
        &data,
        &["-q", "ingest", fixtures().join("sample").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0);
    assert!(
        o.stderr.is_empty() && o.stdout.is_empty(),
        "quiet under cron"
    );
}

#[test]
fn synthetic_exports_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let a = synth(
        &tmp.path().join("a"),
        &["--seed", "5", "--width", "1h", "--console-csv"],
    );
    let b = synth(
        &tmp.path().join("b"),
        &["--seed", "5", "--width", "1h", "--console-csv"],
    );
    let c = synth(&tmp.path().join("c"), &["--seed", "6", "--width", "1h"]);
    assert_eq!(snapshot(&a), snapshot(&b));
    assert_ne!(snapshot(&a.join("usage")), snapshot(&c.join("usage")));
    // The organisation has what the generator promises: batch, long context, us geo, Console use.
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&a]);
    let rows = sql(
        &data,
        "SELECT COUNT(DISTINCT service_tier) AS tiers, SUM(CASE WHEN context_window = '200k-1M' THEN 1 ELSE 0 END) AS long_ctx, SUM(CASE WHEN inference_geo = 'us' THEN 1 ELSE 0 END) AS us, SUM(CASE WHEN api_key_id IS NULL THEN 1 ELSE 0 END) AS console, COUNT(DISTINCT workspace_name) AS ws FROM usage",
    );
    let r = &rows[0];
    assert!(
        r["tiers"].as_i64().unwrap() >= 2
            && r["long_ctx"].as_i64().unwrap() > 0
            && r["us"].as_i64().unwrap() > 0
            && r["console"].as_i64().unwrap() > 0,
        "{r:?}"
    );
    assert!(r["ws"].as_i64().unwrap() >= 3);
    // Weekly seasonality: weekend days carry less usage than weekdays.
    let days = sql(
        &data,
        "SELECT strftime(bucket_start, '%u') AS dow, SUM(output_tokens) AS out FROM usage GROUP BY strftime(bucket_start, '%u')",
    );
    let get = |d: &str| {
        days.iter()
            .filter(|r| r["dow"] == d)
            .map(|r| r["out"].as_i64().unwrap())
            .sum::<i64>()
    };
    assert!(get("7") * 2 < get("3"), "{days:?}");
}

#[test]
fn synthetic_organisations_are_valid_exports() {
    // One row per combination of dimensions in a bucket, as the provider sends: a dense
    // synthetic organisation ingests with nothing quarantined.
    let tmp = tempfile::tempdir().unwrap();
    let exports = synth(
        tmp.path(),
        &[
            "--width",
            "1h",
            "--rows-per-bucket",
            "90",
            "--workspaces",
            "8",
            "--seed",
            "2026",
        ],
    );
    let data = tmp.path().join("data");
    let (code, s) = ingest(&data, &[&exports]);
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["rows_quarantined"], 0);
}

#[test]
fn pulled_pages_in_the_landing_dir_are_input_and_the_lake_never_is() {
    // Pulled pages are written to <data>/landing/; ingesting the data dir reads them like any
    // export folder, and never a file of the lake's own tables.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let landing = data.join("landing").join("anthropic");
    std::fs::create_dir_all(&landing).unwrap();
    for f in ["workspaces.json", "usage-2026-10-p1.json"] {
        std::fs::copy(fixtures().join("sample").join(f), landing.join(f)).unwrap();
    }
    let (c, s) = ingest(&data, &[&data]);
    assert_eq!(c, 0, "{s}");
    let files: Vec<&serde_json::Value> = s["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "new")
        .collect();
    assert_eq!(files.len(), 2, "both landed pages are read: {s}");
    let loaded: u64 = files
        .iter()
        .map(|f| f["rows_loaded"].as_u64().unwrap())
        .sum();
    assert!(loaded > 0, "{s}");
    // Now the lake has Parquet beside the landing dir: a second ingest finds the pages
    // unchanged and reads nothing of the lake.
    let (c, again) = ingest(&data, &[&data]);
    assert_eq!(c, 0, "{again}");
    let listed = again["files"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .all(|f| !f["path"].as_str().unwrap().ends_with(".parquet")),
        "{again}"
    );
    assert_eq!(
        listed.iter().filter(|f| f["status"] == "unchanged").count(),
        2,
        "{again}"
    );
    // The nightly run takes the landing dir as input with no `inputs` configured.
    let o = tl(&data, &["run", "-q", "--as-of", "2026-11-02"]);
    assert!([0, 3].contains(&code(&o)), "{}", stderr(&o));
}

#[test]
fn a_cached_query_result_is_read_back_until_a_commit_changes_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let cache = data.join("_tokenledger/cache/sql");
    let count = || std::fs::read_dir(&cache).map_or(0, |d| d.count());
    let reconcile = || {
        let o = tl(
            &data,
            &["reconcile", "--month", "2026-10", "--format", "json"],
        );
        assert!([0, 3].contains(&code(&o)), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let first = reconcile();
    let cached = count();
    assert!(cached > 0, "the reconciliation's queries are cached");
    assert_eq!(reconcile(), first, "read back: the same figures");
    assert_eq!(count(), cached, "nothing computed again");
    // A restated day is a new part: every statement over it is computed afresh.
    ingest_ok(
        &data,
        &[&fixtures().join("formats/usage-2026-10-01-restated.json")],
    );
    let after = reconcile();
    assert_ne!(after, first, "the restated day shows");
    assert!(count() > cached);
}

#[test]
fn an_ingest_id_says_when_its_ingest_started_to_the_millisecond() {
    use chrono::TimeZone;
    let t = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 3, 15, 0).unwrap()
        + chrono::TimeDelta::microseconds(123_456);
    let id = tokenledger::model::ingest_id(t, 0x9f3a);
    assert_eq!(id, "20261207T031500123Z-9f3a");
    let back = tokenledger::model::ingest_id_time(&id).unwrap();
    assert_eq!(back, t - chrono::TimeDelta::microseconds(456));
    assert_eq!(tokenledger::model::ingest_id_time("not-an-id"), None);
    // Ids sort as their times do (the export's "loaded after the invoice" relies on it).
    let later = tokenledger::model::ingest_id(t + chrono::TimeDelta::seconds(1), 0);
    assert!(later > id);
}
