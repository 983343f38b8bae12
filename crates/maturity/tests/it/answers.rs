//! Answers files: every kind of bad input named by file and line (YAML) or sheet, row and column
//! (XLSX); round trips template → answers → parse.

use ballast_maturity::answers::{self, check_evidence_files, xlsx, yaml};
use ballast_maturity::error::{AnswerProblem, Location};
use ballast_maturity::{Answer, AnswerSet, ClauseId, Evidence, Msg, Rating, Scope};
use rust_xlsxwriter::Workbook;

use super::catalog;

fn parse_err(text: &str) -> Vec<(usize, AnswerProblem)> {
    match yaml::parse(catalog(), "a.yaml", text) {
        Ok(set) => panic!("expected errors, parsed {} answers", set.answers.len()),
        Err(e) => {
            e.0.into_iter()
                .map(|e| match e.location {
                    Location::Line { line, .. } => (line, e.problem),
                    other => panic!("expected a line location, got {other:?}"),
                })
                .collect()
        }
    }
}

#[test]
fn short_and_long_forms() {
    let text = r#"
catalog: jrt-ops-automation-maturity
version: draft-2024-songshen
scope: [T4, T5, T34]
answers:
  T5.2.L3.c: met
  T5.3.L1.a: {rating: partial, comment: "半数系统已接入", evidence: "巡检报告 2026Q3"}
  T6.1.L1.a: {rating: na, justification: "未自研平台"}
  T4.1.L1.a:
    rating: 符合
    evidence:
      - https://wiki.example.com/policy
      - {file: evidence/policy.pdf, sha256: "ABCDEF"}
    assessor: 李四
    date: 2026-11-03
"#;
    let set = yaml::parse(catalog(), "a.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.scope.to_spec(), "T4-T5,T34");
    assert_eq!(set.rating(&cid("T5.2.L3.c")), Rating::Met);
    assert_eq!(set.rating(&cid("T6.1.L1.a")), Rating::Na);
    assert_eq!(
        set.rating(&cid("T9.1.L1.a")),
        Rating::Unrated,
        "absent = unrated"
    );
    let a = &set.answers[&cid("T4.1.L1.a")];
    assert_eq!(a.rating, Rating::Met);
    assert_eq!(a.date.as_deref(), Some("2026-11-03"));
    assert_eq!(
        a.evidence,
        vec![
            Evidence::Url {
                url: "https://wiki.example.com/policy".into()
            },
            Evidence::File {
                path: "evidence/policy.pdf".into(),
                sha256: "abcdef".into()
            },
        ]
    );
    assert_eq!(
        set.answers[&cid("T5.3.L1.a")].evidence,
        vec![Evidence::Text {
            text: "巡检报告 2026Q3".into()
        }]
    );
}

fn cid(s: &str) -> ClauseId {
    ClauseId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = "\
answers:
  T5.2.L3.c: met
  T99.1.L1.a: met
  T5.2.L3: met
  T5.2.L3.c: partial
  T5.3.L1.a: maybe
  T6.1.L1.a: {rating: na}
  T6.1.L1.b: {rating: met, date: 2026-13-01}
  T6.1.L2.a: {rating: met, colour: blue}
  T6.1.L2.b: {comment: no rating}
";
    let errors = parse_err(text);
    let codes: Vec<(usize, &str)> = errors
        .iter()
        .map(|(l, p)| {
            (
                *l,
                ballast_maturity::error::AnswerError {
                    location: Location::File {
                        file: String::new(),
                    },
                    problem: p.clone(),
                }
                .code(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (3, "answers.clause_unknown"),
            (4, "answers.clause_id_malformed"),
            (5, "answers.clause_duplicate"),
            (6, "answers.rating_invalid"),
            (7, "answers.na_without_justification"),
            (8, "answers.date_invalid"),
            (9, "answers.unknown_key"),
            (10, "answers.shape"),
        ]
    );
}

#[test]
fn messages_are_bilingual_and_name_file_line_and_clause() {
    let err = yaml::parse(
        catalog(),
        "answers/2026.yaml",
        "answers:\n  T5.2.L3.c: met\n  T5.2.L3.c: met\n",
    )
    .err()
    .unwrap_or_else(|| panic!("duplicate accepted"));
    let e = &err.0[0];
    assert!(
        e.message_en().starts_with(
            "answers/2026.yaml:3: clause T5.2.L3.c answered twice (first at answers/2026.yaml:2)"
        ),
        "{}",
        e.message_en()
    );
    assert!(
        e.message_zh().contains("answers/2026.yaml 第 3 行")
            && e.message_zh().contains("T5.2.L3.c 重复作答"),
        "{}",
        e.message_zh()
    );
}

#[test]
fn other_catalogs_and_bad_documents_are_refused() {
    let errors = parse_err("catalog: other\nversion: 2030\nanswers: {}\n");
    assert!(matches!(
        &errors[0],
        (
            1,
            AnswerProblem::CatalogMismatch {
                field: "catalog",
                ..
            }
        )
    ));
    assert!(matches!(
        &errors[1],
        (
            2,
            AnswerProblem::CatalogMismatch {
                field: "version",
                ..
            }
        )
    ));
    assert!(matches!(
        parse_err("answers: [1, 2\n").as_slice(),
        [(_, AnswerProblem::Syntax(_))]
    ));
    assert!(matches!(
        parse_err("- just a list\n").as_slice(),
        [(1, AnswerProblem::Shape { .. })]
    ));
    assert!(matches!(
        parse_err("answer: {}\n").as_slice(),
        [
            (1, AnswerProblem::UnknownKey(_)),
            (1, AnswerProblem::Shape { .. })
        ]
    ));
    assert!(matches!(
        parse_err("scope: [T3]\nanswers: {}\n").as_slice(),
        [(1, AnswerProblem::InvalidScope(_))]
    ));
}

#[test]
fn hostile_input_never_panics() {
    for text in [
        "",
        "~",
        "answers:",
        "answers: ~",
        "answers: met",
        "&a x: *a",
        "answers: {T5.2.L3.c: [met]}",
        "answers: {? [a]: met}",
        "\u{feff}answers: {}",
        "answers: {T5.2.L3.c: {rating: {a: b}}}",
        "answers: {'T5.2.L3.c; DROP TABLE answers;--': met}",
        "answers: {T5.2.L3.c: '<script>alert(1)</script>'}",
    ] {
        let _ = yaml::parse(catalog(), "h.yaml", text);
    }
    let _ = answers::parse_file(catalog(), "x.yaml", &[0xff, 0xfe, 0x00]);
    let _ = answers::parse_file(catalog(), "x.xlsx", b"PK\x03\x04 not a zip");
}

fn filled_set() -> AnswerSet {
    let c = catalog();
    let mut set = AnswerSet {
        scope: Scope::parse_list(c, "T4,T37").unwrap_or_else(|t| panic!("{t}")),
        ..Default::default()
    };
    set.meta.insert("name".into(), "2026 年度".into());
    for (k, cl) in c
        .clauses()
        .filter(|cl| set.scope.contains(cl.item.table))
        .enumerate()
    {
        let answer = match k % 5 {
            0 => Answer {
                rating: Rating::Met,
                evidence: vec![Evidence::Url {
                    url: "https://e.example/1".into(),
                }],
                assessor: Some("王五".into()),
                date: Some("2026-11-01".into()),
                ..Default::default()
            },
            1 => Answer {
                rating: Rating::Partial,
                comment: Some("部分覆盖\n第二行".into()),
                ..Default::default()
            },
            2 => Answer {
                rating: Rating::NotMet,
                ..Default::default()
            },
            3 => Answer {
                rating: Rating::Na,
                justification: Some("不涉及".into()),
                evidence: vec![Evidence::Text {
                    text: "说明".into(),
                }],
                ..Default::default()
            },
            _ => Answer {
                rating: Rating::Unrated,
                ..Default::default()
            },
        };
        set.answers.insert(cl.id, answer);
    }
    set
}

fn without_locations(mut s: AnswerSet) -> AnswerSet {
    s.locations.clear();
    s.catalog = None;
    s.version = None;
    s
}

#[test]
fn yaml_round_trip() {
    let set = filled_set();
    let text = yaml::write(catalog(), &set, "test");
    let back = yaml::parse(catalog(), "rt.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(without_locations(back), set);
}

#[test]
fn xlsx_round_trip() {
    let set = filled_set();
    let bytes = xlsx::write(catalog(), &set).unwrap_or_else(|e| panic!("{e}"));
    let back = xlsx::parse(catalog(), "rt.xlsx", &bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(without_locations(back), set);
}

/// A workbook written by hand, as a person's spreadsheet tool might leave it.
fn workbook(header: &[&str], rows: &[&[&str]], meta: &[(&str, &str)]) -> Vec<u8> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(xlsx::ANSWERS_SHEET)
        .unwrap_or_else(|e| panic!("{e}"));
    for (c, h) in header.iter().enumerate() {
        ws.write_string(0, c as u16, *h)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            ws.write_string(r as u32 + 1, c as u16, *v)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let m = wb.add_worksheet();
    m.set_name(xlsx::META_SHEET)
        .unwrap_or_else(|e| panic!("{e}"));
    for (r, (k, v)) in meta.iter().enumerate() {
        m.write_string(r as u32 + 1, 0, *k)
            .unwrap_or_else(|e| panic!("{e}"));
        m.write_string(r as u32 + 1, 1, *v)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    wb.save_to_buffer().unwrap_or_else(|e| panic!("{e}"))
}

fn header() -> Vec<&'static str> {
    xlsx::COLUMNS.iter().map(|(h, _)| *h).collect()
}

#[test]
fn xlsx_errors_name_sheet_row_and_column() {
    let ok_meta = [
        ("能力目录 Catalog", "jrt-ops-automation-maturity"),
        ("版本 Version", "draft-2024-songshen"),
    ];
    let row = |id: &'static str, rating: &'static str| -> Vec<&'static str> {
        vec![id, "", "", "", "", "", "", rating, "", "", "", "", ""]
    };
    let r1 = row("T5.2.L3.c", "met");
    let r2 = row("T5.2.L3.c", "met");
    let r3 = row("T5.3.L1.a", "good");
    let r4 = row("T6.1.L1.a", "na");
    let bytes = workbook(&header(), &[&r1, &r2, &r3, &r4], &ok_meta);
    let errors = xlsx::parse(catalog(), "t.xlsx", &bytes)
        .err()
        .unwrap_or_else(|| panic!("accepted"))
        .0;
    let msgs: Vec<String> = errors.iter().map(|e| e.message_en()).collect();
    assert_eq!(errors.len(), 3, "{msgs:#?}");
    assert!(
        msgs[0].starts_with("t.xlsx [评估 Answers] row 3: clause T5.2.L3.c answered twice"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[1].starts_with("t.xlsx [评估 Answers] H4: rating \"good\""),
        "{}",
        msgs[1]
    );
    assert!(
        msgs[2].contains("row 5")
            && msgs[2].contains("T6.1.L1.a is rated na without a justification"),
        "{}",
        msgs[2]
    );

    let mut renamed = header();
    renamed[7] = "Status";
    let errors = xlsx::parse(catalog(), "t.xlsx", &workbook(&renamed, &[&r1], &ok_meta))
        .err()
        .unwrap_or_else(|| panic!("accepted"))
        .0;
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .message_en()
            .contains("H1: header is \"Status\", expected \"评级 Rating\""),
        "{}",
        errors[0].message_en()
    );

    let errors = xlsx::parse(
        catalog(),
        "t.xlsx",
        &workbook(&header(), &[&r1], &[("版本 Version", "2030")]),
    )
    .err()
    .unwrap_or_else(|| panic!("accepted"))
    .0;
    assert!(
        errors[0].message_zh().contains("另一版能力目录"),
        "{}",
        errors[0].message_zh()
    );

    let mut wb = Workbook::new();
    let _ = wb.add_worksheet();
    let bytes = wb.save_to_buffer().unwrap_or_else(|e| panic!("{e}"));
    let errors = xlsx::parse(catalog(), "t.xlsx", &bytes)
        .err()
        .unwrap_or_else(|| panic!("accepted"))
        .0;
    assert!(
        matches!(&errors[0].problem, AnswerProblem::MissingSheet(s) if s == xlsx::ANSWERS_SHEET)
    );
}

#[test]
fn evidence_files_are_hashed_and_checked() {
    let text = "answers:\n  T5.2.L3.c: {rating: met, evidence: {file: a.txt}}\n  T5.2.L3.b: {rating: met, evidence: {file: b.txt, sha256: 00}}\n  T5.2.L3.a: {rating: met, evidence: {file: gone.txt, sha256: ab}}\n  T5.2.L2.a: {rating: met, evidence: {file: gone.txt}}\n";
    let mut set = yaml::parse(catalog(), "e.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    let read = |p: &str| match p {
        "a.txt" | "b.txt" => Ok(b"hello".to_vec()),
        _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    };
    let (errors, warnings) = check_evidence_files(&mut set, &read);
    let codes: Vec<&str> = errors.iter().map(|e| e.code()).collect();
    assert_eq!(
        codes,
        vec!["answers.evidence_missing", "answers.evidence_hash_mismatch"]
    );
    assert!(
        errors[0].message_en().starts_with("e.yaml:5:"),
        "{}",
        errors[0].message_en()
    );
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        set.answers[&cid("T5.2.L3.c")].evidence,
        vec![Evidence::File {
            path: "a.txt".into(),
            sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".into()
        }]
    );
}
