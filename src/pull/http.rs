//! One GET against a provider's Admin API, with the official SDKs' retry policy.
//!
//! Owns: the HTTP client (reqwest, blocking, rustls; `HTTPS_PROXY`/`NO_PROXY` honoured as
//! reqwest does), the admin key as a *sensitive* header (never in a URL, a log line, an error or
//! a `Debug`), which failures are retried and how long to wait (`provider-apis.md` §1, §6: retry
//! connection errors, timeouts, 408, 409, 429 and ≥ 500 (529 too); obey `x-should-retry`; wait
//! `retry-after-ms`, else `retry-after` (seconds, fractional, or an HTTP date), else
//! `min(0.5·2ⁿ, 8) s` less up to 25 % jitter), and a body that is cut off or not JSON.
//! Must not: know what a page means (that is `pull::page`), write files, or print.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// A base URL the key may be sent to: `https://`, or `http://` to a loopback host only (a
/// test server, a local proxy), as with SMTP.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "{url:?}: plain HTTP would send the admin key in clear; use https:// (http:// only \
             to a loopback host)"
        )),
        other => Err(format!("{url:?}: scheme {other:?}; use https://")),
    }
}

/// Where an admin key came from, named in errors instead of the key.
#[derive(Debug, Clone)]
pub enum KeyOrigin {
    Env(String),
    File(std::path::PathBuf),
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOrigin::Env(v) => write!(f, "the environment variable {v}"),
            KeyOrigin::File(p) => write!(f, "the file {}", p.display()),
        }
    }
}

/// An admin key: its text is reachable only to build the request header.
#[derive(Clone)]
pub struct AdminKey {
    secret: String,
    pub origin: KeyOrigin,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminKey(from {}, redacted)", self.origin)
    }
}

impl AdminKey {
    /// Reads the key from `origin` (an environment variable or a file, trimmed).
    pub fn read(origin: KeyOrigin) -> Result<AdminKey, String> {
        let secret = match &origin {
            KeyOrigin::Env(v) => std::env::var(v).map_err(|_| {
                format!("no admin key: {origin} is not set (export it, or set admin_key_file)")
            })?,
            KeyOrigin::File(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the admin key from {origin}: {e}"))?,
        };
        let secret = secret.trim().to_string();
        if secret.is_empty() || secret.contains(char::is_whitespace) {
            return Err(format!(
                "the admin key in {origin} is empty or has whitespace inside"
            ));
        }
        Ok(AdminKey { secret, origin })
    }
    /// Replaces the key wherever it occurs in `text` (a server may echo what it was sent).
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.secret, "[admin key redacted]")
    }
}

/// How hard to try one request.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// No retry starts after this much time since the first attempt.
    pub deadline: Duration,
    /// A server asking to wait longer than this (a 429's `retry-after`) means: not tonight.
    pub max_wait: Duration,
    /// The first backoff (doubling, capped at 8 s); 0.5 s as the SDKs do.
    pub base: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_retries: 4,
            deadline: Duration::from_secs(300),
            max_wait: Duration::from_secs(120),
            base: Duration::from_millis(500),
        }
    }
}

/// Why a request failed for good.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "HTTP {status}: the API refused the admin key from {origin}{detail} — check that it is an \
         admin key of this organisation and not revoked"
    )]
    Auth {
        status: u16,
        origin: KeyOrigin,
        detail: String,
    },
    #[error("HTTP {status}: {message}{request_id}")]
    Refused {
        status: u16,
        message: String,
        request_id: String,
    },
    #[error("the page cursor expired (HTTP 410){request_id}")]
    Expired { request_id: String },
    #[error(
        "HTTP {status} asks to wait {wait_secs} s, more than the cap of {cap_secs} s{hint}: \
         giving up until the next run"
    )]
    WaitTooLong {
        status: u16,
        wait_secs: u64,
        cap_secs: u64,
        hint: &'static str,
    },
    #[error("gave up after {attempts} attempt(s) in {secs} s; the last: {last}")]
    Exhausted {
        attempts: u32,
        secs: u64,
        last: String,
    },
}

/// A fetched JSON body.
pub struct Fetched {
    pub body: Vec<u8>,
    pub attempts: u32,
}

/// A provider API: base URL, the key's headers, the retry policy.
pub struct Api {
    http: Client,
    base: String,
    headers: HeaderMap,
    key: AdminKey,
    pub retry: Retry,
}

/// The result of one attempt that did not succeed.
enum Attempt {
    Retry { why: String, wait: Option<Duration> },
    Fail(FetchError),
}

impl Api {
    /// An API at `base` (no trailing slash) sending `headers` plus the key as `key_header`
    /// (`Bearer ` prefixed when `bearer`).
    pub fn new(
        base: &str,
        key: AdminKey,
        auth: (&'static str, bool),
        extra: &[(&'static str, &str)],
        timeout: Duration,
        retry: Retry,
    ) -> Result<Api, String> {
        let mut headers = HeaderMap::new();
        let text = if auth.1 {
            format!("Bearer {}", key.secret)
        } else {
            key.secret.clone()
        };
        let mut v = HeaderValue::from_str(&text)
            .map_err(|_| format!("the admin key in {} is not valid header text", key.origin))?;
        v.set_sensitive(true);
        headers.insert(HeaderName::from_static(auth.0), v);
        for (k, val) in extra {
            headers.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(val).map_err(|_| format!("header {k}: invalid value"))?,
            );
        }
        let http = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("tokenledger/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            headers,
            key,
            retry,
        })
    }

    pub fn key_origin(&self) -> &KeyOrigin {
        &self.key.origin
    }

    /// `GET base + path ? query`, retried per the policy; the body is valid JSON.
    pub fn get(
        &self,
        path: &str,
        query: &[(String, String)],
        beta: Option<&'static str>,
    ) -> Result<Fetched, FetchError> {
        let url = format!("{}{}", self.base, path);
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = self.attempt(&url, query, beta);
            let (why, wait) = match outcome {
                Ok(body) => return Ok(Fetched { body, attempts }),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry { why, wait }) => (why, wait),
            };
            let wait = wait.unwrap_or_else(|| backoff(self.retry.base, attempts - 1));
            if attempts > self.retry.max_retries || started.elapsed() + wait > self.retry.deadline {
                return Err(FetchError::Exhausted {
                    attempts,
                    secs: started.elapsed().as_secs(),
                    last: why,
                });
            }
            tracing::debug!(target: "tokenledger::pull", path, attempts, wait_ms = wait.as_millis() as u64, why = %why, "retrying");
            std::thread::sleep(wait);
        }
    }

    fn attempt(
        &self,
        url: &str,
        query: &[(String, String)],
        beta: Option<&'static str>,
    ) -> Result<Vec<u8>, Attempt> {
        let mut req = self
            .http
            .get(url)
            .query(query)
            .headers(self.headers.clone());
        if let Some(b) = beta {
            req = req.header("anthropic-beta", b);
        }
        let resp = req.send().map_err(|e| Attempt::Retry {
            why: self.key.scrub(&describe(&e)),
            wait: None,
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes();
        if status.is_success() {
            let body = body.map_err(|e| Attempt::Retry {
                why: format!("the body was cut off: {}", self.key.scrub(&describe(&e))),
                wait: None,
            })?;
            return match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                Ok(_) => Ok(body.to_vec()),
                Err(e) => Err(Attempt::Retry {
                    why: format!(
                        "HTTP {} with a body that is not whole JSON ({e})",
                        status.as_u16()
                    ),
                    wait: None,
                }),
            };
        }
        let body = body.map(|b| b.to_vec()).unwrap_or_default();
        Err(self.failure(status, &headers, &body))
    }

    /// What a non-2xx answer means: fail now (401/403, 410, a 4xx the API will not change its
    /// mind on, a wait over the cap) or retry (with the wait the server asked for).
    fn failure(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Attempt {
        let (message, request_id) = error_of(body, headers);
        let (message, request_id) = (self.key.scrub(&message), self.key.scrub(&request_id));
        let code = status.as_u16();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Attempt::Fail(FetchError::Auth {
                    status: code,
                    origin: self.key.origin.clone(),
                    detail: if message.is_empty() {
                        request_id
                    } else {
                        format!(" ({message}){request_id}")
                    },
                });
            }
            StatusCode::GONE => return Attempt::Fail(FetchError::Expired { request_id }),
            _ => {}
        }
        let should_retry = headers
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.eq_ignore_ascii_case("true"));
        let retryable =
            should_retry.unwrap_or(matches!(code, 408 | 409 | 429) || status.is_server_error());
        if !retryable {
            return Attempt::Fail(FetchError::Refused {
                status: code,
                message: if message.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    message
                },
                request_id,
            });
        }
        let wait = retry_after(headers, chrono::Utc::now());
        if let Some(w) = wait
            && w > self.retry.max_wait
        {
            return Attempt::Fail(FetchError::WaitTooLong {
                status: code,
                wait_secs: w.as_secs(),
                cap_secs: self.retry.max_wait.as_secs(),
                hint: if code == 429 {
                    " (a spend limit or a rate limit)"
                } else {
                    ""
                },
            });
        }
        let why = if message.is_empty() {
            format!("HTTP {code}{request_id}")
        } else {
            format!("HTTP {code}: {message}{request_id}")
        };
        Attempt::Retry { why, wait }
    }
}

/// A transport error in words (reqwest's own, which never holds a header).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the body was cut off"
    } else {
        "request failed"
    };
    let mut s = format!("{kind}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// The API's error message and `request-id` (header, else the body's `request_id`) as
/// ` (request-id …)`.
fn error_of(body: &[u8], headers: &HeaderMap) -> (String, String) {
    let doc: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let message = doc
        .as_ref()
        .and_then(|d| d.get("error"))
        .and_then(|e| e.get("message").or(Some(e)))
        .and_then(|m| m.as_str())
        .map(|m| m.chars().take(300).collect::<String>())
        .unwrap_or_default();
    let rid = headers
        .get("request-id")
        .or_else(|| headers.get("x-request-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            doc.as_ref()
                .and_then(|d| d.get("request_id"))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        });
    (
        message,
        rid.map(|r| format!(" (request-id {r})"))
            .unwrap_or_default(),
    )
}

/// `min(base·2ⁿ, 8 s)` less up to 25 % jitter.
pub fn backoff(base: Duration, retry: u32) -> Duration {
    let full = base
        .saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX))
        .min(Duration::from_secs(8));
    full.mul_f64(1.0 - 0.25 * fastrand::f64())
}

/// The wait a response asks for: `retry-after-ms`, else `retry-after` in seconds (fractional
/// allowed) or as an HTTP date (relative to `now`).
pub fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = get("retry-after")?;
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}
