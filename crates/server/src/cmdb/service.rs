//! Guarded CMDB operations and the reads the API and pages share.
//!
//! Writes: validate against the model (every problem reported), check references and unique
//! values, run the guard pipeline (`cmdb.write` in the instance's environment or business), then change the
//! store, write history rows (who, when, through what, the diff and the instance after) and the
//! audit record in one transaction.
//!
//! Reads: `cmdb.read` in the environments looked at, or in the business systems the instances
//! belong to ([`Reach`]); lists show only what the caller may read. Searches narrow candidates with the query's top-level equalities (the value index,
//! or the topology for `module = "…"`) and evaluate the whole query on each candidate with its
//! `belongs_to` ancestors.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::http::StatusCode;
use ballast_cmdb::model::TOPOLOGY;
use ballast_cmdb::relation::{Direction, check_models, reaches};
use ballast_cmdb::validate::{check_name, index_values, references};
use ballast_cmdb::{
    Ancestor, FieldError, Model, Msg, Query, RelationKind, Subject, diff_models,
    validate_attributes,
};
use ballast_core::Problem;
use ballast_core::audit::Outcome;
use ballast_core::authz::{Permission, Scope, Target};
use ballast_core::guard::{Action, ActionKind, Principal, Via};
use ballast_store::{
    CiHead, CiHistoryRow, CiQuery, CiRelationRow, CiRow, CmdbModelRow, RelationSide,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::service::draft;
use crate::state::AppState;

/// Deepest `belongs_to` chain followed for ancestors and topology filters.
pub const MAX_TOPOLOGY_DEPTH: u32 = 8;
/// Default and largest depth of impact and dependency queries.
pub const DEFAULT_DEPTH: u32 = 5;
pub const MAX_DEPTH: u32 = 10;
/// Largest page of search results.
pub const MAX_LIMIT: u32 = 10_000;
/// Candidates evaluated per batch while scanning.
const SCAN_BATCH: u32 = 2_000;

// ---------------------------------------------------------------- errors

pub(crate) fn invalid(errs: &[FieldError]) -> ApiError {
    let zh: Vec<String> = errs.iter().map(|e| e.message_zh()).collect();
    let en: Vec<String> = errs.iter().map(|e| e.message_en()).collect();
    let first = errs.first();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        Problem {
            code: first.map_or("cmdb.invalid", |e| e.code),
            field: first.map(|e| e.field.clone()),
            message_zh: zh.join("；"),
            message_en: en.join("; "),
        },
    )
}

fn bad(code: &'static str, field: &str, zh: String, en: String) -> ApiError {
    ApiError::bad_request(Problem::field(code, field, zh, en))
}

fn conflict(code: &'static str, field: &str, zh: String, en: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, Problem::field(code, field, zh, en))
}

pub(crate) fn query_error(e: &ballast_cmdb::QueryError) -> ApiError {
    ApiError::bad_request(Problem::field(e.code, "q", e.message_zh(), e.message_en()))
}

/// Parses a query, or an error naming field `q` and the column.
pub fn parse_query(q: &str) -> ApiResult<Query> {
    Query::parse(q).map_err(|e| query_error(&e))
}

// ---------------------------------------------------------------- models

/// Every model, by key.
pub async fn models(state: &AppState) -> ApiResult<BTreeMap<String, (CmdbModelRow, Model)>> {
    let mut out = BTreeMap::new();
    for row in state.store.cmdb_models().await? {
        let m: Model = serde_json::from_value(row.definition.clone()).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Problem::new(
                    "cmdb.model_corrupt",
                    format!("模型 {} 的定义已损坏：{e}", row.key),
                    format!("model {}'s stored definition is corrupt: {e}", row.key),
                ),
            )
        })?;
        out.insert(row.key.clone(), (row, m));
    }
    Ok(out)
}

pub async fn model(state: &AppState, key: &str) -> ApiResult<Model> {
    models(state)
        .await?
        .remove(key)
        .map(|(_, m)| m)
        .ok_or_else(|| unknown_model(key))
}

fn unknown_model(key: &str) -> ApiError {
    bad(
        "cmdb.model_unknown",
        "model",
        format!("模型 {key} 不存在"),
        format!("model {key} does not exist"),
    )
}

/// What a model change would do, and to how many instances.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelChangeReport {
    pub key: String,
    /// The version the change creates (1 for a new model).
    pub version: i64,
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<ballast_cmdb::ModelChange>,
    pub changes_zh: Vec<String>,
    pub changes_en: Vec<String>,
    pub may_invalidate: bool,
    /// Existing instances the new definition would reject.
    pub invalid_instances: u64,
    /// Up to 20 of their problems: `environment/name: problem`.
    pub examples: Vec<String>,
    /// Set when the change would invalidate instances: it was not applied, and this approval
    /// request waits for a second person (`/approvals`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<i64>,
}

/// Checks a new definition of a model against the current one and existing data.
pub async fn plan_model_change(state: &AppState, m: &Model) -> ApiResult<ModelChangeReport> {
    let all = models(state).await?;
    let mut known: BTreeSet<String> = all.keys().cloned().collect();
    known.insert(m.key.clone());
    m.check(&known).map_err(|e| invalid(&e))?;
    let current = all.get(&m.key);
    let (version, diff) = match current {
        Some((row, old)) => (row.version + 1, diff_models(old, m)),
        None => (1, diff_models(m, m)),
    };
    let mut report = ModelChangeReport {
        key: m.key.clone(),
        version,
        changes_zh: diff.changes.iter().map(|c| c.describe_zh()).collect(),
        changes_en: diff.changes.iter().map(|c| c.describe_en()).collect(),
        changes: diff.changes,
        may_invalidate: diff.may_invalidate,
        invalid_instances: 0,
        examples: Vec::new(),
        approval: None,
    };
    if current.is_some() && diff.may_invalidate {
        let mut after = None;
        let mut seen_unique: HashMap<(String, String, String), String> = HashMap::new();
        loop {
            let batch = state
                .store
                .cis(&CiQuery {
                    model: Some(m.key.clone()),
                    after_id: after,
                    limit: SCAN_BATCH,
                    ..CiQuery::default()
                })
                .await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id);
            for ci in &batch {
                let attrs = as_map(&ci.attributes);
                let mut problems: Vec<String> = match validate_attributes(m, &attrs) {
                    Ok(_) => Vec::new(),
                    Err(errs) => errs.iter().map(|e| e.message_en()).collect(),
                };
                for key in m.unique_keys() {
                    for v in attrs.get(&key).map(index_values).unwrap_or_default() {
                        let k = (ci.environment.clone(), key.clone(), v.clone());
                        if let Some(other) = seen_unique.insert(k, ci.name.clone()) {
                            problems
                                .push(format!("field {key}: value {v:?} is also held by {other}"));
                        }
                    }
                }
                if !problems.is_empty() {
                    report.invalid_instances += 1;
                    if report.examples.len() < 20 {
                        report.examples.push(format!(
                            "{}/{}: {}",
                            ci.environment,
                            ci.name,
                            problems.join("; ")
                        ));
                    }
                }
            }
        }
    }
    Ok(report)
}

/// The approval kind a model change that would invalidate instances files.
pub const MODEL_CHANGE_APPROVAL: &str = "cmdb.model.change";

/// Creates or changes a model (a new version). A change that existing instances satisfy applies
/// at once. A change that would invalidate instances is **not applied**: it files a pending
/// approval request (kind [`MODEL_CHANGE_APPROVAL`], object `cmdb_model` `KEY@NEXTVERSION`, the
/// proposed definition, the change list, the invalid count and examples as payload), audited
/// `cmdb.model.change.request`, and the report carries its id in `approval`. A second request
/// for a model that already has one pending is refused (`approval.already_pending`, 409). A
/// second person decides through `exec::service::decide_approval`, which calls
/// [`apply_model_change`].
pub async fn save_model(
    state: &AppState,
    p: &Principal,
    m: &Model,
) -> ApiResult<ModelChangeReport> {
    let action = Action::new(
        ActionKind::Mutate,
        Permission::CmdbWrite,
        "cmdb.model.save",
        Target::global(),
    );
    crate::service::authorize(state, p, &action).await?;
    let mut report = plan_model_change(state, m).await?;
    let current = state.store.cmdb_model(&m.key).await?;
    if report.version > 1 && report.changes.is_empty() {
        return Ok(report);
    }
    let now = state.clock.now();
    let mut def = m.clone();
    def.builtin = current.as_ref().is_some_and(|c| c.builtin);
    if report.invalid_instances > 0 {
        report.approval = Some(request_model_change(state, p, &def, &report, now).await?);
        return Ok(report);
    }
    let mut tx = state.store.begin().await?;
    let d = write_model_version(
        &mut tx,
        p,
        &def,
        report.version,
        &report.changes_en,
        current.map(|c| c.definition),
        None,
        now,
    )
    .await?;
    tx.commit(vec![d], now).await?;
    Ok(report)
}

/// Writes version `version` of a model and returns its audit record (`cmdb.model.save`, with
/// the approval that allowed it, if any).
#[allow(clippy::too_many_arguments)]
async fn write_model_version(
    tx: &mut Box<dyn ballast_store::Tx>,
    p: &Principal,
    def: &Model,
    version: i64,
    changes_en: &[String],
    before: Option<Value>,
    approval: Option<i64>,
    now: DateTime<Utc>,
) -> ApiResult<ballast_core::audit::AuditDraft> {
    let row = CmdbModelRow {
        key: def.key.clone(),
        version,
        definition: serde_json::to_value(def).unwrap_or(Value::Null),
        builtin: def.builtin,
        updated_by: p.user.username.clone(),
        updated_at: now,
    };
    tx.save_cmdb_model(&row, &changes_en.join("; ")).await?;
    let mut after =
        json!({"version": version, "definition": row.definition, "changes": changes_en});
    if let Some(id) = approval {
        after["approval"] = json!(id);
    }
    Ok(draft(p, "cmdb.model.save", "cmdb_model", Outcome::Success)
        .object(&def.key)
        .before(before.unwrap_or(Value::Null))
        .after(after))
}

/// Files the approval request for a change that would invalidate instances; returns its id.
async fn request_model_change(
    state: &AppState,
    p: &Principal,
    def: &Model,
    report: &ModelChangeReport,
    now: DateTime<Utc>,
) -> ApiResult<i64> {
    let object = format!("{}@{}", def.key, report.version);
    let prefix = format!("{}@", def.key);
    let mut pending = state
        .store
        .approval_for(MODEL_CHANGE_APPROVAL, "cmdb_model", &object)
        .await?
        .filter(|a| a.state == "pending");
    if pending.is_none() {
        // A request based on an older version of the model is still one pending for it.
        pending = state
            .store
            .approvals(Some("pending"), 1000)
            .await?
            .into_iter()
            .find(|a| {
                a.kind == MODEL_CHANGE_APPROVAL
                    && a.object_type == "cmdb_model"
                    && a.object_id.starts_with(&prefix)
            });
    }
    if let Some(a) = pending {
        return Err(conflict(
            "approval.already_pending",
            "key",
            format!("模型 {} 已有待审批的变更申请 #{}", def.key, a.id),
            format!(
                "model {} already has a pending change request #{}",
                def.key, a.id
            ),
        ));
    }
    let definition = serde_json::to_value(def).unwrap_or(Value::Null);
    let mut tx = state.store.begin().await?;
    let id = tx
        .insert_approval(&ballast_store::ApprovalRow {
            id: 0,
            kind: MODEL_CHANGE_APPROVAL.into(),
            object_type: "cmdb_model".into(),
            object_id: object.clone(),
            environment: None,
            requested_by: p.user.username.clone(),
            requested_at: now,
            reason: format!(
                "{} ({} invalid instances)",
                report.changes_en.join("; "),
                report.invalid_instances
            ),
            payload: json!({
                "key": def.key,
                "base_version": report.version - 1,
                "version": report.version,
                "definition": definition,
                "changes": report.changes,
                "changes_zh": report.changes_zh,
                "changes_en": report.changes_en,
                "invalid_instances": report.invalid_instances,
                "examples": report.examples,
            }),
            state: "pending".into(),
            decided_by: None,
            decided_at: None,
            comment: None,
        })
        .await?;
    let d = draft(
        p,
        "cmdb.model.change.request",
        "cmdb_model",
        Outcome::Success,
    )
    .object(&object)
    .after(json!({
        "approval": id,
        "changes": report.changes_en,
        "invalid_instances": report.invalid_instances,
        "examples": report.examples,
    }));
    tx.commit(vec![d], now).await?;
    Ok(id)
}

/// Applies an approved model change request inside the decision's transaction: the stored model
/// must still be at the version the request was based on (else `cmdb.model_changed`, 409, and
/// nothing is applied) and the definition must still be valid; then the new version is written.
/// Returns the `cmdb.model.save` audit record (naming the approval).
pub(crate) async fn apply_model_change(
    state: &AppState,
    tx: &mut Box<dyn ballast_store::Tx>,
    p: &Principal,
    a: &ballast_store::ApprovalRow,
    now: DateTime<Utc>,
) -> ApiResult<ballast_core::audit::AuditDraft> {
    let (key, version) = a
        .object_id
        .rsplit_once('@')
        .and_then(|(k, v)| v.parse::<i64>().ok().map(|v| (k.to_string(), v)))
        .ok_or_else(|| ApiError::not_found(&a.object_id))?;
    let mut def: Model = serde_json::from_value(a.payload["definition"].clone()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Problem::new(
                "cmdb.model_corrupt",
                format!("审批 #{} 中的模型定义已损坏：{e}", a.id),
                format!("the model definition in approval #{} is corrupt: {e}", a.id),
            ),
        )
    })?;
    if def.key != key {
        return Err(key_differs(&key, &def.key));
    }
    let all = models(state).await?;
    let Some((row, old)) = all.get(&key) else {
        return Err(unknown_model(&key));
    };
    if row.version != version - 1 {
        return Err(conflict(
            "cmdb.model_changed",
            "version",
            format!(
                "模型 {key} 在申请后已变更（申请基于第 {} 版，现为第 {} 版）；未做任何更改，请驳回后重新申请",
                version - 1,
                row.version
            ),
            format!(
                "model {key} changed since the request (it was based on version {}, it is now at version {}); nothing was applied: reject it and ask again",
                version - 1,
                row.version
            ),
        ));
    }
    let known: BTreeSet<String> = all.keys().cloned().collect();
    def.check(&known).map_err(|e| invalid(&e))?;
    def.builtin = row.builtin;
    let diff = diff_models(old, &def);
    let changes_en: Vec<String> = diff.changes.iter().map(|c| c.describe_en()).collect();
    write_model_version(
        tx,
        p,
        &def,
        version,
        &changes_en,
        Some(row.definition.clone()),
        Some(a.id),
        now,
    )
    .await
}

fn key_differs(path: &str, body: &str) -> ApiError {
    bad(
        "cmdb.model_key_mismatch",
        "key",
        format!("申请中的模型 {path} 与定义中的 {body} 不一致"),
        format!("the request names model {path} but its definition defines {body}"),
    )
}

// ---------------------------------------------------------------- visibility

/// Where `p` may use one CMDB permission (`cmdb.read` or `cmdb.write`).
///
/// `global` and `environment:NAME` grants open whole environments. A `business:NAME` grant opens,
/// in every managed environment, the business instance `NAME` and everything that belongs to it
/// through the topology (`belongs_to`, directly or through subsystems and modules) — which is how
/// a business system's own team keeps its part of the CMDB without seeing the rest.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// Environments open in full.
    pub environments: Vec<String>,
    /// Business systems open in [`Reach::business_environments`].
    pub businesses: Vec<String>,
    /// The managed environments not open in full, where the business systems apply (empty when
    /// there are no business grants).
    pub business_environments: Vec<String>,
}

impl Reach {
    /// Nothing is open.
    pub fn is_empty(&self) -> bool {
        self.environments.is_empty() && self.business_environments.is_empty()
    }

    /// Every environment something is open in, sorted.
    pub fn open_environments(&self) -> Vec<String> {
        let all: BTreeSet<&String> = self
            .environments
            .iter()
            .chain(&self.business_environments)
            .collect();
        all.into_iter().cloned().collect()
    }
}

/// What `p` may reach with `perm` (of the environments this deployment manages).
pub async fn reach(state: &AppState, p: &Principal, perm: Permission) -> ApiResult<Reach> {
    if let Via::Token { permissions } = &p.via
        && !permissions.is_empty()
        && !permissions.contains(&perm)
    {
        return Ok(Reach::default());
    }
    let roles = state.store.roles().await?;
    let mut envs = BTreeSet::new();
    let mut businesses = BTreeSet::new();
    for b in &p.bindings {
        if !roles
            .iter()
            .any(|r| r.key == b.role && r.permissions.contains(&perm))
        {
            continue;
        }
        match &b.scope {
            Scope::Global => envs.extend(state.config.environments.iter().cloned()),
            Scope::Environment(e) if state.config.environments.contains(e) => {
                envs.insert(e.clone());
            }
            Scope::BusinessSystem(name) => {
                businesses.insert(name.clone());
            }
            Scope::Environment(_) => {}
        }
    }
    let business_environments = if businesses.is_empty() {
        Vec::new()
    } else {
        state
            .config
            .environments
            .iter()
            .filter(|e| !envs.contains(*e))
            .cloned()
            .collect()
    };
    Ok(Reach {
        environments: envs.into_iter().collect(),
        businesses: businesses.into_iter().collect(),
        business_environments,
    })
}

/// The environments `p` may use `perm` in as a whole (business-system grants left out: imports,
/// discovery, data quality and conflict lists work on whole environments).
pub async fn environments_for(
    state: &AppState,
    p: &Principal,
    perm: Permission,
) -> ApiResult<Vec<String>> {
    Ok(reach(state, p, perm).await?.environments)
}

/// A [`Reach`] with the members of its business systems looked up, to filter rows with.
#[derive(Debug, Clone, Default)]
pub struct Visible {
    reach: Reach,
    members: BTreeSet<i64>,
}

impl Visible {
    pub async fn of(state: &AppState, reach: Reach) -> ApiResult<Visible> {
        let members =
            business_members(state, &reach.businesses, &reach.business_environments).await?;
        Ok(Visible { reach, members })
    }

    /// Whether the instance `id` of environment `env` is open.
    pub fn sees(&self, env: &str, id: i64) -> bool {
        self.reach.environments.iter().any(|e| e == env)
            || (self.reach.business_environments.iter().any(|e| e == env)
                && self.members.contains(&id))
    }
}

/// The business instances named `businesses` in `environments` and everything that belongs to
/// them.
pub async fn business_members(
    state: &AppState,
    businesses: &[String],
    environments: &[String],
) -> ApiResult<BTreeSet<i64>> {
    if businesses.is_empty() || environments.is_empty() {
        return Ok(BTreeSet::new());
    }
    let roots: Vec<i64> = state
        .store
        .cis(&CiQuery {
            model: Some(TOPOLOGY[0].to_string()),
            names: Some(businesses.to_vec()),
            environments: Some(environments.to_vec()),
            ..CiQuery::default()
        })
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut out = descendants(state, &roots).await?;
    out.extend(roots);
    Ok(out)
}

/// The business systems an instance belongs to: itself if it is one, else its business
/// ancestors.
pub async fn businesses_of(state: &AppState, ci: &CiRow) -> ApiResult<Vec<String>> {
    if ci.model == TOPOLOGY[0] {
        return Ok(vec![ci.name.clone()]);
    }
    let mut anc = ancestors(state, &[ci.id]).await?;
    let mut out: Vec<String> = anc
        .remove(&ci.id)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.model == TOPOLOGY[0])
        .map(|a| a.name)
        .collect();
    out.dedup();
    Ok(out)
}

/// Whether `p` holds `cmdb.write` for the instance (its environment, or a business it belongs
/// to) — for showing edit forms; the guard decides when they are used.
pub async fn may_write(state: &AppState, p: &Principal, ci: &CiRow) -> ApiResult<bool> {
    let r = reach(state, p, Permission::CmdbWrite).await?;
    if r.environments.contains(&ci.environment) {
        return Ok(true);
    }
    if !r.business_environments.contains(&ci.environment) {
        return Ok(false);
    }
    let mine = businesses_of(state, ci).await?;
    Ok(mine.iter().any(|b| r.businesses.contains(b)))
}

/// Runs the guard for reading or changing one instance. The target is its environment and, for a
/// caller with business grants but none on that environment, the business system it belongs to
/// (one the caller holds a grant for, if any), so a `business:NAME` grant covers the instances
/// of that business.
pub(crate) async fn authorize_ci(
    state: &AppState,
    p: &Principal,
    perm: Permission,
    op: &str,
    ci: &CiRow,
) -> ApiResult<()> {
    let reach = reach(state, p, perm).await?;
    // The topology walk is paid only when a business grant may be what lets the caller in.
    let business = if reach.businesses.is_empty() || reach.environments.contains(&ci.environment) {
        None
    } else {
        let businesses = businesses_of(state, ci).await?;
        businesses
            .iter()
            .find(|b| reach.businesses.contains(b))
            .or(businesses.first())
            .cloned()
    };
    let kind = if perm == Permission::CmdbRead {
        ActionKind::Read
    } else {
        ActionKind::Mutate
    };
    let target = Target {
        environment: Some(ci.environment.clone()),
        business_system: business,
        ..Target::default()
    };
    crate::service::authorize(state, p, &Action::new(kind, perm, op, target))
        .await
        .map(|_| ())
}

fn check_environment(state: &AppState, env: &str) -> ApiResult<()> {
    if state.config.environments.iter().any(|e| e == env) {
        return Ok(());
    }
    Err(bad(
        "environment.unknown",
        "environment",
        format!("环境 {env} 不是本平台管理的环境"),
        format!("environment {env} is not managed by this deployment"),
    ))
}

/// Runs the guard for reading `env`'s CMDB data.
pub async fn authorize_read(state: &AppState, p: &Principal, op: &str, env: &str) -> ApiResult<()> {
    let action = Action::new(
        ActionKind::Read,
        Permission::CmdbRead,
        op,
        Target::environment(env),
    );
    crate::service::authorize(state, p, &action)
        .await
        .map(|_| ())
}

/// Runs the guard for reading in `env` — in full, or the business systems a grant opens there —
/// and returns what is open there.
pub async fn authorize_read_in(
    state: &AppState,
    p: &Principal,
    op: &str,
    env: &str,
) -> ApiResult<Reach> {
    let r = reach(state, p, Permission::CmdbRead).await?;
    if r.business_environments.iter().any(|e| e == env)
        && let Some(b) = r.businesses.first()
    {
        let target = Target {
            environment: Some(env.to_string()),
            business_system: Some(b.clone()),
            ..Target::default()
        };
        let action = Action::new(ActionKind::Read, Permission::CmdbRead, op, target);
        crate::service::authorize(state, p, &action).await?;
        return Ok(Reach {
            environments: Vec::new(),
            businesses: r.businesses,
            business_environments: vec![env.to_string()],
        });
    }
    authorize_read(state, p, op, env).await?;
    Ok(Reach {
        environments: vec![env.to_string()],
        ..Reach::default()
    })
}

/// Runs the guard for a reading without one environment (at least one readable somewhere).
pub async fn authorize_read_any(state: &AppState, p: &Principal, op: &str) -> ApiResult<()> {
    let target = crate::calendar::reference_target(state, p, Permission::CmdbRead).await?;
    let action = Action::new(ActionKind::Read, Permission::CmdbRead, op, target);
    crate::service::authorize(state, p, &action)
        .await
        .map(|_| ())
}

pub(crate) async fn authorize_write(
    state: &AppState,
    p: &Principal,
    op: &str,
    env: &str,
) -> ApiResult<()> {
    let action = Action::new(
        ActionKind::Mutate,
        Permission::CmdbWrite,
        op,
        Target::environment(env),
    );
    crate::service::authorize(state, p, &action)
        .await
        .map(|_| ())
}

/// `ui` for a browser session, `api` otherwise.
pub fn via_of(p: &Principal) -> &'static str {
    match p.via {
        Via::Session { .. } => "ui",
        _ => "api",
    }
}

// ---------------------------------------------------------------- instances

pub(crate) fn as_map(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    }
}

/// An instance to create.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceInput {
    pub model: String,
    pub environment: String,
    /// Unique per model and environment (a host's hostname).
    pub name: String,
    /// Attribute values by key; text is accepted for every type (`"8"`, `"是"`, `"a, b"`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
}

/// A new definition of an instance: its name and all its attributes (those left out are
/// cleared).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
}

/// Validates attributes and the name, and checks references and unique values against the store
/// (`self_id`: the instance being changed). Every problem is returned.
pub(crate) async fn check_instance(
    state: &AppState,
    m: &Model,
    env: &str,
    name: &str,
    input: &Map<String, Value>,
    self_id: Option<i64>,
) -> ApiResult<Result<Map<String, Value>, Vec<FieldError>>> {
    check_instance_with(state, m, env, name, input, self_id, &mut Lookups::default()).await
}

/// The store lookups [`check_instance`] makes — who holds a unique value, whether a referenced
/// instance exists — answered from what was fetched in bulk beforehand ([`Lookups::prefetch`],
/// one query per 1,000 values for a whole import) or remembered from an earlier row; anything
/// not known yet is asked of the store, exactly as without the cache. Valid for one environment
/// and one transaction's view: build one per import, never keep it.
#[derive(Default)]
pub(crate) struct Lookups {
    /// `(model, key, value)` → the instances of the environment holding it.
    holders: HashMap<(String, String, String), Vec<CiRow>>,
    /// `(model, name)` → whether it exists in the environment.
    exists: HashMap<(String, String), bool>,
}

impl Lookups {
    /// Fetches, for attribute `key` of model `model`, the holders in `env` of every value in
    /// `values`, 1,000 values per query.
    pub(crate) async fn prefetch(
        &mut self,
        state: &AppState,
        model: &str,
        key: &str,
        env: &str,
        values: &[String],
    ) -> ApiResult<()> {
        for chunk in values.chunks(1_000) {
            let ids = state.store.ci_ids_by_value(Some(model), key, chunk).await?;
            for v in chunk {
                self.holders
                    .insert((model.to_owned(), key.to_owned(), v.clone()), Vec::new());
            }
            if ids.is_empty() {
                continue;
            }
            let rows = state
                .store
                .cis(&CiQuery {
                    ids: Some(ids),
                    environments: Some(vec![env.to_string()]),
                    ..CiQuery::default()
                })
                .await?;
            for row in rows {
                for v in row
                    .attributes
                    .get(key)
                    .map(index_values)
                    .unwrap_or_default()
                {
                    if let Some(list) = self.holders.get_mut(&(model.to_owned(), key.to_owned(), v))
                    {
                        list.push(row.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// The instances of `env` whose attribute `key` of model `model` holds `value`.
    pub(crate) async fn holders(
        &mut self,
        state: &AppState,
        model: &str,
        key: &str,
        env: &str,
        value: &str,
    ) -> ApiResult<Vec<CiRow>> {
        let k = (model.to_owned(), key.to_owned(), value.to_owned());
        if let Some(rows) = self.holders.get(&k) {
            return Ok(rows.clone());
        }
        self.prefetch(state, model, key, env, &[value.to_owned()])
            .await?;
        Ok(self.holders.get(&k).cloned().unwrap_or_default())
    }

    async fn exists(
        &mut self,
        state: &AppState,
        model: &str,
        env: &str,
        name: &str,
    ) -> ApiResult<bool> {
        let k = (model.to_owned(), name.to_owned());
        if let Some(e) = self.exists.get(&k) {
            return Ok(*e);
        }
        let e = state.store.ci_by_name(model, env, name).await?.is_some();
        self.exists.insert(k, e);
        Ok(e)
    }
}

/// [`check_instance`] with the lookups answered from (and remembered in) `lookups`.
pub(crate) async fn check_instance_with(
    state: &AppState,
    m: &Model,
    env: &str,
    name: &str,
    input: &Map<String, Value>,
    self_id: Option<i64>,
    lookups: &mut Lookups,
) -> ApiResult<Result<Map<String, Value>, Vec<FieldError>>> {
    let mut errs = Vec::new();
    if let Err(e) = check_name(name) {
        errs.push(e);
    }
    let attrs = match validate_attributes(m, input) {
        Ok(a) => a,
        Err(mut es) => {
            errs.append(&mut es);
            return Ok(Err(errs));
        }
    };
    for r in references(m, &attrs) {
        if !lookups.exists(state, &r.model, env, &r.name).await? {
            errs.push(FieldError::new(
                "cmdb.reference_missing",
                r.key.clone(),
                format!("引用的 {} {} 在环境 {env} 中不存在", r.model, r.name),
                format!(
                    "the referenced {} {} does not exist in environment {env}",
                    r.model, r.name
                ),
            ));
        }
    }
    for key in m.unique_keys() {
        for v in attrs.get(&key).map(index_values).unwrap_or_default() {
            let holders = lookups.holders(state, &m.key, &key, env, &v).await?;
            if let Some(h) = holders.iter().find(|h| Some(h.id) != self_id) {
                errs.push(FieldError::new(
                    "cmdb.unique_taken",
                    key.clone(),
                    format!("值 {v:?} 必须唯一，已被 {} 使用", h.name),
                    format!(
                        "value {v:?} must be unique and is already held by {}",
                        h.name
                    ),
                ));
            }
        }
    }
    if errs.is_empty() {
        Ok(Ok(attrs))
    } else {
        Ok(Err(errs))
    }
}

/// `{attr: {from, to}}` for every attribute that differs (and the name).
pub fn diff(
    before: Option<(&str, &Map<String, Value>)>,
    after: Option<(&str, &Map<String, Value>)>,
) -> Value {
    let mut out = Map::new();
    let (bn, ba) = before.map_or((None, None), |(n, a)| (Some(n), Some(a)));
    let (an, aa) = after.map_or((None, None), |(n, a)| (Some(n), Some(a)));
    if bn != an {
        out.insert("name".into(), json!({"from": bn, "to": an}));
    }
    let empty = Map::new();
    let ba = ba.unwrap_or(&empty);
    let aa = aa.unwrap_or(&empty);
    let keys: BTreeSet<&String> = ba.keys().chain(aa.keys()).collect();
    for k in keys {
        let (f, t) = (ba.get(k), aa.get(k));
        if f != t {
            out.insert(k.clone(), json!({"from": f, "to": t}));
        }
    }
    Value::Object(out)
}

pub(crate) fn snapshot(ci: &CiRow) -> Value {
    json!({"model": ci.model, "environment": ci.environment, "name": ci.name, "attributes": ci.attributes})
}

pub(crate) fn history_row(
    ci: &CiRow,
    op: &str,
    via: &str,
    actor: &str,
    at: DateTime<Utc>,
    diff: Value,
) -> CiHistoryRow {
    CiHistoryRow {
        id: 0,
        ci_id: ci.id,
        related_id: None,
        object_type: "instance".into(),
        op: op.into(),
        via: via.into(),
        actor: actor.into(),
        at,
        diff,
        snapshot: if op == "delete" {
            Value::Null
        } else {
            snapshot(ci)
        },
    }
}

fn sources_for(
    attrs: &Map<String, Value>,
    previous: Option<&Value>,
    source: &str,
    changed: &Value,
) -> Value {
    let mut s = previous.map(as_map).unwrap_or_default();
    s.retain(|k, _| attrs.contains_key(k));
    let changed = as_map(changed);
    for k in attrs.keys() {
        if changed.contains_key(k) || !s.contains_key(k) {
            s.insert(k.clone(), Value::String(source.to_string()));
        }
    }
    Value::Object(s)
}

/// Creates an instance. Returns its id.
pub async fn create_instance(
    state: &AppState,
    p: &Principal,
    input: &InstanceInput,
    via: &str,
) -> ApiResult<i64> {
    check_environment(state, &input.environment)?;
    authorize_write(state, p, "cmdb.ci.create", &input.environment).await?;
    let m = model(state, &input.model).await?;
    let attrs = check_instance(
        state,
        &m,
        &input.environment,
        &input.name,
        &input.attributes,
        None,
    )
    .await?
    .map_err(|e| invalid(&e))?;
    if state
        .store
        .ci_by_name(&m.key, &input.environment, &input.name)
        .await?
        .is_some()
    {
        return Err(conflict(
            "cmdb.instance_exists",
            "name",
            format!(
                "{} {} 在环境 {} 中已存在",
                m.name_zh, input.name, input.environment
            ),
            format!(
                "{} {} already exists in environment {}",
                m.name_en, input.name, input.environment
            ),
        ));
    }
    let now = state.clock.now();
    let d = diff(None, Some((&input.name, &attrs)));
    let mut ci = CiRow {
        id: 0,
        model: m.key.clone(),
        environment: input.environment.clone(),
        name: input.name.clone(),
        sources: sources_for(&attrs, None, "manual", &d),
        attributes: Value::Object(attrs),
        created_by: p.user.username.clone(),
        created_at: now,
        updated_by: p.user.username.clone(),
        updated_at: now,
        discovered_at: None,
    };
    let mut tx = state.store.begin().await?;
    ci.id = tx.insert_ci(&ci, &m.unique_keys()).await?;
    tx.insert_ci_history(&[history_row(&ci, "create", via, &p.user.username, now, d)])
        .await?;
    let audit = draft(p, "cmdb.ci.create", "cmdb_ci", Outcome::Success)
        .object(ci.id)
        .environment(Some(ci.environment.clone()))
        .after(snapshot(&ci));
    tx.commit(vec![audit], now).await?;
    Ok(ci.id)
}

pub async fn load(state: &AppState, id: i64) -> ApiResult<CiRow> {
    state
        .store
        .ci(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("CMDB instance {id}")))
}

/// Replaces an instance's name and attributes.
pub async fn update_instance(
    state: &AppState,
    p: &Principal,
    id: i64,
    input: &InstanceUpdate,
    via: &str,
) -> ApiResult<()> {
    let old = load(state, id).await?;
    authorize_ci(state, p, Permission::CmdbWrite, "cmdb.ci.update", &old).await?;
    let m = model(state, &old.model).await?;
    let name = input.name.clone().unwrap_or_else(|| old.name.clone());
    if old.model == TOPOLOGY[0] && name != old.name {
        // Renaming a business system moves everything in it: the new name must be covered too.
        let renamed = CiRow {
            name: name.clone(),
            ..old.clone()
        };
        authorize_ci(state, p, Permission::CmdbWrite, "cmdb.ci.update", &renamed).await?;
    }
    let attrs = check_instance(
        state,
        &m,
        &old.environment,
        &name,
        &input.attributes,
        Some(id),
    )
    .await?
    .map_err(|e| invalid(&e))?;
    if name != old.name
        && state
            .store
            .ci_by_name(&m.key, &old.environment, &name)
            .await?
            .is_some()
    {
        return Err(conflict(
            "cmdb.instance_exists",
            "name",
            format!("{} {name} 在环境 {} 中已存在", m.name_zh, old.environment),
            format!(
                "{} {name} already exists in environment {}",
                m.name_en, old.environment
            ),
        ));
    }
    let old_attrs = as_map(&old.attributes);
    let d = diff(Some((&old.name, &old_attrs)), Some((&name, &attrs)));
    if as_map(&d).is_empty() {
        return Ok(());
    }
    let now = state.clock.now();
    let ci = CiRow {
        name,
        sources: sources_for(&attrs, Some(&old.sources), "manual", &d),
        attributes: Value::Object(attrs),
        updated_by: p.user.username.clone(),
        updated_at: now,
        ..old.clone()
    };
    let mut tx = state.store.begin().await?;
    tx.update_ci(&ci, &m.unique_keys()).await?;
    tx.insert_ci_history(&[history_row(
        &ci,
        "update",
        via,
        &p.user.username,
        now,
        d.clone(),
    )])
    .await?;
    let audit = draft(p, "cmdb.ci.update", "cmdb_ci", Outcome::Success)
        .object(id)
        .environment(Some(ci.environment.clone()))
        .before(snapshot(&old))
        .after(json!({"diff": d}));
    tx.commit(vec![audit], now).await?;
    Ok(())
}

fn relation_history(
    r: &CiRelationRow,
    op: &str,
    via: &str,
    actor: &str,
    at: DateTime<Utc>,
    names: (&str, &str),
) -> CiHistoryRow {
    let rel = json!({"id": r.id, "kind": r.kind, "source_id": r.source_id, "target_id": r.target_id,
        "source": names.0, "target": names.1});
    CiHistoryRow {
        id: 0,
        ci_id: r.source_id,
        related_id: Some(r.target_id),
        object_type: "relation".into(),
        op: op.into(),
        via: via.into(),
        actor: actor.into(),
        at,
        diff: rel.clone(),
        snapshot: rel,
    }
}

/// Deletes an instance and its relations (each recorded in the history of both ends).
pub async fn delete_instance(state: &AppState, p: &Principal, id: i64, via: &str) -> ApiResult<()> {
    let old = load(state, id).await?;
    authorize_ci(state, p, Permission::CmdbWrite, "cmdb.ci.delete", &old).await?;
    let rels = state
        .store
        .ci_relations(&[id], RelationSide::Both, &[])
        .await?;
    let other_ids: Vec<i64> = rels
        .iter()
        .map(|r| {
            if r.source_id == id {
                r.target_id
            } else {
                r.source_id
            }
        })
        .collect();
    let names = names_of(state, &other_ids).await?;
    let now = state.clock.now();
    let actor = p.user.username.clone();
    let mut hist: Vec<CiHistoryRow> = rels
        .iter()
        .map(|r| {
            let n = |i: i64| {
                if i == id {
                    old.name.clone()
                } else {
                    names.get(&i).cloned().unwrap_or_default()
                }
            };
            relation_history(
                r,
                "delete",
                via,
                &actor,
                now,
                (&n(r.source_id), &n(r.target_id)),
            )
        })
        .collect();
    let old_attrs = as_map(&old.attributes);
    hist.push(history_row(
        &old,
        "delete",
        via,
        &actor,
        now,
        diff(Some((&old.name, &old_attrs)), None),
    ));
    let mut tx = state.store.begin().await?;
    tx.insert_ci_history(&hist).await?;
    tx.delete_ci(id).await?;
    let audit = draft(p, "cmdb.ci.delete", "cmdb_ci", Outcome::Success)
        .object(id)
        .environment(Some(old.environment.clone()))
        .before(snapshot(&old))
        .detail(format!("{} relations removed", rels.len()));
    tx.commit(vec![audit], now).await?;
    Ok(())
}

async fn names_of(state: &AppState, ids: &[i64]) -> ApiResult<HashMap<i64, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(state
        .store
        .cis(&CiQuery {
            ids: Some(ids.to_vec()),
            ..CiQuery::default()
        })
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect())
}

// ---------------------------------------------------------------- relations

/// A relation to create: `source KIND target`, by instance id.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationInput {
    /// `runs_on`, `belongs_to`, `depends_on`, `connects_to`.
    pub kind: String,
    pub source: i64,
    pub target: i64,
}

fn relation_refused(e: &ballast_cmdb::RelationError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        Problem::field(e.code(), "target", e.message_zh(), e.message_en()),
    )
}

/// Checks a relation against the kind's rules (models, environments, cardinality, cycles).
pub(crate) async fn check_relation(
    state: &AppState,
    kind: RelationKind,
    source: &CiRow,
    target: &CiRow,
) -> ApiResult<()> {
    use ballast_cmdb::RelationError as E;
    if source.id == target.id {
        return Err(relation_refused(&E::SelfRelation { kind: kind.key() }));
    }
    if source.environment != target.environment {
        return Err(relation_refused(&E::Environment {
            source_env: source.environment.clone(),
            target_env: target.environment.clone(),
        }));
    }
    check_models(kind, &source.model, &target.model).map_err(|e| relation_refused(&e))?;
    let kinds = vec![kind.key().to_string()];
    if kind.cardinality() == ballast_cmdb::Cardinality::ManyToOne {
        let existing = state
            .store
            .ci_relations(&[source.id], RelationSide::Source, &kinds)
            .await?;
        if let Some(r) = existing.first() {
            let other = names_of(state, &[r.target_id]).await?;
            return Err(relation_refused(&E::Cardinality {
                kind: kind.key(),
                source_name: source.name.clone(),
                existing: other.get(&r.target_id).cloned().unwrap_or_default(),
            }));
        }
    }
    if kind.acyclic() {
        // Would the target reach the source along this kind? Walk level by level.
        let mut frontier = vec![target.id];
        let mut seen = BTreeSet::from([target.id]);
        let mut edges: HashMap<i64, Vec<i64>> = HashMap::new();
        while !frontier.is_empty() {
            let rels = state
                .store
                .ci_relations(&frontier, RelationSide::Source, &kinds)
                .await?;
            frontier = Vec::new();
            for r in rels {
                edges.entry(r.source_id).or_default().push(r.target_id);
                if seen.insert(r.target_id) {
                    frontier.push(r.target_id);
                }
            }
        }
        if reaches(target.id, source.id, |n| {
            edges.get(&n).cloned().unwrap_or_default()
        }) {
            return Err(relation_refused(&E::Cycle {
                kind: kind.key(),
                source_name: source.name.clone(),
                target_name: target.name.clone(),
            }));
        }
    }
    Ok(())
}

pub fn parse_kind(kind: &str) -> ApiResult<RelationKind> {
    RelationKind::parse(kind).ok_or_else(|| {
        bad(
            "cmdb.relation_kind_unknown",
            "kind",
            format!("关系类型 {kind:?} 无效，应为 runs_on、belongs_to、depends_on 或 connects_to"),
            format!("relation kind {kind:?} is invalid: use runs_on, belongs_to, depends_on or connects_to"),
        )
    })
}

/// A relation changes both of its ends (a `belongs_to` moves its source into the target's
/// business): the caller must be able to change each — checked once when one environment grant
/// covers both.
async fn authorize_ends(
    state: &AppState,
    p: &Principal,
    op: &str,
    source: &CiRow,
    target: &CiRow,
) -> ApiResult<()> {
    authorize_ci(state, p, Permission::CmdbWrite, op, source).await?;
    let whole = reach(state, p, Permission::CmdbWrite).await?.environments;
    if whole.contains(&source.environment) && whole.contains(&target.environment) {
        return Ok(());
    }
    authorize_ci(state, p, Permission::CmdbWrite, op, target).await
}

pub async fn create_relation(
    state: &AppState,
    p: &Principal,
    input: &RelationInput,
    via: &str,
) -> ApiResult<i64> {
    let kind = parse_kind(&input.kind)?;
    let source = load(state, input.source).await?;
    let target = load(state, input.target).await?;
    authorize_ends(state, p, "cmdb.relation.create", &source, &target).await?;
    check_relation(state, kind, &source, &target).await?;
    let now = state.clock.now();
    let mut r = CiRelationRow {
        id: 0,
        kind: kind.key().into(),
        source_id: source.id,
        target_id: target.id,
        created_by: p.user.username.clone(),
        created_at: now,
    };
    let mut tx = state.store.begin().await?;
    r.id = tx.insert_ci_relation(&r).await.map_err(|e| match e {
        ballast_store::StoreError::Conflict(_) => conflict(
            "cmdb.relation_exists",
            "target",
            format!(
                "{} {} {} 的关系已存在",
                source.name,
                kind.name_zh(),
                target.name
            ),
            format!(
                "{} {} {} exists already",
                source.name,
                kind.key(),
                target.name
            ),
        ),
        other => other.into(),
    })?;
    tx.insert_ci_history(&[relation_history(
        &r,
        "create",
        via,
        &p.user.username,
        now,
        (&source.name, &target.name),
    )])
    .await?;
    let audit = draft(p, "cmdb.relation.create", "cmdb_relation", Outcome::Success)
        .object(r.id)
        .environment(Some(source.environment.clone()))
        .after(
            json!({"kind": r.kind, "source": source.name, "target": target.name,
            "source_id": source.id, "target_id": target.id}),
        );
    tx.commit(vec![audit], now).await?;
    Ok(r.id)
}

pub async fn delete_relation(state: &AppState, p: &Principal, id: i64, via: &str) -> ApiResult<()> {
    let r = state
        .store
        .ci_relation(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("CMDB relation {id}")))?;
    let source = load(state, r.source_id).await?;
    let target = load(state, r.target_id).await?;
    authorize_ends(state, p, "cmdb.relation.delete", &source, &target).await?;
    let names = names_of(state, &[r.source_id, r.target_id]).await?;
    let n = |i: i64| names.get(&i).cloned().unwrap_or_default();
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.delete_ci_relation(id).await?;
    tx.insert_ci_history(&[relation_history(
        &r,
        "delete",
        via,
        &p.user.username,
        now,
        (&n(r.source_id), &n(r.target_id)),
    )])
    .await?;
    let audit = draft(p, "cmdb.relation.delete", "cmdb_relation", Outcome::Success)
        .object(id)
        .environment(Some(source.environment.clone()))
        .before(json!({"kind": r.kind, "source": n(r.source_id), "target": n(r.target_id)}));
    tx.commit(vec![audit], now).await?;
    Ok(())
}

// ---------------------------------------------------------------- topology and search

/// The `belongs_to` ancestors of each instance (nearest first), up to [`MAX_TOPOLOGY_DEPTH`].
pub async fn ancestors(state: &AppState, ids: &[i64]) -> ApiResult<HashMap<i64, Vec<Ancestor>>> {
    let kinds = vec![RelationKind::BelongsTo.key().to_string()];
    let mut parents: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut nodes: HashMap<i64, CiRow> = HashMap::new();
    let mut frontier: Vec<i64> = ids.to_vec();
    let mut seen: BTreeSet<i64> = ids.iter().copied().collect();
    for _ in 0..MAX_TOPOLOGY_DEPTH {
        if frontier.is_empty() {
            break;
        }
        let rels = state
            .store
            .ci_relations(&frontier, RelationSide::Source, &kinds)
            .await?;
        let mut next = Vec::new();
        let mut to_load = BTreeSet::new();
        for r in &rels {
            parents.entry(r.source_id).or_default().push(r.target_id);
            if !nodes.contains_key(&r.target_id) {
                to_load.insert(r.target_id);
            }
            if seen.insert(r.target_id) {
                next.push(r.target_id);
            }
        }
        if !to_load.is_empty() {
            for c in state
                .store
                .cis(&CiQuery {
                    ids: Some(to_load.into_iter().collect()),
                    ..CiQuery::default()
                })
                .await?
            {
                nodes.insert(c.id, c);
            }
        }
        frontier = next;
    }
    let mut out = HashMap::new();
    for id in ids {
        let mut list = Vec::new();
        let mut visited = BTreeSet::new();
        let mut queue: std::collections::VecDeque<i64> =
            parents.get(id).cloned().unwrap_or_default().into();
        while let Some(a) = queue.pop_front() {
            if !visited.insert(a) {
                continue;
            }
            if let Some(c) = nodes.get(&a) {
                list.push(Ancestor {
                    model: c.model.clone(),
                    name: c.name.clone(),
                    attributes: as_map(&c.attributes),
                });
            }
            queue.extend(parents.get(&a).cloned().unwrap_or_default());
        }
        out.insert(*id, list);
    }
    Ok(out)
}

/// Instances that belong (directly or through the topology) to any of `roots`.
async fn descendants(state: &AppState, roots: &[i64]) -> ApiResult<BTreeSet<i64>> {
    let kinds = vec![RelationKind::BelongsTo.key().to_string()];
    let mut out = BTreeSet::new();
    let mut frontier = roots.to_vec();
    for _ in 0..MAX_TOPOLOGY_DEPTH {
        if frontier.is_empty() {
            break;
        }
        let rels = state
            .store
            .ci_relations(&frontier, RelationSide::Target, &kinds)
            .await?;
        frontier = rels
            .into_iter()
            .map(|r| r.source_id)
            .filter(|i| out.insert(*i))
            .collect();
    }
    Ok(out)
}

/// A search: instances of `model` (or any) in `environments` matching `query`, plus in
/// `business_environments` those within `businesses` (see [`Reach`]).
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub model: Option<String>,
    pub environments: Vec<String>,
    pub business_environments: Vec<String>,
    pub businesses: Vec<String>,
    pub query: Option<Query>,
    /// 0 = [`MAX_LIMIT`].
    pub limit: u32,
}

/// Runs a search (no permission check: the caller chose readable environments).
pub async fn search(state: &AppState, s: &Search) -> ApiResult<Vec<CiRow>> {
    let all_models = models(state).await?;
    let limit = if s.limit == 0 {
        MAX_LIMIT
    } else {
        s.limit.min(MAX_LIMIT)
    } as usize;
    let mut model = s.model.clone();
    let mut envs: BTreeSet<String> = s.environments.iter().cloned().collect();
    let mut benvs: BTreeSet<String> = if s.businesses.is_empty() {
        BTreeSet::new()
    } else {
        s.business_environments
            .iter()
            .filter(|e| !envs.contains(*e))
            .cloned()
            .collect()
    };
    let mut names: Option<Vec<String>> = None;
    let mut ids: Option<BTreeSet<i64>> = None;
    let narrow = |found: BTreeSet<i64>, ids: &mut Option<BTreeSet<i64>>| {
        *ids = Some(match ids.take() {
            Some(prev) => prev.intersection(&found).copied().collect(),
            None => found,
        });
    };
    if let Some(q) = &s.query {
        for (field, values) in q.prefilter().conditions {
            let [key] = field.as_slice() else { continue };
            match key.as_str() {
                "model" => {
                    if let Some(m) = &model
                        && !values.contains(m)
                    {
                        return Ok(Vec::new());
                    }
                    if values.len() == 1 {
                        model = values.first().cloned();
                    }
                }
                "env" | "environment" => {
                    envs.retain(|e| values.contains(e));
                    benvs.retain(|e| values.contains(e));
                }
                "name" => {
                    names = Some(match names.take() {
                        Some(prev) => prev.into_iter().filter(|n| values.contains(n)).collect(),
                        None => values.clone(),
                    })
                }
                key => {
                    let own_attr = match &model {
                        Some(m) => all_models
                            .get(m)
                            .is_some_and(|(_, md)| md.attribute(key).is_some()),
                        None => all_models
                            .values()
                            .any(|(_, md)| md.attribute(key).is_some()),
                    };
                    if own_attr {
                        let found = state
                            .store
                            .ci_ids_by_value(model.as_deref(), key, &values)
                            .await?;
                        if all_models.contains_key(key) {
                            // Also a model: an attribute or an ancestor may match; don't narrow.
                            continue;
                        }
                        narrow(found.into_iter().collect(), &mut ids);
                    } else if all_models.contains_key(key) {
                        let roots: Vec<i64> = state
                            .store
                            .cis(&CiQuery {
                                model: Some(key.to_string()),
                                names: Some(values.clone()),
                                environments: Some(envs.union(&benvs).cloned().collect()),
                                ..CiQuery::default()
                            })
                            .await?
                            .into_iter()
                            .map(|c| c.id)
                            .collect();
                        narrow(descendants(state, &roots).await?, &mut ids);
                    } else {
                        // Neither an attribute nor a model: nothing can match `=`.
                        return Ok(Vec::new());
                    }
                }
            }
        }
    }
    if (envs.is_empty() && benvs.is_empty()) || names.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    // Business-system grants: only the members of those businesses in `benvs`.
    let members = if benvs.is_empty() {
        BTreeSet::new()
    } else {
        let benv_list: Vec<String> = benvs.iter().cloned().collect();
        business_members(state, &s.businesses, &benv_list).await?
    };
    if envs.is_empty() {
        narrow(members.clone(), &mut ids);
    }
    let scan_envs: Vec<String> = envs.union(&benvs).cloned().collect();
    let mut after = None;
    let id_list: Option<Vec<i64>> = ids.map(|s| s.into_iter().collect());
    if id_list.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    // Topology ancestors are looked up only when the query may read them: a field naming a
    // model (`module = "行情网关"`) or another model's attribute (`module.owner`).
    let needs_ancestors = s.query.as_ref().is_some_and(|q| {
        q.fields().iter().any(|f| match f.as_slice() {
            [one] => all_models.contains_key(one),
            [m, _] => model.as_deref() != Some(m.as_str()),
            _ => true,
        })
    });
    // Batches start at the page size and double: a page is usually filled by the first one,
    // and a selective query still scans in large steps.
    let mut batch_size = (limit as u32).clamp(100, SCAN_BATCH);
    // Candidates are read lean (what the query evaluates), the matches in full.
    let mut matched: Vec<i64> = Vec::new();
    loop {
        let batch = state
            .store
            .ci_heads(&CiQuery {
                model: model.clone(),
                environments: Some(scan_envs.clone()),
                ids: id_list.clone(),
                names: names.clone(),
                after_id: after,
                limit: batch_size,
            })
            .await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        let full = batch.len() as u32 == batch_size;
        batch_size = (batch_size * 2).min(SCAN_BATCH);
        let batch: Vec<CiHead> = batch
            .into_iter()
            .filter(|c| envs.contains(&c.environment) || members.contains(&c.id))
            .collect();
        let anc = if needs_ancestors {
            let batch_ids: Vec<i64> = batch.iter().map(|c| c.id).collect();
            ancestors(state, &batch_ids).await?
        } else {
            HashMap::new()
        };
        let empty = Vec::new();
        for c in &batch {
            let hit = s.query.as_ref().is_none_or(|q| {
                let attrs = as_map(&c.attributes);
                q.matches(&Subject {
                    model: &c.model,
                    name: &c.name,
                    environment: &c.environment,
                    attributes: &attrs,
                    ancestors: anc.get(&c.id).unwrap_or(&empty),
                })
            });
            if hit {
                matched.push(c.id);
            }
        }
        if matched.len() >= limit || !full {
            break;
        }
    }
    matched.truncate(limit);
    if matched.is_empty() {
        return Ok(Vec::new());
    }
    Ok(state
        .store
        .cis(&CiQuery {
            ids: Some(matched),
            ..CiQuery::default()
        })
        .await?)
}

/// One node of the business topology tree.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopologyNode {
    pub id: i64,
    pub model: String,
    pub name: String,
    /// Nodes of the same shape (described as objects: the schema is not recursive).
    #[schema(value_type = Vec<Object>)]
    pub children: Vec<TopologyNode>,
}

/// The business topology of an environment: business → subsystem → module → host, plus the
/// instances of those models that belong to nothing above them (`unassigned`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Topology {
    pub environment: String,
    pub businesses: Vec<TopologyNode>,
    pub unassigned: Vec<TopologyNode>,
}

/// The topology of `env` as far as `visible` opens it.
pub async fn topology(state: &AppState, env: &str, visible: &Visible) -> ApiResult<Topology> {
    let mut nodes: BTreeMap<i64, CiRow> = BTreeMap::new();
    for m in TOPOLOGY {
        for c in state
            .store
            .cis(&CiQuery {
                model: Some(m.to_string()),
                environments: Some(vec![env.to_string()]),
                ..CiQuery::default()
            })
            .await?
        {
            if visible.sees(&c.environment, c.id) {
                nodes.insert(c.id, c);
            }
        }
    }
    let ids: Vec<i64> = nodes.keys().copied().collect();
    let rels = state
        .store
        .ci_relations(
            &ids,
            RelationSide::Source,
            &[RelationKind::BelongsTo.key().to_string()],
        )
        .await?;
    let mut children: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut has_parent = BTreeSet::new();
    for r in rels {
        if nodes.contains_key(&r.target_id) {
            children.entry(r.target_id).or_default().push(r.source_id);
            has_parent.insert(r.source_id);
        }
    }
    fn build(
        id: i64,
        nodes: &BTreeMap<i64, CiRow>,
        children: &BTreeMap<i64, Vec<i64>>,
        depth: u32,
    ) -> Option<TopologyNode> {
        let c = nodes.get(&id)?;
        let mut kids: Vec<TopologyNode> = if depth < MAX_TOPOLOGY_DEPTH {
            children
                .get(&id)
                .map(|ks| {
                    ks.iter()
                        .filter_map(|k| build(*k, nodes, children, depth + 1))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        kids.sort_by(|a, b| a.name.cmp(&b.name));
        Some(TopologyNode {
            id,
            model: c.model.clone(),
            name: c.name.clone(),
            children: kids,
        })
    }
    let mut businesses = Vec::new();
    let mut unassigned = Vec::new();
    for (id, c) in &nodes {
        if has_parent.contains(id) {
            continue;
        }
        if let Some(n) = build(*id, &nodes, &children, 0) {
            if c.model == "business" {
                businesses.push(n);
            } else {
                unassigned.push(n);
            }
        }
    }
    businesses.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Topology {
        environment: env.to_string(),
        businesses,
        unassigned,
    })
}

/// An instance reached by an impact or dependency walk.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reached {
    pub id: i64,
    pub model: String,
    pub name: String,
    pub environment: String,
    /// Hops from the start.
    pub depth: u32,
    /// The relation kind of the last hop.
    pub via: String,
}

/// Everything impacted by (`impact = true`) or needed by the instance, up to `depth` hops.
/// Impact travels to instances that run on or depend on it and to the topology nodes it belongs
/// to; dependencies the other way. Only instances `visible` opens are listed (the walk itself
/// goes through the others).
pub async fn walk(
    state: &AppState,
    start: i64,
    depth: u32,
    impact: bool,
    visible: &Visible,
) -> ApiResult<Vec<Reached>> {
    let depth = depth.clamp(1, MAX_DEPTH);
    let mut seen = BTreeSet::from([start]);
    let mut frontier = vec![start];
    let mut found: Vec<(i64, u32, String)> = Vec::new();
    for level in 1..=depth {
        if frontier.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for kind in RelationKind::ALL {
            let Some(dir) = kind.impact() else { continue };
            let follow_incoming = (dir == Direction::Incoming) == impact;
            let side = if follow_incoming {
                RelationSide::Target
            } else {
                RelationSide::Source
            };
            for r in state
                .store
                .ci_relations(&frontier, side, &[kind.key().to_string()])
                .await?
            {
                let other = if follow_incoming {
                    r.source_id
                } else {
                    r.target_id
                };
                if seen.insert(other) {
                    next.push(other);
                    found.push((other, level, r.kind.clone()));
                }
            }
        }
        frontier = next;
    }
    let ids: Vec<i64> = found.iter().map(|f| f.0).collect();
    let rows: HashMap<i64, CiRow> = if ids.is_empty() {
        HashMap::new()
    } else {
        state
            .store
            .cis(&CiQuery {
                ids: Some(ids),
                ..CiQuery::default()
            })
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect()
    };
    Ok(found
        .into_iter()
        .filter_map(|(id, depth, via)| {
            rows.get(&id)
                .filter(|c| visible.sees(&c.environment, c.id))
                .map(|c| Reached {
                    id,
                    model: c.model.clone(),
                    name: c.name.clone(),
                    environment: c.environment.clone(),
                    depth,
                    via,
                })
        })
        .collect())
}

// ---------------------------------------------------------------- history

/// An instance as it was at a time: its name and attributes then (`null` when it did not exist)
/// and the relations it had.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AsOf {
    pub id: i64,
    pub at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub instance: Value,
    #[schema(value_type = Vec<Object>)]
    pub relations: Vec<Value>,
}

pub async fn as_of(state: &AppState, id: i64, at: DateTime<Utc>) -> ApiResult<AsOf> {
    let rows = state.store.ci_history(id, Some(at)).await?;
    let mut instance = Value::Null;
    let mut rels: BTreeMap<(String, i64, i64), Value> = BTreeMap::new();
    for h in rows {
        match h.object_type.as_str() {
            "instance" if h.ci_id == id => instance = h.snapshot,
            "relation" => {
                let key = (
                    h.diff["kind"].as_str().unwrap_or_default().to_string(),
                    h.ci_id,
                    h.related_id.unwrap_or_default(),
                );
                if h.op == "delete" {
                    rels.remove(&key);
                } else {
                    rels.insert(key, h.snapshot);
                }
            }
            _ => {}
        }
    }
    Ok(AsOf {
        id,
        at,
        instance,
        relations: rels.into_values().collect(),
    })
}

// ---------------------------------------------------------------- data quality

/// Data quality of one model in one environment (standard 表49 数据运营与校验).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Quality {
    pub model: String,
    pub environment: String,
    pub instances: u64,
    /// Share of (instance, attribute) pairs filled, over the model's attributes (0–1).
    pub completeness: f64,
    /// Instances missing a required attribute (possible after an approved model change).
    pub missing_required: u64,
    /// Instances the model's current definition rejects (a required attribute missing, a value
    /// of the wrong type, outside its enum or not matching its pattern: possible after an
    /// approved model change).
    pub invalid: u64,
    /// Hosts: instances discovery reported on within the freshness window, and those not.
    pub discovered_fresh: u64,
    pub stale: u64,
    /// Open conflicts between discovered and recorded values.
    pub open_conflicts: u64,
    /// 1 − open conflicts / discovery-owned values (1 when there are none).
    pub consistency: f64,
}

/// Quality per model and environment, for the environments given. A host not reported on by
/// discovery for `stale_days` is stale.
pub async fn quality(
    state: &AppState,
    environments: &[String],
    stale_days: i64,
) -> ApiResult<Vec<Quality>> {
    let all = models(state).await?;
    let now = state.clock.now();
    let conflicts = state.store.ci_conflicts(Some("open"), None).await?;
    let mut conflicts_by_ci: HashMap<i64, u64> = HashMap::new();
    for c in &conflicts {
        *conflicts_by_ci.entry(c.ci_id).or_default() += 1;
    }
    let mut out = Vec::new();
    for (key, (_, m)) in &all {
        for env in environments {
            let mut q = Quality {
                model: key.clone(),
                environment: env.clone(),
                instances: 0,
                completeness: 1.0,
                missing_required: 0,
                invalid: 0,
                discovered_fresh: 0,
                stale: 0,
                open_conflicts: 0,
                consistency: 1.0,
            };
            let (mut filled, mut slots, mut discovered_values) = (0u64, 0u64, 0u64);
            let mut after = None;
            loop {
                let batch = state
                    .store
                    .cis(&CiQuery {
                        model: Some(key.clone()),
                        environments: Some(vec![env.clone()]),
                        after_id: after,
                        limit: SCAN_BATCH,
                        ..CiQuery::default()
                    })
                    .await?;
                let Some(last) = batch.last() else { break };
                after = Some(last.id);
                for c in &batch {
                    q.instances += 1;
                    let attrs = as_map(&c.attributes);
                    let mut missing = false;
                    for a in &m.attributes {
                        slots += 1;
                        let set = attrs
                            .get(&a.key)
                            .is_some_and(|v| !ballast_cmdb::validate::is_blank(v));
                        if set {
                            filled += 1;
                            if a.discovered {
                                discovered_values += 1;
                            }
                        } else if a.required {
                            missing = true;
                        }
                    }
                    if missing {
                        q.missing_required += 1;
                    }
                    if missing || validate_attributes(m, &attrs).is_err() {
                        q.invalid += 1;
                    }
                    if key == "host" {
                        match c.discovered_at {
                            Some(t) if now - t <= chrono::Duration::days(stale_days) => {
                                q.discovered_fresh += 1
                            }
                            _ => q.stale += 1,
                        }
                    }
                    q.open_conflicts += conflicts_by_ci.get(&c.id).copied().unwrap_or(0);
                }
            }
            if q.instances == 0 {
                continue;
            }
            if slots > 0 {
                q.completeness = filled as f64 / slots as f64;
            }
            if discovered_values > 0 {
                q.consistency = 1.0 - (q.open_conflicts as f64 / discovered_values as f64).min(1.0);
            }
            out.push(q);
        }
    }
    Ok(out)
}
