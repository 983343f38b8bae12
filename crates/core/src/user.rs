//! Users: real-name accounts, employees or outsourced staff (standard 7.2.5).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

pub type UserId = i64;

/// Employee, or outsourced with vendor and contract end (disabled automatically on that date).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserKind {
    Employee,
    Outsourced {
        vendor: String,
        contract_end: NaiveDate,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub real_name: String,
    pub department: String,
    pub kind: UserKind,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub must_change_password: bool,
    pub mfa_enrolled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// Whether an outsourced user's contract has ended by `today`: the account is disabled on the
    /// contract's end date, so that date is the first day without access.
    pub fn contract_ended(&self, today: NaiveDate) -> bool {
        matches!(&self.kind, UserKind::Outsourced { contract_end, .. } if today >= *contract_end)
    }
}

/// What is needed to create a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub real_name: String,
    pub department: String,
    pub kind: UserKind,
}

/// Usernames: 2–64 characters of `a-z 0-9 . _ -`, starting with a letter.
pub fn validate_username(name: &str) -> Result<(), Problem> {
    let ok = (2..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Problem::field(
            "user.username_invalid",
            "username",
            format!("用户名 {name:?} 无效：须为 2–64 位小写字母、数字或 . _ -，并以字母开头"),
            format!(
                "username {name:?} is invalid: 2–64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter"
            ),
        ))
    }
}

fn text_field(field: &str, zh: &str, value: &str, max: usize) -> Result<(), Problem> {
    let len = value.chars().count();
    if value.trim().is_empty() || len > max || value.chars().any(char::is_control) {
        return Err(Problem::field(
            "user.field_invalid",
            field,
            format!("{zh}不能为空，不超过 {max} 个字符，且不能包含控制字符"),
            format!("{field} must be 1–{max} characters without control characters"),
        ));
    }
    Ok(())
}

impl NewUser {
    /// Checks every field; `today` bounds an outsourced contract's end date.
    pub fn validate(&self, today: NaiveDate) -> Result<(), Problem> {
        validate_username(&self.username)?;
        text_field("real_name", "真实姓名", &self.real_name, 64)?;
        text_field("department", "部门", &self.department, 128)?;
        if let UserKind::Outsourced {
            vendor,
            contract_end,
        } = &self.kind
        {
            text_field("vendor", "外包厂商", vendor, 128)?;
            if *contract_end <= today {
                return Err(Problem::field(
                    "user.contract_ended",
                    "contract_end",
                    format!("外包合同结束日期 {contract_end} 不晚于今天，不能创建账号"),
                    format!(
                        "contract end {contract_end} is not after today: the account cannot be created"
                    ),
                ));
            }
        }
        Ok(())
    }
}
