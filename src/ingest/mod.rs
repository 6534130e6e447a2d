//! Ingest: provider export files → the lake, idempotently.
//!
//! Owns: which files are new (content-hash manifest = the `ingest_log` table), which rows are
//! in force after this ingest (restatement and source precedence, decided per covered
//! interval), naming IDs from the workspace/key lists, and assembling one atomic commit.
//! Must not: parse formats itself (`sources`), write Parquet except through `lake`, or price.
//!
//! The rules, also in ARCHITECTURE.md:
//! * A file whose content hash is already in `ingest_log` is skipped ("unchanged").
//! * Every export says which intervals it covers (its buckets, even empty ones; a CSV covers
//!   every day from its first to its last date). Within a family (`api` report pages,
//!   `analytics` queries, `export` Console CSVs) the most recently ingested file that covers an
//!   interval owns it; files of one command count in the order given (directories in path
//!   order). Rows are in force iff their file owns their interval; the others are "superseded"
//!   and leave the lake.
//! * Across families the [`Precedence`] decides (`[ingest] precedence`, by default analytics,
//!   then api, then export): a bucket a higher family overlaps is not used (said per file), and
//!   a higher family's file takes the interval over; the lake keeps the precedence it was built
//!   with.
//! * A newer export whose buckets cover only part of an older, coarser bucket (1h buckets
//!   inside an ingested 1d bucket) cannot restate it without losing or double counting usage:
//!   those buckets are quarantined and the older data stays.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::lake::batch::{self, CostBuilder, Names, QuarantineRow, Stored, UsageBuilder};
use crate::lake::io::{LakeError, StagedFile};
use crate::lake::txn::Writer;
use crate::lake::{Layout, Table, schema};
use crate::model::{
    self, ApiKey, CostRow, LedgerItem, Precedence, SourceFamily, SourceFormat, UsageRow, Workspace,
};
use crate::sources::{FileError, Limits, Quarantined, Sink, mask_secrets};
use crate::vocab::Provider;

mod coverage;
mod ledger;
mod merge;
mod phases;
pub mod walk;

pub use walk::Walk;

const BATCH_ROWS: usize = 64 * 1024;

/// The columns that decide whether a stored row is still in force.
pub(super) const MASK_COLUMNS: [&str; 5] = [
    "bucket_start",
    "bucket_end",
    "source_format",
    "ingest_id",
    "source_file",
];

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub paths: Vec<PathBuf>,
    pub format: Option<SourceFormat>,
    pub jobs: usize,
    pub progress: bool,
    /// The plausible window of dates and the longest span of one export.
    pub limits: Limits,
    /// Which family owns an interval several cover.
    pub precedence: Precedence,
    /// Anthropic's default workspace's tagged id (Analytics API): ingested as the default
    /// workspace (null id, `Default`), as the legacy reports call it.
    pub default_workspace: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Read and committed (some rows may still be quarantined or superseded).
    New,
    /// Same content was ingested before: nothing to do.
    Unchanged,
    /// Same content as an earlier file of this command.
    Duplicate,
    /// The file as a whole could not be read; it is in the quarantine.
    Quarantined,
    /// Not read: not a regular file, a symlink out of the input tree, or unreadable (reason in
    /// `error`). Needs a look (exit 3); nothing is written to the lake for it.
    Skipped,
    /// Not read, as expected (the data dir inside an input dir).
    Ignored,
    /// A report page of empty buckets with no hint of which report it is: nothing loaded,
    /// nothing restated (see `error` for how to give the hint).
    EmptyAmbiguous,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    pub path: String,
    pub format: Option<String>,
    pub status: FileStatus,
    pub content_hash: String,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_quarantined: u64,
    pub rows_superseded: u64,
    /// Buckets this file covers that a family ranked above its own owns ([`Precedence`]):
    /// kept out of every total, said in `notes`.
    pub buckets_not_counted: u64,
    /// The families whose intervals this file took over ([`Precedence`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub took_over: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Assumptions made reading the file (an older header, a hinted empty page).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl FileSummary {
    fn new(path: String, status: FileStatus) -> Self {
        Self {
            path,
            format: None,
            status,
            content_hash: String::new(),
            rows_read: 0,
            rows_loaded: 0,
            rows_quarantined: 0,
            rows_superseded: 0,
            buckets_not_counted: 0,
            took_over: Vec::new(),
            error: None,
            notes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FormatTotals {
    pub files_new: u64,
    pub files_unchanged: u64,
    pub rows_loaded: u64,
    pub rows_quarantined: u64,
    pub rows_superseded: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    pub ingest_id: String,
    pub data_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
    pub files: Vec<FileSummary>,
    pub by_format: BTreeMap<String, FormatTotals>,
    /// Rows already in the lake that this ingest restated.
    pub lake_rows_superseded: u64,
    pub rows_quarantined: u64,
    pub committed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}: no such file or directory")]
    MissingPath(PathBuf),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The config asks another precedence than the lake was built with.
    #[error(
        "this lake was built with source precedence {lake}, the config asks {config}: which rows \
         count was decided by the first, so it cannot change under an existing lake. Set \
         [ingest] precedence back, or ingest the landing files into a new data dir"
    )]
    Precedence { lake: String, config: String },
}

/// Records the precedence of a new lake, or checks the config still asks the recorded one.
fn fix_precedence(layout: &crate::lake::Layout, prec: &Precedence) -> Result<(), IngestError> {
    let path = layout.precedence_file();
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim() == prec.text() => Ok(()),
        Ok(text) => Err(IngestError::Precedence {
            lake: text.trim().to_string(),
            config: prec.text(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::lake::io::write_file_atomic(&path, format!("{}\n", prec.text()).as_bytes())
                .map_err(io(&path))
        }
        Err(e) => Err(io(&path)(e)),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The name a file is known by in the lake (`source_file`, the manifest, coverage ownership):
/// its path as text. A path that is not UTF-8 keeps every byte, so two files whose names differ
/// only in such bytes are two sources, never one: the readable lossy form is followed by the
/// raw bytes in hex.
pub fn source_name(path: &Path) -> String {
    match path.to_str() {
        Some(s) => s.to_string(),
        None => {
            let raw = path.as_os_str().as_encoded_bytes();
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            format!("{} [non-UTF-8 name, bytes {hex}]", path.display())
        }
    }
}

/// A new ingest id: sortable by time, unique enough for one data dir (which is locked).
pub fn new_ingest_id(now: DateTime<Utc>) -> String {
    crate::model::ingest_id(now, fastrand::u16(..))
}

/// A file's BLAKE3 content hash (hex) and size in bytes, or why it could not be read.
type Hashed = Result<(String, u64), String>;

/// Content hashes of many files, `jobs` at a time, in the order given.
fn hash_files(files: &[PathBuf], jobs: usize) -> Vec<Hashed> {
    crate::par::map(files, jobs, |p| {
        hash_file(p).map_err(|e| match e {
            IngestError::Io { source, .. } => format!("cannot read: {source}"),
            other => crate::errors::chain(&other),
        })
    })
}

/// The format of a report that can be read once (parsed from memory and hashed as it is
/// read), or `None`: lists and ledger files are parsed before any report and hashed first,
/// a file over [`crate::sources::IN_MEMORY_LIMIT`] is streamed, and a file that is not plainly one
/// report (undetected, a page of empty buckets) goes through the plan's checks.
fn read_once_format(path: &Path, forced: Option<SourceFormat>) -> Option<SourceFormat> {
    let size = std::fs::metadata(path).ok()?.len();
    if size > crate::sources::IN_MEMORY_LIMIT {
        return None;
    }
    let format = match forced {
        Some(f) => f,
        None => match crate::sources::detect_file(path) {
            Ok(Ok(crate::sources::Detected::Format(f))) => f,
            _ => return None,
        },
    };
    Group::of(format).is_some().then_some(format)
}

/// Which report a page of empty buckets is, from its file name or folder (`usage`/`cost`).
fn empty_page_hint(path: &Path, detected: crate::sources::Detected) -> Option<SourceFormat> {
    use crate::sources::Detected;
    let openai = detected == Detected::EmptyOpenAiPage;
    let named = folder_format(path).filter(|f| openai == (f.provider() == Some(Provider::OpenAi)));
    if named.is_some() || openai {
        return named;
    }
    let names = [path.file_name(), path.parent().and_then(Path::file_name)];
    names.into_iter().flatten().find_map(|n| {
        let n = n.to_string_lossy().to_ascii_lowercase();
        match (n.contains("usage"), n.contains("cost")) {
            (true, false) => Some(SourceFormat::AnthropicUsageApi),
            (false, true) => Some(SourceFormat::AnthropicCostApi),
            _ => None,
        }
    })
}

/// Why a page of empty buckets with no hint loads nothing, and how to give the hint.
fn empty_page_error(d: crate::sources::Detected) -> &'static str {
    match d {
        crate::sources::Detected::EmptyOpenAiPage => {
            "an OpenAI Usage or Costs API page whose buckets are all empty does not say which \
             endpoint it is: nothing loaded, nothing restated. To restate those days to zero, \
             pass --format openai-usage-<endpoint> (or openai-costs), or put it in a folder \
             named so (as tokenledger pull does)"
        }
        _ => {
            "a report page whose buckets are all empty (a quiet day?) cannot tell a usage report \
             from a cost report: nothing loaded, nothing restated. To restate those days to \
             zero, pass --format anthropic-usage-api (or anthropic-cost-api), or put 'usage' or \
             'cost' in the file or folder name"
        }
    }
}

/// The report format a page's folder is named after, as `tokenledger pull` lands pages
/// (`landing/<provider>/<pull>/<format>/<window>/p00001.json`). Pages of empty buckets of two
/// endpoints are the same bytes: the folder tells them apart, and ingest counts them apart.
pub(super) fn folder_format(path: &Path) -> Option<SourceFormat> {
    let page_format = |f: &SourceFormat| {
        matches!(
            f,
            SourceFormat::OpenAiUsage(_)
                | SourceFormat::OpenAiCosts
                | SourceFormat::AnthropicUsageApi
                | SourceFormat::AnthropicCostApi
        )
    };
    path.ancestors()
        .skip(1)
        .take(2)
        .filter_map(|a| a.file_name())
        .find_map(|n| SourceFormat::parse(&n.to_string_lossy()).filter(page_format))
}

fn hash_file(path: &Path) -> Result<(String, u64), IngestError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io(path))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((h.finalize().to_hex().to_string(), n))
}

/// Names for IDs, and IDs for names (Console CSV), from the workspace and key lists.
#[derive(Default)]
struct Dims {
    workspaces: BTreeMap<String, Stored<Workspace>>,
    api_keys: BTreeMap<String, Stored<ApiKey>>,
    ws_by_name: HashMap<String, Option<String>>,
    key_by_name: HashMap<(Option<String>, String), Option<String>>,
    /// The default workspace's tagged id, read as the default workspace.
    default_workspace: Option<String>,
}

impl Dims {
    fn index(&mut self) {
        self.ws_by_name.clear();
        for w in self.workspaces.values() {
            self.ws_by_name
                .entry(w.item.name.clone())
                .and_modify(|v| *v = None) // ambiguous name: no id
                .or_insert_with(|| Some(w.item.id.clone()));
        }
        self.key_by_name.clear();
        for k in self.api_keys.values() {
            self.key_by_name
                .entry((k.item.workspace_id.clone(), k.item.name.clone()))
                .and_modify(|v| *v = None)
                .or_insert_with(|| Some(k.item.id.clone()));
        }
    }
    /// Names for IDs (Admin API rows) and IDs for names (Console CSV rows), lent from the
    /// lists: nothing is copied per row.
    fn resolve_usage<'a>(&'a self, r: &'a UsageRow<'_>) -> Names<'a> {
        let mut n = Names::of(r);
        match (&r.workspace_id, &r.workspace_name) {
            (Some(id), _) if self.default_workspace.as_deref() == Some(id.as_ref()) => {
                n.workspace_id = None;
                n.workspace_name = Some(model::DEFAULT_WORKSPACE_NAME);
            }
            (Some(id), _) => {
                if let Some(w) = self.workspaces.get(id.as_ref()) {
                    n.workspace_name = Some(&w.item.name);
                }
            }
            (None, Some(name)) if name.as_ref() != model::DEFAULT_WORKSPACE_NAME => {
                n.workspace_id = self
                    .ws_by_name
                    .get(name.as_ref())
                    .and_then(|v| v.as_deref());
            }
            _ => {}
        }
        match (&r.api_key_id, &r.api_key_name) {
            (Some(id), _) => {
                if let Some(k) = self.api_keys.get(id.as_ref()) {
                    n.api_key_name = Some(&k.item.name);
                }
            }
            (None, Some(name)) => {
                n.api_key_id = self
                    .key_by_name
                    .get(&(n.workspace_id.map(str::to_owned), name.to_string()))
                    .and_then(|v| v.as_deref());
            }
            _ => {}
        }
        n
    }
    /// Names for IDs (API rows) and IDs for names (Console cost CSV rows, when unique).
    fn resolve_cost(&self, r: &mut CostRow) {
        match (&r.workspace_id, &r.workspace_name) {
            (Some(id), _) if self.default_workspace.as_ref() == Some(id) => {
                r.workspace_id = None;
                r.workspace_name = Some(model::DEFAULT_WORKSPACE_NAME.into());
            }
            (Some(id), _) => {
                if let Some(w) = self.workspaces.get(id) {
                    r.workspace_name = Some(w.item.name.clone());
                }
            }
            (None, Some(name)) if name != model::DEFAULT_WORKSPACE_NAME => {
                r.workspace_id = self.ws_by_name.get(name).cloned().flatten();
            }
            _ => {}
        }
    }
}

/// Which lake table group a coverage interval belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Group {
    Usage,
    Cost,
}

impl Group {
    fn data(self) -> Table {
        match self {
            Group::Usage => Table::Usage,
            Group::Cost => Table::Cost,
        }
    }
    fn coverage(self) -> Table {
        match self {
            Group::Usage => Table::UsageCoverage,
            Group::Cost => Table::CostCoverage,
        }
    }
    fn of(format: SourceFormat) -> Option<Group> {
        match format {
            SourceFormat::AnthropicUsageApi
            | SourceFormat::AnthropicAnalyticsUsage
            | SourceFormat::AnthropicConsoleUsageCsv
            | SourceFormat::OpenAiUsage(_) => Some(Group::Usage),
            SourceFormat::AnthropicCostApi
            | SourceFormat::AnthropicAnalyticsCost
            | SourceFormat::AnthropicConsoleCostCsv
            | SourceFormat::OpenAiCosts => Some(Group::Cost),
            // Named one by one (no wildcard): a new format with rows must be placed here, or
            // the compiler says so (its rows would otherwise be parsed and never written).
            SourceFormat::AnthropicWorkspaces
            | SourceFormat::AnthropicApiKeys
            | SourceFormat::CreditLotsCsv
            | SourceFormat::BalanceSnapshotsCsv
            | SourceFormat::StripeInvoice
            | SourceFormat::InvoiceCsv
            | SourceFormat::OpenAiProjects
            | SourceFormat::OpenAiProjectApiKeys => None,
        }
    }
}

/// What one parse worker learnt about one file.
#[derive(Default)]
struct ParsedFile {
    rows_read: u64,
    rows_quarantined: u64,
    coverage: Vec<(crate::model::Lane, i64, i64)>,
    error: Option<FileError>,
    notes: Vec<String>,
}

/// The intervals of the rows staged in one part, with their row counts: a new part whose every
/// interval its own file owns after the claims is moved into place as it is, not read back.
pub(super) type PartIntervals = Vec<(crate::model::Lane, i64, i64, u64)>;

/// A staged part of one new file, and the intervals of its rows.
#[derive(Debug, Clone)]
pub(super) struct NewPart {
    pub path: PathBuf,
    pub seq: usize,
    pub intervals: PartIntervals,
}

impl NewPart {
    /// The rows of the part.
    pub fn rows(&self) -> u64 {
        self.intervals.iter().map(|i| i.3).sum()
    }
}

/// Counts a row of `interval` in the part of `month`: rows come bucket by bucket, so this
/// nearly always extends the last run (and allocates nothing).
fn note_interval(
    intervals: &mut BTreeMap<String, PartIntervals>,
    month: &str,
    (fam, start, end): (crate::model::Lane, i64, i64),
) {
    if !intervals.contains_key(month) {
        intervals.insert(month.to_string(), Vec::new());
    }
    let runs = intervals.get_mut(month).expect("just inserted");
    match runs.last_mut() {
        Some(last) if (last.0, last.1, last.2) == (fam, start, end) => last.3 += 1,
        _ => runs.push((fam, start, end, 1)),
    }
}

/// The usage rows a file of this size will hold, about (an API result is ~400 bytes of JSON, a
/// CSV line ~150), within a batch: the first builder is sized for them.
fn expected_rows(path: &Path) -> usize {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    usize::try_from(size / 256)
        .unwrap_or(BATCH_ROWS)
        .clamp(1024, BATCH_ROWS)
}

/// The sink of one worker: resolves names, batches rows per month, writes worker staging files.
struct WorkerSink<'a> {
    dims: &'a Dims,
    staging: &'a Path,
    /// The file's sequence number in this ingest: staged parts are per source file.
    seq: usize,
    ingest_id: &'a str,
    source_file: String,
    usage: BTreeMap<String, UsageBuilder>,
    cost: BTreeMap<String, CostBuilder>,
    /// The intervals of the rows of each month's usage and cost part.
    usage_intervals: BTreeMap<String, PartIntervals>,
    cost_intervals: BTreeMap<String, PartIntervals>,
    files: &'a mut BTreeMap<(Table, String), StagedFile>,
    parsed: ParsedFile,
    workspaces: Vec<Workspace>,
    api_keys: Vec<ApiKey>,
    ledger: Vec<LedgerItem>,
    error: Option<LakeError>,
    last_month: (Option<DateTime<Utc>>, String),
    /// Rows the next usage builder makes room for: the file's expected rows for the first
    /// (from its size), a quarter batch for any further month.
    usage_rows: usize,
    format: SourceFormat,
    now: DateTime<Utc>,
    /// Bad rows, written to a staged quarantine part every QUARANTINE_BATCH rows: a file with
    /// millions of bad rows never sits in memory.
    quarantine_buf: Vec<QuarantineRow>,
}

const QUARANTINE_BATCH: usize = 8192;

impl<'a> WorkerSink<'a> {
    fn new(
        dims: &'a Dims,
        staging: &'a Path,
        job: &Job,
        ingest_id: &'a str,
        now: DateTime<Utc>,
        files: &'a mut BTreeMap<(Table, String), StagedFile>,
    ) -> Self {
        Self {
            dims,
            staging,
            seq: job.seq,
            ingest_id,
            source_file: job.source_file.clone(),
            usage: BTreeMap::new(),
            cost: BTreeMap::new(),
            usage_intervals: BTreeMap::new(),
            cost_intervals: BTreeMap::new(),
            files,
            parsed: ParsedFile::default(),
            workspaces: Vec::new(),
            api_keys: Vec::new(),
            ledger: Vec::new(),
            error: None,
            last_month: (None, String::new()),
            usage_rows: expected_rows(&job.path),
            format: job.format,
            now,
            quarantine_buf: Vec::new(),
        }
    }
    fn staged(&mut self, table: Table, month: &str) -> Result<&mut StagedFile, LakeError> {
        let key = (table, month.to_string());
        if !self.files.contains_key(&key) {
            let path = self.staging.join("new").join(format!(
                "{}-{month}-s{:06}.parquet",
                table.dir_name(),
                self.seq
            ));
            let f = StagedFile::create(path, schema::of(table), table, self.ingest_id)?;
            self.files.insert(key.clone(), f);
        }
        Ok(self.files.get_mut(&key).expect("just inserted"))
    }
    fn flush_quarantine(&mut self) {
        if self.quarantine_buf.is_empty() {
            return;
        }
        let batch = batch::quarantine_batch(&self.quarantine_buf, self.ingest_id, self.now);
        self.quarantine_buf.clear();
        if let Err(e) = self
            .staged(Table::Quarantine, "")
            .and_then(|f| f.write(&batch))
        {
            self.error.get_or_insert(e);
        }
    }
    fn flush(&mut self, all: bool) {
        if all {
            self.flush_quarantine();
        }
        let usage: Vec<String> = self
            .usage
            .iter()
            .filter(|(_, b)| !b.is_empty() && (all || b.len() >= BATCH_ROWS))
            .map(|(m, _)| m.clone())
            .collect();
        for m in usage {
            let batch = self.usage.get_mut(&m).expect("month present").finish();
            if let Err(e) = self.staged(Table::Usage, &m).and_then(|f| f.write(&batch)) {
                self.error.get_or_insert(e);
            }
        }
        let cost: Vec<String> = self
            .cost
            .iter()
            .filter(|(_, b)| !b.is_empty() && (all || b.len() >= BATCH_ROWS))
            .map(|(m, _)| m.clone())
            .collect();
        for m in cost {
            let batch = self.cost.get_mut(&m).expect("month present").finish();
            if let Err(e) = self.staged(Table::Cost, &m).and_then(|f| f.write(&batch)) {
                self.error.get_or_insert(e);
            }
        }
    }
}

impl Sink for WorkerSink<'_> {
    fn usage(&mut self, row: &UsageRow<'_>) {
        self.parsed.rows_read += 1;
        if self.last_month.0 != Some(row.bucket_start) {
            self.last_month = (Some(row.bucket_start), model::month_key(row.bucket_start));
        }
        let m = self.last_month.1.as_str();
        if !self.usage.contains_key(m) {
            let b = UsageBuilder::with_capacity(self.usage_rows, self.source_file.len());
            self.usage.insert(m.to_string(), b);
            self.usage_rows = BATCH_ROWS / 4;
        }
        let b = self.usage.get_mut(m).expect("just inserted");
        b.push_named(
            row,
            self.dims.resolve_usage(row),
            &self.source_file,
            self.ingest_id,
        );
        let full = b.len() >= BATCH_ROWS;
        let fam = row.source_format.lane();
        let (start, end) = row.bucket_micros();
        note_interval(&mut self.usage_intervals, m, (fam, start, end));
        if full {
            self.flush(false);
        }
    }
    fn cost(&mut self, mut row: CostRow) {
        self.dims.resolve_cost(&mut row);
        self.parsed.rows_read += 1;
        let m = model::month_key(row.bucket_start);
        let b = self.cost.entry(m.clone()).or_default();
        if let Err(reason) = b.push(&row, &self.source_file, self.ingest_id) {
            self.parsed.rows_read -= 1;
            self.quarantine(Quarantined {
                location: format!("result #{}", row.source_row),
                line: None,
                field: Some("amount".into()),
                reason,
                excerpt: Some(row.amount_raw),
            });
            return;
        }
        let full = b.len() >= BATCH_ROWS;
        let fam = row.source_format.lane();
        let interval = (
            fam,
            batch::micros(row.bucket_start),
            batch::micros(row.bucket_end),
        );
        note_interval(&mut self.cost_intervals, &m, interval);
        if full {
            self.flush(false);
        }
    }
    fn workspace(&mut self, ws: Workspace) {
        self.parsed.rows_read += 1;
        self.workspaces.push(ws);
    }
    fn api_key(&mut self, key: ApiKey) {
        self.parsed.rows_read += 1;
        self.api_keys.push(key);
    }
    fn ledger(&mut self, item: LedgerItem) {
        self.parsed.rows_read += 1;
        self.ledger.push(item);
    }
    fn quarantine(&mut self, q: Quarantined) {
        self.parsed.rows_read += 1;
        self.parsed.rows_quarantined += 1;
        // Reasons quote values and excerpts quote rows: neither may carry a secret further.
        self.quarantine_buf.push(QuarantineRow {
            source_file: self.source_file.clone(),
            source_format: Some(self.format.as_str().into()),
            location: q.location,
            line: q.line,
            field: q.field,
            reason: mask_secrets(&q.reason),
            excerpt: q.excerpt.map(|e| mask_secrets(&e)),
        });
        if self.quarantine_buf.len() >= QUARANTINE_BATCH {
            self.flush_quarantine();
        }
    }
    fn coverage(&mut self, family: SourceFamily, start: DateTime<Utc>, end: DateTime<Utc>) {
        let lane = crate::model::Lane {
            family,
            scope: self.format.lane().scope,
        };
        self.parsed
            .coverage
            .push((lane, start.timestamp_micros(), end.timestamp_micros()));
    }
    fn note(&mut self, note: String) {
        self.parsed.notes.push(note);
    }
    fn reset(&mut self) {
        // The staged files are recreated (same names) as the file is parsed again.
        self.files.clear();
        self.usage.clear();
        self.cost.clear();
        self.usage_intervals.clear();
        self.cost_intervals.clear();
        self.quarantine_buf.clear();
        self.workspaces.clear();
        self.api_keys.clear();
        self.ledger.clear();
        self.parsed = ParsedFile::default();
    }
}

fn progress_bar(wanted: bool, files: &[PathBuf]) -> indicatif::ProgressBar {
    if !wanted {
        return indicatif::ProgressBar::hidden();
    }
    let total: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg:12} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb
}

/// A file of this command that needs parsing.
#[derive(Debug, Clone)]
struct Job {
    seq: usize,
    path: PathBuf,
    source_file: String,
    format: SourceFormat,
    /// A report read once: its worker hashes the bytes it parses, and whether it is new (not
    /// in the manifest, not a duplicate of an earlier file) is decided after.
    read_once: bool,
}

fn fmt_us(us: i64) -> String {
    batch::from_micros(us)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The files under `paths` an ingest reads (regular files only, never out of an input tree,
/// never the lake itself), found before any lock is taken: a missing path is a usage error.
pub fn walk_inputs(paths: &[PathBuf], layout: &Layout) -> Result<Walk, IngestError> {
    walk::walk(paths, Some(&layout.root)).map_err(IngestError::MissingPath)
}

/// Runs one ingest of `walked` under the writer's exclusive lock (held after recovery; what
/// recovery finished is the writer's to tell). Everything it changes becomes visible in one
/// commit, or not at all.
pub fn ingest(
    writer: &Writer,
    opts: &IngestOptions,
    walked: Walk,
) -> Result<IngestSummary, IngestError> {
    let recovered = writer.recovered.clone();
    fix_precedence(writer.layout(), &opts.precedence)?;
    let mut run = phases::Ingest::start(writer, opts, &walked.files)?;
    run.plan(walked);
    let lists = run.parse_lists()?;
    run.parse_reports(&lists.dims)?;
    run.record_failures();
    run.claim()?;
    run.write_tables(lists)?;
    let committed = run.commit()?;
    Ok(run.summarise(recovered, committed))
}
