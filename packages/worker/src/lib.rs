//! The worker runtime: pops job IDs from the queues, claims each job in
//! Postgres (so an ID popped twice runs once), runs the handler registered for
//! its type, stores the outcome and publishes every change.

mod builtins;
mod context;
mod error;
mod registry;
mod runner;

pub use context::JobContext;
pub use error::{JobError, WorkerError};
pub use registry::{Handler, HandlerResult, Registry};
pub use runner::{Worker, WorkerConfig};
