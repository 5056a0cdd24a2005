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
    /// Present once the job succeeded, unless the result is over
    /// [`MAX_INLINE_RESULT_BYTES`] (then `resultOmitted` is true instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The result is too big to ride along: read it with `GET /v1/jobs/{id}`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub result_omitted: bool,
    /// When a `scheduled` job becomes due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// When the change was committed.
    pub at: DateTime<Utc>,
    /// Where this change stands in the tenant's change feed: a WebSocket client
    /// reconnecting with it gets everything that changed since.
    pub cursor: String,
}

/// The largest result carried in an update, in bytes of JSON (about; the
/// stores measure their own JSON text). Updates go to every client of the
/// tenant and through Redis; bigger results stay in the store, read on request.
pub const MAX_INLINE_RESULT_BYTES: usize = 64 * 1024;

impl From<&Job> for JobUpdate {
    fn from(job: &Job) -> Self {
        let result_omitted = job
            .result
            .as_ref()
            .is_some_and(|result| json_len(result) > MAX_INLINE_RESULT_BYTES);
        Self {
            tenant_id: job.tenant_id.clone(),
            job_id: job.id,
            job_type: job.job_type.clone(),
            status: job.status,
            version: job.version,
            attempt: job.attempt,
            error: job.error.clone(),
            progress: job.progress.clone(),
            result: job.result.clone().filter(|_| !result_omitted),
            result_omitted,
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

/// Length of `value` serialised, without building the string.
pub fn json_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a Value to an infallible writer cannot fail.
    serde_json::to_writer(&mut counter, value).map_or(usize::MAX, |()| counter.0)
}
