//! The standard's maturity model as data, and everything computed from it.
//!
//! - [`catalog`]: classes, domains, items, aspects and levelled clauses of 证券投资基金经营机构运维
//!   自动化能力成熟度规范, loaded from `data/catalog/` (embedded) or another edition's file.
//! - [`rating`]: clause ratings with evidence, and answer sets.
//! - [`answers`]: the YAML and XLSX answers files, parsed with errors naming file and line/row.
//! - [`score`]: level computation (strict by default, `proportional:P` as an alternative).
//! - [`report`]: the JSON report schema and its text, Markdown, HTML and XLSX renderings, gaps.
//!
//! This crate does no IO and reads no clock: callers pass file contents in and write results out.

pub mod answers;
pub mod catalog;
pub mod clause_id;
pub mod error;
pub mod export;
pub mod rating;
pub mod report;
pub mod score;

pub use catalog::{Catalog, ScaleKey};
pub use clause_id::ClauseId;
pub use error::{AnswerErrors, CatalogError, Msg};
pub use rating::{Answer, AnswerSet, Evidence, Rating, Scope};
pub use score::{Policy, Scorecard, score};
