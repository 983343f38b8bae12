//! The XLSX questionnaire: written by `ballast assess template --format xlsx`, filled in by an
//! assessment team, read back by `ballast assess score`.
//!
//! Sheets: `评估 Answers` (one row per clause), `元数据 Meta` (catalog id, version, scope — checked
//! when read back) and `说明 Guide`. The answers header is checked column by column.

use std::io::Cursor;

use calamine::{Data, Range, Reader, Xlsx, open_workbook_from_rs};
use chrono::{Duration, NaiveDate};
use rust_xlsxwriter::{Color, DataValidation, Format, FormatBorder, Workbook, XlsxError};

use super::{Collector, evidence_from_str};
use crate::catalog::Catalog;
use crate::error::{AnswerError, AnswerErrors, AnswerProblem, Location};
use crate::rating::{Answer, AnswerSet, Evidence, Rating};

pub const ANSWERS_SHEET: &str = "评估 Answers";
pub const META_SHEET: &str = "元数据 Meta";
pub const GUIDE_SHEET: &str = "说明 Guide";

/// The answers sheet's columns: header text (Chinese and English) and width.
pub const COLUMNS: [(&str, f64); 13] = [
    ("条款编号 Clause ID", 13.0),
    ("能力类 Class", 12.0),
    ("能力域 Domain", 12.0),
    ("能力项 Item", 18.0),
    ("方面 Aspect", 14.0),
    ("级别 Level", 7.0),
    ("条款内容 Clause text", 60.0),
    ("评级 Rating", 11.0),
    ("证据 Evidence", 28.0),
    ("说明 Comment", 28.0),
    ("不适用理由 N/A justification", 24.0),
    ("评估人 Assessor", 11.0),
    ("日期 Date", 11.0),
];
const COL_ID: usize = 0;
const COL_RATING: usize = 7;
const COL_EVIDENCE: usize = 8;
const COL_COMMENT: usize = 9;
const COL_JUSTIFICATION: usize = 10;
const COL_ASSESSOR: usize = 11;
const COL_DATE: usize = 12;

const META_KEYS: [(&str, &str); 3] = [
    ("catalog", "能力目录 Catalog"),
    ("version", "版本 Version"),
    ("scope", "范围 Scope"),
];

fn column_letter(col: usize) -> String {
    let mut n = col + 1;
    let mut s = Vec::new();
    while n > 0 {
        let r = (n - 1) % 26;
        s.push(char::from(b'A' + r as u8));
        n = (n - 1) / 26;
    }
    s.iter().rev().collect()
}

/// Writes the questionnaire for `set`'s scope, pre-filled with its answers.
pub fn write(catalog: &Catalog, set: &AnswerSet) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let header = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_background_color(Color::RGB(0x1F3A5F))
        .set_font_color(Color::White)
        .set_border(FormatBorder::Thin);
    let wrap = Format::new()
        .set_text_wrap()
        .set_align(rust_xlsxwriter::FormatAlign::Top);
    let id_fmt = Format::new()
        .set_font_name("Consolas")
        .set_align(rust_xlsxwriter::FormatAlign::Top);
    let input = Format::new()
        .set_text_wrap()
        .set_align(rust_xlsxwriter::FormatAlign::Top)
        .set_background_color(Color::RGB(0xFFF8E1));

    let ws = wb.add_worksheet();
    ws.set_name(ANSWERS_SHEET)?;
    for (c, (title, width)) in COLUMNS.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *title, &header)?;
        ws.set_column_width(c as u16, *width)?;
    }
    ws.set_row_height(0, 32)?;
    let mut row: u32 = 1;
    for c in catalog.clauses() {
        if !set.scope.contains(c.item.table) {
            continue;
        }
        let a = set.answers.get(&c.id);
        let cells: [(usize, String, &Format); 7] = [
            (0, c.id.to_string(), &id_fmt),
            (1, c.class.name_zh.clone(), &wrap),
            (2, c.domain.name_zh.clone(), &wrap),
            (3, format!("表{} {}", c.item.table, c.item.name_zh), &wrap),
            (4, c.aspect.name_zh.clone(), &wrap),
            (5, c.level.to_string(), &wrap),
            (6, c.clause.text_zh.clone(), &wrap),
        ];
        for (col, text, fmt) in cells {
            ws.write_string_with_format(row, col as u16, text, fmt)?;
        }
        let inputs: [(usize, String); 6] = [
            (
                COL_RATING,
                a.map_or(Rating::Unrated, |a| a.rating).to_string(),
            ),
            (
                COL_EVIDENCE,
                a.map(|a| evidence_cell(&a.evidence)).unwrap_or_default(),
            ),
            (
                COL_COMMENT,
                a.and_then(|a| a.comment.clone()).unwrap_or_default(),
            ),
            (
                COL_JUSTIFICATION,
                a.and_then(|a| a.justification.clone()).unwrap_or_default(),
            ),
            (
                COL_ASSESSOR,
                a.and_then(|a| a.assessor.clone()).unwrap_or_default(),
            ),
            (COL_DATE, a.and_then(|a| a.date.clone()).unwrap_or_default()),
        ];
        for (col, text) in inputs {
            ws.write_string_with_format(row, col as u16, text, &input)?;
        }
        row += 1;
    }
    let last = row.saturating_sub(1).max(1);
    ws.set_freeze_panes(1, 1)?;
    ws.autofilter(0, 0, last, (COLUMNS.len() - 1) as u16)?;
    let keys: Vec<&str> = Rating::ALL.iter().map(|r| r.key()).collect();
    let dv = DataValidation::new()
        .allow_list_strings(&keys)?
        .set_input_title("评级 Rating")?
        .set_input_message(
            "met 符合 · partial 部分符合 · not_met 不符合 · na 不适用（须填理由）· unrated 未评",
        )?
        .set_error_title("评级无效 Invalid rating")?
        .set_error_message("请选择 met / partial / not_met / na / unrated\nChoose met, partial, not_met, na or unrated.")?;
    ws.add_data_validation(1, COL_RATING as u16, last, COL_RATING as u16, &dv)?;
    ws.set_landscape();
    ws.set_repeat_rows(0, 0)?;

    let meta = wb.add_worksheet();
    meta.set_name(META_SHEET)?;
    meta.set_column_width(0, 22)?;
    meta.set_column_width(1, 48)?;
    meta.write_string_with_format(0, 0, "字段 Field", &header)?;
    meta.write_string_with_format(0, 1, "值 Value", &header)?;
    let values = [
        catalog.id().to_string(),
        catalog.version().to_string(),
        set.scope.to_spec(),
    ];
    for (i, ((_, label), value)) in META_KEYS.iter().zip(values).enumerate() {
        meta.write_string(i as u32 + 1, 0, *label)?;
        meta.write_string(i as u32 + 1, 1, value)?;
    }
    for (r, (k, v)) in (META_KEYS.len() as u32 + 1..).zip(&set.meta) {
        meta.write_string(r, 0, k)?;
        meta.write_string(r, 1, v)?;
    }

    let guide = wb.add_worksheet();
    guide.set_name(GUIDE_SHEET)?;
    guide.set_column_width(0, 110)?;
    for (i, line) in guide_lines(catalog).iter().enumerate() {
        guide.write_string_with_format(i as u32, 0, line, &wrap)?;
    }
    wb.save_to_buffer()
}

fn guide_lines(catalog: &Catalog) -> Vec<String> {
    vec![
        format!("{} {}", catalog.data().title_zh, catalog.data().edition_zh),
        catalog.data().title_en.clone(),
        String::new(),
        "填写方法：在「评估 Answers」表的黄色列中为每一条款填写评级、证据、说明；评为 na（不适用）时必须填写理由。请勿修改表头与条款编号。".into(),
        "How to fill in: for each clause fill the yellow columns of the Answers sheet (rating, evidence, comment); a clause rated na needs a justification. Do not change the header row or the clause IDs.".into(),
        String::new(),
        "评级 Ratings: met 符合 · partial 部分符合 · not_met 不符合 · na 不适用 · unrated 未评（视为未满足 — blocks the level）".into(),
        "证据 Evidence: 文本、URL，或 file:路径 sha256:哈希 — text, a URL, or file:PATH sha256:HEX".into(),
        "计分规则 Scoring: 某方面达到第 L 级，当且仅当该方面第 1..L 级的所有条款均为 met 或 na；能力项取各方面最小值 — an aspect reaches level L when every clause at levels 1..L is met or na; an item is the minimum of its aspects.".into(),
        "评分命令 Score with: ballast assess score FILE.xlsx".into(),
    ]
}

fn evidence_cell(evidence: &[Evidence]) -> String {
    evidence
        .iter()
        .map(|e| match e {
            Evidence::File { path, sha256 } if sha256.is_empty() => format!("file:{path}"),
            Evidence::File { path, sha256 } => format!("file:{path} sha256:{sha256}"),
            Evidence::Url { url } => url.clone(),
            Evidence::Text { text } => text.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A cell as text: numbers without a trailing `.0`, dates as ISO dates, empty as "".
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

/// Excel's serial day number (1900 system) as an ISO date.
fn excel_date(serial: f64) -> Option<String> {
    let base = NaiveDate::from_ymd_opt(1899, 12, 30)?;
    let days = serial.floor();
    if !(1.0..2_958_466.0).contains(&days) {
        return None;
    }
    Some(
        (base + Duration::days(days as i64))
            .format("%Y-%m-%d")
            .to_string(),
    )
}

/// A sheet as text rows in absolute coordinates: `rows[i][j]` is Excel row `i + 1`, column `j`
/// (calamine's ranges start at the first non-empty cell, which may not be A1).
fn sheet_rows(range: &Range<Data>) -> Vec<Vec<String>> {
    let Some((end_row, end_col)) = range.end() else {
        return Vec::new();
    };
    (0..=end_row)
        .map(|r| {
            (0..=end_col)
                .map(|c| range.get_value((r, c)).map(cell_text).unwrap_or_default())
                .collect()
        })
        .collect()
}

/// Reads a filled-in questionnaire. `file` names it in messages.
pub fn parse(catalog: &Catalog, file: &str, bytes: &[u8]) -> Result<AnswerSet, AnswerErrors> {
    let whole = |problem| {
        AnswerErrors(vec![AnswerError {
            location: Location::File {
                file: file.to_string(),
            },
            problem,
        }])
    };
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes.to_vec())).map_err(|e| {
        whole(AnswerProblem::Syntax(format!(
            "not a readable XLSX workbook: {e}"
        )))
    })?;
    let names = wb.sheet_names();
    let find = |wanted: &str| {
        names
            .iter()
            .find(|n| n.as_str() == wanted)
            .cloned()
            .ok_or_else(|| whole(AnswerProblem::MissingSheet(wanted.to_string())))
    };
    let answers_name = find(ANSWERS_SHEET)?;
    let meta_name = find(META_SHEET)?;
    let rows = sheet_rows(
        &wb.worksheet_range(&answers_name)
            .map_err(|e| whole(AnswerProblem::Syntax(e.to_string())))?,
    );
    let meta = sheet_rows(
        &wb.worksheet_range(&meta_name)
            .map_err(|e| whole(AnswerProblem::Syntax(e.to_string())))?,
    );

    let mut c = Collector::new(catalog);
    let cell_loc = |sheet: &str, row: usize, col: Option<usize>| Location::Cell {
        file: file.to_string(),
        sheet: sheet.to_string(),
        row,
        column: col.map(column_letter),
    };

    // Meta: catalog and version must match; scope restricts the items.
    for (r, row) in meta.iter().enumerate().skip(1) {
        let key = row.first().cloned().unwrap_or_default();
        let value = row.get(1).cloned().unwrap_or_default();
        let loc = cell_loc(&meta_name, r + 1, Some(1));
        match META_KEYS.iter().find(|(_, label)| *label == key) {
            Some(("catalog", _)) => c.catalog_field("catalog", &value, loc),
            Some(("version", _)) => c.catalog_field("version", &value, loc),
            Some(_) if value != "all" && !value.is_empty() => {
                let tokens: Vec<(String, Location)> = value
                    .split([',', '，'])
                    .map(|t| (t.trim().to_string(), loc.clone()))
                    .filter(|(t, _)| !t.is_empty())
                    .collect();
                c.scope(&tokens);
            }
            Some(_) => {}
            None if !key.is_empty() => c.set_meta(key, value),
            None => {}
        }
    }

    // Header, column by column.
    let header: Vec<String> = rows.first().cloned().unwrap_or_default();
    let mut header_ok = true;
    for (i, (expected, _)) in COLUMNS.iter().enumerate() {
        let found = header.get(i).cloned().unwrap_or_default();
        if normalise(&found) != normalise(expected) {
            header_ok = false;
            c.error(
                cell_loc(&answers_name, 1, Some(i)),
                AnswerProblem::HeaderMismatch {
                    expected: (*expected).to_string(),
                    found,
                },
            );
        }
    }
    if !header_ok {
        return c.finish();
    }

    for (r, row) in rows.iter().enumerate().skip(1) {
        let text = |col: usize| row.get(col).cloned().unwrap_or_default();
        let id = text(COL_ID);
        let excel_row = r + 1;
        if id.is_empty() {
            if row.iter().any(|d| !d.is_empty()) {
                c.error(
                    cell_loc(&answers_name, excel_row, Some(COL_ID)),
                    AnswerProblem::MalformedClauseId(String::new()),
                );
            }
            continue;
        }
        let rating_text = text(COL_RATING);
        let rating = if rating_text.is_empty() {
            Some(Rating::Unrated)
        } else {
            c.parse_rating(
                &rating_text,
                &cell_loc(&answers_name, excel_row, Some(COL_RATING)),
            )
        };
        let date_text = text(COL_DATE);
        let date = if date_text.is_empty() {
            None
        } else {
            match c.parse_date(
                &date_text,
                &cell_loc(&answers_name, excel_row, Some(COL_DATE)),
            ) {
                Some(d) => Some(d),
                None => continue,
            }
        };
        let Some(rating) = rating else { continue };
        let opt = |s: String| (!s.is_empty()).then_some(s);
        let evidence = text(COL_EVIDENCE)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(evidence_from_str)
            .collect();
        let answer = Answer {
            rating,
            comment: opt(text(COL_COMMENT)),
            justification: opt(text(COL_JUSTIFICATION)),
            evidence,
            assessor: opt(text(COL_ASSESSOR)),
            date,
        };
        c.answer(&id, cell_loc(&answers_name, excel_row, None), answer);
    }
    c.finish()
}

fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}
