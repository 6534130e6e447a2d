//! Delta Lake: every table of the lake is a Delta table, so Spark, Databricks, Athena, Trino
//! and DuckDB's delta extension read it all-or-nothing, as tokenledger wrote it.
//!
//! tokenledger keeps writing the Parquet files itself (`schema`'s schemas and writer settings);
//! this module only commits them to each table's `_delta_log` with `delta_kernel` (add and
//! remove actions, a checkpoint every [`CHECKPOINT_EVERY`] versions), and reads a table's file
//! list back. A commit is one put-if-absent of the next version file: atomic per table. Delta
//! has no multi-table transaction, so the journal ([`super::txn`]) commits its tables one by
//! one, in [`super::Table::ALL`] order, and finishes the rest after a crash.
//!
//! Statistics: each add carries `numRecords` only. No min/max is written, so no decimal bound
//! is ever rounded (a float bound of a `DECIMAL(28,12)` could make a reader skip a file
//! wrongly); the Parquet footers hold the exact statistics.
//!
//! Owns: the Delta schema of a table (its Arrow schema + partition columns), its partition
//! columns, commits, adopting an existing table (the migration), the file list of a snapshot.
//! Must not: write or read data files' rows, decide which files a change adds or removes
//! (the journal says), or be called without the lake's exclusive lock for a commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, StructArray};
use arrow::datatypes::{DataType as ArrowType, Field};
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::engine::arrow_conversion::TryFromArrow;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::engine_data::FilteredEngineData;
use delta_kernel::expressions::Scalar;
use delta_kernel::schema::{DataType, StructField, StructType};
use delta_kernel::transaction::create_table::create_table;
use delta_kernel::transaction::data_layout::DataLayout;
use delta_kernel::transaction::{CommitResult, UpdateTableOperation};
use delta_kernel::{FileMeta, Snapshot};
use delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor;
use delta_kernel_default_engine::parquet::DataFileMetadata;
use delta_kernel_default_engine::storage::store_from_url;
use delta_kernel_default_engine::{DefaultEngine, DefaultEngineBuilder, build_add_file_metadata};
use url::Url;

use super::error::{LakeError, Result, io_err};
use super::{Layout, Table};

/// A checkpoint every this many versions (Delta's default `checkpointInterval`), so a reader
/// replays at most this many JSON commits after the last checkpoint.
pub const CHECKPOINT_EVERY: u64 = 10;

/// The log directory of a Delta table (the shipped globs and `tokenledger sql` skip it).
pub const LOG_DIR: &str = "_delta_log";

/// What commits say wrote them.
const ENGINE_INFO: &str = concat!("tokenledger/", env!("CARGO_PKG_VERSION"));

type Kernel = DefaultEngine<TokioMultiThreadExecutor>;

fn kernel_err(table: Table) -> impl FnOnce(delta_kernel::KernelError) -> LakeError {
    move |source| LakeError::Delta {
        table: table.dir_name(),
        source: Box::new(source),
    }
}

/// The partition columns of a table's directories, in path order.
pub fn partition_columns(table: Table) -> &'static [&'static str] {
    if table.monthly() {
        &["provider", "month"]
    } else if matches!(table, Table::Workspaces | Table::ApiKeys) {
        &["provider"]
    } else {
        &[]
    }
}

/// The Delta schema: the table's Arrow columns (those that are also partition keys left
/// out), then the partition columns as strings, as Spark and DuckDB see them from the paths.
pub fn schema(table: Table) -> Result<StructType> {
    let parts = partition_columns(table);
    let arrow = super::schema::of(table);
    let kept: Vec<Field> = arrow
        .fields()
        .iter()
        .filter(|f| !parts.contains(&f.name().as_str()))
        .map(|f| f.as_ref().clone())
        .collect();
    let data = StructType::try_from_arrow(&arrow::datatypes::Schema::new(kept))
        .map_err(|e| kernel_err(table)(delta_kernel::KernelError::generic(e.to_string())))?;
    let fields = data
        .fields()
        .cloned()
        .chain(
            parts
                .iter()
                .map(|p| StructField::nullable(*p, DataType::STRING)),
        )
        .collect::<Vec<_>>();
    StructType::try_new(fields).map_err(kernel_err(table))
}

fn table_url(layout: &Layout, table: Table) -> Result<Url> {
    if let Some(root) = layout.remote_url() {
        return root
            .join(&format!("{}/", table.dir_name()))
            .map_err(|e| kernel_err(table)(delta_kernel::KernelError::generic(e.to_string())));
    }
    let dir = layout.table_dir(table);
    Url::from_directory_path(&dir).map_err(|()| {
        kernel_err(table)(delta_kernel::KernelError::generic(format!(
            "{} is not an absolute path",
            dir.display()
        )))
    })
}

/// The kernel's default engine on the process's multi-threaded runtime: writing a checkpoint
/// deadlocks on the single background thread of its default executor (the kernel's docs say
/// as much). Local tables through the kernel's own store; buckets through
/// [`super::remote::store`] (credentials from the environment).
fn kernel(url: &Url, table: Table) -> Result<Kernel> {
    let store = if url.scheme() == "file" {
        store_from_url(url).map_err(kernel_err(table))?
    } else {
        super::remote::store(url)?
    };
    Ok(DefaultEngineBuilder::new(store)
        .with_task_executor(super::remote::executor()?)
        .build())
}

/// Whether the table has a Delta log (its first commit exists): in the bucket for a remote
/// lake.
pub fn exists(layout: &Layout, table: Table) -> Result<bool> {
    let first = format!("{}/{LOG_DIR}/{:020}.json", table.dir_name(), 0);
    match layout.remote_url() {
        // A table the working copy holds a version of has a log (logs are never deleted).
        Some(_) if super::remote::pins(layout).contains_key(table.dir_name()) => Ok(true),
        Some(url) => super::remote::Remote::open(url)?.exists(&first),
        None => Ok(layout.root.join(first).is_file()),
    }
}

/// The path of a data file relative to its table's directory, as the log spells it.
fn relative(layout: &Layout, table: Table, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(layout.table_dir(table)).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(parts.join("/"))
}

/// The table a lake file belongs to (its first directory under the data dir).
pub fn table_of(layout: &Layout, file: &Path) -> Option<Table> {
    let rel = file.strip_prefix(&layout.root).unwrap_or(file);
    let first = rel.components().next()?.as_os_str().to_str()?;
    Table::ALL.into_iter().find(|t| t.dir_name() == first)
}

/// The files of a table's latest Delta version (paths relative to the table's directory), and
/// that version; `None` when the table has no log yet.
pub fn files(layout: &Layout, table: Table) -> Result<Option<(u64, Vec<String>)>> {
    if !exists(layout, table)? {
        return Ok(None);
    }
    let url = table_url(layout, table)?;
    let engine = kernel(&url, table)?;
    let snap = Snapshot::builder_for(url.as_str())
        .build(&engine)
        .map_err(kernel_err(table))?;
    let mut out = Vec::new();
    for_each_file(&engine, &snap, table, |_, path, selected| {
        if selected {
            out.push(path.to_string());
        }
        true
    })?;
    out.sort();
    Ok(Some((snap.version(), out)))
}

/// Calls `f(row, path, selected)` for every row of every scan-metadata batch of `snap`; `f`
/// says whether the row stays selected. Returns the batches with their new selections.
fn for_each_file(
    engine: &Kernel,
    snap: &Arc<Snapshot>,
    table: Table,
    mut f: impl FnMut(usize, &str, bool) -> bool,
) -> Result<Vec<FilteredEngineData>> {
    let scan = Arc::clone(snap)
        .scan_builder()
        .build()
        .map_err(kernel_err(table))?;
    let mut out = Vec::new();
    for sm in scan.scan_metadata(engine).map_err(kernel_err(table))? {
        let sm = sm.map_err(kernel_err(table))?;
        let (data, selection) = sm.scan_files.into_parts();
        let data = ArrowEngineData::try_from_engine_data(data).map_err(kernel_err(table))?;
        let batch = data.record_batch();
        let paths = batch
            .column_by_name("path")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| {
                kernel_err(table)(delta_kernel::KernelError::generic(
                    "scan files without a path",
                ))
            })?;
        let mut keep = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            // Rows past the selection vector are selected (the kernel's convention).
            let selected = selection.get(i).copied().unwrap_or(true) && paths.is_valid(i);
            keep.push(f(i, paths.value(i), selected) && selected);
        }
        let batch = batch.clone();
        out.push(
            FilteredEngineData::try_new(Box::new(ArrowEngineData::new(batch)), keep)
                .map_err(kernel_err(table))?,
        );
    }
    Ok(out)
}

/// The add action of one data file: its partition values from its path, its size and time,
/// and `numRecords` from its footer.
fn add_action(
    txn_state: &Arc<delta_kernel::transaction::WriteState>,
    table: Table,
    url: &Url,
    file: &Path,
    rel: &str,
) -> Result<Box<dyn delta_kernel::EngineData>> {
    let mut values: HashMap<String, Scalar> = HashMap::new();
    for seg in rel.split('/') {
        if let Some((k, v)) = seg.split_once('=')
            && partition_columns(table).contains(&k)
        {
            values.insert(k.to_string(), Scalar::String(v.to_string()));
        }
    }
    let mut builder = txn_state.write_context_builder();
    if !partition_columns(table).is_empty() {
        builder = builder.with_partition_values(values);
    }
    let context = builder.build().map_err(kernel_err(table))?;
    let meta = std::fs::metadata(file).map_err(io_err(file))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let rows = super::io::row_count(file)?;
    let stats = StructArray::try_new(
        vec![Field::new("numRecords", ArrowType::Int64, true)].into(),
        vec![Arc::new(Int64Array::from(vec![rows])) as Arc<dyn Array>],
        None,
    )
    .map_err(|e| kernel_err(table)(delta_kernel::KernelError::generic(e.to_string())))?;
    let location = url
        .join(rel)
        .map_err(|e| kernel_err(table)(delta_kernel::KernelError::generic(e.to_string())))?;
    let data = DataFileMetadata::new(
        FileMeta {
            location,
            last_modified: modified,
            size: meta.len(),
        },
        stats,
    );
    build_add_file_metadata(data, &context).map_err(kernel_err(table))
}

/// A table's change, checked against its log and ready to commit ([`prepare`], [`execute`]).
pub struct Prepared<'a> {
    table: Table,
    url: Url,
    engine: Kernel,
    /// New files (relative path, local file) the log does not hold yet.
    new: Vec<(String, &'a PathBuf)>,
    /// `None`: the table has no log yet (created with `new`). Else the version the change
    /// follows and the scan batches selecting what it removes (none when nothing to remove).
    base: Option<(Arc<Snapshot>, Vec<FilteredEngineData>, bool)>,
}

/// Checks `table`'s change against its log: what the newest version already holds is left
/// out (a journal finished twice commits once), and on a remote lake the change must follow
/// the version the working copy holds ([`super::remote::pins`]), else
/// [`LakeError::RemoteConflict`]. `None`: nothing left to commit.
pub fn prepare<'a>(
    layout: &Layout,
    table: Table,
    adds: &'a [PathBuf],
    removes: &[PathBuf],
) -> Result<Option<Prepared<'a>>> {
    let url = table_url(layout, table)?;
    let engine = kernel(&url, table)?;
    let adds: Vec<(String, &PathBuf)> = adds
        .iter()
        .filter_map(|p| relative(layout, table, p).map(|r| (r, p)))
        .collect();
    let removes: HashSet<String> = removes
        .iter()
        .filter_map(|p| relative(layout, table, p))
        .collect();
    if !exists(layout, table)? {
        return Ok((!adds.is_empty()).then_some(Prepared {
            table,
            url,
            engine,
            new: adds,
            base: None,
        }));
    }
    let snap = Snapshot::builder_for(url.as_str())
        .build(&engine)
        .map_err(kernel_err(table))?;
    let mut present = HashSet::new();
    let removal = for_each_file(&engine, &snap, table, |_, path, selected| {
        if selected {
            present.insert(path.to_string());
        }
        removes.contains(path)
    })?;
    let new: Vec<(String, &PathBuf)> = adds
        .into_iter()
        .filter(|(r, _)| !present.contains(r))
        .collect();
    let gone = removes.iter().any(|r| present.contains(r));
    if new.is_empty() && !gone {
        return Ok(None);
    }
    if layout.remote_url().is_some()
        && let Some(p) = super::remote::pins(layout).get(table.dir_name()).copied()
        && p != snap.version()
    {
        return Err(conflict(layout, table, p, snap.version()));
    }
    Ok(Some(Prepared {
        table,
        url,
        engine,
        new,
        base: Some((snap, removal, gone)),
    }))
}

/// Commits a prepared change as one version (creating the table when it has no log) and
/// returns that version. A remote lake: the new files are uploaded first.
pub fn execute(layout: &Layout, p: Prepared<'_>) -> Result<u64> {
    let Prepared {
        table,
        url,
        engine,
        new,
        base,
    } = p;
    if let Some(url) = layout.remote_url() {
        let remote = super::remote::Remote::open(url)?;
        let files: Vec<(PathBuf, String)> = new
            .iter()
            .map(|(rel, file)| ((*file).clone(), format!("{}/{rel}", table.dir_name())))
            .collect();
        remote.upload_all(&files)?;
    }
    match base {
        None => {
            let mut builder =
                create_table(url.as_str(), Arc::new(schema(table)?), ENGINE_INFO, true);
            let parts = partition_columns(table);
            if !parts.is_empty() {
                builder = builder.with_data_layout(DataLayout::partitioned(parts.iter()));
            }
            let mut txn = builder
                .build(&engine, Box::new(FileSystemCommitter::new()))
                .map_err(kernel_err(table))?;
            let state = txn.write_state().map_err(kernel_err(table))?;
            for (rel, file) in &new {
                txn.add_files(add_action(&state, table, &url, file, rel)?);
            }
            let result = txn.commit(&engine).map_err(kernel_err(table))?;
            finish(&engine, layout, table, None, result)
        }
        Some((snap, removal, gone)) => {
            let read = snap.version();
            let mut txn = snap
                .update_table(UpdateTableOperation::Write, ENGINE_INFO, true)
                .build(&engine, Box::new(FileSystemCommitter::new()))
                .map_err(kernel_err(table))?;
            let state = txn.write_state().map_err(kernel_err(table))?;
            for (rel, file) in &new {
                txn.add_files(add_action(&state, table, &url, file, rel)?);
            }
            if gone {
                for batch in removal {
                    if batch.selection_vector().iter().any(|s| *s) {
                        txn.remove_files(batch);
                    }
                }
            }
            let result = txn.commit(&engine).map_err(kernel_err(table))?;
            finish(&engine, layout, table, Some(read), result)
        }
    }
}

/// After a table's commit (or finding it done): a remote lake deletes the removed files from
/// the bucket (plain-Parquet readers of the bucket see what they see on disk) and records the
/// version the working copy now holds.
fn settle(layout: &Layout, table: Table, removes: &[PathBuf], version: Option<u64>) -> Result<()> {
    let Some(url) = layout.remote_url() else {
        return Ok(());
    };
    let remote = super::remote::Remote::open(url)?;
    for p in removes {
        if let Some(rel) = relative(layout, table, p) {
            remote.delete(&format!("{}/{rel}", table.dir_name()))?;
        }
    }
    if let Some(v) = version {
        super::remote::pin(layout, table, v)?;
    }
    Ok(())
}

/// Commits to `table`'s log: `adds` (data files now in place) and `removes` (files the
/// change replaced or deleted), as one version ([`prepare`] then [`execute`]). Idempotent.
/// Returns whether it committed.
pub fn commit(
    layout: &Layout,
    table: Table,
    adds: &[PathBuf],
    removes: &[PathBuf],
) -> Result<bool> {
    let version = match prepare(layout, table, adds, removes)? {
        Some(p) => Some(execute(layout, p)?),
        None => None,
    };
    settle(layout, table, removes, version)?;
    Ok(version.is_some())
}

fn conflict(layout: &Layout, table: Table, pinned: u64, found: u64) -> LakeError {
    LakeError::RemoteConflict {
        table: table.dir_name(),
        url: layout
            .remote_url()
            .map(|u| format!("{u}{}", table.dir_name()))
            .unwrap_or_default(),
        pinned,
        found,
    }
}

/// The version committed, checkpointed every [`CHECKPOINT_EVERY`]; a conflict (another writer
/// without our lock, or another machine on a remote lake) is an error, never retried over.
fn finish<S>(
    engine: &Kernel,
    layout: &Layout,
    table: Table,
    read: Option<u64>,
    result: CommitResult<S>,
) -> Result<u64> {
    match result {
        CommitResult::Committed(done) => {
            let version = done.commit_version();
            if version > 0
                && version % CHECKPOINT_EVERY == 0
                && let Some(snap) = done.post_commit_snapshot()
            {
                snap.checkpoint(engine, None).map_err(kernel_err(table))?;
            }
            Ok(version)
        }
        CommitResult::Conflicted(c) if layout.remote_url().is_some() => Err(conflict(
            layout,
            table,
            read.unwrap_or_default(),
            c.conflict_version(),
        )),
        CommitResult::Conflicted(c) => Err(kernel_err(table)(delta_kernel::KernelError::generic(
            format!(
                "version {} was written by someone else: another writer without tokenledger's \
                 lock changed the table",
                c.conflict_version()
            ),
        ))),
        CommitResult::Retryable(_) => Err(kernel_err(table)(delta_kernel::KernelError::generic(
            "the commit could not be written (an I/O error); run the command again",
        ))),
    }
}

/// Commits what a journal changed, table by table in [`Table::ALL`] order: `adds` are the
/// renames' targets, `removes` the journal's removals. Files outside the tables (landing,
/// internal) are not Delta's.
pub fn commit_all(layout: &Layout, adds: &[PathBuf], removes: &[PathBuf]) -> Result<usize> {
    let mut by_table: BTreeMap<Table, (Vec<PathBuf>, Vec<PathBuf>)> = BTreeMap::new();
    for p in adds {
        if let Some(t) = table_of(layout, p) {
            by_table.entry(t).or_default().0.push(p.clone());
        }
    }
    for p in removes {
        if let Some(t) = table_of(layout, p) {
            by_table.entry(t).or_default().1.push(p.clone());
        }
    }
    // Every table is checked before any is committed: a change that conflicts with another
    // machine's commits is refused whole, not after some of its tables landed.
    let mut prepared = Vec::new();
    for (t, (a, r)) in &by_table {
        prepared.push((*t, prepare(layout, *t, a, r)?, r));
    }
    let mut n = 0;
    for (t, p, r) in prepared {
        let version = match p {
            Some(p) => Some(execute(layout, p)?),
            None => None,
        };
        settle(layout, t, r, version)?;
        if version.is_some() {
            n += 1;
            super::io::crash_point("delta-committed");
        }
    }
    Ok(n)
}

/// Makes every table that has files but no log a Delta table holding exactly its files (the
/// migration of a lake written before Delta; a table is created with one put-if-absent, so a
/// killed adoption leaves each table with its whole log or none). Returns the tables adopted.
pub fn adopt(layout: &Layout) -> Result<Vec<Table>> {
    let mut out = Vec::new();
    let marker = layout.delta_marker();
    if !marker.is_file() {
        super::io::write_file_atomic(&marker, b"tokenledger lake: Delta tables\n")
            .map_err(io_err(&marker))?;
    }
    for t in Table::ALL {
        if exists(layout, t)? {
            continue;
        }
        let files = super::data_files(layout, t)?;
        if files.is_empty() {
            continue;
        }
        if commit(layout, t, &files, &[])? {
            out.push(t);
            super::io::crash_point("delta-committed");
        }
    }
    Ok(out)
}

/// Whether some table has files but no Delta log yet.
pub fn adoption_needed(layout: &Layout) -> bool {
    Table::ALL.into_iter().any(|t| {
        layout.table_dir(t).is_dir()
            && super::data_files(layout, t).is_ok_and(|f| !f.is_empty())
            && !exists(layout, t).unwrap_or(true)
    })
}
