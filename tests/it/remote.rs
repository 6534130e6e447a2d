//! A lake on object storage (`data_dir = "s3://…"`, `az://…`), against real servers on
//! loopback started by each test (moto's S3 server mode from PyPI; Azurite, Microsoft's Blob
//! Storage emulator, from npm): the same answers as the lake on disk, from any machine's
//! working copy; a Delta reader of the bucket sees each table before or after a killed run; a
//! second machine that commits late is refused, never merged; credentials stay in the
//! environment. The reference lakes stay on disk in the suite's bucket
//! pass too (`disk_only`); the bucket lakes here are on a server of each test's own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use serde_json::Value;

use crate::common::*;

const BUCKET: &str = "tl-test";
/// The secret the binary is given: it must appear in no file, log line or bucket object.
const SECRET: &str = "tl-secret-4b1d9e7c2a";
/// The Azure storage account of the Azurite tests.
const ACCOUNT: &str = "tlaccount";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/engines")
        .join(name)
}

/// Which object store a test's server speaks.
#[derive(Clone, Copy, PartialEq)]
enum Cloud {
    /// moto's S3 server (PyPI `moto[server]`).
    S3,
    /// Azurite, Microsoft's Blob Storage emulator (npm `azurite`).
    Azure,
}

/// An object store on a free loopback port, with the test bucket (container); killed on drop,
/// and gone by itself when this process dies (it serves until its stdin closes) or after 30
/// minutes.
struct Bucket {
    child: Child,
    port: u16,
    cloud: Cloud,
}

impl Bucket {
    fn start() -> Bucket {
        let (child, port) = s3_server(BUCKET, 1800);
        Bucket {
            child,
            port,
            cloud: Cloud::S3,
        }
    }

    fn azure() -> Bucket {
        let (child, port) = az_server(ACCOUNT, &Self::azure_key(), BUCKET, 1800);
        Bucket {
            child,
            port,
            cloud: Cloud::Azure,
        }
    }

    /// The Azure account key (base64, as Azure's are): the secret, encoded.
    fn azure_key() -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{SECRET}-azure-account-key"))
    }

    /// The secret as the binary is given it.
    fn secret(&self) -> String {
        match self.cloud {
            Cloud::S3 => SECRET.into(),
            Cloud::Azure => Self::azure_key(),
        }
    }

    /// The URL of the lake at `prefix` in the test bucket.
    fn url(&self, prefix: &str) -> String {
        match self.cloud {
            Cloud::S3 => format!("s3://{BUCKET}/{prefix}"),
            Cloud::Azure => format!("az://{BUCKET}/{prefix}"),
        }
    }

    /// The same lake by the provider's other URL form (`s3a://`, Azure's
    /// `abfss://<container>@<account>.dfs.core.windows.net/`).
    fn other_url(&self, prefix: &str) -> String {
        match self.cloud {
            Cloud::S3 => format!("s3a://{BUCKET}/{prefix}"),
            Cloud::Azure => format!("abfss://{BUCKET}@{ACCOUNT}.dfs.core.windows.net/{prefix}"),
        }
    }

    /// The environment a machine of the lake runs with: the endpoint and credentials (the
    /// provider's standard variables, as on a real host) and its working copy.
    fn env(&self, cache: &Path) -> Vec<(String, String)> {
        let endpoint = format!("http://127.0.0.1:{}", self.port);
        let mut env: Vec<(String, String)> = match self.cloud {
            Cloud::S3 => vec![
                ("AWS_ENDPOINT_URL".into(), endpoint),
                ("AWS_ACCESS_KEY_ID".into(), "tl-test-key".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), SECRET.into()),
                ("AWS_REGION".into(), "us-east-1".into()),
                ("AWS_ALLOW_HTTP".into(), "true".into()),
            ],
            // object_store's emulator mode: path-style URLs at AZURITE_BLOB_STORAGE_URL.
            Cloud::Azure => vec![
                ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
                ("AZURITE_BLOB_STORAGE_URL".into(), endpoint),
                ("AZURE_STORAGE_ACCOUNT_NAME".into(), ACCOUNT.into()),
                ("AZURE_STORAGE_ACCOUNT_KEY".into(), Self::azure_key()),
            ],
        };
        env.push((
            "TOKENLEDGER_LAKE_CACHE".into(),
            cache.to_string_lossy().into_owned(),
        ));
        env
    }

    /// tokenledger on the bucket lake `url`, from the machine whose working copy is `cache`.
    fn tl(&self, url: &str, cache: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let env = self.env(cache);
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        tl_env(Path::new(url), args, &all)
    }

    fn ok(&self, url: &str, cache: &Path, args: &[&str]) -> Output {
        let o = self.tl(url, cache, args, &[]);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert!(
            !stderr(&o).contains(&self.secret()),
            "the secret reached stderr: {}",
            stderr(&o)
        );
        o
    }

    fn sql(&self, url: &str, cache: &Path, q: &str) -> Value {
        let o = self.ok(url, cache, &["sql", q, "--format", "json"]);
        serde_json::from_slice(&o.stdout).expect("sql --format json")
    }

    /// What the `deltalake` package reads of every table in the bucket.
    fn delta_state(&self, url: &str) -> serde_json::Map<String, Value> {
        let mut c = Command::new("timeout");
        c.args(["300", "python3"])
            .arg(script("delta_check.py"))
            .arg(url);
        for (k, v) in self.env(Path::new("/nonexistent")) {
            c.env(k, v);
        }
        let o = c.output().expect("python3");
        assert!(
            o.status.success(),
            "delta_check.py {url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).expect("JSON")
    }

    /// The data files of a table in the bucket (every key under `prefix/` but its log),
    /// relative to the table, as a plain-Parquet reader of the bucket finds them.
    fn data_keys(&self, prefix: &str) -> Vec<String> {
        let prefix = format!("{prefix}/");
        self.keys(&prefix)
            .into_iter()
            .filter(|k| !k.contains("/_delta_log/"))
            .map(|k| k.trim_start_matches(&prefix).to_string())
            .collect()
    }

    /// Every key under `prefix` in the bucket.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let port = self.port.to_string();
        let key = Self::azure_key();
        let args: Vec<&str> = match self.cloud {
            Cloud::S3 => vec!["s3_server.py", "--list", &port, BUCKET, prefix],
            Cloud::Azure => vec![
                "az_server.py",
                "--list",
                &port,
                ACCOUNT,
                &key,
                BUCKET,
                prefix,
            ],
        };
        let o = Command::new("timeout")
            .args(["120", "python3"])
            .arg(script(args[0]))
            .args(&args[1..])
            .output()
            .expect("python3");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test's bucket server, its temp dir and two months of generated hourly exports in it (this
/// test's lakes on disk stay on disk in the suite's bucket pass).
fn setup(cloud: Cloud, seed: &str) -> (Bucket, tempfile::TempDir, PathBuf) {
    disk_only();
    let s3 = match cloud {
        Cloud::S3 => Bucket::start(),
        Cloud::Azure => Bucket::azure(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let exports = synth(
        tmp.path(),
        &["--width", "1h", "--months", "2", "--seed", seed],
    );
    (s3, tmp, exports)
}

/// What the books say: tokens and list cost by provider and month, to the last digit.
const BOOKS: &str = "SELECT provider, month, COUNT(*) AS n, SUM(uncached_input_tokens) AS input, SUM(cache_read_tokens) AS cache_read, \
    SUM(output_tokens) AS output, CAST(SUM(list_cost) AS VARCHAR) AS list_cost \
    FROM rated_usage GROUP BY provider, month ORDER BY provider, month";

fn delta_files(t: &Value) -> Vec<String> {
    serde_json::from_value(t["files"].clone()).unwrap()
}

#[test]
fn a_lake_in_a_bucket_answers_as_the_lake_on_disk_from_any_machine() {
    answers_as_the_lake_on_disk(Cloud::S3);
}

#[test]
fn a_lake_in_an_azure_container_answers_as_the_lake_on_disk_from_any_machine() {
    answers_as_the_lake_on_disk(Cloud::Azure);
}

/// The same books and chargeback from machine A that wrote the lake and machine B that never
/// saw it (by the store's other URL form), Delta readers of the bucket see the tables of the
/// lake on disk, the bucket holds exactly their Delta files, and no credential leaks.
fn answers_as_the_lake_on_disk(cloud: Cloud) {
    let (s3, tmp, exports) = setup(cloud, "5");
    let sample = fixtures().join("sample");
    let (sample_s, exports_s) = (sample.to_str().unwrap(), exports.to_str().unwrap());

    // The same ingests into a lake on disk, the reference.
    let local = tmp.path().join("local");
    let on_disk = books_on_disk(&local, &[&sample, &exports]);

    let url = s3.url("books");
    // A prefix no lake was ever written to is said, with its URL, never read as zero.
    let o = s3.tl(
        &url,
        &tmp.path().join("nobody"),
        &["sql", "SELECT 1 AS x"],
        &[],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("no lake at {url}")),
        "{}",
        stderr(&o)
    );

    // Credentials belong in the environment: a URL holding some is refused without echoing
    // them.
    let with_credentials = match cloud {
        Cloud::S3 => format!("s3://AKIATEST:hunter2-secret@{BUCKET}/books"),
        Cloud::Azure => format!("az://{ACCOUNT}:hunter2-secret@{BUCKET}/books"),
    };
    let o = s3.tl(
        &with_credentials,
        &tmp.path().join("nobody"),
        &["sql", "SELECT 1 AS x"],
        &[],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("credentials in the URL are refused")
            && !stderr(&o).contains("hunter2"),
        "{}",
        stderr(&o)
    );

    // Machine A builds the lake in the bucket (two ingests: the second replaces the ingest
    // log and coverage files, so the bucket sees removes too).
    let a = tmp.path().join("machine-a");
    s3.ok(&url, &a, &["ingest", "-q", sample_s]);
    s3.ok(&url, &a, &["ingest", "-q", exports_s]);
    s3.ok(&url, &a, &["rate", "-q"]);
    assert_eq!(
        s3.sql(&url, &a, BOOKS),
        on_disk,
        "machine A = the lake on disk"
    );

    // Machine B has never seen the lake: its empty working copy is filled from the bucket,
    // which it names by the store's other URL form.
    let b = tmp.path().join("machine-b");
    assert!(!b.exists());
    let url_b = s3.other_url("books");
    assert_eq!(
        s3.sql(&url_b, &b, BOOKS),
        on_disk,
        "machine B = the lake on disk"
    );
    let month = on_disk[0]["month"].as_str().unwrap().to_string();
    let args = [
        "report",
        "--month",
        &month,
        "--by",
        "workspace",
        "--format",
        "csv",
    ];
    let local_report = tl(&local, &args);
    assert_eq!(code(&local_report), 0, "{}", stderr(&local_report));
    assert_eq!(
        s3.ok(&url_b, &b, &args).stdout,
        local_report.stdout,
        "the chargeback, to the cent"
    );
    assert_eq!(s3.ok(&url, &a, &args).stdout, local_report.stdout);

    // A Delta reader of the bucket (delta-rs) sees every table with the rows and exact sums
    // of the lake on disk; the bucket holds exactly the files of each table's newest version
    // (the replaced ones were deleted after their commit), so a plain-Parquet reader of the
    // bucket counts nothing twice.
    let in_bucket = s3.delta_state(&url);
    let on_disk_delta = {
        // The reference lake read as Delta: adopt it (a reader's first command in the mode).
        let o = tl_env(
            &local,
            &["sql", "SELECT 1 AS x"],
            &[("TOKENLEDGER_LAKE_DELTA", "1")],
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        s3_local_state(&local)
    };
    for t in [
        "usage",
        "usage_pricing",
        "ingest_log",
        "usage_coverage",
        "workspaces",
    ] {
        assert!(
            in_bucket.contains_key(t),
            "{t} in the bucket: {:?}",
            in_bucket.keys()
        );
    }
    for (name, t) in &in_bucket {
        assert_eq!(
            Some(content(t)),
            on_disk_delta.get(name).map(content),
            "{name}: rows and sums in the bucket = on disk"
        );
        assert_eq!(
            s3.data_keys(&format!("books/{name}")),
            delta_files(t),
            "{name}: bucket objects = Delta files"
        );
    }

    // The secret is in no file of either working copy (what the bucket holds was uploaded
    // from them, or is a log the kernel wrote of their names).
    for cache in [&a, &b] {
        for (path, _) in snapshot(cache) {
            let bytes = std::fs::read(cache.join(&path)).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(SECRET)
                    && !String::from_utf8_lossy(&bytes).contains(&s3.secret()),
                "{path} holds the secret"
            );
        }
    }
    let meta = s3.keys("books/_tokenledger/");
    assert!(
        meta.iter().any(|k| k.ends_with("/lake")),
        "the lake's marker is in the bucket: {meta:?}"
    );
}

/// The reference lake on disk as `deltalake` reads it.
fn s3_local_state(data: &Path) -> serde_json::Map<String, Value> {
    let o = Command::new("timeout")
        .args(["300", "python3"])
        .arg(script("delta_check.py"))
        .arg(data)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The books of a lake on disk that ingested `inputs` one after another, then rated.
fn books_on_disk(data: &Path, inputs: &[&Path]) -> Value {
    for i in inputs {
        ingest_ok(data, &[i]);
    }
    let o = tl(data, &["rate", "-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = tl(data, &["sql", BOOKS, "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_machine_that_comes_back_after_another_committed_is_refused_then_counts_once() {
    comes_back_after_another_committed(Bucket::start());
}

/// The store honours put-if-absent (the one thing a Delta commit needs of it): Azure's
/// `If-None-Match: *`, as S3's.
#[test]
fn in_an_azure_container_too_a_late_machine_is_refused_then_counts_once() {
    comes_back_after_another_committed(Bucket::azure());
}

fn comes_back_after_another_committed(s3: Bucket) {
    disk_only();
    let tmp = tempfile::tempdir().unwrap();
    let url = s3.url("race");
    let sample = fixtures().join("sample");
    let first = synth(
        tmp.path().join("one").as_path(),
        &["--width", "1d", "--months", "1", "--seed", "31"],
    );
    let second = synth(
        tmp.path().join("two").as_path(),
        &["--width", "1d", "--months", "1", "--seed", "32"],
    );
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    s3.ok(&url, &a, &["ingest", "-q", sample.to_str().unwrap()]);
    // B is killed right after its commit point: its change is in its journal, made on the
    // versions it read, and not in the bucket yet.
    let o = s3.tl(
        &url,
        &b,
        &["ingest", "-q", second.to_str().unwrap()],
        &[("TOKENLEDGER_CRASH_AT", "committed")],
    );
    assert!(
        stderr(&o).contains("simulated crash at committed"),
        "{}",
        stderr(&o)
    );
    // Meanwhile A commits.
    s3.ok(&url, &a, &["ingest", "-q", first.to_str().unwrap()]);
    // B comes back: its journal follows versions A has moved past. Committing it on top would
    // merge two runs that never saw each other; it is refused and dropped instead.
    let o = s3.tl(&url, &b, &["sql", "SELECT COUNT(*) AS n FROM usage"], &[]);
    assert_eq!(code(&o), 1, "a stale commit fails: {}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("was committed by another run") && err.contains("Run the command again"),
        "{err}"
    );
    assert!(
        !b.join("_tokenledger/journal.json").exists(),
        "the journal was dropped"
    );
    // B's next command works on the bucket's versions again, and its ingest counts once.
    s3.ok(&url, &b, &["ingest", "-q", second.to_str().unwrap()]);
    let want = books_on_disk(&tmp.path().join("local"), &[&sample, &first, &second]);
    let _ = s3.ok(&url, &a, &["rate", "-q"]);
    assert_eq!(s3.sql(&url, &a, BOOKS), want, "A: every input once");
    assert_eq!(s3.sql(&url, &b, BOOKS), want, "B: every input once");
}

#[test]
fn a_killed_run_leaves_each_table_in_the_bucket_before_or_after() {
    let (s3, tmp, exports) = setup(Cloud::S3, "21");
    let sample = fixtures().join("sample");
    for point in ["staged", "committed", "mid-apply", "delta-committed"] {
        let url = s3.url(&format!("kill-{point}"));
        let cache = tmp.path().join(point);
        s3.ok(&url, &cache, &["ingest", "-q", sample.to_str().unwrap()]);
        let before = s3.delta_state(&url);
        let o = s3.tl(
            &url,
            &cache,
            &["ingest", "-q", exports.to_str().unwrap()],
            &[("TOKENLEDGER_CRASH_AT", point)],
        );
        assert!(
            stderr(&o).contains(&format!("simulated crash at {point}")),
            "{point}: {}",
            stderr(&o)
        );
        // What a Delta reader of the bucket sees right after the kill.
        let mid = s3.delta_state(&url);
        s3.ok(&url, &cache, &["ingest", "-q", exports.to_str().unwrap()]);
        let after = s3.delta_state(&url);
        assert_ne!(
            before.get("usage").map(content),
            after.get("usage").map(content),
            "{point}: the ingest changes usage"
        );
        for (name, seen) in &mid {
            let seen = Some(content(seen));
            assert!(
                seen == before.get(name).map(content) || seen == after.get(name).map(content),
                "{point}: {name} as a Delta reader saw it is neither before nor after"
            );
        }
        for (name, t) in &after {
            assert_eq!(
                s3.data_keys(&format!("kill-{point}/{name}")),
                delta_files(t),
                "{point}: {name}: objects = Delta files"
            );
        }
    }
}

#[test]
fn a_lake_on_disk_moves_into_a_bucket_without_being_rewritten() {
    disk_only();
    let s3 = Bucket::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sample = fixtures().join("sample");
    let want = books_on_disk(&data, &[&sample]);
    assert!(want.as_array().is_some_and(|r| !r.is_empty()));
    let files_before = snapshot(&data);
    // The lake's directory becomes the working copy of a bucket lake: its first command
    // commits every table's files in place to the bucket (nothing recomputed).
    let url = s3.url("moved");
    let got = s3.sql(&url, &data, BOOKS);
    assert_eq!(got, want, "the same books through the bucket");
    for (path, hash) in &files_before {
        if path.ends_with(".parquet") {
            assert_eq!(
                snapshot(&data).get(path),
                Some(hash),
                "{path} was not rewritten"
            );
        }
    }
    // Another machine reads the same books from the bucket alone.
    let fresh = tmp.path().join("fresh");
    assert_eq!(s3.sql(&url, &fresh, BOOKS), got);
}
