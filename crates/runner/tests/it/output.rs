use std::time::{Duration, Instant};

use ballast_runner::{CancelToken, Interpreter, Stream};
use tokio::sync::mpsc;

use crate::{joined, run_collect, runner, spec, text};

#[tokio::test]
async fn interleaved_stdout_and_stderr_arrive_in_chunks_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let s = spec(
        Interpreter::Bash,
        "echo out1; echo err1 >&2; sleep 1; echo out2; echo err2 >&2",
    );
    let (tx, mut rx) = mpsc::channel(16);
    let handle = tokio::spawn(async move { r.run(&s, tx, CancelToken::new()).await });
    // The first chunk arrives while the task is still sleeping: output is streamed.
    let first = tokio::time::timeout(Duration::from_millis(900), rx.recv())
        .await
        .expect("first chunk before the task ends")
        .unwrap();
    assert!(!handle.is_finished());
    let mut chunks = vec![first];
    while let Some(c) = rx.recv().await {
        chunks.push(c);
    }
    let outcome = handle.await.unwrap().unwrap();
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(text(&chunks, Stream::Stdout), "out1\nout2\n");
    assert_eq!(text(&chunks, Stream::Stderr), "err1\nerr2\n");
    assert!(chunks.iter().filter(|c| c.stream == Stream::Stdout).count() >= 2);
    assert!(chunks.iter().filter(|c| c.stream == Stream::Stderr).count() >= 2);
    assert_eq!(outcome.stdout_bytes, 10);
    assert_eq!(outcome.stderr_bytes, 10);
    assert!(!outcome.truncated);
}

#[tokio::test]
async fn output_cap_truncates_at_the_exact_byte_count() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let mut s = spec(
        Interpreter::Bash,
        "head -c 2500 /dev/zero | tr '\\0' o; head -c 1000 /dev/zero | tr '\\0' e >&2",
    );
    s.limits.output_cap_bytes = 1000;
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert!(outcome.success(), "{outcome:?}");
    let out = joined(&chunks, Stream::Stdout);
    assert_eq!(out.len(), 1000);
    assert!(out.iter().all(|b| *b == b'o'));
    assert_eq!(outcome.stdout_bytes, 2500);
    // stderr exactly at the cap is complete, not truncated; stdout made `truncated` true.
    assert_eq!(joined(&chunks, Stream::Stderr).len(), 1000);
    assert_eq!(outcome.stderr_bytes, 1000);
    assert!(outcome.truncated);
}

#[tokio::test]
async fn output_exactly_at_the_cap_is_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let mut s = spec(Interpreter::Sh, "printf 12345");
    s.limits.output_cap_bytes = 5;
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert_eq!(text(&chunks, Stream::Stdout), "12345");
    assert!(!outcome.truncated);
}

#[tokio::test]
async fn ten_mb_with_a_one_mb_cap_completes_quickly_in_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let s = spec(Interpreter::Bash, "head -c 10485760 /dev/zero");
    assert_eq!(s.limits.output_cap_bytes, 1024 * 1024, "default cap");
    // A slow-ish, small-buffered consumer that only counts: nothing accumulates anywhere.
    let (tx, mut rx) = mpsc::channel::<ballast_runner::Chunk>(2);
    let counter = tokio::spawn(async move {
        let (mut bytes, mut largest, mut n) = (0usize, 0usize, 0usize);
        while let Some(c) = rx.recv().await {
            bytes += c.data.len();
            largest = largest.max(c.data.len());
            n += 1;
        }
        (bytes, largest, n)
    });
    let start = Instant::now();
    let outcome = r.run(&s, tx, CancelToken::new()).await.unwrap();
    let (bytes, largest, n) = counter.await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(bytes, 1024 * 1024);
    assert!(largest <= 64 * 1024);
    assert!(n >= 16);
    assert_eq!(outcome.stdout_bytes, 10 * 1024 * 1024);
    assert!(outcome.truncated);
}

#[tokio::test]
async fn non_utf8_output_passes_through_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let s = spec(
        Interpreter::Bash,
        r"printf '\xff\xfe\000abc\x80'; printf '\xc3\x28' >&2",
    );
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert!(outcome.success());
    assert_eq!(joined(&chunks, Stream::Stdout), b"\xff\xfe\x00abc\x80");
    assert_eq!(joined(&chunks, Stream::Stderr), b"\xc3\x28");
}

#[tokio::test]
async fn dropped_receiver_does_not_stop_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let marker = dir.path().join("done");
    let mut s = spec(
        Interpreter::Bash,
        "head -c 300000 /dev/zero; echo err >&2; touch \"$1\"",
    );
    s.args = vec![marker.display().to_string()];
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let outcome = r.run(&s, tx, CancelToken::new()).await.unwrap();
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.stdout_bytes, 300_000);
    assert!(marker.exists());
}
