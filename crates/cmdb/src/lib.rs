//! `ballast-cmdb`: the pure domain of the configuration-management database. No IO, no clock,
//! no database, no web framework: the server calls these functions with values.
//!
//! | module | what |
//! |---|---|
//! | [`model`] | CI types ([`Model`]) with typed attributes ([`AttrType`]), required/unique constraints, validation patterns; the built-in models |
//! | [`validate`] | an instance's attributes checked and normalised against its model, reporting every problem with its field |
//! | [`relation`] | relation kinds (`runs_on`, `belongs_to`, `depends_on`, `connects_to`), which models they join, cardinality and cycle rules |
//! | [`query`] | the filter language (`business = "集中交易" and os ~ "CentOS"`): parser with column-positioned errors, evaluator over an instance and its topology |
//! | [`exchange`] | the model exchange file (JSON, versioned) and the diff that says whether a change invalidates existing data |
//! | [`error`] | [`FieldError`] and the [`Msg`] trait: stable codes, Chinese and English messages |

pub mod error;
pub mod exchange;
pub mod model;
pub mod query;
pub mod relation;
pub mod validate;

pub use error::{FieldError, Msg};
pub use exchange::{ModelChange, ModelDiff, ModelFile, diff_models};
pub use model::{AttrType, Attribute, Model, builtin_models};
pub use query::{Ancestor, Expr, Prefilter, Query, QueryError, Subject};
pub use relation::{Cardinality, Direction, RelationError, RelationKind};
pub use validate::{Attributes, validate_attributes};
