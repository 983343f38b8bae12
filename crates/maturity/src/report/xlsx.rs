//! XLSX report: summary, items, gaps and exceptions, one sheet each.

use rust_xlsxwriter::{Color, Format, FormatBorder, Workbook, Worksheet, XlsxError};

use super::Report;

fn header_row(ws: &mut Worksheet, titles: &[(&str, f64)], fmt: &Format) -> Result<(), XlsxError> {
    for (c, (t, w)) in titles.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *t, fmt)?;
        ws.set_column_width(c as u16, *w)?;
    }
    ws.set_freeze_panes(1, 0)?;
    Ok(())
}

fn level(l: Option<u8>, max: u8) -> String {
    Report::level_text(l, max)
}

pub fn render(r: &Report) -> Result<Vec<u8>, XlsxError> {
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
    ws.set_name("概览 Summary")?;
    ws.set_column_width(0, 36)?;
    ws.set_column_width(1, 48)?;
    let mut row = 0u32;
    let mut kv = |ws: &mut Worksheet, k: &str, v: String| -> Result<(), XlsxError> {
        ws.write_string_with_format(row, 0, k, &wrap)?;
        ws.write_string_with_format(row, 1, v, &wrap)?;
        row += 1;
        Ok(())
    };
    kv(ws, "报告 Report", r.title())?;
    kv(
        ws,
        "能力目录 Catalog",
        format!(
            "{} {} ({} {})",
            r.catalog.title_zh, r.catalog.edition_zh, r.catalog.id, r.catalog.version
        ),
    )?;
    kv(ws, "计分规则 Policy", r.policy.clone())?;
    kv(ws, "范围 Scope", r.scope.clone())?;
    if let Some(t) = r.target {
        kv(ws, "目标 Target", t.to_string())?;
    }
    for (k, v) in &r.meta {
        kv(ws, k, v.clone())?;
    }
    for s in &r.scales {
        kv(
            ws,
            &format!("{} {}", s.name_zh, s.name_en),
            match (&s.level_name_zh, &s.level_name_en) {
                (Some(zh), Some(en)) => format!("{} — {zh} {en}", level(s.level, s.max_level)),
                _ => "不在范围内 not in scope".into(),
            },
        )?;
    }
    for c in &r.classes {
        let max = if c.scale == crate::catalog::ScaleKey::TechnicalManagement {
            3
        } else {
            5
        };
        kv(
            ws,
            &format!("{}、{} {}", c.ordinal_zh, c.name_zh, c.name_en),
            if c.in_scope {
                level(c.level, max)
            } else {
                "不在范围 out of scope".into()
            },
        )?;
    }
    let m = &r.metrics;
    kv(ws, "条款 Clauses in scope", m.clauses_in_scope.to_string())?;
    kv(
        ws,
        "评级 Ratings",
        format!(
            "met {} · partial {} · not_met {} · na {} · unrated {}",
            m.ratings.met, m.ratings.partial, m.ratings.not_met, m.ratings.na, m.ratings.unrated
        ),
    )?;
    if let Some(mean) = m.mean_item_level {
        kv(ws, "能力项平均级别 Mean item level", format!("{mean:.2}"))?;
    }

    let ws = wb.add_worksheet();
    ws.set_name("能力项 Items")?;
    header_row(
        ws,
        &[
            ("表 Table", 7.0),
            ("能力类 Class", 14.0),
            ("能力域 Domain", 14.0),
            ("能力项 Item", 18.0),
            ("Item (en)", 28.0),
            ("级别 Level", 9.0),
            ("方面 Aspects", 48.0),
            ("下一级缺失 Missing for next", 40.0),
        ],
        &header,
    )?;
    for (i, it) in r.items.iter().enumerate() {
        let row = i as u32 + 1;
        ws.write_number(row, 0, f64::from(it.table))?;
        ws.write_string_with_format(row, 1, &it.class_zh, &wrap)?;
        ws.write_string_with_format(row, 2, &it.domain_zh, &wrap)?;
        ws.write_string_with_format(row, 3, &it.name_zh, &wrap)?;
        ws.write_string_with_format(row, 4, &it.name_en, &wrap)?;
        if it.in_scope {
            ws.write_string(row, 5, level(it.level, it.levels))?;
            let aspects: Vec<String> = it
                .aspects
                .iter()
                .map(|a| format!("{} {}", a.name_zh, a.level))
                .collect();
            ws.write_string_with_format(row, 6, aspects.join("\n"), &wrap)?;
            let missing: Vec<String> = it
                .missing_for_next
                .iter()
                .map(ToString::to_string)
                .collect();
            ws.write_string_with_format(row, 7, missing.join(" "), &wrap)?;
        } else {
            ws.write_string(row, 5, "范围外 out of scope")?;
        }
    }
    ws.autofilter(0, 0, r.items.len().max(1) as u32, 7)?;

    let ws = wb.add_worksheet();
    ws.set_name("差距 Gaps")?;
    header_row(
        ws,
        &[
            ("优先级 Priority", 9.0),
            ("表 Table", 7.0),
            ("能力项 Item", 18.0),
            ("当前 Level", 8.0),
            ("目标 Goal", 8.0),
            ("条款 Clause", 13.0),
            ("方面 Aspect", 14.0),
            ("评级 Rating", 10.0),
            ("条款内容 Text", 70.0),
        ],
        &header,
    )?;
    let mut row = 1u32;
    for g in &r.gaps {
        for c in &g.missing {
            ws.write_number(row, 0, g.priority as f64)?;
            ws.write_number(row, 1, f64::from(g.table))?;
            ws.write_string(row, 2, &g.name_zh)?;
            ws.write_number(row, 3, f64::from(g.level))?;
            ws.write_number(row, 4, f64::from(g.goal))?;
            ws.write_string(row, 5, c.id.to_string())?;
            ws.write_string(row, 6, &c.aspect_zh)?;
            ws.write_string(row, 7, c.rating.key())?;
            ws.write_string_with_format(row, 8, &c.text_zh, &wrap)?;
            row += 1;
        }
    }
    ws.autofilter(0, 0, row.saturating_sub(1).max(1), 8)?;

    let ws = wb.add_worksheet();
    ws.set_name("不适用 Exceptions")?;
    header_row(
        ws,
        &[
            ("条款 Clause", 13.0),
            ("能力项 Item", 18.0),
            ("条款内容 Text", 60.0),
            ("理由 Justification", 50.0),
        ],
        &header,
    )?;
    for (i, e) in r.exceptions.iter().enumerate() {
        let row = i as u32 + 1;
        ws.write_string(row, 0, e.id.to_string())?;
        ws.write_string(row, 1, &e.item_zh)?;
        ws.write_string_with_format(row, 2, &e.text_zh, &wrap)?;
        ws.write_string_with_format(row, 3, &e.justification, &wrap)?;
    }
    wb.save_to_buffer()
}
