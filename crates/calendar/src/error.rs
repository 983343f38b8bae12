//! Errors of the calendar crate: stable codes and bilingual messages.

use std::fmt;

use chrono::NaiveDate;

/// One problem found in a data file (calendar, year or policy file).
///
/// `line` and `column` are 1-based and point at the offending key or value when the
/// TOML parser gave a span; they are `None` when the problem concerns the file as a
/// whole (e.g. two files declaring the same year).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationIssue {
    /// The file name (or `bundled:<path>` for embedded data).
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted path of the field, e.g. `closures[2].to`.
    pub field: String,
    pub message_zh: String,
    pub message_en: String,
}

impl ValidationIssue {
    fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{}:{}", self.file, l, c),
            (Some(l), None) => format!("{}:{}", self.file, l),
            _ => self.file.clone(),
        }
    }

    /// `file:line:col: field: message` in Chinese.
    pub fn render_zh(&self) -> String {
        format!(
            "{}: 字段 {}: {}",
            self.location(),
            self.field,
            self.message_zh
        )
    }

    /// `file:line:col: field: message` in English.
    pub fn render_en(&self) -> String {
        format!(
            "{}: field {}: {}",
            self.location(),
            self.field,
            self.message_en
        )
    }
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}", self.render_en(), self.render_zh())
    }
}

/// A non-empty list of validation issues.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationIssues(pub Vec<ValidationIssue>);

impl ValidationIssues {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, ValidationIssue> {
        self.0.iter()
    }
}

impl fmt::Display for ValidationIssues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// Errors of calendar queries, loading and schedules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The question concerns a year for which the calendar has no data: fail closed.
    #[error("calendar {calendar} not loaded for {year} / 交易日历 {calendar} 未加载 {year} 年数据")]
    NotCovered { calendar: String, year: i32 },

    #[error("unknown calendar {calendar} / 未知的交易日历 {calendar}")]
    UnknownCalendar { calendar: String },

    #[error("invalid calendar data / 交易日历数据无效:\n{0}")]
    Invalid(ValidationIssues),

    #[error(
        "calendar {calendar} defines no trading session for {date} / 交易日历 {calendar} 未定义 {date} 的交易时段"
    )]
    NoSession { calendar: String, date: NaiveDate },

    #[error("invalid date range {from}..{to} / 日期范围无效 {from}..{to}")]
    InvalidRange { from: NaiveDate, to: NaiveDate },

    #[error("invalid {unit} {value} / 无效的{unit_zh} {value}")]
    InvalidPeriod {
        unit: &'static str,
        unit_zh: &'static str,
        value: u32,
    },

    #[error(
        "invalid schedule expression {expression:?}: {message_en} / 调度表达式无效 {expression:?}：{message_zh}"
    )]
    InvalidSchedule {
        expression: String,
        message_en: String,
        message_zh: String,
    },
}

impl CalendarError {
    /// Stable, machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            CalendarError::NotCovered { .. } => "calendar.not_covered",
            CalendarError::UnknownCalendar { .. } => "calendar.unknown",
            CalendarError::Invalid(_) => "calendar.invalid_data",
            CalendarError::NoSession { .. } => "calendar.no_session",
            CalendarError::InvalidRange { .. } => "calendar.invalid_range",
            CalendarError::InvalidPeriod { .. } => "calendar.invalid_period",
            CalendarError::InvalidSchedule { .. } => "calendar.invalid_schedule",
        }
    }

    /// The message in Chinese.
    pub fn message_zh(&self) -> String {
        match self {
            CalendarError::NotCovered { calendar, year } => {
                format!("交易日历 {calendar} 未加载 {year} 年数据")
            }
            CalendarError::UnknownCalendar { calendar } => format!("未知的交易日历 {calendar}"),
            CalendarError::Invalid(issues) => {
                let lines: Vec<String> = issues.iter().map(|i| i.render_zh()).collect();
                format!("交易日历数据无效：\n{}", lines.join("\n"))
            }
            CalendarError::NoSession { calendar, date } => {
                format!("交易日历 {calendar} 未定义 {date} 的交易时段")
            }
            CalendarError::InvalidRange { from, to } => {
                format!("日期范围无效：{from} 晚于 {to}")
            }
            CalendarError::InvalidPeriod { unit_zh, value, .. } => {
                format!("无效的{unit_zh} {value}")
            }
            CalendarError::InvalidSchedule {
                expression,
                message_zh,
                ..
            } => format!("调度表达式无效 \"{expression}\"：{message_zh}"),
        }
    }

    /// The message in English.
    pub fn message_en(&self) -> String {
        match self {
            CalendarError::NotCovered { calendar, year } => {
                format!("calendar {calendar} not loaded for {year}")
            }
            CalendarError::UnknownCalendar { calendar } => format!("unknown calendar {calendar}"),
            CalendarError::Invalid(issues) => {
                let lines: Vec<String> = issues.iter().map(|i| i.render_en()).collect();
                format!("invalid calendar data:\n{}", lines.join("\n"))
            }
            CalendarError::NoSession { calendar, date } => {
                format!("calendar {calendar} defines no trading session for {date}")
            }
            CalendarError::InvalidRange { from, to } => {
                format!("invalid date range: {from} is after {to}")
            }
            CalendarError::InvalidPeriod { unit, value, .. } => format!("invalid {unit} {value}"),
            CalendarError::InvalidSchedule {
                expression,
                message_en,
                ..
            } => format!("invalid schedule expression \"{expression}\": {message_en}"),
        }
    }
}

/// Errors of the policy model and of emergency overrides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid change-window policy / 变更窗口策略无效:\n{0}")]
    Invalid(ValidationIssues),

    #[error("an override needs a reason / 紧急放行必须填写原因")]
    OverrideReasonMissing,

    #[error(
        "the approver {user} cannot approve their own override request / 审批人 {user} 不能审批自己提交的紧急放行申请"
    )]
    OverrideSelfApproval { user: String },

    #[error(
        "the approver {user} lacks the permission {permission} / 审批人 {user} 没有权限 {permission}"
    )]
    OverrideApproverLacksPermission { user: String, permission: String },

    #[error(
        "override time box is invalid: valid_until must be after valid_from and at most {max_hours} hours later / 紧急放行时间窗无效：结束时间必须晚于开始时间且不超过 {max_hours} 小时"
    )]
    OverrideTimeBoxInvalid { max_hours: i64 },

    #[error("override {id} is not valid yet / 紧急放行 {id} 尚未生效")]
    OverrideNotYetValid { id: String },

    #[error("override {id} has expired / 紧急放行 {id} 已过期")]
    OverrideExpired { id: String },
}

impl PolicyError {
    /// Stable, machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::Invalid(_) => "policy.invalid",
            PolicyError::OverrideReasonMissing => "override.reason_missing",
            PolicyError::OverrideSelfApproval { .. } => "override.self_approval",
            PolicyError::OverrideApproverLacksPermission { .. } => {
                "override.approver_lacks_permission"
            }
            PolicyError::OverrideTimeBoxInvalid { .. } => "override.time_box_invalid",
            PolicyError::OverrideNotYetValid { .. } => "override.not_yet_valid",
            PolicyError::OverrideExpired { .. } => "override.expired",
        }
    }

    /// The message in Chinese.
    pub fn message_zh(&self) -> String {
        match self {
            PolicyError::Invalid(issues) => {
                let lines: Vec<String> = issues.iter().map(|i| i.render_zh()).collect();
                format!("变更窗口策略无效：\n{}", lines.join("\n"))
            }
            PolicyError::OverrideReasonMissing => "紧急放行必须填写原因".to_string(),
            PolicyError::OverrideSelfApproval { user } => {
                format!("审批人 {user} 不能审批自己提交的紧急放行申请")
            }
            PolicyError::OverrideApproverLacksPermission { user, permission } => {
                format!("审批人 {user} 没有权限 {permission}")
            }
            PolicyError::OverrideTimeBoxInvalid { max_hours } => {
                format!("紧急放行时间窗无效：结束时间必须晚于开始时间且不超过 {max_hours} 小时")
            }
            PolicyError::OverrideNotYetValid { id } => format!("紧急放行 {id} 尚未生效"),
            PolicyError::OverrideExpired { id } => format!("紧急放行 {id} 已过期"),
        }
    }

    /// The message in English.
    pub fn message_en(&self) -> String {
        match self {
            PolicyError::Invalid(issues) => {
                let lines: Vec<String> = issues.iter().map(|i| i.render_en()).collect();
                format!("invalid change-window policy:\n{}", lines.join("\n"))
            }
            PolicyError::OverrideReasonMissing => "an override needs a reason".to_string(),
            PolicyError::OverrideSelfApproval { user } => {
                format!("the approver {user} cannot approve their own override request")
            }
            PolicyError::OverrideApproverLacksPermission { user, permission } => {
                format!("the approver {user} lacks the permission {permission}")
            }
            PolicyError::OverrideTimeBoxInvalid { max_hours } => format!(
                "override time box is invalid: valid_until must be after valid_from and at most {max_hours} hours later"
            ),
            PolicyError::OverrideNotYetValid { id } => format!("override {id} is not valid yet"),
            PolicyError::OverrideExpired { id } => format!("override {id} has expired"),
        }
    }
}

/// Errors serialize as `{code, message_zh, message_en}` (the API error shape).
impl serde::Serialize for CalendarError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("CalendarError", 3)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("message_zh", &self.message_zh())?;
        st.serialize_field("message_en", &self.message_en())?;
        st.end()
    }
}

impl serde::Serialize for PolicyError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("PolicyError", 3)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("message_zh", &self.message_zh())?;
        st.serialize_field("message_en", &self.message_en())?;
        st.end()
    }
}
