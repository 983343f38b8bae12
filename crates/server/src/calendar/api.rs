//! The calendar and change-window JSON API (`/api/v1/calendars…`, `/api/v1/schedules/preview`,
//! `/api/v1/change-windows…`). Reads need `calendar.read`; import needs `calendar.manage`;
//! override approval needs `approval.approve`. A date outside the loaded data is 422
//! `calendar.not_covered`, naming the year.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ballast_calendar::{
    COVERAGE_WARNING_DAYS, Calendar, CalendarError, Coverage, DayInfo, DayKind, OperationContext,
    Schedule, preview,
};
use ballast_core::Problem;
use ballast_core::authz::Permission;
use ballast_core::guard::{Action, ActionKind};
use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::import::ImportReport;
use super::overrides::{NewOverride, OverrideRecord};
use super::{DEFAULT_CALENDAR, api_error, problem};
use crate::api::JsonBody;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::service;
use crate::state::AppState;

/// The longest range `/days` answers in one request.
pub const MAX_RANGE_DAYS: i64 = 1000;

async fn read_guard(state: &AppState, caller: &ApiCaller, op: &str) -> ApiResult<()> {
    let target = super::reference_target(state, &caller.0, Permission::CalendarRead).await?;
    let action = Action::new(ActionKind::Read, Permission::CalendarRead, op, target);
    service::authorize(state, &caller.0, &action)
        .await
        .map(|_| ())
}

fn bad_query(r: QueryRejection) -> ApiError {
    let text = r.body_text();
    ApiError::bad_request(Problem::new(
        "request.invalid_query",
        format!("查询参数无效：{text}"),
        format!("invalid query parameters: {text}"),
    ))
}

fn bad_path(r: PathRejection) -> ApiError {
    let text = r.body_text();
    ApiError::bad_request(Problem::new(
        "request.invalid_path",
        format!("路径参数无效：{text}"),
        format!("invalid path parameters: {text}"),
    ))
}

pub(crate) fn parse_date(field: &str, s: &str) -> ApiResult<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(Problem::field(
            "request.invalid_date",
            field,
            format!("{field} 日期 {s:?} 无效，格式应为 YYYY-MM-DD"),
            format!("{field}: invalid date {s:?}, expected YYYY-MM-DD"),
        ))
    })
}

pub(crate) fn parse_instant(field: &str, s: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_request(Problem::field(
                "request.invalid_time",
                field,
                format!("{field} 时刻 {s:?} 无效，应为 RFC 3339（如 2026-03-02T10:00:00+08:00）"),
                format!(
                    "{field}: invalid instant {s:?}, expected RFC 3339 (e.g. 2026-03-02T10:00:00+08:00)"
                ),
            ))
        })
}

// ---------------------------------------------------------------- shapes

/// First and last covered dates.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CoverageOut {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl CoverageOut {
    pub fn of(c: Coverage) -> CoverageOut {
        CoverageOut {
            first: c.first,
            last: c.last,
        }
    }
}

/// A bilingual message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Message {
    pub message_zh: String,
    pub message_en: String,
}

/// A problem in a 200 answer (e.g. why a preview stopped).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemOut {
    pub code: String,
    pub message_zh: String,
    pub message_en: String,
}

impl ProblemOut {
    pub fn of(p: &Problem) -> ProblemOut {
        ProblemOut {
            code: p.code.to_string(),
            message_zh: p.message_zh.clone(),
            message_en: p.message_en.clone(),
        }
    }
}

/// The warning a UI shows when the data runs out within [`COVERAGE_WARNING_DAYS`] days.
pub fn coverage_warning(id: &str, cov: Coverage, today: NaiveDate) -> Option<Message> {
    if !cov.ends_within(today, COVERAGE_WARNING_DAYS) {
        return None;
    }
    let left = cov.days_remaining(today);
    Some(if left >= 0 {
        Message {
            message_zh: format!(
                "交易日历 {id} 的数据将于 {} 结束（还剩 {left} 天）：请导入下一年的休市安排，否则此后的日期一律按可能开市处理",
                cov.last
            ),
            message_en: format!(
                "calendar {id} data ends on {} ({left} days left): import next year's closure notice, or later dates are treated as possibly open",
                cov.last
            ),
        }
    } else {
        Message {
            message_zh: format!(
                "交易日历 {id} 的数据已于 {} 结束：请立即导入休市安排，此后的日期一律按可能开市处理",
                cov.last
            ),
            message_en: format!(
                "calendar {id} data ended on {}: import the closure notice now; later dates are treated as possibly open",
                cov.last
            ),
        }
    })
}

/// A loaded calendar.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarOut {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub timezone: String,
    /// Whether make-up workdays (调休上班日) are open (business calendars) or closed (exchanges).
    pub makeup_workdays_open: bool,
    pub coverage: CoverageOut,
    /// Days from today (in the calendar's time zone) to the last covered date.
    pub days_remaining: i64,
    /// Set when the data ends within 60 days.
    pub coverage_warning: Option<Message>,
}

pub fn calendar_out(cal: &Calendar, now: DateTime<Utc>) -> CalendarOut {
    let def = cal.definition();
    let cov = cal.coverage();
    let today = cal.local_date(&now);
    CalendarOut {
        id: def.id.clone(),
        name_zh: def.name_zh.clone(),
        name_en: def.name_en.clone(),
        timezone: def.timezone.name().to_string(),
        makeup_workdays_open: def.makeup_workdays_open,
        coverage: CoverageOut::of(cov),
        days_remaining: cov.days_remaining(today),
        coverage_warning: coverage_warning(&def.id, cov, today),
    }
}

/// One day of a calendar.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DayOut {
    pub date: NaiveDate,
    /// `mon` … `sun`.
    pub weekday: &'static str,
    pub trading: bool,
    /// `trading`, `weekend`, `holiday`, `makeup_workday`, `exchange_only`, `extraordinary`
    /// (or `non_trading` for a weekday a business calendar closes without a closure).
    pub kind: &'static str,
    /// The closure's or make-up day's reason.
    pub reason_zh: Option<String>,
    pub reason_en: Option<String>,
    /// What the day is, e.g. "春节休市" / "Spring Festival closure".
    pub description_zh: String,
    pub description_en: String,
}

fn weekday_key(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

pub fn day_out(info: &DayInfo) -> DayOut {
    let (kind, reason_zh, reason_en) = match &info.kind {
        DayKind::Weekday if info.open => ("trading", None, None),
        DayKind::Weekday => ("non_trading", None, None),
        DayKind::Weekend => ("weekend", None, None),
        DayKind::MakeupWorkday {
            reason_zh,
            reason_en,
        } => (
            "makeup_workday",
            Some(reason_zh.clone()),
            Some(reason_en.clone()),
        ),
        DayKind::Closure {
            reason_zh,
            reason_en,
            closure_kind,
            ..
        } => (
            match closure_kind {
                ballast_calendar::ClosureKind::PublicHoliday => "holiday",
                ballast_calendar::ClosureKind::ExchangeOnly => "exchange_only",
                ballast_calendar::ClosureKind::Extraordinary => "extraordinary",
            },
            Some(reason_zh.clone()),
            Some(reason_en.clone()),
        ),
    };
    DayOut {
        date: info.date,
        weekday: weekday_key(info.date.weekday()),
        trading: info.open,
        kind,
        reason_zh,
        reason_en,
        description_zh: info.describe_zh(),
        description_en: info.describe_en(),
    }
}

// ---------------------------------------------------------------- queries

/// The loaded calendars, their coverage and the 60-day warning.
#[utoipa::path(get, path = "/api/v1/calendars", tag = "calendar",
    responses((status = 200, body = [CalendarOut]), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_calendars(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<CalendarOut>>> {
    read_guard(&state, &caller, "calendar.list").await?;
    let set = state.calendar.calendars_api()?;
    let now = state.clock.now();
    Ok(Json(
        set.calendars().map(|c| calendar_out(c, now)).collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// First date, `YYYY-MM-DD`.
    pub from: Option<String>,
    /// Last date (inclusive), `YYYY-MM-DD`; at most 1000 days after `from`.
    pub to: Option<String>,
}

/// Every day in `[from, to]` with its kind and reason.
#[utoipa::path(get, path = "/api/v1/calendars/{id}/days", tag = "calendar",
    params(("id" = String, Path, description = "calendar id, e.g. sse"), RangeParams),
    responses((status = 200, body = [DayOut]), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn days(
    State(state): State<AppState>,
    caller: ApiCaller,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<RangeParams>, QueryRejection>,
) -> ApiResult<Json<Vec<DayOut>>> {
    read_guard(&state, &caller, "calendar.days").await?;
    let Path(id) = path.map_err(bad_path)?;
    let Query(q) = query.map_err(bad_query)?;
    let missing = |f: &str| {
        ApiError::bad_request(Problem::field(
            "request.missing_parameter",
            f,
            format!("缺少参数 {f}"),
            format!("missing parameter {f}"),
        ))
    };
    let from = parse_date("from", q.from.as_deref().ok_or_else(|| missing("from"))?)?;
    let to = parse_date("to", q.to.as_deref().ok_or_else(|| missing("to"))?)?;
    if from > to {
        return Err(api_error(&CalendarError::InvalidRange { from, to }));
    }
    if (to - from).num_days() >= MAX_RANGE_DAYS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Problem::new(
                "calendar.range_too_long",
                format!("日期范围过长：一次最多 {MAX_RANGE_DAYS} 天"),
                format!("the range is too long: at most {MAX_RANGE_DAYS} days per request"),
            ),
        ));
    }
    let set = state.calendar.calendars_api()?;
    let cal = set.get(&id).map_err(|e| api_error(&e))?;
    let mut out = Vec::new();
    for d in from.iter_days().take_while(|d| *d <= to) {
        out.push(day_out(&cal.day_info(d).map_err(|e| api_error(&e))?));
    }
    Ok(Json(out))
}

/// Whether a date is a trading day, with what the day is.
#[derive(Debug, Serialize, ToSchema)]
pub struct TradingDayOut {
    pub calendar: String,
    pub date: NaiveDate,
    pub trading: bool,
    pub day: DayOut,
}

/// Is `date` a trading day? (422 `calendar.not_covered` outside the data.)
#[utoipa::path(get, path = "/api/v1/calendars/{id}/is-trading-day/{date}", tag = "calendar",
    params(("id" = String, Path), ("date" = String, Path, description = "YYYY-MM-DD")),
    responses((status = 200, body = TradingDayOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn is_trading_day(
    State(state): State<AppState>,
    caller: ApiCaller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<TradingDayOut>> {
    read_guard(&state, &caller, "calendar.is_trading_day").await?;
    let Path((id, date)) = path.map_err(bad_path)?;
    let date = parse_date("date", &date)?;
    let set = state.calendar.calendars_api()?;
    let cal = set.get(&id).map_err(|e| api_error(&e))?;
    let info = cal.day_info(date).map_err(|e| api_error(&e))?;
    Ok(Json(TradingDayOut {
        calendar: id,
        date,
        trading: info.open,
        day: day_out(&info),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StepParams {
    /// How many trading days (1–366, default 1).
    pub n: Option<u32>,
}

/// The trading days after (or before) a date.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepOut {
    pub calendar: String,
    pub date: NaiveDate,
    pub n: u32,
    /// The N-th trading day strictly after (`next`) or before (`prev`) `date`: T+N / T−N.
    pub result: NaiveDate,
    /// The 1st … N-th, in the direction of travel.
    pub days: Vec<NaiveDate>,
}

async fn step(
    state: &AppState,
    caller: &ApiCaller,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<StepParams>, QueryRejection>,
    forward: bool,
) -> ApiResult<Json<StepOut>> {
    read_guard(
        state,
        caller,
        if forward {
            "calendar.next"
        } else {
            "calendar.prev"
        },
    )
    .await?;
    let Path((id, date)) = path.map_err(bad_path)?;
    let Query(q) = query.map_err(bad_query)?;
    let date = parse_date("date", &date)?;
    let n = q.n.unwrap_or(1);
    if !(1..=366).contains(&n) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Problem::field(
                "request.invalid_n",
                "n",
                "n 应在 1 到 366 之间",
                "n must be between 1 and 366",
            ),
        ));
    }
    let set = state.calendar.calendars_api()?;
    let cal = set.get(&id).map_err(|e| api_error(&e))?;
    let mut days = Vec::new();
    let mut d = date;
    for _ in 0..n {
        d = if forward {
            cal.next_trading_day(d)
        } else {
            cal.prev_trading_day(d)
        }
        .map_err(|e| api_error(&e))?;
        days.push(d);
    }
    Ok(Json(StepOut {
        calendar: id,
        date,
        n,
        result: d,
        days,
    }))
}

/// The next N trading days strictly after `date` (T+1 … T+N).
#[utoipa::path(get, path = "/api/v1/calendars/{id}/next/{date}", tag = "calendar",
    params(("id" = String, Path), ("date" = String, Path, description = "YYYY-MM-DD"), StepParams),
    responses((status = 200, body = StepOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn next(
    State(state): State<AppState>,
    caller: ApiCaller,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<StepParams>, QueryRejection>,
) -> ApiResult<Json<StepOut>> {
    step(&state, &caller, path, query, true).await
}

/// The previous N trading days strictly before `date` (T−1 … T−N).
#[utoipa::path(get, path = "/api/v1/calendars/{id}/prev/{date}", tag = "calendar",
    params(("id" = String, Path), ("date" = String, Path, description = "YYYY-MM-DD"), StepParams),
    responses((status = 200, body = StepOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn prev(
    State(state): State<AppState>,
    caller: ApiCaller,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<StepParams>, QueryRejection>,
) -> ApiResult<Json<StepOut>> {
    step(&state, &caller, path, query, false).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PhaseParams {
    /// RFC 3339 instant, e.g. `2026-03-02T10:00:00+08:00`; default now.
    pub at: Option<String>,
}

/// The market phase at an instant.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhaseOut {
    pub calendar: String,
    pub at: DateTime<Utc>,
    /// The instant in the calendar's time zone (`YYYY-MM-DDTHH:MM:SS`).
    pub local: String,
    /// `opening_call_auction`, `opening_pause`, `continuous_trading`, `lunch_break`,
    /// `closing_call_auction`, `after_hours` or `closed`.
    pub phase: &'static str,
    pub label_zh: &'static str,
    pub label_en: &'static str,
    /// `HH:MM` bounds of the current phase, if inside one.
    pub phase_start: Option<String>,
    pub phase_end: Option<String>,
    pub day: DayOut,
}

/// The market phase (auction, continuous trading, lunch break, closed…) at `at`.
#[utoipa::path(get, path = "/api/v1/calendars/{id}/phase", tag = "calendar",
    params(("id" = String, Path), PhaseParams),
    responses((status = 200, body = PhaseOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn phase(
    State(state): State<AppState>,
    caller: ApiCaller,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PhaseParams>, QueryRejection>,
) -> ApiResult<Json<PhaseOut>> {
    read_guard(&state, &caller, "calendar.phase").await?;
    let Path(id) = path.map_err(bad_path)?;
    let Query(q) = query.map_err(bad_query)?;
    let at = match q.at.as_deref() {
        Some(s) => parse_instant("at", s)?,
        None => state.clock.now(),
    };
    let set = state.calendar.calendars_api()?;
    let cal = set.get(&id).map_err(|e| api_error(&e))?;
    let p = cal.phase_at(&at).map_err(|e| api_error(&e))?;
    Ok(Json(PhaseOut {
        calendar: id,
        at,
        local: p.local.format("%Y-%m-%dT%H:%M:%S").to_string(),
        phase: p.phase.as_str(),
        label_zh: p.phase.label_zh(),
        label_en: p.phase.label_en(),
        phase_start: p.phase_start.map(|t| t.format("%H:%M").to_string()),
        phase_end: p.phase_end.map(|t| t.format("%H:%M").to_string()),
        day: day_out(&p.day),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewParams {
    /// The schedule expression, e.g. `30 8 * * * @trading`.
    pub expr: Option<String>,
    /// How many fire times (1–100, default 10).
    pub count: Option<usize>,
    /// Start instant (RFC 3339) or date (`YYYY-MM-DD`, midnight in the schedule's time zone);
    /// default now.
    pub from: Option<String>,
    /// Calendar id (default `sse`).
    pub calendar: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FireOut {
    pub at: DateTime<Utc>,
    /// The fire time in the schedule's time zone, RFC 3339.
    pub local: String,
    /// The day the calendar filter kept.
    pub anchor: NaiveDate,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SkipOut {
    pub date: NaiveDate,
    pub reason_zh: String,
    pub reason_en: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewOut {
    pub expression: String,
    pub calendar: String,
    pub timezone: String,
    pub description_zh: String,
    pub description_en: String,
    pub fires: Vec<FireOut>,
    /// Candidate days skipped because they are closures or make-up days.
    pub skipped: Vec<SkipOut>,
    /// `false` when the calendar data ended before `count` fire times.
    pub complete: bool,
    /// Why the preview stopped early (the data ends; never extrapolated).
    pub stopped: Option<ProblemOut>,
}

/// The next fire times of a calendar-aware schedule and the days it skips.
#[utoipa::path(get, path = "/api/v1/schedules/preview", tag = "calendar", params(PreviewParams),
    responses((status = 200, body = PreviewOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn schedule_preview(
    State(state): State<AppState>,
    caller: ApiCaller,
    query: Result<Query<PreviewParams>, QueryRejection>,
) -> ApiResult<Json<PreviewOut>> {
    read_guard(&state, &caller, "schedule.preview").await?;
    let Query(q) = query.map_err(bad_query)?;
    let expr = q.expr.as_deref().map(str::trim).unwrap_or_default();
    if expr.is_empty() {
        return Err(ApiError::bad_request(Problem::field(
            "request.missing_parameter",
            "expr",
            "缺少参数 expr（调度表达式）",
            "missing parameter expr (the schedule expression)",
        )));
    }
    let count = q.count.unwrap_or(10);
    if !(1..=100).contains(&count) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Problem::field(
                "request.invalid_count",
                "count",
                "count 应在 1 到 100 之间",
                "count must be between 1 and 100",
            ),
        ));
    }
    let id = q
        .calendar
        .as_deref()
        .unwrap_or(DEFAULT_CALENDAR)
        .to_string();
    let set = state.calendar.calendars_api()?;
    let cal = set.get(&id).map_err(|e| api_error(&e))?;
    let schedule =
        Schedule::parse_with_default_timezone(expr, cal.timezone()).map_err(|e| api_error(&e))?;
    let tz = schedule.timezone();
    let from = match q.from.as_deref().map(str::trim) {
        None | Some("") => state.clock.now(),
        Some(s) if s.len() == 10 => {
            let d = parse_date("from", s)?;
            ballast_calendar::calendar::start_of_day_utc(tz, d).ok_or_else(|| {
                ApiError::bad_request(Problem::field(
                    "request.invalid_date",
                    "from",
                    format!("{s} 在时区 {} 中不存在", tz.name()),
                    format!("{s} does not exist in {}", tz.name()),
                ))
            })?
        }
        Some(s) => parse_instant("from", s)?,
    };
    let p = preview(&schedule, cal, from, count).map_err(|e| api_error(&e))?;
    if p.fires.is_empty()
        && let Some(e) = &p.stopped
    {
        return Err(api_error(e));
    }
    Ok(Json(PreviewOut {
        expression: schedule.expression().to_string(),
        calendar: id,
        timezone: tz.name().to_string(),
        description_zh: schedule.describe_zh(),
        description_en: schedule.describe_en(),
        fires: p
            .fires
            .iter()
            .map(|f| FireOut {
                at: f.at,
                local: f.at.with_timezone(&tz).to_rfc3339(),
                anchor: f.anchor,
            })
            .collect(),
        skipped: p
            .skipped
            .iter()
            .map(|s| SkipOut {
                date: s.date,
                reason_zh: s.reason_zh.clone(),
                reason_en: s.reason_en.clone(),
            })
            .collect(),
        complete: p.stopped.is_none(),
        stopped: p.stopped.as_ref().map(|e| ProblemOut::of(&problem(e))),
    }))
}

// ---------------------------------------------------------------- import

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// `true` (default): validate and show the difference, write nothing. `false`: apply.
    pub dry_run: Option<String>,
    /// File name in `<data-dir>/calendars/` (default: from the content, e.g. `sse-szse-2027.toml`).
    pub name: Option<String>,
}

/// A closure in a diff.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClosureOut {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reason_zh: String,
    pub reason_en: String,
    /// `public_holiday`, `exchange_only` or `extraordinary`.
    pub kind: &'static str,
}

/// A make-up workday in a diff.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MakeupOut {
    pub date: NaiveDate,
    pub reason_zh: String,
    pub reason_en: String,
}

/// Validates a calendar file (TOML body) and shows the difference; with `dry_run=false` writes it
/// into the data directory, reloads, and audits `calendar.import`. Needs `calendar.manage`.
#[utoipa::path(post, path = "/api/v1/calendars/import", tag = "calendar", params(ImportParams),
    request_body(content = String, content_type = "application/toml", description = "a calendar definition or year file"),
    responses((status = 200, body = ImportReport), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    caller: ApiCaller,
    query: Result<Query<ImportParams>, QueryRejection>,
    body: Bytes,
) -> ApiResult<Json<ImportReport>> {
    let Query(q) = query.map_err(bad_query)?;
    let dry_run = match q.dry_run.as_deref().map(str::trim) {
        None | Some("") | Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(other) => {
            return Err(ApiError::bad_request(Problem::field(
                "request.invalid_query",
                "dry_run",
                format!("dry_run 应为 true 或 false，而不是 {other:?}"),
                format!("dry_run must be true or false, not {other:?}"),
            )));
        }
    };
    let text = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::bad_request(Problem::new(
            "calendar.not_utf8",
            "文件不是 UTF-8 文本",
            "the file is not UTF-8 text",
        ))
    })?;
    Ok(Json(
        super::import::import(&state, &caller.0, q.name.as_deref(), &text, dry_run).await?,
    ))
}

// ---------------------------------------------------------------- change windows

/// The change-window policies in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoliciesOut {
    /// Where the policies come from: `change-windows.toml` (relative to the data directory), or
    /// `builtin` when that file does not exist and the built-in default is in force (production
    /// blocked 09:00–15:30 on trading days).
    pub source: &'static str,
    /// Whether the built-in default is in force.
    pub builtin: bool,
    /// The calendar the guard evaluates against.
    pub calendar: &'static str,
    /// Why the policies did not load (the guard then refuses everything it governs).
    pub error: Option<ProblemOut>,
    #[schema(value_type = Object)]
    pub policies: serde_json::Value,
}

/// The loaded change-window policies.
#[utoipa::path(get, path = "/api/v1/change-windows/policies", tag = "change windows",
    responses((status = 200, body = PoliciesOut), (status = 403, body = ErrorBody)))]
pub async fn policies(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<PoliciesOut>> {
    read_guard(&state, &caller, "change_window.policies").await?;
    let ps = state.calendar.policy_state();
    let (policies, error) = match &ps.policies {
        Ok(p) => (serde_json::json!(p), None),
        Err(e) => (serde_json::json!([]), Some(ProblemOut::of(e))),
    };
    Ok(Json(PoliciesOut {
        source: match ps.source {
            super::PolicySource::BuiltIn => "builtin",
            super::PolicySource::File(_) => super::POLICY_FILE,
        },
        builtin: ps.source == super::PolicySource::BuiltIn,
        calendar: DEFAULT_CALENDAR,
        error,
        policies,
    }))
}

/// An operation to evaluate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    pub environment: String,
    pub business_system: Option<String>,
    pub tier: Option<String>,
    /// The operation kind (the guard uses the operation key, e.g. `job.run`).
    pub kind: Option<String>,
    /// RFC 3339; default now.
    pub at: Option<String>,
    /// Default `sse` (the calendar the guard uses).
    pub calendar: Option<String>,
}

/// The change window's decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluateOut {
    pub calendar: String,
    pub at: DateTime<Utc>,
    /// `allow`, `warn` (needs acknowledgement) or `block`.
    pub outcome: &'static str,
    /// The deciding policy (null when no rule applies).
    pub policy_id: Option<String>,
    pub rule_index: Option<usize>,
    pub reason_zh: String,
    pub reason_en: String,
    /// `false` when the date is outside the calendar data and the market was taken as possibly
    /// open (fail closed).
    pub calendar_covered: bool,
    /// The approved override that turned a warn/block into allow.
    pub override_id: Option<String>,
    pub overridden_outcome: Option<&'static str>,
}

pub fn evaluate_out(
    calendar: &str,
    at: DateTime<Utc>,
    d: &ballast_calendar::Decision,
) -> EvaluateOut {
    EvaluateOut {
        calendar: calendar.to_string(),
        at,
        outcome: d.outcome.as_str(),
        policy_id: d.policy_id.clone(),
        rule_index: d.rule_index,
        reason_zh: d.reason_zh.clone(),
        reason_en: d.reason_en.clone(),
        calendar_covered: d.calendar_covered,
        override_id: d.override_id.clone(),
        overridden_outcome: d.overridden_outcome.map(|o| o.as_str()),
    }
}

/// Evaluates the change window for an operation at an instant (what the guard would decide).
#[utoipa::path(post, path = "/api/v1/change-windows/evaluate", tag = "change windows", request_body = EvaluateRequest,
    responses((status = 200, body = EvaluateOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn evaluate(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(r): JsonBody<EvaluateRequest>,
) -> ApiResult<Json<EvaluateOut>> {
    read_guard(&state, &caller, "change_window.evaluate").await?;
    let at = match r.at.as_deref() {
        Some(s) => parse_instant("at", s)?,
        None => state.clock.now(),
    };
    let calendar = r.calendar.unwrap_or_else(|| DEFAULT_CALENDAR.to_string());
    // An unknown calendar is 404, a load problem 503.
    state
        .calendar
        .calendars_api()?
        .get(&calendar)
        .map_err(|e| api_error(&e))?;
    let ctx = OperationContext {
        environment: r.environment.trim().to_string(),
        business_system: r.business_system.unwrap_or_default().trim().to_string(),
        tier: r.tier.unwrap_or_default().trim().to_string(),
        kind: r.kind.unwrap_or_default().trim().to_string(),
    };
    let d = state
        .calendar
        .decide(&calendar, &ctx, at)
        .map_err(|p| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, p))?;
    Ok(Json(evaluate_out(&calendar, at, &d)))
}

/// An override with where it stands now.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverrideOut {
    #[serde(flatten)]
    pub record: OverrideRecord,
    /// `pending`, `scheduled`, `active` or `expired`.
    pub effective: &'static str,
}

/// A request for an emergency override.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequestBody {
    pub environment: String,
    pub business_system: Option<String>,
    pub tier: Option<String>,
    /// Operation key it covers (e.g. `job.run`); absent = any.
    pub kind: Option<String>,
    /// Required.
    pub reason: String,
    /// RFC 3339.
    pub valid_from: String,
    /// RFC 3339; at most 24 hours after `valid_from`.
    pub valid_until: String,
}

/// Requests an emergency override (needs `job.run` in the environment; audited
/// `override.request`). It has no effect until a second person approves it.
#[utoipa::path(post, path = "/api/v1/change-windows/overrides", tag = "change windows", request_body = OverrideRequestBody,
    responses((status = 201, body = OverrideOut), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn request_override(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(r): JsonBody<OverrideRequestBody>,
) -> ApiResult<(StatusCode, Json<OverrideOut>)> {
    let input = NewOverride {
        environment: r.environment,
        business_system: r.business_system,
        tier: r.tier,
        kind: r.kind,
        reason: r.reason,
        valid_from: parse_instant("valid_from", &r.valid_from)?,
        valid_until: parse_instant("valid_until", &r.valid_until)?,
    };
    let rec = super::overrides::request(&state, &caller.0, &input).await?;
    let effective = rec.effective(state.clock.now());
    Ok((
        StatusCode::CREATED,
        Json(OverrideOut {
            record: rec,
            effective,
        }),
    ))
}

/// Approves an override: needs `approval.approve`; refused for the requester
/// (`sod.self_approval`); audited `override.approve`.
#[utoipa::path(post, path = "/api/v1/change-windows/overrides/{id}/approve", tag = "change windows",
    params(("id" = String, Path, description = "override id, e.g. ovr-1a2b3c4d")),
    responses((status = 200, body = OverrideOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve_override(
    State(state): State<AppState>,
    caller: ApiCaller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<OverrideOut>> {
    let Path(id) = path.map_err(bad_path)?;
    let rec = super::overrides::approve(&state, &caller.0, &id).await?;
    let effective = rec.effective(state.clock.now());
    Ok(Json(OverrideOut {
        record: rec,
        effective,
    }))
}

/// Every override, newest first.
#[utoipa::path(get, path = "/api/v1/change-windows/overrides", tag = "change windows",
    responses((status = 200, body = [OverrideOut]), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_overrides(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<OverrideOut>>> {
    read_guard(&state, &caller, "change_window.override.list").await?;
    let now = state.clock.now();
    let records = state
        .calendar
        .override_records()
        .map_err(|p| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, p))?;
    Ok(Json(
        records
            .into_iter()
            .map(|record| OverrideOut {
                effective: record.effective(now),
                record,
            })
            .collect(),
    ))
}

/// The API routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/calendars", get(list_calendars))
        .route("/api/v1/calendars/import", post(import))
        .route("/api/v1/calendars/{id}/days", get(days))
        .route(
            "/api/v1/calendars/{id}/is-trading-day/{date}",
            get(is_trading_day),
        )
        .route("/api/v1/calendars/{id}/next/{date}", get(next))
        .route("/api/v1/calendars/{id}/prev/{date}", get(prev))
        .route("/api/v1/calendars/{id}/phase", get(phase))
        .route("/api/v1/schedules/preview", get(schedule_preview))
        .route("/api/v1/change-windows/policies", get(policies))
        .route("/api/v1/change-windows/evaluate", post(evaluate))
        .route(
            "/api/v1/change-windows/overrides",
            get(list_overrides).post(request_override),
        )
        .route(
            "/api/v1/change-windows/overrides/{id}/approve",
            post(approve_override),
        )
}
