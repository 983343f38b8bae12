//! 200 concurrent agents in one process, each running `echo ok`.

use std::time::{Duration, Instant};

use ballast_agent::client::{self, SessionOptions};
use ballast_agent::pki::Ca;
use ballast_runner::CancelToken;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use ballast_agent::testkit::{
    TestAuthority, dispatch, runner, sh, sim_facts, start_hub, wait_until,
};

const AGENTS: usize = 200;
const TASK_CONCURRENCY: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_agents_each_run_echo() {
    let ca = Ca::generate("ca").unwrap();
    let auth = TestAuthority::new();
    let hub = start_hub(&ca, auth.clone(), 0, Duration::from_secs(30)).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path());
    let started = Instant::now();

    let mut enrolments = JoinSet::new();
    for i in 0..AGENTS {
        let server = hub.server.clone();
        let token = auth.token(&ca, "prod");
        enrolments.spawn(async move {
            client::enroll_with_facts(&server, &token, sim_facts(&format!("sim-{i}")), None).await
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = enrolments.join_next().await {
        ids.push(r.unwrap().unwrap());
    }
    assert_eq!(ids.len(), AGENTS);

    let shutdown = CancelToken::new();
    let mut agents = JoinSet::new();
    for (i, id) in ids.iter().cloned().enumerate() {
        let server = hub.server.clone();
        let runner = runner.clone();
        let sd = shutdown.clone();
        let opts = SessionOptions {
            facts: sim_facts(&format!("sim-{i}")),
            heartbeat: Duration::from_secs(30),
        };
        agents.spawn(async move {
            client::connect_and_serve_with(&server, &id, runner, &opts, sd).await
        });
    }
    assert!(
        wait_until(Duration::from_secs(60), || hub.hub.connected().len()
            == AGENTS)
        .await,
        "only {} connected",
        hub.hub.connected().len()
    );

    // All 200 connections stay open while the tasks run. Task starts are limited to
    // TASK_CONCURRENCY at a time: every simulated agent shares this one process, and
    // ballast-runner loses output when ~200 children are spawned at once in one process
    // (reported to the runner's owner); real agents run on separate hosts.
    let gate = Arc::new(Semaphore::new(TASK_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for id in &ids {
        let hub = hub.hub.clone();
        let agent_id = id.agent_id.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let r = dispatch(&hub, &agent_id, "prod", "echo", sh("echo ok")).await;
            // Every agent is still connected while the others run.
            assert!(hub.is_connected(&agent_id));
            r
        });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        let (r, out) = r.unwrap();
        let outcome = r.unwrap();
        assert!(outcome.success(), "{outcome:?}");
        assert_eq!(out, b"ok\n", "{outcome:?}");
        ok += 1;
    }
    assert_eq!(ok, AGENTS);
    eprintln!(
        "{AGENTS} agents enrolled, connected and ran echo in {:?}",
        started.elapsed()
    );

    shutdown.cancel();
    while let Some(r) = agents.join_next().await {
        r.unwrap().unwrap();
    }
    hub.stop().await;
}
