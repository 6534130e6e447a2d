//! Anthropic Admin API lists: `GET /v1/organizations/workspaces` and `/api_keys`.
//!
//! Owns: the fields of a workspace and an API key (the key's hint masked again, whatever the
//! export did). Must not: resolve names against reports (that is `ingest`).

use std::io::BufRead;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::model::{self, ApiKey, Workspace, check_enum};
use crate::sources::lenient::{Obj, Scalar};
use crate::sources::paged::{Input, parse_list};
use crate::sources::{FileError, Sink, mask_key_hint};
use crate::vocab::Provider;

use super::admin::field_err;

#[derive(Deserialize)]
struct WorkspaceItem<'a> {
    #[serde(default, borrow)]
    id: Scalar<'a>,
    #[serde(default, borrow)]
    name: Scalar<'a>,
    #[serde(default, borrow)]
    created_at: Scalar<'a>,
    #[serde(default, borrow)]
    archived_at: Scalar<'a>,
    #[serde(default, borrow)]
    display_color: Scalar<'a>,
    /// `{"team": "search", "env": "prod"}` (Admin API workspaces, 2026: `tags{team, env}`).
    #[serde(default)]
    tags: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct CreatedBy<'a> {
    #[serde(default, borrow)]
    id: Scalar<'a>,
}

#[derive(Deserialize)]
struct ApiKeyItem<'a> {
    #[serde(default, borrow)]
    id: Scalar<'a>,
    #[serde(default, borrow)]
    name: Scalar<'a>,
    #[serde(default, borrow)]
    workspace_id: Scalar<'a>,
    #[serde(default, borrow)]
    created_at: Scalar<'a>,
    #[serde(default, borrow)]
    created_by: Obj<CreatedBy<'a>>,
    #[serde(default, borrow)]
    partial_key_hint: Scalar<'a>,
    #[serde(default, borrow)]
    status: Scalar<'a>,
    #[serde(default, borrow)]
    expires_at: Scalar<'a>,
}

fn opt_ts(field: &str, v: &mut Scalar<'_>) -> Result<Option<DateTime<Utc>>, (String, String)> {
    v.opt_str(field)
        .and_then(|s| s.map(|s| model::parse_ts(field, &s)).transpose())
        .map_err(|r| (field.to_string(), r))
}

/// A workspace's tags as a JSON object text with sorted keys (null values and an empty object
/// are no tags); anything but an object of short strings is a row error.
fn tags_text(v: Option<serde_json::Value>) -> Result<Option<String>, (String, String)> {
    let bad = |why: String| ("tags".to_string(), why);
    let map = match v {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Object(m)) => m,
        Some(other) => return Err(bad(format!("tags must be an object, got {other}"))),
    };
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in map {
        match v {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) if s.len() <= crate::sources::lenient::MAX_TEXT => {
                if !s.is_empty() {
                    out.insert(k, s);
                }
            }
            serde_json::Value::String(_) => {
                return Err(bad(format!(
                    "tag {k:?} is longer than {} bytes",
                    crate::sources::lenient::MAX_TEXT
                )));
            }
            other => return Err(bad(format!("tag {k:?} must be a string, got {other}"))),
        }
    }
    Ok((!out.is_empty()).then(|| serde_json::to_string(&out).expect("strings serialize")))
}

/// Parses a `GET /v1/organizations/workspaces` response.
pub fn parse_workspaces<R: BufRead>(
    reader: Input<'_, R>,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    parse_list::<WorkspaceItem<'_>, _>(reader, sink, |mut w, sink| {
        let ws = Workspace {
            provider: Provider::Anthropic,
            id: w.id.req_str("id").map_err(field_err("id"))?,
            name: w.name.req_str("name").map_err(field_err("name"))?,
            created_at: opt_ts("created_at", &mut w.created_at)?,
            archived_at: opt_ts("archived_at", &mut w.archived_at)?,
            display_color: w
                .display_color
                .opt_str("display_color")
                .map_err(field_err("display_color"))?,
            tags: tags_text(w.tags.take())?,
        };
        sink.workspace(ws);
        Ok(())
    })
}

/// Parses a `GET /v1/organizations/api_keys` response.
pub fn parse_api_keys<R: BufRead>(
    reader: Input<'_, R>,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    parse_list::<ApiKeyItem<'_>, _>(reader, sink, |mut k, sink| {
        let created_by_id = match k.created_by {
            Obj::Ok(mut c) => {
                c.id.opt_str("created_by.id")
                    .map_err(field_err("created_by.id"))?
            }
            Obj::Missing | Obj::Null => None,
            Obj::Invalid(w) => {
                return Err((
                    "created_by".into(),
                    format!("created_by must be an object, got {w}"),
                ));
            }
        };
        let status = k.status.opt_str("status").map_err(field_err("status"))?;
        if let Some(s) = &status {
            check_enum("status", s, model::API_KEY_STATUSES).map_err(field_err("status"))?;
        }
        let key = ApiKey {
            provider: Provider::Anthropic,
            id: k.id.req_str("id").map_err(field_err("id"))?,
            name: k.name.req_str("name").map_err(field_err("name"))?,
            workspace_id: k
                .workspace_id
                .opt_str("workspace_id")
                .map_err(field_err("workspace_id"))?,
            created_at: opt_ts("created_at", &mut k.created_at)?,
            created_by_id,
            partial_key_hint: k
                .partial_key_hint
                .opt_str("partial_key_hint")
                .map_err(field_err("partial_key_hint"))?
                .map(|h| mask_key_hint(&h)),
            status,
            expires_at: opt_ts("expires_at", &mut k.expires_at)?,
        };
        sink.api_key(key);
        Ok(())
    })
}
