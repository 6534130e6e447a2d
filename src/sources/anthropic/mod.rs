//! Anthropic's formats: the Admin and Analytics API pages and lists, and the Console's usage
//! and cost CSVs.
//!
//! Owns: recognising them from content ([`detect_json`], [`detect_header`]: asked by
//! `sources::detect` in turn with every other provider's module) and parsing each into
//! canonical rows with `provider = anthropic`. Must not: touch the lake, or read another
//! provider's format.

pub mod admin;
pub mod analytics;
pub mod console_cost;
pub mod console_csv;
pub mod lists;

use super::{Detected, FileError, Markers};
use crate::model::SourceFormat;

/// A CSV header of Anthropic's Console exports; `None`: not Anthropic's.
pub fn detect_header(first_line: &str) -> Option<Result<Detected, FileError>> {
    if !first_line.contains("usage_date_utc") {
        return None;
    }
    if first_line.contains("model_version") && first_line.contains("usage_output_tokens") {
        return Some(Ok(Detected::Format(SourceFormat::AnthropicConsoleUsageCsv)));
    }
    if first_line.contains("cost_usd") {
        return Some(Ok(Detected::Format(SourceFormat::AnthropicConsoleCostCsv)));
    }
    None
}

/// A JSON page of Anthropic's Admin or Analytics API, from the keys seen; `None`: not
/// Anthropic's.
pub(super) fn detect_json(m: &Markers) -> Option<Result<Detected, FileError>> {
    let has = |k: &str| m.has(k);
    if has("tokenledger_query") {
        // A whole Analytics query (the envelope `pull` writes).
        return Some(Ok(Detected::Format(if has("cost") {
            SourceFormat::AnthropicAnalyticsCost
        } else {
            SourceFormat::AnthropicAnalyticsUsage
        })));
    }
    if has("starting_at") {
        if !has("results") && (has("group") || has("usage") || has("cost")) {
            return Some(Err(FileError::new(
                "a page of the Usage & Cost Analytics API (/v1/organizations/analytics/usage or \
                 /analytics/cost: flat items with group{…} and usage{…}/cost{…}, no results[]) \
                 without its query: a page alone does not say its range, filters or grouping, \
                 so it restates nothing; ingest the whole query as a tokenledger query file \
                 (fixtures/README.md; `tokenledger pull` writes them)",
            )));
        }
        if has("data_refreshed_at") || has("rbac_group_id") || has("slack_channel_id") {
            return Some(Err(FileError::new(
                "an Enterprise analytics usage_report/cost_report page (rows carry product and \
                 rbac_group_id, and rows of overlapping groups would be counted twice), which \
                 tokenledger does not read yet; export the Admin API usage_report/messages and \
                 cost_report instead",
            )));
        }
        if has("amount") || has("cost_type") {
            return Some(Ok(Detected::Format(SourceFormat::AnthropicCostApi)));
        }
        if has("uncached_input_tokens") || has("output_tokens") {
            return Some(Ok(Detected::Format(SourceFormat::AnthropicUsageApi)));
        }
        if has("results") {
            return Some(Ok(Detected::EmptyReportPage));
        }
        return Some(Err(FileError::new(
            "JSON with time buckets but no results[]: not an Admin API report page tokenledger knows",
        )));
    }
    if has("type=api_key") || has("partial_key_hint") {
        return Some(Ok(Detected::Format(SourceFormat::AnthropicApiKeys)));
    }
    if has("type=workspace") {
        return Some(Ok(Detected::Format(SourceFormat::AnthropicWorkspaces)));
    }
    None
}
