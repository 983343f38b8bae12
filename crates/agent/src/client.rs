//! The agent runtime: enrol once, then keep one mTLS connection to the hub, run tasks with the
//! [`Runner`], stream their output, heartbeat, and reconnect with backoff.
//!
//! The binary is expected to drive [`run`] on a `tokio` **current-thread** runtime
//! (`tokio::runtime::Builder::new_current_thread().enable_all()`), which keeps the idle agent
//! at a few MB of RSS; nothing here needs more than one thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast_runner::{CancelToken, Chunk, Runner, TaskSpec};
use base64::Engine as _;
use rand::Rng as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::facts;
use crate::pki::{EnrollToken, PkiError, common_name_der, fingerprint_pem, first_cert_der};
use crate::proto::{
    AGENT_VERSION, AgentMsg, Facts, PROTOCOL_VERSION, ProtoError, ServerMsg, read_frame,
    write_frame,
};
use crate::tls::{self, ConnectFailure, TlsConfigError};

/// File names in the data directory.
pub const CERT_FILE: &str = "agent.crt";
/// The agent's private key (mode 0600).
pub const KEY_FILE: &str = "agent.key";
/// The CA certificate saved at enrolment.
pub const CA_FILE: &str = "ca.crt";

/// Time allowed for the server's answer to `enroll` / `hello`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Largest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The hub, `host:port` or `tls://host:port` (`[v6]:port` for IPv6). The host must be in the
    /// hub's server certificate.
    pub server: String,
    /// Where `agent.crt`, `agent.key` and `ca.crt` live, and `work/` for task scripts.
    pub data_dir: PathBuf,
    /// Enrolment token (`bet1.…`), needed only while the data directory holds no identity.
    pub enroll_token: Option<String>,
    /// Heartbeat interval upper bound; the hub's announced interval wins when it is shorter.
    pub heartbeat: Duration,
}

/// The agent's credentials: its certificate and key, and the CA it trusts.
#[derive(Clone)]
pub struct Identity {
    /// The agent id (CN of `cert_pem`).
    pub agent_id: String,
    /// The agent certificate (PEM).
    pub cert_pem: String,
    /// The agent key (PEM).
    pub key_pem: String,
    /// The CA certificate (PEM).
    pub ca_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

/// Agent errors.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The server address is not `host:port`.
    #[error("agent.server_invalid: server address {0:?} is not host:port")]
    ServerAddress(String),
    /// No identity in the data directory and no enrolment token given.
    #[error("agent.not_enrolled: {0} holds no agent identity and no enrolment token was given")]
    NotEnrolled(String),
    /// Token or certificate problem.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// TLS configuration problem (bad saved PEM files).
    #[error(transparent)]
    TlsConfig(#[from] TlsConfigError),
    /// TCP connection failed.
    #[error("agent.connect: cannot connect to {server}: {source}")]
    Connect {
        /// The server.
        server: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// TLS handshake failed (server certificate not trusted, …).
    #[error("agent.tls: TLS handshake with {server} failed: {detail}")]
    Tls {
        /// The server.
        server: String,
        /// The cause.
        detail: String,
    },
    /// The server's CA is not the one pinned by the enrolment token: possible man in the middle.
    #[error(
        "agent.ca_mismatch: the server at {server} does not present the CA pinned by the enrolment token ({detail}); refusing it"
    )]
    CaMismatch {
        /// The server.
        server: String,
        /// Detail.
        detail: String,
    },
    /// Protocol / framing error.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The server refused us.
    #[error("{code}: {message_en}")]
    Refused {
        /// Stable code (`agent.revoked`, `agent.unknown`, `agent.token_invalid`,
        /// `agent.version_mismatch`, …).
        code: String,
        /// Chinese text.
        message_zh: String,
        /// English text.
        message_en: String,
    },
    /// The server sent something unexpected or nothing in time.
    #[error("agent.protocol: {0}")]
    Protocol(String),
    /// The connection ended.
    #[error("agent.disconnected: {0}")]
    Disconnected(String),
    /// Reading or writing the data directory failed.
    #[error("agent.io: {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl AgentError {
    /// Stable code.
    #[must_use]
    pub fn code(&self) -> String {
        match self {
            Self::ServerAddress(_) => "agent.server_invalid".into(),
            Self::NotEnrolled(_) => "agent.not_enrolled".into(),
            Self::Pki(e) => e.code().into(),
            Self::TlsConfig(_) => "agent.tls_config".into(),
            Self::Connect { .. } => "agent.connect".into(),
            Self::Tls { .. } => "agent.tls".into(),
            Self::CaMismatch { .. } => "agent.ca_mismatch".into(),
            Self::Proto(e) => e.code().into(),
            Self::Refused { code, .. } => code.clone(),
            Self::Protocol(_) => "agent.protocol".into(),
            Self::Disconnected(_) => "agent.disconnected".into(),
            Self::Io { .. } => "agent.io".into(),
        }
    }

    /// Chinese message.
    #[must_use]
    pub fn message_zh(&self) -> String {
        match self {
            Self::ServerAddress(s) => {
                format!("agent.server_invalid: 服务器地址 {s:?} 不是 host:port 形式")
            }
            Self::NotEnrolled(d) => {
                format!("agent.not_enrolled: {d} 中没有代理身份，且未提供注册令牌")
            }
            Self::Pki(e) => e.message_zh(),
            Self::TlsConfig(e) => format!("agent.tls_config: TLS 配置错误: {}", e.0),
            Self::Connect { server, source } => {
                format!("agent.connect: 无法连接 {server}: {source}")
            }
            Self::Tls { server, detail } => {
                format!("agent.tls: 与 {server} 的 TLS 握手失败: {detail}")
            }
            Self::CaMismatch { server, detail } => format!(
                "agent.ca_mismatch: {server} 出示的 CA 与注册令牌固定的 CA 不符（{detail}），可能存在中间人，拒绝连接"
            ),
            Self::Proto(e) => format!("{}: 协议帧错误: {e}", e.code()),
            Self::Refused {
                message_zh, code, ..
            } => format!("{code}: {message_zh}"),
            Self::Protocol(d) => format!("agent.protocol: 协议错误: {d}"),
            Self::Disconnected(d) => format!("agent.disconnected: 连接中断: {d}"),
            Self::Io { path, source } => format!("agent.io: {}: {source}", path.display()),
        }
    }

    /// Errors that retrying cannot fix: `run` returns them instead of reconnecting.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Refused { code, .. } => matches!(
                code.as_str(),
                "agent.revoked"
                    | "agent.unknown"
                    | "agent.token_invalid"
                    | "agent.version_mismatch"
                    | "agent.csr_invalid"
            ),
            Self::ServerAddress(_)
            | Self::NotEnrolled(_)
            | Self::Pki(_)
            | Self::TlsConfig(_)
            | Self::CaMismatch { .. }
            | Self::Io { .. } => true,
            Self::Connect { .. }
            | Self::Tls { .. }
            | Self::Proto(_)
            | Self::Protocol(_)
            | Self::Disconnected(_) => false,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
    move |source| AgentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, data: &str, mode: u32) -> Result<(), AgentError> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(data.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

impl Identity {
    /// Load `agent.crt`, `agent.key`, `ca.crt` from `dir`; `Ok(None)` if any is missing.
    ///
    /// # Errors
    /// A file exists but cannot be read or holds no valid certificate.
    pub fn load(dir: &Path) -> Result<Option<Identity>, AgentError> {
        let read = |name: &str| -> Result<Option<String>, AgentError> {
            let p = dir.join(name);
            match std::fs::read_to_string(&p) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err(&p)(e)),
            }
        };
        let (Some(cert_pem), Some(key_pem), Some(ca_pem)) =
            (read(CERT_FILE)?, read(KEY_FILE)?, read(CA_FILE)?)
        else {
            return Ok(None);
        };
        let der = first_cert_der(&cert_pem, "agent certificate")?;
        let agent_id = common_name_der(der.as_ref()).ok_or(PkiError::Pem {
            what: "agent certificate",
            detail: "no common name".into(),
        })?;
        Ok(Some(Identity {
            agent_id,
            cert_pem,
            key_pem,
            ca_pem,
        }))
    }

    /// Save into `dir` (created 0700): the key 0600, the certificates 0644.
    ///
    /// # Errors
    /// The directory or a file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), AgentError> {
        use std::os::unix::fs::DirBuilderExt as _;
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir))?;
        }
        write_file(&dir.join(KEY_FILE), &self.key_pem, 0o600)?;
        write_file(&dir.join(CA_FILE), &self.ca_pem, 0o644)?;
        // The certificate last: its presence marks a complete identity.
        write_file(&dir.join(CERT_FILE), &self.cert_pem, 0o644)
    }
}

fn server_addr(server: &str) -> Result<(String, u16), AgentError> {
    tls::parse_server(server).ok_or_else(|| AgentError::ServerAddress(server.to_owned()))
}

fn connect_error(server: &str, f: ConnectFailure) -> AgentError {
    match f {
        ConnectFailure::Tcp(source) => AgentError::Connect {
            server: server.to_owned(),
            source,
        },
        ConnectFailure::Name(detail) => AgentError::Tls {
            server: server.to_owned(),
            detail,
        },
        ConnectFailure::Handshake {
            detail,
            pin_mismatch: true,
        } => AgentError::CaMismatch {
            server: server.to_owned(),
            detail,
        },
        ConnectFailure::Handshake { detail, .. } => AgentError::Tls {
            server: server.to_owned(),
            detail,
        },
    }
}

fn refused(msg: ServerMsg) -> AgentError {
    match msg {
        ServerMsg::Refused {
            code,
            message_zh,
            message_en,
        } => AgentError::Refused {
            code,
            message_zh,
            message_en,
        },
        other => AgentError::Protocol(format!("unexpected message {other:?}")),
    }
}

async fn answer<R: AsyncRead + Unpin>(rd: &mut R) -> Result<ServerMsg, AgentError> {
    match tokio::time::timeout(ANSWER_TIMEOUT, read_frame::<_, ServerMsg>(rd)).await {
        Err(_) => Err(AgentError::Protocol(
            "no answer from the server in time".into(),
        )),
        Ok(Ok(Some(m))) => Ok(m),
        Ok(Ok(None)) => Err(AgentError::Disconnected(
            "the server closed the connection without answering".into(),
        )),
        Ok(Err(e)) => Err(e.into()),
    }
}

/// Enrol with the hub using `token` (`bet1.<secret>.<ca_fp>`): the server must present the CA
/// pinned by the token. Facts are collected from this host. With `data_dir`, the identity is
/// saved there; without, it is only returned (simulated agents).
///
/// # Errors
/// Bad token or address, connection failure, CA pin mismatch, refusal.
pub async fn enroll(
    server: &str,
    token: &str,
    data_dir: Option<&Path>,
) -> Result<Identity, AgentError> {
    let facts = facts::collect().await;
    enroll_with_facts(server, token, facts, data_dir).await
}

/// [`enroll`] with the facts given (no host probing).
///
/// # Errors
/// See [`enroll`].
pub async fn enroll_with_facts(
    server: &str,
    token: &str,
    facts: Facts,
    data_dir: Option<&Path>,
) -> Result<Identity, AgentError> {
    let token = EnrollToken::parse(token)?;
    let (host, port) = server_addr(server)?;
    let (key_pem, csr_pem) = crate::pki::generate_key_and_csr(&facts.hostname)?;
    let cfg = tls::client_config_pinned(&token.ca_fingerprint)?;
    let mut stream = tls::connect(&host, port, Arc::new(cfg))
        .await
        .map_err(|f| connect_error(server, f))?;
    write_frame(
        &mut stream,
        &AgentMsg::Enroll {
            token_secret: token.secret.clone(),
            csr_pem,
            facts,
            version: AGENT_VERSION.to_owned(),
            protocol: PROTOCOL_VERSION,
        },
    )
    .await?;
    match answer(&mut stream).await? {
        ServerMsg::Enrolled {
            agent_id,
            cert_pem,
            ca_pem,
        } => {
            let got = fingerprint_pem(&ca_pem)?;
            if got != token.ca_fingerprint {
                return Err(AgentError::CaMismatch {
                    server: server.to_owned(),
                    detail: format!("enrolment answer carries CA {got}"),
                });
            }
            let id = Identity {
                agent_id,
                cert_pem,
                key_pem,
                ca_pem,
            };
            if let Some(dir) = data_dir {
                id.save(dir)?;
            }
            Ok(id)
        }
        other => Err(refused(other)),
    }
}

/// Open an mTLS connection to the hub with `id` (no message sent yet). For tools and tests
/// that speak the protocol themselves.
///
/// # Errors
/// Bad address or saved PEM, connection or handshake failure.
pub async fn open_mtls(
    server: &str,
    id: &Identity,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, AgentError> {
    let (host, port) = server_addr(server)?;
    let cfg = tls::client_config_mtls(&id.ca_pem, &id.cert_pem, &id.key_pem)?;
    tls::connect(&host, port, Arc::new(cfg))
        .await
        .map_err(|f| connect_error(server, f))
}

/// Options of one agent session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Facts sent in `hello`.
    pub facts: Facts,
    /// Heartbeat interval upper bound (the hub's interval wins when shorter).
    pub heartbeat: Duration,
}

/// Connect once with `id`, say hello (facts collected from this host), run tasks until the
/// connection ends or `shutdown` is cancelled. `Ok(())` only on shutdown; running tasks are
/// cancelled then. When the connection drops, running tasks go on to their end, their output
/// discarded (the server has marked them `unknown`).
///
/// # Errors
/// Connection failure, refusal, protocol error, or the connection ended.
pub async fn connect_and_serve(
    server: &str,
    id: &Identity,
    runner: Arc<Runner>,
    shutdown: CancelToken,
) -> Result<(), AgentError> {
    let opts = SessionOptions {
        facts: facts::collect().await,
        heartbeat: crate::hub::DEFAULT_HEARTBEAT,
    };
    connect_and_serve_with(server, id, runner, &opts, shutdown).await
}

/// [`connect_and_serve`] with explicit facts and heartbeat.
///
/// # Errors
/// See [`connect_and_serve`].
pub async fn connect_and_serve_with(
    server: &str,
    id: &Identity,
    runner: Arc<Runner>,
    opts: &SessionOptions,
    shutdown: CancelToken,
) -> Result<(), AgentError> {
    session(server, id, runner, opts, &shutdown).await.1
}

type Running = Arc<Mutex<HashMap<String, CancelToken>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One connection. Returns whether the hub welcomed us (for the backoff) and the result.
async fn session(
    server: &str,
    id: &Identity,
    runner: Arc<Runner>,
    opts: &SessionOptions,
    shutdown: &CancelToken,
) -> (bool, Result<(), AgentError>) {
    let stream = tokio::select! {
        r = open_mtls(server, id) => match r {
            Ok(s) => s,
            Err(e) => return (false, Err(e)),
        },
        () = shutdown.cancelled() => return (false, Ok(())),
    };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let hello = AgentMsg::Hello {
        version: AGENT_VERSION.to_owned(),
        protocol: PROTOCOL_VERSION,
        facts: opts.facts.clone(),
    };
    if let Err(e) = write_frame(&mut wr, &hello).await {
        return (false, Err(e.into()));
    }
    let heartbeat = match answer(&mut rd).await {
        Ok(ServerMsg::Welcome { heartbeat_secs, .. }) => opts
            .heartbeat
            .min(Duration::from_secs(heartbeat_secs.max(1))),
        Ok(other) => return (false, Err(refused(other))),
        Err(e) => return (false, Err(e)),
    };
    tracing::info!(agent_id = %id.agent_id, %server, "connected to the hub");

    let running: Running = Arc::new(Mutex::new(HashMap::new()));
    let (tx, rx) = mpsc::channel::<AgentMsg>(32);
    let result = tokio::select! {
        r = agent_read_loop(&mut rd, heartbeat, &runner, &tx, &running) => Err(r),
        r = agent_write_loop(&mut wr, rx, heartbeat) => Err(r),
        () = shutdown.cancelled() => Ok(()),
    };
    // Close the connection now, not after the tasks below.
    drop(rd);
    drop(wr);
    if result.is_ok() {
        // Shutting down: cancel what runs and give it a moment to stop.
        let tokens: Vec<CancelToken> = lock(&running).values().cloned().collect();
        for t in &tokens {
            t.cancel();
        }
        let start = Instant::now();
        while !lock(&running).is_empty() && start.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (true, result)
}

async fn agent_read_loop<R: AsyncRead + Unpin>(
    rd: &mut R,
    heartbeat: Duration,
    runner: &Arc<Runner>,
    tx: &mpsc::Sender<AgentMsg>,
    running: &Running,
) -> AgentError {
    let limit = heartbeat * 3;
    loop {
        let msg = match tokio::time::timeout(limit, read_frame::<_, ServerMsg>(rd)).await {
            Err(_) => {
                return AgentError::Disconnected("no word from the hub for 3 heartbeats".into());
            }
            Ok(Ok(None)) => {
                return AgentError::Disconnected("the hub closed the connection".into());
            }
            Ok(Err(e)) => return e.into(),
            Ok(Ok(Some(m))) => m,
        };
        match msg {
            ServerMsg::Task { task_id, spec } => {
                start_task(task_id, spec, runner.clone(), tx.clone(), running.clone());
            }
            ServerMsg::Cancel { task_id } => {
                if let Some(t) = lock(running).get(&task_id) {
                    t.cancel();
                }
            }
            ServerMsg::HeartbeatAck { .. } => {}
            m @ ServerMsg::Refused { .. } => return refused(m),
            other => {
                return AgentError::Protocol(format!("unexpected message {other:?}"));
            }
        }
    }
}

fn start_task(
    task_id: String,
    spec: TaskSpec,
    runner: Arc<Runner>,
    tx: mpsc::Sender<AgentMsg>,
    running: Running,
) {
    let cancel = CancelToken::new();
    {
        let mut r = lock(&running);
        if r.contains_key(&task_id) {
            drop(r);
            tokio::spawn(async move {
                let _ = tx
                    .send(AgentMsg::Error {
                        message: format!("task {task_id} is already running"),
                        task_id,
                        code: "agent.duplicate_task".into(),
                    })
                    .await;
            });
            return;
        }
        r.insert(task_id.clone(), cancel.clone());
    }
    tokio::spawn(async move {
        let (ctx, mut crx) = mpsc::channel::<Chunk>(8);
        let run = runner.run(&spec, ctx, cancel);
        let forward = async {
            while let Some(c) = crx.recv().await {
                let msg = AgentMsg::Output {
                    task_id: task_id.clone(),
                    stream: c.stream,
                    data_b64: base64::engine::general_purpose::STANDARD.encode(&c.data),
                };
                // If the connection is gone, keep draining so the task is not blocked.
                let _ = tx.send(msg).await;
            }
        };
        let (res, ()) = tokio::join!(run, forward);
        let msg = match res {
            Ok(outcome) => AgentMsg::Done {
                task_id: task_id.clone(),
                outcome,
            },
            Err(e) => AgentMsg::Error {
                task_id: task_id.clone(),
                code: e.code().to_owned(),
                message: e.message_en(),
            },
        };
        let _ = tx.send(msg).await;
        lock(&running).remove(&task_id);
    });
}

async fn agent_write_loop<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut rx: mpsc::Receiver<AgentMsg>,
    heartbeat: Duration,
) -> AgentError {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => return AgentError::Disconnected("internal queue closed".into()),
            },
            _ = tick.tick() => {
                seq += 1;
                AgentMsg::Heartbeat { seq }
            }
        };
        if let Err(e) = write_frame(wr, &msg).await {
            return e.into();
        }
    }
}

/// Exponential backoff 1 s → 60 s with ±20 % jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// Starting at [`BACKOFF_MIN`].
    #[must_use]
    pub fn new() -> Backoff {
        Backoff { next: BACKOFF_MIN }
    }

    /// Back to [`BACKOFF_MIN`] (after a successful connection).
    pub fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    /// The next delay (jittered), doubling the base up to [`BACKOFF_MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        base.mul_f64(rand::thread_rng().gen_range(0.8..=1.2))
    }
}

/// The agent main loop: enrol if `data_dir` holds no identity (needs the token), then stay
/// connected, reconnecting with [`Backoff`]. Returns `Ok(())` when `shutdown` is cancelled, or
/// the error when it is fatal ([`AgentError::is_fatal`]: revoked, unknown, version mismatch,
/// CA pin mismatch, bad token, …) — never a tight retry loop.
///
/// # Errors
/// A fatal error.
pub async fn run(config: AgentConfig, shutdown: CancelToken) -> Result<(), AgentError> {
    let runner = Arc::new(Runner::probe(&config.data_dir.join("work")));
    let mut backoff = Backoff::new();
    let identity = loop {
        if let Some(id) = Identity::load(&config.data_dir)? {
            break id;
        }
        let Some(token) = config.enroll_token.as_deref() else {
            return Err(AgentError::NotEnrolled(
                config.data_dir.display().to_string(),
            ));
        };
        let attempt = tokio::select! {
            r = enroll(&config.server, token, Some(&config.data_dir)) => r,
            () = shutdown.cancelled() => return Ok(()),
        };
        match attempt {
            Ok(id) => {
                tracing::info!(agent_id = %id.agent_id, "enrolled");
                break id;
            }
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?d, "enrolment failed");
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    };
    backoff.reset();
    let opts = SessionOptions {
        facts: facts::collect().await,
        heartbeat: config.heartbeat,
    };
    loop {
        let (welcomed, res) =
            session(&config.server, &identity, runner.clone(), &opts, &shutdown).await;
        match res {
            Ok(()) => return Ok(()),
            Err(e) if e.is_fatal() => {
                tracing::error!(error = %e, "agent stopping");
                return Err(e);
            }
            Err(e) => {
                if welcomed {
                    backoff.reset();
                }
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?d, "disconnected from the hub");
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let mut b = Backoff::new();
        let d: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(800) && d[0] <= Duration::from_millis(1200));
        assert!(d[1] >= Duration::from_millis(1600) && d[1] <= Duration::from_millis(2400));
        for x in &d {
            assert!(*x <= Duration::from_secs(72));
        }
        assert!(d[9] >= Duration::from_secs(48));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
    }

    #[test]
    fn fatal_classification() {
        let r = |c: &str| AgentError::Refused {
            code: c.into(),
            message_zh: String::new(),
            message_en: String::new(),
        };
        assert!(r("agent.revoked").is_fatal());
        assert!(r("agent.version_mismatch").is_fatal());
        assert!(!r("agent.internal").is_fatal());
        assert!(!AgentError::Disconnected("x".into()).is_fatal());
    }
}
