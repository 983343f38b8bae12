//! An instance's attributes checked against its model and normalised to their stored form.
//!
//! Values may come from JSON (typed) or from a spreadsheet or form (text), so each type accepts
//! text too: `"42"` for an integer, `"是"`/`"yes"`/`"true"` for a boolean, `"a, b"` for a list.
//! Stored forms: string, integer (JSON number), decimal (canonical text, never a float), boolean,
//! enum (one of its values), date (`YYYY-MM-DD`), IP (canonical text), list (array of strings),
//! reference (the referenced instance's name). Empty text and `null` mean "not set".
//!
//! Every problem is reported, each naming its attribute. Uniqueness and whether a referenced
//! instance exists need the database; [`references`] lists what the caller must look up.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::model::{AttrType, Attribute, Model, anchored};

/// Attribute values by key.
pub type Attributes = Map<String, Value>;

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn type_error(a: &Attribute, v: &Value, zh_hint: &str, en_hint: &str) -> FieldError {
    FieldError::new(
        "cmdb.attribute_type",
        a.key.clone(),
        format!("值 {} 不是有效的{}：{zh_hint}", shown(v), a.ty.name_zh()),
        format!(
            "value {} is not a valid {}: {en_hint}",
            shown(v),
            a.ty.key()
        ),
    )
}

/// Whether a value counts as "not set".
pub fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    !int.is_empty()
        && int.chars().all(|c| c.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

/// One value in its stored form, or why not.
pub fn normalise(a: &Attribute, v: &Value) -> Result<Value, FieldError> {
    let pattern_check = |s: &str| -> Result<(), FieldError> {
        let Some(p) = &a.pattern else { return Ok(()) };
        match anchored(p) {
            Ok(re) if re.is_match(s) => Ok(()),
            Ok(_) => Err(FieldError::new(
                "cmdb.attribute_pattern",
                a.key.clone(),
                format!("值 {s:?} 不符合校验规则 {p}"),
                format!("value {s:?} does not match the pattern {p}"),
            )),
            Err(e) => Err(FieldError::new(
                "cmdb.pattern_invalid",
                a.key.clone(),
                format!("校验正则 {p} 无效：{e}"),
                format!("the validation pattern {p} is invalid: {e}"),
            )),
        }
    };
    match &a.ty {
        AttrType::String | AttrType::Reference { .. } => {
            let s = text_of(v).ok_or_else(|| type_error(a, v, "应为文本", "expected text"))?;
            if matches!(a.ty, AttrType::String) {
                pattern_check(&s)?;
            }
            Ok(Value::String(s))
        }
        AttrType::Integer => {
            let n = match v {
                Value::Number(n) => n.as_i64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                }),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            n.map(Value::from)
                .ok_or_else(|| type_error(a, v, "应为整数", "expected a whole number"))
        }
        AttrType::Decimal => {
            let s = text_of(v)
                .map(|s| s.strip_prefix('+').unwrap_or(&s).to_string())
                .filter(|s| is_decimal(s))
                .ok_or_else(|| {
                    type_error(a, v, "应为小数，如 12.5", "expected a decimal such as 12.5")
                })?;
            Ok(Value::String(s))
        }
        AttrType::Boolean => {
            let b = match v {
                Value::Bool(b) => Some(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(1) => Some(true),
                    Some(0) => Some(false),
                    _ => None,
                },
                Value::String(s) => match s.trim().to_lowercase().as_str() {
                    "true" | "yes" | "y" | "1" | "是" => Some(true),
                    "false" | "no" | "n" | "0" | "否" => Some(false),
                    _ => None,
                },
                _ => None,
            };
            b.map(Value::Bool).ok_or_else(|| {
                type_error(
                    a,
                    v,
                    "应为 是/否 或 true/false",
                    "expected true/false (yes/no)",
                )
            })
        }
        AttrType::Enum { values } => {
            let s = text_of(v).unwrap_or_default();
            if values.contains(&s) {
                Ok(Value::String(s))
            } else {
                Err(FieldError::new(
                    "cmdb.attribute_enum",
                    a.key.clone(),
                    format!("值 {} 不在可选值中：{}", shown(v), values.join("、")),
                    format!("value {} is not one of: {}", shown(v), values.join(", ")),
                ))
            }
        }
        AttrType::Date => {
            let s = text_of(v).unwrap_or_default();
            chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
                .map_err(|_| type_error(a, v, "应为 YYYY-MM-DD", "expected YYYY-MM-DD"))
        }
        AttrType::Ip => {
            let s = text_of(v).unwrap_or_default();
            let ip: IpAddr = s.parse().map_err(|_| {
                type_error(
                    a,
                    v,
                    "应为 IPv4 或 IPv6 地址",
                    "expected an IPv4 or IPv6 address",
                )
            })?;
            let s = ip.to_string();
            pattern_check(&s)?;
            Ok(Value::String(s))
        }
        AttrType::List => {
            let items: Vec<String> = match v {
                Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        text_of(i).ok_or_else(|| {
                            type_error(a, v, "列表项应为文本", "list items must be text")
                        })
                    })
                    .collect::<Result<_, _>>()?,
                other => text_of(other)
                    .ok_or_else(|| {
                        type_error(
                            a,
                            v,
                            "应为以逗号分隔的列表",
                            "expected a comma-separated list",
                        )
                    })?
                    .split([',', '，', '\n'])
                    .map(|s| s.trim().to_string())
                    .collect(),
            };
            let items: Vec<String> = items.into_iter().filter(|s| !s.is_empty()).collect();
            for i in &items {
                pattern_check(i)?;
            }
            Ok(Value::Array(items.into_iter().map(Value::String).collect()))
        }
    }
}

/// Checks `input` against `model`: unknown attributes, missing required ones, wrong types, enum
/// values, patterns. Returns the normalised attributes (blank ones left out) or every problem.
pub fn validate_attributes(
    model: &Model,
    input: &Attributes,
) -> Result<Attributes, Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut out = Map::new();
    for key in input.keys() {
        if model.attribute(key).is_none() {
            errs.push(FieldError::new(
                "cmdb.attribute_unknown",
                key.clone(),
                format!("模型 {} 没有属性 {key}", model.key),
                format!("model {} has no attribute {key}", model.key),
            ));
        }
    }
    for a in &model.attributes {
        match input.get(&a.key).filter(|v| !is_blank(v)) {
            None if a.required => errs.push(FieldError::new(
                "cmdb.attribute_required",
                a.key.clone(),
                format!("必填属性 {}（{}）未填写", a.key, a.name_zh),
                format!("required attribute {} ({}) is missing", a.key, a.name_en),
            )),
            None => {}
            Some(v) => match normalise(a, v) {
                Ok(n) if is_blank(&n) && a.required => errs.push(FieldError::new(
                    "cmdb.attribute_required",
                    a.key.clone(),
                    format!("必填属性 {}（{}）未填写", a.key, a.name_zh),
                    format!("required attribute {} ({}) is missing", a.key, a.name_en),
                )),
                Ok(n) if is_blank(&n) => {}
                Ok(n) => {
                    out.insert(a.key.clone(), n);
                }
                Err(e) => errs.push(e),
            },
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

/// A reference the caller must resolve: attribute `key` names instance `name` of `model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub key: String,
    pub model: String,
    pub name: String,
}

/// The references in normalised attributes.
pub fn references(model: &Model, attrs: &Attributes) -> Vec<Reference> {
    model
        .attributes
        .iter()
        .filter_map(|a| match (&a.ty, attrs.get(&a.key)) {
            (AttrType::Reference { model }, Some(Value::String(name))) => Some(Reference {
                key: a.key.clone(),
                model: model.clone(),
                name: name.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Each value as index text: one entry per scalar (a list gives one per item). Used for the
/// attribute index and unique keys.
pub fn index_values(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().flat_map(index_values).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Null => Vec::new(),
        other => vec![other.to_string()],
    }
}

/// Whether an instance name is acceptable: 1–200 characters, no control characters, not blank.
pub fn check_name(name: &str) -> Result<(), FieldError> {
    if name.trim().is_empty()
        || name.chars().count() > 200
        || name.chars().any(char::is_control)
        || name.trim() != name
    {
        return Err(FieldError::new(
            "cmdb.name_invalid",
            "name",
            format!("名称 {name:?} 无效：1–200 个字符，首尾无空白，不含控制字符"),
            format!(
                "name {name:?} is invalid: 1–200 characters, no surrounding blanks or control characters"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builtin_models;
    use serde_json::json;

    fn host() -> Model {
        builtin_models()
            .into_iter()
            .find(|m| m.key == "host")
            .unwrap_or_else(|| panic!("host model"))
    }

    fn obj(v: Value) -> Attributes {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn text_values_are_normalised() {
        let out = validate_attributes(
            &host(),
            &obj(
                json!({"ip": " 10.0.0.1 ", "cpus": "8", "memory_gb": "+15.50",
                "addresses": "10.0.0.1, 192.168.1.1,", "purchase_date": "2024-03-01",
                "ssh_user": "ops", "os": "", "serial": 12345}),
            ),
        );
        assert_eq!(
            out,
            Ok(obj(
                json!({"ip": "10.0.0.1", "cpus": 8, "memory_gb": "15.50",
                "addresses": ["10.0.0.1", "192.168.1.1"], "serial": "12345",
                "ssh_user": "ops", "purchase_date": "2024-03-01"})
            ))
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let errs = validate_attributes(
            &host(),
            &obj(
                json!({"cpus": "eight", "memory_gb": "1,5", "ssh_user": "Root!",
                "purchase_date": "2024-02-30", "colour": "red", "ip": "10.0.0.300"}),
            ),
        )
        .err()
        .unwrap_or_default();
        let got: Vec<(&str, &str)> = errs.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            got,
            [
                ("colour", "cmdb.attribute_unknown"),
                ("ip", "cmdb.attribute_type"),
                ("cpus", "cmdb.attribute_type"),
                ("memory_gb", "cmdb.attribute_type"),
                ("ssh_user", "cmdb.attribute_pattern"),
                ("purchase_date", "cmdb.attribute_type"),
            ]
        );
        assert!(errs[1].message_zh.contains("IP"), "{}", errs[1].message_zh);
        assert!(errs[1].message_en.contains("10.0.0.300"));
    }

    #[test]
    fn required_and_enum() {
        let business = builtin_models().remove(0);
        let errs = validate_attributes(&business, &obj(json!({"level": "vital", "owner": "  "})))
            .err()
            .unwrap_or_default();
        let got: Vec<(&str, &str)> = errs.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            got,
            [
                ("owner", "cmdb.attribute_required"),
                ("level", "cmdb.attribute_enum")
            ]
        );
    }

    #[test]
    fn booleans_and_references() {
        let a = Attribute {
            key: "b".into(),
            name_zh: "b".into(),
            name_en: "b".into(),
            ty: AttrType::Boolean,
            required: false,
            unique: false,
            pattern: None,
            discovered: false,
        };
        for (v, want) in [(json!("是"), true), (json!("No"), false), (json!(1), true)] {
            assert_eq!(normalise(&a, &v), Ok(Value::Bool(want)));
        }
        assert!(normalise(&a, &json!("maybe")).is_err());
        let attrs = validate_attributes(&host(), &obj(json!({"ip": "::1", "rack": "R-01"})))
            .unwrap_or_default();
        assert_eq!(
            references(&host(), &attrs),
            [Reference {
                key: "rack".into(),
                model: "rack".into(),
                name: "R-01".into()
            }]
        );
        assert_eq!(index_values(&json!(["a", "b"])), ["a", "b"]);
        assert_eq!(index_values(&json!(8)), ["8"]);
    }

    #[test]
    fn names() {
        assert!(check_name("web-01").is_ok());
        assert!(check_name("行情网关").is_ok());
        assert!(check_name(" x").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("a\u{7}").is_err());
    }
}
