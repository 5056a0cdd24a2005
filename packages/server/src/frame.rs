//! What goes to a WebSocket client: one job update, ready to send.

use axum::extract::ws::Utf8Bytes;
use jobwire_core::{Job, JobId, JobUpdate};
use jobwire_hub::Weight;

/// One update as a client receives it: the text (shared by every client it
/// goes to) and the job and version it is about, for dropping stale ones.
#[derive(Debug, Clone)]
pub struct Frame {
    pub job: JobId,
    pub version: i64,
    pub text: Utf8Bytes,
}

impl From<&Job> for Frame {
    fn from(job: &Job) -> Self {
        Self::from(&JobUpdate::from(job))
    }
}

impl From<&JobUpdate> for Frame {
    fn from(update: &JobUpdate) -> Self {
        Self {
            job: update.job_id,
            version: update.version,
            text: update.to_json().into(),
        }
    }
}

impl Weight for Frame {
    fn weight(&self) -> usize {
        self.text.len()
    }
}
