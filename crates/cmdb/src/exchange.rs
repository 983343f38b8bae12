//! The model exchange file (standard 表47 资源模型交付: models carried between environments) and
//! the diff between two versions of a model.
//!
//! The file is JSON:
//!
//! ```json
//! {"format": "ballast-cmdb-models", "format_version": 1,
//!  "models": [{"version": 3, "model": {"key": "host", "name_zh": "主机", ...}}]}
//! ```
//!
//! `format_version` is the file layout (only 1 exists); each model carries its own version, the
//! number of changes it has had where it was exported.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::model::{AttrType, Model};

pub const FORMAT: &str = "ballast-cmdb-models";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub format: String,
    pub format_version: u32,
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub version: u32,
    pub model: Model,
}

impl ModelFile {
    pub fn new(models: Vec<ModelEntry>) -> ModelFile {
        ModelFile {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            models,
        }
    }

    /// Reads and checks a file: layout, version, every model's definition (references may point
    /// at models in the file or in `existing`). Every problem is reported.
    pub fn parse(text: &str, existing: &BTreeSet<String>) -> Result<ModelFile, Vec<FieldError>> {
        let file: ModelFile = serde_json::from_str(text).map_err(|e| {
            vec![FieldError::new(
                "cmdb.model_file_parse",
                format!("line {}, column {}", e.line(), e.column()),
                format!(
                    "第 {} 行第 {} 列：无法解析模型文件：{e}",
                    e.line(),
                    e.column()
                ),
                format!(
                    "line {}, column {}: cannot parse the model file: {e}",
                    e.line(),
                    e.column()
                ),
            )]
        })?;
        let mut errs = Vec::new();
        if file.format != FORMAT || file.format_version != FORMAT_VERSION {
            errs.push(FieldError::new(
                "cmdb.model_file_format",
                "format",
                format!(
                    "不是 {FORMAT} 第 {FORMAT_VERSION} 版文件（format={:?}, format_version={}）",
                    file.format, file.format_version
                ),
                format!(
                    "not a {FORMAT} version {FORMAT_VERSION} file (format={:?}, format_version={})",
                    file.format, file.format_version
                ),
            ));
        }
        let mut known = existing.clone();
        known.extend(file.models.iter().map(|e| e.model.key.clone()));
        let mut seen = BTreeSet::new();
        for (i, e) in file.models.iter().enumerate() {
            if !seen.insert(e.model.key.clone()) {
                errs.push(FieldError::new(
                    "cmdb.model_duplicate",
                    format!("models[{i}].model.key"),
                    format!("模型 {} 在文件中出现多次", e.model.key),
                    format!("model {} appears more than once in the file", e.model.key),
                ));
            }
            if let Err(es) = e.model.check(&known) {
                errs.extend(es.into_iter().map(|mut x| {
                    x.field = format!("models[{i}].model.{}", x.field);
                    x
                }));
            }
        }
        if errs.is_empty() { Ok(file) } else { Err(errs) }
    }
}

/// One difference between two versions of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ModelChange {
    NamesChanged,
    AttributeAdded {
        key: String,
        required: bool,
    },
    AttributeRemoved {
        key: String,
    },
    TypeChanged {
        key: String,
        from: String,
        to: String,
    },
    EnumValuesRemoved {
        key: String,
        values: Vec<String>,
    },
    EnumValuesAdded {
        key: String,
        values: Vec<String>,
    },
    BecameRequired {
        key: String,
    },
    NoLongerRequired {
        key: String,
    },
    BecameUnique {
        key: String,
    },
    NoLongerUnique {
        key: String,
    },
    PatternChanged {
        key: String,
        from: Option<String>,
        to: Option<String>,
    },
    AttributeNamesChanged {
        key: String,
    },
    DiscoveredChanged {
        key: String,
        discovered: bool,
    },
}

impl ModelChange {
    /// Whether existing instances may stop being valid under the new definition (they then need
    /// checking, and the change needs approval when any does).
    pub fn may_invalidate(&self) -> bool {
        match self {
            ModelChange::AttributeAdded { required, .. } => *required,
            ModelChange::AttributeRemoved { .. }
            | ModelChange::EnumValuesRemoved { .. }
            | ModelChange::BecameRequired { .. }
            | ModelChange::BecameUnique { .. } => true,
            ModelChange::TypeChanged { to, .. } => to != "string",
            ModelChange::PatternChanged { to, .. } => to.is_some(),
            _ => false,
        }
    }

    pub fn describe_en(&self) -> String {
        match self {
            ModelChange::NamesChanged => "model names changed".into(),
            ModelChange::AttributeAdded { key, required } => {
                format!(
                    "attribute {key} added{}",
                    if *required { " (required)" } else { "" }
                )
            }
            ModelChange::AttributeRemoved { key } => {
                format!("attribute {key} removed (its values are dropped)")
            }
            ModelChange::TypeChanged { key, from, to } => {
                format!("attribute {key}: type {from} → {to}")
            }
            ModelChange::EnumValuesRemoved { key, values } => {
                format!("attribute {key}: values removed: {}", values.join(", "))
            }
            ModelChange::EnumValuesAdded { key, values } => {
                format!("attribute {key}: values added: {}", values.join(", "))
            }
            ModelChange::BecameRequired { key } => format!("attribute {key} became required"),
            ModelChange::NoLongerRequired { key } => format!("attribute {key} no longer required"),
            ModelChange::BecameUnique { key } => format!("attribute {key} became unique"),
            ModelChange::NoLongerUnique { key } => format!("attribute {key} no longer unique"),
            ModelChange::PatternChanged { key, to, .. } => format!(
                "attribute {key}: pattern → {}",
                to.as_deref().unwrap_or("none")
            ),
            ModelChange::AttributeNamesChanged { key } => format!("attribute {key}: names changed"),
            ModelChange::DiscoveredChanged { key, discovered } => {
                format!("attribute {key}: discovery-owned = {discovered}")
            }
        }
    }

    pub fn describe_zh(&self) -> String {
        match self {
            ModelChange::NamesChanged => "模型名称变更".into(),
            ModelChange::AttributeAdded { key, required } => {
                format!("新增属性 {key}{}", if *required { "（必填）" } else { "" })
            }
            ModelChange::AttributeRemoved { key } => format!("删除属性 {key}（其值将被丢弃）"),
            ModelChange::TypeChanged { key, from, to } => format!("属性 {key} 类型 {from} → {to}"),
            ModelChange::EnumValuesRemoved { key, values } => {
                format!("属性 {key} 删除可选值：{}", values.join("、"))
            }
            ModelChange::EnumValuesAdded { key, values } => {
                format!("属性 {key} 新增可选值：{}", values.join("、"))
            }
            ModelChange::BecameRequired { key } => format!("属性 {key} 改为必填"),
            ModelChange::NoLongerRequired { key } => format!("属性 {key} 改为选填"),
            ModelChange::BecameUnique { key } => format!("属性 {key} 改为唯一"),
            ModelChange::NoLongerUnique { key } => format!("属性 {key} 取消唯一"),
            ModelChange::PatternChanged { key, to, .. } => {
                format!("属性 {key} 校验规则 → {}", to.as_deref().unwrap_or("无"))
            }
            ModelChange::AttributeNamesChanged { key } => format!("属性 {key} 名称变更"),
            ModelChange::DiscoveredChanged { key, discovered } => {
                format!("属性 {key} 自动发现维护 = {discovered}")
            }
        }
    }
}

/// The changes from `old` to `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelDiff {
    pub changes: Vec<ModelChange>,
    /// Whether any change may invalidate existing instances.
    pub may_invalidate: bool,
}

fn type_key(t: &AttrType) -> String {
    match t {
        AttrType::Reference { model } => format!("reference:{model}"),
        other => other.key().to_string(),
    }
}

pub fn diff_models(old: &Model, new: &Model) -> ModelDiff {
    let mut changes = Vec::new();
    if old.name_zh != new.name_zh || old.name_en != new.name_en {
        changes.push(ModelChange::NamesChanged);
    }
    for o in &old.attributes {
        let key = o.key.clone();
        let Some(n) = new.attribute(&o.key) else {
            changes.push(ModelChange::AttributeRemoved { key });
            continue;
        };
        match (&o.ty, &n.ty) {
            (AttrType::Enum { values: a }, AttrType::Enum { values: b }) => {
                let removed: Vec<String> = a.iter().filter(|v| !b.contains(v)).cloned().collect();
                let added: Vec<String> = b.iter().filter(|v| !a.contains(v)).cloned().collect();
                if !removed.is_empty() {
                    changes.push(ModelChange::EnumValuesRemoved {
                        key: key.clone(),
                        values: removed,
                    });
                }
                if !added.is_empty() {
                    changes.push(ModelChange::EnumValuesAdded {
                        key: key.clone(),
                        values: added,
                    });
                }
            }
            (a, b) if type_key(a) != type_key(b) => changes.push(ModelChange::TypeChanged {
                key: key.clone(),
                from: type_key(a),
                to: type_key(b),
            }),
            _ => {}
        }
        match (o.required, n.required) {
            (false, true) => changes.push(ModelChange::BecameRequired { key: key.clone() }),
            (true, false) => changes.push(ModelChange::NoLongerRequired { key: key.clone() }),
            _ => {}
        }
        match (o.unique, n.unique) {
            (false, true) => changes.push(ModelChange::BecameUnique { key: key.clone() }),
            (true, false) => changes.push(ModelChange::NoLongerUnique { key: key.clone() }),
            _ => {}
        }
        if o.pattern != n.pattern {
            changes.push(ModelChange::PatternChanged {
                key: key.clone(),
                from: o.pattern.clone(),
                to: n.pattern.clone(),
            });
        }
        if o.name_zh != n.name_zh || o.name_en != n.name_en {
            changes.push(ModelChange::AttributeNamesChanged { key: key.clone() });
        }
        if o.discovered != n.discovered {
            changes.push(ModelChange::DiscoveredChanged {
                key,
                discovered: n.discovered,
            });
        }
    }
    for n in &new.attributes {
        if old.attribute(&n.key).is_none() {
            changes.push(ModelChange::AttributeAdded {
                key: n.key.clone(),
                required: n.required,
            });
        }
    }
    let may_invalidate = changes.iter().any(ModelChange::may_invalidate);
    ModelDiff {
        changes,
        may_invalidate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builtin_models;

    fn host() -> Model {
        builtin_models()
            .into_iter()
            .find(|m| m.key == "host")
            .unwrap_or_else(|| panic!("host"))
    }

    #[test]
    fn harmless_changes_do_not_invalidate() {
        let old = host();
        let mut new = old.clone();
        new.name_en = "Server".into();
        if let Some(a) = new.attributes.iter_mut().find(|a| a.key == "serial") {
            a.unique = false;
        }
        new.attributes.push(crate::model::Attribute {
            key: "tags".into(),
            name_zh: "标签".into(),
            name_en: "Tags".into(),
            ty: AttrType::List,
            required: false,
            unique: false,
            pattern: None,
            discovered: false,
        });
        if let Some(a) = new.attributes.iter_mut().find(|a| a.key == "ip") {
            a.required = false;
        }
        let d = diff_models(&old, &new);
        assert!(!d.may_invalidate, "{d:?}");
        assert!(d.changes.contains(&ModelChange::NamesChanged));
        assert!(
            d.changes
                .contains(&ModelChange::NoLongerRequired { key: "ip".into() })
        );
        assert!(d.changes.contains(&ModelChange::AttributeAdded {
            key: "tags".into(),
            required: false
        }));
        assert!(d.changes.contains(&ModelChange::NoLongerUnique {
            key: "serial".into()
        }));
    }

    #[test]
    fn invalidating_changes_are_flagged() {
        let old = host();
        type Edit = Box<dyn Fn(&mut Model)>;
        let cases: Vec<(Edit, ModelChange)> = vec![
            (
                Box::new(|m: &mut Model| m.attributes.retain(|a| a.key != "os")),
                ModelChange::AttributeRemoved { key: "os".into() },
            ),
            (
                Box::new(|m: &mut Model| {
                    if let Some(a) = m.attributes.iter_mut().find(|a| a.key == "os") {
                        a.ty = AttrType::Integer;
                    }
                }),
                ModelChange::TypeChanged {
                    key: "os".into(),
                    from: "string".into(),
                    to: "integer".into(),
                },
            ),
            (
                Box::new(|m: &mut Model| {
                    if let Some(a) = m.attributes.iter_mut().find(|a| a.key == "owner") {
                        a.required = true;
                    }
                }),
                ModelChange::BecameRequired {
                    key: "owner".into(),
                },
            ),
            (
                Box::new(|m: &mut Model| {
                    if let Some(a) = m.attributes.iter_mut().find(|a| a.key == "owner") {
                        a.unique = true;
                    }
                }),
                ModelChange::BecameUnique {
                    key: "owner".into(),
                },
            ),
            (
                Box::new(|m: &mut Model| {
                    if let Some(a) = m.attributes.iter_mut().find(|a| a.key == "owner") {
                        a.pattern = Some("[a-z]+".into());
                    }
                }),
                ModelChange::PatternChanged {
                    key: "owner".into(),
                    from: None,
                    to: Some("[a-z]+".into()),
                },
            ),
        ];
        for (change, want) in cases {
            let mut new = old.clone();
            change(&mut new);
            let d = diff_models(&old, &new);
            assert!(d.may_invalidate, "{want:?}");
            assert_eq!(d.changes, vec![want]);
        }
    }

    #[test]
    fn file_round_trips_and_reports_problems() {
        let file = ModelFile::new(
            builtin_models()
                .into_iter()
                .map(|model| ModelEntry { version: 1, model })
                .collect(),
        );
        let text = serde_json::to_string_pretty(&file).unwrap_or_default();
        assert_eq!(ModelFile::parse(&text, &BTreeSet::new()), Ok(file));
        let errs = ModelFile::parse("{\"format\": 1", &BTreeSet::new())
            .err()
            .unwrap_or_default();
        assert_eq!(errs[0].code, "cmdb.model_file_parse");
        let bad = r#"{"format": "x", "format_version": 2, "models": [
            {"version": 1, "model": {"key": "app", "name_zh": "应用", "name_en": "App",
              "attributes": [{"key": "db", "name_zh": "库", "name_en": "DB", "type": "reference", "model": "nope"}]}}]}"#;
        let errs = ModelFile::parse(bad, &BTreeSet::new())
            .err()
            .unwrap_or_default();
        let got: Vec<(&str, &str)> = errs.iter().map(|e| (e.code, e.field.as_str())).collect();
        assert_eq!(
            got,
            [
                ("cmdb.model_file_format", "format"),
                (
                    "cmdb.reference_unknown_model",
                    "models[0].model.attributes[0].model"
                ),
            ]
        );
    }
}
