//! Conformance cases for online assessments ([`crate::assessment`]).
//!
//! Behaviour pinned down beyond the signatures: a duplicate assessment name, or an item, answer,
//! evidence or action of an assessment that does not exist, is a `Conflict`; a change to an
//! unknown assessment or action is `NotFound`; items and answers are replaced by key; evidence
//! bytes come back verbatim; `expired_evidence` takes unhandled evidence whose expiry date is
//! before the given day (not on it), never of a signed-off assessment, by id;
//! `mark_evidence_expired` succeeds once; `lock_assessment` makes read-modify-write
//! transactions on one assessment take turns (no lost update when many run at once).

use chrono::NaiveDate;
use serde_json::json;

use ballast_core::audit::Outcome;

use super::{Must, assert_conflict, assert_not_found, at, draft, join_all};
use crate::Store;
use crate::assessment::{
    AnswerRow, AssessmentItemRow, AssessmentRow, EvidenceRow, ImprovementActionRow,
};

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).must("date")
}

pub(super) fn assessment_row(name: &str) -> AssessmentRow {
    AssessmentRow {
        id: 0,
        name: name.to_string(),
        catalog_id: "jrt-ops-automation-maturity".to_string(),
        catalog_version: "draft-2024-songshen".to_string(),
        scope: "T4,T5".to_string(),
        targets: json!({"4": 2, "5": 3}),
        meta: json!({"organization": "示例证券"}),
        owner: "alice".to_string(),
        state: "draft".to_string(),
        created_by: "alice".to_string(),
        created_at: at(0),
        updated_by: "alice".to_string(),
        updated_at: at(0),
        signed_off_by: None,
        signed_off_at: None,
    }
}

pub(super) fn item_row(assessment_id: i64, table: i64) -> AssessmentItemRow {
    AssessmentItemRow {
        assessment_id,
        item_table: table,
        assessor: Some("bob".to_string()),
        reviewer: Some("carol".to_string()),
        review_state: "open".to_string(),
        review_comment: None,
        reviewed_by: None,
        reviewed_at: None,
    }
}

pub(super) fn answer_row(assessment_id: i64, clause: &str, rating: &str) -> AnswerRow {
    AnswerRow {
        assessment_id,
        clause_id: clause.to_string(),
        item_table: 5,
        rating: rating.to_string(),
        comment: Some("说明".to_string()),
        justification: (rating == "na").then(|| "不适用理由".to_string()),
        na_approved_by: None,
        rated_by: Some("bob".to_string()),
        rated_at: Some(at(1)),
    }
}

pub(super) fn evidence_row(
    assessment_id: i64,
    kind: &str,
    expires: Option<NaiveDate>,
) -> EvidenceRow {
    EvidenceRow {
        id: 0,
        assessment_id,
        clause_id: "T5.1.L1.a".to_string(),
        kind: kind.to_string(),
        name: if kind == "file" {
            "制度.pdf".to_string()
        } else {
            "https://wiki.example.com/policy".to_string()
        },
        sha256: (kind == "file").then(|| "ab".repeat(32)),
        size: (kind == "file").then_some(3),
        expires_on: expires,
        added_by: "bob".to_string(),
        added_at: at(2),
        expired_at: None,
    }
}

pub(super) fn action_row(assessment_id: i64) -> ImprovementActionRow {
    ImprovementActionRow {
        id: 0,
        assessment_id,
        item_table: 5,
        title: "建立变更窗口策略".to_string(),
        owner: "dave".to_string(),
        due_on: day(2027, 3, 31),
        status: "open".to_string(),
        clause_ids: vec!["T5.3.L2.c".to_string(), "T5.3.L2.a".to_string()],
        created_by: "alice".to_string(),
        created_at: at(3),
        updated_by: "alice".to_string(),
        updated_at: at(3),
    }
}

async fn commit(tx: Box<dyn crate::Tx>, action: &str) {
    tx.commit(vec![draft("alice", action, Outcome::Success)], at(0))
        .await
        .must(action);
}

async fn insert(store: &dyn Store, a: &AssessmentRow) -> crate::Result<i64> {
    let mut tx = store.begin().await.must("begin");
    let id = tx.insert_assessment(a).await?;
    commit(tx, "assessment.create").await;
    Ok(id)
}

/// Assessments: unique names, read back as written, replaced, locked and read in a transaction.
pub async fn assessments_create_update_lock(store: &dyn Store) {
    let a = assessment_row("2026 年度自评估");
    let id = insert(store, &a).await.must("insert");
    let read = store
        .assessment(id)
        .await
        .must("read")
        .must("the assessment");
    assert_eq!(read, AssessmentRow { id, ..a.clone() });
    assert_conflict(insert(store, &a).await, "a duplicate assessment name");
    let b = insert(store, &assessment_row("2025"))
        .await
        .must("insert 2025");
    assert_eq!(
        store
            .assessments()
            .await
            .must("list")
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        [id, b],
        "by id"
    );
    assert_eq!(store.assessment(b + 100).await.must("unknown"), None);

    let mut tx = store.begin().await.must("begin");
    let locked = tx.lock_assessment(id).await.must("lock").must("locked");
    assert_eq!(locked, read);
    assert_eq!(tx.lock_assessment(b + 100).await.must("lock unknown"), None);
    let signed = AssessmentRow {
        state: "signed_off".to_string(),
        targets: json!({"4": 3}),
        updated_by: "carol".to_string(),
        updated_at: at(9),
        signed_off_by: Some("carol".to_string()),
        signed_off_at: Some(at(9)),
        // Not changed by an update:
        created_by: "mallory".to_string(),
        created_at: at(99),
        ..read.clone()
    };
    tx.update_assessment(&signed).await.must("update");
    assert_not_found(
        tx.update_assessment(&AssessmentRow {
            id: b + 100,
            ..signed.clone()
        })
        .await,
        "an update of an unknown assessment",
    );
    commit(tx, "assessment.sign_off").await;
    assert_eq!(
        store.assessment(id).await.must("read").must("updated"),
        AssessmentRow {
            created_by: read.created_by.clone(),
            created_at: read.created_at,
            ..signed
        }
    );
}

/// Items and answers: replaced by key, listed in order, refused for an unknown assessment.
pub async fn assessment_items_and_answers(store: &dyn Store) {
    let id = insert(store, &assessment_row("items")).await.must("insert");
    let mut tx = store.begin().await.must("begin");
    tx.upsert_assessment_item(&item_row(id, 5))
        .await
        .must("item 5");
    tx.upsert_assessment_item(&item_row(id, 4))
        .await
        .must("item 4");
    let reviewed = AssessmentItemRow {
        review_state: "changes_requested".to_string(),
        review_comment: Some("证据不足".to_string()),
        reviewed_by: Some("carol".to_string()),
        reviewed_at: Some(at(5)),
        ..item_row(id, 5)
    };
    tx.upsert_assessment_item(&reviewed)
        .await
        .must("item 5 again");
    assert_conflict(
        tx.upsert_assessment_item(&item_row(id + 100, 4)).await,
        "an item of an unknown assessment",
    );
    commit(tx, "assessment.assign").await;
    assert_eq!(
        store.assessment_items(id).await.must("items"),
        [item_row(id, 4), reviewed]
    );

    let mut tx = store.begin().await.must("begin");
    tx.upsert_answers(&[
        answer_row(id, "T5.1.L2.a", "partial"),
        answer_row(id, "T5.1.L1.a", "met"),
    ])
    .await
    .must("answers");
    let na = AnswerRow {
        na_approved_by: Some("carol".to_string()),
        ..answer_row(id, "T5.1.L2.a", "na")
    };
    tx.upsert_answers(std::slice::from_ref(&na))
        .await
        .must("replace");
    assert_conflict(
        tx.upsert_answers(&[answer_row(id + 100, "T5.1.L1.a", "met")])
            .await,
        "an answer of an unknown assessment",
    );
    commit(tx, "assessment.rate").await;
    assert_eq!(
        store.assessment_answers(id).await.must("answers"),
        [answer_row(id, "T5.1.L1.a", "met"), na]
    );
    let other = insert(store, &assessment_row("other")).await.must("other");
    assert!(
        store
            .assessment_answers(other)
            .await
            .must("none")
            .is_empty()
    );
    assert!(store.assessment_items(other).await.must("none").is_empty());
}

/// Evidence: bytes verbatim, listed without them, expiry found once, never for a signed-off
/// assessment, deleted.
pub async fn assessment_evidence_and_expiry(store: &dyn Store) {
    let id = insert(store, &assessment_row("evidence"))
        .await
        .must("insert");
    let signed = insert(
        store,
        &AssessmentRow {
            state: "signed_off".to_string(),
            ..assessment_row("signed")
        },
    )
    .await
    .must("signed");
    let bytes = [0xff_u8, 0x00, 0x80];
    let mut tx = store.begin().await.must("begin");
    let file = tx
        .insert_evidence(
            &evidence_row(id, "file", Some(day(2026, 11, 30))),
            Some(&bytes),
        )
        .await
        .must("file");
    let link = tx
        .insert_evidence(&evidence_row(id, "link", Some(day(2026, 12, 31))), None)
        .await
        .must("link");
    let forever = tx
        .insert_evidence(&evidence_row(id, "platform", None), None)
        .await
        .must("platform");
    tx.insert_evidence(&evidence_row(signed, "link", Some(day(2026, 1, 1))), None)
        .await
        .must("signed-off evidence");
    assert_conflict(
        tx.insert_evidence(&evidence_row(signed + 100, "link", None), None)
            .await,
        "evidence of an unknown assessment",
    );
    commit(tx, "assessment.evidence").await;

    let listed = store.assessment_evidence(id).await.must("list");
    assert_eq!(
        listed.iter().map(|e| e.id).collect::<Vec<_>>(),
        [file, link, forever]
    );
    assert_eq!(
        listed[0],
        EvidenceRow {
            id: file,
            ..evidence_row(id, "file", Some(day(2026, 11, 30)))
        }
    );
    let (row, content) = store
        .evidence_content(file)
        .await
        .must("content")
        .must("the file");
    assert_eq!(row, listed[0]);
    assert_eq!(content.as_deref(), Some(&bytes[..]), "bytes verbatim");
    let (_, none) = store
        .evidence_content(link)
        .await
        .must("content")
        .must("the link");
    assert_eq!(none, None);
    assert_eq!(
        store.evidence_content(forever + 100).await.must("unknown"),
        None
    );

    let ids = |v: Vec<EvidenceRow>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert!(
        ids(store
            .expired_evidence(day(2026, 11, 30), 10)
            .await
            .must("on the day"))
        .is_empty(),
        "evidence is valid on its expiry date"
    );
    assert_eq!(
        ids(store
            .expired_evidence(day(2026, 12, 1), 10)
            .await
            .must("after")),
        [file]
    );
    assert_eq!(
        ids(store
            .expired_evidence(day(2027, 6, 1), 10)
            .await
            .must("later")),
        [file, link],
        "never a signed-off assessment's, never one without a date"
    );
    assert_eq!(
        ids(store
            .expired_evidence(day(2027, 6, 1), 1)
            .await
            .must("limit")),
        [file]
    );
    let mut tx = store.begin().await.must("begin");
    assert!(tx.mark_evidence_expired(file, at(7)).await.must("mark"));
    assert!(
        !tx.mark_evidence_expired(file, at(8))
            .await
            .must("mark again")
    );
    commit(tx, "assessment.evidence_expired").await;
    assert_eq!(
        ids(store
            .expired_evidence(day(2027, 6, 1), 10)
            .await
            .must("handled")),
        [link]
    );
    assert_eq!(
        store.assessment_evidence(id).await.must("list")[0].expired_at,
        Some(at(7))
    );
    let mut tx = store.begin().await.must("begin");
    assert!(tx.delete_evidence(link).await.must("delete"));
    assert!(!tx.delete_evidence(link).await.must("delete again"));
    commit(tx, "assessment.evidence_delete").await;
    assert_eq!(
        ids(store.assessment_evidence(id).await.must("list")),
        [file, forever]
    );
}

/// Improvement actions: listed per assessment or all, replaced, `NotFound` when unknown.
pub async fn assessment_improvement_actions(store: &dyn Store) {
    let a = insert(store, &assessment_row("a")).await.must("a");
    let b = insert(store, &assessment_row("b")).await.must("b");
    let mut tx = store.begin().await.must("begin");
    let x = tx.insert_improvement_action(&action_row(a)).await.must("x");
    let y = tx.insert_improvement_action(&action_row(b)).await.must("y");
    assert_conflict(
        tx.insert_improvement_action(&action_row(b + 100)).await,
        "an action of an unknown assessment",
    );
    commit(tx, "assessment.action").await;
    assert_eq!(
        store.improvement_actions(Some(a)).await.must("of a"),
        [ImprovementActionRow {
            id: x,
            ..action_row(a)
        }]
    );
    assert_eq!(
        store
            .improvement_actions(None)
            .await
            .must("all")
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        [x, y]
    );
    let done = ImprovementActionRow {
        id: y,
        status: "done".to_string(),
        due_on: day(2027, 1, 15),
        clause_ids: vec!["T5.3.L2.c".to_string()],
        updated_by: "dave".to_string(),
        updated_at: at(9),
        ..action_row(b)
    };
    let mut tx = store.begin().await.must("begin");
    tx.update_improvement_action(&done).await.must("update");
    assert_not_found(
        tx.update_improvement_action(&ImprovementActionRow {
            id: y + 100,
            ..done.clone()
        })
        .await,
        "an update of an unknown action",
    );
    commit(tx, "assessment.action_update").await;
    assert_eq!(
        store.improvement_actions(Some(b)).await.must("of b"),
        [done]
    );
}

/// Read-modify-write transactions on one assessment, many at once, all count.
pub async fn assessment_lock_serialises(store: &dyn Store) {
    let id = insert(
        store,
        &AssessmentRow {
            meta: json!({"n": "0"}),
            ..assessment_row("counter")
        },
    )
    .await
    .must("insert");
    let bump = || async move {
        let mut tx = store.begin().await.must("begin");
        let mut a = tx.lock_assessment(id).await.must("lock").must("locked");
        let n: u32 = a.meta["n"].as_str().and_then(|s| s.parse().ok()).must("n");
        tokio::task::yield_now().await;
        a.meta = json!({"n": (n + 1).to_string()});
        tx.update_assessment(&a).await.must("update");
        commit(tx, "assessment.bump").await;
    };
    join_all((0..6).map(|_| bump()).collect()).await;
    let a = store.assessment(id).await.must("read").must("counter");
    assert_eq!(a.meta, json!({"n": "6"}), "no update was lost");
}

/// One assessment with an item, answers, a file and an action, for the export round trip.
pub(super) async fn populate_assessments(store: &dyn Store) {
    let mut tx = store.begin().await.must("begin");
    let id = tx
        .insert_assessment(&assessment_row("exported"))
        .await
        .must("assessment");
    tx.upsert_assessment_item(&item_row(id, 5))
        .await
        .must("item");
    tx.upsert_answers(&[
        answer_row(id, "T5.1.L1.a", "met"),
        answer_row(id, "T5.1.L2.a", "na"),
    ])
    .await
    .must("answers");
    tx.insert_evidence(
        &evidence_row(id, "file", Some(day(2026, 12, 1))),
        Some(&[0xff, 0x00, 0x80]),
    )
    .await
    .must("evidence");
    tx.insert_improvement_action(&action_row(id))
        .await
        .must("action");
    commit(tx, "assessment.populate").await;
}
