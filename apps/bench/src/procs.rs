//! The processes under test, started as they are deployed, and everything one
//! run leaves behind: a temp dir with each child's log (and the SQLite file
//! in embedded mode), a fresh Postgres database and a fresh Redis key prefix.
//! [`Run::finish`] removes all of it; [`Children`] kills and reaps the
//! processes even when a run fails or panics.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jobwire_server::JwtKeys;
use sqlx::Connection;

/// Which deployment a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// `jobwire-api` and `jobwire-worker` processes on Postgres and Redis.
    Shared,
    /// The all-in-one `jobwire`: SQLite and the in-process broker, one process.
    Embedded,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Shared => "shared",
            Engine::Embedded => "embedded",
        }
    }
}

/// Where the product's services are, for every run.
#[derive(Debug, Clone, clap::Args)]
pub struct Services {
    /// Directory holding `jobwire`, `jobwire-api` and `jobwire-worker` (default: the directory of
    /// this executable, e.g. target/release).
    #[arg(long, env = "BENCH_BIN_DIR", global = true)]
    pub bin_dir: Option<PathBuf>,
    /// Postgres server of the shared mode, without a database name (each run creates its own).
    #[arg(
        long,
        env = "BENCH_DATABASE_SERVER",
        default_value = "postgres://postgres@127.0.0.1:5432",
        global = true
    )]
    pub database_server: String,
    /// Redis of the shared mode (each run uses its own key prefix).
    #[arg(
        long,
        env = "BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    pub redis_url: String,
}

/// How long a server may take to print its address and become ready
/// (`jobwire-api` creates and migrates its database first).
const STARTUP: Duration = Duration::from_secs(60);

/// A started server: where it listens and which process it is.
#[derive(Debug, Clone)]
pub struct Server {
    /// `host:port`.
    pub addr: String,
    pub pid: u32,
}

/// Settings of the server a run starts.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `JOBWIRE_WS_QUEUE`: updates queued per WebSocket client before it is kicked.
    pub ws_queue: usize,
    /// Most jobs in one batch the bench sends (`JOBWIRE_MAX_BATCH` is raised to it if needed).
    pub max_batch: usize,
    /// `JOBWIRE_WORKER_CONCURRENCY` of the embedded process's workers (unused by `jobwire-api`).
    pub concurrency: usize,
}

/// The Postgres database and Redis prefix of a shared run.
struct SharedData {
    database_server: String,
    database: String,
    redis_url: String,
    prefix: String,
}

impl SharedData {
    fn database_url(&self) -> String {
        format!("{}/{}", self.database_server, self.database)
    }
}

/// One benchmark run's processes and data.
pub struct Run {
    pub engine: Engine,
    bin_dir: PathBuf,
    dir: PathBuf,
    secret: String,
    keys: JwtKeys,
    shared: Option<SharedData>,
    children: Children,
    keep_logs: bool,
    /// Settings given to every process started from now on (`set_env`).
    env: Vec<(String, String)>,
}

impl Run {
    /// Prepares a run: checks the binaries and services it needs, makes its temp dir
    /// (kept after a successful run too when `keep_logs`).
    pub async fn new(engine: Engine, services: &Services, keep_logs: bool) -> anyhow::Result<Run> {
        let bin_dir = match &services.bin_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_exe()
                .context("cannot tell where this executable is; pass --bin-dir")?
                .parent()
                .context("this executable has no parent directory; pass --bin-dir")?
                .to_owned(),
        };
        let needed: &[&str] = match engine {
            Engine::Shared => &["jobwire-api", "jobwire-worker"],
            Engine::Embedded => &["jobwire"],
        };
        for name in needed {
            if !bin_dir.join(name).is_file() {
                bail!(
                    "{name} is not in {}: build the binaries first with `cargo build --release \
                     --bins` (or run `just bench`), or point --bin-dir / BENCH_BIN_DIR at them",
                    bin_dir.display()
                );
            }
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let shared = match engine {
            Engine::Shared => {
                let shared = SharedData {
                    database_server: services.database_server.trim_end_matches('/').to_owned(),
                    database: format!("jobwire_bench_{id}"),
                    redis_url: services.redis_url.clone(),
                    prefix: format!("bench:{id}:"),
                };
                check_services(&shared).await?;
                Some(shared)
            }
            Engine::Embedded => None,
        };
        let dir = std::env::temp_dir().join(format!("jobwire-bench-{id}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // 38 bytes: over the 32 that jobwire requires.
        let secret = format!("bench-{id}");
        Ok(Run {
            engine,
            bin_dir,
            keys: JwtKeys::new(secret.as_bytes())?,
            secret,
            dir,
            shared,
            children: Children::default(),
            keep_logs,
            env: Vec::new(),
        })
    }

    /// A token of `tenant`, valid for the run.
    pub fn token(&self, tenant: &str) -> anyhow::Result<String> {
        let tenant = tenant
            .parse()
            .with_context(|| format!("bad tenant {tenant}"))?;
        Ok(self.keys.issue(&tenant, Duration::from_secs(24 * 3600))?)
    }

    /// Sets an environment variable of every process started from now on
    /// (a setting the run needs other than its deployed default).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// The run's store, as a URL: its Postgres database, or the SQLite file
    /// of the embedded process.
    pub fn store_url(&self) -> String {
        match &self.shared {
            Some(shared) => shared.database_url(),
            None => format!("sqlite:{}", self.dir.join("jobwire.db").display()),
        }
    }

    /// The Redis URL and update channel of a shared run.
    pub fn update_channel(&self) -> anyhow::Result<(String, String)> {
        let shared = self
            .shared
            .as_ref()
            .context("only the shared engine has a Redis channel")?;
        Ok((
            shared.redis_url.clone(),
            format!("{}job_updates", shared.prefix),
        ))
    }

    /// Starts the API (`jobwire-api`, or the embedded `jobwire` with its
    /// workers) and waits until it is ready.
    pub async fn start_server(&mut self, settings: &ServerSettings) -> anyhow::Result<Server> {
        let (name, mut command) = match &self.shared {
            Some(shared) => {
                let mut command = self.command("jobwire-api");
                command
                    .env("DATABASE_URL", shared.database_url())
                    .env("REDIS_URL", &shared.redis_url)
                    .env("JOBWIRE_PREFIX", &shared.prefix);
                ("jobwire-api", command)
            }
            None => {
                // DATABASE_URL and REDIS_URL stay unset (the environment is cleared):
                // `jobwire` then runs embedded on this file.
                let mut command = self.command("jobwire");
                command
                    .env("JOBWIRE_DB_FILE", self.dir.join("jobwire.db"))
                    .env(
                        "JOBWIRE_WORKER_CONCURRENCY",
                        settings.concurrency.to_string(),
                    )
                    .current_dir(&self.dir);
                ("jobwire", command)
            }
        };
        command
            .env("JOBWIRE_ADDR", "127.0.0.1:0")
            .env("JOBWIRE_JWT_SECRET", &self.secret)
            .env("JOBWIRE_WS_QUEUE", settings.ws_queue.to_string());
        // Other settings keep their deployed defaults; the batch limit (1000) only grows.
        if settings.max_batch > 1000 {
            command.env("JOBWIRE_MAX_BATCH", settings.max_batch.to_string());
        }
        let index = self.children.spawn(name, command, &self.dir)?;
        let addr = self.wait_for_address(index).await?;
        let pid = self.children.0[index].process.id();
        wait_ready(&addr, &mut self.children).await?;
        Ok(Server { addr, pid })
    }

    /// Starts `n` `jobwire-worker` processes (shared engine only).
    pub fn start_workers(&mut self, n: usize, concurrency: usize) -> anyhow::Result<()> {
        let shared = self
            .shared
            .as_ref()
            .context("only the shared engine has separate workers")?;
        for i in 1..=n {
            let mut command = self.command("jobwire-worker");
            command
                .env("DATABASE_URL", shared.database_url())
                .env("REDIS_URL", &shared.redis_url)
                .env("JOBWIRE_PREFIX", &shared.prefix)
                .env("JOBWIRE_WORKER_CONCURRENCY", concurrency.to_string())
                // Several workers on one machine: each serves its metrics on a port of its own.
                .env("JOBWIRE_METRICS_ADDR", "127.0.0.1:0");
            self.children
                .spawn(&format!("jobwire-worker-{i}"), command, &self.dir)?;
        }
        Ok(())
    }

    /// Fails, naming the process and its log, if a child has exited.
    pub fn check_children(&mut self) -> anyhow::Result<()> {
        self.children.check()
    }

    /// `(name, pid)` of every child started so far, and of this process (the
    /// clients: on a shared machine its CPU is taken from the product's).
    pub fn processes(&self) -> Vec<(String, u32)> {
        self.children
            .0
            .iter()
            .map(|c| (c.name.clone(), c.process.id()))
            .chain([("jobwire-bench".to_owned(), std::process::id())])
            .collect()
    }

    /// How many lines of the children's logs are at level WARN and ERROR, and the first of them.
    pub fn log_summary(&self) -> LogSummary {
        let mut summary = LogSummary::default();
        for child in &self.children.0 {
            let text = std::fs::read_to_string(&child.log).unwrap_or_default();
            for line in text.lines() {
                let level = if line.contains(" WARN ") {
                    summary.warnings += 1;
                    " WARN "
                } else if line.contains(" ERROR ") {
                    summary.errors += 1;
                    " ERROR "
                } else {
                    continue;
                };
                if summary.first.is_none() {
                    // Without the timestamp; long lines are cut.
                    let message = line.split_once(level).map_or(line, |(_, rest)| rest);
                    let cut: String = message.chars().take(300).collect();
                    summary.first = Some(format!("{}:{level}{cut}", child.name));
                }
            }
        }
        summary
    }

    /// Stops the children and removes the run's data. On success the temp dir
    /// goes too; on failure its logs stay and the error says where.
    pub async fn finish<T>(mut self, outcome: anyhow::Result<T>) -> anyhow::Result<T> {
        self.children.kill_all();
        let cleanup = self.remove_data().await;
        match outcome {
            Ok(value) => {
                if let Err(e) = cleanup {
                    eprintln!("warning: cleaning up after the run: {e:#}");
                }
                if self.keep_logs {
                    eprintln!("the processes' logs are in {}", self.dir.display());
                } else {
                    let _ = std::fs::remove_dir_all(&self.dir);
                }
                Ok(value)
            }
            Err(e) => {
                if let Err(cleanup) = cleanup {
                    eprintln!("warning: cleaning up after the run: {cleanup:#}");
                }
                Err(e.context(format!(
                    "the run failed; its processes' logs are in {}",
                    self.dir.display()
                )))
            }
        }
    }

    async fn remove_data(&self) -> anyhow::Result<()> {
        // The SQLite file (and its -wal, -shm and .secret) may be large; logs are kept.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("jobwire.db")
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let mut admin =
            sqlx::PgConnection::connect(&format!("{}/postgres", shared.database_server))
                .await
                .context("connecting to Postgres to drop the run's database")?;
        sqlx::query(&format!(
            "drop database if exists \"{}\" with (force)",
            shared.database
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("dropping database {}", shared.database))?;
        let redis = redis::Client::open(shared.redis_url.as_str())?;
        let mut conn = redis
            .get_multiplexed_async_connection()
            .await
            .context("connecting to Redis to remove the run's keys")?;
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", shared.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .context("SCAN")?;
            if !keys.is_empty() {
                redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<()>(&mut conn)
                    .await
                    .context("UNLINK")?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// A command for one of the binaries, with a cleared environment (only
    /// `RUST_LOG` is passed through).
    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(binary));
        command.env_clear();
        if let Ok(filter) = std::env::var("RUST_LOG") {
            command.env("RUST_LOG", filter);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Reads the address a server prints on its first stdout line
    /// (`… listening on http://127.0.0.1:PORT`) from its log.
    async fn wait_for_address(&mut self, index: usize) -> anyhow::Result<String> {
        let deadline = Instant::now() + STARTUP;
        loop {
            let (name, log) = {
                let child = &self.children.0[index];
                (child.name.clone(), child.log.clone())
            };
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = text
                .lines()
                .find_map(|line| line.split_once("listening on http://"))
                .and_then(|(_, rest)| rest.split_whitespace().next())
            {
                return Ok(addr.to_owned());
            }
            self.children.check()?;
            if Instant::now() > deadline {
                bail!(
                    "{name} printed no address within {STARTUP:?} (log: {})",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Fails early, with a clear message, when Postgres or Redis is unreachable.
async fn check_services(shared: &SharedData) -> anyhow::Result<()> {
    let admin_url = format!("{}/postgres", shared.database_server);
    let mut pg = sqlx::PgConnection::connect(&admin_url)
        .await
        .with_context(|| format!("Postgres is unreachable at {admin_url}"))?;
    pg.ping().await?;
    let redis = redis::Client::open(shared.redis_url.as_str())?;
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("Redis is unreachable at {}", shared.redis_url))?;
    redis::cmd("PING").query_async::<String>(&mut conn).await?;
    Ok(())
}

/// Polls `/readyz` until it answers 200.
async fn wait_ready(addr: &str, children: &mut Children) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/readyz");
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(response) = http.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        children.check()?;
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within {STARTUP:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// WARN and ERROR lines of a run's logs.
#[derive(Debug, Default)]
pub struct LogSummary {
    pub warnings: usize,
    pub errors: usize,
    /// The first of them, with the process's name.
    pub first: Option<String>,
}

impl LogSummary {
    /// The JSON fields every mode reports.
    pub fn add_to(&self, json: &mut serde_json::Value) {
        json["child_log_warnings"] = self.warnings.into();
        json["child_log_errors"] = self.errors.into();
        json["child_log_first"] = self.first.clone().into();
    }

    /// For the human table.
    pub fn row(&self) -> String {
        format!("{} / {}", self.warnings, self.errors)
    }
}

/// One started process and the file its stdout and stderr go to.
struct Child {
    name: String,
    log: PathBuf,
    process: std::process::Child,
}

/// The run's processes: killed and reaped when dropped, so none outlives the
/// bench, whatever happened.
#[derive(Default)]
struct Children(Vec<Child>);

impl Children {
    /// Starts `command` with stdout and stderr appended to `<dir>/<name>.log`;
    /// returns its index.
    fn spawn(&mut self, name: &str, mut command: Command, dir: &Path) -> anyhow::Result<usize> {
        let log = dir.join(format!("{name}.log"));
        let file =
            File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        // One file description for both streams: their lines do not overwrite each other.
        let stderr = file.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(stderr));
        let process = command
            .spawn()
            .with_context(|| format!("cannot start {:?}", command.get_program()))?;
        self.0.push(Child {
            name: name.to_owned(),
            log,
            process,
        });
        Ok(self.0.len() - 1)
    }

    fn check(&mut self) -> anyhow::Result<()> {
        for child in &mut self.0 {
            if let Some(status) = child.process.try_wait()? {
                let tail = tail(&child.log, 20);
                bail!(
                    "{} exited early ({status}); log {}, last lines:\n{tail}",
                    child.name,
                    child.log.display()
                );
            }
        }
        Ok(())
    }

    fn kill_all(&mut self) {
        for child in &mut self.0 {
            // An error means it has already exited; wait() reaps it either way.
            let _ = child.process.kill();
            let _ = child.process.wait();
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Makes sure this process (and the children it starts, which inherit the
/// limit) may open `needed` files, raising the soft limit up to the hard one.
pub fn ensure_open_files(needed: u64) -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(NOFILE)")?;
    if soft >= needed {
        return Ok(());
    }
    if hard < needed {
        bail!(
            "this needs about {needed} open files but the hard limit is {hard}: raise it \
             (`ulimit -Hn`, as root) or use fewer --clients"
        );
    }
    setrlimit(Resource::RLIMIT_NOFILE, needed, hard).with_context(|| {
        format!("cannot raise the open-files limit from {soft} to {needed} (hard limit {hard})")
    })
}
