//! The credit ledger, against ledgers computed by hand (each test says its arithmetic).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use tokenledger::credits::ledger::{self, Finding, Ledger, LotRow, LotStatus, Options};
use tokenledger::model::{BalanceSnapshot, CreditKind, CreditLot, one_year_after};
use tokenledger::money::Money;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}
fn usd(s: &str) -> Money {
    Money::from_decimal(s.parse::<Decimal>().unwrap()).unwrap()
}
fn lot(id: &str, kind: CreditKind, bought: &str, amount: &str, expires: Option<&str>) -> CreditLot {
    let purchased_at = d(bought);
    let expires_at = match (expires, kind) {
        (Some(e), _) => Some(d(e)),
        (None, CreditKind::Monthly) => None,
        (None, _) => Some(one_year_after(purchased_at)),
    };
    CreditLot {
        lot_id: id.into(),
        provider: tokenledger::vocab::Provider::Anthropic,
        kind,
        purchased_at,
        amount: amount.parse().unwrap(),
        expires_at,
        expiry_stated: expires.is_some(),
        source_row: 0,
    }
}
/// Daily cost: `(day, dollars)`.
fn daily(days: &[(&str, &str)]) -> BTreeMap<(tokenledger::vocab::Provider, NaiveDate), Money> {
    days.iter()
        .map(|(day, c)| ((tokenledger::vocab::Provider::Anthropic, d(day)), usd(c)))
        .collect()
}
/// `dollars` on every day of `[from, to]`.
fn every_day(
    from: &str,
    to: &str,
    dollars: &str,
) -> BTreeMap<(tokenledger::vocab::Provider, NaiveDate), Money> {
    d(from)
        .iter_days()
        .take_while(|x| *x <= d(to))
        .map(|x| ((tokenledger::vocab::Provider::Anthropic, x), usd(dollars)))
        .collect()
}
fn run(
    lots: &[CreditLot],
    days: &BTreeMap<(tokenledger::vocab::Provider, NaiveDate), Money>,
    as_of: &str,
) -> Ledger {
    run_with(lots, &[], days, Options::new(d(as_of)))
}
fn run_with(
    lots: &[CreditLot],
    snaps: &[BalanceSnapshot],
    days: &BTreeMap<(tokenledger::vocab::Provider, NaiveDate), Money>,
    opts: Options,
) -> Ledger {
    let mut l = ledger::compute(lots, snaps, days, &opts).unwrap();
    ledger::lot_findings(&mut l, &opts);
    l
}
fn row<'a>(l: &'a Ledger, id: &str) -> &'a LotRow {
    l.lots.iter().find(|r| r.lot_id == id).unwrap()
}

#[test]
fn a_lot_is_not_usable_on_its_expiry_day() {
    // $100 lot usable 2026-01-10 ..< 2026-02-01. $10 on 01-31 is covered; $10 on 02-01 (the
    // expiry day) is not. As of 02-05 it expired holding $90.
    let lots = [lot(
        "L1",
        CreditKind::Prepaid,
        "2026-01-10",
        "100",
        Some("2026-02-01"),
    )];
    let l = run(
        &lots,
        &daily(&[("2026-01-31", "10"), ("2026-02-01", "10")]),
        "2026-02-05",
    );
    let r = row(&l, "L1");
    assert_eq!(r.consumed_usd, usd("10"));
    // Expired: it holds nothing; what it had left lapsed.
    assert_eq!(r.remaining_usd, Money::ZERO);
    assert_eq!(r.unused_at_expiry_usd, usd("90"));
    assert_eq!(r.lapsed_usd, usd("90"));
    assert_eq!(r.at_risk_usd, Money::ZERO);
    assert_eq!(r.status, LotStatus::ExpiredUnused);
    assert_eq!(l.positions[0].uncovered_usd, usd("10"));
    assert_eq!(l.positions[0].balance_usd, Money::ZERO);
    // As of the day before expiry the lot is still held, and all of it lapses tomorrow.
    let l = run(&lots, &daily(&[("2026-01-31", "10")]), "2026-01-31");
    assert_eq!(row(&l, "L1").status, LotStatus::AtRisk);
    assert_eq!(row(&l, "L1").at_risk_usd, usd("90"));
    assert_eq!(row(&l, "L1").days_to_expiry, Some(1));
}

#[test]
fn a_leap_day_purchase_expires_on_28_february() {
    assert_eq!(one_year_after(d("2024-02-29")), d("2025-02-28"));
    assert_eq!(one_year_after(d("2025-03-01")), d("2026-03-01"));
    let lots = [lot("LEAP", CreditKind::Prepaid, "2024-02-29", "50", None)];
    let days = daily(&[("2025-02-27", "5"), ("2025-02-28", "7")]);
    let l = run(&lots, &days, "2025-03-01");
    let r = row(&l, "LEAP");
    assert_eq!(r.expires_at, Some(d("2025-02-28")));
    assert_eq!(r.consumed_usd, usd("5"));
    assert_eq!(r.lapsed_usd, usd("45"));
    assert_eq!(l.positions[0].uncovered_usd, usd("7"));
}

#[test]
fn a_lot_bought_mid_month_covers_only_from_its_purchase_day() {
    // $5/day all March; $50 bought on 03-15 covers 03-15..03-24 (10 days), then it is empty.
    // Uncovered: 03-01..03-14 (14 × 5 = 70) + 03-25..03-31 (7 × 5 = 35) = 105.
    let lots = [lot("MID", CreditKind::Prepaid, "2026-03-15", "50", None)];
    let l = run(
        &lots,
        &every_day("2026-03-01", "2026-03-31", "5"),
        "2026-03-31",
    );
    let r = row(&l, "MID");
    assert_eq!(r.consumed_usd, usd("50"));
    assert_eq!(r.status, LotStatus::Exhausted);
    let p = &l.positions[0];
    assert_eq!(p.uncovered_usd, usd("105"));
    // The 30 days ending 03-31 are 03-02..03-31: 30 × 5 = 150, so the burn is $5/day, and with
    // nothing left the runway is tomorrow.
    assert_eq!(p.burn_per_day_usd, usd("5"));
    assert_eq!(p.runway_date, Some(d("2026-04-01")));
    assert!(
        l.findings
            .iter()
            .any(|f| matches!(f, Finding::LowRunway { runway_days: 1, .. }))
    );
}

#[test]
fn lots_with_the_same_expiry_go_by_purchase_then_lot_id() {
    // A and B expire together; A was bought first, so $40 takes A's 30 and 10 of B. C and D
    // match in expiry and purchase: lot_id decides (C before D).
    let lots = [
        lot(
            "B",
            CreditKind::Promotional,
            "2026-02-01",
            "30",
            Some("2026-06-01"),
        ),
        lot(
            "A",
            CreditKind::Promotional,
            "2026-01-01",
            "30",
            Some("2026-06-01"),
        ),
        lot(
            "D",
            CreditKind::Promotional,
            "2026-01-01",
            "30",
            Some("2026-09-01"),
        ),
        lot(
            "C",
            CreditKind::Promotional,
            "2026-01-01",
            "30",
            Some("2026-09-01"),
        ),
    ];
    let l = run(
        &lots,
        &daily(&[("2026-03-01", "40"), ("2026-03-02", "35")]),
        "2026-03-02",
    );
    // Day 2: B's 20, then C 15.
    assert_eq!(row(&l, "A").consumed_usd, usd("30"));
    assert_eq!(row(&l, "B").consumed_usd, usd("30"));
    assert_eq!(row(&l, "C").consumed_usd, usd("15"));
    assert_eq!(row(&l, "D").consumed_usd, Money::ZERO);
}

#[test]
fn zero_burn_puts_every_dollar_at_risk_and_has_no_runway() {
    let lots = [lot("IDLE", CreditKind::Prepaid, "2026-01-01", "250", None)];
    let l = run(&lots, &daily(&[("2026-01-05", "10")]), "2026-06-30");
    let p = &l.positions[0];
    assert_eq!(p.burn_per_day_usd, Money::ZERO);
    assert_eq!(p.runway_date, None);
    let r = row(&l, "IDLE");
    assert_eq!(r.remaining_usd, usd("240"));
    assert_eq!(r.at_risk_usd, usd("240"));
    assert_eq!(r.status, LotStatus::AtRisk);
}

#[test]
fn a_promotional_lot_expiring_first_is_used_before_an_older_prepaid_one() {
    // P (prepaid, 2025-12-01 → 2026-12-01) is older, but Q (promo, → 2026-04-01) expires first:
    // day 1 takes 15 of Q, day 2 Q's last 5 and 10 of P.
    let lots = [
        lot("P", CreditKind::Prepaid, "2025-12-01", "100", None),
        lot(
            "Q",
            CreditKind::Promotional,
            "2026-02-01",
            "20",
            Some("2026-04-01"),
        ),
    ];
    let l = run(
        &lots,
        &daily(&[("2026-03-01", "15"), ("2026-03-02", "15")]),
        "2026-03-02",
    );
    assert_eq!(row(&l, "Q").remaining_usd, Money::ZERO);
    assert_eq!(row(&l, "Q").status, LotStatus::Exhausted);
    assert_eq!(row(&l, "P").remaining_usd, usd("90"));
}

#[test]
fn a_monthly_credit_is_used_within_its_cycle_and_the_rest_lapses() {
    // $20 per cycle from 01-10: cycle 1 [01-10, 02-10) uses 8 and lapses 12; cycle 2
    // [02-10, 03-10) has used 5 by 02-20. The burn (01-22..02-20) is 5/30 = 0.166666666667 (to
    // 10⁻¹²); 17 more days to 03-09 use 2.833333333339, so 12.166666666661 lapses at cycle end.
    let lots = [lot("SEATS", CreditKind::Monthly, "2026-01-10", "20", None)];
    let l = run(
        &lots,
        &daily(&[("2026-01-15", "8"), ("2026-02-12", "5")]),
        "2026-02-20",
    );
    let r = row(&l, "SEATS");
    assert_eq!(r.cycle_start, Some(d("2026-02-10")));
    assert_eq!(r.expires_at, Some(d("2026-03-10")));
    assert_eq!(r.amount_usd, usd("20"));
    assert_eq!(r.consumed_usd, usd("5"));
    assert_eq!(r.remaining_usd, usd("15"));
    assert_eq!(r.lapsed_usd, usd("12"));
    assert_eq!(l.positions[0].burn_per_day_usd, usd("0.166666666667"));
    assert_eq!(r.at_risk_usd, usd("12.166666666661"));
    assert_eq!(r.status, LotStatus::AtRisk);
    // A monthly cycle ending soon is not an "expiring" finding; what it lapses is.
    assert!(
        !l.findings
            .iter()
            .any(|f| matches!(f, Finding::Expiring { .. }))
    );
    assert!(
        l.findings
            .iter()
            .any(|f| matches!(f, Finding::AtRisk { lot_id, .. } if lot_id == "SEATS"))
    );
}

#[test]
fn the_runway_is_the_first_day_the_burn_is_not_covered() {
    // $10/day for the 30 days to 01-30 leaves 700 of 1000: 70 more days are covered
    // (01-31 .. 04-10), so the runway is 04-11, 71 days after the as-of date. Nothing is at risk.
    let lots = [lot("BIG", CreditKind::Prepaid, "2026-01-01", "1000", None)];
    let l = run(
        &lots,
        &every_day("2026-01-01", "2026-01-30", "10"),
        "2026-01-30",
    );
    let p = &l.positions[0];
    assert_eq!(p.balance_usd, usd("700"));
    assert_eq!(p.burn_per_day_usd, usd("10"));
    assert_eq!(p.runway_date, Some(d("2026-04-11")));
    assert_eq!(p.runway_days, Some(71));
    assert_eq!(row(&l, "BIG").at_risk_usd, Money::ZERO);
    assert_eq!(row(&l, "BIG").status, LotStatus::Active);
    assert!(l.findings.is_empty(), "{:?}", l.findings);
}

#[test]
fn an_auto_reload_storm_is_a_finding_and_reloads_are_counted_per_week() {
    // Three reloads on Tuesday 2026-10-13 (the limit is two a day), one the week before.
    let lots = [
        lot("R0", CreditKind::AutoReload, "2026-10-06", "100", None),
        lot("R1", CreditKind::AutoReload, "2026-10-13", "100", None),
        lot("R2", CreditKind::AutoReload, "2026-10-13", "100", None),
        lot("R3", CreditKind::AutoReload, "2026-10-13", "100", None),
    ];
    let l = run(
        &lots,
        &every_day("2026-10-01", "2026-10-14", "30"),
        "2026-10-14",
    );
    let weeks: Vec<(NaiveDate, usize, Money)> = l
        .reloads
        .iter()
        .map(|w| (w.week_start, w.reloads, w.amount_usd))
        .collect();
    assert_eq!(
        weeks,
        vec![
            (d("2026-10-05"), 1, usd("100")),
            (d("2026-10-12"), 3, usd("300"))
        ]
    );
    let storms: Vec<&Finding> = l
        .findings
        .iter()
        .filter(|f| matches!(f, Finding::ReloadStorm { .. }))
        .collect();
    assert_eq!(
        storms,
        vec![&Finding::ReloadStorm {
            provider: tokenledger::vocab::Provider::Anthropic,
            day: d("2026-10-13"),
            reloads: 3,
            amount_usd: usd("300")
        }]
    );
    // Advice on the 30-day burn: 14 days × 30 = 420 over 30 days = $14/day.
    let a = &l.advice[0];
    assert_eq!(a.threshold_min_usd, usd("28"));
    assert_eq!(
        (a.top_up_min_usd, a.top_up_max_usd),
        (usd("98"), usd("196"))
    );
}

#[test]
fn a_console_balance_off_by_more_than_a_cent_fails_its_assertion() {
    // 500 bought, 120.50 used by 03-10: the ledger holds 379.50. The Console's 379.51 holds
    // (within a cent); 372.00 on 03-10 fails by -7.50 and names the lot.
    let lots = [lot("P", CreditKind::Prepaid, "2026-03-01", "500", None)];
    let days = daily(&[("2026-03-05", "100.25"), ("2026-03-10", "20.25")]);
    let snap = |day: &str, bal: &str| BalanceSnapshot {
        as_of: d(day),
        provider: tokenledger::vocab::Provider::Anthropic,
        balance: bal.parse().unwrap(),
        source_row: 2,
    };
    let snaps = [snap("2026-03-06", "399.76"), snap("2026-03-10", "372.00")];
    let l = run_with(&lots, &snaps, &days, Options::new(d("2026-03-31")));
    assert_eq!(l.assertions.len(), 2);
    assert!(l.assertions[0].holds, "{:?}", l.assertions[0]);
    assert_eq!(l.assertions[0].computed_usd, usd("399.75"));
    assert!(!l.assertions[1].holds);
    assert_eq!(l.assertions[1].computed_usd, usd("379.50"));
    assert_eq!(l.assertions[1].difference_usd, usd("-7.50"));
    let mismatch = l
        .findings
        .iter()
        .find(|f| matches!(f, Finding::BalanceMismatch { .. }))
        .unwrap();
    assert!(
        matches!(mismatch, Finding::BalanceMismatch { lots, .. } if lots == &["P".to_string()])
    );
}

#[test]
fn expiring_lots_are_found_at_the_tightest_horizon_they_fall_in() {
    // As of 2026-10-31 with no burn: a lot expiring in 5 days is inside 7, one in 45 inside 60,
    // one in 200 inside none.
    let lots = [
        lot(
            "SOON",
            CreditKind::Promotional,
            "2026-01-01",
            "10",
            Some("2026-11-05"),
        ),
        lot(
            "LATER",
            CreditKind::Promotional,
            "2026-01-01",
            "10",
            Some("2026-12-15"),
        ),
        lot(
            "FAR",
            CreditKind::Promotional,
            "2026-01-01",
            "10",
            Some("2027-05-19"),
        ),
    ];
    let l = run(&lots, &BTreeMap::new(), "2026-10-31");
    let horizons: Vec<(String, i64)> = l
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Expiring {
                lot_id,
                horizon_days,
                ..
            } => Some((lot_id.clone(), *horizon_days)),
            _ => None,
        })
        .collect();
    assert_eq!(horizons, vec![("SOON".into(), 7), ("LATER".into(), 60)]);
    assert_eq!(row(&l, "LATER").status, LotStatus::AtRisk);
}

#[test]
fn lots_bought_after_the_as_of_date_are_not_in_the_ledger() {
    let lots = [
        lot("OLD", CreditKind::Prepaid, "2026-01-01", "10", None),
        lot("NEW", CreditKind::Prepaid, "2026-05-01", "10", None),
    ];
    let l = run(&lots, &daily(&[("2026-03-01", "4")]), "2026-04-01");
    assert_eq!(l.lots.len(), 1);
    assert_eq!(l.positions[0].balance_usd, usd("6"));
}

/// Credit bought from a provider whose usage was never loaded (OpenAI credits beside Anthropic
/// data, before OpenAI usage is read): its burn is unknown, not zero — one `no_usage_data`
/// finding, its lot's status says so, no "at risk" or "low runway" guessed for it, no reload
/// advice; the Anthropic lot is judged as before.
#[test]
fn credit_of_a_provider_with_no_usage_data_is_unknown_not_at_risk() {
    use crate::common::{fixtures, ingest_ok, tl};
    let tmp = tempfile::tempdir().unwrap();
    let lots = tmp.path().join("credits.csv");
    std::fs::write(
        &lots,
        "lot_id,provider,kind,purchased_at,amount_usd,expires_at\n\
         oa-1,openai,prepaid,2026-09-01,500.00,\n\
         an-1,anthropic,prepaid,2026-09-01,100.00,\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    ingest_ok(
        &data,
        &[
            &fixtures().join("sample"),
            &fixtures().join("openai"),
            &lots,
        ],
    );
    let o = tl(
        &data,
        &["credits", "--as-of", "2026-10-20", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(3), "a finding: exit 3");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    let of = |p: &str| {
        findings
            .iter()
            .filter(|f| f["provider"] == p)
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(of("openai"), ["no_usage_data"], "{v}");
    assert_eq!(of("anthropic"), ["at_risk"], "{v}");
    let status = |id: &str| {
        v["lots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["lot_id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("oa-1"), "no_usage_data");
    assert_eq!(status("an-1"), "at_risk");
    assert!(
        v["advice"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["provider"] != "openai"),
        "{v}"
    );
}
