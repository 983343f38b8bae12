//! `/api/v1/cmdb/…`: models (list, read, save, check a change, export, import), instances
//! (search with the query language, create, read, change, delete, history, as-of view, impact and
//! dependencies), relations, topology, import/export of instances, data quality and discovery
//! conflicts. Reads need `cmdb.read` in the environments read; changes go through
//! `super::service` (guard pipeline, history, audit).

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, Query as Params, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ballast_cmdb::Model;
use ballast_cmdb::exchange::{ModelEntry, ModelFile};
use ballast_core::Problem;
use ballast_core::authz::Permission;
use ballast_store::{CiHistoryRow, CiRelationRow, CiRow, RelationSide};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::discovery::{self, ConflictView, DiscoveryReport};
use super::import::{self, ImportReport};
use super::service::{
    self, AsOf, InstanceInput, InstanceUpdate, ModelChangeReport, Quality, Reached, RelationInput,
    Search, Topology,
};
use crate::api::{Id, JsonBody};
use crate::auth::ApiCaller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// The id of something created.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: i64,
}

/// A model with its current version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelOut {
    pub version: i64,
    pub builtin: bool,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub model: Model,
}

#[utoipa::path(get, path = "/api/v1/cmdb/models", tag = "cmdb",
    responses((status = 200, body = [ModelOut]), (status = 403, body = ErrorBody)))]
pub async fn list_models(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<ModelOut>>> {
    service::authorize_read_any(&state, &caller.0, "cmdb.model.list").await?;
    Ok(Json(
        service::models(&state)
            .await?
            .into_values()
            .map(|(row, model)| ModelOut {
                version: row.version,
                builtin: row.builtin,
                updated_by: row.updated_by,
                updated_at: row.updated_at,
                model,
            })
            .collect(),
    ))
}

/// A model with every version it has had.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub current: ModelOut,
    #[schema(value_type = Vec<Object>)]
    pub versions: Vec<ballast_store::CmdbModelVersionRow>,
}

#[utoipa::path(get, path = "/api/v1/cmdb/models/{key}", tag = "cmdb", params(("key" = String, Path)),
    responses((status = 200, body = ModelDetail), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_model(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(key): Path<String>,
) -> ApiResult<Json<ModelDetail>> {
    service::authorize_read_any(&state, &caller.0, "cmdb.model.read").await?;
    let (row, model) = service::models(&state)
        .await?
        .remove(&key)
        .ok_or_else(|| ApiError::not_found(&format!("CMDB model {key}")))?;
    let versions = state.store.cmdb_model_versions(&key).await?;
    Ok(Json(ModelDetail {
        current: ModelOut {
            version: row.version,
            builtin: row.builtin,
            updated_by: row.updated_by,
            updated_at: row.updated_at,
            model,
        },
        versions,
    }))
}

fn key_mismatch(path: &str, body: &str) -> ApiError {
    ApiError::bad_request(Problem::field(
        "cmdb.model_key_mismatch",
        "key",
        format!("路径中的模型 {path} 与内容中的 {body} 不一致"),
        format!("the path names model {path} but the body defines {body}"),
    ))
}

/// Saves a model. A change existing instances satisfy is applied (200). A change that would
/// invalidate instances is not applied: an approval request is filed for a second person
/// (`/approvals`, `POST /api/v1/approvals/{id}/decide`) and the answer is 202 with its id in
/// `approval` and the report (changes, invalid count, examples). 409 `approval.already_pending`
/// when the model already has a pending request.
#[utoipa::path(put, path = "/api/v1/cmdb/models/{key}", tag = "cmdb", params(("key" = String, Path)),
    request_body(content = Object, description = "a ballast_cmdb::Model"),
    responses((status = 200, body = ModelChangeReport, description = "applied (or nothing to change)"),
        (status = 202, body = ModelChangeReport, description = "would invalidate instances: not applied, approval request `approval` filed"),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`approval.already_pending`, or the model changed meanwhile"),
        (status = 422, body = ErrorBody)))]
pub async fn put_model(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(key): Path<String>,
    JsonBody(model): JsonBody<Model>,
) -> ApiResult<(StatusCode, Json<ModelChangeReport>)> {
    if model.key != key {
        return Err(key_mismatch(&key, &model.key));
    }
    let report = service::save_model(&state, &caller.0, &model).await?;
    let status = if report.approval.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)))
}

#[utoipa::path(post, path = "/api/v1/cmdb/models/{key}/check", tag = "cmdb", params(("key" = String, Path)),
    request_body(content = Object, description = "a ballast_cmdb::Model"),
    responses((status = 200, body = ModelChangeReport), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn check_model(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(key): Path<String>,
    JsonBody(model): JsonBody<Model>,
) -> ApiResult<Json<ModelChangeReport>> {
    service::authorize_read_any(&state, &caller.0, "cmdb.model.check").await?;
    if model.key != key {
        return Err(key_mismatch(&key, &model.key));
    }
    Ok(Json(service::plan_model_change(&state, &model).await?))
}

#[utoipa::path(get, path = "/api/v1/cmdb/models-export", tag = "cmdb",
    responses((status = 200, body = Object, description = "the model exchange file"), (status = 403, body = ErrorBody)))]
pub async fn export_models(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<ModelFile>> {
    service::authorize_read_any(&state, &caller.0, "cmdb.model.export").await?;
    let models = service::models(&state).await?;
    Ok(Json(ModelFile::new(
        models
            .into_values()
            .map(|(row, model)| ModelEntry {
                version: u32::try_from(row.version).unwrap_or(u32::MAX),
                model,
            })
            .collect(),
    )))
}

/// What importing a model file did (or would do).
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelImportOut {
    pub dry_run: bool,
    pub models: Vec<ModelChangeReport>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DryRun {
    /// Only report what would change.
    #[serde(default)]
    pub dry_run: bool,
}

/// Imports a model exchange file. Each model is saved as by `PUT /api/v1/cmdb/models/{key}`:
/// one that would invalidate instances is not applied and its report names the approval request
/// filed for it (`approval`).
#[utoipa::path(post, path = "/api/v1/cmdb/models-import", tag = "cmdb", params(DryRun),
    request_body(content = Object, description = "the model exchange file"),
    responses((status = 200, body = ModelImportOut), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import_models(
    State(state): State<AppState>,
    caller: ApiCaller,
    Params(q): Params<DryRun>,
    body: String,
) -> ApiResult<Json<ModelImportOut>> {
    service::authorize_read_any(&state, &caller.0, "cmdb.model.import").await?;
    let existing: BTreeSet<String> = service::models(&state).await?.into_keys().collect();
    let file = ModelFile::parse(&body, &existing).map_err(|e| service::invalid(&e))?;
    let mut out = Vec::new();
    for e in &file.models {
        let report = if q.dry_run {
            service::plan_model_change(&state, &e.model).await?
        } else {
            service::save_model(&state, &caller.0, &e.model).await?
        };
        out.push(report);
    }
    Ok(Json(ModelImportOut {
        dry_run: q.dry_run,
        models: out,
    }))
}

// ---------------------------------------------------------------- instances

#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchParams {
    /// A query such as `business = "集中交易" and os ~ "CentOS"` (docs/CMDB.md).
    pub q: Option<String>,
    pub model: Option<String>,
    /// Default: every environment the caller may read.
    pub environment: Option<String>,
    /// Default 1000, at most 10,000.
    pub limit: Option<u32>,
}

/// Builds a search over what the caller may read.
pub(crate) async fn search_for(
    state: &AppState,
    caller: &ApiCaller,
    q: &SearchParams,
) -> ApiResult<Search> {
    let query = match q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => Some(service::parse_query(text)?),
        None => None,
    };
    let reach = match &q.environment {
        Some(e) => service::authorize_read_in(state, &caller.0, "cmdb.ci.search", e).await?,
        None => {
            service::authorize_read_any(state, &caller.0, "cmdb.ci.search").await?;
            service::reach(state, &caller.0, Permission::CmdbRead).await?
        }
    };
    if let Some(m) = &q.model {
        service::model(state, m).await?;
    }
    Ok(Search {
        model: q.model.clone(),
        environments: reach.environments,
        business_environments: reach.business_environments,
        businesses: reach.businesses,
        query,
        limit: q.limit.unwrap_or(1000),
    })
}

#[utoipa::path(get, path = "/api/v1/cmdb/instances", tag = "cmdb", params(SearchParams),
    responses((status = 200, body = [Object]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_instances(
    State(state): State<AppState>,
    caller: ApiCaller,
    Params(q): Params<SearchParams>,
) -> ApiResult<Json<Vec<CiRow>>> {
    let s = search_for(&state, &caller, &q).await?;
    Ok(Json(service::search(&state, &s).await?))
}

#[utoipa::path(post, path = "/api/v1/cmdb/instances", tag = "cmdb", request_body = InstanceInput,
    responses((status = 201, body = Created), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_instance(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(input): JsonBody<InstanceInput>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let via = service::via_of(&caller.0);
    let id = service::create_instance(&state, &caller.0, &input, via).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// An instance with its relations (and the other ends' names).
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceOut {
    #[schema(value_type = Object)]
    pub instance: CiRow,
    pub relations: Vec<RelationOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RelationOut {
    pub id: i64,
    pub kind: String,
    pub source_id: i64,
    pub source: String,
    pub target_id: i64,
    pub target: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) async fn relations_out(
    state: &AppState,
    id: i64,
) -> ApiResult<(Vec<CiRelationRow>, Vec<RelationOut>)> {
    let rels = state
        .store
        .ci_relations(&[id], RelationSide::Both, &[])
        .await?;
    let ids: Vec<i64> = rels
        .iter()
        .flat_map(|r| [r.source_id, r.target_id])
        .collect();
    let names: std::collections::HashMap<i64, String> = state
        .store
        .cis(&ballast_store::CiQuery {
            ids: Some(ids),
            ..Default::default()
        })
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let out = rels
        .iter()
        .map(|r| RelationOut {
            id: r.id,
            kind: r.kind.clone(),
            source_id: r.source_id,
            source: names.get(&r.source_id).cloned().unwrap_or_default(),
            target_id: r.target_id,
            target: names.get(&r.target_id).cloned().unwrap_or_default(),
            created_by: r.created_by.clone(),
            created_at: r.created_at,
        })
        .collect();
    Ok((rels, out))
}

async fn load_readable(
    state: &AppState,
    caller: &ApiCaller,
    id: i64,
    op: &str,
) -> ApiResult<CiRow> {
    let ci = service::load(state, id).await?;
    service::authorize_ci(state, &caller.0, Permission::CmdbRead, op, &ci).await?;
    Ok(ci)
}

#[utoipa::path(get, path = "/api/v1/cmdb/instances/{id}", tag = "cmdb", params(("id" = i64, Path)),
    responses((status = 200, body = InstanceOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_instance(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<Json<InstanceOut>> {
    let instance = load_readable(&state, &caller, id, "cmdb.ci.read").await?;
    let (_, relations) = relations_out(&state, id).await?;
    Ok(Json(InstanceOut {
        instance,
        relations,
    }))
}

#[utoipa::path(put, path = "/api/v1/cmdb/instances/{id}", tag = "cmdb", params(("id" = i64, Path)),
    request_body = InstanceUpdate,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_instance(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(input): JsonBody<InstanceUpdate>,
) -> ApiResult<StatusCode> {
    let via = service::via_of(&caller.0);
    service::update_instance(&state, &caller.0, id, &input, via).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/cmdb/instances/{id}", tag = "cmdb", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_instance(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    let via = service::via_of(&caller.0);
    service::delete_instance(&state, &caller.0, id, via).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/cmdb/instances/{id}/history", tag = "cmdb", params(("id" = i64, Path)),
    responses((status = 200, body = [Object]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn instance_history(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<Json<Vec<CiHistoryRow>>> {
    history_guard(&state, &caller, id).await?;
    Ok(Json(state.store.ci_history(id, None).await?))
}

/// History outlives a deleted instance: its environment is read from the history itself (a
/// deleted instance belongs to no business any more: its history needs an environment grant).
async fn history_guard(state: &AppState, caller: &ApiCaller, id: i64) -> ApiResult<()> {
    let env = match state.store.ci(id).await? {
        Some(c) => {
            return service::authorize_ci(
                state,
                &caller.0,
                Permission::CmdbRead,
                "cmdb.ci.history",
                &c,
            )
            .await;
        }
        None => state
            .store
            .ci_history(id, None)
            .await?
            .into_iter()
            .filter(|h| h.ci_id == id && h.object_type == "instance")
            .find_map(|h| {
                h.diff
                    .get("environment")
                    .or_else(|| h.snapshot.get("environment"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .ok_or_else(|| ApiError::not_found(&format!("CMDB instance {id}")))?,
    };
    service::authorize_read(state, &caller.0, "cmdb.ci.history", &env).await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AsOfParams {
    /// RFC 3339.
    pub at: DateTime<Utc>,
}

#[utoipa::path(get, path = "/api/v1/cmdb/instances/{id}/as-of", tag = "cmdb", params(("id" = i64, Path), AsOfParams),
    responses((status = 200, body = AsOf), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn instance_as_of(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    Params(q): Params<AsOfParams>,
) -> ApiResult<Json<AsOf>> {
    history_guard(&state, &caller, id).await?;
    Ok(Json(service::as_of(&state, id, q.at).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DepthParams {
    /// Hops to follow: default 5, at most 10.
    pub depth: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/cmdb/instances/{id}/impact", tag = "cmdb", params(("id" = i64, Path), DepthParams),
    responses((status = 200, body = [Reached]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn instance_impact(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    Params(q): Params<DepthParams>,
) -> ApiResult<Json<Vec<Reached>>> {
    load_readable(&state, &caller, id, "cmdb.ci.impact").await?;
    let depth = q.depth.unwrap_or(service::DEFAULT_DEPTH);
    let visible = service::Visible::of(
        &state,
        service::reach(&state, &caller.0, Permission::CmdbRead).await?,
    )
    .await?;
    Ok(Json(
        service::walk(&state, id, depth, true, &visible).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/cmdb/instances/{id}/dependencies", tag = "cmdb", params(("id" = i64, Path), DepthParams),
    responses((status = 200, body = [Reached]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn instance_dependencies(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    Params(q): Params<DepthParams>,
) -> ApiResult<Json<Vec<Reached>>> {
    load_readable(&state, &caller, id, "cmdb.ci.dependencies").await?;
    let depth = q.depth.unwrap_or(service::DEFAULT_DEPTH);
    let visible = service::Visible::of(
        &state,
        service::reach(&state, &caller.0, Permission::CmdbRead).await?,
    )
    .await?;
    Ok(Json(
        service::walk(&state, id, depth, false, &visible).await?,
    ))
}

// ---------------------------------------------------------------- relations

#[utoipa::path(post, path = "/api/v1/cmdb/relations", tag = "cmdb", request_body = RelationInput,
    responses((status = 201, body = Created), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_relation(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(input): JsonBody<RelationInput>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let via = service::via_of(&caller.0);
    let id = service::create_relation(&state, &caller.0, &input, via).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[utoipa::path(delete, path = "/api/v1/cmdb/relations/{id}", tag = "cmdb", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_relation(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    let via = service::via_of(&caller.0);
    service::delete_relation(&state, &caller.0, id, via).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- topology, quality

#[derive(Debug, Deserialize, IntoParams)]
pub struct EnvParams {
    pub environment: String,
}

#[utoipa::path(get, path = "/api/v1/cmdb/topology", tag = "cmdb", params(EnvParams),
    responses((status = 200, body = Topology), (status = 403, body = ErrorBody)))]
pub async fn topology(
    State(state): State<AppState>,
    caller: ApiCaller,
    Params(q): Params<EnvParams>,
) -> ApiResult<Json<Topology>> {
    let reach =
        service::authorize_read_in(&state, &caller.0, "cmdb.topology", &q.environment).await?;
    let visible = service::Visible::of(&state, reach).await?;
    Ok(Json(
        service::topology(&state, &q.environment, &visible).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct QualityParams {
    /// Hosts not reported on by discovery for this many days are stale (default 7).
    pub stale_days: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/cmdb/quality", tag = "cmdb", params(QualityParams),
    responses((status = 200, body = [Quality]), (status = 403, body = ErrorBody)))]
pub async fn quality(
    State(state): State<AppState>,
    caller: ApiCaller,
    Params(q): Params<QualityParams>,
) -> ApiResult<Json<Vec<Quality>>> {
    service::authorize_read_any(&state, &caller.0, "cmdb.quality").await?;
    let envs = service::environments_for(&state, &caller.0, Permission::CmdbRead).await?;
    Ok(Json(
        service::quality(&state, &envs, q.stale_days.unwrap_or(7).max(1)).await?,
    ))
}

// ---------------------------------------------------------------- discovery

#[derive(Debug, Deserialize, IntoParams)]
pub struct ConflictParams {
    /// `open` (default), `accepted`, `rejected`, `superseded` or `all`.
    pub state: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/cmdb/conflicts", tag = "cmdb", params(ConflictParams),
    responses((status = 200, body = [ConflictView]), (status = 403, body = ErrorBody)))]
pub async fn list_conflicts(
    State(state): State<AppState>,
    caller: ApiCaller,
    Params(q): Params<ConflictParams>,
) -> ApiResult<Json<Vec<ConflictView>>> {
    service::authorize_read_any(&state, &caller.0, "cmdb.conflict.list").await?;
    let envs = service::environments_for(&state, &caller.0, Permission::CmdbRead).await?;
    let which = match q.state.as_deref() {
        None => Some("open"),
        Some("all") => None,
        Some(s @ ("open" | "accepted" | "rejected" | "superseded")) => Some(s),
        Some(other) => {
            return Err(ApiError::bad_request(Problem::field(
                "cmdb.conflict_state",
                "state",
                format!("状态 {other:?} 无效，应为 open、accepted、rejected、superseded 或 all"),
                format!(
                    "state {other:?} is invalid: use open, accepted, rejected, superseded or all"
                ),
            )));
        }
    };
    Ok(Json(discovery::conflicts(&state, &envs, which).await?))
}

/// A reviewer's decision on a discovery conflict.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `accept` (take the discovered value) or `reject` (keep the recorded one).
    pub decision: String,
}

#[utoipa::path(post, path = "/api/v1/cmdb/conflicts/{id}/decision", tag = "cmdb", request_body = Decision,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn decide_conflict(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(d): JsonBody<Decision>,
) -> ApiResult<StatusCode> {
    let accept = parse_decision(&d.decision)?;
    let via = service::via_of(&caller.0);
    discovery::decide(&state, &caller.0, id, accept, via).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `accept` → true, `reject` → false.
pub fn parse_decision(d: &str) -> ApiResult<bool> {
    match d {
        "accept" => Ok(true),
        "reject" => Ok(false),
        other => Err(ApiError::bad_request(Problem::field(
            "cmdb.decision_invalid",
            "decision",
            format!("决定 {other:?} 无效，应为 accept 或 reject"),
            format!("decision {other:?} is invalid: use accept or reject"),
        ))),
    }
}

#[utoipa::path(post, path = "/api/v1/cmdb/discovery", tag = "cmdb",
    responses((status = 200, body = DiscoveryReport), (status = 403, body = ErrorBody)))]
pub async fn run_discovery(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<DiscoveryReport>> {
    discovery::authorize_run(&state, &caller.0).await?;
    Ok(Json(discovery::sync(&state).await?))
}

// ---------------------------------------------------------------- import and export

#[derive(Debug, Deserialize, IntoParams)]
pub struct ImportParams {
    pub model: String,
    pub environment: String,
    /// Only report what would happen.
    #[serde(default)]
    pub dry_run: bool,
    /// `csv` or `xlsx`; default from the Content-Type (text/csv, or the XLSX type).
    pub format: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/cmdb/import", tag = "cmdb", params(ImportParams),
    request_body(content = String, description = "a CSV or XLSX file: a header row (name, then attribute keys or names), one instance per row"),
    responses((status = 200, body = ImportReport), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ImportReport)))]
pub async fn import_instances(
    State(state): State<AppState>,
    caller: ApiCaller,
    Params(q): Params<ImportParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let format = import::format_of(q.format.as_deref(), &headers)?;
    let report = import::import(
        &state,
        &caller.0,
        &q.model,
        &q.environment,
        format,
        &body,
        q.dry_run,
    )
    .await?;
    let status = if report.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(report)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportParams {
    pub model: String,
    pub environment: Option<String>,
    pub q: Option<String>,
    /// `csv` (default), `xlsx` or `json`.
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/cmdb/export", tag = "cmdb", params(ExportParams),
    responses((status = 200, description = "CSV, XLSX or JSON"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn export_instances(
    State(state): State<AppState>,
    caller: ApiCaller,
    Params(q): Params<ExportParams>,
) -> ApiResult<Response> {
    let search = search_for(
        &state,
        &caller,
        &SearchParams {
            q: q.q.clone(),
            model: Some(q.model.clone()),
            environment: q.environment.clone(),
            limit: Some(service::MAX_LIMIT),
        },
    )
    .await?;
    let model = service::model(&state, &q.model).await?;
    let rows = service::search(&state, &search).await?;
    match q.format.as_deref().unwrap_or("csv") {
        "csv" => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            import::to_csv(&model, &rows),
        )
            .into_response()),
        "xlsx" => Ok((
            [(
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )],
            import::to_xlsx(&model, &rows)?,
        )
            .into_response()),
        "json" => Ok(Json(rows).into_response()),
        other => Err(ApiError::bad_request(Problem::field(
            "cmdb.export_format",
            "format",
            format!("导出格式 {other:?} 无效，应为 csv、xlsx 或 json"),
            format!("export format {other:?} is invalid: use csv, xlsx or json"),
        ))),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/cmdb/models", get(list_models))
        .route("/api/v1/cmdb/models/{key}", get(get_model).put(put_model))
        .route("/api/v1/cmdb/models/{key}/check", post(check_model))
        .route("/api/v1/cmdb/models-export", get(export_models))
        .route("/api/v1/cmdb/models-import", post(import_models))
        .route(
            "/api/v1/cmdb/instances",
            get(list_instances).post(create_instance),
        )
        .route(
            "/api/v1/cmdb/instances/{id}",
            get(get_instance)
                .put(update_instance)
                .delete(delete_instance),
        )
        .route("/api/v1/cmdb/instances/{id}/history", get(instance_history))
        .route("/api/v1/cmdb/instances/{id}/as-of", get(instance_as_of))
        .route("/api/v1/cmdb/instances/{id}/impact", get(instance_impact))
        .route(
            "/api/v1/cmdb/instances/{id}/dependencies",
            get(instance_dependencies),
        )
        .route("/api/v1/cmdb/relations", post(create_relation))
        .route(
            "/api/v1/cmdb/relations/{id}",
            axum::routing::delete(delete_relation),
        )
        .route("/api/v1/cmdb/topology", get(topology))
        .route("/api/v1/cmdb/quality", get(quality))
        .route("/api/v1/cmdb/conflicts", get(list_conflicts))
        .route(
            "/api/v1/cmdb/conflicts/{id}/decision",
            post(decide_conflict),
        )
        .route("/api/v1/cmdb/discovery", post(run_discovery))
        .route(
            "/api/v1/cmdb/import",
            post(import_instances).layer(axum::extract::DefaultBodyLimit::max(
                import::MAX_IMPORT_BYTES,
            )),
        )
        .route("/api/v1/cmdb/export", get(export_instances))
}
