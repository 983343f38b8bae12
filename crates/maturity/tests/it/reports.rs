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

/// The CJK font for PDF tests: `BALLAST_PDF_FONT`, else Debian's fonts-noto-cjk (scripts/test
/// installs it). A missing font fails the test with what to install.
pub fn pdf_font() -> Vec<u8> {
    let path = std::env::var("BALLAST_PDF_FONT")
        .unwrap_or_else(|_| "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc".into());
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "PDF test font {path}: {e} — install Debian's fonts-noto-cjk or set BALLAST_PDF_FONT"
        )
    })
}

/// The text of a PDF, through poppler's `pdftotext` (Debian's poppler-utils; scripts/test
/// installs it). A missing tool fails the test, it does not skip it.
pub fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg("-enc")
        .arg("UTF-8")
        .arg(&file)
        .arg("-")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run pdftotext ({e}): install Debian's poppler-utils (scripts/test does)")
        });
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn pdf_report_of_the_whole_catalog_reads_back() {
    use ballast_maturity::{ClauseId, Rating};
    // Every item in scope; T5's level-1 and level-2 clauses met, one partial in T4, one na.
    let mut ratings: Vec<(ClauseId, Rating)> = catalog()
        .clauses()
        .filter(|c| c.item.table == 5 && c.level <= 2)
        .map(|c| (c.id, Rating::Met))
        .collect();
    ratings.push(("T4.1.L1.a".parse().unwrap(), Rating::Partial));
    ratings.push(("T4.1.L1.b".parse().unwrap(), Rating::Na));
    let set = super::answers_with(None, ratings);
    let card = score(catalog(), &set, Policy::Strict, Some(3));
    let r = report::build(catalog(), &set, &card, Vec::new());
    assert_eq!(r.items.len(), 46);
    let pdf = report::render_pdf(&r, &pdf_font()).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let text = pdftotext(&pdf);
    let pages = text.matches('\u{c}').count();
    assert!(pages >= 4, "A4 pages with page breaks: {pages}");
    assert!(
        text.contains(&format!("第 1 / {pages} 页"))
            && text.contains(&format!("page {pages} of {pages}")),
        "page numbers: {text}"
    );
    assert!(text.contains("运维自动化能力成熟度评估报告"), "title");
    for item in &r.items {
        assert!(
            text.contains(&item.name_zh),
            "item {} {} is in the PDF's text",
            item.table,
            item.name_zh
        );
    }
    for s in &r.scales {
        assert!(text.contains(&s.name_zh), "scale {}", s.name_zh);
    }
    for d in &r.domains {
        assert!(text.contains(&d.name_zh), "domain {}", d.name_zh);
    }
    // Levels: T5 reaches 2 of its levels; the gaps list the missing clauses.
    let t5 = r.items.iter().find(|i| i.table == 5).unwrap();
    assert_eq!(t5.level, Some(2));
    assert!(
        text.contains(&Report::level_text(t5.level, t5.levels)),
        "T5's level"
    );
    for g in r.gaps.iter().take(3) {
        for c in &g.missing {
            assert!(text.contains(&c.id.to_string()), "gap clause {}", c.id);
        }
    }
    assert!(text.contains("T4.1.L1.b"), "the na exception");
    assert!(text.contains("进度 Progress") && text.contains("符合情况 Compliance"));
}

#[test]
fn pdf_refuses_a_font_without_chinese_and_garbage() {
    let r = report_for("partial-t4-t5.yaml", Policy::Strict, None);
    let e = report::render_pdf(&r, b"not a font").unwrap_err();
    assert!(
        e.to_string().contains("字体") && e.to_string().contains("font"),
        "{e}"
    );
    let pdf = report::render_pdf(&r, &pdf_font()).unwrap();
    let text = pdftotext(&pdf);
    assert!(text.contains("示例证券 2026 年度自评估"), "{text}");
    assert!(text.contains("风险控制策略"));
}
