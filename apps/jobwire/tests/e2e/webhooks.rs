//! Webhook jobs (issue 11 §2): a job type bound in jobwire.toml to an HTTP
//! endpoint. Each test runs a real receiver (axum on 127.0.0.1:0) that
//! verifies the signature with its own few lines of the documented scheme,
//! not the worker's code, and answers 401 when it does not verify.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use uuid::Uuid;

use crate::processes;
use crate::support::{Backend, Options, SpawnProc, WAIT, spawn_app_with, statuses};

/// The secret the receiver verifies with.
const HOOK_SECRET: &str = "whsec-receivers-secret";
/// Signatures older (or newer) than this are refused, as the README advises.
const TOLERANCE_SECS: u64 = 300;

/// One request the receiver got.
#[derive(Debug)]
struct Delivery {
    headers: HeaderMap,
    body: Value,
    verified: bool,
}

impl Delivery {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("header {name} in {:?}", self.headers))
    }

    fn attempt(&self) -> u64 {
        self.body["attempt"].as_u64().expect("attempt in the body")
    }
}

/// How the receiver answers a delivery whose signature verified.
enum Reply {
    Json(u16, Value),
    Text(u16, &'static str),
    /// Never answers (until the worker gives up and closes the connection).
    Hang,
}

type Answer = dyn Fn(&Delivery) -> Reply + Send + Sync;

/// A receiver as a user would write one: verify, then do the job.
struct Receiver {
    url: String,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    /// One message per hanging request dropped: the worker closed its connection.
    hangs_ended: mpsc::UnboundedReceiver<()>,
    _server: AbortOnDropHandle<()>,
}

/// Held by a hanging request; tells when the server drops it.
struct Hanging(mpsc::UnboundedSender<()>);

impl Drop for Hanging {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

impl Receiver {
    async fn start(answer: impl Fn(&Delivery) -> Reply + Send + Sync + 'static) -> Receiver {
        let answer: Arc<Answer> = Arc::new(answer);
        let (seen, deliveries) = mpsc::unbounded_channel();
        let (hang_ended, hangs_ended) = mpsc::unbounded_channel();
        let app = axum::Router::new().route(
            "/jobs/{job_type}",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (answer, seen) = (Arc::clone(&answer), seen.clone());
                let hang_ended = hang_ended.clone();
                async move { receive(headers, body, &*answer, &seen, hang_ended).await }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url: format!("http://{addr}/jobs/send-email"),
            deliveries,
            hangs_ended,
            _server: AbortOnDropHandle::new(server),
        }
    }

    async fn next(&mut self) -> Delivery {
        tokio::time::timeout(WAIT, self.deliveries.recv())
            .await
            .expect("a delivery in time")
            .expect("the receiver runs")
    }

    /// Waits until a hanging request is dropped.
    async fn hang_ended(&mut self) {
        tokio::time::timeout(WAIT, self.hangs_ended.recv())
            .await
            .expect("the hanging request ends in time")
            .expect("the receiver runs");
    }

    /// Deliveries that arrived and were not read yet.
    fn unread(&mut self) -> usize {
        std::iter::from_fn(|| self.deliveries.try_recv().ok()).count()
    }
}

async fn receive(
    headers: HeaderMap,
    body: Bytes,
    answer: &Answer,
    seen: &mpsc::UnboundedSender<Delivery>,
    hang_ended: mpsc::UnboundedSender<()>,
) -> Response {
    let delivery = Delivery {
        verified: verify(&headers, &body),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        headers,
    };
    let reply = if delivery.verified {
        answer(&delivery)
    } else {
        Reply::Text(401, "bad signature")
    };
    seen.send(delivery).unwrap();
    match reply {
        Reply::Json(status, value) => (
            StatusCode::from_u16(status).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            value.to_string(),
        )
            .into_response(),
        Reply::Text(status, text) => (StatusCode::from_u16(status).unwrap(), text).into_response(),
        Reply::Hang => {
            let _hanging = Hanging(hang_ended);
            std::future::pending::<Response>().await
        }
    }
}

/// The documented check: `jobwire-signature: t=<unix secs>,v1=<hex>`, where
/// hex is HMAC-SHA256(secret, "<t>." + body), compared in constant time, and
/// t no more than five minutes off.
fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(signature) = headers
        .get("jobwire-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let field = |name: &str| {
        signature
            .split(',')
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
    };
    let (Some(t), Some(v1)) = (field("t"), field("v1")) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (Ok(sent), Some(mac_bytes)) = (t.parse::<u64>(), hex(v1)) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    now.abs_diff(sent) <= TOLERANCE_SECS && mac.verify_slice(&mac_bytes).is_ok()
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A jobwire.toml of its own, removed when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        let path = std::env::temp_dir().join(format!("jobwire-{}.toml", Uuid::new_v4().simple()));
        std::fs::write(&path, text).unwrap();
        ConfigFile(path)
    }

    /// `send-email` jobs go to `url`, signed with `secret`.
    fn webhook(url: &str, secret: &str, timeout: &str) -> ConfigFile {
        ConfigFile::new(&format!(
            "[handlers.send-email]\nurl = \"{url}\"\ntimeout = \"{timeout}\"\nsecret = \"{secret}\"\n\
             headers = {{ \"x-api-key\" = \"key-123\" }}\n"
        ))
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn with_config(backend: Backend, config: &ConfigFile) -> Options {
    Options {
        worker_config: Some(config.0.clone()),
        ..Options::on(backend)
    }
}

fn email(to: &str, max_attempts: u32) -> Value {
    json!({"type": "send-email", "payload": {"to": to}, "maxAttempts": max_attempts})
}

/// `(attempt, error)` of each failed attempt of a job, oldest first.
fn attempt_errors(job: &Value) -> Vec<(i64, String)> {
    job["attemptErrors"]
        .as_array()
        .expect("attemptErrors")
        .iter()
        .map(|e| {
            (
                e["attempt"].as_i64().unwrap(),
                e["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn a_2xx_json_answer_is_the_jobs_result(backend: Backend) {
    let mut receiver = Receiver::start(|delivery| match delivery.body["payload"]["to"].as_str() {
        Some("nobody") => Reply::Text(204, ""),
        to => Reply::Json(200, json!({"sent": true, "to": to})),
    })
    .await;
    let config = ConfigFile::webhook(&receiver.url, HOOK_SECRET, "5s");
    let app = spawn_app_with(with_config(backend, &config)).await;
    let mut ws = app.ws("acme").await;

    let id = app.create("acme", email("ada@example.com", 3)).await;
    let updates = ws.until_status(&id, "succeeded").await;
    assert_eq!(statuses(&updates), ["queued", "running", "succeeded"]);
    let (_, done) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(
        (&done["result"], done["attempt"].as_i64()),
        (&json!({"sent": true, "to": "ada@example.com"}), Some(1)),
        "{done}"
    );

    let delivery = receiver.next().await;
    assert!(delivery.verified, "the signature verifies");
    assert_eq!(
        delivery.body,
        json!({"id": id, "tenantId": "acme", "type": "send-email", "attempt": 1,
               "payload": {"to": "ada@example.com"}})
    );
    assert_eq!(delivery.header("content-type"), "application/json");
    assert_eq!(delivery.header("jobwire-job-id"), id);
    assert_eq!(delivery.header("jobwire-attempt"), "1");
    assert_eq!(
        delivery.header("x-api-key"),
        "key-123",
        "configured headers"
    );

    let empty = app.create("acme", email("nobody", 3)).await;
    ws.until_status(&empty, "succeeded").await;
    let (_, done) = app.get("acme", &format!("/v1/jobs/{empty}")).await;
    assert_eq!(done["result"], Value::Null, "an empty 2xx is a null result");
}

async fn a_4xx_or_a_2xx_that_is_not_json_fails_the_job_at_once(backend: Backend) {
    let mut receiver = Receiver::start(|delivery| match delivery.body["payload"]["to"].as_str() {
        Some("not-json") => Reply::Text(200, "ok, sent"),
        _ => Reply::Text(422, "no such mailbox"),
    })
    .await;
    let config = ConfigFile::webhook(&receiver.url, HOOK_SECRET, "5s");
    let app = spawn_app_with(with_config(backend, &config)).await;
    let mut ws = app.ws("acme").await;

    for (to, said) in [
        (
            "ghost@example.com",
            "422 Unprocessable Entity: no such mailbox",
        ),
        ("not-json", "not JSON"),
    ] {
        let id = app.create("acme", email(to, 3)).await;
        let updates = ws.until_status(&id, "failed").await;
        assert_eq!(statuses(&updates), ["queued", "running", "failed"]);
        let (_, failed) = app.get("acme", &format!("/v1/jobs/{id}")).await;
        let errors = attempt_errors(&failed);
        assert_eq!(errors.len(), 1, "no retry, 2 attempts left: {failed}");
        assert!(errors[0].1.contains(said), "{to}: {failed}");
        assert_eq!(receiver.next().await.attempt(), 1);
    }
    assert_eq!(receiver.unread(), 0, "one delivery per job");
}

async fn a_5xx_answer_is_retried_until_the_endpoint_succeeds(backend: Backend) {
    let mut receiver = Receiver::start(|delivery| match delivery.attempt() {
        1 => Reply::Text(503, "busy, try later"),
        _ => Reply::Json(200, json!({"sent": true})),
    })
    .await;
    let config = ConfigFile::webhook(&receiver.url, HOOK_SECRET, "5s");
    let app = spawn_app_with(with_config(backend, &config)).await;
    let mut ws = app.ws("acme").await;

    let id = app.create("acme", email("ada@example.com", 3)).await;
    let updates = ws.until_status(&id, "succeeded").await;
    assert_eq!(
        statuses(&updates),
        [
            "queued",
            "running",
            "scheduled",
            "queued",
            "running",
            "succeeded"
        ]
    );
    let (_, done) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(
        (done["attempt"].as_i64(), &done["result"]),
        (Some(2), &json!({"sent": true}))
    );
    assert_eq!(
        attempt_errors(&done),
        [(
            1,
            "the endpoint answered 503 Service Unavailable: busy, try later".to_owned()
        )]
    );
    for attempt in ["1", "2"] {
        let delivery = receiver.next().await;
        assert!(delivery.verified);
        assert_eq!(delivery.header("jobwire-attempt"), attempt);
    }
}

async fn an_endpoint_that_does_not_answer_in_time_is_retried(backend: Backend) {
    let mut receiver = Receiver::start(|delivery| match delivery.attempt() {
        1 => Reply::Hang,
        _ => Reply::Json(200, json!({"sent": true})),
    })
    .await;
    let config = ConfigFile::webhook(&receiver.url, HOOK_SECRET, "300ms");
    let app = spawn_app_with(with_config(backend, &config)).await;
    let mut ws = app.ws("acme").await;

    let id = app.create("acme", email("ada@example.com", 3)).await;
    ws.until_status(&id, "succeeded").await;
    let (_, done) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(
        attempt_errors(&done),
        [(1, "the endpoint did not answer within 300ms".to_owned())]
    );
    assert_eq!(receiver.next().await.attempt(), 1);
    assert_eq!(receiver.next().await.attempt(), 2);
}

async fn cancelling_the_job_aborts_its_request(backend: Backend) {
    let mut receiver = Receiver::start(|_| Reply::Hang).await;
    let config = ConfigFile::webhook(&receiver.url, HOOK_SECRET, "60s");
    let app = spawn_app_with(with_config(backend, &config)).await;
    let mut ws = app.ws("acme").await;

    let id = app.create("acme", email("ada@example.com", 3)).await;
    assert!(receiver.next().await.verified, "the request is in flight");
    let (code, _) = app
        .post("acme", &format!("/v1/jobs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(code, 200);
    ws.until_status(&id, "cancelled").await;
    receiver.hang_ended().await;
    let (_, cancelled) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
}

async fn a_receiver_refuses_a_wrong_signature_and_the_job_fails_at_once(backend: Backend) {
    let mut receiver = Receiver::start(|_| Reply::Json(200, json!({"sent": true}))).await;
    let config = ConfigFile::webhook(&receiver.url, "not-the-receivers-secret", "5s");
    let app = spawn_app_with(with_config(backend, &config)).await;
    let mut ws = app.ws("acme").await;

    let id = app.create("acme", email("ada@example.com", 3)).await;
    ws.until_status(&id, "failed").await;
    let (_, failed) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(
        attempt_errors(&failed),
        [(
            1,
            "the endpoint answered 401 Unauthorized: bad signature".to_owned()
        )]
    );
    let delivery = receiver.next().await;
    assert!(!delivery.verified, "the receiver saw a bad signature");
    assert!(delivery.header("jobwire-signature").starts_with("t="));
    assert_eq!(receiver.unread(), 0);
}

async fn an_unreachable_endpoint_is_retried_and_its_address_kept_from_the_tenant(backend: Backend) {
    // A port just freed: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let config = ConfigFile::webhook(
        &format!("http://127.0.0.1:{port}/jobs/send-email"),
        HOOK_SECRET,
        "5s",
    );
    let app = spawn_app_with(with_config(backend, &config)).await;
    let mut ws = app.ws("acme").await;

    let id = app.create("acme", email("ada@example.com", 2)).await;
    ws.until_status(&id, "failed").await;
    let (_, failed) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    let errors = attempt_errors(&failed);
    assert_eq!(errors.len(), 2, "retried: {failed}");
    for (_, error) in errors {
        assert!(error.starts_with("cannot reach the endpoint"), "{error}");
        assert!(!error.contains(&port.to_string()), "{error}");
    }
}

in_both_modes!(
    a_2xx_json_answer_is_the_jobs_result,
    a_4xx_or_a_2xx_that_is_not_json_fails_the_job_at_once,
    a_5xx_answer_is_retried_until_the_endpoint_succeeds,
    an_endpoint_that_does_not_answer_in_time_is_retried,
    cancelling_the_job_aborts_its_request,
    a_receiver_refuses_a_wrong_signature_and_the_job_fails_at_once,
    an_unreachable_endpoint_is_retried_and_its_address_kept_from_the_tenant,
);

#[tokio::test]
async fn jobwire_worker_signs_with_the_secret_of_the_named_environment_variable() {
    let mut receiver = Receiver::start(|_| Reply::Json(200, json!({"sent": true}))).await;
    let config = ConfigFile::new(&format!(
        "[handlers.send-email]\nurl = \"{}\"\nsecret_env = \"EMAIL_HOOK_SECRET\"\n",
        receiver.url
    ));
    let app = spawn_app_with(Options::without_worker()).await;
    let _worker = processes::command(env!("CARGO_BIN_EXE_jobwire-worker"), &app)
        .env("JOBWIRE_CONFIG", &config.0)
        .env("EMAIL_HOOK_SECRET", HOOK_SECRET)
        .spawn_proc();
    let mut ws = app.ws("acme").await;

    let id = app.create("acme", email("ada@example.com", 1)).await;
    ws.until_status(&id, "succeeded").await;
    assert!(receiver.next().await.verified);
}

/// Runs `binary` with `env` in `dir` until it exits; `(success, stderr)`.
async fn run_in(binary: &str, dir: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let output = tokio::process::Command::new(binary)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .env("JOBWIRE_ADDR", "127.0.0.1:0")
        .env("JOBWIRE_METRICS_ADDR", "off")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, output)
        .await
        .expect("a bad configuration stops the process at once")
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_bad_configuration_stops_startup_naming_the_file_and_the_handler() {
    let dir = std::env::temp_dir().join(format!("jobwire-config-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing_secret = ConfigFile::new(
        "[handlers.send-email]\nurl = \"http://127.0.0.1:9/\"\nsecret_env = \"EMAIL_HOOK_SECRET\"\n",
    );
    let unknown_field = ConfigFile::new(
        "[handlers.resize]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s\"\nretries = 3\n",
    );
    let missing_file = dir.join("absent.toml");
    let missing_file = missing_file.to_str().unwrap();
    // Found in the working directory, with none named.
    std::fs::write(
        dir.join("jobwire.toml"),
        "[handlers.echo]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s\"\n",
    )
    .unwrap();
    let cases: [(&str, &[&str]); 4] = [
        (
            missing_secret.0.to_str().unwrap(),
            &[
                "handler `send-email`",
                "EMAIL_HOOK_SECRET, which is not set",
            ],
        ),
        (
            unknown_field.0.to_str().unwrap(),
            &["handler `resize`", "unknown field `retries`"],
        ),
        (missing_file, &["cannot read the configuration file"]),
        ("", &["handler `echo`", "built-in handler"]),
    ];
    for binary in [
        env!("CARGO_BIN_EXE_jobwire-worker"),
        env!("CARGO_BIN_EXE_jobwire"),
    ] {
        for (file, said) in cases {
            let env: &[(&str, &str)] = if file.is_empty() {
                &[]
            } else {
                &[("JOBWIRE_CONFIG", file)]
            };
            let (success, stderr) = run_in(binary, &dir, env).await;
            let named = if file.is_empty() {
                "jobwire.toml"
            } else {
                file
            };
            assert!(!success, "{binary} {file}: refused");
            assert!(
                stderr.contains(named) && said.iter().all(|s| stderr.contains(s)),
                "{binary} names {named} and says {said:?}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
        let help = tokio::process::Command::new(binary)
            .arg("--help")
            .env_clear()
            .output()
            .await
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains("--config") && help.contains("JOBWIRE_CONFIG"),
            "{help}"
        );
    }
    assert!(
        !dir.join("jobwire.db").exists(),
        "refused before opening any store"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
