//! Workers take only the job types they run: stock and custom workers side
//! by side, and a job no live worker runs waits, visible, until one starts.

use jobwire_worker::Registry;
use serde_json::{Value, json};

use crate::support::{Backend, Options, job, spawn_app_with};

/// A custom worker's registry: only `thumbnail`, answering who ran it.
fn custom() -> Registry {
    let mut registry = Registry::new();
    registry.register("thumbnail", |_ctx, _payload: Value| async {
        Ok(json!({"ranBy": "custom"}))
    });
    registry
}

async fn a_stock_worker_and_a_custom_worker_each_run_only_their_own_types(backend: Backend) {
    let app = spawn_app_with(Options {
        worker: false,
        ..Options::on(backend)
    })
    .await;
    let mut ws = app.ws("acme").await;
    app.start_worker();
    app.start_worker_with(custom());
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(app.create("acme", job("thumbnail", json!({"n": n}))).await);
        ids.push(app.create("acme", job("echo", json!({"n": n}))).await);
    }
    // They finish in any order: wait until every one has.
    let mut unfinished: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    while !unfinished.is_empty() {
        let update = ws.next_update().await;
        assert_ne!(update["status"], "failed", "{update}");
        if update["status"] == "succeeded" {
            unfinished.remove(update["jobId"].as_str().unwrap());
        }
    }
    for (n, id) in ids.iter().enumerate() {
        let (_, stored) = app.get("acme", &format!("/v1/jobs/{id}")).await;
        let expected = if n % 2 == 0 {
            json!({"ranBy": "custom"})
        } else {
            json!({"n": n / 2})
        };
        assert_eq!(
            (stored["result"].clone(), stored["attempt"].clone()),
            (expected, json!(1)),
            "each job ran once, by the worker of its type: {stored}"
        );
    }
}

async fn a_job_of_an_unhandled_type_waits_visibly_then_runs_when_a_worker_for_it_starts(
    backend: Backend,
) {
    let app = spawn_app_with(Options::on(backend)).await;
    let mut ws = app.ws("acme").await;
    let waiting = app.create("acme", job("thumbnail", json!({}))).await;
    let after = app.create("acme", job("noop", json!({}))).await;
    ws.until_status(&after, "succeeded").await;

    let (_, stats) = app.get("acme", "/v1/stats").await;
    let thumbnail = stats["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "thumbnail")
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(
        thumbnail,
        &json!({"type": "thumbnail", "scheduled": 0, "queued": 1, "running": 0, "workers": 0})
    );
    let (_, job) = app.get("acme", &format!("/v1/jobs/{waiting}")).await;
    assert_eq!(job["status"], "queued", "waiting, not failed");

    app.start_worker_with(custom());
    let done = ws.until_status(&waiting, "succeeded").await.pop().unwrap();
    assert_eq!(done["result"], json!({"ranBy": "custom"}));
}

async fn with_known_types_a_job_of_another_type_is_refused_with_422(backend: Backend) {
    let app = spawn_app_with(Options {
        known_types: vec!["noop".into(), "thumbnail".into()],
        ..Options::on(backend)
    })
    .await;
    let (status, problem) = app
        .post("acme", "/v1/jobs", job("thumbnial", json!({})))
        .await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("`thumbnial`") && detail.contains("noop, thumbnail"),
        "{detail}"
    );
    let (status, _) = app
        .post(
            "acme",
            "/v1/jobs/batch",
            json!({"jobs": [{"type": "noop"}, {"type": "typo"}]}),
        )
        .await;
    assert_eq!(status, 422, "a batch with one unknown type writes nothing");
    assert_eq!(app.job_count().await, 0);
    let (status, _) = app
        .post("acme", "/v1/jobs", job("thumbnail", json!({})))
        .await;
    assert_eq!(status, 201);
}

in_both_modes!(
    with_known_types_a_job_of_another_type_is_refused_with_422,
    a_stock_worker_and_a_custom_worker_each_run_only_their_own_types,
    a_job_of_an_unhandled_type_waits_visibly_then_runs_when_a_worker_for_it_starts,
);
