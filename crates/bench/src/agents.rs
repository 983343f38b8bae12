//! `ballast-bench agents`: a real `ballast serve` process and N simulated agents (the agent
//! crate's own `enroll` and session code, one shared `Runner` per process, each agent with its
//! own mTLS connection and host name), then R rounds of `echo ok` on `agent:*`, timed from the
//! API call until the run is finished with every result stored.
//!
//! The agents live in this process, or with `--processes K` in K `ballast-bench agent-shard`
//! child processes of N/K agents each. It matters on one machine: every process a task starts
//! is spawned from the process that holds the agents, and the kernel copies that process's file
//! table (one socket per agent) at each spawn and closes its close-on-exec entries at each exec —
//! with 10,000 connections in one process that is ~20,000 descriptors per task, a cost no real
//! agent (one connection, a handful of descriptors) ever pays.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ballast_agent::proto::AGENT_VERSION;
use ballast_agent::{Facts, Identity, SessionOptions};
use ballast_runner::{CancelToken, Runner};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::server::{self, Server, percentile, secs};

pub struct Args {
    pub ballast: Option<PathBuf>,
    pub agents: usize,
    pub rounds: usize,
    pub poll: Duration,
    pub parallel: usize,
    pub settle: Duration,
    pub round_timeout: Duration,
    pub output_bytes: Option<u64>,
    pub processes: usize,
    /// The command of a round (default `echo ok`).
    pub command: Option<String>,
}

fn facts(i: usize) -> Facts {
    Facts {
        hostname: format!("sim-{i:05}"),
        os: "simulated".into(),
        cpus: 1,
        agent_version: AGENT_VERSION.into(),
        ..Facts::default()
    }
}

/// Creates `n` enrolment tokens through `POST /api/v1/enroll-tokens` (`parallel` at a time).
async fn enroll_tokens(
    server: &Arc<Server>,
    admin: &str,
    n: usize,
    parallel: usize,
) -> anyhow::Result<Vec<String>> {
    let sem = Arc::new(Semaphore::new(parallel.max(1)));
    let mut set = JoinSet::new();
    for i in 0..n {
        let (server, admin, sem) = (server.clone(), admin.to_string(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await?;
            let v = server
                .post(
                    &admin,
                    "/api/v1/enroll-tokens",
                    &json!({"environment": "test"}),
                )
                .await?;
            let t = v["token"].as_str().context("no token")?.to_string();
            anyhow::Ok((i, t))
        });
    }
    let mut tokens = vec![String::new(); n];
    while let Some(r) = set.join_next().await {
        let (i, t) = r??;
        tokens[i] = t;
    }
    Ok(tokens)
}

/// Enrols agent `i` (three tries) and keeps its session up until `shutdown`, reconnecting after
/// a second when it drops (counted in `drops`).
async fn agent(
    i: usize,
    addr: String,
    token: String,
    runner: Arc<Runner>,
    enrol: Arc<Semaphore>,
    shutdown: CancelToken,
    drops: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let id: Identity = {
        let _p = enrol.acquire_owned().await?;
        let mut last = None;
        let mut got = None;
        for _ in 0..3 {
            match ballast_agent::client::enroll_with_facts(&addr, &token, facts(i), None).await {
                Ok(id) => {
                    got = Some(id);
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        match got {
            Some(id) => id,
            None => bail!("agent {i}: enrolment failed: {last:?}"),
        }
    };
    let opts = SessionOptions {
        facts: facts(i),
        heartbeat: ballast_agent::hub::DEFAULT_HEARTBEAT,
    };
    loop {
        let r = ballast_agent::client::connect_and_serve_with(
            &addr,
            &id,
            runner.clone(),
            &opts,
            shutdown.clone(),
        )
        .await;
        match r {
            Ok(()) => return Ok(()),
            Err(e) if e.is_fatal() => bail!("agent {i}: {e}"),
            Err(e) => {
                drops.fetch_add(1, Ordering::Relaxed);
                tracing_note(i, &e);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }
}

fn tracing_note(i: usize, e: &ballast_agent::AgentError) {
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    if SHOWN.fetch_add(1, Ordering::Relaxed) < 50 {
        eprintln!("agent {i} (sim-{i:05}): session ended: {e} (reconnecting)");
    }
}

async fn connected_count(server: &Server, admin: &str) -> anyhow::Result<usize> {
    let v = server.get(admin, "/api/v1/agents").await?;
    Ok(v.as_array()
        .map_or(0, |a| a.iter().filter(|x| x["connected"] == true).count()))
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let ballast = server::ballast_path(a.ballast.clone())?;
    let nofile = server::raise_nofile(65536);
    println!("{}; open-file limit {nofile}", server::machine_note());
    if nofile != 0 && (nofile as usize) < a.agents + 1000 {
        eprintln!(
            "warning: open-file limit {nofile} is low for {} agents (run under `prlimit --nofile=65536`)",
            a.agents
        );
    }
    let server = Arc::new(Server::start(&ballast).await?);
    let admin = server.admin_token()?;
    let op = server.operator_token()?;

    // How long one enrolment token takes through the CLI (a process per token) vs the API.
    let t = Instant::now();
    server.admin(&["enroll-token", "create", "--environment", "test"])?;
    let cli_one = t.elapsed();
    let t = Instant::now();
    let tokens = enroll_tokens(&server, &admin, a.agents, 8).await?;
    let api_all = t.elapsed();
    println!(
        "enrolment tokens: CLI {} s for one (a process each); API {} for {} ({:.1} ms each, 8 in parallel)",
        secs(cli_one),
        secs(api_all),
        a.agents,
        api_all.as_secs_f64() * 1e3 / a.agents.max(1) as f64
    );

    let mut holders = if a.processes <= 1 {
        Holders::InProcess(InProcess::start(
            0,
            tokens,
            server.agent_addr.clone(),
            a.parallel,
        )?)
    } else {
        Holders::Shards(Shards::start(&tokens, &server.agent_addr, a.parallel, a.processes).await?)
    };
    let t = Instant::now();
    // Every agent enrolled and connected (as the server sees it).
    loop {
        holders.check()?;
        let n = connected_count(&server, &admin).await?;
        if n >= a.agents {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("only {n} of {} agents connected after 600 s", a.agents);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let up = t.elapsed();
    println!(
        "{} agents enrolled and connected in {} s ({} enrolling at a time{})",
        a.agents,
        secs(up),
        a.parallel,
        if a.processes > 1 {
            format!(" in all, held by {} processes", a.processes)
        } else {
            String::new()
        }
    );
    tokio::time::sleep(a.settle).await;
    let rss_idle = server::rss_kib(server.pid())?;
    println!(
        "server RSS with {} idle agents connected: {:.1} MiB (processes holding the agents: {:.1} MiB)",
        a.agents,
        rss_idle as f64 / 1024.0,
        holders.rss_kib()? as f64 / 1024.0
    );

    let mut times = Vec::with_capacity(a.rounds);
    let timeout = a.round_timeout;
    let command = match (a.output_bytes, &a.command) {
        (Some(n), _) => format!("head -c {n} /dev/zero | tr '\\0' x"),
        (None, Some(c)) => c.clone(),
        (None, None) => "echo ok".to_string(),
    };
    println!("round command: {command}");
    for r in 0..a.rounds {
        let beside = match a.output_bytes {
            Some(_) => Some(Beside::start(server.clone(), op.clone(), a.poll, timeout)),
            None => None,
        };
        let (d, detail) = server
            .exec_and_wait(&op, "agent:*", &command, a.poll, timeout)
            .await?;
        let ok = server::count(&detail, "succeeded");
        println!(
            "round {}: {} s, run {}, {ok} of {} tasks succeeded ({})",
            r + 1,
            secs(d),
            detail["run"]["status"],
            a.agents,
            server::timeline(&detail)
        );
        if ok != a.agents as u64 {
            bail!("round {}: {}", r + 1, server::failures(&detail));
        }
        if let (Some(n), Some(beside)) = (a.output_bytes, beside) {
            let stored: u64 = detail["tasks"].as_array().map_or(0, |t| {
                t.iter().filter_map(|x| x["stdout_bytes"].as_u64()).sum()
            });
            let truncated = detail["tasks"]
                .as_array()
                .map_or(0, |t| t.iter().filter(|x| x["truncated"] == true).count());
            println!(
                "  output: {stored} bytes stored ({} expected), {truncated} tasks truncated; server peak RSS (VmHWM) {:.1} MiB",
                n * a.agents as u64,
                server::hwm_kib(server.pid())? as f64 / 1024.0
            );
            beside.report().await?;
        }
        times.push(d);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rss_after = server::rss_kib(server.pid())?;
    times.sort();
    println!(
        "RESULT agents={} rounds={} p50={} s max={} s min={} s; server RSS idle {:.1} MiB, after the rounds {:.1} MiB; session drops {}",
        a.agents,
        a.rounds,
        secs(percentile(&times, 0.5)),
        secs(times.last().copied().unwrap_or_default()),
        secs(times.first().copied().unwrap_or_default()),
        rss_idle as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        holders.stop().await?
    );
    Ok(())
}

/// The agents of this process: a shared runner, their tasks, a shutdown token, a drop count.
struct InProcess {
    _work: tempfile::TempDir,
    agents: JoinSet<anyhow::Result<()>>,
    shutdown: CancelToken,
    drops: Arc<AtomicU64>,
}

impl InProcess {
    /// Starts one agent per token, numbered from `first` (host names `sim-{first+i}`).
    fn start(
        first: usize,
        tokens: Vec<String>,
        addr: String,
        parallel: usize,
    ) -> anyhow::Result<InProcess> {
        let work = tempfile::Builder::new()
            .prefix("ballast-bench-agents-")
            .tempdir()?;
        let runner = Arc::new(Runner::probe(&work.path().join("work")));
        let shutdown = CancelToken::new();
        let drops = Arc::new(AtomicU64::new(0));
        let enrol = Arc::new(Semaphore::new(parallel.max(1)));
        let mut agents = JoinSet::new();
        for (i, token) in tokens.into_iter().enumerate() {
            agents.spawn(agent(
                first + i,
                addr.clone(),
                token,
                runner.clone(),
                enrol.clone(),
                shutdown.clone(),
                drops.clone(),
            ));
        }
        Ok(InProcess {
            _work: work,
            agents,
            shutdown,
            drops,
        })
    }

    /// An agent that gave up (enrolment failed, fatal error) fails the benchmark.
    fn check(&mut self) -> anyhow::Result<()> {
        if let Some(Ok(Err(e))) = self.agents.try_join_next() {
            self.shutdown.cancel();
            return Err(e);
        }
        Ok(())
    }

    /// Ends every session; returns the number of session drops seen.
    async fn stop(mut self) -> u64 {
        self.shutdown.cancel();
        let stop = Instant::now();
        while self.agents.join_next().await.is_some() {
            if stop.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
        self.agents.abort_all();
        self.drops.load(Ordering::Relaxed)
    }
}

/// `ballast-bench agent-shard` child processes, each holding a share of the agents.
struct Shards {
    children: Vec<tokio::process::Child>,
    _tokens: tempfile::TempDir,
}

impl Shards {
    async fn start(
        tokens: &[String],
        addr: &str,
        parallel: usize,
        processes: usize,
    ) -> anyhow::Result<Shards> {
        let me = std::env::current_exe().context("finding ballast-bench itself")?;
        let dir = tempfile::Builder::new()
            .prefix("ballast-bench-shards-")
            .tempdir()?;
        let per = tokens.len().div_ceil(processes.max(1)).max(1);
        let mut children = Vec::new();
        for (k, chunk) in tokens.chunks(per).enumerate() {
            let file = dir.path().join(format!("tokens-{k}"));
            std::fs::write(&file, chunk.join("\n"))?;
            let child = tokio::process::Command::new(&me)
                .args(["agent-shard", "--addr", addr, "--first"])
                .arg((k * per).to_string())
                .arg("--tokens-file")
                .arg(&file)
                .arg("--parallel")
                .arg(parallel.div_ceil(processes).max(1).to_string())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {} agent-shard", me.display()))?;
            children.push(child);
        }
        Ok(Shards {
            children,
            _tokens: dir,
        })
    }

    fn check(&mut self) -> anyhow::Result<()> {
        for (k, c) in self.children.iter_mut().enumerate() {
            if let Some(status) = c.try_wait()? {
                bail!("agent shard {k} ended early: {status}");
            }
        }
        Ok(())
    }

    fn rss_kib(&self) -> anyhow::Result<u64> {
        let mut sum = 0;
        for c in &self.children {
            if let Some(pid) = c.id() {
                sum += server::rss_kib(pid)?;
            }
        }
        Ok(sum)
    }

    /// Closes each shard's stdin (its signal to stop) and reads the `drops N` line it prints.
    async fn stop(self) -> anyhow::Result<u64> {
        use tokio::io::AsyncReadExt as _;
        let mut total = 0;
        for mut c in self.children {
            drop(c.stdin.take());
            let mut out = String::new();
            if let Some(mut stdout) = c.stdout.take() {
                stdout.read_to_string(&mut out).await?;
            }
            c.wait().await?;
            total += out
                .lines()
                .find_map(|l| l.strip_prefix("drops "))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(total)
    }
}

enum Holders {
    InProcess(InProcess),
    Shards(Shards),
}

impl Holders {
    fn check(&mut self) -> anyhow::Result<()> {
        match self {
            Holders::InProcess(p) => p.check(),
            Holders::Shards(s) => s.check(),
        }
    }

    fn rss_kib(&self) -> anyhow::Result<u64> {
        match self {
            Holders::InProcess(_) => server::rss_kib(std::process::id()),
            Holders::Shards(s) => s.rss_kib(),
        }
    }

    async fn stop(self) -> anyhow::Result<u64> {
        match self {
            Holders::InProcess(p) => Ok(p.stop().await),
            Holders::Shards(s) => s.stop().await,
        }
    }
}

/// `ballast-bench agent-shard`: agents `first…` with the tokens of `tokens_file` (one per line)
/// until stdin closes; then prints `drops N`.
pub async fn shard(
    addr: String,
    first: usize,
    tokens_file: PathBuf,
    parallel: usize,
) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt as _;
    server::raise_nofile(65536);
    let tokens: Vec<String> = std::fs::read_to_string(&tokens_file)
        .with_context(|| format!("reading {}", tokens_file.display()))?
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect();
    let mut agents = InProcess::start(first, tokens, addr, parallel)?;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            n = stdin.read(&mut buf) => {
                if matches!(n, Ok(0) | Err(_)) {
                    break;
                }
            }
            _ = tick.tick() => agents.check()?,
        }
    }
    println!("drops {}", agents.stop().await);
    Ok(())
}

/// What runs beside a heavy round: the API probed every 100 ms (`GET /api/v1/me`, a session
/// lookup and a database read like every page) and, 500 ms in, one-host `echo ok` runs: on the
/// server's own host (`local`, not part of the round), then on `sim-00000` (one of the round's
/// hosts, whose agent connection also carries its share of the round's output).
struct Beside {
    stop: CancelToken,
    probe: tokio::task::JoinHandle<anyhow::Result<Vec<Duration>>>,
    small: tokio::task::JoinHandle<anyhow::Result<(Duration, Duration)>>,
}

impl Beside {
    fn start(server: Arc<Server>, op: String, poll: Duration, timeout: Duration) -> Beside {
        let stop = CancelToken::new();
        let (s, o, st) = (server.clone(), op.clone(), stop.clone());
        let probe = tokio::spawn(async move {
            let mut lat = Vec::new();
            while !st.is_cancelled() {
                let t = Instant::now();
                s.get(&o, "/api/v1/me").await?;
                lat.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(lat)
        });
        let small = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut took = Vec::new();
            for target in ["local", "agent:sim-00000"] {
                let (d, detail) = server
                    .exec_and_wait(&op, target, "echo ok", poll, timeout)
                    .await?;
                if server::count(&detail, "succeeded") != 1 {
                    bail!("the run beside on {target}: {}", server::failures(&detail));
                }
                took.push(d);
            }
            anyhow::Ok((took[0], took[1]))
        });
        Beside { stop, probe, small }
    }

    async fn report(self) -> anyhow::Result<()> {
        let (other_host, same_host) = self.small.await??;
        self.stop.cancel();
        let mut lat = self.probe.await??;
        lat.sort();
        println!(
            "  beside it: a one-host run took {} s on another host (local), then {} s on sim-00000 (a host of the round); API /api/v1/me over {} probes p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            secs(other_host),
            secs(same_host),
            lat.len(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        Ok(())
    }
}
