//! Guarded operations on schedules: create, change, delete (each runs the guard pipeline and
//! commits with its audit record), preview, and the views the API and pages show.
//!
//! Who may: `job.run` in the schedule's environment (both environments when a change moves it),
//! because the schedule's runs are requested by its owner — whoever creates or last changes it —
//! and checked again, with the owner's roles at that moment, every time it fires. Changing a
//! schedule is not itself a change to the environment's systems, so the change window does not
//! apply to it (`schedule.` is platform administration in `calendar::guard`); it applies to every
//! run the schedule starts.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use ballast_calendar::{Calendar, Schedule};
use ballast_core::Problem;
use ballast_core::audit::Outcome;
use ballast_core::authz::{Permission, Target};
use ballast_core::guard::{Action, ActionKind, Principal};
use ballast_exec::{ParamType, PlanSpec};
use ballast_store::{FireQuery, PlanRow, ScheduleFireRow, ScheduleRow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CATCH_UP_RUN_ONCE, CATCH_UP_SKIP, next_after};
use crate::calendar::DEFAULT_CALENDAR;
use crate::error::{ApiError, ApiResult};
use crate::service::draft;
use crate::state::AppState;

/// Secret values are shown (and stored in `vars`) as this; sent back, it keeps the stored value.
pub const MASK: &str = "******";
const SEAL_PURPOSE: &str = "schedule-secrets";

/// A schedule to create, or the new definition of one.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// Unique; letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// The plan's name.
    pub plan: String,
    /// A fixed plan version; default: the plan's newest version when the schedule fires.
    #[serde(default)]
    pub plan_version: Option<i64>,
    pub environment: String,
    /// `<cron> [@filter[:N]] [+N|-N] [tz=Area/City]` (docs/CALENDAR.md), e.g. `30 8 * * * @trading`.
    pub expression: String,
    /// The exchange calendar of the filters; default `sse` (the change-window calendar).
    #[serde(default)]
    pub calendar: Option<String>,
    /// Values of the plan's variables. A secret is sealed at rest; `******` keeps the stored one.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// `skip` (default) or `run_once`: after an outage, run once for the latest missed occurrence.
    #[serde(default)]
    pub catch_up: Option<String>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A schedule as shown (secrets masked, never their sealed form).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleView {
    pub id: i64,
    pub name: String,
    pub plan: String,
    pub plan_id: i64,
    pub plan_version: Option<i64>,
    pub environment: String,
    pub expression: String,
    pub description_zh: String,
    pub description_en: String,
    pub calendar: String,
    #[schema(value_type = Object)]
    pub vars: serde_json::Value,
    pub catch_up: String,
    pub enabled: bool,
    pub owner: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
    pub last_fire_at: Option<DateTime<Utc>>,
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The newest fire's outcome and message.
    pub last_outcome: Option<String>,
    pub last_message: Option<String>,
}

fn bad(code: &'static str, field: &str, zh: String, en: String) -> ApiError {
    ApiError::bad_request(Problem::field(code, field, zh, en))
}

fn invalid(code: &'static str, field: &str, zh: String, en: String) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        Problem::field(code, field, zh, en),
    )
}

fn check_name(name: &str) -> ApiResult<()> {
    if crate::exec::service::is_valid_name(name) {
        Ok(())
    } else {
        Err(bad(
            "schedule.invalid_name",
            "name",
            format!("名称 {name:?} 无效：1–100 个字母、数字、-、_ 或 ."),
            format!("name {name:?} is invalid: 1–100 letters, digits, -, _ or ."),
        ))
    }
}

/// The calendar and the parsed expression, or an error naming the field.
pub fn parse_expression(
    state: &AppState,
    calendar: &str,
    expression: &str,
) -> ApiResult<(std::sync::Arc<ballast_calendar::CalendarSet>, Schedule)> {
    let set = state.calendar.calendars_api()?;
    let cal = set
        .get(calendar)
        .map_err(|e| invalid(e.code(), "calendar", e.message_zh(), e.message_en()))?;
    if expression.trim().is_empty() {
        return Err(bad(
            "schedule.expression_missing",
            "expression",
            "缺少调度表达式".into(),
            "the schedule expression is missing".into(),
        ));
    }
    let schedule = Schedule::parse_with_default_timezone(expression, cal.timezone())
        .map_err(|e| bad(e.code(), "expression", e.message_zh(), e.message_en()))?;
    Ok((set.clone(), schedule))
}

fn calendar_of<'a>(set: &'a ballast_calendar::CalendarSet, name: &str) -> ApiResult<&'a Calendar> {
    set.get(name)
        .map_err(|e| invalid(e.code(), "calendar", e.message_zh(), e.message_en()))
}

/// The first fire at or after `from`, or why it cannot be known (field `expression`).
fn first_fire(
    schedule: &Schedule,
    cal: &Calendar,
    from: DateTime<Utc>,
) -> ApiResult<DateTime<Utc>> {
    match next_after(schedule, cal, from) {
        Ok(Ok(f)) => Ok(f.at),
        Ok(Err(e)) | Err(e) => Err(invalid(
            e.code(),
            "expression",
            format!("无法计算下一次触发时间：{}", e.message_zh()),
            format!("cannot compute the next fire time: {}", e.message_en()),
        )),
    }
}

async fn load_plan(
    state: &AppState,
    name: &str,
    version: Option<i64>,
) -> ApiResult<(PlanRow, PlanSpec)> {
    let plan = state.store.plan_by_name(name).await?.ok_or_else(|| {
        bad(
            "schedule.unknown_plan",
            "plan",
            format!("作业计划 {name:?} 不存在"),
            format!("plan {name:?} does not exist"),
        )
    })?;
    let versions = state.store.plan_versions(plan.id).await?;
    let pv = match version {
        Some(v) => versions
            .into_iter()
            .find(|x| x.version == v)
            .ok_or_else(|| {
                bad(
                    "schedule.unknown_plan_version",
                    "plan_version",
                    format!("作业计划 {name} 没有版本 {v}"),
                    format!("plan {name} has no version {v}"),
                )
            })?,
        None => versions.into_iter().last().ok_or_else(|| {
            bad(
                "schedule.unknown_plan",
                "plan",
                format!("作业计划 {name} 没有版本"),
                format!("plan {name} has no version"),
            )
        })?,
    };
    let spec: PlanSpec = serde_json::from_value(pv.spec).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Problem::new(
                "plan.corrupt",
                format!("计划 {name} 数据损坏：{e}"),
                format!("plan {name} is corrupt: {e}"),
            ),
        )
    })?;
    Ok((plan, spec))
}

/// The stored values (masked) and the sealed secrets of a definition, after checking them
/// against the plan's variables. `******` for a secret keeps the one stored in `previous`.
fn vars_for(
    state: &AppState,
    spec: &PlanSpec,
    given: &BTreeMap<String, String>,
    previous: Option<&ScheduleRow>,
) -> ApiResult<(serde_json::Value, Option<String>)> {
    let old_secrets = match previous {
        Some(p) => stored_secrets(state, p).map_err(|m| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Problem::new("schedule.secrets_unreadable", m.clone(), m),
            )
        })?,
        None => BTreeMap::new(),
    };
    let mut values = given.clone();
    for d in &spec.variables {
        if matches!(d.ty, ParamType::Secret) && values.get(&d.name).is_some_and(|v| v == MASK) {
            match old_secrets.get(&d.name) {
                Some(v) => {
                    values.insert(d.name.clone(), v.clone());
                }
                None => {
                    values.remove(&d.name);
                }
            }
        }
    }
    if let Some(unknown) = values
        .keys()
        .find(|k| !spec.variables.iter().any(|d| &d.name == *k))
    {
        return Err(bad(
            "schedule.unknown_variable",
            &format!("vars.{unknown}"),
            format!("计划 {} 没有变量 {unknown}", spec.name),
            format!("plan {} has no variable {unknown}", spec.name),
        ));
    }
    // Checked as a run would check them (the run checks again at fire time).
    ballast_exec::resolve(&spec.variables, &values).map_err(|errs| {
        let en: Vec<String> = errs.iter().map(|e| e.message_en()).collect();
        let zh: Vec<String> = errs.iter().map(|e| e.message_zh()).collect();
        let field = errs
            .first()
            .map_or_else(|| "vars".to_string(), |e| format!("vars.{}", e.name()));
        let code = errs.first().map_or("params.invalid", |e| e.code());
        bad(code, &field, zh.join("；"), en.join("; "))
    })?;
    let mut shown = serde_json::Map::new();
    let mut secrets = BTreeMap::new();
    for (k, v) in &values {
        let secret = spec
            .variables
            .iter()
            .any(|d| &d.name == k && matches!(d.ty, ParamType::Secret));
        if secret {
            secrets.insert(k.clone(), v.clone());
            shown.insert(k.clone(), serde_json::Value::String(MASK.into()));
        } else {
            shown.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
    }
    let sealed = (!secrets.is_empty()).then(|| {
        state.exec.sealer.seal(
            SEAL_PURPOSE,
            serde_json::to_string(&secrets)
                .unwrap_or_default()
                .as_bytes(),
        )
    });
    Ok((serde_json::Value::Object(shown), sealed))
}

fn stored_secrets(state: &AppState, s: &ScheduleRow) -> Result<BTreeMap<String, String>, String> {
    let Some(sealed) = &s.secrets_sealed else {
        return Ok(BTreeMap::new());
    };
    let plain = state
        .exec
        .sealer
        .open(SEAL_PURPOSE, sealed)
        .map_err(|e| format!("schedule {} secret variables: {e}", s.name))?;
    serde_json::from_slice(&plain).map_err(|e| format!("schedule {} secret variables: {e}", s.name))
}

/// The variable values a fire sends (secrets unsealed; for the run request only).
pub fn stored_vars(state: &AppState, s: &ScheduleRow) -> Result<BTreeMap<String, String>, String> {
    let mut vars: BTreeMap<String, String> = match &s.vars {
        serde_json::Value::Object(m) => m
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    };
    vars.retain(|_, v| v != MASK);
    vars.extend(stored_secrets(state, s)?);
    Ok(vars)
}

/// An environment this deployment manages (checked before the guard, so the answer names the
/// field).
fn check_environment(state: &AppState, environment: &str) -> ApiResult<()> {
    if state.config.environments.iter().any(|e| e == environment) {
        return Ok(());
    }
    Err(bad(
        "environment.unknown",
        "environment",
        format!("环境 {environment} 不是本平台管理的环境"),
        format!("environment {environment} is not managed by this deployment"),
    ))
}

fn manage(op: &str, environment: &str) -> Action {
    Action::new(
        ActionKind::Mutate,
        Permission::JobRun,
        op,
        Target::environment(environment),
    )
}

fn catch_up_of(input: &ScheduleInput) -> ApiResult<String> {
    match input.catch_up.as_deref().unwrap_or(CATCH_UP_SKIP) {
        c @ (CATCH_UP_SKIP | CATCH_UP_RUN_ONCE) => Ok(c.to_string()),
        other => Err(bad(
            "schedule.invalid_catch_up",
            "catch_up",
            format!("补执行策略 {other:?} 无效，应为 skip 或 run_once"),
            format!("catch-up policy {other:?} is invalid: use skip or run_once"),
        )),
    }
}

/// Everything about a definition that does not depend on who asks: the row to store (id and
/// progress left to the caller).
async fn definition(
    state: &AppState,
    p: &Principal,
    input: &ScheduleInput,
    previous: Option<&ScheduleRow>,
) -> ApiResult<ScheduleRow> {
    check_name(&input.name)?;
    check_environment(state, &input.environment)?;
    let catch_up = catch_up_of(input)?;
    let calendar = input
        .calendar
        .clone()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_CALENDAR.to_string());
    let (set, schedule) = parse_expression(state, &calendar, &input.expression)?;
    let cal = calendar_of(&set, &calendar)?;
    let (plan, spec) = load_plan(state, &input.plan, input.plan_version).await?;
    let (vars, secrets_sealed) = vars_for(state, &spec, &input.vars, previous)?;
    let now = state.clock.now();
    let enabled = input.enabled.unwrap_or(true);
    let next = first_fire(&schedule, cal, now)?;
    Ok(ScheduleRow {
        id: 0,
        name: input.name.clone(),
        plan_id: plan.id,
        plan_version: input.plan_version,
        environment: input.environment.clone(),
        expression: schedule.canonical(),
        calendar,
        vars,
        secrets_sealed,
        catch_up,
        enabled,
        owner: p.user.username.clone(),
        created_by: p.user.username.clone(),
        created_at: now,
        updated_by: p.user.username.clone(),
        updated_at: now,
        last_fire_at: None,
        next_fire_at: enabled.then_some(next),
    })
}

fn audit_view(s: &ScheduleRow, plan: &str) -> serde_json::Value {
    serde_json::json!({
        "name": s.name, "plan": plan, "plan_version": s.plan_version,
        "environment": s.environment, "expression": s.expression, "calendar": s.calendar,
        "vars": s.vars, "catch_up": s.catch_up, "enabled": s.enabled, "owner": s.owner,
        "next_fire_at": s.next_fire_at,
    })
}

fn name_taken(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        Problem::field(
            "schedule.exists",
            "name",
            format!("定时任务 {name} 已存在"),
            format!("schedule {name} already exists"),
        ),
    )
}

/// Creates a schedule owned by the caller. Returns its id.
pub async fn create(state: &AppState, p: &Principal, input: &ScheduleInput) -> ApiResult<i64> {
    check_environment(state, &input.environment)?;
    crate::service::authorize(state, p, &manage("schedule.create", &input.environment)).await?;
    let row = definition(state, p, input, None).await?;
    if state.store.schedule_by_name(&row.name).await?.is_some() {
        return Err(name_taken(&row.name));
    }
    let mut tx = state.store.begin().await?;
    let id = tx.insert_schedule(&row).await?;
    let d = draft(p, "schedule.create", "schedule", Outcome::Success)
        .object(id)
        .environment(Some(row.environment.clone()))
        .after(audit_view(&row, &input.plan));
    tx.commit(vec![d], row.updated_at).await?;
    Ok(id)
}

pub async fn load(state: &AppState, id: i64) -> ApiResult<ScheduleRow> {
    state
        .store
        .schedule(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("schedule {id}")))
}

/// Replaces a schedule's definition; the caller becomes its owner. Occurrences before the change
/// are not "missed" by it: the scheduler starts over from the change.
pub async fn update(
    state: &AppState,
    p: &Principal,
    id: i64,
    input: &ScheduleInput,
) -> ApiResult<()> {
    let old = load(state, id).await?;
    crate::service::authorize(state, p, &manage("schedule.update", &old.environment)).await?;
    if input.environment != old.environment {
        check_environment(state, &input.environment)?;
        crate::service::authorize(state, p, &manage("schedule.update", &input.environment)).await?;
    }
    let mut row = definition(state, p, input, Some(&old)).await?;
    if row.name != old.name && state.store.schedule_by_name(&row.name).await?.is_some() {
        return Err(name_taken(&row.name));
    }
    row.id = old.id;
    row.created_by = old.created_by.clone();
    row.created_at = old.created_at;
    row.last_fire_at = old.last_fire_at;
    let old_plan = state
        .store
        .plan_by_id(old.plan_id)
        .await?
        .map(|x| x.name)
        .unwrap_or_default();
    let mut tx = state.store.begin().await?;
    tx.update_schedule(&row).await?;
    let d = draft(p, "schedule.update", "schedule", Outcome::Success)
        .object(id)
        .environment(Some(row.environment.clone()))
        .before(audit_view(&old, &old_plan))
        .after(audit_view(&row, &input.plan));
    tx.commit(vec![d], row.updated_at).await?;
    Ok(())
}

/// Deletes a schedule and its fire history (the audit log keeps its definition).
pub async fn delete(state: &AppState, p: &Principal, id: i64) -> ApiResult<()> {
    let old = load(state, id).await?;
    crate::service::authorize(state, p, &manage("schedule.delete", &old.environment)).await?;
    let plan = state
        .store
        .plan_by_id(old.plan_id)
        .await?
        .map(|x| x.name)
        .unwrap_or_default();
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.delete_schedule(id).await?;
    let d = draft(p, "schedule.delete", "schedule", Outcome::Success)
        .object(id)
        .environment(Some(old.environment.clone()))
        .before(audit_view(&old, &plan));
    tx.commit(vec![d], now).await?;
    Ok(())
}

/// A schedule as the API and pages show it.
pub async fn view(
    state: &AppState,
    s: &ScheduleRow,
    last: Option<&ScheduleFireRow>,
) -> ApiResult<ScheduleView> {
    let plan = state
        .store
        .plan_by_id(s.plan_id)
        .await?
        .map(|x| x.name)
        .unwrap_or_else(|| format!("#{}", s.plan_id));
    let (zh, en) = match state.calendar.calendars().ok().and_then(|set| {
        set.get(&s.calendar)
            .ok()
            .map(|c| Schedule::parse_with_default_timezone(&s.expression, c.timezone()))
    }) {
        Some(Ok(x)) => (x.describe_zh(), x.describe_en()),
        _ => (String::new(), String::new()),
    };
    Ok(ScheduleView {
        id: s.id,
        name: s.name.clone(),
        plan,
        plan_id: s.plan_id,
        plan_version: s.plan_version,
        environment: s.environment.clone(),
        expression: s.expression.clone(),
        description_zh: zh,
        description_en: en,
        calendar: s.calendar.clone(),
        vars: s.vars.clone(),
        catch_up: s.catch_up.clone(),
        enabled: s.enabled,
        owner: s.owner.clone(),
        created_by: s.created_by.clone(),
        created_at: s.created_at,
        updated_by: s.updated_by.clone(),
        updated_at: s.updated_at,
        last_fire_at: s.last_fire_at,
        next_fire_at: s.next_fire_at,
        last_outcome: last.map(|f| f.outcome.clone()),
        last_message: last.map(|f| f.message.clone()),
    })
}

/// Every schedule, by name, with its newest fire.
pub async fn list(state: &AppState) -> ApiResult<Vec<ScheduleView>> {
    let latest = state.store.latest_fires().await?;
    let mut out = Vec::new();
    for s in state.store.schedules().await? {
        let last = latest.iter().find(|f| f.schedule_id == s.id);
        out.push(view(state, &s, last).await?);
    }
    Ok(out)
}

/// The newest fires of one schedule.
pub async fn fires(state: &AppState, id: i64, limit: u32) -> ApiResult<Vec<ScheduleFireRow>> {
    Ok(state
        .store
        .fires(&FireQuery {
            schedule_id: Some(id),
            outcomes: Vec::new(),
            before_id: None,
            limit,
        })
        .await?)
}

/// A preview request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    pub expression: String,
    /// Default `sse`.
    #[serde(default)]
    pub calendar: Option<String>,
    /// How many fire times (1–50, default 5).
    #[serde(default)]
    pub count: Option<usize>,
    /// From when (RFC 3339); default now.
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
}

/// One fire time of a preview.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewFire {
    pub at: DateTime<Utc>,
    /// In the schedule's time zone.
    pub local: String,
}

/// A day the calendar makes the schedule skip.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewSkip {
    pub date: chrono::NaiveDate,
    pub reason_zh: String,
    pub reason_en: String,
}

/// The next fire times of an expression and the holidays it skips.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewOut {
    /// Canonical form (what is stored).
    pub expression: String,
    pub calendar: String,
    pub description_zh: String,
    pub description_en: String,
    pub fires: Vec<PreviewFire>,
    pub skipped: Vec<PreviewSkip>,
    /// Set when the calendar data ends before `count` fire times (never extrapolated).
    pub stopped_zh: Option<String>,
    pub stopped_en: Option<String>,
}

pub fn preview(state: &AppState, input: &PreviewInput) -> ApiResult<PreviewOut> {
    let calendar = input
        .calendar
        .clone()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_CALENDAR.to_string());
    let count = input.count.unwrap_or(5);
    if !(1..=50).contains(&count) {
        return Err(invalid(
            "request.invalid_count",
            "count",
            "count 应在 1 到 50 之间".into(),
            "count must be between 1 and 50".into(),
        ));
    }
    let (set, schedule) = parse_expression(state, &calendar, &input.expression)?;
    let cal = calendar_of(&set, &calendar)?;
    let from = input.from.unwrap_or_else(|| state.clock.now());
    let p = ballast_calendar::preview(&schedule, cal, from, count)
        .map_err(|e| invalid(e.code(), "expression", e.message_zh(), e.message_en()))?;
    let tz = schedule.timezone();
    Ok(PreviewOut {
        expression: schedule.canonical(),
        calendar,
        description_zh: schedule.describe_zh(),
        description_en: schedule.describe_en(),
        fires: p
            .fires
            .iter()
            .map(|f| PreviewFire {
                at: f.at,
                local: f
                    .at
                    .with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M:%S %a")
                    .to_string(),
            })
            .collect(),
        skipped: p
            .skipped
            .iter()
            .map(|s| PreviewSkip {
                date: s.date,
                reason_zh: s.reason_zh.clone(),
                reason_en: s.reason_en.clone(),
            })
            .collect(),
        stopped_zh: p.stopped.as_ref().map(|e| e.message_zh()),
        stopped_en: p.stopped.as_ref().map(|e| e.message_en()),
    })
}
