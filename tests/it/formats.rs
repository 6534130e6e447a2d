//! Each supported format, read through the library's parsers on real-shaped fixtures.

use std::io::Cursor;

use tokenledger::model::{SourceFamily, SourceFormat};
use tokenledger::sources::{self, Detected, Limits, VecSink};

use crate::common::fixtures;

fn parse(path: &str) -> (SourceFormat, VecSink) {
    let p = fixtures().join(path);
    let Detected::Format(format) = sources::detect_file(&p)
        .unwrap()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
    else {
        panic!("{path}: an empty page")
    };
    let mut sink = VecSink::default();
    sources::parse_file(&p, format, &Limits::default(), &mut sink)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    (format, sink)
}

#[test]
fn usage_page_with_null_dimensions_and_empty_bucket() {
    let (f, s) = parse("sample/usage-2026-10-p1.json");
    assert_eq!(f, SourceFormat::AnthropicUsageApi);
    assert_eq!(s.usage.len(), 5);
    assert!(s.quarantined.is_empty());
    // Three daily buckets covered, the third one empty (restates that day to zero).
    assert_eq!(s.coverage.len(), 3);
    assert!(
        s.coverage
            .iter()
            .all(|c| c.0 == SourceFamily::Api && (c.2 - c.1).num_hours() == 24)
    );
    let console = &s.usage[2];
    assert_eq!(console.api_key_id, None, "Console usage has no key");
    assert_eq!(console.workspace_id, None);
    assert_eq!(console.workspace_name.as_deref(), Some("Default"));
    let first = &s.usage[0];
    assert_eq!(
        (
            first.tokens.uncached_input,
            first.tokens.cache_write_1h,
            first.tokens.cache_write_5m
        ),
        (1500, 1000, 500)
    );
    assert_eq!(
        (
            first.tokens.cache_read,
            first.tokens.output,
            first.tokens.web_search_requests
        ),
        (200, 500, 10)
    );
    assert_eq!(s.usage[3].context_window.as_deref(), Some("200k-1M"));
    assert_eq!(s.usage[4].inference_geo.as_deref(), Some("us"));
}

#[test]
fn bucket_width_is_inferred() {
    let (_, s) = parse("formats/usage-1m.json");
    assert!(s.usage.iter().all(|r| r.bucket_width.as_str() == "1m"));
    let (_, s) = parse("formats/usage-1h-model-only.json");
    assert_eq!(s.usage[0].bucket_width.as_str(), "1h");
    // Not grouped by anything but model: every other dimension is null, server_tool_use null.
    let r = &s.usage[0];
    assert_eq!(
        (
            r.service_tier.as_deref(),
            r.context_window.as_deref(),
            r.inference_geo.as_deref()
        ),
        (None, None, None)
    );
    assert_eq!(r.tokens.web_search_requests, 0);
    let (_, s) = parse("sample/usage-2026-10-p2.json");
    assert!(s.usage.iter().all(|r| r.bucket_width.as_str() == "1d"));
}

#[test]
fn cost_amounts_are_exact_dollars_from_cent_strings() {
    let (f, s) = parse("sample/cost-2026-10.json");
    assert_eq!(
        f,
        SourceFormat::AnthropicCostApi,
        "token_type values must not make it look like usage"
    );
    assert_eq!(s.cost.len(), 24);
    assert_eq!(s.coverage.len(), 5, "Oct 1-5, Oct 3 empty");
    let fifth = s.cost.iter().find(|c| c.amount_raw == "0.1875").unwrap();
    assert_eq!(fifth.amount.to_string(), "0.001875");
    let code = s
        .cost
        .iter()
        .find(|c| c.cost_type.as_deref() == Some("code_execution"))
        .unwrap();
    assert_eq!(
        (code.model.as_deref(), code.token_type.as_deref()),
        (None, None)
    );
    let total: rust_decimal::Decimal = s.cost.iter().map(|c| c.amount).sum();
    // Hand-added (fixtures/README.md): 41.2435¢ + 173.339¢ + 0.45¢ + 4.46875¢.
    assert_eq!(total.to_string(), "2.1950125");
}

#[test]
fn cents_conversion_refuses_to_round_or_guess() {
    use tokenledger::sources::anthropic::admin::cents_to_dollars;
    assert_eq!(
        cents_to_dollars("123.78912").unwrap().to_string(),
        "1.2378912"
    );
    assert_eq!(cents_to_dollars("-5").unwrap().to_string(), "-0.05");
    assert!(cents_to_dollars("1e3").is_err());
    assert!(cents_to_dollars("1,5").is_err());
    assert!(
        cents_to_dollars("0.12345678901").is_err(),
        "11 fractional cent digits exceed the lake's scale"
    );
}

#[test]
fn console_csv_newer_header_with_bom_and_crlf() {
    let raw = std::fs::read(fixtures().join("sample/console-usage-2026-09.csv")).unwrap();
    assert!(
        raw.starts_with(b"\xEF\xBB\xBF") && raw.windows(2).any(|w| w == b"\r\n"),
        "fixture keeps its BOM and CRLF"
    );
    let (f, s) = parse("sample/console-usage-2026-09.csv");
    assert_eq!(f, SourceFormat::AnthropicConsoleUsageCsv);
    assert_eq!(s.usage.len(), 5);
    assert!(s.quarantined.is_empty(), "{:?}", s.quarantined);
    let r = &s.usage[0];
    assert_eq!(r.api_key_name.as_deref(), Some("prod-search"));
    assert_eq!(r.workspace_name.as_deref(), Some("Search"));
    assert_eq!(r.context_window.as_deref(), Some("0-200k"));
    assert_eq!(r.tokens.cache_write_5m, 15969);
    assert!(!r.cache_write_assumed_5m);
    assert_eq!(
        s.usage[3].context_window.as_deref(),
        Some("200k-1M"),
        "`> 200k` is long context"
    );
    let console = &s.usage[4];
    assert_eq!(
        (
            console.api_key_name.as_deref(),
            console.workspace_name.as_deref()
        ),
        (None, Some("Default"))
    );
    // Coverage: every day from the first to the last date.
    assert_eq!(s.coverage.len(), 2);
    assert!(s.coverage.iter().all(|c| c.0 == SourceFamily::Export));
}

#[test]
fn console_csv_older_header_books_cache_writes_as_5m() {
    let (f, s) = parse("sample/console-usage-2026-08-old-header.csv");
    assert_eq!(f, SourceFormat::AnthropicConsoleUsageCsv);
    assert_eq!(s.usage.len(), 2);
    assert!(
        s.usage
            .iter()
            .all(|r| r.cache_write_assumed_5m && r.tokens.cache_write_1h == 0)
    );
    assert_eq!(s.usage[0].tokens.cache_write_5m, 15969);
    assert_eq!(s.usage[1].tokens.cache_write_5m, 400);
    // 2026-08-05 .. 2026-08-06
    assert_eq!(s.coverage.len(), 2);
}

#[test]
fn console_csv_long_context_spellings() {
    use tokenledger::sources::anthropic::console_csv::context_window_from_display;
    for s in ["≤ 200k", "<= 200k", "0-200k"] {
        assert_eq!(
            context_window_from_display(s).unwrap().as_deref(),
            Some("0-200k")
        );
    }
    for s in ["> 200k", "200k-1M", " >200K "] {
        assert_eq!(
            context_window_from_display(s).unwrap().as_deref(),
            Some("200k-1M")
        );
    }
    assert_eq!(context_window_from_display("").unwrap(), None);
    assert!(context_window_from_display("huge").is_err());
}

#[test]
fn workspace_and_key_lists() {
    let (f, s) = parse("sample/workspaces.json");
    assert_eq!(f, SourceFormat::AnthropicWorkspaces);
    assert_eq!(
        s.workspaces
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>(),
        ["Search", "Support Bot"]
    );
    let (f, s) = parse("sample/api_keys.json");
    assert_eq!(f, SourceFormat::AnthropicApiKeys);
    assert_eq!(s.api_keys.len(), 3);
    let closer = s.api_keys.iter().find(|k| k.name == "closer-app").unwrap();
    assert_eq!(closer.workspace_id, None, "key in the default workspace");
    assert_eq!(
        closer.partial_key_hint.as_deref(),
        Some("sk-ant-api03-Xw3...1gFd")
    );
}

#[test]
fn detection_uses_content_not_names() {
    let usage = std::fs::read(fixtures().join("sample/usage-2026-10-p1.json")).unwrap();
    assert_eq!(
        sources::detect(&usage).unwrap(),
        Detected::Format(SourceFormat::AnthropicUsageApi)
    );
    let mut bom_csv = b"\xEF\xBB\xBF".to_vec();
    bom_csv.extend_from_slice(b"usage_date_utc,model_version,api_key,workspace,usage_type,context_window,usage_input_tokens_no_cache,usage_input_tokens_cache_write,usage_input_tokens_cache_read,usage_output_tokens\r\n");
    assert_eq!(
        sources::detect(&bom_csv).unwrap(),
        Detected::Format(SourceFormat::AnthropicConsoleUsageCsv)
    );
    let empty_page = br#"{"data":[{"starting_at":"2026-10-01T00:00:00Z","ending_at":"2026-10-02T00:00:00Z","results":[]}],"has_more":false}"#;
    // A quiet day: well-formed and empty, so it is recognised, but it cannot say which report.
    assert_eq!(
        sources::detect(empty_page).unwrap(),
        Detected::EmptyReportPage
    );
    assert!(sources::detect(b"\x89PNG\r\n\x1a\n\x00\xff\xfe").is_err());
    assert!(sources::detect(b"").is_err());
}

#[test]
fn a_page_can_be_read_from_any_reader() {
    let text = std::fs::read_to_string(fixtures().join("sample/usage-2026-10-p2.json")).unwrap();
    let mut sink = VecSink::default();
    sources::parse_reader(
        Cursor::new(text.clone()),
        SourceFormat::AnthropicUsageApi,
        &Limits::default(),
        &mut sink,
    )
    .unwrap();
    // The page's three rows as fixtures/README.md lists them (Oct 4: Sonnet 4.5 and Haiku 4.5
    // at priority tier; Oct 5: Opus 4.6 with 5-minute cache writes).
    let got: Vec<(String, String, [u64; 5])> = sink
        .usage
        .iter()
        .map(|r| {
            let t = r.tokens;
            (
                r.bucket_start.format("%Y-%m-%d").to_string(),
                r.model.as_deref().unwrap_or_default().to_string(),
                [
                    t.uncached_input,
                    t.cache_write_5m,
                    t.cache_write_1h,
                    t.cache_read,
                    t.output,
                ],
            )
        })
        .collect();
    let want = [
        (
            "2026-10-04",
            "claude-sonnet-4-5-20250929",
            [1000, 0, 0, 0, 100],
        ),
        (
            "2026-10-04",
            "claude-haiku-4-5-20251001",
            [500_000, 0, 0, 1000, 70_000],
        ),
        ("2026-10-05", "claude-opus-4-6", [3000, 500, 0, 0, 900]),
    ];
    assert_eq!(
        got,
        want.map(|(d, m, t)| (d.to_string(), m.to_string(), t))
            .to_vec()
    );
    // Row for row what the in-memory path reads from the same bytes.
    let mut whole = VecSink::default();
    sources::parse_bytes(
        text.as_bytes(),
        SourceFormat::AnthropicUsageApi,
        &Limits::default(),
        &mut whole,
    )
    .unwrap();
    assert_eq!(sink.usage, whole.usage);
    assert_eq!(sink.coverage, whole.coverage);
    assert!(sink.quarantined.is_empty() && whole.quarantined.is_empty());
}

#[test]
fn exporters_liberties_read_as_the_same_rows() {
    // Lower-case currency, "" for null, no next_page key: the same rows as the originals.
    let read = |path: &str, format: SourceFormat| {
        let bytes = std::fs::read(fixtures().join(path)).unwrap();
        let mut sink = VecSink::default();
        sources::parse_bytes(&bytes, format, &Limits::default(), &mut sink).unwrap();
        assert!(
            sink.quarantined.is_empty(),
            "{path}: {:?}",
            sink.quarantined
        );
        sink
    };
    let (a, b) = (
        read("sample/cost-2026-10.json", SourceFormat::AnthropicCostApi),
        read(
            "formats/cost-2026-10-liberties.json",
            SourceFormat::AnthropicCostApi,
        ),
    );
    assert!(!a.cost.is_empty());
    assert_eq!(a.cost, b.cost);
    assert!(b.cost.iter().all(|r| r.currency == "USD"));
    let (a, b) = (
        read(
            "sample/usage-2026-10-p1.json",
            SourceFormat::AnthropicUsageApi,
        ),
        read(
            "formats/usage-2026-10-p1-liberties.json",
            SourceFormat::AnthropicUsageApi,
        ),
    );
    assert!(!a.usage.is_empty());
    assert_eq!(a.usage, b.usage);
    assert_eq!(a.coverage, b.coverage);
    // The keyless Console row's workspace "" is the default workspace, as null is.
    assert!(
        b.usage
            .iter()
            .any(|r| r.workspace_id.is_none() && r.workspace_name.as_deref() == Some("Default"))
    );
}
