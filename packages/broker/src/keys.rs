use jobwire_core::Priority;

/// Names of jobwire's Redis keys. With the default empty prefix the queues are
/// `job_queue:<priority>` and the channel is exactly `job_updates`; a prefix
/// lets tests and several deployments share one Redis.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    channel: String,
    queues: [String; 4],
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            channel: format!("{prefix}job_updates"),
            queues: Priority::ALL.map(|p| format!("{prefix}job_queue:{p}")),
        }
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

    /// Every queue, highest priority first (the order `BRPOP` looks in).
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
