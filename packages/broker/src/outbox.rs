//! "Commit, then announce" in one place: what a committed write tells the
//! rest of the system, sent to the broker in one round trip.

use jobwire_core::{Job, JobId, JobUpdate, QueueEntry, Status};

/// What one round trip to the broker carries, applied in this order:
/// updates published, IDs queued, running slots released, popped IDs
/// acknowledged. Updates go out
/// before their IDs are queued, so no worker can announce `running` ahead of
/// `queued`; acknowledgements come last, after the claims they follow have
/// committed.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Job updates as JSON text, for the `job_updates` channel.
    pub updates: Vec<String>,
    /// IDs to queue, each on its priority, tenant and type's queue.
    pub queue: Vec<QueueEntry>,
    /// Jobs that ran and are running no more: each frees its tenant's
    /// running slot (see `Quota::max_running`) and wakes a worker of its type.
    pub released: Vec<QueueEntry>,
    /// IDs a worker popped and is done with.
    pub acks: Option<(String, Vec<JobId>)>,
}

impl Outbox {
    /// The announcement of committed changes: every job's update, the IDs of
    /// those now `queued`, and the running slots of those that ran and now
    /// do not. The one place a job becomes its update.
    pub fn announcing<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> Self {
        let mut outbox = Self::default();
        for job in jobs {
            outbox.updates.push(JobUpdate::from(job).to_json());
            if job.status == Status::Queued {
                outbox.queue.push(QueueEntry::from(job));
            }
            if job.status != Status::Running && job.attempt > 0 {
                outbox.released.push(QueueEntry::from(job));
            }
        }
        outbox
    }

    /// Also acknowledges `ids`, popped by `worker`.
    pub fn acknowledging(mut self, worker: &str, ids: Vec<JobId>) -> Self {
        self.acks = Some((worker.to_owned(), ids));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
            && self.queue.is_empty()
            && self.released.is_empty()
            && self.acks.as_ref().is_none_or(|(_, ids)| ids.is_empty())
    }
}
