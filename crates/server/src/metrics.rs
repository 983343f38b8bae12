//! Prometheus metrics in the text exposition format: HTTP requests and latencies by route,
//! audit appends, database availability. Counters live in memory per replica (Prometheus scrapes
//! each replica); nothing here affects correctness.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    pub audit_appends: AtomicU64,
    pub logins_failed: AtomicU64,
    /// Finished tasks by final status.
    tasks: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route.to_string()).or_default();
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    pub fn task_finished(&self, status: &str) {
        if let Ok(mut t) = self.tasks.lock() {
            *t.entry(status.to_string()).or_default() += 1;
        }
    }

    pub fn audit_appended(&self, n: usize) {
        self.audit_appends.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The exposition text; `db_up`, `chain_ok` and `pool` (open, idle) are sampled by the caller.
    pub fn render(&self, db_up: bool, chain_ok: bool, backend: &str, pool: (u32, usize)) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP ballast_http_requests_total HTTP requests by method, route and status."
        );
        let _ = writeln!(o, "# TYPE ballast_http_requests_total counter");
        if let Ok(r) = self.requests.lock() {
            for ((m, route, s), n) in r.iter() {
                let _ = writeln!(
                    o,
                    "ballast_http_requests_total{{method=\"{m}\",route=\"{route}\",status=\"{s}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP ballast_http_request_duration_seconds HTTP request latency by route."
        );
        let _ = writeln!(o, "# TYPE ballast_http_request_duration_seconds histogram");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        o,
                        "ballast_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    o,
                    "ballast_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    o,
                    "ballast_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    o,
                    "ballast_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP ballast_tasks_finished_total Tasks finished by this replica, by final status."
        );
        let _ = writeln!(o, "# TYPE ballast_tasks_finished_total counter");
        if let Ok(t) = self.tasks.lock() {
            for (status, n) in t.iter() {
                let _ = writeln!(o, "ballast_tasks_finished_total{{status=\"{status}\"}} {n}");
            }
        }
        let _ = writeln!(
            o,
            "# HELP ballast_audit_appends_total Audit records appended by this replica."
        );
        let _ = writeln!(o, "# TYPE ballast_audit_appends_total counter");
        let _ = writeln!(
            o,
            "ballast_audit_appends_total {}",
            self.audit_appends.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ballast_logins_failed_total Failed sign-in attempts seen by this replica."
        );
        let _ = writeln!(o, "# TYPE ballast_logins_failed_total counter");
        let _ = writeln!(
            o,
            "ballast_logins_failed_total {}",
            self.logins_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ballast_db_up Whether the database answered the last probe."
        );
        let _ = writeln!(o, "# TYPE ballast_db_up gauge");
        let _ = writeln!(
            o,
            "ballast_db_up{{backend=\"{backend}\"}} {}",
            u8::from(db_up)
        );
        let (open, idle) = pool;
        let _ = writeln!(
            o,
            "# HELP ballast_db_pool_connections Database pool connections by state."
        );
        let _ = writeln!(o, "# TYPE ballast_db_pool_connections gauge");
        let _ = writeln!(o, "ballast_db_pool_connections{{state=\"idle\"}} {idle}");
        let busy = (open as usize).saturating_sub(idle);
        let _ = writeln!(o, "ballast_db_pool_connections{{state=\"busy\"}} {busy}");
        let _ = writeln!(
            o,
            "# HELP ballast_audit_chain_verified Whether the audit chain verified at start."
        );
        let _ = writeln!(o, "# TYPE ballast_audit_chain_verified gauge");
        let _ = writeln!(o, "ballast_audit_chain_verified {}", u8::from(chain_ok));
        o
    }
}
