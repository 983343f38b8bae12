//! Audit chain status: the hash chain recomputed, and the latest signed checkpoint — from the
//! database and from the copy kept outside it (`<data-dir>/audit-head.json`) — checked against it,
//! which catches truncation of the tail.

use ballast_core::audit::{Checkpoint, verify_checkpoint};

use crate::api::ChainStatus;
use crate::error::ApiResult;
use crate::state::AppState;

pub const HEAD_FILE: &str = "audit-head.json";

/// The checkpoint kept outside the database, if any.
pub fn outside_checkpoint(state: &AppState) -> Option<Checkpoint> {
    let text = std::fs::read_to_string(state.config.data_dir.join(HEAD_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

pub async fn chain_status(state: &AppState) -> ApiResult<ChainStatus> {
    let verdict = crate::state::verify_chain(state.store.as_ref())
        .await
        .map_err(|e| {
            crate::error::ApiError::from(ballast_store::StoreError::Other(e.to_string()))
        })?;
    let (intact, records, broken) = match verdict {
        Ok(n) => (true, n, None),
        Err(b) => (false, 0, Some(b)),
    };
    let mut status = ChainStatus {
        intact,
        records,
        first_broken_seq: broken.as_ref().map(|b| b.seq),
        reason_zh: broken.as_ref().map(|b| b.reason_zh.clone()),
        reason_en: broken.as_ref().map(|b| b.reason_en.clone()),
        checkpoint_seq: None,
    };
    if !intact {
        return Ok(status);
    }
    let public = state.checkpoint_key.public_key();
    let mut latest: Option<Checkpoint> = state
        .store
        .checkpoints()
        .await?
        .into_iter()
        .max_by_key(|c| c.seq);
    if let Some(outside) = outside_checkpoint(state)
        && latest.as_ref().is_none_or(|c| outside.seq > c.seq)
    {
        latest = Some(outside);
    }
    if let Some(c) = latest {
        let fail = |status: &mut ChainStatus, zh: String, en: String| {
            status.intact = false;
            status.first_broken_seq = Some(c.seq);
            status.reason_zh = Some(zh);
            status.reason_en = Some(en);
        };
        if !verify_checkpoint(&public, &c) {
            fail(
                &mut status,
                format!("检查点 {} 的签名无效", c.seq),
                format!("checkpoint {} has an invalid signature", c.seq),
            );
            return Ok(status);
        }
        let at = state.store.audit_range(c.seq - 1, 1).await?;
        match at.first() {
            Some(r) if r.seq == c.seq && r.hash == c.hash => status.checkpoint_seq = Some(c.seq),
            Some(_) => fail(
                &mut status,
                format!("第 {} 条记录与已签名检查点不符", c.seq),
                format!("record {} does not match its signed checkpoint", c.seq),
            ),
            None => fail(
                &mut status,
                format!(
                    "审计日志被截断：已签名检查点覆盖到第 {} 条，数据库中只有 {} 条",
                    c.seq, records
                ),
                format!(
                    "the audit log was truncated: a signed checkpoint covers record {} but the database holds {records}",
                    c.seq
                ),
            ),
        }
    }
    Ok(status)
}
