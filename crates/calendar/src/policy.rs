//! Change-window policies and the guard function `evaluate`.
//!
//! A policy selects operations by environment, business system, tier and kind, and
//! holds rules that say on which days and at what local times those operations are
//! `warn` (need acknowledgement) or `block`. The most restrictive matching rule wins.
//! A date the calendar does not cover counts as "the market may be open": every day
//! condition is taken as possibly met, and the decision says so.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::calendar::Calendar;
use crate::error::{CalendarError, PolicyError, ValidationIssue, ValidationIssues};
use crate::model::Phase;
use crate::toml_support::{Checker, is_identifier, parse_time_of_day};

/// The permission an approver of an emergency override must hold.
pub const OVERRIDE_APPROVER_PERMISSION: &str = "change_window.override.approve";

/// The longest time box an override may have.
pub const MAX_OVERRIDE_HOURS: i64 = 24;

/// The result of evaluating the change window, ordered from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    /// Allowed after an explicit acknowledgement.
    Warn,
    Block,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Warn => "warn",
            Outcome::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "allow" => Some(Outcome::Allow),
            "warn" => Some(Outcome::Warn),
            "block" => Some(Outcome::Block),
            _ => None,
        }
    }

    fn verb_zh(self) -> &'static str {
        match self {
            Outcome::Allow => "允许操作",
            Outcome::Warn => "操作需确认（警告）",
            Outcome::Block => "禁止操作",
        }
    }

    fn verb_en(self) -> &'static str {
        match self {
            Outcome::Allow => "operations are allowed",
            Outcome::Warn => "operations need acknowledgement (warn)",
            Outcome::Block => "operations are blocked",
        }
    }
}

/// Which operations a policy (or an override) applies to. An empty list matches any value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Target {
    pub environments: Vec<String>,
    pub business_systems: Vec<String>,
    pub tiers: Vec<String>,
    pub kinds: Vec<String>,
    /// Kinds excluded even if `kinds` matches (e.g. `read_only`).
    pub exclude_kinds: Vec<String>,
}

impl Target {
    pub fn matches(&self, ctx: &OperationContext) -> bool {
        fn any_or(list: &[String], v: &str) -> bool {
            list.is_empty() || list.iter().any(|x| x == v)
        }
        any_or(&self.environments, &ctx.environment)
            && any_or(&self.business_systems, &ctx.business_system)
            && any_or(&self.tiers, &ctx.tier)
            && any_or(&self.kinds, &ctx.kind)
            && !self.exclude_kinds.iter().any(|k| k == &ctx.kind)
    }
}

/// On which days a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "days", rename_all = "snake_case")]
pub enum DaySelector {
    Any,
    Trading,
    NonTrading,
    /// The last trading day before a holiday of at least `min_days` calendar days.
    LastTradingDayBeforeClosure {
        min_days: u32,
    },
    /// The first trading day after a holiday of at least `min_days` calendar days.
    FirstTradingDayAfterClosure {
        min_days: u32,
    },
}

impl DaySelector {
    fn describe_zh(self) -> String {
        match self {
            DaySelector::Any => "每天".to_string(),
            DaySelector::Trading => "交易日".to_string(),
            DaySelector::NonTrading => "非交易日".to_string(),
            DaySelector::LastTradingDayBeforeClosure { min_days } => {
                format!("{min_days} 天及以上休市前的最后一个交易日")
            }
            DaySelector::FirstTradingDayAfterClosure { min_days } => {
                format!("{min_days} 天及以上休市后的第一个交易日")
            }
        }
    }

    fn describe_en(self) -> String {
        match self {
            DaySelector::Any => "every day".to_string(),
            DaySelector::Trading => "trading days".to_string(),
            DaySelector::NonTrading => "non-trading days".to_string(),
            DaySelector::LastTradingDayBeforeClosure { min_days } => {
                format!("the last trading day before a closure of {min_days}+ days")
            }
            DaySelector::FirstTradingDayAfterClosure { min_days } => {
                format!("the first trading day after a closure of {min_days}+ days")
            }
        }
    }

    /// Whether the selector holds on `date`; `Err(NotCovered)` when the calendar cannot say.
    fn holds(self, cal: &Calendar, date: NaiveDate) -> Result<bool, CalendarError> {
        match self {
            DaySelector::Any => Ok(true),
            DaySelector::Trading => cal.is_trading_day(date),
            DaySelector::NonTrading => Ok(!cal.is_trading_day(date)?),
            DaySelector::LastTradingDayBeforeClosure { min_days } => {
                cal.is_last_trading_day_before_closure(date, min_days)
            }
            DaySelector::FirstTradingDayAfterClosure { min_days } => {
                cal.is_first_trading_day_after_closure(date, min_days)
            }
        }
    }
}

/// `[from, to)` in the calendar's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeWindow {
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl TimeWindow {
    pub fn contains(&self, t: NaiveTime) -> bool {
        self.from <= t && t < self.to
    }
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub outcome: Outcome,
    pub days: DaySelector,
    /// `None` = the whole day.
    pub window: Option<TimeWindow>,
    /// Market phases the rule applies in (empty = any phase). On a non-trading day
    /// the phase is `closed`.
    pub phases: Vec<Phase>,
    pub reason_zh: Option<String>,
    pub reason_en: Option<String>,
}

/// A named policy: a target and its rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub id: String,
    pub description_zh: Option<String>,
    pub description_en: Option<String>,
    pub target: Target,
    pub rules: Vec<Rule>,
}

/// The operation asking to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationContext {
    pub environment: String,
    pub business_system: String,
    pub tier: String,
    pub kind: String,
}

/// Policies in force and the approved emergency overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
    pub overrides: Vec<Override>,
}

/// The decision of the change-window guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// The policy whose rule decided (`None` when no rule applied).
    pub policy_id: Option<String>,
    /// Index of the deciding rule in that policy.
    pub rule_index: Option<usize>,
    pub reason_zh: String,
    pub reason_en: String,
    /// `false` when the calendar did not cover the date and the guard assumed the
    /// market may be open.
    pub calendar_covered: bool,
    /// Set when an approved override turned a `warn`/`block` into `allow`.
    pub override_id: Option<String>,
    /// The outcome the policies gave before the override.
    pub overridden_outcome: Option<Outcome>,
}

/// An approved, time-boxed emergency override. Only [`Override::approve`] makes one,
/// so every `Override` satisfies the separation-of-duties rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Override {
    id: String,
    reason: String,
    requester: String,
    approver: String,
    scope: Target,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
}

/// A request for an emergency override, before approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRequest {
    pub id: String,
    pub reason: String,
    pub requester: String,
    /// The operations it covers (empty lists = any; keep it narrow).
    pub scope: Target,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

/// The person approving an override and the permissions they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub user: String,
    pub permissions: Vec<String>,
}

impl Override {
    /// Approves a request: needs a reason, an approver other than the requester who
    /// holds [`OVERRIDE_APPROVER_PERMISSION`], and a time box of at most
    /// [`MAX_OVERRIDE_HOURS`] hours.
    pub fn approve(request: OverrideRequest, approver: &Approver) -> Result<Override, PolicyError> {
        if request.reason.trim().is_empty() {
            return Err(PolicyError::OverrideReasonMissing);
        }
        if approver.user.trim() == request.requester.trim() {
            return Err(PolicyError::OverrideSelfApproval {
                user: approver.user.clone(),
            });
        }
        if !approver
            .permissions
            .iter()
            .any(|p| p == OVERRIDE_APPROVER_PERMISSION)
        {
            return Err(PolicyError::OverrideApproverLacksPermission {
                user: approver.user.clone(),
                permission: OVERRIDE_APPROVER_PERMISSION.to_string(),
            });
        }
        if request.valid_until <= request.valid_from
            || request.valid_until - request.valid_from > Duration::hours(MAX_OVERRIDE_HOURS)
        {
            return Err(PolicyError::OverrideTimeBoxInvalid {
                max_hours: MAX_OVERRIDE_HOURS,
            });
        }
        Ok(Override {
            id: request.id,
            reason: request.reason.trim().to_string(),
            requester: request.requester,
            approver: approver.user.clone(),
            scope: request.scope,
            valid_from: request.valid_from,
            valid_until: request.valid_until,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn reason(&self) -> &str {
        &self.reason
    }
    pub fn requester(&self) -> &str {
        &self.requester
    }
    pub fn approver(&self) -> &str {
        &self.approver
    }
    pub fn scope(&self) -> &Target {
        &self.scope
    }
    pub fn valid_from(&self) -> DateTime<Utc> {
        self.valid_from
    }
    pub fn valid_until(&self) -> DateTime<Utc> {
        self.valid_until
    }

    /// `Ok` if `instant` is inside `[valid_from, valid_until)`.
    pub fn check_valid_at(&self, instant: DateTime<Utc>) -> Result<(), PolicyError> {
        if instant < self.valid_from {
            Err(PolicyError::OverrideNotYetValid {
                id: self.id.clone(),
            })
        } else if instant >= self.valid_until {
            Err(PolicyError::OverrideExpired {
                id: self.id.clone(),
            })
        } else {
            Ok(())
        }
    }

    pub fn applies_to(&self, ctx: &OperationContext) -> bool {
        self.scope.matches(ctx)
    }
}

struct Matched<'a> {
    policy: &'a Policy,
    rule_index: usize,
    rule: &'a Rule,
    /// Set when the day condition could not be decided (data not loaded) and was
    /// taken as met.
    uncertain: Option<CalendarError>,
}

fn window_text(w: &Option<TimeWindow>, phases: &[Phase]) -> (String, String) {
    let (mut zh, mut en) = match w {
        Some(w) => {
            let t = format!("{}–{}", w.from.format("%H:%M"), w.to.format("%H:%M"));
            (t.clone(), t)
        }
        None if phases.is_empty() => ("全天".to_string(), "all day".to_string()),
        None => (String::new(), String::new()),
    };
    if !phases.is_empty() {
        let pz: Vec<&str> = phases.iter().map(|p| p.label_zh()).collect();
        let pe: Vec<&str> = phases.iter().map(|p| p.label_en()).collect();
        if !zh.is_empty() {
            zh.push('，');
            en.push_str(", ");
        }
        zh.push_str(&format!("{}阶段", pz.join("、")));
        en.push_str(&format!("during {}", pe.join(", ")));
    }
    (zh, format!("{en} "))
}

/// The guard: evaluates the change window for `ctx` at `instant`.
///
/// Most restrictive matching rule wins (block > warn > allow; ties go to the first in
/// file order). On a date the calendar does not cover, each day condition counts as
/// possibly met, so any rule that could block on a trading day blocks, and the reason
/// says the calendar did not cover the date. A valid approved override whose scope
/// matches turns `warn`/`block` into `allow` and is named in the decision.
pub fn evaluate(
    policies: &PolicySet,
    calendar: &Calendar,
    ctx: &OperationContext,
    instant: DateTime<Utc>,
) -> Decision {
    let local = instant.with_timezone(&calendar.timezone()).naive_local();
    let date = local.date();
    let time = local.time();
    let day = calendar.day_info(date);
    let (covered, day_zh, day_en) = match &day {
        Ok(d) => (true, d.describe_zh(), d.describe_en()),
        Err(e) => (
            false,
            format!("{}，按可能开市处理", e.message_zh()),
            format!("{}; treating the market as possibly open", e.message_en()),
        ),
    };
    let at_zh = format!(
        "{} {}（{}）{}",
        date,
        time.format("%H:%M:%S"),
        calendar.id(),
        day_zh
    );
    let at_en = format!(
        "{} {} ({}) {}",
        date,
        time.format("%H:%M:%S"),
        calendar.id(),
        day_en
    );

    let mut best: Option<Matched<'_>> = None;
    for policy in &policies.policies {
        if !policy.target.matches(ctx) {
            continue;
        }
        for (rule_index, rule) in policy.rules.iter().enumerate() {
            if let Some(w) = &rule.window
                && !w.contains(time)
            {
                continue;
            }
            let (holds, mut uncertain) = match rule.days.holds(calendar, date) {
                Ok(h) => (h, None),
                // Fail closed: an uncovered date may be a trading day, a day before a
                // holiday, anything.
                Err(e) => (true, Some(e)),
            };
            if !holds {
                continue;
            }
            if !rule.phases.is_empty() {
                match calendar.phase_at(&instant) {
                    Ok(p) if rule.phases.contains(&p.phase) => {}
                    Ok(_) => continue,
                    // Unknown phase (date not covered): the market may be in it.
                    Err(e) => uncertain = uncertain.or(Some(e)),
                }
            }
            let better = match &best {
                None => true,
                Some(b) => rule.outcome > b.rule.outcome,
            };
            if better {
                best = Some(Matched {
                    policy,
                    rule_index,
                    rule,
                    uncertain,
                });
            }
        }
    }

    let mut decision = match best {
        None => Decision {
            outcome: Outcome::Allow,
            policy_id: None,
            rule_index: None,
            reason_zh: format!("{at_zh}：没有适用的变更窗口规则，允许操作"),
            reason_en: format!("{at_en}: no change-window rule applies; allowed"),
            calendar_covered: covered,
            override_id: None,
            overridden_outcome: None,
        },
        Some(m) => {
            let (w_zh, w_en) = window_text(&m.rule.window, &m.rule.phases);
            let rule_zh = m.rule.reason_zh.clone().unwrap_or_else(|| {
                format!(
                    "{} {}，{}",
                    m.rule.days.describe_zh(),
                    w_zh,
                    m.rule.outcome.verb_zh()
                )
            });
            let rule_en = m.rule.reason_en.clone().unwrap_or_else(|| {
                format!(
                    "on {} {}{}",
                    m.rule.days.describe_en(),
                    w_en,
                    m.rule.outcome.verb_en()
                )
            });
            // The day itself is covered but the rule needed data beyond it (e.g. whether
            // a holiday follows the last covered day).
            let (unc_zh, unc_en) = match (&m.uncertain, covered) {
                (Some(e), true) => (
                    format!("；无法判断日期条件（{}），按满足处理", e.message_zh()),
                    format!(
                        "; the day condition could not be decided ({}), so it is treated as met",
                        e.message_en()
                    ),
                ),
                _ => (String::new(), String::new()),
            };
            Decision {
                outcome: m.rule.outcome,
                policy_id: Some(m.policy.id.clone()),
                rule_index: Some(m.rule_index),
                reason_zh: format!(
                    "{at_zh}：{rule_zh}（策略 {}，规则 {}）{unc_zh}",
                    m.policy.id, m.rule_index
                ),
                reason_en: format!(
                    "{at_en}: {rule_en} (policy {}, rule {}){unc_en}",
                    m.policy.id, m.rule_index
                ),
                calendar_covered: covered && m.uncertain.is_none(),
                override_id: None,
                overridden_outcome: None,
            }
        }
    };

    if decision.outcome > Outcome::Allow {
        let mut notes_zh = Vec::new();
        let mut notes_en = Vec::new();
        for ov in policies.overrides.iter().filter(|o| o.applies_to(ctx)) {
            match ov.check_valid_at(instant) {
                Ok(()) => {
                    decision.overridden_outcome = Some(decision.outcome);
                    decision.outcome = Outcome::Allow;
                    decision.override_id = Some(ov.id.clone());
                    decision.reason_zh = format!(
                        "{}；紧急放行 {} 生效（申请人 {}，审批人 {}，有效期 {} 至 {}，原因：{}），允许操作",
                        decision.reason_zh,
                        ov.id,
                        ov.requester,
                        ov.approver,
                        ov.valid_from.to_rfc3339(),
                        ov.valid_until.to_rfc3339(),
                        ov.reason
                    );
                    decision.reason_en = format!(
                        "{}; emergency override {} applies (requested by {}, approved by {}, valid {} to {}, reason: {}): allowed",
                        decision.reason_en,
                        ov.id,
                        ov.requester,
                        ov.approver,
                        ov.valid_from.to_rfc3339(),
                        ov.valid_until.to_rfc3339(),
                        ov.reason
                    );
                    return decision;
                }
                Err(e) => {
                    notes_zh.push(e.message_zh());
                    notes_en.push(e.message_en());
                }
            }
        }
        if !notes_zh.is_empty() {
            decision.reason_zh = format!("{}；{}", decision.reason_zh, notes_zh.join("；"));
            decision.reason_en = format!("{}; {}", decision.reason_en, notes_en.join("; "));
        }
    }
    decision
}

// ---------------------------------------------------------------------------
// The policy file format (TOML).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicyFile {
    schema: Spanned<i64>,
    #[serde(default)]
    policy: Vec<Spanned<RawPolicy>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    id: Spanned<String>,
    #[serde(default)]
    description_zh: Option<String>,
    #[serde(default)]
    description_en: Option<String>,
    #[serde(default)]
    environments: Vec<String>,
    #[serde(default)]
    business_systems: Vec<String>,
    #[serde(default)]
    tiers: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    exclude_kinds: Vec<String>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    outcome: Spanned<String>,
    #[serde(default)]
    days: Option<Spanned<String>>,
    #[serde(default)]
    min_closure_days: Option<Spanned<i64>>,
    #[serde(default)]
    from: Option<Spanned<toml::Value>>,
    #[serde(default)]
    to: Option<Spanned<toml::Value>>,
    #[serde(default)]
    phases: Vec<Spanned<String>>,
    #[serde(default)]
    reason_zh: Option<String>,
    #[serde(default)]
    reason_en: Option<String>,
}

impl PolicySet {
    /// Parses and validates a policy file (no overrides: those come from approvals).
    pub fn from_toml(file: &str, text: &str) -> Result<PolicySet, PolicyError> {
        parse_policies(file, text)
            .map(|policies| PolicySet {
                policies,
                overrides: Vec::new(),
            })
            .map_err(|i| PolicyError::Invalid(ValidationIssues(i)))
    }
}

fn parse_policies(file: &str, text: &str) -> Result<Vec<Policy>, Vec<ValidationIssue>> {
    let mut ck = Checker::new(file, text);
    let raw: RawPolicyFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            ck.toml_error(&e);
            return Err(ck.issues);
        }
    };
    if *raw.schema.get_ref() != 1 {
        ck.issue(
            Some(raw.schema.span()),
            "schema",
            format!("不支持的 schema 版本 {}，应为 1", raw.schema.get_ref()),
            format!(
                "unsupported schema version {}, expected 1",
                raw.schema.get_ref()
            ),
        );
    }
    let mut policies: Vec<Policy> = Vec::new();
    for (pi, p) in raw.policy.iter().enumerate() {
        let p_span = p.span();
        let p = p.get_ref();
        let id = p.id.get_ref().trim().to_string();
        if !is_identifier(&id) {
            ck.issue(
                Some(p.id.span()),
                format!("policy[{pi}].id"),
                format!("策略标识 \"{id}\" 无效：只能用小写字母、数字、- 和 _"),
                format!("invalid policy id \"{id}\": use lower-case letters, digits, - and _"),
            );
        } else if policies.iter().any(|q| q.id == id) {
            ck.issue(
                Some(p.id.span()),
                format!("policy[{pi}].id"),
                format!("策略标识 \"{id}\" 重复"),
                format!("duplicate policy id \"{id}\""),
            );
        }
        if p.rule.is_empty() {
            ck.issue(
                Some(p_span),
                format!("policy[{pi}].rule"),
                "策略至少需要一条 [[policy.rule]]",
                "a policy needs at least one [[policy.rule]]",
            );
        }
        let mut rules = Vec::new();
        for (ri, r) in p.rule.iter().enumerate() {
            let r_span = r.span();
            let r = r.get_ref();
            let base = format!("policy[{pi}].rule[{ri}]");
            let outcome = Outcome::parse(r.outcome.get_ref());
            if outcome.is_none() {
                ck.issue(
                    Some(r.outcome.span()),
                    format!("{base}.outcome"),
                    format!(
                        "未知结果 \"{}\"，可选 allow、warn、block",
                        r.outcome.get_ref()
                    ),
                    format!(
                        "unknown outcome \"{}\", expected allow, warn or block",
                        r.outcome.get_ref()
                    ),
                );
            }
            let days_name = r
                .days
                .as_ref()
                .map(|d| d.get_ref().as_str())
                .unwrap_or("any");
            let closure_selector = matches!(
                days_name,
                "last_trading_day_before_closure" | "first_trading_day_after_closure"
            );
            let min_days = match &r.min_closure_days {
                None => Some(1u32),
                Some(m) if !closure_selector => {
                    ck.issue(
                        Some(m.span()),
                        format!("{base}.min_closure_days"),
                        "min_closure_days 只能与 last_trading_day_before_closure 或 first_trading_day_after_closure 一起使用",
                        "min_closure_days only goes with last_trading_day_before_closure or first_trading_day_after_closure",
                    );
                    None
                }
                Some(m) => match u32::try_from(*m.get_ref()) {
                    Ok(v) if (1..=60).contains(&v) => Some(v),
                    _ => {
                        ck.issue(
                            Some(m.span()),
                            format!("{base}.min_closure_days"),
                            "min_closure_days 应在 1 到 60 之间",
                            "min_closure_days must be between 1 and 60",
                        );
                        None
                    }
                },
            };
            let days = match (days_name, min_days) {
                ("any", _) => Some(DaySelector::Any),
                ("trading", _) => Some(DaySelector::Trading),
                ("non_trading", _) => Some(DaySelector::NonTrading),
                ("last_trading_day_before_closure", Some(m)) => {
                    Some(DaySelector::LastTradingDayBeforeClosure { min_days: m })
                }
                ("first_trading_day_after_closure", Some(m)) => {
                    Some(DaySelector::FirstTradingDayAfterClosure { min_days: m })
                }
                (_, None) if closure_selector => None,
                (other, _) => {
                    let span = r.days.as_ref().map(|d| d.span()).unwrap_or(r_span.clone());
                    ck.issue(
                        Some(span),
                        format!("{base}.days"),
                        format!(
                            "未知日期条件 \"{other}\"，可选 any、trading、non_trading、last_trading_day_before_closure、first_trading_day_after_closure"
                        ),
                        format!(
                            "unknown day condition \"{other}\", expected any, trading, non_trading, last_trading_day_before_closure or first_trading_day_after_closure"
                        ),
                    );
                    None
                }
            };
            let window = match (&r.from, &r.to) {
                (None, None) => Some(None),
                (Some(f), Some(t)) => {
                    let from = ck.time(f, &format!("{base}.from"));
                    let to = time_or_24(&mut ck, t, &format!("{base}.to"));
                    match (from, to) {
                        (Some(from), Some(to)) if from < to => Some(Some(TimeWindow { from, to })),
                        (Some(from), Some(to)) => {
                            ck.issue(
                                Some(t.span()),
                                format!("{base}.to"),
                                format!(
                                    "结束时刻 {to} 必须晚于开始时刻 {from}（跨午夜请拆成两条规则）"
                                ),
                                format!(
                                    "to {to} must be after from {from} (split a window across midnight into two rules)"
                                ),
                            );
                            None
                        }
                        _ => None,
                    }
                }
                (Some(f), None) | (None, Some(f)) => {
                    ck.issue(
                        Some(f.span()),
                        &base,
                        "from 与 to 必须同时给出（都不写表示全天）",
                        "give both from and to (neither means the whole day)",
                    );
                    None
                }
            };
            let mut phases = Vec::new();
            let mut phases_ok = true;
            for (phi, ph) in r.phases.iter().enumerate() {
                match Phase::parse(ph.get_ref()) {
                    Some(p) => phases.push(p),
                    None => {
                        phases_ok = false;
                        let names: Vec<&str> = Phase::CONFIGURABLE
                            .iter()
                            .chain([Phase::Closed].iter())
                            .map(|p| p.as_str())
                            .collect();
                        ck.issue(
                            Some(ph.span()),
                            format!("{base}.phases[{phi}]"),
                            format!("未知阶段 \"{}\"，可选：{}", ph.get_ref(), names.join("、")),
                            format!(
                                "unknown phase \"{}\", expected one of: {}",
                                ph.get_ref(),
                                names.join(", ")
                            ),
                        );
                    }
                }
            }
            if let (Some(outcome), Some(days), Some(window), true) =
                (outcome, days, window, phases_ok)
            {
                rules.push(Rule {
                    outcome,
                    days,
                    window,
                    phases,
                    reason_zh: r.reason_zh.clone(),
                    reason_en: r.reason_en.clone(),
                });
            }
        }
        policies.push(Policy {
            id,
            description_zh: p.description_zh.clone(),
            description_en: p.description_en.clone(),
            target: Target {
                environments: p.environments.clone(),
                business_systems: p.business_systems.clone(),
                tiers: p.tiers.clone(),
                kinds: p.kinds.clone(),
                exclude_kinds: p.exclude_kinds.clone(),
            },
            rules,
        });
    }
    ck.into_result(policies)
}

/// Like [`Checker::time`] but also accepts `"24:00"` as the end of the day.
fn time_or_24(ck: &mut Checker<'_>, v: &Spanned<toml::Value>, field: &str) -> Option<NaiveTime> {
    if let toml::Value::String(s) = v.get_ref()
        && (s.trim() == "24:00" || s.trim() == "24:00:00")
    {
        return NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999);
    }
    if let toml::Value::String(s) = v.get_ref()
        && parse_time_of_day(s).is_some()
    {
        return parse_time_of_day(s);
    }
    ck.time(v, field)
}
