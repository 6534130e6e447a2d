//! Money: fixed-point amounts and the one rounding rule.
//!
//! Owns: the lake's fixed-point representation (i128 at [`crate::lake::MONEY_SCALE`] = 12
//! fractional digits of a dollar), exact text, and rounding for presentation. Must not: be
//! used before presentation to round anything that is stored or summed.
//!
//! The rounding rule: an amount is presented in cents rounded half away from zero. A column of
//! rounded rows is adjusted by the largest-remainder method so that it adds up exactly to the
//! rounded total: every row gets its amount truncated to the cent, then the cents still missing
//! to reach the rounded total go one each to the rows with the largest truncated remainders
//! (ties: the earlier row). No row moves by more than one cent from its own rounding.

use crate::lake::MONEY_SCALE;

/// Fixed-point units in one cent.
const CENT: i128 = 10i128.pow(MONEY_SCALE - 2);

/// Exact text of a fixed-point amount (all 12 fractional digits).
pub fn exact(v: i128) -> String {
    crate::query::fmt_decimal(v, MONEY_SCALE as usize)
}

/// Rounds to whole cents, half away from zero.
pub fn round_cents(v: i128) -> i128 {
    let q = v / CENT;
    let r = v % CENT;
    if r.abs() * 2 >= CENT {
        q + v.signum()
    } else {
        q
    }
}

/// `1234` cents → `"12.34"`.
pub fn cents_text(c: i128) -> String {
    crate::query::fmt_decimal(c, 2)
}

/// Rounds each amount to cents so that the rounded rows add up to the rounded total.
pub fn allocate_cents(amounts: &[i128]) -> Vec<i128> {
    let total: i128 = amounts.iter().sum();
    let target = round_cents(total);
    let floor = |v: i128| v.div_euclid(CENT);
    let mut cents: Vec<i128> = amounts.iter().map(|&v| floor(v)).collect();
    // 0 ≤ missing ≤ rows: Σ floors ≤ floor(total) ≤ round(total), and each floor is within a cent.
    let mut missing = target - cents.iter().sum::<i128>();
    // Order by remainder, largest first; stable, so ties go to the earlier row.
    let mut order: Vec<usize> = (0..amounts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(amounts[i].rem_euclid(CENT)));
    let n = order.len();
    let mut k = 0;
    while missing > 0 && n > 0 {
        cents[order[k % n]] += 1;
        missing -= 1;
        k += 1;
    }
    cents
}

/// A fixed-point value of any scale (e.g. a polars decimal sum) in the lake's scale, exactly;
/// `None` if that would drop digits (never rounds).
pub fn to_lake_scale(v: i128, scale: usize) -> Option<i128> {
    let target = MONEY_SCALE as usize;
    if scale <= target {
        v.checked_mul(10i128.pow((target - scale) as u32))
    } else {
        let f = 10i128.pow((scale - target) as u32);
        (v % f == 0).then(|| v / f)
    }
}
