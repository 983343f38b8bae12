//! The CMDB's edit pages: models (`/cmdb/models`, `/cmdb/models/{key}`: attributes, versions,
//! pending change requests and a JSON editor with "check" and "save"), a new instance
//! (`/cmdb/instances/new`), and the forms of the instance page (change the name and attributes,
//! delete, add and remove relations).
//!
//! Every form carries the CSRF token and calls the same `super::service` function as the API, so
//! the guard pipeline, history (`via = ui`) and audit are shared; the server refuses a change the
//! page would not have offered. Refusals come back next to their field where they name one.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ballast_cmdb::{FieldError, Model};
use ballast_core::Problem;
use ballast_core::authz::{self, Permission, Target};
use ballast_store::{CmdbModelRow, CmdbModelVersionRow};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::pages::{
    FieldInput, Flash, FormState, all_models, beijing, form_fields, instance_view, model_names,
    refused, shown,
};
use super::service::{self, InstanceInput, InstanceUpdate, ModelChangeReport, RelationInput};
use crate::api::Id;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::{Me, Page, Tr, back, fail, html, refusal};

// ---------------------------------------------------------------- form helpers

/// A posted instance form: `name`, `attr_KEY` values (blank ones left out: cleared) and the
/// other fields by name.
struct Posted {
    fields: BTreeMap<String, String>,
    attrs: BTreeMap<String, String>,
}

impl Posted {
    fn new(pairs: Vec<(String, String)>) -> Posted {
        let mut fields = BTreeMap::new();
        let mut attrs = BTreeMap::new();
        for (k, v) in pairs {
            match k.strip_prefix("attr_") {
                Some(key) => {
                    attrs.insert(key.to_string(), v);
                }
                None => {
                    fields.insert(k, v);
                }
            }
        }
        Posted { fields, attrs }
    }
    fn get(&self, k: &str) -> &str {
        self.fields.get(k).map_or("", String::as_str)
    }
    /// The attributes to save: the non-blank ones, as text (the service parses by type).
    fn attributes(&self) -> Map<String, Value> {
        self.attrs
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    }
    /// The form as posted, with `errors` by field, to show again.
    fn state(&self, errors: BTreeMap<String, String>) -> FormState {
        FormState {
            name: self.get("name").to_string(),
            values: self.attrs.clone(),
            errors,
        }
    }
}

/// An error next to its field: the message in the page's language and the code.
fn field_text(t: Tr, e: &FieldError) -> String {
    format!("{} [{}]", t.pick(&e.message_zh, &e.message_en), e.code)
}

/// What the service checked when it refused an instance change (to list every problem).
struct Checked<'a> {
    model: &'a Model,
    environment: &'a str,
    name: &'a str,
    attributes: &'a Map<String, Value>,
    self_id: Option<i64>,
}

/// The errors by field for a refused instance change: every problem the service's check finds
/// (422), else the refusal's own field.
async fn field_errors(
    state: &AppState,
    t: Tr,
    e: &ApiError,
    check: Option<Checked<'_>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if e.status == StatusCode::UNPROCESSABLE_ENTITY
        && let Some(c) = check
        && let Ok(Err(errs)) = service::check_instance(
            state,
            c.model,
            c.environment,
            c.name,
            c.attributes,
            c.self_id,
        )
        .await
    {
        for fe in &errs {
            out.entry(fe.field.clone())
                .and_modify(|s: &mut String| {
                    s.push_str("; ");
                    s.push_str(&field_text(t, fe));
                })
                .or_insert_with(|| field_text(t, fe));
        }
    }
    if out.is_empty()
        && let Some(f) = &e.problem.field
    {
        out.insert(f.clone(), refusal(t, e));
    }
    out
}

// ---------------------------------------------------------------- instance: change, delete

/// `POST /cmdb/instances/{id}`: the name and every attribute, through `update_instance`.
pub(super) async fn instance_update(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(pairs);
    if let Some(r) = page.csrf_refusal(f.get("csrf")) {
        return r;
    }
    let t = page.t;
    let p = page.principal();
    let input = InstanceUpdate {
        name: Some(f.get("name").trim().to_string()),
        attributes: f.attributes(),
    };
    let via = service::via_of(p);
    match service::update_instance(&state, p, id, &input, via).await {
        Ok(()) => back(
            &format!("/cmdb/instances/{id}"),
            "notice",
            t.pick("已保存", "saved"),
        ),
        Err(e) => {
            let ci = service::load(&state, id).await.ok();
            let m = match &ci {
                Some(c) => service::model(&state, &c.model).await.ok(),
                None => None,
            };
            let name = input.name.clone().unwrap_or_default();
            let check = match (&ci, &m) {
                (Some(c), Some(m)) => Some(Checked {
                    model: m,
                    environment: &c.environment,
                    name: &name,
                    attributes: &input.attributes,
                    self_id: Some(id),
                }),
                _ => None,
            };
            let errors = field_errors(&state, t, &e, check).await;
            let flash = Flash {
                notice: None,
                error: Some(refusal(t, &e)),
            };
            let mut r = instance_view(&state, &page, id, flash, Some(f.state(errors))).await;
            if r.status().is_success() {
                *r.status_mut() = e.status;
            }
            r
        }
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /cmdb/instances/{id}/delete`: the person types the instance's name to confirm.
async fn instance_delete(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Form(f): Form<DeleteForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let t = page.t;
    let path = format!("/cmdb/instances/{id}");
    let ci = match service::load(&state, id).await {
        Ok(c) => c,
        Err(e) => return fail(t, "/cmdb", &e),
    };
    if f.confirm.trim() != ci.name {
        let e = ApiError::bad_request(Problem::field(
            "cmdb.delete_unconfirmed",
            "confirm",
            format!("字段 confirm：请输入实例名称 {} 以确认删除", ci.name),
            format!(
                "field confirm: type the instance's name {} to confirm the deletion",
                ci.name
            ),
        ));
        return fail(t, &path, &e);
    }
    let via = service::via_of(page.principal());
    match service::delete_instance(&state, page.principal(), id, via).await {
        Ok(()) => back(
            "/cmdb",
            "notice",
            &format!("{} {} {}", t.pick("已删除", "deleted"), ci.model, ci.name),
        ),
        Err(e) => fail(t, &path, &e),
    }
}

// ---------------------------------------------------------------- relations

#[derive(Deserialize)]
struct RelationForm {
    csrf: String,
    /// `out`: this instance is the source; `in`: it is the target.
    #[serde(default)]
    direction: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    other_model: String,
    #[serde(default)]
    other_name: String,
}

/// `POST /cmdb/instances/{id}/relations`: the other end by model and name in the same
/// environment, through `create_relation`.
async fn relation_add(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Form(f): Form<RelationForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let t = page.t;
    let path = format!("/cmdb/instances/{id}");
    let ci = match service::load(&state, id).await {
        Ok(c) => c,
        Err(e) => return fail(t, "/cmdb", &e),
    };
    let name = f.other_name.trim();
    let other = match state
        .store
        .ci_by_name(&f.other_model, &ci.environment, name)
        .await
    {
        Ok(Some(o)) => o,
        Ok(None) => {
            let e = ApiError::bad_request(Problem::field(
                "cmdb.relation_other_missing",
                "other_name",
                format!(
                    "字段 other_name：环境 {} 中没有 {} {name:?}",
                    ci.environment, f.other_model
                ),
                format!(
                    "field other_name: there is no {} {name:?} in environment {}",
                    f.other_model, ci.environment
                ),
            ));
            return fail(t, &path, &e);
        }
        Err(e) => return fail(t, &path, &ApiError::from(e)),
    };
    let (source, target) = if f.direction == "in" {
        (other.id, ci.id)
    } else {
        (ci.id, other.id)
    };
    let input = RelationInput {
        kind: f.kind.clone(),
        source,
        target,
    };
    let via = service::via_of(page.principal());
    match service::create_relation(&state, page.principal(), &input, via).await {
        Ok(_) => back(&path, "notice", t.pick("已添加关系", "relation added")),
        Err(e) => fail(t, &path, &e),
    }
}

#[derive(Deserialize)]
struct RemoveForm {
    csrf: String,
    /// The instance page to go back to.
    back: i64,
}

/// `POST /cmdb/relations/{id}/delete`, through `delete_relation`.
async fn relation_remove(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Form(f): Form<RemoveForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let t = page.t;
    let path = format!("/cmdb/instances/{}", f.back);
    let via = service::via_of(page.principal());
    match service::delete_relation(&state, page.principal(), id, via).await {
        Ok(()) => back(&path, "notice", t.pick("已删除关系", "relation removed")),
        Err(e) => fail(t, &path, &e),
    }
}

// ---------------------------------------------------------------- new instance

#[derive(Template)]
#[template(path = "cmdb_instance_new.html")]
struct NewInstancePage {
    t: Tr,
    me: Option<Me>,
    notice: Option<String>,
    error: Option<String>,
    csrf: String,
    environments: Vec<String>,
    models: Vec<(String, String)>,
    model: String,
    environment: String,
    /// The chosen model's label (empty until a model and environment are chosen).
    model_name: String,
    name_value: String,
    name_error: String,
    fields: Vec<FieldInput>,
}

#[derive(Deserialize, Default)]
struct NewQuery {
    #[serde(default)]
    model: String,
    #[serde(default)]
    environment: String,
}

async fn new_instance_view(
    state: &AppState,
    page: &Page,
    model: &str,
    environment: &str,
    error: Option<String>,
    form: FormState,
) -> Response {
    let t = page.t;
    let p = page.principal();
    if let Err(e) = service::authorize_read_any(state, p, "cmdb.ci.new").await {
        return refused(t, &e);
    }
    let environments = service::environments_for(state, p, Permission::CmdbWrite)
        .await
        .unwrap_or_default();
    let models = all_models(state).await;
    let chosen = models.iter().find(|m| m.key == model);
    let (model_name, fields) = match chosen {
        Some(m) if environments.iter().any(|e| e == environment) => (
            t.pick(&m.name_zh, &m.name_en).to_string(),
            form_fields(t, m, &form),
        ),
        _ => (String::new(), Vec::new()),
    };
    let error = error.or_else(|| {
        environments.is_empty().then(|| {
            t.pick(
                "你在任何环境都没有 cmdb.write 权限，不能新建实例",
                "you hold cmdb.write in no environment: you cannot create instances",
            )
            .to_string()
        })
    });
    let me = page.me();
    html(NewInstancePage {
        t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: None,
        error,
        models: model_names(t, &models),
        model: model.to_string(),
        environment: if environment.is_empty() {
            environments.first().cloned().unwrap_or_default()
        } else {
            environment.to_string()
        },
        environments,
        model_name,
        name_error: form.errors.get("name").cloned().unwrap_or_default(),
        name_value: form.name,
        fields,
    })
}

/// `GET /cmdb/instances/new?model=host&environment=test`.
async fn new_instance_form(
    State(state): State<AppState>,
    page: Page,
    Params(q): Params<NewQuery>,
) -> Response {
    new_instance_view(
        &state,
        &page,
        &q.model,
        &q.environment,
        None,
        FormState::default(),
    )
    .await
}

/// `POST /cmdb/instances`: through `create_instance`.
async fn new_instance_post(
    State(state): State<AppState>,
    page: Page,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(pairs);
    if let Some(r) = page.csrf_refusal(f.get("csrf")) {
        return r;
    }
    let t = page.t;
    let p = page.principal();
    let input = InstanceInput {
        model: f.get("model").to_string(),
        environment: f.get("environment").to_string(),
        name: f.get("name").trim().to_string(),
        attributes: f.attributes(),
    };
    let via = service::via_of(p);
    match service::create_instance(&state, p, &input, via).await {
        Ok(id) => back(
            &format!("/cmdb/instances/{id}"),
            "notice",
            t.pick("已新建", "created"),
        ),
        Err(e) => {
            let m = service::model(&state, &input.model).await.ok();
            let check = m.as_ref().map(|m| Checked {
                model: m,
                environment: &input.environment,
                name: &input.name,
                attributes: &input.attributes,
                self_id: None,
            });
            let errors = field_errors(&state, t, &e, check).await;
            let mut r = new_instance_view(
                &state,
                &page,
                &input.model,
                &input.environment,
                Some(refusal(t, &e)),
                f.state(errors),
            )
            .await;
            if r.status().is_success() {
                *r.status_mut() = e.status;
            }
            r
        }
    }
}

// ---------------------------------------------------------------- models

/// Whether the person may change models (`cmdb.write` with global scope).
fn can_write_models(page: &Page) -> bool {
    let p = page.principal();
    authz::is_allowed(
        &p.bindings,
        &page.roles,
        Permission::CmdbWrite,
        &Target::global(),
        p.source_ip,
    )
}

struct ModelLine {
    key: String,
    name: String,
    other_name: String,
    version: i64,
    attributes: usize,
    builtin: bool,
}

/// A check or save report as the pages show it.
struct ReportView {
    summary: String,
    changes: Vec<String>,
    examples: Vec<String>,
}

impl ReportView {
    fn new(t: Tr, r: &ModelChangeReport) -> ReportView {
        let changes = if t.html_lang() == "zh-CN" {
            r.changes_zh.clone()
        } else {
            r.changes_en.clone()
        };
        let head = t.pick("检查结果（未保存）", "Check (nothing saved)");
        let outcome = if r.changes.is_empty() && r.version > 1 {
            t.pick("没有变更", "no change").to_string()
        } else if r.invalid_instances > 0 {
            format!(
                "{} {} {}",
                t.pick("将使", "would invalidate"),
                r.invalid_instances,
                t.pick(
                    "个现有实例失效：保存时不会直接生效，而是提交审批",
                    "existing instances: saving files an approval request instead of applying it"
                )
            )
        } else if r.may_invalidate {
            t.pick(
                "可能使数据失效，但没有现有实例受影响：保存即生效",
                "may invalidate data, but no existing instance is affected: saving applies it",
            )
            .to_string()
        } else {
            t.pick(
                "不影响现有数据：保存即生效",
                "does not affect existing data: saving applies it",
            )
            .to_string()
        };
        ReportView {
            summary: format!(
                "{head}: {} {} · {} {} · {outcome}",
                t.pick("版本", "version"),
                r.version,
                changes.len(),
                t.pick("项变更", "changes"),
            ),
            changes,
            examples: r.examples.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "cmdb_models.html")]
struct ModelsPage {
    t: Tr,
    me: Option<Me>,
    notice: Option<String>,
    error: Option<String>,
    csrf: String,
    can_write: bool,
    models: Vec<ModelLine>,
    /// The new model's definition as typed (or a skeleton).
    definition: String,
    report: Option<ReportView>,
}

const NEW_MODEL: &str = r#"{
  "key": "app",
  "name_zh": "应用",
  "name_en": "Application",
  "attributes": [
    {"key": "owner", "name_zh": "负责人", "name_en": "Owner", "type": "string", "required": true},
    {"key": "tier", "name_zh": "层级", "name_en": "Tier", "type": "enum", "values": ["web", "app", "db"]}
  ]
}"#;

async fn models_view(
    state: &AppState,
    page: &Page,
    flash: Flash,
    definition: Option<String>,
    report: Option<ReportView>,
) -> Response {
    let t = page.t;
    if let Err(e) = service::authorize_read_any(state, page.principal(), "cmdb.model.list").await {
        return refused(t, &e);
    }
    let all = match service::models(state).await {
        Ok(a) => a,
        Err(e) => return refused(t, &e),
    };
    let models = all
        .into_values()
        .map(|(row, m)| ModelLine {
            name: t.pick(&m.name_zh, &m.name_en).to_string(),
            other_name: t.pick(&m.name_en, &m.name_zh).to_string(),
            key: m.key,
            version: row.version,
            attributes: m.attributes.len(),
            builtin: row.builtin,
        })
        .collect();
    let me = page.me();
    html(ModelsPage {
        t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: flash.notice,
        error: flash.error,
        can_write: can_write_models(page),
        models,
        definition: definition.unwrap_or_else(|| NEW_MODEL.to_string()),
        report,
    })
}

async fn models_page(
    State(state): State<AppState>,
    page: Page,
    Params(flash): Params<Flash>,
) -> Response {
    models_view(&state, &page, flash, None, None).await
}

struct AttrRow {
    key: String,
    label: String,
    ty: String,
    required: bool,
    unique: bool,
    discovered: bool,
    pattern: String,
    values: String,
    reference: String,
}

struct VersionLine {
    version: i64,
    author: String,
    at: String,
    note: String,
}

struct PendingLine {
    id: i64,
    object: String,
    requested_by: String,
    at: String,
    invalid: String,
}

#[derive(Template)]
#[template(path = "cmdb_model.html")]
struct ModelPage {
    t: Tr,
    me: Option<Me>,
    notice: Option<String>,
    error: Option<String>,
    csrf: String,
    can_write: bool,
    key: String,
    name: String,
    version: i64,
    builtin: bool,
    updated_by: String,
    updated_at: String,
    attrs: Vec<AttrRow>,
    versions: Vec<VersionLine>,
    pending: Vec<PendingLine>,
    definition: String,
    report: Option<ReportView>,
}

fn attr_rows(t: Tr, m: &Model) -> Vec<AttrRow> {
    use ballast_cmdb::AttrType;
    m.attributes
        .iter()
        .map(|a| AttrRow {
            key: a.key.clone(),
            label: format!("{} / {}", a.name_zh, a.name_en),
            ty: format!("{} ({})", t.pick(a.ty.name_zh(), a.ty.key()), a.ty.key()),
            required: a.required,
            unique: a.unique,
            discovered: a.discovered,
            pattern: a.pattern.clone().unwrap_or_default(),
            values: match &a.ty {
                AttrType::Enum { values } => values.join(", "),
                _ => String::new(),
            },
            reference: match &a.ty {
                AttrType::Reference { model } => model.clone(),
                _ => String::new(),
            },
        })
        .collect()
}

async fn model_view(
    state: &AppState,
    page: &Page,
    key: &str,
    flash: Flash,
    definition: Option<String>,
    report: Option<ReportView>,
) -> Response {
    let t = page.t;
    if let Err(e) = service::authorize_read_any(state, page.principal(), "cmdb.model.read").await {
        return refused(t, &e);
    }
    let (row, m): (CmdbModelRow, Model) = match service::models(state).await {
        Ok(mut all) => match all.remove(key) {
            Some(x) => x,
            None => return refused(t, &ApiError::not_found(&format!("CMDB model {key}"))),
        },
        Err(e) => return refused(t, &e),
    };
    let mut versions: Vec<VersionLine> = state
        .store
        .cmdb_model_versions(key)
        .await
        .unwrap_or_default()
        .iter()
        .map(|v: &CmdbModelVersionRow| VersionLine {
            version: v.version,
            author: v.author.clone(),
            at: beijing(v.created_at),
            note: v.note.clone(),
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let prefix = format!("{key}@");
    let pending = state
        .store
        .approvals(Some("pending"), 1000)
        .await
        .unwrap_or_default()
        .iter()
        .filter(|a| {
            a.kind == service::MODEL_CHANGE_APPROVAL
                && a.object_type == "cmdb_model"
                && a.object_id.starts_with(&prefix)
        })
        .map(|a| PendingLine {
            id: a.id,
            object: a.object_id.clone(),
            requested_by: a.requested_by.clone(),
            at: beijing(a.requested_at),
            invalid: a
                .payload
                .get("invalid_instances")
                .map(shown)
                .unwrap_or_default(),
        })
        .collect();
    let definition = definition.unwrap_or_else(|| pretty(&m));
    let me = page.me();
    html(ModelPage {
        t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: flash.notice,
        error: flash.error,
        can_write: can_write_models(page),
        key: m.key.clone(),
        name: t.pick(&m.name_zh, &m.name_en).to_string(),
        version: row.version,
        builtin: row.builtin,
        updated_by: row.updated_by.clone(),
        updated_at: beijing(row.updated_at),
        attrs: attr_rows(t, &m),
        versions,
        pending,
        definition,
        report,
    })
}

/// A model as the editor shows it: pretty JSON without `builtin` (which the server keeps).
fn pretty(m: &Model) -> String {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("builtin");
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

async fn model_page(
    State(state): State<AppState>,
    page: Page,
    Path(key): Path<String>,
    Params(flash): Params<Flash>,
) -> Response {
    model_view(&state, &page, &key, flash, None, None).await
}

#[derive(Deserialize)]
struct ModelForm {
    csrf: String,
    #[serde(default)]
    definition: String,
    /// `check` or `save`.
    #[serde(default)]
    action: String,
}

/// The definition's JSON, or an error naming its line and column.
fn parse_definition(text: &str) -> Result<Model, ApiError> {
    serde_json::from_str::<Model>(text).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Problem::field(
                "cmdb.model_json",
                "definition",
                format!("定义第 {} 行第 {} 列：{e}", e.line(), e.column()),
                format!("definition line {}, column {}: {e}", e.line(), e.column()),
            ),
        )
    })
}

/// What a check or save of a posted definition gives: where to go (saved), or the page again
/// with the definition as typed and a report or an error.
enum Outcome {
    Saved(String),
    Again(Option<ReportView>, Option<String>, StatusCode),
}

async fn submit_model(
    state: &AppState,
    page: &Page,
    path_key: Option<&str>,
    f: &ModelForm,
) -> Outcome {
    let t = page.t;
    let p = page.principal();
    let m = match parse_definition(&f.definition) {
        Ok(m) => m,
        Err(e) => return Outcome::Again(None, Some(refusal(t, &e)), e.status),
    };
    if let Some(k) = path_key
        && m.key != k
    {
        let e = ApiError::bad_request(Problem::field(
            "cmdb.model_key_mismatch",
            "key",
            format!("字段 key：此页面是模型 {k}，定义中却是 {}", m.key),
            format!(
                "field key: this page is model {k} but the definition defines {}",
                m.key
            ),
        ));
        return Outcome::Again(None, Some(refusal(t, &e)), e.status);
    }
    if f.action == "check" {
        let checked = match service::authorize_read_any(state, p, "cmdb.model.check").await {
            Ok(()) => service::plan_model_change(state, &m).await,
            Err(e) => Err(e),
        };
        return match checked {
            Ok(r) => Outcome::Again(Some(ReportView::new(t, &r)), None, StatusCode::OK),
            Err(e) => Outcome::Again(None, Some(refusal(t, &e)), e.status),
        };
    }
    match service::save_model(state, p, &m).await {
        Ok(r) => {
            let path = format!("/cmdb/models/{}", m.key);
            let msg = match r.approval {
                Some(id) => format!(
                    "{} {} {}{id}{}",
                    t.pick("此变更会使", "This change would invalidate"),
                    r.invalid_instances,
                    t.pick(
                        "个现有实例失效，未生效：已提交审批 #",
                        "existing instances and was not applied: approval request #"
                    ),
                    t.pick(
                        "，须另一位有审批权限的人在“审批”页（/approvals）批准",
                        " was filed; another person who may approve decides it on /approvals"
                    ),
                ),
                None if r.changes.is_empty() && r.version > 1 => {
                    t.pick("没有变更", "nothing changed").to_string()
                }
                None => format!(
                    "{} {}",
                    t.pick("已保存，版本", "saved as version"),
                    r.version
                ),
            };
            let q = serde_urlencoded::to_string([("notice", msg.as_str())]).unwrap_or_default();
            Outcome::Saved(format!("{path}?{q}"))
        }
        Err(e) => Outcome::Again(None, Some(refusal(t, &e)), e.status),
    }
}

fn again(mut r: Response, status: StatusCode) -> Response {
    if r.status().is_success() {
        *r.status_mut() = status;
    }
    r
}

/// `POST /cmdb/models`: a new model.
async fn model_new_post(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<ModelForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    match submit_model(&state, &page, None, &f).await {
        Outcome::Saved(to) => axum::response::Redirect::to(&to).into_response(),
        Outcome::Again(report, error, status) => {
            let flash = Flash {
                notice: None,
                error,
            };
            again(
                models_view(&state, &page, flash, Some(f.definition.clone()), report).await,
                status,
            )
        }
    }
}

/// `POST /cmdb/models/{key}`: check or save a new definition of the model.
async fn model_post(
    State(state): State<AppState>,
    page: Page,
    Path(key): Path<String>,
    Form(f): Form<ModelForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    match submit_model(&state, &page, Some(&key), &f).await {
        Outcome::Saved(to) => axum::response::Redirect::to(&to).into_response(),
        Outcome::Again(report, error, status) => {
            let flash = Flash {
                notice: None,
                error,
            };
            again(
                model_view(
                    &state,
                    &page,
                    &key,
                    flash,
                    Some(f.definition.clone()),
                    report,
                )
                .await,
                status,
            )
        }
    }
}

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/cmdb/models", get(models_page).post(model_new_post))
        .route("/cmdb/models/{key}", get(model_page).post(model_post))
        .route("/cmdb/instances/new", get(new_instance_form))
        .route("/cmdb/instances", post(new_instance_post))
        .route("/cmdb/instances/{id}/delete", post(instance_delete))
        .route("/cmdb/instances/{id}/relations", post(relation_add))
        .route("/cmdb/relations/{id}/delete", post(relation_remove))
}
