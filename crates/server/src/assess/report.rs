//! The bridge to `ballast_maturity`: an assessment's rows become an [`AnswerSet`]; levels, gaps,
//! reports and comparisons are computed by the maturity crate's `score` and `report::build` only
//! (never re-implemented here).
//!
//! Mapping of evidence to the answers-file model: a stored file is `Evidence::File` with the path
//! `evidence/<id>/<name>` (where an export puts its bytes) and its SHA-256 — a file imported from
//! an answers file without its bytes keeps the path it was given; a link is `Evidence::Url`; a
//! platform reference is `Evidence::Text` `platform:<reference>`; free text is `Evidence::Text`.
//! Evidence whose expiry has been handled is left out.

use std::collections::BTreeMap;

use ballast_core::guard::china_date;
use ballast_maturity::report::{self, Report};
use ballast_maturity::{
    Answer, AnswerSet, Catalog, ClauseId, Evidence, Policy, Rating, Scope, score,
};
use ballast_store::{AnswerRow, AssessmentRow, EvidenceRow};
use serde::Serialize;
use utoipa::ToSchema;

use super::{FILE, LINK, PLATFORM};

/// `all` or the maturity crate's compact scope (`T4,T10-T20`).
pub fn scope_of(catalog: &Catalog, spec: &str) -> Result<Scope, String> {
    if spec.trim() == "all" || spec.trim().is_empty() {
        Ok(Scope::all())
    } else {
        Scope::parse_list(catalog, spec)
    }
}

/// The in-scope item tables, in catalog order.
pub fn tables_in(catalog: &Catalog, scope: &Scope) -> Vec<u32> {
    catalog.tables().filter(|t| scope.contains(*t)).collect()
}

/// Target level per item from the stored JSON object (`{"5": 3}`).
pub fn targets_of(a: &AssessmentRow) -> BTreeMap<u32, u8> {
    a.targets
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    let t = k.parse().ok()?;
                    let l = u8::try_from(v.as_u64()?).ok()?;
                    Some((t, l))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where an export of the assessment puts a stored evidence file.
pub fn evidence_path(e: &EvidenceRow) -> String {
    let safe: String = e
        .name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("evidence/{}/{safe}", e.id)
}

fn evidence_of(e: &EvidenceRow, has_content: bool) -> Evidence {
    match e.kind.as_str() {
        FILE => Evidence::File {
            path: if has_content {
                evidence_path(e)
            } else {
                e.name.clone()
            },
            sha256: e.sha256.clone().unwrap_or_default(),
        },
        LINK => Evidence::Url {
            url: e.name.clone(),
        },
        PLATFORM => Evidence::Text {
            text: format!("platform:{}", e.name),
        },
        _ => Evidence::Text {
            text: e.name.clone(),
        },
    }
}

/// The assessment's answers as the maturity crate's model: catalog and version, scope, meta
/// (`name` and the stored fields), and every rated clause with its comment, justification,
/// current evidence, assessor and date (Beijing date of the rating).
pub fn answer_set(
    catalog: &Catalog,
    a: &AssessmentRow,
    answers: &[AnswerRow],
    evidence: &[EvidenceRow],
) -> AnswerSet {
    let mut meta: BTreeMap<String, String> = a
        .meta
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    meta.insert("name".to_string(), a.name.clone());
    let mut set = AnswerSet {
        meta,
        catalog: Some(catalog.id().to_string()),
        version: Some(catalog.version().to_string()),
        scope: scope_of(catalog, &a.scope).unwrap_or_else(|_| Scope(Some(Default::default()))),
        ..AnswerSet::default()
    };
    for r in answers {
        let Ok(id) = ClauseId::parse(&r.clause_id) else {
            continue;
        };
        let rating = Rating::parse(&r.rating).unwrap_or(Rating::Unrated);
        if rating == Rating::Unrated || catalog.clause(&id).is_none() {
            continue;
        }
        let ev = evidence
            .iter()
            .filter(|e| e.clause_id == r.clause_id && e.expired_at.is_none())
            .map(|e| evidence_of(e, e.kind == FILE && e.size.is_some()))
            .collect();
        set.answers.insert(
            id,
            Answer {
                rating,
                comment: r.comment.clone().filter(|c| !c.is_empty()),
                justification: r.justification.clone().filter(|c| !c.is_empty()),
                evidence: ev,
                assessor: r.rated_by.clone(),
                date: r
                    .rated_at
                    .map(|t| china_date(t).format("%Y-%m-%d").to_string()),
            },
        );
    }
    set
}

/// The report of an answer set: strict policy, no global target (targets are per item, see
/// [`target_gaps`]), no warnings.
pub fn build(catalog: &Catalog, set: &AnswerSet) -> Report {
    let card = score(catalog, set, Policy::Strict, None);
    report::build(catalog, set, &card, Vec::new())
}

/// What an in-scope item still lacks to reach its target.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TargetGap {
    pub table: u32,
    pub name_zh: String,
    pub name_en: String,
    pub level: Option<u8>,
    pub target: u8,
    /// Clause IDs not yet `met`/`na` up to the target (clamped to the item's levels).
    pub missing: Vec<String>,
}

/// Per-item target gaps, computed by the maturity crate with each distinct target level.
pub fn target_gaps(
    catalog: &Catalog,
    set: &AnswerSet,
    targets: &BTreeMap<u32, u8>,
) -> Vec<TargetGap> {
    let mut by_level: BTreeMap<u8, Vec<u32>> = BTreeMap::new();
    for (t, l) in targets {
        if set.scope.contains(*t) {
            by_level.entry(*l).or_default().push(*t);
        }
    }
    let mut out = Vec::new();
    for (level, tables) in by_level {
        let card = score(catalog, set, Policy::Strict, Some(level));
        for t in tables {
            let (Some(item), Some(r)) = (card.item(t), catalog.item(t)) else {
                continue;
            };
            if item.missing_for_target.is_empty() {
                continue;
            }
            out.push(TargetGap {
                table: t,
                name_zh: r.item.name_zh.clone(),
                name_en: r.item.name_en.clone(),
                level: item.level,
                target: level,
                missing: item
                    .missing_for_target
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            });
        }
    }
    out.sort_by_key(|g| g.table);
    out
}

/// One item in a comparison of two assessments.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemChange {
    pub table: u32,
    pub name_zh: String,
    pub name_en: String,
    pub level_a: Option<u8>,
    pub level_b: Option<u8>,
}

/// Two assessments of one catalog side by side (`a` the earlier, `b` the later).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Comparison {
    pub technical_management: (Option<u8>, Option<u8>),
    pub technical_application: (Option<u8>, Option<u8>),
    pub items: Vec<ItemChange>,
    /// Clauses fulfilled (`met`/`na`) in `b` but not in `a`.
    pub newly_met: Vec<String>,
    /// Clauses fulfilled in `a` but not in `b`.
    pub lost: Vec<String>,
}

/// Compares two answer sets of the same catalog.
pub fn compare(catalog: &Catalog, a: &AnswerSet, b: &AnswerSet) -> Comparison {
    let ca = score(catalog, a, Policy::Strict, None);
    let cb = score(catalog, b, Policy::Strict, None);
    let items = catalog
        .items()
        .filter_map(|r| {
            let t = r.item.table;
            let (la, lb) = (ca.item(t)?.level, cb.item(t)?.level);
            (la.is_some() || lb.is_some()).then(|| ItemChange {
                table: t,
                name_zh: r.item.name_zh.clone(),
                name_en: r.item.name_en.clone(),
                level_a: la,
                level_b: lb,
            })
        })
        .collect();
    let mut newly_met = Vec::new();
    let mut lost = Vec::new();
    for c in catalog.clauses() {
        let t = c.item.table;
        if !(a.scope.contains(t) && b.scope.contains(t)) {
            continue;
        }
        match (a.rating(&c.id).fulfils(), b.rating(&c.id).fulfils()) {
            (false, true) => newly_met.push(c.id.to_string()),
            (true, false) => lost.push(c.id.to_string()),
            _ => {}
        }
    }
    Comparison {
        technical_management: (ca.technical_management, cb.technical_management),
        technical_application: (ca.technical_application, cb.technical_application),
        items,
        newly_met,
        lost,
    }
}
