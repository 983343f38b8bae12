//! End to end: enrolment, mTLS, tasks, revocation, environments, loss, reconnect.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use ballast_agent::client::{self, AgentConfig, Identity, SessionOptions};
use ballast_agent::hub::DispatchError;
use ballast_agent::pki::{Ca, EnrollToken};
use ballast_runner::CancelToken;

use ballast_agent::testkit::{
    TestAuthority, dispatch, runner, sh, sim_facts, start_hub, wait_until,
};

const SECOND: Duration = Duration::from_secs(1);

fn config(server: &str, dir: &std::path::Path, token: Option<String>) -> AgentConfig {
    AgentConfig {
        server: server.to_owned(),
        data_dir: dir.to_path_buf(),
        enroll_token: token,
        heartbeat: SECOND,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_connect_run_echo_and_cancel() {
    let ca = Ca::generate("test CA").unwrap();
    let auth = TestAuthority::new();
    let hub = start_hub(&ca, auth.clone(), 0, SECOND).await;
    let token = auth.token(&ca, "prod");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("agent");

    // `run` enrols (token given, empty data dir), saves the identity, then connects with mTLS.
    let shutdown = CancelToken::new();
    let agent = tokio::spawn(client::run(
        config(&hub.server, &data, Some(token.clone())),
        shutdown.clone(),
    ));
    assert!(wait_until(10 * SECOND, || hub.hub.connected().len() == 1).await);
    let c = hub.hub.connected().remove(0);
    assert_eq!(c.environment, "prod");
    assert!(c.agent_id.starts_with("agt-"));
    assert!(!c.hostname.is_empty());
    assert!(c.connected_at_ms > 0);
    assert!(c.facts.memory_bytes > 0);

    let key_mode = std::fs::metadata(data.join("agent.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let id = Identity::load(&data).unwrap().unwrap();
    assert_eq!(id.agent_id, c.agent_id);

    // echo ok: output streamed back, exit 0.
    let (r, out) = dispatch(&hub.hub, &c.agent_id, "prod", "t1", sh("echo ok")).await;
    let outcome = r.unwrap();
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(out, b"ok\n");

    // A failing task reports its exit code; concurrent tasks on one agent.
    let h1 = {
        let hub = hub.hub.clone();
        let id = c.agent_id.clone();
        tokio::spawn(async move { dispatch(&hub, &id, "prod", "t2", sh("echo two; exit 3")).await })
    };
    let (r3, out3) = dispatch(&hub.hub, &c.agent_id, "prod", "t3", sh("printf three")).await;
    let (r2, out2) = h1.await.unwrap();
    assert_eq!(r2.unwrap().exit_code, Some(3));
    assert_eq!(out2, b"two\n");
    assert!(r3.unwrap().success());
    assert_eq!(out3, b"three");

    // Cancel a long task.
    let long = {
        let hub = hub.hub.clone();
        let id = c.agent_id.clone();
        tokio::spawn(
            async move { dispatch(&hub, &id, "prod", "t4", sh("echo go; sleep 30")).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    hub.hub.cancel(&c.agent_id, "t4").await.unwrap();
    let started = Instant::now();
    let (r4, out4) = long.await.unwrap();
    let o4 = r4.unwrap();
    assert!(o4.cancelled, "{o4:?}");
    assert!(!o4.success());
    assert_eq!(out4, b"go\n");
    assert!(started.elapsed() < 10 * SECOND);

    // Heartbeats reached the authority (interval 1 s).
    assert!(wait_until(5 * SECOND, || auth.heartbeats() >= 1).await);

    // The token is one-time: a second enrolment with it is refused.
    let err = client::enroll_with_facts(&hub.server, &token, sim_facts("h2"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "agent.token_invalid", "{err}");
    assert!(err.is_fatal());

    shutdown.cancel();
    agent.await.unwrap().unwrap();
    assert!(wait_until(5 * SECOND, || hub.hub.connected().is_empty()).await);
    hub.stop().await;
}

#[tokio::test]
async fn wrong_ca_fingerprint_refuses_the_server() {
    let ca = Ca::generate("real CA").unwrap();
    let mitm = Ca::generate("mitm CA").unwrap();
    let auth = TestAuthority::new();
    // The server the agent reaches is signed by another CA than the one the token pins.
    let hub = start_hub(&mitm, auth.clone(), 0, SECOND).await;
    let good = auth.token(&ca, "prod");
    let err = client::enroll_with_facts(&hub.server, &good, sim_facts("h"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "agent.ca_mismatch", "{err}");
    assert!(err.is_fatal());
    // The secret never reached the server: the token is still unused.
    assert!(
        auth.state
            .lock()
            .unwrap()
            .tokens
            .values()
            .all(|(_, used)| !used)
    );

    // `run` with such a token stops with the error instead of retrying.
    let dir = tempfile::tempdir().unwrap();
    let r = tokio::time::timeout(
        10 * SECOND,
        client::run(
            config(&hub.server, dir.path(), Some(good)),
            CancelToken::new(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.unwrap_err().code(), "agent.ca_mismatch");
    assert!(!dir.path().join("agent.crt").exists());

    // A malformed token is refused before any connection.
    let err = client::enroll_with_facts(&hub.server, "bet1.nope", sim_facts("h"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "pki.token_invalid");
    // An unknown secret with the right pin is refused by the authority.
    let stray = EnrollToken::generate(&mitm).encode();
    let err = client::enroll_with_facts(&hub.server, &stray, sim_facts("h"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "agent.token_invalid");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_agent_is_refused_and_run_returns() {
    let ca = Ca::generate("ca").unwrap();
    let auth = TestAuthority::new();
    let hub = start_hub(&ca, auth.clone(), 0, SECOND).await;
    let dir = tempfile::tempdir().unwrap();
    let id = client::enroll(&hub.server, &auth.token(&ca, "prod"), Some(dir.path()))
        .await
        .unwrap();

    let agent = tokio::spawn(client::run(
        config(&hub.server, dir.path(), None),
        CancelToken::new(),
    ));
    assert!(wait_until(10 * SECOND, || hub.hub.is_connected(&id.agent_id)).await);

    // Revoke: the authority refuses from now on and the hub drops it at once.
    auth.revoke(&id.agent_id);
    assert!(hub.hub.revoke(&id.agent_id));
    let r = tokio::time::timeout(10 * SECOND, agent)
        .await
        .unwrap()
        .unwrap();
    let err = r.unwrap_err();
    assert_eq!(err.code(), "agent.revoked", "{err}");
    assert!(!hub.hub.is_connected(&id.agent_id));

    // Starting it again: refused at admission, `run` returns at once (no retry loop).
    let started = Instant::now();
    let r = tokio::time::timeout(
        10 * SECOND,
        client::run(config(&hub.server, dir.path(), None), CancelToken::new()),
    )
    .await
    .unwrap();
    assert_eq!(r.unwrap_err().code(), "agent.revoked");
    assert!(started.elapsed() < 5 * SECOND);
    assert!(!hub.hub.revoke(&id.agent_id));

    // No identity and no token: `run` says so.
    let empty = tempfile::tempdir().unwrap();
    let r = client::run(config(&hub.server, empty.path(), None), CancelToken::new()).await;
    assert_eq!(r.unwrap_err().code(), "agent.not_enrolled");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_refuses_other_environment_and_unknown_agent() {
    let ca = Ca::generate("ca").unwrap();
    let auth = TestAuthority::new();
    let hub = start_hub(&ca, auth.clone(), 0, SECOND).await;
    let dir = tempfile::tempdir().unwrap();
    let id = client::enroll_with_facts(
        &hub.server,
        &auth.token(&ca, "staging"),
        sim_facts("stg-1"),
        None,
    )
    .await
    .unwrap();
    let shutdown = CancelToken::new();
    let opts = SessionOptions {
        facts: sim_facts("stg-1"),
        heartbeat: SECOND,
    };
    let agent = {
        let server = hub.server.clone();
        let id = id.clone();
        let runner = runner(dir.path());
        let sd = shutdown.clone();
        tokio::spawn(async move {
            client::connect_and_serve_with(&server, &id, runner, &opts, sd).await
        })
    };
    assert!(wait_until(10 * SECOND, || hub.hub.is_connected(&id.agent_id)).await);
    assert_eq!(hub.hub.connected()[0].hostname, "stg-1");

    let (r, out) = dispatch(&hub.hub, &id.agent_id, "prod", "t1", sh("echo no")).await;
    match r {
        Err(DispatchError::WrongEnvironment {
            agent_environment,
            requested,
            ..
        }) => {
            assert_eq!(agent_environment, "staging");
            assert_eq!(requested, "prod");
        }
        other => panic!("expected WrongEnvironment, got {other:?}"),
    }
    assert!(out.is_empty());
    let (r, _) = dispatch(&hub.hub, "agt-nope", "prod", "t1", sh("echo no")).await;
    assert_eq!(r.unwrap_err().code(), "agent.not_connected");
    // Right environment works.
    let (r, out) = dispatch(&hub.hub, &id.agent_id, "staging", "t2", sh("echo yes")).await;
    assert!(r.unwrap().success());
    assert_eq!(out, b"yes\n");
    let err = DispatchError::WrongEnvironment {
        agent_id: "a".into(),
        agent_environment: "s".into(),
        requested: "p".into(),
    };
    assert!(err.message_zh().contains("环境"));

    shutdown.cancel();
    agent.await.unwrap().unwrap();
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_task_is_lost() {
    let ca = Ca::generate("ca").unwrap();
    let auth = TestAuthority::new();
    let hub = start_hub(&ca, auth.clone(), 0, SECOND).await;
    let dir = tempfile::tempdir().unwrap();
    let id = client::enroll_with_facts(&hub.server, &auth.token(&ca, "prod"), sim_facts("h"), None)
        .await
        .unwrap();
    let opts = SessionOptions {
        facts: sim_facts("h"),
        heartbeat: SECOND,
    };
    let agent = {
        let server = hub.server.clone();
        let id = id.clone();
        let runner = runner(dir.path());
        tokio::spawn(async move {
            client::connect_and_serve_with(&server, &id, runner, &opts, CancelToken::new()).await
        })
    };
    assert!(wait_until(10 * SECOND, || hub.hub.is_connected(&id.agent_id)).await);

    let task = {
        let hub = hub.hub.clone();
        let id = id.agent_id.clone();
        tokio::spawn(
            async move { dispatch(&hub, &id, "prod", "t1", sh("echo started; sleep 3")).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Kill the agent: its connection vanishes without a word.
    agent.abort();
    let (r, out) = tokio::time::timeout(10 * SECOND, task)
        .await
        .unwrap()
        .unwrap();
    match r {
        Err(DispatchError::Lost { task_id, .. }) => assert_eq!(task_id, "t1"),
        other => panic!("expected Lost, got {other:?}"),
    }
    assert_eq!(out, b"started\n");
    assert!(wait_until(5 * SECOND, || !hub.hub.is_connected(&id.agent_id)).await);
    assert!(
        wait_until(5 * SECOND, || {
            auth.state
                .lock()
                .unwrap()
                .disconnects
                .contains(&id.agent_id)
        })
        .await
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_hub_restart() {
    let ca = Ca::generate("ca").unwrap();
    let auth = TestAuthority::new();
    let hub1 = start_hub(&ca, auth.clone(), 0, SECOND).await;
    let port = hub1.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let token = auth.token(&ca, "prod");
    let shutdown = CancelToken::new();
    let agent = tokio::spawn(client::run(
        config(&hub1.server, dir.path(), Some(token)),
        shutdown.clone(),
    ));
    assert!(wait_until(10 * SECOND, || hub1.hub.connected().len() == 1).await);
    let agent_id = hub1.hub.connected()[0].agent_id.clone();

    // Stop the hub: connections close; the agent backs off and retries.
    hub1.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!agent.is_finished());

    // A new hub (same CA, same registry) on the same port: the agent comes back on its own.
    let restarted = Instant::now();
    let hub2 = start_hub(&ca, auth.clone(), port, SECOND).await;
    assert!(wait_until(15 * SECOND, || hub2.hub.is_connected(&agent_id)).await);
    // Backoff after a welcomed session starts at 1 s (+ jitter), doubling: within ~5 s here.
    assert!(
        restarted.elapsed() < 8 * SECOND,
        "{:?}",
        restarted.elapsed()
    );
    let (r, out) = dispatch(&hub2.hub, &agent_id, "prod", "t1", sh("echo back")).await;
    assert!(r.unwrap().success());
    assert_eq!(out, b"back\n");

    shutdown.cancel();
    agent.await.unwrap().unwrap();
    hub2.stop().await;
}

#[tokio::test]
async fn silent_agent_dropped_after_three_heartbeats() {
    use ballast_agent::proto::{
        AGENT_VERSION, AgentMsg, PROTOCOL_VERSION, ServerMsg, read_frame, write_frame,
    };
    let ca = Ca::generate("ca").unwrap();
    let auth = TestAuthority::new();
    let hub = start_hub(&ca, auth.clone(), 0, SECOND).await;
    let id = client::enroll_with_facts(&hub.server, &auth.token(&ca, "prod"), sim_facts("h"), None)
        .await
        .unwrap();
    let mut s = client::open_mtls(&hub.server, &id).await.unwrap();
    write_frame(
        &mut s,
        &AgentMsg::Hello {
            version: AGENT_VERSION.into(),
            protocol: PROTOCOL_VERSION,
            facts: sim_facts("h"),
        },
    )
    .await
    .unwrap();
    let m: ServerMsg = read_frame(&mut s).await.unwrap().unwrap();
    assert!(
        matches!(
            m,
            ServerMsg::Welcome {
                heartbeat_secs: 1,
                ..
            }
        ),
        "{m:?}"
    );
    assert!(hub.hub.is_connected(&id.agent_id));
    // Say nothing more: dropped after 3 × 1 s.
    let started = Instant::now();
    assert!(wait_until(6 * SECOND, || !hub.hub.is_connected(&id.agent_id)).await);
    assert!(started.elapsed() >= Duration::from_millis(2500));
    let end: Option<ServerMsg> = read_frame(&mut s).await.unwrap_or(None);
    assert!(end.is_none());
    hub.stop().await;
}
