//! `ballast-runner`: run one task (a script) on this host under resource caps.
//!
//! Used by the server's `local` transport and by `ballast agent` on managed hosts, so it stays small:
//! no database, no web framework. A task is a script for an [`Interpreter`], written to a private
//! temporary file (0600 in a 0700 directory), run as `<interp> <file> <args…>` with stdin from
//! `/dev/null`, a minimal clean environment, in its own process group, under the caps this host
//! offers:
//!
//! - **cgroup v2** (when `/sys/fs/cgroup` is a writable unified hierarchy with the `memory` and `cpu`
//!   controllers): a per-task cgroup with `memory.max` and `cpu.max`; the child joins it through a
//!   `sh` wrapper before `exec`, so there is no race and no `unsafe`;
//! - otherwise **`prlimit --as=<bytes>`** (util-linux) for memory; CPU share is then not capped;
//! - **niceness +N** for CPU priority in both cases, inherited from a spawning thread that runs
//!   at that niceness (see `spawn.rs`; the `nice` program is the fallback).
//!
//! A one-line `bash`/`sh` script that is a single plain command (`echo ok`, `df -h /data`: no
//! character the shell would interpret) is started directly, without a shell or script file
//! (see `plain.rs`); its meaning is the same and it costs about half as much to start.
//!
//! [`Outcome::caps`] records exactly which mechanisms were applied; a cap that was not applied is
//! never claimed. Output is streamed chunk by chunk (≤ 64 KiB) to a channel, capped per stream.

mod cancel;
mod caps;
mod error;
mod exec;
mod plain;
pub mod procfs;
mod spawn;
mod spec;

pub use cancel::CancelToken;
pub use caps::{Capabilities, ProbeOptions, Runner};
pub use error::RunnerError;
pub use exec::CHUNK_SIZE;
pub use spec::{
    CapsApplied, Chunk, DEFAULT_NICE, DEFAULT_OUTPUT_CAP, DEFAULT_TIMEOUT, Interpreter, Limits,
    Outcome, Stream, TaskSpec,
};
