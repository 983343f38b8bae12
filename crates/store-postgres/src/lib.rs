//! The Ballast store on PostgreSQL, for production and for several `ballast serve` replicas
//! sharing one database.
//!
//! - Migrations under `migrations/`, embedded and applied on connect; sqlx takes an advisory
//!   lock while migrating, so replicas starting together do not race.
//! - Audit appends are serialised across replicas by a row lock on the one-row `audit_head`
//!   table (see [`audit`]); leases are taken with one atomic `INSERT … ON CONFLICT … DO UPDATE …
//!   WHERE` (see [`PostgresStore::try_lease`](Store::try_lease)).
//! - The engine's storage (`ballast_store::exec`) is in `exec`, its statements shared with the
//!   SQLite backend; replicas claim runs with `FOR UPDATE SKIP LOCKED`, so a run is never handed
//!   to two of them.
//! - Text ordering uses the "C" collation, so lists come out in the same order as on SQLite
//!   whatever the database's locale.

mod audit;
mod dump;
mod error;
mod exec;
mod rows;
mod tx;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use ballast_core::audit::{AuditRecord, Checkpoint};
use ballast_core::authz::{Role, RoleBinding};
use ballast_core::user::{User, UserId};
use ballast_store::{
    ApiToken, AuditQuery, Credentials, Dump, Environment, Result, Session, Store, StoreError, Tx,
};
use chrono::{DateTime, Utc};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Executor, PgConnection, Postgres};

pub use sqlx::postgres::PgConnectOptions as ConnectOptions;

use crate::error::{db_err, migrate_err};
use crate::rows::{
    BINDING_COLUMNS, CHECKPOINT_COLUMNS, CREDENTIAL_COLUMNS, SESSION_COLUMNS, TOKEN_COLUMNS,
    USER_COLUMNS, micros,
};

static MIGRATOR: Migrator = sqlx::migrate!();

const MAX_CONNECTIONS: u32 = 10;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?…`) and applies the
    /// migrations.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid PostgreSQL URL: {e}")))?;
        Self::connect_with(options).await
    }

    /// Connects with explicit options (tests use it to pick a database) and applies the
    /// migrations.
    pub async fn connect_with(options: PgConnectOptions) -> Result<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.application_name("ballast"))
            .await
            .map_err(|e| match db_err(e) {
                StoreError::Other(m) => StoreError::Unavailable(m),
                other => other,
            })?;
        MIGRATOR.run(&pool).await.map_err(migrate_err)?;
        Ok(PostgresStore { pool })
    }

    /// Closes every connection (waiting for those in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs one SQL statement outside the product's API and returns the number of rows it
    /// changed. For tests only: the conformance suite uses it to prove the database itself
    /// refuses to alter the audit trail.
    pub async fn execute_raw_for_tests(&self, sql: &str) -> Result<u64> {
        let done = self.pool.execute(sql).await.map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn conn(&self) -> Result<PoolConnection<Postgres>> {
        self.pool.acquire().await.map_err(db_err)
    }
}

/// Whether the applied migrations are exactly the embedded ones (same versions and checksums).
async fn migrations_match(conn: &mut PgConnection) -> Result<bool> {
    if conn.dirty_version().await.map_err(migrate_err)?.is_some() {
        return Ok(false);
    }
    let mut applied: Vec<(i64, Vec<u8>)> = conn
        .list_applied_migrations()
        .await
        .map_err(migrate_err)?
        .into_iter()
        .map(|m| (m.version, m.checksum.into_owned()))
        .collect();
    let mut embedded: Vec<(i64, Vec<u8>)> = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| (m.version, m.checksum.to_vec()))
        .collect();
    applied.sort();
    embedded.sort();
    Ok(applied == embedded)
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn migrations_current(&self) -> Result<bool> {
        migrations_match(&mut *self.conn().await?).await
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        let tx = self.pool.begin().await.map_err(db_err)?;
        Ok(Box::new(tx::PgTx { tx }))
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(rows::user)
        .transpose()
    }

    async fn users(&self) -> Result<Vec<User>> {
        dump::users(&mut *self.conn().await?).await
    }

    async fn credentials(&self, id: UserId) -> Result<Option<Credentials>> {
        sqlx::query(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM user_credentials WHERE user_id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(rows::credentials)
        .transpose()
    }

    async fn recovery_code_hashes(&self, id: UserId) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT code_hash FROM recovery_codes WHERE user_id = $1 \
             ORDER BY code_hash COLLATE \"C\"",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn user_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        u64::try_from(n).map_err(|e| rows::corrupt("users", "count(*)", e))
    }

    async fn roles(&self) -> Result<Vec<Role>> {
        dump::roles(&mut *self.conn().await?).await
    }

    async fn bindings(&self, user: Option<UserId>) -> Result<Vec<RoleBinding>> {
        let Some(user) = user else {
            return dump::bindings(&mut *self.conn().await?).await;
        };
        let found = sqlx::query(&format!(
            "SELECT {BINDING_COLUMNS} FROM role_bindings WHERE user_id = $1 \
             ORDER BY role COLLATE \"C\", scope_kind, scope_name COLLATE \"C\""
        ))
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        found.iter().map(rows::binding).collect()
    }

    async fn environments(&self) -> Result<Vec<Environment>> {
        dump::environments(&mut *self.conn().await?).await
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"
        ))
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(rows::session)
        .transpose()
    }

    async fn token(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(rows::token)
        .transpose()
    }

    async fn tokens(&self, user: Option<UserId>) -> Result<Vec<ApiToken>> {
        let Some(user) = user else {
            return dump::tokens(&mut *self.conn().await?).await;
        };
        let found = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id"
        ))
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        found.iter().map(rows::token).collect()
    }

    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<()> {
        // Never backwards: concurrent requests may touch out of order.
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2 AND last_seen_at < $1",
        )
        .bind(micros(at))
        .bind(id_hash)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn touch_token(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(micros(at))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn audit_range(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        audit::range(&mut *self.conn().await?, after_seq, limit).await
    }

    async fn audit_search(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        audit::search(&mut *self.conn().await?, q).await
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        audit::head(&mut *self.conn().await?).await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        dump::checkpoints(&mut *self.conn().await?).await
    }

    async fn insert_checkpoint(&self, c: &Checkpoint) -> Result<()> {
        // Only a checkpoint that matches the record it names.
        let done = sqlx::query(&format!(
            "INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) SELECT $1, $2, $3, $4 \
             WHERE EXISTS (SELECT 1 FROM audit_log WHERE seq = $1 AND hash = $2)"
        ))
        .bind(c.seq)
        .bind(&c.hash)
        .bind(micros(c.at))
        .bind(&c.signature)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "checkpoint {}: no audit record with that sequence number and hash",
                c.seq
            )));
        }
        Ok(())
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        // One atomic statement: take the lease if it is free, renew it if `holder` has it, take
        // it over if it expired; otherwise leave it and return no row. Concurrent callers
        // serialise on the row (or on the unique index when the row does not exist yet).
        let held = sqlx::query_scalar::<_, String>(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4 \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(micros(until))
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(held.is_some())
    }

    async fn export_all(&self) -> Result<Dump> {
        // One snapshot for every table.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db_err)?;
        let dump = dump::export(&mut tx).await?;
        tx.rollback().await.map_err(db_err)?;
        Ok(dump)
    }

    async fn import_all(&self, d: &Dump) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        dump::import(&mut tx, d).await?;
        tx.commit().await.map_err(db_err)
    }
}
