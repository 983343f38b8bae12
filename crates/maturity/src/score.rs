//! Level computation: the default strict rule of DESIGN.md and the `proportional:P` roll-up.
//!
//! - An aspect reaches level L when every clause at levels 1..L of that aspect is `met` or `na`;
//!   `partial` and `unrated` block; no skipping.
//! - Item = minimum of its aspects (under every policy).
//! - Domain = roll-up of its in-scope items; class = roll-up of its in-scope domains; the
//!   technical-management result = roll-up of the in-scope classes of that scale; the
//!   technical-application result = the roll-up of the 过程管理 class(es). The two are never
//!   combined.
//! - `strict` rolls up by minimum; `proportional:P` takes the highest L such that at least share P
//!   of the children reach L and none is below L−1.
//! - Out-of-scope items have no level; a domain, class or scale with nothing in scope has none.

use std::fmt;

use crate::catalog::{Aspect, Catalog, Item, ScaleKey};
use crate::clause_id::ClauseId;
use crate::rating::{AnswerSet, Rating};

/// How child levels roll up into a domain, class or scale level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    Strict,
    /// Share in (0, 1].
    Proportional(f64),
}

impl Policy {
    pub const DEFAULT_SHARE: f64 = 0.8;

    /// Parses `strict`, `proportional` or `proportional:P` with 0 < P ≤ 1.
    pub fn parse(s: &str) -> Option<Policy> {
        match s.trim() {
            "strict" => Some(Policy::Strict),
            "proportional" => Some(Policy::Proportional(Self::DEFAULT_SHARE)),
            other => {
                let p: f64 = other.strip_prefix("proportional:")?.trim().parse().ok()?;
                (p > 0.0 && p <= 1.0).then_some(Policy::Proportional(p))
            }
        }
    }

    /// Rolls child levels up into one level. `children` must not be empty.
    pub fn roll_up(self, children: &[u8]) -> Option<u8> {
        let min = *children.iter().min()?;
        match self {
            Policy::Strict => Some(min),
            Policy::Proportional(p) => {
                let max = *children.iter().max()?;
                let n = children.len() as f64;
                let level = (1..=max)
                    .rev()
                    .find(|&l| {
                        let reaching = children.iter().filter(|&&c| c >= l).count() as f64;
                        // A small epsilon keeps 4/5 ≥ 0.8 true despite binary fractions.
                        reaching + 1e-9 >= p * n && min + 1 >= l
                    })
                    .unwrap_or(0);
                Some(level)
            }
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Strict => f.write_str("strict"),
            Policy::Proportional(p) => write!(f, "proportional:{p}"),
        }
    }
}

/// The computed level of one aspect.
#[derive(Debug, Clone, PartialEq)]
pub struct AspectScore {
    pub level: u8,
}

/// Clause counts at one level of an item (or overall).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LevelShare {
    pub level: u8,
    /// Clauses rated `met`.
    pub met: usize,
    /// Clauses at this level, less those rated `na`.
    pub applicable: usize,
}

impl LevelShare {
    /// `met / applicable`, or `None` when nothing is applicable.
    pub fn share(&self) -> Option<f64> {
        (self.applicable > 0).then(|| self.met as f64 / self.applicable as f64)
    }
}

/// Counts of ratings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RatingCounts {
    pub met: usize,
    pub partial: usize,
    pub not_met: usize,
    pub na: usize,
    pub unrated: usize,
}

impl RatingCounts {
    fn add(&mut self, r: Rating) {
        match r {
            Rating::Met => self.met += 1,
            Rating::Partial => self.partial += 1,
            Rating::NotMet => self.not_met += 1,
            Rating::Na => self.na += 1,
            Rating::Unrated => self.unrated += 1,
        }
    }
    pub fn total(&self) -> usize {
        self.met + self.partial + self.not_met + self.na + self.unrated
    }
}

/// The computed result of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemScore {
    pub table: u32,
    pub in_scope: bool,
    /// `None` when out of scope.
    pub level: Option<u8>,
    pub aspects: Vec<AspectScore>,
    /// Clauses not yet `met`/`na` that keep the item from its next level (empty at the top).
    pub missing_for_next: Vec<ClauseId>,
    /// With a target: clauses not yet `met`/`na` up to the target (clamped to the item's levels).
    pub missing_for_target: Vec<ClauseId>,
    pub shares: Vec<LevelShare>,
    pub counts: RatingCounts,
}

/// The computed result of a domain or class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupScore {
    pub in_scope: bool,
    pub level: Option<u8>,
}

/// Everything computed for one set of answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorecard {
    pub policy: Policy,
    pub target: Option<u8>,
    /// Items in table order.
    pub items: Vec<ItemScore>,
    /// Indexed like `catalog.classes()[c].domains[d]`.
    pub domains: Vec<Vec<GroupScore>>,
    /// Indexed like `catalog.classes()`.
    pub classes: Vec<GroupScore>,
    pub technical_management: Option<u8>,
    pub technical_application: Option<u8>,
    /// Over in-scope items.
    pub mean_item_level: Option<f64>,
    pub shares: Vec<LevelShare>,
    pub counts: RatingCounts,
}

impl Scorecard {
    pub fn item(&self, table: u32) -> Option<&ItemScore> {
        self.items.iter().find(|i| i.table == table)
    }
    /// The level of a scale.
    pub fn scale_level(&self, key: ScaleKey) -> Option<u8> {
        match key {
            ScaleKey::TechnicalManagement => self.technical_management,
            ScaleKey::TechnicalApplication => self.technical_application,
        }
    }
}

fn aspect_level(aspect: &Aspect, rating: &impl Fn(&ClauseId) -> Rating, table: u32) -> u8 {
    let mut level = 0;
    for cell in &aspect.cells {
        let all = (0..cell.clauses.len())
            .all(|k| rating(&ClauseId::new(table, aspect.column, cell.level, k)).fulfils());
        if !all {
            break;
        }
        level = cell.level;
    }
    level
}

/// Clauses of `item` at levels 1..=up_to that are not fulfilled, in catalog order.
fn unfulfilled(item: &Item, up_to: u8, rating: &impl Fn(&ClauseId) -> Rating) -> Vec<ClauseId> {
    let mut out = Vec::new();
    for aspect in &item.aspects {
        for cell in aspect.cells.iter().filter(|c| c.level <= up_to) {
            for k in 0..cell.clauses.len() {
                let id = ClauseId::new(item.table, aspect.column, cell.level, k);
                if !rating(&id).fulfils() {
                    out.push(id);
                }
            }
        }
    }
    out
}

fn item_score(item: &Item, in_scope: bool, answers: &AnswerSet, target: Option<u8>) -> ItemScore {
    if !in_scope {
        // Out of scope: no level and nothing computed from its answers.
        return ItemScore {
            table: item.table,
            in_scope,
            level: None,
            aspects: Vec::new(),
            missing_for_next: Vec::new(),
            missing_for_target: Vec::new(),
            shares: Vec::new(),
            counts: RatingCounts::default(),
        };
    }
    let rating = |id: &ClauseId| answers.rating(id);
    let aspects: Vec<AspectScore> = item
        .aspects
        .iter()
        .map(|a| AspectScore {
            level: aspect_level(a, &rating, item.table),
        })
        .collect();
    let level = aspects.iter().map(|a| a.level).min().unwrap_or(0);
    let mut shares: Vec<LevelShare> = (1..=item.levels)
        .map(|level| LevelShare {
            level,
            ..LevelShare::default()
        })
        .collect();
    let mut counts = RatingCounts::default();
    for aspect in &item.aspects {
        for cell in &aspect.cells {
            for k in 0..cell.clauses.len() {
                let r = rating(&ClauseId::new(item.table, aspect.column, cell.level, k));
                counts.add(r);
                if let Some(s) = shares.get_mut(usize::from(cell.level) - 1) {
                    if r != Rating::Na {
                        s.applicable += 1;
                    }
                    if r == Rating::Met {
                        s.met += 1;
                    }
                }
            }
        }
    }
    let missing_for_next = if level < item.levels {
        unfulfilled(item, level + 1, &rating)
    } else {
        Vec::new()
    };
    let missing_for_target = target
        .map(|t| unfulfilled(item, t.min(item.levels), &rating))
        .unwrap_or_default();
    ItemScore {
        table: item.table,
        in_scope,
        level: Some(level),
        aspects,
        missing_for_next,
        missing_for_target,
        shares,
        counts,
    }
}

/// Computes every level for `answers` against `catalog`.
pub fn score(
    catalog: &Catalog,
    answers: &AnswerSet,
    policy: Policy,
    target: Option<u8>,
) -> Scorecard {
    let mut items = Vec::new();
    let mut domains = Vec::new();
    let mut classes = Vec::new();
    let mut scale_children: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for class in catalog.classes() {
        let mut class_domains = Vec::new();
        let mut domain_levels = Vec::new();
        for domain in &class.domains {
            let mut item_levels = Vec::new();
            for item in &domain.items {
                let s = item_score(item, answers.scope.contains(item.table), answers, target);
                item_levels.extend(s.level);
                items.push(s);
            }
            let level = if item_levels.is_empty() {
                None
            } else {
                policy.roll_up(&item_levels)
            };
            domain_levels.extend(level);
            class_domains.push(GroupScore {
                in_scope: level.is_some(),
                level,
            });
        }
        let level = if domain_levels.is_empty() {
            None
        } else {
            policy.roll_up(&domain_levels)
        };
        if let Some(l) = level {
            scale_children[scale_index(class.scale)].push(l);
        }
        classes.push(GroupScore {
            in_scope: level.is_some(),
            level,
        });
        domains.push(class_domains);
    }
    items.sort_by_key(|i| i.table);
    let in_scope: Vec<&ItemScore> = items.iter().filter(|i| i.in_scope).collect();
    let mean_item_level = (!in_scope.is_empty()).then(|| {
        in_scope
            .iter()
            .map(|i| f64::from(i.level.unwrap_or(0)))
            .sum::<f64>()
            / in_scope.len() as f64
    });
    let max_levels = in_scope.iter().map(|i| i.shares.len()).max().unwrap_or(0);
    let mut shares: Vec<LevelShare> = (1..=max_levels)
        .map(|l| LevelShare {
            level: u8::try_from(l).unwrap_or(u8::MAX),
            ..LevelShare::default()
        })
        .collect();
    let mut counts = RatingCounts::default();
    for item in &in_scope {
        for (total, s) in shares.iter_mut().zip(&item.shares) {
            total.met += s.met;
            total.applicable += s.applicable;
        }
        counts.met += item.counts.met;
        counts.partial += item.counts.partial;
        counts.not_met += item.counts.not_met;
        counts.na += item.counts.na;
        counts.unrated += item.counts.unrated;
    }
    let roll = |v: &Vec<u8>| {
        if v.is_empty() {
            None
        } else {
            policy.roll_up(v)
        }
    };
    Scorecard {
        policy,
        target,
        technical_management: roll(&scale_children[0]),
        technical_application: roll(&scale_children[1]),
        items,
        domains,
        classes,
        mean_item_level,
        shares,
        counts,
    }
}

fn scale_index(key: ScaleKey) -> usize {
    match key {
        ScaleKey::TechnicalManagement => 0,
        ScaleKey::TechnicalApplication => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_parse() {
        assert_eq!(Policy::parse("strict"), Some(Policy::Strict));
        assert_eq!(
            Policy::parse("proportional"),
            Some(Policy::Proportional(0.8))
        );
        assert_eq!(
            Policy::parse("proportional:0.5"),
            Some(Policy::Proportional(0.5))
        );
        for bad in [
            "",
            "lenient",
            "proportional:0",
            "proportional:1.5",
            "proportional:x",
        ] {
            assert_eq!(Policy::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn roll_up_rules() {
        assert_eq!(Policy::Strict.roll_up(&[3, 2, 1]), Some(1));
        assert_eq!(Policy::Strict.roll_up(&[]), None);
        let p = Policy::Proportional(0.8);
        // 4 of 5 reach 3, none below 2 → 3.
        assert_eq!(p.roll_up(&[3, 3, 3, 3, 2]), Some(3));
        // 4 of 5 reach 3 but one is at 1 (< 3−1) → 2.
        assert_eq!(p.roll_up(&[3, 3, 3, 3, 1]), Some(2));
        // Only 3 of 5 reach 3 → 2 (all ≥ 2).
        assert_eq!(p.roll_up(&[3, 3, 3, 2, 2]), Some(2));
        assert_eq!(p.roll_up(&[0, 0]), Some(0));
        assert_eq!(Policy::Proportional(1.0).roll_up(&[2, 3]), Some(2));
    }
}
