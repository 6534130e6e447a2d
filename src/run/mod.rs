//! Run: every command as a library function over resolved [`Settings`], and the nightly
//! pipeline (`tokenledger run`): ingest → rate → report and reconcile the months that changed.
//!
//! Owns: the order of the stages, the lock each command reads or writes under (a consistent
//! snapshot, no gap between rating and reading), which months a run reports, and the typed
//! outcome — what changed, and every reason a person must look ([`Review`], exit code 3).
//! Must not: parse flags, print, or choose exit codes (that is `cli`), or do a stage's work.

pub mod demo;
pub mod export;
pub mod pull;

use std::path::{Path, PathBuf};

use crate::ingest::{self, FileStatus, IngestError, IngestOptions, IngestSummary};
use crate::lake::io::LakeError;
use crate::lake::{self, Snapshot, Writer};
use crate::model::SourceFormat;
use crate::pricing::PriceBook;
use crate::rating::{self, RateSummary};
use crate::reconcile::{self, ReconcileError, Reconciliation};
use crate::report::{self, Dim, Report, ReportError};
use crate::settings::Settings;
use crate::vocab::Month;

pub use crate::vocab::Review;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The command cannot run as given (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Ingest(IngestError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error(transparent)]
    Credits(#[from] crate::credits::CreditsError),
    #[error(transparent)]
    Anomalies(#[from] crate::anomalies::AnomalyError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RunError {
    /// Whether the command cannot run as given (exit code 2): a usage error, or a data dir
    /// that is not a lake.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RunError::Usage(_) | RunError::Lake(LakeError::NoLake { .. })
        )
    }
}

/// Whether any cause in `e`'s chain is a usage error ([`RunError::is_usage`]).
pub fn is_usage(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<RunError>().is_some_and(RunError::is_usage)
            || matches!(
                c.downcast_ref::<LakeError>(),
                Some(LakeError::NoLake { .. })
            )
    })
}

/// `tokenledger man --out DIR`: writes each `(name, bytes)` page into `dir`, atomically;
/// how many.
pub fn write_pages(dir: &Path, pages: &[(String, Vec<u8>)]) -> Result<usize, RunError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    for (name, page) in pages {
        let path = dir.join(name);
        crate::lake::io::write_file_atomic(&path, page).map_err(failed(&path))?;
    }
    Ok(pages.len())
}
pub use crate::report::show_sql;

/// `report --format html`: the month's chargeback as one self-contained HTML page, written
/// atomically; the month's close (provisional or final) is returned.
pub fn html_report(
    settings: &Settings,
    month: Month,
    path: &Path,
    render: &dyn crate::mail::Render,
) -> Result<crate::vocab::Close, RunError> {
    covered(settings, &Snapshot::read(&settings.layout)?, month)?;
    let cb = chargeback(settings, month)?;
    let page = render
        .page(&cb.bill, cb.close, &cb.extras)
        .map_err(crate::mail::MailError::Render)?;
    crate::lake::io::write_file_atomic(path, page.as_bytes()).map_err(|source| {
        RunError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(cb.close)
}

/// A table an analyst asked for, read under a snapshot: the grid (`None`: nothing to show)
/// and what recovery finished first.
pub struct Listing {
    pub grid: Option<crate::grid::Grid>,
    pub recovered: Option<String>,
}

fn read_table(
    settings: &Settings,
    read: impl FnOnce(&Snapshot) -> Result<Option<crate::query::Frame>, crate::query::QueryError>,
) -> Result<Listing, RunError> {
    let snap = Snapshot::read(&settings.layout)?;
    let grid = match read(&snap)? {
        Some(f) => Some(f.grid()?),
        None => None,
    };
    Ok(Listing {
        grid,
        recovered: snap.recovered.clone(),
    })
}

/// `tokenledger usage`: token totals by month, or by day of `month`.
pub fn usage(settings: &Settings, month: Option<Month>) -> Result<Listing, RunError> {
    read_table(settings, |l| {
        crate::query::usage_totals(l, month.map(|m| m.key()).as_deref())
    })
}

/// `tokenledger quarantine`: what was refused, by one ingest or all.
pub fn quarantine(settings: &Settings, ingest: Option<&str>) -> Result<Listing, RunError> {
    read_table(settings, |l| crate::query::quarantine(l, ingest))
}

/// The view an analyst's query reads: a query of `rated_usage` rates what is stale first (as
/// every report does), so it never reads a view missing or behind its usage.
fn sql_view(settings: &Settings, text: &str) -> Result<Snapshot, RunError> {
    if text.contains(crate::query::RATED_USAGE) {
        Ok(rate(settings, &[])?.snapshot)
    } else {
        Ok(Snapshot::read(&settings.layout)?)
    }
}

/// `tokenledger sql`: an analyst's query (with `--param`s filled in) over the lake.
pub fn sql(settings: &Settings, text: &str) -> Result<Listing, RunError> {
    let snap = sql_view(settings, text)?;
    Ok(Listing {
        grid: Some(crate::query::sql(&snap, text)?.grid()?),
        recovered: snap.recovered.clone(),
    })
}

/// `tokenledger sql --format parquet --out FILE`: the result as a Parquet file (exact
/// decimals); the number of rows written.
pub fn sql_to_parquet(settings: &Settings, text: &str, out: &Path) -> Result<usize, RunError> {
    let snap = sql_view(settings, text)?;
    let f = crate::query::sql(&snap, text)?;
    f.write_parquet(out)?;
    Ok(f.height())
}

/// `tokenledger sql --tables`: every table and view with its columns.
pub fn tables() -> crate::grid::Grid {
    crate::query::tables_grid()
}

/// `--param NAME=VALUE`s into a query's `{{NAME}}` placeholders; a missing or unused one is
/// a usage error.
pub fn fill_params(text: &str, params: &[String]) -> Result<String, RunError> {
    crate::query::fill_params(text, params).map_err(RunError::Usage)
}

/// The SQL of `tokenledger sql`: the query given, or the file's text, with `--param`s filled.
pub fn sql_text(
    query: Option<String>,
    file: Option<&Path>,
    params: &[String],
) -> Result<String, RunError> {
    let text = match (query, file) {
        (Some(q), _) => q,
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| RunError::Usage(format!("cannot read {}: {e}", f.display())))?,
        (None, None) => return Err(RunError::Usage("give a query or --file".into())),
    };
    fill_params(&text, params)
}

/// `tokenledger synth`: a synthetic organisation's exports; what was written.
pub fn synth(opts: &crate::synth::SynthOptions) -> anyhow::Result<String> {
    crate::synth::generate(opts)
}

impl From<IngestError> for RunError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::MissingPath(_) | IngestError::Precedence { .. } => {
                RunError::Usage(crate::errors::chain(&e))
            }
            other => RunError::Ingest(other),
        }
    }
}

/// What an ingest asks a person to look at.
pub fn ingest_reviews(s: &IngestSummary) -> Vec<Review> {
    let mut out = Vec::new();
    let count = |st| s.files.iter().filter(|f| f.status == st).count();
    let files = count(FileStatus::Quarantined);
    if s.rows_quarantined > 0 || files > 0 {
        out.push(Review::Quarantined {
            ingest_id: s.ingest_id.clone(),
            rows: s.rows_quarantined,
            files,
        });
    }
    let skipped = count(FileStatus::Skipped);
    if skipped > 0 {
        out.push(Review::Skipped { files: skipped });
    }
    out
}

/// Ingests `paths` (one commit, or none), under the exclusive lock.
pub fn ingest(
    settings: &Settings,
    paths: Vec<PathBuf>,
    format: Option<SourceFormat>,
) -> Result<IngestSummary, RunError> {
    let (opts, walked) = ingest_plan(settings, paths, format)?;
    let writer = Snapshot::create(&settings.layout, settings.wait_for_lock)?;
    let summary = ingest::ingest(&writer, &opts, walked)?;
    settings.forget_learned();
    Ok(summary)
}

/// What an ingest of `paths` reads, found before any lock is taken (a missing path is a usage
/// error that leaves the data dir untouched).
fn ingest_plan(
    settings: &Settings,
    paths: Vec<PathBuf>,
    format: Option<SourceFormat>,
) -> Result<(IngestOptions, ingest::Walk), RunError> {
    let walked = ingest::walk_inputs(&paths, &settings.layout)?;
    let opts = IngestOptions {
        paths,
        format,
        jobs: settings.jobs,
        progress: settings.progress,
        limits: settings.limits,
        precedence: settings.precedence,
        default_workspace: settings.anthropic_default_workspace.clone(),
    };
    Ok((opts, walked))
}

/// Rated data current for `months` (all when empty), and the snapshot to read it under: the
/// shared lock when nothing was stale (a read-only lake needs no more), else the exclusive lock
/// that rated, kept for the reading, so no ingest commits in between.
pub struct Rated {
    pub summary: RateSummary,
    pub snapshot: Snapshot,
}

/// The price book with the lake's provider-list rates for models it lacks (`learned`).
fn priced_book(
    settings: &Settings,
    layout: &crate::lake::Layout,
) -> Result<std::sync::Arc<PriceBook>, RunError> {
    Ok(settings.priced_book_with(|b| crate::learned::rates(layout, b))?)
}

/// The config's teams with their `workspace_tags` resolved against the lake's workspace lists.
fn teams(settings: &Settings, view: &Snapshot) -> Result<Vec<crate::config::Team>, RunError> {
    Ok(crate::report::resolve_teams(&settings.teams, view)?)
}

pub fn rate(settings: &Settings, months: &[String]) -> Result<Rated, RunError> {
    let layout = &settings.layout;
    let shared = Snapshot::read(layout)?;
    let teams = crate::report::team_rows(&teams(settings, &shared)?)?;
    let book = priced_book(settings, layout)?;
    if !rating::needs_rating(&shared, &book, settings.timezone, months)?
        && !crate::lake::teams::stale(&shared, &teams)?
    {
        let mut summary = rating::fresh(&shared, months)?;
        summary.price_book = book.fingerprint.clone();
        return Ok(Rated {
            summary,
            snapshot: shared,
        });
    }
    let recovered = shared.recovered.clone();
    drop(shared);
    let mut writer = Snapshot::write(layout, settings.wait_for_lock)?;
    writer.recovered = writer.recovered.take().or(recovered);
    let mut summary = rate_under(settings, &writer, months)?;
    summary.price_book = book.fingerprint.clone();
    Ok(Rated {
        summary,
        snapshot: writer.into_snapshot(),
    })
}

/// Rates `months` (all when empty) under a writer the caller holds, and stores the team map
/// with the rated data, so SQL outside tokenledger assigns teams exactly as the reports do.
fn rate_under(
    settings: &Settings,
    writer: &Writer,
    months: &[String],
) -> Result<RateSummary, RunError> {
    let summary = rating::ensure_rated(
        writer,
        &*priced_book(settings, writer.layout())?,
        settings.timezone,
        months,
        settings.jobs,
    )?;
    crate::lake::teams::sync(
        writer,
        &crate::report::team_rows(&teams(settings, writer)?)?,
    )?;
    Ok(summary)
}

/// A month's figures as a command shows them: what was computed, where the month stands, and
/// what recovery finished first.
pub struct Shown<T> {
    pub figures: T,
    pub standing: crate::report::Standing,
    pub recovered: Option<String>,
}

/// The chargeback of `month`, priced on the fly from its usage (nothing needs rating first:
/// a month never rated costs one scan of its usage), read under the shared lock.
pub fn report(settings: &Settings, month: Month, dims: &[Dim]) -> Result<Shown<Report>, RunError> {
    let snapshot = Snapshot::read(&settings.layout)?;
    covered(settings, &snapshot, month)?;
    let book = priced_book(settings, &settings.layout)?;
    let pricing = report::scan::Pricing {
        book: &book,
        tz: settings.timezone,
    };
    let shared = &settings.mail.shared_workspaces;
    let teams = teams(settings, &snapshot)?;
    let figures = if dims == [Dim::Team] && !shared.is_empty() {
        // Team totals as the chargeback charges them: one set of figures everywhere.
        use crate::mail::bill::{Reports, bill, team_report};
        let [a, b, c] = bill_reports(settings, &snapshot, month)?;
        let reports = Reports {
            by_line: &a,
            by_key: &b,
            by_day: &c,
        };
        team_report(&bill(month, &reports, &teams, shared, None), &a, shared)
    } else {
        report::report(&snapshot, month, dims, &teams, &pricing)?
    };
    Ok(Shown {
        figures,
        standing: standing(settings, &snapshot, month, false)?,
        recovered: snapshot.recovered.clone(),
    })
}

/// A month no usage export covers is refused, never reported as $0.00 of spend.
fn covered(settings: &Settings, view: &Snapshot, month: Month) -> Result<(), RunError> {
    let f = crate::freshness::freshness(view, settings.as_of)?;
    if f.usage_covers(month, settings.timezone) {
        Ok(())
    } else {
        Err(RunError::Usage(f.no_usage_sentence(month)))
    }
}

/// Where `month` stands as of `settings.as_of`: in the business timezone for reports
/// (`provider_days`: false), on the provider's UTC days for the reconciliation.
fn standing(
    settings: &Settings,
    view: &Snapshot,
    month: Month,
    provider_days: bool,
) -> Result<crate::report::Standing, RunError> {
    Ok(crate::report::Standing {
        month,
        timezone: if provider_days {
            "UTC".into()
        } else {
            settings.timezone.name().into()
        },
        close: crate::vocab::Close::of(month, settings.as_of, settings.mail.grace_days),
        final_mailed: crate::mail::final_delivered(view, &month.key())?,
    })
}

/// The reconciliation of `month` with the provider's cost report, rated first.
pub fn reconcile(settings: &Settings, month: Month) -> Result<Shown<Reconciliation>, RunError> {
    let book = &*priced_book(settings, &settings.layout)?;
    // The invoices say which months their periods touch: those are rated too, then the
    // invoices are read again under the view the reconciliation reads.
    let invoices = reconcile::invoices_of(&Snapshot::read(&settings.layout)?, month)?;
    let mut months: Vec<String> = reconcile::period_months(&invoices)
        .iter()
        .map(|m| m.key())
        .collect();
    months.push(month.key());
    let rated = rate(settings, &months)?;
    let view = &rated.snapshot;
    let invoices = reconcile::invoices_of(view, month)?;
    let mut r = reconcile::reconcile(view, month, settings.tolerance, book)?;
    reconcile::add_tie_outs(view, &mut r, &invoices, book)?;
    Ok(Shown {
        standing: standing(settings, view, month, true)?,
        figures: r,
        recovered: rated.snapshot.recovered.clone(),
    })
}

/// The credits ledger as of `settings.as_of`, every month rated first (burn and consumption read all
/// of `rated_usage`).
pub fn credits(
    settings: &Settings,
) -> Result<(crate::credits::Ledger, crate::credits::Inputs, Rated), RunError> {
    let rated = rate(settings, &[])?;
    let (ledger, inputs) = crate::credits::credits(&rated.snapshot, &settings.credits)?;
    Ok((ledger, inputs, rated))
}

/// The reasons to look a credits ledger gives.
pub fn credit_reviews(l: &crate::credits::Ledger, inputs: &crate::credits::Inputs) -> Vec<Review> {
    let mut out = Vec::new();
    if !l.findings.is_empty() {
        out.push(Review::Credits {
            findings: l.findings.len(),
        });
    }
    if inputs.unpriced_rows > 0 {
        out.push(Review::Unpriced {
            month: "all".into(),
            lines: inputs.unpriced_rows as usize,
        });
    }
    out
}

/// The anomalies of `[from, to]` (every month rated first).
pub fn anomalies(
    settings: &Settings,
    span: (Option<chrono::NaiveDate>, Option<chrono::NaiveDate>),
    scope: Option<crate::anomalies::Scope>,
) -> Result<(Vec<crate::anomalies::Row>, Rated), RunError> {
    let rated = rate(settings, &[])?;
    let rows = crate::anomalies::anomalies(&rated.snapshot, &settings.anomalies, span, scope)?;
    Ok((rows, rated))
}

/// The incidents that overlap `[from, to]` (every month rated first).
pub fn incidents(
    settings: &Settings,
    (from, to): (Option<chrono::NaiveDate>, Option<chrono::NaiveDate>),
) -> Result<(Vec<crate::anomalies::Incident>, Rated), RunError> {
    let rated = rate(settings, &[])?;
    let (_, all) = crate::anomalies::with_incidents(&rated.snapshot, &settings.anomalies)?;
    let keep = |i: &crate::anomalies::Incident| {
        from.is_none_or(|f| i.last >= f) && to.is_none_or(|t| i.first <= t)
    };
    Ok((all.into_iter().filter(keep).collect(), rated))
}

/// Marks finding `id` as expected, under the exclusive lock.
pub fn ack_anomaly(
    settings: &Settings,
    id: &str,
    note: &str,
) -> Result<crate::anomalies::Row, RunError> {
    let writer = Snapshot::write(&settings.layout, settings.wait_for_lock)?;
    rate_under(settings, &writer, &[])?;
    match crate::anomalies::ack(&writer, &settings.anomalies, id, note) {
        Err(crate::anomalies::AnomalyError::UnknownId(m)) => Err(RunError::Usage(format!(
            "no finding has id {m:?}: `tokenledger anomalies` lists the ids"
        ))),
        other => Ok(other?),
    }
}

/// A month's chargeback: the rounded bill, what the finance summary adds, and whether the
/// month is final.
pub struct Chargeback {
    pub bill: crate::mail::bill::Bill,
    pub extras: crate::mail::FinanceExtras,
    pub close: crate::vocab::Close,
}

fn bill_reports(settings: &Settings, l: &Snapshot, month: Month) -> Result<[Report; 3], RunError> {
    let t = &teams(settings, l)?;
    let book = priced_book(settings, l.layout())?;
    let p = report::scan::Pricing {
        book: &book,
        tz: settings.timezone,
    };
    let groupings: [&[Dim]; 3] = [
        &[Dim::Team, Dim::Workspace, Dim::Model, Dim::Provider],
        &[
            Dim::Team,
            Dim::Workspace,
            Dim::ApiKey,
            Dim::Product,
            Dim::Actor,
        ],
        &[Dim::Team, Dim::Workspace, Dim::Day, Dim::Model],
    ];
    let reports: [Report; 3] = report::reports(l, month, &groupings, t, &p)?
        .try_into()
        .unwrap_or_else(|_| unreachable!("three groupings, three reports"));
    Ok(reports)
}

/// What the nightly run has already computed, as of the same day, for the month it closes:
/// the chargeback takes it instead of computing it again. `None`: compute it.
#[derive(Default)]
pub struct Computed<'a> {
    /// The month's reconciliation with its tie-outs (`Some(None)`: no cost report covers it).
    pub reconciliation: Option<Option<&'a Reconciliation>>,
    /// The credit findings as of the day.
    pub credit_findings: Option<&'a [crate::credits::Finding]>,
    /// Every incident, of any date (filtered here to the month).
    pub incidents: Option<&'a [crate::anomalies::Incident]>,
}

/// The chargeback of `month` as of `settings.as_of`: bills of the month and the one before
/// (for the change), the tie-out, credit findings and the month's alerting anomalies.
pub fn chargeback(settings: &Settings, month: Month) -> Result<Chargeback, RunError> {
    // Credits and anomalies read every month: all are rated first.
    let rated = rate(settings, &[])?;
    chargeback_with(settings, &rated.snapshot, month, &Computed::default())
}

/// [`chargeback`] read from `view` (every month rated), with what the caller has already
/// computed.
fn chargeback_with(
    settings: &Settings,
    view: &Snapshot,
    month: Month,
    known: &Computed<'_>,
) -> Result<Chargeback, RunError> {
    use crate::mail::bill::{Reports, bill};
    let shared = &settings.mail.shared_workspaces;
    let resolved = teams(settings, view)?;
    let bill_of = |m: Month, previous: Option<&crate::mail::bill::Bill>| {
        let [a, b, c] = bill_reports(settings, view, m)?;
        let reports = Reports {
            by_line: &a,
            by_key: &b,
            by_day: &c,
        };
        let empty = a.lines.is_empty();
        Ok::<_, RunError>((bill(m, &reports, &resolved, shared, previous), empty))
    };
    let previous = match month.previous() {
        Some(p) => Some(bill_of(p, None)?)
            .filter(|(_, empty)| !empty)
            .map(|(b, _)| b),
        None => None,
    };
    let (bill, _) = bill_of(month, previous.as_ref())?;
    let extras = finance_extras(settings, view, month, known)?;
    Ok(Chargeback {
        bill,
        extras,
        close: crate::vocab::Close::of(month, settings.as_of, settings.mail.grace_days),
    })
}

/// What finance gets besides the bill: the month's tie-out, the credit findings as of the day
/// and the month's alerting anomalies (from `known` where the caller has them).
fn finance_extras(
    settings: &Settings,
    view: &Snapshot,
    month: Month,
    known: &Computed<'_>,
) -> Result<crate::mail::FinanceExtras, RunError> {
    let mut extras = crate::mail::FinanceExtras::default();
    let computed;
    let reconciliation = match known.reconciliation {
        Some(r) => r,
        None => {
            computed = tied_reconciliation(settings, view, month)?;
            computed.as_ref()
        }
    };
    if let Some(r) = reconciliation {
        extras.unexplained_lines = Some(r.lines_unexplained);
        extras.tie_outs = r.tie_outs.clone();
    }
    extras.credits = match known.credit_findings {
        Some(f) => f.to_vec(),
        None => crate::credits::credits(view, &settings.credits)?.0.findings,
    };
    let first = chrono::NaiveDate::from_ymd_opt(month.year().into(), month.month().into(), 1);
    let last = first
        .and_then(|f| f.checked_add_months(chrono::Months::new(1)))
        .and_then(|d| d.pred_opt());
    let in_month = |i: &crate::anomalies::Incident| {
        i.alert && first.is_none_or(|f| i.last >= f) && last.is_none_or(|l| i.first <= l)
    };
    let computed_incidents;
    let all = match known.incidents {
        Some(all) => all,
        None => {
            computed_incidents = crate::anomalies::with_incidents(view, &settings.anomalies)?.1;
            &computed_incidents
        }
    };
    extras.incidents = all.iter().filter(|i| in_month(i)).cloned().collect();
    Ok(extras)
}

/// `tokenledger mail`: the month's chargeback to every team and finance, exactly once.
pub fn mail(
    settings: &Settings,
    month: Month,
    render: &dyn crate::mail::Render,
    (dry_run, resend, idle): (bool, bool, bool),
) -> Result<crate::mail::MailOutcome, RunError> {
    // One exclusive view from rating to the sent-ledger: what is mailed is what was read.
    let writer = Snapshot::write(&settings.layout, settings.wait_for_lock)?;
    if !idle {
        covered(settings, &writer, month).map_err(|e| {
            RunError::Usage(format!(
                "{e}; nothing was mailed (pass --idle-month to bill a month that truly had no usage)"
            ))
        })?;
    }
    rate_under(settings, &writer, &[])?;
    mail_with(
        settings,
        &writer,
        month,
        render,
        (dry_run, resend),
        &Computed::default(),
    )
}

/// [`mail`] under the caller's writer (every month rated), with what the caller has already
/// computed for the chargeback.
fn mail_with(
    settings: &Settings,
    writer: &Writer,
    month: Month,
    render: &dyn crate::mail::Render,
    (dry_run, resend): (bool, bool),
    known: &Computed<'_>,
) -> Result<crate::mail::MailOutcome, RunError> {
    let cb = chargeback_with(settings, writer, month, known)?;
    let opts = crate::mail::Options {
        month,
        close: cb.close,
        dry_run,
        resend,
    };
    Ok(crate::mail::mail(
        writer,
        &settings.mail,
        render,
        &cb.bill,
        &cb.extras,
        opts,
    )?)
}

/// One month a run reports on.
#[derive(Debug, Clone)]
pub struct MonthOutcome {
    pub month: Month,
    pub report: Report,
    /// `None` when no cost report covers the month.
    pub reconciliation: Option<Reconciliation>,
}

/// What the nightly run did.
#[derive(Debug)]
pub struct RunOutcome {
    /// The pull stage (`None`: no provider configured to pull).
    pub pull: Option<crate::pull::PullOutcome>,
    pub ingest: IngestSummary,
    pub rated: RateSummary,
    pub price_book: String,
    pub recovered: Option<String>,
    pub months: Vec<MonthOutcome>,
    /// The credits ledger as of today (`None`: no credit lots in the lake).
    pub credits: Option<crate::credits::Ledger>,
    /// Incidents that alert and were going on within [`ALERT_DAYS`] before the as-of day.
    pub incidents: Vec<crate::anomalies::Incident>,
    /// Month close: the chargeback mail of the latest month with usage, once it is final
    /// (`None`: not final yet, or no recipients configured).
    pub chargeback: Option<crate::mail::MailOutcome>,
    /// Month close: the FOCUS export of the closing month into `[export] focus_dir`, once it
    /// is final (`None`: not final, or no `focus_dir`).
    pub focus: Option<export::FocusExport>,
    /// The alert digest (`None`: no alert recipients).
    pub alerts: Option<crate::mail::alerts::AlertOutcome>,
    /// Mail still queued after this run (chargebacks and digests).
    pub undelivered: usize,
    /// What data the lake stands on: per provider, where its usage and cost exports end.
    pub freshness: crate::freshness::Freshness,
    /// The spans older than `stale_after_days` (each a `stale_data` finding in the digest).
    pub stale: Vec<crate::freshness::Span>,
    /// Findings and reviews no earlier run reported (0 with reviews: only standing ones,
    /// exit code 4).
    pub new_findings: usize,
}

/// The nightly digest carries anomalies of the last this many days (older ones are in
/// `tokenledger anomalies`; a first run over a long history does not mail all of it).
pub const ALERT_DAYS: i64 = 7;

impl RunOutcome {
    /// Every reason to look, from every stage.
    pub fn reviews(&self) -> Vec<Review> {
        let mut out: Vec<Review> = self.pull.iter().flat_map(pull::pull_reviews).collect();
        out.extend(ingest_reviews(&self.ingest));
        for m in &self.months {
            out.extend(m.report.reviews());
            out.extend(m.reconciliation.iter().flat_map(|r| r.reviews()));
        }
        if let Some(l) = self.credits.as_ref().filter(|l| !l.findings.is_empty()) {
            out.push(Review::Credits {
                findings: l.findings.len(),
            });
        }
        if !self.incidents.is_empty() {
            out.push(Review::Anomalies {
                alerts: self.incidents.len(),
            });
        }
        if !self.stale.is_empty() {
            out.push(Review::StaleData {
                tables: self.stale.len(),
            });
        }
        if self.undelivered > 0 {
            out.push(Review::Undelivered {
                messages: self.undelivered,
            });
        }
        out
    }
}

/// The months a run reports: those it re-rated, and the latest month with usage.
fn months_to_report(layout: &Snapshot, rated: &RateSummary) -> Result<Vec<Month>, RunError> {
    let mut months = rated.months_rated.clone();
    let all = layout.all_months(lake::Table::Usage)?;
    if let Some(latest) = all.last()
        && !months.contains(latest)
    {
        months.push(latest.clone());
    }
    months.sort();
    months
        .iter()
        .map(|m| {
            Month::parse(m).map_err(|e| {
                RunError::Usage(format!(
                    "{}: a month partition named {e}",
                    layout.root.display()
                ))
            })
        })
        .collect()
}

/// A month the nightly run reports: its chargeback by workspace and model, and its
/// reconciliation with the tie-out when a cost report covers it.
fn report_month(
    settings: &Settings,
    view: &Snapshot,
    month: Month,
) -> Result<MonthOutcome, RunError> {
    let book = priced_book(settings, view.layout())?;
    let pricing = report::scan::Pricing {
        book: &book,
        tz: settings.timezone,
    };
    let dims = [Dim::Workspace, Dim::Model];
    let report = report::report(view, month, &dims, &teams(settings, view)?, &pricing)?;
    Ok(MonthOutcome {
        month,
        report,
        reconciliation: tied_reconciliation(settings, view, month)?,
    })
}

/// The reconciliation of `month` with its tie-outs to the month's invoices; `None` when no
/// cost report covers the month.
fn tied_reconciliation(
    settings: &Settings,
    layout: &Snapshot,
    month: Month,
) -> Result<Option<Reconciliation>, RunError> {
    let book: &PriceBook = &*priced_book(settings, layout.layout())?;
    if !reconcile::has_cost_report(layout, &month.key())? {
        return Ok(None);
    }
    let mut r = reconcile::reconcile(layout, month, settings.tolerance, book)?;
    let invoices = reconcile::invoices_of(layout, month)?;
    reconcile::add_tie_outs(layout, &mut r, &invoices, book)?;
    Ok(Some(r))
}

/// The nightly job, in order: ingest the configured inputs → rate what changed → report and
/// reconcile the months that changed (and the latest) → credits → anomalies → month close
/// (the latest month's chargeback mail once it is final; corrections when restated) → the
/// alert digest (anomalies, credit findings, undelivered mail; each finding once).
pub fn run(settings: &Settings, render: &dyn crate::mail::Render) -> Result<RunOutcome, RunError> {
    let (writer, pulled, ingest) = pull::tonight(settings)?;
    let rated = rate_under(settings, &writer, &[])?;
    let to_report = months_to_report(&writer, &rated)?;
    let months = to_report
        .iter()
        .map(|&month| report_month(settings, &writer, month))
        .collect::<Result<Vec<_>, _>>()?;
    // The credits ledger as of the as-of date, when there are lots to keep.
    let (ledger, inputs) = crate::credits::credits(&writer, &settings.credits)?;
    let credit_findings = ledger.findings.clone();
    let credits = (!inputs.lots.is_empty()).then_some(ledger);
    // Every incident once: the digest takes the recent ones that alert, the month close its
    // month's.
    let recent = settings.as_of - chrono::TimeDelta::days(ALERT_DAYS);
    let (_, all_incidents) = crate::anomalies::with_incidents(&writer, &settings.anomalies)?;
    let incidents: Vec<crate::anomalies::Incident> = all_incidents
        .iter()
        .filter(|i| i.alert && i.last >= recent && i.first <= settings.as_of)
        .cloned()
        .collect();
    let closing = to_report.last().copied();
    let known = Computed {
        reconciliation: months
            .iter()
            .find(|m| Some(m.month) == closing)
            .map(|m| m.reconciliation.as_ref()),
        credit_findings: Some(&credit_findings),
        incidents: Some(&all_incidents),
    };
    let chargeback = month_close(settings, &writer, render, closing, &known)?;
    let focus = focus_close(settings, &writer, closing)?;
    let (freshness, stale) = freshness(settings, &writer)?;
    let (alerts, undelivered, alert_keys) = alert_digest(
        settings,
        &writer,
        render,
        &incidents,
        credits.as_ref(),
        &stale,
    )?;
    let mut out = RunOutcome {
        pull: pulled,
        credits,
        recovered: writer.recovered.clone(),
        ingest,
        rated,
        price_book: priced_book(settings, &settings.layout)?.fingerprint.clone(),
        months,
        incidents,
        chargeback,
        focus,
        alerts,
        undelivered,
        freshness,
        stale,
        new_findings: 0,
    };
    // What tonight reports that no earlier night did (for cron: exit code 3 vs 4).
    let mut keys = alert_keys;
    keys.extend(out.reviews().iter().filter_map(Review::key));
    out.new_findings = crate::mail::alerts::note_reported(&writer, &keys)?;
    Ok(out)
}

/// Where each provider's data ends, and the spans older than `stale_after_days`.
fn freshness(
    settings: &Settings,
    view: &Snapshot,
) -> Result<(crate::freshness::Freshness, Vec<crate::freshness::Span>), RunError> {
    let f = crate::freshness::freshness(view, settings.as_of)?;
    let stale = f
        .stale(settings.stale_after_days)
        .into_iter()
        .cloned()
        .collect();
    Ok((f, stale))
}

/// The alert digest: tonight's anomalies, credit findings and undelivered mail, each new one
/// to each alert recipient; and how much mail is still queued afterwards.
fn alert_digest(
    settings: &Settings,
    writer: &Writer,
    render: &dyn crate::mail::Render,
    incidents: &[crate::anomalies::Incident],
    credits: Option<&crate::credits::Ledger>,
    stale: &[crate::freshness::Span],
) -> Result<
    (
        Option<crate::mail::alerts::AlertOutcome>,
        usize,
        Vec<String>,
    ),
    RunError,
> {
    use crate::mail::alerts::{self, Alert};
    let cfg = &settings.mail;
    let queued = crate::mail::log(writer)?
        .iter()
        .filter(|e| e.status == crate::mail::Status::Queued)
        .count();
    let mut items: Vec<Alert> = stale.iter().cloned().map(Alert::Stale).collect();
    items.extend(incidents.iter().map(|i| Alert::Incident {
        incident: i.clone(),
        update: false,
    }));
    let factor = settings.anomalies.regrow_factor;
    items.extend(
        credits
            .iter()
            .flat_map(|l| l.findings.iter().cloned())
            .map(|f| Alert::credit(f, factor)),
    );
    if queued > 0 {
        items.push(Alert::Undelivered { messages: queued });
    }
    // Undelivered mail is said every night while it lasts: not a finding of its own.
    let keys = items
        .iter()
        .filter(|a| !matches!(a, Alert::Undelivered { .. }))
        .map(|a| a.key(settings.as_of))
        .collect();
    if cfg.alerts.is_empty() {
        return Ok((None, queued, keys));
    }
    let out = alerts::send(writer, cfg, render, &items, settings.as_of, false)?;
    let undelivered = queued + out.undelivered;
    Ok((Some(out), undelivered, keys))
}

/// Month close, for FinOps tools: the FOCUS 1.4 export of `latest` into
/// `focus_dir/YYYY-MM/` once the month is final (every night after: the same bytes, or the
/// corrected figures when the provider restated the month).
fn focus_close(
    settings: &Settings,
    writer: &Writer,
    latest: Option<Month>,
) -> Result<Option<export::FocusExport>, RunError> {
    let (Some(month), Some(dir)) = (latest, settings.export.focus_dir.as_ref()) else {
        return Ok(None);
    };
    let close = crate::vocab::Close::of(month, settings.as_of, settings.mail.grace_days);
    if !close.is_final() {
        return Ok(None);
    }
    let out = dir.join(month.key());
    let format = settings.export.focus_format;
    Ok(Some(export::write_focus(
        settings, writer, month, &out, format,
    )?))
}

/// Month close: the chargeback of `latest` (the latest month with usage) once it is final
/// and someone is to receive it. The sent-ledger makes this once per month (and a correction
/// when a final month is restated).
fn month_close(
    settings: &Settings,
    writer: &Writer,
    render: &dyn crate::mail::Render,
    latest: Option<Month>,
    known: &Computed<'_>,
) -> Result<Option<crate::mail::MailOutcome>, RunError> {
    let Some(month) = latest else {
        return Ok(None);
    };
    let cfg = &settings.mail;
    let close = crate::vocab::Close::of(month, settings.as_of, cfg.grace_days);
    let anyone = !cfg.finance.is_empty() || settings.teams.iter().any(|t| !t.recipients.is_empty());
    if !close.is_final() || !anyone {
        return Ok(None);
    }
    Ok(Some(mail_with(
        settings,
        writer,
        month,
        render,
        (false, false),
        known,
    )?))
}

/// What `tokenledger limits` shows: the rate-limit headroom of the recent window and where each
/// monthly limit and spend cap stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Limits {
    /// `None`: the lake has no usage.
    pub headroom: Option<crate::limits::Headroom>,
    pub spend: Vec<crate::anomalies::Standing>,
}

impl Limits {
    /// A minute passed the threshold, or a monthly limit is projected to 90 % or more: exit 3.
    pub fn reviews(&self) -> Vec<Review> {
        let near = self.headroom.as_ref().map_or(0, |h| h.passing.len())
            + self
                .spend
                .iter()
                .filter(|s| {
                    s.projected_month_end_usd.units() * 10 >= s.limit_usd.units() * 9
                        || s.month_to_date_usd.units() * 10 >= s.limit_usd.units() * 9
                })
                .count();
        if near == 0 {
            return Vec::new();
        }
        vec![Review::Anomalies { alerts: near }]
    }
}

/// The headroom of the last `days` days of data (default `[anomalies] rate_limit_days`) and the
/// standing of every monthly limit (every month rated first).
pub fn limits(settings: &Settings, days: Option<u32>) -> Result<(Limits, Rated), RunError> {
    let rated = rate(settings, &[])?;
    let policy = &settings.anomalies;
    let mut window = policy.headroom.clone();
    window.days = days.unwrap_or(window.days);
    let headroom =
        crate::limits::headroom(&rated.snapshot, &policy.rates, policy.timezone, &window)?;
    let spend = crate::anomalies::standings(&rated.snapshot, policy)?;
    Ok((Limits { headroom, spend }, rated))
}
