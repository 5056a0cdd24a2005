//! Tenants' quotas in Redis, so that every API and worker process obeys the
//! same counts: queued jobs per tenant (kept by the queue writes themselves),
//! create-rate token buckets, and running slots (taken by the pop, freed by
//! the announcement of a job that stopped running).

use std::sync::LazyLock;
use std::time::Duration;

use jobwire_core::{JobId, Quota, Quotas, Refusal, TenantId};
use redis::Script;

use super::RedisBroker;
use crate::BrokerError;

/// Admits `n` jobs of a tenant or says why not: first its queued jobs
/// (KEYS[1], the depth hash) against `max`, then its token bucket (KEYS[2]),
/// refilled by Redis's clock, from which `n` tokens are taken. Returns
/// `{0}` admitted, `{1, queued}` queue full, `{2, ms}` rate limited (enough
/// tokens in `ms`), `{3}` more than the bucket holds, `{4}` more than may
/// ever be queued.
///
/// ARGV: tenant, n, max queued (empty: none), rate per second (empty:
/// none), burst.
const ADMIT: &str = r"
local n = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
if max then
  if n > max then return {4} end
  local queued = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0
  if queued + n > max then return {1, queued} end
end
local rate = tonumber(ARGV[4])
if rate then
  local burst = tonumber(ARGV[5])
  if n > burst then return {3} end
  local time = redis.call('TIME')
  local now = time[1] + time[2] / 1000000
  local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'at')
  local tokens = tonumber(bucket[1]) or burst
  local at = tonumber(bucket[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  if tokens < n then return {2, math.ceil((n - tokens) / rate * 1000)} end
  redis.call('HSET', KEYS[2], 'tokens', string.format('%.17g', tokens - n), 'at', string.format('%.17g', now))
  redis.call('PEXPIRE', KEYS[2], math.ceil(burst / rate * 1000) + 1000)
end
return {0}
";

static ADMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADMIT));

/// Per tenant with running slots, those taken at or before ARGV[2] (ms
/// since the epoch), as `{tenant, id}` pairs; a tenant with none left leaves the set
/// (KEYS[1]). ARGV[1]: prefix.
const STALE_SLOTS: &str = r"
local out = {}
for _, tenant in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. 'job_running:' .. tenant
  if redis.call('ZCARD', key) == 0 then
    redis.call('SREM', KEYS[1], tenant)
  else
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[2], 'LIMIT', 0, 1000)) do
      out[#out + 1] = {tenant, id}
    end
  end
end
return out
";

static STALE_SLOTS_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(STALE_SLOTS));

impl RedisBroker {
    pub(crate) async fn admit(
        &self,
        tenant: &TenantId,
        jobs: u64,
        quota: &Quota,
    ) -> Result<Option<Refusal>, BrokerError> {
        let (rate, burst) = quota.bucket().unzip();
        let answer: Vec<u64> = ADMIT_SCRIPT
            .key(self.keys.depth())
            .key(self.keys.bucket(tenant))
            .arg(tenant.as_str())
            .arg(jobs)
            .arg(quota.max_queued.map(|m| m.to_string()).unwrap_or_default())
            .arg(rate.map(|r| r.to_string()).unwrap_or_default())
            .arg(burst.unwrap_or_default())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("EVALSHA admit"))?;
        Ok(match answer.as_slice() {
            [1, queued] => Some(Refusal::QueueFull {
                queued: *queued,
                max: quota.max_queued.unwrap_or_default(),
            }),
            [2, ms] => Some(Refusal::RateLimited {
                retry_after: Duration::from_millis(*ms),
            }),
            [4] => Some(Refusal::OverQueue {
                jobs,
                max: quota.max_queued.unwrap_or_default(),
            }),
            [3] => Some(Refusal::OverBurst {
                jobs,
                burst: burst.unwrap_or_default(),
            }),
            _ => None,
        })
    }

    /// Replaces the running caps and weights the pop obeys with `quotas`'s.
    pub(crate) async fn publish_quotas(&self, quotas: &Quotas) -> Result<(), BrokerError> {
        let mut fields: Vec<(String, String)> = Vec::new();
        if let Some(cap) = quotas.defaults.max_running {
            fields.push(("running:*".into(), cap.to_string()));
        }
        for tenant in quotas.overrides.keys() {
            let quota = quotas.of(tenant);
            if let Some(cap) = quota.max_running {
                fields.push((format!("running:{tenant}"), cap.to_string()));
            }
            if quota.weight != 1 {
                fields.push((format!("weight:{tenant}"), quota.weight.to_string()));
            }
        }
        let mut pipe = redis::pipe();
        pipe.atomic().del(self.keys.limits()).ignore();
        if !fields.is_empty() {
            pipe.hset_multiple(self.keys.limits(), &fields).ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("DEL+HSET limits"))
    }

    /// Running slots taken `age` ago or earlier (at most 1,000 per tenant).
    pub(crate) async fn stale_slots(
        &self,
        age: Duration,
    ) -> Result<Vec<(TenantId, JobId)>, BrokerError> {
        let now: (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("TIME"))?;
        let before = (now.0 * 1000 + now.1 / 1000).saturating_sub(age.as_millis() as u64);
        let pairs: Vec<(String, String)> = STALE_SLOTS_SCRIPT
            .key(self.keys.slot_tenants())
            .arg(self.keys.prefix())
            .arg(before)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("EVALSHA stale slots"))?;
        Ok(pairs
            .into_iter()
            .filter_map(|(tenant, id)| Some((tenant.parse().ok()?, id.parse().ok()?)))
            .collect())
    }

    /// Frees the slots in `release`; those in `keep` count as taken now.
    pub(crate) async fn settle_slots(
        &self,
        keep: &[(TenantId, JobId)],
        release: &[(TenantId, JobId)],
    ) -> Result<(), BrokerError> {
        if keep.is_empty() && release.is_empty() {
            return Ok(());
        }
        let now: (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("TIME"))?;
        let now = now.0 * 1000 + now.1 / 1000;
        let mut pipe = redis::pipe();
        for (tenant, id) in keep {
            pipe.cmd("ZADD")
                .arg(self.keys.running(tenant.as_str()))
                .arg("XX")
                .arg(now)
                .arg(id.to_string())
                .ignore();
        }
        if !release.is_empty() {
            let script = pipe.cmd("EVAL");
            script
                .arg(super::RELEASE_SLOTS)
                .arg(0)
                .arg(self.keys.prefix())
                .arg(Self::MAX_WAKE_MARKERS - 1);
            for (tenant, id) in release {
                script.arg(tenant.as_str()).arg(id.to_string());
            }
            script.ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("ZADD+EVAL release slots"))
    }
}
