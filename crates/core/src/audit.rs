//! The tamper-evident audit trail (standard 7.3 安全审计, 8.3.1.4).
//!
//! Every record's `content` is a canonical JSON text fixed at append time; its hash is
//! `sha256(prev_hash ‖ "\n" ‖ content)` with `prev_hash` the previous record's hash (64 zeros for
//! the first). Editing, inserting or deleting a record breaks the chain at that record. Truncation of
//! the tail is caught by signed checkpoints: an ed25519 signature over `(seq, hash)` made with a key
//! kept outside the database, the latest also kept outside it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::problem::Problem;

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether the action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Refused by a guard (permission, separation of duties, change window, …).
    Denied,
    /// Attempted and failed (wrong password, …).
    Failure,
}

impl Outcome {
    pub fn key(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }
}

/// Who did it: a real-name person (or the system itself, for scheduled work).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub username: String,
    pub real_name: String,
    pub roles: Vec<String>,
}

impl Actor {
    /// The platform itself (start-up, scheduled maintenance): never a person's action.
    pub fn system() -> Actor {
        Actor {
            user_id: None,
            username: "system".to_string(),
            real_name: "系统 System".to_string(),
            roles: Vec::new(),
        }
    }
    /// Someone not (yet) authenticated, e.g. a failed login for `username`.
    pub fn anonymous(username: &str) -> Actor {
        Actor {
            user_id: None,
            username: username.to_string(),
            real_name: String::new(),
            roles: Vec::new(),
        }
    }
}

/// What the caller says about an action; the store adds sequence number and hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditDraft {
    pub actor: Actor,
    pub source_ip: Option<String>,
    /// Stable action key, e.g. `user.create`, `auth.login`.
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub environment: Option<String>,
    pub outcome: Outcome,
    /// Short summaries; secrets never appear here.
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub detail: Option<String>,
}

impl AuditDraft {
    pub fn new(actor: Actor, action: &str, object_type: &str, outcome: Outcome) -> AuditDraft {
        AuditDraft {
            actor,
            source_ip: None,
            action: action.to_string(),
            object_type: object_type.to_string(),
            object_id: None,
            environment: None,
            outcome,
            before: None,
            after: None,
            detail: None,
        }
    }
    pub fn object(mut self, id: impl ToString) -> Self {
        self.object_id = Some(id.to_string());
        self
    }
    pub fn from_ip(mut self, ip: Option<String>) -> Self {
        self.source_ip = ip;
        self
    }
    pub fn before(mut self, v: serde_json::Value) -> Self {
        self.before = Some(v);
        self
    }
    pub fn after(mut self, v: serde_json::Value) -> Self {
        self.after = Some(v);
        self
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
    pub fn environment(mut self, env: Option<String>) -> Self {
        self.environment = env;
        self
    }
}

/// The hashed content of one record (field order is the canonical order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub v: u32,
    pub seq: i64,
    pub at: String,
    #[serde(flatten)]
    pub draft: AuditDraft,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// The canonical JSON text that was hashed.
    pub content: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    pub fn parsed(&self) -> Option<Content> {
        serde_json::from_str(&self.content).ok()
    }
}

/// `sha256(prev ‖ "\n" ‖ content)`, hex.
pub fn chain_hash(prev: &str, content: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(content.as_bytes());
    hex::encode(h.finalize())
}

/// Builds the record that follows `prev` (seq, hash) for `draft` at `at`.
pub fn seal(prev: Option<(i64, &str)>, draft: AuditDraft, at: DateTime<Utc>) -> AuditRecord {
    let (seq, prev_hash) = match prev {
        Some((s, h)) => (s + 1, h.to_string()),
        None => (1, GENESIS.to_string()),
    };
    let content = Content {
        v: 1,
        seq,
        at: at.to_rfc3339_opts(SecondsFormat::Micros, true),
        draft,
    };
    let text = serde_json::to_string(&content).unwrap_or_default();
    AuditRecord {
        seq,
        at,
        hash: chain_hash(&prev_hash, &text),
        content: text,
        prev_hash,
    }
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    pub seq: i64,
    pub reason_zh: String,
    pub reason_en: String,
}

/// Incremental verification: feed records in sequence order.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    last_seq: i64,
    last_hash: String,
    pub checked: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            last_seq: 0,
            last_hash: GENESIS.to_string(),
            checked: 0,
        }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, r: &AuditRecord) -> Result<(), Broken> {
        let broken = |zh: String, en: String| Broken {
            seq: r.seq,
            reason_zh: zh,
            reason_en: en,
        };
        if r.seq != self.last_seq + 1 {
            return Err(broken(
                format!(
                    "序号不连续：上一条为 {}，此条为 {}（记录被删除或插入）",
                    self.last_seq, r.seq
                ),
                format!(
                    "sequence gap: {} follows {} (a record was deleted or inserted)",
                    r.seq, self.last_seq
                ),
            ));
        }
        if r.prev_hash != self.last_hash {
            return Err(broken(
                "前一条哈希不符（前一条记录被修改、删除或替换）".into(),
                "previous hash does not match (the record before was altered, deleted or replaced)"
                    .into(),
            ));
        }
        if chain_hash(&r.prev_hash, &r.content) != r.hash {
            return Err(broken(
                "内容哈希不符（此记录被修改）".into(),
                "content hash does not match (this record was altered)".into(),
            ));
        }
        match r.parsed() {
            Some(c)
                if c.seq == r.seq && c.at == r.at.to_rfc3339_opts(SecondsFormat::Micros, true) => {}
            _ => {
                return Err(broken(
                    "记录的序号或时间与其内容不符".into(),
                    "the record's sequence number or time does not match its hashed content".into(),
                ));
            }
        }
        self.last_seq = r.seq;
        self.last_hash = r.hash.clone();
        self.checked += 1;
        Ok(())
    }

    pub fn head(&self) -> (i64, &str) {
        (self.last_seq, &self.last_hash)
    }
}

/// A signed statement "record `seq` has hash `hash`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub at: DateTime<Utc>,
    /// base64 ed25519 signature.
    pub signature: String,
}

fn checkpoint_message(seq: i64, hash: &str, at: &DateTime<Utc>) -> String {
    format!(
        "ballast-audit-checkpoint/v1\n{seq}\n{hash}\n{}",
        at.to_rfc3339_opts(SecondsFormat::Micros, true)
    )
}

/// The checkpoint signing key (kept in a file outside the database).
pub struct CheckpointKey(SigningKey);

impl CheckpointKey {
    pub fn generate() -> CheckpointKey {
        CheckpointKey(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn to_pem(&self) -> Result<String, Problem> {
        self.0
            .to_pkcs8_pem(Default::default())
            .map(|s| s.to_string())
            .map_err(|e| {
                Problem::new(
                    "audit.key_encode",
                    format!("无法编码审计签名密钥：{e}"),
                    format!("cannot encode the audit signing key: {e}"),
                )
            })
    }

    pub fn from_pem(pem: &str) -> Result<CheckpointKey, Problem> {
        SigningKey::from_pkcs8_pem(pem)
            .map(CheckpointKey)
            .map_err(|e| {
                Problem::new(
                    "audit.key_invalid",
                    format!("审计签名密钥无效：{e}"),
                    format!("invalid audit signing key: {e}"),
                )
            })
    }

    /// The public half, base64, for auditors who verify without the secret.
    pub fn public_key(&self) -> String {
        B64.encode(self.0.verifying_key().to_bytes())
    }

    pub fn sign(&self, seq: i64, hash: &str, at: DateTime<Utc>) -> Checkpoint {
        let sig = self.0.sign(checkpoint_message(seq, hash, &at).as_bytes());
        Checkpoint {
            seq,
            hash: hash.to_string(),
            at,
            signature: B64.encode(sig.to_bytes()),
        }
    }

    pub fn verify(&self, c: &Checkpoint) -> bool {
        verify_checkpoint(&self.public_key(), c)
    }
}

/// Verifies a checkpoint's signature with a base64 public key.
pub fn verify_checkpoint(public_key_b64: &str, c: &Checkpoint) -> bool {
    let Ok(pk) = B64.decode(public_key_b64) else {
        return false;
    };
    let Ok(pk): Result<[u8; 32], _> = pk.try_into() else {
        return false;
    };
    let Ok(vk) = VerifyingKey::from_bytes(&pk) else {
        return false;
    };
    let Ok(sig) = B64.decode(&c.signature) else {
        return false;
    };
    let Ok(sig): Result<[u8; 64], _> = sig.try_into() else {
        return false;
    };
    vk.verify(
        checkpoint_message(c.seq, &c.hash, &c.at).as_bytes(),
        &Signature::from_bytes(&sig),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 1, 2, 3)
            .single()
            .unwrap_or_default()
    }

    fn chain(n: usize) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|r| (r.seq, r.hash.clone()));
            let d =
                AuditDraft::new(Actor::system(), "test.append", "test", Outcome::Success).object(i);
            out.push(seal(prev.as_ref().map(|(s, h)| (*s, h.as_str())), d, t0()));
        }
        out
    }

    fn verify(records: &[AuditRecord]) -> Result<(), Broken> {
        let mut v = ChainVerifier::default();
        records.iter().try_for_each(|r| v.push(r))
    }

    #[test]
    fn intact_chain_verifies() {
        assert!(verify(&chain(5)).is_ok());
    }

    #[test]
    fn tampering_is_found_at_the_first_broken_record() {
        let mut c = chain(5);
        c[2].content = c[2].content.replace("test.append", "test.erased");
        assert_eq!(verify(&c).map_err(|b| b.seq), Err(3));
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c).map_err(|b| b.seq), Err(3));
        let mut c = chain(5);
        let forged = chain_hash(&c[1].prev_hash, &c[1].content.replace("test", "tset"));
        c[1].content = c[1].content.replace("test", "tset");
        c[1].hash = forged;
        assert_eq!(
            verify(&c).map_err(|b| b.seq),
            Err(3),
            "a re-hashed record breaks its successor"
        );
    }

    #[test]
    fn checkpoints_sign_and_verify() {
        let key = CheckpointKey::generate();
        let c = key.sign(7, "abc", t0());
        assert!(key.verify(&c));
        let mut forged = c.clone();
        forged.seq = 6;
        assert!(!key.verify(&forged));
        let again =
            CheckpointKey::from_pem(&key.to_pem().unwrap_or_default()).map(|k| k.public_key());
        assert_eq!(again.ok(), Some(key.public_key()));
    }
}
