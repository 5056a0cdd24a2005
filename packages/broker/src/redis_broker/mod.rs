//! Redis: one list per priority carries job IDs (`LPUSH` in, `BRPOP` out, so
//! FIFO within a priority), and the `job_updates` channel carries every status
//! change as JSON, readable with `redis-cli SUBSCRIBE job_updates`.

mod consumer;
mod subscriber;

use std::time::Duration;

use jobwire_core::{JobId, Priority};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use consumer::RedisConsumer;

use crate::{BrokerError, Keys};

/// How long a command on the shared connection may take before it fails.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The shared command connection (reconnecting) plus the key names.
#[derive(Clone)]
pub struct RedisBroker {
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
            url: url.to_owned(),
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
            url: url.to_owned(),
            client,
            conn,
            keys: Keys::new(prefix),
        })
    }

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

    /// Announces freshly committed jobs and queues their IDs, in one round trip.
    /// The `queued` updates are published before the `LPUSH`, so no worker can
    /// announce `running` ahead of them.
    pub(crate) async fn enqueue(
        &self,
        jobs: &[(JobId, Priority)],
        updates: &[String],
    ) -> Result<(), BrokerError> {
        let mut pipe = redis::pipe();
        for update in updates {
            pipe.publish(self.keys.channel(), update).ignore();
        }
        for priority in Priority::ALL {
            let ids: Vec<String> = jobs
                .iter()
                .filter(|(_, p)| *p == priority)
                .map(|(id, _)| id.to_string())
                .collect();
            if !ids.is_empty() {
                pipe.lpush(self.keys.queue(priority), ids).ignore();
            }
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("PUBLISH+LPUSH"))
    }

    /// Publishes one update (JSON text) on the `job_updates` channel.
    pub(crate) async fn publish(&self, update: &str) -> Result<(), BrokerError> {
        redis::cmd("PUBLISH")
            .arg(self.keys.channel())
            .arg(update)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("PUBLISH"))
    }

    /// How many IDs wait in a priority's queue.
    pub(crate) async fn queue_len(&self, priority: Priority) -> Result<usize, BrokerError> {
        redis::cmd("LLEN")
            .arg(self.keys.queue(priority))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(BrokerError::command("LLEN"))
    }
}
