use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jobwire_core::JobType;
use serde_json::Value;

use crate::{JobContext, JobError};

/// What a handler returns: the job's result (any JSON, stored on the job and
/// sent to its watchers), or why the attempt failed (the job's `error`; it is
/// retried while it has attempts left).
pub type HandlerResult = Result<Value, JobError>;

/// Runs one job type. Any `async fn(JobContext, Value) -> HandlerResult`
/// (or closure returning such a future) is a handler: it gets the job's
/// context and payload, once per attempt.
///
/// The contract: a job may run more than once (a retry after a failure, or
/// again after its worker died mid-run), so make side effects idempotent;
/// return soon after [`JobContext::cancelled`] fires, or the handler is
/// aborted; put CPU-heavy or blocking work in
/// [`tokio::task::spawn_blocking`], so that the worker's heartbeats and its
/// other jobs go on meanwhile. A panic fails the attempt, not the worker.
///
/// ```
/// use jobwire_worker::{HandlerResult, JobContext, JobError};
/// use serde_json::{Value, json};
///
/// async fn word_count(ctx: JobContext, payload: Value) -> HandlerResult {
///     let text = payload["text"]
///         .as_str()
///         .ok_or_else(|| JobError::from("word-count needs {\"text\": \"...\"}"))?
///         .to_owned();
///     let words = tokio::task::spawn_blocking(move || text.split_whitespace().count())
///         .await
///         .map_err(|e| JobError::retryable(e.to_string()))?;
///     ctx.progress(json!({"percent": 100}))
///         .await
///         .map_err(|e| JobError::retryable(e.to_string()))?;
///     Ok(json!({"words": words}))
/// }
///
/// jobwire_worker::Registry::new().register("word-count", word_count);
/// ```
pub trait Handler: Send + Sync + 'static {
    fn call(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(JobContext, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>> {
        Box::pin(self(ctx, payload))
    }
}

/// Handlers by job type: what a worker runs. Build one, then hand it to
/// `jobwire_runtime::worker_main` for a worker process of your own (the
/// stock `jobwire-worker` is that, with [`Registry::with_builtins`]).
///
/// ```
/// use jobwire_worker::{HandlerResult, JobContext, Registry};
/// use serde_json::{Value, json};
///
/// async fn shout(_ctx: JobContext, payload: Value) -> HandlerResult {
///     let text = payload["text"].as_str().unwrap_or_default();
///     Ok(json!({"text": text.to_uppercase()}))
/// }
///
/// let mut registry = Registry::new();
/// registry
///     .register("shout", shout)
///     .register("echo", |_ctx, payload| async move { Ok(payload) });
/// assert!(registry.get("shout").is_some());
/// assert!(registry.get("whisper").is_none());
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    /// An empty registry: only the handlers you register run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the handler of `job_type`, the `type` that
    /// jobs are created with; returns `self`, so calls chain.
    pub fn register(&mut self, job_type: &str, handler: impl Handler) -> &mut Self {
        self.handlers.insert(job_type.to_owned(), Arc::new(handler));
        self
    }

    /// The handler of `job_type`, if one is registered.
    pub fn get(&self, job_type: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(job_type).cloned()
    }

    /// The job types this registry runs, sorted: a worker takes jobs of
    /// these types only. A name no job could have (empty, or with
    /// whitespace) is left out, with a warning.
    pub fn types(&self) -> Vec<JobType> {
        let mut types: Vec<JobType> = self
            .handlers
            .keys()
            .filter_map(|name| match name.parse() {
                Ok(job_type) => Some(job_type),
                Err(e) => {
                    tracing::warn!(handler = %name, error = %e, "no job can have this type; its handler never runs");
                    None
                }
            })
            .collect();
        types.sort_by(|a: &JobType, b| a.as_str().cmp(b.as_str()));
        types
    }

    /// Whether `job_type` has a handler, so that configuration can refuse to
    /// replace one silently.
    pub fn contains(&self, job_type: &str) -> bool {
        self.handlers.contains_key(job_type)
    }
}
