//! Starting task processes at a lower CPU priority without a `nice` wrapper process.
//!
//! On Linux the nice value is an attribute of each thread, and a new process inherits the one of
//! the thread that created it. So a dedicated thread lowers its own priority once
//! (`setpriority(PRIO_PROCESS, 0, n)`, which on Linux applies to the calling thread only) and
//! spawns every task that asks for niceness `n`: the task's first instruction already runs at
//! that priority — no race, no `unsafe` `pre_exec`, and one `exec` per task instead of two (the
//! `nice` program cost ~0.8 ms of CPU per task here, about a third of an `echo ok` task).
//!
//! If the thread cannot set its priority, [`NiceSpawners::spawn`] says so and the caller falls
//! back to the `nice` program.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

type Request = (Command, oneshot::Sender<std::io::Result<Child>>);

/// Spawning threads per niceness (created on first use): as many as the host has cores, so that
/// spawning is no more serial than it is from the async runtime's workers.
#[derive(Clone, Default)]
pub(crate) struct NiceSpawners {
    threads: Arc<Mutex<HashMap<i32, Option<Pool>>>>,
}

#[derive(Clone)]
struct Pool {
    senders: Vec<mpsc::Sender<Request>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
}

impl Pool {
    fn pick(&self) -> Option<&mpsc::Sender<Request>> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.senders.get(i % self.senders.len().max(1))
    }
}

impl std::fmt::Debug for NiceSpawners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NiceSpawners").finish_non_exhaustive()
    }
}

/// Why a task could not be started by a niced thread.
pub(crate) enum NiceSpawnError {
    /// This niceness cannot be set here (checked with [`NiceSpawners::available`] first).
    Unavailable(String),
    /// The spawn itself failed.
    Spawn(std::io::Error),
}

impl NiceSpawners {
    /// Spawns `cmd` from a thread running at niceness `n`.
    pub(crate) async fn spawn(&self, n: i32, cmd: Command) -> Result<Child, NiceSpawnError> {
        let sender = match self.pool(n) {
            Ok(p) => match p.pick() {
                Some(s) => s.clone(),
                None => {
                    return Err(NiceSpawnError::Unavailable("no spawning thread".to_owned()));
                }
            },
            Err(why) => return Err(NiceSpawnError::Unavailable(why)),
        };
        let (tx, rx) = oneshot::channel();
        if sender.send((cmd, tx)).is_err() {
            return Err(NiceSpawnError::Unavailable(
                "the spawning thread has stopped".to_owned(),
            ));
        }
        match rx.await {
            Ok(r) => r.map_err(NiceSpawnError::Spawn),
            Err(_) => Err(NiceSpawnError::Spawn(std::io::Error::other(
                "the spawning thread has stopped",
            ))),
        }
    }

    /// Whether tasks can be spawned at niceness `n` this way (starts the thread on first use).
    pub(crate) fn available(&self, n: i32) -> Result<(), String> {
        self.pool(n).map(|_| ())
    }

    fn pool(&self, n: i32) -> Result<Pool, String> {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = threads.get(&n) {
            return slot
                .clone()
                .ok_or_else(|| format!("niceness {n} cannot be set by this process"));
        }
        let count = std::thread::available_parallelism().map_or(2, |c| c.get().clamp(1, 8));
        let started: Result<Vec<_>, String> = (0..count).map(|_| start_thread(n)).collect();
        let pool = started.map(|senders| Pool {
            senders,
            next: Arc::default(),
        });
        threads.insert(n, pool.as_ref().ok().cloned());
        pool
    }
}

fn start_thread(n: i32) -> Result<mpsc::Sender<Request>, String> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|e| format!("no async runtime to spawn from: {e}"))?;
    let (tx, rx) = mpsc::channel::<Request>();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name(format!("ballast-spawn-nice{n}"))
        .spawn(move || {
            // Like `nice -n n`: relative to this process's niceness, at most 19. Current thread
            // only (Linux: the nice value is per thread).
            let set = rustix::process::getpriority_process(None)
                .map_err(|e| format!("getpriority: {e}"))
                .and_then(|base| {
                    let target = base.saturating_add(n).clamp(-20, 19);
                    rustix::process::setpriority_process(None, target)
                        .map_err(|e| format!("setpriority({target}): {e}"))?;
                    let got = rustix::process::getpriority_process(None)
                        .map_err(|e| format!("getpriority: {e}"))?;
                    if got == target {
                        Ok(())
                    } else {
                        Err(format!("niceness is {got} after setting {target}"))
                    }
                });
            let ok = set.is_ok();
            let _ = ready_tx.send(set);
            if !ok {
                return;
            }
            let _enter = handle.enter();
            while let Ok((mut cmd, reply)) = rx.recv() {
                let _ = reply.send(cmd.spawn());
            }
        })
        .map_err(|e| format!("starting the spawning thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(tx),
        Ok(Err(why)) => Err(why),
        Err(_) => Err("the spawning thread stopped at start".to_owned()),
    }
}
