//! `latency`: single `POST /v1/jobs` offered at a fixed rate (open loop: a
//! slow answer does not delay the next request), each job timed from the
//! start of its create call to its `succeeded` frame on the WebSocket.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::json;
use tokio::sync::mpsc;

use crate::procfs::CpuMeter;
use crate::procs::{Engine, Run, ServerSettings, ensure_open_files};
use crate::report::{Report, per_sec};
use crate::rest::{Api, job_body};
use crate::stats::{Percentiles, round2, whole};
use crate::ws_client::{self, StatusWatch};

const TENANT: &str = "bench";

/// How long to wait for the last jobs once everything is sent.
const TAIL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// `shared` (jobwire-api + jobwire-worker, Postgres + Redis) or `embedded` (jobwire).
    #[arg(long, value_enum, default_value_t = Engine::Shared)]
    pub engine: Engine,
    /// Creates offered per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// For how many seconds.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// `jobwire-worker` processes (shared engine; the embedded one has its own pool).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Jobs each worker runs at once (`JOBWIRE_WORKER_CONCURRENCY`).
    #[arg(long, default_value_t = 50)]
    pub worker_concurrency: usize,
}

/// What one create call came to: the job's ID, when the call started and how long
/// it took to answer, or an error.
pub(crate) type Created = Result<(String, Instant, Duration), String>;

pub async fn measure(run: &mut Run, p: &Params) -> anyhow::Result<Report> {
    ensure!(
        p.rate >= 1 && p.secs >= 1,
        "--rate and --secs must be at least 1"
    );
    ensure!(
        p.workers >= 1 && p.worker_concurrency >= 1,
        "--workers and --worker-concurrency must be at least 1"
    );
    ensure!(
        p.engine == Engine::Shared || p.workers == 1,
        "the embedded engine is one process with its own worker pool: --workers applies to shared only"
    );
    let total = p.rate * p.secs;
    // Requests the API is slow to answer pile up, each on a connection of its own: allow many
    // (best effort: where the hard limit is lower, the run goes on and reports what fails).
    let _ = ensure_open_files(p.rate.max(1024) * 4);
    let server = run
        .start_server(&ServerSettings {
            ws_queue: (4 * total as usize).max(1024),
            max_batch: 1000,
            concurrency: p.worker_concurrency,
        })
        .await?;
    if p.engine == Engine::Shared {
        run.start_workers(p.workers, p.worker_concurrency)?;
    }
    let token = run.token(TENANT)?;
    let api = Api::new(&server.addr, token.clone())?;
    let mut watch = StatusWatch::start(ws_client::connect(&server.addr, &token).await?);
    warm_up(run, &api, &mut watch).await?;

    let cpu = CpuMeter::start(&run.processes());
    let (created_tx, mut created_rx) = mpsc::unbounded_channel::<Created>();
    let started = Instant::now();
    let mut sender = tokio::spawn(send_at_rate(api, p.rate, total, started, created_tx));

    let mut starts: HashMap<String, Instant> = HashMap::new();
    let mut early: HashMap<String, Instant> = HashMap::new();
    let mut latencies: Vec<f64> = Vec::with_capacity(total as usize);
    let mut answers: Vec<f64> = Vec::with_capacity(total as usize);
    let (mut errors, mut error_samples) = (0u64, Vec::new());
    let mut last_completion = started;
    let mut sent: Option<(u64, Duration)> = None;
    let mut deadline = None;
    let mut created_open = true;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    loop {
        if let Some((n, _)) = sent
            && latencies.len() as u64 + errors >= n
        {
            break;
        }
        tokio::select! {
            done = &mut sender, if sent.is_none() => {
                let (n, took) = done.context("the sending task failed")?;
                sent = Some((n, took));
                deadline = Some(Instant::now() + TAIL);
            }
            created = created_rx.recv(), if created_open => match created {
                Some(Ok((id, start, answered))) => {
                    answers.push(ms(answered));
                    match early.remove(&id) {
                        Some(at) => latencies.push(ms(at.saturating_duration_since(start))),
                        None => {
                            starts.insert(id, start);
                        }
                    }
                }
                Some(Err(e)) => {
                    errors += 1;
                    if error_samples.len() < 3 {
                        error_samples.push(e);
                    }
                }
                None => created_open = false,
            },
            next = watch.next() => {
                let (id, at) = next?;
                last_completion = last_completion.max(at);
                match starts.remove(&id) {
                    Some(start) => latencies.push(ms(at.saturating_duration_since(start))),
                    None => {
                        early.insert(id, at);
                    }
                }
            }
            _ = tick.tick() => {
                run.check_children()?;
                if deadline.is_some_and(|d| Instant::now() > d) {
                    break;
                }
            }
        }
    }
    let cpu = cpu.percent(&run.processes());
    let (sent, send_took) = sent.context("the loop ends only after the sender")?;
    let measured = latencies.len();
    let Some(pct) = Percentiles::of(latencies) else {
        bail!("no job was seen to succeed ({errors} create errors: {error_samples:?})");
    };
    let answer = Percentiles::of(answers);
    let achieved = sent as f64 / send_took.as_secs_f64();
    let completed_rate = measured as f64
        / last_completion
            .saturating_duration_since(started)
            .as_secs_f64();
    let unfinished = sent.saturating_sub(errors + measured as u64);
    let logs = run.log_summary();
    let mut json = json!({
        "mode": "latency",
        "engine": p.engine.name(),
        "target_rate": p.rate,
        "secs": p.secs,
        "workers": p.workers,
        "concurrency": p.worker_concurrency,
        "payload_bytes": crate::rest::PAYLOAD.len(),
        "sent": sent,
        "measured": measured,
        "errors": errors,
        "error_samples": error_samples,
        // Created, but not seen to succeed within 30 s of the last send.
        "unfinished": unfinished,
        "achieved_send_rate": whole(achieved),
        // Jobs seen to succeed, per second from the first send to the last success.
        "completed_rate": whole(completed_rate),
        "p50_ms": round2(pct.p50),
        "p90_ms": round2(pct.p90),
        "p99_ms": round2(pct.p99),
        "max_ms": round2(pct.max),
        // The create call alone: request sent → 201 received.
        "create_p50_ms": answer.map(|a| round2(a.p50)),
        "create_p99_ms": answer.map(|a| round2(a.p99)),
        "cpu_pct": cpu,
        "bench_build": crate::BUILD,
    });
    logs.add_to(&mut json);
    let title = format!(
        "latency, {}: single creates offered at {}/s for {} s, {} × concurrency {}",
        p.engine.name(),
        p.rate,
        p.secs,
        if p.engine == Engine::Embedded {
            "in-process workers".to_owned()
        } else {
            format!("{} worker process(es)", p.workers)
        },
        p.worker_concurrency
    );
    Ok(Report::new(title, json)
        .row("sent", format!("{sent} ({} achieved)", per_sec(achieved)))
        .row(
            "seen succeeded",
            format!("{measured} ({} completed)", per_sec(completed_rate)),
        )
        .row("errors / unfinished", format!("{errors} / {unfinished}"))
        .row(
            "create call → succeeded frame",
            format!(
                "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                pct.p50, pct.p90, pct.p99, pct.max
            ),
        )
        .row(
            "create call alone (→ 201)",
            match answer {
                Some(a) => format!("p50 {:.1} ms, p99 {:.1} ms", a.p50, a.p99),
                None => "no answer".to_owned(),
            },
        )
        .row("log lines WARN / ERROR", logs.row()))
}

/// Creates one job and waits for its success: the workers are up and the
/// path is warm before anything is timed.
async fn warm_up(run: &mut Run, api: &Api, watch: &mut StatusWatch) -> anyhow::Result<()> {
    let id = api
        .create_one(job_body())
        .await
        .context("the warm-up job")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            next = watch.next() => {
                if next?.0 == id {
                    return Ok(());
                }
            }
            _ = tick.tick() => {
                run.check_children()?;
                if Instant::now() > deadline {
                    bail!("the warm-up job did not succeed within 60 s");
                }
            }
        }
    }
}

/// Sends `total` creates, each in a task of its own, scheduled by elapsed
/// time: about every millisecond, every create that is due goes. Returns how
/// many were sent and how long the sending took.
pub(crate) async fn send_at_rate(
    api: Api,
    rate: u64,
    total: u64,
    started: Instant,
    created: mpsc::UnboundedSender<Created>,
) -> (u64, Duration) {
    let body = job_body();
    let mut sent = 0;
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            sent += 1;
            let (api, body, created) = (api.clone(), body.clone(), created.clone());
            tokio::spawn(async move {
                let start = Instant::now();
                let outcome = api
                    .create_one(body)
                    .await
                    .map(|id| (id, start, start.elapsed()))
                    .map_err(|e| format!("{e:#}"));
                // The receiver lives until every sent job is accounted for or the run ends.
                let _ = created.send(outcome);
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (sent, started.elapsed())
}
