//! `ballast admin …` and `ballast audit verify`: administration on the data directory or database
//! directly (operating-system access stands in for signing in). Every change still goes through
//! the guarded `service` functions and is audited, with the local operating-system user named.

use std::sync::Arc;

use ballast_core::clock::{Clock, SystemClock};
use ballast_core::guard::{Principal, Via};
use ballast_core::user::{User, UserKind};
use ballast_store::Dump;

use crate::api::ChainStatus;
use crate::config::Config;
use crate::error::ApiError;
use crate::service::{self, CreateUser, Grant};
use crate::state::{self, AppState};

/// Opens the store and state without serving; `bootstrap` seeds built-in roles, environments and
/// the first admin as `serve` does (off for `import`, which needs an empty database, and for
/// read-only commands).
pub async fn open(config: Config, bootstrap: bool) -> anyhow::Result<AppState> {
    let store = state::open_store(&config).await?;
    let key = state::checkpoint_key(&config)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if bootstrap {
        state::bootstrap(store.as_ref(), clock.as_ref(), &config).await?;
    }
    let holder = format!("local-admin:{}", std::process::id());
    state::shared(store, clock, config, key, &holder, bootstrap).await
}

/// The operator at this machine's console, named by the operating-system account.
pub fn local_principal(now: chrono::DateTime<chrono::Utc>) -> Principal {
    let os_user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_string());
    Principal {
        user: User {
            id: 0,
            username: "local-admin".to_string(),
            real_name: format!("本机管理员 local administrator (os user {os_user})"),
            department: String::new(),
            kind: UserKind::Employee,
            disabled: false,
            disabled_reason: None,
            must_change_password: false,
            mfa_enrolled: false,
            created_at: now,
            updated_at: now,
        },
        bindings: Vec::new(),
        source_ip: None,
        via: Via::LocalCli,
    }
}

fn err(e: ApiError) -> anyhow::Error {
    anyhow::anyhow!(
        "{} / {} [{}]",
        e.problem.message_zh,
        e.problem.message_en,
        e.problem.code
    )
}

async fn user_id(state: &AppState, username: &str) -> anyhow::Result<i64> {
    state
        .store
        .user_by_name(username)
        .await?
        .map(|u| u.id)
        .ok_or_else(|| anyhow::anyhow!("用户 {username} 不存在 / no user named {username}"))
}

pub async fn user_add(state: &AppState, input: &CreateUser) -> anyhow::Result<(User, String)> {
    let p = local_principal(state.clock.now());
    service::create_user(state, &p, input).await.map_err(err)
}

pub async fn grant(state: &AppState, username: &str, g: &Grant) -> anyhow::Result<()> {
    let p = local_principal(state.clock.now());
    let id = user_id(state, username).await?;
    service::grant_role(state, &p, id, g)
        .await
        .map(|_| ())
        .map_err(err)
}

pub async fn user_disable(state: &AppState, username: &str, reason: &str) -> anyhow::Result<()> {
    let p = local_principal(state.clock.now());
    let id = user_id(state, username).await?;
    service::set_disabled(state, &p, id, true, reason)
        .await
        .map(|_| ())
        .map_err(err)
}

pub async fn reset_password(state: &AppState, username: &str) -> anyhow::Result<String> {
    let p = local_principal(state.clock.now());
    let id = user_id(state, username).await?;
    service::reset_password(state, &p, id).await.map_err(err)
}

pub async fn reset_mfa(state: &AppState, username: &str) -> anyhow::Result<()> {
    let p = local_principal(state.clock.now());
    let id = user_id(state, username).await?;
    service::reset_mfa(state, &p, id).await.map_err(err)
}

/// An API token for `username` carrying every permission their roles grant (or `permissions`).
pub async fn token_create(
    state: &AppState,
    username: &str,
    name: &str,
    permissions: &[ballast_core::authz::Permission],
    days: Option<i64>,
) -> anyhow::Result<String> {
    let user = state
        .store
        .user_by_name(username)
        .await?
        .ok_or_else(|| anyhow::anyhow!("用户 {username} 不存在 / no user named {username}"))?;
    let bindings = state.store.bindings(Some(user.id)).await?;
    let roles = state.store.roles().await?;
    let held: Vec<_> = bindings
        .iter()
        .filter_map(|b| roles.iter().find(|r| r.key == b.role))
        .flat_map(|r| r.permissions.iter().copied())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let perms = if permissions.is_empty() {
        held
    } else {
        permissions.to_vec()
    };
    // The token is created as the user it belongs to, by the local administrator (audited).
    let p = Principal {
        user,
        bindings,
        source_ip: None,
        via: Via::LocalCli,
    };
    let (_, secret) = service::create_token(state, &p, name, &perms, days)
        .await
        .map_err(err)?;
    Ok(secret)
}

pub async fn audit_verify(state: &AppState) -> anyhow::Result<ChainStatus> {
    crate::verify::chain_status(state).await.map_err(err)
}

pub async fn export(state: &AppState) -> anyhow::Result<Dump> {
    Ok(state.store.export_all().await?)
}

pub async fn import(state: &AppState, dump: &Dump) -> anyhow::Result<()> {
    Ok(state.store.import_all(dump).await?)
}

/// `ballast admin enroll-token create --environment ENV`: a one-time agent enrolment token.
pub async fn enroll_token_create(
    state: &AppState,
    environment: &str,
) -> anyhow::Result<(String, chrono::DateTime<chrono::Utc>)> {
    let p = local_principal(state.clock.now());
    crate::exec::service::create_enroll_token(state, &p, environment)
        .await
        .map_err(err)
}
