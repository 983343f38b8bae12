//! Server side: accepts agents over TLS, enrols new ones, admits known ones, dispatches tasks and
//! streams their output back.
//!
//! One port serves both kinds of connection. Client certificates are verified against the CA
//! but optional at the TLS layer: a connection without one may only `enroll` (and is closed after
//! the answer); a connection with one must say `hello` and is admitted by the [`Authority`].
//! Each agent connection is one tokio task (reader and writer polled together in it) plus a
//! small bounded queue of encoded frames.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_core::clock::{Clock, SystemClock};
use ballast_runner::{CancelToken, Chunk, Outcome, TaskSpec};
use base64::Engine as _;
use rand::RngCore as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::pki::{Ca, PkiError, common_name_der, fingerprint_der, fingerprint_pem, hash_secret};
use crate::proto::{
    AgentMsg, Facts, PROTOCOL_VERSION, ProtoError, ServerMsg, encode_frame, read_frame,
};
use crate::tls::{TlsConfigError, server_config};

/// A refusal from the [`Authority`] or the hub; sent to the agent as `refused`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable code: `agent.revoked`, `agent.unknown`, `agent.token_invalid`,
    /// `agent.version_mismatch`, … .
    pub code: String,
    /// Chinese text.
    pub message_zh: String,
    /// English text.
    pub message_en: String,
}

impl Refusal {
    /// A refusal with the given code and texts.
    #[must_use]
    pub fn new(code: &str, message_zh: &str, message_en: &str) -> Refusal {
        Refusal {
            code: code.to_owned(),
            message_zh: message_zh.to_owned(),
            message_en: message_en.to_owned(),
        }
    }

    /// `agent.revoked`.
    #[must_use]
    pub fn revoked() -> Refusal {
        Refusal::new(
            "agent.revoked",
            "此代理已被吊销，拒绝连接。",
            "This agent has been revoked; connection refused.",
        )
    }

    /// `agent.unknown`.
    #[must_use]
    pub fn unknown() -> Refusal {
        Refusal::new(
            "agent.unknown",
            "未知的代理，拒绝连接。",
            "Unknown agent; connection refused.",
        )
    }

    /// `agent.token_invalid`.
    #[must_use]
    pub fn token_invalid() -> Refusal {
        Refusal::new(
            "agent.token_invalid",
            "注册令牌无效、已过期或已被使用。",
            "The enrolment token is invalid, expired or already used.",
        )
    }

    /// `agent.version_mismatch`.
    #[must_use]
    pub fn version_mismatch(got: u32) -> Refusal {
        Refusal {
            code: "agent.version_mismatch".into(),
            message_zh: format!(
                "代理协议版本 {got} 与服务器协议版本 {PROTOCOL_VERSION} 不匹配，请升级代理。"
            ),
            message_en: format!(
                "Agent protocol version {got} does not match the server's version {PROTOCOL_VERSION}; upgrade the agent."
            ),
        }
    }

    fn protocol(en: &str) -> Refusal {
        Refusal {
            code: "agent.protocol".into(),
            message_zh: format!("协议错误: {en}"),
            message_en: format!("Protocol error: {en}"),
        }
    }

    fn internal(en: &str) -> Refusal {
        Refusal {
            code: "agent.internal".into(),
            message_zh: format!("服务器内部错误: {en}"),
            message_en: format!("Internal server error: {en}"),
        }
    }

    fn to_msg(&self) -> ServerMsg {
        ServerMsg::Refused {
            code: self.code.clone(),
            message_zh: self.message_zh.clone(),
            message_en: self.message_en.clone(),
        }
    }
}

/// Result of a redeemed enrolment token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The agent's id; must equal the id the hub proposed.
    pub agent_id: String,
    /// The environment the token was issued for.
    pub environment: String,
}

/// An admitted agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// The agent's id (its certificate's CN).
    pub agent_id: String,
    /// Its environment.
    pub environment: String,
}

/// The hub's view of the agent registry; the server implements it over its database.
#[async_trait::async_trait]
pub trait Authority: Send + Sync + 'static {
    /// Redeem a one-time token (by its SHA-256 hash, see [`crate::pki::hash_secret`]) for a new
    /// agent. The hub proposes `agent_id` (random, `agt-` + 20 hex digits; the CN of the
    /// certificate it has signed, whose SHA-256 is `cert_fingerprint`). Store both; return
    /// `Enrolled { agent_id /* the same */, environment }` or a refusal (`agent.token_invalid`).
    /// Must be atomic: a token redeems at most once.
    async fn enroll(
        &self,
        token_hash: &str,
        facts: &Facts,
        agent_id: &str,
        cert_fingerprint: &str,
    ) -> Result<Enrolled, Refusal>;

    /// Called on every mTLS connect: is this agent (CN from its verified certificate + that
    /// certificate's SHA-256) known and not revoked?
    async fn admit(
        &self,
        agent_id: &str,
        cert_fingerprint: &str,
        facts: &Facts,
    ) -> Result<AgentInfo, Refusal>;

    /// A heartbeat arrived from a connected agent.
    async fn heartbeat(&self, agent_id: &str);

    /// The agent's connection closed (not called when a newer connection replaced it).
    async fn disconnected(&self, agent_id: &str);
}

/// A connected agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// The agent's id.
    pub agent_id: String,
    /// Its environment.
    pub environment: String,
    /// Its host name (from its facts).
    pub hostname: String,
    /// Its facts as reported in `hello`.
    pub facts: Facts,
    /// When it connected, milliseconds since the Unix epoch (hub clock).
    pub connected_at_ms: i64,
}

/// Why a dispatch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// The agent is not connected.
    #[error("agent.not_connected: agent {agent_id} is not connected")]
    NotConnected {
        /// The agent.
        agent_id: String,
    },
    /// The agent belongs to another environment than the one asked for.
    #[error(
        "agent.wrong_environment: agent {agent_id} belongs to environment {agent_environment}, not {requested}"
    )]
    WrongEnvironment {
        /// The agent.
        agent_id: String,
        /// Its environment.
        agent_environment: String,
        /// The environment the caller dispatches in.
        requested: String,
    },
    /// The connection dropped while the task was in flight; its result is unknown. The task is
    /// never re-sent.
    #[error("agent.lost: connection to agent {agent_id} lost while task {task_id} was running")]
    Lost {
        /// The agent.
        agent_id: String,
        /// The task.
        task_id: String,
    },
    /// A task with this id is already in flight on this agent.
    #[error("agent.duplicate_task: task {task_id} is already running on agent {agent_id}")]
    DuplicateTask {
        /// The agent.
        agent_id: String,
        /// The task.
        task_id: String,
    },
    /// The agent could not start the task (e.g. interpreter missing).
    #[error("agent.task_start_failed: {code}: {message}")]
    StartFailed {
        /// The runner's code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The task description does not fit in one frame.
    #[error("agent.task_too_large: the task does not fit in one frame: {0}")]
    TooLarge(String),
}

impl DispatchError {
    /// Stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConnected { .. } => "agent.not_connected",
            Self::WrongEnvironment { .. } => "agent.wrong_environment",
            Self::Lost { .. } => "agent.lost",
            Self::DuplicateTask { .. } => "agent.duplicate_task",
            Self::StartFailed { .. } => "agent.task_start_failed",
            Self::TooLarge(_) => "agent.task_too_large",
        }
    }

    /// English message (same as `Display`).
    #[must_use]
    pub fn message_en(&self) -> String {
        self.to_string()
    }

    /// Chinese message.
    #[must_use]
    pub fn message_zh(&self) -> String {
        match self {
            Self::NotConnected { agent_id } => {
                format!("agent.not_connected: 代理 {agent_id} 未连接")
            }
            Self::WrongEnvironment {
                agent_id,
                agent_environment,
                requested,
            } => format!(
                "agent.wrong_environment: 代理 {agent_id} 属于环境 {agent_environment}，而不是 {requested}"
            ),
            Self::Lost { agent_id, task_id } => {
                format!("agent.lost: 任务 {task_id} 运行期间与代理 {agent_id} 的连接中断，结果未知")
            }
            Self::DuplicateTask { agent_id, task_id } => {
                format!("agent.duplicate_task: 任务 {task_id} 已在代理 {agent_id} 上运行")
            }
            Self::StartFailed { code, message } => {
                format!("agent.task_start_failed: 任务无法启动: {code}: {message}")
            }
            Self::TooLarge(d) => format!("agent.task_too_large: 任务过大，无法放入一个帧: {d}"),
        }
    }
}

/// Errors building a hub.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// TLS configuration (bad certificate/key PEM, key mismatch).
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// PKI error.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// Default heartbeat interval the hub announces: 30 s (agents are dropped after 3 missed).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
/// Default validity of agent certificates: 825 days.
pub const DEFAULT_AGENT_CERT_DAYS: u32 = 825;
/// Time allowed for the TLS handshake and the first message.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(15);
/// Frames queued per connection before senders wait.
const QUEUE: usize = 16;

struct OutFrame {
    bytes: Vec<u8>,
    /// Close the connection after writing this frame.
    last: bool,
}

struct TaskSlot {
    out: mpsc::Sender<Chunk>,
    done: oneshot::Sender<Result<Outcome, DispatchError>>,
}

struct Conn {
    id: u64,
    agent_id: String,
    environment: String,
    facts: Facts,
    connected_at_ms: i64,
    tx: mpsc::Sender<OutFrame>,
    /// `None` once the connection has ended: no new task may be registered.
    tasks: Mutex<Option<HashMap<String, TaskSlot>>>,
    kill: CancelToken,
}

impl Conn {
    fn take_slot(&self, task_id: &str) -> Option<TaskSlot> {
        self.tasks
            .lock()
            .ok()
            .and_then(|mut t| t.as_mut().and_then(|m| m.remove(task_id)))
    }
}

/// The server side of the agent protocol.
pub struct Hub {
    acceptor: TlsAcceptor,
    ca: Ca,
    authority: Arc<dyn Authority>,
    clock: Arc<dyn Clock>,
    heartbeat: Duration,
    agent_cert_days: u32,
    conns: Mutex<HashMap<String, Arc<Conn>>>,
    next_conn: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("ca", &self.ca)
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Hub {
    /// A hub with the CA, its server certificate and key (PEM; issue them with
    /// [`Ca::issue_server_cert`]) and the authority.
    ///
    /// # Errors
    /// The certificate or key does not parse or does not match.
    pub fn new(
        ca: Ca,
        server_cert_pem: &str,
        server_key_pem: &str,
        authority: Arc<dyn Authority>,
    ) -> Result<Hub, HubError> {
        let cfg = server_config(ca.cert_pem(), server_cert_pem, server_key_pem)?;
        Ok(Hub {
            acceptor: TlsAcceptor::from(Arc::new(cfg)),
            ca,
            authority,
            clock: Arc::new(SystemClock),
            heartbeat: DEFAULT_HEARTBEAT,
            agent_cert_days: DEFAULT_AGENT_CERT_DAYS,
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        })
    }

    /// Use this clock for `connected_at_ms` and certificate validity.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Hub {
        self.clock = clock;
        self
    }

    /// Heartbeat interval announced to agents (whole seconds, at least 1); an agent silent for
    /// three intervals is dropped.
    #[must_use]
    pub fn with_heartbeat(mut self, interval: Duration) -> Hub {
        self.heartbeat = Duration::from_secs(interval.as_secs().max(1));
        self
    }

    /// Validity of the certificates issued to enrolling agents.
    #[must_use]
    pub fn with_agent_cert_days(mut self, days: u32) -> Hub {
        self.agent_cert_days = days.max(1);
        self
    }

    /// Accept connections on `listener` until `shutdown` is cancelled; then close every agent
    /// connection (in-flight dispatches end with [`DispatchError::Lost`]) and return.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancelToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                acc = listener.accept() => match acc {
                    Ok((tcp, peer)) => {
                        let hub = self.clone();
                        let sd = shutdown.clone();
                        tokio::spawn(async move { hub.handle(tcp, peer, sd).await });
                    }
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "agent hub: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        drop(listener);
        let conns: Vec<Arc<Conn>> = lock(&self.conns).drain().map(|(_, c)| c).collect();
        for c in conns {
            c.kill.cancel();
        }
    }

    /// The agents connected now, sorted by id.
    #[must_use]
    pub fn connected(&self) -> Vec<Connected> {
        let mut v: Vec<Connected> = lock(&self.conns)
            .values()
            .map(|c| Connected {
                agent_id: c.agent_id.clone(),
                environment: c.environment.clone(),
                hostname: c.facts.hostname.clone(),
                facts: c.facts.clone(),
                connected_at_ms: c.connected_at_ms,
            })
            .collect();
        v.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        v
    }

    /// Whether `agent_id` is connected now.
    #[must_use]
    pub fn is_connected(&self, agent_id: &str) -> bool {
        lock(&self.conns).contains_key(agent_id)
    }

    /// Run `spec` on `agent_id`, which must belong to `environment`. Output chunks go to `out`
    /// as they arrive — consume `out` concurrently (it is bounded; a full channel slows the
    /// agent down). Returns the outcome when the agent reports it. If the connection drops
    /// first, [`DispatchError::Lost`]: the task is never re-sent.
    ///
    /// # Errors
    /// See [`DispatchError`].
    pub async fn dispatch(
        &self,
        agent_id: &str,
        environment: &str,
        task_id: String,
        spec: TaskSpec,
        out: mpsc::Sender<Chunk>,
    ) -> Result<Outcome, DispatchError> {
        let conn = lock(&self.conns).get(agent_id).cloned().ok_or_else(|| {
            DispatchError::NotConnected {
                agent_id: agent_id.to_owned(),
            }
        })?;
        if conn.environment != environment {
            return Err(DispatchError::WrongEnvironment {
                agent_id: agent_id.to_owned(),
                agent_environment: conn.environment.clone(),
                requested: environment.to_owned(),
            });
        }
        let frame = encode_frame(&ServerMsg::Task {
            task_id: task_id.clone(),
            spec,
        })
        .map_err(|e| DispatchError::TooLarge(e.to_string()))?;
        let (done_tx, done_rx) = oneshot::channel();
        {
            let mut tasks = lock(&conn.tasks);
            let Some(map) = tasks.as_mut() else {
                return Err(DispatchError::NotConnected {
                    agent_id: agent_id.to_owned(),
                });
            };
            if map.contains_key(&task_id) {
                return Err(DispatchError::DuplicateTask {
                    agent_id: agent_id.to_owned(),
                    task_id,
                });
            }
            map.insert(task_id.clone(), TaskSlot { out, done: done_tx });
        }
        if conn
            .tx
            .send(OutFrame {
                bytes: frame,
                last: false,
            })
            .await
            .is_err()
        {
            conn.take_slot(&task_id);
            return Err(DispatchError::NotConnected {
                agent_id: agent_id.to_owned(),
            });
        }
        match done_rx.await {
            Ok(r) => r,
            Err(_) => Err(DispatchError::Lost {
                agent_id: agent_id.to_owned(),
                task_id,
            }),
        }
    }

    /// Ask the agent to cancel a task; its `dispatch` then returns the (cancelled) outcome.
    ///
    /// # Errors
    /// The agent is not connected.
    pub async fn cancel(&self, agent_id: &str, task_id: &str) -> Result<(), DispatchError> {
        let not_connected = || DispatchError::NotConnected {
            agent_id: agent_id.to_owned(),
        };
        let conn = lock(&self.conns)
            .get(agent_id)
            .cloned()
            .ok_or_else(not_connected)?;
        let bytes = encode_frame(&ServerMsg::Cancel {
            task_id: task_id.to_owned(),
        })
        .map_err(|e| DispatchError::TooLarge(e.to_string()))?;
        conn.tx
            .send(OutFrame { bytes, last: false })
            .await
            .map_err(|_| not_connected())
    }

    /// Disconnect `agent_id` now, telling it `agent.revoked` (the authority must refuse it from
    /// now on). Returns whether it was connected.
    pub fn revoke(&self, agent_id: &str) -> bool {
        let Some(conn) = lock(&self.conns).remove(agent_id) else {
            return false;
        };
        let sent = encode_frame(&Refusal::revoked().to_msg())
            .ok()
            .is_some_and(|bytes| conn.tx.try_send(OutFrame { bytes, last: true }).is_ok());
        if !sent {
            conn.kill.cancel();
        }
        true
    }

    async fn handle(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, shutdown: CancelToken) {
        let _ = tcp.set_nodelay(true);
        let tls = match tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, self.acceptor.accept(tcp)).await
        {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "agent hub: TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "agent hub: TLS handshake timed out");
                return;
            }
        };
        let client_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec());
        match client_cert {
            None => self.enrolment(tls, peer).await,
            Some(der) => self.agent(tls, peer, &der, shutdown).await,
        }
    }

    async fn enrolment(&self, tls: TlsStream<TcpStream>, peer: SocketAddr) {
        let (mut rd, mut wr) = tokio::io::split(tls);
        let msg = match first_message(&mut rd).await {
            Ok(m) => m,
            Err(r) => {
                tracing::info!(%peer, code = %r.code, "agent hub: enrolment refused");
                refuse(&mut wr, &r).await;
                return;
            }
        };
        let reply = match msg {
            AgentMsg::Enroll {
                token_secret,
                csr_pem,
                facts,
                protocol,
                ..
            } => self.enroll(&token_secret, &csr_pem, &facts, protocol).await,
            _ => Err(Refusal::protocol(
                "a connection without client certificate may only enrol",
            )),
        };
        match reply {
            Ok(msg) => {
                if let Ok(bytes) = encode_frame(&msg) {
                    let _ = wr.write_all(&bytes).await;
                    let _ = wr.flush().await;
                }
                let _ = wr.shutdown().await;
            }
            Err(r) => {
                tracing::info!(%peer, code = %r.code, "agent hub: enrolment refused");
                refuse(&mut wr, &r).await;
            }
        }
    }

    async fn enroll(
        &self,
        token_secret: &str,
        csr_pem: &str,
        facts: &Facts,
        protocol: u32,
    ) -> Result<ServerMsg, Refusal> {
        if protocol != PROTOCOL_VERSION {
            return Err(Refusal::version_mismatch(protocol));
        }
        let mut b = [0u8; 10];
        rand::thread_rng().fill_bytes(&mut b);
        let agent_id = format!("agt-{}", hex::encode(b));
        let now = self.clock.now();
        let cert_pem = self
            .ca
            .sign_agent_csr_at(csr_pem, &agent_id, self.agent_cert_days, now)
            .map_err(|e| Refusal {
                code: "agent.csr_invalid".into(),
                message_zh: format!("证书签名请求无效: {}", e.message_zh()),
                message_en: format!("Invalid certificate signing request: {e}"),
            })?;
        let fp = fingerprint_pem(&cert_pem).map_err(|e| Refusal::internal(&e.to_string()))?;
        let enrolled = self
            .authority
            .enroll(&hash_secret(token_secret), facts, &agent_id, &fp)
            .await?;
        if enrolled.agent_id != agent_id {
            return Err(Refusal::internal("the authority changed the agent id"));
        }
        tracing::info!(%agent_id, environment = %enrolled.environment, "agent enrolled");
        Ok(ServerMsg::Enrolled {
            agent_id,
            cert_pem,
            ca_pem: self.ca.cert_pem().to_owned(),
        })
    }

    async fn agent(
        &self,
        tls: TlsStream<TcpStream>,
        peer: SocketAddr,
        cert_der: &[u8],
        shutdown: CancelToken,
    ) {
        let (mut rd, mut wr) = tokio::io::split(tls);
        let admitted = match first_message(&mut rd).await {
            Ok(AgentMsg::Hello {
                protocol, facts, ..
            }) => self
                .admit(cert_der, protocol, &facts)
                .await
                .map(|i| (i, facts)),
            Ok(_) => Err(Refusal::protocol("expected hello")),
            Err(r) => Err(r),
        };
        let (info, facts) = match admitted {
            Ok(x) => x,
            Err(r) => {
                tracing::info!(%peer, code = %r.code, "agent hub: agent refused");
                refuse(&mut wr, &r).await;
                return;
            }
        };
        let welcome = ServerMsg::Welcome {
            agent_id: info.agent_id.clone(),
            heartbeat_secs: self.heartbeat.as_secs(),
        };
        let Ok(bytes) = encode_frame(&welcome) else {
            return;
        };
        if wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let conn = Arc::new(Conn {
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            agent_id: info.agent_id.clone(),
            environment: info.environment,
            facts,
            connected_at_ms: self.clock.now().timestamp_millis(),
            tx,
            tasks: Mutex::new(Some(HashMap::new())),
            kill: CancelToken::new(),
        });
        let replaced = lock(&self.conns).insert(info.agent_id.clone(), conn.clone());
        if let Some(old) = replaced {
            old.kill.cancel();
        }
        tracing::info!(agent_id = %info.agent_id, %peer, "agent connected");

        let reason = tokio::select! {
            r = self.read_loop(&conn, &mut rd) => r,
            r = write_loop(&mut wr, rx) => r,
            () = conn.kill.cancelled() => "closed by the hub".to_owned(),
            () = shutdown.cancelled() => "hub shutting down".to_owned(),
        };
        // End: refuse new tasks, fail in-flight ones (their senders drop → Lost).
        let in_flight = lock(&conn.tasks).take();
        drop(in_flight);
        let still_ours = {
            let mut conns = lock(&self.conns);
            if conns.get(&conn.agent_id).is_some_and(|c| c.id == conn.id) {
                conns.remove(&conn.agent_id);
                true
            } else {
                false
            }
        };
        let _ = wr.shutdown().await;
        tracing::info!(agent_id = %conn.agent_id, %reason, "agent disconnected");
        if still_ours {
            self.authority.disconnected(&conn.agent_id).await;
        }
    }

    async fn admit(
        &self,
        cert_der: &[u8],
        protocol: u32,
        facts: &Facts,
    ) -> Result<AgentInfo, Refusal> {
        if protocol != PROTOCOL_VERSION {
            return Err(Refusal::version_mismatch(protocol));
        }
        let Some(agent_id) = common_name_der(cert_der) else {
            return Err(Refusal::unknown());
        };
        let info = self
            .authority
            .admit(&agent_id, &fingerprint_der(cert_der), facts)
            .await?;
        if info.agent_id != agent_id {
            return Err(Refusal::internal("the authority changed the agent id"));
        }
        Ok(info)
    }

    async fn read_loop<R: AsyncRead + Unpin>(&self, conn: &Conn, rd: &mut R) -> String {
        let limit = self.heartbeat * 3;
        loop {
            let msg = match tokio::time::timeout(limit, read_frame::<_, AgentMsg>(rd)).await {
                Err(_) => return "heartbeat timeout".into(),
                Ok(Ok(None)) => return "closed by the agent".into(),
                Ok(Err(e)) => return e.to_string(),
                Ok(Ok(Some(m))) => m,
            };
            match msg {
                AgentMsg::Output {
                    task_id,
                    stream,
                    data_b64,
                } => {
                    let Ok(data) = base64::engine::general_purpose::STANDARD.decode(&data_b64)
                    else {
                        return "agent.frame_invalid: output is not base64".into();
                    };
                    let out = lock(&conn.tasks)
                        .as_ref()
                        .and_then(|m| m.get(&task_id).map(|s| s.out.clone()));
                    if let Some(out) = out {
                        // A dropped receiver only means nobody wants the output.
                        let _ = out.send(Chunk { stream, data }).await;
                    }
                }
                AgentMsg::Done { task_id, outcome } => {
                    if let Some(slot) = conn.take_slot(&task_id) {
                        let _ = slot.done.send(Ok(outcome));
                    }
                }
                AgentMsg::Error {
                    task_id,
                    code,
                    message,
                } => {
                    if let Some(slot) = conn.take_slot(&task_id) {
                        let _ = slot
                            .done
                            .send(Err(DispatchError::StartFailed { code, message }));
                    }
                }
                AgentMsg::Heartbeat { seq } => {
                    self.authority.heartbeat(&conn.agent_id).await;
                    if let Ok(bytes) = encode_frame(&ServerMsg::HeartbeatAck { seq }) {
                        // Never block the reader on a full queue: a missed ack is harmless.
                        let _ = conn.tx.try_send(OutFrame { bytes, last: false });
                    }
                }
                AgentMsg::Enroll { .. } | AgentMsg::Hello { .. } => {
                    return "agent.protocol: unexpected enroll/hello".into();
                }
            }
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(wr: &mut W, mut rx: mpsc::Receiver<OutFrame>) -> String {
    while let Some(f) = rx.recv().await {
        if let Err(e) = wr.write_all(&f.bytes).await {
            return format!("write failed: {e}");
        }
        if let Err(e) = wr.flush().await {
            return format!("write failed: {e}");
        }
        if f.last {
            return "closed after a final message".into();
        }
    }
    "queue closed".into()
}

async fn first_message(rd: &mut ReadHalf<TlsStream<TcpStream>>) -> Result<AgentMsg, Refusal> {
    match tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, read_frame::<_, AgentMsg>(rd)).await {
        Err(_) => Err(Refusal::protocol("no message within the time limit")),
        Ok(Ok(Some(m))) => Ok(m),
        Ok(Ok(None)) => Err(Refusal::protocol(
            "connection closed before the first message",
        )),
        Ok(Err(e @ ProtoError::FrameTooLarge { .. })) => Err(Refusal {
            code: e.code().into(),
            message_zh: format!("帧过大（上限 {} 字节）", crate::proto::MAX_FRAME),
            message_en: e.to_string(),
        }),
        Ok(Err(e)) => Err(Refusal::protocol(&e.to_string())),
    }
}

async fn refuse(wr: &mut WriteHalf<TlsStream<TcpStream>>, r: &Refusal) {
    if let Ok(bytes) = encode_frame(&r.to_msg()) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = wr.write_all(&bytes).await;
            let _ = wr.flush().await;
            let _ = wr.shutdown().await;
        })
        .await;
    }
}
