use jobwire_core::{JobType, Priority, TenantId};

/// Names of jobwire's Redis keys. With the default empty prefix the channel
/// is exactly `job_updates`; a prefix lets tests and several deployments
/// share one Redis.
///
/// The queues: one list of IDs per priority, tenant and job type,
/// `job_queue:<priority>:<tenant>/<type>` (`LPUSH` in, `RPOP` out: FIFO), so
/// that a worker takes only the types it runs and a tenant-scoped worker only
/// its tenants' jobs. Per priority and type, `job_tenants:<priority>:<type>`
/// is the sorted set of tenants with IDs queued there, scored by virtual
/// time: serving a tenant n IDs moves it n / weight later, and the lowest
/// goes next, so tenants take turns in proportion to their weights (a tenant
/// arriving scores 0, so it goes first). A tenant is in that set
/// exactly while its list holds IDs: the writes that change one change the
/// other, atomically. Tenant IDs hold no `/`, so the names cannot collide.
///
/// Quotas: `tenant_depth` counts each tenant's queued IDs (changed by the
/// same writes as the lists); `job_running:<tenant>` holds the IDs of a
/// capped tenant's running jobs (scored by when taken); `tenant_limits` holds
/// the running caps and weights the pop obeys (written by the API from its
/// settings); `tenant_bucket:<tenant>` is a tenant's create-rate token bucket.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    channel: String,
    pending: String,
    workers: String,
    types: String,
    depth: String,
    limits: String,
    clocks: String,
    slot_tenants: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            channel: format!("{prefix}job_updates"),
            pending: format!("{prefix}job_queue:pending"),
            workers: format!("{prefix}workers"),
            types: format!("{prefix}job_types"),
            depth: format!("{prefix}tenant_depth"),
            limits: format!("{prefix}tenant_limits"),
            clocks: format!("{prefix}job_clocks"),
            slot_tenants: format!("{prefix}job_running_tenants"),
        }
    }

    /// The IDs a tenant queued for one type and priority.
    pub fn queue(&self, priority: Priority, tenant: &TenantId, job_type: &JobType) -> String {
        format!("{}job_queue:{priority}:{tenant}/{job_type}", self.prefix)
    }

    /// The tenants with IDs queued for one type and priority, by turn.
    pub fn tenants(&self, priority: Priority, job_type: &str) -> String {
        format!("{}job_tenants:{priority}:{job_type}", self.prefix)
    }

    /// One marker per ID queued for a type: consumers of that type block on
    /// it, then take IDs from the queues.
    pub fn wake(&self, job_type: &str) -> String {
        format!("{}job_wake:{job_type}", self.prefix)
    }

    /// Every job type that may have IDs queued (for queue depths).
    pub fn types(&self) -> &str {
        &self.types
    }

    /// Queued IDs per tenant (a hash).
    pub fn depth(&self) -> &str {
        &self.depth
    }

    /// Running caps (`running:<tenant>`, `running:*` for every other tenant)
    /// and weights (`weight:<tenant>`) the pop obeys (a hash).
    pub fn limits(&self) -> &str {
        &self.limits
    }

    /// Per turns set, the virtual time of its last turn (a hash), so that a
    /// tenant arriving or back from a wait starts level with the others.
    pub fn clocks(&self) -> &str {
        &self.clocks
    }

    /// The running jobs of a capped tenant (a sorted set, scored by when taken).
    pub fn running(&self, tenant: &str) -> String {
        format!("{}job_running:{tenant}", self.prefix)
    }

    /// The tenants with a [`Keys::running`] set.
    pub fn slot_tenants(&self) -> &str {
        &self.slot_tenants
    }

    /// A tenant's create-rate token bucket (a hash: tokens, at).
    pub fn bucket(&self, tenant: &TenantId) -> String {
        format!("{}tenant_bucket:{tenant}", self.prefix)
    }

    /// The set of every ID in Redis (queued, or popped and not yet acknowledged),
    /// so a sweep can tell which queued jobs Redis has lost.
    pub fn pending(&self) -> &str {
        &self.pending
    }

    /// The set of workers that may hold a processing list.
    pub fn workers(&self) -> &str {
        &self.workers
    }

    /// The IDs a worker popped and has not acknowledged yet.
    pub fn processing(&self, worker: &str) -> String {
        format!("{}processing:{worker}", self.prefix)
    }

    /// Exists while the worker lives (it expires unless renewed); holds the
    /// job types the worker runs, one per line.
    pub fn alive(&self, worker: &str) -> String {
        format!("{}worker:{worker}", self.prefix)
    }

    /// The one-list-per-priority queues and wake list of jobwire before
    /// queues were split by tenant and type; emptied at startup.
    pub fn legacy(&self) -> Vec<String> {
        Priority::ALL
            .iter()
            .map(|p| format!("{}job_queue:{p}", self.prefix))
            .chain([format!("{}job_queue:wake", self.prefix)])
            .collect()
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_have_no_prefix() {
        let keys = Keys::new("");
        let tenant = "acme".parse().expect("a valid tenant");
        let job_type = "email".parse().expect("a valid type");
        assert_eq!(keys.channel(), "job_updates");
        assert_eq!(
            keys.queue(Priority::Critical, &tenant, &job_type),
            "job_queue:critical:acme/email"
        );
        assert_eq!(
            Keys::new("t1:").tenants(Priority::Low, "email"),
            "t1:job_tenants:low:email"
        );
    }
}
