//! `/api/v1/schedules…`: list, create, read, change, delete, fire history, preview, and the
//! missed-runs report. Reads need `job.read`; changes go through `super::service` (guard
//! pipeline, audit).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ballast_core::authz::Permission;
use ballast_store::{FireQuery, ScheduleFireRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::REPORTED;
use super::service::{self, PreviewInput, PreviewOut, ScheduleInput, ScheduleView};
use crate::api::{Id, JsonBody};
use crate::auth::ApiCaller;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

async fn read_any(state: &AppState, caller: &ApiCaller, op: &str) -> ApiResult<()> {
    crate::exec::api::read(state, caller, Permission::JobRead, op).await
}

/// One fire of a schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct FireOut {
    pub id: i64,
    pub schedule_id: i64,
    pub scheduled_at: chrono::DateTime<chrono::Utc>,
    pub handled_at: chrono::DateTime<chrono::Utc>,
    /// `started`, `skipped_calendar`, `missed`, `caught_up`, `denied`, `failed`.
    pub outcome: String,
    pub run_id: Option<i64>,
    pub message: String,
}

impl FireOut {
    fn of(f: ScheduleFireRow) -> FireOut {
        FireOut {
            id: f.id,
            schedule_id: f.schedule_id,
            scheduled_at: f.scheduled_at,
            handled_at: f.handled_at,
            outcome: f.outcome,
            run_id: f.run_id,
            message: f.message,
        }
    }
}

/// The id of a created schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: i64,
}

#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules",
    responses((status = 200, body = [ScheduleView]), (status = 403, body = ErrorBody)))]
pub async fn list_schedules(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<ScheduleView>>> {
    read_any(&state, &caller, "schedule.list").await?;
    Ok(Json(service::list(&state).await?))
}

#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", request_body = ScheduleInput,
    responses((status = 201, body = Created), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_schedule(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(input): JsonBody<ScheduleInput>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let id = service::create(&state, &caller.0, &input).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = i64, Path)),
    responses((status = 200, body = ScheduleView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_schedule(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<Json<ScheduleView>> {
    let s = service::load(&state, id).await?;
    crate::exec::api::read_env(&state, &caller, "schedule.read", &s.environment).await?;
    let last = service::fires(&state, id, 1).await?;
    Ok(Json(service::view(&state, &s, last.first()).await?))
}

#[utoipa::path(put, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = i64, Path)),
    request_body = ScheduleInput,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_schedule(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(input): JsonBody<ScheduleInput>,
) -> ApiResult<StatusCode> {
    service::update(&state, &caller.0, id, &input).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_schedule(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    service::delete(&state, &caller.0, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct FireParams {
    /// Fires with a smaller id (paging).
    pub before_id: Option<i64>,
    /// Default 100, at most 1000.
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/schedules/{id}/fires", tag = "schedules", params(("id" = i64, Path), FireParams),
    responses((status = 200, body = [FireOut]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn schedule_fires(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    Query(q): Query<FireParams>,
) -> ApiResult<Json<Vec<FireOut>>> {
    let s = service::load(&state, id).await?;
    crate::exec::api::read_env(&state, &caller, "schedule.read", &s.environment).await?;
    let fires = state
        .store
        .fires(&FireQuery {
            schedule_id: Some(id),
            outcomes: Vec::new(),
            before_id: q.before_id,
            limit: q.limit.unwrap_or(100).min(1000),
        })
        .await?;
    Ok(Json(fires.into_iter().map(FireOut::of).collect()))
}

#[utoipa::path(get, path = "/api/v1/schedule-fires/missed", tag = "schedules", params(FireParams),
    responses((status = 200, body = [FireOut]), (status = 403, body = ErrorBody)))]
pub async fn missed_fires(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<FireParams>,
) -> ApiResult<Json<Vec<FireOut>>> {
    read_any(&state, &caller, "schedule.list").await?;
    let fires = state
        .store
        .fires(&FireQuery {
            schedule_id: None,
            outcomes: REPORTED.iter().map(|o| o.to_string()).collect(),
            before_id: q.before_id,
            limit: q.limit.unwrap_or(100).min(1000),
        })
        .await?;
    Ok(Json(fires.into_iter().map(FireOut::of).collect()))
}

#[utoipa::path(post, path = "/api/v1/schedules/preview", tag = "schedules", request_body = PreviewInput,
    responses((status = 200, body = PreviewOut), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn preview_schedule(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(input): JsonBody<PreviewInput>,
) -> ApiResult<Json<PreviewOut>> {
    read_any(&state, &caller, "schedule.preview").await?;
    Ok(Json(service::preview(&state, &input)?))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/schedules",
            get(list_schedules).post(create_schedule),
        )
        .route("/api/v1/schedules/preview", post(preview_schedule))
        .route(
            "/api/v1/schedules/{id}",
            get(get_schedule)
                .put(update_schedule)
                .delete(delete_schedule),
        )
        .route("/api/v1/schedules/{id}/fires", get(schedule_fires))
        .route("/api/v1/schedule-fires/missed", get(missed_fires))
}
