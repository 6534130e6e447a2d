//! How an error reads as one line: its message, then each cause once.
//!
//! Owns: [`chain`], for the places that keep an error as text (a quarantine reason, a usage
//! message on stderr); `main` prints the same with anyhow's `{:#}`.
//! Must not: import anything of the crate (every layer may call it).

/// `message: cause: cause…`, each segment once: a layer's message names only what that layer
/// knows and its cause is the `source()`, so nothing is said twice.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
