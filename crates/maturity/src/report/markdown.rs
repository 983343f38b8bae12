//! Markdown report (for wikis and merge requests).

use std::fmt::Write as _;

use super::Report;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", cell(&r.title()));
    let _ = writeln!(
        o,
        "{} {} — `{}` `{}` · policy `{}` · scope `{}`{}\n",
        r.catalog.title_zh,
        r.catalog.edition_zh,
        r.catalog.id,
        r.catalog.version,
        r.policy,
        r.scope,
        r.target
            .map(|t| format!(" · target `{t}`"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "| 成熟度 Maturity | 级别 Level | 名称 Name |\n|---|---|---|"
    );
    for s in &r.scales {
        let _ = writeln!(
            o,
            "| {} {} | {} | {} |",
            s.name_zh,
            s.name_en,
            Report::level_text(s.level, s.max_level),
            match (&s.level_name_zh, &s.level_name_en) {
                (Some(zh), Some(en)) => format!("{zh} {en}"),
                _ => "不在范围内 not in scope".to_string(),
            }
        );
    }
    let _ = writeln!(
        o,
        "\n## 能力域 Domains\n\n| 能力类 Class | 能力域 Domain | 级别 Level |\n|---|---|---|"
    );
    for d in &r.domains {
        let _ = writeln!(
            o,
            "| {} | {} {} | {} |",
            d.class_zh,
            d.name_zh,
            d.name_en,
            if d.in_scope {
                Report::level_text(d.level, d.max_level)
            } else {
                "out of scope".into()
            }
        );
    }
    let _ = writeln!(
        o,
        "\n## 能力项 Items\n\n| 表 | 能力项 Item | 级别 Level | 方面 Aspects | 下一级缺失 Missing for next |\n|---|---|---|---|---|"
    );
    for i in &r.items {
        if !i.in_scope {
            let _ = writeln!(
                o,
                "| {} | {} {} | out of scope | | |",
                i.table, i.name_zh, i.name_en
            );
            continue;
        }
        let aspects: Vec<String> = i
            .aspects
            .iter()
            .map(|a| format!("{} {}", a.name_zh, a.level))
            .collect();
        let missing: Vec<String> = i
            .missing_for_next
            .iter()
            .map(|id| format!("`{id}`"))
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} {} | {} | {} | {} |",
            i.table,
            i.name_zh,
            cell(&i.name_en),
            Report::level_text(i.level, i.levels),
            aspects.join(", "),
            missing.join(" ")
        );
    }
    let m = &r.metrics;
    let _ = writeln!(
        o,
        "\n## 指标 Metrics (non-normative)\n\n- clauses in scope: {} (met {}, partial {}, not_met {}, na {}, unrated {})",
        m.clauses_in_scope,
        m.ratings.met,
        m.ratings.partial,
        m.ratings.not_met,
        m.ratings.na,
        m.ratings.unrated
    );
    if let Some(mean) = m.mean_item_level {
        let _ = writeln!(o, "- mean item level: {mean:.2}");
    }
    for s in &m.met_share_by_level {
        if let Some(share) = s.share {
            let _ = writeln!(
                o,
                "- level {} clauses met: {}/{} ({:.0}%)",
                s.level,
                s.met,
                s.applicable,
                share * 100.0
            );
        }
    }
    if !r.gaps.is_empty() {
        let _ = writeln!(o, "\n## 差距 Gaps\n");
        for g in &r.gaps {
            let _ = writeln!(
                o,
                "### {}. 表{} {} {} ({} → {})\n",
                g.priority, g.table, g.name_zh, g.name_en, g.level, g.goal
            );
            for c in &g.missing {
                let _ = writeln!(o, "- `{}` [{}] {}", c.id, c.rating, cell(&c.text_zh));
            }
            let _ = writeln!(o);
        }
    }
    if !r.exceptions.is_empty() {
        let _ = writeln!(
            o,
            "\n## 不适用 Exceptions\n\n| 条款 Clause | 理由 Justification |\n|---|---|"
        );
        for e in &r.exceptions {
            let _ = writeln!(
                o,
                "| `{}` {} | {} |",
                e.id,
                cell(&e.text_zh),
                cell(&e.justification)
            );
        }
    }
    for w in &r.warnings {
        let _ = writeln!(o, "\n> 警告 warning: {} / {}", w.message_zh, w.message_en);
    }
    o
}
