//! The queues: priority order, FIFO within a priority, and an ID popped twice
//! running once.

use serde_json::json;

use crate::support::{Backend, Options, spawn_app_with};

async fn workers_take_higher_priorities_first_and_fifo_within_one(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        worker_concurrency: 1,
        ..Options::without_worker()
    })
    .await;
    let mut ws = app.ws("acme").await;
    let mut expected = Vec::new();
    let mut created = Vec::new();
    for priority in ["low", "default", "high", "critical", "low", "high"] {
        let id = app
            .create("acme", json!({"type": "noop", "priority": priority}))
            .await;
        created.push((priority, id));
    }
    for wanted in ["critical", "high", "default", "low"] {
        // Within a priority, in creation order.
        expected.extend(
            created
                .iter()
                .filter(|(p, _)| *p == wanted)
                .map(|(_, id)| id.clone()),
        );
    }

    // One job at a time, so the order they start in is the order they were popped in.
    app.start_worker();
    let mut started = Vec::new();
    while started.len() < expected.len() {
        let update = ws.next_update().await;
        if update["status"] == "running" {
            started.push(update["jobId"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(started, expected);
}

#[tokio::test]
async fn an_id_popped_twice_runs_once() {
    let app = spawn_app_with(Options::without_worker()).await;
    let mut ws = app.ws("acme").await;
    let twice = app.create("acme", json!({"type": "noop"})).await;
    // An operator (or a retry) pushes the same ID again.
    let mut conn = app
        .redis()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("LPUSH")
        .arg(format!("{}job_queue:default:acme/noop", app.prefix))
        .arg(&twice)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let after = app.create("acme", json!({"type": "noop"})).await;

    app.start_worker();
    let mut runs_of_twice = 0;
    let mut finished = 0;
    while finished < 2 {
        let update = ws.next_update().await;
        if update["jobId"] == twice.as_str() && update["status"] == "running" {
            runs_of_twice += 1;
        }
        if update["status"] == "succeeded" {
            finished += 1;
        }
    }
    // The duplicate ID was popped before `after` (FIFO) and found nothing to claim.
    assert_eq!(app.row(&after).await.0, "succeeded");
    assert_eq!(runs_of_twice, 1);
    assert_eq!(app.row(&twice).await, ("succeeded".into(), 3, 1));
    assert_eq!(app.queued_ids().await, 0);
}

in_both_modes!(workers_take_higher_priorities_first_and_fifo_within_one,);
