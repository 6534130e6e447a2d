//! The command line: flags, config, and turning results into output and exit codes.
//!
//! Owns: argument parsing (clap derive), the optional config file, output on stdout/stderr,
//! progress bars (TTY only), exit codes. Must not: contain pipeline logic of its own.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::ingest::{self, FileStatus, IngestOptions, IngestSummary};
use crate::lake::Layout;
use crate::lake::txn::{self, LakeLock, LockMode};
use crate::model::SourceFormat;
use crate::query::{self, OutputFormat};
use crate::synth;

const EXAMPLES: &str = "\
Examples:
  tokenledger run --inputs fixtures/sample            # the whole job on the shipped samples
  tokenledger ingest exports/2026-10/                 # files and directories, format from content
  tokenledger ingest page.json --format anthropic-usage-api --json
  tokenledger usage --month 2026-10 --format csv
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
    /// Run SQL over the lake (polars SQL). Tables: usage, cost, workspaces, api_keys,
    /// usage_coverage, cost_coverage, ingest_log, quarantine.
    Sql(SqlArgs),
    /// List quarantined input: file, row/line, field and reason.
    Quarantine(QuarantineArgs),
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

pub fn parse_month(s: &str) -> Result<String, String> {
    chrono::NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
        .map(|_| s.to_string())
        .map_err(|_| format!("{s:?} is not a month; use YYYY-MM, e.g. 2026-10"))
}

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
pub struct QuarantineArgs {
    /// Only this ingest's entries.
    #[arg(long)]
    pub ingest: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `tokenledger.toml`. Unknown keys are an error, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Export files or directories `run` ingests.
    #[serde(default)]
    pub inputs: Vec<PathBuf>,
}

pub fn load_config(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>)> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = PathBuf::from("tokenledger.toml");
            if !p.exists() {
                return Ok((Config::default(), None));
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let cfg: Config =
        toml::from_str(&text).with_context(|| format!("config {} is invalid", path.display()))?;
    // Relative inputs are relative to the config file.
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let inputs = cfg
        .inputs
        .into_iter()
        .map(|p| if p.is_relative() { base.join(p) } else { p })
        .collect();
    Ok((Config { inputs }, Some(path)))
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
        "ingest {}: {} file(s): {} new, {} unchanged, {} duplicate, {} quarantined\n",
        s.ingest_id,
        s.files.len(),
        count(FileStatus::New),
        count(FileStatus::Unchanged),
        count(FileStatus::Duplicate),
        count(FileStatus::Quarantined)
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
    for f in s
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Quarantined)
    {
        out.push_str(&format!(
            "  quarantined file {}: {}\n",
            f.path,
            f.error.as_deref().unwrap_or("")
        ));
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
    if layout.journal().exists() || layout.staging_root().exists() {
        let _w = LakeLock::acquire(layout, LockMode::Exclusive, true)?;
        if let Some(m) = txn::recover(layout)? {
            eprintln!("tokenledger: {m}");
        }
    }
    Ok(LakeLock::acquire(layout, LockMode::Shared, true)?)
}

pub fn run(cli: Cli) -> Result<i32> {
    let (config, _config_path) = load_config(cli.config.as_deref())?;
    match &cli.command {
        Command::Run(a) => {
            let inputs = if a.inputs.is_empty() {
                config.inputs.clone()
            } else {
                a.inputs.clone()
            };
            if inputs.is_empty() {
                bail!(
                    "no inputs: pass --inputs DIR... or set `inputs = [\"…\"]` in tokenledger.toml"
                );
            }
            let code = do_ingest(&cli, inputs, None, &a.common, a.json)?;
            if !cli.quiet && !a.json {
                let layout = Layout::new(&cli.data_dir);
                let _l = read_lock(&layout)?;
                match query::run_sql(&layout, query::USAGE_TOTALS_SQL) {
                    Ok(df) => print!("{}", query::render(&df, OutputFormat::Table)?),
                    Err(query::QueryError::NoData(..)) => println!("no usage in the lake yet"),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(code)
        }
        Command::Ingest(a) => do_ingest(&cli, a.paths.clone(), a.format, &a.common, a.json),
        Command::Usage(a) => {
            let layout = Layout::new(&cli.data_dir);
            let _l = read_lock(&layout)?;
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
        Command::Synth(a) => {
            let report = synth::generate(a)?;
            if !cli.quiet {
                eprintln!("{report}");
            }
            Ok(crate::exit::OK)
        }
    }
}
