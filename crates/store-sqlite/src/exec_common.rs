//! The engine's storage ([`ballast_store::exec`]), written once for both backends.
//!
//! This file is compiled twice: as `exec::common` of `ballast-store-sqlite` and, through a
//! `#[path]` attribute, as `exec::common` of `ballast-store-postgres`. Its parent module (each
//! crate's `exec.rs`) names the backend: `Db`, `Conn`, `DbRow`, the store and transaction types,
//! `write_tx` (how a write transaction starts) and `LOCK_ROWS` (the claim's row lock). The SQL
//! text is the same on both: sqlx's SQLite driver binds `$N` by number, both databases have
//! `RETURNING` and `ON CONFLICT … DO UPDATE`, and the PostgreSQL schema gives ordered text columns
//! the "C" collation so `ORDER BY` agrees with SQLite's byte order.

use async_trait::async_trait;
use ballast_store::exec::{
    AgentRow, ApprovalRow, EnrollTokenRow, ExecDump, ExecStore, ExecTx, HostKeyRow, OutputChunkRow,
    PlanRow, PlanVersionRow, RunQuery, RunRow, ScriptRow, ScriptVersionRow, SettingRow,
    SshCredentialRow, StepRow, TaskRow,
};
use ballast_store::{Result, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Decode, Row, Type};

use super::{Conn, Db, DbRow, LOCK_ROWS, StoreImpl, TxImpl, db_err, micros, write_tx};

pub(super) type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

// ---------------------------------------------------------------- columns

const SCRIPT_FIELDS: &str = "name, description, language, created_by, created_at";
const SCRIPT_VERSION_COLUMNS: &str = "script_id, version, content, sha256, params, state, note, \
     author, created_at, state_changed_by, state_changed_at";
const PLAN_FIELDS: &str = "name, description, created_by, created_at";
const PLAN_VERSION_COLUMNS: &str = "plan_id, version, spec, author, created_at";
const APPROVAL_FIELDS: &str = "kind, object_type, object_id, environment, requested_by, \
     requested_at, reason, payload, state, decided_by, decided_at, comment";
const RUN_FIELDS: &str = "kind, plan_id, plan_version, name, environment, status, requested_by, \
     created_at, started_at, finished_at, spec, secrets_sealed, current_step, owner, lease_until, \
     message, updated_at";
const STEP_COLUMNS: &str =
    "run_id, idx, name, kind, status, attempt, started_at, finished_at, message";
const TASK_FIELDS: &str = "run_id, step_idx, host, transport, attempt, batch, status, exit_code, \
     error_code, error_message, stdout_bytes, stderr_bytes, truncated, started_at, finished_at";
const OUTPUT_COLUMNS: &str = "task_id, seq, stream, data, at";
const AGENT_COLUMNS: &str = "id, hostname, environment, cert_fingerprint, facts, version, \
     enrolled_at, last_seen_at, revoked_at, revoked_by";
const ENROLL_COLUMNS: &str =
    "hash, environment, created_by, created_at, expires_at, used_at, agent_id";
const SSH_COLUMNS: &str = "name, username, kind, secret_sealed, created_by, created_at";
const HOST_KEY_COLUMNS: &str = "host, port, key_line, fingerprint, pinned_by, pinned_at";
const SETTING_COLUMNS: &str = "key, value, updated_by, updated_at";

/// Run statuses `claim_runs` takes (see [`ExecStore::claim_runs`]).
const CLAIMABLE: &str =
    "'pending', 'running', 'paused', 'waiting_confirmation', 'waiting_approval'";
/// Run statuses after which a run never changes again (they set `finished_at`).
const RUN_FINAL: &str = "'succeeded', 'failed', 'cancelled', 'blocked'";
/// Step statuses that end a step (they set its `finished_at`).
const STEP_FINAL: &str = "'succeeded', 'failed', 'skipped', 'cancelled'";

/// `$first, …, $last`.
fn params(first: usize, last: usize) -> String {
    (first..=last)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn count_of(fields: &str) -> usize {
    fields.split(',').count()
}

// ---------------------------------------------------------------- row mapping

fn corrupt(table: &str, column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table}.{column}: {e}"))
}

pub(super) fn get<'r, T>(row: &'r DbRow, table: &str, column: &str) -> Result<T>
where
    T: Decode<'r, Db> + Type<Db>,
{
    row.try_get(column).map_err(|e| corrupt(table, column, e))
}

pub(super) fn json(row: &DbRow, table: &str, column: &str) -> Result<Value> {
    get::<Json<Value>>(row, table, column).map(|j| j.0)
}

fn script(row: &DbRow) -> Result<ScriptRow> {
    const T: &str = "scripts";
    Ok(ScriptRow {
        id: get(row, T, "id")?,
        name: get(row, T, "name")?,
        description: get(row, T, "description")?,
        language: get(row, T, "language")?,
        created_by: get(row, T, "created_by")?,
        created_at: get(row, T, "created_at")?,
    })
}

fn script_version(row: &DbRow) -> Result<ScriptVersionRow> {
    const T: &str = "script_versions";
    Ok(ScriptVersionRow {
        script_id: get(row, T, "script_id")?,
        version: get(row, T, "version")?,
        content: get(row, T, "content")?,
        sha256: get(row, T, "sha256")?,
        params: json(row, T, "params")?,
        state: get(row, T, "state")?,
        note: get(row, T, "note")?,
        author: get(row, T, "author")?,
        created_at: get(row, T, "created_at")?,
        state_changed_by: get(row, T, "state_changed_by")?,
        state_changed_at: get(row, T, "state_changed_at")?,
    })
}

fn plan(row: &DbRow) -> Result<PlanRow> {
    const T: &str = "plans";
    Ok(PlanRow {
        id: get(row, T, "id")?,
        name: get(row, T, "name")?,
        description: get(row, T, "description")?,
        created_by: get(row, T, "created_by")?,
        created_at: get(row, T, "created_at")?,
    })
}

fn plan_version(row: &DbRow) -> Result<PlanVersionRow> {
    const T: &str = "plan_versions";
    Ok(PlanVersionRow {
        plan_id: get(row, T, "plan_id")?,
        version: get(row, T, "version")?,
        spec: json(row, T, "spec")?,
        author: get(row, T, "author")?,
        created_at: get(row, T, "created_at")?,
    })
}

fn approval(row: &DbRow) -> Result<ApprovalRow> {
    const T: &str = "approvals";
    Ok(ApprovalRow {
        id: get(row, T, "id")?,
        kind: get(row, T, "kind")?,
        object_type: get(row, T, "object_type")?,
        object_id: get(row, T, "object_id")?,
        environment: get(row, T, "environment")?,
        requested_by: get(row, T, "requested_by")?,
        requested_at: get(row, T, "requested_at")?,
        reason: get(row, T, "reason")?,
        payload: json(row, T, "payload")?,
        state: get(row, T, "state")?,
        decided_by: get(row, T, "decided_by")?,
        decided_at: get(row, T, "decided_at")?,
        comment: get(row, T, "comment")?,
    })
}

fn run(row: &DbRow) -> Result<RunRow> {
    const T: &str = "runs";
    Ok(RunRow {
        id: get(row, T, "id")?,
        kind: get(row, T, "kind")?,
        plan_id: get(row, T, "plan_id")?,
        plan_version: get(row, T, "plan_version")?,
        name: get(row, T, "name")?,
        environment: get(row, T, "environment")?,
        status: get(row, T, "status")?,
        requested_by: get(row, T, "requested_by")?,
        created_at: get(row, T, "created_at")?,
        started_at: get(row, T, "started_at")?,
        finished_at: get(row, T, "finished_at")?,
        spec: json(row, T, "spec")?,
        secrets_sealed: get(row, T, "secrets_sealed")?,
        current_step: get(row, T, "current_step")?,
        owner: get(row, T, "owner")?,
        lease_until: get(row, T, "lease_until")?,
        message: get(row, T, "message")?,
        updated_at: get(row, T, "updated_at")?,
    })
}

fn step(row: &DbRow) -> Result<StepRow> {
    const T: &str = "run_steps";
    Ok(StepRow {
        run_id: get(row, T, "run_id")?,
        idx: get(row, T, "idx")?,
        name: get(row, T, "name")?,
        kind: get(row, T, "kind")?,
        status: get(row, T, "status")?,
        attempt: get(row, T, "attempt")?,
        started_at: get(row, T, "started_at")?,
        finished_at: get(row, T, "finished_at")?,
        message: get(row, T, "message")?,
    })
}

fn task(row: &DbRow) -> Result<TaskRow> {
    const T: &str = "tasks";
    Ok(TaskRow {
        id: get(row, T, "id")?,
        run_id: get(row, T, "run_id")?,
        step_idx: get(row, T, "step_idx")?,
        host: get(row, T, "host")?,
        transport: get(row, T, "transport")?,
        attempt: get(row, T, "attempt")?,
        batch: get(row, T, "batch")?,
        status: get(row, T, "status")?,
        exit_code: get(row, T, "exit_code")?,
        error_code: get(row, T, "error_code")?,
        error_message: get(row, T, "error_message")?,
        stdout_bytes: get(row, T, "stdout_bytes")?,
        stderr_bytes: get(row, T, "stderr_bytes")?,
        truncated: get(row, T, "truncated")?,
        started_at: get(row, T, "started_at")?,
        finished_at: get(row, T, "finished_at")?,
    })
}

fn output_chunk(row: &DbRow) -> Result<OutputChunkRow> {
    const T: &str = "task_output";
    Ok(OutputChunkRow {
        task_id: get(row, T, "task_id")?,
        seq: get(row, T, "seq")?,
        stream: get(row, T, "stream")?,
        data: get(row, T, "data")?,
        at: get(row, T, "at")?,
    })
}

fn agent(row: &DbRow) -> Result<AgentRow> {
    const T: &str = "agents";
    Ok(AgentRow {
        id: get(row, T, "id")?,
        hostname: get(row, T, "hostname")?,
        environment: get(row, T, "environment")?,
        cert_fingerprint: get(row, T, "cert_fingerprint")?,
        facts: json(row, T, "facts")?,
        version: get(row, T, "version")?,
        enrolled_at: get(row, T, "enrolled_at")?,
        last_seen_at: get(row, T, "last_seen_at")?,
        revoked_at: get(row, T, "revoked_at")?,
        revoked_by: get(row, T, "revoked_by")?,
    })
}

fn enroll_token(row: &DbRow) -> Result<EnrollTokenRow> {
    const T: &str = "enroll_tokens";
    Ok(EnrollTokenRow {
        hash: get(row, T, "hash")?,
        environment: get(row, T, "environment")?,
        created_by: get(row, T, "created_by")?,
        created_at: get(row, T, "created_at")?,
        expires_at: get(row, T, "expires_at")?,
        used_at: get(row, T, "used_at")?,
        agent_id: get(row, T, "agent_id")?,
    })
}

fn ssh_credential(row: &DbRow) -> Result<SshCredentialRow> {
    const T: &str = "ssh_credentials";
    Ok(SshCredentialRow {
        name: get(row, T, "name")?,
        username: get(row, T, "username")?,
        kind: get(row, T, "kind")?,
        secret_sealed: get(row, T, "secret_sealed")?,
        created_by: get(row, T, "created_by")?,
        created_at: get(row, T, "created_at")?,
    })
}

fn host_key(row: &DbRow) -> Result<HostKeyRow> {
    const T: &str = "host_keys";
    Ok(HostKeyRow {
        host: get(row, T, "host")?,
        port: get(row, T, "port")?,
        key_line: get(row, T, "key_line")?,
        fingerprint: get(row, T, "fingerprint")?,
        pinned_by: get(row, T, "pinned_by")?,
        pinned_at: get(row, T, "pinned_at")?,
    })
}

fn setting(row: &DbRow) -> Result<SettingRow> {
    const T: &str = "settings";
    Ok(SettingRow {
        key: get(row, T, "key")?,
        value: json(row, T, "value")?,
        updated_by: get(row, T, "updated_by")?,
        updated_at: get(row, T, "updated_at")?,
    })
}

// ---------------------------------------------------------------- binding (column order)

fn bind_script<'q>(q: Query<'q>, s: &'q ScriptRow) -> Query<'q> {
    q.bind(&s.name)
        .bind(&s.description)
        .bind(&s.language)
        .bind(&s.created_by)
        .bind(micros(s.created_at))
}

fn bind_script_version<'q>(q: Query<'q>, v: &'q ScriptVersionRow) -> Query<'q> {
    q.bind(v.script_id)
        .bind(v.version)
        .bind(&v.content)
        .bind(&v.sha256)
        .bind(Json(&v.params))
        .bind(&v.state)
        .bind(&v.note)
        .bind(&v.author)
        .bind(micros(v.created_at))
        .bind(&v.state_changed_by)
        .bind(v.state_changed_at.map(micros))
}

fn bind_plan<'q>(q: Query<'q>, p: &'q PlanRow) -> Query<'q> {
    q.bind(&p.name)
        .bind(&p.description)
        .bind(&p.created_by)
        .bind(micros(p.created_at))
}

fn bind_plan_version<'q>(q: Query<'q>, v: &'q PlanVersionRow) -> Query<'q> {
    q.bind(v.plan_id)
        .bind(v.version)
        .bind(Json(&v.spec))
        .bind(&v.author)
        .bind(micros(v.created_at))
}

fn bind_approval<'q>(q: Query<'q>, a: &'q ApprovalRow) -> Query<'q> {
    q.bind(&a.kind)
        .bind(&a.object_type)
        .bind(&a.object_id)
        .bind(&a.environment)
        .bind(&a.requested_by)
        .bind(micros(a.requested_at))
        .bind(&a.reason)
        .bind(Json(&a.payload))
        .bind(&a.state)
        .bind(&a.decided_by)
        .bind(a.decided_at.map(micros))
        .bind(&a.comment)
}

fn bind_run<'q>(q: Query<'q>, r: &'q RunRow) -> Query<'q> {
    q.bind(&r.kind)
        .bind(r.plan_id)
        .bind(r.plan_version)
        .bind(&r.name)
        .bind(&r.environment)
        .bind(&r.status)
        .bind(&r.requested_by)
        .bind(micros(r.created_at))
        .bind(r.started_at.map(micros))
        .bind(r.finished_at.map(micros))
        .bind(Json(&r.spec))
        .bind(&r.secrets_sealed)
        .bind(r.current_step)
        .bind(&r.owner)
        .bind(r.lease_until.map(micros))
        .bind(&r.message)
        .bind(micros(r.updated_at))
}

/// All but `run_id` (bound first by the caller).
fn bind_step<'q>(q: Query<'q>, s: &'q StepRow) -> Query<'q> {
    q.bind(s.idx)
        .bind(&s.name)
        .bind(&s.kind)
        .bind(&s.status)
        .bind(s.attempt)
        .bind(s.started_at.map(micros))
        .bind(s.finished_at.map(micros))
        .bind(&s.message)
}

fn bind_task<'q>(q: Query<'q>, t: &'q TaskRow) -> Query<'q> {
    q.bind(t.run_id)
        .bind(t.step_idx)
        .bind(&t.host)
        .bind(&t.transport)
        .bind(t.attempt)
        .bind(t.batch)
        .bind(&t.status)
        .bind(t.exit_code)
        .bind(&t.error_code)
        .bind(&t.error_message)
        .bind(t.stdout_bytes)
        .bind(t.stderr_bytes)
        .bind(t.truncated)
        .bind(t.started_at.map(micros))
        .bind(t.finished_at.map(micros))
}

fn bind_output<'q>(q: Query<'q>, c: &'q OutputChunkRow) -> Query<'q> {
    q.bind(c.task_id)
        .bind(c.seq)
        .bind(&c.stream)
        .bind(&c.data)
        .bind(micros(c.at))
}

fn bind_agent<'q>(q: Query<'q>, a: &'q AgentRow) -> Query<'q> {
    q.bind(&a.id)
        .bind(&a.hostname)
        .bind(&a.environment)
        .bind(&a.cert_fingerprint)
        .bind(Json(&a.facts))
        .bind(&a.version)
        .bind(micros(a.enrolled_at))
        .bind(a.last_seen_at.map(micros))
        .bind(a.revoked_at.map(micros))
        .bind(&a.revoked_by)
}

fn bind_enroll_token<'q>(q: Query<'q>, t: &'q EnrollTokenRow) -> Query<'q> {
    q.bind(&t.hash)
        .bind(&t.environment)
        .bind(&t.created_by)
        .bind(micros(t.created_at))
        .bind(micros(t.expires_at))
        .bind(t.used_at.map(micros))
        .bind(&t.agent_id)
}

fn bind_ssh_credential<'q>(q: Query<'q>, c: &'q SshCredentialRow) -> Query<'q> {
    q.bind(&c.name)
        .bind(&c.username)
        .bind(&c.kind)
        .bind(&c.secret_sealed)
        .bind(&c.created_by)
        .bind(micros(c.created_at))
}

fn bind_host_key<'q>(q: Query<'q>, k: &'q HostKeyRow) -> Query<'q> {
    q.bind(&k.host)
        .bind(k.port)
        .bind(&k.key_line)
        .bind(&k.fingerprint)
        .bind(&k.pinned_by)
        .bind(micros(k.pinned_at))
}

fn bind_setting<'q>(q: Query<'q>, s: &'q SettingRow) -> Query<'q> {
    q.bind(&s.key)
        .bind(Json(&s.value))
        .bind(&s.updated_by)
        .bind(micros(s.updated_at))
}

// ---------------------------------------------------------------- statements

pub(super) fn insert_sql(table: &str, columns: &str) -> String {
    format!(
        "INSERT INTO {table} ({columns}) VALUES ({})",
        params(1, count_of(columns))
    )
}

/// An insert whose id the database chooses (`RETURNING id`).
fn insert_returning_id(table: &str, fields: &str) -> String {
    format!("{} RETURNING id", insert_sql(table, fields))
}

/// An insert keeping the given id (import).
fn insert_with_id(table: &str, fields: &str) -> String {
    insert_sql(table, &format!("id, {fields}"))
}

pub(super) async fn all<T>(
    conn: &mut Conn,
    q: Query<'_>,
    map: fn(&DbRow) -> Result<T>,
) -> Result<Vec<T>> {
    let found = q.fetch_all(conn).await.map_err(db_err)?;
    found.iter().map(map).collect()
}

pub(super) async fn one<T>(
    conn: &mut Conn,
    q: Query<'_>,
    map: fn(&DbRow) -> Result<T>,
) -> Result<Option<T>> {
    q.fetch_optional(conn)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(map)
        .transpose()
}

/// Whether `table` has a row with this `id`.
async fn exists<K>(conn: &mut Conn, table: &str, id: K) -> Result<bool>
where
    K: for<'q> sqlx::Encode<'q, Db> + Type<Db> + Send + 'static,
{
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE id = $1"))
        .bind(id)
        .fetch_one(conn)
        .await
        .map_err(db_err)?;
    Ok(n > 0)
}

/// A change aimed at one row (`what`, by its `id` in `table`) changed nothing: `Conflict`
/// saying `why` if the row is there, `NotFound` if it is not.
async fn refused<K>(conn: &mut Conn, table: &str, id: K, what: String, why: &str) -> Result<()>
where
    K: for<'q> sqlx::Encode<'q, Db> + Type<Db> + Send + 'static,
{
    if exists(conn, table, id).await? {
        Err(StoreError::Conflict(format!("{what}: {why}")))
    } else {
        Err(StoreError::NotFound(what))
    }
}

/// Runs a statement; returns how many rows it changed.
pub(super) async fn exec(conn: &mut Conn, q: Query<'_>) -> Result<u64> {
    Ok(q.execute(conn).await.map_err(db_err)?.rows_affected())
}

/// Runs an insert ending in `RETURNING id` and returns the id.
async fn inserted_id(conn: &mut Conn, table: &str, q: Query<'_>) -> Result<i64> {
    let row = q.fetch_one(conn).await.map_err(db_err)?;
    get(&row, table, "id")
}

/// Exactly one row changed, or `NotFound` naming it.
fn changed_one(rows: u64, what: impl FnOnce() -> String) -> Result<()> {
    if rows == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

/// Replaces a task's mutable fields (see [`ExecStore::update_task`]).
async fn update_task_on(conn: &mut Conn, t: &TaskRow) -> Result<()> {
    let done = sqlx::query(
        "UPDATE tasks SET batch = $2, status = $3, exit_code = $4, error_code = $5, \
         error_message = $6, stdout_bytes = $7, stderr_bytes = $8, truncated = $9, \
         started_at = $10, finished_at = $11 WHERE id = $1",
    )
    .bind(t.id)
    .bind(t.batch)
    .bind(&t.status)
    .bind(t.exit_code)
    .bind(&t.error_code)
    .bind(&t.error_message)
    .bind(t.stdout_bytes)
    .bind(t.stderr_bytes)
    .bind(t.truncated)
    .bind(t.started_at.map(micros))
    .bind(t.finished_at.map(micros))
    .execute(conn)
    .await
    .map_err(db_err)?;
    changed_one(done.rows_affected(), || format!("task {}", t.id))
}

/// `last_seen_at` moves forward only (heartbeats may arrive out of order).
const TOUCH_SEEN: &str = "last_seen_at = CASE WHEN last_seen_at IS NULL \
     OR last_seen_at < $2 THEN $2 ELSE last_seen_at END";

fn limit(n: u32) -> i64 {
    i64::from(n)
}

/// The runs `owner` may claim now, locked (PostgreSQL, `SKIP LOCKED`) or under the write lock
/// (SQLite), and taken in one statement. Returned ordered by id.
async fn claim(
    conn: &mut Conn,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    n: u32,
) -> Result<Vec<RunRow>> {
    let sql = format!(
        "UPDATE runs SET owner = $1, lease_until = $3 WHERE id IN (\
           SELECT id FROM runs WHERE status IN ({CLAIMABLE}) \
           AND (owner IS NULL OR lease_until IS NULL OR lease_until <= $2 OR owner = $1) \
           ORDER BY id LIMIT $4{LOCK_ROWS}) \
         RETURNING id, {RUN_FIELDS}"
    );
    let q = sqlx::query(&sql)
        .bind(owner)
        .bind(micros(now))
        .bind(micros(lease_until))
        .bind(limit(n));
    let mut runs = all(conn, q, run).await?;
    runs.sort_by_key(|r| r.id);
    Ok(runs)
}

// ---------------------------------------------------------------- ExecStore

#[async_trait]
impl ExecStore for StoreImpl {
    async fn scripts(&self) -> Result<Vec<ScriptRow>> {
        let sql = format!("SELECT id, {SCRIPT_FIELDS} FROM scripts ORDER BY name");
        all(&mut *self.conn().await?, sqlx::query(&sql), script).await
    }

    async fn script_by_name(&self, name: &str) -> Result<Option<ScriptRow>> {
        let sql = format!("SELECT id, {SCRIPT_FIELDS} FROM scripts WHERE name = $1");
        let q = sqlx::query(&sql).bind(name);
        one(&mut *self.conn().await?, q, script).await
    }

    async fn script_by_id(&self, id: i64) -> Result<Option<ScriptRow>> {
        let sql = format!("SELECT id, {SCRIPT_FIELDS} FROM scripts WHERE id = $1");
        let q = sqlx::query(&sql).bind(id);
        one(&mut *self.conn().await?, q, script).await
    }

    async fn script_versions(&self, script_id: i64) -> Result<Vec<ScriptVersionRow>> {
        let sql = format!(
            "SELECT {SCRIPT_VERSION_COLUMNS} FROM script_versions WHERE script_id = $1 \
             ORDER BY version"
        );
        let q = sqlx::query(&sql).bind(script_id);
        all(&mut *self.conn().await?, q, script_version).await
    }

    async fn script_version(
        &self,
        script_id: i64,
        version: i64,
    ) -> Result<Option<ScriptVersionRow>> {
        let sql = format!(
            "SELECT {SCRIPT_VERSION_COLUMNS} FROM script_versions \
             WHERE script_id = $1 AND version = $2"
        );
        let q = sqlx::query(&sql).bind(script_id).bind(version);
        one(&mut *self.conn().await?, q, script_version).await
    }

    async fn plans(&self) -> Result<Vec<PlanRow>> {
        let sql = format!("SELECT id, {PLAN_FIELDS} FROM plans ORDER BY name");
        all(&mut *self.conn().await?, sqlx::query(&sql), plan).await
    }

    async fn plan_by_name(&self, name: &str) -> Result<Option<PlanRow>> {
        let sql = format!("SELECT id, {PLAN_FIELDS} FROM plans WHERE name = $1");
        let q = sqlx::query(&sql).bind(name);
        one(&mut *self.conn().await?, q, plan).await
    }

    async fn plan_by_id(&self, id: i64) -> Result<Option<PlanRow>> {
        let sql = format!("SELECT id, {PLAN_FIELDS} FROM plans WHERE id = $1");
        let q = sqlx::query(&sql).bind(id);
        one(&mut *self.conn().await?, q, plan).await
    }

    async fn plan_versions(&self, plan_id: i64) -> Result<Vec<PlanVersionRow>> {
        let sql = format!(
            "SELECT {PLAN_VERSION_COLUMNS} FROM plan_versions WHERE plan_id = $1 ORDER BY version"
        );
        let q = sqlx::query(&sql).bind(plan_id);
        all(&mut *self.conn().await?, q, plan_version).await
    }

    async fn plan_version(&self, plan_id: i64, version: i64) -> Result<Option<PlanVersionRow>> {
        let sql = format!(
            "SELECT {PLAN_VERSION_COLUMNS} FROM plan_versions WHERE plan_id = $1 AND version = $2"
        );
        let q = sqlx::query(&sql).bind(plan_id).bind(version);
        one(&mut *self.conn().await?, q, plan_version).await
    }

    async fn approvals(&self, state: Option<&str>, n: u32) -> Result<Vec<ApprovalRow>> {
        let sql = format!(
            "SELECT id, {APPROVAL_FIELDS} FROM approvals WHERE ($1 IS NULL OR state = $1) \
             ORDER BY id DESC LIMIT $2"
        );
        let q = sqlx::query(&sql).bind(state).bind(limit(n));
        all(&mut *self.conn().await?, q, approval).await
    }

    async fn approval(&self, id: i64) -> Result<Option<ApprovalRow>> {
        let sql = format!("SELECT id, {APPROVAL_FIELDS} FROM approvals WHERE id = $1");
        let q = sqlx::query(&sql).bind(id);
        one(&mut *self.conn().await?, q, approval).await
    }

    async fn approval_for(
        &self,
        kind: &str,
        object_type: &str,
        object_id: &str,
    ) -> Result<Option<ApprovalRow>> {
        let sql = format!(
            "SELECT id, {APPROVAL_FIELDS} FROM approvals \
             WHERE kind = $1 AND object_type = $2 AND object_id = $3 ORDER BY id DESC LIMIT 1"
        );
        let q = sqlx::query(&sql)
            .bind(kind)
            .bind(object_type)
            .bind(object_id);
        one(&mut *self.conn().await?, q, approval).await
    }

    async fn runs(&self, f: &RunQuery) -> Result<Vec<RunRow>> {
        let sql = format!(
            "SELECT id, {RUN_FIELDS} FROM runs WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR environment = $2) AND ($3 IS NULL OR plan_id = $3) \
             AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
        );
        let q = sqlx::query(&sql)
            .bind(&f.status)
            .bind(&f.environment)
            .bind(f.plan_id)
            .bind(f.before_id)
            .bind(limit(f.limit));
        all(&mut *self.conn().await?, q, run).await
    }

    async fn run(&self, id: i64) -> Result<Option<RunRow>> {
        let sql = format!("SELECT id, {RUN_FIELDS} FROM runs WHERE id = $1");
        let q = sqlx::query(&sql).bind(id);
        one(&mut *self.conn().await?, q, run).await
    }

    async fn steps(&self, run_id: i64) -> Result<Vec<StepRow>> {
        let sql = format!("SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id = $1 ORDER BY idx");
        let q = sqlx::query(&sql).bind(run_id);
        all(&mut *self.conn().await?, q, step).await
    }

    async fn tasks(&self, run_id: i64, step_idx: Option<i64>) -> Result<Vec<TaskRow>> {
        let sql = format!(
            "SELECT id, {TASK_FIELDS} FROM tasks WHERE run_id = $1 \
             AND ($2 IS NULL OR step_idx = $2) ORDER BY step_idx, id"
        );
        let q = sqlx::query(&sql).bind(run_id).bind(step_idx);
        all(&mut *self.conn().await?, q, task).await
    }

    async fn task(&self, id: i64) -> Result<Option<TaskRow>> {
        let sql = format!("SELECT id, {TASK_FIELDS} FROM tasks WHERE id = $1");
        let q = sqlx::query(&sql).bind(id);
        one(&mut *self.conn().await?, q, task).await
    }

    async fn output(&self, task_id: i64, after_seq: i64, n: u32) -> Result<Vec<OutputChunkRow>> {
        let sql = format!(
            "SELECT {OUTPUT_COLUMNS} FROM task_output WHERE task_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        );
        let q = sqlx::query(&sql)
            .bind(task_id)
            .bind(after_seq)
            .bind(limit(n));
        all(&mut *self.conn().await?, q, output_chunk).await
    }

    async fn claim_runs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        n: u32,
    ) -> Result<Vec<RunRow>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut tx = write_tx(self).await?;
        let runs = claim(&mut tx, owner, now, lease_until, n).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(runs)
    }

    async fn renew_run(
        &self,
        run_id: i64,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE runs SET lease_until = $3 WHERE id = $1 AND owner = $2")
            .bind(run_id)
            .bind(owner)
            .bind(micros(lease_until))
            .execute(&mut *self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_run(&self, run_id: i64, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE runs SET owner = NULL, lease_until = NULL WHERE id = $1 AND owner = $2",
        )
        .bind(run_id)
        .bind(owner)
        .execute(&mut *self.conn().await?)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn update_run_progress(
        &self,
        run_id: i64,
        owner: &str,
        status: &str,
        current_step: i64,
        message: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE runs SET status = $3, current_step = $4, message = $5, updated_at = $6, \
             started_at = CASE WHEN started_at IS NULL AND $3 <> 'pending' THEN $6 \
               ELSE started_at END, \
             finished_at = CASE WHEN finished_at IS NULL AND $3 IN ({RUN_FINAL}) THEN $6 \
               ELSE finished_at END \
             WHERE id = $1 AND owner = $2 AND status IN ('pending', 'running')"
        );
        let mut conn = self.conn().await?;
        let done = sqlx::query(&sql)
            .bind(run_id)
            .bind(owner)
            .bind(status)
            .bind(current_step)
            .bind(message)
            .bind(micros(at))
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        let why = format!(
            "{owner} does not hold its lease, or a person changed its status (paused, cancelled, decided)"
        );
        refused(&mut conn, "runs", run_id, format!("run {run_id}"), &why).await
    }

    async fn update_step(&self, s: &StepRow) -> Result<()> {
        let done = sqlx::query(
            "UPDATE run_steps SET status = $3, attempt = $4, started_at = $5, finished_at = $6, \
             message = $7 WHERE run_id = $1 AND idx = $2",
        )
        .bind(s.run_id)
        .bind(s.idx)
        .bind(&s.status)
        .bind(s.attempt)
        .bind(s.started_at.map(micros))
        .bind(s.finished_at.map(micros))
        .bind(&s.message)
        .execute(&mut *self.conn().await?)
        .await
        .map_err(db_err)?;
        changed_one(done.rows_affected(), || {
            format!("step {} of run {}", s.idx, s.run_id)
        })
    }

    async fn insert_tasks(&self, tasks: &[TaskRow]) -> Result<Vec<TaskRow>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let sql = insert_returning_id("tasks", TASK_FIELDS);
        let mut tx = write_tx(self).await?;
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            let id = inserted_id(&mut tx, "tasks", bind_task(sqlx::query(&sql), t)).await?;
            out.push(TaskRow {
                id,
                started_at: t.started_at.map(micros),
                finished_at: t.finished_at.map(micros),
                ..t.clone()
            });
        }
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn update_task(&self, t: &TaskRow) -> Result<()> {
        update_task_on(&mut *self.conn().await?, t).await
    }

    async fn mark_tasks(
        &self,
        run_id: i64,
        from: &[&str],
        to: &str,
        error_code: &str,
        at: DateTime<Utc>,
    ) -> Result<u64> {
        if from.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE tasks SET status = $2, error_code = $3, \
             finished_at = COALESCE(finished_at, $4) \
             WHERE run_id = $1 AND status IN ({})",
            params(5, 4 + from.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(run_id)
            .bind(to)
            .bind(error_code)
            .bind(micros(at));
        for s in from {
            q = q.bind(*s);
        }
        let done = q.execute(&mut *self.conn().await?).await.map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn append_output(&self, chunks: &[OutputChunkRow]) -> Result<()> {
        self.record_tasks(&[], chunks).await
    }

    async fn agents(&self) -> Result<Vec<AgentRow>> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY hostname, id");
        all(&mut *self.conn().await?, sqlx::query(&sql), agent).await
    }

    async fn agent(&self, id: &str) -> Result<Option<AgentRow>> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1");
        let q = sqlx::query(&sql).bind(id);
        one(&mut *self.conn().await?, q, agent).await
    }

    async fn touch_agent(
        &self,
        id: &str,
        at: DateTime<Utc>,
        facts: Option<&Value>,
        version: Option<&str>,
    ) -> Result<()> {
        // The last-seen time never moves backwards (heartbeats may arrive out of order).
        let sql = format!(
            "UPDATE agents SET {TOUCH_SEEN}, facts = COALESCE($3, facts), \
             version = COALESCE($4, version) WHERE id = $1"
        );
        let done = sqlx::query(&sql)
            .bind(id)
            .bind(micros(at))
            .bind(facts.map(Json))
            .bind(version)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(db_err)?;
        changed_one(done.rows_affected(), || format!("agent {id}"))
    }

    async fn enroll_token(&self, hash: &str) -> Result<Option<EnrollTokenRow>> {
        let sql = format!("SELECT {ENROLL_COLUMNS} FROM enroll_tokens WHERE hash = $1");
        let q = sqlx::query(&sql).bind(hash);
        one(&mut *self.conn().await?, q, enroll_token).await
    }

    async fn enroll_tokens(&self) -> Result<Vec<EnrollTokenRow>> {
        let sql =
            format!("SELECT {ENROLL_COLUMNS} FROM enroll_tokens ORDER BY created_at DESC, hash");
        all(&mut *self.conn().await?, sqlx::query(&sql), enroll_token).await
    }

    async fn ssh_credentials(&self) -> Result<Vec<SshCredentialRow>> {
        let sql = format!("SELECT {SSH_COLUMNS} FROM ssh_credentials ORDER BY name");
        all(&mut *self.conn().await?, sqlx::query(&sql), ssh_credential).await
    }

    async fn ssh_credential(&self, name: &str) -> Result<Option<SshCredentialRow>> {
        let sql = format!("SELECT {SSH_COLUMNS} FROM ssh_credentials WHERE name = $1");
        let q = sqlx::query(&sql).bind(name);
        one(&mut *self.conn().await?, q, ssh_credential).await
    }

    async fn host_key(&self, host: &str, port: i64) -> Result<Option<HostKeyRow>> {
        let sql = format!("SELECT {HOST_KEY_COLUMNS} FROM host_keys WHERE host = $1 AND port = $2");
        let q = sqlx::query(&sql).bind(host).bind(port);
        one(&mut *self.conn().await?, q, host_key).await
    }

    async fn host_keys(&self) -> Result<Vec<HostKeyRow>> {
        let sql = format!("SELECT {HOST_KEY_COLUMNS} FROM host_keys ORDER BY host, port");
        all(&mut *self.conn().await?, sqlx::query(&sql), host_key).await
    }

    async fn setting(&self, key: &str) -> Result<Option<SettingRow>> {
        let sql = format!("SELECT {SETTING_COLUMNS} FROM settings WHERE key = $1");
        let q = sqlx::query(&sql).bind(key);
        one(&mut *self.conn().await?, q, setting).await
    }

    async fn record_tasks(&self, tasks: &[TaskRow], chunks: &[OutputChunkRow]) -> Result<()> {
        if tasks.is_empty() && chunks.is_empty() {
            return Ok(());
        }
        let sql = insert_sql("task_output", OUTPUT_COLUMNS);
        let mut tx = write_tx(self).await?;
        for t in tasks {
            update_task_on(&mut tx, t).await?;
        }
        for c in chunks {
            exec(&mut tx, bind_output(sqlx::query(&sql), c)).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn touch_agents(&self, seen: &[(String, DateTime<Utc>)]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let sql = format!("UPDATE agents SET {TOUCH_SEEN} WHERE id = $1");
        let mut tx = write_tx(self).await?;
        for (id, at) in seen {
            exec(&mut tx, sqlx::query(&sql).bind(id).bind(micros(*at))).await?;
        }
        tx.commit().await.map_err(db_err)
    }
}

// ---------------------------------------------------------------- ExecTx

#[async_trait]
impl ExecTx for TxImpl {
    async fn insert_script(&mut self, s: &ScriptRow) -> Result<i64> {
        let sql = insert_returning_id("scripts", SCRIPT_FIELDS);
        inserted_id(self.conn(), "scripts", bind_script(sqlx::query(&sql), s)).await
    }

    async fn insert_script_version(&mut self, v: &ScriptVersionRow) -> Result<()> {
        if !exists(self.conn(), "scripts", v.script_id).await? {
            return Err(StoreError::NotFound(format!("script {}", v.script_id)));
        }
        let sql = insert_sql("script_versions", SCRIPT_VERSION_COLUMNS);
        exec(self.conn(), bind_script_version(sqlx::query(&sql), v)).await?;
        Ok(())
    }

    async fn set_script_version_state(
        &mut self,
        script_id: i64,
        version: i64,
        state: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE script_versions SET state = $3, state_changed_by = $4, \
             state_changed_at = $5 WHERE script_id = $1 AND version = $2",
        )
        .bind(script_id)
        .bind(version)
        .bind(state)
        .bind(by)
        .bind(micros(at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        changed_one(done.rows_affected(), || {
            format!("version {version} of script {script_id}")
        })
    }

    async fn insert_plan(&mut self, p: &PlanRow) -> Result<i64> {
        let sql = insert_returning_id("plans", PLAN_FIELDS);
        inserted_id(self.conn(), "plans", bind_plan(sqlx::query(&sql), p)).await
    }

    async fn insert_plan_version(&mut self, v: &PlanVersionRow) -> Result<()> {
        if !exists(self.conn(), "plans", v.plan_id).await? {
            return Err(StoreError::NotFound(format!("plan {}", v.plan_id)));
        }
        let sql = insert_sql("plan_versions", PLAN_VERSION_COLUMNS);
        exec(self.conn(), bind_plan_version(sqlx::query(&sql), v)).await?;
        Ok(())
    }

    async fn insert_approval(&mut self, a: &ApprovalRow) -> Result<i64> {
        let sql = insert_returning_id("approvals", APPROVAL_FIELDS);
        inserted_id(
            self.conn(),
            "approvals",
            bind_approval(sqlx::query(&sql), a),
        )
        .await
    }

    async fn decide_approval(
        &mut self,
        id: i64,
        state: &str,
        by: &str,
        at: DateTime<Utc>,
        comment: Option<&str>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE approvals SET state = $2, decided_by = $3, decided_at = $4, comment = $5 \
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(state)
        .bind(by)
        .bind(micros(at))
        .bind(comment)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        if done.rows_affected() > 0 {
            Ok(())
        } else {
            let what = format!("approval {id}");
            refused(self.conn(), "approvals", id, what, "no longer pending").await
        }
    }

    async fn insert_run(&mut self, r: &RunRow, steps: &[StepRow]) -> Result<i64> {
        let sql = insert_returning_id("runs", RUN_FIELDS);
        let id = inserted_id(self.conn(), "runs", bind_run(sqlx::query(&sql), r)).await?;
        let sql = insert_sql("run_steps", STEP_COLUMNS);
        for s in steps {
            exec(self.conn(), bind_step(sqlx::query(&sql).bind(id), s)).await?;
        }
        Ok(id)
    }

    async fn set_run_status(
        &mut self,
        run_id: i64,
        status: &str,
        message: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE runs SET status = $2, message = $3, updated_at = $4, \
             finished_at = CASE WHEN finished_at IS NULL AND $2 IN ({RUN_FINAL}) THEN $4 \
               ELSE finished_at END \
             WHERE id = $1"
        );
        let done = sqlx::query(&sql)
            .bind(run_id)
            .bind(status)
            .bind(message)
            .bind(micros(at))
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        changed_one(done.rows_affected(), || format!("run {run_id}"))
    }

    async fn set_step_status(
        &mut self,
        run_id: i64,
        idx: i64,
        status: &str,
        message: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE run_steps SET status = $3, message = $4, \
             finished_at = CASE WHEN finished_at IS NULL AND $3 IN ({STEP_FINAL}) THEN $5 \
               ELSE finished_at END \
             WHERE run_id = $1 AND idx = $2"
        );
        let done = sqlx::query(&sql)
            .bind(run_id)
            .bind(idx)
            .bind(status)
            .bind(message)
            .bind(micros(at))
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        changed_one(done.rows_affected(), || {
            format!("step {idx} of run {run_id}")
        })
    }

    async fn insert_agent(&mut self, a: &AgentRow) -> Result<()> {
        let sql = insert_sql("agents", AGENT_COLUMNS);
        exec(self.conn(), bind_agent(sqlx::query(&sql), a)).await?;
        Ok(())
    }

    async fn revoke_agent(&mut self, id: &str, by: &str, at: DateTime<Utc>) -> Result<()> {
        let done = sqlx::query(
            "UPDATE agents SET revoked_at = $3, revoked_by = $2 \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(by)
        .bind(micros(at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        let what = format!("agent {id}");
        refused(
            self.conn(),
            "agents",
            id.to_string(),
            what,
            "already revoked",
        )
        .await
    }

    async fn insert_enroll_token(&mut self, t: &EnrollTokenRow) -> Result<()> {
        let sql = insert_sql("enroll_tokens", ENROLL_COLUMNS);
        exec(self.conn(), bind_enroll_token(sqlx::query(&sql), t)).await?;
        Ok(())
    }

    async fn use_enroll_token(
        &mut self,
        hash: &str,
        agent_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE enroll_tokens SET used_at = $3, agent_id = $2 \
             WHERE hash = $1 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(hash)
        .bind(agent_id)
        .bind(micros(at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_ssh_credential(&mut self, c: &SshCredentialRow) -> Result<()> {
        let sql = format!(
            "{} ON CONFLICT (name) DO UPDATE SET username = excluded.username, \
             kind = excluded.kind, secret_sealed = excluded.secret_sealed, \
             created_by = excluded.created_by, created_at = excluded.created_at",
            insert_sql("ssh_credentials", SSH_COLUMNS)
        );
        exec(self.conn(), bind_ssh_credential(sqlx::query(&sql), c)).await?;
        Ok(())
    }

    async fn delete_ssh_credential(&mut self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM ssh_credentials WHERE name = $1")
            .bind(name)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn pin_host_key(&mut self, k: &HostKeyRow) -> Result<()> {
        let sql = format!(
            "{} ON CONFLICT (host, port) DO UPDATE SET key_line = excluded.key_line, \
             fingerprint = excluded.fingerprint, pinned_by = excluded.pinned_by, \
             pinned_at = excluded.pinned_at",
            insert_sql("host_keys", HOST_KEY_COLUMNS)
        );
        exec(self.conn(), bind_host_key(sqlx::query(&sql), k)).await?;
        Ok(())
    }

    async fn unpin_host_key(&mut self, host: &str, port: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM host_keys WHERE host = $1 AND port = $2")
            .bind(host)
            .bind(port)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_setting(&mut self, s: &SettingRow) -> Result<()> {
        let sql = format!(
            "{} ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            insert_sql("settings", SETTING_COLUMNS)
        );
        exec(self.conn(), bind_setting(sqlx::query(&sql), s)).await?;
        Ok(())
    }
}

// ---------------------------------------------------------------- export and import

/// Every engine table, read on one connection inside the caller's read transaction.
pub(crate) async fn export(conn: &mut Conn) -> Result<ExecDump> {
    macro_rules! read {
        ($sql:expr, $map:expr) => {{
            let sql = $sql;
            all(&mut *conn, sqlx::query(&sql), $map).await?
        }};
    }
    Ok(ExecDump {
        scripts: read!(
            format!("SELECT id, {SCRIPT_FIELDS} FROM scripts ORDER BY id"),
            script
        ),
        script_versions: read!(
            format!(
                "SELECT {SCRIPT_VERSION_COLUMNS} FROM script_versions \
                 ORDER BY script_id, version"
            ),
            script_version
        ),
        plans: read!(
            format!("SELECT id, {PLAN_FIELDS} FROM plans ORDER BY id"),
            plan
        ),
        plan_versions: read!(
            format!("SELECT {PLAN_VERSION_COLUMNS} FROM plan_versions ORDER BY plan_id, version"),
            plan_version
        ),
        approvals: read!(
            format!("SELECT id, {APPROVAL_FIELDS} FROM approvals ORDER BY id"),
            approval
        ),
        runs: read!(
            format!("SELECT id, {RUN_FIELDS} FROM runs ORDER BY id"),
            run
        ),
        steps: read!(
            format!("SELECT {STEP_COLUMNS} FROM run_steps ORDER BY run_id, idx"),
            step
        ),
        tasks: read!(
            format!("SELECT id, {TASK_FIELDS} FROM tasks ORDER BY id"),
            task
        ),
        output: read!(
            format!("SELECT {OUTPUT_COLUMNS} FROM task_output ORDER BY task_id, seq"),
            output_chunk
        ),
        agents: read!(
            format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"),
            agent
        ),
        enroll_tokens: read!(
            format!("SELECT {ENROLL_COLUMNS} FROM enroll_tokens ORDER BY hash"),
            enroll_token
        ),
        ssh_credentials: read!(
            format!("SELECT {SSH_COLUMNS} FROM ssh_credentials ORDER BY name"),
            ssh_credential
        ),
        host_keys: read!(
            format!("SELECT {HOST_KEY_COLUMNS} FROM host_keys ORDER BY host, port"),
            host_key
        ),
        settings: read!(
            format!("SELECT {SETTING_COLUMNS} FROM settings ORDER BY key"),
            setting
        ),
        // Schedules are read by `schedule_common.rs`.
        ..ExecDump::default()
    })
}

/// Tables of the engine, in an order where every row's references come first.
const TABLES: [&str; 14] = [
    "scripts",
    "script_versions",
    "plans",
    "plan_versions",
    "approvals",
    "runs",
    "run_steps",
    "tasks",
    "task_output",
    "agents",
    "enroll_tokens",
    "ssh_credentials",
    "host_keys",
    "settings",
];

/// `Conflict` unless every engine table is empty.
async fn ensure_empty(conn: &mut Conn) -> Result<()> {
    let sum = TABLES
        .iter()
        .map(|t| format!("(SELECT count(*) FROM {t})"))
        .collect::<Vec<_>>()
        .join(" + ");
    let rows: i64 = sqlx::query_scalar(&format!("SELECT {sum}"))
        .fetch_one(conn)
        .await
        .map_err(db_err)?;
    if rows != 0 {
        return Err(StoreError::Conflict(
            "import needs an empty database: this one already holds engine data".into(),
        ));
    }
    Ok(())
}

/// Loads the engine's part of a dump, ids kept, inside the caller's write transaction.
pub(crate) async fn import(conn: &mut Conn, d: &ExecDump) -> Result<()> {
    ensure_empty(&mut *conn).await?;
    // `load!(rows, insert statement, binder[, key bound first])`
    macro_rules! load {
        ($rows:expr, $sql:expr, $bind:ident $(, $key:ident)?) => {{
            let sql = $sql;
            for r in &$rows {
                let q = sqlx::query(&sql)$(.bind(r.$key))?;
                exec(&mut *conn, $bind(q, r)).await?;
            }
        }};
    }
    load!(
        d.scripts,
        insert_with_id("scripts", SCRIPT_FIELDS),
        bind_script,
        id
    );
    let sql = insert_sql("script_versions", SCRIPT_VERSION_COLUMNS);
    load!(d.script_versions, sql, bind_script_version);
    load!(d.plans, insert_with_id("plans", PLAN_FIELDS), bind_plan, id);
    let sql = insert_sql("plan_versions", PLAN_VERSION_COLUMNS);
    load!(d.plan_versions, sql, bind_plan_version);
    let sql = insert_with_id("approvals", APPROVAL_FIELDS);
    load!(d.approvals, sql, bind_approval, id);
    load!(d.runs, insert_with_id("runs", RUN_FIELDS), bind_run, id);
    load!(
        d.steps,
        insert_sql("run_steps", STEP_COLUMNS),
        bind_step,
        run_id
    );
    load!(d.tasks, insert_with_id("tasks", TASK_FIELDS), bind_task, id);
    load!(
        d.output,
        insert_sql("task_output", OUTPUT_COLUMNS),
        bind_output
    );
    load!(d.agents, insert_sql("agents", AGENT_COLUMNS), bind_agent);
    let sql = insert_sql("enroll_tokens", ENROLL_COLUMNS);
    load!(d.enroll_tokens, sql, bind_enroll_token);
    let sql = insert_sql("ssh_credentials", SSH_COLUMNS);
    load!(d.ssh_credentials, sql, bind_ssh_credential);
    load!(
        d.host_keys,
        insert_sql("host_keys", HOST_KEY_COLUMNS),
        bind_host_key
    );
    load!(
        d.settings,
        insert_sql("settings", SETTING_COLUMNS),
        bind_setting
    );
    Ok(())
}
