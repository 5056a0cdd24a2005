//! Domain types of jobwire, shared by every other package. No I/O lives here:
//! values are validated once, at the edge, and then carried as these types
//! (and [`redact_url`], how every package shows a URL to people).

mod bucket;
mod ids;
mod job;
mod queue;
mod quota;
mod retention;
mod update;
mod url;

pub use bucket::{TENANT_BUCKET_LABELS, TENANT_BUCKETS, bucket_label};
pub use ids::{JobId, TenantId};
pub use job::{
    AttemptError, DEFAULT_MAX_ATTEMPTS, Idempotency, Job, JobType, NewJob, Priority, Status,
};
pub use queue::QueueEntry;
pub use quota::{Quota, QuotaOverride, Quotas, Refusal};
pub use retention::{
    IDEMPOTENCY_KEY_LIFETIME, MAX_RETAIN_FOR, MIN_RETAIN_FOR, Retention, parse_retain_for,
};
pub use update::{JobUpdate, MAX_INLINE_RESULT_BYTES, json_len};
pub use url::redact_url;

/// A value from outside (a request, a token, a Redis message) that is not a valid
/// domain value. The message is meant for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);
