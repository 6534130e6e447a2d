//! Run: every command as a library function over resolved [`Settings`], and the nightly
//! pipeline (`tokenledger run`): ingest → rate → report and reconcile the months that changed.
//!
//! Owns: the order of the stages, the lock each command reads or writes under (a consistent
//! snapshot, no gap between rating and reading), which months a run reports, and the typed
//! outcome — what changed, and every reason a person must look ([`Review`], exit code 3).
//! Must not: parse flags, print, or choose exit codes (that is `cli`), or do a stage's work.

use std::path::PathBuf;

use crate::ingest::{self, FileStatus, IngestError, IngestOptions, IngestSummary};
use crate::lake::io::LakeError;
use crate::lake::txn::Snapshot;
use crate::lake::{Layout, Table};
use crate::model::SourceFormat;
use crate::pricing::{PriceBook, PriceError};
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
    Price(#[from] PriceError),
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
}

impl From<IngestError> for RunError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::MissingPath(_) => RunError::Usage(e.to_string()),
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

/// Ingests `paths` (one commit, or none).
pub fn ingest(
    settings: &Settings,
    paths: Vec<PathBuf>,
    format: Option<SourceFormat>,
) -> Result<IngestSummary, RunError> {
    let opts = IngestOptions {
        paths,
        format,
        jobs: settings.jobs,
        wait_for_lock: settings.wait_for_lock,
        progress: settings.progress,
        limits: settings.limits,
    };
    Ok(ingest::ingest(&settings.layout, &opts)?)
}

/// Rated data current for `months` (all when empty), and the snapshot to read it under: the
/// shared lock when nothing was stale (a read-only lake needs no more), else the exclusive lock
/// that rated, kept for the reading, so no ingest commits in between.
pub struct Rated {
    pub summary: RateSummary,
    pub snapshot: Snapshot,
}

pub fn rate(settings: &Settings, book: &PriceBook, months: &[String]) -> Result<Rated, RunError> {
    let layout = &settings.layout;
    let shared = Snapshot::read(layout)?;
    let tz = settings.timezone;
    let teams = crate::report::team_rows(&settings.teams)?;
    if !rating::needs_rating(layout, book, tz, months)?
        && !crate::lake::teams::stale(layout, &teams)?
    {
        // Nothing to write: ensure_rated only lists what is current.
        let summary = rating::ensure_rated(layout, book, tz, months, settings.jobs)?;
        return Ok(Rated {
            summary,
            snapshot: shared,
        });
    }
    let recovered = shared.recovered.clone();
    drop(shared);
    let mut snapshot = Snapshot::write(layout, settings.wait_for_lock)?;
    snapshot.recovered = snapshot.recovered.take().or(recovered);
    let summary = rating::ensure_rated(layout, book, tz, months, settings.jobs)?;
    // The team map goes into the lake with the rated data, so SQL outside tokenledger assigns
    // teams exactly as the reports do.
    crate::lake::teams::sync(layout, &teams)?;
    Ok(Rated { summary, snapshot })
}

/// The chargeback of `month`, priced on the fly from its usage (nothing needs rating first:
/// a month never rated costs one scan of its usage), read under the shared lock.
pub fn report(
    settings: &Settings,
    month: Month,
    dims: &[Dim],
) -> Result<(Report, Rated), RunError> {
    let book = settings.price_book()?;
    let snapshot = Snapshot::read(&settings.layout)?;
    let pricing = report::scan::Pricing {
        book: &book,
        tz: settings.timezone,
    };
    let r = report::report(&settings.layout, month, dims, &settings.teams, &pricing)?;
    Ok((
        r,
        Rated {
            summary: RateSummary::default(),
            snapshot,
        },
    ))
}

/// Where `month` stands as of `settings.as_of`: in the business timezone for reports
/// (`provider_days`: false), on the provider's UTC days for the reconciliation.
pub fn standing(
    settings: &Settings,
    month: Month,
    provider_days: bool,
) -> Result<crate::report::Standing, RunError> {
    let mail = settings
        .mail_settings()
        .map_err(|e| RunError::Usage(e.to_string()))?;
    Ok(crate::report::Standing {
        month,
        timezone: if provider_days {
            "UTC".into()
        } else {
            settings.timezone.name().into()
        },
        close: crate::vocab::Close::of(month, settings.as_of, mail.grace_days),
        final_mailed: crate::mail::final_delivered(&settings.layout, &month.key())?,
    })
}

/// The reconciliation of `month` with the provider's cost report, rated first.
pub fn reconcile(settings: &Settings, month: Month) -> Result<(Reconciliation, Rated), RunError> {
    let book = settings.price_book()?;
    let invoices = reconcile::invoices_of(&settings.layout, month)?;
    let mut months: Vec<String> = reconcile::period_months(&invoices)
        .iter()
        .map(|m| m.key())
        .collect();
    months.push(month.key());
    let rated = rate(settings, &book, &months)?;
    let mut r = reconcile::reconcile(&settings.layout, month, settings.tolerance, &book)?;
    reconcile::add_tie_outs(&settings.layout, &mut r, &invoices, &book)?;
    Ok((r, rated))
}

/// The credits ledger as of `settings.as_of`, every month rated first (burn and consumption read all
/// of `rated_usage`).
pub fn credits(
    settings: &Settings,
) -> Result<(crate::credits::Ledger, crate::credits::Inputs, Rated), RunError> {
    let book = settings.price_book()?;
    let rated = rate(settings, &book, &[])?;
    let opts = settings.credit_options(settings.as_of);
    let (ledger, inputs) = crate::credits::credits(&settings.layout, &opts)?;
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
    let book = settings.price_book()?;
    let policy = settings
        .anomaly_policy()
        .map_err(|e| RunError::Usage(e.to_string()))?;
    let rated = rate(settings, &book, &[])?;
    let rows = crate::anomalies::anomalies(&settings.layout, &policy, span, scope)?;
    Ok((rows, rated))
}

/// Marks finding `id` as expected, under the exclusive lock.
pub fn ack_anomaly(
    settings: &Settings,
    id: &str,
    note: &str,
) -> Result<crate::anomalies::Row, RunError> {
    let book = settings.price_book()?;
    let policy = settings
        .anomaly_policy()
        .map_err(|e| RunError::Usage(e.to_string()))?;
    drop(rate(settings, &book, &[])?);
    let _lock = Snapshot::write(&settings.layout, settings.wait_for_lock)?;
    match crate::anomalies::ack(&settings.layout, &policy, id, note) {
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

fn bill_reports(settings: &Settings, month: Month) -> Result<[Report; 3], RunError> {
    let l = &settings.layout;
    let t = &settings.teams;
    let book = settings.price_book()?;
    let p = report::scan::Pricing {
        book: &book,
        tz: settings.timezone,
    };
    Ok([
        report::report(l, month, &[Dim::Team, Dim::Workspace, Dim::Model], t, &p)?,
        report::report(l, month, &[Dim::Team, Dim::Workspace, Dim::ApiKey], t, &p)?,
        report::report(l, month, &[Dim::Team, Dim::Day, Dim::Model], t, &p)?,
    ])
}

/// What the nightly run has already computed, as of the same day, for the month it closes:
/// the chargeback takes it instead of computing it again. `None`: compute it.
#[derive(Default)]
pub struct Computed<'a> {
    /// The month's reconciliation with its tie-outs (`Some(None)`: no cost report covers it).
    pub reconciliation: Option<Option<&'a Reconciliation>>,
    /// The credit findings as of the day.
    pub credit_findings: Option<&'a [crate::credits::Finding]>,
    /// Every anomaly row, of any date (filtered here to the month).
    pub anomalies: Option<&'a [crate::anomalies::Row]>,
}

/// The chargeback of `month` as of `settings.as_of`: bills of the month and the one before
/// (for the change), the tie-out, credit findings and the month's alerting anomalies.
pub fn chargeback(settings: &Settings, month: Month) -> Result<Chargeback, RunError> {
    chargeback_with(settings, month, &Computed::default())
}

/// [`chargeback`], with what the caller has already computed.
fn chargeback_with(
    settings: &Settings,
    month: Month,
    known: &Computed<'_>,
) -> Result<Chargeback, RunError> {
    use crate::mail::bill::{Reports, bill};
    let mail = settings
        .mail_settings()
        .map_err(|e| RunError::Usage(e.to_string()))?;
    let book = settings.price_book()?;
    // Credits and anomalies read every month: all are rated first.
    let _rated = rate(settings, &book, &[])?;
    let shared = &mail.shared_workspaces;
    let bill_of = |m: Month, previous: Option<&crate::mail::bill::Bill>| {
        let [a, b, c] = bill_reports(settings, m)?;
        let reports = Reports {
            by_line: &a,
            by_key: &b,
            by_day: &c,
        };
        let empty = a.lines.is_empty();
        Ok::<_, RunError>((bill(m, &reports, &settings.teams, shared, previous), empty))
    };
    let previous = match month.previous() {
        Some(p) => Some(bill_of(p, None)?)
            .filter(|(_, empty)| !empty)
            .map(|(b, _)| b),
        None => None,
    };
    let (bill, _) = bill_of(month, previous.as_ref())?;
    let extras = finance_extras(settings, month, &book, known)?;
    Ok(Chargeback {
        bill,
        extras,
        close: crate::vocab::Close::of(month, settings.as_of, mail.grace_days),
    })
}

/// What finance gets besides the bill: the month's tie-out, the credit findings as of the day
/// and the month's alerting anomalies (from `known` where the caller has them).
fn finance_extras(
    settings: &Settings,
    month: Month,
    book: &PriceBook,
    known: &Computed<'_>,
) -> Result<crate::mail::FinanceExtras, RunError> {
    let layout = &settings.layout;
    let mut extras = crate::mail::FinanceExtras::default();
    let computed;
    let reconciliation = match known.reconciliation {
        Some(r) => r,
        None => {
            computed = tied_reconciliation(settings, month, book)?;
            computed.as_ref()
        }
    };
    if let Some(r) = reconciliation {
        extras.unexplained_lines = Some(r.lines_unexplained);
        extras.tie_outs = r.tie_outs.clone();
    }
    extras.credits = match known.credit_findings {
        Some(f) => f.to_vec(),
        None => {
            let opts = settings.credit_options(settings.as_of);
            crate::credits::credits(layout, &opts)?.0.findings
        }
    };
    let first = chrono::NaiveDate::from_ymd_opt(month.year().into(), month.month().into(), 1);
    let last = first
        .and_then(|f| f.checked_add_months(chrono::Months::new(1)))
        .and_then(|d| d.pred_opt());
    let in_month = |r: &crate::anomalies::Row| {
        r.alert
            && first.is_none_or(|f| r.finding.date >= f)
            && last.is_none_or(|l| r.finding.date <= l)
    };
    extras.anomalies = match known.anomalies {
        Some(rows) => rows.iter().filter(|r| in_month(r)).cloned().collect(),
        None => {
            let policy = settings
                .anomaly_policy()
                .map_err(|e| RunError::Usage(e.to_string()))?;
            crate::anomalies::anomalies(layout, &policy, (first, last), None)?
                .into_iter()
                .filter(|r| in_month(r))
                .collect()
        }
    };
    Ok(extras)
}

/// `tokenledger mail`: the month's chargeback to every team and finance, exactly once.
pub fn mail(
    settings: &Settings,
    month: Month,
    render: &dyn crate::mail::Render,
    dry_run: bool,
    resend: bool,
) -> Result<crate::mail::MailOutcome, RunError> {
    mail_with(
        settings,
        month,
        render,
        (dry_run, resend),
        &Computed::default(),
    )
}

/// [`mail`], with what the caller has already computed for the chargeback.
fn mail_with(
    settings: &Settings,
    month: Month,
    render: &dyn crate::mail::Render,
    (dry_run, resend): (bool, bool),
    known: &Computed<'_>,
) -> Result<crate::mail::MailOutcome, RunError> {
    let cfg = settings
        .mail_settings()
        .map_err(|e| RunError::Usage(e.to_string()))?;
    let cb = chargeback_with(settings, month, known)?;
    let _lock = Snapshot::write(&settings.layout, settings.wait_for_lock)?;
    let opts = crate::mail::Options {
        month,
        close: cb.close,
        dry_run,
        resend,
    };
    Ok(crate::mail::mail(
        &settings.layout,
        &cfg,
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
    pub ingest: IngestSummary,
    pub rated: RateSummary,
    pub price_book: String,
    pub recovered: Option<String>,
    pub months: Vec<MonthOutcome>,
    /// The credits ledger as of today (`None`: no credit lots in the lake).
    pub credits: Option<crate::credits::Ledger>,
    /// Anomalies that alert, dated within [`ALERT_DAYS`] before the as-of day.
    pub anomalies: Vec<crate::anomalies::Row>,
    /// Month close: the chargeback mail of the latest month with usage, once it is final
    /// (`None`: not final yet, or no recipients configured).
    pub chargeback: Option<crate::mail::MailOutcome>,
    /// The alert digest (`None`: no alert recipients).
    pub alerts: Option<crate::mail::alerts::AlertOutcome>,
    /// Mail still queued after this run (chargebacks and digests).
    pub undelivered: usize,
}

/// The nightly digest carries anomalies of the last this many days (older ones are in
/// `tokenledger anomalies`; a first run over a long history does not mail all of it).
pub const ALERT_DAYS: i64 = 7;

impl RunOutcome {
    /// Every reason to look, from every stage.
    pub fn reviews(&self) -> Vec<Review> {
        let mut out = ingest_reviews(&self.ingest);
        for m in &self.months {
            out.extend(m.report.reviews());
            out.extend(m.reconciliation.iter().flat_map(|r| r.reviews()));
        }
        if let Some(l) = self.credits.as_ref().filter(|l| !l.findings.is_empty()) {
            out.push(Review::Credits {
                findings: l.findings.len(),
            });
        }
        if !self.anomalies.is_empty() {
            out.push(Review::Anomalies {
                alerts: self.anomalies.len(),
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
fn months_to_report(layout: &Layout, rated: &RateSummary) -> Result<Vec<Month>, RunError> {
    let mut months = rated.months_rated.clone();
    let all = layout
        .months(Table::Usage, "anthropic")
        .map_err(crate::lake::io::io_err(&layout.root))?;
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
    book: &PriceBook,
    month: Month,
) -> Result<MonthOutcome, RunError> {
    let pricing = report::scan::Pricing {
        book,
        tz: settings.timezone,
    };
    let dims = [Dim::Workspace, Dim::Model];
    let report = report::report(&settings.layout, month, &dims, &settings.teams, &pricing)?;
    Ok(MonthOutcome {
        month,
        report,
        reconciliation: tied_reconciliation(settings, month, book)?,
    })
}

/// The reconciliation of `month` with its tie-outs to the month's invoices; `None` when no
/// cost report covers the month.
fn tied_reconciliation(
    settings: &Settings,
    month: Month,
    book: &PriceBook,
) -> Result<Option<Reconciliation>, RunError> {
    let layout = &settings.layout;
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
    if settings.inputs.is_empty() {
        return Err(RunError::Usage(
            "no inputs: pass --inputs DIR... or set `inputs = [\"…\"]` in tokenledger.toml".into(),
        ));
    }
    let mail_cfg = settings
        .mail_settings()
        .map_err(|e| RunError::Usage(e.to_string()))?;
    let policy = settings
        .anomaly_policy()
        .map_err(|e| RunError::Usage(e.to_string()))?;
    let ingest = ingest(settings, settings.inputs.clone(), None)?;
    let book = settings.price_book()?;
    let rated = rate(settings, &book, &[])?;
    let layout = &settings.layout;
    let to_report = months_to_report(layout, &rated.summary)?;
    let months = to_report
        .iter()
        .map(|&month| report_month(settings, &book, month))
        .collect::<Result<Vec<_>, _>>()?;
    // The credits ledger as of the as-of date, when there are lots to keep.
    let opts = settings.credit_options(settings.as_of);
    let (ledger, inputs) = crate::credits::credits(layout, &opts)?;
    let credit_findings = ledger.findings.clone();
    let credits = (!inputs.lots.is_empty()).then_some(ledger);
    // Every anomaly once: the digest takes the recent alerts, the month close its month's.
    let recent = settings.as_of - chrono::TimeDelta::days(ALERT_DAYS);
    let all_anomalies = crate::anomalies::anomalies(layout, &policy, (None, None), None)?;
    let anomalies: Vec<crate::anomalies::Row> = all_anomalies
        .iter()
        .filter(|r| r.alert && r.finding.date >= recent && r.finding.date <= settings.as_of)
        .cloned()
        .collect();
    let recovered = ingest
        .recovered
        .clone()
        .or(rated.snapshot.recovered.clone());
    // The mail stages take the exclusive lock: the reading snapshot is released first.
    drop(rated.snapshot);
    let closing = to_report.last().copied();
    let known = Computed {
        reconciliation: months
            .iter()
            .find(|m| Some(m.month) == closing)
            .map(|m| m.reconciliation.as_ref()),
        credit_findings: Some(&credit_findings),
        anomalies: Some(&all_anomalies),
    };
    let chargeback = month_close(settings, &mail_cfg, render, closing, &known)?;
    let (alerts, undelivered) =
        alert_digest(settings, &mail_cfg, render, &anomalies, credits.as_ref())?;
    Ok(RunOutcome {
        credits,
        recovered,
        ingest,
        rated: rated.summary,
        price_book: book.fingerprint,
        months,
        anomalies,
        chargeback,
        alerts,
        undelivered,
    })
}

/// The alert digest: tonight's anomalies, credit findings and undelivered mail, each new one
/// to each alert recipient; and how much mail is still queued afterwards.
fn alert_digest(
    settings: &Settings,
    cfg: &crate::mail::MailSettings,
    render: &dyn crate::mail::Render,
    anomalies: &[crate::anomalies::Row],
    credits: Option<&crate::credits::Ledger>,
) -> Result<(Option<crate::mail::alerts::AlertOutcome>, usize), RunError> {
    use crate::mail::alerts::{self, Alert};
    let layout = &settings.layout;
    let queued = crate::mail::log(layout)?
        .iter()
        .filter(|e| e.status == "queued")
        .count();
    let mut items: Vec<Alert> = anomalies.iter().cloned().map(Alert::Anomaly).collect();
    items.extend(
        credits
            .iter()
            .flat_map(|l| l.findings.iter().cloned())
            .map(Alert::Credit),
    );
    if queued > 0 {
        items.push(Alert::Undelivered { messages: queued });
    }
    if cfg.alerts.is_empty() {
        return Ok((None, queued));
    }
    let _lock = Snapshot::write(layout, settings.wait_for_lock)?;
    let out = alerts::send(layout, cfg, render, &items, settings.as_of, false)?;
    let undelivered = queued + out.undelivered;
    Ok((Some(out), undelivered))
}

/// Month close: the chargeback of `latest` (the latest month with usage) once it is final
/// and someone is to receive it. The sent-ledger makes this once per month (and a correction
/// when a final month is restated).
fn month_close(
    settings: &Settings,
    cfg: &crate::mail::MailSettings,
    render: &dyn crate::mail::Render,
    latest: Option<Month>,
    known: &Computed<'_>,
) -> Result<Option<crate::mail::MailOutcome>, RunError> {
    let Some(month) = latest else {
        return Ok(None);
    };
    let close = crate::vocab::Close::of(month, settings.as_of, cfg.grace_days);
    let anyone = !cfg.finance.is_empty() || settings.teams.iter().any(|t| !t.recipients.is_empty());
    if !close.is_final() || !anyone {
        return Ok(None);
    }
    Ok(Some(mail_with(
        settings,
        month,
        render,
        (false, false),
        known,
    )?))
}
