//! `tokenledger pull`, and the pull stage of the nightly run: fetch into `landing/`, then the
//! one ingest path over it, under one writer (no other run lands or ingests in between).

use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::{RunError, ingest_plan};
use crate::ingest::{self, IngestSummary};
use crate::lake::{Snapshot, Writer};
use crate::pull::{ProviderPull, PullError, PullOutcome, PullRequest};
use crate::settings::Settings;
use crate::vocab::{Provider, Review};

/// What `tokenledger pull` did: the fetch, and the ingest of what landed.
#[derive(Debug, Serialize)]
pub struct PullRun {
    pub pull: PullOutcome,
    pub ingest: IngestSummary,
}

impl PullRun {
    pub fn reviews(&self) -> Vec<Review> {
        let mut out = pull_reviews(&self.pull);
        out.extend(super::ingest_reviews(&self.ingest));
        out
    }
}

/// A window that did not land is a review (exit 3): it is fetched again next night.
pub fn pull_reviews(p: &PullOutcome) -> Vec<Review> {
    p.incomplete
        .iter()
        .map(|i| Review::PullIncomplete {
            provider: i.provider,
            endpoint: i.endpoint.clone(),
            range: i.range.clone(),
            reason: i.reason.clone(),
        })
        .collect()
}

impl From<PullError> for RunError {
    fn from(e: PullError) -> Self {
        match e {
            PullError::Setup { .. } => RunError::Usage(e.to_string()),
            PullError::Lake(l) => RunError::Lake(l),
            PullError::Io { path, source } => RunError::Write { path, source },
        }
    }
}

/// The providers `run` pulls: those whose table sets `since`.
pub(super) fn configured(settings: &Settings) -> Vec<ProviderPull> {
    settings
        .pulls
        .iter()
        .filter(|p| p.since.is_some())
        .cloned()
        .collect()
}

/// `tokenledger pull`: `provider` (default: every configured one) over `--from`/`--to` (default:
/// where each endpoint left off), then ingest `landing/`.
pub fn pull(
    settings: &Settings,
    provider: Option<Provider>,
    range: (Option<NaiveDate>, Option<NaiveDate>),
) -> Result<PullRun, RunError> {
    let providers: Vec<ProviderPull> = match provider {
        Some(p) => settings
            .pulls
            .iter()
            .filter(|x| x.provider == p)
            .cloned()
            .collect(),
        None => configured(settings),
    };
    if providers.is_empty() {
        return Err(RunError::Usage(
            "no provider to pull: set `since = \"YYYY-MM-DD\"` in [providers.anthropic] or \
             [providers.openai] of tokenledger.toml, or pass --provider and --from"
                .into(),
        ));
    }
    let writer = Snapshot::create(&settings.layout, settings.wait_for_lock)?;
    let req = PullRequest {
        providers,
        from: range.0,
        to: range.1,
        now: Utc::now(),
    };
    let (pull, ingest) = pull_and_ingest(settings, &writer, &req)?;
    Ok(PullRun { pull, ingest })
}

/// The pull, then the ingest of `landing/` (and of nothing else); old pull folders are pruned
/// once that ingest committed.
pub(super) fn pull_and_ingest(
    settings: &Settings,
    writer: &Writer,
    req: &PullRequest,
) -> Result<(PullOutcome, IngestSummary), RunError> {
    let mut pulled = crate::pull::pull(writer, req)?;
    let (opts, walked) = ingest_plan(settings, vec![settings.layout.landing()], None)?;
    let summary = ingest::ingest(writer, &opts, walked)?;
    settings.forget_learned();
    pulled.pruned = crate::pull::prune(&settings.layout, &req.providers, req.now);
    Ok((pulled, summary))
}

/// Tonight's input under the night's one writer: the pull (when a provider sets `since`),
/// then one ingest of the configured inputs and `landing/`; old pull folders pruned after it.
pub(super) fn tonight(
    settings: &Settings,
) -> Result<(Writer, Option<PullOutcome>, IngestSummary), RunError> {
    let pulls = configured(settings);
    let landing = settings.layout.landing();
    let mut inputs = settings.inputs.clone();
    if landing.is_dir() || !pulls.is_empty() {
        inputs.push(landing);
    }
    if inputs.is_empty() {
        return Err(RunError::Usage(
            "no inputs: pass --inputs DIR... or set `inputs = [\"…\"]` in tokenledger.toml, or \
             `since` in a [providers.*] table to pull"
                .into(),
        ));
    }
    // A missing input is a usage error before the lake is touched; with a pull, the walk is
    // done again after it (the landing directory then holds tonight's pages).
    let planned = match pulls.is_empty() {
        true => Some(ingest_plan(settings, inputs.clone(), None)?),
        false if settings.inputs.is_empty() => None,
        false => ingest_plan(settings, settings.inputs.clone(), None).map(|_| None)?,
    };
    // One exclusive view for the whole night: no other run commits between the first report
    // and the month close, so the finance mail pairs a tie-out and a bill of the same lake.
    let writer = Snapshot::create(&settings.layout, settings.wait_for_lock)?;
    let now = Utc::now();
    let mut pulled = match pulls.is_empty() {
        true => None,
        false => Some(crate::pull::pull(
            &writer,
            &PullRequest {
                providers: pulls.clone(),
                from: None,
                to: None,
                now,
            },
        )?),
    };
    let (opts, walked) = match planned {
        Some(p) => p,
        None => ingest_plan(settings, inputs, None)?,
    };
    let ingest = ingest::ingest(&writer, &opts, walked)?;
    settings.forget_learned();
    if let Some(p) = pulled.as_mut() {
        p.pruned = crate::pull::prune(&settings.layout, &pulls, now);
    }
    Ok((writer, pulled, ingest))
}
