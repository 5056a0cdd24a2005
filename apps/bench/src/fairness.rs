//! `fairness`: tenant A batch-creates a flood of jobs while the workers run;
//! once it is all queued, tenant B creates one job at a time. Each of B's
//! jobs is timed twice: from its creation to its start as the store recorded
//! them (the goal: 50 ms), and from the create call to its `running` on B's
//! WebSocket (what B's user sees, the realtime path included). With one FIFO
//! for every tenant, B's job would wait for A's whole backlog.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;

use crate::procs::{Engine, Run, ServerSettings};
use crate::report::Report;
use crate::rest::{Api, batch_body, job_body};
use crate::stats::{Percentiles, round2};
use crate::ws_client::{self, StatusWatch};

/// The bound on B's wait behind the flood.
const GOAL_MS: f64 = 50.0;

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
    let mut ids = Vec::with_capacity(p.probes);
    for _ in 0..p.probes {
        let sent = Instant::now();
        let id = quiet.create_one(job_body()).await?;
        creates.push(sent.elapsed().as_secs_f64() * 1000.0);
        ids.push(id.clone());
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
    let mut starts = Vec::with_capacity(ids.len());
    for id in &ids {
        starts.push(quiet.start_delay_ms(id).await?);
    }
    let over_goal = |ms: &[f64]| ms.iter().filter(|&&ms| ms > GOAL_MS).count();
    let (starts_over, waits_over) = (over_goal(&starts), over_goal(&waits));
    let each: Vec<f64> = waits.iter().map(|&ms| round2(ms)).collect();
    let each_create: Vec<f64> = creates.iter().map(|&ms| round2(ms)).collect();
    let each_start: Vec<f64> = starts.iter().map(|&ms| round2(ms)).collect();
    let starts = Percentiles::of(starts).context("no probe")?;
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
        "b_start_p50_ms": round2(starts.p50),
        "b_start_p90_ms": round2(starts.p90),
        "b_start_p99_ms": round2(starts.p99),
        "b_start_max_ms": round2(starts.max),
        "b_starts_over_goal": starts_over,
        "b_starts_ms": each_start,
        "b_wait_p50_ms": round2(waits.p50),
        "b_wait_p90_ms": round2(waits.p90),
        "b_waits_over_goal": waits_over,
        "b_waits_ms": each,
        "b_creates_ms": each_create,
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
        "B: created → started (store)",
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            starts.p50, starts.p90, starts.p99, starts.max
        ),
    )
    .row(
        "B: create call → running seen",
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            waits.p50, waits.p90, waits.p99, waits.max
        ),
    )
    .row(
        "B over the 50 ms goal",
        format!(
            "started: {starts_over} of {n}; seen running: {waits_over} of {n}",
            n = p.probes
        ),
    )
    .row(
        "… of which the create call",
        format!("p50 {:.1} ms, p99 {:.1} ms", creates.p50, creates.p99),
    )
    .row("log lines WARN / ERROR", logs.row()))
}
