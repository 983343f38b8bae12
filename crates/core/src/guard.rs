//! The one guard pipeline every mutating or executing action goes through, whatever the entry point
//! (UI, API, CLI, schedule, remediation):
//!
//! authentication → permission in scope → separation of duties → environment isolation →
//! change window → dangerous content → approval.
//!
//! Each stage is a [`Check`]. The first four are defined here; the change-window, dangerous-content
//! and approval checks are supplied by the crates that own those policies (the calendar, the
//! execution engine) and plugged in by the server. A stage without a check is reported as such in
//! the decision's trail, never silently skipped.

use std::net::IpAddr;

use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;

use crate::authz::{self, Permission, Role, RoleBinding, Target};
use crate::problem::Problem;
use crate::user::{User, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Authentication,
    Permission,
    SeparationOfDuties,
    EnvironmentIsolation,
    ChangeWindow,
    DangerousContent,
    Approval,
}

impl Stage {
    pub const ORDER: [Stage; 7] = [
        Stage::Authentication,
        Stage::Permission,
        Stage::SeparationOfDuties,
        Stage::EnvironmentIsolation,
        Stage::ChangeWindow,
        Stage::DangerousContent,
        Stage::Approval,
    ];
}

/// How the principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session; `mfa` is whether the second factor was verified in it.
    Session { mfa: bool },
    /// An API token limited to these permissions.
    Token { permissions: Vec<Permission> },
    /// The local admin CLI working on the data directory (operating-system access).
    LocalCli,
    /// A schedule firing on its owner's behalf: not interactive, limited to running jobs
    /// (`job.run`), checked with the owner's roles at fire time.
    Schedule { id: i64 },
}

impl Via {
    /// For audit records: `session`, `token`, `local_cli`, `schedule:ID`.
    pub fn label(&self) -> String {
        match self {
            Via::Session { .. } => "session".to_string(),
            Via::Token { .. } => "token".to_string(),
            Via::LocalCli => "local_cli".to_string(),
            Via::Schedule { id } => format!("schedule:{id}"),
        }
    }
}

/// Who is acting.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub bindings: Vec<RoleBinding>,
    pub source_ip: Option<IpAddr>,
    pub via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Read,
    Mutate,
    Execute,
    Approve,
}

/// What is being attempted.
#[derive(Debug, Clone)]
pub struct Action {
    pub kind: ActionKind,
    pub permission: Permission,
    pub target: Target,
    /// Every environment the action touches besides `target.environment` (must be none or the same).
    pub other_environments: Vec<String>,
    /// For approvals: who asked.
    pub requested_by: Option<UserId>,
    /// Stable key of the operation (`user.create`, `job.run`), for policies and audit.
    pub operation: String,
    /// Content to inspect (scripts and commands) for the dangerous-content stage.
    pub content: Vec<Content>,
    /// Allowed while the user must still change the initial password (only the change itself).
    pub allowed_before_password_change: bool,
    /// An action on the caller's own account (own password, own second factor, own tokens): no
    /// role is needed, only an account that passes authentication.
    pub own_account: bool,
}

impl Action {
    pub fn new(
        kind: ActionKind,
        permission: Permission,
        operation: &str,
        target: Target,
    ) -> Action {
        Action {
            kind,
            permission,
            target,
            other_environments: Vec::new(),
            requested_by: None,
            operation: operation.to_string(),
            content: Vec::new(),
            allowed_before_password_change: false,
            own_account: false,
        }
    }

    /// An action on the caller's own account.
    pub fn own_account(operation: &str) -> Action {
        Action {
            own_account: true,
            ..Action::new(
                ActionKind::Mutate,
                Permission::UserRead,
                operation,
                Target::global(),
            )
        }
    }
}

/// A piece of content an action would run, for the dangerous-content stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Content {
    /// Where it comes from, for messages: `step 2 "deploy"`, `ad-hoc command`.
    pub label: String,
    /// `bash`, `sh`, `python3`, `sql`.
    pub language: String,
    pub text: String,
}

/// Everything a check may look at.
pub struct GuardContext<'a> {
    pub principal: &'a Principal,
    pub action: &'a Action,
    pub roles: &'a [Role],
    /// The environments this deployment manages.
    pub environments: &'a [String],
    pub now: DateTime<Utc>,
}

/// One stage's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Allowed, but the person must acknowledge the warning.
    Warn {
        message_zh: String,
        message_en: String,
    },
    Deny {
        problem: Problem,
    },
    /// Allowed only with a second person's approval.
    NeedsApproval {
        message_zh: String,
        message_en: String,
    },
    /// No check is installed for this stage.
    NotConfigured,
}

pub trait Check: Send + Sync {
    fn stage(&self) -> Stage;
    fn check(&self, ctx: &GuardContext<'_>) -> Verdict;
}

/// The pipeline's decision, with the verdict of every stage evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub trail: Vec<(Stage, Verdict)>,
}

impl Decision {
    /// The first denial, if any.
    pub fn denial(&self) -> Option<&Problem> {
        self.trail.iter().find_map(|(_, v)| match v {
            Verdict::Deny { problem } => Some(problem),
            _ => None,
        })
    }
    pub fn allowed(&self) -> bool {
        self.denial().is_none() && !self.needs_approval()
    }
    pub fn needs_approval(&self) -> bool {
        self.trail
            .iter()
            .any(|(_, v)| matches!(v, Verdict::NeedsApproval { .. }))
    }
    pub fn warnings(&self) -> Vec<(String, String)> {
        self.trail
            .iter()
            .filter_map(|(_, v)| match v {
                Verdict::Warn {
                    message_zh,
                    message_en,
                } => Some((message_zh.clone(), message_en.clone())),
                _ => None,
            })
            .collect()
    }
}

/// The ordered checks.
pub struct Pipeline {
    checks: Vec<Box<dyn Check>>,
}

impl Pipeline {
    /// The four checks defined here; add the others with [`Pipeline::with`].
    pub fn standard() -> Pipeline {
        Pipeline {
            checks: vec![
                Box::new(Authentication),
                Box::new(PermissionInScope),
                Box::new(SeparationOfDuties),
                Box::new(EnvironmentIsolation),
            ],
        }
    }

    pub fn with(mut self, check: Box<dyn Check>) -> Pipeline {
        self.checks.push(check);
        self
    }

    /// Evaluates stages in order; stops at the first denial.
    pub fn evaluate(&self, ctx: &GuardContext<'_>) -> Decision {
        let mut trail = Vec::new();
        for stage in Stage::ORDER {
            let mut any = false;
            for check in self.checks.iter().filter(|c| c.stage() == stage) {
                any = true;
                let v = check.check(ctx);
                let deny = matches!(v, Verdict::Deny { .. });
                trail.push((stage, v));
                if deny {
                    return Decision { trail };
                }
            }
            if !any {
                trail.push((stage, Verdict::NotConfigured));
            }
        }
        Decision { trail }
    }
}

fn deny(code: &'static str, zh: impl Into<String>, en: impl Into<String>) -> Verdict {
    Verdict::Deny {
        problem: Problem::new(code, zh, en),
    }
}

/// China Standard Time (no daylight saving): dates such as contract ends are Beijing dates.
pub fn china_date(at: DateTime<Utc>) -> chrono::NaiveDate {
    FixedOffset::east_opt(8 * 3600).map_or_else(
        || at.date_naive(),
        |cst| at.with_timezone(&cst).date_naive(),
    )
}

/// The account may act at all: enabled, contract not ended, initial password changed, second
/// factor verified where a privileged role needs it, token limited to the permission.
struct Authentication;

impl Check for Authentication {
    fn stage(&self) -> Stage {
        Stage::Authentication
    }
    fn check(&self, ctx: &GuardContext<'_>) -> Verdict {
        let p = ctx.principal;
        if p.user.disabled {
            return deny(
                "auth.account_disabled",
                "账号已停用",
                "the account is disabled",
            );
        }
        if p.user.contract_ended(china_date(ctx.now)) {
            return deny(
                "auth.contract_ended",
                "外包合同已到期，账号不可用",
                "the outsourcing contract has ended; the account cannot act",
            );
        }
        // The initial password guards interactive sign-in; API tokens (issued by an administrator)
        // and the local console are separate credentials.
        let interactive = matches!(p.via, Via::Session { .. });
        if interactive && p.user.must_change_password && !ctx.action.allowed_before_password_change
        {
            return deny(
                "auth.password_change_required",
                "请先修改初始密码",
                "the initial password must be changed first",
            );
        }
        match &p.via {
            Via::Session { mfa } => {
                let privileged = authz::roles_for(&p.bindings, ctx.roles, &ctx.action.target)
                    .iter()
                    .any(|r| r.privileged);
                if privileged && !mfa && !ctx.action.own_account {
                    return deny(
                        "auth.mfa_required",
                        "特权角色须先完成两步验证",
                        "a privileged role needs the second factor verified",
                    );
                }
            }
            Via::Token { .. } | Via::Schedule { .. } => {}
            Via::LocalCli => {}
        }
        Verdict::Pass
    }
}

/// A role binding covering the target grants the permission, from an allowed network.
struct PermissionInScope;

impl Check for PermissionInScope {
    fn stage(&self) -> Stage {
        Stage::Permission
    }
    fn check(&self, ctx: &GuardContext<'_>) -> Verdict {
        let p = ctx.principal;
        let perm = ctx.action.permission;
        if matches!(p.via, Via::LocalCli) {
            return Verdict::Pass;
        }
        // A token only does what it was scoped for, even on the caller's own account.
        let token_refuses = match &p.via {
            Via::Token { permissions } => !permissions.contains(&perm),
            // A schedule only ever starts runs.
            Via::Schedule { .. } => perm != Permission::JobRun,
            Via::Session { .. } | Via::LocalCli => false,
        };
        let token_scope = || {
            if matches!(p.via, Via::Schedule { .. }) {
                deny(
                    "auth.token_scope",
                    format!("定时任务只能执行作业，不能 {perm}"),
                    format!("a schedule only runs jobs; it cannot {perm}"),
                )
            } else {
                deny(
                    "auth.token_scope",
                    format!("API 令牌未授权 {perm}"),
                    format!("the API token is not scoped for {perm}"),
                )
            }
        };
        if ctx.action.own_account {
            return if token_refuses {
                token_scope()
            } else {
                Verdict::Pass
            };
        }
        if authz::is_allowed(
            &p.bindings,
            ctx.roles,
            perm,
            &ctx.action.target,
            p.source_ip,
        ) {
            return if token_refuses {
                token_scope()
            } else {
                Verdict::Pass
            };
        }
        let where_ = ctx
            .action
            .target
            .environment
            .as_deref()
            .map(|e| format!(" (environment {e})"))
            .unwrap_or_default();
        let held_elsewhere = authz::roles_for(&p.bindings, ctx.roles, &ctx.action.target)
            .iter()
            .any(|r| r.permissions.contains(&perm));
        if held_elsewhere {
            return deny(
                "authz.source_network",
                format!("当前来源地址不允许执行 {perm}"),
                format!("{perm} is not allowed from this source address{where_}"),
            );
        }
        deny(
            "authz.forbidden",
            format!("没有权限：需要 {perm}"),
            format!("forbidden: {perm} is required{where_}"),
        )
    }
}

/// Whoever requested an approval can never approve it.
struct SeparationOfDuties;

impl Check for SeparationOfDuties {
    fn stage(&self) -> Stage {
        Stage::SeparationOfDuties
    }
    fn check(&self, ctx: &GuardContext<'_>) -> Verdict {
        if ctx.action.kind == ActionKind::Approve
            && ctx.action.requested_by == Some(ctx.principal.user.id)
        {
            return deny(
                "sod.self_approval",
                "职责分离：申请人不能审批自己的申请",
                "separation of duties: the requester cannot approve their own request",
            );
        }
        Verdict::Pass
    }
}

/// Every object belongs to one declared environment; no action spans two.
struct EnvironmentIsolation;

impl Check for EnvironmentIsolation {
    fn stage(&self) -> Stage {
        Stage::EnvironmentIsolation
    }
    fn check(&self, ctx: &GuardContext<'_>) -> Verdict {
        let Some(env) = ctx.action.target.environment.as_deref() else {
            return Verdict::Pass;
        };
        if !ctx.environments.iter().any(|e| e == env) {
            return deny(
                "environment.unknown",
                format!("环境 {env} 不是本平台管理的环境"),
                format!("environment {env} is not managed by this deployment"),
            );
        }
        if let Some(other) = ctx.action.other_environments.iter().find(|e| *e != env) {
            return deny(
                "environment.cross",
                format!("禁止跨环境操作：{env} 与 {other}"),
                format!("cross-environment operations are refused: {env} and {other}"),
            );
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{RoleBinding, Scope, builtin_roles};
    use crate::user::UserKind;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn principal(role: &str, scope: Scope, via: Via) -> Principal {
        Principal {
            user: User {
                id: 7,
                username: "li.si".into(),
                real_name: "李四".into(),
                department: "运维部".into(),
                kind: UserKind::Employee,
                disabled: false,
                disabled_reason: None,
                must_change_password: false,
                mfa_enrolled: true,
                created_at: now(),
                updated_at: now(),
            },
            bindings: vec![RoleBinding {
                user_id: 7,
                role: role.into(),
                scope,
            }],
            source_ip: None,
            via,
        }
    }

    fn decide(p: &Principal, a: &Action) -> Decision {
        let roles = builtin_roles();
        let envs = vec!["prod".to_string(), "test".to_string()];
        let ctx = GuardContext {
            principal: p,
            action: a,
            roles: &roles,
            environments: &envs,
            now: now(),
        };
        Pipeline::standard().evaluate(&ctx)
    }

    fn code(d: &Decision) -> Option<&'static str> {
        d.denial().map(|p| p.code)
    }

    #[test]
    fn stages_run_in_order_and_missing_checks_are_reported() {
        let p = principal(
            "automation_operator",
            Scope::Environment("prod".into()),
            Via::Session { mfa: true },
        );
        let d = decide(
            &p,
            &Action::new(
                ActionKind::Execute,
                Permission::JobRun,
                "job.run",
                Target::environment("prod"),
            ),
        );
        assert!(d.allowed());
        let stages: Vec<Stage> = d.trail.iter().map(|(s, _)| *s).collect();
        assert_eq!(stages, Stage::ORDER.to_vec());
        let not_configured: Vec<Stage> = d
            .trail
            .iter()
            .filter(|(_, v)| *v == Verdict::NotConfigured)
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(
            not_configured,
            vec![
                Stage::ChangeWindow,
                Stage::DangerousContent,
                Stage::Approval
            ]
        );
    }

    #[test]
    fn each_stage_refuses_with_its_code() {
        let run = Action::new(
            ActionKind::Execute,
            Permission::JobRun,
            "job.run",
            Target::environment("prod"),
        );
        let op = |scope| principal("automation_operator", scope, Via::Session { mfa: true });
        // Permission in scope: a test-environment binding does not reach prod.
        assert_eq!(
            code(&decide(&op(Scope::Environment("test".into())), &run)),
            Some("authz.forbidden")
        );
        // Privileged session without the second factor.
        let no_mfa = principal(
            "automation_operator",
            Scope::Global,
            Via::Session { mfa: false },
        );
        assert_eq!(code(&decide(&no_mfa, &run)), Some("auth.mfa_required"));
        // Disabled account stops at authentication, before permissions.
        let mut disabled = op(Scope::Global);
        disabled.user.disabled = true;
        let d = decide(&disabled, &run);
        assert_eq!(code(&d), Some("auth.account_disabled"));
        assert_eq!(d.trail.len(), 1, "evaluation stops at the first denial");
        // Environment isolation: undeclared and cross-environment.
        let mut other = run.clone();
        other.target = Target::environment("dr");
        assert_eq!(
            code(&decide(&op(Scope::Global), &other)),
            Some("environment.unknown")
        );
        let mut cross = run.clone();
        cross.other_environments = vec!["test".into()];
        assert_eq!(
            code(&decide(&op(Scope::Global), &cross)),
            Some("environment.cross")
        );
        // Separation of duties: no self-approval.
        let approver = principal(
            "platform_operations",
            Scope::Global,
            Via::Session { mfa: true },
        );
        let mut approve = Action::new(
            ActionKind::Approve,
            Permission::ApprovalApprove,
            "approval.approve",
            Target::global(),
        );
        approve.requested_by = Some(7);
        assert_eq!(
            code(&decide(&approver, &approve)),
            Some("sod.self_approval")
        );
        approve.requested_by = Some(8);
        assert!(decide(&approver, &approve).allowed());
        // Tokens do only what they were scoped for.
        let token = principal(
            "automation_operator",
            Scope::Global,
            Via::Token {
                permissions: vec![Permission::JobRead],
            },
        );
        assert_eq!(code(&decide(&token, &run)), Some("auth.token_scope"));
        // A schedule runs jobs with its owner's roles, and does nothing else.
        let sched = |role| principal(role, Scope::Global, Via::Schedule { id: 3 });
        assert!(decide(&sched("automation_operator"), &run).allowed());
        assert_eq!(
            code(&decide(&sched("ops_development"), &run)),
            Some("authz.forbidden"),
            "the owner's permissions are checked"
        );
        let mut manage = run.clone();
        manage.permission = Permission::UserManage;
        manage.kind = ActionKind::Mutate;
        assert_eq!(
            code(&decide(&sched("platform_admin"), &manage)),
            Some("auth.token_scope")
        );
        assert_eq!(Via::Schedule { id: 3 }.label(), "schedule:3");
    }
}
