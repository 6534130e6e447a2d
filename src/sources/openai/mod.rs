//! OpenAI's formats: the organization Costs API pages and the project and project API-key
//! lists (`../shared/reference/provider-apis.md` §5–6; shapes from the public OpenAPI
//! description, `openai/openai-openapi`, `CostsResult`, `Project`, `ProjectApiKey`).
//! Projects are the workspaces, project keys the API keys, `provider = openai`.
//!
//! Owns: recognising them from content ([`detect_json`]: the `object` values every OpenAI
//! response carries) and parsing each into canonical rows, the Usage API pages per endpoint
//! ([`usage`]). Must not: touch the lake, or read another provider's format.
//!
//! These files are small (a page per month of daily cost buckets, a list per organisation):
//! they are read whole, every number through [`crate::sources::numbers::quote_all_numbers`] so
//! that a dollar amount keeps the digits OpenAI wrote.

pub mod costs;
pub mod usage;

use chrono::{DateTime, Utc};

use super::{Detected, FileError, Markers, Quarantined, Sink, excerpt};
use crate::model::{ApiKey, OpenAiEndpoint, SourceFormat, Workspace};
use crate::vocab::Provider;

/// A JSON response of OpenAI's, from the `object` values seen; `None`: not OpenAI's.
pub(super) fn detect_json(m: &Markers) -> Option<Result<Detected, FileError>> {
    let has = |k: &str| m.has(k);
    if has("object=organization.costs.result") {
        return Some(Ok(Detected::Format(SourceFormat::OpenAiCosts)));
    }
    if has("object=organization.project.api_key") {
        return Some(Ok(Detected::Format(SourceFormat::OpenAiProjectApiKeys)));
    }
    if has("object=organization.project") {
        return Some(Ok(Detected::Format(SourceFormat::OpenAiProjects)));
    }
    let endpoints: Vec<OpenAiEndpoint> = OpenAiEndpoint::ALL
        .into_iter()
        .filter(|e| has(&format!("object={}", e.result_object())))
        .collect();
    match endpoints[..] {
        [e] => return Some(Ok(Detected::Format(SourceFormat::OpenAiUsage(e)))),
        [_, _, ..] => {
            return Some(Err(FileError::new(
                "an OpenAI Usage API page with the results of several endpoints: one page is \
                 one endpoint's; save each endpoint's pages in their own files",
            )));
        }
        [] => {}
    }
    if has("object=bucket") {
        return Some(Ok(Detected::EmptyOpenAiPage));
    }
    None
}

/// The document, every number quoted ([`crate::sources::numbers::quote_all_numbers`]).
fn document(bytes: &[u8]) -> Result<serde_json::Value, FileError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(&super::numbers::quote_all_numbers(bytes)).map_err(|e| {
        FileError::at(
            Some(e.line() as u64),
            Some(e.column() as u64),
            format!("invalid JSON: {e}"),
        )
    })
}

/// `data[]` of a list or page whose `object` is `want`.
fn data_of(doc: &serde_json::Value, want: &str) -> Result<Vec<serde_json::Value>, FileError> {
    if doc.get("object").and_then(|v| v.as_str()) != Some(want) {
        return Err(FileError::new(format!(
            "an OpenAI response whose object is not {want:?}"
        )));
    }
    match doc.get("data") {
        Some(serde_json::Value::Array(a)) => Ok(a.clone()),
        _ => Err(FileError::new(format!("an OpenAI {want} without data[]"))),
    }
}

use super::lenient::json_text as text;

/// Unix seconds (an integer JSON number), or why not.
fn unix_seconds(
    obj: &serde_json::Value,
    key: &str,
) -> Result<Option<DateTime<Utc>>, (String, String)> {
    let v = match obj.get(key) {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(v) => v,
    };
    super::numbers::number_text(v)
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .map(Some)
        .ok_or_else(|| {
            (
                key.into(),
                format!("{key} must be Unix seconds (an integer)"),
            )
        })
}

/// Each item of a list through `each`; an item that fails is quarantined with its index.
fn each_item<T>(
    items: Vec<serde_json::Value>,
    sink: &mut dyn Sink,
    each: impl Fn(&serde_json::Value) -> Result<T, (String, String)>,
    mut keep: impl FnMut(T, &mut dyn Sink),
) {
    for (i, item) in items.iter().enumerate() {
        match each(item) {
            Ok(t) => keep(t, sink),
            Err(refusal) => refuse(sink, format!("data[{i}]"), refusal, item),
        }
    }
}

/// `results[]` of the bucket at `at`; a bucket without it fails the page (what it restates
/// cannot be told).
fn bucket_results<'a>(
    bucket: &'a serde_json::Value,
    at: &str,
) -> Result<&'a Vec<serde_json::Value>, FileError> {
    match bucket.get("results") {
        Some(serde_json::Value::Array(a)) => Ok(a),
        _ => Err(FileError::new(format!("{at}: a bucket without results[]"))),
    }
}

/// Quarantines the JSON item at `location` with the (field, reason) it was refused for.
fn refuse(
    sink: &mut dyn Sink,
    location: String,
    (field, reason): (String, String),
    item: &serde_json::Value,
) {
    sink.quarantine(Quarantined {
        location,
        line: None,
        field: Some(field),
        reason,
        excerpt: Some(excerpt(&item.to_string())),
    });
}

fn required(obj: &serde_json::Value, key: &str) -> Result<String, (String, String)> {
    text(obj, key)?.ok_or_else(|| (key.into(), format!("missing required field {key}")))
}

fn object_is(obj: &serde_json::Value, want: &str) -> Result<(), (String, String)> {
    match text(obj, "object")? {
        Some(o) if o == want => Ok(()),
        other => Err((
            "object".into(),
            format!("object is {other:?}, expected {want:?}"),
        )),
    }
}

/// `GET /organization/projects` → workspaces (archived projects kept: they own past usage).
pub fn parse_projects(bytes: &[u8], sink: &mut dyn Sink) -> Result<(), FileError> {
    let items = data_of(&document(bytes)?, "list")?;
    each_item(
        items,
        sink,
        |p| {
            object_is(p, "organization.project")?;
            let id = required(p, "id")?;
            Ok(Workspace {
                provider: Provider::OpenAi,
                name: text(p, "name")?.unwrap_or_else(|| id.clone()),
                id,
                created_at: unix_seconds(p, "created_at")?,
                archived_at: unix_seconds(p, "archived_at")?,
                display_color: None,
                tags: None,
            })
        },
        |w, sink| sink.workspace(w),
    );
    Ok(())
}

/// `GET /organization/projects/{id}/api_keys` → API keys. The response does not name its
/// project, so a key's project is unknown here (usage rows name it); only OpenAI's own
/// redacted value (`sk-abc...def`) is kept, never more.
pub fn parse_project_api_keys(bytes: &[u8], sink: &mut dyn Sink) -> Result<(), FileError> {
    let items = data_of(&document(bytes)?, "list")?;
    each_item(
        items,
        sink,
        |k| {
            object_is(k, "organization.project.api_key")?;
            let owner = k.get("owner");
            let owner_id = owner.and_then(|o| {
                let kind = o.get("type")?.as_str()?;
                o.get(kind)?.get("id")?.as_str().map(str::to_string)
            });
            Ok(ApiKey {
                provider: Provider::OpenAi,
                id: required(k, "id")?,
                name: required(k, "name")?,
                workspace_id: None,
                created_at: unix_seconds(k, "created_at")?,
                created_by_id: owner_id,
                partial_key_hint: text(k, "redacted_value")?,
                status: None,
                expires_at: None,
            })
        },
        |k, sink| sink.api_key(k),
    );
    Ok(())
}
