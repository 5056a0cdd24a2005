//! `jobwire.toml`: job types a worker hands to HTTP endpoints (webhooks).
//!
//! ```toml
//! [handlers.send-email]
//! url = "http://127.0.0.1:8080/jobs/send-email"
//! timeout = "10s"                    # humantime; default 30s
//! secret_env = "EMAIL_HOOK_SECRET"   # or `secret = "..."`
//! headers = { "x-api-key" = "..." }
//! ```
//!
//! Anything wrong (a field unknown, a URL refused, a secret missing, a type
//! that already has a handler) stops the worker at startup, with the file and
//! the handler named: a webhook half set up would fail its jobs one by one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use jobwire_core::JobType;
use jobwire_worker::{Registry, Webhook};
use serde::Deserialize;

/// The file a worker reads when none is named, if it exists.
const DEFAULT_CONFIG: &str = "jobwire.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Read one by one, so that an error names its handler.
    #[serde(default)]
    handlers: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookConfig {
    url: String,
    timeout: Option<String>,
    secret: Option<String>,
    secret_env: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// The configuration file and its text: `path` (which must exist) or, when
/// none is named, [`DEFAULT_CONFIG`] in the working directory if it exists.
pub(crate) fn read_config(path: Option<&Path>) -> anyhow::Result<Option<(PathBuf, String)>> {
    let (file, named) = match path {
        Some(path) => (path.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(Some((file, text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => Ok(None),
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot read the configuration file {} (--config / JOBWIRE_CONFIG)",
                file.display()
            )
        }),
    }
}

/// Registers the webhooks of `text` (the contents of `file`) in `registry`,
/// their secrets read through `env`; the first error found is returned.
pub(crate) fn add_webhooks(
    registry: &mut Registry,
    file: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    let config: ConfigFile = toml::from_str(text)
        .with_context(|| format!("{} is not a valid jobwire configuration", file.display()))?;
    for (name, table) in config.handlers {
        let webhook = webhook(&name, table, &env, registry).with_context(|| {
            format!(
                "{}: handler `{name}` (section [handlers.{name}])",
                file.display()
            )
        })?;
        tracing::info!(job_type = %name, webhook = ?webhook, "jobs of this type go to a webhook");
        registry.register(&name, webhook);
    }
    Ok(())
}

fn webhook(
    name: &str,
    table: toml::Value,
    env: &impl Fn(&str) -> Option<String>,
    registry: &Registry,
) -> anyhow::Result<Webhook> {
    name.parse::<JobType>()
        .map_err(|e| anyhow::anyhow!("not a job type: {e}"))?;
    if registry.contains(name) {
        anyhow::bail!(
            "`{name}` is a built-in handler, which a webhook may not replace: give the webhook \
             another job type"
        );
    }
    let config: WebhookConfig = table.try_into()?;
    let secret = match (config.secret, config.secret_env) {
        (Some(_), Some(_)) => anyhow::bail!("set `secret` or `secret_env`, not both"),
        (Some(secret), None) => secret,
        (None, Some(variable)) => env(&variable)
            .filter(|secret| !secret.is_empty())
            .with_context(|| {
                format!("`secret_env` names the environment variable {variable}, which is not set")
            })?,
        (None, None) => anyhow::bail!(
            "no secret: set `secret_env` to the environment variable that holds the secret the \
             requests are signed with"
        ),
    };
    let mut webhook = Webhook::new(&config.url, secret)?;
    if let Some(timeout) = config.timeout {
        let timeout = humantime::parse_duration(&timeout)
            .with_context(|| format!("timeout `{timeout}` is not a duration such as 10s"))?;
        webhook = webhook.timeout(timeout)?;
    }
    for (header, value) in &config.headers {
        webhook = webhook.header(header, value)?;
    }
    Ok(webhook)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails right there")]

    use super::*;

    /// The error of loading `text`, with the environment holding `HOOK_SECRET` only.
    fn refusal(text: &str) -> String {
        let mut registry = Registry::with_builtins();
        let env = |name: &str| (name == "HOOK_SECRET").then(|| "s3cret".to_owned());
        let error =
            add_webhooks(&mut registry, Path::new("conf/jobwire.toml"), text, env).unwrap_err();
        format!("{error:#}")
    }

    #[test]
    fn a_good_file_registers_its_webhooks() {
        let mut registry = Registry::with_builtins();
        let text = r#"
            [handlers.send-email]
            url = "http://127.0.0.1:8080/jobs/send-email"
            timeout = "10s"
            secret_env = "HOOK_SECRET"
            headers = { "x-api-key" = "k" }

            [handlers.resize]
            url = "http://127.0.0.1:8081/"
            secret = "inline"
        "#;
        let env = |name: &str| (name == "HOOK_SECRET").then(|| "s3cret".to_owned());
        add_webhooks(&mut registry, Path::new("jobwire.toml"), text, env).unwrap();
        assert!(registry.contains("send-email") && registry.contains("resize"));
        let empty = Registry::with_builtins();
        let mut same = empty.clone();
        add_webhooks(&mut same, Path::new("jobwire.toml"), "", |_| None).unwrap();
        assert_eq!(format!("{same:?}"), format!("{empty:?}"), "no handlers");
    }

    #[test]
    fn a_bad_handler_is_refused_naming_the_file_the_handler_and_the_fault() {
        let cases = [
            (
                "[handlers.a]\nurl = \"http://x/\"\nsecret = \"s\"\nurll = 1",
                "unknown field `urll`",
            ),
            (
                "[handlers.a]\nurl = \"localhost:80/x\"\nsecret = \"s\"",
                "scheme is `localhost`",
            ),
            ("[handlers.a]\nurl = \"nope\"\nsecret = \"s\"", "not a URL"),
            (
                "[handlers.a]\nurl = \"http://x/\"\nsecret_env = \"MISSING_SECRET\"",
                "MISSING_SECRET, which is not set",
            ),
            ("[handlers.a]\nurl = \"http://x/\"", "no secret"),
            (
                "[handlers.a]\nurl = \"http://x/\"\nsecret = \"s\"\nsecret_env = \"HOOK_SECRET\"",
                "not both",
            ),
            (
                "[handlers.a]\nurl = \"http://x/\"\nsecret = \"s\"\ntimeout = \"soon\"",
                "timeout `soon`",
            ),
            (
                "[handlers.a]\nurl = \"http://x/\"\nsecret = \"s\"\nheaders = { \"jobwire-attempt\" = \"1\" }",
                "set by jobwire",
            ),
            (
                "[handlers.echo]\nurl = \"http://x/\"\nsecret = \"s\"",
                "built-in handler",
            ),
        ];
        for (text, fault) in cases {
            let error = refusal(text);
            assert!(
                error.contains("conf/jobwire.toml") && error.contains("handler `"),
                "names the file and the handler: {error}"
            );
            assert!(error.contains(fault), "says `{fault}`: {error}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_configuration_is_refused_naming_it() {
        for (text, fault) in [
            ("[handlers", "TOML parse error"),
            (
                "[webhooks.a]\nurl = \"http://x/\"",
                "unknown field `webhooks`",
            ),
        ] {
            let error = refusal(text);
            assert!(
                error.contains("conf/jobwire.toml") && error.contains(fault),
                "{error}"
            );
        }
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error_naming_it() {
        let missing = std::env::temp_dir().join(format!("jobwire-{}.toml", uuid::Uuid::new_v4()));
        let error = format!("{:#}", read_config(Some(&missing)).unwrap_err());
        assert!(
            error.contains(&missing.display().to_string()) && error.contains("JOBWIRE_CONFIG"),
            "{error}"
        );
    }
}
