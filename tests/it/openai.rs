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

    // Beside the Anthropic sample: Anthropic's reconciliation is what it is alone.
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
    assert_eq!(r["provider_usd"], "2.195012500000", "{r}");
}

/// OpenAI Usage API pages (fixtures/openai-usage, every endpoint) are recognised as OpenAI's
/// and refused whole with the reason until OpenAI usage is read — never mistaken for another
/// format or loaded as an empty day.
#[test]
fn usage_pages_are_recognised_and_refused_until_openai_usage_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (c, s) = ingest(&data, &[&fixtures().join("openai-usage")]);
    assert_eq!(c, 3, "{s}");
    let files = s["files"].as_array().unwrap();
    assert_eq!(files.len(), 11, "{s}");
    for f in files {
        assert_eq!(f["status"], "quarantined", "{f}");
        assert!(
            f["error"]
                .as_str()
                .unwrap()
                .contains("an OpenAI organization Usage API page"),
            "{f}"
        );
    }
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
