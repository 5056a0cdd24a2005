//! Retention: finished jobs are deleted once kept long enough (per status,
//! or the job's own `retainFor`), idempotency keys hold 24 hours whatever the
//! retention, a client resuming from before deleted changes gets a reset,
//! and Redis keeps nothing of deleted jobs.

use std::time::{Duration, Instant};

use jobwire_core::Retention;
use serde_json::{Value, json};

use crate::support::{Backend, Options, TestApp, WAIT, Ws, spawn_app_with};

/// One second for every final status: short enough to wait for.
const SHORT: Retention = Retention {
    succeeded: Duration::from_secs(1),
    failed: Duration::from_secs(1),
    cancelled: Duration::from_secs(1),
};

async fn app_keeping(backend: Backend, retention: Retention) -> TestApp {
    spawn_app_with(Options {
        retention,
        ..Options::on(backend)
    })
    .await
}

/// Polls `GET /v1/jobs/{id}` until `done` holds for its answer (a retention
/// has to pass, which nothing announces), failing after [`WAIT`].
async fn poll_job(app: &TenantApp<'_>, id: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let (code, body) = app.get_job(id).await;
        if done(code, &body) {
            return body;
        }
        assert!(
            started.elapsed() < WAIT,
            "job {id} still answers {code}: {body}"
        );
    }
}

/// Until the job is gone (404).
async fn until_gone(app: &TenantApp<'_>, id: &str) {
    poll_job(app, id, |code, _| code == 404).await;
}

/// Until the job has `status`.
async fn until_status(app: &TenantApp<'_>, id: &str, status: &str) {
    poll_job(app, id, |_, job| job["status"] == status).await;
}

/// The app as one tenant uses it.
struct TenantApp<'a> {
    app: &'a TestApp,
    tenant: &'a str,
}

impl TenantApp<'_> {
    async fn create(&self, body: Value) -> Value {
        let (code, job) = self.app.post(self.tenant, "/v1/jobs", body).await;
        assert_eq!(code, 201, "{job}");
        job
    }

    async fn get_job(&self, id: &str) -> (u16, Value) {
        self.app.get(self.tenant, &format!("/v1/jobs/{id}")).await
    }

    /// A job that stays scheduled for an hour, created last: on SQLite the
    /// job at the newest place of the change feed is never deleted.
    async fn last_write(&self) -> String {
        let job = self
            .create(json!({"type": "noop", "delayMs": 3_600_000}))
            .await;
        job["id"].as_str().unwrap().to_owned()
    }
}

fn id(job: &Value) -> &str {
    job["id"].as_str().unwrap()
}

async fn expired_jobs_go_by_status_and_retain_for_and_the_rest_stay(backend: Backend) {
    let app = app_keeping(
        backend,
        Retention {
            failed: Duration::from_secs(3600),
            ..SHORT
        },
    )
    .await;
    let acme = TenantApp {
        app: &app,
        tenant: "acme",
    };
    let succeeded = acme.create(json!({"type": "noop"})).await;
    let failed = acme.create(json!({"type": "fail", "maxAttempts": 1})).await;
    let failed_short = acme
        .create(json!({"type": "fail", "maxAttempts": 1, "retainFor": "1s"}))
        .await;
    let succeeded_long = acme
        .create(json!({"type": "noop", "retainFor": "1h"}))
        .await;
    let cancelled = acme
        .create(json!({"type": "noop", "delayMs": 3_600_000}))
        .await;
    assert_eq!(failed_short["retainFor"], "1s", "{failed_short}");
    assert_eq!(succeeded_long["retainFor"], "1h");
    assert_eq!(succeeded["retainFor"], Value::Null);
    let (code, _) = app
        .post(
            "acme",
            &format!("/v1/jobs/{}/cancel", id(&cancelled)),
            json!({}),
        )
        .await;
    assert_eq!(code, 200);
    // Both kept jobs have finished before the last write.
    for (job, status) in [(&failed, "failed"), (&succeeded_long, "succeeded")] {
        until_status(&acme, id(job), status).await;
    }
    acme.last_write().await;

    for gone in [&succeeded, &failed_short, &cancelled] {
        until_gone(&acme, id(gone)).await;
    }
    for (kept, status) in [(&failed, "failed"), (&succeeded_long, "succeeded")] {
        let (code, body) = acme.get_job(id(kept)).await;
        assert_eq!(
            (code, body["status"].as_str()),
            (200, Some(status)),
            "{body}"
        );
    }
    let (_, listed) = app.get("acme", "/v1/jobs").await;
    assert_eq!(
        listed["jobs"].as_array().unwrap().len(),
        3,
        "the two kept jobs and the last one: {listed}"
    );
}

async fn retain_for_is_checked_at_the_edge(backend: Backend) {
    let app = spawn_app_with(Options {
        worker: false,
        ..Options::on(backend)
    })
    .await;
    for (retain_for, says) in [
        (json!("soon"), "`retainFor` must be a duration such as"),
        (json!("90"), "`retainFor` must be a duration such as"),
        (json!("500ms"), "`retainFor` must be from 1s to 10y"),
        (json!("11y"), "`retainFor` must be from 1s to 10y"),
        (json!(90), "invalid type"),
    ] {
        let (code, problem) = app
            .post(
                "acme",
                "/v1/jobs",
                json!({"type": "noop", "retainFor": retain_for}),
            )
            .await;
        assert_eq!(code, 422, "{retain_for}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{retain_for}: {detail}");
    }
    let (code, job) = app
        .post(
            "acme",
            "/v1/jobs",
            json!({"type": "noop", "retainFor": "7d 12h"}),
        )
        .await;
    assert_eq!((code, job["retainFor"].as_str()), (201, Some("7days 12h")));
}

async fn an_idempotent_repeat_inside_24_hours_gets_the_first_job_whatever_the_retention(
    backend: Backend,
) {
    let app = app_keeping(backend, SHORT).await;
    let acme = TenantApp {
        app: &app,
        tenant: "acme",
    };
    let body = json!({"type": "echo", "payload": {"order": 42}, "idempotencyKey": "order-42"});
    let first = acme.create(body.clone()).await;
    let unkeyed = acme.create(json!({"type": "noop"})).await;
    for job in [&first, &unkeyed] {
        until_status(&acme, id(job), "succeeded").await;
    }
    acme.last_write().await;
    // Once the job without a key is gone, sweeps have run past the keyed one.
    until_gone(&acme, id(&unkeyed)).await;
    let (code, repeat) = app.post("acme", "/v1/jobs", body).await;
    assert_eq!(code, 200, "{repeat}");
    assert_eq!(repeat["id"], first["id"]);
    assert_eq!(repeat["status"], "succeeded");
    assert_eq!(repeat["result"], json!({"order": 42}));
    // The same key with only another `retainFor` is another request.
    let (code, conflict) = app
        .post(
            "acme",
            "/v1/jobs",
            json!({"type": "echo", "payload": {"order": 42}, "idempotencyKey": "order-42", "retainFor": "1h"}),
        )
        .await;
    assert_eq!(code, 409, "{conflict}");
}

async fn a_resume_from_before_deleted_changes_gets_a_reset(backend: Backend) {
    let app = app_keeping(backend, SHORT).await;
    let token = |tenant| app.token(tenant);
    let (acme, globex) = (
        TenantApp {
            app: &app,
            tenant: "acme",
        },
        TenantApp {
            app: &app,
            tenant: "globex",
        },
    );
    // A client of each tenant sees a job finish, keeps its cursor, leaves.
    let mut cursors = Vec::new();
    for (tenant, retain_for) in [(&acme, "1s"), (&globex, "1h")] {
        let mut ws = app.ws(tenant.tenant).await;
        let job = tenant
            .create(json!({"type": "noop", "retainFor": retain_for}))
            .await;
        let seen = ws.until_status(id(&job), "succeeded").await;
        cursors.push(seen.last().unwrap()["cursor"].as_str().unwrap().to_owned());
    }
    // Meanwhile one of acme's jobs finishes and is deleted.
    let missed = acme.create(json!({"type": "noop"})).await;
    until_status(&acme, id(&missed), "succeeded").await;
    let last = acme.last_write().await;
    until_gone(&acme, id(&missed)).await;

    let mut ws = Ws::resume(app.addr, &token("acme"), &cursors[0]).await;
    let (before, reset) = ws.updates_until_event("reset").await;
    assert!(before.is_empty(), "nothing is replayed: {before:?}");
    assert!(reset["detail"].as_str().unwrap().contains("retention"));
    let (snapshot, done) = ws.updates_until_event("snapshot").await;
    let ids: Vec<&str> = snapshot
        .iter()
        .map(|u| u["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [last.as_str()], "what is left of acme's jobs");
    assert_eq!(done["jobs"], 1);

    // globex lost nothing: it resumes as usual.
    let mut ws = Ws::resume(app.addr, &token("globex"), &cursors[1]).await;
    let (_, resumed) = ws.updates_until_event("resumed").await;
    assert_eq!(resumed["event"], "resumed");
}

in_both_modes!(
    expired_jobs_go_by_status_and_retain_for_and_the_rest_stay,
    retain_for_is_checked_at_the_edge,
    an_idempotent_repeat_inside_24_hours_gets_the_first_job_whatever_the_retention,
    a_resume_from_before_deleted_changes_gets_a_reset,
);

/// Every job ID found anywhere under the app's key prefix: in key names, list
/// items, set members and plain values.
async fn ids_in_redis(app: &TestApp) -> Vec<String> {
    let mut conn = app
        .redis()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", app.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut found = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<String> = match kind.as_str() {
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            // Tenants in turn order per type and priority: no IDs, but read all the same.
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            // Queued jobs per tenant, job clocks: no IDs, but read all the same.
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async::<Vec<String>>(&mut conn)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "string" => vec![
                redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
            ],
            other => panic!("a key of type {other} that this test does not read: {key}"),
        };
        found.push(key);
        found.extend(values);
    }
    found
}

/// Redis keeps nothing of deleted jobs: a finished job's ID is in no list,
/// not even a cancelled job whose ID was still queued (the worker pops it,
/// cannot claim it, and acknowledges it).
#[tokio::test]
async fn redis_keeps_nothing_of_deleted_jobs() {
    let app = spawn_app_with(Options {
        worker: false,
        retention: SHORT,
        ..Options::on(Backend::PostgresRedis)
    })
    .await;
    let acme = TenantApp {
        app: &app,
        tenant: "acme",
    };
    let cancelled = acme.create(json!({"type": "noop"})).await;
    let (code, _) = app
        .post(
            "acme",
            &format!("/v1/jobs/{}/cancel", id(&cancelled)),
            json!({}),
        )
        .await;
    assert_eq!(code, 200);
    assert!(
        ids_in_redis(&app)
            .await
            .iter()
            .any(|v| v.contains(id(&cancelled))),
        "the cancelled job's ID is still queued"
    );
    app.start_worker();
    let mut jobs = vec![cancelled];
    for body in [
        json!({"type": "noop"}),
        json!({"type": "echo", "payload": {"a": 1}}),
        json!({"type": "fail", "maxAttempts": 2}),
    ] {
        jobs.push(acme.create(body).await);
    }
    for job in &jobs {
        until_gone(&acme, id(job)).await;
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let held = ids_in_redis(&app).await;
        let left: Vec<&str> = jobs
            .iter()
            .map(id)
            .filter(|id| held.iter().any(|v| v.contains(id)))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "Redis still holds {left:?}: {held:?}"
        );
        tokio::task::yield_now().await;
    }
}
