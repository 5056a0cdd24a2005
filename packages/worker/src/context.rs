use jobwire_broker::Broker;
use jobwire_core::{JobId, JobType, JobUpdate, TenantId};
use jobwire_store::{LeaseToken, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::WorkerError;

/// What a handler knows about the attempt it runs: the job, a way to report
/// progress, and a signal that it must stop (the job was cancelled, timed
/// out, or its lease was lost).
///
/// ```
/// use std::time::Duration;
///
/// use jobwire_worker::{HandlerResult, JobContext, JobError};
/// use serde_json::{Value, json};
///
/// /// Ten steps of work, each reported; stops early when told to.
/// async fn ten_steps(ctx: JobContext, _payload: Value) -> HandlerResult {
///     for step in 1..=10 {
///         tokio::select! {
///             () = tokio::time::sleep(Duration::from_millis(100)) => {}
///             () = ctx.cancelled() => return Err(JobError::retryable(format!("stopped at step {step}"))),
///         }
///         ctx.progress(json!({"percent": step * 10}))
///             .await
///             .map_err(|e| JobError::retryable(e.to_string()))?;
///     }
///     Ok(json!({"steps": 10, "attempt": ctx.attempt()}))
/// }
/// ```
#[derive(Clone, Debug)]
pub struct JobContext {
    pub(crate) job_id: JobId,
    pub(crate) tenant: TenantId,
    pub(crate) job_type: JobType,
    pub(crate) attempt: i32,
    pub(crate) lease: LeaseToken,
    pub(crate) cancel: CancellationToken,
    pub(crate) store: Store,
    pub(crate) broker: Broker,
}

impl JobContext {
    pub fn job_id(&self) -> JobId {
        self.job_id
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn job_type(&self) -> &JobType {
        &self.job_type
    }

    /// 1 on the first run.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// Whether the handler should stop now: a check for loops of blocking work.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the handler should stop; the worker aborts a handler
    /// that has not returned shortly after.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Stores `progress` on the job (replacing the last one) and publishes it
    /// to the job's watchers, as its `progress` field: any JSON, e.g.
    /// `{"percent": 40, "stage": "decoded"}` (the dashboard and `jobwire
    /// watch` draw a bar from a number or a `percent`). An error means the job
    /// is no longer this attempt's (cancelled, timed out, lease lost) or the
    /// store or broker failed: end the attempt with it as the handler's error.
    pub async fn progress(&self, progress: Value) -> Result<(), WorkerError> {
        let job = self
            .store
            .report_progress(self.job_id, &self.lease, &progress)
            .await?
            .ok_or(WorkerError::NotRunning(self.job_id))?;
        self.broker
            .publish(&JobUpdate::from(&job).to_json())
            .await?;
        Ok(())
    }
}
