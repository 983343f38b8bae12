//! Rolling batches: how many hosts run in each wave.
//!
//! | written | meaning | sizes for 100 hosts |
//! |---|---|---|
//! | `10` | fixed: 10 hosts per batch | 10, 10, … |
//! | `10%` | a share of all hosts, rounded up, at least 1 | 10, 10, … |
//! | `+10` | grow by 10 each batch | 10, 20, 30, 40 |
//! | `*2` | double each batch, starting at 1 | 1, 2, 4, 8, 16, 32, 37 |
//! | `5*2` | double each batch, starting at 5 | 5, 10, 20, 40, 25 |
//!
//! The last batch takes what is left, so sizes always add up to the host count and each is ≥ 1.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ExecError;

/// The largest number accepted in a batch expression.
pub const MAX_BATCH_NUMBER: usize = 1_000_000;

/// A parsed batch expression. Serialized as its written form (`"10%"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BatchExpr {
    /// `N`: N hosts per batch.
    Fixed(usize),
    /// `P%`: ceil(P% of the hosts) per batch, at least 1; 1 ≤ P ≤ 100.
    Percent(u8),
    /// `+N`: N, 2N, 3N, …
    Grow(usize),
    /// `*2` (start 1) or `S*2` (start S): S, 2S, 4S, …
    Double(usize),
}

fn number(s: &str, expr: &str) -> Result<usize, ExecError> {
    let bad = |reason: &str| ExecError::BatchInvalid {
        expr: expr.to_string(),
        reason: reason.to_string(),
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected a whole number"));
    }
    let n: usize = s.parse().map_err(|_| bad("number too large"))?;
    if n == 0 {
        return Err(bad("must be at least 1"));
    }
    if n > MAX_BATCH_NUMBER {
        return Err(bad("number too large (at most 1000000)"));
    }
    Ok(n)
}

impl FromStr for BatchExpr {
    type Err = ExecError;

    fn from_str(raw: &str) -> Result<BatchExpr, ExecError> {
        let s = raw.trim();
        if let Some(p) = s.strip_suffix('%') {
            let n = number(p, raw)?;
            if n > 100 {
                return Err(ExecError::BatchInvalid {
                    expr: raw.to_string(),
                    reason: "a percentage is at most 100".to_string(),
                });
            }
            return Ok(BatchExpr::Percent(u8::try_from(n).unwrap_or(100)));
        }
        if let Some(n) = s.strip_prefix('+') {
            return Ok(BatchExpr::Grow(number(n, raw)?));
        }
        if let Some((start, factor)) = s.split_once('*') {
            if factor != "2" {
                return Err(ExecError::BatchInvalid {
                    expr: raw.to_string(),
                    reason: "only doubling (`*2`) is supported".to_string(),
                });
            }
            let start = if start.is_empty() {
                1
            } else {
                number(start, raw)?
            };
            return Ok(BatchExpr::Double(start));
        }
        Ok(BatchExpr::Fixed(number(s, raw)?))
    }
}

impl fmt::Display for BatchExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchExpr::Fixed(n) => write!(f, "{n}"),
            BatchExpr::Percent(p) => write!(f, "{p}%"),
            BatchExpr::Grow(n) => write!(f, "+{n}"),
            BatchExpr::Double(1) => f.write_str("*2"),
            BatchExpr::Double(n) => write!(f, "{n}*2"),
        }
    }
}

impl From<BatchExpr> for String {
    fn from(b: BatchExpr) -> String {
        b.to_string()
    }
}

impl TryFrom<String> for BatchExpr {
    type Error = ExecError;
    fn try_from(s: String) -> Result<BatchExpr, ExecError> {
        s.parse()
    }
}

impl BatchExpr {
    /// Batch sizes for `total` hosts: each ≥ 1, adding up to exactly `total` (empty for 0).
    pub fn batches(&self, total: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut left = total;
        let mut next = match *self {
            BatchExpr::Fixed(n) | BatchExpr::Grow(n) | BatchExpr::Double(n) => n.max(1),
            BatchExpr::Percent(p) => {
                let p = usize::from(p.clamp(1, 100));
                total.saturating_mul(p).div_ceil(100).max(1)
            }
        };
        while left > 0 {
            let size = next.min(left);
            out.push(size);
            left -= size;
            next = match *self {
                BatchExpr::Fixed(_) | BatchExpr::Percent(_) => next,
                BatchExpr::Grow(n) => next.saturating_add(n.max(1)),
                BatchExpr::Double(_) => next.saturating_mul(2),
            };
        }
        out
    }
}

/// Batch sizes when a step may or may not have an expression: without one, all hosts at once.
pub fn batches_for(expr: Option<&BatchExpr>, total: usize) -> Vec<usize> {
    match expr {
        Some(e) => e.batches(total),
        None if total == 0 => Vec::new(),
        None => vec![total],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(s: &str, total: usize) -> Vec<usize> {
        s.parse::<BatchExpr>().unwrap().batches(total)
    }

    #[test]
    fn examples() {
        assert_eq!(b("10", 25), vec![10, 10, 5]);
        assert_eq!(b("10%", 7), vec![1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(b("10%", 100), vec![10; 10]);
        assert_eq!(b("30%", 10), vec![3, 3, 3, 1]);
        assert_eq!(b("100%", 10), vec![10]);
        assert_eq!(b("+10", 100), vec![10, 20, 30, 40]);
        assert_eq!(b("+10", 65), vec![10, 20, 30, 5]);
        assert_eq!(b("*2", 100), vec![1, 2, 4, 8, 16, 32, 37]);
        assert_eq!(b("5*2", 100), vec![5, 10, 20, 40, 25]);
        assert_eq!(b("1*2", 3), vec![1, 2]);
        assert_eq!(b("10", 0), Vec::<usize>::new());
        assert_eq!(batches_for(None, 5), vec![5]);
        assert_eq!(batches_for(None, 0), Vec::<usize>::new());
    }

    #[test]
    fn parse_and_display() {
        for (s, e) in [
            ("10", BatchExpr::Fixed(10)),
            ("10%", BatchExpr::Percent(10)),
            ("+10", BatchExpr::Grow(10)),
            ("*2", BatchExpr::Double(1)),
            ("5*2", BatchExpr::Double(5)),
        ] {
            let parsed: BatchExpr = s.parse().unwrap();
            assert_eq!(parsed, e);
            assert_eq!(parsed.to_string(), s);
        }
        assert_eq!(" 1*2 ".parse::<BatchExpr>().unwrap().to_string(), "*2");
        let json = serde_json::to_string(&BatchExpr::Percent(25)).unwrap();
        assert_eq!(json, "\"25%\"");
    }

    #[test]
    fn bad_expressions() {
        for s in [
            "",
            "0",
            "0%",
            "101%",
            "+0",
            "*3",
            "0*2",
            "-5",
            "ten",
            "10 %",
            "1.5",
            "%",
            "+",
            "2*",
            "99999999999999999999999",
            "1000001",
        ] {
            let err = s.parse::<BatchExpr>().unwrap_err();
            assert_eq!(err.code(), "exec.batch_invalid", "{s}");
        }
    }

    fn expr() -> impl Strategy<Value = BatchExpr> {
        prop_oneof![
            (1usize..=20_000).prop_map(BatchExpr::Fixed),
            (1u8..=100).prop_map(BatchExpr::Percent),
            (1usize..=20_000).prop_map(BatchExpr::Grow),
            (1usize..=20_000).prop_map(BatchExpr::Double),
        ]
    }

    proptest! {
        #[test]
        fn sizes_add_up_and_are_positive(e in expr(), total in 0usize..=10_000) {
            let sizes = e.batches(total);
            prop_assert_eq!(sizes.iter().sum::<usize>(), total);
            prop_assert!(sizes.iter().all(|&s| s >= 1));
            let reparsed: BatchExpr = e.to_string().parse().unwrap();
            prop_assert_eq!(reparsed, e);
        }
    }
}
