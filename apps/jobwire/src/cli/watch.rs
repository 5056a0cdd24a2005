//! `jobwire watch ID`: a job's updates until it ends.

use std::process::ExitCode;

use super::follow::{self, Output};
use super::{Client, ClientArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The job to watch.
    id: uuid::Uuid,
    /// Print each update's raw JSON frame instead of a line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let id = args.id.to_string();
    // Read first: an unknown job (or another tenant's) is a 404 with a detail
    // here, where a subscription would wait for it forever.
    client.get(&format!("/v1/jobs/{id}"), &[]).await?;
    let mut session = client.connect().await?;
    // The subscription answers with the job's current state, so a job that
    // ended in between is shown ended.
    follow::follow(&mut session, &id, Output::json_if(args.json)).await
}
