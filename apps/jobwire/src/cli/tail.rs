//! `jobwire tail`: the tenant's live stream of updates, until interrupted.

use std::process::ExitCode;

use super::{Client, ClientArgs, field, follow};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print every frame as the server sent it (raw JSON, events included).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let mut session = client.connect().await?;
    if args.json {
        // From this frame on nothing is missed.
        println!("{}", session.connected);
    } else {
        eprintln!("following the tenant's jobs (Ctrl-C to stop)");
    }
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let (frame, text) = tokio::select! {
            _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
            frame = session.next() => frame?,
        };
        if args.json {
            println!("{text}");
        } else if frame["event"] == "error" {
            eprintln!("the server says: {}", field(&frame, "detail"));
        } else if frame.get("event").is_none() {
            println!(
                "{} {} {}",
                field(&frame, "at"),
                field(&frame, "type"),
                follow::line(&frame)
            );
        }
    }
}
