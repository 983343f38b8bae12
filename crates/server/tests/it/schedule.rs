//! Scheduled job runs on a real server: a schedule fires at its time and its run runs, trading-day
//! filters skip holidays, missed occurrences after an outage follow the catch-up policy, guard
//! refusals are recorded and audited, two schedulers racing (two replicas on one PostgreSQL, two
//! ticks on SQLite) fire an occurrence once, the calendar's end fails closed, API validation and
//! the pages.
//!
//! The server's own scheduler loop runs during these tests (as in production); the tests also
//! call `schedule::tick` directly after moving the injected clock. Either may handle an
//! occurrence first — the compare-and-set makes that immaterial — so the tests assert on what is
//! recorded (fires, runs, audit), not on which tick did it.

use std::time::Duration;

use ballast_server::AppState;
use ballast_server::exec::schedule::tick;
use ballast_store::FireQuery;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use crate::TestServer;
use crate::exec::{call, get, post};

/// Beijing wall time as UTC.
fn bj(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    ballast_calendar::Tz::Asia__Shanghai
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

/// A plan whose one step writes a line on the server's own host; an operator (job.run in test
/// and prod). Returns the operator's token.
async fn setup(s: &TestServer, op: &str) -> String {
    let dev = s
        .user_token(&format!("{op}-dev"), &[("ops_development", "global")])
        .await;
    let plan = json!({
        "name": "tick", "description": "scheduled",
        "variables": [
            {"name": "word", "type": "string", "required": true},
            {"name": "token", "type": "secret"}
        ],
        "steps": [{"name": "say", "kind": "command", "language": "bash",
                   "command": "echo fired ${word}", "targets": "local"}]
    });
    let (st, v) = post(s, &dev, "/api/v1/plans", plan).await;
    assert_eq!(st, 200, "{v}");
    s.user_token(
        op,
        &[
            ("automation_operator", "environment:test"),
            ("automation_operator", "environment:prod"),
        ],
    )
    .await
}

async fn create(s: &TestServer, token: &str, body: Value) -> i64 {
    let (st, v) = post(s, token, "/api/v1/schedules", body).await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_i64().unwrap()
}

async fn fires(state: &AppState, id: i64) -> Vec<ballast_store::ScheduleFireRow> {
    let mut f = state
        .store
        .fires(&FireQuery {
            schedule_id: Some(id),
            outcomes: Vec::new(),
            before_id: None,
            limit: 1000,
        })
        .await
        .unwrap();
    f.reverse();
    f
}

fn outcomes(f: &[ballast_store::ScheduleFireRow]) -> Vec<&str> {
    f.iter().map(|x| x.outcome.as_str()).collect()
}

async fn plan_runs(state: &AppState) -> Vec<ballast_store::RunRow> {
    state
        .store
        .runs(&ballast_store::RunQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
}

/// Moves the clock and ticks until the scheduler has handled what is due (the background loop
/// may get there first).
async fn at(s: &TestServer, when: DateTime<Utc>) {
    s.clock.set(when);
    tick(&s.state).await.unwrap();
}

async fn wait_run(s: &TestServer, token: &str, id: i64) -> Value {
    for _ in 0..300 {
        let (st, d) = get(s, token, &format!("/api/v1/runs/{id}")).await;
        assert_eq!(st, 200, "{d}");
        if d["finished"] == true {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {id} did not finish");
}

/// The audit records (action, outcome, after JSON, detail) of an action.
async fn audit_of(s: &TestServer, action: &str) -> Vec<(String, Value, String)> {
    s.state
        .store
        .audit_range(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| r.parsed())
        .filter(|c| c.draft.action == action)
        .map(|c| {
            (
                c.draft.outcome.key().to_string(),
                c.draft.after.clone().unwrap_or(Value::Null),
                c.draft.detail.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_schedule_fires_at_its_time_and_its_run_runs() {
    let s = TestServer::start().await;
    let op = setup(&s, "sop1").await;
    s.clock.set(bj(2026, 11, 25, 10, 1, 0));
    let id = create(
        &s,
        &op,
        json!({"name": "daily-1005", "plan": "tick", "environment": "test",
               "expression": "5 10 * * *", "vars": {"word": "hello", "token": "S3cret-77"}}),
    )
    .await;
    let (st, v) = get(&s, &op, &format!("/api/v1/schedules/{id}")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["expression"], "5 10 * * * @every-day tz=Asia/Shanghai");
    assert_eq!(v["next_fire_at"], "2026-11-25T02:05:00Z");
    assert_eq!(v["owner"], "sop1");
    assert_eq!(v["vars"]["token"], "******", "secrets are never shown");
    assert!(v.get("secrets_sealed").is_none());
    let row = s.state.store.schedule(id).await.unwrap().unwrap();
    assert!(
        !row.secrets_sealed.unwrap().contains("S3cret-77"),
        "sealed at rest"
    );

    // Not yet due.
    at(&s, bj(2026, 11, 25, 10, 4, 59)).await;
    assert!(fires(&s.state, id).await.is_empty());
    // Due: one run, requested by the owner, through the service path.
    at(&s, bj(2026, 11, 25, 10, 5, 3)).await;
    let f = fires(&s.state, id).await;
    assert_eq!(outcomes(&f), ["started"], "{f:?}");
    assert_eq!(f[0].scheduled_at, bj(2026, 11, 25, 10, 5, 0));
    let run_id = f[0].run_id.unwrap();
    let d = wait_run(&s, &op, run_id).await;
    assert_eq!(d["run"]["status"], "succeeded", "{d}");
    assert_eq!(d["run"]["requested_by"], "sop1");
    let task = d["tasks"][0]["id"].as_i64().unwrap();
    let (_, out) = get(
        &s,
        &op,
        &format!("/api/v1/runs/{run_id}/tasks/{task}/output"),
    )
    .await;
    // Output with secrets in play is released as the masker allows (possibly in pieces).
    let text: String = out["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "fired hello\n", "{out}");
    // Audited: the claim, and the run's start naming the schedule.
    let claims = audit_of(&s, "schedule.fire").await;
    assert_eq!(claims.len(), 1, "{claims:?}");
    let starts = audit_of(&s, "job.run.start").await;
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].1["via"], format!("schedule:{id}"));
    assert!(!starts[0].1.to_string().contains("S3cret-77"));
    // The next occurrence is tomorrow; ticking again fires nothing more.
    let v = s.state.store.schedule(id).await.unwrap().unwrap();
    assert_eq!(v.next_fire_at, Some(bj(2026, 11, 26, 10, 5, 0)));
    assert_eq!(v.last_fire_at, Some(bj(2026, 11, 25, 10, 5, 0)));
    at(&s, bj(2026, 11, 25, 10, 5, 30)).await;
    assert_eq!(fires(&s.state, id).await.len(), 1);
    assert_eq!(plan_runs(&s.state).await.len(), 1);
    // Disabled: due times pass without a fire, and are not "missed" when enabled again.
    let mut body = json!({"name": "daily-1005", "plan": "tick", "environment": "test",
        "expression": "5 10 * * *", "vars": {"word": "hello", "token": "******"}, "enabled": false});
    let (st, v) = call(
        &s,
        &op,
        reqwest::Method::PUT,
        &format!("/api/v1/schedules/{id}"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    at(&s, bj(2026, 11, 26, 10, 5, 1)).await;
    assert_eq!(fires(&s.state, id).await.len(), 1);
    body["enabled"] = json!(true);
    let (st, _) = call(
        &s,
        &op,
        reqwest::Method::PUT,
        &format!("/api/v1/schedules/{id}"),
        Some(body),
    )
    .await;
    assert_eq!(st, 204);
    at(&s, bj(2026, 11, 27, 10, 5, 2)).await;
    let f = fires(&s.state, id).await;
    assert_eq!(outcomes(&f), ["started", "started"], "{f:?}");
    // `******` kept the stored secret.
    let row = s.state.store.schedule(id).await.unwrap().unwrap();
    assert!(row.secrets_sealed.is_some());
    let d = wait_run(&s, &op, f[1].run_id.unwrap()).await;
    assert_eq!(d["run"]["status"], "succeeded", "{d}");
}

#[tokio::test]
async fn a_trading_day_schedule_skips_the_holiday_and_fires_on_the_next_trading_day() {
    let s = TestServer::start().await;
    let op = setup(&s, "sop2").await;
    // Wednesday 2026-09-30, before the National Day closure (2026-10-01 – 10-07).
    s.clock.set(bj(2026, 9, 30, 12, 0, 0));
    let id = create(
        &s,
        &op,
        json!({"name": "open-check", "plan": "tick", "environment": "test",
               "expression": "0 9 * * * @trading", "vars": {"word": "open"}}),
    )
    .await;
    let row = s.state.store.schedule(id).await.unwrap().unwrap();
    assert_eq!(row.next_fire_at, Some(bj(2026, 10, 8, 9, 0, 0)));
    // 09:00 on holidays: nothing fires.
    for day in [1, 2, 5, 7] {
        at(&s, bj(2026, 10, day, 9, 0, 5)).await;
    }
    assert!(fires(&s.state, id).await.is_empty());
    assert!(plan_runs(&s.state).await.is_empty());
    // The next trading day fires; the closure days it skipped are on record with the reason.
    at(&s, bj(2026, 10, 8, 9, 0, 5)).await;
    let f = fires(&s.state, id).await;
    let started: Vec<_> = f.iter().filter(|x| x.outcome == "started").collect();
    assert_eq!(started.len(), 1, "{f:?}");
    assert_eq!(started[0].scheduled_at, bj(2026, 10, 8, 9, 0, 0));
    let skipped: Vec<_> = f
        .iter()
        .filter(|x| x.outcome == "skipped_calendar")
        .collect();
    let dates: Vec<DateTime<Utc>> = skipped.iter().map(|x| x.scheduled_at).collect();
    for day in [1, 2, 5, 6, 7] {
        assert!(
            dates.contains(&bj(2026, 10, day, 0, 0, 0)),
            "2026-10-0{day} skipped: {f:?}"
        );
    }
    assert!(
        skipped.iter().all(|x| x.message.contains("skipped")),
        "{skipped:?}"
    );
    assert_eq!(outcomes(&f).iter().filter(|o| **o == "started").count(), 1);
    // No run on a skipped day, none twice.
    at(&s, bj(2026, 10, 8, 9, 1, 0)).await;
    assert_eq!(plan_runs(&s.state).await.len(), 1);
    let row = s.state.store.schedule(id).await.unwrap().unwrap();
    assert_eq!(row.next_fire_at, Some(bj(2026, 10, 9, 9, 0, 0)));
}

#[tokio::test]
async fn missed_occurrences_are_recorded_and_caught_up_once_if_the_policy_says_so() {
    let s = TestServer::start().await;
    let op = setup(&s, "sop3").await;
    s.clock.set(bj(2026, 11, 25, 10, 1, 0));
    let base = json!({"plan": "tick", "environment": "test", "expression": "0 * * * *",
                      "vars": {"word": "hourly"}});
    let mut skip = base.clone();
    skip["name"] = json!("hourly-skip");
    let mut once = base.clone();
    once["name"] = json!("hourly-once");
    once["catch_up"] = json!("run_once");
    let skip = create(&s, &op, skip).await;
    let once = create(&s, &op, once).await;
    // The server is "down" from 10:01 to 15:30: 11:00 … 15:00 pass without a tick.
    at(&s, bj(2026, 11, 25, 15, 30, 0)).await;
    let f = fires(&s.state, skip).await;
    assert_eq!(outcomes(&f), ["missed"; 5], "{f:?}");
    assert_eq!(f[0].scheduled_at, bj(2026, 11, 25, 11, 0, 0));
    assert_eq!(f[4].scheduled_at, bj(2026, 11, 25, 15, 0, 0));
    assert!(f[0].message.contains("5 occurrence(s)"), "{}", f[0].message);
    assert!(f.iter().all(|x| x.run_id.is_none()));
    let g = fires(&s.state, once).await;
    assert_eq!(
        outcomes(&g),
        ["missed", "missed", "missed", "missed", "caught_up"],
        "{g:?}"
    );
    assert_eq!(g[4].scheduled_at, bj(2026, 11, 25, 15, 0, 0), "the latest");
    let runs = plan_runs(&s.state).await;
    assert_eq!(runs.len(), 1, "exactly one run for all of it");
    assert_eq!(g[4].run_id, Some(runs[0].id));
    assert_eq!(
        wait_run(&s, &op, runs[0].id).await["run"]["status"],
        "succeeded"
    );
    // Both move on to the next hour; the report lists the missed fires, newest first.
    for id in [skip, once] {
        let row = s.state.store.schedule(id).await.unwrap().unwrap();
        assert_eq!(row.next_fire_at, Some(bj(2026, 11, 25, 16, 0, 0)));
    }
    let (st, report) = get(&s, &op, "/api/v1/schedule-fires/missed").await;
    assert_eq!(st, 200, "{report}");
    let report = report.as_array().unwrap();
    assert_eq!(report.len(), 9, "{report:?}");
    assert!(
        report
            .windows(2)
            .all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64())
    );
    // Back on time at 16:00: a plain run, nothing missed.
    at(&s, bj(2026, 11, 25, 16, 0, 20)).await;
    assert_eq!(outcomes(&fires(&s.state, skip).await)[5], "started");
    assert_eq!(plan_runs(&s.state).await.len(), 3);

    // A long outage of a per-minute schedule: the records are capped, the count is not.
    let mut minutely = base.clone();
    minutely["name"] = json!("minutely");
    minutely["expression"] = json!("* * * * *");
    let m = create(&s, &op, minutely).await;
    at(&s, bj(2026, 11, 26, 16, 0, 30)).await;
    let f = fires(&s.state, m).await;
    let missed: Vec<_> = f.iter().filter(|x| x.outcome == "missed").collect();
    assert_eq!(missed.len(), 100, "capped");
    // 16:01 on the 25th … 15:59 on the 26th; 16:00 (30 s ago, within the grace) runs.
    assert!(
        missed[0].message.contains("1439 occurrence(s)"),
        "{}",
        missed[0].message
    );
    assert_eq!(
        missed[99].scheduled_at,
        bj(2026, 11, 26, 15, 59, 0),
        "the latest are kept"
    );
    assert_eq!(f.last().map(|x| x.outcome.as_str()), Some("started"));
}

#[tokio::test]
async fn a_guard_refusal_at_fire_time_is_a_denied_fire_audited_and_nothing_runs() {
    let s = TestServer::start_with(|c| {
        std::fs::create_dir_all(&c.data_dir).unwrap();
        std::fs::write(
            c.data_dir.join("change-windows.toml"),
            crate::PROD_MARKET_HOURS,
        )
        .unwrap();
    })
    .await;
    let op = setup(&s, "sop4").await;
    s.clock.set(bj(2026, 11, 25, 10, 1, 0));
    // Defining a production schedule during market hours is allowed; its runs are governed.
    let prod = create(
        &s,
        &op,
        json!({"name": "prod-1030", "plan": "tick", "environment": "prod",
               "expression": "30 10 * * *", "vars": {"word": "prod"}}),
    )
    .await;
    at(&s, bj(2026, 11, 25, 10, 30, 2)).await;
    let f = fires(&s.state, prod).await;
    assert_eq!(outcomes(&f), ["denied"], "{f:?}");
    assert!(
        f[0].message.contains("change_window.blocked"),
        "{}",
        f[0].message
    );
    assert!(f[0].run_id.is_none());
    assert!(plan_runs(&s.state).await.is_empty(), "nothing ran");
    // Audited twice over: the pipeline's refusal (the owner as actor) and the fire.
    let refused = audit_of(&s, "job.run").await;
    assert!(
        refused
            .iter()
            .any(|(o, _, d)| o == "denied" && d.contains("change_window.blocked")),
        "{refused:?}"
    );
    let fire_audit = audit_of(&s, "schedule.fire").await;
    assert!(
        fire_audit.iter().any(|(o, a, d)| o == "denied"
            && a["schedule"] == "prod-1030"
            && d.contains("change_window")),
        "{fire_audit:?}"
    );

    // An owner who may no longer act: the account is disabled.
    let test = create(
        &s,
        &op,
        json!({"name": "test-1045", "plan": "tick", "environment": "test",
               "expression": "45 10 * * *", "vars": {"word": "t"}}),
    )
    .await;
    ballast_server::admin::user_disable(&s.state, "sop4", "left the company")
        .await
        .unwrap();
    at(&s, bj(2026, 11, 25, 10, 45, 1)).await;
    let f = fires(&s.state, test).await;
    assert_eq!(outcomes(&f), ["denied"], "{f:?}");
    assert!(
        f[0].message.contains("auth.account_disabled"),
        "{}",
        f[0].message
    );
    assert!(plan_runs(&s.state).await.is_empty());
}

#[tokio::test]
async fn two_ticks_racing_on_sqlite_fire_an_occurrence_once() {
    let s = TestServer::start().await;
    let op = setup(&s, "sop5").await;
    s.clock.set(bj(2026, 11, 25, 10, 1, 0));
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            create(
                &s,
                &op,
                json!({"name": format!("race-{i}"), "plan": "tick", "environment": "test",
                       "expression": "10 10 * * *", "vars": {"word": "race"}}),
            )
            .await,
        );
    }
    s.clock.set(bj(2026, 11, 25, 10, 10, 1));
    let (a, b, c) = tokio::join!(tick(&s.state), tick(&s.state), tick(&s.state));
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert!(a.started + b.started + c.started <= 4);
    tick(&s.state).await.unwrap();
    for id in ids {
        assert_eq!(outcomes(&fires(&s.state, id).await), ["started"]);
    }
    assert_eq!(plan_runs(&s.state).await.len(), 4);
}

#[tokio::test]
async fn two_replicas_on_one_postgres_fire_an_occurrence_once() {
    let url = crate::postgres::fresh_database().await;
    let shared = tempfile::tempdir().unwrap();
    let key = shared.path().join("credential.key");
    let (url_a, key_a) = (url.clone(), key.clone());
    let s = TestServer::start_with(move |c| {
        c.database = Some(url_a);
        c.credential_key_file = Some(key_a);
    })
    .await;
    assert_eq!(s.state.store.backend(), "postgres");
    let dir_b = tempfile::tempdir().unwrap();
    let mut config = ballast_server::Config {
        data_dir: dir_b.path().to_path_buf(),
        database: Some(url),
        credential_key_file: Some(key),
        environments: vec!["prod".into(), "test".into()],
        ..ballast_server::Config::default()
    };
    config.exec.agent_listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.exec.local_environments = vec!["test".into()];
    let clock_b = std::sync::Arc::new(ballast_core::clock::ManualClock::new(crate::t0()));
    let (b, _) = ballast_server::start(config, clock_b.clone())
        .await
        .unwrap();

    let op = setup(&s, "sop6").await;
    s.clock.set(bj(2026, 11, 25, 10, 1, 0));
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            create(
                &s,
                &op,
                json!({"name": format!("pg-race-{i}"), "plan": "tick", "environment": "test",
                       "expression": "0 * * * *", "catch_up": "run_once",
                       "vars": {"word": "pg"}}),
            )
            .await,
        );
    }
    // Both replicas wake after an outage and tick at once, several times.
    let when = bj(2026, 11, 25, 13, 0, 10);
    s.clock.set(when);
    clock_b.set(when);
    for _ in 0..3 {
        let (x, y) = tokio::join!(tick(&s.state), tick(&b));
        x.unwrap();
        y.unwrap();
    }
    for id in &ids {
        let f = fires(&s.state, *id).await;
        assert_eq!(outcomes(&f), ["missed", "missed", "started"], "{f:?}");
        assert_eq!(f[2].scheduled_at, bj(2026, 11, 25, 13, 0, 0));
    }
    let runs = plan_runs(&s.state).await;
    assert_eq!(
        runs.len(),
        5,
        "one run per schedule, whichever replica claimed it"
    );
    let claims = audit_of(&s, "schedule.fire").await;
    assert_eq!(claims.len(), 5, "{claims:?}");
    let status = ballast_server::verify::chain_status(&s.state)
        .await
        .unwrap();
    assert!(status.intact, "{:?}", status.reason_en);
}

#[tokio::test]
async fn the_end_of_the_calendar_data_fails_closed_and_is_visible() {
    let s = TestServer::start().await;
    let op = setup(&s, "sop7").await;
    s.clock.set(bj(2026, 12, 29, 12, 0, 0));
    let id = create(
        &s,
        &op,
        json!({"name": "year-end", "plan": "tick", "environment": "test",
               "expression": "0 9 * * * @trading", "vars": {"word": "ye"}}),
    )
    .await;
    at(&s, bj(2026, 12, 30, 9, 0, 1)).await;
    at(&s, bj(2026, 12, 31, 9, 0, 1)).await;
    let f = fires(&s.state, id).await;
    assert_eq!(outcomes(&f), ["started", "started", "failed"], "{f:?}");
    assert!(
        f[2].message.contains("calendar.not_covered") || f[2].message.contains("2027"),
        "{}",
        f[2].message
    );
    let row = s.state.store.schedule(id).await.unwrap().unwrap();
    assert_eq!(
        row.last_fire_at,
        Some(bj(2026, 12, 31, 9, 0, 0)),
        "not moved past what the calendar decides"
    );
    let retry = row.next_fire_at.unwrap();
    assert!(retry > bj(2026, 12, 31, 9, 0, 1));
    // Retried later: still undecidable, still one record; nothing runs in 2027.
    at(&s, retry + chrono::Duration::seconds(1)).await;
    at(&s, bj(2027, 1, 4, 9, 0, 1)).await;
    let f = fires(&s.state, id).await;
    assert_eq!(outcomes(&f), ["started", "started", "failed"], "{f:?}");
    assert_eq!(plan_runs(&s.state).await.len(), 2);
    let (_, report) = get(&s, &op, "/api/v1/schedule-fires/missed").await;
    assert_eq!(report[0]["outcome"], "failed", "{report}");

    // A calendar that is not there (changed behind the server's back): failed, retried, one
    // record, nothing run.
    s.clock.set(bj(2026, 12, 29, 12, 0, 0));
    let other = create(
        &s,
        &op,
        json!({"name": "lost-calendar", "plan": "tick", "environment": "test",
               "expression": "0 10 * * *", "vars": {"word": "x"}}),
    )
    .await;
    let mut row = s.state.store.schedule(other).await.unwrap().unwrap();
    row.calendar = "nyse".into();
    let mut tx = s.state.store.begin().await.unwrap();
    tx.update_schedule(&row).await.unwrap();
    tx.commit(
        vec![ballast_core::audit::AuditDraft::new(
            ballast_core::audit::Actor::system(),
            "test.tamper",
            "schedule",
            ballast_core::audit::Outcome::Success,
        )],
        bj(2026, 12, 29, 12, 0, 0),
    )
    .await
    .unwrap();
    at(&s, bj(2026, 12, 30, 10, 0, 1)).await;
    at(&s, bj(2026, 12, 30, 10, 30, 1)).await;
    let f = fires(&s.state, other).await;
    assert_eq!(outcomes(&f), ["failed"], "{f:?}");
    assert!(
        f[0].message.contains("calendar.unknown"),
        "{}",
        f[0].message
    );
    assert_eq!(plan_runs(&s.state).await.len(), 2);
}

#[tokio::test]
async fn the_api_refuses_bad_schedules_naming_the_field() {
    let s = TestServer::start().await;
    let op = setup(&s, "sop8").await;
    let good = json!({"name": "ok", "plan": "tick", "environment": "test",
                      "expression": "30 8 * * * @trading", "vars": {"word": "w"}});
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"expression": "30 8 * *"}),
            400,
            "calendar.invalid_schedule",
            "expression",
        ),
        (
            json!({"expression": "30 8 * * * @holiday"}),
            400,
            "calendar.invalid_schedule",
            "expression",
        ),
        (
            json!({"calendar": "nyse"}),
            422,
            "calendar.unknown",
            "calendar",
        ),
        (
            json!({"plan": "nope"}),
            400,
            "schedule.unknown_plan",
            "plan",
        ),
        (
            json!({"plan_version": 9}),
            400,
            "schedule.unknown_plan_version",
            "plan_version",
        ),
        (
            json!({"environment": "staging"}),
            400,
            "environment.unknown",
            "environment",
        ),
        (
            json!({"catch_up": "all"}),
            400,
            "schedule.invalid_catch_up",
            "catch_up",
        ),
        (
            json!({"name": "bad name!"}),
            400,
            "schedule.invalid_name",
            "name",
        ),
        (
            json!({"vars": {"word": "w", "extra": "1"}}),
            400,
            "schedule.unknown_variable",
            "vars.extra",
        ),
        (json!({"vars": {}}), 400, "", "vars.word"),
    ];
    for (patch, status, code, field) in cases {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, v) = post(&s, &op, "/api/v1/schedules", body).await;
        assert_eq!(st, status, "{patch}: {v}");
        if !code.is_empty() {
            assert_eq!(v["code"], code, "{patch}: {v}");
        }
        assert_eq!(v["details"]["field"], field, "{patch}: {v}");
        let zh = v["details"]["message_zh"].as_str().unwrap();
        assert!(
            zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
            "bilingual: {v}"
        );
        assert!(!v["details"]["message_en"].as_str().unwrap().is_empty());
    }
    // Unknown fields and malformed JSON are refused by the extractor.
    let mut body = good.clone();
    body["owner"] = json!("someone-else");
    let (st, v) = post(&s, &op, "/api/v1/schedules", body).await;
    assert_eq!(st, 422, "the owner is whoever asks: {v}");
    // Nothing was created by any of those.
    assert!(s.state.store.schedules().await.unwrap().is_empty());

    let id = create(&s, &op, good.clone()).await;
    let (st, v) = post(&s, &op, "/api/v1/schedules", good.clone()).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("schedule.exists")),
        "{v}"
    );
    let (st, v) = get(&s, &op, "/api/v1/schedules/abc").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("request.invalid_id")),
        "{v}"
    );
    let (st, _) = get(&s, &op, "/api/v1/schedules/999").await;
    assert_eq!(st, 404);
    // Permission: job.run in the environment is needed to define what runs there.
    let dev = s
        .user_token("sop8-reader", &[("ops_development", "global")])
        .await;
    let mut other = good.clone();
    other["name"] = json!("by-dev");
    let (st, v) = post(&s, &dev, "/api/v1/schedules", other).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("authz.forbidden")),
        "{v}"
    );
    let (st, v) = call(
        &s,
        &dev,
        reqwest::Method::DELETE,
        &format!("/api/v1/schedules/{id}"),
        None,
    )
    .await;
    assert_eq!(st, 403, "{v}");
    let (st, list) = get(&s, &dev, "/api/v1/schedules").await;
    assert_eq!(st, 200, "job.read lists: {list}");
    assert_eq!(
        list[0]["description_en"],
        "cron 30 8 * * *, on each trading day (Asia/Shanghai)"
    );
    assert!(
        audit_of(&s, "schedule.create")
            .await
            .iter()
            .any(|(o, _, _)| o == "denied")
    );

    // Preview: the next fire times and the closures skipped.
    let (st, p) = post(
        &s,
        &op,
        "/api/v1/schedules/preview",
        json!({"expression": "0 9 * * * @trading", "from": "2026-09-28T00:00:00Z", "count": 5}),
    )
    .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["fires"].as_array().unwrap().len(), 5);
    assert_eq!(p["fires"][3]["at"], "2026-10-08T01:00:00Z", "{p}");
    assert!(p["skipped"].as_array().unwrap().len() >= 5, "{p}");
    let (st, p) = post(
        &s,
        &op,
        "/api/v1/schedules/preview",
        json!({"expression": "x"}),
    )
    .await;
    assert_eq!(
        (st, p["details"]["field"].as_str()),
        (400, Some("expression")),
        "{p}"
    );

    // Change and delete, audited.
    let mut changed = good.clone();
    changed["expression"] = json!("0 18 * * * @last-trading-day-of-month");
    let (st, v) = call(
        &s,
        &op,
        reqwest::Method::PUT,
        &format!("/api/v1/schedules/{id}"),
        Some(changed),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    let (_, v) = get(&s, &op, &format!("/api/v1/schedules/{id}")).await;
    assert_eq!(
        v["expression"],
        "0 18 * * * @last-trading-day-of-month tz=Asia/Shanghai"
    );
    assert_eq!(v["next_fire_at"], "2026-11-30T10:00:00Z");
    let (st, _) = call(
        &s,
        &op,
        reqwest::Method::DELETE,
        &format!("/api/v1/schedules/{id}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    for a in ["schedule.create", "schedule.update", "schedule.delete"] {
        assert!(
            audit_of(&s, a).await.iter().any(|(o, _, _)| o == "success"),
            "missing audit {a}"
        );
    }
    // The OpenAPI document lists the routes.
    let doc: Value = reqwest::get(format!("{}/api/openapi.json", s.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/api/v1/schedules",
        "/api/v1/schedules/{id}",
        "/api/v1/schedules/{id}/fires",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from OpenAPI");
    }
    assert!(doc["paths"]["/api/v1/schedules/preview"]["post"].is_object());
}

#[tokio::test]
async fn the_pages_list_schedules_their_fires_and_the_missed_report() {
    let s = TestServer::start_with(|c| {
        std::fs::create_dir_all(&c.data_dir).unwrap();
        std::fs::write(
            c.data_dir.join("change-windows.toml"),
            crate::PROD_MARKET_HOURS,
        )
        .unwrap();
    })
    .await;
    let op = setup(&s, "sop9").await;
    s.clock.set(bj(2026, 11, 25, 10, 1, 0));
    let id = create(
        &s,
        &op,
        json!({"name": "prod-page", "plan": "tick", "environment": "prod",
               "expression": "30 10 * * * @trading", "vars": {"word": "p"}}),
    )
    .await;
    at(&s, bj(2026, 11, 25, 10, 30, 5)).await;
    let (c, _) = crate::authn::admin_ready(&s).await;
    let page = |path: String| {
        let c = c.clone();
        async move {
            let r = c
                .get(path)
                .header("accept-language", "en")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (st, list) = page(format!("{}/schedules", s.url)).await;
    assert_eq!(st, 200, "{list}");
    assert!(list.contains("id=\"nav-schedules\""));
    assert!(
        list.contains("prod-page") && list.contains("each trading day"),
        "{list}"
    );
    assert!(
        list.contains("id=\"preview-fires\""),
        "the form previews its expression"
    );
    let (st, detail) = page(format!("{}/schedules/{id}", s.url)).await;
    assert_eq!(st, 200);
    assert!(
        detail.contains("class=\"fire-alert bad\"") && detail.contains("change_window.blocked"),
        "{detail}"
    );
    let (st, missed) = page(format!("{}/schedules/missed", s.url)).await;
    assert_eq!(st, 200);
    assert!(
        missed.contains("prod-page") && missed.contains(">denied<"),
        "{missed}"
    );

    // A form the administrator may not submit (no job.run) is shown again with the refusal.
    let csrf = crate::authn::csrf_of(&c, &s.url, "/schedules").await;
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "by-admin"),
        ("plan", "tick"),
        ("plan_version", ""),
        ("environment", "test"),
        ("calendar", "sse"),
        ("catch_up", "skip"),
        ("expression", "0 9 * * * @trading"),
        ("vars", "word=x"),
        ("enabled", "1"),
        ("action", "create"),
    ];
    let r = c
        .post(format!("{}/schedules", s.url))
        .header("accept-language", "en")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("authz.forbidden") && body.contains("value=\"by-admin\""),
        "{body}"
    );
    // Preview without creating anything.
    let mut preview = form;
    preview[10] = ("action", "preview");
    let body = c
        .post(format!("{}/schedules", s.url))
        .form(&preview)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("id=\"preview-fires\""), "{body}");
    // A missing CSRF token is refused.
    let r = c
        .post(format!("{}/schedules", s.url))
        .form(&[("name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(s.state.store.schedules().await.unwrap().len(), 1);
}
