//! Exports of the lake in other people's formats: FOCUS 1.4 (the FinOps Foundation's open
//! billing format) Cost and Usage, Invoice Detail and Billing Period of one UTC month.
//!
//! Owns: reading what an export needs under one snapshot (the month's usage groups from one
//! Arrow pass, `scan.rs`, the same as `sql/focus_usage.sql` over the month's rated parts; the
//! credits ledger's daily draws; the invoices), pricing each charge
//! at the public book beside the book in force (`focus.rs` builds the rows, pure) and writing
//! the datasets as Parquet or CSV, atomically and byte-for-byte reproducibly (`write.rs`).
//! Must not: write the lake, decide a rate (it asks `pricing`), or round anything but an
//! invoice's cents (allocated so each invoice's rows sum to its total).

pub mod focus;
pub mod scan;
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
    #[error(
        "cannot write {path} (the export's directory must be one tokenledger can create files in)"
    )]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path} as Parquet")]
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
    let groups = priced_groups(view, req)?;
    let unpriced = groups
        .iter()
        .filter(|g| g.pricing_status == "UNPRICED")
        .count();
    let inputs = crate::credits::inputs(view)?;
    let end = month.end_day();
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
    let built = focus::build(&focus::Inputs {
        month,
        groups: &groups,
        draws: &draws,
        lots: &inputs.lots,
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

/// One usage group before pricing: its named head (no charges yet), its unit, and the sums in
/// [`scan::COUNTS`] / [`scan::COSTS`] order (a cost is `None` when no row had one).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageGroup {
    pub head: focus::Group,
    pub unit: Option<String>,
    pub counts: [i128; 9],
    pub costs: [Option<i128>; 9],
}

/// The pricing parts of the month's UTC partition, every provider.
fn month_parts(view: &Snapshot, month: Month) -> Result<Vec<std::path::PathBuf>, ExportError> {
    let month = month.key();
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
    Ok(parts)
}

/// The month's usage groups by one Arrow pass over its parts (`scan.rs`), named and assigned
/// to teams as `sql/focus_usage.sql` does, in a stable order.
pub fn usage_groups(
    view: &Snapshot,
    month: Month,
    teams: &[crate::config::Team],
) -> Result<Vec<UsageGroup>, ExportError> {
    let mut g = scan::Groups::default();
    for p in month_parts(view, month)? {
        let usage = view.usage_of(&p);
        if usage.is_file() {
            scan::part(&mut g, &p, &usage)?;
        }
    }
    let (ws_names, key_names) = latest_names(view)?;
    let rows = crate::report::team_rows(teams)?;
    let team_of = |kind: &str, v: Option<&str>| {
        v.and_then(|v| rows.iter().find(|r| r.kind == kind && r.name == v))
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a day");
    let mut merged: BTreeMap<Vec<Option<String>>, (UsageGroup, u32)> = BTreeMap::new();
    for ((k, day), sums) in g.groups {
        let t = |j: usize| g.strings.get(k[j]).map(str::to_string);
        let (ws, key) = (t(1), t(3));
        let ws_name = ws.as_ref().and_then(|w| ws_names.get(w).cloned()).or(t(2));
        let key_name = key
            .as_ref()
            .and_then(|k| key_names.get(k).cloned())
            .or(t(4));
        let team = team_of("api_key", key.as_deref())
            .or_else(|| team_of("api_key", key_name.as_deref()))
            .or_else(|| team_of("workspace", ws.as_deref()))
            .or_else(|| team_of("workspace", ws_name.as_deref()));
        let day = (day != i32::MIN).then(|| epoch + chrono::TimeDelta::days(day.into()));
        let text = [
            day.map(|d| d.to_string()),
            t(0),
            ws,
            ws_name,
            key,
            key_name,
            team.map(|r| r.team.clone()),
            team.and_then(|r| r.cost_center.clone()),
            t(9),
            t(5),
            t(6),
            t(7),
            t(8),
            t(10),
        ];
        let entry = match merged.entry(text.to_vec()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let at = |c: &str| {
                    TEXT.iter()
                        .position(|n| *n == c)
                        .and_then(|k| text[k].clone())
                };
                let head = group_head(at)?;
                let unit = text[12].clone();
                let (counts, costs) = ([0; 9], [None; 9]);
                let group = UsageGroup {
                    head,
                    unit,
                    counts,
                    costs,
                };
                e.insert((group, NONE_INGEST))
            }
        };
        add_sums(entry, &sums, &g.strings);
    }
    Ok(merged.into_values().map(|(g, _)| g).collect())
}

/// Adds a scanned group's sums to the named group it falls in (as SQL's SUM: a cost is null
/// only when every row's was).
fn add_sums(
    (group, last): &mut (UsageGroup, u32),
    sums: &scan::Sums,
    strings: &crate::intern::Strings,
) {
    for j in 0..9 {
        group.counts[j] += sums.counts[j];
        group.costs[j] = match (group.costs[j], sums.costs[j]) {
            (a, None) => a,
            (None, b) => b,
            (Some(a), Some(b)) => Some(a + b),
        };
    }
    let (first, latest) = (
        strings.get(sums.first_ingest).unwrap_or_default(),
        strings.get(sums.last_ingest).unwrap_or_default(),
    );
    if *last == NONE_INGEST || first < group.head.first_ingest_id.as_str() {
        group.head.first_ingest_id = first.to_string();
    }
    if *last == NONE_INGEST || latest > group.head.last_ingest_id.as_str() {
        group.head.last_ingest_id = latest.to_string();
        *last = sums.last_ingest;
    }
}

/// Workspace id → name and API key id → name from the latest lists.
type Names = BTreeMap<String, String>;

fn latest_names(view: &Snapshot) -> Result<(Names, Names), ExportError> {
    let (wn, kn) = crate::query::name_frames(view)?;
    let names = |f: &Frame, id: &str, name: &str| -> Result<Names, ExportError> {
        let (ids, names) = (f.text(id)?, f.text(name)?);
        Ok(ids
            .into_iter()
            .zip(names)
            .filter_map(|(i, n)| Some((i?, n?)))
            .collect())
    };
    Ok((
        names(&wn, "workspace_id", "workspace_name")?,
        names(&kn, "api_key_id", "api_key_name")?,
    ))
}

/// No ingest seen yet.
const NONE_INGEST: u32 = crate::intern::NONE;

/// The month's usage groups through `sql/focus_usage.sql` (what analysts run; a test checks
/// it gives what [`usage_groups`] gives).
pub fn usage_groups_sql(
    view: &Snapshot,
    month: Month,
    teams: &[crate::config::Team],
) -> Result<Vec<UsageGroup>, ExportError> {
    let parts = month_parts(view, month)?;
    let mut s = Sql::new();
    if parts.is_empty() || !s.rated_parts(view, &parts)? {
        return Ok(Vec::new());
    }
    crate::report::register_teams(&mut s, &crate::report::team_rows(teams)?)?;
    let (wn, kn) = crate::query::name_frames(view)?;
    s.frame("workspaces", wn);
    s.frame("api_keys", kn);
    let f = s.run(&USAGE_SQL.replace("{{month}}", &month.key()))?;
    let cols = Columns::of(&f)?;
    let mut out = Vec::with_capacity(f.height());
    for i in 0..f.height() {
        out.push(UsageGroup {
            head: group_head(|c| cols.text[c][i].clone())?,
            unit: cols.text["unit"][i].clone(),
            counts: std::array::from_fn(|k| cols.counts[k][i].unwrap_or(0)),
            costs: std::array::from_fn(|k| cols.costs[k][i].map(Money::units)),
        });
    }
    Ok(out)
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

/// The columns of `sql/focus_usage.sql`'s result.
struct Columns {
    text: BTreeMap<&'static str, Vec<Option<String>>>,
    /// Token classes, then web search requests, then the unit quantity.
    counts: Vec<Vec<Option<i128>>>,
    costs: Vec<Vec<Option<Money>>>,
}

impl Columns {
    fn of(f: &Frame) -> Result<Columns, ExportError> {
        let mut text = BTreeMap::new();
        for c in TEXT
            .into_iter()
            .chain(["first_ingest_id", "last_ingest_id"])
        {
            text.insert(c, f.text(c)?);
        }
        Ok(Columns {
            text,
            counts: scan::COUNTS
                .iter()
                .map(|c| f.count(c))
                .collect::<Result<_, _>>()?,
            costs: scan::COSTS
                .iter()
                .map(|c| f.money(c))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The month's groups, each charge priced at both books.
fn priced_groups(view: &Snapshot, req: &Request) -> Result<Vec<focus::Group>, ExportError> {
    let groups = usage_groups(view, req.month, req.teams)?;
    let mut books = Books {
        in_force: RateCache::new(req.book),
        public: RateCache::new(req.list_book),
        same: req.book.fingerprint == req.list_book.fingerprint,
    };
    Ok(groups
        .into_iter()
        .map(|u| {
            let mut g = u.head.clone();
            g.charges = charges(&u, &mut books);
            g
        })
        .collect())
}

/// A group's text columns (`t`: a column's value by name), parsed.
fn group_head(t: impl Fn(&str) -> Option<String>) -> Result<focus::Group, ExportError> {
    let bad =
        |what: &'static str, value: String, why: String| ExportError::Value { what, value, why };
    let day = match t("utc_day") {
        Some(d) => Some(
            NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map_err(|e| bad("utc_day", d.clone(), e.to_string()))?,
        ),
        None => None,
    };
    let provider = match t("provider") {
        Some(p) => Some(Provider::parse(&p).ok_or_else(|| {
            bad(
                "provider",
                p.clone(),
                "not a provider tokenledger knows".into(),
            )
        })?),
        None => None,
    };
    Ok(focus::Group {
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
        first_ingest_id: t("first_ingest_id").unwrap_or_default(),
        last_ingest_id: t("last_ingest_id").unwrap_or_default(),
        charges: Vec::new(),
    })
}

/// The two books a charge is priced at, each with its memo of rates.
struct Books<'a> {
    in_force: RateCache<'a>,
    public: RateCache<'a>,
    /// No override: the public book is the book in force.
    same: bool,
}

/// The per-unit price of charge `k` (a token class, web search, or the row's unit) at a book.
fn unit_price(
    book: &mut RateCache,
    g: &focus::Group,
    k: usize,
    unit: Option<&str>,
) -> Option<i128> {
    let p = g.provider.map(Provider::as_str).unwrap_or_default();
    let day = g.day.unwrap_or(NaiveDate::MIN);
    if k > N_CLASSES {
        return book
            .book()
            .usage_unit_price(p, unit.unwrap_or_default(), day);
    }
    let (tier, ctx, geo) = (
        g.service_tier.as_deref(),
        g.context_window.as_deref(),
        g.inference_geo.as_deref(),
    );
    let rate = book
        .get(p, g.model.as_deref(), day, tier, ctx, geo)
        .as_ref()
        .ok()?;
    if k == N_CLASSES {
        rate.per_search
    } else {
        rate.per_token[k]
    }
}

/// The non-zero charges of a group: quantity, cost in force (the rated sum), and each book's
/// unit price where it explains the cost exactly.
fn charges(u: &UsageGroup, books: &mut Books) -> Vec<focus::Charge> {
    let g = &u.head;
    let unit = u.unit.clone();
    let priced = g.pricing_status != "UNPRICED";
    let mut out = Vec::new();
    for k in 0..N_CLASSES + 2 {
        let qty = u.counts[k];
        if qty == 0 {
            continue;
        }
        let cost = u.costs[k].filter(|_| priced);
        let (name, unit_name) = match k {
            k if k < N_CLASSES => {
                let c = TokenClass::ALL[k].cost_column();
                (c.trim_start_matches("cost_").to_string(), "Tokens")
            }
            k if k == N_CLASSES => ("web_search".to_string(), "Requests"),
            _ => {
                let u = unit.clone().unwrap_or_default();
                let name = unit_label(&u);
                (u, name)
            }
        };
        let in_force = unit_price(&mut books.in_force, g, k, unit.as_deref());
        let contracted_unit = in_force.filter(|p| cost == p.checked_mul(qty));
        let public = if books.same || !priced {
            None
        } else {
            unit_price(&mut books.public, g, k, unit.as_deref())
        };
        // Without an override, or where the public book does not price it (a model only an
        // override prices), the price in force is the only list price there is.
        let (list_cost, list_unit) = match public {
            Some(p) => (p.checked_mul(qty), Some(p)),
            None => (cost, contracted_unit),
        };
        out.push(focus::Charge {
            name,
            unit: unit_name,
            quantity: qty,
            contracted_cost: cost,
            contracted_unit_price: contracted_unit,
            list_cost,
            list_unit_price: list_unit,
        });
    }
    out
}

/// FOCUS's unit of a usage unit (`images` → `Images`).
fn unit_label(u: &str) -> &'static str {
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
