//! Exports of the lake in other people's formats: FOCUS 1.4 (the FinOps Foundation's open
//! billing format) Cost and Usage, Invoice Detail and Billing Period of one UTC month.
//!
//! Owns: reading what an export needs under one snapshot (`sql/focus_usage.sql` over the
//! month's rated parts, the credits ledger's daily draws, the invoices), pricing each charge
//! at the public book beside the book in force (`focus.rs` builds the rows, pure) and writing
//! the datasets as Parquet or CSV, atomically and byte-for-byte reproducibly (`write.rs`).
//! Must not: write the lake, decide a rate (it asks `pricing`), or round anything but an
//! invoice's cents (allocated so each invoice's rows sum to its total).

pub mod focus;
pub mod write;

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::credits::ledger;
use crate::lake::{Snapshot, Table};
use crate::money::Money;
use crate::pricing::{PriceBook, RateCache};
use crate::query::{Frame, Sql};
use crate::vocab::{Month, N_CLASSES, Provider, TokenClass};

pub use focus::{Account, Focus};

/// `sql/focus_usage.sql`: the month's usage groups with their token counts and costs.
pub const USAGE_SQL: &str = include_str!("../../sql/focus_usage.sql");

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    Credits(#[from] crate::credits::CreditsError),
    #[error("{what} {value:?} in the lake is not valid: {why}")]
    Value {
        what: &'static str,
        value: String,
        why: String,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path} as Parquet: {source}")]
    Parquet {
        path: std::path::PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
}

/// What the export is asked.
pub struct Request<'a> {
    pub month: Month,
    /// The book in force (overrides and provider-list rates included): `ContractedCost`.
    pub book: &'a PriceBook,
    /// The public book (no overrides; provider-list rates included): `ListCost`.
    pub list_book: &'a PriceBook,
    pub teams: &'a [crate::config::Team],
    pub accounts: &'a BTreeMap<Provider, Account>,
    /// The day the export is made as of: a month not over by then is `Open`.
    pub as_of: NaiveDate,
}

/// The three datasets of `req.month`, with how many usage rows were UNPRICED.
pub fn focus(view: &Snapshot, req: &Request) -> Result<(Focus, usize), ExportError> {
    let month = req.month;
    let groups = usage_groups(view, req)?;
    let unpriced = groups
        .iter()
        .filter(|g| g.pricing_status == "UNPRICED")
        .count();
    let inputs = crate::credits::inputs(view)?;
    let (start, end) = focus::bounds(month);
    let draws = ledger::draws(&inputs.lots, &inputs.daily, end.pred_opt().unwrap_or(end));
    let invoices = month_invoices(view, month)?;
    let fresh = crate::freshness::freshness(view, req.as_of)?;
    let mut closed = BTreeMap::new();
    for p in groups
        .iter()
        .filter_map(|g| g.provider)
        .chain(invoices.iter().map(|i| i.0.provider))
    {
        let covered = fresh.spans.iter().any(|s| {
            s.provider == p && s.table == "usage" && s.last_day() >= end.pred_opt().unwrap_or(end)
        });
        let invoiced = invoices.iter().any(|i| i.0.provider == p);
        closed.insert(p, req.as_of >= end && (covered || invoiced));
    }
    let lots: Vec<_> = inputs
        .lots
        .iter()
        .filter(|l| l.purchased_at >= start && l.purchased_at < end)
        .cloned()
        .collect();
    let built = focus::build(&focus::Inputs {
        month,
        groups: &groups,
        draws: &draws,
        lots: &lots,
        invoices: &invoices,
        accounts: req.accounts,
        closed: &closed,
    });
    Ok((built, unpriced))
}

/// The invoices whose period starts in `month`, each with the ingest that loaded it.
fn month_invoices(
    view: &Snapshot,
    month: Month,
) -> Result<Vec<(crate::model::Invoice, String)>, ExportError> {
    let lines = crate::lake::io::read_all(&view.table_file(Table::InvoiceLines))?;
    let mut out = Vec::new();
    for b in crate::lake::io::read_all(&view.table_file(Table::Invoices))? {
        for s in crate::lake::ledger::invoices_rows(&b, &lines)? {
            if crate::model::month_key(s.item.invoice.period_start) == month.key() {
                out.push((s.item.invoice, s.ingest_id));
            }
        }
    }
    out.sort_by(|a, b| (a.0.provider, &a.0.number).cmp(&(b.0.provider, &b.0.number)));
    Ok(out)
}

/// The usage groups of the month's UTC partition (every provider), each charge priced.
fn usage_groups(view: &Snapshot, req: &Request) -> Result<Vec<focus::Group>, ExportError> {
    let month = req.month.key();
    let mut parts = Vec::new();
    for p in view.providers(Table::UsagePricing)? {
        parts.extend(
            view.month_parts(Table::UsagePricing, p, &month)
                .map_err(|source| crate::query::QueryError::Io {
                    path: view.month_dir(Table::UsagePricing, p, &month),
                    source,
                })?,
        );
    }
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let mut s = Sql::new();
    if !s.rated_parts(view, &parts)? {
        return Ok(Vec::new());
    }
    crate::report::register_teams(&mut s, &crate::report::team_rows(req.teams)?)?;
    let (wn, kn) = crate::query::name_frames(view)?;
    s.frame("workspaces", wn);
    s.frame("api_keys", kn);
    let f = s.run(&USAGE_SQL.replace("{{month}}", &month))?;
    groups_of(&f, req)
}

/// The text columns of a group, by name.
const TEXT: [&str; 14] = [
    "utc_day",
    "provider",
    "workspace_id",
    "workspace_name",
    "api_key_id",
    "api_key_name",
    "team",
    "cost_center",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "unit",
    "pricing_status",
];

fn groups_of(f: &Frame, req: &Request) -> Result<Vec<focus::Group>, ExportError> {
    let mut text = BTreeMap::new();
    for c in TEXT.into_iter().chain(["last_ingest_id"]) {
        text.insert(c, f.text(c)?);
    }
    let counts: Vec<Vec<Option<i128>>> = TokenClass::ALL
        .iter()
        .map(|c| f.count(c.column()))
        .chain([f.count("web_search_requests"), f.count("unit_quantity")])
        .collect::<Result<_, _>>()?;
    let costs: Vec<Vec<Option<Money>>> = TokenClass::ALL
        .iter()
        .map(|c| f.money(c.cost_column()))
        .chain([f.money("cost_web_search"), f.money("cost_unit")])
        .collect::<Result<_, _>>()?;
    let mut book = RateCache::new(req.book);
    let mut list = RateCache::new(req.list_book);
    let same_book = req.book.fingerprint == req.list_book.fingerprint;
    let mut out = Vec::with_capacity(f.height());
    for i in 0..f.height() {
        let t = |c: &str| text[c][i].clone();
        let day =
            match t("utc_day") {
                Some(d) => Some(NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|e| {
                    ExportError::Value {
                        what: "utc_day",
                        value: d.clone(),
                        why: e.to_string(),
                    }
                })?),
                None => None,
            };
        let provider = match t("provider") {
            Some(p) => Some(Provider::parse(&p).ok_or_else(|| ExportError::Value {
                what: "provider",
                value: p.clone(),
                why: "not a provider tokenledger knows".into(),
            })?),
            None => None,
        };
        let mut g = focus::Group {
            day,
            provider,
            workspace_id: t("workspace_id"),
            workspace_name: t("workspace_name"),
            api_key_id: t("api_key_id"),
            api_key_name: t("api_key_name"),
            team: t("team"),
            cost_center: t("cost_center"),
            model: t("model"),
            service_tier: t("service_tier"),
            context_window: t("context_window"),
            inference_geo: t("inference_geo"),
            pricing_status: t("pricing_status").unwrap_or_default(),
            last_ingest_id: t("last_ingest_id").unwrap_or_default(),
            charges: Vec::new(),
        };
        let key = (
            provider.map(Provider::as_str).unwrap_or_default(),
            g.model.clone(),
            day.unwrap_or(NaiveDate::MIN),
            g.service_tier.clone(),
            g.context_window.clone(),
            g.inference_geo.clone(),
        );
        let rate = |c: &mut RateCache| -> Option<crate::pricing::Rate> {
            c.get(
                key.0,
                key.1.as_deref(),
                key.2,
                key.3.as_deref(),
                key.4.as_deref(),
                key.5.as_deref(),
            )
            .as_ref()
            .ok()
            .cloned()
        };
        let (in_force, public) = (
            rate(&mut book),
            if same_book { None } else { rate(&mut list) },
        );
        let priced = g.pricing_status != "UNPRICED";
        for k in 0..N_CLASSES + 2 {
            let qty = counts[k][i].unwrap_or(0);
            if qty == 0 {
                continue;
            }
            let cost = costs[k][i].map(Money::units).filter(|_| priced);
            let (name, unit, per) = match k {
                k if k < N_CLASSES => {
                    let c = TokenClass::ALL[k];
                    let name = c.cost_column().trim_start_matches("cost_").to_string();
                    let per =
                        |r: &Option<crate::pricing::Rate>| r.as_ref().and_then(|r| r.per_token[k]);
                    (name, "Tokens", (per(&in_force), per(&public)))
                }
                k if k == N_CLASSES => {
                    let per =
                        |r: &Option<crate::pricing::Rate>| r.as_ref().and_then(|r| r.per_search);
                    (
                        "web_search".to_string(),
                        "Requests",
                        (per(&in_force), per(&public)),
                    )
                }
                _ => {
                    let u = t("unit").unwrap_or_default();
                    let d = day.unwrap_or(NaiveDate::MIN);
                    let per_in = req.book.usage_unit_price(key.0, &u, d);
                    let per_pub = if same_book {
                        None
                    } else {
                        req.list_book.usage_unit_price(key.0, &u, d)
                    };
                    let unit = unit_name(&u);
                    (u, unit, (per_in, per_pub))
                }
            };
            // The unit price is shown where it explains the cost exactly.
            let contracted_unit = per.0.filter(|p| cost == p.checked_mul(qty));
            let (list_cost, list_unit) = if same_book || !priced {
                (cost, contracted_unit)
            } else {
                match per.1 {
                    Some(p) => (p.checked_mul(qty), Some(p)),
                    // The public book does not price it (a model only an override prices):
                    // the price in force is the only list price there is.
                    None => (cost, contracted_unit),
                }
            };
            g.charges.push(focus::Charge {
                name,
                unit,
                quantity: qty,
                contracted_cost: cost,
                contracted_unit_price: contracted_unit,
                list_cost,
                list_unit_price: list_unit,
            });
        }
        out.push(g);
    }
    Ok(out)
}

/// FOCUS's unit of a usage unit (`images` → `Images`).
fn unit_name(u: &str) -> &'static str {
    match u {
        "images" => "Images",
        "characters" => "Characters",
        "seconds" => "Seconds",
        "bytes" => "Bytes",
        "sessions" => "Sessions",
        "file_search_calls" => "Requests",
        _ => "Units",
    }
}
