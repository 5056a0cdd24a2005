//! The in-process broker of the embedded mode: the same queues as in Redis
//! (a FIFO per priority, tenant and type; tenants taking turns) and an
//! update channel inside the one `jobwire` process. What it holds is lost
//! with the process; the store is the truth, and startup re-queues from it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jobwire_core::{JobId, JobType, Priority, QueueEntry, TenantId};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::{BrokerError, Outbox, QueueDepth, Selection, SubscriberEvent};

/// Updates buffered for a subscriber that is momentarily behind.
const UPDATE_BUFFER: usize = 65_536;

#[derive(Clone)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    queued: Notify,
    updates: broadcast::Sender<Arc<str>>,
}

#[derive(Default)]
struct State {
    /// Per priority (in `Priority::ALL` order) and job type, the tenants' queues.
    lanes: [HashMap<String, Lane>; 4],
    /// How many copies of each ID are queued or popped and not acknowledged.
    pending: HashMap<JobId, usize>,
    /// The job types each live worker runs, until when it counts as alive.
    workers: HashMap<String, (Vec<JobType>, Instant)>,
}

/// One priority and type: a FIFO per tenant, and the tenants with IDs
/// queued in turn order (next first).
#[derive(Default)]
struct Lane {
    queues: HashMap<TenantId, VecDeque<JobId>>,
    turns: VecDeque<TenantId>,
}

impl Lane {
    fn push(&mut self, entry: &QueueEntry) {
        let queue = self.queues.entry(entry.tenant.clone()).or_default();
        if queue.is_empty() {
            // Arriving tenants go first, as in Redis (score 0).
            self.turns.push_front(entry.tenant.clone());
        }
        queue.push_back(entry.id);
    }

    /// Takes `share` IDs of `tenant`'s, oldest first; the tenant then goes
    /// to the back of the turns, or leaves them once its queue is empty.
    fn serve(&mut self, tenant: &TenantId, share: usize, taken: &mut Vec<JobId>) {
        let Some(queue) = self.queues.get_mut(tenant) else {
            return;
        };
        let n = share.min(queue.len());
        taken.extend(queue.drain(..n));
        let empty = queue.is_empty();
        self.turns.retain(|t| t != tenant);
        if empty {
            self.queues.remove(tenant);
        } else {
            self.turns.push_back(tenant.clone());
        }
    }

    fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryBroker")
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

fn index(priority: Priority) -> usize {
    Priority::ALL
        .iter()
        .position(|p| *p == priority)
        .unwrap_or_default()
}

impl MemoryBroker {
    pub fn new() -> Self {
        let (updates, _) = broadcast::channel(UPDATE_BUFFER);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::default(),
                queued: Notify::new(),
                updates,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic between two plain collection calls; the state is intact.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) async fn ping(&self) -> Result<(), BrokerError> {
        Ok(())
    }

    pub(crate) async fn send(&self, outbox: Outbox) -> Result<(), BrokerError> {
        for update in &outbox.updates {
            self.publish_text(update);
        }
        {
            let mut state = self.state();
            for entry in &outbox.queue {
                state.lanes[index(entry.priority)]
                    .entry(entry.job_type.as_str().to_owned())
                    .or_default()
                    .push(entry);
                *state.pending.entry(entry.id).or_default() += 1;
            }
            for id in outbox.acks.iter().flat_map(|(_, ids)| ids) {
                if let Some(count) = state.pending.get_mut(id) {
                    *count -= 1;
                    if *count == 0 {
                        state.pending.remove(id);
                    }
                }
            }
        }
        if !outbox.queue.is_empty() {
            self.inner.queued.notify_waiters();
        }
        Ok(())
    }

    fn publish_text(&self, update: &str) {
        // No subscriber yet is not an error: nobody is listening.
        let _ = self.inner.updates.send(Arc::from(update));
    }

    pub(crate) async fn queue_depths(&self) -> Result<Vec<QueueDepth>, BrokerError> {
        let state = self.state();
        let mut depths = Vec::new();
        for (priority, lanes) in Priority::ALL.into_iter().zip(&state.lanes) {
            for (job_type, lane) in lanes {
                let jobs = lane.len();
                if jobs > 0 {
                    depths.push(QueueDepth {
                        job_type: job_type.clone(),
                        priority,
                        jobs,
                    });
                }
            }
        }
        Ok(depths)
    }

    pub(crate) async fn missing(&self, ids: &[JobId]) -> Result<Vec<JobId>, BrokerError> {
        let state = self.state();
        Ok(ids
            .iter()
            .filter(|id| !state.pending.contains_key(id))
            .copied()
            .collect())
    }

    /// Kept for [`MemoryBroker::live_types`] only: workers share this
    /// process, so none can die holding IDs.
    pub(crate) async fn worker_alive(
        &self,
        worker: &str,
        ttl: Duration,
        types: &[JobType],
    ) -> Result<(), BrokerError> {
        self.state()
            .workers
            .insert(worker.to_owned(), (types.to_vec(), Instant::now() + ttl));
        Ok(())
    }

    pub(crate) async fn live_types(&self) -> Result<Vec<(String, usize)>, BrokerError> {
        let now = Instant::now();
        let state = self.state();
        let lines: Vec<String> = state
            .workers
            .values()
            .filter(|(_, until)| *until > now)
            .map(|(types, _)| {
                types
                    .iter()
                    .map(JobType::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect();
        Ok(crate::count_types(lines.iter().map(String::as_str)))
    }

    pub(crate) async fn reap_dead_workers(&self) -> Result<usize, BrokerError> {
        let now = Instant::now();
        self.state().workers.retain(|_, (_, until)| *until > now);
        Ok(0)
    }

    pub(crate) async fn forget_worker(&self, worker: &str) -> Result<usize, BrokerError> {
        self.state().workers.remove(worker);
        Ok(0)
    }

    /// Nothing to take back: a pop here cannot lose its reply.
    pub(crate) async fn release_taken(&self, _worker: &str) -> Result<Vec<JobId>, BrokerError> {
        Ok(Vec::new())
    }

    pub(crate) fn consumer(&self, block: Duration, types: &[JobType]) -> MemoryConsumer {
        MemoryConsumer {
            broker: self.clone(),
            block,
            selection: Selection {
                types: types.to_vec(),
                tenants: Vec::new(),
            },
            turn: 0,
        }
    }

    /// What the Redis pop script does, on the in-process queues: see there.
    pub(crate) fn take(&self, selection: &Selection, max: usize, turn: usize) -> Vec<JobId> {
        let mut state = self.state();
        let mut taken = Vec::new();
        let types = &selection.types;
        for lanes in &mut state.lanes {
            for k in 0..types.len() {
                if taken.len() >= max {
                    break;
                }
                let job_type = &types[(turn + k) % types.len()];
                let Some(lane) = lanes.get_mut(job_type.as_str()) else {
                    continue;
                };
                if selection.tenants.is_empty() {
                    while taken.len() < max {
                        let Some(tenant) = lane.turns.front().cloned() else {
                            break;
                        };
                        let share = (max - taken.len()).div_ceil(lane.turns.len());
                        lane.serve(&tenant, share, &mut taken);
                    }
                } else {
                    for tenant in &selection.tenants {
                        if taken.len() >= max {
                            break;
                        }
                        lane.serve(tenant, max - taken.len(), &mut taken);
                    }
                }
                if lane.turns.is_empty() {
                    lanes.remove(job_type.as_str());
                }
            }
        }
        taken
    }

    pub(crate) async fn run_subscriber(
        &self,
        cancel: CancellationToken,
        mut on_event: impl FnMut(SubscriberEvent),
    ) {
        let mut updates = self.inner.updates.subscribe();
        on_event(SubscriberEvent::Subscribed);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                update = updates.recv() => match update {
                    Ok(text) => on_event(SubscriberEvent::Message(text.as_bytes().to_vec())),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "the update subscriber fell behind");
                        on_event(SubscriberEvent::Lost);
                        on_event(SubscriberEvent::Subscribed);
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

/// Pops from the in-process queues.
pub struct MemoryConsumer {
    broker: MemoryBroker,
    block: Duration,
    selection: Selection,
    turn: usize,
}

impl MemoryConsumer {
    pub(crate) async fn pop_many(&mut self, max: usize) -> Vec<JobId> {
        let deadline = tokio::time::Instant::now() + self.block;
        loop {
            // Registered before looking, so a push between the look and the wait still wakes us.
            let queued = self.broker.inner.queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            self.turn = self.turn.wrapping_add(1);
            let taken = self.broker.take(&self.selection, max, self.turn);
            if !taken.is_empty() {
                return taken;
            }
            if tokio::time::timeout_at(deadline, queued).await.is_err() {
                return taken;
            }
        }
    }
}
