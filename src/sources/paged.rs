//! The paged JSON reports every provider's API answers with, read as a stream: a page object
//! with a `data` array of time buckets, each with `starting_at`, `ending_at` and `results[]`
//! (Anthropic's usage and cost reports; OpenAI's usage and costs pages share the shape), and the
//! plain `{"data": [...]}` lists.
//!
//! Owns: the page → bucket → result streaming (what a bucket keeps of each result is the
//! format's [`Keep`]; what it does with a bucket is its [`BucketHandler`]), the JSON error with
//! its position, a bucket's times checked against the limits, and rows of one bucket that
//! repeat a dimension combination. Must not: know any one provider's fields (that is
//! `sources::anthropic`, and next `sources::openai`).

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::io::BufRead;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::lenient::{Obj, Scalar};
use super::{FileError, Limits, Quarantined, Sink};
use crate::model::{self, BucketWidth};

/// What a bucket keeps of each of its results, converted as it is read: a usage result becomes
/// its canonical row right away (the large parsed struct is never stored or moved), a cost
/// result is kept as parsed.
pub trait Keep<'de>: Sized {
    /// Reads one element of `results[]` (any JSON value) as what the bucket keeps of it.
    fn read<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// Reads one result with [`Keep::read`].
pub struct KeepSeed<K>(PhantomData<K>);

impl<'de, K: Keep<'de>> DeserializeSeed<'de> for KeepSeed<K> {
    type Value = K;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K, D::Error> {
        K::read(d)
    }
}

/// The `results` array of a bucket, each result kept as `K`.
pub struct Results<K>(Vec<K>);

impl<'de, K: Keep<'de>> Deserialize<'de> for Results<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<K>(PhantomData<K>);
        impl<'de, K: Keep<'de>> Visitor<'de> for V<K> {
            type Value = Results<K>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of results")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Results<K>, A::Error> {
                // Buckets of a page are alike: start at the last one's size (JSON gives none).
                thread_local!(static LAST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) });
                let hint = seq.size_hint().unwrap_or_else(|| LAST.get());
                let mut out = Vec::with_capacity(hint.min(4096));
                while let Some(r) = seq.next_element_seed(KeepSeed::<K>(PhantomData))? {
                    out.push(r);
                }
                LAST.set(out.len());
                Ok(Results(out))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// One time bucket of a report page, as read.
pub struct Bucket<'a, K> {
    pub starting_at: Scalar<'a>,
    pub ending_at: Scalar<'a>,
    pub results: Vec<K>,
}

/// Called once per bucket with its index in `data[]`.
pub trait BucketHandler<'a, K> {
    fn bucket(&mut self, index: usize, bucket: Bucket<'a, K>);
    /// A problem that makes the whole file unusable; buckets after it are skipped.
    fn fatal(&mut self) -> &mut Option<FileError>;
    /// A bucket object without `results`.
    fn missing_results(&mut self, index: usize);
}

/// What the page object said besides its buckets.
#[derive(Default)]
pub struct PageInfo {
    saw_data: bool,
    /// A top-level key of the Enterprise analytics report (`data_refreshed_at`, …).
    enterprise_key: Option<String>,
}

pub struct PageSeed<'a, R, H>(&'a mut H, PhantomData<R>);
pub struct DataSeed<'a, R, H>(&'a mut H, PhantomData<R>);

impl<'de, K: Keep<'de>, H: BucketHandler<'de, K>> DeserializeSeed<'de> for PageSeed<'_, K, H> {
    type Value = PageInfo;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PageInfo, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, K: Keep<'de>, H: BucketHandler<'de, K>> Visitor<'de> for PageSeed<'_, K, H> {
    type Value = PageInfo;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a report page object with a data array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PageInfo, A::Error> {
        let mut info = PageInfo::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "data" {
                if info.saw_data {
                    // Two `data` arrays: reading both would count their buckets twice.
                    return Err(serde::de::Error::custom(
                        "the page has the key \"data\" twice; its buckets would be counted twice",
                    ));
                }
                map.next_value_seed(DataSeed::<K, H>(self.0, PhantomData))?;
                info.saw_data = true;
            } else {
                if matches!(key.as_ref(), "data_refreshed_at" | "organization_id") {
                    info.enterprise_key = Some(key.into_owned());
                }
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(info)
    }
}

impl<'de, K: Keep<'de>, H: BucketHandler<'de, K>> DeserializeSeed<'de> for DataSeed<'_, K, H> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, K: Keep<'de>, H: BucketHandler<'de, K>> Visitor<'de> for DataSeed<'_, K, H> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of time buckets")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(b) = seq.next_element::<RawBucket<'de, K>>()? {
            if self.0.fatal().is_some() {
                continue; // the file fails anyway: read on only to check the JSON
            }
            match b.results {
                Some(Results(results)) => self.0.bucket(
                    i,
                    Bucket {
                        starting_at: b.starting_at,
                        ending_at: b.ending_at,
                        results,
                    },
                ),
                None if b.group.is_set() || b.usage.is_set() || b.cost.is_set() => {
                    *self.0.fatal() = Some(FileError::new(format!(
                        "data[{i}] is a flat item with group/usage/cost and no results[]: a page of \
                         the Usage & Cost Analytics API, which tokenledger does not read yet; \
                         export usage_report/messages and cost_report instead"
                    )));
                }
                // Without results[] the bucket says nothing: it must not restate anything.
                None => self.0.missing_results(i),
            }
            i += 1;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "K: Keep<'de>"))]
pub struct RawBucket<'a, K> {
    #[serde(default, borrow)]
    starting_at: Scalar<'a>,
    #[serde(default, borrow)]
    ending_at: Scalar<'a>,
    #[serde(default)]
    results: Option<Results<K>>,
    // Keys of the Analytics API's flat items, only to recognise them.
    #[serde(default, borrow)]
    group: Scalar<'a>,
    #[serde(default, borrow)]
    usage: Scalar<'a>,
    #[serde(default, borrow)]
    cost: Scalar<'a>,
}

pub fn json_error(e: serde_json::Error) -> FileError {
    let reason = match e.classify() {
        serde_json::error::Category::Eof => format!("truncated JSON: {e}"),
        serde_json::error::Category::Io => format!("read error: {e}"),
        _ => format!("invalid JSON: {e}"),
    };
    let mut err = FileError::at(Some(e.line() as u64), Some(e.column() as u64), reason);
    err.huge_number = e.to_string().starts_with("number out of range");
    err
}

/// JSON input: a whole file already in memory (fast path: serde_json scans slices with memchr)
/// or a stream (for files too big to hold; memory stays bounded by one bucket).
pub enum Input<'a, R: BufRead> {
    Bytes(&'a [u8]),
    Reader(R),
}

pub fn run_page<'de, K: Keep<'de>, H: BucketHandler<'de, K>, Rd: BufRead>(
    input: Input<'de, Rd>,
    handler: &mut H,
) -> Result<(), FileError> {
    fn go<'de, K: Keep<'de>, H: BucketHandler<'de, K>, J: serde_json::de::Read<'de>>(
        mut de: serde_json::Deserializer<J>,
        handler: &mut H,
    ) -> Result<PageInfo, FileError> {
        let info = PageSeed::<K, H>(handler, PhantomData)
            .deserialize(&mut de)
            .map_err(json_error)?;
        de.end().map_err(json_error)?;
        Ok(info)
    }
    let info = match input {
        // Valid UTF-8 (checked once, fast) is read as text: serde_json then skips checking each
        // string again. Invalid UTF-8 is read as bytes, for the error with its position.
        Input::Bytes(b) => match std::str::from_utf8(b) {
            Ok(text) => go::<K, H, _>(serde_json::Deserializer::from_str(text), handler)?,
            Err(_) => go::<K, H, _>(serde_json::Deserializer::from_slice(b), handler)?,
        },
        Input::Reader(r) => go::<K, H, _>(serde_json::Deserializer::from_reader(r), handler)?,
    };
    if let Some(e) = handler.fatal().take() {
        return Err(e);
    }
    if let Some(k) = info.enterprise_key {
        return Err(FileError::new(format!(
            "the page has a top-level {k:?}: an Enterprise analytics report page, whose rows can \
             overlap (one user in several groups); tokenledger does not read it yet: export the \
             Admin API usage_report/messages and cost_report instead"
        )));
    }
    if !info.saw_data {
        return Err(FileError::new("report page has no \"data\" array"));
    }
    Ok(())
}

/// Validates a bucket's times (RFC 3339, normalised to UTC; a width of 1m, 1h or 1d, aligned
/// to it; inside the plausible window); on failure every result of the bucket is quarantined.
pub fn bucket_times(
    b_index: usize,
    s: &mut Scalar<'_>,
    e: &mut Scalar<'_>,
    limits: &Limits,
) -> Result<(DateTime<Utc>, DateTime<Utc>, BucketWidth), Quarantined> {
    let bad = |field: &str, reason: String| Quarantined {
        location: format!("data[{b_index}]"),
        line: None,
        field: Some(field.into()),
        reason,
        excerpt: None,
    };
    let start = s
        .req_str("starting_at")
        .and_then(|v| model::parse_ts("starting_at", &v))
        .map_err(|r| bad("starting_at", r))?;
    let end = e
        .req_str("ending_at")
        .and_then(|v| model::parse_ts("ending_at", &v))
        .map_err(|r| bad("ending_at", r))?;
    let secs = (end - start).num_seconds();
    let width = BucketWidth::from_seconds(secs).ok_or_else(|| {
        bad(
            "ending_at",
            format!("bucket of {secs} s is not 1m, 1h or 1d ({start} .. {end})"),
        )
    })?;
    limits
        .check_bucket(start, end, width)
        .map_err(|r| bad("starting_at", r))?;
    Ok((start, end, width))
}

/// The quarantine record of a bucket without `results`.
pub fn no_results(b_index: usize) -> Quarantined {
    Quarantined {
        location: format!("data[{b_index}]"),
        line: None,
        field: Some("results".into()),
        reason: "bucket has no results array: not a well-formed bucket, so it does not restate \
                 this period (an empty bucket says \"results\": [])"
            .into(),
        excerpt: None,
    }
}

/// Result rows of one bucket whose dimensions repeat: `(first, second)` ordinals in the bucket.
/// This runs once per result row, so it keeps only a 64-bit hash of each row's key (a fast
/// hash, the map sized for the bucket up front) and compares the keys themselves only when two
/// hashes meet; should two different keys ever share a hash, the bucket is checked again with
/// the keys in the map.
pub fn repeated<K: Hash + Eq>(
    n: usize,
    keys: impl Iterator<Item = K> + Clone,
) -> Option<(usize, usize)> {
    use std::collections::hash_map::Entry;
    use std::hash::BuildHasher;
    let state = foldhash::fast::RandomState::default();
    let mut seen: HashMap<u64, usize, _> =
        HashMap::with_capacity_and_hasher(n, foldhash::fast::RandomState::default());
    for (i, k) in keys.clone().enumerate() {
        match seen.entry(state.hash_one(&k)) {
            Entry::Vacant(v) => {
                v.insert(i);
            }
            Entry::Occupied(o) => {
                let j = *o.get();
                if keys.clone().nth(j).is_some_and(|first| first == k) {
                    return Some((j, i));
                }
                return repeated_exact(n, keys);
            }
        }
    }
    None
}

/// [`repeated`] with the keys themselves in the map (after a hash collision).
pub fn repeated_exact<K: Hash + Eq>(
    n: usize,
    keys: impl Iterator<Item = K>,
) -> Option<(usize, usize)> {
    let mut seen = HashMap::with_capacity_and_hasher(n, foldhash::fast::RandomState::default());
    for (i, k) in keys.enumerate() {
        match seen.entry(k) {
            std::collections::hash_map::Entry::Occupied(o) => return Some((*o.get(), i)),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(i);
            }
        }
    }
    None
}

/// Quarantines every result of a bucket whose rows repeat a dimension combination: summing
/// them would count usage twice, keeping one would guess. The bucket restates nothing.
pub fn quarantine_repeated(sink: &mut dyn Sink, bi: usize, n: usize, (a, b): (usize, usize)) {
    for ri in 0..n {
        sink.quarantine(Quarantined {
            location: format!("data[{bi}].results[{ri}]"),
            line: None,
            field: None,
            reason: format!(
                "results[{a}] and results[{b}] of this bucket have the same dimensions; the \
                 provider sends one row per combination, so the bucket ({n} rows) is not loaded \
                 and does not restate this period"
            ),
            excerpt: None,
        });
    }
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct ListPage<T> {
    data: Option<Vec<Obj<T>>>,
}

pub fn parse_list<'de, T: Deserialize<'de>, R: BufRead>(
    input: Input<'de, R>,
    sink: &mut dyn Sink,
    mut each: impl FnMut(T, &mut dyn Sink) -> Result<(), (String, String)>,
) -> Result<(), FileError> {
    fn whole<'de, P: Deserialize<'de>, J: serde_json::de::Read<'de>>(
        mut de: serde_json::Deserializer<J>,
    ) -> Result<P, FileError> {
        let page = P::deserialize(&mut de).map_err(json_error)?;
        de.end().map_err(json_error)?;
        Ok(page)
    }
    let page: ListPage<T> = match input {
        Input::Bytes(b) => match std::str::from_utf8(b) {
            Ok(text) => whole(serde_json::Deserializer::from_str(text))?,
            Err(_) => whole(serde_json::Deserializer::from_slice(b))?,
        },
        Input::Reader(r) => whole(serde_json::Deserializer::from_reader(r))?,
    };
    let Some(data) = page.data else {
        return Err(FileError::new("list response has no \"data\" array"));
    };
    for (i, item) in data.into_iter().enumerate() {
        let res = match item {
            Obj::Ok(t) => each(t, sink),
            Obj::Invalid(w) => Err(("data".into(), format!("item must be an object, got {w}"))),
            Obj::Missing | Obj::Null => Err(("data".into(), "item is null".into())),
        };
        if let Err((field, reason)) = res {
            sink.quarantine(Quarantined {
                location: format!("data[{i}]"),
                line: None,
                field: Some(field),
                reason,
                excerpt: None,
            });
        }
    }
    Ok(())
}
