//! The execution engine's JSON API. Reads need `script.read` / `job.read` (the auditor has every
//! read); writes go through `super::service`, which runs the guard pipeline and audits.
//!
//! Live logs: `GET /api/v1/runs/{id}/events` is a Server-Sent Events stream (`state` events with
//! the run, its steps and tasks; `output` events with new output of the chosen task, or of every
//! task of a small run). It reads the database, so any replica can serve it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use ballast_core::authz::{Permission, Target};
use ballast_core::guard::{Action, ActionKind};
use ballast_exec::{Decision as StepDecision, PlanSpec};
use ballast_store::{AgentRow, ApprovalRow, RunQuery, RunRow, StepRow, TaskRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::service::{self, CredentialInput, ScriptInput, StartAdhoc, StartPlan, Started};
use crate::api::JsonBody;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub(crate) async fn read(
    state: &AppState,
    caller: &ApiCaller,
    perm: Permission,
    op: &str,
) -> ApiResult<()> {
    let target = crate::calendar::reference_target(state, &caller.0, perm).await?;
    let action = Action::new(ActionKind::Read, perm, op, target);
    crate::service::authorize(state, &caller.0, &action)
        .await
        .map(|_| ())
}

pub(crate) async fn read_env(
    state: &AppState,
    caller: &ApiCaller,
    op: &str,
    env: &str,
) -> ApiResult<()> {
    let action = Action::new(
        ActionKind::Read,
        Permission::JobRead,
        op,
        Target::environment(env),
    );
    crate::service::authorize(state, &caller.0, &action)
        .await
        .map(|_| ())
}

// ---------------------------------------------------------------- scripts

/// A script with its versions (contents included).
#[derive(Debug, Serialize, ToSchema)]
pub struct ScriptOut {
    #[schema(value_type = Object)]
    pub script: ballast_store::ScriptRow,
    #[schema(value_type = Vec<Object>)]
    pub versions: Vec<ballast_store::ScriptVersionRow>,
}

#[utoipa::path(get, path = "/api/v1/scripts", tag = "scripts", responses((status = 200, body = [Object]), (status = 403, body = ErrorBody)))]
pub async fn list_scripts(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<ballast_store::ScriptRow>>> {
    read(&state, &caller, Permission::ScriptRead, "script.list").await?;
    Ok(Json(state.store.scripts().await?))
}

#[utoipa::path(post, path = "/api/v1/scripts", tag = "scripts", request_body = ScriptInput,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn save_script(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(input): JsonBody<ScriptInput>,
) -> ApiResult<Json<serde_json::Value>> {
    let v = service::save_script(&state, &caller.0, &input).await?;
    Ok(Json(
        serde_json::json!({"name": input.name, "version": v, "state": "draft"}),
    ))
}

#[utoipa::path(get, path = "/api/v1/scripts/{name}", tag = "scripts", params(("name" = String, Path)),
    responses((status = 200, body = ScriptOut), (status = 404, body = ErrorBody)))]
pub async fn get_script(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> ApiResult<Json<ScriptOut>> {
    read(&state, &caller, Permission::ScriptRead, "script.read").await?;
    let script = state
        .store
        .script_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("script {name}")))?;
    let versions = state.store.script_versions(script.id).await?;
    Ok(Json(ScriptOut { script, versions }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DiffParams {
    pub from: i64,
    pub to: i64,
}

#[utoipa::path(get, path = "/api/v1/scripts/{name}/diff", tag = "scripts", params(("name" = String, Path), DiffParams),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn diff_script(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
    Query(q): Query<DiffParams>,
) -> ApiResult<Json<serde_json::Value>> {
    read(&state, &caller, Permission::ScriptRead, "script.read").await?;
    let (a, b) = versions_pair(&state, &name, q.from, q.to).await?;
    let unified = ballast_exec::script::unified_diff(
        &a.content,
        &b.content,
        &format!("{name}@{}", a.version),
        &format!("{name}@{}", b.version),
    );
    Ok(Json(serde_json::json!({
        "from": a.version, "to": b.version,
        "lines": ballast_exec::script::diff(&a.content, &b.content),
        "unified": unified,
    })))
}

pub(crate) async fn versions_pair(
    state: &AppState,
    name: &str,
    from: i64,
    to: i64,
) -> ApiResult<(
    ballast_store::ScriptVersionRow,
    ballast_store::ScriptVersionRow,
)> {
    let s = state
        .store
        .script_by_name(name)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("script {name}")))?;
    let get = |v: i64| {
        let st = state.clone();
        let id = s.id;
        async move {
            st.store
                .script_version(id, v)
                .await?
                .ok_or_else(|| ApiError::not_found(&format!("version {v}")))
        }
    };
    Ok((get(from).await?, get(to).await?))
}

/// A change of a version's state.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateChange {
    /// `online` (files an approval request), `offline` or `disabled`.
    pub state: String,
    #[serde(default)]
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/scripts/{name}/versions/{version}/state", tag = "scripts",
    params(("name" = String, Path), ("version" = i64, Path)), request_body = StateChange,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn script_state(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((name, version)): Path<(String, i64)>,
    JsonBody(c): JsonBody<StateChange>,
) -> ApiResult<Json<serde_json::Value>> {
    let approval =
        service::set_script_state(&state, &caller.0, &name, version, &c.state, &c.reason).await?;
    Ok(Json(serde_json::json!({"approval_id": approval})))
}

// ---------------------------------------------------------------- approvals

#[derive(Debug, Deserialize, IntoParams)]
pub struct ApprovalParams {
    /// `pending`, `approved`, `rejected`.
    pub state: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/approvals", tag = "approvals", params(ApprovalParams),
    responses((status = 200, body = [Object]), (status = 403, body = ErrorBody)))]
pub async fn list_approvals(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<ApprovalParams>,
) -> ApiResult<Json<Vec<ApprovalRow>>> {
    read(&state, &caller, Permission::JobRead, "approval.list").await?;
    Ok(Json(state.store.approvals(q.state.as_deref(), 500).await?))
}

/// A decision on an approval request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecision {
    pub approve: bool,
    #[serde(default)]
    pub comment: String,
}

#[utoipa::path(post, path = "/api/v1/approvals/{id}/decide", tag = "approvals", params(("id" = i64, Path)),
    request_body = ApprovalDecision,
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn decide_approval(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<i64>,
    JsonBody(d): JsonBody<ApprovalDecision>,
) -> ApiResult<Json<serde_json::Value>> {
    service::decide_approval(&state, &caller.0, id, d.approve, &d.comment).await?;
    Ok(Json(serde_json::json!({"id": id, "approved": d.approve})))
}

// ---------------------------------------------------------------- plans

#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", responses((status = 200, body = [Object])))]
pub async fn list_plans(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<ballast_store::PlanRow>>> {
    read(&state, &caller, Permission::ScriptRead, "plan.list").await?;
    Ok(Json(state.store.plans().await?))
}

#[utoipa::path(post, path = "/api/v1/plans", tag = "plans", request_body = Object,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)))]
pub async fn save_plan(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(spec): JsonBody<PlanSpec>,
) -> ApiResult<Json<serde_json::Value>> {
    let v = service::save_plan(&state, &caller.0, &spec).await?;
    Ok(Json(serde_json::json!({"name": spec.name, "version": v})))
}

#[utoipa::path(get, path = "/api/v1/plans/{name}", tag = "plans", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn get_plan(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    read(&state, &caller, Permission::ScriptRead, "plan.read").await?;
    let plan = state
        .store
        .plan_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("plan {name}")))?;
    let versions = state.store.plan_versions(plan.id).await?;
    Ok(Json(
        serde_json::json!({"plan": plan, "versions": versions}),
    ))
}

// ---------------------------------------------------------------- runs

#[utoipa::path(post, path = "/api/v1/runs", tag = "runs", request_body = StartPlan,
    responses((status = 200, body = Started), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn start_plan(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(req): JsonBody<StartPlan>,
) -> ApiResult<Json<Started>> {
    Ok(Json(service::start_plan(&state, &caller.0, &req).await?))
}

#[utoipa::path(post, path = "/api/v1/exec", tag = "runs", request_body = StartAdhoc,
    responses((status = 200, body = Started), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn start_adhoc(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(req): JsonBody<StartAdhoc>,
) -> ApiResult<Json<Started>> {
    Ok(Json(service::start_adhoc(&state, &caller.0, &req).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RunParams {
    pub status: Option<String>,
    pub environment: Option<String>,
    pub before_id: Option<i64>,
    pub limit: Option<u32>,
}

/// A run as the API shows it (the frozen spec without secrets; sealed secrets never leave).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunOut {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub environment: String,
    pub status: String,
    pub requested_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub message: Option<String>,
    pub current_step: i64,
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
}

impl RunOut {
    pub fn of(r: &RunRow) -> RunOut {
        RunOut {
            id: r.id,
            kind: r.kind.clone(),
            name: r.name.clone(),
            environment: r.environment.clone(),
            status: r.status.clone(),
            requested_by: r.requested_by.clone(),
            created_at: r.created_at.to_rfc3339(),
            started_at: r.started_at.map(|t| t.to_rfc3339()),
            finished_at: r.finished_at.map(|t| t.to_rfc3339()),
            message: r.message.clone(),
            current_step: r.current_step,
            spec: r.spec.clone(),
        }
    }
}

/// A run with its steps and tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    pub run: RunOut,
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<StepRow>,
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<TaskRow>,
    /// Task counts by status.
    pub counts: HashMap<String, usize>,
    pub finished: bool,
}

pub fn is_finished(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled" | "blocked")
}

pub(crate) async fn detail(state: &AppState, r: &RunRow) -> ApiResult<RunDetail> {
    let steps = state.store.steps(r.id).await?;
    let tasks = state.store.tasks(r.id, None).await?;
    let mut counts = HashMap::new();
    for t in &tasks {
        *counts.entry(t.status.clone()).or_insert(0) += 1;
    }
    Ok(RunDetail {
        run: RunOut::of(r),
        steps,
        tasks,
        counts,
        finished: is_finished(&r.status),
    })
}

#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunParams),
    responses((status = 200, body = [RunOut]), (status = 403, body = ErrorBody)))]
pub async fn list_runs(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<RunParams>,
) -> ApiResult<Json<Vec<RunOut>>> {
    match &q.environment {
        Some(e) => read_env(&state, &caller, "job.list", e).await?,
        None => read(&state, &caller, Permission::JobRead, "job.list").await?,
    }
    let runs = state
        .store
        .runs(&RunQuery {
            status: q.status.clone(),
            environment: q.environment.clone(),
            plan_id: None,
            before_id: q.before_id,
            limit: q.limit.unwrap_or(100).min(1000),
        })
        .await?;
    Ok(Json(runs.iter().map(RunOut::of).collect()))
}

pub(crate) async fn load_run_for(
    state: &AppState,
    caller: &ApiCaller,
    id: i64,
) -> ApiResult<RunRow> {
    let r = state
        .store
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("run {id}")))?;
    read_env(state, caller, "job.read", &r.environment).await?;
    Ok(r)
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = i64, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = ErrorBody)))]
pub async fn get_run(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<i64>,
) -> ApiResult<Json<RunDetail>> {
    let r = load_run_for(&state, &caller, id).await?;
    Ok(Json(detail(&state, &r).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct OutputParams {
    /// Chunks after this sequence number (default: from the start).
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

/// Output chunks of a task, as text (lossy UTF-8).
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputOut {
    pub task_id: i64,
    pub chunks: Vec<ChunkOut>,
    pub last_seq: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkOut {
    pub seq: i64,
    pub stream: String,
    pub text: String,
}

#[utoipa::path(get, path = "/api/v1/runs/{id}/tasks/{task}/output", tag = "runs",
    params(("id" = i64, Path), ("task" = i64, Path), OutputParams),
    responses((status = 200, body = OutputOut), (status = 404, body = ErrorBody)))]
pub async fn task_output(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, task)): Path<(i64, i64)>,
    Query(q): Query<OutputParams>,
) -> ApiResult<Json<OutputOut>> {
    let _ = load_run_for(&state, &caller, id).await?;
    let t = state
        .store
        .task(task)
        .await?
        .filter(|t| t.run_id == id)
        .ok_or_else(|| ApiError::not_found(&format!("task {task}")))?;
    let after = q.after.unwrap_or(-1);
    let chunks = state
        .store
        .output(t.id, after, q.limit.unwrap_or(1000).min(10_000))
        .await?;
    let last_seq = chunks.last().map_or(after, |c| c.seq);
    Ok(Json(OutputOut {
        task_id: t.id,
        chunks: chunks
            .into_iter()
            .map(|c| ChunkOut {
                seq: c.seq,
                stream: c.stream,
                text: String::from_utf8_lossy(&c.data).into_owned(),
            })
            .collect(),
        last_seq,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventParams {
    /// Stream this task's output (default: every task's, when the run has at most 50).
    pub task: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/runs/{id}/events", tag = "runs", params(("id" = i64, Path), EventParams),
    responses((status = 200, content_type = "text/event-stream"), (status = 404, body = ErrorBody)))]
pub async fn run_events(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<i64>,
    Query(q): Query<EventParams>,
) -> ApiResult<Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>>> {
    let _ = load_run_for(&state, &caller, id).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let mut last_state = String::new();
        let mut seqs: HashMap<i64, i64> = HashMap::new();
        loop {
            let Ok(Some(r)) = state.store.run(id).await else {
                return;
            };
            let Ok(d) = detail(&state, &r).await else {
                return;
            };
            let text = serde_json::to_string(&d).unwrap_or_default();
            if text != last_state {
                if tx
                    .send(Event::default().event("state").data(text.clone()))
                    .await
                    .is_err()
                {
                    return;
                }
                last_state = text;
            }
            let watched: Vec<i64> = match q.task {
                Some(t) => vec![t],
                None if d.tasks.len() <= 50 => d.tasks.iter().map(|t| t.id).collect(),
                None => Vec::new(),
            };
            for t in watched {
                let after = *seqs.get(&t).unwrap_or(&-1);
                let Ok(chunks) = state.store.output(t, after, 500).await else {
                    continue;
                };
                for c in chunks {
                    seqs.insert(t, c.seq);
                    let data = serde_json::json!({
                        "task_id": t, "seq": c.seq, "stream": c.stream,
                        "text": String::from_utf8_lossy(&c.data),
                    });
                    if tx
                        .send(Event::default().event("output").data(data.to_string()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            if d.finished {
                let _ = tx.send(Event::default().event("end").data("{}")).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    });
    let stream = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        Ok::<_, Infallible>,
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Why (for cancel).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonIn {
    #[serde(default)]
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", params(("id" = i64, Path)), request_body = ReasonIn,
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
pub async fn cancel_run(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<i64>,
    JsonBody(r): JsonBody<ReasonIn>,
) -> ApiResult<Json<serde_json::Value>> {
    service::cancel_run(&state, &caller.0, id, &r.reason).await?;
    Ok(Json(serde_json::json!({"id": id, "status": "cancelled"})))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/pause", tag = "runs", params(("id" = i64, Path)), request_body = ReasonIn,
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
pub async fn pause_run(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<i64>,
    JsonBody(r): JsonBody<ReasonIn>,
) -> ApiResult<Json<serde_json::Value>> {
    service::pause_run(&state, &caller.0, id, &r.reason).await?;
    Ok(Json(serde_json::json!({"id": id, "status": "paused"})))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/resume", tag = "runs", params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
pub async fn resume_run(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<i64>,
) -> ApiResult<Json<serde_json::Value>> {
    service::resume_run(&state, &caller.0, id).await?;
    Ok(Json(serde_json::json!({"id": id, "status": "running"})))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/steps/{idx}/confirm", tag = "runs", params(("id" = i64, Path), ("idx" = i64, Path)),
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
pub async fn confirm_step(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, idx)): Path<(i64, i64)>,
) -> ApiResult<Json<serde_json::Value>> {
    service::confirm_step(&state, &caller.0, id, idx).await?;
    Ok(Json(
        serde_json::json!({"id": id, "step": idx, "confirmed": true}),
    ))
}

/// An operator's decision on a paused step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    /// `retry_failed`, `skip` or `abort`.
    #[schema(value_type = String)]
    pub decision: StepDecision,
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/steps/{idx}/decide", tag = "runs", params(("id" = i64, Path), ("idx" = i64, Path)),
    request_body = DecisionIn, responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
pub async fn decide_step(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, idx)): Path<(i64, i64)>,
    JsonBody(d): JsonBody<DecisionIn>,
) -> ApiResult<Json<serde_json::Value>> {
    service::decide_step(&state, &caller.0, id, idx, d.decision).await?;
    Ok(Json(
        serde_json::json!({"id": id, "step": idx, "decision": d.decision}),
    ))
}

// ---------------------------------------------------------------- agents

/// An enrolled agent and whether it is connected now.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentOut {
    #[schema(value_type = Object)]
    #[serde(flatten)]
    pub agent: AgentRow,
    pub connected: bool,
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", responses((status = 200, body = [AgentOut])))]
pub async fn list_agents(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<AgentOut>>> {
    read(&state, &caller, Permission::JobRead, "agent.list").await?;
    let connected: std::collections::HashSet<String> = state
        .exec
        .hub
        .connected()
        .into_iter()
        .map(|c| c.agent_id)
        .collect();
    Ok(Json(
        state
            .store
            .agents()
            .await?
            .into_iter()
            .map(|a| AgentOut {
                connected: connected.contains(&a.id),
                agent: a,
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/agents/{id}/revoke", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody)))]
pub async fn revoke_agent(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    service::revoke_agent(&state, &caller.0, &id).await?;
    Ok(Json(serde_json::json!({"id": id, "revoked": true})))
}

/// A request for an enrolment token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollTokenIn {
    pub environment: String,
}

#[utoipa::path(post, path = "/api/v1/enroll-tokens", tag = "agents", request_body = EnrollTokenIn,
    responses((status = 200, body = Object), (status = 403, body = ErrorBody)))]
pub async fn create_enroll_token(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(r): JsonBody<EnrollTokenIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let (token, expires) = service::create_enroll_token(&state, &caller.0, &r.environment).await?;
    Ok(Json(serde_json::json!({
        "token": token, "environment": r.environment, "expires_at": expires.to_rfc3339(),
        "agent_endpoint": state.exec.config.agent_listen.to_string(),
    })))
}

// ---------------------------------------------------------------- SSH

#[utoipa::path(get, path = "/api/v1/ssh/credentials", tag = "ssh", responses((status = 200, body = [Object])))]
pub async fn list_credentials(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    read(&state, &caller, Permission::JobRead, "ssh.credential.list").await?;
    Ok(Json(
        state
            .store
            .ssh_credentials()
            .await?
            .into_iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name, "username": c.username, "kind": c.kind,
                    "created_by": c.created_by, "created_at": c.created_at,
                })
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/ssh/credentials", tag = "ssh", request_body = CredentialInput,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put_credential(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(c): JsonBody<CredentialInput>,
) -> ApiResult<Json<serde_json::Value>> {
    service::put_credential(&state, &caller.0, &c).await?;
    Ok(Json(serde_json::json!({"name": c.name, "stored": true})))
}

/// A host key to pin; an empty `key_line` fetches it with `ssh-keyscan`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostKeyIn {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub key_line: String,
}

fn default_port() -> u16 {
    22
}

#[utoipa::path(get, path = "/api/v1/ssh/host-keys", tag = "ssh", responses((status = 200, body = [Object])))]
pub async fn list_host_keys(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<ballast_store::HostKeyRow>>> {
    read(&state, &caller, Permission::JobRead, "ssh.host_key.list").await?;
    Ok(Json(state.store.host_keys().await?))
}

#[utoipa::path(post, path = "/api/v1/ssh/host-keys", tag = "ssh", request_body = HostKeyIn,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn pin_host_key(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(k): JsonBody<HostKeyIn>,
) -> ApiResult<Json<ballast_store::HostKeyRow>> {
    Ok(Json(
        service::pin_host_key(&state, &caller.0, &k.host, k.port, &k.key_line).await?,
    ))
}

// ---------------------------------------------------------------- dangerous-command rules

#[utoipa::path(get, path = "/api/v1/danger-rules", tag = "danger", responses((status = 200, body = Object)))]
pub async fn get_rules(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<serde_json::Value>> {
    read(&state, &caller, Permission::ScriptRead, "danger.rules.read").await?;
    let rules = state.exec.danger.rules();
    Ok(Json(serde_json::json!({
        "custom": state.exec.danger.source().is_some(),
        "toml": state.exec.danger.source(),
        "rules": rules,
    })))
}

/// The rules as TOML.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesIn {
    pub toml: String,
}

#[utoipa::path(put, path = "/api/v1/danger-rules", tag = "danger", request_body = RulesIn,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_rules(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(r): JsonBody<RulesIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let n = service::set_danger_rules(&state, &caller.0, &r.toml).await?;
    Ok(Json(serde_json::json!({"rules": n})))
}

/// Content to check against the rules (nothing is run).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    pub language: String,
    pub text: String,
}

#[utoipa::path(post, path = "/api/v1/danger-rules/check", tag = "danger", request_body = CheckIn,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)))]
pub async fn check_content(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(c): JsonBody<CheckIn>,
) -> ApiResult<Json<serde_json::Value>> {
    read(&state, &caller, Permission::ScriptRead, "danger.check").await?;
    let rules = state.exec.danger.rules();
    let scan = match ballast_exec::Language::parse(&c.language) {
        Ok(l) => ballast_exec::danger::scan(l, &c.text, &rules),
        Err(_) if c.language == "sql" => ballast_exec::danger::scan_sql(&c.text, &rules),
        Err(e) => {
            return Err(ApiError::bad_request(ballast_core::Problem::field(
                e.code(),
                "language",
                e.message_zh(),
                e.message_en(),
            )));
        }
    };
    Ok(Json(serde_json::to_value(&scan).unwrap_or_default()))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/scripts", get(list_scripts).post(save_script))
        .route("/api/v1/scripts/{name}", get(get_script))
        .route("/api/v1/scripts/{name}/diff", get(diff_script))
        .route(
            "/api/v1/scripts/{name}/versions/{version}/state",
            post(script_state),
        )
        .route("/api/v1/approvals", get(list_approvals))
        .route("/api/v1/approvals/{id}/decide", post(decide_approval))
        .route("/api/v1/plans", get(list_plans).post(save_plan))
        .route("/api/v1/plans/{name}", get(get_plan))
        .route("/api/v1/runs", get(list_runs).post(start_plan))
        .route("/api/v1/exec", post(start_adhoc))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/runs/{id}/events", get(run_events))
        .route("/api/v1/runs/{id}/tasks/{task}/output", get(task_output))
        .route("/api/v1/runs/{id}/cancel", post(cancel_run))
        .route("/api/v1/runs/{id}/pause", post(pause_run))
        .route("/api/v1/runs/{id}/resume", post(resume_run))
        .route("/api/v1/runs/{id}/steps/{idx}/confirm", post(confirm_step))
        .route("/api/v1/runs/{id}/steps/{idx}/decide", post(decide_step))
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/agents/{id}/revoke", post(revoke_agent))
        .route("/api/v1/enroll-tokens", post(create_enroll_token))
        .route(
            "/api/v1/ssh/credentials",
            get(list_credentials).post(put_credential),
        )
        .route(
            "/api/v1/ssh/host-keys",
            get(list_host_keys).post(pin_host_key),
        )
        .route("/api/v1/danger-rules", get(get_rules).put(set_rules))
        .route("/api/v1/danger-rules/check", post(check_content))
}
