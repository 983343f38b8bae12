//! A real OpenSSH server for tests and benchmarks (feature `testkit`).
//!
//! [`Sshd::start`] runs Debian's `/usr/sbin/sshd -D -e -f <config>` on a free `127.0.0.1` port,
//! as the current user, with an ed25519 host key and an ed25519 client key made by `ssh-keygen`
//! in the given directory. Needs the Debian packages `openssh-server` and `openssh-client`.
//! The server is killed when the [`Sshd`] is dropped.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::types::{HostKeyPolicy, SshAuth, SshTarget};

const SSHD: &str = "/usr/sbin/sshd";

/// A running `sshd`.
#[derive(Debug)]
pub struct Sshd {
    pub port: u16,
    /// The server's host key as an OpenSSH public-key line (`ssh-ed25519 AAAA…`, no comment).
    pub host_key_line: String,
    /// The account the server lets in (the current user).
    pub user: String,
    /// The client private key (OpenSSH format) whose public key is authorized.
    pub client_key_pem: String,
    /// The client public key line.
    pub client_key_line: String,
    /// The directory holding keys, config, pid file and `sshd.log`.
    pub dir: PathBuf,
    child: Child,
}

impl Sshd {
    /// Starts a server whose files live in `dir` (created if missing). Tries a few ports if
    /// another process takes the chosen one first.
    pub fn start(dir: &Path) -> io::Result<Sshd> {
        if !Path::new(SSHD).exists() {
            return Err(io::Error::other(
                "/usr/sbin/sshd not found: install the Debian packages openssh-server and \
                 openssh-client",
            ));
        }
        fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        // sshd's privilege-separation directory (compiled-in path).
        fs::create_dir_all("/run/sshd")?;

        let (_, host_key_line) = keygen(&dir, "host_ed25519")?;
        let (client_key_pem, client_key_line) = keygen(&dir, "client_ed25519")?;
        fs::write(dir.join("authorized_keys"), format!("{client_key_line}\n"))?;
        let user = current_user()?;

        let mut last_err = io::Error::other("sshd did not start");
        for _ in 0..5 {
            let port = free_port()?;
            match spawn(&dir, port) {
                Ok(child) => {
                    return Ok(Sshd {
                        port,
                        host_key_line: strip_comment(&host_key_line),
                        user,
                        client_key_pem,
                        client_key_line,
                        dir,
                        child,
                    });
                }
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// `user@127.0.0.1:port`.
    pub fn target(&self) -> SshTarget {
        SshTarget::new(self.user.clone(), "127.0.0.1", self.port)
    }

    /// The authorized client key.
    pub fn auth(&self) -> SshAuth {
        SshAuth::PrivateKey {
            pem: self.client_key_pem.clone(),
            passphrase: None,
        }
    }

    /// A policy pinning this server's host key.
    pub fn pinned(&self) -> HostKeyPolicy {
        HostKeyPolicy::Pinned(vec![self.host_key_line.clone()])
    }

    /// What sshd wrote to stderr so far (`-e`), for diagnosing a failing test.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes an ed25519 key pair `dir/name` (+ `.pub`) with `ssh-keygen`, replacing an old one.
/// Returns (private key text, public key line).
pub fn keygen(dir: &Path, name: &str) -> io::Result<(String, String)> {
    let path = dir.join(name);
    let public = dir.join(format!("{name}.pub"));
    let _ = fs::remove_file(&path);
    let _ = fs::remove_file(&public);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let pem = fs::read_to_string(&path)?;
    let line = fs::read_to_string(&public)?.trim().to_string();
    Ok((pem, line))
}

fn strip_comment(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn current_user() -> io::Result<String> {
    let out = Command::new("id").arg("-un").output()?;
    let user = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || user.is_empty() {
        return Err(io::Error::other("cannot tell the current user (id -un)"));
    }
    Ok(user)
}

fn free_port() -> io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn spawn(dir: &Path, port: u16) -> io::Result<Child> {
    let d = dir.display();
    let config = format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
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
    fs::write(&config_path, config)?;
    let log = fs::File::create(dir.join("sshd.log"))?;
    let mut child = Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if let Some(status) = child.try_wait()? {
            let log = fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
            return Err(io::Error::other(format!(
                "sshd exited ({status}) on port {port}: {}",
                log.trim()
            )));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(io::Error::other(format!(
        "sshd did not accept connections on port {port} within 15 s"
    )))
}
