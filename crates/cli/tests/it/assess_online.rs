//! `ballast assess push|pull` against a real `ballast serve` process: an answers file becomes an
//! assessment on the server, and the server's JSON report equals `ballast assess score` on the
//! answers file exported from it.

use serde_json::Value;
use sha2::Digest;

use super::exec::user_and_token;
use super::server::serve;
use super::{ballast, code, stderr, stdout};

#[test]
fn push_pull_and_the_servers_report_equals_the_cli_score() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = serve(d, &[]);
    let token = user_and_token(d, "lead", "platform_operations@global");
    let remote = ["--server", s.url.as_str(), "--token", token.as_str()];

    std::fs::create_dir_all(d.join("evidence")).unwrap();
    let policy = "变更管理制度 v3\n".as_bytes();
    std::fs::write(d.join("evidence/policy.txt"), policy).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(policy));
    let answers = format!(
        r#"catalog: jrt-ops-automation-maturity
version: draft-2024-songshen
meta:
  organization: 示例证券
scope: [T4, T5, T34]
answers:
  T5.1.L1.a: met
  T5.1.L1.b: {{rating: met, evidence: [{{file: evidence/policy.txt, sha256: {sha}}}, "https://wiki.example.com/ops"]}}
  T5.2.L1.a: {{rating: partial, comment: "仅覆盖生产环境"}}
  T5.2.L1.b: met
  T5.3.L1.a: {{rating: na, justification: "本公司无此类系统"}}
  T5.3.L1.b: met
  T4.1.L1.a: not_met
  T34.1.L1.a: met
"#
    );
    std::fs::write(d.join("answers.yaml"), &answers).unwrap();

    // push: prints the new assessment's id.
    let mut args = vec![
        "assess",
        "push",
        "answers.yaml",
        "--name",
        "2026 年度自评估",
    ];
    args.extend(remote);
    let o = ballast(d, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    assert!(id.parse::<i64>().is_ok(), "prints the id: {}", stdout(&o));

    // pull the answers file and the server's JSON report.
    let pull = |format: &str, out: &str| {
        let mut args = vec!["assess", "pull", id.as_str(), "--format", format, "-o", out];
        args.extend(remote);
        let o = ballast(d, &args);
        assert_eq!(code(&o), 0, "pull {format}: {}", stderr(&o));
    };
    pull("yaml", "pulled.yaml");
    pull("json", "server.json");
    pull("html", "server.html");
    pull("xlsx", "pulled.xlsx");

    // The CLI scores the exported answers (its evidence file found and hashed) …
    let o = ballast(
        d,
        &[
            "assess",
            "score",
            "pulled.yaml",
            "--format",
            "json",
            "-o",
            "cli.json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cli: Value = serde_json::from_slice(&std::fs::read(d.join("cli.json")).unwrap()).unwrap();
    let server: Value =
        serde_json::from_slice(&std::fs::read(d.join("server.json")).unwrap()).unwrap();
    // … and the server's report is the same value (the report has no generation timestamp).
    assert_eq!(
        server, cli,
        "the server's report equals `ballast assess score`"
    );
    assert_eq!(server["meta"]["name"], "2026 年度自评估");
    assert_eq!(server["meta"]["organization"], "示例证券");
    assert_eq!(server["scope"], "T4-T5,T34");
    assert_eq!(server["exceptions"][0]["id"], "T5.3.L1.a");
    // The exported XLSX answers workbook scores the same.
    let o = ballast(
        d,
        &[
            "assess",
            "score",
            "pulled.xlsx",
            "--format",
            "json",
            "-o",
            "cli-xlsx.json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let from_xlsx: Value =
        serde_json::from_slice(&std::fs::read(d.join("cli-xlsx.json")).unwrap()).unwrap();
    assert_eq!(from_xlsx["items"], server["items"]);
    let html = std::fs::read_to_string(d.join("server.html")).unwrap();
    assert!(html.contains("风险控制策略"));

    // The PDF report over HTTP, and the same report rendered offline by `assess score`: both
    // give their Chinese text back through pdftotext.
    pull("pdf", "server.pdf");
    let o = ballast(
        d,
        &[
            "assess",
            "score",
            "pulled.yaml",
            "--format",
            "pdf",
            "-o",
            "cli.pdf",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for f in ["server.pdf", "cli.pdf"] {
        let text = pdftotext(&d.join(f));
        for want in [
            "2026 年度自评估",
            "示例证券",
            "风险控制策略",
            "管理流程与规范",
            "监控数据采集",
        ] {
            assert!(text.contains(want), "{f}: {want:?} in\n{text}");
        }
    }
    let mut args = vec!["assess", "pull", id.as_str(), "--format", "pdf"];
    args.extend(remote);
    let o = ballast(d, &args);
    assert_eq!(code(&o), 2, "pdf needs -o");

    // Refusals: bilingual, exit 2.
    let mut args = vec!["assess", "pull", id.as_str(), "--format", "xlsx"];
    args.extend(remote);
    let o = ballast(d, &args);
    assert_eq!(code(&o), 2, "xlsx needs -o");
    let mut args = vec!["assess", "pull", "999", "--format", "json"];
    args.extend(remote);
    let o = ballast(d, &args);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("not found") && stderr(&o).contains("未找到"),
        "{}",
        stderr(&o)
    );
    std::fs::write(d.join("bad.yaml"), "answers:\n  T5.1.L1.a: excellent\n").unwrap();
    let mut args = vec!["assess", "push", "bad.yaml", "--name", "bad"];
    args.extend(remote);
    let o = ballast(d, &args);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("answers.rating_invalid"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("bad.yaml"),
        "names the file: {}",
        stderr(&o)
    );
    let o = ballast(
        d,
        &[
            "assess",
            "push",
            "answers.yaml",
            "--name",
            "x",
            "--server",
            s.url.as_str(),
            "--token",
            "wrong",
        ],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("auth."), "{}", stderr(&o));
}

/// The text of a PDF file through poppler's `pdftotext` (Debian's poppler-utils, installed by
/// scripts/test); a missing tool fails the test instead of skipping it.
fn pdftotext(file: &std::path::Path) -> String {
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(file)
        .arg("-")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run pdftotext ({e}): install Debian's poppler-utils (scripts/test does)")
        });
    assert!(
        out.status.success(),
        "pdftotext {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
