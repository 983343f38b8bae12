//! The JSON API: probes, the permission matrix over every endpoint and built-in role, separation of
//! duties, bad input.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::TestServer;

#[tokio::test]
async fn first_start_probes_and_openapi() {
    let s = TestServer::start().await;
    assert_eq!(s.admin_password.len(), 20);
    let file = s.dir.path().join("initial-admin-password");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        s.admin_password
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let c = s.client();
    assert_eq!(
        c.get(format!("{}/healthz", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let ready: Value = c
        .get(format!("{}/readyz", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready,
        json!({"database": true, "migrations_current": true, "audit_chain_verified": true})
    );
    let metrics = c
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "ballast_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("ballast_db_up{backend=\"sqlite\"} 1"));
    assert!(metrics.contains("ballast_db_pool_connections{state=\"idle\"}"));
    let doc: Value = c
        .get(format!("{}/api/openapi.json", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/users",
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/api/v1/tokens",
        "/readyz",
    ] {
        assert!(paths.contains_key(p), "OpenAPI lacks {p}");
    }
    // The bootstrap itself is audited.
    let actions = s.audit_actions().await;
    assert!(actions.contains(&("user.create".into(), "success".into())));
}

/// (method, path, body, permission the endpoint needs)
fn endpoints() -> Vec<(&'static str, String, Option<Value>, &'static str)> {
    vec![
        ("GET", "/api/v1/users".into(), None, "user.read"),
        (
            "POST",
            "/api/v1/users".into(),
            Some(
                json!({"username": "x1", "real_name": "X", "department": "D", "type": "employee"}),
            ),
            "user.manage",
        ),
        (
            "POST",
            "/api/v1/users/1/disable".into(),
            Some(json!({"reason": "t"})),
            "user.manage",
        ),
        (
            "POST",
            "/api/v1/users/1/enable".into(),
            Some(json!({"reason": "t"})),
            "user.manage",
        ),
        (
            "POST",
            "/api/v1/users/1/reset-password".into(),
            None,
            "user.manage",
        ),
        (
            "POST",
            "/api/v1/users/1/reset-mfa".into(),
            None,
            "user.manage",
        ),
        (
            "POST",
            "/api/v1/users/1/roles".into(),
            Some(json!({"role": "auditor", "scope": "global"})),
            "role.manage",
        ),
        (
            "POST",
            "/api/v1/users/1/roles/revoke".into(),
            Some(json!({"role": "platform_admin", "scope": "global"})),
            "role.manage",
        ),
        ("GET", "/api/v1/roles".into(), None, "role.read"),
        (
            "GET",
            "/api/v1/environments".into(),
            None,
            "environment.read",
        ),
        ("GET", "/api/v1/audit".into(), None, "audit.read"),
        ("GET", "/api/v1/audit/verify".into(), None, "audit.read"),
        (
            "GET",
            "/api/v1/audit/export?format=csv".into(),
            None,
            "audit.export",
        ),
    ]
}

async fn call(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: &Option<Value>,
) -> reqwest::Response {
    let url = format!("{base}{path}");
    let req = match method {
        "GET" => c.get(url),
        _ => c.post(url),
    };
    let req = req.bearer_auth(token);
    let req = match body {
        Some(b) => req.json(b),
        None => req,
    };
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_endpoint_refuses_every_role_without_its_permission() {
    let s = TestServer::start().await;
    let c = s.client();
    let roles = ballast_core::authz::builtin_roles();
    for role in &roles {
        let token = s
            .user_token(
                &format!("u-{}", role.key.replace('_', "-")),
                &[(&role.key, "global")],
            )
            .await;
        for (method, path, body, perm) in endpoints() {
            let held = role.permissions.iter().any(|p| p.key() == perm);
            let res = call(&c, &s.url, &token, method, &path, &body).await;
            let status = res.status();
            if held {
                assert_ne!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{} should be allowed {method} {path}",
                    role.key
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{} must be refused {method} {path}",
                    role.key
                );
                let e: Value = res.json().await.unwrap();
                assert_eq!(e["code"], "authz.forbidden", "{method} {path}");
                assert!(e["details"]["message_zh"].as_str().unwrap().contains(perm));
            }
        }
    }
    // Refusals are audited as denied, and nothing else was written for them.
    let denied = s
        .audit_actions()
        .await
        .iter()
        .filter(|(_, o)| o == "denied")
        .count();
    assert!(denied > 20, "{denied}");
    // No token at all → 401 with a code.
    let res = c
        .get(format!("{}/api/v1/users", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "auth.required");
}

#[tokio::test]
async fn separation_of_duties_is_enforced_at_grant_time() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let c = s.client();
    let created: Value = call(
        &c,
        &s.url,
        &admin,
        "POST",
        "/api/v1/users",
        &Some(json!({
        "username": "zhang.san", "real_name": "张三", "department": "审计部", "type": "employee",
        "roles": [{"role": "auditor", "scope": "global"}]})),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = created["user"]["id"].as_i64().unwrap();
    assert_eq!(created["user"]["must_change_password"], true);
    let res = call(
        &c,
        &s.url,
        &admin,
        "POST",
        &format!("/api/v1/users/{id}/roles"),
        &Some(json!({"role": "automation_operator", "scope": "environment:prod"})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["code"], "authz.separation_of_duties");
    assert!(
        e["details"]["message_zh"]
            .as_str()
            .unwrap()
            .contains("职责分离")
    );
    // Creating a user with two exclusive roles at once is refused too, and nothing is created.
    let res = call(&c, &s.url, &admin, "POST", "/api/v1/users", &Some(json!({
        "username": "li.si", "real_name": "李四", "department": "运维部", "type": "employee",
        "roles": [{"role": "ops_development", "scope": "environment:test"}, {"role": "test_verification", "scope": "environment:test"}]}))).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(s.state.store.user_by_name("li.si").await.unwrap().is_none());
    // Different environments are fine.
    let ok = call(
        &c,
        &s.url,
        &admin,
        "POST",
        &format!("/api/v1/users/{id}/roles"),
        &Some(json!({"role": "product_design", "scope": "environment:test"})),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    let actions = s.audit_actions().await;
    assert!(actions.contains(&("role.grant".into(), "denied".into())));
    assert!(actions.contains(&("role.grant".into(), "success".into())));
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_writes_nothing() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let c = s.client();
    let before = s.audit_actions().await.len();
    let post = |body: &'static str| {
        c.post(format!("{}/api/v1/users", s.url))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: Vec<(&str, StatusCode, &str)> = vec![
        (
            "{not json",
            StatusCode::BAD_REQUEST,
            "request.malformed_json",
        ),
        (
            "{\"username\": \"a\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.invalid_fields",
        ),
        (
            "{\"username\":\"ok.name\",\"real_name\":\"R\",\"department\":\"D\",\"type\":\"employee\",\"admin\":true}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.invalid_fields",
        ),
        (
            "{\"username\":\"Robert'); DROP TABLE users;--\",\"real_name\":\"R\",\"department\":\"D\",\"type\":\"employee\"}",
            StatusCode::BAD_REQUEST,
            "user.username_invalid",
        ),
        (
            "{\"username\":\"ok.name\",\"real_name\":\"R\",\"department\":\"D\",\"type\":\"contractor\"}",
            StatusCode::BAD_REQUEST,
            "user.type_invalid",
        ),
        (
            "{\"username\":\"ok.name\",\"real_name\":\"R\",\"department\":\"D\",\"type\":\"outsourced\",\"vendor\":\"V\",\"contract_end\":\"2026-01-01\"}",
            StatusCode::BAD_REQUEST,
            "user.contract_ended",
        ),
    ];
    for (body, status, code) in cases {
        let res = post(body).await.unwrap();
        assert_eq!(res.status(), status, "{body}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["code"], code, "{body}: {e}");
        assert!(
            !e["message"].as_str().unwrap().is_empty()
                && !e["details"]["message_zh"].as_str().unwrap().is_empty()
        );
    }
    // Oversize body.
    let big = format!("{{\"username\":\"{}\"}}", "a".repeat(2 << 20));
    let res = c
        .post(format!("{}/api/v1/users", s.url))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Invalid IDs.
    let res = c
        .post(format!("{}/api/v1/users/not-a-number/disable", s.url))
        .bearer_auth(&admin)
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    let res = c
        .post(format!("{}/api/v1/users/99999/disable", s.url))
        .bearer_auth(&admin)
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "not_found");
    // Script-looking text is stored as text.
    let res = post("{\"username\":\"xss.user\",\"real_name\":\"<script>alert(1)</script>\",\"department\":\"' OR 1=1 --\",\"type\":\"employee\"}").await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let u = s
        .state
        .store
        .user_by_name("xss.user")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.real_name, "<script>alert(1)</script>");
    // Only the successful create was audited as success; nothing was logged for the refusals.
    let after = s.audit_actions().await;
    let new: Vec<_> = after[before..]
        .iter()
        .filter(|(_, o)| o == "success")
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
}

#[tokio::test]
async fn tokens_are_scoped_and_expire() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let c = s.client();
    let res = call(
        &c,
        &s.url,
        &admin,
        "POST",
        "/api/v1/tokens",
        &Some(json!({"name": "ro", "permissions": ["user.read"], "days": 1})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let t: Value = res.json().await.unwrap();
    let ro = t["secret"].as_str().unwrap().to_string();
    assert!(
        t["token"]["token_hash"].as_str().unwrap().len() == 64
            && !t["token"]["token_hash"].as_str().unwrap().contains(&ro)
    );
    assert_eq!(
        call(&c, &s.url, &ro, "GET", "/api/v1/users", &None)
            .await
            .status(),
        StatusCode::OK
    );
    let res = call(&c, &s.url, &ro, "GET", "/api/v1/roles", &None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "auth.token_scope"
    );
    // Cannot mint a permission one does not hold.
    let res = call(
        &c,
        &s.url,
        &admin,
        "POST",
        "/api/v1/tokens",
        &Some(json!({"name": "x", "permissions": ["job.run"]})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    s.clock.advance(chrono::Duration::days(2));
    let res = call(&c, &s.url, &ro, "GET", "/api/v1/users", &None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "auth.token_expired"
    );
}

#[tokio::test]
async fn outsourced_accounts_are_disabled_on_contract_end() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let c = s.client();
    let created: Value = call(&c, &s.url, &admin, "POST", "/api/v1/users", &Some(json!({
        "username": "vendor.wang", "real_name": "王五", "department": "外包", "type": "outsourced",
        "vendor": "某科技公司", "contract_end": "2026-11-27", "roles": [{"role": "product_design", "scope": "global"}]}))).await.json().await.unwrap();
    assert_eq!(created["user"]["kind"]["type"], "outsourced");
    let token = ballast_server::admin::token_create(&s.state, "vendor.wang", "t", &[], None)
        .await
        .unwrap();
    assert_eq!(
        call(&c, &s.url, &token, "GET", "/api/v1/environments", &None)
            .await
            .status(),
        StatusCode::OK
    );
    // Beijing date 2026-11-27 starts at 16:00 UTC on the 26th.
    s.clock.set(
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 26, 16, 0, 1)
            .single()
            .unwrap(),
    );
    assert!(
        ballast_server::worker::tick(&s.state, "test")
            .await
            .unwrap()
    );
    let u = s
        .state
        .store
        .user_by_name("vendor.wang")
        .await
        .unwrap()
        .unwrap();
    assert!(u.disabled);
    let res = call(&c, &s.url, &token, "GET", "/api/v1/environments", &None).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "token revoked with the account"
    );
    let actions = s.audit_actions().await;
    assert!(actions.contains(&("user.disable".into(), "success".into())));
}
