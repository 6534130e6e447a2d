//! Credits and invoices end to end: ingest (keyed, restated, refused), the three-way tie-out,
//! and `tokenledger credits` on the shipped fixtures.

use std::path::Path;

use crate::common::*;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn demo(data: &Path) {
    let (c, s) = ingest(
        data,
        &[&fixtures().join("sample"), &fixtures().join("ledger")],
    );
    assert_eq!(c, 0, "{s:#}");
}

fn json(data: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let o = tl(data, args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    (code(&o), v)
}

#[test]
fn the_demo_invoice_ties_out_step_by_step() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    demo(&data);
    let (c, r) = json(
        &data,
        &["reconcile", "--month", "2026-10", "--format", "json"],
    );
    assert_eq!(c, 0, "{r:#}");
    let t = &r["tie_outs"][0];
    assert_eq!(t["invoice_number"], "ANTH-2026-0010");
    assert_eq!(t["needs_review"], false);
    // By hand (fixtures/README.md): ours 2.9201125 → +0.125 code execution → −0.8501 Priority
    // Tier (−0.85 + −0.0001 rounding of matched lines) → cost report 2.1950125 → +0.0049875 →
    // charges 2.07 + 0.13 = 2.20 → credit −0.50 → subtotal 1.70 → −0.17 + 0.12 → total 1.65 →
    // balance −1.00 → due 0.65. Rounded, each subtotal is the one above plus the parts.
    let rows: Vec<(String, String, i64)> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["step"].as_str().unwrap().to_string(),
                r["amount_usd"].as_str().unwrap().to_string(),
                r["amount_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    let find = |prefix: &str| rows.iter().find(|r| r.0.starts_with(prefix)).unwrap();
    assert_eq!(find("our list cost").1, "2.920112500000");
    assert_eq!(find("+ only in the cost report").1, "0.125000000000");
    assert_eq!(find("+ Priority Tier").1, "-0.850000000000");
    assert_eq!(find("the provider's cost report").1, "2.195012500000");
    assert_eq!(find("+ unexplained: cost report").1, "0.004987500000");
    assert_eq!(find("invoice charges").2, 220);
    assert_eq!(find("+ credits applied").2, -50);
    assert_eq!(find("invoice subtotal").2, 170);
    assert_eq!(find("− discounts").2, -17);
    assert_eq!(find("+ tax").2, 12);
    assert_eq!(find("invoice total").2, 165);
    assert_eq!(find("+ customer balance").2, -100);
    assert_eq!(find("amount due").2, 65);
    // Footing after rounding: walk the ladder.
    let kinds: Vec<String> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().into())
        .collect();
    let mut running = rows[0].2;
    for (row, kind) in rows.iter().zip(&kinds).skip(1) {
        if kind == "subtotal" {
            assert_eq!(running, row.2, "{} does not foot", row.0);
        } else {
            running += row.2;
        }
    }
    // The CSV for finance carries the same cents and the exact amounts.
    let o = tl(
        &data,
        &[
            "reconcile",
            "--month",
            "2026-10",
            "--tie-out",
            "--format",
            "csv",
        ],
    );
    let csv = String::from_utf8(o.stdout).unwrap();
    assert!(
        csv.starts_with("invoice_number,step,kind,amount_usd,amount_usd_exact\n"),
        "{csv}"
    );
    assert!(
        csv.contains("ANTH-2026-0010,amount due,subtotal,0.65,0.650000000000"),
        "{csv}"
    );
}

#[test]
fn an_invoice_that_does_not_match_the_cost_report_is_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    demo(&data);
    // The same invoice number restated with a line $5 higher: it replaces the first (one
    // invoice, not two), and $5 is unexplained between the cost report and the invoice.
    let text = std::fs::read_to_string(fixtures().join("ledger/invoice-2026-10.json")).unwrap();
    let restated = text
        .replace("\"amount\": 207,", "\"amount\": 707,")
        .replace("\"subtotal\": 170,", "\"subtotal\": 670,")
        .replace("\"total\": 165,", "\"total\": 665,")
        .replace("\"amount_due\": 65,", "\"amount_due\": 565,");
    let dir = tmp.path().join("restated");
    write(&dir, "invoice.json", &restated);
    let (c, _) = ingest(&data, &[&dir]);
    assert_eq!(c, 0);
    let n = sql(
        &data,
        "SELECT COUNT(*) AS n, MAX(total_usd) AS t FROM invoices",
    );
    assert_eq!(n[0]["n"], 1);
    assert_eq!(n[0]["t"], "6.650000000000");
    let (c, r) = json(
        &data,
        &["reconcile", "--month", "2026-10", "--format", "json"],
    );
    assert_eq!(c, 3, "{r:#}");
    let t = &r["tie_outs"][0];
    assert_eq!(t["needs_review"], true);
    assert_eq!(t["unexplained_usd"], "5.004987500000");
}

#[test]
fn stripe_invoices_come_one_per_file_as_a_list_page_or_as_an_array() {
    // The API's `GET /v1/invoices` answers a list object; dashboards export a JSON array. Each
    // invoice stands alone: a draft among them is quarantined by its place, the others load.
    let base = std::fs::read_to_string(fixtures().join("ledger/invoice-2026-10.json")).unwrap();
    let inv = |number: &str| base.replace("ANTH-2026-0010", number);
    let draft = inv("DRAFT-9").replace("\"status\": \"paid\"", "\"status\": \"draft\"");
    let items = [inv("ANTH-2026-0010"), inv("ANTH-2026-0011"), draft];
    let joined = items.join(",");
    for (name, text) in [
        (
            "list.json",
            format!(
                "{{\"object\": \"list\", \"url\": \"/v1/invoices\", \"has_more\": false, \"data\": [{joined}]}}"
            ),
        ),
        ("array.json", format!("[{joined}]")),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let dir = tmp.path().join("in");
        write(&dir, name, &text);
        let (c, s) = ingest(&data, &[&dir]);
        assert_eq!(c, 3, "{name}: the draft is quarantined: {s:#}");
        let got = sql(
            &data,
            "SELECT invoice_number, total_usd FROM invoices ORDER BY invoice_number",
        );
        let numbers: Vec<&str> = got
            .iter()
            .map(|r| r["invoice_number"].as_str().unwrap())
            .collect();
        assert_eq!(numbers, ["ANTH-2026-0010", "ANTH-2026-0011"], "{name}");
        assert!(
            got.iter().all(|r| r["total_usd"] == "1.650000000000"),
            "{got:?}"
        );
        let q = sql(&data, "SELECT location, reason FROM quarantine");
        assert_eq!(q.len(), 1, "{name}: {q:?}");
        assert!(
            q[0]["location"].as_str().unwrap().contains('2')
                && q[0]["reason"].as_str().unwrap().contains("draft"),
            "{name}: the third item, as a draft: {q:?}"
        );
    }
}

#[test]
fn invoices_are_refused_rather_than_guessed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let base = std::fs::read_to_string(fixtures().join("ledger/invoice-2026-10.json")).unwrap();
    let dir = tmp.path().join("in");
    write(
        &dir,
        "eur.json",
        &base
            .replace(
                "\"currency\": \"usd\",\n  \"customer\"",
                "\"currency\": \"eur\",\n  \"customer\"",
            )
            .replace("ANTH-2026-0010", "EUR-1"),
    );
    write(
        &dir,
        "float.json",
        &base
            .replace("\"subtotal\": 170,", "\"subtotal\": 170.5,")
            .replace("ANTH-2026-0010", "FLOAT-1"),
    );
    write(
        &dir,
        "draft.json",
        &base
            .replace("\"status\": \"paid\"", "\"status\": \"draft\"")
            .replace("ANTH-2026-0010", "DRAFT-1"),
    );
    let (c, s) = ingest(&data, &[&dir]);
    assert_eq!(c, 3, "{s:#}");
    let q = sql(
        &data,
        "SELECT source_file, field, reason FROM quarantine ORDER BY source_file",
    );
    let reason = |file: &str| {
        q.iter()
            .find(|r| r["source_file"].as_str().unwrap().ends_with(file))
            .map(|r| r["reason"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{file} not quarantined: {q:?}"))
    };
    assert!(
        reason("eur.json").contains("currency EUR: only USD amounts are summed"),
        "{q:?}"
    );
    // The refusal names the float itself (the generic "cannot read exactly" alone would
    // also be said of any other malformed invoice).
    assert!(
        reason("float.json").contains("floating point `170.5`, expected i64"),
        "{q:?}"
    );
    assert!(reason("draft.json").contains("draft"), "{q:?}");
    assert!(
        sql(
            &data,
            "SELECT COUNT(*) AS n FROM ingest_log WHERE rows_loaded > 0"
        )[0]["n"]
            == 0
    );
}

#[test]
fn the_invoice_csv_builds_the_same_invoice_as_stripe() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dir = tmp.path().join("in");
    write(
        &dir,
        "invoice.csv",
        "invoice_number,provider,currency,period_start,period_end,line_kind,description,amount_usd\n\
         INV-7,anthropic,USD,2026-10-01,2026-11-01,charge,API usage,2.07\n\
         INV-7,anthropic,USD,2026-10-01,2026-11-01,charge,Code execution,0.13\n\
         INV-7,anthropic,USD,2026-10-01,2026-11-01,credit,Promotional credit,-0.50\n\
         INV-7,anthropic,USD,2026-10-01,2026-11-01,discount,10%,-0.17\n\
         INV-7,anthropic,USD,2026-10-01,2026-11-01,tax,Sales tax,0.12\n\
         INV-7,anthropic,USD,2026-10-01,2026-11-01,balance,Account credit,-1.00\n\
         BAD-1,anthropic,USD,2026-10-01,2026-11-01,charge,API usage,2.07\n\
         BAD-1,anthropic,USD,2026-10-01,2026-11-01,credit,Oops,0.50\n",
    );
    let (c, _) = ingest(&data, &[&dir]);
    assert_eq!(c, 3, "BAD-1 has a positive credit line");
    let inv = sql(
        &data,
        "SELECT invoice_number, subtotal_usd, discount_usd, tax_usd, total_usd, starting_balance_usd, amount_due_usd, credits_applied_usd, source_format FROM invoices",
    );
    assert_eq!(inv.len(), 1, "{inv:?}");
    let i = &inv[0];
    assert_eq!(i["invoice_number"], "INV-7");
    assert_eq!(
        [
            &i["subtotal_usd"],
            &i["discount_usd"],
            &i["tax_usd"],
            &i["total_usd"],
            &i["starting_balance_usd"],
            &i["amount_due_usd"],
            &i["credits_applied_usd"]
        ],
        [
            "1.700000000000",
            "0.170000000000",
            "0.120000000000",
            "1.650000000000",
            "-1.000000000000",
            "0.650000000000",
            "-0.500000000000"
        ]
    );
    assert_eq!(i["source_format"], "invoice-csv");
}

#[test]
fn credit_lots_are_keyed_restated_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dir = tmp.path().join("v1");
    write(
        &dir,
        "credits.csv",
        "lot_id,provider,kind,purchased_at,amount_usd,expires_at\n\
         A,anthropic,prepaid,2024-02-29,100.00,\n\
         P,anthropic,promotional,2026-01-01,50,\n\
         B,anthropic,prepaid,2026-01-01,\"$1,000.00\",\n\
         C,anthropic,gift,2026-01-01,10,\n",
    );
    let (c, _) = ingest(&data, &[&dir]);
    assert_eq!(c, 3);
    let lots = sql(
        &data,
        "SELECT lot_id, expires_at, expiry_stated FROM credit_lots ORDER BY lot_id",
    );
    assert_eq!(lots.len(), 1, "{lots:?}");
    assert_eq!(lots[0]["expires_at"], "2025-02-28");
    let q = sql(
        &data,
        "SELECT field, reason FROM quarantine WHERE field IS NOT NULL ORDER BY line",
    );
    let fields: Vec<&str> = q.iter().map(|r| r["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["expires_at", "amount_usd", "kind"], "{q:?}");
    // A later file restates lot A (same id): one lot, the new amount.
    let v2 = tmp.path().join("v2");
    write(
        &v2,
        "credits.csv",
        "lot_id,provider,kind,purchased_at,amount_usd\nA,anthropic,prepaid,2024-02-29,120.00\n",
    );
    assert_eq!(ingest(&data, &[&v2]).0, 0);
    let lots = sql(&data, "SELECT lot_id, amount_usd FROM credit_lots");
    assert_eq!(lots.len(), 1);
    assert_eq!(lots[0]["amount_usd"], "120.000000000000");
    // A misspelt column would silently drop expiries: the file is refused whole.
    let v3 = tmp.path().join("v3");
    write(
        &v3,
        "credits.csv",
        "lot_id,provider,kind,purchased_at,amount_usd,expires\nZ,anthropic,prepaid,2026-01-01,1,2026-02-01\n",
    );
    let (c, s) = ingest(&data, &[&v3]);
    assert_eq!(c, 3);
    assert!(
        s["files"][0]["error"]
            .as_str()
            .unwrap()
            .contains("unknown column \"expires\""),
        "{s:#}"
    );
    // The same lot twice in one file would count its credit twice.
    let v4 = tmp.path().join("v4");
    write(
        &v4,
        "credits.csv",
        "lot_id,provider,kind,purchased_at,amount_usd\nD,anthropic,prepaid,2026-01-01,1\nD,anthropic,prepaid,2026-01-02,1\n",
    );
    let (c, s) = ingest(&data, &[&v4]);
    assert_eq!(c, 3);
    assert!(
        s["files"][0]["error"]
            .as_str()
            .unwrap()
            .contains("appears again"),
        "{s:#}"
    );
}

#[test]
fn the_credits_command_foots_ties_and_reruns_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    demo(&data);
    let (c, l) = json(
        &data,
        &["credits", "--as-of", "2026-10-31", "--format", "json"],
    );
    assert_eq!(c, 3, "lots at risk are findings");
    // fixtures/README.md: the usage (Aug–Oct, $5.71) all falls to the monthly seat credit,
    // whose cycles expire first; on 10-31 the lots hold 5000 + 1000 + 500 + (200 − 0.0446875).
    // Lapsed seat credit: June and July cycles 200 each, August's 200 − 0.77293925, September's
    // 200 − 4.89558175 (09-29 .. 10-04) = 794.331479.
    // The sample's usage ends on 10-05, but the Console balance of 10-31 (balances.csv) is
    // what the data alone reaches: nothing was spent in between, so nothing is estimated.
    let p = &l["positions"][0];
    assert_eq!(p["balance_usd"], "6699.955312500000");
    assert_eq!(p["burn_through"], "2026-10-31");
    assert_eq!(p["estimated_days"], 0);
    assert_eq!(l["assertions"][0]["holds"], true);
    let lot = |id: &str| {
        l["lots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["lot_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(lot("LOT-MAX-SEATS")["lapsed_usd"], "794.331479000000");
    assert_eq!(lot("LOT-2025-11-A")["status"], "at_risk");
    assert!(
        l["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "expiring" && f["lot_id"] == "LOT-2025-11-A")
    );
    // The table rounds: consumed = amount − remaining on every row, and the totals foot.
    let o = tl(
        &data,
        &["credits", "--as-of", "2026-10-31", "--format", "csv"],
    );
    let csv = String::from_utf8(o.stdout).unwrap();
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    let dec = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    for row in &rows {
        assert_eq!(dec(&row[6]) - dec(&row[7]), dec(&row[8]), "{row:?}");
    }
    // Re-running changes nothing.
    let (c, _) = ingest(
        &data,
        &[&fixtures().join("sample"), &fixtures().join("ledger")],
    );
    assert_eq!(c, 0);
    let (_, again) = json(
        &data,
        &["credits", "--as-of", "2026-10-31", "--format", "json"],
    );
    assert_eq!(again, l);
}

#[test]
fn the_readme_demo_run_shows_the_tie_out_and_credits_at_risk() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sample = fixtures().join("sample");
    let ledger = fixtures().join("ledger");
    let args = [
        "run",
        "--inputs",
        sample.to_str().unwrap(),
        ledger.to_str().unwrap(),
    ];
    let o = tl(&data, &args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(code(&o), 3, "findings to look at: {}", stderr(&o));
    assert!(
        out.contains("invoice ANTH-2026-0010 (anthropic, 2026-10-01 .. 2026-11-01): ties out"),
        "{out}"
    );
    assert!(out.contains("== credits =="), "{out}");
    assert!(out.contains("will expire unused"), "{out}");
    // Again: nothing new is read, the same findings stand (exit 4: nothing new tonight).
    let o = tl(&data, &args);
    assert_eq!(code(&o), 4);
    assert!(stderr(&o).contains("0 new"), "{}", stderr(&o));
}

#[test]
fn a_credits_file_too_large_to_be_a_ledger_is_refused_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut text = String::from("lot_id,provider,kind,purchased_at,amount_usd\n");
    for i in 0..=tokenledger::sources::ledger::MAX_ROWS {
        text.push_str(&format!("L{i},anthropic,prepaid,2026-01-01,1\n"));
    }
    let dir = tmp.path().join("in");
    write(&dir, "credits.csv", &text);
    let (c, s) = ingest(&data, &[&dir]);
    assert_eq!(c, 3);
    assert!(
        s["files"][0]["error"]
            .as_str()
            .unwrap()
            .contains("more than 10000 rows"),
        "{s:#}"
    );
    assert!(sql(&data, "SELECT COUNT(*) AS n FROM ingest_log")[0]["n"] == 1);
}

#[test]
fn run_logs_one_json_object_per_stage_for_log_shippers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sample = fixtures().join("sample");
    let o = tl(
        &data,
        &[
            "--log-format",
            "json",
            "run",
            "--json",
            "--inputs",
            sample.to_str().unwrap(),
        ],
    );
    let first = code(&o);
    assert!(first == 0 || first == 3, "{}", stderr(&o));
    let mut stages = Vec::new();
    for line in stderr(&o).lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert_eq!(v["level"], "INFO");
        assert!(v["timestamp"].is_string());
        stages.push(v["fields"]["stage"].as_str().unwrap().to_string());
    }
    for s in [
        "ingest",
        "rate",
        "report",
        "credits",
        "anomalies",
        "month_close",
        "alerts",
    ] {
        assert!(stages.iter().any(|x| x == s), "{s} in {stages:?}");
    }
    // -q: nothing on stderr; the exit code says it all (the same findings again: 4).
    let o = tl(&data, &["-q", "run", "--inputs", sample.to_str().unwrap()]);
    assert_eq!(code(&o), if first == 3 { 4 } else { 0 });
    assert!(o.stderr.is_empty() && o.stdout.is_empty());
}
