//! Integration tests of the server: a real server on a loopback port (SQLite in a temporary data
//! directory, or PostgreSQL), driven over HTTP. One test binary (see ARCHITECTURE.md, "Tests").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod assess;
mod assess_browser;
mod audit;
mod authn;
mod browser;
mod calendar;
mod cmdb;
mod exec;
mod postgres;
mod schedule;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use ballast_core::clock::ManualClock;
use ballast_server::{AppState, Config};
use chrono::{DateTime, TimeZone, Utc};

/// 2026-11-25 10:00 Beijing time.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0)
        .single()
        .unwrap()
}

/// A change-window policy: production blocked 09:00–15:30 on trading days.
pub const PROD_MARKET_HOURS: &str = r#"schema = 1

[[policy]]
id = "prod-market-hours"
description_zh = "生产环境：交易时段禁止变更"
description_en = "Production: no changes during market hours"
environments = ["prod"]
exclude_kinds = ["read_only"]

[[policy.rule]]
outcome = "block"
days = "trading"
from = "09:00"
to = "15:30"
"#;

/// A running server with its own data directory and a clock the test controls.
pub struct TestServer {
    pub url: String,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    pub admin_password: String,
    /// Where agents connect (the hub's TLS port).
    pub agent_addr: SocketAddr,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            environments: vec!["prod".into(), "test".into()],
            ..Config::default()
        };
        config.exec.agent_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.exec.local_environments = vec!["test".into()];
        // The tests' clock stands in market hours (t0), where the built-in default policy would
        // block everything in prod: start from "no policies" and let each test write its own.
        // `calendar::without_a_policy_file_the_builtin_default_is_in_force` removes the file.
        std::fs::write(dir.path().join("change-windows.toml"), "schema = 1\n").unwrap();
        tweak(&mut config);
        let clock = Arc::new(ManualClock::new(t0()));
        let (state, initial) = ballast_server::start(config, clock.clone()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let agent_addr = ballast_server::exec::spawn(state.clone()).await.unwrap();
        let app = ballast_server::router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        TestServer {
            url: format!("http://{addr}"),
            state,
            clock,
            dir,
            admin_password: initial.unwrap_or_default(),
            agent_addr,
        }
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// An API token for a new user holding `role@scope` (created through the admin path).
    pub async fn user_token(&self, username: &str, grants: &[(&str, &str)]) -> String {
        let input = ballast_server::service::CreateUser {
            username: username.into(),
            real_name: format!("测试 {username}"),
            department: "运维部".into(),
            kind: "employee".into(),
            vendor: None,
            contract_end: None,
            roles: grants
                .iter()
                .map(|(r, s)| ballast_server::service::Grant {
                    role: (*r).into(),
                    scope: (*s).into(),
                })
                .collect(),
        };
        ballast_server::admin::user_add(&self.state, &input)
            .await
            .unwrap();
        ballast_server::admin::token_create(&self.state, username, "test", &[], None)
            .await
            .unwrap()
    }

    pub async fn admin_token(&self) -> String {
        ballast_server::admin::token_create(&self.state, "admin", "test", &[], None)
            .await
            .unwrap()
    }

    /// Every audit record's (action, outcome) pairs, oldest first.
    pub async fn audit_actions(&self) -> Vec<(String, String)> {
        self.state
            .store
            .audit_range(0, 100_000)
            .await
            .unwrap()
            .iter()
            .filter_map(|r| r.parsed())
            .map(|c| (c.draft.action, c.draft.outcome.key().to_string()))
            .collect()
    }
}
