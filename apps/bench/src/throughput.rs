//! `throughput`: batch-create N jobs, then time their processing from the
//! first to the last `succeeded` seen on a WebSocket client of the tenant.
//!
//! Shared: only `jobwire-api` runs while the jobs are created; the workers
//! start afterwards. Embedded: one process holds the API and the workers, so
//! its workers run during the enqueue (said in the JSON).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::json;

use crate::procfs::CpuMeter;
use crate::procs::{Engine, Run, ServerSettings};
use crate::report::{Report, per_sec};
use crate::rest::{Api, batch_body};
use crate::stats::{round2, whole};
use crate::ws_client::{self, StatusWatch};

/// The tenant every job of the run belongs to.
const TENANT: &str = "bench";

#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// `shared` (jobwire-api + jobwire-worker, Postgres + Redis) or `embedded` (jobwire).
    #[arg(long, value_enum, default_value_t = Engine::Shared)]
    pub engine: Engine,
    /// Jobs created.
    #[arg(long, default_value_t = 50_000)]
    pub jobs: usize,
    /// Jobs per `POST /v1/jobs/batch`.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// `jobwire-worker` processes (shared engine; the embedded one has its own pool).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Jobs each worker runs at once (`JOBWIRE_WORKER_CONCURRENCY`).
    #[arg(long, default_value_t = 50)]
    pub worker_concurrency: usize,
    /// Fail if not every job has succeeded this many seconds after the workers start.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

pub async fn measure(run: &mut Run, p: &Params) -> anyhow::Result<Report> {
    ensure!(
        p.jobs >= 2,
        "--jobs must be at least 2 (a rate needs a first and a last)"
    );
    ensure!(
        p.batch >= 1 && p.workers >= 1 && p.worker_concurrency >= 1,
        "--batch, --workers and --worker-concurrency must be at least 1"
    );
    ensure!(
        p.engine == Engine::Shared || p.workers == 1,
        "the embedded engine is one process with its own worker pool: --workers applies to shared only"
    );
    let server = run
        .start_server(&ServerSettings {
            ws_queue: (4 * p.jobs).max(1024),
            max_batch: p.batch,
            concurrency: p.worker_concurrency,
        })
        .await?;
    let token = run.token(TENANT)?;
    let api = Api::new(&server.addr, token.clone())?;
    let mut watch = StatusWatch::start(ws_client::connect(&server.addr, &token).await?);

    // Bodies are built before the clock starts: every full batch is the same.
    let full = batch_body(p.batch);
    let rest = p.jobs % p.batch;
    let partial = if rest > 0 {
        batch_body(rest)
    } else {
        String::new()
    };
    let mut batches: Vec<(usize, &str)> = vec![(p.batch, full.as_str()); p.jobs / p.batch];
    if rest > 0 {
        batches.push((rest, partial.as_str()));
    }

    let cpu = CpuMeter::start(&run.processes());
    let enqueue_started = Instant::now();
    for (size, body) in batches {
        api.create_batch(body.to_owned(), size).await?;
    }
    let enqueue = enqueue_started.elapsed();
    let enqueue_cpu = cpu.percent(&run.processes());

    let cpu = CpuMeter::start(&run.processes());
    let workers_started = Instant::now();
    if p.engine == Engine::Shared {
        run.start_workers(p.workers, p.worker_concurrency)?;
    }
    let deadline = workers_started + Duration::from_secs(p.timeout_secs);
    let mut succeeded: HashSet<String> = HashSet::with_capacity(p.jobs);
    let (mut first, mut last) = (None, workers_started);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut progress_at = Instant::now() + Duration::from_secs(5);
    while succeeded.len() < p.jobs {
        tokio::select! {
            next = watch.next() => {
                let (id, at) = next?;
                if succeeded.insert(id) {
                    first.get_or_insert(at);
                    last = last.max(at);
                }
            }
            _ = tick.tick() => {
                run.check_children()?;
                let now = Instant::now();
                if now > deadline {
                    bail!(
                        "only {} of {} jobs succeeded within {} s of the workers' start (--timeout-secs)",
                        succeeded.len(), p.jobs, p.timeout_secs
                    );
                }
                if now > progress_at {
                    eprintln!("  … {} of {} jobs succeeded", succeeded.len(), p.jobs);
                    progress_at = now + Duration::from_secs(5);
                }
            }
        }
    }
    let process_cpu = cpu.percent(&run.processes());
    let first = first.context("no job succeeded")?;
    let process = last
        .saturating_duration_since(first)
        .max(Duration::from_micros(1));
    let enqueue_rate = p.jobs as f64 / enqueue.as_secs_f64();
    let process_rate = p.jobs as f64 / process.as_secs_f64();
    let logs = run.log_summary();
    let embedded = p.engine == Engine::Embedded;
    let mut json = json!({
        "mode": "throughput",
        "engine": p.engine.name(),
        "jobs": p.jobs,
        "batch": p.batch,
        "workers": p.workers,
        "concurrency": p.worker_concurrency,
        "payload_bytes": crate::rest::PAYLOAD.len(),
        "enqueue_jobs_per_s": whole(enqueue_rate),
        "enqueue_secs": round2(enqueue.as_secs_f64()),
        "process_jobs_per_s": whole(process_rate),
        "process_secs": round2(process.as_secs_f64()),
        "workers_during_enqueue": embedded,
        // From the workers' start (shared) or the end of the enqueue (embedded) to the last success.
        "drain_secs": round2(last.saturating_duration_since(workers_started).as_secs_f64()),
        "cpu_pct": {"enqueue": enqueue_cpu, "process": process_cpu},
        "bench_build": crate::BUILD,
    });
    logs.add_to(&mut json);
    let title = format!(
        "throughput, {}: {} noop jobs in batches of {}, {} × concurrency {}",
        p.engine.name(),
        p.jobs,
        p.batch,
        if embedded {
            "in-process workers".to_owned()
        } else {
            format!("{} worker process(es)", p.workers)
        },
        p.worker_concurrency
    );
    Ok(Report::new(title, json)
        .row(
            "enqueue",
            format!("{} ({:.2} s)", per_sec(enqueue_rate), enqueue.as_secs_f64()),
        )
        .row(
            "processing (first → last succeeded)",
            format!("{} ({:.2} s)", per_sec(process_rate), process.as_secs_f64()),
        )
        .row("workers ran during the enqueue", embedded)
        .row("log lines WARN / ERROR", logs.row()))
}
