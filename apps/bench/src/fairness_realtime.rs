//! `fairness --realtime`: fairness in the realtime path. Tenant A's update
//! storm (many updates per second, many clients, some of which never read,
//! padded payloads) is PUBLISHed straight to the API's Redis channel while
//! tenant B's updates, a few per second, are timed from PUBLISH to frame
//! received on B's clients: the figure #5's fan-out goal (p99 ≤ 50 ms) holds
//! B to while A storms. `--storm-rate 0` gives the same figure without the storm.
//!
//! The messages look like job updates without a `cursor` (the gap tracker
//! ignores them), as in `fanout`; each of B's carries `benchSentUs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::procfs::CpuMeter;
use crate::procs::{Engine, Run, ServerSettings, ensure_open_files};
use crate::report::{Report, per_sec};
use crate::stats::{Percentiles, round2, whole};
use crate::ws_client::{self, Socket, describe_end};

/// How long B's last frames may take after publishing stops.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, clap::Args)]
pub struct StormParams {
    /// With `--realtime`: A's updates PUBLISHed per second.
    #[arg(long, default_value_t = 5_000)]
    pub storm_rate: u64,
    /// With `--realtime`: A's WebSocket clients that read every frame.
    #[arg(long, default_value_t = 20)]
    pub storm_clients: usize,
    /// With `--realtime`: A's WebSocket clients that never read (the API drops them as slow).
    #[arg(long, default_value_t = 20)]
    pub storm_stalled: usize,
    /// With `--realtime`: bytes of padding in each of A's updates.
    #[arg(long, default_value_t = 1024)]
    pub storm_bytes: usize,
    /// With `--realtime`: B's WebSocket clients.
    #[arg(long, default_value_t = 10)]
    pub quiet_clients: usize,
    /// With `--realtime`: B's updates PUBLISHed per second, each timed.
    #[arg(long, default_value_t = 100)]
    pub quiet_rate: u64,
    /// With `--realtime`: for how many seconds.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
}

/// The one field of a frame B's clients read.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "benchSentUs")]
    bench_sent_us: Option<u64>,
}

struct Clock {
    epoch: Instant,
    stop: CancellationToken,
    /// Frames A's reading clients received.
    storm_frames: AtomicU64,
}

impl Clock {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// What one client saw: B's latencies (ms), and why it ended early, if it did.
struct Seen {
    latencies_ms: Vec<f64>,
    ended: Option<String>,
}

pub async fn measure(run: &mut Run, p: &StormParams) -> anyhow::Result<Report> {
    ensure!(
        run.engine == Engine::Shared,
        "--realtime publishes to Redis: shared engine only"
    );
    ensure!(
        p.quiet_clients >= 1 && p.quiet_rate >= 1 && p.secs >= 1,
        "--quiet-clients, --quiet-rate and --secs must be at least 1"
    );
    let clients = p.storm_clients + p.storm_stalled + p.quiet_clients;
    ensure_open_files(clients as u64 + 1024)?;
    let server = run
        .start_server(&ServerSettings {
            ws_queue: 1024,
            max_batch: 1000,
            concurrency: 1,
        })
        .await?;
    let (redis_url, channel) = run.update_channel()?;
    let storm_token = run.token("storm")?;
    let quiet_token = run.token("quiet")?;

    let connecting = Instant::now();
    let storm = ws_client::connect_many(
        &server.addr,
        std::slice::from_ref(&storm_token),
        p.storm_clients,
        200,
    )
    .await?;
    // Held, never read: their queues fill and the API drops them.
    let stalled = ws_client::connect_many(
        &server.addr,
        std::slice::from_ref(&storm_token),
        p.storm_stalled,
        200,
    )
    .await?;
    let connect_secs = connecting.elapsed().as_secs_f64();

    let clock = Arc::new(Clock {
        epoch: Instant::now(),
        stop: CancellationToken::new(),
        storm_frames: AtomicU64::new(0),
    });
    let storm_readers: Vec<_> = storm
        .into_iter()
        .map(|socket| tokio::spawn(read(socket, Arc::clone(&clock), None)))
        .collect();

    // B's side (its clients and its publisher) runs on a thread and runtime
    // of its own, as B's browsers would be elsewhere: its figure is then the
    // API's doing, not this process's queue of A's readers.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel();
    let quiet_side = {
        let (addr, token, redis_url, channel, p) = (
            server.addr.clone(),
            quiet_token.clone(),
            redis_url.clone(),
            channel.clone(),
            p.clone(),
        );
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("B's runtime")?
                .block_on(quiet(addr, token, redis_url, channel, p, ready_tx, go_rx))
        })
    };
    if ready_rx.await.is_err() {
        // B's side failed before it was ready: its error says why.
        let failed = tokio::task::spawn_blocking(move || quiet_side.join()).await?;
        return Err(match failed {
            Ok(Err(e)) => e,
            _ => anyhow::anyhow!("B's side ended before it was ready"),
        });
    }

    let redis = redis::Client::open(redis_url.as_str())?;
    let cpu = CpuMeter::start(&run.processes());
    let started = Instant::now();
    let storm_publisher = {
        let mut conn = redis
            .get_multiplexed_async_connection()
            .await
            .context("connecting to Redis to publish")?;
        let (channel, rate, secs) = (channel.clone(), p.storm_rate, p.secs);
        let padding = "x".repeat(p.storm_bytes);
        tokio::spawn(async move {
            let total = rate * secs;
            let mut published = 0u64;
            while published < total {
                let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
                if due > published {
                    let mut pipe = redis::pipe();
                    for _ in published..due {
                        pipe.cmd("PUBLISH")
                            .arg(&channel)
                            .arg(update("storm", None, &padding));
                    }
                    pipe.query_async::<Vec<i64>>(&mut conn)
                        .await
                        .context("PUBLISH A's storm")?;
                    published = due;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            anyhow::Ok(published)
        })
    };
    let _ = go_tx.send(());
    let storm_published = storm_publisher.await.context("A's publisher")??;
    let publish_secs = started.elapsed().as_secs_f64();
    let quiet_seen = tokio::task::spawn_blocking(move || quiet_side.join())
        .await?
        .map_err(|_| anyhow::anyhow!("B's side panicked"))??;
    run.check_children()?;
    let cpu = cpu.percent(&run.processes());
    clock.stop.cancel();
    drop(stalled);

    let (latencies, quiet_ended, quiet_published) = quiet_seen;
    let expected = quiet_published * p.quiet_clients as u64;
    let (mut kicked, mut closed) = (0, 0);
    for reader in storm_readers {
        match reader.await.context("a client of A failed")?.ended {
            Some(why) if why.contains("code 4008") => kicked += 1,
            Some(_) => closed += 1,
            None => {}
        }
    }
    let storm_frames = clock.storm_frames.load(Ordering::Relaxed);
    let delivered = latencies.len() as u64;
    let pct = Percentiles::of(latencies).context("B received no update")?;
    let logs = run.log_summary();
    let mut json = json!({
        "mode": "fairness",
        "realtime": true,
        "engine": "shared",
        "secs": p.secs,
        "storm_rate": p.storm_rate,
        "storm_published_per_s": whole(storm_published as f64 / publish_secs),
        "storm_clients": p.storm_clients,
        "storm_stalled": p.storm_stalled,
        "storm_bytes": p.storm_bytes,
        "storm_frames_per_s": whole(storm_frames as f64 / publish_secs),
        "storm_readers_kicked": kicked,
        "storm_readers_closed": closed,
        "quiet_clients": p.quiet_clients,
        "quiet_rate": p.quiet_rate,
        "quiet_expected_frames": expected,
        "quiet_delivered_frames": delivered,
        "quiet_clients_ended": quiet_ended,
        "b_publish_to_frame_p50_ms": round2(pct.p50),
        "b_publish_to_frame_p99_ms": round2(pct.p99),
        "b_publish_to_frame_max_ms": round2(pct.max),
        "connect_secs": round2(connect_secs),
        "cpu_pct": cpu,
        "bench_build": crate::BUILD,
    });
    logs.add_to(&mut json);
    Ok(Report::new(
        format!(
            "fairness --realtime: B's frames amid A's storm of {}/s × {} B ({} reading + {} stalled clients), {} s",
            p.storm_rate, p.storm_bytes, p.storm_clients, p.storm_stalled, p.secs
        ),
        json,
    )
    .row("A: published", per_sec(storm_published as f64 / publish_secs))
    .row("A: frames to its readers", per_sec(storm_frames as f64 / publish_secs))
    .row(
        "A: readers kicked (4008) / closed",
        format!("{kicked} / {closed}"),
    )
    .row(
        "B: frames delivered / expected",
        format!("{delivered} / {expected}"),
    )
    .row(
        "B: PUBLISH → frame received",
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct.p50, pct.p99, pct.max
        ),
    )
    .row("log lines WARN / ERROR", logs.row()))
}

fn update(tenant: &str, sent_us: Option<u64>, padding: &str) -> String {
    json!({
        "tenantId": tenant,
        "jobId": uuid::Uuid::new_v4().to_string(),
        "type": "noop",
        "status": "running",
        "version": 1,
        "attempt": 1,
        "error": null,
        "progress": {"pad": padding},
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "benchSentUs": sent_us,
    })
    .to_string()
}

/// B's side: connects B's clients, says it is ready, waits for the storm to
/// start, then publishes B's updates at their rate, each timed by every
/// client. Returns the latencies (ms), how many clients ended early, and
/// how many updates it published.
async fn quiet(
    addr: String,
    token: String,
    redis_url: String,
    channel: String,
    p: StormParams,
    ready: tokio::sync::oneshot::Sender<()>,
    go: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<(Vec<f64>, usize, u64)> {
    let total = p.quiet_rate * p.secs;
    let sockets =
        ws_client::connect_many(&addr, std::slice::from_ref(&token), p.quiet_clients, 200).await?;
    let mut conn = redis::Client::open(redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis to publish B's updates")?;
    let clock = Arc::new(Clock {
        epoch: Instant::now(),
        stop: CancellationToken::new(),
        storm_frames: AtomicU64::new(0),
    });
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|socket| tokio::spawn(read(socket, Arc::clone(&clock), Some(total))))
        .collect();
    let _ = ready.send(());
    go.await.context("the storm never started")?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / p.quiet_rate as f64));
    let mut published = 0u64;
    while published < total {
        tick.tick().await;
        redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(update("quiet", Some(clock.now_us()), ""))
            .query_async::<i64>(&mut conn)
            .await
            .context("PUBLISH B's update")?;
        published += 1;
    }
    // Each reader stops once it has every update; give the last ones a moment.
    let deadline = Instant::now() + DRAIN;
    while !readers.iter().all(|r| r.is_finished()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    clock.stop.cancel();
    let (mut latencies, mut ended) = (Vec::new(), 0);
    for reader in readers {
        let seen = reader.await.context("a client of B failed")?;
        latencies.extend(seen.latencies_ms);
        ended += usize::from(seen.ended.is_some());
    }
    Ok((latencies, ended, published))
}

/// Reads one client's frames until the bench stops or the connection ends:
/// B's are timed (`until` of them, then it stops), A's counted.
async fn read(mut socket: Socket, clock: Arc<Clock>, until: Option<u64>) -> Seen {
    let mut latencies_ms = Vec::new();
    let ended = loop {
        if until.is_some_and(|n| latencies_ms.len() as u64 >= n) {
            break None;
        }
        let message = tokio::select! {
            _ = clock.stop.cancelled() => break None,
            message = socket.next() => message,
        };
        let text = match &message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break Some(describe_end(message)),
            Some(Ok(_)) => continue,
        };
        if until.is_none() {
            clock.storm_frames.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let now = clock.now_us();
        if let Ok(Probe {
            bench_sent_us: Some(sent),
        }) = serde_json::from_str(text.as_str())
        {
            latencies_ms.push(now.saturating_sub(sent) as f64 / 1e3);
        }
    };
    Seen {
        latencies_ms,
        ended,
    }
}
