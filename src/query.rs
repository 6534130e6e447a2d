//! Query: questions over the lake, answered with polars.
//!
//! Owns: scanning the lake's Parquet files (never the provider's raw files), the SQL context
//! analysts use (`tokenledger sql`), the canned queries in `sql/`, and rendering a result as a
//! terminal table, CSV or JSON.
//! Must not: write to the lake, or parse provider formats.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use polars::sql::SQLContext;

use crate::grid::{Cell, Grid};
use crate::lake::{Layout, Table};
use crate::money::Money;

/// The query behind `tokenledger usage`; also run by DuckDB in the interop tests.
pub const USAGE_TOTALS_SQL: &str = include_str!("../sql/usage_totals.sql");

/// The `rated_usage` view for other engines: `usage` joined with what pricing added
/// (`usage_pricing`) on the usage row's key. tokenledger's own sessions pair the same files by
/// position ([`rated_frame`]), which gives the same rows.
pub const RATED_USAGE_SQL: &str = include_str!("../sql/rated_usage.sql");
/// The view's name.
pub const RATED_USAGE: &str = "rated_usage";

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Polars(#[from] PolarsError),
    #[error(
        "{message}\n(tables with data in {dir}: {tables}; a table missing here has nothing ingested yet)"
    )]
    Sql {
        message: String,
        dir: String,
        tables: String,
    },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("column {column} of a query result is {got}, expected {want}")]
    Type {
        column: String,
        want: String,
        got: String,
    },
}

/// The Parquet files of a table, sorted; in-flight temp files are excluded.
pub fn table_files(layout: &Layout, table: Table) -> Result<Vec<PathBuf>, QueryError> {
    table_files_in(layout, table.dir_name())
}

/// The Parquet files under a table directory of the lake (e.g. a derived table), as
/// [`crate::lake::parquet_files`] finds them (never `_delta_log/`, never temp files).
pub fn table_files_in(layout: &Layout, dir: &str) -> Result<Vec<PathBuf>, QueryError> {
    let dir = layout.root.join(dir);
    crate::lake::parquet_files(&dir).map_err(|e| match e {
        crate::lake::LakeError::Io { path, source } => QueryError::Io { path, source },
        other => QueryError::Io {
            path: dir.clone(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

/// A lazy scan of one table, or `None` when it has no files yet.
pub fn scan(layout: &Layout, table: Table) -> Result<Option<LazyFrame>, QueryError> {
    let files = table_files(layout, table)?;
    if files.is_empty() {
        return Ok(None);
    }
    scan_files(&files).map(Some)
}

/// The `month=YYYY-MM` partition key of a lake file's path, if it has one.
fn month_key(file: &Path) -> Option<String> {
    file.parent()?
        .file_name()?
        .to_str()?
        .strip_prefix("month=")
        .map(str::to_string)
}

/// A lazy scan of the given Parquet files. Files of a month partition get its key as a
/// `month` column (text, `YYYY-MM`, UTC), as DuckDB's and Spark's Hive partitioning give it, so
/// the shipped SQL can prune on `month` in every engine; `provider`, the other key, is a column
/// in the files already.
pub fn scan_files(files: &[PathBuf]) -> Result<LazyFrame, QueryError> {
    let months: Vec<Option<String>> = files.iter().map(|f| month_key(f)).collect();
    if months.iter().any(Option::is_none) {
        return scan_plain(files, None);
    }
    if let Some(Some(m)) = months.first()
        && months.iter().all(|k| k.as_ref() == Some(m))
    {
        // One partition (a report's part): the key is a constant.
        return Ok(scan_plain(files, None)?.with_column(lit(m.clone()).alias("month")));
    }
    // Several: one scan (a union of scans trips polars 0.55.2's COUNT(*)), the key read off
    // each row's file path.
    const PATH: &str = "__tokenledger_file";
    Ok(scan_plain(files, Some(PATH))?
        .with_column(
            col(PATH)
                .str()
                .extract(lit(r"month=(\d{4}-\d{2})"), 1)
                .alias("month"),
        )
        .drop(Selector::ByName {
            names: [PlSmallStr::from_static(PATH)].into(),
            strict: true,
        }))
}

/// Runs a plan on polars' streaming engine, so memory follows the answer, not the rows
/// scanned (measured on 4.9 M usage rows: `credits` 689 → 103 MB, `usage --month` 2.0 GB →
/// 186 MB, a GROUP BY in `sql` 452 → 81 MB); an operation the streaming engine does not
/// implement yet falls back to the in-memory engine, as polars' own auto-streaming does.
fn collect(lf: LazyFrame) -> PolarsResult<DataFrame> {
    let streamed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lf.clone().collect_with_engine(Engine::Streaming)
    }));
    match streamed {
        Ok(r) => r.map(|q| q.unwrap_single()),
        Err(e)
            if e.downcast_ref::<&str>()
                .is_some_and(|s| s.starts_with("not yet implemented")) =>
        {
            lf.collect()
        }
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// A lazy scan of Parquet files, Hive keys not parsed; `path_column` names a column of each
/// row's file path.
fn scan_plain(
    files: &[PathBuf],
    path_column: Option<&'static str>,
) -> Result<LazyFrame, QueryError> {
    let paths: Vec<PlRefPath> = files
        .iter()
        .map(|p| PlRefPath::try_from_path(p))
        .collect::<PolarsResult<_>>()?;
    let args = ScanArgsParquet {
        // `provider` is a column in the files too; `month` is added by `scan_files`.
        hive_options: HiveOptions {
            enabled: Some(false),
            ..HiveOptions::new_enabled()
        },
        include_file_paths: path_column.map(PlSmallStr::from_static),
        ..Default::default()
    };
    let mut lf = LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)?;
    // Token counts are INT64 per row, but a SUM over many rows can pass i64: widen them to
    // DECIMAL(38,0) so every sum is exact (polars would wrap an i64 sum silently).
    let schema = lf.collect_schema()?;
    let widen: Vec<Expr> = crate::lake::schema::TOKEN_COLUMNS
        .iter()
        .filter(|c| schema.get(c).is_some_and(|t| t.is_integer()))
        .map(|c| col(*c).cast(DataType::Decimal(38, 0)))
        .collect();
    if !widen.is_empty() {
        lf = lf.with_columns(widen);
    }
    Ok(lf)
}

/// The id → name columns of the latest workspace and API-key lists, for naming rows at read
/// time. Each frame has a sentinel row no id can equal: polars 0.55.2 drops left rows with a
/// null key in a LEFT JOIN against an empty frame.
pub fn name_frames(layout: &Layout) -> Result<(Frame, Frame), QueryError> {
    let frame = |table: Table, id: &str, name: &str| -> Result<Frame, QueryError> {
        let sentinel = df!(id => ["\u{0}no id\u{0}"], name => [None::<&str>])?
            .lazy()
            .select([col(id), col(name).cast(DataType::String)]);
        let lf = match scan(layout, table)? {
            Some(lf) => concat(
                [lf.select([col(id), col(name)]), sentinel],
                UnionArgs::default(),
            )?,
            None => sentinel,
        };
        Ok(Frame(collect(lf)?))
    };
    Ok((
        frame(Table::Workspaces, "workspace_id", "workspace_name")?,
        frame(Table::ApiKeys, "api_key_id", "api_key_name")?,
    ))
}

/// A SQL context with every non-empty table registered under its directory name.
pub fn context(layout: &Layout) -> Result<SQLContext, QueryError> {
    let ctx = SQLContext::new();
    for t in Table::ALL {
        if let Some(mut lf) = scan(layout, t)? {
            if t == Table::Teams {
                // polars 0.55.2 drops left rows with a null key (Console usage has no key
                // name) in a LEFT JOIN whose right side is empty: a row no name can equal
                // keeps an empty team map from losing them (other engines need none).
                let sentinel = df!(
                    "kind" => ["api_key", "workspace"],
                    "name" => ["\u{0}no team\u{0}", "\u{0}no team\u{0}"],
                    "team" => [crate::vocab::UNALLOCATED, crate::vocab::UNALLOCATED],
                    "cost_center" => [None::<&str>, None],
                )?
                .lazy();
                lf = concat([lf, sentinel], UnionArgs::default())?;
            }
            ctx.register(t.dir_name(), lf);
        }
    }
    if let Some(lf) = rated_frame(layout, &table_files(layout, Table::UsagePricing)?)? {
        ctx.register(RATED_USAGE, lf);
    }
    Ok(ctx)
}

/// The `rated_usage` view over `pricing` parts, in polars: each pricing part beside the usage
/// part it mirrors, row for row (a pricing part holds the rows of its usage part in the same order,
/// so pairing by position gives exactly the rows of the join in `sql/rated_usage.sql`, without
/// building a hash table of every key; `tests/it/engines.rs` compares the two row by row).
/// Columns in the order of the view. `None` when no pricing part has its usage part.
fn rated_frame(layout: &Layout, pricing: &[PathBuf]) -> Result<Option<LazyFrame>, QueryError> {
    let (usage, pricing): (Vec<PathBuf>, Vec<PathBuf>) = pricing
        .iter()
        .map(|p| (layout.usage_of(p), p.clone()))
        .filter(|(u, _)| u.is_file())
        .unzip();
    if pricing.is_empty() {
        return Ok(None);
    }
    let view = crate::lake::schema::rated_usage_view();
    let n_usage = crate::lake::schema::usage().fields().len();
    let added: Vec<Expr> = view.fields()[n_usage..]
        .iter()
        .map(|f| col(f.name().as_str()))
        .collect();
    let both = concat_lf_horizontal(
        [scan_files(&usage)?, scan_files(&pricing)?.select(added)],
        HConcatOptions {
            strict: true,
            ..Default::default()
        },
    )?;
    let order: Vec<Expr> = view
        .fields()
        .iter()
        .map(|f| col(f.name().as_str()))
        .chain([col("month")])
        .collect();
    Ok(Some(both.select(order)))
}

/// Splits a SQL text into statements (on `;` outside quotes and comments).
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            cur.push('\n');
                            break;
                        }
                    }
                }
                ';' => out.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            },
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Runs SQL over the lake; with several statements, each runs in order and the last result
/// is returned (polars runs one statement per call).
pub fn run_sql(layout: &Layout, sql: &str) -> Result<DataFrame, QueryError> {
    let mut ctx = context(layout)?;
    let mut last = None;
    for stmt in statements(sql) {
        let df = ctx.execute(&stmt).and_then(collect).map_err(|e| {
            let mut tables = ctx.get_tables();
            tables.sort();
            QueryError::Sql {
                message: e.to_string(),
                dir: layout.root.display().to_string(),
                tables: if tables.is_empty() {
                    "none".into()
                } else {
                    tables.join(", ")
                },
            }
        })?;
        last = Some(df);
    }
    Ok(last.unwrap_or_default())
}

fn cell(av: AnyValue) -> Cell {
    match av {
        AnyValue::Null => Cell::Null,
        AnyValue::Int8(v) => Cell::Int(v.into()),
        AnyValue::Int16(v) => Cell::Int(v.into()),
        AnyValue::Int32(v) => Cell::Int(v.into()),
        AnyValue::Int64(v) => Cell::Int(v.into()),
        AnyValue::UInt8(v) => Cell::Int(v.into()),
        AnyValue::UInt16(v) => Cell::Int(v.into()),
        AnyValue::UInt32(v) => Cell::Int(v.into()),
        AnyValue::UInt64(v) => Cell::Int(v.into()),
        // Scale 0 is a (widened) integer: token sums.
        AnyValue::Decimal(v, _, 0) => Cell::Int(v),
        AnyValue::Decimal(v, _, s) => Cell::Dec(v, s),
        AnyValue::String(s) => Cell::Text(s.to_string()),
        AnyValue::StringOwned(s) => Cell::Text(s.to_string()),
        AnyValue::Datetime(v, unit, _) | AnyValue::DatetimeOwned(v, unit, _) => {
            let t = match unit {
                TimeUnit::Milliseconds => chrono::DateTime::from_timestamp_millis(v),
                TimeUnit::Microseconds => chrono::DateTime::from_timestamp_micros(v),
                TimeUnit::Nanoseconds => Some(chrono::DateTime::from_timestamp_nanos(v)),
            };
            // The lake's times are UTC: RFC 3339 with `Z`, as DuckDB and Spark read them.
            match t {
                Some(t) => Cell::Text(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
                None => Cell::Text(v.to_string()),
            }
        }
        other => Cell::Text(other.to_string().trim_matches('"').to_string()),
    }
}

/// A SQL session of one stage: lake files and small tables registered under names, queries
/// run one statement at a time. Stages use it instead of polars itself, so polars stays in
/// this module.
pub struct Sql {
    ctx: SQLContext,
    /// What is registered: each lake file's identity (path, size, modification time, inode:
    /// a part is never edited in place, so a new part is a new identity) and each small
    /// table's text. With a statement, the key of its cached result; `None` once a table
    /// without such an identity is registered (nothing is cached then).
    key: Option<blake3::Hasher>,
    /// `_tokenledger/cache/sql/` of the lake a table came from.
    cache: Option<PathBuf>,
}

impl Default for Sql {
    fn default() -> Self {
        Self::new()
    }
}

/// Bumped when a cached result could differ for the same files and statement.
const CACHE_VERSION: &str = "sql-cache-1";
/// Results kept in `_tokenledger/cache/sql/` (the least recently used go first).
const CACHE_KEEP: usize = 4096;

/// What identifies this build: a result cached by another binary is not reused.
pub fn build_identity() -> String {
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| format!("{}:{:?}", m.len(), m.modified().ok()))
        .unwrap_or_default();
    format!("{CACHE_VERSION}:{}:{exe}", env!("CARGO_PKG_VERSION"))
}

impl Sql {
    pub fn new() -> Self {
        let mut key = blake3::Hasher::new();
        key.update(build_identity().as_bytes());
        Sql {
            ctx: SQLContext::new(),
            key: Some(key),
            cache: None,
        }
    }
    /// Adds `name` and the identity of each of `files` to the key.
    fn key_files(&mut self, name: &str, files: &[PathBuf]) {
        let Some(k) = self.key.as_mut() else { return };
        k.update(name.as_bytes());
        for f in files {
            match file_identity(f) {
                Some(id) => {
                    k.update(id.as_bytes());
                }
                None => {
                    self.key = None;
                    return;
                }
            }
        }
    }
    fn cache_in(&mut self, layout: &Layout) {
        self.cache = Some(layout.internal().join("cache").join("sql"));
    }
    /// Registers Parquet files (token counts widened, see [`scan_files`]) as table `name`.
    pub fn files(&mut self, name: &str, files: &[PathBuf]) -> Result<(), QueryError> {
        self.key_files(name, files);
        self.ctx.register(name, scan_files(files)?);
        Ok(())
    }
    /// Registers the `rated_usage` view over pricing parts (see [`rated_frame`]); false when
    /// none has its usage part.
    pub fn rated_parts(
        &mut self,
        layout: &Layout,
        pricing: &[PathBuf],
    ) -> Result<bool, QueryError> {
        match rated_frame(layout, pricing)? {
            Some(lf) => {
                let usage: Vec<PathBuf> = pricing.iter().map(|p| layout.usage_of(p)).collect();
                self.key_files(RATED_USAGE, pricing);
                self.key_files("", &usage);
                self.cache_in(layout);
                self.ctx.register(RATED_USAGE, lf);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    /// Registers the `rated_usage` view over every pricing part; false when nothing is priced
    /// yet.
    pub fn rated_table(&mut self, layout: &Layout) -> Result<bool, QueryError> {
        let pricing = table_files(layout, Table::UsagePricing)?;
        self.rated_parts(layout, &pricing)
    }
    /// Registers a lake table when it has data; returns whether it has.
    pub fn table(&mut self, layout: &Layout, table: Table) -> Result<bool, QueryError> {
        let files = table_files(layout, table)?;
        if files.is_empty() {
            return Ok(false);
        }
        self.key_files(table.dir_name(), &files);
        self.cache_in(layout);
        self.ctx.register(table.dir_name(), scan_files(&files)?);
        Ok(true)
    }
    /// Registers a small table of text columns (teams, names) as `name`.
    pub fn strings(
        &mut self,
        name: &str,
        columns: &[(&str, Vec<Option<String>>)],
    ) -> Result<(), QueryError> {
        let cols: Vec<Column> = columns
            .iter()
            .map(|(n, v)| Column::new((*n).into(), v.clone()))
            .collect();
        let height = columns.first().map_or(0, |c| c.1.len());
        if let Some(k) = self.key.as_mut() {
            k.update(format!("\0{name}\0{columns:?}").as_bytes());
        }
        self.ctx
            .register(name, DataFrame::new(height, cols)?.lazy());
        Ok(())
    }
    /// Registers a result as table `name`.
    pub fn frame(&mut self, name: &str, f: Frame) {
        self.key = None;
        self.ctx.register(name, f.0.lazy());
    }
    /// Runs one statement. A result is kept in the lake's `_tokenledger/cache/sql/` under the
    /// key of its inputs and statement, so a statement over files no commit changed since is
    /// read back, not computed (a nightly run with nothing new re-reads no usage).
    pub fn run(&mut self, sql: &str) -> Result<Frame, QueryError> {
        let cached = match (&self.key, &self.cache) {
            (Some(k), Some(dir)) => {
                let mut k = k.clone();
                k.update(b"\0statement\0");
                k.update(sql.as_bytes());
                Some(dir.join(format!("{}.parquet", k.finalize().to_hex())))
            }
            _ => None,
        };
        if let Some(df) = cached.as_deref().and_then(read_cached) {
            return Ok(Frame(df));
        }
        let mut df = collect(self.ctx.execute(sql)?)?;
        if let Some(path) = cached {
            write_cached(&path, &mut df);
        }
        Ok(Frame(df))
    }
}

/// A lake file's identity: path, size, modification time and inode (a part is never edited in
/// place, so new content is a new identity); `None` when it cannot be read.
pub fn file_identity(f: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(f).ok()?;
    Some(format!(
        "\0{}\0{}\0{}\0{}",
        f.display(),
        m.len(),
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        m.ino()
    ))
}

/// A cached result, if it is there and whole (touched: the least recently used go first).
fn read_cached(path: &Path) -> Option<DataFrame> {
    let f = std::fs::File::open(path).ok()?;
    let df = ParquetReader::new(f).finish().ok()?;
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    Some(df)
}

/// Keeps a result (see [`store_cached`]).
fn write_cached(path: &Path, df: &mut DataFrame) {
    store_cached(path, CACHE_KEEP, |f| {
        ParquetWriter::new(f).finish(df).is_ok()
    });
}

/// Writes a derived cache file at `path` with `write` (temp file + rename: a reader sees it
/// whole or not at all; a lake we cannot write simply caches nothing), then trims its folder
/// to half of `keep` files when it holds more (the least recently written go first).
pub fn store_cached(path: &Path, keep: usize, write: impl FnOnce(&std::fs::File) -> bool) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(tmp) = tempfile::NamedTempFile::new_in(dir) else {
        return;
    };
    if !write(tmp.as_file()) || tmp.persist(path).is_err() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() > keep {
        files.sort();
        for (_, f) in &files[..files.len() - keep / 2] {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// An interned text column: `codes[row]` indexes `values`.
#[derive(Debug, Clone, Default)]
pub struct Codes {
    pub codes: Vec<Option<u32>>,
    pub values: Vec<String>,
}

impl Codes {
    /// The value of row `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.codes[i].map(|c| self.values[c as usize].as_str())
    }
}

/// A query result, read back strictly: a column of an unexpected type is an error naming it,
/// never a silent zero.
#[derive(Debug, Clone, Default)]
pub struct Frame(DataFrame);

impl Frame {
    pub fn height(&self) -> usize {
        self.0.height()
    }
    /// Frames of the same columns, one after the other.
    pub fn concat(frames: Vec<Frame>) -> Result<Frame, QueryError> {
        let mut it = frames.into_iter();
        let Some(mut first) = it.next() else {
            return Ok(Frame::default());
        };
        for f in it {
            first.0.vstack_mut(&f.0)?;
        }
        Ok(first)
    }
    fn values<T>(
        &self,
        name: &str,
        want: &str,
        each: impl Fn(AnyValue) -> Option<Option<T>>,
    ) -> Result<Vec<Option<T>>, QueryError> {
        let c = self.0.column(name)?;
        let mut out = Vec::with_capacity(c.len());
        for i in 0..c.len() {
            // The value is described only when it is refused (formatting every value would
            // cost more than decoding it).
            let decoded = each(c.get(i)?);
            out.push(match decoded {
                Some(x) => x,
                None => {
                    return Err(QueryError::Type {
                        column: name.to_string(),
                        want: want.to_string(),
                        got: format!("{:?}", c.get(i)?),
                    });
                }
            });
        }
        Ok(out)
    }
    /// A text column (NULL is `None`).
    pub fn text(&self, name: &str) -> Result<Vec<Option<String>>, QueryError> {
        // A string column is read through its typed array (no value-by-value dispatch).
        let c = self.0.column(name)?;
        if let Ok(strings) = c.str() {
            return Ok(strings.iter().map(|v| v.map(str::to_string)).collect());
        }
        // A day (`business_day`, `utc_day`) is its ISO text, YYYY-MM-DD.
        if c.dtype() == &DataType::Date {
            let t = c.cast(&DataType::String)?;
            return Ok(t.str()?.iter().map(|v| v.map(str::to_string)).collect());
        }
        self.values(name, "text", |v| match v {
            AnyValue::Null => Some(None),
            AnyValue::String(s) => Some(Some(s.to_string())),
            AnyValue::StringOwned(s) => Some(Some(s.to_string())),
            _ => None,
        })
    }
    /// A text column interned: one code per row (NULL is `None`) into the distinct values, in
    /// order of first appearance (no string is copied per row).
    pub fn codes(&self, name: &str) -> Result<Codes, QueryError> {
        let strings = self.0.column(name)?.str().map_err(|_| QueryError::Type {
            column: name.to_string(),
            want: "text".into(),
            got: format!("{:?}", self.0.column(name).map(|c| c.dtype().clone())),
        })?;
        let mut index: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let mut out = Codes::default();
        for v in strings.iter() {
            out.codes.push(v.map(|v| {
                *index.entry(v).or_insert_with(|| {
                    out.values.push(v.to_string());
                    (out.values.len() - 1) as u32
                })
            }));
        }
        Ok(out)
    }
    /// A timestamp column as microseconds since the epoch, UTC (NULL is `None`).
    pub fn micros(&self, name: &str) -> Result<Vec<Option<i64>>, QueryError> {
        let c = self.0.column(name)?;
        let t = c.datetime().map_err(|_| QueryError::Type {
            column: name.to_string(),
            want: "a timestamp".into(),
            got: format!("{:?}", c.dtype()),
        })?;
        let (mul, div) = match t.time_unit() {
            TimeUnit::Nanoseconds => (1, 1000),
            TimeUnit::Microseconds => (1, 1),
            TimeUnit::Milliseconds => (1000, 1),
        };
        Ok(t.physical()
            .iter()
            .map(|v| v.map(|v| v * mul / div))
            .collect())
    }
    /// A money column: decimals of any scale, rescaled exactly to 12 digits (NULL is `None`).
    pub fn money(&self, name: &str) -> Result<Vec<Option<Money>>, QueryError> {
        if let Ok(d) = self.0.column(name)?.decimal() {
            let scale = d.scale() as u32;
            let mut out = Vec::with_capacity(d.len());
            for v in d.physical().iter() {
                out.push(match v {
                    None => None,
                    Some(v) => {
                        Some(
                            Money::from_scaled(v, scale).ok_or_else(|| QueryError::Type {
                                column: name.to_string(),
                                want: "an exact decimal at most 12 digits past the point".into(),
                                got: format!("{v} at scale {scale}"),
                            })?,
                        )
                    }
                });
            }
            return Ok(out);
        }
        self.values(name, "an exact decimal", |v| match v {
            AnyValue::Null => Some(None),
            AnyValue::Decimal(v, _, s) => Money::from_scaled(v, s as u32).map(Some),
            _ => None,
        })
    }
    /// A count column: integers, or decimals of scale 0 (widened sums); NULL is `None`.
    pub fn count(&self, name: &str) -> Result<Vec<Option<i128>>, QueryError> {
        self.values(name, "an integer count", |v| match v {
            AnyValue::Null => Some(None),
            AnyValue::Decimal(v, _, 0) => Some(Some(v)),
            AnyValue::Int64(v) => Some(Some(v.into())),
            AnyValue::Int32(v) => Some(Some(v.into())),
            AnyValue::UInt32(v) => Some(Some(v.into())),
            AnyValue::UInt64(v) => Some(Some(v.into())),
            _ => None,
        })
    }
    /// Writes the result as one Parquet file, atomically (temp file + rename).
    pub fn write_parquet(&self, path: &Path) -> Result<(), QueryError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let io = |source| QueryError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
        let mut df = self.0.clone();
        ParquetWriter::new(tmp.as_file()).finish(&mut df)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
    /// The generic grid of this result (what `tokenledger sql` prints).
    pub fn grid(&self) -> Result<Grid, QueryError> {
        grid(&self.0)
    }
}

/// A polars result as a grid (the generic `sql` output; stages decode their own results
/// strictly with [`Frame`]).
pub fn grid(df: &DataFrame) -> Result<Grid, QueryError> {
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let mut row = Vec::with_capacity(df.width());
        for c in df.columns() {
            row.push(cell(c.get(i)?));
        }
        rows.push(row);
    }
    Ok(Grid {
        columns: df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        rows,
        footer: None,
    })
}

/// `tokenledger usage`: token totals per month × workspace × model (`sql/usage_totals.sql`),
/// for one month or all; `None` when the lake has no usage yet.
pub fn usage_totals(layout: &Layout, month: Option<&str>) -> Result<Option<Frame>, QueryError> {
    if scan(layout, Table::Usage)?.is_none() {
        return Ok(None);
    }
    // Only the month's partition is read (its files, not a filter over every file).
    let files: Vec<PathBuf> = table_files(layout, Table::Usage)?
        .into_iter()
        .filter(|f| month.is_none_or(|m| month_key(f).as_deref() == Some(m)))
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    let mut ctx = SQLContext::new();
    ctx.register(Table::Usage.dir_name(), scan_files(&files)?);
    Ok(Some(Frame(collect(ctx.execute(USAGE_TOTALS_SQL)?)?)))
}

/// `tokenledger sql`: an analyst's query (the last statement's result).
pub fn sql(layout: &Layout, text: &str) -> Result<Frame, QueryError> {
    run_sql(layout, text).map(Frame)
}

/// Fills `{{NAME}}` placeholders from `NAME=VALUE` pairs. A value may not hold a quote, a
/// semicolon or a comment (it is pasted into the SQL); a placeholder left unfilled, or a
/// parameter the text does not use, is an error naming it.
pub fn fill_params(sql: &str, params: &[String]) -> Result<String, String> {
    let mut text = sql.to_string();
    // `month` also fills its neighbours, the partitions a business month can touch.
    let month = params.iter().find_map(|p| p.strip_prefix("month="));
    if let Some(m) = month.and_then(|m| crate::vocab::Month::parse(m).ok()) {
        for (slot, n) in [
            ("{{month_before}}", m.previous()),
            ("{{month_after}}", m.next()),
        ] {
            if let Some(n) = n {
                text = text.replace(slot, &n.key());
            }
        }
    }
    // `dims` also orders the lines unless `order` says otherwise (report.sql's {{order}}).
    if let Some(d) = params.iter().find_map(|p| p.strip_prefix("dims="))
        && !params.iter().any(|p| p.starts_with("order="))
        && !d.contains(['\'', '"', ';'])
    {
        text = text.replace("{{order}}", d);
    }
    for p in params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("--param {p:?}: use NAME=VALUE, e.g. --param month=2026-10"))?;
        if v.contains(['\'', '"', ';']) || v.contains("--") {
            return Err(format!(
                "--param {k}: {v:?} may not hold quotes, `;` or `--`"
            ));
        }
        let slot = format!("{{{{{k}}}}}");
        if !text.contains(&slot) {
            return Err(format!("--param {k}: the query has no {slot} placeholder"));
        }
        text = text.replace(&slot, v);
    }
    if let Some(i) = text.find("{{") {
        let name: String = text[i + 2..].chars().take_while(|c| *c != '}').collect();
        return Err(format!(
            "the query needs --param {name}=VALUE (it has a {{{{{name}}}}} placeholder)"
        ));
    }
    Ok(text)
}

/// The SQL name of a lake column type (what DuckDB, Spark and Trino call it).
fn sql_type(t: &arrow::datatypes::DataType) -> String {
    use arrow::datatypes::DataType as D;
    match t {
        D::Utf8 | D::LargeUtf8 => "VARCHAR".into(),
        D::Int64 => "BIGINT".into(),
        D::Int32 => "INTEGER".into(),
        D::Boolean => "BOOLEAN".into(),
        D::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        D::Timestamp(_, Some(tz)) => format!("TIMESTAMP (µs, {tz})"),
        D::Timestamp(_, None) => "TIMESTAMP (µs)".into(),
        D::Date32 => "DATE".into(),
        other => format!("{other}"),
    }
}

/// `sql --tables`: every table of the lake with its columns, types and nullability (the
/// partition keys `provider` and `month` included where the table has them).
pub fn tables_grid() -> Grid {
    let mut rows = Vec::new();
    // The lake's tables, then the view over two of them.
    let all = Table::ALL
        .iter()
        .map(|t| (t.dir_name(), crate::lake::schema::of(*t), t.monthly()))
        .chain([(RATED_USAGE, crate::lake::schema::rated_usage_view(), true)]);
    for (name, schema, monthly) in all {
        for f in schema.fields() {
            rows.push(vec![
                Cell::Text(name.into()),
                Cell::Text(f.name().clone()),
                Cell::Text(sql_type(f.data_type())),
                Cell::Text(if f.is_nullable() { "yes" } else { "no" }.into()),
            ]);
        }
        if monthly && schema.field_with_name("month").is_err() {
            rows.push(vec![
                Cell::Text(name.into()),
                Cell::Text("month".into()),
                Cell::Text("VARCHAR (partition: UTC month)".into()),
                Cell::Text("no".into()),
            ]);
        }
    }
    Grid {
        columns: ["table", "column", "type", "nullable"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        rows,
        footer: None,
    }
}

/// `tokenledger quarantine`: every rejected file and row, of one ingest or all; `None` when
/// nothing was ever quarantined.
pub fn quarantine(layout: &Layout, ingest_id: Option<&str>) -> Result<Option<Frame>, QueryError> {
    let Some(lf) = scan(layout, Table::Quarantine)? else {
        return Ok(None);
    };
    let lf = match ingest_id {
        Some(id) => lf.filter(col("ingest_id").eq(lit(id))),
        None => lf,
    };
    let df = lf
        .select([
            col("ingest_id"),
            col("source_file"),
            col("location"),
            col("field"),
            col("reason"),
            col("excerpt"),
        ])
        .sort(
            ["ingest_id", "source_file"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()?;
    Ok(Some(Frame(df)))
}
