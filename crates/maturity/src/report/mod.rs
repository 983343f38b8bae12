//! The assessment report: one serialisable structure (the JSON schema of docs/MATURITY.md) built
//! from a catalog, an answer set and its scorecard, and renderers for text, Markdown, HTML, XLSX and PDF.
//! Every renderer reads only the [`Report`], so all formats say the same thing.

mod html;
mod markdown;
pub mod pdf;
mod text;
mod xlsx;

use serde::{Deserialize, Serialize};

pub use html::{heat_svg, radar as radar_svg, render as render_html};
pub use markdown::render as render_markdown;
pub use pdf::{PdfError, render as render_pdf};
pub use text::render as render_text;
pub use xlsx::render as render_xlsx;

use crate::catalog::{Catalog, ScaleKey};
use crate::clause_id::ClauseId;
use crate::rating::{AnswerSet, Rating};
use crate::score::{LevelShare, RatingCounts, Scorecard};

/// The version of the JSON report schema. Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// A warning that does not stop scoring (e.g. an evidence file not available here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub code: String,
    pub message_zh: String,
    pub message_en: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub catalog: CatalogRef,
    /// Free-form fields from the answers file (`name`, `organization`, …).
    pub meta: std::collections::BTreeMap<String, String>,
    pub policy: String,
    pub target: Option<u8>,
    /// `all`, or the tables in scope as `T4,T10-T20`.
    pub scope: String,
    /// 技术管理能力成熟度 (1–3), or null when none of its classes is in scope.
    pub technical_management_level: Option<u8>,
    /// 技术应用能力成熟度 (1–5), or null when 过程管理 is not in scope.
    pub technical_application_level: Option<u8>,
    pub scales: Vec<ScaleResult>,
    pub classes: Vec<ClassResult>,
    pub domains: Vec<DomainResult>,
    pub items: Vec<ItemResult>,
    pub metrics: Metrics,
    /// Every clause rated `na`, with its justification.
    pub exceptions: Vec<Exception>,
    /// In-scope clauses without a rating (they block levels).
    pub unrated: Vec<ClauseId>,
    /// In-scope items below their goal (the target, or else the next level), most urgent first.
    pub gaps: Vec<Gap>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogRef {
    pub id: String,
    pub version: String,
    pub title_zh: String,
    pub title_en: String,
    pub edition_zh: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleResult {
    pub key: ScaleKey,
    pub name_zh: String,
    pub name_en: String,
    pub max_level: u8,
    pub level: Option<u8>,
    pub level_name_zh: Option<String>,
    pub level_name_en: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassResult {
    pub ordinal_zh: String,
    pub name_zh: String,
    pub name_en: String,
    pub scale: ScaleKey,
    pub in_scope: bool,
    pub level: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainResult {
    pub name_zh: String,
    pub name_en: String,
    pub class_zh: String,
    pub max_level: u8,
    pub in_scope: bool,
    pub level: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AspectResult {
    pub name_zh: String,
    pub name_en: String,
    pub level: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub level: u8,
    pub met: usize,
    pub applicable: usize,
    /// `met / applicable` rounded to 4 places; null when nothing is applicable.
    pub share: Option<f64>,
}

impl From<&LevelShare> for Share {
    fn from(s: &LevelShare) -> Share {
        Share {
            level: s.level,
            met: s.met,
            applicable: s.applicable,
            share: s.share().map(round4),
        }
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Counts {
    pub met: usize,
    pub partial: usize,
    pub not_met: usize,
    pub na: usize,
    pub unrated: usize,
}

impl From<&RatingCounts> for Counts {
    fn from(c: &RatingCounts) -> Counts {
        Counts {
            met: c.met,
            partial: c.partial,
            not_met: c.not_met,
            na: c.na,
            unrated: c.unrated,
        }
    }
}

impl Counts {
    pub fn total(&self) -> usize {
        self.met + self.partial + self.not_met + self.na + self.unrated
    }
    pub fn rated(&self) -> usize {
        self.total() - self.unrated
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    pub table: u32,
    pub section: String,
    pub class_zh: String,
    pub domain_zh: String,
    pub name_zh: String,
    pub name_en: String,
    /// Number of levels of the item's table.
    pub levels: u8,
    pub in_scope: bool,
    pub level: Option<u8>,
    pub aspects: Vec<AspectResult>,
    pub missing_for_next: Vec<ClauseId>,
    /// Present only when a target was given.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub missing_for_target: Option<Vec<ClauseId>>,
    pub met_share_by_level: Vec<Share>,
    pub ratings: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Non-normative companion metrics; the levels above are the result.
    pub mean_item_level: Option<f64>,
    pub met_share_by_level: Vec<Share>,
    pub ratings: Counts,
    pub items_in_scope: usize,
    pub clauses_in_scope: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exception {
    pub id: ClauseId,
    pub item_zh: String,
    pub text_zh: String,
    pub justification: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub priority: usize,
    pub table: u32,
    pub name_zh: String,
    pub name_en: String,
    pub level: u8,
    /// The level this gap leads to: the target (clamped to the item's levels) or the next level.
    pub goal: u8,
    pub missing: Vec<GapClause>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapClause {
    pub id: ClauseId,
    pub aspect_zh: String,
    pub level: u8,
    pub rating: Rating,
    pub text_zh: String,
}

/// Builds the report. Pure: `warnings` come from the caller (e.g. evidence checks).
pub fn build(
    catalog: &Catalog,
    answers: &AnswerSet,
    card: &Scorecard,
    warnings: Vec<Warning>,
) -> Report {
    let scales = [
        ScaleKey::TechnicalManagement,
        ScaleKey::TechnicalApplication,
    ]
    .iter()
    .filter_map(|&key| {
        let s = catalog.scale(key)?;
        let level = card.scale_level(key);
        let def = level.and_then(|l| s.levels.iter().find(|d| d.level == l));
        Some(ScaleResult {
            key,
            name_zh: s.name_zh.clone(),
            name_en: s.name_en.clone(),
            max_level: u8::try_from(s.levels.len()).unwrap_or(u8::MAX),
            level,
            level_name_zh: def.map(|d| match &d.alias_zh {
                Some(a) => format!("{}（{a}）", d.name_zh),
                None => d.name_zh.clone(),
            }),
            level_name_en: def.map(|d| match &d.alias_en {
                Some(a) => format!("{} ({a})", d.name_en),
                None => d.name_en.clone(),
            }),
        })
    })
    .collect();
    let mut classes = Vec::new();
    let mut domains = Vec::new();
    for (ci, class) in catalog.classes().iter().enumerate() {
        let g = &card.classes[ci];
        classes.push(ClassResult {
            ordinal_zh: class.ordinal_zh.clone(),
            name_zh: class.name_zh.clone(),
            name_en: class.name_en.clone(),
            scale: class.scale,
            in_scope: g.in_scope,
            level: g.level,
        });
        for (di, domain) in class.domains.iter().enumerate() {
            let g = &card.domains[ci][di];
            domains.push(DomainResult {
                name_zh: domain.name_zh.clone(),
                name_en: domain.name_en.clone(),
                class_zh: class.name_zh.clone(),
                max_level: domain.items.iter().map(|i| i.levels).max().unwrap_or(0),
                in_scope: g.in_scope,
                level: g.level,
            });
        }
    }
    let mut items = Vec::new();
    for r in catalog.items() {
        let Some(s) = card.item(r.item.table) else {
            continue;
        };
        items.push(ItemResult {
            table: r.item.table,
            section: r.item.section.clone(),
            class_zh: r.class.name_zh.clone(),
            domain_zh: r.domain.name_zh.clone(),
            name_zh: r.item.name_zh.clone(),
            name_en: r.item.name_en.clone(),
            levels: r.item.levels,
            in_scope: s.in_scope,
            level: s.level,
            aspects: r
                .item
                .aspects
                .iter()
                .zip(&s.aspects)
                .map(|(a, sa)| AspectResult {
                    name_zh: a.name_zh.clone(),
                    name_en: a.name_en.clone(),
                    level: sa.level,
                })
                .collect(),
            missing_for_next: s.missing_for_next.clone(),
            missing_for_target: card.target.map(|_| s.missing_for_target.clone()),
            met_share_by_level: s.shares.iter().map(Share::from).collect(),
            ratings: Counts::from(&s.counts),
        });
    }
    let mut exceptions = Vec::new();
    let mut unrated = Vec::new();
    for c in catalog.clauses() {
        if !answers.scope.contains(c.item.table) {
            continue;
        }
        match answers.answers.get(&c.id) {
            Some(a) if a.rating == Rating::Na => exceptions.push(Exception {
                id: c.id,
                item_zh: c.item.name_zh.clone(),
                text_zh: c.clause.text_zh.clone(),
                justification: a.justification.clone().unwrap_or_default(),
            }),
            Some(a) if a.rating != Rating::Unrated => {}
            _ => unrated.push(c.id),
        }
    }
    let mut gaps: Vec<Gap> = card
        .items
        .iter()
        .filter(|s| s.in_scope)
        .filter_map(|s| {
            let item = catalog.item(s.table)?.item;
            let level = s.level.unwrap_or(0);
            let (goal, ids) = match card.target {
                Some(t) => (t.min(item.levels), &s.missing_for_target),
                None => (
                    level.saturating_add(1).min(item.levels),
                    &s.missing_for_next,
                ),
            };
            if ids.is_empty() || goal <= level {
                return None;
            }
            let missing = ids
                .iter()
                .filter_map(|id| {
                    let c = catalog.clause(id)?;
                    Some(GapClause {
                        id: *id,
                        aspect_zh: c.aspect.name_zh.clone(),
                        level: c.level,
                        rating: answers.rating(id),
                        text_zh: c.clause.text_zh.clone(),
                    })
                })
                .collect();
            Some(Gap {
                priority: 0,
                table: s.table,
                name_zh: item.name_zh.clone(),
                name_en: item.name_en.clone(),
                level,
                goal,
                missing,
            })
        })
        .collect();
    // Lowest items first, then fewest missing clauses, then table order.
    gaps.sort_by_key(|g| (g.level, g.missing.len(), g.table));
    for (i, g) in gaps.iter_mut().enumerate() {
        g.priority = i + 1;
    }
    let data = catalog.data();
    Report {
        schema_version: SCHEMA_VERSION,
        catalog: CatalogRef {
            id: data.id.clone(),
            version: data.version.clone(),
            title_zh: data.title_zh.clone(),
            title_en: data.title_en.clone(),
            edition_zh: data.edition_zh.clone(),
        },
        meta: answers.meta.clone(),
        policy: card.policy.to_string(),
        target: card.target,
        scope: answers.scope.to_spec(),
        technical_management_level: card.technical_management,
        technical_application_level: card.technical_application,
        scales,
        classes,
        domains,
        metrics: Metrics {
            mean_item_level: card.mean_item_level.map(round4),
            met_share_by_level: card.shares.iter().map(Share::from).collect(),
            ratings: Counts::from(&card.counts),
            items_in_scope: items.iter().filter(|i| i.in_scope).count(),
            clauses_in_scope: card.counts.total(),
        },
        items,
        exceptions,
        unrated,
        gaps,
        warnings,
    }
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A display title: the answers' `name` meta field, or the catalog title.
    pub fn title(&self) -> String {
        self.meta
            .get("name")
            .cloned()
            .unwrap_or_else(|| "运维自动化能力成熟度评估报告".to_string())
    }

    /// `n/max` or `—` for a missing level.
    pub fn level_text(level: Option<u8>, max: u8) -> String {
        level.map_or_else(|| "—".to_string(), |l| format!("{l}/{max}"))
    }
}
