//! Storage of the operation-automation engine: scripts and their versions, job plans and their
//! versions, approvals, runs with their steps and per-host tasks, task output, agents and their
//! enrolment tokens, SSH credentials and pinned host keys, and administrator settings (such as the
//! dangerous-command rules).
//!
//! Two kinds of writes:
//! - **actions** (a script saved, a version put online, a run started, an agent revoked) go through
//!   [`ExecTx`], inside a [`crate::Tx`], and are committed with their audit records;
//! - **engine bookkeeping** (a task's status, output chunks, a run's lease, an agent's last
//!   heartbeat) goes through [`ExecStore`]'s non-transactional methods: it is the engine recording
//!   what happened, not a person acting, and is far too frequent to audit record by record. The
//!   run's start, every human decision and its final outcome are audited.
//!
//! Statuses and kinds are stored as the `snake_case` strings of `ballast-exec`'s enums; this crate
//! does not interpret them beyond the claim rules documented on [`ExecStore::claim_runs`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;

/// A script in the library (its content lives in its versions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptRow {
    pub id: i64,
    /// Unique.
    pub name: String,
    pub description: String,
    /// `bash`, `sh` or `python3`.
    pub language: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// One immutable version of a script. Only `state` (and who changed it, when) ever changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptVersionRow {
    pub script_id: i64,
    /// 1, 2, 3 … per script.
    pub version: i64,
    pub content: String,
    /// SHA-256 (hex) of `content`.
    pub sha256: String,
    /// Parameter definitions (`Vec<ballast_exec::params::ParamDef>` as JSON).
    pub params: Value,
    /// `draft`, `online`, `offline`, `disabled`.
    pub state: String,
    pub note: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub state_changed_by: Option<String>,
    pub state_changed_at: Option<DateTime<Utc>>,
}

/// A job plan (its steps live in its versions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRow {
    pub id: i64,
    /// Unique.
    pub name: String,
    pub description: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// One immutable version of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanVersionRow {
    pub plan_id: i64,
    pub version: i64,
    /// `ballast_exec::plan::PlanSpec` as JSON.
    pub spec: Value,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

/// A request for a second person's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRow {
    pub id: i64,
    /// What is asked: `script.online`, `run.start`, `step.approval`, `danger.approval` …
    pub kind: String,
    /// What it is about: (`script_version`, `3@2`), (`run`, `17`) …
    pub object_type: String,
    pub object_id: String,
    pub environment: Option<String>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub reason: String,
    /// Anything the decision needs to show (a diff summary, the findings of a content scan).
    pub payload: Value,
    /// `pending`, `approved`, `rejected`, `cancelled`.
    pub state: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub comment: Option<String>,
}

/// One execution: an ad-hoc command or a run of a plan version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub id: i64,
    /// `adhoc` or `plan`.
    pub kind: String,
    pub plan_id: Option<i64>,
    pub plan_version: Option<i64>,
    /// Display name (the plan's name, or the ad-hoc command shortened).
    pub name: String,
    pub environment: String,
    /// `ballast_exec::status::RunStatus`.
    pub status: String,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The frozen snapshot the run executes: steps with the exact script versions and contents,
    /// variable values with secrets masked. Never changes after insert.
    pub spec: Value,
    /// Secret variable values, sealed with the server's credential key (never shown).
    pub secrets_sealed: Option<String>,
    /// Index of the step being executed (or next to execute).
    pub current_step: i64,
    /// The replica currently driving the run and until when it holds it.
    pub owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// Why the run failed or is blocked, for people.
    pub message: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRow {
    pub run_id: i64,
    pub idx: i64,
    pub name: String,
    /// `script`, `command`, `file`, `confirm`, `approval`.
    pub kind: String,
    /// `ballast_exec::status::StepStatus`.
    pub status: String,
    pub attempt: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
}

/// One host's execution of one step (one row per attempt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRow {
    pub id: i64,
    pub run_id: i64,
    pub step_idx: i64,
    /// The target as written: `local`, `agent:web01`, `ssh://ops@10.0.0.5:22`.
    pub host: String,
    /// `local`, `agent`, `ssh`.
    pub transport: String,
    pub attempt: i64,
    /// Rolling batch number, from 1.
    pub batch: i64,
    /// `ballast_exec::status::TaskStatus`.
    pub status: String,
    pub exit_code: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub stdout_bytes: i64,
    pub stderr_bytes: i64,
    pub truncated: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A piece of a task's output, in arrival order (`seq` from 0 per task).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunkRow {
    pub task_id: i64,
    pub seq: i64,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub data: Vec<u8>,
    pub at: DateTime<Utc>,
}

/// An enrolled agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRow {
    /// Chosen by the server at enrolment; the CN of the agent's certificate.
    pub id: String,
    pub hostname: String,
    pub environment: String,
    /// SHA-256 (hex) of the agent's certificate (DER).
    pub cert_fingerprint: String,
    /// Host facts reported at the last connect (`ballast_agent::proto::Facts` as JSON).
    pub facts: Value,
    pub version: String,
    pub enrolled_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
}

/// A one-time agent enrolment token (only its SHA-256 is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollTokenRow {
    pub hash: String,
    pub environment: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub agent_id: Option<String>,
}

/// A credential for SSH targets; the secret (password or private key) is sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshCredentialRow {
    /// Unique.
    pub name: String,
    pub username: String,
    /// `password` or `key`.
    pub kind: String,
    pub secret_sealed: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A pinned SSH host key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKeyRow {
    pub host: String,
    pub port: i64,
    /// OpenSSH public-key line.
    pub key_line: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    pub pinned_by: String,
    pub pinned_at: DateTime<Utc>,
}

/// An administrator setting (JSON value by key), e.g. `danger.rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingRow {
    pub key: String,
    pub value: Value,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// Filters for listing runs (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunQuery {
    pub status: Option<String>,
    pub environment: Option<String>,
    pub plan_id: Option<i64>,
    /// Runs with `id < before_id` (paging).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// Everything the engine keeps, for `ballast admin export|import` (the `exec` part of
/// [`crate::Dump`]; [`crate::Store::export_all`] and [`crate::Store::import_all`] carry it, ids
/// kept).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecDump {
    pub scripts: Vec<ScriptRow>,
    pub script_versions: Vec<ScriptVersionRow>,
    pub plans: Vec<PlanRow>,
    pub plan_versions: Vec<PlanVersionRow>,
    pub approvals: Vec<ApprovalRow>,
    pub runs: Vec<RunRow>,
    pub steps: Vec<StepRow>,
    pub tasks: Vec<TaskRow>,
    pub output: Vec<OutputChunkRow>,
    pub agents: Vec<AgentRow>,
    pub enroll_tokens: Vec<EnrollTokenRow>,
    pub ssh_credentials: Vec<SshCredentialRow>,
    pub host_keys: Vec<HostKeyRow>,
    pub settings: Vec<SettingRow>,
    /// Scheduled job runs and their fire history (`crate::schedule`); absent in dumps made
    /// before schedules existed.
    #[serde(default)]
    pub schedules: Vec<crate::schedule::ScheduleRow>,
    #[serde(default)]
    pub schedule_fires: Vec<crate::schedule::ScheduleFireRow>,
}

/// Reads and engine bookkeeping. Lists are ordered as documented per method.
#[async_trait]
pub trait ExecStore: Send + Sync {
    // ---- script library
    /// By name.
    async fn scripts(&self) -> Result<Vec<ScriptRow>>;
    async fn script_by_name(&self, name: &str) -> Result<Option<ScriptRow>>;
    async fn script_by_id(&self, id: i64) -> Result<Option<ScriptRow>>;
    /// By version, ascending.
    async fn script_versions(&self, script_id: i64) -> Result<Vec<ScriptVersionRow>>;
    async fn script_version(
        &self,
        script_id: i64,
        version: i64,
    ) -> Result<Option<ScriptVersionRow>>;

    // ---- plans
    /// By name.
    async fn plans(&self) -> Result<Vec<PlanRow>>;
    async fn plan_by_name(&self, name: &str) -> Result<Option<PlanRow>>;
    async fn plan_by_id(&self, id: i64) -> Result<Option<PlanRow>>;
    /// By version, ascending.
    async fn plan_versions(&self, plan_id: i64) -> Result<Vec<PlanVersionRow>>;
    async fn plan_version(&self, plan_id: i64, version: i64) -> Result<Option<PlanVersionRow>>;

    // ---- approvals
    /// Newest first; only those in `state` when given.
    async fn approvals(&self, state: Option<&str>, limit: u32) -> Result<Vec<ApprovalRow>>;
    async fn approval(&self, id: i64) -> Result<Option<ApprovalRow>>;
    /// The newest approval of this kind about this object, if any.
    async fn approval_for(
        &self,
        kind: &str,
        object_type: &str,
        object_id: &str,
    ) -> Result<Option<ApprovalRow>>;

    // ---- runs
    /// Newest first.
    async fn runs(&self, q: &RunQuery) -> Result<Vec<RunRow>>;
    async fn run(&self, id: i64) -> Result<Option<RunRow>>;
    /// By index.
    async fn steps(&self, run_id: i64) -> Result<Vec<StepRow>>;
    /// By (step, id); all steps when `step_idx` is `None`.
    async fn tasks(&self, run_id: i64, step_idx: Option<i64>) -> Result<Vec<TaskRow>>;
    async fn task(&self, id: i64) -> Result<Option<TaskRow>>;
    /// Chunks with `seq > after_seq` (use -1 for all), in order, at most `limit`.
    async fn output(&self, task_id: i64, after_seq: i64, limit: u32)
    -> Result<Vec<OutputChunkRow>>;

    /// Claims up to `limit` runs for `owner` until `lease_until`: runs whose status is `pending`
    /// or `running` (or `paused`, `waiting_confirmation`, `waiting_approval` — a human decision may
    /// have arrived) and whose lease is free, expired or already `owner`'s. Claimed atomically:
    /// two replicas calling at once never both get the same run (`FOR UPDATE SKIP LOCKED` on
    /// PostgreSQL, the write lock on SQLite). Ordered by id.
    async fn claim_runs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RunRow>>;
    /// Extends `owner`'s lease on a run; false if someone else holds it now.
    async fn renew_run(&self, run_id: i64, owner: &str, lease_until: DateTime<Utc>)
    -> Result<bool>;
    /// Releases `owner`'s lease (no-op if not held).
    async fn release_run(&self, run_id: i64, owner: &str) -> Result<()>;

    /// Engine bookkeeping on a run: status, current step, message, started/finished times.
    /// Refused (`Conflict`) unless `owner` holds the lease and the run is `pending` or `running`:
    /// the engine never overwrites a status a person set (paused, cancelled) or one that waits
    /// for a person.
    async fn update_run_progress(
        &self,
        run_id: i64,
        owner: &str,
        status: &str,
        current_step: i64,
        message: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Replaces a step's mutable fields (status, attempt, times, message).
    async fn update_step(&self, s: &StepRow) -> Result<()>;
    /// Inserts tasks (ids ignored) and returns them with their ids, in input order.
    async fn insert_tasks(&self, tasks: &[TaskRow]) -> Result<Vec<TaskRow>>;
    /// Replaces a task's mutable fields (everything but ids, run, step, host, transport, attempt).
    async fn update_task(&self, t: &TaskRow) -> Result<()>;
    /// Moves every task of the run in one of `from` statuses to `to` (with `error_code`), e.g. on
    /// recovery: dispatched/running → unknown. Returns how many.
    async fn mark_tasks(
        &self,
        run_id: i64,
        from: &[&str],
        to: &str,
        error_code: &str,
        at: DateTime<Utc>,
    ) -> Result<u64>;
    async fn append_output(&self, chunks: &[OutputChunkRow]) -> Result<()>;

    // ---- agents
    /// By hostname, then id.
    async fn agents(&self) -> Result<Vec<AgentRow>>;
    async fn agent(&self, id: &str) -> Result<Option<AgentRow>>;
    /// Last seen time, reported facts and version (bookkeeping on connect and heartbeat).
    async fn touch_agent(
        &self,
        id: &str,
        at: DateTime<Utc>,
        facts: Option<&Value>,
        version: Option<&str>,
    ) -> Result<()>;
    async fn enroll_token(&self, hash: &str) -> Result<Option<EnrollTokenRow>>;
    /// Newest first.
    async fn enroll_tokens(&self) -> Result<Vec<EnrollTokenRow>>;

    // ---- SSH
    /// By name.
    async fn ssh_credentials(&self) -> Result<Vec<SshCredentialRow>>;
    async fn ssh_credential(&self, name: &str) -> Result<Option<SshCredentialRow>>;
    async fn host_key(&self, host: &str, port: i64) -> Result<Option<HostKeyRow>>;
    /// By (host, port).
    async fn host_keys(&self) -> Result<Vec<HostKeyRow>>;

    // ---- settings
    async fn setting(&self, key: &str) -> Result<Option<SettingRow>>;

    // ---- group commit (the engine's write-behind recorder and the agents' heartbeats)
    /// Many tasks' bookkeeping in ONE transaction: each task's mutable fields replaced as by
    /// [`ExecStore::update_task`], in order (a task may appear more than once: the last wins),
    /// then the output chunks appended. All or nothing; `NotFound` names a missing task.
    async fn record_tasks(&self, tasks: &[TaskRow], chunks: &[OutputChunkRow]) -> Result<()>;
    /// Last-seen times of many agents in one transaction (coalesced heartbeats). Like
    /// [`ExecStore::touch_agent`], a last-seen time never moves backwards; unknown ids are
    /// ignored (an agent row is never created here).
    async fn touch_agents(&self, seen: &[(String, DateTime<Utc>)]) -> Result<()>;
}

/// Actions, committed with their audit records (see [`crate::Tx::commit`]).
#[async_trait]
pub trait ExecTx: Send {
    /// `Conflict` on a duplicate name. Returns the id.
    async fn insert_script(&mut self, s: &ScriptRow) -> Result<i64>;
    /// `Conflict` on a duplicate (script, version); `NotFound` for an unknown script.
    async fn insert_script_version(&mut self, v: &ScriptVersionRow) -> Result<()>;
    /// `NotFound` if the version does not exist.
    async fn set_script_version_state(
        &mut self,
        script_id: i64,
        version: i64,
        state: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    async fn insert_plan(&mut self, p: &PlanRow) -> Result<i64>;
    async fn insert_plan_version(&mut self, v: &PlanVersionRow) -> Result<()>;

    async fn insert_approval(&mut self, a: &ApprovalRow) -> Result<i64>;
    /// Decides a pending approval; `Conflict` if it is no longer pending.
    async fn decide_approval(
        &mut self,
        id: i64,
        state: &str,
        by: &str,
        at: DateTime<Utc>,
        comment: Option<&str>,
    ) -> Result<()>;

    /// Inserts the run (id ignored) with its steps (run ids ignored); returns the run id.
    async fn insert_run(&mut self, r: &RunRow, steps: &[StepRow]) -> Result<i64>;
    /// A person's change of a run's status (cancel, pause, resume, a decision): sets status and
    /// message whoever holds the lease; the engine picks it up at its next claim.
    async fn set_run_status(
        &mut self,
        run_id: i64,
        status: &str,
        message: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// A person's change of a step (a confirmation, a decision on a paused step).
    async fn set_step_status(
        &mut self,
        run_id: i64,
        idx: i64,
        status: &str,
        message: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()>;

    async fn insert_agent(&mut self, a: &AgentRow) -> Result<()>;
    async fn revoke_agent(&mut self, id: &str, by: &str, at: DateTime<Utc>) -> Result<()>;
    async fn insert_enroll_token(&mut self, t: &EnrollTokenRow) -> Result<()>;
    /// Marks an unused, unexpired token used by `agent_id`; false if it was used or expired.
    async fn use_enroll_token(
        &mut self,
        hash: &str,
        agent_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Inserts or replaces by name.
    async fn put_ssh_credential(&mut self, c: &SshCredentialRow) -> Result<()>;
    async fn delete_ssh_credential(&mut self, name: &str) -> Result<bool>;
    /// Inserts or replaces by (host, port).
    async fn pin_host_key(&mut self, k: &HostKeyRow) -> Result<()>;
    async fn unpin_host_key(&mut self, host: &str, port: i64) -> Result<bool>;

    async fn put_setting(&mut self, s: &SettingRow) -> Result<()>;
}
