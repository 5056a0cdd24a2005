//! `jobwire jobs`: a table of the tenant's jobs, newest first.

use std::process::ExitCode;

use serde_json::Value;

use super::{Client, ClientArgs, field};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only jobs with this status (scheduled, queued, running, succeeded, failed, cancelled).
    #[arg(long)]
    status: Option<String>,
    /// Only jobs of this type.
    #[arg(long = "type", value_name = "TYPE")]
    job_type: Option<String>,
    /// How many jobs (server default 50, at most 500).
    #[arg(long)]
    limit: Option<u32>,
    /// Start after this job: the `next page` a previous call printed.
    #[arg(long)]
    cursor: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let query: Vec<(&str, String)> = [
        ("status", args.status),
        ("type", args.job_type),
        ("limit", args.limit.map(|n| n.to_string())),
        ("cursor", args.cursor),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value?)))
    .collect();
    let list = client.get("/v1/jobs", &query).await?;
    let jobs = list["jobs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    print!("{}", table(jobs));
    if let Some(cursor) = list["nextCursor"].as_str() {
        eprintln!("next page: --cursor {cursor}");
    }
    Ok(ExitCode::SUCCESS)
}

/// ID, TYPE, STATUS, ATTEMPT, CREATED: columns as wide as their widest cell.
fn table(jobs: &[Value]) -> String {
    let mut rows = vec![["ID", "TYPE", "STATUS", "ATTEMPT", "CREATED (UTC)"].map(str::to_owned)];
    for job in jobs {
        let created = field(job, "createdAt");
        // RFC 3339 to the second: `2026-11-27 14:29:30`.
        let created = created.get(..19).unwrap_or(created).replace('T', " ");
        rows.push([
            field(job, "id").to_owned(),
            field(job, "type").to_owned(),
            field(job, "status").to_owned(),
            job["attempt"].to_string(),
            created,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
