//! Integration tests of ballast-ssh against Debian's real OpenSSH sshd (testkit).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fanout;
mod run;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ballast_ssh::testkit::Sshd;
use ballast_ssh::{
    Chunk, ExecLimits, HostKeyPolicy, SshAuth, SshError, SshOutcome, SshTarget, Stream, run,
};
use tokio::sync::mpsc;

/// Output of one run, collected while it streams.
pub struct Ran {
    pub result: Result<SshOutcome, SshError>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub chunks: usize,
}

pub fn limits() -> ExecLimits {
    ExecLimits {
        connect_timeout: Duration::from_secs(60),
        // Generous: a loaded CI machine must not turn a slow `echo` into a failure.
        timeout: Duration::from_secs(120),
        output_cap_bytes: 1 << 20,
    }
}

pub fn start(dir: &Path) -> Sshd {
    Sshd::start(dir).expect("start sshd (needs openssh-server and openssh-client)")
}

pub async fn exec_with(
    target: &SshTarget,
    auth: &SshAuth,
    policy: &HostKeyPolicy,
    command: &str,
    stdin: Option<Vec<u8>>,
    limits: &ExecLimits,
) -> Ran {
    let (tx, mut rx) = mpsc::channel::<Chunk>(16);
    let collect = async {
        let (mut stdout, mut stderr, mut chunks) = (Vec::new(), Vec::new(), 0);
        while let Some(c) = rx.recv().await {
            chunks += 1;
            match c.stream {
                Stream::Stdout => stdout.extend(c.data),
                Stream::Stderr => stderr.extend(c.data),
            }
        }
        (stdout, stderr, chunks)
    };
    let (result, (stdout, stderr, chunks)) = tokio::join!(
        run(target, auth, policy, command, stdin, limits, tx),
        collect
    );
    Ran {
        result,
        stdout,
        stderr,
        chunks,
    }
}

/// Runs `command` on the test server with its own key, pinned host key and default limits.
pub async fn exec(sshd: &Sshd, command: &str, stdin: Option<Vec<u8>>) -> Ran {
    exec_with(
        &sshd.target(),
        &sshd.auth(),
        &sshd.pinned(),
        command,
        stdin,
        &limits(),
    )
    .await
}

/// `ssh-keygen -lf` of a public key file: the reference fingerprint.
pub fn keygen_fingerprint(pub_file: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}
