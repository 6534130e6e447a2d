//! Lenient JSON values: a field of the wrong type becomes a value we can quarantine with a
//! reason, instead of an error that would abort the whole page.
//!
//! Must not: know any provider's fields, or decide what a bad value means for its row (the
//! format's parser does).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The longest text a dimension or id may be (ids, names, models, tiers are tens of bytes):
/// longer is a row error, never a column value.
pub const MAX_TEXT: usize = 1024;

/// The string of `obj[key]` in a parsed document (`None`: absent, null or ""), or (field, why
/// not): longer than [`MAX_TEXT`], or not a string (a number quoted by
/// `numbers::quote_all_numbers` is a number, not a string).
pub fn json_text(obj: &serde_json::Value, key: &str) -> Result<Option<String>, (String, String)> {
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.starts_with(super::numbers::NUMBER_MARK) => {
            Err((key.into(), format!("{key} must be a string, got a number")))
        }
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) if s.len() <= MAX_TEXT => Ok(Some(s.clone())),
        Some(serde_json::Value::String(_)) => Err((key.into(), format!("{key} is too long"))),
        Some(other) => Err((key.into(), format!("{key} must be a string, got {other}"))),
    }
}

/// Any JSON scalar. Non-integral numbers are kept only as text (for the error message): no
/// float ever carries a token count or an amount. A string borrows from the input when it can
/// (a page held in memory, no escapes in the string): rows cost no allocation per value.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Scalar<'a> {
    #[default]
    Missing,
    Null,
    Bool(bool),
    UInt(u64),
    NegInt(i64),
    NonInteger(String),
    Str(Cow<'a, str>),
    Compound,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::UInt(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'a>, E> {
                Ok(if v >= 0 {
                    Scalar::UInt(v as u64)
                } else {
                    Scalar::NegInt(v)
                })
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::NonInteger(v.to_string()))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_none<E>(self) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Null)
            }
            fn visit_unit<E>(self) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Scalar<'a>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Compound)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Scalar<'a>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Compound)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'a> Scalar<'a> {
    fn describe(&self) -> String {
        match self {
            Scalar::Missing => "missing".into(),
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => format!("boolean {b}"),
            Scalar::UInt(v) => format!("number {v}"),
            Scalar::NegInt(v) => format!("negative number {v}"),
            Scalar::NonInteger(v) => format!("non-integer number {v}"),
            Scalar::Str(s) => format!("string {:?}", super::excerpt(s)),
            Scalar::Compound => "an object or array".into(),
        }
    }

    /// A required non-negative integer (token counts). Must fit Parquet INT64.
    pub fn count(&self, field: &str) -> Result<u64, String> {
        match self {
            Scalar::UInt(v) if *v <= i64::MAX as u64 => Ok(*v),
            Scalar::UInt(v) => Err(format!("{field} {v} is too large")),
            Scalar::Missing | Scalar::Null => Err(format!("missing required field {field}")),
            Scalar::NegInt(_) => Err(format!("{field} is negative: {}", self.describe())),
            Scalar::Str(s) if s.starts_with(super::numbers::HUGE_MARK) => Err(format!(
                "{field} {} is out of range (a count must be an integer of at most {} digits)",
                super::excerpt(&s[1..]),
                i64::MAX.to_string().len()
            )),
            other => Err(format!(
                "{field} must be a non-negative integer, got {}",
                other.describe()
            )),
        }
    }

    /// An optional count: missing or null is zero.
    pub fn count_or_zero(&self, field: &str) -> Result<u64, String> {
        match self {
            Scalar::Missing | Scalar::Null => Ok(0),
            _ => self.count(field),
        }
    }

    /// Whether the field is present with a value (not missing, not null).
    pub fn is_set(&self) -> bool {
        !matches!(self, Scalar::Missing | Scalar::Null)
    }

    /// An optional string dimension: missing, null and the empty string (which exporters
    /// write for null) are `None`; a value longer than [`MAX_TEXT`] bytes is refused. Moves the
    /// parsed string out (borrowed from the input where it was, no copy).
    pub fn opt_text(&mut self, field: &str) -> Result<Option<Cow<'a, str>>, String> {
        match std::mem::take(self) {
            Scalar::Missing | Scalar::Null => Ok(None),
            Scalar::Str(s) if s.is_empty() => Ok(None),
            Scalar::Str(s) if s.starts_with(super::numbers::LONG_MARK) => Err(format!(
                "{field} is {} bytes long; a dimension or id is at most {MAX_TEXT} bytes",
                &s[1..]
            )),
            Scalar::Str(s) if s.len() > MAX_TEXT => Err(format!(
                "{field} is {} bytes long; a dimension or id is at most {MAX_TEXT} bytes",
                s.len()
            )),
            Scalar::Str(s) => Ok(Some(s)),
            other => Err(format!(
                "{field} must be a string or null, got {}",
                other.describe()
            )),
        }
    }

    /// [`Scalar::opt_text`], owned.
    pub fn opt_str(&mut self, field: &str) -> Result<Option<String>, String> {
        Ok(self.opt_text(field)?.map(Cow::into_owned))
    }

    /// A required string.
    pub fn req_str(&mut self, field: &str) -> Result<String, String> {
        match self.opt_str(field)? {
            Some(s) => Ok(s),
            None => Err(format!("missing required field {field}")),
        }
    }
}

/// An object field that may be missing, null, or of the wrong type without failing the page.
#[derive(Debug, Clone, Default)]
pub enum Obj<T> {
    #[default]
    Missing,
    Null,
    Invalid(String),
    Ok(T),
}

/// A value that must be a JSON object, read leniently: an object goes to `from_map`, anything
/// else to `not_object` with what it is (`None` for null), so a wrong type is quarantined with
/// its reason instead of failing the page. [`Obj`] is one; a usage row read in place is another.
pub trait FromObject<'de>: Sized {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
    /// `what` says what came instead ("boolean true", "number 5", "an array"); `None`: null.
    fn not_object(what: Option<String>) -> Self;
}

/// Reads a [`FromObject`] from any JSON value.
pub fn object<'de, D: Deserializer<'de>, T: FromObject<'de>>(d: D) -> Result<T, D::Error> {
    struct V<T>(PhantomData<T>);
    impl<'de, T: FromObject<'de>> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<T, A::Error> {
            T::from_map(m)
        }
        fn visit_none<E>(self) -> Result<T, E> {
            Ok(T::not_object(None))
        }
        fn visit_unit<E>(self) -> Result<T, E> {
            Ok(T::not_object(None))
        }
        fn visit_bool<E>(self, v: bool) -> Result<T, E> {
            Ok(T::not_object(Some(format!("boolean {v}"))))
        }
        fn visit_i64<E>(self, v: i64) -> Result<T, E> {
            Ok(T::not_object(Some(format!("number {v}"))))
        }
        fn visit_u64<E>(self, v: u64) -> Result<T, E> {
            Ok(T::not_object(Some(format!("number {v}"))))
        }
        fn visit_f64<E>(self, v: f64) -> Result<T, E> {
            Ok(T::not_object(Some(format!("number {v}"))))
        }
        fn visit_str<E>(self, v: &str) -> Result<T, E> {
            Ok(T::not_object(Some(format!("string {v:?}"))))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<T, A::Error> {
            while s.next_element::<IgnoredAny>()?.is_some() {}
            Ok(T::not_object(Some("an array".into())))
        }
    }
    d.deserialize_any(V(PhantomData))
}

impl<'de, T: Deserialize<'de>> FromObject<'de> for Obj<T> {
    fn from_map<A: MapAccess<'de>>(m: A) -> Result<Self, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(m)).map(Obj::Ok)
    }
    fn not_object(what: Option<String>) -> Self {
        what.map_or(Obj::Null, Obj::Invalid)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object(d)
    }
}
