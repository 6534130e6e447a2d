//! Hostile input, class by class: nothing lost, nothing counted twice, no panic, no hang, no
//! secret echoed. Each test feeds the real binary what a careless operator or a strange export
//! would, and checks the lake, the exit code and what was said.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::common::*;

/// One usage result row (every class explicit).
fn row(key: Option<&str>, ws: Option<&str>, model: &str, output: Value) -> Value {
    json!({
        "api_key_id": key, "workspace_id": ws, "model": model,
        "service_tier": "standard", "context_window": "0-200k", "inference_geo": "global",
        "uncached_input_tokens": 100,
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "cache_read_input_tokens": 0, "output_tokens": output,
        "server_tool_use": {"web_search_requests": 0}
    })
}

fn bucket(start: &str, end: &str, results: Vec<Value>) -> Value {
    json!({"starting_at": start, "ending_at": end, "results": results})
}

fn day(d: &str) -> (String, String) {
    let start = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let end = start.succ_opt().unwrap();
    (format!("{start}T00:00:00Z"), format!("{end}T00:00:00Z"))
}

fn day_bucket(d: &str, results: Vec<Value>) -> Value {
    let (s, e) = day(d);
    bucket(&s, &e, results)
}

fn page(buckets: Vec<Value>) -> String {
    json!({"data": buckets, "has_more": false, "next_page": null}).to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const KEY: &str = "apikey_01Rj2N8SVvo6BePZj99NhmiT";
const WS: &str = "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ";
const HAIKU: &str = "claude-haiku-4-5-20251001";

/// The binary, killed if it runs longer than `secs` (a hang fails the test, never the suite).
fn tl_limited(data: &Path, args: &[&str], secs: u32) -> Output {
    let mut c = scrubbed("timeout");
    c.arg(secs.to_string()).arg(BIN);
    on_lake(&mut c, data);
    let o = c.args(args).output().expect("run tokenledger");
    assert_ne!(code(&o), 124, "timed out after {secs} s: {args:?}");
    o
}

fn ingest_limited(data: &Path, paths: &[&Path]) -> (i32, Value) {
    let mut args = vec!["ingest".to_string(), "--json".into(), "-q".into()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = tl_limited(data, &args, 60);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}); stderr: {}", stderr(&o)));
    (code(&o), v)
}

fn quarantine(data: &Path) -> Vec<serde_json::Map<String, Value>> {
    sql(
        data,
        "SELECT source_file, location, field, reason, excerpt FROM quarantine",
    )
}

fn quarantined(data: &Path, file: &str, loc: &str, needle: &str) -> bool {
    quarantine(data).iter().any(|r| {
        r["source_file"].as_str().unwrap().ends_with(file)
            && (loc.is_empty() || r["location"] == loc)
            && r["reason"].as_str().unwrap().contains(needle)
    })
}

/// Output tokens of one UTC day in the lake (`None`: no rows at all).
fn day_output(data: &Path, d: &str) -> Option<i64> {
    let rows = sql(
        data,
        &format!(
            "SELECT SUM(output_tokens) AS o FROM usage WHERE strftime(bucket_start, '%Y-%m-%d') = '{d}'"
        ),
    );
    rows.first().and_then(|r| r["o"].as_i64())
}

fn file_status<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("{name} not in {summary}"))
}

fn sample_lake(tmp: &Path) -> PathBuf {
    let data = tmp.join("data");
    let (c, s) = ingest(&data, &[&fixtures().join("sample")]);
    assert_eq!(c, 0, "{s}");
    data
}

#[test]
fn a_typo_d_year_is_quarantined_and_never_widens_coverage() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_lake(tmp.path());
    let before = (
        day_output(&data, "2026-10-01"),
        day_output(&data, "2026-10-04"),
    );
    let header = "usage_date_utc,model_version,api_key,workspace,usage_type,context_window,usage_input_tokens_no_cache,usage_input_tokens_cache_write_5m,usage_input_tokens_cache_write_1h,usage_input_tokens_cache_read,usage_output_tokens,web_search_count,inference_geo,speed";
    let line = |d: &str| {
        format!(
            "{d},claude-haiku-4-5-20251001,prod-search,Search,standard,≤ 200k,10,0,0,0,5,0,global,"
        )
    };
    let csv = [
        header.to_string(),
        line("2026-09-20"),
        line("2062-09-21"),   // a typo'd year, decades away
        line("9999-12-31"),   // the far end of the calendar
        line("200000-01-01"), // beyond chrono's four-digit years
        line("+262142-12-31"),
    ]
    .join("\n");
    let f = write(&tmp.path().join("in"), "console.csv", &csv);
    let (c, s) = ingest_limited(&data, &[&f]);
    assert_eq!(c, 3, "{s}");
    assert!(quarantined(
        &data,
        "console.csv",
        "line 3",
        "outside the plausible window"
    ));
    assert!(quarantined(
        &data,
        "console.csv",
        "line 4",
        "outside the plausible window"
    ));
    assert!(quarantined(
        &data,
        "console.csv",
        "line 5",
        "not a YYYY-MM-DD date"
    ));
    assert!(quarantined(
        &data,
        "console.csv",
        "line 6",
        "not a YYYY-MM-DD date"
    ));
    // The file covers the one good day only: October's API rows are all still there.
    assert_eq!(day_output(&data, "2026-09-20"), Some(5));
    assert_eq!(
        (
            day_output(&data, "2026-10-01"),
            day_output(&data, "2026-10-04")
        ),
        before
    );
    let months = sql(
        &data,
        "SELECT DISTINCT strftime(bucket_start, '%Y') AS y FROM usage_coverage",
    );
    assert!(months.iter().all(|r| r["y"] == "2026"), "{months:?}");
}

#[test]
fn a_file_spanning_more_than_the_limit_is_quarantined_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let p = page(vec![
        day_bucket(
            "2026-01-05",
            vec![row(Some(KEY), Some(WS), HAIKU, json!(7))],
        ),
        day_bucket(
            "2026-09-05",
            vec![row(Some(KEY), Some(WS), HAIKU, json!(7))],
        ),
    ]);
    let f = write(&tmp.path().join("in"), "wide.json", &p);
    let (c, s) = ingest_limited(&data, &[&f]);
    assert_eq!(c, 3, "{s}");
    assert!(quarantined(
        &data,
        "wide.json",
        "file",
        "more than one export can plausibly cover"
    ));
    assert_eq!(file_status(&s, "wide.json")["rows_loaded"], 0);
    // The limit is configurable.
    let cfg = write(
        tmp.path(),
        "tokenledger.toml",
        "[ingest]\nmax_span_days = 400\n",
    );
    let data2 = tmp.path().join("data2");
    let o = tl(
        &data2,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "ingest",
            "-q",
            f.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(day_output(&data2, "2026-09-05"), Some(7));
}

#[test]
fn a_bucket_without_results_restates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_lake(tmp.path());
    let before = day_output(&data, "2026-10-01");
    assert!(before.unwrap() > 0);
    let (s, e) = day("2026-10-01");
    let p = json!({"data": [{"starting_at": s, "ending_at": e}], "has_more": false}).to_string();
    let f = write(&tmp.path().join("in"), "usage-no-results.json", &p);
    let o = tl_limited(
        &data,
        &[
            "ingest",
            "--format",
            "anthropic-usage-api",
            f.to_str().unwrap(),
        ],
        60,
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(quarantined(
        &data,
        "usage-no-results.json",
        "data[0]",
        "no results array"
    ));
    assert_eq!(day_output(&data, "2026-10-01"), before, "Oct 1 usage kept");
}

#[test]
fn a_quiet_day_loads_nothing_without_a_hint_and_restates_to_zero_with_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_lake(tmp.path());
    let oct4 = day_output(&data, "2026-10-04");
    assert!(oct4.unwrap() > 0);
    let quiet = fixtures().join("hostile/quiet-weekend.json");
    let (c, s) = ingest_limited(&data, &[&quiet]);
    assert_eq!(c, 0, "a quiet day is not an error: {s}");
    let f = file_status(&s, "quiet-weekend.json");
    assert_eq!(f["status"], "empty_ambiguous", "{s}");
    assert!(f["error"].as_str().unwrap().contains("--format"));
    assert_eq!(day_output(&data, "2026-10-04"), oct4, "nothing restated");
    // Named for what it is, the same page restates those days to zero, like any restatement.
    let named = tmp.path().join("usage").join("2026-10-03.json");
    std::fs::create_dir_all(named.parent().unwrap()).unwrap();
    std::fs::copy(&quiet, &named).unwrap();
    let (c, s) = ingest_limited(&data, &[&named]);
    assert_eq!(c, 0, "{s}");
    assert!(
        file_status(&s, "2026-10-03.json")["notes"][0]
            .as_str()
            .unwrap()
            .contains("restated to zero")
    );
    assert_eq!(
        day_output(&data, "2026-10-04"),
        None,
        "Oct 4 restated to zero"
    );
    assert!(
        day_output(&data, "2026-10-01").unwrap() > 0,
        "other days kept"
    );
}

#[test]
fn a_token_count_beyond_f64_quarantines_its_row_not_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let good = row(Some(KEY), Some(WS), HAIKU, json!(777)).to_string();
    let bad = row(Some("apikey_other"), Some(WS), HAIKU, json!(0)).to_string();
    let bad = bad.replace("\"output_tokens\":0", "\"output_tokens\":1e400");
    let huge_int = row(Some("apikey_third"), Some(WS), HAIKU, json!(0))
        .to_string()
        .replace(
            "\"output_tokens\":0",
            &format!("\"output_tokens\":{}", "9".repeat(500)),
        );
    let (s, e) = day("2026-10-06");
    let p = format!(
        r#"{{"data":[{{"starting_at":"{s}","ending_at":"{e}","results":[{good},{bad},{huge_int}]}}],"has_more":false}}"#
    );
    assert!(p.contains("1e400"));
    let f = write(&tmp.path().join("in"), "huge.json", &p);
    let (c, sum) = ingest_limited(&data, &[&f]);
    assert_eq!(c, 3, "{sum}");
    assert_eq!(
        day_output(&data, "2026-10-06"),
        Some(777),
        "the good row loads"
    );
    assert!(quarantined(
        &data,
        "huge.json",
        "data[0].results[1]",
        "1e400 is out of range"
    ));
    assert!(quarantined(
        &data,
        "huge.json",
        "data[0].results[2]",
        "out of range"
    ));
    assert_eq!(file_status(&sum, "huge.json")["rows_loaded"], 1);
}

/// Runs the binary as `nobody` (root reads everything, so permissions need another user),
/// from a copy `nobody` can execute.
fn as_nobody(data: &Path, args: &[&str]) -> Output {
    let bin = data.parent().unwrap().join("tokenledger-bin");
    if !bin.exists() {
        std::fs::copy(BIN, &bin).unwrap();
        open_up(&bin, 0o755);
    }
    scrubbed("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "timeout",
            "60",
        ])
        .arg(&bin)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("setpriv runs")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn open_up(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn unreadable_files_and_directories_are_skipped_and_the_rest_ingested() {
    let tmp = tempfile::tempdir().unwrap();
    open_up(tmp.path(), 0o755);
    let inbox = tmp.path().join("in");
    let good = write(
        &inbox,
        "good.json",
        &page(vec![day_bucket(
            "2026-10-06",
            vec![row(Some(KEY), Some(WS), HAIKU, json!(5))],
        )]),
    );
    let secret = write(&inbox, "locked.json", &page(vec![]));
    let locked_dir = inbox.join("locked-dir");
    write(&locked_dir, "inside.json", &page(vec![]));
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // No access for anyone but root: the test user is refused whether it owns them (not root)
    // or not (root, who reads everything, runs the ingest as `nobody`).
    for (p, m) in [
        (&inbox, 0o755),
        (&good, 0o644),
        (&secret, 0o000),
        (&locked_dir, 0o000),
        (&data, 0o777),
    ] {
        open_up(p, m);
    }
    let o = if is_root() {
        as_nobody(&data, &["ingest", "--json", "-q", inbox.to_str().unwrap()])
    } else {
        tl_limited(
            &data,
            &["ingest", "--json", "-q", inbox.to_str().unwrap()],
            60,
        )
    };
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    for name in ["locked.json", "locked-dir"] {
        let f = file_status(&s, name);
        assert_eq!(f["status"], "skipped", "{f}");
        assert!(
            f["error"].as_str().unwrap().contains("Permission denied"),
            "{f}"
        );
    }
    assert_eq!(file_status(&s, "good.json")["status"], "new");
    assert_eq!(day_output(&data, "2026-10-06"), Some(5));
    // So that the temporary directory can be removed by its owner.
    open_up(&locked_dir, 0o700);
    open_up(&secret, 0o600);
}

#[test]
fn repeated_buckets_rows_and_keys_are_never_summed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_lake(tmp.path());
    let oct1 = day_output(&data, "2026-10-01");
    let inbox = tmp.path().join("in");
    let r = || row(Some(KEY), Some(WS), HAIKU, json!(1000));
    // The same bucket twice in data[].
    write(
        &inbox,
        "a-twice.json",
        &page(vec![
            day_bucket("2026-10-01", vec![r()]),
            day_bucket("2026-10-01", vec![r()]),
        ]),
    );
    // An hourly bucket inside a daily one of the same file.
    write(
        &inbox,
        "b-nested.json",
        &page(vec![
            day_bucket("2026-10-01", vec![r()]),
            bucket("2026-10-01T05:00:00Z", "2026-10-01T06:00:00Z", vec![r()]),
        ]),
    );
    // The same dimensions twice in one bucket.
    write(
        &inbox,
        "c-rows.json",
        &page(vec![day_bucket("2026-10-01", vec![r(), r()])]),
    );
    // A `data` key twice in the page object.
    let one = page(vec![day_bucket("2026-10-01", vec![r()])]);
    let twice = one.replacen(
        "{\"data\":",
        &format!(
            "{{\"data\":{},\"data\":",
            json!([day_bucket("2026-10-01", vec![r()])])
        ),
        1,
    );
    write(&inbox, "d-key.json", &twice);
    let (c, s) = ingest_limited(&data, &[&inbox]);
    assert_eq!(c, 3, "{s}");
    assert!(quarantined(
        &data,
        "a-twice.json",
        "file",
        "overlaps bucket"
    ));
    assert!(quarantined(
        &data,
        "b-nested.json",
        "file",
        "overlaps bucket"
    ));
    assert!(quarantined(
        &data,
        "c-rows.json",
        "data[0].results[1]",
        "same dimensions"
    ));
    assert!(quarantined(&data, "d-key.json", "file", "\"data\" twice"));
    assert_eq!(
        day_output(&data, "2026-10-01"),
        oct1,
        "nothing restated, nothing doubled"
    );
    // A Console CSV row repeated within its day.
    let header = "usage_date_utc,model_version,api_key,workspace,usage_type,context_window,usage_input_tokens_no_cache,usage_input_tokens_cache_write_5m,usage_input_tokens_cache_write_1h,usage_input_tokens_cache_read,usage_output_tokens,web_search_count,inference_geo,speed";
    let line = "2026-09-29,claude-haiku-4-5-20251001,prod-search,Search,standard,≤ 200k,10,0,0,0,5,0,global,";
    let f = write(
        &tmp.path().join("in2"),
        "dup.csv",
        &format!("{header}\n{line}\n{line}\n"),
    );
    let before = day_output(&data, "2026-09-29");
    let (c, _) = ingest_limited(&data, &[&f]);
    assert_eq!(c, 3);
    assert!(quarantined(
        &data,
        "dup.csv",
        "file",
        "repeats the day and dimensions of line 2"
    ));
    assert_eq!(day_output(&data, "2026-09-29"), before);
}

#[test]
fn unaligned_and_offset_buckets_are_quarantined_and_utc_offsets_normalised() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let r = |k: &str, o: i64| row(Some(k), Some(WS), HAIKU, json!(o));
    let p = page(vec![
        // Across the month boundary, not on a UTC midnight.
        bucket(
            "2026-10-31T12:00:00Z",
            "2026-11-01T12:00:00Z",
            vec![r("k1", 1)],
        ),
        // Midnight in Berlin is 22:00 UTC: not a UTC day.
        bucket(
            "2026-10-20T00:00:00+02:00",
            "2026-10-21T00:00:00+02:00",
            vec![r("k2", 2)],
        ),
        // The same instant as 2026-10-22T00:00Z, written with an offset: accepted, in UTC.
        bucket(
            "2026-10-22T02:00:00+02:00",
            "2026-10-23T02:00:00+02:00",
            vec![r("k3", 3)],
        ),
    ]);
    let f = write(&tmp.path().join("in"), "offsets.json", &p);
    let (c, s) = ingest_limited(&data, &[&f]);
    assert_eq!(c, 3, "{s}");
    assert!(quarantined(&data, "offsets.json", "data[0]", "not aligned"));
    assert!(quarantined(&data, "offsets.json", "data[1]", "not aligned"));
    assert_eq!(day_output(&data, "2026-10-22"), Some(3));
    assert_eq!(day_output(&data, "2026-10-31"), None);
    assert_eq!(day_output(&data, "2026-11-01"), None);
}

#[test]
fn buckets_outside_the_plausible_window_are_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let r = || row(Some(KEY), Some(WS), HAIKU, json!(1));
    let p = page(vec![
        day_bucket("0000-01-01", vec![r()]),
        day_bucket("1969-12-31", vec![r()]),
        day_bucket("9999-12-30", vec![r()]),
        day_bucket("2026-10-06", vec![r()]),
    ]);
    let f = write(&tmp.path().join("in"), "years.json", &p);
    let (c, s) = ingest_limited(&data, &[&f]);
    assert_eq!(c, 3, "{s}");
    for i in 0..3 {
        assert!(quarantined(
            &data,
            "years.json",
            &format!("data[{i}]"),
            "outside the plausible window"
        ));
    }
    let months = sql(
        &data,
        "SELECT DISTINCT strftime(bucket_start, '%Y-%m') AS m FROM usage",
    );
    assert_eq!(months.len(), 1, "{months:?}");
    assert_eq!(months[0]["m"], "2026-10");
    // Nothing out there was kept either: no usage export covers that month.
    let o = tl(&data, &["report", "--month", "9999-12", "--format", "json"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no usage export covers 9999-12"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn token_sums_past_i64_are_exact_in_sql_usage_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let big = 9_000_000_000_000_000_000u64; // fits INT64 alone; two of them do not
    let p = page(vec![
        day_bucket(
            "2026-10-06",
            vec![row(Some(KEY), Some(WS), HAIKU, json!(big))],
        ),
        day_bucket(
            "2026-10-07",
            vec![row(Some(KEY), Some(WS), HAIKU, json!(big))],
        ),
    ]);
    let f = write(&tmp.path().join("in"), "big.json", &p);
    let (c, s) = ingest_limited(&data, &[&f]);
    assert_eq!(c, 0, "{s}");
    let want = "18000000000000000000";
    let rows = sql(&data, "SELECT SUM(output_tokens) AS o FROM usage");
    assert_eq!(rows[0]["o"], want, "sql");
    let o = tl(&data, &["usage", "--format", "csv"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(want),
        "usage: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = tl(&data, &["report", "--month", "2026-10", "--format", "csv"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(want), "report: {out}");
    // 2 × 9e18 output tokens × $5/MTok = $90,000,000,000,000 exactly.
    assert!(out.contains("90000000000000.00"), "report: {out}");
}

#[test]
fn huge_amounts_and_foreign_currencies_are_refused_never_summed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cost = |amount: &str, currency: &str| {
        json!({"amount": amount, "currency": currency, "cost_type": "tokens",
               "description": "Claude Haiku 4.5 Usage - Output Tokens", "model": HAIKU,
               "token_type": "output_tokens", "service_tier": "standard",
               "context_window": "0-200k", "inference_geo": "global", "workspace_id": WS})
    };
    let mut other_ws = cost("250", "USD");
    other_ws["workspace_id"] = json!("wrkspc_other");
    let mut eur = cost("99", "EUR");
    eur["workspace_id"] = json!("wrkspc_eur");
    let mut jpy = cost("99", "jpy");
    jpy["workspace_id"] = json!("wrkspc_jpy");
    let mut huge = cost("9999999999999999999999999999", "USD");
    huge["workspace_id"] = json!("wrkspc_huge");
    let p = page(vec![day_bucket(
        "2026-10-06",
        vec![cost("150", "USD"), other_ws, eur, jpy, huge],
    )]);
    let f = write(&tmp.path().join("in"), "cost.json", &p);
    let (c, s) = ingest_limited(&data, &[&f]);
    assert_eq!(c, 3, "{s}");
    assert!(quarantined(
        &data,
        "cost.json",
        "data[0].results[2]",
        "currency EUR: only USD"
    ));
    assert!(quarantined(
        &data,
        "cost.json",
        "data[0].results[3]",
        "currency JPY: only USD"
    ));
    assert!(quarantined(
        &data,
        "cost.json",
        "data[0].results[4]",
        "implausibly large"
    ));
    let rows = sql(&data, "SELECT SUM(amount) AS a, COUNT(*) AS n FROM cost");
    assert_eq!(rows[0]["n"], 2);
    assert_eq!(rows[0]["a"], "4.000000000000");
}

#[test]
fn month_arguments_and_empty_months_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_lake(tmp.path());
    for bad in [
        "2026-1", " 2026-10", "+2026-10", "2026-13", "2026-10 ", "26-10", "2026-00",
    ] {
        let o = tl(&data, &["report", "--month", bad]);
        assert_eq!(code(&o), 2, "{bad:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("is not a month"),
            "{bad:?}: {}",
            stderr(&o)
        );
    }
    // A month no export covers is said in every format, never printed as an empty table.
    for fmt in ["table", "csv", "json"] {
        let o = tl(&data, &["report", "--month", "2026-11", "--format", fmt]);
        assert_eq!(code(&o), 2, "{fmt}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("no usage export covers 2026-11"),
            "{}",
            stderr(&o)
        );
        assert!(o.stdout.is_empty(), "{fmt}");
    }
    let o = tl(&data, &["reconcile", "--month", "2026-11"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn very_long_and_control_character_names_are_safe_in_every_output() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // The longest name a list may carry (1 KiB); one of 1 MiB is refused by its length.
    let long = "W".repeat(1024);
    let huge = "W".repeat(1 << 20);
    let evil = "\u{1b}[2J\u{1b}[31mred\u{7}";
    let ws = json!({"data": [
        {"id": "wrkspc_long", "name": long, "type": "workspace", "created_at": "2025-01-01T00:00:00Z", "archived_at": null},
        {"id": "wrkspc_huge", "name": huge, "type": "workspace", "created_at": "2025-01-01T00:00:00Z", "archived_at": null},
        {"id": "wrkspc_evil", "name": evil, "type": "workspace", "created_at": "2025-01-01T00:00:00Z", "archived_at": null},
        {"id": "wrkspc_formula", "name": "=HYPERLINK(\"http://x\",\"y\")", "type": "workspace", "created_at": "2025-01-01T00:00:00Z", "archived_at": null}
    ], "has_more": false}).to_string();
    let inbox = tmp.path().join("in");
    write(&inbox, "workspaces.json", &ws);
    write(
        &inbox,
        "usage.json",
        &page(vec![day_bucket(
            "2026-10-06",
            vec![
                row(Some(KEY), Some("wrkspc_long"), HAIKU, json!(1)),
                row(Some(KEY), Some("wrkspc_evil"), HAIKU, json!(2)),
                row(Some(KEY), Some("wrkspc_formula"), HAIKU, json!(3)),
            ],
        )]),
    );
    let (c, s) = ingest_limited(&data, &[&inbox]);
    assert_eq!(c, 3, "{s}");
    assert!(quarantined(
        &data,
        "workspaces.json",
        "data[1]",
        "name is 1048576 bytes long"
    ));
    let o = tl_limited(&data, &["report", "--month", "2026-10"], 60);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.stdout.contains(&0x1b) && !o.stdout.contains(&0x07),
        "no raw control bytes"
    );
    assert!(table.contains("\\u{1b}[31mred"), "{table}");
    assert!(
        table.lines().all(|l| l.chars().count() < 400),
        "long names shortened in tables"
    );
    assert!(table.contains('…'));
    let o = tl_limited(
        &data,
        &["report", "--month", "2026-10", "--format", "csv"],
        60,
    );
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(csv.contains(&long), "CSV keeps the whole name");
    assert!(
        csv.contains("\"'=HYPERLINK("),
        "formula neutralised: {}",
        &csv[..csv.len().min(300)]
    );
    let o = tl_limited(
        &data,
        &[
            "sql",
            "SELECT workspace_name FROM workspaces",
            "--format",
            "csv",
        ],
        60,
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"'=HYPERLINK("));
}

#[test]
fn fifos_foreign_symlinks_and_the_data_dir_are_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    write(
        &inbox,
        "good.json",
        &page(vec![day_bucket(
            "2026-10-06",
            vec![row(Some(KEY), Some(WS), HAIKU, json!(5))],
        )]),
    );
    let fifo = inbox.join("pipe.json");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    let outside = write(
        &tmp.path().join("elsewhere"),
        "secret.env",
        "ADMIN_KEY=sk-ant-admin01-topsecret\n",
    );
    std::os::unix::fs::symlink(&outside, inbox.join("link.json")).unwrap();
    // The data dir inside the input dir: its Parquet must not be ingested as input.
    let data = inbox.join("tokenledger-data");
    let (c, s) = ingest_limited(&data, &[&inbox]);
    assert_eq!(c, 3, "{s}");
    assert_eq!(file_status(&s, "pipe.json")["status"], "skipped");
    assert!(
        file_status(&s, "pipe.json")["error"]
            .as_str()
            .unwrap()
            .contains("FIFO")
    );
    assert_eq!(file_status(&s, "link.json")["status"], "skipped");
    assert!(
        file_status(&s, "link.json")["error"]
            .as_str()
            .unwrap()
            .contains("out of the input tree")
    );
    assert!(!s.to_string().contains("topsecret"));
    // Again: now the data dir exists inside the inbox, and is ignored, not ingested.
    let (c, s) = ingest_limited(&data, &[&inbox]);
    assert_eq!(c, 3, "{s}");
    assert_eq!(file_status(&s, "tokenledger-data")["status"], "ignored");
    assert!(
        s["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f["path"].as_str().unwrap().ends_with(".parquet"))
    );
    assert_eq!(day_output(&data, "2026-10-06"), Some(5));
}

#[test]
fn a_crash_is_recovered_from_any_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let sample = fixtures().join("sample");
    // A relative data dir, killed right after its commit point.
    let o = binary()
        .current_dir(&a)
        .args([
            "--data-dir",
            "lake",
            "ingest",
            "-q",
            sample.to_str().unwrap(),
        ])
        .env("TOKENLEDGER_CRASH_AT", "committed")
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("simulated crash at committed") && code(&o) == -1,
        "the crash hook aborts at its commit point: {}",
        stderr(&o)
    );
    assert!(a.join("lake/_tokenledger/journal.json").exists());
    let journal = std::fs::read_to_string(a.join("lake/_tokenledger/journal.json")).unwrap();
    assert!(
        !journal.contains(a.to_str().unwrap()),
        "journal paths are relative to the data dir"
    );
    // Recovered from another directory, through an absolute path to the same lake.
    let o = binary()
        .current_dir(&b)
        .args([
            "--data-dir",
            a.join("lake").to_str().unwrap(),
            "usage",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("completed ingest"), "{}", stderr(&o));
    assert_eq!(day_output(&a.join("lake"), "2026-10-04"), Some(70100));
}

#[test]
fn a_read_only_lake_is_queryable() {
    // The lake is written under the usual umask, so that other users can read it: files are
    // created 0666 and directories 0777, less the umask. (umask is per process; 022 is what
    // every other test expects too.)
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o022) };
    let tmp = tempfile::tempdir().unwrap();
    open_up(tmp.path(), 0o755);
    let data = sample_lake(tmp.path());
    let o = tl(&data, &["rate", "-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::remove_file(data.join("_tokenledger/lock")).unwrap();
    // A reader who cannot write the lake (nor create its lock file): another user when the
    // suite runs as root (root writes anything), else the owner of a lake made read-only.
    let read_only = !is_root();
    if read_only {
        set_tree_mode(&data, 0o555, 0o444);
    }
    let reader = |args: &[&str]| {
        if read_only {
            tl(&data, args)
        } else {
            as_nobody(&data, args)
        }
    };
    let o = reader(&["sql", "SELECT COUNT(*) AS n FROM usage", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["n"], 15);
    let o = reader(&["report", "--month", "2026-10", "--format", "csv"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("claude-haiku-4-5"));
    assert!(
        !data.join("_tokenledger/lock").exists(),
        "the reader created nothing in a lake it cannot write"
    );
    if read_only {
        set_tree_mode(&data, 0o755, 0o644);
    }
}

/// Every directory below (and at) `root` to `dir`, every file to `file`.
fn set_tree_mode(root: &Path, dir: u32, file: u32) {
    for e in std::fs::read_dir(root).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            set_tree_mode(&p, dir, file);
        } else {
            open_up(&p, file);
        }
    }
    open_up(root, dir);
}

#[test]
fn secrets_in_input_never_reach_the_lake_or_the_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = tmp.path().join("in");
    let admin =
        "sk-ant-admin01-Zq8VbZr2LmT5sXc7KpYw3DAbCdEfGhIjKlMnOpQrStUvWxYz0123456789-AbCdEfAA";
    write(
        &inbox,
        ".env",
        &format!("ANTHROPIC_ADMIN_KEY={admin}\nSMTP_PASSWORD=hunter2hunter2\n"),
    );
    let full = "sk-ant-api03-R2D2c3poBB8aaRrGgHhJjKkLlMmNnOoPpQqRrSsTtUuVvWwXxYyZz0011223344556677889900aabbccddeeffgg-igAA";
    let keys = json!({"data": [{"id": KEY, "name": "prod-search", "workspace_id": WS, "type": "api_key",
        "created_at": "2025-01-01T00:00:00Z", "created_by": {"id": "user_01", "type": "user"},
        "partial_key_hint": full, "status": "active"}], "has_more": false});
    write(&inbox, "api_keys.json", &keys.to_string());
    let header = "usage_date_utc,model_version,api_key,workspace,usage_type,context_window,usage_input_tokens_no_cache,usage_input_tokens_cache_write_5m,usage_input_tokens_cache_write_1h,usage_input_tokens_cache_read,usage_output_tokens,web_search_count,inference_geo,speed";
    let line = format!(
        "2026-09-29,claude-haiku-4-5-20251001,{full},Search,standard,≤ 200k,10,0,0,0,-5,0,global,"
    );
    write(&inbox, "console.csv", &format!("{header}\n{line}\n"));
    let o = tl_limited(&data, &["ingest", "--json", inbox.to_str().unwrap()], 60);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    let lake = quarantine(&data);
    let stored = format!("{lake:?}{:?}", sql(&data, "SELECT * FROM api_keys"));
    for secret in [admin, "hunter2", full, "R2D2c3poBB8aaRr"] {
        assert!(!said.contains(secret), "{secret} echoed: {said}");
        assert!(!stored.contains(secret), "{secret} stored: {stored}");
    }
    let env = lake
        .iter()
        .find(|r| r["source_file"].as_str().unwrap().ends_with(".env"))
        .unwrap();
    assert!(
        env["reason"].as_str().unwrap().contains("bytes, blake3"),
        "{env:?}"
    );
    assert!(env["excerpt"].is_null());
    let hint = sql(&data, "SELECT partial_key_hint FROM api_keys");
    assert_eq!(hint[0]["partial_key_hint"], "sk-ant-api03-R2D...igAA");
}

#[test]
fn a_list_that_arrives_after_the_usage_still_names_every_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let usage = fixtures().join("sample/usage-2026-10-p1.json");
    let (c, _) = ingest(&data, &[&usage]);
    assert_eq!(c, 0);
    let (c, _) = ingest(
        &data,
        &[
            &fixtures().join("sample/workspaces.json"),
            &fixtures().join("sample/api_keys.json"),
        ],
    );
    assert_eq!(c, 0);
    let o = tl(
        &data,
        &[
            "report",
            "--month",
            "2026-10",
            "--by",
            "workspace,api-key",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["workspace_name"].as_str())
        .collect();
    assert!(
        names.contains(&"Search") && names.contains(&"Support Bot"),
        "{names:?}"
    );
    let keys: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["api_key_name"].as_str())
        .collect();
    assert!(keys.contains(&"prod-search"), "{keys:?}");
}

#[test]
fn newer_provider_shapes_are_recognised_not_misread() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_lake(tmp.path());
    let oct1 = day_output(&data, "2026-10-01");
    let h = fixtures().join("hostile");
    for (file, needle) in [
        ("analytics-usage-2026-10.json", "Usage & Cost Analytics API"),
        ("analytics-cost-2026-10.json", "Usage & Cost Analytics API"),
        (
            "enterprise-usage-report-2026-10.json",
            "Enterprise analytics",
        ),
    ] {
        let (c, s) = ingest_limited(&data, &[&h.join(file)]);
        assert_eq!(c, 3, "{file}: {s}");
        assert!(
            quarantined(&data, file, "file", needle),
            "{file}: {:?}",
            quarantine(&data)
        );
        // Even forced as a usage page (the operator says what it is, so it is read again), it
        // is refused, never read as an empty day; forced again, it is known.
        let path = h.join(file);
        let forced = |d: &Path| {
            let args = [
                "ingest",
                "--format",
                "anthropic-usage-api",
                "-q",
                path.to_str().unwrap(),
            ];
            code(&tl_limited(d, &args, 60))
        };
        assert_eq!(forced(&data), 3, "{file}");
        assert_eq!(forced(&data), 0, "{file}: the same forced read, once");
    }
    // Forced, the parser itself refuses the rows that carry rbac_group_id.
    assert!(quarantined(
        &data,
        "enterprise-usage-report-2026-10.json",
        "file",
        "data[0].results[0]: product"
    ));
    assert_eq!(day_output(&data, "2026-10-01"), oct1, "October 1 untouched");
}

#[test]
fn a_mid_2025_console_header_loads_with_its_assumptions_said() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let f = fixtures().join("hostile/console-usage-2025-07-mid2025-header.csv");
    let (c, s) = ingest_limited(&data, &[&f]);
    assert_eq!(c, 0, "{s}");
    let fs = file_status(&s, "mid2025-header.csv");
    assert_eq!(fs["rows_loaded"], 3);
    assert!(
        fs["notes"][0]
            .as_str()
            .unwrap()
            .contains("standard context window, global inference geo, no speed assumed"),
        "{fs}"
    );
    assert_eq!(day_output(&data, "2025-07-14"), Some(9100 + 15000));
    // Priced at standard context and global geo, by hand (fixtures/README.md, "hostile"):
    // Sonnet 4 52000×3 + 4000×3.75 + 18000×0.30 + 9100×15 = 312,900 µ$ + 2 searches = $0.3329;
    // Haiku 3.5 batch 80000×0.40 + 15000×2 = $0.062; Opus 4 3000×15 + 1000×18.75 + 500×30 +
    // 1200×75 = $0.16875.
    let o = tl(
        &data,
        &[
            "report", "--month", "2025-07", "--by", "model", "--format", "csv",
        ],
    );
    assert_eq!(code(&o), 0, "priced at standard rates: {}", stderr(&o));
    let csv = String::from_utf8_lossy(&o.stdout).into_owned();
    for (model, exact) in [
        ("claude-sonnet-4", "0.332900000000"),
        ("claude-3-5-haiku", "0.062000000000"),
        ("claude-opus-4", "0.168750000000"),
    ] {
        assert!(
            csv.lines()
                .any(|l| l.starts_with(&format!("{model},priced,")) && l.ends_with(exact)),
            "{model} at ${exact} by hand:\n{csv}"
        );
    }
}

#[test]
fn sql_prints_times_as_rfc3339() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_lake(tmp.path());
    let o = tl(&data, &["sql", "SELECT MIN(bucket_start) AS t FROM usage"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("2026-08-05T00:00:00Z"), "{out}");
    assert!(!out.contains("TUTC"), "{out}");
}

proptest::proptest! {
    /// Quoting huge numbers is the same whatever the read sizes of the stream (the >128 MiB
    /// path reads it in chunks), and leaves every other byte as it was.
    #[test]
    fn quoting_huge_numbers_does_not_depend_on_chunking(
        parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("1e400".to_string()),
                proptest::strategy::Just("\"a\\\"1e999\"".to_string()),
                proptest::strategy::Just("-12".to_string()),
                proptest::strategy::Just("true".to_string()),
                proptest::strategy::Just(",".to_string()),
                "[0-9]{1,400}",
                "[a-z\" :{}\\[\\]]{0,8}",
            ],
            0..40,
        ),
        cap in 1usize..64,
    ) {
        use std::io::Read;
        let text = parts.join(" ");
        let whole = tokenledger::sources::quote_huge_numbers(text.as_bytes());
        let mut chunked = Vec::new();
        let reader = std::io::BufReader::with_capacity(cap, text.as_bytes());
        tokenledger::sources::QuoteHugeNumbers::new(reader).read_to_end(&mut chunked).unwrap();
        proptest::prop_assert_eq!(&whole, &chunked);
        // JSON that parses as it is comes out unchanged; quoting only ever adds bytes.
        if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
            proptest::prop_assert_eq!(&whole, text.as_bytes());
        }
        proptest::prop_assert!(whole.len() >= text.len());
    }

    /// Capping long strings leaves JSON whose strings are within the cap exactly as it is,
    /// whatever the read sizes (escaped quotes included).
    #[test]
    fn capping_long_strings_changes_nothing_within_the_cap(
        parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("\"a\\\"b\"".to_string()),
                proptest::strategy::Just("\"\\\\\"".to_string()),
                proptest::strategy::Just("1e400".to_string()),
                "[a-z\" :{}\\[\\],]{0,12}",
            ],
            0..40,
        ),
        cap in 1usize..64,
    ) {
        use std::io::Read;
        let text = parts.join(" ");
        let mut out = Vec::new();
        let reader = std::io::BufReader::with_capacity(cap, text.as_bytes());
        tokenledger::sources::CapLongStrings::new(reader).read_to_end(&mut out).unwrap();
        proptest::prop_assert_eq!(out, text.into_bytes());
    }
}

#[test]
fn a_streamed_page_never_holds_a_string_longer_than_the_cap() {
    // Read as a stream (the path of files over 128 MiB), a 5 MB `speed` reaches the parser as
    // its length: the row is refused with it, the good row loads.
    let mut long = row(Some(KEY), Some(WS), HAIKU, json!(7));
    long["speed"] = json!("x".repeat(5_000_000));
    let good = row(Some(KEY), Some(WS), HAIKU, json!(5));
    let text = page(vec![day_bucket("2026-10-06", vec![long, good])]);
    let mut sink = tokenledger::sources::VecSink::default();
    tokenledger::sources::parse_reader(
        std::io::BufReader::with_capacity(4096, text.as_bytes()),
        tokenledger::model::SourceFormat::AnthropicUsageApi,
        &tokenledger::sources::Limits::default(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(sink.usage.len(), 1);
    assert_eq!(sink.quarantined.len(), 1, "{:?}", sink.quarantined);
    assert!(
        sink.quarantined[0]
            .reason
            .contains("speed is 5000000 bytes long"),
        "{:?}",
        sink.quarantined[0]
    );
    // A string just within the cap passes whole (and is then refused by the 1 KiB rule).
    let mut edge = row(Some(KEY), Some(WS), HAIKU, json!(7));
    edge["speed"] = json!("y".repeat(tokenledger::sources::MAX_STRING - 1));
    let text = page(vec![day_bucket("2026-10-06", vec![edge])]);
    let mut sink = tokenledger::sources::VecSink::default();
    tokenledger::sources::parse_reader(
        text.as_bytes(),
        tokenledger::model::SourceFormat::AnthropicUsageApi,
        &tokenledger::sources::Limits::default(),
        &mut sink,
    )
    .unwrap();
    assert!(sink.quarantined[0].reason.contains(&format!(
        "speed is {} bytes long",
        tokenledger::sources::MAX_STRING - 1
    )));
}

#[test]
fn repeated_rows_are_found_by_hash_and_confirmed_by_key() {
    use tokenledger::sources::paged::{repeated, repeated_exact};
    let keys: Vec<[Option<&str>; 2]> = (0..6)
        .map(|i| [Some(["a", "b", "c"][i % 3]), Some(["x", "y"][i % 2])])
        .collect();
    // Six rows over 3 × 2 combinations: all distinct.
    assert_eq!(repeated(keys.len(), keys.iter()), None);
    assert_eq!(repeated_exact(keys.len(), keys.iter()), None);
    // A seventh row repeats the second: (first, second) ordinals, as the exact check says.
    let mut more = keys.clone();
    more.push(keys[1]);
    assert_eq!(repeated(more.len(), more.iter()), Some((1, 6)));
    assert_eq!(repeated_exact(more.len(), more.iter()), Some((1, 6)));
    // None and "" are different dimensions.
    let nulls = [[None, Some("x")], [Some(""), Some("x")]];
    assert_eq!(repeated(2, nulls.iter()), None);
    // A bucket of 5,000 rows with one repeat late in it: both checks name the same pair.
    let names: Vec<String> = (0..5000).map(|i| format!("key-{i}")).collect();
    let mut rows: Vec<[Option<&str>; 2]> = names.iter().map(|n| [Some(n.as_str()), None]).collect();
    rows.push(rows[1234]);
    assert_eq!(repeated(rows.len(), rows.iter()), Some((1234, 5000)));
    assert_eq!(repeated_exact(rows.len(), rows.iter()), Some((1234, 5000)));
}

#[test]
fn a_dimension_longer_than_a_kibibyte_is_a_row_error() {
    // A 2 MB `speed` (the shape of the 200 MB one a hostile corpus carries): the row is
    // refused with its length, the good row of the bucket loads, and the reason is short.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut long = row(Some(KEY), Some(WS), HAIKU, json!(7));
    long["speed"] = json!("x".repeat(2_000_000));
    let mut other = row(Some(KEY), Some(WS), "claude-sonnet-4-5-20250929", json!(5));
    other["speed"] = json!("standard");
    let f = write(
        &tmp.path().join("in"),
        "long.json",
        &page(vec![day_bucket("2026-10-06", vec![long, other])]),
    );
    let (c, s) = ingest_limited(&data, &[&f]);
    assert_eq!(c, 3, "{s}");
    assert_eq!(
        day_output(&data, "2026-10-06"),
        Some(5),
        "the good row loads"
    );
    assert!(quarantined(
        &data,
        "long.json",
        "data[0].results[0]",
        "speed is 2000000 bytes long; a dimension or id is at most 1024 bytes"
    ));
    let longest = quarantine(&data)
        .iter()
        .map(|r| serde_json::to_string(r).unwrap().len())
        .max()
        .unwrap();
    assert!(
        longest < 2_000,
        "the quarantine record is not the value: {longest} bytes"
    );
}

#[test]
fn two_files_whose_names_differ_only_in_non_utf8_bytes_are_two_sources() {
    // Both names decode lossily to "usage-\u{fffd}.json"; the second restates the first's
    // bucket. Counted once (the later file's rows), whether read in one command or two.
    use std::os::unix::ffi::OsStrExt;
    for together in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let dir = tmp.path().join("in");
        std::fs::create_dir_all(&dir).unwrap();
        let name = |b: u8| {
            let mut n = b"usage-".to_vec();
            n.push(b);
            n.extend_from_slice(b".json");
            dir.join(std::ffi::OsStr::from_bytes(&n))
        };
        let (first, second) = (name(0xfe), name(0xff));
        let bucket = |output| {
            page(vec![day_bucket(
                "2026-10-06",
                vec![row(Some(KEY), Some(WS), HAIKU, json!(output))],
            )])
        };
        // The directory is the input (the names cannot be passed as text): the first file
        // alone, then both; or both at once.
        std::fs::write(&first, bucket(100)).unwrap();
        if !together {
            assert_eq!(ingest_limited(&data, &[&dir]).0, 0);
            assert_eq!(day_output(&data, "2026-10-06"), Some(100));
        }
        std::fs::write(&second, bucket(40)).unwrap();
        let (c, s) = ingest_limited(&data, &[&dir]);
        assert_eq!(c, 0, "{s}");
        assert_eq!(
            day_output(&data, "2026-10-06"),
            Some(40),
            "together = {together}: the later file restates the bucket, never adds to it"
        );
        let files = sql(&data, "SELECT DISTINCT source_file FROM ingest_log");
        assert_eq!(files.len(), 2, "two sources: {files:?}");
    }
}
