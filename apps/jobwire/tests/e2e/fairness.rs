//! Fair dispatch: within a priority, tenants take turns, each tenant's own
//! jobs first in, first out; a tenant's flood does not hold another's job
//! back. The handlers here note which tenant's job starts when, in order.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use jobwire_worker::Registry;
use serde_json::{Value, json};

use crate::support::{Backend, Options, WAIT, spawn_app_with};

/// Every start of a `fair` job: its tenant, its payload's `n`, and when.
type Starts = Arc<Mutex<Vec<(String, u64, Instant)>>>;

fn recording(starts: &Starts) -> Registry {
    let starts = Arc::clone(starts);
    let mut registry = Registry::new();
    registry.register(
        "fair",
        move |ctx: jobwire_worker::JobContext, payload: Value| {
            let starts = Arc::clone(&starts);
            async move {
                let n = payload["n"].as_u64().unwrap_or_default();
                starts
                    .lock()
                    .unwrap()
                    .push((ctx.tenant().as_str().to_owned(), n, Instant::now()));
                Ok(Value::Null)
            }
        },
    );
    registry
}

async fn create_many(app: &crate::support::TestApp, tenant: &str, from: u64, n: u64) {
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(1000) {
        let jobs: Vec<Value> = chunk
            .iter()
            .map(|n| json!({"type": "fair", "payload": {"n": n}}))
            .collect();
        let (status, body) = app
            .post(tenant, "/v1/jobs/batch", json!({"jobs": jobs}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

async fn wait_for_starts(starts: &Starts, n: usize) -> Vec<(String, u64, Instant)> {
    tokio::time::timeout(WAIT * 4, async {
        loop {
            if starts.lock().unwrap().len() >= n {
                return starts.lock().unwrap().clone();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every job started")
}

async fn tenants_with_uneven_backlogs_take_turns_each_in_its_own_order(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        // One job at a time: the order they start in is the order they were taken in.
        worker_concurrency: 1,
        ..Options::without_worker()
    })
    .await;
    let backlogs = [("big", 12), ("mid", 4), ("one", 1)];
    for (tenant, n) in backlogs {
        create_many(&app, tenant, 0, n).await;
    }
    let starts: Starts = Arc::default();
    app.start_worker_with(recording(&starts));
    let order = wait_for_starts(&starts, 17).await;
    let tenants: Vec<&str> = order.iter().map(|(t, _, _)| t.as_str()).collect();
    // While k tenants have jobs waiting, any k starts in a row are k different tenants.
    let mut left: Vec<(&str, u64)> = backlogs.to_vec();
    let mut at = 0;
    while at < tenants.len() {
        let k = left.iter().filter(|(_, n)| *n > 0).count();
        let round = &tenants[at..at + k];
        let distinct: std::collections::HashSet<&&str> = round.iter().collect();
        assert_eq!(distinct.len(), k, "round at {at}: {tenants:?}");
        for tenant in round {
            left.iter_mut().find(|(t, _)| t == tenant).unwrap().1 -= 1;
        }
        at += k;
    }
    for (tenant, n) in backlogs {
        let own: Vec<u64> = order
            .iter()
            .filter(|(t, _, _)| t == tenant)
            .map(|(_, n, _)| *n)
            .collect();
        assert_eq!(
            own,
            (0..n).collect::<Vec<u64>>(),
            "{tenant}'s jobs first in, first out"
        );
    }
}

/// With weight 3 (from the quota file) against another tenant's 1, a
/// tenant is served three jobs to the other's one while both have work.
async fn a_heavier_tenant_is_served_in_proportion_to_its_weight(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("jobwire-weights-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("quotas.toml");
    std::fs::write(&file, "[tenants.heavy]\nweight = 3\n").unwrap();
    let app = spawn_app_with(Options {
        backend,
        worker_concurrency: 1,
        quota_file: Some(file),
        ..Options::without_worker()
    })
    .await;
    create_many(&app, "heavy", 0, 30).await;
    create_many(&app, "light", 0, 30).await;
    let starts: Starts = Arc::default();
    app.start_worker_with(recording(&starts));
    let order = wait_for_starts(&starts, 40).await;
    let heavy = order[..20].iter().filter(|(t, _, _)| t == "heavy").count();
    let tenants: Vec<&str> = order[..20].iter().map(|(t, _, _)| t.as_str()).collect();
    assert!(
        (14..=16).contains(&heavy),
        "heavy had {heavy} of the first 20 starts, not 3 in 4: {tenants:?}"
    );
    for tenant in ["heavy", "light"] {
        let own: Vec<u64> = order
            .iter()
            .filter(|(t, _, _)| t == tenant)
            .map(|(_, n, _)| *n)
            .collect();
        assert_eq!(
            own,
            (0..own.len() as u64).collect::<Vec<_>>(),
            "{tenant} in order"
        );
    }
}

/// Tenant A batch-creates 5,000 jobs; B's one job, created right after,
/// starts long before A's backlog is done (the wait is printed). With one
/// FIFO for everyone it started after all of A's.
async fn one_tenants_flood_does_not_hold_back_anothers_job(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    let starts: Starts = Arc::default();
    app.start_worker_with(recording(&starts));
    create_many(&app, "flood", 0, 5000).await;
    let created = Instant::now();
    let (status, _) = app
        .post(
            "quiet",
            "/v1/jobs",
            json!({"type": "fair", "payload": {"n": 0}}),
        )
        .await;
    assert_eq!(status, 201);
    let all = wait_for_starts(&starts, 5001).await;
    let quiet = all.iter().position(|(t, _, _)| t == "quiet").unwrap();
    let waited = all[quiet].2.duration_since(created);
    eprintln!(
        "{backend:?}: B's job started {} ms after it was created, after {quiet} of A's 5,000",
        waited.as_millis()
    );
    assert!(
        quiet < 1000,
        "B's job started after {quiet} of A's 5,000 jobs ({} ms)",
        waited.as_millis()
    );
}

in_both_modes!(
    tenants_with_uneven_backlogs_take_turns_each_in_its_own_order,
    a_heavier_tenant_is_served_in_proportion_to_its_weight,
    one_tenants_flood_does_not_hold_back_anothers_job,
);
