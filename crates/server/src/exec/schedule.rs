//! Scheduled job runs: a plan run in an environment at the times of a calendar-aware expression
//! (`ballast_calendar::Schedule`: cron plus trading-calendar filters), requested by the schedule's
//! owner.
//!
//! - `service` — create, change, delete and preview schedules (guarded, audited);
//! - `api` — `/api/v1/schedules…`; `pages` — the web UI (`/schedules`, the missed-runs report);
//! - this module — the scheduler: each replica ticks about once a second ([`spawn`], [`tick`]).
//!
//! A tick takes every enabled schedule whose `next_fire_at` has come (time from the injected
//! clock) and handles every occurrence since the last one it handled:
//!
//! - the latest occurrence, if it is no older than the grace (`exec.schedule_grace_secs`, 60 s),
//!   starts a run (`started`) through the same service function as the API
//!   (`service::start_plan`), with the owner as principal (`Via::Schedule`): permission,
//!   separation of duties, environment isolation, change window, dangerous content and approval
//!   all apply. A refusal is a `denied` fire (the service audits the refusal; the scheduler adds a
//!   `schedule.fire` record naming the schedule); any other problem is `failed`;
//! - older occurrences were missed (no server was running): each is recorded `missed` (at most
//!   [`MISSED_RECORDS`] per catch-up, the count in the message); with catch-up `run_once` one run is
//!   started for the latest missed occurrence (`caught_up`), never one per missed occurrence;
//! - closure days the calendar made the schedule skip are recorded `skipped_calendar` (with the
//!   calendar's reason), ordinary weekends are not;
//! - when the calendar data ends before the next occurrence can be decided the schedule fails
//!   closed: a `failed` fire says why, the schedule does not move past what it could decide, and
//!   it is retried every [`RETRY_MINUTES`] minutes (a new calendar import lets it continue).
//!
//! Replicas: an occurrence is claimed with a compare-and-set on the schedule's `last_fire_at`
//! (`ScheduleTx::claim_fire`) in the transaction that records its fires, so two replicas (or two
//! ticks) never both handle it. The claimed run is recorded `failed` ("interrupted") until the run
//! is started, so a replica dying in between leaves a visible record, never a silent gap.

pub mod api;
pub mod pages;
pub mod service;

use std::collections::{BTreeMap, VecDeque};

use axum::http::StatusCode;
use ballast_calendar::{Calendar, CalendarError, Fire, Schedule, Skip, preview};
use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_core::guard::{Principal, Via};
use ballast_store::{FireClaim, ScheduleFireRow, ScheduleRow, StoreError};
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};

use crate::error::ApiError;
use crate::state::AppState;

/// `catch_up` values.
pub const CATCH_UP_SKIP: &str = "skip";
pub const CATCH_UP_RUN_ONCE: &str = "run_once";

/// Fire outcomes.
pub const STARTED: &str = "started";
pub const SKIPPED_CALENDAR: &str = "skipped_calendar";
pub const MISSED: &str = "missed";
pub const CAUGHT_UP: &str = "caught_up";
pub const DENIED: &str = "denied";
pub const FAILED: &str = "failed";
/// Outcomes the missed-runs report lists.
pub const REPORTED: [&str; 3] = [MISSED, DENIED, FAILED];

/// At most this many `missed` records per catch-up (the message carries the full count).
pub const MISSED_RECORDS: usize = 100;
/// Occurrences scanned per catch-up before giving up counting (a per-second schedule after a
/// long outage); the message then says "more than".
const SCAN_LIMIT: usize = 100_000;
const PAGE: usize = 500;
/// A schedule whose next occurrence cannot be decided is retried this often.
pub const RETRY_MINUTES: i64 = 10;
/// Schedules handled per tick.
const BATCH: u32 = 100;

/// What a tick did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Schedules whose occurrences this tick claimed.
    pub claimed: usize,
    /// Schedules another replica (or an edit) claimed first.
    pub lost: usize,
    /// Runs started (on time or caught up).
    pub started: usize,
    pub missed: usize,
    pub denied: usize,
    pub failed: usize,
}

/// Starts the scheduler loop of this replica (next to the run engine).
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        loop {
            match tick(&state).await {
                Ok(r) if r != TickReport::default() => tracing::info!("scheduler: {r:?}"),
                Ok(_) => {}
                Err(e) => tracing::warn!("scheduler: {e}"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
}

/// One round over the due schedules.
pub async fn tick(state: &AppState) -> Result<TickReport, StoreError> {
    let now = state.clock.now();
    let mut report = TickReport::default();
    for s in state.store.due_schedules(now, BATCH).await? {
        let id = s.id;
        if let Err(e) = handle(state, s, now, &mut report).await {
            tracing::warn!("schedule {id}: {e}");
        }
    }
    Ok(report)
}

/// The occurrences of a schedule between two instants, as far as the calendar can decide them.
#[derive(Debug, Default)]
pub struct Due {
    /// How many occurrences fell in the range.
    pub total: usize,
    /// Whether the count stopped at the scan limit.
    pub more: bool,
    /// The latest occurrences in the range (at most [`MISSED_RECORDS`] + 1), oldest first.
    pub latest: Vec<Fire>,
    /// Closure days skipped in the range (no ordinary weekends), by date.
    pub skipped: Vec<Skip>,
    /// The first occurrence after the range.
    pub next: Option<Fire>,
    /// Why the scan stopped before finding `next` (the calendar data ends).
    pub stopped: Option<CalendarError>,
}

/// Occurrences at or after `from` and at or before `to`, and the next one after `to`.
pub fn due_between(
    schedule: &Schedule,
    calendar: &Calendar,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Due, CalendarError> {
    let mut due = Due::default();
    let mut latest: VecDeque<Fire> = VecDeque::new();
    let mut skipped: BTreeMap<chrono::NaiveDate, Skip> = BTreeMap::new();
    let today = to.with_timezone(&schedule.timezone()).date_naive();
    let mut cursor = from;
    loop {
        let p = preview(schedule, calendar, cursor, PAGE)?;
        for s in p.skipped {
            if s.date <= today {
                skipped.entry(s.date).or_insert(s);
            }
        }
        let found = p.fires.len();
        let mut last_at = None;
        for f in p.fires {
            last_at = Some(f.at);
            if f.at > to {
                due.next = Some(f);
                break;
            }
            due.total += 1;
            latest.push_back(f);
            if latest.len() > MISSED_RECORDS + 1 {
                latest.pop_front();
            }
        }
        if due.next.is_some() {
            break;
        }
        if let Some(e) = p.stopped {
            due.stopped = Some(e);
            break;
        }
        let Some(last_at) = last_at.filter(|_| found == PAGE) else {
            // The expression stopped matching within the crate's search limit.
            break;
        };
        if due.total >= SCAN_LIMIT {
            // Stop counting; find the next occurrence after `to` directly.
            due.more = true;
            let p = preview(schedule, calendar, to + Duration::microseconds(1), 1)?;
            due.next = p.fires.into_iter().next();
            due.stopped = p.stopped;
            break;
        }
        cursor = last_at + Duration::microseconds(1);
    }
    // A skipped day is reported once the schedule has passed it.
    let next_date = due.next.as_ref().map(|n| n.local.date());
    due.skipped = skipped
        .into_values()
        .filter(|s| next_date.is_none_or(|d| s.date < d))
        .collect();
    due.latest = latest.into();
    Ok(due)
}

/// The next occurrence at or after `from`: `Ok(None)` when the calendar cannot decide it yet.
pub fn next_after(
    schedule: &Schedule,
    calendar: &Calendar,
    from: DateTime<Utc>,
) -> Result<Result<Fire, CalendarError>, CalendarError> {
    let p = preview(schedule, calendar, from, 1)?;
    match (p.fires.into_iter().next(), p.stopped) {
        (Some(f), _) => Ok(Ok(f)),
        (None, Some(e)) => Ok(Err(e)),
        (None, None) => Err(CalendarError::InvalidSchedule {
            expression: schedule.expression().to_string(),
            message_zh: "在可搜索范围内找不到触发时间".into(),
            message_en: "no fire time found within the search limit".into(),
        }),
    }
}

fn both(zh: &str, en: &str) -> String {
    format!("{zh} / {en}")
}

fn calendar_message(e: &CalendarError) -> String {
    format!("{} [{}]", both(&e.message_zh(), &e.message_en()), e.code())
}

fn fire(
    s: &ScheduleRow,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    outcome: &str,
    msg: String,
) -> ScheduleFireRow {
    ScheduleFireRow {
        id: 0,
        schedule_id: s.id,
        scheduled_at: at,
        handled_at: now,
        outcome: outcome.to_string(),
        run_id: None,
        message: msg,
    }
}

fn system_draft(action: &str, s: &ScheduleRow, outcome: Outcome) -> AuditDraft {
    AuditDraft::new(Actor::system(), action, "schedule", outcome)
        .object(s.id)
        .environment(Some(s.environment.clone()))
}

/// Where a schedule's scan starts: after the last handled occurrence, never before its last
/// change (occurrences while it was being edited or disabled are not "missed").
pub fn scan_from(s: &ScheduleRow) -> DateTime<Utc> {
    match s.last_fire_at {
        Some(l) => (l + Duration::microseconds(1)).max(s.updated_at),
        None => s.updated_at,
    }
}

/// Claims and records a schedule that cannot be evaluated (calendar data missing or ended, a
/// corrupt expression): a `failed` fire (unless the newest one already says the same), no
/// progress past what was decided, a retry later.
async fn fail_closed(
    state: &AppState,
    s: &ScheduleRow,
    now: DateTime<Utc>,
    message: String,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let newest = state
        .store
        .fires(&ballast_store::FireQuery {
            schedule_id: Some(s.id),
            outcomes: Vec::new(),
            before_id: None,
            limit: 1,
        })
        .await?;
    let repeated = newest
        .first()
        .is_some_and(|f| f.outcome == FAILED && f.message == message);
    let mut tx = state.store.begin().await?;
    let won = tx
        .claim_fire(&FireClaim {
            schedule_id: s.id,
            expected_last_fire_at: s.last_fire_at,
            expected_updated_at: s.updated_at,
            last_fire_at: s.last_fire_at,
            next_fire_at: Some(now + Duration::minutes(RETRY_MINUTES)),
        })
        .await?;
    if !won {
        report.lost += 1;
        return Ok(());
    }
    report.claimed += 1;
    if !repeated {
        tx.insert_fires(&[fire(s, now, now, FAILED, message.clone())])
            .await?;
        report.failed += 1;
    }
    let d = system_draft("schedule.fire", s, Outcome::Failure).detail(message.clone());
    tx.commit(vec![d], now).await?;
    if !repeated {
        notify(state, s, FAILED, &message).await;
    }
    Ok(())
}

/// Handles one due schedule.
async fn handle(
    state: &AppState,
    s: ScheduleRow,
    now: DateTime<Utc>,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let set = match state.calendar.calendars() {
        Ok(set) => set,
        Err(p) => {
            let m = format!("{} [{}]", both(&p.message_zh, &p.message_en), p.code);
            return fail_closed(state, &s, now, m, report).await;
        }
    };
    let cal = match set.get(&s.calendar) {
        Ok(c) => c,
        Err(e) => return fail_closed(state, &s, now, calendar_message(&e), report).await,
    };
    let schedule = match Schedule::parse_with_default_timezone(&s.expression, cal.timezone()) {
        Ok(x) => x,
        Err(e) => return fail_closed(state, &s, now, calendar_message(&e), report).await,
    };
    let due = match due_between(&schedule, cal, scan_from(&s), now) {
        Ok(d) => d,
        Err(e) => return fail_closed(state, &s, now, calendar_message(&e), report).await,
    };
    let grace =
        Duration::seconds(i64::try_from(state.exec.config.schedule_grace_secs).unwrap_or(60));
    let tz = schedule.timezone();

    // What to record: skipped days, missed occurrences, and the one to run (if any).
    let mut fires = Vec::new();
    // Progress: past every occurrence recorded, and past the end of every skipped day (a skipped
    // day has no fire of its own, so it is never scanned again).
    let mut last = s.last_fire_at;
    let mut passed = |t: DateTime<Utc>| last = Some(last.map_or(t, |l| l.max(t)));
    let day_start = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_time(NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    for skip in &due.skipped {
        let at = day_start(skip.date).unwrap_or(now);
        if let Some(end) = skip.date.succ_opt().and_then(day_start) {
            passed(end - Duration::microseconds(1));
        }
        fires.push(fire(
            &s,
            at,
            now,
            SKIPPED_CALENDAR,
            format!("{} / {}", skip.render_zh(), skip.render_en()),
        ));
    }
    let latest = due.latest.last().cloned();
    let on_time = latest.as_ref().filter(|f| now - f.at <= grace).cloned();
    let missed_total = due.total - usize::from(on_time.is_some());
    let run_for = match (&on_time, &latest) {
        (Some(f), _) => Some((f.at, STARTED)),
        (None, Some(f)) if s.catch_up == CATCH_UP_RUN_ONCE => Some((f.at, CAUGHT_UP)),
        _ => None,
    };
    if missed_total > 0 {
        let missed: Vec<&Fire> = due
            .latest
            .iter()
            .filter(|f| on_time.as_ref().is_none_or(|o| o.at != f.at))
            .collect();
        let shown = missed.len().min(MISSED_RECORDS);
        let (first, last) = (missed.first().map(|f| f.at), missed.last().map(|f| f.at));
        let more = if due.more { "+" } else { "" };
        let range = match (first, last) {
            (Some(a), Some(b)) => format!("{} – {}", a.to_rfc3339(), b.to_rfc3339()),
            _ => String::new(),
        };
        let policy_zh = if s.catch_up == CATCH_UP_RUN_ONCE {
            "补执行策略 run_once：只为最近一次补执行一次"
        } else {
            "补执行策略 skip：不补执行"
        };
        let policy_en = if s.catch_up == CATCH_UP_RUN_ONCE {
            "catch-up run_once: one run for the latest"
        } else {
            "catch-up skip: nothing is run"
        };
        let msg = format!(
            "服务未运行，错过 {missed_total}{more} 次（{range}，记录最近 {shown} 次；{policy_zh}） / \
             missed while no server was running: {missed_total}{more} occurrence(s) ({range}; \
             the latest {shown} recorded; {policy_en})"
        );
        for f in missed.iter().skip(missed.len() - shown) {
            if run_for.is_some_and(|(at, o)| o == CAUGHT_UP && at == f.at) {
                continue;
            }
            fires.push(fire(&s, f.at, now, MISSED, msg.clone()));
        }
        report.missed += missed_total;
    }
    if let Some((at, _)) = run_for {
        fires.push(fire(
            &s,
            at,
            now,
            FAILED,
            both(
                "已认领，启动作业时中断（服务在启动作业前停止）",
                "claimed; interrupted before the run was started (the server stopped)",
            ),
        ));
    }

    for f in fires.iter().filter(|f| f.outcome != SKIPPED_CALENDAR) {
        passed(f.scheduled_at);
    }
    let (next, stop_msg) = match (&due.next, &due.stopped) {
        (Some(n), _) => (Some(n.at), None),
        (None, Some(e)) => (
            Some(now + Duration::minutes(RETRY_MINUTES)),
            Some(calendar_message(e)),
        ),
        (None, None) => (
            None,
            Some(both(
                "表达式在可搜索范围内不再有触发时间",
                "the expression has no further fire time within the search limit",
            )),
        ),
    };
    let mut stop_recorded = false;
    if let Some(m) = &stop_msg {
        // Retried every few minutes: one record until something changes.
        let newest = state
            .store
            .fires(&ballast_store::FireQuery {
                schedule_id: Some(s.id),
                outcomes: Vec::new(),
                before_id: None,
                limit: 1,
            })
            .await?;
        let repeated = fires.is_empty()
            && newest
                .first()
                .is_some_and(|f| f.outcome == FAILED && &f.message == m);
        if !repeated {
            fires.push(fire(&s, now, now, FAILED, m.clone()));
            stop_recorded = true;
        }
    }

    let mut tx = state.store.begin().await?;
    let won = tx
        .claim_fire(&FireClaim {
            schedule_id: s.id,
            expected_last_fire_at: s.last_fire_at,
            expected_updated_at: s.updated_at,
            last_fire_at: last,
            next_fire_at: next,
        })
        .await?;
    if !won {
        report.lost += 1;
        return Ok(());
    }
    report.claimed += 1;
    let ids = tx.insert_fires(&fires).await?;
    let count = |o: &str| fires.iter().filter(|f| f.outcome == o).count();
    // A schedule stuck at the end of the calendar data is a failure to find in the audit log.
    let outcome = if stop_msg.is_some() {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    let d = system_draft("schedule.fire", &s, outcome).after(serde_json::json!({
        "schedule": s.name,
        "run_for": run_for.map(|(at, kind)| serde_json::json!({"scheduled_at": at, "kind": kind})),
        "missed": missed_total,
        "missed_more": due.more,
        "skipped_calendar": count(SKIPPED_CALENDAR),
        "next_fire_at": next,
        "calendar_stopped": stop_msg,
    }));
    tx.commit(vec![d], now).await?;

    if missed_total > 0 {
        notify(
            state,
            &s,
            MISSED,
            &format!(
                "{missed_total} occurrence(s) missed; catch-up {}",
                s.catch_up
            ),
        )
        .await;
    }
    if let Some(m) = stop_msg.as_ref().filter(|_| stop_recorded) {
        report.failed += 1;
        notify(state, &s, FAILED, m).await;
    }
    // The claimed run: the index of its placeholder record (after skips and missed ones).
    if let Some((at, kind)) = run_for {
        let idx = fires
            .iter()
            .position(|f| f.scheduled_at == at && f.outcome == FAILED)
            .and_then(|i| ids.get(i).copied());
        if let Some(fire_id) = idx {
            fire_run(state, &s, fire_id, kind, report).await?;
        }
    }
    Ok(())
}

/// The principal a schedule acts as: its owner, with the owner's current roles, through
/// `Via::Schedule` (limited to running jobs).
pub async fn owner_principal(state: &AppState, s: &ScheduleRow) -> Result<Principal, String> {
    let user = state
        .store
        .user_by_name(&s.owner)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            both(
                &format!("定时任务的负责人 {} 不存在", s.owner),
                &format!("the schedule's owner {} no longer exists", s.owner),
            )
        })?;
    let bindings = state
        .store
        .bindings(Some(user.id))
        .await
        .map_err(|e| e.to_string())?;
    Ok(Principal {
        user,
        bindings,
        source_ip: None,
        via: Via::Schedule { id: s.id },
    })
}

/// Starts the run of a claimed occurrence through the API's own service path and records how it
/// went.
async fn fire_run(
    state: &AppState,
    s: &ScheduleRow,
    fire_id: i64,
    kind: &str,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let now = state.clock.now();
    let started = match start(state, s).await {
        Ok(st) => Ok(st),
        Err(Start::Refused(e)) => Err((denied_or_failed(&e), refusal(&e))),
        Err(Start::Failed(m)) => Err((FAILED, m)),
    };
    match started {
        Ok(st) => {
            let msg = if st.status == "waiting_approval" {
                both(
                    &format!("已创建作业 #{}，等待审批", st.run_id),
                    &format!("run #{} created; waiting for approval", st.run_id),
                )
            } else {
                both(
                    &format!("已启动作业 #{}", st.run_id),
                    &format!("run #{} started", st.run_id),
                )
            };
            state
                .store
                .finish_fire(fire_id, kind, Some(st.run_id), &msg, now)
                .await?;
            report.started += 1;
        }
        Err((outcome, msg)) => {
            state
                .store
                .finish_fire(fire_id, outcome, None, &msg, now)
                .await?;
            let audit_outcome = if outcome == DENIED {
                report.denied += 1;
                Outcome::Denied
            } else {
                report.failed += 1;
                Outcome::Failure
            };
            let d = system_draft("schedule.fire", s, audit_outcome)
                .after(serde_json::json!({"schedule": s.name, "fire": fire_id, "owner": s.owner}))
                .detail(msg.clone());
            crate::service::audit_only(state, d)
                .await
                .map_err(|e| StoreError::Other(e.problem.message_en))?;
            notify(state, s, outcome, &msg).await;
        }
    }
    Ok(())
}

enum Start {
    /// The service refused (guard, validation).
    Refused(ApiError),
    /// The schedule could not be turned into a request.
    Failed(String),
}

fn refusal(e: &ApiError) -> String {
    format!(
        "{} [{}]",
        both(&e.problem.message_zh, &e.problem.message_en),
        e.problem.code
    )
}

/// A guard refusal (403, or a warning or approval no one is there to acknowledge) is `denied`;
/// anything else (the plan changed and the variables no longer fit, …) is `failed`.
fn denied_or_failed(e: &ApiError) -> &'static str {
    let code = e.problem.code.to_string();
    if e.status == StatusCode::FORBIDDEN
        || code == "guard.warning_unacknowledged"
        || code.starts_with("approval.")
    {
        DENIED
    } else {
        FAILED
    }
}

async fn start(state: &AppState, s: &ScheduleRow) -> Result<super::service::Started, Start> {
    let principal = owner_principal(state, s).await.map_err(Start::Failed)?;
    let plan = state
        .store
        .plan_by_id(s.plan_id)
        .await
        .map_err(|e| Start::Failed(e.to_string()))?
        .ok_or_else(|| {
            Start::Failed(both(
                &format!("计划 #{} 不存在", s.plan_id),
                &format!("plan #{} no longer exists", s.plan_id),
            ))
        })?;
    let vars = service::stored_vars(state, s).map_err(Start::Failed)?;
    let req = super::service::StartPlan {
        plan: plan.name,
        version: s.plan_version,
        environment: s.environment.clone(),
        vars,
        // Nobody is there to read a warning: a warning refuses the fire.
        acknowledge_warnings: false,
    };
    super::service::start_plan(state, &principal, &req)
        .await
        .map_err(Start::Refused)
}

/// Webhook notification for a fire that did not run as scheduled (best effort, in the
/// background; the same `exec.webhook_url` as run failures).
async fn notify(state: &AppState, s: &ScheduleRow, event: &str, message: &str) {
    let Some(hook) = state.exec.webhook.clone() else {
        return;
    };
    let body = serde_json::json!({
        "event": format!("schedule.{event}"), "schedule_id": s.id, "schedule": s.name,
        "environment": s.environment, "owner": s.owner, "message": message,
        "at": state.clock.now().to_rfc3339(),
    });
    tokio::spawn(async move { hook.post(&body).await });
}
