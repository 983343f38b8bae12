//! Online maturity assessments (issue 6): an assessment team rates the standard's clauses with
//! evidence, reviewers approve items, the owner signs the assessment off; levels, gaps and
//! reports come from `ballast_maturity` (one rule, one implementation).
//!
//! - `service` — every change, through the guard pipeline, with its audit record, and the
//!   assessment's state machine (draft → in_progress → in_review → signed_off, reopen);
//! - `report` — the bridge to the maturity crate: the stored rows as an `AnswerSet`, the
//!   scorecard and report, target gaps, progress, comparison;
//! - `api` — `/api/v1/assessments…` (OpenAPI);
//! - `font` — the CJK font PDF reports embed (`[assess] pdf_font`, else Debian's paths);
//! - `pages` — the web pages and forms (`/assessments…`), calling the same service functions.

pub mod api;
pub mod font;
pub mod pages;
pub mod report;
pub mod service;

use std::sync::OnceLock;

use axum::Router;
use axum::http::StatusCode;
use ballast_core::Problem;
use ballast_maturity::Catalog;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Assessment states.
pub const DRAFT: &str = "draft";
pub const IN_PROGRESS: &str = "in_progress";
pub const IN_REVIEW: &str = "in_review";
pub const SIGNED_OFF: &str = "signed_off";

/// Item review states.
pub const OPEN: &str = "open";
pub const SUBMITTED: &str = "submitted";
pub const APPROVED: &str = "approved";
pub const CHANGES_REQUESTED: &str = "changes_requested";

/// Evidence kinds.
pub const FILE: &str = "file";
pub const LINK: &str = "link";
pub const PLATFORM: &str = "platform";
pub const TEXT: &str = "text";

/// `[assess]` in `ballast.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssessConfig {
    /// Largest evidence file accepted, bytes (default 20 MiB).
    pub max_evidence_bytes: u64,
    /// The CJK font file PDF reports embed (TrueType/OpenType or a collection); when absent,
    /// the first of [`font::KNOWN_FONTS`] that exists. `BALLAST_PDF_FONT` overrides it.
    pub pdf_font: Option<std::path::PathBuf>,
}

impl Default for AssessConfig {
    fn default() -> Self {
        AssessConfig {
            max_evidence_bytes: 20 << 20,
            pdf_font: None,
        }
    }
}

static CATALOG: OnceLock<Result<Catalog, String>> = OnceLock::new();

/// The bundled catalog, loaded once.
pub fn catalog() -> ApiResult<&'static Catalog> {
    CATALOG
        .get_or_init(|| Catalog::bundled().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Problem::new(
                    "catalog.invalid",
                    format!("内置能力目录无法加载：{e}"),
                    format!("the bundled catalog cannot be loaded: {e}"),
                ),
            )
        })
}

/// The assessment routes (mounted by `crate::router`).
pub fn routes(state: &AppState) -> Router<AppState> {
    api::routes(state).merge(pages::routes(state))
}
