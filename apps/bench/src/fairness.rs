//! `fairness`: tenant A batch-creates a flood of jobs while the workers run;
//! once it is all queued, tenant B creates one job at a time, and each one's
//! wait from the create call to its `running` on B's WebSocket is taken
//! (an upper bound on when it started: the goal is 50 ms). With one FIFO for every tenant, B's
//! job would wait for A's whole backlog.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;

use crate::procs::{Engine, Run, ServerSettings};
use crate::report::Report;
use crate::rest::{Api, batch_body, job_body};
use crate::stats::{Percentiles, round2};
use crate::ws_client::{self, StatusWatch};

#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// `shared` (jobwire-api + jobwire-worker, Postgres + Redis) or `embedded` (jobwire).
    #[arg(long, value_enum, default_value_t = Engine::Shared)]
    pub engine: Engine,
    /// Jobs tenant A creates before B's first.
    #[arg(long, default_value_t = 1_000_000)]
    pub flood: usize,
    /// Jobs per `POST /v1/jobs/batch` of the flood.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// B's jobs, one at a time.
    #[arg(long, default_value_t = 20)]
    pub probes: usize,
    /// Between two of B's jobs.
    #[arg(long, default_value_t = 100)]
    pub probe_every_ms: u64,
    /// Jobs the worker runs at once (`JOBWIRE_WORKER_CONCURRENCY`).
    #[arg(long, default_value_t = 50)]
    pub worker_concurrency: usize,
    /// The realtime path instead of dispatch: B's update frames timed from
    /// PUBLISH to received while A storms updates (shared engine; the
    /// `--storm-*`, `--quiet-*` and `--secs` flags shape it).
    #[arg(long)]
    pub realtime: bool,
    #[command(flatten)]
    pub storm: crate::fairness_realtime::StormParams,
}

pub async fn measure(run: &mut Run, p: &Params) -> anyhow::Result<Report> {
    if p.realtime {
        return crate::fairness_realtime::measure(run, &p.storm).await;
    }
    ensure!(
        p.flood >= 1 && p.batch >= 1 && p.probes >= 1,
        "--flood, --batch and --probes must be at least 1"
    );
    let server = run
        .start_server(&ServerSettings {
            ws_queue: 1024,
            max_batch: p.batch,
            concurrency: p.worker_concurrency,
        })
        .await?;
    if p.engine == Engine::Shared {
        run.start_workers(1, p.worker_concurrency)?;
    }
    let flood = Api::new(&server.addr, run.token("flood")?)?;
    let quiet_token = run.token("quiet")?;
    let quiet = Api::new(&server.addr, quiet_token.clone())?;
    let mut watch = StatusWatch::watching(
        ws_client::connect(&server.addr, &quiet_token).await?,
        "running",
    );

    let started = Instant::now();
    let full = batch_body(p.batch);
    let mut left = p.flood;
    while left > 0 {
        let n = left.min(p.batch);
        let body = if n == p.batch {
            full.clone()
        } else {
            batch_body(n)
        };
        flood.create_batch(body, n).await?;
        left -= n;
    }
    let flood_secs = started.elapsed().as_secs_f64();

    let mut waits = Vec::with_capacity(p.probes);
    let mut creates = Vec::with_capacity(p.probes);
    for _ in 0..p.probes {
        let sent = Instant::now();
        let id = quiet.create_one(job_body()).await?;
        creates.push(sent.elapsed().as_secs_f64() * 1000.0);
        loop {
            let (done, at) = tokio::time::timeout(Duration::from_secs(600), watch.next())
                .await
                .context("B's job did not start within 10 minutes")??;
            if done == id {
                waits.push(at.duration_since(sent).as_secs_f64() * 1000.0);
                break;
            }
        }
        run.check_children()?;
        tokio::time::sleep(Duration::from_millis(p.probe_every_ms)).await;
    }
    let waits = Percentiles::of(waits).context("no probe")?;
    let creates = Percentiles::of(creates).context("no probe")?;
    let logs = run.log_summary();
    let mut json = json!({
        "mode": "fairness",
        "engine": p.engine.name(),
        "flood": p.flood,
        "batch": p.batch,
        "probes": p.probes,
        "concurrency": p.worker_concurrency,
        "flood_enqueue_secs": round2(flood_secs),
        "b_wait_p50_ms": round2(waits.p50),
        "b_wait_p99_ms": round2(waits.p99),
        "b_wait_max_ms": round2(waits.max),
        "b_create_p50_ms": round2(creates.p50),
        "b_create_p99_ms": round2(creates.p99),
        "bench_build": crate::BUILD,
    });
    logs.add_to(&mut json);
    Ok(Report::new(
        format!(
            "fairness, {}: B's jobs behind A's flood of {} ({} probes, 1 worker × {})",
            p.engine.name(),
            p.flood,
            p.probes,
            p.worker_concurrency
        ),
        json,
    )
    .row("A's flood queued in", format!("{flood_secs:.1} s"))
    .row(
        "B: create call → running seen",
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            waits.p50, waits.p99, waits.max
        ),
    )
    .row(
        "… of which the create call",
        format!("p50 {:.1} ms, p99 {:.1} ms", creates.p50, creates.p99),
    )
    .row("log lines WARN / ERROR", logs.row()))
}
