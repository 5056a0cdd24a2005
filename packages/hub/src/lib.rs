//! The realtime hub: who is connected, per tenant, and what each of them
//! wants. One published update is handed to each interested client's bounded
//! queue (bounded in messages and in bytes) without waiting; a client whose
//! queue is full is kicked (its [`Subscription::kicked`] token fires) rather
//! than slowing anyone else.
//!
//! The hub is generic over the message it carries, so the server can pass its
//! ready-to-send WebSocket text and clone it cheaply per client.
//!
//! Each tenant's clients sit under a lock of their own, reached through the
//! tenant map only for a lookup: a tenant with thousands of clients and an
//! update storm holds its own lock while it hands out a message, and another
//! tenant's delivery, joins and leaves never wait for that (they would if
//! both tenants' clients sat in one map shard, locked for the whole loop).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use jobwire_core::{JobId, TenantId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

type ClientId = u64;

/// Which jobs a client wants: all of its tenant's, or only some.
type Filter = Arc<RwLock<Option<HashSet<JobId>>>>;

/// How much memory a message holds, for the byte bound of client queues.
pub trait Weight {
    fn weight(&self) -> usize;
}

impl Weight for u32 {
    fn weight(&self) -> usize {
        4
    }
}

/// Limits on one client's queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimit {
    pub messages: usize,
    pub bytes: usize,
}

struct Client<M> {
    tx: mpsc::Sender<M>,
    filter: Filter,
    kicked: CancellationToken,
    /// Bytes of the messages queued for this client now.
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl<M> Client<M> {
    fn wants(&self, job: JobId) -> bool {
        // A poisoned lock only means a writer panicked mid-update; the set is still usable.
        let filter = self.filter.read().unwrap_or_else(|e| e.into_inner());
        filter.as_ref().is_none_or(|jobs| jobs.contains(&job))
    }
}

/// One tenant's clients, in the order they came (IDs only grow): a publish
/// handed out in steps resumes after the last client it reached, so a client
/// that leaves between two steps is skipped and none is reached twice.
/// `closed` marks a set that became empty and is
/// being removed from the tenant map: a client registering meanwhile goes
/// into a fresh set instead of this one.
struct Clients<M> {
    by_id: BTreeMap<ClientId, Client<M>>,
    closed: bool,
}

type Shared<M> = Arc<RwLock<Clients<M>>>;

fn new_clients<M>() -> Shared<M> {
    Arc::new(RwLock::new(Clients {
        by_id: BTreeMap::new(),
        closed: false,
    }))
}

// A poisoned lock only means a panic between two plain map calls; the map is intact.
fn read<M>(clients: &Shared<M>) -> std::sync::RwLockReadGuard<'_, Clients<M>> {
    clients.read().unwrap_or_else(|e| e.into_inner())
}

fn write<M>(clients: &Shared<M>) -> std::sync::RwLockWriteGuard<'_, Clients<M>> {
    clients.write().unwrap_or_else(|e| e.into_inner())
}

struct Inner<M> {
    /// Locked only to find a tenant's set (never while a set's lock is held).
    tenants: DashMap<TenantId, Shared<M>>,
    next_id: AtomicU64,
    /// The newest version of each job this hub passed on: an older one
    /// (a late duplicate, a replay) is dropped.
    latest: DashMap<JobId, i64>,
}

/// Versions remembered before the memory is reset (a reset only lets a
/// stale duplicate through once; clients drop those too).
const MAX_REMEMBERED: usize = 100_000;

/// Cheap to clone; all clones share the same clients.
pub struct Hub<M> {
    inner: Arc<Inner<M>>,
}

impl<M> Clone for Hub<M> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M> std::fmt::Debug for Hub<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("tenants", &self.inner.tenants.len())
            .finish()
    }
}

impl<M: Clone + Weight> Default for Hub<M> {
    fn default() -> Self {
        Self::new()
    }
}

/// What one [`Hub::publish`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: usize,
    pub kicked: usize,
    /// Dropped: this version, or a newer one, went out before.
    pub stale: bool,
}

impl<M: Clone + Weight> Hub<M> {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                tenants: DashMap::new(),
                next_id: AtomicU64::new(0),
                latest: DashMap::new(),
            }),
        }
    }

    /// Adds a client of `tenant` with an outbound queue of at most `limit`.
    /// The client is removed when the returned subscription is dropped.
    pub fn register(&self, tenant: TenantId, limit: QueueLimit) -> Subscription<M> {
        let (tx, rx) = mpsc::channel(limit.messages.max(1));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let filter: Filter = Arc::default();
        let kicked = CancellationToken::new();
        let queued = Arc::new(AtomicUsize::new(0));
        let client = Client {
            tx,
            filter: Arc::clone(&filter),
            kicked: kicked.clone(),
            queued: Arc::clone(&queued),
            max_bytes: limit.bytes,
        };
        loop {
            let clients = self.clients_or_new(&tenant);
            let mut held = write(&clients);
            if !held.closed {
                held.by_id.insert(id, client);
                break;
            }
            // Emptied and on its way out: make sure it is gone, then take a fresh one.
            drop(held);
            self.remove_set(&tenant, &clients);
        }
        Subscription {
            hub: self.clone(),
            tenant,
            id,
            rx,
            filter,
            kicked,
            queued,
        }
    }

    /// Hands `message` (version `version` of `job` of `tenant`) to every
    /// client of that tenant that wants it, unless a newer or equal version
    /// already went out. Never waits: a full queue gets its client kicked.
    pub fn publish(&self, tenant: &TenantId, job: JobId, version: i64, message: &M) -> Delivery {
        let mut publishing = self.publishing(tenant, job, version, message);
        while publishing.step(usize::MAX) {}
        publishing.delivery
    }

    /// [`Hub::publish`] a step at a time ([`Publishing::step`]), so that a
    /// caller can let other work run between steps: a tenant with thousands
    /// of clients then wakes them a few at a time instead of putting all
    /// their sessions in the runtime's queue ahead of another tenant's. The
    /// version is checked (and noted) here, once.
    pub fn publishing<'a>(
        &'a self,
        tenant: &'a TenantId,
        job: JobId,
        version: i64,
        message: &'a M,
    ) -> Publishing<'a, M> {
        let mut publishing = Publishing {
            hub: self,
            tenant,
            job,
            message,
            next: Some(0),
            delivery: Delivery::default(),
        };
        if self.inner.latest.len() > MAX_REMEMBERED {
            self.inner.latest.clear();
        }
        match self.inner.latest.entry(job) {
            dashmap::Entry::Occupied(held) if *held.get() >= version => {
                publishing.delivery.stale = true;
                publishing.next = None;
            }
            dashmap::Entry::Occupied(mut held) => {
                held.insert(version);
            }
            dashmap::Entry::Vacant(slot) => {
                slot.insert(version);
            }
        }
        publishing
    }

    /// Drops every client of `tenant` as too slow (each one's
    /// [`Subscription::kicked`] token fires); returns how many. For when the
    /// tenant's updates come faster than they can be handed out at all: its
    /// clients resume from their cursors, from the store.
    pub fn kick_tenant(&self, tenant: &TenantId) -> usize {
        let Some(clients) = self.clients(tenant) else {
            return 0;
        };
        let mut held = write(&clients);
        let kicked = held.by_id.len();
        for client in held.by_id.values() {
            client.kicked.cancel();
        }
        held.by_id.clear();
        held.closed = true;
        drop(held);
        self.remove_set(tenant, &clients);
        kicked
    }

    /// The tenants with clients connected now.
    pub fn tenants(&self) -> Vec<TenantId> {
        self.inner
            .tenants
            .iter()
            .filter(|entry| !read(entry.value()).by_id.is_empty())
            .map(|entry| entry.key().clone())
            .collect()
    }

    /// How many clients a tenant has connected.
    pub fn client_count(&self, tenant: &TenantId) -> usize {
        self.clients(tenant).map_or(0, |c| read(&c).by_id.len())
    }

    /// The tenant's set, if it has one; the map's lock is released on return.
    fn clients(&self, tenant: &TenantId) -> Option<Shared<M>> {
        self.inner
            .tenants
            .get(tenant)
            .map(|c| Arc::clone(c.value()))
    }

    fn clients_or_new(&self, tenant: &TenantId) -> Shared<M> {
        let entry = self
            .inner
            .tenants
            .entry(tenant.clone())
            .or_insert_with(new_clients);
        Arc::clone(entry.value())
    }

    /// Removes `clients` from the map if it is still the tenant's set.
    fn remove_set(&self, tenant: &TenantId, clients: &Shared<M>) {
        self.inner
            .tenants
            .remove_if(tenant, |_, held| Arc::ptr_eq(held, clients));
    }

    fn unregister(&self, tenant: &TenantId, id: ClientId) {
        let Some(clients) = self.clients(tenant) else {
            return;
        };
        let mut held = write(&clients);
        held.by_id.remove(&id);
        if held.by_id.is_empty() {
            held.closed = true;
            drop(held);
            self.remove_set(tenant, &clients);
        }
    }
}

/// A publish under way: see [`Hub::publishing`].
pub struct Publishing<'a, M> {
    hub: &'a Hub<M>,
    tenant: &'a TenantId,
    job: JobId,
    message: &'a M,
    /// The first client not reached yet; `None` once every client was.
    next: Option<ClientId>,
    delivery: Delivery,
}

impl<M: Clone + Weight> Publishing<'_, M> {
    /// Hands the message to the next `max` clients at most (those that do
    /// not want it count too); returns whether any client is left.
    pub fn step(&mut self, max: usize) -> bool {
        let Some(from) = self.next else {
            return false;
        };
        let (job, message) = (self.job, self.message);
        let delivery = &mut self.delivery;
        let mut gone = Vec::new();
        let (mut reached, mut last) = (0, None);
        if let Some(clients) = self.hub.clients(self.tenant) {
            let clients = read(&clients);
            for (id, client) in clients.by_id.range(from..).take(max) {
                reached += 1;
                last = Some(*id);
                if !client.wants(job) {
                    continue;
                }
                // Counted before it is queued (the reader subtracts as soon as
                // it takes it), and a lone message bigger than the bound still
                // goes to an empty queue.
                let weight = message.weight();
                let queued = client.queued.fetch_add(weight, Ordering::AcqRel);
                if queued > 0 && queued.saturating_add(weight) > client.max_bytes {
                    client.queued.fetch_sub(weight, Ordering::AcqRel);
                    client.kicked.cancel();
                    delivery.kicked += 1;
                    gone.push(*id);
                    continue;
                }
                let sent = client.tx.try_send(message.clone());
                if sent.is_err() {
                    client.queued.fetch_sub(weight, Ordering::AcqRel);
                }
                match sent {
                    Ok(()) => delivery.delivered += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        client.kicked.cancel();
                        delivery.kicked += 1;
                        gone.push(*id);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
                }
            }
        }
        // The read guard above is dropped before removing, which takes a write guard.
        for id in gone {
            self.hub.unregister(self.tenant, id);
        }
        self.next = match last {
            Some(last) if reached == max => last.checked_add(1),
            _ => None,
        };
        self.next.is_some()
    }

    /// What the steps so far did.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }
}

/// One connected client's end: its queue, its filter and its kick signal.
pub struct Subscription<M: Clone + Weight> {
    hub: Hub<M>,
    tenant: TenantId,
    id: ClientId,
    rx: mpsc::Receiver<M>,
    filter: Filter,
    kicked: CancellationToken,
    queued: Arc<AtomicUsize>,
}

impl<M: Clone + Weight> Subscription<M> {
    /// The next message for this client; `None` once it has been removed.
    pub async fn recv(&mut self) -> Option<M> {
        let message = self.rx.recv().await;
        self.taken(message)
    }

    /// The next message if one is queued now; `None` otherwise.
    pub fn try_recv(&mut self) -> Option<M> {
        let message = self.rx.try_recv().ok();
        self.taken(message)
    }

    fn taken(&self, message: Option<M>) -> Option<M> {
        if let Some(message) = &message {
            self.queued.fetch_sub(message.weight(), Ordering::AcqRel);
        }
        message
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Fires when the hub dropped this client for not keeping up.
    pub fn kicked(&self) -> CancellationToken {
        self.kicked.clone()
    }

    /// A handle to narrow this client to some jobs, usable from another task.
    pub fn filter_handle(&self) -> FilterHandle {
        FilterHandle(Arc::clone(&self.filter))
    }
}

/// Changes a subscription's filter from outside the task that reads it.
#[derive(Clone)]
pub struct FilterHandle(Filter);

impl FilterHandle {
    /// Narrows the client to these jobs (`None`: every job of its tenant).
    pub fn set(&self, jobs: Option<HashSet<JobId>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = jobs;
    }
}

impl<M: Clone + Weight> Drop for Subscription<M> {
    fn drop(&mut self) {
        self.hub.unregister(&self.tenant, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_older_or_repeated_version_is_dropped() {
        let hub: Hub<u32> = Hub::new();
        let mut client = hub.register(tenant("a"), limit(8));
        let job = JobId::new();
        assert!(!hub.publish(&tenant("a"), job, 2, &2).stale);
        assert!(hub.publish(&tenant("a"), job, 1, &1).stale);
        assert!(hub.publish(&tenant("a"), job, 2, &2).stale);
        hub.publish(&tenant("a"), job, 3, &3);
        assert_eq!(client.recv().await, Some(2));
        assert_eq!(client.recv().await, Some(3));
    }

    fn tenant(name: &str) -> TenantId {
        name.parse().expect("valid tenant")
    }

    fn limit(messages: usize) -> QueueLimit {
        QueueLimit {
            messages,
            bytes: usize::MAX,
        }
    }

    impl Weight for Vec<u8> {
        fn weight(&self) -> usize {
            self.len()
        }
    }

    #[tokio::test]
    async fn a_client_is_kicked_by_bytes_queued_too_and_reading_frees_them() {
        let hub: Hub<Vec<u8>> = Hub::new();
        let bounded = QueueLimit {
            messages: 1000,
            bytes: 1000,
        };
        let mut reader = hub.register(tenant("a"), bounded);
        let slow = hub.register(tenant("a"), bounded);
        for n in 0..2 {
            hub.publish(&tenant("a"), JobId::new(), 1, &vec![n; 400]);
        }
        assert_eq!(reader.recv().await.map(|m| m.len()), Some(400));
        // The reader has 400 bytes queued, the slow one 800: 400 more is too much for it.
        let delivery = hub.publish(&tenant("a"), JobId::new(), 1, &vec![2; 400]);
        assert_eq!((delivery.delivered, delivery.kicked), (1, 1));
        assert!(slow.kicked().is_cancelled());
        assert!(!reader.kicked().is_cancelled());
        // A message over the bound still reaches a client that has read everything.
        while reader.try_recv().is_some() {}
        let delivery = hub.publish(&tenant("a"), JobId::new(), 1, &vec![3; 5000]);
        assert_eq!(delivery.delivered, 1);
    }

    #[tokio::test]
    async fn a_full_client_is_kicked_and_the_others_keep_receiving() {
        let hub: Hub<u32> = Hub::new();
        let mut fast = hub.register(tenant("a"), limit(4));
        let slow = hub.register(tenant("a"), limit(2));
        let job = JobId::new();
        for n in 0..3 {
            hub.publish(&tenant("a"), job, i64::from(n), &n);
            assert_eq!(fast.recv().await, Some(n));
        }
        assert!(slow.kicked().is_cancelled());
        assert_eq!(hub.client_count(&tenant("a")), 1);
    }

    #[tokio::test]
    async fn kicking_a_tenant_drops_only_its_clients_and_it_can_come_back() {
        let hub: Hub<u32> = Hub::new();
        let stormy = [
            hub.register(tenant("a"), limit(8)),
            hub.register(tenant("a"), limit(8)),
        ];
        let mut quiet = hub.register(tenant("b"), limit(8));
        assert_eq!(hub.kick_tenant(&tenant("a")), 2);
        assert!(stormy.iter().all(|s| s.kicked().is_cancelled()));
        assert_eq!(hub.tenants(), vec![tenant("b")]);
        hub.publish(&tenant("b"), JobId::new(), 1, &7);
        assert_eq!(quiet.recv().await, Some(7));
        // A kicked client leaving late does not disturb the tenant's next clients.
        let mut back = hub.register(tenant("a"), limit(8));
        drop(stormy);
        hub.publish(&tenant("a"), JobId::new(), 1, &8);
        assert_eq!(back.recv().await, Some(8));
        assert_eq!(hub.client_count(&tenant("a")), 1);
    }

    #[tokio::test]
    async fn a_publish_in_steps_reaches_each_client_once_as_they_come_and_go() {
        let hub: Hub<u32> = Hub::new();
        let mut clients: Vec<_> = (0..5)
            .map(|_| hub.register(tenant("a"), limit(8)))
            .collect();
        let a = tenant("a");
        let mut publishing = hub.publishing(&a, JobId::new(), 1, &7);
        assert!(publishing.step(2));
        // One reached already and one not yet leave; one joins.
        let left_early = clients.remove(0);
        let left_late = clients.remove(2);
        drop((left_early, left_late));
        clients.push(hub.register(tenant("a"), limit(8)));
        while publishing.step(2) {}
        // Two in the first step, then the three left of those it had not reached.
        assert_eq!(publishing.delivery().delivered, 2 + 3);
        for client in &mut clients {
            assert_eq!(client.try_recv(), Some(7));
            assert_eq!(client.try_recv(), None, "once");
        }
        assert!(
            !hub.publishing(&a, JobId::new(), 1, &8).step(usize::MAX),
            "one unbounded step reaches all"
        );
    }

    #[tokio::test]
    async fn tenants_and_filters_narrow_delivery() {
        let hub: Hub<u32> = Hub::new();
        let (wanted, other) = (JobId::new(), JobId::new());
        let mut narrowed = hub.register(tenant("a"), limit(8));
        narrowed.filter_handle().set(Some(HashSet::from([wanted])));
        let mut stranger = hub.register(tenant("b"), limit(8));
        hub.publish(&tenant("a"), other, 1, &1);
        hub.publish(&tenant("a"), wanted, 1, &2);
        assert_eq!(narrowed.recv().await, Some(2));
        assert!(stranger.rx.try_recv().is_err());
        drop(narrowed);
        assert_eq!(hub.client_count(&tenant("a")), 0);
    }
}
