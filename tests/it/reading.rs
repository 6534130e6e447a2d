//! What people read on the way to the money (issue "What finance and on-call actually
//! read"): a wrong data dir or an uncovered month is said, never shown as $0.00; stale data is
//! a finding; one incident is one line with its running cost; team totals agree everywhere.

use crate::common::*;

/// Point 1: every read command on a directory that is not a lake says so (exit 2) and leaves
/// no trace there — no lock file, no `teams` table.
#[test]
fn a_wrong_data_dir_is_said_not_read_as_zero() {
    // A mistyped directory on disk (a bucket lake says its URL: tests/it/remote.rs).
    disk_only();
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
        lake_cmd(&data)
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

/// The demo's October finance summary (.eml).
fn finance_eml(demo: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(demo.join("data/outbox/2026-10"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("finance")
        })
        .expect("the finance summary in the outbox")
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
            .starts_with("Share of Default"),
        "{share}"
    );
    assert!(
        !cli.contains_key("Unallocated"),
        "all of Default is shared: {cli:?}"
    );

    let finance = finance_eml(&demo);
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
        let shown = tokenledger::money::usd_text(*c);
        assert!(
            text.contains(&format!(": {shown}")),
            "{t} {shown} not in the finance text:\n{text}"
        );
        assert!(html.contains(&shown), "{t} {shown} not in the HTML");
    }
    // The leaked key's team pays $20,395.19: its own $18,075.36 (Anthropic's Search workspace
    // $17,849.33 + OpenAI's Search Ranking project $226.03) + 77.6 % of Default's $2,988.03.
    assert_eq!(cli["Search"], 2_039_519);
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
        table.contains("Share of Default (shared workspace): 77.6 % of $2,988.03"),
        "{table}"
    );
}

/// Point 3 and the done-when: the demo's finance summary lists each injected incident of
/// October once (a key's spike, burst or new model, with its workspace, model and organisation
/// findings folded in), with its running cost equal to the SQL sum of the key's spend over its
/// days; the leaked key's line says $6,413.56.
#[test]
fn one_incident_per_cause_with_its_running_cost_in_the_finance_summary() {
    let (_guard, demo) = demo();
    let finance = finance_eml(&demo);
    let text = parse_eml(&finance)["text"].as_str().unwrap().to_string();
    let section = text
        .split("Anomalies of the month")
        .nth(1)
        .expect("an anomalies section")
        .split("\n\n")
        .next()
        .unwrap()
        .to_string();
    let lines: Vec<&str> = section
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
        .collect();
    let labels = std::fs::read_to_string(demo.join("exports-labels.csv")).unwrap();
    let october: std::collections::BTreeSet<&str> = labels
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("2026-10"))
        .map(|l| l.split(',').nth(2).unwrap())
        .collect();
    assert!(october.len() >= 4, "{labels}");
    for key in &october {
        let mine: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains(&format!("key {key}:")))
            .collect();
        assert_eq!(mine.len(), 1, "{key} once in:\n{section}");
        // "$6,413.56 over 7 day(s) 2026-10-25 to 2026-10-31"
        let line = mine[0];
        let amount = line
            .split('$')
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .replace(',', "");
        let days: Vec<&str> = line.split(" day(s) ").nth(1).unwrap().split(' ').collect();
        let (from, to) = (days[0], days[2]);
        let o = demo_cmd(
            &demo,
            &[
                "sql",
                "--format",
                "json",
                &format!(
                    "SELECT CAST(ROUND(SUM(list_cost), 2) AS VARCHAR) AS usd FROM rated_usage \
                     WHERE api_key_name = '{key}' AND CAST(bucket_start AS DATE) BETWEEN DATE '{from}' AND DATE '{to}'"
                ),
            ],
        );
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
        let sum: rust_decimal::Decimal = v[0]["usd"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            amount.parse::<rust_decimal::Decimal>().unwrap(),
            sum,
            "{line}"
        );
    }
    let leaked: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("key leaked-key:"))
        .collect();
    assert!(
        leaked[0].contains("$6,413.56 over 7 day(s) 2026-10-25 to 2026-10-31"),
        "{section}"
    );
    // No sentence repeats its scope word.
    assert!(!text.contains("organisation organisation"), "{text}");
    // At most one line per injected incident, the month's limit crossings and nothing else.
    assert!(lines.len() <= october.len() + 1, "{section}");
}

/// A day of usage: `(day, [(key, output tokens)])` as a 1-day bucket page.
fn daily_page(path: &std::path::Path, days: &[(String, Vec<(&str, u64)>)]) {
    let buckets: Vec<String> = days
        .iter()
        .map(|(day, rows)| {
            let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
            let next = d.succ_opt().unwrap();
            let results: Vec<String> = rows
                .iter()
                .map(|(key, out)| {
                    format!(
                        r#"{{"api_key_id":"{key}","workspace_id":"wrkspc_01Incidents000000000","model":"claude-sonnet-4-5","service_tier":"standard","context_window":"0-200k","inference_geo":"global","uncached_input_tokens":0,"cache_creation":{{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0}},"cache_read_input_tokens":0,"output_tokens":{out},"server_tool_use":null}}"#
                    )
                })
                .collect();
            format!(
                r#"{{"starting_at":"{d}T00:00:00Z","ending_at":"{next}T00:00:00Z","results":[{}]}}"#,
                results.join(",")
            )
        })
        .collect();
    std::fs::write(
        path,
        format!(
            r#"{{"data":[{}],"has_more":false,"next_page":null}}"#,
            buckets.join(",")
        ),
    )
    .unwrap();
}

/// Point 3: an incident alerted when it began is alerted again as an update once its running
/// cost has grown by the configured factor — not as a new incident, and not every night.
#[test]
fn a_growing_incident_is_alerted_again_as_an_update() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, cfg, inbox) = (
        tmp.path().join("data"),
        tmp.path().join("tl.toml"),
        tmp.path().join("in"),
    );
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(
        &cfg,
        "[mail]\nfrom = \"FinOps <finops@example.com>\"\nalerts = [\"oncall@example.com\"]\n",
    )
    .unwrap();
    // A steady key ($150/day at $15/MTok output) since September; a new key on 10-15 ($75),
    // then $600 a day from 10-16.
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let start = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
    let mut first = Vec::new();
    let mut second = Vec::new();
    for d in start
        .iter_days()
        .take_while(|d| d.to_string().as_str() <= "2026-10-20")
    {
        let mut rows = vec![("apikey_01Steady00000000000", 10_000_000)];
        if day(d) == "2026-10-15" {
            rows.push(("apikey_01Leaky000000000000", 5_000_000));
        } else if day(d).as_str() > "2026-10-15" {
            rows.push(("apikey_01Leaky000000000000", 40_000_000));
        }
        if day(d).as_str() <= "2026-10-15" {
            first.push((day(d), rows));
        } else {
            second.push((day(d), rows));
        }
    }
    let run = |page: &str, days: &[(String, Vec<(&str, u64)>)], as_of: &str| {
        daily_page(&inbox.join(page), days);
        let o = lake_cmd(&data)
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--as-of", as_of, "--inputs"])
            .arg(&inbox)
            .output()
            .unwrap();
        assert!(matches!(code(&o), 0 | 3), "{}", stderr(&o));
        let dir = data.join("outbox").join(format!("alerts-{as_of}"));
        std::fs::read_dir(&dir)
            .map(|r| {
                r.map(|e| {
                    parse_eml(&e.unwrap().path())["text"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect::<String>()
            })
            .unwrap_or_default()
    };
    let night1 = run("a.json", &first, "2026-10-15");
    assert!(
        night1.contains("[incident] key apikey_01Leaky000000000000: new key; $75.00"),
        "{night1}"
    );
    let night2 = run("b.json", &second, "2026-10-20");
    // $75 + 5 × $600 = $3,075: 41× the first day, alerted again once, as an update.
    assert!(
        night2.contains("[incident update] grew to $3,075.00: key apikey_01Leaky000000000000"),
        "{night2}"
    );
    assert!(
        !night2.contains("[incident] key apikey_01Leaky"),
        "{night2}"
    );
    // The same night again: nothing new to say.
    let o = lake_cmd(&data)
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--as-of", "2026-10-20", "--inputs"])
        .arg(&inbox)
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("alerts: nothing new to mail"),
        "{}",
        stderr(&o)
    );
}

/// Point 7: cron can tell new findings from standing ones (exit 3, then 4 while nothing new;
/// `new_findings` in --json), and `--log-format json` makes every stderr line JSON, errors and
/// the ingest summary included.
#[test]
fn cron_tells_new_findings_from_standing_ones_and_json_logs_are_json() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (sample, ledger) = (fixtures().join("sample"), fixtures().join("ledger"));
    let run = |extra: &[&str]| {
        lake_cmd(&data)
            .args(extra)
            .args(["run", "--json", "--as-of", "2026-11-10", "--inputs"])
            .arg(&sample)
            .arg(&ledger)
            .output()
            .unwrap()
    };
    let first = run(&[]);
    assert_eq!(code(&first), 3, "{}", stderr(&first));
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(v["new_findings"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["exit_code"], 3);
    // The same night again: the same findings stand, nothing new.
    let again = run(&["--log-format", "json"]);
    assert_eq!(code(&again), 4, "{}", stderr(&again));
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["new_findings"], 0);
    assert_eq!(v["exit_code"], 4);
    let mut formats = 0;
    for line in stderr(&again).lines() {
        let j: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        if j["fields"]["stage"] == "ingest" && j["fields"].get("files_unchanged").is_some() {
            formats += 1;
        }
    }
    assert!(
        formats >= 3,
        "one object per source format:\n{}",
        stderr(&again)
    );
    // A fatal error is JSON too.
    let o = binary()
        .args(["--log-format", "json", "--data-dir"])
        .arg(tmp.path().join("nope"))
        .args(["report", "--month", "2026-10"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    let j: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(j["level"], "ERROR");
    assert!(
        j["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("no lake at"),
        "{j}"
    );
}

/// Point 5: tables use the terminal's own width, say which columns they hid, never cut an
/// error's reason or an id, cut nothing under --wide; rows by name; lapsed credit is shown,
/// reported and a finding; prices carry their unit.
#[test]
fn tables_say_what_they_hide_and_never_cut_what_matters() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = tmp.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(
        inbox.join("cost-bad.json"),
        r#"{"data":[{"starting_at":"2026-10-01T00:00:00Z","ending_at":"2026-10-02T00:00:00Z","results":[{"currency":"USD","amount":12.5,"workspace_id":null,"description":"Claude Sonnet 4.5 Usage - Input Tokens","cost_type":"tokens","context_window":"0-200k","model":"claude-sonnet-4-5","service_tier":"standard","token_type":"uncached_input_tokens"}]}],"has_more":false,"next_page":null}"#,
    )
    .unwrap();
    let (c, _) = ingest(
        &data,
        &[
            &fixtures().join("sample"),
            &fixtures().join("ledger"),
            &inbox,
        ],
    );
    assert_eq!(c, 3);
    // The reason whole, at any width.
    let o = tl_env(&data, &["quarantine"], &[("COLUMNS", "60")]);
    let q = String::from_utf8_lossy(&o.stdout);
    assert!(
        q.contains("amount is a JSON number; the cost report sends a decimal string and a number may already have lost precision, so it is not guessed"),
        "{q}"
    );
    assert!(q.contains("(hidden to fit 60 columns: ingest_id"), "{q}");
    // The report at 100 columns says what it hid; --wide hides and cuts nothing.
    let o = tl(
        &data,
        &["report", "--month", "2026-10", "--by", "workspace"],
    );
    let r = String::from_utf8_lossy(&o.stdout);
    assert!(
        r.contains("(hidden to fit 100 columns:") && r.contains("workspace_id"),
        "{r}"
    );
    let o = tl(
        &data,
        &[
            "--wide",
            "report",
            "--month",
            "2026-10",
            "--by",
            "workspace",
        ],
    );
    let wide = String::from_utf8_lossy(&o.stdout);
    assert!(
        !wide.contains("hidden") && wide.contains("cache_read_tokens"),
        "{wide}"
    );
    // Rows by name, not by id.
    let empty = tmp.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let rows = report_rows(&data, &empty, "2026-10", "workspace");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["workspace_name"].as_str().unwrap_or("~"))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // Credits as of 2026-12-06: the lot that expired on 11-15 holds nothing; what it had is
    // lapsed, shown and a finding; the remaining column foots to the balance.
    let o = tl(&data, &["credits", "--as-of", "2026-12-06"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("lapsed_usd"), "{t}");
    assert!(
        t.contains("LOT-2025-11-A: $4,999.12 expired unused on 2026-11-15"),
        "{t}"
    );
    let o = tl(
        &data,
        &["credits", "--as-of", "2026-12-06", "--format", "json"],
    );
    let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let dec = |v: &serde_json::Value| {
        v.as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap()
    };
    let remaining: rust_decimal::Decimal = l["lots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| dec(&r["remaining_usd"]))
        .sum();
    assert_eq!(remaining, dec(&l["positions"][0]["balance_usd"]));
    // Prices say their unit.
    let o = tl(
        &data,
        &["prices", "--as-of", "2026-11-01", "--format", "csv"],
    );
    let head = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        head.contains("input_usd_per_mtok") && head.contains("output_usd_per_mtok"),
        "{head}"
    );
    // The terminal's own width (a real pseudo-terminal of 160 columns, COLUMNS unset).
    let cmd = format!(
        "stty cols 160 rows 40; {} --data-dir {} report --month 2026-10 --by workspace",
        BIN,
        data.display()
    );
    let o = scrubbed("timeout")
        .args(["30", "script", "-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert!(
        text.contains("cache_read_tokens") && !text.contains("hidden to fit 100"),
        "a 160-column terminal shows more: {text}"
    );
}

/// Point 6: the words around the figures. On the demo: no "unexplained 0.00" rows when an
/// invoice ties, no literal backticks in HTML, dollars with separators in every sentence,
/// "PROVISIONAL" said once, no pipeline jargon in a team lead's mail, and a tie-out CSV whose
/// labels a spreadsheet shows as written.
#[test]
fn the_words_around_the_figures_read_plainly() {
    let (_guard, demo) = demo();
    let html = std::fs::read_to_string(demo.join("chargeback-2026-10.html")).unwrap();
    assert!(!html.contains('`'), "no literal backticks in HTML");
    assert!(
        html.contains("<code>tokenledger anomalies ack "),
        "commands as code"
    );
    let tie = html
        .split("Tie-out of invoice")
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert!(
        !tie.contains("unexplained"),
        "it ties: no zero unexplained rows:\n{tie}"
    );
    assert!(
        html.contains("$6,277.68 spent by 2026-10-12"),
        "separators in sentences"
    );
    assert!(
        !html.contains("sql/report.sql"),
        "no pipeline jargon for a team lead"
    );
    // A provisional month says so once.
    let o = demo_cmd(
        &demo,
        &[
            "mail",
            "--month",
            "2026-10",
            "--dry-run",
            "--resend",
            "--as-of",
            "2026-11-02",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let dir = demo.join("data/outbox/dry-run/2026-10");
    for f in std::fs::read_dir(&dir).unwrap() {
        let m = parse_eml(&f.unwrap().path());
        for part in ["text", "html"] {
            let t = m[part].as_str().unwrap();
            assert_eq!(t.matches("PROVISIONAL").count(), 1, "{t}");
            assert!(!t.contains("Provisional:"), "{t}");
        }
    }
    // The tie-out CSV: steps without a sign a spreadsheet would take for a formula.
    let o = demo_cmd(
        &demo,
        &[
            "reconcile",
            "--month",
            "2026-10",
            "--tie-out",
            "--format",
            "csv",
        ],
    );
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(csv.contains(",tax,known,1989.92,"), "{csv}");
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| !l.split(',').nth(1).unwrap().starts_with(['\'', '+', '−'])),
        "{csv}"
    );
}

/// Point 3, the growth levels: an incident's level counts whole `regrow_factor` multiples of
/// its first day's cost; a credit's amount at risk alerts again when it reaches another power
/// of the factor ($3,711.22 → $3,900 is the same alert, → $7,422.44 or 54× is a new one).
#[test]
fn growth_levels_make_new_alerts_only_when_an_amount_grows_materially() {
    use chrono::NaiveDate;
    use rust_decimal::Decimal;
    use tokenledger::anomalies::incident::level;
    use tokenledger::credits::Finding;
    use tokenledger::mail::alerts::Alert;
    use tokenledger::money::Money;
    let m = |d: &str| Money::from_decimal(d.parse().unwrap()).unwrap();
    let two = Decimal::TWO;
    assert_eq!(level(m("100"), m("150"), two), 0);
    assert_eq!(level(m("100"), m("200"), two), 1);
    assert_eq!(
        level(m("261.12"), m("6413.56"), two),
        4,
        "the leaked key: 24.6×"
    );
    assert_eq!(level(Money::ZERO, m("5"), two), 0);
    let at_risk = |d: &str| {
        Alert::credit(
            Finding::AtRisk {
                provider: tokenledger::vocab::Provider::Anthropic,
                lot_id: "LOT-1".into(),
                expires_at: NaiveDate::from_ymd_opt(2027, 8, 1).unwrap(),
                at_risk_usd: m(d),
            },
            two,
        )
        .key(NaiveDate::from_ymd_opt(2026, 12, 6).unwrap())
    };
    assert_eq!(
        at_risk("3711.22"),
        at_risk("3900"),
        "not material: the same alert"
    );
    assert_ne!(
        at_risk("3711.22"),
        at_risk("200405.88"),
        "54×: alerted again"
    );
    assert_ne!(
        at_risk("3711.22"),
        at_risk("7422.44"),
        "doubled: alerted again"
    );
}

/// #26: the demo's Anthropic and OpenAI usage in one chargeback. The finance mail and every
/// team mail that has both show a subtotal per provider that foots to the total to the cent;
/// the finance mail's Anthropic subtotal is the invoice tie-out's "our list cost" (Anthropic's
/// own); the CLI's `report --by provider` says the same cents.
#[test]
fn both_providers_in_one_chargeback_with_a_subtotal_each() {
    let (_guard, demo) = demo();
    let o = demo_cmd(
        &demo,
        &[
            "report", "--month", "2026-10", "--by", "provider", "--format", "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let cli: Vec<(String, i128)> = rows
        .iter()
        .map(|r| {
            (
                r["provider"].as_str().unwrap().to_string(),
                cents(&r["list_cost_usd"]),
            )
        })
        .collect();
    assert_eq!(cli.len(), 2, "{cli:?}");
    let finance = finance_eml(&demo);
    let mail = parse_eml(&finance);
    let text = mail["text"].as_str().unwrap();
    let section = text
        .split("By provider (USD)\n")
        .nth(1)
        .unwrap_or_else(|| panic!("a provider section:\n{text}"));
    let lines: Vec<&str> = section.lines().take(3).collect();
    let amount = |l: &str| -> i128 {
        let v = l.rsplit_once(": ").unwrap().1.replace(',', "");
        (v.parse::<rust_decimal::Decimal>().unwrap() * rust_decimal::Decimal::ONE_HUNDRED)
            .try_into()
            .unwrap()
    };
    assert!(
        lines[0].trim_start().starts_with("Anthropic: "),
        "{lines:?}"
    );
    assert!(lines[1].trim_start().starts_with("OpenAI: "), "{lines:?}");
    assert!(lines[2].trim_start().starts_with("Total: "), "{lines:?}");
    assert_eq!(
        amount(lines[0]) + amount(lines[1]),
        amount(lines[2]),
        "{lines:?}"
    );
    assert_eq!((amount(lines[0]), amount(lines[1])), (cli[0].1, cli[1].1));
    let tie = text
        .lines()
        .find(|l| l.contains("our list cost of the period"))
        .unwrap();
    assert_eq!(
        amount(tie),
        amount(lines[0]),
        "Anthropic's invoice ties to Anthropic's cost"
    );
    // Search owns an Anthropic workspace and an OpenAI project: its mail says both.
    let team = std::fs::read_dir(demo.join("data/outbox/2026-10"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("team-search")
        })
        .unwrap();
    let team_mail = parse_eml(&team);
    let t = team_mail["text"].as_str().unwrap();
    let section = t
        .split("By provider (USD)\n")
        .nth(1)
        .expect("Search's provider section");
    let l: Vec<&str> = section.lines().take(3).collect();
    assert_eq!(amount(l[0]) + amount(l[1]), amount(l[2]), "{l:?}");
    let html = std::fs::read_to_string(demo.join("chargeback-2026-10.html")).unwrap();
    assert!(
        html.contains("<h3>By provider (USD)</h3>"),
        "the HTML report too"
    );
}
