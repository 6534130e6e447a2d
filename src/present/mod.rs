//! Presentation: typed results → terminal table, CSV, JSON, the HTML page and mail bodies
//! (`present::mail`, minijinja templates) with their charts (`present::chart`).
//!
//! Owns: rendering the generic `Grid` of cells (alignment, thousands separators, totals,
//! narrow terminals), the output rules every format keeps (CSV formula cells neutralised,
//! control characters escaped in tables, long text shortened in tables only), and turning each
//! stage's typed result into a grid — rounding money to cents here, and only here; an error as
//! one line ([`error_line`]). Tables are fitted to the width `Settings` resolved (`None`:
//! `--wide`), passed in, never read from a global.
//! Must not: import polars, read the lake, or be imported by a stage.

use std::fmt::Write as _;

pub mod anomalies;
pub mod chart;
pub mod credits;
pub mod limits;
pub mod mail;
pub mod tieout;

/// Output formats of every listing command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

impl OutputFormat {
    pub const NAMES: [&'static str; 3] = ["table", "csv", "json"];
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(OutputFormat::Table),
            "csv" => Ok(OutputFormat::Csv),
            "json" => Ok(OutputFormat::Json),
            _ => Err(format!("unknown format {s:?}; one of: table, csv, json")),
        }
    }
}

pub use crate::grid::{Cell, Grid};

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
        OutputFormat::Json => render_json(g),
        OutputFormat::Csv => render_csv(g),
        OutputFormat::Table => render_table(g, width, optional),
    }
}

/// An array of objects; integers as numbers (strings past i64), decimals as exact strings.
fn render_json(g: &Grid) -> String {
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

/// RFC 4180, plain numbers, formula-like text neutralised.
fn render_csv(g: &Grid) -> String {
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

/// A table cell as shown, and whether it is right-aligned (numbers, UNPRICED).
type Shown = (String, bool);

/// `whole`: the text as it is (escaped), never shortened.
fn show(c: &Cell, whole: bool) -> Shown {
    match c {
        Cell::Null => (String::new(), false),
        Cell::Int(v) => (group_thousands(&v.to_string()), true),
        Cell::Dec(..) => (money::group_number(&c.text()), true),
        Cell::Text(s) if whole => (escape_controls(s), s == PricingStatus::Unpriced.as_str()),
        Cell::Text(s) => (table_text(s), s == PricingStatus::Unpriced.as_str()),
    }
}

/// Columns a table never shortens: ids (a cut id finds nothing) and the reasons of errors.
fn never_cut(column: &str) -> bool {
    column == "id" || column.ends_with("_id") || column == "reason" || column == "error"
}

fn escape_controls(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Lines of prose longer than `width` broken at spaces, continued with a two-space indent
/// (tables are fitted by [`render_grid`]; this is for the sentences around them).
pub fn wrap_prose(text: &str, width: Option<usize>) -> String {
    let Some(w) = width else {
        return text.to_string();
    };
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let mut cur = String::new();
        for word in body.split(' ') {
            if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > w {
                out.push_str(cur.trim_end());
                out.push('\n');
                cur = "  ".to_string();
            } else if !cur.is_empty() && cur != "  " {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        out.push_str(&cur);
        out.push_str(nl);
    }
    out
}

/// What `tokenledger run` prints on stdout for a person: each month's chargeback by workspace
/// and model and its reconciliation, then the credits ledger.
pub fn run_text(
    out: &crate::run::RunOutcome,
    width: Option<usize>,
) -> Result<String, serde_json::Error> {
    let mut t = String::new();
    for m in &out.months {
        let _ = writeln!(t, "\n== {}: list cost by workspace and model ==", m.month);
        t.push_str(&report_text(&m.report, OutputFormat::Table, width));
        match &m.reconciliation {
            Some(r) => {
                let _ = writeln!(
                    t,
                    "\n== {}: reconciliation with the provider's cost report ==",
                    m.month
                );
                t.push_str(&reconcile_text(r, OutputFormat::Table, width)?);
            }
            None => {
                let _ = writeln!(
                    t,
                    "\n(no cost report ingested for {}: nothing to reconcile)",
                    m.month
                );
            }
        }
    }
    if let Some(l) = &out.credits {
        t.push_str("\n== credits ==\n");
        t.push_str(&credits::credits_text(l, 0, OutputFormat::Table, width)?);
    }
    Ok(t)
}

/// An error as one line: its message, then each cause once.
pub fn error_line(e: &dyn std::error::Error) -> String {
    crate::errors::chain(e)
}

/// A prose column a table narrows to fit is kept at least this wide.
const MIN_TEXT_WIDTH: usize = 20;

/// Columns of words a table may cut to fit the terminal.
const PROSE_COLUMNS: [&str; 5] = ["sentence", "cause", "excerpt", "pricing_note", "note"];

/// The laid-out table: header, body, optional footer, column widths.
struct Table {
    names: Vec<String>,
    body: Vec<Vec<Shown>>,
    footer: Option<Vec<Shown>>,
    widths: Vec<usize>,
    /// Columns dropped to fit the terminal (said under the table).
    hidden: Vec<String>,
}

impl Table {
    /// `whole`: no text cut (`--wide`); ids and reasons are never cut.
    fn new(g: &Grid, whole: bool) -> Table {
        let keep: Vec<bool> = g.columns.iter().map(|c| whole || never_cut(c)).collect();
        let cells = |r: &Vec<Cell>| r.iter().zip(&keep).map(|(c, k)| show(c, *k)).collect();
        let mut t = Table {
            names: g.columns.clone(),
            body: g.rows.iter().map(cells).collect(),
            footer: g.footer.as_ref().map(cells),
            widths: Vec::new(),
            hidden: Vec::new(),
        };
        t.measure();
        t
    }
    fn measure(&mut self) {
        let mut w: Vec<usize> = self.names.iter().map(|n| n.chars().count()).collect();
        for r in self.body.iter().chain(self.footer.iter()) {
            for (w, (s, _)) in w.iter_mut().zip(r) {
                *w = (*w).max(s.chars().count());
            }
        }
        self.widths = w;
    }
    /// Drops the `optional` columns, in order, until the table fits `limit` characters.
    fn fit(&mut self, limit: usize, optional: &[&str]) {
        for opt in optional {
            if self.widths.iter().sum::<usize>() + 2 * self.widths.len() <= limit {
                break;
            }
            if let Some(i) = self.names.iter().position(|n| n == opt) {
                // The footer's label (TOTAL) moves to the next column when its own goes.
                if let Some(f) = self.footer.as_mut()
                    && i == 0
                    && f.len() > 1
                    && f[1].0.is_empty()
                {
                    f[1] = std::mem::take(&mut f[0]);
                }
                self.hidden.push(self.names.remove(i));
                for r in self.body.iter_mut().chain(self.footer.iter_mut()) {
                    r.remove(i);
                }
                self.measure();
            }
        }
    }
    /// Then narrows the widest prose column ([`PROSE_COLUMNS`]: sentences, causes, reasons;
    /// never an id, a name or a number) to no less than [`MIN_TEXT_WIDTH`], cutting its cells
    /// with `…`, until the table fits `limit` (CSV and JSON keep every word).
    fn narrow(&mut self, limit: usize) {
        loop {
            let total = self.widths.iter().sum::<usize>() + 2 * self.widths.len();
            if total <= limit {
                return;
            }
            let prose = |i: usize| PROSE_COLUMNS.contains(&self.names[i].as_str());
            let Some(i) = (0..self.widths.len())
                .filter(|&i| prose(i) && self.widths[i] > MIN_TEXT_WIDTH)
                .max_by_key(|&i| self.widths[i])
            else {
                return;
            };
            let w = self.widths[i]
                .saturating_sub(total - limit)
                .max(MIN_TEXT_WIDTH);
            let cut = |s: &mut String| {
                if s.chars().count() > w {
                    *s = s.chars().take(w - 1).chain(['…']).collect();
                }
            };
            cut(&mut self.names[i]);
            for r in self.body.iter_mut().chain(self.footer.iter_mut()) {
                if let Some(c) = r.get_mut(i) {
                    cut(&mut c.0);
                }
            }
            self.measure();
        }
    }
    fn line(cells: Vec<String>) -> String {
        cells.join("  ").trim_end().to_string()
    }
    fn row(&self, r: &[Shown]) -> String {
        Self::line(
            r.iter()
                .zip(&self.widths)
                .map(|((s, num), w)| {
                    if *num {
                        format!("{s:>w$}")
                    } else {
                        format!("{s:<w$}")
                    }
                })
                .collect(),
        )
    }
}

/// Right-aligned numbers with thousands separators, a rule, a totals row or a row count; a
/// table wider than `width` drops the `optional` columns first.
fn render_table(g: &Grid, width: Option<usize>, optional: &[&str]) -> String {
    let mut t = Table::new(g, width.is_none());
    if let Some(limit) = width {
        t.fit(limit, optional);
        t.narrow(limit);
    }
    let mut out = String::new();
    let header = t
        .names
        .iter()
        .zip(&t.widths)
        .map(|(n, w)| format!("{n:<w$}"))
        .collect();
    let _ = writeln!(out, "{}", Table::line(header));
    let rule = Table::line(t.widths.iter().map(|w| "-".repeat(*w)).collect());
    let _ = writeln!(out, "{rule}");
    for r in &t.body {
        let _ = writeln!(out, "{}", t.row(r));
    }
    match &t.footer {
        Some(f) => {
            let _ = writeln!(out, "{rule}");
            let _ = writeln!(out, "{}", t.row(f));
        }
        None => {
            let n = t.body.len();
            let _ = writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" });
        }
    }
    if !t.hidden.is_empty() {
        let note = format!(
            "(hidden to fit {} columns: {}; --wide or --format csv shows every column)\n",
            width.unwrap_or_default(),
            t.hidden.join(", ")
        );
        out.push_str(&wrap_prose(&note, width));
    }
    out
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
    let mut out = escape_controls(&s.chars().take(TABLE_TEXT_MAX).collect::<String>());
    if s.chars().nth(TABLE_TEXT_MAX).is_some() {
        out.push('…');
    }
    out
}

pub use crate::money::group_thousands;

// ---- stage results as grids -------------------------------------------------------------

use crate::money::{self, Money};
use crate::vocab::{COUNT_COLUMNS, PricingStatus};

/// Report columns a narrow terminal may drop first.
/// What a table of a query result (`usage`, `quarantine`) drops first to fit the terminal.
pub const FRAME_OPTIONAL_COLUMNS: [&str; 10] = [
    "cache_write_12h_tokens",
    "cache_write_30m_tokens",
    "web_search_requests",
    "cache_write_1h_tokens",
    "cache_write_5m_tokens",
    "workspace_id",
    "cache_read_tokens",
    "ingest_id",
    "usage_rows",
    "excerpt",
];

/// What the price book's table drops first to fit the terminal (`--wide` or CSV: all).
pub const BOOK_OPTIONAL_COLUMNS: [&str; 12] = [
    "check",
    "origin",
    "us_geo_factor",
    "batch_factor",
    "long_context_output",
    "long_context_input",
    "cache_write_12h",
    "cache_write_30m",
    "provider",
    "valid_to",
    "cache_write_1h",
    "service_tier",
];

/// The price book for people: a table names the unit once above short column names; CSV and
/// JSON carry it in every price column's name (`input_usd_per_mtok`).
pub fn book_text(
    book: &PriceBook,
    day: Option<NaiveDate>,
    format: OutputFormat,
    width: Option<usize>,
) -> String {
    let mut g = book_grid(book, day);
    if format != OutputFormat::Table {
        return render_grid(&g, format, width, &[]);
    }
    for c in &mut g.columns {
        if let Some(short) = c.strip_suffix("_usd_per_mtok") {
            *c = short.to_string();
        }
    }
    format!(
        "list prices in USD per million tokens (MTok); batch_factor and us_geo_factor multiply them\n\n{}",
        render_grid(&g, format, width, &BOOK_OPTIONAL_COLUMNS)
    )
}

pub const REPORT_OPTIONAL_COLUMNS: [&str; 11] = [
    "list_cost_usd_exact",
    "cache_write_12h_tokens",
    "cache_write_30m_tokens",
    "web_search_requests",
    "cache_write_1h_tokens",
    "cache_write_5m_tokens",
    "cache_read_tokens",
    "workspace_id",
    "api_key_id",
    "uncached_input_tokens",
    "output_tokens",
];

fn opt_text(v: &Option<String>) -> Cell {
    v.clone().map(Cell::Text).unwrap_or(Cell::Null)
}

fn exact(m: Money) -> Cell {
    Cell::Dec(m.units(), money::SCALE as usize)
}

/// Money in a grid: to the cent in a table, every digit in CSV and JSON.
pub fn money_cell(m: Money, format: OutputFormat) -> Cell {
    match format {
        OutputFormat::Table => Cell::Dec(m.round_cents(), 2),
        _ => exact(m),
    }
}

/// The cents of the priced lines: largest remainder over the lines; when the first column is
/// the team, top down like the bill (the total's cents to the teams, then each team's to its
/// lines), so a team's lines show the cents its mail shows.
fn line_cents(r: &crate::report::Report, priced: &[i128]) -> Vec<i128> {
    if r.dim_columns.first() != Some(&"team") || r.dim_columns.len() < 2 {
        return money::allocate_cents(priced);
    }
    let teams: Vec<Option<&String>> = r
        .lines
        .iter()
        .filter(|l| l.list_cost.is_some())
        .map(|l| l.dims.first().and_then(Option::as_ref))
        .collect();
    let mut order: Vec<Option<&String>> = Vec::new();
    for t in &teams {
        if !order.contains(t) {
            order.push(*t);
        }
    }
    let sums: Vec<i128> = order
        .iter()
        .map(|t| {
            teams
                .iter()
                .zip(priced)
                .filter(|(x, _)| *x == t)
                .map(|(_, u)| *u)
                .sum()
        })
        .collect();
    let team_cents = money::allocate_cents(&sums);
    let mut out = vec![0; priced.len()];
    for (t, c) in order.iter().zip(team_cents) {
        let idx: Vec<usize> = (0..priced.len()).filter(|&i| teams[i] == *t).collect();
        let units: Vec<i128> = idx.iter().map(|&i| priced[i]).collect();
        for (i, v) in idx.into_iter().zip(money::allocate_cents_to(&units, c)) {
            out[i] = v;
        }
    }
    out
}

/// The chargeback as a grid: `list_cost_usd` rounded to cents so the lines add up to the
/// rounded total (largest remainder), beside `list_cost_usd_exact`; a totals row. An unpriced
/// line has no cost (null in CSV and JSON; the word UNPRICED only in a table).
pub fn report_grid(r: &crate::report::Report, format: OutputFormat) -> Grid {
    let mut columns: Vec<String> = r.dim_columns.iter().map(|c| c.to_string()).collect();
    columns.push("pricing_status".into());
    columns.extend(COUNT_COLUMNS.iter().map(|c| c.to_string()));
    columns.push("list_cost_usd".into());
    columns.push("list_cost_usd_exact".into());
    let priced: Vec<i128> = r
        .lines
        .iter()
        .filter_map(|l| l.list_cost.map(Money::units))
        .collect();
    let mut cents = r
        .cents
        .clone()
        .unwrap_or_else(|| line_cents(r, &priced))
        .into_iter();
    let rows = r
        .lines
        .iter()
        .map(|l| {
            let mut row: Vec<Cell> = l.dims.iter().map(opt_text).collect();
            row.push(Cell::Text(l.status.as_str().into()));
            row.extend(l.counts.iter().map(|c| Cell::Int(*c)));
            match l.list_cost {
                Some(m) => {
                    row.push(Cell::Dec(cents.next().expect("one per priced line"), 2));
                    row.push(exact(m));
                }
                None if format == OutputFormat::Table => {
                    row.push(Cell::Text(PricingStatus::Unpriced.as_str().into()));
                    row.push(Cell::Null);
                }
                None => row.extend([Cell::Null, Cell::Null]),
            }
            row
        })
        .collect();
    let ndims = r.dim_columns.len();
    let mut footer = vec![Cell::Null; columns.len()];
    footer[0] = Cell::Text("TOTAL".into());
    // How lines without a book price fared: UNPRICED (in no figure) or priced from the
    // provider's list amount (in the total, said here).
    let from_list = r
        .lines
        .iter()
        .filter(|l| l.status == PricingStatus::ProviderList)
        .count();
    let said: Vec<String> = [(r.unpriced_lines, "UNPRICED"), (from_list, "provider_list")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if !said.is_empty() {
        footer[ndims] = Cell::Text(said.join(", "));
    }
    for (k, t) in r.total_counts.iter().enumerate() {
        footer[ndims + 1 + k] = Cell::Int(*t);
    }
    let n = columns.len();
    footer[n - 2] = Cell::Dec(r.total_cost.round_cents(), 2);
    footer[n - 1] = exact(r.total_cost);
    Grid {
        columns,
        rows,
        footer: Some(footer),
    }
}

/// The reconciliation's differences (every line that did not match).
/// A charge as a table shows it: the cost report's `token_type` by its price-book name
/// (`cache_creation.ephemeral_5m_input_tokens` → `cache_write_5m`); CSV and JSON keep the
/// provider's word.
fn charge_label(charge: &str, format: OutputFormat) -> String {
    let short = crate::vocab::TokenClass::ALL
        .iter()
        .find(|c| c.cost_report_type() == charge)
        .map(|c| c.price_field().to_string());
    match (format, short) {
        (OutputFormat::Table, Some(s)) => s,
        _ => charge.to_string(),
    }
}

pub fn reconcile_lines(r: &crate::reconcile::Reconciliation, format: OutputFormat) -> Grid {
    // A table shows each line to the cent (the status says whether it matched within the
    // tolerance); CSV and JSON carry every digit.
    let money_cell = |m: Money| money_cell(m, format);
    Grid {
        columns: [
            "provider",
            "day",
            "workspace_id",
            "workspace_name",
            "model",
            "charge",
            "ours_usd",
            "provider_usd",
            "difference_usd",
            "status",
            "cause",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .lines
            .iter()
            .map(|l| {
                vec![
                    Cell::Text(l.provider.into()),
                    Cell::Text(l.day.clone()),
                    opt_text(&l.workspace_id),
                    opt_text(&l.workspace_name),
                    opt_text(&l.model),
                    Cell::Text(charge_label(&l.charge, format)),
                    money_cell(l.ours_usd),
                    money_cell(l.provider_usd),
                    money_cell(l.difference_usd),
                    Cell::Text(l.status.as_str().into()),
                    Cell::Text(l.cause.clone()),
                ]
            })
            .collect(),
        footer: None,
    }
}

/// Per-workspace totals, each money column rounded so that it adds up to its total.
pub fn reconcile_workspaces(r: &crate::reconcile::Reconciliation) -> Grid {
    let col = |f: fn(&crate::reconcile::WorkspaceTotal) -> Money| -> Vec<i128> {
        r.per_workspace.iter().map(|w| f(w).units()).collect()
    };
    let cols = [
        col(|w| w.ours_usd),
        col(|w| w.provider_usd),
        col(|w| w.difference_usd),
        col(|w| w.unexplained_usd),
    ];
    let cents: Vec<Vec<i128>> = cols.iter().map(|c| money::allocate_cents(c)).collect();
    let rows = r
        .per_workspace
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut row = vec![
                Cell::Text(w.provider.into()),
                opt_text(&w.workspace_id),
                opt_text(&w.workspace_name),
            ];
            row.extend(cents.iter().map(|c| Cell::Dec(c[i], 2)));
            row
        })
        .collect();
    let mut footer = vec![Cell::Text("TOTAL".into()), Cell::Null, Cell::Null];
    footer.extend(
        [
            r.ours_usd,
            r.provider_usd,
            r.difference_usd,
            r.unexplained_usd,
        ]
        .iter()
        .map(|m| Cell::Dec(m.round_cents(), 2)),
    );
    Grid {
        columns: [
            "provider",
            "workspace_id",
            "workspace_name",
            "ours_usd",
            "provider_usd",
            "difference_usd",
            "unexplained_usd",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        footer: Some(footer),
    }
}

// ---- the price book ---------------------------------------------------------------------

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::pricing::{PriceBook, Rates};

/// A rate exactly: the decimal's own digits (six decimals shown), never rounded or defaulted.
fn rate_cell(d: Decimal) -> Cell {
    let d = d.normalize();
    match 6u32.checked_sub(d.scale()) {
        Some(up) => Cell::Dec(d.mantissa() * 10i128.pow(up), 6),
        None => Cell::Dec(d.mantissa(), d.scale() as usize),
    }
}

/// Validity, origin and the `check` flag: the last columns of every row of the book.
fn dated_cells<T>(r: &crate::pricing::Dated<T>) -> [Cell; 4] {
    let date = |d: Option<NaiveDate>| d.map(|d| Cell::Text(d.to_string())).unwrap_or(Cell::Null);
    let check = if r.check { "check" } else { "" };
    [
        date(r.valid_from),
        date(r.valid_to),
        Cell::Text(r.origin.label()),
        Cell::Text(check.into()),
    ]
}

/// One model's row: base rates (of its tier), long-context rates, batch and `us` factors in
/// force at `at`; a class without a price is empty (never 0).
fn model_row(book: &PriceBook, r: &crate::pricing::Dated<Rates>, at: NaiveDate) -> Vec<Cell> {
    let lc = book.long_context(&r.provider, &r.model, at);
    let f = |tier: Option<&str>, geo: Option<&str>| {
        book.factor(&r.provider, &r.model, at, tier, geo)
            .map(rate_cell)
            .unwrap_or(Cell::Null)
    };
    let opt = |v: Option<Decimal>| v.map(rate_cell).unwrap_or(Cell::Null);
    let mut row = vec![
        Cell::Text(r.provider.clone()),
        Cell::Text(r.model.clone()),
        Cell::Text(r.service_tier.as_deref().unwrap_or("standard").into()),
    ];
    row.extend(r.value.iter().map(|v| opt(*v)));
    let lc_of = |k: usize| {
        lc.and_then(|l| l.value[k])
            .map(rate_cell)
            .unwrap_or(Cell::Null)
    };
    row.push(lc_of(0));
    row.push(lc_of(4));
    row.push(f(Some("batch"), None));
    row.push(f(None, Some("us")));
    row.extend(dated_cells(r));
    row
}

/// The book as a grid: per model and tier row, the rates in force on `day` (or every dated
/// row), then the unit prices.
pub fn book_grid(book: &PriceBook, day: Option<NaiveDate>) -> Grid {
    let mut rows: Vec<&crate::pricing::Dated<Rates>> = match day {
        Some(d) => {
            let mut seen = std::collections::BTreeSet::new();
            book.models
                .iter()
                .filter(|r| {
                    seen.insert((r.provider.clone(), r.model.clone(), r.service_tier.clone()))
                })
                .filter_map(|r| book.tiered(&r.provider, &r.model, d, r.service_tier.as_deref()))
                .collect()
        }
        None => book.models.iter().collect(),
    };
    rows.sort_by(|a, b| {
        (&a.provider, &a.model, &a.service_tier, a.valid_from).cmp(&(
            &b.provider,
            &b.model,
            &b.service_tier,
            b.valid_from,
        ))
    });
    let mut columns: Vec<String> = vec!["provider".into(), "model".into(), "service_tier".into()];
    columns.extend(
        crate::vocab::TokenClass::ALL
            .iter()
            .map(|c| format!("{}_usd_per_mtok", c.price_field())),
    );
    columns.extend(
        [
            "long_context_input_usd_per_mtok",
            "long_context_output_usd_per_mtok",
            "batch_factor",
            "us_geo_factor",
            "valid_from",
            "valid_to",
            "origin",
            "check",
        ]
        .map(String::from),
    );
    let mut g = Grid {
        columns,
        rows: Vec::new(),
        footer: None,
    };
    for r in rows {
        let at = day.or(r.valid_from).unwrap_or(NaiveDate::MIN);
        g.rows.push(model_row(book, r, at));
    }
    for u in book
        .unit_prices
        .iter()
        .filter(|u| day.is_none_or(|d| u.in_force(d)))
    {
        let mut row = vec![
            Cell::Text(u.provider.clone()),
            Cell::Text(format!("({} per unit)", u.value.0)),
            Cell::Null,
            rate_cell(u.value.1),
        ];
        row.extend(std::iter::repeat_n(Cell::Null, crate::vocab::N_CLASSES + 3));
        row.extend(dated_cells(u));
        g.rows.push(row);
    }
    g
}

// ---- what commands say ------------------------------------------------------------------

use crate::ingest::{FileStatus, IngestSummary};

/// Human summary of an ingest, for stderr.
pub fn ingest_summary(s: &IngestSummary) -> String {
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

pub fn rate_summary(s: &crate::rating::RateSummary, book: &str) -> String {
    format!(
        "rated {} row(s) in {} month(s) ({} unpriced); {} month(s) already current (price book {book})",
        s.rows,
        s.months_rated.len(),
        s.unpriced_rows,
        s.months_fresh.len(),
    )
}

/// The chargeback as text in `format` (a table fits `width` by dropping optional columns).
pub fn report_text(
    r: &crate::report::Report,
    format: OutputFormat,
    width: Option<usize>,
) -> String {
    render_grid(
        &report_grid(r, format),
        format,
        width,
        &REPORT_OPTIONAL_COLUMNS,
    )
}

/// Where a month stands, in one sentence: provisional until when, or final; a final month
/// whose chargeback went out with another total is said to be restated, with both totals.
/// `total` is the total shown now (the report's; `None` for the reconciliation).
pub fn standing_text(s: &crate::report::Standing, total: Option<Money>) -> String {
    use crate::vocab::Close;
    let zone = if s.timezone == "UTC" {
        "UTC days".to_string()
    } else {
        format!("days in {}; daily buckets keep their UTC date", s.timezone)
    };
    let head = format!("{} ({zone})", s.month);
    match (s.close, total.and_then(|t| s.restated(t).map(|r| (t, r)))) {
        (Close::Provisional { final_on }, _) => format!(
            "{head} is provisional: late provider data may still change it; final on {final_on}"
        ),
        (Close::Final, Some((now, (then, day)))) => format!(
            "{head} is final and RESTATED since its final chargeback of {day}: ${} then, ${} now \
             ({}); the next run mails a correction",
            mail::usd(then.round_cents()),
            mail::usd(now.round_cents()),
            mail::change(now.round_cents(), Some(then.round_cents())).unwrap_or_default(),
        ),
        (Close::Final, None) => match s.final_mailed {
            Some((_, day)) => format!("{head} is final; its chargeback went out on {day}"),
            None => format!("{head} is final"),
        },
    }
}

/// The reconciliation as text: JSON is the whole typed result; CSV the differences; a table
/// the headline, the differences and the per-workspace totals.
/// The coarse days of a reconciliation per grain, as ranges of consecutive days.
fn coarse_grains(r: &crate::reconcile::Reconciliation) -> Vec<((&str, &str), String)> {
    let mut by: std::collections::BTreeMap<(&str, &str), Vec<&str>> = Default::default();
    for (provider, days) in &r.coarse_days {
        for (day, grain) in days {
            by.entry((provider, grain)).or_default().push(day);
        }
    }
    by.into_iter()
        .map(|(g, days)| {
            let text = match (days.first(), days.last()) {
                (Some(a), Some(b)) if a != b => format!("{a} to {b} ({} days)", days.len()),
                (Some(a), _) => (*a).to_string(),
                _ => String::new(),
            };
            (g, text)
        })
        .collect()
}

/// The notes on days compared at a coarser grain than the charge, per provider and grain.
fn coarse_notes(r: &crate::reconcile::Reconciliation, width: Option<usize>) -> String {
    let mut out = String::new();
    for ((provider, grain), days) in coarse_grains(r) {
        let note = if provider == crate::vocab::Provider::OpenAi.as_str() {
            format!(
                "note: OpenAI's Costs API of {days} is compared per {grain} (charge `all \
                 charges`); its line items are kept in cost.description\n"
            )
        } else {
            format!(
                "note: the {provider} cost report of {days} is not grouped by \
                 description: compared per {grain} (charge `all charges`); export it \
                 with group_by[]=description to name the cause of a difference\n"
            )
        };
        out.push_str(&wrap_prose(&note, width));
    }
    out
}

pub fn reconcile_text(
    r: &crate::reconcile::Reconciliation,
    format: OutputFormat,
    width: Option<usize>,
) -> Result<String, serde_json::Error> {
    let lines = reconcile_lines(r, format);
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(r)? + "\n",
        OutputFormat::Csv => render_grid(&lines, format, None, &[]),
        OutputFormat::Table => {
            let mut out = format!(
                "reconcile {}: {} line(s) matched within ${}, {} explained, {} unexplained\n",
                r.month,
                r.lines_matched,
                r.tolerance_usd.to_string().trim_end_matches('0'),
                r.lines_explained,
                r.lines_unexplained
            );
            for d in &r.price_drift {
                out.push_str(&wrap_prose(
                    &format!(
                        "PRICE DRIFT: {} {} from {} ({} day(s)): our list rate ${}/M, the \
                         provider's ${}/M; ${} not in our list cost — check the price book \
                         (tokenledger prices) and add an override (exit code 3)\n",
                        d.model,
                        d.token_type,
                        d.first_day,
                        d.days,
                        d.our_rate.normalize(),
                        d.provider_rate.normalize(),
                        d.impact_usd.usd()
                    ),
                    width,
                ));
            }
            out.push_str(&coarse_notes(r, width));
            // One provider: its name is the headline's, the first column to give up.
            let single = r.providers.len() < 2;
            let optional = |cols: &[&'static str]| -> Vec<&'static str> {
                let mut v = cols.to_vec();
                if single {
                    v.insert(0, "provider");
                } else {
                    v.push("provider");
                }
                v
            };
            if !r.lines.is_empty() {
                out.push('\n');
                out.push_str(&render_grid(
                    &lines,
                    format,
                    width,
                    &optional(&["workspace_id", "provider_usd", "status", "ours_usd"]),
                ));
            }
            out.push('\n');
            out.push_str(&render_grid(
                &reconcile_workspaces(r),
                format,
                width,
                &optional(&["workspace_id"]),
            ));
            if r.tie_outs.is_empty() {
                out.push_str("\n(no invoice for this month: nothing to tie out)\n");
            }
            out.push_str(&tieout::tie_outs_text(&r.tie_outs, width));
            out
        }
    })
}

/// What a pull did, in lines: the totals, then each window that did not land (provider,
/// endpoint, range, reason), fetched again next time.
pub fn pull_summary(p: &crate::pull::PullOutcome) -> String {
    let mut out = format!(
        "pull {}: {} of {} window(s) landed; {} request(s) ({} retried), {} page(s), {:.1} MiB in {:.1} s",
        p.pull_id,
        p.landed,
        p.windows,
        p.requests,
        p.retries,
        p.pages,
        p.bytes as f64 / 1048576.0,
        p.seconds
    );
    if p.pruned > 0 {
        out.push_str(&format!("; {} old pull folder(s) pruned", p.pruned));
    }
    out.push('\n');
    for i in &p.incomplete {
        out.push_str(&format!(
            "  NOT PULLED {} {} {}: {} (the data before stays; fetched again next time)\n",
            i.provider.as_str(),
            i.endpoint,
            i.range,
            i.reason
        ));
    }
    out
}

/// What `tokenledger pull` says: the pull, then the ingest of what landed.
pub fn pull_text(p: &crate::pull::PullOutcome, ingest: &crate::ingest::IngestSummary) -> String {
    format!("{}{}", pull_summary(p), ingest_summary(ingest))
        .trim_end()
        .to_string()
}

/// What `tokenledger export focus` says: each file with its rows, then the exact totals.
pub fn focus_text(e: &crate::run::export::FocusExport) -> String {
    let mut out = format!("FOCUS 1.4 export of {} (UTC month):\n", e.month);
    for f in &e.files {
        out.push_str(&format!(
            "  {:<15} {:>9} rows  {}\n",
            f.dataset,
            crate::money::group_thousands(&f.rows.to_string()),
            f.path.display()
        ));
    }
    out.push_str(&format!(
        "  ListCost {}  ContractedCost {}  EffectiveCost {}  BilledCost {} (exact sums of cost_and_usage)",
        e.list_cost, e.contracted_cost, e.effective_cost, e.billed_cost
    ));
    if e.unpriced_groups > 0 {
        out.push_str(&format!(
            "\n  {} usage group(s) UNPRICED: their cost columns are 0 (x_PricingStatus = UNPRICED); add a [[prices.model]] override (exit code 3)",
            e.unpriced_groups
        ));
    }
    out
}

/// `run --json`: every stage's outcome, the reasons to look and the exit code.
pub fn run_json(
    o: &crate::run::RunOutcome,
    reviews: &[crate::vocab::Review],
    exit_code: i32,
) -> serde_json::Value {
    let months: Vec<serde_json::Value> = o
        .months
        .iter()
        .map(|m| {
            serde_json::json!({
                "month": m.month,
                "list_cost_usd": m.report.total_cost.to_string(),
                "unpriced_lines": m.report.unpriced_lines,
                "reconciliation": m.reconciliation.as_ref().map(|r| serde_json::json!({
                    "lines_unexplained": r.lines_unexplained,
                    "unexplained_usd": r.unexplained_usd.to_string(),
                    "invoices": r.tie_outs.iter().map(|t| serde_json::json!({
                        "invoice_number": t.invoice_number,
                        "needs_review": t.needs_review,
                        "unexplained_usd": t.unexplained_usd.to_string(),
                    })).collect::<Vec<_>>(),
                })),
            })
        })
        .collect();
    serde_json::json!({
        "pull": o.pull,
        "ingest": o.ingest,
        "rate": {"summary": o.rated, "price_book": o.price_book},
        "months": months,
        "credits": o.credits.as_ref().map(|l| serde_json::json!({"as_of": l.as_of, "findings": l.findings})),
        "anomalies": {"incidents": o.incidents},
        "chargeback": o.chargeback,
        "focus_export": o.focus,
        "alerts": o.alerts,
        "undelivered": o.undelivered,
        "freshness": {"spans": o.freshness.spans, "stale": o.stale},
        "reviews": reviews,
        "new_findings": o.new_findings,
        "exit_code": exit_code,
    })
}

/// Where each provider's data ends: "data: anthropic usage through 2026-10-31 (4 days old,
/// STALE), anthropic cost through …".
pub fn freshness_line(f: &crate::freshness::Freshness, stale: &[crate::freshness::Span]) -> String {
    if f.spans.is_empty() {
        return "data: no usage or cost export in the lake".into();
    }
    let parts: Vec<String> = f
        .spans
        .iter()
        .map(|s| {
            let flag = if stale.contains(s) { ", STALE" } else { "" };
            format!(
                "{} {} through {} ({} day(s) old{flag})",
                s.provider,
                s.table,
                s.last_day(),
                s.age_days
            )
        })
        .collect();
    format!("data: {}", parts.join(", "))
}

/// One line per stage after ingest and rating (what `run` logs), with the stage's name.
pub fn run_stages(
    o: &crate::run::RunOutcome,
    data_dir: &std::path::Path,
) -> Vec<(&'static str, String)> {
    let mut s: Vec<(&'static str, String)> = Vec::new();
    if let Some(p) = &o.pull {
        s.extend(pull_summary(p).lines().map(|l| ("pull", l.to_string())));
    }
    s.push(("freshness", freshness_line(&o.freshness, &o.stale)));
    for m in &o.months {
        let rec = match &m.reconciliation {
            Some(r) if r.lines_unexplained > 0 => {
                format!("{} line(s) unexplained", r.lines_unexplained)
            }
            Some(_) => "reconciled with the cost report".into(),
            None => "no cost report".into(),
        };
        let total = mail::usd(m.report.total_cost.round_cents());
        s.push((
            "report",
            format!("report {}: ${total} list cost; {rec}", m.month),
        ));
    }
    let credits = match &o.credits {
        Some(l) => format!("credits: {} finding(s) as of {}", l.findings.len(), l.as_of),
        None => "credits: no credit lots in the lake".to_string(),
    };
    s.push(("credits", credits));
    let days = crate::run::ALERT_DAYS;
    let n = o.incidents.len();
    s.push((
        "anomalies",
        format!("anomalies: {n} incident(s) alerting in the last {days} days"),
    ));
    let close = match &o.chargeback {
        Some(c) => {
            use crate::mail::Status;
            let count = |st: Status| c.deliveries.iter().filter(|d| d.status == st).count();
            format!(
                "month close {} ({}): {} sent, {} written to {}, {} already delivered, {} queued",
                c.month,
                c.close.as_str(),
                count(Status::Sent),
                count(Status::Written),
                crate::lake::display_rel(data_dir, &c.outbox),
                count(Status::Skipped),
                count(Status::Queued)
            )
        }
        None => "month close: no final month to mail yet".to_string(),
    };
    s.push(("month_close", close));
    let alerts = match &o.alerts {
        Some(a) if a.digests.is_empty() => "alerts: nothing new to mail".to_string(),
        Some(a) => {
            let d: Vec<String> = a
                .digests
                .iter()
                .map(|(to, n, st)| format!("{n} to {to} ({st})"))
                .collect();
            format!("alerts: {}", d.join(", "))
        }
        None => "alerts: no recipients".to_string(),
    };
    s.push(("alerts", alerts));
    if o.undelivered > 0 {
        let q = o.undelivered;
        s.push((
            "mail",
            format!("mail: {q} message(s) queued for the next run"),
        ));
    }
    s
}
