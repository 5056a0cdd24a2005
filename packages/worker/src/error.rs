/// Why a handler's attempt failed; the message is stored in the job's `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JobError(pub String);

impl From<String> for JobError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for JobError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

/// Failures of the runtime itself (not of a job).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] jobwire_store::StoreError),
    #[error(transparent)]
    Broker(#[from] jobwire_broker::BrokerError),
    #[error("job {0} is no longer running")]
    NotRunning(jobwire_core::JobId),
}
