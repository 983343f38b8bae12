//! The CMDB in the server (standard 10.14 资源模型管理/资源数据管理/资源数据运营, 10.1 资产入库):
//! models, instances, relations, business topology, history, queries, import and export.
//!
//! - `service` — guarded operations (each runs the guard pipeline and commits its change, its
//!   history rows and its audit record in one transaction) and the reads the API and CLI share
//!   (search with the query language, topology, impact, history, as-of views, data quality);
//! - `import` — CSV/XLSX reading and writing, the dry-run plan;
//! - `discovery` — agents' host facts into host instances, conflicts with hand-kept values
//!   queued for review (standard 表48);
//! - `api` — `/api/v1/cmdb/…`;
//! - `pages` — `/cmdb…`: search, an instance, topology, data quality with conflicts, import;
//! - `edit` — the edit pages: models (check, save or request approval), a new instance, and the
//!   instance page's forms (change, delete, add and remove relations).
//!
//! Permissions: `cmdb.read` / `cmdb.write` in the instance's environment; model definitions are
//! platform-wide (`cmdb.write` with global scope). Editing CMDB records changes no system, so the
//! change window does not apply (`cmdb.` is listed in `calendar::guard`'s administration
//! prefixes).

pub mod api;
pub mod discovery;
pub mod edit;
pub mod import;
pub mod pages;
pub mod service;

use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_store::{CmdbModelRow, Store, Tx};
use chrono::{DateTime, Utc};

/// Writes the built-in models that are missing (version 1) inside the bootstrap transaction;
/// returns the audit record describing it, if any was written.
pub async fn seed_builtin_models(
    store: &dyn Store,
    tx: &mut Box<dyn Tx>,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<AuditDraft>> {
    let existing = store.cmdb_models().await?;
    let mut added = Vec::new();
    for m in ballast_cmdb::builtin_models() {
        if existing.iter().any(|e| e.key == m.key) {
            continue;
        }
        tx.save_cmdb_model(
            &CmdbModelRow {
                key: m.key.clone(),
                version: 1,
                definition: serde_json::to_value(&m)?,
                builtin: true,
                updated_by: "system".into(),
                updated_at: now,
            },
            "built-in model",
        )
        .await?;
        added.push(m.key);
    }
    if added.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        AuditDraft::new(
            Actor::system(),
            "cmdb.model.builtin",
            "cmdb_model",
            Outcome::Success,
        )
        .after(serde_json::json!({"models": added})),
    ))
}

pub fn routes() -> axum::Router<crate::AppState> {
    api::routes().merge(pages::routes()).merge(edit::routes())
}
