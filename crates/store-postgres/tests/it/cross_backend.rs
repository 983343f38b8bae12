//! A dump moves between backends unchanged: SQLite → PostgreSQL → dump, and back.

use std::sync::Arc;

use ballast_store::conformance::{self, Fixture};
use ballast_store_sqlite::SqliteStore;

async fn sqlite() -> Arc<SqliteStore> {
    match SqliteStore::open_memory().await {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("opening a throwaway SQLite database: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dump_imports_into_postgres_unchanged() {
    let (from, to) = (sqlite().await, Arc::new(crate::fixture().await));
    let pg = Arc::clone(&to);
    let run = tokio::spawn(async move {
        conformance::export_import_round_trip(&*from, pg.store()).await;
    });
    conformance::finish(run.await, &[&*to]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dump_imports_into_sqlite_unchanged() {
    let (from, to) = (Arc::new(crate::fixture().await), sqlite().await);
    let pg = Arc::clone(&from);
    let run = tokio::spawn(async move {
        conformance::export_import_round_trip(pg.store(), &*to).await;
    });
    conformance::finish(run.await, &[&*from]).await;
}
