//! Pricing: the dated price book and the rate of one usage row.
//!
//! Owns: loading the embedded default book and the user's overrides, resolving model aliases
//! and dated snapshots to one model, and computing the per-class rates in force on a UTC date
//! with every modifier stacked (long context → batch × geo). Must not: read the lake or sum
//! anything; `rating` applies rates to rows.
//!
//! Rates are exact decimals per million tokens with at most 6 fractional digits, so a row's cost
//! in the lake's fixed point (12 digits) is `tokens × rate × 10⁶`, an exact integer product.

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::vocab::{N_CLASSES, TokenClass};

/// The embedded default book: Anthropic's list prices …
pub const DEFAULT_BOOK: &str = include_str!("anthropic.toml");
/// … and OpenAI's (`provider = "openai"` rows).
pub const DEFAULT_OPENAI_BOOK: &str = include_str!("openai.toml");

/// Prices are exact decimals written as strings (`"3.75"`). TOML floats are binary fractions
/// (`3.3` is not 3.3), so a price written as a number is refused — rust_decimal's own serde
/// support would accept it.
mod exact {
    use rust_decimal::Decimal;
    use serde::de::{self, Deserializer, Visitor};

    struct V;
    impl Visitor<'_> for V {
        type Value = Decimal;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a price as a string of decimal digits, e.g. \"3.75\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
            Decimal::from_str_exact(v.trim())
                .map_err(|e| E::custom(format!("{v:?} is not an exact decimal: {e}")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
            Err(E::custom(format!(
                "the price {v} is a TOML number; write it as a string (\"{v}\") so it stays exact"
            )))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
            Err(E::custom(format!(
                "the price {v} is a TOML number; write it as a string (\"{v}\")"
            )))
        }
    }

    pub fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        d.deserialize_any(V)
    }

    pub fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        decimal(d).map(Some)
    }
}

/// A price-book file (the default, `[prices]` in the config, or a prices file).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookFile {
    #[serde(default)]
    pub model: Vec<ModelRow>,
    #[serde(default)]
    pub long_context: Vec<LongContextRow>,
    #[serde(default)]
    pub modifier: Vec<ModifierRow>,
    #[serde(default)]
    pub unit_price: Vec<UnitPriceRow>,
}

/// Base rates of one or more models. A class without a price (a row that does not name it,
/// such as OpenAI's batch cached input of gpt-4.1, "–" on its price page) prices no token of
/// that class: a usage row with such tokens is UNPRICED with the reason, never $0.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRow {
    #[serde(default = "anthropic")]
    pub provider: String,
    pub models: Vec<String>,
    /// The rates of one service tier (`batch`, `flex`, `priority`) where the provider lists
    /// them per model rather than as a factor (OpenAI); absent: the standard rates, which a
    /// `[[modifier]]` may scale.
    pub service_tier: Option<String>,
    #[serde(deserialize_with = "exact::decimal")]
    pub input: Decimal,
    #[serde(default, deserialize_with = "exact::opt_decimal")]
    pub cache_write_5m: Option<Decimal>,
    #[serde(default, deserialize_with = "exact::opt_decimal")]
    pub cache_write_1h: Option<Decimal>,
    #[serde(default, deserialize_with = "exact::opt_decimal")]
    pub cache_write_30m: Option<Decimal>,
    #[serde(default, deserialize_with = "exact::opt_decimal")]
    pub cache_write_12h: Option<Decimal>,
    #[serde(default, deserialize_with = "exact::opt_decimal")]
    pub cache_read: Option<Decimal>,
    #[serde(deserialize_with = "exact::decimal")]
    pub output: Decimal,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    #[serde(default)]
    pub check: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContextRow {
    #[serde(default = "anthropic")]
    pub provider: String,
    pub models: Vec<String>,
    #[serde(deserialize_with = "exact::decimal")]
    pub input: Decimal,
    #[serde(deserialize_with = "exact::decimal")]
    pub output: Decimal,
    /// Explicit cache rates; default: 1.25×, 2× and 0.1× the premium input.
    #[serde(default, deserialize_with = "exact::opt_decimal")]
    pub cache_write_5m: Option<Decimal>,
    #[serde(default, deserialize_with = "exact::opt_decimal")]
    pub cache_write_1h: Option<Decimal>,
    #[serde(default, deserialize_with = "exact::opt_decimal")]
    pub cache_read: Option<Decimal>,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModifierRow {
    #[serde(default = "anthropic")]
    pub provider: String,
    /// Applies to rows of this service tier …
    pub service_tier: Option<String>,
    /// … or of this inference geo.
    pub inference_geo: Option<String>,
    #[serde(deserialize_with = "exact::decimal")]
    pub factor: Decimal,
    /// Model ids, or `"*"` for all.
    pub models: Vec<String>,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitPriceRow {
    #[serde(default = "anthropic")]
    pub provider: String,
    /// `web_search_request`, `code_execution_hour`, or a unit OpenAI's usage counts in
    /// ([`UNIT_KINDS`]: per image, character, second, session or file search call).
    pub kind: String,
    #[serde(deserialize_with = "exact::decimal")]
    pub price: Decimal,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    #[serde(default)]
    pub check: bool,
}

impl ModelRow {
    /// The price of one token class ($/MTok), if the row has one.
    pub fn rate(&self, c: TokenClass) -> Option<Decimal> {
        match c {
            TokenClass::UncachedInput => Some(self.input),
            TokenClass::CacheWrite5m => self.cache_write_5m,
            TokenClass::CacheWrite1h => self.cache_write_1h,
            TokenClass::CacheWrite30m => self.cache_write_30m,
            TokenClass::CacheWrite12h => self.cache_write_12h,
            TokenClass::CacheRead => self.cache_read,
            TokenClass::Output => Some(self.output),
        }
    }
}

impl LongContextRow {
    /// The premium price of one token class; cache classes default to 1.25×, 2× and 0.1× the
    /// premium input, as the standard ones do.
    /// OpenAI's cache writes have no long-context row (OpenAI's long context is a whole-request
    /// surcharge the usage API cannot see).
    pub fn rate(&self, c: TokenClass) -> Option<Decimal> {
        Some(match c {
            TokenClass::UncachedInput => self.input,
            TokenClass::CacheWrite5m => self
                .cache_write_5m
                .unwrap_or(self.input * Decimal::new(125, 2)),
            TokenClass::CacheWrite1h => self.cache_write_1h.unwrap_or(self.input * Decimal::TWO),
            TokenClass::CacheRead => self.cache_read.unwrap_or(self.input * Decimal::new(1, 1)),
            TokenClass::Output => self.output,
            TokenClass::CacheWrite30m | TokenClass::CacheWrite12h => return None,
        })
    }
}

/// One dated row of the book per model a `[[model]]` or `[[long_context]]` row names.
fn dated<'a>(
    models: &'a [String],
    (provider, service_tier): (&'a str, Option<&'a str>),
    (valid_from, valid_to): (Option<NaiveDate>, Option<NaiveDate>),
    origin: &'a Origin,
    check: bool,
    value: Rates,
) -> impl Iterator<Item = Dated<Rates>> + 'a {
    models.iter().map(move |m| Dated {
        provider: provider.to_string(),
        service_tier: service_tier.map(str::to_string),
        model: canonical_model(m),
        valid_from,
        valid_to,
        origin: origin.clone(),
        check,
        value,
    })
}

fn anthropic() -> String {
    "anthropic".into()
}

/// Where a row of the book came from. Overrides win over the default, and a later override
/// (in load order: `[prices]`, then `price_file`) over an earlier one — by that order, never
/// by the overrides' names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    Default,
    /// The override's place in load order, then its name (for messages).
    Override(usize, String),
}

impl Origin {
    pub fn label(&self) -> String {
        match self {
            Origin::Default => "default".into(),
            Origin::Override(_, s) => format!("override ({s})"),
        }
    }
}

/// One dated row of the loaded book, for one model.
#[derive(Debug, Clone)]
pub struct Dated<T> {
    pub provider: String,
    /// The service tier a `[[model]]` row prices (`None`: standard, or not a model row).
    pub service_tier: Option<String>,
    pub model: String,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    pub origin: Origin,
    pub check: bool,
    pub value: T,
}

impl<T> Dated<T> {
    pub fn in_force(&self, d: NaiveDate) -> bool {
        self.valid_from.is_none_or(|f| f <= d) && self.valid_to.is_none_or(|t| d < t)
    }
}

#[derive(Debug, Clone)]
pub struct Modifier {
    pub service_tier: Option<String>,
    pub inference_geo: Option<String>,
    pub factor: Decimal,
}

/// The loaded book: every row expanded per model, defaults and overrides together.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    pub models: Vec<Dated<Rates>>,
    pub long_context: Vec<Dated<Rates>>,
    pub modifiers: Vec<Dated<Modifier>>,
    pub unit_prices: Vec<Dated<(String, Decimal)>>,
    /// BLAKE3 of the book's sources: rated data carries it, so a changed book re-rates.
    pub fingerprint: String,
    /// Rates implied by the provider's list amounts, for models the book lacks.
    pub learned: Learned,
}

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("price book {origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("cannot read price file {0}: {1}")]
    Read(String, std::io::Error),
}

/// $/MTok per token class in [`TokenClass::ALL`] order; `None`: the class has no price.
pub type Rates = [Option<Decimal>; N_CLASSES];

/// Rates in force for one kind of usage row. A class (or web search) without a price prices
/// only rows without such tokens: see [`Rate::missing`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    /// Per million tokens, every modifier applied, in [`TokenClass::ALL`] order.
    pub per_mtok: Rates,
    /// Per web search request.
    pub web_search: Option<Decimal>,
    /// Cost of one token of each class in the lake's fixed point (scale 12): a cost is
    /// `count × per_token[i]`, an exact integer product.
    pub per_token: [Option<i128>; N_CLASSES],
    /// Cost of one web search request in the lake's fixed point.
    pub per_search: Option<i128>,
    /// What the rate is of (`gpt-4.1 batch on 2026-10-03`), for the reason a class without a
    /// price gives.
    pub label: String,
    /// Said on the report when the rate needed an assumption (priority tier at standard list).
    pub note: Option<String>,
    /// Not the book's: the rate the provider's list amount implies ([`Learned`]).
    pub provider_list: bool,
}

/// (provider, canonical model, UTC day, service tier, context window, inference geo) of a
/// learned rate; the last three `None` where the provider's cost rows were not split by them.
pub type LearnedKey = (
    String,
    String,
    NaiveDate,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Rates per MTok (in [`TokenClass::ALL`] order) the provider's own list amounts imply, for
/// models the book does not know (derived by `learned`, from the lake).
pub type Learned = std::collections::BTreeMap<LearnedKey, Rates>;

impl Rate {
    /// Why a row with `counts` (token classes, then web search) cannot be priced at this
    /// rate: the first class it has tokens of that has no price.
    pub fn missing(&self, counts: &[i64]) -> Option<String> {
        let k = (0..N_CLASSES)
            .find(|&k| counts.get(k).is_some_and(|&c| c != 0) && self.per_token[k].is_none());
        if let Some(k) = k {
            return Some(format!(
                "no list price for {} tokens of {}: the price book has none for this class \
                 (add it to a [[prices.model]] row)",
                TokenClass::ALL[k].price_field(),
                self.label
            ));
        }
        (counts.get(N_CLASSES).is_some_and(|&c| c != 0) && self.per_search.is_none()).then(|| {
            format!(
                "no web search price for {} (add a [[prices.unit_price]] kind = \"web_search_request\")",
                self.label
            )
        })
    }
}

/// `gpt-4o-2024-08-06` (OpenAI's dated snapshot) → `gpt-4o`.
fn openai_snapshot(id: &str) -> Option<&str> {
    let b = id.as_bytes();
    let n = b.len();
    let dated = n > 11
        && b[n - 11] == b'-'
        && b[n - 6] == b'-'
        && b[n - 3] == b'-'
        && [n - 10, n - 9, n - 8, n - 7, n - 5, n - 4, n - 2, n - 1]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    dated.then(|| &id[..n - 11])
}

/// The usage units (`usage.unit`) a `[[unit_price]]` may price, per one unit. Vector-store
/// `bytes` are a level per bucket, not a flow, so they have no per-unit price here.
pub const UNIT_KINDS: [&str; 5] = [
    "images",
    "characters",
    "seconds",
    "sessions",
    "file_search_calls",
];

/// `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`; `…-latest` → the alias too.
/// `gpt-4o-2024-08-06` → `gpt-4o` too.
pub fn canonical_model(id: &str) -> String {
    let id = id.trim();
    if let Some(alias) = openai_snapshot(id) {
        return alias.to_string();
    }
    if let Some((head, tail)) = id.rsplit_once('-')
        && ((tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_digit())) || tail == "latest")
    {
        return head.to_string();
    }
    id.to_string()
}

fn check_rate(origin: &str, what: &str, d: Decimal) -> Result<Decimal, PriceError> {
    if d.is_sign_negative() {
        return Err(PriceError::Invalid {
            origin: origin.into(),
            message: format!("{what} is negative ({d})"),
        });
    }
    if d.scale() > 6 && d.normalize().scale() > 6 {
        return Err(PriceError::Invalid {
            origin: origin.into(),
            message: format!(
                "{what} = {d} has more than 6 decimals per MTok; tokenledger keeps per-token costs exact only up to 6"
            ),
        });
    }
    Ok(d.normalize())
}

impl PriceBook {
    /// The default book plus overrides (later ones win over earlier ones, all over the default).
    pub fn load(overrides: &[(String, BookFile)]) -> Result<Self, PriceError> {
        let default: BookFile = toml::from_str(DEFAULT_BOOK).map_err(|e| PriceError::Invalid {
            origin: "embedded default".into(),
            message: e.to_string(),
        })?;
        let openai: BookFile =
            toml::from_str(DEFAULT_OPENAI_BOOK).map_err(|e| PriceError::Invalid {
                origin: "embedded default (openai.toml)".into(),
                message: e.to_string(),
            })?;
        let mut book = PriceBook::default();
        let mut hasher = blake3::Hasher::new();
        hasher.update(DEFAULT_BOOK.as_bytes());
        hasher.update(DEFAULT_OPENAI_BOOK.as_bytes());
        book.add(&default, Origin::Default)?;
        book.add(&openai, Origin::Default)?;
        for (i, (name, f)) in overrides.iter().enumerate() {
            hasher.update(format!("{i}:{name}:{f:?}").as_bytes());
            book.add(f, Origin::Override(i, name.clone()))?;
        }
        book.fingerprint = hasher.finalize().to_hex()[..16].to_string();
        Ok(book)
    }

    /// Reads an override file.
    pub fn read_file(path: &Path) -> Result<BookFile, PriceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PriceError::Read(path.display().to_string(), e))?;
        toml::from_str(&text).map_err(|e| PriceError::Invalid {
            origin: path.display().to_string(),
            message: e.to_string(),
        })
    }

    fn add(&mut self, f: &BookFile, origin: Origin) -> Result<(), PriceError> {
        let o = origin.label();
        for r in &f.model {
            let mut rates = [None; N_CLASSES];
            for (i, c) in TokenClass::ALL.iter().enumerate() {
                rates[i] = r
                    .rate(*c)
                    .map(|v| check_rate(&o, c.price_field(), v))
                    .transpose()?;
            }
            let validity = (r.valid_from, r.valid_to);
            self.models.extend(dated(
                &r.models,
                (&r.provider, r.service_tier.as_deref()),
                validity,
                &origin,
                r.check,
                rates,
            ));
        }
        for r in &f.long_context {
            let mut rates = [None; N_CLASSES];
            for (i, c) in TokenClass::ALL.iter().enumerate() {
                let what = format!("long_context.{}", c.price_field());
                rates[i] = r.rate(*c).map(|v| check_rate(&o, &what, v)).transpose()?;
            }
            let validity = (r.valid_from, r.valid_to);
            self.long_context.extend(dated(
                &r.models,
                (&r.provider, None),
                validity,
                &origin,
                false,
                rates,
            ));
        }
        self.add_modifiers(f, &origin)?;
        self.add_unit_prices(f, &origin)
    }

    fn add_modifiers(&mut self, f: &BookFile, origin: &Origin) -> Result<(), PriceError> {
        let o = origin.label();
        for r in &f.modifier {
            if r.service_tier.is_some() == r.inference_geo.is_some() {
                return Err(PriceError::Invalid {
                    origin: o,
                    message: "a [[modifier]] names exactly one of service_tier or inference_geo"
                        .into(),
                });
            }
            let factor = check_rate(&o, "modifier.factor", r.factor)?;
            for m in &r.models {
                let model = if m == "*" {
                    "*".to_string()
                } else {
                    canonical_model(m)
                };
                self.modifiers.push(Dated {
                    provider: r.provider.clone(),
                    service_tier: None,
                    model,
                    valid_from: r.valid_from,
                    valid_to: r.valid_to,
                    origin: origin.clone(),
                    check: false,
                    value: Modifier {
                        service_tier: r.service_tier.clone(),
                        inference_geo: r.inference_geo.clone(),
                        factor,
                    },
                });
            }
        }
        Ok(())
    }

    fn add_unit_prices(&mut self, f: &BookFile, origin: &Origin) -> Result<(), PriceError> {
        let o = origin.label();
        for r in &f.unit_price {
            let known = ["web_search_request", "code_execution_hour"];
            if !known.contains(&r.kind.as_str()) && !UNIT_KINDS.contains(&r.kind.as_str()) {
                return Err(PriceError::Invalid {
                    origin: o,
                    message: format!(
                        "unknown unit_price kind {:?} (web_search_request, code_execution_hour, \
                         or a usage unit: {})",
                        r.kind,
                        UNIT_KINDS.join(", ")
                    ),
                });
            }
            let price = check_rate(&o, &r.kind, r.price)?;
            self.unit_prices.push(Dated {
                provider: r.provider.clone(),
                service_tier: None,
                model: "*".into(),
                valid_from: r.valid_from,
                valid_to: r.valid_to,
                origin: origin.clone(),
                check: r.check,
                value: (r.kind.clone(), price),
            });
        }
        Ok(())
    }

    /// The row in force: overrides beat the default; then the latest `valid_from`.
    fn pick<'a, T>(rows: impl Iterator<Item = &'a Dated<T>>, d: NaiveDate) -> Option<&'a Dated<T>>
    where
        T: 'a,
    {
        rows.filter(|r| r.in_force(d))
            .max_by(|a, b| (&a.origin, a.valid_from).cmp(&(&b.origin, b.valid_from)))
    }

    /// The standard rates of `model` on `d`.
    pub fn base(&self, provider: &str, model: &str, d: NaiveDate) -> Option<&Dated<Rates>> {
        self.tiered(provider, model, d, None)
    }

    /// The rates a `[[model]]` row lists for one service tier (`None`: standard).
    pub fn tiered(
        &self,
        provider: &str,
        model: &str,
        d: NaiveDate,
        tier: Option<&str>,
    ) -> Option<&Dated<Rates>> {
        Self::pick(
            self.models.iter().filter(|r| {
                r.provider == provider && r.model == model && r.service_tier.as_deref() == tier
            }),
            d,
        )
    }

    pub fn long_context(&self, provider: &str, model: &str, d: NaiveDate) -> Option<&Dated<Rates>> {
        Self::pick(
            self.long_context
                .iter()
                .filter(|r| r.provider == provider && r.model == model),
            d,
        )
    }

    /// The factor for a tier or geo value on a model: a model-specific row beats `"*"`.
    pub fn factor(
        &self,
        provider: &str,
        model: &str,
        d: NaiveDate,
        tier: Option<&str>,
        geo: Option<&str>,
    ) -> Option<Decimal> {
        let matches = |r: &&Dated<Modifier>| {
            r.provider == provider
                && (tier.is_some() && r.value.service_tier.as_deref() == tier
                    || geo.is_some() && r.value.inference_geo.as_deref() == geo)
        };
        Self::pick(
            self.modifiers
                .iter()
                .filter(matches)
                .filter(|r| r.model == model),
            d,
        )
        .or_else(|| {
            Self::pick(
                self.modifiers
                    .iter()
                    .filter(matches)
                    .filter(|r| r.model == "*"),
                d,
            )
        })
        .map(|r| r.value.factor)
    }

    pub fn unit_price(
        &self,
        provider: crate::vocab::Provider,
        kind: &str,
        d: NaiveDate,
    ) -> Option<Decimal> {
        self.unit_price_of(provider.as_str(), kind, d)
    }

    /// The price of one unit of a usage `unit` in the lake's fixed point (scale 12), when the
    /// book has one on `d` ([`UNIT_KINDS`]).
    pub fn usage_unit_price(&self, provider: &str, unit: &str, d: NaiveDate) -> Option<i128> {
        if !UNIT_KINDS.contains(&unit) {
            return None;
        }
        self.unit_price_of(provider, unit, d)
            .and_then(|p| fixed(p, 12))
    }

    /// [`PriceBook::unit_price`] by the provider's name as the book and the lake write it.
    fn unit_price_of(&self, provider: &str, kind: &str, d: NaiveDate) -> Option<Decimal> {
        Self::pick(
            self.unit_prices
                .iter()
                .filter(|r| r.provider == provider && r.value.0 == kind),
            d,
        )
        .map(|r| r.value.1)
    }

    /// Rates for one kind of usage row on UTC day `d`; `Err` is the reason it is unpriced.
    pub fn rate(
        &self,
        provider: &str,
        model: Option<&str>,
        d: NaiveDate,
        tier: Option<&str>,
        context: Option<&str>,
        geo: Option<&str>,
    ) -> Result<Rate, String> {
        let Some(model_raw) = model else {
            return Err("usage export not grouped by model: no model to price".into());
        };
        let model = canonical_model(model_raw);
        let label = match tier {
            None | Some("standard") => format!("{model_raw} on {d}"),
            Some(t) => format!("{model_raw} ({t}) on {d}"),
        };
        // A tier the book lists rates for (OpenAI's batch, flex, priority) is priced at them;
        // any other tier is the standard rates times the tier's modifier.
        let listed = tier
            .filter(|t| *t != "standard")
            .and_then(|t| self.tiered(provider, &model, d, Some(t)));
        let Some(base) = listed.or_else(|| self.base(provider, &model, d)) else {
            return self
                .learned_rate(provider, &model, d, [tier, context, geo])
                .ok_or_else(|| format!("no list price for model {model_raw} on {d}"))?;
        };
        let mut per = base.value;
        if context == Some("200k-1M")
            && let Some(lc) = self.long_context(provider, &model, d)
        {
            per = lc.value;
        }
        let (mut factor, note) = match listed {
            Some(_) => (Decimal::ONE, None),
            None => self.tier_factor(provider, &model, model_raw, d, tier)?,
        };
        if let Some(g) = geo
            && g != "global"
            && let Some(f) = self.factor(provider, &model, d, None, Some(g))
        {
            factor *= f;
        }
        let web = self.unit_price_of(provider, "web_search_request", d);
        let mut per_mtok = [None; N_CLASSES];
        let mut per_token = [None; N_CLASSES];
        for (i, class) in TokenClass::ALL.iter().enumerate() {
            let Some(r) = per[i].map(|r| (r * factor).normalize()) else {
                continue;
            };
            per_mtok[i] = Some(r);
            // $/MTok at scale 6 is $/token at scale 12.
            per_token[i] = Some(fixed(r, 6).ok_or_else(|| {
                format!(
                    "rate {r}/MTok for {model} ({}) has more than 6 decimals",
                    class.price_field()
                )
            })?);
        }
        Ok(Rate {
            per_mtok,
            web_search: web.map(|w| w.normalize()),
            per_token,
            per_search: search_units(web)?,
            label,
            note,
            provider_list: false,
        })
    }

    /// The factor a service tier puts on the standard rates, and the note when the tier was
    /// assumed at standard; `Err` when the tier has no price.
    fn tier_factor(
        &self,
        provider: &str,
        model: &str,
        model_raw: &str,
        d: NaiveDate,
        tier: Option<&str>,
    ) -> Result<(Decimal, Option<String>), String> {
        match tier {
            None | Some("standard") => Ok((Decimal::ONE, None)),
            // Anthropic's priority tier is sold by commitment, not listed: rated at standard,
            // said so. Every other provider's unlisted tier is unpriced (below).
            Some(t @ ("priority" | "priority_on_demand")) if provider == "anthropic" => {
                Ok(match self.factor(provider, model, d, Some(t), None) {
                    Some(f) => (f, None),
                    None => (
                        Decimal::ONE,
                        Some(format!("{t} tier has no list price: rated at standard list")),
                    ),
                })
            }
            Some(t) => self
                .factor(provider, model, d, Some(t), None)
                .map(|f| (f, None))
                .ok_or_else(|| {
                    format!(
                        "no list price for service tier {t} of {model_raw} on {d} (add a [[prices.modifier]] with service_tier = \"{t}\", or a [[prices.model]] row for the tier)"
                    )
                }),
        }
    }

    /// The rate the provider's list amounts imply for a model the book lacks: the key with
    /// the row's tier, context and geo, else the one the cost rows did not split.
    fn learned_rate(
        &self,
        provider: &str,
        model: &str,
        d: NaiveDate,
        [tier, ctx, geo]: [Option<&str>; 3],
    ) -> Option<Result<Rate, String>> {
        let key = |t: Option<&str>, c: Option<&str>, g: Option<&str>| {
            (
                provider.to_string(),
                model.to_string(),
                d,
                t.map(str::to_string),
                c.map(str::to_string),
                g.map(str::to_string),
            )
        };
        let per = self
            .learned
            .get(&key(tier, ctx, geo))
            .or_else(|| self.learned.get(&key(None, None, None)))?;
        let web = self.unit_price_of(provider, "web_search_request", d);
        Some((|| {
            let mut per_token = [None; N_CLASSES];
            for (t, r) in per_token.iter_mut().zip(per) {
                let Some(r) = r else { continue };
                *t = Some(fixed(*r, 6).ok_or_else(|| {
                    format!("provider-list rate {r}/MTok has more than 6 decimals")
                })?);
            }
            Ok(Rate {
                per_mtok: *per,
                web_search: web.map(|w| w.normalize()),
                per_token,
                per_search: search_units(web)?,
                label: format!("{model} on {d} (provider_list)"),
                note: Some(format!(
                    "{model} is not in the price book: priced at the rate the provider's list \
                     amount implies on {d} (provider_list)"
                )),
                provider_list: true,
            })
        })())
    }

    /// The book with `learned` rates; its fingerprint changes with them, so rated data
    /// re-rates when the provider's list amounts say something new.
    pub fn with_learned(mut self, learned: Learned) -> PriceBook {
        if learned.is_empty() {
            return self;
        }
        let mut h = blake3::Hasher::new();
        h.update(self.fingerprint.as_bytes());
        h.update(format!("{learned:?}").as_bytes());
        self.fingerprint = h.finalize().to_hex()[..16].to_string();
        self.learned = learned;
        self
    }
}

/// The price of one web search request in the lake's fixed point (`None`: no price).
fn search_units(web: Option<Decimal>) -> Result<Option<i128>, String> {
    web.map(|w| {
        fixed(w, 12).ok_or_else(|| format!("web search price {w} has more than 12 decimals"))
    })
    .transpose()
}

/// `d × 10^scale` as an exact integer, or `None` if `d` has more fractional digits.
fn fixed(d: Decimal, scale: u32) -> Option<i128> {
    let d = d.normalize();
    if d.scale() > scale {
        return None;
    }
    d.mantissa().checked_mul(10i128.pow(scale - d.scale()))
}

/// A memo of rates by (day, model, tier, context, geo): rating asks the same few questions
/// millions of times, so a hit allocates nothing.
pub struct RateCache<'a> {
    book: &'a PriceBook,
    key: String,
    memo: HashMap<NaiveDate, HashMap<String, Result<Rate, String>>>,
}

impl<'a> RateCache<'a> {
    /// The book the rates come from.
    pub fn book(&self) -> &'a PriceBook {
        self.book
    }
    pub fn new(book: &'a PriceBook) -> Self {
        Self {
            book,
            key: String::new(),
            memo: HashMap::new(),
        }
    }
    pub fn get(
        &mut self,
        provider: &str,
        model: Option<&str>,
        d: NaiveDate,
        tier: Option<&str>,
        ctx: Option<&str>,
        geo: Option<&str>,
    ) -> &Result<Rate, String> {
        self.key.clear();
        for part in [Some(provider), model, tier, ctx, geo] {
            match part {
                Some(p) => self.key.push_str(p),
                None => self.key.push('\u{0}'),
            }
            self.key.push('\u{1f}');
        }
        let day = self.memo.entry(d).or_default();
        if !day.contains_key(self.key.as_str()) {
            day.insert(
                self.key.clone(),
                self.book.rate(provider, model, d, tier, ctx, geo),
            );
        }
        &day[self.key.as_str()]
    }
}
