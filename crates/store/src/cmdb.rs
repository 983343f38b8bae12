//! Storage of the CMDB: models (versioned definitions), configuration items (instances), the
//! relations between them, their change history and discovery conflicts.
//!
//! Every change is an action ([`CmdbTx`], inside a [`crate::Tx`], committed with its audit
//! record). The store knows nothing of attribute types: the server validates instances with
//! `ballast-cmdb` and hands the store JSON and the list of the model's unique attribute keys.
//!
//! What the store enforces: one instance per (model, environment, name); unique attribute values
//! per (model, environment, key) — kept in `cmdb_ci_unique`, so a race between two writers ends in
//! a `Conflict`, never in duplicates; one relation per (kind, source, target) between existing
//! instances; a model version is written once. Every scalar attribute value (list items one by
//! one) is also kept in `cmdb_ci_values`, indexed by (key, value), for searches.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;

/// A model's current definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmdbModelRow {
    pub key: String,
    /// 1 for the first definition; +1 per change.
    pub version: i64,
    /// The `ballast_cmdb::Model` as JSON.
    pub definition: Value,
    pub builtin: bool,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// One version of a model, kept for ever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmdbModelVersionRow {
    pub key: String,
    pub version: i64,
    pub definition: Value,
    pub author: String,
    pub created_at: DateTime<Utc>,
    /// What changed, for people.
    pub note: String,
}

/// What a search evaluates of an instance (read without the rest of its row, which a scan over
/// thousands of candidates would decode for nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiHead {
    pub id: i64,
    pub model: String,
    pub environment: String,
    pub name: String,
    pub attributes: Value,
}

/// A configuration item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiRow {
    pub id: i64,
    pub model: String,
    pub environment: String,
    pub name: String,
    /// Normalised attribute values (a JSON object).
    pub attributes: Value,
    /// Who set each attribute last: `{"os": "discovery", "owner": "manual"}`.
    pub sources: Value,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
    /// When discovery last reported on this instance (hosts with an agent).
    pub discovered_at: Option<DateTime<Utc>>,
}

/// Filters for listing instances, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiQuery {
    pub model: Option<String>,
    /// `None`: every environment; `Some(empty)`: none.
    pub environments: Option<Vec<String>>,
    /// Only these ids.
    pub ids: Option<Vec<i64>>,
    /// Only these names.
    pub names: Option<Vec<String>>,
    /// Instances with `id > after_id` (paging).
    pub after_id: Option<i64>,
    /// 0 = no limit.
    pub limit: u32,
}

/// A relation: `source KIND target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiRelationRow {
    pub id: i64,
    /// `runs_on`, `belongs_to`, `depends_on`, `connects_to`.
    pub kind: String,
    pub source_id: i64,
    pub target_id: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Which relations of a set of instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelationSide {
    /// Relations whose source is one of the instances.
    Source,
    /// Relations whose target is one of the instances.
    Target,
    Both,
}

/// One change to an instance or a relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiHistoryRow {
    pub id: i64,
    /// The instance changed (for a relation: its source).
    pub ci_id: i64,
    /// For a relation: its target.
    pub related_id: Option<i64>,
    /// `instance` or `relation`.
    pub object_type: String,
    /// `create`, `update`, `delete`.
    pub op: String,
    /// `ui`, `api`, `import`, `discovery`.
    pub via: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    /// What changed: `{"attr": {"from": …, "to": …}}`, or the relation `{kind, source, target}`.
    pub diff: Value,
    /// The instance after the change (`{model, environment, name, attributes}`), `null` after a
    /// delete; for a relation, the relation.
    pub snapshot: Value,
}

/// A discovered value that differs from a manually maintained one, queued for review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiConflictRow {
    pub id: i64,
    pub ci_id: i64,
    pub attribute: String,
    pub recorded: Value,
    pub discovered: Value,
    pub discovered_at: DateTime<Utc>,
    /// `open`, `accepted` (the discovered value was taken), `rejected` (the recorded one kept).
    pub state: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// Everything the CMDB keeps, for `ballast admin export|import` (ids kept, so relations,
/// conflicts and history still name the right instances). The value index and the unique keys
/// (`cmdb_ci_values`, `cmdb_ci_unique`) are not carried: an import rebuilds them from the
/// instances, with the unique attribute keys of each model's current definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CmdbDump {
    /// By key.
    pub models: Vec<CmdbModelRow>,
    /// By key, then version.
    pub model_versions: Vec<CmdbModelVersionRow>,
    /// By id.
    pub cis: Vec<CiRow>,
    /// By id.
    pub relations: Vec<CiRelationRow>,
    /// By id.
    pub history: Vec<CiHistoryRow>,
    /// By id.
    pub conflicts: Vec<CiConflictRow>,
}

/// Reads.
#[async_trait]
pub trait CmdbStore: Send + Sync {
    /// By key.
    async fn cmdb_models(&self) -> Result<Vec<CmdbModelRow>>;
    async fn cmdb_model(&self, key: &str) -> Result<Option<CmdbModelRow>>;
    /// Oldest first.
    async fn cmdb_model_versions(&self, key: &str) -> Result<Vec<CmdbModelVersionRow>>;

    async fn ci(&self, id: i64) -> Result<Option<CiRow>>;
    async fn ci_by_name(&self, model: &str, environment: &str, name: &str)
    -> Result<Option<CiRow>>;
    /// By id.
    async fn cis(&self, q: &CiQuery) -> Result<Vec<CiRow>>;
    /// The same instances as [`CmdbStore::cis`], only what a search evaluates.
    async fn ci_heads(&self, q: &CiQuery) -> Result<Vec<CiHead>>;
    /// Ids of instances (of `model` if given) with an attribute `key` holding one of `values`
    /// (a list attribute: one of its items), ascending.
    async fn ci_ids_by_value(
        &self,
        model: Option<&str>,
        key: &str,
        values: &[String],
    ) -> Result<Vec<i64>>;
    /// Instances per (model, environment).
    async fn ci_counts(&self) -> Result<Vec<(String, String, i64)>>;

    async fn ci_relation(&self, id: i64) -> Result<Option<CiRelationRow>>;
    /// Relations touching `ids` on `side`, of `kinds` (empty = all), by id.
    async fn ci_relations(
        &self,
        ids: &[i64],
        side: RelationSide,
        kinds: &[String],
    ) -> Result<Vec<CiRelationRow>>;

    /// Changes of an instance and of its relations (either end), oldest first, up to `until`
    /// (inclusive) when given.
    async fn ci_history(
        &self,
        ci_id: i64,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<CiHistoryRow>>;

    /// By id; `state` filters when given.
    async fn ci_conflicts(
        &self,
        state: Option<&str>,
        ci_id: Option<i64>,
    ) -> Result<Vec<CiConflictRow>>;
}

/// Actions, committed with their audit records.
#[async_trait]
pub trait CmdbTx: Send {
    /// Writes version `m.version` of a model (its version row and the current definition).
    /// `Conflict` when that version exists (a concurrent change).
    async fn save_cmdb_model(&mut self, m: &CmdbModelRow, note: &str) -> Result<()>;

    /// Returns the id. `Conflict` on a duplicate (model, environment, name) or a unique value
    /// (`unique` = the model's unique attribute keys) another instance holds.
    async fn insert_ci(&mut self, ci: &CiRow, unique: &[String]) -> Result<i64>;
    /// Replaces name, attributes, sources, `updated_*` and `discovered_at`. `NotFound` for an
    /// unknown instance; `Conflict` as for insert.
    async fn update_ci(&mut self, ci: &CiRow, unique: &[String]) -> Result<()>;
    /// Deletes the instance with its relations and conflicts; false if there was none.
    async fn delete_ci(&mut self, id: i64) -> Result<bool>;

    /// Returns the id. `Conflict` on a duplicate (kind, source, target) or an unknown instance.
    async fn insert_ci_relation(&mut self, r: &CiRelationRow) -> Result<i64>;
    async fn delete_ci_relation(&mut self, id: i64) -> Result<bool>;

    /// Ids ignored.
    async fn insert_ci_history(&mut self, rows: &[CiHistoryRow]) -> Result<()>;

    async fn insert_ci_conflict(&mut self, c: &CiConflictRow) -> Result<i64>;
    /// `NotFound` for an unknown conflict, `Conflict` when it is no longer open.
    async fn decide_ci_conflict(
        &mut self,
        id: i64,
        state: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;
}
