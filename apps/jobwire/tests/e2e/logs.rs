//! Structured logs (`JOBWIRE_LOG_FORMAT=json`) of the real binaries: every
//! stderr line is one JSON object, every line about a job says which job,
//! tenant and attempt, and every line about a request carries the request ID
//! the client got back as `x-request-id`.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::Notify;

use crate::processes::{command, wait_for_status};
use crate::support::{Options, Proc, SpawnProc, TestApp, WAIT, job, spawn_app_with, wait_ready};

/// The stderr lines of one process, as they come.
#[derive(Clone, Default)]
struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    added: Arc<Notify>,
}

impl Lines {
    /// Reads `child`'s stderr into these lines until it closes.
    fn collect(child: &mut Proc) -> Self {
        let lines = Self::default();
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lines.lock().unwrap().push(line);
                sink.added.notify_waiters();
            }
        });
        lines
    }

    /// Every line so far, each parsed as JSON (failing on one that is not).
    fn parsed(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|line| {
                let value: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a stderr line that is not JSON ({e}): {line}"));
                assert!(value.is_object(), "a line that is not an object: {line}");
                value
            })
            .collect()
    }

    /// The first line matching `wanted`, once it is logged.
    async fn wait_for(&self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let added = self.added.notified();
                if let Some(line) = self.parsed().into_iter().find(&wanted) {
                    return line;
                }
                added.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no line {what}: {:#?}", self.parsed()))
    }
}

/// A binary of the test app's, logging JSON at `info` to a pipe.
fn logging(binary: &str, app: &TestApp) -> Command {
    let mut command = command(binary, app);
    command
        .env("RUST_LOG", "info")
        .env("JOBWIRE_LOG_FORMAT", "json")
        .env("JOBWIRE_LEASE_TTL", "1s")
        .env("JOBWIRE_RETRY_BASE", "20ms")
        .env("JOBWIRE_RETRY_CAP", "50ms")
        .stderr(Stdio::piped());
    command
}

#[tokio::test]
async fn json_logs_say_which_job_tenant_attempt_and_request_every_line_is_about() {
    let app = spawn_app_with(Options::without_worker()).await;
    let mut api = logging(env!("CARGO_BIN_EXE_jobwire-api"), &app).spawn_proc();
    let api_lines = Lines::collect(&mut api);
    let banner = BufReader::new(api.stdout.take().unwrap())
        .lines()
        .next_line()
        .await
        .unwrap()
        .expect("jobwire-api prints its address");
    let base = banner.rsplit(' ').next().unwrap().to_owned();
    let http = reqwest::Client::new();
    wait_ready(&http, &format!("{base}/readyz")).await;
    let token = app.token("acme");

    // A request with the client's own ID: returned, and in the request's line.
    let response = http
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(&token)
        .header("x-request-id", "logs-test-42")
        .json(&job("sleep", json!({"ms": 60_000})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-request-id"], "logs-test-42");
    let stalled: Value = response.json().await.unwrap();
    let stalled = stalled["id"].as_str().unwrap().to_owned();
    let answered = api_lines
        .wait_for("for the create", |l| l["request_id"] == "logs-test-42")
        .await;
    assert_eq!(answered["target"], "jobwire::access");
    assert_eq!(answered["status"], 201);
    assert_eq!(answered["method"], "POST");
    assert_eq!(
        (
            &answered["job_id"],
            &answered["tenant"],
            &answered["attempt"]
        ),
        (&json!(stalled), &json!("acme"), &json!(0))
    );

    // A lease expiry: the first worker stalls mid-job, the second takes over.
    let mut stalling = logging(env!("CARGO_BIN_EXE_jobwire-worker"), &app).spawn_proc();
    let stalling_lines = Lines::collect(&mut stalling);
    wait_for_status(&app, &stalled, "running").await;
    let stalled_pid = Pid::from_raw(stalling.id().unwrap() as i32);
    kill(stalled_pid, Signal::SIGSTOP).unwrap();
    let mut worker = logging(env!("CARGO_BIN_EXE_jobwire-worker"), &app).spawn_proc();
    let worker_lines = Lines::collect(&mut worker);
    let expired = worker_lines
        .wait_for("about the expired lease", |l| {
            l["job_id"] == stalled.as_str() && l["message"].as_str().unwrap().contains("lease")
        })
        .await;
    assert_eq!(
        (&expired["tenant"], &expired["attempt"]),
        (&json!("acme"), &json!(1))
    );
    assert_eq!(expired["level"], "WARN");

    // Cancelled during its second attempt, which says it stopped.
    wait_for_status(&app, &stalled, "running").await;
    let (status, _) = app
        .post("acme", &format!("/v1/jobs/{stalled}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200);
    let stopped = worker_lines
        .wait_for("about the cancelled attempt", |l| {
            l["job_id"] == stalled.as_str() && l["message"].as_str().unwrap().contains("cancelled")
        })
        .await;
    assert_eq!(
        (&stopped["tenant"], &stopped["attempt"]),
        (&json!("acme"), &json!(2))
    );

    // A failing job of another tenant: each failed attempt, in its span.
    let failing = http
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(app.token("beta"))
        .json(&json!({"type": "fail", "payload": {"message": "card declined"}, "maxAttempts": 2}))
        .send()
        .await
        .unwrap();
    let request_id = failing.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let failing: Value = failing.json().await.unwrap();
    let failing = failing["id"].as_str().unwrap().to_owned();
    for attempt in [1, 2] {
        let failed = worker_lines
            .wait_for("about a failed attempt", |l| {
                l["job_id"] == failing.as_str() && l["attempt"] == attempt
            })
            .await;
        assert_eq!(failed["tenant"], "beta");
        assert_eq!(failed["error"], "card declined");
        assert_eq!(failed["job_type"], "fail");
        assert_eq!(failed["span"], "attempt");
    }
    let answered = api_lines
        .wait_for("for the second create", |l| l["job_id"] == failing.as_str())
        .await;
    assert_eq!(
        answered["request_id"],
        request_id.as_str(),
        "a new ID, as returned"
    );

    // Every line of every process: JSON, and complete about what it concerns.
    kill(stalled_pid, Signal::SIGCONT).unwrap();
    let all: Vec<Value> = [api_lines, stalling_lines, worker_lines]
        .iter()
        .flat_map(Lines::parsed)
        .collect();
    assert!(all.len() >= 7, "{all:#?}");
    for line in &all {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line.get(field).is_some(), "no `{field}`: {line}");
        }
        if line.get("job_id").is_some() {
            for field in ["tenant", "attempt"] {
                assert!(
                    line.get(field).is_some(),
                    "about a job, without `{field}`: {line}"
                );
            }
        }
        if line["span"] == "request" || line["target"] == "jobwire::access" {
            let id = line["request_id"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "about a request, without its ID: {line}");
        }
    }
}
