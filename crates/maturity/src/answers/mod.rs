//! Answers files: the YAML and XLSX forms an assessment team fills in, parsed into an
//! [`AnswerSet`] with every problem reported by file and line (or sheet, row and column).
//!
//! Parsing does no IO: callers pass the file's content. Evidence files are checked through
//! [`check_evidence_files`] with a reader the caller provides.

mod marked;
pub mod xlsx;
pub mod yaml;

use std::collections::HashMap;

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::clause_id::ClauseId;
use crate::error::{AnswerError, AnswerErrors, AnswerProblem, Location};
use crate::rating::{Answer, AnswerSet, Evidence, Rating, Scope};
use crate::report::Warning;

/// Collects answers from either format and validates them against the catalog.
pub(crate) struct Collector<'a> {
    catalog: &'a Catalog,
    errors: Vec<AnswerError>,
    set: AnswerSet,
    seen: HashMap<ClauseId, Location>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(catalog: &'a Catalog) -> Self {
        Collector {
            catalog,
            errors: Vec::new(),
            set: AnswerSet::default(),
            seen: HashMap::new(),
        }
    }

    pub(crate) fn error(&mut self, location: Location, problem: AnswerProblem) {
        self.errors.push(AnswerError { location, problem });
    }

    /// Checks a declared catalog id or version against the loaded catalog.
    pub(crate) fn catalog_field(&mut self, field: &'static str, found: &str, location: Location) {
        let expected = match field {
            "catalog" => self.catalog.id(),
            _ => self.catalog.version(),
        };
        if found != expected {
            self.error(
                location,
                AnswerProblem::CatalogMismatch {
                    field,
                    expected: expected.to_string(),
                    found: found.to_string(),
                },
            );
        }
        match field {
            "catalog" => self.set.catalog = Some(found.to_string()),
            _ => self.set.version = Some(found.to_string()),
        }
    }

    pub(crate) fn set_meta(&mut self, key: String, value: String) {
        self.set.meta.insert(key, value);
    }

    pub(crate) fn scope(&mut self, tokens: &[(String, Location)]) {
        let mut tables = std::collections::BTreeSet::new();
        for (token, location) in tokens {
            match Scope::parse_tokens(self.catalog, [token.as_str()]) {
                Ok(Scope(Some(s))) => tables.extend(s),
                _ => self.error(location.clone(), AnswerProblem::InvalidScope(token.clone())),
            }
        }
        self.set.scope = Scope(Some(tables));
    }

    pub(crate) fn parse_rating(&mut self, value: &str, location: &Location) -> Option<Rating> {
        let r = Rating::parse(value);
        if r.is_none() {
            self.error(
                location.clone(),
                AnswerProblem::InvalidRating(value.to_string()),
            );
        }
        r
    }

    /// Validates a date, returning it in ISO form.
    pub(crate) fn parse_date(&mut self, value: &str, location: &Location) -> Option<String> {
        match NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d") {
            Ok(d) => Some(d.format("%Y-%m-%d").to_string()),
            Err(_) => {
                self.error(
                    location.clone(),
                    AnswerProblem::InvalidDate(value.to_string()),
                );
                None
            }
        }
    }

    /// Records one answer after checking the clause exists, is not answered twice, and that `na`
    /// carries a justification.
    pub(crate) fn answer(&mut self, raw_id: &str, location: Location, answer: Answer) {
        let id = match ClauseId::parse(raw_id.trim()) {
            Ok(id) => id,
            Err(_) => {
                self.error(
                    location,
                    AnswerProblem::MalformedClauseId(raw_id.to_string()),
                );
                return;
            }
        };
        if self.catalog.clause(&id).is_none() {
            self.error(location, AnswerProblem::UnknownClause(id.to_string()));
            return;
        }
        if let Some(first) = self.seen.get(&id) {
            let first = first.to_string();
            self.error(
                location,
                AnswerProblem::Duplicate {
                    id: id.to_string(),
                    first,
                },
            );
            return;
        }
        if answer.rating == Rating::Na
            && answer
                .justification
                .as_deref()
                .is_none_or(|j| j.trim().is_empty())
        {
            self.error(
                location.clone(),
                AnswerProblem::NaWithoutJustification(id.to_string()),
            );
        }
        self.seen.insert(id, location.clone());
        self.set.locations.insert(id, location);
        self.set.answers.insert(id, answer);
    }

    pub(crate) fn finish(self) -> Result<AnswerSet, AnswerErrors> {
        if self.errors.is_empty() {
            Ok(self.set)
        } else {
            Err(AnswerErrors(self.errors))
        }
    }
}

/// Interprets a one-line evidence string: an `http(s)://` address is a URL, `file:PATH` (optionally
/// followed by ` sha256:HEX`) a file, anything else text.
pub fn evidence_from_str(s: &str) -> Evidence {
    let t = s.trim();
    if (t.starts_with("https://") || t.starts_with("http://")) && !t.contains(char::is_whitespace) {
        return Evidence::Url { url: t.to_string() };
    }
    if let Some(rest) = t.strip_prefix("file:") {
        let (path, sha) = match rest.split_once(" sha256:") {
            Some((p, h)) => (p.trim(), h.trim()),
            None => (rest.trim(), ""),
        };
        return Evidence::File {
            path: path.to_string(),
            sha256: sha.to_ascii_lowercase(),
        };
    }
    Evidence::Text {
        text: t.to_string(),
    }
}

/// Checks file evidence: a readable file is hashed (a recorded sha256 must match); a missing file
/// with a recorded sha256 is kept with a warning; a missing file without one is an error.
/// `read` is given the path as written in the answers file (callers resolve it relative to the
/// answers file).
pub fn check_evidence_files(
    set: &mut AnswerSet,
    read: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
) -> (Vec<AnswerError>, Vec<Warning>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for (id, answer) in set.answers.iter_mut() {
        let location = set.locations.get(id).cloned().unwrap_or(Location::File {
            file: String::new(),
        });
        for ev in answer.evidence.iter_mut() {
            let Evidence::File { path, sha256 } = ev else {
                continue;
            };
            match read(path) {
                Ok(bytes) => {
                    let actual = hex::encode(Sha256::digest(&bytes));
                    if sha256.is_empty() {
                        *sha256 = actual;
                    } else if !sha256.eq_ignore_ascii_case(&actual) {
                        errors.push(AnswerError {
                            location: location.clone(),
                            problem: AnswerProblem::EvidenceHashMismatch {
                                id: id.to_string(),
                                path: path.clone(),
                                declared: sha256.clone(),
                                actual,
                            },
                        });
                    }
                }
                Err(_) if !sha256.is_empty() => warnings.push(Warning {
                    code: "answers.evidence_not_available".to_string(),
                    message_zh: format!(
                        "{location}：条款 {id} 的证据文件 {path} 不可读，保留记录的 sha256"
                    ),
                    message_en: format!(
                        "{location}: evidence file {path} of clause {id} is not available; the recorded sha256 is kept"
                    ),
                }),
                Err(_) => errors.push(AnswerError {
                    location: location.clone(),
                    problem: AnswerProblem::EvidenceMissing {
                        id: id.to_string(),
                        path: path.clone(),
                    },
                }),
            }
        }
    }
    (errors, warnings)
}

/// Parses an answers file by its name: `.xlsx` as a spreadsheet, anything else as YAML.
pub fn parse_file(catalog: &Catalog, name: &str, bytes: &[u8]) -> Result<AnswerSet, AnswerErrors> {
    if name.to_ascii_lowercase().ends_with(".xlsx") {
        xlsx::parse(catalog, name, bytes)
    } else {
        match std::str::from_utf8(bytes) {
            Ok(text) => yaml::parse(catalog, name, text),
            Err(e) => Err(AnswerErrors(vec![AnswerError {
                location: Location::File {
                    file: name.to_string(),
                },
                problem: AnswerProblem::Syntax(format!("not UTF-8 text: {e}")),
            }])),
        }
    }
}
