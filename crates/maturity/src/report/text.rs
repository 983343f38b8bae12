//! Plain-text report for the terminal.

use std::fmt::Write as _;

use super::Report;

fn level(l: Option<u8>, max: u8) -> String {
    Report::level_text(l, max)
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", r.title());
    let _ = writeln!(
        o,
        "{} {} ({} {})",
        r.catalog.title_zh, r.catalog.edition_zh, r.catalog.id, r.catalog.version
    );
    let _ = writeln!(
        o,
        "计分规则 policy: {}   范围 scope: {}{}",
        r.policy,
        r.scope,
        r.target
            .map(|t| format!("   目标 target: {t}"))
            .unwrap_or_default()
    );
    let _ = writeln!(o);
    for s in &r.scales {
        let _ = writeln!(
            o,
            "{} {}: {}{}",
            s.name_zh,
            s.name_en,
            level(s.level, s.max_level),
            match (&s.level_name_zh, &s.level_name_en) {
                (Some(zh), Some(en)) => format!("  {zh} {en}"),
                _ if s.level.is_none() => "  不在范围内 not in scope".to_string(),
                _ if s.level == Some(0) => "  未达到第 1 级 below level 1".to_string(),
                _ => String::new(),
            }
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "能力类 Classes");
    for c in &r.classes {
        let max = if c.scale == crate::catalog::ScaleKey::TechnicalManagement {
            3
        } else {
            5
        };
        let _ = writeln!(
            o,
            "  {}、{} {:<40} {}",
            c.ordinal_zh,
            c.name_zh,
            c.name_en,
            if c.in_scope {
                level(c.level, max)
            } else {
                "不在范围 out of scope".into()
            }
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "能力项 Items");
    for i in r.items.iter().filter(|i| i.in_scope) {
        let aspects: Vec<String> = i
            .aspects
            .iter()
            .map(|a| format!("{} {}", a.name_zh, a.level))
            .collect();
        let _ = writeln!(
            o,
            "  表{:<3} {:<12} {}   [{}]",
            i.table,
            i.name_zh,
            level(i.level, i.levels),
            aspects.join(", ")
        );
    }
    let out: Vec<u32> = r
        .items
        .iter()
        .filter(|i| !i.in_scope)
        .map(|i| i.table)
        .collect();
    if !out.is_empty() {
        let spec = crate::rating::Scope(Some(out.iter().copied().collect())).to_spec();
        let _ = writeln!(o, "  不在范围 out of scope: {spec} ({} items)", out.len());
    }
    let m = &r.metrics;
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "条款 Clauses in scope: {}   met {} · partial {} · not_met {} · na {} · unrated {}",
        m.clauses_in_scope,
        m.ratings.met,
        m.ratings.partial,
        m.ratings.not_met,
        m.ratings.na,
        m.ratings.unrated
    );
    if let Some(mean) = m.mean_item_level {
        let _ = writeln!(
            o,
            "能力项平均级别 Mean item level (non-normative): {mean:.2}"
        );
    }
    if !r.gaps.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "差距 Gaps (priority order)");
        for g in &r.gaps {
            let _ = writeln!(
                o,
                "  {}. 表{} {} {}: {} → {} — {} 条 clause(s)",
                g.priority,
                g.table,
                g.name_zh,
                g.name_en,
                g.level,
                g.goal,
                g.missing.len()
            );
            for c in &g.missing {
                let _ = writeln!(o, "       {} [{}] {}", c.id, c.rating, c.text_zh);
            }
        }
    }
    if !r.exceptions.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "不适用 Exceptions (na)");
        for e in &r.exceptions {
            let _ = writeln!(
                o,
                "  {} {} — 理由 justification: {}",
                e.id, e.item_zh, e.justification
            );
        }
    }
    for w in &r.warnings {
        let _ = writeln!(o, "警告 warning: {} / {}", w.message_zh, w.message_en);
    }
    o
}
