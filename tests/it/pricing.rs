//! The price book: hand-computed rates for every modifier, their combinations and the date
//! boundaries; overrides; aliases. Then rating invariants as properties.

use chrono::NaiveDate;
use proptest::prelude::*;
use rust_decimal::Decimal;
use tokenledger::pricing::{BookFile, PriceBook, canonical_model};

use crate::common::{code, fixtures, ingest_ok, mail_outbox, report_rows, sql, stderr, tl, tl_cfg};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}
fn book() -> PriceBook {
    PriceBook::load(&[]).unwrap()
}
/// Per-MTok rates as text: [input, 5m, 1h, read, output].
fn rates(b: &PriceBook, model: &str, day: &str, tier: &str, ctx: &str, geo: &str) -> [String; 5] {
    let r = b
        .rate(
            "anthropic",
            Some(model),
            d(day),
            Some(tier),
            Some(ctx),
            Some(geo),
        )
        .unwrap_or_else(|e| panic!("{model}: {e}"));
    std::array::from_fn(|k| r.per_mtok[k].expect("priced").normalize().to_string())
}
fn s(v: [&str; 5]) -> [String; 5] {
    v.map(String::from)
}

#[test]
fn base_rates_and_aliases() {
    let b = book();
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-5",
            "2026-10-01",
            "standard",
            "0-200k",
            "global"
        ),
        s(["3", "3.75", "6", "0.3", "15"])
    );
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-5-20250929",
            "2026-10-01",
            "standard",
            "0-200k",
            "global"
        ),
        s(["3", "3.75", "6", "0.3", "15"])
    );
    assert_eq!(
        rates(
            &b,
            "claude-3-haiku-20240307",
            "2024-06-01",
            "standard",
            "0-200k",
            "global"
        ),
        s(["0.25", "0.3", "0.5", "0.03", "1.25"])
    );
    assert_eq!(
        rates(
            &b,
            "claude-opus-4-1",
            "2025-09-01",
            "standard",
            "0-200k",
            "global"
        ),
        s(["15", "18.75", "30", "1.5", "75"])
    );
    assert_eq!(
        rates(
            &b,
            "claude-3-5-haiku-20241022",
            "2025-01-01",
            "standard",
            "0-200k",
            "global"
        ),
        s(["0.8", "1", "1.6", "0.08", "4"])
    );
    assert_eq!(
        canonical_model("claude-3-5-sonnet-latest"),
        "claude-3-5-sonnet"
    );
    assert_eq!(canonical_model("claude-opus-4-20250514"), "claude-opus-4");
}

#[test]
fn every_modifier_and_their_stacking() {
    let b = book();
    // Batch: 50% off every class.
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-5",
            "2026-10-01",
            "batch",
            "0-200k",
            "global"
        ),
        s(["1.5", "1.875", "3", "0.15", "7.5"])
    );
    // Long context: premium input 6, output 22.50; cache classes from the premium input.
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-5",
            "2026-10-01",
            "standard",
            "200k-1M",
            "global"
        ),
        s(["6", "7.5", "12", "0.6", "22.5"])
    );
    // Long context × batch.
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-5",
            "2026-10-01",
            "batch",
            "200k-1M",
            "global"
        ),
        s(["3", "3.75", "6", "0.3", "11.25"])
    );
    // US geo: 1.1× for 4.6 and later only.
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-6",
            "2026-10-01",
            "standard",
            "0-200k",
            "us"
        ),
        s(["3.3", "4.125", "6.6", "0.33", "16.5"])
    );
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-5",
            "2026-10-01",
            "standard",
            "0-200k",
            "us"
        ),
        s(["3", "3.75", "6", "0.3", "15"])
    );
    // Batch × geo.
    assert_eq!(
        rates(&b, "claude-opus-4-6", "2026-10-01", "batch", "0-200k", "us"),
        s(["2.75", "3.4375", "5.5", "0.275", "13.75"])
    );
    // Long context × batch × geo, Opus 4.6, the day before the rule change.
    assert_eq!(
        rates(
            &b,
            "claude-opus-4-6",
            "2026-03-12",
            "batch",
            "200k-1M",
            "us"
        ),
        s(["5.5", "6.875", "11", "0.55", "20.625"])
    );
}

#[test]
fn long_context_rule_changes_on_2026_03_13() {
    let b = book();
    assert_eq!(
        rates(
            &b,
            "claude-opus-4-6",
            "2026-03-12",
            "standard",
            "200k-1M",
            "global"
        ),
        s(["10", "12.5", "20", "1", "37.5"])
    );
    assert_eq!(
        rates(
            &b,
            "claude-opus-4-6",
            "2026-03-13",
            "standard",
            "200k-1M",
            "global"
        ),
        s(["5", "6.25", "10", "0.5", "25"])
    );
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-6",
            "2026-03-12",
            "standard",
            "200k-1M",
            "global"
        ),
        s(["6", "7.5", "12", "0.6", "22.5"])
    );
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-6",
            "2026-03-13",
            "standard",
            "200k-1M",
            "global"
        ),
        s(["3", "3.75", "6", "0.3", "15"])
    );
    // Sonnet 4.5 keeps its premium after the date.
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-5",
            "2026-03-13",
            "standard",
            "200k-1M",
            "global"
        ),
        s(["6", "7.5", "12", "0.6", "22.5"])
    );
}

#[test]
fn web_search_is_not_discounted() {
    let b = book();
    let r = b
        .rate(
            "anthropic",
            Some("claude-opus-4-6"),
            d("2026-10-01"),
            Some("batch"),
            Some("0-200k"),
            Some("us"),
        )
        .unwrap();
    assert_eq!(r.web_search, Some(Decimal::new(1, 2)));
}

#[test]
fn priority_is_rated_at_standard_and_said_so_other_tiers_are_unpriced() {
    let b = book();
    let r = b
        .rate(
            "anthropic",
            Some("claude-haiku-4-5"),
            d("2026-10-04"),
            Some("priority"),
            Some("0-200k"),
            Some("global"),
        )
        .unwrap();
    assert_eq!(r.per_mtok[0], Some(Decimal::ONE));
    assert!(r.note.unwrap().contains("standard list"));
    let e = b
        .rate(
            "anthropic",
            Some("claude-haiku-4-5"),
            d("2026-10-04"),
            Some("flex"),
            None,
            None,
        )
        .unwrap_err();
    assert!(e.contains("service tier flex"), "{e}");
    let e = b
        .rate(
            "anthropic",
            Some("claude-mystery-9"),
            d("2026-10-04"),
            Some("standard"),
            None,
            None,
        )
        .unwrap_err();
    assert!(
        e.contains("no list price for model claude-mystery-9"),
        "{e}"
    );
    assert!(
        b.rate("anthropic", None, d("2026-10-04"), None, None, None)
            .is_err(),
        "no model, no price"
    );
}

#[test]
fn overrides_win_and_prices_change_mid_month() {
    let o: BookFile = toml::from_str(
        r#"
        [[model]]
        models = ["claude-sonnet-4-5"]
        input = "2.5"
        cache_write_5m = "3.125"
        cache_write_1h = "5"
        cache_read = "0.25"
        output = "12.5"
        valid_from = "2026-10-15"

        [[model]]
        models = ["claude-mystery-9"]
        input = "1"
        cache_write_5m = "1.25"
        cache_write_1h = "2"
        cache_read = "0.1"
        output = "5"
        "#,
    )
    .unwrap();
    let b = PriceBook::load(&[("test".into(), o)]).unwrap();
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-5",
            "2026-10-14",
            "standard",
            "0-200k",
            "global"
        )[0],
        "3"
    );
    assert_eq!(
        rates(
            &b,
            "claude-sonnet-4-5-20250929",
            "2026-10-15",
            "standard",
            "0-200k",
            "global"
        )[0],
        "2.5"
    );
    assert_eq!(
        rates(
            &b,
            "claude-mystery-9",
            "2026-10-01",
            "batch",
            "0-200k",
            "global"
        )[4],
        "2.5"
    );
    assert_ne!(b.fingerprint, book().fingerprint, "a changed book re-rates");
}

#[test]
fn a_rate_that_cannot_be_exact_is_refused() {
    let o: BookFile = toml::from_str(
        r#"
        [[model]]
        models = ["claude-x"]
        input = "0.0000001"
        cache_write_5m = "1"
        cache_write_1h = "1"
        cache_read = "1"
        output = "1"
        "#,
    )
    .unwrap();
    let e = PriceBook::load(&[("prices.toml".into(), o)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("prices.toml") && e.contains("more than 6 decimals"),
        "{e}"
    );
}

#[test]
fn a_float_price_is_refused_with_the_file_and_key_named() {
    // Every other field is valid: the float is the only thing wrong with this row.
    let row = |input: &str| {
        format!(
            "[[prices.model]]\nmodels = [\"claude-sonnet-4-5\"]\ninput = {input}\ncache_write_5m = \"3.75\"\n\
             cache_write_1h = \"6\"\ncache_read = \"0.30\"\noutput = \"15\"\n"
        )
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("tokenledger.toml");
    std::fs::write(&cfg, row("\"3.30\"")).unwrap();
    let data = tmp.path().join("data");
    let prices = |cfg: &std::path::Path| {
        let o = tl(&data, &["--config", cfg.to_str().unwrap(), "prices"]);
        (code(&o), stderr(&o))
    };
    assert_eq!(
        prices(&cfg).0,
        0,
        "the string form loads: {}",
        prices(&cfg).1
    );
    std::fs::write(&cfg, row("3.3")).unwrap();
    let (c, e) = prices(&cfg);
    assert_eq!(c, 2, "an invalid config is a usage error: {e}");
    assert!(e.contains("tokenledger.toml"), "names the file: {e}");
    assert!(e.contains("input = 3.3"), "shows the key: {e}");
    assert!(e.contains("write it as a string"), "says what to do: {e}");
    // An integer is a number too.
    std::fs::write(&cfg, row("3")).unwrap();
    assert!(prices(&cfg).1.contains("write it as a string"));
}

/// Support Bot's October list cost (exact dollars) under `config`, from `report`.
fn support_bot_october(dir: &std::path::Path, config: &str) -> Decimal {
    let data = dir.join("data");
    if !data.exists() {
        crate::common::ingest_ok(&data, &[&crate::common::fixtures().join("sample")]);
    }
    let cfg = dir.join("tokenledger.toml");
    std::fs::write(&cfg, config).unwrap();
    let rows = crate::common::report_rows(&data, &cfg, "2026-10", "workspace");
    let row = rows
        .iter()
        .find(|r| r["workspace_name"] == "Support Bot")
        .unwrap_or_else(|| panic!("{rows:?}"));
    row["list_cost_usd_exact"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_modifier_and_a_price_file_from_the_config_price_the_report() {
    // Support Bot's October (fixtures/README.md): Oct 1 Haiku 4.5 batch $0.135, Oct 4 Haiku 4.5
    // at priority tier rated at standard list $0.8501; together $0.9851.
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        support_bot_october(tmp.path(), ""),
        "0.9851".parse().unwrap()
    );
    // [[prices.modifier]]: priority at 1.2× standard → Oct 4 = 0.8501 × 1.2 = 1.02012.
    let modifier = "[[prices.modifier]]\nservice_tier = \"priority\"\nfactor = \"1.2\"\nmodels = [\"claude-haiku-4-5\"]\n";
    assert_eq!(
        support_bot_october(tmp.path(), modifier),
        "1.15512".parse().unwrap(),
        "0.135 + 1.02012"
    );
    // price_file: Haiku 4.5 doubled from 2026-10-03 (Oct 1 keeps the old price); it wins over a
    // [prices] row of the same day. Oct 4 = (500000×2 + 1000×0.2 + 70000×10)/10⁶ × 1.2 =
    // 1.7002 × 1.2 = 2.04024.
    let haiku = |input: &str| {
        format!(
            "[[model]]\nmodels = [\"claude-haiku-4-5\"]\ninput = \"{input}\"\ncache_write_5m = \"2.5\"\n\
             cache_write_1h = \"4\"\ncache_read = \"0.2\"\noutput = \"10\"\nvalid_from = \"2026-10-03\"\n"
        )
    };
    std::fs::write(tmp.path().join("prices.toml"), haiku("2")).unwrap();
    let losing = haiku("9").replace("[[model]]", "[[prices.model]]");
    let config = format!("price_file = \"prices.toml\"\n{modifier}{losing}");
    assert_eq!(
        support_bot_october(tmp.path(), &config),
        "2.17524".parse().unwrap(),
        "0.135 + 2.04024"
    );
}

// ---- rating invariants ------------------------------------------------------------------

mod props {
    use super::*;
    use tokenledger::lake::batch::UsageBuilder;
    use tokenledger::model::{BucketWidth, SourceFormat, Tokens, UsageRow};
    use tokenledger::pricing::RateCache;
    use tokenledger::rating::rate_batch;

    const MODELS: [&str; 5] = [
        "claude-sonnet-4-5-20250929",
        "claude-opus-4-6",
        "claude-haiku-4-5",
        "claude-3-5-haiku",
        "claude-sonnet-4-6",
    ];
    const TIERS: [&str; 3] = ["standard", "batch", "priority"];
    const CTX: [&str; 2] = ["0-200k", "200k-1M"];
    const GEO: [&str; 2] = ["global", "us"];

    fn row(k: (usize, usize, usize, usize, u32), t: [u64; 6]) -> UsageRow<'static> {
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + chrono::Days::new(k.4 as u64);
        UsageRow {
            bucket_start: tokenledger::model::day_start(day),
            bucket_width: BucketWidth::Day,
            provider: tokenledger::vocab::Provider::Anthropic,
            workspace_id: None,
            workspace_name: None,
            api_key_id: None,
            api_key_name: None,
            model: Some(MODELS[k.0].into()),
            service_tier: Some(TIERS[k.1].into()),
            context_window: Some(CTX[k.2].into()),
            inference_geo: Some(GEO[k.3].into()),
            speed: None,
            account_id: None,
            service_account_id: None,
            product: None,
            agent_id: None,
            actor_type: None,
            actor_id: None,
            actor_email: None,
            tokens: Tokens {
                uncached_input: t[0],
                cache_write_5m: t[1],
                cache_write_1h: t[2],
                cache_read: t[3],
                output: t[4],
                web_search_requests: t[5],
                ..Tokens::default()
            },
            cache_write_assumed_5m: false,
            source_format: SourceFormat::AnthropicUsageApi,
            source_row: 0,
        }
    }

    fn costs(rows: &[UsageRow<'static>]) -> Vec<i128> {
        let book = book();
        let mut b = UsageBuilder::default();
        for r in rows {
            b.push(r, "f", "i");
        }
        let batch = b.finish();
        let rated = rate_batch(&batch, &mut RateCache::new(&book), "fp", chrono_tz::UTC).unwrap();
        let total = rated
            .column_by_name("list_cost")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::Decimal128Array>()
            .unwrap();
        let parts: Vec<&arrow::array::Decimal128Array> = tokenledger::rating::COST_COLUMNS
            .iter()
            .map(|c| {
                rated
                    .column_by_name(c)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<arrow::array::Decimal128Array>()
                    .unwrap()
            })
            .collect();
        (0..rows.len())
            .map(|i| {
                let sum: i128 = parts.iter().map(|p| p.value(i)).sum();
                assert_eq!(sum, total.value(i), "list_cost is the sum of its classes");
                total.value(i)
            })
            .collect()
    }

    fn key() -> impl Strategy<Value = (usize, usize, usize, usize, u32)> {
        (
            0..MODELS.len(),
            0..TIERS.len(),
            0..CTX.len(),
            0..GEO.len(),
            0u32..30,
        )
    }
    fn toks() -> impl Strategy<Value = [u64; 6]> {
        prop::array::uniform6(0u64..5_000_000_000)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn scaling_tokens_scales_cost_exactly(k in key(), t in toks(), factor in 1u64..1000) {
            let scaled = t.map(|x| x * factor);
            let c = costs(&[row(k, t), row(k, scaled)]);
            prop_assert_eq!(c[1], c[0] * factor as i128);
        }

        #[test]
        fn sum_of_row_costs_is_the_cost_of_summed_tokens(k in key(), parts in proptest::collection::vec(toks(), 1..12)) {
            let rows: Vec<UsageRow<'static>> = parts.iter().map(|t| row(k, *t)).collect();
            let mut summed = [0u64; 6];
            for t in &parts {
                for i in 0..6 { summed[i] += t[i]; }
            }
            let each: i128 = costs(&rows).iter().sum();
            prop_assert_eq!(each, costs(&[row(k, summed)])[0]);
        }
    }
}

/// #25 point 4: a model the price book does not know is priced at the rate the provider's own
/// `list_amount` implies for its day (status `provider_list`, said on the report) instead of
/// UNPRICED — here Claude Opus 4.6 renamed to a model no book has, in both the Analytics usage
/// and cost queries: its lines cost what the book's Opus 4.6 lines cost, to the unit, and the
/// month's total is unchanged. Without a cost row for it, it stays UNPRICED (never $0).
#[test]
fn a_model_the_book_lacks_is_priced_from_the_providers_list_amount() {
    let tmp = tempfile::tempdir().unwrap();
    let formats = fixtures().join("formats");
    let (usage, cost) = (
        formats.join("analytics-usage-2026-10-query.json"),
        formats.join("analytics-cost-2026-10-query.json"),
    );
    let renamed = |p: &std::path::Path| {
        let text = std::fs::read_to_string(p)
            .unwrap()
            .replace("claude-opus-4-6", "claude-unbooked-7");
        let out = tmp.path().join(p.file_name().unwrap());
        std::fs::write(&out, text).unwrap();
        out
    };
    let (usage2, cost2) = (renamed(&usage), renamed(&cost));
    let cfg = tmp.path().join("empty.toml");
    std::fs::write(&cfg, "").unwrap();
    let (known, learned, alone) = (
        tmp.path().join("known"),
        tmp.path().join("learned"),
        tmp.path().join("alone"),
    );
    ingest_ok(&known, &[&usage, &cost]);
    ingest_ok(&learned, &[&usage2, &cost2]);
    ingest_ok(&alone, &[&usage2]);
    let by_model = |data: &std::path::Path| {
        report_rows(data, &cfg, "2026-10", "model")
            .into_iter()
            .map(|r| {
                let m = r["model"].as_str().unwrap().to_string();
                (
                    m,
                    r["pricing_status"].as_str().unwrap().to_string(),
                    r["list_cost_usd_exact"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let want = by_model(&known);
    let opus = want
        .iter()
        .find(|l| l.0 == "claude-opus-4-6")
        .unwrap()
        .clone();
    let got = by_model(&learned);
    let unbooked = got.iter().find(|l| l.0 == "claude-unbooked-7").unwrap();
    assert_eq!(unbooked.1, "provider_list", "{got:?}");
    assert_eq!(
        unbooked.2, opus.2,
        "the provider's list amount, to the unit: {got:?}"
    );
    let others = |v: &[(String, String, serde_json::Value)], skip: &str| {
        v.iter()
            .filter(|l| l.0 != skip)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        others(&got, "claude-unbooked-7"),
        others(&want, "claude-opus-4-6")
    );
    // The rated rows say how they were priced; the table says it too.
    let rated = sql(
        &learned,
        "SELECT DISTINCT pricing_status, pricing_note FROM rated_usage WHERE model_canonical = 'claude-unbooked-7'",
    );
    assert_eq!(rated.len(), 1, "{rated:?}");
    assert!(
        rated[0]["pricing_note"]
            .as_str()
            .unwrap()
            .contains("not in the price book"),
        "{rated:?}"
    );
    let o = tl_cfg(
        &learned,
        &cfg,
        &["report", "--month", "2026-10", "--by", "model"],
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("provider_list"));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 provider_list"),
        "the footer says it"
    );
    // The rated data carries the book it was rated with: the learned rates are part of it.
    let book_of = |data: &std::path::Path| {
        let o = tl_cfg(data, &cfg, &["rate", "--json", "-q"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["price_book"].as_str().unwrap().to_string()
    };
    assert_ne!(
        book_of(&learned),
        book_of(&known),
        "provider-list rates change the book"
    );
    assert_eq!(book_of(&known).len(), 16);
    // The mail says it too.
    let mail_cfg = tmp.path().join("mail.toml");
    std::fs::write(
        &mail_cfg,
        "[[team]]\nname = \"Search\"\nworkspaces = [\"Search\"]\nrecipients = [\"s@example.com\"]\n",
    )
    .unwrap();
    let mails = mail_outbox(&learned, &mail_cfg, "2026-10");
    assert_eq!(mails.len(), 2, "the team's and finance's");
    for m in mails {
        let text = m["text"].as_str().unwrap();
        assert!(
            text.contains("claude-unbooked-7 is not in the price book: priced at the rate the provider's own list amount implies"),
            "{text}"
        );
    }
    // No list amount for it: UNPRICED (exit 3), never $0.
    let o = tl_cfg(
        &alone,
        &cfg,
        &[
            "report", "--month", "2026-10", "--by", "model", "--format", "json",
        ],
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let a: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let u = a
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["model"] == "claude-unbooked-7")
        .unwrap();
    assert_eq!(u["pricing_status"], "UNPRICED", "{a}");
    assert!(u["list_cost_usd_exact"].is_null(), "{a}");
}

/// OpenAI's book: tier rates listed per model (not a factor), a class the page marks "–"
/// without a price (a row with such tokens is UNPRICED with the reason, one without prices),
/// dated snapshots resolved to the alias, and the July/August 2026 cuts as dated rows.
/// Expected figures typed from shared/reference/provider-apis.md §7.
#[test]
fn openai_tiers_missing_classes_snapshots_and_dated_cuts() {
    use tokenledger::rating::row_cost;
    let b = book();
    let rate = |model: &str, day: &str, tier: &str| {
        b.rate("openai", Some(model), d(day), Some(tier), None, None)
    };
    let per = |r: &tokenledger::pricing::Rate| {
        r.per_mtok
            .map(|x| x.map(|v| v.normalize().to_string()).unwrap_or("-".into()))
    };
    // [input, 5m, 1h, cached, output, 30m, 12h]
    let gpt4o = rate("gpt-4o-2024-08-06", "2026-10-03", "standard").unwrap();
    assert_eq!(per(&gpt4o), ["2.5", "-", "-", "1.25", "10", "2.5", "2.5"]);
    let batch = rate("gpt-4o", "2026-10-03", "batch").unwrap();
    assert_eq!(per(&batch), ["1.25", "-", "-", "-", "5", "1.25", "1.25"]);
    // 1,000 input + 2,000 output at batch: 1000 × 1.25 + 2000 × 5 = $0.01125 (scale 12).
    let (_, total, _) = row_cost(&batch, [1000, 0, 0, 0, 2000, 0, 0, 0]).unwrap();
    assert_eq!(total, 11_250_000_000);
    // A batch row with cached tokens has no price: UNPRICED with the reason.
    let e = row_cost(&batch, [1000, 0, 0, 5, 2000, 0, 0, 0]).unwrap_err();
    assert!(
        e.reason().contains("cache_read tokens of gpt-4o (batch)"),
        "{}",
        e.reason()
    );
    // Flex is the batch rates for the gpt-5 family; gpt-4o has no flex row.
    let flex = rate("gpt-5", "2026-10-03", "flex").unwrap();
    assert_eq!(per(&flex)[0], "0.625");
    assert!(
        rate("gpt-4o", "2026-10-03", "flex")
            .unwrap_err()
            .contains("flex")
    );
    // gpt-5.6 cache writes at 1.25× input; the cuts as dated rows.
    let luna = |day| per(&rate("gpt-5.6-luna", day, "standard").unwrap());
    assert_eq!(
        luna("2026-07-30"),
        ["0.2", "-", "-", "0.02", "1.2", "0.25", "0.25"]
    );
    assert_eq!(
        luna("2026-07-29"),
        ["1", "-", "-", "0.1", "6", "1.25", "1.25"]
    );
    let sol = |day| per(&rate("gpt-5.6-sol", day, "standard").unwrap());
    assert_eq!(sol("2026-08-21")[4], "20");
    assert_eq!(sol("2026-08-20")[4], "30");
    // o3 before its June 2025 cut; gpt-5-nano has no priority rate: unpriced, not standard.
    assert_eq!(per(&rate("o3", "2025-06-09", "standard").unwrap())[0], "10");
    assert!(rate("gpt-5-nano", "2026-10-03", "priority").is_err());
    // No web search price for OpenAI: a row with searches is unpriced, one without prices.
    let e = row_cost(&gpt4o, [1, 0, 0, 0, 0, 0, 0, 3]).unwrap_err();
    assert!(e.reason().contains("web search"), "{}", e.reason());
}
