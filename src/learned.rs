//! Provider-list rates: for a model the price book does not know, the rate the provider's own
//! list amount implies on that day, so its usage is priced (status `provider_list`, said on
//! every report) instead of UNPRICED.
//!
//! Owns: deriving those rates from the lake (`sql/provider_list.sql`: the cost rows' list
//! amounts per UTC day × model × token type, and our tokens of the same models): per token
//! class, list amount ÷ tokens × 10⁶, rounded half away from zero to 6 decimals per MTok (the
//! book's precision; the residue shows in `reconcile`). The tier, context window and geo are
//! kept where the cost rows are split by them, else the day's rate covers every row of the
//! model. A class with tokens but no list amount (or the reverse) learns nothing for that key:
//! never a $0 rate for usage the provider charged.
//! Must not: override a rate the book has (a model the book knows is never learned), price rows
//! (that is `rating` and `report`), or write the lake.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::lake::{Layout, Table};
use crate::pricing::{Learned, LearnedKey, PriceBook, canonical_model};
use crate::query::{QueryError, Sql};
use crate::vocab::{N_CLASSES, TokenClass};

/// `sql/provider_list.sql`.
pub const SQL: &str = include_str!("../sql/provider_list.sql");

/// Per key: list amount and tokens per class.
type Sums = BTreeMap<LearnedKey, [(Decimal, i128); N_CLASSES]>;

fn day_of(us: Option<i64>) -> Option<NaiveDate> {
    DateTime::from_timestamp_micros(us?).map(|t| t.date_naive())
}

/// The rates the lake's cost rows imply for the models `book` lacks on their days (empty when
/// it knows every model, which costs one read of the small `cost` table).
pub fn rates(layout: &Layout, book: &PriceBook) -> Result<Learned, QueryError> {
    let mut sql = Sql::new();
    if !sql.table(layout, Table::Cost)? {
        return Ok(Learned::new());
    }
    let statements = crate::query::statements(SQL);
    let f = sql.run(&statements[0])?;
    let (prov, start, model) = (
        f.text("provider")?,
        f.micros("bucket_start")?,
        f.text("model")?,
    );
    let (tier, ctx, geo) = (
        f.text("service_tier")?,
        f.text("context_window")?,
        f.text("inference_geo")?,
    );
    let (token_type, amount) = (f.text("token_type")?, f.money("list_amount")?);
    let mut sums = Sums::new();
    let mut names = BTreeSet::new();
    for i in 0..f.height() {
        let (Some(p), Some(m), Some(d), Some(tt), Some(a)) = (
            prov[i].as_deref(),
            model[i].as_deref(),
            day_of(start[i]),
            token_type[i].as_deref(),
            amount[i],
        ) else {
            continue;
        };
        let canon = canonical_model(m);
        let Some(k) = TokenClass::ALL
            .iter()
            .position(|c| c.cost_report_type() == tt)
        else {
            continue;
        };
        if book.base(p, &canon, d).is_some() {
            continue;
        }
        names.insert(m.to_string());
        names.insert(canon.clone());
        let key = (
            p.into(),
            canon,
            d,
            tier[i].clone(),
            ctx[i].clone(),
            geo[i].clone(),
        );
        let e = sums.entry(key).or_default();
        e[k].0 += a.to_decimal().map_err(|e| QueryError::Type {
            column: "list_amount".into(),
            want: "a decimal".into(),
            got: e,
        })?;
    }
    if sums.is_empty() || !sql.table(layout, Table::Usage)? {
        return Ok(Learned::new());
    }
    let quoted: Vec<String> = names
        .iter()
        .map(|n| format!("'{}'", n.replace('\'', "''")))
        .collect();
    let u = sql.run(&statements[1].replace("{{models}}", &quoted.join(", ")))?;
    add_tokens(&u, &mut sums)?;
    Ok(divide(sums))
}

/// Adds our tokens to every key they fall under (a key's `None` tier, context or geo: any).
fn add_tokens(u: &crate::query::Frame, sums: &mut Sums) -> Result<(), QueryError> {
    let (prov, start, model) = (
        u.text("provider")?,
        u.micros("bucket_start")?,
        u.text("model")?,
    );
    let dims = [
        u.text("service_tier")?,
        u.text("context_window")?,
        u.text("inference_geo")?,
    ];
    let counts: Vec<Vec<Option<i128>>> = TokenClass::ALL
        .iter()
        .map(|c| u.count(c.column()))
        .collect::<Result<_, _>>()?;
    for i in 0..u.height() {
        let (Some(p), Some(m), Some(d)) =
            (prov[i].as_deref(), model[i].as_deref(), day_of(start[i]))
        else {
            continue;
        };
        let canon = canonical_model(m);
        let fits = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
        for (key, e) in sums.range_mut(
            (p.to_string(), canon.clone(), d, None, None, None)
                ..=(
                    p.to_string(),
                    canon.clone(),
                    d,
                    Some(MAX.into()),
                    Some(MAX.into()),
                    Some(MAX.into()),
                ),
        ) {
            if fits(&key.3, &dims[0][i]) && fits(&key.4, &dims[1][i]) && fits(&key.5, &dims[2][i]) {
                for (k, c) in counts.iter().enumerate() {
                    e[k].1 += c[i].unwrap_or(0);
                }
            }
        }
    }
    Ok(())
}

/// Above any tier, context or geo name (the range's upper bound).
const MAX: &str = "\u{10FFFF}";

/// list amount ÷ tokens × 10⁶ per class; a key with a class charged but not used (or used
/// but not charged) learns nothing.
fn divide(sums: Sums) -> Learned {
    let mut out = Learned::new();
    'keys: for (key, classes) in sums {
        let mut per = [None; N_CLASSES];
        for (r, (amount, tokens)) in per.iter_mut().zip(classes) {
            match (amount.is_zero(), tokens) {
                // Neither charged nor used: nothing learned (no price for the class).
                (true, 0) => {}
                (false, t) if t > 0 => {
                    let Some(v) = amount
                        .checked_mul(Decimal::from(1_000_000))
                        .and_then(|x| x.checked_div(Decimal::from(t)))
                    else {
                        continue 'keys;
                    };
                    *r = Some(
                        v.round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero)
                            .normalize(),
                    );
                }
                _ => continue 'keys,
            }
        }
        out.insert(key, per);
    }
    out
}
