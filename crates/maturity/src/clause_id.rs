//! Clause IDs: `T{table}.{aspect}.L{level}.{letter}` (see docs/MATURITY.md).
//!
//! `table` is the standard's table number (4–49), `aspect` the 1-based column of that table,
//! `level` the row, and `letter` the 1-based position of the clause in its cell written as
//! a, b, c, … — by position, even where the draft repeats or skips a letter.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Msg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClauseId {
    pub table: u32,
    pub aspect: u32,
    pub level: u8,
    /// 0-based position in the cell (`a` = 0).
    pub index: u8,
}

/// Why a string is not a clause ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Msg::message_en(self))]
pub struct ClauseIdError {
    pub input: String,
}

impl Msg for ClauseIdError {
    fn code(&self) -> &'static str {
        "maturity.clause_id_malformed"
    }
    fn message_zh(&self) -> String {
        format!(
            "条款编号格式错误：{:?}，应形如 T5.2.L3.c（表号.列.级别.字母）",
            self.input
        )
    }
    fn message_en(&self) -> String {
        format!(
            "malformed clause ID {:?}: expected T{{table}}.{{aspect}}.L{{level}}.{{letter}}, e.g. T5.2.L3.c",
            self.input
        )
    }
}

impl ClauseId {
    /// Builds an ID from its position; `index` is 0-based.
    pub fn new(table: u32, aspect: u32, level: u8, index: usize) -> ClauseId {
        ClauseId {
            table,
            aspect,
            level,
            index: u8::try_from(index).unwrap_or(u8::MAX),
        }
    }

    /// The positional letter (`a` for index 0).
    pub fn letter(&self) -> char {
        char::from(b'a'.saturating_add(self.index))
    }

    /// Parses `T5.2.L3.c`.
    pub fn parse(s: &str) -> Result<ClauseId, ClauseIdError> {
        let err = || ClauseIdError {
            input: s.to_string(),
        };
        let rest = s.strip_prefix('T').ok_or_else(err)?;
        let mut parts = rest.split('.');
        let (Some(table), Some(aspect), Some(level), Some(letter), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(err());
        };
        let number = |p: &str| -> Option<u32> {
            if p.is_empty()
                || p.len() > 3
                || !p.bytes().all(|b| b.is_ascii_digit())
                || p.starts_with('0')
            {
                None
            } else {
                p.parse().ok()
            }
        };
        let table = number(table).ok_or_else(err)?;
        let aspect = number(aspect).ok_or_else(err)?;
        let level = level.strip_prefix('L').and_then(number).ok_or_else(err)?;
        let level = u8::try_from(level).map_err(|_| err())?;
        let mut chars = letter.chars();
        let (Some(c @ 'a'..='z'), None) = (chars.next(), chars.next()) else {
            return Err(err());
        };
        Ok(ClauseId {
            table,
            aspect,
            level,
            index: c as u8 - b'a',
        })
    }

    /// The `T{table}.{aspect}.L{level}` prefix naming this clause's cell.
    pub fn cell(&self) -> String {
        format!("T{}.{}.L{}", self.table, self.aspect, self.level)
    }
}

impl fmt::Display for ClauseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "T{}.{}.L{}.{}",
            self.table,
            self.aspect,
            self.level,
            self.letter()
        )
    }
}

impl FromStr for ClauseId {
    type Err = ClauseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClauseId::parse(s)
    }
}

impl Serialize for ClauseId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClauseId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ClauseId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders() {
        let id = ClauseId::parse("T5.2.L3.c").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((id.table, id.aspect, id.level, id.index), (5, 2, 3, 2));
        assert_eq!(id.to_string(), "T5.2.L3.c");
        assert_eq!(id.cell(), "T5.2.L3");
        let later = ClauseId::parse("T10.1.L1.a").unwrap_or_else(|e| panic!("{e}"));
        assert!(id < later, "numeric, not lexical, order");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "T5",
            "T5.2.L3",
            "T5.2.3.c",
            "t5.2.L3.c",
            "T5.2.L3.C",
            "T5.2.L3.cc",
            "T05.2.L3.c",
            "T5.2.L3.c.d",
            "T5..L3.c",
            "T5.2.L.c",
            "T5.2.L3.1",
            "T５.2.L3.c",
            "T5.2.L300.c",
        ] {
            assert!(ClauseId::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
