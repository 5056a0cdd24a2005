//! `soak`: steady mixed load for many minutes against `jobwire-api` and
//! `jobwire-worker` on Postgres and Redis, with WebSocket clients listening,
//! sampling every resource that grows when something leaks or never gets
//! deleted: the processes' memory and open files, Postgres connections,
//! Redis memory and the rows of `jobs`. It writes the samples as CSV and a
//! PNG plot, and says which curves stayed flat.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures_util::StreamExt;
use plotters::prelude::*;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::procfs::rss_kb;
use crate::procs::{Run, ServerSettings, ensure_open_files};
use crate::report::Report;
use crate::rest::Api;
use crate::stats::{Percentiles, round2};
use crate::ws_client;

#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// Creates offered per second (open loop).
    #[arg(long, default_value_t = 500)]
    pub rate: u64,
    /// How long the load runs (fractions too: `0.25` for a smoke run).
    #[arg(long, default_value_t = 20.0)]
    pub minutes: f64,
    /// WebSocket clients listening throughout, spread over the tenants.
    #[arg(long, default_value_t = 200)]
    pub ws_clients: usize,
    /// Tenants the jobs and clients are spread over.
    #[arg(long, default_value_t = 20)]
    pub tenants: usize,
    /// Retention of finished jobs (`JOBWIRE_RETAIN_SUCCEEDED`, `…_FAILED`, `…_CANCELLED`).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
    /// Jobs the worker runs at once (`JOBWIRE_WORKER_CONCURRENCY`).
    #[arg(long, default_value_t = 50)]
    pub worker_concurrency: usize,
    /// Where to write `<out>.csv` and `<out>.png`.
    #[arg(long, default_value = "soak")]
    pub out: PathBuf,
    /// A TrueType font for the plot's text.
    #[arg(
        long,
        env = "BENCH_FONT",
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    pub font: PathBuf,
}

/// Creates in flight at most: beyond it the API is not keeping up, and the
/// run reports the creates it could not send instead of piling up sockets.
const MAX_IN_FLIGHT: usize = 2000;

/// One sample of everything watched.
#[derive(Debug, Clone, Default)]
struct Sample {
    minutes: f64,
    created: u64,
    create_errors: u64,
    skipped: u64,
    create_p99_ms: f64,
    frames: u64,
    ws_reconnects: u64,
    api_rss_mb: f64,
    worker_rss_mb: f64,
    api_fds: u64,
    worker_fds: u64,
    pg_connections: i64,
    redis_mb: f64,
    jobs_rows: i64,
    jobs_mb: f64,
}

impl Sample {
    const HEADER: &'static str = "minutes,created,create_errors,skipped,create_p99_ms,ws_frames,ws_reconnects,api_rss_mb,worker_rss_mb,api_open_files,worker_open_files,pg_connections,redis_used_mb,jobs_rows,jobs_table_mb";

    fn csv(&self) -> String {
        format!(
            "{:.2},{},{},{},{:.2},{},{},{:.1},{:.1},{},{},{},{:.2},{},{:.1}",
            self.minutes,
            self.created,
            self.create_errors,
            self.skipped,
            self.create_p99_ms,
            self.frames,
            self.ws_reconnects,
            self.api_rss_mb,
            self.worker_rss_mb,
            self.api_fds,
            self.worker_fds,
            self.pg_connections,
            self.redis_mb,
            self.jobs_rows,
            self.jobs_mb
        )
    }
}

/// The curves that must stay flat, each read from a sample.
type Curve = (&'static str, fn(&Sample) -> f64);

const CURVES: [Curve; 8] = [
    ("API RSS (MB)", |s| s.api_rss_mb),
    ("worker RSS (MB)", |s| s.worker_rss_mb),
    ("API open files", |s| s.api_fds as f64),
    ("worker open files", |s| s.worker_fds as f64),
    ("Postgres connections", |s| s.pg_connections as f64),
    ("Redis used memory (MB)", |s| s.redis_mb),
    ("rows in jobs", |s| s.jobs_rows as f64),
    ("jobs table with indexes (MB)", |s| s.jobs_mb),
];

/// Counters the load and the clients share with the sampler.
#[derive(Default)]
struct Counters {
    created: AtomicU64,
    create_errors: AtomicU64,
    skipped: AtomicU64,
    frames: AtomicU64,
    ws_reconnects: AtomicU64,
    /// Create latencies (ms) since the last sample.
    latencies: Mutex<Vec<f64>>,
}

pub async fn measure(run: &mut Run, p: &Params) -> anyhow::Result<Report> {
    ensure!(
        p.rate >= 1 && p.tenants >= 1 && p.sample_secs >= 1,
        "--rate, --tenants and --sample-secs must be at least 1"
    );
    ensure!(
        p.minutes > 0.0 && p.minutes <= 7.0 * 24.0 * 60.0,
        "--minutes must be above 0 and at most a week"
    );
    let font = load_font(&p.font)?;
    let _ = ensure_open_files((p.ws_clients as u64 + MAX_IN_FLIGHT as u64) * 2 + 1024);
    let retention = humantime::format_duration(p.retention).to_string();
    for key in [
        "JOBWIRE_RETAIN_SUCCEEDED",
        "JOBWIRE_RETAIN_FAILED",
        "JOBWIRE_RETAIN_CANCELLED",
    ] {
        run.set_env(key, &retention);
    }
    let server = run
        .start_server(&ServerSettings {
            ws_queue: 1024,
            max_batch: 1000,
            concurrency: p.worker_concurrency,
        })
        .await?;
    run.start_workers(1, p.worker_concurrency)?;
    let worker_pid = run
        .processes()
        .iter()
        .find(|(name, _)| name.starts_with("jobwire-worker"))
        .map(|(_, pid)| *pid)
        .context("the worker process")?;
    let database_url = run.store_url();
    let (redis_url, _) = run.update_channel()?;

    let tokens = (0..p.tenants)
        .map(|i| run.token(&format!("soak-{i}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let apis = tokens
        .iter()
        .map(|token| Api::new(&server.addr, token.clone()).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();

    let sockets = ws_client::connect_many(&server.addr, &tokens, p.ws_clients, 50).await?;
    for (i, socket) in sockets.into_iter().enumerate() {
        let listener = Listener {
            addr: server.addr.clone(),
            token: tokens[i % tokens.len()].clone(),
            counters: counters.clone(),
            stop: stop.clone(),
        };
        tasks.spawn(listener.run(socket));
    }
    tasks.spawn(offer_load(apis, p.rate, counters.clone(), stop.clone()));

    let mut pg = sqlx::PgConnection::connect(&database_url)
        .await
        .context("connecting to the run's database to sample it")?;
    let mut redis = redis::Client::open(redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis to sample it")?;
    // Retention deletes rows; autovacuum reclaims them. A server with it off
    // (this project's CI machine turns it off) would show a table that grows
    // for want of vacuum, not for jobwire: the run does its work instead.
    let autovacuum: String = sqlx::query_scalar("show autovacuum")
        .fetch_one(&mut pg)
        .await?;
    let vacuum_by_hand = autovacuum == "off";
    if vacuum_by_hand {
        eprintln!("autovacuum is off on this server: the run vacuums `jobs` every minute itself");
    }
    let started = Instant::now();
    let mut vacuumed = Instant::now();
    let length = Duration::from_secs_f64(p.minutes * 60.0);
    let mut tick = tokio::time::interval(Duration::from_secs(p.sample_secs));
    let mut samples = Vec::new();
    eprintln!("{}", Sample::HEADER);
    loop {
        tick.tick().await;
        run.check_children()?;
        if vacuum_by_hand && vacuumed.elapsed() >= Duration::from_secs(60) {
            sqlx::query("vacuum (analyze) jobs")
                .execute(&mut pg)
                .await
                .context("vacuum of jobs")?;
            vacuumed = Instant::now();
        }
        let latencies = std::mem::take(&mut *counters.latencies.lock().await);
        let sample = Sample {
            minutes: started.elapsed().as_secs_f64() / 60.0,
            created: counters.created.load(Ordering::Relaxed),
            create_errors: counters.create_errors.load(Ordering::Relaxed),
            skipped: counters.skipped.load(Ordering::Relaxed),
            create_p99_ms: Percentiles::of(latencies).map_or(0.0, |p| round2(p.p99)),
            frames: counters.frames.load(Ordering::Relaxed),
            ws_reconnects: counters.ws_reconnects.load(Ordering::Relaxed),
            api_rss_mb: rss_kb(server.pid)? as f64 / 1024.0,
            worker_rss_mb: rss_kb(worker_pid)? as f64 / 1024.0,
            api_fds: open_files(server.pid)?,
            worker_fds: open_files(worker_pid)?,
            // This sampler's own connection does not count.
            pg_connections: sqlx::query_scalar::<_, i64>(
                "select count(*) from pg_stat_activity where datname = current_database()",
            )
            .fetch_one(&mut pg)
            .await?
                - 1,
            redis_mb: redis_used_bytes(&mut redis).await? as f64 / (1024.0 * 1024.0),
            jobs_rows: sqlx::query_scalar("select count(*) from jobs")
                .fetch_one(&mut pg)
                .await?,
            jobs_mb: sqlx::query_scalar::<_, i64>("select pg_total_relation_size('jobs')")
                .fetch_one(&mut pg)
                .await? as f64
                / (1024.0 * 1024.0),
        };
        eprintln!("{}", sample.csv());
        samples.push(sample);
        if started.elapsed() >= length {
            break;
        }
    }
    stop.cancel();
    while tasks.join_next().await.is_some() {}

    let csv_path = p.out.with_extension("csv");
    let png_path = p.out.with_extension("png");
    let mut csv = String::from(Sample::HEADER);
    for sample in &samples {
        csv.push('\n');
        csv.push_str(&sample.csv());
    }
    csv.push('\n');
    std::fs::write(&csv_path, csv).with_context(|| format!("writing {}", csv_path.display()))?;
    plot(&samples, p, font, &png_path)?;

    let warm_up = p.retention.as_secs_f64() / 60.0 + 1.0;
    let verdicts: Vec<(&str, Flatness)> = CURVES
        .iter()
        .map(|(name, read)| (*name, flatness(&samples, warm_up, *read)))
        .collect();
    let last = samples.last().cloned().unwrap_or_default();
    let mut json = json!({
        "mode": "soak",
        "rate": p.rate,
        "minutes": p.minutes,
        "ws_clients": p.ws_clients,
        "tenants": p.tenants,
        "retention_s": p.retention.as_secs(),
        "vacuum_by_hand": vacuum_by_hand,
        "created": last.created,
        "create_errors": last.create_errors,
        "skipped": last.skipped,
        "ws_frames": last.frames,
        "ws_reconnects": last.ws_reconnects,
        "csv": csv_path.display().to_string(),
        "png": png_path.display().to_string(),
    });
    let flat: serde_json::Map<String, Value> = verdicts
        .iter()
        .map(|(name, verdict)| (name.to_string(), verdict.json()))
        .collect();
    json["curves"] = Value::Object(flat);
    let mut report = Report::new(
        format!(
            "soak, shared: {}/s for {} min, {} WebSocket clients over {} tenants, retention {retention}",
            p.rate, p.minutes, p.ws_clients, p.tenants
        ),
        json,
    )
    .row(
        "jobs created (errors, not sent)",
        format!("{} ({}, {})", last.created, last.create_errors, last.skipped),
    )
    .row(
        "WebSocket frames (reconnects)",
        format!("{} ({})", last.frames, last.ws_reconnects),
    )
    .row(
        "samples",
        format!(
            "{} → {}, {}",
            samples.len(),
            csv_path.display(),
            png_path.display()
        ),
    );
    for (name, verdict) in &verdicts {
        report = report.row(name, verdict.describe());
    }
    Ok(report)
}

/// Listens on one WebSocket until the run stops, counting frames; a client
/// the server closes (a kick, a restart) connects again, and is counted.
struct Listener {
    addr: String,
    token: String,
    counters: Arc<Counters>,
    stop: CancellationToken,
}

impl Listener {
    async fn run(self, mut socket: ws_client::Socket) {
        loop {
            loop {
                let frame = tokio::select! {
                    _ = self.stop.cancelled() => return,
                    frame = socket.next() => frame,
                };
                match frame {
                    Some(Ok(_)) => {
                        self.counters.frames.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Err(_)) | None => break,
                }
            }
            self.counters.ws_reconnects.fetch_add(1, Ordering::Relaxed);
            socket = loop {
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    connected = ws_client::connect(&self.addr, &self.token) => {
                        if let Ok(socket) = connected {
                            break socket;
                        }
                    }
                }
            };
        }
    }
}

/// Offers `rate` creates a second, round the tenants, until `stop`: of every
/// 100 jobs, 85 `noop`, 8 `sleep` 20 ms, 5 `fail` (retried twice, then
/// failed), and 2 `sleep` 2 s cancelled 200 ms after their creation.
async fn offer_load(
    apis: Vec<Arc<Api>>,
    rate: u64,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    for n in 0u64.. {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let api = apis[(n % apis.len() as u64) as usize].clone();
        let counters = counters.clone();
        let (body, cancel) = match n % 100 {
            0..85 => (json!({"type": "noop"}), false),
            85..93 => (json!({"type": "sleep", "payload": {"ms": 20}}), false),
            93..98 => (
                json!({"type": "fail", "payload": {"message": "soak"}, "maxAttempts": 3}),
                false,
            ),
            _ => (json!({"type": "sleep", "payload": {"ms": 2000}}), true),
        };
        tokio::spawn(async move {
            let _permit = permit;
            let sent = Instant::now();
            match api.create_one(body.to_string()).await {
                Ok(id) => {
                    counters.created.fetch_add(1, Ordering::Relaxed);
                    let ms = sent.elapsed().as_secs_f64() * 1000.0;
                    counters.latencies.lock().await.push(ms);
                    if cancel {
                        // Load shaping, not synchronisation: the cancel lands while the job runs or waits.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if api.cancel(&id).await.is_err() {
                            counters.create_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Err(_) => {
                    counters.create_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

fn open_files(pid: u32) -> anyhow::Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("reading /proc/{pid}/fd"))?
        .count() as u64)
}

async fn redis_used_bytes(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

/// How a curve moved after the warm-up: the mean of its last third against
/// the mean of its middle third.
struct Flatness {
    middle: f64,
    last: f64,
    /// `None`: fewer than 3 samples after the warm-up, too short to tell.
    flat: Option<bool>,
}

impl Flatness {
    fn json(&self) -> Value {
        json!({"middle_mean": round2(self.middle), "last_mean": round2(self.last), "flat": self.flat})
    }

    fn describe(&self) -> String {
        let verdict = match self.flat {
            None => return "too short to tell (3 samples after the warm-up needed)".to_owned(),
            Some(true) => "flat",
            Some(false) => "GROWING",
        };
        format!(
            "{verdict} (middle third {:.1}, last third {:.1})",
            self.middle, self.last
        )
    }
}

/// Flat: the last third's mean is within 10% (or 2 units, for small counts)
/// of the middle third's, after the first `warm_up` minutes (retention needs
/// its own length to start deleting).
fn flatness(samples: &[Sample], warm_up: f64, read: fn(&Sample) -> f64) -> Flatness {
    let steady: Vec<f64> = samples
        .iter()
        .filter(|s| s.minutes >= warm_up)
        .map(read)
        .collect();
    let third = steady.len() / 3;
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
    let middle = mean(&steady[third..2 * third]);
    let last = mean(&steady[2 * third..]);
    let flat = (steady.len() >= 3).then_some(last <= middle * 1.10 || last - middle <= 2.0);
    Flatness { middle, last, flat }
}

/// The font's bytes, registered with plotters for the whole run (leaked: it
/// is read once and used until the process ends).
fn load_font(path: &Path) -> anyhow::Result<&'static str> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "the soak plot needs a TrueType font: {} is missing (install fonts-dejavu-core, or pass --font)",
            path.display()
        )
    })?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a TrueType font", path.display()))?;
    Ok("sans-serif")
}

/// One panel per curve, minutes on the x axis.
fn plot(samples: &[Sample], p: &Params, font: &str, path: &Path) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (1400, 1200)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(50);
    title.draw_text(
        &format!(
            "jobwire soak: {}/s for {} min, {} WebSocket clients, retention {}",
            p.rate,
            p.minutes,
            p.ws_clients,
            humantime::format_duration(p.retention)
        ),
        &(font, 24).into_font().color(&BLACK),
        (20, 15),
    )?;
    let panels = body.split_evenly((5, 2));
    let end = samples.last().map_or(1.0, |s| s.minutes).max(1.0);
    let mut curves: Vec<Curve> = CURVES.to_vec();
    curves.push(("create p99 (ms)", |s| s.create_p99_ms));
    for (panel, (name, read)) in panels.iter().zip(curves) {
        let top = samples.iter().map(read).fold(0.0_f64, f64::max).max(1.0) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(name, (font, 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("minutes")
            .label_style((font, 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart.draw_series(LineSeries::new(
            samples.iter().map(|s| (s.minutes, read(s))),
            BLUE.stroke_width(2),
        ))?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
