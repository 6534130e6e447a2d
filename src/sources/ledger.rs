//! Credits and invoices: the buyer's side of the books, which no provider API reports.
//!
//! Owns: parsing the credits CSV (lots), the balance-snapshots CSV, Stripe invoice objects
//! (one, a list page, or an array, as the API or the dashboard exports them) and the invoice
//! CSV, exactly (integer cents, decimal dollars), into [`LedgerItem`]s; refusing anything that
//! would be guessed (a float of cents, a foreign currency, a draft invoice, an unknown column).
//! Must not: compute balances or tie anything out (that is `credits` and `reconcile`).
//!
//! These files are small (a lot per purchase, an invoice per month): they are read whole.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::{FileError, Limits, Quarantined, Sink, excerpt, usd_only};
use crate::model::{
    BalanceSnapshot, CreditKind, CreditLot, Invoice, InvoiceLine, LedgerItem, day_start,
    one_year_after,
};

/// Largest amount accepted on one line (dollars), as for cost rows: sums stay exact.
const MAX_DOLLARS: i64 = 1_000_000_000_000_000;
/// No expiry later than this (a typo'd year would otherwise keep a lot alive forever).
const LATEST_EXPIRY_YEARS: u32 = 10;

/// Rows one credits or balances file may hold: a person's ledger has hundreds; more is not one
/// (and would make the daily consumption needlessly slow).
pub const MAX_ROWS: usize = 10_000;

/// The providers credits and invoices may name.
use crate::vocab::Provider;

/// The credits CSV's columns (`expires_at` may be absent or empty).
pub const LOT_COLUMNS: &[&str] = &[
    "lot_id",
    "provider",
    "kind",
    "purchased_at",
    "amount_usd",
    "expires_at",
];
pub const SNAPSHOT_COLUMNS: &[&str] = &["as_of", "provider", "balance_usd"];
/// The invoice CSV's columns, one row per line; `line_kind` is one of [`INVOICE_LINE_KINDS`].
pub const INVOICE_COLUMNS: &[&str] = &[
    "invoice_number",
    "provider",
    "currency",
    "period_start",
    "period_end",
    "line_kind",
    "description",
    "amount_usd",
];
/// Invoice CSV line kinds; amounts are signed as they change the amount due: `charge` and
/// `tax` add, `credit` (credit applied), `discount` and `balance` (customer balance applied)
/// are zero or negative.
pub const INVOICE_LINE_KINDS: &[&str] = &["charge", "credit", "discount", "tax", "balance"];
/// Optional invoice CSV columns (the same on every row of an invoice when given): the issue
/// date, the payment due date (`YYYY-MM-DD`, UTC), the issuer's status and name.
pub const INVOICE_OPTIONAL: &[&str] = &["issued_at", "due_date", "status", "issuer"];

/// Which of our CSV formats a header is, if any (by its column names, in any order).
pub fn detect_header(first_line: &str) -> Option<crate::model::SourceFormat> {
    use crate::model::SourceFormat as F;
    let cols: Vec<&str> = first_line.split(',').map(|c| c.trim()).collect();
    let has = |c: &str| cols.contains(&c);
    if has("lot_id") && has("purchased_at") && has("amount_usd") {
        Some(F::CreditLotsCsv)
    } else if has("as_of") && has("balance_usd") {
        Some(F::BalanceSnapshotsCsv)
    } else if has("invoice_number") && has("line_kind") {
        Some(F::InvoiceCsv)
    } else {
        None
    }
}

type Refusal = (String, String);

fn refuse(field: &str, reason: impl Into<String>) -> Refusal {
    (field.to_string(), reason.into())
}

/// A decimal dollar amount, exactly as written (no currency sign, no thousands separator, at
/// most 12 fractional digits).
pub fn dollars(field: &str, raw: &str) -> Result<Decimal, Refusal> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(refuse(field, format!("missing required field {field}")));
    }
    let d = Decimal::from_str_exact(t).map_err(|_| {
        refuse(
            field,
            format!(
                "{field} {:?} is not a plain decimal number of dollars (write 1000.50: no \
                 currency sign, thousands separator or exponent)",
                excerpt(t)
            ),
        )
    })?;
    if d.scale() > crate::money::SCALE {
        return Err(refuse(
            field,
            format!("{field} {t:?} has more than 12 fractional digits; refusing to round"),
        ));
    }
    if d.abs() >= Decimal::from(MAX_DOLLARS) {
        return Err(refuse(field, format!("{field} {t:?} is implausibly large")));
    }
    Ok(d)
}

/// A UTC day: `YYYY-MM-DD`, or an RFC 3339 timestamp (its UTC date).
pub fn utc_day(field: &str, raw: &str) -> Result<NaiveDate, Refusal> {
    let t = raw.trim();
    if t.len() == 10
        && let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d")
    {
        return Ok(d);
    }
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc).date_naive())
        .map_err(|_| {
            refuse(
                field,
                format!(
                    "{field} {:?} is not a date (YYYY-MM-DD or RFC 3339)",
                    excerpt(t)
                ),
            )
        })
}

fn provider(raw: &str) -> Result<Provider, Refusal> {
    Provider::parse(&raw.trim().to_ascii_lowercase()).ok_or_else(|| {
        let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        refuse(
            "provider",
            format!(
                "provider {:?} is not one of {}",
                excerpt(raw),
                names.join(", ")
            ),
        )
    })
}

/// Column name → index; an unknown, repeated or missing column refuses the file.
fn header_columns(
    header: &csv::StringRecord,
    required: &[&str],
    optional: &[&str],
) -> Result<HashMap<String, usize>, FileError> {
    let mut cols = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        let h = h.trim();
        if !required.contains(&h) && !optional.contains(&h) {
            return Err(FileError::at(
                Some(1),
                None,
                format!(
                    "unknown column {:?} (a misspelt column would be silently ignored); the \
                         columns are {}",
                    excerpt(h),
                    required
                        .iter()
                        .chain(optional)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ));
        }
        if cols.insert(h.to_string(), i).is_some() {
            return Err(FileError::at(
                Some(1),
                None,
                format!("column {h:?} appears twice"),
            ));
        }
    }
    if let Some(missing) = required.iter().find(|c| !cols.contains_key(**c)) {
        return Err(FileError::at(
            Some(1),
            None,
            format!("missing column {missing:?}"),
        ));
    }
    Ok(cols)
}

/// A CSV read whole: the column index of each name, and the records with their lines.
struct Table {
    cols: HashMap<String, usize>,
    rows: Vec<(u64, csv::StringRecord)>,
}

impl Table {
    /// Reads the CSV; a row with the wrong number of fields is quarantined, or with `strict`
    /// fails the file (an invoice must not load with a line missing).
    fn read(
        bytes: &[u8],
        (required, optional): (&[&str], &[&str]),
        strict: bool,
        sink: &mut dyn Sink,
    ) -> Result<Self, FileError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
        let header = rdr
            .headers()
            .map_err(|e| FileError::at(Some(1), None, format!("unreadable CSV header: {e}")))?
            .clone();
        let cols = header_columns(&header, required, optional)?;
        let mut rows = Vec::new();
        for rec in rdr.records() {
            if rows.len() >= MAX_ROWS {
                return Err(FileError::new(format!(
                    "more than {MAX_ROWS} rows: not a credits, balances or invoice file a person keeps"
                )));
            }
            match rec {
                Ok(r) if r.iter().all(|f| f.trim().is_empty()) => {}
                Ok(r) if r.len() != header.len() => {
                    let line = r.position().map_or(0, |p| p.line());
                    let reason = format!("{} fields, the header has {}", r.len(), header.len());
                    if strict {
                        return Err(FileError::at(Some(line), None, reason));
                    }
                    sink.quarantine(Quarantined {
                        location: format!("line {line}"),
                        line: Some(line),
                        field: None,
                        reason,
                        excerpt: None,
                    });
                }
                Ok(r) => rows.push((r.position().map_or(0, |p| p.line()), r)),
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    return Err(FileError::at(
                        Some(line),
                        None,
                        format!("unreadable CSV: {e}"),
                    ));
                }
            }
        }
        Ok(Table { cols, rows })
    }
    fn get<'r>(&self, rec: &'r csv::StringRecord, col: &str) -> &'r str {
        self.cols
            .get(col)
            .and_then(|&i| rec.get(i))
            .unwrap_or("")
            .trim()
    }
}

fn quarantine_row(sink: &mut dyn Sink, line: u64, (field, reason): Refusal, raw: &str) {
    sink.quarantine(Quarantined {
        location: format!("line {line}"),
        line: Some(line),
        field: Some(field),
        reason,
        excerpt: Some(excerpt(raw)),
    });
}

fn record_text(rec: &csv::StringRecord) -> String {
    rec.iter().collect::<Vec<_>>().join(",")
}

/// The credits CSV. A lot id given twice in one file fails the file (which one is right?).
pub fn parse_lots(bytes: &[u8], limits: &Limits, sink: &mut dyn Sink) -> Result<(), FileError> {
    let t = Table::read(bytes, (&LOT_COLUMNS[..5], &LOT_COLUMNS[5..]), false, sink)?;
    let mut seen: HashMap<(Provider, String), u64> = HashMap::new();
    for (line, rec) in &t.rows {
        match lot(&t, rec, *line, limits) {
            Ok(l) => {
                let key = (l.provider, l.lot_id.clone());
                if let Some(first) = seen.insert(key, *line) {
                    return Err(FileError::at(
                        Some(*line),
                        None,
                        format!(
                            "lot_id {:?} appears again (first at line {first}): a lot counted \
                             twice would double its credit",
                            excerpt(&l.lot_id)
                        ),
                    ));
                }
                sink.ledger(LedgerItem::Lot(l));
            }
            Err(r) => quarantine_row(sink, *line, r, &record_text(rec)),
        }
    }
    Ok(())
}

fn lot(
    t: &Table,
    rec: &csv::StringRecord,
    line: u64,
    limits: &Limits,
) -> Result<CreditLot, Refusal> {
    let lot_id = t.get(rec, "lot_id");
    if lot_id.is_empty() {
        return Err(refuse("lot_id", "missing required field lot_id"));
    }
    let provider = provider(t.get(rec, "provider"))?;
    let kind_raw = t.get(rec, "kind");
    let kind = CreditKind::parse(kind_raw).ok_or_else(|| {
        let kinds: Vec<&str> = CreditKind::ALL.iter().map(|k| k.as_str()).collect();
        refuse(
            "kind",
            format!(
                "kind {:?} is not one of {}",
                excerpt(kind_raw),
                kinds.join(", ")
            ),
        )
    })?;
    let purchased_at = utc_day("purchased_at", t.get(rec, "purchased_at"))?;
    limits
        .check_day(purchased_at)
        .map_err(|r| refuse("purchased_at", r))?;
    let amount = dollars("amount_usd", t.get(rec, "amount_usd"))?;
    if amount <= Decimal::ZERO {
        return Err(refuse(
            "amount_usd",
            format!("amount_usd {amount} is not positive"),
        ));
    }
    let stated = match t.get(rec, "expires_at") {
        "" => None,
        raw => Some(utc_day("expires_at", raw)?),
    };
    let expires_at = match (kind, stated) {
        (_, Some(e)) => Some(check_expiry(purchased_at, e)?),
        (CreditKind::Prepaid | CreditKind::AutoReload, None) => Some(one_year_after(purchased_at)),
        (CreditKind::Monthly, None) => None,
        (CreditKind::Promotional, None) => {
            return Err(refuse(
                "expires_at",
                "a promotional lot needs its expiry date (promotional credit has no standard term)",
            ));
        }
    };
    Ok(CreditLot {
        lot_id: lot_id.to_string(),
        provider,
        kind,
        purchased_at,
        amount,
        expires_at,
        expiry_stated: stated.is_some(),
        source_row: line,
    })
}

fn check_expiry(purchased: NaiveDate, expires: NaiveDate) -> Result<NaiveDate, Refusal> {
    let latest = purchased
        .checked_add_months(chrono::Months::new(12 * LATEST_EXPIRY_YEARS))
        .unwrap_or(NaiveDate::MAX);
    if expires <= purchased {
        Err(refuse(
            "expires_at",
            format!("expires_at {expires} is not after purchased_at {purchased}"),
        ))
    } else if expires > latest {
        Err(refuse(
            "expires_at",
            format!(
                "expires_at {expires} is more than {LATEST_EXPIRY_YEARS} years after purchase (a typo'd year?)"
            ),
        ))
    } else {
        Ok(expires)
    }
}

/// The balance-snapshots CSV: what the Console showed, as assertions on the ledger.
pub fn parse_snapshots(
    bytes: &[u8],
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    let t = Table::read(bytes, (SNAPSHOT_COLUMNS, &[]), false, sink)?;
    let mut seen: HashMap<(Provider, NaiveDate), u64> = HashMap::new();
    for (line, rec) in &t.rows {
        let snap = (|| {
            let as_of = utc_day("as_of", t.get(rec, "as_of"))?;
            limits.check_day(as_of).map_err(|r| refuse("as_of", r))?;
            Ok(BalanceSnapshot {
                as_of,
                provider: provider(t.get(rec, "provider"))?,
                balance: dollars("balance_usd", t.get(rec, "balance_usd"))?,
                source_row: *line,
            })
        })();
        match snap {
            Ok(s) => {
                if let Some(first) = seen.insert((s.provider, s.as_of), *line) {
                    return Err(FileError::at(
                        Some(*line),
                        None,
                        format!(
                            "a second balance for {} {} (first at line {first})",
                            s.provider, s.as_of
                        ),
                    ));
                }
                sink.ledger(LedgerItem::Snapshot(s));
            }
            Err(r) => quarantine_row(sink, *line, r, &record_text(rec)),
        }
    }
    Ok(())
}

/// The invoice CSV: rows of one `invoice_number` are one invoice; a bad row refuses its whole
/// invoice (an invoice missing a line would not tie out).
pub fn parse_invoice_csv(
    bytes: &[u8],
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    let t = Table::read(bytes, (INVOICE_COLUMNS, INVOICE_OPTIONAL), true, sink)?;
    let mut by_number: BTreeMap<(String, String), Vec<(u64, &csv::StringRecord)>> = BTreeMap::new();
    for (line, rec) in &t.rows {
        let key = (
            t.get(rec, "provider").to_string(),
            t.get(rec, "invoice_number").to_string(),
        );
        by_number.entry(key).or_default().push((*line, rec));
    }
    for ((_, number), rows) in by_number {
        match csv_invoice(&t, &number, &rows, limits) {
            Ok(inv) => sink.ledger(LedgerItem::Invoice(Box::new(inv))),
            Err((line, r)) => {
                let rec = rows
                    .iter()
                    .find(|(l, _)| *l == line)
                    .map(|(_, r)| record_text(r));
                let reason = format!("{} (invoice {:?} not loaded)", r.1, excerpt(&number));
                quarantine_row(sink, line, (r.0, reason), &rec.unwrap_or_default());
            }
        }
    }
    Ok(())
}

/// What every row of one CSV invoice must agree on: provider, currency, period.
type InvoiceHead = (Provider, String, NaiveDate, NaiveDate, Extra);
/// The optional columns: issued, due, status, issuer.
type Extra = (
    Option<NaiveDate>,
    Option<NaiveDate>,
    Option<String>,
    Option<String>,
);

fn invoice_head(t: &Table, rec: &csv::StringRecord) -> Result<InvoiceHead, Refusal> {
    let currency = usd_only(t.get(rec, "currency")).map_err(|r| refuse("currency", r))?;
    let start = utc_day("period_start", t.get(rec, "period_start"))?;
    let end = utc_day("period_end", t.get(rec, "period_end"))?;
    if end <= start {
        let reason = format!("period_end {end} is not after period_start {start}");
        return Err(refuse("period_end", reason));
    }
    let day = |c: &str| -> Result<Option<NaiveDate>, Refusal> {
        let v = t.get(rec, c);
        (!v.is_empty()).then(|| utc_day(c, v)).transpose()
    };
    let text = |c: &str| Some(t.get(rec, c).to_string()).filter(|v| !v.is_empty());
    let extra = (
        day("issued_at")?,
        day("due_date")?,
        text("status"),
        text("issuer"),
    );
    Ok((
        provider(t.get(rec, "provider"))?,
        currency,
        start,
        end,
        extra,
    ))
}

/// An invoice with no amounts yet.
fn empty_invoice(number: &str, head: InvoiceHead, row: u64) -> Invoice {
    let (provider, currency, start, end, (issued, due, status, issuer)) = head;
    Invoice {
        provider,
        number: number.to_string(),
        invoice_id: None,
        currency,
        period_start: day_start(start),
        period_end: day_start(end),
        subtotal: Decimal::ZERO,
        discount: Decimal::ZERO,
        tax: Decimal::ZERO,
        total: Decimal::ZERO,
        starting_balance: Decimal::ZERO,
        amount_due: Decimal::ZERO,
        lines: Vec::new(),
        lines_complete: true,
        issuer_name: issuer,
        issued_at: issued.map(day_start),
        due_at: due.map(day_start),
        status,
        collection_method: None,
        source_row: row,
    }
}

/// Adds one CSV line to `inv`, by its kind.
fn add_invoice_line(inv: &mut Invoice, t: &Table, rec: &csv::StringRecord) -> Result<(), Refusal> {
    let amount = dollars("amount_usd", t.get(rec, "amount_usd"))?;
    let kind = t.get(rec, "line_kind");
    if matches!(kind, "credit" | "discount") && amount > Decimal::ZERO {
        let reason = format!("a {kind} line lowers the bill: write it as a negative amount");
        return Err(refuse("amount_usd", reason));
    }
    match kind {
        "charge" | "credit" => {
            inv.subtotal += amount;
            inv.lines.push(InvoiceLine {
                line_no: inv.lines.len() as u64 + 1,
                description: Some(t.get(rec, "description").to_string()).filter(|d| !d.is_empty()),
                amount,
                period_start: None,
                period_end: None,
                quantity: None,
            });
        }
        "discount" => inv.discount -= amount,
        "tax" => inv.tax += amount,
        "balance" => inv.starting_balance += amount,
        other => {
            let kinds = INVOICE_LINE_KINDS.join(", ");
            return Err(refuse(
                "line_kind",
                format!("line_kind {:?} is not one of {kinds}", excerpt(other)),
            ));
        }
    }
    Ok(())
}

fn csv_invoice(
    t: &Table,
    number: &str,
    rows: &[(u64, &csv::StringRecord)],
    limits: &Limits,
) -> Result<Invoice, (u64, Refusal)> {
    let (first_line, first) = rows[0];
    let at = |line: u64| move |r: Refusal| (line, r);
    if number.is_empty() {
        let r = refuse("invoice_number", "missing required field invoice_number");
        return Err((first_line, r));
    }
    let head = invoice_head(t, first).map_err(at(first_line))?;
    limits
        .check_day(head.2)
        .map_err(|r| (first_line, refuse("period_start", r)))?;
    let mut inv = empty_invoice(number, head.clone(), first_line);
    for (line, rec) in rows {
        if invoice_head(t, rec).map_err(at(*line))? != head {
            let r = refuse(
                "invoice_number",
                "rows of one invoice disagree on provider, currency, period, issue or due date, \
                 status or issuer",
            );
            return Err((*line, r));
        }
        add_invoice_line(&mut inv, t, rec).map_err(at(*line))?;
    }
    inv.total = inv.subtotal - inv.discount + inv.tax;
    inv.amount_due = inv.total + inv.starting_balance;
    Ok(inv)
}

// ---- Stripe ----------------------------------------------------------------------------

/// The fields of a Stripe invoice object tokenledger reads; integer cents throughout (a JSON
/// float in a cents field fails the invoice: it may already have lost precision).
#[derive(Deserialize)]
struct StripeInvoice {
    object: String,
    /// The business that issued the invoice ("Anthropic, PBC", "OpenAI, LLC").
    account_name: Option<String>,
    id: Option<String>,
    number: Option<String>,
    status: Option<String>,
    currency: String,
    period_start: Option<i64>,
    period_end: Option<i64>,
    subtotal: i64,
    tax: Option<i64>,
    total: i64,
    amount_due: i64,
    starting_balance: Option<i64>,
    /// Stripe's invoice object (https://docs.stripe.com/api/invoices/object): `created`,
    /// `status_transitions.finalized_at` (when a draft became a bill), `due_date` (null when
    /// charged automatically), `collection_method`.
    created: Option<i64>,
    #[serde(default)]
    status_transitions: Option<StripeTransitions>,
    due_date: Option<i64>,
    collection_method: Option<String>,
    #[serde(default)]
    total_discount_amounts: Option<Vec<StripeAmount>>,
    #[serde(default)]
    total_tax_amounts: Option<Vec<StripeAmount>>,
    lines: Option<StripeList>,
}

#[derive(Deserialize)]
struct StripeTransitions {
    finalized_at: Option<i64>,
}

#[derive(Deserialize)]
struct StripeAmount {
    amount: i64,
}

#[derive(Deserialize)]
struct StripeList {
    data: Vec<StripeLine>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Deserialize)]
struct StripeLine {
    amount: i64,
    description: Option<String>,
    period: Option<StripePeriod>,
    quantity: Option<i64>,
}

#[derive(Deserialize)]
struct StripePeriod {
    start: i64,
    end: i64,
}

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

fn unix(field: &str, secs: i64) -> Result<DateTime<Utc>, Refusal> {
    DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| refuse(field, format!("{field} {secs} is not a unix time")))
}

/// Stripe invoices: `{"object":"invoice",…}`, a list page `{"object":"list","data":[…]}`, or a
/// JSON array of invoices. Each invoice stands alone: a bad one is quarantined, the rest load.
pub fn parse_stripe(bytes: &[u8], limits: &Limits, sink: &mut dyn Sink) -> Result<(), FileError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        FileError::at(
            Some(e.line() as u64),
            Some(e.column() as u64),
            format!("invalid JSON: {e}"),
        )
    })?;
    let (items, path): (Vec<serde_json::Value>, &str) = match doc {
        serde_json::Value::Array(a) => (a, ""),
        serde_json::Value::Object(mut o)
            if o.get("object").and_then(|v| v.as_str()) == Some("list") =>
        {
            match o.remove("data") {
                Some(serde_json::Value::Array(a)) => (a, "data"),
                _ => return Err(FileError::new("a Stripe list without data[]")),
            }
        }
        v @ serde_json::Value::Object(_) => (vec![v], ""),
        _ => {
            return Err(FileError::new(
                "JSON, but not a Stripe invoice, list or array of invoices",
            ));
        }
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, v) in items.into_iter().enumerate() {
        let location = if path.is_empty() {
            format!("[{i}]")
        } else {
            format!("{path}[{i}]")
        };
        match stripe_invoice(v, limits) {
            Ok(inv) => {
                if let Some(first) = seen.insert(inv.number.clone(), i) {
                    return Err(FileError::new(format!(
                        "invoice {:?} appears twice in one file ([{first}] and [{i}])",
                        excerpt(&inv.number)
                    )));
                }
                sink.ledger(LedgerItem::Invoice(Box::new(inv)));
            }
            Err((field, reason)) => sink.quarantine(Quarantined {
                location,
                line: None,
                field: Some(field),
                reason,
                excerpt: None,
            }),
        }
    }
    Ok(())
}

/// A Stripe invoice object, decoded strictly; refuses what is not a final bill.
fn decode_stripe(v: serde_json::Value) -> Result<(StripeInvoice, String), Refusal> {
    let s: StripeInvoice = serde_json::from_value(v).map_err(|e| {
        refuse(
            "invoice",
            format!("not a Stripe invoice tokenledger can read exactly: {e}"),
        )
    })?;
    if s.object != "invoice" {
        return Err(refuse(
            "object",
            format!("object {:?} is not an invoice", excerpt(&s.object)),
        ));
    }
    let status = s.status.as_deref().unwrap_or("");
    if matches!(status, "draft" | "void") {
        return Err(refuse(
            "status",
            format!("a {status} invoice is not a bill: not tied out"),
        ));
    }
    let number = s.number.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
        refuse(
            "number",
            "an invoice without a number (a draft?) cannot be matched or restated",
        )
    })?;
    Ok((s, number))
}

/// A `[start, end)` of time.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// The lines, and the span of their periods.
fn stripe_lines(list: &StripeList) -> Result<(Vec<InvoiceLine>, Option<Span>), Refusal> {
    let mut lines = Vec::new();
    let mut span: Option<Span> = None;
    for (n, l) in list.data.iter().enumerate() {
        let period = match &l.period {
            Some(p) => Some((unix("period.start", p.start)?, unix("period.end", p.end)?)),
            None => None,
        };
        if let Some((a, b)) = period {
            span = Some(span.map_or((a, b), |(lo, hi)| (lo.min(a), hi.max(b))));
        }
        lines.push(InvoiceLine {
            line_no: n as u64 + 1,
            description: l.description.clone(),
            amount: cents(l.amount),
            period_start: period.map(|p| p.0),
            period_end: period.map(|p| p.1),
            quantity: l.quantity,
        });
    }
    Ok((lines, span))
}

fn stripe_invoice(v: serde_json::Value, limits: &Limits) -> Result<Invoice, Refusal> {
    let (s, number) = decode_stripe(v)?;
    let currency = usd_only(&s.currency).map_err(|r| refuse("currency", r))?;
    let list = s.lines.unwrap_or(StripeList {
        data: Vec::new(),
        has_more: false,
    });
    let (lines, span) = stripe_lines(&list)?;
    // The invoice's own period when it spans time; else (a one-off invoice) its lines' span.
    let own = match (s.period_start, s.period_end) {
        (Some(a), Some(b)) if b > a => Some((unix("period_start", a)?, unix("period_end", b)?)),
        _ => None,
    };
    let (period_start, period_end) = own.or(span.filter(|(a, b)| b > a)).ok_or_else(|| {
        refuse(
            "period_start",
            "no billing period: neither period_start/period_end nor line periods span time",
        )
    })?;
    limits
        .check_day(period_start.date_naive())
        .map_err(|r| refuse("period_start", r))?;
    let discount: i64 = s
        .total_discount_amounts
        .iter()
        .flatten()
        .map(|a| a.amount)
        .sum();
    let tax = s
        .tax
        .unwrap_or_else(|| s.total_tax_amounts.iter().flatten().map(|a| a.amount).sum());
    let issuer = s.account_name.as_deref().unwrap_or("").to_ascii_lowercase();
    // Stripe names the issuing account ("Anthropic, PBC", "OpenAI, L.L.C."): the provider whose
    // name it contains; an account that names none is Anthropic's, as before OpenAI was read.
    let provider = Provider::ALL
        .into_iter()
        .find(|p| issuer.contains(p.as_str()))
        .unwrap_or(Provider::Anthropic);
    let finalized = s.status_transitions.as_ref().and_then(|t| t.finalized_at);
    let issued_at = match finalized.or(s.created) {
        Some(t) => Some(unix("created", t)?),
        None => None,
    };
    let due_at = match s.due_date {
        Some(t) => Some(unix("due_date", t)?),
        None => None,
    };
    Ok(Invoice {
        provider,
        number,
        invoice_id: s.id,
        currency,
        period_start,
        period_end,
        subtotal: cents(s.subtotal),
        discount: cents(discount),
        tax: cents(tax),
        total: cents(s.total),
        starting_balance: cents(s.starting_balance.unwrap_or(0)),
        amount_due: cents(s.amount_due),
        lines,
        lines_complete: !list.has_more,
        issuer_name: s.account_name.filter(|n| !n.is_empty()),
        issued_at,
        due_at,
        status: s.status,
        collection_method: s.collection_method,
        source_row: 0,
    })
}
