//! Whole-table reads (also behind the `Store` listings) and the export/import of a whole database.

use std::collections::HashMap;

use ballast_core::audit::{AuditRecord, Checkpoint};
use ballast_core::authz::{Role, RoleBinding};
use ballast_core::user::{User, UserId};
use ballast_store::{ApiToken, Credentials, Dump, Environment, Result, StoreError, UserDump};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use crate::audit::{self, SearchColumns};
use crate::error::db_err;
use crate::rows::{
    self, AUDIT_COLUMNS, BINDING_COLUMNS, CHECKPOINT_COLUMNS, CREDENTIAL_COLUMNS,
    ENVIRONMENT_COLUMNS, ROLE_COLUMNS, TOKEN_COLUMNS, USER_COLUMNS, micros, scope_columns,
};

/// The format number of [`Dump`]s this code writes and reads.
pub(crate) const DUMP_FORMAT: u32 = 1;

async fn all<T>(
    conn: &mut PgConnection,
    sql: &str,
    map: fn(&PgRow) -> Result<T>,
) -> Result<Vec<T>> {
    let found = sqlx::query(sql).fetch_all(conn).await.map_err(db_err)?;
    found.iter().map(map).collect()
}

pub(crate) async fn users(conn: &mut PgConnection) -> Result<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
    all(conn, &sql, rows::user).await
}

pub(crate) async fn roles(conn: &mut PgConnection) -> Result<Vec<Role>> {
    let sql = format!("SELECT {ROLE_COLUMNS} FROM roles ORDER BY key COLLATE \"C\"");
    all(conn, &sql, rows::role).await
}

pub(crate) async fn bindings(conn: &mut PgConnection) -> Result<Vec<RoleBinding>> {
    let sql = format!(
        "SELECT {BINDING_COLUMNS} FROM role_bindings \
         ORDER BY user_id, role COLLATE \"C\", scope_kind, scope_name COLLATE \"C\""
    );
    all(conn, &sql, rows::binding).await
}

pub(crate) async fn environments(conn: &mut PgConnection) -> Result<Vec<Environment>> {
    let sql = format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments ORDER BY name COLLATE \"C\"");
    all(conn, &sql, rows::environment).await
}

pub(crate) async fn tokens(conn: &mut PgConnection) -> Result<Vec<ApiToken>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id");
    all(conn, &sql, rows::token).await
}

pub(crate) async fn checkpoints(conn: &mut PgConnection) -> Result<Vec<Checkpoint>> {
    let sql = format!("SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY seq");
    all(conn, &sql, rows::checkpoint).await
}

async fn audit_records(conn: &mut PgConnection) -> Result<Vec<AuditRecord>> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq");
    all(conn, &sql, rows::audit).await
}

async fn user_dumps(conn: &mut PgConnection) -> Result<Vec<UserDump>> {
    let sql = format!("SELECT {CREDENTIAL_COLUMNS} FROM user_credentials");
    let mut credentials: HashMap<UserId, Credentials> = all(&mut *conn, &sql, rows::credentials)
        .await?
        .into_iter()
        .map(|c| (c.user_id, c))
        .collect();
    let mut codes: HashMap<UserId, Vec<String>> = HashMap::new();
    let pairs: Vec<(UserId, String)> = sqlx::query_as(
        "SELECT user_id, code_hash FROM recovery_codes ORDER BY user_id, code_hash COLLATE \"C\"",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    for (user, hash) in pairs {
        codes.entry(user).or_default().push(hash);
    }
    let mut out = Vec::new();
    for user in users(conn).await? {
        let credentials = credentials.remove(&user.id).ok_or_else(|| {
            StoreError::Corrupt(format!("user_credentials: no row for user {}", user.id))
        })?;
        let recovery_codes = codes.remove(&user.id).unwrap_or_default();
        out.push(UserDump {
            user,
            credentials,
            recovery_codes,
        });
    }
    Ok(out)
}

/// Everything but sessions, read on one connection inside the caller's read transaction.
pub(crate) async fn export(conn: &mut PgConnection) -> Result<Dump> {
    Ok(Dump {
        format: DUMP_FORMAT,
        users: user_dumps(&mut *conn).await?,
        roles: roles(&mut *conn).await?,
        bindings: bindings(&mut *conn).await?,
        environments: environments(&mut *conn).await?,
        tokens: tokens(&mut *conn).await?,
        audit: audit_records(&mut *conn).await?,
        checkpoints: checkpoints(&mut *conn).await?,
        exec: {
            let mut exec = crate::exec::export(&mut *conn).await?;
            crate::exec::schedule::export(&mut *conn, &mut exec).await?;
            exec
        },
        assessments: crate::exec::assessment::export(&mut *conn).await?,
        cmdb: crate::exec::cmdb::export(conn).await?,
    })
}

async fn ensure_empty(conn: &mut PgConnection) -> Result<()> {
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM roles) \
         + (SELECT count(*) FROM environments) + (SELECT count(*) FROM audit_log) \
         + (SELECT count(*) FROM audit_checkpoints) + (SELECT seq FROM audit_head WHERE id = 1)",
    )
    .fetch_one(conn)
    .await
    .map_err(db_err)?;
    if rows != 0 {
        return Err(StoreError::Conflict(
            "import needs an empty database: this one already holds data".into(),
        ));
    }
    Ok(())
}

async fn import_user(conn: &mut PgConnection, d: &UserDump) -> Result<()> {
    let u = &d.user;
    sqlx::query(&format!(
        "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(u.id)
    .bind(&u.username)
    .bind(&u.real_name)
    .bind(&u.department)
    .bind(Json(&u.kind))
    .bind(u.disabled)
    .bind(&u.disabled_reason)
    .bind(u.must_change_password)
    .bind(u.mfa_enrolled)
    .bind(micros(u.created_at))
    .bind(micros(u.updated_at))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    let c = &d.credentials;
    if c.user_id != u.id {
        return Err(StoreError::Corrupt(format!(
            "dump: the credentials of user {} name user {}",
            u.id, c.user_id
        )));
    }
    sqlx::query(&format!(
        "INSERT INTO user_credentials ({CREDENTIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(c.user_id)
    .bind(&c.password_hash)
    .bind(c.password_changed_at.map(micros))
    .bind(&c.mfa_secret)
    .bind(c.mfa_last_step)
    .bind(i64::from(c.failed_logins))
    .bind(c.locked_until.map(micros))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    for hash in &d.recovery_codes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
            .bind(u.id)
            .bind(hash)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

async fn import_role(conn: &mut PgConnection, r: &Role) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO roles ({ROLE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&r.key)
    .bind(&r.name_zh)
    .bind(&r.name_en)
    .bind(Json(&r.permissions))
    .bind(r.privileged)
    .bind(r.builtin)
    .bind(Json(&r.allowed_networks))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// A dump does not carry when a binding was made: `created_at` stays NULL (unknown).
async fn import_binding(conn: &mut PgConnection, b: &RoleBinding) -> Result<()> {
    let (kind, name) = scope_columns(&b.scope);
    sqlx::query(&format!(
        "INSERT INTO role_bindings ({BINDING_COLUMNS}) VALUES ($1, $2, $3, $4)"
    ))
    .bind(b.user_id)
    .bind(&b.role)
    .bind(kind)
    .bind(name)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn import_environment(conn: &mut PgConnection, e: &Environment) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO environments ({ENVIRONMENT_COLUMNS}) VALUES ($1, $2, $3, $4)"
    ))
    .bind(&e.name)
    .bind(&e.description)
    .bind(Json(&e.security_zones))
    .bind(micros(e.created_at))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn import_token(conn: &mut PgConnection, t: &ApiToken) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(t.id)
    .bind(t.user_id)
    .bind(&t.name)
    .bind(&t.token_hash)
    .bind(Json(&t.permissions))
    .bind(micros(t.created_at))
    .bind(micros(t.expires_at))
    .bind(t.revoked_at.map(micros))
    .bind(t.last_used_at.map(micros))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Records go in as they are (content and hashes verbatim, not re-sealed); the search columns
/// are taken from the content.
async fn import_audit(conn: &mut PgConnection, r: &AuditRecord) -> Result<()> {
    let content = audit::parsed(r)?;
    audit::insert(conn, r, &SearchColumns::of(&content.draft)).await
}

async fn import_checkpoint(conn: &mut PgConnection, c: &Checkpoint) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4)"
    ))
    .bind(c.seq)
    .bind(&c.hash)
    .bind(micros(c.at))
    .bind(&c.signature)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Loads `d` into an empty database inside the caller's write transaction.
pub(crate) async fn import(conn: &mut PgConnection, d: &Dump) -> Result<()> {
    if d.format != DUMP_FORMAT {
        return Err(StoreError::Corrupt(format!(
            "dump format {} is not supported (expected {DUMP_FORMAT})",
            d.format
        )));
    }
    // Appends wait for the import (and an import for the appends before it).
    audit::lock_head(&mut *conn).await?;
    ensure_empty(&mut *conn).await?;
    for u in &d.users {
        import_user(&mut *conn, u).await?;
    }
    for r in &d.roles {
        import_role(&mut *conn, r).await?;
    }
    for b in &d.bindings {
        import_binding(&mut *conn, b).await?;
    }
    for e in &d.environments {
        import_environment(&mut *conn, e).await?;
    }
    for t in &d.tokens {
        import_token(&mut *conn, t).await?;
    }
    for r in &d.audit {
        import_audit(&mut *conn, r).await?;
    }
    for c in &d.checkpoints {
        import_checkpoint(&mut *conn, c).await?;
    }
    if let Some(last) = d.audit.iter().max_by_key(|r| r.seq) {
        audit::set_head(&mut *conn, last.seq, &last.hash).await?;
    }
    crate::exec::import(&mut *conn, &d.exec).await?;
    crate::exec::schedule::import(&mut *conn, &d.exec).await?;
    crate::exec::assessment::import(&mut *conn, &d.assessments).await?;
    crate::exec::cmdb::import(&mut *conn, &d.cmdb).await?;
    reset_identities(conn).await
}

/// Ids were inserted explicitly: the identity sequences continue after the largest.
async fn reset_identities(conn: &mut PgConnection) -> Result<()> {
    let tables = ["users", "api_tokens"]
        .into_iter()
        .chain(crate::exec::ID_TABLES)
        .chain(crate::exec::SCHEDULE_ID_TABLES)
        .chain(crate::exec::ASSESSMENT_ID_TABLES)
        .chain(crate::exec::CMDB_ID_TABLES);
    for table in tables {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             COALESCE(max(id), 0) + 1, false) FROM {table}"
        ))
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}
