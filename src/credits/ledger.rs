//! The credit ledger as a pure function: lots, balance snapshots and daily list cost in, the
//! state of every lot, the balance, burn, runway, reloads and findings out. No IO.
//!
//! The rules (the same text is in `tokenledger credits --help` and the README):
//! - each UTC day's total list cost of a provider consumes that provider's lots usable that
//!   day (`purchased_at <= day < expires_at`), soonest expiry first, then earliest purchase,
//!   then `lot_id`; cost no lot covers is *uncovered*;
//! - a `monthly` lot grants its amount each cycle (`purchased_at` + k months); a cycle's credit
//!   is usable until the next cycle starts and then lapses (it never rolls over);
//! - burn = the list cost of the 30 days ending on the last day the provider's usage data
//!   covers (the as-of date when it is current), ÷ 30; days after the data ends and up to the
//!   as-of date are *estimated* at that burn (a gap in the exports is never zero spend), and
//!   the position says from which day; a Console balance after the data ends that the data
//!   alone reaches proves nothing was spent until its day, so the data counts as current to it;
//! - `at_risk_usd` = what the lot would still hold at its expiry if that burn continued from
//!   the day after the as-of date in the same order (for an expired lot: what it held when it
//!   expired, shown as `lapsed_usd`);
//! - runway = the first day after the as-of date whose burn no usable lot fully covers.
//!
//! Must not: read the lake or price usage (its inputs come from `credits::inputs`), or round.

use crate::vocab::Provider;
use std::collections::BTreeMap;

use chrono::{Datelike, Months, NaiveDate, TimeDelta};
use serde::Serialize;

use crate::model::{BalanceSnapshot, CreditKind, CreditLot};
use crate::money::Money;

/// The burn window, in days.
pub const BURN_DAYS: i64 = 30;
/// How far the projection looks for a runway when monthly credit never runs out.
const RUNWAY_HORIZON_DAYS: i64 = 3 * 366;
/// A balance assertion holds within a cent.
pub const ASSERTION_TOLERANCE: Money = Money::from_units(10_000_000_000);

/// What the ledger is asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub as_of: NaiveDate,
    /// Lots expiring within these many days with money left are findings (default 60, 30, 7).
    pub horizons: Vec<i64>,
    /// A runway shorter than this many days is a finding (default 30). A lot expiring within
    /// the largest horizon is `expiring soon`.
    pub runway_min_days: i64,
    /// More auto-reloads than this in one day is a storm.
    pub max_reloads_per_day: usize,
    /// The auto-reload configured at the provider, if known: (threshold, top-up amount).
    pub auto_reload: Option<(Money, Money)>,
    /// The last UTC day each provider's usage exports cover (`freshness`); a provider not
    /// here is taken as current to the as-of date.
    pub data_through: BTreeMap<Provider, NaiveDate>,
    /// Providers whose usage the lake has never covered: no burn is measured for them, so no
    /// finding that depends on it (at risk, low runway) is made; `NoUsageData` says so.
    pub unmeasured: std::collections::BTreeSet<Provider>,
}

impl Options {
    pub fn new(as_of: NaiveDate) -> Self {
        Options {
            as_of,
            horizons: vec![60, 30, 7],
            runway_min_days: 30,
            max_reloads_per_day: 2,
            auto_reload: None,
            data_through: BTreeMap::new(),
            unmeasured: Default::default(),
        }
    }
    fn soon(&self) -> i64 {
        self.horizons.iter().copied().max().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LotStatus {
    Active,
    ExpiringSoon,
    AtRisk,
    ExpiredUnused,
    Exhausted,
    /// Its provider's usage was never loaded: what it will consume is unknown.
    NoUsageData,
}

impl LotStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ExpiringSoon => "expiring soon",
            Self::AtRisk => "at risk",
            Self::ExpiredUnused => "expired unused",
            Self::Exhausted => "exhausted",
            Self::NoUsageData => "no usage data",
        }
    }
}

/// One lot as of the as-of date (a monthly lot: its current, or last, cycle).
#[derive(Debug, Clone, Serialize)]
pub struct LotRow {
    pub provider: Provider,
    pub lot_id: String,
    pub kind: CreditKind,
    pub purchased_at: NaiveDate,
    /// The lot's expiry (a monthly lot: the end of its current cycle).
    pub expires_at: Option<NaiveDate>,
    /// Monthly lots: the current cycle `[cycle_start, expires_at)`.
    pub cycle_start: Option<NaiveDate>,
    pub amount_usd: Money,
    pub consumed_usd: Money,
    pub remaining_usd: Money,
    pub at_risk_usd: Money,
    /// Credit lost to expiry so far (a monthly lot: every past cycle's unused credit).
    pub lapsed_usd: Money,
    /// What the shown piece held when it expired (0 while it is usable): amount = consumed +
    /// remaining + this, on every row.
    pub unused_at_expiry_usd: Money,
    /// The latest expiry (of the lot or one of its cycles) that lapsed credit: (day, amount).
    pub last_lapse: Option<(NaiveDate, Money)>,
    pub status: LotStatus,
    pub days_to_expiry: Option<i64>,
}

/// One provider's position.
#[derive(Debug, Clone, Serialize)]
pub struct Position {
    pub provider: Provider,
    pub balance_usd: Money,
    pub burn_per_day_usd: Money,
    /// The first day the burn is not fully covered; `None`: no burn, or beyond the horizon.
    pub runway_date: Option<NaiveDate>,
    pub runway_days: Option<i64>,
    /// List cost no lot covered, all history up to the as-of date.
    pub uncovered_usd: Money,
    pub uncovered_last_30d_usd: Money,
    /// The first and last day of usage the ledger saw.
    pub usage_from: Option<NaiveDate>,
    pub usage_to: Option<NaiveDate>,
    /// The last day the burn was measured on (the last day the usage data covers, or the
    /// as-of date).
    pub burn_through: NaiveDate,
    /// Days after `burn_through` up to the as-of date, consumed at the burn as an estimate
    /// (0: the data is current).
    pub estimated_days: i64,
}

/// A balance the Console showed, checked against the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct Assertion {
    pub provider: Provider,
    pub as_of: NaiveDate,
    pub snapshot_usd: Money,
    pub computed_usd: Money,
    /// snapshot − computed.
    pub difference_usd: Money,
    pub holds: bool,
    /// The lots holding the computed balance that day.
    pub lots: Vec<String>,
}

/// Auto-reloads made in one ISO week (Monday first).
#[derive(Debug, Clone, Serialize)]
pub struct ReloadWeek {
    pub provider: Provider,
    pub week_start: NaiveDate,
    pub reloads: usize,
    pub amount_usd: Money,
}

/// Auto-reload settings from the published practice, on the 30-day burn.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    pub provider: Provider,
    /// At least 48 hours of burn.
    pub threshold_min_usd: Money,
    /// One to two weeks of burn.
    pub top_up_min_usd: Money,
    pub top_up_max_usd: Money,
    /// What the configured values lack, if anything.
    pub verdict: Vec<String>,
}

/// What the nightly run and the mail act on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    Expiring {
        provider: Provider,
        lot_id: String,
        expires_at: NaiveDate,
        days_left: i64,
        horizon_days: i64,
        remaining_usd: Money,
    },
    AtRisk {
        provider: Provider,
        lot_id: String,
        expires_at: NaiveDate,
        at_risk_usd: Money,
    },
    LowRunway {
        provider: Provider,
        runway_date: NaiveDate,
        runway_days: i64,
        min_days: i64,
    },
    BalanceMismatch {
        provider: Provider,
        as_of: NaiveDate,
        snapshot_usd: Money,
        computed_usd: Money,
        difference_usd: Money,
        lots: Vec<String>,
    },
    ReloadStorm {
        provider: Provider,
        day: NaiveDate,
        reloads: usize,
        amount_usd: Money,
    },
    /// Credit bought from a provider whose usage the lake has never covered: its burn, runway
    /// and at-risk amounts are unknown (never "no burn"): load that provider's usage.
    NoUsageData {
        provider: Provider,
        balance_usd: Money,
    },
    /// Credit that expired unused within the last [`LAPSE_DAYS`] (a lot, or a monthly cycle).
    Lapsed {
        provider: Provider,
        lot_id: String,
        expired_at: NaiveDate,
        lapsed_usd: Money,
    },
}

/// A lapse this recent (days before the as-of date) is a finding.
pub const LAPSE_DAYS: i64 = 31;

/// The whole answer of `tokenledger credits`.
#[derive(Debug, Clone, Serialize)]
pub struct Ledger {
    pub as_of: NaiveDate,
    pub lots: Vec<LotRow>,
    pub positions: Vec<Position>,
    pub assertions: Vec<Assertion>,
    pub reloads: Vec<ReloadWeek>,
    pub advice: Vec<Advice>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the sum of {0} overflows 128 bits; no figure is printed rather than a wrong one")]
    Overflow(&'static str),
}

fn add(a: Money, b: Money, what: &'static str) -> Result<Money, LedgerError> {
    a.checked_add(b).ok_or(LedgerError::Overflow(what))
}

/// A usable amount of credit: a lot, or one cycle of a monthly lot.
#[derive(Debug, Clone)]
struct Piece {
    lot: usize,
    start: NaiveDate,
    /// Exclusive; `NaiveDate::MAX` never.
    end: NaiveDate,
    amount: Money,
    left: Money,
}

impl Piece {
    fn usable(&self, day: NaiveDate) -> bool {
        self.start <= day && day < self.end && self.left.is_positive()
    }
}

/// The consumption order: soonest expiry, earliest purchase, lot id (then cycle start).
fn order(pieces: &[Piece], lots: &[CreditLot]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..pieces.len()).collect();
    idx.sort_by(|&a, &b| {
        let (p, q) = (&pieces[a], &pieces[b]);
        let (l, m) = (&lots[p.lot], &lots[q.lot]);
        (p.end, l.purchased_at, &l.lot_id, p.start).cmp(&(
            q.end,
            m.purchased_at,
            &m.lot_id,
            q.start,
        ))
    });
    idx
}

/// The pieces of one provider's lots known on the as-of date, monthly cycles up to `until`.
fn pieces(lots: &[CreditLot], as_of: NaiveDate, until: NaiveDate) -> Vec<Piece> {
    let mut out = Vec::new();
    for (i, l) in lots.iter().enumerate() {
        if l.purchased_at > as_of {
            continue; // not bought yet on the as-of date
        }
        let amount = Money::from_decimal(l.amount).expect("lot amounts fit the lake's scale");
        if l.kind != CreditKind::Monthly {
            let end = l.expires_at.unwrap_or(NaiveDate::MAX);
            out.push(Piece {
                lot: i,
                start: l.purchased_at,
                end,
                amount,
                left: amount,
            });
            continue;
        }
        let stop = l.expires_at.unwrap_or(NaiveDate::MAX).min(until);
        for k in 0.. {
            let start = cycle(l.purchased_at, k);
            if start >= stop {
                break;
            }
            let end = cycle(l.purchased_at, k + 1).min(l.expires_at.unwrap_or(NaiveDate::MAX));
            out.push(Piece {
                lot: i,
                start,
                end,
                amount,
                left: amount,
            });
        }
    }
    out
}

/// The start of cycle `k` of a subscription that began on `d` (month arithmetic from the
/// anchor, so a 31 January start renews on 28/29 February, then 31 March).
fn cycle(d: NaiveDate, k: u32) -> NaiveDate {
    d.checked_add_months(Months::new(k))
        .unwrap_or(NaiveDate::MAX)
}

/// The consumption order with the dead at its front skipped: pieces that expired or ran empty
/// never become usable again, so each day's scan starts after them (history and projection
/// stay linear in the number of pieces, not quadratic).
struct Queue {
    ord: Vec<usize>,
    head: usize,
}

impl Queue {
    fn new(pieces: &[Piece], lots: &[CreditLot]) -> Self {
        Queue {
            ord: order(pieces, lots),
            head: 0,
        }
    }
    /// Consumes up to `demand` from the pieces usable on `day`, in order; returns what no piece
    /// covered.
    fn consume(&mut self, pieces: &mut [Piece], day: NaiveDate, demand: Money) -> Money {
        self.consume_with(pieces, day, demand, |_, _| {})
    }
    /// [`Queue::consume`], telling `took` each piece drawn on and how much.
    fn consume_with(
        &mut self,
        pieces: &mut [Piece],
        day: NaiveDate,
        mut demand: Money,
        mut took: impl FnMut(usize, Money),
    ) -> Money {
        let mut alive_seen = false;
        for k in self.head..self.ord.len() {
            if !demand.is_positive() {
                break;
            }
            let p = &mut pieces[self.ord[k]];
            if p.usable(day) {
                let take = demand.min(p.left);
                p.left = Money::from_units(p.left.units() - take.units());
                demand = Money::from_units(demand.units() - take.units());
                if take.is_positive() {
                    took(self.ord[k], take);
                }
            }
            let dead = !p.left.is_positive() || p.end <= day;
            if dead && !alive_seen {
                self.head = k + 1;
            } else {
                alive_seen = true;
            }
        }
        demand
    }
}

/// What one lot paid of one UTC day's list cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Draw {
    pub lot_id: String,
    pub kind: CreditKind,
    pub amount: Money,
}

/// Each UTC day's draws on each provider's lots, in the ledger's order, over the days `daily`
/// holds up to `through` (real data only: no estimated days). The same consumption as
/// [`compute`]: a day's draws depend only on the days before it.
pub fn draws(
    lots: &[CreditLot],
    daily: &BTreeMap<(Provider, NaiveDate), Money>,
    through: NaiveDate,
) -> BTreeMap<(Provider, NaiveDate), Vec<Draw>> {
    let mut out: BTreeMap<(Provider, NaiveDate), Vec<Draw>> = BTreeMap::new();
    let mut providers: Vec<Provider> = lots.iter().map(|l| l.provider).collect();
    providers.sort();
    providers.dedup();
    for p in providers {
        let mine: Vec<CreditLot> = lots.iter().filter(|l| l.provider == p).cloned().collect();
        let mut pieces = pieces(&mine, through, through + TimeDelta::days(1));
        let mut queue = Queue::new(&pieces, &mine);
        let days = daily.range((p, NaiveDate::MIN)..=(p, through));
        for (&(_, day), &cost) in days {
            let mut drawn = Vec::new();
            queue.consume_with(&mut pieces, day, cost, |i, m| drawn.push((i, m)));
            let list = out.entry((p, day)).or_default();
            for (i, amount) in drawn {
                let lot = &mine[pieces[i].lot];
                list.push(Draw {
                    lot_id: lot.lot_id.clone(),
                    kind: lot.kind,
                    amount,
                });
            }
        }
    }
    out.retain(|_, v| !v.is_empty());
    out
}

/// One provider's history up to the as-of date: pieces consumed, uncovered cost, assertions.
struct History {
    pieces: Vec<Piece>,
    uncovered: Money,
    uncovered_30: Money,
    assertions: Vec<Assertion>,
}

fn history(
    lots: &[CreditLot],
    snapshots: &[&BalanceSnapshot],
    daily: &BTreeMap<NaiveDate, Money>,
    opts: &Options,
    until: NaiveDate,
) -> Result<History, LedgerError> {
    let mut pieces = pieces(lots, opts.as_of, until);
    let mut queue = Queue::new(&pieces, lots);
    let window_start = opts.as_of - TimeDelta::days(BURN_DAYS - 1);
    let mut h = History {
        pieces: Vec::new(),
        uncovered: Money::ZERO,
        uncovered_30: Money::ZERO,
        assertions: Vec::new(),
    };
    let mut snaps = snapshots
        .iter()
        .filter(|s| s.as_of <= opts.as_of)
        .peekable();
    let mut assertions = Vec::new();
    let mut check = |pieces: &[Piece], s: &BalanceSnapshot| -> Result<(), LedgerError> {
        let holding: Vec<&Piece> = pieces
            .iter()
            .filter(|p| p.start <= s.as_of && s.as_of < p.end)
            .collect();
        let computed =
            Money::sum(holding.iter().map(|p| p.left)).ok_or(LedgerError::Overflow("balance"))?;
        let snapshot =
            Money::from_decimal(s.balance).expect("snapshot amounts fit the lake's scale");
        let difference = snapshot
            .checked_sub(computed)
            .ok_or(LedgerError::Overflow("balance"))?;
        let mut names: Vec<String> = holding
            .iter()
            .filter(|p| p.left.is_positive())
            .map(|p| lots[p.lot].lot_id.clone())
            .collect();
        names.dedup();
        assertions.push(Assertion {
            provider: s.provider,
            as_of: s.as_of,
            snapshot_usd: snapshot,
            computed_usd: computed,
            difference_usd: difference,
            holds: difference.abs() <= ASSERTION_TOLERANCE,
            lots: names,
        });
        Ok(())
    };
    for (&day, &cost) in daily.range(..=opts.as_of) {
        while let Some(s) = snaps.next_if(|s| s.as_of < day) {
            check(&pieces, s)?;
        }
        let short = queue.consume(&mut pieces, day, cost);
        h.uncovered = add(h.uncovered, short, "uncovered cost")?;
        if day >= window_start {
            h.uncovered_30 = add(h.uncovered_30, short, "uncovered cost")?;
        }
    }
    for s in snaps {
        check(&pieces, s)?;
    }
    h.pieces = pieces;
    h.assertions = assertions;
    Ok(h)
}

/// The projection after the as-of date at a constant burn: what each piece holds when it
/// ends, and the first day not fully covered.
fn project(
    pieces: &[Piece],
    lots: &[CreditLot],
    as_of: NaiveDate,
    burn: Money,
) -> (Vec<Money>, Option<NaiveDate>) {
    let mut p = pieces.to_vec();
    let first = as_of + TimeDelta::days(1);
    let horizon = first + TimeDelta::days(RUNWAY_HORIZON_DAYS);
    // Between two boundaries (a piece starting or ending) the usable set does not change, so
    // a segment's whole demand is consumed in order at once: the same as day by day.
    let mut bounds: Vec<NaiveDate> = p
        .iter()
        .flat_map(|x| [x.start, x.end])
        .filter(|d| *d > first && *d < horizon)
        .chain([first, horizon])
        .collect();
    bounds.sort();
    bounds.dedup();
    let mut runway = None;
    let mut queue = Queue::new(&p, lots);
    for w in bounds.windows(2) {
        let (t0, t1) = (w[0], w[1]);
        let demand = Money::from_units(burn.units().saturating_mul((t1 - t0).num_days() as i128));
        let short = queue.consume(&mut p, t0, demand);
        if runway.is_none() && short.is_positive() {
            // Covered: demand − short; whole days of burn in it, then the first day short.
            let covered = demand.units() - short.units();
            runway = Some(t0 + TimeDelta::days((covered / burn.units()) as i64));
        }
    }
    // A piece is consumed only while usable, so what it holds now is what it held at its end
    // (for one ending tomorrow: everything; beyond the horizon: what is left there).
    (p.iter().map(|x| x.left).collect(), runway)
}

/// The 30-day burn of one provider.
fn burn(daily: &BTreeMap<NaiveDate, Money>, as_of: NaiveDate) -> Result<Money, LedgerError> {
    let from = as_of - TimeDelta::days(BURN_DAYS - 1);
    let sum = Money::sum(daily.range(from..=as_of).map(|(_, m)| *m))
        .ok_or(LedgerError::Overflow("burn"))?;
    Ok(sum.div_round(BURN_DAYS as i128))
}

/// The ledger of every provider's lots.
pub fn compute(
    lots: &[CreditLot],
    snapshots: &[BalanceSnapshot],
    daily: &BTreeMap<(Provider, NaiveDate), Money>,
    opts: &Options,
) -> Result<Ledger, LedgerError> {
    let mut providers: Vec<Provider> = lots
        .iter()
        .map(|l| l.provider)
        .chain(daily.keys().map(|k| k.0))
        .collect();
    providers.sort();
    providers.dedup();
    let mut out = Ledger {
        as_of: opts.as_of,
        lots: Vec::new(),
        positions: Vec::new(),
        assertions: Vec::new(),
        reloads: Vec::new(),
        advice: Vec::new(),
        findings: Vec::new(),
    };
    for p in providers {
        let mine: Vec<CreditLot> = lots.iter().filter(|l| l.provider == p).cloned().collect();
        let snaps: Vec<&BalanceSnapshot> = {
            let mut v: Vec<&BalanceSnapshot> =
                snapshots.iter().filter(|s| s.provider == p).collect();
            v.sort_by_key(|s| s.as_of);
            v
        };
        let days: BTreeMap<NaiveDate, Money> = daily
            .iter()
            .filter(|(k, _)| k.0 == p)
            .map(|(k, v)| (k.1, *v))
            .collect();
        provider_ledger(p, &mine, &snaps, &days, opts, &mut out)?;
    }
    Ok(out)
}

/// The history with the days after the data ends spent at the burn, never at zero; the last
/// day of real (or proven idle) data and the burn measured to it.
fn estimated_history(
    provider: Provider,
    (lots, snaps, daily): (
        &[CreditLot],
        &[&BalanceSnapshot],
        &BTreeMap<NaiveDate, Money>,
    ),
    opts: &Options,
    until: NaiveDate,
) -> Result<(History, NaiveDate, Money), LedgerError> {
    let mut through = opts
        .data_through
        .get(&provider)
        .copied()
        .unwrap_or(opts.as_of)
        .min(opts.as_of);
    let mut h = history(lots, snaps, daily, opts, until)?;
    // A Console balance after the data ends that the data alone reaches proves nothing was
    // spent in between: the data is good up to that day.
    if let Some(proven) = h
        .assertions
        .iter()
        .filter(|a| a.holds && a.as_of > through)
        .map(|a| a.as_of)
        .max()
    {
        through = proven.min(opts.as_of);
    }
    let burn = burn(daily, through)?;
    // The days the exports do not reach yet spend at the burn, as an estimate, never zero.
    if through < opts.as_of {
        let mut filled = daily.clone();
        for d in through.iter_days().skip(1).take_while(|d| *d <= opts.as_of) {
            filled.insert(d, burn);
        }
        h = history(lots, snaps, &filled, opts, until)?;
    }
    Ok((h, through, burn))
}

fn provider_ledger(
    provider: Provider,
    lots: &[CreditLot],
    snaps: &[&BalanceSnapshot],
    daily: &BTreeMap<NaiveDate, Money>,
    opts: &Options,
    out: &mut Ledger,
) -> Result<(), LedgerError> {
    let until = opts.as_of + TimeDelta::days(RUNWAY_HORIZON_DAYS + 2);
    let (h, through, burn) = estimated_history(provider, (lots, snaps, daily), opts, until)?;
    let (at_end, runway) = project(&h.pieces, lots, opts.as_of, burn);
    let balance = Money::sum(
        h.pieces
            .iter()
            .filter(|x| x.start <= opts.as_of && opts.as_of < x.end)
            .map(|x| x.left),
    )
    .ok_or(LedgerError::Overflow("balance"))?;
    for (i, lot) in lots.iter().enumerate() {
        if lot.purchased_at > opts.as_of {
            continue;
        }
        out.lots.push(lot_row(lot, i, &h.pieces, &at_end, opts)?);
    }
    let runway_days = runway.map(|d| (d - opts.as_of).num_days());
    out.positions.push(Position {
        provider,
        balance_usd: balance,
        burn_per_day_usd: burn,
        runway_date: runway,
        runway_days,
        uncovered_usd: h.uncovered,
        uncovered_last_30d_usd: h.uncovered_30,
        usage_from: daily.range(..=opts.as_of).next().map(|(d, _)| *d),
        usage_to: daily.range(..=through).next_back().map(|(d, _)| *d),
        burn_through: through,
        estimated_days: (opts.as_of - through).num_days(),
    });
    if opts.unmeasured.contains(&provider) && !lots.is_empty() {
        out.findings.push(Finding::NoUsageData {
            provider,
            balance_usd: balance,
        });
    } else if let (Some(d), Some(n)) = (runway, runway_days)
        && n < opts.runway_min_days
        && !lots.is_empty()
    {
        out.findings.push(Finding::LowRunway {
            provider,
            runway_date: d,
            runway_days: n,
            min_days: opts.runway_min_days,
        });
    }
    for a in &h.assertions {
        if !a.holds {
            out.findings.push(Finding::BalanceMismatch {
                provider: a.provider,
                as_of: a.as_of,
                snapshot_usd: a.snapshot_usd,
                computed_usd: a.computed_usd,
                difference_usd: a.difference_usd,
                lots: a.lots.clone(),
            });
        }
    }
    out.assertions.extend(h.assertions);
    reloads(provider, lots, opts, out)?;
    if !opts.unmeasured.contains(&provider) {
        out.advice.push(advice(provider, burn, opts));
    }
    Ok(())
}

fn lot_row(
    lot: &CreditLot,
    i: usize,
    pieces: &[Piece],
    at_end: &[Money],
    opts: &Options,
) -> Result<LotRow, LedgerError> {
    let mine: Vec<usize> = (0..pieces.len()).filter(|&k| pieces[k].lot == i).collect();
    // The piece the row shows: the cycle in force on the as-of date, else the last one.
    let shown = mine
        .iter()
        .copied()
        .find(|&k| pieces[k].start <= opts.as_of && opts.as_of < pieces[k].end)
        .or(mine
            .iter()
            .copied()
            .rfind(|&k| pieces[k].start <= opts.as_of))
        .expect("a lot bought by the as-of date has a piece");
    let p = &pieces[shown];
    let expired = p.end <= opts.as_of;
    let mut lapsed = Money::ZERO;
    let mut last_lapse = None;
    for &k in &mine {
        if pieces[k].end <= opts.as_of {
            lapsed = add(lapsed, pieces[k].left, "lapsed credit")?;
            if pieces[k].left.is_positive() {
                last_lapse = Some((pieces[k].end, pieces[k].left));
            }
        }
    }
    let at_risk = if expired { Money::ZERO } else { at_end[shown] };
    let expires_at = (p.end != NaiveDate::MAX).then_some(p.end);
    let days_to_expiry = expires_at.map(|e| (e - opts.as_of).num_days());
    let status = if expired {
        if p.left.is_positive() {
            LotStatus::ExpiredUnused
        } else {
            LotStatus::Exhausted
        }
    } else if !p.left.is_positive() {
        LotStatus::Exhausted
    } else if opts.unmeasured.contains(&lot.provider) {
        LotStatus::NoUsageData
    } else if at_risk.is_positive() {
        LotStatus::AtRisk
    } else if days_to_expiry.is_some_and(|d| d <= opts.soon()) {
        LotStatus::ExpiringSoon
    } else {
        LotStatus::Active
    };
    Ok(LotRow {
        provider: lot.provider,
        lot_id: lot.lot_id.clone(),
        kind: lot.kind,
        purchased_at: lot.purchased_at,
        expires_at,
        cycle_start: (lot.kind == CreditKind::Monthly).then_some(p.start),
        amount_usd: p.amount,
        consumed_usd: Money::from_units(p.amount.units() - p.left.units()),
        // An expired lot holds nothing: what it had left is lapsed, not remaining.
        remaining_usd: if expired { Money::ZERO } else { p.left },
        unused_at_expiry_usd: if expired { p.left } else { Money::ZERO },
        last_lapse,
        at_risk_usd: at_risk,
        lapsed_usd: lapsed,
        status,
        days_to_expiry,
    })
}

/// Findings of lots: expiring within a horizon with money left, and at risk.
pub fn lot_findings(ledger: &mut Ledger, opts: &Options) {
    let mut horizons = opts.horizons.clone();
    horizons.sort();
    let mut found = Vec::new();
    for l in &ledger.lots {
        if let Some((day, amount)) = l.last_lapse
            && (opts.as_of - day).num_days() < LAPSE_DAYS
        {
            found.push(Finding::Lapsed {
                provider: l.provider,
                lot_id: l.lot_id.clone(),
                expired_at: day,
                lapsed_usd: amount,
            });
        }
        let (Some(exp), Some(days)) = (l.expires_at, l.days_to_expiry) else {
            continue;
        };
        if days <= 0 || !l.remaining_usd.is_positive() {
            continue;
        }
        // A monthly cycle ends every month by design: only what it lapses is a finding.
        if let Some(&h) = horizons.iter().find(|&&h| days <= h)
            && l.kind != CreditKind::Monthly
        {
            found.push(Finding::Expiring {
                provider: l.provider,
                lot_id: l.lot_id.clone(),
                expires_at: exp,
                days_left: days,
                horizon_days: h,
                remaining_usd: l.remaining_usd,
            });
        }
        if l.at_risk_usd.is_positive() && !opts.unmeasured.contains(&l.provider) {
            found.push(Finding::AtRisk {
                provider: l.provider,
                lot_id: l.lot_id.clone(),
                expires_at: exp,
                at_risk_usd: l.at_risk_usd,
            });
        }
    }
    ledger.findings.splice(0..0, found);
}

fn reloads(
    provider: Provider,
    lots: &[CreditLot],
    opts: &Options,
    out: &mut Ledger,
) -> Result<(), LedgerError> {
    let mut weeks: BTreeMap<NaiveDate, (usize, Money)> = BTreeMap::new();
    let mut days: BTreeMap<NaiveDate, (usize, Money)> = BTreeMap::new();
    for l in lots
        .iter()
        .filter(|l| l.kind == CreditKind::AutoReload && l.purchased_at <= opts.as_of)
    {
        let amount = Money::from_decimal(l.amount).expect("lot amounts fit the lake's scale");
        let monday = l.purchased_at
            - TimeDelta::days(l.purchased_at.weekday().num_days_from_monday() as i64);
        for (map, key) in [(&mut weeks, monday), (&mut days, l.purchased_at)] {
            let e = map.entry(key).or_insert((0, Money::ZERO));
            e.0 += 1;
            e.1 = add(e.1, amount, "auto-reloads")?;
        }
    }
    for (week_start, (reloads, amount_usd)) in weeks {
        out.reloads.push(ReloadWeek {
            provider,
            week_start,
            reloads,
            amount_usd,
        });
    }
    for (day, (reloads, amount_usd)) in days {
        if reloads > opts.max_reloads_per_day {
            out.findings.push(Finding::ReloadStorm {
                provider,
                day,
                reloads,
                amount_usd,
            });
        }
    }
    Ok(())
}

fn advice(provider: Provider, burn: Money, opts: &Options) -> Advice {
    let times = |n: i128| burn.checked_mul(n).unwrap_or(Money::from_units(i128::MAX));
    let (threshold_min, lo, hi) = (times(2), times(7), times(14));
    let mut verdict = Vec::new();
    if let Some((threshold, amount)) = opts.auto_reload {
        if threshold < threshold_min {
            verdict.push(format!(
                "threshold ${} is under 48 hours of burn (${}): raise it",
                threshold.usd(),
                threshold_min.usd()
            ));
        }
        if amount < lo {
            verdict.push(format!(
                "top-up ${} is under one week of burn (${}): reloads will come often",
                amount.usd(),
                lo.usd()
            ));
        } else if amount > hi {
            verdict.push(format!(
                "top-up ${} is over two weeks of burn (${}): more credit sits until it expires",
                amount.usd(),
                hi.usd()
            ));
        }
    }
    Advice {
        provider,
        threshold_min_usd: threshold_min,
        top_up_min_usd: lo,
        top_up_max_usd: hi,
        verdict,
    }
}
