//! What a run prints: a short table for people on stderr, and exactly one
//! JSON line on stdout for scripts (stdout carries nothing else).

use std::fmt::Display;
use std::io::Write;

use serde_json::Value;

pub struct Report {
    title: String,
    rows: Vec<(String, String)>,
    json: Value,
}

impl Report {
    pub fn new(title: impl Into<String>, json: Value) -> Report {
        Report {
            title: title.into(),
            rows: Vec::new(),
            json,
        }
    }

    /// Adds a row to the human table.
    pub fn row(mut self, label: &str, value: impl Display) -> Report {
        self.rows.push((label.to_owned(), value.to_string()));
        self
    }

    pub fn emit(&self) -> anyhow::Result<()> {
        let width = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let mut err = std::io::stderr().lock();
        writeln!(err, "{}", self.title)?;
        for (label, value) in &self.rows {
            writeln!(err, "  {label:<width$}  {value}")?;
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", self.json)?;
        out.flush()?;
        Ok(())
    }
}

/// A rate for the table: `12 345/s`.
pub fn per_sec(rate: f64) -> String {
    let whole = rate.round() as u64;
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    format!("{grouped}/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_grouped_by_thousands() {
        assert_eq!(per_sec(1234567.4), "1 234 567/s");
        assert_eq!(per_sec(999.6), "1 000/s");
        assert_eq!(per_sec(12.0), "12/s");
    }
}
