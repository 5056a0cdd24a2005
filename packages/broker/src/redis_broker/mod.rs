//! Redis: lists of job IDs per priority, tenant and type (`LPUSH` in,
//! `RPOP` out, so FIFO within each; see [`Keys`] for the layout), and the `job_updates` channel carries every status
//! change as JSON, readable with `redis-cli SUBSCRIBE job_updates`.

mod consumer;
mod quota;
mod subscriber;

use std::sync::LazyLock;
use std::time::Duration;

use jobwire_core::{JobId, JobType, Priority, QueueEntry, redact_url};
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use consumer::{RedisConsumer, Selection};

use crate::{BrokerError, Keys, Outbox, QueueDepth};

/// How long a command may take before it fails: well under the default
/// 3 s lease, so that a stalled Redis fails a worker's call while the leases
/// of its running jobs still hold.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// IDs per SMISMEMBER of [`RedisBroker::missing`]: about a millisecond of
/// Redis's one thread against a million-member set.
const MISSING_CHUNK: usize = 500;

/// Frees running slots: of jobs that stopped running, or found stale by the
/// sweep. Where one was held (only capped tenants have them, so most
/// releases change nothing), a worker of every type is woken: the tenant's
/// next job may be of another type than the one that ended, and the pop
/// that passed the tenant over took the markers away. EVAL, not EVALSHA: it
/// runs inside the send's MULTI, where a missing script could not be loaded
/// and retried. ARGV: prefix, the last wake marker's index, then (tenant,
/// id) pairs.
pub(crate) const RELEASE_SLOTS: &str = r"
local freed = false
for i = 3, #ARGV, 2 do
  if redis.call('ZREM', ARGV[1] .. 'job_running:' .. ARGV[i], ARGV[i + 1]) == 1 then freed = true end
end
if freed then
  for _, t in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'job_types')) do
    local wake = ARGV[1] .. 'job_wake:' .. t
    redis.call('LPUSH', wake, '1')
    redis.call('LTRIM', wake, 0, tonumber(ARGV[2]))
  end
end
";

/// Takes every ID off a processing list (KEYS[1]) and out of the pending set
/// (KEYS[2]), atomically, and returns them.
const RELEASE: &str = r"
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
if #ids > 0 then
  redis.call('SREM', KEYS[2], unpack(ids))
  redis.call('DEL', KEYS[1])
end
return ids
";

/// Where a packed pipeline's commands (RESP arrays of bulk strings) end:
/// the bytes and number of commands up to and including the first command
/// named `name`; the whole pipeline if there is none.
fn cut_after_first(packed: &[u8], name: &[u8]) -> (usize, usize) {
    fn line(packed: &[u8], at: usize) -> Option<(usize, usize)> {
        let end = at + packed.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let number = std::str::from_utf8(packed.get(at + 1..end)?)
            .ok()?
            .parse()
            .ok()?;
        Some((number, end + 2))
    }
    let (mut at, mut commands) = (0, 0);
    while let Some((args, mut next)) = line(packed, at) {
        let mut first: Option<&[u8]> = None;
        for _ in 0..args {
            let Some((len, data)) = line(packed, next) else {
                return (packed.len(), commands + 1);
            };
            first.get_or_insert(&packed[data..(data + len).min(packed.len())]);
            next = data + len + 2;
        }
        commands += 1;
        at = next;
        if first.is_some_and(|first| first.eq_ignore_ascii_case(name)) {
            return (at, commands);
        }
    }
    (packed.len(), commands)
}

/// The shared command connection (reconnecting) plus the key names.
#[derive(Clone)]
pub struct RedisBroker {
    /// The URL with its password hidden: it is only ever shown to people.
    url: String,
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("keys", &self.keys)
            .finish()
    }
}

impl RedisBroker {
    /// Connects to Redis at `url`; every key and the channel get `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BrokerError> {
        let connect_err = |source| BrokerError::Connect {
            url: redact_url(url),
            source,
        };
        let client = redis::Client::open(url).map_err(connect_err)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(connect_err)?;
        Ok(Self {
            url: redact_url(url),
            client,
            conn,
            keys: Keys::new(prefix),
        })
    }

    /// The URL, password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Whether Redis answers (for readiness checks).
    pub(crate) async fn ping(&self) -> Result<(), BrokerError> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("PING"))
    }

    /// Most wake markers kept; past it, consumers still find IDs by polling
    /// once per block time.
    const MAX_WAKE_MARKERS: isize = 10_000;

    /// One transaction (MULTI/EXEC, so all of it or none): PUBLISH each
    /// update; per queue SADD to the pending set, LPUSH onto the queue,
    /// HINCRBY the tenant's depth and ZADD NX the tenant to its type and
    /// priority's turns; per type one wake marker per ID; free the running
    /// slots of released jobs ([`RELEASE_SLOTS`]); then LREM
    /// each acknowledged ID
    /// from the worker's processing list and SREM them. Never an ID pending
    /// but in no list (which re-dispatch would trust), nor the reverse.
    pub(crate) async fn send(&self, outbox: Outbox) -> Result<(), BrokerError> {
        self.pipeline(&outbox)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("PUBLISH+LPUSH+LREM"))
    }

    /// A test hook: sends `outbox`'s commands up to and including its SADD to
    /// the pending set, on a connection of its own, and drops the connection
    /// there, as a process dying mid-send would.
    pub(crate) async fn send_cut_short(&self, outbox: Outbox) -> Result<(), BrokerError> {
        let packed = self.pipeline(&outbox).get_packed_pipeline();
        let (bytes, commands) = cut_after_first(&packed, b"SADD");
        let client = self.client.clone();
        let sent = tokio::task::spawn_blocking(move || {
            let mut conn = client.get_connection()?;
            redis::ConnectionLike::req_packed_commands(&mut conn, &packed[..bytes], 0, commands)
                .map(drop)
        })
        .await;
        match sent {
            Ok(sent) => sent.map_err(BrokerError::command("a pipeline cut short")),
            // Only if the blocking task panicked; the hook then did nothing.
            Err(e) => {
                tracing::error!(error = %e, "the cut-short send did not run");
                Ok(())
            }
        }
    }

    /// The one round trip [`RedisBroker::send`] makes: see there.
    fn pipeline(&self, outbox: &Outbox) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for update in &outbox.updates {
            pipe.publish(self.keys.channel(), update).ignore();
        }
        // Grouped by queue, keeping each queue's IDs in the outbox's order.
        let mut queues: Vec<(String, &QueueEntry, Vec<String>)> = Vec::new();
        for entry in &outbox.queue {
            let key = self
                .keys
                .queue(entry.priority, &entry.tenant, &entry.job_type);
            match queues.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, _, ids)) => ids.push(entry.id.to_string()),
                None => queues.push((key, entry, vec![entry.id.to_string()])),
            }
        }
        for (queue, entry, ids) in &queues {
            pipe.sadd(self.keys.pending(), ids).ignore();
            pipe.lpush(queue, ids).ignore();
            pipe.hincr(self.keys.depth(), entry.tenant.as_str(), ids.len())
                .ignore();
            pipe.cmd("ZADD")
                .arg(self.keys.tenants(entry.priority, entry.job_type.as_str()))
                .arg("NX")
                .arg(0)
                .arg(entry.tenant.as_str())
                .ignore();
        }
        if !outbox.released.is_empty() {
            let release = pipe.cmd("EVAL");
            release
                .arg(RELEASE_SLOTS)
                .arg(0)
                .arg(self.keys.prefix())
                .arg(Self::MAX_WAKE_MARKERS - 1);
            for entry in &outbox.released {
                release.arg(entry.tenant.as_str()).arg(entry.id.to_string());
            }
            release.ignore();
        }
        let mut types: Vec<(&str, usize)> = Vec::new();
        for entry in &outbox.queue {
            let job_type = entry.job_type.as_str();
            match types.iter_mut().find(|(t, _)| *t == job_type) {
                Some((_, n)) => *n += 1,
                None => types.push((job_type, 1)),
            }
        }
        for (job_type, n) in types {
            let wake = self.keys.wake(job_type);
            pipe.sadd(self.keys.types(), job_type).ignore();
            pipe.lpush(&wake, vec!["1"; n]).ignore();
            pipe.ltrim(&wake, 0, Self::MAX_WAKE_MARKERS - 1).ignore();
        }
        if let Some((worker, ids)) = &outbox.acks
            && !ids.is_empty()
        {
            let processing = self.keys.processing(worker);
            let ids: Vec<String> = ids.iter().map(JobId::to_string).collect();
            for id in &ids {
                pipe.lrem(&processing, 1, id).ignore();
            }
            pipe.srem(self.keys.pending(), ids).ignore();
        }
        pipe
    }

    /// Those of `ids` that Redis does not hold (neither queued nor being taken).
    /// Asked [`MISSING_CHUNK`] at a time: one SMISMEMBER of the sweep's 5,000
    /// IDs against a million-member set held Redis for up to 12 ms, and every
    /// pop waited behind it.
    pub(crate) async fn missing(&self, ids: &[JobId]) -> Result<Vec<JobId>, BrokerError> {
        let mut missing = Vec::new();
        for chunk in ids.chunks(MISSING_CHUNK) {
            let members: Vec<bool> = redis::cmd("SMISMEMBER")
                .arg(self.keys.pending())
                .arg(chunk.iter().map(JobId::to_string).collect::<Vec<_>>())
                .query_async(&mut self.conn.clone())
                .await
                .map_err(BrokerError::command("SMISMEMBER"))?;
            missing.extend(
                chunk
                    .iter()
                    .zip(members)
                    .filter(|(_, present)| !present)
                    .map(|(id, _)| *id),
            );
        }
        Ok(missing)
    }

    /// Marks the worker alive for `ttl`.
    pub(crate) async fn worker_alive(
        &self,
        worker: &str,
        ttl: Duration,
        types: &[JobType],
    ) -> Result<(), BrokerError> {
        let types: Vec<&str> = types.iter().map(JobType::as_str).collect();
        redis::pipe()
            .sadd(self.keys.workers(), worker)
            .ignore()
            .pset_ex(
                self.keys.alive(worker),
                types.join("\n"),
                ttl.as_millis() as u64,
            )
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("SADD+PSETEX"))
    }

    /// Forgets workers that stopped renewing their liveness: the IDs they
    /// popped but never acknowledged leave the pending set, so the sweep
    /// re-dispatches those jobs from the store. Returns how many IDs.
    pub(crate) async fn reap_dead_workers(&self) -> Result<usize, BrokerError> {
        let mut conn = self.conn.clone();
        let workers: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.workers())
            .query_async(&mut conn)
            .await
            .map_err(BrokerError::command("SMEMBERS"))?;
        let mut released = 0;
        for worker in workers {
            let alive: bool = redis::cmd("EXISTS")
                .arg(self.keys.alive(&worker))
                .query_async(&mut conn)
                .await
                .map_err(BrokerError::command("EXISTS"))?;
            if !alive {
                released += self.forget_worker(&worker).await?;
            }
        }
        Ok(released)
    }

    /// Removes a worker's processing list and registration.
    pub(crate) async fn forget_worker(&self, worker: &str) -> Result<usize, BrokerError> {
        let released = self.release_taken(worker).await?;
        redis::pipe()
            .del(self.keys.alive(worker))
            .ignore()
            .srem(self.keys.workers(), worker)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("forget worker"))?;
        Ok(released.len())
    }

    /// Empties a worker's processing list, in one step, and drops its IDs
    /// from the pending set; returns them.
    pub(crate) async fn release_taken(&self, worker: &str) -> Result<Vec<JobId>, BrokerError> {
        let ids: Vec<String> = Script::new(RELEASE)
            .key(self.keys.processing(worker))
            .key(self.keys.pending())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("EVALSHA release"))?;
        // An entry that is not a job ID (pushed by hand) is dropped all the same.
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// How many IDs wait, per job type and priority (see [`DEPTHS`]).
    pub(crate) async fn queue_depths(&self) -> Result<Vec<QueueDepth>, BrokerError> {
        let mut invocation = DEPTHS_SCRIPT.prepare_invoke();
        invocation.arg(self.keys.prefix());
        for priority in Priority::ALL {
            invocation.arg(priority.as_str());
        }
        let flat: Vec<(String, String, usize)> = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("EVALSHA depths"))?;
        Ok(flat
            .into_iter()
            .filter_map(|(job_type, priority, jobs)| {
                Some(QueueDepth {
                    job_type,
                    priority: priority.parse().ok()?,
                    jobs,
                })
            })
            .collect())
    }

    /// Takes up to `max` IDs for `worker` without waiting (see the consumer's pop).
    pub(crate) async fn take(
        &self,
        worker: &str,
        selection: &Selection,
        max: usize,
        turn: usize,
    ) -> Result<Vec<JobId>, BrokerError> {
        consumer::pop(
            &mut self.conn.clone(),
            &self.keys,
            &self.keys.processing(worker),
            selection,
            max,
            turn,
        )
        .await
    }

    /// How many live workers run each job type.
    pub(crate) async fn live_types(&self) -> Result<Vec<(String, usize)>, BrokerError> {
        let mut conn = self.conn.clone();
        let workers: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.workers())
            .query_async(&mut conn)
            .await
            .map_err(BrokerError::command("SMEMBERS"))?;
        if workers.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = workers.iter().map(|w| self.keys.alive(w)).collect();
        let alive: Vec<Option<String>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .map_err(BrokerError::command("MGET"))?;
        Ok(crate::count_types(
            alive.iter().flatten().map(String::as_str),
        ))
    }

    /// Empties the queues of jobwire before queues were split by tenant and
    /// type, dropping their IDs from the pending set, so that re-dispatch
    /// queues those jobs again in today's queues. Returns how many IDs.
    pub(crate) async fn drop_legacy_queues(&self) -> Result<usize, BrokerError> {
        let mut invocation = LEGACY_SCRIPT.prepare_invoke();
        invocation.key(self.keys.pending());
        for key in self.keys.legacy() {
            invocation.key(key);
        }
        let dropped = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("EVALSHA drop legacy queues"))?;
        let mut upgrade = TURNS_UPGRADE_SCRIPT.prepare_invoke();
        upgrade.arg(self.keys.prefix());
        for priority in Priority::ALL {
            upgrade.arg(priority.as_str());
        }
        let upgraded: usize = upgrade
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("EVALSHA upgrade turns"))?;
        if upgraded > 0 {
            tracing::info!(
                tenants = upgraded,
                "queued tenants of an older jobwire set level for weighted turns; their queued jobs counted"
            );
        }
        Ok(dropped)
    }
}

/// Per job type (from the set of types) and priority, the IDs queued by
/// every tenant, as `{type, priority, n}` triples with `n > 0`. A type with
/// nothing queued leaves the set. ARGV: prefix, the 4 priorities.
const DEPTHS: &str = r"
local prefix = ARGV[1]
local out = {}
for _, t in ipairs(redis.call('SMEMBERS', prefix .. 'job_types')) do
  local any = false
  for i = 2, 5 do
    local p = ARGV[i]
    local n = 0
    for _, tenant in ipairs(redis.call('ZRANGE', prefix .. 'job_tenants:' .. p .. ':' .. t, 0, -1)) do
      n = n + redis.call('LLEN', prefix .. 'job_queue:' .. p .. ':' .. tenant .. '/' .. t)
    end
    if n > 0 then
      out[#out + 1] = {t, p, n}
      any = true
    end
  end
  if not any then redis.call('SREM', prefix .. 'job_types', t) end
end
return out
";

/// KEYS[1]: the pending set; the rest: legacy lists of IDs (and the legacy
/// wake list, whose entries are not IDs and match nothing in the set).
const LEGACY: &str = r"
local n = 0
for i = 2, #KEYS do
  local ids = redis.call('LRANGE', KEYS[i], 0, -1)
  for j = 1, #ids, 1000 do
    redis.call('SREM', KEYS[1], unpack(ids, j, math.min(j + 999, #ids)))
  end
  if i < #KEYS then n = n + #ids end
  redis.call('DEL', KEYS[i])
end
return n
";

/// Once, on Redis left by jobwire before weighted turns (it kept the
/// `job_turns` counter): its turns were scored by that counter, in the
/// millions, against today's virtual times from 0, so every tenant already
/// queued is set level at 0; and its queued IDs were not counted per tenant,
/// so `tenant_depth` is counted afresh from the lists. Returns how many
/// (type, priority, tenant) queues it saw. ARGV: prefix, the 4 priorities.
const TURNS_UPGRADE: &str = r"
local prefix = ARGV[1]
if redis.call('EXISTS', prefix .. 'job_turns') == 0 then return 0 end
local depth = prefix .. 'tenant_depth'
redis.call('DEL', depth)
local seen = 0
for _, t in ipairs(redis.call('SMEMBERS', prefix .. 'job_types')) do
  for i = 2, 5 do
    local index = prefix .. 'job_tenants:' .. ARGV[i] .. ':' .. t
    for _, tenant in ipairs(redis.call('ZRANGE', index, 0, -1)) do
      redis.call('ZADD', index, 0, tenant)
      local n = redis.call('LLEN', prefix .. 'job_queue:' .. ARGV[i] .. ':' .. tenant .. '/' .. t)
      if n > 0 then redis.call('HINCRBY', depth, tenant, n) end
      seen = seen + 1
    end
  end
end
redis.call('DEL', prefix .. 'job_turns')
return seen
";

static DEPTHS_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DEPTHS));
static TURNS_UPGRADE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TURNS_UPGRADE));
static LEGACY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LEGACY));

#[cfg(test)]
mod tests {
    use super::cut_after_first;

    #[test]
    fn a_pipeline_is_cut_right_after_the_named_command() {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .publish("c", "u")
            .sadd("pending", "a")
            .lpush("q", "a");
        let packed = pipe.get_packed_pipeline();
        let (bytes, commands) = cut_after_first(&packed, b"SADD");
        assert_eq!(commands, 3, "MULTI, PUBLISH, SADD");
        assert!(packed[..bytes].ends_with(b"pending\r\n$1\r\na\r\n"));
        assert_eq!(cut_after_first(&packed, b"NOPE"), (packed.len(), 5));
    }
}
