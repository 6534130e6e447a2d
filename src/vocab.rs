//! The words every stage shares, parsed once at the edge.
//!
//! Owns: `Month` (a calendar month, `YYYY-MM`), `TokenClass` (the seven additive token classes
//! and every name each one has: lake column, price field, rated columns, the cost report's
//! `token_type`), `Provider`, `PricingStatus`. Must not: import anything of the crate.

use std::fmt;

/// A calendar month, the lake's partition key: exactly `YYYY-MM`, month 01–12.
/// The team of cost no team owns (`sql/report.sql` says it too).
pub const UNALLOCATED: &str = "Unallocated";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    year: u16,
    month: u8,
}

impl Month {
    /// Parses `YYYY-MM` strictly: no sign, no spaces, two-digit month (so `2026-1`, ` 2026-10`
    /// and `+2026-10` are refused with a message, never guessed).
    pub fn parse(s: &str) -> Result<Month, String> {
        let bad = || format!("{s:?} is not a month; use YYYY-MM, e.g. 2026-10");
        let b = s.as_bytes();
        if b.len() != 7
            || b[4] != b'-'
            || !b
                .iter()
                .enumerate()
                .all(|(i, c)| i == 4 || c.is_ascii_digit())
        {
            return Err(bad());
        }
        let year: u16 = s[..4].parse().map_err(|_| bad())?;
        let month: u8 = s[5..].parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || year == 0 {
            return Err(bad());
        }
        Ok(Month { year, month })
    }
    pub fn year(self) -> u16 {
        self.year
    }
    pub fn month(self) -> u8 {
        self.month
    }
    /// `YYYY-MM`.
    pub fn key(self) -> String {
        self.to_string()
    }
    /// The month before (`None` before year 1).
    pub fn previous(self) -> Option<Month> {
        match (self.year, self.month) {
            (1, 1) => None,
            (y, 1) => Some(Month {
                year: y - 1,
                month: 12,
            }),
            (y, m) => Some(Month {
                year: y,
                month: m - 1,
            }),
        }
    }
    /// The month after (`None` after 9999-12).
    pub fn next(self) -> Option<Month> {
        match (self.year, self.month) {
            (9999, 12) => None,
            (y, 12) => Some(Month {
                year: y + 1,
                month: 1,
            }),
            (y, m) => Some(Month {
                year: y,
                month: m + 1,
            }),
        }
    }
    /// The UTC month partitions a business month can have rows in: the month and its two
    /// neighbours (a zone east of UTC starts the month in the last hours of the UTC month
    /// before; one west of UTC ends it in the first hours of the next).
    pub fn partitions(self) -> Vec<String> {
        [self.previous(), Some(self), self.next()]
            .into_iter()
            .flatten()
            .map(Month::key)
            .collect()
    }
    /// Its first day.
    pub fn first_day(self) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(self.year.into(), self.month.into(), 1)
            .expect("a month has a first day")
    }
    /// The first day of the month after (its exclusive end; after 9999-12, `NaiveDate::MAX`).
    pub fn end_day(self) -> chrono::NaiveDate {
        self.next().map_or(chrono::NaiveDate::MAX, Month::first_day)
    }
    /// The month of a day.
    pub fn of(d: chrono::NaiveDate) -> Option<Month> {
        use chrono::Datelike;
        Month::parse(&format!("{:04}-{:02}", d.year(), d.month())).ok()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A month serialises as its `YYYY-MM` text.
impl serde::Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Month {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Month::parse(s)
    }
}

/// A clap value parser: the month, checked, in its canonical text.
pub fn parse_month(s: &str) -> Result<String, String> {
    Month::parse(s).map(|m| m.key())
}

/// How many token classes a usage row has ([`TokenClass::ALL`]).
pub const N_CLASSES: usize = 7;
/// How many count columns a usage row has: the token classes, then web search requests.
pub const N_COUNTS: usize = N_CLASSES + 1;
/// The index of web search requests in every count, rate and cost list.
pub const WEB_SEARCH: usize = N_CLASSES;

/// The seven additive token classes of a usage row, in the lake's column order. Every list of
/// token classes in the crate is `TokenClass::ALL`. The first five are Anthropic's (cache
/// writes of 5 minutes and 1 hour); OpenAI adds cache writes of 30 minutes and 12 hours
/// (`input_cache_write_30m_tokens`, `input_cache_write_12h_tokens`). The new classes come
/// last, so an index below 5 means what it meant in schema 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenClass {
    UncachedInput,
    CacheWrite5m,
    CacheWrite1h,
    CacheRead,
    Output,
    CacheWrite30m,
    CacheWrite12h,
}

impl TokenClass {
    pub const ALL: [TokenClass; N_CLASSES] = [
        TokenClass::UncachedInput,
        TokenClass::CacheWrite5m,
        TokenClass::CacheWrite1h,
        TokenClass::CacheRead,
        TokenClass::Output,
        TokenClass::CacheWrite30m,
        TokenClass::CacheWrite12h,
    ];

    /// The count column in `usage` and `rated_usage`.
    pub const fn column(self) -> &'static str {
        match self {
            TokenClass::UncachedInput => "uncached_input_tokens",
            TokenClass::CacheWrite5m => "cache_write_5m_tokens",
            TokenClass::CacheWrite1h => "cache_write_1h_tokens",
            TokenClass::CacheRead => "cache_read_tokens",
            TokenClass::Output => "output_tokens",
            TokenClass::CacheWrite30m => "cache_write_30m_tokens",
            TokenClass::CacheWrite12h => "cache_write_12h_tokens",
        }
    }
    /// The field of a `[[model]]` row of the price book ($/MTok).
    pub const fn price_field(self) -> &'static str {
        match self {
            TokenClass::UncachedInput => "input",
            TokenClass::CacheWrite5m => "cache_write_5m",
            TokenClass::CacheWrite1h => "cache_write_1h",
            TokenClass::CacheRead => "cache_read",
            TokenClass::Output => "output",
            TokenClass::CacheWrite30m => "cache_write_30m",
            TokenClass::CacheWrite12h => "cache_write_12h",
        }
    }
    /// The rate column of `rated_usage` ($/MTok in force).
    pub const fn rate_column(self) -> &'static str {
        match self {
            TokenClass::UncachedInput => "rate_uncached_input",
            TokenClass::CacheWrite5m => "rate_cache_write_5m",
            TokenClass::CacheWrite1h => "rate_cache_write_1h",
            TokenClass::CacheRead => "rate_cache_read",
            TokenClass::Output => "rate_output",
            TokenClass::CacheWrite30m => "rate_cache_write_30m",
            TokenClass::CacheWrite12h => "rate_cache_write_12h",
        }
    }
    /// The cost column of `rated_usage` (tokens × rate, exact).
    pub const fn cost_column(self) -> &'static str {
        match self {
            TokenClass::UncachedInput => "cost_uncached_input",
            TokenClass::CacheWrite5m => "cost_cache_write_5m",
            TokenClass::CacheWrite1h => "cost_cache_write_1h",
            TokenClass::CacheRead => "cost_cache_read",
            TokenClass::Output => "cost_output",
            TokenClass::CacheWrite30m => "cost_cache_write_30m",
            TokenClass::CacheWrite12h => "cost_cache_write_12h",
        }
    }
    /// The cost report's `token_type` for this class.
    pub const fn cost_report_type(self) -> &'static str {
        match self {
            TokenClass::UncachedInput => "uncached_input_tokens",
            TokenClass::CacheWrite5m => "cache_creation.ephemeral_5m_input_tokens",
            TokenClass::CacheWrite1h => "cache_creation.ephemeral_1h_input_tokens",
            TokenClass::CacheRead => "cache_read_input_tokens",
            TokenClass::Output => "output_tokens",
            TokenClass::CacheWrite30m => "input_cache_write_30m_tokens",
            TokenClass::CacheWrite12h => "input_cache_write_12h_tokens",
        }
    }
}

/// Web search requests: counted beside the token classes and priced per request.
pub const WEB_SEARCH_COLUMN: &str = "web_search_requests";
pub const WEB_SEARCH_RATE_COLUMN: &str = "rate_web_search";
pub const WEB_SEARCH_COST_COLUMN: &str = "cost_web_search";

/// A column list per token class (by `$per_class`), then the web search column.
macro_rules! columns {
    ($per_class:ident, $web:expr) => {{
        let mut a = [$web; N_COUNTS];
        let mut i = 0;
        while i < N_CLASSES {
            a[i] = TokenClass::ALL[i].$per_class();
            i += 1;
        }
        a
    }};
}

/// The count columns of `usage`: the token classes, then web search requests.
pub const COUNT_COLUMNS: [&str; N_COUNTS] = columns!(column, WEB_SEARCH_COLUMN);
/// The rate columns of `rated_usage`: per token class, then per web search.
pub const RATE_COLUMNS: [&str; N_COUNTS] = columns!(rate_column, WEB_SEARCH_RATE_COLUMN);
/// The cost columns of `rated_usage`: per token class, then web search.
pub const COST_COLUMNS: [&str; N_COUNTS] = columns!(cost_column, WEB_SEARCH_COST_COLUMN);

/// A provider whose exports tokenledger reads: the only place a provider is a word. Rows,
/// lake paths and stages take the type, so a new variant makes the compiler list every place
/// that must decide; the text is written only at the lake and CLI edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    Anthropic,
    OpenAi,
}

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::Anthropic, Provider::OpenAi];
    /// The name in the lake (`provider=…` partitions and the `provider` column) and on the
    /// command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
        }
    }
    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }
    /// The name people read (mail, HTML).
    pub const fn label(self) -> &'static str {
        match self {
            Provider::Anthropic => "Anthropic",
            Provider::OpenAi => "OpenAI",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a usage row has a list price: never a $0 stand-in for "no price".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PricingStatus {
    Priced,
    Unpriced,
    /// A model the price book does not know, priced at the rate the provider's own
    /// `list_amount` implies for that day (`learned`): counted, and said on every report.
    ProviderList,
}

impl PricingStatus {
    /// The value in `rated_usage.pricing_status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            PricingStatus::Priced => "priced",
            PricingStatus::Unpriced => "UNPRICED",
            PricingStatus::ProviderList => "provider_list",
        }
    }
    pub fn parse(s: &str) -> Option<PricingStatus> {
        match s {
            "priced" => Some(PricingStatus::Priced),
            "UNPRICED" => Some(PricingStatus::Unpriced),
            "provider_list" => Some(PricingStatus::ProviderList),
            _ => None,
        }
    }
    /// Whether the row has a list cost (priced by the book or from the provider's list).
    pub const fn has_cost(self) -> bool {
        !matches!(self, PricingStatus::Unpriced)
    }
}

/// A reason a person must look at the outcome ("needs review": exit code 3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Review {
    /// Input went to the quarantine (`tokenledger quarantine --ingest ID`).
    Quarantined {
        ingest_id: String,
        rows: u64,
        files: usize,
    },
    /// Paths that were not read: FIFOs, symlinks out of the input tree, unreadable files.
    Skipped { files: usize },
    /// Usage with no list price in force.
    Unpriced { month: String, lines: usize },
    /// Differences with the provider's cost report that have no known cause.
    Unexplained { month: String, lines: usize },
    /// Credit findings: lots expiring with money left or at risk, a short runway, a balance
    /// the Console showed that the ledger does not reach, an auto-reload storm.
    Credits { findings: usize },
    /// Anomaly findings that alert (impact and severity over the policy, not acknowledged).
    Anomalies { alerts: usize },
    /// An invoice whose tie-out to the cost report and our list cost leaves an unexplained rest.
    InvoiceUnexplained { invoice: String },
    /// Mail that failed every attempt and stays queued for the next run.
    Undelivered { messages: usize },
    /// Usage or cost data older than `stale_after_days` (a missing export, or a pull that
    /// stopped): the figures after its last day are missing, not zero.
    StaleData { tables: usize },
    /// The provider's list price differs from the price book's (`reconcile` price drift).
    PriceDrift { month: String, findings: usize },
    /// A window `pull` could not fetch whole: the data before it stays in force; fetched
    /// again by the next pull.
    PullIncomplete {
        provider: Provider,
        endpoint: String,
        range: String,
        reason: String,
    },
}

impl Review {
    /// What the review is about, stable across nights while it stands (so the nightly run
    /// tells a new one from one it already reported); `None` for the reviews whose alerts
    /// carry their own keys (credits, anomalies, stale data, undelivered mail).
    pub fn key(&self) -> Option<String> {
        match self {
            Review::Quarantined { ingest_id, .. } => {
                Some(format!("review:quarantined:{ingest_id}"))
            }
            Review::Skipped { files } => Some(format!("review:skipped:{files}")),
            Review::Unpriced { month, lines } => Some(format!("review:unpriced:{month}:{lines}")),
            Review::Unexplained { month, lines } => {
                Some(format!("review:unexplained:{month}:{lines}"))
            }
            Review::PriceDrift { month, findings } => {
                Some(format!("review:price_drift:{month}:{findings}"))
            }
            Review::PullIncomplete {
                provider,
                endpoint,
                range,
                ..
            } => Some(format!(
                "review:pull_incomplete:{}:{endpoint}:{range}",
                provider.as_str()
            )),
            Review::InvoiceUnexplained { invoice } => {
                Some(format!("review:invoice_unexplained:{invoice}"))
            }
            Review::Credits { .. }
            | Review::Anomalies { .. }
            | Review::Undelivered { .. }
            | Review::StaleData { .. } => None,
        }
    }
}

/// Whether a month's figures can still change: provisional until its close day (the month's
/// end plus the grace for late provider data), final after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Close {
    /// Still open, or late provider data may still land; final from `final_on`.
    Provisional {
        final_on: chrono::NaiveDate,
    },
    Final,
}

impl Close {
    /// The close of `month` as of `as_of`: final from the day after `grace_days` days past its
    /// end (grace 3: October is final from 4 November).
    pub fn of(month: Month, as_of: chrono::NaiveDate, grace_days: u32) -> Close {
        let first = chrono::NaiveDate::from_ymd_opt(month.year().into(), month.month().into(), 1)
            .expect("a Month is a valid month");
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .expect("months after 9999 are refused by Month::parse");
        let final_on = next + chrono::TimeDelta::days(grace_days.into());
        if as_of >= final_on {
            Close::Final
        } else {
            Close::Provisional { final_on }
        }
    }
    pub fn is_final(self) -> bool {
        self == Close::Final
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Close::Final => "final",
            Close::Provisional { .. } => "provisional",
        }
    }
}

impl serde::Serialize for Provider {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
