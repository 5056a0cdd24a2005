//! `retention`: single creates at a fixed rate, timed from the call to its
//! `201`, first with the sweeper idle, then while it deletes a large number of
//! expired jobs (written straight into the store, as if they had run two
//! days ago). Both phases run on the same processes over the same table:
//! the expired jobs are written before the first phase and only expire
//! (their 24 hours of retention pass) after it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::Utc;
use serde_json::json;
use sqlx::Connection;
use tokio::sync::mpsc;

use crate::latency::{Created, send_at_rate};
use crate::procs::{Engine, Run, ServerSettings};
use crate::report::Report;
use crate::rest::{Api, PAYLOAD, job_body};
use crate::stats::{Percentiles, round2};

const TENANT: &str = "bench";
/// The tenant of the expired jobs, which nothing reads.
const EXPIRED_TENANT: &str = "expired";
/// After the fill, how long the API's gap filler takes to read back the
/// places of the jobs written behind its back (10,000 per half second),
/// before the first phase starts.
const SETTLE: Duration = Duration::from_secs(6);
/// Time allowed for writing the expired jobs: this, plus [`FILL_PER_10K`]
/// per 10,000 of them (a debug build writes 100,000 in about 3 s here).
const FILL: Duration = Duration::from_secs(5);
const FILL_PER_10K: Duration = Duration::from_secs(1);
/// How long the sweeping phase may take at most.
const SWEEP_LIMIT: Duration = Duration::from_secs(120);
/// How often the expired jobs left are counted.
const WATCH: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// `shared` (jobwire-api + jobwire-worker, Postgres + Redis) or `embedded` (jobwire).
    #[arg(long, value_enum, default_value_t = Engine::Shared)]
    pub engine: Engine,
    /// Expired jobs the sweeper deletes.
    #[arg(long, default_value_t = 100_000)]
    pub expired: u64,
    /// Creates offered per second in each phase.
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
}

/// Create calls of one phase: when each started and how long its answer took.
struct Phase {
    calls: Vec<(Instant, Duration)>,
    errors: Vec<String>,
}

impl Phase {
    fn percentiles(&self, within: impl Fn(Instant) -> bool) -> Option<Percentiles> {
        Percentiles::of(
            self.calls
                .iter()
                .filter(|(start, _)| within(*start))
                .map(|(_, took)| took.as_secs_f64() * 1e3)
                .collect(),
        )
    }
}

pub async fn measure(run: &mut Run, p: &Params) -> anyhow::Result<Report> {
    ensure!(
        p.rate >= 1 && p.secs >= 1 && p.expired >= 1,
        "--rate, --secs and --expired must be at least 1"
    );
    // Retention stays as deployed (24 h for succeeded jobs); only the
    // sweeper looks more often than its 10 s, so that the sweep starts
    // within a second of the jobs' expiry.
    run.set_env("JOBWIRE_RETENTION_INTERVAL", "1s");
    let server = run
        .start_server(&ServerSettings {
            ws_queue: 1024,
            max_batch: 1000,
            concurrency: 50,
        })
        .await?;
    if p.engine == Engine::Shared {
        run.start_workers(1, 50)?;
    }
    let api = Api::new(&server.addr, run.token(TENANT)?)?;
    api.create_one(job_body())
        .await
        .context("the warm-up job")?;

    // Expired once the first phase is over.
    let fill = FILL + FILL_PER_10K * u32::try_from(p.expired / 10_000)?;
    let lead = fill + SETTLE + Duration::from_secs(p.secs);
    let expires = Instant::now() + lead;
    let finished_at = Utc::now() - chrono::Duration::hours(24) + chrono::Duration::from_std(lead)?;
    let mut store = Store::connect(&run.store_url()).await?;
    let filled = Instant::now();
    store.fill(p.expired, finished_at).await?;
    let fill_took = filled.elapsed();
    ensure!(
        fill_took < fill,
        "writing {} expired jobs took {fill_took:?}, over the {fill:?} allowed",
        p.expired
    );
    tokio::time::sleep(SETTLE).await;

    let (idle, before) = watched(run, &mut store, &api, p, false).await?;
    ensure!(
        store.expired_left().await? == p.expired && before.is_none(),
        "the sweep started before its time"
    );
    tokio::time::sleep_until(expires.into()).await;
    let (during, sweep) = watched(run, &mut store, &api, p, true).await?;
    let (start, end) = sweep.context("the sweep is watched until it ends")?;
    let sweep_took = end.saturating_duration_since(start);

    let all = |_: Instant| true;
    // Creates that started while expired jobs were being deleted (or within
    // a count of it).
    let in_sweep = |at: Instant| at >= start && at <= end;
    let baseline = idle
        .percentiles(all)
        .context("no create answered without a sweep")?;
    let swept = during
        .percentiles(in_sweep)
        .context("no create was made during the sweep: raise --secs or --expired")?;
    let phase_all = during.percentiles(all).context("no create answered")?;
    let creates_in_sweep = during.calls.iter().filter(|(at, _)| in_sweep(*at)).count();
    let errors = idle.errors.len() + during.errors.len();
    let samples: Vec<&String> = idle.errors.iter().chain(&during.errors).take(3).collect();
    let logs = run.log_summary();
    let mut json = json!({
        "mode": "retention",
        "engine": p.engine.name(),
        "expired": p.expired,
        "target_rate": p.rate,
        "secs": p.secs,
        "fill_secs": round2(fill_took.as_secs_f64()),
        // Bounds, from counts every 250 ms: the sweep took at most this long.
        "sweep_secs_at_most": round2(sweep_took.as_secs_f64()),
        "sweep_rows_per_sec_at_least": (p.expired as f64 / sweep_took.as_secs_f64()).round(),
        "idle_creates": idle.calls.len(),
        "idle_create_p50_ms": round2(baseline.p50),
        "idle_create_p99_ms": round2(baseline.p99),
        "idle_create_max_ms": round2(baseline.max),
        "sweep_creates": creates_in_sweep,
        "sweep_create_p50_ms": round2(swept.p50),
        "sweep_create_p99_ms": round2(swept.p99),
        "sweep_create_max_ms": round2(swept.max),
        "phase_create_p99_ms": round2(phase_all.p99),
        "errors": errors,
        "error_samples": samples,
        "bench_build": crate::BUILD,
    });
    logs.add_to(&mut json);
    let row = |pct: Percentiles| {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct.p50, pct.p99, pct.max
        )
    };
    let title = format!(
        "retention, {}: creates at {}/s, without a sweep and while {} expired jobs are deleted ({} build)",
        p.engine.name(),
        p.rate,
        p.expired,
        crate::BUILD
    );
    Ok(Report::new(title, json)
        .row(
            "expired jobs written",
            format!("{} in {:.1} s", p.expired, fill_took.as_secs_f64()),
        )
        .row(
            "sweep (counted every 0.25 s)",
            format!(
                "at most {:.1} s (at least {:.0} jobs/s)",
                sweep_took.as_secs_f64(),
                p.expired as f64 / sweep_took.as_secs_f64()
            ),
        )
        .row(
            "create → 201, no sweep",
            format!("{} ({} creates)", row(baseline), idle.calls.len()),
        )
        .row(
            "create → 201, sweeping",
            format!("{} ({} creates)", row(swept), creates_in_sweep),
        )
        .row("create errors", errors)
        .row("log lines WARN / ERROR", logs.row()))
}

/// One phase: creates at `--rate` for `--secs` while the expired jobs left
/// are counted every [`WATCH`] (in both phases, so that both bear the same
/// load), and the processes checked. With `sweep`, goes on until the sweep
/// is over, and returns the last moment all expired jobs were still there
/// and the first one none was: the sweep ran within that span.
async fn watched(
    run: &mut Run,
    store: &mut Store,
    api: &Api,
    p: &Params,
    sweep: bool,
) -> anyhow::Result<(Phase, Option<(Instant, Instant)>)> {
    let creating = tokio::spawn(creates_detached(
        api.clone(),
        p.rate,
        Duration::from_secs(p.secs),
    ));
    let started = Instant::now();
    let (mut untouched, mut gone) = (started, None);
    let mut tick = tokio::time::interval(WATCH);
    loop {
        tick.tick().await;
        run.check_children()?;
        let counted = Instant::now();
        match store.expired_left().await? {
            left if left == p.expired => untouched = counted,
            0 => {
                gone.get_or_insert(counted);
            }
            _ => {}
        }
        if creating.is_finished() && (!sweep || gone.is_some()) {
            break;
        }
        if started.elapsed() > SWEEP_LIMIT {
            bail!("expired jobs are still there after {SWEEP_LIMIT:?}");
        }
    }
    let calls = creating.await.context("the creating task failed")??;
    Ok((calls, gone.map(|gone| (untouched, gone))))
}

/// Creates at `rate` for `phase` (open loop, as `latency` sends them) and
/// collects every answer.
async fn creates_detached(api: Api, rate: u64, phase: Duration) -> anyhow::Result<Phase> {
    let total = rate * phase.as_secs();
    let (created_tx, mut created_rx) = mpsc::unbounded_channel::<Created>();
    let (sent, _) = send_at_rate(api, rate, total, Instant::now(), created_tx).await;
    let mut result = Phase {
        calls: Vec::with_capacity(sent as usize),
        errors: Vec::new(),
    };
    // Every create's task answers once, then drops its sender: the channel
    // ends when all have.
    while let Some(created) = created_rx.recv().await {
        match created {
            Ok((_, start, took)) => result.calls.push((start, took)),
            Err(e) => result.errors.push(e),
        }
    }
    Ok(result)
}

/// The run's store, reached directly to write and count the expired jobs.
enum Store {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Store {
    async fn connect(url: &str) -> anyhow::Result<Store> {
        Ok(if url.starts_with("sqlite:") {
            Store::Sqlite(
                sqlx::SqliteConnection::connect(url)
                    .await
                    .with_context(|| format!("opening {url}"))?,
            )
        } else {
            Store::Postgres(
                sqlx::PgConnection::connect(url)
                    .await
                    .with_context(|| format!("connecting to {url}"))?,
            )
        })
    }

    /// Writes `n` succeeded jobs of [`EXPIRED_TENANT`] that finished at
    /// `finished_at`, in one statement.
    async fn fill(&mut self, n: u64, finished_at: chrono::DateTime<Utc>) -> anyhow::Result<()> {
        let n = i64::try_from(n)?;
        match self {
            Store::Postgres(conn) => {
                sqlx::query(
                    "insert into jobs (id, tenant_id, job_type, payload, priority, status, \
                     attempt, result, created_at, started_at, finished_at, updated_at) \
                     select gen_random_uuid(), $1, 'noop', $2::jsonb, 'default', 'succeeded', \
                     1, '{}', $3, $3, $3, $3 from generate_series(1, $4)",
                )
                .bind(EXPIRED_TENANT)
                .bind(PAYLOAD)
                .bind(finished_at)
                .bind(n)
                .execute(&mut *conn)
                .await
                .context("writing the expired jobs")?;
            }
            Store::Sqlite(conn) => {
                // As jobwire writes times: fixed-width RFC 3339, microseconds.
                let at = finished_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
                sqlx::query(
                    "insert into jobs (id, tenant_id, job_type, payload, priority, status, \
                     attempt, result, created_at, started_at, finished_at, updated_at, change_seq) \
                     with recursive n(i) as (select 1 union all select i + 1 from n where i < ?4) \
                     select lower(hex(randomblob(16))), ?1, 'noop', ?2, 'default', 'succeeded', \
                     1, '{}', ?3, ?3, ?3, ?3, \
                     (select coalesce(max(change_seq), 0) from jobs) + i from n",
                )
                .bind(EXPIRED_TENANT)
                .bind(PAYLOAD)
                .bind(at)
                .bind(n)
                .execute(&mut *conn)
                .await
                .context("writing the expired jobs")?;
            }
        }
        Ok(())
    }

    /// How many of the expired jobs are still there.
    async fn expired_left(&mut self) -> anyhow::Result<u64> {
        let count: i64 = match self {
            Store::Postgres(conn) => {
                sqlx::query_scalar("select count(*) from jobs where tenant_id = $1")
                    .bind(EXPIRED_TENANT)
                    .fetch_one(&mut *conn)
                    .await
            }
            Store::Sqlite(conn) => {
                sqlx::query_scalar("select count(*) from jobs where tenant_id = ?1")
                    .bind(EXPIRED_TENANT)
                    .fetch_one(&mut *conn)
                    .await
            }
        }
        .context("counting the expired jobs left")?;
        Ok(u64::try_from(count)?)
    }
}
