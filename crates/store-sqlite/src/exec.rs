//! The engine's storage on SQLite. The statements, row mapping and trait implementations are
//! shared with the PostgreSQL backend (`exec_common.rs`, compiled into both crates); this module
//! names what is SQLite's: the types, and write transactions that take the write lock up front
//! (`BEGIN IMMEDIATE`), which is also what makes `claim_runs` exclusive.

use ballast_store::Result;
use sqlx::{Sqlite, Transaction};

pub(crate) use crate::SqliteStore as StoreImpl;
pub(crate) use crate::error::db_err;
pub(crate) use crate::rows::micros;
pub(crate) use crate::tx::SqliteTx as TxImpl;

pub(crate) type Db = Sqlite;
pub(crate) type Conn = sqlx::SqliteConnection;
pub(crate) type DbRow = sqlx::sqlite::SqliteRow;

/// SQLite has no row locks: a claim is exclusive because it runs under the write lock.
pub(crate) const LOCK_ROWS: &str = "";
/// Nor for one row: a write transaction holds the write lock from its first statement.
pub(crate) const LOCK_ONE: &str = "";

/// A write transaction holding SQLite's write lock from its first statement.
pub(crate) async fn write_tx(store: &StoreImpl) -> Result<Transaction<'static, Db>> {
    store
        .pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db_err)
}

#[path = "exec_common.rs"]
mod common;

pub(crate) use common::{export, import};

#[path = "schedule_common.rs"]
pub(crate) mod schedule;

#[path = "assessment_common.rs"]
pub(crate) mod assessment;
#[path = "cmdb_common.rs"]
pub(crate) mod cmdb;
