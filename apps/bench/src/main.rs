//! `jobwire-bench`: how fast jobs go through the whole product. Each round
//! starts a fresh jobwire (API and workers, in this process, on port 0),
//! creates jobs over REST in batches, and waits until a WebSocket client has
//! seen every one succeed. It reports, per mode, the median over the rounds
//! of the throughput and of the create-to-`succeeded`-on-screen latency.
//!
//! `cargo run --release -p jobwire-bench -- --help` lists the settings.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures_util::StreamExt;
use jobwire_broker::Broker;
use jobwire_runtime::{ApiArgs, Backends, WorkerArgs};
use jobwire_server::JwtKeys;
use jobwire_store::Store;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// SQLite file and in-process broker.
    Embedded,
    /// Postgres and Redis.
    Shared,
}

/// End-to-end jobwire benchmark.
#[derive(Debug, Parser)]
#[command(name = "jobwire-bench")]
struct Cli {
    /// Jobs per round.
    #[arg(long, env = "BENCH_JOBS", default_value_t = 5000)]
    jobs: usize,
    /// Rounds per mode; the median is reported.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 5)]
    rounds: usize,
    /// Jobs per `POST /v1/jobs/batch`.
    #[arg(long, env = "BENCH_BATCH", default_value_t = 500)]
    batch: usize,
    /// Worker concurrency.
    #[arg(long, env = "JOBWIRE_WORKER_CONCURRENCY", default_value_t = 32)]
    concurrency: usize,
    /// Modes to measure.
    #[arg(long, value_enum, default_values_t = [Mode::Embedded, Mode::Shared])]
    mode: Vec<Mode>,
    /// Postgres server for the shared mode (a fresh database is made per round).
    #[arg(
        long,
        env = "BENCH_DATABASE_SERVER",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    database_server: String,
    /// Redis for the shared mode (a fresh key prefix is used per round).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
}

/// One round's figures.
struct Round {
    jobs_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    println!(
        "{} jobs of type noop per round, batches of {}, worker concurrency {}, {} rounds; medians:",
        cli.jobs, cli.batch, cli.concurrency, cli.rounds
    );
    println!(
        "{:<10} {:>12} {:>14} {:>14}",
        "mode", "jobs/s", "p50 latency", "p99 latency"
    );
    for mode in &cli.mode {
        let mut rounds = Vec::new();
        for _ in 0..cli.rounds {
            rounds.push(round(&cli, *mode).await?);
        }
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let rate = median(rounds.iter().map(|r| r.jobs_per_sec).collect());
        let p50 = median(rounds.iter().map(|r| r.p50.as_secs_f64() * 1e3).collect());
        let p99 = median(rounds.iter().map(|r| r.p99.as_secs_f64() * 1e3).collect());
        println!(
            "{:<10} {rate:>12.0} {p50:>11.1} ms {p99:>11.1} ms",
            format!("{mode:?}").to_lowercase()
        );
    }
    Ok(())
}

async fn round(cli: &Cli, mode: Mode) -> anyhow::Result<Round> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("jobwire-bench-{id}"));
    let database = format!("jobwire_bench_{id}");
    let backends = match mode {
        Mode::Embedded => {
            std::fs::create_dir_all(&dir)?;
            Backends {
                store: Store::connect(&format!("sqlite:{}", dir.join("bench.db").display()), 1)
                    .await?,
                broker: Broker::memory(),
            }
        }
        Mode::Shared => Backends {
            store: Store::connect(&format!("{}/{database}", cli.database_server), 20).await?,
            broker: Broker::redis(&cli.redis_url, &format!("bench:{id}:")).await?,
        },
    };
    let result = measure(cli, backends).await;
    match mode {
        Mode::Embedded => std::fs::remove_dir_all(&dir)?,
        Mode::Shared => {
            let admin = sqlx::PgPool::connect(&format!("{}/postgres", cli.database_server)).await?;
            sqlx::query(&format!("drop database if exists {database} with (force)"))
                .execute(&admin)
                .await?;
            forget_redis_keys(&cli.redis_url, &id).await?;
        }
    }
    result
}

/// Deletes the round's Redis keys.
async fn forget_redis_keys(url: &str, id: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("bench:{id}:*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(())
}

async fn measure(cli: &Cli, backends: Backends) -> anyhow::Result<Round> {
    let shutdown = CancellationToken::new();
    let secret = uuid::Uuid::new_v4().to_string();
    let keys = JwtKeys::new(secret.as_bytes());
    let api = ApiArgs {
        addr: "127.0.0.1:0".parse().context("literal address")?,
        jwt_secret: Some(secret),
        max_payload_bytes: 1024 * 1024,
        max_body_bytes: 64 * 1024 * 1024,
        max_batch: cli.batch.max(1),
        ws_queue: cli.jobs * 4,
        ws_ping_interval: Duration::from_secs(20),
        failpoint: None,
    };
    let worker = WorkerArgs {
        concurrency: cli.concurrency,
        shutdown_grace: Duration::from_secs(5),
        lease_ttl: Duration::from_secs(3),
        retry_base: Duration::from_secs(1),
        retry_cap: Duration::from_secs(60),
        redispatch_after: Duration::from_secs(3),
        trace_dir: None,
    };
    let listener = jobwire_runtime::bind(api.addr).await?;
    let addr = listener.local_addr()?;
    let token = keys.issue(&"bench".parse()?, Duration::from_secs(3600));
    let server = {
        let (backends, shutdown, registry) =
            (backends.clone(), shutdown.clone(), worker.registry());
        tokio::spawn(async move {
            jobwire_runtime::run_all(listener, backends, &api, keys, &worker, registry, shutdown)
                .await
        })
    };
    let http = reqwest::Client::new();
    wait_ready(&http, &format!("http://{addr}/readyz")).await?;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws?token={token}")).await?;
    // The `connected` frame: from here on no update is missed.
    ws.next().await.context("connected frame")??;

    let started = Instant::now();
    let mut created_at: HashMap<String, Instant> = HashMap::with_capacity(cli.jobs);
    let batches = cli.jobs.div_ceil(cli.batch.max(1));
    let reader = async {
        let mut done: HashMap<String, Instant> = HashMap::with_capacity(cli.jobs);
        while done.len() < cli.jobs {
            let Some(message) = ws.next().await else {
                bail!("the WebSocket closed")
            };
            if let Message::Text(text) = message? {
                let update: Value = serde_json::from_str(text.as_str())?;
                if update["status"] == "succeeded" {
                    done.insert(
                        update["jobId"].as_str().unwrap_or_default().to_owned(),
                        Instant::now(),
                    );
                }
            }
        }
        Ok(done)
    };
    let writer = async {
        for b in 0..batches {
            let size = cli.batch.min(cli.jobs - b * cli.batch);
            let jobs: Vec<Value> = (0..size).map(|_| json!({"type": "noop"})).collect();
            let sent = Instant::now();
            let response: Value = http
                .post(format!("http://{addr}/v1/jobs/batch"))
                .bearer_auth(&token)
                .json(&json!({"jobs": jobs}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            for job in response["jobs"].as_array().context("jobs")? {
                created_at.insert(job["id"].as_str().unwrap_or_default().to_owned(), sent);
            }
        }
        anyhow::Ok(())
    };
    let (done, written) = tokio::join!(reader, writer);
    written?;
    let done = done?;
    let elapsed = started.elapsed();
    shutdown.cancel();
    server.await??;

    let mut latencies: Vec<Duration> = done
        .iter()
        .filter_map(|(id, at)| {
            created_at
                .get(id)
                .map(|sent| at.saturating_duration_since(*sent))
        })
        .collect();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Round {
        jobs_per_sec: cli.jobs as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    })
}

async fn wait_ready(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{url} never became ready")
}
