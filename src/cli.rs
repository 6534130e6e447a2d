//! The command line: flags → [`Settings`], one library call per command, output, exit code.
//!
//! Owns: dispatching the parsed command (its grammar is `flags`) to one `run` function, what
//! is printed on stdout and stderr, and the one mapping from outcomes to exit codes
//! ([`exit_code`]).
//! Must not: contain pipeline logic, take a snapshot, query or render (that is `run` and
//! `present`), or use polars. It imports only `flags`, `settings`, `run`, `present` and `log`
//! (`tests/it/architecture.rs` holds it to that list).

use anyhow::{Context, Result};

pub use crate::flags::Cli;
use crate::flags::{
    AnomaliesArgs, AnomalyAction, Command, CreditsArgs, ExportArgs, ExportWhat, MailArgs,
    PricesArgs, RateArgs, ReconcileArgs, ReportArgs, ReportOutput, SqlArgs, SqlOutput,
};
use crate::present::{self, OutputFormat};
use crate::run::{self, Review, RunError};
use crate::settings::Settings;

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
        e if e.is_usage() => {
            crate::log::error(&e.to_string());
            Ok(crate::exit::USAGE)
        }
        RunError::Ingest(e) => Err(anyhow::Error::new(e).context(format!(
            "ingest into {} failed; nothing was committed",
            settings.data_dir().display()
        ))),
        other => Err(other.into()),
    }
}

/// `Ok` as is; a library error through [`failed`].
macro_rules! or_fail {
    ($e:expr, $s:expr) => {
        match $e {
            Ok(x) => x,
            Err(e) => return failed(e, $s),
        }
    };
}

/// The mail templates, or exit code 2 (said by [`templates`]).
macro_rules! templates_or_exit {
    ($s:expr) => {
        match templates($s) {
            Some(t) => t,
            None => return Ok(crate::exit::USAGE),
        }
    };
}

/// Runs one command; the exit code (errors are exit code 1, printed by `main`, except a
/// usage error anywhere in the chain, which is said here and is exit code 2).
pub fn run(cli: Cli) -> Result<i32> {
    match dispatch(cli) {
        Err(e) if run::is_usage(&e) => {
            crate::log::error(&format!("{e:#}"));
            Ok(crate::exit::USAGE)
        }
        other => other,
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    // Completions and man pages need no config (nor a valid one).
    match &cli.command {
        Command::Completions(a) => {
            use std::io::Write;
            std::io::stdout().write_all(&crate::flags::completion_script(a.shell))?;
            return Ok(crate::exit::OK);
        }
        Command::Man(a) => {
            let pages = crate::flags::man_pages().context("cannot render the man pages")?;
            let n = run::write_pages(&a.out, &pages)?;
            eprintln!("{n} man pages written to {}", a.out.display());
            return Ok(crate::exit::OK);
        }
        _ => {}
    }
    // An invalid config is a usage error (exit 2), said with the file, key and reason, before
    // any work starts.
    let settings = match Settings::load(cli.flags()) {
        Ok(s) => s,
        Err(e) => {
            crate::log::error(&present::error_line(&e));
            return Ok(crate::exit::USAGE);
        }
    };
    let s = &settings;
    match cli.command {
        Command::Run(a) => cmd_run(s, a.json),
        Command::Ingest(a) => {
            let summary = or_fail!(run::ingest(s, a.paths, a.format), s);
            json_out(a.json, &summary)?;
            say(s, present::ingest_summary(&summary).trim_end());
            Ok(exit_code(&run::ingest_reviews(&summary)))
        }
        Command::Pull(a) => {
            let out = or_fail!(run::pull::pull(s, a.provider, (a.from, a.to)), s);
            json_out(a.json, &out)?;
            say(s, present::pull_text(&out.pull, &out.ingest));
            Ok(exit_code(&out.reviews()))
        }
        Command::Usage(a) => print_table(s, a.format, run::usage(s, a.month), "no usage rows"),
        Command::Sql(a) => cmd_sql(s, a),
        Command::Quarantine(a) => print_table(
            s,
            a.format,
            run::quarantine(s, a.ingest.as_deref()),
            "quarantine is empty",
        ),
        Command::Prices(a) => cmd_prices(s, a),
        Command::Rate(a) => cmd_rate(s, a),
        Command::Report(a) => cmd_report(s, a),
        Command::Reconcile(a) => cmd_reconcile(s, a),
        Command::Credits(a) => cmd_credits(s, a),
        Command::Limits(a) => {
            let (l, rated) = or_fail!(run::limits(s, a.days), s);
            say_recovered(s, &rated.snapshot.recovered);
            print!(
                "{}",
                present::limits::limits_text(&l, a.format, s.render.width)?
            );
            Ok(exit_code(&l.reviews()))
        }
        Command::Anomalies(a) => cmd_anomalies(s, a),
        Command::Mail(a) => cmd_mail(s, a),
        Command::Demo(a) => cmd_demo(s, &a.dir),
        Command::Export(ExportArgs {
            what: ExportWhat::Focus(a),
        }) => {
            let out = or_fail!(run::export::focus(s, a.month, &a.out, a.file_format()), s);
            json_out(a.json, &out)?;
            say(s, present::focus_text(&out));
            Ok(exit_code(&out.reviews()))
        }
        Command::Completions(_) | Command::Man(_) => unreachable!("handled before the config"),
        Command::Synth(a) => {
            say(s, run::synth(&a.into())?);
            Ok(crate::exit::OK)
        }
    }
}

/// `value` as JSON on stdout, when `--json`.
fn json_out(json: bool, value: &impl serde::Serialize) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    }
    Ok(())
}

/// A line on stderr for a person; nothing under `-q` (errors only).
fn say(s: &Settings, text: impl std::fmt::Display) {
    if !s.quiet {
        eprintln!("{text}");
    }
}

fn say_recovered(s: &Settings, recovered: &Option<String>) {
    if let Some(m) = recovered {
        say(s, format!("tokenledger: {m}"));
    }
}

/// The mail templates (`[mail] templates`, else the built-in ones); a directory that does not
/// load is a usage error (exit 2), said before any work starts.
fn templates(s: &Settings) -> Option<present::mail::Templates> {
    present::mail::Templates::load(s.mail.templates.as_deref())
        .map_err(|e| crate::log::error(&present::error_line(&e)))
        .ok()
}

fn cmd_run(s: &Settings, json: bool) -> Result<i32> {
    let tpl = templates_or_exit!(s);
    let out = or_fail!(run::run(s, &tpl), s);
    let reviews = out.reviews();
    let code = match exit_code(&reviews) {
        crate::exit::NEEDS_REVIEW if out.new_findings == 0 => crate::exit::STANDING,
        c => c,
    };
    if json {
        let v = present::run_json(&out, &reviews, code);
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    crate::log::run_summary(&out, s.data_dir());
    if !s.quiet && !json {
        print!("{}", present::run_text(&out, s.render.width)?);
    }
    Ok(code)
}

fn cmd_demo(s: &Settings, dir: &std::path::Path) -> Result<i32> {
    let tpl = templates_or_exit!(s);
    let t = std::time::Instant::now();
    let d = run::demo::run(s.quiet, dir, &tpl)?;
    if !s.quiet {
        crate::log::run_summary(&d.run, d.demo.settings.data_dir());
        eprint!("{}", run::demo::next_steps(&d.demo, &d.html));
        eprintln!("(demo finished in {:.1} s)", t.elapsed().as_secs_f64());
    }
    // The demo's findings are the point, not a failure.
    Ok(crate::exit::OK)
}

/// Prints the table a read gave, or says why there is none.
fn print_table(
    s: &Settings,
    format: OutputFormat,
    read: Result<run::Listing, RunError>,
    empty: &str,
) -> Result<i32> {
    let t = read.context("query failed")?;
    say_recovered(s, &t.recovered);
    match t.grid {
        Some(g) => print!(
            "{}",
            present::render_grid(&g, format, s.render.width, &present::FRAME_OPTIONAL_COLUMNS)
        ),
        None => say(s, empty),
    }
    Ok(crate::exit::OK)
}

fn cmd_sql(s: &Settings, a: SqlArgs) -> Result<i32> {
    let output = a.output();
    if a.tables {
        let format = match output {
            SqlOutput::Grid(f) => f,
            SqlOutput::Parquet(_) => OutputFormat::Table,
        };
        let tables = present::render_grid(&run::tables(), format, s.render.width, &[]);
        print!("{tables}");
        return Ok(crate::exit::OK);
    }
    let text = or_fail!(run::sql_text(a.query, a.file.as_deref(), &a.param), s);
    match output {
        SqlOutput::Parquet(out) => {
            let rows = run::sql_to_parquet(s, &text, &out).context("query failed")?;
            let text = format!("tokenledger: {rows} row(s) written to {}", out.display());
            say(s, text);
            Ok(crate::exit::OK)
        }
        SqlOutput::Grid(format) => print_table(s, format, run::sql(s, &text), ""),
    }
}

fn cmd_prices(s: &Settings, a: PricesArgs) -> Result<i32> {
    let day = (!a.all).then(|| a.as_of.unwrap_or_else(|| chrono::Utc::now().date_naive()));
    let text = present::book_text(&s.book, day, a.format, s.render.width);
    print!("{text}");
    Ok(crate::exit::OK)
}

fn cmd_rate(s: &Settings, a: RateArgs) -> Result<i32> {
    let months: Vec<String> = a.month.iter().map(|m| m.key()).collect();
    let rated = run::rate(s, &months)?;
    say_recovered(s, &rated.snapshot.recovered);
    json_out(a.json, &rated.summary)?;
    let summary = &rated.summary;
    say(s, present::rate_summary(summary, &summary.price_book));
    Ok(exit_code(&rated.summary.reviews()))
}

fn cmd_mail(s: &Settings, a: MailArgs) -> Result<i32> {
    let tpl = templates_or_exit!(s);
    let how = (a.dry_run, a.resend, a.idle_month);
    let out = or_fail!(run::mail(s, a.month, &tpl, how), s);
    json_out(a.json, &out)?;
    let text = present::mail::outcome_text(&out, s.data_dir());
    say(s, text.trim_end());
    Ok(exit_code(&out.reviews()))
}

fn cmd_report(s: &Settings, a: ReportArgs) -> Result<i32> {
    if a.show_sql {
        print!("{}", run::show_sql(a.month, &a.by));
        return Ok(crate::exit::OK);
    }
    let format = match a.output() {
        ReportOutput::Grid(f) => f,
        ReportOutput::Html(path) => {
            let tpl = templates_or_exit!(s);
            let close = run::html_report(s, a.month, &path, &tpl)?;
            let (m, c, p) = (a.month, close.as_str(), path.display());
            let said = format!("tokenledger: wrote the {m} chargeback ({c}) to {p}");
            say(s, said);
            return Ok(crate::exit::OK);
        }
    };
    let shown = run::report(s, a.month, &a.by)?;
    say_recovered(s, &shown.recovered);
    let r = &shown.figures;
    let text = present::standing_text(&shown.standing, Some(r.total_cost));
    say_standing(s, format, &text);
    print!("{}", present::report_text(r, format, s.render.width));
    if r.unpriced_lines > 0 {
        eprintln!(
            "tokenledger: {} line(s) UNPRICED: no list price in force; add a [[prices.model]] override (exit code 3)",
            r.unpriced_lines
        );
    }
    Ok(exit_code(&r.reviews()))
}

fn cmd_reconcile(s: &Settings, a: ReconcileArgs) -> Result<i32> {
    let shown = run::reconcile(s, a.month)?;
    say_recovered(s, &shown.recovered);
    let r = &shown.figures;
    say_standing(s, a.format, &present::standing_text(&shown.standing, None));
    let text = if a.tie_out {
        present::tieout::tie_outs_output(&r.tie_outs, a.format, s.render.width)?
    } else {
        present::reconcile_text(r, a.format, s.render.width)?
    };
    print!("{text}");
    Ok(exit_code(&r.reviews()))
}

fn cmd_credits(s: &Settings, a: CreditsArgs) -> Result<i32> {
    let (ledger, inputs, rated) = run::credits(s)?;
    say_recovered(s, &rated.snapshot.recovered);
    let unpriced = inputs.unpriced_rows;
    let text = present::credits::credits_text(&ledger, unpriced, a.format, s.render.width)?;
    print!("{text}");
    Ok(exit_code(&run::credit_reviews(&ledger, &inputs)))
}

fn cmd_anomalies(s: &Settings, a: AnomaliesArgs) -> Result<i32> {
    if let Some(AnomalyAction::Ack { id, note }) = a.action {
        let row = or_fail!(run::ack_anomaly(s, &id, &note), s);
        let said = format!("acknowledged {id}: {} ({note})", row.finding.sentence);
        say(s, said);
        return Ok(crate::exit::OK);
    }
    let w = s.render.width;
    let (text, alerting, recovered) = if a.incidents {
        let (mut v, rated) = or_fail!(run::incidents(s, (a.from, a.to)), s);
        v.retain(|i| i.alert || !a.alerts);
        let any = v.iter().any(|i| i.alert);
        let text = present::anomalies::incidents_text(&v, a.format, w)?;
        (text, any, rated.snapshot.recovered.clone())
    } else {
        let (mut v, rated) = or_fail!(run::anomalies(s, (a.from, a.to), a.scope), s);
        v.retain(|r| r.alert || !a.alerts);
        let any = v.iter().any(|r| r.alert);
        let text = present::anomalies::anomalies_text(&v, a.format, w)?;
        (text, any, rated.snapshot.recovered.clone())
    };
    say_recovered(s, &recovered);
    print!("{text}");
    Ok([crate::exit::OK, crate::exit::NEEDS_REVIEW][usize::from(alerting)])
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
