//! Test support (feature `testkit`): an in-memory [`Authority`], a real hub on a loopback port with
//! a real TLS listener, dispatch and polling helpers. Used by this crate's tests and by the
//! `ballast-agent` executable's tests; never part of a release build. A panic here is the test's
//! failure, so `unwrap` is allowed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::hub::{AgentInfo, Authority, DispatchError, Enrolled, Hub, Refusal};
use crate::pki::{Ca, EnrollToken, hash_secret};
use crate::proto::Facts;
use ballast_runner::{CancelToken, Chunk, Interpreter, Outcome, Runner, Stream, TaskSpec};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct AgentRec {
    pub environment: String,
    pub fingerprint: String,
    pub revoked: bool,
}

#[derive(Default)]
pub struct State {
    /// token hash → (environment, used)
    pub tokens: HashMap<String, (String, bool)>,
    pub agents: HashMap<String, AgentRec>,
    pub heartbeats: u64,
    pub disconnects: Vec<String>,
}

/// The test double of the server's agent registry. Tokens are one-time.
#[derive(Default)]
pub struct TestAuthority {
    pub state: Mutex<State>,
}

impl TestAuthority {
    pub fn new() -> Arc<TestAuthority> {
        Arc::new(TestAuthority::default())
    }

    /// A fresh token for `environment`, pinned to `ca` (encoded form).
    pub fn token(&self, ca: &Ca, environment: &str) -> String {
        let t = EnrollToken::generate(ca);
        self.state
            .lock()
            .unwrap()
            .tokens
            .insert(hash_secret(&t.secret), (environment.to_owned(), false));
        t.encode()
    }

    pub fn revoke(&self, agent_id: &str) {
        if let Some(a) = self.state.lock().unwrap().agents.get_mut(agent_id) {
            a.revoked = true;
        }
    }

    pub fn heartbeats(&self) -> u64 {
        self.state.lock().unwrap().heartbeats
    }
}

#[async_trait::async_trait]
impl Authority for TestAuthority {
    async fn enroll(
        &self,
        token_hash: &str,
        _facts: &Facts,
        agent_id: &str,
        cert_fingerprint: &str,
    ) -> Result<Enrolled, Refusal> {
        let mut s = self.state.lock().unwrap();
        let environment = match s.tokens.get_mut(token_hash) {
            Some((env, used)) if !*used => {
                *used = true;
                env.clone()
            }
            _ => return Err(Refusal::token_invalid()),
        };
        s.agents.insert(
            agent_id.to_owned(),
            AgentRec {
                environment: environment.clone(),
                fingerprint: cert_fingerprint.to_owned(),
                revoked: false,
            },
        );
        Ok(Enrolled {
            agent_id: agent_id.to_owned(),
            environment,
        })
    }

    async fn admit(
        &self,
        agent_id: &str,
        cert_fingerprint: &str,
        _facts: &Facts,
    ) -> Result<AgentInfo, Refusal> {
        let s = self.state.lock().unwrap();
        match s.agents.get(agent_id) {
            Some(a) if a.revoked => Err(Refusal::revoked()),
            Some(a) if a.fingerprint == cert_fingerprint => Ok(AgentInfo {
                agent_id: agent_id.to_owned(),
                environment: a.environment.clone(),
            }),
            _ => Err(Refusal::unknown()),
        }
    }

    async fn heartbeat(&self, _agent_id: &str) {
        self.state.lock().unwrap().heartbeats += 1;
    }

    async fn disconnected(&self, agent_id: &str) {
        self.state
            .lock()
            .unwrap()
            .disconnects
            .push(agent_id.to_owned());
    }
}

pub struct TestHub {
    pub hub: Arc<Hub>,
    pub addr: SocketAddr,
    pub server: String,
    pub shutdown: CancelToken,
    pub join: JoinHandle<()>,
}

impl TestHub {
    /// Stop accepting and close every connection; wait until the listener is gone.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.join.await.unwrap();
    }
}

/// Start a hub for `ca` on `port` (0 = any) with the given heartbeat interval.
pub async fn start_hub(
    ca: &Ca,
    auth: Arc<TestAuthority>,
    port: u16,
    heartbeat: Duration,
) -> TestHub {
    let (cert, key) = ca
        .issue_server_cert(&["127.0.0.1".into(), "localhost".into()], 30)
        .unwrap();
    let hub = Arc::new(
        Hub::new(ca.clone(), &cert, &key, auth)
            .unwrap()
            .with_heartbeat(heartbeat),
    );
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancelToken::new();
    let join = tokio::spawn(hub.clone().serve(listener, shutdown.clone()));
    TestHub {
        hub,
        addr,
        server: format!("127.0.0.1:{}", addr.port()),
        shutdown,
        join,
    }
}

pub fn runner(dir: &Path) -> Arc<Runner> {
    Arc::new(Runner::probe(&dir.join("work")))
}

pub fn sh(script: &str) -> TaskSpec {
    TaskSpec::new(Interpreter::Sh, script)
}

/// Dispatch and collect stdout (stderr appended after a NUL-free marker is not needed here).
pub async fn dispatch(
    hub: &Hub,
    agent_id: &str,
    environment: &str,
    task_id: &str,
    spec: TaskSpec,
) -> (Result<Outcome, DispatchError>, Vec<u8>) {
    let (tx, mut rx) = mpsc::channel::<Chunk>(16);
    let collector = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(c) = rx.recv().await {
            if c.stream == Stream::Stdout {
                out.extend_from_slice(&c.data);
            }
        }
        out
    });
    let r = hub
        .dispatch(agent_id, environment, task_id.to_owned(), spec, tx)
        .await;
    let out = collector.await.unwrap();
    (r, out)
}

/// Poll `cond` every 20 ms until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

pub fn sim_facts(hostname: &str) -> Facts {
    Facts {
        hostname: hostname.to_owned(),
        os: "Test OS".into(),
        cpus: 1,
        agent_version: crate::proto::AGENT_VERSION.into(),
        ..Facts::default()
    }
}
