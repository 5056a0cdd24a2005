use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// A secret setting (the JWT secret): its `Debug` shows `Secret(***)`, so a
/// struct holding it can derive `Debug` and be logged without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the keys made from it ([`crate::JwtArgs::keys`]).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The JWT secret kept in `path` by [`load_or_create_secret`], if there is
/// one (a missing or empty file is `None`); never creates it, for readers
/// such as `jobwire token` that must sign with the server's own secret.
pub fn read_secret(path: &Path) -> anyhow::Result<Option<Secret>> {
    match std::fs::read_to_string(path) {
        Ok(secret) if !secret.trim().is_empty() => Ok(Some(Secret(secret.trim().to_owned()))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The JWT secret kept in `path`, created (random, readable by the owner
/// only) on first use, so that tokens survive restarts of the embedded mode.
pub fn load_or_create_secret(path: &Path) -> anyhow::Result<Secret> {
    if let Some(secret) = read_secret(path)? {
        return Ok(secret);
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write the JWT secret to {}", path.display()))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the JWT secret to {}", path.display()))?;
    Ok(Secret(secret))
}
