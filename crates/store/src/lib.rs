//! Storage traits of the platform. Each backend (`ballast-store-sqlite`, `ballast-store-postgres`)
//! implements [`Store`] and [`Tx`]; [`conformance`] holds the one suite of cases both must pass.
//!
//! Audit in the same transaction as the change: every mutation happens inside a [`Tx`], and the
//! only way to commit one is [`Tx::commit`] with the audit drafts that describe it — they are
//! appended to the hash chain inside that same database transaction. A transaction cannot be
//! committed without at least one audit record.
//!
//! Timestamps are always bound from Rust (UTC), never taken from database defaults.

pub mod assessment;
pub mod cmdb;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod exec;
pub mod model;
pub mod schedule;

use async_trait::async_trait;
use ballast_core::audit::{AuditDraft, AuditRecord, Checkpoint};
use ballast_core::authz::{Role, RoleBinding};
use ballast_core::user::{User, UserId};
use chrono::{DateTime, Utc};

pub use assessment::*;
pub use cmdb::*;
pub use exec::*;
pub use model::*;
pub use schedule::*;

/// Storage failures. `Unavailable` maps to HTTP 503; `Conflict` and `NotFound` to 409/404.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("a transaction must be committed with at least one audit record")]
    NoAudit,
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Read access and transactions.
#[async_trait]
pub trait Store: ExecStore + ScheduleStore + AssessmentStore + CmdbStore + Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Connections in the pool: (open, idle), for `/metrics`.
    fn pool_stats(&self) -> (u32, usize);

    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;
    /// Applied migration versions are current (for `/readyz`).
    async fn migrations_current(&self) -> Result<bool>;

    /// Starts a read-write transaction.
    async fn begin(&self) -> Result<Box<dyn Tx>>;

    // ---- users
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>>;
    async fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    async fn users(&self) -> Result<Vec<User>>;
    /// Password hash, TOTP secret and login counters of a user.
    async fn credentials(&self, id: UserId) -> Result<Option<Credentials>>;
    async fn recovery_code_hashes(&self, id: UserId) -> Result<Vec<String>>;
    async fn user_count(&self) -> Result<u64>;

    // ---- roles and bindings
    async fn roles(&self) -> Result<Vec<Role>>;
    async fn bindings(&self, user: Option<UserId>) -> Result<Vec<RoleBinding>>;

    // ---- environments
    async fn environments(&self) -> Result<Vec<Environment>>;

    // ---- sessions and tokens (looked up by the SHA-256 of the secret)
    async fn session(&self, id_hash: &str) -> Result<Option<Session>>;
    async fn token(&self, token_hash: &str) -> Result<Option<ApiToken>>;
    async fn tokens(&self, user: Option<UserId>) -> Result<Vec<ApiToken>>;

    /// Bookkeeping outside transactions, not audited: a session's last activity (idle expiry) and
    /// a token's last use.
    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<()>;
    async fn touch_token(&self, id: i64, at: DateTime<Utc>) -> Result<()>;

    // ---- audit
    /// Records in sequence order from `after_seq` (exclusive), at most `limit`.
    async fn audit_range(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>>;
    async fn audit_search(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>>;
    async fn audit_head(&self) -> Result<Option<(i64, String)>>;
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>>;
    /// Stores a signed checkpoint. Not itself an audit record (it would move the head it signs).
    async fn insert_checkpoint(&self, c: &Checkpoint) -> Result<()>;

    // ---- leases for background work shared by replicas
    /// Takes or renews the lease `name` for `holder` until `until` if it is free, expired or
    /// already held by `holder`. Returns whether `holder` holds it.
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;

    // ---- whole-database export/import (ballast admin export|import)
    async fn export_all(&self) -> Result<Dump>;
    /// Loads a dump into an empty database, keeping audit records and their hashes as they are.
    async fn import_all(&self, dump: &Dump) -> Result<()>;
}

/// One read-write transaction. Dropping it without commit rolls back.
#[async_trait]
pub trait Tx: ExecTx + ScheduleTx + AssessmentTx + CmdbTx + Send {
    async fn insert_user(&mut self, u: &NewUserRow) -> Result<UserId>;
    async fn update_user(&mut self, u: &User) -> Result<()>;
    async fn set_password(
        &mut self,
        id: UserId,
        hash: &str,
        must_change: bool,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Failed-login counter and lock-out time.
    async fn set_login_state(
        &mut self,
        id: UserId,
        failed: u32,
        locked_until: Option<DateTime<Utc>>,
    ) -> Result<()>;
    /// `None` clears the second factor.
    async fn set_mfa(&mut self, id: UserId, secret: Option<&str>, enrolled: bool) -> Result<()>;
    async fn set_mfa_last_step(&mut self, id: UserId, step: i64) -> Result<()>;
    async fn replace_recovery_codes(&mut self, id: UserId, hashes: &[String]) -> Result<()>;
    /// Consumes a recovery code; false if it was not there.
    async fn use_recovery_code(&mut self, id: UserId, hash: &str) -> Result<bool>;

    async fn upsert_role(&mut self, r: &Role) -> Result<()>;
    async fn insert_binding(&mut self, b: &RoleBinding, at: DateTime<Utc>) -> Result<()>;
    async fn delete_binding(&mut self, b: &RoleBinding) -> Result<bool>;

    async fn upsert_environment(&mut self, e: &Environment) -> Result<()>;

    async fn insert_session(&mut self, s: &Session) -> Result<()>;
    /// Marks the session's second factor as verified (audited as `auth.mfa`).
    async fn set_session_mfa(&mut self, id_hash: &str) -> Result<()>;
    async fn revoke_session(&mut self, id_hash: &str) -> Result<()>;
    /// Revokes every session and token of a user; returns how many.
    async fn revoke_all_for_user(&mut self, id: UserId, at: DateTime<Utc>) -> Result<u64>;

    async fn insert_token(&mut self, t: &ApiToken) -> Result<i64>;
    async fn revoke_token(&mut self, id: i64, at: DateTime<Utc>) -> Result<bool>;

    /// Appends the audit records (hash-chained after the current head) and commits.
    /// Refuses an empty list with [`StoreError::NoAudit`].
    async fn commit(
        self: Box<Self>,
        audit: Vec<AuditDraft>,
        at: DateTime<Utc>,
    ) -> Result<Vec<AuditRecord>>;
}
