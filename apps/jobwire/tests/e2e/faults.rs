//! The fault-injection suite: real `jobwire-api` and `jobwire-worker`
//! processes under load, one fault each, with the jobs spread over
//! [`TENANTS`] tenants (each tenant's own queue lists, turns and WebSocket
//! clients). After the fault, every scenario waits for quiescence and asserts,
//! per tenant, that every created job is terminal in Postgres, that no job
//! had two attempts running at once (from the workers' `trace` log), and that
//! every WebSocket client's last view of its tenant's jobs equals Postgres and
//! holds no other tenant's. It prints the figures.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::processes::{command, start_api};
use crate::support::{Options, PrivateRedis, Proc, SpawnProc, TestApp, spawn_app_with};

/// How long a faulted system may take to settle.
const SETTLE: Duration = Duration::from_secs(60);
const BATCHES: usize = 12;
const PER_BATCH: usize = 10;
/// Tenants the jobs of every scenario are spread over: job `n` is tenant `n mod TENANTS`'s.
const TENANTS: usize = 25;

/// One created job and its tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Created {
    tenant: String,
    id: String,
}

fn tenant_name(n: usize) -> String {
    format!("tenant-{:02}", n % TENANTS)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The processes of one scenario around a test app (which owns the database
/// and key prefix, and runs no worker of its own).
struct Cluster {
    /// Held for its kill-on-drop.
    _api: Proc,
    api_addr: String,
    workers: Vec<Proc>,
    trace: PathBuf,
    /// When each killed worker process died, by PID.
    killed: HashMap<u32, u64>,
    http: reqwest::Client,
    /// Each tenant's name and token, tenant `i` at `i`.
    tenants: Vec<(String, String)>,
    /// Last, so that the processes above are gone before its database is dropped.
    app: TestApp,
}

impl Cluster {
    async fn start(redis: Option<&PrivateRedis>, workers: usize) -> Cluster {
        let app = spawn_app_with(Options {
            redis_url: redis.map(|r| r.url.clone()),
            ..Options::without_worker()
        })
        .await;
        let trace = std::env::temp_dir().join(format!("jobwire-trace-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&trace).unwrap();
        let (api, api_addr) = start_api(&app).await;
        let tenants = (0..TENANTS)
            .map(|i| (tenant_name(i), app.token(&tenant_name(i))))
            .collect();
        let mut cluster = Cluster {
            _api: api,
            api_addr,
            workers: Vec::new(),
            trace,
            killed: HashMap::new(),
            http: reqwest::Client::new(),
            tenants,
            app,
        };
        for _ in 0..workers {
            cluster.add_worker();
        }
        cluster
    }

    fn add_worker(&mut self) {
        let worker = command(env!("CARGO_BIN_EXE_jobwire-worker"), &self.app)
            .env("JOBWIRE_LEASE_TTL", "2s")
            .env("JOBWIRE_RETRY_BASE", "50ms")
            .env("JOBWIRE_RETRY_CAP", "500ms")
            .env("JOBWIRE_REDISPATCH_AFTER", "1s")
            .env("JOBWIRE_SHUTDOWN_GRACE", "2s")
            .env("JOBWIRE_TRACE_DIR", &self.trace)
            .spawn_proc();
        self.workers.push(worker);
    }

    /// SIGKILLs a worker that is in the middle of a job (per the trace), or
    /// any worker; returns whether one was mid-job.
    async fn kill_a_busy_worker(&mut self) -> bool {
        let busy = busy_pids(&self.trace);
        let index = self
            .workers
            .iter()
            .position(|w| w.id().is_some_and(|pid| busy.contains(&pid)));
        let mut worker = self.workers.remove(index.unwrap_or(0));
        let pid = worker.id().unwrap();
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        worker.wait().await.unwrap();
        self.killed.insert(pid, now_ms());
        index.is_some()
    }

    /// Creates jobs in rounds of [`PER_BATCH`], job `n` for tenant `n mod
    /// TENANTS` (a round's jobs of one tenant in one batch, the tenants'
    /// batches at once), each job with an idempotency key, retrying a failed
    /// request with the same keys; returns every created job.
    async fn create(&self, addr: &str, first: usize, batches: usize) -> Vec<Created> {
        let mut created = Vec::new();
        for batch in 0..batches {
            let mut by_tenant: HashMap<usize, Vec<Value>> = HashMap::new();
            for i in 0..PER_BATCH {
                let n = first + batch * PER_BATCH + i;
                by_tenant.entry(n % TENANTS).or_default().push(
                    json!({"type": "trace", "payload": {"ms": 40 + n % 80}, "maxAttempts": 10,
                        "idempotencyKey": format!("job-{n}")}),
                );
            }
            let batches = by_tenant
                .iter()
                .map(|(tenant, jobs)| self.create_batch(addr, *tenant, jobs));
            created.extend(futures_util::future::join_all(batches).await.concat());
        }
        created
    }

    async fn create_batch(&self, addr: &str, tenant: usize, jobs: &[Value]) -> Vec<Created> {
        let (name, token) = &self.tenants[tenant];
        for _ in 0..100 {
            let sent = self
                .http
                .post(format!("http://{addr}/v1/jobs/batch"))
                .bearer_auth(token)
                .json(&json!({"jobs": jobs}))
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            if let Ok(response) = sent
                && response.status().is_success()
            {
                let body: Value = response.json().await.unwrap();
                return body["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|j| Created {
                        tenant: name.clone(),
                        id: j["id"].as_str().unwrap().to_owned(),
                    })
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("a batch could not be created in 100 tries");
    }

    /// Waits until every job is terminal in Postgres; returns `(status, version)` by ID.
    async fn settle(&self, ids: &[Created]) -> HashMap<String, (String, i64)> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let rows = self.rows(ids).await;
            let open = rows.values().filter(|(s, _)| !terminal(s)).count();
            if open == 0 && rows.len() == ids.len() {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "{open} of {} jobs still unfinished after {SETTLE:?}",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Each job's row, read as its own tenant's (a job under another tenant is missing).
    async fn rows(&self, ids: &[Created]) -> HashMap<String, (String, i64)> {
        let mut by_tenant: HashMap<&str, Vec<jobwire_core::JobId>> = HashMap::new();
        for job in ids {
            by_tenant
                .entry(&job.tenant)
                .or_default()
                .push(job.id.parse().unwrap());
        }
        let mut rows = HashMap::new();
        for (tenant, ids) in by_tenant {
            let tenant = tenant.parse().unwrap();
            for chunk in ids.chunks(500) {
                for job in self.app.store.get_many(&tenant, chunk).await.unwrap() {
                    rows.insert(job.id.to_string(), (job.status.to_string(), job.version));
                }
            }
        }
        rows
    }

    /// A watcher per tenant, `per_tenant` times over.
    fn watchers(&self, per_tenant: usize) -> Vec<Watcher> {
        (0..per_tenant)
            .flat_map(|_| &self.tenants)
            .map(|(tenant, token)| {
                Watcher::start(self.api_addr.clone(), tenant.clone(), token.clone())
            })
            .collect()
    }

    /// Checks the trace: no job had two attempts running at once. Returns
    /// `(attempts run, re-executions, overlaps)`.
    fn executions(&self) -> (usize, usize, usize) {
        let mut spans: HashMap<(String, i64), (u64, Option<u64>, u32)> = HashMap::new();
        for entry in trace_lines(&self.trace) {
            let key = (
                entry["job"].as_str().unwrap().to_owned(),
                entry["attempt"].as_i64().unwrap(),
            );
            let at = entry["atMs"].as_u64().unwrap();
            let pid = entry["pid"].as_u64().unwrap() as u32;
            let span = spans.entry(key).or_insert((at, None, pid));
            match entry["event"].as_str().unwrap() {
                "start" => span.0 = at,
                _ => span.1 = Some(at),
            }
        }
        let mut by_job: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
        for ((job, _), (start, end, pid)) in &spans {
            // An attempt without an end died with its process.
            let end = end
                .or_else(|| self.killed.get(pid).copied())
                .unwrap_or(u64::MAX);
            by_job.entry(job.clone()).or_default().push((*start, end));
        }
        let mut overlaps = 0;
        for runs in by_job.values_mut() {
            runs.sort();
            overlaps += runs.windows(2).filter(|w| w[1].0 < w[0].1).count();
        }
        (spans.len(), spans.len() - by_job.len(), overlaps)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.trace);
    }
}

fn terminal(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled")
}

fn trace_lines(dir: &PathBuf) -> Vec<Value> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .flat_map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .filter_map(|line| serde_json::from_str(&line).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Processes with an attempt started and not ended.
fn busy_pids(dir: &PathBuf) -> HashSet<u32> {
    let mut open: HashMap<(String, i64), u32> = HashMap::new();
    for entry in trace_lines(dir) {
        let key = (
            entry["job"].as_str().unwrap().to_owned(),
            entry["attempt"].as_i64().unwrap(),
        );
        match entry["event"].as_str().unwrap() {
            "start" => {
                open.insert(key, entry["pid"].as_u64().unwrap() as u32);
            }
            _ => {
                open.remove(&key);
            }
        }
    }
    open.into_values().collect()
}

/// A WebSocket client that keeps its last view of every job, and reconnects
/// with its cursor whenever its connection ends (or it is told to drop it).
struct Watcher {
    tenant: String,
    view: Arc<Mutex<HashMap<String, (i64, String)>>>,
    drop_now: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    fn start(addr: String, tenant: String, token: String) -> Watcher {
        let view: Arc<Mutex<HashMap<String, (i64, String)>>> = Arc::default();
        let drop_now = Arc::new(Notify::new());
        let (seen, dropper) = (Arc::clone(&view), Arc::clone(&drop_now));
        let task = tokio::spawn(async move {
            let mut cursor: Option<i64> = None;
            loop {
                let url = match cursor {
                    Some(c) => format!("ws://{addr}/v1/ws?token={token}&cursor={c}"),
                    None => format!("ws://{addr}/v1/ws?token={token}"),
                };
                let Ok((mut stream, _)) = tokio_tungstenite::connect_async(url).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                loop {
                    let message = tokio::select! {
                        message = stream.next() => message,
                        _ = dropper.notified() => break,
                    };
                    let Some(Ok(message)) = message else { break };
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let update: Value = serde_json::from_str(text.as_str()).unwrap();
                    if update.get("event").is_some() {
                        continue;
                    }
                    let job = update["jobId"].as_str().unwrap().to_owned();
                    let version = update["version"].as_i64().unwrap();
                    if let Some(c) = update["cursor"].as_str().and_then(|c| c.parse().ok()) {
                        cursor = Some(cursor.map_or(c, |held: i64| held.max(c)));
                    }
                    let mut view = seen.lock().unwrap();
                    // A client keeps the newest version of each job.
                    if view.get(&job).is_none_or(|(held, _)| *held < version) {
                        view.insert(
                            job,
                            (version, update["status"].as_str().unwrap().to_owned()),
                        );
                    }
                }
            }
        });
        Watcher {
            tenant,
            view,
            drop_now,
            task,
        }
    }

    /// Waits until this client's view of every job of its tenant equals
    /// Postgres; it must hold no other job.
    async fn converge(&self, ids: &[Created], truth: &HashMap<String, (String, i64)>) {
        let own: HashSet<&str> = ids
            .iter()
            .filter(|job| job.tenant == self.tenant)
            .map(|job| job.id.as_str())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (differing, foreign) = {
                let view = self.view.lock().unwrap();
                let differing = own
                    .iter()
                    .filter(|id| {
                        let (status, version) = &truth[**id];
                        view.get(**id) != Some(&(*version, status.clone()))
                    })
                    .count();
                let foreign = view.keys().filter(|id| !own.contains(id.as_str())).count();
                (differing, foreign)
            };
            assert_eq!(
                foreign, 0,
                "{}'s client saw {foreign} jobs of other tenants",
                self.tenant
            );
            if differing == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}'s client's view differs from Postgres for {differing} of its {} jobs",
                self.tenant,
                own.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks and reports a scenario's end state, tenant by tenant; returns the re-executions.
async fn verify(
    name: &str,
    cluster: &Cluster,
    watchers: &[Watcher],
    ids: &[Created],
    fault_at: Instant,
) -> usize {
    let truth = cluster.settle(ids).await;
    let recovery = fault_at.elapsed();
    for watcher in watchers {
        watcher.converge(ids, &truth).await;
    }
    let (attempts, reruns, overlaps) = cluster.executions();
    // Per tenant: (jobs created, jobs that did not succeed).
    let mut tenants: HashMap<&str, (usize, usize)> = HashMap::new();
    for job in ids {
        let counts = tenants.entry(&job.tenant).or_default();
        counts.0 += 1;
        if truth[&job.id].0 != "succeeded" {
            counts.1 += 1;
        }
    }
    let lost: usize = tenants.values().map(|(_, lost)| lost).sum();
    let sizes = tenants.values().map(|(n, _)| *n);
    let (fewest, most) = (sizes.clone().min().unwrap_or(0), sizes.max().unwrap_or(0));
    let unique: HashSet<&str> = ids.iter().map(|job| job.id.as_str()).collect();
    println!(
        "fault `{name}`: jobs created {} over {} tenants ({fewest}–{most} each), lost {lost}, \
         attempts {attempts}, re-executions {reruns}, overlapping executions {overlaps}, \
         settled {:.2} s after the fault",
        ids.len(),
        tenants.len(),
        recovery.as_secs_f64()
    );
    assert_eq!(unique.len(), ids.len(), "no job was created twice");
    let mut losing: Vec<(&str, usize)> = tenants
        .iter()
        .filter(|(_, (_, lost))| *lost > 0)
        .map(|(tenant, (_, lost))| (*tenant, *lost))
        .collect();
    losing.sort();
    assert_eq!(losing, [], "every job of every tenant succeeded");
    assert_eq!(
        tenants.len(),
        TENANTS.min(ids.len()),
        "the jobs were spread over the tenants"
    );
    assert_eq!(overlaps, 0, "no job ran in two places at once");
    reruns
}

#[tokio::test]
async fn sigkill_workers_mid_job_repeatedly() {
    let mut cluster = Cluster::start(None, 3).await;
    let watchers = cluster.watchers(1);
    let mut ids = cluster
        .create(&cluster.api_addr.clone(), 0, BATCHES / 2)
        .await;
    let mut fault_at = Instant::now();
    let mut killed_mid_job = 0;
    for round in 0..3 {
        // Wait for a worker to be mid-job, then kill it and start another.
        let deadline = Instant::now() + Duration::from_secs(10);
        while busy_pids(&cluster.trace).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if cluster.kill_a_busy_worker().await {
            killed_mid_job += 1;
        }
        fault_at = Instant::now();
        cluster.add_worker();
        let addr = cluster.api_addr.clone();
        ids.extend(cluster.create(&addr, 1000 * (round + 1), 2).await);
    }
    let reruns = verify("SIGKILL workers", &cluster, &watchers, &ids, fault_at).await;
    assert!(killed_mid_job > 0, "at least one worker died mid-job");
    assert!(
        reruns > 0,
        "a job cut short by a kill ran again ({killed_mid_job} kills mid-job)"
    );
}

#[tokio::test]
async fn api_killed_between_commit_and_enqueue() {
    let cluster = Cluster::start(None, 2).await;
    let watchers = cluster.watchers(1);
    let mut ids = cluster.create(&cluster.api_addr, 0, BATCHES / 2).await;

    // A second API with the failpoint: it commits one batch and dies before enqueueing it.
    let (mut doomed, doomed_addr) = {
        let mut command = command(env!("CARGO_BIN_EXE_jobwire-api"), &cluster.app);
        command.env("JOBWIRE_FAILPOINT", "exit-after-commit");
        let mut child = command.spawn_proc();
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let line = lines.next_line().await.unwrap().unwrap();
        let addr = line.rsplit("http://").next().unwrap().to_owned();
        crate::support::wait_ready(&cluster.http, &format!("http://{addr}/readyz")).await;
        (child, addr)
    };
    // Orphans of several tenants, sent at once: the first commit kills the API.
    let orphans: Vec<(usize, Vec<Value>)> = (0..PER_BATCH)
        .map(|i| {
            let job = json!({"type": "trace", "payload": {"ms": 20}, "maxAttempts": 10,
                "idempotencyKey": format!("orphan-{i}")});
            (i % TENANTS, vec![job])
        })
        .collect();
    let sends = orphans.iter().map(|(tenant, jobs)| {
        cluster
            .http
            .post(format!("http://{doomed_addr}/v1/jobs/batch"))
            .bearer_auth(&cluster.tenants[*tenant].1)
            .json(&json!({"jobs": jobs}))
            .send()
    });
    for died in futures_util::future::join_all(sends).await {
        assert!(died.is_err(), "the API died before answering: {died:?}");
    }
    let status = doomed.wait().await.unwrap();
    assert_eq!(status.code(), Some(86), "exited at the failpoint");
    let fault_at = Instant::now();
    // The client retries against a restarted API: the same keys return the
    // committed jobs (and create those that never were).
    let (_restarted, restarted_addr) = start_api(&cluster.app).await;
    for (tenant, jobs) in &orphans {
        let recovered = cluster.create_batch(&restarted_addr, *tenant, jobs).await;
        assert_eq!(recovered.len(), jobs.len());
        ids.extend(recovered);
    }
    ids.extend(cluster.create(&cluster.api_addr, 500, 2).await);
    verify(
        "API killed between commit and enqueue",
        &cluster,
        &watchers,
        &ids,
        fault_at,
    )
    .await;
    assert!(fault_at.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn redis_restarted_empty_during_load() {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start(Some(&redis), 2).await;
    let watchers = cluster.watchers(1);
    let mut ids = cluster.create(&cluster.api_addr, 0, BATCHES / 2).await;
    redis.restart_empty().await;
    let fault_at = Instant::now();
    ids.extend(cluster.create(&cluster.api_addr, 500, BATCHES / 2).await);
    verify("Redis restarted empty", &cluster, &watchers, &ids, fault_at).await;
}

#[tokio::test]
async fn the_apis_subscriber_is_killed_during_load() {
    let redis = PrivateRedis::start().await;
    let cluster = Cluster::start(Some(&redis), 2).await;
    let watchers = cluster.watchers(1);
    let mut ids = Vec::new();
    let mut fault_at = Instant::now();
    for round in 0..4 {
        ids.extend(cluster.create(&cluster.api_addr, round * 100, 3).await);
        redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
        fault_at = Instant::now();
    }
    verify(
        "CLIENT KILL TYPE pubsub",
        &cluster,
        &watchers,
        &ids,
        fault_at,
    )
    .await;
}

#[tokio::test]
async fn every_websocket_client_drops_and_resumes_with_its_cursor() {
    let cluster = Cluster::start(None, 2).await;
    let watchers = cluster.watchers(2);
    let mut ids = Vec::new();
    let mut fault_at = Instant::now();
    for round in 0..3 {
        ids.extend(cluster.create(&cluster.api_addr, round * 100, 4).await);
        for watcher in &watchers {
            watcher.drop_now.notify_one();
        }
        fault_at = Instant::now();
    }
    verify(
        "WebSocket clients dropped",
        &cluster,
        &watchers,
        &ids,
        fault_at,
    )
    .await;
}

#[tokio::test]
async fn postgres_connections_are_killed_during_load() {
    let cluster = Cluster::start(None, 2).await;
    let watchers = cluster.watchers(1);
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", crate::support::pg_server_url()))
        .await
        .unwrap();
    let db = cluster
        .app
        .database_url()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    let mut fault_at = Instant::now();
    for round in 0..3 {
        ids.extend(cluster.create(&cluster.api_addr, round * 100, 4).await);
        let killed: Vec<bool> = sqlx::query_scalar(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
        )
        .bind(&db)
        .fetch_all(&admin)
        .await
        .unwrap();
        assert!(!killed.is_empty(), "there were connections to kill");
        fault_at = Instant::now();
    }
    verify(
        "Postgres connections killed",
        &cluster,
        &watchers,
        &ids,
        fault_at,
    )
    .await;
}
