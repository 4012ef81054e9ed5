//! The server-side watcher for clients that do not watch files: polls the size and
//! modification time of every indexed model and re-runs diagnostics when one changed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::diagnostics;
use crate::state::Inner;

/// Starts the poller; it stops when the server goes away.
pub fn spawn_poller(inner: &Arc<Inner>) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    tokio::spawn(async move {
        loop {
            let interval = match weak.upgrade() {
                Some(inner) => inner.session().settings.poll_interval_ms,
                None => return,
            };
            tokio::time::sleep(Duration::from_millis(interval.max(50))).await;
            if interval == 0 {
                continue;
            }
            let Some(inner) = weak.upgrade() else { return };
            let models = inner.models.clone();
            let changed = tokio::task::spawn_blocking(move || {
                let stale: Vec<_> = models
                    .paths()
                    .into_iter()
                    .filter(|p| models.is_stale(p))
                    .collect();
                for path in &stale {
                    models.invalidate_under(path);
                }
                !stale.is_empty()
            })
            .await
            .unwrap_or(false);
            if changed {
                diagnostics::schedule_all(&inner);
            }
        }
    });
}
