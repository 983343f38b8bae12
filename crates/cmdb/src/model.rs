//! CI types: a [`Model`] is a key, bilingual names and typed [`Attribute`]s. Every instance also
//! has a `name` (unique per model and environment) and an environment, which are not attributes.
//!
//! Built-in models ([`builtin_models`]) cover the business topology (business → subsystem →
//! module → host, joined by `belongs_to`) and the usual infrastructure; custom models are defined
//! the same way and may be added, changed and exchanged between environments
//! ([`crate::exchange`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// An attribute's type. Serialised with the attribute as `"type": "enum", "values": [...]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AttrType {
    String,
    /// A 64-bit signed integer.
    Integer,
    /// A decimal number, kept as its canonical text (`12.5`, `-3`), never a float.
    Decimal,
    Boolean,
    /// One of `values`.
    Enum {
        values: Vec<String>,
    },
    /// `YYYY-MM-DD`.
    Date,
    /// An IPv4 or IPv6 address.
    Ip,
    /// A list of strings.
    List,
    /// The name of an instance of `model` in the same environment.
    Reference {
        model: String,
    },
}

impl AttrType {
    pub fn key(&self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Integer => "integer",
            AttrType::Decimal => "decimal",
            AttrType::Boolean => "boolean",
            AttrType::Enum { .. } => "enum",
            AttrType::Date => "date",
            AttrType::Ip => "ip",
            AttrType::List => "list",
            AttrType::Reference { .. } => "reference",
        }
    }

    pub fn name_zh(&self) -> &'static str {
        match self {
            AttrType::String => "字符串",
            AttrType::Integer => "整数",
            AttrType::Decimal => "小数",
            AttrType::Boolean => "布尔",
            AttrType::Enum { .. } => "枚举",
            AttrType::Date => "日期",
            AttrType::Ip => "IP 地址",
            AttrType::List => "列表",
            AttrType::Reference { .. } => "引用",
        }
    }
}

/// One attribute of a model. (Unknown fields are ignored here: serde cannot refuse them next to
/// the flattened type.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    /// `[a-z][a-z0-9_]{0,63}`; not `name`, `env`, `environment`, `model` (reserved in queries).
    pub key: String,
    pub name_zh: String,
    pub name_en: String,
    #[serde(flatten)]
    pub ty: AttrType,
    #[serde(default)]
    pub required: bool,
    /// Unique among the model's instances in one environment.
    #[serde(default)]
    pub unique: bool,
    /// A regular expression a string, IP or list item must match (whole value, anchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Maintained by discovery (agents' host facts); a manual value that differs is a conflict.
    #[serde(default)]
    pub discovered: bool,
}

/// A CI type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// `[a-z][a-z0-9_]{0,63}`.
    pub key: String,
    pub name_zh: String,
    pub name_en: String,
    #[serde(default)]
    pub builtin: bool,
    pub attributes: Vec<Attribute>,
}

/// Identifiers with a fixed meaning in queries and forms; no attribute may use them.
pub const RESERVED_KEYS: [&str; 5] = ["name", "env", "environment", "model", "id"];

pub fn is_valid_key(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some('a'..='z'))
        && k.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

impl Model {
    pub fn attribute(&self, key: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.key == key)
    }

    /// Keys of the unique attributes.
    pub fn unique_keys(&self) -> Vec<String> {
        self.attributes
            .iter()
            .filter(|a| a.unique)
            .map(|a| a.key.clone())
            .collect()
    }

    /// Checks the definition itself; `known_models` are the models references may point at
    /// (this model included). Every problem is reported.
    pub fn check(&self, known_models: &BTreeSet<String>) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        if !is_valid_key(&self.key) {
            errs.push(FieldError::new(
                "cmdb.model_key_invalid",
                "key",
                format!("模型标识 {:?} 无效：小写字母开头，仅含小写字母、数字、_，最多 64 个字符", self.key),
                format!("model key {:?} is invalid: a lower-case letter, then lower-case letters, digits or _, at most 64", self.key),
            ));
        }
        if self.name_zh.trim().is_empty() || self.name_en.trim().is_empty() {
            errs.push(FieldError::new(
                "cmdb.model_name_missing",
                "name_zh",
                "模型须有中文名和英文名",
                "a model needs a Chinese and an English name",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, a) in self.attributes.iter().enumerate() {
            let f = |sub: &str| format!("attributes[{i}].{sub}");
            if !is_valid_key(&a.key) || RESERVED_KEYS.contains(&a.key.as_str()) {
                errs.push(FieldError::new(
                    "cmdb.attribute_key_invalid",
                    f("key"),
                    format!("属性标识 {:?} 无效或为保留字（name、env、environment、model、id）", a.key),
                    format!("attribute key {:?} is invalid or reserved (name, env, environment, model, id)", a.key),
                ));
            }
            if !seen.insert(a.key.clone()) {
                errs.push(FieldError::new(
                    "cmdb.attribute_duplicate",
                    f("key"),
                    format!("属性 {} 重复", a.key),
                    format!("attribute {} appears twice", a.key),
                ));
            }
            match &a.ty {
                AttrType::Enum { values } if values.is_empty() => errs.push(FieldError::new(
                    "cmdb.enum_empty",
                    f("values"),
                    format!("枚举属性 {} 没有可选值", a.key),
                    format!("enum attribute {} has no values", a.key),
                )),
                AttrType::Reference { model } if !known_models.contains(model) => {
                    errs.push(FieldError::new(
                        "cmdb.reference_unknown_model",
                        f("model"),
                        format!("属性 {} 引用的模型 {model} 不存在", a.key),
                        format!(
                            "attribute {} refers to model {model}, which does not exist",
                            a.key
                        ),
                    ))
                }
                _ => {}
            }
            if let Some(p) = &a.pattern {
                if let Err(e) = anchored(p) {
                    errs.push(FieldError::new(
                        "cmdb.pattern_invalid",
                        f("pattern"),
                        format!("属性 {} 的校验正则无效：{e}", a.key),
                        format!("attribute {}'s validation pattern is invalid: {e}", a.key),
                    ));
                }
                if !matches!(a.ty, AttrType::String | AttrType::Ip | AttrType::List) {
                    errs.push(FieldError::new(
                        "cmdb.pattern_not_applicable",
                        f("pattern"),
                        format!("属性 {} 是{}类型，不能设置校验正则", a.key, a.ty.name_zh()),
                        format!(
                            "attribute {} is of type {}: patterns apply to string, ip and list",
                            a.key,
                            a.ty.key()
                        ),
                    ));
                }
            }
            if a.unique && matches!(a.ty, AttrType::List | AttrType::Boolean) {
                errs.push(FieldError::new(
                    "cmdb.unique_not_applicable",
                    f("unique"),
                    format!("属性 {} 是{}类型，不能设为唯一", a.key, a.ty.name_zh()),
                    format!(
                        "attribute {} is of type {}, which cannot be unique",
                        a.key,
                        a.ty.key()
                    ),
                ));
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }
}

/// A pattern compiled to match whole values.
///
/// Compiled once per pattern and kept (imports and the data-quality figures validate tens of
/// thousands of values against the same few patterns; compiling is far dearer than matching).
pub fn anchored(pattern: &str) -> Result<regex::Regex, regex::Error> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex, PoisonError};
    static COMPILED: LazyLock<Mutex<HashMap<String, regex::Regex>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    if let Some(re) = COMPILED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(pattern)
    {
        return Ok(re.clone());
    }
    let re = regex::Regex::new(&format!("^(?:{pattern})$"))?;
    let mut cache = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
    // Patterns come from model definitions: few. Bounded anyway.
    if cache.len() >= 1024 {
        cache.clear();
    }
    cache.insert(pattern.to_string(), re.clone());
    Ok(re)
}

fn attr(key: &str, zh: &str, en: &str, ty: AttrType) -> Attribute {
    Attribute {
        key: key.to_string(),
        name_zh: zh.to_string(),
        name_en: en.to_string(),
        ty,
        required: false,
        unique: false,
        pattern: None,
        discovered: false,
    }
}

impl Attribute {
    fn required(mut self) -> Attribute {
        self.required = true;
        self
    }
    fn unique(mut self) -> Attribute {
        self.unique = true;
        self
    }
    fn discovered(mut self) -> Attribute {
        self.discovered = true;
        self
    }
    fn pattern(mut self, p: &str) -> Attribute {
        self.pattern = Some(p.to_string());
        self
    }
}

fn model(key: &str, zh: &str, en: &str, attributes: Vec<Attribute>) -> Model {
    Model {
        key: key.to_string(),
        name_zh: zh.to_string(),
        name_en: en.to_string(),
        builtin: true,
        attributes,
    }
}

fn enum_of(values: &[&str]) -> AttrType {
    AttrType::Enum {
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

/// Model keys of the business topology, top down (joined by `belongs_to`).
pub const TOPOLOGY: [&str; 4] = ["business", "subsystem", "module", "host"];

/// The built-in models (standard 10.14 资源模型管理).
pub fn builtin_models() -> Vec<Model> {
    use AttrType::*;
    let owner = || attr("owner", "负责人", "Owner", String);
    let level = || {
        attr(
            "level",
            "重要等级",
            "Criticality",
            enum_of(&["core", "important", "general"]),
        )
    };
    vec![
        model(
            "business",
            "业务系统",
            "Business system",
            vec![
                owner().required(),
                level().required(),
                attr("description", "说明", "Description", String),
            ],
        ),
        model(
            "subsystem",
            "子系统",
            "Subsystem",
            vec![owner(), attr("description", "说明", "Description", String)],
        ),
        model(
            "module",
            "模块",
            "Module",
            vec![
                owner(),
                attr("port", "服务端口", "Service port", Integer),
                attr("description", "说明", "Description", String),
            ],
        ),
        model(
            "host",
            "主机",
            "Host",
            vec![
                attr("ip", "管理 IP", "Management IP", Ip)
                    .required()
                    .unique(),
                attr("os", "操作系统", "Operating system", String).discovered(),
                attr("kernel", "内核", "Kernel", String).discovered(),
                attr("cpus", "CPU 核数", "CPUs", Integer).discovered(),
                attr("memory_gb", "内存 (GB)", "Memory (GB)", Decimal).discovered(),
                attr("addresses", "全部地址", "All addresses", List).discovered(),
                attr("agent_version", "Agent 版本", "Agent version", String).discovered(),
                attr("serial", "序列号", "Serial number", String).unique(),
                attr(
                    "rack",
                    "机柜",
                    "Rack",
                    Reference {
                        model: "rack".into(),
                    },
                ),
                attr("owner", "负责人", "Owner", String),
                attr("ssh_user", "SSH 用户", "SSH user", String).pattern("[a-z_][a-z0-9_-]{0,31}"),
                attr("ssh_port", "SSH 端口", "SSH port", Integer),
                attr("purchase_date", "购置日期", "Purchase date", Date),
            ],
        ),
        model(
            "db_instance",
            "数据库实例",
            "Database instance",
            vec![
                attr(
                    "engine",
                    "数据库类型",
                    "Engine",
                    enum_of(&[
                        "oracle",
                        "mysql",
                        "postgresql",
                        "sqlserver",
                        "dameng",
                        "oceanbase",
                        "other",
                    ]),
                )
                .required(),
                attr("version", "版本", "Version", String),
                attr("port", "端口", "Port", Integer).required(),
                attr(
                    "host",
                    "所在主机",
                    "Host",
                    Reference {
                        model: "host".into(),
                    },
                ),
            ],
        ),
        model(
            "middleware",
            "中间件实例",
            "Middleware instance",
            vec![
                attr(
                    "kind",
                    "类型",
                    "Kind",
                    enum_of(&[
                        "nginx",
                        "tomcat",
                        "kafka",
                        "redis",
                        "rabbitmq",
                        "zookeeper",
                        "other",
                    ]),
                )
                .required(),
                attr("version", "版本", "Version", String),
                attr("port", "端口", "Port", Integer),
                attr(
                    "host",
                    "所在主机",
                    "Host",
                    Reference {
                        model: "host".into(),
                    },
                ),
            ],
        ),
        model(
            "network_device",
            "网络设备",
            "Network device",
            vec![
                attr("ip", "管理 IP", "Management IP", Ip)
                    .required()
                    .unique(),
                attr(
                    "kind",
                    "类型",
                    "Kind",
                    enum_of(&["switch", "router", "firewall", "load_balancer", "other"]),
                )
                .required(),
                attr("vendor", "厂商", "Vendor", String),
                attr("serial", "序列号", "Serial number", String).unique(),
                attr(
                    "rack",
                    "机柜",
                    "Rack",
                    Reference {
                        model: "rack".into(),
                    },
                ),
            ],
        ),
        model(
            "datacenter",
            "数据中心",
            "Data centre",
            vec![
                attr("city", "城市", "City", String).required(),
                attr("address", "地址", "Address", String),
                attr(
                    "tier",
                    "等级",
                    "Tier",
                    enum_of(&["primary", "backup", "dr"]),
                ),
            ],
        ),
        model(
            "rack",
            "机柜",
            "Rack",
            vec![
                attr(
                    "datacenter",
                    "数据中心",
                    "Data centre",
                    Reference {
                        model: "datacenter".into(),
                    },
                )
                .required(),
                attr("units", "U 数", "Units", Integer),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_models_are_valid() {
        let models = builtin_models();
        let keys: BTreeSet<String> = models.iter().map(|m| m.key.clone()).collect();
        for m in &models {
            assert_eq!(m.check(&keys), Ok(()), "{}", m.key);
        }
        assert!(TOPOLOGY.iter().all(|k| keys.contains(*k)));
    }

    #[test]
    fn bad_definitions_report_every_problem() {
        let mut m = builtin_models().remove(0);
        m.key = "Bad Key".into();
        m.attributes.push(attr("owner", "x", "x", AttrType::String));
        m.attributes.push(attr("name", "x", "x", AttrType::String));
        m.attributes
            .push(attr("e", "x", "x", AttrType::Enum { values: vec![] }));
        m.attributes.push(attr(
            "r",
            "x",
            "x",
            AttrType::Reference {
                model: "nope".into(),
            },
        ));
        m.attributes
            .push(attr("p", "x", "x", AttrType::Integer).pattern("(unclosed"));
        let errs = m.check(&BTreeSet::new()).err().unwrap_or_default();
        let codes: Vec<&str> = errs.iter().map(|e| e.code).collect();
        assert_eq!(
            codes,
            [
                "cmdb.model_key_invalid",
                "cmdb.attribute_duplicate",
                "cmdb.attribute_key_invalid",
                "cmdb.enum_empty",
                "cmdb.reference_unknown_model",
                "cmdb.pattern_invalid",
                "cmdb.pattern_not_applicable",
            ]
        );
        assert_eq!(errs[5].field, "attributes[7].pattern");
    }

    #[test]
    fn attribute_json_shape() {
        let a = attr("kind", "类型", "Kind", enum_of(&["a", "b"])).required();
        let j = serde_json::to_value(&a).unwrap_or_default();
        assert_eq!(j["type"], "enum");
        assert_eq!(j["values"], serde_json::json!(["a", "b"]));
        let back: Attribute = serde_json::from_value(j).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, a);
    }
}
