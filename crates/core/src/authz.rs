//! Roles, permissions, scoped role bindings and separation of duties (standard 7.2.1.2 角色权限管理,
//! 9.1.1.1). Built-in roles follow the standard's 表17 role list; custom roles are permission sets.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::problem::Problem;
use crate::user::UserId;

/// Everything a role can allow. Stable string keys (`user.manage`) are what is stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "user.read")]
    UserRead,
    #[serde(rename = "user.manage")]
    UserManage,
    #[serde(rename = "role.read")]
    RoleRead,
    #[serde(rename = "role.manage")]
    RoleManage,
    #[serde(rename = "audit.read")]
    AuditRead,
    #[serde(rename = "audit.export")]
    AuditExport,
    #[serde(rename = "environment.read")]
    EnvironmentRead,
    #[serde(rename = "environment.manage")]
    EnvironmentManage,
    #[serde(rename = "system.read")]
    SystemRead,
    #[serde(rename = "approval.approve")]
    ApprovalApprove,
    #[serde(rename = "calendar.read")]
    CalendarRead,
    #[serde(rename = "calendar.manage")]
    CalendarManage,
    #[serde(rename = "assessment.read")]
    AssessmentRead,
    #[serde(rename = "assessment.write")]
    AssessmentWrite,
    #[serde(rename = "script.read")]
    ScriptRead,
    #[serde(rename = "script.write")]
    ScriptWrite,
    #[serde(rename = "job.read")]
    JobRead,
    #[serde(rename = "job.run")]
    JobRun,
    #[serde(rename = "cmdb.read")]
    CmdbRead,
    #[serde(rename = "cmdb.write")]
    CmdbWrite,
    /// Agents, enrolment tokens, SSH credentials and host keys, dangerous-command rules.
    #[serde(rename = "exec.manage")]
    ExecManage,
}

impl Permission {
    pub const ALL: [Permission; 21] = [
        Permission::UserRead,
        Permission::UserManage,
        Permission::RoleRead,
        Permission::RoleManage,
        Permission::AuditRead,
        Permission::AuditExport,
        Permission::EnvironmentRead,
        Permission::EnvironmentManage,
        Permission::SystemRead,
        Permission::ApprovalApprove,
        Permission::CalendarRead,
        Permission::CalendarManage,
        Permission::AssessmentRead,
        Permission::AssessmentWrite,
        Permission::ScriptRead,
        Permission::ScriptWrite,
        Permission::JobRead,
        Permission::JobRun,
        Permission::CmdbRead,
        Permission::CmdbWrite,
        Permission::ExecManage,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Permission::UserRead => "user.read",
            Permission::UserManage => "user.manage",
            Permission::RoleRead => "role.read",
            Permission::RoleManage => "role.manage",
            Permission::AuditRead => "audit.read",
            Permission::AuditExport => "audit.export",
            Permission::EnvironmentRead => "environment.read",
            Permission::EnvironmentManage => "environment.manage",
            Permission::SystemRead => "system.read",
            Permission::ApprovalApprove => "approval.approve",
            Permission::CalendarRead => "calendar.read",
            Permission::CalendarManage => "calendar.manage",
            Permission::AssessmentRead => "assessment.read",
            Permission::AssessmentWrite => "assessment.write",
            Permission::ScriptRead => "script.read",
            Permission::ScriptWrite => "script.write",
            Permission::JobRead => "job.read",
            Permission::JobRun => "job.run",
            Permission::CmdbRead => "cmdb.read",
            Permission::CmdbWrite => "cmdb.write",
            Permission::ExecManage => "exec.manage",
        }
    }

    pub fn parse(key: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.key() == key)
    }

    /// Read-only permissions (`*.read`): the auditor role holds all of them and nothing else but
    /// the audit export.
    pub fn is_read(self) -> bool {
        self.key().ends_with(".read")
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A role: a named permission set, optionally limited to source networks (7.2.1.3 操作地点).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub key: String,
    pub name_zh: String,
    pub name_en: String,
    pub permissions: BTreeSet<Permission>,
    /// Privileged roles require a second factor.
    pub privileged: bool,
    pub builtin: bool,
    /// Empty = any source address.
    pub allowed_networks: Vec<IpNet>,
}

impl Role {
    pub fn allows_source(&self, ip: Option<IpAddr>) -> bool {
        if self.allowed_networks.is_empty() {
            return true;
        }
        ip.is_some_and(|ip| self.allowed_networks.iter().any(|n| n.contains(&ip)))
    }
}

pub const PRODUCT_DESIGN: &str = "product_design";
pub const OPS_DEVELOPMENT: &str = "ops_development";
pub const TEST_VERIFICATION: &str = "test_verification";
pub const AUTOMATION_OPERATOR: &str = "automation_operator";
pub const PLATFORM_ADMIN: &str = "platform_admin";
pub const PLATFORM_OPERATIONS: &str = "platform_operations";
pub const AUDITOR: &str = "auditor";

/// The seven roles of the standard's 表17.
pub fn builtin_roles() -> Vec<Role> {
    use Permission::*;
    let role = |key: &str, zh: &str, en: &str, privileged: bool, perms: &[Permission]| Role {
        key: key.to_string(),
        name_zh: zh.to_string(),
        name_en: en.to_string(),
        permissions: perms.iter().copied().collect(),
        privileged,
        builtin: true,
        allowed_networks: Vec::new(),
    };
    let reads: Vec<Permission> = Permission::ALL
        .into_iter()
        .filter(|p| p.is_read())
        .collect();
    let mut auditor = reads.clone();
    auditor.push(AuditExport);
    vec![
        role(
            PRODUCT_DESIGN,
            "产品设计",
            "Product design",
            false,
            &[
                AssessmentRead,
                CalendarRead,
                ScriptRead,
                JobRead,
                CmdbRead,
                EnvironmentRead,
            ],
        ),
        role(
            OPS_DEVELOPMENT,
            "运维开发",
            "Ops development",
            false,
            &[
                ScriptRead,
                ScriptWrite,
                JobRead,
                CmdbRead,
                CalendarRead,
                EnvironmentRead,
            ],
        ),
        role(
            TEST_VERIFICATION,
            "测试验证",
            "Test & verification",
            false,
            &[
                ScriptRead,
                JobRead,
                JobRun,
                CmdbRead,
                CalendarRead,
                EnvironmentRead,
            ],
        ),
        role(
            AUTOMATION_OPERATOR,
            "自动化执行",
            "Automation operator",
            true,
            &[
                ScriptRead,
                JobRead,
                JobRun,
                CmdbRead,
                CalendarRead,
                EnvironmentRead,
            ],
        ),
        role(
            PLATFORM_ADMIN,
            "平台管理",
            "Platform admin",
            true,
            &[
                UserRead,
                UserManage,
                RoleRead,
                RoleManage,
                EnvironmentRead,
                EnvironmentManage,
                SystemRead,
                CalendarRead,
                CalendarManage,
                AuditRead,
                ExecManage,
                JobRead,
                ScriptRead,
            ],
        ),
        role(
            PLATFORM_OPERATIONS,
            "平台运营",
            "Platform operations",
            true,
            &[
                UserRead,
                RoleRead,
                EnvironmentRead,
                SystemRead,
                ApprovalApprove,
                AssessmentRead,
                AssessmentWrite,
                CalendarRead,
                JobRead,
                CmdbRead,
                CmdbWrite,
            ],
        ),
        role(AUDITOR, "审计", "Auditor", false, &auditor),
    ]
}

/// Where a role binding applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Scope {
    Global,
    Environment(String),
    BusinessSystem(String),
}

impl Scope {
    /// Whether two scopes can cover the same object. A business system may span environments, so
    /// an environment and a business system overlap (conservative: separation of duties refuses more).
    pub fn overlaps(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Global, _) | (_, Scope::Global) => true,
            (Scope::Environment(a), Scope::Environment(b)) => a == b,
            (Scope::BusinessSystem(a), Scope::BusinessSystem(b)) => a == b,
            _ => true,
        }
    }

    /// Whether a binding with this scope covers `target`.
    pub fn covers(&self, target: &Target) -> bool {
        match self {
            Scope::Global => true,
            Scope::Environment(e) => target.environment.as_deref() == Some(e),
            Scope::BusinessSystem(b) => target.business_system.as_deref() == Some(b),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Scope::Global => "global".to_string(),
            Scope::Environment(e) => format!("environment:{e}"),
            Scope::BusinessSystem(b) => format!("business:{b}"),
        }
    }

    /// Parses `global`, `environment:NAME` (or `env:NAME`) and `business:NAME`.
    pub fn parse(s: &str) -> Option<Scope> {
        let s = s.trim();
        if s == "global" {
            return Some(Scope::Global);
        }
        let (kind, name) = s.split_once(':')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        match kind.trim() {
            "environment" | "env" => Some(Scope::Environment(name.to_string())),
            "business" => Some(Scope::BusinessSystem(name.to_string())),
            _ => None,
        }
    }
}

/// What an action touches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub environment: Option<String>,
    pub business_system: Option<String>,
    pub security_zone: Option<String>,
    /// The tier of the system touched (e.g. `core`), for change-window policies.
    #[serde(default)]
    pub tier: Option<String>,
}

impl Target {
    pub fn global() -> Target {
        Target::default()
    }
    pub fn environment(env: &str) -> Target {
        Target {
            environment: Some(env.to_string()),
            ..Target::default()
        }
    }
}

/// A user holds a role in a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleBinding {
    pub user_id: UserId,
    pub role: String,
    pub scope: Scope,
}

/// Two roles no one may hold in overlapping scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExclusivePair(pub String, pub String);

/// The defaults: 审计 × 自动化执行, 审计 × 平台管理, 运维开发 × 测试验证.
pub fn default_exclusive_pairs() -> Vec<ExclusivePair> {
    vec![
        ExclusivePair(AUDITOR.into(), AUTOMATION_OPERATOR.into()),
        ExclusivePair(AUDITOR.into(), PLATFORM_ADMIN.into()),
        ExclusivePair(OPS_DEVELOPMENT.into(), TEST_VERIFICATION.into()),
    ]
}

/// Refuses a grant that would give one person two mutually exclusive roles in overlapping scopes.
pub fn check_separation_of_duties(
    existing: &[RoleBinding],
    grant: &RoleBinding,
    pairs: &[ExclusivePair],
    roles: &[Role],
) -> Result<(), Problem> {
    let name = |key: &str| {
        roles.iter().find(|r| r.key == key).map_or_else(
            || (key.to_string(), key.to_string()),
            |r| (r.name_zh.clone(), r.name_en.clone()),
        )
    };
    for held in existing.iter().filter(|b| b.user_id == grant.user_id) {
        let exclusive = pairs.iter().any(|ExclusivePair(a, b)| {
            (a == &held.role && b == &grant.role) || (b == &held.role && a == &grant.role)
        });
        if exclusive && held.scope.overlaps(&grant.scope) {
            let (held_zh, held_en) = name(&held.role);
            let (new_zh, new_en) = name(&grant.role);
            return Err(Problem::field(
                "authz.separation_of_duties",
                "role",
                format!(
                    "职责分离：该用户已在 {} 范围内担任「{held_zh}」，不能再在重叠范围 {} 内授予互斥角色「{new_zh}」",
                    held.scope.label(),
                    grant.scope.label()
                ),
                format!(
                    "separation of duties: the user already holds {held_en} in {}, which excludes {new_en} in the overlapping scope {}",
                    held.scope.label(),
                    grant.scope.label()
                ),
            ));
        }
    }
    Ok(())
}

/// The roles a user's bindings give for `target`, resolved against the role table.
pub fn roles_for<'r>(
    bindings: &[RoleBinding],
    roles: &'r [Role],
    target: &Target,
) -> Vec<&'r Role> {
    bindings
        .iter()
        .filter(|b| b.scope.covers(target))
        .filter_map(|b| roles.iter().find(|r| r.key == b.role))
        .collect()
}

/// Whether some binding covering `target` grants `perm` from an allowed source network.
pub fn is_allowed(
    bindings: &[RoleBinding],
    roles: &[Role],
    perm: Permission,
    target: &Target,
    source: Option<IpAddr>,
) -> bool {
    roles_for(bindings, roles, target)
        .iter()
        .any(|r| r.permissions.contains(&perm) && r.allows_source(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(user: UserId, role: &str, scope: Scope) -> RoleBinding {
        RoleBinding {
            user_id: user,
            role: role.into(),
            scope,
        }
    }

    #[test]
    fn auditor_reads_everything_and_changes_nothing() {
        let roles = builtin_roles();
        let auditor = roles
            .iter()
            .find(|r| r.key == AUDITOR)
            .map(|r| r.permissions.clone())
            .unwrap_or_default();
        for p in Permission::ALL {
            assert_eq!(
                auditor.contains(&p),
                p.is_read() || p == Permission::AuditExport,
                "{p}"
            );
        }
    }

    #[test]
    fn sod_refuses_exclusive_roles_in_overlapping_scopes() {
        let roles = builtin_roles();
        let pairs = default_exclusive_pairs();
        let held = [bind(1, AUDITOR, Scope::Global)];
        let err = check_separation_of_duties(
            &held,
            &bind(1, PLATFORM_ADMIN, Scope::Environment("prod".into())),
            &pairs,
            &roles,
        );
        assert!(err.is_err_and(
            |e| e.message_zh.contains("审计") && e.code == "authz.separation_of_duties"
        ));
        // Other user: fine. Different environments for ops-dev / test: fine.
        assert!(
            check_separation_of_duties(
                &held,
                &bind(2, PLATFORM_ADMIN, Scope::Global),
                &pairs,
                &roles
            )
            .is_ok()
        );
        let dev = [bind(3, OPS_DEVELOPMENT, Scope::Environment("test".into()))];
        assert!(
            check_separation_of_duties(
                &dev,
                &bind(3, TEST_VERIFICATION, Scope::Environment("prod".into())),
                &pairs,
                &roles
            )
            .is_ok()
        );
        assert!(
            check_separation_of_duties(
                &dev,
                &bind(3, TEST_VERIFICATION, Scope::Environment("test".into())),
                &pairs,
                &roles
            )
            .is_err()
        );
    }

    #[test]
    fn scoped_permissions_and_networks() {
        let mut roles = builtin_roles();
        let b = [bind(
            1,
            AUTOMATION_OPERATOR,
            Scope::Environment("test".into()),
        )];
        assert!(is_allowed(
            &b,
            &roles,
            Permission::JobRun,
            &Target::environment("test"),
            None
        ));
        assert!(!is_allowed(
            &b,
            &roles,
            Permission::JobRun,
            &Target::environment("prod"),
            None
        ));
        assert!(!is_allowed(
            &b,
            &roles,
            Permission::UserManage,
            &Target::global(),
            None
        ));
        if let Some(r) = roles.iter_mut().find(|r| r.key == AUTOMATION_OPERATOR) {
            r.allowed_networks = vec!["10.1.0.0/16".parse().unwrap_or_else(|_| IpNet::default())];
        }
        let inside: IpAddr = "10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let outside: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(is_allowed(
            &b,
            &roles,
            Permission::JobRun,
            &Target::environment("test"),
            Some(inside)
        ));
        assert!(!is_allowed(
            &b,
            &roles,
            Permission::JobRun,
            &Target::environment("test"),
            Some(outside)
        ));
        assert!(!is_allowed(
            &b,
            &roles,
            Permission::JobRun,
            &Target::environment("test"),
            None
        ));
    }

    #[test]
    fn scope_parse() {
        assert_eq!(Scope::parse("global"), Some(Scope::Global));
        assert_eq!(
            Scope::parse("env:prod"),
            Some(Scope::Environment("prod".into()))
        );
        assert_eq!(
            Scope::parse("business:集中交易"),
            Some(Scope::BusinessSystem("集中交易".into()))
        );
        assert_eq!(Scope::parse("env:"), None);
        assert_eq!(Scope::parse("team:x"), None);
    }
}
