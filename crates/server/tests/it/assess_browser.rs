//! Issue 6 in headless Chromium: an assessment from the web UI alone — the owner creates and
//! assigns it, the assessor rates the item's table in one save with an uploaded evidence file, a
//! link and a platform reference and submits it, the assessor's own approval is refused
//! (separation of duties), the reviewer approves (with the `na` answer), the owner signs off, the
//! signed-off assessment refuses a change, the export downloads are there, and the audit log
//! holds every step.

use fantoccini::Locator;
use sha2::{Digest, Sha256};

use super::TestServer;
use super::browser::{
    Person, browser, choose, click, fill, sign_in, sign_out, text, until_path, until_text,
};

/// T5's level-1 clauses: five met, the last one not applicable.
const MET: [&str; 5] = [
    "T5.1.L1.a",
    "T5.1.L1.b",
    "T5.2.L1.a",
    "T5.2.L1.b",
    "T5.3.L1.a",
];
const NA: &str = "T5.3.L1.b";

fn key(clause: &str) -> String {
    clause.replace('.', "_")
}

/// Opens the "add evidence" part of a clause (a `<details>`), as a person would.
async fn open_evidence(c: &fantoccini::Client, clause: &str) {
    c.find(Locator::Css(&format!("#clause-{} summary", key(clause))))
        .await
        .unwrap_or_else(|e| panic!("{clause}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The owner's assignment of T5 on the assessment page.
async fn assign_t5(
    c: &fantoccini::Client,
    s: &TestServer,
    id: i64,
    assessor: &str,
    reviewer: &str,
) {
    c.goto(&format!("{}/assessments/{id}", s.url))
        .await
        .unwrap();
    fill(c, "assessor-T5", assessor).await;
    fill(c, "reviewer-T5", reviewer).await;
    click(c, "assign-submit").await;
}

#[tokio::test]
async fn an_assessment_is_rated_reviewed_and_signed_off_in_the_browser() {
    let s = TestServer::start().await;
    let user = |name: &str| ballast_server::service::CreateUser {
        username: name.into(),
        real_name: format!("测试 {name}"),
        department: "信息技术部".into(),
        kind: "employee".into(),
        vendor: None,
        contract_end: None,
        roles: vec![ballast_server::service::Grant {
            role: "platform_operations".into(),
            scope: "global".into(),
        }],
    };
    let mut people = Vec::new();
    for name in ["lead", "rater", "checker"] {
        let (_, initial) = ballast_server::admin::user_add(&s.state, &user(name))
            .await
            .unwrap();
        people.push(Person::new(name, initial));
    }
    let [mut lead, mut rater, mut checker]: [Person; 3] = people.try_into().ok().unwrap();

    let profile = tempfile::tempdir().unwrap();
    let (_driver, c) = browser(profile.path()).await;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-assess");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = |name: &'static str| {
        let c = c.clone();
        let p = shots.join(format!("{name}.png"));
        async move { std::fs::write(p, c.screenshot().await.unwrap()).unwrap() }
    };
    c.goto(&format!("{}/lang/zh", s.url)).await.unwrap();

    // --- The owner creates the assessment (T5 in scope, target level 1) and assigns T5.
    sign_in(&c, &s, &mut lead).await;
    c.goto(&format!("{}/assessments", s.url)).await.unwrap();
    fill(&c, "name", "2026 年度自评").await;
    fill(&c, "scope", "T5").await;
    fill(&c, "targets", "T5=1").await;
    fill(&c, "organization", "示例证券").await;
    click(&c, "create-submit").await;
    let at = until_path(&c, |p| {
        p.starts_with("/assessments/") && p != "/assessments"
    })
    .await;
    let id: i64 = at.trim_start_matches("/assessments/").parse().unwrap();
    assert!(text(&c, "#notice").await.contains("评估已创建"));
    assert_eq!(text(&c, "#state").await, "draft");
    // One person cannot both assess and review an item.
    assign_t5(&c, &s, id, "rater", "rater").await;
    let refusal = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(refusal.contains("sod.assessor_reviewer"), "{refusal}");
    assign_t5(&c, &s, id, "rater", "checker").await;
    until_text(&c, "#notice", |t| t.contains("T5")).await;
    assert_eq!(
        c.find(Locator::Id("reviewer-T5"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("checker")
    );
    // The radar needs three domains; one item in scope draws the heat map.
    assert!(c.find(Locator::Css("#heat svg g#heat-T5")).await.is_ok());
    click(&c, "transition-start").await;
    until_text(&c, "#state", |t| t == "in_progress").await;
    // An improvement action from T5's gap: due in the past, so it is highlighted as overdue
    // until it is done; the CSV export carries it.
    let gap = text(&c, "#gap-T5").await;
    assert!(gap.contains("T5.1.L1.a"), "{gap}");
    fill(&c, "action-title-T5", "补齐一级条款").await;
    fill(&c, "action-owner-T5", "rater").await;
    c.execute(
        "document.getElementById('action-due-T5').value = '2020-01-31';",
        vec![],
    )
    .await
    .unwrap();
    click(&c, "action-create-T5").await;
    until_text(&c, "#notice", |t| t.contains("已创建改进措施")).await;
    let row = text(&c, "#actions tbody tr.overdue").await;
    assert!(
        row.contains("补齐一级条款") && row.contains("已逾期") && row.contains("T5.1.L1.a"),
        "{row}"
    );
    let csv = c
        .execute(
            "return fetch(arguments[0]).then(r => r.text());",
            vec![serde_json::json!(format!("/assessments/{id}/actions.csv"))],
        )
        .await
        .unwrap();
    assert!(csv.as_str().unwrap().contains("补齐一级条款"), "{csv}");
    let aid: String = c
        .execute(
            "return document.querySelector('#actions tbody tr.overdue').id.replace('action-', '');",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    choose(&c, &format!("action-status-{aid}"), "done").await;
    click(&c, &format!("action-save-{aid}")).await;
    until_text(&c, "#notice", |t| t.contains("已更新改进措施")).await;
    assert!(
        c.find(Locator::Css("#actions tbody tr.overdue"))
            .await
            .is_err(),
        "done is not overdue"
    );
    shot("assess-started").await;
    sign_out(&c).await;

    // --- The assessor rates T5's table in one save, with three kinds of evidence.
    sign_in(&c, &s, &mut rater).await;
    c.goto(&format!("{}/assessments/{id}", s.url))
        .await
        .unwrap();
    click(&c, "open-T5").await;
    until_path(&c, |p| p.ends_with("/items/T5")).await;
    assert!(text(&c, "#clauses thead").await.contains("第3级"));
    assert_eq!(text(&c, "#item-level").await, "0 / 3");
    for clause in MET {
        choose(&c, &format!("rating-{}", key(clause)), "met").await;
    }
    choose(&c, &format!("rating-{}", key(NA)), "na").await;
    fill(
        &c,
        &format!("just-{}", key(NA)),
        "本公司无此类业务 / not applicable here",
    )
    .await;
    fill(&c, &format!("comment-{}", key(MET[0])), "制度文件已审阅").await;
    let evidence_dir = tempfile::tempdir().unwrap();
    let file = evidence_dir.path().join("risk-policy.txt");
    let bytes = "风险控制策略 v3\nrisk control policy v3\n".repeat(20);
    std::fs::write(&file, &bytes).unwrap();
    open_evidence(&c, MET[0]).await;
    c.find(Locator::Id(&format!("file-{}", key(MET[0]))))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    open_evidence(&c, MET[1]).await;
    fill(
        &c,
        &format!("link-{}", key(MET[1])),
        "https://wiki.example.com/risk/policy",
    )
    .await;
    open_evidence(&c, MET[2]).await;
    fill(&c, &format!("platform-{}", key(MET[2])), "audit:1").await;
    shot("assess-item-filled").await;
    click(&c, "save").await;
    let saved = until_text(&c, "#notice", |t| t.contains("已保存评级")).await;
    assert!(saved.contains("6") && saved.contains("3"), "{saved}");
    // The levels are recomputed at once: every level-1 clause met or na.
    assert_eq!(text(&c, "#item-level").await, "1 / 3");
    assert_eq!(
        text(&c, "#item-progress").await.split(' ').next(),
        Some("6")
    );
    assert_eq!(
        text(&c, &format!("#evidence-{} a", key(MET[0]))).await,
        "risk-policy.txt"
    );
    assert!(
        text(&c, &format!("#clause-{} .who-when", key(MET[0])))
            .await
            .starts_with("rater · 2026-11-25")
    );
    let stored = s.state.store.assessment_evidence(id).await.unwrap();
    assert_eq!(stored.len(), 3, "{stored:?}");
    let f = stored.iter().find(|e| e.kind == "file").unwrap();
    assert_eq!(
        f.sha256.as_deref(),
        Some(hex::encode(Sha256::digest(bytes.as_bytes())).as_str())
    );
    assert_eq!(f.size, Some(i64::try_from(bytes.len()).unwrap()));
    // The evidence file downloads from the page with its bytes.
    let got = c
        .execute(
            "return fetch(arguments[0]).then(r => r.text());",
            vec![serde_json::json!(format!(
                "/assessments/{id}/evidence/{}",
                f.id
            ))],
        )
        .await
        .unwrap();
    assert_eq!(got.as_str(), Some(bytes.as_str()));
    // na without a justification is refused, and nothing of that save is stored.
    choose(&c, &format!("rating-{}", key(NA)), "unrated").await;
    choose(&c, &format!("rating-{}", key(NA)), "na").await;
    fill(&c, &format!("just-{}", key(NA)), " ").await;
    click(&c, "save").await;
    let refusal = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(
        refusal.contains("assess.na_without_justification"),
        "{refusal}"
    );
    assert!(
        c.find(Locator::Id(&format!("just-{}", key(NA))))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .is_some_and(|v| v.starts_with("本公司"))
    );
    shot("assess-item-saved").await;
    click(&c, "submit-item").await;
    until_text(&c, "#review-state", |t| t == "submitted").await;
    // Submitted: the table is read-only for the assessor now.
    assert!(text(&c, "#locked").await.contains("审核人退回"));
    sign_out(&c).await;

    // --- The owner submits the assessment for review, then (by mistake) makes the assessor the
    // item's reviewer.
    sign_in(&c, &s, &mut lead).await;
    c.goto(&format!("{}/assessments/{id}", s.url))
        .await
        .unwrap();
    click(&c, "transition-submit").await;
    until_text(&c, "#state", |t| t == "in_review").await;
    assign_t5(&c, &s, id, "checker", "rater").await;
    until_text(&c, "#notice", |t| t.contains("T5")).await;
    sign_out(&c).await;

    // --- The assessor cannot approve clauses they rated.
    sign_in(&c, &s, &mut rater).await;
    c.goto(&format!("{}/assessments/{id}/items/T5", s.url))
        .await
        .unwrap();
    click(&c, "approve").await;
    let refusal = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(refusal.contains("sod.own_clause"), "{refusal}");
    assert!(refusal.contains("T5.1.L1.a"), "{refusal}");
    assert_eq!(text(&c, "#review-state").await, "submitted");
    shot("assess-own-approval-refused").await;
    sign_out(&c).await;

    sign_in(&c, &s, &mut lead).await;
    assign_t5(&c, &s, id, "rater", "checker").await;
    until_text(&c, "#notice", |t| t.contains("T5")).await;
    sign_out(&c).await;

    // --- The reviewer sees the na answer with its justification and approves the item.
    sign_in(&c, &s, &mut checker).await;
    c.goto(&format!("{}/assessments/{id}/items/T5", s.url))
        .await
        .unwrap();
    assert!(text(&c, "#na-list").await.contains(NA));
    click(&c, "approve").await;
    until_text(&c, "#review-state", |t| t == "approved").await;
    assert!(
        text(&c, &format!("#clause-{} .who-when", key(NA)))
            .await
            .contains("checker")
    );
    shot("assess-approved").await;
    sign_out(&c).await;

    // --- The owner signs off; the assessment is locked.
    sign_in(&c, &s, &mut lead).await;
    c.goto(&format!("{}/assessments/{id}", s.url))
        .await
        .unwrap();
    click(&c, "transition-sign_off").await;
    until_text(&c, "#state", |t| t == "signed_off").await;
    assert!(c.find(Locator::Id("assign-form")).await.is_err());
    assert!(c.find(Locator::Id("transition-reopen")).await.is_ok());
    // Every export format is offered and downloads.
    for format in ["yaml", "xlsx", "json", "html", "report-xlsx", "pdf"] {
        let href = c
            .find(Locator::Id(&format!("export-{format}")))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(href, format!("/assessments/{id}/export/{format}"));
        let status = c
            .execute(
                "return fetch(arguments[0]).then(r => r.status);",
                vec![serde_json::json!(href)],
            )
            .await
            .unwrap();
        assert_eq!(status.as_u64(), Some(200), "{format}");
    }
    // The PDF the auditors get (its text is read back with pdftotext in the API test).
    let magic = c
        .execute(
            "return fetch(arguments[0]).then(r => r.arrayBuffer())\
             .then(b => String.fromCharCode(...new Uint8Array(b.slice(0, 5))));",
            vec![serde_json::json!(format!("/assessments/{id}/export/pdf"))],
        )
        .await
        .unwrap();
    assert_eq!(magic, "%PDF-");
    let report = c
        .execute(
            "return fetch(arguments[0]).then(r => r.json());",
            vec![serde_json::json!(format!("/assessments/{id}/export/json"))],
        )
        .await
        .unwrap();
    let t5 = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["table"] == 5)
        .unwrap();
    assert_eq!(t5["level"], 1);
    shot("assess-signed-off").await;
    // A change to the signed-off assessment is refused by the server, even from a form the page
    // does not offer (the read-only table enabled by hand).
    c.goto(&format!("{}/assessments/{id}/items/T5", s.url))
        .await
        .unwrap();
    assert!(text(&c, "#locked").await.contains("已签署"));
    c.execute(
        "document.getElementById('rating-fields').disabled = false;",
        vec![],
    )
    .await
    .unwrap();
    choose(&c, "rating-T5_1_L2_a", "met").await;
    click(&c, "save").await;
    let refusal = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(refusal.contains("assess.locked"), "{refusal}");
    assert_eq!(
        s.state
            .store
            .assessment_answers(id)
            .await
            .unwrap()
            .iter()
            .filter(|a| a.clause_id == "T5.1.L2.a")
            .count(),
        0
    );

    // --- Comparison and trend pages.
    c.goto(&format!("{}/assessments/compare?a={id}&b={id}", s.url))
        .await
        .unwrap();
    assert!(text(&c, "#compare-items").await.contains("T5"));
    assert!(c.find(Locator::Css("#trend svg polyline")).await.is_ok());
    sign_out(&c).await;

    // --- The audit log holds every step, the refusal included.
    let audit = s.audit_actions().await;
    for (action, outcome) in [
        ("assessment.create", "success"),
        ("assessment.assign", "success"),
        ("assessment.start", "success"),
        ("assessment.rate", "success"),
        ("assessment.evidence_add", "success"),
        ("assessment.item_submit", "success"),
        ("assessment.submit", "success"),
        ("assessment.item_approve", "denied"),
        ("assessment.item_approve", "success"),
        ("assessment.sign_off", "success"),
    ] {
        assert!(
            audit.iter().any(|(a, o)| a == action && o == outcome),
            "audit lacks {action} {outcome}"
        );
    }
    assert_eq!(
        audit
            .iter()
            .filter(|(a, o)| a == "assessment.evidence_add" && o == "success")
            .count(),
        3
    );
}
