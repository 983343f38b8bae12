//! The JSON API under `/api/v1`, its OpenAPI document (generated from these handlers by utoipa),
//! and the probes `/healthz`, `/readyz`, `/metrics`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ballast_core::Problem;
use ballast_core::audit::AuditRecord;
use ballast_core::authz::{Permission, Role, Target};
use ballast_core::guard::{Action, ActionKind};
use ballast_core::user::User;
use ballast_store::{ApiToken, AuditQuery, Environment};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::ApiCaller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::service::{self, CreateUser, Grant};
use crate::state::AppState;

/// A JSON body whose rejections are API errors (`request.*` codes) rather than plain text.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => {
                let (status, code) = match &rejection {
                    JsonRejection::JsonDataError(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "request.invalid_fields")
                    }
                    JsonRejection::JsonSyntaxError(_) => {
                        (StatusCode::BAD_REQUEST, "request.malformed_json")
                    }
                    JsonRejection::MissingJsonContentType(_) => {
                        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "request.content_type")
                    }
                    JsonRejection::BytesRejection(_) => {
                        (StatusCode::PAYLOAD_TOO_LARGE, "request.too_large")
                    }
                    _ => (StatusCode::BAD_REQUEST, "request.invalid"),
                };
                let text = rejection.body_text();
                Err(ApiError::new(
                    status,
                    Problem::new(
                        code,
                        format!("请求无效：{text}"),
                        format!("invalid request: {text}"),
                    ),
                ))
            }
        }
    }
}

/// A numeric ID from the path; anything else is a 400 with code `request.invalid_id`.
pub struct Id(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let invalid = |v: &str| {
            ApiError::bad_request(Problem::field(
                "request.invalid_id",
                "id",
                format!("ID {v:?} 无效，应为正整数"),
                format!("ID {v:?} is invalid: expected a positive integer"),
            ))
        };
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid(""))?;
        match raw.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Id(n)),
            _ => Err(invalid(&raw)),
        }
    }
}

async fn read_guard(
    state: &AppState,
    caller: &ApiCaller,
    perm: Permission,
    op: &str,
) -> ApiResult<()> {
    let action = Action::new(ActionKind::Read, perm, op, Target::global());
    service::authorize(state, &caller.0, &action)
        .await
        .map(|_| ())
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub database: bool,
    pub migrations_current: bool,
    pub audit_chain_verified: bool,
}

/// Readiness: database reachable, migrations current, audit chain verified at start.
#[utoipa::path(get, path = "/readyz", tag = "probes", responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let database = state.store.ping().await.is_ok();
    let migrations_current = database && state.store.migrations_current().await.unwrap_or(false);
    let r = Ready {
        database,
        migrations_current,
        audit_chain_verified: state.chain_ok(),
    };
    let code = if r.database && r.migrations_current && r.audit_chain_verified {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "probes", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let db_up = state.store.ping().await.is_ok();
    let body = state.metrics.render(
        db_up,
        state.chain_ok(),
        state.store.backend(),
        state.store.pool_stats(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    #[schema(value_type = Object)]
    pub user: User,
    /// `role@scope`.
    pub roles: Vec<String>,
}

/// The caller.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(caller: ApiCaller) -> Json<Me> {
    let roles = caller
        .0
        .bindings
        .iter()
        .map(|b| format!("{}@{}", b.role, b.scope.label()))
        .collect();
    Json(Me {
        user: caller.0.user,
        roles,
    })
}

/// All users.
#[utoipa::path(get, path = "/api/v1/users", tag = "accounts", responses((status = 200, body = [Object]), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<User>>> {
    read_guard(&state, &caller, Permission::UserRead, "user.list").await?;
    Ok(Json(state.store.users().await?))
}

#[derive(Serialize, ToSchema)]
pub struct CreatedUser {
    #[schema(value_type = Object)]
    pub user: User,
    /// Shown once; must be changed at first sign-in.
    pub initial_password: String,
}

/// Creates a user (real name, department, employee or outsourced) with role grants.
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = CreateUser,
    responses((status = 201, body = CreatedUser), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(input): JsonBody<CreateUser>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    let (user, initial_password) = service::create_user(&state, &caller.0, &input).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user,
            initial_password,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: String,
}

/// Disables a user and revokes their sessions and tokens.
#[utoipa::path(post, path = "/api/v1/users/{id}/disable", tag = "accounts", request_body = Reason, params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_user(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(r): JsonBody<Reason>,
) -> ApiResult<Json<User>> {
    Ok(Json(
        service::set_disabled(&state, &caller.0, id, true, &r.reason).await?,
    ))
}

/// Re-enables a user.
#[utoipa::path(post, path = "/api/v1/users/{id}/enable", tag = "accounts", request_body = Reason, params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_user(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(r): JsonBody<Reason>,
) -> ApiResult<Json<User>> {
    Ok(Json(
        service::set_disabled(&state, &caller.0, id, false, &r.reason).await?,
    ))
}

#[derive(Serialize, ToSchema)]
pub struct NewPassword {
    pub password: String,
}

/// Resets a user's password to a random one that must be changed at next sign-in.
#[utoipa::path(post, path = "/api/v1/users/{id}/reset-password", tag = "accounts", params(("id" = i64, Path)),
    responses((status = 200, body = NewPassword), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<Json<NewPassword>> {
    Ok(Json(NewPassword {
        password: service::reset_password(&state, &caller.0, id).await?,
    }))
}

/// Removes a user's second factor (they enrol again).
#[utoipa::path(post, path = "/api/v1/users/{id}/reset-mfa", tag = "accounts", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reset_mfa(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    service::reset_mfa(&state, &caller.0, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Grants a role in a scope; refused (409) when it breaks separation of duties.
#[utoipa::path(post, path = "/api/v1/users/{id}/roles", tag = "roles", request_body = Grant, params(("id" = i64, Path)),
    responses((status = 201, body = Object), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn grant_role(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(g): JsonBody<Grant>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let b = service::grant_role(&state, &caller.0, id, &g).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"user_id": b.user_id, "role": b.role, "scope": b.scope.label()})),
    ))
}

/// Revokes a role binding.
#[utoipa::path(post, path = "/api/v1/users/{id}/roles/revoke", tag = "roles", request_body = Grant, params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_role(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(g): JsonBody<Grant>,
) -> ApiResult<StatusCode> {
    service::revoke_role(&state, &caller.0, id, &g).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Roles and their permissions.
#[utoipa::path(get, path = "/api/v1/roles", tag = "roles", responses((status = 200, body = [Object]), (status = 403, body = ErrorBody)))]
pub async fn list_roles(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<Role>>> {
    read_guard(&state, &caller, Permission::RoleRead, "role.list").await?;
    Ok(Json(state.store.roles().await?))
}

/// Managed environments.
#[utoipa::path(get, path = "/api/v1/environments", tag = "environments", responses((status = 200, body = [Object]), (status = 403, body = ErrorBody)))]
pub async fn list_environments(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<Environment>>> {
    read_guard(
        &state,
        &caller,
        Permission::EnvironmentRead,
        "environment.list",
    )
    .await?;
    Ok(Json(state.store.environments().await?))
}

#[derive(Deserialize, IntoParams, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339.
    pub from: Option<String>,
    pub to: Option<String>,
    pub text: Option<String>,
    pub before_seq: Option<i64>,
    pub limit: Option<u32>,
}

impl AuditParams {
    pub fn query(&self) -> Result<AuditQuery, Problem> {
        let time = |field: &str,
                    v: &Option<String>|
         -> Result<Option<chrono::DateTime<chrono::Utc>>, Problem> {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    chrono::DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .or_else(|_| {
                            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| {
                                let start = d.and_hms_opt(0, 0, 0).unwrap_or_default();
                                chrono::DateTime::<chrono::Utc>::from_naive_utc_and_offset(
                                    start,
                                    chrono::Utc,
                                ) - chrono::Duration::hours(8)
                            })
                        })
                        .map_err(|_| {
                            Problem::field(
                                "audit.time_invalid",
                                field,
                                format!("{field} 须为 RFC 3339 时间或 YYYY-MM-DD"),
                                format!("{field} must be an RFC 3339 time or YYYY-MM-DD"),
                            )
                        })
                })
                .transpose()
        };
        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        Ok(AuditQuery {
            actor: nonempty(&self.actor),
            action_prefix: nonempty(&self.action),
            object_type: nonempty(&self.object_type),
            object_id: nonempty(&self.object_id),
            outcome: nonempty(&self.outcome),
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
            text: nonempty(&self.text),
            before_seq: self.before_seq,
            limit: self.limit.unwrap_or(100).clamp(1, 1000),
        })
    }
}

/// Searches the audit log (newest first).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams), responses((status = 200, body = [Object]), (status = 403, body = ErrorBody)))]
pub async fn audit_search(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(p): Query<AuditParams>,
) -> ApiResult<Json<Vec<AuditRecord>>> {
    read_guard(&state, &caller, Permission::AuditRead, "audit.search").await?;
    let q = p.query().map_err(ApiError::bad_request)?;
    Ok(Json(state.store.audit_search(&q).await?))
}

#[derive(Serialize, ToSchema)]
pub struct ChainStatus {
    pub intact: bool,
    pub records: u64,
    pub first_broken_seq: Option<i64>,
    pub reason_zh: Option<String>,
    pub reason_en: Option<String>,
    /// Latest signed checkpoint covered by the chain (truncation check).
    pub checkpoint_seq: Option<i64>,
}

/// Recomputes the audit hash chain and checks the signed checkpoints.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", responses((status = 200, body = ChainStatus), (status = 403, body = ErrorBody)))]
pub async fn audit_verify(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<ChainStatus>> {
    read_guard(&state, &caller, Permission::AuditRead, "audit.verify").await?;
    Ok(Json(crate::verify::chain_status(&state).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// `csv`, `json` or `xlsx`.
    pub format: String,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Exports audit records (CSV, XLSX or JSON); the export itself is audited.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(ExportParams), responses((status = 200), (status = 403, body = ErrorBody)))]
pub async fn audit_export(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(p): Query<ExportParams>,
) -> ApiResult<Response> {
    let action = Action::new(
        ActionKind::Read,
        Permission::AuditExport,
        "audit.export",
        Target::global(),
    );
    service::authorize(&state, &caller.0, &action).await?;
    let params = AuditParams {
        actor: p.actor,
        action: p.action,
        from: p.from,
        to: p.to,
        limit: Some(1000),
        ..AuditParams::default()
    };
    let q = params.query().map_err(ApiError::bad_request)?;
    crate::export::audit_export(&state, &caller.0, &p.format, q).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// Permission keys, e.g. `["audit.read"]`; each must be held by the caller.
    pub permissions: Vec<String>,
    pub days: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[schema(value_type = Object)]
    pub token: ApiToken,
    /// Shown once.
    pub secret: String,
}

/// Creates an API token for the caller.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "accounts", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(t): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let perms = t
        .permissions
        .iter()
        .map(|k| {
            Permission::parse(k).ok_or_else(|| {
                ApiError::bad_request(Problem::field(
                    "token.permission_unknown",
                    "permissions",
                    format!("未知权限 {k:?}"),
                    format!("unknown permission {k:?}"),
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (token, secret) = service::create_token(&state, &caller.0, &t.name, &perms, t.days).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the caller's password.
#[utoipa::path(post, path = "/api/v1/account/password", tag = "accounts", request_body = PasswordChange,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(c): JsonBody<PasswordChange>,
) -> ApiResult<StatusCode> {
    service::change_own_password(&state, &caller.0, &c.current_password, &c.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates or updates a custom role (built-in roles are fixed).
#[utoipa::path(post, path = "/api/v1/roles", tag = "roles", request_body = service::RoleInput,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn upsert_role(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(r): JsonBody<service::RoleInput>,
) -> ApiResult<Json<Role>> {
    Ok(Json(
        service::upsert_custom_role(&state, &caller.0, &r).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Networks {
    /// CIDR networks, e.g. `["10.1.0.0/16"]`; empty = anywhere.
    pub allowed_networks: Vec<String>,
}

/// Limits a role (built-in or custom) to source networks.
#[utoipa::path(post, path = "/api/v1/roles/{key}/networks", tag = "roles", request_body = Networks, params(("key" = String, Path)),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn role_networks(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(key): Path<String>,
    JsonBody(n): JsonBody<Networks>,
) -> ApiResult<Json<Role>> {
    Ok(Json(
        service::set_role_networks(&state, &caller.0, &key, &n.allowed_networks).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Zones {
    pub security_zones: Vec<String>,
}

/// Sets the security zones (安全区域) of a declared environment.
#[utoipa::path(post, path = "/api/v1/environments/{name}/zones", tag = "environments", request_body = Zones, params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn environment_zones(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
    JsonBody(z): JsonBody<Zones>,
) -> ApiResult<Json<Environment>> {
    Ok(Json(
        service::set_security_zones(&state, &caller.0, &name, &z.security_zones).await?,
    ))
}

/// The caller's API tokens (everyone's for holders of `user.manage`); secrets are never shown.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "accounts", responses((status = 200, body = [Object])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(service::list_tokens(&state, &caller.0).await?))
}

/// Revokes an API token.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/revoke", tag = "accounts", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    service::revoke_token(&state, &caller.0, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ballast API",
        description = "Operation automation for securities and fund firms. Errors are `{code, message, details}` with stable codes."
    ),
    paths(
        healthz,
        readyz,
        metrics,
        me,
        list_users,
        create_user,
        disable_user,
        enable_user,
        reset_password,
        reset_mfa,
        grant_role,
        revoke_role,
        list_roles,
        list_environments,
        audit_search,
        audit_verify,
        audit_export,
        create_token,
        change_password,
        // Trading calendars and change windows (crate::calendar::api).
        crate::calendar::api::list_calendars,
        crate::calendar::api::days,
        crate::calendar::api::is_trading_day,
        crate::calendar::api::next,
        crate::calendar::api::prev,
        crate::calendar::api::phase,
        crate::calendar::api::schedule_preview,
        crate::calendar::api::import,
        crate::calendar::api::policies,
        crate::calendar::api::evaluate,
        crate::calendar::api::request_override,
        crate::calendar::api::approve_override,
        crate::calendar::api::list_overrides,
        // Operation automation (crate::exec::api).
        crate::exec::api::list_scripts,
        crate::exec::api::save_script,
        crate::exec::api::get_script,
        crate::exec::api::diff_script,
        crate::exec::api::script_state,
        crate::exec::api::list_approvals,
        crate::exec::api::decide_approval,
        crate::exec::api::list_plans,
        crate::exec::api::save_plan,
        crate::exec::api::get_plan,
        crate::exec::api::start_plan,
        crate::exec::api::start_adhoc,
        crate::exec::api::list_runs,
        crate::exec::api::get_run,
        crate::exec::api::task_output,
        crate::exec::api::run_events,
        crate::exec::api::cancel_run,
        crate::exec::api::pause_run,
        crate::exec::api::resume_run,
        crate::exec::api::confirm_step,
        crate::exec::api::decide_step,
        crate::exec::api::list_agents,
        crate::exec::api::revoke_agent,
        crate::exec::api::create_enroll_token,
        crate::exec::api::list_credentials,
        crate::exec::api::put_credential,
        crate::exec::api::list_host_keys,
        crate::exec::api::pin_host_key,
        crate::exec::api::get_rules,
        crate::exec::api::set_rules,
        crate::exec::api::check_content,
        // Scheduled runs (crate::exec::schedule::api).
        crate::exec::schedule::api::list_schedules,
        crate::exec::schedule::api::create_schedule,
        crate::exec::schedule::api::get_schedule,
        crate::exec::schedule::api::update_schedule,
        crate::exec::schedule::api::delete_schedule,
        crate::exec::schedule::api::schedule_fires,
        crate::exec::schedule::api::missed_fires,
        crate::exec::schedule::api::preview_schedule,
        // Online assessments (crate::assess::api).
        crate::assess::api::list_assessments,
        crate::assess::api::create_assessment,
        crate::assess::api::create_from_answers,
        crate::assess::api::get_assessment,
        crate::assess::api::set_targets,
        crate::assess::api::assign,
        crate::assess::api::transition,
        crate::assess::api::rate,
        crate::assess::api::submit_item,
        crate::assess::api::review_item,
        crate::assess::api::add_evidence,
        crate::assess::api::download_evidence,
        crate::assess::api::delete_evidence,
        crate::assess::api::import_answers,
        crate::assess::api::get_report,
        crate::assess::api::export,
        crate::assess::api::compare,
        crate::assess::api::list_actions,
        crate::assess::api::export_actions,
        crate::assess::api::create_action,
        crate::assess::api::update_action,
        // CMDB (crate::cmdb::api).
        crate::cmdb::api::list_models,
        crate::cmdb::api::list_conflicts,
        crate::cmdb::api::decide_conflict,
        crate::cmdb::api::run_discovery,
        crate::cmdb::api::get_model,
        crate::cmdb::api::put_model,
        crate::cmdb::api::check_model,
        crate::cmdb::api::export_models,
        crate::cmdb::api::import_models,
        crate::cmdb::api::list_instances,
        crate::cmdb::api::create_instance,
        crate::cmdb::api::get_instance,
        crate::cmdb::api::update_instance,
        crate::cmdb::api::delete_instance,
        crate::cmdb::api::instance_history,
        crate::cmdb::api::instance_as_of,
        crate::cmdb::api::instance_impact,
        crate::cmdb::api::instance_dependencies,
        crate::cmdb::api::create_relation,
        crate::cmdb::api::delete_relation,
        crate::cmdb::api::topology,
        crate::cmdb::api::quality,
        crate::cmdb::api::import_instances,
        crate::cmdb::api::export_instances
    ),
    components(schemas(
        ErrorBody,
        crate::error::ErrorDetails,
        Health,
        Ready,
        Me,
        CreateUser,
        Grant,
        CreatedUser,
        Reason,
        NewPassword,
        ChainStatus,
        NewToken,
        CreatedToken,
        PasswordChange
    ))
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::not_found("endpoint")
}

/// The API routes (mounted by `crate::router`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
        .route("/api/v1/me", get(me))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}/disable", post(disable_user))
        .route("/api/v1/users/{id}/enable", post(enable_user))
        .route("/api/v1/users/{id}/reset-password", post(reset_password))
        .route("/api/v1/users/{id}/reset-mfa", post(reset_mfa))
        .route("/api/v1/users/{id}/roles", post(grant_role))
        .route("/api/v1/users/{id}/roles/revoke", post(revoke_role))
        .route("/api/v1/roles", get(list_roles).post(upsert_role))
        .route("/api/v1/roles/{key}/networks", post(role_networks))
        .route("/api/v1/environments", get(list_environments))
        .route("/api/v1/environments/{name}/zones", post(environment_zones))
        .route("/api/v1/audit", get(audit_search))
        .route("/api/v1/audit/verify", get(audit_verify))
        .route("/api/v1/audit/export", get(audit_export))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}/revoke", post(revoke_token))
        .route("/api/v1/account/password", post(change_password))
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
}
