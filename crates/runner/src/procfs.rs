//! Tiny `/proc` helpers: which live processes belong to a process group, and which processes
//! hold a pipe open for writing.
//!
//! These scan `/proc` with blocking file IO; async code must call them through
//! `tokio::task::spawn_blocking` (as the runner does), never directly on a runtime worker.

use std::fs;

/// `(pid, process group, state)` of one `/proc/<pid>/stat` text, or `None` if it does not parse.
/// The command name may contain spaces and parentheses, so fields are read after the last `)`.
fn parse_stat(text: &str) -> Option<(i32, i32, char)> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((pid, pgrp, state))
}

/// PIDs of the live (not zombie, not dead) processes whose process group is `pgid`.
/// Zombies are left out: they hold no resources but a PID-table slot, and on hosts whose PID 1
/// does not reap orphans they can stay for a long time.
#[must_use]
pub fn process_group_members(pgid: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(text) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((pid, pgrp, state)) = parse_stat(&text)
            && pgrp == pgid
            && !matches!(state, 'Z' | 'X' | 'x')
        {
            pids.push(pid);
        }
    }
    pids
}

/// The identity of an open pipe as `/proc` shows it (`pipe:[<inode>]`), for the file descriptor
/// `fd` of this process; `None` if `fd` is not a pipe or `/proc` is unavailable.
#[must_use]
pub fn pipe_id(fd: i32) -> Option<String> {
    let link = fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let link = link.to_str()?;
    link.starts_with("pipe:[").then(|| link.to_owned())
}

/// Whether the access mode in a `/proc/<pid>/fdinfo/<fd>` text allows writing.
fn fdinfo_writable(text: &str) -> bool {
    text.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        // O_ACCMODE = 3; O_WRONLY = 1, O_RDWR = 2.
        .is_some_and(|flags| flags & 3 != 0)
}

/// PIDs of the processes other than this one that hold one of `pipes` (ids from [`pipe_id`])
/// open for writing: while any of them lives, a reader of the pipe never sees end-of-file.
/// Processes whose `/proc/<pid>/fd` cannot be read (other users) are not found.
#[must_use]
pub fn pipe_writers(pipes: &[String]) -> Vec<i32> {
    if pipes.is_empty() {
        return Vec::new();
    }
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::read_link(fd.path())
                .is_ok_and(|l| l.to_str().is_some_and(|l| pipes.iter().any(|p| p == l)))
                && fs::read_to_string(entry.path().join("fdinfo").join(fd.file_name()))
                    .is_ok_and(|t| fdinfo_writable(&t))
        });
        if holds {
            pids.push(pid);
        }
    }
    pids
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_access_modes() {
        assert!(fdinfo_writable("pos:\t0\nflags:\t02000001\nmnt_id:\t15\n"));
        assert!(fdinfo_writable("pos:\t0\nflags:\t02\n"));
        assert!(!fdinfo_writable("pos:\t0\nflags:\t02000000\n"));
        assert!(!fdinfo_writable("garbage"));
    }

    #[test]
    fn a_child_holding_a_pipe_for_writing_is_found() {
        use std::os::fd::AsRawFd;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let id = pipe_id(out.as_raw_fd()).unwrap();
        assert!(id.starts_with("pipe:["), "{id}");
        let pid = i32::try_from(child.id()).unwrap();
        // Our own read end is not reported; the child's write end is.
        assert_eq!(pipe_writers(std::slice::from_ref(&id)), vec![pid]);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(pipe_writers(&[id]), Vec::<i32>::new());
        assert_eq!(pipe_id(-1), None);
    }

    #[test]
    fn parses_stat_with_odd_command_names() {
        let t = "4242 (a b) c)) S 1 4240 4240 0 -1 4194560 0";
        assert_eq!(parse_stat(t), Some((4242, 4240, 'S')));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn own_group_is_found() {
        let me = i32::try_from(std::process::id()).unwrap();
        let text = fs::read_to_string("/proc/self/stat").unwrap();
        let (_, pgrp, _) = parse_stat(&text).unwrap();
        assert!(process_group_members(pgrp).contains(&me));
    }
}
