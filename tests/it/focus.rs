//! `tokenledger export focus`: the three FOCUS 1.4 datasets checked against the 1.4 column
//! model that `focus-data-toolkit` (PyPI) ships, tied to every invoice and to `report`, read
//! by DuckDB from Parquet and CSV alike, and byte-identical when exported again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::common::*;

/// `tokenledger --config CFG ARGS…` (the config names the data dir).
fn tlc(cfg: &Path, args: &[&str]) -> std::process::Output {
    binary()
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

/// `tests/engines/focus_check.py` over an export directory: violations, columns, totals.
fn check(dir: &Path, format: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engines/focus_check.py");
    let o = Command::new("timeout")
        .args(["300", "python3"])
        .arg(&script)
        .arg(dir)
        .arg(format)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "focus_check.py failed (pip install duckdb focus-data-toolkit): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json")
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("{v} is not decimal text")),
    )
    .unwrap()
    .normalize()
}

fn export(cfg: &Path, month: &str, out: &Path, format: &str) -> Value {
    let o = tlc(
        cfg,
        &[
            "export",
            "focus",
            "--month",
            month,
            "--out",
            out.to_str().unwrap(),
            "--format",
            format,
            "--as-of",
            "2026-12-07",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "export: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The CSV rows of a dataset, as maps.
fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let head: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            head.iter()
                .cloned()
                .zip(rec.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

fn d(s: &str) -> Decimal {
    if s.is_empty() {
        Decimal::ZERO
    } else {
        Decimal::from_str(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }
}

/// The invoices of `month` as the lake holds them: number → total.
fn invoice_totals(cfg: &Path, month: &str) -> BTreeMap<String, Decimal> {
    let o = tlc(
        cfg,
        &[
            "sql",
            "--format",
            "json",
            "SELECT invoice_number, total_usd, period_start FROM invoices",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    rows.iter()
        .filter(|r| r["period_start"].as_str().unwrap().starts_with(month))
        .map(|r| {
            let t = match &r["total_usd"] {
                Value::String(s) => d(s),
                other => d(&other.to_string()),
            };
            (
                r["invoice_number"].as_str().unwrap().to_string(),
                t.normalize(),
            )
        })
        .collect()
}

/// Lot id → kind.
fn lot_kinds(cfg: &Path) -> BTreeMap<String, String> {
    let o = tlc(
        cfg,
        &[
            "sql",
            "--format",
            "json",
            "SELECT lot_id, kind FROM credit_lots",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["lot_id"].as_str().unwrap().into(),
                r["kind"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// The report's exact list total of a month (every line, every provider).
fn report_total(cfg: &Path, month: &str) -> Decimal {
    let o = tlc(
        cfg,
        &[
            "report", "--month", month, "--by", "model", "--format", "csv",
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let head = r.headers().unwrap().clone();
    let i = head
        .iter()
        .position(|h| h == "list_cost_usd_exact")
        .unwrap();
    r.records()
        .map(|x| d(&x.unwrap()[i]))
        .sum::<Decimal>()
        .normalize()
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p: PathBuf = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// What every export must satisfy: the model, the invoices, the report, credits, DuckDB on
/// both formats, byte-identical re-exports.
fn assert_export_holds(
    cfg: &Path,
    tmp: &Path,
    month: &str,
) -> (Value, Vec<BTreeMap<String, String>>) {
    let (p, c) = (tmp.join("parquet"), tmp.join("csv"));
    let summary = export(cfg, month, &p, "parquet");
    export(cfg, month, &c, "csv");
    let (qp, qc) = (check(&p, "parquet"), check(&c, "csv"));
    for q in [&qp, &qc] {
        assert_eq!(
            q["violations"],
            serde_json::json!([]),
            "FOCUS 1.4 model: {q:#}"
        );
        assert!(q["datasets"]["cost_and_usage"]["rows"].as_u64().unwrap() > 0);
    }
    // DuckDB reads the Parquet and the CSV and gets the same totals.
    assert_eq!(qp["totals"], qc["totals"], "parquet vs csv totals");
    assert_eq!(
        qp["invoice_detail_by_invoice"],
        qc["invoice_detail_by_invoice"]
    );
    // Each invoice: its Cost and Usage rows and its Invoice Detail rows sum to its total.
    let invoices = invoice_totals(cfg, month);
    assert!(
        !invoices.is_empty(),
        "a month with invoices: a test of something"
    );
    for (number, total) in &invoices {
        let cu = dec(&qp["totals"]["billed_by_invoice"][number]);
        let id = dec(&qp["invoice_detail_by_invoice"][number]);
        assert_eq!(cu, *total, "Cost and Usage BilledCost of {number}");
        assert_eq!(id, *total, "Invoice Detail BilledCost of {number}");
    }
    // The summary's exact totals are the files' totals.
    let usage = &qp["totals"]["by_category"]["Usage"];
    let all_list: Decimal = qp["totals"]["by_category"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| dec(&v["ListCost"]))
        .sum();
    assert_eq!(
        d(summary["list_cost"].as_str().unwrap()).normalize(),
        all_list.normalize()
    );
    // EffectiveCost = ContractedCost − the credit that cost nothing, row by row.
    let kinds = lot_kinds(cfg);
    let rows = csv_rows(&c.join("cost_and_usage.csv"));
    let mut free_total = Decimal::ZERO;
    for r in rows.iter().filter(|r| r["ChargeCategory"] == "Usage") {
        let mut free = Decimal::ZERO;
        if !r["ContractApplied"].is_empty() {
            let j: Value = serde_json::from_str(&r["ContractApplied"]).unwrap();
            for e in j["Elements"].as_array().unwrap() {
                let kind = &kinds[e["ContractCommitmentId"].as_str().unwrap()];
                if kind == "promotional" || kind == "monthly" {
                    free += d(&e["ContractCommitmentAppliedCost"].to_string());
                }
            }
        }
        free_total += free;
        assert_eq!(
            d(&r["EffectiveCost"]),
            d(&r["ContractedCost"]) - free,
            "EffectiveCost of {r:?}"
        );
        // A unit price explains the cost exactly where it is given.
        if !r["ListUnitPrice"].is_empty() {
            assert_eq!(
                d(&r["ListUnitPrice"]) * d(&r["PricingQuantity"]),
                d(&r["ListCost"])
            );
        }
    }
    assert_eq!(
        dec(&usage["EffectiveCost"]),
        (dec(&usage["ContractedCost"]) - free_total).normalize()
    );
    // Re-exporting gives identical bytes.
    let before = (files(&p), files(&c));
    export(cfg, month, &p, "parquet");
    export(cfg, month, &c, "csv");
    assert!(
        before.0 == files(&p) && before.1 == files(&c),
        "re-export changed bytes"
    );
    (qp, rows)
}

/// `tokenledger demo` into `dir/demo` (its lake, config and month close's export).
fn demo(dir: &Path) -> PathBuf {
    let demo = dir.join("demo");
    let o = binary()
        .args(["-q", "demo", "--dir"])
        .arg(&demo)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "demo: {}", stderr(&o));
    demo
}

#[test]
fn the_demo_month_exports_to_focus_1_4_and_ties_to_the_invoice_the_report_and_the_credits() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = demo(tmp.path());
    let cfg = demo.join("tokenledger.toml");
    let (q, rows) = assert_export_holds(&cfg, tmp.path(), "2026-10");
    // No override in the demo: ListCost of the usage is the report's list total.
    let usage = &q["totals"]["by_category"]["Usage"];
    assert_eq!(dec(&usage["ListCost"]), report_total(&cfg, "2026-10"));
    assert_eq!(usage["ListCost"], usage["ContractedCost"]);
    // Both providers, credits drawn, prepaid lots bought this month as Purchase rows.
    let providers: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["ServiceProviderName"].as_str())
        .collect();
    assert_eq!(providers.len(), 2, "{providers:?}");
    assert!(q["contract_applied_rows"].as_u64().unwrap() > 0);
    for r in rows.iter().filter(|r| r["ChargeCategory"] == "Purchase") {
        assert_eq!(
            r["EffectiveCost"], "0",
            "a purchase is amortised into usage: {r:?}"
        );
    }
    // A month no usage covers is refused, never exported as $0 of spend.
    let none = tmp.path().join("none");
    let o = tlc(
        &cfg,
        &[
            "export",
            "focus",
            "--month",
            "2025-01",
            "--out",
            none.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no usage export covers 2025-01"),
        "{}",
        stderr(&o)
    );
    assert!(!none.exists());
    // The demo's month close wrote the same export into [export] focus_dir, byte for byte.
    assert_eq!(
        files(&demo.join("focus/2026-10")),
        files(&tmp.path().join("parquet")),
        "the month close's export is the command's"
    );
    // The checker itself fails on a wrong value (a test that can fail).
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in ["invoice_detail.csv", "billing_period.csv"] {
        std::fs::copy(tmp.path().join("csv").join(f), broken.join(f)).unwrap();
    }
    let text = std::fs::read_to_string(tmp.path().join("csv/cost_and_usage.csv")).unwrap();
    let text = text
        .replacen(",Usage,", ",Refund,", 1)
        .replacen(",USD,", ",,", 1);
    std::fs::write(broken.join("cost_and_usage.csv"), text).unwrap();
    let v = check(&broken, "csv")["violations"].to_string();
    assert!(v.contains("'Refund' is not an allowed value"), "{v}");
    assert!(v.contains("BillingCurrency does not allow nulls"), "{v}");
}

#[test]
fn a_stripe_invoice_with_credit_discount_and_tax_ties_to_the_cent_and_an_override_is_contracted() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("tokenledger.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\n\n[[prices.model]]\nmodels = [\"claude-sonnet-4-6\"]\ninput = \"2.70\"\n\
             output = \"13.50\"\ncache_write_5m = \"3.375\"\ncache_write_1h = \"5.40\"\ncache_read = \"0.27\"\n\
             \n[export.billing_accounts.anthropic]\nid = \"org-test\"\nname = \"Test Org\"\n",
            tmp.path().join("data").to_str().unwrap()
        ),
    )
    .unwrap();
    let o = tlc(
        &cfg,
        &[
            "-q",
            "ingest",
            fixtures().join("sample").to_str().unwrap(),
            fixtures()
                .join("ledger/invoice-2026-10.json")
                .to_str()
                .unwrap(),
            fixtures().join("ledger/credits.csv").to_str().unwrap(),
        ],
    );
    assert!(matches!(code(&o), 0 | 3), "ingest: {}", stderr(&o));
    let (q, rows) = assert_export_holds(&cfg, tmp.path(), "2026-10");
    // The override prices claude-sonnet-4-6 below list: contracted, not list.
    let sonnet: Vec<_> = rows
        .iter()
        .filter(|r| r["x_Model"] == "claude-sonnet-4-6" && r["x_TokenClass"] == "output")
        .collect();
    assert!(!sonnet.is_empty());
    for r in &sonnet {
        // $13.50 negotiated vs $15 list per MTok, every modifier (a `us` geo) on both.
        let ratio = d(&r["ContractedUnitPrice"]) / d(&r["ListUnitPrice"]);
        assert_eq!(
            ratio.normalize(),
            Decimal::from_str("0.9").unwrap(),
            "{r:?}"
        );
    }
    let usage = &q["totals"]["by_category"]["Usage"];
    assert_eq!(dec(&usage["ContractedCost"]), report_total(&cfg, "2026-10"));
    assert!(dec(&usage["ListCost"]) > dec(&usage["ContractedCost"]));
    // The invoice's own lines: the credit, the discount and the tax are rows of their own.
    let of = |cat: &str| -> Vec<&BTreeMap<String, String>> {
        rows.iter().filter(|r| r["ChargeCategory"] == cat).collect()
    };
    assert_eq!(of("Credit").len(), 1);
    assert_eq!(of("Credit")[0]["BilledCost"], "-0.5");
    assert_eq!(of("Adjustment")[0]["BilledCost"], "-0.17");
    assert_eq!(of("Tax")[0]["BilledCost"], "0.12");
    assert!(rows.iter().all(|r| r["BillingAccountId"] == "org-test"));
    // Invoice Detail carries the Stripe invoice's dates and terms.
    let detail = csv_rows(&tmp.path().join("csv/invoice_detail.csv"));
    assert_eq!(detail.len(), 5, "{detail:?}");
    for r in &detail {
        assert_eq!(r["InvoiceId"], "ANTH-2026-0010");
        assert_eq!(r["InvoiceIssueDate"], "2026-11-01T00:00:00Z");
        assert_eq!(r["InvoiceIssueStatus"], "Issued");
        assert_eq!(r["InvoiceIssuerName"], "Anthropic, PBC");
        assert_eq!(r["PaymentTerms"], "Charged automatically on issue");
    }
    let period = csv_rows(&tmp.path().join("csv/billing_period.csv"));
    assert_eq!(period.len(), 1);
    assert_eq!(period[0]["BillingPeriodStart"], "2026-10-01T00:00:00Z");
    assert_eq!(period[0]["BillingPeriodEnd"], "2026-11-01T00:00:00Z");
    assert_eq!(period[0]["BillingPeriodStatus"], "Closed");
    assert!(
        rows.iter().all(|r| r["ChargeClass"].is_empty()),
        "nothing restated yet"
    );

    // The provider restates 1 October after the invoice was issued and loaded: those rows are
    // corrections, the other days are not, and the invoice still ties to the cent.
    let o = tlc(
        &cfg,
        &[
            "-q",
            "ingest",
            fixtures()
                .join("formats/usage-2026-10-01-restated.json")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(matches!(code(&o), 0 | 3), "ingest: {}", stderr(&o));
    let again = tmp.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    let (_, rows) = assert_export_holds(&cfg, &again, "2026-10");
    let usage: Vec<_> = rows
        .iter()
        .filter(|r| r["ChargeCategory"] == "Usage")
        .collect();
    for r in &usage {
        let first_day = r["ChargePeriodStart"] == "2026-10-01T00:00:00Z";
        let class = if first_day { "Correction" } else { "" };
        assert_eq!(r["ChargeClass"], class, "{r:?}");
    }
    assert!(usage.iter().any(|r| r["ChargeClass"] == "Correction"));
}

#[test]
fn the_arrow_pass_and_the_shipped_sql_give_the_same_usage_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = demo(tmp.path());
    let (config, _) =
        tokenledger::config::Config::load(Some(&demo.join("tokenledger.toml"))).unwrap();
    let layout = tokenledger::lake::Layout::new(demo.join("data"));
    let snap = tokenledger::lake::Snapshot::read(&layout).unwrap();
    let key = |g: &tokenledger::export::UsageGroup| format!("{g:?}");
    let mut groups = 0;
    for month in ["2026-08", "2026-09", "2026-10"] {
        let m = tokenledger::vocab::Month::parse(month).unwrap();
        let mut fast = tokenledger::export::usage_groups(&snap, m, &config.teams).unwrap();
        // polars plans SQL recursively: a debug build needs more than a test thread's stack.
        let mut sql = std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn_scoped(s, || {
                    tokenledger::export::usage_groups_sql(&snap, m, &config.teams).unwrap()
                })
                .unwrap()
                .join()
                .unwrap()
        });
        fast.sort_by_key(key);
        sql.sort_by_key(key);
        assert_eq!(fast.len(), sql.len(), "{month}");
        for (a, b) in fast.iter().zip(&sql) {
            assert_eq!(a, b, "{month}");
        }
        // Teams and cost centers are resolved, both providers are there.
        assert!(
            fast.iter()
                .any(|g| g.head.team.is_some() && g.head.cost_center.is_some())
        );
        groups += fast.len();
    }
    assert!(groups > 1000, "a test of something: {groups} groups");
}
