use std::sync::Arc;
use std::time::Duration;

use jobwire_broker::{Broker, Consumer};
use jobwire_core::{Job, JobId, JobUpdate};
use jobwire_store::{Outcome, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::{JobContext, Registry};

/// How long one `BRPOP` waits; it is never cut short (a cut-short pop could
/// drop an ID), so this bounds how long shutdown waits for the popper.
const POP_BLOCK: Duration = Duration::from_secs(1);
const RETRY_DELAY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs run at the same time by this worker.
    pub concurrency: usize,
    /// On shutdown, how long running jobs may take to finish.
    pub grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            grace: Duration::from_secs(30),
        }
    }
}

/// A pool of job slots fed by one popper.
#[derive(Debug, Clone)]
pub struct Worker {
    store: Store,
    broker: Broker,
    registry: Arc<Registry>,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(store: Store, broker: Broker, registry: Registry, config: WorkerConfig) -> Self {
        Self {
            store,
            broker,
            registry: Arc::new(registry),
            config,
        }
    }

    /// Takes and runs jobs until `shutdown`; then takes no more, gives running
    /// jobs the grace period to finish, and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let jobs = TaskTracker::new();
        let hard_stop = CancellationToken::new();
        let mut consumer: Option<Consumer> = None;
        tracing::info!(concurrency = self.config.concurrency, "worker started");

        while !shutdown.is_cancelled() {
            let slot = tokio::select! {
                _ = shutdown.cancelled() => break,
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_closed) => break,
                },
            };
            let popper = match consumer.as_mut() {
                Some(popper) => popper,
                None => match self.broker.consumer(POP_BLOCK).await {
                    Ok(popper) => consumer.insert(popper),
                    Err(e) => {
                        tracing::warn!(error = %e, "worker cannot open its queue connection");
                        pause(&shutdown).await;
                        continue;
                    }
                },
            };
            match popper.pop().await {
                Ok(Some(id)) => {
                    let worker = self.clone();
                    let hard_stop = hard_stop.clone();
                    jobs.spawn(async move { worker.process(id, slot, hard_stop).await });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "popping a job failed; reconnecting");
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
                "grace period over; abandoning running jobs"
            );
            hard_stop.cancel();
            jobs.wait().await;
        }
        tracing::info!("worker stopped");
    }

    /// Claims, runs and finishes one job; `_slot` frees a place when dropped.
    async fn process(&self, id: JobId, _slot: OwnedSemaphorePermit, hard_stop: CancellationToken) {
        let job = match self.store.claim(id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                tracing::debug!(job = %id, "popped a job that is not queued; skipping");
                return;
            }
            Err(e) => {
                tracing::error!(job = %id, error = ?e, "cannot claim job");
                return;
            }
        };
        self.announce(&job).await;

        let outcome = tokio::select! {
            outcome = self.run_handler(&job) => outcome,
            _ = hard_stop.cancelled() => return,
        };
        match self.store.finish(id, outcome).await {
            Ok(Some(job)) => self.announce(&job).await,
            Ok(None) => tracing::warn!(job = %id, "job stopped running before it finished"),
            Err(e) => tracing::error!(job = %id, error = ?e, "cannot store the outcome of job"),
        }
    }

    async fn run_handler(&self, job: &Job) -> Outcome {
        let Some(handler) = self.registry.get(job.job_type.as_str()) else {
            return Outcome::Failed(format!(
                "no handler is registered for job type `{}`",
                job.job_type
            ));
        };
        let ctx = JobContext {
            job_id: job.id,
            tenant: job.tenant_id.clone(),
            attempt: job.attempt,
            store: self.store.clone(),
            broker: self.broker.clone(),
        };
        // Its own task, so that a panicking handler fails its job instead of the worker.
        // Aborted when dropped, so an abandoned job does not leave its handler running.
        let run = AbortOnDropHandle::new(tokio::spawn(handler.call(ctx, job.payload.clone())));
        match run.await {
            Ok(Ok(result)) => Outcome::Succeeded(result),
            Ok(Err(e)) => Outcome::Failed(e.0),
            Err(e) => Outcome::Failed(format!("handler panicked: {e}")),
        }
    }

    /// Publishes a committed change; a lost notification is logged, not fatal
    /// (Postgres still holds the truth).
    async fn announce(&self, job: &Job) {
        if let Err(e) = self.broker.publish(&JobUpdate::from(job).to_json()).await {
            tracing::warn!(job = %job.id, status = %job.status, error = ?e, "cannot publish update");
        }
    }
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(RETRY_DELAY) => {}
    }
}
