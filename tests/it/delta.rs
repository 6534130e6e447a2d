//! The lake as Delta tables: what a Delta reader (the `deltalake` package, delta-rs, from
//! PyPI) sees of every table is what tokenledger and plain-Parquet readers see, a killed run
//! leaves each table before or after, never a mix, and an older lake becomes Delta on its
//! first command.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::*;

/// What the `deltalake` package reads of every Delta table of the lake (`tests/engines/
/// delta_check.py`): version, files, rows, exact sums of money and token columns.
fn delta_state(data: &Path) -> BTreeMap<String, Value> {
    let o = Command::new("timeout")
        .args(["300", "python3"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engines/delta_check.py"))
        .arg(data)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "delta_check.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("delta_check.py prints JSON")
}

/// The data files of a table as a plain-Parquet reader finds them (every `*.parquet` outside
/// `_…` directories), relative to the table's directory.
fn plain_files(table_dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            if e.path().is_dir() {
                walk(root, &e.path(), out);
            } else if name.ends_with(".parquet") {
                out.push(
                    e.path()
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(table_dir, table_dir, &mut out);
    out.sort();
    out
}

/// The config that turns the Delta mode on (`[lake] delta = true`), beside the lake.
fn delta_config(data: &Path) -> String {
    let cfg = data.with_extension("toml");
    std::fs::write(&cfg, "[lake]\ndelta = true\n").unwrap();
    cfg.to_string_lossy().into_owned()
}

/// tokenledger on a lake in the Delta mode, with `env`.
fn dl_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let cfg = delta_config(data);
    let mut env = env.to_vec();
    env.push(("TOKENLEDGER_CONFIG", &cfg));
    // The environment wins over the config: a runner's TOKENLEDGER_LAKE_DELTA=0 must not
    // turn this test's mode off.
    env.push(("TOKENLEDGER_LAKE_DELTA", "1"));
    tl_env(data, args, &env)
}

fn dl(data: &Path, args: &[&str]) -> std::process::Output {
    dl_env(data, args, &[])
}

/// `ingest --json` of `paths` in the Delta mode: its exit code.
fn dl_ingest(data: &Path, paths: &[&Path]) -> i32 {
    let mut args = vec!["ingest", "-q", "--json"];
    let owned: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    args.extend(owned.iter().map(String::as_str));
    code(&dl(data, &args))
}

/// Every regular file under `dir`.
fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn every_table_is_a_delta_table_that_matches_the_parquet_files() {
    // The Delta mode on disk: its logs in the folders (a bucket: tests/it/remote.rs).
    disk_only();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exports = synth(
        tmp.path(),
        &["--width", "1h", "--months", "2", "--seed", "5"],
    );
    assert_eq!(dl_ingest(&data, &[&fixtures().join("sample"), &exports]), 0);
    // Rating adds usage_pricing; a second ingest of new files replaces coverage and the
    // ingest log under new names (a data file is never overwritten).
    let o = dl(&data, &["rate", "-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let more = synth(
        tmp.path().join("more").as_path(),
        &["--width", "1d", "--months", "3", "--seed", "6"],
    );
    // More commits than a checkpoint interval: each export file in its own ingest (a
    // checkpoint is written at version 10 and read back by delta-rs below).
    let mut files: Vec<_> = walk_files(&more);
    files.sort();
    for f in &files {
        // 3: the synthetic month reaching past today is quarantined, a commit all the same.
        let c = dl_ingest(&data, &[f]);
        assert!(c == 0 || c == 3, "{}: exit {c}", f.display());
    }
    let o = dl(&data, &["rate", "-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let log = data.join("ingest_log/_delta_log");
    assert!(
        log.join(format!("{:020}.checkpoint.parquet", 10)).is_file(),
        "a checkpoint at version 10: {:?}",
        std::fs::read_dir(&log)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect::<Vec<_>>()
    );

    let delta = delta_state(&data);
    for t in [
        "usage",
        "usage_coverage",
        "usage_pricing",
        "ingest_log",
        "workspaces",
        "api_keys",
    ] {
        assert!(
            delta.contains_key(t),
            "{t} is a Delta table: {:?}",
            delta.keys()
        );
    }
    for (name, t) in &delta {
        // The same files as a plain-Parquet reader of the folders finds.
        let files: Vec<String> = serde_json::from_value(t["files"].clone()).unwrap();
        assert_eq!(
            files,
            plain_files(&data.join(name)),
            "{name}: Delta files = folder files"
        );
        // The same rows as tokenledger's own SQL reads from the files (polars 0.55 cannot
        // COUNT(*) a table whose only file has no rows: `teams` without a [[team]]).
        if t["rows"] == 0 {
            continue;
        }
        let n = sql(&data, &format!("SELECT COUNT(*) AS n FROM {name}"));
        assert_eq!(
            t["rows"].as_u64(),
            n[0]["n"].as_u64(),
            "{name}: row count through Delta"
        );
    }
    // Partition keys are Delta partition columns, so Spark and Trino get `month` as DuckDB
    // does from the paths.
    assert_eq!(
        delta["usage"]["partition_columns"],
        serde_json::json!(["month", "provider"])
    );
    assert_eq!(
        delta["workspaces"]["partition_columns"],
        serde_json::json!(["provider"])
    );
    // Money and tokens to the last digit: every decimal and token column summed by delta-rs
    // through the log equals DuckDB's sum over the folders as plain Parquet.
    for (name, t) in &delta {
        assert_eq!(t["rows"], t["plain"]["rows"], "{name}: rows");
        assert_eq!(t["sums"], t["plain"]["sums"], "{name}: exact sums");
    }
    let list_cost = delta["usage_pricing"]["sums"]["list_cost"]
        .as_str()
        .unwrap();
    assert!(
        list_cost.len() > 13 && list_cost.contains('.'),
        "{list_cost}: scale 12"
    );
    let tokens = totals(&data, "");
    assert_eq!(
        delta["usage"]["sums"]["output_tokens"]
            .as_str()
            .map(|s| s.parse::<i128>().unwrap()),
        tokens["output_tokens"].0,
        "output tokens through Delta = tokenledger's"
    );
    // Statistics are exact or absent: each add says how many rows it holds (what delta-rs
    // read above) and gives no min/max, so no decimal bound is ever rounded.
    let first = std::fs::read_to_string(
        data.join("usage_pricing/_delta_log")
            .join(format!("{:020}.json", 0)),
    )
    .unwrap();
    let mut adds = 0;
    for line in first.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(add) = v.get("add") {
            let stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
            assert!(stats["numRecords"].as_u64().unwrap() > 0, "{stats}");
            assert!(stats.get("minValues").is_none() && stats.get("maxValues").is_none());
            adds += 1;
        }
    }
    assert!(adds > 0, "usage_pricing's first version adds its parts");
    // The replaced single files (coverage, ingest log) left the log and the folders.
    for dir in ["ingest_log", "workspaces/provider=anthropic"] {
        let files = plain_files(&data.join(dir));
        assert_eq!(files.len(), 1, "{dir}: one file in place: {files:?}");
    }
}

#[test]
fn a_killed_ingest_leaves_each_delta_table_before_or_after() {
    // The Delta mode on disk: its logs in the folders (a bucket: tests/it/remote.rs).
    disk_only();
    let tmp = tempfile::tempdir().unwrap();
    let exports = synth(
        tmp.path(),
        &["--width", "1h", "--months", "2", "--seed", "21"],
    );
    let sample = fixtures().join("sample");
    for point in ["staged", "committed", "mid-apply", "delta-committed"] {
        let data = tmp.path().join(point);
        assert_eq!(dl_ingest(&data, &[&sample]), 0);
        let before = delta_state(&data);
        let o = dl_env(
            &data,
            &["ingest", "-q", exports.to_str().unwrap()],
            &[("TOKENLEDGER_CRASH_AT", point)],
        );
        assert!(
            stderr(&o).contains(&format!("simulated crash at {point}")),
            "{point}: {}",
            stderr(&o)
        );
        // What a Delta reader sees right after the kill, before any tokenledger command.
        let mid = delta_state(&data);
        // The next command recovers (finishing a committed journal's Delta commits); the
        // re-run then loads whatever was not committed.
        assert_eq!(dl_ingest(&data, &[&exports]), 0, "{point}: re-run");
        let after = delta_state(&data);
        assert_ne!(
            before.get("usage").map(content),
            after.get("usage").map(content),
            "{point}: the ingest changes usage"
        );
        for (name, seen) in &mid {
            let was = before.get(name).map(content);
            let now = after.get(name).map(content);
            let seen = Some(content(seen));
            assert!(
                seen == was || seen == now,
                "{point}: {name} as a Delta reader saw it is neither before nor after"
            );
        }
        // A table that had no log before and has one after the kill holds all it should.
        for name in after.keys() {
            if !mid.contains_key(name) {
                assert!(!before.contains_key(name), "{point}: {name} lost its log");
            }
        }
        // The data files and the log agree again after recovery.
        for (name, t) in &after {
            let files: Vec<String> = serde_json::from_value(t["files"].clone()).unwrap();
            assert_eq!(files, plain_files(&data.join(name)), "{point}: {name}");
        }
    }
}

#[test]
fn a_lake_written_before_delta_becomes_delta_on_its_first_command() {
    // The Delta mode on disk: its logs in the folders (a bucket: tests/it/remote.rs).
    disk_only();
    let tmp = tempfile::tempdir().unwrap();
    // A lake as earlier versions (and the mode off) write it: Parquet folders, no log.
    let off = [("TOKENLEDGER_LAKE_DELTA", "0")];
    let plain = |name: &str| {
        let data = tmp.path().join(name);
        let sample = fixtures().join("sample");
        let o = tl_env(&data, &["ingest", "-q", sample.to_str().unwrap()], &off);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let o = tl_env(&data, &["rate", "-q"], &off);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(
            delta_state(&data).is_empty(),
            "no Delta log without [lake] delta"
        );
        data
    };
    let data = plain("data");
    let tables: Vec<String> = [
        "usage",
        "usage_coverage",
        "usage_pricing",
        "ingest_log",
        "cost",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let files_before: BTreeMap<String, Vec<String>> = tables
        .iter()
        .map(|n| (n.clone(), plain_files(&data.join(n))))
        .collect();
    // A reader's first command in the Delta mode adopts every table (nothing rewritten,
    // nothing recomputed).
    let q = ["sql", "SELECT COUNT(*) AS n FROM usage", "--format", "json"];
    let o = dl(&data, &q);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = delta_state(&data);
    for name in &tables {
        let t = &got[name];
        assert_eq!(t["version"], 0, "{name}: one commit holds the whole table");
        assert_eq!(t["rows"], t["plain"]["rows"], "{name}: same rows");
        assert_eq!(t["sums"], t["plain"]["sums"], "{name}: same sums");
        let files: Vec<String> = serde_json::from_value(t["files"].clone()).unwrap();
        assert_eq!(
            files, files_before[name],
            "{name}: the same files, not rewritten"
        );
    }
    // Idempotent: a second command commits nothing; and the lake stays Delta with the mode
    // turned off (its marker), so no later change bypasses the logs.
    let o = tl_env(&data, &q, &off);
    assert_eq!(code(&o), 0);
    for (name, t) in &delta_state(&data) {
        assert_eq!(t["version"], 0, "{name}: adopted once");
    }
    // Killed in the middle of the adoption: each table has its whole log or none, and the
    // next command adopts the rest.
    let data = plain("killed");
    let o = dl_env(&data, &q, &[("TOKENLEDGER_CRASH_AT", "delta-committed")]);
    assert!(
        stderr(&o).contains("simulated crash at delta-committed"),
        "{}",
        stderr(&o)
    );
    let partial = delta_state(&data);
    assert_eq!(partial.len(), 1, "killed after the first table's commit");
    for (name, t) in &partial {
        assert_eq!(t["rows"], t["plain"]["rows"], "{name}: whole");
    }
    let o = dl(&data, &q);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let done = delta_state(&data);
    assert_eq!(done.len(), got.len(), "every table adopted after the kill");
    for (name, t) in &done {
        assert_eq!(
            t["sums"], got[name]["sums"],
            "{name}: adopted after the kill"
        );
    }
}
