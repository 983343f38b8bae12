//! The YAML answers format (docs/MATURITY.md):
//!
//! ```yaml
//! catalog: jrt-ops-automation-maturity   # optional; must match when given
//! version: draft-2024-songshen            # optional; must match when given
//! meta: {name: "2026 年度自评估"}          # optional, free-form strings
//! scope: [T4, T5, T34]                   # optional; absent = every item
//! answers:
//!   T5.2.L3.c: met
//!   T5.3.L1.a: {rating: partial, comment: "…", evidence: "…"}
//!   T6.1.L1.a: {rating: na, justification: "…"}
//! ```

use std::fmt::Write as _;

use super::marked::{self, Node};
use super::{Collector, evidence_from_str};
use crate::catalog::Catalog;
use crate::error::{AnswerError, AnswerErrors, AnswerProblem, Location};
use crate::rating::{Answer, AnswerSet, Evidence, Rating, Scope};

struct Ctx<'c, 'a> {
    file: &'c str,
    c: Collector<'a>,
}

impl Ctx<'_, '_> {
    fn at(&self, node: &Node) -> Location {
        Location::Line {
            file: self.file.to_string(),
            line: node.line(),
        }
    }

    fn shape(&mut self, node: &Node, what: impl Into<String>, expected: &'static str) {
        let loc = self.at(node);
        self.c.error(
            loc,
            AnswerProblem::Shape {
                what: what.into(),
                expected,
            },
        );
    }

    /// A scalar's text, or an error naming `what`.
    fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        match node {
            Node::Scalar { value, .. } if !node.is_null() => Some(value.clone()),
            _ => {
                self.shape(node, what, "a text value / 文本");
                None
            }
        }
    }
}

/// Parses a YAML answers file. `file` names it in messages.
pub fn parse(catalog: &Catalog, file: &str, text: &str) -> Result<AnswerSet, AnswerErrors> {
    let mut ctx = Ctx {
        file,
        c: Collector::new(catalog),
    };
    let root = match marked::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => Node::Map {
            entries: Vec::new(),
            line: 1,
        },
        Err((line, message)) => {
            return Err(AnswerErrors(vec![AnswerError {
                location: Location::Line {
                    file: file.to_string(),
                    line,
                },
                problem: AnswerProblem::Syntax(message),
            }]));
        }
    };
    let Node::Map { entries, .. } = &root else {
        ctx.shape(&root, "the document", "a mapping with an `answers` key");
        return ctx.c.finish();
    };
    let mut seen_answers = false;
    for (key, value) in entries {
        let Some(k) = ctx.text(key, "a top-level key") else {
            continue;
        };
        match k.as_str() {
            "catalog" | "version" => {
                if let Some(v) = ctx.text(value, &k) {
                    let field = if k == "catalog" { "catalog" } else { "version" };
                    let loc = ctx.at(value);
                    ctx.c.catalog_field(field, &v, loc);
                }
            }
            "meta" => meta(&mut ctx, value),
            "scope" => scope(&mut ctx, value),
            "answers" => {
                seen_answers = true;
                answers(&mut ctx, value);
            }
            _ => {
                let loc = ctx.at(key);
                ctx.c.error(loc, AnswerProblem::UnknownKey(k));
            }
        }
    }
    if !seen_answers {
        ctx.shape(&root, "the document", "a mapping with an `answers` key");
    }
    ctx.c.finish()
}

fn meta(ctx: &mut Ctx<'_, '_>, node: &Node) {
    let Node::Map { entries, .. } = node else {
        ctx.shape(node, "meta", "a mapping of text values");
        return;
    };
    for (k, v) in entries {
        if let (Some(k), Some(v)) = (ctx.text(k, "meta key"), ctx.text(v, "meta value")) {
            ctx.c.set_meta(k, v);
        }
    }
}

fn scope(ctx: &mut Ctx<'_, '_>, node: &Node) {
    let tokens: Vec<(String, Location)> = match node {
        Node::Seq { items, .. } => items
            .iter()
            .filter_map(|n| ctx.text(n, "scope entry").map(|t| (t, ctx.at(n))))
            .collect(),
        Node::Scalar { value, .. } if !node.is_null() => value
            .split([',', '，'])
            .map(|t| (t.trim().to_string(), ctx.at(node)))
            .collect(),
        _ if node.is_null() => return,
        _ => {
            ctx.shape(node, "scope", "a list of tables such as [T4, T10-T20]");
            return;
        }
    };
    ctx.c.scope(&tokens);
}

fn answers(ctx: &mut Ctx<'_, '_>, node: &Node) {
    if node.is_null() {
        return;
    }
    let Node::Map { entries, .. } = node else {
        ctx.shape(node, "answers", "a mapping from clause ID to rating");
        return;
    };
    for (key, value) in entries {
        let Some(id) = ctx.text(key, "a clause ID") else {
            continue;
        };
        let loc = ctx.at(key);
        if let Some(answer) = answer(ctx, &id, value) {
            ctx.c.answer(&id, loc, answer);
        }
    }
}

fn answer(ctx: &mut Ctx<'_, '_>, id: &str, node: &Node) -> Option<Answer> {
    let loc = ctx.at(node);
    match node {
        Node::Scalar { value, .. } => {
            let rating = if node.is_null() {
                Some(Rating::Unrated)
            } else {
                ctx.c.parse_rating(value, &loc)
            };
            rating.map(|rating| Answer {
                rating,
                ..Answer::default()
            })
        }
        Node::Map { entries, .. } => {
            let mut a = Answer::default();
            let mut rating = None;
            let mut ok = true;
            for (k, v) in entries {
                let Some(k) = ctx.text(k, "an answer field") else {
                    ok = false;
                    continue;
                };
                let what = format!("{id}.{k}");
                match k.as_str() {
                    "rating" => match v.as_str() {
                        Some(s) => {
                            let vloc = ctx.at(v);
                            rating = ctx.c.parse_rating(s, &vloc);
                            ok &= rating.is_some();
                        }
                        None => {
                            ctx.shape(v, what, "one of met, partial, not_met, na, unrated");
                            ok = false;
                        }
                    },
                    "comment" => a.comment = optional_text(ctx, v, &what),
                    "justification" => a.justification = optional_text(ctx, v, &what),
                    "assessor" => a.assessor = optional_text(ctx, v, &what),
                    "date" => {
                        if let Some(s) = optional_text(ctx, v, &what) {
                            let vloc = ctx.at(v);
                            a.date = ctx.c.parse_date(&s, &vloc);
                            ok &= a.date.is_some();
                        }
                    }
                    "evidence" => a.evidence = evidence(ctx, v, &what),
                    _ => {
                        let kloc = ctx.at(v);
                        ctx.c.error(kloc, AnswerProblem::UnknownKey(what));
                        ok = false;
                    }
                }
            }
            match rating {
                Some(r) => a.rating = r,
                None if ok => {
                    ctx.shape(node, id.to_string(), "a mapping with a `rating`");
                    return None;
                }
                None => return None,
            }
            ok.then_some(a)
        }
        _ => {
            ctx.shape(
                node,
                id.to_string(),
                "a rating or a mapping with a `rating`",
            );
            None
        }
    }
}

fn optional_text(ctx: &mut Ctx<'_, '_>, node: &Node, what: &str) -> Option<String> {
    if node.is_null() {
        None
    } else {
        ctx.text(node, what)
    }
}

fn evidence(ctx: &mut Ctx<'_, '_>, node: &Node, what: &str) -> Vec<Evidence> {
    match node {
        _ if node.is_null() => Vec::new(),
        Node::Scalar { value, .. } => vec![evidence_from_str(value)],
        Node::Seq { items, .. } => items.iter().flat_map(|n| evidence(ctx, n, what)).collect(),
        Node::Map { entries, .. } => {
            let mut file = None;
            let mut sha = String::new();
            let mut out = Vec::new();
            for (k, v) in entries {
                let (Some(k), Some(v)) = (ctx.text(k, what), ctx.text(v, what)) else {
                    continue;
                };
                match k.as_str() {
                    "file" => file = Some(v),
                    "sha256" => sha = v.trim().to_ascii_lowercase(),
                    "url" => out.push(Evidence::Url { url: v }),
                    "text" => out.push(Evidence::Text { text: v }),
                    _ => {
                        let loc = ctx.at(node);
                        ctx.c
                            .error(loc, AnswerProblem::UnknownKey(format!("{what}.{k}")));
                    }
                }
            }
            if let Some(path) = file {
                out.insert(0, Evidence::File { path, sha256: sha });
            }
            out
        }
        Node::Alias { .. } => {
            ctx.shape(node, what, "text, a URL or {file, sha256}");
            Vec::new()
        }
    }
}

fn yaml_str(s: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars.
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// Writes an answer set as a YAML answers file (the inverse of [`parse`]), with each clause's
/// item, aspect, level and text as comments so that a person can fill it in.
pub fn write(catalog: &Catalog, set: &AnswerSet, title_comment: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {title_comment}");
    let _ = writeln!(
        out,
        "# {} {} — {}",
        catalog.data().title_zh,
        catalog.data().edition_zh,
        catalog.data().title_en
    );
    let _ = writeln!(
        out,
        "# 评级 ratings: met 符合 | partial 部分符合 | not_met 不符合 | na 不适用 (需填写理由 justification required) | unrated 未评"
    );
    let _ = writeln!(
        out,
        "# 长格式 long form: T5.3.L1.a: {{rating: partial, comment: \"…\", evidence: \"…\", assessor: \"…\", date: 2026-11-20}}"
    );
    let _ = writeln!(out, "catalog: {}", yaml_str(catalog.id()));
    let _ = writeln!(out, "version: {}", yaml_str(catalog.version()));
    if !set.meta.is_empty() {
        let _ = writeln!(out, "meta:");
        for (k, v) in &set.meta {
            let _ = writeln!(out, "  {}: {}", yaml_str(k), yaml_str(v));
        }
    }
    if let Scope(Some(tables)) = &set.scope {
        let list: Vec<String> = tables.iter().map(|t| format!("T{t}")).collect();
        let _ = writeln!(out, "scope: [{}]", list.join(", "));
    }
    let _ = writeln!(out, "answers:");
    let mut last_cell = String::new();
    for c in catalog.clauses() {
        if !set.scope.contains(c.item.table) {
            continue;
        }
        let cell = c.id.cell();
        if cell != last_cell {
            if c.id.aspect == 1 && c.level == 1 {
                let _ = writeln!(
                    out,
                    "\n  # ── 表{} {} {} ({}/{})",
                    c.item.table, c.item.name_zh, c.item.name_en, c.class.name_zh, c.domain.name_zh
                );
            }
            let _ = writeln!(
                out,
                "  # {} {} · 第{}级 level {}",
                c.aspect.name_zh, c.aspect.name_en, c.level, c.level
            );
            last_cell = cell;
        }
        let _ = writeln!(out, "  # {}", c.clause.text_zh.replace('\n', " "));
        let answer = set.answers.get(&c.id);
        let _ = writeln!(out, "  {}: {}", c.id, answer_yaml(answer));
    }
    out
}

fn answer_yaml(answer: Option<&Answer>) -> String {
    let Some(a) = answer else {
        return "unrated".to_string();
    };
    let mut fields = vec![format!("rating: {}", a.rating)];
    let mut push = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            fields.push(format!("{k}: {}", yaml_str(v)));
        }
    };
    push("comment", &a.comment);
    push("justification", &a.justification);
    push("assessor", &a.assessor);
    push("date", &a.date);
    if !a.evidence.is_empty() {
        let items: Vec<String> = a
            .evidence
            .iter()
            .map(|e| match e {
                Evidence::File { path, sha256 } if sha256.is_empty() => {
                    format!("{{file: {}}}", yaml_str(path))
                }
                Evidence::File { path, sha256 } => {
                    format!("{{file: {}, sha256: {}}}", yaml_str(path), yaml_str(sha256))
                }
                Evidence::Url { url } => format!("{{url: {}}}", yaml_str(url)),
                Evidence::Text { text } => format!("{{text: {}}}", yaml_str(text)),
            })
            .collect();
        fields.push(format!("evidence: [{}]", items.join(", ")));
    }
    if fields.len() == 1 {
        a.rating.to_string()
    } else {
        format!("{{{}}}", fields.join(", "))
    }
}
