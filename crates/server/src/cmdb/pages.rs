//! The CMDB's web pages: search with the query language (`/cmdb`), an instance with its
//! attributes, where each value came from, relations, discovery conflicts and history
//! (`/cmdb/instances/{id}`), the business topology tree (`/cmdb/topology`), the data-quality
//! dashboard with the discovery conflicts to review (`/cmdb/quality`), and spreadsheet import
//! with a preview of exactly the file that will be applied (`/cmdb/import`).
//!
//! Every page reads and writes through `super::service`/`super::discovery`/`super::import`, so
//! the guard, history and audit are those of the API.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::{Multipart, Query as Params, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ballast_cmdb::{AttrType, Model, RelationKind};
use ballast_core::authz::Permission;
use ballast_store::{CiHistoryRow, CiRow};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::api::{RelationOut, SearchParams, parse_decision, relations_out, search_for};
use super::discovery::{self, ConflictView};
use super::import::{self, Format, ImportReport};
use super::service::{self, Quality, TopologyNode};
use crate::api::Id;
use crate::auth::ApiCaller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::{Me, Page, Tr, back, html, ts};

/// Hosts not reported on for this many days are stale on the dashboard.
const STALE_DAYS: i64 = 7;

pub(super) fn refused(t: Tr, e: &ApiError) -> Response {
    (e.status, t.problem(&e.problem)).into_response()
}

pub(super) fn beijing(t: chrono::DateTime<chrono::Utc>) -> String {
    ts(Some(t))
}

/// A value as people read it (lists joined, text unquoted).
pub(super) fn shown(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(shown).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------- search

struct Hit {
    id: i64,
    model: String,
    environment: String,
    name: String,
    summary: String,
    discovered: String,
}

#[derive(Template)]
#[template(path = "cmdb_search.html")]
struct SearchPage {
    t: Tr,
    me: Option<Me>,
    notice: Option<String>,
    error: Option<String>,
    /// Environments the person may create instances in ("new instance" shown when any).
    writable: bool,
    environments: Vec<String>,
    models: Vec<(String, String)>,
    q: String,
    model: String,
    environment: String,
    searched: bool,
    hits: Vec<Hit>,
}

#[derive(Deserialize, Default)]
struct SearchForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    environment: String,
    notice: Option<String>,
    error: Option<String>,
}

pub(super) fn model_names(t: Tr, models: &[Model]) -> Vec<(String, String)> {
    models
        .iter()
        .map(|m| (m.key.clone(), t.pick(&m.name_zh, &m.name_en).to_string()))
        .collect()
}

pub(super) async fn all_models(state: &AppState) -> Vec<Model> {
    service::models(state)
        .await
        .map(|m| m.into_values().map(|(_, m)| m).collect())
        .unwrap_or_default()
}

async fn search_page(
    State(state): State<AppState>,
    page: Page,
    Params(f): Params<SearchForm>,
) -> Response {
    let p = page.principal();
    if let Err(e) = service::authorize_read_any(&state, p, "cmdb.ci.search").await {
        return refused(page.t, &e);
    }
    let environments = service::reach(&state, p, Permission::CmdbRead)
        .await
        .unwrap_or_default()
        .open_environments();
    let models = all_models(&state).await;
    let writable = !service::environments_for(&state, p, Permission::CmdbWrite)
        .await
        .unwrap_or_default()
        .is_empty();
    let searched = !f.q.trim().is_empty() || !f.model.is_empty() || !f.environment.is_empty();
    let mut error = f.error.clone();
    let mut hits = Vec::new();
    if searched {
        let params = SearchParams {
            q: Some(f.q.clone()),
            model: Some(f.model.clone()).filter(|m| !m.is_empty()),
            environment: Some(f.environment.clone()).filter(|e| !e.is_empty()),
            limit: Some(500),
        };
        let caller = ApiCaller(p.clone());
        let found = match search_for(&state, &caller, &params).await {
            Ok(s) => service::search(&state, &s).await,
            Err(e) => Err(e),
        };
        match found {
            Ok(rows) => hits = rows.iter().map(|c| hit(c, &models)).collect(),
            Err(e) => error = Some(page.t.problem(&e.problem)),
        }
    }
    html(SearchPage {
        models: model_names(page.t, &models),
        t: page.t,
        me: Some(page.me()),
        notice: f.notice,
        error,
        writable,
        environments,
        q: f.q,
        model: f.model,
        environment: f.environment,
        searched,
        hits,
    })
}

fn hit(c: &CiRow, models: &[Model]) -> Hit {
    let summary = models
        .iter()
        .find(|m| m.key == c.model)
        .map(|m| {
            m.attributes
                .iter()
                .filter_map(|a| {
                    let v = c.attributes.get(&a.key)?;
                    Some(format!("{}={}", a.key, shown(v)))
                })
                .take(4)
                .collect::<Vec<_>>()
                .join(" · ")
        })
        .unwrap_or_default();
    Hit {
        id: c.id,
        model: c.model.clone(),
        environment: c.environment.clone(),
        name: c.name.clone(),
        summary,
        discovered: c.discovered_at.map(beijing).unwrap_or_default(),
    }
}

// ---------------------------------------------------------------- one instance

struct AttrLine {
    key: String,
    label: String,
    value: String,
    source: String,
}

struct HistoryLine {
    at: String,
    op: String,
    object: String,
    via: String,
    actor: String,
    diff: String,
}

#[derive(Template)]
#[template(path = "cmdb_instance.html")]
struct InstancePage {
    t: Tr,
    me: Option<Me>,
    notice: Option<String>,
    error: Option<String>,
    csrf: String,
    ci: CiRow,
    model_name: String,
    discovered: String,
    attrs: Vec<AttrLine>,
    relations: Vec<RelationOut>,
    conflicts: Vec<ConflictLine>,
    history: Vec<HistoryLine>,
    /// The person may change this instance (`cmdb.write` in its environment).
    can_write: bool,
    /// The edit form: the name, each attribute's input, errors next to their field.
    name_value: String,
    name_error: String,
    fields: Vec<FieldInput>,
    /// Relation kinds (key, label) and models (key, label) for the add-relation form.
    kinds: Vec<(String, String)>,
    models: Vec<(String, String)>,
}

fn history_line(h: &CiHistoryRow) -> HistoryLine {
    HistoryLine {
        at: beijing(h.at),
        op: h.op.clone(),
        object: h.object_type.clone(),
        via: h.via.clone(),
        actor: h.actor.clone(),
        diff: h.diff.to_string(),
    }
}

async fn instance_page(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Params(flash): Params<Flash>,
) -> Response {
    instance_view(&state, &page, id, flash, None).await
}

/// The instance page; `form` carries what was posted and the errors by field when a change was
/// refused (shown in place of the stored values).
pub(super) async fn instance_view(
    state: &AppState,
    page: &Page,
    id: i64,
    flash: Flash,
    form: Option<FormState>,
) -> Response {
    let ci = match service::load(state, id).await {
        Ok(c) => c,
        Err(e) => return refused(page.t, &e),
    };
    if let Err(e) = service::authorize_ci(
        state,
        page.principal(),
        Permission::CmdbRead,
        "cmdb.ci.read",
        &ci,
    )
    .await
    {
        return refused(page.t, &e);
    }
    let m = match service::model(state, &ci.model).await {
        Ok(m) => m,
        Err(e) => return refused(page.t, &e),
    };
    let sources = service::as_map(&ci.sources);
    let attrs = m
        .attributes
        .iter()
        .map(|a| AttrLine {
            key: a.key.clone(),
            label: page.t.pick(&a.name_zh, &a.name_en).to_string(),
            value: ci.attributes.get(&a.key).map(shown).unwrap_or_default(),
            source: sources
                .get(&a.key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    let relations = match relations_out(state, id).await {
        Ok((_, r)) => r,
        Err(e) => return refused(page.t, &e),
    };
    let conflicts = discovery::conflicts(state, std::slice::from_ref(&ci.environment), None)
        .await
        .unwrap_or_default()
        .iter()
        .filter(|c| c.ci_id == id)
        .map(ConflictLine::from)
        .collect();
    let mut history: Vec<HistoryLine> = state
        .store
        .ci_history(id, None)
        .await
        .unwrap_or_default()
        .iter()
        .map(history_line)
        .collect();
    history.reverse();
    let can_write = service::may_write(state, page.principal(), &ci)
        .await
        .unwrap_or(false);
    let form = form.unwrap_or_else(|| FormState::of(&ci));
    let models = model_names(page.t, &all_models(state).await);
    let me = page.me();
    html(InstancePage {
        model_name: page.t.pick(&m.name_zh, &m.name_en).to_string(),
        discovered: ci.discovered_at.map(beijing).unwrap_or_default(),
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: flash.notice,
        error: flash.error,
        name_error: form.errors.get("name").cloned().unwrap_or_default(),
        fields: form_fields(page.t, &m, &form),
        name_value: form.name,
        ci,
        attrs,
        relations,
        conflicts,
        history,
        can_write,
        kinds: relation_kinds(page.t),
        models,
    })
}

// ---------------------------------------------------------------- instance forms

/// What an instance form holds: the name, attribute values as typed (by key) and the errors by
/// field.
#[derive(Default)]
pub(super) struct FormState {
    pub name: String,
    pub values: BTreeMap<String, String>,
    pub errors: BTreeMap<String, String>,
}

impl FormState {
    /// The stored instance, as the form shows it.
    fn of(ci: &CiRow) -> FormState {
        FormState {
            name: ci.name.clone(),
            values: service::as_map(&ci.attributes)
                .iter()
                .map(|(k, v)| (k.clone(), input_text(v)))
                .collect(),
            errors: BTreeMap::new(),
        }
    }
}

/// A stored value as an input holds it (a list as `a, b`, a boolean as `true`/`false`).
fn input_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(input_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// One choice of a `<select>`.
pub(super) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One attribute's input in an instance form: a select for enums and booleans, a date input for
/// dates, text otherwise; its error (if any) is shown next to it.
pub(super) struct FieldInput {
    pub key: String,
    /// The input's name and id: `attr_KEY`.
    pub input: String,
    pub label: String,
    /// `select`, `date` or `text`.
    pub kind: &'static str,
    pub value: String,
    pub options: Vec<Choice>,
    pub required: bool,
    /// The type, and the pattern or referenced model when there is one.
    pub hint: String,
    pub error: String,
}

pub(super) fn form_fields(t: Tr, m: &Model, form: &FormState) -> Vec<FieldInput> {
    m.attributes
        .iter()
        .map(|a| {
            let value = form.values.get(&a.key).cloned().unwrap_or_default();
            let choose = |opts: Vec<(String, String)>| -> Vec<Choice> {
                opts.into_iter()
                    .map(|(v, l)| Choice {
                        selected: v == value,
                        value: v,
                        label: l,
                    })
                    .collect()
            };
            let (kind, options) = match &a.ty {
                AttrType::Enum { values } => (
                    "select",
                    choose(values.iter().map(|v| (v.clone(), v.clone())).collect()),
                ),
                AttrType::Boolean => (
                    "select",
                    choose(vec![
                        ("true".into(), t.pick("是", "yes").to_string()),
                        ("false".into(), t.pick("否", "no").to_string()),
                    ]),
                ),
                AttrType::Date => ("date", Vec::new()),
                _ => ("text", Vec::new()),
            };
            let type_name = t.pick(a.ty.name_zh(), a.ty.key()).to_string();
            let hint = match (&a.ty, &a.pattern) {
                (AttrType::Reference { model }, _) => format!("{type_name} → {model}"),
                (AttrType::List, _) => format!(
                    "{type_name}{}",
                    t.pick("（逗号分隔）", " (comma-separated)")
                ),
                (_, Some(p)) => format!("{type_name} /{p}/"),
                _ => type_name,
            };
            FieldInput {
                key: a.key.clone(),
                input: format!("attr_{}", a.key),
                label: t.pick(&a.name_zh, &a.name_en).to_string(),
                kind,
                value,
                options,
                required: a.required,
                hint,
                error: form.errors.get(&a.key).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

pub(super) fn relation_kinds(t: Tr) -> Vec<(String, String)> {
    RelationKind::ALL
        .iter()
        .map(|k| {
            (
                k.key().to_string(),
                format!("{} ({})", t.pick(k.name_zh(), k.key()), k.key()),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- topology

struct TreeLine {
    depth: usize,
    id: i64,
    model: String,
    name: String,
}

#[derive(Template)]
#[template(path = "cmdb_topology.html")]
struct TopologyPage {
    t: Tr,
    me: Option<Me>,
    environments: Vec<String>,
    environment: String,
    lines: Vec<TreeLine>,
    unassigned: Vec<TreeLine>,
}

#[derive(Deserialize, Default)]
struct EnvForm {
    #[serde(default)]
    environment: String,
}

fn flatten(nodes: &[TopologyNode], depth: usize, out: &mut Vec<TreeLine>) {
    for n in nodes {
        out.push(TreeLine {
            depth,
            id: n.id,
            model: n.model.clone(),
            name: n.name.clone(),
        });
        flatten(&n.children, depth + 1, out);
    }
}

async fn topology_page(
    State(state): State<AppState>,
    page: Page,
    Params(f): Params<EnvForm>,
) -> Response {
    let p = page.principal();
    let reach = service::reach(&state, p, Permission::CmdbRead)
        .await
        .unwrap_or_default();
    let environments = reach.open_environments();
    let environment = if f.environment.is_empty() {
        match environments.first() {
            Some(e) => e.clone(),
            None => {
                let e = service::authorize_read_any(&state, p, "cmdb.topology").await;
                return match e {
                    Err(e) => refused(page.t, &e),
                    Ok(()) => (axum::http::StatusCode::FORBIDDEN, "no environment").into_response(),
                };
            }
        }
    } else {
        f.environment
    };
    let reach = match service::authorize_read_in(&state, p, "cmdb.topology", &environment).await {
        Ok(r) => r,
        Err(e) => return refused(page.t, &e),
    };
    let topo = match async {
        let visible = service::Visible::of(&state, reach).await?;
        service::topology(&state, &environment, &visible).await
    }
    .await
    {
        Ok(t) => t,
        Err(e) => return refused(page.t, &e),
    };
    let mut lines = Vec::new();
    flatten(&topo.businesses, 0, &mut lines);
    let mut unassigned = Vec::new();
    flatten(&topo.unassigned, 0, &mut unassigned);
    html(TopologyPage {
        t: page.t,
        me: Some(page.me()),
        environments,
        environment,
        lines,
        unassigned,
    })
}

// ---------------------------------------------------------------- quality and conflicts

/// A conflict as the pages show it.
struct ConflictLine {
    id: i64,
    ci_id: i64,
    ci_name: String,
    environment: String,
    attribute: String,
    recorded: String,
    discovered: String,
    at: String,
    state: String,
    decided_by: String,
}

impl From<&ConflictView> for ConflictLine {
    fn from(c: &ConflictView) -> ConflictLine {
        ConflictLine {
            id: c.id,
            ci_id: c.ci_id,
            ci_name: c.ci_name.clone(),
            environment: c.environment.clone(),
            attribute: c.attribute.clone(),
            recorded: shown(&c.recorded),
            discovered: shown(&c.discovered),
            at: beijing(c.discovered_at),
            state: c.state.clone(),
            decided_by: c.decided_by.clone().unwrap_or_default(),
        }
    }
}

struct QualityLine {
    q: Quality,
    completeness: String,
    consistency: String,
}

#[derive(Template)]
#[template(path = "cmdb_quality.html")]
struct QualityPage {
    t: Tr,
    me: Option<Me>,
    error: Option<String>,
    notice: Option<String>,
    csrf: String,
    stale_days: i64,
    rows: Vec<QualityLine>,
    conflicts: Vec<ConflictLine>,
    can_discover: bool,
}

#[derive(Deserialize, Default)]
pub(super) struct Flash {
    pub notice: Option<String>,
    pub error: Option<String>,
}

async fn quality_page(
    State(state): State<AppState>,
    page: Page,
    Params(flash): Params<Flash>,
) -> Response {
    let p = page.principal();
    if let Err(e) = service::authorize_read_any(&state, p, "cmdb.quality").await {
        return refused(page.t, &e);
    }
    let envs = service::environments_for(&state, p, Permission::CmdbRead)
        .await
        .unwrap_or_default();
    let writable = service::environments_for(&state, p, Permission::CmdbWrite)
        .await
        .unwrap_or_default();
    let (rows, conflicts) = match (
        service::quality(&state, &envs, STALE_DAYS).await,
        discovery::conflicts(&state, &envs, Some("open")).await,
    ) {
        (Ok(r), Ok(c)) => (r, c),
        (Err(e), _) | (_, Err(e)) => return refused(page.t, &e),
    };
    let me = page.me();
    html(QualityPage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        error: flash.error,
        notice: flash.notice,
        stale_days: STALE_DAYS,
        rows: rows
            .into_iter()
            .map(|q| QualityLine {
                completeness: format!("{:.1}%", q.completeness * 100.0),
                consistency: format!("{:.1}%", q.consistency * 100.0),
                q,
            })
            .collect(),
        conflicts: conflicts.iter().map(ConflictLine::from).collect(),
        can_discover: writable.len() >= state.config.environments.len(),
    })
}

#[derive(Deserialize)]
struct DecideForm {
    csrf: String,
    decision: String,
}

fn back_to_quality(t: Tr, r: Result<String, ApiError>) -> Response {
    match r {
        Ok(n) => back("/cmdb/quality", "notice", &n),
        Err(e) => back("/cmdb/quality", "error", &t.problem(&e.problem)),
    }
}

async fn decide_conflict(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    axum::Form(f): axum::Form<DecideForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let t = page.t;
    let r = match parse_decision(&f.decision) {
        Ok(accept) => discovery::decide(&state, page.principal(), id, accept, "ui")
            .await
            .map(|()| {
                if accept {
                    t.pick("已采用发现值", "the discovered value was taken")
                } else {
                    t.pick("已保留登记值", "the recorded value was kept")
                }
                .to_string()
            }),
        Err(e) => Err(e),
    };
    back_to_quality(t, r)
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn discover_now(
    State(state): State<AppState>,
    page: Page,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let t = page.t;
    let allowed = discovery::authorize_run(&state, page.principal()).await;
    let r = match allowed {
        Ok(()) => discovery::sync(&state).await.map(|r| {
            format!(
                "{}: {} / {} / {} / {}",
                t.pick(
                    "发现完成（新建/更新/未变/待审冲突）",
                    "discovery done (created / updated / unchanged / conflicts queued)"
                ),
                r.created,
                r.updated,
                r.unchanged,
                r.conflicts
            )
        }),
        Err(e) => Err(e),
    };
    back_to_quality(t, r)
}

// ---------------------------------------------------------------- import

#[derive(Template)]
#[template(path = "cmdb_import.html")]
struct ImportPage {
    t: Tr,
    me: Option<Me>,
    error: Option<String>,
    csrf: String,
    environments: Vec<String>,
    models: Vec<(String, String)>,
    model: String,
    environment: String,
    report: Option<ReportLines>,
    /// The previewed file, carried to the apply form so exactly it is applied.
    content: String,
    format: String,
}

/// An import report as the page shows it.
struct ReportLines {
    applied: bool,
    rows: usize,
    unchanged: usize,
    model: String,
    environment: String,
    /// Row, column, header, message, code.
    errors: Vec<(usize, String, String, String, String)>,
    /// Row, name, what is set or changed.
    creates: Vec<(usize, String, String)>,
    updates: Vec<(usize, String, String)>,
}

fn diff_text(v: &Value) -> String {
    service::as_map(v)
        .iter()
        .map(|(k, d)| {
            format!(
                "{k}: {} → {}",
                d.get("from").map(shown).unwrap_or_default(),
                d.get("to").map(shown).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl ReportLines {
    fn new(t: Tr, r: &ImportReport) -> ReportLines {
        let plans = |p: &[import::RowPlan]| {
            p.iter()
                .map(|c| (c.row, c.name.clone(), diff_text(&c.diff)))
                .collect()
        };
        ReportLines {
            applied: r.applied,
            rows: r.rows,
            unchanged: r.unchanged,
            model: r.model.clone(),
            environment: r.environment.clone(),
            errors: r
                .errors
                .iter()
                .map(|e| {
                    (
                        e.row,
                        e.column.clone().unwrap_or_default(),
                        e.header.clone().unwrap_or_default(),
                        t.pick(&e.message_zh, &e.message_en).to_string(),
                        e.code.clone(),
                    )
                })
                .collect(),
            creates: plans(&r.creates),
            updates: plans(&r.updates),
        }
    }
}

async fn import_form(State(state): State<AppState>, page: Page) -> Response {
    let p = page.principal();
    if let Err(e) = service::authorize_read_any(&state, p, "cmdb.import.form").await {
        return refused(page.t, &e);
    }
    let environments = service::environments_for(&state, p, Permission::CmdbWrite)
        .await
        .unwrap_or_default();
    let models = model_names(page.t, &all_models(&state).await);
    let me = page.me();
    html(ImportPage {
        t: page.t,
        csrf: me.csrf.clone(),
        me: Some(me),
        error: None,
        environment: environments.first().cloned().unwrap_or_default(),
        environments,
        models,
        model: "host".into(),
        report: None,
        content: String::new(),
        format: String::new(),
    })
}

/// The import form's fields (multipart: the file, or the previewed content carried back).
#[derive(Default)]
struct ImportFields {
    csrf: String,
    model: String,
    environment: String,
    action: String,
    file: Option<(String, Vec<u8>)>,
    content: String,
    format: String,
}

async fn read_fields(mut mp: Multipart) -> Result<ImportFields, String> {
    let mut f = ImportFields::default();
    while let Some(field) = mp.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let filename = field.file_name().unwrap_or_default().to_string();
            let bytes = field.bytes().await.map_err(|e| e.to_string())?;
            if !bytes.is_empty() {
                f.file = Some((filename, bytes.to_vec()));
            }
            continue;
        }
        let text = field.text().await.map_err(|e| e.to_string())?;
        match name.as_str() {
            "csrf" => f.csrf = text,
            "model" => f.model = text,
            "environment" => f.environment = text,
            "action" => f.action = text,
            "content" => f.content = text,
            "format" => f.format = text,
            _ => {}
        }
    }
    Ok(f)
}

async fn import_post(State(state): State<AppState>, page: Page, mp: Multipart) -> Response {
    let t = page.t;
    let f = match read_fields(mp).await {
        Ok(f) => f,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                format!(
                    "{}: {e}",
                    t.pick("上传的表单无法读取", "the uploaded form could not be read")
                ),
            )
                .into_response();
        }
    };
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let p = page.principal();
    let environments = service::environments_for(&state, p, Permission::CmdbWrite)
        .await
        .unwrap_or_default();
    let models = model_names(t, &all_models(&state).await);
    let me = page.me();
    let mut out = ImportPage {
        t,
        csrf: me.csrf.clone(),
        me: Some(me),
        error: None,
        environments,
        models,
        model: f.model.clone(),
        environment: f.environment.clone(),
        report: None,
        content: String::new(),
        format: String::new(),
    };
    // The file: uploaded now, or the one previewed.
    let (bytes, format) = match (&f.file, f.content.is_empty()) {
        (Some((name, bytes)), _) => {
            let format = if name.to_ascii_lowercase().ends_with(".xlsx") {
                Format::Xlsx
            } else {
                Format::Csv
            };
            (bytes.clone(), format)
        }
        (None, false) => {
            match base64::engine::general_purpose::STANDARD.decode(f.content.as_bytes()) {
                Ok(b) => (
                    b,
                    if f.format == "xlsx" {
                        Format::Xlsx
                    } else {
                        Format::Csv
                    },
                ),
                Err(_) => {
                    out.error = Some(
                        t.pick(
                            "预览的文件已损坏，请重新选择文件",
                            "the previewed file is damaged: choose the file again",
                        )
                        .to_string(),
                    );
                    return html(out);
                }
            }
        }
        (None, true) => {
            out.error = Some(
                t.pick(
                    "请选择要导入的 CSV 或 XLSX 文件",
                    "choose a CSV or XLSX file to import",
                )
                .to_string(),
            );
            return html(out);
        }
    };
    let dry_run = f.action != "apply";
    match import::import(&state, p, &f.model, &f.environment, format, &bytes, dry_run).await {
        Ok(report) => {
            if report.dry_run && report.errors.is_empty() {
                out.content = base64::engine::general_purpose::STANDARD.encode(&bytes);
                out.format = match format {
                    Format::Xlsx => "xlsx",
                    Format::Csv => "csv",
                }
                .into();
            }
            out.report = Some(ReportLines::new(t, &report));
        }
        Err(e) => out.error = Some(t.problem(&e.problem)),
    }
    html(out)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cmdb", get(search_page))
        .route(
            "/cmdb/instances/{id}",
            get(instance_page).post(super::edit::instance_update),
        )
        .route("/cmdb/topology", get(topology_page))
        .route("/cmdb/quality", get(quality_page))
        .route("/cmdb/conflicts/{id}", post(decide_conflict))
        .route("/cmdb/discovery", post(discover_now))
        .route(
            "/cmdb/import",
            get(import_form)
                .post(import_post)
                .layer(axum::extract::DefaultBodyLimit::max(
                    import::MAX_IMPORT_BYTES,
                )),
        )
}
