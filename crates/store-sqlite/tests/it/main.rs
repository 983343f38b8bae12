//! The store conformance suite on SQLite (each case gets its own throwaway database), and what
//! is particular to a database file.

mod file;
mod sql_params;

use async_trait::async_trait;
use ballast_store::Store;
use ballast_store::conformance::Fixture;
use ballast_store_sqlite::SqliteStore;

struct SqliteFixture(SqliteStore);

#[async_trait]
impl Fixture for SqliteFixture {
    fn store(&self) -> &dyn Store {
        &self.0
    }

    async fn execute_raw(&self, sql: &str) -> ballast_store::Result<u64> {
        self.0.execute_raw_for_tests(sql).await
    }

    async fn teardown(&self) {
        self.0.close().await;
    }
}

async fn fixture() -> SqliteFixture {
    match SqliteStore::open_memory().await {
        Ok(store) => SqliteFixture(store),
        Err(e) => panic!("opening a throwaway SQLite database: {e}"),
    }
}

ballast_store::conformance_tests!(fixture());
