//! Every table's Arrow schema and Parquet writer settings: the one place a column or a file
//! setting of the lake is decided. `docs/lake.md` documents every column; keep the two in step
//! (a test checks that every column here is named there).
//!
//! Must not: import another file of `lake/` but its root (the schemas are the bottom of the
//! folder: io, batch, ledger and txn build on them).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{MONEY_PRECISION, MONEY_SCALE, Table};

/// The usage table's count columns: the token classes and web search requests, in order.
pub use crate::vocab::COUNT_COLUMNS as TOKEN_COLUMNS;
pub use crate::vocab::{COST_COLUMNS, RATE_COLUMNS};

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}
fn s(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}
fn i(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}
fn t(name: &str, nullable: bool) -> Field {
    Field::new(name, ts(), nullable)
}
fn money(name: &str) -> Field {
    Field::new(
        name,
        DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE as i8),
        false,
    )
}
fn lineage() -> [Field; 4] {
    [
        s("source_format", false),
        s("source_file", false),
        Field::new("source_row", DataType::Int64, false),
        s("ingest_id", false),
    ]
}

pub fn usage() -> SchemaRef {
    let mut f = vec![
        t("bucket_start", false),
        t("bucket_end", false),
        s("bucket_width", false),
        s("provider", false),
        s("workspace_id", true),
        s("workspace_name", true),
        s("api_key_id", true),
        s("api_key_name", true),
        s("model", true),
        s("service_tier", true),
        s("context_window", true),
        s("inference_geo", true),
        s("speed", true),
        s("account_id", true),
        s("service_account_id", true),
        s("product", true),
        s("agent_id", true),
        s("actor_type", true),
        s("actor_id", true),
        s("actor_email", true),
    ];
    f.extend(TOKEN_COLUMNS.iter().map(|c| i(c)));
    f.push(Field::new(
        "cache_write_assumed_5m",
        DataType::Boolean,
        false,
    ));
    // Usage in another unit than tokens (OpenAI images, characters, …): its name and quantity.
    f.push(s("unit", true));
    f.push(i("unit_quantity"));
    // OpenAI's modality detail (parts of the token classes, not added to them).
    f.extend(crate::model::MODALITY_COLUMNS.iter().map(|c| i(c)));
    // Model requests where the source counts them (schema 8); null where it does not.
    f.push(Field::new("requests", DataType::Int64, true));
    f.extend(lineage());
    Arc::new(Schema::new(f))
}

pub fn cost() -> SchemaRef {
    let mut f = vec![
        t("bucket_start", false),
        t("bucket_end", false),
        s("provider", false),
        s("workspace_id", true),
        s("workspace_name", true),
        s("description", true),
        s("cost_type", true),
        s("model", true),
        s("token_type", true),
        s("service_tier", true),
        s("context_window", true),
        s("inference_geo", true),
        s("currency", false),
        money("amount"),
        s("amount_raw", false),
        Field::new(
            "list_amount",
            DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE as i8),
            true,
        ),
    ];
    f.extend(lineage());
    Arc::new(Schema::new(f))
}

/// What each export said it covers: an interval owned by one source file of one ingest.
pub fn coverage() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("provider", false),
        s("family", false),
        t("bucket_start", false),
        t("bucket_end", false),
        s("source_format", false),
        s("source_file", false),
        s("ingest_id", false),
    ]))
}

pub fn workspaces() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("provider", false),
        s("workspace_id", false),
        s("workspace_name", false),
        t("created_at", true),
        t("archived_at", true),
        s("display_color", true),
        s("tags", true),
        s("source_file", false),
        s("ingest_id", false),
    ]))
}

pub fn api_keys() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("provider", false),
        s("api_key_id", false),
        s("api_key_name", false),
        s("workspace_id", true),
        t("created_at", true),
        s("created_by_id", true),
        s("partial_key_hint", true),
        s("status", true),
        t("expires_at", true),
        s("source_file", false),
        s("ingest_id", false),
    ]))
}

pub fn ingest_log() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("content_hash", false),
        s("source_file", false),
        i("size_bytes"),
        s("source_format", true),
        s("ingest_id", false),
        t("ingested_at", false),
        i("rows_read"),
        i("rows_loaded"),
        i("rows_quarantined"),
        i("rows_superseded"),
        s("status", false),
    ]))
}

pub fn quarantine() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("ingest_id", false),
        t("quarantined_at", false),
        s("source_file", false),
        s("source_format", true),
        s("location", false),
        Field::new("line", DataType::Int64, true),
        s("field", true),
        s("reason", false),
        s("excerpt", true),
    ]))
}

fn money_null(name: &str) -> Field {
    Field::new(
        name,
        DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE as i8),
        true,
    )
}

/// The key of a usage row: `(ingest_id, source_file, source_row)` is unique in `usage` (an
/// ingest reads a file once; `source_row` is the result's ordinal in its page or the CSV line),
/// and `usage_pricing` repeats it so the `rated_usage` view (`sql/rated_usage.sql`) joins the
/// two in any engine.
pub const USAGE_KEY: [&str; 3] = ["ingest_id", "source_file", "source_row"];

/// Derived: what pricing adds to each usage row, and nothing the usage row already has. A part
/// mirrors the usage part of the same name row for row (same rows, same order) and repeats the
/// row's key ([`USAGE_KEY`]); readers see usage and pricing together through the `rated_usage`
/// view.
pub fn usage_pricing() -> SchemaRef {
    let mut f = vec![
        s("provider", false),
        s("ingest_id", false),
        s("source_file", false),
        i("source_row"),
        s("model_canonical", true),
        s("pricing_status", false),
        s("pricing_note", true),
    ];
    f.extend(RATE_COLUMNS.iter().map(|c| money_null(c)));
    f.extend(COST_COLUMNS.iter().map(|c| money_null(c)));
    // Usage in another unit (`usage.unit`), priced per unit where the book has a price.
    f.push(money_null("rate_unit"));
    f.push(money_null("cost_unit"));
    f.push(money_null("list_cost"));
    f.push(s("price_book", false));
    // The calendar: which day and month a row belongs to, so no query converts a timestamp
    // (engines do that in their session time zone). `utc_day` is the provider's day (credits,
    // reconciliation); `business_day` and `business_month` are in the configured timezone (an
    // hourly or finer bucket by its start there, a daily bucket on its UTC date).
    f.push(Field::new("utc_day", DataType::Date32, false));
    f.push(Field::new("business_day", DataType::Date32, false));
    f.push(s("business_month", false));
    Arc::new(Schema::new(f))
}

/// The columns of the `rated_usage` view (`sql/rated_usage.sql`) before its partition key
/// `month`: every column of `usage`, then what `usage_pricing` adds (its key and `provider`
/// are usage's already).
pub fn rated_usage_view() -> SchemaRef {
    let pricing = usage_pricing();
    let added = pricing
        .fields()
        .iter()
        .filter(|f| f.name() != "provider" && !USAGE_KEY.contains(&f.name().as_str()))
        .cloned();
    let fields: Vec<_> = usage().fields().iter().cloned().chain(added).collect();
    Arc::new(Schema::new(fields))
}

pub fn anomaly_acks() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("id", false),
        s("note", false),
        t("acked_at", false),
    ]))
}

/// The sent-ledger of `tokenledger mail`: one row per (month, report, recipient, content hash).
pub fn mail_log() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("month", false),
        s("report", false),
        s("recipient", false),
        s("content_hash", false),
        s("kind", false),
        s("close", false),
        s("status", false),
        s("transport", false),
        s("subject", false),
        i("attempts"),
        s("last_error", true),
        money("total_usd"),
        i("total_cents"),
        t("recorded_at", false),
    ]))
}

/// What the nightly alert digest has mailed to whom (each alert once per recipient).
pub fn alert_log() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("alert_key", false),
        s("recipient", false),
        t("mailed_at", false),
    ]))
}

/// The team map of the config: one row per API key or workspace (id or name) a team pays for.
pub fn teams() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("kind", false),
        s("name", false),
        s("team", false),
        s("cost_center", true),
    ]))
}

/// What `tokenledger pull` fetched: one row per provider × endpoint × window it tried. A
/// window is `complete` only when every page of it was fetched and landed; the next pull
/// starts at the first window that is not.
pub fn pull_log() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("pull_id", false),
        s("provider", false),
        s("endpoint", false),
        t("range_start", false),
        t("range_end", false),
        s("status", false),
        i("pages"),
        i("bytes"),
        i("requests"),
        i("retries"),
        s("content_hash", true),
        s("landing_path", true),
        s("error", true),
        t("started_at", false),
        t("finished_at", false),
    ]))
}

// ---- the buyer's ledger tables (one file each; lineage without source_format) ----------

fn day(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Date32, nullable)
}
fn ledger_lineage() -> [Field; 3] {
    [
        s("source_file", false),
        Field::new("source_row", DataType::Int64, false),
        s("ingest_id", false),
    ]
}
fn ledger_schema(mut fields: Vec<Field>) -> SchemaRef {
    fields.extend(ledger_lineage());
    Arc::new(Schema::new(fields))
}

pub fn credit_lots() -> SchemaRef {
    ledger_schema(vec![
        s("provider", false),
        s("lot_id", false),
        s("kind", false),
        day("purchased_at", false),
        money("amount_usd"),
        day("expires_at", true),
        Field::new("expiry_stated", DataType::Boolean, false),
    ])
}

pub fn balance_snapshots() -> SchemaRef {
    ledger_schema(vec![
        s("provider", false),
        day("as_of", false),
        money("balance_usd"),
    ])
}

pub fn invoices() -> SchemaRef {
    ledger_schema(vec![
        s("provider", false),
        s("invoice_number", false),
        s("invoice_id", true),
        s("currency", false),
        t("period_start", false),
        t("period_end", false),
        money("subtotal_usd"),
        money("discount_usd"),
        money("tax_usd"),
        money("total_usd"),
        money("starting_balance_usd"),
        money("amount_due_usd"),
        money("credits_applied_usd"),
        Field::new("line_count", DataType::Int64, false),
        Field::new("lines_complete", DataType::Boolean, false),
        s("source_format", false),
        // Schema 7: what the FOCUS Invoice Detail needs (null in older lakes and where the
        // source does not say).
        s("issuer_name", true),
        t("issued_at", true),
        t("due_at", true),
        s("status", true),
        s("collection_method", true),
    ])
}

pub fn invoice_lines() -> SchemaRef {
    ledger_schema(vec![
        s("provider", false),
        s("invoice_number", false),
        Field::new("line_no", DataType::Int64, false),
        s("description", true),
        money("amount_usd"),
        t("period_start", true),
        t("period_end", true),
        Field::new("quantity", DataType::Int64, true),
    ])
}

pub fn of(t: Table) -> SchemaRef {
    match t {
        Table::Usage => usage(),
        Table::UsageCoverage | Table::CostCoverage => coverage(),
        Table::Cost => cost(),
        Table::Workspaces => workspaces(),
        Table::ApiKeys => api_keys(),
        Table::IngestLog => ingest_log(),
        Table::Quarantine => quarantine(),
        Table::UsagePricing => usage_pricing(),
        Table::CreditLots => credit_lots(),
        Table::BalanceSnapshots => balance_snapshots(),
        Table::Invoices => invoices(),
        Table::InvoiceLines => invoice_lines(),
        Table::AnomalyAcks => anomaly_acks(),
        Table::MailLog => mail_log(),
        Table::AlertLog => alert_log(),
        Table::Teams => teams(),
        Table::PullLog => pull_log(),
    }
}

/// Writer settings shared by every table: ZSTD, bounded row groups, lineage metadata.
pub fn writer_props(table: Table, ingest_id: &str) -> WriterProperties {
    writer_props_with(table, ingest_id, &[])
}

/// The one writer-properties builder: every table's settings, plus `stamps` (extra key-value
/// metadata, e.g. what a derived part was computed from).
pub fn writer_props_with(
    table: Table,
    written_by: &str,
    stamps: &[(&str, &str)],
) -> WriterProperties {
    let mut kv = vec![
        KeyValue::new("tokenledger.table".into(), table.dir_name().to_string()),
        KeyValue::new(
            "tokenledger.schema_version".into(),
            super::SCHEMA_VERSION.to_string(),
        ),
        KeyValue::new(
            "tokenledger.written_by_ingest".into(),
            written_by.to_string(),
        ),
    ];
    kv.extend(
        stamps
            .iter()
            .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string())),
    );
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(128 * 1024))
        // Statistics only on the time columns, where they prune scans; min/max over every
        // string value costs more at write time than it saves readers.
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from("bucket_start"), EnabledStatistics::Page)
        .set_column_statistics_enabled(ColumnPath::from("bucket_end"), EnabledStatistics::Page)
        .set_created_by(format!("tokenledger {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(kv));
    if matches!(table, Table::Usage | Table::Cost | Table::UsagePricing) {
        // A row's ordinal in its file is distinct on every row: a dictionary would only cost
        // interning time until it overflows and falls back to plain.
        b = b.set_column_dictionary_enabled(ColumnPath::from("source_row"), false);
    }
    if table == Table::Usage {
        // Token counts vary from row to row: a dictionary costs a hash of every value and
        // mostly overflows to plain anyway; zstd compresses the plain values as well.
        for c in TOKEN_COLUMNS {
            b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
        }
    }
    if table == Table::UsagePricing {
        // Per-row costs are nearly all distinct: a dictionary only costs interning time.
        for c in COST_COLUMNS
            .iter()
            .chain(["list_cost", "source_row"].iter())
        {
            b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
        }
    }
    b.build()
}
