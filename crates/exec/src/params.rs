//! Typed parameters and plan variables, their resolution against given values, and secret
//! masking.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::target::parse_targets;
use crate::template;

/// The type of a parameter. Serialized inline with the parameter (`"type": "enum", "choices": […]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParamType {
    String,
    /// A signed 64-bit integer in decimal.
    Int,
    Enum {
        choices: Vec<String>,
    },
    /// A string that is masked wherever it could be shown.
    Secret,
    /// A target spec (see [`crate::target`]).
    HostList,
}

impl ParamType {
    pub fn name(&self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Enum { .. } => "enum",
            ParamType::Secret => "secret",
            ParamType::HostList => "host_list",
        }
    }
}

/// A declared parameter (script) or variable (job plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamDef {
    pub name: String,
    #[serde(flatten)]
    pub ty: ParamType,
    #[serde(default)]
    pub required: bool,
    /// A default value; it may refer to other variables with `${name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub description: String,
}

impl ParamDef {
    pub fn new(name: &str, ty: ParamType) -> ParamDef {
        ParamDef {
            name: name.to_string(),
            ty,
            required: false,
            default: None,
            description: String::new(),
        }
    }

    pub fn required(mut self) -> ParamDef {
        self.required = true;
        self
    }

    pub fn with_default(mut self, default: &str) -> ParamDef {
        self.default = Some(default.to_string());
        self
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters.
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    name.len() <= 64 && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One problem with parameter definitions or given values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ParamError {
    #[error("invalid parameter name `{name}`")]
    InvalidName { name: String },
    #[error("parameter `{name}` is declared twice")]
    Duplicate { name: String },
    #[error("enum parameter `{name}` has no choices")]
    NoChoices { name: String },
    #[error("unknown parameter `{name}`")]
    Unknown { name: String },
    #[error("missing required parameter `{name}`")]
    Missing { name: String },
    #[error("parameter `{name}` is not an integer: `{value}`")]
    NotInteger { name: String, value: String },
    #[error("parameter `{name}`: `{value}` is not one of the choices")]
    NotAChoice {
        name: String,
        value: String,
        choices: Vec<String>,
    },
    #[error("parameter `{name}`: bad host list: {reason}")]
    BadHostList { name: String, reason: String },
    #[error("default of `{name}` refers to undeclared variable `{reference}`")]
    UndeclaredReference { name: String, reference: String },
    #[error("variable defaults refer to each other in a cycle: {}", path.join(" → "))]
    Cycle { path: Vec<String> },
}

impl ParamError {
    pub fn code(&self) -> &'static str {
        match self {
            ParamError::InvalidName { .. } => "exec.param_name_invalid",
            ParamError::Duplicate { .. } => "exec.param_duplicate",
            ParamError::NoChoices { .. } => "exec.param_enum_empty",
            ParamError::Unknown { .. } => "exec.param_unknown",
            ParamError::Missing { .. } => "exec.param_missing",
            ParamError::NotInteger { .. } => "exec.param_not_integer",
            ParamError::NotAChoice { .. } => "exec.param_not_a_choice",
            ParamError::BadHostList { .. } => "exec.param_host_list_invalid",
            ParamError::UndeclaredReference { .. } => "exec.variable_undeclared",
            ParamError::Cycle { .. } => "exec.variable_cycle",
        }
    }

    /// The parameter concerned (the first of a cycle).
    pub fn name(&self) -> &str {
        match self {
            ParamError::InvalidName { name }
            | ParamError::Duplicate { name }
            | ParamError::NoChoices { name }
            | ParamError::Unknown { name }
            | ParamError::Missing { name }
            | ParamError::NotInteger { name, .. }
            | ParamError::NotAChoice { name, .. }
            | ParamError::BadHostList { name, .. }
            | ParamError::UndeclaredReference { name, .. } => name,
            ParamError::Cycle { path } => path.first().map(String::as_str).unwrap_or(""),
        }
    }

    pub fn message_en(&self) -> String {
        match self {
            ParamError::InvalidName { name } => format!(
                "invalid parameter name `{name}`: use letters, digits and _, not starting with a digit"
            ),
            ParamError::NotAChoice {
                name,
                value,
                choices,
            } => format!(
                "parameter `{name}`: `{value}` is not one of: {}",
                choices.join(", ")
            ),
            other => other.to_string(),
        }
    }

    pub fn message_zh(&self) -> String {
        match self {
            ParamError::InvalidName { name } => {
                format!("参数名“{name}”无效：只能使用字母、数字和下划线，且不能以数字开头")
            }
            ParamError::Duplicate { name } => format!("参数“{name}”重复声明"),
            ParamError::NoChoices { name } => format!("枚举参数“{name}”没有可选值"),
            ParamError::Unknown { name } => format!("未声明的参数“{name}”"),
            ParamError::Missing { name } => format!("缺少必填参数“{name}”"),
            ParamError::NotInteger { name, value } => {
                format!("参数“{name}”的值“{value}”不是整数")
            }
            ParamError::NotAChoice {
                name,
                value,
                choices,
            } => format!(
                "参数“{name}”的值“{value}”不在可选值中：{}",
                choices.join("、")
            ),
            ParamError::BadHostList { name, reason } => {
                format!("参数“{name}”的主机列表无效：{reason}")
            }
            ParamError::UndeclaredReference { name, reference } => {
                format!("“{name}”的默认值引用了未声明的变量“{reference}”")
            }
            ParamError::Cycle { path } => {
                format!("变量默认值之间存在循环引用：{}", path.join(" → "))
            }
        }
    }
}

/// Checks definitions alone: names, duplicates, enum choices, default references and cycles.
/// Every problem is reported.
pub fn validate_defs(defs: &[ParamDef]) -> Vec<ParamError> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for def in defs {
        if !is_valid_name(&def.name) {
            errors.push(ParamError::InvalidName {
                name: def.name.clone(),
            });
        } else if !seen.insert(def.name.as_str()) {
            errors.push(ParamError::Duplicate {
                name: def.name.clone(),
            });
        }
        if let ParamType::Enum { choices } = &def.ty
            && choices.is_empty()
        {
            errors.push(ParamError::NoChoices {
                name: def.name.clone(),
            });
        }
    }
    for def in defs {
        if let Some(default) = &def.default {
            for (reference, _) in template::references(default) {
                if !seen.contains(reference.as_str()) {
                    errors.push(ParamError::UndeclaredReference {
                        name: def.name.clone(),
                        reference,
                    });
                }
            }
        }
    }
    if let Err(path) = template::default_order(defs) {
        errors.push(ParamError::Cycle { path });
    }
    errors
}

/// Resolved parameter values, in declaration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    values: Vec<ResolvedValue>,
}

/// One resolved value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedValue {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

impl Resolved {
    /// Builds a set directly (tests, or values that were resolved and stored before).
    pub fn from_values(values: Vec<ResolvedValue>) -> Resolved {
        Resolved { values }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.value.as_str())
    }

    pub fn is_secret(&self, name: &str) -> bool {
        self.values.iter().any(|v| v.name == name && v.secret)
    }

    pub fn values(&self) -> &[ResolvedValue] {
        &self.values
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Values of secret parameters (non-empty ones), for [`mask`].
    pub fn secrets(&self) -> Vec<&str> {
        self.values
            .iter()
            .filter(|v| v.secret && !v.value.is_empty())
            .map(|v| v.value.as_str())
            .collect()
    }

    /// Name → value with secrets replaced by `******`: what may be shown, logged or audited.
    pub fn masked(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|v| {
                let shown = if v.secret {
                    MASK.to_string()
                } else {
                    mask(&v.value, &self.secrets())
                };
                (v.name.clone(), shown)
            })
            .collect()
    }
}

fn check_value(def: &ParamDef, value: &str, errors: &mut Vec<ParamError>) {
    match &def.ty {
        ParamType::String | ParamType::Secret => {}
        ParamType::Int => {
            if value.parse::<i64>().is_err() {
                errors.push(ParamError::NotInteger {
                    name: def.name.clone(),
                    value: value.to_string(),
                });
            }
        }
        ParamType::Enum { choices } => {
            if !choices.iter().any(|c| c == value) {
                errors.push(ParamError::NotAChoice {
                    name: def.name.clone(),
                    value: value.to_string(),
                    choices: choices.clone(),
                });
            }
        }
        ParamType::HostList => {
            if let Err(e) = parse_targets(value) {
                errors.push(ParamError::BadHostList {
                    name: def.name.clone(),
                    reason: e.message_en(),
                });
            }
        }
    }
}

/// Resolves given values against definitions. Given values are taken literally; defaults are
/// templates rendered with the values resolved before them (in dependency order). A parameter
/// that is neither given nor defaulted and not required resolves to the empty string without
/// a type check. Every problem is reported.
pub fn resolve(
    defs: &[ParamDef],
    given: &BTreeMap<String, String>,
) -> Result<Resolved, Vec<ParamError>> {
    let mut errors = validate_defs(defs);
    if !errors.is_empty() {
        return Err(errors);
    }
    for name in given.keys() {
        if !defs.iter().any(|d| &d.name == name) {
            errors.push(ParamError::Unknown { name: name.clone() });
        }
    }
    let order = match template::default_order(defs) {
        Ok(order) => order,
        Err(path) => return Err(vec![ParamError::Cycle { path }]),
    };
    let mut done: Vec<Option<ResolvedValue>> = vec![None; defs.len()];
    for index in order {
        let Some(def) = defs.get(index) else { continue };
        let value = if let Some(v) = given.get(&def.name) {
            check_value(def, v, &mut errors);
            v.clone()
        } else if let Some(default) = &def.default {
            let so_far = Resolved {
                values: done.iter().flatten().cloned().collect(),
            };
            match template::render(default, &so_far) {
                Ok(v) => {
                    check_value(def, &v, &mut errors);
                    v
                }
                Err(_) => {
                    // Only reachable if a referenced variable failed; already reported.
                    String::new()
                }
            }
        } else if def.required {
            errors.push(ParamError::Missing {
                name: def.name.clone(),
            });
            String::new()
        } else {
            String::new()
        };
        if let Some(slot) = done.get_mut(index) {
            *slot = Some(ResolvedValue {
                name: def.name.clone(),
                value,
                secret: def.ty == ParamType::Secret,
            });
        }
    }
    if errors.is_empty() {
        Ok(Resolved {
            values: done.into_iter().flatten().collect(),
        })
    } else {
        Err(errors)
    }
}

/// What a secret is replaced with.
pub const MASK: &str = "******";

/// Replaces every occurrence of every non-empty secret in `text` with `******`. Overlapping or
/// adjacent occurrences (of one secret or of several) are merged into one mask, so no part of a
/// secret is left visible.
pub fn mask(text: &str, secrets: &[&str]) -> String {
    let mut covered: Vec<(usize, usize)> = Vec::new();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let mut from = 0;
        while let Some(pos) = text.get(from..).and_then(|rest| rest.find(secret)) {
            let start = from + pos;
            covered.push((start, start + secret.len()));
            // Advance by one character so overlapping occurrences are found too.
            let step = text
                .get(start..)
                .and_then(|r| r.chars().next())
                .map_or(1, char::len_utf8);
            from = start + step;
        }
    }
    if covered.is_empty() {
        return text.to_string();
    }
    covered.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut i = 0;
    while i < covered.len() {
        let (start, mut end) = covered[i];
        i += 1;
        while i < covered.len() && covered[i].0 <= end {
            end = end.max(covered[i].1);
            i += 1;
        }
        out.push_str(text.get(pos..start).unwrap_or(""));
        out.push_str(MASK);
        pos = end;
    }
    out.push_str(text.get(pos..).unwrap_or(""));
    out
}

/// Merged byte ranges of every occurrence (overlapping ones included) of every non-empty secret.
fn covered_bytes(data: &[u8], secrets: &[Vec<u8>]) -> Vec<(usize, usize)> {
    let mut covered: Vec<(usize, usize)> = Vec::new();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        for (i, w) in data.windows(secret.len()).enumerate() {
            if w == secret.as_slice() {
                covered.push((i, i + secret.len()));
            }
        }
    }
    covered.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(covered.len());
    for (start, end) in covered {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Masks secrets in a stream of output chunks, even when a secret is split across two chunks.
///
/// Works on bytes (output need not be UTF-8). Each [`StreamMasker::push`] returns what can be
/// released now: everything except the last `longest secret − 1` bytes, which are held back
/// until the next chunk shows whether they begin a secret; [`StreamMasker::finish`] releases the
/// rest. Use one masker per stream (stdout, stderr).
#[derive(Debug, Clone)]
pub struct StreamMasker {
    secrets: Vec<Vec<u8>>,
    keep: usize,
    carry: Vec<u8>,
}

/// Held-back bytes beyond which a run of back-to-back secrets is released anyway (bounded memory).
const MASKER_MAX_CARRY: usize = 64 * 1024;

impl StreamMasker {
    pub fn new(secrets: &[&str]) -> StreamMasker {
        let secrets: Vec<Vec<u8>> = secrets
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let keep = secrets
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .saturating_sub(1);
        StreamMasker {
            secrets,
            keep,
            carry: Vec::new(),
        }
    }

    /// Adds a chunk; returns the masked bytes that can be released now (possibly none).
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        if self.secrets.is_empty() {
            return data.to_vec();
        }
        self.carry.extend_from_slice(data);
        let covered = covered_bytes(&self.carry, &self.secrets);
        // A secret not yet complete starts within the last `keep` bytes: hold those back. A
        // complete occurrence across the cut is held back whole (its start becomes the cut), so
        // a masked region is never split.
        let mut cut = self.carry.len().saturating_sub(self.keep);
        if let Some(&(start, end)) = covered.iter().find(|(s, e)| *s < cut && cut < *e) {
            cut = if start > 0 || self.carry.len() <= MASKER_MAX_CARRY {
                start
            } else {
                end
            };
        }
        let rest = self.carry.split_off(cut);
        let head = std::mem::replace(&mut self.carry, rest);
        let head_covered: Vec<(usize, usize)> =
            covered.into_iter().filter(|(_, e)| *e <= cut).collect();
        apply_mask(&head, &head_covered)
    }

    /// Releases what is held back, masked (the stream ended).
    pub fn finish(&mut self) -> Vec<u8> {
        let carry = std::mem::take(&mut self.carry);
        let covered = covered_bytes(&carry, &self.secrets);
        apply_mask(&carry, &covered)
    }
}

fn apply_mask(data: &[u8], covered: &[(usize, usize)]) -> Vec<u8> {
    if covered.is_empty() {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(data.len());
    let mut pos = 0;
    for &(start, end) in covered {
        out.extend_from_slice(data.get(pos..start).unwrap_or_default());
        out.extend_from_slice(MASK.as_bytes());
        pos = end;
    }
    out.extend_from_slice(data.get(pos..).unwrap_or_default());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn stream(secrets: &[&str], chunks: &[&[u8]]) -> Vec<u8> {
        let mut m = StreamMasker::new(secrets);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(m.push(c));
        }
        out.extend(m.finish());
        out
    }

    #[test]
    fn stream_masker_masks_a_secret_split_across_chunks() {
        let out = stream(&["hunter2"], &[b"pass=hun", b"ter2 ok\n"]);
        assert_eq!(out, b"pass=****** ok\n");
        // One byte per chunk.
        let text = b"a hunter2 b hunter2";
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(stream(&["hunter2"], &bytes), b"a ****** b ******");
        // Not UTF-8 around it; several secrets; a partial secret at the very end stays as is.
        let out = stream(
            &["s3cr3t", "tok"],
            &[&[0xff, b's', b'3'], b"cr3t-t", b"ok hunt"],
        );
        assert_eq!(out, [&[0xff][..], b"******-****** hunt"].concat());
        // No secrets: passes through untouched, nothing held back.
        let mut m = StreamMasker::new(&[]);
        assert_eq!(m.push(b"abc"), b"abc");
        assert!(m.finish().is_empty());
    }

    #[test]
    fn stream_masker_releases_early_and_bounds_its_memory() {
        let mut m = StreamMasker::new(&["hunter2"]);
        // Holds back at most 6 bytes of ordinary output.
        assert_eq!(m.push(b"0123456789"), b"0123");
        // Back-to-back secrets (self-overlapping runs) are still released when they grow.
        let mut m = StreamMasker::new(&["aa"]);
        let big = vec![b'a'; 200_000];
        let mut out = m.push(&big);
        out.extend(m.finish());
        assert!(!out.contains(&b'a'), "no part of a secret leaks");
    }

    #[test]
    fn stream_masker_agrees_with_mask_on_whole_text() {
        let text = "x=hunter2;y=hunter22;z=2hunter";
        for size in 1..text.len() {
            let chunks: Vec<&[u8]> = text.as_bytes().chunks(size).collect();
            assert_eq!(
                stream(&["hunter2", "22"], &chunks),
                mask(text, &["hunter2", "22"]).into_bytes(),
                "chunk size {size}"
            );
        }
    }

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn defs() -> Vec<ParamDef> {
        vec![
            ParamDef::new(
                "env",
                ParamType::Enum {
                    choices: vec!["test".into(), "prod".into()],
                },
            )
            .required(),
            ParamDef::new("count", ParamType::Int).with_default("3"),
            ParamDef::new("password", ParamType::Secret).required(),
            ParamDef::new("hosts", ParamType::HostList).with_default("local"),
            ParamDef::new("dir", ParamType::String).with_default("/srv/${env}/app"),
            ParamDef::new("note", ParamType::String),
        ]
    }

    #[test]
    fn names() {
        for ok in ["a", "_", "A_1", "abc_DEF_09"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a b", "é", "${x}"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert!(!is_valid_name(&"a".repeat(65)));
    }

    #[test]
    fn resolves_in_order_with_defaults_and_secrets() {
        let r = resolve(&defs(), &given(&[("env", "prod"), ("password", "s3cret")])).unwrap();
        let names: Vec<&str> = r.values().iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["env", "count", "password", "hosts", "dir", "note"]
        );
        assert_eq!(r.get("dir"), Some("/srv/prod/app"));
        assert_eq!(r.get("count"), Some("3"));
        assert_eq!(r.get("note"), Some(""));
        assert_eq!(r.secrets(), vec!["s3cret"]);
        assert!(r.is_secret("password") && !r.is_secret("env"));
        let masked = r.masked();
        assert_eq!(masked["password"], MASK);
        assert_eq!(masked["env"], "prod");
    }

    #[test]
    fn reports_every_problem() {
        let errs = resolve(
            &defs(),
            &given(&[
                ("env", "staging"),
                ("count", "3x"),
                ("hosts", "local,bogus"),
                ("typo", "1"),
            ]),
        )
        .unwrap_err();
        let mut codes: Vec<&str> = errs.iter().map(ParamError::code).collect();
        codes.sort_unstable();
        assert_eq!(
            codes,
            vec![
                "exec.param_host_list_invalid",
                "exec.param_missing",
                "exec.param_not_a_choice",
                "exec.param_not_integer",
                "exec.param_unknown",
            ]
        );
        for e in &errs {
            assert!(!e.message_zh().is_empty() && !e.message_en().is_empty());
        }
    }

    #[test]
    fn bad_definitions() {
        let defs = vec![
            ParamDef::new("1x", ParamType::String),
            ParamDef::new("a", ParamType::String).with_default("${b}"),
            ParamDef::new("b", ParamType::String).with_default("${a}"),
            ParamDef::new("a", ParamType::Int),
            ParamDef::new("e", ParamType::Enum { choices: vec![] }),
            ParamDef::new("f", ParamType::String).with_default("${nope}"),
        ];
        let errs = validate_defs(&defs);
        let codes: Vec<&str> = errs.iter().map(ParamError::code).collect();
        assert_eq!(
            codes,
            vec![
                "exec.param_name_invalid",
                "exec.param_duplicate",
                "exec.param_enum_empty",
                "exec.variable_undeclared",
                "exec.variable_cycle",
            ]
        );
        assert!(
            errs.iter()
                .any(|e| matches!(e, ParamError::Cycle { path } if path == &["a", "b", "a"]))
        );
    }

    #[test]
    fn default_is_type_checked_after_rendering() {
        let defs = vec![
            ParamDef::new("n", ParamType::String).with_default("x"),
            ParamDef::new("m", ParamType::Int).with_default("${n}"),
        ];
        let errs = resolve(&defs, &BTreeMap::new()).unwrap_err();
        assert_eq!(errs[0].code(), "exec.param_not_integer");
    }

    #[test]
    fn serde_shape_is_flat() {
        let def = ParamDef::new(
            "env",
            ParamType::Enum {
                choices: vec!["a".into()],
            },
        );
        let json = serde_json::to_value(&def).unwrap();
        assert_eq!(json["type"], "enum");
        assert_eq!(json["choices"][0], "a");
        let back: ParamDef = serde_json::from_value(json).unwrap();
        assert_eq!(back, def);
        let toml_def: ParamDef =
            toml::from_str("name = \"hosts\"\ntype = \"host_list\"\nrequired = true\n").unwrap();
        assert_eq!(toml_def.ty, ParamType::HostList);
        assert!(toml_def.required);
    }

    #[test]
    fn masking() {
        assert_eq!(
            mask("pw=hunter2 again hunter2", &["hunter2"]),
            "pw=****** again ******"
        );
        assert_eq!(mask("password", &["pass", "password"]), "******");
        assert_eq!(mask("xabcdx", &["abc", "bcd"]), "x******x");
        assert_eq!(mask("aaaa", &["aa"]), "******");
        assert_eq!(mask("nothing", &["", "zzz"]), "nothing");
        assert_eq!(mask("密码是秘密的", &["秘密"]), "密码是******的");
    }
}
