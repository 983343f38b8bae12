//! `ballast exec` (an ad-hoc command on hosts), `ballast job run` (a job plan) — both clients of a
//! Ballast server's API — and `ballast agent` (the agent on a managed host).

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::Exit;

/// Where the server is and who is asking.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Base URL of a Ballast server, e.g. http://127.0.0.1:8600 (or BALLAST_SERVER).
    #[arg(long, env = "BALLAST_SERVER", value_name = "URL")]
    pub server: String,
    /// API token of a holder of job.run in the environment (or BALLAST_TOKEN).
    #[arg(long, env = "BALLAST_TOKEN", value_name = "T", hide_env_values = true)]
    pub token: String,
    /// The environment to run in (default: the server's only environment).
    #[arg(long, env = "BALLAST_ENVIRONMENT", value_name = "ENV")]
    pub environment: Option<String>,
    /// Accept the guard's warnings (e.g. a change-window warning) after reading them.
    #[arg(long)]
    pub acknowledge_warnings: bool,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Targets: comma list of `local`, `agent:HOSTNAME`, `agent:*`, `ssh://user@host:port`.
    #[arg(long, value_name = "SPEC")]
    pub hosts: String,
    /// Seconds before the command is killed on a host (its whole process group).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Print each host's output after its status line.
    #[arg(long)]
    pub output: bool,
    /// The command and its arguments (after `--`), run by bash on each host.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// Run a job plan and wait for it; exit 0 only if it succeeded.
    Run {
        plan: String,
        #[command(flatten)]
        server: ServerArgs,
        /// A plan variable, `name=value` (repeatable).
        #[arg(long = "var", value_name = "K=V")]
        vars: Vec<String>,
        /// Plan version (default: the newest).
        #[arg(long)]
        version: Option<i64>,
        /// Start the run and print its id without waiting.
        #[arg(long)]
        no_wait: bool,
    },
}

fn rt() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    fn new(s: &ServerArgs) -> Client {
        Client {
            base: s.server.trim_end_matches('/').to_string(),
            token: s.token.clone(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.with_context(|| {
            format!(
                "无法连接服务器 {0} / cannot reach the server {0}",
                self.base
            )
        })?;
        let status = r.status();
        let text = r.text().await?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let code = v["code"].as_str().unwrap_or("");
            if code.is_empty() {
                anyhow::bail!("服务器返回 {status} / the server answered {status}: {text}");
            }
            anyhow::bail!(
                "[{code}] {} / {}",
                v["details"]["message_zh"].as_str().unwrap_or(""),
                v["details"]["message_en"].as_str().unwrap_or("")
            );
        }
        Ok(v)
    }

    async fn environment(&self, given: &Option<String>) -> anyhow::Result<String> {
        if let Some(e) = given {
            return Ok(e.clone());
        }
        let envs = self
            .call(reqwest::Method::GET, "/api/v1/environments", None)
            .await?;
        let names: Vec<String> = envs
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        match names.as_slice() {
            [one] => Ok(one.clone()),
            _ => anyhow::bail!(
                "请用 --environment 指定环境（{0}） / choose one with --environment ({0})",
                names.join(", ")
            ),
        }
    }

    /// Polls the run until it finishes or waits for a person.
    async fn wait(&self, id: i64) -> anyhow::Result<Value> {
        loop {
            let d = self
                .call(reqwest::Method::GET, &format!("/api/v1/runs/{id}"), None)
                .await?;
            let status = d["run"]["status"].as_str().unwrap_or("");
            if d["finished"].as_bool() == Some(true)
                || matches!(status, "paused" | "waiting_approval")
            {
                return Ok(d);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

/// One line per host of the newest attempt: `STATUS  HOST  exit N  message`.
fn host_lines(d: &Value, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut all_ok = true;
    let mut newest: std::collections::BTreeMap<(i64, String), &Value> = Default::default();
    for t in d["tasks"].as_array().into_iter().flatten() {
        let key = (
            t["step_idx"].as_i64().unwrap_or(0),
            t["host"].as_str().unwrap_or("").to_string(),
        );
        let newer = newest
            .get(&key)
            .is_none_or(|p| p["attempt"].as_i64() < t["attempt"].as_i64());
        if newer {
            newest.insert(key, t);
        }
    }
    if newest.is_empty() {
        all_ok = false;
    }
    for ((_, host), t) in &newest {
        let status = t["status"].as_str().unwrap_or("?");
        if status != "succeeded" {
            all_ok = false;
        }
        let exit = t["exit_code"]
            .as_i64()
            .map(|c| format!("exit {c}"))
            .unwrap_or_else(|| "-".into());
        let msg = t["error_message"].as_str().unwrap_or("");
        let code = t["error_code"].as_str().unwrap_or("");
        let trunc = if t["truncated"].as_bool() == Some(true) {
            " (output truncated)"
        } else {
            ""
        };
        let extra = if code.is_empty() {
            String::new()
        } else {
            format!("  [{code}] {msg}")
        };
        writeln!(out, "{status:<10} {host}  {exit}{trunc}{extra}")?;
    }
    Ok(all_ok)
}

async fn print_outputs(c: &Client, d: &Value, out: &mut dyn Write) -> anyhow::Result<()> {
    let id = d["run"]["id"].as_i64().unwrap_or(0);
    for t in d["tasks"].as_array().into_iter().flatten() {
        let tid = t["id"].as_i64().unwrap_or(0);
        let o = c
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/runs/{id}/tasks/{tid}/output"),
                None,
            )
            .await?;
        writeln!(out, "--- {} ---", t["host"].as_str().unwrap_or(""))?;
        for ch in o["chunks"].as_array().into_iter().flatten() {
            write!(out, "{}", ch["text"].as_str().unwrap_or(""))?;
        }
    }
    Ok(())
}

pub fn run_exec(a: ExecArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let c = Client::new(&a.server);
    rt()?.block_on(async {
        let env = c.environment(&a.server.environment).await?;
        let command = a.command.join(" ");
        let started = c
            .call(
                reqwest::Method::POST,
                "/api/v1/exec",
                Some(serde_json::json!({
                    "environment": env, "targets": a.hosts, "command": command,
                    "timeout_secs": a.timeout, "acknowledge_warnings": a.server.acknowledge_warnings,
                })),
            )
            .await?;
        let id = started["run_id"].as_i64().unwrap_or(0);
        if started["status"] == "waiting_approval" {
            eprintln!(
                "作业 #{id} 等待另一人审批（审批单 #{}） / run #{id} waits for a second person's approval (#{})",
                started["approval_id"], started["approval_id"]
            );
        }
        let d = c.wait(id).await?;
        let ok = host_lines(&d, out)?;
        if a.output {
            print_outputs(&c, &d, out).await?;
        }
        let status = d["run"]["status"].as_str().unwrap_or("");
        if status == "blocked" || status == "waiting_approval" {
            eprintln!(
                "作业 #{id}：{status}：{}",
                d["run"]["message"].as_str().unwrap_or("")
            );
        }
        Ok(if ok && status == "succeeded" { 0 } else { 1 })
    })
}

pub fn run_job(cmd: JobCmd, out: &mut dyn Write) -> anyhow::Result<u8> {
    let JobCmd::Run {
        plan,
        server,
        vars,
        version,
        no_wait,
    } = cmd;
    let mut map = serde_json::Map::new();
    for v in &vars {
        let Some((k, val)) = v.split_once('=') else {
            eprintln!("--var {v:?}：应为 name=value / must be name=value");
            return Err(Exit(2).into());
        };
        map.insert(k.trim().to_string(), Value::String(val.to_string()));
    }
    let c = Client::new(&server);
    rt()?.block_on(async {
        let env = c.environment(&server.environment).await?;
        let started = c
            .call(
                reqwest::Method::POST,
                "/api/v1/runs",
                Some(serde_json::json!({
                    "plan": plan, "version": version, "environment": env, "vars": map,
                    "acknowledge_warnings": server.acknowledge_warnings,
                })),
            )
            .await?;
        let id = started["run_id"].as_i64().unwrap_or(0);
        writeln!(out, "run {id}")?;
        if no_wait {
            return Ok(0);
        }
        let d = c.wait(id).await?;
        for s in d["steps"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "step {} {:<24} {}{}",
                s["idx"],
                s["name"].as_str().unwrap_or(""),
                s["status"].as_str().unwrap_or(""),
                s["message"]
                    .as_str()
                    .map(|m| format!("  ({m})"))
                    .unwrap_or_default()
            )?;
        }
        let _ = host_lines(&d, out)?;
        let status = d["run"]["status"].as_str().unwrap_or("");
        writeln!(out, "run {id}: {status}")?;
        Ok(if status == "succeeded" { 0 } else { 1 })
    })
}

/// `ballast agent`: the same code as the small `ballast-agent` executable.
pub fn run_agent(a: ballast_agent_bin::AgentArgs) -> anyhow::Result<u8> {
    ballast_agent_bin::tracing_init();
    ballast_agent_bin::run(a)?;
    Ok(0)
}
