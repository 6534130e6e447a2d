//! The lake's one error type, a leaf: every file of `lake/` uses it and it uses none of them.
//!
//! Owns: what went wrong with which lake file, in the lake's own words; the cause (an OS,
//! Parquet, Arrow or JSON error) is the `source()`, never repeated in the message.
//! Must not: import anything else of `lake` (that would close a circle inside the folder).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a readable Parquet file of the lake", path.display())]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("{}: a record batch could not be built or read", path.display())]
    Arrow {
        path: PathBuf,
        source: arrow::error::ArrowError,
    },
    #[error(
        "{}: column {column} is missing or has an unexpected type (written by another version?)",
        path.display()
    )]
    Column { path: PathBuf, column: String },
    /// A batch built in memory lacks a column the table needs, or does not fit its schema.
    #[error("a {table} batch could not be built")]
    Batch {
        table: &'static str,
        source: arrow::error::ArrowError,
    },
    #[error("a {table} batch has no column {column}")]
    BatchColumn {
        table: &'static str,
        column: &'static str,
    },
    /// The last line before a decimal reaches a file: it would be read back as another number.
    #[error("{}: column {column} holds a value beyond DECIMAL({precision})", path.display())]
    DecimalOverflow {
        path: PathBuf,
        column: String,
        precision: u8,
        source: arrow::error::ArrowError,
    },
    #[error("the lake holds a coverage family {family:?} this version does not know")]
    UnknownFamily { family: String },
    #[error("the lake holds rows of provider {provider:?}, which this version does not know")]
    UnknownProviderValue { provider: String },
    #[error("{}: unknown provider {provider:?}", path.display())]
    UnknownProvider { path: PathBuf, provider: String },
    /// A read command pointed at a directory no ingest ever made a lake of (a typo in
    /// `--data-dir`): said, never answered with an empty lake's zeros.
    #[error(
        "no lake at {root} (run `tokenledger ingest` or `tokenledger run` first, or check --data-dir / data_dir)"
    )]
    NoLake { root: String },
    #[error(
        "another tokenledger run holds the lock on {} ({holder}); retry later or drop --no-wait",
        root.display()
    )]
    Locked { root: PathBuf, holder: String },
    #[error("{}: the journal could not be written", path.display())]
    JournalWrite {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{}: unreadable journal; it was written atomically, so the file was edited by hand",
        path.display()
    )]
    JournalRead {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "journal {}: neither staged {} nor target {} exists; the data dir was modified by hand",
        journal.display(), staged.display(), target.display()
    )]
    JournalMismatch {
        journal: PathBuf,
        staged: PathBuf,
        target: PathBuf,
    },
    #[error(
        "{} and {} should hold the same rows (a pricing part mirrors its usage part) but their \
         row counts differ: run `tokenledger rate` to price the usage part again",
        usage.display(), pricing.display()
    )]
    RowsDiffer { usage: PathBuf, pricing: PathBuf },
    #[error("table {table}: its Delta log could not be read or committed")]
    Delta {
        table: &'static str,
        source: Box<delta_kernel::KernelError>,
    },
    /// The object storage of a remote lake: what failed, with the store's own words.
    #[error("{url}: {what}")]
    Remote { url: String, what: String },
    /// Another machine committed to a table of a remote lake after this command read it.
    #[error(
        "table {table}: version {found} of {url} was committed by another run after this one \
         read version {pinned}; this run's changes were dropped, nothing was counted twice. \
         Run the command again (and run one writer per lake at a time)"
    )]
    RemoteConflict {
        table: &'static str,
        url: String,
        pinned: u64,
        found: u64,
    },
}

pub type Result<T> = std::result::Result<T, LakeError>;

pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LakeError + '_ {
    move |source| LakeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A Parquet error on `path`; an OS error the Parquet reader only passed on is the lake's
/// `Io` (the parquet crate's `External` says its cause in its own message and again as its
/// source).
pub fn pq_err(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> LakeError + '_ {
    move |source| match source {
        parquet::errors::ParquetError::External(e) => match e.downcast::<std::io::Error>() {
            Ok(io) => LakeError::Io {
                path: path.to_path_buf(),
                source: *io,
            },
            Err(other) => LakeError::Parquet {
                path: path.to_path_buf(),
                source: parquet::errors::ParquetError::External(other),
            },
        },
        source => LakeError::Parquet {
            path: path.to_path_buf(),
            source,
        },
    }
}

pub fn arrow_err(path: &Path) -> impl FnOnce(arrow::error::ArrowError) -> LakeError + '_ {
    move |source| LakeError::Arrow {
        path: path.to_path_buf(),
        source,
    }
}
