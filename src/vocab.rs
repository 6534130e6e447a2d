//! The words every stage shares, parsed once at the edge.
//!
//! Owns: `Month` (a calendar month, `YYYY-MM`). Must not: import anything of the crate.

use std::fmt;

/// A calendar month, the lake's partition key: exactly `YYYY-MM`, month 01–12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    year: u16,
    month: u8,
}

impl Month {
    /// Parses `YYYY-MM` strictly: no sign, no spaces, two-digit month (so `2026-1`, ` 2026-10`
    /// and `+2026-10` are refused with a message, never guessed).
    pub fn parse(s: &str) -> Result<Month, String> {
        let bad = || format!("{s:?} is not a month; use YYYY-MM, e.g. 2026-10");
        let b = s.as_bytes();
        if b.len() != 7
            || b[4] != b'-'
            || !b
                .iter()
                .enumerate()
                .all(|(i, c)| i == 4 || c.is_ascii_digit())
        {
            return Err(bad());
        }
        let year: u16 = s[..4].parse().map_err(|_| bad())?;
        let month: u8 = s[5..].parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || year == 0 {
            return Err(bad());
        }
        Ok(Month { year, month })
    }
    pub fn year(self) -> u16 {
        self.year
    }
    pub fn month(self) -> u8 {
        self.month
    }
    /// `YYYY-MM`.
    pub fn key(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for Month {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Month::parse(s)
    }
}

/// A clap value parser: the month, checked, in its canonical text.
pub fn parse_month(s: &str) -> Result<String, String> {
    Month::parse(s).map(|m| m.key())
}
