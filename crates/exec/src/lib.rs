//! `ballast-exec`: the pure domain of the execution engine. No IO, no clock, no async runtime,
//! no database: the server and the transports call these functions with contents and values.
//!
//! Module map:
//!
//! | module | what |
//! |---|---|
//! | [`lang`] | [`Language`]: bash, sh, python3 — interpreter and file extension |
//! | [`script`] | script version states and transitions, approver ≠ author, where a version may run, size limit, version diff |
//! | [`params`] | typed parameters/variables ([`ParamDef`]), resolution against given values reporting every problem, secret masking |
//! | [`template`] | `${name}` references and rendering (`$$` = `$`), cycle detection among variable defaults |
//! | [`plan`] | the job-plan model ([`PlanSpec`], [`StepSpec`], [`StepKind`], [`FailurePolicy`]), JSON/TOML reading, validation, retry delays |
//! | [`target`] | target specs: `local`, `agent:HOST`, `agent:*`, `ssh://user@host:port` |
//! | [`batch`] | rolling-batch expressions `10`, `10%`, `+10`, `*2`, `5*2` and their batch sizes |
//! | [`danger`] | dangerous-command detection on parsed scripts (shell via `brush-parser`, python via a string-literal scan, SQL via `sqlparser`) with admin-managed rules |
//! | [`status`] | run/step/task states and the pure step-verdict and run-status functions |
//! | [`error`] | [`ExecError`]: stable codes, Chinese and English messages |

pub mod batch;
pub mod danger;
pub mod error;
pub mod lang;
pub mod params;
pub mod plan;
pub mod script;
pub mod status;
pub mod target;
pub mod template;

pub use batch::BatchExpr;
pub use danger::{Action, Finding, Rule, Scan, ScanLanguage, default_rules, rules_from_toml, scan};
pub use error::ExecError;
pub use lang::Language;
pub use params::{ParamDef, ParamError, ParamType, Resolved, StreamMasker, mask, resolve};
pub use plan::{FailurePolicy, PlanError, PlanSpec, StepKind, StepSpec, retry_delay, validate};
pub use script::{DiffKind, DiffLine, MAX_SCRIPT_BYTES, NeedsApproval, VersionState};
pub use status::{Decision, RunStatus, StepStatus, StepVerdict, TaskStatus, step_outcome};
pub use target::{TargetError, TargetRef, parse_targets};
