//! Trading calendars and the change-window guard in the server: the API answers as the library
//! does and fails closed outside the data; import (dry run, apply, audit, reload); the permission
//! matrix; overrides with separation of duties; the guard through `service::authorize` at
//! execution time; the month page.

use ballast_calendar::{CalendarSet, DayKind};
use ballast_core::authz::{Permission, Target};
use ballast_core::guard::{Action, ActionKind};
use ballast_server::service;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::TestServer;
use super::authn::{admin_ready, csrf_of, login};

/// Blocks production changes 09:00–15:30 on trading days, warns 08:30–09:00.
const POLICIES: &str = r#"
schema = 1

[[policy]]
id = "prod-market-hours"
description_zh = "生产环境：交易时段禁止变更"
description_en = "Production: no changes during market hours"
environments = ["prod"]
exclude_kinds = ["read_only"]

[[policy.rule]]
outcome = "block"
days = "trading"
from = "09:00"
to = "15:30"

[[policy.rule]]
outcome = "warn"
days = "trading"
from = "08:30"
to = "09:00"
"#;

/// A 2027 year file for both exchanges (only New Year, for the test).
const YEAR_2027: &str = r#"
schema = 1
calendars = ["sse", "szse"]
year = 2027
sources = ["test data, not a real notice"]

[[closure]]
from = 2027-01-01
reason_zh = "元旦"
reason_en = "New Year's Day"

[[makeup_workday]]
date = 2027-01-09
reason_zh = "测试调休上班"
reason_en = "test make-up workday"
"#;

async fn with_policies() -> TestServer {
    TestServer::start_with(|c| {
        std::fs::write(c.data_dir.join("change-windows.toml"), POLICIES).unwrap();
    })
    .await
}

/// Beijing wall time as UTC.
fn bj(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

async fn get(s: &TestServer, token: &str, path: &str) -> (StatusCode, Value) {
    let r = s
        .client()
        .get(format!("{}{path}", s.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let r = s
        .client()
        .post(format!("{}{path}", s.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post_toml(s: &TestServer, token: &str, path: &str, body: &str) -> (StatusCode, Value) {
    let r = s
        .client()
        .post(format!("{}{path}", s.url))
        .bearer_auth(token)
        .header("content-type", "application/toml")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn kind_of(k: &DayKind, open: bool) -> &'static str {
    match k {
        DayKind::Weekday if open => "trading",
        DayKind::Weekday => "non_trading",
        DayKind::Weekend => "weekend",
        DayKind::MakeupWorkday { .. } => "makeup_workday",
        DayKind::Closure { closure_kind, .. } => match closure_kind.as_str() {
            "public_holiday" => "holiday",
            other => other,
        },
    }
}

#[tokio::test]
async fn api_queries_match_the_library() {
    let s = TestServer::start().await;
    let token = s
        .user_token("viewer", &[("product_design", "global")])
        .await;
    let lib = CalendarSet::bundled().unwrap();
    let sse = lib.get("sse").unwrap();

    let (st, cals) = get(&s, &token, "/api/v1/calendars").await;
    assert_eq!(st, StatusCode::OK, "{cals}");
    let ids: Vec<&str> = cals
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sse", "szse"]);
    assert_eq!(
        cals[0]["coverage"],
        json!({"first": "2015-01-01", "last": "2026-12-31"})
    );
    assert_eq!(cals[0]["days_remaining"], 36);
    assert!(
        cals[0]["coverage_warning"]["message_en"]
            .as_str()
            .unwrap()
            .contains("2026-12-31"),
        "{cals}"
    );

    // Every day of 2026 as the library sees it.
    let (st, days) = get(
        &s,
        &token,
        "/api/v1/calendars/sse/days?from=2026-01-01&to=2026-12-31",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let days = days.as_array().unwrap();
    assert_eq!(days.len(), 365);
    for d in days {
        let date = NaiveDate::parse_from_str(d["date"].as_str().unwrap(), "%Y-%m-%d").unwrap();
        let info = sse.day_info(date).unwrap();
        assert_eq!(d["trading"], info.open, "{date}");
        assert_eq!(d["kind"], kind_of(&info.kind, info.open), "{date}");
        assert_eq!(d["description_zh"], info.describe_zh(), "{date}");
    }
    assert_eq!(days.iter().filter(|d| d["trading"] == true).count(), 242);
    let feb16 = days.iter().find(|d| d["date"] == "2026-02-16").unwrap();
    assert_eq!(feb16["kind"], "holiday");
    assert_eq!(feb16["reason_zh"], "春节");
    let feb14 = days.iter().find(|d| d["date"] == "2026-02-14").unwrap();
    assert_eq!(feb14["kind"], "makeup_workday");
    assert_eq!(feb14["trading"], false);
    let szse_2024: Value = get(
        &s,
        &token,
        "/api/v1/calendars/szse/days?from=2024-02-09&to=2024-02-09",
    )
    .await
    .1;
    assert_eq!(szse_2024[0]["kind"], "exchange_only");

    let (st, v) = get(
        &s,
        &token,
        "/api/v1/calendars/sse/is-trading-day/2026-02-16",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["trading"], false);
    assert_eq!(v["day"]["description_en"], "Spring Festival closure");
    let (_, v) = get(
        &s,
        &token,
        "/api/v1/calendars/sse/is-trading-day/2026-02-13",
    )
    .await;
    assert_eq!(v["trading"], true);

    let (_, v) = get(&s, &token, "/api/v1/calendars/sse/next/2026-02-13?n=2").await;
    let t1 = sse
        .next_trading_day(NaiveDate::from_ymd_opt(2026, 2, 13).unwrap())
        .unwrap();
    let t2 = sse.next_trading_day(t1).unwrap();
    assert_eq!(v["days"], json!([t1.to_string(), t2.to_string()]));
    assert_eq!(v["result"], "2026-02-25");
    let (_, v) = get(&s, &token, "/api/v1/calendars/sse/prev/2026-02-24").await;
    assert_eq!(v["result"], "2026-02-13");

    let (st, v) = get(
        &s,
        &token,
        "/api/v1/calendars/sse/phase?at=2026-03-02T10:00:00%2B08:00",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["phase"], "continuous_trading");
    assert_eq!(v["phase_start"], "09:30");
    let (_, v) = get(
        &s,
        &token,
        "/api/v1/calendars/sse/phase?at=2026-02-16T10:00:00%2B08:00",
    )
    .await;
    assert_eq!(v["phase"], "closed");

    let (st, v) = get(
        &s,
        &token,
        "/api/v1/schedules/preview?expr=30%208%20*%20*%20*%20%40trading&count=3&from=2026-02-12",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let fires: Vec<&str> = v["fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["local"].as_str().unwrap())
        .collect();
    assert_eq!(
        fires,
        [
            "2026-02-12T08:30:00+08:00",
            "2026-02-13T08:30:00+08:00",
            "2026-02-24T08:30:00+08:00"
        ]
    );
    assert!(
        v["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["date"] == "2026-02-16"),
        "{v}"
    );
    assert_eq!(v["complete"], true);

    // The OpenAPI document lists the new endpoints.
    let doc: Value = s
        .client()
        .get(format!("{}/api/openapi.json", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/api/v1/calendars",
        "/api/v1/calendars/{id}/days",
        "/api/v1/calendars/import",
        "/api/v1/schedules/preview",
        "/api/v1/change-windows/evaluate",
        "/api/v1/change-windows/overrides/{id}/approve",
    ] {
        assert!(doc["paths"].get(p).is_some(), "OpenAPI lacks {p}");
    }
}

#[tokio::test]
async fn dates_outside_the_data_fail_closed_with_422() {
    let s = TestServer::start().await;
    let token = s.user_token("viewer", &[("auditor", "global")]).await;
    for path in [
        "/api/v1/calendars/sse/is-trading-day/2027-01-04",
        "/api/v1/calendars/sse/days?from=2026-12-30&to=2027-01-02",
        "/api/v1/calendars/sse/next/2026-12-31",
        "/api/v1/calendars/szse/prev/2014-01-02",
        "/api/v1/calendars/sse/phase?at=2027-01-04T10:00:00%2B08:00",
        "/api/v1/schedules/preview?expr=30%208%20*%20*%20*%20%40trading&from=2027-01-01",
    ] {
        let (st, v) = get(&s, &token, path).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {v}");
        assert_eq!(v["code"], "calendar.not_covered", "{path}");
        let zh = v["details"]["message_zh"].as_str().unwrap();
        assert!(
            zh.contains("未加载") && (zh.contains("2027") || zh.contains("2014")),
            "{zh}"
        );
    }
    // A preview that reaches the end of the data stops there and says so.
    let (st, v) = get(
        &s,
        &token,
        "/api/v1/schedules/preview?expr=0%2018%20*%20*%20*%20%40last-trading-day-of-month&count=5&from=2026-11-01",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["fires"].as_array().unwrap().len(), 2);
    assert_eq!(v["complete"], false);
    assert_eq!(v["stopped"]["code"], "calendar.not_covered");
    // Unknown calendar, bad date.
    let (st, v) = get(
        &s,
        &token,
        "/api/v1/calendars/nyse/is-trading-day/2026-01-05",
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("calendar.unknown"))
    );
    let (st, v) = get(
        &s,
        &token,
        "/api/v1/calendars/sse/is-trading-day/2026-13-01",
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("request.invalid_date"))
    );
}

#[tokio::test]
async fn import_dry_run_shows_the_diff_and_apply_is_audited_and_reloads() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let viewer = s
        .user_token("viewer", &[("product_design", "global")])
        .await;
    let dir = s.dir.path().join("calendars");

    // Invalid data: file, line and field named, nothing written.
    let bad = YEAR_2027.replace("date = 2027-01-09", "date = 2027-01-05");
    let (st, v) = post_toml(
        &s,
        &admin,
        "/api/v1/calendars/import?name=cn-2027.toml",
        &bad,
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["code"], "calendar.invalid_data");
    let en = v["details"]["message_en"].as_str().unwrap();
    assert!(
        en.contains("cn-2027.toml:") && en.contains("makeup_workday[0].date"),
        "{en}"
    );
    assert!(
        v["details"]["message_zh"]
            .as_str()
            .unwrap()
            .contains("周六或周日")
    );

    // Dry run (the default): the difference, nothing changed.
    let (st, v) = post_toml(&s, &admin, "/api/v1/calendars/import", YEAR_2027).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["dry_run"].as_bool(), v["applied"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(v["file"], "calendars/sse-szse-2027.toml");
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["calendar"], "sse");
    assert_eq!(changes[0]["new_year"], true);
    assert_eq!(changes[0]["added_closures"][0]["reason_zh"], "元旦");
    assert_eq!(changes[0]["trading_days_removed"], json!(["2027-01-01"]));
    assert_eq!(changes[0]["coverage_after"]["last"], "2027-12-31");
    assert!(
        v["lines"].as_array().unwrap().iter().any(|l| l
            .as_str()
            .unwrap()
            .contains("+ 调休上班 make-up workday 2027-01-09")),
        "{v}"
    );
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());
    let (st, _) = get(
        &s,
        &viewer,
        "/api/v1/calendars/sse/is-trading-day/2027-01-04",
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        !s.audit_actions()
            .await
            .iter()
            .any(|(a, _)| a == "calendar.import")
    );

    // Apply: written, audited with the diff, reloaded in place.
    let (st, v) = post_toml(
        &s,
        &admin,
        "/api/v1/calendars/import?dry_run=false",
        YEAR_2027,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["applied"], true);
    assert_eq!(
        std::fs::read_to_string(dir.join("sse-szse-2027.toml")).unwrap(),
        YEAR_2027
    );
    let records = s.state.store.audit_range(0, 100_000).await.unwrap();
    let rec = records
        .iter()
        .filter_map(|r| r.parsed())
        .find(|c| c.draft.action == "calendar.import")
        .expect("calendar.import audited");
    assert_eq!(rec.draft.actor.username, "admin");
    let after = rec.draft.after.clone().unwrap();
    assert_eq!(after["changes"][0]["added_closures"], 1);
    assert_eq!(
        after["changes"][0]["trading_days_removed"],
        json!(["2027-01-01"])
    );
    let (st, v) = get(
        &s,
        &viewer,
        "/api/v1/calendars/sse/is-trading-day/2027-01-04",
    )
    .await;
    assert_eq!((st, v["trading"].as_bool()), (StatusCode::OK, Some(true)));
    let (_, v) = get(
        &s,
        &viewer,
        "/api/v1/calendars/szse/is-trading-day/2027-01-01",
    )
    .await;
    assert_eq!(v["day"]["kind"], "holiday");
    let (_, cals) = get(&s, &viewer, "/api/v1/calendars").await;
    assert!(cals[0]["coverage_warning"].is_null(), "{cals}");
    // A restart loads the imported file.
    let again = ballast_server::calendar::CalendarRuntime::load(s.dir.path());
    assert_eq!(
        again
            .calendars()
            .unwrap()
            .get("sse")
            .unwrap()
            .coverage()
            .last,
        NaiveDate::from_ymd_opt(2027, 12, 31).unwrap()
    );
    // Re-importing the same file: replaces it, no change.
    let (_, v) = post_toml(&s, &admin, "/api/v1/calendars/import", YEAR_2027).await;
    assert_eq!(
        (
            v["replaces_file"].as_bool(),
            v["changes"][0]["unchanged"].as_bool()
        ),
        (Some(true), Some(true))
    );
}

#[tokio::test]
async fn permission_matrix_of_the_calendar_endpoints() {
    let s = with_policies().await;
    let auditor = s.user_token("auditor1", &[("auditor", "global")]).await;
    let designer = s
        .user_token("designer", &[("product_design", "global")])
        .await;
    let operator = s
        .user_token("operator", &[("automation_operator", "environment:prod")])
        .await;
    let testop = s
        .user_token("tester", &[("test_verification", "environment:test")])
        .await;
    let eval = json!({"environment": "prod", "at": "2026-11-25T10:00:00+08:00"});
    for token in [&auditor, &designer, &operator] {
        for path in [
            "/api/v1/calendars",
            "/api/v1/calendars/sse/days?from=2026-02-01&to=2026-02-28",
            "/api/v1/change-windows/overrides",
            "/api/v1/change-windows/policies",
        ] {
            let (st, v) = get(&s, token, path).await;
            assert_eq!(st, StatusCode::OK, "{path}: {v}");
        }
        let (st, v) = post(&s, token, "/api/v1/change-windows/evaluate", eval.clone()).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["outcome"], "block");
        assert_eq!(v["policy_id"], "prod-market-hours");
        assert!(
            v["reason_zh"]
                .as_str()
                .unwrap()
                .contains("策略 prod-market-hours"),
            "{v}"
        );
    }
    // Import needs calendar.manage: the auditor reads everything and changes nothing.
    for token in [&auditor, &designer] {
        for q in ["", "?dry_run=false"] {
            let (st, v) = post_toml(
                &s,
                token,
                &format!("/api/v1/calendars/import{q}"),
                YEAR_2027,
            )
            .await;
            assert_eq!(
                (st, v["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("authz.forbidden")),
                "{v}"
            );
        }
    }
    // Requesting an override needs job.run in the environment.
    let req = json!({"environment": "prod", "reason": "hotfix", "valid_from": "2026-11-25T10:00:00+08:00", "valid_until": "2026-11-25T12:00:00+08:00"});
    for token in [&auditor, &designer, &testop] {
        let (st, v) = post(&s, token, "/api/v1/change-windows/overrides", req.clone()).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    }
    let (st, ov) = post(
        &s,
        &operator,
        "/api/v1/change-windows/overrides",
        req.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{ov}");
    let id = ov["id"].as_str().unwrap();
    // Approval needs approval.approve: neither the auditor nor product design has it.
    for token in [&auditor, &designer] {
        let (st, v) = post(
            &s,
            token,
            &format!("/api/v1/change-windows/overrides/{id}/approve"),
            json!({}),
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("authz.forbidden")),
            "{v}"
        );
    }
    // No caller: 401.
    let r = s
        .client()
        .get(format!("{}/api/v1/calendars", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn override_requester_cannot_approve_and_a_second_person_can() {
    let s = with_policies().await;
    let operator = s
        .user_token("operator", &[("automation_operator", "environment:prod")])
        .await;
    let approver = s
        .user_token("approver", &[("platform_operations", "global")])
        .await;
    // Bad requests: no reason, time box over 24 h, unknown environment.
    for (body, code) in [
        (
            json!({"environment": "prod", "reason": " ", "valid_from": "2026-11-25T10:00:00+08:00", "valid_until": "2026-11-25T12:00:00+08:00"}),
            "override.reason_missing",
        ),
        (
            json!({"environment": "prod", "reason": "x", "valid_from": "2026-11-25T10:00:00+08:00", "valid_until": "2026-11-26T12:00:00+08:00"}),
            "override.time_box_invalid",
        ),
        (
            json!({"environment": "staging", "reason": "x", "valid_from": "2026-11-25T10:00:00+08:00", "valid_until": "2026-11-25T12:00:00+08:00"}),
            "authz.forbidden",
        ),
    ] {
        let (st, v) = post(&s, &operator, "/api/v1/change-windows/overrides", body).await;
        assert_eq!(v["code"], code, "{st} {v}");
    }
    let (st, ov) = post(
        &s,
        &operator,
        "/api/v1/change-windows/overrides",
        json!({"environment": "prod", "kind": "job.run", "reason": "紧急修复清算脚本 hotfix", "valid_from": "2026-11-25T10:00:00+08:00", "valid_until": "2026-11-25T12:00:00+08:00"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{ov}");
    assert_eq!(ov["status"], "pending");
    assert_eq!(ov["effective"], "pending");
    let id = ov["id"].as_str().unwrap().to_string();
    let approve = format!("/api/v1/change-windows/overrides/{id}/approve");
    // A pending override changes nothing.
    let eval = json!({"environment": "prod", "kind": "job.run", "at": "2026-11-25T10:30:00+08:00"});
    let (_, v) = post(
        &s,
        &operator,
        "/api/v1/change-windows/evaluate",
        eval.clone(),
    )
    .await;
    assert_eq!(v["outcome"], "block");

    // The requester cannot approve, even holding the approver permission.
    let (st, v) = post(&s, &operator, &approve, json!({})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(
        v["code"] == "sod.self_approval" || v["code"] == "authz.forbidden",
        "{v}"
    );
    ballast_server::admin::grant(
        &s.state,
        "operator",
        &service::Grant {
            role: "platform_operations".into(),
            scope: "environment:prod".into(),
        },
    )
    .await
    .unwrap();
    let operator2 = ballast_server::admin::token_create(&s.state, "operator", "t2", &[], None)
        .await
        .unwrap();
    let (st, v) = post(&s, &operator2, &approve, json!({})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("sod.self_approval")),
        "{v}"
    );

    // A second person approves: time-boxed, audited, in effect for the covered operation only.
    let (st, v) = post(&s, &approver, &approve, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["approver"].as_str()),
        (Some("approved"), Some("approver"))
    );
    assert_eq!(
        v["effective"], "active",
        "the clock stands at 10:00 Beijing"
    );
    let (st, v) = post(&s, &approver, &approve, json!({})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("override.not_pending"))
    );
    let (_, v) = post(
        &s,
        &operator,
        "/api/v1/change-windows/evaluate",
        eval.clone(),
    )
    .await;
    assert_eq!(v["outcome"], "allow", "{v}");
    assert_eq!(v["override_id"], id.as_str());
    assert_eq!(v["overridden_outcome"], "block");
    let (_, v) = post(
        &s,
        &operator,
        "/api/v1/change-windows/evaluate",
        json!({"environment": "prod", "kind": "deploy.apply", "at": "2026-11-25T10:30:00+08:00"}),
    )
    .await;
    assert_eq!(
        v["outcome"], "block",
        "another operation kind is not covered"
    );
    let (_, v) = post(
        &s,
        &operator,
        "/api/v1/change-windows/evaluate",
        json!({"environment": "prod", "kind": "job.run", "at": "2026-11-25T12:00:00+08:00"}),
    )
    .await;
    assert_eq!(v["outcome"], "block", "the time box ends at 12:00");
    assert!(
        v["reason_en"].as_str().unwrap().contains("has expired"),
        "{v}"
    );

    let actions = s.audit_actions().await;
    for (a, o) in [
        ("override.request", "success"),
        ("change_window.override.approve", "denied"),
        ("override.approve", "success"),
    ] {
        assert!(
            actions.iter().any(|(x, y)| x == a && y == o),
            "{a} {o}: {actions:?}"
        );
    }
    // Stored across restarts (a fresh runtime on the same data directory).
    let again = ballast_server::calendar::CalendarRuntime::load(s.dir.path());
    let recs = again.override_records().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].approver.as_deref(), Some("approver"));
    let ctx = ballast_calendar::OperationContext {
        environment: "prod".into(),
        business_system: String::new(),
        tier: String::new(),
        kind: "job.run".into(),
    };
    let d = again.decide("sse", &ctx, bj(2026, 11, 25, 10, 30)).unwrap();
    assert_eq!(d.override_id.as_deref(), Some(id.as_str()));
}

fn execute_on_prod() -> Action {
    Action::new(
        ActionKind::Execute,
        Permission::JobRun,
        "job.run",
        Target::environment("prod"),
    )
}

#[tokio::test]
async fn the_guard_refuses_execution_in_the_change_window_at_execution_time() {
    let s = with_policies().await;
    let p = ballast_server::admin::local_principal(s.clock_now());
    let action = execute_on_prod();

    // 10:00 Beijing on a trading day (Wednesday 2026-11-25): blocked, audited, policy named.
    s.clock.set(bj(2026, 11, 25, 10, 0));
    let e = service::authorize(&s.state, &p, &action).await.unwrap_err();
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    assert_eq!(e.problem.code, "change_window.blocked");
    assert!(
        e.problem.message_zh.contains("策略 prod-market-hours"),
        "{}",
        e.problem.message_zh
    );
    assert!(
        e.problem.message_en.contains("policy prod-market-hours"),
        "{}",
        e.problem.message_en
    );
    let last = s.audit_actions().await.pop().unwrap();
    assert_eq!(last, ("job.run".to_string(), "denied".to_string()));

    // 20:00 the same day: allowed, and the decision is recorded.
    s.clock.set(bj(2026, 11, 25, 20, 0));
    let d = service::authorize(&s.state, &p, &action).await.unwrap();
    assert!(d.warnings().is_empty());
    assert_eq!(
        s.audit_actions().await.pop().unwrap().0,
        "change_window.decision"
    );

    // 08:45: allowed with a warning to acknowledge; recorded.
    s.clock.set(bj(2026, 11, 25, 8, 45));
    let d = service::authorize(&s.state, &p, &action).await.unwrap();
    assert_eq!(d.warnings().len(), 1);
    assert!(
        d.warnings()[0].1.contains("acknowledgement"),
        "{:?}",
        d.warnings()
    );

    // Saturday 10:00: not a trading day.
    s.clock.set(bj(2026, 11, 28, 10, 0));
    assert!(service::authorize(&s.state, &p, &action).await.is_ok());

    // 2027-01-04 10:00: outside the data → the market may be open → blocked.
    s.clock.set(bj(2027, 1, 4, 10, 0));
    let e = service::authorize(&s.state, &p, &action).await.unwrap_err();
    assert_eq!(e.problem.code, "change_window.blocked");
    assert!(
        e.problem.message_en.contains("not loaded for 2027")
            && e.problem.message_en.contains("possibly open"),
        "{}",
        e.problem.message_en
    );
    assert!(
        e.problem.message_zh.contains("按可能开市处理"),
        "{}",
        e.problem.message_zh
    );

    // Mutations of other environments, reads and platform administration are not governed.
    s.clock.set(bj(2026, 11, 25, 10, 0));
    let test_env = Action::new(
        ActionKind::Execute,
        Permission::JobRun,
        "job.run",
        Target::environment("test"),
    );
    assert!(service::authorize(&s.state, &p, &test_env).await.is_ok());
    let zones = Action::new(
        ActionKind::Mutate,
        Permission::EnvironmentManage,
        "environment.zones",
        Target::environment("prod"),
    );
    assert!(service::authorize(&s.state, &p, &zones).await.is_ok());

    // During an approved override: allowed, with the override named and recorded.
    let operator = s
        .user_token("operator", &[("automation_operator", "environment:prod")])
        .await;
    let approver = s
        .user_token("approver", &[("platform_operations", "global")])
        .await;
    let (_, ov) = post(
        &s,
        &operator,
        "/api/v1/change-windows/overrides",
        json!({"environment": "prod", "reason": "故障处置 incident fix", "valid_from": "2026-11-25T10:00:00+08:00", "valid_until": "2026-11-25T11:00:00+08:00"}),
    )
    .await;
    let id = ov["id"].as_str().unwrap().to_string();
    let (st, _) = post(
        &s,
        &approver,
        &format!("/api/v1/change-windows/overrides/{id}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    s.clock.set(bj(2026, 11, 25, 10, 30));
    let d = service::authorize(&s.state, &p, &action).await.unwrap();
    let w = d.warnings();
    assert!(w.len() == 1 && w[0].1.contains(&id), "{w:?}");
    let records = s.state.store.audit_range(0, 100_000).await.unwrap();
    let last = records.last().and_then(|r| r.parsed()).unwrap();
    assert_eq!(last.draft.action, "change_window.decision");
    assert_eq!(
        last.draft.after.as_ref().unwrap()["override_id"],
        id.as_str()
    );
    assert_eq!(
        last.draft.after.as_ref().unwrap()["overridden_outcome"],
        "block"
    );
    // After the time box: blocked again.
    s.clock.set(bj(2026, 11, 25, 11, 0));
    let e = service::authorize(&s.state, &p, &action).await.unwrap_err();
    assert_eq!(e.problem.code, "change_window.blocked");
}

#[tokio::test]
async fn invalid_policies_fail_closed() {
    let s = TestServer::start_with(|c| {
        std::fs::write(
            c.data_dir.join("change-windows.toml"),
            POLICIES.replace("outcome = \"warn\"", "outcome = \"maybe\""),
        )
        .unwrap();
    })
    .await;
    let p = ballast_server::admin::local_principal(s.clock_now());
    s.clock.set(bj(2026, 11, 28, 10, 0));
    let e = service::authorize(&s.state, &p, &execute_on_prod())
        .await
        .unwrap_err();
    assert_eq!(e.problem.code, "change_window.unavailable");
    assert!(
        e.problem.message_en.contains("change-windows.toml:"),
        "{}",
        e.problem.message_en
    );
    let token = s.admin_token().await;
    let (_, v) = get(&s, &token, "/api/v1/change-windows/policies").await;
    assert_eq!(v["error"]["code"], "policy.invalid");
}

/// Extracts the `<td …>…</td>` of a date from the month page.
fn cell<'a>(page: &'a str, date: &str) -> &'a str {
    let at = page
        .find(&format!("data-date=\"{date}\""))
        .unwrap_or_else(|| panic!("no cell for {date}"));
    let start = page[..at].rfind("<td").unwrap();
    let end = at + page[at..].find("</td>").unwrap();
    &page[start..end]
}

#[tokio::test]
async fn month_page_marks_holidays_and_makeup_days_and_warns_admins() {
    let s = with_policies().await;
    let (c, _) = admin_ready(&s).await;
    let page = c
        .get(format!("{}/calendar?calendar=sse&month=2026-02", s.url))
        .header("accept-language", "zh-CN")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    let holiday = cell(&page, "2026-02-16");
    assert!(
        holiday.contains("class=\"day holiday\"") && holiday.contains("春节"),
        "{holiday}"
    );
    let makeup = cell(&page, "2026-02-14");
    assert!(
        makeup.contains("class=\"day makeup\"") && makeup.contains("调休"),
        "{makeup}"
    );
    assert!(cell(&page, "2026-02-13").contains("class=\"day trading\""));
    assert!(cell(&page, "2026-02-01").contains("class=\"day weekend\""));
    // Monday first: 2026-02-01 is a Sunday, so the first row has six empty cells.
    let grid = &page[page.find("id=\"month-grid\"").unwrap()..];
    let body = &grid[grid.find("<tbody>").unwrap()..];
    let first_row = &body[..body.find("</tr>").unwrap()];
    assert_eq!(first_row.matches("day out").count(), 6, "{first_row}");
    let prev = &page[page.find("id=\"prev-month\"").unwrap()..];
    assert!(
        prev[..prev.find('>').unwrap()].contains("month=2026-01"),
        "{prev}"
    );
    let next = &page[page.find("id=\"next-month\"").unwrap()..];
    assert!(
        next[..next.find('>').unwrap()].contains("month=2026-03"),
        "{next}"
    );
    // Coverage ends 2026-12-31 and today is 2026-11-25: the administrator is warned.
    let banner = &page[page
        .find("id=\"coverage-warning\"")
        .expect("coverage banner")..];
    assert!(
        banner.contains("2026-12-31") && banner.contains("36"),
        "{banner}"
    );
    assert!(page.contains("prod-market-hours"));
    // Exchange-only closure on SZSE 2024-02-09, in English.
    let en = c
        .get(format!("{}/calendar?calendar=szse&month=2024-02", s.url))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let c9 = cell(&en, "2024-02-09");
    assert!(
        c9.contains("exchange-only") && c9.contains("Exchange-only closure"),
        "{c9}"
    );
    // Outside the data: said so, no grid.
    let r = c
        .get(format!("{}/calendar?calendar=sse&month=2027-01", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(body.contains("2027") && !body.contains("id=\"month-grid\""));
    // The evaluation form.
    let r = c
        .get(format!(
            "{}/calendar?eval_env=prod&eval_at=2026-11-25T10:00",
            s.url
        ))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(r.contains("data-outcome=\"block\""), "{r}");
    // Home and navigation link the page.
    let home = c
        .get(format!("{}/", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("href=\"/calendar\""));
}

#[tokio::test]
async fn non_approvers_get_no_approve_button_and_no_banner() {
    let s = with_policies().await;
    let operator = s
        .user_token("operator", &[("automation_operator", "environment:prod")])
        .await;
    let (_, ov) = post(
        &s,
        &operator,
        "/api/v1/change-windows/overrides",
        json!({"environment": "prod", "reason": "page test", "valid_from": "2026-11-25T10:00:00+08:00", "valid_until": "2026-11-25T11:00:00+08:00"}),
    )
    .await;
    let id = ov["id"].as_str().unwrap().to_string();
    // A product designer (not privileged, so no second factor needed) signs in.
    let input = service::CreateUser {
        username: "designer".into(),
        real_name: "设计 Designer".into(),
        department: "产品部".into(),
        kind: "employee".into(),
        vendor: None,
        contract_end: None,
        roles: vec![service::Grant {
            role: "product_design".into(),
            scope: "global".into(),
        }],
    };
    let (_, pw) = ballast_server::admin::user_add(&s.state, &input)
        .await
        .unwrap();
    let c = s.client();
    login(&c, &s.url, "designer", &pw).await;
    let csrf = csrf_of(&c, &s.url, "/account/password").await;
    let new = "Quiet-Harbour-2026!";
    c.post(format!("{}/account/password", s.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("current_password", pw.as_str()),
            ("new_password", new),
            ("confirm_password", new),
        ])
        .send()
        .await
        .unwrap();
    let page = c
        .get(format!("{}/calendar", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"month-grid\""), "{page}");
    assert!(
        !page.contains("id=\"coverage-warning\""),
        "only administrators get the banner"
    );
    assert!(page.contains(&format!("data-override=\"{id}\"")));
    assert!(
        !page.contains(&format!("/calendar/overrides/{id}/approve")),
        "no approve button"
    );
    assert!(
        !page.contains("id=\"override-form\""),
        "no job.run, no request form"
    );
    // Posting the approval anyway is refused by the guard.
    let csrf = csrf_of(&c, &s.url, "/calendar").await;
    let r = c
        .post(format!("{}/calendar/overrides/{id}/approve", s.url))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        s.state.calendar.override_records().unwrap()[0]
            .approver
            .is_none()
    );
}

#[tokio::test]
async fn without_a_policy_file_the_builtin_default_is_in_force() {
    let s = TestServer::start_with(|c| {
        std::fs::remove_file(c.data_dir.join("change-windows.toml")).unwrap();
    })
    .await;
    let p = ballast_server::admin::local_principal(s.clock_now());

    // A trading day at 10:00 Beijing: production is closed, other environments are not.
    s.clock.set(bj(2026, 11, 25, 10, 0));
    let e = service::authorize(&s.state, &p, &execute_on_prod())
        .await
        .unwrap_err();
    assert_eq!(e.problem.code, "change_window.blocked");
    assert!(
        e.problem
            .message_en
            .contains("policy builtin-prod-market-hours"),
        "{}",
        e.problem.message_en
    );
    assert!(
        e.problem.message_zh.contains("内置默认策略"),
        "{}",
        e.problem.message_zh
    );
    let on_test = Action::new(
        ActionKind::Execute,
        Permission::JobRun,
        "job.run",
        Target::environment("test"),
    );
    service::authorize(&s.state, &p, &on_test).await.unwrap();
    // The same hour on a Saturday, and after the close: allowed.
    for at in [bj(2026, 11, 28, 10, 0), bj(2026, 11, 25, 15, 30)] {
        s.clock.set(at);
        service::authorize(&s.state, &p, &execute_on_prod())
            .await
            .unwrap();
    }

    // The API and the page say which policies are in force, and how to replace them.
    let token = s.admin_token().await;
    let (st, v) = get(&s, &token, "/api/v1/change-windows/policies").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["source"], "builtin");
    assert_eq!(v["builtin"], true);
    assert_eq!(v["policies"][0]["id"], "builtin-prod-market-hours");
    let (c, _) = admin_ready(&s).await;
    let page = c
        .get(format!("{}/calendar", s.url))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("the built-in default policy is in force")
            && page.contains("builtin-prod-market-hours"),
        "{page}"
    );

    // An administrator's file replaces it; one without policies restricts nothing.
    std::fs::write(s.dir.path().join("change-windows.toml"), "schema = 1\n").unwrap();
    s.state.calendar.reload_policies().unwrap();
    s.clock.set(bj(2026, 11, 25, 10, 0));
    service::authorize(&s.state, &p, &execute_on_prod())
        .await
        .unwrap();
    let (_, v) = get(&s, &token, "/api/v1/change-windows/policies").await;
    assert_eq!(v["source"], "change-windows.toml");
    assert_eq!(v["builtin"], false);
}
