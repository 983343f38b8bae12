//! The agent's command line, shared by two executables that run the same code:
//!
//! - `ballast-agent`, this crate's binary: agent, runner and TLS only — what a managed host needs.
//!   It links neither the server, the database drivers nor the web UI, so the pages an idle agent
//!   touches are few (docs/PERFORMANCE.md, "agent idle RSS");
//! - `ballast agent`, a subcommand of the one `ballast` binary, convenient where the whole binary is
//!   installed anyway.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

/// Arguments of `ballast agent` and `ballast-agent`.
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The server's agent endpoint, `host:port` (its `exec.agent_listen`, default port 8601).
    #[arg(long, env = "BALLAST_AGENT_SERVER", value_name = "HOST:PORT")]
    pub server: String,
    /// One-time enrolment token (`ballast admin enroll-token create`); needed only the first time.
    #[arg(
        long,
        env = "BALLAST_ENROLL_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub enroll_token: Option<String>,
    /// Where the agent keeps its key, certificate and the server's CA.
    #[arg(long, value_name = "DIR", default_value = "./ballast-agent")]
    pub data_dir: PathBuf,
    /// Heartbeat interval in seconds.
    #[arg(long, default_value_t = 30)]
    pub heartbeat: u64,
}

/// Logs to stderr, filtered by `BALLAST_LOG` (default `info`); stdout stays free.
pub fn tracing_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BALLAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the agent until Ctrl-C / SIGINT: enrols on first start, then keeps one mutual-TLS
/// session to the server, reconnecting with back-off.
pub fn run(a: AgentArgs) -> anyhow::Result<()> {
    // One thread: the agent idles most of its life and must stay small (< 10 MB RSS).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let config = ballast_agent::client::AgentConfig {
        server: a.server,
        data_dir: a.data_dir,
        enroll_token: a.enroll_token,
        heartbeat: Duration::from_secs(a.heartbeat.max(1)),
    };
    rt.block_on(async move {
        let shutdown = ballast_runner::CancelToken::new();
        let sd = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            sd.cancel();
        });
        ballast_agent::client::run(config, shutdown)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    })
}
