//! Query: questions over the lake, answered with polars.
//!
//! Owns: scanning the lake's Parquet files (never the provider's raw files), the SQL context
//! analysts use (`tokenledger sql`), the canned queries in `sql/`, and rendering a result as a
//! terminal table, CSV or JSON.
//! Must not: write to the lake, or parse provider formats.

use std::fmt::Write as _;

use std::path::{Path, PathBuf};

use polars::prelude::*;
use polars::sql::SQLContext;

use crate::lake::{Layout, Table};

/// The query behind `tokenledger usage`; also run by DuckDB in the interop tests.
pub const USAGE_TOTALS_SQL: &str = include_str!("../sql/usage_totals.sql");

pub const TABLES: [Table; 9] = [
    Table::Usage,
    Table::UsageCoverage,
    Table::Cost,
    Table::CostCoverage,
    Table::Workspaces,
    Table::ApiKeys,
    Table::IngestLog,
    Table::Quarantine,
    Table::RatedUsage,
];

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
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The Parquet files of a table, sorted; in-flight temp files are excluded.
pub fn table_files(layout: &Layout, table: Table) -> Result<Vec<PathBuf>, QueryError> {
    table_files_in(layout, table.dir_name())
}

/// The Parquet files under a table directory of the lake (e.g. a derived table).
pub fn table_files_in(layout: &Layout, dir: &str) -> Result<Vec<PathBuf>, QueryError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), QueryError> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(QueryError::Io {
                    path: dir.into(),
                    source: e,
                });
            }
        };
        for e in rd {
            let e = e.map_err(|source| QueryError::Io {
                path: dir.into(),
                source,
            })?;
            let p = e.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "parquet")
                && !e.file_name().to_string_lossy().starts_with('.')
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&layout.root.join(dir), &mut out)?;
    out.sort();
    Ok(out)
}

/// A lazy scan of one table, or `None` when it has no files yet.
pub fn scan(layout: &Layout, table: Table) -> Result<Option<LazyFrame>, QueryError> {
    let files = table_files(layout, table)?;
    if files.is_empty() {
        return Ok(None);
    }
    scan_files(&files).map(Some)
}

/// A lazy scan of the given Parquet files (Hive keys not parsed: they are columns already).
pub fn scan_files(files: &[PathBuf]) -> Result<LazyFrame, QueryError> {
    let paths: Vec<PlRefPath> = files
        .iter()
        .map(|p| PlRefPath::try_from_path(p))
        .collect::<PolarsResult<_>>()?;
    let args = ScanArgsParquet {
        // provider/month are also columns in the files; the Hive keys are only for pruning.
        hive_options: HiveOptions {
            enabled: Some(false),
            ..HiveOptions::new_enabled()
        },
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
pub fn name_frames(layout: &Layout) -> Result<(DataFrame, DataFrame), QueryError> {
    let frame = |table: Table, id: &str, name: &str| -> Result<DataFrame, QueryError> {
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
        Ok(lf.collect()?)
    };
    Ok((
        frame(Table::Workspaces, "workspace_id", "workspace_name")?,
        frame(Table::ApiKeys, "api_key_id", "api_key_name")?,
    ))
}

/// A SQL context with every non-empty table registered under its directory name.
pub fn context(layout: &Layout) -> Result<SQLContext, QueryError> {
    let ctx = SQLContext::new();
    for t in TABLES {
        if let Some(lf) = scan(layout, t)? {
            ctx.register(t.dir_name(), lf);
        }
    }
    Ok(ctx)
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
        let df = ctx
            .execute(&stmt)
            .and_then(|lf| lf.collect())
            .map_err(|e| {
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

/// Output formats of every listing command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// Exact text of a fixed-point decimal.
pub fn fmt_decimal(v: i128, scale: usize) -> String {
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let s = if scale == 0 {
        digits
    } else if digits.len() > scale {
        format!(
            "{}.{}",
            &digits[..digits.len() - scale],
            &digits[digits.len() - scale..]
        )
    } else {
        format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
    };
    if neg { format!("-{s}") } else { s }
}

/// One value of a result, typed enough to render it right.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i128),
    /// Fixed point: value and scale.
    Dec(i128, usize),
    Text(String),
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(v) => v.to_string(),
            Cell::Dec(v, s) => fmt_decimal(*v, *s),
            Cell::Text(s) => s.clone(),
        }
    }
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

/// A result ready to render: column names and typed cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grid {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Table format only: a last row set apart (totals).
    pub footer: Option<Vec<Cell>>,
}

impl Grid {
    pub fn from_df(df: &DataFrame) -> Result<Self, QueryError> {
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
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// Renders a result. Table: right-aligned numbers, thousands separators, a totals row if any;
/// CSV: RFC 4180, plain numbers; JSON: an array of objects, integers as numbers and decimals as
/// strings (exact). A table wider than `width` drops the columns in `optional` first.
pub fn render_grid(
    g: &Grid,
    format: OutputFormat,
    width: Option<usize>,
    optional: &[&str],
) -> String {
    match format {
        OutputFormat::Json => {
            let arr: Vec<serde_json::Value> = g
                .rows
                .iter()
                .map(|r| {
                    let mut m = serde_json::Map::new();
                    for (n, c) in g.columns.iter().zip(r) {
                        let v = match c {
                            Cell::Null => serde_json::Value::Null,
                            Cell::Int(v) => i64::try_from(*v)
                                .map(serde_json::Value::from)
                                .unwrap_or_else(|_| serde_json::Value::String(v.to_string())),
                            other => serde_json::Value::String(other.text()),
                        };
                        m.insert(n.clone(), v);
                    }
                    serde_json::Value::Object(m)
                })
                .collect();
            let mut s = serde_json::to_string_pretty(&arr).expect("json values serialize");
            s.push('\n');
            s
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(&g.columns).expect("in-memory write");
            for r in &g.rows {
                w.write_record(r.iter().map(|c| match c {
                    Cell::Text(s) => csv_safe(s),
                    other => other.text(),
                }))
                .expect("in-memory write");
            }
            String::from_utf8(w.into_inner().expect("in-memory flush")).expect("utf-8 csv")
        }
        OutputFormat::Table => {
            let show = |c: &Cell| -> (String, bool) {
                match c {
                    Cell::Null => (String::new(), false),
                    Cell::Int(v) => (group_thousands(&v.to_string()), true),
                    Cell::Dec(..) => (c.text(), true),
                    Cell::Text(s) => (table_text(s), s == "UNPRICED"),
                }
            };
            let mut body: Vec<Vec<(String, bool)>> = g
                .rows
                .iter()
                .map(|r| r.iter().map(show).collect())
                .collect();
            let mut footer: Option<Vec<(String, bool)>> =
                g.footer.as_ref().map(|r| r.iter().map(show).collect());
            let mut names = g.columns.clone();
            let widths = |names: &[String],
                          body: &[Vec<(String, bool)>],
                          footer: &Option<Vec<(String, bool)>>|
             -> Vec<usize> {
                let mut w: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
                for r in body.iter().chain(footer.iter()) {
                    for (w, (s, _)) in w.iter_mut().zip(r) {
                        *w = (*w).max(s.chars().count());
                    }
                }
                w
            };
            let mut ws = widths(&names, &body, &footer);
            // Compact when narrow: drop optional columns until it fits.
            if let Some(limit) = width {
                for opt in optional {
                    if ws.iter().sum::<usize>() + 2 * ws.len() <= limit {
                        break;
                    }
                    if let Some(i) = names.iter().position(|n| n == opt) {
                        names.remove(i);
                        for r in body.iter_mut().chain(footer.iter_mut()) {
                            r.remove(i);
                        }
                        ws = widths(&names, &body, &footer);
                    }
                }
            }
            let mut out = String::new();
            let line = |cells: Vec<String>| cells.join("  ").trim_end().to_string();
            let _ = writeln!(
                out,
                "{}",
                line(
                    names
                        .iter()
                        .zip(&ws)
                        .map(|(n, w)| format!("{n:<w$}"))
                        .collect()
                )
            );
            let rule = line(ws.iter().map(|w| "-".repeat(*w)).collect());
            let _ = writeln!(out, "{rule}");
            let fmt_row = |r: &Vec<(String, bool)>| {
                line(
                    r.iter()
                        .zip(&ws)
                        .map(|((s, num), w)| {
                            if *num {
                                format!("{s:>w$}")
                            } else {
                                format!("{s:<w$}")
                            }
                        })
                        .collect(),
                )
            };
            for r in &body {
                let _ = writeln!(out, "{}", fmt_row(r));
            }
            if let Some(f) = &footer {
                let _ = writeln!(out, "{rule}");
                let _ = writeln!(out, "{}", fmt_row(f));
            } else {
                let _ = writeln!(
                    out,
                    "({} row{})",
                    body.len(),
                    if body.len() == 1 { "" } else { "s" }
                );
            }
            out
        }
    }
}

/// A text cell for CSV: one that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`,
/// tab, CR first) gets a leading `'`, as OWASP advises; numbers are never text cells.
pub fn csv_safe(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// Longest text shown in a table cell; CSV and JSON carry the whole value.
pub const TABLE_TEXT_MAX: usize = 60;

/// A text cell for the terminal: control characters escaped (no escape sequence from an
/// export ever reaches the terminal), and shortened to [`TABLE_TEXT_MAX`] characters.
pub fn table_text(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n >= TABLE_TEXT_MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Renders a polars result (see [`render_grid`]).
pub fn render(df: &DataFrame, format: OutputFormat) -> Result<String, QueryError> {
    Ok(render_grid(&Grid::from_df(df)?, format, None, &[]))
}

/// `1234567` → `1,234,567` (table output only; CSV and JSON stay plain).
pub fn group_thousands(s: &str) -> String {
    let (sign, digits) = s.strip_prefix('-').map_or(("", s), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}
