use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::RedisBroker;
use crate::SubscriberEvent;

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl RedisBroker {
    /// Holds one dedicated connection subscribed to the `job_updates` channel
    /// until `cancel`, reconnecting with exponential backoff whenever it drops,
    /// and hands every event to `on_event` in order.
    pub(crate) async fn run_subscriber(
        &self,
        cancel: CancellationToken,
        mut on_event: impl FnMut(SubscriberEvent),
    ) {
        let mut backoff = MIN_BACKOFF;
        while !cancel.is_cancelled() {
            match self.subscribe().await {
                Ok(pubsub) => {
                    backoff = MIN_BACKOFF;
                    on_event(SubscriberEvent::Subscribed);
                    let mut messages = pubsub.into_on_message();
                    loop {
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            message = messages.next() => match message {
                                Some(message) => on_event(SubscriberEvent::Message(message.get_payload_bytes().to_vec())),
                                None => break,
                            },
                        }
                    }
                    tracing::warn!(channel = %self.keys.channel(), "lost the job_updates subscription; reconnecting");
                    on_event(SubscriberEvent::Lost);
                }
                Err(e) => {
                    crate::error::count("SUBSCRIBE");
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot subscribe to job_updates");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn subscribe(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.keys.channel()).await?;
        Ok(pubsub)
    }
}
