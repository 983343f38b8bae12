//! The database file: created private, in WAL mode, reopened with its data.

use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_store::Store;
use ballast_store_sqlite::SqliteStore;
use chrono::{TimeZone, Utc};

#[tokio::test]
async fn open_creates_a_private_wal_database_that_reopens() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let path = dir.path().join("ballast.db");
    let store = SqliteStore::open(&path)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let at = Utc
        .with_ymd_and_hms(2026, 11, 25, 9, 30, 0)
        .single()
        .unwrap_or_default();
    let tx = store.begin().await.unwrap_or_else(|e| panic!("begin: {e}"));
    let draft = AuditDraft::new(Actor::system(), "test.file", "test", Outcome::Success);
    tx.commit(vec![draft], at)
        .await
        .unwrap_or_else(|e| panic!("commit: {e}"));

    let wal = dir.path().join("ballast.db-wal");
    assert!(wal.exists(), "the database runs in WAL mode");
    #[cfg(unix)]
    for file in [&path, &wal] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            mode,
            0o600,
            "{} is readable by its owner only",
            file.display()
        );
    }
    let head = store.audit_head().await.unwrap_or_else(|e| panic!("{e}"));
    store.close().await;
    drop(store);

    let reopened = SqliteStore::open(&path)
        .await
        .unwrap_or_else(|e| panic!("reopen: {e}"));
    assert_eq!(
        reopened
            .audit_head()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        head
    );
    assert!(head.is_some());
    assert!(reopened.migrations_current().await.unwrap_or(false));
}
