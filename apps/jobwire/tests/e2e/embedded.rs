//! The embedded default: `jobwire` with neither DATABASE_URL nor REDIS_URL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};
use uuid::Uuid;

use crate::support::{Proc, SpawnProc, WAIT, Ws, job, wait_ready};

/// An empty directory of the test's own, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("jobwire-embedded-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `jobwire`, as a newcomer starts it: no URLs, nothing installed.
pub(crate) struct Embedded {
    child: Proc,
    pub(crate) addr: String,
    pub(crate) token: String,
    banner: String,
    _stdout: Lines<BufReader<ChildStdout>>,
}

pub(crate) async fn start(dir: &Path) -> Embedded {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jobwire"))
        .current_dir(dir)
        .env_clear()
        .env("JOBWIRE_ADDR", "127.0.0.1:0")
        .env("JOBWIRE_WORKER_CONCURRENCY", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn_proc();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    while !banner.contains("dashboard:") {
        let line = tokio::time::timeout(WAIT, stdout.next_line())
            .await
            .expect("the startup banner in time")
            .unwrap()
            .expect("jobwire printed its banner before exiting");
        banner.push_str(&line);
        banner.push('\n');
    }
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the URL")
        .to_owned();
    let token = banner
        .lines()
        .find(|line| line.contains("dev token"))
        .and_then(|line| line.rsplit(' ').next())
        .expect("the token")
        .to_owned();
    wait_ready(&reqwest::Client::new(), &format!("http://{addr}/readyz")).await;
    Embedded {
        child,
        addr,
        token,
        banner,
        _stdout: stdout,
    }
}

impl Embedded {
    pub(crate) async fn create(&self, body: Value) -> String {
        let response = reqwest::Client::new()
            .post(format!("http://{}/v1/jobs", self.addr))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("http://{}{path}", self.addr))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        crate::support::read(response).await
    }

    /// Polls the job until it has `status` (the process was just restarted, so
    /// its updates may precede any WebSocket).
    async fn wait_for(&self, id: &str, status: &str) -> Value {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let wait = async {
            loop {
                tick.tick().await;
                let (_, job) = self.get(&self.token, &format!("/v1/jobs/{id}")).await;
                if job["status"] == status {
                    return job;
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("job {id} never {status}"))
    }
}

#[tokio::test]
async fn the_embedded_binary_keeps_every_job_across_a_kill_and_a_restart() {
    let dir = TempDir::new();
    let mut first = start(&dir.0).await;
    assert!(
        first.banner.contains("SQLite ./jobwire.db"),
        "{}",
        first.banner
    );
    assert!(first.banner.contains("in-process"), "{}", first.banner);

    let mut ws = Ws::connect(first.addr.parse().unwrap(), &first.token).await;
    let done = first.create(job("noop", json!({}))).await;
    ws.until_status(&done, "succeeded").await;
    // One slot: the sleeper runs, the next job waits queued when the process dies.
    let interrupted = first.create(job("sleep", json!({"ms": 1500}))).await;
    ws.until_status(&interrupted, "running").await;
    let waiting = first.create(job("echo", json!({"kept": true}))).await;
    kill(
        Pid::from_raw(first.child.id().unwrap() as i32),
        Signal::SIGKILL,
    )
    .unwrap();
    first.child.wait().await.unwrap();
    assert!(dir.0.join("jobwire.db").exists() && dir.0.join("jobwire.db.secret").exists());

    let second = start(&dir.0).await;
    // The secret was kept beside the database: the old token still works.
    let (status, list) = second.get(&first.token, "/v1/jobs").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        3,
        "no job lost: {list}"
    );
    let (_, before) = second.get(&first.token, &format!("/v1/jobs/{done}")).await;
    assert_eq!(
        (before["status"].as_str(), before["version"].as_i64()),
        (Some("succeeded"), Some(3))
    );

    let completed = second.wait_for(&waiting, "succeeded").await;
    assert_eq!(completed["result"], json!({"kept": true}));
    let rerun = second.wait_for(&interrupted, "succeeded").await;
    assert_eq!(
        rerun["attempt"], 2,
        "the interrupted job ran again: {rerun}"
    );
}

/// A binary, its environment, and the words its refusal must contain.
type Refusal = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[tokio::test]
async fn half_embedded_configurations_are_refused_with_a_reason() {
    let dir = TempDir::new();
    let cases: [Refusal; 4] = [
        (
            env!("CARGO_BIN_EXE_jobwire"),
            &[("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x")],
            "REDIS_URL",
        ),
        (
            env!("CARGO_BIN_EXE_jobwire"),
            &[("REDIS_URL", "redis://127.0.0.1:6379")],
            "DATABASE_URL",
        ),
        (
            env!("CARGO_BIN_EXE_jobwire"),
            &[
                ("DATABASE_URL", "sqlite:./x.db"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
            ],
            "in-process broker",
        ),
        (
            env!("CARGO_BIN_EXE_jobwire-worker"),
            &[("DATABASE_URL", "sqlite:./x.db")],
            "cannot use SQLite",
        ),
    ];
    for (binary, env, reason) in cases {
        let output = Command::new(binary)
            .current_dir(&dir.0)
            .env_clear()
            .envs(env.iter().copied())
            .env("JOBWIRE_JWT_SECRET", crate::support::SECRET)
            .env("JOBWIRE_ADDR", "127.0.0.1:0")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{binary} {env:?} refused");
        assert!(stderr.contains(reason), "{binary} {env:?}: {stderr}");
    }
    let api = Command::new(env!("CARGO_BIN_EXE_jobwire-api"))
        .env_clear()
        .env("DATABASE_URL", "sqlite:./x.db")
        .env("JOBWIRE_JWT_SECRET", crate::support::SECRET)
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&api.stderr).contains("cannot use SQLite"));
    assert!(!dir.0.join("x.db").exists(), "nothing was created");
}

#[tokio::test]
async fn the_banner_links_the_dashboard_signed_in_with_the_dev_token() {
    let dir = TempDir::new();
    let app = start(&dir.0).await;
    let link = app
        .banner
        .lines()
        .find_map(|line| line.trim().strip_prefix("dashboard: "))
        .expect("a dashboard line")
        .to_owned();
    assert_eq!(
        link,
        format!("http://{}/?token={}", app.addr, app.token),
        "{}",
        app.banner
    );
    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("/dashboard/app.js"));
}
