//! The FOCUS 1.4 datasets of one UTC month as a pure function: usage groups, credit draws,
//! lots and invoices in; Cost and Usage, Invoice Detail and Billing Period rows out. No IO.
//!
//! The rules (README "FOCUS export" says the same to users):
//! - a Usage row is one UTC day × provider × workspace × key × model × tier × context window ×
//!   geo × charge (a token class, web search requests, or a unit such as images); zero
//!   quantities are not rows;
//! - `ContractedCost` is the cost at the price book in force (overrides included, what
//!   `report` and `rated_usage` show); `ListCost` at the public book (the embedded one plus the
//!   provider-list rates): the two differ only where an override prices a row;
//! - credits: each UTC day's draws on each lot (the credits ledger's order) are split over that
//!   day's Usage rows in proportion to `ContractedCost`, exactly (largest remainder at 10⁻¹²).
//!   A lot bought for money (`prepaid`, `auto_reload`) is a `Purchase` row in the month it was
//!   bought (BilledCost = its amount, EffectiveCost 0: FOCUS amortises it into the usage it
//!   pays, whose EffectiveCost keeps the drawn amount); credit that cost nothing (`promotional`,
//!   a plan's `monthly` credit) lowers the EffectiveCost of the rows it paid;
//! - `BilledCost`: rows an invoice covers (its provider, its period) share the invoice's charges
//!   (subtotal − credit lines) in proportion to `ContractedCost`, largest remainder at the cent;
//!   credit lines, the discount and the tax are rows of their own, so each invoice's rows sum to
//!   its total exactly. Usage no invoice covers yet is billed what no credit paid.
//!
//! Must not: read the lake, price usage or round anything but the invoice allocation.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::credits::ledger::Draw;
use crate::model::{CreditKind, CreditLot, Invoice, day_start};
use crate::money::{CENT, allocate_prorata};
use crate::vocab::{Month, Provider};

/// A column's FOCUS data type, as the Parquet and CSV writers encode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text.
    Text,
    /// `DECIMAL(38,12)`: money, unit prices and quantities.
    Decimal,
    /// UTC date-time (`TIMESTAMP(μs, UTC)`; ISO 8601 with `Z` in CSV).
    Time,
    /// JSON text.
    Json,
}

/// The scale of every decimal column (the lake's money scale).
pub const DECIMAL_SCALE: i8 = 12;
pub const DECIMAL_PRECISION: u8 = 38;

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    /// At [`DECIMAL_SCALE`].
    Dec(i128),
    /// Microseconds since the epoch, UTC.
    Time(i64),
}

/// A dataset: named, typed columns and rows of cells in column order.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub name: &'static str,
    pub columns: Vec<(&'static str, Kind)>,
    pub rows: Vec<Vec<Value>>,
}

impl Dataset {
    /// The index of a column.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.0 == name)
    }
}

/// One usage group of `sql/focus_usage.sql`, with its charges priced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub day: Option<NaiveDate>,
    pub provider: Option<Provider>,
    pub workspace_id: Option<String>,
    pub workspace_name: Option<String>,
    pub api_key_id: Option<String>,
    pub api_key_name: Option<String>,
    pub team: Option<String>,
    pub cost_center: Option<String>,
    pub model: Option<String>,
    pub service_tier: Option<String>,
    pub context_window: Option<String>,
    pub inference_geo: Option<String>,
    pub pricing_status: String,
    /// The earliest and the latest ingest that loaded a row of the group.
    pub first_ingest_id: String,
    pub last_ingest_id: String,
    pub charges: Vec<Charge>,
}

/// One non-zero charge of a group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Charge {
    /// `uncached_input`, `cache_read`, …, `web_search`, or the unit (`images`, …).
    pub name: String,
    /// What FOCUS calls the unit: `Tokens`, `Requests`, `Images`, …
    pub unit: &'static str,
    pub quantity: i128,
    /// At the book in force (null: UNPRICED).
    pub contracted_cost: Option<i128>,
    pub contracted_unit_price: Option<i128>,
    /// At the public book.
    pub list_cost: Option<i128>,
    pub list_unit_price: Option<i128>,
}

/// The billing account each provider's rows name (`[export.billing_accounts]`).
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub id: String,
    pub name: Option<String>,
}

/// What the month's export is built from.
pub struct Inputs<'a> {
    pub month: Month,
    pub groups: &'a [Group],
    pub draws: &'a BTreeMap<(Provider, NaiveDate), Vec<Draw>>,
    pub lots: &'a [CreditLot],
    /// Invoices of the month (period starting in it), each with the ingest that loaded it.
    pub invoices: &'a [(Invoice, String)],
    pub accounts: &'a BTreeMap<Provider, Account>,
    /// Per provider: the period is final (`Closed`).
    pub closed: &'a BTreeMap<Provider, bool>,
}

/// The three datasets.
#[derive(Debug, Clone, Default)]
pub struct Focus {
    pub cost_and_usage: Dataset,
    pub invoice_detail: Dataset,
    pub billing_period: Dataset,
}

/// The Cost and Usage columns tokenledger writes: every Mandatory one, the Conditional ones
/// that apply to LLM API billing, the Recommended ChargeFrequency and ServiceSubcategory, and
/// custom `x_` columns for what FOCUS 1.4 has no column for (model, token class, …).
pub const COST_AND_USAGE: &[(&str, Kind)] = &[
    ("BilledCost", Kind::Decimal),
    ("BillingAccountId", Kind::Text),
    ("BillingAccountName", Kind::Text),
    ("BillingCurrency", Kind::Text),
    ("BillingPeriodEnd", Kind::Time),
    ("BillingPeriodStart", Kind::Time),
    ("ChargeCategory", Kind::Text),
    ("ChargeClass", Kind::Text),
    ("ChargeDescription", Kind::Text),
    ("ChargeFrequency", Kind::Text),
    ("ChargePeriodEnd", Kind::Time),
    ("ChargePeriodStart", Kind::Time),
    ("CommitmentDiscountCategory", Kind::Text),
    ("CommitmentDiscountId", Kind::Text),
    ("CommitmentDiscountName", Kind::Text),
    ("CommitmentDiscountQuantity", Kind::Decimal),
    ("CommitmentDiscountStatus", Kind::Text),
    ("CommitmentDiscountType", Kind::Text),
    ("CommitmentDiscountUnit", Kind::Text),
    ("ConsumedQuantity", Kind::Decimal),
    ("ConsumedUnit", Kind::Text),
    ("ContractApplied", Kind::Json),
    ("ContractedCost", Kind::Decimal),
    ("ContractedUnitPrice", Kind::Decimal),
    ("EffectiveCost", Kind::Decimal),
    ("HostProviderName", Kind::Text),
    ("InvoiceDetailId", Kind::Text),
    ("InvoiceId", Kind::Text),
    ("InvoiceIssuerName", Kind::Text),
    ("ListCost", Kind::Decimal),
    ("ListUnitPrice", Kind::Decimal),
    ("PricingCategory", Kind::Text),
    ("PricingQuantity", Kind::Decimal),
    ("PricingUnit", Kind::Text),
    ("ResourceId", Kind::Text),
    ("ResourceName", Kind::Text),
    ("ResourceType", Kind::Text),
    ("ServiceCategory", Kind::Text),
    ("ServiceName", Kind::Text),
    ("ServiceProviderName", Kind::Text),
    ("ServiceSubcategory", Kind::Text),
    ("SkuId", Kind::Text),
    ("SkuMeter", Kind::Text),
    ("SkuPriceDetails", Kind::Json),
    ("SkuPriceId", Kind::Text),
    ("SubAccountId", Kind::Text),
    ("SubAccountName", Kind::Text),
    ("SubAccountType", Kind::Text),
    ("Tags", Kind::Json),
    ("x_Model", Kind::Text),
    ("x_TokenClass", Kind::Text),
    ("x_ServiceTier", Kind::Text),
    ("x_ContextWindow", Kind::Text),
    ("x_InferenceGeo", Kind::Text),
    ("x_PricingStatus", Kind::Text),
];

/// The Invoice Detail columns (every Mandatory one; the payment-currency ones do not apply:
/// invoices in another currency than USD are quarantined at ingest).
pub const INVOICE_DETAIL: &[(&str, Kind)] = &[
    ("BilledCost", Kind::Decimal),
    ("BillingAccountId", Kind::Text),
    ("BillingCurrency", Kind::Text),
    ("BillingPeriodEnd", Kind::Time),
    ("BillingPeriodStart", Kind::Time),
    ("ChargeCategory", Kind::Text),
    ("InvoiceDetailCreated", Kind::Time),
    ("InvoiceDetailDescription", Kind::Text),
    ("InvoiceDetailGrain", Kind::Json),
    ("InvoiceDetailId", Kind::Text),
    ("InvoiceDetailLastUpdated", Kind::Time),
    ("InvoiceId", Kind::Text),
    ("InvoiceIssueDate", Kind::Time),
    ("InvoiceIssueStatus", Kind::Text),
    ("InvoiceIssuerName", Kind::Text),
    ("PaymentDueDate", Kind::Time),
    ("PaymentTerms", Kind::Text),
    ("ReferenceInvoiceId", Kind::Text),
];

pub const BILLING_PERIOD: &[(&str, Kind)] = &[
    ("BillingPeriodCreated", Kind::Time),
    ("BillingPeriodEnd", Kind::Time),
    ("BillingPeriodLastUpdated", Kind::Time),
    ("BillingPeriodStart", Kind::Time),
    ("BillingPeriodStatus", Kind::Text),
    ("InvoiceIssuerName", Kind::Text),
];

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn day_micros(d: NaiveDate) -> i64 {
    micros(day_start(d))
}

/// How the issuer's name reads on its invoices when the invoice does not say.
fn issuer(p: Provider, invoice: Option<&Invoice>) -> String {
    invoice
        .and_then(|i| i.issuer_name.clone())
        .unwrap_or_else(|| p.label().to_string())
}

fn service_name(p: Provider) -> String {
    format!("{} API", p.label())
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn opt(s: Option<&str>) -> Value {
    s.map_or(Value::Null, text)
}

fn dec(v: i128) -> Value {
    Value::Dec(v)
}

fn opt_dec(v: Option<i128>) -> Value {
    v.map_or(Value::Null, Value::Dec)
}

/// A row being built: its cells in column order (unset ones are null).
struct Row {
    columns: &'static [(&'static str, Kind)],
    cells: Vec<Value>,
}

impl Row {
    fn new(columns: &'static [(&'static str, Kind)]) -> Self {
        Row {
            columns,
            cells: vec![Value::Null; columns.len()],
        }
    }
    fn set(&mut self, k: &'static str, v: Value) -> &mut Self {
        let i = self
            .columns
            .iter()
            .position(|c| c.0 == k)
            .unwrap_or_else(|| panic!("{k} is not a column of this dataset"));
        self.cells[i] = v;
        self
    }
    fn into_cells(self) -> Vec<Value> {
        self.cells
    }
}

/// The cells every row of a provider shares.
fn common(row: &mut Row, p: Provider, inputs: &Inputs, period: (i64, i64)) {
    let account = inputs.accounts.get(&p).cloned().unwrap_or_else(|| Account {
        id: p.as_str().to_string(),
        name: None,
    });
    let inv = inputs
        .invoices
        .iter()
        .map(|i| &i.0)
        .find(|i| i.provider == p);
    row.set("BillingAccountId", text(account.id))
        .set("BillingAccountName", opt(account.name.as_deref()))
        .set("BillingCurrency", text("USD"))
        .set("BillingPeriodStart", Value::Time(period.0))
        .set("BillingPeriodEnd", Value::Time(period.1))
        .set("HostProviderName", text(p.label()))
        .set("ServiceProviderName", text(p.label()))
        .set("InvoiceIssuerName", text(issuer(p, inv)))
        .set("ServiceCategory", text("AI and Machine Learning"))
        .set("ServiceSubcategory", text("Generative AI"))
        .set("ServiceName", text(service_name(p)));
}

/// The words of a charge in descriptions and SKUs.
fn meter(charge: &str) -> String {
    match charge {
        "uncached_input" => "Input Tokens".into(),
        "cache_write_5m" => "Cache Write (5 min) Tokens".into(),
        "cache_write_1h" => "Cache Write (1 h) Tokens".into(),
        "cache_write_30m" => "Cache Write (30 min) Tokens".into(),
        "cache_write_12h" => "Cache Write (12 h) Tokens".into(),
        "cache_read" => "Cache Read Tokens".into(),
        "output" => "Output Tokens".into(),
        "web_search" => "Web Search Requests".into(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
    }
}

/// A usage row's share of each lot's draw that day.
type Shares = Vec<Vec<(usize, i128)>>;

/// Splits each (provider, day)'s draws over that day's charges, lot by lot, by contracted
/// cost. `flat[i]` = (group, charge) of charge row `i`; the answer is per charge row.
fn credit_shares(inputs: &Inputs, flat: &[(usize, usize)]) -> Shares {
    let mut by_day: BTreeMap<(Provider, NaiveDate), Vec<usize>> = BTreeMap::new();
    for (i, &(g, _)) in flat.iter().enumerate() {
        let grp = &inputs.groups[g];
        if let (Some(p), Some(d)) = (grp.provider, grp.day) {
            by_day.entry((p, d)).or_default().push(i);
        }
    }
    let mut shares: Shares = vec![Vec::new(); flat.len()];
    for (key, rows) in by_day {
        let Some(draws) = inputs.draws.get(&key) else {
            continue;
        };
        let weights: Vec<i128> = rows
            .iter()
            .map(|&i| {
                let (g, c) = flat[i];
                inputs.groups[g].charges[c].contracted_cost.unwrap_or(0)
            })
            .collect();
        if weights.iter().all(|&w| w <= 0) {
            continue; // nothing priced that day: credits paid nothing here
        }
        for (lot, d) in draws.iter().enumerate() {
            for (k, part) in allocate_prorata(&weights, d.amount.units())
                .into_iter()
                .enumerate()
            {
                if part != 0 {
                    shares[rows[k]].push((lot, part));
                }
            }
        }
    }
    shares
}

/// Which invoice covers a (provider, day), if any.
fn covering(inputs: &Inputs, p: Provider, d: NaiveDate) -> Option<usize> {
    let t = day_start(d);
    inputs
        .invoices
        .iter()
        .position(|(i, _)| i.provider == p && i.period_start <= t && t < i.period_end)
}

/// The invoice's charges that usage rows carry: subtotal minus its credit lines.
fn usage_charges(inv: &Invoice) -> i128 {
    let credits: i128 = inv
        .lines
        .iter()
        .filter(|l| l.amount.is_sign_negative())
        .map(|l| units(l.amount))
        .sum();
    units(inv.subtotal) - credits
}

/// A lake amount in lake units. Every decimal the lake holds is `DECIMAL(28,12)` (checked when
/// written), so this cannot fail: never a silent 0.
fn units(d: rust_decimal::Decimal) -> i128 {
    crate::money::Money::from_decimal(d)
        .expect("the lake's amounts are DECIMAL(28,12)")
        .units()
}

/// The Invoice Detail id of a line.
fn detail_id(inv: &Invoice, what: &str) -> String {
    format!("{}#{what}", inv.number)
}

/// The positive lines of an invoice: the one usage rows point to when it is alone.
fn usage_line(inv: &Invoice) -> Option<String> {
    let mut pos = inv
        .lines
        .iter()
        .filter(|l| l.amount.is_sign_positive() && !l.amount.is_zero());
    match (pos.next(), pos.next()) {
        (Some(l), None) => Some(detail_id(inv, &format!("line-{}", l.line_no))),
        _ => None,
    }
}

/// Builds the three datasets of the month.
pub fn build(inputs: &Inputs) -> Focus {
    let (start, end) = (inputs.month.first_day(), inputs.month.end_day());
    let period = (day_micros(start), day_micros(end));
    let flat: Vec<(usize, usize)> = inputs
        .groups
        .iter()
        .enumerate()
        .flat_map(|(g, grp)| (0..grp.charges.len()).map(move |c| (g, c)))
        .collect();
    let shares = credit_shares(inputs, &flat);
    // Each invoice's charges over the rows it covers, in cents, by contracted cost.
    let mut billed: Vec<Option<(usize, i128)>> = vec![None; flat.len()];
    for (n, (inv, _)) in inputs.invoices.iter().enumerate() {
        let rows: Vec<usize> = (0..flat.len())
            .filter(|&i| {
                let g = &inputs.groups[flat[i].0];
                matches!((g.provider, g.day), (Some(p), Some(d)) if covering(inputs, p, d) == Some(n))
            })
            .collect();
        let weights: Vec<i128> = rows
            .iter()
            .map(|&i| {
                let (g, c) = flat[i];
                inputs.groups[g].charges[c].contracted_cost.unwrap_or(0)
            })
            .collect();
        // In whole cents (an invoice's amounts are); a total with a fraction of a cent (an
        // invoice CSV may say so) is split in units of 10⁻¹² instead: the sum stays exact.
        let total = usage_charges(inv);
        let step = if total % CENT == 0 { CENT } else { 1 };
        for (k, part) in allocate_prorata(&weights, total / step)
            .into_iter()
            .enumerate()
        {
            billed[rows[k]] = Some((n, part * step));
        }
    }
    let mut cu = Vec::with_capacity(flat.len());
    for (i, &(g, c)) in flat.iter().enumerate() {
        cu.push(usage_row(
            inputs,
            period,
            (&inputs.groups[g], &inputs.groups[g].charges[c]),
            &shares[i],
            billed[i],
        ));
    }
    let mut others = Vec::new();
    for (n, (inv, _)) in inputs.invoices.iter().enumerate() {
        let has_rows = billed.iter().flatten().any(|(m, _)| *m == n);
        others.extend(invoice_rows(inputs, period, inv, has_rows));
    }
    for lot in inputs.lots {
        if let Some(r) = purchase_row(inputs, period, lot, (start, end)) {
            others.push(r);
        }
    }
    cu.extend(others);
    let mut cost_and_usage = Dataset {
        name: "cost_and_usage",
        columns: COST_AND_USAGE.to_vec(),
        rows: cu.into_iter().map(Row::into_cells).collect(),
    };
    sort_rows(&mut cost_and_usage);
    Focus {
        cost_and_usage,
        invoice_detail: invoice_detail(inputs, period),
        billing_period: billing_period(inputs, period),
    }
}

/// A stable order: the rows' cells compared column by column (re-exports are byte-identical).
fn sort_rows(d: &mut Dataset) {
    let order = [
        "ChargePeriodStart",
        "ServiceProviderName",
        "ChargeCategory",
        "SubAccountId",
        "ResourceId",
        "SkuId",
        "InvoiceDetailId",
    ];
    let idx: Vec<usize> = order.iter().filter_map(|n| d.col(n)).collect();
    // Nulls first, then by value; the key columns first, every cell after (a total order, so
    // the same rows always come out in the same order).
    let cmp = |a: &Value, b: &Value| -> std::cmp::Ordering {
        let rank = |v: &Value| match v {
            Value::Null => 0,
            Value::Text(_) => 1,
            Value::Dec(_) => 2,
            Value::Time(_) => 3,
        };
        match (a, b) {
            (Value::Text(x), Value::Text(y)) => x.cmp(y),
            (Value::Dec(x), Value::Dec(y)) => x.cmp(y),
            (Value::Time(x), Value::Time(y)) => x.cmp(y),
            _ => rank(a).cmp(&rank(b)),
        }
    };
    d.rows.sort_by(|a, b| {
        idx.iter()
            .copied()
            .chain(0..a.len())
            .map(|i| cmp(&a[i], &b[i]))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}

fn usage_row(
    inputs: &Inputs,
    period: (i64, i64),
    (g, ch): (&Group, &Charge),
    shares: &[(usize, i128)],
    billed: Option<(usize, i128)>,
) -> Row {
    let mut row = Row::new(COST_AND_USAGE);
    let p = g.provider.unwrap_or(Provider::Anthropic);
    common(&mut row, p, inputs, period);
    let day = g.day.unwrap_or(NaiveDate::MIN);
    let quantity = dec(ch.quantity * 10i128.pow(DECIMAL_SCALE as u32));
    row.set("ChargeCategory", text("Usage"))
        .set("ChargeFrequency", text("Usage-Based"))
        .set("ChargePeriodStart", Value::Time(day_micros(day)))
        .set(
            "ChargePeriodEnd",
            Value::Time(day_micros(day + TimeDelta::days(1))),
        )
        .set("ConsumedQuantity", quantity.clone())
        .set("ConsumedUnit", text(ch.unit))
        .set("PricingQuantity", quantity)
        .set("PricingUnit", text(ch.unit))
        .set("PricingCategory", text("Standard"));
    money_cells(&mut row, inputs, (g, ch), shares, billed);
    sku_cells(&mut row, p, (g, ch));
    who_cells(&mut row, p, g);
    row
}

/// The cost columns of a usage row: list, contracted, effective (after free credit), billed
/// (the invoice's share, or what no credit paid), the credit lots that paid it, the invoice.
fn money_cells(
    row: &mut Row,
    inputs: &Inputs,
    (g, ch): (&Group, &Charge),
    shares: &[(usize, i128)],
    billed: Option<(usize, i128)>,
) {
    let p = g.provider.unwrap_or(Provider::Anthropic);
    let draws = g
        .day
        .and_then(|d| inputs.draws.get(&(p, d)))
        .map(Vec::as_slice)
        .unwrap_or_default();
    let contracted = ch.contracted_cost.unwrap_or(0);
    let drawn: i128 = shares.iter().map(|s| s.1).sum();
    let free: i128 = shares
        .iter()
        .filter(|(l, _)| {
            matches!(
                draws[*l].kind,
                CreditKind::Promotional | CreditKind::Monthly
            )
        })
        .map(|s| s.1)
        .sum();
    let invoice = billed.map(|(n, _)| &inputs.invoices[n].0);
    // Loaded after the invoice of its period was issued and in the lake: a restatement.
    let correction = billed.is_some_and(|(n, _)| {
        let (inv, loaded) = &inputs.invoices[n];
        let row_time = crate::model::ingest_id_time(&g.last_ingest_id);
        g.last_ingest_id.as_str() > loaded.as_str()
            && matches!((row_time, inv.issued_at), (Some(r), Some(i)) if r > i)
    });
    let class = if correction {
        text("Correction")
    } else {
        Value::Null
    };
    row.set("ChargeClass", class)
        .set("ListCost", dec(ch.list_cost.unwrap_or(0)))
        .set("ListUnitPrice", opt_dec(ch.list_unit_price))
        .set("ContractedCost", dec(contracted))
        .set("ContractedUnitPrice", opt_dec(ch.contracted_unit_price))
        .set("EffectiveCost", dec(contracted - free))
        .set(
            "BilledCost",
            dec(billed.map_or(contracted - drawn, |(_, v)| v)),
        )
        .set("InvoiceId", opt(invoice.map(|i| i.number.as_str())))
        .set(
            "InvoiceDetailId",
            opt(invoice.and_then(usage_line).as_deref()),
        )
        .set("ContractApplied", contract_applied(p, draws, shares));
}

/// What was sold: the description, the SKU and its price, and the `x_` columns.
fn sku_cells(row: &mut Row, p: Provider, (g, ch): (&Group, &Charge)) {
    let model = g.model.as_deref().unwrap_or("unknown model");
    let tier = g.service_tier.as_deref();
    let (ctx, geo) = (g.context_window.as_deref(), g.inference_geo.as_deref());
    let parts = [
        Some(p.as_str()),
        Some(model),
        Some(ch.name.as_str()),
        tier,
        ctx,
        geo,
    ];
    let sku: Vec<&str> = parts.into_iter().flatten().collect();
    let sku = sku.join(":");
    let description = format!(
        "{model} {}{}",
        meter(&ch.name).to_lowercase(),
        tier.map(|t| format!(", {t} tier")).unwrap_or_default()
    );
    let details: BTreeMap<&str, Option<String>> = [
        ("x_Model", Some(model)),
        ("x_TokenClass", Some(ch.name.as_str())),
        ("x_ServiceTier", tier),
        ("x_ContextWindow", ctx),
        ("x_InferenceGeo", geo),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.map(str::to_string)))
    .collect();
    let price_id = ch
        .list_unit_price
        .map_or(Value::Null, |u| text(format!("{sku}@{}", trimmed(u))));
    row.set("ChargeDescription", text(description))
        .set("SkuId", text(sku))
        .set("SkuMeter", text(meter(&ch.name)))
        .set("SkuPriceId", price_id)
        .set("SkuPriceDetails", text(json_object(&details)))
        .set("x_Model", opt(g.model.as_deref()))
        .set("x_TokenClass", text(ch.name.clone()))
        .set("x_ServiceTier", opt(tier))
        .set("x_ContextWindow", opt(ctx))
        .set("x_InferenceGeo", opt(geo))
        .set("x_PricingStatus", text(g.pricing_status.clone()));
}

/// Who used it: the API key (never a secret: its id and name), the workspace or project, the
/// team's tags.
fn who_cells(row: &mut Row, p: Provider, g: &Group) {
    let tags: BTreeMap<&str, Option<String>> = [
        ("team", g.team.clone()),
        ("cost_center", g.cost_center.clone()),
    ]
    .into();
    let tags = if tags.values().all(Option::is_none) {
        Value::Null
    } else {
        text(json_object(&tags))
    };
    let sub_account = match p {
        Provider::Anthropic => "Workspace",
        Provider::OpenAi => "Project",
    };
    let key_type = g
        .api_key_id
        .as_ref()
        .map_or(Value::Null, |_| text("API Key"));
    row.set("ResourceId", opt(g.api_key_id.as_deref()))
        .set("ResourceName", opt(g.api_key_name.as_deref()))
        .set("ResourceType", key_type)
        .set("SubAccountId", opt(g.workspace_id.as_deref()))
        .set("SubAccountName", opt(g.workspace_name.as_deref()))
        .set("SubAccountType", text(sub_account))
        .set("Tags", tags);
}

/// A flat JSON object with sorted keys; null values are left out.
fn json_object(m: &BTreeMap<&str, Option<String>>) -> String {
    let mut o = serde_json::Map::new();
    for (k, v) in m {
        if let Some(v) = v {
            o.insert((*k).to_string(), serde_json::Value::String(v.clone()));
        }
    }
    serde_json::Value::Object(o).to_string()
}

/// FOCUS's ContractApplied object: the credit lots that paid the row and how much each paid
/// (JSON numbers written from the exact decimal text).
fn contract_applied(p: Provider, draws: &[Draw], shares: &[(usize, i128)]) -> Value {
    if shares.is_empty() {
        return Value::Null;
    }
    let elements: Vec<String> = shares
        .iter()
        .map(|(l, v)| {
            format!(
                "{{\"ContractCommitmentAppliedCost\":{},\"ContractCommitmentId\":{},\"ContractId\":{}}}",
                trimmed(*v),
                serde_json::Value::String(draws[*l].lot_id.clone()),
                serde_json::Value::String(format!("{}-credits", p.as_str())),
            )
        })
        .collect();
    text(format!("{{\"Elements\":[{}]}}", elements.join(",")))
}

/// Exact decimal text of a value at scale 12 without trailing zeros (`1.5`, `0.000003`, `7`).
pub fn trimmed(v: i128) -> String {
    let t = crate::money::fixed_text(v, 12);
    let t = t.trim_end_matches('0');
    t.strip_suffix('.').unwrap_or(t).to_string()
}

/// One line of an invoice as FOCUS sees it.
struct DetailLine {
    id: String,
    category: &'static str,
    description: String,
    amount: i128,
}

/// An invoice's lines with a non-zero amount: its lines (charges `Usage`, credits applied
/// `Credit`), what its subtotal has beyond them (Stripe paged the lines), the discount
/// (`Adjustment`) and the tax (`Tax`). They sum to the invoice's total.
fn detail_lines(inv: &Invoice) -> Vec<DetailLine> {
    let mut out: Vec<DetailLine> = inv
        .lines
        .iter()
        .filter(|l| !l.amount.is_zero())
        .map(|l| DetailLine {
            id: detail_id(inv, &format!("line-{}", l.line_no)),
            category: if l.amount.is_sign_negative() {
                "Credit"
            } else {
                "Usage"
            },
            description: l
                .description
                .clone()
                .unwrap_or_else(|| format!("invoice line {}", l.line_no)),
            amount: units(l.amount),
        })
        .collect();
    let rest = units(inv.subtotal) - inv.lines.iter().map(|l| units(l.amount)).sum::<i128>();
    let extra = [
        (
            "rest",
            "Usage",
            "charges on lines the invoice file did not list",
            rest,
        ),
        ("discount", "Adjustment", "discount", -units(inv.discount)),
        ("tax", "Tax", "tax", units(inv.tax)),
    ];
    for (what, category, description, amount) in extra {
        if amount != 0 {
            out.push(DetailLine {
                id: detail_id(inv, what),
                category,
                description: description.into(),
                amount,
            });
        }
    }
    out
}

/// The rows of an invoice besides the usage it covers: credit lines, discount, tax, and its
/// charges when the lake has no usage for them.
fn invoice_rows(inputs: &Inputs, period: (i64, i64), inv: &Invoice, has_rows: bool) -> Vec<Row> {
    let mut out = Vec::new();
    for l in detail_lines(inv) {
        if l.category == "Usage" && has_rows {
            continue; // the usage rows carry these charges
        }
        let mut row = Row::new(COST_AND_USAGE);
        common(&mut row, inv.provider, inputs, period);
        // Tax is a cost at every price; credits and discounts lower only what is billed.
        let list = if l.category == "Tax" { l.amount } else { 0 };
        let (frequency, description) = match l.category {
            "Usage" => (
                "Usage-Based",
                format!("{} (no usage in the lake for this period)", l.description),
            ),
            _ => ("One-Time", l.description),
        };
        row.set("ChargeCategory", text(l.category))
            .set("ChargeDescription", text(description))
            .set("ChargeFrequency", text(frequency))
            .set("ChargePeriodStart", Value::Time(micros(inv.period_start)))
            .set("ChargePeriodEnd", Value::Time(micros(inv.period_end)))
            .set("BilledCost", dec(l.amount))
            .set("EffectiveCost", dec(l.amount))
            .set("ListCost", dec(list))
            .set("ContractedCost", dec(list))
            .set("InvoiceId", text(inv.number.clone()))
            .set("InvoiceDetailId", text(l.id))
            .set("x_PricingStatus", text("invoice"));
        out.push(row);
    }
    out
}

/// A lot bought for money in the month: a Purchase row (amortised into the usage it pays).
fn purchase_row(
    inputs: &Inputs,
    period: (i64, i64),
    lot: &CreditLot,
    (start, end): (NaiveDate, NaiveDate),
) -> Option<Row> {
    let paid = matches!(lot.kind, CreditKind::Prepaid | CreditKind::AutoReload);
    if !paid || lot.purchased_at < start || lot.purchased_at >= end {
        return None;
    }
    let amount = units(lot.amount);
    let mut row = Row::new(COST_AND_USAGE);
    common(&mut row, lot.provider, inputs, period);
    let kind = match lot.kind {
        CreditKind::AutoReload => "auto-reload",
        _ => "prepaid",
    };
    row.set("ChargeCategory", text("Purchase"))
        .set(
            "ChargeDescription",
            text(format!(
                "{} {kind} credit purchase ({})",
                lot.provider.label(),
                lot.lot_id
            )),
        )
        .set("ChargeFrequency", text("One-Time"))
        .set(
            "ChargePeriodStart",
            Value::Time(day_micros(lot.purchased_at)),
        )
        .set(
            "ChargePeriodEnd",
            Value::Time(day_micros(lot.purchased_at + TimeDelta::days(1))),
        )
        .set("BilledCost", dec(amount))
        .set("EffectiveCost", dec(0))
        .set("ListCost", dec(amount))
        .set("ContractedCost", dec(amount))
        .set("PricingQuantity", dec(amount))
        .set("PricingUnit", text("Credits"))
        .set("PricingCategory", text("Committed"))
        .set("ListUnitPrice", dec(10i128.pow(12)))
        .set("ContractedUnitPrice", dec(10i128.pow(12)))
        .set("ResourceId", text(lot.lot_id.clone()))
        .set("ResourceType", text("Credit Lot"))
        .set(
            "SkuId",
            text(format!("{}:credits:{kind}", lot.provider.as_str())),
        )
        .set("x_PricingStatus", text("purchase"));
    Some(row)
}

/// FOCUS's PaymentTerms from what the invoice says.
fn payment_terms(inv: &Invoice) -> String {
    match (inv.collection_method.as_deref(), inv.due_at, inv.issued_at) {
        (_, Some(due), Some(at)) => format!("Net {} days", (due - at).num_days().max(0)),
        (Some("charge_automatically"), _, _) => "Charged automatically on issue".into(),
        (_, Some(_), None) => "Due by the payment due date".into(),
        _ => "Not stated on the invoice".into(),
    }
}

/// Invoice Detail: [`detail_lines`] of every invoice; each invoice's lines sum to its total.
fn invoice_detail(inputs: &Inputs, period: (i64, i64)) -> Dataset {
    let mut rows = Vec::new();
    for (inv, loaded) in inputs.invoices {
        let account = inputs
            .accounts
            .get(&inv.provider)
            .map_or_else(|| inv.provider.as_str().to_string(), |a| a.id.clone());
        let loaded_at = crate::model::ingest_id_time(loaded)
            .map(micros)
            .unwrap_or(period.0);
        let issued = inv.issued_at.map(micros);
        // Draft and void invoices are refused at ingest: what is in the lake was issued.
        let status = match inv.status.as_deref() {
            Some("draft") => "Open",
            Some("void") => "Voided",
            _ => "Issued",
        };
        let grain = serde_json::json!({
            "x_Provider": inv.provider.as_str(),
            "x_InvoiceNumber": inv.number,
            "x_StripeInvoiceId": inv.invoice_id,
        })
        .to_string();
        for l in detail_lines(inv) {
            let mut r = Row::new(INVOICE_DETAIL);
            r.set("BilledCost", dec(l.amount))
                .set("BillingAccountId", text(account.clone()))
                .set("BillingCurrency", text("USD"))
                .set("BillingPeriodStart", Value::Time(period.0))
                .set("BillingPeriodEnd", Value::Time(period.1))
                .set("ChargeCategory", text(l.category))
                .set(
                    "InvoiceDetailCreated",
                    Value::Time(issued.unwrap_or(loaded_at)),
                )
                .set(
                    "InvoiceDetailLastUpdated",
                    Value::Time(loaded_at.max(issued.unwrap_or(loaded_at))),
                )
                .set("InvoiceDetailDescription", text(l.description))
                .set("InvoiceDetailGrain", text(grain.clone()))
                .set("InvoiceDetailId", text(l.id))
                .set("InvoiceId", text(inv.number.clone()))
                .set("InvoiceIssueDate", issued.map_or(Value::Null, Value::Time))
                .set("InvoiceIssueStatus", text(status))
                .set("InvoiceIssuerName", text(issuer(inv.provider, Some(inv))))
                .set(
                    "PaymentDueDate",
                    inv.due_at.map_or(Value::Null, |d| Value::Time(micros(d))),
                )
                .set("PaymentTerms", text(payment_terms(inv)))
                // FOCUS 1.4 does not allow a null here: an invoice that corrects none refers to
                // itself (a restated invoice replaces the old one under its number at ingest).
                .set("ReferenceInvoiceId", text(inv.number.clone()));
            rows.push(r.into_cells());
        }
    }
    let mut d = Dataset {
        name: "invoice_detail",
        columns: INVOICE_DETAIL.to_vec(),
        rows,
    };
    sort_rows(&mut d);
    d
}

/// Billing Period: one row per provider with rows in the month.
fn billing_period(inputs: &Inputs, period: (i64, i64)) -> Dataset {
    let mut seen: BTreeMap<Provider, (Option<String>, Option<String>)> = BTreeMap::new();
    let mut note = |p: Provider, id: &str| {
        let e = seen.entry(p).or_default();
        if e.0.as_deref().is_none_or(|f| id < f) {
            e.0 = Some(id.to_string());
        }
        if e.1.as_deref().is_none_or(|l| id > l) {
            e.1 = Some(id.to_string());
        }
    };
    for g in inputs.groups {
        if let Some(p) = g.provider {
            note(p, &g.first_ingest_id);
            note(p, &g.last_ingest_id);
        }
    }
    for (inv, loaded) in inputs.invoices {
        note(inv.provider, loaded);
    }
    let rows = seen
        .into_iter()
        .map(|(p, (first, last))| {
            let t = |id: Option<String>| {
                Value::Time(
                    id.as_deref()
                        .and_then(crate::model::ingest_id_time)
                        .map(micros)
                        .unwrap_or(period.0),
                )
            };
            let closed = inputs.closed.get(&p).copied().unwrap_or(false);
            let inv = inputs
                .invoices
                .iter()
                .map(|i| &i.0)
                .find(|i| i.provider == p);
            let mut r = Row::new(BILLING_PERIOD);
            r.set("BillingPeriodCreated", t(first))
                .set("BillingPeriodLastUpdated", t(last))
                .set("BillingPeriodStart", Value::Time(period.0))
                .set("BillingPeriodEnd", Value::Time(period.1))
                .set(
                    "BillingPeriodStatus",
                    text(if closed { "Closed" } else { "Open" }),
                )
                .set("InvoiceIssuerName", text(issuer(p, inv)));
            r.into_cells()
        })
        .collect();
    Dataset {
        name: "billing_period",
        columns: BILLING_PERIOD.to_vec(),
        rows,
    }
}
