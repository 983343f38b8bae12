//! Trading calendars and the change-window guard in the server.
//!
//! * [`CalendarRuntime`] holds what `ballast-calendar` computes with: the bundled SSE/SZSE
//!   calendars plus the `<data-dir>/calendars/` layer, the change-window policies of
//!   `<data-dir>/change-windows.toml` (while it is absent, the built-in default), and the
//!   emergency overrides of
//!   `<data-dir>/change-window-overrides.json` (a file until the store has a table for them; see
//!   docs/CALENDAR.md, "Known limits"). A load problem is kept, never papered over: queries answer
//!   503 and the guard refuses (fail closed).
//! * [`guard::ChangeWindowCheck`] is the pipeline's change-window stage.
//! * [`import`] validates, diffs and applies calendar files (audited); [`overrides`] requests and
//!   approves emergency overrides (audited, separation of duties).
//! * [`api`] and [`pages`] are the HTTP front ends; [`routes`] mounts both.

pub mod api;
pub mod guard;
pub mod import;
pub mod overrides;
pub mod pages;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::http::StatusCode;
use ballast_calendar::{CalendarError, CalendarSet, Layer, Policy, PolicyError, PolicySet};
use ballast_core::Problem;

use crate::error::ApiError;
use crate::state::AppState;

pub use guard::ChangeWindowCheck;

/// The calendar the change-window guard evaluates against (SSE and SZSE share the closure
/// schedule; their sessions differ only before 2018-08-20).
pub const DEFAULT_CALENDAR: &str = "sse";
/// Extra and overriding calendar files, one layer on top of the bundled data.
pub const CALENDAR_DIR: &str = "calendars";
/// The change-window policies; absent = the built-in default
/// ([`ballast_calendar::bundled::DEFAULT_POLICIES`]: production blocked during market hours).
pub const POLICY_FILE: &str = "change-windows.toml";
/// Emergency overrides (requested and approved).
pub const OVERRIDES_FILE: &str = "change-window-overrides.json";

/// Where the policies in force come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// `<data-dir>/change-windows.toml` does not exist: the built-in default is in force, so a
    /// fresh installation never lets a change reach production while the market is open.
    BuiltIn,
    /// The administrator's `<data-dir>/change-windows.toml`.
    File(PathBuf),
}

/// Where the policies came from, and whether they loaded.
#[derive(Debug, Clone)]
pub struct PolicyState {
    pub source: PolicySource,
    /// The policies, or the (bilingual, file-and-line) reason they did not load.
    pub policies: Result<Vec<Policy>, Problem>,
}

/// The calendars, policies and overrides the server evaluates with.
pub struct CalendarRuntime {
    data_dir: PathBuf,
    calendars: RwLock<Result<Arc<CalendarSet>, Problem>>,
    policies: RwLock<PolicyState>,
    overrides: RwLock<overrides::OverrideState>,
    /// Serialises imports and override changes within this process.
    pub(crate) write_lock: tokio::sync::Mutex<()>,
}

fn read_lock<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // Values are replaced whole under the write lock, so a poisoned lock still holds a
    // consistent value.
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A calendar error as a problem with the same stable code.
pub fn problem(e: &CalendarError) -> Problem {
    Problem::new(e.code(), e.message_zh(), e.message_en())
}

/// A policy error as a problem with the same stable code.
pub fn policy_problem(e: &PolicyError) -> Problem {
    Problem::new(e.code(), e.message_zh(), e.message_en())
}

/// A calendar error as an API error: unknown calendar 404, everything else (not covered, invalid
/// data, invalid range or schedule) 422.
pub fn api_error(e: &CalendarError) -> ApiError {
    let status = match e {
        CalendarError::UnknownCalendar { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, problem(e))
}

/// Reads the `*.toml` files of `dir` (not recursive, in name order) as `(name, contents)`; a
/// missing directory is an empty layer.
pub(crate) fn read_sources(dir: &Path) -> Result<Vec<(String, String)>, Problem> {
    let io = |path: &Path, e: std::io::Error| {
        Problem::new(
            "calendar.io",
            format!("无法读取 {}：{e}", path.display()),
            format!("cannot read {}: {e}", path.display()),
        )
    };
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut sources = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let name = path
            .file_name()
            .map(|n| format!("{CALENDAR_DIR}/{}", n.to_string_lossy()))
            .unwrap_or_else(|| path.display().to_string());
        sources.push((name, text));
    }
    Ok(sources)
}

/// The bundled calendars plus the given directory files.
pub(crate) fn build_set(sources: &[(String, String)]) -> Result<CalendarSet, CalendarError> {
    let layer = if sources.is_empty() {
        None
    } else {
        Some(Layer::from_sources(CALENDAR_DIR, sources)?)
    };
    CalendarSet::with_extra(layer)
}

fn load_calendars(dir: &Path) -> Result<Arc<CalendarSet>, Problem> {
    let sources = read_sources(dir)?;
    build_set(&sources).map(Arc::new).map_err(|e| problem(&e))
}

fn load_policies(data_dir: &Path) -> PolicyState {
    let path = data_dir.join(POLICY_FILE);
    if !path.exists() {
        use ballast_calendar::bundled::{DEFAULT_POLICIES, DEFAULT_POLICIES_NAME};
        return PolicyState {
            source: PolicySource::BuiltIn,
            policies: PolicySet::from_toml(DEFAULT_POLICIES_NAME, DEFAULT_POLICIES)
                .map(|s| s.policies)
                .map_err(|e| policy_problem(&e)),
        };
    }
    let policies = std::fs::read_to_string(&path)
        .map_err(|e| {
            Problem::new(
                "policy.io",
                format!("无法读取 {}：{e}", path.display()),
                format!("cannot read {}: {e}", path.display()),
            )
        })
        .and_then(|text| {
            PolicySet::from_toml(POLICY_FILE, &text)
                .map(|s| s.policies)
                .map_err(|e| policy_problem(&e))
        });
    PolicyState {
        source: PolicySource::File(path),
        policies,
    }
}

impl CalendarRuntime {
    /// Loads everything from the data directory. Never fails: a problem is kept and reported by
    /// the queries (503) and the guard (refusal), and logged here.
    pub fn load(data_dir: &Path) -> CalendarRuntime {
        let rt = CalendarRuntime {
            data_dir: data_dir.to_path_buf(),
            calendars: RwLock::new(load_calendars(&data_dir.join(CALENDAR_DIR))),
            policies: RwLock::new(load_policies(data_dir)),
            overrides: RwLock::new(overrides::OverrideState::load(
                &data_dir.join(OVERRIDES_FILE),
            )),
            write_lock: tokio::sync::Mutex::new(()),
        };
        if let Err(p) = &*read_lock(&rt.calendars) {
            tracing::error!("trading calendars did not load: {}", p.message_en);
        }
        if let Err(p) = &read_lock(&rt.policies).policies {
            tracing::error!("change-window policies did not load: {}", p.message_en);
        }
        if let Err(p) = &read_lock(&rt.overrides).records {
            tracing::error!("change-window overrides did not load: {}", p.message_en);
        }
        rt
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn calendar_dir(&self) -> PathBuf {
        self.data_dir.join(CALENDAR_DIR)
    }

    pub fn overrides_path(&self) -> PathBuf {
        self.data_dir.join(OVERRIDES_FILE)
    }

    /// The loaded calendars, or why they did not load.
    pub fn calendars(&self) -> Result<Arc<CalendarSet>, Problem> {
        read_lock(&self.calendars).clone()
    }

    /// The calendars for an API answer: a load problem is 503 (fail closed).
    pub fn calendars_api(&self) -> Result<Arc<CalendarSet>, ApiError> {
        self.calendars()
            .map_err(|p| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, p))
    }

    /// Re-reads `<data-dir>/calendars/` on top of the bundled data.
    pub fn reload_calendars(&self) -> Result<(), Problem> {
        let loaded = load_calendars(&self.calendar_dir());
        let result = loaded.as_ref().map(|_| ()).map_err(Clone::clone);
        *write_lock(&self.calendars) = loaded;
        result
    }

    pub fn policy_state(&self) -> PolicyState {
        read_lock(&self.policies).clone()
    }

    /// Re-reads `<data-dir>/change-windows.toml`.
    pub fn reload_policies(&self) -> Result<(), Problem> {
        let loaded = load_policies(&self.data_dir);
        let result = loaded.policies.as_ref().map(|_| ()).map_err(Clone::clone);
        *write_lock(&self.policies) = loaded;
        result
    }

    /// The policies with the approved overrides, as `evaluate` takes them. Overrides written by
    /// another process sharing the data directory are picked up (the file's modification time is
    /// checked). An unreadable overrides file means no overrides: more restrictive, never less.
    pub fn policy_set(&self) -> Result<PolicySet, Problem> {
        let policies = read_lock(&self.policies).policies.clone()?;
        self.refresh_overrides();
        let overrides = read_lock(&self.overrides).approved.clone();
        Ok(PolicySet {
            policies,
            overrides,
        })
    }
}

/// The target for reading calendar data (calendars, policies, overrides, evaluations): the data is
/// the same for every environment, so `perm` held in any scope lets one read it. The target is
/// that of a binding whose role grants `perm` (global if one is global); with none, global, which
/// the pipeline then refuses.
pub(crate) async fn reference_target(
    state: &AppState,
    p: &ballast_core::guard::Principal,
    perm: ballast_core::authz::Permission,
) -> Result<ballast_core::authz::Target, ApiError> {
    use ballast_core::authz::{Scope, Target};
    let roles = state.store.roles().await?;
    let granting: Vec<&Scope> = p
        .bindings
        .iter()
        .filter(|b| {
            roles
                .iter()
                .any(|r| r.key == b.role && r.permissions.contains(&perm))
        })
        .map(|b| &b.scope)
        .collect();
    if granting.iter().any(|s| **s == Scope::Global) {
        return Ok(Target::global());
    }
    Ok(match granting.first() {
        Some(Scope::Environment(e)) => Target::environment(e),
        Some(Scope::BusinessSystem(b)) => Target {
            business_system: Some(b.clone()),
            ..Target::default()
        },
        _ => Target::global(),
    })
}

/// The calendar API and pages (merged into the application router by `crate::router`).
pub fn routes() -> Router<AppState> {
    api::routes().merge(pages::routes())
}
