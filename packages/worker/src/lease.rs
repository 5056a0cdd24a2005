use std::collections::HashSet;
use std::time::Duration;

use jobwire_core::JobId;
use jobwire_store::LeaseToken;
use tokio_util::sync::CancellationToken;

use crate::Worker;

impl Worker {
    /// How often leases are renewed: often enough that a cancelled job's
    /// worker hears of it within a second, and a lease never lapses while
    /// its worker lives.
    fn heartbeat_interval(&self) -> Duration {
        (self.config.lease / 8).clamp(Duration::from_millis(50), Duration::from_millis(500))
    }

    /// Renews this worker's leases until `stop`. A job the store no longer
    /// leases to this worker (cancelled, or taken over after the lease
    /// lapsed) is told to stop at once.
    pub(crate) async fn keep_leases(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.heartbeat_interval());
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Every tracked attempt is renewed, but only those claimed before
            // the renewal are judged by its answer.
            let (jobs, judged): (Vec<JobId>, Vec<(JobId, LeaseToken)>) = {
                let running = self.running();
                let jobs = running.keys().copied().collect();
                let judged = running
                    .iter()
                    .filter(|(_, running)| running.claimed)
                    .map(|(id, running)| (*id, running.token.clone()))
                    .collect();
                (jobs, judged)
            };
            // Taking turns with the completer, but never waiting long for it:
            // a finish stuck on a busy pool must not let every lease lapse.
            // Renewing beside it risks a deadlock, which Postgres breaks in a
            // second by failing one of the two; a lapsed lease would cost more.
            let writing =
                tokio::time::timeout(self.heartbeat_interval(), self.lease_writes.lock()).await;
            let renewed = self
                .store
                .heartbeat(&self.id, &jobs, self.config.lease)
                .await;
            drop(writing);
            match renewed {
                Ok(held) => {
                    let held: HashSet<(JobId, LeaseToken)> = held.into_iter().collect();
                    let running = self.running();
                    for lost in judged.iter().filter(|entry| !held.contains(entry)) {
                        // The attempt says so in its own log, with its span.
                        if let Some(attempt) = running.get(&lost.0).filter(|r| r.token == lost.1) {
                            attempt.stop.cancel();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew leases"),
            }
            if let Err(e) = self
                .broker
                .worker_alive(&self.id, self.config.lease, &self.types)
                .await
            {
                tracing::warn!(error = %e, "cannot mark the worker alive");
            }
        }
    }
}
