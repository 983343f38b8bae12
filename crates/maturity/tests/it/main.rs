//! Integration tests of the maturity crate, in one test binary (see ARCHITECTURE.md, "Tests").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod answers;
mod catalog;
mod reports;
mod scoring;
mod standard_text;

use std::sync::OnceLock;

use ballast_maturity::{Answer, AnswerSet, Catalog, ClauseId, Rating, Scope};

/// The bundled catalog, loaded once per test binary.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::bundled().unwrap_or_else(|e| panic!("bundled catalog: {e}")))
}

/// An answer set with the given ratings (and `scope` tables, or every item).
pub fn answers_with(
    scope: Option<&[u32]>,
    ratings: impl IntoIterator<Item = (ClauseId, Rating)>,
) -> AnswerSet {
    let scope = match scope {
        Some(tables) => Scope(Some(tables.iter().copied().collect())),
        None => Scope::all(),
    };
    AnswerSet {
        scope,
        answers: ratings
            .into_iter()
            .map(|(id, rating)| {
                let justification = (rating == Rating::Na).then(|| "n/a in tests".to_string());
                (
                    id,
                    Answer {
                        rating,
                        justification,
                        ..Answer::default()
                    },
                )
            })
            .collect(),
        ..AnswerSet::default()
    }
}
