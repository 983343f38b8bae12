//! `/api/v1/assessments…`: assessments, assignments, state changes, ratings (one or many),
//! item review, evidence (upload, link, reference; download), answers-file import with preview,
//! reports and exports (through the maturity crate's renderers), comparison, improvement actions.
//! Reads need `assessment.read`; changes go through `super::service` (guard pipeline, audit).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ballast_core::Problem;
use ballast_core::guard::china_date;
use ballast_maturity::report as mreport;
use ballast_maturity::{AnswerSet, answers};
use ballast_store::{AnswerRow, AssessmentItemRow, AssessmentRow, EvidenceRow};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::report::{self, Comparison, TargetGap, targets_of};
use super::service::{
    self, ActionInput, Assignment, CreateInput, EvidenceInput, ImportPreview, RatingInput,
    ReviewInput, TargetsInput, Transition, authorize_read,
};
use super::{FILE, catalog};
use crate::api::{Id, JsonBody};
use crate::auth::ApiCaller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

// ---------------------------------------------------------------- views

/// An assessment in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssessmentSummary {
    pub id: i64,
    pub name: String,
    pub catalog_id: String,
    pub catalog_version: String,
    /// `all` or `T4,T10-T20`.
    pub scope: String,
    pub owner: String,
    /// `draft`, `in_progress`, `in_review`, `signed_off`.
    pub state: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub signed_off_by: Option<String>,
    pub signed_off_at: Option<DateTime<Utc>>,
    /// 技术管理能力成熟度 (0–3), null when none of its classes is in scope.
    pub technical_management_level: Option<u8>,
    /// 技术应用能力成熟度 (0–5), null when 过程管理 is not in scope.
    pub technical_application_level: Option<u8>,
    /// Progress, kept apart from compliance: in-scope clauses with any rating but `unrated`.
    pub rated: usize,
    pub clauses: usize,
}

/// One in-scope item with its assignment, review and computed level.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemView {
    pub table: u32,
    pub domain_zh: String,
    pub name_zh: String,
    pub name_en: String,
    pub levels: u8,
    pub level: Option<u8>,
    pub target: Option<u8>,
    pub assessor: Option<String>,
    pub reviewer: Option<String>,
    /// `open`, `submitted`, `approved`, `changes_requested`.
    pub review_state: String,
    pub review_comment: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub rated: usize,
    pub clauses: usize,
}

/// One stored answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnswerView {
    pub clause: String,
    pub rating: String,
    pub comment: Option<String>,
    pub justification: Option<String>,
    pub na_approved_by: Option<String>,
    pub rated_by: Option<String>,
    pub rated_at: Option<DateTime<Utc>>,
}

impl AnswerView {
    fn of(r: &AnswerRow) -> AnswerView {
        AnswerView {
            clause: r.clause_id.clone(),
            rating: r.rating.clone(),
            comment: r.comment.clone(),
            justification: r.justification.clone(),
            na_approved_by: r.na_approved_by.clone(),
            rated_by: r.rated_by.clone(),
            rated_at: r.rated_at,
        }
    }
}

/// One piece of evidence (a file's bytes at `/api/v1/assessments/{id}/evidence/{evidence}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EvidenceView {
    pub id: i64,
    pub clause: String,
    /// `file`, `link`, `platform`, `text`.
    pub kind: String,
    pub name: String,
    pub sha256: Option<String>,
    pub size: Option<i64>,
    pub expires_on: Option<NaiveDate>,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
    /// Set when the expiry pass returned its clause to `unrated`.
    pub expired_at: Option<DateTime<Utc>>,
}

impl EvidenceView {
    pub fn of(e: &EvidenceRow) -> EvidenceView {
        EvidenceView {
            id: e.id,
            clause: e.clause_id.clone(),
            kind: e.kind.clone(),
            name: e.name.clone(),
            sha256: e.sha256.clone(),
            size: e.size,
            expires_on: e.expires_on,
            added_by: e.added_by.clone(),
            added_at: e.added_at,
            expired_at: e.expired_at,
        }
    }
}

/// Everything about one assessment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssessmentView {
    pub assessment: AssessmentSummary,
    /// Target level per item (`{"5": 3}`).
    pub targets: BTreeMap<String, u8>,
    pub meta: BTreeMap<String, String>,
    pub items: Vec<ItemView>,
    pub answers: Vec<AnswerView>,
    pub evidence: Vec<EvidenceView>,
    /// In-scope items below their target, with the missing clauses.
    pub target_gaps: Vec<TargetGap>,
}

/// The rows of one assessment.
pub struct Loaded {
    pub a: AssessmentRow,
    pub items: Vec<AssessmentItemRow>,
    pub answers: Vec<AnswerRow>,
    pub evidence: Vec<EvidenceRow>,
}

impl Loaded {
    pub fn answer_set(&self) -> ApiResult<AnswerSet> {
        Ok(report::answer_set(
            catalog()?,
            &self.a,
            &self.answers,
            &self.evidence,
        ))
    }
}

pub async fn load(state: &AppState, id: i64) -> ApiResult<Loaded> {
    let a = state
        .store
        .assessment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("assessment {id}")))?;
    Ok(Loaded {
        items: state.store.assessment_items(id).await?,
        answers: state.store.assessment_answers(id).await?,
        evidence: state.store.assessment_evidence(id).await?,
        a,
    })
}

fn summary(a: &AssessmentRow, r: &mreport::Report) -> AssessmentSummary {
    AssessmentSummary {
        id: a.id,
        name: a.name.clone(),
        catalog_id: a.catalog_id.clone(),
        catalog_version: a.catalog_version.clone(),
        scope: a.scope.clone(),
        owner: a.owner.clone(),
        state: a.state.clone(),
        created_by: a.created_by.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
        signed_off_by: a.signed_off_by.clone(),
        signed_off_at: a.signed_off_at,
        technical_management_level: r.technical_management_level,
        technical_application_level: r.technical_application_level,
        rated: r.metrics.ratings.rated(),
        clauses: r.metrics.ratings.total(),
    }
}

/// The view of a loaded assessment (levels and gaps from the maturity crate).
pub fn view(l: &Loaded) -> ApiResult<AssessmentView> {
    let cat = catalog()?;
    let set = l.answer_set()?;
    let r = report::build(cat, &set);
    let targets = targets_of(&l.a);
    let items = l
        .items
        .iter()
        .filter_map(|i| {
            let t = u32::try_from(i.item_table).ok()?;
            let res = r.items.iter().find(|x| x.table == t)?;
            Some(ItemView {
                table: t,
                domain_zh: res.domain_zh.clone(),
                name_zh: res.name_zh.clone(),
                name_en: res.name_en.clone(),
                levels: res.levels,
                level: res.level,
                target: targets.get(&t).copied(),
                assessor: i.assessor.clone(),
                reviewer: i.reviewer.clone(),
                review_state: i.review_state.clone(),
                review_comment: i.review_comment.clone(),
                reviewed_by: i.reviewed_by.clone(),
                reviewed_at: i.reviewed_at,
                rated: res.ratings.rated(),
                clauses: res.ratings.total(),
            })
        })
        .collect();
    Ok(AssessmentView {
        assessment: summary(&l.a, &r),
        targets: targets.iter().map(|(t, l)| (t.to_string(), *l)).collect(),
        meta: set
            .meta
            .iter()
            .filter(|(k, _)| k.as_str() != "name")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        items,
        answers: l.answers.iter().map(AnswerView::of).collect(),
        evidence: l.evidence.iter().map(EvidenceView::of).collect(),
        target_gaps: report::target_gaps(cat, &set, &targets),
    })
}

// ---------------------------------------------------------------- handlers

/// The id of something created.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: i64,
}

fn path_id(raw: &str, field: &str) -> ApiResult<i64> {
    match raw.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ApiError::bad_request(Problem::field(
            "request.invalid_id",
            field,
            format!("ID {raw:?} 无效，应为正整数"),
            format!("ID {raw:?} is invalid: expected a positive integer"),
        ))),
    }
}

#[utoipa::path(get, path = "/api/v1/assessments", tag = "assessments",
    responses((status = 200, body = [AssessmentSummary]), (status = 403, body = ErrorBody)))]
pub async fn list_assessments(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<AssessmentSummary>>> {
    authorize_read(&state, &caller.0, "assessment.list").await?;
    Ok(Json(list(&state).await?))
}

/// Every assessment with its levels and progress.
pub async fn list(state: &AppState) -> ApiResult<Vec<AssessmentSummary>> {
    let cat = catalog()?;
    let mut out = Vec::new();
    for a in state.store.assessments().await? {
        let l = load(state, a.id).await?;
        let r = report::build(cat, &l.answer_set()?);
        out.push(summary(&a, &r));
    }
    Ok(out)
}

#[utoipa::path(post, path = "/api/v1/assessments", tag = "assessments", request_body = CreateInput,
    responses((status = 201, body = Created), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn create_assessment(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(input): JsonBody<CreateInput>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let id = service::create(&state, &caller.0, &input).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PushParams {
    /// The new assessment's name.
    pub name: String,
    /// The answers file's name (`.xlsx` is read as a workbook, anything else as YAML).
    pub file: String,
}

#[utoipa::path(post, path = "/api/v1/assessments/from-answers", tag = "assessments", params(PushParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "an answers file (YAML or XLSX)"),
    responses((status = 201, body = Created), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_from_answers(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<PushParams>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let id = service::create_from_answers(&state, &caller.0, &q.name, &q.file, &body).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[utoipa::path(get, path = "/api/v1/assessments/{id}", tag = "assessments", params(("id" = i64, Path)),
    responses((status = 200, body = AssessmentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_assessment(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<Json<AssessmentView>> {
    authorize_read(&state, &caller.0, "assessment.read").await?;
    Ok(Json(view(&load(&state, id).await?)?))
}

#[utoipa::path(put, path = "/api/v1/assessments/{id}/targets", tag = "assessments", params(("id" = i64, Path)),
    request_body = TargetsInput,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_targets(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(input): JsonBody<TargetsInput>,
) -> ApiResult<StatusCode> {
    service::set_targets(&state, &caller.0, id, &input).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/assessments/{id}/assignments", tag = "assessments", params(("id" = i64, Path)),
    request_body = [Assignment],
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn assign(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(input): JsonBody<Vec<Assignment>>,
) -> ApiResult<StatusCode> {
    service::assign(&state, &caller.0, id, &input).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A state change.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionInput {
    pub to: Transition,
    /// Required to reopen.
    #[serde(default)]
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/assessments/{id}/transition", tag = "assessments", params(("id" = i64, Path)),
    request_body = TransitionInput,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn transition(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(input): JsonBody<TransitionInput>,
) -> ApiResult<StatusCode> {
    service::transition(&state, &caller.0, id, input.to, input.reason.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many answers were saved.
#[derive(Debug, Serialize, ToSchema)]
pub struct Saved {
    pub saved: usize,
}

#[utoipa::path(post, path = "/api/v1/assessments/{id}/answers", tag = "assessments", params(("id" = i64, Path)),
    request_body = [RatingInput],
    responses((status = 200, body = Saved), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rate(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(input): JsonBody<Vec<RatingInput>>,
) -> ApiResult<Json<Saved>> {
    let saved = service::rate(&state, &caller.0, id, &input).await?;
    Ok(Json(Saved { saved }))
}

#[utoipa::path(post, path = "/api/v1/assessments/{id}/items/{item}/submit", tag = "assessments",
    params(("id" = i64, Path), ("item" = String, Path, description = "T5")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn submit_item(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, item)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "id")?;
    service::submit_item(&state, &caller.0, id, &item).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/assessments/{id}/items/{item}/review", tag = "assessments",
    params(("id" = i64, Path), ("item" = String, Path, description = "T5")), request_body = ReviewInput,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn review_item(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, item)): Path<(String, String)>,
    JsonBody(input): JsonBody<ReviewInput>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "id")?;
    service::review_item(&state, &caller.0, id, &item, &input).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EvidenceParams {
    /// `T5.3.L2.c`.
    pub clause: String,
    /// `file` (the body holds its bytes), `link`, `platform` or `text`.
    pub kind: String,
    /// The file's name, the URL, the platform reference (`audit:1234`) or the text.
    pub name: String,
    /// `YYYY-MM-DD`: after this date the clause returns to `unrated`.
    pub expires_on: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/assessments/{id}/evidence", tag = "assessments",
    params(("id" = i64, Path), EvidenceParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file's bytes (kind file)"),
    responses((status = 201, body = Created), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn add_evidence(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    Query(q): Query<EvidenceParams>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let input = EvidenceInput {
        clause: q.clause,
        content: (q.kind == FILE).then(|| body.to_vec()),
        kind: q.kind,
        name: q.name,
        expires_on: q.expires_on,
    };
    let eid = service::add_evidence(&state, &caller.0, id, input).await?;
    Ok((StatusCode::CREATED, Json(Created { id: eid })))
}

#[utoipa::path(get, path = "/api/v1/assessments/{id}/evidence/{evidence}", tag = "assessments",
    params(("id" = i64, Path), ("evidence" = i64, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn download_evidence(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, evidence)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (id, eid) = (path_id(&id, "id")?, path_id(&evidence, "evidence")?);
    authorize_read(&state, &caller.0, "assessment.evidence_read").await?;
    let Some((row, Some(bytes))) = state
        .store
        .evidence_content(eid)
        .await?
        .filter(|(r, _)| r.assessment_id == id)
    else {
        return Err(ApiError::not_found(&format!("evidence file {eid}")));
    };
    Ok(attachment("application/octet-stream", &row.name, bytes))
}

#[utoipa::path(delete, path = "/api/v1/assessments/{id}/evidence/{evidence}", tag = "assessments",
    params(("id" = i64, Path), ("evidence" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_evidence(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, evidence)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (id, eid) = (path_id(&id, "id")?, path_id(&evidence, "evidence")?);
    service::delete_evidence(&state, &caller.0, id, eid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ImportParams {
    /// The answers file's name (`.xlsx` is read as a workbook, anything else as YAML).
    pub file: String,
    /// `true` applies the changes; absent or `false` only previews them.
    pub apply: Option<bool>,
}

#[utoipa::path(post, path = "/api/v1/assessments/{id}/import", tag = "assessments",
    params(("id" = i64, Path), ImportParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "an answers file (YAML or XLSX)"),
    responses((status = 200, body = ImportPreview), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import_answers(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    Query(q): Query<ImportParams>,
    body: Bytes,
) -> ApiResult<Json<ImportPreview>> {
    let p = service::import_answers(
        &state,
        &caller.0,
        id,
        &q.file,
        &body,
        q.apply.unwrap_or(false),
    )
    .await?;
    Ok(Json(p))
}

#[utoipa::path(get, path = "/api/v1/assessments/{id}/report", tag = "assessments", params(("id" = i64, Path)),
    responses((status = 200, description = "the JSON report (docs/MATURITY.md, schema_version 1)", content_type = "application/json"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_report(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<Json<mreport::Report>> {
    authorize_read(&state, &caller.0, "assessment.report").await?;
    let l = load(&state, id).await?;
    Ok(Json(report::build(catalog()?, &l.answer_set()?)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportParams {
    /// `yaml` (answers file), `xlsx` (answers workbook), `json`, `html`, `report-xlsx`
    /// (report workbook) or `pdf` (A4 report with an embedded CJK font).
    pub format: String,
}

pub(crate) fn attachment(content_type: &str, file: &str, body: Vec<u8>) -> Response {
    let ascii: String = file
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ascii}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// The report as a PDF, with the configured CJK font (read and rendered off the async threads).
async fn pdf(state: &AppState, r: mreport::Report) -> ApiResult<Vec<u8>> {
    let configured = state.config.assess.pdf_font.clone();
    let failed = |code: &'static str, zh: String, en: String| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Problem::new(code, zh, en),
        )
    };
    let joined = tokio::task::spawn_blocking(move || {
        let (path, bytes) = super::font::read(configured.as_deref()).map_err(PdfFailure::Font)?;
        mreport::render_pdf(&r, &bytes).map_err(|e| PdfFailure::Render(path, e))
    })
    .await
    .map_err(|e| {
        failed(
            "assess.export_failed",
            format!("PDF 生成中断：{e}"),
            format!("writing the PDF was interrupted: {e}"),
        )
    })?;
    joined.map_err(|e| match e {
        PdfFailure::Font(f) => {
            let msg = f.to_string();
            let (zh, en) = msg
                .split_once(" — ")
                .unwrap_or((msg.as_str(), msg.as_str()));
            failed(f.code(), zh.to_string(), en.to_string())
        }
        PdfFailure::Render(path, e) => {
            let msg = e.to_string();
            let (zh, en) = msg
                .split_once(" — ")
                .unwrap_or((msg.as_str(), msg.as_str()));
            failed(
                "assess.export_failed",
                format!("{zh}（字体 {}）", path.display()),
                format!("{en} (font {})", path.display()),
            )
        }
    })
}

enum PdfFailure {
    Font(super::font::FontError),
    Render(std::path::PathBuf, mreport::PdfError),
}

/// The bytes of an export, its content type and a file name.
pub async fn export_bytes(
    state: &AppState,
    id: i64,
    format: &str,
) -> ApiResult<(&'static str, String, Vec<u8>)> {
    let cat = catalog()?;
    let l = load(state, id).await?;
    let set = l.answer_set()?;
    let base = format!("assessment-{id}");
    let xlsx_err = |e: rust_xlsxwriter::XlsxError| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Problem::new(
                "assess.export_failed",
                format!("XLSX 生成失败：{e}"),
                format!("writing the XLSX failed: {e}"),
            ),
        )
    };
    const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    Ok(match format {
        "yaml" => (
            "application/yaml; charset=utf-8",
            format!("{base}.yaml"),
            answers::yaml::write(
                cat,
                &set,
                &format!(
                    "Ballast 评估「{}」答卷 — answers of assessment {id}",
                    l.a.name
                ),
            )
            .into_bytes(),
        ),
        "xlsx" => (
            XLSX,
            format!("{base}-answers.xlsx"),
            answers::xlsx::write(cat, &set).map_err(xlsx_err)?,
        ),
        "json" => {
            let mut s = report::build(cat, &set).to_json();
            s.push('\n');
            (
                "application/json; charset=utf-8",
                format!("{base}.json"),
                s.into_bytes(),
            )
        }
        "html" => (
            "text/html; charset=utf-8",
            format!("{base}.html"),
            mreport::render_html(&report::build(cat, &set)).into_bytes(),
        ),
        "report-xlsx" => (
            XLSX,
            format!("{base}-report.xlsx"),
            mreport::render_xlsx(&report::build(cat, &set)).map_err(xlsx_err)?,
        ),
        "pdf" => (
            "application/pdf",
            format!("{base}.pdf"),
            pdf(state, report::build(cat, &set)).await?,
        ),
        other => {
            return Err(ApiError::bad_request(Problem::field(
                "assess.export_format",
                "format",
                format!("导出格式 {other:?} 无效，应为 yaml、xlsx、json、html、report-xlsx 或 pdf"),
                format!(
                    "export format {other:?} is invalid: use yaml, xlsx, json, html, report-xlsx or pdf"
                ),
            )));
        }
    })
}

#[utoipa::path(get, path = "/api/v1/assessments/{id}/export", tag = "assessments", params(("id" = i64, Path), ExportParams),
    responses((status = 200, description = "the export as an attachment (Content-Disposition names the file): application/yaml, application/json, text/html, application/pdf or an XLSX workbook",
        content(("application/pdf"), ("application/json"), ("text/html"), ("application/yaml"),
            ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, body = ErrorBody), (status = 500, body = ErrorBody, description = "the PDF's CJK font is missing (assess.pdf_font_missing) or unreadable"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    Query(q): Query<ExportParams>,
) -> ApiResult<Response> {
    authorize_read(&state, &caller.0, "assessment.export").await?;
    let (ct, name, bytes) = export_bytes(&state, id, &q.format).await?;
    Ok(attachment(ct, &name, bytes))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CompareParams {
    /// The earlier assessment.
    pub a: i64,
    /// The later assessment.
    pub b: i64,
}

#[utoipa::path(get, path = "/api/v1/assessments/compare", tag = "assessments", params(CompareParams),
    responses((status = 200, body = Comparison), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn compare(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<CompareParams>,
) -> ApiResult<Json<Comparison>> {
    authorize_read(&state, &caller.0, "assessment.compare").await?;
    Ok(Json(compare_ids(&state, q.a, q.b).await?))
}

/// Two assessments of one catalog version side by side (refused for different versions).
pub async fn compare_ids(state: &AppState, a: i64, b: i64) -> ApiResult<Comparison> {
    let (a, b) = (load(state, a).await?, load(state, b).await?);
    if (a.a.catalog_id.as_str(), a.a.catalog_version.as_str())
        != (b.a.catalog_id.as_str(), b.a.catalog_version.as_str())
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            Problem::new(
                "assess.catalog_mismatch",
                format!(
                    "两次评估的能力目录版本不同（{} 与 {}），不能比较",
                    a.a.catalog_version, b.a.catalog_version
                ),
                format!(
                    "the two assessments are of different catalog versions ({} and {}); they cannot be compared",
                    a.a.catalog_version, b.a.catalog_version
                ),
            ),
        ));
    }
    Ok(report::compare(
        catalog()?,
        &a.answer_set()?,
        &b.answer_set()?,
    ))
}

/// An improvement action as shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActionView {
    pub id: i64,
    pub assessment_id: i64,
    pub item: String,
    pub title: String,
    pub owner: String,
    pub due_on: NaiveDate,
    pub status: String,
    pub clauses: Vec<String>,
    /// Past its due date (Beijing date) and neither done nor cancelled.
    pub overdue: bool,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

pub async fn actions(state: &AppState, id: i64) -> ApiResult<Vec<ActionView>> {
    let today = china_date(state.clock.now());
    Ok(state
        .store
        .improvement_actions(Some(id))
        .await?
        .into_iter()
        .map(|x| ActionView {
            overdue: x.due_on < today && x.status != "done" && x.status != "cancelled",
            id: x.id,
            assessment_id: x.assessment_id,
            item: format!("T{}", x.item_table),
            title: x.title,
            owner: x.owner,
            due_on: x.due_on,
            status: x.status,
            clauses: x.clause_ids,
            updated_by: x.updated_by,
            updated_at: x.updated_at,
        })
        .collect())
}

#[utoipa::path(get, path = "/api/v1/assessments/{id}/actions", tag = "assessments", params(("id" = i64, Path)),
    responses((status = 200, body = [ActionView]), (status = 403, body = ErrorBody)))]
pub async fn list_actions(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<Json<Vec<ActionView>>> {
    authorize_read(&state, &caller.0, "assessment.actions").await?;
    load(&state, id).await?;
    Ok(Json(actions(&state, id).await?))
}

#[utoipa::path(get, path = "/api/v1/assessments/{id}/actions.csv", tag = "assessments", params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/csv"), (status = 403, body = ErrorBody)))]
pub async fn export_actions(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
) -> ApiResult<Response> {
    actions_csv(&state, &caller.0, id).await
}

/// The improvement actions as CSV (UTF-8 with BOM, for Excel), for the API and the page.
pub(crate) async fn actions_csv(
    state: &AppState,
    p: &ballast_core::guard::Principal,
    id: i64,
) -> ApiResult<Response> {
    authorize_read(state, p, "assessment.actions_export").await?;
    load(state, id).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let internal = |e: String| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Problem::new(
                "assess.export_failed",
                format!("CSV 生成失败：{e}"),
                format!("writing the CSV failed: {e}"),
            ),
        )
    };
    w.write_record([
        "id 编号",
        "item 能力项",
        "title 措施",
        "owner 负责人",
        "due_on 到期日",
        "status 状态",
        "overdue 逾期",
        "clauses 条款",
    ])
    .map_err(|e| internal(e.to_string()))?;
    for x in actions(state, id).await? {
        w.write_record([
            x.id.to_string(),
            x.item,
            x.title,
            x.owner,
            x.due_on.to_string(),
            x.status,
            x.overdue.to_string(),
            x.clauses.join(" "),
        ])
        .map_err(|e| internal(e.to_string()))?;
    }
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend(w.into_inner().map_err(|e| internal(e.to_string()))?);
    Ok(attachment(
        "text/csv; charset=utf-8",
        &format!("assessment-{id}-actions.csv"),
        bytes,
    ))
}

#[utoipa::path(post, path = "/api/v1/assessments/{id}/actions", tag = "assessments", params(("id" = i64, Path)),
    request_body = ActionInput,
    responses((status = 201, body = Created), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_action(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(input): JsonBody<ActionInput>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let aid = service::create_action(&state, &caller.0, id, &input).await?;
    Ok((StatusCode::CREATED, Json(Created { id: aid })))
}

#[utoipa::path(put, path = "/api/v1/assessment-actions/{id}", tag = "assessments", params(("id" = i64, Path)),
    request_body = ActionInput,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_action(
    State(state): State<AppState>,
    caller: ApiCaller,
    Id(id): Id,
    JsonBody(input): JsonBody<ActionInput>,
) -> ApiResult<StatusCode> {
    service::update_action(&state, &caller.0, id, &input).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body limit of routes taking uploads (evidence files, answers files), which may be larger
/// than the default body limit.
pub fn upload_limit(state: &AppState) -> usize {
    usize::try_from(state.config.assess.max_evidence_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1 << 16)
        .max(state.config.max_body_bytes)
}

pub fn routes(state: &AppState) -> Router<AppState> {
    let upload = upload_limit(state);
    Router::new()
        .route(
            "/api/v1/assessments",
            get(list_assessments).post(create_assessment),
        )
        .route(
            "/api/v1/assessments/from-answers",
            post(create_from_answers).layer(DefaultBodyLimit::max(upload)),
        )
        .route("/api/v1/assessments/compare", get(compare))
        .route("/api/v1/assessments/{id}", get(get_assessment))
        .route("/api/v1/assessments/{id}/targets", put(set_targets))
        .route("/api/v1/assessments/{id}/assignments", post(assign))
        .route("/api/v1/assessments/{id}/transition", post(transition))
        .route("/api/v1/assessments/{id}/answers", post(rate))
        .route(
            "/api/v1/assessments/{id}/items/{item}/submit",
            post(submit_item),
        )
        .route(
            "/api/v1/assessments/{id}/items/{item}/review",
            post(review_item),
        )
        .route(
            "/api/v1/assessments/{id}/evidence",
            post(add_evidence).layer(DefaultBodyLimit::max(upload)),
        )
        .route(
            "/api/v1/assessments/{id}/evidence/{evidence}",
            get(download_evidence).delete(delete_evidence),
        )
        .route(
            "/api/v1/assessments/{id}/import",
            post(import_answers).layer(DefaultBodyLimit::max(upload)),
        )
        .route("/api/v1/assessments/{id}/report", get(get_report))
        .route("/api/v1/assessments/{id}/export", get(export))
        .route(
            "/api/v1/assessments/{id}/actions",
            get(list_actions).post(create_action),
        )
        .route("/api/v1/assessments/{id}/actions.csv", get(export_actions))
        .route("/api/v1/assessment-actions/{id}", put(update_action))
}
