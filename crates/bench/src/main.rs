//! `ballast-bench`: load generators and micro-benchmarks whose commands and results are recorded in
//! docs/PERFORMANCE.md. Run from a second process against a running server where a server is
//! involved. Benchmarks read the wall clock by nature.
#![allow(clippy::disallowed_methods)]

mod agents;
mod cmdb;
mod idle;
mod server;
mod ssh;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_core::user::UserKind;
use ballast_store::{NewUserRow, Store};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Constant-rate authenticated GETs; prints latency percentiles (open-loop: requests are sent
    /// on schedule whether or not earlier ones finished, so queueing shows in the tail).
    Http {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 500)]
        rate: u32,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Sequential transactions, each a trivial change plus its audit record.
    AuditAppend {
        /// `sqlite` (a fresh database in a temporary directory, or --path) or a postgres:// URL.
        #[arg(long, default_value = "sqlite")]
        backend: String,
        #[arg(long)]
        path: Option<PathBuf>,
        #[arg(long, default_value_t = 5000)]
        n: u32,
        /// Concurrent writers.
        #[arg(long, default_value_t = 1)]
        writers: u32,
    },
    /// Agent fan-out: a real `ballast serve` process, N simulated agents in this process (the
    /// agent crate's enrolment and session code, one mTLS connection each), then R rounds of
    /// `echo ok` on `agent:*`, each timed from the API call until the run is finished.
    Agents {
        /// The `ballast` binary (default: next to this one).
        #[arg(long)]
        ballast: Option<PathBuf>,
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// How often the run's status is polled (the timing's resolution).
        #[arg(long, default_value_t = 20)]
        poll_ms: u64,
        /// Agents enrolling at once.
        #[arg(long, default_value_t = 32)]
        parallel: usize,
        /// Idle time after all agents connected, before the server's RSS is read.
        #[arg(long, default_value_t = 5)]
        settle_secs: u64,
        /// A round not finished after this long fails the benchmark.
        #[arg(long, default_value_t = 300)]
        round_timeout_secs: u64,
        /// Instead of `echo ok`, every host writes this many bytes to stdout; while each round
        /// runs, the API's latency is probed every 100 ms and a one-host run is started beside
        /// it ("1,000 hosts × 1 MB must not stall other runs or the UI").
        #[arg(long)]
        output_bytes: Option<u64>,
        /// Hold the agents in this many `agent-shard` child processes instead of this one (see
        /// `agents.rs`: tasks are spawned from the process holding the agents' sockets).
        #[arg(long, default_value_t = 1)]
        processes: usize,
        /// The command of a round instead of `echo ok` (e.g. `'echo "ok"'`, which needs a shell).
        #[arg(long)]
        command: Option<String>,
    },
    /// Internal to `agents --processes`: hold the agents of one token file until stdin closes.
    #[command(hide = true)]
    AgentShard {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        first: usize,
        #[arg(long)]
        tokens_file: PathBuf,
        #[arg(long)]
        parallel: usize,
    },
    /// CMDB at scale: a real `ballast serve` on SQLite with --cis instances and about
    /// --relations relations; XLSX import of --import-hosts hosts, attribute searches and impact
    /// queries five levels deep, p50/p99 over --samples requests each.
    Cmdb {
        /// The `ballast` binary (default: next to this one).
        #[arg(long)]
        ballast: Option<PathBuf>,
        #[arg(long, default_value_t = 100_000)]
        cis: usize,
        #[arg(long, default_value_t = 300_000)]
        relations: usize,
        #[arg(long, default_value_t = 10_000)]
        import_hosts: usize,
        #[arg(long, default_value_t = 200)]
        samples: usize,
    },
    /// SSH fan-out: `echo ok` on N loopback aliases of one real sshd through a real `ballast
    /// serve`, and with Ansible on the same inventory when --ansible is given.
    Ssh {
        /// The `ballast` binary (default: next to this one).
        #[arg(long)]
        ballast: Option<PathBuf>,
        #[arg(long, default_value_t = 200)]
        targets: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The `ansible` executable (e.g. from a venv: `pip install ansible-core`).
        #[arg(long)]
        ansible: Option<PathBuf>,
        /// Ansible's `-f`.
        #[arg(long, default_value_t = 50)]
        forks: usize,
        #[arg(long, default_value_t = 20)]
        poll_ms: u64,
        /// The account the targets log in as (default: the current user). Its login shell's
        /// start-up files run for every SSH command, for both tools.
        #[arg(long)]
        user: Option<String>,
    },
    /// The runner alone (what every agent does per task): N concurrent `echo ok` tasks with the
    /// default limits, in this process; the wall time of the whole batch, R rounds.
    Runner {
        #[arg(long, default_value_t = 1000)]
        tasks: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// A real `ballast agent` process connected to a real server, idle: RSS and CPU time.
    AgentIdle {
        /// The `ballast` binary (default: next to this one).
        #[arg(long)]
        ballast: Option<PathBuf>,
        /// The agent executable: default `ballast-agent` next to this one; `ballast` (or a path
        /// to it) measures the `ballast agent` subcommand of the whole binary instead.
        #[arg(long)]
        agent: Option<PathBuf>,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

use server::percentile;

async fn http(url: String, token: String, rate: u32, seconds: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let total = u64::from(rate) * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
        let (c, url, token) = (client.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            // Latency from the scheduled send time: includes any delay in sending.
            let r = c.get(&url).bearer_auth(token).send().await;
            let ok = matches!(&r, Ok(resp) if resp.status().is_success());
            if let Ok(resp) = r {
                let _ = resp.bytes().await;
            }
            (due.elapsed(), ok)
        }));
    }
    let mut lat = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    for t in tasks {
        let (d, ok) = t.await?;
        if !ok {
            errors += 1;
        }
        lat.push(d);
    }
    let wall = start.elapsed();
    lat.sort();
    println!(
        "requests {} in {:.1}s ({:.0}/s), errors {errors}; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        wall.as_secs_f64(),
        lat.len() as f64 / wall.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.90).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(())
}

async fn audit_append(
    backend: String,
    path: Option<PathBuf>,
    n: u32,
    writers: u32,
) -> anyhow::Result<()> {
    let _dir;
    let store: Arc<dyn Store> = if backend == "sqlite" {
        let p = match path {
            Some(p) => p,
            None => {
                let d = tempfile::tempdir()?;
                let p = d.path().join("bench.db");
                _dir = d;
                p
            }
        };
        Arc::new(
            ballast_store_sqlite::SqliteStore::open(&p)
                .await
                .context("sqlite")?,
        )
    } else {
        Arc::new(
            ballast_store_postgres::PostgresStore::connect(&backend)
                .await
                .context("postgres")?,
        )
    };
    let now = chrono::Utc::now();
    let mut tx = store.begin().await?;
    let id = tx
        .insert_user(&NewUserRow {
            username: format!("bench{}", std::process::id()),
            real_name: "Bench".into(),
            department: "D".into(),
            kind: UserKind::Employee,
            password_hash: "x".into(),
            must_change_password: false,
            created_at: now,
        })
        .await?;
    tx.commit(
        vec![AuditDraft::new(
            Actor::system(),
            "bench.setup",
            "user",
            Outcome::Success,
        )],
        now,
    )
    .await?;
    let start = Instant::now();
    let per = n / writers.max(1);
    let mut tasks = Vec::new();
    for w in 0..writers.max(1) {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let mut tx = store.begin().await?;
                tx.set_login_state(id, i % 3, None).await?;
                let d = AuditDraft::new(Actor::system(), "bench.append", "user", Outcome::Success)
                    .object(id)
                    .detail(format!("writer {w} n {i}"));
                tx.commit(vec![d], chrono::Utc::now()).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let done = per * writers.max(1);
    println!(
        "{} backend: {done} transactions (change + audit record) with {writers} writer(s) in {secs:.2}s = {:.0}/s",
        store.backend(),
        f64::from(done) / secs
    );
    Ok(())
}

async fn runner_batch(tasks: usize, rounds: usize) -> anyhow::Result<()> {
    use ballast_runner::{CancelToken, Interpreter, Runner, TaskSpec};
    let dir = tempfile::tempdir()?;
    let runner = Arc::new(Runner::probe(dir.path()));
    println!("{}", server::machine_note());
    let mut times = Vec::new();
    for r in 0..rounds {
        let t0 = Instant::now();
        let mut handles = Vec::with_capacity(tasks);
        for _ in 0..tasks {
            let runner = runner.clone();
            handles.push(tokio::spawn(async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel(16);
                let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
                let spec = TaskSpec::new(Interpreter::Bash, "echo ok");
                let o = runner.run(&spec, tx, CancelToken::new()).await;
                let _ = drain.await;
                o.map(|o| o.success()).unwrap_or(false)
            }));
        }
        let mut ok = 0;
        for h in handles {
            if h.await.unwrap_or(false) {
                ok += 1;
            }
        }
        let d = t0.elapsed();
        println!(
            "round {}: {:.3} s, {ok} of {tasks} succeeded",
            r + 1,
            d.as_secs_f64()
        );
        times.push(d);
    }
    times.sort();
    println!(
        "RESULT runner tasks={tasks} rounds={rounds} p50={:.3} s min={:.3} s max={:.3} s",
        percentile(&times, 50.0).as_secs_f64(),
        times.first().map_or(0.0, Duration::as_secs_f64),
        times.last().map_or(0.0, Duration::as_secs_f64),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Http {
            url,
            token,
            rate,
            seconds,
        } => http(url, token, rate, seconds).await,
        Cmd::AuditAppend {
            backend,
            path,
            n,
            writers,
        } => audit_append(backend, path, n, writers).await,
        Cmd::Agents {
            ballast,
            agents,
            rounds,
            poll_ms,
            parallel,
            settle_secs,
            round_timeout_secs,
            output_bytes,
            processes,
            command,
        } => {
            agents::run(agents::Args {
                ballast,
                agents,
                rounds,
                poll: Duration::from_millis(poll_ms),
                parallel,
                settle: Duration::from_secs(settle_secs),
                round_timeout: Duration::from_secs(round_timeout_secs),
                output_bytes,
                processes,
                command,
            })
            .await
        }
        Cmd::AgentShard {
            addr,
            first,
            tokens_file,
            parallel,
        } => agents::shard(addr, first, tokens_file, parallel).await,
        Cmd::Cmdb {
            ballast,
            cis,
            relations,
            import_hosts,
            samples,
        } => {
            cmdb::run(cmdb::Args {
                ballast,
                cis,
                relations,
                import_hosts,
                samples,
            })
            .await
        }
        Cmd::Ssh {
            ballast,
            targets,
            rounds,
            ansible,
            forks,
            poll_ms,
            user,
        } => {
            ssh::run(ssh::Args {
                user,
                ballast,
                targets,
                rounds,
                ansible,
                forks,
                poll: Duration::from_millis(poll_ms),
            })
            .await
        }
        Cmd::Runner { tasks, rounds } => runner_batch(tasks, rounds).await,
        Cmd::AgentIdle {
            ballast,
            agent,
            seconds,
        } => {
            idle::run(idle::Args {
                ballast,
                agent,
                seconds,
            })
            .await
        }
    }
}
