use std::time::Duration;

use jobwire_core::JobId;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};

use super::{COMMAND_TIMEOUT, RedisBroker};
use crate::{BrokerError, Keys};

/// Moves the oldest ID of the highest-priority non-empty queue onto the
/// worker's processing list, atomically: a popped ID is never only in a
/// worker's memory.
const POP: &str = r"
for i = 1, #KEYS - 1 do
  local id = redis.call('LMOVE', KEYS[i], KEYS[#KEYS], 'RIGHT', 'LEFT')
  if id then return id end
end
return false
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
            .map_err(|source| BrokerError::Connect {
                url: self.url.clone(),
                source,
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
    /// Takes an ID (see [`POP`]); when every queue is empty, waits up to the
    /// block time for a wake marker and looks once more. An entry that is not
    /// a job ID (pushed by hand) is dropped with a warning.
    pub(crate) async fn pop(&mut self) -> Result<Option<JobId>, BrokerError> {
        if let Some(id) = self.try_pop().await? {
            return Ok(Some(id));
        }
        let _: Option<(String, String)> = redis::cmd("BRPOP")
            .arg(self.keys.wake())
            .arg(self.block.as_secs_f64())
            .query_async(&mut self.conn)
            .await
            .map_err(BrokerError::command("BRPOP"))?;
        self.try_pop().await
    }

    async fn try_pop(&mut self) -> Result<Option<JobId>, BrokerError> {
        let mut invocation = self.pop.prepare_invoke();
        for queue in self.keys.queues() {
            invocation.key(queue);
        }
        invocation.key(&self.processing);
        let popped: Option<String> = invocation
            .invoke_async(&mut self.conn)
            .await
            .map_err(BrokerError::command("EVALSHA pop"))?;
        Ok(popped.and_then(|raw| match raw.parse() {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(entry = %raw, error = %e, "dropping a queue entry that is not a job ID");
                None
            }
        }))
    }
}
