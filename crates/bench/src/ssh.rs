//! `ballast-bench ssh`: `echo ok` on N SSH targets through a real `ballast serve`, side by side
//! with `ansible all -m command -a 'echo ok' -f F` on the same inventory.
//!
//! The targets are N loopback aliases (`127.0.0.2`, `127.0.0.3`, …; Linux routes all of
//! 127.0.0.0/8 to `lo`) of one real OpenSSH `sshd` started here. It is configured like the ssh
//! crate's test kit (ed25519 host and client keys from `ssh-keygen`, key authentication only, as
//! the current user) except that it listens on `0.0.0.0` so that every alias reaches it. Each
//! alias is a distinct host to both tools: its own host-key pin in Ballast, its own inventory
//! entry (and SSH connection) in Ansible.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::server::{self, Server, percentile, secs};

pub struct Args {
    pub ballast: Option<PathBuf>,
    pub targets: usize,
    pub rounds: usize,
    pub ansible: Option<PathBuf>,
    pub forks: usize,
    pub poll: Duration,
    /// The account the targets log in as (default: the current user).
    pub user: Option<String>,
}

/// An `sshd -D` listening on all addresses; killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
    user: String,
    host_key_line: String,
    client_key_pem: String,
    client_key_path: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(dir: &Path, name: &str) -> anyhow::Result<(String, String)> {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .context("ssh-keygen (Debian package openssh-client)")?;
    if !out.status.success() {
        bail!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    }
    let pem = std::fs::read_to_string(&path)?;
    let line = std::fs::read_to_string(dir.join(format!("{name}.pub")))?;
    let line = line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    Ok((pem, line))
}

fn start_sshd(dir: &Path, user: Option<&str>) -> anyhow::Result<Sshd> {
    let sshd = "/usr/sbin/sshd";
    if !Path::new(sshd).exists() {
        bail!("{sshd} not found: install the Debian package openssh-server");
    }
    std::fs::create_dir_all("/run/sshd")?;
    let (_, host_key_line) = keygen(dir, "host_ed25519")?;
    let (client_key_pem, client_line) = keygen(dir, "client_ed25519")?;
    std::fs::write(dir.join("authorized_keys"), format!("{client_line}\n"))?;
    if user.is_some() {
        // sshd reads authorized_keys as the target account.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(
            dir.join("authorized_keys"),
            std::fs::Permissions::from_mode(0o644),
        )?;
    }
    let user = match user {
        Some(u) => u.to_string(),
        None => String::from_utf8_lossy(&Command::new("id").arg("-un").output()?.stdout)
            .trim()
            .to_string(),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let d = dir.display();
    let config = format!(
        "Port {port}\n\
         ListenAddress 0.0.0.0\n\
         HostKey {d}/host_ed25519\n\
         PidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\n\
         StrictModes no\n\
         UsePAM no\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         MaxStartups 1000:30:1000\n\
         MaxSessions 100\n\
         MaxAuthTries 20\n\
         LoginGraceTime 30\n\
         UseDNS no\n\
         PrintMotd no\n\
         PermitUserEnvironment no\n\
         Subsystem sftp internal-sftp\n"
    );
    let config_path = dir.join("sshd_config");
    std::fs::write(&config_path, config)?;
    let log = std::fs::File::create(dir.join("sshd.log"))?;
    let mut child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let addr = SocketAddr::from(([127, 0, 0, 2], port));
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            bail!(
                "sshd exited ({st}): {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            );
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if t.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            bail!("sshd not accepting on {addr} in 15 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Sshd {
        child,
        port,
        user,
        host_key_line,
        client_key_pem,
        client_key_path: dir.join("client_ed25519"),
    })
}

/// `127.0.0.2`, `127.0.0.3`, … (`n` of them, at most 65,000).
fn aliases(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let k = u32::try_from(i).unwrap_or(0) + 2;
            Ipv4Addr::from(0x7f00_0000 | k).to_string()
        })
        .collect()
}

/// Runs Ansible `rounds` times on the inventory; returns the wall times.
fn ansible_rounds(
    ansible: &Path,
    dir: &Path,
    sshd: &Sshd,
    hosts: &[String],
    forks: usize,
    rounds: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut inv = String::from("[bench]\n");
    for h in hosts {
        let _ = writeln!(inv, "{h} ansible_port={}", sshd.port);
    }
    let _ = write!(
        inv,
        "\n[bench:vars]\nansible_user={}\nansible_ssh_private_key_file={}\nansible_python_interpreter=/usr/bin/python3\n",
        sshd.user,
        sshd.client_key_path.display()
    );
    let inv_path = dir.join("inventory.ini");
    std::fs::write(&inv_path, inv)?;
    let cfg_path = dir.join("ansible.cfg");
    std::fs::write(&cfg_path, "[defaults]\nhost_key_checking = False\n")?;
    let mut times = Vec::new();
    for r in 0..rounds {
        let t = Instant::now();
        let out = Command::new(ansible)
            .args(["all", "-i"])
            .arg(&inv_path)
            .args(["-m", "command", "-a", "echo ok", "-f", &forks.to_string()])
            .env("ANSIBLE_CONFIG", &cfg_path)
            .env("ANSIBLE_HOST_KEY_CHECKING", "False")
            .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-tmp"))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", ansible.display()))?;
        let d = t.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        let ok = text.lines().filter(|l| l.contains("rc=0 >>")).count();
        println!(
            "ansible round {}: {} s, exit {}, {ok} of {} hosts rc=0",
            r + 1,
            secs(d),
            out.status.code().unwrap_or(-1),
            hosts.len()
        );
        if !out.status.success() || ok != hosts.len() {
            let tail: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains("rc=0"))
                .take(5)
                .collect();
            bail!(
                "ansible failed: {}\n{}",
                tail.join("\n"),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        times.push(d);
    }
    Ok(times)
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let ballast = server::ballast_path(a.ballast.clone())?;
    if a.targets == 0 || a.targets > 60_000 {
        bail!("--targets must be 1..60000");
    }
    println!("{}", server::machine_note());
    let dir = tempfile::Builder::new()
        .prefix("ballast-bench-ssh-")
        .tempdir()?;
    let sshd = start_sshd(dir.path(), a.user.as_deref())?;
    let hosts = aliases(a.targets);
    let server = Server::start(&ballast).await?;
    let admin = server.admin_token()?;
    let op = server.operator_token()?;
    server
        .post(
            &admin,
            "/api/v1/ssh/credentials",
            &json!({"name": sshd.user, "username": sshd.user, "kind": "key", "secret": sshd.client_key_pem}),
        )
        .await?;
    for h in &hosts {
        server
            .post(
                &admin,
                "/api/v1/ssh/host-keys",
                &json!({"host": h, "port": sshd.port, "key_line": sshd.host_key_line}),
            )
            .await?;
    }
    let targets = hosts
        .iter()
        .map(|h| format!("ssh://{}@{h}:{}", sshd.user, sshd.port))
        .collect::<Vec<_>>()
        .join(",");
    let mut ballast_times = Vec::new();
    for r in 0..a.rounds {
        let (d, detail) = server
            .exec_and_wait(&op, &targets, "echo ok", a.poll, Duration::from_secs(600))
            .await?;
        let ok = server::count(&detail, "succeeded");
        println!(
            "ballast round {}: {} s, run {}, {ok} of {} tasks succeeded ({})",
            r + 1,
            secs(d),
            detail["run"]["status"],
            a.targets,
            server::timeline(&detail)
        );
        if ok != a.targets as u64 {
            bail!("ballast round {}: {}", r + 1, server::failures(&detail));
        }
        ballast_times.push(d);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    ballast_times.sort();
    let b50 = percentile(&ballast_times, 0.5);
    println!(
        "RESULT ballast ssh targets={} rounds={} p50={} s min={} s max={} s",
        a.targets,
        a.rounds,
        secs(b50),
        secs(ballast_times.first().copied().unwrap_or_default()),
        secs(ballast_times.last().copied().unwrap_or_default())
    );
    drop(server);
    if let Some(ansible) = &a.ansible {
        let mut t = ansible_rounds(ansible, dir.path(), &sshd, &hosts, a.forks, a.rounds)?;
        t.sort();
        let a50 = percentile(&t, 0.5);
        println!(
            "RESULT ansible targets={} forks={} rounds={} p50={} s min={} s max={} s; ansible/ballast (p50) = {:.1}x",
            a.targets,
            a.forks,
            a.rounds,
            secs(a50),
            secs(t.first().copied().unwrap_or_default()),
            secs(t.last().copied().unwrap_or_default()),
            a50.as_secs_f64() / b50.as_secs_f64().max(1e-9)
        );
    } else {
        println!("(no --ansible given: Ansible not run)");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_distinct_loopback_addresses_skipping_127_0_0_1() {
        let a = aliases(300);
        assert_eq!(a[0], "127.0.0.2");
        assert_eq!(a[253], "127.0.0.255");
        assert_eq!(a[254], "127.0.1.0");
        let set: std::collections::BTreeSet<_> = a.iter().collect();
        assert_eq!(set.len(), 300);
        assert!(
            a.iter()
                .all(|h| h.parse::<Ipv4Addr>().unwrap().is_loopback())
        );
    }
}
