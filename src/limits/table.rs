//! The rate limits and spend caps a provider enforces, as one resolved [`RateTable`]: the dated
//! default (`src/limits/anthropic.toml`, its source and reading date in the file) under the
//! config's `[limits.<provider>]` (tier, spend cap, a class's limits, per-workspace limits,
//! classes of its own).
//!
//! Must not: read the lake or the config file (settings hands it the parsed sections).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::money::Money;
use crate::vocab::Provider;

const ANTHROPIC: &str = include_str!("anthropic.toml");
const ANTHROPIC_NAME: &str = Provider::Anthropic.as_str();

/// Requests, input tokens and output tokens per minute; `None`: no limit known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub rpm: Option<u64>,
    pub itpm: Option<u64>,
    pub otpm: Option<u64>,
}

impl Limit {
    /// `self`, with each limit `over` sets replaced.
    fn over(self, over: Limit) -> Limit {
        Limit {
            rpm: over.rpm.or(self.rpm),
            itpm: over.itpm.or(self.itpm),
            otpm: over.otpm.or(self.otpm),
        }
    }
}

/// A model class: the models that share one bucket of limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Class {
    pub name: String,
    /// Canonical model names (`pricing::canonical_model`: dated snapshots and `-latest` match).
    pub models: Vec<String>,
    /// The class counts cache reads towards its input limit (older models, † in the docs).
    #[serde(default)]
    pub cache_reads_count: bool,
}

/// `[limits.<provider>]` in tokenledger.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// A tier of the default table (`tier-1` … `tier-4`, `invoiced`).
    pub tier: Option<String>,
    /// The organisation's real limits: the body of the Admin API's
    /// `GET /v1/organizations/rate_limits` saved to a file (relative to the config file). Its
    /// model groups are the classes and their limits win over the table's; the config's `rate`
    /// wins over both.
    pub rate_limits_file: Option<std::path::PathBuf>,
    /// The monthly spend cap in dollars ("5000"), over the tier's; "0" or "none": no cap.
    pub spend_cap_usd: Option<String>,
    /// Classes of its own (a provider the default table lacks, or a class it does not know).
    #[serde(default, rename = "class")]
    pub classes: Vec<Class>,
    /// `[limits.anthropic.rate."Claude Sonnet 4.x"]`: the organisation's limits of a class.
    #[serde(default)]
    pub rate: BTreeMap<String, Limit>,
    /// `[limits.anthropic.workspaces."Search prod"."Claude Sonnet 4.x"]`: a workspace's own
    /// (lower) limits, by workspace id or name.
    #[serde(default)]
    pub workspaces: BTreeMap<String, BTreeMap<String, Limit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultFile {
    source: String,
    read_on: String,
    default_tier: String,
    #[serde(rename = "class")]
    classes: Vec<Class>,
    #[serde(rename = "tier")]
    tiers: Vec<TierRow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierRow {
    name: String,
    spend_cap_usd: Option<String>,
    limits: Vec<ClassLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassLimit {
    class: String,
    #[serde(flatten)]
    limit: Limit,
}

/// One provider's limits, resolved.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Rates {
    /// Where the numbers come from, for every output that shows them.
    pub source: String,
    /// The same in a few words, for a finding's sentence ("built-in table read 2026-12-07,
    /// tier-4 assumed").
    pub label: String,
    pub tier: Option<String>,
    /// The monthly spend cap (HTTP 429 until the 1st once reached).
    pub spend_cap: Option<Money>,
    #[serde(skip)]
    pub classes: Vec<Class>,
    /// Class → the organisation's limits.
    pub org: BTreeMap<String, Limit>,
    /// (workspace id or name, class) → the workspace's own limits.
    #[serde(skip)]
    pub workspaces: BTreeMap<(String, String), Limit>,
}

impl Rates {
    /// The class of a model as exported (`None`: no class knows it).
    pub fn class_of(&self, model: &str) -> Option<&Class> {
        let m = crate::pricing::canonical_model(model);
        self.classes.iter().find(|c| c.models.contains(&m))
    }

    /// A workspace's limits of `class`: its own where configured (by id, then name), each
    /// unset limit the organisation's.
    pub fn workspace(&self, id: &str, name: &str, class: &str) -> Option<Limit> {
        let own = self
            .workspaces
            .get(&(id.to_string(), class.to_string()))
            .or_else(|| self.workspaces.get(&(name.to_string(), class.to_string())))?;
        Some(self.org.get(class).copied().unwrap_or_default().over(*own))
    }
}

/// Every provider's limits.
#[derive(Debug, Clone, Default)]
pub struct RateTable {
    pub providers: BTreeMap<Provider, Rates>,
}

#[derive(Debug, thiserror::Error)]
#[error("[limits.{provider}] {message}")]
pub struct TableError {
    pub provider: String,
    pub message: String,
}

fn money(provider: &str, what: &str, s: &str) -> Result<Option<Money>, TableError> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let err = |e: String| TableError {
        provider: provider.into(),
        message: format!("{what} = {s:?}: {e}"),
    };
    let d = rust_decimal::Decimal::from_str_exact(s.trim()).map_err(|e| err(e.to_string()))?;
    let m = Money::from_decimal(d).map_err(|e| err(e.to_string()))?;
    Ok(m.is_positive().then_some(m))
}

impl RateTable {
    /// The default table under `overrides` (by provider name as in the config).
    pub fn load(overrides: &BTreeMap<String, Overrides>) -> Result<RateTable, TableError> {
        let mut t = RateTable::default();
        t.providers.insert(
            Provider::Anthropic,
            Self::anthropic(overrides.get(ANTHROPIC_NAME))?,
        );
        for (name, o) in overrides {
            let provider = Provider::parse(name).ok_or_else(|| TableError {
                provider: name.clone(),
                message: format!(
                    "unknown provider (use one of: {})",
                    Provider::ALL.map(|p| p.as_str()).join(", ")
                ),
            })?;
            let base = t.providers.remove(&provider).unwrap_or_else(|| Rates {
                source: "tokenledger.toml".into(),
                label: "tokenledger.toml".into(),
                ..Rates::default()
            });
            if o.rate_limits_file.is_some() && provider != Provider::Anthropic {
                return Err(TableError {
                    provider: name.clone(),
                    message: "rate_limits_file: the file is the Anthropic Admin API's; set this \
                              provider's limits in [limits.<provider>.rate.\"<class>\"]"
                        .into(),
                });
            }
            if o.tier.is_some() && provider != Provider::Anthropic {
                return Err(TableError {
                    provider: name.clone(),
                    message: "tier: no default table for this provider; set its limits in \
                              [limits.<provider>.rate.\"<class>\"]"
                        .into(),
                });
            }
            t.providers.insert(provider, apply(name, base, o)?);
        }
        Ok(t)
    }

    fn anthropic(o: Option<&Overrides>) -> Result<Rates, TableError> {
        let f: DefaultFile = toml::from_str(ANTHROPIC).expect("src/limits/anthropic.toml parses");
        let tier = o.and_then(|o| o.tier.clone());
        let name = tier.clone().unwrap_or_else(|| f.default_tier.clone());
        let row = f
            .tiers
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| TableError {
                provider: ANTHROPIC_NAME.into(),
                message: format!(
                    "tier = {name:?}: the default table has {}",
                    f.tiers
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        let assumed = if tier.is_none() { ", assumed" } else { "" };
        Ok(Rates {
            source: format!(
                "built-in table ({}, read {}), {name}{assumed}",
                f.source, f.read_on
            ),
            label: format!(
                "built-in table read {}, {name}{}",
                f.read_on,
                if tier.is_none() { " assumed" } else { "" }
            ),
            tier: Some(name),
            spend_cap: match &row.spend_cap_usd {
                Some(s) => money(ANTHROPIC_NAME, "spend_cap_usd", s)?,
                None => None,
            },
            classes: f.classes,
            org: row
                .limits
                .iter()
                .map(|l| (l.class.clone(), l.limit))
                .collect(),
            workspaces: BTreeMap::new(),
        })
    }
}

/// The Admin API's rate limits (`GET /v1/organizations/rate_limits`, anthropic SDK 2.10.0
/// `resources/beta/organization/rate_limits.py`; provider-apis.md §9): `{data:[{type:
/// "rate_limit", id, group:{type:"model_group", id, display_name}, limits:[{type, value}],
/// models:[…]}], next_page}`. Unknown fields are ignored (the API grows).
#[derive(Debug, Deserialize)]
struct ApiLimits {
    data: Vec<ApiGroup>,
}

#[derive(Debug, Deserialize)]
struct ApiGroup {
    group: ApiGroupName,
    #[serde(default)]
    limits: Vec<ApiLimit>,
    #[serde(default)]
    models: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ApiGroupName {
    #[serde(rename = "type")]
    kind: String,
    display_name: String,
}

#[derive(Debug, Deserialize)]
struct ApiLimit {
    #[serde(rename = "type")]
    kind: String,
    value: u64,
}

/// The model groups of an Admin API rate-limits body as classes and their limits (other group
/// types — batch, files, token counting, web search — are not per-minute token limits).
fn api_classes(bytes: &[u8]) -> Result<Vec<(Class, Limit)>, String> {
    let body: ApiLimits = serde_json::from_slice(bytes).map_err(|e| {
        format!("not the Admin API's rate limits ({{data:[{{group, limits, models}}]}}): {e}")
    })?;
    let mut out = Vec::new();
    for g in body
        .data
        .into_iter()
        .filter(|g| g.group.kind == "model_group")
    {
        let mut limit = Limit::default();
        for l in &g.limits {
            match l.kind.as_str() {
                "requests_per_minute" => limit.rpm = Some(l.value),
                "input_tokens_per_minute" => limit.itpm = Some(l.value),
                "output_tokens_per_minute" => limit.otpm = Some(l.value),
                _ => {}
            }
        }
        let mut models: Vec<String> = g
            .models
            .iter()
            .map(|m| crate::pricing::canonical_model(m))
            .collect();
        models.sort();
        models.dedup();
        let class = Class {
            name: g.group.display_name,
            models,
            cache_reads_count: false,
        };
        out.push((class, limit));
    }
    Ok(out)
}

/// `base` under the Admin API's limits in `path`: its classes replace the table's (by name, or
/// any model they share), its limits win; the source names the file and its date.
fn with_api_file(
    provider: &str,
    mut base: Rates,
    path: &std::path::Path,
) -> Result<Rates, TableError> {
    let err = |m: String| TableError {
        provider: provider.into(),
        message: format!("rate_limits_file {}: {m}", path.display()),
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("{e}")))?;
    let classes = api_classes(&bytes).map_err(err)?;
    if classes.is_empty() {
        return Err(err(
            "no model_group in data[]: nothing to compare with".into()
        ));
    }
    let day = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .date_naive()
                .to_string()
        })
        .unwrap_or_default();
    for (c, l) in classes {
        base.classes
            .retain(|x| x.name != c.name && !x.models.iter().any(|m| c.models.contains(m)));
        base.org.insert(c.name.clone(), l);
        base.classes.insert(0, c);
    }
    base.source = format!(
        "the Admin API's rate limits in {} (saved {day})",
        path.display()
    );
    base.label = format!("Admin API limits saved {day}");
    Ok(base)
}

/// `o` over `base`.
fn apply(provider: &str, mut base: Rates, o: &Overrides) -> Result<Rates, TableError> {
    if let Some(f) = &o.rate_limits_file {
        base = with_api_file(provider, base, f)?;
    }
    if let Some(s) = &o.spend_cap_usd {
        base.spend_cap = money(provider, "spend_cap_usd", s)?;
    }
    for c in &o.classes {
        base.classes.retain(|x| x.name != c.name);
        base.classes.insert(0, c.clone());
    }
    let known = |class: &str| base.classes.iter().any(|c| c.name == class);
    for (class, l) in &o.rate {
        if !known(class) {
            return Err(unknown_class(provider, class, &base));
        }
        let e = base.org.entry(class.clone()).or_default();
        *e = e.over(*l);
    }
    for (ws, classes) in &o.workspaces {
        for (class, l) in classes {
            if !known(class) {
                return Err(unknown_class(provider, class, &base));
            }
            base.workspaces.insert((ws.clone(), class.clone()), *l);
        }
    }
    if !(o.rate.is_empty() && o.workspaces.is_empty() && o.spend_cap_usd.is_none())
        && base.source != "tokenledger.toml"
    {
        base.source = format!("{} + tokenledger.toml", base.source);
        if !o.rate.is_empty() {
            base.label = format!("{} + tokenledger.toml", base.label);
        }
    }
    Ok(base)
}

fn unknown_class(provider: &str, class: &str, base: &Rates) -> TableError {
    TableError {
        provider: provider.into(),
        message: format!(
            "class {class:?} is unknown (known: {}; add one with [[limits.{provider}.class]] \
             name and models)",
            base.classes
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
