//! The Ballast store on SQLite: the zero-configuration backend of `ballast serve`, one database
//! file in the data directory.
//!
//! - WAL journal: readers never wait for the writer, and the writer never waits for readers.
//! - `synchronous = FULL`: every commit is on disk before it is acknowledged. With `NORMAL`, a
//!   power loss may roll back the last commits — actions whose effects (a job run on hosts, an
//!   approval) already happened would lose their audit records, and a checkpoint already signed
//!   and kept outside the database would then look like a truncated chain. Ballast writes at the
//!   pace of operators and jobs, so an fsync per commit is cheap insurance.
//! - `foreign_keys = ON`, a busy timeout, and every write transaction starting with
//!   `BEGIN IMMEDIATE` (see [`tx`]), which also serialises the audit chain's appends.
//! - Migrations under `migrations/`, embedded and applied when the store opens.
//! - The engine's storage (`ballast_store::exec`) is in `exec`; its statements are shared with
//!   the PostgreSQL backend (`exec_common.rs`). `claim_runs` runs under the write lock.

mod audit;
mod dump;
mod error;
mod exec;
mod rows;
mod tx;

use std::path::Path;
use std::sync::Arc;
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
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, Sqlite};

use crate::error::{db_err, migrate_err};
use crate::rows::{
    BINDING_COLUMNS, CHECKPOINT_COLUMNS, CREDENTIAL_COLUMNS, SESSION_COLUMNS, TOKEN_COLUMNS,
    USER_COLUMNS, micros,
};

static MIGRATOR: Migrator = sqlx::migrate!();

/// How long a statement waits for another connection's write lock before giving up
/// (`StoreError::Unavailable`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_CONNECTIONS: u32 = 8;

pub struct SqliteStore {
    pool: SqlitePool,
    /// The directory of a throwaway database ([`SqliteStore::open_memory`]), removed on drop.
    _scratch: Option<Arc<tempfile::TempDir>>,
}

impl SqliteStore {
    /// Opens (creating it if needed) the database file at `path` and applies the migrations.
    /// A new file is readable by its owner only: it holds password hashes and second-factor
    /// secrets (SQLite gives the WAL and shared-memory files the same permissions).
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        create_private(path)?;
        let pool = connect(path, SqliteSynchronous::Full).await?;
        Ok(SqliteStore {
            pool,
            _scratch: None,
        })
    }

    /// A private, empty database for tests, gone when the store is dropped.
    ///
    /// It lives in a file in a fresh temporary directory rather than in `:memory:`: an in-memory
    /// database shared by a pool needs SQLite's shared-cache mode, whose table locks make a reader
    /// wait for an open write transaction, so it would not behave like the WAL database the
    /// product runs on. No fsync is needed for a database nobody keeps (`synchronous = NORMAL`).
    pub async fn open_memory() -> Result<SqliteStore> {
        let dir = tempfile::Builder::new()
            .prefix("ballast-store-")
            .tempdir()
            .map_err(|e| StoreError::Unavailable(format!("creating a temporary directory: {e}")))?;
        let pool = connect(&dir.path().join("ballast.db"), SqliteSynchronous::Normal).await?;
        Ok(SqliteStore {
            pool,
            _scratch: Some(Arc::new(dir)),
        })
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

    async fn conn(&self) -> Result<PoolConnection<Sqlite>> {
        self.pool.acquire().await.map_err(db_err)
    }
}

/// Creates an empty file (an empty SQLite database) with mode 0600 unless `path` exists.
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!(
            "creating {}: {e}",
            path.display()
        ))),
    }
}

async fn connect(path: &Path, synchronous: SqliteSynchronous) -> Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(BUSY_TIMEOUT * 2)
        .connect_with(options)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Other(m) => StoreError::Unavailable(m),
            other => other,
        })?;
    MIGRATOR.run(&pool).await.map_err(migrate_err)?;
    Ok(pool)
}

/// Whether the applied migrations are exactly the embedded ones (same versions and checksums).
async fn migrations_match(conn: &mut sqlx::SqliteConnection) -> Result<bool> {
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
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
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
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)?;
        Ok(Box::new(tx::SqliteTx { tx }))
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
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
            "SELECT {USER_COLUMNS} FROM users WHERE username = ?"
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
            "SELECT {CREDENTIAL_COLUMNS} FROM user_credentials WHERE user_id = ?"
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
            "SELECT code_hash FROM recovery_codes WHERE user_id = ? ORDER BY code_hash",
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
            "SELECT {BINDING_COLUMNS} FROM role_bindings WHERE user_id = ? \
             ORDER BY role, scope_kind, scope_name"
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
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = ?"
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
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?"
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
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = ? ORDER BY id"
        ))
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        found.iter().map(rows::token).collect()
    }

    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<()> {
        // Never backwards: concurrent requests may touch out of order.
        sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE id_hash = ? AND last_seen_at < ?")
            .bind(micros(at))
            .bind(id_hash)
            .bind(micros(at))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn touch_token(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = ? \
             WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
        )
        .bind(micros(at))
        .bind(id)
        .bind(micros(at))
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
            "INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) SELECT ?, ?, ?, ? \
             WHERE EXISTS (SELECT 1 FROM audit_log WHERE seq = ? AND hash = ?)"
        ))
        .bind(c.seq)
        .bind(&c.hash)
        .bind(micros(c.at))
        .bind(&c.signature)
        .bind(c.seq)
        .bind(&c.hash)
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
        // One statement: take the lease if it is free, renew it if `holder` has it, take it over
        // if it expired; otherwise leave it and return no row.
        let held = sqlx::query_scalar::<_, String>(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ? \
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
        // One read transaction: a consistent snapshot of everything.
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let dump = dump::export(&mut tx).await?;
        tx.rollback().await.map_err(db_err)?;
        Ok(dump)
    }

    async fn import_all(&self, d: &Dump) -> Result<()> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)?;
        dump::import(&mut tx, d).await?;
        tx.commit().await.map_err(db_err)
    }
}
