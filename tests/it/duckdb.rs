//! Interop: DuckDB (the Python package) reads the lake with no code of ours, and its totals
//! equal tokenledger's.

use std::path::Path;
use std::process::Command;

use crate::common::*;

fn duckdb(script: &str) -> serde_json::Value {
    let o = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "DuckDB failed (install it with `pip install duckdb`): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json from python")
}

fn prelude(data: &Path) -> String {
    format!(
        "import duckdb, json\nc = duckdb.connect()\nc.execute(\"SET TimeZone='UTC'\")\nUSAGE = {:?}\nCOST = {:?}\n",
        format!("{}/usage/**/*.parquet", data.display()),
        format!("{}/cost/**/*.parquet", data.display())
    )
}

#[test]
fn duckdb_reads_the_lake_and_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exports = synth(
        tmp.path(),
        &["--width", "1h", "--months", "2", "--seed", "99"],
    );
    ingest_ok(&data, &[&exports, &fixtures().join("sample")]);

    // Hive-partitioned glob, straight from the Parquet files.
    let cols: Vec<String> = TOKEN_COLS
        .iter()
        .map(|c| format!("SUM({c})::BIGINT"))
        .collect();
    let script = format!(
        "{}r = c.execute(\"SELECT {}, COUNT(*) FROM read_parquet('\" + USAGE + \"', hive_partitioning=true)\").fetchone()\n\
         months = [m for (m,) in c.execute(\"SELECT DISTINCT month FROM read_parquet('\" + USAGE + \"', hive_partitioning=true) ORDER BY 1\").fetchall()]\n\
         cost = c.execute(\"SELECT CAST(SUM(amount) AS VARCHAR), typeof(SUM(amount)) FROM read_parquet('\" + COST + \"')\").fetchone()\n\
         print(json.dumps({{'totals': list(r), 'months': months, 'cost': list(cost)}}))",
        prelude(&data),
        cols.join(", ")
    );
    let v = duckdb(&script);
    let ours = totals(&data, "");
    let theirs: Vec<i64> = v["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    for (i, c) in TOKEN_COLS.iter().enumerate() {
        assert_eq!(ours[*c], theirs[i], "{c}");
    }
    assert_eq!(ours["usage_rows"], theirs[TOKEN_COLS.len()]);
    assert_eq!(
        v["months"],
        serde_json::json!(["2026-08", "2026-09", "2026-10", "2026-11"])
    );
    // Money stays DECIMAL in DuckDB: exact, not DOUBLE.
    assert!(
        v["cost"][1].as_str().unwrap().starts_with("DECIMAL(38,12)"),
        "{v}"
    );
    let ours = sql(&data, "SELECT SUM(amount) AS total FROM cost");
    assert_eq!(
        v["cost"][0], ours[0]["total"],
        "exact decimal sums agree to the last digit"
    );
}

#[test]
fn the_shipped_sql_gives_the_same_answer_in_both_engines() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exports = synth(
        tmp.path(),
        &["--width", "1d", "--seed", "13", "--console-csv"],
    );
    ingest_ok(&data, &[&fixtures().join("sample"), &exports]);
    let sql_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/usage_totals.sql");
    let script = format!(
        "{}c.execute(\"CREATE VIEW usage AS SELECT * FROM read_parquet('\" + USAGE + \"')\")\n\
         rel = c.execute(open({:?}).read())\nnames = [d[0] for d in rel.description]\n\
         print(json.dumps([dict(zip(names, [int(x) if isinstance(x, int) else x for x in row])) for row in rel.fetchall()]))",
        prelude(&data),
        sql_file.display().to_string()
    );
    let theirs = duckdb(&script);
    let o = tl(&data, &["usage", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let ours: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let key =
        |r: &serde_json::Value| format!("{}|{}|{}", r["month"], r["workspace_id"], r["model"]);
    let mut a: Vec<_> = ours.as_array().unwrap().clone();
    let mut b: Vec<_> = theirs.as_array().unwrap().clone();
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert!(a.len() > 10);
    assert_eq!(a, b);
}

#[test]
fn duckdb_reads_the_ledger_tables_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(
        &data,
        &[&fixtures().join("sample"), &fixtures().join("ledger")],
    );
    let glob = |t: &str| format!("{}/{t}/**/*.parquet", data.display());
    let script = format!(
        "{}lots = c.execute(\"SELECT lot_id, CAST(purchased_at AS VARCHAR), CAST(expires_at AS VARCHAR), CAST(amount_usd AS VARCHAR), typeof(amount_usd) FROM read_parquet('{}') ORDER BY lot_id\").fetchall()\n\
         inv = c.execute(\"SELECT invoice_number, CAST(total_usd AS VARCHAR), CAST(amount_due_usd AS VARCHAR), CAST(period_start AS VARCHAR) FROM read_parquet('{}')\").fetchall()\n\
         lines = c.execute(\"SELECT CAST(SUM(amount_usd) AS VARCHAR), COUNT(*) FROM read_parquet('{}')\").fetchone()\n\
         print(json.dumps({{'lots': [list(r) for r in lots], 'inv': [list(r) for r in inv], 'lines': list(lines)}}))",
        prelude(&data),
        glob("credit_lots"),
        glob("invoices"),
        glob("invoice_lines"),
    );
    let v = duckdb(&script);
    let lots = v["lots"].as_array().unwrap();
    assert_eq!(lots.len(), 4);
    assert_eq!(
        lots[0],
        serde_json::json!([
            "LOT-2025-11-A",
            "2025-11-15",
            "2026-11-15",
            "5000.000000000000",
            "DECIMAL(28,12)"
        ])
    );
    // The monthly subscription has not ended: no expiry.
    assert_eq!(lots[3][2], serde_json::Value::Null);
    assert_eq!(
        v["inv"][0],
        serde_json::json!([
            "ANTH-2026-0010",
            "1.650000000000",
            "0.650000000000",
            "2026-10-01 00:00:00+00"
        ])
    );
    // Σ lines = subtotal (207 + 13 − 50 cents).
    assert_eq!(v["lines"], serde_json::json!(["1.700000000000", 3]));
    // And tokenledger's own SQL agrees to the digit.
    let ours = sql(&data, "SELECT SUM(amount_usd) AS s FROM invoice_lines");
    assert_eq!(ours[0]["s"], "1.700000000000");
}

#[test]
fn analyst_sql_takes_params_lists_tables_and_writes_parquet_duckdb_reads_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    assert_eq!(code(&tl(&data, &["rate"])), 0);
    // --tables: every table with its columns.
    let o = tl(&data, &["sql", "--tables", "--format", "csv"]);
    assert_eq!(code(&o), 0);
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    for line in [
        "rated_usage,list_cost,\"DECIMAL(28,12)\",yes",
        "rated_usage,business_month,VARCHAR,no",
        "teams,team,VARCHAR,no",
        "mail_log,recipient,VARCHAR,no",
    ] {
        assert!(t.contains(line), "{line} in\n{t}");
    }
    // --param fills the shipped query's placeholder; a missing one is a usage error.
    let q = fixtures().join("../sql/reconcile_provider.sql");
    let o = tl(
        &data,
        &["sql", "--file", q.to_str().unwrap(), "--format", "csv"],
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--param month=VALUE"), "{}", stderr(&o));
    let o = tl(
        &data,
        &[
            "sql",
            "--file",
            q.to_str().unwrap(),
            "--param",
            "month=2026-10'--",
            "--format",
            "csv",
        ],
    );
    assert_eq!(code(&o), 2, "quotes refused");
    let o = tl(
        &data,
        &[
            "sql",
            "--file",
            q.to_str().unwrap(),
            "--param",
            "month=2026-10",
            "--param",
            "provider=anthropic",
            "--format",
            "csv",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // --format parquet: DuckDB reads the result with the money exact.
    let out = tmp.path().join("by-workspace.parquet");
    let o = tl(
        &data,
        &[
            "sql",
            "SELECT workspace_id, SUM(list_cost) AS list_cost_usd FROM rated_usage GROUP BY workspace_id",
            "--format",
            "parquet",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = duckdb(&format!(
        "import duckdb, json\nr = duckdb.sql(\"SELECT CAST(SUM(list_cost_usd) AS VARCHAR), typeof(SUM(list_cost_usd)) FROM '{}'\").fetchall()[0]\nprint(json.dumps(list(r)))",
        out.display()
    ));
    let ours = sql(&data, "SELECT SUM(list_cost) AS c FROM rated_usage");
    assert_eq!(v[0].as_str().unwrap(), ours[0]["c"].as_str().unwrap());
    assert_eq!(v[1], "DECIMAL(38,12)");
}

#[test]
fn the_rated_usage_view_is_one_priced_row_per_usage_row_with_the_listed_columns_in_duckdb() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exports = synth(
        tmp.path(),
        &["--width", "1h", "--months", "1", "--seed", "7"],
    );
    ingest_ok(&data, &[&exports, &fixtures().join("sample")]);
    assert_eq!(code(&tl(&data, &["rate", "-q"])), 0);
    // The view's columns as `sql --tables` lists them.
    let o = tl(&data, &["sql", "--tables", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let tables: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let listed: Vec<String> = tables
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["table"] == "rated_usage")
        .map(|r| r["column"].as_str().unwrap().to_string())
        .collect();
    assert!(listed.contains(&"list_cost".to_string()), "{listed:?}");
    // DuckDB: the two tables straight from Parquet, the view from sql/rated_usage.sql.
    let view = std::fs::read_to_string(fixtures().join("../sql/rated_usage.sql")).unwrap();
    let glob = |t: &str| format!("{}/{t}/**/*.parquet", data.display());
    let script = format!(
        "{}for t, g in [('usage', {:?}), ('usage_pricing', {:?})]:\n    c.execute(f\"CREATE VIEW {{t}} AS SELECT * FROM read_parquet('{{g}}', hive_partitioning = true, hive_types_autocast = false)\")\n\
         c.execute('CREATE VIEW rated_usage AS ' + {:?})\n\
         cols = [r[0] for r in c.execute('DESCRIBE rated_usage').fetchall()]\n\
         n = c.execute('SELECT (SELECT COUNT(*) FROM usage), (SELECT COUNT(*) FROM rated_usage), (SELECT COUNT(*) FROM (SELECT DISTINCT ingest_id, source_file, source_row FROM usage))').fetchone()\n\
         s = c.execute('SELECT CAST(SUM(list_cost) AS VARCHAR), typeof(SUM(list_cost)), SUM(CASE WHEN list_cost IS NULL THEN 1 ELSE 0 END) FROM rated_usage').fetchone()\n\
         print(json.dumps({{'cols': cols, 'n': list(n), 's': list(s)}}))",
        prelude(&data),
        glob("usage"),
        glob("usage_pricing"),
        view,
    );
    let v = duckdb(&script);
    let cols: Vec<String> = v["cols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        cols, listed,
        "the view's columns are the listed ones, in order"
    );
    let n: Vec<i64> = v["n"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    assert!(n[0] > 100, "a real lake: {n:?}");
    assert_eq!(n[1], n[0], "one rated row per usage row");
    assert_eq!(n[2], n[0], "the join key is unique in usage");
    // tokenledger's own session reads the same view to the digit.
    let ours = sql(
        &data,
        "SELECT SUM(list_cost) AS c, COUNT(*) AS n FROM rated_usage",
    );
    assert_eq!(v["s"][0].as_str().unwrap(), ours[0]["c"].as_str().unwrap());
    assert_eq!(v["s"][1], "DECIMAL(38,12)");
    assert_eq!(
        ours[0]["n"]
            .as_i64()
            .or_else(|| ours[0]["n"].as_str().and_then(|s| s.parse().ok())),
        Some(n[0])
    );
}
