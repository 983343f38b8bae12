//! Errors with stable codes and messages in Chinese and English, each naming the field.

use serde::Serialize;

/// A user-facing message: a stable code plus Chinese and English text.
pub trait Msg {
    fn code(&self) -> &'static str;
    fn message_zh(&self) -> String;
    fn message_en(&self) -> String;
    /// `中文 / English`.
    fn bilingual(&self) -> String {
        format!("{} / {}", self.message_zh(), self.message_en())
    }
}

/// One problem with one field (an attribute key, or `name`, or `model.attributes[2].pattern`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message_en} [{code}]")]
pub struct FieldError {
    pub code: &'static str,
    pub field: String,
    pub message_zh: String,
    pub message_en: String,
}

impl FieldError {
    pub fn new(
        code: &'static str,
        field: impl Into<String>,
        zh: impl Into<String>,
        en: impl Into<String>,
    ) -> FieldError {
        FieldError {
            code,
            field: field.into(),
            message_zh: zh.into(),
            message_en: en.into(),
        }
    }
}

impl Msg for FieldError {
    fn code(&self) -> &'static str {
        self.code
    }
    fn message_zh(&self) -> String {
        format!("字段 {}：{}", self.field, self.message_zh)
    }
    fn message_en(&self) -> String {
        format!("field {}: {}", self.field, self.message_en)
    }
}
