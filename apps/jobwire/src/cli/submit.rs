//! `jobwire submit`: create a job, print its ID, and with `--wait` follow it
//! to its end.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use super::follow::{self, Output};
use super::{Client, ClientArgs, field};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The job's type: the handler that runs it (built in: noop, echo, sleep, fail).
    #[arg(long = "type", value_name = "TYPE")]
    job_type: String,
    /// The job's payload: JSON, `@file` for a file's JSON, `@-` for standard input.
    #[arg(long)]
    payload: Option<String>,
    /// The queue the job waits in.
    #[arg(long, value_parser = ["critical", "high", "default", "low"])]
    priority: Option<String>,
    /// Attempts before the job counts as failed (server default: 3).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Follow the job until it ends; exit 0 if it succeeded, 3 if it failed, 4 if cancelled.
    #[arg(long)]
    wait: bool,
    /// Print the created job as JSON (and, with --wait, each update's raw JSON frame).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut body = json!({"type": args.job_type});
    if let Some(payload) = &args.payload {
        body["payload"] = payload_json(payload)?;
    }
    if let Some(priority) = args.priority {
        body["priority"] = json!(priority);
    }
    if let Some(max_attempts) = args.max_attempts {
        body["maxAttempts"] = json!(max_attempts);
    }
    let client = Client::new(&args.client)?;
    let job = client.post("/v1/jobs", &body).await?;
    let id = field(&job, "id").to_owned();
    if args.json {
        println!("{job}");
    } else {
        println!("{id}");
    }
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let mut session = client.connect().await?;
    follow::follow(&mut session, &id, Output::json_if(args.json)).await
}

/// `--payload`: JSON itself, or `@file` / `@-` holding it.
fn payload_json(payload: &str) -> anyhow::Result<Value> {
    let (text, source) = match payload.strip_prefix('@') {
        Some("-") => (
            std::io::read_to_string(std::io::stdin())
                .context("cannot read the payload from stdin")?,
            "standard input".to_owned(),
        ),
        Some(file) => (
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the payload file {file}"))?,
            file.to_owned(),
        ),
        None => (payload.to_owned(), "--payload".to_owned()),
    };
    serde_json::from_str(&text).with_context(|| format!("{source} is not JSON"))
}
