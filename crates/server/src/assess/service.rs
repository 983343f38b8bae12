//! Guarded operations on assessments. Every change runs the guard pipeline (`assessment.write`,
//! or `assessment.read` for reads), then, inside one transaction that holds the assessment
//! (`AssessmentTx::lock_assessment`), checks who the person is for this assessment and its state,
//! changes the rows and commits with its audit record. A refusal after the pipeline (wrong
//! person, separation of duties) is audited as `denied` too.
//!
//! State machine (the owner moves it; docs/MATURITY.md, "Online workflow"):
//!
//! ```text
//! draft ──start──▶ in_progress ──submit──▶ in_review ──sign_off──▶ signed_off
//!                        ▲                                            │
//!                        └──────────────── reopen (owner, reason) ◀───┘
//! ```
//!
//! - `draft`: the owner sets targets and assigns items (assessor, reviewer); nothing is rated.
//! - `in_progress` / `in_review`: an item's assessor rates its clauses and adds evidence while
//!   the item is `open` or `changes_requested`, then submits it; its reviewer approves it or
//!   requests changes with a comment. `submit` needs every item submitted or approved;
//!   `sign_off` needs every item approved.
//! - `signed_off`: locked — every change is refused (`assess.locked`) until the owner reopens it
//!   (`assessment.write` and being the owner; the reason is audited).
//!
//! Separation of duties: nobody approves an item in which they rated a clause (`sod.own_clause`),
//! and an item's assessor cannot be its reviewer. `na` needs a justification; approving an item
//! approves its `na` answers (`na_approved_by`), and a changed answer loses that approval.
//!
//! Evidence expiry (`expire_evidence`, run by the maintenance worker with the injected clock):
//! evidence whose expiry date has passed (Beijing date) returns its clause to `unrated`, sends a
//! submitted or approved item back to `open`, is audited (`assessment.evidence_expired`, naming
//! the assessor), shown on the assessment's page and posted to `exec.webhook_url` when set.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use ballast_core::Problem;
use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_core::authz::{Permission, Target};
use ballast_core::guard::{Action, ActionKind, Principal, china_date};
use ballast_maturity::answers;
use ballast_maturity::{AnswerSet, ClauseId, Evidence, Msg, Rating};
use ballast_store::{
    AnswerRow, AssessmentItemRow, AssessmentRow, EvidenceRow, ImprovementActionRow, Tx,
};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::report::{scope_of, tables_in};
use super::{
    APPROVED, CHANGES_REQUESTED, DRAFT, FILE, IN_PROGRESS, IN_REVIEW, LINK, OPEN, PLATFORM,
    SIGNED_OFF, SUBMITTED, TEXT, catalog,
};
use crate::error::{ApiError, ApiResult};
use crate::service::{audit_only, authorize, draft};
use crate::state::AppState;

// ---------------------------------------------------------------- errors

fn bad(code: &'static str, field: &str, zh: String, en: String) -> ApiError {
    ApiError::bad_request(Problem::field(code, field, zh, en))
}

fn forbidden(code: &'static str, zh: String, en: String) -> ApiError {
    ApiError::forbidden(Problem::new(code, zh, en))
}

fn conflict(code: &'static str, zh: String, en: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, Problem::new(code, zh, en))
}

fn locked(a: &AssessmentRow) -> ApiError {
    conflict(
        "assess.locked",
        format!(
            "评估「{}」已签署，已锁定，不能再修改（须由负责人重新打开）",
            a.name
        ),
        format!(
            "assessment {:?} is signed off and locked; nothing can change until its owner reopens it",
            a.name
        ),
    )
}

fn wrong_state(a: &AssessmentRow, op_zh: &str, op_en: &str, need: &[&str]) -> ApiError {
    if a.state == SIGNED_OFF {
        return locked(a);
    }
    conflict(
        "assess.state",
        format!(
            "评估「{}」当前状态为 {}，不能{op_zh}（需要 {}）",
            a.name,
            a.state,
            need.join(" / ")
        ),
        format!(
            "assessment {:?} is {}: cannot {op_en} (needs {})",
            a.name,
            a.state,
            need.join(" or ")
        ),
    )
}

fn require_state(a: &AssessmentRow, op_zh: &str, op_en: &str, need: &[&str]) -> ApiResult<()> {
    if need.contains(&a.state.as_str()) {
        Ok(())
    } else {
        Err(wrong_state(a, op_zh, op_en, need))
    }
}

fn require_owner(p: &Principal, a: &AssessmentRow, op_zh: &str, op_en: &str) -> ApiResult<()> {
    if p.user.username == a.owner {
        return Ok(());
    }
    Err(forbidden(
        "assess.not_owner",
        format!("只有评估负责人 {} 可以{op_zh}", a.owner),
        format!("only the assessment's owner ({}) can {op_en}", a.owner),
    ))
}

/// The stored scope (validated when the assessment was created; refused, never widened, if
/// the catalog no longer reads it).
fn stored_scope(a: &AssessmentRow) -> ApiResult<ballast_maturity::Scope> {
    scope_of(catalog()?, &a.scope).map_err(|token| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Problem::new(
                "assess.scope_corrupt",
                format!("评估「{}」保存的范围中 {token:?} 无法识别", a.name),
                format!(
                    "assessment {:?}: its stored scope entry {token:?} names nothing",
                    a.name
                ),
            ),
        )
    })
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(&format!("assessment {id}"))
}

/// Audits a refusal decided after the pipeline (403s: wrong person, separation of duties).
async fn refused(state: &AppState, p: &Principal, op: &str, id: i64, e: ApiError) -> ApiError {
    if e.status == StatusCode::FORBIDDEN {
        let d = draft(p, op, "assessment", Outcome::Denied)
            .object(id)
            .detail(format!("{} [{}]", e.problem.message_en, e.problem.code));
        if let Err(x) = audit_only(state, d).await {
            return x;
        }
    }
    e
}

/// Commits the drafts, or — after the transaction is dropped — audits a refusal.
async fn finish<T>(
    state: &AppState,
    p: &Principal,
    op: &str,
    id: i64,
    tx: Box<dyn Tx>,
    r: ApiResult<(Vec<AuditDraft>, T)>,
) -> ApiResult<T> {
    match r {
        Ok((drafts, v)) => {
            let n = drafts.len();
            tx.commit(drafts, state.clock.now()).await?;
            state.metrics.audit_appended(n);
            Ok(v)
        }
        Err(e) => {
            drop(tx);
            Err(refused(state, p, op, id, e).await)
        }
    }
}

fn write(op: &str) -> Action {
    Action::new(
        ActionKind::Mutate,
        Permission::AssessmentWrite,
        op,
        Target::global(),
    )
}

/// `assessment.read` for reads (the auditor has it).
pub async fn authorize_read(state: &AppState, p: &Principal, op: &str) -> ApiResult<()> {
    let action = Action::new(
        ActionKind::Read,
        Permission::AssessmentRead,
        op,
        Target::global(),
    );
    authorize(state, p, &action).await.map(|_| ())
}

fn ad(p: &Principal, op: &str, id: i64) -> AuditDraft {
    draft(p, op, "assessment", Outcome::Success).object(id)
}

async fn lock(tx: &mut dyn Tx, id: i64) -> ApiResult<AssessmentRow> {
    tx.lock_assessment(id).await?.ok_or_else(|| not_found(id))
}

async fn user_exists(state: &AppState, field: &str, username: &str) -> ApiResult<()> {
    if state.store.user_by_name(username).await?.is_some() {
        return Ok(());
    }
    Err(bad(
        "assess.unknown_user",
        field,
        format!("{field}：用户 {username:?} 不存在"),
        format!("{field}: there is no user {username:?}"),
    ))
}

fn parse_table(field: &str, s: &str) -> ApiResult<u32> {
    let t = s.trim();
    let n = t
        .strip_prefix('T')
        .or_else(|| t.strip_prefix('t'))
        .or_else(|| t.strip_prefix('表'))
        .unwrap_or(t);
    let cat = catalog()?;
    match n.parse::<u32>() {
        Ok(n) if cat.item(n).is_some() => Ok(n),
        _ => Err(bad(
            "assess.unknown_item",
            field,
            format!("{field}：{s:?} 不是能力项表号（如 T5）"),
            format!("{field}: {s:?} is not a capability item's table (e.g. T5)"),
        )),
    }
}

// ---------------------------------------------------------------- create and settings

/// A new assessment.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInput {
    /// Unique, 1–200 characters.
    pub name: String,
    /// Items in scope: `all` (default) or tables, ranges and names (`T4,T10-T20`, `故障管理`).
    #[serde(default)]
    pub scope: Option<String>,
    /// Target level per item: `{"T5": 3}`.
    #[serde(default)]
    pub targets: BTreeMap<String, u8>,
    /// Username of the person responsible; default the caller.
    #[serde(default)]
    pub owner: Option<String>,
    /// Descriptive fields shown in reports (`organization`, `period`).
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

fn check_name(name: &str) -> ApiResult<()> {
    let n = name.trim().chars().count();
    if n == 0 || n > 200 || name.chars().any(char::is_control) {
        return Err(bad(
            "assess.invalid_name",
            "name",
            "名称须为 1–200 个字符，不含控制字符".into(),
            "the name must be 1–200 characters without control characters".into(),
        ));
    }
    Ok(())
}

fn parse_targets(
    scope: &ballast_maturity::Scope,
    targets: &BTreeMap<String, u8>,
) -> ApiResult<serde_json::Value> {
    let cat = catalog()?;
    let mut out = serde_json::Map::new();
    for (k, level) in targets {
        let field = format!("targets.{k}");
        let t = parse_table(&field, k)?;
        if !scope.contains(t) {
            return Err(bad(
                "assess.target_out_of_scope",
                &field,
                format!("{field}：表{t} 不在评估范围内"),
                format!("{field}: T{t} is not in the assessment's scope"),
            ));
        }
        let max = cat.item(t).map_or(0, |r| r.item.levels);
        if *level < 1 || *level > max {
            return Err(bad(
                "assess.target_invalid",
                &field,
                format!("{field}：目标级别 {level} 无效，应为 1–{max}"),
                format!("{field}: target level {level} is invalid: expected 1–{max}"),
            ));
        }
        out.insert(t.to_string(), json!(level));
    }
    Ok(serde_json::Value::Object(out))
}

fn parse_scope(spec: Option<&str>) -> ApiResult<(ballast_maturity::Scope, String)> {
    let cat = catalog()?;
    let spec = spec.unwrap_or("all");
    let scope = scope_of(cat, spec).map_err(|token| {
        bad(
            "assess.scope_invalid",
            "scope",
            format!("范围中的 {token:?} 无效：应为表号（T4）、范围（T10-T20）或能力项/能力域/能力类名称"),
            format!("scope: {token:?} is not a table (T4), a range (T10-T20) or an item, domain or class name"),
        )
    })?;
    if tables_in(cat, &scope).is_empty() {
        return Err(bad(
            "assess.scope_empty",
            "scope",
            "评估范围内没有能力项".into(),
            "the scope holds no capability item".into(),
        ));
    }
    let compact = scope.to_spec();
    Ok((scope, compact))
}

/// Creates an assessment in `draft` with one row per in-scope item. Returns its id.
pub async fn create(state: &AppState, p: &Principal, input: &CreateInput) -> ApiResult<i64> {
    authorize(state, p, &write("assessment.create")).await?;
    let (row, tables) = new_row(state, p, input).await?;
    let mut tx = state.store.begin().await?;
    let id = tx.insert_assessment(&row).await?;
    for t in &tables {
        tx.upsert_assessment_item(&item_row(id, *t)).await?;
    }
    let d = ad(p, "assessment.create", id).after(json!({
        "name": row.name, "scope": row.scope, "targets": row.targets, "owner": row.owner,
    }));
    tx.commit(vec![d], state.clock.now()).await?;
    state.metrics.audit_appended(1);
    Ok(id)
}

fn item_row(id: i64, table: u32) -> AssessmentItemRow {
    AssessmentItemRow {
        assessment_id: id,
        item_table: i64::from(table),
        assessor: None,
        reviewer: None,
        review_state: OPEN.to_string(),
        review_comment: None,
        reviewed_by: None,
        reviewed_at: None,
    }
}

async fn new_row(
    state: &AppState,
    p: &Principal,
    input: &CreateInput,
) -> ApiResult<(AssessmentRow, Vec<u32>)> {
    check_name(&input.name)?;
    let cat = catalog()?;
    let (scope, compact) = parse_scope(input.scope.as_deref())?;
    let targets = parse_targets(&scope, &input.targets)?;
    let owner = input
        .owner
        .clone()
        .unwrap_or_else(|| p.user.username.clone());
    user_exists(state, "owner", &owner).await?;
    let now = state.clock.now();
    let row = AssessmentRow {
        id: 0,
        name: input.name.trim().to_string(),
        catalog_id: cat.id().to_string(),
        catalog_version: cat.version().to_string(),
        scope: compact,
        targets,
        meta: json!(input.meta),
        owner,
        state: DRAFT.to_string(),
        created_by: p.user.username.clone(),
        created_at: now,
        updated_by: p.user.username.clone(),
        updated_at: now,
        signed_off_by: None,
        signed_off_at: None,
    };
    Ok((row, tables_in(cat, &scope)))
}

/// New target levels (replacing all).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetsInput {
    pub targets: BTreeMap<String, u8>,
}

/// The owner sets the targets (any state but signed off).
pub async fn set_targets(
    state: &AppState,
    p: &Principal,
    id: i64,
    input: &TargetsInput,
) -> ApiResult<()> {
    const OP: &str = "assessment.targets";
    authorize(state, p, &write(OP)).await?;
    let mut tx = state.store.begin().await?;
    let r = async {
        let mut a = lock(&mut *tx, id).await?;
        require_state(
            &a,
            "修改目标",
            "change targets",
            &[DRAFT, IN_PROGRESS, IN_REVIEW],
        )?;
        require_owner(p, &a, "修改目标", "change targets")?;
        let scope = stored_scope(&a)?;
        let before = a.targets.clone();
        a.targets = parse_targets(&scope, &input.targets)?;
        a.updated_by = p.user.username.clone();
        a.updated_at = state.clock.now();
        tx.update_assessment(&a).await?;
        Ok((
            vec![ad(p, OP, id).before(before).after(a.targets.clone())],
            (),
        ))
    }
    .await;
    finish(state, p, OP, id, tx, r).await
}

/// Who rates and who reviews an item.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// `T5` or `5`.
    pub item: String,
    pub assessor: Option<String>,
    pub reviewer: Option<String>,
}

/// The owner assigns items (any state but signed off). The assessor and the reviewer of an
/// item must be two people.
pub async fn assign(
    state: &AppState,
    p: &Principal,
    id: i64,
    input: &[Assignment],
) -> ApiResult<()> {
    const OP: &str = "assessment.assign";
    authorize(state, p, &write(OP)).await?;
    let mut parsed = Vec::new();
    for (i, x) in input.iter().enumerate() {
        let t = parse_table(&format!("[{i}].item"), &x.item)?;
        for (field, who) in [("assessor", &x.assessor), ("reviewer", &x.reviewer)] {
            if let Some(u) = who {
                user_exists(state, &format!("[{i}].{field}"), u).await?;
            }
        }
        if x.assessor.is_some() && x.assessor == x.reviewer {
            return Err(bad(
                "sod.assessor_reviewer",
                &format!("[{i}].reviewer"),
                format!("职责分离：表{t} 的评估人与审核人不能是同一人"),
                format!("separation of duties: T{t}'s assessor and reviewer must be two people"),
            ));
        }
        parsed.push((t, x));
    }
    let mut tx = state.store.begin().await?;
    let r = async {
        let a = lock(&mut *tx, id).await?;
        require_state(
            &a,
            "分配能力项",
            "assign items",
            &[DRAFT, IN_PROGRESS, IN_REVIEW],
        )?;
        require_owner(p, &a, "分配能力项", "assign items")?;
        let items: BTreeMap<i64, AssessmentItemRow> = state
            .store
            .assessment_items(id)
            .await?
            .into_iter()
            .map(|i| (i.item_table, i))
            .collect();
        let mut changed = Vec::new();
        for (t, x) in &parsed {
            let Some(old) = items.get(&i64::from(*t)) else {
                return Err(bad(
                    "assess.item_out_of_scope",
                    "item",
                    format!("表{t} 不在评估「{}」的范围内", a.name),
                    format!("T{t} is not in the scope of assessment {:?}", a.name),
                ));
            };
            let row = AssessmentItemRow {
                assessor: x.assessor.clone(),
                reviewer: x.reviewer.clone(),
                ..old.clone()
            };
            tx.upsert_assessment_item(&row).await?;
            changed.push(json!({"item": t, "assessor": x.assessor, "reviewer": x.reviewer}));
        }
        Ok((vec![ad(p, OP, id).after(json!(changed))], ()))
    }
    .await;
    finish(state, p, OP, id, tx, r).await
}

// ---------------------------------------------------------------- state machine

/// A move of the assessment's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// draft → in_progress.
    Start,
    /// in_progress → in_review (every item submitted or approved).
    Submit,
    /// in_review → signed_off (every item approved).
    SignOff,
    /// signed_off → in_progress (needs a reason).
    Reopen,
}

impl Transition {
    fn key(self) -> &'static str {
        match self {
            Transition::Start => "start",
            Transition::Submit => "submit",
            Transition::SignOff => "sign_off",
            Transition::Reopen => "reopen",
        }
    }
}

/// The owner moves the assessment (see the module's state machine).
pub async fn transition(
    state: &AppState,
    p: &Principal,
    id: i64,
    t: Transition,
    reason: Option<&str>,
) -> ApiResult<()> {
    let op = format!("assessment.{}", t.key());
    authorize(state, p, &write(&op)).await?;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if t == Transition::Reopen && reason.is_none() {
        return Err(bad(
            "assess.reason_required",
            "reason",
            "重新打开已签署的评估须说明理由".into(),
            "reopening a signed-off assessment needs a reason".into(),
        ));
    }
    let mut tx = state.store.begin().await?;
    let r = async {
        let mut a = lock(&mut *tx, id).await?;
        let (from, to, zh, en) = match t {
            Transition::Start => (DRAFT, IN_PROGRESS, "开始评估", "start the assessment"),
            Transition::Submit => (IN_PROGRESS, IN_REVIEW, "提交审核", "submit it for review"),
            Transition::SignOff => (IN_REVIEW, SIGNED_OFF, "签署", "sign it off"),
            Transition::Reopen => (SIGNED_OFF, IN_PROGRESS, "重新打开", "reopen it"),
        };
        if a.state != from {
            return Err(if a.state == SIGNED_OFF {
                locked(&a)
            } else {
                wrong_state(&a, zh, en, &[from])
            });
        }
        require_owner(p, &a, zh, en)?;
        let items = state.store.assessment_items(id).await?;
        let need: &[&str] = match t {
            Transition::Submit => &[SUBMITTED, APPROVED],
            Transition::SignOff => &[APPROVED],
            _ => &[],
        };
        if !need.is_empty() {
            let pending: Vec<String> = items
                .iter()
                .filter(|i| !need.contains(&i.review_state.as_str()))
                .map(|i| format!("T{} ({})", i.item_table, i.review_state))
                .collect();
            if !pending.is_empty() {
                return Err(conflict(
                    "assess.items_pending",
                    format!(
                        "不能{zh}：以下能力项尚未{}：{}",
                        if t == Transition::SignOff {
                            "审核通过"
                        } else {
                            "提交或审核通过"
                        },
                        pending.join("、")
                    ),
                    format!(
                        "cannot {en}: these items are not yet {}: {}",
                        need.join(" or "),
                        pending.join(", ")
                    ),
                ));
            }
        }
        let now = state.clock.now();
        a.state = to.to_string();
        a.updated_by = p.user.username.clone();
        a.updated_at = now;
        if t == Transition::SignOff {
            a.signed_off_by = Some(p.user.username.clone());
            a.signed_off_at = Some(now);
        }
        tx.update_assessment(&a).await?;
        let mut d = ad(p, &op, id).after(json!({"from": from, "to": to}));
        if let Some(r) = reason {
            d = d.detail(r.to_string());
        }
        Ok((vec![d], ()))
    }
    .await;
    finish(state, p, &op, id, tx, r).await
}

// ---------------------------------------------------------------- rating

/// One clause's rating.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingInput {
    /// `T5.3.L2.c`.
    pub clause: String,
    /// `met`, `partial`, `not_met`, `na`, `unrated` (or 符合, 部分符合, 不符合, 不适用, 未评).
    pub rating: String,
    #[serde(default)]
    pub comment: Option<String>,
    /// Required for `na`.
    #[serde(default)]
    pub justification: Option<String>,
}

/// Who may work on an item's answers and evidence: its assessor, or the owner while no
/// assessor is assigned; while the item is open or sent back.
fn require_assessor(
    p: &Principal,
    a: &AssessmentRow,
    item: &AssessmentItemRow,
    zh: &str,
    en: &str,
) -> ApiResult<()> {
    let me = &p.user.username;
    let ok = match &item.assessor {
        Some(x) => x == me,
        None => *me == a.owner,
    };
    if !ok {
        return Err(forbidden(
            "assess.not_assessor",
            format!(
                "只有表{} 的评估人（{}）可以{zh}",
                item.item_table,
                item.assessor.as_deref().unwrap_or(&a.owner)
            ),
            format!(
                "only T{}'s assessor ({}) can {en}",
                item.item_table,
                item.assessor.as_deref().unwrap_or(&a.owner)
            ),
        ));
    }
    if item.review_state != OPEN && item.review_state != CHANGES_REQUESTED {
        return Err(conflict(
            "assess.item_locked",
            format!(
                "表{} 已{}，不能{zh}（审核人退回后才可修改）",
                item.item_table,
                if item.review_state == APPROVED {
                    "审核通过"
                } else {
                    "提交审核"
                }
            ),
            format!(
                "T{} is {}: cannot {en} until its reviewer sends it back",
                item.item_table, item.review_state
            ),
        ));
    }
    Ok(())
}

fn parse_clause(field: &str, s: &str, scope: &ballast_maturity::Scope) -> ApiResult<ClauseId> {
    let cat = catalog()?;
    let id = ClauseId::parse(s.trim()).map_err(|_| {
        bad(
            "assess.clause_malformed",
            field,
            format!("{field}：条款编号 {s:?} 格式不对，应形如 T5.3.L2.c"),
            format!("{field}: clause ID {s:?} is malformed: expected e.g. T5.3.L2.c"),
        )
    })?;
    if cat.clause(&id).is_none() {
        return Err(bad(
            "assess.clause_unknown",
            field,
            format!("{field}：目录中没有条款 {id}"),
            format!("{field}: the catalog has no clause {id}"),
        ));
    }
    if !scope.contains(id.table) {
        return Err(bad(
            "assess.clause_out_of_scope",
            field,
            format!("{field}：条款 {id} 不在评估范围内"),
            format!("{field}: clause {id} is not in the assessment's scope"),
        ));
    }
    Ok(id)
}

fn trimmed(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Rates clauses (one or many: bulk rating). Every clause must be in an item the caller
/// assesses; `na` needs a justification. Returns how many answers were written.
pub async fn rate(
    state: &AppState,
    p: &Principal,
    id: i64,
    input: &[RatingInput],
) -> ApiResult<usize> {
    const OP: &str = "assessment.rate";
    authorize(state, p, &write(OP)).await?;
    if input.is_empty() {
        return Err(bad(
            "assess.nothing_to_rate",
            "ratings",
            "没有要保存的评级".into(),
            "no rating to save".into(),
        ));
    }
    let mut tx = state.store.begin().await?;
    let r = async {
        let a = lock(&mut *tx, id).await?;
        require_state(&a, "评级", "rate clauses", &[IN_PROGRESS, IN_REVIEW])?;
        let scope = stored_scope(&a)?;
        let items: BTreeMap<i64, AssessmentItemRow> = state
            .store
            .assessment_items(id)
            .await?
            .into_iter()
            .map(|i| (i.item_table, i))
            .collect();
        let now = state.clock.now();
        let mut rows = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, x) in input.iter().enumerate() {
            let field = format!("[{i}].clause");
            let cid = parse_clause(&field, &x.clause, &scope)?;
            if !seen.insert(cid) {
                return Err(bad(
                    "assess.clause_duplicate",
                    &field,
                    format!("{field}：条款 {cid} 重复"),
                    format!("{field}: clause {cid} appears twice"),
                ));
            }
            let rating = Rating::parse(&x.rating).ok_or_else(|| {
                bad(
                    "assess.rating_invalid",
                    &format!("[{i}].rating"),
                    format!(
                        "[{i}].rating：评级 {:?} 无效，应为 met、partial、not_met、na 或 unrated",
                        x.rating
                    ),
                    format!(
                        "[{i}].rating: {:?} is not one of met, partial, not_met, na, unrated",
                        x.rating
                    ),
                )
            })?;
            let justification = trimmed(&x.justification);
            if rating == Rating::Na && justification.is_none() {
                return Err(bad(
                    "assess.na_without_justification",
                    &format!("[{i}].justification"),
                    format!("条款 {cid} 评为不适用（na）须填写理由"),
                    format!("clause {cid} rated na needs a justification"),
                ));
            }
            let item = items
                .get(&i64::from(cid.table))
                .ok_or_else(|| not_found(id))?;
            require_assessor(p, &a, item, "评级", "rate its clauses")?;
            rows.push(AnswerRow {
                assessment_id: id,
                clause_id: cid.to_string(),
                item_table: i64::from(cid.table),
                rating: rating.key().to_string(),
                comment: trimmed(&x.comment),
                justification: if rating == Rating::Na {
                    justification
                } else {
                    None
                },
                na_approved_by: None,
                rated_by: Some(p.user.username.clone()),
                rated_at: Some(now),
            });
        }
        tx.upsert_answers(&rows).await?;
        let summary: Vec<_> = rows
            .iter()
            .map(|r| json!({"clause": r.clause_id, "rating": r.rating}))
            .collect();
        Ok((
            vec![
                ad(p, OP, id)
                    .after(json!(summary))
                    .detail(format!("{} clause(s)", rows.len())),
            ],
            rows.len(),
        ))
    }
    .await;
    finish(state, p, OP, id, tx, r).await
}

// ---------------------------------------------------------------- items: submit and review

/// The assessor submits an item for review.
pub async fn submit_item(state: &AppState, p: &Principal, id: i64, item: &str) -> ApiResult<()> {
    const OP: &str = "assessment.item_submit";
    authorize(state, p, &write(OP)).await?;
    let t = parse_table("item", item)?;
    let mut tx = state.store.begin().await?;
    let r = async {
        let a = lock(&mut *tx, id).await?;
        require_state(
            &a,
            "提交能力项",
            "submit an item",
            &[IN_PROGRESS, IN_REVIEW],
        )?;
        let row = item_of(state, &a, t).await?;
        require_assessor(p, &a, &row, "提交", "submit it")?;
        let row = AssessmentItemRow {
            review_state: SUBMITTED.to_string(),
            ..row
        };
        tx.upsert_assessment_item(&row).await?;
        Ok((
            vec![ad(p, OP, id).after(json!({"item": t, "review_state": SUBMITTED}))],
            (),
        ))
    }
    .await;
    finish(state, p, OP, id, tx, r).await
}

async fn item_of(state: &AppState, a: &AssessmentRow, t: u32) -> ApiResult<AssessmentItemRow> {
    state
        .store
        .assessment_items(a.id)
        .await?
        .into_iter()
        .find(|i| i.item_table == i64::from(t))
        .ok_or_else(|| {
            bad(
                "assess.item_out_of_scope",
                "item",
                format!("表{t} 不在评估「{}」的范围内", a.name),
                format!("T{t} is not in the scope of assessment {:?}", a.name),
            )
        })
}

/// A reviewer's decision on an item.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// `approve` or `request_changes`.
    pub decision: String,
    /// Required when requesting changes.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The item's reviewer approves it (approving its `na` answers) or sends it back with a
/// comment. Nobody approves an item in which they rated a clause.
pub async fn review_item(
    state: &AppState,
    p: &Principal,
    id: i64,
    item: &str,
    input: &ReviewInput,
) -> ApiResult<()> {
    let approve = match input.decision.as_str() {
        "approve" => true,
        "request_changes" => false,
        other => {
            return Err(bad(
                "assess.decision_invalid",
                "decision",
                format!("审核结论 {other:?} 无效，应为 approve 或 request_changes"),
                format!("decision {other:?} is invalid: use approve or request_changes"),
            ));
        }
    };
    let op = if approve {
        "assessment.item_approve"
    } else {
        "assessment.item_request_changes"
    };
    let mut action = write(op);
    action.kind = ActionKind::Approve;
    authorize(state, p, &action).await?;
    let t = parse_table("item", item)?;
    let comment = trimmed(&input.comment);
    if !approve && comment.is_none() {
        return Err(bad(
            "assess.comment_required",
            "comment",
            "退回修改须写明意见".into(),
            "requesting changes needs a comment".into(),
        ));
    }
    let mut tx = state.store.begin().await?;
    let r = async {
        let a = lock(&mut *tx, id).await?;
        require_state(&a, "审核", "review", &[IN_PROGRESS, IN_REVIEW])?;
        let row = item_of(state, &a, t).await?;
        if row.reviewer.as_deref() != Some(p.user.username.as_str()) {
            return Err(forbidden(
                "assess.not_reviewer",
                format!(
                    "只有表{t} 的审核人（{}）可以审核",
                    row.reviewer.as_deref().unwrap_or("未指定")
                ),
                format!(
                    "only T{t}'s reviewer ({}) can review it",
                    row.reviewer.as_deref().unwrap_or("none assigned")
                ),
            ));
        }
        let allowed: &[&str] = if approve {
            &[SUBMITTED]
        } else {
            &[SUBMITTED, APPROVED]
        };
        if !allowed.contains(&row.review_state.as_str()) {
            return Err(conflict(
                "assess.review_state",
                format!("表{t} 当前为 {}，不能审核（须先由评估人提交）", row.review_state),
                format!(
                    "T{t} is {}: it cannot be reviewed until its assessor submits it",
                    row.review_state
                ),
            ));
        }
        let answers: Vec<AnswerRow> = state
            .store
            .assessment_answers(id)
            .await?
            .into_iter()
            .filter(|r| r.item_table == i64::from(t))
            .collect();
        let mut na_approved = Vec::new();
        if approve {
            let own: Vec<&str> = answers
                .iter()
                .filter(|r| r.rated_by.as_deref() == Some(p.user.username.as_str()))
                .map(|r| r.clause_id.as_str())
                .collect();
            if !own.is_empty() {
                return Err(forbidden(
                    "sod.own_clause",
                    format!(
                        "职责分离：您评定过表{t} 的条款 {}，不能审批该能力项",
                        own.join("、")
                    ),
                    format!(
                        "separation of duties: you rated T{t}'s clause(s) {}, so you cannot approve it",
                        own.join(", ")
                    ),
                ));
            }
            let rows: Vec<AnswerRow> = answers
                .iter()
                .filter(|r| r.rating == "na")
                .map(|r| AnswerRow {
                    na_approved_by: Some(p.user.username.clone()),
                    ..r.clone()
                })
                .collect();
            na_approved = rows.iter().map(|r| r.clause_id.clone()).collect();
            if !rows.is_empty() {
                tx.upsert_answers(&rows).await?;
            }
        }
        let to = if approve { APPROVED } else { CHANGES_REQUESTED };
        let row = AssessmentItemRow {
            review_state: to.to_string(),
            review_comment: comment.clone(),
            reviewed_by: Some(p.user.username.clone()),
            reviewed_at: Some(state.clock.now()),
            ..row
        };
        tx.upsert_assessment_item(&row).await?;
        let mut d = ad(p, op, id).after(json!({
            "item": t, "review_state": to, "na_approved": na_approved,
        }));
        if let Some(c) = &comment {
            d = d.detail(c.clone());
        }
        Ok((vec![d], ()))
    }
    .await;
    finish(state, p, op, id, tx, r).await
}

// ---------------------------------------------------------------- evidence

/// Evidence to add: a file's bytes, a link, a platform reference or text.
#[derive(Debug, Clone)]
pub struct EvidenceInput {
    pub clause: String,
    /// `file`, `link`, `platform` or `text`.
    pub kind: String,
    /// The file's name, the URL, the reference or the text.
    pub name: String,
    pub content: Option<Vec<u8>>,
    pub expires_on: Option<String>,
}

/// The item's assessor adds evidence to a clause. Returns the evidence's id.
pub async fn add_evidence(
    state: &AppState,
    p: &Principal,
    id: i64,
    input: EvidenceInput,
) -> ApiResult<i64> {
    const OP: &str = "assessment.evidence_add";
    authorize(state, p, &write(OP)).await?;
    let today = china_date(state.clock.now());
    let expires_on = match input.expires_on.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => {
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                bad(
                    "assess.date_invalid",
                    "expires_on",
                    format!("有效期 {s:?} 无效，应为 YYYY-MM-DD"),
                    format!("expires_on {s:?} is invalid: expected YYYY-MM-DD"),
                )
            })?;
            if d < today {
                return Err(bad(
                    "assess.evidence_already_expired",
                    "expires_on",
                    format!("有效期 {d} 已过"),
                    format!("expires_on {d} is already past"),
                ));
            }
            Some(d)
        }
    };
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 1000 {
        return Err(bad(
            "assess.evidence_name",
            "name",
            "证据名称（文件名、链接或引用）须为 1–1000 个字符".into(),
            "the evidence's name (file name, link or reference) must be 1–1000 characters".into(),
        ));
    }
    let (sha256, size, content) = match input.kind.as_str() {
        FILE => {
            let bytes = input.content.unwrap_or_default();
            let max = state.config.assess.max_evidence_bytes;
            if bytes.is_empty() {
                return Err(bad(
                    "assess.evidence_empty",
                    "content",
                    "证据文件为空".into(),
                    "the evidence file is empty".into(),
                ));
            }
            if bytes.len() as u64 > max {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Problem::field(
                        "assess.evidence_too_large",
                        "content",
                        format!(
                            "证据文件 {name} 有 {} 字节，超过上限 {max} 字节",
                            bytes.len()
                        ),
                        format!(
                            "evidence file {name} has {} bytes, more than the limit of {max}",
                            bytes.len()
                        ),
                    ),
                ));
            }
            let sha = hex::encode(Sha256::digest(&bytes));
            let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
            (Some(sha), Some(size), Some(bytes))
        }
        LINK => {
            if !(name.starts_with("https://") || name.starts_with("http://"))
                || name.contains(char::is_whitespace)
            {
                return Err(bad(
                    "assess.evidence_link",
                    "name",
                    format!("链接 {name:?} 无效：应为 http:// 或 https:// 开头、不含空白"),
                    format!(
                        "link {name:?} is invalid: it must start with http:// or https:// and hold no spaces"
                    ),
                ));
            }
            (None, None, None)
        }
        PLATFORM | TEXT => (None, None, None),
        other => {
            return Err(bad(
                "assess.evidence_kind",
                "kind",
                format!("证据类型 {other:?} 无效，应为 file、link、platform 或 text"),
                format!("evidence kind {other:?} is invalid: use file, link, platform or text"),
            ));
        }
    };
    let mut tx = state.store.begin().await?;
    let r = async {
        let a = lock(&mut *tx, id).await?;
        require_state(&a, "添加证据", "add evidence", &[IN_PROGRESS, IN_REVIEW])?;
        let scope = stored_scope(&a)?;
        let cid = parse_clause("clause", &input.clause, &scope)?;
        let item = item_of(state, &a, cid.table).await?;
        require_assessor(p, &a, &item, "添加证据", "add evidence")?;
        let row = EvidenceRow {
            id: 0,
            assessment_id: id,
            clause_id: cid.to_string(),
            kind: input.kind.clone(),
            name: name.clone(),
            sha256: sha256.clone(),
            size,
            expires_on,
            added_by: p.user.username.clone(),
            added_at: state.clock.now(),
            expired_at: None,
        };
        let eid = tx.insert_evidence(&row, content.as_deref()).await?;
        let d = ad(p, OP, id).after(json!({
            "evidence": eid, "clause": row.clause_id, "kind": row.kind, "name": row.name,
            "sha256": row.sha256, "size": row.size, "expires_on": row.expires_on,
        }));
        Ok((vec![d], eid))
    }
    .await;
    finish(state, p, OP, id, tx, r).await
}

/// The item's assessor removes evidence.
pub async fn delete_evidence(
    state: &AppState,
    p: &Principal,
    id: i64,
    evidence_id: i64,
) -> ApiResult<()> {
    const OP: &str = "assessment.evidence_delete";
    authorize(state, p, &write(OP)).await?;
    let mut tx = state.store.begin().await?;
    let r = async {
        let a = lock(&mut *tx, id).await?;
        require_state(&a, "删除证据", "remove evidence", &[IN_PROGRESS, IN_REVIEW])?;
        let e = state
            .store
            .assessment_evidence(id)
            .await?
            .into_iter()
            .find(|e| e.id == evidence_id)
            .ok_or_else(|| ApiError::not_found(&format!("evidence {evidence_id}")))?;
        let t = ClauseId::parse(&e.clause_id).map_or(0, |c| c.table);
        let item = item_of(state, &a, t).await?;
        require_assessor(p, &a, &item, "删除证据", "remove evidence")?;
        tx.delete_evidence(evidence_id).await?;
        Ok((
            vec![ad(p, OP, id).before(json!({
                "evidence": e.id, "clause": e.clause_id, "kind": e.kind, "name": e.name,
                "sha256": e.sha256,
            }))],
            (),
        ))
    }
    .await;
    finish(state, p, OP, id, tx, r).await
}

/// The background pass: evidence past its expiry date returns its clause to `unrated`. Returns
/// how many pieces of evidence it handled.
pub async fn expire_evidence(state: &AppState) -> ApiResult<usize> {
    let now = state.clock.now();
    let today = china_date(now);
    let mut handled = 0;
    for e in state.store.expired_evidence(today, 200).await? {
        let mut tx = state.store.begin().await?;
        let Some(a) = tx.lock_assessment(e.assessment_id).await? else {
            continue;
        };
        if a.state == SIGNED_OFF || !tx.mark_evidence_expired(e.id, now).await? {
            continue;
        }
        let answer = state
            .store
            .assessment_answers(a.id)
            .await?
            .into_iter()
            .find(|r| r.clause_id == e.clause_id);
        let previous = answer.as_ref().map(|r| r.rating.clone());
        if let Some(r) = answer.filter(|r| r.rating != "unrated") {
            tx.upsert_answers(&[AnswerRow {
                rating: "unrated".to_string(),
                justification: None,
                na_approved_by: None,
                rated_by: None,
                rated_at: Some(now),
                ..r
            }])
            .await?;
        }
        let table = ClauseId::parse(&e.clause_id).map_or(0, |c| i64::from(c.table));
        let item = state
            .store
            .assessment_items(a.id)
            .await?
            .into_iter()
            .find(|i| i.item_table == table);
        let assessor = item
            .as_ref()
            .and_then(|i| i.assessor.clone())
            .unwrap_or_else(|| a.owner.clone());
        let expires = e.expires_on.map(|d| d.to_string()).unwrap_or_default();
        if let Some(i) = item.filter(|i| i.review_state == SUBMITTED || i.review_state == APPROVED)
        {
            tx.upsert_assessment_item(&AssessmentItemRow {
                review_state: OPEN.to_string(),
                review_comment: Some(format!(
                    "证据 {} 已于 {expires} 过期，条款 {} 退回未评 / evidence {} expired on {expires}; clause {} is unrated again",
                    e.name, e.clause_id, e.name, e.clause_id
                )),
                ..i
            })
            .await?;
        }
        let d = AuditDraft::new(
            Actor::system(),
            "assessment.evidence_expired",
            "assessment",
            Outcome::Success,
        )
        .object(a.id)
        .before(json!({"clause": e.clause_id, "rating": previous}))
        .after(json!({"clause": e.clause_id, "rating": "unrated", "evidence": e.id}))
        .detail(format!(
            "evidence {} ({}) of {} expired on {expires}; assessor {assessor} notified",
            e.id, e.name, e.clause_id
        ));
        tx.commit(vec![d], now).await?;
        state.metrics.audit_appended(1);
        handled += 1;
        notify_expired(state, &a, &e, &assessor).await;
    }
    Ok(handled)
}

/// Webhook notification (best effort), like the engine's failure notifications.
async fn notify_expired(state: &AppState, a: &AssessmentRow, e: &EvidenceRow, assessor: &str) {
    let Some(hook) = &state.exec.webhook else {
        return;
    };
    let body = json!({
        "event": "assessment.evidence_expired", "assessment_id": a.id, "assessment": a.name,
        "clause": e.clause_id, "evidence": e.name, "expires_on": e.expires_on,
        "assessor": assessor, "at": state.clock.now().to_rfc3339(),
    });
    hook.post(&body).await;
}

// ---------------------------------------------------------------- answers files

/// How an answers file would change an assessment.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ImportPreview {
    /// Clauses whose rating would change: `{clause, from, to}`.
    pub changes: Vec<RatingChange>,
    /// Answers in the file equal to what is stored.
    pub unchanged: usize,
    /// Pieces of evidence that would be added.
    pub evidence: usize,
    /// Whether the changes were applied.
    pub applied: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RatingChange {
    pub clause: String,
    pub from: String,
    pub to: String,
}

/// Parses an answers file (YAML or XLSX by its name) with the maturity crate; every problem is
/// reported (code, both languages, file and line or sheet and row).
pub fn parse_answers(name: &str, bytes: &[u8]) -> ApiResult<AnswerSet> {
    let cat = catalog()?;
    answers::parse_file(cat, name, bytes).map_err(|errors| {
        let zh: Vec<String> = errors.0.iter().map(Msg::message_zh).collect();
        let en: Vec<String> = errors.0.iter().map(Msg::message_en).collect();
        let code = errors.0.first().map_or("answers.syntax", Msg::code);
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Problem::field(
                code,
                "file",
                format!("答卷有 {} 处错误，未导入：{}", zh.len(), zh.join("；")),
                format!(
                    "the answers file has {} error(s); nothing imported: {}",
                    en.len(),
                    en.join("; ")
                ),
            ),
        )
    })
}

fn evidence_rows(
    id: i64,
    cid: &ClauseId,
    ev: &[Evidence],
    who: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<Vec<EvidenceRow>> {
    ev.iter()
        .map(|e| {
            let (kind, name, sha256) = match e {
                Evidence::File { path, sha256 } => {
                    if sha256.is_empty() {
                        return Err(bad(
                            "assess.evidence_hash_missing",
                            "file",
                            format!("条款 {cid} 的证据文件 {path} 没有 sha256：服务器读不到该文件，须在答卷中写明哈希"),
                            format!("clause {cid}: evidence file {path} has no sha256; the server cannot read the file, so the answers file must record its hash"),
                        ));
                    }
                    (FILE, path.clone(), Some(sha256.clone()))
                }
                Evidence::Url { url } => (LINK, url.clone(), None),
                Evidence::Text { text } => match text.strip_prefix("platform:") {
                    Some(r) => (PLATFORM, r.to_string(), None),
                    None => (TEXT, text.clone(), None),
                },
            };
            Ok(EvidenceRow {
                id: 0,
                assessment_id: id,
                clause_id: cid.to_string(),
                kind: kind.to_string(),
                name,
                sha256,
                size: None,
                expires_on: None,
                added_by: who.to_string(),
                added_at: now,
                expired_at: None,
            })
        })
        .collect()
}

/// Imports an answers file into an assessment: `apply` false only previews the changes. The
/// caller must be the assessor of every item the file rates (and those items open or sent
/// back). Clauses out of the assessment's scope are refused.
pub async fn import_answers(
    state: &AppState,
    p: &Principal,
    id: i64,
    name: &str,
    bytes: &[u8],
    apply: bool,
) -> ApiResult<ImportPreview> {
    const OP: &str = "assessment.import";
    if apply {
        authorize(state, p, &write(OP)).await?;
    } else {
        authorize_read(state, p, "assessment.import_preview").await?;
    }
    let set = parse_answers(name, bytes)?;
    let mut tx = state.store.begin().await?;
    let r = async {
        let a = lock(&mut *tx, id).await?;
        let scope = stored_scope(&a)?;
        let stored: BTreeMap<String, AnswerRow> = state
            .store
            .assessment_answers(id)
            .await?
            .into_iter()
            .map(|r| (r.clause_id.clone(), r))
            .collect();
        let items: BTreeMap<i64, AssessmentItemRow> = state
            .store
            .assessment_items(id)
            .await?
            .into_iter()
            .map(|i| (i.item_table, i))
            .collect();
        let now = state.clock.now();
        let mut preview = ImportPreview::default();
        let mut rows = Vec::new();
        let mut evidence = Vec::new();
        for (cid, ans) in &set.answers {
            if !scope.contains(cid.table) {
                return Err(bad(
                    "assess.clause_out_of_scope",
                    "file",
                    format!("答卷中的条款 {cid} 不在评估「{}」的范围内", a.name),
                    format!(
                        "clause {cid} in the file is not in the scope of assessment {:?}",
                        a.name
                    ),
                ));
            }
            let from = stored
                .get(&cid.to_string())
                .map_or("unrated", |r| r.rating.as_str())
                .to_string();
            let to = ans.rating.key().to_string();
            let old = stored.get(&cid.to_string());
            let same = old.is_some_and(|o| {
                o.rating == to && o.comment == ans.comment && o.justification == ans.justification
            }) || (old.is_none() && ans.rating == Rating::Unrated);
            let ev = evidence_rows(id, cid, &ans.evidence, &p.user.username, now)?;
            preview.evidence += ev.len();
            evidence.extend(ev);
            if same {
                preview.unchanged += 1;
                continue;
            }
            if apply {
                let item = items
                    .get(&i64::from(cid.table))
                    .ok_or_else(|| not_found(id))?;
                require_assessor(p, &a, item, "导入评级", "import ratings")?;
            }
            preview.changes.push(RatingChange {
                clause: cid.to_string(),
                from,
                to: to.clone(),
            });
            rows.push(AnswerRow {
                assessment_id: id,
                clause_id: cid.to_string(),
                item_table: i64::from(cid.table),
                rating: to,
                comment: ans.comment.clone(),
                justification: ans.justification.clone(),
                na_approved_by: None,
                rated_by: Some(p.user.username.clone()),
                rated_at: Some(now),
            });
        }
        if !apply {
            return Ok((Vec::new(), preview));
        }
        require_state(&a, "导入答卷", "import answers", &[IN_PROGRESS, IN_REVIEW])?;
        if !evidence.is_empty() {
            for e in &evidence {
                let t = ClauseId::parse(&e.clause_id).map_or(0, |c| i64::from(c.table));
                let item = items.get(&t).ok_or_else(|| not_found(id))?;
                require_assessor(p, &a, item, "导入证据", "import evidence")?;
            }
        }
        tx.upsert_answers(&rows).await?;
        for e in &evidence {
            tx.insert_evidence(e, None).await?;
        }
        preview.applied = true;
        let d = ad(p, OP, id)
            .after(json!({"changes": preview.changes.len(), "evidence": preview.evidence}))
            .detail(format!("answers file {name}"));
        Ok((vec![d], preview))
    }
    .await;
    match r {
        Ok((drafts, preview)) if drafts.is_empty() => {
            drop(tx);
            Ok(preview)
        }
        other => finish(state, p, OP, id, tx, other).await,
    }
}

/// Creates an assessment from an answers file (`ballast assess push`): scope and meta from the
/// file, the caller as owner and assessor of every item, state `in_progress`, the file's
/// answers and evidence imported. Returns the new id.
pub async fn create_from_answers(
    state: &AppState,
    p: &Principal,
    assessment_name: &str,
    file_name: &str,
    bytes: &[u8],
) -> ApiResult<i64> {
    const OP: &str = "assessment.create";
    authorize(state, p, &write(OP)).await?;
    let cat = catalog()?;
    let set = parse_answers(file_name, bytes)?;
    let mut meta = set.meta.clone();
    meta.remove("name");
    let input = CreateInput {
        name: assessment_name.to_string(),
        scope: Some(set.scope.to_spec()),
        targets: BTreeMap::new(),
        owner: None,
        meta,
    };
    let (mut row, tables) = new_row(state, p, &input).await?;
    row.state = IN_PROGRESS.to_string();
    let now = state.clock.now();
    let mut rows = Vec::new();
    let mut evidence = Vec::new();
    for (cid, ans) in &set.answers {
        if cat.clause(cid).is_none() || !set.scope.contains(cid.table) {
            continue;
        }
        evidence.extend(evidence_rows(0, cid, &ans.evidence, &p.user.username, now)?);
        if ans.rating == Rating::Unrated {
            continue;
        }
        rows.push(AnswerRow {
            assessment_id: 0,
            clause_id: cid.to_string(),
            item_table: i64::from(cid.table),
            rating: ans.rating.key().to_string(),
            comment: ans.comment.clone(),
            justification: ans.justification.clone(),
            na_approved_by: None,
            rated_by: Some(p.user.username.clone()),
            rated_at: Some(now),
        });
    }
    let mut tx = state.store.begin().await?;
    let id = tx.insert_assessment(&row).await?;
    for t in &tables {
        tx.upsert_assessment_item(&AssessmentItemRow {
            assessor: Some(p.user.username.clone()),
            ..item_row(id, *t)
        })
        .await?;
    }
    for r in &mut rows {
        r.assessment_id = id;
    }
    tx.upsert_answers(&rows).await?;
    for e in &mut evidence {
        e.assessment_id = id;
        tx.insert_evidence(e, None).await?;
    }
    let d = ad(p, OP, id)
        .after(json!({
            "name": row.name, "scope": row.scope, "owner": row.owner, "state": row.state,
            "answers": rows.len(), "evidence": evidence.len(),
        }))
        .detail(format!("from answers file {file_name}"));
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok(id)
}

// ---------------------------------------------------------------- improvement actions

/// An improvement action to create or change.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionInput {
    /// `T5`.
    pub item: String,
    pub title: String,
    /// Username.
    pub owner: String,
    /// `YYYY-MM-DD`.
    pub due_on: String,
    /// `open` (default), `in_progress`, `done`, `cancelled`.
    #[serde(default)]
    pub status: Option<String>,
    /// Clause IDs of the gap the action closes.
    #[serde(default)]
    pub clauses: Vec<String>,
}

const ACTION_STATUSES: [&str; 4] = ["open", "in_progress", "done", "cancelled"];

async fn action_row(
    state: &AppState,
    p: &Principal,
    a: &AssessmentRow,
    input: &ActionInput,
) -> ApiResult<ImprovementActionRow> {
    let t = parse_table("item", &input.item)?;
    let scope = stored_scope(a)?;
    if !scope.contains(t) {
        return Err(bad(
            "assess.item_out_of_scope",
            "item",
            format!("表{t} 不在评估「{}」的范围内", a.name),
            format!("T{t} is not in the scope of assessment {:?}", a.name),
        ));
    }
    let title = input.title.trim();
    if title.is_empty() || title.chars().count() > 500 {
        return Err(bad(
            "assess.action_title",
            "title",
            "措施名称须为 1–500 个字符".into(),
            "the action's title must be 1–500 characters".into(),
        ));
    }
    user_exists(state, "owner", &input.owner).await?;
    let due_on = NaiveDate::parse_from_str(input.due_on.trim(), "%Y-%m-%d").map_err(|_| {
        bad(
            "assess.date_invalid",
            "due_on",
            format!("到期日 {:?} 无效，应为 YYYY-MM-DD", input.due_on),
            format!("due_on {:?} is invalid: expected YYYY-MM-DD", input.due_on),
        )
    })?;
    let status = input.status.clone().unwrap_or_else(|| "open".to_string());
    if !ACTION_STATUSES.contains(&status.as_str()) {
        return Err(bad(
            "assess.action_status",
            "status",
            format!("状态 {status:?} 无效，应为 open、in_progress、done 或 cancelled"),
            format!("status {status:?} is invalid: use open, in_progress, done or cancelled"),
        ));
    }
    let mut clauses = Vec::new();
    for (i, c) in input.clauses.iter().enumerate() {
        let cid = parse_clause(&format!("clauses[{i}]"), c, &scope)?;
        if cid.table != t {
            return Err(bad(
                "assess.action_clause",
                &format!("clauses[{i}]"),
                format!("条款 {cid} 不属于表{t}"),
                format!("clause {cid} is not T{t}'s"),
            ));
        }
        clauses.push(cid.to_string());
    }
    let now = state.clock.now();
    Ok(ImprovementActionRow {
        id: 0,
        assessment_id: a.id,
        item_table: i64::from(t),
        title: title.to_string(),
        owner: input.owner.clone(),
        due_on,
        status,
        clause_ids: clauses,
        created_by: p.user.username.clone(),
        created_at: now,
        updated_by: p.user.username.clone(),
        updated_at: now,
    })
}

/// Creates an improvement action (any state: actions follow a signed-off assessment too).
/// The assessment's owner decides on actions.
pub async fn create_action(
    state: &AppState,
    p: &Principal,
    id: i64,
    input: &ActionInput,
) -> ApiResult<i64> {
    const OP: &str = "assessment.action_create";
    authorize(state, p, &write(OP)).await?;
    let mut tx = state.store.begin().await?;
    let r = async {
        let a = lock(&mut *tx, id).await?;
        require_owner(p, &a, "创建改进措施", "create improvement actions")?;
        let row = action_row(state, p, &a, input).await?;
        let aid = tx.insert_improvement_action(&row).await?;
        Ok((
            vec![ad(p, OP, id).after(json!({"action": aid, "input": input}))],
            aid,
        ))
    }
    .await;
    finish(state, p, OP, id, tx, r).await
}

/// Changes an improvement action: the assessment's owner, or the action's owner.
pub async fn update_action(
    state: &AppState,
    p: &Principal,
    action_id: i64,
    input: &ActionInput,
) -> ApiResult<()> {
    const OP: &str = "assessment.action_update";
    authorize(state, p, &write(OP)).await?;
    let old = state
        .store
        .improvement_actions(None)
        .await?
        .into_iter()
        .find(|x| x.id == action_id)
        .ok_or_else(|| ApiError::not_found(&format!("improvement action {action_id}")))?;
    let id = old.assessment_id;
    let mut tx = state.store.begin().await?;
    let r =
        async {
            let a = lock(&mut *tx, id).await?;
            if p.user.username != a.owner && p.user.username != old.owner {
                return Err(forbidden(
                    "assess.not_action_owner",
                    format!(
                        "只有评估负责人 {} 或措施负责人 {} 可以修改该措施",
                        a.owner, old.owner
                    ),
                    format!(
                        "only the assessment's owner ({}) or the action's owner ({}) can change it",
                        a.owner, old.owner
                    ),
                ));
            }
            let row = ImprovementActionRow {
                id: action_id,
                created_by: old.created_by.clone(),
                created_at: old.created_at,
                ..action_row(state, p, &a, input).await?
            };
            tx.update_improvement_action(&row).await?;
            Ok((
                vec![ad(p, OP, id)
                .before(json!({"action": action_id, "status": old.status, "due_on": old.due_on}))
                .after(json!({"action": action_id, "input": input}))],
                (),
            ))
        }
        .await;
    finish(state, p, OP, id, tx, r).await
}
