/// Everything the broker can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reach Redis at {url} (is Redis running? set REDIS_URL)")]
    Connect {
        /// Password hidden.
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis command {command} failed")]
    Command {
        command: &'static str,
        #[source]
        source: redis::RedisError,
    },
}

impl BrokerError {
    /// Wraps a failed Redis command, and counts it in
    /// `jobwire_broker_errors_total` under its name (a fixed set of labels).
    pub(crate) fn command(command: &'static str) -> impl FnOnce(redis::RedisError) -> Self {
        move |source| {
            count(command);
            Self::Command { command, source }
        }
    }
}

/// Counts a failed broker operation in `jobwire_broker_errors_total`.
pub(crate) fn count(operation: &'static str) {
    metrics::counter!(jobwire_metrics::BROKER_ERRORS, "operation" => operation).increment(1);
}
