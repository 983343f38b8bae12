//! Calendar import on the server: validate a file (definition or year file) in the context of
//! what is loaded, show the difference, and on apply write it into `<data-dir>/calendars/`, append
//! the `calendar.import` audit record and reload in place.

use std::path::Path;

use axum::http::StatusCode;
use ballast_calendar::{CalendarFile, CalendarSet, diff, parse_calendar_file};
use ballast_core::Problem;
use ballast_core::audit::{AuditDraft, Outcome};
use ballast_core::authz::{Permission, Target};
use ballast_core::guard::{Action, ActionKind, Principal};
use serde::Serialize;

use super::api::{ClosureOut, CoverageOut, MakeupOut};
use super::{CALENDAR_DIR, api_error, build_set, read_sources};
use crate::error::{ApiError, ApiResult};
use crate::service;
use crate::state::AppState;

/// What one (calendar, year) gains and loses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct YearChange {
    pub calendar: String,
    pub year: i32,
    /// The year was not loaded before.
    pub new_year: bool,
    pub unchanged: bool,
    pub added_closures: Vec<ClosureOut>,
    pub removed_closures: Vec<ClosureOut>,
    pub added_makeup_workdays: Vec<MakeupOut>,
    pub removed_makeup_workdays: Vec<MakeupOut>,
    /// Weekdays that stop being trading days.
    pub trading_days_removed: Vec<chrono::NaiveDate>,
    /// Weekdays that become trading days.
    pub trading_days_added: Vec<chrono::NaiveDate>,
    pub coverage_after: Option<CoverageOut>,
}

/// A definition file's effect.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DefinitionChange {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    /// Replaces the loaded definition with this id (else a new calendar).
    pub replaces: bool,
    pub session_versions: usize,
}

/// The result of an import, dry run or applied.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub dry_run: bool,
    pub applied: bool,
    /// Where the file goes (relative to the data directory).
    pub file: String,
    /// A file of that name was already there and is replaced.
    pub replaces_file: bool,
    /// `year` or `definition`.
    pub kind: &'static str,
    pub summary_zh: String,
    pub summary_en: String,
    pub changes: Vec<YearChange>,
    pub definition: Option<DefinitionChange>,
    /// The difference, one line per change (`+` added, `-` removed), Chinese and English.
    pub lines: Vec<String>,
}

fn invalid_name(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        Problem::field(
            "calendar.import_name_invalid",
            "name",
            format!("文件名 {name:?} 无效：只能用字母、数字、.、-、_，以 .toml 结尾"),
            format!("invalid file name {name:?}: use letters, digits, ., - and _, ending in .toml"),
        ),
    )
}

fn valid_name(name: &str) -> bool {
    name.len() <= 100
        && name.ends_with(".toml")
        && name.len() > 5
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The file name a parsed file gets in the calendar directory when none is given.
fn canonical_name(f: &CalendarFile) -> String {
    match f {
        CalendarFile::Year(y) => format!("{}-{}.toml", y.calendars.join("-"), y.year),
        CalendarFile::Definition(d) => format!("{}.calendar.toml", d.id),
    }
}

fn closure_out(c: &ballast_calendar::Closure) -> ClosureOut {
    ClosureOut {
        from: c.from,
        to: c.to,
        reason_zh: c.reason_zh.clone(),
        reason_en: c.reason_en.clone(),
        kind: c.kind.as_str(),
    }
}

fn makeup_out(m: &ballast_calendar::MakeupWorkday) -> MakeupOut {
    MakeupOut {
        date: m.date,
        reason_zh: m.reason_zh.clone(),
        reason_en: m.reason_en.clone(),
    }
}

fn report(
    parsed: &CalendarFile,
    current: &CalendarSet,
    after: &CalendarSet,
    file: String,
    replaces_file: bool,
    dry_run: bool,
) -> ImportReport {
    let mut lines = Vec::new();
    let mut changes = Vec::new();
    let mut definition = None;
    let (kind, summary_zh, summary_en) = match parsed {
        CalendarFile::Year(y) => {
            for cal in &y.calendars {
                let old = current.get(cal).ok().and_then(|c| c.year(y.year));
                let d = diff(&old.map(|f| f.data.clone()).unwrap_or_default(), &y.data);
                lines.push(format!("## {cal} {}", y.year));
                if d.is_empty() {
                    lines.push("  无变化 / no change".to_string());
                }
                lines.extend(d.render().into_iter().map(|l| format!("  {l}")));
                let coverage_after = after.get(cal).ok().map(|c| CoverageOut::of(c.coverage()));
                if let Some(c) = &coverage_after {
                    lines.push(format!(
                        "  导入后覆盖 / coverage after import: {} .. {}",
                        c.first, c.last
                    ));
                }
                changes.push(YearChange {
                    calendar: cal.clone(),
                    year: y.year,
                    new_year: old.is_none(),
                    unchanged: d.is_empty(),
                    added_closures: d.added_closures.iter().map(closure_out).collect(),
                    removed_closures: d.removed_closures.iter().map(closure_out).collect(),
                    added_makeup_workdays: d.added_makeup_workdays.iter().map(makeup_out).collect(),
                    removed_makeup_workdays: d
                        .removed_makeup_workdays
                        .iter()
                        .map(makeup_out)
                        .collect(),
                    trading_days_removed: d.trading_days_removed,
                    trading_days_added: d.trading_days_added,
                    coverage_after,
                });
            }
            (
                "year",
                format!(
                    "年度文件：{} 年，交易日历 {}，{} 个休市段，{} 个调休上班日",
                    y.year,
                    y.calendars.join("、"),
                    y.data.closures.len(),
                    y.data.makeup_workdays.len()
                ),
                format!(
                    "year file: {}, calendars {}, {} closures, {} make-up workdays",
                    y.year,
                    y.calendars.join(", "),
                    y.data.closures.len(),
                    y.data.makeup_workdays.len()
                ),
            )
        }
        CalendarFile::Definition(d) => {
            let replaces = current.get(&d.id).is_ok();
            lines.push(format!(
                "## {}: {}",
                d.id,
                if replaces {
                    "替换现有定义 / replaces the loaded definition"
                } else {
                    "新增交易日历 / new calendar"
                }
            ));
            definition = Some(DefinitionChange {
                id: d.id.clone(),
                name_zh: d.name_zh.clone(),
                name_en: d.name_en.clone(),
                replaces,
                session_versions: d.sessions.len(),
            });
            (
                "definition",
                format!(
                    "定义文件：交易日历 {}（{}），{} 个交易时段版本",
                    d.id,
                    d.name_zh,
                    d.sessions.len()
                ),
                format!(
                    "definition file: calendar {} ({}), {} session versions",
                    d.id,
                    d.name_en,
                    d.sessions.len()
                ),
            )
        }
    };
    ImportReport {
        dry_run,
        applied: false,
        file,
        replaces_file,
        kind,
        summary_zh,
        summary_en,
        changes,
        definition,
        lines,
    }
}

fn io_failed(path: &Path, e: &std::io::Error) -> ApiError {
    tracing::error!("calendar import: {}: {e}", path.display());
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        Problem::new(
            "calendar.write_failed",
            format!("写入 {} 失败，未做任何更改：{e}", path.display()),
            format!(
                "writing {} failed; nothing was changed: {e}",
                path.display()
            ),
        ),
    )
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Validates `text` (the file's contents) against what is loaded and shows the difference; with
/// `dry_run = false` also writes it as `<data-dir>/calendars/NAME` (NAME given, or derived from
/// the content: `sse-szse-2027.toml`, `firm.calendar.toml`), audits `calendar.import` and reloads.
/// Both need `calendar.manage`.
pub async fn import(
    state: &AppState,
    p: &Principal,
    name: Option<&str>,
    text: &str,
    dry_run: bool,
) -> ApiResult<ImportReport> {
    let (kind, op) = if dry_run {
        (ActionKind::Read, "calendar.import.preview")
    } else {
        (ActionKind::Mutate, "calendar.import")
    };
    service::authorize(
        state,
        p,
        &Action::new(kind, Permission::CalendarManage, op, Target::global()),
    )
    .await?;
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    if let Some(n) = name
        && !valid_name(n)
    {
        return Err(invalid_name(n));
    }
    let shown = name.unwrap_or("upload.toml");
    let parsed = parse_calendar_file(shown, text).map_err(|e| api_error(&e))?;
    let target_name = name.map_or_else(|| canonical_name(&parsed), String::from);
    let rt = &state.calendar;
    let _guard = rt.write_lock.lock().await;
    let current = rt.calendars_api()?;
    let dir = rt.calendar_dir();
    let source_name = format!("{CALENDAR_DIR}/{target_name}");
    let mut sources =
        read_sources(&dir).map_err(|p| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, p))?;
    let replaces_file = sources.iter().any(|(n, _)| *n == source_name);
    let previous_text = sources
        .iter()
        .find(|(n, _)| *n == source_name)
        .map(|(_, t)| t.clone());
    sources.retain(|(n, _)| *n != source_name);
    sources.push((source_name.clone(), text.to_string()));
    let after = build_set(&sources).map_err(|e| api_error(&e))?;
    let mut rep = report(
        &parsed,
        &current,
        &after,
        source_name.clone(),
        replaces_file,
        dry_run,
    );
    if dry_run {
        return Ok(rep);
    }
    let path = dir.join(&target_name);
    let tx = state.store.begin().await?;
    write_atomic(&path, text).map_err(|e| io_failed(&path, &e))?;
    let summary: Vec<serde_json::Value> = rep
        .changes
        .iter()
        .map(|c| {
            serde_json::json!({
                "calendar": c.calendar, "year": c.year, "new_year": c.new_year,
                "added_closures": c.added_closures.len(), "removed_closures": c.removed_closures.len(),
                "added_makeup_workdays": c.added_makeup_workdays.len(),
                "removed_makeup_workdays": c.removed_makeup_workdays.len(),
                "trading_days_removed": c.trading_days_removed, "trading_days_added": c.trading_days_added,
                "coverage_after": c.coverage_after,
            })
        })
        .collect();
    let draft = AuditDraft::new(
        service::actor(p),
        "calendar.import",
        "calendar_file",
        Outcome::Success,
    )
    .from_ip(p.source_ip.map(|ip| ip.to_string()))
    .object(&source_name)
    .after(serde_json::json!({
        "file": source_name, "kind": rep.kind, "replaces_file": replaces_file,
        "changes": summary, "definition": rep.definition,
        "lines": rep.lines.iter().take(300).collect::<Vec<_>>(),
    }))
    .detail(format!("{} / {}", rep.summary_zh, rep.summary_en));
    if let Err(e) = tx.commit(vec![draft], state.clock.now()).await {
        let restored = match &previous_text {
            Some(t) => write_atomic(&path, t),
            None => std::fs::remove_file(&path),
        };
        if let Err(w) = restored {
            tracing::error!(
                "restoring {} after a failed audit commit: {w}",
                path.display()
            );
        }
        return Err(e.into());
    }
    state.metrics.audit_appended(1);
    if let Err(p) = rt.reload_calendars() {
        // Validated above against the same files; only a concurrent edit of the directory gets
        // here. The calendars stay unloaded (fail closed) and the reason is reported.
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, p));
    }
    rep.applied = true;
    Ok(rep)
}
