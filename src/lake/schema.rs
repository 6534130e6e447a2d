//! Arrow schemas of the lake's tables. `ARCHITECTURE.md` documents every column; keep the two
//! in step (a test checks that every column here is named there).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::{MONEY_PRECISION, MONEY_SCALE, Table};

/// The usage table's count columns: five token classes and web search requests, in order.
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
    ];
    f.extend(TOKEN_COLUMNS.iter().map(|c| i(c)));
    f.push(Field::new(
        "cache_write_assumed_5m",
        DataType::Boolean,
        false,
    ));
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
        s("cost_type", false),
        s("model", true),
        s("token_type", true),
        s("service_tier", true),
        s("context_window", true),
        s("inference_geo", true),
        s("currency", false),
        money("amount"),
        s("amount_raw", false),
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
        Table::CreditLots => super::ledger::credit_lots(),
        Table::BalanceSnapshots => super::ledger::balance_snapshots(),
        Table::Invoices => super::ledger::invoices(),
        Table::InvoiceLines => super::ledger::invoice_lines(),
        Table::AnomalyAcks => anomaly_acks(),
        Table::MailLog => mail_log(),
        Table::AlertLog => alert_log(),
        Table::Teams => teams(),
    }
}
