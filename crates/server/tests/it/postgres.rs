//! The server on PostgreSQL: the same flows, and two replicas sharing one database.

use std::net::SocketAddr;
use std::sync::Arc;

use ballast_core::clock::ManualClock;
use ballast_server::Config;

use super::t0;

/// A fresh database on the test server (`BALLAST_TEST_POSTGRES_URL`, set by scripts/test).
pub(crate) async fn fresh_database() -> String {
    let admin = std::env::var("BALLAST_TEST_POSTGRES_URL")
        .expect("BALLAST_TEST_POSTGRES_URL is not set: run scripts/test, which starts PostgreSQL and sets it");
    let name = format!("ballast_srv_{}", ballast_server::service::random_hex(6));
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    match admin.rfind('/') {
        Some(i) => format!("{}/{name}", &admin[..i]),
        None => panic!("unexpected URL {admin}"),
    }
}

#[tokio::test]
async fn two_replicas_share_one_postgres_database() {
    let url = fresh_database().await;
    // Replicas share the credential key (secrets sealed by one are opened by the other).
    let shared = tempfile::tempdir().unwrap();
    let key_file = shared.path().join("credential.key");
    let start = |dir: &std::path::Path| {
        let mut config = Config {
            data_dir: dir.to_path_buf(),
            database: Some(url.clone()),
            credential_key_file: Some(key_file.clone()),
            ..Config::default()
        };
        config.exec.agent_listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        ballast_server::start(config, Arc::new(ManualClock::new(t0())))
    };
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Replicas share the checkpoint key.
    let (a, b) = tokio::join!(start(d1.path()), start(d2.path()));
    let ((sa, ia), (sb, ib)) = (a.unwrap(), b.unwrap());
    assert_eq!(
        ia.is_some() as u8 + ib.is_some() as u8,
        1,
        "exactly one replica creates the admin"
    );
    assert_eq!(sa.store.backend(), "postgres");
    // Concurrent audited writes through both replicas keep one intact chain.
    let mut tasks = Vec::new();
    for (i, st) in [sa.clone(), sb.clone()]
        .into_iter()
        .cycle()
        .take(10)
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let input = ballast_server::service::CreateUser {
                username: format!("pg.user{i}"),
                real_name: format!("用户{i}"),
                department: "D".into(),
                kind: "employee".into(),
                vendor: None,
                contract_end: None,
                roles: vec![],
            };
            ballast_server::admin::user_add(&st, &input).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let status = ballast_server::verify::chain_status(&sa).await.unwrap();
    assert!(status.intact, "{:?}", status.reason_en);
    assert_eq!(sa.store.users().await.unwrap().len(), 11);
    // Background work: only one replica holds the lease at a time.
    let ta = ballast_server::worker::tick(&sa, "replica-a")
        .await
        .unwrap();
    let tb = ballast_server::worker::tick(&sb, "replica-b")
        .await
        .unwrap();
    assert!(ta && !tb);
    // The HTTP side works on PostgreSQL too.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ballast_server::router(sa.clone());
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let ready: serde_json::Value = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"], true);
    assert_eq!(ready["audit_chain_verified"], true);
}

#[tokio::test]
async fn database_unavailable_answers_503_and_changes_nothing() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        database: Some(url.clone()),
        ..Config::default()
    };
    let (state, _) = ballast_server::start(config, Arc::new(ManualClock::new(t0())))
        .await
        .unwrap();
    let token = ballast_server::admin::token_create(&state, "admin", "t", &[], None)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ballast_server::router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let users_before = state.store.users().await.unwrap().len();
    // Take the database away: refuse new connections and end the open ones.
    let name = url.rsplit('/').next().unwrap().to_string();
    let admin_url = std::env::var("BALLAST_TEST_POSTGRES_URL").unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let c = reqwest::Client::new();
    let r = c
        .post(format!("http://{addr}/api/v1/users"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"username": "down.user", "real_name": "X", "department": "D", "type": "employee"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "database.unavailable"
    );
    let ready = c.get(format!("http://{addr}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    // Back again: nothing was written by the failed request.
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut users = Vec::new();
    for _ in 0..50 {
        if let Ok(u) = state.store.users().await {
            users = u;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(users.len(), users_before);
    assert!(
        ballast_server::verify::chain_status(&state)
            .await
            .unwrap()
            .intact
    );
}
