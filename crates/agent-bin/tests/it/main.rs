//! The `ballast-agent` executable as a process: enrols with a one-time token against a real hub
//! (the agent crate's testkit, real TLS on 127.0.0.1), runs a task, restarts without the token
//! (identity kept on disk), and stops on SIGINT.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ballast_agent::pki::Ca;
use ballast_agent::testkit::{TestAuthority, dispatch, sh, start_hub, wait_until};

const SECOND: Duration = Duration::from_secs(1);

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(server: &str, data: &std::path::Path, token: Option<&str>) -> Kill {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ballast-agent"));
    cmd.arg("--server")
        .arg(server)
        .arg("--data-dir")
        .arg(data)
        .arg("--heartbeat")
        .arg("1")
        .env("BALLAST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(t) = token {
        cmd.arg("--enroll-token").arg(t);
    }
    Kill(cmd.spawn().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executable_enrols_runs_a_task_reconnects_without_token_and_stops_on_sigint() {
    let ca = Ca::generate("test CA").unwrap();
    let auth = TestAuthority::new();
    let hub = start_hub(&ca, auth.clone(), 0, SECOND).await;
    let token = auth.token(&ca, "prod");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("agent");

    let mut first = agent(&hub.server, &data, Some(&token));
    assert!(wait_until(20 * SECOND, || hub.hub.connected().len() == 1).await);
    let c = hub.hub.connected().remove(0);
    assert_eq!(c.environment, "prod");
    let (r, out) = dispatch(&hub.hub, &c.agent_id, "prod", "t1", sh("echo ok from $0")).await;
    assert!(r.unwrap().success());
    assert!(String::from_utf8_lossy(&out).starts_with("ok from "));

    // SIGINT: the agent stops cleanly (exit 0) and the hub sees it leave.
    let pid = first.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = first.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "agent did not stop on SIGINT"
    );
    assert!(wait_until(10 * SECOND, || hub.hub.connected().is_empty()).await);

    // The token was one-time; a restart without it uses the identity kept in the data dir.
    let _second = agent(&hub.server, &data, None);
    assert!(wait_until(20 * SECOND, || hub.hub.connected().len() == 1).await);
    assert_eq!(hub.hub.connected().remove(0).agent_id, c.agent_id);
}

#[test]
fn missing_server_argument_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ballast-agent"))
        .env_remove("BALLAST_AGENT_SERVER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server"));
}
