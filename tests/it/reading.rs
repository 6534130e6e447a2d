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

/// Point 2: data that stopped arriving is a `stale_data` finding in the nightly run (its
/// summary, JSON and digest), and the credits burn is measured where the data ends: the days
/// after it are estimated at that burn, never spent at $0.00/day.
#[test]
fn stale_data_is_a_finding_and_never_zero_burn() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("tl.toml");
    std::fs::write(
        &cfg,
        "[mail]\nfrom = \"FinOps <finops@example.com>\"\nalerts = [\"oncall@example.com\"]\n",
    )
    .unwrap();
    let (sample, ledger) = (fixtures().join("sample"), fixtures().join("ledger"));
    let run = |as_of: &str| {
        binary()
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--json", "--as-of", as_of, "--inputs"])
            .arg(&sample)
            .arg(&ledger)
            .output()
            .unwrap()
    };
    // The sample's usage ends 2026-10-05: on 2026-11-10 it is 36 days old.
    let o = run("2026-11-10");
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let stale = v["freshness"]["stale"].as_array().unwrap();
    let usage = stale
        .iter()
        .find(|s| s["table"] == "usage")
        .expect("usage is stale");
    assert_eq!(usage["age_days"], 36, "{usage}");
    assert!(
        v["reviews"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.to_string().contains("stale_data")),
        "{}",
        v["reviews"]
    );
    assert!(
        stderr(&o).contains("anthropic usage through 2026-10-05 (36 day(s) old, STALE)"),
        "{}",
        stderr(&o)
    );
    let digest = std::fs::read_dir(data.join("outbox").join("alerts-2026-11-10"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>()
        .replace("=\r\n", "")
        .replace("=\n", "");
    assert!(
        digest.contains("anthropic usage data ends 2026-10-05"),
        "{digest}"
    );

    // Credits: the usage ends 10-05, and the Console balance of 10-31 (fixtures/ledger) proves
    // nothing was spent until then; the 10 days after it are estimated at the burn to 10-31,
    // never zero.
    let credits = |as_of: &str| {
        let o = tl(&data, &["credits", "--as-of", as_of, "--format", "json"]);
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
        v["positions"][0].clone()
    };
    let current = credits("2026-10-31");
    let late = credits("2026-11-10");
    assert_eq!(current["estimated_days"], 0);
    assert_eq!(late["burn_through"], "2026-10-31");
    assert_eq!(late["estimated_days"], 10);
    assert_eq!(late["burn_per_day_usd"], current["burn_per_day_usd"]);
    let burn: rust_decimal::Decimal = late["burn_per_day_usd"].as_str().unwrap().parse().unwrap();
    assert!(burn > rust_decimal::Decimal::ZERO, "{late}");
    let text = String::from_utf8_lossy(&tl(&data, &["credits", "--as-of", "2026-11-10"]).stdout)
        .into_owned();
    assert!(
        text.contains("usage data ends 2026-10-31: the 10 day(s) to 2026-11-10 are estimated"),
        "{text}"
    );
}

/// The demo organisation, run once per test that reads it (the README's first command, as of
/// 2026-11-04): its directory, kept alive by the returned guard.
fn demo() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let o = binary()
        .args(readme_demo_args())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let demo = dir.path().join("tokenledger-demo");
    (dir, demo)
}

fn demo_cmd(demo: &std::path::Path, args: &[&str]) -> std::process::Output {
    binary()
        .arg("--config")
        .arg(demo.join("tokenledger.toml"))
        .args(args)
        .output()
        .unwrap()
}

fn cents(v: &serde_json::Value) -> i128 {
    let d: rust_decimal::Decimal = v.as_str().unwrap_or_else(|| panic!("{v}")).parse().unwrap();
    (d * rust_decimal::Decimal::ONE_HUNDRED).try_into().unwrap()
}

/// Point 4: `report --by team` charges the shared Default workspace the way the mail does —
/// its own line per team naming the workspace and the share — and every team's cents are the
/// same in the CLI (table, CSV, JSON), the finance mail (text and CSV) and the HTML report; no
/// empty Unallocated section.
#[test]
fn team_totals_agree_to_the_cent_in_the_cli_mail_csv_and_html() {
    use std::collections::BTreeMap;
    let (_guard, demo) = demo();
    let o = demo_cmd(
        &demo,
        &[
            "report", "--month", "2026-10", "--by", "team", "--format", "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let mut cli: BTreeMap<String, i128> = BTreeMap::new();
    for r in &rows {
        *cli.entry(r["team"].as_str().unwrap().to_string())
            .or_default() += cents(&r["list_cost_usd"]);
    }
    let share = rows
        .iter()
        .find(|r| r["team"] == "Search" && !r["share_of"].is_null())
        .expect("Search's share of the shared workspace is its own line");
    assert!(
        share["share_of"]
            .as_str()
            .unwrap()
            .starts_with("share of Default"),
        "{share}"
    );
    assert!(
        !cli.contains_key("Unallocated"),
        "all of Default is shared: {cli:?}"
    );

    let finance = std::fs::read_dir(demo.join("data/outbox/2026-10"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("finance")
        })
        .unwrap();
    let mail = parse_eml(&finance);
    let text = mail["text"].as_str().unwrap();
    let mut csv: BTreeMap<String, i128> = BTreeMap::new();
    let mut r = csv::Reader::from_reader(mail["csv"].as_str().unwrap().as_bytes());
    let head = r.headers().unwrap().clone();
    let (team, rounded) = (
        head.iter().position(|h| h == "team").unwrap(),
        head.iter()
            .position(|h| h == "list_cost_usd_rounded")
            .unwrap(),
    );
    for rec in r.records() {
        let rec = rec.unwrap();
        *csv.entry(rec[team].to_string()).or_default() +=
            cents(&serde_json::Value::String(rec[rounded].to_string()));
    }
    let html = std::fs::read_to_string(demo.join("chargeback-2026-10.html")).unwrap();
    for (t, c) in &cli {
        assert_eq!(
            csv.get(t),
            Some(c),
            "{t}: CLI {c} vs the finance CSV {csv:?}"
        );
        let shown = format!("{}.{:02}", group(c / 100), c % 100);
        assert!(
            text.contains(&format!(": {shown}")),
            "{t} {shown} not in the finance text:\n{text}"
        );
        assert!(html.contains(&shown), "{t} {shown} not in the HTML");
    }
    // The leaked key's team pays $20,273.29 (own $17,849.33 + 81.1 % of Default's $2,988.03).
    assert_eq!(cli["Search"], 2_027_329);
    let sections: Vec<&str> = html.matches(" — LLM API chargeback for 2026-10").collect();
    assert_eq!(
        sections.len(),
        4,
        "four teams' sections, no empty Unallocated one"
    );
    // The table says the same cents and names the share.
    let o = demo_cmd(
        &demo,
        &["--wide", "report", "--month", "2026-10", "--by", "team"],
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("share of Default (shared workspace): 81.1 % of $2,988.03"),
        "{table}"
    );
}

fn group(n: i128) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
