//! The command line: flags, config, and turning results into output and exit codes.
//!
//! Owns: argument parsing (clap derive), the optional config file, output on stdout/stderr,
//! progress bars (TTY only), exit codes. Must not: contain pipeline logic of its own.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::ingest::{self, FileStatus, IngestOptions, IngestSummary};
use crate::lake::Layout;
use crate::lake::txn::{self, LakeLock, LockMode};
use crate::model::SourceFormat;
use crate::pricing::PriceBook;
use crate::query::{self, OutputFormat};
use crate::report::Dim;
use crate::{rating, reconcile, report, synth};

const EXAMPLES: &str = "\
Examples:
  tokenledger run --inputs fixtures/sample            # the whole job on the shipped samples
  tokenledger ingest exports/2026-10/                 # files and directories, format from content
  tokenledger ingest page.json --format anthropic-usage-api --json
  tokenledger usage --month 2026-10 --format csv
  tokenledger report --month 2026-10 --by team,model --format csv
  tokenledger reconcile --month 2026-10
  tokenledger prices --as-of 2026-03-12
  tokenledger sql \"SELECT model, SUM(output_tokens) FROM usage GROUP BY model\"
  tokenledger quarantine                              # every rejected row, with file, place, reason
  tokenledger synth --out /tmp/org --months 2 --width 1h

Exit codes: 0 clean, 1 failure (nothing committed), 2 usage error, 3 completed but some input
was quarantined.";

#[derive(Debug, Parser)]
#[command(name = "tokenledger", version, about = "Keeps the books on LLM API spend: provider exports → Parquet lake → priced, reconciled reports.", after_help = EXAMPLES)]
pub struct Cli {
    /// Where the lake lives.
    #[arg(
        long,
        global = true,
        env = "TOKENLEDGER_DATA_DIR",
        default_value = "./tokenledger-data"
    )]
    pub data_dir: PathBuf,
    /// Config file (TOML). Default: ./tokenledger.toml when present; the job runs without one.
    #[arg(long, global = true, env = "TOKENLEDGER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Quiet: no progress and no summary on stderr (errors still print). For cron.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The nightly job: ingest the configured inputs, then summarise.
    Run(RunArgs),
    /// Ingest provider exports (files or directories) into the lake.
    #[command(
        after_help = "Formats (detected from content): anthropic-usage-api, anthropic-cost-api, \
anthropic-console-usage-csv, anthropic-workspaces, anthropic-api-keys.\n\
Re-running is safe: files already ingested (same content) are skipped; newer exports of the same \
buckets replace older ones."
    )]
    Ingest(IngestArgs),
    /// Token totals per month, workspace and model (the query in sql/usage_totals.sql).
    Usage(UsageArgs),
    /// Run SQL over the lake (polars SQL). Tables: usage, cost, rated_usage, workspaces,
    /// api_keys, usage_coverage, cost_coverage, ingest_log, quarantine.
    Sql(SqlArgs),
    /// List quarantined input: file, row/line, field and reason.
    Quarantine(QuarantineArgs),
    /// Show the price book in force on a date (default book + overrides).
    Prices(PricesArgs),
    /// Price every usage row (the derived table rated_usage); re-rates what is stale.
    Rate(RateArgs),
    /// Monthly chargeback: tokens and list cost by workspace, model, key, tier, day or team.
    #[command(
        after_help = "Rounding: each line is rounded to cents (half away from zero) and the lines are adjusted by \
largest remainder so that they add up exactly to the rounded total; list_cost_usd_exact keeps full precision.\n\
Exit code 3 when some usage has no list price (shown as UNPRICED with its tokens)."
    )]
    Report(ReportArgs),
    /// Compare our list cost with the provider's cost report; explain every difference.
    Reconcile(ReconcileArgs),
    /// Write a synthetic organisation's exports (deterministic for a seed).
    Synth(synth::SynthArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Export files or directories to ingest (default: `inputs` from the config).
    #[arg(long, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Print the run summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: IngestCommon,
}

#[derive(Debug, Args)]
pub struct IngestCommon {
    /// Parse with this many threads (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Fail at once if another run holds the lock, instead of waiting.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files and directories (recursive).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Skip detection and read every file as this format.
    #[arg(long, value_parser = parse_format)]
    pub format: Option<SourceFormat>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: IngestCommon,
}

fn parse_format(s: &str) -> Result<SourceFormat, String> {
    SourceFormat::parse(s).ok_or_else(|| {
        format!(
            "unknown format {s:?}; one of: {}",
            SourceFormat::ALL.map(|f| f.as_str()).join(", ")
        )
    })
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only this month (YYYY-MM).
    #[arg(long, value_parser = parse_month)]
    pub month: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

pub use crate::vocab::parse_month;

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query (or several, separated by `;`: the last one's result is printed).
    #[arg(required_unless_present = "file")]
    pub query: Option<String>,
    /// Read the query from a file (e.g. sql/usage_totals.sql).
    #[arg(long, conflicts_with = "query")]
    pub file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct PricesArgs {
    /// Date the book is shown for (YYYY-MM-DD, UTC). Default: today.
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
    /// Every dated row (all dates), not only those in force.
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RateArgs {
    /// Only this month (YYYY-MM); default: every month with usage.
    #[arg(long, value_parser = parse_month)]
    pub month: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The month (YYYY-MM, UTC).
    #[arg(long, value_parser = parse_month)]
    pub month: String,
    /// Dimensions, comma-separated: workspace, model, api-key, service-tier, day, team.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Dim::Workspace, Dim::Model])]
    pub by: Vec<Dim>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Print the SQL the report runs (from sql/report.sql) and exit.
    #[arg(long)]
    pub show_sql: bool,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The month (YYYY-MM, UTC).
    #[arg(long, value_parser = parse_month)]
    pub month: String,
    /// Differences up to this many dollars per line count as matched.
    #[arg(long, default_value = "0.005")]
    pub tolerance: rust_decimal::Decimal,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    /// Only this ingest's entries.
    #[arg(long)]
    pub ingest: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

fn progress_wanted(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

fn jobs(j: Option<usize>) -> usize {
    j.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// Human summary of an ingest, for stderr.
pub fn summary_text(s: &IngestSummary) -> String {
    let mut out = String::new();
    if let Some(r) = &s.recovered {
        out.push_str(&format!("recovered: {r}\n"));
    }
    let count = |st: FileStatus| s.files.iter().filter(|f| f.status == st).count();
    out.push_str(&format!(
        "ingest {}: {} file(s): {} new, {} unchanged, {} duplicate, {} quarantined, {} skipped\n",
        s.ingest_id,
        s.files.len(),
        count(FileStatus::New),
        count(FileStatus::Unchanged),
        count(FileStatus::Duplicate),
        count(FileStatus::Quarantined),
        count(FileStatus::Skipped)
    ));
    for (fmt, t) in &s.by_format {
        out.push_str(&format!(
            "  {fmt:<30} files new {:>4}  unchanged {:>4}  rows loaded {:>10}  quarantined {:>6}  superseded {:>8}\n",
            t.files_new, t.files_unchanged, t.rows_loaded, t.rows_quarantined, t.rows_superseded
        ));
    }
    if s.lake_rows_superseded > 0 {
        out.push_str(&format!(
            "  {} row(s) already in the lake were restated by newer exports\n",
            s.lake_rows_superseded
        ));
    }
    for f in &s.files {
        let what = match f.status {
            FileStatus::Quarantined => "quarantined file",
            FileStatus::Skipped => "skipped",
            FileStatus::Ignored => "ignored",
            FileStatus::EmptyAmbiguous => "not loaded",
            _ => "",
        };
        if !what.is_empty() {
            let why = f.error.as_deref().unwrap_or("");
            out.push_str(&format!("  {what} {}: {why}\n", f.path));
        }
        for n in &f.notes {
            out.push_str(&format!("  note: {}: {n}\n", f.path));
        }
    }
    if s.rows_quarantined > 0 {
        out.push_str(&format!(
            "  {} row(s) quarantined: see `tokenledger quarantine --ingest {}` (exit code 3)\n",
            s.rows_quarantined, s.ingest_id
        ));
    }
    out
}

fn do_ingest(
    cli: &Cli,
    config: &Config,
    paths: Vec<PathBuf>,
    format: Option<SourceFormat>,
    common: &IngestCommon,
    json: bool,
) -> Result<i32> {
    let layout = Layout::new(&cli.data_dir);
    let opts = IngestOptions {
        paths,
        format,
        jobs: jobs(common.jobs),
        wait_for_lock: !common.no_wait,
        progress: progress_wanted(cli.quiet),
        limits: config.ingest.limits(chrono::Utc::now().date_naive()),
    };
    let summary = match ingest::ingest(&layout, &opts) {
        Ok(s) => s,
        Err(e @ ingest::IngestError::MissingPath(_)) => {
            eprintln!("error: {e}");
            return Ok(crate::exit::USAGE);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "ingest into {} failed; nothing was committed",
                cli.data_dir.display()
            )));
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if !cli.quiet {
        eprint!("{}", summary_text(&summary));
    }
    Ok(summary.exit_code())
}

/// Reads take a shared lock; a crashed writer's journal is recovered first.
fn read_lock(layout: &Layout) -> Result<LakeLock> {
    // Only a committed-but-unapplied journal concerns readers (staging is invisible to them);
    // it is completed under the exclusive lock before reading.
    if layout.journal().exists() {
        let _w = LakeLock::acquire(layout, LockMode::Exclusive, true)?;
        if let Some(m) = txn::recover(layout)? {
            eprintln!("tokenledger: {m}");
        }
    }
    Ok(LakeLock::acquire(layout, LockMode::Shared, true)?)
}

/// The price book: the embedded default, then `[prices]` from the config, then `price_file`.
pub fn price_book(config: &Config, config_path: Option<&Path>) -> Result<PriceBook> {
    let mut overrides = Vec::new();
    if let Some(p) = config_path {
        overrides.push((format!("{} [prices]", p.display()), config.prices.clone()));
    }
    if let Some(f) = &config.price_file {
        overrides.push((f.display().to_string(), PriceBook::read_file(f)?));
    }
    Ok(PriceBook::load(&overrides)?)
}

fn rate_summary_text(s: &rating::RateSummary, book: &PriceBook) -> String {
    format!(
        "rated {} row(s) in {} month(s) ({} unpriced); {} month(s) already current (price book {})",
        s.rows,
        s.months_rated.len(),
        s.unpriced_rows,
        s.months_fresh.len(),
        book.fingerprint
    )
}

fn terminal_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .or(Some(100))
}

/// Rates what is stale, then hands back the lock to read under. When nothing is stale the
/// reading needs only a shared lock (a read-only lake needs none); when something is, the
/// exclusive lock that rated is kept for the reading, so no ingest can commit in between.
fn rate_then_read(
    layout: &Layout,
    book: &PriceBook,
    months: &[String],
) -> Result<(rating::RateSummary, LakeLock)> {
    let shared = read_lock(layout)?;
    if !rating::needs_rating(layout, book, months)? {
        // Nothing to write: ensure_rated only lists what is current.
        let s = rating::ensure_rated(layout, book, months, jobs(None))?;
        return Ok((s, shared));
    }
    drop(shared);
    let w = LakeLock::acquire(layout, LockMode::Exclusive, true)?;
    if let Some(m) = txn::recover(layout)? {
        eprintln!("tokenledger: {m}");
    }
    let s = rating::ensure_rated(layout, book, months, jobs(None))?;
    Ok((s, w))
}

fn print_report(
    layout: &Layout,
    month: &str,
    by: &[Dim],
    config: &Config,
    format: OutputFormat,
) -> Result<i32> {
    let mut r = report::report(layout, month, by, &config.teams)?;
    if format != OutputFormat::Table {
        // Machine formats: no price is null (pricing_status says UNPRICED), never a word in a money column.
        if let Some(c) = r.grid.col("list_cost_usd") {
            for row in &mut r.grid.rows {
                if row[c] == query::Cell::Text("UNPRICED".into()) {
                    row[c] = query::Cell::Null;
                }
            }
        }
    }
    print!(
        "{}",
        query::render_grid(&r.grid, format, terminal_width(), &report::OPTIONAL_COLUMNS)
    );
    if r.unpriced_rows > 0 {
        eprintln!(
            "tokenledger: {} line(s) UNPRICED: no list price in force; add a [[prices.model]] override (exit code 3)",
            r.unpriced_rows
        );
        return Ok(crate::exit::QUARANTINED);
    }
    Ok(crate::exit::OK)
}

fn print_reconcile(
    layout: &Layout,
    month: &str,
    tolerance: rust_decimal::Decimal,
    format: OutputFormat,
) -> Result<i32> {
    let tol = crate::lake::batch::money_to_i128(tolerance)
        .map_err(|e| anyhow::anyhow!("--tolerance {e}"))?;
    let r = reconcile::reconcile(layout, month, tol)?;
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        OutputFormat::Csv => print!(
            "{}",
            query::render_grid(&reconcile::lines_grid(&r), format, None, &[])
        ),
        OutputFormat::Table => {
            println!(
                "reconcile {}: {} line(s) matched within ${}, {} explained, {} unexplained",
                r.month,
                r.lines_matched,
                r.tolerance_usd.trim_end_matches('0'),
                r.lines_explained,
                r.lines_unexplained
            );
            if !r.lines.is_empty() {
                println!();
                print!(
                    "{}",
                    query::render_grid(
                        &reconcile::lines_grid(&r),
                        format,
                        terminal_width(),
                        &["workspace_id"]
                    )
                );
            }
            println!();
            print!(
                "{}",
                query::render_grid(
                    &reconcile::workspace_grid(&r),
                    format,
                    terminal_width(),
                    &[]
                )
            );
        }
    }
    Ok(r.exit_code())
}

pub fn run(cli: Cli) -> Result<i32> {
    let (config, config_path) = Config::load(cli.config.as_deref())?;
    match &cli.command {
        Command::Run(a) => {
            let inputs = if a.inputs.is_empty() {
                config.inputs.clone()
            } else {
                a.inputs.clone()
            };
            if inputs.is_empty() {
                eprintln!(
                    "error: no inputs: pass --inputs DIR... or set `inputs = [\"…\"]` in tokenledger.toml"
                );
                return Ok(crate::exit::USAGE);
            }
            let mut code = do_ingest(&cli, &config, inputs, None, &a.common, a.json)?;
            if code == crate::exit::USAGE {
                return Ok(code);
            }
            let layout = Layout::new(&cli.data_dir);
            let book = price_book(&config, config_path.as_deref())?;
            let (rated, _l) = rate_then_read(&layout, &book, &[])?;
            if !cli.quiet {
                eprintln!("{}", rate_summary_text(&rated, &book));
            }
            // The months this run changed (re-rated) and the latest month: their report and
            // reconciliation, and their UNPRICED / unexplained lines in the exit code.
            let mut months = rated.months_rated.clone();
            if let Some(latest) = layout.months(crate::lake::Table::Usage, "anthropic")?.pop()
                && !months.contains(&latest)
            {
                months.push(latest);
            }
            months.sort();
            for month in months {
                if cli.quiet || a.json {
                    let r = report::report(
                        &layout,
                        &month,
                        &[Dim::Workspace, Dim::Model],
                        &config.teams,
                    )?;
                    let unexplained = reconcile::has_cost_report(&layout, &month)?
                        && reconcile::reconcile(
                            &layout,
                            &month,
                            crate::lake::batch::money_to_i128(rust_decimal::Decimal::new(5, 3))
                                .expect("exact"),
                        )?
                        .exit_code()
                            != 0;
                    if r.unpriced_rows > 0 || unexplained {
                        code = code.max(crate::exit::QUARANTINED);
                    }
                    continue;
                }
                println!("\n== {month}: list cost by workspace and model ==");
                code = code.max(print_report(
                    &layout,
                    &month,
                    &[Dim::Workspace, Dim::Model],
                    &config,
                    OutputFormat::Table,
                )?);
                if reconcile::has_cost_report(&layout, &month)? {
                    println!("\n== {month}: reconciliation with the provider's cost report ==");
                    code = code.max(print_reconcile(
                        &layout,
                        &month,
                        rust_decimal::Decimal::new(5, 3),
                        OutputFormat::Table,
                    )?);
                } else {
                    println!("\n(no cost report ingested for {month}: nothing to reconcile)");
                }
            }
            Ok(code)
        }
        Command::Ingest(a) => {
            do_ingest(&cli, &config, a.paths.clone(), a.format, &a.common, a.json)
        }
        Command::Usage(a) => {
            let layout = Layout::new(&cli.data_dir);
            let _l = read_lock(&layout)?;
            if query::scan(&layout, crate::lake::Table::Usage)?.is_none() {
                if !cli.quiet {
                    eprintln!(
                        "no usage in {} yet: run `tokenledger ingest` first",
                        layout.root.display()
                    );
                }
                return Ok(crate::exit::OK);
            }
            let df = query::run_sql(&layout, query::USAGE_TOTALS_SQL)?;
            let df = match &a.month {
                Some(m) => {
                    use polars::prelude::*;
                    df.lazy()
                        .filter(col("month").eq(lit(m.as_str())))
                        .collect()?
                }
                None => df,
            };
            print!("{}", query::render(&df, a.format)?);
            Ok(crate::exit::OK)
        }
        Command::Sql(a) => {
            let layout = Layout::new(&cli.data_dir);
            let _l = read_lock(&layout)?;
            let sql = match (&a.query, &a.file) {
                (Some(q), _) => q.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?,
                (None, None) => unreachable!("clap requires one"),
            };
            let df = query::run_sql(&layout, &sql).context("query failed")?;
            print!("{}", query::render(&df, a.format)?);
            Ok(crate::exit::OK)
        }
        Command::Quarantine(a) => {
            let layout = Layout::new(&cli.data_dir);
            let _l = read_lock(&layout)?;
            let Some(lf) = query::scan(&layout, crate::lake::Table::Quarantine)? else {
                if !cli.quiet {
                    eprintln!("quarantine is empty");
                }
                return Ok(crate::exit::OK);
            };
            use polars::prelude::*;
            let lf = match &a.ingest {
                Some(id) => lf.filter(col("ingest_id").eq(lit(id.as_str()))),
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
            print!("{}", query::render(&df, a.format)?);
            Ok(crate::exit::OK)
        }
        Command::Prices(a) => {
            let book = price_book(&config, config_path.as_deref())?;
            let day = a.as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
            print!(
                "{}",
                query::render_grid(
                    &crate::pricing::book_grid(&book, if a.all { None } else { Some(day) }),
                    a.format,
                    terminal_width(),
                    &[]
                )
            );
            Ok(crate::exit::OK)
        }
        Command::Rate(a) => {
            let layout = Layout::new(&cli.data_dir);
            let book = price_book(&config, config_path.as_deref())?;
            let months: Vec<String> = a.month.iter().cloned().collect();
            let (s, _l) = rate_then_read(&layout, &book, &months)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            }
            if !cli.quiet {
                eprintln!("{}", rate_summary_text(&s, &book));
            }
            Ok(if s.unpriced_rows > 0 {
                crate::exit::QUARANTINED
            } else {
                crate::exit::OK
            })
        }
        Command::Report(a) => {
            if a.show_sql {
                println!(
                    "-- step 1, once per rated part file:\n{}",
                    report::sql_for(&a.month, &a.by)
                );
                print!(
                    "-- step 2, over the partial results of step 1:\n{}",
                    report::combine_sql_for(&a.by)
                );
                return Ok(crate::exit::OK);
            }
            let layout = Layout::new(&cli.data_dir);
            let book = price_book(&config, config_path.as_deref())?;
            let (_s, _l) = rate_then_read(&layout, &book, std::slice::from_ref(&a.month))?;
            print_report(&layout, &a.month, &a.by, &config, a.format)
        }
        Command::Reconcile(a) => {
            let layout = Layout::new(&cli.data_dir);
            let book = price_book(&config, config_path.as_deref())?;
            let (_s, _l) = rate_then_read(&layout, &book, std::slice::from_ref(&a.month))?;
            print_reconcile(&layout, &a.month, a.tolerance, a.format)
        }
        Command::Synth(a) => {
            let report = synth::generate(a)?;
            if !cli.quiet {
                eprintln!("{report}");
            }
            Ok(crate::exit::OK)
        }
    }
}
