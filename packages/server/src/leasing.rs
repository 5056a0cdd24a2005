//! Taking jobs for remote workers: this API instance pops IDs on their
//! behalf under one broker identity of its own (so that IDs it popped and
//! never claimed are released if it dies, as a worker's are), and wakes the
//! long polls waiting for a type when a job of that type is queued.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dashmap::DashMap;
use jobwire_broker::{Broker, Outbox, Selection};
use jobwire_core::{JobId, JobType};
use jobwire_store::{Claim, LeaseToken, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long this instance's broker identity lives unless renewed.
const ALIVE_TTL: Duration = Duration::from_secs(10);
/// How often a waiting long poll looks again even when nothing woke it:
/// re-dispatch queues IDs without announcing them.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Leasing {
    /// The broker identity whose processing list holds what this instance
    /// popped and has not claimed yet.
    id: String,
    /// Per job type, the long polls waiting for one.
    waiting: DashMap<String, Arc<Notify>>,
    /// Popped IDs whose acknowledgement failed, sent with the next one.
    unacked: Mutex<Vec<JobId>>,
    /// Which type a take looks at first (types take turns).
    turn: std::sync::atomic::AtomicUsize,
}

impl Leasing {
    pub(crate) fn new() -> Self {
        Self {
            id: format!("api-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            waiting: DashMap::new(),
            unacked: Mutex::default(),
            turn: Default::default(),
        }
    }

    /// What a long poll for `types` waits on; take it before looking, so a
    /// job queued in between still wakes the poll.
    pub(crate) fn waiters(&self, types: &[JobType]) -> Vec<Arc<Notify>> {
        types
            .iter()
            .map(|t| {
                Arc::clone(
                    &self
                        .waiting
                        .entry(t.as_str().to_owned())
                        .or_insert_with(|| Arc::new(Notify::new())),
                )
            })
            .collect()
    }

    /// A job of `job_type` was queued: every long poll for it looks again.
    pub(crate) fn wake(&self, job_type: &str) {
        if let Some(waiting) = self.waiting.get(job_type) {
            waiting.notify_waiters();
        }
    }

    fn unacked(&self) -> MutexGuard<'_, Vec<JobId>> {
        // A poisoned lock means a panic between two plain vector calls; the data is intact.
        self.unacked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes up to `max` jobs of `selection` at once and claims them for
    /// `owner` under fresh lease tokens, exactly as a built-in worker claims:
    /// then announces them `running` and acknowledges every popped ID in one
    /// round trip. IDs whose jobs are no longer queued (cancelled meanwhile)
    /// are acknowledged and skipped.
    pub(crate) async fn take(
        &self,
        store: &Store,
        broker: &Broker,
        selection: &Selection,
        owner: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, crate::ApiError> {
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let popped = broker.take(&self.id, selection, max, turn).await?;
        if popped.is_empty() {
            return Ok(Vec::new());
        }
        let attempts: Vec<(JobId, LeaseToken)> =
            popped.iter().map(|id| (*id, LeaseToken::new())).collect();
        // Claimed or not, the popped IDs have served: a lease (or the job's
        // state) protects each job from here, and re-dispatch covers a failed claim.
        let claimed = store.claim_many(&attempts, owner, lease).await;
        for claim in claimed.iter().flatten() {
            jobwire_metrics::type_series(claim.job.job_type.as_str())
                .attempts()
                .increment(1);
        }
        let popped_ids = popped.clone();
        let mut acks = popped;
        acks.extend(std::mem::take(&mut *self.unacked()));
        let mut outbox = Outbox::announcing(claimed.iter().flatten().map(|claim| &claim.job))
            .acknowledging(&self.id, acks.clone());
        let held: std::collections::HashSet<JobId> =
            claimed.iter().flatten().map(|claim| claim.job.id).collect();
        let unclaimed: Vec<JobId> = popped_ids
            .into_iter()
            .filter(|id| !held.contains(id))
            .collect();
        if !unclaimed.is_empty() {
            outbox.released = store.not_running(&unclaimed).await;
        }
        if let Err(e) = broker.send(outbox).await {
            tracing::warn!(error = %e, "cannot announce jobs leased to a remote worker");
            self.unacked().extend(acks);
        }
        Ok(claimed?)
    }

    /// Keeps this instance's broker identity alive until `shutdown`, then
    /// releases it (with anything it still holds).
    pub(crate) async fn keep_alive(&self, broker: Broker, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(ALIVE_TTL / 4);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = broker.worker_alive(&self.id, ALIVE_TTL, &[]).await {
                tracing::warn!(error = %e, "cannot mark the API's lease taker alive");
            }
        }
        if let Err(e) = broker.forget_worker(&self.id).await {
            tracing::warn!(error = %e, "cannot release the API's lease taker");
        }
    }
}
