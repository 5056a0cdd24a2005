use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Job, JobId, JobType, Status, TenantId};

/// One change of one job, as published on the `job_updates` channel and sent to
/// WebSocket clients unchanged. Readable as-is in `redis-cli SUBSCRIBE job_updates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobUpdate {
    pub tenant_id: TenantId,
    pub job_id: JobId,
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub status: Status,
    pub version: i64,
    pub attempt: i32,
    /// Null unless the job failed.
    pub error: Option<String>,
    /// Present once the handler has reported progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
    /// Present once the job succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// When a `scheduled` job becomes due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// When the change was committed.
    pub at: DateTime<Utc>,
    /// Where this change stands in the tenant's change feed: a WebSocket client
    /// reconnecting with it gets everything that changed since.
    pub cursor: String,
}

impl From<&Job> for JobUpdate {
    fn from(job: &Job) -> Self {
        Self {
            tenant_id: job.tenant_id.clone(),
            job_id: job.id,
            job_type: job.job_type.clone(),
            status: job.status,
            version: job.version,
            attempt: job.attempt,
            error: job.error.clone(),
            progress: job.progress.clone(),
            result: job.result.clone(),
            run_at: job.run_at,
            at: job.updated_at,
            cursor: job.change_seq.to_string(),
        }
    }
}

impl JobUpdate {
    /// The JSON text published for this update.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).expect("a JobUpdate always serialises")
    }
}
