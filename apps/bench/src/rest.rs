//! Creating jobs over the REST API, with the peer benchmark's payload.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Every job's payload: exactly the peer's (BullMQ) 211 bytes of JSON.
pub const PAYLOAD: &str = r#"{"to":"user42@example.com","template":"welcome_v2","locale":"en-US","vars":{"first_name":"Ada","plan":"pro","trial_days":14},"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","priority":5,"source":"api","attempt":1}"#;

/// The job type every benchmark job has: its handler succeeds at once.
pub const JOB_TYPE: &str = "noop";

/// The body of `POST /v1/jobs`.
pub fn job_body() -> String {
    format!(r#"{{"type":"{JOB_TYPE}","payload":{PAYLOAD}}}"#)
}

/// The body of `POST /v1/jobs/batch` with `n` jobs.
pub fn batch_body(n: usize) -> String {
    let job = job_body();
    let jobs: Vec<&str> = std::iter::repeat_n(job.as_str(), n).collect();
    format!(r#"{{"jobs":[{}]}}"#, jobs.join(","))
}

/// One tenant's client of one API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// When a job was created and when its last attempt started, as the store
/// recorded them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Times {
    created_at: chrono::DateTime<chrono::Utc>,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Deserialize)]
struct CreatedBatch {
    jobs: Vec<IgnoredAny>,
}

impl Api {
    /// A client with keep-alive connections (reqwest pools them and opens
    /// more while all are busy).
    pub fn new(addr: &str, token: String) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            http,
            base: format!("http://{addr}"),
            token,
        })
    }

    /// `POST /v1/jobs/batch` with a body of `expected` jobs.
    pub async fn create_batch(&self, body: String, expected: usize) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/v1/jobs/batch", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .context("POST /v1/jobs/batch")?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("reading the batch response")?;
        if status != reqwest::StatusCode::CREATED {
            bail!("POST /v1/jobs/batch answered {status}: {text}");
        }
        let created: CreatedBatch =
            serde_json::from_str(&text).context("the batch response is not a job list")?;
        if created.jobs.len() != expected {
            bail!("a batch of {expected} created {} jobs", created.jobs.len());
        }
        Ok(())
    }

    /// `POST /v1/jobs`; the created job's ID.
    pub async fn create_one(&self, body: String) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .context("POST /v1/jobs")?;
        let status = response.status();
        if status != reqwest::StatusCode::CREATED {
            let text = response.text().await.unwrap_or_default();
            bail!("POST /v1/jobs answered {status}: {text}");
        }
        let created: Created = response.json().await.context("the created job")?;
        Ok(created.id)
    }

    /// `GET /v1/jobs/{id}`: from the job's creation to its start, in
    /// milliseconds, by the store's own record of both.
    pub async fn start_delay_ms(&self, id: &str) -> anyhow::Result<f64> {
        let response = self
            .http
            .get(format!("{}/v1/jobs/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .context("GET /v1/jobs/{id}")?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let text = response.text().await.unwrap_or_default();
            bail!("GET /v1/jobs/{id} answered {status}: {text}");
        }
        let times: Times = response.json().await.context("the job")?;
        let started = times
            .started_at
            .with_context(|| format!("job {id} has not started"))?;
        Ok((started - times.created_at).as_seconds_f64() * 1000.0)
    }

    /// `POST /v1/jobs/{id}/cancel`: true if cancelled, false if it had ended already (409).
    pub async fn cancel(&self, id: &str) -> anyhow::Result<bool> {
        let response = self
            .http
            .post(format!("{}/v1/jobs/{id}/cancel", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .context("POST /v1/jobs/{id}/cancel")?;
        match response.status() {
            reqwest::StatusCode::OK => Ok(true),
            reqwest::StatusCode::CONFLICT => Ok(false),
            status => {
                let text = response.text().await.unwrap_or_default();
                bail!("POST /v1/jobs/{id}/cancel answered {status}: {text}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_the_peers_211_bytes_of_json() {
        assert_eq!(PAYLOAD.len(), 211);
        let parsed: serde_json::Value = serde_json::from_str(PAYLOAD).expect("the payload is JSON");
        assert_eq!(parsed["vars"]["trial_days"], 14);
    }

    #[test]
    fn a_batch_body_holds_n_noop_jobs() {
        let body: serde_json::Value =
            serde_json::from_str(&batch_body(3)).expect("a batch body is JSON");
        let jobs = body["jobs"].as_array().expect("a jobs array");
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs[2]["type"], "noop");
        assert_eq!(
            jobs[2]["payload"]["trace_id"],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
