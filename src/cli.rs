//! The command line: flags → [`Settings`], one library call per command, output, exit code.
//!
//! Owns: dispatching the parsed command (its grammar is `flags`), what is printed on stdout and stderr, progress bars
//! (TTY only), and the one mapping from outcomes to exit codes ([`exit_code`]).
//! Must not: contain pipeline logic (that is `run`), or use polars.

use std::path::PathBuf;

use anyhow::{Context, Result};

pub use crate::flags::Cli;
use crate::flags::{
    AnomaliesArgs, AnomalyAction, Command, CreditsArgs, MailArgs, PricesArgs, RateArgs,
    ReconcileArgs, ReportArgs, SqlArgs,
};
use crate::model::SourceFormat;
use crate::present::{self, OutputFormat};
use crate::query;
use crate::run::{self, Review, RunError};
use crate::settings::Settings;
use crate::synth;

/// The one mapping from outcomes to exit codes: 0 clean, 3 needs review.
pub fn exit_code(reviews: &[Review]) -> i32 {
    if reviews.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::NEEDS_REVIEW
    }
}

/// A library error as an exit code: usage errors are 2 (said on stderr), the rest fail.
fn failed(e: RunError, settings: &Settings) -> Result<i32> {
    match e {
        RunError::Usage(m) => {
            eprintln!("error: {m}");
            Ok(crate::exit::USAGE)
        }
        RunError::Ingest(e) => Err(anyhow::Error::new(e).context(format!(
            "ingest into {} failed; nothing was committed",
            settings.data_dir().display()
        ))),
        other => Err(other.into()),
    }
}

/// Runs one command; the exit code (errors are exit code 1, printed by `main`).
pub fn run(cli: Cli) -> Result<i32> {
    present::set_wide(cli.wide);
    // Completions and man pages need no config (nor a valid one).
    match &cli.command {
        Command::Completions(a) => return crate::manual::completions(a.shell),
        Command::Man(a) => return crate::manual::man_pages(&a.out),
        _ => {}
    }
    // An invalid config is a usage error (exit 2), said with the file, key and reason.
    let settings = match Settings::load(cli.flags()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(crate::exit::USAGE);
        }
    };
    let s = &settings;
    match cli.command {
        Command::Run(a) => cmd_run(s, a.json),
        Command::Ingest(a) => cmd_ingest(s, a.paths, a.format, a.json),
        Command::Usage(a) => print_frame(
            s,
            a.format,
            || query::usage_totals(&s.layout, a.month.map(|m| m.key()).as_deref()),
            &format!(
                "no usage in {} yet: run `tokenledger ingest` first",
                s.data_dir().display()
            ),
        ),
        Command::Sql(a) => cmd_sql(s, a),
        Command::Quarantine(a) => print_frame(
            s,
            a.format,
            || query::quarantine(&s.layout, a.ingest.as_deref()),
            "quarantine is empty",
        ),
        Command::Prices(a) => cmd_prices(s, a),
        Command::Rate(a) => cmd_rate(s, a),
        Command::Report(a) => cmd_report(s, a),
        Command::Reconcile(a) => cmd_reconcile(s, a),
        Command::Credits(a) => cmd_credits(s, a),
        Command::Anomalies(a) => cmd_anomalies(s, a),
        Command::Mail(a) => cmd_mail(s, a),
        Command::Demo(a) => crate::demo::run(s, &a.dir),
        Command::Completions(_) | Command::Man(_) => unreachable!("handled before the config"),
        Command::Synth(a) => {
            let report = synth::generate(&a.into())?;
            if !s.quiet {
                eprintln!("{report}");
            }
            Ok(crate::exit::OK)
        }
    }
}

fn say_recovered(s: &Settings, recovered: &Option<String>) {
    if let Some(m) = recovered
        && !s.quiet
    {
        eprintln!("tokenledger: {m}");
    }
}

fn cmd_ingest(
    s: &Settings,
    paths: Vec<PathBuf>,
    format: Option<SourceFormat>,
    json: bool,
) -> Result<i32> {
    let summary = match run::ingest(s, paths, format) {
        Ok(x) => x,
        Err(e) => return failed(e, s),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if !s.quiet {
        eprint!("{}", present::ingest_summary(&summary));
    }
    Ok(exit_code(&run::ingest_reviews(&summary)))
}

fn cmd_run(s: &Settings, json: bool) -> Result<i32> {
    let tpl = templates(s)?;
    let out = match run::run(s, &tpl) {
        Ok(x) => x,
        Err(e) => return failed(e, s),
    };
    let reviews = out.reviews();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&present::run_json(&out, &reviews, exit_code(&reviews)))?
        );
    }
    crate::log::run_summary(&out, s.data_dir());
    if !s.quiet && !json {
        print!("{}", present::run_text(&out)?);
    }
    Ok(exit_code(&reviews))
}

/// Reads under a snapshot and prints the frame, or says why there is none.
fn print_frame(
    s: &Settings,
    format: OutputFormat,
    read: impl FnOnce() -> Result<Option<query::Frame>, query::QueryError>,
    empty: &str,
) -> Result<i32> {
    let snap = crate::lake::txn::Snapshot::read(&s.layout)?;
    say_recovered(s, &snap.recovered);
    match read().context("query failed")? {
        Some(f) => print!(
            "{}",
            present::fitted(&f.grid()?, format, &present::FRAME_OPTIONAL_COLUMNS)
        ),
        None if !s.quiet => eprintln!("{empty}"),
        None => {}
    }
    Ok(crate::exit::OK)
}

fn cmd_sql(s: &Settings, a: SqlArgs) -> Result<i32> {
    if a.tables {
        let format: OutputFormat = a.format.parse().map_err(anyhow::Error::msg)?;
        print!("{}", present::fitted(&query::tables_grid(), format, &[]));
        return Ok(crate::exit::OK);
    }
    let text = match (a.query, &a.file) {
        (Some(q), _) => q,
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let text = match query::fill_params(&text, &a.param) {
        Ok(t) => t,
        Err(m) => {
            eprintln!("error: {m}");
            return Ok(crate::exit::USAGE);
        }
    };
    if let (true, Some(out)) = (a.format == "parquet", &a.out) {
        let _snap = crate::lake::txn::Snapshot::read(&s.layout)?;
        let f = query::sql(&s.layout, &text).context("query failed")?;
        f.write_parquet(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        if !s.quiet {
            eprintln!(
                "tokenledger: {} row(s) written to {}",
                f.height(),
                out.display()
            );
        }
        return Ok(crate::exit::OK);
    }
    let format: OutputFormat = a.format.parse().map_err(anyhow::Error::msg)?;
    print_frame(s, format, || query::sql(&s.layout, &text).map(Some), "")
}

fn cmd_prices(s: &Settings, a: PricesArgs) -> Result<i32> {
    let book = s.price_book()?;
    let day = a.as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let grid = present::book_grid(&book, if a.all { None } else { Some(day) });
    print!(
        "{}",
        present::render_grid(
            &grid,
            a.format,
            present::terminal_width(),
            &present::BOOK_OPTIONAL_COLUMNS
        )
    );
    Ok(crate::exit::OK)
}

fn cmd_rate(s: &Settings, a: RateArgs) -> Result<i32> {
    let book = s.price_book()?;
    let months: Vec<String> = a.month.iter().map(|m| m.key()).collect();
    let rated = run::rate(s, &book, &months)?;
    say_recovered(s, &rated.snapshot.recovered);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rated.summary)?);
    }
    if !s.quiet {
        eprintln!(
            "{}",
            present::rate_summary(&rated.summary, &book.fingerprint)
        );
    }
    Ok(exit_code(&rated.summary.reviews()))
}

fn templates(s: &Settings) -> Result<present::mail::Templates> {
    Ok(present::mail::Templates::load(
        s.mail_settings()?.templates.as_deref(),
    )?)
}

fn cmd_mail(s: &Settings, a: MailArgs) -> Result<i32> {
    let tpl = templates(s)?;
    let out = match run::mail(s, a.month, &tpl, a.dry_run, a.resend) {
        Ok(x) => x,
        Err(e) => return failed(e, s),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if !s.quiet {
        eprint!("{}", present::mail::outcome_text(&out, s.data_dir()));
    }
    Ok(exit_code(&out.reviews()))
}

fn cmd_report(s: &Settings, a: ReportArgs) -> Result<i32> {
    if a.show_sql {
        print!("{}", crate::report::show_sql(a.month, &a.by));
        return Ok(crate::exit::OK);
    }
    if let (true, Some(path)) = (a.format == "html", &a.out) {
        let close = crate::demo::write_html_report(s, a.month, path)?;
        if !s.quiet {
            eprintln!(
                "tokenledger: wrote the {} chargeback ({close}) to {}",
                a.month,
                path.display()
            );
        }
        return Ok(crate::exit::OK);
    }
    let format: OutputFormat = a.format.parse().map_err(anyhow::Error::msg)?;
    let (r, rated) = run::report(s, a.month, &a.by)?;
    say_recovered(s, &rated.snapshot.recovered);
    let standing = run::standing(s, a.month, false)?;
    say_standing(
        s,
        format,
        &present::standing_text(&standing, Some(r.total_cost)),
    );
    print_report(&r, format);
    if r.unpriced_lines > 0 {
        eprintln!(
            "tokenledger: {} line(s) UNPRICED: no list price in force; add a [[prices.model]] override (exit code 3)",
            r.unpriced_lines
        );
    }
    Ok(exit_code(&r.reviews()))
}

fn cmd_reconcile(s: &Settings, a: ReconcileArgs) -> Result<i32> {
    let (r, rated) = run::reconcile(s, a.month)?;
    say_recovered(s, &rated.snapshot.recovered);
    let standing = run::standing(s, a.month, true)?;
    say_standing(s, a.format, &present::standing_text(&standing, None));
    if a.tie_out {
        print!(
            "{}",
            present::tieout::tie_outs_output(&r.tie_outs, a.format)?
        );
    } else {
        print_reconcile(&r, a.format)?;
    }
    Ok(exit_code(&r.reviews()))
}

fn cmd_credits(s: &Settings, a: CreditsArgs) -> Result<i32> {
    let (ledger, inputs, rated) = run::credits(s)?;
    say_recovered(s, &rated.snapshot.recovered);
    let text = present::credits::credits_text(
        &ledger,
        inputs.unpriced_rows,
        a.format,
        present::terminal_width(),
    )?;
    print!("{text}");
    Ok(exit_code(&run::credit_reviews(&ledger, &inputs)))
}

fn cmd_anomalies(s: &Settings, a: AnomaliesArgs) -> Result<i32> {
    if let Some(AnomalyAction::Ack { id, note }) = a.action {
        let row = match run::ack_anomaly(s, &id, &note) {
            Ok(r) => r,
            Err(e) => return failed(e, s),
        };
        if !s.quiet {
            eprintln!("acknowledged {id}: {} ({note})", row.finding.sentence);
        }
        return Ok(crate::exit::OK);
    }
    let (mut rows, rated) = match run::anomalies(s, (a.from, a.to), a.scope) {
        Ok(x) => x,
        Err(e) => return failed(e, s),
    };
    say_recovered(s, &rated.snapshot.recovered);
    if a.alerts {
        rows.retain(|r| r.alert);
    }
    print!(
        "{}",
        present::anomalies::anomalies_text(&rows, a.format, present::terminal_width())?
    );
    let alerts = rows.iter().filter(|r| r.alert).count();
    Ok(if alerts > 0 {
        crate::exit::NEEDS_REVIEW
    } else {
        crate::exit::OK
    })
}

/// Where the month stands: the table's first line, or on stderr beside CSV and JSON (so they
/// stay data).
fn say_standing(s: &Settings, format: OutputFormat, text: &str) {
    match format {
        OutputFormat::Table => println!("{text}\n"),
        _ if !s.quiet => eprintln!("tokenledger: {text}"),
        _ => {}
    }
}

fn print_report(r: &crate::report::Report, format: OutputFormat) {
    print!(
        "{}",
        present::report_text(r, format, present::terminal_width())
    );
}

fn print_reconcile(r: &crate::reconcile::Reconciliation, format: OutputFormat) -> Result<()> {
    print!(
        "{}",
        present::reconcile_text(r, format, present::terminal_width())?
    );
    Ok(())
}
