use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jobwire_core::JobType;
use serde_json::Value;

use crate::{JobContext, JobError};

/// What a handler returns: the job's result, or why it failed.
pub type HandlerResult = Result<Value, JobError>;

/// Runs one job type. Any `async fn(JobContext, Value) -> HandlerResult`
/// (or closure returning such a future) is a handler.
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

/// Handlers by job type.
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
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the handler of `job_type`.
    pub fn register(&mut self, job_type: &str, handler: impl Handler) -> &mut Self {
        self.handlers.insert(job_type.to_owned(), Arc::new(handler));
        self
    }

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
