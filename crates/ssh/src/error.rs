//! Errors of an SSH execution, with stable codes and messages in Chinese and English.
//!
//! `target` is always the `user@host:port` the execution was for. A failed *command* (non-zero
//! exit, signal, time-out of the command) is not an error: it is an [`crate::SshOutcome`].

use std::time::Duration;

/// Why an execution did not get to run its command to an outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    /// The TCP connection could not be made (refused, unreachable, name not resolved).
    #[error("ssh.connect: cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },

    /// The server presented a host key that the pinned list does not contain. Refused before
    /// authentication: no credential was sent.
    #[error(
        "ssh.host_key_mismatch: {target} presented host key {presented_sha256}, expected one of [{}]",
        expected.join(", ")
    )]
    HostKeyMismatch {
        target: String,
        /// The pinned keys, as SHA-256 fingerprints.
        expected: Vec<String>,
        presented_sha256: String,
    },

    /// The server refused the credentials, or the private key could not be read.
    #[error("ssh.auth: authentication as {user} on {target} failed: {reason}")]
    Auth {
        target: String,
        user: String,
        reason: String,
    },

    /// The connection (TCP + handshake + authentication) did not complete within
    /// `ExecLimits::connect_timeout`.
    #[error("ssh.timeout: {target} did not complete the connection within {after:?}")]
    Timeout { target: String, after: Duration },

    /// The session channel could not be opened or the command could not be started.
    #[error("ssh.channel: channel to {target} failed: {reason}")]
    Channel { target: String, reason: String },

    /// The SSH protocol failed (handshake, no common algorithm, connection lost).
    #[error("ssh.protocol: SSH with {target} failed: {reason}")]
    Protocol { target: String, reason: String },

    /// A key given as text is not a valid OpenSSH public key or fingerprint.
    #[error("ssh.invalid_key: {reason}")]
    InvalidKey { reason: String },
}

impl SshError {
    /// The stable code (`ssh.host_key_mismatch`, …).
    pub fn code(&self) -> &'static str {
        match self {
            SshError::Connect { .. } => "ssh.connect",
            SshError::HostKeyMismatch { .. } => "ssh.host_key_mismatch",
            SshError::Auth { .. } => "ssh.auth",
            SshError::Timeout { .. } => "ssh.timeout",
            SshError::Channel { .. } => "ssh.channel",
            SshError::Protocol { .. } => "ssh.protocol",
            SshError::InvalidKey { .. } => "ssh.invalid_key",
        }
    }

    /// The host this error is about (`user@host:port`), if any.
    pub fn target(&self) -> Option<&str> {
        match self {
            SshError::Connect { target, .. }
            | SshError::HostKeyMismatch { target, .. }
            | SshError::Auth { target, .. }
            | SshError::Timeout { target, .. }
            | SshError::Channel { target, .. }
            | SshError::Protocol { target, .. } => Some(target),
            SshError::InvalidKey { .. } => None,
        }
    }

    /// English message for a person, naming the host.
    pub fn message_en(&self) -> String {
        match self {
            SshError::Connect { target, reason } => {
                format!("Cannot connect to {target}: {reason}.")
            }
            SshError::HostKeyMismatch {
                target,
                expected,
                presented_sha256,
            } => format!(
                "Host key of {target} does not match: it presented {presented_sha256}, the pinned \
                 keys are {}. The connection was refused before authentication. If the host was \
                 reinstalled, verify the new key out of band and update the pin.",
                list_or_none(expected, "none")
            ),
            SshError::Auth {
                target,
                user,
                reason,
            } => format!("Authentication as {user} on {target} failed: {reason}."),
            SshError::Timeout { target, after } => format!(
                "{target} did not complete the SSH connection within {} s.",
                secs(after)
            ),
            SshError::Channel { target, reason } => {
                format!("Could not start the command on {target}: {reason}.")
            }
            SshError::Protocol { target, reason } => {
                format!("SSH protocol error with {target}: {reason}.")
            }
            SshError::InvalidKey { reason } => format!("Invalid SSH key: {reason}."),
        }
    }

    /// Chinese message for a person, naming the host.
    pub fn message_zh(&self) -> String {
        match self {
            SshError::Connect { target, reason } => format!("无法连接 {target}：{reason}。"),
            SshError::HostKeyMismatch {
                target,
                expected,
                presented_sha256,
            } => format!(
                "{target} 的主机密钥不匹配：对方出示 {presented_sha256}，已固定的密钥为 {}。\
                 连接已在认证前拒绝。如主机已重装，请通过其他可信渠道核实新密钥后更新固定值。",
                list_or_none(expected, "无")
            ),
            SshError::Auth {
                target,
                user,
                reason,
            } => format!("以 {user} 身份在 {target} 上认证失败：{reason}。"),
            SshError::Timeout { target, after } => {
                format!("{target} 未在 {} 秒内完成 SSH 连接。", secs(after))
            }
            SshError::Channel { target, reason } => {
                format!("无法在 {target} 上启动命令：{reason}。")
            }
            SshError::Protocol { target, reason } => {
                format!("与 {target} 的 SSH 协议出错：{reason}。")
            }
            SshError::InvalidKey { reason } => format!("SSH 密钥无效：{reason}。"),
        }
    }
}

fn list_or_none(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_string()
    } else {
        items.join(", ")
    }
}

fn secs(d: &Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_name_the_host() {
        let all = [
            SshError::Connect {
                target: "root@h:22".into(),
                reason: "refused".into(),
            },
            SshError::HostKeyMismatch {
                target: "root@h:22".into(),
                expected: vec!["SHA256:aaa".into()],
                presented_sha256: "SHA256:bbb".into(),
            },
            SshError::Auth {
                target: "root@h:22".into(),
                user: "root".into(),
                reason: "refused".into(),
            },
            SshError::Timeout {
                target: "root@h:22".into(),
                after: Duration::from_millis(1500),
            },
            SshError::Channel {
                target: "root@h:22".into(),
                reason: "x".into(),
            },
            SshError::Protocol {
                target: "root@h:22".into(),
                reason: "x".into(),
            },
        ];
        let mut codes: Vec<&str> = all.iter().map(SshError::code).collect();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for e in &all {
            assert!(e.code().starts_with("ssh."));
            assert!(e.to_string().starts_with(e.code()), "{e}");
            assert!(e.message_en().contains("root@h:22"), "{}", e.message_en());
            assert!(e.message_zh().contains("root@h:22"), "{}", e.message_zh());
            assert_eq!(e.target(), Some("root@h:22"));
        }
        let mismatch = &all[1];
        for m in [
            mismatch.message_en(),
            mismatch.message_zh(),
            mismatch.to_string(),
        ] {
            assert!(m.contains("SHA256:aaa") && m.contains("SHA256:bbb"), "{m}");
        }
        assert!(all[3].message_en().contains("1.5 s"));
    }
}
