//! The level rule: crafted cases and properties (monotonicity, strict ≤ proportional, scope
//! isolation).

use ballast_maturity::{AnswerSet, Catalog, ClauseId, Policy, Rating, ScaleKey, Scope, score};
use proptest::prelude::*;

use super::{answers_with, catalog};

fn id(s: &str) -> ClauseId {
    ClauseId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Every clause of `tables` at levels ≤ `up_to` met.
fn met_up_to(c: &Catalog, tables: &[u32], up_to: u8) -> AnswerSet {
    answers_with(
        Some(tables),
        c.clauses()
            .filter(|cl| tables.contains(&cl.item.table) && cl.level <= up_to)
            .map(|cl| (cl.id, Rating::Met)),
    )
}

#[test]
fn empty_answers_are_level_zero_and_everything_unrated() {
    let c = catalog();
    let set = AnswerSet::default();
    let card = score(c, &set, Policy::Strict, None);
    assert_eq!(card.items.len(), 46);
    assert!(card.items.iter().all(|i| i.level == Some(0)));
    assert_eq!(card.technical_management, Some(0));
    assert_eq!(card.technical_application, Some(0));
    assert_eq!(card.counts.unrated, c.clause_count());
}

#[test]
fn item_level_is_minimum_of_aspects_without_skipping() {
    let c = catalog();
    let mut set = met_up_to(c, &[5], 3);
    assert_eq!(
        score(c, &set, Policy::Strict, None)
            .item(5)
            .map(|i| i.level),
        Some(Some(3))
    );

    // One partial clause at level 2 of aspect 3 caps that aspect (and the item) at 1.
    if let Some(a) = set.answers.get_mut(&id("T5.3.L2.c")) {
        a.rating = Rating::Partial;
    }
    let card = score(c, &set, Policy::Strict, None);
    let item = card.item(5).unwrap_or_else(|| panic!("T5"));
    assert_eq!(item.level, Some(1));
    assert_eq!(
        item.aspects.iter().map(|a| a.level).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    assert_eq!(item.missing_for_next, vec![id("T5.3.L2.c")]);

    // Level 3 met but level 2 not: no skipping, the aspect stays at 1.
    let mut skip = met_up_to(c, &[5], 1);
    for cl in c.clauses().filter(|cl| cl.item.table == 5 && cl.level == 3) {
        skip.answers.insert(
            cl.id,
            ballast_maturity::Answer {
                rating: Rating::Met,
                ..Default::default()
            },
        );
    }
    assert_eq!(
        score(c, &skip, Policy::Strict, None)
            .item(5)
            .and_then(|i| i.level),
        Some(1)
    );
}

#[test]
fn na_counts_as_fulfilled_and_unrated_blocks() {
    let c = catalog();
    let mut set = met_up_to(c, &[4], 3);
    set.answers.insert(
        id("T4.1.L1.a"),
        ballast_maturity::Answer {
            rating: Rating::Na,
            justification: Some("x".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        score(c, &set, Policy::Strict, None)
            .item(4)
            .and_then(|i| i.level),
        Some(3)
    );
    set.answers.remove(&id("T4.1.L1.a"));
    let card = score(c, &set, Policy::Strict, None);
    assert_eq!(card.item(4).and_then(|i| i.level), Some(0));
    assert_eq!(
        card.item(4).map(|i| i.missing_for_next.clone()),
        Some(vec![id("T4.1.L1.a")])
    );
}

#[test]
fn scales_are_separate_and_out_of_scope_has_no_level() {
    let c = catalog();
    let set = met_up_to(c, &[4, 21], 5);
    let card = score(c, &set, Policy::Strict, None);
    assert_eq!(card.technical_management, Some(3));
    assert_eq!(card.technical_application, Some(5));
    assert_eq!(
        card.item(6).map(|i| (i.in_scope, i.level)),
        Some((false, None))
    );
    // Classes with no item in scope have no level.
    let tool_class = c
        .classes()
        .iter()
        .position(|cl| cl.name_zh == "工具与平台建设");
    assert_eq!(tool_class.map(|k| card.classes[k].level), Some(None));

    let only_tm = met_up_to(c, &[4], 3);
    let card = score(c, &only_tm, Policy::Strict, None);
    assert_eq!(card.scale_level(ScaleKey::TechnicalApplication), None);
}

#[test]
fn target_lists_everything_missing_up_to_it() {
    let c = catalog();
    let set = met_up_to(c, &[21], 2);
    let card = score(c, &set, Policy::Strict, Some(4));
    let item = card.item(21).unwrap_or_else(|| panic!("T21"));
    assert_eq!(item.level, Some(2));
    let expected: Vec<ClauseId> = c
        .clauses()
        .filter(|cl| cl.item.table == 21 && (3..=4).contains(&cl.level))
        .map(|cl| cl.id)
        .collect();
    let mut got = item.missing_for_target.clone();
    got.sort();
    let mut want = expected;
    want.sort();
    assert_eq!(got, want);
    // A target above a technical-management item's 3 levels is clamped.
    let card = score(c, &met_up_to(c, &[4], 3), Policy::Strict, Some(5));
    assert!(
        card.item(4)
            .is_some_and(|i| i.missing_for_target.is_empty())
    );
}

#[test]
fn proportional_rolls_up_domains() {
    let c = catalog();
    // 风险控制 has tables 5–9: four at 3 and one at 2 → strict 2, proportional:0.8 3.
    let mut set = met_up_to(c, &[5, 6, 7, 8, 9], 3);
    let last9 = c
        .clauses()
        .filter(|cl| cl.item.table == 9 && cl.level == 3)
        .map(|cl| cl.id)
        .next();
    if let Some(k) = last9 {
        set.answers.remove(&k);
    }
    let domain_level = |p| {
        let card = score(c, &set, p, None);
        let (ci, di) = c
            .classes()
            .iter()
            .enumerate()
            .find_map(|(ci, cl)| {
                cl.domains
                    .iter()
                    .position(|d| d.name_zh == "风险控制")
                    .map(|di| (ci, di))
            })
            .unwrap_or_else(|| panic!("风险控制"));
        card.domains[ci][di].level
    };
    assert_eq!(domain_level(Policy::Strict), Some(2));
    assert_eq!(domain_level(Policy::Proportional(0.8)), Some(3));
    assert_eq!(domain_level(Policy::Proportional(0.9)), Some(2));
}

#[test]
fn scope_parsing_accepts_tables_ranges_and_names() {
    let c = catalog();
    let s = Scope::parse_list(c, "T4, T10-T12,表37,故障管理").unwrap_or_else(|t| panic!("{t}"));
    assert_eq!(s.to_spec(), "T4,T10-T12,T37-T40");
    assert_eq!(Scope::parse_list(c, "T3"), Err("T3".to_string()));
    assert_eq!(Scope::parse_list(c, "T12-T10"), Err("T12-T10".to_string()));
    assert_eq!(
        Scope::parse_list(c, "没有这个"),
        Err("没有这个".to_string())
    );
}

const TABLES: [u32; 5] = [4, 5, 17, 21, 37];

fn rating_strategy() -> impl Strategy<Value = Rating> {
    prop_oneof![
        4 => Just(Rating::Met),
        1 => Just(Rating::Partial),
        1 => Just(Rating::NotMet),
        1 => Just(Rating::Na),
        1 => Just(Rating::Unrated),
    ]
}

fn random_set() -> impl Strategy<Value = AnswerSet> {
    let ids: Vec<ClauseId> = catalog()
        .clauses()
        .filter(|cl| TABLES.contains(&cl.item.table))
        .map(|cl| cl.id)
        .collect();
    let n = ids.len();
    prop::collection::vec(rating_strategy(), n)
        .prop_map(move |ratings| answers_with(Some(&TABLES), ids.iter().copied().zip(ratings)))
}

fn all_levels(card: &ballast_maturity::Scorecard) -> Vec<Option<u8>> {
    let mut v: Vec<Option<u8>> = card.items.iter().map(|i| i.level).collect();
    v.extend(card.domains.iter().flatten().map(|d| d.level));
    v.extend(card.classes.iter().map(|c| c.level));
    v.push(card.technical_management);
    v.push(card.technical_application);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn raising_a_clause_to_met_never_lowers_a_level(set in random_set(), pick in any::<prop::sample::Index>(), prop in 0.5f64..=1.0) {
        let c = catalog();
        let not_met: Vec<ClauseId> = set.answers.iter().filter(|(_, a)| a.rating != Rating::Met).map(|(k, _)| *k).collect();
        prop_assume!(!not_met.is_empty());
        let k = not_met[pick.index(not_met.len())];
        let mut raised = set.clone();
        raised.answers.insert(k, ballast_maturity::Answer { rating: Rating::Met, ..Default::default() });
        for policy in [Policy::Strict, Policy::Proportional(prop)] {
            let before = all_levels(&score(c, &set, policy, None));
            let after = all_levels(&score(c, &raised, policy, None));
            for (b, a) in before.iter().zip(&after) {
                prop_assert!(a >= b, "{policy}: raising {k} lowered {b:?} to {a:?}");
            }
        }
    }

    #[test]
    fn strict_is_never_above_proportional(set in random_set(), p in 0.05f64..=1.0) {
        let c = catalog();
        let strict = all_levels(&score(c, &set, Policy::Strict, None));
        let prop = all_levels(&score(c, &set, Policy::Proportional(p), None));
        for (s, q) in strict.iter().zip(&prop) {
            prop_assert!(s <= q, "strict {s:?} above proportional:{p} {q:?}");
        }
    }

    #[test]
    fn out_of_scope_answers_never_change_in_scope_results(set in random_set(), noise in prop::collection::vec(rating_strategy(), 1..40)) {
        let c = catalog();
        let mut noisy = set.clone();
        let outside: Vec<ClauseId> = c.clauses().filter(|cl| cl.item.table == 30).map(|cl| cl.id).collect();
        for (k, r) in outside.iter().zip(noise) {
            noisy.answers.insert(*k, ballast_maturity::Answer { rating: r, ..Default::default() });
        }
        let a = score(c, &set, Policy::Strict, Some(3));
        let b = score(c, &noisy, Policy::Strict, Some(3));
        prop_assert_eq!(a, b);
    }
}
