//! Helpers: run the real binary, read the lake back through the real CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_tokenledger");

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// What the binary reads from the environment: the runner's values must not reach a test
/// (a `TOKENLEDGER_LOG_FORMAT=json` or `COLUMNS=80` in the shell would change the stderr and
/// the tables dozens of tests read); a test that wants one sets it.
pub const BINARY_ENV: [&str; 18] = [
    "TOKENLEDGER_DATA_DIR",
    "TOKENLEDGER_LAKE_CACHE",
    "TOKENLEDGER_CONFIG",
    "TOKENLEDGER_LOG_FORMAT",
    "TOKENLEDGER_CRASH_AT",
    "TOKENLEDGER_TIMINGS",
    "NO_COLOR",
    "COLUMNS",
    "MALLOC_ARENA_MAX",
    "ANTHROPIC_ADMIN_KEY",
    "OPENAI_ADMIN_KEY",
    "TOKENLEDGER_ANTHROPIC_BASE_URL",
    "TOKENLEDGER_OPENAI_BASE_URL",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
];

/// The binary with none of the runner's [`BINARY_ENV`].
pub fn binary() -> Command {
    scrubbed(BIN)
}

/// `program` (the binary, or a wrapper that runs it: `timeout`, `setpriv`) with none of the
/// runner's [`BINARY_ENV`].
pub fn scrubbed(program: &str) -> Command {
    let mut c = Command::new(program);
    for k in BINARY_ENV {
        c.env_remove(k);
    }
    c
}

pub fn tl(data: &Path, args: &[&str]) -> Output {
    tl_env(data, args, &[])
}

pub fn tl_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = binary();
    on_lake(&mut c, data);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run tokenledger")
}

/// The binary on the lake `data` ([`on_lake`]), for a test that builds its own command.
pub fn lake_cmd(data: &Path) -> Command {
    let mut c = binary();
    on_lake(&mut c, data);
    c
}

/// `--data-dir DATA`; in the suite's bucket pass (`TOKENLEDGER_TEST_S3=1`) the lake is
/// `s3://tl-suite/<hash of DATA>` instead, on an S3 server on loopback (moto, one per test
/// process), and DATA is its working copy: every command reads what the bucket's Delta logs
/// hold (a file that did not reach the bucket is deleted from DATA by the next command), and
/// what a test inspects on disk is there as on a local lake.
pub fn on_lake(c: &mut Command, data: &Path) {
    let Some(port) = suite_s3().filter(|_| !DISK_ONLY.get()) else {
        c.arg("--data-dir").arg(data);
        return;
    };
    if data.to_string_lossy().contains("://") {
        c.arg("--data-dir").arg(data);
        return;
    }
    let abs = std::path::absolute(data).unwrap();
    let key = blake3::hash(abs.to_string_lossy().as_bytes()).to_hex();
    c.arg("--data-dir")
        .arg(format!("s3://tl-suite/{}", &key[..24]))
        .env("TOKENLEDGER_LAKE_CACHE", &abs)
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true");
}

thread_local! {
    static DISK_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keeps this test's lakes on disk in the bucket pass too (each test runs on its own thread):
/// for a test of the on-disk form itself (the Delta logs in the folders, a mistyped path) or
/// one that sets up its own bucket and compares with a lake on disk.
pub fn disk_only() {
    DISK_ONLY.set(true);
}

/// moto's S3 server on a free loopback port with `bucket` (`tests/engines/s3_server.py`): it
/// serves until its stdin closes (the test process that started it exited, however it died)
/// or `secs` pass. → (the `timeout` process wrapping it, the port).
pub fn s3_server(bucket: &str, secs: u32) -> (std::process::Child, u16) {
    server(
        "s3_server.py",
        &[bucket],
        secs,
        "pip install 'moto[server]'",
    )
}

/// `python3 tests/engines/<script> <args>` under `timeout secs`: the child and the port it
/// prints first; `install` says what to install when it prints none.
fn server(script: &str, args: &[&str], secs: u32, install: &str) -> (std::process::Child, u16) {
    use std::io::BufRead;
    let mut child = Command::new("timeout")
        .arg(secs.to_string())
        .arg("python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/engines")
                .join(script),
        )
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 tests/engines/{script}: {e}"));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{script} printed no port ({install}?): {line:?}"));
    (child, port)
}

/// Azurite (Azure Blob Storage's emulator, npm `azurite`) on a free loopback port with storage
/// account `account` (its key `key`) and container `container`, through
/// `tests/engines/az_server.py`: (the process, its port). Serves until this process's end
/// closes its stdin, or `secs` pass.
pub fn az_server(
    account: &str,
    key: &str,
    container: &str,
    secs: u32,
) -> (std::process::Child, u16) {
    server(
        "az_server.py",
        &[account, key, container],
        secs,
        "npm install --prefix ~/.cache/tokenledger-npm azurite@3.35.0; pip install azure-storage-blob",
    )
}

/// A table's content as a Delta reader sees it (`tests/engines/delta_check.py`): rows and
/// exact sums (file names and versions differ between two lakes that hold the same rows).
pub fn content(t: &serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    (t["rows"].clone(), t["sums"].clone())
}

/// The port of the suite's S3 server when `TOKENLEDGER_TEST_S3` is set (started on first
/// use; it serves until this process exits and closes its stdin, or 60 minutes pass).
fn suite_s3() -> Option<u16> {
    use std::sync::OnceLock;
    static SERVER: OnceLock<Option<(std::process::Child, u16)>> = OnceLock::new();
    if std::env::var_os("TOKENLEDGER_TEST_S3").is_none_or(|v| v.is_empty() || v == "0") {
        return None;
    }
    let server = SERVER.get_or_init(|| Some(s3_server("tl-suite", 3600)));
    server.as_ref().map(|(_, p)| *p)
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `tokenledger ingest --json` of input that must load clean (exit 0: nothing quarantined or
/// skipped) → the summary. For a test's setup: a fixture that starts quarantining rows fails
/// here, not three assertions later.
pub fn ingest_ok(data: &Path, paths: &[&Path]) -> serde_json::Value {
    let (c, s) = ingest(data, paths);
    assert_eq!(c, 0, "setup input must ingest clean: {s}");
    s
}

/// `tokenledger ingest --json` → (exit code, summary).
#[must_use = "check the exit code, or call ingest_ok"]
pub fn ingest(data: &Path, paths: &[&Path]) -> (i32, serde_json::Value) {
    let mut args = vec!["ingest".to_string(), "--json".into(), "-q".into()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = tl(data, &args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "ingest --json printed no JSON ({e}); stderr: {}",
            stderr(&o)
        )
    });
    (code(&o), v)
}

/// Runs SQL through `tokenledger sql --format json`.
pub fn sql(data: &Path, q: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let o = tl(data, &["sql", q, "--format", "json"]);
    assert_eq!(code(&o), 0, "sql failed: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| r.as_object().expect("object").clone())
        .collect()
}

pub const TOKEN_COLS: [&str; tokenledger::vocab::N_COUNTS] =
    tokenledger::lake::schema::TOKEN_COLUMNS;

/// A total read back from the lake: `None` is SQL NULL (a sum over no rows), never 0, so a
/// lake with no rows never compares equal to one whose rows add up to zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Count(pub Option<i128>);

impl Count {
    fn of(v: &serde_json::Value) -> Count {
        match v {
            serde_json::Value::Null => Count(None),
            // Sums past i64 arrive as exact decimal strings.
            serde_json::Value::String(s) => Count(Some(s.parse().expect("an integer total"))),
            other => Count(Some(other.as_i64().expect("an integer total").into())),
        }
    }
    /// The value of a total that must exist.
    pub fn value(self) -> i64 {
        let v = self.0.expect("a total over rows that exist, not NULL");
        i64::try_from(v).expect("a total within i64")
    }
}

impl PartialEq<i64> for Count {
    fn eq(&self, o: &i64) -> bool {
        self.0 == Some(i128::from(*o))
    }
}

impl PartialOrd<i64> for Count {
    fn partial_cmp(&self, o: &i64) -> Option<std::cmp::Ordering> {
        self.0.map(|v| v.cmp(&i128::from(*o)))
    }
}

/// Token totals of the usage table (plus the row count), read with tokenledger's own query engine.
pub fn totals(data: &Path, filter: &str) -> BTreeMap<String, Count> {
    let cols: Vec<String> = TOKEN_COLS
        .iter()
        .map(|c| format!("SUM({c}) AS {c}"))
        .collect();
    let q = format!(
        "SELECT {}, COUNT(*) AS usage_rows FROM usage {filter}",
        cols.join(", ")
    );
    let rows = sql(data, &q);
    rows[0]
        .iter()
        .map(|(k, v)| (k.clone(), Count::of(v)))
        .collect()
}

/// Every lake file (path → content hash), excluding the lock file.
pub fn snapshot(data: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.file_name().is_some_and(|n| n != "lock") {
                let bytes = std::fs::read(&p).expect("read");
                out.insert(
                    p.strip_prefix(root).unwrap().display().to_string(),
                    blake3::hash(&bytes).to_hex().to_string(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(data, data, &mut out);
    out
}

/// Writes synthetic exports and returns their directory.
pub fn synth(dir: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("exports");
    let mut args = vec!["synth", "--out", out.to_str().unwrap(), "-q"];
    args.extend_from_slice(extra);
    let o = binary().args(&args).output().expect("synth");
    assert_eq!(code(&o), 0, "synth failed: {}", stderr(&o));
    out
}

/// The README's first two commands (the first fenced block: the lines that are not comments):
/// the whole job on a generated organisation, then all tests.
pub fn readme_commands() -> [String; 2] {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the README starts with a sh block");
    let cmds: Vec<String> = block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    assert_eq!(cmds.len(), 2, "two commands: {cmds:?}");
    [cmds[0].clone(), cmds[1].clone()]
}

/// The arguments the README's first command gives tokenledger (`cargo run --release -- ARGS`).
pub fn readme_demo_args() -> Vec<String> {
    let [first, _] = readme_commands();
    let (cargo, args) = first.split_once(" -- ").expect("cargo run … -- ARGS");
    assert!(cargo.starts_with("cargo run"), "{first}");
    args.split_whitespace().map(String::from).collect()
}

/// `tokenledger --config CFG report --month MONTH --by BY --format json` (exit 0) → its lines.
pub fn report_rows(data: &Path, cfg: &Path, month: &str, by: &str) -> Vec<serde_json::Value> {
    let o = tl(
        data,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "report",
            "--month",
            month,
            "--by",
            by,
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)))
}

/// Parses an .eml with Python's standard `email` package: subject, to, message id, the text
/// and HTML parts, the CSV attachment and the inline image ids.
pub fn parse_eml(path: &Path) -> serde_json::Value {
    let script = r#"
import email, json, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
out = {"subject": m["Subject"], "to": m["To"], "message_id": m["Message-ID"], "images": [], "structure": []}
for p in m.walk():
    ct = p.get_content_type()
    out["structure"].append(ct)
    if ct == "text/plain": out["text"] = p.get_content()
    elif ct == "text/html": out["html"] = p.get_content()
    elif ct == "text/csv": out["csv"] = p.get_payload(decode=True).decode(); out["csv_name"] = p.get_filename()
    elif ct == "image/png":
        data = p.get_payload(decode=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
        out["images"].append(p["Content-ID"].strip("<>"))
print(json.dumps(out))
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `tokenledger --config CFG ARGS…` on `data`.
pub fn tl_cfg(data: &Path, cfg: &Path, args: &[&str]) -> Output {
    let mut a = vec!["--config", cfg.to_str().unwrap()];
    a.extend_from_slice(args);
    tl(data, &a)
}

/// `mail --month M` under `cfg` (must exit 0) → every .eml of the month's outbox, parsed
/// ([`parse_eml`]), with its file name as `"file"`.
pub fn mail_outbox(data: &Path, cfg: &Path, month: &str) -> Vec<serde_json::Value> {
    let o = tl_cfg(data, cfg, &["mail", "--month", month, "-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut out: Vec<serde_json::Value> = std::fs::read_dir(data.join("outbox").join(month))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let mut m = parse_eml(&p);
            m["file"] = p.file_name().unwrap().to_string_lossy().into_owned().into();
            m
        })
        .collect();
    out.sort_by(|a, b| a["file"].as_str().cmp(&b["file"].as_str()));
    out
}

/// Whether an ingest summary found every file already ingested (nothing read again).
pub fn all_unchanged(summary: &serde_json::Value) -> bool {
    summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["status"] == "unchanged")
}

/// Asserts the first file of an ingest summary was refused whole, for a reason containing
/// `why`.
pub fn assert_refused(summary: &serde_json::Value, why: &str) {
    let f = &summary["files"][0];
    assert_eq!(f["status"], "quarantined", "{summary}");
    assert!(
        f["error"].as_str().unwrap_or_default().contains(why),
        "expected a refusal for {why:?}: {summary}"
    );
}
