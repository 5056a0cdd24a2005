//! `jobwire-bench`: measures the real binaries as they are deployed. Each run
//! starts `jobwire-api` and `jobwire-worker` processes on a fresh Postgres
//! database and Redis key prefix (shared engine), or the all-in-one `jobwire`
//! on a SQLite file (embedded engine), drives them over REST and WebSocket,
//! and removes everything afterwards.
//!
//! Each run prints a short table on stderr and one JSON line on stdout.
//! The binaries are looked for next to this executable: build them first
//! with `cargo build --release --bins` (`just bench …` does both).

mod fairness;
mod fairness_realtime;
mod fanout;
mod idle_conns;
mod latency;
mod procfs;
mod procs;
mod report;
mod rest;
mod retention;
mod soak;
mod stats;
mod throughput;
mod ws_client;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::procs::{Engine, Run, Services};
use crate::report::Report;

/// The profile this bench was built with, stated in every JSON line: a debug
/// build's figures say nothing about speed.
pub const BUILD: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

/// Benchmark of jobwire's real binaries: throughput, latency, fan-out, idle connections, retention.
#[derive(Debug, Parser)]
#[command(name = "jobwire-bench")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    #[command(flatten)]
    services: Services,
    /// Keep the temp dir with the processes' logs after a successful run (a failed run always keeps it).
    #[arg(long, env = "BENCH_KEEP_LOGS", global = true)]
    keep_logs: bool,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Batch-create N jobs (no worker running, shared), then start the workers and time
    /// first → last `succeeded` on a WebSocket.
    Throughput(throughput::Params),
    /// Single creates at a fixed rate; create call → `succeeded` on the WebSocket.
    Latency(latency::Params),
    /// Many WebSocket clients over many tenants; updates PUBLISHed to Redis; PUBLISH → frame.
    Fanout(fanout::Params),
    /// The API's RSS per idle WebSocket connection.
    IdleConns(idle_conns::Params),
    /// Steady mixed load for minutes with WebSocket clients and short retention (shared); samples
    /// memory, open files, Postgres connections, Redis memory and table rows into a CSV and a PNG.
    Soak(soak::Params),
    /// Create latency (call → 201) without a sweep, then while the retention sweeper deletes
    /// 100,000 expired jobs written straight into the store.
    Retention(retention::Params),
    /// Tenant A floods the queue (1,000,000 jobs by default); B's jobs, created one at a time
    /// after it, are timed from the create call to their start (`running` seen). With
    /// `--realtime`: A storms updates at its WebSocket clients; B's are timed from PUBLISH to
    /// frame received.
    Fairness(fairness::Params),
}

impl Mode {
    fn engine(&self) -> Engine {
        match self {
            Mode::Throughput(p) => p.engine,
            Mode::Latency(p) => p.engine,
            Mode::Fanout(_) => Engine::Shared,
            Mode::IdleConns(p) => p.engine,
            Mode::Soak(_) => Engine::Shared,
            Mode::Retention(p) => p.engine,
            Mode::Fairness(p) => p.engine,
        }
    }

    async fn measure(&self, run: &mut Run) -> anyhow::Result<Report> {
        match self {
            Mode::Throughput(p) => throughput::measure(run, p).await,
            Mode::Latency(p) => latency::measure(run, p).await,
            Mode::Fanout(p) => fanout::measure(run, p).await,
            Mode::IdleConns(p) => idle_conns::measure(run, p).await,
            Mode::Soak(p) => soak::measure(run, p).await,
            Mode::Retention(p) => retention::measure(run, p).await,
            Mode::Fairness(p) => fairness::measure(run, p).await,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain of causes, without a backtrace: they say what went wrong and where the logs are.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut run = Run::new(cli.mode.engine(), &cli.services, cli.keep_logs).await?;
    let outcome = tokio::select! {
        outcome = cli.mode.measure(&mut run) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    run.finish(outcome).await?.emit()
}
