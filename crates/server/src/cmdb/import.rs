//! Instances in and out of spreadsheets: CSV and XLSX, one model per file.
//!
//! A file is a header row, then one instance per row. The header names the columns: `name` (or
//! 名称) for the instance's name, then attributes by key, Chinese name or English name (any
//! case). Problems are reported per row with the spreadsheet's row number and column letter:
//! unknown (renamed) columns, a missing `name` column or required attribute column, wrong
//! types, duplicate names or unique values (in the file or against the database), dangling
//! references.
//!
//! A row updates the instance with its name in the environment, or else the one holding one of
//! its unique values (so a renamed host is updated, not duplicated); otherwise it creates one.
//! Columns the file does not have are left as they are; an empty cell clears the attribute.
//! Re-importing the same file changes nothing. With any error nothing is changed; otherwise
//! every change is one transaction with one audit record (`cmdb.import`) and a history row per
//! instance (`via = import`).

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;

use axum::http::{HeaderMap, StatusCode, header};
use ballast_cmdb::Model;
use ballast_cmdb::validate::index_values;
use ballast_core::Problem;
use ballast_core::audit::Outcome;
use ballast_core::guard::Principal;
use ballast_store::{CiQuery, CiRow};
use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::service::{self, as_map, diff, history_row};
use crate::error::{ApiError, ApiResult};
use crate::service::draft;
use crate::state::AppState;

/// Most rows one import takes.
pub const MAX_ROWS: usize = 50_000;
/// Largest import request (the file, or on the page the previewed file carried back in base64):
/// the server's general body limit is too small for tens of thousands of rows.
pub const MAX_IMPORT_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The format from `?format=` or the Content-Type.
pub fn format_of(param: Option<&str>, headers: &HeaderMap) -> ApiResult<Format> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match param {
        Some("csv") => Ok(Format::Csv),
        Some("xlsx") => Ok(Format::Xlsx),
        None if ct.starts_with(XLSX_TYPE) => Ok(Format::Xlsx),
        None if ct.starts_with("text/csv") || ct.starts_with("text/plain") => Ok(Format::Csv),
        _ => Err(ApiError::bad_request(Problem::field(
            "cmdb.import_format",
            "format",
            "无法判断文件格式：请用 ?format=csv 或 ?format=xlsx，或发送相应的 Content-Type",
            "cannot tell the file format: pass ?format=csv or ?format=xlsx, or the matching Content-Type",
        ))),
    }
}

/// `A`, `B`, …, `Z`, `AA`, … for a 0-based column.
pub fn column_letter(mut c: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(char::from(b'A' + (c % 26) as u8));
        if c < 26 {
            break;
        }
        c = c / 26 - 1;
    }
    s.iter().rev().collect()
}

fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.trim().to_string(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => excel_date(dt.as_f64()).unwrap_or_else(|| dt.as_f64().to_string()),
        Data::Error(e) => format!("#{e:?}"),
    }
}

fn excel_date(serial: f64) -> Option<String> {
    let base = chrono::NaiveDate::from_ymd_opt(1899, 12, 30)?;
    let days = serial.floor();
    if !(1.0..2_958_466.0).contains(&days) {
        return None;
    }
    Some(
        (base + chrono::Duration::days(days as i64))
            .format("%Y-%m-%d")
            .to_string(),
    )
}

fn unreadable(zh: String, en: String) -> ApiError {
    ApiError::bad_request(Problem::field("cmdb.import_unreadable", "file", zh, en))
}

/// The rows of the file's first sheet as text, each with its 1-based row (line) number; CSV
/// skips blank lines, so numbers may jump.
pub fn read_rows(format: Format, bytes: &[u8]) -> ApiResult<Vec<(usize, Vec<String>)>> {
    match format {
        Format::Csv => {
            let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
                .map_err(|e| {
                    unreadable(
                        format!("CSV 文件不是 UTF-8 编码：{e}"),
                        format!("the CSV file is not UTF-8: {e}"),
                    )
                })?;
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_bytes());
            let mut rows = Vec::new();
            for (i, rec) in r.records().enumerate() {
                let rec = rec.map_err(|e| {
                    unreadable(
                        format!("CSV 第 {} 行无法解析：{e}", i + 1),
                        format!("CSV row {}: cannot parse: {e}", i + 1),
                    )
                })?;
                // The record's first line, counted from its byte offset (the reader's own line
                // count does not include skipped blank lines).
                let line = rec
                    .position()
                    .and_then(|p| usize::try_from(p.byte()).ok())
                    .map(|b| {
                        // The offset may be where skipped blank lines begin.
                        b + text
                            .get(b..)
                            .map_or(0, |t| t.len() - t.trim_start_matches(['\r', '\n']).len())
                    })
                    .and_then(|b| text.get(..b))
                    .map_or(i + 1, |before| before.matches('\n').count() + 1);
                rows.push((line, rec.iter().map(|s| s.trim().to_string()).collect()));
            }
            Ok(rows)
        }
        Format::Xlsx => {
            let mut wb: Xlsx<_> =
                open_workbook_from_rs(Cursor::new(bytes.to_vec())).map_err(|e| {
                    unreadable(
                        format!("不是可读取的 XLSX 工作簿：{e}"),
                        format!("not a readable XLSX workbook: {e}"),
                    )
                })?;
            let range = wb.worksheet_range_at(0).ok_or_else(|| {
                unreadable(
                    "工作簿中没有工作表".into(),
                    "the workbook has no sheet".into(),
                )
            })?;
            let range = range.map_err(|e| {
                unreadable(
                    format!("无法读取第一个工作表：{e}"),
                    format!("cannot read the first sheet: {e}"),
                )
            })?;
            let Some((end_row, end_col)) = range.end() else {
                return Ok(Vec::new());
            };
            Ok((0..=end_row)
                .map(|r| {
                    (
                        r as usize + 1,
                        (0..=end_col)
                            .map(|c| range.get_value((r, c)).map(cell_text).unwrap_or_default())
                            .collect(),
                    )
                })
                .collect())
        }
    }
}

/// One problem of an import, where it is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowError {
    /// Spreadsheet row (1 = the header).
    pub row: usize,
    /// Column letter, when the problem is in one column.
    pub column: Option<String>,
    /// The column's header text.
    pub header: Option<String>,
    pub code: String,
    pub message_zh: String,
    pub message_en: String,
}

/// A row that creates or changes an instance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowPlan {
    pub row: usize,
    pub name: String,
    /// The instance changed (none for a create, or after a dry run of one).
    pub id: Option<i64>,
    /// `{attr: {from, to}}`.
    #[schema(value_type = Object)]
    pub diff: Value,
}

/// What an import did or, for a dry run or a file with errors, would do.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportReport {
    pub model: String,
    pub environment: String,
    pub dry_run: bool,
    /// Whether the changes were made (no dry run, no errors).
    pub applied: bool,
    /// Data rows read (empty rows skipped).
    pub rows: usize,
    pub creates: Vec<RowPlan>,
    pub updates: Vec<RowPlan>,
    pub unchanged: usize,
    pub errors: Vec<RowError>,
}

enum Col {
    Name,
    Attr(String),
}

struct Planned {
    row: usize,
    existing: Option<CiRow>,
    name: String,
    attrs: Map<String, Value>,
    diff: Value,
}

/// Reads, checks and (unless `dry_run` or there are errors) applies an import.
pub async fn import(
    state: &AppState,
    p: &Principal,
    model_key: &str,
    env: &str,
    format: Format,
    bytes: &[u8],
    dry_run: bool,
) -> ApiResult<ImportReport> {
    if !state.config.environments.iter().any(|e| e == env) {
        return Err(ApiError::bad_request(Problem::field(
            "environment.unknown",
            "environment",
            format!("环境 {env} 不是本平台管理的环境"),
            format!("environment {env} is not managed by this deployment"),
        )));
    }
    if dry_run {
        service::authorize_read(state, p, "cmdb.import.preview", env).await?;
    } else {
        let action = ballast_core::guard::Action::new(
            ballast_core::guard::ActionKind::Mutate,
            ballast_core::authz::Permission::CmdbWrite,
            "cmdb.import",
            ballast_core::authz::Target::environment(env),
        );
        crate::service::authorize(state, p, &action).await?;
    }
    let m = service::model(state, model_key).await?;
    let rows = read_rows(format, bytes)?;
    let mut report = ImportReport {
        model: m.key.clone(),
        environment: env.to_string(),
        dry_run,
        applied: false,
        rows: 0,
        creates: Vec::new(),
        updates: Vec::new(),
        unchanged: 0,
        errors: Vec::new(),
    };
    let Some((_, header)) = rows.first() else {
        report.errors.push(RowError {
            row: 1,
            column: None,
            header: None,
            code: "cmdb.import_empty".into(),
            message_zh: "文件为空：第 1 行应为表头".into(),
            message_en: "the file is empty: row 1 must be the header".into(),
        });
        return Ok(report);
    };
    let cols = columns(&m, header, &mut report.errors);
    if !report.errors.is_empty() {
        return Ok(report);
    }
    if rows.len() > MAX_ROWS + 1 {
        return Err(ApiError::bad_request(Problem::field(
            "cmdb.import_too_large",
            "file",
            format!("文件超过 {MAX_ROWS} 行"),
            format!("the file has more than {MAX_ROWS} rows"),
        )));
    }
    let col_of = |key: &str| -> (Option<String>, Option<String>) {
        cols.iter()
            .enumerate()
            .find(|(_, c)| {
                matches!(c, Some(Col::Attr(k)) if k == key)
                    || (key == "name" && matches!(c, Some(Col::Name)))
            })
            .map_or((None, None), |(i, _)| {
                (Some(column_letter(i)), header.get(i).cloned())
            })
    };
    // The instances the file names, looked up in a few statements rather than one per row.
    let mut by_name: HashMap<String, CiRow> = HashMap::new();
    if let Some(name_col) = cols.iter().position(|c| matches!(c, Some(Col::Name))) {
        let names: Vec<String> = rows
            .iter()
            .skip(1)
            .filter_map(|(_, r)| r.get(name_col))
            .filter(|n| !n.trim().is_empty())
            .cloned()
            .collect();
        for chunk in names.chunks(1_000) {
            for c in state
                .store
                .cis(&CiQuery {
                    model: Some(m.key.clone()),
                    environments: Some(vec![env.to_string()]),
                    names: Some(chunk.to_vec()),
                    ..CiQuery::default()
                })
                .await?
            {
                by_name.insert(c.name.clone(), c);
            }
        }
    }
    // Who already holds the file's unique values: one query per 1,000 values, not per row.
    let mut lookups = service::Lookups::default();
    for key in m.unique_keys() {
        let Some(c) = cols
            .iter()
            .position(|col| matches!(col, Some(Col::Attr(k)) if *k == key))
        else {
            continue;
        };
        let mut values: Vec<String> = rows
            .iter()
            .skip(1)
            .filter_map(|(_, row)| row.get(c))
            .filter(|v| !v.trim().is_empty())
            .cloned()
            .collect();
        values.sort_unstable();
        values.dedup();
        lookups.prefetch(state, &m.key, &key, env, &values).await?;
    }
    let mut planned: Vec<Planned> = Vec::new();
    let mut names_seen: HashMap<String, usize> = HashMap::new();
    let mut unique_seen: HashMap<(String, String), usize> = HashMap::new();
    for (excel_row, row) in rows.iter().skip(1) {
        let excel_row = *excel_row;
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        report.rows += 1;
        let mut name = String::new();
        let mut given = Map::new();
        for (c, col) in cols.iter().enumerate() {
            let text = row.get(c).cloned().unwrap_or_default();
            match col {
                Some(Col::Name) => name = text,
                Some(Col::Attr(k)) => {
                    given.insert(k.clone(), Value::String(text));
                }
                None => {}
            }
        }
        let mut push = |key: &str, code: &str, zh: String, en: String| {
            let (column, header) = col_of(key);
            report.errors.push(RowError {
                row: excel_row,
                column,
                header,
                code: code.to_string(),
                message_zh: format!("第 {excel_row} 行：{zh}"),
                message_en: format!("row {excel_row}: {en}"),
            });
        };
        if let Some(first) = names_seen.insert(name.clone(), excel_row)
            && !name.is_empty()
        {
            push(
                "name",
                "cmdb.import_duplicate_name",
                format!("名称 {name} 与第 {first} 行重复"),
                format!("name {name} repeats row {first}"),
            );
            continue;
        }
        // Which instance the row is about: by name, else by a unique value.
        let mut existing = by_name.get(&name).cloned();
        if existing.is_none() {
            for key in m.unique_keys() {
                let values: Vec<String> = given
                    .get(&key)
                    .map(index_values)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|v| !v.trim().is_empty())
                    .collect();
                let mut holders = Vec::new();
                for v in &values {
                    holders.extend(lookups.holders(state, &m.key, &key, env, v).await?);
                }
                existing = holders.into_iter().min_by_key(|h| h.id);
                if existing.is_some() {
                    break;
                }
            }
        }
        let mut merged = existing
            .as_ref()
            .map(|e| as_map(&e.attributes))
            .unwrap_or_default();
        for (k, v) in given {
            merged.insert(k, v);
        }
        let checked = service::check_instance_with(
            state,
            &m,
            env,
            &name,
            &merged,
            existing.as_ref().map(|e| e.id),
            &mut lookups,
        )
        .await?;
        let attrs = match checked {
            Ok(a) => a,
            Err(errs) => {
                for e in errs {
                    push(&e.field, e.code, e.message_zh, e.message_en);
                }
                continue;
            }
        };
        let mut dup = false;
        for key in m.unique_keys() {
            for v in attrs.get(&key).map(index_values).unwrap_or_default() {
                if let Some(first) = unique_seen.insert((key.clone(), v.clone()), excel_row) {
                    push(
                        &key,
                        "cmdb.import_duplicate_unique",
                        format!("唯一属性 {key} 的值 {v:?} 与第 {first} 行重复"),
                        format!("unique attribute {key} value {v:?} repeats row {first}"),
                    );
                    dup = true;
                }
            }
        }
        if dup {
            continue;
        }
        let d = match &existing {
            Some(e) => diff(
                Some((&e.name, &as_map(&e.attributes))),
                Some((&name, &attrs)),
            ),
            None => diff(None, Some((&name, &attrs))),
        };
        planned.push(Planned {
            row: excel_row,
            existing,
            name,
            attrs,
            diff: d,
        });
    }
    for pl in &planned {
        let changed = !as_map(&pl.diff).is_empty();
        let plan = RowPlan {
            row: pl.row,
            name: pl.name.clone(),
            id: pl.existing.as_ref().map(|e| e.id),
            diff: pl.diff.clone(),
        };
        match (&pl.existing, changed) {
            (None, _) => report.creates.push(plan),
            (Some(_), true) => report.updates.push(plan),
            (Some(_), false) => report.unchanged += 1,
        }
    }
    if dry_run
        || !report.errors.is_empty()
        || (report.creates.is_empty() && report.updates.is_empty())
    {
        report.applied = !dry_run && report.errors.is_empty();
        return Ok(report);
    }
    let now = state.clock.now();
    let actor = p.user.username.clone();
    let unique = m.unique_keys();
    let mut tx = state.store.begin().await?;
    let mut history = Vec::new();
    let mut created_ids: BTreeMap<usize, i64> = BTreeMap::new();
    for pl in planned.iter().filter(|pl| !as_map(&pl.diff).is_empty()) {
        let sources = |prev: Option<&Value>| {
            let mut s = prev.map(as_map).unwrap_or_default();
            s.retain(|k, _| pl.attrs.contains_key(k));
            for k in pl.attrs.keys() {
                if pl.diff.get(k).is_some() || !s.contains_key(k) {
                    s.insert(k.clone(), Value::String("manual".into()));
                }
            }
            Value::Object(s)
        };
        match &pl.existing {
            Some(e) => {
                let ci = CiRow {
                    name: pl.name.clone(),
                    sources: sources(Some(&e.sources)),
                    attributes: Value::Object(pl.attrs.clone()),
                    updated_by: actor.clone(),
                    updated_at: now,
                    ..e.clone()
                };
                tx.update_ci(&ci, &unique).await?;
                history.push(history_row(
                    &ci,
                    "update",
                    "import",
                    &actor,
                    now,
                    pl.diff.clone(),
                ));
            }
            None => {
                let mut ci = CiRow {
                    id: 0,
                    model: m.key.clone(),
                    environment: env.to_string(),
                    name: pl.name.clone(),
                    sources: sources(None),
                    attributes: Value::Object(pl.attrs.clone()),
                    created_by: actor.clone(),
                    created_at: now,
                    updated_by: actor.clone(),
                    updated_at: now,
                    discovered_at: None,
                };
                ci.id = tx.insert_ci(&ci, &unique).await?;
                created_ids.insert(pl.row, ci.id);
                history.push(history_row(
                    &ci,
                    "create",
                    "import",
                    &actor,
                    now,
                    pl.diff.clone(),
                ));
            }
        }
    }
    tx.insert_ci_history(&history).await?;
    let audit = draft(p, "cmdb.import", "cmdb_ci", Outcome::Success)
        .environment(Some(env.to_string()))
        .after(
            json!({"model": m.key, "rows": report.rows, "created": report.creates.len(),
            "updated": report.updates.len(), "unchanged": report.unchanged}),
        );
    tx.commit(vec![audit], now).await?;
    for c in &mut report.creates {
        c.id = created_ids.get(&c.row).copied();
    }
    report.applied = true;
    Ok(report)
}

/// Maps header cells to the name column and attributes; reports unknown, duplicate and missing
/// columns.
fn columns(m: &Model, header: &[String], errors: &mut Vec<RowError>) -> Vec<Option<Col>> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        let t = h.trim();
        if t.is_empty() {
            out.push(None);
            continue;
        }
        let lower = t.to_lowercase();
        let col = if lower == "name" || t == "名称" {
            Some(Col::Name)
        } else {
            m.attributes
                .iter()
                .find(|a| a.key == lower || a.name_zh == t || a.name_en.to_lowercase() == lower)
                .map(|a| Col::Attr(a.key.clone()))
        };
        let key = match &col {
            Some(Col::Name) => "name".to_string(),
            Some(Col::Attr(k)) => k.clone(),
            None => {
                errors.push(RowError {
                    row: 1,
                    column: Some(column_letter(i)),
                    header: Some(t.to_string()),
                    code: "cmdb.import_unknown_column".into(),
                    message_zh: format!(
                        "第 1 行 {} 列：表头 {t:?} 不是模型 {} 的属性（列名是否被修改？）",
                        column_letter(i),
                        m.key
                    ),
                    message_en: format!(
                        "row 1, column {}: header {t:?} is not an attribute of model {} (was the column renamed?)",
                        column_letter(i),
                        m.key
                    ),
                });
                out.push(None);
                continue;
            }
        };
        if let Some(first) = seen.insert(key.clone(), i) {
            errors.push(RowError {
                row: 1,
                column: Some(column_letter(i)),
                header: Some(t.to_string()),
                code: "cmdb.import_duplicate_column".into(),
                message_zh: format!(
                    "第 1 行 {} 列：{key} 与 {} 列重复",
                    column_letter(i),
                    column_letter(first)
                ),
                message_en: format!(
                    "row 1, column {}: {key} repeats column {}",
                    column_letter(i),
                    column_letter(first)
                ),
            });
            out.push(None);
            continue;
        }
        out.push(col);
    }
    let missing = |key: &str, zh: &str, en: &str| RowError {
        row: 1,
        column: None,
        header: None,
        code: "cmdb.import_missing_column".into(),
        message_zh: format!("第 1 行：缺少列 {key}（{zh}）"),
        message_en: format!("row 1: the column {key} ({en}) is missing"),
    };
    if !seen.contains_key("name") {
        errors.push(missing("name", "名称", "name"));
    }
    for a in m.attributes.iter().filter(|a| a.required) {
        if !seen.contains_key(&a.key) {
            errors.push(missing(&a.key, &a.name_zh, &a.name_en));
        }
    }
    out
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| text_of(Some(i)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn header_of(m: &Model) -> Vec<String> {
    std::iter::once("name".to_string())
        .chain(m.attributes.iter().map(|a| a.key.clone()))
        .collect()
}

/// Instances as CSV (header: `name`, then attribute keys), re-importable as it is.
pub fn to_csv(m: &Model, rows: &[CiRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(header_of(m));
    for c in rows {
        let attrs = as_map(&c.attributes);
        let rec: Vec<String> = std::iter::once(c.name.clone())
            .chain(m.attributes.iter().map(|a| text_of(attrs.get(&a.key))))
            .collect();
        let _ = w.write_record(rec);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Instances as XLSX (the same columns as CSV; a bold, frozen header row).
pub fn to_xlsx(m: &Model, rows: &[CiRow]) -> ApiResult<Vec<u8>> {
    let fail = |e: rust_xlsxwriter::XlsxError| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Problem::new(
                "cmdb.export_failed",
                format!("无法生成 XLSX：{e}"),
                format!("cannot write the XLSX file: {e}"),
            ),
        )
    };
    let mut wb = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let ws = wb.add_worksheet();
    ws.set_name(&m.key).map_err(fail)?;
    for (c, h) in header_of(m).iter().enumerate() {
        ws.write_string_with_format(0, c as u16, h, &bold)
            .map_err(fail)?;
    }
    for (r, ci) in rows.iter().enumerate() {
        let row = (r + 1) as u32;
        let attrs = as_map(&ci.attributes);
        ws.write_string(row, 0, &ci.name).map_err(fail)?;
        for (c, a) in m.attributes.iter().enumerate() {
            let t = text_of(attrs.get(&a.key));
            if !t.is_empty() {
                ws.write_string(row, (c + 1) as u16, &t).map_err(fail)?;
            }
        }
    }
    ws.set_freeze_panes(1, 0).map_err(fail)?;
    wb.save_to_buffer().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27), "AB");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
    }
}
