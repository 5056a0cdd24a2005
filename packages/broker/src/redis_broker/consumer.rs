use std::time::Duration;

use jobwire_core::JobId;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use super::{COMMAND_TIMEOUT, RedisBroker};
use crate::{BrokerError, Keys};

/// A dedicated connection for `BRPOP`: a blocking command would stall every
/// other command on a shared connection, so each consumer has its own.
pub struct RedisConsumer {
    conn: MultiplexedConnection,
    keys: Keys,
    block: Duration,
}

impl RedisBroker {
    /// Opens a consumer whose [`Consumer::pop`] waits at most `block`.
    pub(crate) async fn consumer(&self, block: Duration) -> Result<RedisConsumer, BrokerError> {
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
            block,
        })
    }
}

impl RedisConsumer {
    /// Takes the oldest ID of the highest-priority non-empty queue, waiting up
    /// to the block time. `None` when every queue stayed empty. An entry that
    /// is not a job ID (pushed by hand) is dropped with a warning.
    pub(crate) async fn pop(&mut self) -> Result<Option<JobId>, BrokerError> {
        let popped: Option<(String, String)> = redis::cmd("BRPOP")
            .arg(self.keys.queues().as_slice())
            .arg(self.block.as_secs_f64())
            .query_async(&mut self.conn)
            .await
            .map_err(BrokerError::command("BRPOP"))?;
        Ok(popped.and_then(|(queue, raw)| match raw.parse() {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(%queue, entry = %raw, error = %e, "dropping a queue entry that is not a job ID");
                None
            }
        }))
    }
}
