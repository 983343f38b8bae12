//! The values a caller passes to [`crate::run`] and gets back.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where to connect, and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SshTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl SshTarget {
    pub fn new(user: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        Self {
            user: user.into(),
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for SshTarget {
    /// `user@host:port`; an IPv6 literal host is bracketed (`root@[::1]:22`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// How to authenticate. `Debug` never prints the secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum SshAuth {
    Password(String),
    /// An OpenSSH (or PEM/PKCS#8/PuTTY) private key, its text, and its passphrase if encrypted.
    PrivateKey {
        pem: String,
        passphrase: Option<String>,
    },
}

impl fmt::Debug for SshAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshAuth::Password(_) => f.write_str("Password(<redacted>)"),
            SshAuth::PrivateKey { passphrase, .. } => f
                .debug_struct("PrivateKey")
                .field("pem", &"<redacted>")
                .field("passphrase", &passphrase.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// Which host keys to accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKeyPolicy {
    /// Accept only these keys. Each entry is an OpenSSH public-key line
    /// (`ssh-ed25519 AAAA… [comment]`) or a SHA-256 fingerprint (`SHA256:…`, as `ssh-keygen -l`
    /// prints it). An empty list accepts nothing.
    Pinned(Vec<String>),
    /// Accept any key; the outcome carries the presented key so the caller can pin it.
    TrustOnFirstUse,
}

/// Time and size limits of one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    /// TCP connect + SSH handshake + authentication.
    pub connect_timeout: Duration,
    /// From the channel opening until the command's channel closes. When it elapses the client
    /// asks the server to send TERM (OpenSSH refuses this for root sessions), closes the channel
    /// and reports `timed_out`. The remote process may outlive this: for a hard limit on the host,
    /// wrap the command in `timeout` ([`crate::script_command`] does).
    pub timeout: Duration,
    /// At most this many bytes per stream (stdout, stderr) are delivered as chunks; the rest is
    /// read and discarded, and the outcome says `truncated`.
    pub output_cap_bytes: u64,
}

impl Default for ExecLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
            output_cap_bytes: 10 * 1024 * 1024,
        }
    }
}

/// How one execution ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshOutcome {
    /// The command's exit status, if the server reported one.
    pub exit_code: Option<u32>,
    /// The signal that ended the command (`"TERM"`, `"KILL"`, …), if the server reported one.
    pub exit_signal: Option<String>,
    /// `ExecLimits::timeout` elapsed before the channel closed.
    pub timed_out: bool,
    /// At least one stream went over `ExecLimits::output_cap_bytes`.
    pub truncated: bool,
    /// Bytes the command wrote to stdout, all of them (delivered or discarded over the cap).
    pub stdout_bytes: u64,
    /// Bytes the command wrote to stderr, all of them (delivered or discarded over the cap).
    pub stderr_bytes: u64,
    /// The host key the server presented, as an OpenSSH public-key line (`ssh-ed25519 AAAA…`).
    pub host_key: String,
    /// Its SHA-256 fingerprint (`SHA256:…`).
    pub host_key_sha256: String,
}

impl SshOutcome {
    /// Exit status 0, no signal, no time-out.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && self.exit_signal.is_none() && !self.timed_out
    }
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A piece of output, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub stream: Stream,
    pub data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_display() {
        assert_eq!(
            SshTarget::new("root", "10.0.0.1", 22).to_string(),
            "root@10.0.0.1:22"
        );
        assert_eq!(
            SshTarget::new("ops", "::1", 2222).to_string(),
            "ops@[::1]:2222"
        );
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let p = format!("{:?}", SshAuth::Password("hunter2".into()));
        assert!(!p.contains("hunter2"), "{p}");
        let k = format!(
            "{:?}",
            SshAuth::PrivateKey {
                pem: "-----BEGIN OPENSSH PRIVATE KEY-----secret".into(),
                passphrase: Some("pass-phrase".into()),
            }
        );
        assert!(!k.contains("secret") && !k.contains("pass-phrase"), "{k}");
        assert!(k.contains("PrivateKey"), "{k}");
    }
}
