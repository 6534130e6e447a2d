//! The chargeback's one pass over the month's usage: each usage part of the three partitions
//! a business month touches is read column by column (projected Arrow batches, text as
//! dictionary codes, one part per thread), priced on the fly and summed per combination of the
//! `--by` dimensions. Nothing is materialised and nothing joined per row: the business day is
//! computed once per bucket, the rate once per distinct (model, tier, context, geo, day) with
//! the same `rating::row_cost` that fills `rated_usage`, names and teams once per distinct
//! (key, workspace). So a month never rated costs one scan of its usage.
//! `sql/report.sql` + `sql/report_combine.sql` over `rated_usage` are the same computation in
//! SQL, the one analysts run; a test checks both give the same lines, to the unit, for every
//! dimension.
//!
//! Must not: decide a rate (that is `pricing`), write the lake, or use polars.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::TimestampMicrosecondType;

use super::{Dim, Line, ReportError, TeamRow, UNALLOCATED};
use crate::intern::{NONE, Strings};
use crate::lake::LakeError;
use crate::lake::io as lio;
use crate::money::Money;
use crate::vocab::{COUNT_COLUMNS, Month, N_COUNTS, PricingStatus};

const TEXT: [&str; 14] = [
    "bucket_width",
    "provider",
    "workspace_id",
    "workspace_name",
    "api_key_id",
    "api_key_name",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "product",
    "actor_type",
    "actor_id",
    "actor_email",
];

/// The grouping columns of a line: workspace id and name, model, key id and name, tier, team,
/// product, actor type, id and email, provider.
const GROUPS: usize = 12;

/// A row's signature: provider, workspace id and name, key id and name, model, tier, context,
/// geo, product, actor type, id and email (the last four `NONE` unless asked for), UTC day.
const SIG: usize = 14;

/// What a line is keyed by: one code per grouping column (`NONE` where the dimension is not
/// asked for), the day as days since 1970, the status.
type Key = ([u32; GROUPS], i32, u32);

/// Sums of one line: the six counts, the list cost (priced rows), and whether any row had one.
#[derive(Default, Clone, Copy)]
struct Acc {
    counts: [i128; N_COUNTS],
    cost: i128,
    /// Priced usage in another unit (`cost_unit`), summed row by row.
    extra: i128,
}

impl Acc {
    /// Adds one usage row: its counts and the cost of its priced units.
    fn add_row(&mut self, row: [i64; N_COUNTS], extra: i128) -> Result<(), ReportError> {
        for (c, v) in self.counts.iter_mut().zip(row) {
            *c += i128::from(v);
        }
        self.extra = self
            .extra
            .checked_add(extra)
            .ok_or_else(|| ReportError::Overflow("rated_usage.cost_unit".into()))?;
        Ok(())
    }
    /// Adds counts and a cost, checked: a sum that would wrap is an error naming the column.
    fn add(&mut self, counts: [i128; N_COUNTS], cost: i128) -> Result<(), ReportError> {
        for (a, b) in self.counts.iter_mut().zip(counts) {
            *a = a
                .checked_add(b)
                .ok_or_else(|| ReportError::Overflow("rated_usage counts".into()))?;
        }
        self.cost = self
            .cost
            .checked_add(cost)
            .ok_or_else(|| ReportError::Overflow("rated_usage.list_cost".into()))?;
        Ok(())
    }
}

/// The names and teams the lake's latest lists and the config give.
pub struct Lookup {
    /// workspace id → name, API key id → name (latest lists).
    pub workspace_names: HashMap<String, String>,
    pub key_names: HashMap<String, String>,
    /// kind (`api_key` | `workspace`) × id or name → team.
    pub teams: HashMap<(&'static str, String), String>,
}

impl Lookup {
    pub fn new(
        workspace_names: HashMap<String, String>,
        key_names: HashMap<String, String>,
        rows: &[TeamRow],
    ) -> Lookup {
        Lookup {
            workspace_names,
            key_names,
            teams: rows
                .iter()
                .map(|r| ((r.kind, r.name.clone()), r.team.clone()))
                .collect(),
        }
    }
    /// (workspace name, key name, team) of a row, as `sql/report.sql` resolves them.
    fn resolve(
        &self,
        ws: Option<&str>,
        ws_name: Option<&str>,
        key: Option<&str>,
        key_name: Option<&str>,
    ) -> (Option<String>, String, String) {
        let wn = ws
            .and_then(|w| self.workspace_names.get(w).cloned())
            .or(ws_name.map(str::to_string));
        let kn = key
            .and_then(|k| self.key_names.get(k).cloned())
            .or(key_name.map(str::to_string));
        let team = |kind: &'static str, v: Option<&str>| {
            v.and_then(|v| self.teams.get(&(kind, v.to_string())).cloned())
        };
        let t = team("api_key", key)
            .or_else(|| team("api_key", kn.as_deref()))
            .or_else(|| team("workspace", ws))
            .or_else(|| team("workspace", wn.as_deref()))
            .unwrap_or_else(|| UNALLOCATED.to_string());
        let kn = kn.unwrap_or_else(|| "(Console, no key)".to_string());
        (wn, kn, t)
    }
}

/// The lines of one part: strings, and key → sums.
struct Part {
    strings: Strings,
    lines: HashMap<Key, Acc>,
}

/// A row signature's line slot, its rate and the rate's [`crate::rating::safe_count`] (`None`:
/// unpriced, no rate in force or none that fits).
#[derive(Clone, Copy)]
struct SigInfo {
    slot: u32,
    rate: u32,
    safe: Option<u64>,
    /// Bit k: count k (token class or web search) has no price at this rate.
    absent: u8,
}

impl Part {
    /// Prices the sums of each `signature | day | UNPRICED` (packed) and adds them to the
    /// lines; `status` is [priced, unpriced, provider_list].
    fn unpack(
        &mut self,
        sums: impl IntoIterator<Item = (u64, Acc)>,
        sigs: &[SigInfo],
        slots: &Slots,
        rates: &Rates,
        status: [u32; 3],
    ) -> Result<(), ReportError> {
        for (packed, acc) in sums {
            let info = sigs[(packed >> 33) as usize];
            let k = slots.keys[info.slot as usize];
            let d = ((packed >> 1) & 0xFFFF_FFFF) as u32 as i32;
            let unpriced = packed & 1 == 1;
            let rate = &rates.list[info.rate as usize];
            let cost = match (unpriced, rate) {
                (false, Some(r)) => crate::rating::sum_cost(r, acc.counts)
                    .and_then(|c| c.checked_add(acc.extra))
                    .ok_or_else(|| ReportError::Overflow("rated_usage.list_cost".into()))?,
                (false, None) => acc.extra,
                (true, _) => 0,
            };
            let st = match (unpriced, rate) {
                (true, _) => status[1],
                (false, Some(r)) if r.provider_list => status[2],
                _ => status[0],
            };
            self.lines
                .entry((k, d, st))
                .or_default()
                .add(acc.counts, cost)?;
        }
        Ok(())
    }
}

/// Which grouping columns ([`GROUPS`]) the dimensions ask for (the day is the key's second
/// field).
fn wanted(dims: &[Dim]) -> ([bool; GROUPS], bool) {
    let mut w = [false; GROUPS];
    let mut day = false;
    for d in dims {
        match d {
            Dim::Workspace => (w[0], w[1]) = (true, true),
            Dim::Model => w[2] = true,
            Dim::ApiKey => (w[3], w[4]) = (true, true),
            Dim::ServiceTier => w[5] = true,
            Dim::Team => w[6] = true,
            Dim::Product => w[7] = true,
            Dim::Actor => (w[8], w[9], w[10]) = (true, true, true),
            Dim::Provider => w[11] = true,
            Dim::Day => day = true,
        }
    }
    (w, day)
}

fn missing(path: &Path, column: &str) -> ReportError {
    ReportError::Lake(LakeError::Column {
        path: path.to_path_buf(),
        column: column.into(),
    })
}

type Fast<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Rates by (provider, model, tier, context, geo, UTC day), `None` when unpriced.
#[derive(Default)]
struct Rates {
    index: Fast<([u32; 5], i32), u32>,
    list: Vec<Option<crate::pricing::Rate>>,
}

/// The distinct line keys (without day and status) of a part, numbered.
#[derive(Default)]
struct Slots {
    index: Fast<[u32; GROUPS], u32>,
    keys: Vec<[u32; GROUPS]>,
}

/// The number of the rate of (provider, model, tier, context, geo) on UTC day `utc`, looked up
/// once.
fn rate_of(
    k: [u32; 5],
    utc: i32,
    strings: &Strings,
    cache: &mut crate::pricing::RateCache,
    rates: &mut Rates,
) -> u32 {
    if let Some(r) = rates.index.get(&(k, utc)) {
        return *r;
    }
    let [prov, model, tier, ctx, geo] = k;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
    let day = epoch + chrono::TimeDelta::days(utc.into());
    let s = strings;
    let rate = cache
        .get(
            s.get(prov).unwrap_or_default(),
            s.get(model),
            day,
            s.get(tier),
            s.get(ctx),
            s.get(geo),
        )
        .as_ref()
        .ok()
        .cloned();
    let r = rates.list.len() as u32;
    rates.list.push(rate);
    rates.index.insert((k, utc), r);
    r
}

/// The line slot and the rate of a row signature ([`SIG`]): names and team resolved, the model
/// aliased, the rate looked up, once per signature.
fn signature(
    sig: &[u32; SIG],
    strings: &mut Strings,
    cache: &mut crate::pricing::RateCache,
    rates: &mut Rates,
    slots: &mut Slots,
    look: &Lookup,
    want: &[bool; GROUPS],
) -> SigInfo {
    let [prov, ws, wsn, key, keyn, model, tier, ctx, geo] = std::array::from_fn(|j| sig[j]);
    let [product, atype, aid, aemail, utc] = std::array::from_fn(|j| sig[9 + j]);
    let r = rate_of(
        [prov, model, tier, ctx, geo],
        utc as i32,
        strings,
        cache,
        rates,
    );
    let (wn, kn, team) = look.resolve(
        strings.get(ws),
        strings.get(wsn),
        strings.get(key),
        strings.get(keyn),
    );
    let wn = wn.map_or(NONE, |w| strings.intern(&w));
    let (kn, team) = (strings.intern(&kn), strings.intern(&team));
    let canon = match strings.get(model).map(crate::pricing::canonical_model) {
        Some(a) => strings.intern(&a),
        None => NONE,
    };
    let all = [
        ws, wn, canon, key, kn, tier, team, product, atype, aid, aemail, prov,
    ];
    let k: [u32; GROUPS] = std::array::from_fn(|j| if want[j] { all[j] } else { NONE });
    let slot = match slots.index.get(&k) {
        Some(s) => *s,
        None => {
            let s = slots.keys.len() as u32;
            slots.keys.push(k);
            slots.index.insert(k, s);
            s
        }
    };
    let rate = rates.list[r as usize].as_ref();
    let safe = rate.and_then(crate::rating::safe_count);
    SigInfo {
        slot,
        rate: r,
        safe,
        absent: rate.map_or(0, crate::rating::absent_mask),
    }
}

/// The distinct row signatures of a part, numbered, with their [`SigInfo`].
#[derive(Default)]
struct Signatures {
    /// Signatures packed into 128 bits ([`pack_signature`]), and the rare others as they are.
    packed: Fast<u128, u32>,
    other: Fast<[u32; SIG], u32>,
    infos: Vec<SigInfo>,
    /// The UTC day of each signature (its last field).
    utc: Vec<i32>,
}

impl Signatures {
    /// The number of `sig`, resolved by `info` the first time it is seen.
    fn id(&mut self, sig: [u32; SIG], info: impl FnOnce() -> SigInfo) -> u32 {
        let packed = pack_signature(&sig);
        let known = match packed {
            Some(k) => self.packed.get(&k),
            None => self.other.get(&sig),
        };
        if let Some(id) = known {
            return *id;
        }
        let id = self.infos.len() as u32;
        self.infos.push(info());
        self.utc.push(sig[SIG - 1] as i32);
        match packed {
            Some(k) => self.packed.insert(k, id),
            None => self.other.insert(sig, id),
        };
        id
    }
}

/// The counts summed per signature, business day and UNPRICED, by signature number: the business
/// day of a row is its UTC day or the day before or after (a zone is less than a day off UTC),
/// so each signature has six slots and no row needs a second hash lookup.
#[derive(Default)]
struct Sums {
    /// signature → [day before, same day, day after] × [priced, unpriced]
    slots: Vec<[Option<Acc>; 6]>,
    /// Any other day (never, for a real zone): `signature | day | UNPRICED` packed.
    other: Fast<u64, Acc>,
}

impl Sums {
    /// The sums of signature `id` (of UTC day `utc`) on business day `day`, priced or not.
    /// Without `--by day` the caller gives `day == utc`.
    fn acc(&mut self, id: u32, utc: i32, day: i32, unpriced: bool) -> &mut Acc {
        let (id, off) = (id as usize, day - utc);
        if !(-1..=1).contains(&off) {
            return self.other.entry(pack_line(id, day, unpriced)).or_default();
        }
        if self.slots.len() <= id {
            self.slots.resize(id + 1, [None; 6]);
        }
        let slot = (off + 1) as usize * 2 + usize::from(unpriced);
        self.slots[id][slot].get_or_insert_with(Acc::default)
    }
    /// Every sum keyed `signature | business day (0 without --by day) | UNPRICED`, packed.
    fn packed(self, utc: &[i32], want_day: bool) -> Vec<(u64, Acc)> {
        let mut out: Vec<(u64, Acc)> = Vec::new();
        for (id, slots) in self.slots.into_iter().enumerate() {
            for (slot, acc) in slots.into_iter().enumerate() {
                let Some(acc) = acc else { continue };
                let day = if want_day {
                    utc[id] + (slot / 2) as i32 - 1
                } else {
                    0
                };
                out.push((pack_line(id, day, slot % 2 == 1), acc));
            }
        }
        out.extend(self.other);
        out
    }
}

/// `signature | day | UNPRICED` in one `u64`.
fn pack_line(id: usize, day: i32, unpriced: bool) -> u64 {
    ((id as u64) << 33) | (u64::from(day as u32) << 1) | u64::from(unpriced)
}

/// Whether a row prices: within the rate's safe count it does, unless it has usage of a class
/// the rate has no price for; past it, it is priced alone and may not fit (UNPRICED, as rating
/// marks it); no rate, no price. Rows with usage in another unit or audio tokens are decided by
/// [`Others::price`].
fn fits(info: SigInfo, row: [i64; N_COUNTS], rates: &Rates) -> bool {
    let mut bits = info.absent;
    while bits != 0 {
        if row[bits.trailing_zeros() as usize] != 0 {
            return false;
        }
        bits &= bits - 1;
    }
    match info.safe {
        Some(safe) if row.iter().all(|c| c.unsigned_abs() <= safe) => true,
        Some(_) => rates.list[info.rate as usize]
            .as_ref()
            .is_some_and(|r| crate::rating::row_cost(r, row).is_ok()),
        None => false,
    }
}

/// A row signature in 128 bits when its product and actor are not asked for, each of its nine
/// other codes is below 4095 (12 bits each, NULL as 4095) and its day fits 20 bits, as in any
/// part of a few thousand distinct strings: one cheap hash and compare per row. `None`: the
/// signature is looked up as it is.
fn pack_signature(sig: &[u32; SIG]) -> Option<u128> {
    let utc = sig[SIG - 1];
    if utc >= 1 << 20 || sig[9..SIG - 1].iter().any(|&c| c != NONE) {
        return None;
    }
    let mut k = u128::from(utc) << 108;
    for (j, &c) in sig[..9].iter().enumerate() {
        let c = match c {
            NONE => 4095,
            c if c < 4095 => c,
            _ => return None,
        };
        k |= u128::from(c) << (12 * j);
    }
    Some(k)
}

/// How one part is priced and dated.
pub struct Pricing<'a> {
    pub book: &'a crate::pricing::PriceBook,
    pub tz: chrono_tz::Tz,
}

/// The UTC day and business day of a bucket (days since 1970) and whether it is in the month,
/// computed once per bucket start (rows come bucket by bucket).
struct Calendar {
    /// The code of `1d` in this part's strings.
    daily: Option<u32>,
    month: Month,
    tz: chrono_tz::Tz,
    last: Option<(i64, u32, (i32, i32, bool))>,
}

impl Calendar {
    fn day(&mut self, us: i64, width: u32) -> (i32, i32, bool) {
        use chrono::Datelike;
        if let Some((u, w, v)) = self.last
            && u == us
            && w == width
        {
            return v;
        }
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
        let t = crate::lake::batch::from_micros(us);
        let d = crate::rating::business_day(t, Some(width) == self.daily, self.tz);
        let inside =
            d.year() == i32::from(self.month.year()) && d.month() == u32::from(self.month.month());
        let v = (
            (t.date_naive() - epoch).num_days() as i32,
            (d - epoch).num_days() as i32,
            inside,
        );
        self.last = Some((us, width, v));
        v
    }
}

/// The count columns, what a row has besides tokens, and the bucket starts of a batch.
type BatchColumns<'a> = (
    Vec<&'a Int64Array>,
    Others<'a>,
    &'a TimestampMicrosecondArray,
);

/// A batch's usage in another unit (`unit`, `unit_quantity`) and its audio tokens: rare rows,
/// priced one by one as rating prices them ([`crate::rating::Units`]).
struct Others<'a> {
    unit: &'a arrow::array::StringArray,
    quantity: &'a Int64Array,
    audio: [&'a Int64Array; 2],
}

impl Others<'_> {
    /// Whether row `i` has any (every count is non-negative).
    fn any(&self, i: usize) -> bool {
        (self.quantity.value(i) | self.audio[0].value(i) | self.audio[1].value(i)) != 0
    }
    /// Whether row `i` prices, and the cost of its units (lake units), as rating decides:
    /// units with a price in force price without a token rate when the row has no tokens.
    fn price(
        &self,
        i: usize,
        (provider, day): (Option<&str>, i32),
        (info, row, rates): (SigInfo, [i64; N_COUNTS], &Rates),
        book: &crate::pricing::PriceBook,
    ) -> (bool, i128) {
        let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")
            + chrono::TimeDelta::days(i64::from(day));
        let unit = arrow::array::Array::is_valid(self.unit, i)
            .then(|| (self.unit.value(i), self.quantity.value(i)));
        let audio = self.audio[0]
            .value(i)
            .saturating_add(self.audio[1].value(i));
        let u = crate::rating::Units::of(book, (provider.unwrap_or(""), date), unit, audio);
        let Some((per, n)) = u.priced else {
            return (false, 0);
        };
        let tokens_price = row.iter().all(|c| *c == 0) || fits(info, row, rates);
        match per.checked_mul(i128::from(n)) {
            Some(c) if tokens_price && c.abs() <= crate::money::MAX_UNITS => (true, c),
            _ => (false, 0),
        }
    }
}

/// A usage batch's text columns as codes (into `text`, one buffer per column, reused from
/// batch to batch), its count columns and its bucket starts.
fn batch_columns<'a>(
    b: &'a arrow::record_batch::RecordBatch,
    path: &Path,
    strings: &mut Strings,
    text: &mut [Vec<u32>; SIG],
) -> Result<BatchColumns<'a>, ReportError> {
    for (c, out) in TEXT.iter().zip(text.iter_mut()) {
        b.column_by_name(c)
            .and_then(|a| strings.codes_into(a.as_ref(), out))
            .ok_or_else(|| missing(path, c))?;
    }
    let counts: Vec<&Int64Array> = COUNT_COLUMNS
        .iter()
        .map(|c| {
            b.column_by_name(c)
                .and_then(|a| a.as_any().downcast_ref::<Int64Array>())
                .ok_or_else(|| missing(path, c))
        })
        .collect::<Result<_, _>>()?;
    let int = |c: &'static str| {
        b.column_by_name(c)
            .and_then(|a| a.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| missing(path, c))
    };
    let units = Others {
        unit: b
            .column_by_name("unit")
            .and_then(|a| a.as_any().downcast_ref::<arrow::array::StringArray>())
            .ok_or_else(|| missing(path, "unit"))?,
        quantity: int("unit_quantity")?,
        audio: [int("input_audio_tokens")?, int("output_audio_tokens")?],
    };
    let start = b
        .column_by_name("bucket_start")
        .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| missing(path, "bucket_start"))?;
    Ok((counts, units, start))
}

/// The columns a part's scan reads: the signature's text, the counts, what a row has besides
/// tokens, the bucket start.
fn projected() -> Vec<&'static str> {
    let mut columns: Vec<&str> = TEXT.to_vec();
    columns.extend(COUNT_COLUMNS);
    columns.extend([
        "unit",
        "unit_quantity",
        "input_audio_tokens",
        "output_audio_tokens",
        "bucket_start",
    ]);
    columns
}

fn part(
    path: &Path,
    month: Month,
    dims: &[Dim],
    look: &Lookup,
    pricing: &Pricing,
) -> Result<Part, ReportError> {
    let (want, want_day) = wanted(dims);
    let mut p = Part {
        strings: Strings::default(),
        lines: HashMap::new(),
    };
    let mut cache = crate::pricing::RateCache::new(pricing.book);
    // A row's signature (its text codes and UTC day) → its index in `infos`: the line slot and
    // the rate, found once per signature.
    let mut sigs = Signatures::default();
    let mut text: [Vec<u32>; SIG] = Default::default();
    let mut rates = Rates::default();
    let mut slots = Slots::default();
    // The counts summed per signature, business day and UNPRICED: pricing is linear, so the
    // sums are priced once at the end (`sum_cost`), to the unit the rows would give.
    let mut sums = Sums::default();
    let statuses = [
        PricingStatus::Priced,
        PricingStatus::Unpriced,
        PricingStatus::ProviderList,
    ]
    .map(|s| p.strings.intern(s.as_str()));
    for b in lio::read_batches_dictionary(path, &projected(), &TEXT)? {
        let b = b?;
        let (counts, units, start) = batch_columns(&b, path, &mut p.strings, &mut text)?;
        let mut cal = Calendar {
            daily: p.strings.code_of("1d"),
            month,
            tz: pricing.tz,
            last: None,
        };
        let counts: Vec<&[i64]> = counts.iter().map(|c| c.values().as_ref()).collect();
        for (i, &width) in text[0].iter().enumerate() {
            let (utc, local, inside) = cal.day(start.value(i), width);
            if !inside {
                continue;
            }
            // Product and actor only where asked for: otherwise their rows are one signature.
            let sig: [u32; SIG] = std::array::from_fn(|j| match j {
                _ if j == SIG - 1 => utc as u32,
                9..=12 if !want[j - 2] => NONE,
                _ => text[j + 1][i],
            });
            let row: [i64; N_COUNTS] = std::array::from_fn(|k| counts[k][i]);
            // Once per distinct row signature: its line slot and its rate.
            let id = sigs.id(sig, || {
                signature(
                    &sig,
                    &mut p.strings,
                    &mut cache,
                    &mut rates,
                    &mut slots,
                    look,
                    &want,
                )
            });
            let info = sigs.infos[id as usize];
            let (prices, extra) = match units.any(i) {
                false => (fits(info, row, &rates), 0),
                true => {
                    let provider = p.strings.get(sig[0]);
                    units.price(i, (provider, utc), (info, row, &rates), pricing.book)
                }
            };
            let d = if want_day { local } else { utc };
            sums.acc(id, utc, d, !prices).add_row(row, extra)?;
        }
    }
    let packed = sums.packed(&sigs.utc, want_day);
    p.unpack(packed, &sigs.infos, &slots, &rates, statuses)?;
    Ok(p)
}

/// The lines of `month` over `files`, in the order `sql/report.sql` sorts them in polars (by
/// the dimension columns, names before ids, NULL last, then the status).
/// The lines of several groupings of one month from **one** scan: each part is read once,
/// keyed by every dimension any grouping wants, then summed per grouping (costs are sums of
/// exact per-signature costs, so any grouping of them is exact).
pub fn groupings(
    files: &[PathBuf],
    month: Month,
    groupings: &[&[Dim]],
    look: &Lookup,
    pricing: &Pricing,
    jobs: usize,
) -> Result<Vec<Vec<Line>>, ReportError> {
    let all: Vec<Dim> = groupings.iter().flat_map(|g| g.iter().copied()).collect();
    let parts = crate::par::map(files, jobs, |f| part(f, month, &all, look, pricing))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    groupings
        .iter()
        .map(|dims| merge_parts(&parts, dims))
        .collect()
}

/// The parts' sums grouped by `dims`, sorted as the report orders its lines.
fn merge_parts(parts: &[Part], dims: &[Dim]) -> Result<Vec<Line>, ReportError> {
    // Merge by text, not by code (each part has its own strings).
    let mut merged: HashMap<(Vec<Option<String>>, String), Acc> = HashMap::new();
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
    for p in parts {
        for (&(k, d, status), acc) in &p.lines {
            let text = |c: u32| p.strings.get(c).map(str::to_string);
            let mut dims_text: Vec<Option<String>> = Vec::new();
            for d_ in dims {
                match d_ {
                    Dim::Workspace => dims_text.extend([text(k[0]), text(k[1])]),
                    Dim::Model => dims_text.push(text(k[2])),
                    Dim::ApiKey => dims_text.extend([text(k[3]), text(k[4])]),
                    Dim::ServiceTier => dims_text.push(text(k[5])),
                    Dim::Team => dims_text.push(text(k[6])),
                    Dim::Product => dims_text.push(text(k[7])),
                    Dim::Actor => dims_text.extend([text(k[8]), text(k[9]), text(k[10])]),
                    Dim::Provider => dims_text.push(text(k[11])),
                    Dim::Day => dims_text.push(Some(
                        (epoch + chrono::TimeDelta::days(d.into())).to_string(),
                    )),
                }
            }
            merged
                .entry((dims_text, text(status).unwrap_or_default()))
                .or_default()
                .add(acc.counts, acc.cost)?;
        }
    }
    let mut out: Vec<Line> = merged
        .into_iter()
        .map(|((dims, status), acc)| {
            let status = PricingStatus::parse(&status).ok_or(ReportError::Status(status))?;
            Ok(Line {
                dims,
                status,
                counts: acc.counts,
                list_cost: status.has_cost().then(|| Money::from_units(acc.cost)),
            })
        })
        .collect::<Result<_, ReportError>>()?;
    // NULL sorts last, as polars and DuckDB sort ascending (Spark puts it first).
    let nulls_last = |x: &Option<String>, y: &Option<String>| match (x, y) {
        (Some(x), Some(y)) => x.cmp(y),
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
    };
    let order = super::order_indexes(dims);
    out.sort_by(|a, b| {
        order
            .iter()
            .map(|&i| nulls_last(&a.dims[i], &b.dims[i]))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.status.as_str().cmp(b.status.as_str()))
    });
    Ok(out)
}
