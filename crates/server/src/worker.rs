//! Background work shared by replicas: one replica at a time holds the `maintenance` lease and
//! disables accounts whose outsourcing contract ended, returns assessment clauses whose evidence
//! expired to `unrated` (`assess::service::expire_evidence`), records agents' host facts in the
//! CMDB (`cmdb::discovery::sync`) and writes signed audit checkpoints.

use std::time::Duration as StdDuration;

use chrono::Duration;

use crate::state::AppState;
use crate::verify::HEAD_FILE;

/// One round of maintenance, if this replica holds the lease. Returns whether it did the work.
pub async fn tick(state: &AppState, holder: &str) -> anyhow::Result<bool> {
    let now = state.clock.now();
    let period = Duration::seconds(
        i64::try_from(state.config.checkpoint_seconds)
            .unwrap_or(60)
            .max(1),
    );
    if !state
        .store
        .try_lease("maintenance", holder, now, now + period * 3)
        .await?
    {
        return Ok(false);
    }
    crate::service::disable_expired_contracts(state)
        .await
        .map_err(|e| anyhow::anyhow!(e.problem.message_en))?;
    crate::assess::service::expire_evidence(state)
        .await
        .map_err(|e| anyhow::anyhow!(e.problem.message_en))?;
    if let Err(e) = crate::cmdb::discovery::sync(state).await {
        tracing::warn!("cmdb discovery: {}", e.problem.message_en);
    }
    write_checkpoint(state).await?;
    Ok(true)
}

/// Signs the chain head if it moved since the last checkpoint; keeps a copy outside the database.
pub async fn write_checkpoint(state: &AppState) -> anyhow::Result<()> {
    let Some((seq, hash)) = state.store.audit_head().await? else {
        return Ok(());
    };
    let last = state
        .store
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| c.seq)
        .max();
    if last == Some(seq) {
        return Ok(());
    }
    let c = state.checkpoint_key.sign(seq, &hash, state.clock.now());
    state.store.insert_checkpoint(&c).await?;
    crate::state::write_private(
        &state.config.data_dir.join(HEAD_FILE),
        &serde_json::to_string_pretty(&c)?,
    )?;
    Ok(())
}

/// Runs [`tick`] every `checkpoint_seconds` until the process ends.
pub fn spawn(state: AppState, holder: String) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(StdDuration::from_secs(
            state.config.checkpoint_seconds.max(1),
        ));
        loop {
            interval.tick().await;
            if let Err(e) = tick(&state, &holder).await {
                tracing::warn!("maintenance: {e:#}");
            }
        }
    });
}
