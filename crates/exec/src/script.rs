//! Script versions: their life cycle (draft → online → offline, disabled), who may approve,
//! where a version may run, the size limit and the diff between two versions.

use std::fmt;

use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

use crate::error::ExecError;

/// The state of one immutable script version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    Draft,
    Online,
    Offline,
    Disabled,
}

impl VersionState {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Draft => "draft",
            VersionState::Online => "online",
            VersionState::Offline => "offline",
            VersionState::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Result<VersionState, ExecError> {
        match s.trim() {
            "draft" => Ok(VersionState::Draft),
            "online" => Ok(VersionState::Online),
            "offline" => Ok(VersionState::Offline),
            "disabled" => Ok(VersionState::Disabled),
            other => Err(ExecError::VersionStateUnknown(other.to_string())),
        }
    }
}

impl fmt::Display for VersionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a permitted transition must be approved by a second person before it takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NeedsApproval(pub bool);

/// Checks a state change of a script version.
///
/// draft → online (approval), online → offline, offline → online (approval), any other state →
/// disabled; disabled is final. Staying in the same state is refused too.
pub fn transition(from: VersionState, to: VersionState) -> Result<NeedsApproval, ExecError> {
    use VersionState::*;
    match (from, to) {
        (Draft, Online) | (Offline, Online) => Ok(NeedsApproval(true)),
        (Online, Offline) => Ok(NeedsApproval(false)),
        (Draft | Online | Offline, Disabled) => Ok(NeedsApproval(false)),
        _ => Err(ExecError::TransitionInvalid { from, to }),
    }
}

/// Separation of duties: the approver of a version change must not be its author.
/// Names are compared after trimming, case-insensitively (fail closed on look-alikes).
pub fn check_approver(author: &str, approver: &str) -> Result<(), ExecError> {
    let approver_t = approver.trim();
    if approver_t.is_empty() {
        return Err(ExecError::ApproverMissing);
    }
    if author.trim().to_lowercase() == approver_t.to_lowercase() {
        return Err(ExecError::ApproverIsAuthor {
            approver: approver_t.to_string(),
        });
    }
    Ok(())
}

/// May a version in `state` run in an environment (`production` = a production environment)?
/// Only online versions run in production; drafts and online versions run elsewhere;
/// offline and disabled versions never run.
pub fn may_run(state: VersionState, production: bool) -> Result<(), ExecError> {
    match (state, production) {
        (VersionState::Online, _) | (VersionState::Draft, false) => Ok(()),
        _ => Err(ExecError::NotRunnable { state, production }),
    }
}

/// The largest script (or inline command) accepted: 1 MiB.
pub const MAX_SCRIPT_BYTES: usize = 1024 * 1024;

/// Checks a script body: at most [`MAX_SCRIPT_BYTES`], no NUL bytes.
pub fn validate_script(content: &str) -> Result<(), ExecError> {
    if content.len() > MAX_SCRIPT_BYTES {
        return Err(ExecError::ScriptTooLarge {
            size: content.len(),
            max: MAX_SCRIPT_BYTES,
        });
    }
    if let Some(pos) = content.find('\0') {
        let line = content[..pos].matches('\n').count() + 1;
        return Err(ExecError::ScriptNulByte { line });
    }
    Ok(())
}

/// What happened to one line between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    Same,
    Added,
    Removed,
}

/// One line of a side-by-side diff; line numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    pub kind: DiffKind,
    pub old_no: Option<u32>,
    pub new_no: Option<u32>,
    /// The line without its line terminator.
    pub text: String,
}

fn line_no(index: Option<usize>) -> Option<u32> {
    index.map(|i| u32::try_from(i.saturating_add(1)).unwrap_or(u32::MAX))
}

/// Line diff of two versions (Myers, via `similar`), every line of both versions included.
pub fn diff(old: &str, new: &str) -> Vec<DiffLine> {
    let diff = TextDiff::from_lines(old, new);
    diff.iter_all_changes()
        .map(|change| {
            let kind = match change.tag() {
                ChangeTag::Equal => DiffKind::Same,
                ChangeTag::Insert => DiffKind::Added,
                ChangeTag::Delete => DiffKind::Removed,
            };
            let text = change.value();
            let text = text.strip_suffix('\n').unwrap_or(text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            DiffLine {
                kind,
                old_no: line_no(change.old_index()),
                new_no: line_no(change.new_index()),
                text: text.to_string(),
            }
        })
        .collect()
}

/// A unified diff (`---`/`+++` headers, 3 lines of context); empty when the texts are equal.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use VersionState::*;

    #[test]
    fn allowed_transitions() {
        assert_eq!(transition(Draft, Online).unwrap(), NeedsApproval(true));
        assert_eq!(transition(Offline, Online).unwrap(), NeedsApproval(true));
        assert_eq!(transition(Online, Offline).unwrap(), NeedsApproval(false));
        for from in [Draft, Online, Offline] {
            assert_eq!(transition(from, Disabled).unwrap(), NeedsApproval(false));
        }
    }

    #[test]
    fn refused_transitions() {
        let all = [Draft, Online, Offline, Disabled];
        for to in all {
            let err = transition(Disabled, to).unwrap_err();
            assert_eq!(err.code(), "exec.version_transition_invalid");
        }
        for s in all {
            assert!(transition(s, s).is_err(), "{s} -> {s}");
        }
        assert!(transition(Draft, Offline).is_err());
        assert!(transition(Online, Draft).is_err());
        assert!(transition(Offline, Draft).is_err());
    }

    #[test]
    fn approver_must_differ_from_author() {
        assert!(check_approver("alice", "bob").is_ok());
        let err = check_approver("alice", "alice").unwrap_err();
        assert_eq!(err.code(), "exec.approver_is_author");
        assert!(check_approver("alice", " Alice ").is_err());
        assert_eq!(
            check_approver("alice", "  ").unwrap_err().code(),
            "exec.approver_missing"
        );
    }

    #[test]
    fn run_rules_per_environment() {
        assert!(may_run(Online, true).is_ok());
        assert!(may_run(Online, false).is_ok());
        assert!(may_run(Draft, false).is_ok());
        assert_eq!(
            may_run(Draft, true).unwrap_err().code(),
            "exec.version_not_runnable"
        );
        for prod in [true, false] {
            assert!(may_run(Offline, prod).is_err());
            assert!(may_run(Disabled, prod).is_err());
        }
    }

    #[test]
    fn script_size_limit() {
        assert!(validate_script("echo ok\n").is_ok());
        let exact = "a".repeat(MAX_SCRIPT_BYTES);
        assert!(validate_script(&exact).is_ok());
        let over = "a".repeat(MAX_SCRIPT_BYTES + 1);
        let err = validate_script(&over).unwrap_err();
        assert_eq!(err.code(), "exec.script_too_large");
        let err = validate_script("a\nb\0").unwrap_err();
        assert_eq!(err, ExecError::ScriptNulByte { line: 2 });
    }

    #[test]
    fn diff_numbers_lines_of_both_sides() {
        let old = "a\nb\nc\n";
        let new = "a\nB\nc\nd\n";
        let d = diff(old, new);
        let summary: Vec<(DiffKind, Option<u32>, Option<u32>, &str)> = d
            .iter()
            .map(|l| (l.kind, l.old_no, l.new_no, l.text.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (DiffKind::Same, Some(1), Some(1), "a"),
                (DiffKind::Removed, Some(2), None, "b"),
                (DiffKind::Added, None, Some(2), "B"),
                (DiffKind::Same, Some(3), Some(3), "c"),
                (DiffKind::Added, None, Some(4), "d"),
            ]
        );
    }

    #[test]
    fn unified_diff_has_headers_and_hunks() {
        let u = unified_diff("a\nb\n", "a\nc\n", "v1", "v2");
        assert!(u.starts_with("--- v1\n+++ v2\n"), "{u}");
        assert!(u.contains("@@ -1,2 +1,2 @@"), "{u}");
        assert!(u.contains("-b\n") && u.contains("+c\n"), "{u}");
        assert_eq!(unified_diff("x", "x", "a", "b"), "");
    }
}
