//! The engine's write-behind recorder: task bookkeeping and output chunks from every run driven
//! by this replica go through one queue and are written in group commits — one transaction for
//! whatever has accumulated while the previous one was being written
//! ([`ballast_store::ExecStore::record_tasks`]).
//!
//! Why: a 1,000-host step used to make three fsync'd commits per host (running, output,
//! finished), serialised by SQLite's single writer; with group commit it makes a handful. What
//! stays durable *before* something happens is still awaited: a task's `running` row is flushed
//! before its host is contacted ([`Recorder::flush`]), so a crash never loses the fact that a
//! host may have run something (recovery marks it `unknown`). A task's final row and its output
//! are queued without waiting; the driver flushes before it reads a step's results. A crash
//! between queueing and committing leaves the task `running` in storage, which recovery turns
//! into `unknown` — the safe reading of "the outcome did not reach storage".
//!
//! The queue is bounded (backpressure on the tasks producing output, never unbounded memory),
//! and a commit is capped in operations and bytes. Writes that fail are retried; if a batch
//! keeps failing, its items are written one by one so that one bad item cannot hold back the
//! others, and the failures are reported to whoever waits on the next flush.

use std::sync::Arc;
use std::time::Duration;

use ballast_store::{OutputChunkRow, Store, TaskRow};
use tokio::sync::{mpsc, oneshot};

/// Most queued operations (bounded: producers wait when it is full).
const QUEUE: usize = 4096;
/// Most operations in one transaction.
const MAX_OPS: usize = 4096;
/// Most output bytes in one transaction.
const MAX_BYTES: usize = 8 << 20;
/// Attempts at one group commit before falling back to item-by-item writes.
const ATTEMPTS: u32 = 4;

enum Op {
    Task(TaskRow),
    Output(OutputChunkRow),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// A handle on the recorder (cheap to clone).
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Op>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

/// The recorder task ended (only when the runtime shuts down).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the task recorder has stopped")]
    Stopped,
    #[error("storing task records failed: {0}")]
    Store(String),
}

impl Recorder {
    /// Starts the recorder task on the current tokio runtime.
    pub fn spawn(store: Arc<dyn Store>) -> Recorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, rx));
        Recorder { tx }
    }

    /// Queues a task's new state (written in the next group commit).
    pub async fn task(&self, t: TaskRow) -> Result<(), RecordError> {
        self.tx
            .send(Op::Task(t))
            .await
            .map_err(|_| RecordError::Stopped)
    }

    /// Queues an output chunk.
    pub async fn output(&self, c: OutputChunkRow) -> Result<(), RecordError> {
        self.tx
            .send(Op::Output(c))
            .await
            .map_err(|_| RecordError::Stopped)
    }

    /// Waits until everything queued before this call is committed; errors if any of it failed.
    pub async fn flush(&self) -> Result<(), RecordError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Flush(tx))
            .await
            .map_err(|_| RecordError::Stopped)?;
        rx.await
            .map_err(|_| RecordError::Stopped)?
            .map_err(RecordError::Store)
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Op>) {
    let mut tasks: Vec<TaskRow> = Vec::new();
    let mut chunks: Vec<OutputChunkRow> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    // Failures since the last flush was answered (reported to the next flush's waiters).
    let mut errors: Vec<String> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut bytes = 0usize;
        let mut ops = 0usize;
        let mut next = Some(first);
        // Take what has accumulated, up to the caps; a flush closes the batch so its waiter is
        // answered as soon as what came before it is stored.
        while let Some(op) = next.take() {
            ops += 1;
            match op {
                Op::Task(t) => tasks.push(t),
                Op::Output(c) => {
                    bytes += c.data.len();
                    chunks.push(c);
                }
                Op::Flush(w) => {
                    waiters.push(w);
                }
            }
            if ops >= MAX_OPS || bytes >= MAX_BYTES {
                break;
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = write(store.as_ref(), &tasks, &chunks).await {
            tracing::warn!("task recorder: {e}");
            if errors.len() < 16 {
                errors.push(e);
            }
        }
        if !waiters.is_empty() {
            let result = if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("; "))
            };
            errors.clear();
            for w in waiters.drain(..) {
                let _ = w.send(result.clone());
            }
        }
        tasks.clear();
        chunks.clear();
    }
}

/// One group commit, retried; then item by item so that one bad item cannot block the rest.
async fn write(
    store: &dyn Store,
    tasks: &[TaskRow],
    chunks: &[OutputChunkRow],
) -> Result<(), String> {
    if tasks.is_empty() && chunks.is_empty() {
        return Ok(());
    }
    let mut delay = Duration::from_millis(50);
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        match store.record_tasks(tasks, chunks).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(delay).await;
        delay *= 4;
    }
    tracing::warn!(
        "task recorder: group commit of {} task(s), {} chunk(s) failed ({last}); writing one by one",
        tasks.len(),
        chunks.len()
    );
    let mut failed = Vec::new();
    for t in tasks {
        if let Err(e) = store.record_tasks(std::slice::from_ref(t), &[]).await {
            failed.push(format!("task {}: {e}", t.id));
        }
    }
    for c in chunks {
        if let Err(e) = store.record_tasks(&[], std::slice::from_ref(c)).await {
            failed.push(format!("output of task {} #{}: {e}", c.task_id, c.seq));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}
