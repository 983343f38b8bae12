//! The run driver. Every replica runs [`spawn`]'s loop: it claims runs from the database
//! (`ExecStore::claim_runs`: each run has one owner at a time, with a lease the driver renews)
//! and drives each claimed run step by step until it finishes or waits for a person.
//!
//! Durable state and recovery: every task row is written before its host is contacted and
//! updated when it finishes; output chunks are appended as they arrive. A replica that dies
//! mid-step leaves tasks `dispatched`/`running` and the step `running`; whoever claims the run
//! next finds them there, marks them `unknown` — never re-runs them — and pauses the step for an
//! operator's decision (retry the failed and unknown hosts, skip, or abort).
//!
//! Human decisions (confirmations, approvals, pause decisions, cancellation) are made by
//! `super::service` in audited transactions that set the step and run statuses; the driver only
//! reads them. Policy (what a step's results mean) is `ballast_exec::status`; this module keeps
//! none of its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_core::authz::{Permission, Target};
use ballast_core::guard::{Action, ActionKind, Content, GuardContext, Principal, Via};
use ballast_exec::status::{run_status_after_step, step_status_after};
use ballast_exec::{
    BatchExpr, Resolved as Values, RunStatus, StepStatus, StepVerdict, TargetRef, TaskStatus,
    retry_delay, step_outcome,
};
use ballast_runner::CancelToken;
use ballast_store::{OutputChunkRow, RunRow, StepRow, TaskRow};
use chrono::Duration;
use tokio::sync::{Semaphore, mpsc};

use super::model::{FrozenAction, FrozenStep, RunSpec, file_script};
use super::transport::{self, Finished, OutChunk, Resolved, Work};
use crate::state::AppState;

/// How long a claim lasts without renewal.
const LEASE_SECS: i64 = 30;
/// Output chunks in flight per task between its transport and the recorder (bounded: a task
/// producing output faster than it is stored waits, and so does its host's connection).
const OUTPUT_CHANNEL: usize = super::transport::TASK_CHANNEL;
/// How often the driver renews its lease and looks for a cancellation.
const RENEW_EVERY: StdDuration = StdDuration::from_secs(2);

/// Why driving a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error(transparent)]
    Store(#[from] ballast_store::StoreError),
    #[error("lease lost")]
    LeaseLost,
    #[error(transparent)]
    Record(#[from] super::recorder::RecordError),
}

type DriveResult<T> = Result<T, DriveError>;

/// Starts the claim loop of this replica.
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = tick(&state).await {
                tracing::warn!("exec engine: {e}");
            }
            let rt = &state.exec;
            tokio::select! {
                () = rt.wake.notified() => {}
                () = tokio::time::sleep(StdDuration::from_millis(500)) => {}
            }
        }
    });
}

/// One round: claim what is claimable and start a driver for each run not already driven here.
pub async fn tick(state: &AppState) -> Result<usize, ballast_store::StoreError> {
    let rt = &state.exec;
    let now = state.clock.now();
    let runs = state
        .store
        .claim_runs(&rt.owner, now, now + Duration::seconds(LEASE_SECS), 64)
        .await?;
    let mut started = 0;
    for run in runs {
        let token = {
            let mut active = rt.active.lock().unwrap_or_else(|e| e.into_inner());
            if active.contains_key(&run.id) {
                continue;
            }
            let t = CancelToken::new();
            active.insert(run.id, t.clone());
            t
        };
        started += 1;
        let st = state.clone();
        tokio::spawn(async move {
            let id = run.id;
            let result = drive(&st, run, token).await;
            if let Err(e) = result {
                tracing::warn!("run {id}: {e}");
            }
            st.exec
                .active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            let _ = st.store.release_run(id, &st.exec.owner).await;
        });
    }
    Ok(started)
}

/// Keeps the lease while a run is driven; cancels the run's tasks when a person cancels it.
fn keeper(state: &AppState, run_id: i64, cancel: CancelToken) -> tokio::task::JoinHandle<()> {
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let until = st.clock.now() + Duration::seconds(LEASE_SECS);
            match st.store.renew_run(run_id, &st.exec.owner, until).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("run {run_id}: lease taken by another replica");
                    cancel.cancel();
                    return;
                }
                Err(e) => tracing::warn!("run {run_id}: renewing the lease: {e}"),
            }
            if let Ok(Some(r)) = st.store.run(run_id).await
                && r.status == RunStatus::Cancelled.as_str()
            {
                cancel.cancel();
                return;
            }
        }
    })
}

struct Ctx<'a> {
    state: &'a AppState,
    run: RunRow,
    spec: RunSpec,
    values: Values,
    cancel: CancelToken,
}

impl Ctx<'_> {
    async fn progress(&self, status: RunStatus, step: i64, msg: Option<&str>) -> DriveResult<()> {
        if self.cancel.is_cancelled() {
            return Ok(());
        }
        self.state
            .store
            .update_run_progress(
                self.run.id,
                &self.state.exec.owner,
                status.as_str(),
                step,
                msg,
                self.state.clock.now(),
            )
            .await
            .map_err(|e| match e {
                ballast_store::StoreError::Conflict(_) => DriveError::LeaseLost,
                other => DriveError::Store(other),
            })
    }
}

/// Drives one claimed run until it finishes or waits for a person.
async fn drive(state: &AppState, run: RunRow, cancel: CancelToken) -> DriveResult<()> {
    let status = RunStatus::parse(&run.status).unwrap_or(RunStatus::Failed);
    if matches!(status, RunStatus::Paused | RunStatus::WaitingApproval) {
        // Nothing to do until a person decides.
        return Ok(());
    }
    let spec: RunSpec = match serde_json::from_value(run.spec.clone()) {
        Ok(s) => s,
        Err(e) => {
            return finish(
                state,
                &run,
                RunStatus::Failed,
                &format!("corrupt run spec: {e}"),
            )
            .await;
        }
    };
    let values = match super::service::run_values(state, &run, &spec) {
        Ok(v) => v,
        Err(msg) => return finish(state, &run, RunStatus::Failed, &msg).await,
    };
    let keep = keeper(state, run.id, cancel.clone());
    let ctx = Ctx {
        state,
        run,
        spec,
        values,
        cancel,
    };
    let r = drive_steps(&ctx).await;
    keep.abort();
    if let Err(DriveError::LeaseLost) = &r
        && let Ok(Some(now)) = state.store.run(ctx.run.id).await
        && now.status == RunStatus::Cancelled.as_str()
    {
        // A person cancelled between two of the driver's writes: clean up as for any cancel.
        ctx.cancel.cancel();
        return cancelled(&ctx, 0).await;
    }
    match r {
        // Paused by a person, or claimed by another replica: nothing more to do here.
        Err(DriveError::LeaseLost) => Ok(()),
        other => other,
    }
}

async fn drive_steps(ctx: &Ctx<'_>) -> DriveResult<()> {
    let state = ctx.state;
    let run_id = ctx.run.id;
    let steps = state.store.steps(run_id).await?;
    if ctx.run.status == RunStatus::Pending.as_str() {
        ctx.progress(RunStatus::Running, 0, None).await?;
    }
    let total = steps.len();
    for (idx, step) in steps.into_iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            return cancelled(ctx, idx).await;
        }
        let frozen = match ctx.spec.steps.get(idx) {
            Some(f) => f.clone(),
            None => {
                return finish(state, &ctx.run, RunStatus::Failed, "run spec lost a step").await;
            }
        };
        let last = idx + 1 == total;
        let st = StepStatus::parse(&step.status).unwrap_or(StepStatus::Failed);
        match st {
            StepStatus::Succeeded | StepStatus::Skipped => continue,
            StepStatus::Failed => {
                // Failed steps the run went on from (policy `ignore`) were already passed; a
                // step an operator aborted ended the run with it.
                if step.message.as_deref() == Some("continued") {
                    continue;
                }
                return finish(state, &ctx.run, RunStatus::Failed, "step failed").await;
            }
            StepStatus::Cancelled => return cancelled(ctx, idx).await,
            StepStatus::Paused | StepStatus::WaitingConfirmation | StepStatus::WaitingApproval => {
                // A decision is still awaited; the run status says paused/waiting.
                return Ok(());
            }
            StepStatus::Pending | StepStatus::Running => {}
        }
        let idx_i = i64::try_from(idx).unwrap_or(i64::MAX);
        ctx.progress(RunStatus::Running, idx_i, None).await?;
        match &frozen.action {
            FrozenAction::Confirm { message } => {
                wait_for_person(
                    ctx,
                    &step,
                    StepStatus::WaitingConfirmation,
                    RunStatus::Paused,
                    message,
                )
                .await?;
                return Ok(());
            }
            FrozenAction::Approval { message } => {
                super::service::request_step_approval(state, &ctx.run, &step, message).await?;
                wait_for_person(
                    ctx,
                    &step,
                    StepStatus::WaitingApproval,
                    RunStatus::WaitingApproval,
                    message,
                )
                .await?;
                return Ok(());
            }
            _ => {}
        }
        // Guards again at execution time: the run may have waited; the market may have opened.
        if let Some(denial) = execution_guard(ctx, &frozen).await? {
            let mut s = step.clone();
            s.status = StepStatus::Failed.as_str().into();
            s.message = Some(denial.clone());
            s.finished_at = Some(state.clock.now());
            state.store.update_step(&s).await?;
            return finish(state, &ctx.run, RunStatus::Blocked, &denial).await;
        }
        let verdict = execute_step(ctx, &step, &frozen).await?;
        if ctx.cancel.is_cancelled() {
            return cancelled(ctx, idx).await;
        }
        let tasks = latest_tasks(state, run_id, idx_i).await?;
        let statuses: Vec<TaskStatus> = tasks
            .iter()
            .map(|t| TaskStatus::parse(&t.status).unwrap_or(TaskStatus::Unknown))
            .collect();
        let mut s = state
            .store
            .steps(run_id)
            .await?
            .into_iter()
            .nth(idx)
            .unwrap_or(step.clone());
        let new_status = step_status_after(&verdict, &statuses);
        s.status = new_status.as_str().into();
        s.finished_at = Some(state.clock.now());
        let failed = statuses.iter().filter(|t| t.is_failure()).count();
        s.message = match (&verdict, failed) {
            (StepVerdict::Continue, n) if n > 0 => Some("continued".into()),
            (StepVerdict::Pause, _) if statuses.contains(&TaskStatus::Unknown) => {
                Some("outcome unknown on some hosts; decide: retry_failed, skip or abort".into())
            }
            (StepVerdict::Pause, n) => Some(format!(
                "{n} host(s) failed; decide: retry_failed, skip or abort"
            )),
            (StepVerdict::Abort, n) => Some(format!("{n} host(s) failed")),
            _ => None,
        };
        state.store.update_step(&s).await?;
        let run_status = run_status_after_step(&verdict, last);
        match run_status {
            RunStatus::Running => continue,
            RunStatus::Paused => {
                ctx.progress(RunStatus::Paused, idx_i, s.message.as_deref())
                    .await?;
                super::service::notify(state, &ctx.run, "paused", s.message.as_deref()).await;
                return Ok(());
            }
            other => {
                let msg = s.message.clone().unwrap_or_default();
                return finish(state, &ctx.run, other, &msg).await;
            }
        }
    }
    finish(state, &ctx.run, RunStatus::Succeeded, "").await
}

async fn wait_for_person(
    ctx: &Ctx<'_>,
    step: &StepRow,
    step_status: StepStatus,
    run_status: RunStatus,
    message: &str,
) -> DriveResult<()> {
    let mut s = step.clone();
    s.status = step_status.as_str().into();
    s.started_at = Some(ctx.state.clock.now());
    s.message = Some(super::service::mask_with(&ctx.values, message));
    ctx.state.store.update_step(&s).await?;
    ctx.progress(run_status, step.idx, s.message.as_deref())
        .await
}

async fn cancelled(ctx: &Ctx<'_>, idx: usize) -> DriveResult<()> {
    let state = ctx.state;
    let now = state.clock.now();
    for s in state.store.steps(ctx.run.id).await? {
        let st = StepStatus::parse(&s.status).unwrap_or(StepStatus::Failed);
        if !st.is_terminal() && usize::try_from(s.idx).unwrap_or(0) >= idx {
            let mut s = s;
            s.status = StepStatus::Cancelled.as_str().into();
            s.finished_at = Some(now);
            state.store.update_step(&s).await?;
        }
    }
    state
        .store
        .mark_tasks(ctx.run.id, &["pending"], "cancelled", "exec.cancelled", now)
        .await?;
    // The person's cancellation was audited when made; the final record closes the run.
    finish_audit(state, &ctx.run, RunStatus::Cancelled, "cancelled").await
}

/// Evaluates the guard pipeline again for the run's requester just before a step executes.
/// Returns the denial message, if any (audited as `denied`).
async fn execution_guard(ctx: &Ctx<'_>, step: &FrozenStep) -> DriveResult<Option<String>> {
    let state = ctx.state;
    let Some(user) = state.store.user_by_name(&ctx.run.requested_by).await? else {
        return Ok(Some(format!(
            "the run's requester {} no longer exists",
            ctx.run.requested_by
        )));
    };
    let bindings = state.store.bindings(Some(user.id)).await?;
    let principal = Principal {
        user,
        bindings,
        source_ip: None,
        // Acting later on the requester's behalf, limited to running jobs.
        via: Via::Token {
            permissions: vec![Permission::JobRun],
        },
    };
    let mut action = Action::new(
        ActionKind::Execute,
        Permission::JobRun,
        "job.step.execute",
        Target::environment(&ctx.run.environment),
    );
    if let Some((lang, text)) = step.action.content() {
        action.content.push(Content {
            label: format!("step {:?}", step.name),
            language: lang.as_str().into(),
            text,
        });
    }
    let roles = state.store.roles().await?;
    let gctx = GuardContext {
        principal: &principal,
        action: &action,
        roles: &roles,
        environments: &state.config.environments,
        now: state.clock.now(),
    };
    let decision = state.pipeline.evaluate(&gctx);
    let Some(problem) = decision.denial() else {
        return Ok(None);
    };
    let text = format!(
        "step {:?} blocked at execution time: {} / {} [{}]",
        step.name, problem.message_zh, problem.message_en, problem.code
    );
    let d = AuditDraft::new(
        super::service::actor_of(&principal),
        "job.step.execute",
        "run",
        Outcome::Denied,
    )
    .object(ctx.run.id)
    .environment(Some(ctx.run.environment.clone()))
    .detail(text.clone());
    let tx = state.store.begin().await?;
    tx.commit(vec![d], state.clock.now()).await?;
    Ok(Some(text))
}

/// The newest attempt's task of each host of a step.
async fn latest_tasks(state: &AppState, run_id: i64, idx: i64) -> DriveResult<Vec<TaskRow>> {
    let all = state.store.tasks(run_id, Some(idx)).await?;
    let mut newest: BTreeMap<String, TaskRow> = BTreeMap::new();
    for t in all {
        match newest.get(&t.host) {
            Some(prev) if prev.attempt > t.attempt => {}
            _ => {
                newest.insert(t.host.clone(), t);
            }
        }
    }
    Ok(newest.into_values().collect())
}

/// Runs a step on its targets, with retries per its policy; returns the final verdict.
async fn execute_step(
    ctx: &Ctx<'_>,
    step: &StepRow,
    frozen: &FrozenStep,
) -> DriveResult<StepVerdict> {
    let state = ctx.state;
    let now = state.clock.now();
    let mut s = step.clone();
    // Recovery: a step found `running` was being executed by a replica that is gone.
    if s.status == StepStatus::Running.as_str() {
        let n = state
            .store
            .mark_tasks(
                ctx.run.id,
                &["pending", "dispatched", "running"],
                TaskStatus::Unknown.as_str(),
                "exec.outcome_unknown",
                now,
            )
            .await?;
        tracing::warn!(
            "run {}: step {} found running after a restart; {n} task(s) marked unknown",
            ctx.run.id,
            step.idx
        );
        return Ok(StepVerdict::Pause);
    }
    let retry_requested = s.message.as_deref() == Some("retry_failed") && s.attempt > 0;
    let mut hosts: Option<Vec<String>> = if retry_requested {
        let prev = latest_tasks(state, ctx.run.id, step.idx).await?;
        Some(
            prev.into_iter()
                .filter(|t| TaskStatus::parse(&t.status).is_none_or(|st| st.is_failure()))
                .map(|t| t.host)
                .collect(),
        )
    } else {
        None
    };
    loop {
        s.attempt += 1;
        s.status = StepStatus::Running.as_str().into();
        s.started_at = s.started_at.or(Some(state.clock.now()));
        s.message = None;
        state.store.update_step(&s).await?;
        run_attempt(ctx, &s, frozen, hosts.as_deref()).await?;
        if ctx.cancel.is_cancelled() {
            return Ok(StepVerdict::Abort);
        }
        let tasks = latest_tasks(state, ctx.run.id, step.idx).await?;
        let statuses: Vec<TaskStatus> = tasks
            .iter()
            .map(|t| TaskStatus::parse(&t.status).unwrap_or(TaskStatus::Unknown))
            .collect();
        let attempt = u32::try_from(s.attempt).unwrap_or(u32::MAX);
        let verdict = step_outcome(&statuses, &frozen.on_failure, attempt);
        match verdict {
            StepVerdict::Retry { hosts: idxs } => {
                if let Some(delay) = retry_delay(&frozen.on_failure, attempt) {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = ctx.cancel.cancelled() => return Ok(StepVerdict::Abort),
                    }
                }
                hosts = Some(
                    idxs.into_iter()
                        .filter_map(|i| tasks.get(i).map(|t| t.host.clone()))
                        .collect(),
                );
            }
            other => return Ok(other),
        }
    }
}

/// Expands a step's targets into (host label, transport, resolved target).
async fn resolve_targets(
    ctx: &Ctx<'_>,
    frozen: &FrozenStep,
) -> DriveResult<Result<Vec<(String, &'static str, Resolved)>, String>> {
    let state = ctx.state;
    let env = &ctx.run.environment;
    let spec = match &frozen.targets {
        Some(t) => match ballast_exec::template::render(t, &ctx.values) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e.message_en())),
        },
        None => return Ok(Err("the step has no targets".into())),
    };
    let refs = match ballast_exec::parse_targets(&spec) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let agents = state.store.agents().await?;
    let connected = state.exec.hub.connected();
    let connected_ids: std::collections::HashSet<&str> =
        connected.iter().map(|c| c.agent_id.as_str()).collect();
    let mut out: Vec<(String, &'static str, Resolved)> = Vec::new();
    let mut labels: std::collections::HashSet<String> = std::collections::HashSet::new();
    // SSH credentials, read once per resolution.
    let mut creds: Option<Vec<ballast_store::SshCredentialRow>> = None;
    for r in refs {
        match r {
            TargetRef::Local => {
                let resolved = if state.exec.config.local_allowed(env) {
                    Resolved::Local
                } else {
                    Resolved::Refused {
                        code: "exec.local_not_allowed".into(),
                        message: format!(
                            "local: the server's own host is not a target in environment {env} (exec.local_environments)"
                        ),
                    }
                };
                labels.insert("local".into());
                out.push(("local".into(), "local", resolved));
            }
            TargetRef::AllAgents => {
                let mut names: Vec<(String, String)> = connected
                    .iter()
                    .filter(|c| &c.environment == env)
                    .map(|c| (c.hostname.clone(), c.agent_id.clone()))
                    .collect();
                names.sort();
                for (host, id) in names {
                    let label = format!("agent:{host}");
                    if labels.insert(label.clone()) {
                        out.push((label, "agent", Resolved::Agent { agent_id: id }));
                    }
                }
            }
            TargetRef::Agent(host) => {
                let label = format!("agent:{host}");
                let resolved = resolve_agent(&agents, &connected_ids, env, &host, &label);
                labels.insert(label.clone());
                out.push((label, "agent", resolved));
            }
            TargetRef::Cmdb(q) => {
                let hosts = match cmdb_hosts(state, env, &q).await {
                    Ok(h) => h,
                    Err(e) => return Ok(Err(format!("cmdb:{q}: {}", e.problem.message_en))),
                };
                for h in hosts {
                    let (label, transport, resolved) =
                        match cmdb_ssh(&h, agents.iter().any(|a| a.hostname == h.name)) {
                            Some(target) => {
                                let label = format!(
                                    "ssh://{}@{}:{}",
                                    target.user, target.host, target.port
                                );
                                if creds.is_none() {
                                    creds = Some(state.store.ssh_credentials().await?);
                                }
                                let r = resolve_ssh(
                                    state,
                                    creds.as_deref().unwrap_or_default(),
                                    &target,
                                    &label,
                                )
                                .await?;
                                (label, "ssh", r)
                            }
                            None => {
                                let label = format!("agent:{}", h.name);
                                let r =
                                    resolve_agent(&agents, &connected_ids, env, &h.name, &label);
                                (label, "agent", r)
                            }
                        };
                    if labels.insert(label.clone()) {
                        out.push((label, transport, resolved));
                    }
                }
            }
            TargetRef::Ssh { user, host, port } => {
                let target = ballast_ssh::SshTarget::new(user.clone(), host.clone(), port);
                let label = format!("ssh://{user}@{host}:{port}");
                if creds.is_none() {
                    creds = Some(state.store.ssh_credentials().await?);
                }
                let resolved =
                    resolve_ssh(state, creds.as_deref().unwrap_or_default(), &target, &label)
                        .await?;
                labels.insert(label.clone());
                out.push((label, "ssh", resolved));
            }
        }
    }
    if out.is_empty() {
        return Ok(Err(format!("no targets: {spec:?} matched no host")));
    }
    Ok(Ok(out))
}

/// An agent target by host name: connected in the run's environment, or why not.
fn resolve_agent(
    agents: &[ballast_store::AgentRow],
    connected_ids: &std::collections::HashSet<&str>,
    env: &str,
    host: &str,
    label: &str,
) -> Resolved {
    let candidates: Vec<_> = agents
        .iter()
        .filter(|a| a.hostname == host && a.revoked_at.is_none())
        .collect();
    match candidates.iter().find(|a| a.environment == env) {
        Some(a) if connected_ids.contains(a.id.as_str()) => Resolved::Agent {
            agent_id: a.id.clone(),
        },
        Some(_) => Resolved::Refused {
            code: "agent.offline".into(),
            message: format!("{label}: the agent is not connected"),
        },
        None if !candidates.is_empty() => Resolved::Refused {
            code: "agent.wrong_environment".into(),
            message: format!("{label}: the agent belongs to another environment, not {env}"),
        },
        None => Resolved::Refused {
            code: "agent.unknown".into(),
            message: format!("{label}: no enrolled agent has this hostname"),
        },
    }
}

/// The host instances of `env` a CMDB query selects.
async fn cmdb_hosts(
    state: &AppState,
    env: &str,
    q: &str,
) -> crate::error::ApiResult<Vec<ballast_store::CiRow>> {
    use crate::cmdb::service;
    service::search(
        state,
        &service::Search {
            model: Some("host".into()),
            environments: vec![env.to_string()],
            query: Some(service::parse_query(q)?),
            limit: 0,
            ..service::Search::default()
        },
    )
    .await
}

/// A CMDB host without an agent but with `ssh_user` is reached over SSH at its `ip` and
/// `ssh_port` (22 by default); a host with an agent (or no SSH user) through its agent.
fn cmdb_ssh(h: &ballast_store::CiRow, has_agent: bool) -> Option<ballast_ssh::SshTarget> {
    if has_agent {
        return None;
    }
    let user = h.attributes.get("ssh_user")?.as_str()?;
    let ip = h.attributes.get("ip")?.as_str()?;
    let port = h
        .attributes
        .get("ssh_port")
        .and_then(serde_json::Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(22);
    Some(ballast_ssh::SshTarget::new(
        user.to_string(),
        ip.to_string(),
        port,
    ))
}

async fn resolve_ssh(
    state: &AppState,
    creds: &[ballast_store::SshCredentialRow],
    target: &ballast_ssh::SshTarget,
    label: &str,
) -> DriveResult<Resolved> {
    let host_port = format!("{}@{}", target.user, target.host);
    let cred = creds
        .iter()
        .find(|c| c.name == host_port)
        .or_else(|| creds.iter().find(|c| c.name == target.user))
        .or_else(|| creds.iter().find(|c| c.username == target.user));
    let Some(cred) = cred else {
        return Ok(Resolved::Refused {
            code: "ssh.credential_missing".into(),
            message: format!(
                "{label}: no SSH credential for user {} (add one named {host_port} or {})",
                target.user, target.user
            ),
        });
    };
    let port = i64::from(target.port);
    let Some(key) = state.store.host_key(&target.host, port).await? else {
        return Ok(Resolved::Refused {
            code: "ssh.host_key_unknown".into(),
            message: format!(
                "{label}: no pinned host key for {}:{}; pin it first (ssh host-keys)",
                target.host, target.port
            ),
        });
    };
    Ok(Resolved::Ssh {
        target: target.clone(),
        credential: cred.clone(),
        host_key: key.key_line,
    })
}

/// What a step runs on each host.
fn work_of(ctx: &Ctx<'_>, frozen: &FrozenStep) -> Result<Work, String> {
    let cfg = &ctx.state.exec.config;
    let timeout = StdDuration::from_secs(frozen.timeout_secs.max(1));
    let render =
        |s: &str| ballast_exec::template::render(s, &ctx.values).map_err(|e| e.message_en());
    let (language, script, args) = match &frozen.action {
        FrozenAction::Script {
            language,
            content,
            args,
            ..
        } => (
            *language,
            content.clone(),
            args.iter()
                .map(|a| render(a))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        FrozenAction::Command { language, command } => (*language, render(command)?, Vec::new()),
        FrozenAction::File {
            content,
            dest,
            mode,
        } => {
            use base64::Engine;
            let dest = render(dest)?;
            (
                ballast_exec::Language::Sh,
                file_script(&dest, mode.as_deref(), ""),
                vec![base64::engine::general_purpose::STANDARD.encode(content.as_bytes())],
            )
        }
        _ => return Err("not an executing step".into()),
    };
    Ok(Work {
        language,
        script,
        args,
        timeout,
        output_cap: cfg.output_cap_bytes,
        memory_bytes: cfg.task_memory_bytes,
        cpu_percent: cfg.task_cpu_percent,
    })
}

/// One attempt of a step: inserts the tasks, then runs them batch by batch.
async fn run_attempt(
    ctx: &Ctx<'_>,
    step: &StepRow,
    frozen: &FrozenStep,
    only: Option<&[String]>,
) -> DriveResult<()> {
    let state = ctx.state;
    let now = state.clock.now();
    let targets = match resolve_targets(ctx, frozen).await? {
        Ok(t) => t,
        Err(msg) => {
            // The whole step cannot start: one refused pseudo-task makes it visible.
            let t = TaskRow {
                id: 0,
                run_id: ctx.run.id,
                step_idx: step.idx,
                host: frozen.targets.clone().unwrap_or_default(),
                transport: "none".into(),
                attempt: step.attempt,
                batch: 1,
                status: TaskStatus::Refused.as_str().into(),
                exit_code: None,
                error_code: Some("exec.targets_invalid".into()),
                error_message: Some(super::service::mask_with(&ctx.values, &msg)),
                stdout_bytes: 0,
                stderr_bytes: 0,
                truncated: false,
                started_at: Some(now),
                finished_at: Some(now),
            };
            state.store.insert_tasks(&[t]).await?;
            return Ok(());
        }
    };
    let targets: Vec<_> = match only {
        Some(hosts) => targets
            .into_iter()
            .filter(|(l, _, _)| hosts.contains(l))
            .collect(),
        None => targets,
    };
    let work = work_of(ctx, frozen);
    let expr: Option<BatchExpr> = frozen.batch.as_deref().and_then(|b| b.parse().ok());
    let sizes = ballast_exec::batch::batches_for(expr.as_ref(), targets.len());
    let mut rows = Vec::with_capacity(targets.len());
    let mut i = 0usize;
    for (b, size) in sizes.iter().enumerate() {
        for (label, transport, _) in targets.iter().skip(i).take(*size) {
            rows.push(TaskRow {
                id: 0,
                run_id: ctx.run.id,
                step_idx: step.idx,
                host: label.clone(),
                transport: (*transport).into(),
                attempt: step.attempt,
                batch: i64::try_from(b + 1).unwrap_or(i64::MAX),
                status: TaskStatus::Pending.as_str().into(),
                exit_code: None,
                error_code: None,
                error_message: None,
                stdout_bytes: 0,
                stderr_bytes: 0,
                truncated: false,
                started_at: None,
                finished_at: None,
            });
        }
        i += size;
    }
    let rows = state.store.insert_tasks(&rows).await?;
    let by_label: HashMap<String, Resolved> = targets.into_iter().map(|(l, _, r)| (l, r)).collect();
    let cap = frozen
        .concurrency
        .unwrap_or(state.exec.config.max_concurrency)
        .min(state.exec.config.max_concurrency)
        .max(1);
    let sem = Arc::new(Semaphore::new(usize::try_from(cap).unwrap_or(1)));
    let mut start = 0usize;
    for size in sizes {
        let batch: Vec<TaskRow> = rows.iter().skip(start).take(size).cloned().collect();
        start += size;
        if ctx.cancel.is_cancelled() {
            break;
        }
        let mut handles = Vec::with_capacity(batch.len());
        for task in batch {
            let resolved = by_label
                .get(&task.host)
                .cloned()
                .unwrap_or(Resolved::Refused {
                    code: "exec.internal".into(),
                    message: "target lost".into(),
                });
            let work = work.clone();
            let sem = sem.clone();
            let st = state.clone();
            let env = ctx.run.environment.clone();
            let cancel = ctx.cancel.clone();
            let secrets: Vec<String> = ctx.values.secrets().into_iter().map(String::from).collect();
            handles.push(tokio::spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    return None;
                };
                run_task(&st, &env, task, &resolved, work, &secrets, cancel)
                    .await
                    .ok()
            }));
        }
        let mut batch_failed = false;
        for h in handles {
            if let Ok(Some(status)) = h.await
                && status.is_failure()
            {
                batch_failed = true;
            }
        }
        // Under `abort` a failed batch stops the rollout; later batches never start.
        if batch_failed && frozen.on_failure == ballast_exec::FailurePolicy::Abort {
            break;
        }
    }
    // Everything the tasks recorded is stored before the step's results are read.
    state.exec.recorder.flush_run(ctx.run.id).await?;
    // Tasks of batches that never started.
    state
        .store
        .mark_tasks(
            ctx.run.id,
            &["pending"],
            TaskStatus::Skipped.as_str(),
            "exec.batch_not_started",
            state.clock.now(),
        )
        .await?;
    Ok(())
}

/// Runs one task and records everything about it. The `running` row is durable before the host
/// is contacted; the final row and the output go through the recorder's group commits.
async fn run_task(
    state: &AppState,
    environment: &str,
    mut task: TaskRow,
    target: &Resolved,
    work: Result<Work, String>,
    secrets: &[String],
    cancel: CancelToken,
) -> DriveResult<TaskStatus> {
    let rec = &state.exec.recorder;
    task.status = TaskStatus::Running.as_str().into();
    task.started_at = Some(state.clock.now());
    rec.running(task.clone()).await?;
    rec.flush().await?;
    let (tx, rx) = mpsc::channel::<OutChunk>(OUTPUT_CHANNEL);
    let writer = tokio::spawn(write_output(
        state.clone(),
        task.run_id,
        task.id,
        rx,
        secrets.to_vec(),
    ));
    let finished = match work {
        Ok(w) => {
            transport::execute(&state.exec, environment, task.id, target, &w, tx, cancel).await
        }
        Err(msg) => {
            drop(tx);
            Finished::refused("exec.render", msg)
        }
    };
    let _ = writer.await;
    let status = finished.status;
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    task.status = status.as_str().into();
    task.exit_code = finished.exit_code;
    task.error_code = finished.error_code;
    task.error_message = finished
        .error_message
        .map(|m| ballast_exec::mask(&m, &refs));
    task.stdout_bytes = finished.stdout_bytes;
    task.stderr_bytes = finished.stderr_bytes;
    task.truncated = finished.truncated;
    task.finished_at = Some(state.clock.now());
    rec.task(task).await?;
    state.metrics.task_finished(status.as_str());
    Ok(status)
}

/// Streams a task's output to storage through the recorder (never accumulating it), masking
/// secret values — also one split across two chunks (one masker per stream).
async fn write_output(
    state: AppState,
    run_id: i64,
    task_id: i64,
    mut rx: mpsc::Receiver<OutChunk>,
    secrets: Vec<String>,
) {
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let mut maskers = [
        ballast_exec::StreamMasker::new(&refs),
        ballast_exec::StreamMasker::new(&refs),
    ];
    let mut seq = 0i64;
    while let Some((err, data)) = rx.recv().await {
        let released = maskers[usize::from(err)].push(&data);
        if !released.is_empty()
            && !store_chunk(&state, run_id, task_id, &mut seq, err, released).await
        {
            // The recorder is gone (shutdown): keep draining so the task never blocks.
            while rx.recv().await.is_some() {}
            return;
        }
    }
    for (i, m) in maskers.iter_mut().enumerate() {
        let rest = m.finish();
        if !rest.is_empty() {
            store_chunk(&state, run_id, task_id, &mut seq, i == 1, rest).await;
        }
    }
}

async fn store_chunk(
    state: &AppState,
    run_id: i64,
    task_id: i64,
    seq: &mut i64,
    err: bool,
    data: Vec<u8>,
) -> bool {
    let row = OutputChunkRow {
        task_id,
        seq: *seq,
        stream: if err { "stderr" } else { "stdout" }.into(),
        data,
        at: state.clock.now(),
    };
    *seq += 1;
    state.exec.recorder.output(run_id, row).await.is_ok()
}

/// Ends a run: final status and an audit record of the outcome, then notifications.
async fn finish(
    state: &AppState,
    run: &RunRow,
    status: RunStatus,
    message: &str,
) -> DriveResult<()> {
    finish_audit(state, run, status, message).await?;
    if matches!(status, RunStatus::Failed | RunStatus::Blocked) {
        super::service::notify(state, run, status.as_str(), Some(message)).await;
    }
    Ok(())
}

async fn finish_audit(
    state: &AppState,
    run: &RunRow,
    status: RunStatus,
    message: &str,
) -> DriveResult<()> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let msg = (!message.is_empty()).then_some(message);
    tx.set_run_status(run.id, status.as_str(), msg, now).await?;
    let tasks = state.store.tasks(run.id, None).await?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in &tasks {
        *counts.entry(t.status.clone()).or_default() += 1;
    }
    let outcome = if status == RunStatus::Succeeded {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let d = AuditDraft::new(Actor::system(), "job.run.finish", "run", outcome)
        .object(run.id)
        .environment(Some(run.environment.clone()))
        .after(serde_json::json!({"status": status.as_str(), "tasks": counts, "message": msg}));
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok(())
}
