//! Host facts: read from `/proc`, `/etc/os-release`, `df -PTB1` and `ip -o addr`. Anything that
//! cannot be read is left empty; nothing here fails or panics.

use std::time::Duration;

use crate::proto::{AGENT_VERSION, Disk, Facts};

/// Filesystem types left out of [`Facts::disks`].
const PSEUDO_FS: &[&str] = &[
    "tmpfs",
    "devtmpfs",
    "squashfs",
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "shm",
    "efivarfs",
    "nsfs",
    "fuse.lxcfs",
    "ramfs",
];

/// Collect this host's facts.
pub async fn collect() -> Facts {
    let hostname = read_trim("/proc/sys/kernel/hostname").await;
    let kernel = read_trim("/proc/sys/kernel/osrelease").await;
    let os = tokio::fs::read_to_string("/etc/os-release")
        .await
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok())
        .unwrap_or(0);
    let memory_bytes = tokio::fs::read_to_string("/proc/meminfo")
        .await
        .map(|t| parse_meminfo(&t))
        .unwrap_or(0);
    let disks = command_output("df", &["-PTB1"])
        .await
        .map(|t| parse_df(&t))
        .unwrap_or_default();
    let addresses = command_output("ip", &["-o", "addr", "show"])
        .await
        .map(|t| parse_ip_addr(&t))
        .unwrap_or_default();
    Facts {
        hostname,
        os,
        kernel,
        cpus,
        memory_bytes,
        disks,
        addresses,
        agent_version: AGENT_VERSION.to_owned(),
    }
}

async fn read_trim(path: &str) -> String {
    tokio::fs::read_to_string(path)
        .await
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Stdout of a command (even when it exits non-zero, as `df` does when one mount is unreadable),
/// or `None` if it cannot run within 5 s.
async fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(5), child)
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `PRETTY_NAME` (else `NAME`) from an os-release text.
#[must_use]
pub fn parse_os_release(text: &str) -> String {
    let mut name = String::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_owned();
        match k.trim() {
            "PRETTY_NAME" => return v,
            "NAME" => name = v,
            _ => {}
        }
    }
    name
}

/// `MemTotal` in bytes from a `/proc/meminfo` text.
#[must_use]
pub fn parse_meminfo(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb.saturating_mul(1024))
}

/// Parse `df -PTB1` output: `Filesystem Type 1-blocks Used Available Capacity Mounted-on`.
#[must_use]
pub fn parse_df(text: &str) -> Vec<Disk> {
    let mut disks = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 7 {
            continue;
        }
        let fs = cols[1];
        if PSEUDO_FS.contains(&fs) {
            continue;
        }
        let (Ok(size), Ok(avail)) = (cols[2].parse::<u64>(), cols[4].parse::<u64>()) else {
            continue;
        };
        disks.push(Disk {
            mount: cols[6..].join(" "),
            fs: fs.to_owned(),
            size_bytes: size,
            avail_bytes: avail,
        });
    }
    disks
}

/// Parse `ip -o addr show`: the CIDR address of every `inet`/`inet6` line, loopback and
/// host-scope addresses left out.
#[must_use]
pub fn parse_ip_addr(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let Some(pos) = cols.iter().position(|c| *c == "inet" || *c == "inet6") else {
            continue;
        };
        let Some(addr) = cols.get(pos + 1) else {
            continue;
        };
        let scope_host = cols
            .iter()
            .position(|c| *c == "scope")
            .and_then(|i| cols.get(i + 1))
            .is_some_and(|s| *s == "host");
        if cols.get(1) == Some(&"lo") || scope_host {
            continue;
        }
        out.push((*addr).to_owned());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(
            parse_os_release("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 13\"\n"),
            "Debian GNU/Linux 13"
        );
        assert_eq!(parse_os_release("NAME=Alpine\n"), "Alpine");
        assert_eq!(parse_os_release("garbage"), "");
        assert_eq!(
            parse_meminfo("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            16_777_216
        );
        assert_eq!(parse_meminfo(""), 0);
        let df = "Filesystem Type 1-B Used Avail Cap Mounted on\n\
                  /dev/sda1 ext4 1000 400 600 40% /\n\
                  tmpfs tmpfs 10 0 10 0% /run\n\
                  /dev/sdb1 xfs 2000 0 2000 0% /data dir\n\
                  broken line\n";
        let d = parse_df(df);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].mount, "/");
        assert_eq!(d[0].avail_bytes, 600);
        assert_eq!(d[1].mount, "/data dir");
        let ip = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                  2: eth0    inet 10.1.2.3/24 brd 10.1.2.255 scope global eth0\n\
                  2: eth0    inet6 fe80::1/64 scope link \n";
        assert_eq!(parse_ip_addr(ip), vec!["10.1.2.3/24", "fe80::1/64"]);
    }

    #[tokio::test]
    async fn collect_on_this_host() {
        let f = collect().await;
        assert!(!f.hostname.is_empty());
        assert!(!f.kernel.is_empty());
        assert!(f.cpus >= 1);
        assert!(f.memory_bytes > 0);
        assert_eq!(f.agent_version, AGENT_VERSION);
    }
}
