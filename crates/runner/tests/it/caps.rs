use std::fs;

use ballast_runner::{Interpreter, ProbeOptions, Runner, Stream};

use crate::{run_collect, runner, spec, text};

const ALLOC_512_MB: &str = "b = bytearray(512 * 1024 * 1024)\nprint('allocated', len(b))\n";

#[tokio::test]
async fn memory_cap_stops_a_512_mb_allocation_in_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let mut s = spec(Interpreter::Python3, ALLOC_512_MB);
    s.limits.memory_bytes = Some(64 * 1024 * 1024);
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert!(!outcome.success(), "{outcome:?}");
    assert_eq!(text(&chunks, Stream::Stdout), "");
    assert!(text(&chunks, Stream::Stderr).contains("MemoryError"));
    assert!(
        outcome.caps.rlimit_memory && !outcome.caps.cgroup,
        "{:?}",
        outcome.caps
    );
    assert!(
        outcome.caps.detail.contains("prlimit --as=67108864"),
        "{}",
        outcome.caps.detail
    );
}

#[tokio::test]
async fn memory_cap_with_the_best_mechanism_this_host_offers() {
    let dir = tempfile::tempdir().unwrap();
    let r = Runner::probe(&dir.path().join("scripts"));
    let mut s = spec(Interpreter::Python3, ALLOC_512_MB);
    s.limits.memory_bytes = Some(64 * 1024 * 1024);
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert!(!outcome.success(), "{outcome:?}");
    assert_eq!(text(&chunks, Stream::Stdout), "");
    // Exactly one mechanism claims the memory cap, and it is the one the probe found.
    if r.capabilities().cgroup_parent.is_some() {
        assert!(
            outcome.caps.cgroup && !outcome.caps.rlimit_memory,
            "{:?}",
            outcome.caps
        );
        assert!(outcome.caps.detail.contains("memory.max=67108864"));
    } else {
        assert!(
            !outcome.caps.cgroup && outcome.caps.rlimit_memory,
            "{:?}",
            outcome.caps
        );
    }
}

#[tokio::test]
async fn without_a_memory_cap_the_allocation_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let s = spec(
        Interpreter::Python3,
        "b = bytearray(128 * 1024 * 1024)\nprint('allocated', len(b))\n",
    );
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(text(&chunks, Stream::Stdout), "allocated 134217728\n");
    assert!(!outcome.caps.rlimit_memory && !outcome.caps.cgroup);
}

#[tokio::test]
async fn nice_is_applied_and_unapplied_cpu_cap_is_not_claimed() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    // The task and what it starts run at +10 from their first instruction (spawned by a thread
    // at that niceness, no `nice` wrapper in between).
    let mut s = spec(Interpreter::Sh, "nice; sh -c nice");
    s.limits.cpu_percent = Some(50);
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert!(outcome.success());
    assert_eq!(text(&chunks, Stream::Stdout), "10\n10\n");
    assert!(outcome.caps.nice && !outcome.caps.cgroup);
    assert!(
        outcome.caps.detail.contains("nice +10"),
        "{}",
        outcome.caps.detail
    );
    assert!(
        outcome.caps.detail.contains("cpu cap 50% not applied"),
        "{}",
        outcome.caps.detail
    );

    let mut s = spec(Interpreter::Sh, "nice");
    s.limits.nice = None;
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert_eq!(text(&chunks, Stream::Stdout), "0\n");
    assert!(!outcome.caps.nice);
}

/// The cgroup v2 plumbing (probe, per-task directory, `memory.max`/`cpu.max`, joining through
/// the `sh` wrapper before exec) against a directory laid out like cgroupfs. This host has no
/// writable cgroup v2, so the kernel side (the cap actually biting) is not exercised here.
#[tokio::test]
async fn cgroup_plumbing_against_a_cgroupfs_shaped_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cgroup");
    fs::create_dir_all(root.join("ballast")).unwrap();
    fs::write(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    fs::write(root.join("cgroup.subtree_control"), "cpu memory\n").unwrap();
    fs::write(root.join("ballast/cgroup.subtree_control"), "cpu memory\n").unwrap();
    let r = Runner::probe_with(
        &dir.path().join("scripts"),
        &ProbeOptions {
            cgroup_root: root.clone(),
            ..ProbeOptions::default()
        },
    );
    assert_eq!(r.capabilities().cgroup_parent, Some(root.join("ballast")));
    let mut s = spec(
        Interpreter::Bash,
        "cd \"$1\"/ballast/task-* && for f in memory.max cpu.max cgroup.procs; do echo \"$(cat $f)\"; done && echo $$",
    );
    s.args = vec![root.display().to_string()];
    s.limits.memory_bytes = Some(64 * 1024 * 1024);
    s.limits.cpu_percent = Some(50);
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert!(outcome.success(), "{outcome:?} {chunks:?}");
    let out = text(&chunks, Stream::Stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["67108864", "50000 100000"]);
    // The wrapper wrote its own PID, and that process exec'ed into the interpreter.
    assert_eq!(lines[2], lines[3]);
    assert!(outcome.caps.cgroup && !outcome.caps.rlimit_memory && outcome.caps.nice);
    assert!(
        outcome
            .caps
            .detail
            .contains("memory.max=67108864 cpu.max=50000/100000")
    );
}
