//! Logs: `tracing` events on stderr, human-readable by default (just the sentence, `warning:` /
//! `error:` in colour on a terminal unless `NO_COLOR` is set) or one JSON object per line with
//! `--log-format json` for log shippers (timestamp, level, stage, message).
//!
//! Owns: the subscriber and its levels (`-q` errors only, default info, `-v` debug, `-vv`
//! trace), and the nightly run's summary events. Must not: decide what a command prints on
//! stdout (that is `cli` and `present`).

use std::fmt;
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?}; one of: human, json")),
        }
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// The sentence alone (the stage is already in it), `warning:`/`error:` before the rest.
struct Human {
    color: bool,
}

impl<S, N> FormatEvent<S, N> for Human
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut m = Message(String::new());
        event.record(&mut m);
        let (label, code) = match *event.metadata().level() {
            Level::ERROR => ("error: ", "31"),
            Level::WARN => ("warning: ", "33"),
            _ => ("", ""),
        };
        if self.color && !label.is_empty() {
            write!(w, "\x1b[{code}m{label}\x1b[0m")?;
        } else {
            write!(w, "{label}")?;
        }
        writeln!(w, "{}", m.0)
    }
}

/// Whether log lines are JSON (`--log-format json`): then errors and summaries are JSON too.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// An error for a person or a log shipper: `error: …` in human mode, a JSON object with level
/// ERROR under `--log-format json`; shown under `-q` too.
pub fn error(message: &str) {
    tracing::error!(stage = "error", "{message}");
}

/// Installs the subscriber (once, first thing). `verbosity`: -1 quiet, 0 default, 1 `-v`, 2+.
pub fn init(verbosity: i8, format: LogFormat) {
    let level = match verbosity {
        i8::MIN..=-1 => Level::ERROR,
        0 => Level::INFO,
        1 => Level::DEBUG,
        _ => Level::TRACE,
    };
    JSON.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // Our events at the chosen level; the libraries' (delta_kernel narrates every snapshot
    // and commit at INFO) only when they warn, or with -vv.
    let others = match verbosity {
        i8::MIN..=-1 => Level::ERROR,
        0 | 1 => Level::WARN,
        _ => Level::TRACE,
    };
    let targets = tracing_subscriber::filter::Targets::new()
        .with_target("tokenledger", level)
        .with_default(others);
    let b = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level);
    let _ = match format {
        LogFormat::Json => b
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .finish()
            .with(targets)
            .try_init(),
        LogFormat::Human => {
            let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stderr().is_terminal();
            b.event_format(Human { color })
                .finish()
                .with(targets)
                .try_init()
        }
    };
}

/// The nightly run's summary: one event per stage (human lines, or JSON objects with a
/// `stage` field).
pub fn run_summary(out: &crate::run::RunOutcome, data_dir: &std::path::Path) {
    use crate::present;
    if JSON.load(std::sync::atomic::Ordering::Relaxed) {
        // One object per source format, its counts as fields (not a padded text table).
        let s = &out.ingest;
        tracing::info!(stage = "ingest", ingest_id = %s.ingest_id, files = s.files.len(), "ingest {}", s.ingest_id);
        for (format, t) in &s.by_format {
            tracing::info!(
                stage = "ingest",
                format = %format,
                files_new = t.files_new,
                files_unchanged = t.files_unchanged,
                rows_loaded = t.rows_loaded,
                rows_quarantined = t.rows_quarantined,
                rows_superseded = t.rows_superseded,
                "{format}"
            );
        }
        for f in s.files.iter().filter(|f| f.error.is_some()) {
            let why = f.error.as_deref().unwrap_or_default();
            tracing::warn!(stage = "ingest", file = %f.path, status = ?f.status, "{why}");
        }
    } else {
        for line in present::ingest_summary(&out.ingest).lines() {
            tracing::info!(stage = "ingest", "{line}");
        }
    }
    let rate = present::rate_summary(&out.rated, &out.price_book);
    tracing::info!(stage = "rate", "{rate}");
    for (stage, line) in present::run_stages(out, data_dir) {
        tracing::info!(stage, "{line}");
    }
}
