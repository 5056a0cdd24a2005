use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{InvalidValue, JobId, TenantId};

/// Where a job is in its life: `queued → running → succeeded | failed`;
/// `scheduled` waits for its `runAt` (a delayed job, or a retry after
/// backoff); any unfinished job can become `cancelled`. The last three are
/// terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Scheduled,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Scheduled,
        Status::Queued,
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                InvalidValue(format!(
                    "unknown status `{s}`: use one of scheduled, queued, running, succeeded, failed, cancelled"
                ))
            })
    }
}

/// Which queue a job waits in. Workers always take from the highest non-empty one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Critical,
    High,
    #[default]
    Default,
    Low,
}

impl Priority {
    /// Highest first: the order in which workers look at the queues.
    pub const ALL: [Priority; 4] = [
        Priority::Critical,
        Priority::High,
        Priority::Default,
        Priority::Low,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Default => "default",
            Priority::Low => "low",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|priority| priority.as_str() == s)
            .ok_or_else(|| {
                InvalidValue(format!(
                    "unknown priority `{s}`: use one of critical, high, default, low"
                ))
            })
    }
}

/// The name that selects a job's handler: 1 to 128 characters, no whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct JobType(String);

impl JobType {
    pub const MAX_LEN: usize = 128;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for JobType {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(InvalidValue("`type` must not be empty".into()));
        }
        if s.chars().count() > Self::MAX_LEN
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(InvalidValue(format!(
                "`type` must be at most {} characters with no whitespace",
                Self::MAX_LEN
            )));
        }
        Ok(Self(s.to_owned()))
    }
}

/// The characters a [`JobType`] cannot hold, as a regular expression class
/// (ECMA-262, as OpenAPI asks): Unicode's `White_Space` and control
/// characters, what `char::is_whitespace` and `char::is_control` refuse.
const JOB_TYPE_PATTERN: &str =
    "^[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+$";

impl utoipa::PartialSchema for JobType {
    /// The same rules as [`JobType::from_str`], so that a client (or a
    /// fuzzer) knows which names are accepted before sending one.
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "The name that selects a job's handler: 1 to 128 characters, none of them \
                 whitespace or a control character.",
            ))
            .min_length(Some(1))
            .max_length(Some(Self::MAX_LEN))
            .pattern(Some(JOB_TYPE_PATTERN))
            .examples(["send-email"])
            .into()
    }
}

impl utoipa::ToSchema for JobType {}

impl<'de> Deserialize<'de> for JobType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A validated request to create one job.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub tenant: TenantId,
    pub job_type: JobType,
    pub payload: Value,
    pub priority: Priority,
    /// Attempts before the job counts as failed (at least 1).
    pub max_attempts: i32,
    /// Not before this time (a delayed job); `None`: now.
    pub run_at: Option<DateTime<Utc>>,
    /// Each attempt is cancelled after this long.
    pub timeout_ms: Option<i64>,
    /// The client's key for this creation, with a hash of the request that first used it.
    pub idempotency: Option<Idempotency>,
    /// How long the job is kept once finished; `None`: its final status's retention.
    pub retain_for: Option<Duration>,
}

/// An idempotency key and the hash of the request body it was first sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// Attempts a job gets unless its creator says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;

/// One attempt of a job that ended without success: what `error` said then.
/// The job keeps only its last attempt's `error`; these keep the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptError {
    /// The job's `attempt` when it ended. Not unique: a retry by hand counts
    /// attempts from 1 again, and an attempt handed back unfinished (by a
    /// stopping worker, or at an embedded restart) is not recorded.
    pub attempt: i32,
    /// Null when the attempt's start is not known.
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub error: String,
}

/// A job as the store holds it: the one truth about it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
// Every field is always present (null when it has no value), so the schema
// marks the optional ones required too.
pub struct Job {
    pub id: JobId,
    pub tenant_id: TenantId,
    #[serde(rename = "type")]
    pub job_type: JobType,
    /// Any JSON, as created.
    #[schema(value_type = Value)]
    pub payload: Value,
    pub priority: Priority,
    pub status: Status,
    /// How many times a worker has started this job (0 while never run).
    pub attempt: i32,
    pub max_attempts: i32,
    /// When a `scheduled` job becomes due.
    #[schema(required = true)]
    pub run_at: Option<DateTime<Utc>>,
    /// Each attempt is cancelled after this many milliseconds.
    #[schema(required = true)]
    pub timeout_ms: Option<i64>,
    #[schema(required = true)]
    pub idempotency_key: Option<String>,
    /// How long the job is kept once finished, as its creator asked
    /// (`retainFor`, as humantime text such as `1h 30m`); `null`: the
    /// retention of its final status.
    #[serde(serialize_with = "humantime_text")]
    #[schema(required = true, value_type = Option<String>, example = "7d")]
    pub retain_for: Option<Duration>,
    /// The handler's result, once the job succeeded: any JSON.
    #[schema(required = true, value_type = Value)]
    pub result: Option<Value>,
    /// Why the last attempt failed.
    #[schema(required = true)]
    pub error: Option<String>,
    /// The history of failed attempts, newest last: `error` only holds the
    /// last one, and a job's detail view shows every attempt. Appended by the
    /// same write that ends a failed attempt (a failure, a retry, a lost
    /// lease); kept by a retry by hand. Not in job updates (`JobUpdate`),
    /// which stay small.
    pub attempt_errors: Vec<AttemptError>,
    /// The last progress the handler reported, if any: any JSON.
    #[schema(required = true, value_type = Value)]
    pub progress: Option<Value>,
    /// Grows by one on every change of the row, so a reader can order what it sees.
    pub version: i64,
    /// Position of the job's last change in the store's change feed (for resume).
    #[serde(skip)]
    pub change_seq: i64,
    pub created_at: DateTime<Utc>,
    /// When the last attempt started.
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    /// When the job ended (succeeded, failed for good, or was cancelled).
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A duration as humantime text (`1h 30m`), which `retainFor` accepts again.
fn humantime_text<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.collect_str(&humantime::format_duration(*duration)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_priorities_round_trip_their_names() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        for priority in Priority::ALL {
            assert_eq!(priority.as_str().parse::<Priority>(), Ok(priority));
        }
        assert!("urgent".parse::<Priority>().is_err());
    }

    #[test]
    fn job_type_rejects_empty_and_whitespace() {
        assert!("send-email".parse::<JobType>().is_ok());
        assert!("".parse::<JobType>().is_err());
        assert!("send email".parse::<JobType>().is_err());
    }

    /// The limit is in characters, as the schema's `maxLength` counts them.
    #[test]
    fn job_type_length_counts_characters_not_bytes() {
        assert!("é".repeat(JobType::MAX_LEN).parse::<JobType>().is_ok());
        assert!("é".repeat(JobType::MAX_LEN + 1).parse::<JobType>().is_err());
    }

    /// The schema's pattern accepts exactly the characters the parser does.
    #[test]
    fn job_type_pattern_matches_what_the_parser_accepts() {
        let pattern = regex::Regex::new(JOB_TYPE_PATTERN).expect("the pattern compiles");
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let text = c.to_string();
            assert_eq!(
                pattern.is_match(&text),
                text.parse::<JobType>().is_ok(),
                "U+{:04X}",
                c as u32
            );
        }
    }
}
