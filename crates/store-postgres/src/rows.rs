//! Row mapping: one function per table. Nothing read from the database is trusted: a value that
//! does not decode is `StoreError::Corrupt` naming its table and column.

use ballast_core::audit::{AuditRecord, Checkpoint};
use ballast_core::authz::{Role, RoleBinding, Scope};
use ballast_core::user::User;
use ballast_store::{ApiToken, Credentials, Environment, Result, Session, StoreError};
use chrono::{DateTime, SubsecRound, Utc};
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Decode, Postgres, Row, Type};

pub(crate) const USER_COLUMNS: &str = "id, username, real_name, department, kind, disabled, \
     disabled_reason, must_change_password, mfa_enrolled, created_at, updated_at";
pub(crate) const CREDENTIAL_COLUMNS: &str = "user_id, password_hash, password_changed_at, \
     mfa_secret, mfa_last_step, failed_logins, locked_until";
pub(crate) const ROLE_COLUMNS: &str =
    "key, name_zh, name_en, permissions, privileged, builtin, allowed_networks";
pub(crate) const BINDING_COLUMNS: &str = "user_id, role, scope_kind, scope_name";
pub(crate) const ENVIRONMENT_COLUMNS: &str = "name, description, security_zones, created_at";
pub(crate) const SESSION_COLUMNS: &str = "id_hash, user_id, csrf_token, created_at, last_seen_at, \
     expires_at, mfa_verified, source_ip, user_agent, revoked";
pub(crate) const TOKEN_COLUMNS: &str = "id, user_id, name, token_hash, permissions, created_at, \
     expires_at, revoked_at, last_used_at";
pub(crate) const AUDIT_COLUMNS: &str = "seq, at, content, prev_hash, hash";
pub(crate) const CHECKPOINT_COLUMNS: &str = "seq, hash, at, signature";

/// Timestamps are kept to the microsecond on both backends (PostgreSQL's precision), so a record
/// reads back as it was written and a dump moves between backends unchanged.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

pub(crate) fn corrupt(table: &str, column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table}.{column}: {e}"))
}

fn get<'r, T>(row: &'r PgRow, table: &str, column: &str) -> Result<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(column).map_err(|e| corrupt(table, column, e))
}

fn json<T: DeserializeOwned>(row: &PgRow, table: &str, column: &str) -> Result<T> {
    get::<Json<T>>(row, table, column).map(|j| j.0)
}

fn count(row: &PgRow, table: &str, column: &str) -> Result<u32> {
    let n: i64 = get(row, table, column)?;
    u32::try_from(n).map_err(|e| corrupt(table, column, e))
}

/// A scope as its two key columns (a global scope has an empty name).
pub(crate) fn scope_columns(s: &Scope) -> (&'static str, &str) {
    match s {
        Scope::Global => ("global", ""),
        Scope::Environment(n) => ("environment", n),
        Scope::BusinessSystem(n) => ("business_system", n),
    }
}

fn scope(kind: &str, name: String) -> Option<Scope> {
    match kind {
        "global" if name.is_empty() => Some(Scope::Global),
        "environment" => Some(Scope::Environment(name)),
        "business_system" => Some(Scope::BusinessSystem(name)),
        _ => None,
    }
}

pub(crate) fn user(row: &PgRow) -> Result<User> {
    const T: &str = "users";
    Ok(User {
        id: get(row, T, "id")?,
        username: get(row, T, "username")?,
        real_name: get(row, T, "real_name")?,
        department: get(row, T, "department")?,
        kind: json(row, T, "kind")?,
        disabled: get(row, T, "disabled")?,
        disabled_reason: get(row, T, "disabled_reason")?,
        must_change_password: get(row, T, "must_change_password")?,
        mfa_enrolled: get(row, T, "mfa_enrolled")?,
        created_at: get(row, T, "created_at")?,
        updated_at: get(row, T, "updated_at")?,
    })
}

pub(crate) fn credentials(row: &PgRow) -> Result<Credentials> {
    const T: &str = "user_credentials";
    Ok(Credentials {
        user_id: get(row, T, "user_id")?,
        password_hash: get(row, T, "password_hash")?,
        password_changed_at: get(row, T, "password_changed_at")?,
        mfa_secret: get(row, T, "mfa_secret")?,
        mfa_last_step: get(row, T, "mfa_last_step")?,
        failed_logins: count(row, T, "failed_logins")?,
        locked_until: get(row, T, "locked_until")?,
    })
}

pub(crate) fn role(row: &PgRow) -> Result<Role> {
    const T: &str = "roles";
    Ok(Role {
        key: get(row, T, "key")?,
        name_zh: get(row, T, "name_zh")?,
        name_en: get(row, T, "name_en")?,
        permissions: json(row, T, "permissions")?,
        privileged: get(row, T, "privileged")?,
        builtin: get(row, T, "builtin")?,
        allowed_networks: json(row, T, "allowed_networks")?,
    })
}

pub(crate) fn binding(row: &PgRow) -> Result<RoleBinding> {
    const T: &str = "role_bindings";
    let kind: String = get(row, T, "scope_kind")?;
    let name: String = get(row, T, "scope_name")?;
    let scope = scope(&kind, name).ok_or_else(|| corrupt(T, "scope_kind", kind))?;
    Ok(RoleBinding {
        user_id: get(row, T, "user_id")?,
        role: get(row, T, "role")?,
        scope,
    })
}

pub(crate) fn environment(row: &PgRow) -> Result<Environment> {
    const T: &str = "environments";
    Ok(Environment {
        name: get(row, T, "name")?,
        description: get(row, T, "description")?,
        security_zones: json(row, T, "security_zones")?,
        created_at: get(row, T, "created_at")?,
    })
}

pub(crate) fn session(row: &PgRow) -> Result<Session> {
    const T: &str = "sessions";
    Ok(Session {
        id_hash: get(row, T, "id_hash")?,
        user_id: get(row, T, "user_id")?,
        csrf_token: get(row, T, "csrf_token")?,
        created_at: get(row, T, "created_at")?,
        last_seen_at: get(row, T, "last_seen_at")?,
        expires_at: get(row, T, "expires_at")?,
        mfa_verified: get(row, T, "mfa_verified")?,
        source_ip: get(row, T, "source_ip")?,
        user_agent: get(row, T, "user_agent")?,
        revoked: get(row, T, "revoked")?,
    })
}

pub(crate) fn token(row: &PgRow) -> Result<ApiToken> {
    const T: &str = "api_tokens";
    Ok(ApiToken {
        id: get(row, T, "id")?,
        user_id: get(row, T, "user_id")?,
        name: get(row, T, "name")?,
        token_hash: get(row, T, "token_hash")?,
        permissions: json(row, T, "permissions")?,
        created_at: get(row, T, "created_at")?,
        expires_at: get(row, T, "expires_at")?,
        revoked_at: get(row, T, "revoked_at")?,
        last_used_at: get(row, T, "last_used_at")?,
    })
}

pub(crate) fn audit(row: &PgRow) -> Result<AuditRecord> {
    const T: &str = "audit_log";
    Ok(AuditRecord {
        seq: get(row, T, "seq")?,
        at: get(row, T, "at")?,
        content: get(row, T, "content")?,
        prev_hash: get(row, T, "prev_hash")?,
        hash: get(row, T, "hash")?,
    })
}

pub(crate) fn checkpoint(row: &PgRow) -> Result<Checkpoint> {
    const T: &str = "audit_checkpoints";
    Ok(Checkpoint {
        seq: get(row, T, "seq")?,
        hash: get(row, T, "hash")?,
        at: get(row, T, "at")?,
        signature: get(row, T, "signature")?,
    })
}

/// The chain head row: `None` while the chain is empty.
pub(crate) fn head(row: &PgRow) -> Result<Option<(i64, String)>> {
    const T: &str = "audit_head";
    let seq: i64 = get(row, T, "seq")?;
    let hash: String = get(row, T, "hash")?;
    Ok((seq > 0).then_some((seq, hash)))
}
