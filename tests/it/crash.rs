//! Crash safety: a run killed anywhere leaves the lake as before or as after, and a re-run
//! converges on the same lake as a clean ingest.

use std::path::Path;
use std::time::Instant;

use crate::common::*;

fn lake_state(
    data: &Path,
) -> (
    std::collections::BTreeMap<String, Count>,
    Vec<serde_json::Map<String, serde_json::Value>>,
) {
    (
        totals(data, ""),
        sql(data, "SELECT COUNT(*) AS n FROM usage_coverage"),
    )
}

#[test]
fn killed_at_each_commit_step_then_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = synth(
        tmp.path(),
        &["--width", "1h", "--months", "2", "--seed", "21"],
    );
    let sample = fixtures().join("sample");
    // Reference: a clean ingest of the sample, then the synthetic exports.
    let clean = tmp.path().join("clean");
    ingest_ok(&clean, &[&sample]);
    let before = lake_state(&clean);
    ingest_ok(&clean, &[&exports]);
    let after = lake_state(&clean);
    assert_ne!(before.0, after.0);

    for (point, committed) in [
        ("mid-stage", false),
        ("staged", false),
        ("committed", true),
        ("mid-apply", true),
    ] {
        let data = tmp.path().join(point);
        ingest_ok(&data, &[&sample]);
        let o = tl_env(
            &data,
            &["ingest", "-q", exports.to_str().unwrap()],
            &[("TOKENLEDGER_CRASH_AT", point)],
        );
        assert_crashed_at(&o, point);
        // Any next command recovers first; the lake is exactly before or exactly after.
        let state = lake_state(&data);
        if committed {
            assert_eq!(
                state, after,
                "{point}: a committed ingest is completed by recovery"
            );
        } else {
            assert_eq!(
                state, before,
                "{point}: an uncommitted ingest leaves no trace"
            );
        }
        assert!(!data.join("_tokenledger/journal.json").exists());
        // Re-run: converges on the clean lake.
        let (code, _) = ingest(&data, &[&exports]);
        assert_eq!(code, 0);
        assert_eq!(lake_state(&data), after, "{point}");
        // Readers leave an uncommitted staging dir alone (it is invisible to them); the next
        // writer removes it.
        assert!(
            std::fs::read_dir(data.join("_tokenledger/staging"))
                .map(|mut d| d.next().is_none())
                .unwrap_or(true),
            "{point}: staging cleaned by the next ingest"
        );
    }
}

#[test]
fn sigkill_at_random_moments_then_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = synth(
        tmp.path(),
        &[
            "--width",
            "1m",
            "--rows-per-bucket",
            "4",
            "--page-buckets",
            "720",
            "--seed",
            "8",
        ],
    );
    let clean = tmp.path().join("clean");
    let t0 = Instant::now();
    ingest_ok(&clean, &[&exports]);
    let full = t0.elapsed();
    let expected = lake_state(&clean);
    assert!(
        expected.0["usage_rows"] > 50_000,
        "big enough to be killed mid-way: {:?}",
        expected.0
    );

    let mut landed = 0;
    for (i, frac) in [10u32, 35, 60, 90].into_iter().enumerate() {
        let data = tmp.path().join(format!("k{i}"));
        let mut child = lake_cmd(&data)
            .args(["ingest", "-q", exports.to_str().unwrap()])
            .spawn()
            .unwrap();
        std::thread::sleep(full * frac / 100);
        child.kill().expect("SIGKILL delivered"); // SIGKILL
        let status = child.wait().unwrap();
        // The kill must land mid-run: a run that had already ended proves nothing.
        use std::os::unix::process::ExitStatusExt;
        if status.signal() == Some(libc::SIGKILL) {
            landed += 1;
        } else {
            assert!(
                status.success(),
                "kill at {frac}%: the run failed by itself ({status})"
            );
        }
        // Whatever point it reached, the lake is empty (before) or complete (after), and
        // that is checked after every kill. "Before" is a lake with no manifest and no parts.
        // (The manifest's file is `part-0~<ingest>.parquet` in the Delta mode.)
        let manifest = std::fs::read_dir(data.join("ingest_log")).is_ok_and(|d| {
            d.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("part-0") && n.ends_with(".parquet")
            })
        });
        let committed = manifest || data.join("_tokenledger/journal.json").exists();
        if committed {
            let (t, _) = lake_state(&data);
            assert!(
                t == expected.0,
                "kill at {frac}% ({status}): lake is half-written: {t:?}"
            );
        } else {
            let parts = tl(
                &data,
                &["sql", "SELECT COUNT(*) AS n FROM usage", "--format", "json"],
            );
            assert_ne!(
                code(&parts),
                0,
                "kill at {frac}%: no manifest, yet usage rows are visible"
            );
            assert!(
                stderr(&parts).contains("tables with data in"),
                "kill at {frac}%: an empty lake, not a broken one: {}",
                stderr(&parts)
            );
        }
        let (code, _) = ingest(&data, &[&exports]);
        assert_eq!(code, 0);
        assert_eq!(lake_state(&data), expected, "kill at {frac}% then re-run");
    }
    assert!(
        landed >= 3,
        "only {landed} of 4 kills landed mid-run: the ingest is too fast to kill at those points"
    );
}

/// The run died at the named crash point: aborted (SIGABRT, as `TOKENLEDGER_CRASH_AT` does),
/// saying where; not a run that failed early for another reason.
fn assert_crashed_at(o: &std::process::Output, point: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGABRT),
        "{point}: the simulated crash must kill the run ({}): {}",
        o.status,
        stderr(o)
    );
    assert!(
        stderr(o).contains(&format!("simulated crash at {point}")),
        "{point}: the named crash point must be the one that fired: {}",
        stderr(o)
    );
}

#[test]
fn a_killed_rating_leaves_rated_usage_as_before_or_after() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = fixtures().join("sample");
    let rated = |data: &Path| {
        let o = tl(
            data,
            &[
                "sql",
                "SELECT COUNT(*) AS n, SUM(list_cost) AS c FROM rated_usage",
                "--format",
                "json",
            ],
        );
        (code(&o), String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let clean = tmp.path().join("clean");
    ingest_ok(&clean, &[&sample]);
    assert_eq!(code(&tl(&clean, &["rate", "-q"])), 0);
    let after = rated(&clean);
    assert_eq!(after.0, 0);
    for point in ["rate-staged", "committed", "mid-apply"] {
        let data = tmp.path().join(point);
        ingest_ok(&data, &[&sample]);
        let o = tl_env(&data, &["rate", "-q"], &[("TOKENLEDGER_CRASH_AT", point)]);
        assert_crashed_at(&o, point);
        if point == "rate-staged" {
            // Nothing staged is visible: no usage_pricing part exists (this query does not
            // rate; one of rated_usage would, and give the state after).
            let o = tl(&data, &["sql", "SELECT COUNT(*) AS n FROM usage_pricing"]);
            assert_ne!(code(&o), 0, "{point}: nothing rated is visible");
            assert_eq!(
                rated(&data),
                after,
                "{point}: the view rates what is missing"
            );
        } else {
            assert_eq!(
                rated(&data),
                after,
                "{point}: a committed rating is completed by recovery"
            );
        }
        assert_eq!(code(&tl(&data, &["rate", "-q"])), 0);
        assert_eq!(rated(&data), after, "{point}: re-run converges");
    }
}
