//! Settings: everything a command needs to know, resolved once, before any work starts.
//!
//! Owns: merging, in this order of precedence, command-line flags (and the environment
//! variables clap reads for them) > `tokenledger.toml` > defaults, into one [`Settings`] value
//! of plain data that every stage reads: the parsed price book, the mail settings, the anomaly
//! policy, the credit options and the render options are already resolved, so a config error
//! is a usage error (exit 2) before the lake is touched.
//! Must not: parse the command line (that is `flags`), or do any work.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, Team};
use crate::lake::Layout;
use crate::money::Money;
use crate::pricing::{PriceBook, PriceError};
use crate::reconcile::DEFAULT_TOLERANCE;
use crate::sources::Limits;

/// What the command line said, before anything is resolved (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub data_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub quiet: bool,
    /// Progress bars wanted (a TTY, not quiet).
    pub progress: bool,
    pub jobs: Option<usize>,
    pub no_wait: bool,
    pub inputs: Vec<PathBuf>,
    pub tolerance: Option<Money>,
    /// The day the credits ledger is drawn up at.
    pub as_of: Option<chrono::NaiveDate>,
    /// `--wide`: tables keep every column whatever the terminal's width.
    pub wide: bool,
}

/// How tables are fitted: to `width` columns (optional columns dropped; CSV and JSON keep
/// all), or every column (`None`: `--wide`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Render {
    pub width: Option<usize>,
}

impl Render {
    /// `--wide`: every column, nothing cut; else `COLUMNS`, else the terminal's own width when
    /// stdout is one, else 100 (a pipe, a file, cron).
    pub fn resolve(wide: bool) -> Render {
        let width = (!wide).then(|| {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse().ok())
                .or_else(terminal_width)
                .unwrap_or(100)
        });
        Render { width }
    }
}

/// The width of the terminal on stdout, if stdout is one.
fn terminal_width() -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own; fd 1 may be anything, and a
    // non-terminal fails the call (we then return None).
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// The resolved settings of one command.
#[derive(Debug, Clone)]
pub struct Settings {
    pub layout: Layout,
    pub config_path: Option<PathBuf>,
    /// Export files or directories `run` ingests.
    pub inputs: Vec<PathBuf>,
    pub teams: Vec<Team>,
    pub limits: Limits,
    /// `[ingest] precedence`: which family owns an interval several cover.
    pub precedence: crate::model::Precedence,
    /// `[providers.anthropic] default_workspace_id`.
    pub anthropic_default_workspace: Option<String>,
    /// What `pull` would fetch from each provider (`run` pulls those with a `since`).
    pub pulls: Vec<crate::pull::ProviderPull>,
    /// Reconciliation tolerance per line.
    pub tolerance: Money,
    pub jobs: usize,
    pub wait_for_lock: bool,
    pub quiet: bool,
    pub progress: bool,
    /// The day `run` and `credits` draw the credits ledger up at (default: today in the
    /// business timezone).
    pub as_of: chrono::NaiveDate,
    /// The business timezone (`timezone`, default UTC): which day and month a bucket is in.
    pub timezone: chrono_tz::Tz,
    /// `stale_after_days`: older usage or cost data is a `stale_data` finding.
    pub stale_after_days: i64,
    /// The price book: the embedded default, then `[prices]` from the config, then
    /// `price_file` (later ones win).
    pub book: PriceBook,
    /// `[mail]` resolved (addresses checked).
    pub mail: crate::mail::MailSettings,
    /// The anomaly policy: `[anomalies]` over the defaults.
    pub anomalies: crate::anomalies::Policy,
    /// What the credits ledger is asked, as of `as_of`: `[credits]` over the defaults.
    pub credits: crate::credits::Options,
    pub render: Render,
    /// `[export]` resolved.
    pub export: ExportSettings,
    /// `book` with the rates the lake's provider list amounts imply for models it lacks
    /// (`learned`), derived at first use and forgotten after an ingest (see [`Settings::priced_book`]).
    learned: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<PriceBook>>>>,
}

impl Settings {
    /// The price book every pricing stage uses: `book` plus the provider-list rates `derive`
    /// finds in the lake for models the book lacks (`learned`; `run` derives them). Derived
    /// once per command, again after [`Settings::forget_learned`].
    pub fn priced_book_with<E>(
        &self,
        derive: impl FnOnce(&PriceBook) -> Result<crate::pricing::Learned, E>,
    ) -> Result<std::sync::Arc<PriceBook>, E> {
        let mut memo = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = memo.as_ref() {
            return Ok(b.clone());
        }
        let b = std::sync::Arc::new(self.book.clone().with_learned(derive(&self.book)?));
        *memo = Some(b.clone());
        Ok(b)
    }
    /// New cost or usage was committed: the provider-list rates are derived again.
    pub fn forget_learned(&self) {
        *self.learned.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Why a command's settings do not resolve: a usage error (exit 2), said before any work.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The price book with its overrides (`[prices]`, `price_file`) does not load.
    #[error("the price book does not load")]
    Prices {
        #[from]
        source: PriceError,
    },
    /// `[mail]` names an address that is none, or an SMTP setting that cannot work.
    #[error("[mail] is invalid")]
    Mail {
        #[from]
        source: crate::mail::MailError,
    },
}

/// `stale_after_days` when the config does not say.
pub const DEFAULT_STALE_AFTER_DAYS: u32 = 3;

/// The data dir when neither `--data-dir`, `TOKENLEDGER_DATA_DIR` nor the config names one.
pub const DEFAULT_DATA_DIR: &str = "./tokenledger-data";

impl Settings {
    /// Loads the config (`flags.config`, else `./tokenledger.toml` when present) and resolves.
    pub fn load(flags: Flags) -> Result<Settings, SettingsError> {
        let (config, path) = Config::load(flags.config.as_deref())?;
        let tz = config.timezone.unwrap_or(chrono_tz::UTC);
        let today = chrono::Utc::now().with_timezone(&tz).date_naive();
        Settings::resolve(flags, config, path, today)
    }

    /// Flags > config > defaults; `today` fixes the plausible window of dates.
    pub fn resolve(
        flags: Flags,
        config: Config,
        config_path: Option<PathBuf>,
        today: chrono::NaiveDate,
    ) -> Result<Settings, SettingsError> {
        let data_dir = flags
            .data_dir
            .or_else(|| config.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let inputs = if flags.inputs.is_empty() {
            config.inputs.clone()
        } else {
            flags.inputs
        };
        check_team_tags(&config, config_path.as_deref())?;
        let timezone = config.timezone.unwrap_or(chrono_tz::UTC);
        let as_of = flags.as_of.unwrap_or(today);
        Ok(Settings {
            layout: layout(data_dir, &config, config_path.as_deref())?,
            inputs,
            teams: config.teams.clone(),
            limits: config.ingest.limits(today),
            precedence: precedence(&config, config_path.as_deref())?,
            anthropic_default_workspace: config.providers.anthropic.default_workspace_id.clone(),
            pulls: pulls(&config, config_path.as_deref())?,
            tolerance: flags
                .tolerance
                .or(config.reconcile.tolerance)
                .unwrap_or(DEFAULT_TOLERANCE),
            jobs: flags.jobs.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            }),
            wait_for_lock: !flags.no_wait,
            quiet: flags.quiet,
            progress: flags.progress && !flags.quiet,
            as_of,
            timezone,
            stale_after_days: config
                .stale_after_days
                .unwrap_or(DEFAULT_STALE_AFTER_DAYS)
                .into(),
            book: price_book(&config, config_path.as_deref())?,
            mail: crate::mail::MailSettings::from_config(&config.mail)?,
            anomalies: anomaly_policy(&config, config_path.as_deref(), timezone)?,
            credits: credit_options(&config.credits, as_of),
            render: Render::resolve(flags.wide),
            export: export_settings(&config, config_path.as_deref())?,
            learned: Default::default(),
            config_path,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.layout.root
    }
}

/// `[export]`: the FOCUS export's directory, format and billing accounts.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// Where the month close writes a final month's FOCUS export (`<dir>/<YYYY-MM>/`).
    pub focus_dir: Option<PathBuf>,
    pub focus_format: crate::export::write::Format,
    pub accounts: std::collections::BTreeMap<crate::vocab::Provider, crate::export::Account>,
}

fn export_settings(
    config: &Config,
    config_path: Option<&Path>,
) -> Result<ExportSettings, ConfigError> {
    use crate::export::write::Format;
    let bad = |what: String| ConfigError::Value {
        path: config_path.map_or_else(|| "tokenledger.toml".into(), Path::to_path_buf),
        what,
    };
    let c = &config.export;
    let focus_format = match c.focus_format.as_deref() {
        None | Some("parquet") => Format::Parquet,
        Some("csv") => Format::Csv,
        Some(other) => {
            return Err(bad(format!(
                "[export] focus_format {other:?}: write \"parquet\" or \"csv\""
            )));
        }
    };
    let mut accounts = std::collections::BTreeMap::new();
    for (name, a) in &c.billing_accounts {
        let p = crate::vocab::Provider::parse(name).ok_or_else(|| {
            bad(format!(
                "[export.billing_accounts.{name}]: not a provider (anthropic or openai)"
            ))
        })?;
        if a.id.trim().is_empty() {
            return Err(bad(format!("[export.billing_accounts.{name}] id is empty")));
        }
        let account = crate::export::Account {
            id: a.id.clone(),
            name: a.name.clone(),
        };
        accounts.insert(p, account);
    }
    let base = config_path.and_then(Path::parent).unwrap_or(Path::new("."));
    Ok(ExportSettings {
        focus_dir: c.focus_dir.as_ref().map(|d| base.join(d)),
        focus_format,
        accounts,
    })
}

/// Each provider's `[providers.*]` pull settings over the defaults (`provider-apis.md` §1, §5:
/// the public base URLs and the SDKs' key variables); `TOKENLEDGER_<PROVIDER>_BASE_URL` wins
/// over `base_url`, which must be HTTPS but to a loopback host.
fn pulls(
    config: &Config,
    config_path: Option<&Path>,
) -> Result<Vec<crate::pull::ProviderPull>, ConfigError> {
    use crate::vocab::Provider;
    let bad = |what: String| ConfigError::Value {
        path: config_path.map_or_else(|| "tokenledger.toml".into(), Path::to_path_buf),
        what,
    };
    let mut out = Vec::new();
    for p in Provider::ALL {
        let (c, base, env) = match p {
            Provider::Anthropic => (
                &config.providers.anthropic,
                "https://api.anthropic.com",
                "ANTHROPIC_ADMIN_KEY",
            ),
            Provider::OpenAi => (
                &config.providers.openai,
                "https://api.openai.com",
                "OPENAI_ADMIN_KEY",
            ),
        };
        let table = format!("[providers.{}]", p.as_str());
        if p == Provider::OpenAi && c.default_workspace_id.is_some() {
            return Err(bad(format!("{table} default_workspace_id: Anthropic only")));
        }
        let var = format!("TOKENLEDGER_{}_BASE_URL", p.as_str().to_ascii_uppercase());
        let base_url = std::env::var(&var)
            .ok()
            .or_else(|| c.base_url.clone())
            .unwrap_or_else(|| base.to_string());
        crate::pull::http::check_base_url(&base_url)
            .map_err(|e| bad(format!("{table} base_url (or {var}): {e}")))?;
        let width = c.bucket_width.as_deref().unwrap_or("1h");
        let width = crate::model::BucketWidth::parse(width)
            .ok_or_else(|| bad(format!("{table} bucket_width {width:?}: use 1d, 1h or 1m")))?;
        let key = match (&c.admin_key_file, &c.admin_key_env) {
            (Some(f), _) => {
                crate::pull::http::KeyOrigin::File(match config_path.and_then(Path::parent) {
                    Some(dir) if f.is_relative() => dir.join(f),
                    _ => f.clone(),
                })
            }
            (None, v) => crate::pull::http::KeyOrigin::Env(v.clone().unwrap_or_else(|| env.into())),
        };
        let d = crate::pull::http::Retry::default();
        out.push(crate::pull::ProviderPull {
            provider: p,
            base_url,
            key,
            since: c.since,
            restate_days: c.restate_days.unwrap_or(3),
            width,
            analytics: c.analytics.unwrap_or(false) && p == Provider::Anthropic,
            concurrency: c.concurrency.unwrap_or(2).clamp(1, 16),
            timeout: std::time::Duration::from_secs(c.timeout_secs.unwrap_or(60).max(1)),
            retry: crate::pull::http::Retry {
                max_retries: c.max_retries.unwrap_or(d.max_retries),
                max_wait: c
                    .max_wait_secs
                    .map_or(d.max_wait, std::time::Duration::from_secs),
                ..d
            },
            keep_days: c.keep_days.unwrap_or(35),
        });
    }
    Ok(out)
}

/// What the credits ledger is asked, as of `as_of`: `[credits]` over the defaults.
fn credit_options(
    c: &crate::config::CreditsConfig,
    as_of: chrono::NaiveDate,
) -> crate::credits::Options {
    let mut o = crate::credits::Options::new(as_of);
    if let Some(h) = &c.horizons {
        o.horizons = h.iter().map(|&d| d.into()).collect();
    }
    if let Some(d) = c.runway_min_days {
        o.runway_min_days = d.into();
    }
    if let Some(n) = c.max_reloads_per_day {
        o.max_reloads_per_day = n as usize;
    }
    o.auto_reload = c.auto_reload_threshold_usd.zip(c.auto_reload_amount_usd);
    o
}

/// The anomaly policy: `[anomalies]` over the defaults.
/// `[[team]] workspace_tags` entries are `KEY:VALUE`.
fn precedence(
    config: &Config,
    config_path: Option<&Path>,
) -> Result<crate::model::Precedence, ConfigError> {
    match &config.ingest.precedence {
        None => Ok(crate::model::Precedence::default()),
        Some(list) => crate::model::Precedence::parse(list).map_err(|e| ConfigError::Value {
            path: config_path.map_or_else(|| "tokenledger.toml".into(), Path::to_path_buf),
            what: format!("[ingest] precedence: {e}"),
        }),
    }
}

fn check_team_tags(config: &Config, config_path: Option<&Path>) -> Result<(), ConfigError> {
    for t in &config.teams {
        for tag in &t.workspace_tags {
            if !tag
                .split_once(':')
                .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
            {
                return Err(ConfigError::Value {
                    path: config_path.map_or_else(|| "tokenledger.toml".into(), Path::to_path_buf),
                    what: format!(
                        "[[team]] {:?} workspace_tags {tag:?}: use KEY:VALUE, e.g. \"team:search\"",
                        t.name
                    ),
                });
            }
        }
    }
    Ok(())
}

fn anomaly_policy(
    config: &Config,
    config_path: Option<&Path>,
    timezone: chrono_tz::Tz,
) -> Result<crate::anomalies::Policy, ConfigError> {
    let c = &config.anomalies;
    let bad = |what: String| ConfigError::Value {
        path: config_path.map_or_else(|| "tokenledger.toml".into(), Path::to_path_buf),
        what,
    };
    let mut p = crate::anomalies::Policy {
        timezone,
        ..Default::default()
    };
    if let Some(m) = c.min_impact_usd {
        p.min_impact_usd = m;
    }
    if let Some(s) = &c.min_severity {
        p.min_severity = crate::anomalies::Severity::parse(s).ok_or_else(|| {
            bad(format!(
                "[anomalies] min_severity {s:?}: use low, medium or high"
            ))
        })?;
    }
    if let Some(f) = &c.regrow_factor {
        p.regrow_factor = rust_decimal::Decimal::from_str_exact(f.trim())
            .ok()
            .filter(|d| *d > rust_decimal::Decimal::ONE)
            .ok_or_else(|| {
                bad(format!(
                    "[anomalies] regrow_factor {f:?}: a number above 1, e.g. \"2\""
                ))
            })?;
    }
    let th = &mut p.thresholds;
    th.min_score = c.min_score.unwrap_or(th.min_score);
    th.min_ratio = c.min_ratio.unwrap_or(th.min_ratio);
    th.min_history_days = c.min_history_days.map_or(th.min_history_days, i64::from);
    th.floor_usd = c.floor_usd.unwrap_or(th.floor_usd);
    for (k, v) in &c.limits {
        let d = rust_decimal::Decimal::from_str_exact(v.trim())
            .map_err(|e| bad(format!("[anomalies.limits] {k} = {v:?}: {e}")))?;
        let m = Money::from_decimal(d).map_err(|e| bad(format!("[anomalies.limits] {k}: {e}")))?;
        p.limits.insert(k.clone(), m);
    }
    // A rate-limits file is relative to the config file, as every path in it.
    let base = config_path.and_then(Path::parent).unwrap_or(Path::new("."));
    let mut limits = config.limits.clone();
    for o in limits.values_mut() {
        o.rate_limits_file = o.rate_limits_file.as_ref().map(|f| base.join(f));
    }
    p.rates = crate::limits::RateTable::load(&limits).map_err(|e| bad(e.to_string()))?;
    if let Some(pct) = c.rate_limit_pct {
        if !(1..=100).contains(&pct) {
            return Err(bad(format!(
                "[anomalies] rate_limit_pct = {pct}: a percentage from 1 to 100"
            )));
        }
        p.headroom.threshold_pct = pct;
    }
    if let Some(d) = c.rate_limit_days {
        if !(1..=31).contains(&d) {
            return Err(bad(format!(
                "[anomalies] rate_limit_days = {d}: from 1 to 31 days"
            )));
        }
        p.headroom.days = d;
    }
    Ok(p)
}

/// The price book: the embedded default, then `[prices]` from the config, then `price_file`
/// (later ones win).
fn price_book(config: &Config, config_path: Option<&Path>) -> Result<PriceBook, PriceError> {
    let mut overrides = Vec::new();
    if let Some(p) = config_path {
        overrides.push((format!("{} [prices]", p.display()), config.prices.clone()));
    }
    if let Some(f) = &config.price_file {
        overrides.push((f.display().to_string(), PriceBook::read_file(f)?));
    }
    PriceBook::load(&overrides)
}

/// The lake: a local directory, or object storage (`s3://…`, `gs://…`, `az://…`) worked on in
/// a local copy (`TOKENLEDGER_LAKE_CACHE`, else `[lake] cache_dir`, else the user's cache dir).
fn layout(
    data_dir: PathBuf,
    config: &Config,
    config_path: Option<&Path>,
) -> Result<Layout, ConfigError> {
    match data_dir.to_str().and_then(crate::lake::remote::is_remote) {
        Some(mut url) if crate::lake::remote::has_credentials(&url) => {
            // Never echoed: the message names the URL without them.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            Err(ConfigError::Value {
                path: config_path.map_or_else(|| "tokenledger.toml".into(), Path::to_path_buf),
                what: format!(
                    "data_dir {url}: credentials in the URL are refused (they would be in every \
                     message); give them in the environment (AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*) or \
                     an instance role"
                ),
            })
        }
        Some(url) => {
            let cache = std::env::var_os("TOKENLEDGER_LAKE_CACHE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| config.lake.cache_dir.clone())
                .unwrap_or_else(|| crate::lake::remote::default_cache_dir(&url));
            Ok(Layout::remote(cache, url))
        }
        None => Ok(Layout::new(data_dir).with_delta(lake_delta(config, config_path)?)),
    }
}

/// The Delta mode: `TOKENLEDGER_LAKE_DELTA` (`1`/`true`, `0`/`false`) over `[lake] delta`.
fn lake_delta(config: &Config, config_path: Option<&Path>) -> Result<bool, ConfigError> {
    const VAR: &str = "TOKENLEDGER_LAKE_DELTA";
    match std::env::var(VAR).ok().as_deref() {
        None | Some("") => Ok(config.lake.delta),
        Some("1" | "true") => Ok(true),
        Some("0" | "false") => Ok(false),
        Some(other) => Err(ConfigError::Value {
            path: config_path.map_or_else(|| "tokenledger.toml".into(), Path::to_path_buf),
            what: format!("[lake] delta (or {VAR}={other:?}): expected 1, true, 0 or false"),
        }),
    }
}
