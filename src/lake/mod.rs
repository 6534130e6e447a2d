//! The lake: Parquet files under the data dir, and the only code that writes them.
//!
//! Owns: the layout (Hive-style `table/provider=…/month=…/part-….parquet`), the Arrow schemas
//! of every table, turning canonical rows into Arrow batches and back, Parquet writer settings
//! (ZSTD, row-group size, lineage metadata), the lock, and crash-safe commits (staging files +
//! a redo journal, see [`txn`]).
//! Must not: parse provider formats, decide which rows win (that is `ingest`), or query with
//! polars (that is `query`). arrow-rs owns the files; polars only reads them.

pub mod batch;
pub mod delta;
pub mod error;
pub mod io;
pub mod ledger;
pub mod remote;
pub mod schema;
pub mod sync;
pub mod teams;
pub mod txn;
pub mod upgrade;

use std::path::{Path, PathBuf};

pub use error::LakeError;
pub use txn::{Snapshot, WriteTxn, Writer};

use crate::vocab::Provider;

/// Every money column in the lake is `Decimal128(MONEY_PRECISION, MONEY_SCALE)`, in the
/// currency's major unit (dollars). 12 fractional digits hold cents with 10 more digits, and a
/// per-token price of a list rate in $/MTok with 6 decimals, exactly.
pub const MONEY_SCALE: u32 = crate::money::SCALE;
pub const MONEY_PRECISION: u8 = crate::money::PRECISION;

/// The directory inside the data dir where pulled pages are written: input to ingest (the walk
/// reads it like any export folder), never part of the lake's tables.
pub const LANDING_DIR: &str = "landing";

/// Bumped whenever a table's schema changes; written into every file's key-value metadata.
pub const SCHEMA_VERSION: &str = "8";

/// The tables of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Usage,
    UsageCoverage,
    Cost,
    CostCoverage,
    Workspaces,
    ApiKeys,
    IngestLog,
    Quarantine,
    /// Derived: what pricing adds to each usage row (`rating` writes it; part by part a mirror
    /// of `usage`, row by row in the same order); the `rated_usage` view joins the two.
    UsagePricing,
    /// Credit lots bought or granted (our credits CSV).
    CreditLots,
    /// Console balances as seen, the ledger's assertions.
    BalanceSnapshots,
    /// Invoices (Stripe or our invoice CSV), one row each; lines in `InvoiceLines`.
    Invoices,
    InvoiceLines,
    /// Anomaly findings a person marked as expected (`tokenledger anomalies ack`).
    AnomalyAcks,
    /// The sent-ledger of `tokenledger mail`: what went to whom, exactly once.
    MailLog,
    /// What the nightly alert digest mailed to whom.
    AlertLog,
    /// The `[[team]]` map of the config, so analysts' SQL assigns cost to teams as reports do.
    Teams,
    /// What `tokenledger pull` fetched: one row per endpoint × window × attempt night.
    PullLog,
}

impl Table {
    /// Every table of the lake, in layout order (`sql --tables`, upgrades).
    pub const ALL: [Table; 18] = [
        Table::Usage,
        Table::UsageCoverage,
        Table::Cost,
        Table::CostCoverage,
        Table::Workspaces,
        Table::ApiKeys,
        Table::IngestLog,
        Table::Quarantine,
        Table::UsagePricing,
        Table::CreditLots,
        Table::BalanceSnapshots,
        Table::Invoices,
        Table::InvoiceLines,
        Table::AnomalyAcks,
        Table::MailLog,
        Table::AlertLog,
        Table::Teams,
        Table::PullLog,
    ];
    pub const fn dir_name(self) -> &'static str {
        match self {
            Table::Usage => "usage",
            Table::UsageCoverage => "usage_coverage",
            Table::Cost => "cost",
            Table::CostCoverage => "cost_coverage",
            Table::Workspaces => "workspaces",
            Table::ApiKeys => "api_keys",
            Table::IngestLog => "ingest_log",
            Table::Quarantine => "quarantine",
            Table::UsagePricing => "usage_pricing",
            Table::CreditLots => "credit_lots",
            Table::BalanceSnapshots => "balance_snapshots",
            Table::Invoices => "invoices",
            Table::InvoiceLines => "invoice_lines",
            Table::AnomalyAcks => "anomaly_acks",
            Table::MailLog => "mail_log",
            Table::AlertLog => "alert_log",
            Table::Teams => "teams",
            Table::PullLog => "pull_log",
        }
    }
    /// Month-partitioned tables (`provider=…/month=…`); the others are `provider=…` or flat.
    pub fn monthly(self) -> bool {
        matches!(
            self,
            Table::Usage
                | Table::UsageCoverage
                | Table::Cost
                | Table::CostCoverage
                | Table::UsagePricing
        )
    }
}

/// Paths inside a data dir.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
    /// `[lake] delta = true`: commit every change to the tables' Delta logs too.
    delta: bool,
    /// A lake on object storage (`data_dir = "s3://…"`): `root` is its local working copy and
    /// the tables are committed to, and refreshed from, this URL (see [`remote`]).
    remote: Option<url::Url>,
}

impl Layout {
    /// The root is made absolute (against the working directory, without touching the file
    /// system): the journal records paths relative to it, and a relative root spelt two ways
    /// (`data`, `./data`, a config-relative `dir/data`) would not strip from its own paths.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            root: std::path::absolute(&root).unwrap_or(root),
            delta: false,
            remote: None,
        }
    }
    /// The lake at `url` on object storage, worked on in the local directory `root`; its
    /// tables are always Delta tables (the log is what makes a bucket's commits atomic).
    pub fn remote(root: impl Into<PathBuf>, url: url::Url) -> Self {
        let mut l = Self::new(root).with_delta(true);
        l.remote = Some(remote::root_url(&url));
        l
    }
    /// Where the lake is, as its user named it: the bucket URL of a remote lake, else the
    /// directory (for summaries: `ingest --json`'s `data_dir`).
    pub fn location(&self) -> String {
        match &self.remote {
            Some(u) => u.to_string(),
            None => self.root.display().to_string(),
        }
    }
    /// The object-storage URL of a remote lake (`None`: the lake is the local directory).
    pub fn remote_url(&self) -> Option<&url::Url> {
        self.remote.as_ref()
    }
    /// The same lake, with its tables kept as Delta tables when `on` (see [`delta`]).
    pub fn with_delta(mut self, on: bool) -> Self {
        self.delta = on;
        self
    }
    /// Whether changes are committed to the tables' Delta logs: configured, or the lake
    /// became Delta before (its marker `_tokenledger/delta`), so no change ever bypasses a
    /// log a Delta reader trusts.
    pub fn is_delta(&self) -> bool {
        self.delta || self.remote.is_some() || self.delta_marker().is_file()
    }
    /// Written when the lake's tables first became Delta tables.
    pub fn delta_marker(&self) -> PathBuf {
        self.internal().join("delta")
    }
    pub fn table_dir(&self, t: Table) -> PathBuf {
        self.root.join(t.dir_name())
    }
    /// The directory of a month partition.
    pub fn month_dir(&self, t: Table, provider: Provider, month: &str) -> PathBuf {
        self.table_dir(t)
            .join(format!("provider={provider}"))
            .join(format!("month={month}"))
    }
    /// The part files of a month partition (data tables hold several: `part-<ingest>-<n>`),
    /// sorted; in-flight temp files are not parts.
    pub fn month_parts(
        &self,
        t: Table,
        provider: Provider,
        month: &str,
    ) -> std::io::Result<Vec<PathBuf>> {
        let dir = self.month_dir(t, provider, month);
        let mut out = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd {
                    let e = e?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with("part-") && name.ends_with(".parquet") {
                        out.push(e.path());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        out.sort();
        Ok(out)
    }
    /// The pricing part that mirrors a usage part (same logical name, `usage_pricing`
    /// partition): the file in place, or the logical path when there is none.
    pub fn pricing_mirror(&self, usage_part: &Path, provider: Provider, month: &str) -> PathBuf {
        current(
            &self
                .month_dir(Table::UsagePricing, provider, month)
                .join(logical_name(usage_part)),
        )
    }
    /// The usage part a pricing part mirrors (same partition, same logical name).
    pub fn usage_of(&self, pricing_part: &Path) -> PathBuf {
        // `usage_pricing/provider=P/month=M/NAME` → `usage/provider=P/month=M/NAME`.
        let month = pricing_part.parent();
        let provider = month.and_then(Path::parent);
        fn name(p: Option<&Path>) -> &std::ffi::OsStr {
            p.and_then(Path::file_name).unwrap_or_default()
        }
        current(
            &self
                .table_dir(Table::Usage)
                .join(name(provider))
                .join(name(month))
                .join(logical_name(pricing_part)),
        )
    }
    /// Every data file of a table (all partitions), sorted; the Delta log, temp files and
    /// anything not `*.parquet` are not data files.
    pub fn data_files(&self, t: Table) -> Result<Vec<PathBuf>, LakeError> {
        data_files(self, t)
    }
    /// The provider of a part, from its `provider=` partition directory.
    pub fn provider_of(part: &Path) -> Option<Provider> {
        part.ancestors()
            .filter_map(|a| a.file_name()?.to_str()?.strip_prefix("provider="))
            .find_map(Provider::parse)
    }
    /// The single file of a month partition of a small table (coverage).
    pub fn month_file(&self, t: Table, provider: Provider, month: &str) -> PathBuf {
        current(
            &self
                .table_dir(t)
                .join(format!("provider={provider}"))
                .join(format!("month={month}"))
                .join("part-0.parquet"),
        )
    }
    /// The single file of a per-provider table (workspaces, api_keys).
    pub fn provider_file(&self, t: Table, provider: Provider) -> PathBuf {
        current(
            &self
                .table_dir(t)
                .join(format!("provider={provider}"))
                .join("part-0.parquet"),
        )
    }
    /// The single file of a flat table (the ledger tables: lots, snapshots, invoices).
    pub fn table_file(&self, t: Table) -> PathBuf {
        current(&self.table_dir(t).join("part-0.parquet"))
    }
    pub fn ingest_log_file(&self) -> PathBuf {
        current(&self.table_dir(Table::IngestLog).join("part-0.parquet"))
    }
    /// Quarantine is append-only: files of an ingest are never rewritten. This one holds the
    /// ingest's file-level records; the parse workers' row records are `quarantine_part`s.
    pub fn quarantine_file(&self, ingest_id: &str) -> PathBuf {
        self.table_dir(Table::Quarantine)
            .join(format!("part-{ingest_id}.parquet"))
    }
    /// A part of bad rows staged by a parse worker during an ingest.
    pub fn quarantine_part(&self, ingest_id: &str, n: usize) -> PathBuf {
        self.table_dir(Table::Quarantine)
            .join(format!("part-{ingest_id}-{n}.parquet"))
    }
    /// Where pulled pages land (see [`LANDING_DIR`]).
    pub fn landing(&self) -> PathBuf {
        self.root.join(LANDING_DIR)
    }
    pub fn internal(&self) -> PathBuf {
        self.root.join("_tokenledger")
    }
    pub fn staging_root(&self) -> PathBuf {
        self.internal().join("staging")
    }
    pub fn staging(&self, ingest_id: &str) -> PathBuf {
        self.staging_root().join(ingest_id)
    }
    pub fn journal(&self) -> PathBuf {
        self.internal().join("journal.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.internal().join("lock")
    }
    /// The marker the first ingest (or nightly run) writes: this directory is a lake.
    pub fn marker(&self) -> PathBuf {
        self.internal().join("lake")
    }
    /// The source precedence the lake was built with (`analytics > api > export`): which rows
    /// were kept depends on it, so it is fixed at the first ingest.
    pub fn precedence_file(&self) -> PathBuf {
        self.internal().join("precedence")
    }
    /// Whether an ingest ever made a lake here (its marker, or, for lakes older than the
    /// marker, an ingest log). Read commands refuse a directory that is not one.
    pub fn exists(&self) -> bool {
        self.marker().is_file() || self.ingest_log_file().is_file()
    }
    /// The providers with a partition in table `t`, in [`Provider`] order. A partition named
    /// for a provider this version does not know is an error naming it (a newer version wrote
    /// it, or a hand edit): its rows would otherwise be silently left out of every total.
    pub fn providers(&self, t: Table) -> Result<Vec<Provider>, LakeError> {
        let dir = self.table_dir(t);
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(error::io_err(&dir)(e)),
        };
        for e in rd {
            let name = e.map_err(error::io_err(&dir))?.file_name();
            let name = name.to_string_lossy();
            if let Some(p) = name.strip_prefix("provider=") {
                out.push(
                    Provider::parse(p).ok_or_else(|| LakeError::UnknownProvider {
                        path: dir.join(name.as_ref()),
                        provider: p.to_string(),
                    })?,
                );
            }
        }
        out.sort();
        Ok(out)
    }
    /// Every (provider, month) partition of a monthly table, sorted by provider then month.
    pub fn partitions(&self, t: Table) -> Result<Vec<(Provider, String)>, LakeError> {
        let mut out = Vec::new();
        for p in self.providers(t)? {
            let months = self
                .months(t, p)
                .map_err(error::io_err(&self.table_dir(t)))?;
            out.extend(months.into_iter().map(|m| (p, m)));
        }
        Ok(out)
    }
    /// The months with a partition of `t` for any provider, sorted, each once.
    pub fn all_months(&self, t: Table) -> Result<Vec<String>, LakeError> {
        let mut out: Vec<String> = self.partitions(t)?.into_iter().map(|(_, m)| m).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
    /// Months present for a monthly table and provider, sorted.
    pub fn months(&self, t: Table, provider: Provider) -> std::io::Result<Vec<String>> {
        let dir = self.table_dir(t).join(format!("provider={provider}"));
        let mut out = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd {
                    let name = e?.file_name().to_string_lossy().into_owned();
                    if let Some(m) = name.strip_prefix("month=") {
                        out.push(m.to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        out.sort();
        Ok(out)
    }
}

/// A data file's logical name: what readers and writers call it (`part-0.parquet`, a usage
/// part's name). A replacement is written under a new physical name, `<stem>~<txn>.parquet`
/// (Delta requires data files never to be overwritten, and a Delta reader of an older version
/// still reads the old file), so the name before `~` is the logical one.
pub fn logical_name(file: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.split_once('~') {
        Some((stem, _)) => format!("{stem}.parquet"),
        None => name,
    }
}

/// The file in place for a logical path (the last by name if a crashed commit left two;
/// recovery removes the older), or the logical path itself when there is none.
pub fn current(logical: &Path) -> PathBuf {
    let want = logical_name(logical);
    let dir = logical.parent().unwrap_or(Path::new(""));
    let mut found: Option<PathBuf> = None;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("part-")
                && name.ends_with(".parquet")
                && logical_name(Path::new(&name)) == want
                && found.as_ref().is_none_or(|f| e.path() > *f)
            {
                found = Some(e.path());
            }
        }
    }
    found.unwrap_or_else(|| logical.to_path_buf())
}

/// Every data file of a table (see [`Layout::data_files`]).
fn data_files(layout: &Layout, t: Table) -> Result<Vec<PathBuf>, LakeError> {
    parquet_files(&layout.table_dir(t))
}

/// The `*.parquet` files under `dir` (none when it does not exist), sorted; entries named
/// `_…` (`_delta_log`, whose checkpoints are Parquet too) or `.…` (temp files) are not data.
/// The one folder walk of the lake: tables, derived tables, the legacy `rated_usage/`.
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, LakeError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LakeError> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(error::io_err(dir)(e)),
        };
        for e in rd {
            let e = e.map_err(error::io_err(dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, out)?;
            } else if name.ends_with(".parquet") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Relative form of a lake path for messages and lineage.
pub fn display_rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}
