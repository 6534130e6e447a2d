//! The phases of one ingest, in order: plan (hash, detect) → parse & stage (lists first, then
//! reports in parallel) → record failures → claim coverage and merge each touched month →
//! write the small tables → commit → summarise.
//!
//! Owns: the state one ingest carries from phase to phase. Must not: decide ownership itself
//! (`coverage`), merge a month's parts itself (`merge`), or parse (`sources`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::ledger::Ledger;
use super::walk::Walk;
use super::{
    Dims, FileStatus, FileSummary, FormatTotals, Group, IngestError, IngestOptions, IngestSummary,
    Job, NewPart, ParsedFile, WorkerSink, coverage, empty_page_hint, hash_files, merge,
    new_ingest_id, progress_bar, read_once_format,
};
use crate::lake::LakeError;
use crate::lake::batch::{self, IngestLogRow, QuarantineRow, Stored};
use crate::lake::io as lio;
use crate::lake::txn::{self, WriteTxn, Writer};
use crate::lake::{Layout, Table};
use crate::model::{self, ApiKey, LedgerItem, SourceFamily, SourceFormat, Workspace};
use crate::sources::{self, Detected, FileError, mask_secrets};
use crate::vocab::Provider;

/// Staged part files of one source file, per (table, month).
type Staged = Vec<((Table, String), NewPart)>;

/// What parsing one file produced.
struct JobResult {
    /// A file read once ([`Job::read_once`]): its content hash and size, or why it could not
    /// be read; `known` when the manifest has it (then nothing was parsed).
    hashed: Option<Result<(String, u64), String>>,
    known: bool,
    parsed: ParsedFile,
    staged: Staged,
    workspaces: Vec<Workspace>,
    api_keys: Vec<ApiKey>,
    ledger: Vec<LedgerItem>,
}

/// The small keyed tables after the list-like files of this ingest: the workspace and key
/// lists (report rows are named with them) and the ledger; what changed is rewritten.
pub(super) struct Lists {
    pub dims: Dims,
    /// workspaces, api keys
    changed: [bool; 2],
    ledger: Ledger,
}

/// Phase timings on stderr when `TOKENLEDGER_TIMINGS` is set (for benchmarks; off by default).
struct Phases(Option<std::time::Instant>);

impl Phases {
    fn new() -> Self {
        Self(std::env::var_os("TOKENLEDGER_TIMINGS").map(|_| std::time::Instant::now()))
    }
    fn done(&mut self, what: &str) {
        if let Some(t) = self.0 {
            eprintln!("timing: {what:<14} {:>8.3} s", t.elapsed().as_secs_f64());
            self.0 = Some(std::time::Instant::now());
        }
    }
}

/// One ingest in progress.
pub(super) struct Ingest<'a> {
    layout: &'a Layout,
    opts: &'a IngestOptions,
    ingest_id: String,
    now: DateTime<Utc>,
    staging: PathBuf,
    progress: indicatif::ProgressBar,
    phase: Phases,
    /// The manifest before this ingest, then with this ingest's rows.
    log: Vec<IngestLogRow>,
    summaries: Vec<FileSummary>,
    jobs: Vec<Job>,
    quarantine: Vec<QuarantineRow>,
    /// This ingest's manifest rows, by the file's place in `summaries`.
    new_log: BTreeMap<usize, IngestLogRow>,
    /// Content hashes in the manifest, and of the files of this command taken so far.
    known: HashSet<String>,
    seen_now: HashSet<String>,
    parsed: HashMap<usize, ParsedFile>,
    /// Staged parts of the new files, per (table, month), in file order.
    new_files: BTreeMap<(Table, String), Vec<NewPart>>,
    /// What this ingest will commit (`None` once committed).
    txn: Option<WriteTxn<'a>>,
    lake_superseded: u64,
}

impl<'a> Ingest<'a> {
    /// Starts an ingest under the writer's exclusive lock: reads the manifest.
    pub fn start(
        writer: &'a Writer,
        opts: &'a IngestOptions,
        files: &[PathBuf],
    ) -> Result<Self, IngestError> {
        let layout = writer.layout();
        let now = Utc::now();
        let ingest_id = new_ingest_id(now);
        let txn = writer.begin(ingest_id.clone());
        let mut log = Vec::new();
        for b in lio::read_all(&layout.ingest_log_file())? {
            log.extend(batch::ingest_log_rows(&b)?);
        }
        Ok(Ingest {
            layout,
            opts,
            staging: txn.staging().to_path_buf(),
            txn: Some(txn),
            ingest_id,
            now,
            progress: progress_bar(opts.progress, files),
            phase: Phases::new(),
            log,
            summaries: Vec::new(),
            jobs: Vec::new(),
            quarantine: Vec::new(),
            new_log: BTreeMap::new(),
            known: HashSet::new(),
            seen_now: HashSet::new(),
            parsed: HashMap::new(),
            new_files: BTreeMap::new(),
            lake_superseded: 0,
        })
    }

    /// The provider of the file with sequence number `seq`.
    fn jobs_provider(&self, seq: usize) -> Option<Provider> {
        self.jobs
            .iter()
            .find(|j| j.seq == seq)
            .and_then(|j| j.format.provider())
    }

    /// The transaction this ingest stages into.
    fn txn(&mut self) -> &mut WriteTxn<'a> {
        self.txn
            .as_mut()
            .expect("an ingest stages before it commits")
    }

    /// Phase 1: what was skipped, what is new (content hash), and what each new file is.
    ///
    /// A report that fits in memory is not hashed here: its parse worker reads it once, hashes
    /// the bytes it parses, and [`Self::parse_reports`] then decides, in file order, whether it
    /// was new (so the manifest's hash is that of the bytes loaded, and no report is read
    /// twice). Every other file (lists, ledger files, streamed or unrecognised files) is hashed
    /// first, as lists must be parsed before any report.
    pub fn plan(&mut self, walked: Walk) {
        self.progress.set_message("hashing");
        for sk in &walked.skipped {
            let status = if sk.needs_review {
                FileStatus::Skipped
            } else {
                FileStatus::Ignored
            };
            let mut s = FileSummary::new(super::source_name(&sk.path), status);
            s.error = Some(sk.reason.clone());
            self.summaries.push(s);
        }
        self.known = self.log.iter().map(|r| r.content_hash.clone()).collect();
        let forced = self.opts.format;
        let read_once: Vec<Option<SourceFormat>> =
            crate::par::map(&walked.files, self.opts.jobs, |p| {
                read_once_format(p, forced)
            });
        let to_hash: Vec<PathBuf> = walked
            .files
            .iter()
            .zip(&read_once)
            .filter(|(_, f)| f.is_none())
            .map(|(p, _)| p.clone())
            .collect();
        let mut hashes = hash_files(&to_hash, self.opts.jobs).into_iter();
        for (path, once) in walked.files.iter().zip(read_once) {
            let mut s = FileSummary::new(super::source_name(path), FileStatus::New);
            if let Some(format) = once {
                self.add_job(path, &mut s, format, true);
                self.summaries.push(s);
                continue;
            }
            match hashes.next().expect("a hash per file not read once") {
                Err(reason) => {
                    s.status = FileStatus::Skipped;
                    s.error = Some(reason);
                    self.summaries.push(s);
                }
                Ok((hash, size)) => {
                    s.content_hash = hash.clone();
                    // Read as the format its folder names: the same bytes in another format's
                    // folder (a quiet day of another endpoint) are another file.
                    let named = super::folder_format(path).map(|f| f.as_str());
                    let seen = named.map_or_else(|| hash.clone(), |f| format!("{hash} {f}"));
                    if self.is_known(&hash) && named.is_none_or(|f| self.known_as(&hash, f)) {
                        s.status = FileStatus::Unchanged;
                        s.format = self.logged_format(&hash);
                        self.summaries.push(s);
                    } else if !self.seen_now.insert(seen) {
                        s.status = FileStatus::Duplicate;
                        self.summaries.push(s);
                    } else {
                        self.plan_file(path, s, hash, size);
                    }
                }
            }
        }
    }

    /// Queues the file about to be summarised as `s` (at the next place in `summaries`) for
    /// parsing as `format`.
    fn add_job(
        &mut self,
        path: &std::path::Path,
        s: &mut FileSummary,
        format: SourceFormat,
        read_once: bool,
    ) {
        s.format = Some(format.as_str().into());
        self.jobs.push(Job {
            seq: self.summaries.len(),
            path: path.to_path_buf(),
            source_file: s.path.clone(),
            format,
            read_once,
        });
    }

    /// Whether a file with this content was ingested before as `format`.
    fn known_as(&self, hash: &str, format: &str) -> bool {
        self.log
            .iter()
            .any(|r| r.content_hash == hash && r.source_format.as_deref() == Some(format))
    }

    /// Whether a file with this content was ingested before and is not to be read again.
    fn is_known(&self, hash: &str) -> bool {
        self.known.contains(hash) && !self.retry(hash)
    }

    /// A read-once report after its worker hashed it: unchanged, a duplicate of an earlier
    /// file of this command, unreadable, or new (then its manifest row). False when its
    /// result is not to be kept.
    fn settle_read_once(&mut self, job: &Job, r: &JobResult) -> bool {
        let Some(hashed) = &r.hashed else {
            return true;
        };
        let (hash, size) = match hashed {
            Ok(h) => h,
            Err(reason) => {
                let s = &mut self.summaries[job.seq];
                s.status = FileStatus::Skipped;
                s.format = None;
                s.error = Some(reason.clone());
                return false;
            }
        };
        self.summaries[job.seq].content_hash = hash.clone();
        let settled = if r.known {
            Some((FileStatus::Unchanged, self.logged_format(hash)))
        } else if !self.seen_now.insert(hash.clone()) {
            Some((FileStatus::Duplicate, None))
        } else {
            None
        };
        if let Some((status, format)) = settled {
            let s = &mut self.summaries[job.seq];
            s.status = status;
            s.format = format;
            return false;
        }
        let row = self.log_row(hash.clone(), &self.summaries[job.seq], *size);
        self.new_log.insert(job.seq, row);
        true
    }

    /// The manifest row of a new file (counts filled in by [`Self::finish_log`]).
    fn log_row(&self, hash: String, s: &FileSummary, size: u64) -> IngestLogRow {
        IngestLogRow {
            content_hash: hash,
            source_file: s.path.clone(),
            size_bytes: size,
            source_format: s.format.clone(),
            ingest_id: self.ingest_id.clone(),
            ingested_at: self.now,
            rows_read: 0,
            rows_loaded: 0,
            rows_quarantined: 0,
            rows_superseded: 0,
            status: String::new(),
        }
    }

    fn logged_format(&self, hash: &str) -> Option<String> {
        self.log
            .iter()
            .find(|r| r.content_hash == hash)
            .and_then(|r| r.source_format.clone())
    }

    /// A file quarantined whole is read again when the operator now says what it is (once read
    /// as that format, it is known like any other file).
    fn retry(&self, hash: &str) -> bool {
        let mut logged = self.log.iter().filter(|r| r.content_hash == hash);
        self.opts.format.is_some_and(|f| {
            logged.all(|r| {
                r.status == "quarantined" && r.source_format.as_deref() != Some(f.as_str())
            })
        })
    }

    /// Detects a new file's format: a job, a quarantined file, or a quiet page left alone.
    fn plan_file(&mut self, path: &std::path::Path, mut s: FileSummary, hash: String, size: u64) {
        let detected = match self.opts.format {
            Some(f) => Ok(Detected::Format(f)),
            None => match sources::detect_file(path) {
                Ok(d) => d,
                Err(e) => {
                    s.status = FileStatus::Skipped;
                    s.error = Some(format!("cannot read: {e}"));
                    self.summaries.push(s);
                    return;
                }
            },
        };
        let detected = match detected {
            Ok(d @ (Detected::EmptyReportPage | Detected::EmptyOpenAiPage)) => {
                match empty_page_hint(path, d) {
                    Some(f) => {
                        let f_name = f.as_str();
                        s.notes.push(format!(
                            "a page of empty buckets, read as {f_name} because its name or \
                             folder says so: those periods are restated to zero"
                        ));
                        Ok(f)
                    }
                    None => {
                        s.status = FileStatus::EmptyAmbiguous;
                        s.error = Some(super::empty_page_error(d).into());
                        self.summaries.push(s);
                        return;
                    }
                }
            }
            Ok(Detected::Format(f)) => Ok(f),
            Err(e) => Err(e),
        };
        match detected {
            Ok(format) => self.add_job(path, &mut s, format, false),
            Err(e) => self.unrecognised(&mut s, e, &hash, size),
        }
        let row = self.log_row(hash, &s, size);
        self.new_log.insert(self.summaries.len(), row);
        self.summaries.push(s);
    }

    /// A file whose content is not a known format: never its content in the record (it may
    /// be a `.env`), only its size, a hash prefix and what it looked like.
    fn unrecognised(&mut self, s: &mut FileSummary, e: FileError, hash: &str, size: u64) {
        let reason = format!("{} [{size} bytes, blake3 {}]", e.reason, &hash[..16]);
        s.status = FileStatus::Quarantined;
        s.error = Some(reason.clone());
        self.quarantine.push(QuarantineRow {
            source_file: s.path.clone(),
            source_format: None,
            location: "file".into(),
            line: e.line,
            field: None,
            reason,
            excerpt: None,
        });
        self.progress.inc(size);
    }

    /// Parses one file into its own staged parts.
    fn parse_job(&self, job: &Job, dims: &Dims) -> Result<JobResult, LakeError> {
        let mut files = BTreeMap::new();
        let mut sink = WorkerSink::new(
            dims,
            &self.staging,
            job,
            &self.ingest_id,
            self.now,
            &mut files,
        );
        let limits = &self.opts.limits;
        let (res, hashed, known) = if job.read_once {
            // Read once: hash the bytes, and parse them only if they are not in the manifest.
            let read = sources::with_file_bytes(&job.path, |bytes| {
                let hash = blake3::hash(bytes).to_hex().to_string();
                let size = bytes.len() as u64;
                if self.is_known(&hash) {
                    return (hash, size, None);
                }
                let res = sources::parse_bytes(bytes, job.format, limits, &mut sink);
                (hash, size, Some(res))
            });
            match read {
                Ok((hash, size, res)) => {
                    let known = res.is_none();
                    (res.unwrap_or(Ok(())), Some(Ok((hash, size))), known)
                }
                Err(e) => (Ok(()), Some(Err(e.reason)), false),
            }
        } else {
            let res = sources::parse_file(&job.path, job.format, limits, &mut sink);
            (res, None, false)
        };
        sink.flush(true);
        if let Some(e) = sink.error.take() {
            return Err(e);
        }
        let mut intervals = [
            std::mem::take(&mut sink.usage_intervals),
            std::mem::take(&mut sink.cost_intervals),
        ];
        let mut out = JobResult {
            hashed,
            known,
            parsed: std::mem::take(&mut sink.parsed),
            staged: Vec::new(),
            workspaces: std::mem::take(&mut sink.workspaces),
            api_keys: std::mem::take(&mut sink.api_keys),
            ledger: std::mem::take(&mut sink.ledger),
        };
        out.parsed.error = res.err();
        for ((table, month), f) in files {
            let intervals = match table {
                Table::Usage => intervals[0].remove(&month),
                Table::Cost => intervals[1].remove(&month),
                _ => None,
            };
            let part = NewPart {
                path: f.finish()?,
                seq: job.seq,
                intervals: intervals.unwrap_or_default(),
            };
            out.staged.push(((table, month), part));
        }
        self.progress
            .inc(std::fs::metadata(&job.path).map(|m| m.len()).unwrap_or(0));
        Ok(out)
    }

    fn keep(&mut self, seq: usize, r: JobResult) {
        for (k, part) in r.staged {
            self.new_files.entry(k).or_default().push(part);
        }
        self.parsed.insert(seq, r.parsed);
    }

    /// Phase 2a: the lists and the ledger in the lake, then the new list, credits and invoice
    /// files (small, sequential): report rows are named with the lists.
    pub fn parse_lists(&mut self) -> Result<Lists, IngestError> {
        let mut dims = Dims::default();
        let layout = self.layout;
        for p in layout.providers(Table::Workspaces)? {
            for b in lio::read_all(&layout.provider_file(Table::Workspaces, p))? {
                for w in batch::workspaces_rows(&b)? {
                    dims.workspaces.insert(w.item.id.clone(), w);
                }
            }
        }
        for p in layout.providers(Table::ApiKeys)? {
            for b in lio::read_all(&layout.provider_file(Table::ApiKeys, p))? {
                for k in batch::api_keys_rows(&b)? {
                    dims.api_keys.insert(k.item.id.clone(), k);
                }
            }
        }
        let mut changed = [false, false];
        let mut ledger = Ledger::read(layout)?;
        let lists: Vec<Job> = self
            .jobs
            .iter()
            .filter(|j| Group::of(j.format).is_none())
            .cloned()
            .collect();
        for job in &lists {
            // A list file stages nothing but, possibly, its quarantine part.
            let r = self.parse_job(job, &Dims::default())?;
            if r.parsed.error.is_none() {
                let stored = |item| Stored {
                    item,
                    source_file: job.source_file.clone(),
                    ingest_id: self.ingest_id.clone(),
                };
                for w in &r.workspaces {
                    changed[0] = true;
                    dims.workspaces.insert(w.id.clone(), stored(w.clone()));
                }
                for k in &r.api_keys {
                    changed[1] = true;
                    let s = Stored {
                        item: k.clone(),
                        source_file: job.source_file.clone(),
                        ingest_id: self.ingest_id.clone(),
                    };
                    dims.api_keys.insert(k.id.clone(), s);
                }
                ledger.apply(
                    r.ledger.clone(),
                    job.format,
                    &job.source_file,
                    &self.ingest_id,
                );
            }
            self.keep(job.seq, r);
        }
        dims.default_workspace = self.opts.default_workspace.clone();
        dims.index();
        Ok(Lists {
            dims,
            changed,
            ledger,
        })
    }

    /// Phase 2b: the usage and cost reports, in parallel; each streams its rows into its own
    /// staged parts (one per file, table and month, so a later restatement removes whole parts).
    pub fn parse_reports(&mut self, dims: &Dims) -> Result<(), IngestError> {
        self.phase.done("hash + detect");
        self.progress.set_message("parsing");
        let reports: Vec<&Job> = self
            .jobs
            .iter()
            .filter(|j| Group::of(j.format).is_some())
            .collect();
        let results = crate::par::map(&reports, self.opts.jobs, |job| self.parse_job(job, dims));
        let reports: Vec<Job> = reports.into_iter().cloned().collect();
        let mut dropped = HashSet::new();
        // In file order: of two files with the same content the first is the one loaded.
        for (job, r) in reports.iter().zip(results) {
            let r = r?;
            if self.settle_read_once(job, &r) {
                self.keep(job.seq, r);
            } else {
                // Unchanged, a duplicate or unreadable: what its worker staged goes.
                for (_, part) in r.staged {
                    let _ = std::fs::remove_file(&part.path);
                }
                dropped.insert(job.seq);
            }
        }
        self.jobs.retain(|j| !dropped.contains(&j.seq));
        // In file order, so that part numbers follow the order the files were given.
        for v in self.new_files.values_mut() {
            v.sort_by(|a, b| a.path.cmp(&b.path));
        }
        Ok(())
    }

    /// Phase 3: per-file counts, and a file that failed as a whole goes to the quarantine with
    /// everything it emitted (a partial export must not restate complete data).
    pub fn record_failures(&mut self) {
        for job in &self.jobs {
            let p = self.parsed.get_mut(&job.seq).expect("every job parsed");
            let s = &mut self.summaries[job.seq];
            s.rows_read = p.rows_read;
            s.rows_quarantined = p.rows_quarantined;
            s.notes.append(&mut p.notes);
            let Some(e) = &p.error else { continue };
            let parsed_rows = p.rows_read - p.rows_quarantined;
            s.status = FileStatus::Quarantined;
            s.error = Some(mask_secrets(&e.to_string()));
            s.rows_quarantined = p.rows_read;
            let reason = if parsed_rows > 0 {
                format!(
                    "{e}; the {parsed_rows} row(s) read were not loaded (a partial or \
                     inconsistent export must not restate complete data)"
                )
            } else {
                e.to_string()
            };
            self.quarantine.push(QuarantineRow {
                source_file: job.source_file.clone(),
                source_format: Some(job.format.as_str().into()),
                location: "file".into(),
                line: e.line,
                field: None,
                reason: mask_secrets(&reason),
                excerpt: None,
            });
        }
    }

    /// The intervals each new, readable report file claims, per (table group, provider, month).
    fn claims(&self) -> BTreeMap<(Group, Provider, String), Vec<coverage::Claim>> {
        let mut touched: BTreeMap<(Group, Provider, String), Vec<coverage::Claim>> =
            BTreeMap::new();
        for job in &self.jobs {
            let (Some(group), Some(provider)) = (Group::of(job.format), job.format.provider())
            else {
                continue;
            };
            let p = &self.parsed[&job.seq];
            if p.error.is_some() {
                continue;
            }
            for &(fam, s, e) in &p.coverage {
                touched
                    .entry((group, provider, model::month_key(batch::from_micros(s))))
                    .or_default()
                    .push((job.seq, fam, s, e));
            }
        }
        touched
    }

    /// Phase 4: who owns each interval after this ingest, and each touched month's parts
    /// merged into the journal. Every row lies in a covered bucket, so the claims name every
    /// month with staged rows.
    pub fn claim(&mut self) -> Result<(), IngestError> {
        self.phase.done("parse + stage");
        self.progress.set_message("merging");
        let seq_of_file: HashMap<String, usize> = self
            .jobs
            .iter()
            .map(|j| (j.source_file.clone(), j.seq))
            .collect();
        let final_dir = self.staging.join("final");
        let mut rejected_rows: HashMap<usize, u64> = HashMap::new();
        let mut yielded: BTreeMap<(usize, SourceFamily), (u64, i64, i64)> = BTreeMap::new();
        for (n, ((group, provider, month), intervals)) in self.claims().into_iter().enumerate() {
            // The parts of this provider's files (a file is of one format, so one provider).
            let new_parts = self
                .new_files
                .get(&(group.data(), month.clone()))
                .into_iter()
                .flatten()
                .filter(|p| self.jobs_provider(p.seq) == Some(provider))
                .cloned()
                .collect();
            let out = merge::merge_month(merge::MonthInput {
                layout: self.layout,
                group,
                provider,
                month: &month,
                intervals,
                jobs: &self.jobs,
                ingest_id: &self.ingest_id,
                seq_of_file: &seq_of_file,
                new_parts,
                final_dir: &final_dir,
                precedence: &self.opts.precedence,
            })?;
            let txn = self.txn();
            for (staged, target) in out.renames {
                txn.rename(staged, target);
            }
            for p in out.removes {
                txn.remove(p);
            }
            self.quarantine.extend(out.quarantine);
            self.lake_superseded += out.lake_superseded;
            self.tally_precedence(out.yielded, out.took, &mut yielded);
            for (seq, c) in out.per_file {
                self.summaries[seq].rows_loaded += c.loaded;
                self.summaries[seq].rows_superseded += c.superseded;
                *rejected_rows.entry(seq).or_default() += c.rejected;
            }
            if n == 0 {
                txn::crash_point("mid-stage");
            }
        }
        for (seq, n) in rejected_rows {
            self.summaries[seq].rows_quarantined += n;
        }
        self.say_yielded(yielded);
        // A broken file's rows were all counted as quarantined; none of them was loaded.
        for job in &self.jobs {
            if self.parsed[&job.seq].error.is_some() {
                self.summaries[job.seq].rows_loaded = 0;
                self.summaries[job.seq].rows_superseded = 0;
            }
        }
        Ok(())
    }

    /// Counts the buckets kept out of the totals per (file, owner family), and notes the
    /// families each file took days over from.
    fn tally_precedence(
        &mut self,
        ys: Vec<super::coverage::Yield>,
        took: Vec<(usize, SourceFamily)>,
        yielded: &mut BTreeMap<(usize, SourceFamily), (u64, i64, i64)>,
    ) {
        for y in ys {
            let e = yielded
                .entry((y.seq, y.winner))
                .or_insert((0, y.start, y.end));
            *e = (e.0 + 1, e.1.min(y.start), e.2.max(y.end));
        }
        for (seq, fam) in took {
            let s = &mut self.summaries[seq];
            if !s.took_over.contains(&fam.as_str()) {
                s.took_over.push(fam.as_str());
                s.notes.push(format!(
                    "now owns days {} data owned: that data is kept but no longer counted \
                     ([ingest] precedence {})",
                    fam.as_str(),
                    self.opts.precedence.text()
                ));
            }
        }
    }

    /// Says, per file, which of its buckets another family owns (kept, not counted).
    fn say_yielded(&mut self, yielded: BTreeMap<(usize, SourceFamily), (u64, i64, i64)>) {
        let order = self.opts.precedence.text();
        for ((seq, winner), (n, first, last)) in yielded {
            let s = &mut self.summaries[seq];
            s.buckets_not_counted += n;
            s.notes.push(format!(
                "{n} bucket(s) from {} to {} kept but not counted: {} data owns them \
                 ([ingest] precedence {order})",
                super::fmt_us(first),
                super::fmt_us(last),
                winner.as_str()
            ));
        }
    }

    /// Stages one small table (lists, manifest, quarantine of this ingest) for the commit.
    fn stage_table(
        &mut self,
        table: Table,
        b: arrow::record_batch::RecordBatch,
        target: PathBuf,
    ) -> Result<(), IngestError> {
        self.txn().replace(table, target, &[b])?;
        Ok(())
    }

    /// The ledger tables that changed, each rewritten whole.
    fn write_ledger(&mut self, ledger: &Ledger) -> Result<(), IngestError> {
        use crate::lake::ledger as ll;
        let layout = self.layout;
        let [lots, snapshots, invoices] = ledger.changed;
        if lots {
            let rows: Vec<_> = ledger.lots.values().cloned().collect();
            let b = ll::credit_lots_batch(&rows);
            self.stage_table(Table::CreditLots, b, layout.table_file(Table::CreditLots))?;
        }
        if snapshots {
            let rows: Vec<_> = ledger.snapshots.values().cloned().collect();
            let b = ll::balance_snapshots_batch(&rows);
            let target = layout.table_file(Table::BalanceSnapshots);
            self.stage_table(Table::BalanceSnapshots, b, target)?;
        }
        if invoices {
            let rows: Vec<_> = ledger.invoices.values().cloned().collect();
            let (b, lines) = (ll::invoices_batch(&rows), ll::invoice_lines_batch(&rows));
            self.stage_table(Table::Invoices, b, layout.table_file(Table::Invoices))?;
            let target = layout.table_file(Table::InvoiceLines);
            self.stage_table(Table::InvoiceLines, lines, target)?;
        }
        Ok(())
    }

    /// Phase 5: the lists that changed, the manifest, and this ingest's quarantine.
    pub fn write_tables(&mut self, lists: Lists) -> Result<(), IngestError> {
        let Lists {
            dims,
            changed,
            ledger,
        } = lists;
        self.write_ledger(&ledger)?;
        let layout = self.layout;
        // A list is stored per provider: each provider's file holds its own rows.
        for p in crate::vocab::Provider::ALL {
            let of = |i: &Provider| *i == p;
            let ws = of_provider(&dims.workspaces, |w| of(&w.provider));
            if changed[0] && !ws.is_empty() {
                let target = layout.provider_file(Table::Workspaces, p);
                self.stage_table(Table::Workspaces, batch::workspaces_batch(&ws), target)?;
            }
            let keys = of_provider(&dims.api_keys, |k| of(&k.provider));
            if changed[1] && !keys.is_empty() {
                let target = layout.provider_file(Table::ApiKeys, p);
                self.stage_table(Table::ApiKeys, batch::api_keys_batch(&keys), target)?;
            }
        }
        self.finish_log();
        if !self.new_log.is_empty() {
            let mut log = std::mem::take(&mut self.log);
            log.extend(std::mem::take(&mut self.new_log).into_values());
            let b = batch::ingest_log_batch(&log);
            self.stage_table(Table::IngestLog, b, layout.ingest_log_file())?;
        }
        if !self.quarantine.is_empty() {
            let b = batch::quarantine_batch(&self.quarantine, &self.ingest_id, self.now);
            let target = layout.quarantine_file(&self.ingest_id);
            self.stage_table(Table::Quarantine, b, target)?;
        }
        // Bad rows the parse workers staged, part by part.
        let parts: Vec<PathBuf> = self
            .new_files
            .get(&(Table::Quarantine, String::new()))
            .into_iter()
            .flatten()
            .map(|p| p.path.clone())
            .collect();
        for (n, part) in parts.into_iter().enumerate() {
            let target = layout.quarantine_part(&self.ingest_id, n + 1);
            self.txn().rename(part, target);
        }
        txn::crash_point("staged");
        Ok(())
    }

    /// The manifest rows of this ingest's files, from their summaries.
    fn finish_log(&mut self) {
        for (&seq, l) in self.new_log.iter_mut() {
            let s = &mut self.summaries[seq];
            let list = s
                .format
                .as_deref()
                .and_then(SourceFormat::parse)
                .is_some_and(|f| Group::of(f).is_none());
            if list && s.status == FileStatus::New {
                s.rows_loaded = s.rows_read - s.rows_quarantined;
            }
            l.rows_read = s.rows_read;
            l.rows_loaded = s.rows_loaded;
            l.rows_quarantined = s.rows_quarantined;
            l.rows_superseded = s.rows_superseded;
            l.status = match s.status {
                FileStatus::Quarantined => "quarantined",
                _ if s.rows_quarantined > 0 => "loaded_with_quarantine",
                _ => "loaded",
            }
            .into();
        }
    }

    /// Phase 6: the commit point (the journal), or nothing to commit.
    pub fn commit(&mut self) -> Result<bool, IngestError> {
        self.phase.done("merge + write");
        self.progress.set_message("committing");
        let txn = self.txn.take().expect("an ingest commits once");
        let committed = !txn.is_empty();
        txn.commit()?;
        self.progress.finish_and_clear();
        self.phase.done("commit");
        Ok(committed)
    }

    /// Phase 7: the summary of every file and format.
    pub fn summarise(self, recovered: Option<String>, committed: bool) -> IngestSummary {
        let mut by_format: BTreeMap<String, FormatTotals> = BTreeMap::new();
        for s in &self.summaries {
            let t = by_format
                .entry(s.format.clone().unwrap_or_else(|| match s.status {
                    FileStatus::Skipped | FileStatus::Ignored => "not read".into(),
                    FileStatus::EmptyAmbiguous => "empty report page".into(),
                    _ => "unrecognised".into(),
                }))
                .or_default();
            match s.status {
                FileStatus::New | FileStatus::Quarantined => t.files_new += 1,
                FileStatus::Unchanged | FileStatus::Duplicate => t.files_unchanged += 1,
                FileStatus::Skipped | FileStatus::Ignored | FileStatus::EmptyAmbiguous => {}
            }
            t.rows_loaded += s.rows_loaded;
            t.rows_quarantined += s.rows_quarantined;
            t.rows_superseded += s.rows_superseded;
        }
        IngestSummary {
            ingest_id: self.ingest_id,
            data_dir: self.layout.location(),
            recovered,
            rows_quarantined: self.summaries.iter().map(|s| s.rows_quarantined).sum(),
            files: self.summaries,
            by_format,
            lake_rows_superseded: self.lake_superseded,
            committed,
        }
    }
}

/// The stored items of a list that `keep` says are of one provider.
fn of_provider<T: Clone>(
    items: &BTreeMap<String, Stored<T>>,
    keep: impl Fn(&T) -> bool,
) -> Vec<Stored<T>> {
    items.values().filter(|s| keep(&s.item)).cloned().collect()
}
