//! The execution engine's web pages: scripts (editor, versions, diff, going online), plans
//! (TOML editor, run form), runs (list, ad-hoc command form, the run page with a per-host status
//! grid, filters and live logs), approvals, and hosts & rules (agents, enrolment tokens, SSH
//! credentials and host keys, dangerous-command rules).
//!
//! Every form posts to a handler that calls `super::service` (guard pipeline + audit) and
//! redirects back with a notice or the error. The run page works without JavaScript (links,
//! forms, a refresh link); `/static/run.js` adds live updates over the run's event stream.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ballast_exec::Decision as StepDecision;
use ballast_store::{RunQuery, ScriptVersionRow, TaskRow};
use serde::Deserialize;

use super::service::{self, CredentialInput, ScriptInput, StartAdhoc, StartPlan};
use crate::state::AppState;
use crate::ui::{Me, Page, Tr, back, fail, html, refusal, ts};

#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    pub notice: Option<String>,
    pub error: Option<String>,
    /// Run page: the task whose log is shown; run list: status filter.
    pub task: Option<i64>,
    pub status: Option<String>,
    /// Script page: the version shown and the diff pair.
    pub v: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// A secret shown once (enrolment token).
    pub secret: Option<String>,
}

/// A page rendered in answer to a refused form, with the refusal's HTTP status: the form keeps
/// what the person typed, so they can correct it instead of starting again.
fn refused(status: axum::http::StatusCode, page: Response) -> Response {
    let mut r = page;
    if r.status().is_success() {
        *r.status_mut() = status;
    }
    r
}

fn state_class(s: &str) -> &'static str {
    match s {
        "succeeded" | "online" | "approved" => "ok",
        "failed" | "timed_out" | "refused" | "blocked" | "rejected" | "disabled" | "unknown" => {
            "bad"
        }
        "paused" | "waiting_confirmation" | "waiting_approval" | "pending" | "offline" => "denied",
        _ => "",
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

// ---------------------------------------------------------------- scripts

pub struct ScriptLine {
    pub name: String,
    pub language: String,
    pub description: String,
    pub versions: usize,
    pub online: String,
    pub created_by: String,
}

#[derive(Template)]
#[template(path = "exec_scripts.html")]
struct ScriptsPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    scripts: Vec<ScriptLine>,
    /// The new-script form's values (kept when the server refused them).
    form: ScriptValues,
}

/// What the new-script form shows.
#[derive(Default)]
pub struct ScriptValues {
    pub name: String,
    pub language: String,
    pub description: String,
    pub content: String,
    pub note: String,
}

async fn scripts_page(
    State(state): State<AppState>,
    page: Page,
    Query(f): Query<Flash>,
) -> Response {
    scripts_view(&state, page, f, ScriptValues::default()).await
}

async fn scripts_view(state: &AppState, page: Page, f: Flash, form: ScriptValues) -> Response {
    let mut scripts = Vec::new();
    let mut error = f.error;
    match state.store.scripts().await {
        Ok(list) => {
            for s in list {
                let vs = state.store.script_versions(s.id).await.unwrap_or_default();
                let online: Vec<String> = vs
                    .iter()
                    .filter(|v| v.state == "online")
                    .map(|v| v.version.to_string())
                    .collect();
                scripts.push(ScriptLine {
                    name: s.name,
                    language: s.language,
                    description: s.description,
                    versions: vs.len(),
                    online: online.join(", "),
                    created_by: s.created_by,
                });
            }
        }
        Err(e) => error = Some(e.to_string()),
    }
    let me = page.me();
    html(ScriptsPage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error,
        scripts,
        form,
    })
}

#[derive(Deserialize)]
pub struct ScriptForm {
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
    language: String,
    content: String,
    #[serde(default)]
    note: String,
}

async fn post_script(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<ScriptForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    // Browsers send CRLF line ends from a textarea; scripts keep LF.
    let content = f.content.replace("\r\n", "\n");
    let input = ScriptInput {
        name: f.name.trim().to_string(),
        description: f.description,
        language: f.language,
        content,
        params: Vec::new(),
        note: f.note,
    };
    match service::save_script(&state, page.principal(), &input).await {
        Ok(v) => back(
            &format!("/scripts/{}", input.name),
            "notice",
            &format!("{} v{v}", page.t.pick("已保存草稿", "Saved draft")),
        ),
        Err(e) => {
            let flash = Flash {
                error: Some(refusal(page.t, &e)),
                ..Flash::default()
            };
            let form = ScriptValues {
                name: input.name,
                language: input.language,
                description: input.description,
                content: input.content,
                note: input.note,
            };
            refused(e.status, scripts_view(&state, page, flash, form).await)
        }
    }
}

pub struct VersionLine {
    pub version: i64,
    pub state: String,
    pub class: &'static str,
    pub author: String,
    pub created: String,
    pub sha: String,
    pub note: String,
    pub changed_by: String,
}

#[derive(Template)]
#[template(path = "exec_script.html")]
struct ScriptPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    name: String,
    language: String,
    description: String,
    versions: Vec<VersionLine>,
    shown: Option<ScriptVersionRow>,
    diff: Option<String>,
    from: i64,
    to: i64,
}

async fn script_page(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let Ok(Some(s)) = state.store.script_by_name(&name).await else {
        return back(
            "/scripts",
            "error",
            &format!("{} {name}", page.t.pick("没有脚本", "No script")),
        );
    };
    let vs = state.store.script_versions(s.id).await.unwrap_or_default();
    let last = vs.last().map_or(1, |v| v.version);
    let shown_v = f.v.unwrap_or(last);
    let shown = vs.iter().find(|v| v.version == shown_v).cloned();
    let (from, to) = (f.from.unwrap_or((last - 1).max(1)), f.to.unwrap_or(last));
    let diff = match (f.from, f.to) {
        (Some(a), Some(b)) => {
            let va = vs.iter().find(|v| v.version == a);
            let vb = vs.iter().find(|v| v.version == b);
            match (va, vb) {
                (Some(va), Some(vb)) => Some(ballast_exec::script::unified_diff(
                    &va.content,
                    &vb.content,
                    &format!("{name}@{a}"),
                    &format!("{name}@{b}"),
                )),
                _ => None,
            }
        }
        _ => None,
    };
    let versions = vs
        .iter()
        .rev()
        .map(|v| VersionLine {
            version: v.version,
            class: state_class(&v.state),
            state: v.state.clone(),
            author: v.author.clone(),
            created: ts(Some(v.created_at)),
            sha: v.sha256.chars().take(12).collect(),
            note: v.note.clone(),
            changed_by: v.state_changed_by.clone().unwrap_or_default(),
        })
        .collect();
    let me = page.me();
    html(ScriptPage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error: f.error,
        name: s.name,
        language: s.language,
        description: s.description,
        versions,
        shown,
        diff,
        from,
        to,
    })
}

#[derive(Deserialize)]
pub struct StateForm {
    csrf: String,
    state: String,
    #[serde(default)]
    reason: String,
}

async fn post_script_state(
    State(state): State<AppState>,
    page: Page,
    Path((name, version)): Path<(String, i64)>,
    Form(f): Form<StateForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let path = format!("/scripts/{name}");
    match service::set_script_state(
        &state,
        page.principal(),
        &name,
        version,
        &f.state,
        &f.reason,
    )
    .await
    {
        Ok(Some(id)) => back(
            &path,
            "notice",
            &format!(
                "{} #{id}",
                page.t.pick(
                    "已提交上线申请，等待另一人审批",
                    "Online request filed; awaiting a second person's approval"
                )
            ),
        ),
        Ok(None) => back(&path, "notice", page.t.pick("状态已更新", "State updated")),
        Err(e) => fail(page.t, &path, &e),
    }
}

// ---------------------------------------------------------------- approvals

pub struct ApprovalLine {
    pub id: i64,
    pub kind: String,
    pub object: String,
    pub environment: String,
    pub requested_by: String,
    pub requested_at: String,
    pub reason: String,
    pub state: String,
    pub class: &'static str,
    pub decided_by: String,
    pub comment: String,
    pub link: String,
}

#[derive(Template)]
#[template(path = "exec_approvals.html")]
struct ApprovalsPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    pending: Vec<ApprovalLine>,
    done: Vec<ApprovalLine>,
}

fn approval_link(a: &ballast_store::ApprovalRow) -> String {
    match a.kind.as_str() {
        "script.online" => a
            .object_id
            .split_once('@')
            .map(|(n, v)| format!("/scripts/{n}?v={v}"))
            .unwrap_or_default(),
        "run.start" => format!("/runs/{}", a.object_id),
        crate::cmdb::service::MODEL_CHANGE_APPROVAL => a
            .object_id
            .split_once('@')
            .map(|(k, _)| format!("/cmdb/models/{k}"))
            .unwrap_or_default(),
        "step.approval" => a
            .object_id
            .split_once(':')
            .map(|(r, _)| format!("/runs/{r}"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

async fn approvals_page(
    State(state): State<AppState>,
    page: Page,
    Query(f): Query<Flash>,
) -> Response {
    let all = state.store.approvals(None, 300).await.unwrap_or_default();
    let line = |a: &ballast_store::ApprovalRow| ApprovalLine {
        id: a.id,
        kind: a.kind.clone(),
        object: a.object_id.clone(),
        environment: a.environment.clone().unwrap_or_default(),
        requested_by: a.requested_by.clone(),
        requested_at: ts(Some(a.requested_at)),
        reason: a.reason.clone(),
        class: state_class(&a.state),
        state: a.state.clone(),
        decided_by: a.decided_by.clone().unwrap_or_default(),
        comment: a.comment.clone().unwrap_or_default(),
        link: approval_link(a),
    };
    let pending = all
        .iter()
        .filter(|a| a.state == "pending")
        .map(line)
        .collect();
    let done = all
        .iter()
        .filter(|a| a.state != "pending")
        .map(line)
        .collect();
    let me = page.me();
    html(ApprovalsPage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error: f.error,
        pending,
        done,
    })
}

#[derive(Deserialize)]
pub struct DecideForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    comment: String,
}

async fn post_approval(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<i64>,
    Form(f): Form<DecideForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let approve = f.decision == "approve";
    match service::decide_approval(&state, page.principal(), id, approve, &f.comment).await {
        Ok(()) => back(
            "/approvals",
            "notice",
            &format!(
                "#{id} {}",
                if approve {
                    page.t.pick("已批准", "approved")
                } else {
                    page.t.pick("已驳回", "rejected")
                }
            ),
        ),
        Err(e) => fail(page.t, "/approvals", &e),
    }
}

// ---------------------------------------------------------------- plans

pub struct PlanLine {
    pub name: String,
    pub description: String,
    pub versions: usize,
    pub created_by: String,
}

#[derive(Template)]
#[template(path = "exec_plans.html")]
struct PlansPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    plans: Vec<PlanLine>,
    /// The editor's text: the example, or what the person submitted when it was refused.
    example: String,
}

const PLAN_EXAMPLE: &str = r#"name = "restart-gateway"
description = "Restart the quote gateway with a confirmation between checks"

[[variables]]
name = "hosts"
type = "host_list"
required = true

[[steps]]
name = "check"
kind = "command"
language = "bash"
command = "uptime"
targets = "${hosts}"

[[steps]]
name = "confirm"
kind = "confirm"
message = "Checks look fine — go on?"

[[steps]]
name = "restart"
kind = "script"
script = "restart-gateway"
targets = "${hosts}"
batch = "1"
on_failure = { policy = "pause" }
"#;

async fn plans_page(State(state): State<AppState>, page: Page, Query(f): Query<Flash>) -> Response {
    plans_view(&state, page, f, PLAN_EXAMPLE.to_string()).await
}

async fn plans_view(state: &AppState, page: Page, f: Flash, text: String) -> Response {
    let mut plans = Vec::new();
    for p in state.store.plans().await.unwrap_or_default() {
        let n = state
            .store
            .plan_versions(p.id)
            .await
            .map(|v| v.len())
            .unwrap_or(0);
        plans.push(PlanLine {
            name: p.name,
            description: p.description,
            versions: n,
            created_by: p.created_by,
        });
    }
    let me = page.me();
    html(PlansPage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error: f.error,
        plans,
        example: text,
    })
}

#[derive(Deserialize)]
pub struct PlanForm {
    csrf: String,
    toml: String,
}

async fn post_plan(State(state): State<AppState>, page: Page, Form(f): Form<PlanForm>) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let text = f.toml.replace("\r\n", "\n");
    let spec = match ballast_exec::plan::plan_from_toml(&text) {
        Ok(s) => s,
        Err(e) => {
            let flash = Flash {
                error: Some(page.t.pick(&e.message_zh(), &e.message_en()).to_string()),
                ..Flash::default()
            };
            return refused(
                axum::http::StatusCode::BAD_REQUEST,
                plans_view(&state, page, flash, text).await,
            );
        }
    };
    match service::save_plan(&state, page.principal(), &spec).await {
        Ok(v) => back(
            &format!("/plans/{}", spec.name),
            "notice",
            &format!("{} v{v}", page.t.pick("已保存", "Saved")),
        ),
        Err(e) => {
            let flash = Flash {
                error: Some(refusal(page.t, &e)),
                ..Flash::default()
            };
            refused(e.status, plans_view(&state, page, flash, text).await)
        }
    }
}

#[derive(Template)]
#[template(path = "exec_plan.html")]
struct PlanPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    name: String,
    description: String,
    version: i64,
    versions: Vec<(i64, String, String)>,
    toml: String,
    variables: Vec<(String, String, bool)>,
    environments: Vec<String>,
}

async fn plan_page(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let Ok(Some(p)) = state.store.plan_by_name(&name).await else {
        return back(
            "/plans",
            "error",
            &format!("{} {name}", page.t.pick("没有计划", "No plan")),
        );
    };
    let vs = state.store.plan_versions(p.id).await.unwrap_or_default();
    let shown =
        f.v.and_then(|v| vs.iter().find(|x| x.version == v))
            .or(vs.last());
    let (version, toml, variables) = match shown {
        Some(v) => {
            let spec: Option<ballast_exec::PlanSpec> = serde_json::from_value(v.spec.clone()).ok();
            (
                v.version,
                spec.as_ref()
                    .and_then(|s| ballast_exec::plan::plan_to_toml(s).ok())
                    .unwrap_or_default(),
                spec.map(|s| {
                    s.variables
                        .iter()
                        .map(|d| {
                            (
                                d.name.clone(),
                                d.ty.name().to_string(),
                                matches!(d.ty, ballast_exec::ParamType::Secret),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            )
        }
        None => (0, String::new(), Vec::new()),
    };
    let me = page.me();
    html(PlanPage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error: f.error,
        name: p.name,
        description: p.description,
        version,
        versions: vs
            .iter()
            .rev()
            .map(|v| (v.version, v.author.clone(), ts(Some(v.created_at))))
            .collect(),
        toml,
        variables,
        environments: state.config.environments.clone(),
    })
}

async fn post_run_plan(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| f.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    if let Some(r) = page.csrf_refusal(&get("csrf").unwrap_or_default()) {
        return r;
    }
    let vars: BTreeMap<String, String> = f
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("var.").map(|n| (n.to_string(), v.clone())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let req = StartPlan {
        plan: name.clone(),
        version: get("version").and_then(|v| v.parse().ok()),
        environment: get("environment").unwrap_or_default(),
        vars,
        acknowledge_warnings: get("acknowledge").is_some(),
    };
    match service::start_plan(&state, page.principal(), &req).await {
        Ok(s) => Redirect::to(&format!("/runs/{}", s.run_id)).into_response(),
        Err(e) => fail(page.t, &format!("/plans/{name}"), &e),
    }
}

// ---------------------------------------------------------------- runs

pub struct RunLine {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub environment: String,
    pub status: String,
    pub class: &'static str,
    pub requested_by: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "exec_runs.html")]
struct RunsPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    runs: Vec<RunLine>,
    filter: String,
    environments: Vec<String>,
    /// The command form's values (kept when the server refused them).
    form: AdhocValues,
}

/// What the command form shows.
#[derive(Default)]
pub struct AdhocValues {
    pub environment: String,
    pub targets: String,
    pub command: String,
}

async fn runs_page(State(state): State<AppState>, page: Page, Query(f): Query<Flash>) -> Response {
    runs_view(&state, page, f, AdhocValues::default()).await
}

async fn runs_view(state: &AppState, page: Page, f: Flash, form: AdhocValues) -> Response {
    let runs = state
        .store
        .runs(&RunQuery {
            status: f.status.clone().filter(|s| !s.is_empty()),
            limit: 200,
            ..RunQuery::default()
        })
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| RunLine {
            id: r.id,
            class: state_class(&r.status),
            name: r.name,
            kind: r.kind,
            environment: r.environment,
            status: r.status,
            requested_by: r.requested_by,
            created: ts(Some(r.created_at)),
        })
        .collect();
    let me = page.me();
    html(RunsPage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error: f.error,
        runs,
        filter: f.status.unwrap_or_default(),
        environments: state.config.environments.clone(),
        form,
    })
}

#[derive(Deserialize)]
pub struct AdhocForm {
    csrf: String,
    environment: String,
    targets: String,
    command: String,
    #[serde(default)]
    acknowledge: Option<String>,
}

async fn post_adhoc(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<AdhocForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let req = StartAdhoc {
        environment: f.environment,
        targets: f.targets,
        command: f.command.replace("\r\n", "\n"),
        language: None,
        timeout_secs: None,
        acknowledge_warnings: f.acknowledge.is_some(),
    };
    match service::start_adhoc(&state, page.principal(), &req).await {
        Ok(s) => Redirect::to(&format!("/runs/{}", s.run_id)).into_response(),
        Err(e) => {
            let flash = Flash {
                error: Some(refusal(page.t, &e)),
                ..Flash::default()
            };
            let form = AdhocValues {
                environment: req.environment,
                targets: req.targets,
                command: req.command,
            };
            refused(e.status, runs_view(&state, page, flash, form).await)
        }
    }
}

pub struct StepLine {
    pub idx: i64,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub class: &'static str,
    pub attempt: i64,
    pub message: String,
}

pub struct TaskCell {
    pub id: i64,
    pub host: String,
    pub step: i64,
    pub attempt: i64,
    pub status: String,
    pub class: &'static str,
    pub exit: String,
    pub error: String,
    pub truncated: bool,
}

#[derive(Template)]
#[template(path = "exec_run.html")]
struct RunPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    id: i64,
    name: String,
    kind: String,
    environment: String,
    status: String,
    class: &'static str,
    requested_by: String,
    created: String,
    finished: bool,
    message: String,
    plan: String,
    scripts: Vec<String>,
    steps: Vec<StepLine>,
    tasks: Vec<TaskCell>,
    counts: Vec<(String, usize)>,
    filter: String,
    log_task: Option<TaskCell>,
    log: String,
    log_truncated: bool,
}

fn cell(t: &TaskRow) -> TaskCell {
    TaskCell {
        id: t.id,
        host: t.host.clone(),
        step: t.step_idx,
        attempt: t.attempt,
        class: state_class(&t.status),
        status: t.status.clone(),
        exit: t.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        error: match (&t.error_code, &t.error_message) {
            (Some(c), Some(m)) => format!("[{c}] {m}"),
            (Some(c), None) => format!("[{c}]"),
            _ => String::new(),
        },
        truncated: t.truncated,
    }
}

async fn run_page(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<i64>,
    Query(f): Query<Flash>,
) -> Response {
    let Ok(Some(r)) = state.store.run(id).await else {
        return back(
            "/runs",
            "error",
            &format!("{} #{id}", page.t.pick("没有作业", "No run")),
        );
    };
    let steps = state.store.steps(id).await.unwrap_or_default();
    let tasks = state.store.tasks(id, None).await.unwrap_or_default();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in &tasks {
        *counts.entry(t.status.clone()).or_default() += 1;
    }
    let filter = f.status.clone().unwrap_or_default();
    let cells: Vec<TaskCell> = tasks
        .iter()
        .filter(|t| filter.is_empty() || t.status == filter)
        .map(cell)
        .collect();
    let log_task = f
        .task
        .and_then(|tid| tasks.iter().find(|t| t.id == tid))
        .or_else(|| tasks.first())
        .map(cell);
    let mut log = String::new();
    let mut log_truncated = false;
    if let Some(lt) = &log_task {
        // The page shows the first 1 MiB of a task's output; the API pages through the rest.
        let chunks = state
            .store
            .output(lt.id, -1, 2000)
            .await
            .unwrap_or_default();
        for c in chunks {
            if log.len() > 1 << 20 {
                log_truncated = true;
                break;
            }
            log.push_str(&String::from_utf8_lossy(&c.data));
        }
    }
    let spec: Option<super::model::RunSpec> = serde_json::from_value(r.spec.clone()).ok();
    let plan = spec
        .as_ref()
        .and_then(|s| s.plan.as_ref())
        .map(|p| format!("{}@{}", p.name, p.version))
        .unwrap_or_default();
    let scripts = spec
        .as_ref()
        .map(|s| {
            s.steps
                .iter()
                .filter_map(|st| match &st.action {
                    super::model::FrozenAction::Script {
                        script,
                        version,
                        sha256,
                        ..
                    } => Some(format!(
                        "{script}@{version} ({})",
                        &sha256[..sha256.len().min(12)]
                    )),
                    super::model::FrozenAction::Command { command, .. } => {
                        Some(format!("$ {command}"))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let me = page.me();
    html(RunPage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error: f.error,
        id,
        name: r.name.clone(),
        kind: r.kind.clone(),
        environment: r.environment.clone(),
        class: state_class(&r.status),
        status: r.status.clone(),
        requested_by: r.requested_by.clone(),
        created: ts(Some(r.created_at)),
        finished: super::api::is_finished(&r.status),
        message: r.message.clone().unwrap_or_default(),
        plan,
        scripts,
        steps: steps
            .iter()
            .map(|s| StepLine {
                idx: s.idx,
                name: s.name.clone(),
                kind: s.kind.clone(),
                class: state_class(&s.status),
                status: s.status.clone(),
                attempt: s.attempt,
                message: s.message.clone().unwrap_or_default(),
            })
            .collect(),
        tasks: cells,
        counts: counts.into_iter().collect(),
        filter,
        log_task,
        log,
        log_truncated,
    })
}

#[derive(Deserialize)]
pub struct RunActionForm {
    csrf: String,
    op: String,
    #[serde(default)]
    step: Option<i64>,
    #[serde(default)]
    reason: String,
}

async fn post_run_action(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<i64>,
    Form(f): Form<RunActionForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let p = page.principal();
    let step = f.step.unwrap_or(0);
    let r = match f.op.as_str() {
        "cancel" => service::cancel_run(&state, p, id, &f.reason).await,
        "pause" => service::pause_run(&state, p, id, &f.reason).await,
        "resume" => service::resume_run(&state, p, id).await,
        "confirm" => service::confirm_step(&state, p, id, step).await,
        "retry_failed" => {
            service::decide_step(&state, p, id, step, StepDecision::RetryFailed).await
        }
        "skip" => service::decide_step(&state, p, id, step, StepDecision::Skip).await,
        "abort" => service::decide_step(&state, p, id, step, StepDecision::Abort).await,
        other => {
            return back(
                &format!("/runs/{id}"),
                "error",
                &format!("unknown operation {other}"),
            );
        }
    };
    match r {
        Ok(()) => back(
            &format!("/runs/{id}"),
            "notice",
            page.t.pick("已提交", "Done"),
        ),
        Err(e) => fail(page.t, &format!("/runs/{id}"), &e),
    }
}

// ---------------------------------------------------------------- hosts & rules

pub struct AgentLine {
    pub id: String,
    pub hostname: String,
    pub environment: String,
    pub connected: bool,
    pub revoked: bool,
    pub last_seen: String,
    pub os: String,
    pub version: String,
}

#[derive(Template)]
#[template(path = "exec_agents.html")]
struct AgentsPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    secret: Option<String>,
    agents: Vec<AgentLine>,
    environments: Vec<String>,
    agent_endpoint: String,
    credentials: Vec<(String, String, String)>,
    host_keys: Vec<(String, i64, String, String)>,
    rules_toml: String,
    rules_custom: bool,
    rules: Vec<(String, String, String)>,
}

async fn agents_page(
    State(state): State<AppState>,
    page: Page,
    Query(f): Query<Flash>,
) -> Response {
    let connected: std::collections::HashSet<String> = state
        .exec
        .hub
        .connected()
        .into_iter()
        .map(|c| c.agent_id)
        .collect();
    let agents = state
        .store
        .agents()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| AgentLine {
            connected: connected.contains(&a.id),
            revoked: a.revoked_at.is_some(),
            last_seen: ts(a.last_seen_at),
            os: a.facts["os"].as_str().unwrap_or_default().to_string(),
            id: a.id,
            hostname: a.hostname,
            environment: a.environment,
            version: a.version,
        })
        .collect();
    let credentials = state
        .store
        .ssh_credentials()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.name, c.username, c.kind))
        .collect();
    let host_keys = state
        .store
        .host_keys()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|k| (k.host, k.port, k.fingerprint, k.pinned_by))
        .collect();
    let rules = state
        .exec
        .danger
        .rules()
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                format!("{:?}", r.action),
                page.t.pick(&r.message_zh, &r.message_en).to_string(),
            )
        })
        .collect();
    let rules_toml = state.exec.danger.source().unwrap_or_else(|| {
        ballast_exec::danger::rules_to_toml(&state.exec.danger.rules()).unwrap_or_default()
    });
    let me = page.me();
    html(AgentsPage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error: f.error,
        secret: f.secret,
        agents,
        environments: state.config.environments.clone(),
        agent_endpoint: state.exec.config.agent_listen.to_string(),
        credentials,
        host_keys,
        rules_custom: state.exec.danger.source().is_some(),
        rules_toml,
        rules,
    })
}

#[derive(Deserialize)]
pub struct EnvForm {
    csrf: String,
    environment: String,
}

async fn post_enroll_token(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<EnvForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    match service::create_enroll_token(&state, page.principal(), &f.environment).await {
        Ok((token, _)) => back("/agents", "secret", &token),
        Err(e) => fail(page.t, "/agents", &e),
    }
}

async fn post_revoke(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    match service::revoke_agent(&state, page.principal(), &id).await {
        Ok(()) => back("/agents", "notice", page.t.pick("已吊销", "Revoked")),
        Err(e) => fail(page.t, "/agents", &e),
    }
}

#[derive(Deserialize)]
pub struct CredentialForm {
    csrf: String,
    name: String,
    username: String,
    kind: String,
    secret: String,
}

async fn post_credential(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<CredentialForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let c = CredentialInput {
        name: f.name,
        username: f.username,
        kind: f.kind,
        secret: f.secret.replace("\r\n", "\n"),
    };
    match service::put_credential(&state, page.principal(), &c).await {
        Ok(()) => back(
            "/agents",
            "notice",
            page.t
                .pick("凭据已保存（已加密）", "Credential saved (sealed)"),
        ),
        Err(e) => fail(page.t, "/agents", &e),
    }
}

#[derive(Deserialize)]
pub struct HostKeyForm {
    csrf: String,
    host: String,
    port: u16,
    #[serde(default)]
    key_line: String,
}

async fn post_host_key(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<HostKeyForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    match service::pin_host_key(&state, page.principal(), f.host.trim(), f.port, &f.key_line).await
    {
        Ok(k) => back(
            "/agents",
            "notice",
            &format!(
                "{} {}:{} {}",
                page.t.pick("已固定主机公钥", "Pinned host key"),
                k.host,
                k.port,
                k.fingerprint
            ),
        ),
        Err(e) => fail(page.t, "/agents", &e),
    }
}

#[derive(Deserialize)]
pub struct RulesForm {
    csrf: String,
    toml: String,
}

async fn post_rules(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<RulesForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    match service::set_danger_rules(&state, page.principal(), &f.toml.replace("\r\n", "\n")).await {
        Ok(n) => back(
            "/agents",
            "notice",
            &format!("{} {n}", page.t.pick("规则已保存：", "Rules saved:")),
        ),
        Err(e) => fail(page.t, "/agents", &e),
    }
}

async fn run_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/run.js"),
    )
        .into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/scripts", get(scripts_page).post(post_script))
        .route("/scripts/{name}", get(script_page))
        .route(
            "/scripts/{name}/versions/{version}/state",
            post(post_script_state),
        )
        .route("/approvals", get(approvals_page))
        .route("/approvals/{id}", post(post_approval))
        .route("/plans", get(plans_page).post(post_plan))
        .route("/plans/{name}", get(plan_page))
        .route("/plans/{name}/run", post(post_run_plan))
        .route("/runs", get(runs_page))
        .route("/runs/exec", post(post_adhoc))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/action", post(post_run_action))
        .route("/agents", get(agents_page))
        .route("/agents/enroll-token", post(post_enroll_token))
        .route("/agents/{id}/revoke", post(post_revoke))
        .route("/ssh/credentials", post(post_credential))
        .route("/ssh/host-keys", post(post_host_key))
        .route("/danger-rules", post(post_rules))
        .route("/static/run.js", get(run_js))
}
