use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobwire_core::TenantId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// The claims of a jobwire token: which tenant, until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub tenant: TenantId,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// The HS256 secret, ready to sign and verify.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

/// The shortest HS256 secret accepted: 256 bits, the size of the hash
/// (RFC 7518 §3.2); a shorter one makes tokens easier to forge by brute force.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why keys cannot be made, or a token issued.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the JWT secret is {len} bytes long: HS256 needs at least {MIN_SECRET_BYTES} bytes \
         (256 bits), or tokens can be forged by guessing it; make one with `openssl rand -hex 32`"
    )]
    WeakSecret { len: usize },
}

impl JwtKeys {
    /// Keys from `secret`, which must hold at least [`MIN_SECRET_BYTES`].
    pub fn new(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::WeakSecret { len: secret.len() });
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// A token for `tenant` valid for `ttl` from now.
    pub fn issue(&self, tenant: &TenantId, ttl: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.sign(&Claims {
            tenant: tenant.clone(),
            exp: (now + ttl).as_secs(),
        })
    }

    /// Signs arbitrary claims (for tokens with a chosen expiry).
    pub fn sign(&self, claims: &Claims) -> String {
        // HS256 signing of a plain struct has no failure mode.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The tenant of a valid token; 401 for anything else.
    pub fn verify(&self, token: &str) -> Result<TenantId, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims.tenant)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))
    }
}

/// The token of an `Authorization` header value `Bearer <token>`. The scheme
/// is case-insensitive (RFC 7235 §2.1): `bearer <token>` is the same.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_matched_whatever_its_case() {
        for value in ["Bearer t", "bearer t", "BEARER t", "Bearer  t "] {
            assert_eq!(bearer_token(value), Some("t"), "{value}");
        }
        for value in ["Basic t", "Bearer", "Bearer ", "Bearert", "t"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}
