//! Table-driven dangerous-command tests: `tests/danger_cases.txt`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ballast_exec::danger::{Action, ScanLanguage, default_rules, scan};

const CASES: &str = include_str!("../danger_cases.txt");

struct Case<'a> {
    line: usize,
    expect: Option<Action>,
    language: ScanLanguage,
    text: String,
    raw: &'a str,
}

fn parse_cases() -> Vec<Case<'static>> {
    let mut out = Vec::new();
    for (i, raw) in CASES.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with("##") {
            continue;
        }
        let (expect, rest) = trimmed
            .split_once(" | ")
            .unwrap_or_else(|| panic!("line {}: no ` | `", i + 1));
        let expect = match expect {
            "pass" => None,
            "warn" => Some(Action::Warn),
            "approve" => Some(Action::RequireApproval),
            "block" => Some(Action::Block),
            other => panic!("line {}: unknown expectation {other}", i + 1),
        };
        let (language, text) = match rest.split_once(" | ") {
            Some(("bash" | "sh", t)) => (ScanLanguage::Shell, t),
            Some(("python3", t)) => (ScanLanguage::Python3, t),
            Some(("sql", t)) => (ScanLanguage::Sql, t),
            _ => (ScanLanguage::Shell, rest),
        };
        out.push(Case {
            line: i + 1,
            expect,
            language,
            text: text.replace("\\n", "\n"),
            raw,
        });
    }
    out
}

#[test]
fn danger_cases_from_the_table() {
    let rules = default_rules();
    let cases = parse_cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let result = scan(case.language, &case.text, &rules);
        if result.worst() != case.expect {
            failures.push(format!(
                "line {}: `{}`\n    expected {:?}, got {:?}: {:?}",
                case.line,
                case.raw,
                case.expect,
                result.worst(),
                result
                    .findings
                    .iter()
                    .map(|f| format!(
                        "{} ({}) line {} `{}`",
                        f.rule_id, f.action, f.line, f.command
                    ))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn deep_but_allowed_nesting_does_not_overflow_the_stack() {
    // Run on a small stack like the server's worker threads (2 MiB).
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let depth = ballast_exec::danger::MAX_BRACKET_DEPTH;
            let subshells = format!("{}rm -rf /{}", "( ".repeat(depth), " )".repeat(depth));
            let braces = format!("{}rm -rf /;{}", "{ ".repeat(depth), " }".repeat(depth));
            let substitutions = format!(
                "{}rm -rf /{}",
                "echo $(".repeat(depth / 2),
                ")".repeat(depth / 2)
            );
            [subshells, braces, substitutions]
                .iter()
                .map(|t| scan(ScanLanguage::Shell, t, &default_rules()).worst())
                .collect::<Vec<_>>()
        })
        .unwrap();
    let results = handle.join().unwrap();
    for r in results {
        assert!(r >= Some(Action::RequireApproval), "{r:?}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let rules = default_rules();
    let samples = [
        "\u{0}\u{1}$((",
        "'''",
        "\"\"\"",
        "$(",
        "`",
        "<<EOF",
        "case x in",
        "f() {",
        "${",
        "$'\\x",
        "os.system(",
        "DROP",
        ";;;;",
        "\\",
        "for ((;;",
        "a|||b",
        "[[ -f",
        ">(",
        "<(",
    ];
    for s in samples {
        for lang in [
            ScanLanguage::Shell,
            ScanLanguage::Python3,
            ScanLanguage::Sql,
        ] {
            let _ = scan(lang, s, &rules);
        }
    }
}
