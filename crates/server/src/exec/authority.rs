//! The agent hub's view of the database: enrolment tokens are redeemed once, agents are admitted
//! only with the certificate they enrolled with, never when revoked. Enrolment and revocation are
//! audited; connects and heartbeats are bookkeeping (`last_seen_at`).
//!
//! Heartbeats are coalesced: each one only notes the time in memory, and a background loop
//! writes all of them every [`SEEN_FLUSH`] in one transaction. At 10,000 agents with a 30 s
//! heartbeat that is one write every few seconds instead of ~333 fsync'd writes a second, and
//! the hub's read loop never waits on the database for a heartbeat. `last_seen_at` may lag by up
//! to [`SEEN_FLUSH`]; connects and disconnects are written at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use ballast_agent::hub::{AgentInfo, Authority, Enrolled, Refusal};
use ballast_agent::proto::Facts;
use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_core::clock::Clock;
use ballast_store::{AgentRow, Store};
use chrono::{DateTime, Utc};

/// How often coalesced heartbeats are written.
pub const SEEN_FLUSH: Duration = Duration::from_secs(5);

pub struct DbAuthority {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Heartbeats not yet written: agent id → newest time.
    seen: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl DbAuthority {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> DbAuthority {
        DbAuthority {
            store,
            clock,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Writes the heartbeats noted since the last flush, in one transaction. Returns how many.
    pub async fn flush_seen(&self) -> usize {
        let batch: Vec<(String, DateTime<Utc>)> = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.drain().collect()
        };
        if batch.is_empty() {
            return 0;
        }
        if let Err(e) = self.store.touch_agents(&batch).await {
            tracing::warn!("agents' last-seen times ({} agents): {e}", batch.len());
            // Keep them for the next flush (a newer heartbeat wins).
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            for (id, at) in batch {
                let e = seen.entry(id).or_insert(at);
                *e = (*e).max(at);
            }
            return 0;
        }
        batch.len()
    }
}

/// Writes coalesced heartbeats every [`SEEN_FLUSH`] while the authority lives.
pub fn spawn_heartbeat_flusher(authority: &Arc<DbAuthority>) {
    let weak: Weak<DbAuthority> = Arc::downgrade(authority);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SEEN_FLUSH).await;
            let Some(a) = weak.upgrade() else { return };
            a.flush_seen().await;
        }
    });
}

fn refusal(code: &str, zh: String, en: String) -> Refusal {
    Refusal {
        code: code.to_string(),
        message_zh: zh,
        message_en: en,
    }
}

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    refusal(
        "server.unavailable",
        format!("服务端暂不可用：{e}"),
        format!("the server cannot answer now: {e}"),
    )
}

#[async_trait]
impl Authority for DbAuthority {
    async fn enroll(
        &self,
        token_hash: &str,
        facts: &Facts,
        agent_id: &str,
        cert_fingerprint: &str,
    ) -> Result<Enrolled, Refusal> {
        let invalid = || {
            refusal(
                "agent.token_invalid",
                "注册令牌无效、已使用或已过期".into(),
                "the enrolment token is invalid, used or expired".into(),
            )
        };
        let now = self.clock.now();
        let token = self
            .store
            .enroll_token(token_hash)
            .await
            .map_err(unavailable)?
            .ok_or_else(invalid)?;
        if token.used_at.is_some() || token.expires_at <= now {
            return Err(invalid());
        }
        let mut tx = self.store.begin().await.map_err(unavailable)?;
        if !tx
            .use_enroll_token(token_hash, agent_id, now)
            .await
            .map_err(unavailable)?
        {
            return Err(invalid());
        }
        tx.insert_agent(&AgentRow {
            id: agent_id.to_string(),
            hostname: facts.hostname.clone(),
            environment: token.environment.clone(),
            cert_fingerprint: cert_fingerprint.to_string(),
            facts: serde_json::to_value(facts).unwrap_or_default(),
            version: facts.agent_version.clone(),
            enrolled_at: now,
            last_seen_at: Some(now),
            revoked_at: None,
            revoked_by: None,
        })
        .await
        .map_err(unavailable)?;
        let d = AuditDraft::new(Actor::system(), "agent.enroll", "agent", Outcome::Success)
            .object(agent_id)
            .environment(Some(token.environment.clone()))
            .after(serde_json::json!({
                "hostname": facts.hostname, "token_created_by": token.created_by,
                "cert_fingerprint": cert_fingerprint, "version": facts.agent_version,
            }));
        tx.commit(vec![d], now).await.map_err(unavailable)?;
        Ok(Enrolled {
            agent_id: agent_id.to_string(),
            environment: token.environment,
        })
    }

    async fn admit(
        &self,
        agent_id: &str,
        cert_fingerprint: &str,
        facts: &Facts,
    ) -> Result<AgentInfo, Refusal> {
        let agent = self
            .store
            .agent(agent_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                refusal(
                    "agent.unknown",
                    format!("未知的 agent {agent_id}"),
                    format!("unknown agent {agent_id}"),
                )
            })?;
        if agent.revoked_at.is_some() {
            return Err(refusal(
                "agent.revoked",
                format!("agent {agent_id} 已被吊销"),
                format!("agent {agent_id} has been revoked"),
            ));
        }
        if agent.cert_fingerprint != cert_fingerprint {
            return Err(refusal(
                "agent.certificate_mismatch",
                format!("agent {agent_id} 的证书与注册时不符"),
                format!(
                    "agent {agent_id} presented a certificate other than the one it enrolled with"
                ),
            ));
        }
        let facts_json = serde_json::to_value(facts).unwrap_or_default();
        let _ = self
            .store
            .touch_agent(
                agent_id,
                self.clock.now(),
                Some(&facts_json),
                Some(&facts.agent_version),
            )
            .await;
        Ok(AgentInfo {
            agent_id: agent_id.to_string(),
            environment: agent.environment,
        })
    }

    async fn heartbeat(&self, agent_id: &str) {
        let now = self.clock.now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let e = seen.entry(agent_id.to_string()).or_insert(now);
        *e = (*e).max(now);
    }

    async fn disconnected(&self, agent_id: &str) {
        let _ = self
            .store
            .touch_agent(agent_id, self.clock.now(), None, None)
            .await;
    }
}
