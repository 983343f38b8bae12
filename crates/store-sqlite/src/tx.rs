//! The read-write transaction. It starts with `BEGIN IMMEDIATE`, taking SQLite's write lock up
//! front: a transaction that read first and wrote later could otherwise fail with SQLITE_BUSY when
//! upgrading its lock, which no busy timeout can wait out.

use async_trait::async_trait;
use ballast_core::audit::{AuditDraft, AuditRecord};
use ballast_core::authz::{Role, RoleBinding};
use ballast_core::user::{User, UserId};
use ballast_store::{ApiToken, Environment, NewUserRow, Result, Session, StoreError, Tx};
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteQueryResult;
use sqlx::types::Json;
use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::audit;
use crate::error::db_err;
use crate::rows::{micros, scope_columns};

pub(crate) struct SqliteTx {
    pub(crate) tx: Transaction<'static, Sqlite>,
}

impl SqliteTx {
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// `NotFound` when a statement that targets one row changed none.
fn one(done: SqliteQueryResult, what: impl FnOnce() -> String) -> Result<()> {
    if done.rows_affected() == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

async fn user_exists(conn: &mut SqliteConnection, id: UserId) -> Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = ?")
        .bind(id)
        .fetch_one(conn)
        .await
        .map_err(db_err)?;
    Ok(n > 0)
}

#[async_trait]
impl Tx for SqliteTx {
    async fn insert_user(&mut self, u: &NewUserRow) -> Result<UserId> {
        let at = micros(u.created_at);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, real_name, department, kind, disabled, disabled_reason, \
             must_change_password, mfa_enrolled, created_at, updated_at) \
             VALUES (?, ?, ?, ?, 0, NULL, ?, 0, ?, ?) RETURNING id",
        )
        .bind(&u.username)
        .bind(&u.real_name)
        .bind(&u.department)
        .bind(Json(&u.kind))
        .bind(u.must_change_password)
        .bind(at)
        .bind(at)
        .fetch_one(self.conn())
        .await
        .map_err(db_err)?;
        // The first password was set when the account was created.
        sqlx::query(
            "INSERT INTO user_credentials (user_id, password_hash, password_changed_at, \
             mfa_secret, mfa_last_step, failed_logins, locked_until) \
             VALUES (?, ?, ?, NULL, NULL, 0, NULL)",
        )
        .bind(id)
        .bind(&u.password_hash)
        .bind(at)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(id)
    }

    async fn update_user(&mut self, u: &User) -> Result<()> {
        let done = sqlx::query(
            "UPDATE users SET username = ?, real_name = ?, department = ?, kind = ?, \
             disabled = ?, disabled_reason = ?, must_change_password = ?, mfa_enrolled = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(&u.username)
        .bind(&u.real_name)
        .bind(&u.department)
        .bind(Json(&u.kind))
        .bind(u.disabled)
        .bind(&u.disabled_reason)
        .bind(u.must_change_password)
        .bind(u.mfa_enrolled)
        .bind(micros(u.updated_at))
        .bind(u.id)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        one(done, || format!("user {}", u.id))
    }

    async fn set_password(
        &mut self,
        id: UserId,
        hash: &str,
        must_change: bool,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let at = micros(at);
        let done = sqlx::query(
            "UPDATE user_credentials SET password_hash = ?, password_changed_at = ? \
             WHERE user_id = ?",
        )
        .bind(hash)
        .bind(at)
        .bind(id)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        one(done, || format!("user {id}"))?;
        sqlx::query("UPDATE users SET must_change_password = ?, updated_at = ? WHERE id = ?")
            .bind(must_change)
            .bind(at)
            .bind(id)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_login_state(
        &mut self,
        id: UserId,
        failed: u32,
        locked_until: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE user_credentials SET failed_logins = ?, locked_until = ? WHERE user_id = ?",
        )
        .bind(i64::from(failed))
        .bind(locked_until.map(micros))
        .bind(id)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        one(done, || format!("user {id}"))
    }

    async fn set_mfa(&mut self, id: UserId, secret: Option<&str>, enrolled: bool) -> Result<()> {
        // Clearing the factor also forgets its last used step; a new secret keeps it, so a code
        // accepted while enrolling cannot be replayed.
        let done = sqlx::query(
            "UPDATE user_credentials SET mfa_secret = ?, \
             mfa_last_step = CASE WHEN ? THEN NULL ELSE mfa_last_step END WHERE user_id = ?",
        )
        .bind(secret)
        .bind(secret.is_none())
        .bind(id)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        one(done, || format!("user {id}"))?;
        sqlx::query("UPDATE users SET mfa_enrolled = ? WHERE id = ?")
            .bind(enrolled)
            .bind(id)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_mfa_last_step(&mut self, id: UserId, step: i64) -> Result<()> {
        // Only forward: a step at or before the last one is a replayed code.
        let done = sqlx::query(
            "UPDATE user_credentials SET mfa_last_step = ? \
             WHERE user_id = ? AND (mfa_last_step IS NULL OR mfa_last_step < ?)",
        )
        .bind(step)
        .bind(id)
        .bind(step)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        if done.rows_affected() > 0 {
            Ok(())
        } else if user_exists(self.conn(), id).await? {
            Err(StoreError::Conflict(format!(
                "TOTP step {step} of user {id} is not after the last used step (replayed code)"
            )))
        } else {
            Err(StoreError::NotFound(format!("user {id}")))
        }
    }

    async fn replace_recovery_codes(&mut self, id: UserId, hashes: &[String]) -> Result<()> {
        if !user_exists(self.conn(), id).await? {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(id)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        for hash in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)")
                .bind(id)
                .bind(hash)
                .execute(self.conn())
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    async fn use_recovery_code(&mut self, id: UserId, hash: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM recovery_codes WHERE user_id = ? AND code_hash = ?")
            .bind(id)
            .bind(hash)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn upsert_role(&mut self, r: &Role) -> Result<()> {
        sqlx::query(
            "INSERT INTO roles (key, name_zh, name_en, permissions, privileged, builtin, \
             allowed_networks) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET name_zh = excluded.name_zh, \
             name_en = excluded.name_en, permissions = excluded.permissions, \
             privileged = excluded.privileged, builtin = excluded.builtin, \
             allowed_networks = excluded.allowed_networks",
        )
        .bind(&r.key)
        .bind(&r.name_zh)
        .bind(&r.name_en)
        .bind(Json(&r.permissions))
        .bind(r.privileged)
        .bind(r.builtin)
        .bind(Json(&r.allowed_networks))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn insert_binding(&mut self, b: &RoleBinding, at: DateTime<Utc>) -> Result<()> {
        let (kind, name) = scope_columns(&b.scope);
        sqlx::query(
            "INSERT INTO role_bindings (user_id, role, scope_kind, scope_name, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(b.user_id)
        .bind(&b.role)
        .bind(kind)
        .bind(name)
        .bind(micros(at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_binding(&mut self, b: &RoleBinding) -> Result<bool> {
        let (kind, name) = scope_columns(&b.scope);
        let done = sqlx::query(
            "DELETE FROM role_bindings \
             WHERE user_id = ? AND role = ? AND scope_kind = ? AND scope_name = ?",
        )
        .bind(b.user_id)
        .bind(&b.role)
        .bind(kind)
        .bind(name)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn upsert_environment(&mut self, e: &Environment) -> Result<()> {
        sqlx::query(
            "INSERT INTO environments (name, description, security_zones, created_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET \
             description = excluded.description, security_zones = excluded.security_zones",
        )
        .bind(&e.name)
        .bind(&e.description)
        .bind(Json(&e.security_zones))
        .bind(micros(e.created_at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn insert_session(&mut self, s: &Session) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, \
             expires_at, mfa_verified, source_ip, user_agent, revoked) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id_hash)
        .bind(s.user_id)
        .bind(&s.csrf_token)
        .bind(micros(s.created_at))
        .bind(micros(s.last_seen_at))
        .bind(micros(s.expires_at))
        .bind(s.mfa_verified)
        .bind(&s.source_ip)
        .bind(&s.user_agent)
        .bind(s.revoked)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn set_session_mfa(&mut self, id_hash: &str) -> Result<()> {
        let done = sqlx::query("UPDATE sessions SET mfa_verified = 1 WHERE id_hash = ?")
            .bind(id_hash)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        one(done, || "session".to_string())
    }

    async fn revoke_session(&mut self, id_hash: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE id_hash = ?")
            .bind(id_hash)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_all_for_user(&mut self, id: UserId, at: DateTime<Utc>) -> Result<u64> {
        let sessions =
            sqlx::query("UPDATE sessions SET revoked = 1 WHERE user_id = ? AND revoked = 0")
                .bind(id)
                .execute(self.conn())
                .await
                .map_err(db_err)?;
        let tokens = sqlx::query(
            "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        )
        .bind(micros(at))
        .bind(id)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(sessions.rows_affected() + tokens.rows_affected())
    }

    async fn insert_token(&mut self, t: &ApiToken) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO api_tokens (user_id, name, token_hash, permissions, created_at, \
             expires_at, revoked_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(t.user_id)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(Json(&t.permissions))
        .bind(micros(t.created_at))
        .bind(micros(t.expires_at))
        .bind(t.revoked_at.map(micros))
        .bind(t.last_used_at.map(micros))
        .fetch_one(self.conn())
        .await
        .map_err(db_err)
    }

    async fn revoke_token(&mut self, id: i64, at: DateTime<Utc>) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(micros(at))
                .bind(id)
                .execute(self.conn())
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn commit(
        mut self: Box<Self>,
        drafts: Vec<AuditDraft>,
        at: DateTime<Utc>,
    ) -> Result<Vec<AuditRecord>> {
        if drafts.is_empty() {
            // Dropping the transaction rolls it back.
            return Err(StoreError::NoAudit);
        }
        let records = audit::append(self.conn(), drafts, at).await?;
        self.tx.commit().await.map_err(db_err)?;
        Ok(records)
    }
}
