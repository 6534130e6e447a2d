//! The same lake and SQL on three engines: every shipped `sql/` query runs on DuckDB and on
//! Spark SQL (pyspark, local mode) straight over the Parquet files, and both equal tokenledger's
//! own results exactly: decimals digit for digit, not close. The lake is the demo organisation
//! in a business timezone east of UTC (Asia/Tokyo), with a key assigned to a team by name, so
//! the month boundary, the team map and the money types are all exercised.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::*;

const MONTH: &str = "2026-10";

/// A value as canonical text: decimals without trailing zeros, timestamps as UTC ISO text.
fn canon(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Number(n) => canon_decimal(&n.to_string()),
        Value::String(s) => {
            if let Some(t) = s.strip_suffix('Z') {
                return t.to_string();
            }
            canon_decimal(s)
        }
        other => other.to_string(),
    }
}

fn canon_decimal(s: &str) -> String {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let numeric = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && !digits.starts_with('.');
    if !numeric || !s.contains('.') {
        return s.to_string();
    }
    let t = s.trim_end_matches('0').trim_end_matches('.');
    if t == "-0" { "0".into() } else { t.into() }
}

type Rows = Vec<BTreeMap<String, String>>;

/// Equal rows, or a message with the counts and the first rows that differ.
fn same(a: &Rows, b: &Rows, what: &str) {
    if a == b {
        return;
    }
    let only = |x: &Rows, y: &Rows| -> Vec<BTreeMap<String, String>> {
        x.iter()
            .filter(|r| !y.contains(r))
            .take(3)
            .cloned()
            .collect()
    };
    panic!(
        "{what}: {} rows vs {}; only in the first: {:?}; only in the second: {:?}",
        a.len(),
        b.len(),
        only(a, b),
        only(b, a)
    );
}

/// Rows as sorted maps of canonical text (row order is not part of the comparison).
fn rows_of(columns: &[String], rows: &[Vec<Value>]) -> Rows {
    let mut out: Rows = rows
        .iter()
        .map(|r| columns.iter().cloned().zip(r.iter().map(canon)).collect())
        .collect();
    out.sort();
    out
}

fn tl_rows(cfg: &Path, sql: &str) -> Rows {
    let file = cfg.with_file_name("query.sql");
    std::fs::write(&file, sql).unwrap();
    let o = binary()
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "sql",
            "--format",
            "json",
            "--file",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "tokenledger sql failed: {}\n{sql}", stderr(&o));
    let v: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(&o.stdout).unwrap();
    let mut out: Rows = v
        .iter()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), canon(v))).collect())
        .collect();
    out.sort();
    out
}

struct Engine {
    columns: BTreeMap<String, Vec<(String, String)>>,
    rows: BTreeMap<String, Rows>,
}

fn engine(name: &str, lake: &Path, jobs: &Path) -> Engine {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engines/run_sql.py");
    let o = Command::new("python3")
        .arg(&script)
        .args([name, lake.to_str().unwrap(), jobs.to_str().unwrap()])
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "{name} failed (pip install duckdb pyspark; Spark needs Java 17): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: BTreeMap<String, Value> = serde_json::from_slice(&o.stdout).expect("json");
    let mut e = Engine {
        columns: BTreeMap::new(),
        rows: BTreeMap::new(),
    };
    for (job, r) in v {
        let cols: Vec<(String, String)> = r["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c[0].as_str().unwrap().into(), c[1].as_str().unwrap().into()))
            .collect();
        let names: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
        let rows: Vec<Vec<Value>> = r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_array().unwrap().clone())
            .collect();
        e.rows.insert(job.clone(), rows_of(&names, &rows));
        e.columns.insert(job, cols);
    }
    e
}

/// Fills a shipped query's placeholders as `tokenledger sql --param month=…` does.
fn fill(sql: &str, dims: &str) -> String {
    sql.replace("{{month_before}}", "2026-09")
        .replace("{{month_after}}", "2026-11")
        .replace("{{month}}", MONTH)
        .replace("{{provider}}", "anthropic")
        .replace("{{order}}", dims)
        .replace("{{dims}}", dims)
        .replace(
            "{{models}}",
            "'claude-sonnet-4-5-20250929', 'claude-sonnet-4-5'",
        )
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sql").join(name)).unwrap()
}

/// The demo's lake, re-rated in Asia/Tokyo with one key assigned to a team by name.
fn tokyo_lake(dir: &Path) -> PathBuf {
    let demo = dir.join("demo");
    let o = binary()
        .args(["-q", "demo", "--dir", demo.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(matches!(code(&o), 0 | 3), "demo: {}", stderr(&o));
    let base = std::fs::read_to_string(demo.join("tokenledger.toml")).unwrap();
    let cfg = demo.join("tokyo.toml");
    let text = format!(
        "timezone = \"Asia/Tokyo\"\n{}",
        base.replace(
            "workspaces = [\"Data Platform\"]",
            "workspaces = [\"Data Platform\"]\napi_keys = [\"prod-default\"]"
        )
    );
    std::fs::write(&cfg, text).unwrap();
    let o = binary()
        .args(["-q", "--config", cfg.to_str().unwrap(), "rate"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "rate: {}", stderr(&o));
    cfg
}

#[test]
fn every_shipped_query_is_exact_on_duckdb_spark_and_tokenledger() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tokyo_lake(tmp.path());
    let lake = cfg.parent().unwrap().join("data");
    // An Analytics cost query too: its `list_amount` is what sql/provider_list.sql reads.
    let o = binary()
        .args(["-q", "--config", cfg.to_str().unwrap(), "ingest"])
        .arg(fixtures().join("formats/analytics-cost-2026-10-query.json"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "ingest: {}", stderr(&o));

    // Every shipped query (report.sql at two groupings), one job per statement.
    let report_dims = [
        (
            "report_team_ws_model",
            "team, workspace_id, workspace_name, model",
        ),
        ("report_team_key_day", "team, api_key_id, api_key_name, day"),
    ];
    // The view itself, row by row: the key, the day and every money column.
    let mut jobs: Vec<(String, String)> = vec![(
        "rated_usage.sql#view".into(),
        "SELECT ingest_id, source_file, source_row, model_canonical, pricing_status, utc_day, \
         business_day, business_month, rate_output, cost_uncached_input, cost_cache_write_5m, \
         cost_cache_write_1h, cost_cache_read, cost_output, cost_web_search, list_cost \
         FROM rated_usage ORDER BY ingest_id, source_file, source_row"
            .into(),
    )];
    for (name, dims) in report_dims {
        jobs.push((name.into(), fill(&shipped("report.sql"), dims)));
    }
    for f in [
        "usage_totals.sql",
        "credits_daily.sql",
        "anomaly_buckets.sql",
        "reconcile_ours.sql",
        "reconcile_provider.sql",
        "reconcile_coverage.sql",
        "chargeback_by_charge.sql",
        "provider_list.sql",
        "focus_usage.sql",
    ] {
        let text = fill(&shipped(f), "");
        let statements = tokenledger::query::statements(&text);
        for (i, st) in statements.iter().enumerate() {
            jobs.push((format!("{f}#{i}"), st.to_string()));
        }
    }
    // Every file of sql/ is covered (report_combine.sql: below, over report.sql's result).
    let listed: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("sql"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for f in &listed {
        assert!(
            f == "report.sql"
                || f == "report_combine.sql"
                || jobs.iter().any(|(n, _)| n.starts_with(f.as_str())),
            "sql/{f} is not in the three-engine test"
        );
    }
    // The `rated_usage` view of sql/rated_usage.sql, registered first as its header says.
    let view = serde_json::json!({
        "name": "rated_usage",
        "sql": shipped("rated_usage.sql"),
        "view": "rated_usage",
    });
    let mut job_json: Vec<Value> = vec![view.clone()];
    job_json.extend(
        jobs.iter()
            .map(|(n, s)| serde_json::json!({"name": n, "sql": s})),
    );
    // report_combine.sql over report.sql's result, as tokenledger runs the two steps.
    job_json.push(serde_json::json!({
        "name": "partials",
        "sql": fill(&shipped("report.sql"), "team, model"),
        "view": "partials",
    }));
    job_json.push(serde_json::json!({
        "name": "report_combine",
        "sql": fill(&shipped("report_combine.sql"), "team, model"),
    }));
    let jobs_file = tmp.path().join("jobs.json");
    std::fs::write(&jobs_file, serde_json::to_vec(&job_json).unwrap()).unwrap();

    let duck = engine("duckdb", &lake, &jobs_file);
    let spark = engine("spark", &lake, &jobs_file);
    for (name, sql) in &jobs {
        let ours = tl_rows(&cfg, sql);
        assert!(
            !ours.is_empty(),
            "{name} returned no rows: a test of nothing"
        );
        same(
            &duck.rows[name],
            &ours,
            &format!("DuckDB vs tokenledger on {name}"),
        );
        same(
            &spark.rows[name],
            &ours,
            &format!("Spark vs tokenledger on {name}"),
        );
    }

    // The product's own numbers: the chargeback and the usage totals, exactly.
    let o = binary()
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "report",
            "--month",
            MONTH,
        ])
        .args(["--by", "team,model", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let report: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(&o.stdout).unwrap();
    let mut product: Rows = report
        .iter()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "list_cost_usd")
                .map(|(k, v)| (k.clone(), canon(v)))
                .collect()
        })
        .collect();
    product.sort();
    same(&duck.rows["report_combine"], &product, "DuckDB vs `report`");
    same(&spark.rows["report_combine"], &product, "Spark vs `report`");
    // Prod-default is Data's by name now, so its Default-workspace cost left Unallocated.
    assert!(product.iter().any(|r| r["team"] == "Data"));

    // Money keeps its scale on every engine: sums, and sums of row arithmetic.
    for (e, want) in [(&duck, "DECIMAL(38,12)"), (&spark, "decimal(38,12)")] {
        let cols = &e.columns["chargeback_by_charge.sql#0"];
        for c in ["input_cost_usd", "output_cost_usd", "list_cost_usd"] {
            let t = &cols.iter().find(|(n, _)| n == c).unwrap().1;
            assert_eq!(t, want, "{c}");
        }
    }
    // input + output + web search = list cost, on every line, in every engine.
    for rows in [&duck.rows, &spark.rows] {
        for r in &rows["chargeback_by_charge.sql#0"] {
            let d = |c: &str| rust_decimal::Decimal::from_str_exact(&r[c]).unwrap();
            assert_eq!(
                d("input_cost_usd") + d("output_cost_usd") + d("web_search_cost_usd"),
                d("list_cost_usd")
            );
        }
    }

    // A Spark session in another time zone changes nothing a shipped report says: no query
    // converts a timestamp (the calendar columns carry the days).
    let la_jobs: Vec<Value> = std::iter::once(view)
        .chain(
            jobs.iter()
                .filter(|(n, _)| {
                    ["report", "credits", "reconcile_ours", "rated_usage"]
                        .iter()
                        .any(|p| n.starts_with(p))
                })
                .map(|(n, s)| serde_json::json!({"name": n, "sql": s})),
        )
        .collect();
    let la_file = tmp.path().join("jobs-la.json");
    std::fs::write(&la_file, serde_json::to_vec(&la_jobs).unwrap()).unwrap();
    let la = engine("spark-la", &lake, &la_file);
    for (name, rows) in &la.rows {
        same(
            rows,
            &spark.rows[name],
            &format!("a Los Angeles session moved {name}"),
        );
    }
}
