use std::collections::HashSet;

use jobwire_broker::Outbox;
use jobwire_core::{Job, JobId};
use jobwire_store::{Claim, LeaseToken};
use tokio_util::sync::CancellationToken;

use crate::runner::Running;
use crate::{Failpoint, Worker};

impl Worker {
    /// Claims popped jobs in one write, then, in one round trip to the
    /// broker, announces them `running` and acknowledges every popped ID.
    ///
    /// Each attempt is tracked under a token made here before the claim is
    /// sent, so the lease keeper renews it even while the claim's answer is
    /// on its way. If the claim fails, nothing stays tracked: a claim that
    /// committed unseen is renewed at most by a heartbeat already under way,
    /// then its lease runs out and the job runs again.
    pub(crate) async fn claim(&self, popped: Vec<JobId>) -> Vec<Claim> {
        let mut attempts: Vec<(JobId, LeaseToken)> = Vec::with_capacity(popped.len());
        {
            let mut running = self.running();
            for id in &popped {
                // A job this worker already runs cannot be claimed again.
                if running.contains_key(id) {
                    continue;
                }
                let token = LeaseToken::new();
                let tracked = Running {
                    token: token.clone(),
                    stop: CancellationToken::new(),
                    claimed: false,
                };
                running.insert(*id, tracked);
                attempts.push((*id, token));
            }
        }
        let claims = match self
            .store
            .claim_many(&attempts, &self.id, self.config.lease)
            .await
        {
            Ok(claims) => claims,
            Err(e) => {
                tracing::error!(jobs = attempts.len(), error = ?e, "cannot claim jobs");
                Vec::new()
            }
        };
        let held: HashSet<&JobId> = claims.iter().map(|claim| &claim.job.id).collect();
        let unclaimed: Vec<(JobId, LeaseToken)> = attempts
            .iter()
            .filter(|(id, _)| !held.contains(id))
            .cloned()
            .collect();
        self.untrack(&unclaimed);
        {
            let mut running = self.running();
            for claim in &claims {
                if let Some(tracked) = running.get_mut(&claim.job.id) {
                    tracked.claimed = true;
                }
            }
        }
        if !unclaimed.is_empty() {
            tracing::debug!(
                jobs = unclaimed.len(),
                "popped jobs that are not queued; skipping"
            );
        }
        for claim in &claims {
            record_attempt(&claim.job);
        }
        // Claimed or not, the popped IDs have served: a lease (or the job's
        // state) protects each job from here, and re-dispatch covers a failed claim.
        let mut acks = popped;
        acks.extend(self.take_unacked());
        let mut outbox = Outbox::announcing(claims.iter().map(|claim| &claim.job))
            .acknowledging(&self.id, acks.clone());
        if !unclaimed.is_empty() {
            let ids: Vec<JobId> = unclaimed.iter().map(|(id, _)| *id).collect();
            outbox.released = self.store.not_running(&ids).await;
        }
        let sent = if self.failpoint.fire(Failpoint::FailFirstAck) {
            Err("failpoint: failing an acknowledgement".to_owned())
        } else {
            self.broker.send(outbox).await.map_err(|e| e.to_string())
        };
        if let Err(e) = sent {
            tracing::warn!(jobs = claims.len(), error = %e, "cannot announce claimed jobs");
            self.ack_later(acks);
        }
        claims
    }
}

/// Counts an attempt that starts, and, for a job's first, how long it
/// waited since it was created (not again for a failed job queued again by
/// hand, whose history of failed attempts says it ran before). Recorded
/// before the claim is announced, so that whoever sees the job `running`
/// finds it counted.
fn record_attempt(job: &Job) {
    jobwire_metrics::type_series(job.job_type.as_str())
        .attempts()
        .increment(1);
    if job.attempt == 1 && job.attempt_errors.is_empty() {
        let started = job.started_at.unwrap_or(job.updated_at);
        let waited = (started - job.created_at).to_std().unwrap_or_default();
        metrics::histogram!(jobwire_metrics::JOB_QUEUE_WAIT).record(waited.as_secs_f64());
    }
}
