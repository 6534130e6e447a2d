//! The buyer's ledger tables: credit lots, balance snapshots, invoices and their lines.
//! Small keyed tables, each one file (`table/part-0.parquet`) rewritten whole through the
//! journal when an ingest changes it; a later file replaces an item of the same key.
//!
//! Owns: the canonical rows ⇄ batches conversion (money as
//! `Decimal128(28, 12)`, days as `Date32`; their schemas are [`super::schema`]'s). Must not:
//! decide which item wins (that is `ingest`).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Date32Type, Decimal128Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::batch::{Stored, from_micros, i64_col, micros, provider_at, str_col, ts_col};
use super::error::{LakeError, Result};
pub use super::schema::{balance_snapshots, credit_lots, invoice_lines, invoices};
use super::{MONEY_PRECISION, MONEY_SCALE};
use crate::model::{BalanceSnapshot, CreditKind, CreditLot, Invoice, InvoiceLine};
use crate::money::Money;

// ---- building ------------------------------------------------------------------------------

const EPOCH_DAYS_CE: i32 = 719_163;

fn days(d: NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - EPOCH_DAYS_CE
}
fn from_days(n: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(n + EPOCH_DAYS_CE).expect("lake dates are in range")
}

fn money_units(d: Decimal) -> i128 {
    Money::from_decimal(d)
        .expect("ledger amounts are checked at parse time to fit the lake's scale")
        .units()
}

fn money_array(v: impl Iterator<Item = Decimal>) -> ArrayRef {
    Arc::new(
        Decimal128Array::from_iter_values(v.map(money_units))
            .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE as i8)
            .expect("lake money type"),
    )
}
fn strings<'a>(v: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}
fn opt_strings<'a>(v: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}
fn timestamps(v: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter(v).with_timezone("UTC"))
}
fn lineage_columns<T>(rows: &[Stored<T>], row: impl Fn(&T) -> u64) -> [ArrayRef; 3] {
    [
        strings(rows.iter().map(|r| r.source_file.as_str())),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| row(&r.item) as i64),
        )),
        strings(rows.iter().map(|r| r.ingest_id.as_str())),
    ]
}
fn batch(schema: SchemaRef, mut cols: Vec<ArrayRef>, lineage: [ArrayRef; 3]) -> RecordBatch {
    cols.extend(lineage);
    RecordBatch::try_new(schema, cols).expect("ledger columns match their schema")
}

pub fn credit_lots_batch(rows: &[Stored<CreditLot>]) -> RecordBatch {
    let it = || rows.iter().map(|r| &r.item);
    batch(
        credit_lots(),
        vec![
            strings(it().map(|l| l.provider.as_str())),
            strings(it().map(|l| l.lot_id.as_str())),
            strings(it().map(|l| l.kind.as_str())),
            Arc::new(Date32Array::from_iter_values(
                it().map(|l| days(l.purchased_at)),
            )),
            money_array(it().map(|l| l.amount)),
            Arc::new(Date32Array::from_iter(it().map(|l| l.expires_at.map(days)))),
            Arc::new(BooleanArray::from_iter(it().map(|l| Some(l.expiry_stated)))),
        ],
        lineage_columns(rows, |l| l.source_row),
    )
}

pub fn balance_snapshots_batch(rows: &[Stored<BalanceSnapshot>]) -> RecordBatch {
    let it = || rows.iter().map(|r| &r.item);
    batch(
        balance_snapshots(),
        vec![
            strings(it().map(|s| s.provider.as_str())),
            Arc::new(Date32Array::from_iter_values(it().map(|s| days(s.as_of)))),
            money_array(it().map(|s| s.balance)),
        ],
        lineage_columns(rows, |s| s.source_row),
    )
}

/// The invoice a file gave, with the format it came in (for lineage).
#[derive(Debug, Clone)]
pub struct SourcedInvoice {
    pub invoice: Invoice,
    pub source_format: String,
}

pub fn invoices_batch(rows: &[Stored<SourcedInvoice>]) -> RecordBatch {
    let it = || rows.iter().map(|r| &r.item.invoice);
    batch(
        invoices(),
        vec![
            strings(it().map(|i| i.provider.as_str())),
            strings(it().map(|i| i.number.as_str())),
            opt_strings(it().map(|i| i.invoice_id.as_deref())),
            strings(it().map(|i| i.currency.as_str())),
            timestamps(it().map(|i| Some(micros(i.period_start)))),
            timestamps(it().map(|i| Some(micros(i.period_end)))),
            money_array(it().map(|i| i.subtotal)),
            money_array(it().map(|i| i.discount)),
            money_array(it().map(|i| i.tax)),
            money_array(it().map(|i| i.total)),
            money_array(it().map(|i| i.starting_balance)),
            money_array(it().map(|i| i.amount_due)),
            money_array(it().map(|i| i.credits_applied())),
            Arc::new(Int64Array::from_iter_values(
                it().map(|i| i.lines.len() as i64),
            )),
            Arc::new(BooleanArray::from_iter(
                it().map(|i| Some(i.lines_complete)),
            )),
            strings(rows.iter().map(|r| r.item.source_format.as_str())),
            opt_strings(it().map(|i| i.issuer_name.as_deref())),
            timestamps(it().map(|i| i.issued_at.map(micros))),
            timestamps(it().map(|i| i.due_at.map(micros))),
            opt_strings(it().map(|i| i.status.as_deref())),
            opt_strings(it().map(|i| i.collection_method.as_deref())),
        ],
        lineage_columns(rows, |i| i.invoice.source_row),
    )
}

pub fn invoice_lines_batch(rows: &[Stored<SourcedInvoice>]) -> RecordBatch {
    let lines: Vec<(&Stored<SourcedInvoice>, &InvoiceLine)> = rows
        .iter()
        .flat_map(|r| r.item.invoice.lines.iter().map(move |l| (r, l)))
        .collect();
    let it = || lines.iter();
    RecordBatch::try_new(
        invoice_lines(),
        vec![
            strings(it().map(|(r, _)| r.item.invoice.provider.as_str())),
            strings(it().map(|(r, _)| r.item.invoice.number.as_str())),
            Arc::new(Int64Array::from_iter_values(
                it().map(|(_, l)| l.line_no as i64),
            )),
            opt_strings(it().map(|(_, l)| l.description.as_deref())),
            money_array(it().map(|(_, l)| l.amount)),
            timestamps(it().map(|(_, l)| l.period_start.map(micros))),
            timestamps(it().map(|(_, l)| l.period_end.map(micros))),
            Arc::new(Int64Array::from_iter(it().map(|(_, l)| l.quantity))),
            strings(it().map(|(r, _)| r.source_file.as_str())),
            Arc::new(Int64Array::from_iter_values(
                it().map(|(r, _)| r.item.invoice.source_row as i64),
            )),
            strings(it().map(|(r, _)| r.ingest_id.as_str())),
        ],
    )
    .expect("invoice line columns match their schema")
}

// ---- reading -------------------------------------------------------------------------------

fn missing(b: &RecordBatch, name: &str) -> LakeError {
    LakeError::Column {
        path: format!("ledger batch of {} columns", b.num_columns()).into(),
        column: name.into(),
    }
}
fn date_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Date32Array> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Date32Type>())
        .ok_or_else(|| missing(b, name))
}
fn money_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Decimal128Array> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Decimal128Type>())
        .filter(|a| a.scale() == MONEY_SCALE as i8)
        .ok_or_else(|| missing(b, name))
}
fn bool_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a BooleanArray> {
    b.column_by_name(name)
        .and_then(|c| c.as_boolean_opt())
        .ok_or_else(|| missing(b, name))
}
fn dec(a: &Decimal128Array, i: usize) -> Decimal {
    Money::from_units(a.value(i))
        .to_decimal()
        .expect("a lake amount fits a decimal")
}
fn stored<T>(b: &RecordBatch, items: Vec<T>) -> Result<Vec<Stored<T>>> {
    let (file, ing) = (str_col(b, "source_file")?, str_col(b, "ingest_id")?);
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| Stored {
            item,
            source_file: file.value(i).into(),
            ingest_id: ing.value(i).into(),
        })
        .collect())
}

pub fn credit_lots_rows(b: &RecordBatch) -> Result<Vec<Stored<CreditLot>>> {
    let (prov, id, kind) = (
        str_col(b, "provider")?,
        str_col(b, "lot_id")?,
        str_col(b, "kind")?,
    );
    let (bought, amount, exp) = (
        date_col(b, "purchased_at")?,
        money_col(b, "amount_usd")?,
        date_col(b, "expires_at")?,
    );
    let (stated, row) = (bool_col(b, "expiry_stated")?, i64_col(b, "source_row")?);
    let mut items = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        items.push(CreditLot {
            lot_id: id.value(i).into(),
            provider: provider_at(prov, i)?,
            kind: CreditKind::parse(kind.value(i)).ok_or_else(|| missing(b, "kind"))?,
            purchased_at: from_days(bought.value(i)),
            amount: dec(amount, i),
            expires_at: exp.is_valid(i).then(|| from_days(exp.value(i))),
            expiry_stated: stated.value(i),
            source_row: row.value(i) as u64,
        });
    }
    stored(b, items)
}

pub fn balance_snapshots_rows(b: &RecordBatch) -> Result<Vec<Stored<BalanceSnapshot>>> {
    let (prov, as_of) = (str_col(b, "provider")?, date_col(b, "as_of")?);
    let (bal, row) = (money_col(b, "balance_usd")?, i64_col(b, "source_row")?);
    let items = (0..b.num_rows())
        .map(|i| {
            Ok(BalanceSnapshot {
                as_of: from_days(as_of.value(i)),
                provider: provider_at(prov, i)?,
                balance: dec(bal, i),
                source_row: row.value(i) as u64,
            })
        })
        .collect::<Result<_>>()?;
    stored(b, items)
}

type LinesByInvoice = std::collections::HashMap<(String, String), Vec<InvoiceLine>>;

/// The invoice lines of `lines` batches, by (provider, invoice number).
fn lines_by_invoice(lines: &[RecordBatch]) -> Result<LinesByInvoice> {
    let mut by_key = LinesByInvoice::new();
    for lb in lines {
        let (prov, num, no) = (
            str_col(lb, "provider")?,
            str_col(lb, "invoice_number")?,
            i64_col(lb, "line_no")?,
        );
        let (desc, amount) = (str_col(lb, "description")?, money_col(lb, "amount_usd")?);
        let (ps, pe, qty) = (
            ts_col(lb, "period_start")?,
            ts_col(lb, "period_end")?,
            i64_col(lb, "quantity")?,
        );
        for i in 0..lb.num_rows() {
            by_key
                .entry((prov.value(i).into(), num.value(i).into()))
                .or_default()
                .push(InvoiceLine {
                    line_no: no.value(i) as u64,
                    description: desc.is_valid(i).then(|| desc.value(i).to_string()),
                    amount: dec(amount, i),
                    period_start: ps.is_valid(i).then(|| from_micros(ps.value(i))),
                    period_end: pe.is_valid(i).then(|| from_micros(pe.value(i))),
                    quantity: qty.is_valid(i).then(|| qty.value(i)),
                });
        }
    }
    Ok(by_key)
}

/// Invoices with their lines (`lines` batches of the same lake state).
pub fn invoices_rows(
    b: &RecordBatch,
    lines: &[RecordBatch],
) -> Result<Vec<Stored<SourcedInvoice>>> {
    let mut by_key = lines_by_invoice(lines)?;
    let (prov, num, id, cur) = (
        str_col(b, "provider")?,
        str_col(b, "invoice_number")?,
        str_col(b, "invoice_id")?,
        str_col(b, "currency")?,
    );
    let (ps, pe) = (ts_col(b, "period_start")?, ts_col(b, "period_end")?);
    let m = |n| money_col(b, n);
    let (sub, disc, tax, tot, start, due) = (
        m("subtotal_usd")?,
        m("discount_usd")?,
        m("tax_usd")?,
        m("total_usd")?,
        m("starting_balance_usd")?,
        m("amount_due_usd")?,
    );
    let (complete, fmt, row) = (
        bool_col(b, "lines_complete")?,
        str_col(b, "source_format")?,
        i64_col(b, "source_row")?,
    );
    let (issuer, status, method) = (
        str_col(b, "issuer_name")?,
        str_col(b, "status")?,
        str_col(b, "collection_method")?,
    );
    let (issued, due_at) = (ts_col(b, "issued_at")?, ts_col(b, "due_at")?);
    let text = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
    let time =
        |a: &TimestampMicrosecondArray, i: usize| a.is_valid(i).then(|| from_micros(a.value(i)));
    let mut items = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let key = (prov.value(i).to_string(), num.value(i).to_string());
        let mut lines = by_key.remove(&key).unwrap_or_default();
        lines.sort_by_key(|l| l.line_no);
        items.push(SourcedInvoice {
            invoice: Invoice {
                provider: provider_at(prov, i)?,
                number: key.1,
                invoice_id: id.is_valid(i).then(|| id.value(i).to_string()),
                currency: cur.value(i).into(),
                period_start: from_micros(ps.value(i)),
                period_end: from_micros(pe.value(i)),
                subtotal: dec(sub, i),
                discount: dec(disc, i),
                tax: dec(tax, i),
                total: dec(tot, i),
                starting_balance: dec(start, i),
                amount_due: dec(due, i),
                lines,
                lines_complete: complete.value(i),
                issuer_name: text(issuer, i),
                issued_at: time(issued, i),
                due_at: time(due_at, i),
                status: text(status, i),
                collection_method: text(method, i),
                source_row: row.value(i) as u64,
            },
            source_format: fmt.value(i).into(),
        });
    }
    stored(b, items)
}
