//! The three transports a task can take — `local` (the server's own host, through
//! `ballast-runner`), `agent` (a connected `ballast agent`, through the hub of `ballast-agent`) and
//! `ssh` (agentless, through `ballast-ssh` with pinned host keys) — behind one function,
//! [`execute`], that streams output chunks and returns the task's result. Every failure to start a
//! task on a host becomes a `refused` result with a code and a message naming the host; a lost
//! agent connection becomes `unknown` (never re-sent).

use std::time::Duration;

use ballast_exec::{Language, TaskStatus};
use ballast_runner::{CancelToken, Interpreter, Limits, TaskSpec};
use ballast_store::SshCredentialRow;
use tokio::sync::mpsc;

/// One piece of output: (is stderr, bytes).
pub type OutChunk = (bool, Vec<u8>);

/// Chunks (up to 64 KiB each) queued per task on each channel of the output path (agent
/// connection → task → recorder). Every hop is its own async task, so one chunk per channel
/// keeps a stream moving; what a task holds in memory is then about five chunks (one per hop and
/// channel), ~320 KiB, so 1,000 tasks writing faster than storage takes hold ~320 MB rather than
/// their whole output (8 per channel held ~1 GB for 1,000 × 1 MB).
pub const TASK_CHANNEL: usize = 1;

/// Where a task runs, with what the transport needs.
#[derive(Debug, Clone)]
pub enum Resolved {
    Local,
    Agent {
        agent_id: String,
    },
    Ssh {
        target: ballast_ssh::SshTarget,
        credential: SshCredentialRow,
        /// The pinned key line (`ssh-ed25519 AAAA…`).
        host_key: String,
    },
    /// The host cannot be used; the task is refused with this code and message.
    Refused {
        code: String,
        message: String,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Work {
    pub language: Language,
    pub script: String,
    pub args: Vec<String>,
    pub timeout: Duration,
    pub output_cap: u64,
    pub memory_bytes: Option<u64>,
    pub cpu_percent: Option<u32>,
}

/// How it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub status: TaskStatus,
    pub exit_code: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub stdout_bytes: i64,
    pub stderr_bytes: i64,
    pub truncated: bool,
}

impl Finished {
    pub fn refused(code: &str, message: String) -> Finished {
        Finished {
            status: TaskStatus::Refused,
            exit_code: None,
            error_code: Some(code.to_string()),
            error_message: Some(message),
            stdout_bytes: 0,
            stderr_bytes: 0,
            truncated: false,
        }
    }
}

pub fn interpreter(l: Language) -> Interpreter {
    match l {
        Language::Bash => Interpreter::Bash,
        Language::Sh => Interpreter::Sh,
        Language::Python3 => Interpreter::Python3,
    }
}

pub fn task_spec(w: &Work) -> TaskSpec {
    let mut spec = TaskSpec::new(interpreter(w.language), w.script.clone());
    spec.args = w.args.clone();
    spec.limits = Limits {
        timeout: w.timeout,
        memory_bytes: w.memory_bytes,
        cpu_percent: w.cpu_percent,
        output_cap_bytes: w.output_cap,
        ..Limits::default()
    };
    spec
}

fn from_runner(o: &ballast_runner::Outcome) -> Finished {
    let status = if o.cancelled {
        TaskStatus::Cancelled
    } else if o.timed_out {
        TaskStatus::TimedOut
    } else if o.success() {
        TaskStatus::Succeeded
    } else {
        TaskStatus::Failed
    };
    let error_message = match (o.exit_code, o.signal) {
        (_, Some(sig)) if !o.success() => Some(format!("killed by signal {sig}")),
        _ if o.timed_out => Some("timed out; the whole process group was killed".to_string()),
        _ if o.output_incomplete => Some(
            "任务输出未能完整读取 / the task's output could not be read to the end".to_string(),
        ),
        _ => None,
    };
    let error_code = if o.timed_out {
        Some("exec.timeout".to_string())
    } else if o.output_incomplete {
        Some("exec.output_incomplete".to_string())
    } else {
        None
    };
    Finished {
        status,
        exit_code: o.exit_code.map(i64::from),
        error_code,
        error_message,
        stdout_bytes: i64::try_from(o.stdout_bytes).unwrap_or(i64::MAX),
        stderr_bytes: i64::try_from(o.stderr_bytes).unwrap_or(i64::MAX),
        truncated: o.truncated,
    }
}

/// Forwards runner/agent chunks to the engine's output writer.
async fn pump_runner(mut rx: mpsc::Receiver<ballast_runner::Chunk>, out: mpsc::Sender<OutChunk>) {
    while let Some(c) = rx.recv().await {
        let err = matches!(c.stream, ballast_runner::Stream::Stderr);
        if out.send((err, c.data)).await.is_err() {
            // The writer is gone: keep draining so the task never blocks.
            while rx.recv().await.is_some() {}
            return;
        }
    }
}

/// Runs `work` on `target`.
pub async fn execute(
    rt: &super::ExecRuntime,
    environment: &str,
    task_id: i64,
    target: &Resolved,
    work: &Work,
    out: mpsc::Sender<OutChunk>,
    cancel: CancelToken,
) -> Finished {
    match target {
        Resolved::Refused { code, message } => Finished::refused(code, message.clone()),
        Resolved::Local => {
            let (tx, rx) = mpsc::channel(TASK_CHANNEL);
            let pump = tokio::spawn(pump_runner(rx, out));
            let r = rt.runner.run(&task_spec(work), tx, cancel).await;
            let _ = pump.await;
            match r {
                Ok(o) => from_runner(&o),
                Err(e) => Finished::refused("exec.local_start", format!("local: {e}")),
            }
        }
        Resolved::Agent { agent_id } => {
            let (tx, rx) = mpsc::channel(TASK_CHANNEL);
            let pump = tokio::spawn(pump_runner(rx, out));
            let fut = rt.hub.dispatch(
                agent_id,
                environment,
                task_id.to_string(),
                task_spec(work),
                tx,
            );
            let r = tokio::select! {
                r = fut => Some(r),
                () = cancel.cancelled() => None,
            };
            let res = match r {
                None => {
                    let _ = rt.hub.cancel(agent_id, &task_id.to_string()).await;
                    Finished {
                        status: TaskStatus::Cancelled,
                        ..Finished::refused("exec.cancelled", "cancelled".into())
                    }
                }
                Some(Ok(o)) => from_runner(&o),
                Some(Err(e)) => dispatch_error(agent_id, &e),
            };
            let _ = pump.await;
            res
        }
        Resolved::Ssh {
            target,
            credential,
            host_key,
        } => ssh(rt, target, credential, host_key, work, out, cancel).await,
    }
}

fn dispatch_error(agent_id: &str, e: &ballast_agent::hub::DispatchError) -> Finished {
    use ballast_agent::hub::DispatchError as D;
    match e {
        D::Lost { .. } => Finished {
            status: TaskStatus::Unknown,
            ..Finished::refused(
                "agent.connection_lost",
                format!("agent {agent_id}: connection lost while the task ran; outcome unknown"),
            )
        },
        other => Finished::refused("agent.dispatch", format!("agent {agent_id}: {other}")),
    }
}

async fn ssh(
    rt: &super::ExecRuntime,
    target: &ballast_ssh::SshTarget,
    credential: &SshCredentialRow,
    host_key: &str,
    work: &Work,
    out: mpsc::Sender<OutChunk>,
    cancel: CancelToken,
) -> Finished {
    let secret = match rt.sealer.open(
        &format!("ssh:{}", credential.name),
        &credential.secret_sealed,
    ) {
        Ok(s) => String::from_utf8_lossy(&s).into_owned(),
        Err(e) => {
            return Finished::refused(
                "ssh.credential_unreadable",
                format!("{target}: credential {}: {e}", credential.name),
            );
        }
    };
    let auth = if credential.kind == "password" {
        ballast_ssh::SshAuth::Password(secret)
    } else {
        ballast_ssh::SshAuth::PrivateKey {
            pem: secret,
            passphrase: None,
        }
    };
    let policy = ballast_ssh::HostKeyPolicy::Pinned(vec![host_key.to_string()]);
    let command =
        ballast_ssh::script_command(work.language.interpreter(), &work.args, work.timeout, 10);
    let limits = ballast_ssh::ExecLimits {
        connect_timeout: Duration::from_secs(10),
        // The remote `timeout` wrapper kills first; this is the backstop.
        timeout: work.timeout + Duration::from_secs(5),
        output_cap_bytes: work.output_cap,
    };
    let (tx, mut rx) = mpsc::channel::<ballast_ssh::Chunk>(TASK_CHANNEL);
    let pump = tokio::spawn(async move {
        while let Some(c) = rx.recv().await {
            let err = matches!(c.stream, ballast_ssh::Stream::Stderr);
            if out.send((err, c.data)).await.is_err() {
                while rx.recv().await.is_some() {}
                return;
            }
        }
    });
    let fut = ballast_ssh::run(
        target,
        &auth,
        &policy,
        &command,
        Some(work.script.clone().into_bytes()),
        &limits,
        tx,
    );
    let r = tokio::select! {
        r = fut => Some(r),
        () = cancel.cancelled() => None,
    };
    let _ = pump.await;
    let _ = &rt.runner;
    match r {
        None => Finished {
            status: TaskStatus::Cancelled,
            ..Finished::refused("exec.cancelled", format!("{target}: cancelled"))
        },
        Some(Ok(o)) => {
            // `timeout` exits 124 when it killed the command.
            let timed_out = o.timed_out || o.exit_code == Some(124);
            Finished {
                status: if timed_out {
                    TaskStatus::TimedOut
                } else if o.success() {
                    TaskStatus::Succeeded
                } else {
                    TaskStatus::Failed
                },
                exit_code: o.exit_code.map(i64::from),
                error_code: timed_out.then(|| "exec.timeout".to_string()),
                error_message: o.exit_signal.map(|s| format!("killed by signal {s}")),
                stdout_bytes: i64::try_from(o.stdout_bytes).unwrap_or(i64::MAX),
                stderr_bytes: i64::try_from(o.stderr_bytes).unwrap_or(i64::MAX),
                truncated: o.truncated,
            }
        }
        Some(Err(e)) => Finished::refused(e.code(), e.message_en()),
    }
}
