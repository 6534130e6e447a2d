//! A synthetic minute series for rate-limit headroom: Usage & Cost Analytics API usage queries
//! (`time_bucket_width` `1m`, one query file of 24 hours each, the API's longest `1m` range;
//! or the same tokens in `1h` buckets), several workspaces × keys × models per minute with a
//! daily rhythm, and planted minutes. It also returns the organisation's true per-minute sums,
//! so a test checks tokenledger against the generator, not against itself.
//!
//! Must not: write to the lake.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::json;

/// What a minute of one row counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub input: u64,
    pub output: u64,
    pub requests: u64,
}

/// The series to write.
#[derive(Debug, Clone)]
pub struct MinutePlan {
    pub start: NaiveDate,
    pub days: u32,
    /// (workspace id — empty: the default workspace, sent as null — and the keys in it).
    pub workspaces: Vec<(String, usize)>,
    /// (model, mean input tokens per minute of one row at the day's peak).
    pub models: Vec<(String, u64)>,
    /// Extra counts on the first workspace's first key: (model, minute) → counts.
    pub planted: BTreeMap<(String, DateTime<Utc>), Counts>,
    /// `1m` or `1h` (the same tokens, summed per hour).
    pub width: &'static str,
    pub seed: u64,
}

/// The organisation's true sums: (model, minute) → counts.
pub type Truth = BTreeMap<(String, DateTime<Utc>), Counts>;

/// A small deterministic mixer (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One row's counts in one minute: the day's rhythm (quiet at night, busy 09:00–18:00 UTC) and
/// ±25 % jitter, in integers.
fn counts(plan: &MinutePlan, base: u64, minute: i64, row: u64) -> Counts {
    let hour = (minute / 60).rem_euclid(24);
    let rhythm = if (9..18).contains(&hour) { 100 } else { 30 };
    let jitter = 75 + mix(plan.seed ^ (minute as u64) << 16 ^ row) % 51;
    let input = base * rhythm / 100 * jitter / 100;
    Counts {
        input,
        output: input / 5,
        requests: (input / 4000).max(1),
    }
}

fn item(
    (start, width): (DateTime<Utc>, TimeDelta),
    ws: &str,
    key: &str,
    model: &str,
    c: Counts,
) -> serde_json::Value {
    let ts = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    json!({
        "starting_at": ts(start),
        "ending_at": ts(start + width),
        // An empty id stands for the default workspace as the legacy reports send it: null.
        "group": {"workspace_id": if ws.is_empty() { serde_json::Value::Null } else { json!(ws) },
                  "api_key_id": key, "model": model},
        "usage": {
            "uncached_input_tokens": c.input,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "cache_read_input_tokens": c.input / 2,
            "output_tokens": c.output,
            "server_tool_use": {"web_search_requests": 0},
            "total_tokens": c.input + c.input / 2 + c.output,
            "requests": c.requests
        }
    })
}

/// The items as pages of at most 1,000 rows, the last with `has_more: false`.
fn pages(data: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    let n = data.len().div_ceil(1000).max(1);
    let mut it = data.into_iter();
    (0..n)
        .map(|i| {
            let chunk: Vec<serde_json::Value> = it.by_ref().take(1000).collect();
            let last = i + 1 == n;
            json!({"data": chunk, "has_more": !last,
                   "next_page": if last { serde_json::Value::Null } else { json!(format!("page_{}", i + 1)) }})
        })
        .collect()
}

/// Writes one query file per day into `dir`; returns the files and the true per-minute sums.
pub fn write(plan: &MinutePlan, dir: &Path) -> Result<(Vec<PathBuf>, Truth)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut truth = Truth::new();
    let mut files = Vec::new();
    let minute = TimeDelta::minutes(1);
    let bucket = if plan.width == "1h" {
        TimeDelta::hours(1)
    } else {
        minute
    };
    for d in 0..plan.days {
        let day = plan.start + TimeDelta::days(i64::from(d));
        let t0 = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        // (bucket start, workspace, key, model) → counts.
        let mut rows: BTreeMap<(DateTime<Utc>, usize, usize, usize), Counts> = BTreeMap::new();
        for m in 0..1440i64 {
            let at = t0 + minute * m as i32;
            let b = at - TimeDelta::seconds(at.timestamp().rem_euclid(bucket.num_seconds()));
            let abs = at.timestamp() / 60;
            let mut row = 0u64;
            for (w, (_, keys)) in plan.workspaces.iter().enumerate() {
                for k in 0..*keys {
                    for (mi, (model, base)) in plan.models.iter().enumerate() {
                        row += 1;
                        let mut c = counts(plan, *base, abs, row);
                        if w == 0 && k == 0 {
                            let p = plan.planted.get(&(model.clone(), at)).copied();
                            let p = p.unwrap_or_default();
                            c.input += p.input;
                            c.output += p.output;
                            c.requests += p.requests;
                        }
                        let t = truth.entry((model.clone(), at)).or_default();
                        t.input += c.input;
                        t.output += c.output;
                        t.requests += c.requests;
                        let r = rows.entry((b, w, k, mi)).or_default();
                        r.input += c.input;
                        r.output += c.output;
                        r.requests += c.requests;
                    }
                }
            }
        }
        let data: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|((b, w, k, mi), c)| {
                let ws = &plan.workspaces[w].0;
                let key = format!("apikey_{ws}_{k}");
                item((b, bucket), ws, &key, &plan.models[mi].0, c)
            })
            .collect();
        let end = t0 + TimeDelta::days(1);
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let query = json!({
            "endpoint": "/v1/organizations/analytics/usage",
            "starting_at": fmt(t0),
            "ending_at": fmt(end),
            "time_bucket_width": plan.width,
            "group_by": ["workspace_id", "api_key_id", "model"],
            "order_by": "time",
            "order": "asc",
            "filters": {},
            "limit": 1000
        });
        let path = dir.join(format!("analytics-usage-{}-{day}.json", plan.width));
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?,
        );
        // The query first, as `tokenledger pull` writes it (format detection reads the head).
        f.write_all(b"{\"tokenledger_query\":")?;
        serde_json::to_writer(&mut f, &query)?;
        f.write_all(b",\"pages\":")?;
        serde_json::to_writer(&mut f, &pages(data))?;
        f.write_all(b"}")?;
        f.flush()?;
        files.push(path);
    }
    Ok((files, truth))
}

/// `tokenledger synth --analytics-minutes`: the months of `a` as daily minute queries, with one
/// planted near-limit Sonnet minute on the 15th at 14:07 UTC.
pub fn generate(a: &super::SynthOptions) -> Result<String> {
    let first = NaiveDate::parse_from_str(&format!("{}-01", a.start), "%Y-%m-%d")
        .with_context(|| format!("--start {}", a.start))?;
    let end = first
        .checked_add_months(chrono::Months::new(a.months))
        .context("--months")?;
    let width = match a.width.as_str() {
        "1h" => "1h",
        _ => "1m",
    };
    let planted = (first + TimeDelta::days(14))
        .and_hms_opt(14, 7, 0)
        .unwrap_or_default()
        .and_utc();
    let plan = MinutePlan {
        start: first,
        days: (end - first).num_days() as u32,
        workspaces: (0..a.workspaces.max(1))
            .map(|w| (format!("wrkspc_minutes{w:02}"), a.keys_per_workspace.max(1)))
            .collect(),
        models: vec![
            ("claude-sonnet-4-6".into(), 20_000),
            ("claude-haiku-4-5-20251001".into(), 30_000),
            ("claude-opus-4-7".into(), 10_000),
        ],
        planted: BTreeMap::from([(
            ("claude-sonnet-4-6".to_string(), planted),
            Counts {
                input: 1_600_000,
                output: 0,
                requests: 0,
            },
        )]),
        width,
        seed: a.seed,
    };
    let (files, _) = write(&plan, &a.out)?;
    let rows = u64::from(plan.days)
        * if width == "1h" { 24 } else { 1440 }
        * plan.workspaces.len() as u64
        * a.keys_per_workspace.max(1) as u64
        * plan.models.len() as u64;
    Ok(format!(
        "wrote {} Analytics usage queries ({width} buckets, {rows} rows) to {}",
        files.len(),
        a.out.display()
    ))
}
