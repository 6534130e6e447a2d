//! `tokenledger report`: hand-priced fixture month, formats, dimensions, UNPRICED, re-pricing,
//! and an independent DuckDB computation of the same costs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use rust_decimal::Decimal;

use crate::common::*;

fn report_json(data: &Path, extra: &[&str]) -> (i32, Vec<serde_json::Value>) {
    let mut args = vec!["report", "--month", "2026-10", "--format", "json"];
    args.extend_from_slice(extra);
    let o = tl(data, &args);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    (code(&o), v.as_array().unwrap().clone())
}

fn dec(v: &serde_json::Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("money is a string: {v}"))
        .parse()
        .unwrap()
}

#[test]
fn october_matches_the_hand_priced_table() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let (c, rows) = report_json(&data, &[]);
    assert_eq!(c, 0);
    // fixtures/README.md, "Hand-priced list cost of October".
    let want: BTreeMap<(&str, &str), &str> = [
        (("Search", "claude-sonnet-4-5"), "1.744435"),
        (("Search", "claude-opus-4-6"), "0.0446875"),
        (("Support Bot", "claude-haiku-4-5"), "0.9851"),
        (("Default", "claude-opus-4-5"), "0.0325"),
        (("Default", "claude-sonnet-4-6"), "0.11339"),
    ]
    .into();
    assert_eq!(rows.len(), want.len());
    let mut cents = 0;
    for r in &rows {
        let k = (
            r["workspace_name"].as_str().unwrap(),
            r["model"].as_str().unwrap(),
        );
        assert_eq!(
            dec(&r["list_cost_usd_exact"]),
            want[&k].parse::<Decimal>().unwrap(),
            "{k:?}"
        );
        assert_eq!(r["pricing_status"], "priced");
        cents += (dec(&r["list_cost_usd"]) * Decimal::ONE_HUNDRED)
            .normalize()
            .to_string()
            .parse::<i64>()
            .unwrap();
    }
    assert_eq!(
        cents, 292,
        "rounded lines add up to the rounded total ($2.9201125 → $2.92)"
    );
    let default = rows
        .iter()
        .find(|r| r["model"] == "claude-opus-4-5")
        .unwrap();
    assert!(default["workspace_id"].is_null() && default["workspace_name"] == "Default");
}

#[test]
fn formats_and_dimensions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let o = tl(
        &data,
        &[
            "report",
            "--month",
            "2026-10",
            "--by",
            "api-key,service-tier",
            "--format",
            "csv",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let csv = String::from_utf8(o.stdout).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "api_key_id,api_key_name,service_tier,pricing_status,uncached_input_tokens,cache_write_5m_tokens,cache_write_1h_tokens,cache_read_tokens,output_tokens,cache_write_30m_tokens,cache_write_12h_tokens,web_search_requests,list_cost_usd,list_cost_usd_exact"
    );
    assert!(
        csv.contains(",\"(Console, no key)\",standard,priced,2500,"),
        "Console usage is shown as such:\n{csv}"
    );
    // CSV cents tie to the rounded total.
    let mut rdr = csv::Reader::from_reader(csv.as_bytes());
    let cents: i64 = rdr
        .records()
        .map(|r| r.unwrap()[12].replace('.', "").parse::<i64>().unwrap())
        .sum();
    assert_eq!(cents, 292);
    let (_, by_day) = report_json(&data, &["--by", "day"]);
    assert_eq!(
        by_day
            .iter()
            .map(|r| r["day"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["2026-10-01", "2026-10-02", "2026-10-04", "2026-10-05"]
    );
    // Table: fits 100 columns by default (the token classes and the exact cost are in CSV,
    // JSON and `--wide`), says where the month stands, right-aligned, with a totals row.
    let o = tl(
        &data,
        &[
            "report",
            "--month",
            "2026-10",
            "--by",
            "workspace,model,api-key",
        ],
    );
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
    assert!(table.starts_with("2026-10 (UTC days) is final"), "{table}");
    // The totals row, then what was hidden to fit.
    let lines: Vec<&str> = table.lines().collect();
    let total_at = lines
        .iter()
        .position(|l| l.starts_with("TOTAL"))
        .expect("a TOTAL row");
    assert!(
        lines[total_at + 1].starts_with("(hidden to fit 100 columns: "),
        "{table}"
    );
    let o = tl(&data, &["report", "--month", "2026-10", "--wide"]);
    let table = String::from_utf8(o.stdout).unwrap();
    let total = table.lines().last().unwrap();
    assert!(
        total.starts_with("TOTAL") && total.contains(" 2.92 ") && total.contains("888,000"),
        "{table}"
    );
    // The SQL behind it is shown on request.
    let o = tl(&data, &["report", "--month", "2026-10", "--show-sql"]);
    assert!(
        String::from_utf8(o.stdout)
            .unwrap()
            .contains("FROM rated_usage r")
    );
}

#[test]
fn a_keys_team_wins_over_its_workspaces_team() {
    // The default workspace is "default-team"'s, but its key closer-app is billed to "sales":
    // closer-app's Oct 2 Sonnet 4.6 ($0.11339) goes to sales, the keyless Console row of Oct 1
    // in the same workspace (Opus 4.5, $0.0325) stays with default-team. The Search workspace
    // is "search-team"'s, but its only key, prod-search (by id), is "platform"'s: all of
    // Search's $1.7891225 goes to platform (fixtures/README.md).
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let cfg = tmp.path().join("tokenledger.toml");
    std::fs::write(
        &cfg,
        "[[team]]\nname = \"default-team\"\nworkspaces = [\"Default\"]\n\
         [[team]]\nname = \"sales\"\napi_keys = [\"closer-app\"]\n\
         [[team]]\nname = \"search-team\"\nworkspaces = [\"Search\"]\n\
         [[team]]\nname = \"platform\"\napi_keys = [\"apikey_01Rj2N8SVvo6BePZj99NhmiT\"]\n",
    )
    .unwrap();
    let rows = report_rows(&data, &cfg, "2026-10", "team");
    let get = |t: &str| {
        rows.iter()
            .find(|r| r["team"] == t)
            .map(|r| dec(&r["list_cost_usd_exact"]))
    };
    assert_eq!(get("sales"), Some("0.11339".parse().unwrap()), "{rows:?}");
    assert_eq!(
        get("default-team"),
        Some("0.0325".parse().unwrap()),
        "{rows:?}"
    );
    assert_eq!(
        get("platform"),
        Some("1.7891225".parse().unwrap()),
        "{rows:?}"
    );
    assert_eq!(
        get("search-team"),
        None,
        "the key took all of Search: {rows:?}"
    );
    assert_eq!(
        get("Unallocated"),
        Some("0.9851".parse().unwrap()),
        "{rows:?}"
    );
}

#[test]
fn teams_from_config() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let cfg = tmp.path().join("tokenledger.toml");
    std::fs::write(&cfg, "[[team]]\nname = \"search-team\"\nworkspaces = [\"Search\"]\n\n[[team]]\nname = \"sales\"\napi_keys = [\"closer-app\"]\n").unwrap();
    let rows = report_rows(&data, &cfg, "2026-10", "team");
    let get = |t: &str| {
        rows.iter()
            .find(|r| r["team"] == t)
            .map(|r| dec(&r["list_cost_usd_exact"]))
    };
    assert_eq!(get("search-team"), Some("1.7891225".parse().unwrap()));
    assert_eq!(get("sales"), Some("0.11339".parse().unwrap()));
    // Support Bot and the Console row of the default workspace belong to nobody.
    assert_eq!(get("Unallocated"), Some("1.0176".parse().unwrap()));
    std::fs::write(&cfg, "[[team]]\nname = \"a\"\napi_keys = [\"closer-app\"]\n[[team]]\nname = \"b\"\napi_keys = [\"closer-app\"]\n").unwrap();
    let o = tl(
        &data,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "report",
            "--month",
            "2026-10",
            "--by",
            "team",
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("closer-app") && stderr(&o).contains("two teams"));
}

fn mystery_page(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("mystery.json");
    std::fs::write(
        &p,
        r#"{"data":[{"starting_at":"2026-10-06T00:00:00Z","ending_at":"2026-10-07T00:00:00Z","results":[
        {"api_key_id":null,"workspace_id":null,"model":"claude-mystery-9","service_tier":"standard","context_window":"0-200k","inference_geo":"global",
         "uncached_input_tokens":1000000,"cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0},"cache_read_input_tokens":0,"output_tokens":100000,"server_tool_use":null}]}],
        "has_more":false,"next_page":null}"#,
    )
    .unwrap();
    p
}

#[test]
fn unknown_model_is_unpriced_never_zero_until_a_price_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(
        &data,
        &[&fixtures().join("sample"), &mystery_page(tmp.path())],
    );
    let (c, rows) = report_json(&data, &[]);
    assert_eq!(c, 3, "exit 3 while anything is unpriced");
    let m = rows
        .iter()
        .find(|r| r["model"] == "claude-mystery-9")
        .unwrap();
    assert_eq!(m["pricing_status"], "UNPRICED");
    assert!(
        m["list_cost_usd"].is_null() && m["list_cost_usd_exact"].is_null(),
        "never $0: {m}"
    );
    assert_eq!(m["uncached_input_tokens"], 1_000_000);
    let o = tl(&data, &["report", "--month", "2026-10"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("UNPRICED"));
    assert!(stderr(&o).contains("UNPRICED"));

    // Add the price: exit 0, priced, and the rest unchanged.
    let cfg = tmp.path().join("tokenledger.toml");
    std::fs::write(&cfg, "[[prices.model]]\nmodels = [\"claude-mystery-9\"]\ninput = \"2\"\ncache_write_5m = \"2.5\"\ncache_write_1h = \"4\"\ncache_read = \"0.2\"\noutput = \"10\"\n").unwrap();
    let o = tl(
        &data,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "report",
            "--month",
            "2026-10",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let m = rows
        .iter()
        .find(|r| r["model"] == "claude-mystery-9")
        .unwrap();
    assert_eq!(
        dec(&m["list_cost_usd_exact"]),
        "3".parse().unwrap(),
        "1M × $2 + 100k × $10"
    );
}

#[test]
fn repricing_is_safe_and_repeatable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let (_, before) = report_json(&data, &[]);
    let rated = snapshot(&data.join("usage_pricing"));
    let (_, again) = report_json(&data, &[]);
    assert_eq!(before, again);
    assert_eq!(
        snapshot(&data.join("usage_pricing")),
        rated,
        "nothing stale: nothing rewritten"
    );
    // A price change from Oct 3 re-rates October; only the Oct 4 Sonnet 4.5 usage moves.
    let cfg = tmp.path().join("tokenledger.toml");
    std::fs::write(&cfg, "[[prices.model]]\nmodels = [\"claude-sonnet-4-5\"]\ninput = \"1\"\ncache_write_5m = \"1.25\"\ncache_write_1h = \"2\"\ncache_read = \"0.1\"\noutput = \"5\"\nvalid_from = \"2026-10-03\"\n").unwrap();
    let o = tl(
        &data,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "report",
            "--month",
            "2026-10",
            "--format",
            "json",
        ],
    );
    let after: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let sonnet = |rows: &[serde_json::Value]| {
        dec(&rows
            .iter()
            .find(|r| r["model"] == "claude-sonnet-4-5")
            .unwrap()["list_cost_usd_exact"])
    };
    // Oct 4: 1000 × (3 − 1) + 100 × (15 − 5) = 3,000 micro-dollars less.
    assert_eq!(sonnet(&before) - sonnet(&after), "0.003".parse().unwrap());
    // Back to the default book: the original numbers again.
    let (_, back) = report_json(&data, &[]);
    assert_eq!(back, before);
}

#[test]
fn duckdb_prices_the_same_month_independently() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exports = synth(
        tmp.path(),
        &["--width", "1h", "--seed", "77", "--workspaces", "5"],
    );
    ingest_ok(&data, &[&fixtures().join("sample"), &exports]);
    let (_, ours) = report_json(&data, &[]);
    // Every rate is typed here from ../shared/reference/anthropic-billing.md §5, not read from
    // tokenledger: base rates per model, then the modifiers in SQL (batch ×0.5; long context
    // for Sonnet 4/4.5 at 6/22.50 with cache classes from the premium input; `us` ×1.1 for
    // 4.6+; web search $0.01). DECIMAL throughout.
    let table: &[(&[&str], [&str; 5])] = &[
        (
            &[
                "claude-opus-4-5",
                "claude-opus-4-6",
                "claude-opus-4-7",
                "claude-opus-4-8",
                "claude-opus-5",
            ],
            ["5", "6.25", "10", "0.50", "25"],
        ),
        (
            &["claude-opus-4-1", "claude-opus-4", "claude-3-opus"],
            ["15", "18.75", "30", "1.50", "75"],
        ),
        (
            &[
                "claude-sonnet-4-6",
                "claude-sonnet-4-5",
                "claude-sonnet-4",
                "claude-3-7-sonnet",
                "claude-3-5-sonnet",
            ],
            ["3", "3.75", "6", "0.30", "15"],
        ),
        (&["claude-haiku-4-5"], ["1", "1.25", "2", "0.10", "5"]),
        (&["claude-3-5-haiku"], ["0.80", "1", "1.60", "0.08", "4"]),
        (
            &["claude-3-haiku"],
            ["0.25", "0.30", "0.50", "0.03", "1.25"],
        ),
        (
            &["claude-sonnet-5", "claude-sonnet-5-5"],
            ["2", "2.50", "4", "0.20", "10"],
        ),
        (&["claude-opus-5-5"], ["4", "5", "8", "0.20", "20"]),
    ];
    let values: Vec<String> = table
        .iter()
        .flat_map(|(models, r)| {
            models.iter().map(move |m| {
                format!(
                    "('{m}', {})",
                    r.map(|x| format!("CAST('{x}' AS DECIMAL(18,6))"))
                        .join(", ")
                )
            })
        })
        .collect();
    let values = values.join(",\n  ");
    let usage = format!("{}/usage/**/*.parquet", data.display());
    let script = format!(
        r#"
import duckdb, json
c = duckdb.connect()
c.execute("SET TimeZone='UTC'")
c.execute("""CREATE TABLE p AS SELECT * FROM (VALUES
  {values}) t(model, i, w5, w1, r, o)""")
rows = c.execute('''
WITH u AS (
  SELECT workspace_name, regexp_replace(model, '-[0-9]{{8}}$', '') AS m, CAST(bucket_start AS DATE) AS d, service_tier, context_window, inference_geo,
         uncached_input_tokens t0, cache_write_5m_tokens t1, cache_write_1h_tokens t2, cache_read_tokens t3, output_tokens t4, web_search_requests ws
  FROM read_parquet('{usage}') WHERE strftime(bucket_start, '%Y-%m') = '2026-10'),
j AS (
  SELECT u.*, p.i, p.w5, p.w1, p.r, p.o,
    (CASE WHEN service_tier = 'batch' THEN 0.5 ELSE 1 END)::DECIMAL(4,2) *
    (CASE WHEN inference_geo = 'us' AND m IN ('claude-opus-4-6','claude-sonnet-4-6','claude-opus-4-7','claude-opus-4-8','claude-opus-5','claude-sonnet-5','claude-sonnet-5-5','claude-opus-5-5') THEN 1.1 ELSE 1 END)::DECIMAL(4,2) AS f,
    (context_window = '200k-1M' AND m IN ('claude-sonnet-4','claude-sonnet-4-5')) AS lc
  FROM u JOIN p ON p.model = u.m)
SELECT workspace_name, m,
  CAST(SUM(
    CASE WHEN lc THEN (t0*6.0 + t1*7.5 + t2*12.0 + t3*0.6 + t4*22.5)::DECIMAL(38,6)
         ELSE (t0*i + t1*w5 + t2*w1 + t3*r + t4*o)::DECIMAL(38,6) END * f
    + ws * 10000.0
  ) AS VARCHAR) AS micro_usd
FROM j GROUP BY ALL
''').fetchall()
print(json.dumps(rows))
"#,
    );
    let o = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let theirs: Vec<(String, String, String)> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(theirs.len(), ours.len(), "same workspace × model lines");
    let million = Decimal::from(1_000_000);
    for (ws, model, micro) in theirs {
        let mine = ours
            .iter()
            .find(|r| r["workspace_name"] == ws.as_str() && r["model"] == model.as_str())
            .unwrap_or_else(|| panic!("{ws} {model} missing"));
        let d: Decimal = micro.parse::<Decimal>().unwrap() / million;
        assert_eq!(
            dec(&mine["list_cost_usd_exact"]),
            d.normalize(),
            "{ws} × {model}"
        );
        let own_rounding =
            d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        assert!(
            (dec(&mine["list_cost_usd"]) - own_rounding).abs() <= "0.01".parse().unwrap(),
            "{ws} × {model}: allocation moves a line by a cent at most"
        );
    }
}

/// `sql/report.sql` over `rated_usage`. polars plans it recursively: a debug build needs more
/// than a test thread's 2 MiB of stack (the CLI runs it on the 8 MiB main thread).
fn report_sql_big_stack(
    layout: &tokenledger::lake::Layout,
    month: tokenledger::vocab::Month,
    dims: &[tokenledger::report::Dim],
    teams: &[tokenledger::config::Team],
) -> tokenledger::report::Report {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(s, || {
                tokenledger::report::report_sql(layout, month, dims, teams).unwrap()
            })
            .unwrap()
            .join()
            .unwrap()
    })
}

#[test]
fn the_arrow_pass_over_usage_and_the_shipped_sql_over_rated_usage_agree_for_every_grouping() {
    use tokenledger::report::{Dim, report};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("tokenledger.toml");
    // Console rows (no key, no workspace), priority tier, long context, an unpriced model,
    // names by id and by name, a month boundary moved by Tokyo's zone.
    std::fs::write(
        &cfg,
        r#"timezone = "Asia/Tokyo"
[[team]]
name = "Search"
workspaces = ["wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"]
api_keys = ["closer-app"]
[[team]]
name = "Support"
workspaces = ["Support Bot"]
[[team]]
name = "Tz"
api_keys = ["apikey_01TzFreshKey0000001"]
"#,
    )
    .unwrap();
    let mystery = mystery_page(tmp.path());
    ingest_ok(
        &data,
        &[
            &fixtures().join("sample"),
            &fixtures().join("timezone"),
            &mystery,
            &fixtures().join("formats/analytics-usage-2026-11-actors-query.json"),
        ],
    );
    let c = |args: &[&str]| {
        let mut a = vec!["--config", cfg.to_str().unwrap()];
        a.extend_from_slice(args);
        code(&tl(&data, &a))
    };
    assert_eq!(c(&["rate", "-q"]), 3, "the mystery model is unpriced");
    let (config, _) = tokenledger::config::Config::load(Some(&cfg)).unwrap();
    let layout = tokenledger::lake::Layout::new(&data);
    let book = tokenledger::pricing::PriceBook::load(&[]).unwrap();
    let pricing = tokenledger::report::scan::Pricing {
        book: &book,
        tz: config.timezone.unwrap(),
    };
    let all = [
        Dim::Workspace,
        Dim::Model,
        Dim::ApiKey,
        Dim::ServiceTier,
        Dim::Day,
        Dim::Team,
        Dim::Product,
        Dim::Actor,
        Dim::Provider,
    ];
    let mut groupings: Vec<Vec<Dim>> = all.iter().map(|d| vec![*d]).collect();
    groupings.push(vec![Dim::Team, Dim::Workspace, Dim::Model]);
    groupings.push(vec![Dim::Team, Dim::Workspace, Dim::ApiKey]);
    groupings.push(vec![Dim::Team, Dim::Day, Dim::Model]);
    groupings.push(vec![Dim::Team, Dim::Actor, Dim::Product]);
    groupings.push(vec![Dim::Provider, Dim::Workspace, Dim::Model]);
    groupings.push(all.to_vec());
    let mut lines = 0;
    for month in ["2026-09", "2026-10", "2026-11"] {
        let m = tokenledger::vocab::Month::parse(month).unwrap();
        for dims in &groupings {
            let snap = tokenledger::lake::Snapshot::read(&layout).unwrap();
            let fast = report(&snap, m, dims, &config.teams, &pricing).unwrap();
            drop(snap);
            let sql = report_sql_big_stack(&layout, m, dims, &config.teams);
            assert_eq!(fast, sql, "{month} by {dims:?}");
            lines += fast.lines.len();
        }
    }
    assert!(lines > 100, "a test of something: {lines} lines");
}

#[test]
fn a_final_month_restated_after_its_chargeback_is_reported_as_restated() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let first = |args: &[&str]| {
        let o = tl(&data, args);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    let provisional = first(&["report", "--month", "2026-10", "--as-of", "2026-11-02"]);
    assert!(
        provisional.contains("is provisional") && provisional.contains("final on 2026-11-04"),
        "{provisional}"
    );
    // The final chargeback goes to finance (the outbox: no [mail] configured).
    let o = tl(
        &data,
        &["mail", "--month", "2026-10", "--as-of", "2026-11-04"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let fin = first(&["report", "--month", "2026-10"]);
    assert!(
        fin.contains("is final; its chargeback went out on"),
        "{fin}"
    );
    // The provider restates a day: more output tokens in the same buckets.
    let restated = tmp.path().join("restated");
    std::fs::create_dir_all(&restated).unwrap();
    let p1 = std::fs::read_to_string(fixtures().join("sample/usage-2026-10-p1.json")).unwrap();
    let p1 = p1.replacen("\"output_tokens\": 500,", "\"output_tokens\": 1000500,", 1);
    std::fs::write(restated.join("usage-2026-10-p1-restated.json"), p1).unwrap();
    ingest_ok(&data, &[&restated]);
    let line = first(&["report", "--month", "2026-10"]);
    assert!(
        line.contains("RESTATED since its final chargeback")
            && line.contains("$2.92 then")
            && line.contains("the next run mails a correction"),
        "{line}"
    );
    // In CSV the data stays data: the sentence is on stderr.
    let o = tl(&data, &["report", "--month", "2026-10", "--format", "csv"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("workspace_id,"));
    assert!(stderr(&o).contains("RESTATED"), "{}", stderr(&o));
}

/// A usage page of `rows` (key, model, uncached input, output) in two hourly buckets.
fn usage_page(dir: &Path, rows: &[(&str, &str, u64, u64)]) -> std::path::PathBuf {
    let results = |rows: &[(&str, &str, u64, u64)]| {
        rows.iter()
            .map(|(key, model, input, output)| {
                format!(
                    r#"{{"api_key_id":"{key}","workspace_id":"wrkspc_01NoListsIngested000","model":"{model}","service_tier":"standard","context_window":"0-200k","inference_geo":"global","uncached_input_tokens":{input},"cache_creation":{{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0}},"cache_read_input_tokens":0,"output_tokens":{output},"server_tool_use":null}}"#
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let p = dir.join("no-lists.json");
    std::fs::write(
        &p,
        format!(
            r#"{{"data":[{{"starting_at":"2026-10-06T10:00:00Z","ending_at":"2026-10-06T11:00:00Z","results":[{}]}},{{"starting_at":"2026-10-06T11:00:00Z","ending_at":"2026-10-06T12:00:00Z","results":[{}]}}],"has_more":false,"next_page":null}}"#,
            results(rows),
            results(&rows[..1])
        ),
    )
    .unwrap();
    p
}

#[test]
fn names_null_in_every_row_group_and_rows_past_the_safe_count_price_as_the_sql_does() {
    use tokenledger::report::{Dim, report};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("tokenledger.toml");
    // An absurd negotiated input price: about 10¹⁰ tokens fill DECIMAL(28,12), so the chargeback
    // cannot price the sums of these rows blindly. Other classes at a millionth of a dollar.
    std::fs::write(
        &cfg,
        "[[prices.model]]\nmodels = [\"claude-mystery-9\"]\ninput = \"1000000000000\"\n\
         cache_write_5m = \"0.000001\"\ncache_write_1h = \"0.000001\"\ncache_read = \"0.000001\"\n\
         output = \"0.000001\"\n",
    )
    .unwrap();
    // No workspace or key list is ingested: workspace_name and api_key_name are NULL in every
    // row group (read as all-NULL dictionaries without reading them).
    let page = usage_page(
        tmp.path(),
        &[
            ("apikey_01Small000000000001", "claude-mystery-9", 1_000, 7),
            // past the safe count (~9,999,999,959) but fits: priced alone
            (
                "apikey_01Near0000000000001",
                "claude-mystery-9",
                9_999_999_990,
                0,
            ),
            // does not fit DECIMAL(28,12): UNPRICED, never a wrapped amount
            (
                "apikey_01Huge0000000000001",
                "claude-mystery-9",
                20_000_000_000,
                0,
            ),
            (
                "apikey_01Listed00000000001",
                "claude-sonnet-4-5-20250929",
                1_000_000,
                50_000,
            ),
        ],
    );
    let (c, _) = ingest(&data, &[&page]);
    assert_eq!(c, 0);
    let rate = tl(&data, &["--config", cfg.to_str().unwrap(), "rate", "-q"]);
    assert_eq!(
        code(&rate),
        3,
        "one row is too large to price: {}",
        stderr(&rate)
    );
    let (config, _) = tokenledger::config::Config::load(Some(&cfg)).unwrap();
    let layout = tokenledger::lake::Layout::new(&data);
    let book =
        tokenledger::pricing::PriceBook::load(&[("test".into(), config.prices.clone())]).unwrap();
    let pricing = tokenledger::report::scan::Pricing {
        book: &book,
        tz: chrono_tz::UTC,
    };
    let m = tokenledger::vocab::Month::parse("2026-10").unwrap();
    for dims in [
        vec![Dim::ApiKey],
        vec![Dim::Workspace, Dim::Model],
        vec![Dim::Team, Dim::Day, Dim::ApiKey],
    ] {
        let snap = tokenledger::lake::Snapshot::read(&layout).unwrap();
        let fast = report(&snap, m, &dims, &config.teams, &pricing).unwrap();
        drop(snap);
        let sql = report_sql_big_stack(&layout, m, &dims, &config.teams);
        assert_eq!(fast, sql, "by {dims:?}");
        if dims == [Dim::ApiKey] {
            let by_key = |k: &str| {
                fast.lines
                    .iter()
                    .find(|l| l.dims[0].as_deref() == Some(k))
                    .unwrap_or_else(|| panic!("{k} in {:?}", fast.lines))
            };
            let near = by_key("apikey_01Near0000000000001");
            assert_eq!(near.status, tokenledger::vocab::PricingStatus::Priced);
            // 9,999,999,990 tokens at $10⁶ each
            assert_eq!(
                near.list_cost.unwrap().to_string(),
                "9999999990000000.000000000000"
            );
            let huge = by_key("apikey_01Huge0000000000001");
            assert_eq!(huge.status, tokenledger::vocab::PricingStatus::Unpriced);
            assert!(huge.list_cost.is_none());
            // two buckets of the small row: 2 × (1,000 × $10⁶ + 7 × $10⁻¹²)
            let small = by_key("apikey_01Small000000000001");
            assert_eq!(
                small.list_cost.unwrap().to_string(),
                "2000000000.000000000014"
            );
        }
    }
}

#[test]
fn whole_rows_priced_by_an_older_version_are_removed_and_never_shadow_the_view() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    assert_eq!(code(&tl(&data, &["rate", "-q"])), 0);
    let total = |data: &Path| {
        let o = tl(
            data,
            &[
                "sql",
                "SELECT COUNT(*) AS n, SUM(list_cost) AS c FROM rated_usage",
                "--format",
                "csv",
            ],
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let before = total(&data);
    // A `rated_usage/` table as versions before usage_pricing wrote it (any Parquet will do).
    let pricing = snapshot(&data.join("usage_pricing"));
    let (part, _) = pricing
        .iter()
        .find(|(p, _)| p.ends_with(".parquet") && !p.starts_with("_delta_log"))
        .expect("a pricing part");
    let legacy = data.join("rated_usage").join(part);
    std::fs::create_dir_all(legacy.parent().unwrap()).unwrap();
    std::fs::copy(data.join("usage_pricing").join(part), &legacy).unwrap();
    // Reading rates first when a legacy file is there, and that removes it.
    let o = tl(
        &data,
        &["reconcile", "--month", "2026-10", "--format", "csv"],
    );
    assert!(matches!(code(&o), 0 | 3), "{}", stderr(&o));
    assert!(!legacy.exists(), "the old whole-row part is gone");
    assert_eq!(
        snapshot(&data.join("usage_pricing")),
        pricing,
        "current pricing is not rewritten"
    );
    assert_eq!(total(&data), before);
}

/// Workspace tags and key expiries from the Admin lists are kept, and a team can be defined by
/// a workspace tag (`[[team]] workspace_tags`) instead of listing workspaces by hand
/// (fixtures/formats: the sample's lists with 2026 fields added).
#[test]
fn a_team_is_defined_by_a_workspace_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let formats = fixtures().join("formats");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    ingest_ok(
        &data,
        &[
            &formats.join("workspaces-tagged.json"),
            &formats.join("api-keys-expiring.json"),
        ],
    );
    let rows = sql(
        &data,
        "SELECT workspace_name, tags FROM workspaces ORDER BY workspace_name",
    );
    assert_eq!(
        rows[0]["tags"], r#"{"env":"prod","team":"search"}"#,
        "{rows:?}"
    );
    assert_eq!(
        rows[1]["tags"], r#"{"team":"support"}"#,
        "a null tag is no tag"
    );
    let rows = sql(
        &data,
        "SELECT CAST(expires_at AS VARCHAR) AS e FROM api_keys WHERE api_key_name = 'prod-search'",
    );
    assert!(
        rows[0]["e"].as_str().unwrap().starts_with("2027-03-04"),
        "{rows:?}"
    );
    // By tag or by hand: the same team, the same money.
    let by_tag = tmp.path().join("tag.toml");
    std::fs::write(
        &by_tag,
        "[[team]]\nname = \"Search\"\nworkspace_tags = [\"team:search\"]\n",
    )
    .unwrap();
    let by_hand = tmp.path().join("hand.toml");
    std::fs::write(
        &by_hand,
        "[[team]]\nname = \"Search\"\nworkspaces = [\"Search\"]\n",
    )
    .unwrap();
    let tagged = report_rows(&data, &by_tag, "2026-10", "team");
    assert_eq!(tagged, report_rows(&data, &by_hand, "2026-10", "team"));
    assert!(tagged.iter().any(|r| r["team"] == "Search"), "{tagged:?}");
    // A tag that is not KEY:VALUE is a usage error.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[team]]\nname = \"Search\"\nworkspace_tags = [\"search\"]\n",
    )
    .unwrap();
    let o = tl(
        &data,
        &[
            "--config",
            bad.to_str().unwrap(),
            "report",
            "--month",
            "2026-10",
        ],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("use KEY:VALUE"), "{}", stderr(&o));
    // Tags that are not an object of strings are a row error, never guessed.
    let odd = tmp.path().join("odd");
    std::fs::create_dir(&odd).unwrap();
    let text = std::fs::read_to_string(formats.join("workspaces-tagged.json"))
        .unwrap()
        .replace(r#""env": "prod""#, r#""env": ["prod"]"#);
    std::fs::write(odd.join("workspaces.json"), text).unwrap();
    let (c, _) = ingest(&data, &[&odd]);
    assert_eq!(c, 3);
    let q = sql(&data, "SELECT reason FROM quarantine WHERE field = 'tags'");
    assert!(
        q[0]["reason"]
            .as_str()
            .unwrap()
            .contains("tag \"env\" must be a string"),
        "{q:?}"
    );
}

/// October of the sample twice, each with the lists: `legacy/` its usage report pages,
/// `analytics/` the same usage as one Analytics query (returned third).
fn legacy_and_analytics(
    tmp: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (legacy, analytics) = (tmp.join("legacy"), tmp.join("analytics"));
    let only =
        |dir: &std::path::Path, keep: &dyn Fn(&str) -> bool, extra: Option<&std::path::Path>| {
            std::fs::create_dir_all(dir).unwrap();
            for e in std::fs::read_dir(fixtures().join("sample")).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if keep(&name) {
                    std::fs::copy(&p, dir.join(&name)).unwrap();
                }
            }
            if let Some(x) = extra {
                std::fs::copy(x, dir.join(x.file_name().unwrap())).unwrap();
            }
        };
    let query = fixtures().join("formats/analytics-usage-2026-10-query.json");
    let lists =
        |n: &str| !n.starts_with("usage") && !n.starts_with("console") && !n.starts_with("cost");
    only(
        &legacy,
        &|n| n.starts_with("usage-2026-10") || lists(n),
        None,
    );
    only(&analytics, &lists, Some(&query));
    (legacy, analytics, query)
}

/// #25 point 3: when legacy pages and an Analytics query cover the same days, one family owns
/// each day — `analytics > api > export` by default, `[ingest] precedence` otherwise — and the
/// ingest summary names the owner; the chargeback is the same either way, counted once. The
/// precedence is fixed for a lake: another one in the config is refused, nothing written.
#[test]
fn one_family_owns_a_day_both_cover_and_the_summary_says_which() {
    let tmp = tempfile::tempdir().unwrap();
    let (legacy, _, query) = legacy_and_analytics(tmp.path());
    let cfg = tmp.path().join("empty.toml");
    std::fs::write(&cfg, "").unwrap();
    let by = "workspace,model";
    let once = tmp.path().join("once");
    ingest_ok(&once, &[&legacy]);
    let want = report_rows(&once, &cfg, "2026-10", by);

    // Default: the Analytics query takes the days over and says so.
    let d = tmp.path().join("default");
    ingest_ok(&d, &[&legacy]);
    let s = ingest_ok(&d, &[&query]);
    assert_eq!(s["files"][0]["took_over"][0], "api", "{s}");
    assert_eq!(report_rows(&d, &cfg, "2026-10", by), want);
    let owned = sql(
        &d,
        "SELECT family, COUNT(*) AS n FROM usage_coverage WHERE bucket_start >= '2026-10-01' \
         GROUP BY family ORDER BY family",
    );
    assert_eq!(owned.len(), 1, "one family owns October: {owned:?}");
    assert_eq!(owned[0]["family"], "analytics", "{owned:?}");

    // Legacy first: the query is kept out of the totals, the summary names the owner.
    let api_first = tmp.path().join("api-first.toml");
    std::fs::write(
        &api_first,
        "[ingest]\nprecedence = [\"api\", \"analytics\", \"export\"]\n",
    )
    .unwrap();
    let l = tmp.path().join("legacy-first");
    let run = |data: &std::path::Path, cfg: &std::path::Path, p: &std::path::Path| {
        let o = tl(
            data,
            &[
                "--config",
                cfg.to_str().unwrap(),
                "ingest",
                "--json",
                "-q",
                p.to_str().unwrap(),
            ],
        );
        (
            code(&o),
            serde_json::from_slice::<serde_json::Value>(&o.stdout).ok(),
            stderr(&o),
        )
    };
    assert_eq!(run(&l, &api_first, &legacy).0, 0);
    let (c, s, _) = run(&l, &api_first, &query);
    let s = s.unwrap();
    assert_eq!(c, 0, "{s}");
    assert_eq!(s["files"][0]["rows_loaded"], 0, "{s}");
    assert!(
        s["files"][0]["buckets_not_counted"].as_u64().unwrap() > 0,
        "{s}"
    );
    let note = s["files"][0]["notes"][0].as_str().unwrap();
    assert!(
        note.contains("kept but not counted: api data owns them"),
        "{note}"
    );
    assert_eq!(report_rows(&l, &api_first, "2026-10", by), want);

    // The lake keeps its precedence: the default config now is refused, nothing changes.
    let before = sql(&l, "SELECT COUNT(*) AS n FROM usage");
    let (c, _, err) = run(&l, &cfg, &query);
    assert_eq!(c, 2, "{err}");
    assert!(
        err.contains("built with source precedence api > analytics > export"),
        "{err}"
    );
    assert_eq!(sql(&l, "SELECT COUNT(*) AS n FROM usage"), before);
}

/// #25 point 1: the Analytics API names the default workspace by a real tagged id where the
/// legacy reports say null; with `[providers.anthropic] default_workspace_id` its rows are the
/// default workspace again, so the chargeback per workspace is the legacy one to the unit.
#[test]
fn the_default_workspaces_tagged_id_is_the_default_workspace() {
    let tmp = tempfile::tempdir().unwrap();
    let (legacy, analytics, query) = legacy_and_analytics(tmp.path());
    let tagged = "wrkspc_01DefaultTaggedIdExample";
    // The same query with the default workspace's rows under a tagged id (fixtures/README.md).
    std::fs::remove_file(analytics.join(query.file_name().unwrap())).unwrap();
    std::fs::copy(
        fixtures().join("formats/analytics-usage-2026-10-tagged-default-query.json"),
        analytics.join("tagged.json"),
    )
    .unwrap();
    let cfg = tmp.path().join("default.toml");
    std::fs::write(
        &cfg,
        format!("[providers.anthropic]\ndefault_workspace_id = \"{tagged}\"\n"),
    )
    .unwrap();
    let (dl, da, raw) = (
        tmp.path().join("dl"),
        tmp.path().join("da"),
        tmp.path().join("raw"),
    );
    ingest_ok(&dl, &[&legacy]);
    let with = |data: &std::path::Path, cfg: &std::path::Path| {
        let o = tl(
            data,
            &[
                "--config",
                cfg.to_str().unwrap(),
                "ingest",
                "-q",
                analytics.to_str().unwrap(),
            ],
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    };
    with(&da, &cfg);
    let empty = tmp.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    with(&raw, &empty);
    let by = "workspace,model";
    let want = report_rows(&dl, &cfg, "2026-10", by);
    assert_eq!(report_rows(&da, &cfg, "2026-10", by), want);
    // Without the setting the tagged id is a workspace of its own: not the legacy chargeback.
    let apart = report_rows(&raw, &empty, "2026-10", by);
    assert!(
        apart.iter().any(|r| r["workspace_id"] == tagged),
        "{apart:?}"
    );
}

/// #25 done-when (usage half): the sample's usage exported once as legacy report pages and once
/// as a whole Analytics usage query (fixtures/formats, spend-ordered, two pages, grouped also by
/// `product`) gives the same chargeback per workspace × model to the unit, and both together
/// give it once; `product` is kept.
#[test]
fn an_analytics_usage_query_gives_the_legacy_chargeback_and_both_give_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (legacy, analytics, query) = legacy_and_analytics(tmp.path());
    let (dl, da) = (tmp.path().join("dl"), tmp.path().join("da"));
    ingest_ok(&dl, &[&legacy]);
    ingest_ok(&da, &[&analytics]);
    let cfg = tmp.path().join("empty.toml");
    std::fs::write(&cfg, "").unwrap();
    let by = "workspace,model";
    let strip = |rows: Vec<serde_json::Value>| -> Vec<serde_json::Value> { rows };
    let from_legacy = strip(report_rows(&dl, &cfg, "2026-10", by));
    let from_analytics = strip(report_rows(&da, &cfg, "2026-10", by));
    assert!(!from_legacy.is_empty());
    assert_eq!(
        from_legacy, from_analytics,
        "the same chargeback to the unit"
    );
    // Both exports of the same days: one owns each day, never both.
    ingest_ok(&dl, &[&query]);
    assert_eq!(report_rows(&dl, &cfg, "2026-10", by), from_legacy);
    let p = sql(
        &da,
        "SELECT product, COUNT(*) AS n FROM usage GROUP BY product ORDER BY product",
    );
    assert_eq!(p[0]["product"], "claude_console", "{p:?}");
    assert_eq!(p[1]["product"], "messages_api", "{p:?}");
}

/// The hostile-input rules hold for Analytics queries: a page or a row repeated is counted
/// once (the repeat quarantined, said), a missing `group` or a count that is not an integer is
/// a row error, a truncated file is refused whole — never a lost or doubled token.
#[test]
fn analytics_queries_never_lose_or_double_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let query = fixtures().join("formats/analytics-usage-2026-10-query.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&query).unwrap()).unwrap();
    let total = |data: &std::path::Path| {
        sql(
            data,
            "SELECT SUM(output_tokens) AS o, COUNT(*) AS n FROM usage",
        )[0]
        .clone()
    };
    let good = tmp.path().join("good");
    ingest_ok(&good, &[&query]);
    let want = total(&good);
    let variant = |name: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = v.clone();
        f(&mut v);
        let p = tmp.path().join(format!("{name}.json"));
        std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        p
    };
    for (name, f, reason) in [
        (
            "page-repeated",
            (&|v: &mut serde_json::Value| {
                let p = v["pages"][0].clone();
                v["pages"].as_array_mut().unwrap().insert(1, p);
            }) as &dyn Fn(&mut serde_json::Value),
            "a row or page repeated; counted once",
        ),
        (
            "row-repeated",
            &|v: &mut serde_json::Value| {
                let r = v["pages"][1]["data"][0].clone();
                v["pages"][1]["data"].as_array_mut().unwrap().push(r);
            },
            "a row or page repeated; counted once",
        ),
    ] {
        let p = variant(name, f);
        let data = tmp.path().join(format!("d-{name}"));
        let (c, _) = ingest(&data, &[&p]);
        assert_eq!(c, 3, "{name}: the repeat is said");
        assert_eq!(total(&data), want, "{name}: counted once");
        let q = sql(&data, "SELECT reason FROM quarantine");
        assert!(
            q[0]["reason"].as_str().unwrap().contains(reason),
            "{name}: {q:?}"
        );
    }
    for (name, f, reason) in [
        (
            "no-group",
            (&|v: &mut serde_json::Value| {
                v["pages"][0]["data"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("group");
            }) as &dyn Fn(&mut serde_json::Value),
            "missing group",
        ),
        (
            "string-count",
            &|v: &mut serde_json::Value| {
                v["pages"][0]["data"][0]["usage"]["output_tokens"] = "500".into();
            },
            "output_tokens must be an integer",
        ),
    ] {
        let data = tmp.path().join(format!("d-{name}"));
        let (c, _) = ingest(&data, &[&variant(name, f)]);
        assert_eq!(c, 3, "{name}");
        let q = sql(&data, "SELECT reason FROM quarantine");
        assert!(
            q[0]["reason"].as_str().unwrap().contains(reason),
            "{name}: {q:?}"
        );
    }
    // Truncated: refused whole, nothing loaded.
    let text = std::fs::read_to_string(&query).unwrap();
    let cut = tmp.path().join("truncated.json");
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    let data = tmp.path().join("d-truncated");
    let (c, s) = ingest(&data, &[&cut]);
    assert_eq!(c, 3, "{s:#}");
    assert_eq!(
        s["by_format"]["anthropic-analytics-usage"]["rows_loaded"]
            .as_u64()
            .unwrap_or(0),
        0,
        "{s:#}"
    );
}

/// #25 point 7: who spent it. A constructed Analytics usage query grouped by `actor` and
/// `product` (fixtures/README.md has the hand arithmetic) gives one line per person, service
/// account, API key and federated caller, a user's email only where the row has one, null
/// actors on their own line; `--by product` splits the same total. An actor of a type this
/// version does not know is a row error, never merged with another.
#[test]
fn report_by_actor_and_product_names_who_spent_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let query = fixtures().join("formats/analytics-usage-2026-11-actors-query.json");
    ingest_ok(&data, &[&query]);
    let cfg = tmp.path().join("empty.toml");
    std::fs::write(&cfg, "").unwrap();
    let by_actor = report_rows(&data, &cfg, "2026-11", "actor");
    let got: Vec<(String, String, String, String)> = by_actor
        .iter()
        .map(|r| {
            let t = |k: &str| r[k].as_str().unwrap_or("").to_string();
            (
                t("actor_type"),
                t("actor_id"),
                t("actor_email"),
                t("list_cost_usd_exact")
                    .parse::<Decimal>()
                    .unwrap()
                    .normalize()
                    .to_string(),
            )
        })
        .collect();
    let row = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
    assert_eq!(
        got,
        vec![
            row("api_actor", "apikey_01Rj2N8SVvo6BePZj99NhmiT", "", "0.35"),
            row(
                "federated_actor",
                "aws:arn:aws:iam::123456789012:role/nightly-batch",
                "",
                "0.45"
            ),
            row(
                "service_account_actor",
                "svac_01Sv3pN8kL2mQ7rT4xW9zB6c",
                "",
                "0.84"
            ),
            row(
                "user_actor",
                "user_01AnaQ7mT2vX9kR4pL8sN3bY",
                "ana@example.com",
                "2.4825"
            ),
            row("user_actor", "user_01BoW5cZ8nJ2xH6tM1qF4rKd", "", "0.6"),
            row("", "", "", "0.0315"),
        ],
        "{by_actor:?}"
    );
    let total = |rows: &[serde_json::Value]| -> Decimal {
        rows.iter()
            .map(|r| {
                r["list_cost_usd_exact"]
                    .as_str()
                    .unwrap()
                    .parse::<Decimal>()
                    .unwrap()
            })
            .sum()
    };
    let by_product = report_rows(&data, &cfg, "2026-11", "product");
    assert_eq!(by_product.len(), 6, "{by_product:?}");
    assert_eq!(total(&by_product), total(&by_actor));
    assert_eq!(total(&by_actor), "4.754".parse::<Decimal>().unwrap());

    // The team's mail lists its top people (a user's email, else what the caller is) and
    // products, most first; a team whose usage names no actor has no such section.
    let teams = tmp.path().join("teams.toml");
    std::fs::write(
        &teams,
        "[[team]]\nname = \"Search\"\nworkspaces = [\"wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ\"]\n\
         recipients = [\"search@example.com\"]\n[[team]]\nname = \"Ops\"\n\
         workspaces = [\"Default\"]\nrecipients = [\"ops@example.com\"]\n",
    )
    .unwrap();
    let outbox = mail_outbox(&data, &teams, "2026-11");
    let eml = |who: &str| {
        outbox
            .iter()
            .find(|m| m["file"].as_str().unwrap().contains(who))
            .unwrap()
            .clone()
    };
    let search = eml("search-example-com");
    let text = search["text"].as_str().unwrap();
    let people = text.split("Top people and callers").nth(1).unwrap();
    let lines: Vec<&str> = people.lines().skip(1).take(5).map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "ana@example.com: 2.48",
            "service account svac_01Sv3pN8kL2mQ7rT4xW9zB6c: 0.84",
            "user user_01BoW5cZ8nJ2xH6tM1qF4rKd: 0.60",
            "federated aws:arn:aws:iam::123456789012:role/nightly-batch: 0.45",
            "API key apikey_01Rj2N8SVvo6BePZj99NhmiT: 0.35",
        ],
        "{text}"
    );
    assert!(
        text.contains("Top products") && text.contains("claude_code: 3.08"),
        "{text}"
    );
    assert!(search["html"].as_str().unwrap().contains("ana@example.com"));
    let ops = eml("ops-example-com");
    let text = ops["text"].as_str().unwrap();
    assert!(
        !text.contains("Top people"),
        "no actor is known for Ops: {text}"
    );
    assert!(
        text.contains("Top products") && text.contains("claude_console: 0.03"),
        "{text}"
    );

    // An actor type this version does not know: that row is quarantined, the rest load.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&query).unwrap()).unwrap();
    v["pages"][0]["data"][0]["group"]["actor"] =
        serde_json::json!({"type": "robot_actor", "robot_id": "r1"});
    let odd = tmp.path().join("odd.json");
    std::fs::write(&odd, serde_json::to_string(&v).unwrap()).unwrap();
    let d2 = tmp.path().join("d2");
    let (c, s) = ingest(&d2, &[&odd]);
    assert_eq!(c, 3, "{s}");
    assert_eq!(s["files"][0]["rows_loaded"], 7, "{s}");
    let q = sql(&d2, "SELECT field, reason FROM quarantine");
    assert_eq!(q[0]["field"], "actor.type", "{q:?}");
    assert!(
        q[0]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown actor type \"robot_actor\""),
        "{q:?}"
    );
}
