use std::time::Duration;

use jobwire_core::JobId;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};

use super::{COMMAND_TIMEOUT, RedisBroker};
use crate::{BrokerError, Keys};

/// Moves up to ARGV[1] of the oldest IDs, highest-priority queue first,
/// onto the worker's processing list, atomically: a popped ID is never only
/// in a worker's memory. KEYS: the queues (highest first), the processing
/// list, the wake list. When it leaves every queue empty it drops the wake
/// markers too: each ID queued later brings its own, pushed after the ID.
const POP: &str = r"
local want = tonumber(ARGV[1])
local taken = {}
for i = 1, #KEYS - 2 do
  local got = redis.call('RPOP', KEYS[i], want - #taken)
  if got then
    for _, id in ipairs(got) do taken[#taken + 1] = id end
    if #taken >= want then break end
  end
end
if #taken > 0 then redis.call('LPUSH', KEYS[#KEYS - 1], unpack(taken)) end
if #taken < want then redis.call('DEL', KEYS[#KEYS]) end
return taken
";

/// A dedicated connection: a consumer blocks on the wake list, and a blocking
/// command would stall every other command on a shared connection.
pub struct RedisConsumer {
    conn: MultiplexedConnection,
    keys: Keys,
    processing: String,
    block: Duration,
    pop: Script,
}

impl RedisBroker {
    pub(crate) async fn consumer(
        &self,
        worker: &str,
        block: Duration,
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
            pop: Script::new(POP),
        })
    }
}

impl RedisConsumer {
    /// Takes up to `max` IDs (see [`POP`]); when every queue is empty, waits
    /// up to the block time for a wake marker and looks once more. An entry
    /// that is not a job ID (pushed by hand) is dropped with a warning.
    pub(crate) async fn pop_many(&mut self, max: usize) -> Result<Vec<JobId>, BrokerError> {
        let ids = self.try_pop(max).await?;
        if !ids.is_empty() {
            return Ok(ids);
        }
        let _: Option<(String, String)> = redis::cmd("BRPOP")
            .arg(self.keys.wake())
            .arg(self.block.as_secs_f64())
            .query_async(&mut self.conn)
            .await
            .map_err(BrokerError::command("BRPOP"))?;
        self.try_pop(max).await
    }

    async fn try_pop(&mut self, max: usize) -> Result<Vec<JobId>, BrokerError> {
        let mut invocation = self.pop.prepare_invoke();
        for queue in self.keys.queues() {
            invocation.key(queue);
        }
        invocation
            .key(&self.processing)
            .key(self.keys.wake())
            .arg(max);
        let popped: Vec<String> = invocation
            .invoke_async(&mut self.conn)
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
}
