//! The broker: the fast path between the API and the workers. It queues job
//! IDs (a FIFO per priority, tenant and type: highest priority first, tenants
//! taking turns, each worker taking only its types) and carries every job update to
//! every API instance's subscriber. The store stays the truth: nothing here
//! holds a job's data.
//!
//! Two adapters sit behind [`Broker`]: Redis for production (many processes)
//! and an in-process one for the embedded single-process mode. Callers never
//! know which one they talk to.

mod error;
mod keys;
mod memory;
mod outbox;
mod redis_broker;

use std::time::Duration;

use jobwire_core::{Job, JobId, JobType, Priority, QueueEntry, Quota, Quotas, Refusal, TenantId};
use tokio_util::sync::CancellationToken;

pub use error::BrokerError;
pub use keys::Keys;
pub use memory::{MemoryBroker, MemoryConsumer};
pub use outbox::Outbox;
pub use redis_broker::{RedisBroker, RedisConsumer, Selection};

/// What the subscriber reports to its owner.
#[derive(Debug)]
pub enum SubscriberEvent {
    /// The subscription is (again) in place; updates from now on will arrive.
    Subscribed,
    /// The subscription was lost (updates may have been missed); it is being restored.
    Lost,
    /// One message from the channel, as published.
    Message(Vec<u8>),
}

/// The broker, whichever adapter holds it. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Broker {
    /// Boxed: the Redis handles are much larger than the in-process broker.
    Redis(Box<RedisBroker>),
    Memory(MemoryBroker),
}

/// Calls the same method on whichever adapter this is.
macro_rules! delegate {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            Broker::Redis(broker) => broker.$method($($arg),*).await,
            Broker::Memory(broker) => broker.$method($($arg),*).await,
        }
    };
}

impl Broker {
    /// Connects to Redis at `url`; every key and the channel get `prefix`.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, BrokerError> {
        Ok(Self::Redis(Box::new(
            RedisBroker::connect(url, prefix).await?,
        )))
    }

    /// A broker inside this process, for the embedded mode.
    pub fn memory() -> Self {
        Self::Memory(MemoryBroker::new())
    }

    /// What this broker is, for people: the Redis URL (password hidden) and
    /// the channel that carries every update (`redis-cli SUBSCRIBE <channel>`).
    pub fn describe(&self) -> String {
        match self {
            Broker::Redis(broker) => format!(
                "Redis {}, channel {}",
                broker.url(),
                broker.keys().channel()
            ),
            Broker::Memory(_) => "in-process (embedded)".to_owned(),
        }
    }

    /// Whether the broker answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), BrokerError> {
        delegate!(self.ping())
    }

    /// Sends an [`Outbox`] in one round trip.
    pub async fn send(&self, outbox: Outbox) -> Result<(), BrokerError> {
        if outbox.is_empty() {
            return Ok(());
        }
        delegate!(self.send(outbox))
    }

    /// A test hook: [`Broker::send`] cut short right after it marks IDs
    /// pending, as a process dying mid-send would leave it. The in-process
    /// broker has no connection to cut, so it sends nothing.
    pub async fn send_cut_short(&self, outbox: Outbox) -> Result<(), BrokerError> {
        match self {
            Broker::Redis(broker) => broker.send_cut_short(outbox).await,
            Broker::Memory(_) => Ok(()),
        }
    }

    /// Announces committed changes of `jobs` (see [`Outbox::announcing`]).
    pub async fn announce(&self, jobs: &[Job]) -> Result<(), BrokerError> {
        self.send(Outbox::announcing(jobs)).await
    }

    /// Queues IDs (and publishes `updates` first), as re-dispatch and
    /// recovery do for jobs already announced.
    pub async fn enqueue(
        &self,
        jobs: &[QueueEntry],
        updates: &[String],
    ) -> Result<(), BrokerError> {
        self.send(Outbox {
            updates: updates.to_vec(),
            queue: jobs.to_vec(),
            ..Outbox::default()
        })
        .await
    }

    /// Publishes one update (JSON text) to every subscriber.
    pub async fn publish(&self, update: &str) -> Result<(), BrokerError> {
        self.send(Outbox {
            updates: vec![update.to_owned()],
            ..Outbox::default()
        })
        .await
    }

    /// How many IDs wait, per job type and priority (only those with any).
    pub async fn queue_depths(&self) -> Result<Vec<QueueDepth>, BrokerError> {
        delegate!(self.queue_depths())
    }

    /// How many IDs of every type wait at `priority`.
    pub async fn queue_len(&self, priority: Priority) -> Result<usize, BrokerError> {
        Ok(self
            .queue_depths()
            .await?
            .iter()
            .filter(|depth| depth.priority == priority)
            .map(|depth| depth.jobs)
            .sum())
    }

    /// A consumer for `worker`, taking jobs of `types` only, whose
    /// [`Consumer::pop`] waits at most `block`.
    pub async fn consumer(
        &self,
        worker: &str,
        block: Duration,
        types: &[JobType],
    ) -> Result<Consumer, BrokerError> {
        match self {
            Broker::Redis(broker) => Ok(Consumer::Redis(Box::new(
                broker.consumer(worker, block, types).await?,
            ))),
            Broker::Memory(broker) => Ok(Consumer::Memory(broker.consumer(block, types))),
        }
    }

    /// Takes up to `max` IDs of `selection` for `worker` without waiting,
    /// as [`Consumer::pop_many`] does (held until acknowledged); `turn`
    /// picks which type goes first (pass a counter).
    pub async fn take(
        &self,
        worker: &str,
        selection: &Selection,
        max: usize,
        turn: usize,
    ) -> Result<Vec<JobId>, BrokerError> {
        let max = max.clamp(1, MAX_POP);
        match self {
            Broker::Redis(broker) => broker.take(worker, selection, max, turn).await,
            Broker::Memory(broker) => Ok(broker.take(selection, max, turn)),
        }
    }

    /// Checks `jobs` new jobs of `tenant` against its `quota` (queued jobs,
    /// create rate) and takes them from its token bucket if admitted; the
    /// refusal otherwise. Concurrent creates are checked one by one, but a
    /// queued count read by one may miss jobs another is committing: the
    /// queue cap may be passed by what is in flight at once.
    pub async fn admit(
        &self,
        tenant: &TenantId,
        jobs: u64,
        quota: &Quota,
    ) -> Result<Option<Refusal>, BrokerError> {
        delegate!(self.admit(tenant, jobs, quota))
    }

    /// Sets the running caps and weights every pop obeys, for every process
    /// using this broker, replacing what was set before.
    pub async fn publish_quotas(&self, quotas: &Quotas) -> Result<(), BrokerError> {
        delegate!(self.publish_quotas(quotas))
    }

    /// Running slots taken `age` ago or earlier: a sweep checks each against
    /// the store, since a slot whose release was lost (the broker down when
    /// its job ended) would hold its tenant back for ever.
    pub async fn stale_slots(&self, age: Duration) -> Result<Vec<(TenantId, JobId)>, BrokerError> {
        delegate!(self.stale_slots(age))
    }

    /// Frees the running slots in `release`; those in `keep` (still running)
    /// count as taken now, so the sweep looks at them again only after `age`.
    pub async fn settle_slots(
        &self,
        keep: &[(TenantId, JobId)],
        release: &[(TenantId, JobId)],
    ) -> Result<(), BrokerError> {
        delegate!(self.settle_slots(keep, release))
    }

    /// `worker` is done with an ID it popped: it claimed the job (whose lease
    /// now protects it) or found nothing to claim.
    pub async fn ack(&self, worker: &str, id: JobId) -> Result<(), BrokerError> {
        self.send(Outbox::default().acknowledging(worker, vec![id]))
            .await
    }

    /// Those of `ids` the broker does not hold (neither queued nor being taken):
    /// lost, or never enqueued, and due for re-dispatch.
    pub async fn missing(&self, ids: &[JobId]) -> Result<Vec<JobId>, BrokerError> {
        delegate!(self.missing(ids))
    }

    /// Marks `worker`, which runs `types`, alive for `ttl`; renew well
    /// before it runs out.
    pub async fn worker_alive(
        &self,
        worker: &str,
        ttl: Duration,
        types: &[JobType],
    ) -> Result<(), BrokerError> {
        delegate!(self.worker_alive(worker, ttl, types))
    }

    /// How many live workers run each job type (types no live worker runs
    /// are left out).
    pub async fn live_types(&self) -> Result<Vec<(String, usize)>, BrokerError> {
        delegate!(self.live_types())
    }

    /// Empties the one-list-per-priority queues an older jobwire left, so
    /// that re-dispatch queues their jobs again; returns how many IDs.
    pub async fn drop_legacy_queues(&self) -> Result<usize, BrokerError> {
        match self {
            Broker::Redis(broker) => broker.drop_legacy_queues().await,
            Broker::Memory(_) => Ok(0),
        }
    }

    /// Releases what dead workers had popped but not acknowledged, so that
    /// re-dispatch finds those jobs. Returns how many IDs.
    pub async fn reap_dead_workers(&self) -> Result<usize, BrokerError> {
        delegate!(self.reap_dead_workers())
    }

    /// A worker that stops says so, releasing anything it still holds.
    pub async fn forget_worker(&self, worker: &str) -> Result<usize, BrokerError> {
        delegate!(self.forget_worker(worker))
    }

    /// Takes back the IDs `worker` popped and has not acknowledged (a lost
    /// pop reply leaves some), and returns them: the broker no longer holds
    /// them, so re-dispatch restores those still queued.
    pub async fn release_taken(&self, worker: &str) -> Result<Vec<JobId>, BrokerError> {
        delegate!(self.release_taken(worker))
    }

    /// Receives every published update until `cancel`, restoring the
    /// subscription whenever it is lost, and hands each event to `on_event`.
    pub async fn run_subscriber(
        &self,
        cancel: CancellationToken,
        on_event: impl FnMut(SubscriberEvent),
    ) {
        delegate!(self.run_subscriber(cancel, on_event))
    }
}

/// Takes job IDs off the queues, for one worker.
pub enum Consumer {
    /// Boxed: a Redis connection is much larger than the in-process handle.
    Redis(Box<RedisConsumer>),
    Memory(MemoryConsumer),
}

impl Consumer {
    /// Up to `max` IDs of the consumer's types, highest priority first,
    /// tenants taking turns, each tenant's oldest first, taken in one step; waits up to the block time when every
    /// queue is empty, and returns none if they stay empty. The IDs stay
    /// held for the worker until acknowledged. Do not cut a pop short.
    pub async fn pop_many(&mut self, max: usize) -> Result<Vec<JobId>, BrokerError> {
        let max = max.clamp(1, MAX_POP);
        match self {
            Consumer::Redis(consumer) => consumer.pop_many(max).await,
            Consumer::Memory(consumer) => Ok(consumer.pop_many(max).await),
        }
    }

    /// [`Consumer::pop_many`] for one ID.
    pub async fn pop(&mut self) -> Result<Option<JobId>, BrokerError> {
        Ok(self.pop_many(1).await?.pop())
    }
}

/// Most IDs one pop takes.
pub const MAX_POP: usize = 1000;

/// How many IDs wait for one job type at one priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub job_type: String,
    pub priority: Priority,
    pub jobs: usize,
}

/// Counts, per type, the workers whose lists of types (one type per line)
/// name it.
pub(crate) fn count_types<'a>(workers: impl Iterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for types in workers {
        for job_type in types.lines().filter(|t| !t.is_empty()) {
            *counts.entry(job_type).or_default() += 1;
        }
    }
    counts.into_iter().map(|(t, n)| (t.to_owned(), n)).collect()
}
