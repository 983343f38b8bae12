//! API errors: `{code, message, details}` with a stable code and an HTTP status. `message` is in
//! the request's language; `details` carries both languages and the field, if any.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ballast_core::Problem;
use ballast_store::StoreError;
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub problem: Problem,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable error code, e.g. `authz.forbidden`.
    pub code: String,
    /// Human-readable message (English; Chinese in `details.message_zh`).
    pub message: String,
    pub details: ErrorDetails,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetails {
    pub message_zh: String,
    pub message_en: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, problem: Problem) -> ApiError {
        ApiError { status, problem }
    }
    pub fn bad_request(problem: Problem) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, problem)
    }
    pub fn forbidden(problem: Problem) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, problem)
    }
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            Problem::new(
                "not_found",
                format!("未找到：{what}"),
                format!("not found: {what}"),
            ),
        )
    }
    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            Problem::new(
                "auth.required",
                "需要登录或有效的 API 令牌",
                "authentication required: sign in or send a valid API token",
            ),
        )
    }
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.problem.code.to_string(),
            message: self.problem.message_en.clone(),
            details: ErrorDetails {
                message_zh: self.problem.message_zh.clone(),
                message_en: self.problem.message_en.clone(),
                field: self.problem.field.clone(),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(m) => {
                tracing::error!("database unavailable: {m}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Problem::new(
                        "database.unavailable",
                        "数据库暂不可用，未做任何更改，请稍后重试",
                        "the database is unavailable; nothing was changed; try again later",
                    ),
                )
            }
            StoreError::Conflict(m) => ApiError::new(
                StatusCode::CONFLICT,
                Problem::new(
                    "conflict",
                    format!("与现有数据冲突：{m}"),
                    format!("conflict: {m}"),
                ),
            ),
            StoreError::NotFound(m) => ApiError::not_found(&m),
            other => {
                tracing::error!("store error: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Problem::new(
                        "internal",
                        "内部错误，未做任何更改",
                        "internal error; nothing was changed",
                    ),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
