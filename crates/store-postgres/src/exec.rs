//! The engine's storage on PostgreSQL. The statements, row mapping and trait implementations are
//! shared with the SQLite backend (`store-sqlite/src/exec_common.rs`, compiled into both crates);
//! this module names what is PostgreSQL's: the types, the row lock that lets replicas claim runs
//! side by side (`FOR UPDATE SKIP LOCKED`: a run another replica is claiming is skipped, never
//! taken twice), and the identity sequences an import must move.

use ballast_store::Result;
use sqlx::{Postgres, Transaction};

pub(crate) use crate::PostgresStore as StoreImpl;
pub(crate) use crate::error::db_err;
pub(crate) use crate::rows::micros;
pub(crate) use crate::tx::PgTx as TxImpl;

pub(crate) type Db = Postgres;
pub(crate) type Conn = sqlx::PgConnection;
pub(crate) type DbRow = sqlx::postgres::PgRow;

/// Rows another replica is claiming are skipped; a row claimed and committed meanwhile is
/// re-checked against the claim's conditions after the lock (READ COMMITTED), so it is not taken.
pub(crate) const LOCK_ROWS: &str = " FOR UPDATE SKIP LOCKED";
/// One row read to be changed: held until the transaction ends (a second writer waits).
pub(crate) const LOCK_ONE: &str = " FOR UPDATE";

/// A write transaction (READ COMMITTED).
pub(crate) async fn write_tx(store: &StoreImpl) -> Result<Transaction<'static, Db>> {
    store.pool.begin().await.map_err(db_err)
}

#[path = "../../store-sqlite/src/exec_common.rs"]
mod common;

pub(crate) use common::{export, import};

/// Engine tables with database-chosen ids: an import keeps the ids, then moves their identity
/// sequences past them.
pub(crate) const ID_TABLES: [&str; 5] = ["scripts", "plans", "approvals", "runs", "tasks"];

#[path = "../../store-sqlite/src/schedule_common.rs"]
pub(crate) mod schedule;

/// Schedule tables with database-chosen ids (their sequences move past imported ids too).
pub(crate) const SCHEDULE_ID_TABLES: [&str; 2] = ["schedules", "schedule_fires"];

#[path = "../../store-sqlite/src/assessment_common.rs"]
pub(crate) mod assessment;

/// Assessment tables with database-chosen ids (their sequences move past imported ids too).
pub(crate) const ASSESSMENT_ID_TABLES: [&str; 3] =
    ["assessments", "assessment_evidence", "improvement_actions"];
#[path = "../../store-sqlite/src/cmdb_common.rs"]
pub(crate) mod cmdb;

/// CMDB tables with database-chosen ids (their sequences move past imported ids too).
pub(crate) const CMDB_ID_TABLES: [&str; 4] = [
    "cmdb_cis",
    "cmdb_relations",
    "cmdb_history",
    "cmdb_conflicts",
];
