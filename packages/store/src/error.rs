use jobwire_core::{JobId, Status};

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reach Postgres at {url} (is PostgreSQL running? set DATABASE_URL)")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot open the SQLite database {path}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "DATABASE_URL `{url}` has an unsupported scheme `{scheme}`: jobwire supports \
         postgres:// (or postgresql://) for Postgres, and sqlite:<file> for the embedded \
         SQLite of the all-in-one `jobwire`"
    )]
    UnknownUrl {
        /// Password hidden.
        url: String,
        /// What comes before the first `:` (empty when there is none).
        scheme: String,
    },
    #[error("cannot apply the database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database query `{op}` failed")]
    Query {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("a row of table jobs does not hold a valid job: {0}")]
    Corrupt(String),
    #[error("job {id} not found")]
    NotFound { id: JobId },
    #[error("job {id} is {status}, so it cannot be {action}")]
    InvalidTransition {
        id: JobId,
        status: Status,
        action: &'static str,
    },
    #[error("idempotency key `{key}` was first used with a different request")]
    IdempotencyConflict { key: String },
    #[error("job {id} is scheduled for {run_at}; the store keeps times from year 1 to 9999")]
    TimeOutOfRange { id: JobId, run_at: String },
}

impl StoreError {
    /// Whether the database could not be reached or could not serve the
    /// query now (down, restarting, out of connections, a deadlock), so the
    /// same request may succeed later; any other failure is a fault.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Open { .. } => true,
            Self::Query { source, .. } => match source {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // SQLite's busy and locked (primary codes 5 and 6).
                sqlx::Error::Database(e)
                    if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() =>
                {
                    e.code()
                        .and_then(|code| code.parse::<i32>().ok())
                        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
                }
                // Postgres: connection exceptions, shutdowns, too many
                // connections, serialization failures and deadlocks.
                sqlx::Error::Database(e) => e.code().is_some_and(|code| {
                    code.starts_with("08")
                        || code.starts_with("57P")
                        || matches!(code.as_ref(), "53300" | "40001" | "40P01")
                }),
                _ => false,
            },
            _ => false,
        }
    }

    /// Wraps a failed query, naming the operation for context, and counts it
    /// in `jobwire_store_errors_total` under that name (a fixed set of labels).
    pub(crate) fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| {
            metrics::counter!(jobwire_metrics::STORE_ERRORS, "operation" => op).increment(1);
            Self::Query { op, source }
        }
    }
}
