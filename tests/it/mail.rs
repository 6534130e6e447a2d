//! Mail: the monthly chargeback per team and for finance, through a real SMTP server on
//! loopback (aiosmtpd) or the outbox; exactly once; corrections; rounding that foots.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::*;

const PASSWORD: &str = "s3cret-Pa55word-never-printed";

/// A running aiosmtpd on a free loopback port; killed when dropped.
struct Smtp {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/smtp/SCRIPT ARGS…`, once it has printed `ready`.
fn start_python(script: &str, args: &[String], not_started: &str) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/smtp")
        .join(script);
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "{not_started}");
    child
}

fn smtp(dir: &Path, extra: &[&str]) -> Smtp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = vec![port.to_string(), dir.display().to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let child = start_python(
        "server.py",
        &args,
        "aiosmtpd did not start (install it with `pip install aiosmtpd`)",
    );
    Smtp {
        child,
        port,
        dir: dir.to_path_buf(),
    }
}

impl Smtp {
    /// The messages it accepted, parsed.
    fn received(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files.iter().map(|f| parse_eml(f)).collect()
    }
}

fn outbox_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

const TEAMS: &str = r#"
[[team]]
name = "Search"
cost_center = "CC-100"
recipients = ["search-leads@example.com"]
workspaces = ["wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"]

[[team]]
name = "Support"
cost_center = "CC-200"
recipients = ["support@example.com"]
workspaces = ["Support Bot"]
"#;

/// A lake with the shipped fixtures and a config with two teams and `mail`.
fn setup(dir: &Path, mail: &str) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let cfg = dir.join("tokenledger.toml");
    std::fs::write(&cfg, format!("{mail}\n{TEAMS}")).unwrap();
    let (c, _) = ingest(
        &data,
        &[&fixtures().join("sample"), &fixtures().join("ledger")],
    );
    assert_eq!(c, 0, "the shipped fixtures ingest clean");
    (data, cfg)
}

fn mail(data: &Path, cfg: &Path, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "mail",
        "--month",
        "2026-10",
    ];
    args.extend(extra);
    tl_env(data, &args, env)
}

#[test]
fn outbox_mail_has_every_part_foots_and_is_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cfg) = setup(
        dir.path(),
        "[mail]\nfrom = \"FinOps <finops@example.com>\"\nfinance = [\"finance@example.com\"]\nshared_workspaces = [\"Default\"]",
    );
    let o = mail(&data, &cfg, &["--as-of", "2026-11-20", "--json"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let files = outbox_files(&data.join("outbox/2026-10"));
    assert_eq!(files.len(), 3, "two teams and finance: {files:?}");
    let msgs: Vec<serde_json::Value> = files.iter().map(|f| parse_eml(f)).collect();
    let search = msgs
        .iter()
        .find(|m| m["to"].as_str().unwrap().contains("search-leads"))
        .unwrap();
    // mixed → alternative(text, related(html, png, png)) + csv
    assert_eq!(
        search["structure"],
        serde_json::json!([
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "multipart/related",
            "text/html",
            "image/png",
            "image/png",
            "text/csv"
        ])
    );
    let html = search["html"].as_str().unwrap();
    for id in search["images"].as_array().unwrap() {
        assert!(html.contains(&format!("cid:{}", id.as_str().unwrap())));
    }
    assert!(!html.to_lowercase().contains("<script"));
    // Only the team's own numbers: Support's workspace is not in Search's mail.
    let text = search["text"].as_str().unwrap();
    assert!(
        !text.contains("Support Bot") && !search["csv"].as_str().unwrap().contains("Support Bot")
    );
    // The CSV's exact amounts sum to the exact total; its rounded column foots to the total
    // the text shows, which the subject repeats.
    let csv = search["csv"].as_str().unwrap();
    let mut rdr = csv::Reader::from_reader(csv.as_bytes());
    let (mut exact, mut cents) = (rust_decimal::Decimal::ZERO, rust_decimal::Decimal::ZERO);
    for r in rdr.records() {
        let r = r.unwrap();
        exact += r[7].parse::<rust_decimal::Decimal>().unwrap();
        cents += r[8].parse::<rust_decimal::Decimal>().unwrap();
    }
    let total = format!("${cents}");
    assert!(search["subject"].as_str().unwrap().ends_with(&total));
    assert!(
        text.contains(&format!("Total list cost: {total}")),
        "{text}"
    );
    assert_eq!(
        exact.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        cents,
        "rounded rows foot to the rounded exact total"
    );
    // Every table of the text part ends with the same total.
    assert_eq!(text.matches(&format!("Total: {}", &total[1..])).count(), 3);
    // The finance summary lists both teams and Unallocated, and sums to the org's total.
    let fin = msgs
        .iter()
        .find(|m| m["to"].as_str().unwrap().contains("finance"))
        .unwrap();
    let ft = fin["text"].as_str().unwrap();
    assert!(
        ft.contains("Search (CC-100): ")
            && ft.contains("Support (CC-200): ")
            && ft.contains("Unallocated: ")
    );
    assert!(
        ft.contains(&format!("Search (CC-100): {}", &total[1..])),
        "the same rounded figure in every part:\n{ft}"
    );
    // By hand (fixtures/README.md, "October, charged back"): Search pays its $1.7891225 and
    // 1.7891225/2.7742225 of the shared Default's $0.14589 = $1.88; Support $0.9851 and the
    // rest = $1.04; nothing is unallocated; the summary foots to the org's $2.92.
    assert_eq!(total, "$1.88", "Search's share by hand");
    for line in [
        "Search (CC-100): 1.88",
        "Support (CC-200): 1.04",
        "Unallocated: 0.00",
    ] {
        assert!(ft.contains(line), "{line:?} by hand:\n{ft}");
    }
    assert!(
        ft.contains("Total list cost: $2.92") && ft.contains("  Total: 2.92\n"),
        "the summary's team table foots to the org's $2.92:\n{ft}"
    );
    // Re-running writes nothing new.
    let again = mail(&data, &cfg, &["--as-of", "2026-11-20"], &[]);
    assert_eq!(code(&again), 0);
    assert_eq!(outbox_files(&data.join("outbox/2026-10")), files);
    assert!(
        stderr(&again).matches("skipped").count() == 3,
        "{}",
        stderr(&again)
    );
}

#[test]
fn smtp_with_auth_retries_and_delivers_exactly_once_without_leaking_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = smtp(
        &dir.path().join("received"),
        &["--user", "finops", "--password", PASSWORD, "--fail", "2"],
    );
    let (data, cfg) = setup(
        dir.path(),
        &format!(
            "[mail]\nfrom = \"FinOps <finops@example.com>\"\nfinance = [\"finance@example.com\"]\nattempts = 2\nbackoff_ms = 10\n\
             [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout_secs = 3\nusername = \"finops\"\npassword_env = \"TL_TEST_SMTP_PASSWORD\"\n",
            server.port
        ),
    );
    let env = [("TL_TEST_SMTP_PASSWORD", PASSWORD)];
    // The first message meets two temporary failures: both attempts fail, it stays queued.
    let first = mail(&data, &cfg, &["--as-of", "2026-11-20", "--json"], &env);
    assert_eq!(
        code(&first),
        3,
        "undelivered mail is exit code 3: {}",
        stderr(&first)
    );
    let out: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(out["undelivered"], 1);
    assert_eq!(server.received().len(), 2);
    // The next run delivers it, and only it.
    let second = mail(&data, &cfg, &["--as-of", "2026-11-20"], &env);
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    let got = server.received();
    assert_eq!(got.len(), 3);
    let mut to: Vec<&str> = got.iter().map(|m| m["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "finance@example.com",
            "search-leads@example.com",
            "support@example.com"
        ]
    );
    // A third run sends nothing.
    let third = mail(&data, &cfg, &["--as-of", "2026-11-20"], &env);
    assert_eq!(code(&third), 0);
    assert_eq!(server.received().len(), 3);
    // --resend forces.
    let forced = mail(&data, &cfg, &["--as-of", "2026-11-20", "--resend"], &env);
    assert_eq!(code(&forced), 0);
    assert_eq!(server.received().len(), 6);
    // The password is in no output and no lake file.
    for o in [&first, &second, &third, &forced] {
        assert!(!String::from_utf8_lossy(&o.stdout).contains(PASSWORD));
        assert!(!stderr(o).contains(PASSWORD));
    }
    for f in walk(&data) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "{} holds the password",
            f.display()
        );
    }
    // A wrong password: refused by the server, said without echoing it.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("attempts = 2", "attempts = 1");
    std::fs::write(&cfg, text).unwrap();
    let wrong = "wrong-Pa55-also-secret";
    let w = mail(
        &data,
        &cfg,
        &["--as-of", "2026-11-20", "--resend"],
        &[("TL_TEST_SMTP_PASSWORD", wrong)],
    );
    assert_eq!(code(&w), 3);
    assert!(!stderr(&w).contains(wrong) && !String::from_utf8_lossy(&w.stdout).contains(wrong));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_provisional_month_says_so_then_the_final_follows_then_a_restatement_corrects() {
    let dir = tempfile::tempdir().unwrap();
    let server = smtp(&dir.path().join("received"), &[]);
    let (data, cfg) = setup(
        dir.path(),
        &format!(
            "[mail]\nfrom = \"FinOps <finops@example.com>\"\nbackoff_ms = 10\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
            server.port
        ),
    );
    // 2 November: within the 3 days of grace.
    let o = mail(&data, &cfg, &["--as-of", "2026-11-02"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = server.received();
    assert_eq!(got.len(), 2);
    for m in &got {
        assert!(m["subject"].as_str().unwrap().starts_with("[provisional]"));
        assert!(m["text"].as_str().unwrap().contains("final on 2026-11-04"));
        assert!(m["csv"].as_str().unwrap().contains(",provisional,"));
    }
    // Same day again: nothing. After the close day: the final version, once.
    mail(&data, &cfg, &["--as-of", "2026-11-02"], &[]);
    assert_eq!(server.received().len(), 2);
    let o = mail(&data, &cfg, &["--as-of", "2026-11-04", "--json"], &[]);
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        out["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["kind"] == "final")
    );
    let got = server.received();
    assert_eq!(got.len(), 4);
    assert!(!got[2]["subject"].as_str().unwrap().contains("provisional"));
    // The provider restates Search's usage: a later export of the same buckets with more
    // output tokens. Search gets a correction saying what changed; Support nothing.
    let restated = dir.path().join("restated");
    std::fs::create_dir_all(&restated).unwrap();
    let p1 = std::fs::read_to_string(fixtures().join("sample/usage-2026-10-p1.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&p1).unwrap();
    bump_output_tokens(&mut v, "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ", 10_000_000);
    std::fs::write(
        restated.join("usage-2026-10-p1-restated.json"),
        v.to_string(),
    )
    .unwrap();
    ingest_ok(&data, &[&restated]);
    let o = mail(&data, &cfg, &["--as-of", "2026-11-20", "--json"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = server.received();
    assert_eq!(got.len(), 5, "one correction, to Search only");
    let c = &got[4];
    assert!(c["to"].as_str().unwrap().contains("search-leads"));
    assert!(c["subject"].as_str().unwrap().starts_with("Correction: "));
    // By hand: Search's October is $1.7891225 (fixtures/README.md); 10,000,000 more output
    // tokens of claude-sonnet-4-5 at $15/MTok add $150.00.
    assert!(
        c["text"]
            .as_str()
            .unwrap()
            .contains("changed from $1.79 to $151.79 (+$150.00)"),
        "{}",
        c["text"]
    );
}

#[test]
fn a_final_month_is_corrected_only_when_a_total_moves_by_more_than_a_cent() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cfg) = setup(
        dir.path(),
        "[mail]\nfrom = \"FinOps <finops@example.com>\"\nfinance = [\"finance@example.com\"]",
    );
    let args = ["--as-of", "2026-11-20"];
    let o = mail(&data, &cfg, &args, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let outbox = data.join("outbox/2026-10");
    assert_eq!(outbox_files(&outbox).len(), 3);
    // Restates Oct 1-3 with `extra` more Sonnet 4.5 output tokens in Search ($15/MTok).
    let restate = |extra: u64| {
        let p1 = std::fs::read_to_string(fixtures().join("sample/usage-2026-10-p1.json")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&p1).unwrap();
        bump_output_tokens(&mut v, "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ", extra);
        let d = dir.path().join(format!("restated-{extra}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("usage-2026-10-p1.json"), v.to_string()).unwrap();
        ingest_ok(&data, &[&d]);
    };
    // The bill rounds top down (the org's cents, then the teams' by largest remainder:
    // fixtures/README.md): before, the org's $2.9201125 is 292¢ = Search 179 + Support 98 +
    // Unallocated 15. +700 tokens = $0.0105: Search $1.7996225, the org $2.9306125 = 293¢ =
    // 180 + 98 + 15. One cent each: no correction, nothing written.
    restate(700);
    let o = mail(&data, &cfg, &args, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(outbox_files(&outbox).len(), 3, "{}", stderr(&o));
    // Search's and finance's figures moved by a cent: not mailed again; Support's did not move.
    let said = stderr(&o);
    for (who, why) in [
        (
            "team:Search",
            "the figures have not changed by more than a cent",
        ),
        (
            "finance",
            "the figures have not changed by more than a cent",
        ),
        ("team:Support", "already written"),
    ] {
        assert!(
            said.lines().any(|l| l.contains(who) && l.contains(why)),
            "{who}: {said}"
        );
    }
    // +1300 tokens = $0.0195: Search $1.8086225, the org $2.9396125 = 294¢ = 181 + 98 + 15.
    // Two cents: Search and finance get a correction; Support, unchanged, nothing.
    restate(1300);
    let o = mail(&data, &cfg, &args, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let files = outbox_files(&outbox);
    assert_eq!(files.len(), 5, "{}", stderr(&o));
    let texts: Vec<String> = files
        .iter()
        .map(|f| parse_eml(f)["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("changed from $1.79 to $1.81 (+$0.02)")),
        "Search's correction by hand"
    );
    let finance: Vec<serde_json::Value> = files
        .iter()
        .map(|f| parse_eml(f))
        .filter(|m| m["to"].as_str().unwrap().contains("finance"))
        .collect();
    assert_eq!(finance.len(), 2, "the original and its correction");
    assert!(
        finance.iter().any(|m| {
            m["subject"].as_str().unwrap().starts_with("Correction: ")
                && m["text"]
                    .as_str()
                    .unwrap()
                    .contains("changed from $2.92 to $2.94 (+$0.02)")
        }),
        "finance's correction says what changed, by hand: {finance:?}"
    );
    assert!(
        stderr(&o)
            .lines()
            .any(|l| l.contains("correction") && l.contains("finance@example.com")),
        "sent to finance as a correction: {}",
        stderr(&o)
    );
}

/// Adds `extra` output tokens to the first result of workspace `ws` in an Admin API page.
fn bump_output_tokens(v: &mut serde_json::Value, ws: &str, extra: u64) {
    for bucket in v["data"].as_array_mut().unwrap() {
        for r in bucket["results"].as_array_mut().unwrap() {
            if r["workspace_id"] == ws {
                let n = r["output_tokens"].as_u64().unwrap();
                r["output_tokens"] = (n + extra).into();
                return;
            }
        }
    }
    panic!("no result of {ws} in the fixture");
}

#[test]
fn plain_smtp_to_a_remote_host_is_refused_and_html_report_is_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cfg) = setup(
        dir.path(),
        "[mail]\nfinance = [\"finance@example.com\"]\n[mail.smtp]\nhost = \"smtp.example.com\"\ntls = \"none\"\nusername = \"u\"\npassword_env = \"NOPE\"\n",
    );
    let o = mail(&data, &cfg, &[], &[]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));
    // The HTML report needs no server: one page, charts embedded, no script, every team.
    let page = dir.path().join("october.html");
    let o = tl(
        &data,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "report",
            "--month",
            "2026-10",
            "--format",
            "html",
            "--out",
            page.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("data:image/png;base64,"));
    assert!(!html.contains("cid:") && !html.to_lowercase().contains("<script"));
    for t in ["Search", "Support", "Unallocated", "finance summary"] {
        assert!(html.contains(t), "{t} missing");
    }
}

#[test]
fn templates_can_be_edited_without_recompiling() {
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("templates");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(
        tpl.join("team.txt"),
        "CUSTOM {{ team.name }} owes {{ team.total }} for {{ month }}\n",
    )
    .unwrap();
    let (data, cfg) = setup(dir.path(), "[mail]\ntemplates = \"templates\"\n");
    let o = mail(&data, &cfg, &["--dry-run"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let files = outbox_files(&data.join("outbox/dry-run/2026-10"));
    assert_eq!(
        files.len(),
        3,
        "two teams, and finance@localhost (no SMTP, no finance named)"
    );
    let search = files
        .iter()
        .find(|f| f.to_string_lossy().contains("team-search"))
        .unwrap();
    let m = parse_eml(search);
    assert!(
        m["text"]
            .as_str()
            .unwrap()
            .starts_with("CUSTOM Search owes ")
    );
    // A dry run records nothing: the real run still sends everything.
    assert!(!data.join("mail_log").exists());
}

/// An SMTP server on loopback that requires AUTH as finops and speaks TLS with the test CA's
/// leaf: `--tls` (STARTTLS required) or `--implicit-tls`.
fn tls_smtp(dir: &Path, mode: &str, (cert, key): (&Path, &Path)) -> Smtp {
    smtp(
        &dir.join("received"),
        &[
            mode,
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--user",
            "finops",
            "--password",
            PASSWORD,
        ],
    )
}

/// A test CA and a `localhost` leaf it signs (rustls refuses a self-signed CA as end entity).
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tokenledger test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

#[test]
fn starttls_is_required_and_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let server = tls_smtp(dir.path(), "--tls", (&cert, &key));
    let smtp_cfg = |ca_line: &str| {
        format!(
            "[mail]\nfinance = [\"finance@example.com\"]\nattempts = 1\n[mail.smtp]\nhost = \"localhost\"\nport = {}\ntls = \"starttls\"\ntimeout_secs = 5\nusername = \"finops\"\npassword_file = \"smtp-password\"\n{ca_line}\n",
            server.port
        )
    };
    std::fs::write(dir.path().join("smtp-password"), format!("{PASSWORD}\n")).unwrap();
    let (data, cfg) = setup(
        dir.path(),
        &smtp_cfg(&format!("ca_file = {:?}", ca.to_str().unwrap())),
    );
    let o = mail(&data, &cfg, &["--as-of", "2026-11-20"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(server.received().len(), 3);
    // Without the CA the server's certificate is not trusted: nothing is sent in clear, the
    // message stays queued.
    std::fs::write(&cfg, format!("{}\n{TEAMS}", smtp_cfg(""))).unwrap();
    let o = mail(&data, &cfg, &["--as-of", "2026-11-20", "--resend"], &[]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(server.received().len(), 3);
    assert!(!stderr(&o).contains(PASSWORD));
}

#[test]
fn implicit_tls_delivers_when_the_certificate_is_trusted_and_never_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let server = tls_smtp(dir.path(), "--implicit-tls", (&cert, &key));
    let cfg_for = |port: u16, ca_line: &str| {
        format!(
            "[mail]\nfinance = [\"finance@example.com\"]\nattempts = 1\n[mail.smtp]\nhost = \"localhost\"\nport = {port}\ntls = \"implicit\"\ntimeout_secs = 5\nusername = \"finops\"\npassword_file = \"smtp-password\"\n{ca_line}\n"
        )
    };
    std::fs::write(dir.path().join("smtp-password"), format!("{PASSWORD}\n")).unwrap();
    let ca_line = format!("ca_file = {:?}", ca.to_str().unwrap());
    let (data, cfg) = setup(dir.path(), &cfg_for(server.port, &ca_line));
    let o = mail(&data, &cfg, &["--as-of", "2026-11-20"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        server.received().len(),
        3,
        "two teams and finance, over TLS"
    );
    // Not trusted without the CA: nothing sent, queued.
    std::fs::write(&cfg, format!("{}\n{TEAMS}", cfg_for(server.port, ""))).unwrap();
    let o = mail(&data, &cfg, &["--as-of", "2026-11-20", "--resend"], &[]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(server.received().len(), 3);
    // A peer that speaks plain SMTP gets no byte of the conversation in clear.
    let plain = downgrade_peer(&dir.path().join("plain.bytes"), &["plain"]);
    std::fs::write(&cfg, format!("{}\n{TEAMS}", cfg_for(plain.port, &ca_line))).unwrap();
    let o = mail(&data, &cfg, &["--as-of", "2026-11-20", "--resend"], &[]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let sent = std::fs::read(&plain.record).unwrap_or_default();
    let text = String::from_utf8_lossy(&sent).to_uppercase();
    assert!(
        !text.contains("EHLO")
            && !text.contains("AUTH")
            && !text.contains(&PASSWORD.to_uppercase()),
        "implicit TLS never speaks SMTP in clear: {text:?}"
    );
    assert!(!stderr(&o).contains(PASSWORD));
}

/// A peer that never offers STARTTLS (`tests/smtp/downgrade.py`): a plain server, or a man in
/// the middle stripping it from a real server's EHLO; it records every byte the client sent.
struct Peer {
    child: Child,
    port: u16,
    record: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn downgrade_peer(record: &Path, mode: &[&str]) -> Peer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = vec![port.to_string(), record.display().to_string()];
    args.extend(mode.iter().map(|a| a.to_string()));
    let child = start_python("downgrade.py", &args, "downgrade.py did not start");
    Peer {
        child,
        port,
        record: record.to_path_buf(),
    }
}

#[test]
fn starttls_is_never_opportunistic_no_password_crosses_a_server_without_it_or_a_stripped_ehlo() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let upstream = tls_smtp(dir.path(), "--tls", (&cert, &key));
    let up = upstream.port.to_string();
    let plain = downgrade_peer(&dir.path().join("plain.bytes"), &["plain"]);
    let strip = downgrade_peer(&dir.path().join("strip.bytes"), &["strip", &up]);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secrets = [
        PASSWORD.to_string(),
        b64(PASSWORD),
        b64(&format!("\0finops\0{PASSWORD}")),
    ];
    for (what, peer) in [
        ("no STARTTLS offered", &plain),
        ("STARTTLS stripped", &strip),
    ] {
        let sub = dir.path().join(what.replace(' ', "-"));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("smtp-password"), format!("{PASSWORD}\n")).unwrap();
        let (data, cfg) = setup(
            &sub,
            &format!(
                "[mail]\nfinance = [\"finance@example.com\"]\nattempts = 1\n[mail.smtp]\nhost = \"localhost\"\nport = {}\ntls = \"starttls\"\ntimeout_secs = 5\nusername = \"finops\"\npassword_file = \"smtp-password\"\nca_file = {:?}\n",
                peer.port,
                ca.to_str().unwrap()
            ),
        );
        let o = mail(&data, &cfg, &["--as-of", "2026-11-20"], &[]);
        assert_eq!(
            code(&o),
            3,
            "{what}: nothing is sent, the mail stays queued: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains(PASSWORD));
        let sent =
            String::from_utf8_lossy(&std::fs::read(&peer.record).unwrap_or_default()).to_string();
        assert!(
            sent.to_uppercase().contains("EHLO"),
            "{what}: the client did reach the peer: {sent:?}"
        );
        for verb in ["AUTH", "MAIL FROM", "RCPT TO", "DATA"] {
            assert!(
                !sent.to_uppercase().contains(verb),
                "{what}: {verb} crossed the wire in clear: {sent:?}"
            );
        }
        for s in &secrets {
            assert!(
                !sent.contains(s.as_str()),
                "{what}: the password crossed the wire"
            );
        }
    }
    assert!(
        upstream.received().is_empty(),
        "nothing reached the real server"
    );
}

#[test]
fn the_nightly_run_mails_the_closed_month_and_each_alert_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = smtp(&dir.path().join("received"), &[]);
    let (data, cfg) = setup(
        dir.path(),
        &format!(
            "[mail]\nfrom = \"FinOps <finops@example.com>\"\nfinance = [\"finance@example.com\"]\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
            server.port
        ),
    );
    let run = || {
        tl(
            &data,
            &[
                "--config",
                cfg.to_str().unwrap(),
                "run",
                "--as-of",
                "2026-11-20",
                "--json",
                "--inputs",
                fixtures().join("sample").to_str().unwrap(),
                fixtures().join("ledger").to_str().unwrap(),
            ],
        )
    };
    let o = run();
    assert_eq!(code(&o), 3, "credit findings: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 3);
    for stage in [
        "ingest",
        "rate",
        "months",
        "credits",
        "anomalies",
        "chargeback",
        "alerts",
        "reviews",
    ] {
        assert!(!v[stage].is_null(), "--json has {stage}");
    }
    assert_eq!(v["chargeback"]["month"], "2026-10");
    let got = server.received();
    let subjects: Vec<&str> = got.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(
        got.len(),
        4,
        "two teams, finance, one alert digest: {subjects:?}"
    );
    let digest = got
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains("new alert"))
        .expect("an alert digest");
    assert!(digest["text"].as_str().unwrap().contains("[credits]"));
    // The run hands the month close what it already computed (tie-out, credit findings,
    // anomalies); `tokenledger mail` computes them itself: the finance mail is the same.
    let finance = |m: &&serde_json::Value| m["to"].as_str().unwrap().contains("finance@");
    let from_run = got.iter().find(finance).expect("the finance mail");
    let o = mail(
        &data,
        &cfg,
        &["--dry-run", "--resend", "--as-of", "2026-11-20"],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let alone: Vec<serde_json::Value> = outbox_files(&data.join("outbox/dry-run/2026-10"))
        .iter()
        .map(|f| parse_eml(f))
        .collect();
    let alone = alone
        .iter()
        .find(finance)
        .expect("the finance mail, dry run");
    assert!(
        from_run["text"].as_str().unwrap().contains("Tie-out"),
        "{}",
        from_run["text"]
    );
    assert_eq!(from_run["text"], alone["text"]);
    assert_eq!(from_run["csv"], alone["csv"]);
    // The next night: nothing new is mailed, and the exit code says nothing is new.
    let o = run();
    assert_eq!(code(&o), 4);
    assert_eq!(server.received().len(), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("alerts: nothing new to mail"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_demo_runs_the_whole_job_writes_mail_and_html_and_changes_nothing_when_rerun() {
    // The README's first command, literally, in a directory with no config (a fresh clone).
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("tokenledger-demo");
    let args = readme_demo_args();
    let o = binary()
        .args(&args)
        .current_dir(dir.path())
        .env_remove("TOKENLEDGER_CONFIG")
        .env_remove("TOKENLEDGER_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("Try next:") && err.contains("month close 2026-10 (final)"),
        "{err}"
    );
    let outbox = demo.join("data/outbox/2026-10");
    let files = outbox_files(&outbox);
    assert_eq!(files.len(), 5, "four teams and finance: {files:?}");
    let digest = outbox_files(&demo.join("data/outbox/alerts-2026-11-04"));
    assert_eq!(digest.len(), 1);
    let d = parse_eml(&digest[0]);
    assert!(
        d["text"]
            .as_str()
            .unwrap()
            .contains("[incident] key leaked-key: new key"),
        "injected anomalies alert, one incident per cause"
    );
    let html = std::fs::read_to_string(demo.join("chargeback-2026-10.html")).unwrap();
    assert!(html.contains("data:image/png;base64,") && html.contains("Growth"));
    // Again: the same files, nothing mailed twice.
    let o = binary()
        .args(&args)
        .current_dir(dir.path())
        .env_remove("TOKENLEDGER_CONFIG")
        .env_remove("TOKENLEDGER_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(outbox_files(&outbox), files);
    assert!(stderr(&o).contains("5 already delivered"), "{}", stderr(&o));
    // Human output fits a 100-column terminal (COLUMNS unset), money to the cent in tables.
    let cfg = demo.join("tokenledger.toml");
    for args in [
        &[
            "report",
            "--month",
            "2026-10",
            "--by",
            "team,workspace,model,api-key",
        ][..],
        &["reconcile", "--month", "2026-10"],
        &["reconcile", "--month", "2026-10", "--tie-out"],
        &["credits", "--as-of", "2026-11-04"],
        &["anomalies"],
        &["limits"],
        &["usage"],
        &["prices"],
        &["sql", "--tables"],
    ] {
        let o = binary()
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env_remove("COLUMNS")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(!text.is_empty(), "{args:?}: {}", stderr(&o));
        let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(widest <= 100, "{args:?} is {widest} columns wide:\n{text}");
        assert!(
            !text.contains(".000000000000"),
            "{args:?}: a table shows cents:\n{text}"
        );
    }
}

/// What a nightly run leaves that must not depend on where an earlier run was killed: the
/// sent-ledger and alert-ledger rows (without their timestamps and attempt counts), and the
/// rated usage.
fn run_state(data: &Path) -> Vec<String> {
    let q = [
        "SELECT month, report, recipient, content_hash, kind, close, status FROM mail_log ORDER BY month, report, recipient, content_hash",
        "SELECT alert_key, recipient FROM alert_log ORDER BY alert_key, recipient",
        "SELECT COUNT(*) AS n, SUM(list_cost) AS cost FROM rated_usage",
        "SELECT COUNT(*) AS n FROM usage",
    ];
    q.iter()
        .map(|q| serde_json::to_string(&sql(data, q)).unwrap())
        .collect()
}

#[test]
fn a_nightly_run_killed_anywhere_then_rerun_ends_in_the_same_lake_and_the_same_mail() {
    let dir = tempfile::tempdir().unwrap();
    let exports = synth(
        dir.path(),
        &[
            "--width", "1d", "--months", "3", "--start", "2026-08", "--seed", "31",
        ],
    );
    let ledger = fixtures().join("ledger");
    let nightly = |name: &str, crash: Option<&str>| {
        let received = dir.path().join(format!("received-{name}"));
        let server = smtp(&received, &[]);
        let data = dir.path().join(format!("data-{name}"));
        let cfg = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[mail]\nfrom = \"FinOps <finops@example.com>\"\nfinance = [\"finance@example.com\"]\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n{TEAMS}",
                server.port
            ),
        )
        .unwrap();
        let args = [
            "--config",
            cfg.to_str().unwrap(),
            "-q",
            "run",
            "--as-of",
            "2026-11-20",
            "--inputs",
            exports.to_str().unwrap(),
            ledger.to_str().unwrap(),
        ];
        if let Some(point) = crash {
            let o = tl_env(&data, &args, &[("TOKENLEDGER_CRASH_AT", point)]);
            assert!(
                !o.status.success() && stderr(&o).contains(&format!("simulated crash at {point}")),
                "{point}: the run was not killed there: {}",
                stderr(&o)
            );
        }
        let o = tl_env(&data, &args, &[]);
        assert_eq!(code(&o), 3, "{name}: credit findings only: {}", stderr(&o));
        // Re-running changes and sends nothing (the findings stand: exit 4).
        let before = server.received().len();
        assert_eq!(code(&tl_env(&data, &args, &[])), 4);
        assert_eq!(
            server.received().len(),
            before,
            "{name}: a second run mailed again"
        );
        let ids: Vec<String> = server
            .received()
            .iter()
            .map(|m| m["message_id"].as_str().unwrap().to_string())
            .collect();
        (run_state(&data), ids)
    };
    let (clean, clean_ids) = nightly("clean", None);
    let distinct = |ids: &[String]| {
        ids.iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(
        clean_ids.len() >= 4,
        "teams, finance and the digest: {clean_ids:?}"
    );
    assert_eq!(distinct(&clean_ids).len(), clean_ids.len());
    for point in [
        "staged",
        "mid-stage",
        "committed",
        "mid-apply",
        "rate-staged",
        "mail-delivered",
        "mail-recorded",
        "alert-delivered",
    ] {
        let (state, ids) = nightly(point, Some(point));
        assert_eq!(state, clean, "killed at {point}, then re-run: another lake");
        assert_eq!(
            distinct(&ids),
            distinct(&clean_ids),
            "killed at {point}: other mail"
        );
        // Killed between the SMTP server's 250 and the ledger row, that one message goes
        // again, with the same Message-ID; everywhere else, each message goes exactly once.
        let again = if point.ends_with("-delivered") { 1 } else { 0 };
        assert_eq!(
            ids.len(),
            clean_ids.len() + again,
            "killed at {point}: {ids:?}"
        );
    }
}
