//! The agent wire protocol: frames over one TLS stream, each a `u32` big-endian length followed by
//! that many bytes of JSON (at most [`MAX_FRAME`]). Messages are tagged by `"type"`.
//!
//! Enrolment connection (no client certificate): agent `enroll` → server `enrolled` or `refused`,
//! then the server closes. Agent connection (client certificate): agent `hello` → server
//! `welcome` or `refused`; then the server sends `task` / `cancel` (and `refused` when the agent
//! is revoked) and the agent sends `output`, `done`, `error` and `heartbeat`.

use ballast_runner::{Outcome, Stream, TaskSpec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Version of this protocol. A peer speaking another version is refused with
/// `agent.version_mismatch`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame body accepted or sent: 4 MiB.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Version of this agent build (the crate version), reported in `hello` / `enroll` and facts.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One mounted filesystem.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Disk {
    /// Mount point.
    pub mount: String,
    /// Filesystem type (`ext4`, `xfs`, `overlay`, …).
    pub fs: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Bytes available to unprivileged users.
    pub avail_bytes: u64,
}

/// What an agent reports about its host. Fields the agent could not determine are empty / 0.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Facts {
    /// Host name.
    pub hostname: String,
    /// `PRETTY_NAME` from `/etc/os-release`.
    pub os: String,
    /// Kernel release.
    pub kernel: String,
    /// Logical CPUs.
    pub cpus: u32,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Mounted filesystems (pseudo filesystems left out).
    pub disks: Vec<Disk>,
    /// Addresses in CIDR notation, loopback left out.
    pub addresses: Vec<String>,
    /// The agent's version.
    pub agent_version: String,
}

/// Agent → server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMsg {
    /// First and only message of an enrolment connection (no client certificate).
    Enroll {
        /// The token's secret (the server hashes it and redeems the hash).
        token_secret: String,
        /// CSR for the agent's new key (PEM).
        csr_pem: String,
        /// Host facts.
        facts: Facts,
        /// Agent version.
        version: String,
        /// Protocol version ([`PROTOCOL_VERSION`]).
        protocol: u32,
    },
    /// First message of an agent (mTLS) connection.
    Hello {
        /// Agent version.
        version: String,
        /// Protocol version ([`PROTOCOL_VERSION`]).
        protocol: u32,
        /// Host facts.
        facts: Facts,
    },
    /// A piece of a task's output.
    Output {
        /// The task.
        task_id: String,
        /// Which stream.
        stream: Stream,
        /// The bytes, base64 (standard alphabet, padded).
        data_b64: String,
    },
    /// The task ran to its end (success or not).
    Done {
        /// The task.
        task_id: String,
        /// The runner's outcome.
        outcome: Outcome,
    },
    /// The task could not be started.
    Error {
        /// The task.
        task_id: String,
        /// Stable code (the runner's, e.g. `RUNNER-003`).
        code: String,
        /// Message.
        message: String,
    },
    /// Liveness signal, every heartbeat interval.
    Heartbeat {
        /// Increasing counter.
        seq: u64,
    },
}

/// Server → agent.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Enrolment accepted: the agent's certificate and the CA certificate.
    Enrolled {
        /// The agent's id (its certificate's CN).
        agent_id: String,
        /// The agent's certificate (PEM).
        cert_pem: String,
        /// The CA certificate (PEM).
        ca_pem: String,
    },
    /// Agent admitted.
    Welcome {
        /// The agent's id.
        agent_id: String,
        /// Heartbeat interval the server expects, in seconds (it drops the agent after 3).
        heartbeat_secs: u64,
    },
    /// Run a task.
    Task {
        /// Server-chosen id, unique per agent.
        task_id: String,
        /// What to run.
        spec: TaskSpec,
    },
    /// Cancel a running task.
    Cancel {
        /// The task.
        task_id: String,
    },
    /// Answer to a `heartbeat`, so the agent notices a dead server within 3 intervals.
    HeartbeatAck {
        /// The heartbeat's `seq`.
        seq: u64,
    },
    /// Refusal; the server closes the connection after it.
    Refused {
        /// Stable code: `agent.revoked`, `agent.unknown`, `agent.token_invalid`,
        /// `agent.version_mismatch`, `agent.protocol`, `agent.csr_invalid`, `agent.internal`.
        code: String,
        /// Chinese text.
        message_zh: String,
        /// English text.
        message_en: String,
    },
}

/// Framing errors.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The peer announced (or we tried to send) a frame larger than [`MAX_FRAME`].
    #[error("agent.frame_too_large: frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Announced length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The body is not a valid message.
    #[error("agent.frame_invalid: malformed message: {0}")]
    Json(#[from] serde_json::Error),
    /// The stream ended in the middle of a frame.
    #[error("agent.frame_truncated: connection closed in the middle of a frame")]
    Truncated,
    /// IO error on the stream.
    #[error("agent.io: {0}")]
    Io(#[from] std::io::Error),
}

impl ProtoError {
    /// Stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::FrameTooLarge { .. } => "agent.frame_too_large",
            Self::Json(_) => "agent.frame_invalid",
            Self::Truncated => "agent.frame_truncated",
            Self::Io(_) => "agent.io",
        }
    }
}

/// Serialise `msg` into one complete frame (length prefix + JSON).
///
/// # Errors
/// The body would exceed [`MAX_FRAME`].
pub fn encode_frame<T: Serialize + ?Sized>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    let body = serde_json::to_vec(msg)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|_| body.len() <= MAX_FRAME)
        .ok_or(ProtoError::FrameTooLarge {
            len: body.len(),
            max: MAX_FRAME,
        })?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&body);
    Ok(buf)
}

/// Serialise `msg` and write it as one frame, then flush.
///
/// # Errors
/// The body would exceed [`MAX_FRAME`], or writing failed.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), ProtoError>
where
    W: AsyncWrite + Unpin + ?Sized,
    T: Serialize + ?Sized,
{
    let buf = encode_frame(msg)?;
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Read one frame and decode it. `Ok(None)` when the stream ends cleanly before a frame starts.
/// A length above [`MAX_FRAME`] is refused before anything is allocated.
///
/// # Errors
/// Oversize frame, truncated frame, malformed JSON, or IO error.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, ProtoError>
where
    R: AsyncRead + Unpin + ?Sized,
    T: DeserializeOwned,
{
    let mut len_buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len_buf[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(ProtoError::Truncated)
            };
        }
        got += n;
    }
    let len = usize::try_from(u32::from_be_bytes(len_buf)).unwrap_or(usize::MAX);
    if len > MAX_FRAME {
        return Err(ProtoError::FrameTooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    let mut body = vec![0u8; len];
    match r.read_exact(&mut body).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ProtoError::Truncated);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Some(serde_json::from_slice(&body)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ballast_runner::Interpreter;

    #[tokio::test]
    async fn roundtrip_all_messages() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let msgs = vec![
            ServerMsg::Welcome {
                agent_id: "a".into(),
                heartbeat_secs: 30,
            },
            ServerMsg::Task {
                task_id: "t1".into(),
                spec: TaskSpec::new(Interpreter::Sh, "echo ok"),
            },
            ServerMsg::Cancel {
                task_id: "t1".into(),
            },
        ];
        for m in &msgs {
            write_frame(&mut a, m).await.unwrap();
        }
        drop(a);
        for m in &msgs {
            let got: ServerMsg = read_frame(&mut b).await.unwrap().unwrap();
            assert_eq!(&got, m);
        }
        assert!(read_frame::<_, ServerMsg>(&mut b).await.unwrap().is_none());
    }

    #[test]
    fn wire_shape_is_tagged() {
        let v = serde_json::to_value(AgentMsg::Heartbeat { seq: 7 }).unwrap();
        assert_eq!(v, serde_json::json!({"type": "heartbeat", "seq": 7}));
    }

    #[tokio::test]
    async fn oversize_frame_rejected_without_reading_body() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let len = u32::try_from(MAX_FRAME + 1).unwrap();
        a.write_all(&len.to_be_bytes()).await.unwrap();
        let err = read_frame::<_, AgentMsg>(&mut b).await.unwrap_err();
        assert_eq!(err.code(), "agent.frame_too_large");
        assert!(err.to_string().contains("4194305"));

        // And the writer refuses to produce one.
        let huge = AgentMsg::Output {
            task_id: "t".into(),
            stream: Stream::Stdout,
            data_b64: "A".repeat(MAX_FRAME),
        };
        let err = write_frame(&mut a, &huge).await.unwrap_err();
        assert_eq!(err.code(), "agent.frame_too_large");
    }

    #[tokio::test]
    async fn truncated_and_malformed() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 10, b'{']).await.unwrap();
        drop(a);
        let err = read_frame::<_, AgentMsg>(&mut b).await.unwrap_err();
        assert_eq!(err.code(), "agent.frame_truncated");

        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 2, b'{', b'}']).await.unwrap();
        let err = read_frame::<_, AgentMsg>(&mut b).await.unwrap_err();
        assert_eq!(err.code(), "agent.frame_invalid");
    }
}
