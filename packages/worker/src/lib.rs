//! The worker runtime: pops job IDs, claims each job in the store under a
//! lease (so an ID popped twice runs once, and a job never runs in two places
//! while leases are respected), runs the handler registered for its type,
//! stores the outcome with the lease's fencing token, and publishes every
//! change. Beside the job loop run the lease keeper (heartbeats) and the
//! maintenance loop (expired leases, due retries, lost IDs). A job type can
//! also be handed to an HTTP endpoint ([`Webhook`]).

mod builtins;
mod claim;
mod complete;
mod context;
mod error;
mod failpoint;
mod lease;
mod maintenance;
mod registry;
mod runner;
pub mod webhook;

pub use context::JobContext;
pub use error::{JobError, WorkerError};
pub use failpoint::Failpoint;
pub use jobwire_store::RetryPolicy;
pub use registry::{Handler, HandlerResult, Registry};
pub use runner::{Worker, WorkerConfig};
pub use webhook::Webhook;
