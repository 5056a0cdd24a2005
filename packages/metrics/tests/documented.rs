//! The README's table of series and the Grafana dashboard's queries stay in
//! step with [`SERIES`], the series the code exports.

#![allow(clippy::unwrap_used, reason = "a test fails right there")]

use std::collections::{BTreeSet, HashMap};

use jobwire_metrics::{Kind, Role, SERIES, Series};
use serde_json::Value;

fn repo_file(path: &str) -> String {
    let full = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn by_name() -> HashMap<&'static str, &'static Series> {
    SERIES.iter().map(|series| (series.name, series)).collect()
}

#[test]
fn the_readme_table_lists_every_series_with_its_type_labels_and_process() {
    let readme = repo_file("README.md");
    let mut listed = Vec::new();
    for row in readme
        .lines()
        .filter(|line| line.starts_with("| `jobwire_"))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`');
        let series = by_name()
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("the README lists {name}, which the code does not export"));
        assert_eq!(cells[2], series.kind.as_str(), "{name}: type");
        let labels: Vec<&str> = cells[3]
            .split(", ")
            .map(|label| label.trim_matches('`'))
            .filter(|label| *label != "—")
            .collect();
        assert_eq!(labels, series.labels, "{name}: labels");
        let from = match series.from {
            Role::Api => "jobwire-api",
            Role::Worker => "jobwire-worker",
            Role::Both => "both",
        };
        assert_eq!(cells[4], from, "{name}: the process that exports it");
        assert!(!cells[5].is_empty(), "{name}: its meaning");
        listed.push(name);
    }
    let exported: Vec<&str> = SERIES.iter().map(|series| series.name).collect();
    assert_eq!(
        listed, exported,
        "the README lists every series once, in the code's order"
    );
}

/// The `jobwire_*` names in a PromQL expression.
fn series_names(expr: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("jobwire_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.push(&tail[..end]);
        rest = &tail[end..];
    }
    names
}

/// The labels an expression aggregates `by (…)`.
fn by_labels(expr: &str) -> BTreeSet<&str> {
    expr.split("by (")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .flat_map(|labels| labels.split(',').map(str::trim))
        .collect()
}

#[test]
fn every_dashboard_query_names_an_exported_series_and_its_labels() {
    let dashboard: Value =
        serde_json::from_str(&repo_file("deploy/grafana/dashboards/jobwire.json")).unwrap();
    let series = by_name();
    let mut queried = BTreeSet::new();
    let panels = dashboard["panels"].as_array().unwrap();
    for panel in panels.iter().filter(|panel| panel["type"] != "row") {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel `{title}` has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = series_names(expr);
            assert!(
                !names.is_empty(),
                "`{title}`: {expr} names no jobwire series"
            );
            let mut labels: BTreeSet<&str> = BTreeSet::new();
            for name in names {
                let (base, histogram_line) = match ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                {
                    Some(base) if series.contains_key(base) => (base, true),
                    _ => (name, false),
                };
                let exported = series
                    .get(base)
                    .unwrap_or_else(|| panic!("`{title}`: {name} is not a series jobwire exports"));
                assert_eq!(
                    histogram_line,
                    exported.kind == Kind::Histogram,
                    "`{title}`: {name} (a histogram is queried by its _bucket, _sum or _count)"
                );
                labels.extend(exported.labels);
                if exported.kind == Kind::Histogram {
                    labels.insert("le");
                }
                queried.insert(base);
            }
            for label in by_labels(expr) {
                assert!(
                    labels.contains(label),
                    "`{title}`: {expr} groups by `{label}`, a label its series do not have"
                );
            }
        }
    }
    // What the issue asks the dashboard to show.
    for wanted in [
        "jobwire_queue_depth",
        "jobwire_jobs_finished_total",
        "jobwire_job_duration_seconds",
        "jobwire_ws_connections",
    ] {
        assert!(queried.contains(wanted), "the dashboard shows {wanted}");
    }
    let text = repo_file("deploy/grafana/dashboards/jobwire.json");
    assert!(
        text.contains(
            "histogram_quantile(0.99, sum by (le, type) (rate(jobwire_job_duration_seconds_bucket"
        ),
        "the dashboard shows the p99 duration by type"
    );
}
