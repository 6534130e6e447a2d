//! OpenAI (#26, first part): the Costs API pages and the project and project-key lists, into
//! the provider-neutral tables with `provider = openai`, money read from JSON numbers exactly.

use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::common::*;

fn costs_fixture() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("openai/costs-2026-10.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The literal text of every `amount.value` in the fixture, in order (serde_json would read
/// them through an f64, so the raw file is scanned).
fn literal_amounts() -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("openai/costs-2026-10.json")).unwrap();
    text.split("\"value\":")
        .skip(1)
        .map(|t| {
            t.trim_start()
                .split(|c: char| c == ',' || c.is_whitespace() || c == '}')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// A Costs page's amounts land with every digit the lake's scale holds: the 19-significant-
/// digit `0.0003226181279184669` and `1.29e-05` compared with the file's own text (rounded
/// once, half even, to 12 decimals; said in a note), the text kept in `amount_raw`; projects
/// name the workspaces, keys keep only OpenAI's redacted value; ingesting again changes nothing.
#[test]
fn costs_pages_keep_every_digit_of_a_json_number() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = ingest_ok(&data, &[&fixtures().join("openai")]);
    let costs = s["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["format"] == "openai-costs")
        .unwrap();
    assert_eq!(costs["rows_loaded"], 6, "{s}");
    assert!(
        costs["notes"][0]
            .as_str()
            .unwrap()
            .contains("rounded once, half to even"),
        "{s}"
    );
    let rows = sql(
        &data,
        "SELECT provider, amount_raw, CAST(amount AS VARCHAR) AS amount, workspace_name \
         FROM cost ORDER BY bucket_start, source_row",
    );
    let texts = literal_amounts();
    assert_eq!(rows.len(), texts.len());
    for (r, t) in rows.iter().zip(&texts) {
        assert_eq!(r["provider"], "openai");
        assert_eq!(r["amount_raw"], t.as_str(), "the text as written");
        let want = if t.contains(['e', 'E']) {
            Decimal::from_scientific(t).unwrap()
        } else {
            Decimal::from_str(t).unwrap()
        }
        .round_dp_with_strategy(12, RoundingStrategy::MidpointNearestEven);
        let got = Decimal::from_str(r["amount"].as_str().unwrap()).unwrap();
        assert_eq!(got, want, "{t}");
    }
    assert!(texts.contains(&"0.0003226181279184669".to_string()));
    assert_eq!(
        rows[0]["amount"].as_str().unwrap().trim_end_matches('0'),
        "0.000322618128"
    );
    assert_eq!(rows[0]["workspace_name"], "Search Ranking");
    let total = sql(&data, "SELECT CAST(SUM(amount) AS VARCHAR) AS t FROM cost");
    assert_eq!(
        Decimal::from_str(total[0]["t"].as_str().unwrap()).unwrap(),
        Decimal::from_str("1.960335518128").unwrap(),
        "the hand total of fixtures/README.md"
    );
    let keys = sql(
        &data,
        "SELECT api_key_name, partial_key_hint, provider FROM api_keys ORDER BY api_key_name",
    );
    assert_eq!(keys[0]["partial_key_hint"], "sk-abc...def", "{keys:?}");
    assert_eq!(keys[1]["provider"], "openai", "{keys:?}");
    // Idempotent.
    let again = ingest_ok(&data, &[&fixtures().join("openai")]);
    assert!(all_unchanged(&again), "{again}");
}

/// Bad OpenAI input never crashes, vanishes or doubles: a negative amount, an amount sent as
/// a string and an unknown `object` quarantine their row (the rest loads, exit 3); a bucket
/// repeated refuses the file whole; an Anthropic month beside OpenAI costs reconciles as alone.
#[test]
fn bad_openai_costs_are_quarantined_and_never_doubled() {
    let tmp = tempfile::tempdir().unwrap();
    let page = costs_fixture();
    let write = |name: &str, v: &serde_json::Value| {
        let p = tmp.path().join(name);
        std::fs::write(&p, serde_json::to_string(v).unwrap()).unwrap();
        p
    };
    for (name, field, reason, f) in [
        (
            "negative",
            "amount.value",
            "negative",
            (&|v: &mut serde_json::Value| {
                v["data"][0]["results"][1]["amount"]["value"] = serde_json::json!(-0.45);
            }) as &dyn Fn(&mut serde_json::Value),
        ),
        (
            "string-amount",
            "amount.value",
            "must be the JSON number",
            &|v: &mut serde_json::Value| {
                v["data"][0]["results"][1]["amount"]["value"] = serde_json::json!("0.45");
            },
        ),
        (
            "unknown-object",
            "object",
            "expected \"organization.costs.result\"",
            &|v: &mut serde_json::Value| {
                v["data"][0]["results"][1]["object"] =
                    serde_json::json!("organization.costs.refund");
            },
        ),
    ] {
        let mut v = page.clone();
        f(&mut v);
        let data = tmp.path().join(format!("d-{name}"));
        let (c, s) = ingest(&data, &[&write(&format!("{name}.json"), &v)]);
        assert_eq!(c, 3, "{name}: {s}");
        assert_eq!(s["files"][0]["rows_loaded"], 5, "{name}: the rest loads");
        let q = sql(&data, "SELECT field, reason FROM quarantine");
        assert_eq!(q[0]["field"], field, "{name}: {q:?}");
        assert!(
            q[0]["reason"].as_str().unwrap().contains(reason),
            "{name}: {q:?}"
        );
    }
    let mut v = page.clone();
    let first = v["data"][0].clone();
    v["data"].as_array_mut().unwrap().push(first);
    let data = tmp.path().join("d-repeated");
    let (c, s) = ingest(&data, &[&write("repeated.json", &v)]);
    assert_eq!(c, 3, "{s}");
    assert_refused(&s, "a bucket repeated");

    // Beside the Anthropic sample: each provider is reconciled on its own, Anthropic's as it is
    // alone (its workspaces and days untouched by OpenAI's), OpenAI's Costs days beside it.
    let mixed = tmp.path().join("mixed");
    ingest_ok(
        &mixed,
        &[&fixtures().join("sample"), &fixtures().join("openai")],
    );
    let o = tl(
        &mixed,
        &["reconcile", "--month", "2026-10", "--format", "json"],
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let provider_of = |p: &str| -> Decimal {
        r["per_workspace"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["provider"] == p)
            .map(|w| Decimal::from_str(w["provider_usd"].as_str().unwrap()).unwrap())
            .sum()
    };
    assert_eq!(
        provider_of("anthropic").to_string(),
        "2.195012500000",
        "{r}"
    );
    // The Costs page's total by hand (fixtures/README.md): $1.960335518128.
    assert_eq!(provider_of("openai").to_string(), "1.960335518128", "{r}");
    assert_eq!(r["provider_usd"], "4.155348018128", "{r}");
    assert_eq!(r["providers"], serde_json::json!(["anthropic", "openai"]));
}

/// Every endpoint's Usage API page loads with `provider = openai`, recognised by content. The
/// completions classes split without double counting (new field set: the uncached count as
/// sent, cache writes 30m/12h; old field set: uncached = input − cached), the tier from `batch`
/// and `service_tier`, other units kept as `unit`/`unit_quantity` and UNPRICED with the
/// reason (never $0). Costs by hand in fixtures/README.md ("A hand-computed OpenAI month").
#[test]
fn usage_pages_of_every_endpoint_load_split_and_price_as_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = ingest_ok(
        &data,
        &[&fixtures().join("openai-usage"), &fixtures().join("openai")],
    );
    let formats: std::collections::BTreeSet<&str> = s["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["format"].as_str().unwrap())
        .filter(|f| f.starts_with("openai-usage-"))
        .collect();
    assert_eq!(
        formats.len(),
        10,
        "every endpoint its own format: {formats:?}"
    );
    let rows = sql(
        &data,
        "SELECT model, service_tier, uncached_input_tokens AS u, cache_read_tokens AS r, \
         cache_write_30m_tokens AS w30, cache_write_12h_tokens AS w12, output_tokens AS o, \
         web_search_requests AS web, unit, unit_quantity AS q, pricing_status AS st, \
         CAST(list_cost AS VARCHAR) AS cost, workspace_name AS ws, provider \
         FROM rated_usage ORDER BY source_format, bucket_start, source_row",
    );
    let got: Vec<String> = rows
        .iter()
        .map(|r| {
            let v = |k: &str| match &r[k] {
                serde_json::Value::Null => "-".to_string(),
                serde_json::Value::String(s) => s.clone(),
                x => x.to_string(),
            };
            assert_eq!(v("provider"), "openai");
            [
                "model",
                "service_tier",
                "u",
                "r",
                "w30",
                "w12",
                "o",
                "web",
                "unit",
                "q",
                "st",
                "cost",
                "ws",
            ]
            .map(v)
            .join(" ")
        })
        .collect();
    let want = [
        "tts-1 - 0 0 0 0 0 0 characters 45000 UNPRICED - Support Assistant",
        "whisper-1 - 0 0 0 0 0 0 seconds 3600 UNPRICED - Support Assistant",
        "- - 0 0 0 0 0 0 sessions 7 UNPRICED - Search Ranking",
        // Old field set: uncached = 24000 − 4000.
        "gpt-4o-2024-08-06 standard 20000 4000 0 0 3000 0 - 0 priced 0.085000000000 Search Ranking",
        // New field set: 480000 = 120000 cached + 30000 + 10000 writes + 320000 uncached.
        "gpt-5.4-2026-03-05 standard 320000 120000 30000 10000 30000 0 - 0 priced 1.380000000000 Search Ranking",
        "gpt-5.4-mini standard 28000 172000 0 0 9000 0 - 0 priced 0.074400000000 Support Assistant",
        "gpt-5.4-2026-03-05 flex 600000 0 0 0 20000 0 - 0 priced 0.900000000000 Search Ranking",
        "gpt-5.4-2026-03-05 batch 100000 0 0 0 5000 0 - 0 priced 0.162500000000 Search Ranking",
        "text-embedding-3-small - 1200000 0 0 0 0 0 - 0 UNPRICED - Support Assistant",
        "- - 0 0 0 0 0 0 file_search_calls 40 UNPRICED - Search Ranking",
        "gpt-image-1 - 0 0 0 0 0 0 images 12 UNPRICED - Support Assistant",
        "omni-moderation-latest - 5400 0 0 0 0 0 - 0 UNPRICED - Support Assistant",
        "- - 0 0 0 0 0 0 bytes 1073741824 UNPRICED - Search Ranking",
        "gpt-5.4-mini - 0 0 0 0 0 25 - 0 UNPRICED - Support Assistant",
    ];
    assert_eq!(got, want, "{got:#?}");
    // The reasons say why, per row; no UNPRICED row has a cost.
    let reasons = sql(
        &data,
        "SELECT pricing_note FROM rated_usage WHERE pricing_status = 'UNPRICED' ORDER BY 1",
    );
    let text: Vec<&str> = reasons
        .iter()
        .map(|r| r["pricing_note"].as_str().unwrap())
        .collect();
    assert!(
        text.iter()
            .any(|t| t.starts_with("12 images: the price book has no per-unit")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("no list price for model text-embedding-3-small")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("no web search price for gpt-5.4-mini")),
        "{text:?}"
    );
    // Ingesting again changes nothing.
    let again = ingest_ok(
        &data,
        &[&fixtures().join("openai-usage"), &fixtures().join("openai")],
    );
    all_unchanged(&again);
}

/// Hostile Usage API input: a float token count, an unknown `object`, an identity that does not
/// hold, a partial bucket (OpenAI's last bucket ends at the request time) are quarantined with
/// field and reason, the rest loads; a bucket repeated in one page refuses the page whole.
#[test]
fn bad_usage_pages_are_quarantined_and_never_doubled() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let text = std::fs::read_to_string(
        fixtures().join("openai-usage/completions-2026-10-new-fields.json"),
    )
    .unwrap();
    let page: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut bad = page.clone();
    let results = bad["data"][0]["results"].as_array_mut().unwrap();
    let mut float = results[1].clone();
    float["output_tokens"] = serde_json::json!(9000.5);
    float["model"] = serde_json::json!("gpt-5.4-nano");
    let mut unknown = results[1].clone();
    unknown["object"] = serde_json::json!("organization.usage.completions.summary");
    let mut identity = results[1].clone();
    identity["input_uncached_tokens"] = serde_json::json!(27999);
    identity["model"] = serde_json::json!("gpt-5-mini");
    results.extend([float, unknown, identity]);
    // An audio model's row: its audio tokens are kept beside the classes, and it is UNPRICED
    // (no audio rate in the book), never priced at the text rates.
    let mut audio = results[1].clone();
    audio["model"] = serde_json::json!("gpt-5.4-mini");
    audio["service_tier"] = serde_json::json!("priority");
    audio["input_audio_tokens"] = serde_json::json!(500);
    audio["output_audio_tokens"] = serde_json::json!(700);
    let bad_rows = 3;
    bad["data"][0]["results"]
        .as_array_mut()
        .unwrap()
        .insert(2 + bad_rows, audio);
    let mut partial = bad["data"][1].clone();
    partial["start_time"] = serde_json::json!(1_790_985_600);
    partial["end_time"] = serde_json::json!(1_791_000_000);
    bad["data"].as_array_mut().unwrap().push(partial);
    let f = tmp.path().join("bad-page.json");
    std::fs::write(&f, serde_json::to_vec_pretty(&bad).unwrap()).unwrap();
    let (c, s) = ingest(&data, &[&f]);
    assert_eq!(c, 3, "quarantined rows set the exit code: {s}");
    let q = sql(
        &data,
        "SELECT location, field, reason FROM quarantine ORDER BY location",
    );
    let seen: Vec<(String, String)> = q
        .iter()
        .map(|r| {
            (
                r["location"].as_str().unwrap().to_string(),
                r["field"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "data[0].results[2]".to_string(),
                "output_tokens".to_string()
            ),
            ("data[0].results[3]".to_string(), "object".to_string()),
            ("data[0].results[4]".to_string(), "input_tokens".to_string()),
            ("data[2]".to_string(), "end_time".to_string()),
        ],
        "{q:?}"
    );
    assert!(
        q[3]["reason"].as_str().unwrap().contains("partial bucket"),
        "{q:?}"
    );
    // The good rows of the page loaded, once.
    let n = sql(&data, "SELECT COUNT(*) AS n FROM usage");
    assert_eq!(n[0]["n"], 5, "{n:?}");
    assert_eq!(code(&tl(&data, &["rate"])), 3, "UNPRICED rows are a review");
    let a = sql(
        &data,
        "SELECT input_audio_tokens AS ai, output_audio_tokens AS ao, pricing_status AS st, \
         pricing_note AS why, list_cost FROM rated_usage WHERE input_audio_tokens > 0",
    );
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (&a[0]["ai"], &a[0]["ao"], &a[0]["st"]),
        (
            &serde_json::json!(500),
            &serde_json::json!(700),
            &serde_json::json!("UNPRICED")
        )
    );
    assert!(
        a[0]["why"]
            .as_str()
            .unwrap()
            .starts_with("1200 audio tokens"),
        "{a:?}"
    );
    assert!(a[0]["list_cost"].is_null(), "never $0: {a:?}");
    // Results of another endpoint in one page: the page is refused whole, never guessed.
    let mut mixed = page.clone();
    let mut other = mixed["data"][0]["results"][1].clone();
    other["object"] = serde_json::json!("organization.usage.embeddings.result");
    mixed["data"][0]["results"]
        .as_array_mut()
        .unwrap()
        .push(other);
    let f3 = tmp.path().join("mixed.json");
    std::fs::write(&f3, serde_json::to_vec(&mixed).unwrap()).unwrap();
    let (c, s) = ingest(&tmp.path().join("data3"), &[&f3]);
    assert_eq!(c, 3, "{s}");
    assert_refused(&s, "several endpoints");
    // A bucket twice in one page: which is right cannot be told, the page is refused whole.
    let mut twice = page.clone();
    let first = twice["data"][0].clone();
    twice["data"].as_array_mut().unwrap().push(first);
    let f2 = tmp.path().join("twice.json");
    std::fs::write(&f2, serde_json::to_vec(&twice).unwrap()).unwrap();
    let (c, s) = ingest(&tmp.path().join("data2"), &[&f2]);
    assert_eq!(c, 3, "{s}");
    assert_refused(&s, "appears twice in one page");
}

/// A project list item of another `object`, or without an id, is quarantined with the reason;
/// the other projects load (never a project silently dropped).
#[test]
fn a_bad_project_list_item_is_quarantined_and_the_rest_load() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixtures().join("openai/projects.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut third = v["data"][0].clone();
    third["object"] = serde_json::json!("organization.project.service_account");
    third["id"] = serde_json::json!("proj_9Third");
    v["data"].as_array_mut().unwrap().push(third);
    v["data"][1].as_object_mut().unwrap().remove("id");
    let p = tmp.path().join("projects.json");
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    let data = tmp.path().join("d");
    let (c, s) = ingest(&data, &[&p]);
    assert_eq!(c, 3, "{s}");
    assert_eq!(s["files"][0]["rows_loaded"], 1, "{s}");
    let q = sql(
        &data,
        "SELECT location, field FROM quarantine ORDER BY location",
    );
    assert_eq!(q[0]["location"], "data[1]", "{q:?}");
    assert_eq!(q[0]["field"], "id", "{q:?}");
    assert_eq!(q[1]["field"], "object", "{q:?}");
}

/// $/MTok rates typed from `../shared/reference/provider-apis.md` §7 for the models and tiers
/// the generated organisation uses (September and October 2026: after the gpt-5.6-luna cut):
/// (uncached input, cached input, cache write, output). Models before gpt-5.6 write at the
/// input rate, gpt-5.6 at 1.25× input; flex is the batch rates of the gpt-5 family.
fn reference_rate(model: &str, tier: &str) -> [&'static str; 4] {
    match (model, tier) {
        ("gpt-5.4", "standard") => ["2.5", "0.25", "2.5", "15"],
        ("gpt-5.4", "flex") => ["1.25", "0.13", "1.25", "7.5"],
        ("gpt-5.4-mini", "standard") => ["0.75", "0.075", "0.75", "4.5"],
        ("gpt-5.4-mini", "priority") => ["1.5", "0.15", "1.5", "9"],
        ("gpt-5.6-luna", "standard") => ["0.20", "0.02", "0.25", "1.20"],
        ("gpt-4o", "batch") => ["1.25", "-", "1.25", "5"],
        other => panic!("no reference rate typed for {other:?}"),
    }
}

/// Done-when of #26: a generated OpenAI organisation (usage of every endpoint, the Costs API)
/// priced by tokenledger equals an independent pricing of the same usage pages — read here
/// from the JSON, split into classes by the identity, priced with the reference table above —
/// per project × model × month, to the unit (1e-12 $). And the Costs API reconciles with
/// explained causes only: unpriced usage the provider billed, and the one planted long-context
/// day.
#[test]
fn a_generated_openai_organisation_prices_as_the_reference_table_and_reconciles() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = synth(
        tmp.path(),
        &[
            "--months", "2", "--start", "2026-09", "--width", "1d", "--openai",
        ],
    );
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&exports.join("openai")]);
    let units = |rate: &str, n: u64| -> i128 {
        // $/MTok → 1e-12 $ per token is × 10⁶; exact for ≤ 6 decimals.
        let d = Decimal::from_str(rate).unwrap() * Decimal::from(1_000_000);
        assert!(d.fract().is_zero());
        d.trunc().mantissa() / 10i128.pow(d.trunc().scale()) * i128::from(n)
    };
    for month in ["2026-09", "2026-10"] {
        let text =
            std::fs::read_to_string(exports.join(format!("openai/usage-completions-{month}.json")))
                .unwrap();
        let page: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut want: std::collections::BTreeMap<(String, String), i128> = Default::default();
        for bucket in page["data"].as_array().unwrap() {
            for r in bucket["results"].as_array().unwrap() {
                let n = |k: &str| r[k].as_u64().unwrap_or(0);
                let raw = r["model"].as_str().unwrap();
                // Dated snapshots (gpt-5.4-2026-03-05) are their alias.
                let model = match raw.rsplitn(4, '-').collect::<Vec<_>>()[..] {
                    [d, m, y, head] if y.len() == 4 && m.len() == 2 && d.len() == 2 => head,
                    _ => raw,
                };
                let tier = match (r["batch"].as_bool(), r["service_tier"].as_str()) {
                    (Some(true), _) => "batch",
                    (_, Some("default")) => "standard",
                    (_, Some(t)) => t,
                    _ => "standard",
                };
                let [input, cached, write, output] = reference_rate(model, tier);
                let writes = n("input_cache_write_30m_tokens") + n("input_cache_write_12h_tokens");
                let uncached = n("input_tokens") - n("input_cached_tokens") - writes;
                let mut cost = units(input, uncached)
                    + units(write, writes)
                    + units(output, n("output_tokens"));
                if n("input_cached_tokens") > 0 {
                    cost += units(cached, n("input_cached_tokens"));
                }
                *want
                    .entry((r["project_id"].as_str().unwrap().into(), model.into()))
                    .or_default() += cost;
            }
        }
        let o = tl(
            &data,
            &[
                "report",
                "--month",
                month,
                "--by",
                "workspace,model",
                "--format",
                "json",
            ],
        );
        let lines: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut got: std::collections::BTreeMap<(String, String), i128> = Default::default();
        for l in lines.as_array().unwrap() {
            if l["pricing_status"] != "priced" {
                continue; // embeddings, images, …: UNPRICED (no price in the reference)
            }
            let exact = Decimal::from_str(l["list_cost_usd_exact"].as_str().unwrap()).unwrap();
            let key = (
                l["workspace_id"].as_str().unwrap().to_string(),
                l["model"].as_str().unwrap().to_string(),
            );
            got.insert(
                key,
                (exact * Decimal::from(1_000_000_000_000i64))
                    .trunc()
                    .mantissa(),
            );
        }
        assert_eq!(got, want, "{month}");
        assert!(want.len() >= 10, "{month}: {want:?}");
    }
    // The Costs API: every OpenAI line matched or explained; one long-context day.
    let o = tl(
        &data,
        &["reconcile", "--month", "2026-10", "--format", "json"],
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["lines_unexplained"], 0, "{r}");
    let long: Vec<&serde_json::Value> = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["cause"].as_str().unwrap().starts_with("long context"))
        .collect();
    assert_eq!(long.len(), 1, "{long:?}");
    assert_eq!(
        (&long[0]["day"], &long[0]["workspace_name"]),
        (
            &serde_json::json!("2026-10-15"),
            &serde_json::json!("Search Ranking")
        )
    );
    assert!(r["lines_matched"].as_u64().unwrap() >= 28, "{r}");
    // OpenAI's October invoice through the same ledger: its charge is the Costs API's total
    // (rounded to the cent, as an invoice line is), plus tax; it ties out against OpenAI's
    // days, with the Costs-vs-usage parts (unpriced usage, long context) named.
    let provider = Decimal::from_str(r["provider_usd"].as_str().unwrap()).unwrap();
    let invoice = tmp.path().join("openai-invoice-2026-10.csv");
    std::fs::write(
        &invoice,
        format!(
            "invoice_number,provider,currency,period_start,period_end,line_kind,description,amount_usd\n\
             OAI-2026-10,openai,USD,2026-10-01,2026-11-01,charge,API usage,{}\n\
             OAI-2026-10,openai,USD,2026-10-01,2026-11-01,tax,Sales tax,12.34\n",
            provider.round_dp(2)
        ),
    )
    .unwrap();
    ingest_ok(&data, &[&invoice]);
    let o = tl(
        &data,
        &[
            "reconcile",
            "--month",
            "2026-10",
            "--tie-out",
            "--format",
            "json",
        ],
    );
    let ties: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tie = &ties[0];
    assert_eq!(tie["invoice_number"], "OAI-2026-10", "{ties}");
    assert_eq!(
        (&tie["provider"], &tie["needs_review"]),
        (&serde_json::json!("openai"), &serde_json::json!(false)),
        "{tie}"
    );
    let step = |prefix: &str| -> i64 {
        tie["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["step"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}: {tie}"))["amount_cents"]
            .as_i64()
            .unwrap()
    };
    assert!(
        step("+ long context") > 0 && step("+ usage with no list price") > 0,
        "{tie}"
    );
}

/// Done-when of #26: Anthropic and OpenAI data in one lake give one report whose provider
/// subtotals equal each provider's report alone, to the unit, line for line.
#[test]
fn one_lake_of_both_providers_reports_each_as_it_is_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = synth(
        tmp.path(),
        &[
            "--months", "1", "--start", "2026-10", "--width", "1h", "--openai",
        ],
    );
    // Anthropic's files alone: the exports without the openai/ folder.
    let openai = tmp.path().join("openai-only");
    std::fs::rename(exports.join("openai"), &openai).unwrap();
    let (both, anthropic, alone) = (
        tmp.path().join("both"),
        tmp.path().join("anthropic"),
        tmp.path().join("openai"),
    );
    ingest_ok(&both, &[&exports, &openai]);
    ingest_ok(&anthropic, &[&exports]);
    ingest_ok(&alone, &[&openai]);
    let lines = |data: &std::path::Path, by: &str| -> Vec<serde_json::Value> {
        let o = tl(
            data,
            &[
                "report", "--month", "2026-10", "--by", by, "--format", "json",
            ],
        );
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)))
            .as_array()
            .unwrap()
            .clone()
    };
    let exact = |rows: &[serde_json::Value], provider: &str| -> Decimal {
        rows.iter()
            .filter(|r| r["provider"] == provider && r["pricing_status"] != "UNPRICED")
            .map(|r| Decimal::from_str(r["list_cost_usd_exact"].as_str().unwrap()).unwrap())
            .sum()
    };
    let one = lines(&both, "provider,workspace,model");
    for (data, p) in [(&anthropic, "anthropic"), (&alone, "openai")] {
        let own = lines(data, "provider,workspace,model");
        assert_eq!(exact(&one, p), exact(&own, p), "{p}");
        assert!(exact(&own, p) > Decimal::ZERO, "{p}");
        // The same lines, exact amounts and counts; the cents are each table's own rounding
        // (largest remainder to foot to that table's total), so they are not compared.
        let unrounded = |r: &serde_json::Value| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("list_cost_usd");
            r
        };
        let mine: Vec<serde_json::Value> = one
            .iter()
            .filter(|r| r["provider"] == p)
            .map(unrounded)
            .collect();
        assert_eq!(
            mine,
            own.iter().map(unrounded).collect::<Vec<_>>(),
            "{p}: the same lines"
        );
    }
    let total = |rows: &[serde_json::Value]| exact(rows, "anthropic") + exact(rows, "openai");
    let by_provider = lines(&both, "provider");
    assert_eq!(total(&by_provider), total(&one));
}

/// Usage in another unit is priced per unit where a price exists (an override here: the
/// reference has none), the same in `rated_usage` and in the report's scan; a unit
/// without a price stays UNPRICED with the reason.
#[test]
fn a_unit_with_a_price_is_priced_per_unit_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("tokenledger.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n\n[[prices.unit_price]]\nprovider = \"openai\"\nkind = \"images\"\nprice = \"0.04\"\n\n[[prices.unit_price]]\nprovider = \"openai\"\nkind = \"characters\"\nprice = \"0.000015\"\n",
            data.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let o = binary()
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        (
            code(&o),
            String::from_utf8_lossy(&o.stdout).to_string(),
            stderr(&o),
        )
    };
    let (c, _, e) = run(&["ingest", fixtures().join("openai-usage").to_str().unwrap()]);
    assert_eq!(c, 0, "{e}");
    let (_, out, e) = run(&[
        "sql",
        "SELECT unit, unit_quantity AS q, pricing_status AS st, CAST(rate_unit AS VARCHAR) AS per, \
         CAST(cost_unit AS VARCHAR) AS cost, CAST(list_cost AS VARCHAR) AS list FROM rated_usage \
         WHERE unit IS NOT NULL ORDER BY unit",
        "--format",
        "json",
    ]);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|x| panic!("{x}: {e}"));
    let got: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            ["unit", "q", "st", "per", "cost", "list"]
                .map(|k| match &r[k] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "-".into(),
                    x => x.to_string(),
                })
                .join(" ")
        })
        .collect();
    assert_eq!(
        got,
        [
            "bytes 1073741824 UNPRICED - - -",
            // 45,000 characters × $0.000015 = $0.675; 12 images × $0.04 = $0.48.
            "characters 45000 priced 0.000015000000 0.675000000000 0.675000000000",
            "file_search_calls 40 UNPRICED - - -",
            "images 12 priced 0.040000000000 0.480000000000 0.480000000000",
            "seconds 3600 UNPRICED - - -",
            "sessions 7 UNPRICED - - -",
        ],
        "{got:#?}"
    );
    // The report's scan prices them the same (tts-1 and gpt-image-1 have no token rate).
    let (_, out, e) = run(&[
        "report", "--month", "2026-10", "--by", "model", "--format", "json",
    ]);
    let lines: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|x| panic!("{x}: {e}"));
    let of = |m: &str| -> Vec<(String, String)> {
        lines
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["model"] == m)
            .map(|l| {
                (
                    l["pricing_status"].as_str().unwrap().to_string(),
                    l["list_cost_usd_exact"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        of("gpt-image-1"),
        [("priced".to_string(), "0.480000000000".to_string())]
    );
    assert_eq!(
        of("tts-1"),
        [("priced".to_string(), "0.675000000000".to_string())]
    );
    assert_eq!(of("whisper-1")[0].0, "UNPRICED");
}
