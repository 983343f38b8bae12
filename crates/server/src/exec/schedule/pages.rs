//! The schedules' web pages: the list with the create form (and its preview of the next fire
//! times and skipped holidays), a schedule's page (its definition, an edit form, enable/disable,
//! delete, and its fire history with missed and refused fires standing out), and the missed-runs
//! report (every `missed`, `denied` and `failed` fire, newest first).
//!
//! Forms post to handlers that call `super::service` (guard pipeline + audit); a refused form is
//! shown again with what the person typed and the refusal. No JavaScript: the preview is a submit
//! button.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ballast_core::authz::Permission;
use ballast_store::{FireQuery, ScheduleFireRow};
use serde::Deserialize;

use super::service::{self, PreviewInput, PreviewOut, ScheduleInput, ScheduleView};
use super::{CATCH_UP_SKIP, REPORTED};
use crate::api::Id;
use crate::calendar::DEFAULT_CALENDAR;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::{Me, Page, Tr, back, html, ts};

#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    pub notice: Option<String>,
    pub error: Option<String>,
}

fn refusal(t: Tr, e: &ApiError) -> String {
    let field = e
        .problem
        .field
        .as_deref()
        .map(|f| format!(" ({f})"))
        .unwrap_or_default();
    format!("{}{field} [{}]", t.problem(&e.problem), e.problem.code)
}

/// The CSS class a fire outcome is shown with: missed and refused fires stand out.
pub fn outcome_class(o: &str) -> &'static str {
    match o {
        "started" | "caught_up" => "ok",
        "denied" | "failed" => "bad",
        "missed" => "denied",
        _ => "",
    }
}

/// Whether the reader may read jobs anywhere (the pages' own gate; the API checks per request).
async fn can_read(state: &AppState, page: &Page) -> bool {
    let Ok(target) =
        crate::calendar::reference_target(state, page.principal(), Permission::JobRead).await
    else {
        return false;
    };
    let action = ballast_core::guard::Action::new(
        ballast_core::guard::ActionKind::Read,
        Permission::JobRead,
        "schedule.list",
        target,
    );
    crate::service::authorize(state, page.principal(), &action)
        .await
        .is_ok()
}

fn forbidden(t: Tr) -> Response {
    (
        StatusCode::FORBIDDEN,
        t.pick("没有权限：需要 job.read", "forbidden: job.read is required")
            .to_string(),
    )
        .into_response()
}

/// What the schedule form shows (kept when the server refused it).
#[derive(Debug, Clone, Default)]
pub struct FormValues {
    pub name: String,
    pub plan: String,
    pub plan_version: String,
    pub environment: String,
    pub expression: String,
    pub calendar: String,
    pub vars: String,
    pub catch_up: String,
    pub enabled: bool,
}

impl FormValues {
    fn new() -> FormValues {
        FormValues {
            expression: "30 8 * * * @trading".into(),
            calendar: DEFAULT_CALENDAR.into(),
            catch_up: CATCH_UP_SKIP.into(),
            enabled: true,
            ..FormValues::default()
        }
    }

    fn of(v: &ScheduleView) -> FormValues {
        let vars = match &v.vars {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        };
        FormValues {
            name: v.name.clone(),
            plan: v.plan.clone(),
            plan_version: v.plan_version.map(|x| x.to_string()).unwrap_or_default(),
            environment: v.environment.clone(),
            expression: v.expression.clone(),
            calendar: v.calendar.clone(),
            vars,
            catch_up: v.catch_up.clone(),
            enabled: v.enabled,
        }
    }

    fn from_form(f: &[(String, String)]) -> FormValues {
        let get = |k: &str| {
            f.iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        FormValues {
            name: get("name"),
            plan: get("plan"),
            plan_version: get("plan_version"),
            environment: get("environment"),
            expression: get("expression"),
            calendar: get("calendar"),
            vars: get("vars").replace("\r\n", "\n"),
            catch_up: get("catch_up"),
            enabled: f.iter().any(|(k, _)| k == "enabled"),
        }
    }

    /// The API input; a malformed line or version is reported like the API would.
    fn input(&self) -> Result<ScheduleInput, ApiError> {
        let mut vars = BTreeMap::new();
        for (i, line) in self.vars.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(ApiError::bad_request(ballast_core::Problem::field(
                    "schedule.invalid_vars",
                    "vars",
                    format!("变量第 {} 行应为 名称=值", i + 1),
                    format!("variables line {} must be name=value", i + 1),
                )));
            };
            vars.insert(k.trim().to_string(), v.trim().to_string());
        }
        let plan_version = if self.plan_version.is_empty() {
            None
        } else {
            Some(self.plan_version.parse::<i64>().map_err(|_| {
                ApiError::bad_request(ballast_core::Problem::field(
                    "schedule.unknown_plan_version",
                    "plan_version",
                    format!("计划版本 {:?} 应为正整数", self.plan_version),
                    format!(
                        "plan version {:?} must be a positive integer",
                        self.plan_version
                    ),
                ))
            })?)
        };
        Ok(ScheduleInput {
            name: self.name.clone(),
            plan: self.plan.clone(),
            plan_version,
            environment: self.environment.clone(),
            expression: self.expression.clone(),
            calendar: Some(self.calendar.clone()),
            vars,
            catch_up: Some(self.catch_up.clone()),
            enabled: Some(self.enabled),
        })
    }
}

/// Choices the form offers.
pub struct Choices {
    pub plans: Vec<String>,
    pub environments: Vec<String>,
    pub calendars: Vec<String>,
}

async fn choices(state: &AppState) -> Choices {
    Choices {
        plans: state
            .store
            .plans()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.name)
            .collect(),
        environments: state.config.environments.clone(),
        calendars: state
            .calendar
            .calendars()
            .map(|set| set.ids().map(str::to_string).collect())
            .unwrap_or_else(|_| vec![DEFAULT_CALENDAR.to_string()]),
    }
}

fn preview_of(state: &AppState, v: &FormValues) -> (Option<PreviewOut>, Option<ApiError>) {
    let input = PreviewInput {
        expression: v.expression.clone(),
        calendar: Some(v.calendar.clone()),
        count: Some(5),
        from: None,
    };
    match service::preview(state, &input) {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e)),
    }
}

// ---------------------------------------------------------------- list and create

#[derive(Template)]
#[template(path = "exec_schedules.html")]
struct SchedulesPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    schedules: Vec<ScheduleLine>,
    form: FormValues,
    choices: Choices,
    preview: Option<PreviewOut>,
}

pub struct ScheduleLine {
    pub v: ScheduleView,
    pub next: String,
    pub last: String,
    pub class: &'static str,
}

async fn schedules_view(
    state: &AppState,
    page: Page,
    f: Flash,
    form: FormValues,
    preview: Option<PreviewOut>,
) -> Response {
    let mut error = f.error;
    let schedules = match service::list(state).await {
        Ok(list) => list
            .into_iter()
            .map(|v| ScheduleLine {
                next: ts(v.next_fire_at),
                last: ts(v.last_fire_at),
                class: outcome_class(v.last_outcome.as_deref().unwrap_or_default()),
                v,
            })
            .collect(),
        Err(e) => {
            error = Some(refusal(page.t, &e));
            Vec::new()
        }
    };
    let me = page.me();
    html(SchedulesPage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error,
        schedules,
        form,
        choices: choices(state).await,
        preview,
    })
}

async fn schedules_page(
    State(state): State<AppState>,
    page: Page,
    Query(f): Query<Flash>,
) -> Response {
    if !can_read(&state, &page).await {
        return forbidden(page.t);
    }
    let form = FormValues::new();
    let (preview, _) = preview_of(&state, &form);
    schedules_view(&state, page, f, form, preview).await
}

async fn post_schedules(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = f
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if let Some(r) = page.csrf_refusal(&csrf) {
        return r;
    }
    let form = FormValues::from_form(&f);
    let previewing = f.iter().any(|(k, v)| k == "action" && v == "preview");
    let (preview, preview_err) = preview_of(&state, &form);
    if previewing {
        let flash = Flash {
            error: preview_err.map(|e| refusal(page.t, &e)),
            ..Flash::default()
        };
        return schedules_view(&state, page, flash, form, preview).await;
    }
    let created = match form.input() {
        Ok(input) => service::create(&state, page.principal(), &input).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(id) => back(
            &format!("/schedules/{id}"),
            "notice",
            page.t.pick("已创建定时任务", "Schedule created"),
        ),
        Err(e) => {
            let status = e.status;
            let flash = Flash {
                error: Some(refusal(page.t, &e)),
                ..Flash::default()
            };
            let mut r = schedules_view(&state, page, flash, form, preview).await;
            if r.status().is_success() {
                *r.status_mut() = status;
            }
            r
        }
    }
}

// ---------------------------------------------------------------- one schedule

pub struct FireLine {
    pub f: ScheduleFireRow,
    pub scheduled: String,
    pub handled: String,
    pub class: &'static str,
    /// Missed or refused: the row stands out.
    pub alert: bool,
}

fn fire_line(f: ScheduleFireRow) -> FireLine {
    FireLine {
        scheduled: ts(Some(f.scheduled_at)),
        handled: ts(Some(f.handled_at)),
        class: outcome_class(&f.outcome),
        alert: REPORTED.contains(&f.outcome.as_str()),
        f,
    }
}

#[derive(Template)]
#[template(path = "exec_schedule.html")]
struct SchedulePage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    v: ScheduleView,
    next: String,
    last: String,
    created: String,
    updated: String,
    fires: Vec<FireLine>,
    form: FormValues,
    choices: Choices,
    preview: Option<PreviewOut>,
}

async fn schedule_view(
    state: &AppState,
    page: Page,
    id: i64,
    f: Flash,
    form: Option<FormValues>,
) -> Response {
    let s = match service::load(state, id).await {
        Ok(s) => s,
        Err(e) => return back("/schedules", "error", &refusal(page.t, &e)),
    };
    let fires = service::fires(state, id, 200).await.unwrap_or_default();
    let v = match service::view(state, &s, fires.first()).await {
        Ok(v) => v,
        Err(e) => return back("/schedules", "error", &refusal(page.t, &e)),
    };
    let form = form.unwrap_or_else(|| FormValues::of(&v));
    let (preview, _) = preview_of(state, &form);
    let me = page.me();
    html(SchedulePage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error: f.error,
        next: ts(v.next_fire_at),
        last: ts(v.last_fire_at),
        created: ts(Some(v.created_at)),
        updated: ts(Some(v.updated_at)),
        fires: fires.into_iter().map(fire_line).collect(),
        form,
        choices: choices(state).await,
        preview,
        v,
    })
}

async fn schedule_page(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Query(f): Query<Flash>,
) -> Response {
    if !can_read(&state, &page).await {
        return forbidden(page.t);
    }
    schedule_view(&state, page, id, f, None).await
}

async fn post_schedule(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| f.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    if let Some(r) = page.csrf_refusal(&get("csrf").unwrap_or_default()) {
        return r;
    }
    let here = format!("/schedules/{id}");
    let action = get("action").unwrap_or_default();
    let t = page.t;
    let result = match action.as_str() {
        "preview" => {
            let form = FormValues::from_form(&f);
            return schedule_view(&state, page, id, Flash::default(), Some(form)).await;
        }
        "delete" => {
            return match service::delete(&state, page.principal(), id).await {
                Ok(()) => back(
                    "/schedules",
                    "notice",
                    t.pick("已删除定时任务", "Schedule deleted"),
                ),
                Err(e) => back(&here, "error", &refusal(t, &e)),
            };
        }
        "enable" | "disable" => {
            // Same definition, the switch flipped.
            match service::load(&state, id).await {
                Ok(s) => match service::view(&state, &s, None).await {
                    Ok(v) => {
                        let mut form = FormValues::of(&v);
                        form.enabled = action == "enable";
                        match form.input() {
                            Ok(input) => {
                                service::update(&state, page.principal(), id, &input).await
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        _ => {
            let form = FormValues::from_form(&f);
            let done = match form.input() {
                Ok(input) => service::update(&state, page.principal(), id, &input).await,
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                let status = e.status;
                let flash = Flash {
                    error: Some(refusal(t, &e)),
                    ..Flash::default()
                };
                let mut r = schedule_view(&state, page, id, flash, Some(form)).await;
                if r.status().is_success() {
                    *r.status_mut() = status;
                }
                return r;
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => back(&here, "notice", t.pick("已保存", "Saved")),
        Err(e) => back(&here, "error", &refusal(t, &e)),
    }
}

// ---------------------------------------------------------------- missed-runs report

pub struct ReportLine {
    pub line: FireLine,
    pub schedule: String,
    pub environment: String,
}

#[derive(Template)]
#[template(path = "exec_schedules_missed.html")]
struct MissedPage {
    t: Tr,
    me: Option<Me>,
    notice: Option<String>,
    error: Option<String>,
    lines: Vec<ReportLine>,
}

async fn missed_page(
    State(state): State<AppState>,
    page: Page,
    Query(f): Query<Flash>,
) -> Response {
    if !can_read(&state, &page).await {
        return forbidden(page.t);
    }
    let mut error = f.error;
    let fires = match state
        .store
        .fires(&FireQuery {
            schedule_id: None,
            outcomes: REPORTED.iter().map(|o| o.to_string()).collect(),
            before_id: None,
            limit: 500,
        })
        .await
    {
        Ok(x) => x,
        Err(e) => {
            error = Some(refusal(page.t, &ApiError::from(e)));
            Vec::new()
        }
    };
    let schedules = state.store.schedules().await.unwrap_or_default();
    let lines = fires
        .into_iter()
        .map(|f| {
            let s = schedules.iter().find(|s| s.id == f.schedule_id);
            ReportLine {
                schedule: s.map_or_else(|| format!("#{}", f.schedule_id), |s| s.name.clone()),
                environment: s.map(|s| s.environment.clone()).unwrap_or_default(),
                line: fire_line(f),
            }
        })
        .collect();
    html(MissedPage {
        t: page.t,
        me: Some(page.me()),
        notice: f.notice,
        error,
        lines,
    })
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/schedules", get(schedules_page).post(post_schedules))
        .route("/schedules/missed", get(missed_page))
        .route("/schedules/{id}", get(schedule_page).post(post_schedule))
}
