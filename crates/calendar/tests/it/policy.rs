//! Change-window policies: the guard at phase boundaries, on make-up Saturdays, on
//! exchange-only closures, outside the calendar, and emergency overrides.

use ballast_calendar::bundled::EXAMPLE_POLICIES;
use ballast_calendar::policy::{MAX_OVERRIDE_HOURS, OVERRIDE_APPROVER_PERMISSION};
use ballast_calendar::{
    Approver, OperationContext, Outcome, Override, OverrideRequest, PolicyError, PolicySet, Target,
    evaluate,
};
use chrono::Duration;

use super::{at, sse};

fn policies() -> PolicySet {
    PolicySet::from_toml("example.toml", EXAMPLE_POLICIES).unwrap()
}

fn ctx(env: &str, tier: &str, kind: &str) -> OperationContext {
    OperationContext {
        environment: env.to_string(),
        business_system: "centralized-trading".to_string(),
        tier: tier.to_string(),
        kind: kind.to_string(),
    }
}

fn outcome(p: &PolicySet, c: &OperationContext, s: &str) -> (Outcome, Option<String>) {
    let d = evaluate(p, sse(), c, at(s));
    (d.outcome, d.policy_id)
}

const CORE: &str = "prod-core-market-hours";
const FREEZE: &str = "prod-holiday-freeze";

#[test]
fn table_at_phase_boundaries_on_a_trading_day() {
    let p = policies();
    let c = ctx("prod", "core", "deploy");
    // 2026-03-02 is an ordinary Monday.
    let cases: &[(&str, Outcome, Option<&str>)] = &[
        ("2026-03-02T08:29:59+08:00", Outcome::Allow, None),
        ("2026-03-02T08:30:00+08:00", Outcome::Warn, Some(CORE)),
        ("2026-03-02T08:59:59+08:00", Outcome::Warn, Some(CORE)),
        ("2026-03-02T09:00:00+08:00", Outcome::Block, Some(CORE)),
        ("2026-03-02T09:14:59+08:00", Outcome::Block, Some(CORE)),
        ("2026-03-02T09:15:00+08:00", Outcome::Block, Some(CORE)),
        ("2026-03-02T11:30:00+08:00", Outcome::Block, Some(CORE)),
        ("2026-03-02T13:00:00+08:00", Outcome::Block, Some(CORE)),
        ("2026-03-02T14:57:00+08:00", Outcome::Block, Some(CORE)),
        ("2026-03-02T15:00:00+08:00", Outcome::Block, Some(CORE)),
        ("2026-03-02T15:29:59+08:00", Outcome::Block, Some(CORE)),
        ("2026-03-02T15:30:00+08:00", Outcome::Allow, None),
        ("2026-03-02T20:00:00+08:00", Outcome::Allow, None),
    ];
    for (s, o, id) in cases {
        let (got, pid) = outcome(&p, &c, s);
        assert_eq!(got, *o, "{s}");
        assert_eq!(pid.as_deref(), *id, "{s}");
    }
}

#[test]
fn targets_select_environment_tier_and_kind() {
    let p = policies();
    let s = "2026-03-02T10:00:00+08:00";
    assert_eq!(
        outcome(&p, &ctx("prod", "core", "deploy"), s).0,
        Outcome::Block
    );
    assert_eq!(
        outcome(&p, &ctx("prod", "general", "deploy"), s).0,
        Outcome::Allow
    );
    assert_eq!(
        outcome(&p, &ctx("test", "core", "deploy"), s).0,
        Outcome::Allow
    );
    assert_eq!(
        outcome(&p, &ctx("prod", "core", "read_only"), s).0,
        Outcome::Allow
    );
}

#[test]
fn make_up_saturdays_and_closures_are_not_trading_days() {
    let p = policies();
    let c = ctx("prod", "core", "deploy");
    // 2026-02-14 is a make-up Saturday (调休上班) but the exchange is closed.
    let d = evaluate(&p, sse(), &c, at("2026-02-14T10:00:00+08:00"));
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(d.reason_en.contains("make-up workday"), "{}", d.reason_en);
    assert!(d.reason_zh.contains("调休"), "{}", d.reason_zh);
    // Spring Festival and the 2024 exchange-only closure.
    assert_eq!(
        outcome(&p, &c, "2026-02-16T10:00:00+08:00").0,
        Outcome::Allow
    );
    let d = evaluate(&p, sse(), &c, at("2024-02-09T10:00:00+08:00"));
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(d.reason_en.contains("exchange-only"), "{}", d.reason_en);
}

#[test]
fn freeze_before_long_holidays() {
    let p = policies();
    let c = ctx("prod", "general", "deploy");
    // Last trading day before Spring Festival 2026 (10 days) and before 2024's
    // exchange-only 除夕 closure: frozen all day.
    for s in [
        "2026-02-13T07:00:00+08:00",
        "2026-02-13T20:00:00+08:00",
        "2024-02-08T22:00:00+08:00",
        "2026-09-30T18:00:00+08:00",
    ] {
        let (o, id) = outcome(&p, &c, s);
        assert_eq!(o, Outcome::Block, "{s}");
        assert_eq!(id.as_deref(), Some(FREEZE), "{s}");
    }
    // An ordinary Friday before a weekend is not frozen.
    assert_eq!(
        outcome(&p, &c, "2026-03-06T20:00:00+08:00").0,
        Outcome::Allow
    );
    // Core systems: block from both policies; the first (file order) is reported.
    let (o, id) = outcome(
        &p,
        &ctx("prod", "core", "deploy"),
        "2026-02-13T10:00:00+08:00",
    );
    assert_eq!(o, Outcome::Block);
    assert_eq!(id.as_deref(), Some(CORE));
    // ... but outside market hours only the freeze blocks.
    let (o, id) = outcome(
        &p,
        &ctx("prod", "core", "deploy"),
        "2026-02-13T16:00:00+08:00",
    );
    assert_eq!(o, Outcome::Block);
    assert_eq!(id.as_deref(), Some(FREEZE));
}

#[test]
fn most_restrictive_wins() {
    // The after-holiday warn (00:00–09:30) overlaps the core block from 09:00.
    let p = policies();
    let c = ctx("prod", "core", "deploy");
    let (o, id) = outcome(&p, &c, "2026-02-24T08:45:00+08:00");
    assert_eq!(o, Outcome::Warn);
    assert_eq!(id.as_deref(), Some(CORE)); // first warn in file order
    let (o, id) = outcome(&p, &c, "2026-02-24T09:10:00+08:00");
    assert_eq!(o, Outcome::Block);
    assert_eq!(id.as_deref(), Some(CORE));
    let (o, id) = outcome(
        &p,
        &ctx("prod", "general", "deploy"),
        "2026-02-24T09:10:00+08:00",
    );
    assert_eq!(o, Outcome::Warn);
    assert_eq!(id.as_deref(), Some("prod-after-holiday-warn"));
}

#[test]
fn uncovered_dates_are_treated_as_possibly_open() {
    let p = policies();
    let c = ctx("prod", "core", "deploy");
    // 2027-01-04 10:00: no 2027 data; market may be open: block, and say so.
    let d = evaluate(&p, sse(), &c, at("2027-01-04T10:00:00+08:00"));
    assert_eq!(d.outcome, Outcome::Block);
    assert!(!d.calendar_covered);
    assert!(
        d.reason_en.contains("calendar sse not loaded for 2027"),
        "{}",
        d.reason_en
    );
    assert!(
        d.reason_zh.contains("交易日历 sse 未加载 2027 年数据"),
        "{}",
        d.reason_zh
    );
    // Even a Sunday outside the data: the freeze rule "could" apply, so block.
    let d = evaluate(
        &p,
        sse(),
        &ctx("prod", "general", "deploy"),
        at("2027-01-03T20:00:00+08:00"),
    );
    assert_eq!(d.outcome, Outcome::Block);
    // The last covered day looks into 2027 for the freeze rule: fail closed.
    let d = evaluate(
        &p,
        sse(),
        &ctx("prod", "general", "deploy"),
        at("2026-12-31T20:00:00+08:00"),
    );
    assert_eq!(d.outcome, Outcome::Block);
    assert_eq!(d.policy_id.as_deref(), Some(FREEZE));
    assert!(!d.calendar_covered);
    assert!(
        d.reason_en
            .contains("could not be decided (calendar sse not loaded for 2027)"),
        "{}",
        d.reason_en
    );
    // Rules that do not match the target still do not apply.
    let d = evaluate(
        &p,
        sse(),
        &ctx("test", "core", "deploy"),
        at("2027-01-04T10:00:00+08:00"),
    );
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(!d.calendar_covered);
}

fn request(requester: &str) -> OverrideRequest {
    OverrideRequest {
        id: "ovr-1".to_string(),
        reason: "紧急修复清算批处理缺陷 / hotfix for the settlement batch".to_string(),
        requester: requester.to_string(),
        scope: Target {
            environments: vec!["prod".to_string()],
            business_systems: vec!["centralized-trading".to_string()],
            ..Target::default()
        },
        valid_from: at("2026-03-02T10:00:00+08:00"),
        valid_until: at("2026-03-02T11:00:00+08:00"),
    }
}

fn approver(user: &str, with_permission: bool) -> Approver {
    Approver {
        user: user.to_string(),
        permissions: if with_permission {
            vec![OVERRIDE_APPROVER_PERMISSION.to_string()]
        } else {
            vec!["job.run".to_string()]
        },
    }
}

#[test]
fn override_is_honoured_inside_its_time_box() {
    let mut p = policies();
    let ov = Override::approve(request("zhang.san"), &approver("li.si", true)).unwrap();
    p.overrides.push(ov);
    let c = ctx("prod", "core", "deploy");
    let d = evaluate(&p, sse(), &c, at("2026-03-02T10:30:00+08:00"));
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(d.override_id.as_deref(), Some("ovr-1"));
    assert_eq!(d.overridden_outcome, Some(Outcome::Block));
    assert_eq!(d.policy_id.as_deref(), Some(CORE));
    assert!(
        d.reason_en.contains("emergency override ovr-1"),
        "{}",
        d.reason_en
    );
    assert!(d.reason_zh.contains("紧急放行 ovr-1"), "{}", d.reason_zh);
    // At valid_until it has expired: blocked again, and the reason says why.
    let d = evaluate(&p, sse(), &c, at("2026-03-02T11:00:00+08:00"));
    assert_eq!(d.outcome, Outcome::Block);
    assert!(d.override_id.is_none());
    assert!(
        d.reason_en.contains("override ovr-1 has expired"),
        "{}",
        d.reason_en
    );
    // Before valid_from.
    let d = evaluate(&p, sse(), &c, at("2026-03-02T09:59:59+08:00"));
    assert_eq!(d.outcome, Outcome::Block);
    assert!(d.reason_en.contains("not valid yet"));
    // Out of scope (another business system).
    let mut other = c.clone();
    other.business_system = "otc".to_string();
    let d = evaluate(&p, sse(), &other, at("2026-03-02T10:30:00+08:00"));
    assert_eq!(d.outcome, Outcome::Block);
}

#[test]
fn override_refused_without_separation_of_duties() {
    let e = Override::approve(request("zhang.san"), &approver("zhang.san", true)).unwrap_err();
    assert_eq!(
        e,
        PolicyError::OverrideSelfApproval {
            user: "zhang.san".to_string()
        }
    );
    assert_eq!(e.code(), "override.self_approval");

    let e = Override::approve(request("zhang.san"), &approver("li.si", false)).unwrap_err();
    assert_eq!(e.code(), "override.approver_lacks_permission");
    assert!(e.message_zh().contains(OVERRIDE_APPROVER_PERMISSION));

    let mut r = request("zhang.san");
    r.reason = "   ".to_string();
    let e = Override::approve(r, &approver("li.si", true)).unwrap_err();
    assert_eq!(e.code(), "override.reason_missing");

    let mut r = request("zhang.san");
    r.valid_until = r.valid_from;
    assert_eq!(
        Override::approve(r, &approver("li.si", true))
            .unwrap_err()
            .code(),
        "override.time_box_invalid"
    );
    let mut r = request("zhang.san");
    r.valid_until = r.valid_from + Duration::hours(MAX_OVERRIDE_HOURS) + Duration::seconds(1);
    assert_eq!(
        Override::approve(r, &approver("li.si", true))
            .unwrap_err()
            .code(),
        "override.time_box_invalid"
    );

    let ov = Override::approve(request("zhang.san"), &approver("li.si", true)).unwrap();
    let e = ov
        .check_valid_at(at("2026-03-02T12:00:00+08:00"))
        .unwrap_err();
    assert_eq!(e.code(), "override.expired");
}

#[test]
fn policy_file_validation_names_line_and_field() {
    let text = r#"schema = 1
[[policy]]
id = "p1"
environments = ["prod"]
[[policy.rule]]
outcome = "deny"
days = "trading"
from = "15:30"
to = "09:00"
[[policy.rule]]
outcome = "block"
days = "weekdays"
[[policy.rule]]
outcome = "block"
days = "trading"
min_closure_days = 3
colour = "red"
"#;
    let e = PolicySet::from_toml("p.toml", text).unwrap_err();
    // The unknown key stops the parse first.
    let PolicyError::Invalid(issues) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(issues.len(), 1);
    assert_eq!(issues.0[0].field, "colour");
    assert_eq!(issues.0[0].line, Some(17));

    let text = text.replace("colour = \"red\"\n", "");
    let e = PolicySet::from_toml("p.toml", &text).unwrap_err();
    let PolicyError::Invalid(issues) = &e else {
        panic!("{e:?}")
    };
    let fields: Vec<(&str, Option<usize>)> =
        issues.iter().map(|i| (i.field.as_str(), i.line)).collect();
    assert_eq!(
        fields,
        vec![
            ("policy[0].rule[0].outcome", Some(6)),
            ("policy[0].rule[0].to", Some(9)),
            ("policy[0].rule[1].days", Some(12)),
            ("policy[0].rule[2].min_closure_days", Some(16)),
        ]
    );
    assert_eq!(e.code(), "policy.invalid");
    assert!(e.message_zh().contains("p.toml:6"));
}

const PHASE_POLICY: &str = r#"schema = 1
[[policy]]
id = "core-by-phase"
tiers = ["core"]

[[policy.rule]]
outcome = "block"
phases = ["opening_call_auction", "opening_pause", "continuous_trading", "closing_call_auction"]

[[policy.rule]]
outcome = "warn"
phases = ["lunch_break"]
"#;

/// Rules by market phase: the guard at every phase boundary.
#[test]
fn phase_rules_at_phase_boundaries() {
    let p = PolicySet::from_toml("phases.toml", PHASE_POLICY).unwrap();
    let c = ctx("prod", "core", "deploy");
    let cases: &[(&str, Outcome)] = &[
        ("2026-03-02T09:14:59+08:00", Outcome::Allow),
        ("2026-03-02T09:15:00+08:00", Outcome::Block),
        ("2026-03-02T09:25:00+08:00", Outcome::Block),
        ("2026-03-02T11:29:59+08:00", Outcome::Block),
        ("2026-03-02T11:30:00+08:00", Outcome::Warn),
        ("2026-03-02T12:59:59+08:00", Outcome::Warn),
        ("2026-03-02T13:00:00+08:00", Outcome::Block),
        ("2026-03-02T14:57:00+08:00", Outcome::Block),
        ("2026-03-02T14:59:59+08:00", Outcome::Block),
        ("2026-03-02T15:00:00+08:00", Outcome::Allow),
        ("2026-03-02T15:30:00+08:00", Outcome::Allow),
        // Make-up Saturday, Spring Festival, exchange-only closure: closed all day.
        ("2026-02-14T10:00:00+08:00", Outcome::Allow),
        ("2026-02-16T10:00:00+08:00", Outcome::Allow),
        ("2024-02-09T10:00:00+08:00", Outcome::Allow),
        // Instants given in UTC: 01:15 UTC = 09:15 Shanghai.
        ("2026-03-02T01:14:59Z", Outcome::Allow),
        ("2026-03-02T01:15:00Z", Outcome::Block),
        // Not covered: the market may be in any phase.
        ("2027-01-04T12:00:00+08:00", Outcome::Block),
    ];
    for (s, o) in cases {
        let d = evaluate(&p, sse(), &c, at(s));
        assert_eq!(d.outcome, *o, "{s}: {}", d.reason_en);
    }
    let d = evaluate(&p, sse(), &c, at("2026-03-02T11:30:00+08:00"));
    assert!(
        d.reason_en.contains("during lunch break"),
        "{}",
        d.reason_en
    );
    assert!(d.reason_zh.contains("午间休市阶段"), "{}", d.reason_zh);
    let bad = PHASE_POLICY.replace("\"lunch_break\"", "\"siesta\"");
    let e = PolicySet::from_toml("phases.toml", &bad).unwrap_err();
    assert!(
        e.message_en().contains("phases.toml:12:"),
        "{}",
        e.message_en()
    );
    assert!(e.message_en().contains("policy[0].rule[1].phases[0]"));
}

#[test]
fn the_builtin_default_keeps_production_closed_while_the_market_is_open() {
    use ballast_calendar::bundled::{DEFAULT_POLICIES, DEFAULT_POLICIES_NAME};
    let p = PolicySet::from_toml(DEFAULT_POLICIES_NAME, DEFAULT_POLICIES).unwrap();
    const ID: &str = "builtin-prod-market-hours";
    let block = (Outcome::Block, Some(ID.to_string()));
    let warn = (Outcome::Warn, Some(ID.to_string()));
    let allow = (Outcome::Allow, None);
    // 2026-03-02 is an ordinary Monday, 2026-03-07 a Saturday, 2026-10-05 inside the National
    // Day closure.
    type Want = (Outcome, Option<String>);
    let cases: &[(&str, &str, Want)] = &[
        ("prod", "2026-03-02T08:29:59+08:00", allow.clone()),
        ("prod", "2026-03-02T08:30:00+08:00", warn.clone()),
        ("prod", "2026-03-02T09:00:00+08:00", block.clone()),
        ("prod", "2026-03-02T11:45:00+08:00", block.clone()),
        ("prod", "2026-03-02T15:29:59+08:00", block.clone()),
        ("prod", "2026-03-02T15:30:00+08:00", allow.clone()),
        ("production", "2026-03-02T10:00:00+08:00", block.clone()),
        ("prod", "2026-03-07T10:00:00+08:00", allow.clone()),
        ("prod", "2026-10-05T10:00:00+08:00", allow.clone()),
        ("test", "2026-03-02T10:00:00+08:00", allow.clone()),
        ("uat", "2026-03-02T10:00:00+08:00", allow.clone()),
    ];
    for (env, when, want) in cases {
        assert_eq!(
            &outcome(&p, &ctx(env, "", "job.run"), when),
            want,
            "{env} at {when}"
        );
    }
    // Reads are never governed by it.
    assert_eq!(
        outcome(
            &p,
            &ctx("prod", "", "read_only"),
            "2026-03-02T10:00:00+08:00"
        ),
        allow
    );
    let d = evaluate(
        &p,
        sse(),
        &ctx("prod", "", "job.run"),
        at("2026-03-02T10:00:00+08:00"),
    );
    assert!(
        d.reason_en.contains("change-windows.toml"),
        "{}",
        d.reason_en
    );
    assert!(d.reason_zh.contains("内置默认策略"), "{}", d.reason_zh);
}
