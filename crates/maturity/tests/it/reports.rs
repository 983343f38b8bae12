//! Reports: golden JSON for crafted answers (insta snapshots), and the other renderings say the
//! same thing.

use ballast_maturity::answers::yaml;
use ballast_maturity::report::{self, Report};
use ballast_maturity::{Policy, score};

use super::catalog;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn report_for(name: &str, policy: Policy, target: Option<u8>) -> Report {
    let set = yaml::parse(catalog(), name, &fixture(name)).unwrap_or_else(|e| panic!("{e}"));
    let card = score(catalog(), &set, policy, target);
    report::build(catalog(), &set, &card, Vec::new())
}

#[test]
fn golden_partial_t4_t5() {
    let r = report_for("partial-t4-t5.yaml", Policy::Strict, None);
    assert_eq!(r.technical_management_level, Some(0));
    assert_eq!(r.technical_application_level, None);
    insta::assert_json_snapshot!("partial-t4-t5.strict", r);
}

#[test]
fn golden_partial_t4_t5_target_3() {
    let r = report_for("partial-t4-t5.yaml", Policy::Proportional(0.5), Some(3));
    insta::assert_json_snapshot!("partial-t4-t5.proportional-target3", r);
}

#[test]
fn renderings_agree_with_the_json() {
    let r = report_for("partial-t4-t5.yaml", Policy::Strict, Some(2));
    let text = report::render_text(&r);
    let md = report::render_markdown(&r);
    let html = report::render_html(&r);
    for g in &r.gaps {
        for c in &g.missing {
            let id = c.id.to_string();
            assert!(
                text.contains(&id) && md.contains(&id) && html.contains(&id),
                "gap clause {id}"
            );
        }
    }
    for e in &r.exceptions {
        assert!(html.contains(&e.justification) && text.contains(&e.justification));
    }
    assert!(html.contains("示例证券 2026 年度自评估"));
}

#[test]
fn html_is_self_contained() {
    let set = ballast_maturity::AnswerSet::default();
    let r = report::build(
        catalog(),
        &set,
        &score(catalog(), &set, Policy::Strict, None),
        Vec::new(),
    );
    let html = report::render_html(&r);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("<svg") && html.contains("<polygon"),
        "radar chart"
    );
    assert!(html.contains("class=\"heat\""), "heat map");
    assert!(html.contains("@media print"));
    for external in ["<script", "src=\"http", "href=\"http", "<link", "@import"] {
        assert!(
            !html.contains(external),
            "external or scripted content: {external}"
        );
    }
}

#[test]
fn html_escapes_answer_text() {
    let text = "meta: {name: \"<script>alert(1)</script>\"}\nanswers:\n  T5.1.L1.a: {rating: na, justification: \"<img src=x onerror=alert(1)>\"}\n";
    let set = yaml::parse(catalog(), "x.yaml", text).unwrap();
    let r = report::build(
        catalog(),
        &set,
        &score(catalog(), &set, Policy::Strict, None),
        Vec::new(),
    );
    let html = report::render_html(&r);
    assert!(!html.contains("<script>") && !html.contains("<img"));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

#[test]
fn xlsx_report_opens() {
    use calamine::{Reader, Xlsx};
    let r = report_for("partial-t4-t5.yaml", Policy::Strict, Some(3));
    let bytes = report::render_xlsx(&r).unwrap();
    let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let gaps = wb.worksheet_range("差距 Gaps").unwrap();
    let clauses: usize = r.gaps.iter().map(|g| g.missing.len()).sum();
    assert_eq!(gaps.rows().count(), clauses + 1);
}
