//! A change committed but never published (its worker died in between)
//! still reaches clients, within 2 s, even when nothing changes after it.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::processes::{command, start_api};
use crate::support::{Options, WAIT, Ws, spawn_app_with};

#[tokio::test]
async fn an_update_lost_after_its_commit_reaches_clients_with_nothing_changing_after_it() {
    let app = spawn_app_with(Options::without_worker()).await;
    let (_api, addr) = start_api(&app).await;
    let mut ws = Ws::connect(addr.parse().expect("address"), &app.token("acme")).await;
    let mut worker = command(env!("CARGO_BIN_EXE_jobwire-worker"), &app)
        .env("JOBWIRE_WORKER_FAILPOINT", "exit-after-finish")
        .spawn()
        .expect("start jobwire-worker");

    let response = app
        .http
        .post(format!("http://{addr}/v1/jobs"))
        .bearer_auth(app.token("acme"))
        .json(&json!({"type": "noop"}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let id = response.json::<serde_json::Value>().await.expect("job")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // The worker commits `succeeded`, then exits before publishing it; no
    // worker is left, so nothing else changes.
    let status = tokio::time::timeout(WAIT, worker.wait())
        .await
        .expect("the worker exits at its failpoint")
        .expect("exit status");
    let committed = Instant::now();
    assert_eq!(status.code(), Some(86), "exited at the failpoint");
    let (row_status, ..) = app.row(&id).await;
    assert_eq!(row_status, "succeeded", "the outcome committed");

    let seen = ws.until_status(&id, "succeeded").await;
    let waited = committed.elapsed();
    assert!(
        waited <= Duration::from_secs(2),
        "the lost update took {waited:?} to reach the client"
    );
    let last = seen.last().expect("an update");
    assert_eq!(last["version"], 3, "{last}");
    println!("lost update delivered {waited:?} after the worker died");
}
