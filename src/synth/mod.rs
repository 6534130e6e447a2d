//! Synthetic exports: a whole organisation's Admin API usage pages, workspace and key lists,
//! and Console CSVs, deterministic for a seed. Tests, the demo and the benchmark use it.
//!
//! Owns: generating realistic-shaped provider files (several workspaces and keys, current and
//! retired models, batch, long context, `us` geo, web search, Console usage without a key,
//! weekly and daily seasonality). Must not: write to the lake. Integer arithmetic only: the
//! token counts it invents are exact, like real ones.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::{Datelike, NaiveDate, TimeDelta, Timelike};
use serde::Serialize;

use crate::model::{BucketWidth, day_start};

mod cost;
mod inject;
mod ledger;
pub mod minutes;
pub mod openai;
use cost::write_cost_report;
pub use inject::{Injection, labels_path};

/// What to generate (`tokenledger synth` fills it from its flags).
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Output directory (created; existing files of the same names are overwritten).
    pub out: PathBuf,
    pub seed: u64,
    /// First month (YYYY-MM).
    pub start: String,
    pub months: u32,
    /// Bucket width of the usage pages: 1m, 1h or 1d.
    pub width: String,
    /// Named workspaces (the default workspace comes on top).
    pub workspaces: usize,
    pub keys_per_workspace: usize,
    /// Average result rows per bucket on a weekday at peak.
    pub rows_per_bucket: usize,
    /// Buckets per page file (default: the API's maximum `limit` for the width).
    pub page_buckets: Option<usize>,
    /// Also write the same usage as Console CSVs (daily, names instead of IDs).
    pub console_csv: bool,
    /// Do not write the provider's cost report (written by default, at list prices).
    pub no_cost_report: bool,
    /// Anomalies and traps to inject (labels in `labels.csv`).
    pub anomalies: Injection,
    /// Also an OpenAI organisation (`openai/`: projects, keys, Usage API pages, the Costs
    /// API), daily, over the same months.
    pub openai: openai::Part,
    /// Instead: a minute series for rate-limit headroom (`minutes`), Analytics API usage
    /// queries in `width` buckets (`1m` or `1h`), one per day of the months.
    pub analytics_minutes: bool,
}

const WORKSPACE_NAMES: &[&str] = &[
    "Search",
    "Support Bot",
    "Data Platform",
    "Growth",
    "Research",
    "Billing",
    "Legal AI",
    "Mobile",
    "Ops",
    "Sales Assist",
];
const KEY_ROLES: &[&str] = &["prod", "staging", "batch", "eval", "dev"];
const MODELS: &[&str] = &[
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-5-20251101",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-6",
    "claude-opus-4-6",
    "claude-3-5-haiku-20241022",
];
/// Per-mille activity by hour of day (UTC): quiet nights, busy afternoons.
const HOUR_PERMILLE: [u64; 24] = [
    350, 300, 280, 280, 300, 380, 500, 650, 800, 900, 950, 1000, 1000, 1000, 980, 950, 900, 850,
    750, 650, 550, 480, 420, 380,
];
/// Per-mille activity by weekday, Monday first.
const WEEKDAY_PERMILLE: [u64; 7] = [1000, 1000, 980, 960, 900, 450, 350];

const ID_CHARS: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn id(rng: &mut fastrand::Rng, prefix: &str) -> String {
    let mut s = String::from(prefix);
    s.push_str("01");
    for _ in 0..22 {
        s.push(ID_CHARS[rng.usize(..ID_CHARS.len())] as char);
    }
    s
}

#[derive(Serialize)]
struct Ws<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    created_at: &'a str,
    archived_at: Option<&'a str>,
    display_color: &'a str,
}

#[derive(Serialize)]
struct CreatedBy<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: Actor,
}

/// Who created an API key (the Admin API's `created_by.type`).
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Actor {
    User,
}

#[derive(Serialize)]
struct Key<'a> {
    id: &'a str,
    name: &'a str,
    workspace_id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    created_at: &'a str,
    created_by: CreatedBy<'a>,
    partial_key_hint: String,
    status: &'static str,
}

#[derive(Serialize)]
struct ListResp<T> {
    data: Vec<T>,
    has_more: bool,
    first_id: Option<String>,
    last_id: Option<String>,
}

#[derive(Serialize)]
struct CacheCreation {
    ephemeral_1h_input_tokens: u64,
    ephemeral_5m_input_tokens: u64,
}

#[derive(Serialize)]
struct ServerToolUse {
    web_search_requests: u64,
}

#[derive(Serialize)]
struct UsageResult<'a> {
    api_key_id: Option<&'a str>,
    workspace_id: Option<&'a str>,
    model: &'a str,
    service_tier: &'a str,
    context_window: &'a str,
    inference_geo: &'a str,
    uncached_input_tokens: u64,
    cache_creation: CacheCreation,
    cache_read_input_tokens: u64,
    output_tokens: u64,
    server_tool_use: ServerToolUse,
}

#[derive(Serialize)]
struct BucketOut<'a> {
    starting_at: String,
    ending_at: String,
    results: Vec<UsageResult<'a>>,
}

#[derive(Serialize)]
struct Page<'a> {
    data: Vec<BucketOut<'a>>,
    has_more: bool,
    next_page: Option<String>,
}

/// One stream of usage: a key (or Console) × model × tier × context × geo.
struct Stream {
    workspace: Option<usize>,
    key: Option<usize>,
    model: &'static str,
    tier: &'static str,
    context: &'static str,
    geo: &'static str,
    /// Uncached input tokens per minute at full activity.
    base: u64,
    web_search: bool,
    /// Injected changes of volume (anomalies and traps, `synth --anomalies`).
    effects: Vec<inject::Effect>,
}

pub struct Org {
    workspaces: Vec<(String, String)>,
    keys: Vec<(String, String, Option<usize>)>,
    streams: Vec<Stream>,
}

fn build_org(a: &SynthOptions, rng: &mut fastrand::Rng) -> Org {
    let workspaces = workspaces(a.workspaces, rng);
    let keys = keys(&workspaces, a.keys_per_workspace, rng);
    let n_streams = (a.rows_per_bucket * 10).div_ceil(8).max(1);
    let streams = (0..n_streams).map(|i| stream(i, &keys, rng)).collect();
    Org {
        workspaces,
        keys,
        streams: merge_streams(streams),
    }
}

/// `n` named workspaces: (id, name).
fn workspaces(n: usize, rng: &mut fastrand::Rng) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let base = WORKSPACE_NAMES[i % WORKSPACE_NAMES.len()];
            let name = if i < WORKSPACE_NAMES.len() {
                base.to_string()
            } else {
                format!("{base} {}", i / WORKSPACE_NAMES.len() + 1)
            };
            (id(rng, "wrkspc_"), name)
        })
        .collect()
}

/// One key in the default workspace, `per_workspace` in each named one: (id, name, workspace).
fn keys(
    workspaces: &[(String, String)],
    per_workspace: usize,
    rng: &mut fastrand::Rng,
) -> Vec<(String, String, Option<usize>)> {
    let mut keys = Vec::new();
    for w in std::iter::once(None).chain((0..workspaces.len()).map(Some)) {
        let slug = match w {
            Some(i) => workspaces[i].1.to_lowercase().replace(' ', "-"),
            None => "default".into(),
        };
        let n = if w.is_none() { 1 } else { per_workspace };
        for k in 0..n {
            let role = KEY_ROLES[k % KEY_ROLES.len()];
            let name = if k >= KEY_ROLES.len() {
                format!("{role}-{slug}-{k}")
            } else {
                format!("{role}-{slug}")
            };
            keys.push((id(rng, "apikey_"), name, w));
        }
    }
    keys
}

/// Stream `i`. Every organisation has batch, priority, long-context and `us` usage: the mix is
/// structural (by stream index), the magnitudes are random. Console usage (no key, default
/// workspace) is one stream in twelve.
fn stream(i: usize, keys: &[(String, String, Option<usize>)], rng: &mut fastrand::Rng) -> Stream {
    let key = if i % 12 == 5 {
        None
    } else {
        Some(rng.usize(..keys.len()))
    };
    let mut model = MODELS[rng.usize(..MODELS.len())];
    let tier = if i % 6 == 1 {
        "batch"
    } else if i % 9 == 4 {
        "priority"
    } else {
        "standard"
    };
    let context = if i % 8 == 2 {
        model = "claude-sonnet-4-5-20250929";
        "200k-1M"
    } else {
        "0-200k"
    };
    let geo = if i % 5 == 3 {
        model = if i.is_multiple_of(2) {
            "claude-opus-4-6"
        } else {
            "claude-sonnet-4-6"
        };
        "us"
    } else {
        "global"
    };
    Stream {
        workspace: key.and_then(|k| keys[k].2),
        key,
        model,
        tier,
        context,
        geo,
        base: 200 + rng.u64(..20_000),
        web_search: rng.u32(..100) < 15,
        effects: Vec::new(),
    }
}

/// The provider sends one row per combination of dimensions in a bucket: streams with the
/// same dimensions are one stream (their volumes added), never two rows of one bucket.
fn merge_streams(streams: Vec<Stream>) -> Vec<Stream> {
    let mut merged: Vec<Stream> = Vec::with_capacity(streams.len());
    let mut index = std::collections::HashMap::new();
    for s in streams {
        let dims = (s.workspace, s.key, s.model, s.tier, s.context, s.geo);
        match index.get(&dims) {
            Some(&i) => {
                let m: &mut Stream = &mut merged[i];
                m.base += s.base;
                m.web_search |= s.web_search;
            }
            None => {
                index.insert(dims, merged.len());
                merged.push(s);
            }
        }
    }
    merged
}

/// Writes the synthetic exports; returns a one-paragraph report of what was written.
pub fn generate(a: &SynthOptions) -> Result<String> {
    if a.analytics_minutes {
        return minutes::generate(a);
    }
    let (width, start, end) = span(a)?;
    let mut rng = fastrand::Rng::with_seed(a.seed);
    let mut org = build_org(a, &mut rng);
    let labels = inject::inject(&mut org, a.anomalies, (start, end), &mut rng);
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    write_lists(a, &org)?;
    if a.anomalies != Injection::None {
        inject::write_labels(a, &org, &labels)?;
    }
    let usage = write_usage(a, &org, width, (start, end), &mut rng)?;
    // The provider's cost report: daily, grouped by workspace and description, at list prices
    // (the embedded price book), without Priority Tier (the provider omits it), plus a
    // code-execution charge that only the cost report has.
    let (mut cost_pages, mut invoices) = (0, 0);
    if !a.no_cost_report {
        let charges = write_cost_report(a, &org, &usage.daily, &mut rng)?;
        cost_pages = charges.len();
        invoices = ledger::write_invoices(a, &charges)?;
    }
    ledger::write_credits(a, start, end)?;
    let openai_files = if a.openai != openai::Part::None {
        let book = crate::pricing::PriceBook::load(&[])?;
        openai::write(&a.out, (a.seed, a.openai), (start, end), &book)?
    } else {
        0
    };
    let csvs = if a.console_csv {
        write_console_csvs(a, &org, &usage.daily)?
    } else {
        0
    };
    let mut extras = String::new();
    if csvs > 0 {
        extras.push_str(&format!(", {csvs} Console CSV(s)"));
    }
    if cost_pages > 0 {
        extras.push_str(&format!(
            ", {cost_pages} cost report page(s), {invoices} invoice(s)"
        ));
    }
    extras.push_str(", credits.csv");
    if openai_files > 0 {
        extras.push_str(&format!(
            ", an OpenAI organisation ({openai_files} files in openai/)"
        ));
    }
    Ok(format!(
        "wrote {} workspaces, {} keys, {} usage rows in {} page(s) of {} buckets ({:.1} MiB){extras} to {}",
        org.workspaces.len(),
        org.keys.len(),
        usage.rows,
        usage.pages,
        width.as_str(),
        usage.bytes as f64 / 1048576.0,
        a.out.display()
    ))
}

/// The bucket width and the [start, end) of the months to generate.
fn span(a: &SynthOptions) -> Result<(BucketWidth, NaiveDate, NaiveDate)> {
    let width = BucketWidth::parse(&a.width)
        .with_context(|| format!("--width {:?}: use 1m, 1h or 1d", a.width))?;
    if a.months == 0 || a.months > 120 {
        bail!("--months must be between 1 and 120");
    }
    let start =
        NaiveDate::parse_from_str(&format!("{}-01", a.start), "%Y-%m-%d").context("--start")?;
    let mut end = start;
    for _ in 0..a.months {
        end = end
            .checked_add_months(chrono::Months::new(1))
            .context("date overflow")?;
    }
    Ok((width, start, end))
}

/// The workspace and API-key lists.
fn write_lists(a: &SynthOptions, org: &Org) -> Result<()> {
    let created = "2025-06-01T10:00:00Z";
    let ws: Vec<Ws> = org
        .workspaces
        .iter()
        .enumerate()
        .map(|(i, (id, name))| Ws {
            id,
            name,
            kind: "workspace",
            created_at: created,
            archived_at: None,
            display_color: ["#6C5BB9", "#D97757", "#2E8B57", "#1F6FEB"][i % 4],
        })
        .collect();
    write_list(&a.out.join("workspaces.json"), ws, |w| w.id)?;
    let keys: Vec<Key> = org
        .keys
        .iter()
        .map(|(id, name, w)| Key {
            id,
            name,
            workspace_id: w.map(|i| org.workspaces[i].0.as_str()),
            kind: "api_key",
            created_at: created,
            created_by: CreatedBy {
                id: "user_01WCz1FkmYMm4gnmykNKUu3Q",
                kind: Actor::User,
            },
            partial_key_hint: format!("sk-ant-api03-{}...{}", &id[7..10], &id[id.len() - 4..]),
            status: "active",
        })
        .collect();
    write_list(&a.out.join("api_keys.json"), keys, |k| k.id)?;
    Ok(())
}

/// One page of an Admin API list endpoint holding all of `data`.
fn write_list<T: Serialize>(
    path: &std::path::Path,
    data: Vec<T>,
    id: impl Fn(&T) -> &str,
) -> Result<u64> {
    let page = ListResp {
        first_id: data.first().map(|x| id(x).to_string()),
        last_id: data.last().map(|x| id(x).to_string()),
        data,
        has_more: false,
    };
    write_json(path, &page)
}

/// Daily per (day, stream) totals (the Console CSV and the cost report are built from them).
type Daily = std::collections::BTreeMap<(NaiveDate, usize), [u64; 6]>;

/// What the usage pages hold.
struct UsageWritten {
    pages: u64,
    rows: u64,
    bytes: u64,
    daily: Daily,
}

/// The result rows of one bucket starting at `t`, with weekly and daily seasonality.
fn bucket_results<'o>(
    org: &'o Org,
    t: chrono::DateTime<chrono::Utc>,
    width: BucketWidth,
    rng: &mut fastrand::Rng,
    written: &mut UsageWritten,
) -> Vec<UsageResult<'o>> {
    let minutes = (width.seconds() / 60) as u64;
    let (daily, rows) = (&mut written.daily, &mut written.rows);
    let wd = WEEKDAY_PERMILLE[t.weekday().num_days_from_monday() as usize];
    let hour = if width == BucketWidth::Day {
        750
    } else {
        HOUR_PERMILLE[t.hour() as usize]
    };
    let activity = wd * hour / 1000; // per mille
    let mut results = Vec::new();
    for (si, s) in org.streams.iter().enumerate() {
        let Some((effect, forced)) = inject::factor(&s.effects, t) else {
            continue;
        };
        if !forced && rng.u64(..1000) >= activity.min(1000) * 8 / 10 {
            continue;
        }
        let jitter = 500 + rng.u64(..1000); // 0.5×–1.5×, per mille
        let uncached =
            s.base * minutes * activity / 1000 * jitter / 1000 * effect / 1000 + rng.u64(..50);
        let cw5 = if rng.u32(..100) < 70 {
            uncached / 8 + rng.u64(..100)
        } else {
            0
        };
        let cw1 = if rng.u32(..100) < 20 {
            uncached / 20
        } else {
            0
        };
        let read = if cw5 + cw1 > 0 {
            uncached * 3 + rng.u64(..500)
        } else {
            0
        };
        let output = uncached / 4 + rng.u64(..200);
        let web = if s.web_search {
            rng.u64(..(minutes.min(60) + 3))
        } else {
            0
        };
        *rows += 1;
        let d = daily.entry((t.date_naive(), si)).or_default();
        for (acc, v) in d.iter_mut().zip([uncached, cw5, cw1, read, output, web]) {
            *acc += v;
        }
        results.push(UsageResult {
            api_key_id: s.key.map(|k| org.keys[k].0.as_str()),
            workspace_id: s.workspace.map(|w| org.workspaces[w].0.as_str()),
            model: s.model,
            service_tier: s.tier,
            context_window: s.context,
            inference_geo: s.geo,
            uncached_input_tokens: uncached,
            cache_creation: CacheCreation {
                ephemeral_1h_input_tokens: cw1,
                ephemeral_5m_input_tokens: cw5,
            },
            cache_read_input_tokens: read,
            output_tokens: output,
            server_tool_use: ServerToolUse {
                web_search_requests: web,
            },
        });
    }
    results
}

/// The usage report pages, `page_buckets` buckets each.
fn write_usage(
    a: &SynthOptions,
    org: &Org,
    width: BucketWidth,
    (start, end): (NaiveDate, NaiveDate),
    rng: &mut fastrand::Rng,
) -> Result<UsageWritten> {
    let page_buckets = a.page_buckets.unwrap_or(match width {
        BucketWidth::Minute => 1440,
        BucketWidth::Hour => 168,
        BucketWidth::Day => 31,
    });
    let usage_dir = a.out.join("usage");
    std::fs::create_dir_all(&usage_dir)?;
    let step = TimeDelta::seconds(width.seconds());
    let (mut t, stop) = (day_start(start), day_start(end));
    let mut w = UsageWritten {
        pages: 0,
        rows: 0,
        bytes: 0,
        daily: Default::default(),
    };
    while t < stop {
        let mut buckets = Vec::with_capacity(page_buckets);
        for _ in 0..page_buckets {
            if t >= stop {
                break;
            }
            let results = bucket_results(org, t, width, rng, &mut w);
            buckets.push(BucketOut {
                starting_at: rfc(t),
                ending_at: rfc(t + step),
                results,
            });
            t += step;
        }
        let has_more = t < stop;
        let first = buckets
            .first()
            .map(|b| b.starting_at.clone())
            .unwrap_or_default();
        let page = Page {
            data: buckets,
            has_more,
            next_page: has_more.then(|| format!("page_{}", hex(&rfc(t)))),
        };
        let path = usage_dir.join(format!(
            "usage-{}-{}.json",
            width.as_str(),
            first.replace(':', "")
        ));
        w.bytes += write_json(&path, &page)?;
        w.pages += 1;
    }
    Ok(w)
}

/// Console CSVs, one per month, newer header; returns how many.
fn write_console_csvs(a: &SynthOptions, org: &Org, daily: &Daily) -> Result<usize> {
    let mut csvs = 0;
    let dir = a.out.join("console");
    std::fs::create_dir_all(&dir)?;
    let mut by_month: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for ((day, si), v) in daily {
        let s = &org.streams[*si];
        let ws = s
            .workspace
            .map_or("Default", |w| org.workspaces[w].1.as_str());
        let key = s.key.map_or("", |k| org.keys[k].1.as_str());
        let ctx = if s.context == "0-200k" {
            "≤ 200k"
        } else {
            "> 200k"
        };
        by_month
            .entry(day.format("%Y-%m").to_string())
            .or_default()
            .push(format!(
                "{day},{},{key},{ws},{},{ctx},{},{},{},{},{},{},{},",
                s.model, s.tier, v[0], v[1], v[2], v[3], v[4], v[5], s.geo
            ));
    }
    for (m, lines) in by_month {
        let p = dir.join(format!("console-usage-{m}.csv"));
        let mut f = BufWriter::new(std::fs::File::create(&p)?);
        f.write_all(b"\xEF\xBB\xBFusage_date_utc,model_version,api_key,workspace,usage_type,context_window,usage_input_tokens_no_cache,usage_input_tokens_cache_write_5m,usage_input_tokens_cache_write_1h,usage_input_tokens_cache_read,usage_output_tokens,web_search_count,inference_geo,speed\r\n")?;
        for l in lines {
            f.write_all(l.as_bytes())?;
            f.write_all(b"\r\n")?;
        }
        f.flush()?;
        csvs += 1;
    }
    Ok(csvs)
}

fn rfc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn write_json<T: Serialize>(path: &std::path::Path, v: &T) -> Result<u64> {
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    serde_json::to_writer(&mut w, v)?;
    w.flush()?;
    Ok(w.get_ref().metadata().map(|m| m.len()).unwrap_or(0))
}

/// Exposed for tests: the organisation a seed produces.
pub fn org_for(a: &SynthOptions) -> Org {
    build_org(a, &mut fastrand::Rng::with_seed(a.seed))
}

impl Org {
    pub fn workspace_count(&self) -> usize {
        self.workspaces.len()
    }
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}
