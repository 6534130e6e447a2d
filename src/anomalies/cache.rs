//! The anomaly pass's sums of one part, kept in `_tokenledger/cache/anomalies/` under the
//! identity of the pricing part and its usage part (and the zone, and the build): a part no
//! commit changed is not read again (parts are never edited in place).
//!
//! Owns: the cache's binary layout (little-endian: strings, then days, hours and the two name
//! maps as fixed records). Must not: decide what a part sums to (that is `scan`), or fail the
//! pass: an unreadable or foreign cache file is recomputed, an unwritable cache is skipped.

use std::path::Path;

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;

use super::AnomalyError;
use super::scan::{self, Sums};

const MAGIC: &[u8] = b"tokenledger anomaly sums 1\n";
/// Parts kept (the least recently written go first).
const KEEP: usize = 8192;

/// The sums of `pricing` beside `usage`: from the cache when they are there, else scanned and
/// kept.
pub fn part(dir: &Path, pricing: &Path, usage: &Path, tz: Tz) -> Result<Sums, AnomalyError> {
    let key = match (
        crate::query::file_identity(pricing),
        crate::query::file_identity(usage),
    ) {
        (Some(p), Some(u)) => {
            let mut h = blake3::Hasher::new();
            for part in [crate::query::build_identity(), tz.name().to_string(), p, u] {
                h.update(part.as_bytes());
                h.update(b"\0");
            }
            Some(dir.join(format!("{}.bin", h.finalize().to_hex())))
        }
        _ => None,
    };
    if let Some(s) = key
        .as_deref()
        .and_then(|k| std::fs::read(k).ok())
        .and_then(|b| decode(&b))
    {
        return Ok(s);
    }
    let sums = scan::part(pricing, usage, tz)?;
    if let Some(k) = key {
        let bytes = encode(&sums);
        crate::query::store_cached(&k, KEEP, |mut f| {
            std::io::Write::write_all(&mut f, &bytes).is_ok()
        });
    }
    Ok(sums)
}

fn encode(s: &Sums) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let u32_ = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
    let day = |out: &mut Vec<u8>, d: NaiveDate| {
        out.extend_from_slice(&d.num_days_from_ce().to_le_bytes())
    };
    u32_(&mut out, s.strings.values.len() as u32);
    for v in &s.strings.values {
        u32_(&mut out, v.len() as u32);
        out.extend_from_slice(v.as_bytes());
    }
    u32_(&mut out, s.days.len() as u32);
    for (&(d, k, w, m), &c) in &s.days {
        day(&mut out, d);
        for v in [k, w, m] {
            u32_(&mut out, v);
        }
        out.extend_from_slice(&c.to_le_bytes());
    }
    u32_(&mut out, s.hours.len() as u32);
    for (&(k, d, h), &c) in &s.hours {
        u32_(&mut out, k);
        day(&mut out, d);
        u32_(&mut out, h);
        out.extend_from_slice(&c.to_le_bytes());
    }
    for names in [&s.key_names, &s.ws_names] {
        u32_(&mut out, names.len() as u32);
        for (&a, &b) in names {
            u32_(&mut out, a);
            u32_(&mut out, b);
        }
    }
    out
}

/// A reader over the bytes; `None` once anything is short or malformed.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (a, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        a.try_into().ok()
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    fn i128(&mut self) -> Option<i128> {
        self.take::<16>().map(i128::from_le_bytes)
    }
    fn day(&mut self) -> Option<NaiveDate> {
        NaiveDate::from_num_days_from_ce_opt(i32::from_le_bytes(self.take::<4>()?))
    }
}

fn decode(bytes: &[u8]) -> Option<Sums> {
    let mut b = Bytes(bytes.strip_prefix(MAGIC)?);
    let mut s = Sums::default();
    for _ in 0..b.u32()? {
        let n = b.u32()? as usize;
        let (text, rest) = b.0.split_at_checked(n)?;
        b.0 = rest;
        s.strings.intern(std::str::from_utf8(text).ok()?);
    }
    for _ in 0..b.u32()? {
        let d = b.day()?;
        let (k, w, m) = (b.u32()?, b.u32()?, b.u32()?);
        s.days.insert((d, k, w, m), b.i128()?);
    }
    for _ in 0..b.u32()? {
        let k = b.u32()?;
        let d = b.day()?;
        let h = b.u32()?;
        s.hours.insert((k, d, h), b.i128()?);
    }
    for names in [&mut s.key_names, &mut s.ws_names] {
        for _ in 0..b.u32()? {
            names.insert(b.u32()?, b.u32()?);
        }
    }
    b.0.is_empty().then_some(s)
}
