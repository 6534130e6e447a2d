//! Secrets never leave an input file through us: quarantine excerpts and reasons are masked,
//! and an API key's "partial hint" that holds more than a hint is masked again.
//!
//! Must not: keep what it masks, or mask a value the lake needs (ids, names, amounts).

use std::sync::LazyLock;

use regex::Regex;

static SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)(?:",
        // Anthropic keys (api, admin, oat…) and OpenAI-style keys.
        r"\bsk-[a-z0-9][a-z0-9_\-]{7,}",
        // Authorization headers and bearer tokens.
        r"|\bbearer\s+[a-z0-9._~+/=\-]{8,}",
        // key=value secrets as in a .env file or a config line.
        r#"|\b[a-z0-9_]*(?:api[_-]?key|secret|password|passwd|token)[a-z0-9_]*\s*[=:]\s*["']?[^\s"',;]{4,}"#,
        r")"
    ))
    .expect("valid secret pattern")
});

/// `text` with anything that looks like a secret replaced by `[masked]`.
pub fn mask_secrets(text: &str) -> String {
    SECRET.replace_all(text, "[masked]").into_owned()
}

/// The provider sends `partial_key_hint` already masked (`sk-ant-api03-R2D...igAA`). A value
/// that is not masked that way is shortened to the same shape; the full key is never stored.
pub fn mask_key_hint(hint: &str) -> String {
    let masked_already = (hint.contains("...") || hint.contains('…')) && hint.chars().count() <= 32;
    if masked_already {
        return hint.to_string();
    }
    let chars: Vec<char> = hint.chars().collect();
    if chars.len() < 24 {
        return "[masked]".into();
    }
    let head: String = chars[..16].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}
