//! `spawn_app()` and the clients the tests talk through.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jobwire_broker::Broker;
use jobwire_core::{Priority, Retention, TenantId};
use jobwire_runtime::{ApiArgs, Backends, JwtArgs, RetryArgs, WorkerArgs};
use jobwire_server::JwtKeys;
use jobwire_store::{ListFilter, Store};
use jobwire_worker::{Failpoint, Registry};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long any wait for an event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);
/// 32 bytes or more, as every secret must be.
pub const SECRET: &str = "test-secret-of-at-least-32-bytes";

/// The Postgres server tests create their databases on.
pub fn pg_server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Which engines an app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Postgres and Redis, as in production.
    PostgresRedis,
    /// A SQLite file and the in-process broker, as `cargo run` starts.
    Embedded,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    /// Start an in-process worker with the app.
    pub worker: bool,
    pub worker_concurrency: usize,
    pub ws_queue: usize,
    pub ws_ping_interval: Duration,
    pub ws_max_sessions: usize,
    pub ws_max_sessions_per_tenant: usize,
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    pub cors_origins: Vec<String>,
    pub worker_failpoint: Option<Failpoint>,
    /// `JOBWIRE_KNOWN_TYPES`: the types some worker runs (empty: any).
    pub known_types: Vec<String>,
    /// Another Redis than the shared one (a private server).
    pub redis_url: Option<String>,
    /// How long the worker keeps finished jobs (it looks for expired ones every 100 ms).
    pub retention: Retention,
    /// The worker's jobwire.toml (webhook handlers); unset, it has the built-in handlers only.
    pub worker_config: Option<std::path::PathBuf>,
    /// Every tenant's quota (the `--tenant-*` flags); none by default.
    pub quota: jobwire_core::Quota,
    /// `--quotas`: the per-tenant quota file.
    pub quota_file: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backend: Backend::PostgresRedis,
            worker: true,
            worker_concurrency: 8,
            ws_queue: 1024,
            ws_ping_interval: Duration::from_secs(20),
            ws_max_sessions: 50_000,
            ws_max_sessions_per_tenant: 10_000,
            max_in_flight: 1024,
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            worker_failpoint: None,
            known_types: Vec::new(),
            redis_url: None,
            retention: Retention::default(),
            worker_config: None,
            quota: jobwire_core::Quota::default(),
            quota_file: None,
        }
    }
}

impl Options {
    pub fn on(backend: Backend) -> Self {
        Self {
            backend,
            ..Self::default()
        }
    }

    pub fn without_worker() -> Self {
        Self {
            worker: false,
            ..Self::default()
        }
    }
}

/// One running jobwire (API, and a worker unless disabled) on port 0, with a
/// fresh database and a unique key prefix. Dropping it shuts it down and
/// removes its database and keys.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub keys: JwtKeys,
    pub prefix: String,
    redis: Option<redis::Client>,
    pub broker: Broker,
    pub store: Store,
    data: Data,
    shutdown: CancellationToken,
    options: Options,
}

/// Where an app's data lives, to remove it afterwards.
enum Data {
    Postgres {
        database_url: String,
        db_name: String,
    },
    Sqlite {
        dir: std::path::PathBuf,
    },
}

/// Short backoffs, so that tests of retries are quick.
fn test_retry() -> RetryArgs {
    RetryArgs {
        retry_base: Duration::from_millis(50),
        retry_cap: Duration::from_millis(500),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let id = Uuid::new_v4().simple().to_string();
    let prefix = format!("test:{id}:");
    let (store, broker, data, redis) = match options.backend {
        Backend::PostgresRedis => {
            let database_url = format!("{}/jobwire_test_{id}", pg_server_url());
            let redis_url = options.redis_url.clone().unwrap_or_else(redis_url);
            let store = Store::connect(&database_url, 10)
                .await
                .expect("Postgres must be running for the tests (see README)");
            let broker = Broker::redis(&redis_url, &prefix)
                .await
                .expect("Redis must be running for the tests (see README)");
            let redis = redis::Client::open(redis_url).expect("redis url");
            (
                store,
                broker,
                Data::Postgres {
                    database_url,
                    db_name: format!("jobwire_test_{id}"),
                },
                Some(redis),
            )
        }
        Backend::Embedded => {
            let dir = std::env::temp_dir().join(format!("jobwire-test-{id}"));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let file = dir.join("jobwire.db");
            let store = Store::connect(&format!("sqlite:{}", file.display()), 1)
                .await
                .expect("SQLite opens");
            (store, Broker::memory(), Data::Sqlite { dir }, None)
        }
    };
    let backends = Backends {
        store: store.clone(),
        broker: broker.clone(),
    };
    let api = ApiArgs {
        addr: "127.0.0.1:0".parse().expect("literal address"),
        jwt: JwtArgs {
            jwt_secret: Some(SECRET.to_owned().into()),
            jwt_audience: None,
            jwt_issuer: None,
            jwt_max_ttl: None,
        },
        max_payload_bytes: 1024 * 1024,
        max_body_bytes: 16 * 1024 * 1024,
        max_batch: 1000,
        ws_queue: options.ws_queue,
        ws_queue_bytes: 16 * 1024 * 1024,
        ws_ping_interval: options.ws_ping_interval,
        ws_max_sessions: options.ws_max_sessions,
        ws_max_sessions_per_tenant: options.ws_max_sessions_per_tenant,
        max_in_flight: options.max_in_flight,
        request_timeout: options.request_timeout,
        cors_origins: options.cors_origins.clone(),
        known_types: options
            .known_types
            .iter()
            .map(|t| t.parse().expect("a valid job type"))
            .collect(),
        failpoint: None,
        tenant_max_queued: options.quota.max_queued,
        tenant_max_running: options.quota.max_running,
        tenant_rate: options.quota.rate,
        tenant_burst: options.quota.burst,
        quotas: options.quota_file.clone(),
    };
    let keys = JwtKeys::new(SECRET.as_bytes()).expect("the test secret is long enough");
    let listener = jobwire_runtime::bind(api.addr).await.expect("bind port 0");
    let addr = listener.local_addr().expect("bound address");
    let shutdown = CancellationToken::new();
    {
        let (backends, keys, shutdown) = (backends.clone(), keys.clone(), shutdown.clone());
        tokio::spawn(async move {
            jobwire_runtime::run_api(
                listener,
                backends,
                &api,
                keys,
                test_retry().policy(),
                shutdown,
            )
            .await
            .expect("API runs");
        });
    }
    let app = TestApp {
        addr,
        http: reqwest::Client::new(),
        keys,
        prefix,
        redis,
        broker,
        store,
        data,
        shutdown,
        options: options.clone(),
    };
    if options.worker {
        app.start_worker();
    }
    app.wait_ready().await;
    app
}

impl TestApp {
    /// Starts an in-process worker (built-in handlers, and the webhooks of
    /// `Options::worker_config`) on this app's data.
    pub fn start_worker(&self) {
        let registry = match &self.options.worker_config {
            Some(file) => WorkerArgs {
                config: Some(file.clone()),
                ..self.worker_args()
            }
            .registry()
            .expect("the test's jobwire.toml is valid"),
            None => Registry::with_builtins(),
        };
        self.start_worker_with(registry);
    }

    /// Starts an in-process worker running `registry`'s handlers on this
    /// app's data; it stops with the app, or when the token returned is cancelled.
    pub fn start_worker_with(&self, registry: Registry) -> CancellationToken {
        let backends = Backends {
            store: self.store.clone(),
            broker: self.broker.clone(),
        };
        let worker = self.worker_args();
        let shutdown = self.shutdown.child_token();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            jobwire_runtime::run_worker(backends, &worker, registry, shutdown).await;
        });
        stop
    }

    /// A test worker's settings: quick leases, retries and sweeps.
    fn worker_args(&self) -> WorkerArgs {
        WorkerArgs {
            worker_concurrency: self.options.worker_concurrency,
            shutdown_grace: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(2),
            retry: test_retry(),
            redispatch_after: Duration::from_secs(1),
            trace_dir: None,
            worker_failpoint: self.options.worker_failpoint,
            retain_succeeded: self.options.retention.succeeded,
            retain_failed: self.options.retention.failed,
            retain_cancelled: self.options.retention.cancelled,
            retention_interval: Duration::from_millis(100),
            // Never the working directory's jobwire.toml: a test's worker has only what it asks for.
            config: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn wait_ready(&self) {
        wait_ready(&self.http, &self.url("/readyz")).await;
    }

    pub fn token(&self, tenant: &str) -> String {
        let tenant: TenantId = tenant.parse().expect("test tenant");
        self.keys
            .issue(&tenant, Duration::from_secs(3600))
            .expect("no maximum lifetime in tests")
    }

    /// A worker token named `name` for `tenants` and `types` (empty: any).
    pub fn worker_token(&self, name: &str, tenants: &[&str], types: &[&str]) -> String {
        let tenants: Vec<TenantId> = tenants.iter().map(|t| t.parse().unwrap()).collect();
        let types: Vec<jobwire_core::JobType> = types.iter().map(|t| t.parse().unwrap()).collect();
        self.keys
            .issue_worker(name, &tenants, &types, Duration::from_secs(3600))
            .expect("no maximum lifetime in tests")
    }

    /// An operator token (`role: operator`), for `/v1/tenants`.
    pub fn operator_token(&self) -> String {
        self.keys
            .issue_operator("ops", Duration::from_secs(3600))
            .expect("no maximum lifetime in tests")
    }

    /// GETs `path` with `token` (an operator's, say).
    pub async fn get_with(&self, token: &str, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET reaches the API");
        read(response).await
    }

    /// POSTs `body` with `token` (a worker's, say).
    pub async fn post_with(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("POST reaches the API");
        read(response).await
    }

    pub async fn post(&self, tenant: &str, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(self.token(tenant))
            .json(&body)
            .send()
            .await
            .expect("POST reaches the API");
        read(response).await
    }

    pub async fn get(&self, tenant: &str, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(self.token(tenant))
            .send()
            .await
            .expect("GET reaches the API");
        read(response).await
    }

    /// Creates a job and returns its ID.
    pub async fn create(&self, tenant: &str, job: Value) -> String {
        let (status, body) = self.post(tenant, "/v1/jobs", job).await;
        assert_eq!(status, 201, "create failed: {body}");
        body["id"].as_str().expect("job id").to_owned()
    }

    pub async fn ws(&self, tenant: &str) -> Ws {
        Ws::connect(self.addr, &self.token(tenant)).await
    }

    /// The Postgres database of a Postgres/Redis app (for other processes).
    pub fn database_url(&self) -> &str {
        match &self.data {
            Data::Postgres { database_url, .. } => database_url,
            Data::Sqlite { .. } => panic!("an embedded app has no Postgres database"),
        }
    }

    /// This app's Redis URL (Postgres/Redis apps only).
    pub fn redis_url(&self) -> String {
        let client = self.redis();
        format!("redis://{}", client.get_connection_info().addr())
    }

    /// A client of this app's Redis (Postgres/Redis apps only).
    pub fn redis(&self) -> &redis::Client {
        self.redis.as_ref().expect("a Postgres/Redis app")
    }

    /// `(status, version, attempt)` of one of acme's jobs, straight from the store.
    pub async fn row(&self, id: &str) -> (String, i64, i32) {
        let job = self
            .store
            .get(
                &"acme".parse().expect("tenant"),
                id.parse().expect("job id"),
            )
            .await
            .expect("store answers")
            .expect("the job exists");
        (job.status.to_string(), job.version, job.attempt)
    }

    /// How many jobs acme has in the store.
    pub async fn job_count(&self) -> usize {
        let filter = ListFilter {
            status: None,
            job_type: None,
            before: None,
            limit: 500,
        };
        let page = self
            .store
            .list(&"acme".parse().expect("tenant"), &filter)
            .await
            .expect("store answers");
        page.jobs.len()
    }

    /// Total length of the four queues.
    pub async fn queued_ids(&self) -> usize {
        let mut total = 0;
        for priority in Priority::ALL {
            total += self.broker.queue_len(priority).await.expect("LLEN");
        }
        total
    }

    /// Publishes raw text on this app's update channel, as any publisher could.
    pub async fn publish_raw(&self, text: &str) {
        self.broker.publish(text).await.expect("publish");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let (redis, prefix) = (self.redis.clone(), self.prefix.clone());
        let db_name = match &self.data {
            Data::Postgres { db_name, .. } => Some(db_name.clone()),
            Data::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
                None
            }
        };
        // Async cleanup needs a runtime of its own: the test's may be ending.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                if let Some(db) = db_name
                    && let Ok(pool) =
                        PgPool::connect(&format!("{}/postgres", pg_server_url())).await
                {
                    let _ = sqlx::query(&format!("drop database if exists {db} with (force)"))
                        .execute(&pool)
                        .await;
                }
                if let Some(redis) = redis
                    && let Ok(mut conn) = redis.get_multiplexed_async_connection().await
                {
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg(format!("{prefix}*"))
                        .query_async(&mut conn)
                        .await
                        .unwrap_or_default();
                    if !keys.is_empty() {
                        let _ = redis::cmd("DEL")
                            .arg(keys)
                            .query_async::<()>(&mut conn)
                            .await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

pub async fn wait_ready(http: &reqwest::Client, url: &str) {
    let ready = async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if let Ok(response) = http.get(url).send().await
                && response.status() == 200
            {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, ready)
        .await
        .unwrap_or_else(|_| panic!("{url} never became ready"));
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A WebSocket client, as a Rust consumer of jobwire would write it.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connects and waits for the `connected` frame: from then on, no update is missed.
    pub async fn connect(addr: SocketAddr, token: &str) -> Ws {
        Ws::connect_hello(addr, token).await.0
    }

    /// [`Ws::connect`], and the `connected` frame.
    pub async fn connect_hello(addr: SocketAddr, token: &str) -> (Ws, Value) {
        let (stream, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws?token={token}"))
                .await
                .expect("WebSocket connects");
        let mut ws = Ws { stream };
        let hello = ws.next_frame().await.expect("connected frame");
        assert_eq!(hello["event"], "connected", "{hello}");
        (ws, hello)
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(Message::text(frame.to_string()))
            .await
            .expect("WS send");
    }

    /// The next JSON text frame; `None` when the connection ended.
    pub async fn next_frame(&mut self) -> Option<Value> {
        let frame = tokio::time::timeout(WAIT, async {
            while let Some(message) = self.stream.next().await {
                match message {
                    Ok(Message::Text(text)) => {
                        return Some(serde_json::from_str(text.as_str()).expect("JSON frame"));
                    }
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => continue,
                }
            }
            None
        });
        frame
            .await
            .expect("timed out waiting for a WebSocket frame")
    }

    /// The next job update (control frames skipped).
    pub async fn next_update(&mut self) -> Value {
        loop {
            let frame = self.next_frame().await.expect("connection open");
            if frame.get("event").is_none() {
                return frame;
            }
        }
    }

    /// Updates of `job` until one has `status`; returns all of that job's updates seen.
    pub async fn until_status(&mut self, job: &str, status: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let update = self.next_update().await;
            if update["jobId"] == job {
                let done = update["status"] == status;
                seen.push(update);
                if done {
                    return seen;
                }
            }
        }
    }
}

/// A job body.
pub fn job(job_type: &str, payload: Value) -> Value {
    json!({"type": job_type, "payload": payload})
}

pub fn statuses(updates: &[Value]) -> Vec<&str> {
    updates
        .iter()
        .map(|u| u["status"].as_str().unwrap_or("?"))
        .collect()
}

/// A `redis-server` of the test's own on a free port, for faults that must
/// not touch the shared Redis. Killed when dropped.
pub struct PrivateRedis {
    pub url: String,
    port: u16,
    password: Option<String>,
    process: std::process::Child,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        Self::start_with(None).await
    }

    /// A server that requires `password` (`requirepass`); `url` carries it.
    pub async fn start_with_password(password: &str) -> PrivateRedis {
        Self::start_with(Some(password)).await
    }

    async fn start_with(password: Option<&str>) -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let password = password.map(str::to_owned);
        let process = Self::spawn(port, password.as_deref()).await;
        let userinfo = password
            .as_deref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        PrivateRedis {
            url: format!("redis://{userinfo}127.0.0.1:{port}"),
            port,
            password,
            process,
        }
    }

    /// Stops the server and starts an empty one on the same port.
    pub async fn restart_empty(&mut self) {
        self.stop();
        self.process = Self::spawn(self.port, self.password.as_deref()).await;
    }

    async fn spawn(port: u16, password: Option<&str>) -> std::process::Child {
        let mut args = vec![
            "--port".to_owned(),
            port.to_string(),
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
        ];
        if let Some(password) = password {
            args.extend(["--requirepass".to_owned(), password.to_owned()]);
        }
        let process = std::process::Command::new("redis-server")
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("this test starts its own redis-server: install Redis so that it is on PATH");
        let userinfo = password.map(|p| format!(":{p}@")).unwrap_or_default();
        let url = format!("redis://{userinfo}127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).expect("url");
        let up = async {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                    && redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok()
                {
                    return;
                }
            }
        };
        tokio::time::timeout(WAIT, up)
            .await
            .expect("private redis-server answers");
        process
    }

    pub async fn command(&self, args: &[&str]) -> redis::Value {
        let client = redis::Client::open(self.url.as_str()).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        redis::cmd(args[0])
            .arg(&args[1..])
            .query_async(&mut conn)
            .await
            .expect("command")
    }

    pub fn stop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Ws {
    /// Connects with `?cursor=` to resume after a disconnection.
    pub async fn resume(addr: SocketAddr, token: &str, cursor: &str) -> Ws {
        let url = format!("ws://{addr}/v1/ws?token={token}&cursor={cursor}");
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connects");
        let mut ws = Ws { stream };
        let hello = ws.next_frame().await.expect("connected frame");
        assert_eq!(hello["event"], "connected", "{hello}");
        ws
    }

    /// Frames until the control frame `event`; returns the updates before it.
    pub async fn updates_until_event(&mut self, event: &str) -> (Vec<Value>, Value) {
        let mut updates = Vec::new();
        loop {
            let frame = self.next_frame().await.expect("connection open");
            match frame.get("event") {
                Some(name) if name == event => return (updates, frame),
                Some(_) => {}
                None => updates.push(frame),
            }
        }
    }
}

/// Milliseconds from a job's time field `from` to its field `to`.
pub fn millis_between(job: &Value, from: &str, to: &str) -> i64 {
    let at = |field: &str| {
        chrono_millis(
            job[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} in {job}")),
        )
    };
    at(to) - at(from)
}

/// Milliseconds since the epoch of an RFC 3339 UTC time like `2026-11-26T22:32:39.719492Z`.
pub fn chrono_millis(at: &str) -> i64 {
    let (date, time) = at.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    let millis: i64 = format!("{frac:0<3}")[..3].parse().unwrap();
    // Days from civil (Howard Hinnant's algorithm), enough for comparing times.
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + millis
}

/// A jobwire process started by a test: killed, and waited for, when dropped,
/// so that it is gone before the test's database and keys are removed.
pub struct Proc(tokio::process::Child);

impl std::ops::Deref for Proc {
    type Target = tokio::process::Child;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
        // SIGKILL takes effect at once; wait (bounded) until the process is reaped.
        for _ in 0..2000 {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

pub trait SpawnProc {
    fn spawn_proc(&mut self) -> Proc;
}

impl SpawnProc for tokio::process::Command {
    fn spawn_proc(&mut self) -> Proc {
        Proc(self.spawn().expect("a jobwire binary starts"))
    }
}
