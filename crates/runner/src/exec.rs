//! Running one task: script file, command line with cap wrappers, process group, streamed capped
//! output, timeout and cancel.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use crate::cancel::CancelToken;
use crate::caps::{Runner, TASK_PATH, TaskCgroup, find_tool};
use crate::error::RunnerError;
use crate::plain::plain_words;
use crate::procfs::{pipe_id, pipe_writers, process_group_members};
use crate::spec::{CapsApplied, Chunk, Limits, Outcome, Stream, TaskSpec};

/// Largest chunk forwarded.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Time between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// Once the task's process group is gone, how often reading output that has not reached
/// end-of-file is checked: a process that escaped the group (e.g. with `setsid`) may still hold a
/// pipe open. At each check such holders are killed. Reading always continues to end-of-file;
/// the grace only decides when to look for (and kill) holders.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Consecutive [`DRAIN_GRACE`] checks without any progress on a still-open stream after which
/// reading is abandoned and the outcome marked [`Outcome::output_incomplete`] (a holder that
/// cannot be killed or seen, e.g. another user's process).
const DRAIN_IDLE_CHECKS: u32 = 3;
/// `sh` program that moves itself into the cgroup given as `$1`, then execs the rest.
const CGROUP_JOIN: &str = "echo $$ > \"$1/cgroup.procs\" && shift && exec \"$@\"";

#[derive(Default)]
struct StreamCount {
    total: AtomicU64,
    truncated: AtomicBool,
    /// The reader is waiting for the `out` receiver to take a chunk (backpressure, not a stall).
    sending: AtomicBool,
}

/// What [`Runner::supervise`] observed.
struct Supervised {
    status: ExitStatus,
    timed_out: bool,
    cancelled: bool,
    stdout: StreamCount,
    stderr: StreamCount,
    output_incomplete: bool,
}

/// Run blocking work (file system, `/proc`, cgroupfs) on tokio's blocking pool so it never stalls
/// the async workers that read other tasks' output.
async fn blocking<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await
}

/// [`process_group_members`] off the async workers (empty if the scan could not run).
///
/// First one `kill(-pgid, 0)`: when no process of the group exists at all (the usual case once
/// the leader is reaped) the answer is known without scanning `/proc` — a scan reads every
/// process's `stat`, which at 1,000 concurrent tasks is a million reads per round of exits.
async fn group_members(pgid: i32) -> Vec<i32> {
    let Some(pid) = rustix::process::Pid::from_raw(pgid) else {
        return Vec::new();
    };
    if rustix::process::test_kill_process_group(pid) == Err(rustix::io::Errno::SRCH) {
        return Vec::new();
    }
    blocking(move || process_group_members(pgid))
        .await
        .unwrap_or_default()
}

impl Runner {
    /// Run one task to completion, forwarding output chunks to `out` as they arrive.
    ///
    /// Returns the [`Outcome`] for every task that started (also when it failed, timed out or
    /// was cancelled); [`RunnerError`] only when it could not be started. If `out`'s receiver is
    /// dropped, the task keeps running and its output is discarded.
    ///
    /// # Errors
    /// Invalid environment names/values or arguments, the script file cannot be written, the
    /// program cannot be started, or waiting for it fails.
    pub async fn run(
        &self,
        spec: &TaskSpec,
        out: mpsc::Sender<Chunk>,
        cancel: CancelToken,
    ) -> Result<Outcome, RunnerError> {
        validate(spec)?;
        let start = Instant::now();
        let launch = {
            let script_dir = self.script_dir().to_path_buf();
            let work_dir = self.base_dir.clone();
            let direct: Option<Vec<String>> =
                plain_words(spec).map(|w| w.into_iter().map(str::to_owned).collect());
            let text = if direct.is_some() {
                String::new()
            } else {
                spec.script.clone()
            };
            let suffix = spec.interpreter.suffix();
            blocking(move || {
                if script_dir != work_dir || direct.is_some() {
                    // The default working directory, when no script file creates it.
                    private_dir(&work_dir).map_err(|source| RunnerError::ScriptFile {
                        path: work_dir.display().to_string(),
                        source,
                    })?;
                }
                if let Some((program, args)) = direct.as_deref().and_then(<[String]>::split_first)
                    && let Some(path) = find_tool(program)
                {
                    return Ok(Launch::Direct {
                        program: path,
                        args: args.to_vec(),
                    });
                }
                // Not found in PATH: the shell says so as it always did (exit 127).
                let text = if text.is_empty() {
                    direct.map(|w| w.join(" ")).unwrap_or_default()
                } else {
                    text
                };
                write_script(&script_dir, &text, suffix).map(Launch::Script)
            })
            .await
            .map_err(|e| RunnerError::ScriptFile {
                path: self.script_dir().display().to_string(),
                source: std::io::Error::other(e),
            })??
        };
        let id = match &launch {
            Launch::Script(script) => script
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("task")
                .to_owned(),
            Launch::Direct { .. } => {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                format!(
                    "task-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                )
            }
        };

        let mut detail = Vec::new();
        let mut caps = CapsApplied::default();
        let cgroup = match self.caps.cgroup_parent.clone() {
            None => None,
            Some(parent) => {
                let (id, limits) = (id.clone(), spec.limits.clone());
                let created = blocking(move || {
                    let mut detail = Vec::new();
                    let cg = TaskCgroup::create(&parent, &id, &limits, &mut detail);
                    (cg, detail)
                })
                .await;
                match created {
                    Ok((Ok(cg), set)) => {
                        detail.extend(set);
                        Some(cg)
                    }
                    Ok((Err(reason), set)) => {
                        detail.extend(set);
                        detail.push(format!("cgroup not used: {reason}"));
                        None
                    }
                    Err(e) => {
                        detail.push(format!("cgroup not used: setup did not finish: {e}"));
                        None
                    }
                }
            }
        };
        let (argv, nice_thread) =
            self.command_line(spec, &launch, cgroup.as_ref(), &mut caps, &mut detail);
        caps.detail = detail.join("; ");

        if cancel.is_cancelled() {
            if let Some(cg) = cgroup {
                cg.kill_and_remove().await;
            }
            launch.finish().await;
            return Ok(Outcome {
                exit_code: None,
                signal: None,
                timed_out: false,
                cancelled: true,
                stdout_bytes: 0,
                stderr_bytes: 0,
                truncated: false,
                caps,
                duration_ms: elapsed_ms(start),
                output_incomplete: false,
            });
        }

        let result = self.supervise(spec, &argv, nice_thread, out, &cancel).await;
        if let Some(cg) = cgroup {
            cg.kill_and_remove().await;
        }
        launch.finish().await;
        let done = result?;
        Ok(Outcome {
            exit_code: done.status.code(),
            signal: done.status.signal(),
            timed_out: done.timed_out,
            cancelled: done.cancelled,
            stdout_bytes: done.stdout.total.load(Ordering::Relaxed),
            stderr_bytes: done.stderr.total.load(Ordering::Relaxed),
            truncated: done.stdout.truncated.load(Ordering::Relaxed)
                || done.stderr.truncated.load(Ordering::Relaxed),
            caps,
            duration_ms: elapsed_ms(start),
            output_incomplete: done.output_incomplete,
        })
    }

    /// `[cgroup wrapper] [nice -n N] [prlimit --as=B --] <interp> <file> <args…>` (or, for a
    /// plain command, `… <program> <words…>`), and the
    /// niceness to spawn it at from a niced thread (then without the `nice` wrapper); records
    /// in `caps`/`detail` exactly what was applied and what was not.
    fn command_line(
        &self,
        spec: &TaskSpec,
        launch: &Launch,
        cgroup: Option<&TaskCgroup>,
        caps: &mut CapsApplied,
        detail: &mut Vec<String>,
    ) -> (Vec<OsString>, Option<i32>) {
        let limits: &Limits = &spec.limits;
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(cg) = cgroup {
            let sh = self.caps.sh.clone().unwrap_or_else(|| PathBuf::from("sh"));
            argv.extend([
                sh.into_os_string(),
                "-c".into(),
                CGROUP_JOIN.into(),
                "sh".into(),
                cg.dir.clone().into_os_string(),
            ]);
            caps.cgroup = true;
        }
        let mut nice_thread = None;
        if let Some(n) = limits.nice {
            match (self.spawners.available(n), &self.caps.nice) {
                (Ok(()), _) => {
                    nice_thread = Some(n);
                    caps.nice = true;
                    detail.push(format!("nice +{n} (spawned by a thread at that niceness)"));
                }
                (Err(why), Some(nice)) => {
                    argv.extend([
                        nice.clone().into_os_string(),
                        "-n".into(),
                        n.to_string().into(),
                    ]);
                    caps.nice = true;
                    detail.push(format!("nice -n {n} ({why})"));
                }
                (Err(why), None) => {
                    detail.push(format!("nice {n} not applied: {why}; nice not found"));
                }
            }
        }
        if cgroup.is_none() {
            if let Some(bytes) = limits.memory_bytes {
                match &self.caps.prlimit {
                    Some(prlimit) => {
                        argv.extend([
                            prlimit.clone().into_os_string(),
                            format!("--as={bytes}").into(),
                            "--".into(),
                        ]);
                        caps.rlimit_memory = true;
                        detail.push(format!("prlimit --as={bytes}"));
                    }
                    None => detail.push(format!(
                        "memory cap {bytes} not applied: no cgroup v2 and no prlimit"
                    )),
                }
            }
            if let Some(pct) = limits.cpu_percent {
                detail.push(format!("cpu cap {pct}% not applied: no cgroup v2"));
            }
        }
        match launch {
            Launch::Script(script) => {
                argv.push(
                    self.program_path(spec.interpreter.program())
                        .into_os_string(),
                );
                argv.push(script.as_os_str().to_owned());
                argv.extend(spec.args.iter().map(OsString::from));
            }
            Launch::Direct { program, args } => {
                argv.push(program.clone().into_os_string());
                argv.extend(args.iter().map(OsString::from));
                detail.push("started directly: one plain command, no shell".to_owned());
            }
        }
        (argv, nice_thread)
    }

    /// Spawn, stream, wait; on timeout/cancel terminate the group.
    ///
    /// Output is read in this same future (not in separate tasks), concurrently with waiting for
    /// the process, and always until end-of-file: a reader can never fall behind the supervision
    /// and be given up while output is still waiting in the pipe. Only when a stream stays open
    /// after the group is gone are its holders looked for and killed (see [`drain`]).
    async fn supervise(
        &self,
        spec: &TaskSpec,
        argv: &[OsString],
        nice_thread: Option<i32>,
        out: mpsc::Sender<Chunk>,
        cancel: &CancelToken,
    ) -> Result<Supervised, RunnerError> {
        let (program, rest) = argv
            .split_first()
            .ok_or_else(|| RunnerError::InvalidSpec("empty command line".to_owned()))?;
        let mut cmd = Command::new(program);
        cmd.args(rest)
            .env_clear()
            .env("PATH", TASK_PATH)
            .env(
                "HOME",
                std::env::var_os("HOME").unwrap_or_else(|| "/".into()),
            )
            .env("LANG", "C.UTF-8")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(spec.workdir.as_deref().unwrap_or(&self.base_dir))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let spawn_error = |source| RunnerError::Spawn {
            program: program.to_string_lossy().into_owned(),
            source,
        };
        let mut child = match nice_thread {
            None => cmd.spawn().map_err(spawn_error)?,
            Some(n) => match self.spawners.spawn(n, cmd).await {
                Ok(c) => c,
                Err(crate::spawn::NiceSpawnError::Spawn(e)) => return Err(spawn_error(e)),
                // Checked just before; never run a task without the priority it was promised.
                Err(crate::spawn::NiceSpawnError::Unavailable(why)) => {
                    return Err(spawn_error(std::io::Error::other(why)));
                }
            },
        };
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        let mut guard = GroupGuard {
            pgid,
            kill: self.caps.kill.clone(),
            armed: true,
        };

        let stdout = StreamCount::default();
        let stderr = StreamCount::default();
        let cap = spec.limits.output_cap_bytes;
        let out_pipe = child.stdout.take();
        let err_pipe = child.stderr.take();
        // One readlink each, to recognise holders of the pipes later.
        let pipes: Vec<String> = [
            out_pipe.as_ref().and_then(|p| pipe_id(p.as_raw_fd())),
            err_pipe.as_ref().and_then(|p| pipe_id(p.as_raw_fd())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let pumps = async {
            tokio::join!(
                pump_opt(out_pipe, Stream::Stdout, cap, out.clone(), &stdout),
                pump_opt(err_pipe, Stream::Stderr, cap, out, &stderr),
            );
        };
        let (group_gone_tx, group_gone) = oneshot::channel::<()>();
        let reading = drain(
            pumps,
            group_gone,
            [&stdout, &stderr],
            &pipes,
            self.caps.kill.as_deref(),
        );

        let supervision = async {
            let mut timed_out = false;
            let mut cancelled = false;
            let status = tokio::select! {
                r = child.wait() => r.map_err(RunnerError::Wait)?,
                () = tokio::time::sleep(spec.limits.timeout) => {
                    timed_out = true;
                    self.terminate(&mut child, pgid).await?
                }
                () = cancel.cancelled() => {
                    cancelled = true;
                    self.terminate(&mut child, pgid).await?
                }
            };
            // The leader is gone; background processes it left in its group are part of the
            // task and end with it (they would otherwise hold the output pipes open).
            if let Some(pgid) = pgid
                && !group_members(pgid).await.is_empty()
            {
                tracing::debug!(pgid, "terminating processes left behind by the task");
                self.terminate(&mut child, Some(pgid)).await?;
            }
            let _ = group_gone_tx.send(());
            Ok::<_, RunnerError>((status, timed_out, cancelled))
        };

        // If the supervision fails, `group_gone_tx` is dropped, which also ends the wait in
        // `drain`; reading then still ends (at EOF, or abandoned after the idle checks).
        let (supervised, complete) = tokio::join!(supervision, reading);
        let (status, timed_out, cancelled) = supervised?;
        guard.armed = false;
        Ok(Supervised {
            status,
            timed_out,
            cancelled,
            stdout,
            stderr,
            output_incomplete: !complete,
        })
    }

    /// SIGTERM the whole group, wait up to [`TERM_GRACE`] for it to empty, then SIGKILL;
    /// finally reap the leader.
    async fn terminate(
        &self,
        child: &mut Child,
        pgid: Option<i32>,
    ) -> Result<ExitStatus, RunnerError> {
        let Some(pgid) = pgid else {
            let _ = child.start_kill();
            return child.wait().await.map_err(RunnerError::Wait);
        };
        self.signal_group(child, pgid, "TERM").await;
        let deadline = Instant::now() + TERM_GRACE;
        loop {
            // Reap the leader as soon as it exits so it does not count as a member.
            let _ = child.try_wait();
            if group_members(pgid).await.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                self.signal_group(child, pgid, "KILL").await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child.wait().await.map_err(RunnerError::Wait)
    }

    /// `kill -<sig> -- -<pgid>`; without a `kill` tool only the leader can be signalled.
    async fn signal_group(&self, child: &mut Child, pgid: i32, sig: &str) {
        match &self.caps.kill {
            Some(kill) => {
                let status = Command::new(kill)
                    .args([format!("-{sig}"), "--".to_owned(), format!("-{pgid}")])
                    .env_clear()
                    .env("PATH", TASK_PATH)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await;
                tracing::debug!(pgid, sig, ?status, "signalled process group");
            }
            None => {
                tracing::warn!(pgid, "no kill tool: signalling only the group leader");
                let _ = child.start_kill();
            }
        }
    }
}

/// Kills the process group if the `run` future is dropped before the task ended (the caller
/// aborted it, or its runtime shut down); `kill_on_drop` alone would reach only the leader.
struct GroupGuard {
    pgid: Option<i32>,
    kill: Option<PathBuf>,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let (Some(pgid), Some(kill)) = (self.pgid, &self.kill) {
            // Synchronous on purpose: no runtime may be left. `kill` returns at once.
            let _ = std::process::Command::new(kill)
                .args(["-KILL".to_owned(), "--".to_owned(), format!("-{pgid}")])
                .env_clear()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Read the task's output until end-of-file, forwarding it as it arrives. Returns `true` if
/// every stream reached end-of-file, `false` if reading was abandoned.
///
/// Until `group_gone` resolves (the task's process group has ended, or the supervision failed)
/// this simply reads. Afterwards a stream can stay open only because a process outside the group
/// (e.g. started with `setsid`) still holds it: every [`DRAIN_GRACE`] the holders of the pipes
/// are looked up in `/proc` and killed. Reading is abandoned only after [`DRAIN_IDLE_CHECKS`]
/// consecutive checks in which no byte arrived and no reader was waiting for the `out` receiver.
async fn drain(
    pumps: impl Future<Output = ()>,
    group_gone: oneshot::Receiver<()>,
    counts: [&StreamCount; 2],
    pipes: &[String],
    kill: Option<&Path>,
) -> bool {
    let mut pumps = std::pin::pin!(pumps);
    tokio::select! {
        biased;
        () = &mut pumps => return true,
        _ = group_gone => {}
    }
    let progress = || {
        counts
            .iter()
            .map(|c| c.total.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let mut last = progress();
    let mut idle_checks = 0;
    loop {
        tokio::select! {
            biased;
            () = &mut pumps => return true,
            () = tokio::time::sleep(DRAIN_GRACE) => {}
        }
        let pipes = pipes.to_vec();
        let holders = blocking(move || pipe_writers(&pipes))
            .await
            .unwrap_or_default();
        if !holders.is_empty() {
            tracing::warn!(
                ?holders,
                "processes outside the finished task's group hold its output open; killing them"
            );
            kill_pids(kill, &holders).await;
        }
        let now = progress();
        let waiting_for_receiver = counts.iter().any(|c| c.sending.load(Ordering::Relaxed));
        if now != last || waiting_for_receiver {
            last = now;
            idle_checks = 0;
            continue;
        }
        idle_checks += 1;
        if idle_checks >= DRAIN_IDLE_CHECKS {
            tracing::warn!(
                ?holders,
                "task output still open and idle after its process group ended; abandoning it \
                 (outcome marked output_incomplete)"
            );
            return false;
        }
    }
}

/// `kill -KILL -- <pid>…` (best effort).
async fn kill_pids(kill: Option<&Path>, pids: &[i32]) {
    let Some(kill) = kill else {
        tracing::warn!(
            ?pids,
            "no kill tool: cannot kill the holders of the task output"
        );
        return;
    };
    let status = Command::new(kill)
        .arg("-KILL")
        .arg("--")
        .args(pids.iter().map(ToString::to_string))
        .env_clear()
        .env("PATH", TASK_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    tracing::debug!(?pids, ?status, "killed holders of the task output");
}

/// [`pump`] for a stream that may be absent.
async fn pump_opt<R: AsyncRead + Unpin>(
    reader: Option<R>,
    stream: Stream,
    cap: u64,
    out: mpsc::Sender<Chunk>,
    count: &StreamCount,
) {
    if let Some(reader) = reader {
        pump(reader, stream, cap, out, count).await;
    }
}

/// Read a stream in chunks, forward up to `cap` bytes in total, drain and count the rest.
async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: Stream,
    cap: u64,
    out: mpsc::Sender<Chunk>,
    count: &StreamCount,
) {
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut forwarded: u64 = 0;
    let mut receiver_gone = false;
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(?stream, error = %e, "reading task output failed");
                break;
            }
        };
        let n64 = n as u64;
        count.total.fetch_add(n64, Ordering::Relaxed);
        let room = cap.saturating_sub(forwarded);
        let take = usize::try_from(room.min(n64)).unwrap_or(n);
        if take < n {
            count.truncated.store(true, Ordering::Relaxed);
        }
        if take == 0 || receiver_gone {
            continue;
        }
        forwarded += take as u64;
        let chunk = Chunk {
            stream,
            data: buf.get(..take).unwrap_or_default().to_vec(),
        };
        count.sending.store(true, Ordering::Relaxed);
        if out.send(chunk).await.is_err() {
            receiver_gone = true;
        }
        count.sending.store(false, Ordering::Relaxed);
    }
}

fn validate(spec: &TaskSpec) -> Result<(), RunnerError> {
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(RunnerError::InvalidSpec(format!(
                "environment variable name {k:?} is empty or contains '=' or NUL"
            )));
        }
        if v.contains('\0') {
            return Err(RunnerError::InvalidSpec(format!(
                "environment variable {k} contains NUL"
            )));
        }
    }
    if spec.args.iter().any(|a| a.contains('\0')) {
        return Err(RunnerError::InvalidSpec(
            "an argument contains NUL".to_owned(),
        ));
    }
    Ok(())
}

/// Write the script to a fresh 0600 file in the 0700 base directory (blocking file IO).
fn write_script(
    base_dir: &Path,
    script: &str,
    suffix: &str,
) -> Result<tempfile::TempPath, RunnerError> {
    let err = |source| RunnerError::ScriptFile {
        path: base_dir.display().to_string(),
        source,
    };
    private_dir(base_dir).map_err(err)?;
    let mut file = tempfile::Builder::new()
        .prefix("task-")
        .suffix(suffix)
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(base_dir)
        .map_err(err)?;
    file.write_all(script.as_bytes()).map_err(err)?;
    file.flush().map_err(err)?;
    Ok(file.into_temp_path())
}

/// Creates `dir` if needed and makes it private (0700).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// How a task's program is started.
enum Launch {
    /// `<interpreter> <script file> <args…>`; the file is removed when the task ends.
    Script(tempfile::TempPath),
    /// A one-line script that is one plain command ([`plain_words`]): the program (resolved in
    /// the task's `PATH`) with its words, no shell, no script file.
    Direct { program: PathBuf, args: Vec<String> },
}

impl Launch {
    /// Clean up after the task: remove the script file, if any.
    async fn finish(self) {
        if let Launch::Script(script) = self {
            remove_script(script).await;
        }
    }
}

/// Remove the script file off the async workers.
async fn remove_script(script: tempfile::TempPath) {
    let path = script.to_path_buf();
    match blocking(move || script.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove script file");
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove script file");
        }
    }
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A stream that stays open, idle, with no visible holder is abandoned after the idle
    /// checks, and only then.
    #[tokio::test(start_paused = true)]
    async fn idle_open_output_is_abandoned_after_the_checks() {
        let (gone_tx, gone) = oneshot::channel();
        gone_tx.send(()).unwrap();
        let counts = [StreamCount::default(), StreamCount::default()];
        let start = tokio::time::Instant::now();
        let complete = drain(
            std::future::pending(),
            gone,
            [&counts[0], &counts[1]],
            &[],
            None,
        )
        .await;
        assert!(!complete);
        let waited = start.elapsed();
        assert!(waited >= DRAIN_GRACE * DRAIN_IDLE_CHECKS, "{waited:?}");
        assert!(waited < DRAIN_GRACE * (DRAIN_IDLE_CHECKS + 1), "{waited:?}");
    }

    /// While the group runs there is no deadline at all; after it ended, progress and a
    /// reader waiting for the receiver both keep the reading going.
    #[tokio::test(start_paused = true)]
    async fn progress_and_backpressure_keep_reading_going() {
        let (gone_tx, gone) = oneshot::channel::<()>();
        let counts = [StreamCount::default(), StreamCount::default()];
        let pumps = async {
            // Group still running: long silence is fine.
            tokio::time::sleep(Duration::from_secs(60)).await;
            counts[0].total.fetch_add(1, Ordering::Relaxed);
            let _ = gone_tx.send(());
            // After the group ended: a byte now and then, then a long wait on the receiver.
            for _ in 0..5 {
                tokio::time::sleep(DRAIN_GRACE * 2).await;
                counts[1].total.fetch_add(1, Ordering::Relaxed);
            }
            counts[0].sending.store(true, Ordering::Relaxed);
            tokio::time::sleep(DRAIN_GRACE * (DRAIN_IDLE_CHECKS + 5)).await;
            counts[0].sending.store(false, Ordering::Relaxed);
        };
        assert!(drain(pumps, gone, [&counts[0], &counts[1]], &[], None).await);
    }
}
