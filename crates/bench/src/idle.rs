//! `ballast-bench agent-idle`: a real `ballast agent` process enrolled to a real `ballast serve`,
//! left idle; its RSS (`/proc/PID/status` VmRSS) and CPU time (`/proc/PID/stat` utime + stime)
//! over the idle period.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::server::{self, Server, secs};

pub struct Args {
    pub ballast: Option<PathBuf>,
    pub agent: Option<PathBuf>,
    pub seconds: u64,
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let ballast = server::ballast_path(a.ballast.clone())?;
    println!("{}", server::machine_note());
    let server = Server::start(&ballast).await?;
    let admin = server.admin_token()?;
    let token = server.admin(&["enroll-token", "create", "--environment", "test"])?;
    let dir = tempfile::Builder::new()
        .prefix("ballast-bench-agent-")
        .tempdir()?;
    let log = std::fs::File::create(dir.path().join("agent.log"))?;
    // `ballast-agent` (the small executable) or `ballast agent` (the whole binary).
    let agent_exe = match &a.agent {
        Some(p) if p.as_os_str() == "ballast" => ballast.clone(),
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("ballast-agent"),
    };
    if !agent_exe.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p ballast-agent-bin` or pass --agent",
            agent_exe.display()
        );
    }
    let whole = agent_exe.file_name() == Some(std::ffi::OsStr::new("ballast"));
    println!(
        "agent executable: {} ({} bytes){}",
        agent_exe.display(),
        std::fs::metadata(&agent_exe)?.len(),
        if whole { ", subcommand `agent`" } else { "" }
    );
    let mut cmd = Command::new(&agent_exe);
    if whole {
        cmd.arg("agent");
    }
    let mut agent = Kill(
        cmd.arg("--server")
            .arg(&server.agent_addr)
            .arg("--enroll-token")
            .arg(&token)
            .arg("--data-dir")
            .arg(dir.path().join("agent"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let pid = agent.0.id();
    let t = Instant::now();
    loop {
        if let Some(st) = agent.0.try_wait()? {
            bail!(
                "ballast agent exited ({st}): {}",
                std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default()
            );
        }
        let v = server.get(&admin, "/api/v1/agents").await?;
        if v.as_array()
            .is_some_and(|a| a.iter().any(|x| x["connected"] == true))
        {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!("the agent did not connect in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("agent enrolled and connected in {} s", secs(t.elapsed()));
    // Let start-up work (enrolment, facts) settle before measuring.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let tck = server::clk_tck();
    let rss0 = server::rss_kib(pid)?;
    let c0 = server::cpu_ticks(pid)?;
    let t0 = Instant::now();
    let mut peak = rss0;
    while t0.elapsed() < Duration::from_secs(a.seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(server::rss_kib(pid)?);
    }
    let c1 = server::cpu_ticks(pid)?;
    let rss1 = server::rss_kib(pid)?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu_s = (c1 - c0) as f64 / tck as f64;
    println!(
        "RESULT agent idle {:.0} s: RSS {:.1} MiB at start, {:.1} MiB at end, peak {:.1} MiB; CPU {} ticks ({:.2} s) = {:.3}% of one core (tick = 1/{tck} s)",
        wall,
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        peak as f64 / 1024.0,
        c1 - c0,
        cpu_s,
        cpu_s / wall * 100.0
    );
    drop(agent);
    Ok(())
}
