//! The task description and the result: plain data that travels over the agent's wire protocol.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The program that runs the script file.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Interpreter {
    /// `bash <file>`
    Bash,
    /// `sh <file>`
    Sh,
    /// `python3 <file>`
    Python3,
}

impl Interpreter {
    /// The program name, looked up in the task's `PATH`.
    #[must_use]
    pub fn program(self) -> &'static str {
        match self {
            Self::Bash => "bash",
            Self::Sh => "sh",
            Self::Python3 => "python3",
        }
    }

    /// The script file's suffix (cosmetic: it helps reading `ps` output).
    #[must_use]
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Bash | Self::Sh => ".sh",
            Self::Python3 => ".py",
        }
    }
}

/// Default per-stream output cap: 1 MiB.
pub const DEFAULT_OUTPUT_CAP: u64 = 1024 * 1024;
/// Default niceness: 10.
pub const DEFAULT_NICE: i32 = 10;
/// Default timeout: one hour.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Resource caps for one task.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(default)]
pub struct Limits {
    /// Wall-clock limit; on expiry the whole process group is terminated. On the wire: `timeout_ms`.
    #[serde(rename = "timeout_ms", with = "duration_ms")]
    pub timeout: Duration,
    /// Memory cap: cgroup `memory.max`, or in the fallback the address-space limit (`prlimit --as`).
    pub memory_bytes: Option<u64>,
    /// CPU cap in percent of one core (cgroup `cpu.max`); only applied with cgroup v2.
    pub cpu_percent: Option<u32>,
    /// Per-stream output cap: bytes beyond it are drained and discarded. Default 1 MiB.
    pub output_cap_bytes: u64,
    /// Niceness passed to `nice -n`. Default 10; `None` leaves the priority alone.
    pub nice: Option<i32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            memory_bytes: None,
            cpu_percent: None,
            output_cap_bytes: DEFAULT_OUTPUT_CAP,
            nice: Some(DEFAULT_NICE),
        }
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// One task: a script, its interpreter, arguments, extra environment, caps and working directory.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    /// The interpreter that runs the script file.
    pub interpreter: Interpreter,
    /// The script text, written to a private temporary file.
    pub script: String,
    /// Arguments after the script file name (`$1…` / `sys.argv[1:]`).
    #[serde(default)]
    pub args: Vec<String>,
    /// Added to the minimal environment (`PATH`, `HOME`, `LANG=C.UTF-8`); may override those.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Resource caps.
    #[serde(default)]
    pub limits: Limits,
    /// Working directory; `None` = the runner's base directory.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
}

impl TaskSpec {
    /// A spec with default limits, no arguments, no extra environment.
    #[must_use]
    pub fn new(interpreter: Interpreter, script: impl Into<String>) -> Self {
        Self {
            interpreter,
            script: script.into(),
            args: Vec::new(),
            env: Vec::new(),
            limits: Limits::default(),
            workdir: None,
        }
    }
}

/// Which output stream a chunk came from.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of output as it arrived (at most 64 KiB; raw bytes, not necessarily UTF-8).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The stream.
    pub stream: Stream,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Which caps were really applied to the task.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct CapsApplied {
    /// The task ran in its own cgroup v2 (with `memory.max` / `cpu.max` as requested).
    pub cgroup: bool,
    /// The memory cap was applied as an address-space rlimit (`prlimit --as`).
    pub rlimit_memory: bool,
    /// The task ran under `nice -n`.
    pub nice: bool,
    /// Human-readable detail: each mechanism with its values, and each requested cap that was not
    /// applied with the reason, `; `-separated.
    pub detail: String,
}

/// The result of a task that ran.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Exit code if the process exited normally.
    pub exit_code: Option<i32>,
    /// Signal number if the process was killed by a signal.
    pub signal: Option<i32>,
    /// The timeout expired and the process group was terminated.
    pub timed_out: bool,
    /// The run was cancelled and the process group was terminated.
    pub cancelled: bool,
    /// Bytes the task wrote to stdout (all of them, including bytes dropped beyond the cap).
    pub stdout_bytes: u64,
    /// Bytes the task wrote to stderr (all of them, including bytes dropped beyond the cap).
    pub stderr_bytes: u64,
    /// At least one stream exceeded `output_cap_bytes`; only the first `output_cap_bytes` bytes
    /// of that stream were forwarded.
    pub truncated: bool,
    /// Caps really applied.
    pub caps: CapsApplied,
    /// Wall-clock duration from start to the end of output, in milliseconds.
    pub duration_ms: u64,
    /// The output could not be read to its end: after the task's process group was gone, a
    /// stream stayed open (held by a process outside the group that could not be killed) and
    /// made no progress, so reading was abandoned. The forwarded chunks and the byte counts then
    /// miss whatever that stream would still have delivered, and [`Outcome::success`] is `false`.
    /// Absent on the wire (older peers) means `false`.
    #[serde(default)]
    pub output_incomplete: bool,
}

impl Outcome {
    /// Exit code 0, not timed out, not cancelled, and the output was read completely
    /// (`!output_incomplete`; a truncated stream still counts as read: see
    /// [`Outcome::truncated`]).
    #[must_use]
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && !self.cancelled && !self.output_incomplete
    }
}
