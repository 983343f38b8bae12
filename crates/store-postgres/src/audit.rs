//! The audit chain on PostgreSQL: appends inside the caller's transaction, reads and search.
//!
//! Several replicas may append at once. Each append first locks the one-row `audit_head` table
//! with `SELECT … FOR UPDATE`: a second transaction waits at that point until the first commits
//! (or rolls back) and then reads the head the first one left, so two commits can never take the
//! same sequence number or chain after the same record. The primary key on `seq` and the unique
//! `prev_hash` would refuse a fork even if they did. The lock is taken at commit time, so it is
//! held only for the few statements that append.

use ballast_core::audit::{self, AuditDraft, AuditRecord, Content};
use ballast_store::{AuditQuery, Result, StoreError};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::error::db_err;
use crate::rows::{self, AUDIT_COLUMNS, micros};

/// The content fields copied into indexed columns for search.
pub(crate) struct SearchColumns {
    actor: String,
    action: String,
    object_type: String,
    object_id: Option<String>,
    outcome: &'static str,
}

impl SearchColumns {
    pub(crate) fn of(d: &AuditDraft) -> SearchColumns {
        SearchColumns {
            actor: d.actor.username.clone(),
            action: d.action.clone(),
            object_type: d.object_type.clone(),
            object_id: d.object_id.clone(),
            outcome: d.outcome.key(),
        }
    }
}

/// Parses a stored record's content (for import, where only the text is at hand).
pub(crate) fn parsed(r: &AuditRecord) -> Result<Content> {
    r.parsed().ok_or_else(|| {
        StoreError::Corrupt(format!(
            "audit record {}: content is not a valid audit record",
            r.seq
        ))
    })
}

async fn read_head(conn: &mut PgConnection, sql: &str) -> Result<Option<(i64, String)>> {
    let row = sqlx::query(sql)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::Corrupt("audit_head: the head row is missing".into()))?;
    rows::head(&row)
}

pub(crate) async fn head(conn: &mut PgConnection) -> Result<Option<(i64, String)>> {
    read_head(conn, "SELECT seq, hash FROM audit_head WHERE id = 1").await
}

/// Reads the head and keeps it locked until the transaction ends.
pub(crate) async fn lock_head(conn: &mut PgConnection) -> Result<Option<(i64, String)>> {
    read_head(
        conn,
        "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
    )
    .await
}

pub(crate) async fn set_head(conn: &mut PgConnection, seq: i64, hash: &str) -> Result<()> {
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn insert(
    conn: &mut PgConnection,
    r: &AuditRecord,
    c: &SearchColumns,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (seq, at, content, prev_hash, hash, actor, action, object_type, \
         object_id, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(r.seq)
    .bind(r.at)
    .bind(&r.content)
    .bind(&r.prev_hash)
    .bind(&r.hash)
    .bind(&c.actor)
    .bind(&c.action)
    .bind(&c.object_type)
    .bind(&c.object_id)
    .bind(c.outcome)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Locks the head, seals the drafts after it, inserts them and moves the head.
pub(crate) async fn append(
    conn: &mut PgConnection,
    drafts: Vec<AuditDraft>,
    at: DateTime<Utc>,
) -> Result<Vec<AuditRecord>> {
    let at = micros(at);
    let mut prev = lock_head(&mut *conn).await?;
    let mut out = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let columns = SearchColumns::of(&draft);
        let record = audit::seal(prev.as_ref().map(|(s, h)| (*s, h.as_str())), draft, at);
        insert(&mut *conn, &record, &columns).await?;
        prev = Some((record.seq, record.hash.clone()));
        out.push(record);
    }
    if let Some((seq, hash)) = &prev {
        set_head(conn, *seq, hash).await?;
    }
    Ok(out)
}

pub(crate) async fn range(
    conn: &mut PgConnection,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<AuditRecord>> {
    let found = sqlx::query(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(after_seq)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    found.iter().map(rows::audit).collect()
}

/// `prefix` as a LIKE pattern matching itself literally, then anything.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Newest first. `from` is inclusive, `to` exclusive; `text` is a case-sensitive substring of the
/// content; `action_prefix` a case-sensitive prefix of the action.
pub(crate) async fn search(conn: &mut PgConnection, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
    let mut qb =
        QueryBuilder::<Postgres>::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE TRUE"));
    if let Some(actor) = &q.actor {
        qb.push(" AND actor = ").push_bind(actor);
    }
    if let Some(prefix) = &q.action_prefix {
        qb.push(" AND action LIKE ")
            .push_bind(like_prefix(prefix))
            .push(" ESCAPE '\\'");
    }
    if let Some(t) = &q.object_type {
        qb.push(" AND object_type = ").push_bind(t);
    }
    if let Some(id) = &q.object_id {
        qb.push(" AND object_id = ").push_bind(id);
    }
    if let Some(outcome) = &q.outcome {
        qb.push(" AND outcome = ").push_bind(outcome);
    }
    if let Some(from) = q.from {
        qb.push(" AND at >= ").push_bind(micros(from));
    }
    if let Some(to) = q.to {
        qb.push(" AND at < ").push_bind(micros(to));
    }
    if let Some(text) = &q.text {
        qb.push(" AND strpos(content, ")
            .push_bind(text)
            .push(") > 0");
    }
    if let Some(before) = q.before_seq {
        qb.push(" AND seq < ").push_bind(before);
    }
    qb.push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(q.limit));
    let found = qb.build().fetch_all(conn).await.map_err(db_err)?;
    found.iter().map(rows::audit).collect()
}
