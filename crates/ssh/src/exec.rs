//! One command on one host.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate, decode_secret_key};
use russh::{ChannelMsg, Disconnect, Sig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};

use crate::error::SshError;
use crate::hostkey::{Checker, key_fingerprint, key_line};
use crate::types::{Chunk, ExecLimits, HostKeyPolicy, SshAuth, SshOutcome, SshTarget, Stream};

/// Bound on the polite clean-up steps (signal, close, disconnect) after the work is done.
const CLEANUP: Duration = Duration::from_secs(2);

/// Runs `command` on `target` and streams its output to `out`.
///
/// 1. Checks `policy` (invalid pinned entries are refused before connecting) and reads the private
///    key (an unreadable key is an `Auth` error, before connecting).
/// 2. Within `limits.connect_timeout`: TCP connect, SSH handshake — the host key is checked in the
///    handshake and a key outside the pinned list ends the connection *before* authentication with
///    [`SshError::HostKeyMismatch`] — and authentication.
/// 3. Within `limits.timeout`: opens a session channel, executes `command` (the remote login shell
///    parses it; quote arguments with [`crate::shell_quote`]), writes `stdin` and then EOF (EOF at
///    once when `stdin` is `None`), and forwards output as it arrives, at most
///    `limits.output_cap_bytes` per stream; the rest is read and discarded. When the time is up the
///    client requests a TERM signal (OpenSSH ignores it for root), closes the channel and reports
///    `timed_out`; only a remote `timeout` wrapper ([`crate::script_command`]) is sure to stop
///    the remote processes.
///
/// A command that fails (non-zero exit, signal, time-out) is an `Ok` outcome. If the receiver of
/// `out` is dropped, output is still read (and counted) but no longer delivered.
pub async fn run(
    target: &SshTarget,
    auth: &SshAuth,
    policy: &HostKeyPolicy,
    command: &str,
    stdin: Option<Vec<u8>>,
    limits: &ExecLimits,
    out: mpsc::Sender<Chunk>,
) -> Result<SshOutcome, SshError> {
    let name = target.to_string();
    let checker = Checker::new(policy)?;
    let key = match auth {
        SshAuth::Password(_) => None,
        SshAuth::PrivateKey { pem, passphrase } => Some(
            decode_secret_key(pem, passphrase.as_deref()).map_err(|e| SshError::Auth {
                target: name.clone(),
                user: target.user.clone(),
                reason: format!("cannot read the private key: {e}"),
            })?,
        ),
    };

    let presented: Arc<Mutex<Option<Presented>>> = Arc::new(Mutex::new(None));
    let connecting = connect_and_authenticate(target, &name, auth, key, &checker, &presented);
    let handle = match timeout(limits.connect_timeout, connecting).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(SshError::Timeout {
                target: name,
                after: limits.connect_timeout,
            });
        }
    };
    let Some(host_key) = presented.lock().ok().and_then(|g| g.clone()) else {
        return Err(SshError::Protocol {
            target: name,
            reason: "the server presented no host key".into(),
        });
    };

    let result = execute(&handle, &name, command, stdin, limits, out, host_key).await;
    let _ = timeout(
        CLEANUP,
        handle.disconnect(Disconnect::ByApplication, "", "en"),
    )
    .await;
    result
}

#[derive(Debug, Clone)]
struct Presented {
    line: String,
    sha256: String,
}

struct ClientHandler {
    checker: Checker,
    presented: Arc<Mutex<Option<Presented>>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    /// A host certificate is judged by its public key (the certificate authority is not
    /// consulted).
    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = presented.public_key();
        let key = &key;
        let sha256 = key_fingerprint(key);
        let accepted = self.checker.accepts(&sha256);
        if let Ok(mut slot) = self.presented.lock() {
            *slot = Some(Presented {
                line: key_line(key),
                sha256,
            });
        }
        Ok(accepted)
    }
}

async fn connect_and_authenticate(
    target: &SshTarget,
    name: &str,
    auth: &SshAuth,
    key: Option<PrivateKey>,
    checker: &Checker,
    presented: &Arc<Mutex<Option<Presented>>>,
) -> Result<Handle<ClientHandler>, SshError> {
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| SshError::Connect {
            target: name.to_string(),
            reason: e.to_string(),
        })?;
    let _ = stream.set_nodelay(true);

    let config = Arc::new(client::Config::default());
    let handler = ClientHandler {
        checker: checker.clone(),
        presented: Arc::clone(presented),
    };
    let mut handle = match client::connect_stream(config, stream, handler).await {
        Ok(h) => h,
        Err(e) => {
            let seen = presented.lock().ok().and_then(|g| g.clone());
            if let Some(p) = seen
                && !checker.accepts(&p.sha256)
            {
                return Err(SshError::HostKeyMismatch {
                    target: name.to_string(),
                    expected: checker.expected(),
                    presented_sha256: p.sha256,
                });
            }
            return Err(protocol(name, &e));
        }
    };

    let auth_err = |reason: String| SshError::Auth {
        target: name.to_string(),
        user: target.user.clone(),
        reason,
    };
    let result = match (auth, key) {
        (SshAuth::Password(password), _) => handle
            .authenticate_password(target.user.clone(), password.clone())
            .await
            .map_err(|e| protocol(name, &e))?,
        (SshAuth::PrivateKey { .. }, Some(key)) => {
            let hash = if key.algorithm().is_rsa() {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(|e| protocol(name, &e))?
                    .flatten()
            } else {
                None
            };
            handle
                .authenticate_publickey(
                    target.user.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
                .map_err(|e| protocol(name, &e))?
        }
        (SshAuth::PrivateKey { .. }, None) => {
            return Err(auth_err("no private key".into()));
        }
    };
    match result {
        AuthResult::Success => Ok(handle),
        AuthResult::Failure {
            remaining_methods,
            partial_success,
        } => {
            let methods: Vec<&'static str> = remaining_methods
                .iter()
                .map(<&'static str>::from)
                .collect::<Vec<_>>();
            let what = match auth {
                SshAuth::Password(_) => "password",
                SshAuth::PrivateKey { .. } => "key",
            };
            let reason = if partial_success {
                format!("the server wants a further method ({})", methods.join(", "))
            } else if methods.is_empty() {
                format!("the server refused the {what}")
            } else {
                format!(
                    "the server refused the {what}; it accepts: {}",
                    methods.join(", ")
                )
            };
            Err(auth_err(reason))
        }
    }
}

fn protocol(name: &str, e: &russh::Error) -> SshError {
    match e {
        russh::Error::IO(io) => SshError::Protocol {
            target: name.to_string(),
            reason: format!("connection lost: {io}"),
        },
        other => SshError::Protocol {
            target: name.to_string(),
            reason: other.to_string(),
        },
    }
}

/// What the read loop has seen so far.
#[derive(Default)]
struct Acc {
    exit_code: Option<u32>,
    exit_signal: Option<String>,
    truncated: bool,
    stdout_bytes: u64,
    stderr_bytes: u64,
    started: bool,
}

impl Acc {
    /// Counts `data` and returns the part still under the cap.
    fn admit<'a>(&mut self, stream: Stream, data: &'a [u8], cap: u64) -> &'a [u8] {
        let seen = match stream {
            Stream::Stdout => &mut self.stdout_bytes,
            Stream::Stderr => &mut self.stderr_bytes,
        };
        let before = *seen;
        *seen = seen.saturating_add(data.len() as u64);
        let room = cap.saturating_sub(before);
        let keep = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
        if keep < data.len() {
            self.truncated = true;
        }
        &data[..keep]
    }
}

async fn execute(
    handle: &Handle<ClientHandler>,
    name: &str,
    command: &str,
    stdin: Option<Vec<u8>>,
    limits: &ExecLimits,
    out: mpsc::Sender<Chunk>,
    host_key: Presented,
) -> Result<SshOutcome, SshError> {
    let deadline = Instant::now() + limits.timeout;
    let channel_err = |reason: String| SshError::Channel {
        target: name.to_string(),
        reason,
    };
    let outcome = |acc: &Acc, timed_out: bool| SshOutcome {
        exit_code: acc.exit_code,
        exit_signal: acc.exit_signal.clone(),
        timed_out,
        truncated: acc.truncated,
        stdout_bytes: acc.stdout_bytes,
        stderr_bytes: acc.stderr_bytes,
        host_key: host_key.line.clone(),
        host_key_sha256: host_key.sha256.clone(),
    };

    let opening = async {
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| channel_err(format!("cannot open a session: {e}")))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| channel_err(format!("cannot send the command: {e}")))?;
        Ok::<_, SshError>(channel)
    };
    let mut channel = match timeout_at(deadline, opening).await {
        Ok(r) => r?,
        Err(_) => return Ok(outcome(&Acc::default(), true)),
    };

    let writer = match stdin {
        Some(data) => {
            let mut w = channel.make_writer();
            Some(tokio::spawn(async move {
                // The command may exit without reading all of stdin: a failed write is no error.
                if w.write_all(&data).await.is_ok() {
                    let _ = w.shutdown().await;
                }
            }))
        }
        None => {
            let _ = channel.eof().await;
            None
        }
    };

    let cap = limits.output_cap_bytes;
    let mut acc = Acc::default();
    let reading = async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    let keep = acc.admit(Stream::Stdout, &data, cap);
                    deliver(&out, Stream::Stdout, keep).await;
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    let keep = acc.admit(Stream::Stderr, &data, cap);
                    deliver(&out, Stream::Stderr, keep).await;
                }
                ChannelMsg::ExitStatus { exit_status } => acc.exit_code = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    acc.exit_signal = Some(signal_text(&signal_name));
                }
                ChannelMsg::Success => acc.started = true,
                ChannelMsg::Failure if !acc.started => {
                    return Err(channel_err(
                        "the server refused to execute the command".into(),
                    ));
                }
                ChannelMsg::OpenFailure(f) => {
                    return Err(channel_err(format!(
                        "the server refused the channel: {f:?}"
                    )));
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        Ok(())
    };
    let read = timeout_at(deadline, reading).await;
    if let Some(w) = writer {
        w.abort();
    }
    match read {
        Ok(Ok(())) => Ok(outcome(&acc, false)),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            let _ = timeout(CLEANUP, async {
                let _ = channel.signal(Sig::TERM).await;
                let _ = channel.close().await;
            })
            .await;
            Ok(outcome(&acc, true))
        }
    }
}

async fn deliver(out: &mpsc::Sender<Chunk>, stream: Stream, data: &[u8]) {
    if data.is_empty() || out.is_closed() {
        return;
    }
    let _ = out
        .send(Chunk {
            stream,
            data: data.to_vec(),
        })
        .await;
}

fn signal_text(sig: &Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT".into(),
        Sig::ALRM => "ALRM".into(),
        Sig::FPE => "FPE".into(),
        Sig::HUP => "HUP".into(),
        Sig::ILL => "ILL".into(),
        Sig::INT => "INT".into(),
        Sig::KILL => "KILL".into(),
        Sig::PIPE => "PIPE".into(),
        Sig::QUIT => "QUIT".into(),
        Sig::SEGV => "SEGV".into(),
        Sig::TERM => "TERM".into(),
        Sig::USR1 => "USR1".into(),
        Sig::Custom(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_counts_everything_and_keeps_the_prefix() {
        let mut acc = Acc::default();
        assert_eq!(acc.admit(Stream::Stdout, b"hello", 8), b"hello");
        assert_eq!(acc.admit(Stream::Stdout, b"world", 8), b"wor");
        assert_eq!(acc.admit(Stream::Stdout, b"more", 8), b"");
        assert_eq!(acc.admit(Stream::Stderr, b"err", 8), b"err");
        assert_eq!(acc.stdout_bytes, 14);
        assert_eq!(acc.stderr_bytes, 3);
        assert!(acc.truncated);
        let mut acc = Acc::default();
        assert_eq!(acc.admit(Stream::Stdout, b"12345678", 8), b"12345678");
        assert!(!acc.truncated);
    }
}
