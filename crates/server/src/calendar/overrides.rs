//! Emergency overrides of the change window: requested by the person who needs to act, approved
//! by a second person holding `approval.approve` (never the requester), time-boxed (at most 24 h),
//! audited at each step.
//!
//! Storage: `<data-dir>/change-window-overrides.json`, written atomically (temporary file +
//! rename) while the audit record's transaction is open; if the audit commit fails the previous
//! file is written back. This survives restarts, and replicas sharing the data directory see each
//! other's changes (the guard re-reads the file when its modification time changes), but it is a
//! file, not the database: it belongs in the store (docs/CALENDAR.md, "Known limits").

use std::path::Path;
use std::time::SystemTime;

use axum::http::StatusCode;
use ballast_calendar::policy::{MAX_OVERRIDE_HOURS, OVERRIDE_APPROVER_PERMISSION};
use ballast_calendar::{Approver, Override, OverrideRequest, PolicyError};
use ballast_core::Problem;
use ballast_core::audit::{AuditDraft, Outcome};
use ballast_core::authz::{Permission, Target};
use ballast_core::guard::{Action, ActionKind, Principal};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{CalendarRuntime, policy_problem, read_lock, write_lock};
use crate::error::{ApiError, ApiResult};
use crate::service;
use crate::state::AppState;

/// Where an override stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverrideStatus {
    /// Waiting for a second person's approval; has no effect.
    Pending,
    /// Approved: in effect during `[valid_from, valid_until)`.
    Approved,
}

/// One override as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OverrideRecord {
    pub id: String,
    /// The environment it covers (required: an override is always narrow).
    pub environment: String,
    /// Absent = any business system of the environment.
    pub business_system: Option<String>,
    pub tier: Option<String>,
    /// The operation key it covers (e.g. `job.run`); absent = any.
    pub kind: Option<String>,
    pub reason: String,
    pub requester: String,
    pub requester_id: i64,
    pub requested_at: DateTime<Utc>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub status: OverrideStatus,
    pub approver: Option<String>,
    pub approver_id: Option<i64>,
    pub approved_at: Option<DateTime<Utc>>,
}

impl OverrideRecord {
    /// `pending`, `scheduled` (approved, not yet valid), `active` or `expired`, at `now`.
    pub fn effective(&self, now: DateTime<Utc>) -> &'static str {
        if now >= self.valid_until {
            "expired"
        } else if self.status == OverrideStatus::Pending {
            "pending"
        } else if now < self.valid_from {
            "scheduled"
        } else {
            "active"
        }
    }

    /// The guard target (`ballast_core`) the override concerns.
    pub fn target(&self) -> Target {
        Target {
            environment: Some(self.environment.clone()),
            business_system: self.business_system.clone(),
            tier: self.tier.clone(),
            ..Target::default()
        }
    }

    fn request(&self) -> OverrideRequest {
        let list = |v: &Option<String>| v.iter().cloned().collect::<Vec<String>>();
        OverrideRequest {
            id: self.id.clone(),
            reason: self.reason.clone(),
            requester: self.requester.clone(),
            scope: ballast_calendar::Target {
                environments: vec![self.environment.clone()],
                business_systems: list(&self.business_system),
                tiers: list(&self.tier),
                kinds: list(&self.kind),
                exclude_kinds: Vec::new(),
            },
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        }
    }

    /// The approved override `evaluate` honours (the approval was checked when it was given).
    fn approved(&self) -> Option<Override> {
        let approver = self.approver.clone()?;
        (self.status == OverrideStatus::Approved)
            .then(|| {
                Override::approve(
                    self.request(),
                    &Approver {
                        user: approver,
                        permissions: vec![OVERRIDE_APPROVER_PERMISSION.to_string()],
                    },
                )
                .ok()
            })
            .flatten()
    }
}

#[derive(Serialize, Deserialize)]
struct OverrideFile {
    version: u32,
    overrides: Vec<OverrideRecord>,
}

/// The overrides as loaded from the file.
pub(crate) struct OverrideState {
    pub(crate) records: Result<Vec<OverrideRecord>, Problem>,
    pub(crate) approved: Vec<ballast_calendar::Override>,
    mtime: Option<SystemTime>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl OverrideState {
    pub(crate) fn load(path: &Path) -> OverrideState {
        let stamp = mtime(path);
        let records = if path.exists() {
            std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    serde_json::from_str::<OverrideFile>(&t)
                        .map_err(|e| format!("line {}, column {}: {e}", e.line(), e.column()))
                })
                .map(|f| f.overrides)
                .map_err(|e| {
                    Problem::new(
                        "override.store_unreadable",
                        format!(
                            "紧急放行记录文件 {} 无法读取（{e}），所有紧急放行均不生效",
                            path.display()
                        ),
                        format!(
                            "the override file {} cannot be read ({e}); no override is in effect",
                            path.display()
                        ),
                    )
                })
        } else {
            Ok(Vec::new())
        };
        OverrideState::from_records(records, stamp)
    }

    fn from_records(
        records: Result<Vec<OverrideRecord>, Problem>,
        mtime: Option<SystemTime>,
    ) -> OverrideState {
        let approved = records
            .as_ref()
            .map(|r| r.iter().filter_map(OverrideRecord::approved).collect())
            .unwrap_or_default();
        OverrideState {
            records,
            approved,
            mtime,
        }
    }
}

impl CalendarRuntime {
    /// Re-reads the overrides file when another process changed it.
    pub(crate) fn refresh_overrides(&self) {
        let path = self.overrides_path();
        let now_stamp = mtime(&path);
        if read_lock(&self.overrides).mtime == now_stamp {
            return;
        }
        *write_lock(&self.overrides) = OverrideState::load(&path);
    }

    /// Every override, newest first, or why the file cannot be read.
    pub fn override_records(&self) -> Result<Vec<OverrideRecord>, Problem> {
        self.refresh_overrides();
        let mut r = read_lock(&self.overrides).records.clone()?;
        r.sort_by_key(|o| std::cmp::Reverse(o.requested_at));
        Ok(r)
    }

    fn write_overrides(&self, records: &[OverrideRecord]) -> std::io::Result<()> {
        let path = self.overrides_path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(&OverrideFile {
            version: 1,
            overrides: records.to_vec(),
        })
        .map_err(std::io::Error::other)?;
        let tmp = path.with_file_name(format!(".{}.tmp", super::OVERRIDES_FILE));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        *write_lock(&self.overrides) =
            OverrideState::from_records(Ok(records.to_vec()), mtime(&path));
        Ok(())
    }
}

fn write_failed(e: &std::io::Error) -> ApiError {
    tracing::error!("writing the override file: {e}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        Problem::new(
            "override.write_failed",
            format!("紧急放行记录写入失败，未做任何更改：{e}"),
            format!("the override file could not be written; nothing was changed: {e}"),
        ),
    )
}

/// Writes the new override list and commits its audit record: the file is replaced while the
/// transaction is open and written back if the commit fails.
async fn persist(
    state: &AppState,
    previous: &[OverrideRecord],
    records: &[OverrideRecord],
    draft: AuditDraft,
) -> ApiResult<()> {
    let rt = &state.calendar;
    let tx = state.store.begin().await?;
    rt.write_overrides(records).map_err(|e| write_failed(&e))?;
    if let Err(e) = tx.commit(vec![draft], state.clock.now()).await {
        if let Err(w) = rt.write_overrides(previous) {
            tracing::error!("restoring the override file after a failed audit commit: {w}");
        }
        return Err(e.into());
    }
    state.metrics.audit_appended(1);
    Ok(())
}

fn unavailable(p: Problem) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, p)
}

fn draft(p: &Principal, action: &str, outcome: Outcome) -> AuditDraft {
    AuditDraft::new(service::actor(p), action, "change_window_override", outcome)
        .from_ip(p.source_ip.map(|ip| ip.to_string()))
}

/// A request for an override, as the API and the page take it.
#[derive(Debug, Clone)]
pub struct NewOverride {
    pub environment: String,
    pub business_system: Option<String>,
    pub tier: Option<String>,
    pub kind: Option<String>,
    pub reason: String,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// Records a request (status `pending`, no effect until approved). Needs `job.run` in the
/// environment: whoever may run there may ask for an exception, never grant it.
pub async fn request(
    state: &AppState,
    p: &Principal,
    input: &NewOverride,
) -> ApiResult<OverrideRecord> {
    let environment = input.environment.trim().to_string();
    let mut rec = OverrideRecord {
        id: String::new(),
        environment,
        business_system: nonempty(&input.business_system),
        tier: nonempty(&input.tier),
        kind: nonempty(&input.kind),
        reason: input.reason.trim().to_string(),
        requester: p.user.username.clone(),
        requester_id: p.user.id,
        requested_at: state.clock.now(),
        valid_from: input.valid_from,
        valid_until: input.valid_until,
        status: OverrideStatus::Pending,
        approver: None,
        approver_id: None,
        approved_at: None,
    };
    if rec.environment.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Problem::field(
                "override.environment_missing",
                "environment",
                "紧急放行必须指定环境",
                "an override must name its environment",
            ),
        ));
    }
    let action = Action::new(
        ActionKind::Mutate,
        Permission::JobRun,
        "change_window.override.request",
        rec.target(),
    );
    service::authorize(state, p, &action).await?;
    let now = state.clock.now();
    let invalid = |code: &'static str, field: &str, zh: String, en: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Problem::field(code, field, zh, en),
        )
    };
    if rec.reason.is_empty() {
        let e = PolicyError::OverrideReasonMissing;
        return Err(invalid(e.code(), "reason", e.message_zh(), e.message_en()));
    }
    if rec.reason.chars().count() > 2000 {
        return Err(invalid(
            "override.reason_too_long",
            "reason",
            "原因不能超过 2000 个字符".into(),
            "the reason must be at most 2000 characters".into(),
        ));
    }
    if rec.valid_until <= rec.valid_from
        || rec.valid_until - rec.valid_from > Duration::hours(MAX_OVERRIDE_HOURS)
    {
        let e = PolicyError::OverrideTimeBoxInvalid {
            max_hours: MAX_OVERRIDE_HOURS,
        };
        return Err(invalid(
            e.code(),
            "valid_until",
            e.message_zh(),
            e.message_en(),
        ));
    }
    if rec.valid_until <= now {
        return Err(invalid(
            "override.time_box_invalid",
            "valid_until",
            format!("结束时间 {} 已过", rec.valid_until.to_rfc3339()),
            format!(
                "valid_until {} is already past",
                rec.valid_until.to_rfc3339()
            ),
        ));
    }
    let rt = &state.calendar;
    let _guard = rt.write_lock.lock().await;
    let previous = rt.override_records().map_err(unavailable)?;
    let mut id = format!("ovr-{}", service::random_hex(4));
    while previous.iter().any(|r| r.id == id) {
        id = format!("ovr-{}", service::random_hex(4));
    }
    rec.id = id;
    let mut records = previous.clone();
    records.push(rec.clone());
    let d = draft(p, "override.request", Outcome::Success)
        .object(&rec.id)
        .environment(Some(rec.environment.clone()))
        .after(serde_json::json!(rec))
        .detail(format!("emergency override requested: {}", rec.reason));
    persist(state, &previous, &records, d).await?;
    Ok(rec)
}

/// Approves a pending override: `approval.approve` in the override's scope, never by the
/// requester (separation of duties, refused with `sod.self_approval` by the guard pipeline).
pub async fn approve(state: &AppState, p: &Principal, id: &str) -> ApiResult<OverrideRecord> {
    let rt = &state.calendar;
    let records = rt.override_records().map_err(unavailable)?;
    let Some(rec) = records.iter().find(|r| r.id == id).cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Problem::new(
                "override.not_found",
                format!("紧急放行 {id} 不存在"),
                format!("override {id} does not exist"),
            ),
        ));
    };
    let mut action = Action::new(
        ActionKind::Approve,
        Permission::ApprovalApprove,
        "change_window.override.approve",
        rec.target(),
    );
    action.requested_by = Some(rec.requester_id);
    service::authorize(state, p, &action).await?;
    let _guard = rt.write_lock.lock().await;
    let previous = rt.override_records().map_err(unavailable)?;
    let Some(mut rec) = previous.iter().find(|r| r.id == id).cloned() else {
        return Err(ApiError::not_found(&format!("override {id}")));
    };
    let now = state.clock.now();
    if rec.status != OverrideStatus::Pending {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            Problem::new(
                "override.not_pending",
                format!("紧急放行 {id} 已审批"),
                format!("override {id} is already approved"),
            ),
        ));
    }
    if now >= rec.valid_until {
        let e = PolicyError::OverrideExpired { id: id.to_string() };
        return Err(ApiError::new(StatusCode::CONFLICT, policy_problem(&e)));
    }
    // The calendar crate's own rules once more: reason, not the requester, time box.
    Override::approve(
        rec.request(),
        &Approver {
            user: p.user.username.clone(),
            permissions: vec![OVERRIDE_APPROVER_PERMISSION.to_string()],
        },
    )
    .map_err(|e| {
        let status = match e {
            PolicyError::OverrideSelfApproval { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, policy_problem(&e))
    })?;
    rec.status = OverrideStatus::Approved;
    rec.approver = Some(p.user.username.clone());
    rec.approver_id = Some(p.user.id);
    rec.approved_at = Some(now);
    let records: Vec<OverrideRecord> = previous
        .iter()
        .map(|r| {
            if r.id == rec.id {
                rec.clone()
            } else {
                r.clone()
            }
        })
        .collect();
    let d = draft(p, "override.approve", Outcome::Success)
        .object(&rec.id)
        .environment(Some(rec.environment.clone()))
        .after(serde_json::json!(rec))
        .detail(format!(
            "emergency override approved for {} (requested by {}), valid {} to {}",
            rec.environment,
            rec.requester,
            rec.valid_from.to_rfc3339(),
            rec.valid_until.to_rfc3339()
        ));
    persist(state, &previous, &records, d).await?;
    Ok(rec)
}
