//! The one pass behind rate-limit headroom: the usage parts whose rows reach into a window,
//! read column by column (projected Arrow batches through `lake::io`, one part per thread), and
//! summed per model class × workspace × bucket: the tokens each limit counts (input: uncached
//! input and cache writes, and cache reads where the class counts them; output) and the requests where the
//! source counts them. Batch and long-context (1M) rows are left out: they have limits of their
//! own. Nothing is priced; memory follows the (class × workspace × minute) cells, not the rows.
//!
//! Must not: decide what is near a limit (that is `headroom`), price, or use polars.

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

use super::table::RateTable;
use crate::intern::{NONE, Strings};
use crate::lake::LakeError;
use crate::lake::io as lio;
use crate::vocab::Provider;

pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What one bucket of one class and workspace counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    /// Tokens the input limit counts.
    pub input: u64,
    pub output: u64,
    /// Requests of the rows that count them.
    pub requests: u64,
    /// A row of the bucket did not count its requests: the bucket's requests are unknown.
    pub requests_unknown: bool,
}

impl Cell {
    fn add(&mut self, o: &Cell) {
        self.input += o.input;
        self.output += o.output;
        self.requests += o.requests;
        self.requests_unknown |= o.requests_unknown;
    }
}

/// The sums of the window (codes into `strings`: classes as `provider|class`, workspaces).
#[derive(Debug, Default)]
pub struct Sums {
    pub strings: Strings,
    /// (class, workspace id, minute start µs) → cell, from 1-minute buckets.
    pub minutes: HashMap<(u32, u32, i64), Cell>,
    /// (class, workspace id, bucket start µs, width in minutes) → cell, from hourly and daily
    /// buckets: only a lower bound of their busiest minute.
    pub coarse: HashMap<(u32, u32, i64, u32), Cell>,
    /// Workspace id code → name code (the last seen).
    pub ws_names: HashMap<u32, u32>,
    /// Classes that no class of the table knows (named by the canonical model): no limit.
    pub unclassified: std::collections::BTreeSet<u32>,
    /// Tokens left out: batch, and long-context requests.
    pub excluded_batch: u64,
    pub excluded_long_context: u64,
    /// The newest bucket start seen in the window (µs).
    pub last_start: Option<i64>,
}

/// Usage columns read (text ones as dictionaries).
const TEXT: [&str; 6] = [
    "bucket_width",
    "service_tier",
    "context_window",
    "model",
    "workspace_id",
    "workspace_name",
];
const INPUT: [&str; 5] = [
    "uncached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_write_30m_tokens",
    "cache_write_12h_tokens",
];

fn missing(path: &Path, column: &str) -> LakeError {
    LakeError::Column {
        path: path.to_path_buf(),
        column: column.into(),
    }
}

/// A usage part, its provider and the span of its buckets from the footer's statistics
/// (`None`: no statistics; such a part is always read).
pub type Span = (Provider, PathBuf, Option<(i64, i64)>);

/// Every usage part of the lake with its span (footers only: no row is read).
pub fn spans(layout: &crate::lake::Layout) -> Result<Vec<Span>, LakeError> {
    use crate::lake::Table;
    let mut out = Vec::new();
    for (p, month) in layout.partitions(Table::Usage)? {
        let dir = layout.month_dir(Table::Usage, p, &month);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(crate::lake::error::io_err(&dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.extension().is_some_and(|x| x == "parquet"))
            .collect();
        files.sort();
        for f in files {
            let span = lio::time_span(&f)?;
            out.push((p, f, span));
        }
    }
    Ok(out)
}

/// The parts of `spans` whose rows may reach into `[from, to)` (µs).
pub fn parts(spans: Vec<Span>, from: i64, to: i64) -> Vec<(Provider, PathBuf)> {
    spans
        .into_iter()
        .filter(|(.., span)| span.is_none_or(|(lo, hi)| hi > from && lo < to))
        .map(|(p, f, _)| (p, f))
        .collect()
}

/// Sums every part of `parts` over `[from, to)` (µs), in parallel, into one [`Sums`].
pub fn window(
    parts: &[(Provider, PathBuf)],
    table: &RateTable,
    (from, to): (i64, i64),
) -> Result<Sums, LakeError> {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let sums = crate::par::map(parts, jobs, |(p, f)| part(*p, f, table, (from, to)))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merge(sums))
}

/// The class code of each model code of one part (a model no class knows is its own class).
struct Classes<'a> {
    provider: Provider,
    table: &'a RateTable,
    of: HashMap<u32, (u32, bool)>,
}

impl Classes<'_> {
    fn get(&mut self, s: &mut Sums, model: u32) -> (u32, bool) {
        if let Some(c) = self.of.get(&model) {
            return *c;
        }
        let name = s.strings.get(model).unwrap_or("(no model)").to_string();
        let rates = self.table.providers.get(&self.provider);
        let v = match rates.and_then(|r| r.class_of(&name)) {
            Some(c) => (
                s.strings.intern(&format!("{}|{}", self.provider, c.name)),
                c.cache_reads_count,
            ),
            None => {
                let canonical = crate::pricing::canonical_model(&name);
                let code = s.strings.intern(&format!("{}|{canonical}", self.provider));
                s.unclassified.insert(code);
                (code, false)
            }
        };
        self.of.insert(model, v);
        v
    }
}

/// One part's sums over `[from, to)`.
pub fn part(
    provider: Provider,
    path: &Path,
    table: &RateTable,
    (from, to): (i64, i64),
) -> Result<Sums, LakeError> {
    let mut s = Sums::default();
    let mut columns: Vec<&str> = vec!["bucket_start"];
    columns.extend(TEXT);
    columns.extend(INPUT);
    columns.extend(["cache_read_tokens", "output_tokens", "requests"]);
    let mut classes = Classes {
        provider,
        table,
        of: HashMap::default(),
    };
    let (batch, long) = (s.strings.intern("batch"), s.strings.intern("200k-1M"));
    let widths = [("1m", 1u32), ("1h", 60), ("1d", 1440)].map(|(w, m)| (s.strings.intern(w), m));
    // A null workspace id (the legacy reports' default workspace) is a workspace, not the
    // organisation (NONE): named as the anomaly series name it.
    let default_ws = s.strings.intern("default");
    let mut text: [Vec<u32>; 6] = Default::default();
    for b in lio::read_batches_dictionary(path, &columns, &TEXT)? {
        let b = b?;
        let start = b
            .column_by_name("bucket_start")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| missing(path, "bucket_start"))?;
        for (j, name) in TEXT.iter().enumerate() {
            b.column_by_name(name)
                .and_then(|c| s.strings.codes_into(c.as_ref(), &mut text[j]))
                .ok_or_else(|| missing(path, name))?;
        }
        let count = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or_else(|| missing(path, name))
        };
        let input = INPUT.map(count);
        let input: Vec<_> = input.into_iter().collect::<Result<_, _>>()?;
        let (read, output, requests) = (
            count("cache_read_tokens")?,
            count("output_tokens")?,
            count("requests")?,
        );
        let [width, tier, context, model, ws, ws_name] = &text;
        for i in 0..b.num_rows() {
            let at = start.value(i);
            if at < from || at >= to {
                continue;
            }
            let (class, reads_count) = classes.get(&mut s, model[i]);
            let mut cell = Cell {
                input: input.iter().map(|c| c.value(i) as u64).sum(),
                output: output.value(i) as u64,
                requests: if requests.is_null(i) {
                    0
                } else {
                    requests.value(i) as u64
                },
                requests_unknown: requests.is_null(i),
            };
            if reads_count {
                cell.input += read.value(i) as u64;
            }
            let w = if ws[i] == NONE { default_ws } else { ws[i] };
            let (dims, kinds) = ((class, w, ws_name[i], at), (tier[i], context[i], width[i]));
            book(&mut s, dims, kinds, (batch, long, &widths), cell);
        }
    }
    Ok(s)
}

/// Books one row's cell: left out (batch, long context) or into its minute or coarse bucket.
fn book(
    s: &mut Sums,
    (class, ws, ws_name, at): (u32, u32, u32, i64),
    (tier, context, width): (u32, u32, u32),
    (batch, long, widths): (u32, u32, &[(u32, u32); 3]),
    cell: Cell,
) {
    if tier == batch {
        s.excluded_batch += cell.input + cell.output;
        return;
    }
    if context == long {
        s.excluded_long_context += cell.input + cell.output;
        return;
    }
    s.last_start = Some(s.last_start.map_or(at, |x| x.max(at)));
    if ws_name != NONE {
        s.ws_names.insert(ws, ws_name);
    }
    match widths.iter().find(|w| w.0 == width).map_or(1440, |w| w.1) {
        1 => s.minutes.entry((class, ws, at)).or_default().add(&cell),
        m => s.coarse.entry((class, ws, at, m)).or_default().add(&cell),
    }
}

/// Merges the parts' sums into the first (re-coding the others' strings).
pub fn merge(parts: Vec<Sums>) -> Sums {
    let mut it = parts.into_iter();
    let Some(mut all) = it.next() else {
        return Sums::default();
    };
    for p in it {
        let rc = all.strings.recode(&p.strings);
        for ((c, w, at), cell) in p.minutes {
            all.minutes
                .entry((rc(c), rc(w), at))
                .or_default()
                .add(&cell);
        }
        for ((c, w, at, m), cell) in p.coarse {
            all.coarse
                .entry((rc(c), rc(w), at, m))
                .or_default()
                .add(&cell);
        }
        for (w, n) in p.ws_names {
            all.ws_names.insert(rc(w), rc(n));
        }
        all.unclassified.extend(p.unclassified.into_iter().map(rc));
        all.excluded_batch += p.excluded_batch;
        all.excluded_long_context += p.excluded_long_context;
        all.last_start = match (all.last_start, p.last_start) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    all
}
