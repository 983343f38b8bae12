//! `ballast cmdb import` and `ballast cmdb query`: clients of a Ballast server's CMDB API for
//! scripted use (docs/CMDB.md).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

/// Where the server is and who is asking.
#[derive(Args, Debug, Clone)]
pub struct CmdbServer {
    /// Base URL of a Ballast server, e.g. http://127.0.0.1:8600 (or BALLAST_SERVER).
    #[arg(long, env = "BALLAST_SERVER", value_name = "URL")]
    pub server: String,
    /// API token (cmdb.write to import, cmdb.read to query or preview) (or BALLAST_TOKEN).
    #[arg(long, env = "BALLAST_TOKEN", value_name = "T", hide_env_values = true)]
    pub token: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum QueryFormat {
    Json,
    Csv,
}

#[derive(Subcommand, Debug)]
pub enum CmdbCmd {
    /// Import instances of one model from a CSV or XLSX file (by extension); exit 0 when every
    /// row was accepted, 2 when the file has errors (then nothing was changed).
    Import {
        file: PathBuf,
        #[arg(long)]
        model: String,
        #[arg(long, env = "BALLAST_ENVIRONMENT", value_name = "ENV")]
        environment: String,
        /// Only show what would be created and changed.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        server: CmdbServer,
    },
    /// Print the instances matching a query, e.g. 'module = "行情网关" and os ~ "CentOS"'.
    Query {
        expr: String,
        #[arg(long)]
        model: Option<String>,
        #[arg(long, value_name = "ENV")]
        environment: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: QueryFormat,
        #[command(flatten)]
        server: CmdbServer,
    },
}

fn rt() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The server's error as `[code] 中文 / English`.
fn server_error(status: reqwest::StatusCode, v: &Value, text: &str) -> anyhow::Error {
    match v["code"].as_str() {
        Some(code) => anyhow::anyhow!(
            "[{code}] {} / {}",
            v["details"]["message_zh"].as_str().unwrap_or(""),
            v["details"]["message_en"].as_str().unwrap_or("")
        ),
        None => anyhow::anyhow!("服务器返回 {status} / the server answered {status}: {text}"),
    }
}

pub fn run(cmd: CmdbCmd, out: &mut dyn Write) -> anyhow::Result<u8> {
    match cmd {
        CmdbCmd::Import {
            file,
            model,
            environment,
            dry_run,
            server,
        } => {
            let format = match file.extension().and_then(|e| e.to_str()) {
                Some(e) if e.eq_ignore_ascii_case("csv") => "csv",
                Some(e) if e.eq_ignore_ascii_case("xlsx") => "xlsx",
                _ => anyhow::bail!(
                    "{0}：文件须为 .csv 或 .xlsx / {0}: the file must be .csv or .xlsx",
                    file.display()
                ),
            };
            let bytes = std::fs::read(&file)
                .with_context(|| format!("无法读取 {0} / cannot read {0}", file.display()))?;
            let base = server.server.trim_end_matches('/').to_string();
            let dry = if dry_run { "true" } else { "false" };
            let (status, text) = rt()?.block_on(async {
                let r = reqwest::Client::new()
                    .post(format!("{base}/api/v1/cmdb/import"))
                    .query(&[
                        ("model", model.as_str()),
                        ("environment", environment.as_str()),
                        ("dry_run", dry),
                        ("format", format),
                    ])
                    .bearer_auth(&server.token)
                    .body(bytes)
                    .send()
                    .await
                    .with_context(|| {
                        format!("无法连接服务器 {base} / cannot reach the server {base}")
                    })?;
                let status = r.status();
                anyhow::Ok((status, r.text().await?))
            })?;
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if v.get("errors").is_none() {
                return Err(server_error(status, &v, &text));
            }
            let count = |k: &str| v[k].as_array().map_or(0, Vec::len);
            writeln!(
                out,
                "{} {}: rows {}, create {}, update {}, unchanged {}, errors {}{}",
                file.display(),
                if dry_run { "(dry run)" } else { "" },
                v["rows"],
                count("creates"),
                count("updates"),
                v["unchanged"],
                count("errors"),
                if v["applied"] == true {
                    ", applied"
                } else {
                    ", nothing changed"
                },
            )?;
            for kind in ["creates", "updates"] {
                for r in v[kind].as_array().into_iter().flatten() {
                    writeln!(
                        out,
                        "  row {} {} {}: {}",
                        r["row"],
                        &kind[..6],
                        r["name"].as_str().unwrap_or(""),
                        r["diff"]
                    )?;
                }
            }
            for e in v["errors"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "  error{}: {} / {} [{}]",
                    e["column"]
                        .as_str()
                        .map(|c| format!(" column {c}"))
                        .unwrap_or_default(),
                    e["message_zh"].as_str().unwrap_or(""),
                    e["message_en"].as_str().unwrap_or(""),
                    e["code"].as_str().unwrap_or("")
                )?;
            }
            Ok(if count("errors") == 0 { 0 } else { 2 })
        }
        CmdbCmd::Query {
            expr,
            model,
            environment,
            format,
            server,
        } => {
            let base = server.server.trim_end_matches('/').to_string();
            let mut params = vec![("q", expr.clone()), ("limit", "10000".to_string())];
            if let Some(m) = &model {
                params.push(("model", m.clone()));
            }
            if let Some(e) = &environment {
                params.push(("environment", e.clone()));
            }
            let (status, text) = rt()?.block_on(async {
                let r = reqwest::Client::new()
                    .get(format!("{base}/api/v1/cmdb/instances"))
                    .query(&params)
                    .bearer_auth(&server.token)
                    .send()
                    .await
                    .with_context(|| {
                        format!("无法连接服务器 {base} / cannot reach the server {base}")
                    })?;
                let status = r.status();
                anyhow::Ok((status, r.text().await?))
            })?;
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let Some(rows) = v.as_array().filter(|_| status.is_success()) else {
                return Err(server_error(status, &v, &text));
            };
            match format {
                QueryFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(rows)?)?,
                QueryFormat::Csv => write_csv(rows, out)?,
            }
            Ok(0)
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// `id,model,environment,name`, then every attribute key found, sorted.
fn write_csv(rows: &[Value], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut keys = std::collections::BTreeSet::new();
    for r in rows {
        if let Some(a) = r["attributes"].as_object() {
            keys.extend(a.keys().cloned());
        }
    }
    let mut header = vec![
        "id".to_string(),
        "model".into(),
        "environment".into(),
        "name".into(),
    ];
    header.extend(keys.iter().cloned());
    writeln!(
        out,
        "{}",
        header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(",")
    )?;
    for r in rows {
        let mut fields = vec![
            text(&r["id"]),
            text(&r["model"]),
            text(&r["environment"]),
            text(&r["name"]),
        ];
        fields.extend(keys.iter().map(|k| text(&r["attributes"][k])));
        writeln!(
            out,
            "{}",
            fields
                .iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(",")
        )?;
    }
    Ok(())
}
