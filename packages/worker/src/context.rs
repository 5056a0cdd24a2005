use jobwire_broker::Broker;
use jobwire_core::{JobId, JobType, JobUpdate, TenantId};
use jobwire_store::{LeaseToken, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::WorkerError;

/// What a handler knows about the attempt it runs: the job, a way to report
/// progress, and a signal that it must stop (the job was cancelled, timed
/// out, or its lease was lost).
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

    /// Whether the handler should stop now.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the handler should stop; the worker aborts a handler
    /// that has not returned shortly after.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Stores `progress` on the job and publishes it to the job's watchers.
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
