//! The ledger tables during an ingest: what the lake holds, then each new file's items on top,
//! keyed, so that a restated lot, snapshot or invoice replaces the one before (same key), and
//! re-ingesting the same content changes nothing.
//!
//! Owns: the keys (lot: provider + lot_id; snapshot: provider + as_of; invoice: provider +
//! number) and which tables changed. Must not: parse (`sources`) or write (`phases` stages).

use crate::vocab::Provider;
use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::lake::LakeError;
use crate::lake::batch::Stored;
use crate::lake::io as lio;
use crate::lake::ledger::{self as ll, SourcedInvoice};
use crate::lake::{Layout, Table};
use crate::model::{BalanceSnapshot, CreditLot, LedgerItem, SourceFormat};

#[derive(Default)]
pub(super) struct Ledger {
    pub lots: BTreeMap<(Provider, String), Stored<CreditLot>>,
    pub snapshots: BTreeMap<(Provider, NaiveDate), Stored<BalanceSnapshot>>,
    pub invoices: BTreeMap<(Provider, String), Stored<SourcedInvoice>>,
    /// lots, snapshots, invoices (invoices and their lines change together).
    pub changed: [bool; 3],
}

impl Ledger {
    /// The ledger tables as the lake holds them.
    pub fn read(layout: &Layout) -> Result<Self, LakeError> {
        let mut l = Ledger::default();
        for b in lio::read_all(&layout.table_file(Table::CreditLots))? {
            for s in ll::credit_lots_rows(&b)? {
                l.lots.insert((s.item.provider, s.item.lot_id.clone()), s);
            }
        }
        for b in lio::read_all(&layout.table_file(Table::BalanceSnapshots))? {
            for s in ll::balance_snapshots_rows(&b)? {
                l.snapshots.insert((s.item.provider, s.item.as_of), s);
            }
        }
        let lines = lio::read_all(&layout.table_file(Table::InvoiceLines))?;
        for b in lio::read_all(&layout.table_file(Table::Invoices))? {
            for s in ll::invoices_rows(&b, &lines)? {
                let key = (s.item.invoice.provider, s.item.invoice.number.clone());
                l.invoices.insert(key, s);
            }
        }
        Ok(l)
    }

    /// One file's items, over what is there (an item equal to the stored one changes nothing).
    pub fn apply(
        &mut self,
        items: Vec<LedgerItem>,
        format: SourceFormat,
        source_file: &str,
        ingest_id: &str,
    ) {
        fn stored<T>(item: T, source_file: &str, ingest_id: &str) -> Stored<T> {
            Stored {
                item,
                source_file: source_file.to_string(),
                ingest_id: ingest_id.to_string(),
            }
        }
        for item in items {
            match item {
                LedgerItem::Lot(l) => {
                    let key = (l.provider, l.lot_id.clone());
                    if self.lots.get(&key).map(|s| &s.item) != Some(&l) {
                        self.changed[0] = true;
                        self.lots.insert(key, stored(l, source_file, ingest_id));
                    }
                }
                LedgerItem::Snapshot(s) => {
                    let key = (s.provider, s.as_of);
                    if self.snapshots.get(&key).map(|x| &x.item) != Some(&s) {
                        self.changed[1] = true;
                        self.snapshots
                            .insert(key, stored(s, source_file, ingest_id));
                    }
                }
                LedgerItem::Invoice(invoice) => {
                    let key = (invoice.provider, invoice.number.clone());
                    if self.invoices.get(&key).map(|x| &x.item.invoice) != Some(&*invoice) {
                        self.changed[2] = true;
                        let item = SourcedInvoice {
                            invoice: *invoice,
                            source_format: format.as_str().to_string(),
                        };
                        self.invoices
                            .insert(key, stored(item, source_file, ingest_id));
                    }
                }
            }
        }
    }
}
