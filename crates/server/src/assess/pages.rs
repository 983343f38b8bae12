//! The assessments' web pages. Every form posts to a page route that calls the same
//! `super::service` function as the API (guard pipeline, per-person checks, audit) and redirects
//! back with a notice or the refusal; no rule is decided here. What a page offers (buttons, which
//! form is enabled) follows the same rules only to spare people a refused click.
//!
//! - `/assessments`: the list (both maturity levels, progress apart from compliance) and the
//!   create form;
//! - `/assessments/{id}`: levels, progress, the radar chart by domain and the items × levels heat
//!   map (SVG from the maturity crate's HTML report), items with assessor and reviewer (the owner
//!   assigns them here), targets, the state buttons the owner may use, gaps toward the targets,
//!   export downloads;
//! - `/assessments/{id}/items/{item}`: the item laid out like the standard's table (aspects ×
//!   levels); each clause with its rating, comment, `na` justification, evidence (file upload,
//!   link, platform reference), who rated it and when; one form saves the whole table; the
//!   reviewer's approve / request-changes form;
//! - `/assessments/compare?a=&b=`: two assessments side by side and the trend of both maturity
//!   levels over the assessments of one catalog version.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Multipart, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ballast_core::Problem;
use ballast_maturity::report as mreport;
use serde::Deserialize;

use super::api::{
    AssessmentSummary, AssessmentView, EvidenceView, ItemView, attachment, compare_ids,
    export_bytes, list, load, upload_limit, view,
};
use super::report as areport;
use super::service::{
    self, Assignment, CreateInput, EvidenceInput, RatingInput, ReviewInput, TargetsInput,
    Transition, authorize_read,
};
use super::{
    APPROVED, CHANGES_REQUESTED, DRAFT, FILE, IN_PROGRESS, IN_REVIEW, LINK, OPEN, PLATFORM,
    SIGNED_OFF, SUBMITTED, catalog,
};
use crate::api::Id;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::{Me, Page, Tr, back, fail, html, refusal, ts};

/// How the pages show a level (or none: out of scope) and an optional name.
trait Show {
    fn lvl(&self, v: impl std::borrow::Borrow<Option<u8>>) -> String {
        v.borrow()
            .map_or_else(|| "—".to_string(), |l| l.to_string())
    }
    fn opt<'a>(&self, v: impl std::borrow::Borrow<Option<&'a str>>) -> String {
        v.borrow().unwrap_or("—").to_string()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    pub notice: Option<String>,
    pub error: Option<String>,
}

fn refused(t: Tr, e: &ApiError) -> Response {
    (e.status, t.problem(&e.problem)).into_response()
}

fn bad_form(code: &'static str, field: &str, zh: String, en: String) -> ApiError {
    ApiError::bad_request(Problem::field(code, field, zh, en))
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// `T5=3, T6=2` (commas, semicolons or spaces between entries) as the service's targets.
fn parse_targets(text: &str) -> Result<BTreeMap<String, u8>, ApiError> {
    let mut out = BTreeMap::new();
    for entry in text
        .split(|c: char| c == ',' || c == ';' || c == '，' || c == '；' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let parsed = entry
            .split_once(['=', ':'])
            .and_then(|(k, v)| Some((k.trim().to_string(), v.trim().parse::<u8>().ok()?)));
        let Some((k, v)) = parsed else {
            return Err(bad_form(
                "assess.targets_syntax",
                "targets",
                format!("目标 {entry:?} 格式不对，应形如 T5=3"),
                format!("target {entry:?} is malformed: expected e.g. T5=3"),
            ));
        };
        out.insert(k, v);
    }
    Ok(out)
}

fn targets_text(targets: &BTreeMap<String, u8>) -> String {
    targets
        .iter()
        .map(|(t, l)| format!("T{t}={l}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------- list and create

#[derive(Template)]
#[template(path = "assess_list.html")]
struct ListPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    rows: Vec<AssessmentSummary>,
    catalog_id: String,
    catalog_version: String,
    username: String,
}

impl Show for ListPage {}

async fn list_page(State(state): State<AppState>, page: Page, Query(f): Query<Flash>) -> Response {
    if let Err(e) = authorize_read(&state, page.principal(), "assessment.list").await {
        return refused(page.t, &e);
    }
    let (rows, error) = match list(&state).await {
        Ok(r) => (r, f.error),
        Err(e) => (Vec::new(), Some(page.t.problem(&e.problem))),
    };
    let (catalog_id, catalog_version) = match catalog() {
        Ok(c) => (c.id().to_string(), c.version().to_string()),
        Err(e) => return refused(page.t, &e),
    };
    let me = page.me();
    html(ListPage {
        t: page.t,
        csrf: me.csrf.clone(),
        username: me.username.clone(),
        me: Some(me),
        notice: f.notice,
        error,
        rows,
        catalog_id,
        catalog_version,
    })
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf: String,
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    targets: String,
    #[serde(default)]
    organization: String,
    #[serde(default)]
    period: String,
}

async fn post_create(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<CreateForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let targets = match parse_targets(&f.targets) {
        Ok(t) => t,
        Err(e) => return fail(page.t, "/assessments", &e),
    };
    let nonempty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let mut meta = BTreeMap::new();
    for (k, v) in [("organization", &f.organization), ("period", &f.period)] {
        if let Some(v) = nonempty(v) {
            meta.insert(k.to_string(), v);
        }
    }
    let input = CreateInput {
        name: f.name,
        scope: nonempty(&f.scope),
        targets,
        owner: nonempty(&f.owner),
        meta,
    };
    match service::create(&state, page.principal(), &input).await {
        Ok(id) => back(
            &format!("/assessments/{id}"),
            "notice",
            page.t.pick(
                "评估已创建（草稿）：请分配评估人与审核人，然后开始评估",
                "Assessment created (draft): assign assessors and reviewers, then start it",
            ),
        ),
        Err(e) => fail(page.t, "/assessments", &e),
    }
}

// ---------------------------------------------------------------- one assessment

/// A state button the owner may press now.
pub struct StateButton {
    pub to: &'static str,
    pub label: &'static str,
    /// Reopening needs a reason.
    pub reason: bool,
}

#[derive(Template)]
#[template(path = "assess_view.html")]
struct ViewPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    v: AssessmentView,
    notices: Vec<String>,
    /// The owner may still assign items and set targets (not signed off).
    can_manage: bool,
    buttons: Vec<StateButton>,
    targets_text: String,
    radar: String,
    heat: String,
    exports: Vec<(&'static str, &'static str)>,
    /// Improvement actions (overdue ones highlighted).
    actions: Vec<super::api::ActionView>,
    /// Today (Beijing), the default due date of a new action.
    today: String,
    /// The reader owns the assessment (creates actions from gaps).
    is_owner: bool,
}

impl Show for ViewPage {}

impl ViewPage {
    fn val(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
}

const EXPORTS: [(&str, &str); 6] = [
    ("yaml", "答卷 YAML answers"),
    ("xlsx", "答卷 XLSX answers workbook"),
    ("json", "报告 JSON report"),
    ("html", "报告 HTML report"),
    ("report-xlsx", "报告 XLSX report workbook"),
    ("pdf", "报告 PDF report"),
];

async fn view_page(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Query(f): Query<Flash>,
) -> Response {
    if let Err(e) = authorize_read(&state, page.principal(), "assessment.read").await {
        return refused(page.t, &e);
    }
    let loaded = match load(&state, id).await {
        Ok(l) => l,
        Err(e) => return refused(page.t, &e),
    };
    let (v, r) = match (view(&loaded), loaded.answer_set(), catalog()) {
        (Ok(v), Ok(set), Ok(cat)) => (v, areport::build(cat, &set)),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return refused(page.t, &e),
    };
    let t = page.t;
    let notices = loaded
        .evidence
        .iter()
        .filter(|e| e.expired_at.is_some())
        .map(|e| {
            let expires = e.expires_on.map(|d| d.to_string()).unwrap_or_default();
            t.pick(
                &format!(
                    "条款 {} 的证据 {}（有效期至 {expires}）已过期，该条款已退回未评",
                    e.clause_id, e.name
                ),
                &format!(
                    "evidence {} of clause {} expired (valid through {expires}); the clause is unrated again",
                    e.name, e.clause_id
                ),
            )
            .to_string()
        })
        .collect();
    let actions = match super::api::actions(&state, id).await {
        Ok(a) => a,
        Err(e) => return refused(page.t, &e),
    };
    let today = ballast_core::guard::china_date(state.clock.now()).to_string();
    let me = page.me();
    let is_owner = me.username == v.assessment.owner;
    let st = v.assessment.state.as_str();
    let mut buttons = Vec::new();
    if is_owner {
        let b = |to, zh, en, reason| StateButton {
            to,
            label: t.pick(zh, en),
            reason,
        };
        match st {
            DRAFT => buttons.push(b("start", "开始评估", "Start the assessment", false)),
            IN_PROGRESS => buttons.push(b("submit", "提交审核", "Submit for review", false)),
            IN_REVIEW => buttons.push(b("sign_off", "签署", "Sign off", false)),
            SIGNED_OFF => buttons.push(b("reopen", "重新打开", "Reopen", true)),
            _ => {}
        }
    }
    html(ViewPage {
        t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error: f.error,
        can_manage: is_owner && st != SIGNED_OFF,
        buttons,
        targets_text: targets_text(&v.targets),
        radar: mreport::radar_svg(&r),
        heat: mreport::heat_svg(&r),
        exports: EXPORTS.to_vec(),
        actions,
        today,
        is_owner,
        v,
        notices,
    })
}

/// A new improvement action (from a gap row) or a changed one.
#[derive(Deserialize)]
pub struct ActionForm {
    csrf: String,
    item: String,
    title: String,
    owner: String,
    due_on: String,
    #[serde(default)]
    status: String,
    /// Clause IDs separated by spaces or commas.
    #[serde(default)]
    clauses: String,
}

impl ActionForm {
    fn input(&self) -> service::ActionInput {
        service::ActionInput {
            item: self.item.trim().to_string(),
            title: self.title.clone(),
            owner: self.owner.trim().to_string(),
            due_on: self.due_on.clone(),
            status: Some(self.status.clone()).filter(|s| !s.is_empty()),
            clauses: self
                .clauses
                .split([' ', ',', '，'])
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

async fn post_action(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let path = format!("/assessments/{id}");
    match service::create_action(&state, page.principal(), id, &f.input()).await {
        Ok(aid) => back(
            &path,
            "notice",
            &format!(
                "{} #{aid}",
                page.t.pick("已创建改进措施", "Improvement action created")
            ),
        ),
        Err(e) => fail(page.t, &path, &e),
    }
}

async fn post_action_update(
    State(state): State<AppState>,
    page: Page,
    Path((id, aid)): Path<(i64, i64)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let path = format!("/assessments/{id}");
    match service::update_action(&state, page.principal(), aid, &f.input()).await {
        Ok(()) => back(
            &path,
            "notice",
            &format!(
                "{} #{aid}",
                page.t.pick("已更新改进措施", "Improvement action updated")
            ),
        ),
        Err(e) => fail(page.t, &path, &e),
    }
}

async fn actions_csv_page(State(state): State<AppState>, page: Page, Id(id): Id) -> Response {
    match super::api::actions_csv(&state, page.principal(), id).await {
        Ok(r) => r,
        Err(e) => refused(page.t, &e),
    }
}

async fn post_assign(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/assessments/{id}");
    let fields: BTreeMap<String, String> = f.into_iter().collect();
    if let Some(r) = page.csrf_refusal(fields.get("csrf").map_or("", String::as_str)) {
        return r;
    }
    let items = match state.store.assessment_items(id).await {
        Ok(i) => i,
        Err(e) => return fail(page.t, &path, &ApiError::from(e)),
    };
    let who = |k: String| {
        fields
            .get(&k)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut changed = Vec::new();
    for i in &items {
        let (Some(assessor), Some(reviewer)) = (
            fields
                .get(&format!("assessor:T{}", i.item_table))
                .map(|_| who(format!("assessor:T{}", i.item_table))),
            fields
                .get(&format!("reviewer:T{}", i.item_table))
                .map(|_| who(format!("reviewer:T{}", i.item_table))),
        ) else {
            continue;
        };
        if assessor != i.assessor || reviewer != i.reviewer {
            changed.push(Assignment {
                item: format!("T{}", i.item_table),
                assessor,
                reviewer,
            });
        }
    }
    if changed.is_empty() {
        return back(
            &path,
            "notice",
            page.t.pick("分配没有变化", "No assignment changed"),
        );
    }
    match service::assign(&state, page.principal(), id, &changed).await {
        Ok(()) => back(
            &path,
            "notice",
            &format!(
                "{} {}",
                page.t.pick("已更新分配：", "Assignments updated:"),
                changed
                    .iter()
                    .map(|c| c.item.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(e) => fail(page.t, &path, &e),
    }
}

#[derive(Deserialize)]
pub struct TargetsForm {
    csrf: String,
    #[serde(default)]
    targets: String,
}

async fn post_targets(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Form(f): Form<TargetsForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let path = format!("/assessments/{id}");
    let input = match parse_targets(&f.targets) {
        Ok(targets) => TargetsInput { targets },
        Err(e) => return fail(page.t, &path, &e),
    };
    match service::set_targets(&state, page.principal(), id, &input).await {
        Ok(()) => back(&path, "notice", page.t.pick("目标已保存", "Targets saved")),
        Err(e) => fail(page.t, &path, &e),
    }
}

#[derive(Deserialize)]
pub struct TransitionForm {
    csrf: String,
    to: Transition,
    #[serde(default)]
    reason: String,
}

async fn post_transition(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    Form(f): Form<TransitionForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let path = format!("/assessments/{id}");
    let reason = Some(f.reason.as_str()).filter(|r| !r.trim().is_empty());
    match service::transition(&state, page.principal(), id, f.to, reason).await {
        Ok(()) => back(
            &path,
            "notice",
            match f.to {
                Transition::Start => page.t.pick("评估已开始", "Assessment started"),
                Transition::Submit => page.t.pick("已提交审核", "Submitted for review"),
                Transition::SignOff => page
                    .t
                    .pick("已签署，评估已锁定", "Signed off; the assessment is locked"),
                Transition::Reopen => page.t.pick("已重新打开", "Reopened"),
            },
        ),
        Err(e) => fail(page.t, &path, &e),
    }
}

async fn export_page(
    State(state): State<AppState>,
    page: Page,
    Path((id, format)): Path<(i64, String)>,
) -> Response {
    if let Err(e) = authorize_read(&state, page.principal(), "assessment.export").await {
        return refused(page.t, &e);
    }
    match export_bytes(&state, id, &format).await {
        Ok((ct, name, bytes)) => attachment(ct, &name, bytes),
        Err(e) => refused(page.t, &e),
    }
}

async fn evidence_page(
    State(state): State<AppState>,
    page: Page,
    Path((id, eid)): Path<(i64, i64)>,
) -> Response {
    if let Err(e) = authorize_read(&state, page.principal(), "assessment.evidence_read").await {
        return refused(page.t, &e);
    }
    match state.store.evidence_content(eid).await {
        Ok(Some((row, Some(bytes)))) if row.assessment_id == id => {
            attachment("application/octet-stream", &row.name, bytes)
        }
        Ok(_) => refused(
            page.t,
            &ApiError::not_found(&format!("evidence file {eid} of assessment {id}")),
        ),
        Err(e) => refused(page.t, &ApiError::from(e)),
    }
}

#[derive(Deserialize)]
pub struct EvidenceDeleteForm {
    csrf: String,
    item: String,
}

async fn post_evidence_delete(
    State(state): State<AppState>,
    page: Page,
    Path((id, eid)): Path<(i64, i64)>,
    Form(f): Form<EvidenceDeleteForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let item: String = f.item.chars().filter(char::is_ascii_alphanumeric).collect();
    let path = format!("/assessments/{id}/items/{item}");
    match service::delete_evidence(&state, page.principal(), id, eid).await {
        Ok(()) => back(
            &path,
            "notice",
            page.t.pick("证据已删除", "Evidence removed"),
        ),
        Err(e) => fail(page.t, &path, &e),
    }
}

// ---------------------------------------------------------------- an item: the rating table

/// A rating in a clause's select.
pub struct Opt {
    pub key: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// One clause in the item's table.
pub struct ClauseView {
    pub id: String,
    /// The id with `_` for `.` (HTML ids and CSS selectors).
    pub key: String,
    pub letter: String,
    pub text: String,
    pub rating: String,
    pub options: Vec<Opt>,
    pub comment: String,
    pub justification: String,
    pub rated_by: String,
    pub rated_at: String,
    pub na_approved_by: String,
    pub evidence: Vec<EvidenceView>,
}

/// One cell: an aspect at a level.
pub struct CellView {
    pub level: u8,
    pub clauses: Vec<ClauseView>,
}

/// One aspect (a row of the standard's table) with its computed level.
pub struct AspectRow {
    pub name_zh: String,
    pub name_en: String,
    pub level: u8,
    pub cells: Vec<CellView>,
}

#[derive(Template)]
#[template(path = "assess_item.html")]
struct ItemPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    a: AssessmentSummary,
    item: ItemView,
    levels: Vec<u8>,
    rows: Vec<AspectRow>,
    can_edit: bool,
    /// Why the table is read-only for this person now (when it is).
    locked_reason: String,
    can_submit: bool,
    can_approve: bool,
    can_request_changes: bool,
    max_evidence_mib: u64,
}

impl Show for ItemPage {}

impl ItemPage {
    fn size(&self, v: &Option<i64>) -> String {
        match *v {
            Some(n) if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
            Some(n) if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
            Some(n) => format!("{n} B"),
            None => String::new(),
        }
    }
}

const RATINGS: [(&str, &str, &str); 5] = [
    ("unrated", "未评", "Unrated"),
    ("met", "符合", "Met"),
    ("partial", "部分符合", "Partial"),
    ("not_met", "不符合", "Not met"),
    ("na", "不适用", "Not applicable"),
];

fn item_table(item: &str) -> Result<u32, ApiError> {
    let n = item
        .trim()
        .trim_start_matches(['T', 't'])
        .parse::<u32>()
        .ok();
    match (n, catalog()?) {
        (Some(n), cat) if cat.item(n).is_some() => Ok(n),
        _ => Err(ApiError::not_found(&format!("capability item {item}"))),
    }
}

async fn item_page(
    State(state): State<AppState>,
    page: Page,
    Path((id, item)): Path<(i64, String)>,
    Query(f): Query<Flash>,
) -> Response {
    let t = page.t;
    if let Err(e) = authorize_read(&state, page.principal(), "assessment.read").await {
        return refused(t, &e);
    }
    let table = match item_table(&item) {
        Ok(n) => n,
        Err(e) => return refused(t, &e),
    };
    let loaded = match load(&state, id).await {
        Ok(l) => l,
        Err(e) => return refused(t, &e),
    };
    let (v, report, cat) = match (view(&loaded), loaded.answer_set(), catalog()) {
        (Ok(v), Ok(set), Ok(cat)) => (v, areport::build(cat, &set), cat),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return refused(t, &e),
    };
    let (Some(iv), Some(res), Some(cref)) = (
        v.items.iter().find(|i| i.table == table).cloned(),
        report.items.iter().find(|i| i.table == table),
        cat.item(table),
    ) else {
        return refused(
            t,
            &ApiError::not_found(&format!("T{table} in assessment {id}")),
        );
    };
    let answers: BTreeMap<&str, _> = loaded
        .answers
        .iter()
        .map(|a| (a.clause_id.as_str(), a))
        .collect();
    let levels: Vec<u8> = (1..=cref.item.levels).collect();
    let rows = cref
        .item
        .aspects
        .iter()
        .enumerate()
        .map(|(k, asp)| AspectRow {
            name_zh: asp.name_zh.clone(),
            name_en: asp.name_en.clone(),
            level: res.aspects.get(k).map_or(0, |x| x.level),
            cells: levels
                .iter()
                .map(|&l| CellView {
                    level: l,
                    clauses: asp
                        .cells
                        .iter()
                        .filter(|c| c.level == l)
                        .flat_map(|c| c.clauses.iter())
                        .map(|c| {
                            let ans = answers.get(c.id.as_str());
                            let rating = ans.map_or("unrated", |a| a.rating.as_str()).to_string();
                            ClauseView {
                                key: c.id.replace('.', "_"),
                                letter: c.id.rsplit('.').next().unwrap_or("").to_string(),
                                text: c.text_zh.clone(),
                                options: RATINGS
                                    .iter()
                                    .map(|(k, zh, en)| Opt {
                                        key: k,
                                        label: t.pick(zh, en),
                                        selected: *k == rating,
                                    })
                                    .collect(),
                                rating,
                                comment: ans.and_then(|a| a.comment.clone()).unwrap_or_default(),
                                justification: ans
                                    .and_then(|a| a.justification.clone())
                                    .unwrap_or_default(),
                                rated_by: ans.and_then(|a| a.rated_by.clone()).unwrap_or_default(),
                                rated_at: ts(ans.and_then(|a| a.rated_at)),
                                na_approved_by: ans
                                    .and_then(|a| a.na_approved_by.clone())
                                    .unwrap_or_default(),
                                evidence: v
                                    .evidence
                                    .iter()
                                    .filter(|e| e.clause == c.id)
                                    .cloned()
                                    .collect(),
                                id: c.id.clone(),
                            }
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let me = page.me();
    let st = v.assessment.state.as_str();
    let working = st == IN_PROGRESS || st == IN_REVIEW;
    let assessor = iv.assessor.as_deref().unwrap_or(&v.assessment.owner);
    let open = iv.review_state == OPEN || iv.review_state == CHANGES_REQUESTED;
    let is_assessor = me.username == assessor;
    let is_reviewer = iv.reviewer.as_deref() == Some(me.username.as_str());
    let can_edit = working && is_assessor && open;
    let locked_reason = if can_edit {
        String::new()
    } else if st == SIGNED_OFF {
        t.pick(
            "评估已签署并锁定，不能修改（须由负责人重新打开）",
            "The assessment is signed off and locked (its owner can reopen it)",
        )
        .to_string()
    } else if !working {
        t.pick(
            "评估尚未开始，开始后才能评级",
            "The assessment has not started; rating begins when its owner starts it",
        )
        .to_string()
    } else if !is_assessor {
        format!(
            "{} {assessor}",
            t.pick(
                "只有该能力项的评估人可以评级：",
                "Only the item's assessor rates it:"
            )
        )
    } else {
        t.pick(
            "能力项已提交或已通过，审核人退回后才能修改",
            "The item is submitted or approved: it can change once its reviewer sends it back",
        )
        .to_string()
    };
    html(ItemPage {
        t,
        csrf: me.csrf.clone(),
        me: Some(me),
        notice: f.notice,
        error: f.error,
        can_submit: can_edit,
        can_approve: working && is_reviewer && iv.review_state == SUBMITTED,
        can_request_changes: working
            && is_reviewer
            && (iv.review_state == SUBMITTED || iv.review_state == APPROVED),
        can_edit,
        locked_reason,
        a: v.assessment,
        item: iv,
        levels,
        rows,
        max_evidence_mib: state.config.assess.max_evidence_bytes >> 20,
    })
}

/// What the item form sent: text fields and chosen files (name, bytes) by field name.
struct ItemForm {
    text: BTreeMap<String, String>,
    files: BTreeMap<String, (String, Vec<u8>)>,
}

async fn read_item_form(mut mp: Multipart) -> Result<ItemForm, ApiError> {
    let broken = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(
            e.status(),
            Problem::new(
                "assess.upload_failed",
                format!("表单上传失败：{}", e.body_text()),
                format!("the form upload failed: {}", e.body_text()),
            ),
        )
    };
    let mut form = ItemForm {
        text: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    while let Some(field) = mp.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_string();
        match field.file_name().map(str::to_string) {
            Some(file) => {
                let bytes = field.bytes().await.map_err(broken)?;
                // A file input with nothing chosen sends an empty part without a name.
                if !file.is_empty() {
                    form.files.insert(name, (file, bytes.to_vec()));
                }
            }
            None => {
                let value = field.text().await.map_err(broken)?;
                form.text.insert(name, value);
            }
        }
    }
    Ok(form)
}

async fn post_item(
    State(state): State<AppState>,
    page: Page,
    Path((id, item)): Path<(i64, String)>,
    mp: Multipart,
) -> Response {
    let t = page.t;
    let table = match item_table(&item) {
        Ok(n) => n,
        Err(e) => return refused(t, &e),
    };
    let path = format!("/assessments/{id}/items/T{table}");
    let form = match read_item_form(mp).await {
        Ok(f) => f,
        Err(e) => return fail(t, &path, &e),
    };
    if let Some(r) = page.csrf_refusal(form.text.get("csrf").map_or("", String::as_str)) {
        return r;
    }
    let (cat, stored) = match (catalog(), state.store.assessment_answers(id).await) {
        (Ok(c), Ok(a)) => (c, a),
        (Err(e), _) => return fail(t, &path, &e),
        (_, Err(e)) => return fail(t, &path, &ApiError::from(e)),
    };
    let Some(cref) = cat.item(table) else {
        return refused(t, &ApiError::not_found(&format!("T{table}")));
    };
    let clean = |s: Option<&String>| s.map(|s| s.trim().to_string()).unwrap_or_default();
    let mut ratings = Vec::new();
    let mut evidence = Vec::new();
    for c in cref
        .item
        .aspects
        .iter()
        .flat_map(|a| a.cells.iter())
        .flat_map(|cell| cell.clauses.iter())
    {
        let cid = &c.id;
        if let Some(rating) = form.text.get(&format!("rating:{cid}")) {
            let comment = clean(form.text.get(&format!("comment:{cid}")));
            let justification = clean(form.text.get(&format!("justification:{cid}")));
            let old = stored.iter().find(|a| &a.clause_id == cid);
            let (old_rating, old_comment, old_just) = old.map_or(("unrated", "", ""), |a| {
                (
                    a.rating.as_str(),
                    a.comment.as_deref().unwrap_or(""),
                    a.justification.as_deref().unwrap_or(""),
                )
            });
            let changed = rating != old_rating
                || comment != old_comment
                || (rating == "na" && justification != old_just);
            if changed {
                ratings.push(RatingInput {
                    clause: cid.clone(),
                    rating: rating.clone(),
                    comment: Some(comment),
                    justification: Some(justification),
                });
            }
        }
        let expires_on =
            Some(clean(form.text.get(&format!("expires:{cid}")))).filter(|s| !s.is_empty());
        if let Some((name, bytes)) = form.files.get(&format!("file:{cid}")) {
            evidence.push(EvidenceInput {
                clause: cid.clone(),
                kind: FILE.into(),
                name: name.clone(),
                content: Some(bytes.clone()),
                expires_on: expires_on.clone(),
            });
        }
        for (kind, field) in [(LINK, "link"), (PLATFORM, "platform")] {
            let v = clean(form.text.get(&format!("{field}:{cid}")));
            if !v.is_empty() {
                evidence.push(EvidenceInput {
                    clause: cid.clone(),
                    kind: kind.into(),
                    name: v,
                    content: None,
                    expires_on: expires_on.clone(),
                });
            }
        }
    }
    if ratings.is_empty() && evidence.is_empty() {
        return back(&path, "notice", t.pick("没有变化", "Nothing changed"));
    }
    let mut saved = 0;
    if !ratings.is_empty() {
        match service::rate(&state, page.principal(), id, &ratings).await {
            Ok(n) => saved = n,
            Err(e) => return fail(t, &path, &e),
        }
    }
    let mut added = 0;
    for e in evidence {
        let clause = e.clause.clone();
        if let Err(err) = service::add_evidence(&state, page.principal(), id, e).await {
            let msg = format!(
                "{} {saved} / {added}. {clause}: {}",
                t.pick(
                    "已保存的评级 / 证据：",
                    "Ratings / evidence saved before the refusal:"
                ),
                refusal(t, &err)
            );
            return back(&path, "error", &msg);
        }
        added += 1;
    }
    back(
        &path,
        "notice",
        &format!(
            "{} {saved} · {} {added}",
            t.pick("已保存评级：", "Ratings saved:"),
            t.pick("新增证据：", "evidence added:")
        ),
    )
}

async fn post_item_submit(
    State(state): State<AppState>,
    page: Page,
    Path((id, item)): Path<(i64, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let path = format!("/assessments/{id}/items/{item}");
    match service::submit_item(&state, page.principal(), id, &item).await {
        Ok(()) => back(
            &path,
            "notice",
            page.t.pick("已提交审核", "Submitted for review"),
        ),
        Err(e) => fail(page.t, &path, &e),
    }
}

#[derive(Deserialize)]
pub struct ReviewForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    comment: String,
}

async fn post_item_review(
    State(state): State<AppState>,
    page: Page,
    Path((id, item)): Path<(i64, String)>,
    Form(f): Form<ReviewForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let path = format!("/assessments/{id}/items/{item}");
    let input = ReviewInput {
        decision: f.decision,
        comment: Some(f.comment),
    };
    match service::review_item(&state, page.principal(), id, &item, &input).await {
        Ok(()) => back(
            &path,
            "notice",
            if input.decision == "approve" {
                page.t.pick(
                    "能力项已审核通过（含其不适用条款）",
                    "Item approved (with its na answers)",
                )
            } else {
                page.t.pick("已退回修改", "Changes requested")
            },
        ),
        Err(e) => fail(page.t, &path, &e),
    }
}

// ---------------------------------------------------------------- comparison and trend

/// One item compared.
pub struct CmpRow {
    pub table: u32,
    pub name: String,
    pub a: String,
    pub b: String,
    /// `ok` (better), `bad` (worse) or empty.
    pub class: &'static str,
}

/// One assessment on the trend chart.
pub struct TrendPoint {
    pub id: i64,
    pub name: String,
    pub x: u32,
    pub tm: Option<(u32, u8)>,
    pub ta: Option<(u32, u8)>,
}

#[derive(Template)]
#[template(path = "assess_compare.html")]
struct ComparePage {
    t: Tr,
    me: Option<Me>,
    error: Option<String>,
    all: Vec<AssessmentSummary>,
    /// The chosen ids (0: none).
    a_id: i64,
    b_id: i64,
    /// Both maturity results, `a` and `b`.
    tm: (String, String),
    ta: (String, String),
    rows: Vec<CmpRow>,
    newly_met: Vec<String>,
    lost: Vec<String>,
    compared: bool,
    catalog_version: String,
    trend: Vec<TrendPoint>,
    tm_line: String,
    ta_line: String,
    trend_width: u32,
}

impl Show for ComparePage {}

#[derive(Deserialize)]
pub struct CompareQuery {
    a: Option<String>,
    b: Option<String>,
}

/// The y coordinate of a level on the trend chart (0 at the bottom, 5 at the top).
fn trend_y(level: u8) -> u32 {
    200 - 36 * u32::from(level.min(5))
}

async fn compare_page(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<CompareQuery>,
) -> Response {
    let t = page.t;
    if let Err(e) = authorize_read(&state, page.principal(), "assessment.compare").await {
        return refused(t, &e);
    }
    let all = match list(&state).await {
        Ok(l) => l,
        Err(e) => return refused(t, &e),
    };
    let pick = |s: &Option<String>| s.as_deref().and_then(|s| s.trim().parse::<i64>().ok());
    let (a, b) = (pick(&q.a), pick(&q.b));
    let mut page_v = ComparePage {
        t,
        me: Some(page.me()),
        error: None,
        all: Vec::new(),
        a_id: a.unwrap_or(0),
        b_id: b.unwrap_or(0),
        tm: (String::new(), String::new()),
        ta: (String::new(), String::new()),
        rows: Vec::new(),
        newly_met: Vec::new(),
        lost: Vec::new(),
        compared: false,
        catalog_version: String::new(),
        trend: Vec::new(),
        tm_line: String::new(),
        ta_line: String::new(),
        trend_width: 0,
    };
    if let (Some(a), Some(b)) = (a, b) {
        match compare_ids(&state, a, b).await {
            Ok(c) => {
                let l = |v: Option<u8>| v.map_or_else(|| "—".to_string(), |l| l.to_string());
                page_v.tm = (l(c.technical_management.0), l(c.technical_management.1));
                page_v.ta = (l(c.technical_application.0), l(c.technical_application.1));
                page_v.rows = c
                    .items
                    .iter()
                    .map(|i| CmpRow {
                        table: i.table,
                        name: t.pick(&i.name_zh, &i.name_en).to_string(),
                        a: l(i.level_a),
                        b: l(i.level_b),
                        class: match i.level_b.cmp(&i.level_a) {
                            std::cmp::Ordering::Greater => "ok",
                            std::cmp::Ordering::Less => "bad",
                            std::cmp::Ordering::Equal => "",
                        },
                    })
                    .collect();
                page_v.newly_met = c.newly_met;
                page_v.lost = c.lost;
                page_v.compared = true;
            }
            Err(e) => page_v.error = Some(refusal(t, &e)),
        }
    }
    // The trend: every assessment of the chosen (or bundled) catalog version, oldest first.
    let version = a
        .and_then(|a| all.iter().find(|x| x.id == a))
        .map(|x| x.catalog_version.clone())
        .or_else(|| catalog().ok().map(|c| c.version().to_string()))
        .unwrap_or_default();
    let mut series: Vec<&AssessmentSummary> = all
        .iter()
        .filter(|x| x.catalog_version == version)
        .collect();
    series.sort_by_key(|x| (x.created_at, x.id));
    let step = 90_u32;
    page_v.trend = series
        .iter()
        .enumerate()
        .map(|(k, x)| {
            let px = 50 + step * u32::try_from(k).unwrap_or(0);
            TrendPoint {
                id: x.id,
                name: x.name.clone(),
                x: px,
                tm: x.technical_management_level.map(|l| (trend_y(l), l)),
                ta: x.technical_application_level.map(|l| (trend_y(l), l)),
            }
        })
        .collect();
    let line = |f: fn(&TrendPoint) -> Option<(u32, u8)>| {
        page_v
            .trend
            .iter()
            .filter_map(|p| f(p).map(|(y, _)| format!("{},{y}", p.x)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    page_v.tm_line = line(|p| p.tm);
    page_v.ta_line = line(|p| p.ta);
    page_v.trend_width = 100 + step * u32::try_from(series.len()).unwrap_or(0);
    page_v.catalog_version = version;
    page_v.all = all;
    html(page_v)
}

pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/assessments", get(list_page).post(post_create))
        .route("/assessments/compare", get(compare_page))
        .route("/assessments/{id}", get(view_page))
        .route("/assessments/{id}/assign", post(post_assign))
        .route("/assessments/{id}/targets", post(post_targets))
        .route("/assessments/{id}/transition", post(post_transition))
        .route("/assessments/{id}/export/{format}", get(export_page))
        .route("/assessments/{id}/actions", post(post_action))
        .route("/assessments/{id}/actions/{aid}", post(post_action_update))
        .route("/assessments/{id}/actions.csv", get(actions_csv_page))
        .route("/assessments/{id}/evidence/{evidence}", get(evidence_page))
        .route(
            "/assessments/{id}/evidence/{evidence}/delete",
            post(post_evidence_delete),
        )
        .route(
            "/assessments/{id}/items/{item}",
            get(item_page)
                .post(post_item)
                .layer(DefaultBodyLimit::max(upload_limit(state))),
        )
        .route(
            "/assessments/{id}/items/{item}/submit",
            post(post_item_submit),
        )
        .route(
            "/assessments/{id}/items/{item}/review",
            post(post_item_review),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_text_parses_and_refuses() {
        let t = parse_targets("T5=3, T6:2；").unwrap_or_default();
        assert_eq!(t.get("T5"), Some(&3));
        assert_eq!(t.get("T6"), Some(&2));
        assert!(parse_targets("T5").is_err());
        assert!(parse_targets("").is_ok_and(|t| t.is_empty()));
        assert_eq!(trend_y(0), 200);
        assert_eq!(trend_y(5), 20);
    }
}
