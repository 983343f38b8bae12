//! The rating model: one answer per clause, with evidence, and the set of answers of an assessment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::clause_id::ClauseId;
use crate::error::Location;

/// How well a clause is met. `na` needs a justification.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    Met,
    Partial,
    NotMet,
    Na,
    #[default]
    Unrated,
}

impl Rating {
    pub const ALL: [Rating; 5] = [
        Rating::Met,
        Rating::Partial,
        Rating::NotMet,
        Rating::Na,
        Rating::Unrated,
    ];

    /// The key used in files: `met`, `partial`, `not_met`, `na`, `unrated`.
    pub fn key(self) -> &'static str {
        match self {
            Rating::Met => "met",
            Rating::Partial => "partial",
            Rating::NotMet => "not_met",
            Rating::Na => "na",
            Rating::Unrated => "unrated",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Rating::Met => "符合",
            Rating::Partial => "部分符合",
            Rating::NotMet => "不符合",
            Rating::Na => "不适用",
            Rating::Unrated => "未评",
        }
    }

    /// Parses a rating key, also accepting the Chinese labels and a few common spellings
    /// (`not met`, `n/a`), case-insensitively. Anything else is refused, never guessed.
    pub fn parse(s: &str) -> Option<Rating> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase().replace([' ', '-'], "_");
        Some(match lower.as_str() {
            "met" => Rating::Met,
            "partial" => Rating::Partial,
            "not_met" => Rating::NotMet,
            "na" | "n/a" => Rating::Na,
            "unrated" => Rating::Unrated,
            _ => match t {
                "符合" => Rating::Met,
                "部分符合" => Rating::Partial,
                "不符合" => Rating::NotMet,
                "不适用" => Rating::Na,
                "未评" | "未评估" => Rating::Unrated,
                _ => return None,
            },
        })
    }

    /// Whether the clause counts as fulfilled for level computation.
    pub fn fulfils(self) -> bool {
        matches!(self, Rating::Met | Rating::Na)
    }
}

impl fmt::Display for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One piece of evidence for a clause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// A file, identified by path and its SHA-256 (hex).
    File {
        path: String,
        sha256: String,
    },
    Url {
        url: String,
    },
    Text {
        text: String,
    },
}

impl Evidence {
    /// One line for tables and spreadsheets.
    pub fn summary(&self) -> String {
        match self {
            Evidence::File { path, sha256 } => {
                format!("file:{path} sha256:{}", sha256.get(..12).unwrap_or(sha256))
            }
            Evidence::Url { url } => url.clone(),
            Evidence::Text { text } => text.clone(),
        }
    }
}

/// The answer for one clause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Answer {
    pub rating: Rating,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessor: Option<String>,
    /// ISO date (YYYY-MM-DD) of the rating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

/// Which items an assessment covers: `None` = every item.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Scope(pub Option<BTreeSet<u32>>);

impl Scope {
    pub fn all() -> Scope {
        Scope(None)
    }

    pub fn contains(&self, table: u32) -> bool {
        self.0.as_ref().is_none_or(|s| s.contains(&table))
    }

    /// Resolves scope tokens against the catalog: `T4`, a range `T10-T20` (or `T10-20`), or the
    /// exact Chinese or English name of an item, domain or class. Returns the first token that
    /// names nothing.
    pub fn parse_tokens<'a>(
        catalog: &Catalog,
        tokens: impl IntoIterator<Item = &'a str>,
    ) -> Result<Scope, String> {
        let mut set = BTreeSet::new();
        for raw in tokens {
            let token = raw.trim();
            if token.is_empty() {
                continue;
            }
            let tables = resolve_scope_token(catalog, token).ok_or_else(|| token.to_string())?;
            set.extend(tables);
        }
        Ok(Scope(Some(set)))
    }

    /// Parses a comma-separated scope such as `T4,T10-T20`.
    pub fn parse_list(catalog: &Catalog, spec: &str) -> Result<Scope, String> {
        Scope::parse_tokens(catalog, spec.split([',', '，']))
    }

    /// The compact form: `T4,T10-T20` (or `all`).
    pub fn to_spec(&self) -> String {
        let Some(set) = &self.0 else {
            return "all".to_string();
        };
        let mut out: Vec<String> = Vec::new();
        let mut iter = set.iter().copied().peekable();
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end += 1;
                iter.next();
            }
            out.push(if start == end {
                format!("T{start}")
            } else {
                format!("T{start}-T{end}")
            });
        }
        out.join(",")
    }
}

fn resolve_scope_token(catalog: &Catalog, token: &str) -> Option<Vec<u32>> {
    let table_no = |s: &str| -> Option<u32> {
        let s = s.trim();
        let n = s
            .strip_prefix('T')
            .or_else(|| s.strip_prefix('t'))
            .or_else(|| s.strip_prefix('表'))
            .unwrap_or(s);
        n.parse().ok()
    };
    if let Some((a, b)) = token.split_once('-') {
        let (a, b) = (table_no(a)?, table_no(b)?);
        if a > b {
            return None;
        }
        let tables: Vec<u32> = (a..=b).collect();
        return tables
            .iter()
            .all(|t| catalog.item(*t).is_some())
            .then_some(tables);
    }
    if let Some(t) = table_no(token) {
        return catalog.item(t).map(|_| vec![t]);
    }
    let lower = token.to_lowercase();
    let named = |zh: &str, en: &str| zh == token || en.to_lowercase() == lower;
    let tables: Vec<u32> = catalog
        .items()
        .filter(|r| {
            named(&r.item.name_zh, &r.item.name_en)
                || named(&r.domain.name_zh, &r.domain.name_en)
                || named(&r.class.name_zh, &r.class.name_en)
        })
        .map(|r| r.item.table)
        .collect();
    (!tables.is_empty()).then_some(tables)
}

/// Every answer of one assessment, keyed by clause, with the catalog they were given against.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AnswerSet {
    /// Free-form descriptive fields (`name`, `organization`, `period`, …) shown in reports.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    pub catalog: Option<String>,
    pub version: Option<String>,
    pub scope: Scope,
    pub answers: BTreeMap<ClauseId, Answer>,
    /// Where each answer was read from, for messages.
    #[serde(skip)]
    pub locations: BTreeMap<ClauseId, Location>,
}

impl AnswerSet {
    /// The rating of a clause; absent answers are `unrated`.
    pub fn rating(&self, id: &ClauseId) -> Rating {
        self.answers.get(id).map_or(Rating::Unrated, |a| a.rating)
    }
}
