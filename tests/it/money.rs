//! The rounding rule (src/money.rs) and money invariants.

use proptest::prelude::*;
use tokenledger::money::Money;
use tokenledger::money::{allocate_cents, cents_text, exact, round_cents};

fn fp(s: &str) -> i128 {
    Money::from_decimal(s.parse().unwrap()).unwrap().units()
}

#[test]
fn rounding_is_half_away_from_zero() {
    assert_eq!(round_cents(fp("0.005")), 1);
    assert_eq!(round_cents(fp("0.004999999999")), 0);
    assert_eq!(round_cents(fp("-0.005")), -1);
    assert_eq!(round_cents(fp("2.9201125")), 292);
}

#[test]
fn three_thirds_add_up_to_a_dollar() {
    let third = fp("0.333333333333");
    assert_eq!(allocate_cents(&[third, third, third]), vec![34, 33, 33]);
    assert_eq!(
        allocate_cents(&[
            fp("0.333333333334"),
            fp("0.333333333333"),
            fp("0.333333333333")
        ])
        .iter()
        .sum::<i128>(),
        100
    );
}

#[test]
fn exact_text() {
    assert_eq!(exact(fp("1.5")), "1.500000000000");
    assert_eq!(exact(fp("-0.000000000001")), "-0.000000000001");
    assert_eq!(cents_text(-5), "-0.05");
}

proptest! {
    #[test]
    fn rounded_rows_always_add_up_to_the_rounded_total(v in proptest::collection::vec(-10_000_000_000_000i128..10_000_000_000_000i128, 0..40)) {
        let cents = allocate_cents(&v);
        prop_assert_eq!(cents.iter().sum::<i128>(), round_cents(v.iter().sum()));
        for (c, x) in cents.iter().zip(&v) {
            // No row moves more than a cent from its own rounding.
            prop_assert!((c - round_cents(*x)).abs() <= 1);
        }
    }
}

#[test]
fn shared_cost_is_prorated_exactly_even_with_huge_weights() {
    use tokenledger::mail::bill::prorate;
    // 1 unit split 1:1:1 — the remainder goes to the first, nothing lost.
    assert_eq!(prorate(1, &[5, 5, 5]), vec![1, 0, 0]);
    assert_eq!(prorate(100, &[1, 3]), vec![25, 75]);
    // Weights whose products overflow 128 bits are scaled, never wrapped or saturated.
    let big = i128::MAX / 4;
    let shares = prorate(10_i128.pow(20), &[big, big, big / 2]);
    assert_eq!(shares.iter().sum::<i128>(), 10_i128.pow(20));
    assert_eq!(shares[0], shares[1]);
    // Proportions hold to ~18 significant digits: here within 10^-15 of the amount.
    assert!(
        (shares[0] - 2 * shares[2]).abs() <= 10_i128.pow(5),
        "{shares:?}"
    );
    assert_eq!(prorate(7, &[0, 0]), vec![0, 0], "no spend: nothing shared");
}

#[test]
fn a_prorata_split_adds_up_to_its_target_and_follows_the_weights() {
    use tokenledger::money::allocate_prorata;
    // Exact shares stay exact; the cent left goes to the largest remainder, ties to the first.
    assert_eq!(allocate_prorata(&[1, 1, 2], 400), vec![100, 100, 200]);
    assert_eq!(allocate_prorata(&[1, 1, 1], 100), vec![34, 33, 33]);
    assert_eq!(allocate_prorata(&[1, 1, 1], -100), vec![-34, -33, -33]);
    // No weight at all: equal shares; a zero weight gets nothing while others weigh.
    assert_eq!(allocate_prorata(&[0, 0], 3), vec![2, 1]);
    assert_eq!(allocate_prorata(&[0, 5], 3), vec![0, 3]);
    assert!(allocate_prorata(&[], 3).is_empty());
}

proptest! {
    #[test]
    fn prorata_parts_sum_exactly_and_stay_within_a_unit_of_their_share(
        weights in proptest::collection::vec(0i128..1_000_000_000_000_000, 1..40),
        big in 0i128..1_000_000_000_000_000_000_000_000,
        target in -10_000_000_000_000_000i128..10_000_000_000_000_000,
    ) {
        let parts = tokenledger::money::allocate_prorata(&weights, target);
        prop_assert_eq!(parts.iter().sum::<i128>(), target);
        let total: i128 = weights.iter().sum();
        if total > 0 {
            for (p, w) in parts.iter().zip(&weights) {
                // |part − target·w/total| < 1, in exact integer arithmetic.
                let diff = p * total - target * w;
                prop_assert!(diff.abs() < total, "part {} weight {} of {}", p, w, total);
            }
        }
        // Weights beyond 10¹⁸ in total are scaled first: the sum stays exact.
        let mut heavy = weights.clone();
        heavy.push(big);
        let parts = tokenledger::money::allocate_prorata(&heavy, target);
        prop_assert_eq!(parts.iter().sum::<i128>(), target);
    }
}
