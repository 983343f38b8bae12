//! Helpers shared by the calendar and policy file parsers: spans to line/column,
//! TOML values to dates and times, issue collection.

use std::ops::Range;

use chrono::{NaiveDate, NaiveTime};
use toml::Spanned;

use crate::error::ValidationIssue;

/// Collects issues while a file is checked.
pub(crate) struct Checker<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub issues: Vec<ValidationIssue>,
}

impl<'a> Checker<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Checker {
            file,
            text,
            issues: Vec::new(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = self
            .text
            .get(line_start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        (line, column)
    }

    pub fn issue(
        &mut self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message_zh: impl Into<String>,
        message_en: impl Into<String>,
    ) {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = self.position(s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        self.issues.push(ValidationIssue {
            file: self.file.to_string(),
            line,
            column,
            field: field.into(),
            message_zh: message_zh.into(),
            message_en: message_en.into(),
        });
    }

    /// Converts a TOML syntax or shape error (unknown key, wrong type, missing key).
    pub fn toml_error(&mut self, err: &toml::de::Error) {
        let span = err.span();
        let field = span
            .clone()
            .and_then(|s| self.text.get(s))
            .map(|s| {
                let s = s.trim();
                let s: String = s.chars().take(60).collect();
                s.lines().next().unwrap_or("").to_string()
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "(file)".to_string());
        let message = err.message().trim().to_string();
        let zh = translate_toml_message(&message);
        self.issue(span, field, zh, message);
    }

    pub fn into_result<T>(self, value: T) -> Result<T, Vec<ValidationIssue>> {
        if self.issues.is_empty() {
            Ok(value)
        } else {
            Err(self.issues)
        }
    }

    /// A local date: a TOML date (`2026-02-16`) or a string `"2026-02-16"`.
    pub fn date(&mut self, value: &Spanned<toml::Value>, field: &str) -> Option<NaiveDate> {
        let parsed = match value.get_ref() {
            toml::Value::Datetime(dt) => match (dt.date, dt.time, dt.offset) {
                (Some(d), None, None) => {
                    NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                }
                _ => None,
            },
            toml::Value::String(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.issue(
                Some(value.span()),
                field,
                "应为日期，格式 YYYY-MM-DD",
                "expected a date YYYY-MM-DD",
            );
        }
        parsed
    }

    /// A local time of day: a TOML time (`09:15:00`) or a string `"09:15"` / `"09:15:00"`.
    pub fn time(&mut self, value: &Spanned<toml::Value>, field: &str) -> Option<NaiveTime> {
        let parsed = match value.get_ref() {
            toml::Value::Datetime(dt) => match (dt.date, dt.time, dt.offset) {
                (None, Some(t), None) => NaiveTime::from_hms_nano_opt(
                    u32::from(t.hour),
                    u32::from(t.minute),
                    u32::from(t.second),
                    t.nanosecond,
                ),
                _ => None,
            },
            toml::Value::String(s) => parse_time_of_day(s),
            _ => None,
        };
        if parsed.is_none() {
            self.issue(
                Some(value.span()),
                field,
                "应为时刻，格式 HH:MM 或 HH:MM:SS",
                "expected a time of day HH:MM or HH:MM:SS",
            );
        }
        parsed
    }

    /// A non-empty string.
    pub fn non_empty(&mut self, value: &Spanned<String>, field: &str) -> String {
        let s = value.get_ref().trim().to_string();
        if s.is_empty() {
            self.issue(Some(value.span()), field, "不能为空", "must not be empty");
        }
        s
    }
}

/// `HH:MM` or `HH:MM:SS`.
pub fn parse_time_of_day(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()
}

/// A best-effort Chinese rendering of the TOML parser's common messages.
fn translate_toml_message(message: &str) -> String {
    if message.starts_with("unknown field") {
        format!("未知字段（{message}）")
    } else if message.starts_with("missing field") {
        format!("缺少必填字段（{message}）")
    } else if message.starts_with("invalid type") {
        format!("类型错误（{message}）")
    } else if message.contains("duplicate key") {
        format!("重复的键（{message}）")
    } else {
        format!("TOML 语法或结构错误（{message}）")
    }
}

/// Lower-case identifier: `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => {}
        _ => return false,
    }
    s.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}
