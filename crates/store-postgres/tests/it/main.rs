//! The store conformance suite on PostgreSQL, plus dumps moved between the two backends.
//!
//! `BALLAST_TEST_POSTGRES_URL` names a server where the user may create databases (`scripts/test`
//! starts one and sets it). Each test creates its own database `ballast_t_<random>`, so tests run
//! in parallel without meeting, and drops it at the end (best effort).

mod cross_backend;

use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use ballast_store::Store;
use ballast_store::conformance::Fixture;
use ballast_store_postgres::{ConnectOptions, PostgresStore};
use sqlx::{ConnectOptions as _, Connection, Executor};

const URL_VAR: &str = "BALLAST_TEST_POSTGRES_URL";

pub struct PgFixture {
    store: PostgresStore,
    admin: ConnectOptions,
    database: String,
}

#[async_trait]
impl Fixture for PgFixture {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    async fn execute_raw(&self, sql: &str) -> ballast_store::Result<u64> {
        self.store.execute_raw_for_tests(sql).await
    }

    async fn teardown(&self) {
        self.store.close().await;
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database);
        if let Ok(mut admin) = self.admin.connect().await {
            let _ = admin.execute(drop.as_str()).await;
            let _ = admin.close().await;
        }
    }
}

/// The server's URL; a missing variable fails the test (it never passes silently).
fn admin_options() -> ConnectOptions {
    let Ok(url) = std::env::var(URL_VAR) else {
        panic!(
            "{URL_VAR} is not set: run scripts/test (it starts PostgreSQL and sets it) or set it \
             yourself, e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test"
        );
    };
    match ConnectOptions::from_str(&url) {
        Ok(o) => o.disable_statement_logging(),
        Err(e) => panic!("{URL_VAR}={url:?} is not a PostgreSQL URL: {e}"),
    }
}

/// A database name no other test (or test run) uses.
fn fresh_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("ballast_t_{:016x}", h.finish())
}

pub async fn fixture() -> PgFixture {
    let admin = admin_options();
    let database = fresh_name();
    let mut conn = match admin.connect().await {
        Ok(c) => c,
        Err(e) => panic!("connecting to {URL_VAR} to create a test database: {e}"),
    };
    if let Err(e) = conn
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await
    {
        panic!("CREATE DATABASE {database}: {e}");
    }
    let _ = conn.close().await;
    let options = admin.clone().database(&database);
    match PostgresStore::connect_with(options).await {
        Ok(store) => PgFixture {
            store,
            admin,
            database,
        },
        Err(e) => panic!("opening the test database {database}: {e}"),
    }
}

ballast_store::conformance_tests!(fixture());
