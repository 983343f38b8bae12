//! Job plans: the serde model (stored as JSON by the server, also written by people as TOML),
//! validation that reports every problem with its step and field, and retry timing.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::batch::BatchExpr;
use crate::error::{ExecError, line_of};
use crate::lang::Language;
use crate::params::{ParamDef, ParamError, Resolved, validate_defs};
use crate::script::MAX_SCRIPT_BYTES;
use crate::target::{TargetRef, parse_targets};
use crate::template::{references, render};

/// Default step timeout: 10 minutes.
pub const DEFAULT_TIMEOUT_SECS: u64 = 600;
/// Longest step timeout: 24 hours.
pub const MAX_TIMEOUT_SECS: u64 = 24 * 3600;
/// Most retries a step may ask for.
pub const MAX_RETRIES: u32 = 10;
/// Longest wait between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

/// One version of a job plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub variables: Vec<ParamDef>,
    pub steps: Vec<StepSpec>,
}

/// One step. Serialized flat: `{"name": "…", "kind": "script", "script": "…", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: StepKind,
    /// Target spec; may use `${var}`. Required for script, command and file steps; not allowed
    /// on confirmation and approval steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// Batch expression (see [`crate::batch`]); none = all targets at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// Most tasks of this step running at once; none = no cap beyond the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    /// Run a library script (by name; `version` none = the current online version).
    Script {
        script: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
        #[serde(default)]
        args: Vec<String>,
    },
    /// Run an inline command.
    Command { command: String, language: Language },
    /// Distribute a file.
    File {
        source: String,
        dest: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
    },
    /// Wait for an operator to confirm.
    Confirm { message: String },
    /// Wait for an approval by someone other than the run's starter.
    Approval { message: String },
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Script { .. } => "script",
            StepKind::Command { .. } => "command",
            StepKind::File { .. } => "file",
            StepKind::Confirm { .. } => "confirm",
            StepKind::Approval { .. } => "approval",
        }
    }

    /// Script, command and file steps run on targets; confirmation and approval steps do not.
    pub fn runs_on_targets(&self) -> bool {
        matches!(
            self,
            StepKind::Script { .. } | StepKind::Command { .. } | StepKind::File { .. }
        )
    }
}

/// What happens when tasks of a step fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Stop the run (default).
    #[default]
    Abort,
    /// Go on with the next step.
    Ignore,
    /// Re-run the failed hosts up to `times` more times, waiting `backoff_secs`, doubling.
    Retry { times: u32, backoff_secs: u64 },
    /// Pause for an operator's decision: retry failed hosts, skip, or abort.
    Pause,
}

/// Delay before retry number `attempt` (1-based) under `policy`: `backoff_secs × 2^(attempt−1)`,
/// at most one hour. `None` when the policy is not `Retry` or the retries are used up.
pub fn retry_delay(policy: &FailurePolicy, attempt: u32) -> Option<Duration> {
    match *policy {
        FailurePolicy::Retry {
            times,
            backoff_secs,
        } if attempt >= 1 && attempt <= times => {
            let factor = 1u64.checked_shl(attempt - 1).unwrap_or(u64::MAX);
            let secs = backoff_secs.saturating_mul(factor);
            Some(Duration::from_secs(secs).min(MAX_RETRY_DELAY))
        }
        _ => None,
    }
}

/// One problem in a plan: what (`code`), where (step and field) and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanError {
    pub code: &'static str,
    /// 0-based step index, if the problem is in a step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,
    /// The field, e.g. `targets`, `args[1]`, `variables.env`, `on_failure.times`.
    pub field: String,
    pub detail_zh: String,
    pub detail_en: String,
}

impl PlanError {
    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message_en(&self) -> String {
        match (self.step_index, &self.step_name) {
            (Some(i), Some(n)) => {
                format!("step {} `{}`, {}: {}", i + 1, n, self.field, self.detail_en)
            }
            (Some(i), None) => format!("step {}, {}: {}", i + 1, self.field, self.detail_en),
            _ => format!("{}: {}", self.field, self.detail_en),
        }
    }

    pub fn message_zh(&self) -> String {
        match (self.step_index, &self.step_name) {
            (Some(i), Some(n)) => {
                format!("第 {} 步“{}”，{}：{}", i + 1, n, self.field, self.detail_zh)
            }
            (Some(i), None) => format!("第 {} 步，{}：{}", i + 1, self.field, self.detail_zh),
            _ => format!("{}：{}", self.field, self.detail_zh),
        }
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.message_en(), self.code)
    }
}

struct Collector<'a> {
    errors: Vec<PlanError>,
    step: Option<(usize, &'a str)>,
}

impl Collector<'_> {
    fn push(&mut self, code: &'static str, field: &str, zh: String, en: String) {
        self.errors.push(PlanError {
            code,
            step_index: self.step.map(|(i, _)| i),
            step_name: self
                .step
                .and_then(|(_, n)| (!n.is_empty()).then(|| n.to_string())),
            field: field.to_string(),
            detail_zh: zh,
            detail_en: en,
        });
    }

    fn refs(&mut self, declared: &BTreeSet<&str>, field: &str, text: &str) {
        for (name, _) in references(text) {
            if !declared.contains(name.as_str()) {
                self.push(
                    "exec.variable_undeclared",
                    field,
                    format!("引用了未声明的变量“{name}”（字面的 $ 请写作 $$）"),
                    format!("refers to undeclared variable `{name}` (write a literal $ as $$)"),
                );
            }
        }
    }

    fn required(&mut self, field: &str, value: &str) -> bool {
        if value.trim().is_empty() {
            self.push(
                "exec.plan_field_empty",
                field,
                "不能为空".to_string(),
                "must not be empty".to_string(),
            );
            false
        } else {
            true
        }
    }
}

fn is_octal_mode(m: &str) -> bool {
    (3..=4).contains(&m.len()) && m.bytes().all(|b| (b'0'..=b'7').contains(&b))
}

/// Validates a plan and reports every problem at once. `known_scripts(name, version)` says
/// whether a script (and, if given, that version) exists.
pub fn validate(
    plan: &PlanSpec,
    known_scripts: &dyn Fn(&str, Option<u32>) -> bool,
) -> Result<(), Vec<PlanError>> {
    let mut c = Collector {
        errors: Vec::new(),
        step: None,
    };
    c.required("name", &plan.name);
    for e in validate_defs(&plan.variables) {
        let field = match &e {
            ParamError::Cycle { .. } => "variables".to_string(),
            other => format!("variables.{}", other.name()),
        };
        c.push(e.code(), &field, e.message_zh(), e.message_en());
    }
    let declared: BTreeSet<&str> = plan.variables.iter().map(|v| v.name.as_str()).collect();
    if plan.steps.is_empty() {
        c.push(
            "exec.plan_empty",
            "steps",
            "作业方案至少需要一个步骤".to_string(),
            "a plan needs at least one step".to_string(),
        );
    }
    let mut names = BTreeSet::new();
    for (i, step) in plan.steps.iter().enumerate() {
        c.step = Some((i, step.name.as_str()));
        if c.required("name", &step.name) && !names.insert(step.name.trim()) {
            c.push(
                "exec.step_duplicate",
                "name",
                "步骤名称重复".to_string(),
                "another step has the same name".to_string(),
            );
        }
        validate_kind(&mut c, &declared, &step.kind, known_scripts);
        match (&step.targets, step.kind.runs_on_targets()) {
            (Some(t), true) => {
                c.refs(&declared, "targets", t);
                if references(t).is_empty()
                    && let Err(e) = parse_targets(t)
                {
                    c.push(
                        "exec.target_invalid",
                        "targets",
                        e.message_zh(),
                        e.message_en(),
                    );
                }
            }
            (None, true) => c.push(
                "exec.step_targets_missing",
                "targets",
                "执行类步骤需要指定目标".to_string(),
                "this step runs on targets; give a target spec".to_string(),
            ),
            (Some(_), false) => c.push(
                "exec.step_targets_not_allowed",
                "targets",
                "确认/审批步骤不在主机上执行，不能指定目标".to_string(),
                "confirmation and approval steps do not run on hosts; remove the targets"
                    .to_string(),
            ),
            (None, false) => {}
        }
        if step.timeout_secs == 0 || step.timeout_secs > MAX_TIMEOUT_SECS {
            c.push(
                "exec.step_timeout_invalid",
                "timeout_secs",
                format!("超时必须在 1 到 {MAX_TIMEOUT_SECS} 秒之间"),
                format!("timeout must be from 1 to {MAX_TIMEOUT_SECS} seconds"),
            );
        }
        if let FailurePolicy::Retry { times, .. } = step.on_failure
            && (times == 0 || times > MAX_RETRIES)
        {
            c.push(
                "exec.step_retry_invalid",
                "on_failure.times",
                format!("重试次数必须在 1 到 {MAX_RETRIES} 之间"),
                format!("retry times must be from 1 to {MAX_RETRIES}"),
            );
        }
        if let Some(b) = &step.batch {
            if let Err(e) = b.parse::<BatchExpr>() {
                c.push(e.code(), "batch", e.message_zh(), e.message_en());
            } else if !step.kind.runs_on_targets() {
                c.push(
                    "exec.step_batch_not_allowed",
                    "batch",
                    "确认/审批步骤不能分批".to_string(),
                    "confirmation and approval steps have no batches".to_string(),
                );
            }
        }
        if step.concurrency == Some(0) {
            c.push(
                "exec.step_concurrency_invalid",
                "concurrency",
                "并发数至少为 1".to_string(),
                "concurrency must be at least 1".to_string(),
            );
        }
    }
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(c.errors)
    }
}

fn validate_kind(
    c: &mut Collector<'_>,
    declared: &BTreeSet<&str>,
    kind: &StepKind,
    known_scripts: &dyn Fn(&str, Option<u32>) -> bool,
) {
    match kind {
        StepKind::Script {
            script,
            version,
            args,
        } => {
            if c.required("script", script) && !known_scripts(script, *version) {
                let what = match version {
                    Some(v) => format!("{script} v{v}"),
                    None => script.clone(),
                };
                c.push(
                    "exec.script_unknown",
                    "script",
                    format!("脚本“{what}”不存在"),
                    format!("no script `{what}`"),
                );
            }
            for (j, a) in args.iter().enumerate() {
                c.refs(declared, &format!("args[{j}]"), a);
            }
        }
        StepKind::Command { command, .. } => {
            if c.required("command", command) {
                if command.len() > MAX_SCRIPT_BYTES {
                    c.push(
                        "exec.script_too_large",
                        "command",
                        format!("命令超过 {MAX_SCRIPT_BYTES} 字节"),
                        format!("the command is longer than {MAX_SCRIPT_BYTES} bytes"),
                    );
                }
                c.refs(declared, "command", command);
            }
        }
        StepKind::File { source, dest, mode } => {
            if c.required("source", source) {
                c.refs(declared, "source", source);
            }
            if c.required("dest", dest) {
                c.refs(declared, "dest", dest);
                if references(dest).is_empty() && !dest.starts_with('/') {
                    c.push(
                        "exec.step_dest_not_absolute",
                        "dest",
                        "目标路径必须是绝对路径".to_string(),
                        "the destination must be an absolute path".to_string(),
                    );
                }
                if dest.split('/').any(|part| part == "..") {
                    c.push(
                        "exec.step_dest_parent",
                        "dest",
                        "目标路径不能包含 ..".to_string(),
                        "the destination must not contain `..`".to_string(),
                    );
                }
            }
            if let Some(m) = mode
                && !is_octal_mode(m)
            {
                c.push(
                    "exec.step_mode_invalid",
                    "mode",
                    "权限应为 3 或 4 位八进制数，例如 0644".to_string(),
                    "mode must be 3 or 4 octal digits, e.g. 0644".to_string(),
                );
            }
        }
        StepKind::Confirm { message } | StepKind::Approval { message } => {
            if c.required("message", message) {
                c.refs(declared, "message", message);
            }
        }
    }
}

impl StepSpec {
    /// The step with every `${var}` rendered (arguments, command, file paths, message, targets).
    pub fn rendered(&self, values: &Resolved) -> Result<StepSpec, ExecError> {
        let kind = match &self.kind {
            StepKind::Script {
                script,
                version,
                args,
            } => StepKind::Script {
                script: script.clone(),
                version: *version,
                args: args
                    .iter()
                    .map(|a| render(a, values))
                    .collect::<Result<_, _>>()?,
            },
            StepKind::Command { command, language } => StepKind::Command {
                command: render(command, values)?,
                language: *language,
            },
            StepKind::File { source, dest, mode } => StepKind::File {
                source: render(source, values)?,
                dest: render(dest, values)?,
                mode: mode.clone(),
            },
            StepKind::Confirm { message } => StepKind::Confirm {
                message: render(message, values)?,
            },
            StepKind::Approval { message } => StepKind::Approval {
                message: render(message, values)?,
            },
        };
        Ok(StepSpec {
            kind,
            targets: self
                .targets
                .as_deref()
                .map(|t| render(t, values))
                .transpose()?,
            ..self.clone()
        })
    }

    /// The step's targets, rendered and parsed (empty for steps without targets).
    pub fn resolve_targets(&self, values: &Resolved) -> Result<Vec<TargetRef>, ExecError> {
        match &self.targets {
            None => Ok(Vec::new()),
            Some(t) => Ok(parse_targets(&render(t, values)?)?),
        }
    }

    /// The step's batch expression, parsed.
    pub fn batch_expr(&self) -> Result<Option<BatchExpr>, ExecError> {
        self.batch.as_deref().map(str::parse).transpose()
    }
}

impl PlanSpec {
    /// Every `(script, version)` the plan names, in step order (to record what a run used).
    pub fn script_refs(&self) -> Vec<(&str, Option<u32>)> {
        self.steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Script {
                    script, version, ..
                } => Some((script.as_str(), *version)),
                _ => None,
            })
            .collect()
    }
}

const PLAN_KEYS: &[&str] = &["name", "description", "variables", "steps"];
const VARIABLE_KEYS: &[&str] = &[
    "name",
    "type",
    "choices",
    "required",
    "default",
    "description",
];
const STEP_KEYS: &[&str] = &[
    "name",
    "kind",
    "targets",
    "timeout_secs",
    "on_failure",
    "batch",
    "concurrency",
];
const FAILURE_KEYS: &[&str] = &["policy", "times", "backoff_secs"];

fn kind_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "script" => &["script", "version", "args"],
        "command" => &["command", "language"],
        "file" => &["source", "dest", "mode"],
        "confirm" | "approval" => &["message"],
        _ => &[],
    }
}

/// Fields serde would silently ignore (the flat step shape rules out `deny_unknown_fields`).
fn unknown_keys(doc: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(plan) = doc.as_object() else {
        return out;
    };
    for k in plan.keys().filter(|k| !PLAN_KEYS.contains(&k.as_str())) {
        out.push(k.clone());
    }
    if let Some(vars) = plan.get("variables").and_then(|v| v.as_array()) {
        for (i, v) in vars.iter().enumerate() {
            for k in v.as_object().into_iter().flat_map(|o| o.keys()) {
                if !VARIABLE_KEYS.contains(&k.as_str()) {
                    out.push(format!("variables[{i}].{k}"));
                }
            }
        }
    }
    if let Some(steps) = plan.get("steps").and_then(|v| v.as_array()) {
        for (i, s) in steps.iter().enumerate() {
            let Some(obj) = s.as_object() else { continue };
            let kind = obj.get("kind").and_then(|k| k.as_str()).unwrap_or("");
            for k in obj.keys() {
                if !STEP_KEYS.contains(&k.as_str()) && !kind_keys(kind).contains(&k.as_str()) {
                    out.push(format!("steps[{i}].{k}"));
                }
            }
            if let Some(f) = obj.get("on_failure").and_then(|f| f.as_object()) {
                for k in f.keys().filter(|k| !FAILURE_KEYS.contains(&k.as_str())) {
                    out.push(format!("steps[{i}].on_failure.{k}"));
                }
            }
        }
    }
    out
}

fn from_value(doc: serde_json::Value, format: &'static str) -> Result<PlanSpec, ExecError> {
    let unknown = unknown_keys(&doc);
    if !unknown.is_empty() {
        return Err(ExecError::Parse {
            format,
            line: None,
            message: format!("unknown field(s): {}", unknown.join(", ")),
        });
    }
    serde_json::from_value(doc).map_err(|e| ExecError::Parse {
        format,
        line: None,
        message: e.to_string(),
    })
}

/// Reads a plan from JSON, refusing unknown fields.
pub fn plan_from_json(text: &str) -> Result<PlanSpec, ExecError> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| ExecError::Parse {
        format: "JSON",
        line: Some(e.line()),
        message: e.to_string(),
    })?;
    from_value(doc, "JSON")
}

/// Reads a plan from TOML (`[[variables]]`, `[[steps]]` tables), refusing unknown fields.
pub fn plan_from_toml(text: &str) -> Result<PlanSpec, ExecError> {
    let doc: serde_json::Value = toml::from_str(text).map_err(|e| ExecError::Parse {
        format: "TOML",
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().to_string(),
    })?;
    from_value(doc, "TOML")
}

/// Writes a plan as TOML.
pub fn plan_to_toml(plan: &PlanSpec) -> Result<String, ExecError> {
    toml::to_string(plan).map_err(|e| ExecError::Parse {
        format: "TOML",
        line: None,
        message: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::params::{ParamType, ResolvedValue};

    const PLAN_TOML: &str = r#"
name = "deploy web"
description = "two steps"

[[variables]]
name = "app"
type = "string"
default = "web"

[[variables]]
name = "hosts"
type = "host_list"
required = true

[[variables]]
name = "token"
type = "secret"

[[steps]]
name = "stop"
kind = "script"
script = "stop-service"
version = 3
args = ["${app}", "--token", "${token}"]
targets = "${hosts}"
batch = "10%"
concurrency = 50
on_failure = { policy = "retry", times = 3, backoff_secs = 5 }

[[steps]]
name = "confirm"
kind = "confirm"
message = "stopped ${app}; continue?"

[[steps]]
name = "copy"
kind = "file"
source = "web.conf"
dest = "/etc/${app}/web.conf"
mode = "0644"
targets = "agent:*,ssh://ops@10.0.0.2:2222"
timeout_secs = 60
on_failure = { policy = "pause" }
"#;

    fn known(name: &str, version: Option<u32>) -> bool {
        name == "stop-service" && version.is_none_or(|v| v <= 3)
    }

    #[test]
    fn toml_plan_parses_and_validates() {
        let plan = plan_from_toml(PLAN_TOML).unwrap();
        assert_eq!(plan.steps.len(), 3);
        assert_eq!(plan.steps[1].timeout_secs, DEFAULT_TIMEOUT_SECS);
        assert_eq!(plan.steps[1].on_failure, FailurePolicy::Abort);
        assert_eq!(
            plan.steps[0].on_failure,
            FailurePolicy::Retry {
                times: 3,
                backoff_secs: 5
            }
        );
        assert_eq!(plan.script_refs(), vec![("stop-service", Some(3))]);
        validate(&plan, &known).unwrap();
        // JSON round trip, the server's storage format.
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(plan_from_json(&json).unwrap(), plan);
        let toml_again = plan_to_toml(&plan).unwrap();
        assert_eq!(plan_from_toml(&toml_again).unwrap(), plan);
    }

    #[test]
    fn renders_steps() {
        let plan = plan_from_toml(PLAN_TOML).unwrap();
        let values = Resolved::from_values(vec![
            ResolvedValue {
                name: "app".into(),
                value: "web".into(),
                secret: false,
            },
            ResolvedValue {
                name: "hosts".into(),
                value: "local,agent:a1".into(),
                secret: false,
            },
            ResolvedValue {
                name: "token".into(),
                value: "t0k".into(),
                secret: true,
            },
        ]);
        let s = plan.steps[0].rendered(&values).unwrap();
        assert_eq!(
            s.kind,
            StepKind::Script {
                script: "stop-service".into(),
                version: Some(3),
                args: vec!["web".into(), "--token".into(), "t0k".into()]
            }
        );
        assert_eq!(
            plan.steps[0].resolve_targets(&values).unwrap(),
            vec![TargetRef::Local, TargetRef::agent("a1")]
        );
        assert_eq!(
            plan.steps[0].batch_expr().unwrap(),
            Some(BatchExpr::Percent(10))
        );
        assert_eq!(plan.steps[1].resolve_targets(&values).unwrap(), vec![]);
    }

    #[test]
    fn reports_every_problem_with_step_and_field() {
        let bad = r#"
name = "bad"
[[variables]]
name = "a"
type = "string"
default = "${b}"
[[variables]]
name = "b"
type = "string"
default = "${a}"

[[steps]]
name = "one"
kind = "script"
script = "missing"
args = ["${nope}"]
targets = "local,bogus"
timeout_secs = 0
batch = "0%"
concurrency = 0
on_failure = { policy = "retry", times = 11, backoff_secs = 1 }

[[steps]]
name = "one"
kind = "command"
command = "echo ${HOME}"
language = "bash"

[[steps]]
name = "ask"
kind = "approval"
message = "ok?"
targets = "local"
timeout_secs = 90000

[[steps]]
name = "copy"
kind = "file"
source = "x"
dest = "etc/../x"
mode = "999"
targets = "agent:${host}"
"#;
        let plan = plan_from_toml(bad).unwrap();
        let errs = validate(&plan, &known).unwrap_err();
        let got: Vec<(Option<usize>, &str, &str)> = errs
            .iter()
            .map(|e| (e.step_index, e.field.as_str(), e.code))
            .collect();
        assert_eq!(
            got,
            vec![
                (None, "variables", "exec.variable_cycle"),
                (Some(0), "script", "exec.script_unknown"),
                (Some(0), "args[0]", "exec.variable_undeclared"),
                (Some(0), "targets", "exec.target_invalid"),
                (Some(0), "timeout_secs", "exec.step_timeout_invalid"),
                (Some(0), "on_failure.times", "exec.step_retry_invalid"),
                (Some(0), "batch", "exec.batch_invalid"),
                (Some(0), "concurrency", "exec.step_concurrency_invalid"),
                (Some(1), "name", "exec.step_duplicate"),
                (Some(1), "command", "exec.variable_undeclared"),
                (Some(1), "targets", "exec.step_targets_missing"),
                (Some(2), "targets", "exec.step_targets_not_allowed"),
                (Some(2), "timeout_secs", "exec.step_timeout_invalid"),
                (Some(3), "dest", "exec.step_dest_not_absolute"),
                (Some(3), "dest", "exec.step_dest_parent"),
                (Some(3), "mode", "exec.step_mode_invalid"),
                (Some(3), "targets", "exec.variable_undeclared"),
            ]
        );
        let first = &errs[1];
        assert_eq!(
            first.message_en(),
            "step 1 `one`, script: no script `missing`"
        );
        assert_eq!(
            first.message_zh(),
            "第 1 步“one”，script：脚本“missing”不存在"
        );
    }

    #[test]
    fn empty_plan() {
        let plan = PlanSpec {
            name: " ".into(),
            description: String::new(),
            variables: vec![ParamDef::new("x", ParamType::Int)],
            steps: vec![],
        };
        let codes: Vec<&str> = validate(&plan, &known)
            .unwrap_err()
            .iter()
            .map(|e| e.code)
            .collect();
        assert_eq!(codes, vec!["exec.plan_field_empty", "exec.plan_empty"]);
    }

    #[test]
    fn unknown_fields_and_syntax_errors_are_refused() {
        let err = plan_from_toml("name = \"x\"\nsteps = []\ncolour = 1\n").unwrap_err();
        assert!(err.message_en().contains("colour"), "{}", err.message_en());
        let err = plan_from_toml(
            "name = \"x\"\n[[steps]]\nname = \"s\"\nkind = \"confirm\"\nmessage = \"m\"\ntimeout = 5\n",
        )
        .unwrap_err();
        assert!(
            err.message_en().contains("steps[0].timeout"),
            "{}",
            err.message_en()
        );
        let err = plan_from_toml("name = \"x\"\n\nsteps = [\n").unwrap_err();
        assert_eq!(err.code(), "exec.document_invalid");
        assert!(
            matches!(err, ExecError::Parse { line: Some(_), .. }),
            "{err:?}"
        );
        let err = plan_from_json(
            "{\"name\": \"x\", \"steps\": [{\"name\": \"s\", \"kind\": \"teleport\"}]}",
        )
        .unwrap_err();
        assert!(
            err.message_en().contains("teleport"),
            "{}",
            err.message_en()
        );
    }

    #[test]
    fn retry_delays() {
        let p = FailurePolicy::Retry {
            times: 4,
            backoff_secs: 10,
        };
        let got: Vec<Option<u64>> = (0..=5)
            .map(|a| retry_delay(&p, a).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            got,
            vec![None, Some(10), Some(20), Some(40), Some(80), None]
        );
        let big = FailurePolicy::Retry {
            times: 10,
            backoff_secs: 1000,
        };
        assert_eq!(retry_delay(&big, 10), Some(MAX_RETRY_DELAY));
        let huge = FailurePolicy::Retry {
            times: u32::MAX,
            backoff_secs: u64::MAX,
        };
        assert_eq!(retry_delay(&huge, 200), Some(MAX_RETRY_DELAY));
        assert_eq!(retry_delay(&FailurePolicy::Abort, 1), None);
        assert_eq!(retry_delay(&FailurePolicy::Pause, 1), None);
    }
}
