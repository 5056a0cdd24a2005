use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::InvalidValue;

/// A job's identity: a UUIDv7, so IDs sort by creation time ("newest first" is
/// "highest ID first") and cursors can simply be IDs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh, time-ordered ID.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for JobId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| InvalidValue(format!("`{s}` is not a job ID (a UUID)")))
    }
}

/// The owner of a job: every read, list and update is scoped to one tenant.
/// 1 to 64 characters of `A-Z a-z 0-9 _ - . :`, so it is safe in logs and keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 64;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TenantId {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.chars().all(valid_char) {
            return Err(InvalidValue(format!(
                "`{s}` is not a tenant: use 1 to {} characters of A-Z a-z 0-9 _ - . :",
                Self::MAX_LEN
            )));
        }
        Ok(Self(s.to_owned()))
    }
}

impl utoipa::PartialSchema for TenantId {
    /// The same rules as [`TenantId::from_str`].
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "The owner of a job, named by the `tenant` claim of the token: 1 to 64 characters \
                 of A-Z a-z 0-9 _ - . :",
            ))
            .pattern(Some("^[A-Za-z0-9_.:-]{1,64}$"))
            .examples(["acme"])
            .into()
    }
}

impl utoipa::ToSchema for TenantId {}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_rejects_empty_long_and_odd_characters() {
        assert!("acme".parse::<TenantId>().is_ok());
        assert!("".parse::<TenantId>().is_err());
        assert!("a b".parse::<TenantId>().is_err());
        assert!("x".repeat(65).parse::<TenantId>().is_err());
    }

    #[test]
    fn job_ids_sort_by_creation() {
        let a = JobId::new();
        let b = JobId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<JobId>(), Ok(a));
    }
}
