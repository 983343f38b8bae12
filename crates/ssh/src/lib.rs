//! `ballast-ssh`: agentless execution over SSH.
//!
//! One function runs one command on one host ([`run`]): connect with a time limit, check the host
//! key against a [`HostKeyPolicy`] *before* authenticating, authenticate with a password or a
//! private key, execute the command, feed it `stdin`, stream its output as [`Chunk`]s while it
//! arrives (capped per stream), and report exit status, signal, time-out and truncation in an
//! [`SshOutcome`]. [`fan_out`] does the same on many hosts with bounded concurrency.
//!
//! Scripts run by sending their text on stdin to an interpreter wrapped in `nice` and `timeout`
//! ([`script_command`]), so nothing is copied to the host first and the remote `timeout` kills the
//! remote process group when the time is up.
//!
//! The client is `russh` (pure Rust, `ring` crypto). The `testkit` feature adds [`testkit::Sshd`],
//! which starts Debian's real OpenSSH `sshd` on a free loopback port for tests and benchmarks.

mod error;
mod exec;
mod fanout;
mod hostkey;
mod quote;
mod types;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use error::SshError;
pub use exec::run;
pub use fanout::{HostRun, fan_out, fan_out_with};
pub use hostkey::fingerprint_sha256;
pub use quote::{script_command, shell_quote};
pub use types::{Chunk, ExecLimits, HostKeyPolicy, SshAuth, SshOutcome, SshTarget, Stream};
