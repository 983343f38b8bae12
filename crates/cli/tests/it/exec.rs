//! Operation automation through the binary, as scripts use it: `ballast serve`, `ballast admin
//! enroll-token create`, a real `ballast agent` process over mutual TLS, `ballast exec` and
//! `ballast job run`; then `kill -9` of the server in the middle of a task.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::server::{kill_9, rt, serve_env};
use super::{ballast, code, stderr, stdout};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(dir: &Path, server: &str, token: Option<&str>) -> Agent {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ballast"));
    cmd.args(["agent", "--server", server, "--data-dir", "agent"])
        .current_dir(dir)
        .env("BALLAST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(t) = token {
        cmd.args(["--enroll-token", t]);
    }
    Agent(cmd.spawn().expect("start ballast agent"))
}

fn api(url: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    rt().block_on(async {
        let c = reqwest::Client::new();
        let mut r = match method {
            "POST" => c.post(format!("{url}{path}")),
            _ => c.get(format!("{url}{path}")),
        }
        .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        resp.json::<Value>().await.unwrap_or(Value::Null)
    })
}

/// Waits until an agent of `env` is connected; returns its hostname.
fn connected_agent(url: &str, token: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let agents = api(url, token, "GET", "/api/v1/agents", None);
        if let Some(a) = agents
            .as_array()
            .and_then(|a| a.iter().find(|a| a["connected"] == true))
        {
            return a["hostname"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no agent connected: {agents}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn user_and_token(dir: &Path, name: &str, role: &str) -> String {
    let o = ballast(
        dir,
        &[
            "admin",
            "user",
            "add",
            name,
            "--real-name",
            "测试",
            "--department",
            "运维部",
            "--role",
            role,
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = ballast(
        dir,
        &[
            "admin",
            "token",
            "create",
            "--user",
            name,
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    stdout(&o).trim().to_string()
}

#[test]
fn agent_process_exec_job_run_and_kill_9_recovery() {
    let dir = tempfile::tempdir().unwrap();
    // Read by `serve` and by every `ballast admin` command run in this directory.
    std::fs::write(
        dir.path().join("ballast.toml"),
        "environments = [\"prod\", \"test\"]\n\n[exec]\nlocal_environments = [\"test\"]\n",
    )
    .unwrap();
    let env = [];
    let s = serve_env(dir.path(), &[], &env);
    let op = user_and_token(dir.path(), "op", "automation_operator@environment:test");
    let dev = user_and_token(dir.path(), "dev", "ops_development@global");

    // An enrolment token from the admin CLI, used once by a real agent process.
    let o = ballast(
        dir.path(),
        &[
            "admin",
            "enroll-token",
            "create",
            "--environment",
            "test",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let token = stdout(&o).trim().to_string();
    assert!(token.starts_with("bet1."), "{token}");
    let a = agent(dir.path(), &s.agent_addr, Some(&token));
    let host = connected_agent(&s.url, &op);
    assert!(dir.path().join("agent/agent.crt").exists());

    // Ad-hoc: one status line per host, exit 0 only when every host succeeded.
    let o = ballast(
        dir.path(),
        &[
            "exec",
            "--server",
            &s.url,
            "--token",
            &op,
            "--environment",
            "test",
            "--hosts",
            &format!("local,agent:{host}"),
            "--output",
            "--",
            "echo",
            "ok",
        ],
    );
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
    assert!(out.contains("succeeded  local  exit 0"), "{out}");
    assert!(
        out.contains(&format!("succeeded  agent:{host}  exit 0")),
        "{out}"
    );
    assert_eq!(out.matches("ok\n").count(), 2, "{out}");

    // A host that does not exist: its own line and reason; exit 1.
    let o = ballast(
        dir.path(),
        &[
            "exec",
            "--server",
            &s.url,
            "--token",
            &op,
            "--environment",
            "test",
            "--hosts",
            "local,agent:no-such-host",
            "--",
            "true",
        ],
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("refused    agent:no-such-host  -  [agent.unknown]"),
        "{}",
        stdout(&o)
    );

    // A dangerous command never starts.
    let o = ballast(
        dir.path(),
        &[
            "exec",
            "--server",
            &s.url,
            "--token",
            &op,
            "--environment",
            "test",
            "--hosts",
            "local",
            "--",
            "sudo",
            "rm",
            "-rf",
            "/",
        ],
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("danger.blocked"), "{}", stderr(&o));

    // The agent restarts without a token: it reuses its certificate.
    drop(a);
    let a = agent(dir.path(), &s.agent_addr, None);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(connected_agent(&s.url, &op), host);

    // A plan, run by name from the CLI with a variable.
    let plan = json!({
        "name": "greet", "variables": [{"name": "who", "type": "string", "required": true}],
        "steps": [{"name": "hello", "kind": "command", "language": "bash",
                   "command": "echo hello ${who}", "targets": format!("agent:{host}")}]
    });
    let v = api(&s.url, &dev, "POST", "/api/v1/plans", Some(plan));
    assert_eq!(v["version"], 1, "{v}");
    let o = ballast(
        dir.path(),
        &[
            "job",
            "run",
            "greet",
            "--server",
            &s.url,
            "--token",
            &op,
            "--environment",
            "test",
            "--var",
            "who=world",
        ],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("succeeded"), "{}", stdout(&o));

    // kill -9 while a task runs: after the restart the outcome is `unknown`, the run waits for
    // a person, and nothing is re-run behind anyone's back.
    let started = api(
        &s.url,
        &op,
        "POST",
        "/api/v1/exec",
        Some(json!({"environment": "test", "targets": "local", "command": "sleep 3; echo late"})),
    );
    let id = started["run_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = api(&s.url, &op, "GET", &format!("/api/v1/runs/{id}"), None);
        if d["tasks"][0]["status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_9(s.child.id());
    drop(s);
    drop(a);
    // The lease of the dead server expires after 30 s; the new one claims the run then.
    let s = serve_env(dir.path(), &[], &env);
    let deadline = Instant::now() + Duration::from_secs(60);
    let d = loop {
        let d = api(&s.url, &op, "GET", &format!("/api/v1/runs/{id}"), None);
        if d["run"]["status"] == "paused" {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "{d}\nserver log:\n{}",
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(d["tasks"][0]["status"], "unknown", "{d}");
    assert_eq!(d["tasks"].as_array().unwrap().len(), 1, "not re-run: {d}");
    let o = ballast(dir.path(), &["audit", "verify", "--data-dir", "data"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}
