//! `ballast-bench cmdb`: a real `ballast serve` on SQLite holding a CMDB of `--cis` instances and
//! about `--relations` relations, then, over its HTTP API:
//!
//! 1. a spreadsheet import of `--import-hosts` hosts from XLSX (dry run, then applied), into the
//!    already populated CMDB;
//! 2. attribute searches of four kinds (a unique value, a common value, a regular expression with
//!    a comparison, a topology path), `--samples` each, p50/p99;
//! 3. impact queries five levels deep from hosts and from modules, p50/p99.
//!
//! The bulk of the data (everything but the imported hosts) is written straight through the
//! store (`ballast-store-sqlite`, the server's own storage code) while the server idles, since
//! 300,000 relations one API call at a time would measure HTTP, not the CMDB.
//!
//! Shape: 20 businesses → 10 subsystems each → 10 modules each (2,000) → hosts; middleware
//! instances `runs_on` hosts; modules of a subsystem form a `depends_on` chain; hosts
//! `depends_on` hosts of higher number (acyclic) and `connects_to` random hosts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ballast_store::{CiRelationRow, CiRow, Store};
use chrono::Utc;
use serde_json::{Value, json};

use crate::server::{self, Server, percentile};

pub struct Args {
    pub ballast: Option<PathBuf>,
    pub cis: usize,
    pub relations: usize,
    pub import_hosts: usize,
    pub samples: usize,
}

const OS: [&str; 4] = [
    "CentOS Linux 7.9",
    "Kylin V10",
    "Red Hat Enterprise Linux 8.6",
    "UOS 20",
];

/// A small deterministic generator (the data must be the same from run to run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn host_attrs(i: usize) -> Value {
    let cpus = [4, 8, 16, 32, 64][i % 5];
    json!({
        "ip": ip(i),
        "os": OS[i % OS.len()],
        "cpus": cpus,
        "owner": format!("owner-{:03}", i % 100),
        "ssh_port": 22,
    })
}

fn ci(model: &str, name: String, attributes: Value) -> CiRow {
    let now = Utc::now();
    let sources: serde_json::Map<String, Value> = attributes
        .as_object()
        .map(|m| m.keys().map(|k| (k.clone(), json!("manual"))).collect())
        .unwrap_or_default();
    CiRow {
        id: 0,
        model: model.into(),
        environment: "test".into(),
        name,
        attributes,
        sources: Value::Object(sources),
        created_by: "bench".into(),
        created_at: now,
        updated_by: "bench".into(),
        updated_at: now,
        discovered_at: None,
    }
}

fn rel(kind: &str, source: i64, target: i64) -> CiRelationRow {
    CiRelationRow {
        id: 0,
        kind: kind.into(),
        source_id: source,
        target_id: target,
        created_by: "bench".into(),
        created_at: Utc::now(),
    }
}

/// Every transaction carries an audit record (the store refuses one without): the seeding is
/// audited like any other change.
fn seed_record(rows: usize) -> ballast_core::audit::AuditDraft {
    use ballast_core::audit::{Actor, AuditDraft, Outcome};
    AuditDraft::new(
        Actor::system(),
        "bench.cmdb_seed",
        "cmdb_ci",
        Outcome::Success,
    )
    .after(json!({ "rows": rows }))
}

/// Inserts instances in transactions of 5,000; returns their ids in order.
async fn insert_cis(
    store: &dyn Store,
    rows: Vec<CiRow>,
    unique: &[String],
) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(5000) {
        let mut tx = store.begin().await?;
        for r in chunk {
            ids.push(tx.insert_ci(r, unique).await?);
        }
        tx.commit(vec![seed_record(chunk.len())], Utc::now())
            .await?;
    }
    Ok(ids)
}

async fn insert_relations(store: &dyn Store, rows: &[CiRelationRow]) -> anyhow::Result<usize> {
    let mut n = 0;
    for chunk in rows.chunks(5000) {
        let mut tx = store.begin().await?;
        for r in chunk {
            match tx.insert_ci_relation(r).await {
                Ok(_) => n += 1,
                // A random pair drawn twice: skipped.
                Err(ballast_store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit(vec![seed_record(chunk.len())], Utc::now())
            .await?;
    }
    Ok(n)
}

fn xlsx_of_hosts(from: usize, n: usize) -> anyhow::Result<Vec<u8>> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["name", "ip", "os", "cpus", "owner", "ssh_port"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h)?;
    }
    for r in 0..n {
        let i = from + r;
        let a = host_attrs(i);
        let row = (r + 1) as u32;
        sheet.write_string(row, 0, format!("host-{i:06}"))?;
        sheet.write_string(row, 1, a["ip"].as_str().unwrap_or_default())?;
        sheet.write_string(row, 2, a["os"].as_str().unwrap_or_default())?;
        sheet.write_number(row, 3, a["cpus"].as_f64().unwrap_or_default())?;
        sheet.write_string(row, 4, a["owner"].as_str().unwrap_or_default())?;
        sheet.write_number(row, 5, 22.0)?;
    }
    Ok(book.save_to_buffer()?)
}

async fn import(
    s: &Server,
    token: &str,
    body: &[u8],
    dry_run: bool,
) -> anyhow::Result<(Duration, Value)> {
    let url = format!(
        "{}/api/v1/cmdb/import?model=host&environment=test&format=xlsx&dry_run={dry_run}",
        s.url
    );
    let t = Instant::now();
    let r = s
        .http
        .post(url)
        .bearer_auth(token)
        .body(body.to_vec())
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    let took = t.elapsed();
    if !status.is_success() {
        bail!("import: {status}: {v}");
    }
    Ok((took, v))
}

/// `samples` GETs of `path(i)`; sorted latencies and the mean number of results.
async fn sample(
    s: &Server,
    token: &str,
    samples: usize,
    mut path: impl FnMut(usize) -> String,
) -> anyhow::Result<(Vec<Duration>, f64)> {
    let mut times = Vec::with_capacity(samples);
    let mut results = 0usize;
    for i in 0..samples {
        let p = path(i);
        let t = Instant::now();
        let v = s.get(token, &p).await?;
        times.push(t.elapsed());
        results += v.as_array().map_or(0, Vec::len);
    }
    times.sort();
    Ok((times, results as f64 / samples.max(1) as f64))
}

/// The query of the i-th sample.
type QueryOf = Box<dyn FnMut(usize) -> String>;

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn escape(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let ballast = server::ballast_path(a.ballast)?;
    let s = Server::start(&ballast).await?;
    s.admin(&[
        "user",
        "add",
        "benchcmdb",
        "--real-name",
        "Bench CMDB",
        "--department",
        "Ops",
        "--role",
        "platform_operations@global",
    ])?;
    let token = s.admin(&["token", "create", "--user", "benchcmdb", "--name", "bench"])?;
    println!("{}", server::machine_note());

    // --- The bulk, through the store.
    let (businesses, subsystems, modules) = (20usize, 200usize, 2000usize);
    let middleware = (a.cis / 10).min(10_000);
    let seeded_hosts = a
        .cis
        .checked_sub(businesses + subsystems + modules + middleware + a.import_hosts)
        .context("--cis is too small for the shape")?;
    let store = ballast_store_sqlite::SqliteStore::open(&s.data_dir.join("ballast.db")).await?;
    let store: &dyn Store = &store;
    let host_unique = vec!["ip".to_string(), "serial".to_string()];
    let t = Instant::now();
    let biz = insert_cis(
        store,
        (0..businesses)
            .map(|i| {
                ci(
                    "business",
                    format!("B-{i:02}"),
                    json!({"owner": "bench", "level": "core"}),
                )
            })
            .collect(),
        &[],
    )
    .await?;
    let sub = insert_cis(
        store,
        (0..subsystems)
            .map(|i| ci("subsystem", format!("S-{i:03}"), json!({})))
            .collect(),
        &[],
    )
    .await?;
    let md = insert_cis(
        store,
        (0..modules)
            .map(|i| {
                ci(
                    "module",
                    format!("M-{i:04}"),
                    json!({"port": 9000 + i % 100}),
                )
            })
            .collect(),
        &[],
    )
    .await?;
    let hosts = insert_cis(
        store,
        (0..seeded_hosts)
            .map(|i| ci("host", format!("host-{i:06}"), host_attrs(i)))
            .collect(),
        &host_unique,
    )
    .await?;
    let mw = insert_cis(
        store,
        (0..middleware)
            .map(|i| ci("middleware", format!("MW-{i:05}"), json!({})))
            .collect(),
        &[],
    )
    .await?;
    let mut rng = Lcg(7);
    let mut rels = Vec::new();
    for (i, s) in sub.iter().enumerate() {
        rels.push(rel("belongs_to", *s, biz[i / 10]));
    }
    for (i, m) in md.iter().enumerate() {
        rels.push(rel("belongs_to", *m, sub[i / 10]));
        if i % 10 != 9 {
            rels.push(rel("depends_on", *m, md[i + 1]));
        }
    }
    for (i, h) in hosts.iter().enumerate() {
        rels.push(rel("belongs_to", *h, md[i % modules]));
    }
    for m in &mw {
        rels.push(rel("runs_on", *m, hosts[rng.next(hosts.len())]));
    }
    let structural = rels.len() + a.import_hosts;
    let extra = a.relations.saturating_sub(structural);
    for k in 0..extra {
        let i = rng.next(hosts.len() - 1);
        if k % 2 == 0 {
            let j = i + 1 + rng.next(hosts.len() - i - 1);
            rels.push(rel("depends_on", hosts[i], hosts[j]));
        } else {
            let j = rng.next(hosts.len());
            if i != j {
                rels.push(rel("connects_to", hosts[i], hosts[j]));
            }
        }
    }
    let written = insert_relations(store, &rels).await?;
    let seeded = biz.len() + sub.len() + md.len() + hosts.len() + mw.len();
    println!(
        "seeded through the store: {seeded} instances, {written} relations in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // --- The spreadsheet import, into the populated CMDB.
    let book = xlsx_of_hosts(seeded_hosts, a.import_hosts)?;
    let (dry, v) = import(&s, &token, &book, true).await?;
    let creates = v["creates"].as_array().map_or(0, Vec::len);
    if creates != a.import_hosts {
        bail!(
            "dry run: {creates} creates, expected {}: {v}",
            a.import_hosts
        );
    }
    let (applied, v) = import(&s, &token, &book, false).await?;
    if v["applied"] != true {
        bail!("import not applied: {v}");
    }
    let (again, v) = import(&s, &token, &book, false).await?;
    println!(
        "XLSX import of {} hosts ({} KiB): dry run {:.2} s, applied {:.2} s, re-import (no change: {} unchanged) {:.2} s",
        a.import_hosts,
        book.len() / 1024,
        dry.as_secs_f64(),
        applied.as_secs_f64(),
        v["unchanged"],
        again.as_secs_f64()
    );
    // The imported hosts join modules too.
    let mut joined = Vec::new();
    for i in 0..a.import_hosts {
        let name = format!("host-{:06}", seeded_hosts + i);
        if let Some(c) = store.ci_by_name("host", "test", &name).await? {
            joined.push(rel("belongs_to", c.id, md[(seeded_hosts + i) % modules]));
        }
    }
    let written2 = insert_relations(store, &joined).await?;
    let counts = store.ci_counts().await?;
    let total: i64 = counts.iter().map(|(_, _, n)| n).sum();
    println!(
        "CMDB now: {total} instances, {} relations",
        written + written2
    );

    // --- Searches.
    let n = a.samples;
    let all_hosts = seeded_hosts + a.import_hosts;
    let mut rng = Lcg(11);
    println!();
    println!("| query | samples | mean results | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    let kinds: Vec<(&str, QueryOf)> = vec![
        (
            "unique value `ip = \"10.x.y.z\"`",
            Box::new(move |_| format!("ip = \"{}\"", ip(rng.next(all_hosts)))),
        ),
        (
            "common value `owner = \"owner-NNN\"` (≈1 % of hosts), limit 100",
            Box::new(|i| format!("owner = \"owner-{:03}\"", i % 100)),
        ),
        (
            "regex and comparison `os ~ \"Kylin\" and cpus >= 32`, limit 100",
            Box::new(|_| "os ~ \"Kylin\" and cpus >= 32".to_string()),
        ),
        (
            "topology path `module = \"M-NNNN\"` (≈50 hosts), limit 100",
            Box::new(|i| format!("module = \"M-{:04}\"", (i * 37) % 2000)),
        ),
    ];
    for (label, mut q) in kinds {
        let (times, mean) = sample(&s, &token, n, |i| {
            format!(
                "/api/v1/cmdb/instances?model=host&environment=test&limit=100&q={}",
                escape(&q(i))
            )
        })
        .await?;
        println!(
            "| {label} | {n} | {mean:.1} | {} | {} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }
    let mut rng = Lcg(13);
    let host_ids = hosts.clone();
    let (times, mean) = sample(&s, &token, n, |_| {
        format!(
            "/api/v1/cmdb/instances/{}/impact?depth=5",
            host_ids[rng.next(host_ids.len())]
        )
    })
    .await?;
    println!(
        "| impact of a host, 5 levels | {n} | {mean:.1} | {} | {} |",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
    let mut rng = Lcg(17);
    let (times, mean) = sample(&s, &token, n, |_| {
        format!(
            "/api/v1/cmdb/instances/{}/impact?depth=5",
            md[rng.next(md.len())]
        )
    })
    .await?;
    println!(
        "| impact of a module, 5 levels | {n} | {mean:.1} | {} | {} |",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
    Ok(())
}
