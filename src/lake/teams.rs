//! The `teams` table: the config's `[[team]]` map, kept in the lake so that SQL run outside
//! tokenledger (DuckDB, Spark, Trino) assigns cost to teams exactly as the reports do.
//!
//! Owns: reading and replacing `teams/part-0.parquet` (atomically, only when the map changed).
//! Must not: decide which team a row belongs to (that is `sql/report.sql`), or read the config.

use std::sync::Arc;

use arrow::array::{Array, StringArray};
use arrow::record_batch::RecordBatch;

use super::batch::str_col;
use super::io::{self as lio, LakeError};
use super::txn::Writer;
use super::{Layout, Table};

/// One row of the map: `kind` is `api_key` or `workspace`; `name` an id or a name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TeamRow {
    pub kind: &'static str,
    pub name: String,
    pub team: String,
    pub cost_center: Option<String>,
}

/// The rows stored now (none when the table was never written).
pub fn stored(layout: &Layout) -> Result<Vec<TeamRow>, LakeError> {
    let mut out = Vec::new();
    for b in lio::read_all(&layout.table_file(Table::Teams))? {
        let (kind, name, team, cc) = (
            str_col(&b, "kind")?,
            str_col(&b, "name")?,
            str_col(&b, "team")?,
            str_col(&b, "cost_center")?,
        );
        for i in 0..b.num_rows() {
            out.push(TeamRow {
                kind: if kind.value(i) == "api_key" {
                    "api_key"
                } else {
                    "workspace"
                },
                name: name.value(i).to_string(),
                team: team.value(i).to_string(),
                cost_center: cc.is_valid(i).then(|| cc.value(i).to_string()),
            });
        }
    }
    Ok(out)
}

/// Whether the stored map differs from `rows` (or was never written).
pub fn stale(layout: &Layout, rows: &[TeamRow]) -> Result<bool, LakeError> {
    // An empty map is written too: queries outside tokenledger join the table either way.
    if !layout.table_file(Table::Teams).exists() {
        return Ok(true);
    }
    let mut want = rows.to_vec();
    want.sort();
    let mut have = stored(layout)?;
    have.sort();
    Ok(want != have)
}

/// Replaces the stored map with `rows` when it differs (the caller holds the exclusive lock).
/// Returns whether it wrote.
pub fn sync(writer: &Writer, rows: &[TeamRow]) -> Result<bool, LakeError> {
    let layout: &Layout = writer;
    if !stale(layout, rows)? {
        return Ok(false);
    }
    let mut rows = rows.to_vec();
    rows.sort();
    let col = |f: fn(&TeamRow) -> Option<&str>| {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as Arc<dyn Array>
    };
    let b = RecordBatch::try_new(
        super::schema::teams(),
        vec![
            col(|r| Some(r.kind)),
            col(|r| Some(&r.name)),
            col(|r| Some(&r.team)),
            col(|r| r.cost_center.as_deref()),
        ],
    )
    .map_err(|source| LakeError::Batch {
        table: "teams",
        source,
    })?;
    writer.replace_table(Table::Teams, &[b])?;
    Ok(true)
}
