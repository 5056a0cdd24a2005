use std::sync::LazyLock;
use std::time::Duration;

use jobwire_core::{JobId, JobType, Priority, TenantId};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Script};

use super::{COMMAND_TIMEOUT, RedisBroker};
use crate::{BrokerError, Keys};

/// Moves up to `want` IDs onto the worker's processing list (KEYS[1]),
/// atomically, so a popped ID is never only in a worker's memory: highest
/// priority first; within a priority the worker's types in turn, from the
/// `first`-th (so no type starves another); within a type, tenants take
/// turns by virtual time, lowest first: a tenant served n IDs moves n /
/// weight later (from the type's clock, so one back from a wait starts level
/// with the others), its own IDs oldest first. A tenant at its running cap is
/// passed over, keeping its place; what it takes joins its running set. A
/// tenant whose queue it empties leaves the type's set of tenants.
/// With `tenants` given, only their queues are looked at, in that order.
/// When it takes fewer than wanted from every tenant, the types' wake markers
/// go too: each ID queued, and each running slot freed, later brings its own.
///
/// ARGV: prefix, the 4 priorities (highest first), want, first, the number
/// of types and the types, the number of tenants and the tenants.
const POP: &str = r"
local prefix = ARGV[1]
local priorities = {ARGV[2], ARGV[3], ARGV[4], ARGV[5]}
local want = tonumber(ARGV[6])
local first = tonumber(ARGV[7])
local ntypes = tonumber(ARGV[8])
local types = {}
for i = 1, ntypes do types[i] = ARGV[8 + i] end
local ntenants = tonumber(ARGV[9 + ntypes])
local tenants = {}
for i = 1, ntenants do tenants[i] = ARGV[9 + ntypes + i] end
local taken = {}
local limits = prefix .. 'tenant_limits'
local depth = prefix .. 'tenant_depth'
local clocks = prefix .. 'job_clocks'
local default_cap = tonumber(redis.call('HGET', limits, 'running:*'))
local now = nil

-- Serves `tenant` up to `base` times its weight; false if it is at its cap.
local function serve(p, t, index, tenant, base)
  local quota = redis.call('HMGET', limits, 'weight:' .. tenant, 'running:' .. tenant)
  local weight = tonumber(quota[1]) or 1
  local cap = tonumber(quota[2]) or default_cap
  local share = math.min(base * weight, want - #taken)
  local running = prefix .. 'job_running:' .. tenant
  if cap then
    share = math.min(share, cap - redis.call('ZCARD', running))
    if share <= 0 then return false end
  end
  local queue = prefix .. 'job_queue:' .. p .. ':' .. tenant .. '/' .. t
  local got = redis.call('RPOP', queue, share) or {}
  for _, id in ipairs(got) do taken[#taken + 1] = id end
  if redis.call('HINCRBY', depth, tenant, -#got) <= 0 then redis.call('HDEL', depth, tenant) end
  if cap and #got > 0 then
    if not now then
      local time = redis.call('TIME')
      now = time[1] * 1000 + math.floor(time[2] / 1000)
    end
    local slots = {}
    for _, id in ipairs(got) do
      slots[#slots + 1] = now
      slots[#slots + 1] = id
    end
    redis.call('ZADD', running, unpack(slots))
    redis.call('SADD', prefix .. 'job_running_tenants', tenant)
  end
  local start = math.max(tonumber(redis.call('ZSCORE', index, tenant)) or 0,
                         tonumber(redis.call('HGET', clocks, index)) or 0)
  redis.call('HSET', clocks, index, string.format('%.17g', start))
  if redis.call('LLEN', queue) == 0 then
    redis.call('ZREM', index, tenant)
  else
    redis.call('ZADD', index, string.format('%.17g', start + #got / weight), tenant)
  end
  return true
end

for _, p in ipairs(priorities) do
  for k = 0, ntypes - 1 do
    if #taken >= want then break end
    local t = types[(first + k) % ntypes + 1]
    local index = prefix .. 'job_tenants:' .. p .. ':' .. t
    if ntenants == 0 then
      local passed = 0
      while #taken < want do
        local head = redis.call('ZRANGE', index, passed, passed)
        if #head == 0 then break end
        local base = math.ceil((want - #taken) / (redis.call('ZCARD', index) - passed))
        if not serve(p, t, index, head[1], base) then passed = passed + 1 end
      end
    else
      for _, tenant in ipairs(tenants) do
        if #taken >= want then break end
        if redis.call('ZSCORE', index, tenant) then serve(p, t, index, tenant, want - #taken) end
      end
    end
  end
  if #taken >= want then break end
end
if #taken > 0 then redis.call('LPUSH', KEYS[1], unpack(taken)) end
if #taken < want then
  for _, t in ipairs(types) do
    local left = 0
    if ntenants > 0 then
      for _, p in ipairs(priorities) do
        left = left + redis.call('ZCARD', prefix .. 'job_tenants:' .. p .. ':' .. t)
      end
    end
    if left == 0 then redis.call('DEL', prefix .. 'job_wake:' .. t) end
  end
end
return taken
";

/// Hashed once: every pop runs it by its SHA.
static POP_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(POP));

/// What a pop looks at: the job types it takes (at least one), and the
/// tenants it takes them for (none: every tenant).
#[derive(Debug, Clone)]
pub struct Selection {
    pub types: Vec<JobType>,
    pub tenants: Vec<TenantId>,
}

/// Runs [`POP`] on `conn` for `processing`. `first` picks the type looked at
/// first within a priority; callers pass a counter, so types take turns.
pub(crate) async fn pop(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    processing: &str,
    selection: &Selection,
    max: usize,
    first: usize,
) -> Result<Vec<JobId>, BrokerError> {
    if selection.types.is_empty() {
        return Ok(Vec::new());
    }
    let mut invocation = POP_SCRIPT.prepare_invoke();
    invocation.key(processing).arg(keys.prefix());
    for priority in Priority::ALL {
        invocation.arg(priority.as_str());
    }
    invocation
        .arg(max)
        .arg(first % selection.types.len())
        .arg(selection.types.len());
    for job_type in &selection.types {
        invocation.arg(job_type.as_str());
    }
    invocation.arg(selection.tenants.len());
    for tenant in &selection.tenants {
        invocation.arg(tenant.as_str());
    }
    let popped: Vec<String> = invocation
        .invoke_async(conn)
        .await
        .map_err(BrokerError::command("EVALSHA pop"))?;
    Ok(popped
        .into_iter()
        .filter_map(|raw| match raw.parse() {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(entry = %raw, error = %e, "dropping a queue entry that is not a job ID");
                None
            }
        })
        .collect())
}

/// A dedicated connection: a consumer blocks on the wake lists, and a
/// blocking command would stall every other command on a shared connection.
pub struct RedisConsumer {
    conn: MultiplexedConnection,
    keys: Keys,
    processing: String,
    block: Duration,
    selection: Selection,
    wake: Vec<String>,
    turn: usize,
}

impl RedisBroker {
    pub(crate) async fn consumer(
        &self,
        worker: &str,
        block: Duration,
        types: &[JobType],
    ) -> Result<RedisConsumer, BrokerError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(block + COMMAND_TIMEOUT));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|source| {
                crate::error::count("connect");
                BrokerError::Connect {
                    url: self.url.clone(),
                    source,
                }
            })?;
        Ok(RedisConsumer {
            conn,
            keys: self.keys.clone(),
            processing: self.keys.processing(worker),
            block,
            wake: types.iter().map(|t| self.keys.wake(t.as_str())).collect(),
            selection: Selection {
                types: types.to_vec(),
                tenants: Vec::new(),
            },
            turn: 0,
        })
    }
}

impl RedisConsumer {
    /// Takes up to `max` IDs (see [`POP`]); when the queues are empty, waits
    /// up to the block time for a wake marker of one of its types and looks
    /// once more. An entry that is not a job ID (pushed by hand) is dropped
    /// with a warning.
    pub(crate) async fn pop_many(&mut self, max: usize) -> Result<Vec<JobId>, BrokerError> {
        if self.wake.is_empty() {
            // A worker with no handlers has nothing to take, ever: it only waits.
            tokio::time::sleep(self.block).await;
            return Ok(Vec::new());
        }
        let ids = self.try_pop(max).await?;
        if !ids.is_empty() {
            return Ok(ids);
        }
        let _: Option<(String, String)> = redis::cmd("BRPOP")
            .arg(&self.wake)
            .arg(self.block.as_secs_f64())
            .query_async(&mut self.conn)
            .await
            .map_err(BrokerError::command("BRPOP"))?;
        self.try_pop(max).await
    }

    async fn try_pop(&mut self, max: usize) -> Result<Vec<JobId>, BrokerError> {
        self.turn = self.turn.wrapping_add(1);
        pop(
            &mut self.conn,
            &self.keys,
            &self.processing,
            &self.selection,
            max,
            self.turn,
        )
        .await
    }
}
