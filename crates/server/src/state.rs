//! The server's shared state, start-up (store, migrations, built-in roles, first admin, audit
//! verification) and the audit checkpoint key.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use ballast_core::audit::{Actor, AuditDraft, ChainVerifier, CheckpointKey, Outcome};
use ballast_core::authz::{self, RoleBinding, Scope, builtin_roles};
use ballast_core::clock::Clock;
use ballast_core::guard::Pipeline;
use ballast_core::password::{generate_password, hash_password};
use ballast_core::user::UserKind;
use ballast_store::{Environment, NewUserRow, Store};

use crate::config::Config;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
    pub pipeline: Arc<Pipeline>,
    pub checkpoint_key: Arc<CheckpointKey>,
    pub metrics: Arc<Metrics>,
    /// Set once the audit chain verified at start (for `/readyz`).
    pub chain_verified: Arc<AtomicBool>,
    /// Trading calendars, change-window policies and overrides (`crate::calendar`).
    pub calendar: Arc<crate::calendar::CalendarRuntime>,
    /// Operation automation: runner, agent hub, credential sealing, run engine (`crate::exec`).
    pub exec: Arc<crate::exec::ExecRuntime>,
}

impl AppState {
    pub fn chain_ok(&self) -> bool {
        self.chain_verified.load(Ordering::Relaxed)
    }
}

/// Opens the configured store: PostgreSQL by URL, else SQLite in the data directory.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match &config.database {
        Some(url) => {
            let s = ballast_store_postgres::PostgresStore::connect(url)
                .await
                .context("connecting to PostgreSQL")?;
            Ok(Arc::new(s))
        }
        None => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("creating data directory {}", config.data_dir.display())
            })?;
            let path = config.data_dir.join("ballast.db");
            let s = ballast_store_sqlite::SqliteStore::open(&path)
                .await
                .with_context(|| format!("opening {}", path.display()))?;
            Ok(Arc::new(s))
        }
    }
}

/// Writes `contents` to `path` readable by the owner only.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

/// Loads the audit checkpoint signing key from the data directory, creating it on first start.
/// `BALLAST_AUDIT_KEY_FILE` points elsewhere (replicas share one key).
pub fn checkpoint_key(config: &Config) -> anyhow::Result<CheckpointKey> {
    let path = std::env::var_os("BALLAST_AUDIT_KEY_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| config.data_dir.join("audit-signing.key"));
    if path.exists() {
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return CheckpointKey::from_pem(&pem)
            .map_err(|p| anyhow::anyhow!("{}: {}", path.display(), p.message_en));
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let key = CheckpointKey::generate();
    let pem = key.to_pem().map_err(|p| anyhow::anyhow!(p.message_en))?;
    write_private(&path, &pem)?;
    Ok(key)
}

/// Start-up work that must be in the database before serving: built-in roles, the declared
/// environments, and on the very first start the `admin` account. Returns the admin's initial
/// password when one was created. All of it is audited as the system. Replicas starting together
/// on one PostgreSQL database race here; the loser of a unique-key race simply tries again and
/// finds the work done.
pub async fn bootstrap(
    store: &dyn Store,
    clock: &dyn Clock,
    config: &Config,
) -> anyhow::Result<Option<String>> {
    let mut attempt = 0;
    loop {
        match bootstrap_once(store, clock, config).await {
            Err(e)
                if attempt < 3
                    && matches!(
                        e.downcast_ref::<ballast_store::StoreError>(),
                        Some(ballast_store::StoreError::Conflict(_))
                    ) =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn bootstrap_once(
    store: &dyn Store,
    clock: &dyn Clock,
    config: &Config,
) -> anyhow::Result<Option<String>> {
    let now = clock.now();
    let mut tx = store.begin().await?;
    let mut audit = Vec::new();
    let existing = store.roles().await?;
    for mut role in builtin_roles() {
        let current = existing.iter().find(|r| r.key == role.key);
        // Administrators may limit a built-in role to networks; start-up keeps that setting.
        if let Some(c) = current {
            role.allowed_networks = c.allowed_networks.clone();
        }
        if current != Some(&role) {
            tx.upsert_role(&role).await?;
            audit.push(
                AuditDraft::new(
                    Actor::system(),
                    "role.builtin_sync",
                    "role",
                    Outcome::Success,
                )
                .object(&role.key)
                .after(serde_json::json!({"permissions": role.permissions})),
            );
        }
    }
    let envs = store.environments().await?;
    for name in &config.environments {
        if !envs.iter().any(|e| &e.name == name) {
            tx.upsert_environment(&Environment {
                name: name.clone(),
                description: String::new(),
                security_zones: Vec::new(),
                created_at: now,
            })
            .await?;
            audit.push(
                AuditDraft::new(
                    Actor::system(),
                    "environment.declare",
                    "environment",
                    Outcome::Success,
                )
                .object(name),
            );
        }
    }
    if let Some(d) = crate::cmdb::seed_builtin_models(store, &mut tx, now).await? {
        audit.push(d);
    }
    let mut initial = None;
    if store.user_count().await? == 0 {
        let password = generate_password();
        let hash = hash_password(&password).map_err(|p| anyhow::anyhow!(p.message_en))?;
        let id = tx
            .insert_user(&NewUserRow {
                username: "admin".into(),
                real_name: "平台管理员 Administrator".into(),
                department: "IT".into(),
                kind: UserKind::Employee,
                password_hash: hash,
                must_change_password: true,
                created_at: now,
            })
            .await?;
        tx.insert_binding(
            &RoleBinding {
                user_id: id,
                role: authz::PLATFORM_ADMIN.into(),
                scope: Scope::Global,
            },
            now,
        )
        .await?;
        audit.push(
            AuditDraft::new(Actor::system(), "user.create", "user", Outcome::Success)
                .object(id)
                .after(serde_json::json!({"username": "admin", "roles": ["platform_admin@global"], "must_change_password": true}))
                .detail("first start: initial administrator"),
        );
        initial = Some(password);
    }
    if audit.is_empty() {
        drop(tx);
    } else {
        tx.commit(audit, now).await?;
    }
    Ok(initial)
}

/// Verifies the whole audit chain, in pages. Returns the number of records checked, or the first
/// broken record.
pub async fn verify_chain(
    store: &dyn Store,
) -> anyhow::Result<Result<u64, ballast_core::audit::Broken>> {
    let mut v = ChainVerifier::default();
    let mut after = 0;
    loop {
        let page = store.audit_range(after, 5000).await?;
        if page.is_empty() {
            return Ok(Ok(v.checked));
        }
        for r in &page {
            if let Err(b) = v.push(r) {
                return Ok(Err(b));
            }
            after = r.seq;
        }
    }
}

/// The standard pipeline of ballast-core plus the change-window check (`crate::calendar`) and the
/// dangerous-content check (`crate::exec::danger`). Approvals are the approval stage's verdicts
/// (`NeedsApproval`), which the callers turn into approval requests.
pub fn pipeline(
    calendar: Arc<crate::calendar::CalendarRuntime>,
    danger: Arc<crate::exec::danger::RuleSet>,
) -> Pipeline {
    Pipeline::standard()
        .with(Box::new(crate::calendar::ChangeWindowCheck::new(calendar)))
        .with(Box::new(crate::exec::danger::DangerCheck(danger)))
}

/// The shared state; `holder` names this replica (run leases). `init` lets start-up create what
/// the database lacks (the agents' CA); without it (`ballast admin import` needs an empty
/// database) a missing CA is replaced by a temporary one that is never stored.
pub async fn shared(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: Config,
    key: CheckpointKey,
    holder: &str,
    init: bool,
) -> anyhow::Result<AppState> {
    let calendar = Arc::new(crate::calendar::CalendarRuntime::load(&config.data_dir));
    let exec = Arc::new(
        crate::exec::ExecRuntime::load(&config, store.clone(), clock.clone(), holder, init).await?,
    );
    Ok(AppState {
        store,
        clock,
        config: Arc::new(config),
        pipeline: Arc::new(pipeline(calendar.clone(), exec.danger.clone())),
        checkpoint_key: Arc::new(key),
        metrics: Arc::new(Metrics::default()),
        chain_verified: Arc::new(AtomicBool::new(false)),
        calendar,
        exec,
    })
}
