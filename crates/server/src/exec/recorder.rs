//! The engine's write-behind recorder: task bookkeeping and output chunks from every run driven
//! by this replica are written in group commits — one transaction for whatever has accumulated
//! while the previous one was being written ([`ballast_store::ExecStore::record_tasks`]).
//!
//! Why: a 1,000-host step used to make three fsync'd commits per host (running, output,
//! finished), serialised by SQLite's single writer; with group commit it makes a handful.
//!
//! What stays durable *before* something happens is still awaited: a task's `running` row is
//! flushed before its host is contacted ([`Recorder::running`] then [`Recorder::flush`]), so a
//! crash never loses the fact that a host may have run something (recovery marks it `unknown`).
//! A task's output and its final row are queued without waiting, **in that order, in its run's
//! lane**, so the final row is never stored before the output it reports on; the driver flushes
//! the run's lane ([`Recorder::flush_run`]) before it reads a step's results. A crash between
//! queueing and committing leaves the task `running` in storage, which recovery turns into
//! `unknown` — the safe reading of "the outcome did not reach storage".
//!
//! Fairness and memory (issue 5: "1,000 hosts × 1 MB of output each must not stall other runs"):
//! - `running` rows and their flushes have a lane of their own, emptied first into every commit,
//!   so a new task never waits behind anyone's output;
//! - each run has its own lane, and a commit takes from the run lanes in turn, one item each
//!   round, so a small run's output and final rows share every commit with a big run's instead
//!   of queueing behind it;
//! - each run lane holds at most [`LANE_BYTES`] of output: the tasks producing more wait (and
//!   with them, through one-chunk channels, the agents' connections), so memory is bounded by
//!   the active runs and tasks, never by the amount of output.
//!
//! A commit is capped in operations and bytes. Writes that fail are retried; if a batch keeps
//! failing, its items are written one by one so that one bad item cannot hold back the others,
//! and the failures are reported to whoever waits on the next flush.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ballast_store::{OutputChunkRow, Store, TaskRow};
use tokio::sync::{Notify, oneshot};

/// Most operations in one transaction.
const MAX_OPS: usize = 4096;
/// Most output bytes in one transaction (a smaller transaction holds SQLite's single writer
/// lock for less time, so the pages and the API stay responsive beside a big run).
const MAX_BYTES: usize = 4 << 20;
/// Most output bytes queued per run (producers of that run wait beyond it).
pub const LANE_BYTES: usize = 8 << 20;
/// Attempts at one group commit before falling back to item-by-item writes.
const ATTEMPTS: u32 = 4;

type Waiter = oneshot::Sender<Result<(), String>>;

enum Op {
    Task(TaskRow),
    Output(OutputChunkRow),
    Flush(Waiter),
}

#[derive(Default)]
struct Lane {
    ops: VecDeque<Op>,
    bytes: usize,
}

#[derive(Default)]
struct Queues {
    /// `running` rows and flushes of them.
    control: VecDeque<Op>,
    /// Per run: output chunks, final task rows and flushes, in order.
    lanes: BTreeMap<i64, Lane>,
    /// The run lane served last (round-robin position).
    cursor: Option<i64>,
    /// Every handle is gone: write what is left and stop.
    closed: bool,
    /// The writer task has ended (nothing queued from now on would be written).
    stopped: bool,
}

impl Queues {
    fn is_empty(&self) -> bool {
        self.control.is_empty() && self.lanes.is_empty()
    }
}

struct Shared {
    queues: Mutex<Queues>,
    /// Something was queued (wakes the writer).
    work: Notify,
    /// A commit finished (wakes producers waiting for room in their lane).
    room: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic while holding this lock leaves plain queues behind, still consistent.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Closes the queues when the last [`Recorder`] handle is dropped.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.work.notify_one();
    }
}

/// A handle on the recorder (cheap to clone).
#[derive(Clone)]
pub struct Recorder {
    handle: Arc<Handle>,
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
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            work: Notify::new(),
            room: Notify::new(),
        });
        tokio::spawn(run(store, shared.clone()));
        Recorder {
            handle: Arc::new(Handle(shared)),
        }
    }

    fn shared(&self) -> &Shared {
        &self.handle.0
    }

    fn push_control(&self, op: Op) -> Result<(), RecordError> {
        let sh = self.shared();
        {
            let mut q = sh.lock();
            if q.stopped {
                return Err(RecordError::Stopped);
            }
            q.control.push_back(op);
        }
        sh.work.notify_one();
        Ok(())
    }

    /// Queues a task's `running` row ahead of all output; [`Recorder::flush`] makes it durable.
    pub async fn running(&self, t: TaskRow) -> Result<(), RecordError> {
        self.push_control(Op::Task(t))
    }

    /// Waits until every `running` row queued before this call is committed (not the output
    /// lanes); errors if anything written since the last flush failed.
    pub async fn flush(&self) -> Result<(), RecordError> {
        let (tx, rx) = oneshot::channel();
        self.push_control(Op::Flush(tx))?;
        wait(rx).await
    }

    /// Queues a task's row in its run's lane, after the output queued before it.
    pub async fn task(&self, t: TaskRow) -> Result<(), RecordError> {
        let run = t.run_id;
        self.push_lane(run, Op::Task(t), 0).await
    }

    /// Queues an output chunk of a task of `run`, waiting while the run's lane is full.
    pub async fn output(&self, run: i64, c: OutputChunkRow) -> Result<(), RecordError> {
        let n = c.data.len();
        self.push_lane(run, Op::Output(c), n).await
    }

    /// Waits until everything queued for `run` before this call (output and task rows) is
    /// committed; errors if anything written since the last flush failed.
    pub async fn flush_run(&self, run: i64) -> Result<(), RecordError> {
        let (tx, rx) = oneshot::channel();
        self.push_lane(run, Op::Flush(tx), 0).await?;
        wait(rx).await
    }

    async fn push_lane(&self, run: i64, op: Op, bytes: usize) -> Result<(), RecordError> {
        let sh = self.shared();
        let mut op = Some(op);
        loop {
            // Registered before the check, so a commit between the check and the wait is seen.
            let room = sh.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut q = sh.lock();
                if q.stopped {
                    return Err(RecordError::Stopped);
                }
                let lane = q.lanes.entry(run).or_default();
                // Task rows and flushes never wait; output waits for room (an empty lane always
                // takes one chunk, whatever its size).
                if bytes == 0 || lane.bytes == 0 || lane.bytes + bytes <= LANE_BYTES {
                    lane.bytes += bytes;
                    if let Some(op) = op.take() {
                        lane.ops.push_back(op);
                    }
                    drop(q);
                    sh.work.notify_one();
                    return Ok(());
                }
            }
            room.await;
        }
    }
}

async fn wait(rx: oneshot::Receiver<Result<(), String>>) -> Result<(), RecordError> {
    rx.await
        .map_err(|_| RecordError::Stopped)?
        .map_err(RecordError::Store)
}

/// One commit's worth of work.
#[derive(Default)]
struct Batch {
    tasks: Vec<TaskRow>,
    chunks: Vec<OutputChunkRow>,
    waiters: Vec<Waiter>,
    ops: usize,
    bytes: usize,
}

impl Batch {
    fn add(&mut self, op: Op) {
        self.ops += 1;
        match op {
            Op::Task(t) => self.tasks.push(t),
            Op::Output(c) => {
                self.bytes += c.data.len();
                self.chunks.push(c);
            }
            Op::Flush(w) => self.waiters.push(w),
        }
    }

    fn full(&self) -> bool {
        self.ops >= MAX_OPS || self.bytes >= MAX_BYTES
    }
}

/// Takes the next batch: the whole control lane first, then the run lanes in turn, one item
/// each round, from the one after the last served.
fn take(q: &mut Queues) -> Batch {
    let mut b = Batch::default();
    while !b.full() {
        let Some(op) = q.control.pop_front() else {
            break;
        };
        b.add(op);
    }
    while !b.full() && !q.lanes.is_empty() {
        let order: Vec<i64> = match q.cursor {
            None => q.lanes.keys().copied().collect(),
            Some(c) => q
                .lanes
                .range((Bound::Excluded(c), Bound::Unbounded))
                .chain(q.lanes.range(..=c))
                .map(|(k, _)| *k)
                .collect(),
        };
        for run in order {
            if b.full() {
                break;
            }
            let Some(lane) = q.lanes.get_mut(&run) else {
                continue;
            };
            if let Some(op) = lane.ops.pop_front() {
                if let Op::Output(c) = &op {
                    lane.bytes = lane.bytes.saturating_sub(c.data.len());
                }
                b.add(op);
            }
            if lane.ops.is_empty() {
                q.lanes.remove(&run);
            }
            q.cursor = Some(run);
        }
    }
    b
}

async fn run(store: Arc<dyn Store>, shared: Arc<Shared>) {
    // Failures since the last flush was answered (reported to the next flush's waiters).
    let mut errors: Vec<String> = Vec::new();
    loop {
        let work = shared.work.notified();
        tokio::pin!(work);
        work.as_mut().enable();
        let batch = {
            let mut q = shared.lock();
            if q.is_empty() {
                if q.closed {
                    q.stopped = true;
                    return;
                }
                None
            } else {
                Some(take(&mut q))
            }
        };
        let Some(batch) = batch else {
            work.await;
            continue;
        };
        if let Err(e) = write(store.as_ref(), &batch.tasks, &batch.chunks).await {
            tracing::warn!("task recorder: {e}");
            if errors.len() < 16 {
                errors.push(e);
            }
        }
        shared.room.notify_waiters();
        if !batch.waiters.is_empty() {
            let result = if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("; "))
            };
            errors.clear();
            for w in batch.waiters {
                let _ = w.send(result.clone());
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(task: i64, seq: i64, n: usize) -> Op {
        Op::Output(OutputChunkRow {
            task_id: task,
            seq,
            stream: "stdout".into(),
            data: vec![b'x'; n],
            at: chrono::DateTime::UNIX_EPOCH,
        })
    }

    fn lane(q: &mut Queues, run: i64, op: Op) {
        let l = q.lanes.entry(run).or_default();
        if let Op::Output(c) = &op {
            l.bytes += c.data.len();
        }
        l.ops.push_back(op);
    }

    /// A small run's chunk goes into the first commit even when a big run has queued far more
    /// than one commit holds.
    #[test]
    fn lanes_take_turns() {
        let mut q = Queues::default();
        for seq in 0..200 {
            lane(&mut q, 1, chunk(10, seq, 64 * 1024));
        }
        lane(&mut q, 2, chunk(20, 0, 10));
        let b = take(&mut q);
        assert!(b.chunks.iter().any(|c| c.task_id == 20));
        assert!(b.bytes <= MAX_BYTES + 64 * 1024);
        // The big run's order is kept and it resumes where it stopped.
        let seqs: Vec<i64> = b
            .chunks
            .iter()
            .filter(|c| c.task_id == 10)
            .map(|c| c.seq)
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] + 1 == w[1]));
        let next = take(&mut q);
        assert_eq!(
            next.chunks.first().map(|c| c.seq),
            seqs.last().map(|s| s + 1)
        );
        assert!(!q.lanes.contains_key(&2), "an emptied lane is removed");
    }

    /// The control lane goes first, whole.
    #[test]
    fn control_first() {
        let mut q = Queues::default();
        lane(&mut q, 1, chunk(10, 0, 100));
        let (tx, _rx) = oneshot::channel();
        q.control.push_back(Op::Flush(tx));
        let b = take(&mut q);
        assert_eq!((b.waiters.len(), b.chunks.len()), (1, 1));
        assert!(q.is_empty());
    }
}
