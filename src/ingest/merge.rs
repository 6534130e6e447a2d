//! Merge: one month of one table group after an ingest.
//!
//! Owns: deciding, from the month's coverage and the new files' claims, which rows are in force,
//! and turning that into part-file moves, removals and (only for mixed parts) rewrites, staged
//! for the commit. Must not: commit (the caller owns the journal), or parse sources.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use arrow::array::BooleanArray;
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;

use super::coverage::{self, Claim, Effective};
use super::{Group, Job, MASK_COLUMNS, NewPart, fmt_us};
use crate::lake::batch::{self, QuarantineRow};
use crate::lake::io::{self as lio, LakeError, StagedFile};
use crate::lake::{Layout, Table, schema};
use crate::model::{SourceFamily, SourceFormat};
use crate::vocab::Provider;

pub(super) struct MonthInput<'a> {
    pub layout: &'a Layout,
    pub group: Group,
    pub provider: Provider,
    pub month: &'a str,
    /// What the new files of this ingest claim in this month.
    pub intervals: Vec<Claim>,
    pub jobs: &'a [Job],
    pub ingest_id: &'a str,
    pub seq_of_file: &'a HashMap<String, usize>,
    /// Staged parts of the new files for this month.
    pub new_parts: Vec<NewPart>,
    pub final_dir: &'a Path,
    pub precedence: &'a crate::model::Precedence,
}

/// How the rows of one new file fared in this month.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FileCounts {
    pub loaded: u64,
    pub superseded: u64,
    pub rejected: u64,
}

#[derive(Debug, Default)]
pub(super) struct MonthOutcome {
    /// (staged or new part, lake path): moves for the journal.
    pub renames: Vec<(PathBuf, PathBuf)>,
    /// Lake parts this ingest replaces.
    pub removes: Vec<PathBuf>,
    pub quarantine: Vec<QuarantineRow>,
    /// Rows already in the lake that newer exports restated.
    pub lake_superseded: u64,
    pub per_file: HashMap<usize, FileCounts>,
    /// Buckets of new files kept out of the totals: an outranking family owns them.
    pub yielded: Vec<coverage::Yield>,
    /// (file seq, family): intervals of an outranked family a new file took over.
    pub took: Vec<(usize, SourceFamily)>,
}

fn job(jobs: &[Job], seq: usize) -> &Job {
    jobs.iter()
        .find(|j| j.seq == seq)
        .expect("every claim comes from a job")
}

/// A part leaving the lake, and what is derived from it: the rated mirror of a usage part
/// goes in the same commit, so no reader ever sees priced rows of restated usage.
fn removal(
    layout: &Layout,
    (table, provider): (Table, Provider),
    month: &str,
    part: &Path,
) -> Vec<PathBuf> {
    let mut out = vec![part.to_path_buf()];
    if table == Table::Usage {
        out.push(layout.pricing_mirror(part, provider, month));
    }
    out
}

/// The month's coverage after this ingest's claims: partial restatements of coarser buckets
/// are rejected and quarantined (`out`), the rest applied.
fn claim_month(
    inp: &mut MonthInput<'_>,
    out: &mut MonthOutcome,
) -> Result<(Effective, HashSet<Claim>), LakeError> {
    let cov_path = inp
        .layout
        .month_file(inp.group.coverage(), inp.provider, inp.month);
    let mut eff = Effective::default();
    for b in lio::read_all(&cov_path)? {
        for c in batch::coverage_rows(&b)? {
            // The family follows the format (lakes before 0.5 filed Analytics queries as `api`).
            let fam = SourceFormat::parse(&c.source_format)
                .map(SourceFormat::lane)
                .unwrap_or(crate::model::Lane {
                    family: c.family,
                    scope: 0,
                });
            let o = eff.owner((c.ingest_id, c.source_file), &c.source_format);
            eff.insert(fam, c.start_us, c.end_us, o);
        }
    }
    let (jobs, ingest_id) = (inp.jobs, inp.ingest_id);
    let owner_of = |seq: usize| {
        let j = job(jobs, seq);
        (
            (ingest_id.to_string(), j.source_file.clone()),
            j.format.as_str().to_string(),
        )
    };
    let mut rejected: HashSet<Claim> = HashSet::new();
    let decided = coverage::claim(&mut eff, &mut inp.intervals, inp.precedence, owner_of);
    for r in decided.rejected {
        let j = job(jobs, r.seq);
        rejected.insert((r.seq, r.family, r.start, r.end));
        let reason = format!(
            "this bucket restates only part of an already-ingested bucket {} .. {}; re-export that whole period at one bucket width",
            fmt_us(r.overlapped.0),
            fmt_us(r.overlapped.1)
        );
        out.quarantine.push(QuarantineRow {
            source_file: j.source_file.clone(),
            source_format: Some(j.format.as_str().into()),
            location: format!("bucket {} .. {}", fmt_us(r.start), fmt_us(r.end)),
            line: None,
            field: None,
            reason,
            excerpt: None,
        });
    }
    out.yielded = decided.yielded;
    out.took = decided.took;
    Ok((eff, rejected))
}

/// The ownership test of stored rows (old or new): a row is in force iff its file owns its
/// interval. Rows come in long runs of one file, so the last file's owner is remembered.
struct Ownership<'a> {
    eff: &'a Effective,
    lookup: HashMap<(crate::model::Lane, i64, i64), usize>,
    rejected: &'a HashSet<Claim>,
    seq_of_file: &'a HashMap<String, usize>,
    last: Option<(String, String, Option<usize>, Option<usize>)>,
}

impl Ownership<'_> {
    /// Whether every row of a new part stays (its file owns every interval of its rows): then
    /// the part moves into place as it is, and is not read back. Else the rows are tested one
    /// by one ([`Ownership::mask`]), which gives the same answer for a part that all stays.
    fn owns_all(&self, part: &NewPart, jobs: &[Job], ingest_id: &str) -> bool {
        let key = (
            ingest_id.to_string(),
            job(jobs, part.seq).source_file.clone(),
        );
        let Some(&o) = self.eff.owner_idx.get(&key) else {
            return false;
        };
        !part.intervals.is_empty()
            && part.intervals.iter().all(|&(fam, s, e, _)| {
                self.lookup.get(&(fam, s, e)) == Some(&o)
                    && !self.rejected.contains(&(part.seq, fam, s, e))
            })
    }

    fn mask(
        &mut self,
        b: &RecordBatch,
        is_new: bool,
        per_file: &mut HashMap<usize, FileCounts>,
    ) -> Result<Vec<bool>, LakeError> {
        let (st, en, fmt, ing, file) = (
            batch::ts_col(b, "bucket_start")?,
            batch::ts_col(b, "bucket_end")?,
            batch::str_col(b, "source_format")?,
            batch::str_col(b, "ingest_id")?,
            batch::str_col(b, "source_file")?,
        );
        let mut keep = Vec::with_capacity(b.num_rows());
        for r in 0..b.num_rows() {
            let fam = SourceFormat::parse(fmt.value(r))
                .map(SourceFormat::lane)
                .unwrap_or(crate::model::Lane {
                    family: SourceFamily::Api,
                    scope: 0,
                });
            let (i, f) = (ing.value(r), file.value(r));
            if !self.last.as_ref().is_some_and(|l| l.0 == i && l.1 == f) {
                let key = (i.to_string(), f.to_string());
                let o = self.eff.owner_idx.get(&key).copied();
                self.last = Some((key.0, key.1, o, self.seq_of_file.get(f).copied()));
            }
            let (o, seq_here) = self.last.as_ref().map(|l| (l.2, l.3)).expect("set above");
            let interval = (fam, st.value(r), en.value(r));
            let kept = o.is_some() && self.lookup.get(&interval).copied() == o;
            keep.push(kept);
            if is_new && let Some(seq) = seq_here {
                let c = per_file.entry(seq).or_default();
                if kept {
                    c.loaded += 1;
                } else if self.rejected.contains(&(seq, fam, interval.1, interval.2)) {
                    c.rejected += 1;
                } else {
                    c.superseded += 1;
                }
            }
        }
        Ok(keep)
    }
}

/// Writes the rows of `part` that `mask` keeps into a staged part.
fn rewrite(
    part: &Path,
    mask: &[bool],
    staged: PathBuf,
    table: Table,
    ingest_id: &str,
) -> Result<PathBuf, LakeError> {
    let mut w = StagedFile::create(staged, schema::of(table), table, ingest_id)?;
    let mut offset = 0;
    for b in lio::read_batches(part)? {
        let b = b?;
        let m = BooleanArray::from(mask[offset..offset + b.num_rows()].to_vec());
        offset += b.num_rows();
        let k = filter_record_batch(&b, &m).map_err(lio::arrow_err(part))?;
        if k.num_rows() > 0 {
            w.write(&k)?;
        }
    }
    w.finish()
}

/// Whether no claim of this ingest overlaps an old part's time span: then it keeps every row
/// (each ingest leaves only rows in force) and is not read (the nightly case reads only the
/// restated day). A part without statistics is read.
fn untouched(part: &Path, claimed: &[(i64, i64)]) -> Result<bool, LakeError> {
    Ok(match lio::time_span(part)? {
        Some((lo, hi)) => !claimed.iter().any(|&(s, e)| s < hi && lo < e),
        None => false,
    })
}

/// The month's coverage after this ingest, staged: (staged file, lake path).
fn stage_coverage(
    layout: &Layout,
    (group, provider): (Group, Provider),
    month: &str,
    eff: &Effective,
    final_dir: &Path,
    ingest_id: &str,
) -> Result<(PathBuf, PathBuf), LakeError> {
    let cov_path = layout.month_file(group.coverage(), provider, month);
    let cov_staged = final_dir
        .join(group.coverage().dir_name())
        .join(format!("{provider}-{month}.parquet"));
    let rows = batch::coverage_batch(&eff.rows(provider));
    let mut f = StagedFile::create(cov_staged, schema::coverage(), group.coverage(), ingest_id)?;
    f.write(&rows)?;
    Ok((f.finish()?, cov_path))
}

pub(super) fn merge_month(mut inp: MonthInput<'_>) -> Result<MonthOutcome, LakeError> {
    let mut out = MonthOutcome::default();
    let (eff, rejected) = claim_month(&mut inp, &mut out)?;
    let (layout, group, provider, month) = (inp.layout, inp.group, inp.provider, inp.month);
    let (ingest_id, final_dir) = (inp.ingest_id, inp.final_dir);
    let mut own = Ownership {
        eff: &eff,
        lookup: eff.lookup(),
        rejected: &rejected,
        seq_of_file: inp.seq_of_file,
        last: None,
    };
    // Each part file, old or new, is tested on the five ownership columns only. A part whose
    // rows all stay is kept (old) or moved into place (new) untouched; a part whose rows all go
    // is removed; only a mixed part is rewritten. The nightly case (new buckets) rewrites
    // nothing that is already in the lake.
    let table = group.data();
    let old_parts = layout
        .month_parts(table, provider, month)
        .map_err(lio::io_err(&layout.root))?;
    let mut n_out = 0usize;
    let mut part_name = || {
        n_out += 1;
        layout
            .month_dir(table, provider, month)
            .join(format!("part-{ingest_id}-{n_out}.parquet"))
    };
    let parts = old_parts.iter().map(|p| (p, None));
    let new_parts = inp.new_parts.iter().map(|p| (&p.path, Some(p)));
    let claimed: Vec<(i64, i64)> = inp.intervals.iter().map(|c| (c.2, c.3)).collect();
    for (part, new) in parts.chain(new_parts) {
        let is_new = new.is_some();
        if !is_new && untouched(part, &claimed)? {
            continue;
        }
        if let Some(p) = new
            && own.owns_all(p, inp.jobs, ingest_id)
        {
            out.per_file.entry(p.seq).or_default().loaded += p.rows();
            out.renames.push((part.clone(), part_name()));
            continue;
        }
        let mut mask: Vec<bool> = Vec::new();
        for b in lio::read_batches_projected(part, Some(&MASK_COLUMNS))? {
            mask.extend(own.mask(&b?, is_new, &mut out.per_file)?);
        }
        let kept = mask.iter().filter(|k| **k).count();
        if !is_new {
            out.lake_superseded += (mask.len() - kept) as u64;
        }
        if kept == mask.len() && kept > 0 {
            if is_new {
                out.renames.push((part.clone(), part_name()));
            }
            continue;
        }
        if kept > 0 {
            let name = part_name();
            let staged = final_dir
                .join(table.dir_name())
                .join(provider.as_str())
                .join(name.file_name().expect("part has a name"));
            out.renames
                .push((rewrite(part, &mask, staged, table, ingest_id)?, name));
        }
        if !is_new {
            out.removes
                .extend(removal(layout, (table, provider), month, part));
        }
    }
    out.renames.push(stage_coverage(
        layout,
        (group, provider),
        month,
        &eff,
        final_dir,
        ingest_id,
    )?);
    Ok(out)
}
