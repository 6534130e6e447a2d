//! Settings are resolved once, before any work: a config that cannot work is a usage error
//! (exit 2) before the lake is touched, and errors say each cause once.

use crate::common::*;

/// A config whose `run` ingests the sample exports into `data`, plus `extra` lines.
fn config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("tokenledger.toml");
    let body = format!(
        "data_dir = \"data\"\ninputs = [{:?}]\n{extra}\n",
        fixtures().join("sample").display().to_string()
    );
    std::fs::write(&cfg, body).unwrap();
    cfg
}

/// Runs `tokenledger run` with `cfg` and checks it refused before ingesting anything.
fn refused_before_ingest(dir: &std::path::Path, cfg: &std::path::Path) -> String {
    let data = dir.join("data");
    let o = binary()
        .args(["--config", cfg.to_str().unwrap(), "run", "-q"])
        .env_remove("TOKENLEDGER_DATA_DIR")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(
        code(&o),
        2,
        "a config that cannot work is a usage error: {err}"
    );
    for table in ["usage", "cost", "ingest_log", "workspaces"] {
        assert!(
            !data.join(table).exists(),
            "{table} was written before the config error was found: {err}"
        );
    }
    err
}

#[test]
fn a_broken_price_file_fails_run_with_exit_2_before_anything_is_ingested() {
    let tmp = tempfile::tempdir().unwrap();
    let prices = tmp.path().join("prices.toml");
    std::fs::write(
        &prices,
        "[[prices.model]]\nmodels = [\"claude-sonnet-4-5\"]\ninput = 3.3\n",
    )
    .unwrap();
    let cfg = config(tmp.path(), "price_file = \"prices.toml\"");
    let err = refused_before_ingest(tmp.path(), &cfg);
    assert!(err.contains("prices.toml"), "names the price file: {err}");
    // The sanity of the fixture: the same config without the broken file runs.
    let good = config(tmp.path(), "");
    let o = binary()
        .args(["--config", good.to_str().unwrap(), "run", "-q"])
        .output()
        .unwrap();
    assert!(
        [0, 3].contains(&code(&o)),
        "the config without the price file runs: {}",
        stderr(&o)
    );
    assert!(tmp.path().join("data/usage").exists());
}

#[test]
fn a_missing_template_dir_fails_run_with_exit_2_before_anything_is_ingested() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "[mail]\ntemplates = \"no-such-templates\"");
    let err = refused_before_ingest(tmp.path(), &cfg);
    assert!(
        err.contains("no-such-templates"),
        "names the directory: {err}"
    );
}

#[test]
fn a_bad_mail_address_fails_run_with_exit_2_before_anything_is_ingested() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "[mail]\nfinance = [\"not an address\"]");
    let err = refused_before_ingest(tmp.path(), &cfg);
    assert!(err.contains("not an address"), "quotes the value: {err}");
}

/// No segment of a `{:#}` chain repeats the one before it: each layer names what it knows
/// and leaves its cause to `source()`.
fn assert_each_cause_once(text: &str) {
    let segments: Vec<&str> = text.split(": ").map(str::trim).collect();
    for w in segments.windows(2) {
        assert!(
            !w[0].ends_with(w[1]) && !w[0].contains(w[1]),
            "the cause {:?} is said twice in {text:?}",
            w[1]
        );
    }
    let os = segments.iter().filter(|s| s.contains("os error")).count();
    assert!(os <= 1, "the OS error is said {os} times in {text:?}");
}

#[test]
fn a_chained_error_says_each_cause_once() {
    // A lake read that fails on the OS: the lake's message names the file, the OS error is
    // the source.
    let tmp = tempfile::tempdir().unwrap();
    let dir_as_file = tmp.path().join("part-0.parquet");
    std::fs::create_dir(&dir_as_file).unwrap();
    let e = tokenledger::lake::io::read_all(&dir_as_file).unwrap_err();
    let text = format!(
        "{:#}",
        anyhow::Error::new(e).context("reading the lake failed")
    );
    assert!(text.contains("part-0.parquet"), "{text}");
    assert_each_cause_once(&text);
    assert_each_cause_once(&tokenledger::errors::chain(
        &tokenledger::lake::io::read_all(&dir_as_file).unwrap_err(),
    ));
    // The same through the command line: a data dir that is a file.
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let o = tl(
        &file,
        &["ingest", &fixtures().join("sample").display().to_string()],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_each_cause_once(stderr(&o).lines().next().unwrap_or_default());
    // A config that is not TOML: the file once, the parser's words once.
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "data_dir = [").unwrap();
    let o = tl(&file, &["--config", cfg.to_str().unwrap(), "prices"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(err.contains("bad.toml"), "{err}");
    assert_each_cause_once(err.lines().next().unwrap_or_default());
}
