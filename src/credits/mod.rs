//! Credits: the buyer-side ledger of prepaid, auto-reload, promotional and monthly credit —
//! what each lot holds, what expires unused, the balance, burn and runway, the auto-reloads,
//! and the Console balances checked as assertions.
//!
//! Owns: reading the ledger tables and the daily list cost (`sql/credits_daily.sql` over
//! `rated_usage`), and the ledger itself ([`ledger`], pure). Must not: price (reads
//! `rated_usage`), write to the lake, or round (that is `present`). The ledger stays on the
//! provider's UTC days.

pub mod ledger;

use std::collections::BTreeMap;

use chrono::NaiveDate;

pub use ledger::{Finding, Ledger, LedgerError, LotStatus, Options};

use crate::lake::LakeError;
use crate::lake::io as lio;
use crate::lake::ledger as ll;
use crate::lake::{Layout, Snapshot, Table};
use crate::model::{BalanceSnapshot, CreditLot};
use crate::money::Money;
use crate::query::{QueryError, Sql};

pub const DAILY_SQL: &str = include_str!("../../sql/credits_daily.sql");

#[derive(Debug, thiserror::Error)]
pub enum CreditsError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("credits_daily.sql returned day {0:?}, not a YYYY-MM-DD date")]
    Day(String),
    #[error("credits_daily.sql returned provider {0:?}, which this version does not know")]
    Provider(String),
}

/// The ledger's inputs as the lake holds them.
pub struct Inputs {
    pub lots: Vec<CreditLot>,
    pub snapshots: Vec<BalanceSnapshot>,
    /// (provider, UTC day) → list cost of the priced usage.
    pub daily: BTreeMap<(crate::vocab::Provider, NaiveDate), Money>,
    /// Usage rows with no list price (they consume no credit here).
    pub unpriced_rows: i128,
}

pub fn inputs(layout: &Layout) -> Result<Inputs, CreditsError> {
    let mut lots = Vec::new();
    for b in lio::read_all(&layout.table_file(Table::CreditLots))? {
        lots.extend(ll::credit_lots_rows(&b)?.into_iter().map(|s| s.item));
    }
    let mut snapshots = Vec::new();
    for b in lio::read_all(&layout.table_file(Table::BalanceSnapshots))? {
        snapshots.extend(ll::balance_snapshots_rows(&b)?.into_iter().map(|s| s.item));
    }
    let mut daily = BTreeMap::new();
    let mut unpriced_rows = 0;
    let mut s = Sql::new();
    if s.rated_table(layout)? {
        let f = s.run(DAILY_SQL)?;
        let (prov, day) = (f.text("provider")?, f.text("day")?);
        let (cost, unpriced) = (f.money("list_cost_usd")?, f.count("unpriced_rows")?);
        for i in 0..f.height() {
            let d = day[i].clone().unwrap_or_default();
            let date =
                NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| CreditsError::Day(d))?;
            let p = prov[i].clone().unwrap_or_default();
            let p = crate::vocab::Provider::parse(&p).ok_or(CreditsError::Provider(p))?;
            daily.insert((p, date), cost[i].unwrap_or(Money::ZERO));
            unpriced_rows += unpriced[i].unwrap_or(0);
        }
    }
    Ok(Inputs {
        lots,
        snapshots,
        daily,
        unpriced_rows,
    })
}

/// The ledger as of `opts.as_of`, with its findings.
/// The burn is measured where each provider's usage data ends (`freshness`), not over a gap.
pub fn credits(layout: &Snapshot, opts: &Options) -> Result<(Ledger, Inputs), CreditsError> {
    let inputs = inputs(layout)?;
    let mut opts = opts.clone();
    for s in crate::freshness::freshness(layout, opts.as_of)?.spans {
        if s.table == "usage" {
            opts.data_through.insert(s.provider, s.last_day());
        }
    }
    // Credit from a provider whose usage was never loaded: its burn is unknown, not zero.
    for lot in &inputs.lots {
        if !opts.data_through.contains_key(&lot.provider) {
            opts.unmeasured.insert(lot.provider);
        }
    }
    let opts = &opts;
    let mut l = ledger::compute(&inputs.lots, &inputs.snapshots, &inputs.daily, opts)?;
    ledger::lot_findings(&mut l, opts);
    Ok((l, inputs))
}
