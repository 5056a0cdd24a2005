//! The binary as its user meets it first: `--help`. Being an integration
//! test of this package, it also makes `cargo test --workspace` build
//! `thumbnail-worker`, which the end-to-end test in `apps/jobwire` runs
//! beside a real `jobwire-api`.

#![allow(
    clippy::unwrap_used,
    reason = "a test that meets an unexpected None or Err should fail right there"
)]

use std::process::Command;

#[test]
fn a_custom_workers_help_has_its_name_and_every_worker_setting() {
    let output = Command::new(env!("CARGO_BIN_EXE_thumbnail-worker"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("Usage: thumbnail-worker"), "{help}");
    for variable in [
        "DATABASE_URL",
        "REDIS_URL",
        "JOBWIRE_PREFIX",
        "JOBWIRE_WORKER_CONCURRENCY",
        "JOBWIRE_SHUTDOWN_GRACE",
        "JOBWIRE_LEASE_TTL",
        "JOBWIRE_METRICS_ADDR",
        "JOBWIRE_LOG_FORMAT",
        "JOBWIRE_CONFIG",
    ] {
        assert!(
            help.contains(&format!("env: {variable}")),
            "lists {variable}"
        );
    }
}
