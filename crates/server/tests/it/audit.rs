//! Tamper evidence: editing, deleting or truncating audit records is found, naming the first broken
//! record, through the API and `ballast audit verify`'s library path. Nothing in the product can
//! edit or delete audit records; here the test goes behind its back with raw SQL.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Connection;

use super::TestServer;

async fn raw(s: &TestServer, sql: &str) {
    let url = format!("sqlite://{}", s.dir.path().join("ballast.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
}

async fn verify(s: &TestServer, token: &str) -> Value {
    let r = s
        .client()
        .get(format!("{}/api/v1/audit/verify", s.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

#[tokio::test]
async fn the_database_refuses_edits_to_audit_records() {
    let s = TestServer::start().await;
    let url = format!("sqlite://{}", s.dir.path().join("ballast.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    assert!(
        sqlx::query("UPDATE audit_log SET content = 'x' WHERE seq = 1")
            .execute(&mut conn)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM audit_log WHERE seq = 1")
            .execute(&mut conn)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_edited_record_breaks_the_chain_at_that_record() {
    let s = TestServer::start().await;
    let token = s.user_token("auditor.one", &[("auditor", "global")]).await;
    let ok = verify(&s, &token).await;
    assert_eq!(ok["intact"], true);
    let n = ok["records"].as_i64().unwrap();
    assert!(n >= 3);
    raw(&s, "DROP TRIGGER audit_log_no_update").await;
    raw(&s, "UPDATE audit_log SET content = replace(content, 'auditor.one', 'someone.else') WHERE seq = (SELECT max(seq) - 1 FROM audit_log)").await;
    let broken = verify(&s, &token).await;
    assert_eq!(broken["intact"], false);
    assert_eq!(broken["first_broken_seq"].as_i64(), Some(n - 1));
    assert!(broken["reason_en"].as_str().unwrap().contains("altered"));
    let status = ballast_server::admin::audit_verify(&s.state).await.unwrap();
    assert_eq!(status.first_broken_seq, Some(n - 1));
}

#[tokio::test]
async fn truncating_the_tail_is_caught_by_the_signed_checkpoint() {
    let s = TestServer::start().await;
    let token = s.user_token("auditor.two", &[("auditor", "global")]).await;
    ballast_server::worker::write_checkpoint(&s.state)
        .await
        .unwrap();
    let head = s.state.store.audit_head().await.unwrap().unwrap().0;
    let ok = verify(&s, &token).await;
    assert_eq!(
        (ok["intact"].clone(), ok["checkpoint_seq"].as_i64()),
        (Value::Bool(true), Some(head))
    );
    // Delete the last records and every checkpoint in the database: the copy kept outside the
    // database (audit-head.json in the data directory) still tells.
    raw(&s, "DROP TRIGGER audit_log_no_delete").await;
    raw(&s, "DROP TRIGGER audit_checkpoints_no_delete").await;
    raw(&s, "DELETE FROM audit_checkpoints").await;
    raw(
        &s,
        &format!(
            "UPDATE audit_head SET seq = {}, hash = (SELECT hash FROM audit_log WHERE seq = {})",
            head - 2,
            head - 2
        ),
    )
    .await;
    raw(
        &s,
        &format!("DELETE FROM audit_log WHERE seq >= {}", head - 1),
    )
    .await;
    let status = ballast_server::admin::audit_verify(&s.state).await.unwrap();
    assert!(!status.intact);
    assert!(
        status.reason_en.unwrap().contains("truncated"),
        "truncation named"
    );
}
