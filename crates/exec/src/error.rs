//! The crate's one error type. Every variant has a stable `code()` and messages in Chinese and
//! English for the person who will read them.

use crate::params::ParamError;
use crate::plan::PlanError;
use crate::script::VersionState;
use crate::target::TargetError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("unknown language `{0}` (expected bash, sh or python3)")]
    LanguageUnknown(String),
    #[error("unknown version state `{0}`")]
    VersionStateUnknown(String),
    #[error("a script version cannot go from {from} to {to}")]
    TransitionInvalid {
        from: VersionState,
        to: VersionState,
    },
    #[error("an approver is required")]
    ApproverMissing,
    #[error("`{approver}` wrote this version and cannot approve it (separation of duties)")]
    ApproverIsAuthor { approver: String },
    #[error("a {state} script version cannot run in a {} environment", if *production { "production" } else { "non-production" })]
    NotRunnable {
        state: VersionState,
        production: bool,
    },
    #[error("the script is {size} bytes; the limit is {max} bytes")]
    ScriptTooLarge { size: usize, max: usize },
    #[error("the script contains a NUL byte on line {line}")]
    ScriptNulByte { line: usize },
    #[error("bad batch expression `{expr}`: {reason}")]
    BatchInvalid { expr: String, reason: String },
    #[error("unknown variable `{name}` at byte {offset}")]
    TemplateUnknownVariable { name: String, offset: usize },
    #[error("variable defaults refer to each other in a cycle: {}", path.join(" → "))]
    VariableCycle { path: Vec<String> },
    #[error("{}", .0.message_en())]
    Target(#[from] TargetError),
    #[error("{} parameter problem(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Params(Vec<ParamError>),
    #[error("{} plan problem(s): {}", .0.len(), .0.iter().map(PlanError::message_en).collect::<Vec<_>>().join("; "))]
    Plan(Vec<PlanError>),
    #[error("cannot read the {format} document{}: {message}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Parse {
        format: &'static str,
        line: Option<usize>,
        message: String,
    },
    #[error("rule file{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Rules {
        line: Option<usize>,
        message: String,
    },
}

impl ExecError {
    /// Stable code, e.g. `exec.batch_invalid`.
    pub fn code(&self) -> &'static str {
        match self {
            ExecError::LanguageUnknown(_) => "exec.language_unknown",
            ExecError::VersionStateUnknown(_) => "exec.version_state_unknown",
            ExecError::TransitionInvalid { .. } => "exec.version_transition_invalid",
            ExecError::ApproverMissing => "exec.approver_missing",
            ExecError::ApproverIsAuthor { .. } => "exec.approver_is_author",
            ExecError::NotRunnable { .. } => "exec.version_not_runnable",
            ExecError::ScriptTooLarge { .. } => "exec.script_too_large",
            ExecError::ScriptNulByte { .. } => "exec.script_nul_byte",
            ExecError::BatchInvalid { .. } => "exec.batch_invalid",
            ExecError::TemplateUnknownVariable { .. } => "exec.variable_unknown",
            ExecError::VariableCycle { .. } => "exec.variable_cycle",
            ExecError::Target(e) => e.code(),
            ExecError::Params(_) => "exec.params_invalid",
            ExecError::Plan(_) => "exec.plan_invalid",
            ExecError::Parse { .. } => "exec.document_invalid",
            ExecError::Rules { .. } => "exec.rules_invalid",
        }
    }

    pub fn message_en(&self) -> String {
        self.to_string()
    }

    pub fn message_zh(&self) -> String {
        match self {
            ExecError::LanguageUnknown(l) => {
                format!("未知的脚本语言“{l}”（应为 bash、sh 或 python3）")
            }
            ExecError::VersionStateUnknown(s) => format!("未知的版本状态“{s}”"),
            ExecError::TransitionInvalid { from, to } => {
                format!("脚本版本不能从 {} 变为 {}", state_zh(*from), state_zh(*to))
            }
            ExecError::ApproverMissing => "需要指定审批人".to_string(),
            ExecError::ApproverIsAuthor { approver } => {
                format!("“{approver}”是该版本的作者，不能审批（职责分离）")
            }
            ExecError::NotRunnable { state, production } => format!(
                "{}的脚本版本不能在{}环境执行",
                state_zh(*state),
                if *production { "生产" } else { "非生产" }
            ),
            ExecError::ScriptTooLarge { size, max } => {
                format!("脚本大小为 {size} 字节，超过上限 {max} 字节")
            }
            ExecError::ScriptNulByte { line } => format!("脚本第 {line} 行包含 NUL 字节"),
            ExecError::BatchInvalid { expr, reason } => {
                format!("分批表达式“{expr}”无效：{reason}")
            }
            ExecError::TemplateUnknownVariable { name, offset } => {
                format!("未知变量“{name}”（第 {offset} 字节）")
            }
            ExecError::VariableCycle { path } => {
                format!("变量默认值之间存在循环引用：{}", path.join(" → "))
            }
            ExecError::Target(e) => e.message_zh(),
            ExecError::Params(errs) => format!(
                "{} 个参数问题：{}",
                errs.len(),
                errs.iter()
                    .map(ParamError::message_zh)
                    .collect::<Vec<_>>()
                    .join("；")
            ),
            ExecError::Plan(errs) => format!(
                "{} 个作业方案问题：{}",
                errs.len(),
                errs.iter()
                    .map(PlanError::message_zh)
                    .collect::<Vec<_>>()
                    .join("；")
            ),
            ExecError::Parse {
                format,
                line,
                message,
            } => format!(
                "无法读取 {format} 文档{}：{message}",
                line.map(|l| format!("（第 {l} 行）")).unwrap_or_default()
            ),
            ExecError::Rules { line, message } => format!(
                "规则文件{}：{message}",
                line.map(|l| format!("第 {l} 行")).unwrap_or_default()
            ),
        }
    }
}

fn state_zh(s: VersionState) -> &'static str {
    match s {
        VersionState::Draft => "草稿",
        VersionState::Online => "上线",
        VersionState::Offline => "下线",
        VersionState::Disabled => "禁用",
    }
}

/// 1-based line of a byte offset in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |t| t.matches('\n').count() + 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_messages_bilingual() {
        let errs = [
            ExecError::LanguageUnknown("x".into()),
            ExecError::TransitionInvalid {
                from: VersionState::Disabled,
                to: VersionState::Online,
            },
            ExecError::NotRunnable {
                state: VersionState::Draft,
                production: true,
            },
            ExecError::BatchInvalid {
                expr: "0".into(),
                reason: "must be at least 1".into(),
            },
            ExecError::Rules {
                line: Some(3),
                message: "bad".into(),
            },
        ];
        for e in &errs {
            assert!(e.code().starts_with("exec."));
            assert!(!e.message_zh().is_empty());
            assert!(!e.message_en().is_empty());
        }
        assert_eq!(
            errs[2].message_en(),
            "a draft script version cannot run in a production environment"
        );
        assert_eq!(errs[2].message_zh(), "草稿的脚本版本不能在生产环境执行");
        assert!(errs[4].message_en().contains("line 3"));
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a", 99), 1);
    }
}
