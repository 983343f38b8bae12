//! A small cancellation token (clonable; cancelling one clone cancels all), built on
//! `tokio::sync::watch` so the crate needs no `tokio-util`.

use std::sync::Arc;

use tokio::sync::watch;

/// Cancels a running task. Clones share the state: `cancel()` on any clone wakes every
/// `cancelled()` waiter. Cancelling before `Runner::run` starts makes the run stop at once.
#[derive(Debug, Clone)]
pub struct CancelToken {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelToken {
    /// A fresh, not yet cancelled token.
    #[must_use]
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(false);
        Self { tx: Arc::new(tx) }
    }

    /// Request cancellation (idempotent).
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether cancellation was requested.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once cancellation is requested (immediately if it already was).
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail with "closed" while we wait.
        let _ = rx.wait_for(|c| *c).await;
    }
}
