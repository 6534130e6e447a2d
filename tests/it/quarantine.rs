//! Bad input: never a crash, never silently dropped, the exit code says so.

use crate::common::*;

#[test]
fn broken_corpus_is_quarantined_row_by_row_and_good_rows_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (exit, s) = ingest(&data, &[&fixtures().join("broken")]);
    assert_eq!(exit, 3, "{s}");
    let q = sql(
        &data,
        "SELECT source_file, location, field, reason FROM quarantine",
    );
    let has = |file: &str, loc: &str, needle: &str| {
        q.iter().any(|r| {
            r["source_file"].as_str().unwrap().ends_with(file)
                && r["location"] == loc
                && r["reason"].as_str().unwrap().contains(needle)
        })
    };
    // Whole files.
    assert!(has("junk.bin", "file", "not a text file"));
    assert!(has("truncated-usage.json", "file", "truncated JSON"));
    assert!(has("unknown-header.csv", "file", "unrecognised content"));
    // JSON rows, by path.
    assert!(has("bad-rows-usage.json", "data[0].results[1]", "negative"));
    assert!(has(
        "bad-rows-usage.json",
        "data[0].results[2]",
        "non-integer"
    ));
    assert!(has(
        "bad-rows-usage.json",
        "data[0].results[3]",
        "got string"
    ));
    assert!(has(
        "bad-rows-usage.json",
        "data[0].results[4]",
        "missing required field output_tokens"
    ));
    assert!(has(
        "bad-rows-usage.json",
        "data[0].results[5]",
        "unknown service_tier 'turbo'"
    ));
    assert!(has(
        "bad-rows-usage.json",
        "data[0].results[6]",
        "cache_creation must be an object"
    ));
    assert!(has(
        "bad-rows-usage.json",
        "data[1]",
        "not an RFC 3339 timestamp"
    ));
    // CSV rows, by line.
    assert!(has("bad-rows.csv", "line 3", "negative"));
    assert!(has("bad-rows.csv", "line 4", "non-negative integer"));
    assert!(has("bad-rows.csv", "line 5", "not a YYYY-MM-DD date"));
    assert!(has(
        "bad-rows.csv",
        "line 6",
        "unknown usage_type 'express'"
    ));
    assert!(has("bad-rows.csv", "line 7", "row has 9 fields"));
    assert!(has("bad-rows.csv", "line 8", "unknown context_window"));
    // Cost amounts: never through a float, never guessed.
    assert!(has("bad-cost.json", "data[0].results[1]", "JSON number"));
    assert!(has(
        "bad-cost.json",
        "data[0].results[2]",
        "not a plain decimal"
    ));
    assert!(has(
        "bad-cost.json",
        "data[0].results[3]",
        "unknown cost_type 'gpu_hours'"
    ));
    assert_eq!(q.len(), 19, "exactly the bad rows and files: {q:#?}");

    // Every good row kept: 2 JSON usage rows, 2 CSV rows, 1 cost row; nothing from the truncated file.
    let t = totals(&data, "");
    assert_eq!(t["usage_rows"], 4);
    assert_eq!(t["uncached_input_tokens"], 1000 + 1000 + 1000 + 500);
    let cost = sql(&data, "SELECT COUNT(*) AS n, SUM(amount) AS s FROM cost");
    assert_eq!(cost[0]["n"], 1);
    assert_eq!(cost[0]["s"], "0.015000000000");

    // Every row read is accounted for, per file: loaded + quarantined + superseded.
    let mut sum = 0;
    for f in s["files"].as_array().unwrap() {
        let n = |k: &str| f[k].as_i64().unwrap();
        assert_eq!(
            n("rows_read"),
            n("rows_loaded") + n("rows_quarantined") + n("rows_superseded"),
            "{f}"
        );
        sum += n("rows_quarantined");
    }
    assert_eq!(s["rows_quarantined"].as_i64().unwrap(), sum);
    // The `quarantine` command lists them, for people.
    let o = tl(&data, &["quarantine", "--format", "csv"]);
    assert_eq!(code(&o), 0);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 20);

    // Re-running reports nothing new and changes nothing.
    let before = snapshot(&data);
    let (exit, _) = ingest(&data, &[&fixtures().join("broken")]);
    assert_eq!(exit, 0);
    assert_eq!(snapshot(&data), before);
}

#[test]
fn many_bad_rows_are_all_listed() {
    // More bad rows than one staged quarantine batch holds (8,192): they are written out in
    // batches as they are found, never all held in memory, and every one is listed.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut csv = String::from(
        "usage_date_utc,model_version,api_key,workspace,usage_type,context_window,usage_input_tokens_no_cache,usage_input_tokens_cache_write_5m,usage_input_tokens_cache_write_1h,usage_input_tokens_cache_read,usage_output_tokens,web_search_count,inference_geo,speed\n",
    );
    csv.push_str("2026-10-20,claude-haiku-4-5,k,Default,standard,≤ 200k,100,0,0,0,10,0,global,\n");
    for i in 0..20_000 {
        csv.push_str(&format!(
            "2026-10-20,claude-haiku-4-5,k,Default,standard,≤ 200k,-{},0,0,0,10,0,global,\n",
            i + 1
        ));
    }
    let file = tmp.path().join("many-bad.csv");
    std::fs::write(&file, csv).unwrap();
    let (exit, s) = ingest(&data, &[&file]);
    assert_eq!(exit, 3);
    assert_eq!(s["rows_quarantined"], 20_000);
    let n = sql(
        &data,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT location) AS lines FROM quarantine",
    );
    assert_eq!(
        (n[0]["n"].as_i64(), n[0]["lines"].as_i64()),
        (Some(20_000), Some(20_000))
    );
    assert_eq!(totals(&data, "")["usage_rows"], 1);
}
