//! Coverage: which file owns which interval of time, after an ingest.
//!
//! Owns: the effective-coverage index of one (table group, month) and the restatement and
//! precedence rules applied to it (see the parent module). Must not: read or write files.

use std::collections::{BTreeMap, HashMap};

use crate::lake::batch::Coverage;
use crate::model::{Lane, SourceFamily};

/// The owner of an interval: a file of an ingest.
pub(super) type Owner = (String, String); // (ingest_id, source_file)

/// Effective coverage of one (group, month), indexed for overlap queries.
#[derive(Default)]
pub(super) struct Effective {
    /// lane → start → (end, owner index)
    pub(super) by_start: BTreeMap<Lane, BTreeMap<i64, Vec<(i64, usize)>>>,
    pub(super) owners: Vec<Owner>,
    pub(super) owner_idx: HashMap<Owner, usize>,
    pub(super) formats: HashMap<usize, String>,
    widest: i64,
}

impl Effective {
    pub(super) fn owner(&mut self, o: Owner, format: &str) -> usize {
        if let Some(&i) = self.owner_idx.get(&o) {
            return i;
        }
        let i = self.owners.len();
        self.owners.push(o.clone());
        self.owner_idx.insert(o, i);
        self.formats.insert(i, format.to_string());
        i
    }
    pub(super) fn insert(&mut self, fam: Lane, s: i64, e: i64, owner: usize) {
        // The widest interval ever inserted bounds how far back an overlap query must look.
        self.widest = self.widest.max(e - s);
        self.by_start
            .entry(fam)
            .or_default()
            .entry(s)
            .or_default()
            .push((e, owner));
    }
    pub(super) fn overlapping(&self, fam: Lane, s: i64, e: i64) -> Vec<(i64, i64, usize)> {
        let mut out = Vec::new();
        if let Some(m) = self.by_start.get(&fam) {
            for (&os, v) in m.range(s - self.widest + 1..e) {
                for &(oe, o) in v {
                    if oe > s && os < e {
                        out.push((os, oe, o));
                    }
                }
            }
        }
        out
    }
    pub(super) fn remove(&mut self, fam: Lane, s: i64, e: i64) {
        if let Some(m) = self.by_start.get_mut(&fam)
            && let Some(v) = m.get_mut(&s)
        {
            v.retain(|&(oe, _)| oe != e);
            if v.is_empty() {
                m.remove(&s);
            }
        }
    }
    pub(super) fn lookup(&self) -> HashMap<(Lane, i64, i64), usize> {
        let mut out = HashMap::new();
        for (&fam, m) in &self.by_start {
            for (&s, v) in m {
                for &(e, o) in v {
                    out.insert((fam, s, e), o);
                }
            }
        }
        out
    }
    pub(super) fn rows(&self, provider: crate::vocab::Provider) -> Vec<Coverage> {
        let mut out = Vec::new();
        for (&fam, m) in &self.by_start {
            for (&s, v) in m {
                for &(e, o) in v {
                    let (ing, file) = &self.owners[o];
                    out.push(Coverage {
                        provider,
                        family: fam.family,
                        start_us: s,
                        end_us: e,
                        source_format: self.formats[&o].clone(),
                        source_file: file.clone(),
                        ingest_id: ing.clone(),
                    });
                }
            }
        }
        out
    }
}

/// An interval a new file claims: (file sequence number, lane, start µs, end µs).
pub(super) type Claim = (usize, Lane, i64, i64);

/// A bucket of a new file that could not be applied: it covers only part of an older,
/// coarser bucket of the same family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rejection {
    pub seq: usize,
    pub family: Lane,
    pub start: i64,
    pub end: i64,
    pub overlapped: (i64, i64),
}

/// A bucket of a new file kept out of the totals: a family that outranks its own already owns
/// (part of) that interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Yield {
    pub seq: usize,
    pub winner: SourceFamily,
    pub start: i64,
    pub end: i64,
}

/// What [`claim`] decided besides the coverage itself.
#[derive(Debug, Default)]
pub(super) struct Decisions {
    pub rejected: Vec<Rejection>,
    pub yielded: Vec<Yield>,
    /// (file seq, family it took over from): intervals of an outranked family this file now owns.
    pub took: Vec<(usize, SourceFamily)>,
}

/// Applies the new files' intervals `(file seq, family, start, end)` to `eff`, in file order:
/// restatement within a family (whole-bucket replacement only), `prec` across families.
/// `owner_of(seq)` names the file (owner key and format) of a sequence number.
pub(super) fn claim(
    eff: &mut Effective,
    intervals: &mut Vec<Claim>,
    prec: &crate::model::Precedence,
    owner_of: impl Fn(usize) -> (Owner, String),
) -> Decisions {
    intervals.sort_by_key(|&(seq, fam, s, e)| (seq, fam, s, e));
    intervals.dedup();
    let mut out = Decisions::default();
    let mut i = 0;
    while i < intervals.len() {
        let seq = intervals[i].0;
        let j = intervals[i..]
            .iter()
            .position(|x| x.0 != seq)
            .map_or(intervals.len(), |k| i + k);
        let mine = &intervals[i..j];
        let (key, format) = owner_of(seq);
        let owner = eff.owner(key, &format);
        // How much of [os, oe) this file's own buckets cover.
        let covered = |os: i64, oe: i64| -> i64 {
            mine.iter()
                .filter(|x| x.3 > os && x.2 < oe)
                .map(|x| x.3.min(oe) - x.2.max(os))
                .sum()
        };
        for &(_, fam, s, e) in mine {
            // A family that outranks this one owns (part of) the interval: kept, not counted.
            let lane = |family| Lane {
                family,
                scope: fam.scope,
            };
            if let Some(winner) = prec
                .above(fam.family)
                .find(|&f| !eff.overlapping(lane(f), s, e).is_empty())
            {
                out.yielded.push(Yield {
                    seq,
                    winner,
                    start: s,
                    end: e,
                });
                continue;
            }
            // Within the family only whole buckets are replaced, or usage of the uncovered part
            // would be lost.
            let same = eff.overlapping(fam, s, e);
            if let Some(&(os, oe, _)) = same
                .iter()
                .find(|&&(os, oe, o)| o != owner && covered(os, oe) < oe - os)
            {
                out.rejected.push(Rejection {
                    seq,
                    family: fam,
                    start: s,
                    end: e,
                    overlapped: (os, oe),
                });
                continue;
            }
            for (os, oe, _) in same {
                eff.remove(fam, os, oe);
            }
            // A family it outranks gives the interval up whole (either ingest order gives the
            // same lake: that family's later files yield to this one, above).
            for f in prec.below(fam.family) {
                for (os, oe, _) in eff.overlapping(lane(f), s, e) {
                    eff.remove(lane(f), os, oe);
                    if !out.took.contains(&(seq, f)) {
                        out.took.push((seq, f));
                    }
                }
            }
            eff.insert(fam, s, e, owner);
        }
        i = j;
    }
    out
}
