//! Many tasks at once in one process: every task must get exactly its own output, or say that it
//! did not (never a silent success with lost output).

use std::sync::Arc;
use std::time::Duration;

use ballast_runner::{CancelToken, Chunk, Interpreter, Stream};
use tokio::sync::mpsc;

use crate::{joined, runner, spec};

const TASKS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_tasks_each_get_exactly_their_own_output() {
    let dir = tempfile::tempdir().unwrap();
    let r = Arc::new(runner(dir.path(), false));
    let mut handles = Vec::with_capacity(TASKS);
    for i in 0..TASKS {
        let r = Arc::clone(&r);
        handles.push(tokio::spawn(async move {
            let mut s = spec(Interpreter::Sh, &format!("echo ok-{i}"));
            s.limits.timeout = Duration::from_secs(120);
            let (tx, mut rx) = mpsc::channel(16);
            let collector = tokio::spawn(async move {
                let mut chunks = Vec::new();
                while let Some(c) = rx.recv().await {
                    chunks.push(c);
                }
                chunks
            });
            let outcome = r.run(&s, tx, CancelToken::new()).await.unwrap();
            (i, outcome, collector.await.unwrap())
        }));
    }
    let mut failures = Vec::new();
    for h in handles {
        let (i, outcome, chunks) = h.await.unwrap();
        let want = format!("ok-{i}\n");
        let got = joined(&chunks, Stream::Stdout);
        let ok = outcome.success()
            && outcome.exit_code == Some(0)
            && !outcome.output_incomplete
            && got == want.as_bytes()
            && outcome.stdout_bytes == want.len() as u64
            && outcome.stderr_bytes == 0
            && joined(&chunks, Stream::Stderr).is_empty();
        if !ok {
            failures.push(format!(
                "task {i}: got {:?}, {outcome:?}",
                String::from_utf8_lossy(&got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {TASKS} tasks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A process that left the group (`setsid`) and keeps stdout open: what it writes during the
/// grace is still read, then it is killed and the output read to end-of-file.
#[tokio::test]
async fn escaped_holder_of_the_output_is_killed_and_output_read_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let s = spec(
        Interpreter::Bash,
        "echo before\n\
         m=\"$PWD/escaped.$$\"\n\
         setsid sh -c 'echo \"pid $$\"; touch \"$1\"; sleep 1; echo late; exec sleep 300' sh \"$m\" &\n\
         # Exit only once it has left the group (the group's leftovers are killed at exit).\n\
         while [ ! -e \"$m\" ]; do sleep 0.05; done; rm -f \"$m\"\n\
         echo done\n",
    );
    let start = std::time::Instant::now();
    let (outcome, chunks) = crate::run_collect(&r, &s).await;
    let out = crate::text(&chunks, Stream::Stdout);
    assert!(outcome.success(), "{outcome:?}");
    assert!(!outcome.output_incomplete);
    assert!(out.contains("before\n") && out.contains("done\n") && out.contains("late\n"));
    assert_eq!(outcome.stdout_bytes, out.len() as u64);
    assert!(start.elapsed() < Duration::from_secs(10), "{outcome:?}");
    let pid: i32 = out
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .unwrap()
        .parse()
        .unwrap();
    // Killed (a zombie at most, if nothing reaps it here). Its pipes close before it turns
    // into a zombie, so allow the kernel a moment to finish.
    let dead = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .unwrap()
                .trim_start()
                .starts_with('Z')
    };
    for _ in 0..100 {
        if dead() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dead(), "process {pid} still alive");
}

/// A receiver that is slow to take chunks after the task ended is backpressure, not a stall:
/// the output is still read completely.
#[tokio::test]
async fn slow_receiver_after_exit_still_gets_all_output() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let s = spec(Interpreter::Bash, "head -c 300000 /dev/zero | tr '\\0' x");
    let (tx, mut rx) = mpsc::channel::<Chunk>(1);
    let collector = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut n = 0;
        while let Some(c) = rx.recv().await {
            assert!(c.data.iter().all(|b| *b == b'x'));
            n += c.data.len();
        }
        n
    });
    let outcome = r.run(&s, tx, CancelToken::new()).await.unwrap();
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.stdout_bytes, 300_000);
    assert_eq!(collector.await.unwrap(), 300_000);
}
