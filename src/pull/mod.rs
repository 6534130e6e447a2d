//! Pull: the providers' Admin APIs → raw pages in `landing/`, a window at a time, never half.
//!
//! Owns: where tonight's pull starts for each endpoint (the last complete day minus
//! `restate_days`, or earlier where a window failed: `pull_log`), fetching each window's pages
//! (following cursors; a cursor seen twice or more pages than the window can hold is an error,
//! a 410 restarts the window once) into a staging folder, and **promoting a window only when
//! every page of it arrived** (one directory rename into `landing/<provider>/<pull id>/
//! <format>/<window>/`), so ingest never sees a partial day; the `pull_log` rows.
//! Must not: parse pages into rows (ingest reads `landing/` like any export folder, through the
//! one ingest path), write the lake's other tables, or print. The admin key never leaves
//! `pull::http`.

pub mod http;
pub mod log;
pub mod plan;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::lake::{LANDING_DIR, LakeError, Layout, Writer};
use crate::model::BucketWidth;
use crate::vocab::Provider;
use http::{AdminKey, Api, FetchError, KeyOrigin, Retry};
use log::LogRow;
use plan::{Endpoint, Landing, Paging, Times};

/// What to pull from one provider (from `[providers.*]`, resolved by `settings`).
#[derive(Debug, Clone)]
pub struct ProviderPull {
    pub provider: Provider,
    pub base_url: String,
    pub key: KeyOrigin,
    /// The first day ever pulled; `None`: only with `--from`.
    pub since: Option<NaiveDate>,
    pub restate_days: u32,
    pub width: BucketWidth,
    pub analytics: bool,
    pub concurrency: usize,
    pub timeout: Duration,
    pub retry: Retry,
    pub keep_days: u32,
}

/// One pull: the providers, an explicit range (`--from`/`--to`, days, inclusive), and the
/// clock.
#[derive(Debug, Clone)]
pub struct PullRequest {
    pub providers: Vec<ProviderPull>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub now: DateTime<Utc>,
}

/// The Analytics API's data is not final for about 30 days (`provider-apis.md` §1).
pub const ANALYTICS_RESTATE_DAYS: u32 = 30;

/// The Analytics API's first day (`starting_at` ≥ 2026-01-01, `provider-apis.md` §3).
const ANALYTICS_FIRST_DAY: NaiveDate = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{provider}: {message}")]
    Setup { provider: String, message: String },
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
}

/// A window that did not land (named in the run's outcome, fetched again next night).
#[derive(Debug, Clone, Serialize)]
pub struct Incomplete {
    pub provider: Provider,
    pub endpoint: String,
    pub range: String,
    pub reason: String,
}

/// What a pull did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullOutcome {
    pub pull_id: String,
    pub windows: usize,
    pub landed: usize,
    pub requests: i64,
    pub retries: i64,
    pub pages: i64,
    pub bytes: i64,
    pub seconds: f64,
    pub incomplete: Vec<Incomplete>,
    /// Old pull folders removed from `landing/` (after `keep_days`).
    pub pruned: usize,
}

/// One unit of work: an endpoint's window (lists: the whole list).
struct Job {
    provider: usize,
    endpoint: Endpoint,
    window: (DateTime<Utc>, DateTime<Utc>),
    /// The folder under `<format>/` (a window's times, or a project id).
    folder: String,
}

/// Pulls every provider of `req` into `landing/`, and appends to `pull_log`.
pub fn pull(writer: &Writer, req: &PullRequest) -> Result<PullOutcome, PullError> {
    let started = std::time::Instant::now();
    let layout = writer.layout().clone();
    let pull_id = req.now.format("%Y%m%dT%H%M%S%.6fZ").to_string();
    let staging = layout.internal().join("pull-staging");
    // A killed pull's staging is garbage (we hold the writer's lock): nothing in it landed.
    let _ = std::fs::remove_dir_all(&staging);
    let landing = layout.root.join(LANDING_DIR);
    std::fs::create_dir_all(&landing).map_err(|source| PullError::Io {
        path: landing.clone(),
        source,
    })?;
    let mut rows = log::read(&layout)?;
    let mut out = PullOutcome {
        pull_id: pull_id.clone(),
        ..PullOutcome::default()
    };
    let mut apis = Vec::new();
    for p in &req.providers {
        let key = AdminKey::read(p.key.clone()).map_err(|m| setup(p, m))?;
        let extra: &[(&str, &str)] = match p.provider {
            Provider::Anthropic => &[("anthropic-version", "2023-06-01")],
            Provider::OpenAi => &[],
        };
        let auth = match p.provider {
            Provider::Anthropic => ("x-api-key", false),
            Provider::OpenAi => ("authorization", true),
        };
        apis.push(
            Api::new(&p.base_url, key, auth, extra, p.timeout, p.retry).map_err(|m| setup(p, m))?,
        );
    }
    let ctx = Ctx {
        req,
        apis: &apis,
        staging: &staging,
        landing: &landing,
        pull_id: &pull_id,
        dead: Mutex::new(vec![None; req.providers.len()]),
    };
    // Lists first (sequentially: OpenAI's project keys need the projects), then the windows.
    let (lists, windows) = jobs(req, &rows)?;
    let mut tonight = ctx.lists(lists, &layout.root);
    tonight.extend(ctx.run_all(windows, req));
    let _ = std::fs::remove_dir_all(&staging);
    for r in &tonight {
        out.count(r);
    }
    rows.extend(tonight);
    log::write(writer, &rows)?;
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

impl PullOutcome {
    fn count(&mut self, r: &LogRow) {
        self.windows += 1;
        self.requests += r.requests;
        self.retries += r.retries;
        self.pages += r.pages;
        self.bytes += r.bytes;
        if r.status == "complete" {
            self.landed += 1;
        } else {
            self.incomplete.push(Incomplete {
                provider: Provider::parse(&r.provider).unwrap_or(Provider::Anthropic),
                endpoint: r.endpoint.clone(),
                range: range_text(r.range_start, r.range_end),
                reason: r.error.clone().unwrap_or_default(),
            });
        }
    }
}

fn setup(p: &ProviderPull, message: String) -> PullError {
    PullError::Setup {
        provider: p.provider.as_str().to_string(),
        message,
    }
}

fn range_text(s: DateTime<Utc>, e: DateTime<Utc>) -> String {
    if s == e {
        return "the whole list".into();
    }
    format!(
        "{} – {}",
        s.format("%Y-%m-%dT%H:%MZ"),
        e.format("%Y-%m-%dT%H:%MZ")
    )
}

/// The lists and the windows of every provider's endpoints, tonight.
fn jobs(req: &PullRequest, rows: &[LogRow]) -> Result<(Vec<Job>, Vec<Job>), PullError> {
    let (mut lists, mut windows) = (Vec::new(), Vec::new());
    for (i, p) in req.providers.iter().enumerate() {
        let endpoints = match p.provider {
            Provider::Anthropic => plan::anthropic(p.width, p.analytics),
            Provider::OpenAi => plan::openai(p.width),
        };
        for ep in endpoints {
            if ep.times == Times::None {
                lists.push(Job {
                    provider: i,
                    folder: req.now.format("%Y%m%dT%H%M%SZ").to_string(),
                    endpoint: ep,
                    window: (req.now, req.now),
                });
                continue;
            }
            let (from, to) = range(req, p, &ep, rows)?;
            for w in plan::windows(from, to, ep.span) {
                windows.push(Job {
                    provider: i,
                    folder: format!(
                        "{}-{}",
                        w.0.format("%Y%m%dT%H%MZ"),
                        w.1.format("%Y%m%dT%H%MZ")
                    ),
                    endpoint: ep.clone(),
                    window: w,
                });
            }
        }
    }
    Ok((lists, windows))
}

/// `[from, to)` of one endpoint tonight: `--from`/`--to` when given; else from the last
/// complete day minus `restate_days` (30 for Analytics), or earlier where `pull_log` says an
/// earlier window never landed, never before `since`; to the last whole bucket before now.
fn range(
    req: &PullRequest,
    p: &ProviderPull,
    ep: &Endpoint,
    rows: &[LogRow],
) -> Result<(DateTime<Utc>, DateTime<Utc>), PullError> {
    let width = ep.buckets.map(|b| b.0).unwrap_or(p.width);
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let mut to = plan::floor(req.now, width);
    if let Some(t) = req.to {
        to = to.min(midnight(t + chrono::Days::new(1)));
    }
    let from = match (req.from, p.since) {
        (Some(f), _) => midnight(f),
        (None, Some(since)) => {
            let restate = if ep.landing == Landing::Query {
                p.restate_days.max(ANALYTICS_RESTATE_DAYS)
            } else {
                p.restate_days
            };
            let today = req.now.date_naive();
            let nightly = midnight(today - chrono::Days::new(1 + u64::from(restate)));
            let (prov, name) = (p.provider.as_str(), ep.name());
            let through = log::pulled_through(rows, prov, name, midnight(since));
            let failed = log::first_unfinished(rows, prov, name).unwrap_or(through);
            nightly.min(through).min(failed).max(midnight(since))
        }
        (None, None) => {
            return Err(setup(
                p,
                "no first day to pull from: set `since = \"YYYY-MM-DD\"` in its [providers.*] \
                 table, or pass --from"
                    .into(),
            ));
        }
    };
    // The Analytics API answers from 2026-01-01 and for the last 365 days only.
    let from = match ep.landing {
        Landing::Query => from
            .max(midnight(ANALYTICS_FIRST_DAY))
            .max(midnight(req.now.date_naive() - chrono::Days::new(364))),
        Landing::Pages => from,
    };
    Ok((from, to.max(from)))
}

/// The ids of the projects in a landed projects list.
fn project_ids(dir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let doc: serde_json::Value = std::fs::read(&f)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if let Some(data) = doc.get("data").and_then(|d| d.as_array()) {
            ids.extend(
                data.iter()
                    .filter_map(|p| p.get("id").and_then(|v| v.as_str()))
                    .map(str::to_string),
            );
        }
    }
    ids
}

/// What a window's fetch needs, shared by the workers.
struct Ctx<'a> {
    req: &'a PullRequest,
    apis: &'a [Api],
    staging: &'a Path,
    landing: &'a Path,
    pull_id: &'a str,
    /// A provider whose key was refused: its other jobs are not tried tonight.
    dead: Mutex<Vec<Option<String>>>,
}

/// The fields of a page that chain it to the next.
#[derive(serde::Deserialize)]
struct Chain {
    #[serde(default)]
    has_more: Option<bool>,
    #[serde(default)]
    next_page: Option<String>,
    #[serde(default)]
    last_id: Option<String>,
    #[serde(default)]
    data: Vec<serde::de::IgnoredAny>,
}

/// Counts of one window's fetch.
#[derive(Default)]
struct Tally {
    pages: i64,
    bytes: i64,
    requests: i64,
    retries: i64,
}

impl Ctx<'_> {
    /// The lists, one after another (OpenAI's project keys need the projects first).
    fn lists(&self, jobs: Vec<Job>, root: &Path) -> Vec<LogRow> {
        let mut rows = Vec::new();
        for job in jobs {
            let row = self.run(&job);
            if row.status == "complete"
                && job.endpoint.format == crate::model::SourceFormat::OpenAiProjects
            {
                let landed = root.join(row.landing_path.as_deref().unwrap_or(""));
                for id in project_ids(&landed) {
                    let keys = Job {
                        provider: job.provider,
                        endpoint: plan::openai_project_keys(&id),
                        window: job.window,
                        folder: id,
                    };
                    rows.push(self.run(&keys));
                }
            }
            rows.push(row);
        }
        rows
    }

    /// The windows, `concurrency` at a time (the smallest of the providers').
    fn run_all(&self, jobs: Vec<Job>, req: &PullRequest) -> Vec<LogRow> {
        let n = req
            .providers
            .iter()
            .map(|p| p.concurrency)
            .min()
            .unwrap_or(1)
            .clamp(1, 16);
        let next = AtomicUsize::new(0);
        let done = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..n.min(jobs.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        let row = self.run(job);
                        done.lock().expect("pull results").push((i, row));
                    }
                });
            }
        });
        let mut done = done.into_inner().expect("pull results");
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
    }

    /// Fetches one job into staging and promotes it; its `pull_log` row either way.
    fn run(&self, job: &Job) -> LogRow {
        let p = &self.req.providers[job.provider];
        let started_at = Utc::now();
        let rel = Path::new(p.provider.as_str())
            .join(self.pull_id)
            .join(job.endpoint.name())
            .join(&job.folder);
        let mut tally = Tally::default();
        let dead = self.dead.lock().expect("dead")[job.provider].clone();
        let result = match dead {
            Some(reason) => Err(format!("not tried: {reason}")),
            None => self.fetch(job, &self.staging.join(&rel), &mut tally),
        };
        let result = result.and_then(|hash| {
            promote(&self.staging.join(&rel), &self.landing.join(&rel)).map(|()| hash)
        });
        let (status, hash, error) = match result {
            Ok(h) => ("complete", Some(h), None),
            Err(e) => ("failed", None, Some(e)),
        };
        if let Some(e) = &error {
            tracing::warn!(target: "tokenledger::pull", provider = p.provider.as_str(), endpoint = job.endpoint.name(), range = %range_text(job.window.0, job.window.1), "window not pulled: {e}");
        }
        LogRow {
            pull_id: self.pull_id.to_string(),
            provider: p.provider.as_str().to_string(),
            endpoint: job.endpoint.name().to_string(),
            range_start: job.window.0,
            range_end: job.window.1,
            status: status.into(),
            pages: tally.pages,
            bytes: tally.bytes,
            requests: tally.requests,
            retries: tally.retries,
            content_hash: hash,
            landing_path: (status == "complete").then(|| {
                Path::new(LANDING_DIR)
                    .join(&rel)
                    .to_string_lossy()
                    .into_owned()
            }),
            error,
            started_at,
            finished_at: Utc::now(),
        }
    }

    /// Every page of one window into `dir` (a 410 restarts the window once); the BLAKE3 of
    /// its pages in order.
    fn fetch(&self, job: &Job, dir: &Path, tally: &mut Tally) -> Result<String, String> {
        let api = &self.apis[job.provider];
        let mut restarted = false;
        loop {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create staging: {e}"))?;
            match self.pages(api, job, dir, tally) {
                Ok(hash) => return Ok(hash),
                Err(FetchFail::Http(FetchError::Expired { .. })) if !restarted => {
                    restarted = true;
                    tracing::info!(target: "tokenledger::pull", endpoint = job.endpoint.name(), "cursor expired (410): restarting the window");
                }
                Err(FetchFail::Http(e)) => {
                    if let FetchError::Auth { .. } = e {
                        self.dead.lock().expect("dead")[job.provider] = Some(e.to_string());
                    }
                    return Err(e.to_string());
                }
                Err(FetchFail::Other(m)) => return Err(m),
            }
        }
    }

    fn pages(
        &self,
        api: &Api,
        job: &Job,
        dir: &Path,
        tally: &mut Tally,
    ) -> Result<String, FetchFail> {
        let ep = &job.endpoint;
        let max = ep.max_pages(job.window);
        let mut hasher = blake3::Hasher::new();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        let mut files = Vec::new();
        let mut n = 0usize;
        loop {
            let mut q = ep.query.clone();
            q.extend(ep.range_query(job.window));
            if let Some(c) = &cursor {
                let name = match ep.paging {
                    Paging::NextPage => "page",
                    Paging::LastId(p) => p,
                };
                q.push((name.into(), c.clone()));
            }
            let f = api.get(&ep.path, &q, ep.beta).map_err(FetchFail::Http)?;
            tally.requests += i64::from(f.attempts);
            tally.retries += i64::from(f.attempts - 1);
            tally.pages += 1;
            n += 1;
            tally.bytes += f.body.len() as i64;
            hasher.update(&f.body);
            let chain: Chain = serde_json::from_slice(&f.body).map_err(|e| {
                FetchFail::Other(format!("page {}: not a page of this API: {e}", n))
            })?;
            // An empty list (a project without keys) says nothing to upsert, and nothing in it
            // tells which list it is: not landed.
            let file = dir.join(format!("p{n:05}.json"));
            if !(matches!(ep.paging, Paging::LastId(_)) && chain.data.is_empty()) {
                write_synced(&file, &f.body).map_err(FetchFail::Other)?;
                files.push(file);
            }
            let next = match (ep.paging, chain.has_more) {
                (_, Some(false) | None) => None,
                (Paging::NextPage, Some(true)) => chain.next_page,
                (Paging::LastId(_), Some(true)) => chain.last_id,
            };
            let Some(next) = next else { break };
            if !seen.insert(next.clone()) {
                return Err(FetchFail::Other(format!(
                    "the API sent the same cursor twice after {n} page(s): a loop, not followed"
                )));
            }
            if n >= max {
                return Err(FetchFail::Other(format!(
                    "more than {max} page(s) for a window that holds at most {max}: not followed"
                )));
            }
            cursor = Some(next);
        }
        if ep.landing == Landing::Query {
            self.envelope(job, dir, &files)?;
        }
        Ok(hasher.finalize().to_hex().to_string())
    }

    /// The Analytics query file: the query beside its pages, byte for byte.
    fn envelope(&self, job: &Job, dir: &Path, files: &[PathBuf]) -> Result<(), FetchFail> {
        let ep = &job.endpoint;
        let get = |k: &str| {
            ep.query
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        let query = serde_json::json!({
            "endpoint": ep.path,
            "starting_at": job.window.0.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "ending_at": job.window.1.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "time_bucket_width": get("time_bucket_width"),
            "group_by": ep.query.iter().filter(|(n, _)| n == "group_by[]").map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            "order_by": get("order_by"),
            "order": get("order"),
            "filters": {},
            "limit": get("limit").and_then(|l| l.parse::<u64>().ok()),
        });
        let mut text = format!("{{\"tokenledger_query\":{query},\"pages\":[").into_bytes();
        for (i, f) in files.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            text.extend(std::fs::read(f).map_err(|e| FetchFail::Other(format!("staging: {e}")))?);
            let _ = std::fs::remove_file(f);
        }
        text.extend_from_slice(b"]}\n");
        write_synced(&dir.join("query.json"), &text).map_err(FetchFail::Other)
    }
}

enum FetchFail {
    Http(FetchError),
    Other(String),
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut f =
        std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Moves a whole staged window into `landing/` with one rename.
fn promote(staged: &Path, landed: &Path) -> Result<(), String> {
    let parent = landed.parent().expect("landing path has a parent");
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    std::fs::rename(staged, landed)
        .map_err(|e| format!("cannot move the window into {}: {e}", landed.display()))
}

/// Removes pull folders (`landing/<provider>/<pull id>/`) older than `keep_days`: call only
/// after an ingest of `landing/` succeeded, so everything removed is in the lake.
pub fn prune(layout: &Layout, providers: &[ProviderPull], now: DateTime<Utc>) -> usize {
    let mut n = 0;
    for p in providers {
        let dir = layout.root.join(LANDING_DIR).join(p.provider.as_str());
        let cutoff = (now - chrono::Days::new(u64::from(p.keep_days)))
            .format("%Y%m%dT%H%M%S")
            .to_string();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            // Pull ids are UTC timestamps: text order is time order.
            if name.len() >= 15
                && name[..15] < cutoff[..]
                && std::fs::remove_dir_all(e.path()).is_ok()
            {
                n += 1;
            }
        }
    }
    n
}
