use jobwire_core::Priority;

/// Names of jobwire's Redis keys. With the default empty prefix the queues are
/// `job_queue:<priority>` and the channel is exactly `job_updates`; a prefix
/// lets tests and several deployments share one Redis.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    channel: String,
    queues: [String; 4],
    wake: String,
    pending: String,
    workers: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            channel: format!("{prefix}job_updates"),
            queues: Priority::ALL.map(|p| format!("{prefix}job_queue:{p}")),
            wake: format!("{prefix}job_queue:wake"),
            pending: format!("{prefix}job_queue:pending"),
            workers: format!("{prefix}workers"),
        }
    }

    /// One marker per queued ID: consumers block on this list, then take an
    /// ID from the highest-priority queue.
    pub fn wake(&self) -> &str {
        &self.wake
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

    /// Exists while the worker lives (it expires unless renewed).
    pub fn alive(&self, worker: &str) -> String {
        format!("{}worker:{worker}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    pub fn queue(&self, priority: Priority) -> &str {
        let index = Priority::ALL
            .iter()
            .position(|p| *p == priority)
            .unwrap_or_default();
        &self.queues[index]
    }

    /// Every queue, highest priority first (the order consumers look in).
    pub fn queues(&self) -> &[String; 4] {
        &self.queues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_have_no_prefix() {
        let keys = Keys::new("");
        assert_eq!(keys.channel(), "job_updates");
        assert_eq!(keys.queue(Priority::Critical), "job_queue:critical");
        assert_eq!(Keys::new("t1:").queue(Priority::Low), "t1:job_queue:low");
    }
}
