//! The audit chain on SQLite: appends inside the writer's transaction, reads and search.
//!
//! Appends are serialised by SQLite itself: every [`crate::SqliteTx`] starts with `BEGIN
//! IMMEDIATE`, so it holds the database's single write lock from its first statement; reading the
//! head, inserting the records and moving the head all happen under that lock.

use ballast_core::audit::{self, AuditDraft, AuditRecord, Content};
use ballast_store::{AuditQuery, Result, StoreError};
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

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

pub(crate) async fn head(conn: &mut SqliteConnection) -> Result<Option<(i64, String)>> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::Corrupt("audit_head: the head row is missing".into()))?;
    rows::head(&row)
}

pub(crate) async fn set_head(conn: &mut SqliteConnection, seq: i64, hash: &str) -> Result<()> {
    sqlx::query("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    r: &AuditRecord,
    c: &SearchColumns,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (seq, at, content, prev_hash, hash, actor, action, object_type, \
         object_id, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

/// Seals the drafts after the current head, inserts them and moves the head. The caller's
/// transaction must hold the write lock (it does: `BEGIN IMMEDIATE`).
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    drafts: Vec<AuditDraft>,
    at: DateTime<Utc>,
) -> Result<Vec<AuditRecord>> {
    let at = micros(at);
    let mut prev = head(&mut *conn).await?;
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
    conn: &mut SqliteConnection,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<AuditRecord>> {
    let found = sqlx::query(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"
    ))
    .bind(after_seq)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    found.iter().map(rows::audit).collect()
}

/// Newest first. `from` is inclusive, `to` exclusive; `text` is a case-sensitive substring of the
/// content; `action_prefix` a case-sensitive prefix of the action.
pub(crate) async fn search(
    conn: &mut SqliteConnection,
    q: &AuditQuery,
) -> Result<Vec<AuditRecord>> {
    let mut qb =
        QueryBuilder::<Sqlite>::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1"));
    if let Some(actor) = &q.actor {
        qb.push(" AND actor = ").push_bind(actor);
    }
    if let Some(prefix) = &q.action_prefix {
        qb.push(" AND substr(action, 1, length(")
            .push_bind(prefix)
            .push(")) = ")
            .push_bind(prefix);
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
        qb.push(" AND instr(content, ")
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
