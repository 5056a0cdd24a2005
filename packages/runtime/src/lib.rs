//! Configuration and wiring shared by the jobwire binaries (and the tests):
//! every setting comes from a flag or an environment variable, and each role
//! (API, worker, both) runs until its shutdown token fires.

mod config;
mod exporter;
mod handlers;
#[cfg(feature = "otlp")]
mod otlp;
mod quotas;
mod run;
mod secret;
mod telemetry;
mod worker_main;

pub use config::{
    ApiArgs, BackendArgs, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, EmbeddedArgs, JwtArgs, LogArgs,
    MetricsAddr, MetricsArgs, Plan, RetryArgs, WorkerArgs,
};
pub use exporter::{bind_metrics, install_metrics, serve_metrics};
pub use jobwire_metrics::Role;
pub use run::{Backends, bind, housekeep, run_all, run_api, run_worker, shutdown_on_signal};
pub use secret::{Secret, load_or_create_secret, read_secret};
pub use telemetry::{LogFormat, Telemetry, init_tracing};
pub use worker_main::worker_main;
