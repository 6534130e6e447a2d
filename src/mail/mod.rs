//! Mail: the monthly chargeback to each team and the finance summary, delivered exactly once.
//!
//! Owns: turning a month's [`bill::Bill`] into messages (one per team recipient, one per finance
//! recipient; MIME: mixed → alternative(text, related(html, inline PNG charts)) + CSV),
//! deciding what a run sends against the sent-ledger (`mail_log`), delivery (`deliver`: SMTP or
//! the outbox), retries with backoff, and recording every outcome.
//! Must not: query usage (the caller hands it the bill and the finance extras), round (the bill
//! is rounded; `present::mail` formats), or ever print, log or store the SMTP password.
//!
//! Exactly once: a message is identified by (month, report, recipient, content hash). Re-running
//! sends nothing already delivered. New content for a delivered message is sent only when it
//! matters: the final version after a provisional one, or a change of the total by more than a
//! cent (an `update` of provisional figures, a `correction` of a final month, which says what
//! changed). A message that fails every attempt stays `queued` and the next run sends it.

pub mod alerts;
pub mod bill;
pub mod deliver;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use serde::Serialize;

use crate::config::MailConfig;
use crate::lake::LakeError;
use crate::lake::io as lio;
use crate::lake::{Layout, Snapshot, Table, Writer};
use crate::money::Money;
use crate::vocab::{Close, Month};
use bill::{Bill, TeamBill};

/// One rendered message (or page): parts and attachments.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// (file name, bytes).
    pub csv: (String, Vec<u8>),
    /// (content id, PNG bytes), referenced from the HTML as `cid:ID`.
    pub images: Vec<(String, Vec<u8>)>,
}

/// What the finance summary shows besides the teams.
#[derive(Debug, Clone, Default)]
pub struct FinanceExtras {
    /// The invoices' tie-out ladders (rounded by `reconcile::tieout`).
    pub tie_outs: Vec<crate::reconcile::tieout::TieOut>,
    /// Lines of the reconciliation with the cost report that no known cause explains (`None`:
    /// no cost report for the month).
    pub unexplained_lines: Option<usize>,
    /// Credit findings as of the run.
    pub credits: Vec<crate::credits::Finding>,
    /// The month's incidents that alerted, one line each with its running cost.
    pub incidents: Vec<crate::anomalies::Incident>,
}

/// Why a message or page could not be rendered (the presentation layer's own error).
pub type RenderFailure = Box<dyn std::error::Error + Send + Sync>;

/// How bills become messages: implemented by the presentation layer (`present::mail`), so
/// this stage never renders.
pub trait Render {
    fn team(
        &self,
        bill: &Bill,
        team: &TeamBill,
        close: Close,
        correction: Option<&str>,
    ) -> Result<Rendered, RenderFailure>;
    /// The finance summary; `correction` says what changed when it replaces a final one.
    fn finance(
        &self,
        bill: &Bill,
        close: Close,
        extras: &FinanceExtras,
        correction: Option<&str>,
    ) -> Result<Rendered, RenderFailure>;
    /// The nightly digest of alerts a recipient has not had yet.
    fn alerts(
        &self,
        alerts: &[alerts::Alert],
        as_of: chrono::NaiveDate,
    ) -> Result<Rendered, RenderFailure>;
    /// The month's chargeback as one self-contained HTML page (`report --format html`).
    fn page(
        &self,
        bill: &Bill,
        close: Close,
        extras: &FinanceExtras,
    ) -> Result<String, RenderFailure>;
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("[mail] {0}")]
    Config(String),
    #[error("the mail could not be rendered")]
    Render(#[source] RenderFailure),
    #[error(transparent)]
    Deliver(#[from] deliver::DeliverError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("composing the message to {recipient}")]
    Compose {
        recipient: String,
        source: lettre::error::Error,
    },
}

/// What became of one message: the sent-ledger's `status` column (text only at the lake edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Accepted by the SMTP server.
    Sent,
    /// Written to the outbox (no SMTP configured).
    Written,
    /// Written to the dry-run outbox; never recorded.
    DryRun,
    /// Every attempt failed: sent again by the next run.
    Queued,
    /// A queued message replaced by a newer version of the same report.
    Superseded,
    /// Not sent: the ledger says it was delivered already.
    Skipped,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Sent,
        Status::Written,
        Status::DryRun,
        Status::Queued,
        Status::Superseded,
        Status::Skipped,
    ];
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Written => "written",
            Status::DryRun => "dry-run",
            Status::Queued => "queued",
            Status::Superseded => "superseded",
            Status::Skipped => "skipped",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// The recipient has it (by SMTP or in the outbox).
    pub fn delivered(self) -> bool {
        matches!(self, Status::Sent | Status::Written)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message goes out: the sent-ledger's `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The first version of a report.
    Original,
    /// The final version after provisional ones.
    Final,
    /// A provisional report whose total moved by more than a cent.
    Update,
    /// A final report whose total moved by more than a cent (the provider restated usage).
    Correction,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Original, Kind::Final, Kind::Update, Kind::Correction];
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Original => "original",
            Kind::Final => "final",
            Kind::Update => "update",
            Kind::Correction => "correction",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the sent-ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub month: String,
    pub report: String,
    pub recipient: String,
    pub content_hash: String,
    pub kind: Kind,
    /// Whether the month was final when this was sent (the `close` column: `final` or
    /// `provisional`).
    pub final_close: bool,
    pub status: Status,
    pub transport: String,
    pub subject: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub total_usd: Money,
    pub total_cents: i64,
    pub recorded_at: i64,
}

impl Entry {
    fn delivered(&self) -> bool {
        self.status.delivered()
    }
}

/// The total of the last final chargeback delivered to finance for `month`, and the UTC day
/// it was recorded.
pub fn final_delivered(
    layout: &Snapshot,
    month: &str,
) -> Result<Option<(Money, chrono::NaiveDate)>, MailError> {
    Ok(log(layout)?
        .into_iter()
        .filter(|e| e.month == month && e.report == "finance" && e.final_close)
        .filter(Entry::delivered)
        .max_by_key(|e| e.recorded_at)
        .and_then(|e| {
            chrono::DateTime::from_timestamp_micros(e.recorded_at)
                .map(|t| (e.total_usd, t.date_naive()))
        }))
}

/// The sent-ledger, every row.
pub fn log(layout: &Snapshot) -> Result<Vec<Entry>, MailError> {
    use crate::lake::batch::{i64_col, str_col, ts_col};
    let mut out = Vec::new();
    for b in lio::read_all(&layout.table_file(Table::MailLog))? {
        let col = |n: &str| str_col(&b, n);
        let (month, report, recipient, hash) = (
            col("month")?,
            col("report")?,
            col("recipient")?,
            col("content_hash")?,
        );
        let (kind, close, status, transport, subject, err) = (
            col("kind")?,
            col("close")?,
            col("status")?,
            col("transport")?,
            col("subject")?,
            col("last_error")?,
        );
        let (attempts, cents, at) = (
            i64_col(&b, "attempts")?,
            i64_col(&b, "total_cents")?,
            ts_col(&b, "recorded_at")?,
        );
        let total = b
            .column_by_name("total_usd")
            .and_then(|c| c.as_any().downcast_ref::<Decimal128Array>())
            .ok_or_else(|| LakeError::Column {
                path: layout.table_file(Table::MailLog),
                column: "total_usd".into(),
            })?;
        let bad = |column: &str| LakeError::Column {
            path: layout.table_file(Table::MailLog),
            column: column.into(),
        };
        for i in 0..b.num_rows() {
            out.push(Entry {
                month: month.value(i).into(),
                report: report.value(i).into(),
                recipient: recipient.value(i).into(),
                content_hash: hash.value(i).into(),
                kind: Kind::parse(kind.value(i)).ok_or_else(|| bad("kind"))?,
                final_close: match close.value(i) {
                    "final" => true,
                    "provisional" => false,
                    _ => return Err(bad("close").into()),
                },
                status: Status::parse(status.value(i)).ok_or_else(|| bad("status"))?,
                transport: transport.value(i).into(),
                subject: subject.value(i).into(),
                attempts: attempts.value(i),
                last_error: err.is_valid(i).then(|| err.value(i).to_string()),
                total_usd: Money::from_units(total.value(i)),
                total_cents: cents.value(i),
                recorded_at: at.value(i),
            });
        }
    }
    Ok(out)
}

fn write_log(writer: &Writer, rows: &[Entry]) -> Result<(), MailError> {
    let strs = |f: fn(&Entry) -> &str| -> Arc<StringArray> {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let b = RecordBatch::try_new(
        crate::lake::schema::of(Table::MailLog),
        vec![
            strs(|e| &e.month),
            strs(|e| &e.report),
            strs(|e| &e.recipient),
            strs(|e| &e.content_hash),
            strs(|e| e.kind.as_str()),
            strs(|e| {
                if e.final_close {
                    "final"
                } else {
                    "provisional"
                }
            }),
            strs(|e| e.status.as_str()),
            strs(|e| &e.transport),
            strs(|e| &e.subject),
            Arc::new(Int64Array::from(
                rows.iter().map(|e| e.attempts).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|e| e.last_error.as_deref())
                    .collect::<Vec<_>>(),
            )),
            Arc::new(
                Decimal128Array::from(rows.iter().map(|e| e.total_usd.units()).collect::<Vec<_>>())
                    .with_precision_and_scale(
                        crate::lake::MONEY_PRECISION,
                        crate::lake::MONEY_SCALE as i8,
                    )
                    .expect("the lake's money type"),
            ),
            Arc::new(Int64Array::from(
                rows.iter().map(|e| e.total_cents).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(
                    rows.iter().map(|e| e.recorded_at).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ],
    )
    .expect("mail_log schema");
    writer.replace_table(Table::MailLog, &[b])?;
    Ok(())
}

/// The finance recipient of the outbox when `[mail]` names none and has no SMTP.
pub const DEFAULT_FINANCE: &str = "Finance <finance@localhost>";

/// What `[mail]` resolves to.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub from: Mailbox,
    pub finance: Vec<Mailbox>,
    /// Recipients of the nightly alert digest (default: the finance recipients).
    pub alerts: Vec<Mailbox>,
    pub smtp: Option<crate::config::SmtpConfig>,
    pub templates: Option<PathBuf>,
    pub grace_days: u32,
    pub shared_workspaces: Vec<String>,
    pub attempts: u32,
    pub backoff: std::time::Duration,
}

fn mailbox(s: &str, what: &str) -> Result<Mailbox, MailError> {
    s.parse::<Mailbox>()
        .map_err(|e| MailError::Config(format!("{what} {s:?} is not a mail address: {e}")))
}

impl MailSettings {
    pub fn from_config(c: &MailConfig) -> Result<MailSettings, MailError> {
        // With nowhere to send (no SMTP) and no one named, the outbox still shows what finance
        // would receive: the demo's mail.
        let finance = if c.finance.is_empty() && c.smtp.is_none() {
            vec![DEFAULT_FINANCE.to_string()]
        } else {
            c.finance.clone()
        };
        let c = &MailConfig {
            finance,
            ..c.clone()
        };
        Ok(MailSettings {
            from: mailbox(
                c.from
                    .as_deref()
                    .unwrap_or("tokenledger <tokenledger@localhost>"),
                "from",
            )?,
            finance: c
                .finance
                .iter()
                .map(|f| mailbox(f, "finance"))
                .collect::<Result<_, _>>()?,
            alerts: c
                .alerts
                .as_ref()
                .unwrap_or(&c.finance)
                .iter()
                .map(|f| mailbox(f, "alerts"))
                .collect::<Result<_, _>>()?,
            smtp: c.smtp.clone(),
            templates: c.templates.clone(),
            grace_days: c.grace_days.unwrap_or(3),
            shared_workspaces: c.shared_workspaces.clone(),
            attempts: c.attempts.unwrap_or(3).max(1),
            backoff: std::time::Duration::from_millis(c.backoff_ms.unwrap_or(2000)),
        })
    }
}

/// What a run asks for.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub month: Month,
    pub close: Close,
    /// Write every message to `outbox/dry-run/` and record nothing.
    pub dry_run: bool,
    /// Send even what the ledger says was delivered.
    pub resend: bool,
}

/// One message this run composed, and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub report: String,
    pub recipient: String,
    pub subject: String,
    /// original | final | update | correction | (skipped: why)
    /// Why it went out (`None`: skipped).
    pub kind: Option<Kind>,
    pub status: Status,
    pub path: Option<PathBuf>,
    pub error: Option<String>,
}

impl Delivery {
    fn of(
        o: &Outgoing,
        kind: Option<Kind>,
        status: Status,
        path: Option<PathBuf>,
        error: Option<String>,
    ) -> Delivery {
        Delivery {
            report: o.report.clone(),
            recipient: o.to.email.to_string(),
            subject: o.rendered.subject.clone(),
            kind,
            status,
            path,
            error,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MailOutcome {
    pub month: Month,
    pub close: Close,
    pub transport: &'static str,
    pub deliveries: Vec<Delivery>,
    /// Messages still queued for a later run (this month's and earlier).
    pub undelivered: usize,
    pub outbox: PathBuf,
}

impl MailOutcome {
    /// Mail still queued is a reason to look (exit code 3).
    pub fn reviews(&self) -> Vec<crate::vocab::Review> {
        (self.undelivered > 0)
            .then_some(crate::vocab::Review::Undelivered {
                messages: self.undelivered,
            })
            .into_iter()
            .collect()
    }
}

/// A message to send: who, which report, the rendered content and its figures.
pub(crate) struct Outgoing {
    pub(crate) report: String,
    pub(crate) to: Mailbox,
    pub(crate) rendered: Rendered,
    pub(crate) hash: String,
    pub(crate) total: Money,
    pub(crate) cents: i128,
}

pub(crate) fn content_hash(r: &Rendered, to: &str) -> String {
    let mut h = blake3::Hasher::new();
    for part in [
        to.as_bytes(),
        r.subject.as_bytes(),
        r.text.as_bytes(),
        r.html.as_bytes(),
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(r.csv.0.as_bytes());
    h.update(&r.csv.1);
    for (id, png) in &r.images {
        h.update(id.as_bytes());
        h.update(png);
    }
    h.finalize().to_hex()[..32].to_string()
}

/// The MIME message: mixed → alternative(text, related(html, inline PNGs)) + the CSV.
pub(crate) fn message(from: &Mailbox, o: &Outgoing) -> Result<Message, MailError> {
    let r = &o.rendered;
    let mut related = MultiPart::related().singlepart(SinglePart::html(r.html.clone()));
    let png = ContentType::parse("image/png").expect("a valid content type");
    for (id, bytes) in &r.images {
        related =
            related.singlepart(Attachment::new_inline(id.clone()).body(bytes.clone(), png.clone()));
    }
    let alternative = MultiPart::alternative()
        .singlepart(SinglePart::plain(r.text.clone()))
        .multipart(related);
    let csv = ContentType::parse("text/csv; charset=utf-8").expect("a valid content type");
    let mixed = MultiPart::mixed()
        .multipart(alternative)
        .singlepart(Attachment::new(r.csv.0.clone()).body(r.csv.1.clone(), csv));
    Message::builder()
        .from(from.clone())
        .to(o.to.clone())
        .subject(r.subject.clone())
        .message_id(Some(format!("<{}.{}@tokenledger>", o.hash, o.report.len())))
        .multipart(mixed)
        .map_err(|source| MailError::Compose {
            recipient: o.to.to_string(),
            source,
        })
}

/// What the ledger says to do with `o`: `None` to skip (with why), or the kind to send.
fn decide(
    log: &[Entry],
    month: &str,
    o: &Outgoing,
    close: Close,
    resend: bool,
) -> Result<Kind, String> {
    let to = o.to.email.to_string();
    let mine: Vec<&Entry> = log
        .iter()
        .filter(|e| e.month == month && e.report == o.report && e.recipient == to)
        .collect();
    let last = mine
        .iter()
        .filter(|e| e.delivered())
        .max_by_key(|e| e.recorded_at);
    let same = mine.iter().find(|e| e.content_hash == o.hash);
    if let Some(e) = same {
        if e.delivered() && !resend {
            return Err(format!("already {} ({})", e.status, e.kind));
        }
        if e.status == Status::Queued {
            return Ok(e.kind);
        }
    }
    let Some(last) = last else {
        return Ok(Kind::Original);
    };
    if resend {
        return Ok(last.kind);
    }
    let moved = (i128::from(last.total_cents) - o.cents).abs() > 1;
    match (last.final_close, close.is_final()) {
        (false, true) => Ok(Kind::Final),
        (false, false) if moved => Ok(Kind::Update),
        (true, _) if moved => Ok(Kind::Correction),
        _ => Err("delivered; the figures have not changed by more than a cent".into()),
    }
}

/// What changed, when the last delivered version of this report was final and its total
/// differs from `cents` by more than a cent.
fn correction_text(
    log: &[Entry],
    month: &str,
    report: &str,
    to: &str,
    cents: i128,
) -> Option<String> {
    let last = log
        .iter()
        .filter(|e| e.month == month && e.report == report && e.recipient == to && e.delivered())
        .max_by_key(|e| e.recorded_at)?;
    let old = i128::from(last.total_cents);
    if !last.final_close || (old - cents).abs() <= 1 {
        return None;
    }
    let when = chrono::DateTime::from_timestamp_micros(last.recorded_at)
        .map(|t| t.date_naive().to_string())
        .unwrap_or_default();
    Some(format!(
        "the {month} total changed from ${} to ${} ({}) after the provider restated usage for a \
         month already reported as final; this replaces the report sent on {when}.",
        crate::money::cents_text(old),
        crate::money::cents_text(cents),
        signed_cents(cents - old)
    ))
}

fn signed_cents(c: i128) -> String {
    let sign = if c < 0 { "-" } else { "+" };
    format!("{sign}${}", crate::money::cents_text(c.abs()))
}

/// A file-name-safe form of a name.
pub fn slug(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "x".into() } else { s }
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Composes every message of the month, decides against the ledger, delivers, records, under
/// the writer's exclusive lock.
pub fn mail(
    writer: &Writer,
    cfg: &MailSettings,
    render: &dyn Render,
    bill: &Bill,
    extras: &FinanceExtras,
    opts: Options,
) -> Result<MailOutcome, MailError> {
    let layout: &Layout = writer;
    let mut log = log(writer)?;
    let month = opts.month.key();
    let smtp = match (&cfg.smtp, opts.dry_run) {
        (Some(c), false) => Some(deliver::Smtp::new(c)?),
        _ => None,
    };
    let outbox = layout.root.join("outbox").join(if opts.dry_run {
        format!("dry-run/{month}")
    } else {
        month.clone()
    });
    let mut deliveries = Vec::new();
    for out in compose(render, cfg, bill, extras, opts.close, &log, &month)? {
        let to = out.to.email.to_string();
        let kind = match decide(&log, &month, &out, opts.close, opts.resend) {
            Ok(k) => k,
            Err(why) => {
                deliveries.push(Delivery::of(&out, None, Status::Skipped, None, Some(why)));
                continue;
            }
        };
        let m = message(&cfg.from, &out)?;
        let name = format!("{}--{}--{}", slug(&out.report), slug(&to), &out.hash[..8]);
        let (status, path, error, attempts) =
            deliver_one(smtp.as_ref(), &outbox, &name, &m, cfg, opts.dry_run)?;
        let d = Delivery::of(&out, Some(kind), status, path, error.clone());
        // A kill here (sent, not yet recorded) sends this one message again on the re-run, with
        // the same content-derived Message-ID: the one window where mail is at-least-once.
        crate::lake::txn::crash_point("mail-delivered");
        if !opts.dry_run {
            record(
                &mut log,
                &month,
                &out,
                kind,
                opts.close,
                status,
                smtp.is_some(),
                attempts,
                error,
            );
            write_log(writer, &log)?;
            crate::lake::txn::crash_point("mail-recorded");
        }
        deliveries.push(d);
    }
    let undelivered = log.iter().filter(|e| e.status == Status::Queued).count();
    Ok(MailOutcome {
        month: opts.month,
        close: opts.close,
        transport: if opts.dry_run {
            "dry-run"
        } else if smtp.is_some() {
            "smtp"
        } else {
            "outbox"
        },
        deliveries,
        undelivered,
        outbox,
    })
}

/// Delivers one message: to the outbox (dry run, or no SMTP) or by SMTP with retries.
/// Returns (status, .eml path, last error, attempts).
pub(crate) fn deliver_one(
    smtp: Option<&deliver::Smtp>,
    outbox: &Path,
    name: &str,
    m: &Message,
    cfg: &MailSettings,
    dry_run: bool,
) -> Result<(Status, Option<PathBuf>, Option<String>, i64), MailError> {
    Ok(match smtp {
        _ if dry_run => {
            let p = deliver::write_eml(outbox, name, m)?;
            (Status::DryRun, Some(p), None, 0)
        }
        None => {
            let p = deliver::write_eml(outbox, name, m)?;
            (Status::Written, Some(p), None, 1)
        }
        Some(s) => send_with_retries(s, m, cfg),
    })
}

/// Sends with `cfg.attempts` attempts, the wait doubling from `cfg.backoff`.
fn send_with_retries(
    s: &deliver::Smtp,
    m: &Message,
    cfg: &MailSettings,
) -> (Status, Option<PathBuf>, Option<String>, i64) {
    let mut wait = cfg.backoff;
    let mut last = None;
    for k in 1..=cfg.attempts {
        match s.send(m) {
            Ok(()) => return (Status::Sent, None, None, k.into()),
            Err((e, permanent)) => {
                last = Some(e);
                if permanent {
                    return (Status::Queued, None, last, k.into());
                }
            }
        }
        if k < cfg.attempts {
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
    (Status::Queued, None, last, cfg.attempts.into())
}

#[allow(clippy::too_many_arguments)]
fn record(
    log: &mut Vec<Entry>,
    month: &str,
    out: &Outgoing,
    kind: Kind,
    close: Close,
    status: Status,
    smtp: bool,
    attempts: i64,
    error: Option<String>,
) {
    let to = out.to.email.to_string();
    // A queued older version of this message is replaced by what this run composed.
    for e in log.iter_mut() {
        if e.month == month
            && e.report == out.report
            && e.recipient == to
            && e.status == Status::Queued
            && e.content_hash != out.hash
        {
            e.status = Status::Superseded;
        }
    }
    let prior = log.iter().position(|e| {
        e.month == month
            && e.report == out.report
            && e.recipient == to
            && e.content_hash == out.hash
    });
    let entry = Entry {
        month: month.into(),
        report: out.report.clone(),
        recipient: to,
        content_hash: out.hash.clone(),
        kind,
        final_close: close.is_final(),
        status,
        transport: if smtp { "smtp" } else { "outbox" }.into(),
        subject: out.rendered.subject.clone(),
        attempts: attempts + prior.map_or(0, |i| log[i].attempts),
        last_error: error,
        total_usd: out.total,
        // Cents past i64 (92 quadrillion dollars) are not a bill; saturate rather than wrap.
        total_cents: i64::try_from(out.cents).unwrap_or(i64::MAX),
        recorded_at: now_micros(),
    };
    match prior {
        Some(i) => log[i] = entry,
        None => log.push(entry),
    }
}

/// Every message of the month: each team's recipients get the team's report, finance the
/// summary. A correction says what changed.
fn compose(
    render: &dyn Render,
    cfg: &MailSettings,
    bill: &Bill,
    extras: &FinanceExtras,
    close: Close,
    log: &[Entry],
    month: &str,
) -> Result<Vec<Outgoing>, MailError> {
    let mut out = Vec::new();
    for t in &bill.teams {
        for r in &t.recipients {
            let to = mailbox(r, &format!("team {:?} recipient", t.name))?;
            let report = format!("team:{}", t.name);
            let email = to.email.to_string();
            let correction = correction_text(log, month, &report, &email, t.cents);
            let rendered = render
                .team(bill, t, close, correction.as_deref())
                .map_err(MailError::Render)?;
            out.push(Outgoing {
                hash: content_hash(&rendered, &email),
                report,
                to,
                rendered,
                total: t.total,
                cents: t.cents,
            });
        }
    }
    for to in &cfg.finance {
        // Per recipient: a correction replaces what this recipient had.
        let email = to.email.to_string();
        let correction = correction_text(log, month, "finance", &email, bill.cents);
        let rendered = render
            .finance(bill, close, extras, correction.as_deref())
            .map_err(MailError::Render)?;
        out.push(Outgoing {
            hash: content_hash(&rendered, &email),
            report: "finance".into(),
            to: to.clone(),
            rendered,
            total: bill.total,
            cents: bill.cents,
        });
    }
    Ok(out)
}

/// The outbox directory of a data dir.
pub fn outbox(root: &Path) -> PathBuf {
    root.join("outbox")
}
