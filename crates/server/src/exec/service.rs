//! Guarded operations of the execution engine. Each runs the guard pipeline for its principal,
//! then changes the store in one transaction committed with its audit record(s). Secrets never
//! reach an audit record, a log or a response: they are sealed at rest and masked everywhere else.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use ballast_core::Problem;
use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_core::authz::{Permission, Target};
use ballast_core::guard::{Action, ActionKind, Content, Decision, Principal};
use ballast_exec::script::{check_approver, may_run, transition, validate_script};
use ballast_exec::{
    Decision as StepDecision, Language, ParamDef, PlanSpec, StepKind, VersionState,
};
use ballast_store::{
    ApprovalRow, EnrollTokenRow, HostKeyRow, PlanRow, PlanVersionRow, RunRow, ScriptRow,
    ScriptVersionRow, SettingRow, SshCredentialRow, StepRow,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::model::{FrozenAction, FrozenStep, PlanRef, RunSpec};
use crate::error::{ApiError, ApiResult};
use crate::service::{actor, audit_only, draft};
use crate::state::AppState;

pub fn actor_of(p: &Principal) -> Actor {
    actor(p)
}

fn bad(code: &'static str, field: &str, zh: String, en: String) -> ApiError {
    ApiError::bad_request(Problem::field(code, field, zh, en))
}

fn conflict(code: &'static str, zh: String, en: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, Problem::new(code, zh, en))
}

fn exec_err(field: &str, e: &ballast_exec::ExecError) -> ApiError {
    bad(e.code(), field, e.message_zh(), e.message_en())
}

/// The guard pipeline for an execution-engine action (`crate::service::evaluate`): denials are
/// audited and answered 403; a stage asking for approval or a warning is returned to the caller,
/// which decides (a run waits for an approval; a warning must be acknowledged).
pub async fn guard(state: &AppState, p: &Principal, action: &Action) -> ApiResult<Decision> {
    crate::service::evaluate(state, p, action).await
}

/// The pipeline for a plain action (no approval path): approval requests are refused with 409.
async fn authorize(state: &AppState, p: &Principal, action: &Action) -> ApiResult<()> {
    crate::service::authorize(state, p, action)
        .await
        .map(|_| ())
}

fn act(kind: ActionKind, perm: Permission, op: &str, target: Target) -> Action {
    Action::new(kind, perm, op, target)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Names of scripts, plans and schedules: 1–100 letters, digits, `-`, `_` or `.`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 100
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_name(field: &str, name: &str) -> ApiResult<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(bad(
            "exec.invalid_name",
            field,
            format!("{field} {name:?} 无效：1–100 个字母、数字、-、_ 或 ."),
            format!("{field} {name:?} is invalid: 1–100 letters, digits, -, _ or ."),
        ))
    }
}

// ------------------------------------------------------------------ scripts

/// A new script or a new version of one.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `bash`, `sh` or `python3`.
    pub language: String,
    pub content: String,
    /// Typed parameters (`ballast_exec::ParamDef`).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub params: Vec<ParamDef>,
    /// What changed in this version.
    #[serde(default)]
    pub note: String,
}

/// Saves a script: creates it with version 1, or adds the next version (draft). Returns the
/// version number.
pub async fn save_script(state: &AppState, p: &Principal, input: &ScriptInput) -> ApiResult<i64> {
    let action = act(
        ActionKind::Mutate,
        Permission::ScriptWrite,
        "script.save",
        Target::global(),
    );
    authorize(state, p, &action).await?;
    check_name("name", &input.name)?;
    let language = Language::parse(&input.language).map_err(|e| exec_err("language", &e))?;
    validate_script(&input.content).map_err(|e| exec_err("content", &e))?;
    let problems = ballast_exec::params::validate_defs(&input.params);
    if let Some(e) = problems.first() {
        return Err(bad(
            e.code(),
            &format!("params.{}", e.name()),
            e.message_zh(),
            e.message_en(),
        ));
    }
    let now = state.clock.now();
    let existing = state.store.script_by_name(&input.name).await?;
    let mut tx = state.store.begin().await?;
    let (script_id, version, created) = match &existing {
        Some(s) => {
            if s.language != language.as_str() {
                return Err(bad(
                    "script.language_fixed",
                    "language",
                    format!("脚本 {} 的语言为 {}，不能改变", s.name, s.language),
                    format!(
                        "script {} is {}; its language cannot change",
                        s.name, s.language
                    ),
                ));
            }
            let versions = state.store.script_versions(s.id).await?;
            (s.id, versions.last().map_or(1, |v| v.version + 1), false)
        }
        None => {
            let id = tx
                .insert_script(&ScriptRow {
                    id: 0,
                    name: input.name.clone(),
                    description: input.description.clone(),
                    language: language.as_str().into(),
                    created_by: p.user.username.clone(),
                    created_at: now,
                })
                .await?;
            (id, 1, true)
        }
    };
    tx.insert_script_version(&ScriptVersionRow {
        script_id,
        version,
        content: input.content.clone(),
        sha256: sha256_hex(&input.content),
        params: serde_json::to_value(&input.params).unwrap_or_default(),
        state: VersionState::Draft.as_str().into(),
        note: input.note.clone(),
        author: p.user.username.clone(),
        created_at: now,
        state_changed_by: None,
        state_changed_at: None,
    })
    .await?;
    let d = draft(
        p,
        if created {
            "script.create"
        } else {
            "script.version.create"
        },
        "script_version",
        Outcome::Success,
    )
    .object(format!("{}@{version}", input.name))
    .after(serde_json::json!({
        "script": input.name, "version": version, "language": language.as_str(),
        "sha256": sha256_hex(&input.content), "bytes": input.content.len(), "note": input.note,
    }));
    tx.commit(vec![d], now).await?;
    Ok(version)
}

async fn script_version(
    state: &AppState,
    name: &str,
    version: i64,
) -> ApiResult<(ScriptRow, ScriptVersionRow)> {
    let s = state
        .store
        .script_by_name(name)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("script {name}")))?;
    let v = state
        .store
        .script_version(s.id, version)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("script {name} version {version}")))?;
    Ok((s, v))
}

/// Moves a script version to another state. Going online needs a second person's approval:
/// this files the request (returns its id); offline and disabled take effect at once.
pub async fn set_script_state(
    state: &AppState,
    p: &Principal,
    name: &str,
    version: i64,
    to: &str,
    reason: &str,
) -> ApiResult<Option<i64>> {
    let action = act(
        ActionKind::Mutate,
        Permission::ScriptWrite,
        "script.state",
        Target::global(),
    );
    authorize(state, p, &action).await?;
    let (s, v) = script_version(state, name, version).await?;
    let to_state = VersionState::parse(to).map_err(|e| exec_err("state", &e))?;
    let from = VersionState::parse(&v.state).map_err(|e| exec_err("state", &e))?;
    let needs = transition(from, to_state).map_err(|e| exec_err("state", &e))?;
    let now = state.clock.now();
    let object = format!("{}@{}", s.name, v.version);
    let mut tx = state.store.begin().await?;
    if needs.0 {
        if let Some(a) = state
            .store
            .approval_for("script.online", "script_version", &object)
            .await?
            && a.state == "pending"
        {
            return Err(conflict(
                "approval.already_pending",
                format!("{object} 已有待审批的上线申请 #{}", a.id),
                format!("{object} already has a pending online request #{}", a.id),
            ));
        }
        let id = tx
            .insert_approval(&ApprovalRow {
                id: 0,
                kind: "script.online".into(),
                object_type: "script_version".into(),
                object_id: object.clone(),
                environment: None,
                requested_by: p.user.username.clone(),
                requested_at: now,
                reason: reason.to_string(),
                payload: serde_json::json!({
                    "script": s.name, "version": v.version, "author": v.author,
                    "sha256": v.sha256, "from": v.state,
                }),
                state: "pending".into(),
                decided_by: None,
                decided_at: None,
                comment: None,
            })
            .await?;
        let d = draft(
            p,
            "script.online.request",
            "script_version",
            Outcome::Success,
        )
        .object(&object)
        .after(serde_json::json!({"approval": id, "reason": reason}));
        tx.commit(vec![d], now).await?;
        return Ok(Some(id));
    }
    tx.set_script_version_state(s.id, v.version, to_state.as_str(), &p.user.username, now)
        .await?;
    let d = draft(p, "script.state", "script_version", Outcome::Success)
        .object(&object)
        .before(serde_json::json!({"state": v.state}))
        .after(serde_json::json!({"state": to_state.as_str(), "reason": reason}));
    tx.commit(vec![d], now).await?;
    Ok(None)
}

// ------------------------------------------------------------------ approvals

/// Approves or rejects a pending request. Whoever asked (and, for a script version, whoever wrote
/// it) cannot approve it. An approved CMDB model change is applied in the same transaction
/// (`cmdb::service::apply_model_change`: refused with nothing applied if the model changed since
/// the request).
pub async fn decide_approval(
    state: &AppState,
    p: &Principal,
    id: i64,
    approve: bool,
    comment: &str,
) -> ApiResult<()> {
    let a = state
        .store
        .approval(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("approval {id}")))?;
    let requester = state.store.user_by_name(&a.requested_by).await?;
    let target = match &a.environment {
        Some(e) => Target::environment(e),
        None => Target::global(),
    };
    let mut action = act(
        ActionKind::Approve,
        Permission::ApprovalApprove,
        "approval.decide",
        target,
    );
    action.requested_by = requester.map(|u| u.id);
    authorize(state, p, &action).await?;
    if a.state != "pending" {
        return Err(conflict(
            "approval.decided",
            format!("审批 #{id} 已处理（{}）", a.state),
            format!("approval #{id} was already decided ({})", a.state),
        ));
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let verdict = if approve { "approved" } else { "rejected" };
    let mut audit = Vec::new();
    match a.kind.as_str() {
        "script.online" => {
            let (name, version) = a
                .object_id
                .rsplit_once('@')
                .and_then(|(n, v)| v.parse::<i64>().ok().map(|v| (n.to_string(), v)))
                .ok_or_else(|| ApiError::not_found(&a.object_id))?;
            let (s, v) = script_version(state, &name, version).await?;
            if let Err(e) = check_approver(&v.author, &p.user.username) {
                let d = draft(p, "approval.decide", "approval", Outcome::Denied)
                    .object(id)
                    .detail(e.message_en());
                audit_only(state, d).await?;
                return Err(ApiError::forbidden(Problem::new(
                    "sod.author_approval",
                    e.message_zh(),
                    e.message_en(),
                )));
            }
            if approve {
                tx.set_script_version_state(
                    s.id,
                    v.version,
                    VersionState::Online.as_str(),
                    &p.user.username,
                    now,
                )
                .await?;
                audit.push(
                    draft(p, "script.state", "script_version", Outcome::Success)
                        .object(&a.object_id)
                        .before(serde_json::json!({"state": v.state}))
                        .after(serde_json::json!({"state": "online", "approval": id})),
                );
            }
        }
        // Rejected: nothing to apply (the `_` arm).
        crate::cmdb::service::MODEL_CHANGE_APPROVAL if approve => {
            audit.push(crate::cmdb::service::apply_model_change(state, &mut tx, p, &a, now).await?);
        }
        "run.start" => {
            let run_id: i64 = a
                .object_id
                .parse()
                .map_err(|_| ApiError::not_found(&a.object_id))?;
            let (status, msg) = if approve {
                ("pending", None)
            } else {
                ("failed", Some(format!("rejected by {}", p.user.username)))
            };
            tx.set_run_status(run_id, status, msg.as_deref(), now)
                .await?;
        }
        "step.approval" => {
            let (run_id, idx) = a
                .object_id
                .split_once(':')
                .and_then(|(r, i)| Some((r.parse::<i64>().ok()?, i.parse::<i64>().ok()?)))
                .ok_or_else(|| ApiError::not_found(&a.object_id))?;
            if approve {
                tx.set_step_status(run_id, idx, "succeeded", Some("approved"), now)
                    .await?;
                tx.set_run_status(run_id, "running", None, now).await?;
            } else {
                let m = format!("rejected by {}", p.user.username);
                tx.set_step_status(run_id, idx, "failed", Some(&m), now)
                    .await?;
                tx.set_run_status(run_id, "failed", Some(&m), now).await?;
            }
        }
        _ => {}
    }
    tx.decide_approval(id, verdict, &p.user.username, now, Some(comment))
        .await?;
    audit.insert(
        0,
        draft(p, "approval.decide", "approval", Outcome::Success)
            .object(id)
            .after(serde_json::json!({"kind": a.kind, "object": a.object_id, "decision": verdict, "comment": comment})),
    );
    tx.commit(audit, now).await?;
    state.exec.wake.notify_one();
    Ok(())
}

// ------------------------------------------------------------------ plans

/// Saves a plan version (creating the plan on first save). Returns the version.
pub async fn save_plan(state: &AppState, p: &Principal, spec: &PlanSpec) -> ApiResult<i64> {
    let action = act(
        ActionKind::Mutate,
        Permission::ScriptWrite,
        "plan.save",
        Target::global(),
    );
    authorize(state, p, &action).await?;
    check_name("name", &spec.name)?;
    let scripts = state.store.scripts().await?;
    let mut known: Vec<(String, Vec<i64>)> = Vec::new();
    for s in &scripts {
        let vs = state.store.script_versions(s.id).await?;
        known.push((s.name.clone(), vs.iter().map(|v| v.version).collect()));
    }
    let lookup = |name: &str, v: Option<u32>| {
        known
            .iter()
            .any(|(n, vs)| n == name && v.is_none_or(|v| vs.contains(&i64::from(v))))
    };
    if let Err(errors) = ballast_exec::validate(spec, &lookup) {
        let en: Vec<String> = errors.iter().map(|e| e.message_en()).collect();
        let zh: Vec<String> = errors.iter().map(|e| e.message_zh()).collect();
        let code = errors.first().map_or("plan.invalid", |e| e.code());
        return Err(bad(code, "steps", zh.join("；"), en.join("; ")));
    }
    let now = state.clock.now();
    let existing = state.store.plan_by_name(&spec.name).await?;
    let mut tx = state.store.begin().await?;
    let (plan_id, version) = match existing {
        Some(pl) => {
            let vs = state.store.plan_versions(pl.id).await?;
            (pl.id, vs.last().map_or(1, |v| v.version + 1))
        }
        None => (
            tx.insert_plan(&PlanRow {
                id: 0,
                name: spec.name.clone(),
                description: spec.description.clone(),
                created_by: p.user.username.clone(),
                created_at: now,
            })
            .await?,
            1,
        ),
    };
    let value = serde_json::to_value(spec).unwrap_or_default();
    tx.insert_plan_version(&PlanVersionRow {
        plan_id,
        version,
        spec: value.clone(),
        author: p.user.username.clone(),
        created_at: now,
    })
    .await?;
    let d = draft(p, "plan.save", "plan_version", Outcome::Success)
        .object(format!("{}@{version}", spec.name))
        .after(value);
    tx.commit(vec![d], now).await?;
    Ok(version)
}

// ------------------------------------------------------------------ runs

/// A request to run a plan.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPlan {
    pub plan: String,
    /// Default: the newest version.
    pub version: Option<i64>,
    pub environment: String,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The starter read and accepts the warnings of a previous attempt.
    #[serde(default)]
    pub acknowledge_warnings: bool,
}

/// A request to run one command on hosts.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartAdhoc {
    pub environment: String,
    /// Target spec: `local`, `agent:HOST`, `agent:*`, `ssh://user@host:port`, comma-separated.
    pub targets: String,
    pub command: String,
    /// `bash` (default), `sh` or `python3`.
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub acknowledge_warnings: bool,
}

/// What starting a run answered.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Started {
    pub run_id: i64,
    /// `pending` or `waiting_approval`.
    pub status: String,
    pub approval_id: Option<i64>,
    /// Warnings the starter acknowledged.
    pub warnings: Vec<String>,
}

/// Picks the script version a step runs: the one named, else the newest online one, else (outside
/// production) the newest draft.
async fn pick_version(
    state: &AppState,
    name: &str,
    version: Option<u32>,
    production: bool,
    step: &str,
) -> ApiResult<(ScriptRow, ScriptVersionRow)> {
    let s = state.store.script_by_name(name).await?.ok_or_else(|| {
        bad(
            "plan.unknown_script",
            step,
            format!("{step}：脚本 {name} 不存在"),
            format!("{step}: script {name} does not exist"),
        )
    })?;
    let versions = state.store.script_versions(s.id).await?;
    let chosen = match version {
        Some(v) => versions.iter().find(|x| x.version == i64::from(v)),
        None => versions
            .iter()
            .rev()
            .find(|x| x.state == "online")
            .or_else(|| {
                (!production)
                    .then(|| versions.iter().rev().find(|x| x.state == "draft"))
                    .flatten()
            }),
    };
    let Some(v) = chosen.cloned() else {
        return Err(bad(
            "script.no_runnable_version",
            step,
            format!("{step}：脚本 {name} 没有可运行的版本（生产环境只运行已上线版本）"),
            format!(
                "{step}: script {name} has no runnable version (production runs online versions only)"
            ),
        ));
    };
    let st = VersionState::parse(&v.state).map_err(|e| exec_err(step, &e))?;
    may_run(st, production).map_err(|e| {
        bad(
            e.code(),
            step,
            format!("{step}：{name}@{}：{}", v.version, e.message_zh()),
            format!("{step}: {name}@{}: {}", v.version, e.message_en()),
        )
    })?;
    Ok((s, v))
}

/// Starts a plan run.
pub async fn start_plan(state: &AppState, p: &Principal, req: &StartPlan) -> ApiResult<Started> {
    let plan = state
        .store
        .plan_by_name(&req.plan)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("plan {}", req.plan)))?;
    let versions = state.store.plan_versions(plan.id).await?;
    let pv = match req.version {
        Some(v) => versions.into_iter().find(|x| x.version == v),
        None => versions.into_iter().last(),
    }
    .ok_or_else(|| ApiError::not_found(&format!("plan {} version", req.plan)))?;
    let spec: PlanSpec = serde_json::from_value(pv.spec.clone()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Problem::new(
                "plan.corrupt",
                format!("计划 {} 数据损坏：{e}", plan.name),
                format!("plan {} is corrupt: {e}", plan.name),
            ),
        )
    })?;
    let production = state.exec.config.is_production(&req.environment);
    let mut steps = Vec::with_capacity(spec.steps.len());
    for (i, s) in spec.steps.iter().enumerate() {
        let label = format!("steps[{i}] {:?}", s.name);
        let action = match &s.kind {
            StepKind::Script {
                script,
                version,
                args,
            } => {
                let (sr, v) = pick_version(state, script, *version, production, &label).await?;
                let language = Language::parse(&sr.language).map_err(|e| exec_err(&label, &e))?;
                FrozenAction::Script {
                    script: sr.name.clone(),
                    script_id: sr.id,
                    version: v.version,
                    sha256: v.sha256.clone(),
                    language,
                    content: v.content.clone(),
                    args: args.clone(),
                }
            }
            StepKind::Command { command, language } => FrozenAction::Command {
                language: *language,
                command: command.clone(),
            },
            StepKind::File { source, dest, mode } => FrozenAction::File {
                content: source.clone(),
                dest: dest.clone(),
                mode: mode.clone(),
            },
            StepKind::Confirm { message } => FrozenAction::Confirm {
                message: message.clone(),
            },
            StepKind::Approval { message } => FrozenAction::Approval {
                message: message.clone(),
            },
        };
        steps.push(FrozenStep {
            name: s.name.clone(),
            action,
            targets: s.targets.clone(),
            timeout_secs: s.timeout_secs,
            on_failure: s.on_failure,
            batch: s.batch.clone(),
            concurrency: s.concurrency,
        });
    }
    let run_spec = RunSpec {
        environment: req.environment.clone(),
        production,
        plan: Some(PlanRef {
            id: plan.id,
            name: plan.name.clone(),
            version: pv.version,
        }),
        variables: spec.variables.clone(),
        values: BTreeMap::new(),
        steps,
        acknowledged: Vec::new(),
    };
    start(
        state,
        p,
        run_spec,
        &req.vars,
        "plan",
        &plan.name,
        req.acknowledge_warnings,
    )
    .await
}

/// Starts an ad-hoc command run.
pub async fn start_adhoc(state: &AppState, p: &Principal, req: &StartAdhoc) -> ApiResult<Started> {
    let language = match req.language.as_deref() {
        None => Language::Bash,
        Some(l) => Language::parse(l).map_err(|e| exec_err("language", &e))?,
    };
    if req.command.trim().is_empty() {
        return Err(bad(
            "exec.empty_command",
            "command",
            "命令为空".into(),
            "the command is empty".into(),
        ));
    }
    validate_script(&req.command).map_err(|e| exec_err("command", &e))?;
    ballast_exec::parse_targets(&req.targets).map_err(|e| {
        bad(
            "exec.targets_invalid",
            "targets",
            format!("目标无效：{}", e.message_zh()),
            format!("invalid targets: {}", e.message_en()),
        )
    })?;
    let timeout = req.timeout_secs.unwrap_or(600);
    if timeout == 0 || timeout > 86_400 {
        return Err(bad(
            "exec.timeout_invalid",
            "timeout_secs",
            "超时须在 1–86400 秒之间".into(),
            "timeout_secs must be 1–86400".into(),
        ));
    }
    let run_spec = RunSpec {
        environment: req.environment.clone(),
        production: state.exec.config.is_production(&req.environment),
        plan: None,
        variables: Vec::new(),
        values: BTreeMap::new(),
        steps: vec![FrozenStep {
            name: "command".into(),
            action: FrozenAction::Command {
                language,
                command: req.command.clone(),
            },
            // Ad-hoc targets are literal: `$` in them is not a variable.
            targets: Some(req.targets.replace('$', "$$")),
            timeout_secs: timeout,
            on_failure: ballast_exec::FailurePolicy::Ignore,
            batch: None,
            concurrency: None,
        }],
        acknowledged: Vec::new(),
    };
    let mut name: String = req.command.chars().take(60).collect();
    if req.command.chars().count() > 60 {
        name.push('…');
    }
    start(
        state,
        p,
        run_spec,
        &BTreeMap::new(),
        "adhoc",
        &name,
        req.acknowledge_warnings,
    )
    .await
}

async fn start(
    state: &AppState,
    p: &Principal,
    mut spec: RunSpec,
    given: &BTreeMap<String, String>,
    kind: &str,
    name: &str,
    acknowledge: bool,
) -> ApiResult<Started> {
    if !state.config.environments.contains(&spec.environment) {
        return Err(bad(
            "environment.unknown",
            "environment",
            format!("环境 {} 不是本平台管理的环境", spec.environment),
            format!(
                "environment {} is not managed by this deployment",
                spec.environment
            ),
        ));
    }
    // Variables: every problem at once, naming the variable.
    let values = ballast_exec::resolve(&spec.variables, given).map_err(|errs| {
        let en: Vec<String> = errs.iter().map(|e| e.message_en()).collect();
        let zh: Vec<String> = errs.iter().map(|e| e.message_zh()).collect();
        let field = errs
            .first()
            .map_or_else(|| "vars".to_string(), |e| format!("vars.{}", e.name()));
        let code = errs.first().map_or("params.invalid", |e| e.code());
        bad(code, &field, zh.join("；"), en.join("; "))
    })?;
    // Every template must render (unknown variables are caught before anything runs).
    for (i, s) in spec.steps.iter().enumerate() {
        let mut texts: Vec<&str> = Vec::new();
        if let Some(t) = &s.targets {
            texts.push(t);
        }
        match &s.action {
            FrozenAction::Script { args, .. } => texts.extend(args.iter().map(String::as_str)),
            FrozenAction::Command { command, .. } if kind == "plan" => texts.push(command),
            FrozenAction::File { dest, .. } => texts.push(dest),
            FrozenAction::Confirm { message } | FrozenAction::Approval { message } => {
                texts.push(message);
            }
            _ => {}
        }
        for t in texts {
            if let Err(e) = ballast_exec::template::render(t, &values) {
                return Err(exec_err(&format!("steps[{i}]"), &e));
            }
        }
    }
    spec.values = values.masked();
    let secrets: BTreeMap<String, String> = values
        .values()
        .iter()
        .filter(|v| v.secret)
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    let mut action = act(
        ActionKind::Execute,
        Permission::JobRun,
        "job.run",
        Target::environment(&spec.environment),
    );
    for s in &spec.steps {
        if let Some((lang, text)) = s.action.content() {
            action.content.push(Content {
                label: format!("step {:?}", s.name),
                language: lang.as_str().into(),
                text: if kind == "adhoc" {
                    text
                } else {
                    ballast_exec::template::render(&text, &values).unwrap_or(text)
                },
            });
        }
    }
    let decision = guard(state, p, &action).await?;
    let warnings: Vec<String> = decision
        .warnings()
        .into_iter()
        .map(|(zh, en)| format!("{zh} / {en}"))
        .collect();
    if !warnings.is_empty() && !acknowledge {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            Problem::new(
                "guard.warning_unacknowledged",
                format!(
                    "请确认以下提示后重试（acknowledge_warnings）：{}",
                    warnings.join("；")
                ),
                format!(
                    "acknowledge these warnings and retry (acknowledge_warnings): {}",
                    warnings.join("; ")
                ),
            ),
        ));
    }
    spec.acknowledged = warnings.clone();
    let approval_msgs: Vec<String> = decision
        .trail
        .iter()
        .filter_map(|(_, v)| match v {
            ballast_core::guard::Verdict::NeedsApproval {
                message_zh,
                message_en,
            } => Some(format!("{message_zh} / {message_en}")),
            _ => None,
        })
        .collect();
    let needs_approval = !approval_msgs.is_empty();
    let now = state.clock.now();
    let sealed = (!secrets.is_empty()).then(|| {
        state.exec.sealer.seal(
            "run-secrets",
            serde_json::to_string(&secrets)
                .unwrap_or_default()
                .as_bytes(),
        )
    });
    let spec_value = serde_json::to_value(&spec).unwrap_or_default();
    let status = if needs_approval {
        "waiting_approval"
    } else {
        "pending"
    };
    let run = RunRow {
        id: 0,
        kind: kind.into(),
        plan_id: spec.plan.as_ref().map(|p| p.id),
        plan_version: spec.plan.as_ref().map(|p| p.version),
        name: name.into(),
        environment: spec.environment.clone(),
        status: status.into(),
        requested_by: p.user.username.clone(),
        created_at: now,
        started_at: None,
        finished_at: None,
        spec: spec_value,
        secrets_sealed: sealed,
        current_step: 0,
        owner: None,
        lease_until: None,
        message: needs_approval.then(|| approval_msgs.join("; ")),
        updated_at: now,
    };
    let steps: Vec<StepRow> = spec
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepRow {
            run_id: 0,
            idx: i64::try_from(i).unwrap_or(i64::MAX),
            name: s.name.clone(),
            kind: s.action.kind().into(),
            status: "pending".into(),
            attempt: 0,
            started_at: None,
            finished_at: None,
            message: None,
        })
        .collect();
    let mut tx = state.store.begin().await?;
    let run_id = tx.insert_run(&run, &steps).await?;
    let script_versions: Vec<String> = spec
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            FrozenAction::Script {
                script,
                version,
                sha256,
                ..
            } => Some(format!("{script}@{version} sha256:{sha256}")),
            _ => None,
        })
        .collect();
    let mut audit = vec![
        draft(p, "job.run.start", "run", Outcome::Success)
            .object(run_id)
            .environment(Some(spec.environment.clone()))
            .after(serde_json::json!({
                "kind": kind, "name": name, "plan": spec.plan, "scripts": script_versions,
                "vars": spec.values, "status": status, "acknowledged": warnings,
                "via": p.via.label(),
            })),
    ];
    let mut approval_id = None;
    if needs_approval {
        let id = tx
            .insert_approval(&ApprovalRow {
                id: 0,
                kind: "run.start".into(),
                object_type: "run".into(),
                object_id: run_id.to_string(),
                environment: Some(spec.environment.clone()),
                requested_by: p.user.username.clone(),
                requested_at: now,
                reason: approval_msgs.join("; "),
                payload: serde_json::json!({"run": run_id, "name": name, "findings": approval_msgs}),
                state: "pending".into(),
                decided_by: None,
                decided_at: None,
                comment: None,
            })
            .await?;
        approval_id = Some(id);
        audit.push(
            draft(p, "approval.request", "approval", Outcome::Success)
                .object(id)
                .environment(Some(spec.environment.clone()))
                .detail(approval_msgs.join("; ")),
        );
    }
    tx.commit(audit, now).await?;
    state.exec.wake.notify_one();
    Ok(Started {
        run_id,
        status: status.into(),
        approval_id,
        warnings,
    })
}

/// The run's variable values with secrets unsealed (for execution only).
pub fn run_values(
    state: &AppState,
    run: &RunRow,
    spec: &RunSpec,
) -> Result<ballast_exec::Resolved, String> {
    let mut given = spec.values.clone();
    if let Some(sealed) = &run.secrets_sealed {
        let plain = state
            .exec
            .sealer
            .open("run-secrets", sealed)
            .map_err(|e| format!("secret variables: {e}"))?;
        let secrets: BTreeMap<String, String> =
            serde_json::from_slice(&plain).map_err(|e| format!("secret variables: {e}"))?;
        given.extend(secrets);
    }
    // Masked placeholders of secrets never given are not values.
    for d in &spec.variables {
        if matches!(d.ty, ballast_exec::ParamType::Secret)
            && given.get(&d.name).is_some_and(|v| v == "******")
        {
            given.remove(&d.name);
        }
    }
    // Defaults were applied at start; keep only declared names.
    given.retain(|k, _| spec.variables.iter().any(|d| &d.name == k));
    ballast_exec::resolve(&spec.variables, &given).map_err(|errs| {
        errs.iter()
            .map(|e| e.message_en())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

pub fn mask_with(values: &ballast_exec::Resolved, text: &str) -> String {
    ballast_exec::mask(text, &values.secrets())
}

async fn load_run(state: &AppState, id: i64) -> ApiResult<RunRow> {
    state
        .store
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("run {id}")))
}

fn run_action(op: &str, run: &RunRow) -> Action {
    act(
        ActionKind::Execute,
        Permission::JobRun,
        op,
        Target::environment(&run.environment),
    )
}

/// Cancels a run: running tasks are stopped (their whole process groups killed), pending ones
/// never start.
pub async fn cancel_run(state: &AppState, p: &Principal, id: i64, reason: &str) -> ApiResult<()> {
    let run = load_run(state, id).await?;
    authorize(state, p, &run_action("job.run.cancel", &run)).await?;
    let terminal = ["succeeded", "failed", "cancelled", "blocked"];
    if terminal.contains(&run.status.as_str()) {
        return Err(conflict(
            "run.finished",
            format!("作业 #{id} 已结束（{}）", run.status),
            format!("run #{id} has already finished ({})", run.status),
        ));
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let msg = format!("cancelled by {}: {reason}", p.user.username);
    tx.set_run_status(id, "cancelled", Some(&msg), now).await?;
    let d = draft(p, "job.run.cancel", "run", Outcome::Success)
        .object(id)
        .environment(Some(run.environment.clone()))
        .before(serde_json::json!({"status": run.status}))
        .detail(reason.to_string());
    tx.commit(vec![d], now).await?;
    if let Some(t) = state
        .exec
        .active
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
    {
        t.cancel();
    }
    Ok(())
}

/// Pauses a run at its next step boundary (tasks already running finish; no new step starts).
pub async fn pause_run(state: &AppState, p: &Principal, id: i64, reason: &str) -> ApiResult<()> {
    let run = load_run(state, id).await?;
    authorize(state, p, &run_action("job.run.pause", &run)).await?;
    if run.status != "running" && run.status != "pending" {
        return Err(conflict(
            "run.not_running",
            format!("作业 #{id} 未在执行（{}）", run.status),
            format!("run #{id} is not running ({})", run.status),
        ));
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let msg = format!("paused by {}: {reason}", p.user.username);
    tx.set_run_status(id, "paused", Some(&msg), now).await?;
    let d = draft(p, "job.run.pause", "run", Outcome::Success)
        .object(id)
        .environment(Some(run.environment.clone()))
        .detail(reason.to_string());
    tx.commit(vec![d], now).await?;
    Ok(())
}

/// Resumes a run a person paused. A step paused by its failure policy needs a decision instead.
pub async fn resume_run(state: &AppState, p: &Principal, id: i64) -> ApiResult<()> {
    let run = load_run(state, id).await?;
    authorize(state, p, &run_action("job.run.resume", &run)).await?;
    let waiting = state.store.steps(id).await?.into_iter().find(|s| {
        matches!(
            s.status.as_str(),
            "paused" | "waiting_confirmation" | "waiting_approval"
        )
    });
    if run.status != "paused" || waiting.is_some() {
        return Err(conflict(
            "run.not_resumable",
            format!(
                "作业 #{id} 不能继续（{}）：暂停的步骤需要确认、审批或决定",
                run.status
            ),
            format!(
                "run #{id} cannot be resumed ({}): a waiting step needs its confirmation, approval or decision",
                run.status
            ),
        ));
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.set_run_status(id, "running", None, now).await?;
    let d = draft(p, "job.run.resume", "run", Outcome::Success)
        .object(id)
        .environment(Some(run.environment.clone()));
    tx.commit(vec![d], now).await?;
    state.exec.wake.notify_one();
    Ok(())
}

/// Confirms a manual-confirmation step.
pub async fn confirm_step(state: &AppState, p: &Principal, id: i64, idx: i64) -> ApiResult<()> {
    let run = load_run(state, id).await?;
    authorize(state, p, &run_action("job.step.confirm", &run)).await?;
    let step = state
        .store
        .steps(id)
        .await?
        .into_iter()
        .find(|s| s.idx == idx)
        .ok_or_else(|| ApiError::not_found(&format!("run {id} step {idx}")))?;
    if step.status != "waiting_confirmation" {
        return Err(conflict(
            "step.not_waiting",
            format!("步骤 {idx} 不在等待确认（{}）", step.status),
            format!(
                "step {idx} is not waiting for confirmation ({})",
                step.status
            ),
        ));
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let m = format!("confirmed by {}", p.user.username);
    tx.set_step_status(id, idx, "succeeded", Some(&m), now)
        .await?;
    tx.set_run_status(id, "running", None, now).await?;
    let d = draft(p, "job.step.confirm", "run", Outcome::Success)
        .object(id)
        .environment(Some(run.environment.clone()))
        .after(serde_json::json!({"step": idx, "name": step.name}));
    tx.commit(vec![d], now).await?;
    state.exec.wake.notify_one();
    Ok(())
}

/// An operator's decision on a paused step.
pub async fn decide_step(
    state: &AppState,
    p: &Principal,
    id: i64,
    idx: i64,
    decision: StepDecision,
) -> ApiResult<()> {
    let run = load_run(state, id).await?;
    authorize(state, p, &run_action("job.step.decide", &run)).await?;
    let step = state
        .store
        .steps(id)
        .await?
        .into_iter()
        .find(|s| s.idx == idx)
        .ok_or_else(|| ApiError::not_found(&format!("run {id} step {idx}")))?;
    if step.status != "paused" {
        return Err(conflict(
            "step.not_paused",
            format!("步骤 {idx} 未暂停（{}）", step.status),
            format!("step {idx} is not paused ({})", step.status),
        ));
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let who = &p.user.username;
    let (step_status, step_msg, run_status, run_msg) = match decision {
        StepDecision::RetryFailed => ("pending", "retry_failed".to_string(), "running", None),
        StepDecision::Skip => ("skipped", format!("skipped by {who}"), "running", None),
        StepDecision::Abort => (
            "failed",
            format!("aborted by {who}"),
            "failed",
            Some(format!("aborted by {who}")),
        ),
    };
    tx.set_step_status(id, idx, step_status, Some(&step_msg), now)
        .await?;
    tx.set_run_status(id, run_status, run_msg.as_deref(), now)
        .await?;
    let d = draft(p, "job.step.decide", "run", Outcome::Success)
        .object(id)
        .environment(Some(run.environment.clone()))
        .after(serde_json::json!({"step": idx, "decision": decision}));
    tx.commit(vec![d], now).await?;
    state.exec.wake.notify_one();
    Ok(())
}

/// Files the approval request of an approval step (once), on behalf of the run's requester.
pub async fn request_step_approval(
    state: &AppState,
    run: &RunRow,
    step: &StepRow,
    message: &str,
) -> Result<(), ballast_store::StoreError> {
    let object = format!("{}:{}", run.id, step.idx);
    if let Some(a) = state
        .store
        .approval_for("step.approval", "run_step", &object)
        .await?
        && a.state == "pending"
    {
        return Ok(());
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let id = tx
        .insert_approval(&ApprovalRow {
            id: 0,
            kind: "step.approval".into(),
            object_type: "run_step".into(),
            object_id: object.clone(),
            environment: Some(run.environment.clone()),
            requested_by: run.requested_by.clone(),
            requested_at: now,
            reason: message.to_string(),
            payload: serde_json::json!({"run": run.id, "step": step.idx, "name": step.name}),
            state: "pending".into(),
            decided_by: None,
            decided_at: None,
            comment: None,
        })
        .await?;
    let d = AuditDraft::new(
        Actor::system(),
        "approval.request",
        "approval",
        Outcome::Success,
    )
    .object(id)
    .environment(Some(run.environment.clone()))
    .detail(format!(
        "approval step {object} of run {} requested by {}",
        run.id, run.requested_by
    ));
    tx.commit(vec![d], now).await?;
    Ok(())
}

/// Failure notification by webhook (best effort; failures are logged, never block a run).
pub async fn notify(state: &AppState, run: &RunRow, event: &str, message: Option<&str>) {
    let Some(hook) = &state.exec.webhook else {
        return;
    };
    let body = serde_json::json!({
        "event": event, "run_id": run.id, "name": run.name, "environment": run.environment,
        "requested_by": run.requested_by, "message": message,
        "at": state.clock.now().to_rfc3339(),
    });
    hook.post(&body).await;
}

// ------------------------------------------------------------------ agents and SSH

fn manage(op: &str, target: Target) -> Action {
    act(ActionKind::Mutate, Permission::ExecManage, op, target)
}

/// Creates a one-time agent enrolment token for an environment. Returns the token text (shown
/// once) and its expiry.
pub async fn create_enroll_token(
    state: &AppState,
    p: &Principal,
    environment: &str,
) -> ApiResult<(String, chrono::DateTime<chrono::Utc>)> {
    authorize(
        state,
        p,
        &manage(
            "agent.enroll_token.create",
            Target::environment(environment),
        ),
    )
    .await?;
    if !state.config.environments.iter().any(|e| e == environment) {
        return Err(bad(
            "environment.unknown",
            "environment",
            format!("环境 {environment} 不是本平台管理的环境"),
            format!("environment {environment} is not managed by this deployment"),
        ));
    }
    let token = ballast_agent::pki::EnrollToken::generate(&state.exec.ca);
    let secret = token.secret.clone();
    let now = state.clock.now();
    let expires = now + chrono::Duration::hours(state.exec.config.enroll_token_hours.max(1));
    let hash = ballast_agent::pki::hash_secret(&secret);
    let mut tx = state.store.begin().await?;
    tx.insert_enroll_token(&EnrollTokenRow {
        hash: hash.clone(),
        environment: environment.into(),
        created_by: p.user.username.clone(),
        created_at: now,
        expires_at: expires,
        used_at: None,
        agent_id: None,
    })
    .await?;
    let d = draft(
        p,
        "agent.enroll_token.create",
        "enroll_token",
        Outcome::Success,
    )
    .object(&hash[..16])
    .environment(Some(environment.into()))
    .after(serde_json::json!({"expires_at": expires}));
    tx.commit(vec![d], now).await?;
    Ok((token.encode(), expires))
}

/// Revokes an agent: its certificate is refused from now on and its connection closed.
pub async fn revoke_agent(state: &AppState, p: &Principal, id: &str) -> ApiResult<()> {
    let agent = state
        .store
        .agent(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("agent {id}")))?;
    authorize(
        state,
        p,
        &manage("agent.revoke", Target::environment(&agent.environment)),
    )
    .await?;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.revoke_agent(id, &p.user.username, now).await?;
    let d = draft(p, "agent.revoke", "agent", Outcome::Success)
        .object(id)
        .environment(Some(agent.environment.clone()))
        .after(serde_json::json!({"hostname": agent.hostname}));
    tx.commit(vec![d], now).await?;
    state.exec.hub.revoke(id);
    Ok(())
}

/// An SSH credential to store (the secret is sealed, never shown again).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialInput {
    pub name: String,
    pub username: String,
    /// `password` or `key`.
    pub kind: String,
    /// The password or the private key (OpenSSH PEM).
    pub secret: String,
}

impl std::fmt::Display for CredentialInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.username, self.kind)
    }
}

pub async fn put_credential(state: &AppState, p: &Principal, c: &CredentialInput) -> ApiResult<()> {
    authorize(state, p, &manage("ssh.credential.put", Target::global())).await?;
    if c.name.trim().is_empty() || c.username.trim().is_empty() {
        return Err(bad(
            "ssh.credential_invalid",
            "name",
            "名称和用户名不能为空".into(),
            "name and username must not be empty".into(),
        ));
    }
    if c.kind != "password" && c.kind != "key" {
        return Err(bad(
            "ssh.credential_invalid",
            "kind",
            format!("类型 {:?} 无效，应为 password 或 key", c.kind),
            format!("kind {:?} is invalid: password or key", c.kind),
        ));
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.put_ssh_credential(&SshCredentialRow {
        name: c.name.clone(),
        username: c.username.clone(),
        kind: c.kind.clone(),
        secret_sealed: state
            .exec
            .sealer
            .seal(&format!("ssh:{}", c.name), c.secret.as_bytes()),
        created_by: p.user.username.clone(),
        created_at: now,
    })
    .await?;
    let d = draft(p, "ssh.credential.put", "ssh_credential", Outcome::Success)
        .object(&c.name)
        .after(serde_json::json!({"username": c.username, "kind": c.kind}));
    tx.commit(vec![d], now).await?;
    Ok(())
}

/// Pins a host key: the key line given, or (when `key_line` is empty) the key `ssh-keyscan`
/// fetches now — the response shows its fingerprint for the person to compare.
pub async fn pin_host_key(
    state: &AppState,
    p: &Principal,
    host: &str,
    port: u16,
    key_line: &str,
) -> ApiResult<HostKeyRow> {
    authorize(state, p, &manage("ssh.host_key.pin", Target::global())).await?;
    let line = if key_line.trim().is_empty() {
        keyscan(host, port).await?
    } else {
        key_line.trim().to_string()
    };
    let fingerprint = ballast_ssh::fingerprint_sha256(&line).map_err(|e| {
        bad(
            "ssh.host_key_invalid",
            "key_line",
            format!("主机公钥无效：{}", e.message_zh()),
            format!("invalid host key: {}", e.message_en()),
        )
    })?;
    let now = state.clock.now();
    let row = HostKeyRow {
        host: host.into(),
        port: i64::from(port),
        key_line: line,
        fingerprint: fingerprint.clone(),
        pinned_by: p.user.username.clone(),
        pinned_at: now,
    };
    let before = state.store.host_key(host, i64::from(port)).await?;
    let mut tx = state.store.begin().await?;
    tx.pin_host_key(&row).await?;
    let d = draft(p, "ssh.host_key.pin", "host_key", Outcome::Success)
        .object(format!("{host}:{port}"))
        .before(serde_json::json!({"fingerprint": before.map(|b| b.fingerprint)}))
        .after(serde_json::json!({"fingerprint": fingerprint}));
    tx.commit(vec![d], now).await?;
    Ok(row)
}

async fn keyscan(host: &str, port: u16) -> ApiResult<String> {
    let out = tokio::process::Command::new("ssh-keyscan")
        .args([
            "-T",
            "5",
            "-t",
            "ed25519,ecdsa,rsa",
            "-p",
            &port.to_string(),
            host,
        ])
        .output()
        .await
        .map_err(|e| {
            bad(
                "ssh.keyscan_failed",
                "host",
                format!("无法运行 ssh-keyscan：{e}"),
                format!("cannot run ssh-keyscan: {e}"),
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `host key-type base64`; prefer ed25519.
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let _host = parts.next()?;
            let kind = parts.next()?;
            let key = parts.next()?;
            Some(format!("{kind} {key}"))
        })
        .collect();
    lines.sort_by_key(|l| !l.starts_with("ssh-ed25519"));
    lines.into_iter().next().ok_or_else(|| {
        bad(
            "ssh.keyscan_failed",
            "host",
            format!("{host}:{port} 未返回主机公钥"),
            format!("{host}:{port} returned no host key"),
        )
    })
}

/// Saves the dangerous-command rules (TOML); they apply to every later guard evaluation.
pub async fn set_danger_rules(
    state: &AppState,
    p: &Principal,
    toml_text: &str,
) -> ApiResult<usize> {
    authorize(state, p, &manage("danger.rules.set", Target::global())).await?;
    let rules = ballast_exec::danger::rules_from_toml(toml_text).map_err(|e| {
        bad(
            "danger.rules_invalid",
            "rules",
            format!("规则无效：{e}"),
            format!("invalid rules: {e}"),
        )
    })?;
    let now = state.clock.now();
    let before = state.exec.danger.source();
    let mut tx = state.store.begin().await?;
    tx.put_setting(&SettingRow {
        key: super::danger::SETTING.into(),
        value: serde_json::Value::String(toml_text.to_string()),
        updated_by: p.user.username.clone(),
        updated_at: now,
    })
    .await?;
    let d = draft(p, "danger.rules.set", "setting", Outcome::Success)
        .object(super::danger::SETTING)
        .before(serde_json::json!({"rules": before}))
        .after(serde_json::json!({"rules": toml_text}));
    tx.commit(vec![d], now).await?;
    let n = rules.len();
    state.exec.danger.set(rules, Some(toml_text.to_string()));
    Ok(n)
}
