//! `tokenledger pull` against a real HTTP server on loopback (`apiserver`) that answers from a
//! generated organisation's pages and injects the faults the providers' APIs show: the lake a
//! pull builds is the lake an ingest of the same pages builds, or it names the window it could
//! not fetch and keeps the data before it; no key in any output, file or table.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::apiserver::{ANTHROPIC_KEY, Data, Fault, OPENAI_KEY, Rule, Server};
use crate::common::{code, ingest_ok, snapshot, sql, stderr, synth, tl_env, totals};

/// One month of hourly Anthropic usage and daily OpenAI usage, as files.
fn org(dir: &Path) -> PathBuf {
    synth(
        dir,
        &[
            "--start", "2026-10", "--months", "1", "--width", "1h", "--openai",
        ],
    )
}

/// A lake of the same pages the server answers from, ingested as files (what a pull must equal).
fn ingested_as_files(dir: &Path, exports: &Path) -> PathBuf {
    let lake = dir.join("by-files");
    let inputs: Vec<PathBuf> = [
        "usage",
        "cost",
        "workspaces.json",
        "api_keys.json",
        "openai",
    ]
    .iter()
    .map(|p| exports.join(p))
    .collect();
    ingest_ok(
        &lake,
        &inputs.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    );
    lake
}

fn config(dir: &Path) -> PathBuf {
    let cfg = dir.join("tokenledger.toml");
    std::fs::write(
        &cfg,
        "[providers.anthropic]\nsince = \"2026-10-01\"\nbucket_width = \"1h\"\ntimeout_secs = 1\n\
         concurrency = 3\n\n[providers.openai]\nsince = \"2026-10-01\"\nbucket_width = \"1d\"\n\
         timeout_secs = 1\n",
    )
    .unwrap();
    cfg
}

/// `tokenledger --config CFG pull ARGS --json` against `server`, with the keys in the
/// environment (as cron or systemd passes them).
fn pull(data: &Path, cfg: &Path, server: &Server, args: &[&str], keys: (&str, &str)) -> Output {
    let mut a = vec!["--config", cfg.to_str().unwrap(), "pull", "--json"];
    a.extend_from_slice(args);
    tl_env(
        data,
        &a,
        &[
            ("ANTHROPIC_ADMIN_KEY", keys.0),
            ("OPENAI_ADMIN_KEY", keys.1),
            ("TOKENLEDGER_ANTHROPIC_BASE_URL", &server.base),
            ("TOKENLEDGER_OPENAI_BASE_URL", &server.base),
        ],
    )
}

const OCTOBER: [&str; 4] = ["--from", "2026-10-01", "--to", "2026-10-31"];

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("pull --json printed no JSON ({e}); stderr: {}", stderr(o)))
}

/// What both lakes must agree on: token totals and row counts per provider, cost per provider,
/// the lists.
fn figures(data: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for p in ["anthropic", "openai"] {
        out.push(format!(
            "{p} {:?}",
            totals(data, &format!("WHERE provider = '{p}'"))
        ));
    }
    for q in [
        "SELECT provider, COUNT(*) AS n, SUM(amount) AS usd FROM cost GROUP BY provider ORDER BY provider",
        "SELECT provider, model, workspace_id, SUM(output_tokens) AS o FROM usage GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        "SELECT provider, COUNT(*) AS n FROM workspaces GROUP BY provider ORDER BY provider",
        "SELECT provider, COUNT(*) AS n FROM api_keys GROUP BY provider ORDER BY provider",
    ] {
        out.push(format!("{:?}", sql(data, q)));
    }
    out
}

/// The lake's tables of record (not its logs, the landing folder or internals).
fn tables(data: &Path) -> Vec<(String, String)> {
    snapshot(data)
        .into_iter()
        .filter(|(p, _)| {
            [
                "usage/",
                "usage_coverage/",
                "cost/",
                "cost_coverage/",
                "workspaces/",
                "api_keys/",
            ]
            .iter()
            .any(|t| p.starts_with(t))
        })
        .collect()
}

/// No admin key in any of `texts` nor in any file under `dir` (landing pages, Parquet).
fn assert_no_key(dir: &Path, texts: &[&[u8]]) {
    let keys = [ANTHROPIC_KEY, OPENAI_KEY, "WRONG-KEY-must-not-show"];
    for t in texts {
        let t = String::from_utf8_lossy(t);
        for k in keys {
            assert!(!t.contains(k), "a key in the output: {t}");
        }
    }
    for (path, _) in snapshot(dir) {
        let bytes = std::fs::read(dir.join(&path)).unwrap();
        for k in keys {
            assert!(
                !bytes.windows(k.len()).any(|w| w == k.as_bytes()),
                "a key in {path}"
            );
        }
    }
}

#[test]
fn a_pull_through_every_fault_lands_what_ingesting_the_pages_does_and_twice_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exports = org(dir.path());
    let by_files = ingested_as_files(dir.path(), &exports);

    let mut data = Data::from_exports(&exports);
    data.page_cap = 48; // a week of hours takes four pages: cursors are followed
    let server = Server::start(data);
    let slow = Duration::from_millis(1500); // over the configured 1 s timeout
    for rule in [
        Rule::new(
            "usage_report",
            1,
            Fault::Status(429, vec![("retry-after", "0.2".into())]),
        ),
        Rule::new("cost_report", 1, Fault::Status(429, vec![])),
        Rule::new("usage_report", 1, Fault::Status(529, vec![])),
        Rule::new("usage/completions", 1, Fault::Status(500, vec![])),
        Rule::new(
            "usage/embeddings",
            1,
            Fault::Status(503, vec![("retry-after-ms", "50".into())]),
        ),
        Rule::new("organization/costs", 1, Fault::DropMidBody),
        Rule::new("usage_report", 1, Fault::DropMidBody),
        Rule::new("workspaces", 1, Fault::Slow(slow)),
        Rule::new("usage/images", 1, Fault::Status(409, vec![])),
        Rule::new(
            "usage/audio_speeches",
            1,
            Fault::Body("<html>502 Bad Gateway</html>"),
        ),
        Rule::new(
            "usage/moderations",
            1,
            Fault::Status(400, vec![("x-should-retry", "true".into())]),
        ),
        Rule::new("usage/vector_stores", 1, Fault::Status(408, vec![])),
        Rule {
            with_cursor: true,
            ..Rule::new("usage_report", 1, Fault::Status(410, vec![]))
        },
    ] {
        server.fault(rule);
    }
    let cfg = config(dir.path());
    let data = dir.path().join("by-pull");
    let o = pull(&data, &cfg, &server, &OCTOBER, (ANTHROPIC_KEY, OPENAI_KEY));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["pull"]["incomplete"], serde_json::json!([]), "{v}");
    assert!(
        v["pull"]["retries"].as_i64().unwrap() >= 9,
        "every fault retried: {v}"
    );
    assert!(
        server.rules.lock().unwrap().iter().all(|r| r.times == 0),
        "every fault was hit"
    );
    // 5 hourly windows of the usage report at 4 pages each, restarted once after the 410.
    assert_eq!(figures(&data), figures(&by_files));

    // Twice in a row: the same pages again, nothing in the lake changes.
    let before = tables(&data);
    let requests = server.request_count();
    let again = pull(&data, &cfg, &server, &OCTOBER, (ANTHROPIC_KEY, OPENAI_KEY));
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(server.request_count() > requests);
    let v2 = json(&again);
    assert_eq!(
        v2["ingest"]["committed"],
        serde_json::json!(false),
        "nothing new to commit"
    );
    assert_eq!(tables(&data), before);
    assert_no_key(&data, &[&o.stdout, &o.stderr, &again.stdout, &again.stderr]);
}

#[test]
fn a_window_that_cannot_be_fetched_is_named_keeps_the_data_before_and_lands_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let exports = org(dir.path());
    let server = Server::start(Data::from_exports(&exports));
    let cfg = config(dir.path());
    let data = dir.path().join("lake");
    let only = ["--provider", "anthropic"];
    let args: Vec<&str> = only.iter().chain(OCTOBER.iter()).copied().collect();
    let first = pull(&data, &cfg, &server, &args, (ANTHROPIC_KEY, OPENAI_KEY));
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let day = |d: &str| {
        let next = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .unwrap()
            .succ_opt()
            .unwrap();
        totals(
            &data,
            &format!(
                "WHERE provider = 'anthropic' AND bucket_start >= '{d}' AND bucket_start < '{next}'"
            ),
        )["output_tokens"]
    };
    let (oct10, oct20) = (day("2026-10-10"), day("2026-10-20"));

    // The provider restates an hour of the 10th and one of the 20th; the window holding the
    // 10th (8th–15th) loops its cursor, and the cost report asks to wait an hour.
    let restate = |t: &str| {
        let at = chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp();
        let mut d = server.data.lock().unwrap();
        let b = d
            .buckets
            .get_mut("/v1/organizations/usage_report/messages")
            .unwrap();
        let r = &mut b.get_mut(&at).unwrap()["results"][0]["output_tokens"];
        *r = Value::from(r.as_i64().unwrap() + 1_000_000);
    };
    restate("2026-10-10T12:00:00Z");
    restate("2026-10-20T12:00:00Z");
    server.fault(Rule {
        query: Some("starting_at=2026-10-08T00:00:00Z"),
        ..Rule::new("usage_report", 50, Fault::CursorLoop)
    });
    server.fault(Rule::new(
        "cost_report",
        50,
        Fault::Status(429, vec![("retry-after", "3600".into())]),
    ));
    server.fault(Rule::new("workspaces", 50, Fault::Status(400, vec![])));
    server.fault(Rule::new(
        "api_keys",
        50,
        Fault::Status(500, vec![("x-should-retry", "false".into())]),
    ));
    server.fault(Rule {
        query: Some("starting_at=2026-10-29T00:00:00Z"),
        ..Rule::new("usage_report", 500, Fault::Endless)
    });
    let second = pull(&data, &cfg, &server, &args, (ANTHROPIC_KEY, OPENAI_KEY));
    assert_eq!(
        code(&second),
        3,
        "a window not pulled needs a look: {}",
        stderr(&second)
    );
    let v = json(&second);
    let missing: Vec<String> = v["pull"]["incomplete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} {} {}",
                i["endpoint"].as_str().unwrap(),
                i["range"].as_str().unwrap(),
                i["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        missing.iter().any(|m| m
            .starts_with("anthropic-usage-api 2026-10-08T00:00Z – 2026-10-15T00:00Z")
            && m.contains("same cursor twice")),
        "{missing:?}"
    );
    assert!(
        missing
            .iter()
            .any(|m| m.starts_with("anthropic-cost-api") && m.contains("more than the cap")),
        "{missing:?}"
    );
    // A 400 says the API's message and request-id; x-should-retry: false is not retried; a
    // cursor that never ends stops at the most pages the window can hold (3 days of hours).
    let said = |start: &str, what: &str| {
        missing
            .iter()
            .any(|m| m.starts_with(start) && m.contains(what))
    };
    assert!(
        said(
            "anthropic-workspaces the whole list",
            "HTTP 400: injected 400 (request-id req_test_"
        ),
        "{missing:?}"
    );
    assert!(
        said("anthropic-api-keys", "HTTP 500: injected 500"),
        "{missing:?}"
    );
    assert!(
        said(
            "anthropic-usage-api 2026-10-29T00:00Z",
            "more than 73 page(s)"
        ),
        "{missing:?}"
    );
    assert_eq!(missing.len(), 5, "{missing:?}");
    let err = stderr(&second);
    assert!(
        err.contains("NOT PULLED anthropic anthropic-usage-api 2026-10-08T00:00Z"),
        "{err}"
    );
    // Yesterday's data stands for the 10th; the 20th, in a window that landed, is restated.
    assert_eq!(day("2026-10-10"), oct10);
    assert_eq!(day("2026-10-20").value(), oct20.value() + 1_000_000);

    // The next night (no range: from where each endpoint left off) fetches the failed window.
    server.rules.lock().unwrap().clear();
    let requests = server.request_count();
    let third = pull(&data, &cfg, &server, &only, (ANTHROPIC_KEY, OPENAI_KEY));
    assert_eq!(code(&third), 0, "{}", stderr(&third));
    let asked = server.requests.lock().unwrap()[requests..].to_vec();
    assert!(
        asked
            .iter()
            .any(|r| r.contains("starting_at=2026-10-08T00:00:00Z")),
        "{asked:?}"
    );
    assert_eq!(day("2026-10-10").value(), oct10.value() + 1_000_000);
    let log = sql(
        &data,
        "SELECT status, COUNT(*) AS n FROM pull_log GROUP BY status ORDER BY status",
    );
    assert_eq!(
        log.len(),
        2,
        "complete and failed windows are both in pull_log: {log:?}"
    );
}

#[test]
fn a_refused_key_stops_the_provider_at_once_and_no_key_shows_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let exports = org(dir.path());
    let server = Server::start(Data::from_exports(&exports));
    let cfg = config(dir.path());
    let data = dir.path().join("lake");
    let args = [
        "--provider",
        "anthropic",
        "--from",
        "2026-10-01",
        "--to",
        "2026-10-31",
        "-vv",
    ];
    let mut a = vec!["--config", cfg.to_str().unwrap(), "-vv", "pull", "--json"];
    a.extend_from_slice(&args[..6]);
    let o = tl_env(
        &data,
        &a,
        &[
            (
                "ANTHROPIC_ADMIN_KEY",
                "sk-ant-admin01-WRONG-KEY-must-not-show",
            ),
            ("TOKENLEDGER_ANTHROPIC_BASE_URL", &server.base),
        ],
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(
        server.request_count(),
        1,
        "nothing more is tried with a refused key"
    );
    let err = stderr(&o);
    assert!(
        err.contains("HTTP 401") && err.contains("the environment variable ANTHROPIC_ADMIN_KEY"),
        "{err}"
    );
    assert!(err.contains("request-id req_test_0"), "{err}");
    assert_no_key(&data, &[&o.stdout, &o.stderr]);

    // No key at all: a usage error before anything is fetched or written.
    let none = tl_env(
        &dir.path().join("other"),
        &a,
        &[("TOKENLEDGER_ANTHROPIC_BASE_URL", &server.base)],
    );
    assert_eq!(code(&none), 2, "{}", stderr(&none));
    assert!(
        stderr(&none).contains("ANTHROPIC_ADMIN_KEY is not set"),
        "{}",
        stderr(&none)
    );
    assert_eq!(server.request_count(), 1);

    // Plain HTTP to another host would send the key in clear: refused before any request.
    let clear = tl_env(
        &data,
        &a,
        &[
            ("ANTHROPIC_ADMIN_KEY", ANTHROPIC_KEY),
            ("TOKENLEDGER_ANTHROPIC_BASE_URL", "http://api.example.com"),
        ],
    );
    assert_eq!(code(&clear), 2, "{}", stderr(&clear));
    assert!(stderr(&clear).contains("in clear"), "{}", stderr(&clear));
}

#[test]
fn retry_waits_follow_the_sdks() {
    use reqwest::header::{HeaderMap, HeaderValue};
    use tokenledger::pull::http::retry_after;
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
        .unwrap()
        .to_utc();
    let of = |pairs: &[(&'static str, &str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        retry_after(&h, now)
    };
    assert_eq!(of(&[("retry-after", "2")]), Some(Duration::from_secs(2)));
    assert_eq!(
        of(&[("retry-after", "0.25")]),
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        of(&[("retry-after-ms", "1500"), ("retry-after", "60")]),
        Some(Duration::from_millis(1500)),
        "the millisecond header wins"
    );
    assert_eq!(
        of(&[("retry-after", "Mon, 07 Dec 2026 10:00:30 GMT")]),
        Some(Duration::from_secs(30)),
        "an HTTP date"
    );
    assert_eq!(of(&[("retry-after", "soon")]), None);
    assert_eq!(of(&[]), None);
    for n in 0..8 {
        let d = tokenledger::pull::http::backoff(Duration::from_millis(500), n);
        let full = Duration::from_millis(500 * (1 << n)).min(Duration::from_secs(8));
        assert!(
            d <= full && d >= full.mul_f64(0.75),
            "retry {n}: {d:?} of {full:?}"
        );
    }
}

#[test]
fn analytics_queries_are_pulled_whole_and_load_as_their_query_file_does() {
    let dir = tempfile::tempdir().unwrap();
    let formats = crate::common::fixtures().join("formats");
    let mut data = Data::default();
    for (route, file) in [
        (
            "/v1/organizations/analytics/usage",
            "analytics-usage-2026-10-query.json",
        ),
        (
            "/v1/organizations/analytics/cost",
            "analytics-cost-2026-10-query.json",
        ),
    ] {
        let doc: Value =
            serde_json::from_slice(&std::fs::read(formats.join(file)).unwrap()).unwrap();
        let rows = doc["pages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["data"].as_array().unwrap().clone())
            .collect();
        data.rows.insert(route.into(), rows);
    }
    // The legacy reports answer too, with empty days (Analytics ranks above them).
    for route in [
        "/v1/organizations/usage_report/messages",
        "/v1/organizations/cost_report",
    ] {
        data.buckets.insert(route.into(), Default::default());
        data.widths.insert(route.into(), 86400);
    }
    data.lists
        .insert("/v1/organizations/workspaces".into(), Vec::new());
    data.lists
        .insert("/v1/organizations/api_keys".into(), Vec::new());
    let server = Server::start(data);
    let cfg = dir.path().join("tokenledger.toml");
    std::fs::write(
        &cfg,
        "[providers.anthropic]\nsince = \"2026-10-01\"\nbucket_width = \"1d\"\nanalytics = true\n",
    )
    .unwrap();
    let lake = dir.path().join("lake");
    let o = pull(
        &lake,
        &cfg,
        &server,
        &["--from", "2026-10-01", "--to", "2026-10-05"],
        (ANTHROPIC_KEY, OPENAI_KEY),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The empty legacy usage and cost pages are the same bytes: their folders tell them apart.
    let files = json(&o)["ingest"]["files"].as_array().unwrap().clone();
    assert!(files.iter().all(|f| f["status"] == "new"), "{files:?}");
    let asked = server.requests.lock().unwrap().clone();
    let analytics: Vec<&String> = asked.iter().filter(|r| r.contains("/analytics/")).collect();
    // 8 usage rows at limit 1000 → one page each; time-ordered, grouped, 1d buckets.
    assert_eq!(analytics.len(), 2, "{asked:?}");
    assert!(
        analytics
            .iter()
            .all(|r| r.contains("order_by=time") && r.contains("group_by[]=workspace_id")),
        "{analytics:?}"
    );
    let by_file = dir.path().join("by-file");
    ingest_ok(
        &by_file,
        &[
            &formats.join("analytics-usage-2026-10-query.json"),
            &formats.join("analytics-cost-2026-10-query.json"),
        ],
    );
    assert_eq!(totals(&lake, ""), totals(&by_file, ""));
    let cost = "SELECT COUNT(*) AS n, SUM(amount) AS usd FROM cost";
    assert_eq!(sql(&lake, cost), sql(&by_file, cost));
}

#[test]
fn run_pulls_each_provider_that_sets_since_then_does_the_whole_night() {
    let dir = tempfile::tempdir().unwrap();
    let exports = org(dir.path());
    let server = Server::start(Data::from_exports(&exports));
    let cfg = config(dir.path());
    let data = dir.path().join("lake");
    let o = tl_env(
        &data,
        &["--config", cfg.to_str().unwrap(), "run", "--json"],
        &[
            ("ANTHROPIC_ADMIN_KEY", ANTHROPIC_KEY),
            ("OPENAI_ADMIN_KEY", OPENAI_KEY),
            ("TOKENLEDGER_ANTHROPIC_BASE_URL", &server.base),
            ("TOKENLEDGER_OPENAI_BASE_URL", &server.base),
        ],
    );
    let v = json(&o);
    assert!([0, 3].contains(&code(&o)), "{}", stderr(&o));
    // From `since` to the last whole bucket: October's data and empty days after it.
    assert_eq!(
        v["pull"]["incomplete"],
        serde_json::json!([]),
        "{}",
        v["pull"]
    );
    assert!(v["pull"]["landed"].as_u64().unwrap() > 20, "{}", v["pull"]);
    let reviews = v["reviews"].to_string();
    assert!(!reviews.contains("pull_incomplete"), "{reviews}");
    assert_eq!(v["months"][0]["month"], "2026-10", "{}", v["months"]);
    let by_files = ingested_as_files(dir.path(), &exports);
    assert_eq!(figures(&data), figures(&by_files));
    assert_no_key(&data, &[&o.stdout, &o.stderr]);
}
