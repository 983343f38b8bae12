//! One self-contained HTML file: inline CSS and SVG (radar chart of domain levels, item × level
//! heat map), the gap list and the exceptions. No scripts, no external resources; prints on A4.

use std::fmt::Write as _;

use super::{Report, Share};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = r#"
:root{--ink:#1d2733;--muted:#5b6b7b;--line:#d8dee6;--accent:#1f3a5f}
*{box-sizing:border-box}
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",system-ui,sans-serif;color:var(--ink);margin:2rem auto;max-width:1100px;padding:0 1rem;line-height:1.5}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.2rem;border-bottom:2px solid var(--accent);padding-bottom:.2rem;margin-top:2rem}
.sub{color:var(--muted);margin:0 0 1rem}
.cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{border:1px solid var(--line);border-radius:8px;padding:1rem 1.25rem;min-width:260px;flex:1}
.card .big{font-size:2.4rem;font-weight:700;color:var(--accent)}
.card .na{font-size:1.2rem;color:var(--muted)}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f4f8}
td.num{text-align:center;white-space:nowrap}
.out{color:var(--muted)}
code{font-family:ui-monospace,Consolas,monospace;font-size:.85em}
.heat td.h{width:4.2rem;text-align:center;font-size:.8rem}
.legend span{display:inline-block;padding:0 .5rem;margin-right:.25rem;border-radius:3px}
.charts{display:flex;gap:1.5rem;flex-wrap:wrap;align-items:flex-start}
.gap h3{font-size:1rem;margin:1rem 0 .3rem}
.gap li{margin:.15rem 0}
.rating{display:inline-block;min-width:4.2rem;font-size:.75rem;border-radius:3px;padding:0 .3rem;background:#eee;text-align:center}
.r-partial{background:#ffe8a3}.r-not_met{background:#f7b7b0}.r-unrated{background:#e3e7ec}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5rem 1rem}
footer{margin-top:2rem;color:var(--muted);font-size:.8rem}
@media print{body{margin:0;max-width:none;font-size:10pt}h2{break-after:avoid}table,.card,svg{break-inside:avoid}a{color:inherit}}
@page{size:A4;margin:14mm}
"#;

fn heat_color(share: Option<f64>) -> &'static str {
    match share {
        None => "#f4f6f8",
        Some(s) if s >= 0.999 => "#2e7d32",
        Some(s) if s >= 0.75 => "#66bb6a",
        Some(s) if s >= 0.5 => "#c5e1a5",
        Some(s) if s >= 0.25 => "#ffe082",
        Some(s) if s > 0.0 => "#ffab91",
        Some(_) => "#ef9a9a",
    }
}

/// The radar chart of the in-scope domains' levels as SVG markup (presentation attributes only,
/// no `style`: the server's pages embed it under a CSP that forbids inline styles).
pub fn radar(r: &Report) -> String {
    let domains: Vec<_> = r.domains.iter().filter(|d| d.in_scope).collect();
    let n = domains.len();
    let mut o = String::new();
    if n < 3 {
        let _ = write!(
            o,
            "<p class=\"out\">雷达图需要至少 3 个在范围内的能力域 — the radar chart needs at least 3 domains in scope.</p>"
        );
        return o;
    }
    let (cx, cy, rad) = (320.0_f64, 230.0_f64, 150.0_f64);
    let point = |i: usize, frac: f64| {
        let angle = -std::f64::consts::FRAC_PI_2 + (i as f64) * std::f64::consts::TAU / n as f64;
        (cx + rad * frac * angle.cos(), cy + rad * frac * angle.sin())
    };
    let _ = write!(
        o,
        "<svg role=\"img\" aria-label=\"能力域雷达图 Domain radar\" width=\"640\" height=\"460\" viewBox=\"0 0 640 460\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for ring in 1..=5 {
        let frac = f64::from(ring) / 5.0;
        let pts: Vec<String> = (0..n)
            .map(|i| {
                let (x, y) = point(i, frac);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            o,
            "<polygon points=\"{}\" fill=\"none\" stroke=\"#d8dee6\" stroke-width=\"1\"/>",
            pts.join(" ")
        );
    }
    for (i, d) in domains.iter().enumerate() {
        let (x, y) = point(i, 1.0);
        let _ = write!(
            o,
            "<line x1=\"{cx}\" y1=\"{cy}\" x2=\"{x:.1}\" y2=\"{y:.1}\" stroke=\"#d8dee6\"/>"
        );
        let (lx, ly) = point(i, 1.16);
        let anchor = if (lx - cx).abs() < 10.0 {
            "middle"
        } else if lx > cx {
            "start"
        } else {
            "end"
        };
        let _ = write!(
            o,
            "<text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"11\" text-anchor=\"{anchor}\" dominant-baseline=\"middle\">{} {}</text>",
            esc(&d.name_zh),
            Report::level_text(d.level, d.max_level)
        );
    }
    let pts: Vec<String> = domains
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let frac = f64::from(d.level.unwrap_or(0)) / f64::from(d.max_level.max(1));
            let (x, y) = point(i, frac);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = write!(
        o,
        "<polygon points=\"{}\" fill=\"rgba(31,58,95,.25)\" stroke=\"#1f3a5f\" stroke-width=\"2\"/></svg>",
        pts.join(" ")
    );
    o
}

fn share_text(s: &Share) -> String {
    match s.share {
        Some(x) => format!("{:.0}%", x * 100.0),
        None => "n/a".into(),
    }
}

/// The items × levels heat map as SVG markup: one row per in-scope item, one column per level,
/// each cell coloured by the share of that level's clauses met (na excluded), `✓` where the
/// item reached the level. Presentation attributes only (no `style`), for the server's pages.
pub fn heat_svg(r: &Report) -> String {
    let items: Vec<_> = r.items.iter().filter(|i| i.in_scope).collect();
    let max = items.iter().map(|i| i.levels).max().unwrap_or(0);
    let (label_w, cell_w, row_h, head_h) = (300_u32, 64_u32, 22_u32, 24_u32);
    let width = label_w + cell_w * u32::from(max) + 2;
    let rows = u32::try_from(items.len()).unwrap_or(u32::MAX / 64);
    let height = head_h + row_h * rows + 2;
    let mut o = String::new();
    let _ = write!(
        o,
        "<svg role=\"img\" aria-label=\"能力项×级别热力图 Items × levels heat map\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
    );
    for l in 1..=max {
        let x = label_w + cell_w * u32::from(l - 1) + cell_w / 2;
        let _ = write!(
            o,
            "<text x=\"{x}\" y=\"16\" text-anchor=\"middle\" font-weight=\"bold\">L{l}</text>"
        );
    }
    for (k, i) in items.iter().enumerate() {
        let y = head_h + row_h * u32::try_from(k).unwrap_or(0);
        let _ = write!(
            o,
            "<g id=\"heat-T{}\"><text x=\"4\" y=\"{}\">表{} {} · {}</text>",
            i.table,
            y + 15,
            i.table,
            esc(&i.name_zh),
            Report::level_text(i.level, i.levels)
        );
        for l in 1..=max {
            let x = label_w + cell_w * u32::from(l - 1);
            match i.met_share_by_level.iter().find(|s| s.level == l) {
                Some(s) => {
                    let reached = i.level.is_some_and(|lv| lv >= l);
                    let fg = if s.share.is_some_and(|x| x >= 0.75) {
                        "#fff"
                    } else {
                        "#1d2733"
                    };
                    let _ = write!(
                        o,
                        "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#fff\"><title>{}/{} met</title></rect><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{fg}\">{}{}</text>",
                        cell_w,
                        row_h,
                        heat_color(s.share),
                        s.met,
                        s.applicable,
                        x + cell_w / 2,
                        y + 15,
                        share_text(s),
                        if reached { " ✓" } else { "" }
                    );
                }
                None => {
                    let _ = write!(
                        o,
                        "<rect x=\"{x}\" y=\"{y}\" width=\"{cell_w}\" height=\"{row_h}\" fill=\"#fafafa\" stroke=\"#fff\"/>"
                    );
                }
            }
        }
        o.push_str("</g>");
    }
    o.push_str("</svg>");
    o
}

fn heat_map(r: &Report) -> String {
    let mut o = String::from(
        "<table class=\"heat\"><thead><tr><th>表</th><th>能力项 Item</th><th>级别 Level</th>",
    );
    let max = r.items.iter().map(|i| i.levels).max().unwrap_or(0);
    for l in 1..=max {
        let _ = write!(o, "<th>L{l}</th>");
    }
    o.push_str("</tr></thead><tbody>");
    for i in r.items.iter().filter(|i| i.in_scope) {
        let _ = write!(
            o,
            "<tr><td class=\"num\">{}</td><td>{} <span class=\"out\">{}</span></td><td class=\"num\"><b>{}</b></td>",
            i.table,
            esc(&i.name_zh),
            esc(&i.name_en),
            Report::level_text(i.level, i.levels)
        );
        for l in 1..=max {
            match i.met_share_by_level.iter().find(|s| s.level == l) {
                Some(s) => {
                    let reached = i.level.is_some_and(|lv| lv >= l);
                    let fg = if s.share.is_some_and(|x| x >= 0.75) {
                        "#fff"
                    } else {
                        "#1d2733"
                    };
                    let _ = write!(
                        o,
                        "<td class=\"h\" style=\"background:{};color:{fg}\" title=\"{}/{} met\">{}{}</td>",
                        heat_color(s.share),
                        s.met,
                        s.applicable,
                        share_text(s),
                        if reached { " ✓" } else { "" }
                    );
                }
                None => o.push_str("<td class=\"h\" style=\"background:#fafafa\"></td>"),
            }
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table><p class=\"legend out\">单元格为该级条款的符合比例（不含不适用），✓ 表示已达到该级 — each cell is the share of that level's clauses met (na excluded); ✓ marks a level reached.</p>");
    o
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let title = esc(&r.title());
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title><style>{CSS}</style></head><body>"
    );
    let _ = write!(
        o,
        "<h1>{title}</h1><p class=\"sub\">{} {} · {}<br><code>{}</code> <code>{}</code> · 计分规则 policy <code>{}</code> · 范围 scope <code>{}</code>{}</p>",
        esc(&r.catalog.title_zh),
        esc(&r.catalog.edition_zh),
        esc(&r.catalog.title_en),
        esc(&r.catalog.id),
        esc(&r.catalog.version),
        esc(&r.policy),
        esc(&r.scope),
        r.target
            .map(|t| format!(" · 目标 target <code>{t}</code>"))
            .unwrap_or_default()
    );
    for (k, v) in &r.meta {
        if k != "name" {
            let _ = write!(o, "<p class=\"sub\">{}: {}</p>", esc(k), esc(v));
        }
    }
    o.push_str("<div class=\"cards\">");
    for s in &r.scales {
        let _ = write!(
            o,
            "<div class=\"card\"><div>{} <span class=\"out\">{}</span></div>",
            esc(&s.name_zh),
            esc(&s.name_en)
        );
        match (s.level, &s.level_name_zh, &s.level_name_en) {
            (Some(l), Some(zh), Some(en)) => {
                let _ = write!(
                    o,
                    "<div class=\"big\">{l}<span class=\"na\"> / {}</span></div><div>{} · {}</div>",
                    s.max_level,
                    esc(zh),
                    esc(en)
                );
            }
            (Some(l), _, _) => {
                let _ = write!(
                    o,
                    "<div class=\"big\">{l}<span class=\"na\"> / {}</span></div>",
                    s.max_level
                );
            }
            _ => o.push_str("<div class=\"na\">不在范围内 · not in scope</div>"),
        }
        o.push_str("</div>");
    }
    o.push_str("</div>");

    o.push_str("<h2>能力域 Domains</h2><div class=\"charts\">");
    o.push_str(&radar(r));
    o.push_str("<table style=\"max-width:480px\"><thead><tr><th>能力类 Class</th><th>能力域 Domain</th><th>级别</th></tr></thead><tbody>");
    for d in &r.domains {
        let _ = write!(
            o,
            "<tr{}><td>{}</td><td>{} <span class=\"out\">{}</span></td><td class=\"num\">{}</td></tr>",
            if d.in_scope { "" } else { " class=\"out\"" },
            esc(&d.class_zh),
            esc(&d.name_zh),
            esc(&d.name_en),
            if d.in_scope {
                Report::level_text(d.level, d.max_level)
            } else {
                "范围外 out of scope".into()
            }
        );
    }
    o.push_str("</tbody></table></div>");

    o.push_str("<h2>能力项 × 级别 Items × levels</h2>");
    o.push_str(&heat_map(r));
    let out: Vec<String> = r
        .items
        .iter()
        .filter(|i| !i.in_scope)
        .map(|i| format!("表{} {}", i.table, esc(&i.name_zh)))
        .collect();
    if !out.is_empty() {
        let _ = write!(
            o,
            "<p class=\"out\">不在评估范围内 Out of scope: {}</p>",
            out.join("、")
        );
    }

    o.push_str("<h2>方面 Aspects</h2><table><thead><tr><th>表</th><th>能力项</th><th>方面 Aspect</th><th>级别</th></tr></thead><tbody>");
    for i in r.items.iter().filter(|i| i.in_scope) {
        for (k, a) in i.aspects.iter().enumerate() {
            let _ = write!(
                o,
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{} <span class=\"out\">{}</span></td><td class=\"num\">{}/{}</td></tr>",
                if k == 0 {
                    i.table.to_string()
                } else {
                    String::new()
                },
                if k == 0 {
                    esc(&i.name_zh)
                } else {
                    String::new()
                },
                esc(&a.name_zh),
                esc(&a.name_en),
                a.level,
                i.levels
            );
        }
    }
    o.push_str("</tbody></table>");

    let m = &r.metrics;
    let _ = write!(
        o,
        "<h2>指标 Metrics <span class=\"out\">(非规范性 non-normative)</span></h2><p>在范围内条款 clauses in scope: {} — 符合 met {} · 部分符合 partial {} · 不符合 not_met {} · 不适用 na {} · 未评 unrated {}</p>",
        m.clauses_in_scope,
        m.ratings.met,
        m.ratings.partial,
        m.ratings.not_met,
        m.ratings.na,
        m.ratings.unrated
    );
    if let Some(mean) = m.mean_item_level {
        let _ = write!(o, "<p>能力项平均级别 mean item level: {mean:.2}</p>");
    }

    o.push_str("<h2>差距 Gaps</h2>");
    if r.gaps.is_empty() {
        o.push_str("<p>无差距 — no gaps toward the goal.</p>");
    }
    for g in &r.gaps {
        let _ = write!(
            o,
            "<div class=\"gap\"><h3>{}. 表{} {} <span class=\"out\">{}</span> — {} → {}（{} 条 clauses）</h3><ul>",
            g.priority,
            g.table,
            esc(&g.name_zh),
            esc(&g.name_en),
            g.level,
            g.goal,
            g.missing.len()
        );
        for c in &g.missing {
            let _ = write!(
                o,
                "<li><code>{}</code> <span class=\"rating r-{}\">{}</span> {}</li>",
                c.id,
                c.rating.key(),
                c.rating.label_zh(),
                esc(&c.text_zh)
            );
        }
        o.push_str("</ul></div>");
    }

    o.push_str("<h2>不适用条款 Exceptions (na)</h2>");
    if r.exceptions.is_empty() {
        o.push_str("<p>无 — none.</p>");
    } else {
        o.push_str("<table><thead><tr><th>条款 Clause</th><th>内容 Text</th><th>理由 Justification</th></tr></thead><tbody>");
        for e in &r.exceptions {
            let _ = write!(
                o,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                e.id,
                esc(&e.text_zh),
                esc(&e.justification)
            );
        }
        o.push_str("</tbody></table>");
    }
    if !r.warnings.is_empty() {
        o.push_str("<h2>警告 Warnings</h2>");
        for w in &r.warnings {
            let _ = write!(
                o,
                "<p class=\"warn\">{}<br>{}</p>",
                esc(&w.message_zh),
                esc(&w.message_en)
            );
        }
    }
    let _ = write!(
        o,
        "<footer>Ballast · report schema {} · 计分规则 {}：方面达到第 L 级当且仅当第 1..L 级全部条款为 met 或 na；能力项取各方面最小值。</footer></body></html>",
        r.schema_version,
        esc(&r.policy)
    );
    o
}
