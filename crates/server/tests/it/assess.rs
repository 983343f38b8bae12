//! Online assessments on a real server: every state transition, allowed and forbidden (wrong
//! person, locked after sign-off, own-clause approval, `na` without justification, auditor
//! writes), review and re-review, evidence upload/download with size limit and expiry by the
//! background pass (injected clock), reports and exports through the maturity crate, answers-file
//! import with preview, comparison, improvement actions.

use chrono::Duration;
use serde_json::{Value, json};

use crate::TestServer;
use crate::exec::{call, get, post};

const L1_T5: [&str; 6] = [
    "T5.1.L1.a",
    "T5.1.L1.b",
    "T5.2.L1.a",
    "T5.2.L1.b",
    "T5.3.L1.a",
    "T5.3.L1.b",
];

struct Team {
    lead: String,
    rater: String,
    checker: String,
    other: String,
    auditor: String,
}

async fn team(s: &TestServer) -> Team {
    let ops = [("platform_operations", "global")];
    Team {
        lead: s.user_token("lead", &ops).await,
        rater: s.user_token("rater", &ops).await,
        checker: s.user_token("checker", &ops).await,
        other: s.user_token("other", &ops).await,
        auditor: s.user_token("aud", &[("auditor", "global")]).await,
    }
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

#[track_caller]
fn refused(r: (u16, Value), status: u16, want: &str) {
    assert_eq!(r.0, status, "{}", r.1);
    assert_eq!(code(&r.1), want, "{}", r.1);
    assert!(
        r.1["details"]["message_zh"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
            && r.1["details"]["message_en"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
        "bilingual: {}",
        r.1
    );
}

async fn create(s: &TestServer, token: &str, body: Value) -> i64 {
    let (st, v) = post(s, token, "/api/v1/assessments", body).await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_i64().unwrap()
}

async fn move_to(s: &TestServer, token: &str, id: i64, to: &str) -> (u16, Value) {
    post(
        s,
        token,
        &format!("/api/v1/assessments/{id}/transition"),
        json!({"to": to, "reason": "复核发现遗漏 / found an omission"}),
    )
    .await
}

async fn rate(s: &TestServer, token: &str, id: i64, ratings: Value) -> (u16, Value) {
    post(
        s,
        token,
        &format!("/api/v1/assessments/{id}/answers"),
        ratings,
    )
    .await
}

fn all_met(ids: &[&str]) -> Value {
    Value::Array(
        ids.iter()
            .map(|c| json!({"clause": c, "rating": "met"}))
            .collect(),
    )
}

async fn item_op(
    s: &TestServer,
    token: &str,
    id: i64,
    item: &str,
    op: &str,
    body: Value,
) -> (u16, Value) {
    post(
        s,
        token,
        &format!("/api/v1/assessments/{id}/items/{item}/{op}"),
        body,
    )
    .await
}

async fn assign(s: &TestServer, token: &str, id: i64, body: Value) -> (u16, Value) {
    post(
        s,
        token,
        &format!("/api/v1/assessments/{id}/assignments"),
        body,
    )
    .await
}

async fn view(s: &TestServer, token: &str, id: i64) -> Value {
    let (st, v) = get(s, token, &format!("/api/v1/assessments/{id}")).await;
    assert_eq!(st, 200, "{v}");
    v
}

fn item(v: &Value, table: u64) -> &Value {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["table"] == table)
        .unwrap()
}

/// draft → in_progress → in_review → signed_off → reopened, with every refusal on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_transition_allowed_and_forbidden() {
    let s = TestServer::start().await;
    let t = team(&s).await;

    // Create: the auditor reads everything and changes nothing.
    refused(
        post(&s, &t.auditor, "/api/v1/assessments", json!({"name": "x"})).await,
        403,
        "authz.forbidden",
    );
    refused(
        post(
            &s,
            &t.lead,
            "/api/v1/assessments",
            json!({"name": "bad", "scope": "T4,T999"}),
        )
        .await,
        400,
        "assess.scope_invalid",
    );
    refused(
        post(
            &s,
            &t.lead,
            "/api/v1/assessments",
            json!({"name": "bad", "scope": "T4", "targets": {"T5": 2}}),
        )
        .await,
        400,
        "assess.target_out_of_scope",
    );
    let id = create(
        &s,
        &t.lead,
        json!({"name": "2026 年度自评估", "scope": "T4,T5", "targets": {"T5": 2},
               "meta": {"organization": "示例证券"}}),
    )
    .await;
    refused(
        post(
            &s,
            &t.lead,
            "/api/v1/assessments",
            json!({"name": "2026 年度自评估"}),
        )
        .await,
        409,
        "conflict",
    );
    let v = view(&s, &t.auditor, id).await;
    assert_eq!(v["assessment"]["state"], "draft");
    assert_eq!(v["assessment"]["owner"], "lead");
    assert_eq!(v["assessment"]["scope"], "T4-T5");
    assert_eq!(v["targets"], json!({"5": 2}));

    // Draft: nothing is rated yet.
    refused(
        rate(&s, &t.lead, id, all_met(&L1_T5)).await,
        409,
        "assess.state",
    );

    // Assignments: the owner's; assessor and reviewer are two people.
    refused(
        post(
            &s,
            &t.other,
            &format!("/api/v1/assessments/{id}/assignments"),
            json!([{"item": "T5", "assessor": "rater", "reviewer": "checker"}]),
        )
        .await,
        403,
        "assess.not_owner",
    );
    refused(
        assign(
            &s,
            &t.lead,
            id,
            json!([{"item": "T5", "assessor": "rater", "reviewer": "rater"}]),
        )
        .await,
        400,
        "sod.assessor_reviewer",
    );
    refused(
        assign(
            &s,
            &t.lead,
            id,
            json!([{"item": "T5", "assessor": "nobody", "reviewer": "rater"}]),
        )
        .await,
        400,
        "assess.unknown_user",
    );
    refused(
        assign(
            &s,
            &t.lead,
            id,
            json!([{"item": "T6", "assessor": "rater", "reviewer": "checker"}]),
        )
        .await,
        400,
        "assess.item_out_of_scope",
    );
    // T4 is first rated by `checker`, later handed to `rater` with `checker` reviewing.
    let (st, v) = assign(
        &s,
        &t.lead,
        id,
        json!([
            {"item": "T5", "assessor": "rater", "reviewer": "checker"},
            {"item": "T4", "assessor": "checker", "reviewer": "lead"}
        ]),
    )
    .await;
    assert_eq!(st, 204, "{v}");

    // Start: the owner only, once.
    refused(
        move_to(&s, &t.other, id, "start").await,
        403,
        "assess.not_owner",
    );
    refused(
        move_to(&s, &t.auditor, id, "start").await,
        403,
        "authz.forbidden",
    );
    refused(
        move_to(&s, &t.lead, id, "sign_off").await,
        409,
        "assess.state",
    );
    assert_eq!(move_to(&s, &t.lead, id, "start").await.0, 204);
    refused(move_to(&s, &t.lead, id, "start").await, 409, "assess.state");

    // Rating: the item's assessor only; na needs a justification; bad input named.
    refused(
        rate(&s, &t.other, id, all_met(&L1_T5)).await,
        403,
        "assess.not_assessor",
    );
    refused(
        rate(&s, &t.auditor, id, all_met(&L1_T5)).await,
        403,
        "authz.forbidden",
    );
    refused(
        rate(
            &s,
            &t.rater,
            id,
            json!([{"clause": "T5.3.L1.b", "rating": "na"}]),
        )
        .await,
        400,
        "assess.na_without_justification",
    );
    refused(
        rate(
            &s,
            &t.rater,
            id,
            json!([{"clause": "T5.3.L1.b", "rating": "na", "justification": "  "}]),
        )
        .await,
        400,
        "assess.na_without_justification",
    );
    refused(
        rate(
            &s,
            &t.rater,
            id,
            json!([{"clause": "T5.9.L1.a", "rating": "met"}]),
        )
        .await,
        400,
        "assess.clause_unknown",
    );
    refused(
        rate(
            &s,
            &t.rater,
            id,
            json!([{"clause": "T6.1.L1.a", "rating": "met"}]),
        )
        .await,
        400,
        "assess.clause_out_of_scope",
    );
    refused(
        rate(
            &s,
            &t.rater,
            id,
            json!([{"clause": "T5.1.L1.a", "rating": "good"}]),
        )
        .await,
        400,
        "assess.rating_invalid",
    );
    // Bulk rating: five met and one na with its justification.
    let mut bulk = all_met(&L1_T5[..5]);
    bulk.as_array_mut().unwrap().push(json!({
        "clause": "T5.3.L1.b", "rating": "na", "justification": "本公司无该类系统", "comment": "见说明"
    }));
    let (st, v) = rate(&s, &t.rater, id, bulk).await;
    assert_eq!((st, v["saved"].as_u64()), (200, Some(6)), "{v}");
    let v = view(&s, &t.auditor, id).await;
    let t5 = item(&v, 5);
    assert_eq!(t5["level"], 1, "levels recomputed on save: {t5}");
    assert_eq!(
        (t5["rated"].as_u64(), t5["clauses"].as_u64()),
        (Some(6), Some(27))
    );
    assert_eq!(v["target_gaps"][0]["table"], 5);
    assert_eq!(v["target_gaps"][0]["target"], 2);
    assert_eq!(
        v["target_gaps"][0]["missing"].as_array().unwrap().len(),
        9,
        "every level-2 clause of T5 is missing for target 2"
    );
    // `checker` rates a clause of T4 while assigned to it.
    let (st, v) = rate(
        &s,
        &t.checker,
        id,
        json!([{"clause": "T4.1.L1.a", "rating": "met"}]),
    )
    .await;
    assert_eq!(st, 200, "{v}");

    // In review only when every item is submitted.
    refused(
        move_to(&s, &t.lead, id, "submit").await,
        409,
        "assess.items_pending",
    );
    refused(
        item_op(&s, &t.checker, id, "T5", "submit", json!({})).await,
        403,
        "assess.not_assessor",
    );
    assert_eq!(
        item_op(&s, &t.rater, id, "T5", "submit", json!({})).await.0,
        204
    );
    refused(
        rate(&s, &t.rater, id, all_met(&["T5.1.L2.a"])).await,
        409,
        "assess.item_locked",
    );
    refused(
        item_op(&s, &t.rater, id, "T5", "submit", json!({})).await,
        409,
        "assess.item_locked",
    );

    // Review: the reviewer only; changes need a comment.
    refused(
        item_op(
            &s,
            &t.rater,
            id,
            "T5",
            "review",
            json!({"decision": "approve"}),
        )
        .await,
        403,
        "assess.not_reviewer",
    );
    refused(
        item_op(
            &s,
            &t.checker,
            id,
            "T5",
            "review",
            json!({"decision": "request_changes"}),
        )
        .await,
        400,
        "assess.comment_required",
    );
    refused(
        item_op(
            &s,
            &t.checker,
            id,
            "T5",
            "review",
            json!({"decision": "maybe"}),
        )
        .await,
        400,
        "assess.decision_invalid",
    );
    let (st, v) = item_op(
        &s,
        &t.checker,
        id,
        "T5",
        "review",
        json!({"decision": "request_changes", "comment": "T5.3.L1.a 缺少证据"}),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    let v = view(&s, &t.rater, id).await;
    assert_eq!(item(&v, 5)["review_state"], "changes_requested");
    assert_eq!(item(&v, 5)["review_comment"], "T5.3.L1.a 缺少证据");
    refused(
        item_op(
            &s,
            &t.checker,
            id,
            "T5",
            "review",
            json!({"decision": "approve"}),
        )
        .await,
        409,
        "assess.review_state",
    );
    // Back to the assessor: a change and a new submission.
    let (st, v) = rate(
        &s,
        &t.rater,
        id,
        json!([{"clause": "T5.3.L1.a", "rating": "met", "comment": "补充了制度文件"}]),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        item_op(&s, &t.rater, id, "T5", "submit", json!({})).await.0,
        204
    );
    assert_eq!(
        item_op(
            &s,
            &t.checker,
            id,
            "T5",
            "review",
            json!({"decision": "approve"})
        )
        .await
        .0,
        204
    );
    let v = view(&s, &t.auditor, id).await;
    assert_eq!(item(&v, 5)["review_state"], "approved");
    let na = v["answers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["clause"] == "T5.3.L1.b")
        .unwrap();
    assert_eq!(
        na["na_approved_by"], "checker",
        "approving the item approves its na: {na}"
    );

    // Nobody approves a clause they rated: T4 goes to `rater`, `checker` (who rated T4.1.L1.a)
    // reviews it.
    let (st, v) = assign(
        &s,
        &t.lead,
        id,
        json!([{"item": "T4", "assessor": "rater", "reviewer": "checker"}]),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    let (st, v) = rate(&s, &t.rater, id, all_met(&["T4.1.L1.b", "T4.2.L1.a"])).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        item_op(&s, &t.rater, id, "T4", "submit", json!({})).await.0,
        204
    );
    let r = item_op(
        &s,
        &t.checker,
        id,
        "T4",
        "review",
        json!({"decision": "approve"}),
    )
    .await;
    refused(r.clone(), 403, "sod.own_clause");
    assert!(
        r.1["details"]["message_en"]
            .as_str()
            .unwrap()
            .contains("T4.1.L1.a"),
        "names the clause: {}",
        r.1
    );
    // The owner hands the review to someone else, who approves.
    let (st, v) = assign(
        &s,
        &t.lead,
        id,
        json!([{"item": "T4", "assessor": "rater", "reviewer": "other"}]),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    assert_eq!(
        item_op(
            &s,
            &t.other,
            id,
            "T4",
            "review",
            json!({"decision": "approve"})
        )
        .await
        .0,
        204
    );

    // In review, then signed off.
    refused(
        move_to(&s, &t.rater, id, "submit").await,
        403,
        "assess.not_owner",
    );
    assert_eq!(move_to(&s, &t.lead, id, "submit").await.0, 204);
    assert_eq!(
        view(&s, &t.lead, id).await["assessment"]["state"],
        "in_review"
    );
    refused(
        move_to(&s, &t.other, id, "sign_off").await,
        403,
        "assess.not_owner",
    );
    assert_eq!(move_to(&s, &t.lead, id, "sign_off").await.0, 204);
    let v = view(&s, &t.auditor, id).await;
    assert_eq!(v["assessment"]["state"], "signed_off");
    assert_eq!(v["assessment"]["signed_off_by"], "lead");

    // Locked: no change of any kind.
    refused(
        rate(&s, &t.rater, id, all_met(&["T5.1.L2.a"])).await,
        409,
        "assess.locked",
    );
    refused(
        assign(
            &s,
            &t.lead,
            id,
            json!([{"item": "T5", "assessor": "other", "reviewer": "checker"}]),
        )
        .await,
        409,
        "assess.locked",
    );
    refused(
        item_op(
            &s,
            &t.checker,
            id,
            "T5",
            "review",
            json!({"decision": "request_changes", "comment": "x"}),
        )
        .await,
        409,
        "assess.locked",
    );
    refused(
        call(
            &s,
            &t.lead,
            reqwest::Method::PUT,
            &format!("/api/v1/assessments/{id}/targets"),
            Some(json!({"targets": {"T5": 3}})),
        )
        .await,
        409,
        "assess.locked",
    );
    refused(
        post(
            &s,
            &t.rater,
            &format!(
                "/api/v1/assessments/{id}/evidence?clause=T5.1.L1.a&kind=link&name=https://wiki/x"
            ),
            json!(null),
        )
        .await,
        409,
        "assess.locked",
    );
    refused(
        move_to(&s, &t.lead, id, "sign_off").await,
        409,
        "assess.locked",
    );

    // Reopen: the owner, with a reason; audited.
    refused(
        post(
            &s,
            &t.lead,
            &format!("/api/v1/assessments/{id}/transition"),
            json!({"to": "reopen"}),
        )
        .await,
        400,
        "assess.reason_required",
    );
    refused(
        move_to(&s, &t.other, id, "reopen").await,
        403,
        "assess.not_owner",
    );
    refused(
        move_to(&s, &t.auditor, id, "reopen").await,
        403,
        "authz.forbidden",
    );
    assert_eq!(move_to(&s, &t.lead, id, "reopen").await.0, 204);
    let v = view(&s, &t.auditor, id).await;
    assert_eq!(v["assessment"]["state"], "in_progress");
    // Approved items stay locked until their reviewer sends them back.
    refused(
        rate(&s, &t.rater, id, all_met(&["T5.1.L2.a"])).await,
        409,
        "assess.item_locked",
    );
    assert_eq!(
        item_op(
            &s,
            &t.checker,
            id,
            "T5",
            "review",
            json!({"decision": "request_changes", "comment": "补充二级"})
        )
        .await
        .0,
        204
    );
    assert_eq!(rate(&s, &t.rater, id, all_met(&["T5.1.L2.a"])).await.0, 200);

    // Every change audited, refusals too.
    let audit = s.audit_actions().await;
    for (action, outcome) in [
        ("assessment.create", "success"),
        ("assessment.assign", "success"),
        ("assessment.start", "success"),
        ("assessment.rate", "success"),
        ("assessment.item_submit", "success"),
        ("assessment.item_request_changes", "success"),
        ("assessment.item_approve", "success"),
        ("assessment.item_approve", "denied"),
        ("assessment.submit", "success"),
        ("assessment.sign_off", "success"),
        ("assessment.reopen", "success"),
        ("assessment.reopen", "denied"),
        ("assessment.rate", "denied"),
    ] {
        assert!(
            audit.iter().any(|(a, o)| a == action && o == outcome),
            "audit has {action} {outcome}"
        );
    }
    let records = s.state.store.audit_range(0, 100_000).await.unwrap();
    let reopen = records
        .iter()
        .filter_map(|r| r.parsed())
        .find(|c| c.draft.action == "assessment.reopen" && c.draft.outcome.key() == "success")
        .unwrap();
    assert_eq!(
        reopen.draft.detail.as_deref(),
        Some("复核发现遗漏 / found an omission"),
        "the reason is audited"
    );
}

/// Evidence: a file stored with its SHA-256 and downloaded verbatim, the size limit, links, and
/// expiry: the background pass returns the clause to unrated, reopens the item and tells the
/// assessor (audit record, the item's comment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_is_stored_limited_and_expires() {
    let s = TestServer::start_with(|c| c.assess.max_evidence_bytes = 1000).await;
    let t = team(&s).await;
    let id = create(&s, &t.lead, json!({"name": "evidence", "scope": "T5"})).await;
    post(
        &s,
        &t.lead,
        &format!("/api/v1/assessments/{id}/assignments"),
        json!([{"item": "T5", "assessor": "rater", "reviewer": "checker"}]),
    )
    .await;
    assert_eq!(move_to(&s, &t.lead, id, "start").await.0, 204);

    let bytes: Vec<u8> = (0..=255u8).chain([0xff, 0x00]).collect();
    let upload = |token: &str, query: String, body: Vec<u8>| {
        let req = s
            .client()
            .post(format!(
                "{}/api/v1/assessments/{id}/evidence?{query}",
                s.url
            ))
            .bearer_auth(token)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (st, v) = upload(
        &t.rater,
        "clause=T5.1.L1.a&kind=file&name=%E5%88%B6%E5%BA%A6.pdf&expires_on=2026-11-30".into(),
        bytes.clone(),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let eid = v["id"].as_i64().unwrap();
    refused(
        upload(
            &t.other,
            "clause=T5.1.L1.a&kind=file&name=x.pdf".into(),
            bytes.clone(),
        )
        .await,
        403,
        "assess.not_assessor",
    );
    refused(
        upload(
            &t.rater,
            "clause=T5.1.L1.a&kind=file&name=big.bin".into(),
            vec![7; 1001],
        )
        .await,
        413,
        "assess.evidence_too_large",
    );
    refused(
        upload(
            &t.rater,
            "clause=T5.1.L1.a&kind=link&name=wiki%20page".into(),
            Vec::new(),
        )
        .await,
        400,
        "assess.evidence_link",
    );
    refused(
        upload(
            &t.rater,
            "clause=T5.1.L1.a&kind=file&name=x.pdf&expires_on=2026-01-01".into(),
            bytes.clone(),
        )
        .await,
        400,
        "assess.evidence_already_expired",
    );
    let (st, v) = upload(
        &t.rater,
        "clause=T5.1.L1.b&kind=link&name=https://wiki.example.com/policy".into(),
        Vec::new(),
    )
    .await;
    assert_eq!(st, 201, "{v}");

    // Downloaded verbatim by a reader; the view shows its hash and size.
    let r = s
        .client()
        .get(format!("{}/api/v1/assessments/{id}/evidence/{eid}", s.url))
        .bearer_auth(&t.auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    let v = view(&s, &t.auditor, id).await;
    let ev = &v["evidence"][0];
    use sha2::Digest;
    assert_eq!(ev["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(ev["size"], 258);
    assert_eq!(ev["name"], "制度.pdf");
    assert_eq!(v["evidence"][1]["kind"], "link");

    let (st, v) = rate(&s, &t.rater, id, all_met(&["T5.1.L1.a", "T5.1.L1.b"])).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        item_op(&s, &t.rater, id, "T5", "submit", json!({})).await.0,
        204
    );

    // Valid through its expiry date (Beijing), expired the day after.
    let pass = || ballast_server::assess::service::expire_evidence(&s.state);
    s.clock.set(crate::t0() + Duration::days(5));
    assert_eq!(pass().await.unwrap(), 0, "2026-11-30 is still valid");
    s.clock.set(crate::t0() + Duration::days(6));
    assert_eq!(pass().await.unwrap(), 1);
    assert_eq!(pass().await.unwrap(), 0, "handled once");
    let v = view(&s, &t.rater, id).await;
    let a = v["answers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["clause"] == "T5.1.L1.a")
        .unwrap();
    assert_eq!(a["rating"], "unrated");
    assert!(v["evidence"][0]["expired_at"].is_string());
    let t5 = item(&v, 5);
    assert_eq!(t5["review_state"], "open", "back to the assessor");
    assert!(
        t5["review_comment"].as_str().unwrap().contains("T5.1.L1.a"),
        "the assessor sees why: {t5}"
    );
    assert!(
        s.audit_actions()
            .await
            .contains(&("assessment.evidence_expired".into(), "success".into()))
    );

    // Evidence removed by the assessor only.
    refused(
        call(
            &s,
            &t.other,
            reqwest::Method::DELETE,
            &format!("/api/v1/assessments/{id}/evidence/{eid}"),
            None,
        )
        .await,
        403,
        "assess.not_assessor",
    );
    let (st, _) = call(
        &s,
        &t.rater,
        reqwest::Method::DELETE,
        &format!("/api/v1/assessments/{id}/evidence/{eid}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, _) = get(
        &s,
        &t.rater,
        &format!("/api/v1/assessments/{id}/evidence/{eid}"),
    )
    .await;
    assert_eq!(st, 404);
}

async fn raw(s: &TestServer, token: &str, path: &str) -> (u16, Vec<u8>) {
    let r = s
        .client()
        .get(format!("{}{path}", s.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

async fn post_bytes(s: &TestServer, token: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let r = s
        .client()
        .post(format!("{}{path}", s.url))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// Reports and exports come from the maturity crate; an exported answers file imports into
/// another assessment (preview first) with the same result; comparison; improvement actions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_exports_import_compare_and_actions() {
    let s = TestServer::start().await;
    let t = team(&s).await;
    let a = create(
        &s,
        &t.lead,
        json!({"name": "2025", "scope": "T4,T5", "meta": {"organization": "示例证券"}}),
    )
    .await;
    assert_eq!(move_to(&s, &t.lead, a, "start").await.0, 204);
    let mut ratings = all_met(&L1_T5);
    ratings.as_array_mut().unwrap().push(json!({
        "clause": "T4.1.L1.a", "rating": "na", "justification": "不适用于本公司"
    }));
    ratings
        .as_array_mut()
        .unwrap()
        .push(json!({"clause": "T4.1.L1.b", "rating": "partial"}));
    let (st, v) = rate(&s, &t.lead, a, ratings).await;
    assert_eq!(st, 200, "{v}");

    // The JSON report is the maturity crate's schema.
    let (st, report) = get(&s, &t.auditor, &format!("/api/v1/assessments/{a}/report")).await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["meta"]["name"], "2025");
    assert_eq!(report["meta"]["organization"], "示例证券");
    assert_eq!(report["scope"], "T4-T5");
    let t5 = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["table"] == 5)
        .unwrap();
    assert_eq!(t5["level"], 1);
    assert_eq!(report["exceptions"][0]["id"], "T4.1.L1.a");
    let (st, json_export) = raw(
        &s,
        &t.auditor,
        &format!("/api/v1/assessments/{a}/export?format=json"),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&json_export).unwrap(),
        report
    );
    let (st, html) = raw(
        &s,
        &t.auditor,
        &format!("/api/v1/assessments/{a}/export?format=html"),
    )
    .await;
    assert_eq!(st, 200);
    let html = String::from_utf8(html).unwrap();
    assert!(
        html.contains("风险控制策略") && html.contains("<table"),
        "the HTML report"
    );
    for f in ["xlsx", "report-xlsx"] {
        let (st, x) = raw(
            &s,
            &t.auditor,
            &format!("/api/v1/assessments/{a}/export?format={f}"),
        )
        .await;
        assert_eq!(st, 200);
        assert!(x.starts_with(b"PK"), "{f} is a workbook");
    }
    refused(
        get(
            &s,
            &t.auditor,
            &format!("/api/v1/assessments/{a}/export?format=doc"),
        )
        .await,
        400,
        "assess.export_format",
    );
    let (st, yaml) = raw(
        &s,
        &t.auditor,
        &format!("/api/v1/assessments/{a}/export?format=yaml"),
    )
    .await;
    assert_eq!(st, 200);

    // Import into a second assessment: preview changes nothing, apply does.
    let b = create(&s, &t.lead, json!({"name": "2026", "scope": "T4,T5"})).await;
    refused(
        post_bytes(
            &s,
            &t.lead,
            &format!("/api/v1/assessments/{b}/import?file=a.yaml&apply=true"),
            yaml.clone(),
        )
        .await,
        409,
        "assess.state",
    );
    assert_eq!(move_to(&s, &t.lead, b, "start").await.0, 204);
    let (st, p) = post_bytes(
        &s,
        &t.auditor,
        &format!("/api/v1/assessments/{b}/import?file=a.yaml"),
        yaml.clone(),
    )
    .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["applied"], false);
    assert_eq!(p["changes"].as_array().unwrap().len(), 8, "{p}");
    assert!(
        p["changes"]
            .as_array()
            .unwrap()
            .contains(&json!({"clause": "T4.1.L1.b", "from": "unrated", "to": "partial"}))
    );
    assert_eq!(
        view(&s, &t.lead, b).await["answers"],
        json!([]),
        "a preview writes nothing"
    );
    refused(
        post_bytes(
            &s,
            &t.auditor,
            &format!("/api/v1/assessments/{b}/import?file=a.yaml&apply=true"),
            yaml.clone(),
        )
        .await,
        403,
        "authz.forbidden",
    );
    let (st, p) = post_bytes(
        &s,
        &t.lead,
        &format!("/api/v1/assessments/{b}/import?file=a.yaml&apply=true"),
        yaml.clone(),
    )
    .await;
    assert_eq!((st, &p["applied"]), (200, &json!(true)), "{p}");
    let (_, rb) = get(&s, &t.auditor, &format!("/api/v1/assessments/{b}/report")).await;
    assert_eq!(rb["items"], report["items"], "same answers, same levels");
    let bad = b"answers:\n  T5.1.L1.a: excellent\n  T99.1.L1.a: met\n".to_vec();
    let (st, e) = post_bytes(
        &s,
        &t.lead,
        &format!("/api/v1/assessments/{b}/import?file=bad.yaml"),
        bad,
    )
    .await;
    assert_eq!(st, 422, "{e}");
    assert!(code(&e).starts_with("answers."), "{e}");
    let msg = e["details"]["message_en"].as_str().unwrap();
    assert!(
        msg.contains("bad.yaml") && msg.contains("2 error"),
        "every problem, with the file: {msg}"
    );

    // Comparison: b loses T5.1.L1.a, gains T5.1.L2.a.
    rate(&s, &t.lead, b, json!([{"clause": "T5.1.L1.a", "rating": "not_met"}, {"clause": "T5.1.L2.a", "rating": "met"}])).await;
    let (st, c) = get(
        &s,
        &t.auditor,
        &format!("/api/v1/assessments/compare?a={a}&b={b}"),
    )
    .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["lost"], json!(["T5.1.L1.a"]));
    assert_eq!(c["newly_met"], json!(["T5.1.L2.a"]));
    let t5 = c["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["table"] == 5)
        .unwrap();
    assert_eq!((&t5["level_a"], &t5["level_b"]), (&json!(1), &json!(0)));

    // Improvement actions: owner, due date, status, clauses; overdue; CSV.
    let body = json!({"item": "T5", "title": "补齐变更窗口策略", "owner": "rater", "due_on": "2026-12-31",
                      "clauses": ["T5.1.L1.a"]});
    refused(
        post(
            &s,
            &t.auditor,
            &format!("/api/v1/assessments/{b}/actions"),
            body.clone(),
        )
        .await,
        403,
        "authz.forbidden",
    );
    refused(
        post(
            &s,
            &t.rater,
            &format!("/api/v1/assessments/{b}/actions"),
            body.clone(),
        )
        .await,
        403,
        "assess.not_owner",
    );
    refused(
        post(&s, &t.lead, &format!("/api/v1/assessments/{b}/actions"),
             json!({"item": "T5", "title": "x", "owner": "rater", "due_on": "2026-12-31", "clauses": ["T4.1.L1.a"]})).await,
        400,
        "assess.action_clause",
    );
    let (st, v) = post(
        &s,
        &t.lead,
        &format!("/api/v1/assessments/{b}/actions"),
        body.clone(),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let action = v["id"].as_i64().unwrap();
    let (_, list) = get(&s, &t.auditor, &format!("/api/v1/assessments/{b}/actions")).await;
    assert_eq!(list[0]["overdue"], false);
    s.clock.set(crate::t0() + Duration::days(40));
    let (_, list) = get(&s, &t.auditor, &format!("/api/v1/assessments/{b}/actions")).await;
    assert_eq!(list[0]["overdue"], true, "past due and not done");
    let mut done = body.clone();
    done["status"] = json!("done");
    refused(
        call(
            &s,
            &t.other,
            reqwest::Method::PUT,
            &format!("/api/v1/assessment-actions/{action}"),
            Some(done.clone()),
        )
        .await,
        403,
        "assess.not_action_owner",
    );
    let (st, v) = call(
        &s,
        &t.rater,
        reqwest::Method::PUT,
        &format!("/api/v1/assessment-actions/{action}"),
        Some(done),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    let (_, list) = get(&s, &t.auditor, &format!("/api/v1/assessments/{b}/actions")).await;
    assert_eq!(
        (&list[0]["status"], &list[0]["overdue"]),
        (&json!("done"), &json!(false))
    );
    let (st, csv) = raw(
        &s,
        &t.auditor,
        &format!("/api/v1/assessments/{b}/actions.csv"),
    )
    .await;
    assert_eq!(st, 200);
    assert!(String::from_utf8(csv).unwrap().contains("补齐变更窗口策略"));

    // Pushing an answers file creates an assessment in progress with the file's answers.
    let (st, v) = post_bytes(
        &s,
        &t.rater,
        "/api/v1/assessments/from-answers?name=pushed&file=a.yaml",
        yaml,
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let pushed = v["id"].as_i64().unwrap();
    let v = view(&s, &t.auditor, pushed).await;
    assert_eq!(v["assessment"]["state"], "in_progress");
    assert_eq!(v["assessment"]["owner"], "rater");
    assert_eq!(v["meta"]["organization"], "示例证券");
    let (_, rp) = get(
        &s,
        &t.auditor,
        &format!("/api/v1/assessments/{pushed}/report"),
    )
    .await;
    assert_eq!(rp["items"], report["items"]);

    // Lists: progress is reported apart from the levels.
    let (st, list) = get(&s, &t.auditor, "/api/v1/assessments").await;
    assert_eq!(st, 200);
    let first = &list[0];
    assert_eq!(first["rated"], 8);
    assert!(
        first["clauses"].as_u64().unwrap() > 8,
        "rated apart from the total: {first}"
    );
}

/// The pages: behind `assessment.read`; the list and the overview show the computed levels and
/// the progress apart, the items with their people and review state, the gaps toward targets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_levels_progress_items_and_gaps() {
    let s = TestServer::start().await;
    let t = team(&s).await;
    let id = create(
        &s,
        &t.lead,
        json!({"name": "页面评估", "scope": "T5", "targets": {"T5": 2}}),
    )
    .await;
    assign(
        &s,
        &t.lead,
        id,
        json!([{"item": "T5", "assessor": "rater", "reviewer": "checker"}]),
    )
    .await;
    assert_eq!(move_to(&s, &t.lead, id, "start").await.0, 204);
    assert_eq!(rate(&s, &t.rater, id, all_met(&L1_T5)).await.0, 200);

    let (c, _) = crate::authn::admin_ready(&s).await;
    let page = |path: String| {
        let c = c.clone();
        async move {
            let r = c
                .get(path)
                .header("accept-language", "en")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // The platform admin holds no assessment.read.
    let (st, body) = page(format!("{}/assessments", s.url)).await;
    assert_eq!(st, 403, "{body}");
    let (_, home) = page(format!("{}/", s.url)).await;
    assert!(!home.contains("nav-assessments"));
    ballast_server::admin::grant(
        &s.state,
        "admin",
        &ballast_server::service::Grant {
            role: "product_design".into(),
            scope: "global".into(),
        },
    )
    .await
    .unwrap();
    let (st, list) = page(format!("{}/assessments", s.url)).await;
    assert_eq!(st, 200, "{list}");
    assert!(list.contains("nav-assessments"));
    assert!(list.contains("页面评估") && list.contains("in_progress"));
    assert!(list.contains("6 / 27"), "progress rated / all: {list}");
    let (st, v) = page(format!("{}/assessments/{id}", s.url)).await;
    assert_eq!(st, 200, "{v}");
    assert!(v.contains("id=\"item-5\"") && v.contains("风险控制策略"));
    assert!(v.contains("rater") && v.contains("checker") && v.contains("open"));
    assert!(v.contains("1 / 3"), "T5's level of its 3: {v}");
    assert!(
        v.contains("T5.1.L2.a"),
        "the gap toward target 2 lists missing clauses"
    );
    let (st, _) = page(format!("{}/assessments/9999", s.url)).await;
    assert_eq!(st, 404);
}

/// The text of a PDF through poppler's `pdftotext` (Debian's poppler-utils, installed by
/// scripts/test); a missing tool fails the test instead of skipping it.
fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&file)
        .arg("-")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run pdftotext ({e}): install Debian's poppler-utils (scripts/test does)")
        });
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `format=pdf`: an A4 report with the CJK font embedded, whose text (Chinese item names,
/// levels) comes back out of `pdftotext`; a configured font that does not exist is a clear,
/// bilingual error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdf_export_reads_back_with_pdftotext() {
    let s = TestServer::start().await;
    let t = team(&s).await;
    let a = create(
        &s,
        &t.lead,
        json!({"name": "2026 年度 PDF", "scope": "T4,T5", "meta": {"organization": "示例证券"}}),
    )
    .await;
    assert_eq!(move_to(&s, &t.lead, a, "start").await.0, 204);
    let (st, v) = rate(&s, &t.lead, a, all_met(&L1_T5)).await;
    assert_eq!(st, 200, "{v}");

    let r = s
        .client()
        .get(format!(
            "{}/api/v1/assessments/{a}/export?format=pdf",
            s.url
        ))
        .bearer_auth(&t.auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("content-type"), "application/pdf");
    assert_eq!(
        header("content-disposition"),
        format!("attachment; filename=\"assessment-{a}.pdf\"")
    );
    let pdf = r.bytes().await.unwrap().to_vec();
    assert!(pdf.starts_with(b"%PDF-"));
    let text = pdftotext(&pdf);
    for want in [
        "2026 年度 PDF",
        "示例证券",
        "风险控制策略",
        "管理流程与规范",
        "技术管理能力成熟度",
        "第 1 / ",
    ] {
        assert!(text.contains(want), "{want:?} in the PDF's text:\n{text}");
    }
    // T5 reached level 1 of 3; T4 is at 0.
    assert!(text.contains("1/3") && text.contains("0/3"), "{text}");

    // Reading is allowed to the auditor only through the permission check; no token, no PDF.
    let r = s
        .client()
        .get(format!(
            "{}/api/v1/assessments/{a}/export?format=pdf",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A configured font that does not exist: refused, naming the file, in both languages.
    let s2 = TestServer::start_with(|c| {
        c.assess.pdf_font = Some("/nonexistent/字体.ttc".into());
    })
    .await;
    let t2 = team(&s2).await;
    let b = create(&s2, &t2.lead, json!({"name": "x", "scope": "T5"})).await;
    let (st, v) = get(
        &s2,
        &t2.auditor,
        &format!("/api/v1/assessments/{b}/export?format=pdf"),
    )
    .await;
    assert_eq!(st, 500, "{v}");
    assert_eq!(code(&v), "assess.pdf_font_unreadable", "{v}");
    let body = v.to_string();
    assert!(
        body.contains("/nonexistent/字体.ttc") && body.contains("BALLAST_PDF_FONT"),
        "{body}"
    );
}
