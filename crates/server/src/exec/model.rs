//! The frozen snapshot a run executes (`runs.spec`): written once when the run is accepted, never
//! changed. It records exactly which plan version and script versions (with their contents and
//! hashes) the run used, the variable definitions and the non-secret values; secret values are
//! sealed separately (`runs.secrets_sealed`) and appear here only as `******`.

use std::collections::BTreeMap;

use ballast_exec::{FailurePolicy, Language, ParamDef};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub environment: String,
    /// Whether the environment is a production one (only online script versions run there).
    pub production: bool,
    pub plan: Option<PlanRef>,
    pub variables: Vec<ParamDef>,
    /// Given values; secret ones masked (`******`).
    pub values: BTreeMap<String, String>,
    pub steps: Vec<FrozenStep>,
    /// Warnings the starter acknowledged (change window, dangerous content).
    #[serde(default)]
    pub acknowledged: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRef {
    pub id: i64,
    pub name: String,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrozenStep {
    pub name: String,
    pub action: FrozenAction,
    /// Target spec, `${var}` not yet rendered (secrets may be in it).
    pub targets: Option<String>,
    pub timeout_secs: u64,
    pub on_failure: FailurePolicy,
    pub batch: Option<String>,
    pub concurrency: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FrozenAction {
    Script {
        script: String,
        script_id: i64,
        version: i64,
        sha256: String,
        language: Language,
        content: String,
        /// `${var}` templates, rendered at execution time.
        args: Vec<String>,
    },
    Command {
        language: Language,
        command: String,
    },
    File {
        /// The file's content (text), written to `dest` on each host.
        content: String,
        dest: String,
        mode: Option<String>,
    },
    Confirm {
        message: String,
    },
    Approval {
        message: String,
    },
}

impl FrozenAction {
    pub fn kind(&self) -> &'static str {
        match self {
            FrozenAction::Script { .. } => "script",
            FrozenAction::Command { .. } => "command",
            FrozenAction::File { .. } => "file",
            FrozenAction::Confirm { .. } => "confirm",
            FrozenAction::Approval { .. } => "approval",
        }
    }

    /// What the dangerous-content stage inspects: (language, text).
    pub fn content(&self) -> Option<(Language, String)> {
        match self {
            FrozenAction::Script {
                language, content, ..
            } => Some((*language, content.clone())),
            FrozenAction::Command { language, command } => Some((*language, command.clone())),
            FrozenAction::File { dest, mode, .. } => Some((
                Language::Sh,
                file_script(dest, mode.as_deref(), "<content>"),
            )),
            _ => None,
        }
    }
}

/// The shell script that writes a distributed file on the host: the content travels base64-encoded
/// as the script's first argument, so any bytes survive every transport.
pub fn file_script(dest: &str, mode: Option<&str>, _content_note: &str) -> String {
    let q = shell_quote(dest);
    let mut s = format!(
        "set -eu\numask 077\ntmp=$(mktemp {q}.ballast.XXXXXX)\nprintf '%s' \"$1\" | base64 -d > \"$tmp\"\n"
    );
    if let Some(m) = mode {
        s.push_str(&format!("chmod {} \"$tmp\"\n", shell_quote(m)));
    }
    s.push_str(&format!("mv -f \"$tmp\" {q}\nprintf 'wrote %s\\n' {q}\n"));
    s
}

/// Single-quotes a word for POSIX sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
