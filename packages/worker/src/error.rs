/// Why a handler's attempt failed; the message is stored in the job's `error`.
///
/// Retryable by default (`From<String>`, `From<&str>`): the job runs again
/// with the worker's backoff while it has attempts left. A [`JobError::fatal`]
/// one fails the job at once, for failures another attempt cannot mend (the
/// receiver refused the job, the input is wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    message: String,
    retryable: bool,
}

impl JobError {
    /// A failure worth another attempt.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure no retry mends: the job fails at once, attempts left or not.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    pub fn into_message(self) -> String {
        self.message
    }
}

impl From<String> for JobError {
    fn from(message: String) -> Self {
        Self::retryable(message)
    }
}

impl From<&str> for JobError {
    fn from(message: &str) -> Self {
        Self::retryable(message)
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
