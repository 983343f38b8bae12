//! `ballast assess template|score`: offline assessments, no server and no database.

use std::io::Write;
use std::path::{Path, PathBuf};

use ballast_maturity::answers::{self, check_evidence_files};
use ballast_maturity::report::{self, Report};
use ballast_maturity::{AnswerSet, Catalog, Msg, Policy, Scope, score};
use clap::{Subcommand, ValueEnum};

use crate::Exit;
use crate::output::{bad_input, emit, load_catalog, require_output};

#[derive(Subcommand)]
pub enum AssessCmd {
    /// Write the questionnaire an assessment team fills in: one row per clause.
    Template {
        #[arg(long, value_enum)]
        format: TemplateFormat,
        /// Items to include, e.g. `T4,T10-T20` or names (风险控制策略); all when absent.
        #[arg(long)]
        scope: Option<String>,
        /// Output file (stdout when absent; required for xlsx).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Compute levels, gaps and a report from a filled-in answers file (YAML or XLSX).
    Score {
        /// The answers file (.yaml/.yml or .xlsx).
        answers: PathBuf,
        /// Roll-up policy: `strict` (default) or `proportional[:P]`, 0 < P ≤ 1 (default 0.8).
        #[arg(long, default_value = "strict")]
        policy: String,
        /// Target level: list everything missing to reach it (clamped to each item's levels).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
        target: Option<u8>,
        /// Restrict the items scored (overrides the file's scope), e.g. `T4,T10-T20`.
        #[arg(long)]
        scope: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// Output file (stdout when absent; required for xlsx).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Exit 1 unless technical-management ≥ TM and technical-application ≥ TA, e.g. `2,3`, `2,` or `,3`.
        #[arg(long, value_name = "TM,TA")]
        fail_under: Option<String>,
    },
    /// Create an assessment on a server from an answers file (YAML or XLSX); prints its id.
    Push {
        /// The answers file (.yaml/.yml or .xlsx).
        answers: PathBuf,
        #[command(flatten)]
        remote: Remote,
        /// The new assessment's name (unique on the server).
        #[arg(long)]
        name: String,
    },
    /// Download an assessment from a server: its answers file (yaml, xlsx) or its report (json,
    /// html, report-xlsx, pdf).
    Pull {
        /// The assessment's id.
        id: i64,
        #[command(flatten)]
        remote: Remote,
        #[arg(long, value_enum)]
        format: PullFormat,
        /// Output file (stdout when absent; required for xlsx, report-xlsx and pdf).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

/// Where the server is and who is asking.
#[derive(clap::Args, Debug, Clone)]
pub struct Remote {
    /// Base URL of a Ballast server, e.g. http://127.0.0.1:8600 (or BALLAST_SERVER).
    #[arg(long, env = "BALLAST_SERVER", value_name = "URL")]
    pub server: String,
    /// API token of a holder of assessment.write (push) or assessment.read (pull), or
    /// BALLAST_TOKEN.
    #[arg(long, env = "BALLAST_TOKEN", value_name = "T", hide_env_values = true)]
    pub token: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PullFormat {
    Yaml,
    Xlsx,
    Json,
    Html,
    ReportXlsx,
    Pdf,
}

impl PullFormat {
    fn key(self) -> &'static str {
        match self {
            PullFormat::Yaml => "yaml",
            PullFormat::Xlsx => "xlsx",
            PullFormat::Json => "json",
            PullFormat::Html => "html",
            PullFormat::ReportXlsx => "report-xlsx",
            PullFormat::Pdf => "pdf",
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TemplateFormat {
    Xlsx,
    Yaml,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Md,
    Html,
    Xlsx,
    /// A4 PDF with an embedded CJK font (BALLAST_PDF_FONT, else Debian's fonts-noto-cjk).
    Pdf,
}

pub fn run(cmd: AssessCmd, catalog: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<u8> {
    let cmd = match cmd {
        AssessCmd::Push {
            answers,
            remote,
            name,
        } => return push(&answers, &remote, &name, out),
        AssessCmd::Pull {
            id,
            remote,
            format,
            output,
        } => return pull(id, &remote, format, output.as_deref(), out),
        other => other,
    };
    let catalog = load_catalog(catalog)?;
    match cmd {
        AssessCmd::Push { .. } | AssessCmd::Pull { .. } => Ok(2),
        AssessCmd::Template {
            format,
            scope,
            output,
        } => {
            let set = AnswerSet {
                scope: parse_scope(&catalog, scope.as_deref())?,
                ..AnswerSet::default()
            };
            let bytes = match format {
                TemplateFormat::Yaml => answers::yaml::write(
                    &catalog,
                    &set,
                    "Ballast 运维自动化能力成熟度评估答卷 — maturity assessment answers",
                )
                .into_bytes(),
                TemplateFormat::Xlsx => {
                    require_output(output.as_deref(), "xlsx")?;
                    answers::xlsx::write(&catalog, &set)?
                }
            };
            emit(&bytes, output.as_deref(), out)?;
            Ok(0)
        }
        AssessCmd::Score {
            answers: path,
            policy,
            target,
            scope,
            format,
            output,
            fail_under,
        } => {
            let policy = Policy::parse(&policy).ok_or_else(|| {
                bad_input(
                    format!("计分规则 {policy:?} 无效，应为 strict 或 proportional[:P]（0 < P ≤ 1）"),
                    format!("policy {policy:?} is invalid: use strict or proportional[:P] with 0 < P ≤ 1"),
                )
            })?;
            let thresholds = fail_under.as_deref().map(parse_fail_under).transpose()?;
            let scope_override = scope.map(|s| parse_scope(&catalog, Some(&s))).transpose()?;
            let report = score_file(&catalog, &path, policy, target, scope_override)?;
            let bytes = match format {
                ReportFormat::Text => report::render_text(&report).into_bytes(),
                ReportFormat::Json => {
                    let mut s = report.to_json();
                    s.push('\n');
                    s.into_bytes()
                }
                ReportFormat::Md => report::render_markdown(&report).into_bytes(),
                ReportFormat::Html => report::render_html(&report).into_bytes(),
                ReportFormat::Xlsx => {
                    require_output(output.as_deref(), "xlsx")?;
                    report::render_xlsx(&report)?
                }
                ReportFormat::Pdf => {
                    require_output(output.as_deref(), "pdf")?;
                    let configured = std::env::var_os("BALLAST_PDF_FONT").map(PathBuf::from);
                    let (font_path, font) =
                        ballast_server::assess::font::read(configured.as_deref()).map_err(|e| {
                            let msg = e.to_string();
                            let (zh, en) = msg.split_once(" — ").unwrap_or((&msg, &msg));
                            bad_input(zh, en)
                        })?;
                    report::render_pdf(&report, &font).map_err(|e| {
                        let msg = e.to_string();
                        let (zh, en) = msg.split_once(" — ").unwrap_or((&msg, &msg));
                        bad_input(
                            format!("{zh}（字体 {}）", font_path.display()),
                            format!("{en} (font {})", font_path.display()),
                        )
                    })?
                }
            };
            emit(&bytes, output.as_deref(), out)?;
            Ok(match thresholds {
                Some(t) => check_thresholds(&report, t),
                None => 0,
            })
        }
    }
}

fn parse_scope(catalog: &Catalog, spec: Option<&str>) -> anyhow::Result<Scope> {
    match spec {
        None => Ok(Scope::all()),
        Some(s) => Scope::parse_list(catalog, s).map_err(|token| {
            bad_input(
                format!("--scope 中的 {token:?} 无效：应为表号（T4）、范围（T10-T20）或能力项/能力域/能力类名称"),
                format!("--scope: {token:?} is not a table (T4), a range (T10-T20) or an item, domain or class name"),
            )
        }),
    }
}

/// Reads, validates and scores one answers file; every problem in it is printed, then exit 2.
fn score_file(
    catalog: &Catalog,
    path: &Path,
    policy: Policy,
    target: Option<u8>,
    scope: Option<Scope>,
) -> anyhow::Result<Report> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        bad_input(
            format!("无法读取答卷 {name}：{e}"),
            format!("cannot read answers file {name}: {e}"),
        )
    })?;
    let mut set = answers::parse_file(catalog, &name, &bytes).map_err(|errors| {
        for e in &errors.0 {
            eprintln!(
                "错误：{}\nerror: {} [{}]",
                e.message_zh(),
                e.message_en(),
                e.code()
            );
        }
        eprintln!(
            "{} 处错误，未计分 — {} error(s), nothing scored",
            errors.0.len(),
            errors.0.len()
        );
        anyhow::Error::from(Exit(2))
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let read = |p: &str| std::fs::read(base.join(p));
    let (errors, warnings) = check_evidence_files(&mut set, &read);
    if !errors.is_empty() {
        for e in &errors {
            eprintln!(
                "错误：{}\nerror: {} [{}]",
                e.message_zh(),
                e.message_en(),
                e.code()
            );
        }
        return Err(Exit(2).into());
    }
    for w in &warnings {
        eprintln!("警告：{}\nwarning: {}", w.message_zh, w.message_en);
    }
    if let Some(s) = scope {
        set.scope = s;
    }
    let card = score(catalog, &set, policy, target);
    Ok(report::build(catalog, &set, &card, warnings))
}

type Thresholds = (Option<u8>, Option<u8>);

fn parse_fail_under(s: &str) -> anyhow::Result<Thresholds> {
    let err = || {
        bad_input(
            format!("--fail-under {s:?} 无效，应为 TM,TA，例如 2,3、2, 或 ,3"),
            format!("--fail-under {s:?} is invalid: expected TM,TA such as 2,3 or 2, or ,3"),
        )
    };
    let (tm, ta) = s.split_once(',').unwrap_or((s, ""));
    let level = |p: &str, max: u8| -> Result<Option<u8>, ()> {
        let p = p.trim();
        if p.is_empty() {
            return Ok(None);
        }
        match p.parse::<u8>() {
            Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
            _ => Err(()),
        }
    };
    match (level(tm, 3), level(ta, 5)) {
        (Ok(None), Ok(None)) | (Err(()), _) | (_, Err(())) => Err(err()),
        (Ok(a), Ok(b)) => Ok((a, b)),
    }
}

/// 0 when every given threshold is met; 1 (with a message) otherwise. A scale that is not in
/// scope does not meet a threshold set for it.
fn check_thresholds(r: &Report, (tm, ta): Thresholds) -> u8 {
    let mut failed = false;
    for (want, got, zh, en) in [
        (
            tm,
            r.technical_management_level,
            "技术管理能力成熟度",
            "technical-management maturity",
        ),
        (
            ta,
            r.technical_application_level,
            "技术应用能力成熟度",
            "technical-application maturity",
        ),
    ] {
        let Some(want) = want else { continue };
        if got.is_none_or(|g| g < want) {
            failed = true;
            let got = got.map_or_else(
                || "无（不在范围内）/ none (not in scope)".to_string(),
                |g| g.to_string(),
            );
            eprintln!(
                "未达标：{zh} {got}，要求 ≥ {want}\nbelow threshold: {en} is {got}, required ≥ {want}"
            );
        }
    }
    u8::from(failed)
}

// ---------------------------------------------------------------- push and pull (a server's API)

/// One HTTP request to the server; a refusal is printed with its code in both languages (exit 2).
fn request(
    remote: &Remote,
    method: reqwest::Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Vec<u8>> {
    let base = remote.server.trim_end_matches('/').to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .request(method, format!("{base}{path_and_query}"))
            .bearer_auth(&remote.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/octet-stream")
                .body(b);
        }
        let r = req.send().await.map_err(|e| {
            bad_input(
                format!("无法连接服务器 {base}：{e}"),
                format!("cannot reach the server {base}: {e}"),
            )
        })?;
        let status = r.status();
        let bytes = r.bytes().await?.to_vec();
        if status.is_success() {
            return Ok(bytes);
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        match v["code"].as_str() {
            Some(code) => Err(bad_input(
                v["details"]["message_zh"].as_str().unwrap_or(""),
                format!(
                    "{} [{code}]",
                    v["details"]["message_en"].as_str().unwrap_or("")
                ),
            )),
            None => Err(bad_input(
                format!("服务器返回 {status}"),
                format!(
                    "the server answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ),
            )),
        }
    })
}

fn query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn push(answers: &Path, remote: &Remote, name: &str, out: &mut dyn Write) -> anyhow::Result<u8> {
    let file = answers.display().to_string();
    let bytes = std::fs::read(answers).map_err(|e| {
        bad_input(
            format!("无法读取答卷 {file}：{e}"),
            format!("cannot read answers file {file}: {e}"),
        )
    })?;
    let file_name = answers
        .file_name()
        .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
    let body = request(
        remote,
        reqwest::Method::POST,
        &format!(
            "/api/v1/assessments/from-answers?name={}&file={}",
            query_value(name),
            query_value(&file_name)
        ),
        Some(bytes),
    )?;
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    let Some(id) = v["id"].as_i64() else {
        return Err(bad_input(
            "服务器的回答中没有评估编号",
            format!("the server's answer holds no id: {v}"),
        ));
    };
    writeln!(out, "{id}")?;
    Ok(0)
}

fn pull(
    id: i64,
    remote: &Remote,
    format: PullFormat,
    output: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    if matches!(
        format,
        PullFormat::Xlsx | PullFormat::ReportXlsx | PullFormat::Pdf
    ) {
        require_output(output, format.key())?;
    }
    let bytes = request(
        remote,
        reqwest::Method::GET,
        &format!("/api/v1/assessments/{id}/export?format={}", format.key()),
        None,
    )?;
    emit(&bytes, output, out)?;
    Ok(0)
}
