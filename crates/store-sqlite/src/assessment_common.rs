//! Storage of online assessments ([`ballast_store::assessment`]), written once for both backends.
//!
//! Compiled twice, like `schedule_common.rs`: as `exec::assessment` of `ballast-store-sqlite` and,
//! through a `#[path]` attribute, as `exec::assessment` of `ballast-store-postgres`. Its parent
//! module (each crate's `exec.rs`) names the backend's types and `LOCK_ONE` (the row lock
//! `lock_assessment` takes: `FOR UPDATE` on PostgreSQL; nothing on SQLite, whose write
//! transactions hold the write lock from their first statement). Calendar dates are ISO text on
//! both backends, so they compare the same.

use async_trait::async_trait;
use ballast_store::assessment::{
    AnswerRow, AssessmentDump, AssessmentItemRow, AssessmentRow, AssessmentStore, AssessmentTx,
    EvidenceDump, EvidenceRow, ImprovementActionRow,
};
use ballast_store::{Result, StoreError};
use chrono::NaiveDate;
use serde_json::Value;
use sqlx::types::Json;

use super::common::{Query, all, exec, get, insert_sql, one};
use super::{Conn, DbRow, LOCK_ONE, StoreImpl, TxImpl, db_err, micros};

const ASSESSMENT_FIELDS: &str = "name, catalog_id, catalog_version, scope, targets, meta, owner, \
     state, created_by, created_at, updated_by, updated_at, signed_off_by, signed_off_at";
const ITEM_COLUMNS: &str = "assessment_id, item_table, assessor, reviewer, review_state, \
     review_comment, reviewed_by, reviewed_at";
const ANSWER_COLUMNS: &str = "assessment_id, clause_id, item_table, rating, comment, \
     justification, na_approved_by, rated_by, rated_at";
const EVIDENCE_FIELDS: &str = "assessment_id, clause_id, kind, name, sha256, size, expires_on, \
     added_by, added_at, expired_at";
const ACTION_FIELDS: &str = "assessment_id, item_table, title, owner, due_on, status, \
     clause_ids, created_by, created_at, updated_by, updated_at";

fn corrupt(table: &str, column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table}.{column}: {e}"))
}

fn date(row: &DbRow, table: &str, column: &str) -> Result<NaiveDate> {
    let s: String = get(row, table, column)?;
    NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| corrupt(table, column, e))
}

fn opt_date(row: &DbRow, table: &str, column: &str) -> Result<Option<NaiveDate>> {
    let s: Option<String> = get(row, table, column)?;
    s.map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| corrupt(table, column, e)))
        .transpose()
}

fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn assessment(row: &DbRow) -> Result<AssessmentRow> {
    const T: &str = "assessments";
    Ok(AssessmentRow {
        id: get(row, T, "id")?,
        name: get(row, T, "name")?,
        catalog_id: get(row, T, "catalog_id")?,
        catalog_version: get(row, T, "catalog_version")?,
        scope: get(row, T, "scope")?,
        targets: get::<Json<Value>>(row, T, "targets")?.0,
        meta: get::<Json<Value>>(row, T, "meta")?.0,
        owner: get(row, T, "owner")?,
        state: get(row, T, "state")?,
        created_by: get(row, T, "created_by")?,
        created_at: get(row, T, "created_at")?,
        updated_by: get(row, T, "updated_by")?,
        updated_at: get(row, T, "updated_at")?,
        signed_off_by: get(row, T, "signed_off_by")?,
        signed_off_at: get(row, T, "signed_off_at")?,
    })
}

fn item(row: &DbRow) -> Result<AssessmentItemRow> {
    const T: &str = "assessment_items";
    Ok(AssessmentItemRow {
        assessment_id: get(row, T, "assessment_id")?,
        item_table: get(row, T, "item_table")?,
        assessor: get(row, T, "assessor")?,
        reviewer: get(row, T, "reviewer")?,
        review_state: get(row, T, "review_state")?,
        review_comment: get(row, T, "review_comment")?,
        reviewed_by: get(row, T, "reviewed_by")?,
        reviewed_at: get(row, T, "reviewed_at")?,
    })
}

fn answer(row: &DbRow) -> Result<AnswerRow> {
    const T: &str = "assessment_answers";
    Ok(AnswerRow {
        assessment_id: get(row, T, "assessment_id")?,
        clause_id: get(row, T, "clause_id")?,
        item_table: get(row, T, "item_table")?,
        rating: get(row, T, "rating")?,
        comment: get(row, T, "comment")?,
        justification: get(row, T, "justification")?,
        na_approved_by: get(row, T, "na_approved_by")?,
        rated_by: get(row, T, "rated_by")?,
        rated_at: get(row, T, "rated_at")?,
    })
}

fn evidence(row: &DbRow) -> Result<EvidenceRow> {
    const T: &str = "assessment_evidence";
    Ok(EvidenceRow {
        id: get(row, T, "id")?,
        assessment_id: get(row, T, "assessment_id")?,
        clause_id: get(row, T, "clause_id")?,
        kind: get(row, T, "kind")?,
        name: get(row, T, "name")?,
        sha256: get(row, T, "sha256")?,
        size: get(row, T, "size")?,
        expires_on: opt_date(row, T, "expires_on")?,
        added_by: get(row, T, "added_by")?,
        added_at: get(row, T, "added_at")?,
        expired_at: get(row, T, "expired_at")?,
    })
}

fn evidence_with_content(row: &DbRow) -> Result<(EvidenceRow, Option<Vec<u8>>)> {
    Ok((evidence(row)?, get(row, "assessment_evidence", "content")?))
}

fn action(row: &DbRow) -> Result<ImprovementActionRow> {
    const T: &str = "improvement_actions";
    Ok(ImprovementActionRow {
        id: get(row, T, "id")?,
        assessment_id: get(row, T, "assessment_id")?,
        item_table: get(row, T, "item_table")?,
        title: get(row, T, "title")?,
        owner: get(row, T, "owner")?,
        due_on: date(row, T, "due_on")?,
        status: get(row, T, "status")?,
        clause_ids: get::<Json<Vec<String>>>(row, T, "clause_ids")?.0,
        created_by: get(row, T, "created_by")?,
        created_at: get(row, T, "created_at")?,
        updated_by: get(row, T, "updated_by")?,
        updated_at: get(row, T, "updated_at")?,
    })
}

/// Binds every field but the id, in `ASSESSMENT_FIELDS` order.
fn bind_assessment<'q>(q: Query<'q>, a: &'q AssessmentRow) -> Query<'q> {
    q.bind(&a.name)
        .bind(&a.catalog_id)
        .bind(&a.catalog_version)
        .bind(&a.scope)
        .bind(Json(&a.targets))
        .bind(Json(&a.meta))
        .bind(&a.owner)
        .bind(&a.state)
        .bind(&a.created_by)
        .bind(micros(a.created_at))
        .bind(&a.updated_by)
        .bind(micros(a.updated_at))
        .bind(&a.signed_off_by)
        .bind(a.signed_off_at.map(micros))
}

fn bind_item<'q>(q: Query<'q>, i: &'q AssessmentItemRow) -> Query<'q> {
    q.bind(i.assessment_id)
        .bind(i.item_table)
        .bind(&i.assessor)
        .bind(&i.reviewer)
        .bind(&i.review_state)
        .bind(&i.review_comment)
        .bind(&i.reviewed_by)
        .bind(i.reviewed_at.map(micros))
}

fn bind_answer<'q>(q: Query<'q>, a: &'q AnswerRow) -> Query<'q> {
    q.bind(a.assessment_id)
        .bind(&a.clause_id)
        .bind(a.item_table)
        .bind(&a.rating)
        .bind(&a.comment)
        .bind(&a.justification)
        .bind(&a.na_approved_by)
        .bind(&a.rated_by)
        .bind(a.rated_at.map(micros))
}

/// Every field but the id and the content, in `EVIDENCE_FIELDS` order.
fn bind_evidence<'q>(q: Query<'q>, e: &'q EvidenceRow) -> Query<'q> {
    q.bind(e.assessment_id)
        .bind(&e.clause_id)
        .bind(&e.kind)
        .bind(&e.name)
        .bind(&e.sha256)
        .bind(e.size)
        .bind(e.expires_on.map(iso))
        .bind(&e.added_by)
        .bind(micros(e.added_at))
        .bind(e.expired_at.map(micros))
}

fn bind_action<'q>(q: Query<'q>, a: &'q ImprovementActionRow) -> Query<'q> {
    q.bind(a.assessment_id)
        .bind(a.item_table)
        .bind(&a.title)
        .bind(&a.owner)
        .bind(iso(a.due_on))
        .bind(&a.status)
        .bind(Json(&a.clause_ids))
        .bind(&a.created_by)
        .bind(micros(a.created_at))
        .bind(&a.updated_by)
        .bind(micros(a.updated_at))
}

/// `Conflict` unless the assessment exists (the foreign keys would say so too, but not on every
/// backend with the same error).
async fn require_assessment(conn: &mut Conn, id: i64) -> Result<()> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM assessments WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "assessment {id} does not exist"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- AssessmentStore

#[async_trait]
impl AssessmentStore for StoreImpl {
    async fn assessments(&self) -> Result<Vec<AssessmentRow>> {
        let sql = format!("SELECT id, {ASSESSMENT_FIELDS} FROM assessments ORDER BY id");
        all(&mut *self.conn().await?, sqlx::query(&sql), assessment).await
    }

    async fn assessment(&self, id: i64) -> Result<Option<AssessmentRow>> {
        let sql = format!("SELECT id, {ASSESSMENT_FIELDS} FROM assessments WHERE id = $1");
        let q = sqlx::query(&sql).bind(id);
        one(&mut *self.conn().await?, q, assessment).await
    }

    async fn assessment_items(&self, assessment_id: i64) -> Result<Vec<AssessmentItemRow>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM assessment_items WHERE assessment_id = $1 \
             ORDER BY item_table"
        );
        let q = sqlx::query(&sql).bind(assessment_id);
        all(&mut *self.conn().await?, q, item).await
    }

    async fn assessment_answers(&self, assessment_id: i64) -> Result<Vec<AnswerRow>> {
        let sql = format!(
            "SELECT {ANSWER_COLUMNS} FROM assessment_answers WHERE assessment_id = $1 \
             ORDER BY clause_id"
        );
        let q = sqlx::query(&sql).bind(assessment_id);
        all(&mut *self.conn().await?, q, answer).await
    }

    async fn assessment_evidence(&self, assessment_id: i64) -> Result<Vec<EvidenceRow>> {
        let sql = format!(
            "SELECT id, {EVIDENCE_FIELDS} FROM assessment_evidence WHERE assessment_id = $1 \
             ORDER BY id"
        );
        let q = sqlx::query(&sql).bind(assessment_id);
        all(&mut *self.conn().await?, q, evidence).await
    }

    async fn evidence_content(&self, id: i64) -> Result<Option<(EvidenceRow, Option<Vec<u8>>)>> {
        let sql =
            format!("SELECT id, {EVIDENCE_FIELDS}, content FROM assessment_evidence WHERE id = $1");
        let q = sqlx::query(&sql).bind(id);
        one(&mut *self.conn().await?, q, evidence_with_content).await
    }

    async fn improvement_actions(
        &self,
        assessment_id: Option<i64>,
    ) -> Result<Vec<ImprovementActionRow>> {
        let sql = format!(
            "SELECT id, {ACTION_FIELDS} FROM improvement_actions \
             WHERE ($1 IS NULL OR assessment_id = $1) ORDER BY id"
        );
        let q = sqlx::query(&sql).bind(assessment_id);
        all(&mut *self.conn().await?, q, action).await
    }

    async fn expired_evidence(&self, today: NaiveDate, limit: u32) -> Result<Vec<EvidenceRow>> {
        let sql = format!(
            "SELECT e.id, {} FROM assessment_evidence e \
             JOIN assessments a ON a.id = e.assessment_id \
             WHERE e.expired_at IS NULL AND e.expires_on IS NOT NULL AND e.expires_on < $1 \
             AND a.state <> 'signed_off' ORDER BY e.id LIMIT $2",
            EVIDENCE_FIELDS
                .split(", ")
                .map(|c| format!("e.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let q = sqlx::query(&sql).bind(iso(today)).bind(i64::from(limit));
        all(&mut *self.conn().await?, q, evidence).await
    }
}

// ---------------------------------------------------------------- AssessmentTx

#[async_trait]
impl AssessmentTx for TxImpl {
    async fn insert_assessment(&mut self, a: &AssessmentRow) -> Result<i64> {
        let sql = format!(
            "{} RETURNING id",
            insert_sql("assessments", ASSESSMENT_FIELDS)
        );
        let row = bind_assessment(sqlx::query(&sql), a)
            .fetch_one(self.conn())
            .await
            .map_err(db_err)?;
        get(&row, "assessments", "id")
    }

    async fn lock_assessment(&mut self, id: i64) -> Result<Option<AssessmentRow>> {
        let sql =
            format!("SELECT id, {ASSESSMENT_FIELDS} FROM assessments WHERE id = $1{LOCK_ONE}");
        one(self.conn(), sqlx::query(&sql).bind(id), assessment).await
    }

    async fn update_assessment(&mut self, a: &AssessmentRow) -> Result<()> {
        let q = sqlx::query(
            "UPDATE assessments SET name = $2, catalog_id = $3, catalog_version = $4, scope = $5, \
             targets = $6, meta = $7, owner = $8, state = $9, updated_by = $10, updated_at = $11, \
             signed_off_by = $12, signed_off_at = $13 WHERE id = $1",
        )
        .bind(a.id)
        .bind(&a.name)
        .bind(&a.catalog_id)
        .bind(&a.catalog_version)
        .bind(&a.scope)
        .bind(Json(&a.targets))
        .bind(Json(&a.meta))
        .bind(&a.owner)
        .bind(&a.state)
        .bind(&a.updated_by)
        .bind(micros(a.updated_at))
        .bind(&a.signed_off_by)
        .bind(a.signed_off_at.map(micros));
        if exec(self.conn(), q).await? == 0 {
            return Err(StoreError::NotFound(format!("assessment {}", a.id)));
        }
        Ok(())
    }

    async fn upsert_assessment_item(&mut self, i: &AssessmentItemRow) -> Result<()> {
        require_assessment(self.conn(), i.assessment_id).await?;
        let sql = format!(
            "{} ON CONFLICT (assessment_id, item_table) DO UPDATE SET assessor = excluded.assessor, \
             reviewer = excluded.reviewer, review_state = excluded.review_state, \
             review_comment = excluded.review_comment, reviewed_by = excluded.reviewed_by, \
             reviewed_at = excluded.reviewed_at",
            insert_sql("assessment_items", ITEM_COLUMNS)
        );
        exec(self.conn(), bind_item(sqlx::query(&sql), i)).await?;
        Ok(())
    }

    async fn upsert_answers(&mut self, rows: &[AnswerRow]) -> Result<()> {
        let sql = format!(
            "{} ON CONFLICT (assessment_id, clause_id) DO UPDATE SET \
             item_table = excluded.item_table, rating = excluded.rating, \
             comment = excluded.comment, justification = excluded.justification, \
             na_approved_by = excluded.na_approved_by, rated_by = excluded.rated_by, \
             rated_at = excluded.rated_at",
            insert_sql("assessment_answers", ANSWER_COLUMNS)
        );
        let mut checked = std::collections::BTreeSet::new();
        for r in rows {
            if checked.insert(r.assessment_id) {
                require_assessment(self.conn(), r.assessment_id).await?;
            }
            exec(self.conn(), bind_answer(sqlx::query(&sql), r)).await?;
        }
        Ok(())
    }

    async fn insert_evidence(&mut self, e: &EvidenceRow, content: Option<&[u8]>) -> Result<i64> {
        require_assessment(self.conn(), e.assessment_id).await?;
        let sql = format!(
            "{} RETURNING id",
            insert_sql(
                "assessment_evidence",
                &format!("{EVIDENCE_FIELDS}, content")
            )
        );
        let row = bind_evidence(sqlx::query(&sql), e)
            .bind(content)
            .fetch_one(self.conn())
            .await
            .map_err(db_err)?;
        get(&row, "assessment_evidence", "id")
    }

    async fn delete_evidence(&mut self, id: i64) -> Result<bool> {
        let q = sqlx::query("DELETE FROM assessment_evidence WHERE id = $1").bind(id);
        Ok(exec(self.conn(), q).await? > 0)
    }

    async fn mark_evidence_expired(
        &mut self,
        id: i64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let q = sqlx::query(
            "UPDATE assessment_evidence SET expired_at = $2 WHERE id = $1 AND expired_at IS NULL",
        )
        .bind(id)
        .bind(micros(at));
        Ok(exec(self.conn(), q).await? > 0)
    }

    async fn insert_improvement_action(&mut self, a: &ImprovementActionRow) -> Result<i64> {
        require_assessment(self.conn(), a.assessment_id).await?;
        let sql = format!(
            "{} RETURNING id",
            insert_sql("improvement_actions", ACTION_FIELDS)
        );
        let row = bind_action(sqlx::query(&sql), a)
            .fetch_one(self.conn())
            .await
            .map_err(db_err)?;
        get(&row, "improvement_actions", "id")
    }

    async fn update_improvement_action(&mut self, a: &ImprovementActionRow) -> Result<()> {
        let q = sqlx::query(
            "UPDATE improvement_actions SET item_table = $2, title = $3, owner = $4, due_on = $5, \
             status = $6, clause_ids = $7, updated_by = $8, updated_at = $9 WHERE id = $1",
        )
        .bind(a.id)
        .bind(a.item_table)
        .bind(&a.title)
        .bind(&a.owner)
        .bind(iso(a.due_on))
        .bind(&a.status)
        .bind(Json(&a.clause_ids))
        .bind(&a.updated_by)
        .bind(micros(a.updated_at));
        if exec(self.conn(), q).await? == 0 {
            return Err(StoreError::NotFound(format!("improvement action {}", a.id)));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- export and import

/// Every assessment table, on the caller's connection inside its read transaction.
pub(crate) async fn export(conn: &mut Conn) -> Result<AssessmentDump> {
    let sql = format!("SELECT id, {ASSESSMENT_FIELDS} FROM assessments ORDER BY id");
    let assessments = all(&mut *conn, sqlx::query(&sql), assessment).await?;
    let sql =
        format!("SELECT {ITEM_COLUMNS} FROM assessment_items ORDER BY assessment_id, item_table");
    let items = all(&mut *conn, sqlx::query(&sql), item).await?;
    let sql = format!(
        "SELECT {ANSWER_COLUMNS} FROM assessment_answers ORDER BY assessment_id, clause_id"
    );
    let answers = all(&mut *conn, sqlx::query(&sql), answer).await?;
    let sql = format!("SELECT id, {EVIDENCE_FIELDS}, content FROM assessment_evidence ORDER BY id");
    let evidence = all(&mut *conn, sqlx::query(&sql), evidence_with_content)
        .await?
        .into_iter()
        .map(|(row, content)| EvidenceDump { row, content })
        .collect();
    let sql = format!("SELECT id, {ACTION_FIELDS} FROM improvement_actions ORDER BY id");
    let actions = all(&mut *conn, sqlx::query(&sql), action).await?;
    Ok(AssessmentDump {
        assessments,
        items,
        answers,
        evidence,
        actions,
    })
}

/// Loads the assessment tables, ids kept, inside the caller's write transaction. `Conflict`
/// unless they are empty.
pub(crate) async fn import(conn: &mut Conn, d: &AssessmentDump) -> Result<()> {
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM assessments")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    if rows != 0 {
        return Err(StoreError::Conflict(
            "import needs an empty database: this one already holds assessments".into(),
        ));
    }
    let sql = insert_sql("assessments", &format!("id, {ASSESSMENT_FIELDS}"));
    for a in &d.assessments {
        exec(&mut *conn, bind_assessment(sqlx::query(&sql).bind(a.id), a)).await?;
    }
    let sql = insert_sql("assessment_items", ITEM_COLUMNS);
    for i in &d.items {
        exec(&mut *conn, bind_item(sqlx::query(&sql), i)).await?;
    }
    let sql = insert_sql("assessment_answers", ANSWER_COLUMNS);
    for a in &d.answers {
        exec(&mut *conn, bind_answer(sqlx::query(&sql), a)).await?;
    }
    let sql = insert_sql(
        "assessment_evidence",
        &format!("id, {EVIDENCE_FIELDS}, content"),
    );
    for e in &d.evidence {
        let q = bind_evidence(sqlx::query(&sql).bind(e.row.id), &e.row).bind(&e.content);
        exec(&mut *conn, q).await?;
    }
    let sql = insert_sql("improvement_actions", &format!("id, {ACTION_FIELDS}"));
    for a in &d.actions {
        exec(&mut *conn, bind_action(sqlx::query(&sql).bind(a.id), a)).await?;
    }
    Ok(())
}
