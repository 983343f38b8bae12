//! The assessments' web pages (read-only for now): the list, with both maturity levels and the
//! rating progress kept apart, and an assessment's overview (levels, progress, items with
//! assessor, reviewer, review state, level and target, gaps toward the targets, expired-evidence
//! notices for the assessors). Changes are made through the API and the CLI.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::api::{AssessmentSummary, AssessmentView, list, load, view};
use super::service::authorize_read;
use crate::api::Id;
use crate::state::AppState;
use crate::ui::{Me, Page, Tr, html};

/// How the pages show a level (or none: out of scope) and an optional name.
trait Show {
    fn lvl(&self, v: impl std::borrow::Borrow<Option<u8>>) -> String {
        v.borrow()
            .map_or_else(|| "—".to_string(), |l| l.to_string())
    }
    fn opt<'a>(&self, v: impl std::borrow::Borrow<Option<&'a str>>) -> String {
        v.borrow().unwrap_or("—").to_string()
    }
}

#[derive(Template)]
#[template(path = "assess_list.html")]
struct ListPage {
    t: Tr,
    me: Option<Me>,
    error: Option<String>,
    rows: Vec<AssessmentSummary>,
}

impl Show for ListPage {}
impl Show for ViewPage {}

#[derive(Template)]
#[template(path = "assess_view.html")]
struct ViewPage {
    t: Tr,
    me: Option<Me>,
    v: AssessmentView,
    notices: Vec<String>,
}

fn refused(t: Tr, e: &crate::error::ApiError) -> Response {
    (e.status, t.problem(&e.problem)).into_response()
}

async fn list_page(State(state): State<AppState>, page: Page) -> Response {
    if let Err(e) = authorize_read(&state, page.principal(), "assessment.list").await {
        return refused(page.t, &e);
    }
    let (rows, error) = match list(&state).await {
        Ok(r) => (r, None),
        Err(e) => (Vec::new(), Some(page.t.problem(&e.problem))),
    };
    html(ListPage {
        t: page.t,
        me: Some(page.me()),
        error,
        rows,
    })
}

async fn view_page(State(state): State<AppState>, page: Page, Id(id): Id) -> Response {
    if let Err(e) = authorize_read(&state, page.principal(), "assessment.read").await {
        return refused(page.t, &e);
    }
    let loaded = match load(&state, id).await {
        Ok(l) => l,
        Err(e) => return refused(page.t, &e),
    };
    let v = match view(&loaded) {
        Ok(v) => v,
        Err(e) => return refused(page.t, &e),
    };
    let notices = loaded
        .evidence
        .iter()
        .filter(|e| e.expired_at.is_some())
        .map(|e| {
            let expires = e.expires_on.map(|d| d.to_string()).unwrap_or_default();
            page.t
                .pick(
                    &format!(
                        "条款 {} 的证据 {}（有效期至 {expires}）已过期，该条款已退回未评",
                        e.clause_id, e.name
                    ),
                    &format!(
                        "evidence {} of clause {} expired (valid through {expires}); the clause is unrated again",
                        e.name, e.clause_id
                    ),
                )
                .to_string()
        })
        .collect();
    html(ViewPage {
        t: page.t,
        me: Some(page.me()),
        v,
        notices,
    })
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/assessments", get(list_page))
        .route("/assessments/{id}", get(view_page))
}
