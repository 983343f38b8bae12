//! `ballast serve`, `ballast admin …` and `ballast audit verify`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use ballast_core::authz::Permission;
use ballast_server::config::Config;
use ballast_server::service::{CreateUser, Grant};
use ballast_server::{admin, serve};
use clap::{Args, Subcommand};

use crate::output::bad_input;

/// Where the data is: `--data-dir` (SQLite, default ./ballast-data) or `--database postgres://…`.
#[derive(Args, Clone)]
pub struct DbArgs {
    /// Configuration file (default: ./ballast.toml when present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory: SQLite database, audit signing key, initial admin password.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL instead of SQLite.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

impl DbArgs {
    pub fn config(&self) -> anyhow::Result<Config> {
        let env = |k: &str| std::env::var(k).ok();
        let mut c = Config::load(self.config.as_deref(), &env).map_err(|e| {
            bad_input(
                format!("配置错误：{e}"),
                format!("configuration error: {e}"),
            )
        })?;
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        if let Some(db) = &self.database {
            if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
                return Err(bad_input(
                    format!("--database 须为 postgres:// URL：{db}"),
                    format!("--database must be a postgres:// URL: {db}"),
                ));
            }
            c.database = Some(db.clone());
        }
        Ok(c)
    }
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to listen on (default 127.0.0.1:8600).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address agents connect to over mutual TLS (default 127.0.0.1:8601; or BALLAST_AGENT_LISTEN).
    #[arg(long, value_name = "ADDR")]
    pub agent_listen: Option<SocketAddr>,
}

#[derive(Subcommand)]
pub enum AdminCmd {
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Agent enrolment tokens.
    #[command(subcommand, name = "enroll-token")]
    EnrollToken(EnrollTokenCmd),
    /// Write every record (users, roles, audit chain, …) as JSON, to move between backends.
    Export {
        #[command(flatten)]
        db: DbArgs,
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Load an export into an empty database (e.g. SQLite → PostgreSQL); the audit chain is kept as is.
    Import {
        #[command(flatten)]
        db: DbArgs,
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user; prints the initial password (changed at first sign-in).
    Add {
        #[command(flatten)]
        db: DbArgs,
        username: String,
        #[arg(long)]
        real_name: String,
        #[arg(long)]
        department: String,
        /// employee or outsourced.
        #[arg(long = "type", default_value = "employee")]
        kind: String,
        #[arg(long)]
        vendor: Option<String>,
        /// YYYY-MM-DD (outsourced users).
        #[arg(long)]
        contract_end: Option<String>,
        /// ROLE or ROLE@SCOPE (scope: global, environment:NAME, business:NAME); repeatable.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Grant a role in a scope (separation of duties enforced).
    Grant {
        #[command(flatten)]
        db: DbArgs,
        username: String,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "global")]
        scope: String,
    },
    /// Disable an account and revoke its sessions and tokens.
    Disable {
        #[command(flatten)]
        db: DbArgs,
        username: String,
        #[arg(long)]
        reason: String,
    },
    /// Set a new random password (to be changed at next sign-in); prints it.
    ResetPassword {
        #[command(flatten)]
        db: DbArgs,
        username: String,
    },
    /// Remove the second factor (the user enrols again).
    ResetMfa {
        #[command(flatten)]
        db: DbArgs,
        username: String,
    },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create an API token for a user; prints it once.
    Create {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Limit to these permissions (default: all the user's).
        #[arg(long = "permission")]
        permissions: Vec<String>,
        #[arg(long)]
        days: Option<i64>,
    },
}

#[derive(Subcommand)]
pub enum EnrollTokenCmd {
    /// Create a one-time token with which one `ballast agent` enrols into ENV; prints it once.
    Create {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        environment: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Recompute the audit hash chain and check signed checkpoints: exit 0 intact, 1 broken.
    Verify {
        #[command(flatten)]
        db: DbArgs,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn run_serve(args: ServeArgs) -> anyhow::Result<u8> {
    let mut config = args.db.config()?;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(l) = args.agent_listen {
        config.exec.agent_listen = l;
    }
    tracing_init();
    runtime()?.block_on(serve(config))?;
    Ok(0)
}

pub(crate) fn tracing_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BALLAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr; stdout carries what the command prints for people and scripts.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

fn parse_role(spec: &str) -> Grant {
    match spec.split_once('@') {
        Some((role, scope)) => Grant {
            role: role.to_string(),
            scope: scope.to_string(),
        },
        None => Grant {
            role: spec.to_string(),
            scope: "global".to_string(),
        },
    }
}

pub fn run_admin(cmd: AdminCmd, out: &mut dyn Write) -> anyhow::Result<u8> {
    let rt = runtime()?;
    match cmd {
        AdminCmd::User(UserCmd::Add {
            db,
            username,
            real_name,
            department,
            kind,
            vendor,
            contract_end,
            roles,
        }) => {
            let input = CreateUser {
                username,
                real_name,
                department,
                kind,
                vendor,
                contract_end,
                roles: roles.iter().map(|r| parse_role(r)).collect(),
            };
            let (user, password) = rt.block_on(async {
                admin::user_add(&admin::open(db.config()?, true).await?, &input).await
            })?;
            writeln!(
                out,
                "created {} (id {}); initial password: {password}",
                user.username, user.id
            )?;
        }
        AdminCmd::User(UserCmd::Grant {
            db,
            username,
            role,
            scope,
        }) => {
            rt.block_on(async {
                admin::grant(
                    &admin::open(db.config()?, true).await?,
                    &username,
                    &Grant { role, scope },
                )
                .await
            })?;
            writeln!(out, "granted")?;
        }
        AdminCmd::User(UserCmd::Disable {
            db,
            username,
            reason,
        }) => {
            rt.block_on(async {
                admin::user_disable(&admin::open(db.config()?, true).await?, &username, &reason)
                    .await
            })?;
            writeln!(out, "disabled {username}; sessions and tokens revoked")?;
        }
        AdminCmd::User(UserCmd::ResetPassword { db, username }) => {
            let pw = rt.block_on(async {
                admin::reset_password(&admin::open(db.config()?, true).await?, &username).await
            })?;
            writeln!(
                out,
                "new password for {username} (must be changed at next sign-in): {pw}"
            )?;
        }
        AdminCmd::User(UserCmd::ResetMfa { db, username }) => {
            rt.block_on(async {
                admin::reset_mfa(&admin::open(db.config()?, true).await?, &username).await
            })?;
            writeln!(out, "second factor of {username} removed")?;
        }
        AdminCmd::Token(TokenCmd::Create {
            db,
            user,
            name,
            permissions,
            days,
        }) => {
            let perms = permissions
                .iter()
                .map(|k| {
                    Permission::parse(k).ok_or_else(|| {
                        bad_input(
                            format!("未知权限 {k:?}"),
                            format!("unknown permission {k:?}"),
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let secret = rt.block_on(async {
                admin::token_create(
                    &admin::open(db.config()?, true).await?,
                    &user,
                    &name,
                    &perms,
                    days,
                )
                .await
            })?;
            writeln!(out, "{secret}")?;
        }
        AdminCmd::EnrollToken(EnrollTokenCmd::Create { db, environment }) => {
            let (token, expires) = rt.block_on(async {
                admin::enroll_token_create(&admin::open(db.config()?, true).await?, &environment)
                    .await
            })?;
            writeln!(out, "{token}")?;
            eprintln!(
                "有效期至 valid until {} (one use, environment {environment})",
                expires.to_rfc3339()
            );
        }
        AdminCmd::Export { db, output } => {
            let dump = rt.block_on(async {
                admin::export(&admin::open(db.config()?, false).await?).await
            })?;
            let text = serde_json::to_string_pretty(&dump)?;
            crate::output::emit(text.as_bytes(), output.as_deref(), out)?;
        }
        AdminCmd::Import { db, file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                bad_input(
                    format!("无法读取 {}：{e}", file.display()),
                    format!("cannot read {}: {e}", file.display()),
                )
            })?;
            let dump = serde_json::from_str(&text).map_err(|e| {
                bad_input(
                    format!(
                        "{}：第 {} 行：不是 Ballast 导出文件：{e}",
                        file.display(),
                        e.line()
                    ),
                    format!("{}:{}: not a Ballast export: {e}", file.display(), e.line()),
                )
            })?;
            rt.block_on(async {
                admin::import(&admin::open(db.config()?, false).await?, &dump).await
            })?;
            writeln!(out, "imported")?;
        }
    }
    Ok(0)
}

pub fn run_audit(cmd: AuditCmd, out: &mut dyn Write) -> anyhow::Result<u8> {
    let AuditCmd::Verify { db } = cmd;
    let rt = runtime()?;
    let status =
        rt.block_on(async { admin::audit_verify(&admin::open(db.config()?, false).await?).await })?;
    if status.intact {
        writeln!(
            out,
            "审计链完整 audit chain intact: {} records{}",
            status.records,
            status
                .checkpoint_seq
                .map(|s| format!(", signed checkpoint at {s}"))
                .unwrap_or_default()
        )?;
        Ok(0)
    } else {
        writeln!(
            out,
            "审计链损坏 audit chain BROKEN at record {}: {} / {}",
            status.first_broken_seq.unwrap_or(0),
            status.reason_zh.unwrap_or_default(),
            status.reason_en.unwrap_or_default()
        )?;
        Ok(1)
    }
}
