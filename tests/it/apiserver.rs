//! A real HTTP/1.1 server on loopback that answers as the providers' Admin APIs do, from the
//! pages of a generated organisation: Anthropic's usage and cost reports and lists
//! (`provider-apis.md` §1–2), OpenAI's Usage endpoints, Costs API and project lists (§5–6).
//! Every bucket of the requested range is answered (empty ones as `results: []`), `limit`
//! buckets per page, chained by `next_page`; lists by `after_id` / `after`. Faults are injected
//! by rule: a status (with or without `retry-after`), a connection dropped mid-body, an answer
//! slower than the client's timeout, a cursor that loops, an expired cursor (410).
//!
//! std's TcpListener and a thread per connection: every socket has a read timeout, and the
//! server stops when dropped.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokenledger::model::SourceFormat;
use tokenledger::sources::{Detected, detect_file};

pub const ANTHROPIC_KEY: &str = "sk-ant-admin01-TESTKEY-do-not-leak-7f3a9c";
pub const OPENAI_KEY: &str = "sk-admin-TESTKEY-openai-do-not-leak-2b8e1d";

#[derive(Debug, Clone)]
pub enum Fault {
    /// This status, with these extra headers (`retry-after`, `x-should-retry`, …).
    Status(u16, Vec<(&'static str, String)>),
    /// Headers and half the body, then the connection closes.
    DropMidBody,
    /// The answer comes this late (longer than the client's timeout).
    Slow(Duration),
    /// A normal page, but `has_more` with the same `next_page` every time.
    CursorLoop,
    /// A normal page, but `has_more` with a new cursor every time, to no end.
    Endless,
    /// 200 with this body (not JSON: a proxy's error page).
    Body(&'static str),
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// A substring of the request path.
    pub path: &'static str,
    /// Only requests that carry a cursor (`page`).
    pub with_cursor: bool,
    /// Only requests whose decoded query holds this text (`starting_at=2026-10-08`).
    pub query: Option<&'static str>,
    pub times: usize,
    pub fault: Fault,
}

impl Rule {
    pub fn new(path: &'static str, times: usize, fault: Fault) -> Rule {
        Rule {
            path,
            with_cursor: false,
            query: None,
            times,
            fault,
        }
    }
}

/// The organisation served: buckets per route (start → bucket), list items per route, and the
/// width of each route's buckets.
#[derive(Default)]
pub struct Data {
    pub buckets: HashMap<String, BTreeMap<i64, Value>>,
    pub widths: HashMap<String, i64>,
    pub lists: HashMap<String, Vec<Value>>,
    /// Fewer buckets per page than asked (0: as asked), so windows take several pages.
    pub page_cap: usize,
    /// Analytics rows per route (flat items, `limit` rows per page).
    pub rows: HashMap<String, Vec<Value>>,
}

pub struct Server {
    pub base: String,
    pub data: Arc<Mutex<Data>>,
    pub rules: Arc<Mutex<Vec<Rule>>>,
    /// Every request's path and query, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// The route of a format's pages.
fn route(f: SourceFormat) -> Option<String> {
    Some(match f {
        SourceFormat::AnthropicUsageApi => "/v1/organizations/usage_report/messages".into(),
        SourceFormat::AnthropicCostApi => "/v1/organizations/cost_report".into(),
        SourceFormat::AnthropicWorkspaces => "/v1/organizations/workspaces".into(),
        SourceFormat::AnthropicApiKeys => "/v1/organizations/api_keys".into(),
        SourceFormat::OpenAiCosts => "/v1/organization/costs".into(),
        SourceFormat::OpenAiProjects => "/v1/organization/projects".into(),
        SourceFormat::OpenAiProjectApiKeys => "project-keys".into(),
        SourceFormat::OpenAiUsage(_) => {
            let name = f
                .as_str()
                .trim_start_matches("openai-usage-")
                .replace('-', "_");
            format!("/v1/organization/usage/{name}")
        }
        _ => return None,
    })
}

/// A bucket's `(start, end)` in Unix seconds: Anthropic's RFC 3339 `starting_at`/`ending_at`
/// or OpenAI's `start_time`/`end_time`.
fn bucket_times(b: &Value) -> (i64, i64) {
    let at = |rfc: &str, unix: &str| match b.get(rfc).and_then(Value::as_str) {
        Some(s) => DateTime::parse_from_rfc3339(s).unwrap().timestamp(),
        None => b.get(unix).and_then(Value::as_i64).expect("a bucket time"),
    };
    (at("starting_at", "start_time"), at("ending_at", "end_time"))
}

fn bucket_start(b: &Value) -> i64 {
    bucket_times(b).0
}

impl Data {
    /// Every page and list a `synth` run wrote under `dir`.
    pub fn from_exports(dir: &Path) -> Data {
        let mut d = Data::default();
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    files.push(e.path());
                }
            }
        }
        files.sort();
        for f in files {
            let format = match detect_file(&f).unwrap() {
                Ok(Detected::Format(fmt)) => fmt,
                // An endpoint with no usage at all: synth names it `usage-<endpoint>-<month>`.
                Ok(Detected::EmptyOpenAiPage) => {
                    let n = f.file_name().unwrap().to_string_lossy().into_owned();
                    let ep = n
                        .trim_start_matches("usage-")
                        .rsplitn(3, '-')
                        .nth(2)
                        .unwrap()
                        .to_string();
                    SourceFormat::parse(&format!("openai-usage-{ep}")).expect("a synth usage file")
                }
                _ => continue,
            };
            let Some(r) = route(format) else { continue };
            let doc: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            let items = doc["data"].as_array().cloned().unwrap_or_default();
            match format {
                SourceFormat::AnthropicWorkspaces
                | SourceFormat::AnthropicApiKeys
                | SourceFormat::OpenAiProjects
                | SourceFormat::OpenAiProjectApiKeys => d.lists.entry(r).or_default().extend(items),
                _ => {
                    for b in items {
                        let (start, end) = bucket_times(&b);
                        d.widths.insert(r.clone(), end - start);
                        d.buckets.entry(r.clone()).or_default().insert(start, b);
                    }
                }
            }
        }
        d
    }
}

impl Server {
    pub fn start(data: Data) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let s = Server {
            base: format!("http://{addr}"),
            data: Arc::new(Mutex::new(data)),
            rules: Arc::new(Mutex::new(Vec::new())),
            requests: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
            addr,
        };
        let (data, rules, requests, stop) = (
            s.data.clone(),
            s.rules.clone(),
            s.requests.clone(),
            s.stop.clone(),
        );
        let counter = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (data, rules, requests, counter) = (
                    data.clone(),
                    rules.clone(),
                    requests.clone(),
                    counter.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(conn, &data, &rules, &requests, &counter);
                });
            }
        });
        s
    }

    pub fn fault(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

struct Request {
    path: String,
    query: Vec<(String, String)>,
    headers: HashMap<String, String>,
}

impl Request {
    /// Where the page starts: our cursors are `page_<offset>` (any other text: the start).
    fn offset(&self) -> usize {
        self.get("page")
            .and_then(|p| p.strip_prefix("page_"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn read_request(conn: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1)?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some(Request {
        path: path.to_string(),
        query,
        headers,
    })
}

fn respond(conn: &mut TcpStream, code: u16, extra: &[(&str, String)], body: &[u8], id: usize) {
    let mut head = format!(
        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nrequest-id: req_test_{id}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
    let _ = conn.flush();
}

fn error_body(kind: &str, message: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_body"})
        .to_string()
        .into_bytes()
}

fn serve(
    mut conn: TcpStream,
    data: &Mutex<Data>,
    rules: &Mutex<Vec<Rule>>,
    requests: &Mutex<Vec<String>>,
    counter: &AtomicUsize,
) -> Option<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = read_request(&conn)?;
    let id = counter.fetch_add(1, Ordering::SeqCst);
    let line = format!(
        "{}?{}",
        req.path,
        req.query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    );
    requests.lock().unwrap().push(line.clone());
    let openai = req.path.starts_with("/v1/organization/");
    let authorised = if openai {
        req.headers.get("authorization").map(String::as_str)
            == Some(&format!("Bearer {OPENAI_KEY}"))
    } else {
        req.headers.get("x-api-key").map(String::as_str) == Some(ANTHROPIC_KEY)
            && req.headers.contains_key("anthropic-version")
    };
    if !authorised {
        let b = error_body("authentication_error", "invalid x-api-key");
        respond(&mut conn, 401, &[], &b, id);
        return Some(());
    }
    let fault = {
        let mut rules = rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| {
                r.times > 0
                    && req.path.contains(r.path)
                    && (!r.with_cursor || req.get("page").is_some())
                    && r.query.is_none_or(|q| line.contains(q))
            })
            .map(|r| {
                r.times -= 1;
                r.fault.clone()
            })
    };
    let looping = match fault {
        Some(Fault::CursorLoop) => Some("page_loop".to_string()),
        Some(Fault::Endless) => Some(format!("page_endless_{id}")),
        _ => None,
    };
    let (code, body) = answer(&req, &data.lock().unwrap(), looping);
    match fault {
        Some(Fault::Status(c, headers)) => {
            let b = error_body("api_error", &format!("injected {c}"));
            respond(&mut conn, c, &headers, &b, id);
        }
        Some(Fault::DropMidBody) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body[..body.len() / 2]);
            let _ = conn.flush();
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        Some(Fault::Slow(d)) => {
            std::thread::sleep(d);
            respond(&mut conn, code, &[], &body, id);
        }
        Some(Fault::Body(text)) => respond(&mut conn, 200, &[], text.as_bytes(), id),
        Some(Fault::CursorLoop | Fault::Endless) | None => respond(&mut conn, code, &[], &body, id),
    }
    Some(())
}

/// The page a request asks for, from the data.
fn answer(req: &Request, d: &Data, looping: Option<String>) -> (u16, Vec<u8>) {
    let openai = req.path.starts_with("/v1/organization/");
    let key_list =
        req.path.starts_with("/v1/organization/projects/") && req.path.ends_with("/api_keys");
    let list_route = if key_list {
        "project-keys".to_string()
    } else {
        req.path.clone()
    };
    if let Some(items) = d.lists.get(&list_route) {
        // Project keys: the generated keys belong to the first project; the others have none.
        let first_project = d
            .lists
            .get("/v1/organization/projects")
            .and_then(|p| p.first())
            .and_then(|p| p["id"].as_str())
            .unwrap_or("");
        let items: Vec<Value> = if key_list && !req.path.contains(first_project) {
            Vec::new()
        } else {
            items.clone()
        };
        let after = req.get("after_id").or(req.get("after"));
        let start = after
            .and_then(|a| items.iter().position(|i| i["id"] == a).map(|p| p + 1))
            .unwrap_or(0);
        let limit: usize = req.get("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
        let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
        let has_more = start + page.len() < items.len();
        let mut body = json!({
            "data": page,
            "has_more": has_more,
            "first_id": page.first().map(|i| i["id"].clone()),
            "last_id": page.last().map(|i| i["id"].clone()),
        });
        if openai {
            body["object"] = json!("list");
        }
        return (200, body.to_string().into_bytes());
    }
    if let Some(rows) = d.rows.get(&req.path) {
        return analytics(req, rows);
    }
    let Some(buckets) = d.buckets.get(&req.path) else {
        return (
            404,
            error_body("not_found_error", &format!("no route {}", req.path)),
        );
    };
    let width = d.widths[&req.path];
    let asked = match req.get("bucket_width").unwrap_or("1d") {
        "1m" => 60,
        "1h" => 3600,
        _ => 86400,
    };
    if asked != width {
        return (
            400,
            error_body(
                "invalid_request_error",
                &format!("this test data has {width} s buckets"),
            ),
        );
    }
    let ts = |k: &str| -> Option<i64> {
        let v = req.get(k)?;
        v.parse::<i64>()
            .ok()
            .or_else(|| DateTime::parse_from_rfc3339(v).ok().map(|t| t.timestamp()))
    };
    let (Some(s), Some(e)) = (
        ts("starting_at").or(ts("start_time")),
        ts("ending_at").or(ts("end_time")),
    ) else {
        return (
            400,
            error_body("invalid_request_error", "a range is required"),
        );
    };
    let starts: Vec<i64> = (0..)
        .map(|i| s + i * width)
        .take_while(|t| *t < e)
        .collect();
    let offset = req.offset();
    let mut limit: usize = req.get("limit").and_then(|l| l.parse().ok()).unwrap_or(7);
    if d.page_cap > 0 {
        limit = limit.min(d.page_cap);
    }
    let page: Vec<Value> = starts
        .iter()
        .skip(offset)
        .take(limit)
        .map(|&t| {
            buckets
                .get(&t)
                .cloned()
                .unwrap_or_else(|| empty_bucket(openai, t, t + width))
        })
        .collect();
    let has_more = looping.is_some() || offset + page.len() < starts.len();
    let next = looping.or_else(|| has_more.then(|| format!("page_{}", offset + page.len())));
    let mut body = json!({"data": page, "has_more": has_more, "next_page": next});
    if openai {
        body["object"] = json!("page");
    }
    (200, body.to_string().into_bytes())
}

fn empty_bucket(openai: bool, s: i64, e: i64) -> Value {
    if openai {
        return json!({"object": "bucket", "start_time": s, "end_time": e, "results": []});
    }
    let t = |x: i64| {
        DateTime::<Utc>::from_timestamp(x, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    json!({"starting_at": t(s), "ending_at": t(e), "results": []})
}

/// An Analytics page: the rows whose bucket starts in the range, `limit` per page, as of a
/// refresh after the range.
fn analytics(req: &Request, rows: &[Value]) -> (u16, Vec<u8>) {
    let t = |k: &str| {
        req.get(k)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.timestamp())
    };
    let (Some(s), Some(e)) = (t("starting_at"), t("ending_at")) else {
        return (
            400,
            error_body("invalid_request_error", "starting_at and ending_at"),
        );
    };
    let inside: Vec<&Value> = rows
        .iter()
        .filter(|r| (s..e).contains(&bucket_start(r)))
        .collect();
    let offset = req.offset();
    let limit: usize = req.get("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
    let page: Vec<&Value> = inside.iter().skip(offset).take(limit).copied().collect();
    let more = offset + page.len() < inside.len();
    let refreshed = DateTime::<Utc>::from_timestamp(e + 3 * 3600, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let body = json!({"data": page, "has_more": more, "next_page": more.then(|| format!("page_{}", offset + page.len())), "data_refreshed_at": refreshed});
    (200, body.to_string().into_bytes())
}
