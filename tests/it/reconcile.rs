//! `tokenledger reconcile`: every difference explained or listed.

use crate::common::*;

fn reconcile(data: &std::path::Path) -> (i32, serde_json::Value) {
    let o = tl(
        data,
        &["reconcile", "--month", "2026-10", "--format", "json"],
    );
    (
        code(&o),
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o))),
    )
}

#[test]
fn the_sample_month_is_fully_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let (c, r) = reconcile(&data);
    assert_eq!(c, 0, "{r:#}");
    assert_eq!(r["lines_unexplained"], 0);
    let lines = r["lines"].as_array().unwrap();
    let cause = |charge: &str| {
        lines
            .iter()
            .find(|l| l["charge"] == charge)
            .map(|l| l["cause"].as_str().unwrap().to_string())
    };
    let code_exec = cause("code_execution").unwrap();
    assert!(code_exec.contains("only in the cost report"), "{code_exec}");
    // 12.5 cents at the book's $0.05 per container-hour (code_execution_hour) is 2.5 hours.
    assert!(
        code_exec.contains("2.5 container-hour(s) billed at $0.05/h"),
        "{code_exec}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["cause"].as_str().unwrap().contains("priority tier"))
            .count()
            >= 2
    );
    assert!(r["lines_matched"].as_u64().unwrap() >= 20);
    assert_eq!(r["provider_usd"], "2.195012500000");
    assert_eq!(r["ours_usd"], "2.920112500000");
}

#[test]
fn an_extra_charge_is_listed_as_unexplained_and_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    ingest_ok(&data, &[&fixtures().join("reconcile")]);
    let (c, r) = reconcile(&data);
    assert_eq!(c, 3);
    let bad: Vec<_> = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["status"] == "unexplained")
        .collect();
    assert_eq!(bad.len(), 1, "{r:#}");
    let l = bad[0];
    assert_eq!(l["day"], "2026-10-04");
    assert_eq!(l["workspace_name"], "Search");
    assert_eq!(l["model"], "claude-opus-4-5");
    assert_eq!(l["difference_usd"], "-2.500000000000");
    let search = r["per_workspace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workspace_name"] == "Search")
        .unwrap();
    assert_eq!(search["unexplained_usd"], "-2.500000000000");
    // The nightly job says so too, quietly, through its exit code.
    let o = tl(
        &data,
        &[
            "-q",
            "run",
            "--inputs",
            fixtures().join("sample").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 3);
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "quiet under cron"
    );
    // The table says the same for people.
    let o = tl(&data, &["reconcile", "--month", "2026-10"]);
    assert_eq!(code(&o), 3);
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 unexplained"));
}

#[test]
fn days_missing_on_either_side_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Usage for Oct 1-5, but only the restated Oct 4 cost page: the other days have no cost report.
    ingest_ok(
        &data,
        &[
            &fixtures().join("sample/usage-2026-10-p1.json"),
            &fixtures().join("sample/usage-2026-10-p2.json"),
            &fixtures().join("reconcile"),
        ],
    );
    let (_, r) = reconcile(&data);
    let lines = r["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["day"] == "2026-10-01"
            && l["cause"]
                .as_str()
                .unwrap()
                .contains("no cost report for this day")),
        "{r:#}"
    );
}

#[test]
fn a_synthetic_month_reconciles_with_its_own_cost_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exports = synth(
        tmp.path(),
        &["--width", "1h", "--seed", "31", "--rows-per-bucket", "12"],
    );
    assert!(exports.join("cost/cost-2026-10.json").exists());
    let (c, _) = ingest(&data, &[&exports]);
    assert_eq!(c, 0);
    let (c, r) = reconcile(&data);
    assert_eq!(c, 0, "{:#}", r["lines"]);
    assert_eq!(r["lines_unexplained"], 0);
    assert!(
        r["lines_matched"].as_u64().unwrap() > 300,
        "{}",
        r["lines_matched"]
    );
    let causes: std::collections::BTreeSet<String> = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["cause"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        causes.contains("priority tier") && causes.contains("only in the cost report"),
        "{causes:?}"
    );
}

#[test]
fn every_tolerance_holds_at_its_edge() {
    // --tolerance: the extra charge's line differs by exactly $2.50; a tolerance of $2.50
    // matches it (|difference| ≤ tolerance), one unit of the lake's scale less does not.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    ingest_ok(&data, &[&fixtures().join("reconcile")]);
    let with = |tolerance: &str| {
        let o = tl(
            &data,
            &[
                "reconcile",
                "--month",
                "2026-10",
                "--format",
                "json",
                "--tolerance",
                tolerance,
            ],
        );
        let r: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
        (code(&o), r)
    };
    let (c, r) = with("2.5");
    assert_eq!(r["lines_unexplained"], 0, "{r:#}");
    assert_eq!(c, 0, "{r:#}");
    let (c, r) = with("2.499999999999");
    assert_eq!(r["lines_unexplained"], 1, "{r:#}");
    assert_eq!(c, 3);

    // The invoice tie-out: the invoice's charges may differ from the cost report by up to half
    // a cent per invoice line (3 lines: $0.015). The sample's charges are 220¢ against the
    // cost report's $2.1950125 (fixtures/README.md): 1¢ more on a line is $0.0149875 off,
    // within; 2¢ more is $0.0249875, beyond.
    let base = std::fs::read_to_string(fixtures().join("ledger/invoice-2026-10.json")).unwrap();
    for (extra, needs_review) in [(1, false), (2, true)] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let n = |v: i64| (v + extra).to_string();
        let invoice = base
            .replace("\"amount\": 207,", &format!("\"amount\": {},", n(207)))
            .replace("\"subtotal\": 170,", &format!("\"subtotal\": {},", n(170)))
            .replace(
                "\"subtotal_excluding_tax\": 170,",
                &format!("\"subtotal_excluding_tax\": {},", n(170)),
            )
            .replace("\"total\": 165,", &format!("\"total\": {},", n(165)))
            .replace(
                "\"total_excluding_tax\": 153,",
                &format!("\"total_excluding_tax\": {},", n(153)),
            )
            .replace(
                "\"amount_due\": 65,",
                &format!("\"amount_due\": {},", n(65)),
            )
            .replace(
                "\"amount_paid\": 65,",
                &format!("\"amount_paid\": {},", n(65)),
            );
        let dir = tmp.path().join("in");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("invoice.json"), invoice).unwrap();
        ingest_ok(&data, &[&fixtures().join("sample"), &dir]);
        let (_, r) = reconcile(&data);
        let t = &r["tie_outs"][0];
        assert_eq!(t["needs_review"], needs_review, "{extra}¢ more: {t:#}");
        let off = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| {
                row["step"]
                    .as_str()
                    .unwrap()
                    .starts_with("+ unexplained: cost report vs")
            })
            .unwrap_or_else(|| panic!("{t:#}"));
        let want = if extra == 1 {
            "0.014987500000"
        } else {
            "0.024987500000"
        };
        assert_eq!(off["amount_usd"], want, "{t:#}");
    }
}

/// A directory with the sample's usage and lists, and the given cost page instead of its own.
fn sample_with_cost(dir: &std::path::Path, cost: &std::path::Path) -> std::path::PathBuf {
    let d = dir.join("exports");
    std::fs::create_dir_all(&d).unwrap();
    for e in std::fs::read_dir(fixtures().join("sample")).unwrap() {
        let p = e.unwrap().path();
        if !p.file_name().unwrap().to_string_lossy().starts_with("cost") {
            std::fs::copy(&p, d.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(cost, d.join(cost.file_name().unwrap())).unwrap();
    d
}

/// The cost report at the API's default grouping (none) or grouped by `workspace_id` alone
/// (fixtures/formats: the sample's own cost report summed per day, and per day × workspace):
/// it loads at that grain, reconciles day by day (× workspace) with the same totals as the
/// report grouped by charge, says finer causes need `group_by[]=description`, and a finer
/// export of the same days replaces it — never both counted.
#[test]
fn a_cost_report_not_grouped_by_description_reconciles_at_its_grain() {
    let formats = fixtures().join("formats");
    for (file, by_workspace) in [
        ("cost-2026-10-by-workspace.json", true),
        ("cost-2026-10-ungrouped.json", false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let exports = sample_with_cost(tmp.path(), &formats.join(file));
        ingest_ok(&data, &[&exports]);
        let (c, r) = reconcile(&data);
        // The same money as the report grouped by charge, on both sides.
        assert_eq!(r["provider_usd"], "2.195012500000", "{file}");
        assert_eq!(r["ours_usd"], "2.920112500000", "{file}");
        assert_eq!(
            c, 3,
            "{file}: code execution and priority tier cannot be told apart"
        );
        let grain = if by_workspace {
            "day × workspace"
        } else {
            "day"
        };
        assert_eq!(r["coarse_days"]["anthropic"]["2026-10-01"], grain, "{file}");
        let o = tl(&data, &["reconcile", "--month", "2026-10"]);
        let text = String::from_utf8_lossy(&o.stdout).replace("\n  ", " ");
        assert!(
            text.contains(&format!(
                "is not grouped by description: compared per {grain} "
            )),
            "{text}"
        );
        let lines = r["lines"].as_array().unwrap();
        assert!(!lines.is_empty());
        for l in lines {
            assert_eq!(l["charge"], "all charges", "{file}: {l}");
            assert!(l["model"].is_null(), "{l}");
            if l["status"] == "unexplained" {
                assert!(
                    l["cause"]
                        .as_str()
                        .unwrap()
                        .contains("group_by[]=description"),
                    "{l}"
                );
            }
        }
        let named: Vec<&str> = lines
            .iter()
            .filter_map(|l| l["workspace_name"].as_str())
            .collect();
        if by_workspace {
            assert!(named.iter().all(|n| *n != "(all workspaces)"), "{named:?}");
        } else {
            assert!(named.iter().all(|n| *n == "(all workspaces)"), "{named:?}");
            assert!(lines.iter().all(|l| l["workspace_id"].is_null()));
        }
        // The finer export of the same days restates them: the coarse rows are gone.
        ingest_ok(
            &data,
            &[&fixtures().join("sample").join("cost-2026-10.json")],
        );
        let (c, r) = reconcile(&data);
        assert_eq!(c, 0, "{file}: {r:#}");
        assert_eq!(r["provider_usd"], "2.195012500000");
        assert!(
            r["lines"]
                .as_array()
                .unwrap()
                .iter()
                .all(|l| l["charge"] != "all charges"),
            "{r:#}"
        );
        let rows = sql(
            &data,
            "SELECT COUNT(*) AS n FROM cost WHERE cost_type IS NULL",
        );
        assert_eq!(rows[0]["n"], 0, "{file}");
    }
}

/// A whole Analytics cost query (fixtures/formats: the sample's cost report as the Analytics
/// API returns it, spend-ordered over two pages, in the query envelope) is a provider-side
/// figure like the cost report: the same reconciliation, `list_amount` kept; both exports of
/// the same days are never counted twice; a page without its query, an incomplete or filtered
/// query, or one grouped by a dimension the cost table lacks is refused whole, with the reason.
#[test]
fn an_analytics_cost_query_reconciles_like_the_cost_report_and_is_refused_when_partial() {
    let formats = fixtures().join("formats");
    let query = formats.join("analytics-cost-2026-10-query.json");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exports = sample_with_cost(tmp.path(), &query);
    ingest_ok(&data, &[&exports]);
    let (c, r) = reconcile(&data);
    assert_eq!(c, 0, "{r:#}");
    assert_eq!(r["provider_usd"], "2.195012500000");
    assert_eq!(r["ours_usd"], "2.920112500000");
    assert_eq!(r["lines_unexplained"], 0);
    let rows = sql(
        &data,
        "SELECT CAST(SUM(list_amount) AS VARCHAR) AS l, COUNT(*) AS n, MIN(source_format) AS f FROM cost",
    );
    assert_eq!(rows[0]["l"], "2.195012500000", "{rows:?}");
    assert_eq!(rows[0]["f"], "anthropic-analytics-cost");
    // The legacy cost report of the same days too: one of them owns each day, never both.
    ingest_ok(
        &data,
        &[&fixtures().join("sample").join("cost-2026-10.json")],
    );
    let (c, r) = reconcile(&data);
    assert_eq!((c, r["provider_usd"].as_str()), (0, Some("2.195012500000")));
    ingest_ok(&data, &[&query]); // again: a known file, nothing changes
    assert_eq!(reconcile(&data).1["provider_usd"], "2.195012500000");

    // Refused whole, with the reason.
    let text = std::fs::read_to_string(&query).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let variant = |name: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = v.clone();
        f(&mut v);
        let p = tmp.path().join(name);
        std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        p
    };
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (
            variant("incomplete.json", &|v| {
                v["pages"].as_array_mut().unwrap().pop();
            }),
            "an incomplete Analytics query",
        ),
        (
            variant("filtered.json", &|v| {
                v["tokenledger_query"]["filters"] =
                    serde_json::json!({"workspace_ids": ["wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"]});
            }),
            "a filtered Analytics query (workspace_ids)",
        ),
        (
            variant("by-product.json", &|v| {
                v["tokenledger_query"]["group_by"]
                    .as_array_mut()
                    .unwrap()
                    .push("product".into());
            }),
            "grouped by \"product\"",
        ),
        (
            variant("page.json", &|v| *v = v["pages"][1].clone()),
            "without its query",
        ),
    ];
    for (file, reason) in cases {
        let data = tmp
            .path()
            .join(format!("d-{}", file.file_stem().unwrap().to_string_lossy()));
        let (c, s) = ingest(&data, &[&file]);
        assert_eq!(c, 3, "{reason}: {s:#}");
        let why = s["files"][0]["error"].as_str().unwrap_or_default();
        assert!(why.contains(reason), "{reason}: {s:#}");
    }
    // A row whose amount is a JSON number is quarantined, the rest loads.
    let p = variant("number.json", &|v| {
        v["pages"][0]["data"][0]["cost"]["amount"] = serde_json::json!(12.5);
    });
    let d2 = tmp.path().join("d-number");
    let (c, _) = ingest(&d2, &[&p]);
    assert_eq!(c, 3);
    let q = sql(&d2, "SELECT field, reason FROM quarantine");
    assert_eq!(q[0]["field"], "amount", "{q:?}");
}

/// The sample's cost report as an Analytics cost query (fixtures/formats), to vary.
fn analytics_cost_fixture() -> serde_json::Value {
    let p = fixtures().join("formats/analytics-cost-2026-10-query.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The price-book check (#25 point 4): a planted stale price — the provider's list amount for
/// claude-sonnet-4-5 output tokens 20 % above our book from 2026-10-02 on — is a `price_drift`
/// with the model, the token type, the first day and both rates; nothing else drifts; exit 3,
/// and the nightly run exits 3 too.
#[test]
fn a_stale_price_in_the_book_is_found_as_price_drift() {
    use rust_decimal::Decimal;
    let tmp = tempfile::tempdir().unwrap();
    let mut v = analytics_cost_fixture();
    let mut planted = 0;
    for page in v["pages"].as_array_mut().unwrap() {
        for item in page["data"].as_array_mut().unwrap() {
            let g = &item["group"];
            let sonnet = g["model"]
                .as_str()
                .unwrap_or("")
                .starts_with("claude-sonnet-4-5");
            if sonnet
                && g["token_type"] == "output_tokens"
                && item["starting_at"].as_str().unwrap() >= "2026-10-02"
            {
                for k in ["amount", "list_amount"] {
                    let c: Decimal = item["cost"][k].as_str().unwrap().parse().unwrap();
                    item["cost"][k] = (c * Decimal::new(12, 1)).normalize().to_string().into();
                }
                planted += 1;
            }
        }
    }
    assert!(planted >= 1);
    let query = tmp.path().join("analytics-cost-stale.json");
    std::fs::write(&query, serde_json::to_string(&v).unwrap()).unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&sample_with_cost(tmp.path(), &query)]);
    let (c, r) = reconcile(&data);
    assert_eq!(c, 3, "{r:#}");
    let drift = r["price_drift"].as_array().unwrap();
    assert_eq!(drift.len(), 1, "nothing else drifts: {drift:?}");
    let d = &drift[0];
    assert_eq!(d["kind"], "price_drift");
    assert_eq!(d["model"], "claude-sonnet-4-5");
    assert_eq!(d["token_type"], "output_tokens");
    assert_eq!(d["first_day"], "2026-10-02");
    let rate = |k: &str| d[k].as_str().unwrap().parse::<Decimal>().unwrap();
    // Oct 2's Sonnet 4.5 output is long context (fixtures/README.md): $22.50/MTok in the book,
    // 20 % more in the planted list amounts.
    assert_eq!(rate("our_rate"), Decimal::new(225, 1), "{d}");
    assert_eq!(rate("provider_rate"), Decimal::from(27), "{d}");
    assert!(
        d["impact_usd"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap()
            > Decimal::ZERO
    );
    let o = tl(&data, &["reconcile", "--month", "2026-10"]);
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("PRICE DRIFT: claude-sonnet-4-5 output_tokens from 2026-10-02"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = tl(
        &data,
        &[
            "run",
            "--as-of",
            "2026-10-06",
            "--inputs",
            tmp.path().join("exports").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
}

/// Reconciliation with `amount` (#25 point 5): the Analytics amount is after discounts; where
/// its `list_amount` meets our list cost, the gap is explained as the discount, and the
/// invoice-style totals say how much.
#[test]
fn a_negotiated_discount_is_the_gap_between_list_amount_and_amount() {
    use rust_decimal::Decimal;
    let tmp = tempfile::tempdir().unwrap();
    let mut v = analytics_cost_fixture();
    for page in v["pages"].as_array_mut().unwrap() {
        for item in page["data"].as_array_mut().unwrap() {
            let list: Decimal = item["cost"]["list_amount"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            item["cost"]["amount"] = (list * Decimal::new(9, 1)).normalize().to_string().into();
        }
    }
    let query = tmp.path().join("analytics-cost-discounted.json");
    std::fs::write(&query, serde_json::to_string(&v).unwrap()).unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&sample_with_cost(tmp.path(), &query)]);
    let (c, r) = reconcile(&data);
    assert_eq!(c, 0, "{r:#}");
    assert_eq!(r["lines_unexplained"], 0);
    assert_eq!(r["provider_usd"], "1.975511250000", "10 % off $2.1950125");
    assert!(
        r["price_drift"].as_array().unwrap().is_empty(),
        "list = our list cost"
    );
    let discounted = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["cause"].as_str().unwrap().starts_with("discount:"))
        .count();
    assert!(discounted >= 5, "{r:#}");
}

/// #25 point 6: the Console cost CSV (14-column header, dollars, display model names;
/// fixtures/formats: the sample's own cost report as the Console exports it) is one more
/// provider-side figure: it loads into `cost` at the day × workspace grain (workspace names
/// resolved to ids from the lists), reconciles exactly like the cost report grouped by
/// workspace, never touches usage, and yields to the cost report where both cover a day.
#[test]
fn a_console_cost_csv_is_a_provider_side_figure_at_the_day_and_workspace_grain() {
    let formats = fixtures().join("formats");
    let tmp = tempfile::tempdir().unwrap();
    let (csv_lake, api_lake, both) = (
        tmp.path().join("csv"),
        tmp.path().join("api"),
        tmp.path().join("both"),
    );
    let csv = formats.join("console-cost-2026-10.csv");
    let s = ingest_ok(&csv_lake, &[&sample_with_cost(&tmp.path().join("a"), &csv)]);
    assert_eq!(
        s["by_format"]["anthropic-console-cost-csv"]["rows_loaded"], 24,
        "{s}"
    );
    ingest_ok(
        &api_lake,
        &[&sample_with_cost(
            &tmp.path().join("b"),
            &formats.join("cost-2026-10-by-workspace.json"),
        )],
    );
    let (c, from_csv) = reconcile(&csv_lake);
    let (_, from_api) = reconcile(&api_lake);
    assert_eq!(
        c, 3,
        "code execution and priority tier cannot be told apart"
    );
    for k in ["provider_usd", "ours_usd", "per_workspace", "lines"] {
        assert_eq!(from_csv[k], from_api[k], "{k}");
    }
    assert_eq!(
        from_csv["coarse_days"]["anthropic"]["2026-10-01"],
        "day × workspace"
    );
    let ids = sql(
        &csv_lake,
        "SELECT DISTINCT workspace_id, workspace_name FROM cost ORDER BY workspace_name",
    );
    assert_eq!(
        ids[1]["workspace_id"], "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ",
        "{ids:?}"
    );
    let usage = |d: &std::path::Path| {
        sql(
            d,
            "SELECT COUNT(*) AS n, SUM(output_tokens) AS o FROM usage",
        )
    };
    assert_eq!(
        usage(&csv_lake),
        usage(&api_lake),
        "never summed into usage"
    );
    // Both for the same days: the cost report (API pages) owns them, the CSV is said.
    ingest_ok(
        &both,
        &[&sample_with_cost(
            &tmp.path().join("c"),
            &fixtures().join("sample/cost-2026-10.json"),
        )],
    );
    let s = ingest_ok(&both, &[&csv]);
    assert_eq!(s["files"][0]["rows_loaded"], 0, "{s}");
    assert!(
        s["files"][0]["notes"][0]
            .as_str()
            .unwrap()
            .contains("api data owns them"),
        "{s}"
    );
    assert_eq!(reconcile(&both).1["provider_usd"], "2.195012500000");
}

/// The Console cost CSV's bad rows never vanish or double: an amount with an exponent or a
/// thousands separator, a typo'd date and a short row are quarantined with the field and the
/// reason (the rest loads, exit 3); a line repeated field for field refuses the file whole.
#[test]
fn a_console_cost_csv_with_bad_rows_quarantines_them_and_refuses_a_repeated_line() {
    let tmp = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(fixtures().join("formats/console-cost-2026-10.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len() - 1;
    let edit = |l: &str, col: usize, v: &str| {
        let mut f: Vec<&str> = l.split(',').collect();
        f[col] = v;
        f.join(",")
    };
    lines[1] = edit(&lines[1], 7, "4.5e-3");
    lines[2] = edit(&lines[2], 7, "\"1,234.50\"");
    lines[3] = edit(&lines[3], 0, "2026-13-01");
    lines[4] = lines[4].rsplit_once(',').unwrap().0.to_string();
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let data = tmp.path().join("d");
    let (c, s) = ingest(&data, &[&bad]);
    assert_eq!(c, 3, "{s}");
    assert_eq!(s["files"][0]["rows_loaded"], n - 4, "{s}");
    let q = sql(&data, "SELECT field, reason FROM quarantine ORDER BY line");
    let fields: Vec<&str> = q
        .iter()
        .map(|r| r["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        fields,
        ["cost_usd", "cost_usd", "usage_date_utc", ""],
        "{q:?}"
    );
    assert!(
        q[3]["reason"]
            .as_str()
            .unwrap()
            .contains("fields, the header has 14"),
        "{q:?}"
    );

    let mut twice: Vec<String> = text.lines().map(str::to_string).collect();
    twice.push(twice[5].clone());
    let rep = tmp.path().join("repeated.csv");
    std::fs::write(&rep, twice.join("\n") + "\n").unwrap();
    let (c, s) = ingest(&tmp.path().join("r"), &[&rep]);
    assert_eq!(c, 3, "{s}");
    assert_refused(&s, "repeats line 6");
}
