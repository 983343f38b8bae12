//! Auto-discovery (standard 表48 资源自动发现): the facts each agent reports when it connects
//! (`ballast_agent::proto::Facts`, kept on the agent's row) update the host instance of the same
//! name in the agent's environment.
//!
//! - A host with no instance gets one (name = hostname, `ip` = its first address), if the host
//!   model's checks pass; otherwise the reason is reported and nothing is created.
//! - Discovery-owned attributes (`discovered` in the model) that discovery set last, or that are
//!   empty, follow the facts (history `via = discovery`).
//! - A discovery-owned attribute somebody maintains by hand (`sources[key]` is `manual` or
//!   `import`) is not overwritten: the difference is queued as a conflict for review. Accepting
//!   it takes the discovered value; rejecting it keeps the recorded one, and the same discovered
//!   value is not queued again. A newer discovered value supersedes an open conflict
//!   (`superseded`), as does the recorded value coming to agree.
//! - `discovered_at` is when the agent last reported (now, while it is connected; refreshed at
//!   most hourly when nothing changed). Hosts not reported on for `stale_days` are stale in the
//!   data-quality figures.
//!
//! A round runs with the maintenance worker and on demand (`POST /api/v1/cmdb/discovery`); all
//! its changes are one transaction with one audit record (`cmdb.discovery`).

use std::collections::{BTreeMap, HashSet};

use ballast_cmdb::validate::{is_blank, normalise};
use ballast_cmdb::{FieldError, Model, Msg};
use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_core::guard::Principal;
use ballast_store::{AgentRow, CiConflictRow, CiRow};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::service::{self, as_map, diff, history_row, snapshot};
use crate::error::{ApiError, ApiResult};
use crate::service::draft;
use crate::state::AppState;

/// The actor named in the history of discovery's changes.
pub const ACTOR: &str = "discovery";

/// What one round did.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct DiscoveryReport {
    /// Agents considered (not revoked, in a managed environment; one per host name).
    pub agents: u64,
    pub created: u64,
    pub updated: u64,
    /// Hosts whose facts matched what is recorded.
    pub unchanged: u64,
    /// Conflicts queued for review this round.
    pub conflicts: u64,
    /// Hosts discovery could not record, with the reason (`web-01: …`).
    pub skipped: Vec<String>,
}

/// The host attributes an agent's facts give, by attribute key, before normalisation.
pub fn facts_attributes(facts: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    for k in ["os", "kernel", "agent_version"] {
        if let Some(s) = facts.get(k).and_then(Value::as_str)
            && !s.trim().is_empty()
        {
            m.insert(k.into(), Value::String(s.trim().into()));
        }
    }
    if let Some(n) = facts.get("cpus").and_then(Value::as_u64).filter(|n| *n > 0) {
        m.insert("cpus".into(), n.into());
    }
    if let Some(b) = facts
        .get("memory_bytes")
        .and_then(Value::as_u64)
        .filter(|b| *b > 0)
    {
        let gb = b as f64 / 1_073_741_824.0;
        m.insert("memory_gb".into(), Value::String(format!("{gb:.1}")));
    }
    let addresses: Vec<Value> = facts
        .get("addresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| Value::String(s.to_string()))
                .collect()
        })
        .unwrap_or_default();
    if !addresses.is_empty() {
        m.insert("addresses".into(), Value::Array(addresses));
    }
    m
}

/// The management address of a newly discovered host: the first IPv4 address reported (else the
/// first address), without its prefix length.
pub fn first_ip(facts: &Value) -> Option<String> {
    let addrs: Vec<&str> = facts
        .get("addresses")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .map(|a| a.split('/').next().unwrap_or(a))
        .collect();
    addrs
        .iter()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .or_else(|| addrs.first())
        .map(|a| a.to_string())
}

/// The discovered values, normalised against the host model (discovery-owned attributes only).
fn discovered_values(m: &Model, facts: &Value) -> (Map<String, Value>, Vec<FieldError>) {
    let raw = facts_attributes(facts);
    let mut out = Map::new();
    let mut errs = Vec::new();
    for a in m.attributes.iter().filter(|a| a.discovered) {
        let Some(v) = raw.get(&a.key) else { continue };
        match normalise(a, v) {
            Ok(n) if !is_blank(&n) => {
                out.insert(a.key.clone(), n);
            }
            Ok(_) => {}
            Err(e) => errs.push(e),
        }
    }
    (out, errs)
}

fn source_of<'a>(sources: &'a Map<String, Value>, key: &str) -> &'a str {
    sources.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The agent of each (environment, host name), with when it last reported.
type LatestAgents = BTreeMap<(String, String), (AgentRow, Option<DateTime<Utc>>)>;

/// Open and rejected conflicts, by (instance, attribute).
type Known = BTreeMap<(i64, String), Vec<CiConflictRow>>;

/// The changes of a round, written together at the end.
#[derive(Default)]
struct Round {
    inserts: Vec<CiRow>,
    updates: Vec<(CiRow, Option<Value>)>,
    conflicts: Vec<CiConflictRow>,
    superseded: Vec<i64>,
}

/// The guard for running a round on demand: a round touches every environment's hosts, so it
/// needs `cmdb.write` in each of them (each checked by the guard pipeline).
pub async fn authorize_run(state: &AppState, p: &Principal) -> ApiResult<()> {
    let writable =
        service::environments_for(state, p, ballast_core::authz::Permission::CmdbWrite).await?;
    if writable.len() < state.config.environments.len() {
        return Err(ApiError::forbidden(ballast_core::Problem::new(
            "cmdb.discovery_scope",
            "立即发现需要在所有环境拥有 cmdb.write 权限",
            "running discovery now needs cmdb.write in every environment",
        )));
    }
    for env in &writable {
        service::authorize_write(state, p, "cmdb.discovery.run", env).await?;
    }
    Ok(())
}

/// One round of discovery over every agent.
pub async fn sync(state: &AppState) -> ApiResult<DiscoveryReport> {
    let mut report = DiscoveryReport::default();
    let m = match service::model(state, "host").await {
        Ok(m) => m,
        Err(_) => {
            report.skipped.push("no host model".into());
            return Ok(report);
        }
    };
    let now = state.clock.now();
    let connected: HashSet<String> = state
        .exec
        .hub
        .connected()
        .into_iter()
        .map(|c| c.agent_id)
        .collect();
    // One agent per (environment, host name): the one seen last.
    let mut agents: LatestAgents = BTreeMap::new();
    for a in state.store.agents().await? {
        if a.revoked_at.is_some() || !state.config.environments.contains(&a.environment) {
            continue;
        }
        let seen = if connected.contains(&a.id) {
            Some(now)
        } else {
            a.last_seen_at
        };
        let key = (a.environment.clone(), a.hostname.clone());
        if agents.get(&key).is_none_or(|(_, s)| seen > *s) {
            agents.insert(key, (a, seen));
        }
    }
    let mut known: Known = BTreeMap::new();
    for c in state.store.ci_conflicts(None, None).await? {
        if c.state == "open" || c.state == "rejected" {
            known
                .entry((c.ci_id, c.attribute.clone()))
                .or_default()
                .push(c);
        }
    }
    let mut round = Round::default();
    let mut new_ips: HashSet<(String, String)> = HashSet::new();
    for ((env, host), (agent, seen)) in agents {
        report.agents += 1;
        let (found, errs) = discovered_values(&m, &agent.facts);
        for e in errs {
            report.skipped.push(format!("{host}: {}", e.message_en()));
        }
        match state.store.ci_by_name(&m.key, &env, &host).await? {
            None => {
                let mut attrs = found.clone();
                if let Some(ip) = first_ip(&agent.facts) {
                    attrs.insert("ip".into(), Value::String(ip));
                }
                let checked = service::check_instance(state, &m, &env, &host, &attrs, None).await?;
                let attrs = match checked {
                    Ok(a) => a,
                    Err(errs) => {
                        let why: Vec<String> = errs.iter().map(|e| e.message_en()).collect();
                        report.skipped.push(format!("{host}: {}", why.join("; ")));
                        continue;
                    }
                };
                let ip = attrs
                    .get("ip")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if !ip.is_empty() && !new_ips.insert((env.clone(), ip.clone())) {
                    report.skipped.push(format!(
                        "{host}: address {ip} is reported by another new host"
                    ));
                    continue;
                }
                let sources: Map<String, Value> = attrs
                    .keys()
                    .map(|k| (k.clone(), Value::String(ACTOR.into())))
                    .collect();
                round.inserts.push(CiRow {
                    id: 0,
                    model: m.key.clone(),
                    environment: env,
                    name: host,
                    attributes: Value::Object(attrs),
                    sources: Value::Object(sources),
                    created_by: ACTOR.into(),
                    created_at: now,
                    updated_by: ACTOR.into(),
                    updated_at: now,
                    discovered_at: seen,
                });
                report.created += 1;
            }
            Some(ci) => {
                let changed = reconcile(&ci, &found, seen, now, &known, &mut round);
                report.conflicts += changed.conflicts;
                if changed.attributes {
                    report.updated += 1;
                } else {
                    report.unchanged += 1;
                }
            }
        }
    }
    if round.inserts.is_empty()
        && round.updates.is_empty()
        && round.conflicts.is_empty()
        && round.superseded.is_empty()
    {
        return Ok(report);
    }
    write(state, &m, round, &report, now).await?;
    Ok(report)
}

struct Reconciled {
    attributes: bool,
    conflicts: u64,
}

/// Compares one recorded host with its facts; queues what must change in `round`.
fn reconcile(
    ci: &CiRow,
    found: &Map<String, Value>,
    seen: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    known: &Known,
    round: &mut Round,
) -> Reconciled {
    let attrs = as_map(&ci.attributes);
    let mut sources = as_map(&ci.sources);
    let mut next = attrs.clone();
    let mut out = Reconciled {
        attributes: false,
        conflicts: 0,
    };
    for (k, v) in found {
        let current = attrs.get(k);
        let previous = known.get(&(ci.id, k.clone()));
        // Open conflicts the facts or the record have overtaken.
        for c in previous.into_iter().flatten() {
            if c.state == "open" && (c.discovered != *v || current == Some(v)) {
                round.superseded.push(c.id);
            }
        }
        if current == Some(v) {
            continue;
        }
        let maintained =
            current.is_some_and(|c| !is_blank(c)) && !matches!(source_of(&sources, k), "" | ACTOR);
        if !maintained {
            next.insert(k.clone(), v.clone());
            sources.insert(k.clone(), Value::String(ACTOR.into()));
            out.attributes = true;
            continue;
        }
        let already = previous
            .into_iter()
            .flatten()
            .any(|c| c.discovered == *v && matches!(c.state.as_str(), "open" | "rejected"));
        if !already {
            round.conflicts.push(CiConflictRow {
                id: 0,
                ci_id: ci.id,
                attribute: k.clone(),
                recorded: current.cloned().unwrap_or(Value::Null),
                discovered: v.clone(),
                discovered_at: seen.unwrap_or(now),
                state: "open".into(),
                decided_by: None,
                decided_at: None,
            });
            out.conflicts += 1;
        }
    }
    let refresh = match (ci.discovered_at, seen) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(was), Some(s)) => s - was >= Duration::hours(1),
    };
    if out.attributes {
        let d = diff(Some((&ci.name, &attrs)), Some((&ci.name, &next)));
        round.updates.push((
            CiRow {
                attributes: Value::Object(next),
                sources: Value::Object(sources),
                updated_by: ACTOR.into(),
                updated_at: now,
                discovered_at: seen.or(ci.discovered_at),
                ..ci.clone()
            },
            Some(d),
        ));
    } else if refresh {
        round.updates.push((
            CiRow {
                discovered_at: seen,
                ..ci.clone()
            },
            None,
        ));
    }
    out
}

async fn write(
    state: &AppState,
    m: &Model,
    round: Round,
    report: &DiscoveryReport,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let unique = m.unique_keys();
    let mut tx = state.store.begin().await?;
    let mut history = Vec::new();
    let mut created = Vec::new();
    let mut updated = Vec::new();
    for mut ci in round.inserts {
        ci.id = tx.insert_ci(&ci, &unique).await?;
        let d = diff(None, Some((&ci.name, &as_map(&ci.attributes))));
        history.push(history_row(&ci, "create", ACTOR, ACTOR, now, d));
        created.push(ci.name.clone());
    }
    for (ci, d) in round.updates {
        tx.update_ci(&ci, &unique).await?;
        if let Some(d) = d {
            history.push(history_row(&ci, "update", ACTOR, ACTOR, now, d));
            updated.push(ci.name.clone());
        }
    }
    tx.insert_ci_history(&history).await?;
    for id in round.superseded {
        tx.decide_ci_conflict(id, "superseded", ACTOR, now).await?;
    }
    for c in &round.conflicts {
        tx.insert_ci_conflict(c).await?;
    }
    let audit = AuditDraft::new(
        Actor::system(),
        "cmdb.discovery",
        "cmdb_ci",
        Outcome::Success,
    )
    .after(json!({
        "agents": report.agents,
        "created": created.iter().take(100).collect::<Vec<_>>(),
        "created_count": created.len(),
        "updated": updated.iter().take(100).collect::<Vec<_>>(),
        "updated_count": updated.len(),
        "conflicts": round.conflicts.iter().take(100)
            .map(|c| json!({"ci_id": c.ci_id, "attribute": c.attribute, "recorded": c.recorded, "discovered": c.discovered}))
            .collect::<Vec<_>>(),
        "conflicts_count": round.conflicts.len(),
    }));
    tx.commit(vec![audit], now).await?;
    Ok(())
}

/// A conflict with the instance it concerns, for review.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConflictView {
    pub id: i64,
    pub ci_id: i64,
    pub ci_name: String,
    pub environment: String,
    pub attribute: String,
    #[schema(value_type = Object)]
    pub recorded: Value,
    #[schema(value_type = Object)]
    pub discovered: Value,
    pub discovered_at: DateTime<Utc>,
    pub state: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// Conflicts (of `state` when given) in `environments`, newest first.
pub async fn conflicts(
    state: &AppState,
    environments: &[String],
    which: Option<&str>,
) -> ApiResult<Vec<ConflictView>> {
    let rows = state.store.ci_conflicts(which, None).await?;
    let ids: Vec<i64> = rows.iter().map(|c| c.ci_id).collect();
    let cis: BTreeMap<i64, CiRow> = if ids.is_empty() {
        BTreeMap::new()
    } else {
        state
            .store
            .cis(&ballast_store::CiQuery {
                ids: Some(ids),
                environments: Some(environments.to_vec()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect()
    };
    let mut out: Vec<ConflictView> = rows
        .into_iter()
        .filter_map(|c| {
            let ci = cis.get(&c.ci_id)?;
            Some(ConflictView {
                id: c.id,
                ci_id: c.ci_id,
                ci_name: ci.name.clone(),
                environment: ci.environment.clone(),
                attribute: c.attribute,
                recorded: c.recorded,
                discovered: c.discovered,
                discovered_at: c.discovered_at,
                state: c.state,
                decided_by: c.decided_by,
                decided_at: c.decided_at,
            })
        })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.id));
    Ok(out)
}

/// Accepts (the discovered value is taken, owned by discovery from now on) or rejects (the
/// recorded value is kept) an open conflict.
pub async fn decide(
    state: &AppState,
    p: &Principal,
    id: i64,
    accept: bool,
    via: &str,
) -> ApiResult<()> {
    let c = state
        .store
        .ci_conflicts(Some("open"), None)
        .await?
        .into_iter()
        .find(|c| c.id == id);
    let Some(c) = c else {
        let exists = state
            .store
            .ci_conflicts(None, None)
            .await?
            .into_iter()
            .any(|c| c.id == id);
        return Err(if exists {
            ApiError::new(
                axum::http::StatusCode::CONFLICT,
                ballast_core::Problem::field(
                    "cmdb.conflict_decided",
                    "id",
                    format!("冲突 {id} 已处理"),
                    format!("conflict {id} has already been decided"),
                ),
            )
        } else {
            ApiError::not_found(&format!("CMDB conflict {id}"))
        });
    };
    let ci = service::load(state, c.ci_id).await?;
    service::authorize_ci(
        state,
        p,
        ballast_core::authz::Permission::CmdbWrite,
        "cmdb.conflict.decide",
        &ci,
    )
    .await?;
    let now = state.clock.now();
    let user = p.user.username.clone();
    let mut tx = state.store.begin().await?;
    let op = if accept {
        "cmdb.conflict.accept"
    } else {
        "cmdb.conflict.reject"
    };
    if accept {
        let m = service::model(state, &ci.model).await?;
        let attrs = as_map(&ci.attributes);
        let mut next = attrs.clone();
        next.insert(c.attribute.clone(), c.discovered.clone());
        let mut sources = as_map(&ci.sources);
        sources.insert(c.attribute.clone(), Value::String(ACTOR.into()));
        let d = diff(Some((&ci.name, &attrs)), Some((&ci.name, &next)));
        let after = CiRow {
            attributes: Value::Object(next),
            sources: Value::Object(sources),
            updated_by: user.clone(),
            updated_at: now,
            ..ci.clone()
        };
        tx.update_ci(&after, &m.unique_keys()).await?;
        tx.insert_ci_history(&[history_row(&after, "update", via, &user, now, d)])
            .await?;
    }
    tx.decide_ci_conflict(id, if accept { "accepted" } else { "rejected" }, &user, now)
        .await?;
    let audit = draft(p, op, "cmdb_ci", Outcome::Success)
        .object(ci.id)
        .environment(Some(ci.environment.clone()))
        .before(snapshot(&ci))
        .after(json!({"conflict": id, "attribute": c.attribute,
            "recorded": c.recorded, "discovered": c.discovered}));
    tx.commit(vec![audit], now).await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn facts_become_host_attributes() {
        let facts = json!({
            "hostname": "web-01", "os": "CentOS Linux 7 (Core)", "kernel": "3.10.0",
            "cpus": 8, "memory_bytes": 16_642_998_272u64, "disks": [],
            "addresses": ["fe80::1/64", "10.0.0.5/24", "192.168.1.9/16"], "agent_version": "0.1.0"
        });
        let m = facts_attributes(&facts);
        assert_eq!(m["os"], "CentOS Linux 7 (Core)");
        assert_eq!(m["cpus"], 8);
        assert_eq!(m["memory_gb"], "15.5");
        assert_eq!(m["addresses"].as_array().unwrap().len(), 3);
        assert_eq!(first_ip(&facts).as_deref(), Some("10.0.0.5"));
        assert_eq!(
            first_ip(&json!({"addresses": ["::1/128"]})).as_deref(),
            Some("::1")
        );
        assert_eq!(first_ip(&json!({})), None);
        // Blank or missing facts give nothing to record.
        assert!(facts_attributes(&json!({"os": " ", "cpus": 0})).is_empty());
    }
}
