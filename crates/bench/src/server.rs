//! A real `ballast serve` process on a temporary SQLite data directory, driven over its HTTP API
//! and the `ballast admin` commands; plus `/proc` readings of a process's memory and CPU time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// A running `ballast serve`, killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    ballast: PathBuf,
    /// Holds the data directory and the logs; removed when dropped.
    _dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT` where agents connect.
    pub agent_addr: String,
    pub http: reqwest::Client,
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The `ballast` binary next to this one (both are in `target/release`) unless given.
pub fn ballast_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let p = match given {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("ballast"),
    };
    if !p.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p ballast` or pass --ballast",
            p.display()
        );
    }
    Ok(p)
}

impl Server {
    /// Starts `ballast serve` on free loopback ports with environment `test` and waits for
    /// `/healthz`.
    pub async fn start(ballast: &Path) -> anyhow::Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("ballast-bench-")
            .tempdir()?;
        let data_dir = dir.path().join("data");
        let http_port = free_port()?;
        let agent_port = free_port()?;
        let url = format!("http://127.0.0.1:{http_port}");
        let agent_addr = format!("127.0.0.1:{agent_port}");
        let log = std::fs::File::create(dir.path().join("serve.log"))?;
        let child = Command::new(ballast)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{http_port}"))
            .env("BALLAST_AGENT_LISTEN", &agent_addr)
            .env("BALLAST_ENVIRONMENTS", "test")
            // The server's own host runs commands too: `agents --output-bytes` starts a run on
            // it beside the heavy round (a host that is not part of it).
            .env("BALLAST_LOCAL_ENVIRONMENTS", "test")
            .env("BALLAST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", ballast.display()))?;
        let mut s = Server {
            child,
            ballast: ballast.to_path_buf(),
            _dir: dir,
            data_dir,
            url,
            agent_addr,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(16)
                .timeout(Duration::from_secs(120))
                .build()?,
        };
        let start = Instant::now();
        loop {
            if let Some(status) = s.child.try_wait()? {
                bail!("ballast serve exited ({status}): {}", s.log());
            }
            if let Ok(r) = s.http.get(format!("{}/healthz", s.url)).send().await
                && r.status().is_success()
            {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("ballast serve not ready in 30 s: {}", s.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(s)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Runs `ballast admin ARGS --data-dir DIR` on the server's data directory; returns stdout.
    pub fn admin(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.ballast)
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("BALLAST_AGENT_LISTEN", &self.agent_addr)
            .env("BALLAST_ENVIRONMENTS", "test")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "ballast admin {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// An API token of the built-in `admin` account (platform administration).
    pub fn admin_token(&self) -> anyhow::Result<String> {
        self.admin(&["token", "create", "--user", "admin", "--name", "bench"])
    }

    /// A user `benchop` holding `automation_operator` in environment `test`, and its API token.
    pub fn operator_token(&self) -> anyhow::Result<String> {
        self.admin(&[
            "user",
            "add",
            "benchop",
            "--real-name",
            "Bench Operator",
            "--department",
            "Ops",
            "--role",
            "automation_operator@environment:test",
        ])?;
        self.admin(&["token", "create", "--user", "benchop", "--name", "bench"])
    }

    /// One API call; a non-2xx answer is an error carrying the body.
    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.with_context(|| path.to_string())?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("{path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(token, reqwest::Method::POST, path, Some(body))
            .await
    }

    pub async fn get(&self, token: &str, path: &str) -> anyhow::Result<Value> {
        self.call(token, reqwest::Method::GET, path, None).await
    }

    /// Starts `command` on `targets` in environment `test`, waits until the run is finished and
    /// returns the time from the API call to that moment and the run's detail.
    ///
    /// Waiting polls the light run list (`GET /api/v1/runs?environment=test&limit=5`, no tasks)
    /// every `poll`; once the run is finished, the detail (`GET /api/v1/runs/{id}`, every task)
    /// is fetched once, outside the timing, to check the task counts.
    pub async fn exec_and_wait(
        &self,
        token: &str,
        targets: &str,
        command: &str,
        poll: Duration,
        timeout: Duration,
    ) -> anyhow::Result<(Duration, Value)> {
        let body =
            serde_json::json!({"environment": "test", "targets": targets, "command": command});
        let t0 = Instant::now();
        let started = self.post(token, "/api/v1/exec", &body).await?;
        let Some(id) = started["run_id"].as_i64() else {
            bail!("no run id in {started}");
        };
        let elapsed = loop {
            let runs = self
                .get(token, "/api/v1/runs?environment=test&limit=5")
                .await?;
            let status = runs
                .as_array()
                .and_then(|a| a.iter().find(|r| r["id"].as_i64() == Some(id)))
                .and_then(|r| r["status"].as_str())
                .unwrap_or("")
                .to_string();
            if matches!(
                status.as_str(),
                "succeeded" | "failed" | "cancelled" | "blocked"
            ) {
                break t0.elapsed();
            }
            if t0.elapsed() > timeout {
                let detail = self.get(token, &format!("/api/v1/runs/{id}")).await?;
                bail!(
                    "run {id} not finished after {timeout:?} (status {status:?}): {}",
                    failures(&detail)
                );
            }
            tokio::time::sleep(poll).await;
        };
        let detail = self.get(token, &format!("/api/v1/runs/{id}")).await?;
        Ok((elapsed, detail))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Task counts by status from a run detail.
pub fn count(detail: &Value, status: &str) -> u64 {
    detail["counts"][status].as_u64().unwrap_or(0)
}

/// A short summary of a run's non-succeeded tasks (first few), for error reports.
/// Where the time of a finished run went, from the server's own timestamps (ms after the run
/// was created): run started (claimed), first and last task started, last task finished, run
/// finished.
pub fn timeline(detail: &Value) -> String {
    let ts = |v: &Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    let Some(created) = ts(&detail["run"]["created_at"]) else {
        return "no timeline".into();
    };
    let ms = |t: Option<chrono::DateTime<chrono::FixedOffset>>| {
        t.map_or("-".to_string(), |t| {
            format!("{}", (t - created).num_milliseconds())
        })
    };
    let tasks = detail["tasks"].as_array().cloned().unwrap_or_default();
    let started: Vec<_> = tasks.iter().filter_map(|t| ts(&t["started_at"])).collect();
    let finished: Vec<_> = tasks.iter().filter_map(|t| ts(&t["finished_at"])).collect();
    format!(
        "run claimed +{} ms, tasks started +{}..+{} ms, last task finished +{} ms, run finished +{} ms",
        ms(ts(&detail["run"]["started_at"])),
        ms(started.iter().min().copied()),
        ms(started.iter().max().copied()),
        ms(finished.iter().max().copied()),
        ms(ts(&detail["run"]["finished_at"])),
    )
}

pub fn failures(detail: &Value) -> String {
    let mut out = Vec::new();
    if let Some(tasks) = detail["tasks"].as_array() {
        for t in tasks.iter().filter(|t| t["status"] != "succeeded").take(5) {
            out.push(format!(
                "{} {} {} {} started {}",
                t["host"], t["status"], t["error_code"], t["error_message"], t["started_at"]
            ));
        }
    }
    format!("counts {} ; e.g. {}", detail["counts"], out.join(" | "))
}

/// `VmRSS` of a process in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// Peak resident set size of a process in KiB (`VmHWM`).
pub fn hwm_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// User + system CPU time of a process in clock ticks (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: fields 3… follow the last ')'.
    let rest = s.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field N is f[N - 3].
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).context("utime")?;
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).context("stime")?;
    Ok(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Raises this process's open-file limit (soft and hard) to `n` with util-linux `prlimit`, so
/// that it and its children (the server) can hold `n` sockets. Returns the soft limit in force.
pub fn raise_nofile(n: u64) -> u64 {
    let pid = std::process::id().to_string();
    let set = format!("--nofile={n}:{n}");
    let _ = Command::new("prlimit")
        .args(["--pid", &pid, &set])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--raw",
            "--noheadings",
            "-o",
            "SOFT",
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// Load average and core count, for the record.
pub fn machine_note() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!(
        "machine: {cores} cores, load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_memory_and_cpu() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        // Burn a little CPU so the counter is not zero.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        let a = cpu_ticks(pid).unwrap();
        assert!(a > 0);
        assert!(cpu_ticks(pid).unwrap() >= a);
        assert!(rss_kib(u32::MAX).is_err());
        assert!(clk_tck() > 0);
    }

    #[test]
    fn percentiles_of_sorted_samples() {
        let s: Vec<Duration> = (1..=5).map(Duration::from_secs).collect();
        assert_eq!(percentile(&s, 0.5), Duration::from_secs(3));
        assert_eq!(percentile(&s, 1.0), Duration::from_secs(5));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn failures_summarise_the_tasks_that_did_not_succeed() {
        let d = serde_json::json!({
            "counts": {"succeeded": 1, "refused": 1},
            "tasks": [
                {"host": "a", "status": "succeeded"},
                {"host": "b", "status": "refused", "error_code": "ssh.connect", "error_message": "x"}
            ]
        });
        assert_eq!(count(&d, "succeeded"), 1);
        assert_eq!(count(&d, "failed"), 0);
        let f = failures(&d);
        assert!(f.contains("ssh.connect") && !f.contains("\"a\""), "{f}");
    }
}
