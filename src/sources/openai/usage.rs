//! `GET /organization/usage/{endpoint}` pages: `{object:"page", data:[{object:"bucket",
//! start_time, end_time, results:[{object:"organization.usage.<endpoint>.result", …}]}],
//! has_more, next_page}` (`../shared/reference/provider-apis.md` §5; result shapes from the
//! OpenAPI description, `openai/openai-openapi@f85dbe2`, `UsageCompletionsResult` and its
//! siblings).
//!
//! Token classes without double counting: OpenAI's `input_tokens` **includes** cached and
//! cache-write tokens. Uncached input is `input_uncached_tokens` where the response has it
//! (and then `input_tokens = cached + cache writes + uncached` must hold, or the row is refused),
//! else `input_tokens − input_cached_tokens − cache writes` (old responses have only
//! `input_cached_tokens`). Cache writes are `input_cache_write_30m_tokens` and `…_12h_tokens`;
//! a response with only the undivided `input_cache_write_tokens` books them as 30-minute writes
//! (the book prices both alike: no separate price is published). Per-modality splits
//! (`input_audio_tokens`, `output_audio_tokens`, `input_image_tokens`, `output_image_tokens`)
//! are parts of those same tokens: kept in their own columns, never added to the classes.
//!
//! Other units are usage too, in `unit` / `unit_quantity`: images, characters (audio
//! speeches), seconds (transcriptions), bytes (vector stores), sessions (code interpreter),
//! file search calls. Web search calls are the `web_search_requests` count.
//!
//! The tier: `batch: true` is `batch`; `service_tier` `default` (or `auto`) is `standard`, the
//! others as sent. `project_id` is the workspace, `api_key_id` the key, `user_id` a
//! `user_actor`. A bucket restates its interval for this endpoint only; a bucket that is not a
//! whole aligned minute, hour or day (OpenAI's first and last buckets follow the request's
//! times) restates nothing and is quarantined with the reason.

use chrono::{DateTime, Utc};

use super::{document, object_is, text, unix_seconds};
use crate::model::{BucketWidth, OpenAiEndpoint, SourceFamily, SourceFormat, Tokens, UsageRow};
use crate::sources::numbers::number_text;
use crate::sources::{FileError, Limits, Sink};
use crate::vocab::Provider;

type Refusal = (String, String);

/// A count: a non-negative integer JSON number; absent or null is `None`.
fn count(r: &serde_json::Value, key: &str) -> Result<Option<u64>, Refusal> {
    match r.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => number_text(v)
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|n| i64::try_from(*n).is_ok())
            .map(Some)
            .ok_or_else(|| {
                (
                    key.to_string(),
                    format!(
                        "{key} must be a non-negative whole number, got {}",
                        crate::sources::excerpt(&v.to_string())
                    ),
                )
            }),
    }
}

fn need(r: &serde_json::Value, key: &str) -> Result<u64, Refusal> {
    count(r, key)?.ok_or_else(|| (key.to_string(), format!("missing {key}")))
}

/// The completions classes: (uncached, cached, 30m writes, 12h writes, output).
fn completion_tokens(r: &serde_json::Value) -> Result<Tokens, Refusal> {
    let input = need(r, "input_tokens")?;
    let cached = count(r, "input_cached_tokens")?.unwrap_or(0);
    let (w30, w12) = (
        count(r, "input_cache_write_30m_tokens")?,
        count(r, "input_cache_write_12h_tokens")?,
    );
    let undivided = count(r, "input_cache_write_tokens")?;
    let (w30, w12) = match (w30, w12, undivided) {
        (None, None, w) => (w.unwrap_or(0), 0),
        (a, b, w) => {
            let (a, b) = (a.unwrap_or(0), b.unwrap_or(0));
            if let Some(w) = w.filter(|w| *w != a + b) {
                return Err((
                    "input_cache_write_tokens".into(),
                    format!(
                        "input_cache_write_tokens {w} is not input_cache_write_30m_tokens {a} + \
                         input_cache_write_12h_tokens {b}"
                    ),
                ));
            }
            (a, b)
        }
    };
    let split = cached + w30 + w12;
    let uncached = match count(r, "input_uncached_tokens")? {
        Some(u) if u + split == input => u,
        Some(u) => {
            return Err((
                "input_tokens".into(),
                format!(
                    "input_tokens {input} is not cached {cached} + cache writes {} + uncached {u}",
                    w30 + w12
                ),
            ));
        }
        None => input.checked_sub(split).ok_or_else(|| {
            (
                "input_tokens".to_string(),
                format!(
                    "input_tokens {input} is less than its cached and cache-write tokens {split}"
                ),
            )
        })?,
    };
    let mut modality = [0u64; 4];
    for (m, c) in modality.iter_mut().zip(crate::model::MODALITY_COLUMNS) {
        *m = count(r, c)?.unwrap_or(0);
    }
    Ok(Tokens {
        uncached_input: uncached,
        cache_read: cached,
        cache_write_30m: w30,
        cache_write_12h: w12,
        output: count(r, "output_tokens")?.unwrap_or(0),
        modality,
        ..Tokens::default()
    })
}

/// The counts of one result of `endpoint`, with its `num_model_requests` where the endpoint
/// reports it (provider-apis.md §5).
fn tokens(r: &serde_json::Value, endpoint: OpenAiEndpoint) -> Result<Tokens, Refusal> {
    Ok(Tokens {
        requests: count(r, "num_model_requests")?,
        ..endpoint_tokens(r, endpoint)?
    })
}

fn endpoint_tokens(r: &serde_json::Value, endpoint: OpenAiEndpoint) -> Result<Tokens, Refusal> {
    use OpenAiEndpoint as E;
    let unit = |name: &'static str, key: &str| -> Result<Tokens, Refusal> {
        Ok(Tokens {
            unit: Some(name),
            unit_quantity: need(r, key)?,
            ..Tokens::default()
        })
    };
    match endpoint {
        E::Completions => completion_tokens(r),
        E::Embeddings | E::Moderations => Ok(Tokens {
            uncached_input: need(r, "input_tokens")?,
            ..Tokens::default()
        }),
        E::Images => unit("images", "images"),
        E::AudioSpeeches => unit("characters", "characters"),
        E::AudioTranscriptions => unit("seconds", "seconds"),
        E::VectorStores => unit("bytes", "usage_bytes"),
        E::CodeInterpreterSessions => unit("sessions", "num_sessions"),
        E::FileSearchCalls => unit("file_search_calls", "num_requests"),
        E::WebSearchCalls => Ok(Tokens {
            web_search_requests: need(r, "num_requests")?,
            ..Tokens::default()
        }),
    }
}

/// The lake's tier of a result: `batch` first, then the service tier in the lake's words.
fn tier(r: &serde_json::Value) -> Result<Option<String>, Refusal> {
    match r.get("batch") {
        Some(serde_json::Value::Bool(true)) => return Ok(Some("batch".into())),
        None | Some(serde_json::Value::Null | serde_json::Value::Bool(false)) => {}
        Some(v) => {
            return Err((
                "batch".into(),
                format!("batch must be true, false or null, got {v}"),
            ));
        }
    }
    Ok(text(r, "service_tier")?.map(|t| match t.as_str() {
        "default" | "auto" => "standard".to_string(),
        _ => t,
    }))
}

fn row(
    r: &serde_json::Value,
    endpoint: OpenAiEndpoint,
    (start, width): (DateTime<Utc>, BucketWidth),
    ordinal: u64,
) -> Result<UsageRow<'static>, Refusal> {
    object_is(r, endpoint.result_object())?;
    let owned = |k: &str| text(r, k).map(|v| v.map(std::borrow::Cow::Owned));
    let user = owned("user_id")?;
    Ok(UsageRow {
        bucket_start: start,
        bucket_width: width,
        provider: Provider::OpenAi,
        workspace_id: owned("project_id")?,
        workspace_name: None,
        api_key_id: owned("api_key_id")?,
        api_key_name: None,
        model: owned("model")?,
        service_tier: tier(r)?.map(std::borrow::Cow::Owned),
        context_window: None,
        inference_geo: None,
        speed: None,
        account_id: None,
        service_account_id: None,
        product: None,
        agent_id: None,
        actor_type: user.as_ref().map(|_| "user_actor".into()),
        actor_id: user,
        actor_email: None,
        tokens: tokens(r, endpoint)?,
        cache_write_assumed_5m: false,
        source_format: SourceFormat::OpenAiUsage(endpoint),
        source_row: ordinal,
    })
}

/// A bucket's start and width, or why it restates nothing.
fn span(
    bucket: &serde_json::Value,
    limits: &Limits,
) -> Result<(DateTime<Utc>, DateTime<Utc>, BucketWidth), Refusal> {
    object_is(bucket, "bucket")?;
    let (s, e) = match (
        unix_seconds(bucket, "start_time")?,
        unix_seconds(bucket, "end_time")?,
    ) {
        (Some(s), Some(e)) => (s, e),
        _ => return Err(("start_time".into(), "missing start_time or end_time".into())),
    };
    let width = BucketWidth::from_seconds((e - s).num_seconds()).ok_or_else(|| {
        (
            "end_time".to_string(),
            format!(
                "a partial bucket {} .. {} (OpenAI's first and last buckets follow the request's \
                 times): request whole UTC minutes, hours or days",
                s.to_rfc3339(),
                e.to_rfc3339()
            ),
        )
    })?;
    limits
        .check_bucket(s, e, width)
        .map_err(|r| ("start_time".to_string(), r))?;
    Ok((s, e, width))
}

/// Parses one Usage API page of `endpoint`.
pub fn parse(
    bytes: &[u8],
    endpoint: OpenAiEndpoint,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    let doc = document(bytes)?;
    let buckets = super::data_of(&doc, "page")?;
    let mut ordinal = 0u64;
    let mut seen = std::collections::HashSet::new();
    for (b, bucket) in buckets.iter().enumerate() {
        let at = format!("data[{b}]");
        let (s, e, width) = match span(bucket, limits) {
            Ok(x) => x,
            Err((field, reason)) => {
                let why = format!("{reason}; the bucket restates nothing");
                super::refuse(sink, at, (field, why), bucket);
                continue;
            }
        };
        if !seen.insert((s, e)) {
            return Err(FileError::new(format!(
                "{at}: the bucket {} .. {} appears twice in one page; which one is right cannot \
                 be told: re-export the page",
                s.to_rfc3339(),
                e.to_rfc3339()
            )));
        }
        let results = super::bucket_results(bucket, &at)?;
        sink.coverage(SourceFamily::Api, s, e);
        for (i, r) in results.iter().enumerate() {
            ordinal += 1;
            match row(r, endpoint, (s, width), ordinal) {
                Ok(row) => sink.usage(&row),
                Err(refusal) => super::refuse(sink, format!("{at}.results[{i}]"), refusal, r),
            }
        }
    }
    Ok(())
}
