//! The states the engine stores for runs, steps and per-host tasks, and the pure decisions
//! that move them: what a finished step means under its failure policy, and what the run's
//! status becomes. The server's orchestration keeps no policy logic of its own.

use serde::{Deserialize, Serialize};

use crate::plan::{FailurePolicy, StepKind};

/// A run of a job plan (or an ad-hoc command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Paused,
    WaitingApproval,
    Succeeded,
    Failed,
    Cancelled,
    /// Refused by a guard before anything ran.
    Blocked,
}

/// One step of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Paused,
    WaitingConfirmation,
    WaitingApproval,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

/// One step on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    Dispatched,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Skipped,
    /// Dispatched, but the outcome was lost (e.g. the server restarted): never re-run silently.
    Unknown,
    /// Never started on that host: unreachable, host-key mismatch, missing credential, agent
    /// offline or revoked, wrong environment.
    Refused,
}

macro_rules! as_str {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
            pub fn parse(s: &str) -> Option<$t> {
                match s { $($s => Some(<$t>::$v),)* _ => None }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

as_str!(RunStatus {
    Pending => "pending",
    Running => "running",
    Paused => "paused",
    WaitingApproval => "waiting_approval",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
    Blocked => "blocked",
});

as_str!(StepStatus {
    Pending => "pending",
    Running => "running",
    Paused => "paused",
    WaitingConfirmation => "waiting_confirmation",
    WaitingApproval => "waiting_approval",
    Succeeded => "succeeded",
    Failed => "failed",
    Skipped => "skipped",
    Cancelled => "cancelled",
});

as_str!(TaskStatus {
    Pending => "pending",
    Dispatched => "dispatched",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    TimedOut => "timed_out",
    Cancelled => "cancelled",
    Skipped => "skipped",
    Unknown => "unknown",
    Refused => "refused",
});

impl RunStatus {
    /// Finished for good: succeeded, failed, cancelled, blocked.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled | RunStatus::Blocked
        )
    }
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Cancelled
        )
    }
}

impl TaskStatus {
    /// No further result is expected for this task (`unknown` included: it waits for a person,
    /// not for the host).
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            TaskStatus::Pending | TaskStatus::Dispatched | TaskStatus::Running
        )
    }

    pub fn is_success(self) -> bool {
        self == TaskStatus::Succeeded
    }

    /// Terminal and neither succeeded nor deliberately skipped.
    pub fn is_failure(self) -> bool {
        self.is_terminal() && !matches!(self, TaskStatus::Succeeded | TaskStatus::Skipped)
    }
}

/// An operator's decision on a paused step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Run the failed hosts again (unknown outcomes included: a person decided).
    RetryFailed,
    /// Leave the failed hosts and go on with the next step.
    Skip,
    /// Stop the run.
    Abort,
}

/// What the orchestration does next with a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum StepVerdict {
    /// Some tasks are still pending or running.
    Wait,
    /// The step is done; go on with the next step.
    Continue,
    /// Run these tasks again (indices into the task slice), after `retry_delay`.
    Retry { hosts: Vec<usize> },
    /// Stop and wait for an operator's [`Decision`].
    Pause,
    /// Stop the run as failed.
    Abort,
}

fn failed_indices(tasks: &[TaskStatus], include_unknown: bool) -> Vec<usize> {
    tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_failure() && (include_unknown || **t != TaskStatus::Unknown))
        .map(|(i, _)| i)
        .collect()
}

/// The verdict on a step whose tasks have these statuses, after attempt number `attempt`
/// (1 = the first run) under `policy`.
///
/// - any task not terminal → `Wait`;
/// - no failure → `Continue`;
/// - any `Unknown` outcome → `Pause` whatever the policy (never re-run silently, never wave
///   through);
/// - otherwise by policy: abort → `Abort`; ignore → `Continue`; pause → `Pause`;
///   retry N → `Retry` the failed hosts while `attempt <= N`, then `Abort`.
pub fn step_outcome(tasks: &[TaskStatus], policy: &FailurePolicy, attempt: u32) -> StepVerdict {
    if tasks.iter().any(|t| !t.is_terminal()) {
        return StepVerdict::Wait;
    }
    let failed = failed_indices(tasks, true);
    if failed.is_empty() {
        return StepVerdict::Continue;
    }
    if tasks.contains(&TaskStatus::Unknown) {
        return StepVerdict::Pause;
    }
    match *policy {
        FailurePolicy::Abort => StepVerdict::Abort,
        FailurePolicy::Ignore => StepVerdict::Continue,
        FailurePolicy::Pause => StepVerdict::Pause,
        FailurePolicy::Retry { times, .. } => {
            if attempt <= times {
                StepVerdict::Retry { hosts: failed }
            } else {
                StepVerdict::Abort
            }
        }
    }
}

/// The verdict after an operator decided on a paused step.
pub fn apply_decision(tasks: &[TaskStatus], decision: Decision) -> StepVerdict {
    match decision {
        Decision::RetryFailed => {
            let hosts = failed_indices(tasks, true);
            if hosts.is_empty() {
                StepVerdict::Continue
            } else {
                StepVerdict::Retry { hosts }
            }
        }
        Decision::Skip => StepVerdict::Continue,
        Decision::Abort => StepVerdict::Abort,
    }
}

/// The step's stored status for a verdict. A step that continues with failed hosts (policy
/// `ignore`, or an operator's `skip`) is `Failed`, while the run goes on.
pub fn step_status_after(verdict: &StepVerdict, tasks: &[TaskStatus]) -> StepStatus {
    match verdict {
        StepVerdict::Wait | StepVerdict::Retry { .. } => StepStatus::Running,
        StepVerdict::Pause => StepStatus::Paused,
        StepVerdict::Abort => StepStatus::Failed,
        StepVerdict::Continue => {
            if tasks.iter().any(|t| t.is_failure()) {
                StepStatus::Failed
            } else {
                StepStatus::Succeeded
            }
        }
    }
}

/// The run's status after a verdict on one of its steps; `last_step` = no step follows.
pub fn run_status_after_step(verdict: &StepVerdict, last_step: bool) -> RunStatus {
    match verdict {
        StepVerdict::Wait | StepVerdict::Retry { .. } => RunStatus::Running,
        StepVerdict::Continue if last_step => RunStatus::Succeeded,
        StepVerdict::Continue => RunStatus::Running,
        StepVerdict::Pause => RunStatus::Paused,
        StepVerdict::Abort => RunStatus::Failed,
    }
}

/// Status of a step of this kind when it starts, and the run's status meanwhile:
/// confirmation steps wait for a confirmation, approval steps for an approval.
pub fn on_step_start(kind: &StepKind) -> (StepStatus, RunStatus) {
    match kind {
        StepKind::Confirm { .. } => (StepStatus::WaitingConfirmation, RunStatus::Paused),
        StepKind::Approval { .. } => (StepStatus::WaitingApproval, RunStatus::WaitingApproval),
        _ => (StepStatus::Running, RunStatus::Running),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use TaskStatus::*;

    const RETRY2: FailurePolicy = FailurePolicy::Retry {
        times: 2,
        backoff_secs: 1,
    };

    #[test]
    fn terminal_and_success() {
        for t in [Pending, Dispatched, Running] {
            assert!(!t.is_terminal() && !t.is_failure());
        }
        for t in [Failed, TimedOut, Cancelled, Unknown, Refused] {
            assert!(t.is_terminal() && t.is_failure() && !t.is_success(), "{t}");
        }
        assert!(Succeeded.is_success() && !Succeeded.is_failure());
        assert!(Skipped.is_terminal() && !Skipped.is_failure() && !Skipped.is_success());
        assert!(RunStatus::Blocked.is_terminal() && !RunStatus::Paused.is_terminal());
        assert!(StepStatus::Skipped.is_terminal() && !StepStatus::WaitingApproval.is_terminal());
    }

    #[test]
    fn names_match_serde() {
        for t in [
            Pending, Dispatched, Running, Succeeded, Failed, TimedOut, Cancelled, Skipped, Unknown,
            Refused,
        ] {
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
            assert_eq!(TaskStatus::parse(t.as_str()), Some(t));
        }
        assert_eq!(
            serde_json::to_string(&StepStatus::WaitingConfirmation).unwrap(),
            "\"waiting_confirmation\""
        );
        assert_eq!(
            RunStatus::parse("waiting_approval"),
            Some(RunStatus::WaitingApproval)
        );
        assert_eq!(RunStatus::parse("nope"), None);
    }

    #[test]
    fn verdicts_by_policy() {
        let ok = [Succeeded, Skipped, Succeeded];
        let bad = [Succeeded, Failed, Refused, TimedOut];
        for p in [
            FailurePolicy::Abort,
            FailurePolicy::Ignore,
            FailurePolicy::Pause,
            RETRY2,
        ] {
            assert_eq!(step_outcome(&ok, &p, 1), StepVerdict::Continue);
            assert_eq!(
                step_outcome(&[Succeeded, Running], &p, 1),
                StepVerdict::Wait
            );
            assert_eq!(step_outcome(&[], &p, 1), StepVerdict::Continue);
        }
        assert_eq!(
            step_outcome(&bad, &FailurePolicy::Abort, 1),
            StepVerdict::Abort
        );
        assert_eq!(
            step_outcome(&bad, &FailurePolicy::Ignore, 1),
            StepVerdict::Continue
        );
        assert_eq!(
            step_outcome(&bad, &FailurePolicy::Pause, 1),
            StepVerdict::Pause
        );
        assert_eq!(
            step_outcome(&bad, &RETRY2, 1),
            StepVerdict::Retry {
                hosts: vec![1, 2, 3]
            }
        );
        assert_eq!(
            step_outcome(&bad, &RETRY2, 2),
            StepVerdict::Retry {
                hosts: vec![1, 2, 3]
            }
        );
        assert_eq!(step_outcome(&bad, &RETRY2, 3), StepVerdict::Abort);
    }

    #[test]
    fn unknown_outcomes_always_pause() {
        let tasks = [Succeeded, Unknown, Failed];
        for p in [
            FailurePolicy::Abort,
            FailurePolicy::Ignore,
            FailurePolicy::Pause,
            RETRY2,
        ] {
            assert_eq!(step_outcome(&tasks, &p, 1), StepVerdict::Pause);
        }
        assert_eq!(
            apply_decision(&tasks, Decision::RetryFailed),
            StepVerdict::Retry { hosts: vec![1, 2] }
        );
        assert_eq!(
            apply_decision(&tasks, Decision::Skip),
            StepVerdict::Continue
        );
        assert_eq!(apply_decision(&tasks, Decision::Abort), StepVerdict::Abort);
        assert_eq!(
            apply_decision(&[Succeeded], Decision::RetryFailed),
            StepVerdict::Continue
        );
    }

    #[test]
    fn statuses_after_verdicts() {
        let bad = [Succeeded, Failed];
        let v = step_outcome(&bad, &FailurePolicy::Ignore, 1);
        assert_eq!(step_status_after(&v, &bad), StepStatus::Failed);
        assert_eq!(run_status_after_step(&v, false), RunStatus::Running);
        assert_eq!(run_status_after_step(&v, true), RunStatus::Succeeded);
        assert_eq!(
            step_status_after(&StepVerdict::Continue, &[Succeeded]),
            StepStatus::Succeeded
        );
        assert_eq!(
            run_status_after_step(&StepVerdict::Abort, false),
            RunStatus::Failed
        );
        assert_eq!(
            run_status_after_step(&StepVerdict::Pause, true),
            RunStatus::Paused
        );
        assert_eq!(
            step_status_after(&StepVerdict::Pause, &bad),
            StepStatus::Paused
        );
        assert_eq!(
            on_step_start(&StepKind::Approval {
                message: "m".into()
            }),
            (StepStatus::WaitingApproval, RunStatus::WaitingApproval)
        );
        assert_eq!(
            on_step_start(&StepKind::Confirm {
                message: "m".into()
            })
            .0,
            StepStatus::WaitingConfirmation
        );
    }
}
