//! `fanout`: one `jobwire-api`, many WebSocket clients over many tenants,
//! and synthetic updates PUBLISHed straight to its Redis channel at a fixed
//! rate. Measures the frames delivered per second and the time from PUBLISH
//! to frame received.
//!
//! The messages look like job updates but carry no `cursor`, so the API's gap
//! tracker ignores them; the API forwards their text unchanged to every
//! client of the tenant. Each carries `benchSentUs`, microseconds since an
//! instant only this process knows, read back by the receiving client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::procfs::{CpuMeter, rss_kb};
use crate::procs::{Engine, Run, ServerSettings, ensure_open_files};
use crate::report::{Report, per_sec};
use crate::stats::{Percentiles, round2, whole};
use crate::ws_client::{self, Socket, describe_end};

/// The close code of a client the API dropped as too slow.
const SLOW_CONSUMER: &str = "code 4008";

/// Once publishing is over, how long deliveries may stall before the count is final.
const STALL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// WebSocket clients.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Tenants the clients are spread over evenly (client i belongs to tenant i mod T).
    #[arg(long, default_value_t = 100)]
    pub tenants: usize,
    /// Updates published per second, round-robin over the tenants.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// For how many seconds.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// `JOBWIRE_WS_QUEUE` of the API (updates queued per client before it is kicked).
    #[arg(long, default_value_t = 1024)]
    pub ws_queue: usize,
    /// WebSocket handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
}

/// The one field of a frame a client reads.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "benchSentUs")]
    bench_sent_us: Option<u64>,
}

/// What one client saw.
struct ClientOutcome {
    /// PUBLISH → received, in microseconds.
    latencies_us: Vec<u32>,
    /// Why the connection ended before the bench stopped it.
    ended: Option<String>,
}

/// Counters all clients share.
struct Shared {
    epoch: Instant,
    delivered: AtomicU64,
    last_received_us: AtomicU64,
    stop: CancellationToken,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

pub async fn measure(run: &mut Run, p: &Params) -> anyhow::Result<Report> {
    ensure!(
        run.engine == Engine::Shared,
        "fanout publishes to Redis: shared engine only"
    );
    ensure!(
        p.clients >= 1 && p.tenants >= 1,
        "--clients and --tenants must be at least 1"
    );
    ensure!(
        p.rate >= 1 && p.secs >= 1,
        "--rate and --secs must be at least 1"
    );
    // This process and the API (which inherits the limit) each hold one socket per client.
    ensure_open_files(p.clients as u64 + 1024)?;
    let server = run
        .start_server(&ServerSettings {
            ws_queue: p.ws_queue,
            max_batch: 1000,
            concurrency: 1,
        })
        .await?;
    let (redis_url, channel) = run.update_channel()?;
    let tenants: Vec<String> = (0..p.tenants).map(|i| format!("fan-{i:04}")).collect();
    let tokens = tenants
        .iter()
        .map(|t| run.token(t))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let connecting = Instant::now();
    let sockets =
        ws_client::connect_many(&server.addr, &tokens, p.clients, p.connect_concurrency).await?;
    let connect_secs = connecting.elapsed().as_secs_f64();
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        delivered: AtomicU64::new(0),
        last_received_us: AtomicU64::new(0),
        stop: CancellationToken::new(),
    });
    let readers: Vec<JoinHandle<ClientOutcome>> = sockets
        .into_iter()
        .map(|socket| tokio::spawn(read_frames(socket, shared.clone())))
        .collect();
    // Clients per tenant, as connect_many spread them.
    let per_tenant: Vec<u64> = (0..p.tenants)
        .map(|t| (p.clients / p.tenants + usize::from(t < p.clients % p.tenants)) as u64)
        .collect();

    let redis = redis::Client::open(redis_url.as_str())?;
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis to publish")?;
    let cpu = CpuMeter::start(&run.processes());
    let total = p.rate * p.secs;
    let publish_started_us = shared.now_us();
    let started = Instant::now();
    let (mut published, mut expected, mut min_receivers) = (0u64, 0u64, i64::MAX);
    while published < total {
        let due = ((started.elapsed().as_secs_f64() * p.rate as f64) as u64).min(total);
        if due > published {
            let mut pipe = redis::pipe();
            let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let sent_us = shared.now_us();
            for seq in published..due {
                let tenant = (seq % p.tenants as u64) as usize;
                expected += per_tenant[tenant];
                let message = json!({
                    "tenantId": tenants[tenant],
                    "jobId": uuid::Uuid::new_v4().to_string(),
                    "type": "noop",
                    "status": "queued",
                    "version": 1,
                    "attempt": 0,
                    "error": null,
                    "at": at,
                    "benchSentUs": sent_us,
                });
                pipe.cmd("PUBLISH").arg(&channel).arg(message.to_string());
            }
            let receivers: Vec<i64> = pipe.query_async(&mut conn).await.context("PUBLISH")?;
            min_receivers = receivers.into_iter().fold(min_receivers, i64::min);
            published = due;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let publish_took = started.elapsed();

    // Wait for the deliveries to finish, or to stall.
    let (mut seen, mut moved_at) = (0, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let delivered = shared.delivered.load(Ordering::Relaxed);
        if delivered >= expected || moved_at.elapsed() > STALL {
            break;
        }
        if delivered != seen {
            (seen, moved_at) = (delivered, Instant::now());
        }
        run.check_children()?;
    }
    let cpu = cpu.percent(&run.processes());
    let api_rss_kb = rss_kb(server.pid)?;
    shared.stop.cancel();

    let (mut latencies, mut kicked, mut closed, mut end_samples) = (Vec::new(), 0, 0, Vec::new());
    for reader in readers {
        let outcome = reader.await.context("a client task failed")?;
        latencies.extend(outcome.latencies_us.iter().map(|&us| f64::from(us) / 1e3));
        if let Some(why) = outcome.ended {
            if why.contains(SLOW_CONSUMER) {
                kicked += 1;
            } else {
                closed += 1;
            }
            if end_samples.len() < 3 {
                end_samples.push(why);
            }
        }
    }
    let delivered = latencies.len() as u64;
    let last_us = shared.last_received_us.load(Ordering::Relaxed);
    let delivery_secs = (last_us.saturating_sub(publish_started_us) as f64 / 1e6).max(1e-6);
    let frames_per_s = delivered as f64 / delivery_secs;
    let pct = Percentiles::of(latencies);
    let ms = |f: fn(&Percentiles) -> f64| pct.as_ref().map(|p| round2(f(p)));
    let logs = run.log_summary();
    let mut json = json!({
        "mode": "fanout",
        "engine": "shared",
        "clients": p.clients,
        "tenants": p.tenants,
        "target_rate": p.rate,
        "secs": p.secs,
        "ws_queue": p.ws_queue,
        "connect_secs": round2(connect_secs),
        "published": published,
        "achieved_publish_rate": whole(published as f64 / publish_took.as_secs_f64()),
        "publish_receivers_min": min_receivers,
        "expected_frames": expected,
        "delivered_frames": delivered,
        // From the first PUBLISH to the last frame received.
        "delivered_frames_per_s": whole(frames_per_s),
        "delivery_secs": round2(delivery_secs),
        "p50_ms": ms(|p| p.p50),
        "p90_ms": ms(|p| p.p90),
        "p99_ms": ms(|p| p.p99),
        "max_ms": ms(|p| p.max),
        "clients_kicked": kicked,
        "clients_closed": closed,
        "client_end_samples": end_samples,
        "api_rss_kb": api_rss_kb,
        "cpu_pct": cpu,
        "bench_build": crate::BUILD,
    });
    logs.add_to(&mut json);
    let title = format!(
        "fanout: {} clients over {} tenants, {}/s updates PUBLISHed for {} s",
        p.clients, p.tenants, p.rate, p.secs
    );
    let latency = match &pct {
        Some(p) => format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            p.p50, p.p90, p.p99, p.max
        ),
        None => "no frame delivered".to_owned(),
    };
    Ok(Report::new(title, json)
        .row("clients connected in", format!("{connect_secs:.2} s"))
        .row(
            "frames delivered / expected",
            format!("{delivered} / {expected}"),
        )
        .row("delivered", per_sec(frames_per_s))
        .row("PUBLISH → frame received", latency)
        .row(
            "clients kicked (4008) / closed",
            format!("{kicked} / {closed}"),
        )
        .row("log lines WARN / ERROR", logs.row()))
}

/// Reads one client's frames until the bench stops or the connection ends.
async fn read_frames(mut socket: Socket, shared: Arc<Shared>) -> ClientOutcome {
    let mut latencies_us = Vec::new();
    let ended = loop {
        let message = tokio::select! {
            _ = shared.stop.cancelled() => break None,
            message = socket.next() => message,
        };
        let text = match &message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break Some(describe_end(message)),
            Some(Ok(_)) => continue,
        };
        let now = shared.now_us();
        if let Ok(Probe {
            bench_sent_us: Some(sent),
        }) = serde_json::from_str(text.as_str())
        {
            latencies_us.push(u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX));
            shared.delivered.fetch_add(1, Ordering::Relaxed);
            shared.last_received_us.fetch_max(now, Ordering::Relaxed);
        }
    };
    ClientOutcome {
        latencies_us,
        ended,
    }
}
