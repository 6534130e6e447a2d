//! What people read on the way to the money (issue "What finance and on-call actually
//! read"): a wrong data dir or an uncovered month is said, never shown as $0.00; stale data is
//! a finding; one incident is one line with its running cost; team totals agree everywhere.

use crate::common::*;

/// Point 1: every read command on a directory that is not a lake says so (exit 2) and leaves
/// no trace there — no lock file, no `teams` table.
#[test]
fn a_wrong_data_dir_is_said_not_read_as_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("dta");
    let commands: [&[&str]; 8] = [
        &["report", "--month", "2026-10"],
        &["credits"],
        &["sql", "SELECT 1"],
        &["usage"],
        &["quarantine"],
        &["reconcile", "--month", "2026-10"],
        &["anomalies"],
        &["mail", "--month", "2026-10", "--dry-run"],
    ];
    for args in commands {
        let o = tl(&typo, args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("no lake at {}", typo.display())),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    // An ingest makes a lake, even of nothing; then reads answer.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ingest_ok(&typo, &[&empty]);
    let o = tl(&typo, &["sql", "SELECT 1 AS one"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// Point 1: a month no usage export covers is refused by `report` (table and HTML) and by
/// `mail`, which bills it only when told the month was idle.
#[test]
fn a_month_no_usage_covers_is_refused_and_mail_needs_idle_month() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let o = tl(&data, &["report", "--month", "2027-01"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "no usage export covers 2027-01: the lake's usage covers 2026-08-05 to 2026-10-05"
        ),
        "{err}"
    );
    assert!(
        o.stdout.is_empty(),
        "no empty table: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let html = tmp.path().join("r.html");
    let o = tl(
        &data,
        &[
            "report",
            "--month",
            "2027-01",
            "--format",
            "html",
            "--out",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!html.exists());

    let o = tl(&data, &["mail", "--month", "2026-11", "--dry-run"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("--idle-month"), "{}", stderr(&o));
    assert!(!data.join("outbox").exists(), "nothing was written");
    let o = tl(
        &data,
        &["mail", "--month", "2026-11", "--dry-run", "--idle-month"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // A covered month still reports.
    let o = tl(&data, &["report", "--month", "2026-10"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
