//! Operation automation end to end on a real server: ad-hoc commands and plans on the server's own
//! host, a real OpenSSH sshd and a real agent over mutual TLS; guards (dangerous content, change
//! window, separation of duties); secrets masked; failure policies; recovery after a crash.

use std::time::Duration;

use ballast_store::{RunRow, StepRow, TaskRow};
use serde_json::{Value, json};

use crate::TestServer;

pub(crate) async fn call(
    s: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s
        .client()
        .request(method, format!("{}{path}", s.url))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    call(s, token, reqwest::Method::POST, path, Some(body)).await
}

pub(crate) async fn get(s: &TestServer, token: &str, path: &str) -> (u16, Value) {
    call(s, token, reqwest::Method::GET, path, None).await
}

/// Polls a run until `done` says so (or 30 s pass).
pub(crate) async fn wait_run(
    s: &TestServer,
    token: &str,
    id: i64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..300 {
        let (st, d) = get(s, token, &format!("/api/v1/runs/{id}")).await;
        assert_eq!(st, 200, "{d}");
        if done(&d) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {id} did not reach the expected state");
}

pub(crate) fn finished(d: &Value) -> bool {
    d["finished"] == true
}

fn status_is(s: &'static str) -> impl Fn(&Value) -> bool {
    move |d: &Value| d["run"]["status"] == s
}

async fn output(s: &TestServer, token: &str, run: i64, task: i64) -> (String, String) {
    let (st, o) = get(s, token, &format!("/api/v1/runs/{run}/tasks/{task}/output")).await;
    assert_eq!(st, 200, "{o}");
    let mut out = String::new();
    let mut err = String::new();
    for c in o["chunks"].as_array().unwrap() {
        if c["stream"] == "stdout" {
            out.push_str(c["text"].as_str().unwrap());
        } else {
            err.push_str(c["text"].as_str().unwrap());
        }
    }
    (out, err)
}

async fn operator(s: &TestServer, name: &str) -> String {
    s.user_token(
        name,
        &[
            ("automation_operator", "environment:test"),
            ("automation_operator", "environment:prod"),
        ],
    )
    .await
}

#[tokio::test]
async fn adhoc_command_on_the_servers_own_host() {
    let s = TestServer::start().await;
    let op = operator(&s, "op1").await;
    let (st, started) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": "local", "command": "echo ok; echo warn >&2; exit 0"}),
    )
    .await;
    assert_eq!(st, 200, "{started}");
    let id = started["run_id"].as_i64().unwrap();
    let d = wait_run(&s, &op, id, finished).await;
    assert_eq!(d["run"]["status"], "succeeded", "{d}");
    let t = &d["tasks"][0];
    assert_eq!(t["host"], "local");
    assert_eq!(t["status"], "succeeded");
    assert_eq!(t["exit_code"], 0);
    let (out, err) = output(&s, &op, id, t["id"].as_i64().unwrap()).await;
    assert_eq!(out, "ok\n");
    assert_eq!(err, "warn\n");
    let audit = s.audit_actions().await;
    assert!(audit.contains(&("job.run.start".into(), "success".into())));
    assert!(audit.contains(&("job.run.finish".into(), "success".into())));

    // A failing command: exit code kept, run finished as failed? (ad-hoc runs ignore failures to
    // report every host; the host's status says it).
    let (_, started) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": "local", "command": "exit 7"}),
    )
    .await;
    let id = started["run_id"].as_i64().unwrap();
    let d = wait_run(&s, &op, id, finished).await;
    assert_eq!(d["tasks"][0]["status"], "failed");
    assert_eq!(d["tasks"][0]["exit_code"], 7);

    // `local` is not a target in prod (exec.local_environments).
    let (_, started) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "prod", "targets": "local", "command": "echo hi"}),
    )
    .await;
    if let Some(id) = started["run_id"].as_i64() {
        let d = wait_run(&s, &op, id, finished).await;
        assert_eq!(d["tasks"][0]["status"], "refused", "{d}");
        assert_eq!(d["tasks"][0]["error_code"], "exec.local_not_allowed");
    } else {
        // The change window may refuse prod outright; either way nothing ran.
        assert!(started["code"].as_str().is_some(), "{started}");
    }
}

#[tokio::test]
async fn dangerous_commands_are_blocked_before_anything_runs() {
    let s = TestServer::start().await;
    let op = operator(&s, "op2").await;
    for cmd in [
        "sudo /bin/rm -rf /",
        "true && rm -rf \"/\"",
        "bash -c 'mkfs.ext4 /dev/sdb'",
        "env X=1 dd if=/dev/zero of=/dev/sda",
    ] {
        let (st, v) = post(
            &s,
            &op,
            "/api/v1/exec",
            json!({"environment": "test", "targets": "local", "command": cmd}),
        )
        .await;
        assert_eq!(st, 403, "{cmd}: {v}");
        assert_eq!(v["code"], "danger.blocked", "{cmd}: {v}");
    }
    let audit = s.audit_actions().await;
    assert!(
        audit
            .iter()
            .filter(|(a, o)| a == "job.run" && o == "denied")
            .count()
            >= 4
    );
    // Nothing was started.
    let (_, runs) = get(&s, &op, "/api/v1/runs").await;
    assert_eq!(runs.as_array().unwrap().len(), 0);
    // A benign look-alike runs.
    let (st, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": "local", "command": "echo 'rm -rf /'"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
}

#[tokio::test]
async fn script_goes_online_only_with_a_second_persons_approval() {
    let s = TestServer::start().await;
    let dev = s.user_token("dev1", &[("ops_development", "global")]).await;
    let approver = s
        .user_token("ops1", &[("platform_operations", "global")])
        .await;
    let op = operator(&s, "op3").await;
    let (st, v) = post(
        &s,
        &dev,
        "/api/v1/scripts",
        json!({"name": "hello", "language": "bash", "content": "echo hello \"$1\"\n", "note": "first"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["version"], 1);
    let (_, v) = post(
        &s,
        &dev,
        "/api/v1/scripts",
        json!({"name": "hello", "language": "bash", "content": "echo hello, \"$1\"\n", "note": "comma"}),
    )
    .await;
    assert_eq!(v["version"], 2);
    let (_, diff) = get(&s, &dev, "/api/v1/scripts/hello/diff?from=1&to=2").await;
    assert!(
        diff["unified"]
            .as_str()
            .unwrap()
            .contains("+echo hello, \"$1\""),
        "{diff}"
    );

    // A plan using it cannot run in production while no version is online.
    let plan = json!({
        "name": "greet", "description": "",
        "steps": [{"name": "say", "kind": "script", "script": "hello", "args": ["world"], "targets": "local"}]
    });
    let (st, v) = post(&s, &dev, "/api/v1/plans", plan).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = post(
        &s,
        &op,
        "/api/v1/runs",
        json!({"plan": "greet", "environment": "prod"}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["code"], "script.no_runnable_version", "{v}");

    // Request online; the author cannot approve it, even holding the approval permission.
    let (st, v) = post(
        &s,
        &dev,
        "/api/v1/scripts/hello/versions/2/state",
        json!({"state": "online", "reason": "reviewed"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let approval = v["approval_id"].as_i64().unwrap();
    let (st, v) = post(
        &s,
        &dev,
        &format!("/api/v1/approvals/{approval}/decide"),
        json!({"approve": true}),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = post(
        &s,
        &approver,
        &format!("/api/v1/approvals/{approval}/decide"),
        json!({"approve": true, "comment": "ok"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, sc) = get(&s, &dev, "/api/v1/scripts/hello").await;
    assert_eq!(sc["versions"][1]["state"], "online");
    assert_eq!(sc["versions"][1]["state_changed_by"], "ops1");
    assert_eq!(sc["versions"][0]["state"], "draft");
    // Decided once.
    let (st, _) = post(
        &s,
        &approver,
        &format!("/api/v1/approvals/{approval}/decide"),
        json!({"approve": false}),
    )
    .await;
    assert_eq!(st, 409);

    // The plan runs in test and records exactly which script version it ran.
    let (st, v) = post(
        &s,
        &op,
        "/api/v1/runs",
        json!({"plan": "greet", "environment": "test"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id = v["run_id"].as_i64().unwrap();
    let d = wait_run(&s, &op, id, finished).await;
    assert_eq!(d["run"]["status"], "succeeded", "{d}");
    assert_eq!(d["run"]["spec"]["steps"][0]["action"]["version"], 2);
    assert_eq!(d["run"]["spec"]["plan"]["version"], 1);
    let (out, _) = output(&s, &op, id, d["tasks"][0]["id"].as_i64().unwrap()).await;
    assert_eq!(out, "hello, world\n");
    let audit = s.audit_actions().await;
    for a in [
        "script.create",
        "script.version.create",
        "script.online.request",
        "approval.decide",
        "script.state",
        "plan.save",
    ] {
        assert!(audit.iter().any(|(x, _)| x == a), "missing audit {a}");
    }
}

#[tokio::test]
async fn plan_with_confirmation_masks_secrets_and_pauses_on_failure() {
    let s = TestServer::start().await;
    let dev = s.user_token("dev2", &[("ops_development", "global")]).await;
    let op = operator(&s, "op4").await;
    let marker = s.dir.path().join("marker");
    let plan = json!({
        "name": "deploy", "description": "two steps and a confirmation",
        "variables": [
            {"name": "password", "type": "secret", "required": true},
            {"name": "marker", "type": "string", "required": true}
        ],
        "steps": [
            {"name": "prepare", "kind": "command", "language": "bash",
             "command": "echo \"using ${password} now\"", "targets": "local"},
            {"name": "go?", "kind": "confirm", "message": "prepared; continue?"},
            {"name": "check", "kind": "command", "language": "bash",
             "command": "test -f ${marker} || { echo missing >&2; exit 3; }", "targets": "local",
             "on_failure": {"policy": "pause"}}
        ]
    });
    let (st, v) = post(&s, &dev, "/api/v1/plans", plan).await;
    assert_eq!(st, 200, "{v}");
    // Unknown and missing variables: every problem named.
    let (st, v) = post(
        &s,
        &op,
        "/api/v1/runs",
        json!({"plan": "deploy", "environment": "test", "vars": {"nope": "1"}}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let msg = v["details"]["message_en"].as_str().unwrap();
    assert!(
        msg.contains("nope") && msg.contains("password") && msg.contains("marker"),
        "{msg}"
    );

    let secret = "S3cr3t-Value-42";
    let (st, v) = post(
        &s,
        &op,
        "/api/v1/runs",
        json!({"plan": "deploy", "environment": "test",
               "vars": {"password": secret, "marker": marker.display().to_string()}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id = v["run_id"].as_i64().unwrap();
    let d = wait_run(&s, &op, id, |d| {
        d["steps"][1]["status"] == "waiting_confirmation"
    })
    .await;
    assert_eq!(d["run"]["status"], "paused");
    assert_eq!(d["steps"][0]["status"], "succeeded");
    let (out, _) = output(&s, &op, id, d["tasks"][0]["id"].as_i64().unwrap()).await;
    assert_eq!(out, "using ****** now\n");
    assert!(!d.to_string().contains(secret), "secret in the run detail");

    // Confirm; the check fails (no marker) and pauses for a decision.
    let (st, v) = post(
        &s,
        &op,
        &format!("/api/v1/runs/{id}/steps/1/confirm"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let d = wait_run(&s, &op, id, |d| d["steps"][2]["status"] == "paused").await;
    assert_eq!(d["run"]["status"], "paused");
    // Retry after fixing the cause.
    std::fs::write(&marker, "x").unwrap();
    let (st, v) = post(
        &s,
        &op,
        &format!("/api/v1/runs/{id}/steps/2/decide"),
        json!({"decision": "retry_failed"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let d = wait_run(&s, &op, id, finished).await;
    assert_eq!(d["run"]["status"], "succeeded", "{d}");
    assert_eq!(d["steps"][2]["attempt"], 2);
    let attempts: Vec<&Value> = d["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["step_idx"] == 2)
        .collect();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[1]["status"], "succeeded");

    // The secret is nowhere in the audit trail.
    let all = s.state.store.audit_range(0, 100_000).await.unwrap();
    assert!(all.iter().all(|r| !r.content.contains(secret)));
    let actions = s.audit_actions().await;
    for a in ["job.step.confirm", "job.step.decide"] {
        assert!(actions.iter().any(|(x, _)| x == a), "missing audit {a}");
    }
}

#[tokio::test]
async fn production_is_blocked_during_trading_hours() {
    let s = TestServer::start_with(|c| {
        std::fs::create_dir_all(&c.data_dir).unwrap();
        std::fs::write(
            c.data_dir.join("change-windows.toml"),
            crate::PROD_MARKET_HOURS,
        )
        .unwrap();
    })
    .await;
    let op = operator(&s, "op5").await;
    // t0 is Wednesday 2026-11-25 10:00 Beijing time: a trading day, in session.
    let (st, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "prod", "targets": "agent:*", "command": "uptime"}),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["code"], "change_window.blocked", "{v}");
    // The test environment is not governed by the policy.
    let (st, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": "local", "command": "uptime"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
}

#[tokio::test]
async fn a_run_found_mid_step_after_a_crash_is_marked_unknown_and_waits() {
    let s = TestServer::start().await;
    let op = operator(&s, "op6").await;
    // What a replica that died mid-step leaves behind: run and step `running`, a task
    // `running`, a lease that expired.
    let now = s.clock_now();
    let spec = json!({
        "environment": "test", "production": false, "plan": null, "variables": [], "values": {},
        "steps": [
            {"name": "command", "action": {"kind": "command", "language": "bash", "command": "echo again"},
             "targets": "local", "timeout_secs": 60, "on_failure": {"policy": "abort"},
             "batch": null, "concurrency": null}
        ]
    });
    let mut tx = s.state.store.begin().await.unwrap();
    let run = RunRow {
        id: 0,
        kind: "adhoc".into(),
        plan_id: None,
        plan_version: None,
        name: "echo again".into(),
        environment: "test".into(),
        status: "running".into(),
        requested_by: "op6".into(),
        created_at: now,
        started_at: Some(now),
        finished_at: None,
        spec,
        secrets_sealed: None,
        current_step: 0,
        owner: None,
        lease_until: None,
        message: None,
        updated_at: now,
    };
    let step = StepRow {
        run_id: 0,
        idx: 0,
        name: "command".into(),
        kind: "command".into(),
        status: "pending".into(),
        attempt: 0,
        started_at: None,
        finished_at: None,
        message: None,
    };
    // Insert as pending so no driver here picks it up before the crash is staged.
    let mut staged = run.clone();
    staged.status = "blocked".into();
    let id = tx
        .insert_run(&staged, std::slice::from_ref(&step))
        .await
        .unwrap();
    tx.commit(
        vec![ballast_core::audit::AuditDraft::new(
            ballast_core::audit::Actor::system(),
            "test.stage",
            "run",
            ballast_core::audit::Outcome::Success,
        )],
        now,
    )
    .await
    .unwrap();
    let task = TaskRow {
        id: 0,
        run_id: id,
        step_idx: 0,
        host: "local".into(),
        transport: "local".into(),
        attempt: 1,
        batch: 1,
        status: "running".into(),
        exit_code: None,
        error_code: None,
        error_message: None,
        stdout_bytes: 0,
        stderr_bytes: 0,
        truncated: false,
        started_at: Some(now),
        finished_at: None,
    };
    s.state.store.insert_tasks(&[task]).await.unwrap();
    let mut st = step.clone();
    st.run_id = id;
    st.status = "running".into();
    st.attempt = 1;
    s.state.store.update_step(&st).await.unwrap();
    // The dead replica's lease, expired a minute ago.
    let past = now - chrono::Duration::minutes(2);
    assert_eq!(
        s.state
            .store
            .claim_runs("dead-replica", past, now - chrono::Duration::minutes(1), 10)
            .await
            .unwrap()
            .len(),
        0,
        "blocked runs are not claimable"
    );
    let mut tx = s.state.store.begin().await.unwrap();
    tx.set_run_status(id, "running", None, now).await.unwrap();
    tx.commit(
        vec![ballast_core::audit::AuditDraft::new(
            ballast_core::audit::Actor::system(),
            "test.stage",
            "run",
            ballast_core::audit::Outcome::Success,
        )],
        now,
    )
    .await
    .unwrap();
    // The dead replica held it; its lease ran out a minute ago.
    let held = s
        .state
        .store
        .claim_runs("dead-replica", past, now - chrono::Duration::minutes(1), 10)
        .await
        .unwrap();
    assert!(
        held.iter().any(|r| r.id == id),
        "staged as the dead replica's"
    );
    s.state
        .store
        .update_run_progress(id, "dead-replica", "running", 0, None, past)
        .await
        .unwrap();
    s.state.exec.wake.notify_one();

    let d = wait_run(&s, &op, id, status_is("paused")).await;
    assert_eq!(d["tasks"][0]["status"], "unknown", "{d}");
    assert_eq!(d["tasks"][0]["error_code"], "exec.outcome_unknown");
    assert_eq!(d["steps"][0]["status"], "paused");
    assert_eq!(
        d["tasks"].as_array().unwrap().len(),
        1,
        "nothing was re-run"
    );
    // An operator decides to run it again.
    let (st, v) = post(
        &s,
        &op,
        &format!("/api/v1/runs/{id}/steps/0/decide"),
        json!({"decision": "retry_failed"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let d = wait_run(&s, &op, id, finished).await;
    assert_eq!(d["run"]["status"], "succeeded", "{d}");
    assert_eq!(d["tasks"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn cancel_stops_a_running_command() {
    let s = TestServer::start().await;
    let op = operator(&s, "op7").await;
    let (_, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": "local", "command": "echo started; sleep 60"}),
    )
    .await;
    let id = v["run_id"].as_i64().unwrap();
    wait_run(&s, &op, id, |d| d["tasks"][0]["status"] == "running").await;
    let (st, v) = post(
        &s,
        &op,
        &format!("/api/v1/runs/{id}/cancel"),
        json!({"reason": "wrong host"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let d = wait_run(&s, &op, id, |d| d["tasks"][0]["status"] == "cancelled").await;
    assert_eq!(d["run"]["status"], "cancelled");
    let (st, _) = post(&s, &op, &format!("/api/v1/runs/{id}/cancel"), json!({})).await;
    assert_eq!(st, 409);
}

#[tokio::test]
async fn ssh_targets_use_pinned_host_keys_and_sealed_credentials() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let op = operator(&s, "op8").await;
    let sshd_dir = tempfile::tempdir().unwrap();
    let sshd = ballast_ssh::testkit::Sshd::start(sshd_dir.path()).unwrap();
    let target = format!("ssh://{}@127.0.0.1:{}", sshd.user, sshd.port);

    // No credential yet: refused with the reason, per host.
    let (_, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": target, "command": "echo ok"}),
    )
    .await;
    let d = wait_run(&s, &op, v["run_id"].as_i64().unwrap(), finished).await;
    assert_eq!(d["tasks"][0]["status"], "refused");
    assert_eq!(d["tasks"][0]["error_code"], "ssh.credential_missing");

    let (st, v) = post(
        &s,
        &admin,
        "/api/v1/ssh/credentials",
        json!({"name": sshd.user, "username": sshd.user, "kind": "key", "secret": sshd.client_key_pem}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, creds) = get(&s, &admin, "/api/v1/ssh/credentials").await;
    assert!(
        !creds.to_string().contains("PRIVATE KEY"),
        "secret never leaves"
    );

    // Not pinned: refused.
    let (_, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": target, "command": "echo ok"}),
    )
    .await;
    let d = wait_run(&s, &op, v["run_id"].as_i64().unwrap(), finished).await;
    assert_eq!(d["tasks"][0]["error_code"], "ssh.host_key_unknown");

    // Pinned to another key: the host is refused before authentication.
    let (_, other) = ballast_ssh::testkit::keygen(sshd_dir.path(), "other").unwrap();
    let (st, v) = post(
        &s,
        &admin,
        "/api/v1/ssh/host-keys",
        json!({"host": "127.0.0.1", "port": sshd.port, "key_line": other}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": target, "command": "echo ok"}),
    )
    .await;
    let d = wait_run(&s, &op, v["run_id"].as_i64().unwrap(), finished).await;
    assert_eq!(d["tasks"][0]["status"], "refused");
    assert_eq!(d["tasks"][0]["error_code"], "ssh.host_key_mismatch", "{d}");

    // The right key (fetched by ssh-keyscan, as an administrator would, then compared).
    let (st, v) = post(
        &s,
        &admin,
        "/api/v1/ssh/host-keys",
        json!({"host": "127.0.0.1", "port": sshd.port, "key_line": ""}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["fingerprint"].as_str().unwrap(),
        ballast_ssh::fingerprint_sha256(&sshd.host_key_line).unwrap()
    );
    let (_, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": format!("{target},local"), "command": "echo ok from $(hostname) \"$0\""}),
    )
    .await;
    let id = v["run_id"].as_i64().unwrap();
    let d = wait_run(&s, &op, id, finished).await;
    assert_eq!(d["run"]["status"], "succeeded", "{d}");
    for t in d["tasks"].as_array().unwrap() {
        assert_eq!(t["status"], "succeeded", "{t}");
        let (out, _) = output(&s, &op, id, t["id"].as_i64().unwrap()).await;
        assert!(out.starts_with("ok from "), "{out}");
    }
    // Unreachable host: a clear per-host error, the others unaffected.
    let (_, v) = post(
        &s,
        &admin,
        "/api/v1/ssh/host-keys",
        json!({"host": "127.0.0.1", "port": 9, "key_line": sshd.host_key_line}),
    )
    .await;
    assert!(v["fingerprint"].is_string());
    let (_, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": format!("ssh://{}@127.0.0.1:9,{target}", sshd.user), "command": "echo ok"}),
    )
    .await;
    let d = wait_run(&s, &op, v["run_id"].as_i64().unwrap(), finished).await;
    let by_host = |h: &str| {
        d["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["host"].as_str().unwrap().contains(h))
            .cloned()
            .unwrap()
    };
    assert_eq!(by_host(":9")["status"], "refused");
    assert_eq!(by_host(":9")["error_code"], "ssh.connect");
    assert_eq!(by_host(&format!(":{}", sshd.port))["status"], "succeeded");
}

#[tokio::test]
async fn agent_enrols_runs_tasks_and_is_refused_once_revoked() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let op = operator(&s, "op9").await;
    let (st, v) = post(
        &s,
        &admin,
        "/api/v1/enroll-tokens",
        json!({"environment": "test"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let shutdown = ballast_runner::CancelToken::new();
    let config = ballast_agent::client::AgentConfig {
        server: s.agent_addr.to_string(),
        data_dir: dir.path().to_path_buf(),
        enroll_token: Some(token.clone()),
        heartbeat: Duration::from_secs(5),
    };
    let sd = shutdown.clone();
    let agent = tokio::spawn(async move { ballast_agent::client::run(config, sd).await });
    let mut agents = Value::Null;
    for _ in 0..100 {
        agents = get(&s, &admin, "/api/v1/agents").await.1;
        if agents[0]["connected"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(agents[0]["connected"], true, "{agents}");
    assert_eq!(agents[0]["environment"], "test");
    let hostname = agents[0]["hostname"].as_str().unwrap().to_string();
    assert!(agents[0]["facts"]["cpus"].as_u64().unwrap() >= 1);

    let (_, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": format!("agent:{hostname}"), "command": "echo from agent"}),
    )
    .await;
    let id = v["run_id"].as_i64().unwrap();
    let d = wait_run(&s, &op, id, finished).await;
    assert_eq!(d["run"]["status"], "succeeded", "{d}");
    let (out, _) = output(&s, &op, id, d["tasks"][0]["id"].as_i64().unwrap()).await;
    assert_eq!(out, "from agent\n");
    // `agent:*` in another environment finds no agent; by name it is refused as foreign.
    let (_, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "prod", "targets": format!("agent:{hostname}"), "command": "echo no"}),
    )
    .await;
    if let Some(id) = v["run_id"].as_i64() {
        let d = wait_run(&s, &op, id, finished).await;
        assert_eq!(
            d["tasks"][0]["error_code"], "agent.wrong_environment",
            "{d}"
        );
    }
    // The token was used once.
    let dir2 = tempfile::tempdir().unwrap();
    let again = ballast_agent::client::run(
        ballast_agent::client::AgentConfig {
            server: s.agent_addr.to_string(),
            data_dir: dir2.path().to_path_buf(),
            enroll_token: Some(token),
            heartbeat: Duration::from_secs(5),
        },
        ballast_runner::CancelToken::new(),
    )
    .await;
    assert!(again.is_err());

    // Revoked: disconnected now, refused from then on, `run` ends.
    let agent_id = agents[0]["id"].as_str().unwrap().to_string();
    let (st, v) = post(
        &s,
        &admin,
        &format!("/api/v1/agents/{agent_id}/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let ended = tokio::time::timeout(Duration::from_secs(20), agent).await;
    assert!(
        matches!(ended, Ok(Ok(Err(_)))),
        "agent should stop: {ended:?}"
    );
    let actions = s.audit_actions().await;
    for a in ["agent.enroll_token.create", "agent.enroll", "agent.revoke"] {
        assert!(actions.iter().any(|(x, _)| x == a), "missing audit {a}");
    }
    shutdown.cancel();
}

#[tokio::test]
async fn a_failed_run_is_notified_by_webhook() {
    use axum::routing::post as axum_post;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(4);
    let app = axum::Router::new().route(
        "/hook",
        axum_post(move |axum::Json(v): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v).await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let s = TestServer::start_with(|c| c.exec.webhook_url = Some(hook)).await;
    let op = operator(&s, "op10").await;
    let plan = json!({
        "name": "fails", "steps": [{"name": "boom", "kind": "command", "language": "bash",
        "command": "exit 4", "targets": "local"}]
    });
    let dev = s
        .user_token("dev10", &[("ops_development", "global")])
        .await;
    let (st, v) = post(&s, &dev, "/api/v1/plans", plan).await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = post(
        &s,
        &op,
        "/api/v1/runs",
        json!({"plan": "fails", "environment": "test"}),
    )
    .await;
    let id = v["run_id"].as_i64().unwrap();
    let d = wait_run(&s, &op, id, finished).await;
    assert_eq!(d["run"]["status"], "failed");
    let note = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(note["event"], "failed");
    assert_eq!(note["run_id"], id);
    assert_eq!(note["environment"], "test");
    assert_eq!(note["requested_by"], "op10");
}

/// An HTTPS receiver on loopback with a certificate of `ca`: each request's JSON body, or the
/// handshake error when the client refused the certificate, goes to the returned channel.
async fn https_receiver(
    ca: &ballast_agent::pki::Ca,
) -> (String, tokio::sync::mpsc::Receiver<Result<Value, String>>) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (cert, key) = ca.issue_server_cert(&["127.0.0.1".into()], 30).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let mut tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string())).await;
                    continue;
                }
            };
            // One HTTP/1.1 request: headers, then Content-Length bytes of body.
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = tls.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(buf[end + 4..end + 4 + len].to_vec());
                    }
                }
            };
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            let _ = tls.shutdown().await;
            if let Some(b) = body {
                let _ = tx.send(Ok(serde_json::from_slice(&b).unwrap())).await;
            }
        }
    });
    (url, rx)
}

/// HTTPS webhooks: trusted through `exec.webhook_ca_file` (an internal CA), refused without it;
/// a CA file that is not PEM stops the server at start, naming the file.
#[tokio::test]
async fn failures_reach_an_https_webhook_of_an_internal_ca() {
    let ca = ballast_agent::pki::Ca::generate("Site internal CA").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("site-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    // A plan whose one step fails (its run fails; an ad-hoc command's run would not).
    async fn failing_run(s: &TestServer, who: &str) -> i64 {
        let op = operator(s, who).await;
        let dev = s
            .user_token(&format!("{who}-dev"), &[("ops_development", "global")])
            .await;
        let plan = json!({"name": "fails", "steps": [{"name": "boom", "kind": "command",
            "language": "bash", "command": "exit 4", "targets": "local"}]});
        let (st, v) = post(s, &dev, "/api/v1/plans", plan).await;
        assert_eq!(st, 200, "{v}");
        let (st, v) = post(
            s,
            &op,
            "/api/v1/runs",
            json!({"plan": "fails", "environment": "test"}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let id = v["run_id"].as_i64().unwrap();
        assert_eq!(
            wait_run(s, &op, id, finished).await["run"]["status"],
            "failed"
        );
        id
    }

    // Trusted: the notification arrives over TLS.
    let (hook, mut rx) = https_receiver(&ca).await;
    let s = TestServer::start_with(|c| {
        c.exec.webhook_url = Some(hook);
        c.exec.webhook_ca_file = Some(ca_file.clone());
    })
    .await;
    let id = failing_run(&s, "op40").await;
    let note = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(note["event"], "failed");
    assert_eq!(note["run_id"], id);
    assert_eq!(note["requested_by"], "op40");

    // Not trusted (no CA file): the client refuses the certificate during the handshake.
    let (hook, mut rx) = https_receiver(&ca).await;
    let s = TestServer::start_with(|c| c.exec.webhook_url = Some(hook)).await;
    failing_run(&s, "op41").await;
    let refused = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let why = refused.err().unwrap();
    assert!(
        why.contains("UnknownCA") || why.contains("unknown"),
        "{why}"
    );

    // A CA file that is not PEM: the server does not start, and says which file.
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "hello\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = ballast_server::config::Config {
        data_dir: data.path().to_path_buf(),
        environments: vec!["test".into()],
        ..Default::default()
    };
    config.exec.webhook_url = Some("https://127.0.0.1:9/hook".into());
    config.exec.webhook_ca_file = Some(bad.clone());
    let clock = std::sync::Arc::new(ballast_core::clock::ManualClock::new(crate::t0()));
    let err = ballast_server::start(config, clock).await.err().unwrap();
    let text = format!("{err:#}");
    assert!(text.contains("not-a-ca.pem"), "{text}");
    assert!(text.contains("webhook_ca_file"), "{text}");
}

#[tokio::test]
async fn admin_rules_make_a_command_need_approval_or_a_warning() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let op = operator(&s, "op11").await;
    let approver = s
        .user_token("ops11", &[("platform_operations", "global")])
        .await;
    // Bad rules: refused with the line.
    let (st, v) = call(
        &s,
        &admin,
        reqwest::Method::PUT,
        "/api/v1/danger-rules",
        Some(json!({"toml": "[[rule]]\nid = \"shell.power\"\naction = \"explode\"\n"})),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    // Reboots need a second person; a site rule warns on `userdel`.
    let rules = "[[rule]]\nid = \"shell.power\"\naction = \"require_approval\"\n\n\
                 [[rule]]\nid = \"site.userdel\"\nlanguage = \"shell\"\naction = \"warn\"\n\
                 matcher = { type = \"command\", names = [\"userdel\"] }\n\
                 message_zh = \"删除用户\"\nmessage_en = \"deletes a user\"\n";
    let (st, v) = call(
        &s,
        &admin,
        reqwest::Method::PUT,
        "/api/v1/danger-rules",
        Some(json!({"toml": rules})),
    )
    .await;
    assert_eq!(st, 200, "{v}");

    // A warning must be acknowledged.
    let body = json!({"environment": "test", "targets": "local", "command": "userdel nobody-here || true"});
    let (st, v) = post(&s, &op, "/api/v1/exec", body.clone()).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "guard.warning_unacknowledged");
    let mut ack = body.clone();
    ack["acknowledge_warnings"] = json!(true);
    let (st, v) = post(&s, &op, "/api/v1/exec", ack).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);

    // Approval: the run waits; the starter cannot approve it; another person can.
    let (st, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": "local", "command": "echo would: reboot"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["status"], "pending",
        "an echoed word is not a reboot: {v}"
    );
    let (st, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": "local", "command": "true || /sbin/reboot"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "waiting_approval", "{v}");
    let id = v["run_id"].as_i64().unwrap();
    let approval = v["approval_id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, d) = get(&s, &op, &format!("/api/v1/runs/{id}")).await;
    assert_eq!(d["run"]["status"], "waiting_approval");
    assert_eq!(
        d["tasks"].as_array().unwrap().len(),
        0,
        "nothing ran before approval"
    );
    let (st, _) = post(
        &s,
        &op,
        &format!("/api/v1/approvals/{approval}/decide"),
        json!({"approve": true}),
    )
    .await;
    assert_eq!(st, 403, "the starter cannot approve");
    let (st, v) = post(
        &s,
        &approver,
        &format!("/api/v1/approvals/{approval}/decide"),
        json!({"approve": true, "comment": "maintenance window"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let d = wait_run(&s, &op, id, finished).await;
    assert_eq!(d["run"]["status"], "succeeded", "{d}");
    let actions = s.audit_actions().await;
    assert!(actions.iter().any(|(a, _)| a == "danger.rules.set"));
    assert!(actions.iter().any(|(a, _)| a == "approval.request"));
}
