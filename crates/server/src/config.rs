//! Configuration: defaults ← `ballast.toml` ← `BALLAST_*` environment variables ← command-line flags.
//! Secrets may come from files: `BALLAST_DATABASE_FILE` holds the database URL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ballast_core::authz::{ExclusivePair, default_exclusive_pairs};
use ballast_core::password::PasswordPolicy;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the SQLite database, the audit signing key and the initial admin password live.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; absent = SQLite in `data_dir`.
    pub database: Option<String>,
    /// The environments this deployment manages; every managed object belongs to one of them.
    pub environments: Vec<String>,
    pub session_idle_minutes: i64,
    pub session_absolute_hours: i64,
    pub password: PasswordPolicy,
    /// Failed logins before the account is locked; each further failure doubles the delay.
    pub lockout_threshold: u32,
    pub lockout_base_seconds: i64,
    pub lockout_max_seconds: i64,
    /// Shown in authenticator apps.
    pub mfa_issuer: String,
    /// Pairs of role keys no one may hold in overlapping scopes.
    pub exclusive_roles: Vec<(String, String)>,
    /// Mark cookies `Secure` (set when served over HTTPS, e.g. behind a TLS proxy).
    pub secure_cookies: bool,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Default lifetime of API tokens, days.
    pub token_days: i64,
    /// Write a signed audit checkpoint every this many seconds (when the chain grew).
    pub checkpoint_seconds: u64,
    /// The key that seals secrets at rest (default `<data_dir>/credential.key`, created on first
    /// start). Replicas on one PostgreSQL database must share it. `BALLAST_CREDENTIAL_KEY_FILE`.
    pub credential_key_file: Option<PathBuf>,
    /// Operation automation (`[exec]`).
    pub exec: crate::exec::ExecConfig,
    /// Online assessments (`[assess]`).
    pub assess: crate::assess::AssessConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8600)),
            data_dir: PathBuf::from("./ballast-data"),
            database: None,
            environments: vec!["prod".to_string()],
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            password: PasswordPolicy::default(),
            lockout_threshold: 5,
            lockout_base_seconds: 30,
            lockout_max_seconds: 3600,
            mfa_issuer: "Ballast".to_string(),
            exclusive_roles: default_exclusive_pairs()
                .into_iter()
                .map(|ExclusivePair(a, b)| (a, b))
                .collect(),
            secure_cookies: false,
            max_body_bytes: 1 << 20,
            token_days: 90,
            checkpoint_seconds: 60,
            credential_key_file: None,
            exec: crate::exec::ExecConfig::default(),
            assess: crate::assess::AssessConfig::default(),
        }
    }
}

/// A configuration problem, naming the file or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{var}: {message}")]
    Env { var: String, message: String },
}

impl Config {
    pub fn exclusive_pairs(&self) -> Vec<ExclusivePair> {
        self.exclusive_roles
            .iter()
            .map(|(a, b)| ExclusivePair(a.clone(), b.clone()))
            .collect()
    }

    /// Loads `file` if given (it must exist), else `ballast.toml` in the working directory if
    /// present, then applies `BALLAST_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let default_file = PathBuf::from("ballast.toml");
        let path = match file {
            Some(p) => Some(p.to_path_buf()),
            None if default_file.exists() => Some(default_file),
            None => None,
        };
        let mut config = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::File {
                    file: p.display().to_string(),
                    message: format!("cannot read: {e}"),
                })?;
                Config::from_toml(&text, &p.display().to_string())?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            ConfigError::File {
                file: match line {
                    Some(l) => format!("{file}:{l}"),
                    None => file.to_string(),
                },
                message: e.message().to_string(),
            }
        })
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let bad = |var: &str, message: String| ConfigError::Env {
            var: var.to_string(),
            message,
        };
        if let Some(v) = env("BALLAST_LISTEN") {
            self.listen = v
                .parse()
                .map_err(|e| bad("BALLAST_LISTEN", format!("{v:?} is not host:port ({e})")))?;
        }
        if let Some(v) = env("BALLAST_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("BALLAST_DATABASE") {
            self.database = Some(v);
        }
        if let Some(f) = env("BALLAST_DATABASE_FILE") {
            let v = std::fs::read_to_string(&f)
                .map_err(|e| bad("BALLAST_DATABASE_FILE", format!("cannot read {f}: {e}")))?;
            self.database = Some(v.trim().to_string());
        }
        if let Some(v) = env("BALLAST_ENVIRONMENTS") {
            self.environments = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = env("BALLAST_CREDENTIAL_KEY_FILE") {
            self.credential_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env("BALLAST_AGENT_LISTEN") {
            self.exec.agent_listen = v.parse().map_err(|e| {
                bad(
                    "BALLAST_AGENT_LISTEN",
                    format!("{v:?} is not host:port ({e})"),
                )
            })?;
        }
        if let Some(v) = env("BALLAST_LOCAL_ENVIRONMENTS") {
            self.exec.local_environments = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = env("BALLAST_PDF_FONT") {
            self.assess.pdf_font = Some(PathBuf::from(v));
        }
        if let Some(v) = env("BALLAST_WEBHOOK_URL") {
            self.exec.webhook_url = Some(v);
        }
        if let Some(v) = env("BALLAST_WEBHOOK_CA_FILE") {
            self.exec.webhook_ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env("BALLAST_SECURE_COOKIES") {
            self.secure_cookies = matches!(v.as_str(), "1" | "true" | "yes");
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::File {
            file: "configuration".to_string(),
            message,
        };
        if self.environments.is_empty() {
            return Err(bad("at least one environment must be declared".into()));
        }
        for e in &self.environments {
            if e.is_empty()
                || e.len() > 32
                || !e
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(bad(format!(
                    "environment {e:?}: use 1–32 characters of a-z, 0-9 and '-'"
                )));
            }
        }
        if let Some(db) = &self.database
            && !(db.starts_with("postgres://") || db.starts_with("postgresql://"))
        {
            {
                return Err(bad(
                    "database must be a postgres:// URL (SQLite is the default, in data_dir)"
                        .into(),
                ));
            }
        }
        if self.session_idle_minutes <= 0 || self.session_absolute_hours <= 0 {
            return Err(bad("session lifetimes must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_name_the_line() {
        let err = Config::from_toml(
            "listen = \"127.0.0.1:1\"\nsession_idle_minuts = 5\n",
            "ballast.toml",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.starts_with("ballast.toml:2:"), "{err}");
    }

    #[test]
    fn env_overrides() {
        let env = |k: &str| match k {
            "BALLAST_LISTEN" => Some("127.0.0.1:9999".to_string()),
            "BALLAST_ENVIRONMENTS" => Some("prod, test".to_string()),
            _ => None,
        };
        let c = Config::load(None, &env).unwrap_or_default();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.environments, vec!["prod", "test"]);
        let bad = |k: &str| (k == "BALLAST_LISTEN").then(|| "nope".to_string());
        assert!(Config::load(None, &bad).is_err());
    }
}
