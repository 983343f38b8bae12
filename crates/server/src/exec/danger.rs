//! The dangerous-content stage of the guard pipeline: every script and command an action would
//! run is parsed and matched against the rules (`ballast_exec::danger`), whatever the entry point.
//! `block` denies; `require_approval` asks for a second person; `warn` must be acknowledged.
//!
//! The rules are the built-in defaults unless a platform admin saved others (setting
//! `danger.rules`, TOML text, changed through `service::set_danger_rules` and audited). Each
//! replica reloads them every ten seconds and right after a change it made.

use std::sync::RwLock;

use ballast_core::Problem;
use ballast_core::guard::{ActionKind, Check, GuardContext, Stage, Verdict};
use ballast_exec::Language;
use ballast_exec::danger::{self, Rule, RuleAction};
use ballast_store::Store;

pub const SETTING: &str = "danger.rules";

#[derive(Debug)]
pub struct RuleSet {
    rules: RwLock<Vec<Rule>>,
    /// The TOML the rules came from (`None` = built-in defaults).
    source: RwLock<Option<String>>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            rules: RwLock::new(danger::default_rules()),
            source: RwLock::new(None),
        }
    }
}

impl RuleSet {
    pub fn rules(&self) -> Vec<Rule> {
        self.rules.read().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn source(&self) -> Option<String> {
        self.source.read().ok().and_then(|s| s.clone())
    }

    pub fn set(&self, rules: Vec<Rule>, source: Option<String>) {
        if let Ok(mut r) = self.rules.write() {
            *r = rules;
        }
        if let Ok(mut s) = self.source.write() {
            *s = source;
        }
    }

    /// Re-reads the saved rules; keeps the current ones if the setting is unreadable.
    pub async fn reload(&self, store: &dyn Store) {
        match store.setting(SETTING).await {
            Ok(Some(row)) => {
                let Some(text) = row.value.as_str() else {
                    tracing::warn!("setting {SETTING} is not a string; keeping current rules");
                    return;
                };
                match danger::rules_from_toml(text) {
                    Ok(rules) => self.set(rules, Some(text.to_string())),
                    Err(e) => tracing::warn!("setting {SETTING}: {e}; keeping current rules"),
                }
            }
            Ok(None) => self.set(danger::default_rules(), None),
            Err(e) => tracing::warn!("reading {SETTING}: {e}"),
        }
    }
}

/// The pipeline check.
pub struct DangerCheck(pub std::sync::Arc<RuleSet>);

impl Check for DangerCheck {
    fn stage(&self) -> Stage {
        Stage::DangerousContent
    }

    fn check(&self, ctx: &GuardContext<'_>) -> Verdict {
        if ctx.action.kind != ActionKind::Execute || ctx.action.content.is_empty() {
            return Verdict::Pass;
        }
        let rules = self.0.rules();
        let mut worst: Option<RuleAction> = None;
        let mut lines_zh = Vec::new();
        let mut lines_en = Vec::new();
        for c in &ctx.action.content {
            let scan = match Language::parse(&c.language) {
                Ok(lang) => danger::scan(lang, &c.text, &rules),
                Err(_) if c.language == "sql" => danger::scan_sql(&c.text, &rules),
                Err(_) => {
                    return Verdict::Deny {
                        problem: Problem::new(
                            "danger.unknown_language",
                            format!("{}：无法检查的语言 {}", c.label, c.language),
                            format!("{}: cannot inspect language {}", c.label, c.language),
                        ),
                    };
                }
            };
            for f in &scan.findings {
                worst = Some(worst.map_or(f.action, |w| w.max(f.action)));
                lines_zh.push(format!(
                    "{} 第 {} 行 `{}`：{}（{}）",
                    c.label, f.line, f.command, f.message_zh, f.rule_id
                ));
                lines_en.push(format!(
                    "{} line {} `{}`: {} ({})",
                    c.label, f.line, f.command, f.message_en, f.rule_id
                ));
            }
        }
        let zh = lines_zh.join("；");
        let en = lines_en.join("; ");
        match worst {
            None => Verdict::Pass,
            Some(RuleAction::Block) => Verdict::Deny {
                problem: Problem::new(
                    "danger.blocked",
                    format!("高危命令已阻断：{zh}"),
                    format!("dangerous command blocked: {en}"),
                ),
            },
            Some(RuleAction::RequireApproval) => Verdict::NeedsApproval {
                message_zh: format!("高危命令需另一人审批：{zh}"),
                message_en: format!("dangerous command needs a second person's approval: {en}"),
            },
            Some(RuleAction::Warn) => Verdict::Warn {
                message_zh: format!("高危命令提示：{zh}"),
                message_en: format!("dangerous command warning: {en}"),
            },
        }
    }
}
