//! Crash safety: one writer at a time (a file lock), and commits that are all-or-nothing.
//!
//! A commit stages every new file under `_tokenledger/staging/<ingest>/` (each fsynced), then
//! writes `_tokenledger/journal.json` atomically: that rename is the commit point. Applying the
//! journal renames the staged files over their targets (atomic per file), fsyncs the
//! directories and deletes the journal. Every command first recovers: a journal left by a
//! killed run is applied again (roll forward: renames are idempotent), and staging left without
//! a journal is deleted (roll back). So after any crash the lake is as before or as after.
//!
//! Owns: the lock, the journal and recovery, [`Snapshot`] (a reader's view), [`Writer`] (the
//! exclusive one) and [`WriteTxn`], the one way anything is written to the lake.
//! Must not: know what a table holds (schemas are `schema`'s, rows `batch`'s), or query.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use arrow::record_batch::RecordBatch;

use super::error::{LakeError, Result, io_err};
use super::io::{StagedFile, create_dir_all, fsync_dir};
use super::{Layout, Table};

pub use super::io::crash_point;

/// Held for the whole command; released on drop (and by the OS if the process dies).
/// `None` inside: a read-only lake, which nobody can write, so nothing needs locking.
pub struct LakeLock {
    _file: Option<File>,
}

/// Errors that say the data dir cannot be written (an archive, a read-only mount).
fn read_only(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Writers: ingest and everything that commits.
    Exclusive,
    /// Readers: queries; they still wait for a writer to finish.
    Shared,
}

impl LakeLock {
    /// Takes the lock. If another run holds it, says so on stderr and waits, unless `wait` is
    /// false, in which case it fails with a clear error.
    pub fn acquire(layout: &Layout, mode: LockMode, wait: bool) -> Result<Self> {
        let internal = layout.internal();
        let path = layout.lock_file();
        let opened = std::fs::create_dir_all(&internal).and_then(|()| {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
        });
        let file = match opened {
            Ok(f) => f,
            // A reader of a lake it cannot write: share an existing lock file if there is one
            // (a writer with more rights may hold it), else nobody can be writing.
            Err(e) if mode == LockMode::Shared && read_only(&e) => match File::open(&path) {
                Ok(f) => f,
                Err(_) => return Ok(Self { _file: None }),
            },
            Err(e) => return Err(LakeError::Io { path, source: e }),
        };
        let attempt = match mode {
            LockMode::Exclusive => file.try_lock(),
            LockMode::Shared => file.try_lock_shared(),
        };
        match attempt {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                if !wait {
                    return Err(LakeError::Locked {
                        root: layout.root.clone(),
                        holder: if holder.is_empty() {
                            "holder unknown".to_string()
                        } else {
                            holder.to_string()
                        },
                    });
                }
                tracing::warn!(
                    stage = "lock",
                    "tokenledger: waiting for another run to release {} ({})",
                    path.display(),
                    if holder.is_empty() {
                        "holder unknown"
                    } else {
                        holder
                    }
                );
                match mode {
                    LockMode::Exclusive => file.lock(),
                    LockMode::Shared => file.lock_shared(),
                }
                .map_err(io_err(&path))?;
            }
            Err(TryLockError::Error(e)) => return Err(LakeError::Io { path, source: e }),
        }
        if mode == LockMode::Exclusive {
            // Who holds it, for the message another run prints while it waits.
            let _ = file.set_len(0);
            let _ = (&file).write_all(
                format!(
                    "pid {} since {}",
                    std::process::id(),
                    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
                )
                .as_bytes(),
            );
        }
        Ok(Self { _file: Some(file) })
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Journal {
    pub ingest_id: String,
    /// (staged file, final path), applied in order.
    pub renames: Vec<(PathBuf, PathBuf)>,
    /// Lake files to delete (e.g. a partition that became empty).
    #[serde(default)]
    pub removes: Vec<PathBuf>,
}

impl Journal {
    /// The commit point: after this returns, the change will be in the lake even if the process
    /// dies on the next instruction.
    pub fn commit(&self, layout: &Layout) -> Result<()> {
        let path = layout.journal();
        let dir = layout.internal();
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(&dir))?;
        // Paths relative to the data dir: recovery works from any working directory, and
        // after the data dir is moved.
        let rel = |p: &PathBuf| p.strip_prefix(&layout.root).unwrap_or(p).to_path_buf();
        let stored = Journal {
            ingest_id: self.ingest_id.clone(),
            renames: self.renames.iter().map(|(a, b)| (rel(a), rel(b))).collect(),
            removes: self.removes.iter().map(rel).collect(),
        };
        serde_json::to_writer_pretty(&mut tmp, &stored).map_err(|source| {
            LakeError::JournalWrite {
                path: path.clone(),
                source,
            }
        })?;
        tmp.as_file().sync_all().map_err(io_err(&path))?;
        tmp.persist(&path).map_err(|e| LakeError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        fsync_dir(&dir)?;
        crash_point("committed");
        self.apply(layout)
    }

    /// Moves staged files into place. Idempotent: a rename already done is skipped. Relative
    /// paths are relative to the data dir.
    pub fn apply(&self, layout: &Layout) -> Result<()> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let abs = |p: &PathBuf| layout.root.join(p);
        for (i, (from, to)) in self.renames.iter().enumerate() {
            let (from, to) = (&abs(from), &abs(to));
            let dir = to
                .parent()
                .expect("lake file has a directory")
                .to_path_buf();
            if from.exists() {
                create_dir_all(&dir)?;
                std::fs::rename(from, to).map_err(io_err(to))?;
            } else if !to.exists() {
                return Err(LakeError::JournalMismatch {
                    journal: layout.journal(),
                    staged: from.clone(),
                    target: to.clone(),
                });
            }
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
            if i == 0 {
                crash_point("mid-apply");
            }
        }
        // The Delta commits, table by table: after the data files are in place, before the
        // replaced ones are deleted (a Delta reader of the version before still reads them).
        if layout.is_delta() {
            let targets: Vec<PathBuf> = self.renames.iter().map(|(_, to)| abs(to)).collect();
            let removes: Vec<PathBuf> = self.removes.iter().map(abs).collect();
            if let Err(e) = super::delta::commit_all(layout, &targets, &removes) {
                if matches!(e, LakeError::RemoteConflict { .. }) {
                    // Another machine's commit won: this change can never be committed on top
                    // of it. Dropped here; the next command's refresh makes the working copy
                    // the bucket's again (the files renamed above are in no version).
                    self.discard(layout);
                }
                return Err(e);
            }
        }
        for p in &self.removes {
            let p = &abs(p);
            match std::fs::remove_file(p) {
                Ok(()) => {
                    if let Some(d) = p.parent() {
                        dirs.push(d.to_path_buf());
                    }
                }
                // Already removed (a re-applied journal), or derived and never written.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(LakeError::Io {
                        path: p.clone(),
                        source: e,
                    });
                }
            }
        }
        for d in &dirs {
            fsync_dir(d)?;
        }
        super::sync::push_meta(layout)?;
        let jp = layout.journal();
        std::fs::remove_file(&jp).map_err(io_err(&jp))?;
        fsync_dir(&layout.internal())?;
        let staging = layout.staging(&self.ingest_id);
        let _ = std::fs::remove_dir_all(staging);
        Ok(())
    }

    /// Forgets a change that can no longer be committed (a remote conflict).
    fn discard(&self, layout: &Layout) {
        let _ = std::fs::remove_file(layout.journal());
        let _ = std::fs::remove_dir_all(layout.staging(&self.ingest_id));
        super::remote::forget(layout);
    }
}

/// Finishes or undoes whatever a killed run left. Call with the exclusive lock held.
/// Returns a message when something was recovered.
pub fn recover(layout: &Layout) -> Result<Option<String>> {
    let mut msg = None;
    let jp = layout.journal();
    if jp.exists() {
        let text = std::fs::read_to_string(&jp).map_err(io_err(&jp))?;
        let j: Journal = serde_json::from_str(&text).map_err(|source| LakeError::JournalRead {
            path: jp.clone(),
            source,
        })?;
        j.apply(layout)?;
        msg = Some(format!(
            "completed ingest {} that was interrupted after its commit",
            j.ingest_id
        ));
    }
    let staging = layout.staging_root();
    if staging.exists() {
        let mut rolled_back = Vec::new();
        for e in std::fs::read_dir(&staging).map_err(io_err(&staging))? {
            let e = e.map_err(io_err(&staging))?;
            rolled_back.push(e.file_name().to_string_lossy().into_owned());
            std::fs::remove_dir_all(e.path()).map_err(io_err(&e.path()))?;
        }
        if !rolled_back.is_empty() {
            let m = format!("discarded uncommitted ingest(s) {}", rolled_back.join(", "));
            msg = Some(match msg {
                Some(prev) => format!("{prev}; {m}"),
                None => m,
            });
        }
    }
    // Temp files of an atomic replace that versions before the one write transaction did in
    // place, interrupted before its rename: garbage in a lake they wrote.
    remove_partials(&layout.root)?;
    Ok(msg)
}

fn remove_partials(dir: &Path) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(_) => return Ok(()),
    };
    for e in rd {
        let e = e.map_err(io_err(dir))?;
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            if name != "_tokenledger" {
                remove_partials(&p)?;
            }
        } else if name.starts_with(".tmp-") && name.ends_with(".parquet.partial") {
            std::fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}

/// Refuses a directory that is not a lake, before any lock file is made in it.
fn must_exist(layout: &Layout) -> Result<()> {
    if layout.exists() {
        Ok(())
    } else {
        Err(LakeError::NoLake {
            root: layout.location(),
        })
    }
}

/// A consistent view of the lake: holds a lock for as long as it lives, so no writer commits
/// while the holder reads. Stage readers take `&Snapshot` (it dereferences to the [`Layout`]),
/// so reading under the lock is a type, not a convention. `recovered` says what a crashed run
/// left and this finished first.
pub struct Snapshot {
    _lock: LakeLock,
    layout: Layout,
    pub recovered: Option<String>,
}

impl std::ops::Deref for Snapshot {
    type Target = Layout;
    fn deref(&self) -> &Layout {
        &self.layout
    }
}

impl Snapshot {
    /// A reader's view. Only a committed-but-unapplied journal concerns readers (staging is
    /// invisible to them); it is completed under the exclusive lock before reading.
    pub fn read(layout: &Layout) -> Result<Snapshot> {
        let mut recovered = None;
        if layout.remote_url().is_some() {
            // The working copy becomes the bucket's newest versions first (a fresh machine's
            // is empty: the lake is in the bucket).
            let _w = LakeLock::acquire(layout, LockMode::Exclusive, true)?;
            recovered = recover(layout)?;
            super::sync::refresh(layout)?;
        }
        must_exist(layout)?;
        // An older lake is upgraded once, like a journal is finished; a lake this process
        // cannot write (an archive) is read as it is.
        if super::upgrade::needed(layout)
            || (layout.is_delta() && super::delta::adoption_needed(layout))
        {
            match Self::create(layout, true) {
                Ok(_) | Err(LakeError::Io { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if layout.journal().exists() {
            let _w = LakeLock::acquire(layout, LockMode::Exclusive, true)?;
            recovered = recover(layout)?.or(recovered);
        }
        Ok(Snapshot {
            _lock: LakeLock::acquire(layout, LockMode::Shared, true)?,
            layout: layout.clone(),
            recovered,
        })
    }
    /// A writer's view: the exclusive lock, after recovery. Reading under it after writing
    /// leaves no gap in which another writer could commit.
    pub fn write(layout: &Layout, wait: bool) -> Result<Writer> {
        if layout.remote_url().is_none() {
            must_exist(layout)?;
        }
        Self::create_inner(layout, wait, false)
    }
    /// A writer's view of a lake that may not exist yet: ingest and the nightly run make one
    /// (the marker is written under the lock, so it exists before anything is committed). A
    /// lake written by an older version is upgraded first ([`super::upgrade`]).
    pub fn create(layout: &Layout, wait: bool) -> Result<Writer> {
        Self::create_inner(layout, wait, true)
    }
    fn create_inner(layout: &Layout, wait: bool, make: bool) -> Result<Writer> {
        let lock = LakeLock::acquire(layout, LockMode::Exclusive, wait)?;
        let recovered = recover(layout)?;
        super::sync::refresh(layout)?;
        let fresh = !layout.exists();
        if fresh && !make {
            return Err(LakeError::NoLake {
                root: layout.location(),
            });
        }
        let writer = Writer(Snapshot {
            _lock: lock,
            layout: layout.clone(),
            recovered,
        });
        if fresh {
            super::upgrade::mark(layout)?;
        } else if super::upgrade::needed(layout) {
            writer.upgrade()?;
        }
        if layout.is_delta() {
            let adopted = super::delta::adopt(layout)?;
            if !adopted.is_empty() {
                super::sync::push_meta(layout)?;
                tracing::info!(
                    stage = "lake",
                    tables = adopted.len(),
                    "made {} table(s) of the lake Delta tables",
                    adopted.len()
                );
            }
        }
        Ok(writer)
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

/// A snapshot under the exclusive lock: the only way to open a [`WriteTxn`]. It reads like any
/// snapshot (it dereferences to one), and what it commits is in its own later reads.
pub struct Writer(Snapshot);

impl std::ops::Deref for Writer {
    type Target = Snapshot;
    fn deref(&self) -> &Snapshot {
        &self.0
    }
}

impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut Snapshot {
        &mut self.0
    }
}

impl Writer {
    /// A new write transaction named `id` (its staging directory and journal name; an ingest
    /// id, or a stage's name and a timestamp).
    pub fn begin(&self, id: impl Into<String>) -> WriteTxn<'_> {
        let id = id.into();
        WriteTxn {
            layout: &self.0.layout,
            staging: self.0.layout.staging(&id),
            journal: Journal {
                ingest_id: id,
                renames: Vec::new(),
                removes: Vec::new(),
            },
            staged: 0,
        }
    }
    /// Replaces the one file of a flat table (`mail_log`, `alert_log`, `anomaly_acks`, `teams`)
    /// with `batches`, in a transaction of its own.
    pub fn replace_table(&self, table: Table, batches: &[RecordBatch]) -> Result<()> {
        let mut txn = self.begin(format!(
            "{}-{}",
            table.dir_name(),
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")
        ));
        txn.replace(table, self.0.layout.table_file(table), batches)?;
        txn.commit()
    }
    /// Grows every file that lacks a column of its table's current schema (one transaction,
    /// one file in memory at a time), then marks the lake with the current version.
    fn upgrade(&self) -> Result<usize> {
        let stale = super::upgrade::stale_files(self)?;
        let mut txn = self.begin(format!(
            "upgrade-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")
        ));
        for (table, file) in &stale {
            let grown = super::upgrade::grown(*table, file)?;
            txn.replace(*table, file.clone(), &grown)?;
        }
        if !txn.is_empty() {
            txn.commit()?;
        }
        super::upgrade::mark(self)?;
        Ok(stale.len())
    }
    /// Gives the lock up as a reader's snapshot would (the view stays valid until dropped).
    pub fn into_snapshot(self) -> Snapshot {
        self.0
    }
}

/// The one way anything is written to the lake (ingest, rating, teams, mail, alerts, acks):
/// files are staged under `_tokenledger/staging/<id>/`, then [`WriteTxn::commit`] makes every
/// rename and removal of the transaction visible at once. A transaction dropped without its
/// commit changes nothing: the next command's recovery deletes what it staged.
pub struct WriteTxn<'w> {
    layout: &'w Layout,
    staging: PathBuf,
    journal: Journal,
    staged: usize,
}

impl WriteTxn<'_> {
    /// The directory this transaction stages files in (workers write their parts below it).
    pub fn staging(&self) -> &Path {
        &self.staging
    }
    /// A new staged file of `table` (the table's schema and writer settings, this
    /// transaction's name in its metadata) that will replace `target` at commit.
    fn stage(&mut self, table: Table, target: PathBuf) -> Result<StagedFile> {
        self.staged += 1;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path =
            self.staging
                .join("txn")
                .join(format!("{}-{}-{name}", self.staged, table.dir_name()));
        let props = super::schema::writer_props(table, &self.journal.ingest_id);
        let file = StagedFile::create_with(path.clone(), super::schema::of(table), props)?;
        self.journal.renames.push((path, target));
        Ok(file)
    }
    /// Replaces `target` (a whole file of `table`) with `batches` at commit.
    pub fn replace(
        &mut self,
        table: Table,
        target: PathBuf,
        batches: &[RecordBatch],
    ) -> Result<()> {
        let mut f = self.stage(table, target)?;
        for b in batches {
            f.write(b)?;
        }
        f.finish()?;
        Ok(())
    }
    /// Moves a file the caller staged under [`WriteTxn::staging`] to `target` at commit.
    pub fn rename(&mut self, staged: PathBuf, target: PathBuf) {
        self.journal.renames.push((staged, target));
    }
    /// Removes a lake file at commit (a replaced part, a partition that became empty).
    pub fn remove(&mut self, path: PathBuf) {
        self.journal.removes.push(path);
    }
    /// Whether the transaction would change nothing.
    pub fn is_empty(&self) -> bool {
        self.journal.renames.is_empty() && self.journal.removes.is_empty()
    }
    /// The commit point: every rename and removal is in the lake after this returns, even if
    /// the process dies on the next instruction. An empty transaction only cleans its staging.
    pub fn commit(mut self) -> Result<()> {
        if self.is_empty() {
            let _ = std::fs::remove_dir_all(&self.staging);
            return Ok(());
        }
        if self.layout.is_delta() {
            self.name_targets();
        }
        self.journal.commit(self.layout)
    }
    /// Gives every target a physical name no file of the lake ever had, and removes the file
    /// it replaces: a data file is never overwritten (Delta's rule; readers of an older
    /// version still read it). A name that holds this transaction's id (an ingest's parts) is
    /// new already; any other becomes `<stem>~<id>.parquet` ([`super::logical_name`]).
    fn name_targets(&mut self) {
        let id = self.journal.ingest_id.clone();
        for (_, target) in &mut self.journal.renames {
            let logical = super::logical_name(target);
            let dir = target.parent().map(Path::to_path_buf).unwrap_or_default();
            let old = super::current(&dir.join(&logical));
            if old.exists() && !self.journal.removes.contains(&old) {
                self.journal.removes.push(old);
            }
            if !logical.contains(&id) {
                let stem = logical.strip_suffix(".parquet").unwrap_or(&logical);
                *target = dir.join(format!("{stem}~{id}.parquet"));
            }
        }
    }
}
