use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jobwire_broker::{Broker, Consumer};
use jobwire_core::{Job, JobId, JobType, Retention};
use jobwire_store::{Claim, Finish, LeaseToken, Outcome, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tracing::Instrument;

use crate::failpoint::Armed;
use crate::{Failpoint, JobContext, JobError, Registry, RetryPolicy};

/// How long one pop waits; it is never cut short (a cut-short pop could
/// strand an ID), so this bounds how long shutdown waits for the popper.
const POP_BLOCK: Duration = Duration::from_secs(1);
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// How long a handler told to stop may take before it is aborted.
const STOP_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs run at the same time by this worker.
    pub concurrency: usize,
    /// On shutdown, how long running jobs may take to finish before they are
    /// handed back to the queue.
    pub grace: Duration,
    /// A running job's lease: renewed while the worker lives; once it runs
    /// out (the worker died), the job is queued again.
    pub lease: Duration,
    pub retry: RetryPolicy,
    /// A job `queued` this long whose ID the broker does not hold is enqueued again.
    pub redispatch_after: Duration,
    /// A test hook: fail once at this point.
    pub failpoint: Option<Failpoint>,
    /// How long finished jobs are kept, by final status (a job's own
    /// `retainFor` comes first).
    pub retention: Retention,
    /// How often expired jobs are looked for (a sweep that finds many goes
    /// on at once until it has deleted them all).
    pub sweep_every: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            grace: Duration::from_secs(30),
            lease: Duration::from_secs(3),
            retry: RetryPolicy::default(),
            redispatch_after: Duration::from_secs(3),
            failpoint: None,
            retention: Retention::default(),
            sweep_every: Duration::from_secs(10),
        }
    }
}

/// Most jobs one pop takes (and so one claim writes).
const MAX_TAKE: usize = 100;
/// Claims in flight at once: a second one starts while the first commits,
/// and slots freed meanwhile wait to go in a batch rather than one by one
/// (an embedded store runs writes one at a time, so tiny claims cost it dear).
const CLAIMS_IN_FLIGHT: usize = 2;

/// An attempt this worker tracks, from just before its claim until its
/// outcome is stored: its fencing token and its stop signal. Heartbeats renew
/// every tracked attempt, but only judge claimed ones (an attempt whose claim
/// is still in flight is not held yet).
pub(crate) struct Running {
    pub(crate) token: LeaseToken,
    pub(crate) stop: CancellationToken,
    pub(crate) claimed: bool,
}

/// A pool of job slots fed by one popper, with its lease keeper,
/// maintenance loop and retention sweeper.
#[derive(Clone)]
pub struct Worker {
    pub(crate) id: String,
    pub(crate) store: Store,
    pub(crate) broker: Broker,
    registry: Arc<Registry>,
    /// The job types the registry runs: the only ones this worker takes.
    pub(crate) types: Arc<Vec<JobType>>,
    pub(crate) config: WorkerConfig,
    running: Arc<Mutex<HashMap<JobId, Running>>>,
    /// Held while storing outcomes and while renewing leases: both write
    /// many of this worker's running rows, and run one at a time so that
    /// they never wait for each other's row locks (a deadlock otherwise).
    pub(crate) lease_writes: Arc<tokio::sync::Mutex<()>>,
    /// Popped IDs whose acknowledgement failed, sent again with the next
    /// one (or by the maintenance loop), so that no stale entry stays behind
    /// in the broker to hide a later loss of the same ID.
    unacked: Arc<Mutex<Vec<JobId>>>,
    pub(crate) failpoint: Arc<Armed>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("id", &self.id).finish()
    }
}

impl Worker {
    pub fn new(store: Store, broker: Broker, registry: Registry, config: WorkerConfig) -> Self {
        Self {
            failpoint: Arc::new(Armed::new(config.failpoint)),
            id: uuid_like_id(),
            store,
            broker,
            types: Arc::new(registry.types()),
            registry: Arc::new(registry),
            config,
            running: Arc::default(),
            lease_writes: Arc::default(),
            unacked: Arc::default(),
        }
    }

    pub(crate) fn running(&self) -> MutexGuard<'_, HashMap<JobId, Running>> {
        lock(&self.running)
    }

    /// Takes and runs jobs until `shutdown`; then takes no more, gives running
    /// jobs the grace period, hands back the ones still running, and returns.
    ///
    /// One popper takes as many IDs as there are free slots (up to 100) in one step and
    /// claims them in one write (while it pops again for slots freed
    /// meanwhile); each job then runs in its own task, and a
    /// completer stores the outcomes, a write per batch of whatever finished
    /// meanwhile (see [`Worker::complete`]).
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let jobs = TaskTracker::new();
        let hard_stop = CancellationToken::new();
        let background = CancellationToken::new();
        let keeper = tokio::spawn(self.clone().keep_leases(background.clone()));
        let maintenance = tokio::spawn(self.clone().maintain(background.clone()));
        let sweeper = tokio::spawn(self.clone().sweep_retention(background.clone()));
        let (outcomes, finished) = mpsc::channel(self.config.concurrency.max(1));
        let completer = tokio::spawn(self.clone().complete(finished));
        let mut consumer: Option<Consumer> = None;
        let types: Vec<&str> = self.types.iter().map(JobType::as_str).collect();
        tracing::info!(worker = %self.id, concurrency = self.config.concurrency, types = %types.join(","), "worker started");

        let claims = Arc::new(Semaphore::new(CLAIMS_IN_FLIGHT));
        while !shutdown.is_cancelled() {
            // Slots freed while the claims in flight are busy add up to the next batch.
            let claiming = tokio::select! {
                _ = shutdown.cancelled() => break,
                claiming = Arc::clone(&claims).acquire_owned() => match claiming {
                    Ok(claiming) => claiming,
                    Err(_closed) => break,
                },
            };
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_closed) => break,
                },
            };
            let mut free = vec![first];
            while free.len() < MAX_TAKE {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => free.push(slot),
                    Err(_) => break,
                }
            }
            let popper = match consumer.as_mut() {
                Some(popper) => popper,
                None => match self.open_consumer(&claims).await {
                    Ok(popper) => consumer.insert(popper),
                    Err(e) => {
                        tracing::warn!(error = %e, "worker cannot open its queue connection");
                        pause(&shutdown).await;
                        continue;
                    }
                },
            };
            match popper.pop_many(free.len()).await {
                Ok(ids) if ids.is_empty() => {}
                Ok(ids) if self.failpoint.fire(Failpoint::LosePopReply) => {
                    tracing::warn!(ids = ids.len(), "failpoint: losing a pop's reply");
                    consumer = None;
                }
                // Claimed in a task of its own, so that slots freed while
                // this claim is in flight are popped for at once.
                Ok(ids) => {
                    let (worker, tracker, hard_stop, outcomes) = (
                        self.clone(),
                        jobs.clone(),
                        hard_stop.clone(),
                        outcomes.clone(),
                    );
                    jobs.spawn(async move {
                        let claimed = worker.claim(ids).await;
                        drop(claiming);
                        for (claim, slot) in claimed.into_iter().zip(free) {
                            let (worker, hard_stop, outcomes) =
                                (worker.clone(), hard_stop.clone(), outcomes.clone());
                            tracker.spawn(async move {
                                worker.process(claim, slot, hard_stop, outcomes).await
                            });
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "popping jobs failed; reconnecting");
                    consumer = None;
                    pause(&shutdown).await;
                }
            }
        }

        jobs.close();
        tracing::info!(running = jobs.len(), grace = ?self.config.grace, "worker stopping");
        if tokio::time::timeout(self.config.grace, jobs.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = jobs.len(),
                "grace period over; handing running jobs back"
            );
            hard_stop.cancel();
            jobs.wait().await;
        }
        // The completer ends once it has stored every outcome handed to it.
        drop(outcomes);
        if let Err(e) = completer.await {
            tracing::error!(error = %e, "the worker's completer failed");
        }
        background.cancel();
        for task in [keeper, maintenance, sweeper] {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a worker background task failed");
            }
        }
        if let Err(e) = self.broker.forget_worker(&self.id).await {
            tracing::warn!(error = %e, "cannot deregister the worker");
        }
        tracing::info!("worker stopped");
    }

    /// Opens the connection the popper takes IDs on. First it hands back
    /// whatever this worker's processing list still holds: IDs of a pop whose
    /// reply was lost (the reason it reconnects) would otherwise sit there,
    /// acknowledged by no one and hidden from re-dispatch, for good. Those
    /// still queued in the store are queued again at once.
    ///
    /// It waits for the other claim in flight first (the caller holds one
    /// place), so that no ID it is about to acknowledge is handed back too.
    async fn open_consumer(
        &self,
        claims: &Semaphore,
    ) -> Result<Consumer, jobwire_broker::BrokerError> {
        let _settled = claims.acquire_many(CLAIMS_IN_FLIGHT as u32 - 1).await;
        let taken = self.broker.release_taken(&self.id).await?;
        // Handed back: an acknowledgement still owed for them is moot.
        lock(&self.unacked).retain(|id| !taken.contains(id));
        if !taken.is_empty() {
            match self.store.queued_among(&taken, Duration::ZERO).await {
                Ok(queued) if !queued.is_empty() => {
                    tracing::warn!(
                        jobs = queued.len(),
                        "re-queueing jobs popped but never taken"
                    );
                    // If this fails, re-dispatch queues them: the broker no longer holds them.
                    match self.broker.enqueue(&queued, &[]).await {
                        Ok(()) => metrics::counter!(jobwire_metrics::JOBS_REDISPATCHED)
                            .increment(queued.len() as u64),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot re-queue jobs popped but never taken")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot check jobs popped but never taken"),
            }
        }
        self.broker.consumer(&self.id, POP_BLOCK, &self.types).await
    }

    /// Keeps `ids`, whose acknowledgement failed, to acknowledge again.
    pub(crate) fn ack_later(&self, ids: Vec<JobId>) {
        lock(&self.unacked).extend(ids);
    }

    /// The IDs whose acknowledgement failed so far.
    pub(crate) fn take_unacked(&self) -> Vec<JobId> {
        std::mem::take(&mut *lock(&self.unacked))
    }

    /// Runs one claimed job and hands its outcome to the completer; `_slot`
    /// frees a place when dropped. A job stopped by the end of the grace
    /// period is handed back (queued again) at once instead.
    ///
    /// It all happens in the attempt's span, so every line logged about the
    /// attempt, the handler's own included, says which job, tenant and
    /// attempt it is about; the span is the attempt's one cost for logs
    /// (a successful attempt logs nothing at the default level).
    async fn process(
        &self,
        claim: Claim,
        slot: OwnedSemaphorePermit,
        hard_stop: CancellationToken,
        outcomes: mpsc::Sender<Finish>,
    ) {
        let span = tracing::info_span!(
            "attempt",
            job_id = %claim.job.id,
            tenant = %claim.job.tenant_id,
            attempt = claim.job.attempt,
            job_type = %claim.job.job_type,
        );
        self.attempt(claim, slot, hard_stop, outcomes)
            .instrument(span)
            .await
    }

    async fn attempt(
        &self,
        claim: Claim,
        _slot: OwnedSemaphorePermit,
        hard_stop: CancellationToken,
        outcomes: mpsc::Sender<Finish>,
    ) {
        let Claim { job, token } = claim;
        let stop = match self.running().get(&job.id) {
            Some(running) if running.token == token => running.stop.clone(),
            _ => CancellationToken::new(),
        };
        let running = RunningGauge::start();
        let started = Instant::now();
        let outcome = tokio::select! {
            // An outcome ready as the grace period ends is kept, not handed back.
            biased;
            outcome = self.run_handler(&job, &token, stop) => outcome,
            _ = hard_stop.cancelled() => {
                drop(running);
                self.hand_back(job.id, &token).await;
                return;
            }
        };
        jobwire_metrics::type_series(job.job_type.as_str())
            .duration()
            .record(started.elapsed().as_secs_f64());
        drop(running);
        let finish = Finish {
            id: job.id,
            lease: token,
            outcome,
        };
        if outcomes.send(finish).await.is_err() {
            // Only when the completer died; the lease runs out and the job runs again.
            tracing::error!("the completer is gone; the outcome is lost");
        }
    }

    /// Queues an unfinished attempt again, as a stopping worker does.
    async fn hand_back(&self, id: JobId, token: &LeaseToken) {
        match self.store.release(id, token).await {
            Ok(Some(job)) => {
                tracing::info!(
                    "the worker is stopping: attempt handed back, the job is queued again"
                );
                self.announce(&[job]).await;
            }
            Ok(None) => tracing::info!("the job was cancelled or taken over meanwhile"),
            Err(e) => tracing::error!(error = ?e, "cannot hand back the job"),
        }
        self.untrack(&[(id, token.clone())]);
    }

    async fn run_handler(&self, job: &Job, token: &LeaseToken, stop: CancellationToken) -> Outcome {
        let Some(handler) = self.registry.get(job.job_type.as_str()) else {
            return Outcome::Failed(format!(
                "no handler is registered for job type `{}`",
                job.job_type
            ));
        };
        let ctx = JobContext {
            job_id: job.id,
            tenant: job.tenant_id.clone(),
            job_type: job.job_type.clone(),
            attempt: job.attempt,
            lease: token.clone(),
            cancel: stop.clone(),
            store: self.store.clone(),
            broker: self.broker.clone(),
        };
        // Its own task, so that a panicking handler fails its job instead of
        // the worker; aborted when dropped, so an abandoned handler stops too.
        // In the attempt's span, so that the handler's own logs carry it.
        let mut run = AbortOnDropHandle::new(tokio::spawn(
            handler
                .call(ctx, job.payload.clone())
                .instrument(tracing::Span::current()),
        ));
        let deadline = async {
            match job.timeout_ms {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms.max(0) as u64)).await,
                None => std::future::pending().await,
            }
        };
        let early_stop = tokio::select! {
            result = &mut run => {
                return match result {
                    Ok(Ok(result)) => {
                        tracing::debug!("attempt succeeded");
                        Outcome::Succeeded(result)
                    }
                    Ok(Err(e)) => self.failed(job, e),
                    Err(e) => {
                        tracing::error!(error = %e, "the handler panicked");
                        self.failed(job, format!("handler panicked: {e}").into())
                    }
                };
            }
            _ = deadline => Some(format!("timed out after {} ms", job.timeout_ms.unwrap_or_default())),
            _ = stop.cancelled() => None,
        };
        // Told to stop: the handler sees it through its context, and gets a moment.
        stop.cancel();
        let _ = tokio::time::timeout(STOP_GRACE, &mut run).await;
        match early_stop {
            Some(timeout) => self.failed(job, timeout.into()),
            // Cancelled or lease lost: the store will refuse this outcome anyway.
            None => {
                tracing::info!("the job was cancelled or its lease lost: attempt stopped");
                Outcome::Failed("stopped: the job was cancelled or its lease lost".into())
            }
        }
    }

    /// What a failed attempt becomes (a retry while attempts are left, unless
    /// the error is fatal), said in the log.
    fn failed(&self, job: &Job, error: JobError) -> Outcome {
        if !error.is_retryable() {
            tracing::warn!(error = %error, "attempt failed; not retryable, the job failed");
            return Outcome::Failed(error.into_message());
        }
        let outcome = self.config.retry.after_failure(job, error.into_message());
        match &outcome {
            Outcome::Retry { error, run_at } => {
                tracing::warn!(
                    error = %error,
                    retry_at = %run_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "attempt failed; it runs again"
                )
            }
            Outcome::Failed(error) => {
                tracing::warn!(error = %error, "attempt failed; no attempts left, the job failed")
            }
            Outcome::Succeeded(_) => {}
        }
        outcome
    }

    /// Announces committed changes (queueing those now `queued`); a lost
    /// notification is logged, not fatal: the store holds the truth, clients
    /// resync from it, and re-dispatch queues what was not queued.
    pub(crate) async fn announce(&self, jobs: &[Job]) {
        if let Err(e) = self.broker.announce(jobs).await {
            tracing::warn!(jobs = jobs.len(), error = ?e, "cannot announce changes");
        }
    }

    /// Stops tracking these attempts (an attempt of the same job claimed
    /// since, under another token, stays tracked).
    pub(crate) fn untrack(&self, attempts: &[(JobId, LeaseToken)]) {
        let mut running = self.running();
        for (id, token) in attempts {
            if running.get(id).is_some_and(|r| &r.token == token) {
                running.remove(id);
            }
        }
    }
}

/// One attempt counted in `jobwire_jobs_running` while it lives: taken
/// when its handler starts, dropped once it has an outcome (or is handed
/// back), whichever way the attempt ends.
struct RunningGauge;

impl RunningGauge {
    fn start() -> Self {
        metrics::gauge!(jobwire_metrics::JOBS_RUNNING).increment(1.0);
        Self
    }
}

impl Drop for RunningGauge {
    fn drop(&mut self) {
        metrics::gauge!(jobwire_metrics::JOBS_RUNNING).decrement(1.0);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic between two plain collection calls; the data is intact.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(RETRY_DELAY) => {}
    }
}

/// A worker ID unique across processes and restarts.
fn uuid_like_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}
