//! `/metrics` of the real binaries, scraped after a known workload and read
//! with a Prometheus text parser. The recorder is process-wide, so these
//! tests start `jobwire-api`, `jobwire-worker` and `jobwire` as processes
//! (the in-process apps of the other tests install none).

use std::collections::HashSet;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use prometheus_parse::Value as Sampled;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

use crate::processes::{command, start_api, start_api_with};
use crate::support::{Options, PrivateRedis, Proc, SpawnProc, TestApp, WAIT, Ws, spawn_app_with};

const WORKER: &str = env!("CARGO_BIN_EXE_jobwire-worker");

/// One scrape: its text and what a Prometheus parser reads in it.
struct Scrape {
    text: String,
    parsed: prometheus_parse::Scrape,
}

async fn scrape(url: &str) -> Scrape {
    let response = reqwest::get(url).await.expect("the scrape is answered");
    assert_eq!(response.status(), 200, "{url}");
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "the Prometheus text format: {content_type}"
    );
    let text = response.text().await.unwrap();
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .expect("a scrape in the Prometheus text format");
    Scrape { text, parsed }
}

impl Scrape {
    fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Sampled> {
        self.parsed
            .samples
            .iter()
            .find(|sample| {
                sample.metric == name
                    && sample.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
            })
            .map(|sample| &sample.value)
    }

    /// The counter or gauge `name` with exactly `labels`; a labelled
    /// counter that never counted anything is absent, so zero.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.sample(name, labels) {
            Some(Sampled::Counter(v) | Sampled::Gauge(v) | Sampled::Untyped(v)) => *v,
            Some(other) => panic!("{name} is not a counter or gauge: {other:?}"),
            None => 0.0,
        }
    }

    /// Whether the series is in the scrape at all.
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.sample(name, labels).is_some()
    }

    /// How many observations the histogram `name` with exactly `labels` holds.
    fn observations(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.sample(name, labels) {
            Some(Sampled::Histogram(buckets)) => buckets
                .iter()
                .find(|bucket| bucket.less_than == f64::INFINITY)
                .map_or(0.0, |bucket| bucket.count),
            Some(other) => panic!("{name} is not a histogram: {other:?}"),
            None => 0.0,
        }
    }

    /// Every series name in the scrape.
    fn names(&self) -> HashSet<&str> {
        self.parsed
            .samples
            .iter()
            .map(|sample| sample.metric.as_str())
            .collect()
    }
}

/// Runs `promtool check metrics` on a scrape when promtool is installed
/// (CI installs Debian's `prometheus` for it); says so loudly when it is not.
async fn promtool_check(what: &str, text: &str) {
    use tokio::io::AsyncWriteExt;
    let child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "\n!!! promtool is not installed ({e}): `promtool check metrics` of the {what} \
                 scrape was NOT run. Install it with `apt-get install prometheus` (CI does).\n"
            );
            return;
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics refuses the {what} scrape:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A `jobwire-worker` and the URL of its metrics listener (port 0).
struct Worker {
    process: Proc,
    metrics: String,
    _stdout: Lines<BufReader<ChildStdout>>,
}

async fn start_worker(app: &TestApp, env: &[(&str, &str)]) -> Worker {
    let mut process = command(WORKER, app).envs(env.iter().copied()).spawn_proc();
    let mut stdout = BufReader::new(process.stdout.take().expect("piped stdout")).lines();
    let line = tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .expect("jobwire-worker prints its metrics address")
        .unwrap()
        .expect("a line");
    let metrics = line
        .rsplit(' ')
        .next()
        .expect("the URL ends the line")
        .to_owned();
    assert!(
        metrics.starts_with("http://127.0.0.1:") && metrics.ends_with("/metrics"),
        "{line}"
    );
    Worker {
        process,
        metrics,
        _stdout: stdout,
    }
}

async fn post(addr: &str, token: &str, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn create(addr: &str, token: &str, body: Value) -> String {
    post(addr, token, "/v1/jobs", body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Reads updates until every one of `jobs` has ended; returns how many
/// updates came and the last cursor.
async fn updates_until_all_end(ws: &mut Ws, jobs: &HashSet<String>) -> (usize, String) {
    let mut ended = HashSet::new();
    let mut updates = 0;
    let mut cursor = String::new();
    while ended.len() < jobs.len() {
        let update = ws.next_update().await;
        updates += 1;
        cursor = update["cursor"].as_str().unwrap().to_owned();
        let id = update["jobId"].as_str().unwrap().to_owned();
        if ["succeeded", "failed", "cancelled"].contains(&update["status"].as_str().unwrap()) {
            assert!(jobs.contains(&id), "an update of an unknown job: {update}");
            ended.insert(id);
        }
    }
    (updates, cursor)
}

const NOOP: usize = 20;
const FAILING: usize = 3;
const FAILING_ATTEMPTS: usize = 3;
const CANCELLED: usize = 4;
/// Updates of the workload: a noop job is queued, running, succeeded; a
/// failing one is queued, then per attempt running and scheduled (a retry)
/// or failed, and queued again when its backoff is over; a cancelled
/// delayed one is scheduled, then cancelled.
const UPDATES: usize = NOOP * 3 + FAILING * (1 + 3 * FAILING_ATTEMPTS - 1) + CANCELLED * 2;

#[tokio::test]
async fn the_api_and_the_worker_count_a_known_workload_exactly() {
    let app = spawn_app_with(Options::without_worker()).await;
    let (_api, addr) = start_api(&app).await;
    let api_metrics = format!("http://{addr}/metrics");
    let worker = start_worker(
        &app,
        &[
            ("JOBWIRE_RETRY_BASE", "50ms"),
            ("JOBWIRE_RETRY_CAP", "200ms"),
        ],
    )
    .await;
    let acme = app.token("acme");
    let mut watchers = Vec::new();
    for _ in 0..3 {
        watchers.push(Ws::connect(addr.parse().unwrap(), &acme).await);
    }
    let _globex = Ws::connect(addr.parse().unwrap(), &app.token("globex")).await;

    let mut jobs = HashSet::new();
    for n in 0..NOOP {
        jobs.insert(create(&addr, &acme, json!({"type": "noop", "payload": {"n": n}})).await);
    }
    for _ in 0..FAILING {
        let body = json!({"type": "fail", "priority": "high", "maxAttempts": FAILING_ATTEMPTS,
            "payload": {"message": "boom"}});
        jobs.insert(create(&addr, &acme, body).await);
    }
    for _ in 0..CANCELLED {
        let body = json!({"type": "sleep", "priority": "low", "delayMs": 3_600_000});
        let id = create(&addr, &acme, body).await;
        post(&addr, &acme, &format!("/v1/jobs/{id}/cancel"), json!({})).await;
        jobs.insert(id);
    }
    let mut cursor = String::new();
    for watcher in &mut watchers {
        let (updates, last) = updates_until_all_end(watcher, &jobs).await;
        assert_eq!(updates, UPDATES, "every update reaches every watcher once");
        cursor = last;
    }

    let api = scrape(&api_metrics).await;
    let work = scrape(&worker.metrics).await;
    let created = |job_type, priority| {
        api.value(
            "jobwire_jobs_created_total",
            &[("type", job_type), ("priority", priority)],
        )
    };
    assert_eq!(created("noop", "default"), NOOP as f64);
    assert_eq!(created("fail", "high"), FAILING as f64);
    assert_eq!(created("sleep", "low"), CANCELLED as f64);
    let finished = |from: &Scrape, job_type, status| {
        from.value(
            "jobwire_jobs_finished_total",
            &[("type", job_type), ("status", status)],
        )
    };
    assert_eq!(finished(&api, "sleep", "cancelled"), CANCELLED as f64);
    assert_eq!(finished(&work, "noop", "succeeded"), NOOP as f64);
    assert_eq!(finished(&work, "fail", "failed"), FAILING as f64);
    let attempts = (FAILING * FAILING_ATTEMPTS) as f64;
    let by_type = |job_type| [("type", job_type)];
    assert_eq!(
        work.value("jobwire_job_attempts_total", &by_type("noop")),
        NOOP as f64
    );
    assert_eq!(
        work.value("jobwire_job_attempts_total", &by_type("fail")),
        attempts
    );
    assert_eq!(
        work.value("jobwire_job_retries_total", &by_type("fail")),
        (FAILING * (FAILING_ATTEMPTS - 1)) as f64
    );
    assert_eq!(
        work.value("jobwire_job_retries_total", &by_type("noop")),
        0.0
    );
    assert_eq!(
        work.observations("jobwire_job_duration_seconds", &by_type("noop")),
        NOOP as f64
    );
    assert_eq!(
        work.observations("jobwire_job_duration_seconds", &by_type("fail")),
        attempts
    );
    assert_eq!(
        work.observations("jobwire_job_queue_wait_seconds", &[]),
        (NOOP + FAILING) as f64,
        "one wait per job that started, at its first attempt"
    );
    assert_eq!(
        work.value("jobwire_jobs_promoted_total", &[])
            + api.value("jobwire_jobs_promoted_total", &[]),
        (FAILING * (FAILING_ATTEMPTS - 1)) as f64,
        "each retry is queued when its backoff is over (by the worker's maintenance or the API's)"
    );
    assert_eq!(work.value("jobwire_jobs_running", &[]), 0.0);
    for nothing in [
        "jobwire_lease_expiries_total",
        "jobwire_jobs_redispatched_total",
    ] {
        assert!(
            work.has(nothing, &[]),
            "{nothing} is scraped from the start"
        );
        assert_eq!(work.value(nothing, &[]), 0.0, "{nothing}");
    }
    for scrape in [&api, &work] {
        for priority in ["critical", "high", "default", "low"] {
            assert!(scrape.has("jobwire_queue_depth", &[("priority", priority)]));
            assert_eq!(
                scrape.value("jobwire_queue_depth", &[("priority", priority)]),
                0.0
            );
        }
        assert_eq!(scrape.value("jobwire_scheduled_due_jobs", &[]), 0.0);
        assert!(scrape.observations("jobwire_db_pool_wait_seconds", &[]) > 0.0);
        assert_eq!(scrape.value("jobwire_db_pool_max_connections", &[]), 10.0);
        assert!(scrape.has("jobwire_db_pool_connections", &[("state", "idle")]));
        assert!(scrape.has("jobwire_db_pool_connections", &[("state", "busy")]));
        assert!(
            !scrape.names().contains("jobwire_store_errors_total")
                && !scrape.names().contains("jobwire_broker_errors_total"),
            "no errors without a fault"
        );
    }

    // Realtime: 3 sessions of acme and 1 of globex; each got `connected`, and
    // acme's every update of the workload.
    assert_eq!(api.value("jobwire_ws_connections", &[]), 4.0);
    let tenants = |bucket| api.value("jobwire_ws_tenants", &[("connections", bucket)]);
    assert_eq!(tenants("1"), 1.0, "globex");
    assert_eq!(tenants("2-10"), 1.0, "acme");
    for empty in ["11-100", "101-1000", ">1000"] {
        assert_eq!(tenants(empty), 0.0, "{empty}");
    }
    assert_eq!(
        api.value("jobwire_ws_frames_sent_total", &[]),
        (3 * (1 + UPDATES) + 1) as f64
    );
    assert_eq!(
        api.observations("jobwire_update_lag_seconds", &[]),
        UPDATES as f64,
        "every update published passed through this API's subscriber"
    );
    assert_eq!(api.value("jobwire_ws_slow_consumer_kicks_total", &[]), 0.0);
    assert_eq!(api.value("jobwire_subscriber_reconnects_total", &[]), 0.0);

    // The worker's listener serves /metrics and nothing else.
    let elsewhere = worker.metrics.replace("/metrics", "/v1/jobs");
    let response = reqwest::get(&elsewhere).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );
    for (what, scrape) in [("jobwire-api", &api), ("jobwire-worker", &work)] {
        promtool_check(what, &scrape.text).await;
        let documented: HashSet<&str> = jobwire_metrics::SERIES.iter().map(|s| s.name).collect();
        let unknown: Vec<&str> = scrape
            .names()
            .into_iter()
            .filter(|name| {
                // A histogram adds its `_sum` and `_count` lines to its name.
                let base = name
                    .strip_suffix("_sum")
                    .or_else(|| name.strip_suffix("_count"))
                    .unwrap_or(name);
                !documented.contains(name) && !documented.contains(base)
            })
            .collect();
        assert!(
            unknown.is_empty(),
            "{what} scrapes undocumented series {unknown:?}"
        );
    }

    // A resume within the window is replayed; one past it (10,001 changes
    // of tenant bulk) gets a reset and a snapshot.
    let bulk = app.token("bulk");
    let later = json!({"type": "later", "priority": "low", "delayMs": 3_600_000});
    for size in [1000; 10].into_iter().chain([1]) {
        let batch: Vec<Value> = (0..size).map(|_| later.clone()).collect();
        post(&addr, &bulk, "/v1/jobs/batch", json!({"jobs": batch})).await;
    }
    let mut resumed = Ws::resume(addr.parse().unwrap(), &acme, &cursor).await;
    resumed.updates_until_event("resumed").await;
    let mut reset = Ws::resume(addr.parse().unwrap(), &bulk, "0").await;
    let (_, first) = reset.updates_until_event("reset").await;
    assert_eq!(first["event"], "reset");
    let (snapshot, _) = reset.updates_until_event("snapshot").await;
    assert_eq!(snapshot.len(), 500);
    let api = scrape(&api_metrics).await;
    assert_eq!(api.value("jobwire_ws_resumes_total", &[]), 1.0);
    assert_eq!(api.value("jobwire_ws_resets_total", &[]), 1.0);
    assert_eq!(
        api.value(
            "jobwire_jobs_created_total",
            &[("type", "later"), ("priority", "low")]
        ),
        10_001.0
    );
}

#[tokio::test]
async fn faults_show_in_their_counters() {
    let redis = PrivateRedis::start().await;
    let app = spawn_app_with(Options {
        worker: false,
        redis_url: Some(redis.url.clone()),
        ..Options::default()
    })
    .await;
    let (_api, addr) = start_api_with(&app, &[("JOBWIRE_WS_QUEUE", "4")]).await;
    let api_metrics = format!("http://{addr}/metrics");
    let acme = app.token("acme");
    let mut ws = Ws::connect(addr.parse().unwrap(), &acme).await;
    let fast = [
        ("JOBWIRE_LEASE_TTL", "1s"),
        ("JOBWIRE_REDISPATCH_AFTER", "300ms"),
    ];

    // Redis loses a queued job's ID: a worker's sweep enqueues it again.
    let lost = create(&addr, &acme, json!({"type": "noop"})).await;
    let queue = format!("{}job_queue:default:acme/noop", app.prefix);
    let turns = format!("{}job_tenants:default:noop", app.prefix);
    let pending = format!("{}job_queue:pending", app.prefix);
    redis.command(&["DEL", &queue, &turns, &pending]).await;
    let mut first = start_worker(&app, &fast).await;
    ws.until_status(&lost, "succeeded").await;
    // Maintenance runs in every worker and in jobwire-api: whichever saw to it counted it.
    let (work, api) = (scrape(&first.metrics).await, scrape(&api_metrics).await);
    let both = |name, labels: &[(&str, &str)]| work.value(name, labels) + api.value(name, labels);
    assert_eq!(both("jobwire_jobs_redispatched_total", &[]), 1.0);

    // A worker dies mid-job: another one finds its lease expired.
    let body = json!({"type": "sleep", "payload": {"ms": 60_000}, "maxAttempts": 2});
    let orphan = create(&addr, &acme, body).await;
    ws.until_status(&orphan, "running").await;
    let pid = Pid::from_raw(first.process.id().unwrap() as i32);
    kill(pid, Signal::SIGKILL).unwrap();
    first.process.wait().await.unwrap();
    let second = start_worker(&app, &fast).await;
    let requeued = ws.until_status(&orphan, "running").await;
    assert_eq!(requeued.last().unwrap()["attempt"], 2);
    let (work, api) = (scrape(&second.metrics).await, scrape(&api_metrics).await);
    let both = |name, labels: &[(&str, &str)]| work.value(name, labels) + api.value(name, labels);
    assert_eq!(both("jobwire_lease_expiries_total", &[]), 1.0);
    assert_eq!(both("jobwire_job_retries_total", &[("type", "sleep")]), 1.0);
    // The claim is announced just before its handler starts: wait for the gauge.
    wait_for_metric(&second.metrics, "jobwire_jobs_running", 1.0).await;
    post(
        &addr,
        &acme,
        &format!("/v1/jobs/{orphan}/cancel"),
        json!({}),
    )
    .await;
    drop(second);

    // A worker dies between committing an outcome and publishing it: the
    // API finds the change it never saw.
    let _dying = start_worker(&app, &[("JOBWIRE_WORKER_FAILPOINT", "exit-after-finish")]).await;
    let unseen = create(&addr, &acme, json!({"type": "noop"})).await;
    ws.until_status(&unseen, "succeeded").await;
    assert_eq!(
        scrape(&api_metrics)
            .await
            .value("jobwire_gap_fills_total", &[]),
        1.0
    );

    // The subscription is cut: the API subscribes again.
    redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    wait_for_metric(&api_metrics, "jobwire_subscriber_reconnects_total", 1.0).await;

    // A client that never reads, while big updates keep coming, is kicked.
    let _stalled = Ws::connect(addr.parse().unwrap(), &app.token("slow")).await;
    let padding = "x".repeat(64 * 1024);
    let kicked = async {
        for n in 0..400 {
            let update = json!({
                "tenantId": "slow", "jobId": uuid::Uuid::now_v7(), "type": "bulk",
                "status": "running", "version": 1, "attempt": 1, "error": null,
                "progress": {"pad": padding},
            });
            app.publish_raw(&update.to_string()).await;
            if n % 20 == 19
                && scrape(&api_metrics)
                    .await
                    .value("jobwire_ws_slow_consumer_kicks_total", &[])
                    == 1.0
            {
                return;
            }
        }
        panic!("a client that never read 25 MiB of updates was not kicked");
    };
    tokio::time::timeout(WAIT, kicked)
        .await
        .expect("kicked in time");

    // Redis goes away: the scrape's reading of the queue depths fails, and is counted.
    let mut redis = redis;
    redis.stop();
    let api = scrape(&api_metrics).await;
    assert_eq!(
        api.value(
            "jobwire_broker_errors_total",
            &[("operation", "EVALSHA depths")]
        ),
        1.0,
        "{}",
        api.text
    );
    promtool_check("jobwire-api after faults", &api.text).await;
}

/// Scrapes until the unlabelled series `name` is `value`.
async fn wait_for_metric(url: &str, name: &str, value: f64) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let reached = async {
        loop {
            tick.tick().await;
            if scrape(url).await.value(name, &[]) == value {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, reached)
        .await
        .unwrap_or_else(|_| panic!("{name} never reached {value}"));
}

#[tokio::test]
async fn the_all_in_one_binary_serves_the_api_and_worker_series_on_its_listener() {
    let dir = crate::embedded::TempDir::new();
    let jobwire = crate::embedded::start(&dir.0).await;
    let mut ws = Ws::connect(jobwire.addr.parse().unwrap(), &jobwire.token).await;
    let done = jobwire.create(json!({"type": "noop"})).await;
    let failed = jobwire
        .create(json!({"type": "fail", "maxAttempts": 1}))
        .await;
    ws.until_status(&done, "succeeded").await;
    ws.until_status(&failed, "failed").await;

    let all = scrape(&format!("http://{}/metrics", jobwire.addr)).await;
    let created = |job_type| {
        all.value(
            "jobwire_jobs_created_total",
            &[("type", job_type), ("priority", "default")],
        )
    };
    assert_eq!((created("noop"), created("fail")), (1.0, 1.0));
    assert_eq!(
        all.value(
            "jobwire_jobs_finished_total",
            &[("type", "noop"), ("status", "succeeded")]
        ),
        1.0
    );
    assert_eq!(
        all.value(
            "jobwire_jobs_finished_total",
            &[("type", "fail"), ("status", "failed")]
        ),
        1.0
    );
    assert_eq!(
        all.value("jobwire_job_attempts_total", &[("type", "noop")]),
        1.0
    );
    assert_eq!(all.value("jobwire_ws_connections", &[]), 1.0);
    assert_eq!(
        all.value("jobwire_queue_depth", &[("priority", "default")]),
        0.0
    );
    assert!(
        !all.names().contains("jobwire_db_pool_max_connections"),
        "SQLite has no pool to show"
    );
    promtool_check("jobwire (embedded)", &all.text).await;
}

#[tokio::test]
async fn an_in_process_api_without_a_recorder_serves_no_metrics() {
    let app = spawn_app_with(Options::without_worker()).await;
    let response = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test]
async fn the_sweeper_counts_what_it_deleted_and_the_size_of_the_jobs_table() {
    let app = spawn_app_with(Options::without_worker()).await;
    let (_api, addr) = start_api(&app).await;
    let worker = start_worker(
        &app,
        &[
            ("JOBWIRE_RETAIN_SUCCEEDED", "1s"),
            ("JOBWIRE_RETENTION_INTERVAL", "100ms"),
        ],
    )
    .await;
    let acme = app.token("acme");
    for _ in 0..5 {
        create(&addr, &acme, json!({"type": "noop"})).await;
    }
    let deleted = |scrape: &Scrape, status| {
        scrape.value("jobwire_retention_deleted_total", &[("status", status)])
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let swept = async {
        loop {
            tick.tick().await;
            let work = scrape(&worker.metrics).await;
            if deleted(&work, "succeeded") == 5.0 {
                return work;
            }
        }
    };
    let work = tokio::time::timeout(WAIT * 2, swept)
        .await
        .expect("the five succeeded jobs are deleted and counted");
    assert_eq!(deleted(&work, "failed"), 0.0);
    assert_eq!(deleted(&work, "cancelled"), 0.0);
    assert!(work.has("jobwire_jobs_table_rows", &[]), "{}", work.text);
    assert!(work.value("jobwire_jobs_table_bytes", &[]) > 0.0);
    // What the counter says is what the API shows: the tenant has no job left.
    let (status, page) = app.get("acme", "/v1/jobs").await;
    assert_eq!(status, 200);
    assert_eq!(page["jobs"], json!([]), "{page}");
    promtool_check("jobwire-worker after a sweep", &work.text).await;
    drop(worker.process);
}

/// The tenants of the bucket workload: their jobs created, queued, running
/// and scheduled, as (tenant, created, scheduled, queued, running, cancelled).
const BUCKET_WORKLOAD: [(&str, usize, usize, usize, usize, usize); 3] = [
    ("acme", 5, 0, 3, 0, 2),
    ("globex", 4, 0, 1, 3, 0),
    ("initech", 2, 2, 0, 0, 0),
];

/// Runs [`BUCKET_WORKLOAD`] against the API at `addr` (jobs of types no
/// worker runs, so they stay as the test leaves them: leased by the test as a
/// remote worker to be `running`, delayed to be `scheduled`), then checks the
/// per-bucket series of a scrape and that no tenant ID is anywhere in it.
async fn check_tenant_buckets(
    addr: &str,
    tenant_token: impl Fn(&str) -> String,
    worker_token: &str,
) {
    for (tenant, created, scheduled, queued, running, cancelled) in BUCKET_WORKLOAD {
        assert_eq!(created, scheduled + queued + running + cancelled);
        let token = tenant_token(tenant);
        for _ in 0..queued + cancelled {
            create(addr, &token, json!({"type": "wait"})).await;
        }
        for _ in 0..scheduled {
            create(addr, &token, json!({"type": "wait", "delayMs": 3_600_000})).await;
        }
        for _ in 0..running {
            create(addr, &token, json!({"type": "hold"})).await;
        }
        // Cancel `cancelled` of the queued ones (the newest).
        let listed: Value = reqwest::Client::new()
            .get(format!("http://{addr}/v1/jobs?status=queued&type=wait"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for job in listed["jobs"].as_array().unwrap().iter().take(cancelled) {
            let id = job["id"].as_str().unwrap();
            post(addr, &token, &format!("/v1/jobs/{id}/cancel"), json!({})).await;
        }
        if running > 0 {
            let worker = reqwest::Client::new();
            let leased: Value = worker
                .post(format!("http://{addr}/v1/worker/lease"))
                .bearer_auth(worker_token)
                .json(&json!({"max": running, "waitMs": 5000, "leaseMs": 600_000}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(leased.as_array().unwrap().len(), running, "{leased}");
        }
    }

    let all = scrape(&format!("http://{addr}/metrics")).await;
    let mut expected = vec![[0_usize; 4]; usize::from(jobwire_core::TENANT_BUCKETS)];
    for (tenant, created, scheduled, queued, running, _) in BUCKET_WORKLOAD {
        let bucket = tenant.parse::<jobwire_core::TenantId>().unwrap().bucket();
        let counts = &mut expected[usize::from(bucket)];
        counts[0] += created;
        counts[1] += scheduled;
        counts[2] += queued;
        counts[3] += running;
    }
    for (bucket, label) in jobwire_core::TENANT_BUCKET_LABELS.iter().enumerate() {
        let [created, scheduled, queued, running] = expected[bucket];
        assert_eq!(
            all.value(
                "jobwire_tenant_jobs_created_total",
                &[("tenant_bucket", label)]
            ),
            created as f64,
            "jobs created in bucket {label}"
        );
        for (status, jobs) in [
            ("scheduled", scheduled),
            ("queued", queued),
            ("running", running),
        ] {
            let labels = [("tenant_bucket", *label), ("status", status)];
            assert!(
                all.has("jobwire_tenant_jobs", &labels),
                "every bucket and status is scraped, empty ones as 0: {label} {status}"
            );
            assert_eq!(
                all.value("jobwire_tenant_jobs", &labels),
                jobs as f64,
                "{status} jobs in bucket {label}"
            );
        }
    }
    for (tenant, ..) in BUCKET_WORKLOAD {
        assert!(
            !all.text.contains(tenant),
            "the tenant ID {tenant:?} is nowhere in /metrics:\n{}",
            all.text
        );
    }
    for sample in &all.parsed.samples {
        if let Some(bucket) = sample.labels.get("tenant_bucket") {
            assert!(
                jobwire_core::TENANT_BUCKET_LABELS.contains(&bucket),
                "{sample:?}"
            );
        }
    }
    promtool_check("tenant buckets", &all.text).await;
}

#[tokio::test]
async fn tenant_buckets_count_jobs_and_never_name_a_tenant_on_postgres_and_redis() {
    let app = spawn_app_with(Options::without_worker()).await;
    let (_api, addr) = start_api(&app).await;
    let worker = app.worker_token("holder", &[], &["hold"]);
    check_tenant_buckets(&addr, |tenant| app.token(tenant), &worker).await;
}

#[tokio::test]
async fn tenant_buckets_count_jobs_and_never_name_a_tenant_embedded() {
    let dir = crate::embedded::TempDir::new();
    let jobwire = crate::embedded::start(&dir.0).await;
    // Tokens as a user of the embedded mode makes them: signed with the
    // secret it keeps beside its database.
    let token = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_jobwire"))
            .current_dir(&dir.0)
            .env_clear()
            .arg("token")
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let worker = token(&["--worker", "--type", "hold"]);
    check_tenant_buckets(
        &jobwire.addr,
        |tenant| token(&["--tenant", tenant]),
        &worker,
    )
    .await;
}

/// A create refused by the tenant's quota is counted by its tenant bucket
/// and reason, and the tenant is not named.
#[tokio::test]
async fn creates_refused_by_a_quota_are_counted_by_bucket_and_reason() {
    let app = spawn_app_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let (_api, addr) = start_api_with(
        &app,
        &[
            ("JOBWIRE_TENANT_RATE", "0.01"),
            ("JOBWIRE_TENANT_BURST", "2"),
        ],
    )
    .await;
    let token = app.token("throttled-tenant");
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for body in [
        json!({"type": "noop"}),
        json!({"type": "noop"}),
        json!({"type": "noop"}),
    ] {
        let response = http
            .post(format!("http://{addr}/v1/jobs"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    let batch = json!({"jobs": [{"type": "noop"}, {"type": "noop"}, {"type": "noop"}]});
    let response = http
        .post(format!("http://{addr}/v1/jobs/batch"))
        .bearer_auth(&token)
        .json(&batch)
        .send()
        .await
        .unwrap();
    statuses.push(response.status().as_u16());
    assert_eq!(statuses, [201, 201, 429, 422]);
    let bucket = "throttled-tenant"
        .parse::<jobwire_core::TenantId>()
        .unwrap()
        .bucket_label();
    let api = scrape(&format!("http://{addr}/metrics")).await;
    let refused = |reason| {
        api.value(
            jobwire_metrics::TENANT_REFUSED,
            &[("tenant_bucket", bucket), ("reason", reason)],
        )
    };
    assert_eq!((refused("rate"), refused("burst")), (1.0, 1.0));
    assert!(!api.text.contains("throttled-tenant"), "{}", api.text);
}
