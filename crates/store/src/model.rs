//! Rows the store keeps besides the core domain types.

use ballast_core::audit::{AuditRecord, Checkpoint};
use ballast_core::authz::{Permission, Role, RoleBinding};
use ballast_core::user::{User, UserId, UserKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user to insert, with its first password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUserRow {
    pub username: String,
    pub real_name: String,
    pub department: String,
    pub kind: UserKind,
    pub password_hash: String,
    pub must_change_password: bool,
    pub created_at: DateTime<Utc>,
}

/// What login needs and nobody else sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub user_id: UserId,
    pub password_hash: String,
    pub password_changed_at: Option<DateTime<Utc>>,
    pub mfa_secret: Option<String>,
    pub mfa_last_step: Option<i64>,
    pub failed_logins: u32,
    pub locked_until: Option<DateTime<Utc>>,
}

/// A managed environment (prod, test, …) with its security zones (安全区域) as labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub name: String,
    pub description: String,
    pub security_zones: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A browser session; the cookie holds a secret whose SHA-256 is `id_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id_hash: String,
    pub user_id: UserId,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
    pub mfa_verified: bool,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub revoked: bool,
}

/// An API token (stored hashed, scoped, expiring).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: UserId,
    pub name: String,
    pub token_hash: String,
    pub permissions: Vec<Permission>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Filters for the audit search (all optional, combined with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action_prefix: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Substring of the record's content.
    pub text: Option<String>,
    /// Newest first; records with `seq < before_seq` when set (paging).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// Everything in a database, for `ballast admin export|import`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dump {
    pub format: u32,
    pub users: Vec<UserDump>,
    pub roles: Vec<Role>,
    pub bindings: Vec<RoleBinding>,
    pub environments: Vec<Environment>,
    pub tokens: Vec<ApiToken>,
    pub audit: Vec<AuditRecord>,
    pub checkpoints: Vec<Checkpoint>,
    /// The execution engine's data (absent in dumps from before it existed).
    #[serde(default)]
    pub exec: crate::exec::ExecDump,
    /// Online assessments (absent in dumps from before they existed).
    #[serde(default)]
    pub assessments: crate::assessment::AssessmentDump,
    /// The CMDB (absent in dumps from before it was exported).
    #[serde(default)]
    pub cmdb: crate::cmdb::CmdbDump,
}

/// A user with its credentials and recovery-code hashes (sessions are not exported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDump {
    pub user: User,
    pub credentials: Credentials,
    pub recovery_codes: Vec<String>,
}
