//! Storage of the CMDB ([`ballast_store::cmdb`]), written once for both backends.
//!
//! Compiled twice, like `schedule_common.rs`: as `exec::cmdb` of `ballast-store-sqlite` and,
//! through a `#[path]` attribute, as `exec::cmdb` of `ballast-store-postgres`. The SQL text is
//! the same on both (`$N` parameters bound by number, `RETURNING`, `ON CONFLICT`).
//!
//! [`export`] and [`import`] carry the CMDB in `ballast admin export|import` (ids kept; the value
//! index and the unique keys rebuilt on import with the helper `insert_ci` uses).
//!
//! Lists of ids or values are bound one parameter each, in chunks of [`CHUNK`] (well under
//! SQLite's 32,766 and PostgreSQL's 65,535 parameters per statement).

use std::collections::HashMap;

use async_trait::async_trait;
// The same index text the CMDB's service checks uniqueness with: one definition for both.
use ballast_cmdb::validate::index_values;
use ballast_store::cmdb::{
    CiConflictRow, CiHead, CiHistoryRow, CiQuery, CiRelationRow, CiRow, CmdbDump, CmdbModelRow,
    CmdbModelVersionRow, CmdbStore, CmdbTx, RelationSide,
};
use ballast_store::{Result, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::common::{Query, all, exec, get, insert_sql, json, one};
use super::{Conn, DbRow, StoreImpl, TxImpl, db_err, micros};

/// Ids or values bound per statement.
const CHUNK: usize = 500;

const MODEL_COLUMNS: &str = "key, version, definition, builtin, updated_by, updated_at";
const VERSION_COLUMNS: &str = "key, version, definition, author, created_at, note";
const CI_FIELDS: &str = "model, environment, name, attributes, sources, created_by, created_at, \
     updated_by, updated_at, discovered_at";
const RELATION_FIELDS: &str = "kind, source_id, target_id, created_by, created_at";
const HISTORY_FIELDS: &str = "ci_id, related_id, object_type, op, via, actor, at, diff, snapshot";
const CONFLICT_FIELDS: &str = "ci_id, attribute, recorded, discovered, discovered_at, state, \
     decided_by, decided_at";

fn model_row(row: &DbRow) -> Result<CmdbModelRow> {
    const T: &str = "cmdb_models";
    Ok(CmdbModelRow {
        key: get(row, T, "key")?,
        version: get(row, T, "version")?,
        definition: json(row, T, "definition")?,
        builtin: get(row, T, "builtin")?,
        updated_by: get(row, T, "updated_by")?,
        updated_at: get(row, T, "updated_at")?,
    })
}

fn version_row(row: &DbRow) -> Result<CmdbModelVersionRow> {
    const T: &str = "cmdb_model_versions";
    Ok(CmdbModelVersionRow {
        key: get(row, T, "key")?,
        version: get(row, T, "version")?,
        definition: json(row, T, "definition")?,
        author: get(row, T, "author")?,
        created_at: get(row, T, "created_at")?,
        note: get(row, T, "note")?,
    })
}

fn ci_row(row: &DbRow) -> Result<CiRow> {
    const T: &str = "cmdb_cis";
    Ok(CiRow {
        id: get(row, T, "id")?,
        model: get(row, T, "model")?,
        environment: get(row, T, "environment")?,
        name: get(row, T, "name")?,
        attributes: json(row, T, "attributes")?,
        sources: json(row, T, "sources")?,
        created_by: get(row, T, "created_by")?,
        created_at: get(row, T, "created_at")?,
        updated_by: get(row, T, "updated_by")?,
        updated_at: get(row, T, "updated_at")?,
        discovered_at: get(row, T, "discovered_at")?,
    })
}

fn ci_head(row: &DbRow) -> Result<CiHead> {
    const T: &str = "cmdb_cis";
    Ok(CiHead {
        id: get(row, T, "id")?,
        model: get(row, T, "model")?,
        environment: get(row, T, "environment")?,
        name: get(row, T, "name")?,
        attributes: json(row, T, "attributes")?,
    })
}

fn relation_row(row: &DbRow) -> Result<CiRelationRow> {
    const T: &str = "cmdb_relations";
    Ok(CiRelationRow {
        id: get(row, T, "id")?,
        kind: get(row, T, "kind")?,
        source_id: get(row, T, "source_id")?,
        target_id: get(row, T, "target_id")?,
        created_by: get(row, T, "created_by")?,
        created_at: get(row, T, "created_at")?,
    })
}

fn history_row(row: &DbRow) -> Result<CiHistoryRow> {
    const T: &str = "cmdb_history";
    Ok(CiHistoryRow {
        id: get(row, T, "id")?,
        ci_id: get(row, T, "ci_id")?,
        related_id: get(row, T, "related_id")?,
        object_type: get(row, T, "object_type")?,
        op: get(row, T, "op")?,
        via: get(row, T, "via")?,
        actor: get(row, T, "actor")?,
        at: get(row, T, "at")?,
        diff: json(row, T, "diff")?,
        snapshot: json(row, T, "snapshot")?,
    })
}

fn conflict_row(row: &DbRow) -> Result<CiConflictRow> {
    const T: &str = "cmdb_conflicts";
    Ok(CiConflictRow {
        id: get(row, T, "id")?,
        ci_id: get(row, T, "ci_id")?,
        attribute: get(row, T, "attribute")?,
        recorded: json(row, T, "recorded")?,
        discovered: json(row, T, "discovered")?,
        discovered_at: get(row, T, "discovered_at")?,
        state: get(row, T, "state")?,
        decided_by: get(row, T, "decided_by")?,
        decided_at: get(row, T, "decided_at")?,
    })
}

/// `$first, …, $(first + n - 1)`.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the value index and the unique keys of an instance (after removing the old ones,
/// unless it is `fresh`: just inserted, with none). The values go in one multi-row statement
/// (statements, not rows, are what a 10,000-row import pays for); unique keys one by one, so a
/// conflict names its key and value.
async fn write_index(
    conn: &mut Conn,
    id: i64,
    ci: &CiRow,
    unique: &[String],
    fresh: bool,
) -> Result<()> {
    if !fresh {
        exec(
            &mut *conn,
            sqlx::query("DELETE FROM cmdb_ci_values WHERE ci_id = $1").bind(id),
        )
        .await?;
        exec(
            &mut *conn,
            sqlx::query("DELETE FROM cmdb_ci_unique WHERE ci_id = $1").bind(id),
        )
        .await?;
    }
    let Value::Object(attrs) = &ci.attributes else {
        return Err(StoreError::Other(format!(
            "instance {}: attributes must be a JSON object",
            ci.name
        )));
    };
    let pairs: Vec<(&String, String)> = attrs
        .iter()
        .flat_map(|(key, v)| index_values(v).into_iter().map(move |value| (key, value)))
        .collect();
    // 4 parameters a row: 200 rows stay well under both databases' limits.
    for chunk in pairs.chunks(200) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = 4 * i;
                format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4)
            })
            .collect();
        let sql = format!(
            "INSERT INTO cmdb_ci_values (ci_id, model, key, value) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (key, value) in chunk {
            q = q.bind(id).bind(&ci.model).bind(*key).bind(value.clone());
        }
        exec(&mut *conn, q).await?;
    }
    for (key, value) in pairs.iter().filter(|(k, _)| unique.contains(k)) {
        let q = sqlx::query(
            "INSERT INTO cmdb_ci_unique (model, environment, key, value, ci_id) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&ci.model)
        .bind(&ci.environment)
        .bind(*key)
        .bind(value.clone())
        .bind(id);
        exec(&mut *conn, q).await.map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "{} {} in {}: unique attribute {key} = {value:?} is held by another instance",
                ci.model, ci.name, ci.environment
            )),
            other => other,
        })?;
    }
    Ok(())
}

fn bind_ci<'q>(q: Query<'q>, c: &'q CiRow) -> Query<'q> {
    q.bind(&c.model)
        .bind(&c.environment)
        .bind(&c.name)
        .bind(Json(&c.attributes))
        .bind(Json(&c.sources))
        .bind(&c.created_by)
        .bind(micros(c.created_at))
        .bind(&c.updated_by)
        .bind(micros(c.updated_at))
        .bind(c.discovered_at.map(micros))
}

fn bind_relation<'q>(q: Query<'q>, r: &'q CiRelationRow) -> Query<'q> {
    q.bind(&r.kind)
        .bind(r.source_id)
        .bind(r.target_id)
        .bind(&r.created_by)
        .bind(micros(r.created_at))
}

fn bind_history<'q>(q: Query<'q>, h: &'q CiHistoryRow) -> Query<'q> {
    q.bind(h.ci_id)
        .bind(h.related_id)
        .bind(&h.object_type)
        .bind(&h.op)
        .bind(&h.via)
        .bind(&h.actor)
        .bind(micros(h.at))
        .bind(Json(&h.diff))
        .bind(Json(&h.snapshot))
}

fn bind_conflict<'q>(q: Query<'q>, c: &'q CiConflictRow) -> Query<'q> {
    q.bind(c.ci_id)
        .bind(&c.attribute)
        .bind(Json(&c.recorded))
        .bind(Json(&c.discovered))
        .bind(micros(c.discovered_at))
        .bind(&c.state)
        .bind(&c.decided_by)
        .bind(c.decided_at.map(micros))
}

// ---------------------------------------------------------------- CmdbStore

impl StoreImpl {
    /// The instances `f` selects, each read as `fields` and mapped by `map`, by id.
    async fn select_cis<T>(
        &self,
        f: &CiQuery,
        fields: &str,
        map: fn(&DbRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        if f.environments.as_ref().is_some_and(Vec::is_empty)
            || f.ids.as_ref().is_some_and(Vec::is_empty)
            || f.names.as_ref().is_some_and(Vec::is_empty)
        {
            return Ok(Vec::new());
        }
        // Long id lists: one statement per chunk of ascending ids, so the results come in id
        // order and a page stops at the chunk that fills it (a page of 100 among 900 candidates
        // reads 100 rows, not 900).
        if let Some(ids) = f.ids.as_ref().filter(|ids| ids.len() > CHUNK) {
            let mut ids: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|i| f.after_id.is_none_or(|a| *i > a))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let limit = f.limit as usize;
            let mut out = Vec::new();
            for chunk in ids.chunks(CHUNK) {
                let sub = CiQuery {
                    ids: Some(chunk.to_vec()),
                    after_id: None,
                    limit: if limit > 0 {
                        (limit - out.len()) as u32
                    } else {
                        0
                    },
                    ..f.clone()
                };
                out.extend(self.select_once(&sub, fields, map).await?);
                if limit > 0 && out.len() >= limit {
                    break;
                }
            }
            return Ok(out);
        }
        self.select_once(f, fields, map).await
    }

    /// One statement (`f.ids`, if any, fit in one).
    async fn select_once<T>(
        &self,
        f: &CiQuery,
        fields: &str,
        map: fn(&DbRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        // Only the conditions given are written: `(? IS NULL OR model = ?)` would keep the
        // planner from the model index and from seeking to `id > after` (every page of a scan
        // would read the table from its start).
        let mut sql = format!("SELECT id, {fields} FROM cmdb_cis WHERE 1 = 1");
        let mut n = 1;
        if f.model.is_some() {
            sql.push_str(&format!(" AND model = ${n}"));
            n += 1;
        }
        if f.after_id.is_some() {
            sql.push_str(&format!(" AND id > ${n}"));
            n += 1;
        }
        let mut lists: Vec<Vec<String>> = Vec::new();
        let mut id_list: Vec<i64> = Vec::new();
        if let Some(envs) = &f.environments {
            sql.push_str(&format!(
                " AND environment IN ({})",
                placeholders(n, envs.len())
            ));
            n += envs.len();
            lists.push(envs.clone());
        }
        if let Some(names) = &f.names {
            sql.push_str(&format!(" AND name IN ({})", placeholders(n, names.len())));
            n += names.len();
            lists.push(names.clone());
        }
        if let Some(ids) = &f.ids {
            sql.push_str(&format!(" AND id IN ({})", placeholders(n, ids.len())));
            id_list = ids.clone();
        }
        sql.push_str(" ORDER BY id");
        if f.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", f.limit));
        }
        let mut q = sqlx::query(&sql);
        if let Some(m) = &f.model {
            q = q.bind(m.clone());
        }
        if let Some(a) = f.after_id {
            q = q.bind(a);
        }
        for list in &lists {
            for v in list {
                q = q.bind(v.clone());
            }
        }
        for id in id_list {
            q = q.bind(id);
        }
        all(&mut *self.conn().await?, q, map).await
    }
}

#[async_trait]
impl CmdbStore for StoreImpl {
    async fn cmdb_models(&self) -> Result<Vec<CmdbModelRow>> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM cmdb_models ORDER BY key");
        all(&mut *self.conn().await?, sqlx::query(&sql), model_row).await
    }

    async fn cmdb_model(&self, key: &str) -> Result<Option<CmdbModelRow>> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM cmdb_models WHERE key = $1");
        one(
            &mut *self.conn().await?,
            sqlx::query(&sql).bind(key),
            model_row,
        )
        .await
    }

    async fn cmdb_model_versions(&self, key: &str) -> Result<Vec<CmdbModelVersionRow>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM cmdb_model_versions WHERE key = $1 ORDER BY version"
        );
        all(
            &mut *self.conn().await?,
            sqlx::query(&sql).bind(key),
            version_row,
        )
        .await
    }

    async fn ci(&self, id: i64) -> Result<Option<CiRow>> {
        let sql = format!("SELECT id, {CI_FIELDS} FROM cmdb_cis WHERE id = $1");
        one(&mut *self.conn().await?, sqlx::query(&sql).bind(id), ci_row).await
    }

    async fn ci_by_name(
        &self,
        model: &str,
        environment: &str,
        name: &str,
    ) -> Result<Option<CiRow>> {
        let sql = format!(
            "SELECT id, {CI_FIELDS} FROM cmdb_cis WHERE model = $1 AND environment = $2 AND name = $3"
        );
        let q = sqlx::query(&sql).bind(model).bind(environment).bind(name);
        one(&mut *self.conn().await?, q, ci_row).await
    }

    async fn cis(&self, f: &CiQuery) -> Result<Vec<CiRow>> {
        self.select_cis(f, CI_FIELDS, ci_row).await
    }

    async fn ci_heads(&self, f: &CiQuery) -> Result<Vec<CiHead>> {
        self.select_cis(f, "model, environment, name, attributes", ci_head)
            .await
    }

    async fn ci_ids_by_value(
        &self,
        model: Option<&str>,
        key: &str,
        values: &[String],
    ) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        for chunk in values.chunks(CHUNK) {
            let sql = format!(
                "SELECT DISTINCT ci_id FROM cmdb_ci_values WHERE key = $1 \
                 AND value IN ({}) AND ($2 IS NULL OR model = $2) ORDER BY ci_id",
                placeholders(3, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(&sql)
                .bind(key.to_string())
                .bind(model.map(str::to_string));
            for v in chunk {
                q = q.bind(v.clone());
            }
            out.extend(
                q.fetch_all(&mut *self.conn().await?)
                    .await
                    .map_err(db_err)?,
            );
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    async fn ci_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT model, environment, count(*) AS n FROM cmdb_cis \
             GROUP BY model, environment ORDER BY model, environment",
        )
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    get(r, "cmdb_cis", "model")?,
                    get(r, "cmdb_cis", "environment")?,
                    get(r, "cmdb_cis", "n")?,
                ))
            })
            .collect()
    }

    async fn ci_relation(&self, id: i64) -> Result<Option<CiRelationRow>> {
        let sql = format!("SELECT id, {RELATION_FIELDS} FROM cmdb_relations WHERE id = $1");
        one(
            &mut *self.conn().await?,
            sqlx::query(&sql).bind(id),
            relation_row,
        )
        .await
    }

    async fn ci_relations(
        &self,
        ids: &[i64],
        side: RelationSide,
        kinds: &[String],
    ) -> Result<Vec<CiRelationRow>> {
        let mut out = Vec::new();
        let mut conn = self.conn().await?;
        for chunk in ids.chunks(CHUNK) {
            let ps = placeholders(1, chunk.len());
            let kind_filter = if kinds.is_empty() {
                String::new()
            } else {
                format!(
                    " AND kind IN ({})",
                    placeholders(chunk.len() + 1, kinds.len())
                )
            };
            let columns = ["source_id", "target_id"];
            let which: &[&str] = match side {
                RelationSide::Source => &columns[..1],
                RelationSide::Target => &columns[1..],
                RelationSide::Both => &columns,
            };
            for col in which {
                let sql = format!(
                    "SELECT id, {RELATION_FIELDS} FROM cmdb_relations \
                     WHERE {col} IN ({ps}){kind_filter}"
                );
                let mut q = sqlx::query(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                for k in kinds {
                    q = q.bind(k.clone());
                }
                out.extend(all(&mut conn, q, relation_row).await?);
            }
        }
        out.sort_by_key(|r| r.id);
        out.dedup_by_key(|r| r.id);
        Ok(out)
    }

    async fn ci_history(
        &self,
        ci_id: i64,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<CiHistoryRow>> {
        let sql = format!(
            "SELECT id, {HISTORY_FIELDS} FROM cmdb_history \
             WHERE (ci_id = $1 OR related_id = $1) AND ($2 IS NULL OR at <= $2) ORDER BY id"
        );
        let q = sqlx::query(&sql).bind(ci_id).bind(until.map(micros));
        all(&mut *self.conn().await?, q, history_row).await
    }

    async fn ci_conflicts(
        &self,
        state: Option<&str>,
        ci_id: Option<i64>,
    ) -> Result<Vec<CiConflictRow>> {
        let sql = format!(
            "SELECT id, {CONFLICT_FIELDS} FROM cmdb_conflicts \
             WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR ci_id = $2) ORDER BY id"
        );
        let q = sqlx::query(&sql)
            .bind(state.map(str::to_string))
            .bind(ci_id);
        all(&mut *self.conn().await?, q, conflict_row).await
    }
}

// ---------------------------------------------------------------- CmdbTx

#[async_trait]
impl CmdbTx for TxImpl {
    async fn save_cmdb_model(&mut self, m: &CmdbModelRow, note: &str) -> Result<()> {
        let sql = insert_sql("cmdb_model_versions", VERSION_COLUMNS);
        let q = sqlx::query(&sql)
            .bind(&m.key)
            .bind(m.version)
            .bind(Json(&m.definition))
            .bind(&m.updated_by)
            .bind(micros(m.updated_at))
            .bind(note);
        exec(self.conn(), q).await.map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "model {} version {} exists (changed meanwhile)",
                m.key, m.version
            )),
            other => other,
        })?;
        let sql = format!(
            "{} ON CONFLICT (key) DO UPDATE SET version = excluded.version, \
             definition = excluded.definition, builtin = excluded.builtin, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            insert_sql("cmdb_models", MODEL_COLUMNS)
        );
        let q = sqlx::query(&sql)
            .bind(&m.key)
            .bind(m.version)
            .bind(Json(&m.definition))
            .bind(m.builtin)
            .bind(&m.updated_by)
            .bind(micros(m.updated_at));
        exec(self.conn(), q).await?;
        Ok(())
    }

    async fn insert_ci(&mut self, ci: &CiRow, unique: &[String]) -> Result<i64> {
        let sql = format!("{} RETURNING id", insert_sql("cmdb_cis", CI_FIELDS));
        let row = bind_ci(sqlx::query(&sql), ci)
            .fetch_one(self.conn())
            .await
            .map_err(|e| match db_err(e) {
                StoreError::Conflict(m) => StoreError::Conflict(format!(
                    "{} {} in {}: exists, or the model does not ({m})",
                    ci.model, ci.name, ci.environment
                )),
                other => other,
            })?;
        let id: i64 = get(&row, "cmdb_cis", "id")?;
        write_index(self.conn(), id, ci, unique, true).await?;
        Ok(id)
    }

    async fn update_ci(&mut self, ci: &CiRow, unique: &[String]) -> Result<()> {
        let q = sqlx::query(
            "UPDATE cmdb_cis SET name = $2, attributes = $3, sources = $4, updated_by = $5, \
             updated_at = $6, discovered_at = $7 WHERE id = $1",
        )
        .bind(ci.id)
        .bind(&ci.name)
        .bind(Json(&ci.attributes))
        .bind(Json(&ci.sources))
        .bind(&ci.updated_by)
        .bind(micros(ci.updated_at))
        .bind(ci.discovered_at.map(micros));
        let changed = exec(self.conn(), q).await.map_err(|e| match e {
            StoreError::Conflict(m) => StoreError::Conflict(format!(
                "{} {} in {}: the name is taken ({m})",
                ci.model, ci.name, ci.environment
            )),
            other => other,
        })?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("instance {}", ci.id)));
        }
        write_index(self.conn(), ci.id, ci, unique, false).await
    }

    async fn delete_ci(&mut self, id: i64) -> Result<bool> {
        for sql in [
            "DELETE FROM cmdb_ci_values WHERE ci_id = $1",
            "DELETE FROM cmdb_ci_unique WHERE ci_id = $1",
            "DELETE FROM cmdb_conflicts WHERE ci_id = $1",
            "DELETE FROM cmdb_relations WHERE source_id = $1 OR target_id = $1",
        ] {
            exec(self.conn(), sqlx::query(sql).bind(id)).await?;
        }
        let q = sqlx::query("DELETE FROM cmdb_cis WHERE id = $1").bind(id);
        Ok(exec(self.conn(), q).await? > 0)
    }

    async fn insert_ci_relation(&mut self, r: &CiRelationRow) -> Result<i64> {
        let sql = format!(
            "{} RETURNING id",
            insert_sql("cmdb_relations", RELATION_FIELDS)
        );
        let row = bind_relation(sqlx::query(&sql), r)
            .fetch_one(self.conn())
            .await
            .map_err(|e| match db_err(e) {
                StoreError::Conflict(m) => StoreError::Conflict(format!(
                    "relation {} {} → {}: exists, or an instance does not ({m})",
                    r.kind, r.source_id, r.target_id
                )),
                other => other,
            })?;
        get(&row, "cmdb_relations", "id")
    }

    async fn delete_ci_relation(&mut self, id: i64) -> Result<bool> {
        let q = sqlx::query("DELETE FROM cmdb_relations WHERE id = $1").bind(id);
        Ok(exec(self.conn(), q).await? > 0)
    }

    async fn insert_ci_history(&mut self, rows: &[CiHistoryRow]) -> Result<()> {
        let sql = insert_sql("cmdb_history", HISTORY_FIELDS);
        for h in rows {
            exec(self.conn(), bind_history(sqlx::query(&sql), h)).await?;
        }
        Ok(())
    }

    async fn insert_ci_conflict(&mut self, c: &CiConflictRow) -> Result<i64> {
        let sql = format!(
            "{} RETURNING id",
            insert_sql("cmdb_conflicts", CONFLICT_FIELDS)
        );
        let row = bind_conflict(sqlx::query(&sql), c)
            .fetch_one(self.conn())
            .await
            .map_err(db_err)?;
        get(&row, "cmdb_conflicts", "id")
    }

    async fn decide_ci_conflict(
        &mut self,
        id: i64,
        state: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let q = sqlx::query(
            "UPDATE cmdb_conflicts SET state = $2, decided_by = $3, decided_at = $4 \
             WHERE id = $1 AND state = 'open'",
        )
        .bind(id)
        .bind(state)
        .bind(by)
        .bind(micros(at));
        if exec(self.conn(), q).await? > 0 {
            return Ok(());
        }
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM cmdb_conflicts WHERE id = $1")
            .bind(id)
            .fetch_one(self.conn())
            .await
            .map_err(db_err)?;
        if n > 0 {
            Err(StoreError::Conflict(format!(
                "conflict {id} was already decided"
            )))
        } else {
            Err(StoreError::NotFound(format!("conflict {id}")))
        }
    }
}

// ---------------------------------------------------------------- export and import

/// The unique attribute keys of a model definition (`ballast_cmdb::Model` as JSON: the `key` of
/// each entry of `attributes` whose `unique` is true). The server hands these to `insert_ci`
/// from the parsed model; an import reads them from the stored definition.
fn unique_keys(definition: &Value) -> Vec<String> {
    definition
        .get("attributes")
        .and_then(Value::as_array)
        .map(|attrs| {
            attrs
                .iter()
                .filter(|a| a.get("unique").and_then(Value::as_bool) == Some(true))
                .filter_map(|a| a.get("key").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every CMDB table but the derived index, on the caller's connection inside its read
/// transaction.
pub(crate) async fn export(conn: &mut Conn) -> Result<CmdbDump> {
    let sql = format!("SELECT {MODEL_COLUMNS} FROM cmdb_models ORDER BY key");
    let models = all(&mut *conn, sqlx::query(&sql), model_row).await?;
    let sql = format!("SELECT {VERSION_COLUMNS} FROM cmdb_model_versions");
    let mut model_versions = all(&mut *conn, sqlx::query(&sql), version_row).await?;
    // Sorted here: the key has the database's collation on PostgreSQL (bytewise on SQLite).
    model_versions.sort_by(|a, b| (&a.key, a.version).cmp(&(&b.key, b.version)));
    let sql = format!("SELECT id, {CI_FIELDS} FROM cmdb_cis ORDER BY id");
    let cis = all(&mut *conn, sqlx::query(&sql), ci_row).await?;
    let sql = format!("SELECT id, {RELATION_FIELDS} FROM cmdb_relations ORDER BY id");
    let relations = all(&mut *conn, sqlx::query(&sql), relation_row).await?;
    let sql = format!("SELECT id, {HISTORY_FIELDS} FROM cmdb_history ORDER BY id");
    let history = all(&mut *conn, sqlx::query(&sql), history_row).await?;
    let sql = format!("SELECT id, {CONFLICT_FIELDS} FROM cmdb_conflicts ORDER BY id");
    let conflicts = all(&mut *conn, sqlx::query(&sql), conflict_row).await?;
    Ok(CmdbDump {
        models,
        model_versions,
        cis,
        relations,
        history,
        conflicts,
    })
}

/// Loads the CMDB, ids kept, inside the caller's write transaction, and rebuilds the value index
/// and unique keys of every instance (unique keys from its model's current definition; two
/// instances holding one unique value are a `Conflict`). `Conflict` unless the CMDB is empty —
/// the server's start-up seeds the built-in models, but only with its roles and audit record, so
/// a database it started on is refused before this (`ensure_empty`); import into a database no
/// server has started on, and the next start finds the models there and adds none.
pub(crate) async fn import(conn: &mut Conn, d: &CmdbDump) -> Result<()> {
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM cmdb_models) + (SELECT count(*) FROM cmdb_model_versions) \
         + (SELECT count(*) FROM cmdb_cis) + (SELECT count(*) FROM cmdb_history)",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    if rows != 0 {
        return Err(StoreError::Conflict(
            "import needs an empty database: this one already holds CMDB models or instances"
                .into(),
        ));
    }
    let sql = insert_sql("cmdb_models", MODEL_COLUMNS);
    for m in &d.models {
        let q = sqlx::query(&sql)
            .bind(&m.key)
            .bind(m.version)
            .bind(Json(&m.definition))
            .bind(m.builtin)
            .bind(&m.updated_by)
            .bind(micros(m.updated_at));
        exec(&mut *conn, q).await?;
    }
    let sql = insert_sql("cmdb_model_versions", VERSION_COLUMNS);
    for v in &d.model_versions {
        let q = sqlx::query(&sql)
            .bind(&v.key)
            .bind(v.version)
            .bind(Json(&v.definition))
            .bind(&v.author)
            .bind(micros(v.created_at))
            .bind(&v.note);
        exec(&mut *conn, q).await?;
    }
    let unique: HashMap<&str, Vec<String>> = d
        .models
        .iter()
        .map(|m| (m.key.as_str(), unique_keys(&m.definition)))
        .collect();
    let sql = insert_sql("cmdb_cis", &format!("id, {CI_FIELDS}"));
    for c in &d.cis {
        exec(&mut *conn, bind_ci(sqlx::query(&sql).bind(c.id), c))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) => StoreError::Conflict(format!(
                    "dump: instance {} ({} {} in {}): a duplicate, or its model is not in the \
                     dump ({m})",
                    c.id, c.model, c.name, c.environment
                )),
                other => other,
            })?;
        let keys = unique.get(c.model.as_str()).map_or(&[][..], Vec::as_slice);
        write_index(&mut *conn, c.id, c, keys, true).await?;
    }
    let sql = insert_sql("cmdb_relations", &format!("id, {RELATION_FIELDS}"));
    for r in &d.relations {
        exec(&mut *conn, bind_relation(sqlx::query(&sql).bind(r.id), r)).await?;
    }
    let sql = insert_sql("cmdb_history", &format!("id, {HISTORY_FIELDS}"));
    for h in &d.history {
        exec(&mut *conn, bind_history(sqlx::query(&sql).bind(h.id), h)).await?;
    }
    let sql = insert_sql("cmdb_conflicts", &format!("id, {CONFLICT_FIELDS}"));
    for c in &d.conflicts {
        exec(&mut *conn, bind_conflict(sqlx::query(&sql).bind(c.id), c)).await?;
    }
    Ok(())
}
