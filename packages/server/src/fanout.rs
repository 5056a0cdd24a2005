//! This instance's one `job_updates` subscriber, feeding the hub. Each message
//! is parsed once (for its tenant and job) and its text is shared by every
//! client it goes to.

use axum::extract::ws::Utf8Bytes;
use jobwire_broker::SubscriberEvent;
use jobwire_core::{JobId, TenantId};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// The part of an update the hub routes by.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Route {
    tenant_id: TenantId,
    job_id: JobId,
}

pub(crate) async fn run(state: AppState, shutdown: CancellationToken) {
    let broker = state.broker().clone();
    broker
        .run_subscriber(shutdown, |event| match event {
            SubscriberEvent::Subscribed => state.set_subscribed(true),
            SubscriberEvent::Lost => state.set_subscribed(false),
            SubscriberEvent::Message(bytes) => deliver(&state, bytes),
        })
        .await;
}

fn deliver(state: &AppState, bytes: Vec<u8>) {
    let route: Route = match serde_json::from_slice(&bytes) {
        Ok(route) => route,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a job_updates message that is not a job update");
            return;
        }
    };
    // Valid JSON is valid UTF-8, so this conversion only moves the buffer.
    let Ok(text) = String::from_utf8(bytes) else {
        return;
    };
    state
        .hub()
        .publish(&route.tenant_id, route.job_id, &Utf8Bytes::from(text));
}
