//! `tokenledger demo`: the first five minutes. A synthetic three-month organisation (usage,
//! cost report, invoices, credits, injected anomalies), a config with its teams, the whole
//! nightly job, the HTML chargeback, and what to look at next.
//!
//! Owns: the demo's directory layout and its config file, and the words on what to look at
//! next. Must not: do a stage's work or render (it calls `synth` and the nightly run like any
//! user would; the mail and the HTML page go through the caller's `Render`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::settings::{Flags, Settings};

/// The demo's organisation ends with October; 4 November is the first day October is final.
pub const MONTHS: (&str, u32) = ("2026-08", 3);
pub const AS_OF: &str = "2026-11-04";
pub const MONTH: &str = "2026-10";

const CONFIG: &str = r#"# The demo's config (`tokenledger demo` writes it; edit and re-run any command with
# `--config` pointing here). Without [mail.smtp], mail goes to data/outbox/ as .eml files.
data_dir = "data"
inputs = ["exports"]

[mail]
from = "FinOps <finops@example.com>"
finance = ["finance@example.com"]
shared_workspaces = ["Default"]

[anomalies.limits]
org = "6000"

[export]
focus_dir = "focus"    # the month close writes focus/2026-10/, FOCUS 1.4, once October is final

[[team]]
name = "Search"
cost_center = "CC-100"
recipients = ["search-leads@example.com"]
# Anthropic workspaces and OpenAI projects alike, by name or id.
workspaces = ["Search", "Search Ranking"]

[[team]]
name = "Support"
cost_center = "CC-200"
recipients = ["support-leads@example.com"]
workspaces = ["Support Bot", "proj_SynthSupportDesk000000002"]

[[team]]
name = "Data"
cost_center = "CC-300"
recipients = ["data-eng@example.com"]
workspaces = ["Data Platform", "Research Lab"]

[[team]]
name = "Growth"
cost_center = "CC-400"
recipients = ["growth@example.com"]
workspaces = ["Growth"]
"#;

/// What the demo wrote, for the closing words.
pub struct Demo {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub settings: Settings,
    pub synth: String,
}

/// Writes the exports and the config under `dir`, and the settings to run with.
pub fn prepare(dir: &Path, quiet: bool) -> Result<Demo> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exports = dir.join("exports");
    let synth = crate::synth::generate(&crate::synth::SynthOptions {
        out: exports,
        seed: 42,
        start: MONTHS.0.into(),
        months: MONTHS.1,
        width: "1h".into(),
        workspaces: 4,
        keys_per_workspace: 3,
        rows_per_bucket: 8,
        page_buckets: None,
        console_csv: false,
        no_cost_report: false,
        anomalies: crate::synth::Injection::All,
        // Completions only: every OpenAI line of the demo has a list price.
        openai: crate::synth::openai::Part::Tokens,
        analytics_minutes: false,
    })?;
    let config = dir.join("tokenledger.toml");
    crate::lake::io::write_file_atomic(&config, CONFIG.as_bytes())
        .with_context(|| format!("cannot write {}", config.display()))?;
    let settings = Settings::load(Flags {
        config: Some(config.clone()),
        quiet,
        as_of: Some(AS_OF.parse().expect("a valid date")),
        ..Flags::default()
    })?;
    Ok(Demo {
        dir: dir.to_path_buf(),
        config,
        settings,
        synth,
    })
}

/// What the demo did: where it wrote, the nightly run's outcome, and the HTML chargeback.
pub struct DemoOutcome {
    pub demo: Demo,
    pub run: super::RunOutcome,
    pub html: PathBuf,
}

/// `tokenledger demo`: prepare, run the nightly job, write the HTML chargeback.
pub fn run(quiet: bool, dir: &Path, render: &dyn crate::mail::Render) -> Result<DemoOutcome> {
    let demo = prepare(dir, quiet)?;
    let ds = &demo.settings;
    let run = super::run(ds, render)?;
    let month = crate::vocab::Month::parse(MONTH).map_err(anyhow::Error::msg)?;
    let html = demo.dir.join(format!("chargeback-{month}.html"));
    super::html_report(ds, month, &html, render)?;
    Ok(DemoOutcome { demo, run, html })
}

/// Where to look and what to try next.
pub fn next_steps(d: &Demo, html: &Path) -> String {
    let c = d.config.display();
    let data = d.settings.data_dir().display();
    format!(
        "\nThe demo organisation ({}) ran through the whole nightly job as of {AS_OF}.\n\
         Look at:\n  \
         {data}/outbox/{MONTH}/       the October chargeback mail: one .eml per team, one for finance\n  \
         {data}/outbox/alerts-{AS_OF}/ the alert digest (anomalies, credits)\n  \
         {}   the same chargeback as one HTML page\n  \
         {}/{MONTH}/           October in FOCUS 1.4 (Cost and Usage, Invoice Detail, Billing Period)\n\
         Try next:\n  \
         tokenledger --config {c} report --month {MONTH} --by team\n  \
         tokenledger --config {c} anomalies --alerts\n  \
         tokenledger --config {c} credits --as-of {AS_OF}\n  \
         tokenledger --config {c} limits\n  \
         tokenledger --config {c} reconcile --month {MONTH} --tie-out\n  \
         tokenledger --config {c} sql \"SELECT model_canonical, SUM(list_cost) FROM rated_usage GROUP BY 1\"\n\
         Re-running the demo changes nothing: every file is known by its content hash, every mail by the sent-ledger.\n",
        d.synth,
        html.display(),
        d.settings
            .export
            .focus_dir
            .as_deref()
            .unwrap_or(Path::new("focus"))
            .display()
    )
}
