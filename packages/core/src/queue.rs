use crate::{Job, JobId, JobType, Priority, TenantId};

/// A queued job's ID with what decides which queue holds it: the broker
/// keeps one FIFO per priority, tenant and type, so that a worker takes only
/// the types it runs, a tenant-scoped worker only its tenants' jobs, and
/// tenants take turns within a priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: JobId,
    pub priority: Priority,
    pub tenant: TenantId,
    pub job_type: JobType,
}

impl From<&Job> for QueueEntry {
    fn from(job: &Job) -> Self {
        Self {
            id: job.id,
            priority: job.priority,
            tenant: job.tenant_id.clone(),
            job_type: job.job_type.clone(),
        }
    }
}
