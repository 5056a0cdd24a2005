use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jobwire_broker::Broker;
use jobwire_hub::Hub;
use jobwire_store::{RetryPolicy, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::intake::Intake;
use crate::leasing::Leasing;
use crate::session_limit::SessionLimit;
use crate::{Frame, JwtKeys, Scrape};

/// Limits on what a request may carry.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest payload of one job, in bytes of JSON.
    pub max_payload_bytes: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most jobs in one batch.
    pub max_batch: usize,
    /// Requests answered at once; more get 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// How long a request may take before it gets 503.
    pub request_timeout: Duration,
    /// Origins of browser apps served elsewhere that may call the API (CORS)
    /// and open WebSockets, as `scheme://host[:port]`; none by default.
    pub allowed_origins: Vec<String>,
    /// The job types some worker runs; a job of another type is refused
    /// (422). Empty: every type is taken.
    pub known_types: Vec<jobwire_core::JobType>,
    /// Each tenant's quotas and weight (none by default).
    pub quotas: jobwire_core::Quotas,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
            max_batch: 1000,
            max_in_flight: 1024,
            quotas: jobwire_core::Quotas::default(),
            request_timeout: Duration::from_secs(30),
            allowed_origins: Vec::new(),
            known_types: Vec::new(),
        }
    }
}

/// WebSocket tuning.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Updates queued per client before it counts as too slow and is dropped.
    pub queue_capacity: usize,
    /// … and bytes of updates queued.
    pub queue_bytes: usize,
    /// How often the server pings; a client silent for two intervals is dropped.
    pub ping_interval: Duration,
    /// WebSocket sessions open at once on this instance; one more is closed
    /// with 1013 (try again later).
    pub max_sessions: usize,
    /// … and per tenant.
    pub max_sessions_per_tenant: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            queue_bytes: 16 * 1024 * 1024,
            ping_interval: Duration::from_secs(20),
            max_sessions: 50_000,
            max_sessions_per_tenant: 10_000,
        }
    }
}

impl WsConfig {
    pub(crate) fn queue_limit(&self) -> jobwire_hub::QueueLimit {
        jobwire_hub::QueueLimit {
            messages: self.queue_capacity,
            bytes: self.queue_bytes,
        }
    }
}

/// Everything a request handler needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    broker: Broker,
    hub: Hub<Frame>,
    keys: JwtKeys,
    limits: Limits,
    ws: WsConfig,
    /// Fires when the server shuts down, so each WebSocket session closes.
    shutdown: CancellationToken,
    sessions: TaskTracker,
    /// Short background work (resyncs), waited for on shutdown.
    tasks: TaskTracker,
    subscribed: AtomicBool,
    /// Set by a binary that exports metrics; `/metrics` answers 404 without it.
    scrape: OnceLock<Scrape>,
    /// `jobwire_ws_frames_sent_total`, held rather than looked up per frame.
    frames_sent: metrics::Counter,
    intake: Intake,
    session_limit: SessionLimit,
    leasing: Leasing,
    /// How a remote worker's failed attempt is retried, as a built-in worker's.
    retry: RetryPolicy,
}

/// A test hook that makes the API fail at a chosen point, as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// Exit the process right after created jobs commit, before they are enqueued.
    ExitAfterCommit,
    /// Exit the process in the middle of enqueueing created jobs (after their
    /// IDs are marked pending, before they are pushed).
    ExitMidEnqueue,
}

impl std::str::FromStr for Failpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exit-after-commit" => Ok(Self::ExitAfterCommit),
            "exit-mid-enqueue" => Ok(Self::ExitMidEnqueue),
            other => Err(format!(
                "unknown failpoint `{other}` (known: exit-after-commit, exit-mid-enqueue)"
            )),
        }
    }
}

/// How long shutdown waits for WebSocket sessions to say goodbye.
const SESSION_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl AppState {
    /// Call within the Tokio runtime: it starts the writer of created jobs.
    pub fn new(
        store: Store,
        broker: Broker,
        keys: JwtKeys,
        limits: Limits,
        ws: WsConfig,
        shutdown: CancellationToken,
        failpoint: Option<Failpoint>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                intake: Intake::start(store.clone(), broker.clone(), failpoint),
                session_limit: SessionLimit::new(ws.max_sessions, ws.max_sessions_per_tenant),
                store,
                broker,
                hub: Hub::new(),
                keys,
                limits,
                ws,
                shutdown,
                sessions: TaskTracker::new(),
                tasks: TaskTracker::new(),
                subscribed: AtomicBool::new(false),
                scrape: OnceLock::new(),
                frames_sent: metrics::counter!(jobwire_metrics::WS_FRAMES_SENT),
                leasing: Leasing::new(),
                retry: RetryPolicy::default(),
            }),
        }
    }

    /// This state, retrying remote workers' failures by `retry` (the
    /// workers' own setting) instead of the default.
    pub fn with_retry(self, retry: RetryPolicy) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.retry = retry;
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => {
                tracing::warn!("the API state is shared already; keeping the default retry policy");
                Self { inner }
            }
        }
    }

    pub(crate) fn leasing(&self) -> &Leasing {
        &self.inner.leasing
    }

    pub(crate) fn retry(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    pub(crate) fn intake(&self) -> &Intake {
        &self.inner.intake
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    pub fn hub(&self) -> &Hub<Frame> {
        &self.inner.hub
    }

    pub(crate) fn keys(&self) -> &JwtKeys {
        &self.inner.keys
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub(crate) fn ws(&self) -> &WsConfig {
        &self.inner.ws
    }

    pub(crate) fn session_limit(&self) -> &SessionLimit {
        &self.inner.session_limit
    }

    pub(crate) fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub(crate) fn sessions(&self) -> &TaskTracker {
        &self.inner.sessions
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// Serves `/metrics` with `scrape` (the first one set stays). Create the
    /// state after installing the recorder: the handles it holds are taken
    /// from the recorder installed then.
    pub fn set_scrape(&self, scrape: Scrape) {
        if self.inner.scrape.set(scrape).is_err() {
            tracing::warn!("metrics were already exported; keeping the first scrape");
        }
    }

    pub(crate) fn scrape(&self) -> Option<&Scrape> {
        self.inner.scrape.get()
    }

    pub(crate) fn frames_sent(&self) -> &metrics::Counter {
        &self.inner.frames_sent
    }

    /// Whether this instance's `job_updates` subscription is in place.
    pub fn is_subscribed(&self) -> bool {
        self.inner.subscribed.load(Ordering::Acquire)
    }

    pub(crate) fn set_subscribed(&self, subscribed: bool) {
        self.inner.subscribed.store(subscribed, Ordering::Release);
    }

    /// Waits (bounded) for every WebSocket session to close after shutdown.
    pub(crate) async fn close_sessions(&self) {
        self.inner.tasks.close();
        self.inner.sessions.close();
        if tokio::time::timeout(SESSION_CLOSE_TIMEOUT, self.inner.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.inner.sessions.len(),
                "WebSocket sessions still open after shutdown"
            );
        }
        if tokio::time::timeout(SESSION_CLOSE_TIMEOUT, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("a resync was still running at shutdown");
        }
    }
}
