//! The production shape: separate `jobwire-api` and `jobwire-worker`
//! processes against one Postgres and one Redis.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use uuid::Uuid;

use crate::support::{
    Options, Proc, SECRET, SpawnProc, TestApp, WAIT, Ws, job, spawn_app_with, wait_ready,
};

/// A jobwire binary started on the test app's database and key prefix.
pub(crate) fn command(binary: &str, app: &TestApp) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("DATABASE_URL", app.database_url())
        .env("REDIS_URL", app.redis_url())
        .env("JOBWIRE_PREFIX", &app.prefix)
        .env("JOBWIRE_JWT_SECRET", SECRET)
        .env("JOBWIRE_ADDR", "127.0.0.1:0")
        .env("JOBWIRE_WORKER_CONCURRENCY", "4")
        // Many workers run at once: each serves its metrics on a port of its own.
        .env("JOBWIRE_METRICS_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

/// Starts `jobwire-api` and returns it with the address it printed.
pub(crate) async fn start_api(app: &TestApp) -> (Proc, String) {
    start_api_with(app, &[]).await
}

/// Starts `jobwire-api` with settings `env` on top of the test's.
pub(crate) async fn start_api_with(app: &TestApp, env: &[(&str, &str)]) -> (Proc, String) {
    let mut child = command(env!("CARGO_BIN_EXE_jobwire-api"), app)
        .envs(env.iter().copied())
        .spawn_proc();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("jobwire-api prints its address")
        .expect("stdout readable")
        .expect("a line");
    let base = line
        .rsplit(' ')
        .next()
        .expect("the URL ends the line")
        .to_owned();
    wait_ready(&reqwest::Client::new(), &format!("{base}/readyz")).await;
    (child, base.trim_start_matches("http://").to_owned())
}

pub(crate) fn start_worker(app: &TestApp) -> Proc {
    command(env!("CARGO_BIN_EXE_jobwire-worker"), app).spawn_proc()
}

pub(crate) async fn create_via(
    http: &reqwest::Client,
    addr: &str,
    token: &str,
    body: Value,
) -> String {
    let response = http
        .post(format!("http://{addr}/v1/jobs"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let job: Value = response.json().await.expect("job");
    job["id"].as_str().expect("id").to_owned()
}

/// Reads updates until the barrier job's frame; returns how often each
/// `(jobId, version)` arrived before it.
async fn updates_until(ws: &mut Ws, barrier: &str) -> HashMap<(String, i64), usize> {
    let mut seen = HashMap::new();
    loop {
        let update = ws.next_update().await;
        let id = update["jobId"].as_str().expect("jobId").to_owned();
        if id == barrier {
            return seen;
        }
        *seen
            .entry((id, update["version"].as_i64().expect("version")))
            .or_default() += 1;
    }
}

#[tokio::test]
async fn two_apis_and_two_workers_deliver_every_update_exactly_once() {
    // This app's in-process API only serves as the database owner; no worker.
    let app = spawn_app_with(Options::without_worker()).await;
    let (_api_a, addr_a) = start_api(&app).await;
    let (_api_b, addr_b) = start_api(&app).await;
    let _workers = [start_worker(&app), start_worker(&app)];
    let token = app.token("acme");
    let mut on_a = Ws::connect(addr_a.parse().unwrap(), &token).await;
    let mut on_b = Ws::connect(addr_b.parse().unwrap(), &token).await;
    let mut stranger = Ws::connect(addr_b.parse().unwrap(), &app.token("globex")).await;

    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..40 {
        let addr = if n % 2 == 0 { &addr_a } else { &addr_b };
        ids.push(create_via(&http, addr, &token, job("noop", json!({"n": n}))).await);
    }
    for id in &ids {
        let row = wait_for_status(&app, id, "succeeded").await;
        assert_eq!(row.1, 3);
    }
    // Everything published before a barrier reaches a client before it.
    let barriers: Vec<String> = (0..2).map(|_| Uuid::now_v7().to_string()).collect();
    for (tenant, barrier) in ["acme", "globex"].iter().zip(&barriers) {
        app.publish_raw(
            &json!({"tenantId": tenant, "jobId": barrier, "type": "barrier", "status": "queued",
            "version": 1, "attempt": 0, "error": null, "at": "2026-01-01T00:00:00Z"})
            .to_string(),
        )
        .await;
    }
    let barrier = &barriers[0];

    for (name, ws) in [("A", &mut on_a), ("B", &mut on_b)] {
        let seen = updates_until(ws, barrier).await;
        assert_eq!(
            seen.len(),
            ids.len() * 3,
            "client on API {name}: every update (queued, running, succeeded)"
        );
        assert!(
            seen.values().all(|&n| n == 1),
            "client on API {name}: none twice"
        );
        assert!(
            ids.iter()
                .all(|id| (1..=3).all(|v| seen.contains_key(&(id.clone(), v))))
        );
    }
    assert!(
        updates_until(&mut stranger, &barriers[1]).await.is_empty(),
        "globex saw nothing of acme"
    );
}

pub(crate) async fn wait_for_status(app: &TestApp, id: &str, status: &str) -> (String, i64, i32) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tokio::time::timeout(WAIT, async {
        loop {
            tick.tick().await;
            let row = app.row(id).await;
            if row.0 == status {
                return row;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("job {id} never reached {status}"))
}

#[tokio::test]
async fn sigterm_lets_the_running_job_finish_and_the_worker_exit_0() {
    let app = spawn_app_with(Options::without_worker()).await;
    let mut worker = start_worker(&app);
    let mut ws = app.ws("acme").await;
    let id = app.create("acme", job("sleep", json!({"ms": 1500}))).await;
    ws.until_status(&id, "running").await;

    let pid = Pid::from_raw(worker.id().expect("running") as i32);
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(WAIT, worker.wait())
        .await
        .expect("the worker exits after its job")
        .expect("exit status");
    assert!(status.success(), "exit code 0, got {status}");

    let (db_status, _, attempt) = app.row(&id).await;
    assert_eq!((db_status.as_str(), attempt), ("succeeded", 1));
    let last = ws.until_status(&id, "succeeded").await.pop().unwrap();
    assert_eq!(last["result"], json!({"sleptMs": 1500}));
}

#[tokio::test]
async fn sigterm_to_the_api_closes_websockets_with_1001_and_exits_0() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let app = spawn_app_with(Options::without_worker()).await;
    let (mut api, addr) = start_api(&app).await;
    let mut ws = Ws::connect(addr.parse().unwrap(), &app.token("acme")).await;

    kill(
        Pid::from_raw(api.id().expect("running") as i32),
        Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let close = tokio::time::timeout(WAIT, async {
        while let Some(message) = ws.stream.next().await {
            if let Ok(Message::Close(frame)) = message {
                return frame.map(|f| f.code);
            }
        }
        None
    })
    .await
    .expect("a close frame in time");
    assert_eq!(close, Some(CloseCode::Away), "1001 going away");
    let status = tokio::time::timeout(WAIT, api.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success(), "exit code 0, got {status}");
}

#[tokio::test]
async fn jobwire_token_prints_a_token_the_api_accepts() {
    let app = spawn_app_with(Options::without_worker()).await;
    let output = Command::new(env!("CARGO_BIN_EXE_jobwire"))
        .args(["token", "--tenant", "acme", "--ttl", "1h"])
        .env("JOBWIRE_JWT_SECRET", SECRET)
        .output()
        .await
        .expect("jobwire token runs");
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let response = app
        .http
        .get(app.url("/v1/jobs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let refused = Command::new(env!("CARGO_BIN_EXE_jobwire"))
        .args(["token", "--tenant", "not a tenant"])
        .env("JOBWIRE_JWT_SECRET", SECRET)
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success(), "a bad tenant is refused");
}

#[tokio::test]
async fn jobwire_migrate_creates_the_database_and_its_tables() {
    let db = format!("jobwire_test_migrate_{}", Uuid::new_v4().simple());
    let url = format!("{}/{db}", crate::support::pg_server_url());
    let output = Command::new(env!("CARGO_BIN_EXE_jobwire"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .await
        .expect("jobwire migrate runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    pool.close().await;
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", crate::support::pg_server_url()))
        .await
        .unwrap();
    sqlx::query(&format!("drop database {db} with (force)"))
        .execute(&admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn help_lists_every_setting_with_its_environment_variable() {
    let expected: &[(&str, &[&str])] = &[
        (
            env!("CARGO_BIN_EXE_jobwire"),
            &[
                "JOBWIRE_DB_FILE",
                "DATABASE_URL",
                "REDIS_URL",
                "JOBWIRE_JWT_SECRET",
                "JOBWIRE_ADDR",
                "JOBWIRE_PREFIX",
                "JOBWIRE_WORKER_CONCURRENCY",
                "JOBWIRE_MAX_PAYLOAD_BYTES",
                "JOBWIRE_MAX_BATCH",
                "JOBWIRE_JWT_AUDIENCE",
                "JOBWIRE_JWT_ISSUER",
                "JOBWIRE_JWT_MAX_TTL",
                "JOBWIRE_LOG_FORMAT",
            ],
        ),
        (
            env!("CARGO_BIN_EXE_jobwire-api"),
            &[
                "DATABASE_URL",
                "REDIS_URL",
                "JOBWIRE_JWT_SECRET",
                "JOBWIRE_ADDR",
                "JOBWIRE_PREFIX",
                "JOBWIRE_MAX_PAYLOAD_BYTES",
                "JOBWIRE_WS_QUEUE",
                "JOBWIRE_JWT_AUDIENCE",
                "JOBWIRE_JWT_ISSUER",
                "JOBWIRE_JWT_MAX_TTL",
                "JOBWIRE_LOG_FORMAT",
            ],
        ),
        (
            env!("CARGO_BIN_EXE_jobwire-worker"),
            &[
                "DATABASE_URL",
                "REDIS_URL",
                "JOBWIRE_PREFIX",
                "JOBWIRE_WORKER_CONCURRENCY",
                "JOBWIRE_SHUTDOWN_GRACE",
                "JOBWIRE_LEASE_TTL",
                "JOBWIRE_RETRY_BASE",
                "JOBWIRE_RETRY_CAP",
                "JOBWIRE_REDISPATCH_AFTER",
                "JOBWIRE_LOG_FORMAT",
            ],
        ),
    ];
    for (binary, variables) in expected {
        let output = Command::new(binary).arg("--help").output().await.unwrap();
        let help = String::from_utf8(output.stdout).unwrap();
        for variable in *variables {
            assert!(
                help.contains(&format!("env: {variable}")),
                "{binary} --help lists {variable}"
            );
        }
    }
}

#[tokio::test]
async fn jobwire_api_without_a_secret_refuses_to_start_and_says_why() {
    let output = Command::new(env!("CARGO_BIN_EXE_jobwire-api"))
        .env_clear()
        .env("JOBWIRE_ADDR", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("JOBWIRE_JWT_SECRET"));
}

#[tokio::test]
async fn unreachable_postgres_or_redis_is_named_at_startup() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let app = spawn_app_with(Options::without_worker()).await;
    let cases = [
        (
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{closed_port}/x"),
            "cannot reach Postgres",
        ),
        (
            "REDIS_URL",
            format!("redis://127.0.0.1:{closed_port}"),
            "cannot reach Redis",
        ),
    ];
    for (variable, url, message) in cases {
        let output = command(env!("CARGO_BIN_EXE_jobwire-worker"), &app)
            .env(variable, url)
            .stderr(Stdio::piped())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(
            stderr.contains(message) && stderr.contains(variable),
            "{stderr}"
        );
    }
}

/// Polls one of `tenant`'s jobs until it has `status`.
pub(crate) async fn wait_for_status_of(app: &TestApp, tenant: &str, id: &str, status: &str) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tokio::time::timeout(WAIT, async {
        loop {
            tick.tick().await;
            let (_, job) = app.get(tenant, &format!("/v1/jobs/{id}")).await;
            if job["status"] == status {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("job {id} never reached {status}"));
}

/// Waits until `count` workers have registered in Redis (each does on its
/// first lease tick, once it is connected and popping).
async fn wait_for_workers(app: &TestApp, count: usize) {
    let mut redis = app
        .redis()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let workers = jobwire_broker::Keys::new(&app.prefix).workers().to_owned();
    tokio::time::timeout(WAIT, async {
        loop {
            let registered: usize = redis::cmd("SCARD")
                .arg(&workers)
                .query_async(&mut redis)
                .await
                .expect("SCARD");
            if registered >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} workers never registered"));
}

#[tokio::test]
async fn a_sigkilled_workers_job_runs_again_within_5_seconds_by_default() {
    let app = spawn_app_with(Options::without_worker()).await;
    let mut doomed = start_worker(&app);
    let mut ws = app.ws("acme").await;
    let id = app.create("acme", job("sleep", json!({"ms": 3000}))).await;
    ws.until_status(&id, "running").await;
    // The rescuer is up before the kill, so its start is not counted as recovery.
    let _rescuer = start_worker(&app);
    wait_for_workers(&app, 2).await;
    kill(Pid::from_raw(doomed.id().unwrap() as i32), Signal::SIGKILL).unwrap();
    doomed.wait().await.unwrap();
    let killed_at = std::time::Instant::now();
    // Default lease (3 s): the job is queued again and a live worker runs it.
    let rerun = loop {
        let update = ws.next_update().await;
        if update["jobId"] == id.as_str() && update["status"] == "running" {
            break update;
        }
    };
    let recovered = killed_at.elapsed();
    println!("a SIGKILLed worker's job ran again after {recovered:?}");
    assert_eq!(rerun["attempt"], 2);
    assert!(
        recovered < Duration::from_secs(5),
        "within 5 s, took {recovered:?}"
    );
    let last = ws.until_status(&id, "succeeded").await.pop().unwrap();
    assert_eq!(last["attempt"], 2);
}

#[tokio::test]
async fn sigterm_hands_back_what_cannot_finish_in_the_grace_period_at_once() {
    let app = spawn_app_with(Options::without_worker()).await;
    let mut worker = command(env!("CARGO_BIN_EXE_jobwire-worker"), &app)
        .env("JOBWIRE_SHUTDOWN_GRACE", "300ms")
        .env("JOBWIRE_LEASE_TTL", "60s")
        .spawn()
        .unwrap();
    let mut ws = app.ws("acme").await;
    let id = app.create("acme", job("sleep", json!({"ms": 60000}))).await;
    ws.until_status(&id, "running").await;
    kill(Pid::from_raw(worker.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(WAIT, worker.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    // Handed back at once, not after the 60 s lease.
    let (job_status, _, attempt) = app.row(&id).await;
    assert_eq!((job_status.as_str(), attempt), ("queued", 1));
    assert_eq!(app.queued_ids().await, 1, "its ID is back in the queue");
    app.start_worker();
    let last = ws.until_status(&id, "running").await.pop().unwrap();
    assert_eq!(last["attempt"], 2);
}

#[tokio::test]
async fn a_paused_worker_that_lost_its_lease_cannot_overwrite_the_newer_attempt() {
    let app = spawn_app_with(Options::without_worker()).await;
    let lease = |command: &mut Command| {
        command.env("JOBWIRE_LEASE_TTL", "1s");
    };
    let mut paused = command(env!("CARGO_BIN_EXE_jobwire-worker"), &app);
    lease(&mut paused);
    let mut paused = paused.spawn_proc();
    let mut ws = app.ws("acme").await;
    let id = app.create("acme", job("sleep", json!({"ms": 1500}))).await;
    ws.until_status(&id, "running").await;
    let pid = Pid::from_raw(paused.id().unwrap() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();

    // Its lease lapses; another worker runs the job as attempt 2.
    let mut other = command(env!("CARGO_BIN_EXE_jobwire-worker"), &app);
    lease(&mut other);
    let _other = other.spawn_proc();
    let second = ws.until_status(&id, "running").await.pop().unwrap();
    assert_eq!(second["attempt"], 2);
    // The paused worker wakes up with its sleep over and tries to finish attempt 1.
    kill(pid, Signal::SIGCONT).unwrap();
    let updates = ws.until_status(&id, "succeeded").await;
    assert!(
        updates.iter().all(|u| u["attempt"] == 2),
        "nothing from attempt 1 after it lost its lease: {updates:?}"
    );
    let (status, _, attempt) = app.row(&id).await;
    assert_eq!((status.as_str(), attempt), ("succeeded", 2));
    let (_, done) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert!(
        crate::support::millis_between(&done, "startedAt", "finishedAt") >= 1500,
        "the result is attempt 2's, after its full sleep: {done}"
    );
    kill(pid, Signal::SIGKILL).unwrap();
    paused.wait().await.unwrap();
}
