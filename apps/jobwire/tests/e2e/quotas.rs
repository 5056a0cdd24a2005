//! Per-tenant quotas: a cap on queued jobs and a create rate, answered 429
//! with `Retry-After` and a problem body; a cap on running jobs held across
//! every worker; per-tenant overrides from the quota file.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jobwire_core::Quota;
use serde_json::{Value, json};

use crate::processes::start_worker;
use crate::support::{Backend, Options, TestApp, WAIT, Ws, job, read, spawn_app_with};

/// A quota file holding `text`, in a directory of its own.
fn quota_file(text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jobwire-quotas-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("quotas.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// POSTs `body` to `path` as `tenant`: status, `Retry-After`, content type, body.
async fn post(
    app: &TestApp,
    tenant: &str,
    path: &str,
    body: Value,
) -> (u16, Option<u64>, String, Value) {
    let response = app
        .http
        .post(app.url(path))
        .bearer_auth(app.token(tenant))
        .json(&body)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let retry_after = header("retry-after").map(|v| v.parse().unwrap());
    let content_type = header("content-type").unwrap_or_default();
    let (status, body) = read(response).await;
    (status, retry_after, content_type, body)
}

fn noops(n: usize) -> Value {
    json!({"jobs": vec![job("noop", json!({})); n]})
}

async fn a_tenant_at_its_queued_cap_gets_429_until_its_workers_take_some(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        quota: Quota {
            max_queued: Some(5),
            ..Quota::default()
        },
        ..Options::without_worker()
    })
    .await;
    let (status, _, _, body) = post(&app, "full", "/v1/jobs/batch", noops(5)).await;
    assert_eq!(status, 201, "{body}");

    let (status, retry_after, content_type, body) =
        post(&app, "full", "/v1/jobs", job("noop", json!({}))).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry_after, Some(1));
    assert_eq!(content_type, "application/problem+json");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("5 jobs queued") && detail.contains("at most 5"),
        "{detail}"
    );
    let (status, _, _, body) = post(&app, "full", "/v1/jobs/batch", noops(2)).await;
    assert_eq!(status, 429, "a batch is refused whole: {body}");
    let (_, list) = app.get("full", "/v1/jobs").await;
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        5,
        "nothing refused was written"
    );

    let (status, _, _, body) = post(&app, "other", "/v1/jobs/batch", noops(6)).await;
    assert_eq!(status, 422, "more than may ever be queued: {body}");

    // Another tenant's queue is its own.
    let (status, _, _, _) = post(&app, "other", "/v1/jobs/batch", noops(5)).await;
    assert_eq!(status, 201);

    // Once a worker has taken them, there is room again.
    let mut ws = app.ws("full").await;
    app.start_worker();
    let mut done = 0;
    while done < 5 {
        if ws.next_update().await["status"] == "succeeded" {
            done += 1;
        }
    }
    let (status, _, _, body) = post(&app, "full", "/v1/jobs", job("noop", json!({}))).await;
    assert_eq!(status, 201, "{body}");
}

async fn a_tenant_over_its_create_rate_gets_429_and_one_with_an_override_does_not(
    backend: Backend,
) {
    let app = spawn_app_with(Options {
        backend,
        quota: Quota {
            rate: Some(2.0),
            burst: Some(3),
            ..Quota::default()
        },
        quota_file: Some(quota_file("[tenants.vip]\nrate = 10000\n")),
        ..Options::without_worker()
    })
    .await;
    for _ in 0..3 {
        let (status, _, _, body) = post(&app, "std", "/v1/jobs", job("noop", json!({}))).await;
        assert_eq!(status, 201, "the burst of 3 goes at once: {body}");
    }
    let refused_at = Instant::now();
    let (status, retry_after, content_type, body) =
        post(&app, "std", "/v1/jobs", job("noop", json!({}))).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry_after, Some(1), "a token comes back within a second");
    assert_eq!(content_type, "application/problem+json");
    assert!(
        body["detail"].as_str().unwrap().contains("2 jobs a second"),
        "{body}"
    );
    let (status, _, _, body) = post(&app, "std", "/v1/jobs/batch", noops(4)).await;
    assert_eq!(status, 422, "a batch the bucket never holds: {body}");
    assert!(
        body["detail"].as_str().unwrap().contains("burst of 3"),
        "{body}"
    );

    // The override: vip creates at its own rate.
    for _ in 0..4 {
        let (status, _, _, body) = post(&app, "vip", "/v1/jobs/batch", noops(5)).await;
        assert_eq!(status, 201, "{body}");
    }

    // The bucket refills at 2 a second: std gets in again, not before.
    let accepted = tokio::time::timeout(WAIT, async {
        loop {
            let (status, _, _, _) = post(&app, "std", "/v1/jobs", job("noop", json!({}))).await;
            if status == 201 {
                return Instant::now();
            }
            assert_eq!(status, 429);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the bucket refills");
    let waited = accepted - refused_at;
    assert!(
        waited >= Duration::from_millis(300),
        "a token came back after only {waited:?}"
    );
}

/// Follows `ws`'s updates until `total` jobs succeeded; returns, per tenant,
/// the most jobs seen running at once.
async fn most_running_at_once(ws: &mut [(String, Ws)], total: usize) -> HashMap<String, usize> {
    let mut running: HashMap<String, HashSet<String>> = HashMap::new();
    let mut most: HashMap<String, usize> = HashMap::new();
    let mut succeeded = 0;
    tokio::time::timeout(WAIT * 4, async {
        while succeeded < total {
            for (tenant, ws) in ws.iter_mut() {
                let Ok(update) =
                    tokio::time::timeout(Duration::from_millis(20), ws.next_update()).await
                else {
                    continue;
                };
                let id = update["jobId"].as_str().unwrap().to_owned();
                let now = running.entry(tenant.clone()).or_default();
                match update["status"].as_str().unwrap() {
                    "running" => {
                        now.insert(id);
                    }
                    "succeeded" => {
                        now.remove(&id);
                        succeeded += 1;
                    }
                    _ => {}
                }
                let most = most.entry(tenant.clone()).or_default();
                *most = (*most).max(now.len());
            }
        }
    })
    .await
    .expect("every job succeeded");
    most
}

async fn a_running_cap_holds_across_two_workers(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        worker_concurrency: 4,
        quota_file: Some(quota_file("[tenants.capped]\nmax_running = 3\n")),
        ..Options::without_worker()
    })
    .await;
    // Two worker processes of 4 slots each (embedded: two worker pools in the one process).
    let _workers = match backend {
        Backend::PostgresRedis => vec![start_worker(&app), start_worker(&app)],
        Backend::Embedded => {
            app.start_worker();
            app.start_worker();
            Vec::new()
        }
    };
    let mut ws = vec![
        ("capped".to_owned(), app.ws("capped").await),
        ("free".to_owned(), app.ws("free").await),
    ];
    let sleeps = |n| json!({"jobs": vec![job("sleep", json!({"ms": 200})); n]});
    let (status, _, _, body) = post(&app, "capped", "/v1/jobs/batch", sleeps(12)).await;
    assert_eq!(status, 201, "{body}");
    let (status, _, _, body) = post(&app, "free", "/v1/jobs/batch", sleeps(8)).await;
    assert_eq!(status, 201, "{body}");
    let most = most_running_at_once(&mut ws, 20).await;
    eprintln!("{backend:?}: most running at once {most:?}");
    assert_eq!(
        most["capped"], 3,
        "capped ran at most 3 at once, and did reach 3"
    );
    assert!(
        most["free"] > 3,
        "the cap is capped's alone: free ran {} at once",
        most["free"]
    );
}

/// A capped tenant's queued job cancelled before a worker pops it holds no
/// running slot: the tenant's next job starts at once, not after the sweep
/// of stale slots (10 s and more).
async fn a_cancelled_job_holds_no_running_slot(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        quota_file: Some(quota_file("[tenants.capped]\nmax_running = 1\n")),
        ..Options::without_worker()
    })
    .await;
    let mut ws = app.ws("capped").await;
    let cancelled = app.create("capped", job("noop", json!({}))).await;
    let next = app.create("capped", job("noop", json!({}))).await;
    let (status, body) = app
        .post("capped", &format!("/v1/jobs/{cancelled}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let started = Instant::now();
    app.start_worker();
    ws.until_status(&next, "succeeded").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the next job waited {:?} behind the cancelled one's slot",
        started.elapsed()
    );
}

in_both_modes!(
    a_cancelled_job_holds_no_running_slot,
    a_tenant_at_its_queued_cap_gets_429_until_its_workers_take_some,
    a_tenant_over_its_create_rate_gets_429_and_one_with_an_override_does_not,
    a_running_cap_holds_across_two_workers,
);
