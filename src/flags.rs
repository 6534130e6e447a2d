//! The command line's grammar: every command, flag and value parser (clap derive), and the
//! mapping of flags onto [`Flags`] for [`crate::settings`].
//!
//! Owns: names, help texts and examples, and parsing values at the edge (months, dates, money,
//! formats). Must not: run anything, read files or print (that is `cli`), or use polars.
//! Architecture invariant: a flag becomes a typed value here or is refused as a usage error (exit 2).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use crate::model::SourceFormat;
use crate::money::Money;
use crate::present::OutputFormat;
use crate::report::Dim;
use crate::settings::Flags;
use crate::synth;
use crate::vocab::Month;

const EXAMPLES: &str = "\
Examples:
  tokenledger run --inputs fixtures/sample            # the whole job on the shipped samples
  tokenledger ingest exports/2026-10/                 # files and directories, format from content
  tokenledger ingest page.json --format anthropic-usage-api --json
  tokenledger usage --month 2026-10 --format csv
  tokenledger report --month 2026-10 --by team,model --format csv
  tokenledger reconcile --month 2026-10
  tokenledger prices --as-of 2026-03-12
  tokenledger credits --as-of 2026-10-31             # lots, balance, burn, runway, at-risk credit
  tokenledger sql \"SELECT model, SUM(output_tokens) FROM usage GROUP BY model\"
  tokenledger quarantine                              # every rejected row, with file, place, reason
  tokenledger synth --out /tmp/org --months 2 --width 1h

Exit codes: 0 clean, 1 failure (nothing committed), 2 usage error (also: no lake at the data
dir, a month no usage export covers), 3 needs review: input was quarantined or skipped, usage is
UNPRICED, a difference is unexplained, credits have findings, anomalies alert, data is stale, or
mail is still queued after failed sends; 4 (`run` only) needs review, but nothing new since the
last run (standing findings only).";

const RUN_RULES: &str = "\
Stages, in order, each one summary line on stderr (--json: every stage on stdout):
  ingest       new files from --inputs or `inputs` in tokenledger.toml (known files are skipped)
  rate         what changed (or the price book)
  report       the months re-rated and the latest; reconcile each with the cost report and invoices
  credits      the ledger as of --as-of (default today)
  anomalies    findings that alert, dated within the last 7 days
  month close  the latest month's chargeback mail once it is final ([mail] grace_days after it
               ends); exactly once, a correction if a final month is restated
  alerts       one digest per [mail] alerts recipient (default finance): incidents (findings
               that share a cause, with their running cost), credit findings, stale data,
               undelivered mail; each mailed once, an incident again when it grows
Exit code 3: something new tonight; 4: only findings an earlier run already reported.
Running twice does nothing new; a run killed anywhere and re-run ends in the same lake and mail.
Without [mail.smtp], mail is written as .eml files under DATA_DIR/outbox/.

Examples:
  tokenledger run --inputs /srv/exports/anthropic
  tokenledger -q run                                  # cron: silent, the exit code says it all
  tokenledger run --json | jq .reviews";

const PULL_RULES: &str = "\
Providers are pulled when their [providers.anthropic] / [providers.openai] table sets `since`
(or with --provider and --from). The admin key comes from ANTHROPIC_ADMIN_KEY / OPENAI_ADMIN_KEY
(or `admin_key_env`, `admin_key_file`), never from the command line.
Each night: from the last complete day minus `restate_days` (default 3; 30 for the Analytics
API), or from the first window that did not land; to the last whole bucket. A window lands in
DATA_DIR/landing/ only when every page of it arrived; a window that failed leaves the data
before it in force, is named (exit 3) and is fetched again next time. Pulling twice changes
nothing; a day the provider restated replaces that day.

Examples:
  tokenledger pull
  tokenledger pull --provider openai --from 2026-01-01 --to 2026-03-31 --json
  TOKENLEDGER_ANTHROPIC_BASE_URL=http://127.0.0.1:8080 tokenledger pull --provider anthropic";

const TIE_OUT_RULES: &str = "\
The tie-out (each invoice whose period starts in the month): our list cost of the invoice period
(rated usage, UTC days) → + parts only the cost report has (code execution, session usage),
Priority Tier (rated here, omitted there), unpriced usage, days one side lacks, rounding of
matched lines, unexplained → the provider's cost report → + unexplained → the invoice's charges
(positive lines) → + credits applied (negative lines) → subtotal → − discounts + tax → total →
+ customer balance applied → amount due. Rounded to cents, every subtotal is the one above plus
the parts between. Exit code 3 when an unexplained part exceeds the tolerance (the cost report vs
the invoice: half a cent per invoice line, since the invoice rounds each line).

Examples:
  tokenledger reconcile --month 2026-10
  tokenledger reconcile --month 2026-10 --tie-out --format csv > tie-out.csv";

const ANOMALY_RULES: &str = "\
Series: list cost per day (business timezone) for every API key, workspace, model and the
organisation, and per hour for keys with hourly or minute buckets (sql/anomaly_buckets.sql).
  spike             a day against the median of the same kind of day (weekday/weekend) of the 28
                    before, after 14 days of history: robust score >= 6 (MAD-based) and >= 2.5x the
                    usual; a day like the same position last month (a month-end job) is not one
  new_key           a key first seen after the lake's first day, spending >= $20 in its first days
  new_model_on_key  an established key spends >= $20 on a model it never used
  reactivated       a key spends >= $20 after more than 14 days without spend
  burst             two or more hours >= 8x the key's median for that hour of day (14 days before)
  limit             a workspace's or the org's [anomalies.limits], or a provider's monthly spend
                    cap ([limits.<provider>]): the first night the month-end projection (the
                    median of the last 7 days' spend) reaches 90%, then 90% spent, then reached;
                    each says the day it is reached, with a range
  rate_limit        a minute at [anomalies] rate_limit_pct (80%) of a rate limit of a model class
                    (tokenledger limits shows the headroom); not money: alerts on severity alone
Alerting (what the nightly run mails): impact >= [anomalies] min_impact_usd (default $50) and
severity >= min_severity; an anomaly lasting several days alerts on its first day only; an
acknowledged finding (anomalies ack ID --note ...) is kept, shown as acked, and never alerts.
Exit code 3 when any finding alerts.

Examples:
  tokenledger anomalies --from 2026-10-01 --scope key
  tokenledger anomalies --alerts --format csv
  tokenledger anomalies ack 3f2a9c1d0b7e --note \"load test\"";

const CREDITS_RULES: &str = "\
The rules (finance can redo them by hand; all days are the provider's UTC days):
  - Each UTC day's total list cost of a provider (sql/credits_daily.sql) consumes that provider's
    lots usable that day (purchased_at <= day < expires_at): soonest expiry first, then earliest
    purchase, then lot_id. Cost no lot covers is 'uncovered'.
  - prepaid and auto_reload lots expire one year after purchase unless expires_at says otherwise
    (a 29 February purchase expires on 28 February); promotional lots must state expires_at.
  - A monthly lot grants amount_usd each cycle (purchased_at + k months); what a cycle leaves is
    lapsed when the next one starts (it never rolls over). Its row shows the current cycle.
  - Burn = the list cost of the 30 days ending on the as-of date, divided by 30.
  - at_risk_usd = what the lot would still hold at its expiry if that burn continued from the day
    after the as-of date in the same order; lapsed_usd = what has already expired unused.
  - Runway = the first day after the as-of date whose burn no usable lot fully covers.
  - Balance = what the lots usable on the as-of date still hold after that day's usage; a Console
    balance (balance-snapshots CSV) that differs by more than a cent fails its assertion.
  - Status: expired unused / exhausted / at risk / expiring soon (within the largest horizon,
    default 60 days) / active.
  - Auto-reload advice (the provider's practice, on the 30-day burn): threshold >= 48 hours of
    burn, top-up 1-2 weeks of burn; [credits] auto_reload_threshold_usd / _amount_usd are checked.
Findings (exit code 3): lots expiring within [credits] horizons (default 60, 30, 7 days) with money
left, lots at risk, a runway under runway_min_days (30), a failed balance assertion, more than
max_reloads_per_day (2) auto-reloads in a day.
Tables round to cents: every column adds up to its rounded total and consumed = amount - remaining
on every row; --format csv and json carry every amount exactly.

Examples:
  tokenledger credits
  tokenledger credits --as-of 2026-10-31 --format csv > credits.csv";

#[derive(Debug, Parser)]
#[command(name = "tokenledger", version, about = "Keeps the books on LLM API spend: provider exports → Parquet lake → priced, reconciled reports.", after_help = EXAMPLES)]
pub struct Cli {
    /// Where the lake lives [default: data_dir of the config, else ./tokenledger-data].
    #[arg(long, global = true, env = "TOKENLEDGER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (TOML). Default: ./tokenledger.toml when present; the job runs without one.
    #[arg(long, global = true, env = "TOKENLEDGER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Quiet: no progress and no summary on stderr (errors still print). For cron.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail on stderr: -v debug (timings, per-stage detail), -vv trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines on stderr: human (default) or json (one object per line, for log shippers).
    #[arg(long, global = true, env = "TOKENLEDGER_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,
    /// Tables with every column at full width (by default a table fits COLUMNS, else 100
    /// characters, dropping the less needed columns; CSV and JSON always carry everything).
    #[arg(long, global = true)]
    pub wide: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The nightly job: ingest → rate → report and reconcile → credits → anomalies → month
    /// close (chargeback mail once final) → alert digest. Safe to re-run.
    #[command(after_help = RUN_RULES)]
    Run(RunArgs),
    /// Ingest provider exports (files or directories) into the lake.
    #[command(
        after_help = "Formats (detected from content): anthropic-usage-api, anthropic-cost-api, \
anthropic-console-usage-csv, anthropic-workspaces, anthropic-api-keys, credit-lots-csv, \
balance-snapshots-csv, stripe-invoice, invoice-csv (see the README for the CSV columns).\n\
Re-running is safe: files already ingested (same content) are skipped; newer exports of the same \
buckets replace older ones.\n\n\
Examples:\n  \
tokenledger ingest exports/2026-10/\n  \
tokenledger ingest page.json --format anthropic-usage-api --json\n  \
tokenledger ingest fixtures/broken && tokenledger quarantine   # exit 3: see what was refused"
    )]
    Ingest(IngestArgs),
    /// Fetch usage, cost, workspaces and keys from the providers' Admin APIs into the landing
    /// directory, then ingest them (what `run` does first for each configured provider).
    #[command(after_help = PULL_RULES)]
    Pull(PullArgs),
    /// Token totals per month, workspace and model (the query in sql/usage_totals.sql).
    #[command(
        after_help = "Months are the lake's UTC month partitions, as the provider counts them \
(reports use the business timezone).\n\n\
Examples:\n  \
tokenledger usage\n  \
tokenledger usage --month 2026-10 --format csv > usage.csv"
    )]
    Usage(UsageArgs),
    /// Run SQL over the lake (polars SQL). Tables: usage, cost, rated_usage (a view: usage
    /// joined with usage_pricing), workspaces, api_keys, teams, usage_coverage, cost_coverage,
    /// ingest_log, quarantine, credit_lots, balance_snapshots, invoices, invoice_lines,
    /// anomaly_acks, mail_log, alert_log, pull_log.
    #[command(after_help = SQL_HELP)]
    Sql(SqlArgs),
    /// List quarantined input: file, row/line, field and reason.
    #[command(after_help = "Examples:\n  \
tokenledger quarantine\n  \
tokenledger quarantine --format csv > quarantine.csv")]
    Quarantine(QuarantineArgs),
    /// Show the price book in force on a date (default book + overrides).
    #[command(after_help = "Examples:\n  \
tokenledger prices\n  \
tokenledger prices --as-of 2026-03-12 --all --format csv")]
    Prices(PricesArgs),
    /// Price every usage row (the derived table usage_pricing, read as the view rated_usage);
    /// re-rates what is stale.
    #[command(
        after_help = "Rated data is derived: a month is re-rated from scratch when its usage, \
the price book or the business timezone changes.\n\n\
Examples:\n  \
tokenledger rate\n  \
tokenledger rate --month 2026-10 --json"
    )]
    Rate(RateArgs),
    /// Monthly chargeback: tokens and list cost by workspace, model, key, tier, day or team.
    #[command(
        after_help = "Rounding: each line is rounded to cents (half away from zero) and the lines are adjusted by \
largest remainder so that they add up exactly to the rounded total; list_cost_usd_exact keeps full precision.\n\
Exit code 3 when some usage has no list price (shown as UNPRICED with its tokens).\n\
Months and days are those of the business timezone (`timezone` in tokenledger.toml, default UTC); \
a month is provisional until [mail] grace_days after it ends, and the report says which.\n\n\
Examples:\n  \
tokenledger report --month 2026-10\n  \
tokenledger report --month 2026-10 --by team,model --format csv > chargeback.csv\n  \
tokenledger report --month 2026-10 --by team,day --show-sql\n  \
tokenledger report --month 2026-10 --format html --out chargeback.html"
    )]
    Report(ReportArgs),
    /// Compare our list cost with the provider's cost report; explain every difference; tie
    /// each invoice of the month out to both.
    #[command(after_help = TIE_OUT_RULES)]
    Reconcile(ReconcileArgs),
    /// Key spikes, new keys, new models on a key, reactivations, overnight bursts, spend limits.
    #[command(after_help = ANOMALY_RULES)]
    Anomalies(AnomaliesArgs),
    /// The credit ledger: every lot's consumption, expiry and money at risk; balance, burn, runway.
    #[command(after_help = CREDITS_RULES)]
    Credits(CreditsArgs),
    /// Limits before they bite: rate-limit headroom per model class and workspace from the
    /// minute series, and the day each monthly limit or spend cap is reached.
    #[command(after_help = LIMITS_RULES)]
    Limits(LimitsArgs),
    /// Mail the month's chargeback: one message per team recipient, one finance summary;
    /// exactly once (a sent-ledger in the lake).
    #[command(after_help = MAIL_RULES)]
    Mail(MailArgs),
    /// Export the lake in a standard format: FOCUS 1.4, the FinOps Foundation's billing format.
    #[command(after_help = "Examples:\n  \
tokenledger export focus --month 2026-10 --out focus/2026-10\n  \
tokenledger export focus --month 2026-10 --out focus/2026-10 --format csv --json")]
    Export(ExportArgs),
    /// Write a synthetic organisation's exports (deterministic for a seed).
    #[command(after_help = "Examples:\n  \
tokenledger synth --out /tmp/org --months 2 --width 1h\n  \
tokenledger synth --out /tmp/org --width 1m --seed 7")]
    Synth(SynthArgs),
    /// The first five minutes: a synthetic three-month organisation with credits and injected
    /// anomalies, run through the whole nightly job; prints where to look and what to try.
    #[command(after_help = "Examples:\n  \
tokenledger demo\n  \
tokenledger demo --dir /tmp/tl-demo")]
    Demo(DemoArgs),
    /// Shell completions on stdout (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:\n  \
tokenledger completions bash > ~/.local/share/bash-completion/completions/tokenledger\n  \
tokenledger completions zsh > ~/.zfunc/_tokenledger")]
    Completions(CompletionsArgs),
    /// Man pages (tokenledger.1 and one per command) into a directory.
    #[command(after_help = "Examples:\n  \
tokenledger man --out /usr/local/share/man/man1\n  \
tokenledger man --out target/man && man -l target/man/tokenledger-report.1")]
    Man(ManArgs),
}

pub use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: Shell,
}

/// The completion script for `shell`, from the grammar.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tokenledger", &mut out);
    out
}

/// Man pages from the grammar: `tokenledger.1`, and `tokenledger-COMMAND.1` for each command.
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    use clap::CommandFactory;
    let root = Cli::command();
    let mut pages = Vec::new();
    let mut page = |name: String, cmd: clap::Command| -> std::io::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf)?;
        pages.push((format!("{name}.1"), buf));
        Ok(())
    };
    for sub in root.get_subcommands() {
        let name = format!("tokenledger-{}", sub.get_name());
        page(name.clone(), sub.clone().name(name))?;
    }
    page("tokenledger".into(), root)?;
    Ok(pages)
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo writes its exports, config, lake and outbox.
    #[arg(long, default_value = "tokenledger-demo")]
    pub dir: PathBuf,
}

const SQL_HELP: &str = "\
The shipped queries (sql/*.sql) are the ones behind every report, each with a header comment;
they are portable (DuckDB, Spark, Trino, polars) and take {{NAME}} placeholders from --param
(--param month=YYYY-MM also fills month_before and month_after). `month` is every monthly
table's partition key (UTC); rated_usage has utc_day, business_day and business_month.
rated_usage is a view (sql/rated_usage.sql): usage joined with what pricing added to each
row (the table usage_pricing, written by `tokenledger rate`), one priced row per usage row.

Examples:
  tokenledger sql --tables
  tokenledger sql \"SELECT model, SUM(output_tokens) FROM usage GROUP BY model\"
  tokenledger sql --file sql/report.sql --param month=2026-10 --param dims=team,model
  tokenledger sql --file sql/credits_daily.sql --format parquet --out daily.parquet";

const MAIL_RULES: &str = "\
Each team's recipients get only that team's figures (by workspace and model, by model, by API key,
month total and change on the previous month; charts of daily cost by model and top keys; a CSV
with one row per workspace x model). Finance gets every team, Unallocated, the invoice tie-out,
credits at risk and the month's anomalies. Rounded once, top down: every table foots.
A month is provisional until [mail] grace_days (default 3) after it ends, and says so.
Exactly once: re-running sends nothing already delivered; the final version follows a
provisional one; a change of a team's total by more than a cent after it was final sends a
correction saying what changed. Failed sends are retried with backoff, stay queued and go out
with the next run (exit code 3 while anything is undelivered). Without [mail.smtp], and with
--dry-run, messages are written as .eml files under DATA_DIR/outbox/.

Examples:
  tokenledger mail --month 2026-10 --dry-run
  tokenledger mail --month 2026-10
  TOKENLEDGER_SMTP_PASSWORD=... tokenledger mail --month 2026-10 --json";

#[derive(Debug, Args)]
pub struct MailArgs {
    /// The month (YYYY-MM).
    #[arg(long, value_parser = Month::parse)]
    pub month: Month,
    /// Write every message to DATA_DIR/outbox/dry-run/MONTH/ and record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Send again what the sent-ledger says was delivered.
    #[arg(long)]
    pub resend: bool,
    /// Bill a month no usage export covers (a month that truly had no usage: every bill is
    /// $0.00). Without it such a month is refused, so a missing export is never mailed as zero.
    #[arg(long)]
    pub idle_month: bool,
    /// Decide provisional or final as of this day (default: today).
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
    /// Print the deliveries as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Only this provider (default: every provider whose table sets `since`).
    #[arg(long, value_parser = parse_provider)]
    pub provider: Option<crate::vocab::Provider>,
    /// First day to pull (YYYY-MM-DD, UTC; default: where the last pull left off).
    #[arg(long)]
    pub from: Option<chrono::NaiveDate>,
    /// Last day to pull, inclusive (YYYY-MM-DD, UTC; default: up to the last whole bucket).
    #[arg(long)]
    pub to: Option<chrono::NaiveDate>,
    /// Print what was pulled and ingested as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: IngestCommon,
}

fn parse_provider(s: &str) -> Result<crate::vocab::Provider, String> {
    crate::vocab::Provider::parse(s).ok_or_else(|| {
        format!(
            "{s:?} is not a provider; use {}",
            crate::vocab::Provider::ALL.map(|p| p.as_str()).join(" or ")
        )
    })
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Export files or directories to ingest (default: `inputs` from the config).
    #[arg(long, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Print the ingest summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// The day the run draws the credits ledger up at (YYYY-MM-DD, UTC). Default: today.
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
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
    #[arg(long, value_parser = parse_source_format)]
    pub format: Option<SourceFormat>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: IngestCommon,
}

fn parse_source_format(s: &str) -> Result<SourceFormat, String> {
    SourceFormat::parse(s).ok_or_else(|| {
        format!(
            "unknown format {s:?}; one of: {}",
            SourceFormat::ALL.map(|f| f.as_str()).join(", ")
        )
    })
}

/// `--format table|csv|json`.
fn output_format() -> impl TypedValueParser<Value = OutputFormat> {
    PossibleValuesParser::new(OutputFormat::NAMES).map(|s| s.parse().expect("a listed name"))
}

/// `--by workspace,model,…`.
fn dimension() -> impl TypedValueParser<Value = Dim> {
    PossibleValuesParser::new(Dim::NAMES).map(|s| s.parse().expect("a listed name"))
}

use crate::vocab::parse_month;

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only this month (YYYY-MM).
    #[arg(long, value_parser = Month::parse)]
    pub month: Option<Month>,
    #[arg(long, value_parser = output_format(), default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query (or several, separated by `;`: the last one's result is printed).
    #[arg(required_unless_present_any = ["file", "tables"])]
    pub query: Option<String>,
    /// Read the query from a file (e.g. sql/usage_totals.sql).
    #[arg(long, conflicts_with = "query")]
    pub file: Option<PathBuf>,
    /// Fill `{{NAME}}` placeholders of the query: `--param month=2026-10` (repeatable).
    #[arg(long, value_name = "NAME=VALUE")]
    pub param: Vec<String>,
    /// List the lake's tables with their columns and types, and exit.
    #[arg(long, conflicts_with_all = ["query", "file"])]
    pub tables: bool,
    /// table, csv, json, or parquet (with --out: the result as a Parquet file, exact decimals).
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "parquet"])]
    pub format: String,
    /// The file --format parquet writes.
    #[arg(long, required_if_eq("format", "parquet"))]
    pub out: Option<PathBuf>,
}

/// Where `sql` writes its result: a rendered grid, or a Parquet file.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlOutput {
    Grid(OutputFormat),
    Parquet(PathBuf),
}

impl SqlArgs {
    /// The output clap already checked (`--format parquet` requires `--out`).
    pub fn output(&self) -> SqlOutput {
        match (self.format.as_str(), &self.out) {
            ("parquet", Some(out)) => SqlOutput::Parquet(out.clone()),
            (f, _) => SqlOutput::Grid(f.parse().unwrap_or(OutputFormat::Table)),
        }
    }
}

#[derive(Debug, Args)]
pub struct PricesArgs {
    /// Date the book is shown for (YYYY-MM-DD, UTC). Default: today.
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
    /// Every dated row (all dates), not only those in force.
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_parser = output_format(), default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct AnomaliesArgs {
    #[command(subcommand)]
    pub action: Option<AnomalyAction>,
    /// First day (YYYY-MM-DD, business timezone). Default: the lake's first day.
    #[arg(long)]
    pub from: Option<chrono::NaiveDate>,
    /// Last day (YYYY-MM-DD, business timezone). Default: the lake's last day.
    #[arg(long)]
    pub to: Option<chrono::NaiveDate>,
    /// Only one scope: key, workspace, model or org.
    #[arg(long, value_parser = PossibleValuesParser::new(["key", "api_key", "workspace", "model", "org"]).map(|s| crate::anomalies::Scope::parse(&s).expect("a listed scope")))]
    pub scope: Option<crate::anomalies::Scope>,
    /// Only the findings that alert.
    #[arg(long)]
    pub alerts: bool,
    /// Incidents instead of findings: the findings that share a cause (a key, its workspace,
    /// model and organisation on the same days) as one line with the running cost of its days.
    #[arg(long)]
    pub incidents: bool,
    #[arg(long, value_parser = output_format(), default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum AnomalyAction {
    /// Mark a finding as expected: it stays listed, as acked, and never alerts again.
    Ack {
        /// The finding's id (the `id` column of `tokenledger anomalies`).
        id: String,
        /// Why it is expected (e.g. "load test").
        #[arg(long)]
        note: String,
    },
}

const LIMITS_RULES: &str = "\
Rate limits are per model class (all models of a class share them), in input tokens (uncached \
input and cache writes; cache reads do not count for current models), output tokens and requests \
per minute. The limits come from a dated built-in table (the output names it and its date) under \
[limits.<provider>] in tokenledger.toml: tier, spend_cap_usd, rate.\"<class>\" and \
workspaces.\"<workspace>\".\"<class>\" (rpm, itpm, otpm). Hourly or daily data gives only a lower \
bound of the busiest minute (said, never guessed). Batch and 1M-context requests have limits \
of their own and are left out.\n\
Monthly limits ([anomalies.limits]) and the tier's spend cap: the month to date, the burn (the \
median of the last 7 days) and the day the limit is reached at that burn, with a range.\n\
Exit code 3 when a minute reached the threshold ([anomalies] rate_limit_pct, default 80) or a \
monthly limit is projected to 90 % or more.\n\n\
Examples:\n  \
tokenledger limits\n  \
tokenledger limits --days 31 --format json\n  \
tokenledger limits --format csv > headroom.csv";

#[derive(Debug, Args)]
pub struct LimitsArgs {
    /// Days of data to look at, ending with the newest bucket (default: [anomalies]
    /// rate_limit_days, 7).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: Option<u32>,
    #[arg(long, value_parser = output_format(), default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CreditsArgs {
    /// The day the ledger is drawn up at (YYYY-MM-DD, UTC; its usage included). Default: today.
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
    #[arg(long, value_parser = output_format(), default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RateArgs {
    /// Only this month (YYYY-MM); default: every month with usage.
    #[arg(long, value_parser = Month::parse)]
    pub month: Option<Month>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The month (YYYY-MM) of the business timezone (`timezone`, default UTC).
    #[arg(long, value_parser = Month::parse)]
    pub month: Month,
    /// Dimensions, comma-separated: workspace, model, api-key, service-tier, day, team.
    #[arg(long, value_parser = dimension(), value_delimiter = ',', default_value = "workspace,model")]
    pub by: Vec<Dim>,
    /// table, csv or json; or html: the month's whole chargeback (finance summary and every
    /// team, charts embedded) as one self-contained page, written to --out.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "html"])]
    pub format: String,
    /// The file --format html writes.
    #[arg(long, required_if_eq("format", "html"))]
    pub out: Option<PathBuf>,
    /// Print the SQL the report runs (from sql/report.sql) and exit.
    #[arg(long)]
    pub show_sql: bool,
    /// Say whether the month is provisional or final as of this day (default: today).
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
}

/// Where `report` writes: a rendered grid, or one self-contained HTML page.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportOutput {
    Grid(OutputFormat),
    Html(PathBuf),
}

impl ReportArgs {
    /// The output clap already checked (`--format html` requires `--out`).
    pub fn output(&self) -> ReportOutput {
        match (self.format.as_str(), &self.out) {
            ("html", Some(out)) => ReportOutput::Html(out.clone()),
            (f, _) => ReportOutput::Grid(f.parse().unwrap_or(OutputFormat::Table)),
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: ExportWhat,
}

#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// FOCUS 1.4 Cost and Usage, Invoice Detail and Billing Period of one UTC month, as any
    /// FinOps tool loads them; each invoice's rows sum to its total to the cent.
    #[command(after_help = FOCUS_RULES)]
    Focus(FocusArgs),
}

const FOCUS_RULES: &str = "\
One Cost and Usage row per UTC day x provider x workspace (project) x API key x model x tier x
token class (or web search, or unit). ListCost is at the public price book, ContractedCost at the
book in force (your [prices] overrides), EffectiveCost after free credit (promotional, plan
credit) drawn, BilledCost what the invoice charges (its charges allocated to the rows it covers,
largest remainder at the cent) or, before an invoice, what no credit paid. Credit lots bought
for money are Purchase rows; invoice credits, discount and tax are rows of their own. Zero-cost
rows are kept (their tokens are consumption); zero quantities are not rows. README: FOCUS export.
Exit code 3 when some usage has no list price (its costs are 0, x_PricingStatus says UNPRICED).

Examples:
  tokenledger export focus --month 2026-10 --out focus/2026-10
  tokenledger export focus --month 2026-10 --out focus/2026-10 --format csv
  duckdb -c \"SELECT InvoiceId, SUM(BilledCost) FROM 'focus/2026-10/cost_and_usage.parquet' GROUP BY 1\"";

#[derive(Debug, Args)]
pub struct FocusArgs {
    /// The month (YYYY-MM, UTC: FOCUS billing periods are UTC calendar months).
    #[arg(long, value_parser = Month::parse)]
    pub month: Month,
    /// The directory the three datasets are written to (created; files replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// parquet (DECIMAL money, UTC timestamps) or csv (plain digits, ISO 8601 times).
    #[arg(long, value_parser = PossibleValuesParser::new(["parquet", "csv"]), default_value = "parquet")]
    pub format: String,
    /// Whether the month is over (Billing Period `Closed`) as of this day (default: today).
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
    /// A JSON summary on stdout (files, rows, exact totals).
    #[arg(long)]
    pub json: bool,
}

impl FocusArgs {
    pub fn file_format(&self) -> crate::export::write::Format {
        match self.format.as_str() {
            "csv" => crate::export::write::Format::Csv,
            _ => crate::export::write::Format::Parquet,
        }
    }
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The month (YYYY-MM, UTC: the provider's cost report and invoice are on UTC days).
    #[arg(long, value_parser = Month::parse)]
    pub month: Month,
    /// Say whether the month is provisional or final as of this day (default: today).
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
    /// Differences up to this many dollars per line count as matched
    /// [default: [reconcile] tolerance of the config, else 0.005].
    #[arg(long, value_parser = parse_money)]
    pub tolerance: Option<Money>,
    /// Only the invoice tie-out (one ladder row per line; with --format csv, for finance).
    #[arg(long)]
    pub tie_out: bool,
    #[arg(long, value_parser = output_format(), default_value = "table")]
    pub format: OutputFormat,
}

fn parse_money(s: &str) -> Result<Money, String> {
    let d = rust_decimal::Decimal::from_str_exact(s.trim())
        .map_err(|e| format!("{s:?} is not an exact decimal: {e}"))?;
    Money::from_decimal(d)
}

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    /// Only this ingest's entries.
    #[arg(long)]
    pub ingest: Option<String>,
    #[arg(long, value_parser = output_format(), default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct SynthArgs {
    /// Output directory (created; existing files of the same names are overwritten).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First month (YYYY-MM).
    #[arg(long, default_value = "2026-10", value_parser = parse_month)]
    pub start: String,
    #[arg(long, default_value_t = 1)]
    pub months: u32,
    /// Bucket width of the usage pages: 1m, 1h or 1d.
    #[arg(long, default_value = "1h")]
    pub width: String,
    /// Named workspaces (the default workspace comes on top).
    #[arg(long, default_value_t = 4)]
    pub workspaces: usize,
    #[arg(long, default_value_t = 3)]
    pub keys_per_workspace: usize,
    /// Average result rows per bucket on a weekday at peak.
    #[arg(long, default_value_t = 8)]
    pub rows_per_bucket: usize,
    /// Buckets per page file (default: the API's maximum `limit` for the width).
    #[arg(long)]
    pub page_buckets: Option<usize>,
    /// Also write the same usage as Console CSVs (daily, names instead of IDs).
    #[arg(long)]
    pub console_csv: bool,
    /// Do not write the provider's cost report (written by default, at list prices).
    #[arg(long)]
    pub no_cost_report: bool,
    /// Also write an OpenAI organisation (projects, keys, every Usage API endpoint and the
    /// Costs API) under openai/.
    #[arg(long)]
    pub openai: bool,
    /// Inject anomalies: `traps` (tiny noisy keys, steady growth, a month-end batch job: nothing
    /// should alert) or `all` (traps plus labelled spikes, an overnight burst, a new key and a
    /// new model on an old key, listed in <out>-labels.csv beside the exports).
    #[arg(long, default_value = "none", value_parser = PossibleValuesParser::new(["none", "traps", "all"]).map(|s| synth::Injection::parse(&s).expect("a listed value")))]
    pub anomalies: synth::Injection,
    /// Instead of the organisation: a minute series for rate-limit headroom (Analytics API
    /// usage queries, one per day, in --width 1m or 1h buckets; --workspaces ×
    /// --keys-per-workspace × 3 model classes rows per bucket).
    #[arg(long)]
    pub analytics_minutes: bool,
}

impl From<SynthArgs> for synth::SynthOptions {
    fn from(a: SynthArgs) -> Self {
        synth::SynthOptions {
            out: a.out,
            seed: a.seed,
            start: a.start,
            months: a.months,
            width: a.width,
            workspaces: a.workspaces,
            keys_per_workspace: a.keys_per_workspace,
            rows_per_bucket: a.rows_per_bucket,
            page_buckets: a.page_buckets,
            console_csv: a.console_csv,
            no_cost_report: a.no_cost_report,
            anomalies: a.anomalies,
            openai: if a.openai {
                synth::openai::Part::Full
            } else {
                synth::openai::Part::None
            },
            analytics_minutes: a.analytics_minutes,
        }
    }
}

impl Cli {
    /// -1 quiet, 0 default, 1 `-v`, 2 `-vv` or more.
    pub fn verbosity(&self) -> i8 {
        if self.quiet {
            -1
        } else {
            self.verbose.min(2) as i8
        }
    }
    /// The flags that settings resolve (the rest are per-command arguments).
    pub fn flags(&self) -> Flags {
        let (inputs, common) = match &self.command {
            Command::Run(a) => (a.inputs.clone(), Some(&a.common)),
            Command::Ingest(a) => (Vec::new(), Some(&a.common)),
            Command::Pull(a) => (Vec::new(), Some(&a.common)),
            _ => (Vec::new(), None),
        };
        Flags {
            data_dir: self.data_dir.clone(),
            config: self.config.clone(),
            quiet: self.quiet,
            progress: std::io::stderr().is_terminal(),
            jobs: common.and_then(|c| c.jobs),
            no_wait: common.is_some_and(|c| c.no_wait),
            inputs,
            tolerance: match &self.command {
                Command::Reconcile(a) => a.tolerance,
                _ => None,
            },
            as_of: match &self.command {
                Command::Run(a) => a.as_of,
                Command::Credits(a) => a.as_of,
                Command::Mail(a) => a.as_of,
                Command::Report(a) => a.as_of,
                Command::Reconcile(a) => a.as_of,
                Command::Export(ExportArgs {
                    what: ExportWhat::Focus(a),
                }) => a.as_of,
                _ => None,
            },
            wide: self.wide,
        }
    }
}
