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
    pub(crate) fn command(command: &'static str) -> impl FnOnce(redis::RedisError) -> Self {
        move |source| Self::Command { command, source }
    }
}
