//! The Ballast platform server: the JSON API (`api`), the web UI (`ui`), authentication (`auth`),
//! the guarded operations both call (`service`), start-up (`state`) and background work (`worker`).
//!
//! Layering: handlers parse and render; `service` authorises through the guard pipeline of
//! ballast-core and changes the store in one audited transaction; the store is a trait object with
//! one implementation per backend.

pub mod admin;
pub mod api;
pub mod assess;
pub mod auth;
pub mod calendar;
pub mod cmdb;
pub mod config;
pub mod error;
pub mod exec;
pub mod export;
pub mod metrics;
pub mod service;
pub mod state;
pub mod ui;
pub mod verify;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use ballast_core::clock::{Clock, SystemClock};

pub use config::Config;
pub use state::AppState;

async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let mut res = next.run(req).await;
    state.metrics.observe(
        &method,
        &route,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    res
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .merge(api::routes())
        .merge(ui::routes())
        .merge(calendar::routes())
        .merge(exec::routes())
        .merge(assess::routes(&state))
        .merge(cmdb::routes())
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Starts everything `ballast serve` needs and returns the state (for tests and the CLI).
/// Prints the initial admin password on first start.
pub async fn start(
    config: Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(AppState, Option<String>)> {
    let store = state::open_store(&config).await?;
    let key = state::checkpoint_key(&config)?;
    let initial = state::bootstrap(store.as_ref(), clock.as_ref(), &config).await?;
    if let Some(pw) = &initial {
        state::write_private(
            &config.data_dir.join("initial-admin-password"),
            &format!("{pw}\n"),
        )?;
    }
    let holder = format!("{}:{}", hostname(), std::process::id());
    let st = state::shared(store, clock, config, key, &holder, true).await?;
    match state::verify_chain(st.store.as_ref()).await? {
        Ok(_) => st
            .chain_verified
            .store(true, std::sync::atomic::Ordering::Relaxed),
        Err(b) => tracing::error!("audit chain broken at record {}: {}", b.seq, b.reason_en),
    }
    Ok((st, initial))
}

/// `ballast serve`: start, listen, run background work, serve until interrupted.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let (state, initial) = start(config, Arc::new(SystemClock)).await?;
    if let Some(pw) = initial {
        println!("首次启动：已创建管理员账号 admin，初始密码（仅显示一次，首次登录须修改）：");
        println!(
            "First start: created the account `admin`; initial password (shown once, must be changed at first sign-in):"
        );
        println!("  {pw}");
        println!(
            "  (also written to {} with mode 0600)",
            state
                .config
                .data_dir
                .join("initial-admin-password")
                .display()
        );
    }
    if !state.chain_ok() {
        eprintln!(
            "警告：审计链校验失败，/readyz 将返回 503 / warning: the audit chain did not verify; /readyz answers 503"
        );
    }
    worker::spawn(state.clone(), state.exec.owner.clone());
    let agent_addr = exec::spawn(state.clone()).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "Ballast listening on http://{} ({} backend); agents connect to {agent_addr}",
        listener.local_addr()?,
        state.store.backend()
    );
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "ballast".into())
}
