//! The chargeback of one month as figures: who pays what, exact and in the cents every part
//! of every mail shows (pure: reports in, bills out).
//!
//! Rounding happens once, here, top down, so that every table foots and cross-foots after
//! rounding and the same rounded figure appears in the team mail, the finance summary, the CSV
//! and the HTML report: the month total is rounded; the teams' cents are allocated to it
//! (largest remainder); each team's workspace × model lines and its key lines are allocated to
//! the team's cents. Subtotals by workspace or by model are sums of the line cents.
//!
//! Must not: read the lake, render, or deliver (that is `present::mail` and `mail::deliver`).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::config::Team;
use crate::money::{Money, allocate_cents_to, round_cents};
use crate::report::{Report, UNALLOCATED};
use crate::vocab::{Month, PricingStatus};

/// One workspace × model line of a team.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// The provider (`anthropic`, `openai`).
    pub provider: String,
    pub workspace_id: Option<String>,
    pub workspace_name: String,
    pub model: String,
    pub list_cost: Money,
    pub cents: i128,
}

/// One API key of a team (Console usage has no key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyLine {
    pub api_key_name: String,
    pub list_cost: Money,
    pub cents: i128,
}

/// What one team pays for the month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamBill {
    pub name: String,
    pub cost_center: Option<String>,
    pub recipients: Vec<String>,
    pub lines: Vec<Line>,
    pub keys: Vec<KeyLine>,
    /// The team's share of the shared workspaces' cost, exact and in cents (`None`: nothing
    /// shared or no allocation configured).
    pub shared: Option<(Money, i128)>,
    /// List cost per day and model (for the chart), exact.
    pub daily: BTreeMap<(NaiveDate, String), Money>,
    pub total: Money,
    pub cents: i128,
    /// The previous month's cents, when that month has usage.
    pub previous_cents: Option<i128>,
    /// The team's own top spenders and products, exact, most first ([`TOP`] at most; empty
    /// when the usage does not say: only Analytics usage queries do). Not a breakdown of the
    /// total: the shared pool and usage of no known actor or product are in neither.
    pub people: Vec<(String, Money)>,
    pub products: Vec<(String, Money)>,
    /// The team's total per provider: its own lines, and its shared share split as the pool
    /// is (exact, and cents that foot to the team's cents).
    pub providers: Vec<ProviderTotal>,
}

/// One provider's part of a total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderTotal {
    pub provider: String,
    pub list_cost: Money,
    pub cents: i128,
}

/// How many people and products a team's mail lists.
pub const TOP: usize = 5;

/// The name a person or caller is shown by: a user's email, else what their type says.
fn actor_label(kind: Option<&str>, id: &str, email: Option<&str>) -> String {
    match (kind, email) {
        (_, Some(e)) => e.to_string(),
        (Some("user_actor"), None) => format!("user {id}"),
        (Some("service_account_actor"), None) => format!("service account {id}"),
        (Some("api_actor"), None) => format!("API key {id}"),
        (Some("federated_actor"), None) => format!("federated {id}"),
        _ => id.to_string(),
    }
}

/// Each team's top people and products from the key report (team, workspace id and name, key
/// id and name, product, actor type, id and email); the shared workspaces' cost is no one's.
fn top_spenders(
    bills: &mut [TeamBill],
    by_key: &Report,
    shared: &[String],
    index: impl Fn(&str, &[TeamBill]) -> usize,
) {
    let mut people: Vec<BTreeMap<String, i128>> = vec![BTreeMap::new(); bills.len()];
    let mut products: Vec<BTreeMap<String, i128>> = vec![BTreeMap::new(); bills.len()];
    for l in &by_key.lines {
        let Some(cost) = l.list_cost else { continue };
        let team = dim(l, 0).unwrap_or_else(|| UNALLOCATED.into());
        if team == UNALLOCATED && is_shared(shared, &dim(l, 1), &dim(l, 2).unwrap_or_default()) {
            continue;
        }
        let i = index(&team, bills);
        if let Some(p) = dim(l, 5) {
            *products[i].entry(p).or_default() += cost.units();
        }
        if let Some(id) = dim(l, 7) {
            let label = actor_label(dim(l, 6).as_deref(), &id, dim(l, 8).as_deref());
            *people[i].entry(label).or_default() += cost.units();
        }
    }
    let top = |m: BTreeMap<String, i128>| {
        let mut v: Vec<(String, i128)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(TOP);
        v.into_iter()
            .map(|(k, u)| (k, Money::from_units(u)))
            .collect()
    };
    for (b, (p, q)) in bills.iter_mut().zip(people.into_iter().zip(products)) {
        b.people = top(p);
        b.products = top(q);
    }
}

impl TeamBill {
    fn empty(name: &str, cost_center: Option<String>, recipients: Vec<String>) -> TeamBill {
        TeamBill {
            name: name.into(),
            cost_center,
            recipients,
            lines: Vec::new(),
            keys: Vec::new(),
            shared: None,
            daily: BTreeMap::new(),
            total: Money::ZERO,
            cents: 0,
            previous_cents: None,
            people: Vec::new(),
            products: Vec::new(),
            providers: Vec::new(),
        }
    }
    /// Cents per workspace (by name), from the line cents: foots to the team's cents with the
    /// shared line.
    pub fn by_workspace(&self) -> Vec<(String, i128)> {
        let mut m: BTreeMap<String, i128> = BTreeMap::new();
        for l in &self.lines {
            *m.entry(l.workspace_name.clone()).or_default() += l.cents;
        }
        m.into_iter().collect()
    }
    /// Cents per model, from the line cents: cross-foots with [`TeamBill::by_workspace`].
    pub fn by_model(&self) -> Vec<(String, i128)> {
        let mut m: BTreeMap<String, i128> = BTreeMap::new();
        for l in &self.lines {
            *m.entry(l.model.clone()).or_default() += l.cents;
        }
        m.into_iter().collect()
    }
}

/// The cost of the shared workspaces nobody owns, before it is split across the teams.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedPool {
    /// The shared workspaces that had cost, by name.
    pub workspaces: Vec<String>,
    pub total: Money,
}

/// The month's chargeback: every configured team, then Unallocated (always, even at $0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bill {
    pub month: Month,
    pub teams: Vec<TeamBill>,
    /// The shared workspaces' cost the teams' `shared` lines split (`None`: none).
    pub shared: Option<SharedPool>,
    pub total: Money,
    pub cents: i128,
    /// Usage lines with no list price (not in any figure; the mail says so).
    pub unpriced_lines: usize,
    /// Models the price book lacks, priced at the rate the provider's list amount implies
    /// (`provider_list`; in the figures, and the mail says so).
    pub provider_list: Vec<String>,
    /// The total per provider (cents that foot to the bill's).
    pub providers: Vec<ProviderTotal>,
}

impl Bill {
    pub fn team(&self, name: &str) -> Option<&TeamBill> {
        self.teams.iter().find(|t| t.name == name)
    }
    /// What a team's shared line is, in words every output uses: "Share of Default (shared
    /// workspace): 81.1 % of $2,988.03, in proportion to own spend".
    pub fn shared_label(&self, team: &TeamBill) -> Option<String> {
        let ((share, _), pool) = (team.shared?, self.shared.as_ref()?);
        let p = pool.total.units();
        // Tenths of a percent, rounded half up, in integers.
        let tenths = if p == 0 {
            0
        } else {
            (share.units().saturating_mul(2000) / p + 1) / 2
        };
        let kind = if pool.workspaces.len() == 1 {
            "shared workspace"
        } else {
            "shared workspaces"
        };
        Some(format!(
            "Share of {} ({kind}): {}.{} % of ${}, in proportion to own spend",
            pool.workspaces.join(", "),
            tenths / 10,
            tenths % 10,
            pool.total.usd(),
        ))
    }
}

/// The reports a bill is made of (dims in these orders): team × workspace × model × provider, team ×
/// workspace × API key, team × workspace × day × model.
pub struct Reports<'a> {
    pub by_line: &'a Report,
    /// By team, workspace, API key, product and actor (the last two from Analytics usage
    /// queries; null elsewhere): the key table and each team's top people and products.
    pub by_key: &'a Report,
    pub by_day: &'a Report,
}

fn dim(line: &crate::report::Line, i: usize) -> Option<String> {
    line.dims.get(i).cloned().flatten()
}

/// Splits `amount` across `weights` in proportion, exactly to the unit (largest remainder), so
/// the shares add up to `amount`.
pub fn prorate(amount: i128, weights: &[i128]) -> Vec<i128> {
    // Only the proportions matter: weights too large for amount × weight to fit in 128 bits
    // are scaled down by powers of ten (to ~20 significant digits, far past a cent) rather than
    // overflowing; the shares still add up to `amount` exactly.
    let mut weights: Vec<i128> = weights.to_vec();
    let fits = |ws: &[i128]| {
        ws.iter()
            .try_fold(0i128, |a, w| a.checked_add(*w))
            .is_some()
            && ws.iter().all(|w| amount.checked_mul(*w).is_some())
    };
    while !fits(&weights) {
        weights.iter_mut().for_each(|w| *w /= 10);
    }
    let total: i128 = weights.iter().sum();
    if total <= 0 {
        return vec![0; weights.len()];
    }
    let mut shares: Vec<i128> = Vec::with_capacity(weights.len());
    let mut rems: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let p = amount * w;
        shares.push(p.div_euclid(total));
        rems.push((p.rem_euclid(total), i));
    }
    let mut missing = amount - shares.iter().sum::<i128>();
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut k = 0;
    while missing > 0 && !rems.is_empty() {
        shares[rems[k % rems.len()].1] += 1;
        missing -= 1;
        k += 1;
    }
    shares
}

/// Builds the bill of `month` from its reports. `shared` names workspaces (ids or names) whose
/// unowned cost is allocated across the teams in proportion to their own spend.
pub fn bill(
    month: Month,
    r: &Reports,
    teams: &[Team],
    shared: &[String],
    previous: Option<&Bill>,
) -> Bill {
    let mut bills: Vec<TeamBill> = teams
        .iter()
        .map(|t| TeamBill::empty(&t.name, t.cost_center.clone(), t.recipients.clone()))
        .collect();
    bills.push(TeamBill::empty(UNALLOCATED, None, Vec::new()));
    let index = |name: &str, bills: &[TeamBill]| {
        bills
            .iter()
            .position(|b| b.name == name)
            .unwrap_or(bills.len() - 1)
    };
    let mut shared_units = 0i128;
    let mut pool: BTreeMap<String, i128> = BTreeMap::new();
    let mut shared_names: Vec<String> = Vec::new();
    for l in &r.by_line.lines {
        let Some(cost) = l.list_cost else { continue };
        let team = dim(l, 0).unwrap_or_else(|| UNALLOCATED.into());
        let workspace_id = dim(l, 1);
        let workspace_name = dim(l, 2)
            .or(workspace_id.clone())
            .unwrap_or_else(|| "Default".into());
        let provider = dim(l, 4).unwrap_or_default();
        if team == UNALLOCATED && is_shared(shared, &workspace_id, &workspace_name) {
            shared_units += cost.units();
            *pool.entry(provider).or_default() += cost.units();
            if !shared_names.contains(&workspace_name) {
                shared_names.push(workspace_name);
            }
            continue;
        }
        let i = index(&team, &bills);
        bills[i].lines.push(Line {
            provider,
            workspace_id,
            workspace_name,
            model: dim(l, 3).unwrap_or_else(|| "(no model)".into()),
            list_cost: cost,
            cents: 0,
        });
    }
    for ((team, name), units) in key_units(r.by_key, shared) {
        let i = index(&team, &bills);
        bills[i].keys.push(KeyLine {
            api_key_name: name,
            list_cost: Money::from_units(units),
            cents: 0,
        });
    }
    top_spenders(&mut bills, r.by_key, shared, index);
    let weights = allocate_shared(&mut bills, shared_units);
    spread_daily(&mut bills, r.by_day, shared, &weights);
    let mut out = round_bills(month, bills, r.by_line.unpriced_lines, previous);
    let mut from_list: Vec<String> = r
        .by_line
        .lines
        .iter()
        .filter(|l| l.status == PricingStatus::ProviderList)
        .map(|l| dim(l, 3).unwrap_or_else(|| "(no model)".into()))
        .collect();
    from_list.sort();
    from_list.dedup();
    out.provider_list = from_list;
    split_by_provider(&mut out, &pool);
    shared_names.sort();
    out.shared = (shared_units != 0).then(|| SharedPool {
        workspaces: shared_names,
        total: Money::from_units(shared_units),
    });
    out
}

/// Each team's cost per day and model (for its chart); the shared workspaces' days are split
/// with the month's `weights`, so the charts show what is billed.
fn spread_daily(bills: &mut [TeamBill], by_day: &Report, shared: &[String], weights: &[i128]) {
    let mut shared_daily: BTreeMap<(NaiveDate, String), i128> = BTreeMap::new();
    for l in &by_day.lines {
        let Some(cost) = l.list_cost else { continue };
        let team = dim(l, 0).unwrap_or_else(|| UNALLOCATED.into());
        let (workspace_id, workspace_name) = (dim(l, 1), dim(l, 2).unwrap_or_default());
        let Some(day) = dim(l, 3).and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        let model = dim(l, 4).unwrap_or_else(|| "(no model)".into());
        if team == UNALLOCATED && is_shared(shared, &workspace_id, &workspace_name) {
            *shared_daily.entry((day, model)).or_default() += cost.units();
            continue;
        }
        let i = bills
            .iter()
            .position(|b| b.name == team)
            .unwrap_or(bills.len() - 1);
        let e = bills[i].daily.entry((day, model)).or_default();
        *e = Money::from_units(e.units() + cost.units());
    }
    for (key, units) in shared_daily {
        for (b, part) in bills.iter_mut().zip(prorate(units, weights)) {
            if part != 0 {
                let e = b.daily.entry(key.clone()).or_default();
                *e = Money::from_units(e.units() + part);
            }
        }
    }
}

/// Cost per (team, key name) from the team × workspace × key report. The keys of the shared
/// workspaces' unowned cost are in the shared line, not among a team's keys.
fn key_units(by_key: &Report, shared: &[String]) -> BTreeMap<(String, String), i128> {
    let mut out: BTreeMap<(String, String), i128> = BTreeMap::new();
    for l in &by_key.lines {
        let Some(cost) = l.list_cost else { continue };
        let team = dim(l, 0).unwrap_or_else(|| UNALLOCATED.into());
        let (workspace_id, workspace_name) = (dim(l, 1), dim(l, 2).unwrap_or_default());
        if team == UNALLOCATED && is_shared(shared, &workspace_id, &workspace_name) {
            continue;
        }
        let name = dim(l, 4)
            .or(dim(l, 3))
            .unwrap_or_else(|| "(Console, no key)".into());
        *out.entry((team, name)).or_default() += cost.units();
    }
    out
}

fn is_shared(shared: &[String], id: &Option<String>, name: &str) -> bool {
    shared
        .iter()
        .any(|s| Some(s) == id.as_ref() || s.as_str() == name)
}

/// The shared cost split across the teams (not Unallocated) by their own spend; with no team
/// spend it stays with Unallocated. The weights used, one per bill (Unallocated last).
fn allocate_shared(bills: &mut [TeamBill], shared_units: i128) -> Vec<i128> {
    let n = bills.len() - 1;
    let mut weights: Vec<i128> = bills[..n]
        .iter()
        .map(|b| b.lines.iter().map(|l| l.list_cost.units()).sum())
        .collect();
    if weights.iter().sum::<i128>() > 0 {
        weights.push(0);
    } else {
        weights = vec![0; n];
        weights.push(1);
    }
    if shared_units == 0 {
        return weights;
    }
    let shares = prorate(shared_units, &weights);
    for (b, s) in bills.iter_mut().zip(shares) {
        if s != 0 {
            b.shared = Some((Money::from_units(s), 0));
        }
    }
    weights
}

/// Rounds top down (see the module header) and fills totals and the previous month's cents.
fn round_bills(
    month: Month,
    mut bills: Vec<TeamBill>,
    unpriced_lines: usize,
    previous: Option<&Bill>,
) -> Bill {
    for b in &mut bills {
        let own: i128 = b.lines.iter().map(|l| l.list_cost.units()).sum();
        b.total = Money::from_units(own + b.shared.map_or(0, |s| s.0.units()));
        b.lines
            .sort_by(|x, y| (&x.workspace_name, &x.model).cmp(&(&y.workspace_name, &y.model)));
        b.keys.sort_by(|x, y| {
            y.list_cost
                .cmp(&x.list_cost)
                .then(x.api_key_name.cmp(&y.api_key_name))
        });
    }
    let total_units: i128 = bills.iter().map(|b| b.total.units()).sum();
    let cents = round_cents(total_units);
    let team_cents = allocate_cents_to(
        &bills.iter().map(|b| b.total.units()).collect::<Vec<_>>(),
        cents,
    );
    for (b, c) in bills.iter_mut().zip(team_cents) {
        b.cents = c;
        let shared = b.shared.map(|s| s.0.units());
        let mut items: Vec<i128> = b.lines.iter().map(|l| l.list_cost.units()).collect();
        items.extend(shared);
        let mut got = allocate_cents_to(&items, c);
        if let Some(s) = b.shared.as_mut() {
            s.1 = got.pop().unwrap_or(0);
        }
        for (l, c) in b.lines.iter_mut().zip(got) {
            l.cents = c;
        }
        // The key table foots to the same team cents, the shared line included.
        let items: Vec<i128> = b.keys.iter().map(|k| k.list_cost.units()).collect();
        let key_target = c - b.shared.map_or(0, |s| s.1);
        if !items.is_empty() {
            let got = allocate_cents_to(&items, key_target);
            for (k, c) in b.keys.iter_mut().zip(got) {
                k.cents = c;
            }
        }
        b.previous_cents = previous.and_then(|p| p.team(&b.name)).map(|p| p.cents);
    }
    Bill {
        month,
        teams: bills,
        shared: None,
        total: Money::from_units(total_units),
        cents,
        unpriced_lines,
        provider_list: Vec::new(),
        providers: Vec::new(),
    }
}

/// Exact per-provider amounts with cents allocated to foot to `cents`.
fn provider_totals(units: BTreeMap<String, i128>, cents: i128) -> Vec<ProviderTotal> {
    let got = allocate_cents_to(&units.values().copied().collect::<Vec<_>>(), cents);
    units
        .into_iter()
        .zip(got)
        .map(|((provider, u), cents)| ProviderTotal {
            provider,
            list_cost: Money::from_units(u),
            cents,
        })
        .collect()
}

/// Each team's and the bill's total per provider: own lines by their provider, a team's share
/// of the shared pool split as the pool is (the pool's own lines by provider).
fn split_by_provider(out: &mut Bill, pool: &BTreeMap<String, i128>) {
    let (names, weights): (Vec<&String>, Vec<i128>) = pool.iter().map(|(k, v)| (k, *v)).unzip();
    let mut all = pool.clone();
    for t in &mut out.teams {
        let mut own: BTreeMap<String, i128> = BTreeMap::new();
        for l in &t.lines {
            *own.entry(l.provider.clone()).or_default() += l.list_cost.units();
            *all.entry(l.provider.clone()).or_default() += l.list_cost.units();
        }
        if let Some((share, _)) = t.shared {
            for (n, p) in names.iter().zip(prorate(share.units(), &weights)) {
                *own.entry((*n).clone()).or_default() += p;
            }
        }
        t.providers = provider_totals(own, t.cents);
    }
    out.providers = provider_totals(all, out.cents);
}

/// `report --by team` as the bill charges it: per team its own usage (`share_of` empty) and,
/// as its own line, its share of the shared workspaces, tokens prorated like the cost (exactly,
/// largest remainder); Unallocated keeps only what no one shares. The cents are the bill's, so
/// the CLI, the mail, the HTML and the CSV show the same cents for a team. `by_workspace` is
/// the month's team × workspace report.
pub fn team_report(bill: &Bill, by_workspace: &Report, shared: &[String]) -> Report {
    use crate::report::Line as RLine;
    let add = |a: &mut [i128; crate::vocab::N_COUNTS], b: &[i128; crate::vocab::N_COUNTS]| {
        a.iter_mut().zip(b).for_each(|(x, y)| *x += y)
    };
    let mut own: BTreeMap<String, [i128; crate::vocab::N_COUNTS]> = BTreeMap::new();
    let mut pool = [0i128; crate::vocab::N_COUNTS];
    for l in by_workspace.lines.iter().filter(|l| l.list_cost.is_some()) {
        let team = dim(l, 0).unwrap_or_else(|| UNALLOCATED.into());
        let (id, name) = (dim(l, 1), dim(l, 2).unwrap_or_default());
        if team == UNALLOCATED && is_shared(shared, &id, &name) {
            add(&mut pool, &l.counts);
        } else {
            add(own.entry(team).or_default(), &l.counts);
        }
    }
    let weights: Vec<i128> = bill
        .teams
        .iter()
        .map(|t| t.shared.map_or(0, |s| s.0.units()))
        .collect();
    let split: Vec<Vec<i128>> = pool.iter().map(|c| prorate(*c, &weights)).collect();
    let mut lines = Vec::new();
    let mut cents = Vec::new();
    for (i, t) in bill.teams.iter().enumerate() {
        let shared_cents = t.shared.map_or(0, |s| s.1);
        let units: i128 = t.lines.iter().map(|l| l.list_cost.units()).sum();
        let counts = own.get(&t.name).copied().unwrap_or_default();
        if units != 0 || counts.iter().any(|c| *c != 0) {
            lines.push(RLine {
                dims: vec![Some(t.name.clone()), None],
                status: PricingStatus::Priced,
                counts,
                list_cost: Some(Money::from_units(units)),
            });
            cents.push(t.cents - shared_cents);
        }
        if let (Some((share, c)), Some(label)) = (t.shared, bill.shared_label(t)) {
            let mut counts = [0i128; crate::vocab::N_COUNTS];
            for (k, s) in split.iter().enumerate() {
                counts[k] = s[i];
            }
            lines.push(RLine {
                dims: vec![Some(t.name.clone()), Some(label)],
                status: PricingStatus::Priced,
                counts,
                list_cost: Some(share),
            });
            cents.push(c);
        }
    }
    // Unpriced lines stay visible, as in every report.
    for l in by_workspace.lines.iter().filter(|l| l.list_cost.is_none()) {
        lines.push(RLine {
            dims: vec![dim(l, 0), None],
            ..l.clone()
        });
    }
    Report {
        month: bill.month,
        dim_columns: vec!["team", "share_of"],
        lines,
        total_counts: by_workspace.total_counts,
        total_cost: bill.total,
        unpriced_lines: by_workspace.unpriced_lines,
        cents: Some(cents),
    }
}
