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
}

impl StoreError {
    /// Wraps a failed query, naming the operation for context.
    pub(crate) fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { op, source }
    }
}
