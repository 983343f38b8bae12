//! Storage of scheduled job runs ([`ballast_store::schedule`]), written once for both backends.
//!
//! Compiled twice, like `exec_common.rs`: as `exec::schedule` of `ballast-store-sqlite` and,
//! through a `#[path]` attribute, as `exec::schedule` of `ballast-store-postgres`. Its parent
//! module (each crate's `exec.rs`) names the backend's types. The SQL text is the same on both
//! (`$N` parameters bound by number, `RETURNING`, `IS NOT DISTINCT FROM`, which SQLite has had
//! since 3.39).

use async_trait::async_trait;
use ballast_store::exec::ExecDump;
use ballast_store::schedule::{
    FireClaim, FireQuery, ScheduleFireRow, ScheduleRow, ScheduleStore, ScheduleTx,
};
use ballast_store::{Result, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::common::{Query, all, exec, get, insert_sql, one};
use super::{Conn, DbRow, StoreImpl, TxImpl, db_err, micros};

const SCHEDULE_FIELDS: &str = "name, plan_id, plan_version, environment, expression, calendar, \
     vars, secrets_sealed, catch_up, enabled, owner, created_by, created_at, updated_by, \
     updated_at, last_fire_at, next_fire_at";
const FIRE_FIELDS: &str = "schedule_id, scheduled_at, handled_at, outcome, run_id, message";

fn schedule(row: &DbRow) -> Result<ScheduleRow> {
    const T: &str = "schedules";
    Ok(ScheduleRow {
        id: get(row, T, "id")?,
        name: get(row, T, "name")?,
        plan_id: get(row, T, "plan_id")?,
        plan_version: get(row, T, "plan_version")?,
        environment: get(row, T, "environment")?,
        expression: get(row, T, "expression")?,
        calendar: get(row, T, "calendar")?,
        vars: get::<Json<Value>>(row, T, "vars")?.0,
        secrets_sealed: get(row, T, "secrets_sealed")?,
        catch_up: get(row, T, "catch_up")?,
        enabled: get(row, T, "enabled")?,
        owner: get(row, T, "owner")?,
        created_by: get(row, T, "created_by")?,
        created_at: get(row, T, "created_at")?,
        updated_by: get(row, T, "updated_by")?,
        updated_at: get(row, T, "updated_at")?,
        last_fire_at: get(row, T, "last_fire_at")?,
        next_fire_at: get(row, T, "next_fire_at")?,
    })
}

fn fire(row: &DbRow) -> Result<ScheduleFireRow> {
    const T: &str = "schedule_fires";
    Ok(ScheduleFireRow {
        id: get(row, T, "id")?,
        schedule_id: get(row, T, "schedule_id")?,
        scheduled_at: get(row, T, "scheduled_at")?,
        handled_at: get(row, T, "handled_at")?,
        outcome: get(row, T, "outcome")?,
        run_id: get(row, T, "run_id")?,
        message: get(row, T, "message")?,
    })
}

/// Binds every field but the id, in `SCHEDULE_FIELDS` order.
fn bind_schedule<'q>(q: Query<'q>, s: &'q ScheduleRow) -> Query<'q> {
    q.bind(&s.name)
        .bind(s.plan_id)
        .bind(s.plan_version)
        .bind(&s.environment)
        .bind(&s.expression)
        .bind(&s.calendar)
        .bind(Json(&s.vars))
        .bind(&s.secrets_sealed)
        .bind(&s.catch_up)
        .bind(s.enabled)
        .bind(&s.owner)
        .bind(&s.created_by)
        .bind(micros(s.created_at))
        .bind(&s.updated_by)
        .bind(micros(s.updated_at))
        .bind(s.last_fire_at.map(micros))
        .bind(s.next_fire_at.map(micros))
}

fn bind_fire<'q>(q: Query<'q>, f: &'q ScheduleFireRow) -> Query<'q> {
    q.bind(f.schedule_id)
        .bind(micros(f.scheduled_at))
        .bind(micros(f.handled_at))
        .bind(&f.outcome)
        .bind(f.run_id)
        .bind(&f.message)
}

// ---------------------------------------------------------------- ScheduleStore

#[async_trait]
impl ScheduleStore for StoreImpl {
    async fn schedules(&self) -> Result<Vec<ScheduleRow>> {
        let sql = format!("SELECT id, {SCHEDULE_FIELDS} FROM schedules ORDER BY name");
        all(&mut *self.conn().await?, sqlx::query(&sql), schedule).await
    }

    async fn schedule(&self, id: i64) -> Result<Option<ScheduleRow>> {
        let sql = format!("SELECT id, {SCHEDULE_FIELDS} FROM schedules WHERE id = $1");
        one(
            &mut *self.conn().await?,
            sqlx::query(&sql).bind(id),
            schedule,
        )
        .await
    }

    async fn schedule_by_name(&self, name: &str) -> Result<Option<ScheduleRow>> {
        let sql = format!("SELECT id, {SCHEDULE_FIELDS} FROM schedules WHERE name = $1");
        one(
            &mut *self.conn().await?,
            sqlx::query(&sql).bind(name),
            schedule,
        )
        .await
    }

    async fn due_schedules(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<ScheduleRow>> {
        let sql = format!(
            "SELECT id, {SCHEDULE_FIELDS} FROM schedules WHERE enabled = $1 \
             AND next_fire_at IS NOT NULL AND next_fire_at <= $2 \
             ORDER BY next_fire_at, id LIMIT $3"
        );
        let q = sqlx::query(&sql)
            .bind(true)
            .bind(micros(now))
            .bind(i64::from(limit));
        all(&mut *self.conn().await?, q, schedule).await
    }

    async fn fires(&self, f: &FireQuery) -> Result<Vec<ScheduleFireRow>> {
        // Outcome filter: `$4, $5, …` (one parameter per outcome).
        let outcomes = if f.outcomes.is_empty() {
            String::new()
        } else {
            let ps = (0..f.outcomes.len())
                .map(|i| format!("${}", i + 4))
                .collect::<Vec<_>>()
                .join(", ");
            format!(" AND outcome IN ({ps})")
        };
        let sql = format!(
            "SELECT id, {FIRE_FIELDS} FROM schedule_fires \
             WHERE ($1 IS NULL OR schedule_id = $1) AND ($2 IS NULL OR id < $2){outcomes} \
             ORDER BY id DESC LIMIT $3"
        );
        let mut q = sqlx::query(&sql)
            .bind(f.schedule_id)
            .bind(f.before_id)
            .bind(i64::from(f.limit));
        for o in &f.outcomes {
            q = q.bind(o);
        }
        all(&mut *self.conn().await?, q, fire).await
    }

    async fn latest_fires(&self) -> Result<Vec<ScheduleFireRow>> {
        let sql = format!(
            "SELECT id, {FIRE_FIELDS} FROM schedule_fires WHERE id IN \
             (SELECT max(id) FROM schedule_fires GROUP BY schedule_id) ORDER BY schedule_id"
        );
        all(&mut *self.conn().await?, sqlx::query(&sql), fire).await
    }

    async fn finish_fire(
        &self,
        id: i64,
        outcome: &str,
        run_id: Option<i64>,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let q = sqlx::query(
            "UPDATE schedule_fires SET outcome = $2, run_id = $3, message = $4, handled_at = $5 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(outcome)
        .bind(run_id)
        .bind(message)
        .bind(micros(at));
        if exec(&mut *self.conn().await?, q).await? == 0 {
            return Err(StoreError::NotFound(format!("schedule fire {id}")));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- ScheduleTx

#[async_trait]
impl ScheduleTx for TxImpl {
    async fn insert_schedule(&mut self, s: &ScheduleRow) -> Result<i64> {
        let sql = format!("{} RETURNING id", insert_sql("schedules", SCHEDULE_FIELDS));
        let row = bind_schedule(sqlx::query(&sql), s)
            .fetch_one(self.conn())
            .await
            .map_err(db_err)?;
        get(&row, "schedules", "id")
    }

    async fn update_schedule(&mut self, s: &ScheduleRow) -> Result<()> {
        let q = sqlx::query(
            "UPDATE schedules SET name = $2, plan_id = $3, plan_version = $4, environment = $5, \
             expression = $6, calendar = $7, vars = $8, secrets_sealed = $9, catch_up = $10, \
             enabled = $11, owner = $12, updated_by = $13, updated_at = $14, next_fire_at = $15 \
             WHERE id = $1",
        )
        .bind(s.id)
        .bind(&s.name)
        .bind(s.plan_id)
        .bind(s.plan_version)
        .bind(&s.environment)
        .bind(&s.expression)
        .bind(&s.calendar)
        .bind(Json(&s.vars))
        .bind(&s.secrets_sealed)
        .bind(&s.catch_up)
        .bind(s.enabled)
        .bind(&s.owner)
        .bind(&s.updated_by)
        .bind(micros(s.updated_at))
        .bind(s.next_fire_at.map(micros));
        if exec(self.conn(), q).await? == 0 {
            return Err(StoreError::NotFound(format!("schedule {}", s.id)));
        }
        Ok(())
    }

    async fn delete_schedule(&mut self, id: i64) -> Result<bool> {
        let q = sqlx::query("DELETE FROM schedule_fires WHERE schedule_id = $1").bind(id);
        exec(self.conn(), q).await?;
        let q = sqlx::query("DELETE FROM schedules WHERE id = $1").bind(id);
        Ok(exec(self.conn(), q).await? > 0)
    }

    async fn claim_fire(&mut self, c: &FireClaim) -> Result<bool> {
        let q = sqlx::query(
            "UPDATE schedules SET last_fire_at = $4, next_fire_at = $5 \
             WHERE id = $1 AND last_fire_at IS NOT DISTINCT FROM $2 AND updated_at = $3",
        )
        .bind(c.schedule_id)
        .bind(c.expected_last_fire_at.map(micros))
        .bind(micros(c.expected_updated_at))
        .bind(c.last_fire_at.map(micros))
        .bind(c.next_fire_at.map(micros));
        Ok(exec(self.conn(), q).await? > 0)
    }

    async fn insert_fires(&mut self, fires: &[ScheduleFireRow]) -> Result<Vec<i64>> {
        let sql = format!("{} RETURNING id", insert_sql("schedule_fires", FIRE_FIELDS));
        let mut ids = Vec::with_capacity(fires.len());
        for f in fires {
            let row = bind_fire(sqlx::query(&sql), f)
                .fetch_one(self.conn())
                .await
                .map_err(db_err)?;
            ids.push(get(&row, "schedule_fires", "id")?);
        }
        Ok(ids)
    }
}

// ---------------------------------------------------------------- export and import

/// The schedules and their fires, into the engine's part of a dump (on the caller's connection,
/// inside its read transaction).
pub(crate) async fn export(conn: &mut Conn, into: &mut ExecDump) -> Result<()> {
    let sql = format!("SELECT id, {SCHEDULE_FIELDS} FROM schedules ORDER BY id");
    into.schedules = all(&mut *conn, sqlx::query(&sql), schedule).await?;
    let sql = format!("SELECT id, {FIRE_FIELDS} FROM schedule_fires ORDER BY id");
    into.schedule_fires = all(&mut *conn, sqlx::query(&sql), fire).await?;
    Ok(())
}

/// Loads the schedules and their fires, ids kept, inside the caller's write transaction (after
/// the plans they refer to). `Conflict` unless both tables are empty.
pub(crate) async fn import(conn: &mut Conn, d: &ExecDump) -> Result<()> {
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM schedules) + (SELECT count(*) FROM schedule_fires)",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    if rows != 0 {
        return Err(StoreError::Conflict(
            "import needs an empty database: this one already holds schedules".into(),
        ));
    }
    let sql = insert_sql("schedules", &format!("id, {SCHEDULE_FIELDS}"));
    for s in &d.schedules {
        exec(&mut *conn, bind_schedule(sqlx::query(&sql).bind(s.id), s)).await?;
    }
    let sql = insert_sql("schedule_fires", &format!("id, {FIRE_FIELDS}"));
    for f in &d.schedule_fires {
        exec(&mut *conn, bind_fire(sqlx::query(&sql).bind(f.id), f)).await?;
    }
    Ok(())
}
