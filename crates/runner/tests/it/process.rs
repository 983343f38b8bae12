use std::time::{Duration, Instant};

use ballast_runner::procfs::process_group_members;
use ballast_runner::{CancelToken, Interpreter, RunnerError, Stream};
use tokio::sync::mpsc;

use crate::{run_collect, runner, spec, text};

#[tokio::test]
async fn exit_code_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let (outcome, _) = run_collect(&r, &spec(Interpreter::Bash, "exit 3")).await;
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.signal, None);
    assert!(!outcome.success());
    assert!(!outcome.timed_out && !outcome.cancelled);
}

#[tokio::test]
async fn signal_death_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let (outcome, _) = run_collect(&r, &spec(Interpreter::Bash, "kill -USR1 $$")).await;
    assert_eq!(outcome.exit_code, None);
    assert_eq!(outcome.signal, Some(10));
}

#[tokio::test]
async fn python3_and_sh_interpreters_run() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let mut py = spec(
        Interpreter::Python3,
        "import sys\nprint('py', sys.argv[1:], sys.argv[0].endswith('.py'))\nsys.exit(4)\n",
    );
    py.args = vec!["x".into()];
    let (outcome, chunks) = run_collect(&r, &py).await;
    assert_eq!(text(&chunks, Stream::Stdout), "py ['x'] True\n");
    assert_eq!(outcome.exit_code, Some(4));

    // Only POSIX sh syntax; `$0` is the script file.
    let (outcome, chunks) = run_collect(
        &r,
        &spec(Interpreter::Sh, "case \"$0\" in *.sh) echo sh-ok ;; esac"),
    )
    .await;
    assert!(outcome.success());
    assert_eq!(text(&chunks, Stream::Stdout), "sh-ok\n");
}

/// A one-line plain command is started directly: the program is the runner's own child (no
/// shell in between), at the task's niceness, in the base directory; anything the shell must
/// interpret, or a program not in `PATH`, goes through the shell as before.
#[tokio::test]
async fn a_plain_command_starts_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    // /proc/self/stat: field 4 is the parent pid, field 19 the niceness.
    let (outcome, chunks) =
        run_collect(&r, &spec(Interpreter::Bash, "cat /proc/self/stat\n")).await;
    assert!(outcome.success(), "{outcome:?}");
    assert!(
        outcome.caps.detail.contains("started directly"),
        "{}",
        outcome.caps.detail
    );
    let stat = text(&chunks, Stream::Stdout);
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        fields.get(1).copied(),
        Some(std::process::id().to_string().as_str()),
        "{stat}"
    );
    assert_eq!(fields.get(16).copied(), Some("10"), "{stat}");
    assert_eq!(
        std::fs::read_dir(r.script_dir()).map_or(0, Iterator::count),
        0
    );

    let (outcome, chunks) = run_collect(&r, &spec(Interpreter::Sh, "pwd")).await;
    assert!(
        !outcome.caps.detail.contains("started directly"),
        "{}",
        outcome.caps.detail
    );
    assert_eq!(
        text(&chunks, Stream::Stdout).trim_end(),
        r.base_dir().canonicalize().unwrap().display().to_string()
    );

    // The exit status of the program itself.
    let (outcome, _) = run_collect(&r, &spec(Interpreter::Bash, "false")).await;
    assert_eq!(outcome.exit_code, Some(1));

    // Not found: the shell reports it, as it always did.
    let (outcome, chunks) =
        run_collect(&r, &spec(Interpreter::Bash, "no-such-program-here --x")).await;
    assert_eq!(outcome.exit_code, Some(127));
    assert!(text(&chunks, Stream::Stderr).contains("not found"));
    assert!(!outcome.caps.detail.contains("started directly"));

    // Shell syntax: the shell runs it (the parent of `cat` is then not the runner).
    let (outcome, chunks) =
        run_collect(&r, &spec(Interpreter::Bash, "cat /proc/self/stat; true")).await;
    assert!(outcome.success());
    assert!(!outcome.caps.detail.contains("started directly"));
    let stat = text(&chunks, Stream::Stdout);
    let ppid = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().nth(1));
    assert_ne!(
        ppid,
        Some(std::process::id().to_string().as_str()),
        "{stat}"
    );
}

#[tokio::test]
async fn args_and_env_are_passed_and_the_environment_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let mut s = spec(
        Interpreter::Bash,
        "echo \"$#|$1|$2|$FOO|$LANG|$PATH|${CARGO_MANIFEST_DIR-unset}\"; pwd",
    );
    s.args = vec!["a b".into(), "c".into()];
    s.env = vec![("FOO".into(), "bar baz".into())];
    s.workdir = Some(dir.path().to_path_buf());
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert!(outcome.success());
    let wd = dir.path().canonicalize().unwrap();
    assert_eq!(
        text(&chunks, Stream::Stdout),
        format!(
            "2|a b|c|bar baz|C.UTF-8|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|unset\n{}\n",
            wd.display()
        )
    );
}

#[tokio::test]
async fn script_file_is_private_and_removed_after_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let s = spec(
        Interpreter::Bash,
        "echo \"$0\"; stat -c %a \"$0\" \"$(dirname \"$0\")\"; read -r x || echo stdin-empty",
    );
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert!(outcome.success());
    let out = text(&chunks, Stream::Stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1..], ["600", "700", "stdin-empty"]);
    let path = std::path::Path::new(lines[0]);
    assert!(path.starts_with(r.base_dir()));
    assert!(!path.exists(), "script file left behind");
    assert_eq!(std::fs::read_dir(r.base_dir()).unwrap().count(), 0);
}

#[tokio::test]
async fn script_files_go_to_a_private_tmpfs_directory_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), false);
    if !std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/dev/shm") && l.contains(" tmpfs "))
    {
        // No tmpfs here: scripts stay in the base dir (the other tests cover that).
        assert_eq!(r.script_dir(), r.base_dir());
        return;
    }
    let shm = r.script_dir().to_path_buf();
    assert!(shm.starts_with("/dev/shm/"), "{}", shm.display());
    let s = spec(
        Interpreter::Bash,
        "echo \"$0\"; stat -c %a \"$0\" \"$(dirname \"$0\")\"; pwd",
    );
    let (outcome, chunks) = run_collect(&r, &s).await;
    assert!(outcome.success(), "{outcome:?}");
    let out = text(&chunks, Stream::Stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert!(std::path::Path::new(lines[0]).starts_with(&shm));
    assert_eq!(lines[1..3], ["600", "700"]);
    // Tasks still work in the base dir.
    assert_eq!(std::path::Path::new(lines[3]), r.base_dir());
    assert!(
        !std::path::Path::new(lines[0]).exists(),
        "script file left behind"
    );
    let clone = r.clone();
    drop(r);
    assert!(shm.exists(), "kept while a clone of the runner lives");
    drop(clone);
    assert!(!shm.exists(), "the tmpfs directory goes with the runner");
}

/// Start `script` (which must print `$$` first), return the group id once it is known.
async fn start_group(
    script: &str,
    timeout: Duration,
    cancel: CancelToken,
) -> (
    i32,
    tokio::task::JoinHandle<Result<ballast_runner::Outcome, RunnerError>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let mut s = spec(Interpreter::Bash, script);
    s.limits.timeout = timeout;
    let (tx, mut rx) = mpsc::channel(16);
    let handle = tokio::spawn(async move { r.run(&s, tx, cancel).await });
    let first = rx.recv().await.unwrap();
    let pgid: i32 = String::from_utf8(first.data)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    (pgid, handle, dir)
}

async fn wait_for_members(pgid: i32, n: usize) {
    for _ in 0..100 {
        if process_group_members(pgid).len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "group {pgid} never had {n} members: {:?}",
        process_group_members(pgid)
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let start = Instant::now();
    let (pgid, handle, _dir) = start_group(
        "echo $$; sleep 300 & sleep 300 & wait",
        Duration::from_secs(1),
        CancelToken::new(),
    )
    .await;
    // bash is the group leader (the nice wrapper execs it): it and both sleeps are members.
    wait_for_members(pgid, 3).await;
    let outcome = handle.await.unwrap().unwrap();
    assert!(outcome.timed_out && !outcome.cancelled && !outcome.success());
    assert_eq!(outcome.signal, Some(15));
    assert!(start.elapsed() < Duration::from_secs(6));
    assert_eq!(process_group_members(pgid), Vec::<i32>::new());
}

#[tokio::test]
async fn term_ignoring_group_is_killed_after_the_grace() {
    let (pgid, handle, _dir) = start_group(
        "trap '' TERM; echo $$; sleep 300 & wait; sleep 300",
        Duration::from_millis(500),
        CancelToken::new(),
    )
    .await;
    let outcome = handle.await.unwrap().unwrap();
    assert!(outcome.timed_out);
    assert_eq!(outcome.signal, Some(9));
    assert_eq!(process_group_members(pgid), Vec::<i32>::new());
}

#[tokio::test]
async fn cancel_kills_the_whole_process_group() {
    let cancel = CancelToken::new();
    let (pgid, handle, _dir) = start_group(
        "echo $$; sleep 300 & sleep 300 & wait",
        Duration::from_secs(60),
        cancel.clone(),
    )
    .await;
    wait_for_members(pgid, 3).await;
    let start = Instant::now();
    cancel.cancel();
    let outcome = handle.await.unwrap().unwrap();
    assert!(outcome.cancelled && !outcome.timed_out && !outcome.success());
    assert!(start.elapsed() < Duration::from_secs(4));
    assert_eq!(process_group_members(pgid), Vec::<i32>::new());
}

#[tokio::test]
async fn cancelled_before_start_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let marker = dir.path().join("ran");
    let mut s = spec(Interpreter::Bash, "touch \"$1\"");
    s.args = vec![marker.display().to_string()];
    let cancel = CancelToken::new();
    cancel.cancel();
    let (tx, _rx) = mpsc::channel(1);
    let outcome = r.run(&s, tx, cancel).await.unwrap();
    assert!(outcome.cancelled);
    assert_eq!(outcome.exit_code, None);
    assert!(!marker.exists());
}

#[tokio::test]
async fn background_leftovers_end_with_the_task() {
    let start = Instant::now();
    let (pgid, handle, _dir) = start_group(
        "echo $$; sleep 300 & exit 0",
        Duration::from_secs(60),
        CancelToken::new(),
    )
    .await;
    let outcome = handle.await.unwrap().unwrap();
    assert!(outcome.success(), "{outcome:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(process_group_members(pgid), Vec::<i32>::new());
}

#[tokio::test]
async fn invalid_env_and_missing_workdir_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), true);
    let mut s = spec(Interpreter::Sh, "true");
    s.env = vec![("A=B".into(), "x".into())];
    let (tx, _rx) = mpsc::channel(1);
    let err = r.run(&s, tx, CancelToken::new()).await.unwrap_err();
    assert_eq!(err.code(), "RUNNER-001");

    let mut s = spec(Interpreter::Sh, "true");
    s.workdir = Some(dir.path().join("missing"));
    let (tx, _rx) = mpsc::channel(1);
    let err = r.run(&s, tx, CancelToken::new()).await.unwrap_err();
    assert_eq!(err.code(), "RUNNER-003");
    assert_eq!(std::fs::read_dir(r.base_dir()).unwrap().count(), 0);
}

#[tokio::test]
async fn dropping_the_run_future_kills_the_group() {
    let (pgid, handle, dir) = start_group(
        "echo $$; sleep 300 & sleep 300 & wait",
        Duration::from_secs(60),
        CancelToken::new(),
    )
    .await;
    wait_for_members(pgid, 3).await;
    handle.abort();
    assert!(handle.await.unwrap_err().is_cancelled());
    for _ in 0..100 {
        if process_group_members(pgid).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(process_group_members(pgid), Vec::<i32>::new());
    // The script file went with the dropped future too.
    assert_eq!(
        std::fs::read_dir(dir.path().join("scripts"))
            .unwrap()
            .count(),
        0
    );
}
