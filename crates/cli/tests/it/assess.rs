//! `ballast assess template|score`: round trips through both answer formats, reports, exit codes.

use std::path::Path;

use calamine::{Data, Reader, Xlsx};

use super::{ballast, code, stderr, stdout};

/// Rates every clause of the YAML template: levels ≤ `met_up_to` met, the rest not_met.
fn fill_yaml(template: &str, met_up_to: u8) -> String {
    template
        .lines()
        .map(|line| {
            let t = line.trim_start();
            if t.starts_with('T') && line.ends_with(": unrated") {
                let level: u8 = t
                    .split('.')
                    .nth(2)
                    .and_then(|l| l[1..].parse().ok())
                    .unwrap();
                let rating = if level <= met_up_to { "met" } else { "not_met" };
                line.replace(": unrated", &format!(": {rating}"))
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn score_json(dir: &Path, file: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["assess", "score", file, "--format", "json"];
    args.extend_from_slice(extra);
    let o = ballast(dir, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn yaml_template_fill_score() {
    let dir = tempfile::tempdir().unwrap();
    let o = ballast(
        dir.path(),
        &[
            "assess",
            "template",
            "--format",
            "yaml",
            "--scope",
            "T4,T21-T22",
            "-o",
            "t.yaml",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let template = std::fs::read_to_string(dir.path().join("t.yaml")).unwrap();
    std::fs::write(dir.path().join("a.yaml"), fill_yaml(&template, 2)).unwrap();
    let r = score_json(dir.path(), "a.yaml", &["--target", "3"]);
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["technical_management_level"], 2);
    assert_eq!(r["technical_application_level"], 2);
    assert_eq!(r["scope"], "T4,T21-T22");
    let items = r["items"].as_array().unwrap();
    assert_eq!(items.iter().filter(|i| i["in_scope"] == true).count(), 3);
    let t21 = items.iter().find(|i| i["table"] == 21).unwrap();
    assert_eq!(t21["level"], 2);
    assert!(
        t21["missing_for_next"]
            .as_array()
            .unwrap()
            .iter()
            .all(|id| id.as_str().unwrap().contains(".L3."))
    );
    let t6 = items.iter().find(|i| i["table"] == 6).unwrap();
    assert_eq!(
        (t6["in_scope"].clone(), t6["level"].clone()),
        (false.into(), serde_json::Value::Null)
    );
}

/// Writes a filled copy of the XLSX template, as a person would with a spreadsheet tool:
/// the template is read back and every sheet rewritten with ratings in column H.
fn fill_xlsx(template: &Path, out: &Path, rating_for: impl Fn(&str) -> &'static str) {
    let mut wb: Xlsx<_> = calamine::open_workbook(template).unwrap();
    let mut new = rust_xlsxwriter::Workbook::new();
    for name in wb.sheet_names() {
        let range = wb.worksheet_range(&name).unwrap();
        let ws = new.add_worksheet();
        ws.set_name(&name).unwrap();
        for (r, row) in range.rows().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let text = match cell {
                    Data::String(s) => s.clone(),
                    Data::Empty => String::new(),
                    other => other.to_string(),
                };
                let text = if name.starts_with("评估") && r > 0 && c == 7 {
                    let id = match &row[0] {
                        Data::String(s) => s.as_str(),
                        _ => "",
                    };
                    rating_for(id).to_string()
                } else {
                    text
                };
                ws.write_string(r as u32, c as u16, text).unwrap();
            }
        }
    }
    new.save(out).unwrap();
}

#[test]
fn xlsx_template_fill_score_matches_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let o = ballast(
        dir.path(),
        &[
            "assess", "template", "--format", "xlsx", "--scope", "T5,T37", "-o", "t.xlsx",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // The template is pleasant: frozen header, filter, validation — check the XML carries them.
    let xml = sheet_xml(&dir.path().join("t.xlsx"));
    assert!(
        xml.contains("<pane xSplit=\"1\" ySplit=\"1\""),
        "frozen header and ID column"
    );
    assert!(xml.contains("<autoFilter"), "filters");
    assert!(
        xml.contains("<dataValidation") && xml.contains("met,partial,not_met,na,unrated"),
        "rating drop-down"
    );

    let rate = |id: &str| {
        if id.contains(".L1.") || id.contains(".L2.") {
            "met"
        } else {
            "partial"
        }
    };
    fill_xlsx(
        &dir.path().join("t.xlsx"),
        &dir.path().join("filled.xlsx"),
        rate,
    );
    let from_xlsx = score_json(dir.path(), "filled.xlsx", &[]);

    let template = ballast(
        dir.path(),
        &[
            "assess", "template", "--format", "yaml", "--scope", "T5,T37",
        ],
    );
    let filled: String = stdout(&template)
        .lines()
        .map(|l| match l.trim_start().split_once(": unrated") {
            Some((id, _)) => l.replace(": unrated", &format!(": {}", rate(id))),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("filled.yaml"), filled).unwrap();
    let from_yaml = score_json(dir.path(), "filled.yaml", &[]);
    assert_eq!(from_xlsx, from_yaml, "both answer formats score the same");
    assert_eq!(from_yaml["technical_management_level"], 2);
    assert_eq!(from_yaml["technical_application_level"], 2);
}

fn sheet_xml(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(
        &mut zip.by_name("xl/worksheets/sheet1.xml").unwrap(),
        &mut s,
    )
    .unwrap();
    s
}

#[test]
fn report_formats_are_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "scope: [T4]\nanswers:\n  T4.1.L1.a: met\n",
    )
    .unwrap();
    for (fmt, file, needle) in [
        ("text", "r.txt", "技术管理能力成熟度"),
        ("md", "r.md", "## 差距 Gaps"),
        ("html", "r.html", "class=\"heat\""),
    ] {
        let o = ballast(
            dir.path(),
            &["assess", "score", "a.yaml", "--format", fmt, "-o", file],
        );
        assert_eq!(code(&o), 0, "{fmt}: {}", stderr(&o));
        let body = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(body.contains(needle), "{fmt} lacks {needle}");
    }
    let o = ballast(
        dir.path(),
        &[
            "assess", "score", "a.yaml", "--format", "xlsx", "-o", "r.xlsx",
        ],
    );
    assert_eq!(code(&o), 0);
    let wb: Xlsx<_> = calamine::open_workbook(dir.path().join("r.xlsx")).unwrap();
    assert!(wb.sheet_names().iter().any(|s| s == "差距 Gaps"));
}

#[test]
fn fail_under_sets_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let template = stdout(&ballast(
        dir.path(),
        &[
            "assess", "template", "--format", "yaml", "--scope", "T4,T21",
        ],
    ));
    std::fs::write(dir.path().join("a.yaml"), fill_yaml(&template, 1)).unwrap();
    let run = |t: &str| {
        ballast(
            dir.path(),
            &["assess", "score", "a.yaml", "--fail-under", t],
        )
    };
    assert_eq!(code(&run("1,1")), 0);
    assert_eq!(code(&run("1,")), 0);
    let o = run("2,1");
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("technical-management maturity is 1, required ≥ 2"),
        "{}",
        stderr(&o)
    );
    assert_eq!(code(&run(",2")), 1);
    for bad in ["", ",", "4,1", "x", "1,6"] {
        assert_eq!(code(&run(bad)), 2, "--fail-under {bad:?}");
    }
    // A scale out of scope does not meet a threshold set for it.
    std::fs::write(dir.path().join("tm.yaml"), "scope: [T4]\nanswers: {}\n").unwrap();
    let o = ballast(
        dir.path(),
        &["assess", "score", "tm.yaml", "--fail-under", ",1"],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not in scope"));
}

#[test]
fn bad_answers_exit_2_naming_file_line_and_clause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "catalog: jrt-ops-automation-maturity\nanswers:\n  T5.2.L3.c: met\n  T5.2.L3.c: partial\n  T6.1.L1.a: na\n  T6.1.L1.b: great\n",
    )
    .unwrap();
    let o = ballast(dir.path(), &["assess", "score", "bad.yaml"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    for needle in [
        "bad.yaml:4: clause T5.2.L3.c answered twice (first at bad.yaml:3)",
        "bad.yaml 第 4 行：条款 T5.2.L3.c 重复作答",
        "bad.yaml:5: clause T6.1.L1.a is rated na without a justification",
        "bad.yaml:6: rating \"great\" is not one of",
        "3 error(s), nothing scored",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(o.stdout.is_empty(), "no report on bad input");

    std::fs::write(
        dir.path().join("other.yaml"),
        "version: published-2027\nanswers: {}\n",
    )
    .unwrap();
    let o = ballast(dir.path(), &["assess", "score", "other.yaml"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("file is for another catalog: version is \"published-2027\""));

    let o = ballast(dir.path(), &["assess", "score", "nope.yaml"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("cannot read answers file nope.yaml"));
    let o = ballast(
        dir.path(),
        &["assess", "score", "bad.yaml", "--policy", "lenient"],
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("policy \"lenient\" is invalid"));
}

#[test]
fn evidence_files_are_hashed_relative_to_the_answers_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ev")).unwrap();
    std::fs::write(dir.path().join("ev/policy.txt"), "hello").unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "answers:\n  T4.1.L1.a: {rating: met, evidence: {file: ev/policy.txt}}\n  T4.1.L1.b: {rating: met, evidence: {file: ev/policy.txt, sha256: deadbeef}}\n",
    )
    .unwrap();
    let sub = dir.path().join("elsewhere");
    std::fs::create_dir(&sub).unwrap();
    let o = ballast(&sub, &["assess", "score", "../a.yaml"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("evidence file ev/policy.txt of clause T4.1.L1.b has sha256 2cf24dba"),
        "{err}"
    );
}
