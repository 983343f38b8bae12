//! Errors of the runner. Each has a stable code and an English and a Chinese message.

/// Why a task could not be run at all. A task that ran and failed (non-zero exit, signal,
/// timeout, cancel) is not an error: it is an [`crate::Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The spec is invalid (e.g. an environment variable name that is empty or contains `=` or NUL).
    #[error("RUNNER-001: invalid task spec: {0}")]
    InvalidSpec(String),
    /// The private script directory or file could not be prepared.
    #[error("RUNNER-002: cannot prepare the script file in {path}: {source}")]
    ScriptFile {
        /// The directory involved.
        path: String,
        /// The underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// The process could not be started (interpreter or wrapper missing, bad workdir, …).
    #[error("RUNNER-003: cannot start {program}: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the process failed.
    #[error("RUNNER-004: waiting for the task process failed: {0}")]
    Wait(#[source] std::io::Error),
}

impl RunnerError {
    /// Stable error code, e.g. `RUNNER-003`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) => "RUNNER-001",
            Self::ScriptFile { .. } => "RUNNER-002",
            Self::Spawn { .. } => "RUNNER-003",
            Self::Wait(_) => "RUNNER-004",
        }
    }

    /// The message in English (same as `Display`, which also carries the code).
    #[must_use]
    pub fn message_en(&self) -> String {
        self.to_string()
    }

    /// The message in Chinese, prefixed with the code.
    #[must_use]
    pub fn message_zh(&self) -> String {
        match self {
            Self::InvalidSpec(d) => format!("RUNNER-001: 任务定义无效: {d}"),
            Self::ScriptFile { path, source } => {
                format!("RUNNER-002: 无法在 {path} 中准备脚本文件: {source}")
            }
            Self::Spawn { program, source } => format!("RUNNER-003: 无法启动 {program}: {source}"),
            Self::Wait(e) => format!("RUNNER-004: 等待任务进程失败: {e}"),
        }
    }
}
