//! A synthetic OpenAI organisation beside the Anthropic one (`synth --openai`, the demo): the
//! project and project-key lists, one daily Usage API page per endpoint and month (every
//! endpoint; completions in the old field set before October 2026 and the new one from then),
//! and the Costs API pages the provider would write: list cost per day × project × line item,
//! as JSON numbers, plus what our side cannot price (embeddings, images, web searches, … at
//! made-up provider amounts) and one planted long-context surcharge (`labels` says where).
//!
//! Must not: write to the lake. Token counts are integers; money is exact decimals written as
//! JSON number text (never through an f64).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde_json::json;

use crate::pricing::PriceBook;

/// (id, name) of the projects; the third belongs to no team in the demo.
pub const PROJECTS: [(&str, &str); 3] = [
    ("proj_SynthSearchRank0000000001", "Search Ranking"),
    ("proj_SynthSupportDesk000000002", "Support Desk"),
    ("proj_SynthResearchLab000000003", "Research Lab"),
];

/// (model, service_tier, batch) of the completions streams, per project.
const STREAMS: [(&str, &str, bool); 6] = [
    ("gpt-5.4-2026-03-05", "default", false),
    ("gpt-5.4-2026-03-05", "flex", false),
    ("gpt-5.4-mini", "default", false),
    ("gpt-5.4-mini", "priority", false),
    ("gpt-5.6-luna", "default", false),
    ("gpt-4o-2024-08-06", "default", true),
];

/// The day and project of the planted long-context surcharge: the 15th of the last month.
pub fn long_context_day(end: NaiveDate) -> NaiveDate {
    let last = end.pred_opt().expect("a date");
    last.with_day0(14).unwrap_or(last)
}

/// One key per project, named as a team would.
const KEY_NAMES: [&str; 3] = ["ranking-prod", "desk-prod", "lab-notebooks"];

fn key_id(p: usize) -> String {
    format!("key_SynthOpenAiKey{p:02}")
}

/// A money amount as a JSON number's text (the Costs API's own format).
fn number(d: Decimal) -> String {
    format!("@@{}@@", d.normalize())
}

/// One completions result and its list cost per line-item kind.
struct Completion {
    result: serde_json::Value,
    /// (kind, $) at list: input (uncached + cache writes), cached input, output.
    cost: Vec<(&'static str, Decimal)>,
}

fn completion(
    book: &PriceBook,
    (day, new_fields): (NaiveDate, bool),
    (p, s): (usize, usize),
    rng: &mut fastrand::Rng,
) -> Result<Completion> {
    let (model, tier, batch) = STREAMS[s];
    let scale = 1 + (p as u64 + 1) * (s as u64 + 1);
    let uncached = rng.u64(20_000..400_000) * scale;
    // Batch input of gpt-4o has no cached price: none is made up.
    let cached = if batch {
        0
    } else {
        rng.u64(0..200_000) * scale
    };
    let (w30, w12) = if new_fields && !batch {
        (rng.u64(0..40_000), rng.u64(0..10_000))
    } else {
        (0, 0)
    };
    let output = rng.u64(5_000..60_000) * scale;
    let input = uncached + cached + w30 + w12;
    let mut r = json!({
        "object": "organization.usage.completions.result",
        "input_tokens": input,
        "input_cached_tokens": cached,
        "output_tokens": output,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": rng.u64(10..500),
        "project_id": PROJECTS[p].0,
        "user_id": null,
        "api_key_id": key_id(p),
        "model": model,
        "batch": batch,
        "service_tier": tier,
    });
    if new_fields {
        r["input_uncached_tokens"] = json!(uncached);
        r["input_cache_write_tokens"] = json!(w30 + w12);
        r["input_cache_write_30m_tokens"] = json!(w30);
        r["input_cache_write_12h_tokens"] = json!(w12);
    }
    let lake_tier = match (batch, tier) {
        (true, _) => "batch",
        (_, "default") => "standard",
        (_, t) => t,
    };
    let rate = book
        .rate(
            crate::vocab::Provider::OpenAi.as_str(),
            Some(model),
            day,
            Some(lake_tier),
            None,
            None,
        )
        .map_err(anyhow::Error::msg)?;
    let at = |k: usize, n: u64| -> Decimal {
        rate.per_mtok[k].map_or(Decimal::ZERO, |r| {
            r * Decimal::from(n) / Decimal::from(1_000_000)
        })
    };
    Ok(Completion {
        result: r,
        cost: vec![
            ("input", at(0, uncached) + at(5, w30) + at(6, w12)),
            ("cached input", at(3, cached)),
            ("output", at(4, output)),
        ],
    })
}

/// The other endpoints' results of one day: (endpoint path name, result, the provider's
/// line item and amount — made up: tokenledger's book has no price for them).
/// A result of another endpoint: (endpoint path name, result, the provider's line item and
/// amount, if it bills one).
type Other = (&'static str, serde_json::Value, Option<(String, Decimal)>);

/// The other endpoints: (path name, result object name, project, model, counted field, count
/// per unit of the day's load, the provider's line item and its made-up unit price as
/// (mantissa, scale)). Search Ranking (project 0) uses tokens only, so its days reconcile to
/// the unit but the planted one.
type OtherSpec = (
    &'static str,
    &'static str,
    usize,
    Option<&'static str>,
    &'static str,
    u64,
    Option<(&'static str, i64, u32)>,
);
const OTHERS: [OtherSpec; 9] = [
    (
        "embeddings",
        "embeddings",
        1,
        Some("text-embedding-3-small"),
        "input_tokens",
        200_000,
        Some(("text-embedding-3-small, input", 2, 8)),
    ),
    (
        "moderations",
        "moderations",
        1,
        Some("omni-moderation-latest"),
        "input_tokens",
        900,
        None,
    ),
    (
        "images",
        "images",
        1,
        Some("gpt-image-1"),
        "images",
        3,
        Some(("gpt-image-1, images", 4, 2)),
    ),
    (
        "audio_speeches",
        "audio_speeches",
        1,
        Some("tts-1"),
        "characters",
        5_000,
        None,
    ),
    (
        "audio_transcriptions",
        "audio_transcriptions",
        1,
        Some("whisper-1"),
        "seconds",
        600,
        None,
    ),
    (
        "vector_stores",
        "vector_stores",
        2,
        None,
        "usage_bytes",
        536_870_912,
        None,
    ),
    (
        "code_interpreter_sessions",
        "code_interpreter_sessions",
        2,
        None,
        "num_sessions",
        1,
        None,
    ),
    (
        "file_search_calls",
        "file_searches",
        2,
        None,
        "num_requests",
        10,
        None,
    ),
    (
        "web_search_calls",
        "web_searches",
        2,
        Some("gpt-5.4-mini"),
        "num_requests",
        5,
        Some(("Web search", 1, 2)),
    ),
];

fn others(day_index: u64) -> Vec<Other> {
    let n = 1 + day_index % 7;
    OTHERS
        .iter()
        .map(|&(endpoint, object, p, model, field, per, cost)| {
            // A vector store's bytes are a level, not a flow: the same every day.
            let count = if field == "usage_bytes" { per } else { per * n };
            let mut v = json!({
                "object": format!("organization.usage.{object}.result"),
                "project_id": PROJECTS[p].0,
                field: count,
            });
            if let Some(m) = model {
                v["model"] = json!(m);
                v["api_key_id"] = json!(key_id(p));
                v["num_model_requests"] = json!(n);
            }
            let bill = cost
                .map(|(item, m, e)| (item.to_string(), Decimal::from(count) * Decimal::new(m, e)));
            (endpoint, v, bill)
        })
        .collect()
}

fn page(buckets: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"object": "page", "data": buckets, "has_more": false, "next_page": null})
}

fn write_page(path: &Path, v: &serde_json::Value) -> Result<()> {
    // Money placeholders become the JSON numbers they stand for.
    let text = serde_json::to_string_pretty(v)?
        .replace("\"@@", "")
        .replace("@@\"", "");
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// How much of an OpenAI organisation to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    None,
    /// Completions only: every line has a list price (the demo).
    Tokens,
    /// Every endpoint, the units tokenledger cannot price included (`synth --openai`).
    Full,
}

/// Writes the OpenAI organisation under `out/openai/`; returns the number of files.
pub fn write(
    out: &Path,
    (seed, part): (u64, Part),
    (start, end): (NaiveDate, NaiveDate),
    book: &PriceBook,
) -> Result<usize> {
    let dir = out.join(crate::vocab::Provider::OpenAi.as_str());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x0A1);
    write_lists(&dir)?;
    let mut files = 2;
    let planted = long_context_day(end);
    let mut month = start;
    while month < end {
        let next = month
            .checked_add_months(chrono::Months::new(1))
            .context("date overflow")?;
        let mut usage: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
        let mut costs = Vec::new();
        for day in month.iter_days().take_while(|d| *d < next) {
            let di = (day - start).num_days() as u64;
            let rest = if part == Part::Full {
                others(di)
            } else {
                Vec::new()
            };
            let d = Day {
                day,
                planted: day == planted,
            };
            costs.push(d.buckets(book, rest, &mut usage, &mut rng)?);
        }
        let m = month.format("%Y-%m");
        for (endpoint, buckets) in usage {
            let name = format!("usage-{}-{m}.json", endpoint.replace('_', "-"));
            write_page(&dir.join(name), &page(buckets))?;
            files += 1;
        }
        write_page(&dir.join(format!("costs-{m}.json")), &page(costs))?;
        files += 1;
        month = next;
    }
    Ok(files)
}

/// One day of the organisation.
struct Day {
    day: NaiveDate,
    /// The day of the long-context surcharge (project 0, the first stream).
    planted: bool,
}

impl Day {
    /// Adds the day's usage buckets to `usage` (per endpoint) and returns its Costs bucket.
    fn buckets(
        &self,
        book: &PriceBook,
        rest: Vec<Other>,
        usage: &mut BTreeMap<&'static str, Vec<serde_json::Value>>,
        rng: &mut fastrand::Rng,
    ) -> Result<serde_json::Value> {
        let s = crate::model::day_start(self.day).timestamp();
        let bucket = |results| json!({"object": "bucket", "start_time": s, "end_time": s + 86_400, "results": results});
        let new_fields = self.day >= NaiveDate::from_ymd_opt(2026, 10, 1).expect("a date");
        let mut completions = Vec::new();
        let mut lines: BTreeMap<(usize, String), Decimal> = BTreeMap::new();
        for p in 0..PROJECTS.len() {
            for (st, stream) in STREAMS.iter().enumerate() {
                if (p + st) % 3 == 2 {
                    continue; // not every project uses every model
                }
                let c = completion(book, (self.day, new_fields), (p, st), rng)?;
                let mut cost = c.cost;
                if self.planted && p == 0 && st == 0 {
                    // Requests over 272K input tokens: the whole request at 2× input.
                    cost[0].1 *= Decimal::TWO;
                }
                for (kind, amount) in cost {
                    *lines
                        .entry((p, format!("{}, {kind}", stream.0)))
                        .or_default() += amount;
                }
                completions.push(c.result);
            }
        }
        usage
            .entry("completions")
            .or_default()
            .push(bucket(json!(completions)));
        for (endpoint, result, cost) in rest {
            let project = PROJECTS
                .iter()
                .position(|x| Some(x.0) == result["project_id"].as_str())
                .unwrap_or(0);
            if let Some((item, amount)) = cost {
                *lines.entry((project, item)).or_default() += amount;
            }
            usage
                .entry(endpoint)
                .or_default()
                .push(bucket(json!([result])));
        }
        let results: Vec<serde_json::Value> = lines
            .into_iter()
            .filter(|(_, a)| !a.is_zero())
            .map(|((p, item), amount)| json!({"object": "organization.costs.result", "amount": {"value": number(amount.round_dp(18)), "currency": "usd"}, "line_item": item, "project_id": PROJECTS[p].0, "organization_id": "org-synth"}))
            .collect();
        Ok(bucket(json!(results)))
    }
}

/// The project and project-key lists.
fn write_lists(dir: &Path) -> Result<()> {
    let projects: Vec<serde_json::Value> = PROJECTS
        .iter()
        .map(|(id, name)| json!({"object": "organization.project", "id": id, "name": name, "created_at": 1_735_689_600, "archived_at": null, "status": "active"}))
        .collect();
    write_list(&dir.join("projects.json"), projects)?;
    let keys: Vec<serde_json::Value> = (0..PROJECTS.len())
        .map(|p| json!({"object": "organization.project.api_key", "id": key_id(p), "name": KEY_NAMES[p], "redacted_value": format!("sk-proj-****{p:04}"), "created_at": 1_735_689_600, "last_used_at": null, "owner": {"type": "service_account", "service_account": {"id": format!("svc_{p}"), "name": "ci"}}}))
        .collect();
    write_list(&dir.join("project-api-keys.json"), keys)
}

fn write_list(path: &Path, data: Vec<serde_json::Value>) -> Result<()> {
    write_page(
        path,
        &json!({"object": "list", "data": data, "first_id": null, "last_id": null, "has_more": false}),
    )
}
