use jobwire_broker::Broker;
use jobwire_core::{JobId, JobUpdate, TenantId};
use jobwire_store::Store;
use serde_json::Value;

use crate::WorkerError;

/// What a handler knows about the job it runs, and how it reports progress.
#[derive(Clone, Debug)]
pub struct JobContext {
    pub(crate) job_id: JobId,
    pub(crate) tenant: TenantId,
    pub(crate) attempt: i32,
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

    /// 1 on the first run.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// Stores `progress` on the job and publishes it to the job's watchers.
    pub async fn progress(&self, progress: Value) -> Result<(), WorkerError> {
        let job = self
            .store
            .report_progress(self.job_id, &progress)
            .await?
            .ok_or(WorkerError::NotRunning(self.job_id))?;
        self.broker
            .publish(&JobUpdate::from(&job).to_json())
            .await?;
        Ok(())
    }
}
