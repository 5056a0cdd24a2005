//! The in-process broker of the embedded mode: priority FIFO queues and an
//! update channel inside the one `jobwire` process. What it holds is lost
//! with the process; the store is the truth, and startup re-queues from it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jobwire_core::{JobId, Priority};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::{BrokerError, Outbox, SubscriberEvent};

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
    /// One FIFO per priority, in `Priority::ALL` order.
    queues: [VecDeque<JobId>; 4],
    /// How many copies of each ID are queued or popped and not acknowledged.
    pending: HashMap<JobId, usize>,
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
            for (id, priority) in &outbox.queue {
                state.queues[index(*priority)].push_back(*id);
                *state.pending.entry(*id).or_default() += 1;
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

    pub(crate) async fn queue_len(&self, priority: Priority) -> Result<usize, BrokerError> {
        Ok(self.state().queues[index(priority)].len())
    }

    pub(crate) async fn missing(&self, ids: &[JobId]) -> Result<Vec<JobId>, BrokerError> {
        let state = self.state();
        Ok(ids
            .iter()
            .filter(|id| !state.pending.contains_key(id))
            .copied()
            .collect())
    }

    /// Workers share this process: none can die alone, so there is nothing to track.
    pub(crate) async fn worker_alive(
        &self,
        _worker: &str,
        _ttl: Duration,
    ) -> Result<(), BrokerError> {
        Ok(())
    }

    pub(crate) async fn reap_dead_workers(&self) -> Result<usize, BrokerError> {
        Ok(0)
    }

    pub(crate) async fn forget_worker(&self, _worker: &str) -> Result<usize, BrokerError> {
        Ok(0)
    }

    /// Nothing to take back: a pop here cannot lose its reply.
    pub(crate) async fn release_taken(&self, _worker: &str) -> Result<Vec<JobId>, BrokerError> {
        Ok(Vec::new())
    }

    pub(crate) fn consumer(&self, block: Duration) -> MemoryConsumer {
        MemoryConsumer {
            broker: self.clone(),
            block,
        }
    }

    fn try_pop(&self, max: usize) -> Vec<JobId> {
        let mut state = self.state();
        let mut taken = Vec::new();
        for queue in &mut state.queues {
            let n = (max - taken.len()).min(queue.len());
            taken.extend(queue.drain(..n));
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
}

impl MemoryConsumer {
    pub(crate) async fn pop_many(&mut self, max: usize) -> Vec<JobId> {
        let deadline = tokio::time::Instant::now() + self.block;
        loop {
            // Registered before looking, so a push between the look and the wait still wakes us.
            let queued = self.broker.inner.queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let taken = self.broker.try_pop(max);
            if !taken.is_empty() {
                return taken;
            }
            if tokio::time::timeout_at(deadline, queued).await.is_err() {
                return taken;
            }
        }
    }
}
