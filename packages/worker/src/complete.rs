use jobwire_core::{Job, JobId};
use jobwire_store::{Finish, LeaseToken};
use tokio::sync::mpsc;

use crate::{Failpoint, Worker};

/// Most outcomes stored in one write.
const MAX_BATCH: usize = 1000;

impl Worker {
    /// Stores outcomes until every sender is gone: waits for one, takes every
    /// other one already waiting, and writes them all in one statement, then
    /// announces the changes in one round trip. Nothing waits for a timer: a
    /// lone outcome goes at once, and under load whatever finished while the
    /// previous write was in flight goes in the next (group commit).
    pub(crate) async fn complete(self, mut finished: mpsc::Receiver<Finish>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while finished.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let attempts: Vec<(JobId, LeaseToken)> = batch
                .iter()
                .map(|finish| (finish.id, finish.lease.clone()))
                .collect();
            let stored = {
                let _writing = self.lease_writes.lock().await;
                self.store.finish_many(std::mem::take(&mut batch)).await
            };
            // Stored (or failed for good): from here a pop of the same ID is
            // a new attempt's, not one this worker still runs.
            self.untrack(&attempts);
            if stored.is_ok() && self.failpoint.fire(Failpoint::ExitAfterFinish) {
                tracing::warn!("failpoint: exiting after outcomes committed, before publishing");
                std::process::exit(86);
            }
            match stored {
                Ok(jobs) => {
                    let dropped = attempts.len() - jobs.len();
                    if dropped > 0 {
                        tracing::info!(
                            jobs = dropped,
                            "jobs were cancelled or taken over; their outcomes are dropped"
                        );
                    }
                    record_outcomes(&jobs);
                    self.announce(&jobs).await;
                }
                // The leases run out and the jobs run again.
                Err(e) => {
                    tracing::error!(jobs = attempts.len(), error = ?e, "cannot store outcomes")
                }
            }
        }
    }
}

/// Counts stored outcomes: a job that ended (succeeded or failed for good)
/// by its final status, a failed attempt with attempts left as a retry.
/// Recorded before they are announced, so that whoever sees the change finds
/// it counted.
pub(crate) fn record_outcomes(jobs: &[Job]) {
    for job in jobs {
        jobwire_metrics::type_series(job.job_type.as_str()).ended(job.status.as_str());
    }
}
