//! The calendar page `/calendar`: a month grid (Monday–Sunday) marking trading days, holidays,
//! make-up workdays and exchange-only closures; the coverage warning for administrators; the
//! change-window policies, an evaluation form and the emergency overrides (request, approve).
//! No JavaScript: links and forms.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ballast_calendar::{Calendar, OperationContext, Tz};
use ballast_core::authz::{self, Permission, Target};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;

use super::api::{coverage_warning, day_out};
use super::overrides::{NewOverride, OverrideRecord, OverrideStatus};
use super::{DEFAULT_CALENDAR, POLICY_FILE, PolicySource, problem};
use crate::state::AppState;
use crate::ui::{Lang, Me, Page, Tr, html};

/// Asia/Shanghai: times on this page are Beijing times.
const BEIJING: Tz = Tz::Asia__Shanghai;

fn pick(t: Tr, zh: &str, en: &str) -> String {
    if t.0 == Lang::Zh {
        zh.to_string()
    } else {
        en.to_string()
    }
}

/// One day cell of the month grid.
pub struct Cell {
    pub date: String,
    pub day: u32,
    /// CSS class: `trading`, `weekend`, `holiday`, `makeup`, `exchange-only`, `extraordinary`,
    /// `non-trading`.
    pub class: &'static str,
    /// API kind (`makeup_workday`, …), also in `data-kind`.
    pub kind: &'static str,
    pub kind_label: &'static str,
    /// The reason (holiday name), if any.
    pub reason: String,
    /// The full description (tooltip).
    pub title: String,
    pub today: bool,
}

pub struct CalLink {
    pub id: String,
    pub name: String,
    pub href: String,
    pub current: bool,
}

pub struct EvalResult {
    pub outcome: &'static str,
    pub class: &'static str,
    pub reason: String,
    pub policy: String,
    pub covered: bool,
}

pub struct OverrideRow {
    pub id: String,
    pub scope: String,
    pub reason: String,
    pub requester: String,
    pub valid: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub approver: String,
    pub can_approve: bool,
}

#[derive(Template)]
#[template(path = "calendar.html")]
struct CalendarPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    calendars: Vec<CalLink>,
    cal_id: String,
    month: String,
    coverage_text: String,
    coverage_warning: Option<String>,
    load_error: Option<String>,
    error: Option<String>,
    notice: Option<String>,
    month_label: String,
    prev_href: String,
    next_href: String,
    weekdays: Vec<&'static str>,
    weeks: Vec<Vec<Option<Cell>>>,
    month_error: Option<String>,
    legend: Vec<(&'static str, &'static str)>,
    policy_text: String,
    policy_ok: bool,
    policies: Vec<(String, String)>,
    environments: Vec<String>,
    eval_env: String,
    eval_bs: String,
    eval_tier: String,
    eval_kind: String,
    eval_at: String,
    eval_result: Option<EvalResult>,
    overrides: Vec<OverrideRow>,
    overrides_error: Option<String>,
    can_request: bool,
    default_from: String,
    default_until: String,
}

/// Whether any of the person's roles (in any scope) holds `perm`.
fn holds_anywhere(page: &Page, perm: Permission) -> bool {
    let p = &page.s.principal;
    p.bindings.iter().any(|b| {
        page.roles.iter().any(|r| {
            r.key == b.role && r.permissions.contains(&perm) && r.allows_source(p.source_ip)
        })
    })
}

fn kind_class(kind: &str) -> &'static str {
    match kind {
        "trading" => "trading",
        "weekend" => "weekend",
        "holiday" => "holiday",
        "makeup_workday" => "makeup",
        "exchange_only" => "exchange-only",
        "extraordinary" => "extraordinary",
        _ => "non-trading",
    }
}

fn kind_label(t: Tr, kind: &str) -> &'static str {
    t.s(match kind {
        "trading" => "cal.kind.trading",
        "weekend" => "cal.kind.weekend",
        "holiday" => "cal.kind.holiday",
        "makeup_workday" => "cal.kind.makeup_workday",
        "exchange_only" => "cal.kind.exchange_only",
        "extraordinary" => "cal.kind.extraordinary",
        _ => "cal.kind.non_trading",
    })
}

fn parse_month(s: &str) -> Option<(i32, u32)> {
    let (y, m) = s.trim().split_once('-')?;
    let y: i32 = y.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    ((1900..=2200).contains(&y) && (1..=12).contains(&m)).then_some((y, m))
}

fn shift_month(y: i32, m: u32, by: i32) -> (i32, u32) {
    let idx = y * 12 + i32::try_from(m).unwrap_or(1) - 1 + by;
    (
        idx.div_euclid(12),
        u32::try_from(idx.rem_euclid(12)).unwrap_or(0) + 1,
    )
}

/// The month's weeks, Monday first; `None` for days of the neighbouring months.
fn month_grid(
    t: Tr,
    cal: &Calendar,
    y: i32,
    m: u32,
    today: NaiveDate,
) -> Result<Vec<Vec<Option<Cell>>>, ballast_calendar::CalendarError> {
    let first =
        NaiveDate::from_ymd_opt(y, m, 1).ok_or(ballast_calendar::CalendarError::InvalidPeriod {
            unit: "month",
            unit_zh: "月份",
            value: m,
        })?;
    let lead = first.weekday().num_days_from_monday() as usize;
    let mut cells: Vec<Option<Cell>> = (0..lead).map(|_| None).collect();
    for d in first.iter_days().take_while(|d| d.month() == m) {
        let info = cal.day_info(d)?;
        let out = day_out(&info);
        let (reason, title) = if t.0 == Lang::Zh {
            (out.reason_zh.unwrap_or_default(), out.description_zh)
        } else {
            (out.reason_en.unwrap_or_default(), out.description_en)
        };
        cells.push(Some(Cell {
            date: d.to_string(),
            day: d.day(),
            class: kind_class(out.kind),
            kind: out.kind,
            kind_label: kind_label(t, out.kind),
            reason,
            title,
            today: d == today,
        }));
    }
    while !cells.len().is_multiple_of(7) {
        cells.push(None);
    }
    let mut weeks = Vec::new();
    let mut it = cells.into_iter().peekable();
    while it.peek().is_some() {
        weeks.push(it.by_ref().take(7).collect());
    }
    Ok(weeks)
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&BEIJING)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn input_local(t: DateTime<Utc>) -> String {
    t.with_timezone(&BEIJING)
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

/// A `datetime-local` value (or RFC 3339) as an instant; local values are Beijing time.
fn parse_local(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let n = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
        .ok()?;
    BEIJING
        .from_local_datetime(&n)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn status_label(t: Tr, effective: &str) -> (&'static str, &'static str) {
    match effective {
        "pending" => (t.s("cal.ov.pending"), "denied"),
        "scheduled" => (t.s("cal.ov.scheduled"), ""),
        "active" => (t.s("cal.ov.active"), "ok"),
        _ => (t.s("cal.ov.expired"), "bad"),
    }
}

fn override_row(
    t: Tr,
    r: &OverrideRecord,
    now: DateTime<Utc>,
    me_id: i64,
    can_approve: bool,
) -> OverrideRow {
    let any = pick(t, "任意", "any");
    let effective = r.effective(now);
    let (status, status_class) = status_label(t, effective);
    OverrideRow {
        id: r.id.clone(),
        scope: format!(
            "{} / {} / {} / {}",
            r.environment,
            r.business_system.clone().unwrap_or_else(|| any.clone()),
            r.tier.clone().unwrap_or_else(|| any.clone()),
            r.kind.clone().unwrap_or_else(|| any.clone())
        ),
        reason: r.reason.clone(),
        requester: r.requester.clone(),
        valid: format!("{} – {}", local(r.valid_from), local(r.valid_until)),
        status,
        status_class,
        approver: r.approver.clone().unwrap_or_default(),
        can_approve: can_approve
            && r.status == OverrideStatus::Pending
            && effective != "expired"
            && r.requester_id != me_id,
    }
}

fn href(cal: &str, month: &str) -> String {
    format!("/calendar?calendar={cal}&month={month}")
}

/// Renders the page for the query `q`, with an optional notice or error from a form.
async fn render(
    state: &AppState,
    page: &Page,
    q: &HashMap<String, String>,
    notice: Option<String>,
    error: Option<String>,
    mut status: StatusCode,
) -> Response {
    let t = page.t;
    let target =
        match super::reference_target(state, &page.s.principal, Permission::CalendarRead).await {
            Ok(t) => t,
            Err(e) => return e.into_response(),
        };
    let action = ballast_core::guard::Action::new(
        ballast_core::guard::ActionKind::Read,
        Permission::CalendarRead,
        "calendar.page",
        target,
    );
    if let Err(e) = crate::service::authorize(state, &page.s.principal, &action).await {
        return (e.status, t.problem(&e.problem)).into_response();
    }
    let get = |k: &str| q.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let now = state.clock.now();
    let rt = &state.calendar;
    let mut error = error;
    let mut cal_id = get("calendar");
    if cal_id.is_empty() {
        cal_id = DEFAULT_CALENDAR.to_string();
    }
    let today = now.with_timezone(&BEIJING).date_naive();
    let (mut y, mut m) = (today.year(), today.month());
    let month_q = get("month");
    if !month_q.is_empty() {
        match parse_month(&month_q) {
            Some(ym) => (y, m) = ym,
            None => {
                error = Some(pick(
                    t,
                    &format!("月份 {month_q:?} 无效，格式应为 YYYY-MM"),
                    &format!("invalid month {month_q:?}: expected YYYY-MM"),
                ));
                status = StatusCode::BAD_REQUEST;
            }
        }
    }
    let month = format!("{y:04}-{m:02}");
    let (py, pm) = shift_month(y, m, -1);
    let (ny, nm) = shift_month(y, m, 1);
    let can_manage = authz::is_allowed(
        &page.s.principal.bindings,
        &page.roles,
        Permission::CalendarManage,
        &Target::global(),
        page.s.principal.source_ip,
    );
    let mut calendars = Vec::new();
    let mut coverage_text = String::new();
    let mut warning = None;
    let mut load_error = None;
    let mut weeks = Vec::new();
    let mut month_error = None;
    match rt.calendars() {
        Err(p) => {
            load_error = Some(t.problem(&p));
            status = StatusCode::SERVICE_UNAVAILABLE;
        }
        Ok(set) => {
            for c in set.calendars() {
                let d = c.definition();
                calendars.push(CalLink {
                    id: d.id.clone(),
                    name: pick(t, &d.name_zh, &d.name_en),
                    href: href(&d.id, &month),
                    current: d.id == cal_id,
                });
            }
            match set.get(&cal_id) {
                Err(e) => {
                    month_error = Some(t.problem(&problem(&e)));
                    status = StatusCode::NOT_FOUND;
                }
                Ok(cal) => {
                    let cov = cal.coverage();
                    let left = cov.days_remaining(today);
                    coverage_text = pick(
                        t,
                        &format!("数据覆盖 {} 至 {}（还剩 {left} 天）", cov.first, cov.last),
                        &format!(
                            "data covers {} to {} ({left} days left)",
                            cov.first, cov.last
                        ),
                    );
                    if can_manage {
                        warning = coverage_warning(&cal_id, cov, today)
                            .map(|w| pick(t, &w.message_zh, &w.message_en));
                    }
                    match month_grid(t, cal, y, m, today) {
                        Ok(w) => weeks = w,
                        Err(e) => {
                            month_error = Some(t.problem(&problem(&e)));
                            if status == StatusCode::OK {
                                status = StatusCode::UNPROCESSABLE_ENTITY;
                            }
                        }
                    }
                }
            }
        }
    }

    // Policies.
    let ps = rt.policy_state();
    let (policy_ok, policy_text, policies) = match &ps.policies {
        Err(p) => (
            false,
            format!("{} {}", t.s("cal.policy.error"), t.problem(p)),
            Vec::new(),
        ),
        Ok(list) => {
            let text = if ps.source == PolicySource::BuiltIn {
                pick(
                    t,
                    &format!(
                        "数据目录中没有 {POLICY_FILE}：内置默认策略生效（按交易日历 {DEFAULT_CALENDAR} 评估），生产环境交易时段禁止变更。写入 {POLICY_FILE} 以配置本机构的变更窗口；只含 schema = 1 的文件表示不限制。"
                    ),
                    &format!(
                        "No {POLICY_FILE} in the data directory: the built-in default policy is in force (evaluated against calendar {DEFAULT_CALENDAR}), blocking changes to production during market hours. Write {POLICY_FILE} to configure your own change windows; a file with only schema = 1 restricts nothing."
                    ),
                )
            } else if list.is_empty() {
                pick(
                    t,
                    &format!("{POLICY_FILE} 中没有策略：变更窗口不限制任何操作。"),
                    &format!(
                        "{POLICY_FILE} holds no policies: the change window restricts nothing."
                    ),
                )
            } else {
                pick(
                    t,
                    &format!(
                        "已从数据目录的 {POLICY_FILE} 加载 {} 条变更窗口策略（按交易日历 {DEFAULT_CALENDAR} 评估）。",
                        list.len()
                    ),
                    &format!(
                        "{} change-window policies loaded from {POLICY_FILE} in the data directory (evaluated against calendar {DEFAULT_CALENDAR}).",
                        list.len()
                    ),
                )
            };
            let described = list
                .iter()
                .map(|p| {
                    let d = if t.0 == Lang::Zh {
                        p.description_zh
                            .clone()
                            .or_else(|| p.description_en.clone())
                    } else {
                        p.description_en
                            .clone()
                            .or_else(|| p.description_zh.clone())
                    };
                    (p.id.clone(), d.unwrap_or_default())
                })
                .collect();
            (true, text, described)
        }
    };

    // Evaluation form.
    let eval_env = get("eval_env");
    let (eval_bs, eval_tier, eval_kind) = (get("eval_bs"), get("eval_tier"), get("eval_kind"));
    let mut eval_at = get("eval_at");
    let mut eval_result = None;
    if !eval_env.is_empty() {
        match if eval_at.is_empty() {
            Some(now)
        } else {
            parse_local(&eval_at)
        } {
            None => {
                error = Some(pick(
                    t,
                    &format!("时间 {eval_at:?} 无效，格式应为 YYYY-MM-DDTHH:MM（北京时间）"),
                    &format!("invalid time {eval_at:?}: expected YYYY-MM-DDTHH:MM (Beijing time)"),
                ));
            }
            Some(at) => {
                let ctx = OperationContext {
                    environment: eval_env.clone(),
                    business_system: eval_bs.clone(),
                    tier: eval_tier.clone(),
                    kind: eval_kind.clone(),
                };
                match rt.decide(DEFAULT_CALENDAR, &ctx, at) {
                    Ok(d) => {
                        eval_result = Some(EvalResult {
                            outcome: d.outcome.as_str(),
                            class: match d.outcome {
                                ballast_calendar::Outcome::Allow => "ok",
                                ballast_calendar::Outcome::Warn => "denied",
                                ballast_calendar::Outcome::Block => "bad",
                            },
                            reason: pick(t, &d.reason_zh, &d.reason_en),
                            policy: d.policy_id.clone().unwrap_or_else(|| "—".into()),
                            covered: d.calendar_covered,
                        });
                    }
                    Err(p) => error = Some(t.problem(&p)),
                }
                eval_at = input_local(at);
            }
        }
    }
    if eval_at.is_empty() {
        eval_at = input_local(now);
    }

    // Overrides.
    let can_approve = holds_anywhere(page, Permission::ApprovalApprove);
    let me_id = page.s.principal.user.id;
    let (overrides, overrides_error) = match rt.override_records() {
        Ok(list) => (
            list.iter()
                .map(|r| override_row(t, r, now, me_id, can_approve))
                .collect(),
            None,
        ),
        Err(p) => (Vec::new(), Some(t.problem(&p))),
    };

    let weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| t.s(&format!("cal.wd.{d}")))
        .collect();
    let legend = [
        "trading",
        "weekend",
        "holiday",
        "makeup_workday",
        "exchange_only",
        "extraordinary",
    ]
    .iter()
    .map(|k| (kind_class(k), kind_label(t, k)))
    .collect();
    let me = page.me();
    let mut r = html(CalendarPage {
        t,
        csrf: me.csrf.clone(),
        me: Some(me),
        month_label: if t.0 == Lang::Zh {
            format!("{y} 年 {m} 月")
        } else {
            month.clone()
        },
        prev_href: href(&cal_id, &format!("{py:04}-{pm:02}")),
        next_href: href(&cal_id, &format!("{ny:04}-{nm:02}")),
        calendars,
        cal_id,
        month,
        coverage_text,
        coverage_warning: warning,
        load_error,
        error,
        notice,
        weekdays,
        weeks,
        month_error,
        legend,
        policy_text,
        policy_ok,
        policies,
        environments: state.config.environments.clone(),
        eval_env,
        eval_bs,
        eval_tier,
        eval_kind,
        eval_at,
        eval_result,
        overrides,
        overrides_error,
        can_request: holds_anywhere(page, Permission::JobRun),
        default_from: input_local(now),
        default_until: input_local(now + chrono::Duration::hours(2)),
    });
    *r.status_mut() = status;
    r
}

async fn get_calendar(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    render(&state, &page, &q, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct OverrideForm {
    csrf: String,
    environment: String,
    business_system: Option<String>,
    tier: Option<String>,
    kind: Option<String>,
    reason: String,
    valid_from: String,
    valid_until: String,
}

async fn post_override(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<OverrideForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let t = page.t;
    let q = HashMap::new();
    let (Some(valid_from), Some(valid_until)) =
        (parse_local(&f.valid_from), parse_local(&f.valid_until))
    else {
        let msg = pick(
            t,
            "生效与截止时间须为 YYYY-MM-DDTHH:MM（北京时间）",
            "valid from/until must be YYYY-MM-DDTHH:MM (Beijing time)",
        );
        return render(&state, &page, &q, None, Some(msg), StatusCode::BAD_REQUEST).await;
    };
    let input = NewOverride {
        environment: f.environment,
        business_system: f.business_system,
        tier: f.tier,
        kind: f.kind,
        reason: f.reason,
        valid_from,
        valid_until,
    };
    match super::overrides::request(&state, &page.s.principal, &input).await {
        Ok(rec) => {
            let notice = format!("{}: {}", t.s("cal.ov.requested"), rec.id);
            render(&state, &page, &q, Some(notice), None, StatusCode::CREATED).await
        }
        Err(e) => {
            render(
                &state,
                &page,
                &q,
                None,
                Some(t.problem(&e.problem)),
                e.status,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn post_approve(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let t = page.t;
    let q = HashMap::new();
    match super::overrides::approve(&state, &page.s.principal, &id).await {
        Ok(rec) => {
            let notice = format!("{}: {}", t.s("cal.ov.approved"), rec.id);
            render(&state, &page, &q, Some(notice), None, StatusCode::OK).await
        }
        Err(e) => {
            render(
                &state,
                &page,
                &q,
                None,
                Some(t.problem(&e.problem)),
                e.status,
            )
            .await
        }
    }
}

/// The page routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/calendar", get(get_calendar))
        .route("/calendar/overrides", post(post_override))
        .route("/calendar/overrides/{id}/approve", post(post_approve))
}
