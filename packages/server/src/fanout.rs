//! This instance's one update subscriber, feeding the hub. Each message is
//! parsed once (for its tenant, job and version) and its text is shared by
//! every client it goes to. When the subscription was lost and comes back,
//! every connected tenant is resynced from the store; and a change whose
//! update never arrived (see [`crate::gaps`]) is read from the store and
//! passed on, so no client is left showing a stale status.
//!
//! The subscriber itself only parses and routes: handing a message to each of
//! a tenant's clients happens in that tenant's own lane (a task with a
//! bounded queue), so one tenant's update storm over thousands of clients
//! keeps its own lane busy while every other tenant's updates go straight on
//! through theirs. Done inline, that work sat in front of every later message
//! of every tenant on the one subscriber. A tenant with a few hundred clients
//! at most and nothing in its lane is served inline all the same: that is
//! short, and spares every update a task switch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use jobwire_broker::SubscriberEvent;
use jobwire_core::{JobId, JobUpdate, Status, TenantId};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::gaps::Gaps;
use crate::{AppState, Frame};

/// How often missing changes are looked for: a change whose update never
/// came reaches clients within two of these (plus a read).
const GAP_CHECK: Duration = Duration::from_millis(500);

/// Changes read back per query when resyncing.
const RESYNC_PAGE: u32 = 500;

/// The part of an update the hub routes by.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Route<'a> {
    tenant_id: TenantId,
    job_id: JobId,
    version: i64,
    #[serde(default)]
    cursor: Option<String>,
    /// When the change was committed: the start of the lag to this hub.
    #[serde(default)]
    at: Option<DateTime<Utc>>,
    #[serde(default)]
    status: Option<Status>,
    /// Woken when queued: the long polls of remote workers of this type.
    /// Borrowed from the message: most updates never need it.
    #[serde(default, rename = "type", borrow)]
    job_type: Option<std::borrow::Cow<'a, str>>,
}

pub(crate) async fn run(state: AppState, shutdown: CancellationToken) {
    let broker = state.broker().clone();
    // The newest change seen, and where to resync from after a loss.
    let seen = AtomicI64::new(0);
    // Read before subscribing: every change after it that this instance does
    // not see (made while it subscribes, or lost) is looked up.
    let gaps = match state.store().latest_change().await {
        Ok(latest) => Gaps::after(latest.unwrap_or(0)),
        Err(e) => {
            tracing::warn!(error = ?e, "cannot read the newest change at start");
            Gaps::default()
        }
    };
    let gaps = Arc::new(Mutex::new(gaps));
    let mut lost_at: Option<i64> = None;
    let mut lanes = Lanes::default();
    let subscriber = broker.run_subscriber(shutdown.clone(), |event| match event {
        SubscriberEvent::Subscribed => {
            state.set_subscribed(true);
            if let Some(after) = lost_at.take() {
                metrics::counter!(jobwire_metrics::SUBSCRIBER_RECONNECTS).increment(1);
                let resyncing = state.clone();
                state
                    .tasks()
                    .spawn(async move { resync(&resyncing, after).await });
            }
        }
        SubscriberEvent::Lost => {
            state.set_subscribed(false);
            lost_at.get_or_insert(seen.load(Ordering::Relaxed));
        }
        SubscriberEvent::Message(bytes) => {
            if let Some(seq) = deliver(&state, &mut lanes, bytes) {
                seen.fetch_max(seq, Ordering::Relaxed);
                lock(&gaps).saw(seq);
            }
        }
    });
    tokio::join!(subscriber, fill_gaps(&state, &gaps, shutdown));
}

fn lock(gaps: &Mutex<Gaps>) -> std::sync::MutexGuard<'_, Gaps> {
    // A poisoned lock means a panic between two plain set calls; the set is intact.
    gaps.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every [`GAP_CHECK`], reads the changes whose update never arrived and
/// passes them on.
async fn fill_gaps(state: &AppState, gaps: &Mutex<Gaps>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(GAP_CHECK);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let latest = match state.store().latest_change().await {
            Ok(latest) => latest,
            Err(e) => {
                tracing::warn!(error = ?e, "cannot read the newest change");
                None
            }
        };
        let missing = lock(gaps).missing(latest);
        if missing.is_empty() {
            continue;
        }
        match state.store().changes_at(&missing).await {
            Ok(changes) => {
                if !changes.is_empty() {
                    tracing::info!(
                        jobs = changes.len(),
                        "passing on changes whose update never arrived"
                    );
                }
                metrics::counter!(jobwire_metrics::GAP_FILLS).increment(changes.len() as u64);
                for change in &changes {
                    publish(state, &change.update);
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e, "cannot read changes whose update never arrived");
                lock(gaps).failed(missing);
            }
        }
    }
}

/// Hands an update read from the store to the hub.
fn publish(state: &AppState, update: &JobUpdate) {
    state.hub().publish(
        &update.tenant_id,
        update.job_id,
        update.version,
        &Frame::from(update),
    );
}

/// Routes one message to its tenant's lane; returns its place in the change feed.
fn deliver(state: &AppState, lanes: &mut Lanes, bytes: Vec<u8>) -> Option<i64> {
    let route: Route = match serde_json::from_slice(&bytes) {
        Ok(route) => route,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an update message that is not a job update");
            return None;
        }
    };
    if let Some(at) = route.at {
        // A clock behind the committer's shows as no lag rather than a negative one.
        let lag = (Utc::now() - at).to_std().unwrap_or_default();
        metrics::histogram!(jobwire_metrics::UPDATE_LAG).record(lag.as_secs_f64());
    }
    if route.status == Some(Status::Queued)
        && let Some(job_type) = &route.job_type
    {
        state.leasing().wake(job_type);
    }
    // What is left of the route owns its data: the message can move into the frame.
    let Route {
        tenant_id,
        job_id,
        version,
        cursor,
        ..
    } = route;
    // Valid JSON is valid UTF-8, so this conversion only moves the buffer.
    let text = String::from_utf8(bytes).ok()?;
    let frame = Frame {
        job: job_id,
        version,
        text: Utf8Bytes::from(text),
    };
    lanes.send(state, tenant_id, frame);
    cursor.and_then(|cursor| cursor.parse().ok())
}

/// Messages routed between two looks for lanes whose tenant has no client left.
const PRUNE_EVERY: u64 = 4096;

/// How long a lane hands out updates before it lets other tasks run.
const LANE_SLICE: Duration = Duration::from_millis(1);

/// Clients a lane hands one update to before it lets other tasks run: each
/// one's session is woken, and a tenant with thousands of clients would
/// otherwise put all of them in the runtime's queue ahead of another
/// tenant's sessions.
const LANE_STEP: usize = 64;

/// Most clients a tenant may have for its updates to be handed out on the
/// subscriber itself (while its lane is idle): a few hundred queue pushes
/// take less time than the task switch a lane costs per update, and a lane's
/// yields put a tenant of that size behind every session the machine runs.
const INLINE_CLIENTS: usize = 256;

/// The subscriber's per-tenant lanes, owned by its callback alone.
#[derive(Default)]
struct Lanes {
    lanes: HashMap<TenantId, Lane>,
    routed: u64,
}

/// One tenant's queue of updates on their way to its clients.
struct Lane {
    tx: mpsc::Sender<Frame>,
    /// Bytes of the frames queued in `tx` now.
    queued: Arc<AtomicUsize>,
    /// Frames sent to the lane and not yet handed to every client: while
    /// there are any, the tenant's next frame goes behind them.
    pending: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl Lanes {
    /// Queues `frame` on its tenant's lane, without waiting. A tenant with
    /// no client takes no lane; one whose lane is full (its updates come in
    /// faster than they can be handed to its clients at all) has every client
    /// dropped as a slow consumer: they resume from their cursors, and the
    /// subscriber, like every other tenant, never waits for it.
    fn send(&mut self, state: &AppState, tenant: TenantId, frame: Frame) {
        let hub = state.hub();
        self.routed += 1;
        if self.routed.is_multiple_of(PRUNE_EVERY) {
            // A dropped sender ends its lane once the lane has handed out what it holds.
            self.lanes
                .retain(|tenant, lane| hub.client_count(tenant) > 0 || !lane.is_idle());
        }
        let clients = hub.client_count(&tenant);
        // A lane still handing out earlier frames gets this one too, so the
        // tenant's frames keep their order (a client may join meanwhile).
        let idle = self.lanes.get(&tenant).is_none_or(Lane::is_idle);
        if idle && clients == 0 {
            self.lanes.remove(&tenant);
            // Nobody to hand it to: the hub only notes the version, at once.
            hub.publish(&tenant, frame.job, frame.version, &frame);
            return;
        }
        if idle && clients <= INLINE_CLIENTS {
            // Short, and nothing of the tenant's still on its way: handed
            // out here, in order, without a task switch.
            hub.publish(&tenant, frame.job, frame.version, &frame);
            return;
        }
        let lane = self
            .lanes
            .entry(tenant.clone())
            .or_insert_with(|| Lane::start(state, tenant.clone()));
        let weight = frame.text.len();
        let queued = lane.queued.fetch_add(weight, Ordering::AcqRel);
        let sent = if queued > 0 && queued.saturating_add(weight) > lane.max_bytes {
            Err(mpsc::error::TrySendError::Full(frame))
        } else {
            lane.tx.try_send(frame)
        };
        if sent.is_err() {
            lane.queued.fetch_sub(weight, Ordering::AcqRel);
        } else {
            lane.pending.fetch_add(1, Ordering::AcqRel);
        }
        match sent {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let kicked = hub.kick_tenant(&tenant);
                tracing::warn!(%tenant, kicked, "a tenant's updates come faster than its clients can be served; dropping its clients");
            }
            // The lane's task is gone (only if the runtime is shutting down): start another.
            Err(mpsc::error::TrySendError::Closed(frame)) => {
                self.lanes.remove(&tenant);
                self.send(state, tenant, frame);
            }
        }
    }
}

impl Lane {
    /// Whether every frame sent to the lane has been handed out.
    fn is_idle(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// A lane holds as much as one client's queue: a client of the tenant is
    /// then never more than twice its own bound behind.
    fn start(state: &AppState, tenant: TenantId) -> Lane {
        let limit = state.ws().queue_limit();
        let (tx, rx) = mpsc::channel(limit.messages.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let pending = Arc::new(AtomicUsize::new(0));
        let hub = state.hub().clone();
        state.tasks().spawn(run_lane(
            hub,
            tenant,
            rx,
            Arc::clone(&queued),
            Arc::clone(&pending),
        ));
        Lane {
            tx,
            queued,
            pending,
            max_bytes: limit.bytes,
        }
    }
}

/// Hands each queued update of `tenant` to the hub, in order, until the
/// subscriber drops the lane.
async fn run_lane(
    hub: jobwire_hub::Hub<Frame>,
    tenant: TenantId,
    mut rx: mpsc::Receiver<Frame>,
    queued: Arc<AtomicUsize>,
    pending: Arc<AtomicUsize>,
) {
    let mut slice = Instant::now();
    while let Some(frame) = rx.recv().await {
        queued.fetch_sub(frame.text.len(), Ordering::AcqRel);
        let mut publishing = hub.publishing(&tenant, frame.job, frame.version, &frame);
        while publishing.step(LANE_STEP) {
            tokio::task::yield_now().await;
            slice = Instant::now();
        }
        pending.fetch_sub(1, Ordering::AcqRel);
        if slice.elapsed() > LANE_SLICE {
            tokio::task::yield_now().await;
            slice = Instant::now();
        }
    }
}

/// Sends every connected tenant the jobs that changed after `after` (what
/// the subscriber may have missed); the hub drops what clients already have.
async fn resync(state: &AppState, after: i64) {
    let mut resent = 0;
    for tenant in state.hub().tenants() {
        let mut from = after;
        loop {
            let changes = match state
                .store()
                .changes_since(&tenant, from, RESYNC_PAGE)
                .await
            {
                Ok(changes) => changes,
                Err(e) => {
                    tracing::warn!(%tenant, error = ?e, "cannot resync after the subscription came back");
                    break;
                }
            };
            for change in &changes {
                publish(state, &change.update);
                from = from.max(change.place);
            }
            resent += changes.len();
            if changes.len() < RESYNC_PAGE as usize {
                break;
            }
        }
    }
    tracing::info!(
        after,
        resent,
        "resynced clients after the subscription came back"
    );
}
