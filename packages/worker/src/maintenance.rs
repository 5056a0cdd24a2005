use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jobwire_broker::Outbox;
use jobwire_core::{JobId, Status, TenantId};
use tokio_util::sync::CancellationToken;

use crate::Worker;

const TICK: Duration = Duration::from_millis(250);
/// Dead workers are looked for every this many ticks.
const DEAD_WORKER_TICKS: u64 = 4;
/// Lost IDs are looked for every this many ticks; and on every tick while a
/// sweep that is finding lost IDs has more to check.
const REDISPATCH_TICKS: u64 = 8;
/// Running slots are checked against the store every this many ticks.
const SLOT_TICKS: u64 = 40;
/// A running slot older than this whose job is not running lost its
/// release: a pop's claim commits well within it.
const SLOT_AGE: Duration = Duration::from_secs(10);
/// Queued jobs checked against the broker per step. A sweep finding lost IDs
/// (Redis restarted empty) goes on every tick, up to 20,000 jobs a second,
/// above the rate workers take them, so re-dispatch is not capped below
/// throughput; one finding none (a backlog Redis still holds) checks 2,500 a
/// second, so that a long backlog costs Postgres little.
const SWEEP_BATCH: u32 = 5000;
/// Rows one statement of the retention sweep deletes at most: each commits
/// in a few milliseconds, so creates and finishes never wait long behind it.
const RETENTION_BATCH: u32 = 1000;

impl Worker {
    /// Only keeps the queue honest (see below) until `stop`, running no
    /// jobs: for an API serving remote workers with no built-in worker
    /// beside it, so that their lapsed leases, due retries and lost IDs are
    /// still seen to. Deletes nothing (the workers' retention settings are
    /// theirs to apply).
    pub async fn housekeep(self, stop: CancellationToken) {
        self.maintain(stop).await
    }

    /// Keeps the queue honest until `stop`: jobs whose lease lapsed go back
    /// to the queue (or fail on their last attempt), due retries and delayed
    /// jobs are queued, and queued jobs whose ID the broker lost are
    /// enqueued again. Every worker runs it; each step is a conditional
    /// update, so running it in many places at once is safe.
    pub(crate) async fn maintain(self, stop: CancellationToken) {
        match self.broker.drop_legacy_queues().await {
            Ok(0) => {}
            Ok(ids) => tracing::warn!(
                ids,
                "emptied the queues of an older jobwire; re-dispatch queues their jobs again"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot look for the queues of an older jobwire"),
        }
        let mut tick = tokio::time::interval(TICK);
        let mut sweep = Sweep::default();
        for n in 0u64.. {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.store.reap_expired().await {
                Ok(jobs) if !jobs.is_empty() => {
                    for job in &jobs {
                        tracing::warn!(
                            job_id = %job.id,
                            tenant = %job.tenant_id,
                            attempt = job.attempt,
                            status = %job.status,
                            "the attempt's lease expired (its worker is gone or stalled)"
                        );
                    }
                    metrics::counter!(jobwire_metrics::LEASE_EXPIRIES).increment(jobs.len() as u64);
                    // Queued again (a retry) or failed on its last attempt.
                    crate::complete::record_outcomes(&jobs);
                    self.announce(&jobs).await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot reap expired leases"),
            }
            match self.store.promote_due().await {
                Ok(jobs) if !jobs.is_empty() => {
                    metrics::counter!(jobwire_metrics::JOBS_PROMOTED).increment(jobs.len() as u64);
                    self.announce(&jobs).await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot queue due jobs"),
            }
            self.ack_again().await;
            if n % DEAD_WORKER_TICKS == 0 {
                match self.broker.reap_dead_workers().await {
                    Ok(0) => {}
                    Ok(ids) => tracing::warn!(ids, "released the IDs of dead workers"),
                    Err(e) => tracing::warn!(error = %e, "cannot look for dead workers"),
                }
            }
            if n % SLOT_TICKS == 0 {
                self.settle_slots().await;
            }
            if (sweep.finding && sweep.after.is_some()) || n % REDISPATCH_TICKS == 0 {
                sweep = self.redispatch(sweep.after).await;
            }
        }
    }

    /// Frees the running slots (see `Quota::max_running`) whose job is not
    /// running, which lost their release: announced while the broker was
    /// down, or popped and then not claimed (cancelled meanwhile).
    async fn settle_slots(&self) {
        let stale = match self.broker.stale_slots(SLOT_AGE).await {
            Ok(stale) => stale,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for stale running slots");
                return;
            }
        };
        let mut tenants: HashMap<&TenantId, Vec<JobId>> = HashMap::new();
        for (tenant, id) in &stale {
            tenants.entry(tenant).or_default().push(*id);
        }
        let (mut keep, mut release) = (Vec::new(), Vec::new());
        for (tenant, ids) in tenants {
            let running: HashSet<JobId> = match self.store.get_many(tenant, &ids).await {
                Ok(jobs) => jobs
                    .iter()
                    .filter(|job| job.status == Status::Running)
                    .map(|job| job.id)
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check running slots against the store");
                    return;
                }
            };
            for id in ids {
                let slot = (tenant.clone(), id);
                if running.contains(&id) {
                    keep.push(slot);
                } else {
                    release.push(slot);
                }
            }
        }
        if !release.is_empty() {
            tracing::warn!(
                slots = release.len(),
                "freed running slots whose jobs no longer run"
            );
        }
        if let Err(e) = self.broker.settle_slots(&keep, &release).await {
            tracing::warn!(error = %e, "cannot free stale running slots");
        }
    }

    /// Acknowledges again the popped IDs whose acknowledgement failed, in
    /// case no pop comes along to carry them.
    async fn ack_again(&self) {
        let unacked = self.take_unacked();
        if unacked.is_empty() {
            return;
        }
        let outbox = Outbox::default().acknowledging(&self.id, unacked.clone());
        if let Err(e) = self.broker.send(outbox).await {
            tracing::warn!(ids = unacked.len(), error = %e, "cannot acknowledge popped IDs");
            self.ack_later(unacked);
        }
    }

    /// Enqueues again the queued jobs (older than `redispatch_after`) whose ID
    /// the broker does not hold. Walks the queued jobs in ID order a batch per
    /// call, from `after` (`None`: from the start), and says where the next
    /// call goes on.
    async fn redispatch(&self, after: Option<JobId>) -> Sweep {
        let candidates = match self
            .store
            .queued_older_than(self.config.redispatch_after, after, SWEEP_BATCH)
            .await
        {
            Ok(candidates) => candidates,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list queued jobs for re-dispatch");
                return Sweep {
                    after,
                    finding: false,
                };
            }
        };
        let next = if candidates.len() < SWEEP_BATCH as usize {
            None
        } else {
            candidates.last().map(|entry| entry.id)
        };
        let ids: Vec<JobId> = candidates.iter().map(|entry| entry.id).collect();
        let lost = match self.broker.missing(&ids).await {
            // A job claimed while the broker was asked had its ID
            // acknowledged: only those still queued are lost.
            Ok(missing) => {
                self.store
                    .queued_among(&missing, self.config.redispatch_after)
                    .await
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check queued jobs against the broker");
                Ok(Vec::new())
            }
        };
        let finding = match lost {
            Ok(lost) if !lost.is_empty() => {
                tracing::warn!(
                    jobs = lost.len(),
                    "queued jobs missing from the broker; enqueueing again"
                );
                match self.broker.enqueue(&lost, &[]).await {
                    Ok(()) => metrics::counter!(jobwire_metrics::JOBS_REDISPATCHED)
                        .increment(lost.len() as u64),
                    Err(e) => tracing::warn!(error = %e, "cannot re-dispatch"),
                }
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check queued jobs again for re-dispatch");
                false
            }
        };
        Sweep {
            after: next,
            finding,
        }
    }
}

impl Worker {
    /// Deletes expired finished jobs every `sweep_every` until `stop`, a
    /// batch per statement, going on at once while statements delete whole
    /// batches; then updates the table's size gauges. Every worker runs it,
    /// but on Postgres only one works at a time: the others find the sweep
    /// taken and wait for their next turn (see [`Store::sweep_expired`]).
    /// Nothing is left to clean in the broker: a finished job's ID is in no
    /// queue (a cancelled job's queued ID is popped and acknowledged as
    /// unclaimable like any other).
    ///
    /// [`Store::sweep_expired`]: jobwire_store::Store::sweep_expired
    pub(crate) async fn sweep_retention(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut deleted = 0;
            while !stop.is_cancelled() {
                match self
                    .store
                    .sweep_expired(&self.config.retention, RETENTION_BATCH)
                    .await
                {
                    Ok(swept) => {
                        for (status, jobs) in [
                            (Status::Succeeded, swept.succeeded),
                            (Status::Failed, swept.failed),
                            (Status::Cancelled, swept.cancelled),
                        ] {
                            metrics::counter!(jobwire_metrics::RETENTION_DELETED, "status" => status.as_str())
                                .increment(jobs);
                        }
                        deleted += swept.total();
                        if swept.busy || !swept.more {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot delete expired jobs");
                        break;
                    }
                }
            }
            if deleted > 0 {
                tracing::info!(jobs = deleted, "deleted expired jobs");
            }
            match self.store.table_size().await {
                Ok(size) => {
                    metrics::gauge!(jobwire_metrics::JOBS_TABLE_ROWS).set(size.rows as f64);
                    metrics::gauge!(jobwire_metrics::JOBS_TABLE_BYTES).set(size.bytes as f64);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the size of the jobs table"),
            }
        }
    }
}

/// Where a re-dispatch sweep stands.
#[derive(Debug, Default)]
struct Sweep {
    /// Where the next step goes on; `None`: from the start.
    after: Option<JobId>,
    /// Whether the last step found lost IDs.
    finding: bool,
}
