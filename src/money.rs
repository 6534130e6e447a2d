//! Money: exact amounts and the one rounding rule.
//!
//! Owns: [`Money`], the lake's fixed point (an `i128` count of 10⁻¹² dollars, the same value
//! as a Parquet `DECIMAL(28,12)`): parsing, exact rescaling, checked sums, exact text, and
//! rounding for presentation. Must not: import anything of the crate, or be used before
//! presentation to round anything that is stored or summed.
//!
//! The rounding rule: an amount is presented in cents rounded half away from zero. A column of
//! rounded rows is adjusted by the largest-remainder method so that it adds up exactly to the
//! rounded total: every row gets its amount truncated to the cent, then the cents still missing
//! to reach the rounded total go one each to the rows with the largest truncated remainders
//! (ties: the earlier row). No row moves by more than one cent from its own rounding.

use std::fmt;

use rust_decimal::Decimal;

/// Fractional digits of a dollar the lake keeps: cents with 10 more digits, which hold a
/// per-token price of a list rate in $/MTok with 6 decimals exactly.
pub const SCALE: u32 = 12;
/// Digits of the lake's money columns (`DECIMAL(28,12)`: 16 digits of dollars, far beyond any
/// bill). Not 38: SQL engines size a sum or a difference of two decimals one digit wider than
/// its operands, and Spark, with no digit left above 38, silently drops a fractional digit
/// (`a + b` of two `DECIMAL(38,12)` is `DECIMAL(38,11)`). At 28, row arithmetic keeps every
/// digit on Spark, DuckDB, Trino and polars, and `SUM` widens to `DECIMAL(38,12)` everywhere.
pub const PRECISION: u8 = 28;

/// The largest amount a lake money column holds: 10¹⁶ dollars less one unit.
pub const MAX_UNITS: i128 = 10i128.pow(PRECISION as u32) - 1;

/// Fixed-point units in one cent.
pub const CENT: i128 = 10i128.pow(SCALE - 2);

/// An exact amount of dollars (or of the currency's major unit), scale 12.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i128);

impl Money {
    pub const ZERO: Money = Money(0);

    /// From units of 10⁻¹² (the lake's `Decimal128` value).
    pub const fn from_units(units: i128) -> Money {
        Money(units)
    }
    /// Units of 10⁻¹² (the lake's `Decimal128` value).
    pub const fn units(self) -> i128 {
        self.0
    }
    /// A fixed-point value of any scale (e.g. a polars decimal sum), exactly; `None` if that
    /// would drop digits or overflow (never rounds).
    pub fn from_scaled(v: i128, scale: u32) -> Option<Money> {
        if scale <= SCALE {
            v.checked_mul(10i128.pow(SCALE - scale)).map(Money)
        } else {
            let f = 10i128.checked_pow(scale - SCALE)?;
            (v % f == 0).then(|| Money(v / f))
        }
    }
    /// A rust_decimal amount, exactly, or why not.
    pub fn from_decimal(d: Decimal) -> Result<Money, String> {
        if d.scale() > SCALE {
            let n = d.normalize();
            if n.scale() > SCALE {
                return Err(format!("{d} has more than {SCALE} fractional digits"));
            }
            return Money::from_decimal(n);
        }
        Money::from_scaled(d.mantissa(), d.scale())
            .filter(|m| m.0.abs() <= MAX_UNITS)
            .ok_or_else(|| format!("{d} is too large for the lake's DECIMAL(28,12)"))
    }
    /// As rust_decimal (exact; fails only beyond its 96 bits).
    pub fn to_decimal(self) -> Result<Decimal, String> {
        Decimal::try_from_i128_with_scale(self.0, SCALE)
            .map(|d| d.normalize())
            .map_err(|e| format!("{self}: {e}"))
    }
    pub fn checked_add(self, o: Money) -> Option<Money> {
        self.0.checked_add(o.0).map(Money)
    }
    pub fn checked_sub(self, o: Money) -> Option<Money> {
        self.0.checked_sub(o.0).map(Money)
    }
    /// The sum of `items`, or `None` when it overflows.
    pub fn sum(items: impl IntoIterator<Item = Money>) -> Option<Money> {
        items
            .into_iter()
            .try_fold(Money::ZERO, |acc, m| acc.checked_add(m))
    }
    pub fn abs(self) -> Money {
        Money(self.0.abs())
    }
    /// `self × n`, exactly, or `None` on overflow.
    pub fn checked_mul(self, n: i128) -> Option<Money> {
        self.0.checked_mul(n).map(Money)
    }
    /// `self ÷ n` (n > 0) to the nearest unit of 10⁻¹², half away from zero: for means such
    /// as a burn rate, which no fixed point holds exactly. Never used on stored amounts.
    pub fn div_round(self, n: i128) -> Money {
        assert!(n > 0, "division by a positive count");
        let (q, r) = (self.0 / n, self.0 % n);
        Money(if r.abs() * 2 >= n {
            q + self.0.signum()
        } else {
            q
        })
    }
    /// Rounded to the cent, as text: `12.35` (presentation only).
    pub fn cents(self) -> String {
        cents_text(self.round_cents())
    }
    /// Rounded to the cent with thousands separators, `3,711.22` (what sentences show).
    pub fn usd(self) -> String {
        usd_text(self.round_cents())
    }
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
    /// Whole cents, rounded half away from zero (presentation only).
    pub fn round_cents(self) -> i128 {
        round_cents(self.0)
    }
}

/// All 12 fractional digits: `1.230000000000`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fixed_text(self.0, SCALE as usize))
    }
}

/// Money serialises as its exact text (JSON numbers would go through a float).
impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Exact text of a fixed-point value (`v` × 10⁻ˢᶜᵃˡᵉ).
pub fn fixed_text(v: i128, scale: usize) -> String {
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let s = if scale == 0 {
        digits
    } else if digits.len() > scale {
        format!(
            "{}.{}",
            &digits[..digits.len() - scale],
            &digits[digits.len() - scale..]
        )
    } else {
        format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
    };
    if neg { format!("-{s}") } else { s }
}

/// Exact text of a fixed-point amount at the lake's scale (all 12 fractional digits).
pub fn exact(v: i128) -> String {
    fixed_text(v, SCALE as usize)
}

/// Rounds fixed-point units to whole cents, half away from zero.
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
/// `1234567` → `1,234,567` (table output only; CSV and JSON stay plain).
pub fn group_thousands(s: &str) -> String {
    let (sign, digits) = s.strip_prefix('-').map_or(("", s), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// Cents as dollars with thousands separators: `371122` → `3,711.22` (presentation only).
pub fn usd_text(c: i128) -> String {
    group_number(&cents_text(c))
}

/// A decimal's text with its integer part grouped: `-24990.98` → `-24,990.98`.
pub fn group_number(t: &str) -> String {
    match t.split_once('.') {
        Some((i, f)) => format!("{}.{f}", group_thousands(i)),
        None => group_thousands(t),
    }
}

pub fn cents_text(c: i128) -> String {
    fixed_text(c, 2)
}

/// Rounds each amount to cents so that the rounded rows add up to the rounded total.
pub fn allocate_cents(amounts: &[i128]) -> Vec<i128> {
    let total: i128 = amounts.iter().sum();
    allocate_cents_to(amounts, round_cents(total))
}

/// Rounds each amount to cents so that the rounded rows add up to `target` cents (a total
/// rounded elsewhere, e.g. the difference of two rounded subtotals, which is within a cent or
/// two of the exact sum). Largest remainder up, or smallest remainder down when the floors
/// already exceed the target; ties go to the earlier row.
pub fn allocate_cents_to(amounts: &[i128], target: i128) -> Vec<i128> {
    let floor = |v: i128| v.div_euclid(CENT);
    let mut cents: Vec<i128> = amounts.iter().map(|&v| floor(v)).collect();
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
    k = 0;
    while missing < 0 && n > 0 {
        cents[order[n - 1 - k % n]] -= 1;
        missing += 1;
        k += 1;
    }
    cents
}

/// Splits `target` (any fixed-point unit) over rows in proportion to `weights` (≥ 0), so the
/// parts add up to `target` exactly: each part is the floor of its exact share, and the units
/// left go one each to the largest remainders (ties to the earlier row). All weights zero:
/// equal shares. Used to allocate an invoice's cents and a day's credit draw to rows.
pub fn allocate_prorata(weights: &[i128], target: i128) -> Vec<i128> {
    if weights.is_empty() {
        return Vec::new();
    }
    let equal = weights.iter().all(|&w| w <= 0);
    let mut w: Vec<i128> = weights
        .iter()
        .map(|&w| if equal { 1 } else { w.max(0) })
        .collect();
    // Products below stay under 10³⁶: weights beyond 10¹⁸ in total are scaled down first
    // (the shares move by less than 10⁻¹⁸ of the target; their sum stays exact).
    const LIMIT: i128 = 1_000_000_000_000_000_000;
    let big: i128 = w.iter().sum();
    if big > LIMIT {
        let f = big / LIMIT + 1;
        w.iter_mut().for_each(|x| *x /= f);
        if w.iter().all(|&x| x == 0) {
            w.iter_mut().for_each(|x| *x = 1);
        }
    }
    let total: i128 = w.iter().sum();
    let (sign, t) = (target.signum(), target.abs());
    // t × w / total without overflow for any i128 inputs the lake holds: (q·total + r)·w.
    let (q, r) = (t / total, t % total);
    let mut parts: Vec<i128> = Vec::with_capacity(w.len());
    let mut rems: Vec<(i128, usize)> = Vec::with_capacity(w.len());
    for (i, &wi) in w.iter().enumerate() {
        let prod = r * wi; // r < total and wi ≤ total
        parts.push(q * wi + prod / total);
        rems.push((prod % total, i));
    }
    let mut left = t - parts.iter().sum::<i128>();
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rems.iter().cycle().take(rems.len() * 2) {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts.iter().map(|p| p * sign).collect()
}

/// A fixed-point value of any scale in the lake's scale, exactly; `None` if that would drop
/// digits (never rounds). See [`Money::from_scaled`].
pub fn to_lake_scale(v: i128, scale: usize) -> Option<i128> {
    Money::from_scaled(v, scale as u32).map(Money::units)
}
