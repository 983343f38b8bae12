//! The change-window stage of the guard pipeline.
//!
//! It applies to every `Execute` action (jobs, deployments, remediation, manual runs — whatever
//! the entry point, because every entry point calls `service::authorize`) and to `Mutate` actions
//! that name an environment, except the platform's own administration (accounts, roles,
//! environments' metadata, calendars, the overrides themselves). The operation is mapped to the
//! calendar's [`OperationContext`]: environment, business system and tier from the target, kind =
//! the operation key (`job.run`). Evaluation is at the pipeline's `now`, against the
//! [`DEFAULT_CALENDAR`](super::DEFAULT_CALENDAR).
//!
//! `block` → `Deny` (`change_window.blocked`), `warn` → `Warn`, an approved override in force →
//! `Warn` naming the override (so it is visible and audited), `allow` → `Pass`. A date outside
//! the calendar data counts as "the market may be open" (the crate's rule). Calendars or policies
//! that did not load → `Deny` (`change_window.unavailable`): fail closed.

use std::sync::Arc;

use ballast_calendar::{Decision, OperationContext, Outcome as WindowOutcome, evaluate};
use ballast_core::Problem;
use ballast_core::audit::{AuditDraft, Outcome};
use ballast_core::guard::{Action, ActionKind, Check, GuardContext, Principal, Stage, Verdict};
use chrono::{DateTime, Utc};

use super::{CalendarRuntime, DEFAULT_CALENDAR, problem};
use crate::error::ApiResult;
use crate::service;
use crate::state::AppState;

/// Operation-key prefixes of platform administration: not changes to an environment's systems.
/// (`schedule.`: defining a schedule changes nothing yet; each run it starts is governed.
/// `cmdb.`: configuration records describe systems, changing them changes no system.)
const ADMINISTRATION: [&str; 9] = [
    "schedule.",
    "cmdb.",
    "change_window.",
    "calendar.",
    "environment.",
    "user.",
    "role.",
    "token.",
    "audit.",
];

/// Whether the change window governs this action.
pub fn applies(action: &Action) -> bool {
    match action.kind {
        ActionKind::Execute => true,
        ActionKind::Mutate => {
            action.target.environment.is_some()
                && !ADMINISTRATION
                    .iter()
                    .any(|p| action.operation.starts_with(p))
        }
        ActionKind::Read | ActionKind::Approve => false,
    }
}

/// The calendar's view of an action. A missing environment, business system or tier is the
/// empty string, which only policies without that selector match.
pub fn operation_context(action: &Action) -> OperationContext {
    let t = &action.target;
    OperationContext {
        environment: t.environment.clone().unwrap_or_default(),
        business_system: t.business_system.clone().unwrap_or_default(),
        tier: t.tier.clone().unwrap_or_default(),
        kind: action.operation.clone(),
    }
}

impl CalendarRuntime {
    /// The change-window decision for an operation at an instant, or why it cannot be decided.
    pub fn decide(
        &self,
        calendar: &str,
        ctx: &OperationContext,
        at: DateTime<Utc>,
    ) -> Result<Decision, Problem> {
        let set = self.calendars()?;
        let cal = set.get(calendar).map_err(|e| problem(&e))?;
        let policies = self.policy_set()?;
        Ok(evaluate(&policies, cal, ctx, at))
    }
}

/// The pipeline check (installed by `state::pipeline`).
pub struct ChangeWindowCheck {
    rt: Arc<CalendarRuntime>,
}

impl ChangeWindowCheck {
    pub fn new(rt: Arc<CalendarRuntime>) -> ChangeWindowCheck {
        ChangeWindowCheck { rt }
    }
}

/// The verdict for a decision (or for a failure to decide).
pub fn verdict(decision: &Result<Decision, Problem>) -> Verdict {
    match decision {
        Err(p) => Verdict::Deny {
            problem: Problem::new(
                "change_window.unavailable",
                format!("无法判断变更窗口（{}），按禁止处理", p.message_zh),
                format!(
                    "the change window cannot be decided ({}); refused (fail closed)",
                    p.message_en
                ),
            ),
        },
        Ok(d) => match d.outcome {
            WindowOutcome::Block => Verdict::Deny {
                problem: Problem::new(
                    "change_window.blocked",
                    format!("变更窗口禁止：{}", d.reason_zh),
                    format!("blocked by the change window: {}", d.reason_en),
                ),
            },
            WindowOutcome::Warn => Verdict::Warn {
                message_zh: format!("变更窗口警告（需确认）：{}", d.reason_zh),
                message_en: format!(
                    "change-window warning (acknowledgement needed): {}",
                    d.reason_en
                ),
            },
            WindowOutcome::Allow if d.override_id.is_some() => Verdict::Warn {
                message_zh: format!("紧急放行：{}", d.reason_zh),
                message_en: format!("emergency override: {}", d.reason_en),
            },
            WindowOutcome::Allow => Verdict::Pass,
        },
    }
}

impl Check for ChangeWindowCheck {
    fn stage(&self) -> Stage {
        Stage::ChangeWindow
    }

    fn check(&self, ctx: &GuardContext<'_>) -> Verdict {
        if !applies(ctx.action) {
            return Verdict::Pass;
        }
        verdict(
            &self
                .rt
                .decide(DEFAULT_CALENDAR, &operation_context(ctx.action), ctx.now),
        )
    }
}

/// Appends the audit record of a change-window decision the pipeline let through (allow, warn,
/// override used); refusals are audited by `service::authorize` itself. Called by
/// `service::authorize` for every action the change window governs.
pub async fn audit_decision(
    state: &AppState,
    p: &Principal,
    action: &Action,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    if !applies(action) {
        return Ok(());
    }
    let Ok(d) = state
        .calendar
        .decide(DEFAULT_CALENDAR, &operation_context(action), at)
    else {
        // Undecidable is refused by the check; nothing got through to record.
        return Ok(());
    };
    let draft = AuditDraft::new(
        service::actor(p),
        "change_window.decision",
        "change_window",
        Outcome::Success,
    )
    .from_ip(p.source_ip.map(|ip| ip.to_string()))
    .environment(action.target.environment.clone())
    .object(d.policy_id.clone().unwrap_or_else(|| "-".to_string()))
    .after(serde_json::json!({
        "operation": action.operation,
        "calendar": DEFAULT_CALENDAR,
        "at": at,
        "outcome": d.outcome,
        "policy_id": d.policy_id,
        "rule_index": d.rule_index,
        "calendar_covered": d.calendar_covered,
        "override_id": d.override_id,
        "overridden_outcome": d.overridden_outcome,
    }))
    .detail(format!("{} / {}", d.reason_zh, d.reason_en));
    service::audit_only(state, draft).await
}
