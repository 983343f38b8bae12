//! Storage of online maturity assessments: the assessment (catalog version, scope, targets,
//! owner, state), the assignment of each in-scope item to an assessor and a reviewer with the
//! item's review state, one answer per rated clause, evidence (a file kept in the database with
//! its SHA-256, a link, or a reference to platform data; optionally expiring) and improvement
//! actions toward the targets.
//!
//! Every change is an action: it goes through [`AssessmentTx`] inside a [`crate::Tx`] and is
//! committed with its audit record. [`AssessmentTx::lock_assessment`] reads an assessment inside
//! the transaction and holds it (a row lock on PostgreSQL, the write lock on SQLite), so a state
//! check and the change that depends on it cannot interleave with another replica's change.
//!
//! States, ratings and review states are stored as strings; the server gives them meaning (the
//! database refuses values outside their sets). Dates (`expires_on`, `due_on`) are calendar
//! dates; times are UTC.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;

/// An assessment of one catalog version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssessmentRow {
    pub id: i64,
    /// Unique.
    pub name: String,
    pub catalog_id: String,
    pub catalog_version: String,
    /// The maturity crate's compact scope (`all`, `T4,T10-T20`).
    pub scope: String,
    /// Target level per item: a JSON object `{"4": 2, "34": 3}` (table → level).
    pub targets: Value,
    /// Free-form descriptive fields shown in reports (`organization`, `period`, …): a JSON object
    /// of strings.
    pub meta: Value,
    /// The username of the person responsible.
    pub owner: String,
    /// `draft`, `in_progress`, `in_review` or `signed_off`.
    pub state: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
    pub signed_off_by: Option<String>,
    pub signed_off_at: Option<DateTime<Utc>>,
}

/// One in-scope item of an assessment: who rates it, who reviews it, where the review stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssessmentItemRow {
    pub assessment_id: i64,
    /// The item's table number (表5 → 5).
    pub item_table: i64,
    /// Username.
    pub assessor: Option<String>,
    /// Username.
    pub reviewer: Option<String>,
    /// `open`, `submitted`, `approved` or `changes_requested`.
    pub review_state: String,
    pub review_comment: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

/// The answer for one clause (clauses without a row are `unrated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRow {
    pub assessment_id: i64,
    /// `T5.3.L2.c`.
    pub clause_id: String,
    pub item_table: i64,
    /// `met`, `partial`, `not_met`, `na` or `unrated`.
    pub rating: String,
    pub comment: Option<String>,
    /// Why the clause does not apply (`na` only).
    pub justification: Option<String>,
    /// The reviewer who accepted the `na` (cleared when the answer changes).
    pub na_approved_by: Option<String>,
    /// Username of whoever set the rating.
    pub rated_by: Option<String>,
    pub rated_at: Option<DateTime<Utc>>,
}

/// One piece of evidence for a clause. A file's bytes are kept apart from the row
/// ([`AssessmentStore::evidence_content`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRow {
    pub id: i64,
    pub assessment_id: i64,
    pub clause_id: String,
    /// `file`, `link` or `platform`.
    pub kind: String,
    /// The file's name, the URL, or the platform reference (`audit:1234`, `run:17`).
    pub name: String,
    /// Files: hex SHA-256 of the content.
    pub sha256: Option<String>,
    /// Files: size in bytes.
    pub size: Option<i64>,
    /// After this date the evidence no longer supports its clause.
    pub expires_on: Option<NaiveDate>,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
    /// When the expiry pass handled it (its clause went back to `unrated`).
    pub expired_at: Option<DateTime<Utc>>,
}

/// An improvement action toward a target: a gap handed to an owner with a due date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImprovementActionRow {
    pub id: i64,
    pub assessment_id: i64,
    pub item_table: i64,
    pub title: String,
    /// Username.
    pub owner: String,
    pub due_on: NaiveDate,
    /// `open`, `in_progress`, `done` or `cancelled`.
    pub status: String,
    /// The clauses the action is meant to fulfil.
    pub clause_ids: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// A file's bytes with its evidence row, for export/import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceDump {
    pub row: EvidenceRow,
    pub content: Option<Vec<u8>>,
}

/// Everything the assessments keep, for `ballast admin export|import` (ids kept).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssessmentDump {
    pub assessments: Vec<AssessmentRow>,
    pub items: Vec<AssessmentItemRow>,
    pub answers: Vec<AnswerRow>,
    pub evidence: Vec<EvidenceDump>,
    pub actions: Vec<ImprovementActionRow>,
}

/// Reads.
#[async_trait]
pub trait AssessmentStore: Send + Sync {
    /// By id.
    async fn assessments(&self) -> Result<Vec<AssessmentRow>>;
    async fn assessment(&self, id: i64) -> Result<Option<AssessmentRow>>;
    /// By table.
    async fn assessment_items(&self, assessment_id: i64) -> Result<Vec<AssessmentItemRow>>;
    /// By clause id (text order).
    async fn assessment_answers(&self, assessment_id: i64) -> Result<Vec<AnswerRow>>;
    /// By id.
    async fn assessment_evidence(&self, assessment_id: i64) -> Result<Vec<EvidenceRow>>;
    /// One evidence row with its file's bytes (`None` content for links and references).
    async fn evidence_content(&self, id: i64) -> Result<Option<(EvidenceRow, Option<Vec<u8>>)>>;
    /// Of one assessment, or of all; by id.
    async fn improvement_actions(
        &self,
        assessment_id: Option<i64>,
    ) -> Result<Vec<ImprovementActionRow>>;
    /// Evidence not yet handled whose `expires_on` is before `today`, of assessments that are
    /// not signed off; by id, at most `limit`.
    async fn expired_evidence(&self, today: NaiveDate, limit: u32) -> Result<Vec<EvidenceRow>>;
}

/// Actions, committed with their audit records.
#[async_trait]
pub trait AssessmentTx: Send {
    /// `Conflict` on a duplicate name. Returns the id.
    async fn insert_assessment(&mut self, a: &AssessmentRow) -> Result<i64>;
    /// Reads the assessment and holds it until the transaction ends.
    async fn lock_assessment(&mut self, id: i64) -> Result<Option<AssessmentRow>>;
    /// Replaces everything but the id and `created_*`; `NotFound` for an unknown assessment,
    /// `Conflict` on a duplicate name.
    async fn update_assessment(&mut self, a: &AssessmentRow) -> Result<()>;
    /// Inserts or replaces the item's row. `Conflict` for an unknown assessment.
    async fn upsert_assessment_item(&mut self, i: &AssessmentItemRow) -> Result<()>;
    /// Inserts or replaces answers (by assessment and clause). `Conflict` for an unknown
    /// assessment.
    async fn upsert_answers(&mut self, rows: &[AnswerRow]) -> Result<()>;
    /// Ids ignored; returns the new id. `Conflict` for an unknown assessment.
    async fn insert_evidence(&mut self, e: &EvidenceRow, content: Option<&[u8]>) -> Result<i64>;
    /// False if there was none.
    async fn delete_evidence(&mut self, id: i64) -> Result<bool>;
    /// Sets `expired_at` if it is still empty; returns whether it did.
    async fn mark_evidence_expired(&mut self, id: i64, at: DateTime<Utc>) -> Result<bool>;
    /// Ids ignored; returns the new id. `Conflict` for an unknown assessment.
    async fn insert_improvement_action(&mut self, a: &ImprovementActionRow) -> Result<i64>;
    /// Replaces everything but the id, assessment and `created_*`; `NotFound` if unknown.
    async fn update_improvement_action(&mut self, a: &ImprovementActionRow) -> Result<()>;
}
