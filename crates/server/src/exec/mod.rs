//! Operation automation in the server (standard 8.1.1.3 操作自动化): the script library, job
//! plans, runs on hosts through three transports, and the agents' gateway.
//!
//! - `service` — guarded operations (every entry point calls these; each runs the guard pipeline
//!   and commits its change with its audit record);
//! - `engine` — the run driver: claims runs (one owner per run across replicas), executes steps
//!   in rolling batches, records every task and its output, recovers after a crash;
//! - `transport` — local, agent and SSH execution behind one function;
//! - `authority` — the agent hub's view of the database (enrolment tokens, agent identities);
//! - `danger` — the dangerous-content stage of the guard pipeline;
//! - `recorder` — group commits of task bookkeeping and output;
//! - `schedule` — scheduled runs (cron with trading-calendar filters, catch-up) and the scheduler;
//! - `seal` — secrets at rest; `model` — the frozen run snapshot;
//! - `api` — `/api/v1/scripts|plans|runs|exec|agents|…`; `pages` — the web UI.

pub mod api;
pub mod authority;
pub mod danger;
pub mod engine;
pub mod model;
pub mod pages;
pub mod recorder;
pub mod schedule;
pub mod seal;
pub mod service;
pub mod transport;
pub mod webhook;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use ballast_agent::hub::Hub;
use ballast_agent::pki::Ca;
use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_runner::{CancelToken, Runner};
use ballast_store::{SettingRow, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::config::Config;

/// `[exec]` in `ballast.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecConfig {
    /// Where agents connect (TLS). `BALLAST_AGENT_LISTEN`.
    pub agent_listen: SocketAddr,
    /// Names and addresses agents use to reach this server (the server certificate's SANs).
    pub agent_server_names: Vec<String>,
    /// Environments treated as production: only online script versions run there.
    pub production_environments: Vec<String>,
    /// Environments whose runs may target the server's own host (`local`). Default: none.
    /// `BALLAST_LOCAL_ENVIRONMENTS`.
    pub local_environments: Vec<String>,
    /// Output kept per host per step and stream; the rest is counted and dropped.
    pub output_cap_bytes: u64,
    /// Most tasks of one step running at once.
    pub max_concurrency: u32,
    /// Memory cap per task (cgroup v2 `memory.max`, or the address-space rlimit).
    pub task_memory_bytes: Option<u64>,
    /// CPU cap per task in percent of one core (cgroup v2 only).
    pub task_cpu_percent: Option<u32>,
    /// Failure notifications: runs that fail, are blocked or pause are POSTed here as JSON
    /// (`http://` or `https://`). `BALLAST_WEBHOOK_URL`.
    pub webhook_url: Option<String>,
    /// PEM file of CA certificates trusted for an `https://` webhook besides the host's trust
    /// store (an internal CA). `BALLAST_WEBHOOK_CA_FILE`.
    pub webhook_ca_file: Option<std::path::PathBuf>,
    /// Validity of agent enrolment tokens, in hours.
    pub enroll_token_hours: i64,
    /// A scheduled occurrence found due at most this many seconds late is run; older ones were
    /// missed (no server was running) and follow the schedule's catch-up policy.
    pub schedule_grace_secs: u64,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            agent_listen: SocketAddr::from(([127, 0, 0, 1], 8601)),
            agent_server_names: vec!["localhost".into(), "127.0.0.1".into()],
            production_environments: vec!["prod".into(), "production".into()],
            local_environments: Vec::new(),
            output_cap_bytes: 1 << 20,
            max_concurrency: 1000,
            task_memory_bytes: None,
            task_cpu_percent: None,
            webhook_url: None,
            webhook_ca_file: None,
            enroll_token_hours: 24,
            schedule_grace_secs: 60,
        }
    }
}

impl ExecConfig {
    pub fn is_production(&self, env: &str) -> bool {
        self.production_environments.iter().any(|e| e == env)
    }
    pub fn local_allowed(&self, env: &str) -> bool {
        self.local_environments.iter().any(|e| e == env)
    }
}

/// The execution engine's part of the shared state.
pub struct ExecRuntime {
    pub config: ExecConfig,
    pub runner: Arc<Runner>,
    pub hub: Arc<Hub>,
    pub ca: Arc<Ca>,
    pub sealer: seal::Sealer,
    /// This replica's identity for run leases.
    pub owner: String,
    /// Wakes the claim loop (a run was started or a decision made here).
    pub wake: Notify,
    /// Runs driven by this replica, with the token that cancels their tasks.
    pub(crate) active: Mutex<HashMap<i64, CancelToken>>,
    /// The dangerous-command rules in force (reloaded from the settings table).
    pub danger: Arc<danger::RuleSet>,
    /// Group commits of task bookkeeping and output (see [`recorder`]).
    pub recorder: recorder::Recorder,
    /// Where notifications are POSTed, if anywhere.
    pub webhook: Option<webhook::Webhook>,
}

impl std::fmt::Debug for ExecRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecRuntime")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

const CA_SETTING: &str = "agent.ca";

#[derive(Serialize, Deserialize)]
struct StoredCa {
    cert_pem: String,
    key_sealed: String,
}

/// Loads the agents' CA from the settings table, creating it on first start (under a lease, so
/// replicas starting together create one CA, not two).
async fn load_ca(
    store: &dyn Store,
    clock: &dyn ballast_core::clock::Clock,
    sealer: &seal::Sealer,
    holder: &str,
    init: bool,
) -> anyhow::Result<Ca> {
    for _ in 0..50 {
        if let Some(row) = store.setting(CA_SETTING).await? {
            let stored: StoredCa =
                serde_json::from_value(row.value).context("settings agent.ca is corrupt")?;
            let key = sealer.open("agent-ca", &stored.key_sealed).map_err(|e| {
                anyhow::anyhow!(
                    "agent CA key: {e}; replicas on one database must share the credential key \
                         (credential_key_file / BALLAST_CREDENTIAL_KEY_FILE)"
                )
            })?;
            let key = String::from_utf8(key).context("agent CA key is not PEM")?;
            return Ca::from_pem(&stored.cert_pem, &key)
                .map_err(|e| anyhow::anyhow!("agent CA: {e}"));
        }
        if !init {
            return Ca::generate("Ballast agent CA (temporary)")
                .map_err(|e| anyhow::anyhow!("{e}"));
        }
        let now = clock.now();
        if store
            .try_lease(
                "agent-ca-init",
                holder,
                now,
                now + chrono::Duration::seconds(30),
            )
            .await?
        {
            if store.setting(CA_SETTING).await?.is_some() {
                continue;
            }
            let ca = Ca::generate("Ballast agent CA").map_err(|e| anyhow::anyhow!("{e}"))?;
            let stored = StoredCa {
                cert_pem: ca.cert_pem().to_string(),
                key_sealed: sealer.seal("agent-ca", ca.key_pem().as_bytes()),
            };
            let mut tx = store.begin().await?;
            tx.put_setting(&SettingRow {
                key: CA_SETTING.into(),
                value: serde_json::to_value(&stored)?,
                updated_by: "system".into(),
                updated_at: now,
            })
            .await?;
            tx.commit(
                vec![
                    AuditDraft::new(
                        Actor::system(),
                        "agent.ca_create",
                        "setting",
                        Outcome::Success,
                    )
                    .object(CA_SETTING)
                    .after(serde_json::json!({"fingerprint": ca.fingerprint_sha256()})),
                ],
                now,
            )
            .await?;
            return Ok(ca);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    anyhow::bail!("could not load or create the agent CA (another replica holds the lease)")
}

impl ExecRuntime {
    /// Builds the runtime: credential key, runner probe, agent CA and server certificate, hub.
    pub async fn load(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn ballast_core::clock::Clock>,
        owner: &str,
        init: bool,
    ) -> anyhow::Result<ExecRuntime> {
        let sealer = seal::Sealer::load(config)?;
        let webhook = webhook::Webhook::from_config(&config.exec)?;
        let work = config.data_dir.join("tasks");
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let runner = Runner::probe(&work);
        let ca = load_ca(store.as_ref(), clock.as_ref(), &sealer, owner, init).await?;
        let (cert, key) = ca
            .issue_server_cert(&config.exec.agent_server_names, 825)
            .map_err(|e| anyhow::anyhow!("agent server certificate: {e}"))?;
        let authority = Arc::new(authority::DbAuthority::new(store.clone(), clock.clone()));
        authority::spawn_heartbeat_flusher(&authority);
        let ca = Arc::new(ca);
        let hub = Hub::new((*ca).clone(), &cert, &key, authority)
            .map_err(|e| anyhow::anyhow!("agent hub: {e}"))?
            .with_clock(clock.clone());
        let danger = Arc::new(danger::RuleSet::default());
        danger.reload(store.as_ref()).await;
        Ok(ExecRuntime {
            config: config.exec.clone(),
            runner: Arc::new(runner),
            hub: Arc::new(hub),
            ca,
            sealer,
            owner: owner.to_string(),
            wake: Notify::new(),
            active: Mutex::new(HashMap::new()),
            danger,
            recorder: recorder::Recorder::spawn(store),
            webhook,
        })
    }
}

/// Starts the agents' listener, the run engine and the rule reloader.
pub async fn spawn(state: crate::AppState) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(state.exec.config.agent_listen)
        .await
        .with_context(|| format!("binding the agent port {}", state.exec.config.agent_listen))?;
    let addr = listener.local_addr()?;
    let hub = state.exec.hub.clone();
    tokio::spawn(async move {
        hub.serve(listener, CancelToken::new()).await;
    });
    engine::spawn(state.clone());
    schedule::spawn(state.clone());
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            st.exec.danger.reload(st.store.as_ref()).await;
        }
    });
    Ok(addr)
}

pub fn routes() -> axum::Router<crate::AppState> {
    api::routes()
        .merge(pages::routes())
        .merge(schedule::api::routes())
        .merge(schedule::pages::routes())
}
