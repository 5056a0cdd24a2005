//! The in-process broker of the embedded mode: the same queues as in Redis
//! (a FIFO per priority, tenant and type; tenants taking turns) and an
//! update channel inside the one `jobwire` process. What it holds is lost
//! with the process; the store is the truth, and startup re-queues from it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jobwire_core::{JobId, JobType, Priority, QueueEntry, Quota, Quotas, Refusal, TenantId};
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
    /// The running caps and weights takes obey.
    quotas: Quotas,
    /// Queued IDs per tenant.
    depth: HashMap<TenantId, u64>,
    /// Create-rate token buckets: tokens, and when last refilled.
    buckets: HashMap<TenantId, (f64, Instant)>,
    /// Capped tenants' running jobs, with when each was taken.
    running: HashMap<TenantId, HashMap<JobId, Instant>>,
}

/// One priority and type: a FIFO per tenant, and the tenants with IDs
/// queued by virtual time, lowest next (as the Redis pop script orders them).
#[derive(Default)]
struct Lane {
    queues: HashMap<TenantId, VecDeque<JobId>>,
    /// (score as ordered bits, tenant): scores are never negative, so their
    /// bits order as the numbers do; ties go by tenant, as in a sorted set.
    order: BTreeSet<(u64, TenantId)>,
    scores: HashMap<TenantId, f64>,
    /// The virtual time of the last turn.
    clock: f64,
}

impl Lane {
    fn push(&mut self, entry: &QueueEntry) {
        // Looked up before inserting: no key is cloned for a tenant already here.
        if let Some(queue) = self.queues.get_mut(&entry.tenant) {
            queue.push_back(entry.id);
            return;
        }
        // Arriving tenants go first, as in Redis (score 0).
        self.order.insert((0f64.to_bits(), entry.tenant.clone()));
        self.scores.insert(entry.tenant.clone(), 0.0);
        self.queues
            .insert(entry.tenant.clone(), VecDeque::from([entry.id]));
    }

    /// Takes up to `share` IDs of `tenant`'s, oldest first, and moves it
    /// `taken / weight` later (or out, once its queue is empty); how many.
    fn serve(
        &mut self,
        tenant: &TenantId,
        share: usize,
        weight: u32,
        taken: &mut Vec<JobId>,
    ) -> usize {
        let Some(queue) = self.queues.get_mut(tenant) else {
            return 0;
        };
        let n = share.min(queue.len());
        taken.extend(queue.drain(..n));
        let empty = queue.is_empty();
        let score = self.scores.remove(tenant).unwrap_or_default();
        self.order.remove(&(score.to_bits(), tenant.clone()));
        let start = score.max(self.clock);
        self.clock = start;
        if empty {
            self.queues.remove(tenant);
        } else {
            let next = start + n as f64 / f64::from(weight.max(1));
            self.order.insert((next.to_bits(), tenant.clone()));
            self.scores.insert(tenant.clone(), next);
        }
        n
    }

    /// The `skip`-th tenant in turn order.
    fn nth(&self, skip: usize) -> Option<TenantId> {
        self.order.iter().nth(skip).map(|(_, t)| t.clone())
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
        let mut freed = false;
        {
            let mut state = self.state();
            for entry in &outbox.queue {
                let lanes = &mut state.lanes[index(entry.priority)];
                match lanes.get_mut(entry.job_type.as_str()) {
                    Some(lane) => lane.push(entry),
                    None => lanes
                        .entry(entry.job_type.as_str().to_owned())
                        .or_default()
                        .push(entry),
                }
                *state.pending.entry(entry.id).or_default() += 1;
                *state.depth.entry(entry.tenant.clone()).or_default() += 1;
            }
            for entry in &outbox.released {
                if let Some(slots) = state.running.get_mut(&entry.tenant) {
                    freed |= slots.remove(&entry.id).is_some();
                    if slots.is_empty() {
                        state.running.remove(&entry.tenant);
                    }
                }
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
        if !outbox.queue.is_empty() || freed {
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
        let State {
            lanes,
            quotas,
            depth,
            running,
            ..
        } = &mut *state;
        let mut taken = Vec::new();
        let types = &selection.types;
        let now = Instant::now();
        // Serves `tenant` up to `base` times its weight; false if it is at its cap.
        let mut serve =
            |lane: &mut Lane, tenant: &TenantId, base: usize, taken: &mut Vec<JobId>| {
                let quota = quotas.of(tenant);
                let mut share = base
                    .saturating_mul(quota.weight.max(1) as usize)
                    .min(max - taken.len());
                if let Some(cap) = quota.max_running {
                    let busy = running.get(tenant).map_or(0, HashMap::len);
                    share = share.min((cap as usize).saturating_sub(busy));
                    if share == 0 {
                        return false;
                    }
                }
                let from = taken.len();
                let n = lane.serve(tenant, share, quota.weight, taken);
                if let Some(left) = depth.get_mut(tenant) {
                    *left = left.saturating_sub(n as u64);
                    if *left == 0 {
                        depth.remove(tenant);
                    }
                }
                if quota.max_running.is_some() {
                    let slots = running.entry(tenant.clone()).or_default();
                    slots.extend(taken[from..].iter().map(|id| (*id, now)));
                }
                true
            };
        for lanes in lanes.iter_mut() {
            for k in 0..types.len() {
                if taken.len() >= max {
                    break;
                }
                let job_type = &types[(turn + k) % types.len()];
                let Some(lane) = lanes.get_mut(job_type.as_str()) else {
                    continue;
                };
                if selection.tenants.is_empty() {
                    let mut passed = 0;
                    while taken.len() < max {
                        let Some(tenant) = lane.nth(passed) else {
                            break;
                        };
                        let base = (max - taken.len()).div_ceil(lane.order.len() - passed);
                        if !serve(lane, &tenant, base, &mut taken) {
                            passed += 1;
                        }
                    }
                } else {
                    for tenant in &selection.tenants {
                        if taken.len() >= max {
                            break;
                        }
                        if lane.queues.contains_key(tenant) {
                            serve(lane, tenant, max - taken.len(), &mut taken);
                        }
                    }
                }
                if lane.order.is_empty() {
                    lanes.remove(job_type.as_str());
                }
            }
        }
        taken
    }

    pub(crate) async fn admit(
        &self,
        tenant: &TenantId,
        jobs: u64,
        quota: &Quota,
    ) -> Result<Option<Refusal>, BrokerError> {
        let mut state = self.state();
        if let Some(max) = quota.max_queued {
            if jobs > max {
                return Ok(Some(Refusal::OverQueue { jobs, max }));
            }
            let queued = state.depth.get(tenant).copied().unwrap_or_default();
            if queued + jobs > max {
                return Ok(Some(Refusal::QueueFull { queued, max }));
            }
        }
        if let Some((rate, burst)) = quota.bucket() {
            if jobs > u64::from(burst) {
                return Ok(Some(Refusal::OverBurst { jobs, burst }));
            }
            let now = Instant::now();
            let (tokens, at) = state
                .buckets
                .get(tenant)
                .copied()
                .unwrap_or((f64::from(burst), now));
            let tokens =
                (tokens + now.duration_since(at).as_secs_f64() * rate).min(f64::from(burst));
            let wanted = jobs as f64;
            if tokens < wanted {
                let retry_after = Duration::from_secs_f64((wanted - tokens) / rate);
                return Ok(Some(Refusal::RateLimited { retry_after }));
            }
            state.buckets.insert(tenant.clone(), (tokens - wanted, now));
        }
        Ok(None)
    }

    pub(crate) async fn publish_quotas(&self, quotas: &Quotas) -> Result<(), BrokerError> {
        self.state().quotas = quotas.clone();
        Ok(())
    }

    pub(crate) async fn stale_slots(
        &self,
        age: Duration,
    ) -> Result<Vec<(TenantId, JobId)>, BrokerError> {
        let now = Instant::now();
        let state = self.state();
        Ok(state
            .running
            .iter()
            .flat_map(|(tenant, slots)| {
                slots
                    .iter()
                    .filter(|(_, at)| now.duration_since(**at) >= age)
                    .map(|(id, _)| (tenant.clone(), *id))
            })
            .collect())
    }

    pub(crate) async fn settle_slots(
        &self,
        keep: &[(TenantId, JobId)],
        release: &[(TenantId, JobId)],
    ) -> Result<(), BrokerError> {
        let now = Instant::now();
        let mut state = self.state();
        for (tenant, id) in keep {
            if let Some(at) = state.running.get_mut(tenant).and_then(|s| s.get_mut(id)) {
                *at = now;
            }
        }
        for (tenant, id) in release {
            if let Some(slots) = state.running.get_mut(tenant) {
                slots.remove(id);
                if slots.is_empty() {
                    state.running.remove(tenant);
                }
            }
        }
        if !release.is_empty() {
            self.inner.queued.notify_waiters();
        }
        Ok(())
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
