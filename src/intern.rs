//! Intern: text columns as small integer codes, so a scan of millions of rows compares and
//! hashes `u32`s and copies each distinct string once (a dictionary array interns only its
//! dictionary).
//!
//! Owns: [`Strings`]. Must not: import anything of the crate.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int32Type;

/// Interned text: code ↔ value; `NONE` is NULL.
#[derive(Debug, Default)]
pub struct Strings {
    index: HashMap<String, u32>,
    pub values: Vec<String>,
}

pub const NONE: u32 = u32::MAX;

impl Strings {
    pub fn intern(&mut self, v: &str) -> u32 {
        if let Some(c) = self.index.get(v) {
            return *c;
        }
        let c = self.values.len() as u32;
        self.values.push(v.to_string());
        self.index.insert(v.to_string(), c);
        c
    }
    /// One code per row of a text column: a dictionary array interns its dictionary only.
    pub fn codes(&mut self, a: &dyn Array) -> Option<Vec<u32>> {
        let mut out = Vec::new();
        self.codes_into(a, &mut out)?;
        Some(out)
    }
    /// [`Strings::codes`] into `out` (cleared first): a scan reuses one buffer per column
    /// instead of fresh (page-faulting) memory per batch.
    pub fn codes_into(&mut self, a: &dyn Array, out: &mut Vec<u32>) -> Option<()> {
        out.clear();
        if let Some(d) = a.as_dictionary_opt::<Int32Type>() {
            let values = d.values().as_string_opt::<i32>()?;
            let map: Vec<u32> = (0..values.len())
                .map(|j| {
                    if values.is_null(j) {
                        NONE
                    } else {
                        self.intern(values.value(j))
                    }
                })
                .collect();
            let keys = d.keys();
            if keys.null_count() == keys.len() {
                out.resize(keys.len(), NONE);
                return Some(());
            }
            let code = |k: i32| map[k as usize];
            match keys.nulls() {
                None => out.extend(keys.values().iter().map(|&k| code(k))),
                Some(n) => out.extend(
                    (keys.values().iter().zip(n.iter()))
                        .map(|(&k, valid)| if valid { code(k) } else { NONE }),
                ),
            }
            return Some(());
        }
        let s = a.as_string_opt::<i32>()?;
        for i in 0..s.len() {
            let c = if s.is_null(i) {
                NONE
            } else {
                self.intern(s.value(i))
            };
            out.push(c);
        }
        Some(())
    }
    /// A map from `other`'s codes to codes in `self` (interning what is new; `NONE` stays
    /// `NONE`), to merge sums coded against another `Strings`.
    pub fn recode(&mut self, other: &Strings) -> impl Fn(u32) -> u32 + use<> {
        let map: Vec<u32> = other.values.iter().map(|v| self.intern(v)).collect();
        move |c| if c == NONE { NONE } else { map[c as usize] }
    }
    /// The code of `v`, if it was interned.
    pub fn code_of(&self, v: &str) -> Option<u32> {
        self.index.get(v).copied()
    }
    pub fn get(&self, c: u32) -> Option<&str> {
        (c != NONE).then(|| self.values[c as usize].as_str())
    }
}
