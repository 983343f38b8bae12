//! Whole-catalog exports: JSON (the documented shape of `ballast catalog export`), YAML (the
//! loadable edition format itself) and XLSX (one row per clause).

use rust_xlsxwriter::{Color, Format, FormatBorder, Workbook, XlsxError};
use serde::Serialize;

use crate::catalog::{Catalog, CatalogData};

#[derive(Serialize)]
struct JsonCatalog<'a> {
    id: &'a str,
    version: &'a str,
    title_zh: &'a str,
    title_en: &'a str,
    edition_zh: &'a str,
    scales: &'a [crate::catalog::Scale],
    items: Vec<JsonItem<'a>>,
    anomalies: &'a [crate::catalog::Anomaly],
}

#[derive(Serialize)]
struct JsonItem<'a> {
    table: u32,
    section: &'a str,
    class: &'a str,
    class_en: &'a str,
    domain: &'a str,
    domain_en: &'a str,
    name_zh: &'a str,
    name_en: &'a str,
    levels: u8,
    aspects: Vec<JsonAspect<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes_zh: &'a [String],
}

#[derive(Serialize)]
struct JsonAspect<'a> {
    name_zh: &'a str,
    name_en: &'a str,
    section: Option<&'a str>,
    levels: Vec<JsonLevel<'a>>,
}

#[derive(Serialize)]
struct JsonLevel<'a> {
    level: u8,
    clauses: Vec<JsonClause<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes_zh: &'a [String],
}

#[derive(Serialize)]
struct JsonClause<'a> {
    id: &'a str,
    text_zh: &'a str,
}

/// The catalog as JSON: a top-level `items` array in table order, each with `table`, `section`,
/// `class`, `domain`, `name_zh`, `name_en`, `levels` and `aspects` (column order), each aspect with
/// `levels: [{level, clauses: [{id, text_zh}]}]`.
pub fn to_json(catalog: &Catalog) -> String {
    let d = catalog.data();
    let items = catalog
        .items()
        .map(|r| JsonItem {
            table: r.item.table,
            section: &r.item.section,
            class: &r.class.name_zh,
            class_en: &r.class.name_en,
            domain: &r.domain.name_zh,
            domain_en: &r.domain.name_en,
            name_zh: &r.item.name_zh,
            name_en: &r.item.name_en,
            levels: r.item.levels,
            notes_zh: &r.item.notes_zh,
            aspects: r
                .item
                .aspects
                .iter()
                .map(|a| JsonAspect {
                    name_zh: &a.name_zh,
                    name_en: &a.name_en,
                    section: a.section.as_deref(),
                    levels: a
                        .cells
                        .iter()
                        .map(|c| JsonLevel {
                            level: c.level,
                            notes_zh: &c.notes_zh,
                            clauses: c
                                .clauses
                                .iter()
                                .map(|cl| JsonClause {
                                    id: &cl.id,
                                    text_zh: &cl.text_zh,
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let out = JsonCatalog {
        id: &d.id,
        version: &d.version,
        title_zh: &d.title_zh,
        title_en: &d.title_en,
        edition_zh: &d.edition_zh,
        scales: &d.scales,
        items,
        anomalies: &d.anomalies,
    };
    serde_json::to_string_pretty(&out).unwrap_or_default()
}

/// The catalog in its own data-file format (loadable again with `--catalog`).
pub fn to_yaml(catalog: &Catalog) -> Result<String, serde_yaml_ng::Error> {
    let data: &CatalogData = catalog.data();
    serde_yaml_ng::to_string(data)
}

/// The catalog as a workbook: one row per clause, plus the items and the anomalies.
pub fn to_xlsx(catalog: &Catalog) -> Result<Vec<u8>, XlsxError> {
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

    let ws = wb.add_worksheet();
    ws.set_name("条款 Clauses")?;
    let cols: [(&str, f64); 10] = [
        ("条款编号 Clause ID", 13.0),
        ("能力类 Class", 12.0),
        ("能力域 Domain", 12.0),
        ("表 Table", 6.0),
        ("能力项 Item", 16.0),
        ("Item (en)", 24.0),
        ("方面 Aspect", 14.0),
        ("Aspect (en)", 22.0),
        ("级别 Level", 7.0),
        ("条款内容 Clause text", 80.0),
    ];
    for (c, (t, w)) in cols.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *t, &header)?;
        ws.set_column_width(c as u16, *w)?;
    }
    let mut row = 1u32;
    for c in catalog.clauses() {
        ws.write_string(row, 0, c.id.to_string())?;
        ws.write_string(row, 1, &c.class.name_zh)?;
        ws.write_string(row, 2, &c.domain.name_zh)?;
        ws.write_number(row, 3, f64::from(c.item.table))?;
        ws.write_string(row, 4, &c.item.name_zh)?;
        ws.write_string(row, 5, &c.item.name_en)?;
        ws.write_string(row, 6, &c.aspect.name_zh)?;
        ws.write_string(row, 7, &c.aspect.name_en)?;
        ws.write_number(row, 8, f64::from(c.level))?;
        ws.write_string_with_format(row, 9, &c.clause.text_zh, &wrap)?;
        row += 1;
    }
    ws.set_freeze_panes(1, 1)?;
    ws.autofilter(0, 0, row.saturating_sub(1).max(1), 9)?;

    let ws = wb.add_worksheet();
    ws.set_name("能力项 Items")?;
    let cols: [(&str, f64); 8] = [
        ("表 Table", 6.0),
        ("章节 Section", 9.0),
        ("能力类 Class", 14.0),
        ("能力域 Domain", 14.0),
        ("能力项 Item", 16.0),
        ("Item (en)", 30.0),
        ("级别数 Levels", 8.0),
        ("方面 Aspects", 60.0),
    ];
    for (c, (t, w)) in cols.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *t, &header)?;
        ws.set_column_width(c as u16, *w)?;
    }
    for (i, r) in catalog.items().enumerate() {
        let row = i as u32 + 1;
        ws.write_number(row, 0, f64::from(r.item.table))?;
        ws.write_string(row, 1, &r.item.section)?;
        ws.write_string(row, 2, &r.class.name_zh)?;
        ws.write_string(row, 3, &r.domain.name_zh)?;
        ws.write_string(row, 4, &r.item.name_zh)?;
        ws.write_string(row, 5, &r.item.name_en)?;
        ws.write_number(row, 6, f64::from(r.item.levels))?;
        let aspects: Vec<String> = r
            .item
            .aspects
            .iter()
            .map(|a| format!("{} {}", a.name_zh, a.name_en))
            .collect();
        ws.write_string_with_format(row, 7, aspects.join("\n"), &wrap)?;
    }
    ws.set_freeze_panes(1, 0)?;

    let ws = wb.add_worksheet();
    ws.set_name("异常 Anomalies")?;
    let cols: [(&str, f64); 4] = [
        ("位置 Where", 14.0),
        ("类别 Kind", 22.0),
        ("说明 Note", 60.0),
        ("Note (en)", 60.0),
    ];
    for (c, (t, w)) in cols.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *t, &header)?;
        ws.set_column_width(c as u16, *w)?;
    }
    for (i, a) in catalog.data().anomalies.iter().enumerate() {
        let row = i as u32 + 1;
        ws.write_string(row, 0, &a.location)?;
        ws.write_string(row, 1, &a.kind)?;
        ws.write_string_with_format(row, 2, &a.note_zh, &wrap)?;
        ws.write_string_with_format(row, 3, &a.note_en, &wrap)?;
    }
    wb.save_to_buffer()
}
