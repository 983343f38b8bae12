//! One command on many hosts, at most `concurrency` at a time.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::error::SshError;
use crate::exec::run;
use crate::types::{Chunk, ExecLimits, HostKeyPolicy, SshAuth, SshOutcome, SshTarget, Stream};

/// The result of one host in a fan-out, with its output (each stream capped at
/// `ExecLimits::output_cap_bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRun {
    pub result: Result<SshOutcome, SshError>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `command` on every target, at most `concurrency` (at least 1) connections at a time, and
/// calls `on_result(index_in_targets, result)` as each host finishes (in completion order).
/// Returns when every host has been reported. Output is collected and dropped; use
/// [`fan_out_with`] to get it, or to send stdin.
pub async fn fan_out<F>(
    targets: Vec<(SshTarget, SshAuth, HostKeyPolicy)>,
    command: &str,
    limits: &ExecLimits,
    concurrency: usize,
    mut on_result: F,
) where
    F: FnMut(usize, Result<SshOutcome, SshError>),
{
    fan_out_with(targets, command, None, limits, concurrency, |i, run| {
        on_result(i, run.result);
    })
    .await;
}

/// [`fan_out`] with the same `stdin` sent to every host, and each host's output in its
/// [`HostRun`].
pub async fn fan_out_with<F>(
    targets: Vec<(SshTarget, SshAuth, HostKeyPolicy)>,
    command: &str,
    stdin: Option<Vec<u8>>,
    limits: &ExecLimits,
    concurrency: usize,
    mut on_result: F,
) where
    F: FnMut(usize, HostRun),
{
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let command: Arc<str> = Arc::from(command);
    let stdin: Option<Arc<[u8]>> = stdin.map(Arc::from);
    let limits = *limits;
    let mut tasks = JoinSet::new();
    let mut index = HashMap::new();

    for (i, (target, auth, policy)) in targets.into_iter().enumerate() {
        let name = target.to_string();
        let permits = Arc::clone(&permits);
        let command = Arc::clone(&command);
        let stdin = stdin.clone();
        let handle = tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let (tx, mut rx) = mpsc::channel::<Chunk>(64);
            let collect = async {
                let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
                while let Some(chunk) = rx.recv().await {
                    match chunk.stream {
                        Stream::Stdout => stdout.extend_from_slice(&chunk.data),
                        Stream::Stderr => stderr.extend_from_slice(&chunk.data),
                    }
                }
                (stdout, stderr)
            };
            let stdin = stdin.map(|s| s.to_vec());
            let (result, (stdout, stderr)) = tokio::join!(
                run(&target, &auth, &policy, &command, stdin, &limits, tx),
                collect
            );
            HostRun {
                result,
                stdout,
                stderr,
            }
        });
        index.insert(handle.id(), (i, name));
    }

    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((id, host_run)) => {
                if let Some((i, _)) = index.get(&id) {
                    on_result(*i, host_run);
                }
            }
            Err(e) => {
                if let Some((i, name)) = index.get(&e.id()) {
                    on_result(
                        *i,
                        HostRun {
                            result: Err(SshError::Protocol {
                                target: name.clone(),
                                reason: format!("the execution task failed: {e}"),
                            }),
                            stdout: Vec::new(),
                            stderr: Vec::new(),
                        },
                    );
                }
            }
        }
    }
}
