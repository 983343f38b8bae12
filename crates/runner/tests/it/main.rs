//! Integration tests for `ballast-runner`: real processes, real `prlimit`/`nice`/`kill`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod caps;
mod concurrency;
mod output;
mod process;
mod spec;

use std::path::Path;
use std::time::Duration;

use ballast_runner::{
    CancelToken, Chunk, Interpreter, Outcome, ProbeOptions, Runner, Stream, TaskSpec,
};
use tokio::sync::mpsc;

/// A runner whose base dir is inside `dir`; `fallback` forces prlimit/nice and script files in
/// the base dir (not on tmpfs).
pub fn runner(dir: &Path, fallback: bool) -> Runner {
    Runner::probe_with(
        &dir.join("scripts"),
        &ProbeOptions {
            allow_cgroup: !fallback,
            memory_scripts: !fallback,
            ..ProbeOptions::default()
        },
    )
}

pub fn spec(interp: Interpreter, script: &str) -> TaskSpec {
    let mut s = TaskSpec::new(interp, script);
    s.limits.timeout = Duration::from_secs(30);
    s
}

/// Run and collect every chunk.
pub async fn run_collect(runner: &Runner, spec: &TaskSpec) -> (Outcome, Vec<Chunk>) {
    let (tx, mut rx) = mpsc::channel(16);
    let collector = tokio::spawn(async move {
        let mut chunks = Vec::new();
        while let Some(c) = rx.recv().await {
            chunks.push(c);
        }
        chunks
    });
    let outcome = runner.run(spec, tx, CancelToken::new()).await.unwrap();
    (outcome, collector.await.unwrap())
}

pub fn joined(chunks: &[Chunk], stream: Stream) -> Vec<u8> {
    chunks
        .iter()
        .filter(|c| c.stream == stream)
        .flat_map(|c| c.data.iter().copied())
        .collect()
}

pub fn text(chunks: &[Chunk], stream: Stream) -> String {
    String::from_utf8(joined(chunks, stream)).unwrap()
}
