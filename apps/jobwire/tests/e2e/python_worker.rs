//! A worker in another language, over HTTP only: the Python example
//! (examples/python-worker/worker.py) run as a real process, with a token from
//! `jobwire token --worker`, as its README says.

use std::process::Stdio;

use serde_json::json;
use tokio::process::Command;

use crate::support::{Backend, Options, SECRET, job, spawn_app_with};

/// A worker token for `py.wordcount` jobs of any tenant, from the CLI.
async fn worker_token() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_jobwire"))
        .args(["token", "--worker", "--type", "py.wordcount", "--ttl", "1h"])
        .env_clear()
        .env("JOBWIRE_JWT_SECRET", SECRET)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn the_python_worker_counts_words_and_fails_a_bad_payload_at_once(backend: Backend) {
    let app = spawn_app_with(Options {
        worker: false,
        ..Options::on(backend)
    })
    .await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/python-worker/worker.py"
    );
    let mut worker = Command::new("python3")
        .arg(script)
        .env("JOBWIRE_URL", app.url(""))
        .env("JOBWIRE_WORKER_TOKEN", worker_token().await)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("this test runs examples/python-worker/worker.py: install python3");
    let mut ws = app.ws("acme").await;

    let id = app
        .create(
            "acme",
            job("py.wordcount", json!({"text": "the quick brown fox jumps"})),
        )
        .await;
    let updates = ws.until_status(&id, "succeeded").await;
    assert!(
        updates
            .iter()
            .any(|u| u["status"] == "running" && u["progress"] == json!({"percent": 50})),
        "its progress reached the tenant: {updates:?}"
    );
    let (_, done) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(done["result"], json!({"words": 5}), "{done}");
    assert_eq!(done["attempt"], 1);

    let bad = app
        .create(
            "acme",
            json!({"type": "py.wordcount", "payload": {"text": 5}, "maxAttempts": 3}),
        )
        .await;
    ws.until_status(&bad, "failed").await;
    let (_, failed) = app.get("acme", &format!("/v1/jobs/{bad}")).await;
    assert_eq!(failed["error"], r#"payload must be {"text": "..."}"#);
    assert_eq!(failed["attempt"], 1, "not retried: {failed}");

    worker.kill().await.expect("the worker is killed");
}

in_both_modes!(the_python_worker_counts_words_and_fails_a_bad_payload_at_once);
