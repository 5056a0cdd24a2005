//! The REST resource `/v1/jobs`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use jobwire_core::{
    DEFAULT_MAX_ATTEMPTS, Idempotency, Job, JobId, JobType, NewJob, Priority, Status, TenantId,
    json_len, parse_retain_for,
};
use jobwire_store::{Inserted, ListFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extract::{AppJson, JobIdPath, Tenant};
use crate::guard::record_job;
use crate::intake::announce_job;
use crate::payload::{Payload, is_nul_free};
use crate::{ApiError, AppState, Limits};

/// Body of `POST /v1/jobs`, and one entry of a batch.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"type": "send-email", "payload": {"to": "a@b.c"}, "priority": "high", "maxAttempts": 5}))]
pub(crate) struct CreateJob {
    #[serde(rename = "type")]
    job_type: JobType,
    /// Any JSON, handed to the handler (at most JOBWIRE_MAX_PAYLOAD_BYTES,
    /// 1 MiB by default, else 413; no U+0000 in a string, else 422);
    /// missing or null: `{}`.
    #[serde(default)]
    #[schema(value_type = Payload)]
    payload: Option<Payload>,
    /// Which queue the job waits in (`default` when missing).
    #[serde(default)]
    priority: Priority,
    /// Attempts before the job counts as failed (3 when missing or null).
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 100)]
    max_attempts: Option<i32>,
    /// Not before this time (RFC 3339), from 1970 to a hundred years ahead
    /// (else 422). Not with `delayMs`. The pattern holds the years 1971 to
    /// 2125, always inside that range whatever the offset.
    #[serde(default)]
    #[schema(pattern = "^(197[1-9]|19[89][0-9]|20[0-9][0-9]|21[01][0-9]|212[0-5])-")]
    run_at: Option<DateTime<Utc>>,
    /// Not before this many milliseconds from now, at most a hundred years.
    /// Not with `runAt`.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 0, maximum = 3_155_760_000_000_u64)]
    delay_ms: Option<u64>,
    /// Each attempt still running after this many milliseconds (at most a
    /// week) is cancelled and fails.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 604_800_000_u64)]
    timeout_ms: Option<u64>,
    /// A key of the tenant's for this creation (or the `Idempotency-Key`
    /// header, which must then be the same): a repeat gets the first job,
    /// with 200; the same key with another body gets 409.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000]*$")]
    idempotency_key: Option<String>,
    /// How long to keep the job once finished (humantime: `90s`, `7d`),
    /// instead of its final status's retention. Left out of the request's
    /// hash when absent, so keys used before it existed hash as they did.
    /// The document names the compact form (one number, one unit, within 1 s
    /// to 10 years); the server also takes the rest of humantime (`1h 30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        example = "7d",
        pattern = "^([1-9][0-9]{0,3}[smh]|([1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|36[0-4][0-9]|3650)d|([1-9]|10)y)$"
    )]
    retain_for: Option<String>,
}

/// An optional integer field, also when the JSON writes it with a zero
/// fraction (`5.0`): JSON Schema counts that as an integer, and so do clients
/// whose numbers are all floats. `5.5`, or a number out of `T`'s range, is
/// refused (422).
pub(crate) fn whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let out_of_range = || D::Error::custom(format!("{number} is out of range"));
    if let Some(n) = number.as_u64() {
        return T::try_from(n).map(Some).map_err(|_| out_of_range());
    }
    if let Some(n) = number.as_i64() {
        return T::try_from(n).map(Some).map_err(|_| out_of_range());
    }
    // 2^64 and -2^63: whole floats in between convert exactly.
    const PAST_U64: f64 = 18_446_744_073_709_551_616.0;
    const I64_MIN: f64 = -9_223_372_036_854_775_808.0;
    match number.as_f64() {
        Some(n) if n.fract() != 0.0 || !n.is_finite() => {
            Err(D::Error::custom(format!("{number} is not a whole number")))
        }
        Some(n) if (0.0..PAST_U64).contains(&n) => {
            T::try_from(n as u64).map(Some).map_err(|_| out_of_range())
        }
        Some(n) if (I64_MIN..0.0).contains(&n) => {
            T::try_from(n as i64).map(Some).map_err(|_| out_of_range())
        }
        _ => Err(out_of_range()),
    }
}

/// Body of `POST /v1/jobs/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBatch {
    /// 1 to JOBWIRE_MAX_BATCH (1000 by default) jobs, created all or none.
    #[schema(min_items = 1, max_items = 1000)]
    jobs: Vec<CreateJob>,
}

const MAX_ATTEMPTS: i32 = 100;
const MAX_KEY_LEN: usize = 255;
/// Furthest ahead a job may be scheduled (`runAt`, `delayMs`): a hundred
/// years. Beyond it a time is a mistake (`1e16` milliseconds is 300,000
/// years), and the arithmetic on it would overflow.
const MAX_DELAY_MS: u64 = 36_525 * 24 * 3600 * 1000;
/// Longest `timeoutMs`: a week.
const MAX_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;

impl CreateJob {
    fn into_new_job(self, tenant: &TenantId, limits: &Limits) -> Result<NewJob, ApiError> {
        let invalid = |detail: String| Err(ApiError::Unprocessable(detail));
        if !limits.known_types.is_empty() && !limits.known_types.contains(&self.job_type) {
            let known: Vec<&str> = limits.known_types.iter().map(JobType::as_str).collect();
            return invalid(format!(
                "no worker runs job type `{}`: the known types are {} (JOBWIRE_KNOWN_TYPES)",
                self.job_type,
                known.join(", ")
            ));
        }
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return invalid(format!("`maxAttempts` must be from 1 to {MAX_ATTEMPTS}"));
        }
        if let Some(ms) = self
            .timeout_ms
            .filter(|ms| !(1..=MAX_TIMEOUT_MS).contains(ms))
        {
            return invalid(format!(
                "`timeoutMs` must be from 1 to {MAX_TIMEOUT_MS} (a week), not {ms}"
            ));
        }
        let now = Utc::now();
        // Far inside chrono's range, so the sum cannot overflow.
        let latest = now + chrono::Duration::milliseconds(MAX_DELAY_MS as i64);
        let run_at = match (self.run_at, self.delay_ms) {
            (Some(_), Some(_)) => return invalid("give `runAt` or `delayMs`, not both".into()),
            (Some(at), None) if at > latest || at < DateTime::UNIX_EPOCH => {
                return invalid(format!(
                    "`runAt` must be from 1970 to a hundred years ahead ({}), not {}",
                    latest.to_rfc3339(),
                    at.to_rfc3339()
                ));
            }
            (Some(at), None) => Some(at),
            (None, Some(ms)) if ms > MAX_DELAY_MS => {
                return invalid(format!(
                    "`delayMs` must be at most {MAX_DELAY_MS} (a hundred years), not {ms}"
                ));
            }
            (None, Some(ms)) => Some(now + chrono::Duration::milliseconds(ms as i64)),
            (None, None) => None,
        };
        let idempotency = match &self.idempotency_key {
            Some(key) if key.is_empty() || key.chars().count() > MAX_KEY_LEN => {
                return invalid(format!(
                    "an idempotency key has 1 to {MAX_KEY_LEN} characters"
                ));
            }
            Some(key) if !is_nul_free(key) => {
                return invalid(
                    "an idempotency key cannot hold the character U+0000 (`\\u0000`)".into(),
                );
            }
            Some(key) => Some(Idempotency {
                key: key.clone(),
                request_hash: request_hash(&self),
            }),
            None => None,
        };
        let retain_for = self
            .retain_for
            .as_deref()
            .map(parse_retain_for)
            .transpose()
            .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        let payload = self
            .payload
            .map_or_else(|| Value::Object(Default::default()), |payload| payload.0);
        let size = json_len(&payload);
        if size > limits.max_payload_bytes {
            return Err(ApiError::PayloadTooLarge(format!(
                "the payload is {size} bytes of JSON; the limit is {} bytes",
                limits.max_payload_bytes
            )));
        }
        Ok(NewJob {
            id: JobId::new(),
            tenant: tenant.clone(),
            job_type: self.job_type,
            payload,
            priority: self.priority,
            max_attempts,
            run_at,
            // At most a week, checked above.
            timeout_ms: self.timeout_ms.map(|ms| ms as i64),
            idempotency,
            retain_for,
        })
    }
}

/// What a create request's fingerprint is taken over: every field but the
/// key, in the order and with the names of [`CreateJob`], so that the hashes
/// stored by earlier releases stay the same.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Fingerprinted<'a> {
    #[serde(rename = "type")]
    job_type: &'a JobType,
    payload: Option<&'a Value>,
    priority: Priority,
    max_attempts: Option<i32>,
    run_at: Option<DateTime<Utc>>,
    delay_ms: Option<u64>,
    timeout_ms: Option<u64>,
    /// Absent from the text when unset, so hashes from before `retainFor` stay the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    retain_for: Option<&'a str>,
}

/// A stable fingerprint of a create request (without its key): FNV-1a over
/// its JSON, so the same key with another body can be told apart.
fn request_hash(job: &CreateJob) -> String {
    let fingerprinted = Fingerprinted {
        job_type: &job.job_type,
        payload: job.payload.as_ref().map(|payload| &payload.0),
        priority: job.priority,
        max_attempts: job.max_attempts,
        run_at: job.run_at,
        delay_ms: job.delay_ms,
        timeout_ms: job.timeout_ms,
        retain_for: job.retain_for.as_deref(),
    };
    let text = serde_json::to_string(&fingerprinted).unwrap_or_default();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Creates a job.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    operation_id = "createJob",
    tag = "jobs",
    security(("bearer" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[\\x21-\\x7e]([\\t\\x20-\\x7e]*[\\x21-\\x7e])?$",
         description = "The same as the body's `idempotencyKey`, which it must equal if both are given"),
    ),
    request_body(content = CreateJob, content_type = "application/json"),
    responses(
        (status = 201, description = "Created: `queued`, or `scheduled` when `runAt` or `delayMs` puts it later", body = Job),
        (status = 200, description = "The first job created with this idempotency key, with the same body", body = Job),
        (status = 400, description = "Malformed JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The idempotency key was used with another body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The payload is over JOBWIRE_MAX_PAYLOAD_BYTES, or the body over JOBWIRE_MAX_BODY_BYTES", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "JSON of the wrong shape or out of range (`detail` says which field)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over the tenant's queued-jobs cap or create rate; `Retry-After` says when to try again", body = crate::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    AppJson(mut body): AppJson<CreateJob>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    if let Some(header) = headers.get("idempotency-key") {
        let header = header
            .to_str()
            .map_err(|_| ApiError::BadRequest("the Idempotency-Key header must be text".into()))?;
        match &body.idempotency_key {
            Some(field) if field != header => {
                return Err(ApiError::Unprocessable(
                    "the Idempotency-Key header and the `idempotencyKey` field differ".into(),
                ));
            }
            _ => body.idempotency_key = Some(header.to_owned()),
        }
    }
    let new = body.into_new_job(&tenant, state.limits())?;
    crate::quota::admit(&state, &tenant, 1).await?;
    let inserted = state.intake().create(vec![new]).await?.pop();
    match inserted {
        Some(Inserted::Created(job)) => {
            record_job(&job);
            Ok((StatusCode::CREATED, Json(job)))
        }
        Some(Inserted::Existing(job)) => {
            record_job(&job);
            Ok((StatusCode::OK, Json(job)))
        }
        None => Err(ApiError::Unavailable(
            "the job was not stored; try again".into(),
        )),
    }
}

/// A page of jobs, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct JobList {
    jobs: Vec<Job>,
    /// Pass it as `cursor` for the next page; null on the last page (and
    /// always in a batch's answer).
    #[serde(rename = "nextCursor")]
    #[schema(required = true)]
    next_cursor: Option<JobId>,
}

/// Creates many jobs at once, all or none.
#[utoipa::path(
    post,
    path = "/v1/jobs/batch",
    operation_id = "createJobs",
    tag = "jobs",
    security(("bearer" = [])),
    request_body(content = CreateBatch, content_type = "application/json"),
    responses(
        (status = 201, description = "Created, in the order sent (`nextCursor` is null)", body = JobList),
        (status = 200, description = "Every job was an idempotent repeat: the first jobs created with those keys", body = JobList),
        (status = 400, description = "Malformed JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "An idempotency key was used with another body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "A payload is over JOBWIRE_MAX_PAYLOAD_BYTES, or the body over JOBWIRE_MAX_BODY_BYTES", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "JSON of the wrong shape or out of range, 0 or more than JOBWIRE_MAX_BATCH jobs (`detail` names the job as `jobs[i]`), or more jobs than the tenant's create burst", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over the tenant's queued-jobs cap or create rate; `Retry-After` says when to try again", body = crate::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ),
)]
pub(crate) async fn create_batch(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    AppJson(body): AppJson<CreateBatch>,
) -> Result<(StatusCode, Json<JobList>), ApiError> {
    let max = state.limits().max_batch;
    if body.jobs.is_empty() || body.jobs.len() > max {
        return Err(ApiError::Unprocessable(format!(
            "a batch holds 1 to {max} jobs; this one has {}",
            body.jobs.len()
        )));
    }
    let new = body
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            job.into_new_job(&tenant, state.limits())
                .map_err(|e| match e {
                    ApiError::PayloadTooLarge(detail) => {
                        ApiError::PayloadTooLarge(format!("jobs[{i}]: {detail}"))
                    }
                    ApiError::Unprocessable(detail) => {
                        ApiError::Unprocessable(format!("jobs[{i}]: {detail}"))
                    }
                    other => other,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    crate::quota::admit(&state, &tenant, new.len()).await?;
    let inserted = state.intake().create(new).await?;
    let status = if inserted.iter().any(|i| matches!(i, Inserted::Created(_))) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let jobs = inserted.iter().map(|i| i.job().clone()).collect();
    Ok((
        status,
        Json(JobList {
            jobs,
            next_cursor: None,
        }),
    ))
}

/// One job of the tenant, with its attempts' errors.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "getJob",
    tag = "jobs",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job's ID")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 400, description = "The ID is not a UUID", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job of the tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>, ApiError> {
    let job = state
        .store()
        .get(&tenant, id)
        .await?
        .ok_or(ApiError::JobNotFound(id))?;
    record_job(&job);
    Ok(Json(job))
}

/// Cancels a scheduled, queued or running job (a running one's handler is
/// told within a second).
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    operation_id = "cancelJob",
    tag = "jobs",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job's ID")),
    responses(
        (status = 200, description = "The job, now `cancelled`", body = Job),
        (status = 400, description = "The ID is not a UUID", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job of the tenant", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has already ended", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>, ApiError> {
    let job = state.store().cancel(&tenant, id).await?;
    record_job(&job);
    metrics::counter!(
        jobwire_metrics::JOBS_FINISHED,
        "type" => jobwire_metrics::type_label(job.job_type.as_str()),
        "status" => job.status.as_str()
    )
    .increment(1);
    announce_job(state.broker(), &job).await;
    Ok(Json(job))
}

/// Queues a failed (dead-lettered) or cancelled job again.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/retry",
    operation_id = "retryJob",
    tag = "jobs",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job's ID")),
    responses(
        (status = 200, description = "The job, `queued` again, its attempts counting from 1 (`attemptErrors` kept)", body = Job),
        (status = 400, description = "The ID is not a UUID", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job of the tenant", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is neither failed nor cancelled", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>, ApiError> {
    let job = state.store().retry(&tenant, id).await?;
    record_job(&job);
    announce_job(state.broker(), &job).await;
    Ok(Json(job))
}

/// Query of `GET /v1/jobs`; values are strings so that a bad one gets our error.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

impl ListQuery {
    fn into_filter(self) -> Result<ListFilter, ApiError> {
        let invalid = |e: jobwire_core::InvalidValue| ApiError::Unprocessable(e.to_string());
        let limit = match self.limit.as_deref().filter(|s| !s.is_empty()) {
            None => DEFAULT_PAGE,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::Unprocessable(format!(
                        "`limit` must be a whole number from 1 to {MAX_PAGE}; got `{raw}`"
                    ))
                })?,
        };
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(ListFilter {
            status: nonempty(self.status)
                .map(|s| s.parse::<Status>())
                .transpose()
                .map_err(invalid)?,
            job_type: nonempty(self.job_type)
                .map(|s| s.parse::<JobType>())
                .transpose()
                .map_err(invalid)?,
            before: nonempty(self.cursor)
                .map(|s| s.parse::<JobId>())
                .transpose()
                .map_err(|e| ApiError::Unprocessable(format!("bad `cursor`: {e}")))?,
            limit,
        })
    }
}

/// The tenant's jobs, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    operation_id = "listJobs",
    tag = "jobs",
    security(("bearer" = [])),
    params(
        ("status" = Option<Status>, Query, description = "Only jobs in this status (`failed`: the dead letter)"),
        ("type" = Option<JobType>, Query, description = "Only jobs of this type"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Jobs per page (50 when missing)"),
        ("cursor" = Option<JobId>, Query, description = "The previous page's `nextCursor`: jobs older than it"),
    ),
    responses(
        (status = 200, description = "A page of jobs", body = JobList),
        (status = 400, description = "A query that cannot be read", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value out of range or unknown (`detail` says which)", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let page = state.store().list(&tenant, &query.into_filter()?).await?;
    Ok(Json(JobList {
        jobs: page.jobs,
        next_cursor: page.next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored hashes outlive a release: the same request must hash the same
    /// as it always did, key or no key, or an idempotent repeat would get 409.
    #[test]
    fn the_request_hash_is_stable_and_leaves_out_the_key() {
        let body = r#"{"type":"send-email","payload":{"to":"a@b.c","n":[1,2]},"priority":"high",
            "maxAttempts":5,"runAt":"2030-01-02T03:04:05Z","timeoutMs":1000,"idempotencyKey":"k1"}"#;
        let job: CreateJob = serde_json::from_str(body).expect("a valid body");
        let without_key: CreateJob =
            serde_json::from_str(&body.replace(r#","idempotencyKey":"k1""#, ""))
                .expect("a valid body");
        assert_eq!(request_hash(&job), "3df5666ffd0e7d09");
        assert_eq!(request_hash(&without_key), request_hash(&job));
        let delayed: CreateJob =
            serde_json::from_str(r#"{"type":"noop","delayMs":5}"#).expect("a valid body");
        assert_eq!(request_hash(&delayed), "2ea3dd2c0258938f");
    }
}
