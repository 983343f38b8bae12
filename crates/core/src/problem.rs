//! `Problem`: the one error shape of the platform's domain — a stable code, the field it concerns
//! (if any) and messages in Chinese and English. The API renders it as `{code, message, details}`.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message_zh: String,
    pub message_en: String,
}

impl Problem {
    pub fn new(code: &'static str, zh: impl Into<String>, en: impl Into<String>) -> Problem {
        Problem {
            code,
            field: None,
            message_zh: zh.into(),
            message_en: en.into(),
        }
    }

    /// A problem with one input field.
    pub fn field(
        code: &'static str,
        field: &str,
        zh: impl Into<String>,
        en: impl Into<String>,
    ) -> Problem {
        Problem {
            field: Some(field.to_string()),
            ..Problem::new(code, zh, en)
        }
    }

    /// `中文 / English`.
    pub fn bilingual(&self) -> String {
        format!("{} / {}", self.message_zh, self.message_en)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message_en, self.code)
    }
}

impl std::error::Error for Problem {}
