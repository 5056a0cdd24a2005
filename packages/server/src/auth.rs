use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobwire_core::TenantId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// The claims of a jobwire token: which tenant, until when, and the optional
/// standard claims the API can be told to require ([`TokenRules`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub tenant: TenantId,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Audience: whom the token is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Issuer: who made the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// The claims of a worker token (`role: worker`): which worker, the tenants
/// and job types it may take (`*`: any), until when. It grants the
/// `/v1/worker/` routes only, and no tenant's routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerClaims {
    /// Always `worker`.
    pub role: String,
    /// The worker's name, for logs and for counting live workers.
    pub sub: String,
    /// Tenant IDs, or `["*"]` for every tenant.
    pub tenants: Vec<String>,
    /// Job types, or `["*"]` for every type.
    pub types: Vec<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// The role a worker token names.
pub const WORKER_ROLE: &str = "worker";

/// The claims of an operator token (`role: operator`): who, until when. It
/// grants the operators' routes (`/v1/tenants`: every tenant's counts) and
/// nothing of any tenant's jobs, so that a token able to see across tenants
/// can neither read nor change a job, and a tenant's token never sees another
/// tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorClaims {
    /// Always `operator`.
    pub role: String,
    /// The operator's name, for logs.
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// The role an operator token names.
pub const OPERATOR_ROLE: &str = "operator";

/// What a token's claims are read for; `aud` and `iss` are checked by
/// jsonwebtoken itself, whatever their JSON shape. A tenant's token has a
/// `tenant`; a worker's has `role: worker` and its scope instead; an
/// operator's has `role: operator` (and `sub`).
#[derive(Deserialize)]
struct Verified {
    #[serde(default)]
    tenant: Option<TenantId>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    tenants: Option<Vec<String>>,
    #[serde(default)]
    types: Option<Vec<String>>,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
}

/// Who a valid token speaks for.
#[derive(Debug, Clone)]
pub(crate) enum Bearer {
    Tenant(TenantId),
    Worker(WorkerScope),
    /// An operator: sees every tenant's counts, no tenant's jobs.
    Operator,
}

impl Bearer {
    /// The tenant of a tenant's token; 403 for the other roles, which serve
    /// routes of their own and no tenant's.
    pub(crate) fn tenant(self) -> Result<TenantId, ApiError> {
        match self {
            Bearer::Tenant(tenant) => Ok(tenant),
            Bearer::Worker(_) => Err(ApiError::Forbidden(
                "this is a worker token: it serves the /v1/worker/ routes only; use a tenant's \
                 token here"
                    .into(),
            )),
            Bearer::Operator => Err(ApiError::Forbidden(
                "this is an operator token: it serves the operators' routes (/v1/tenants) only \
                 and no tenant's jobs; use a tenant's token here"
                    .into(),
            )),
        }
    }
}

/// What a worker token allows, checked once at the edge.
#[derive(Debug, Clone)]
pub(crate) struct WorkerScope {
    pub(crate) name: String,
    /// `None`: every tenant.
    pub(crate) tenants: Option<Vec<TenantId>>,
    /// `None`: every type.
    pub(crate) types: Option<Vec<jobwire_core::JobType>>,
}

/// `["*"]` as `None`, anything else parsed one by one.
fn scope<T: std::str::FromStr<Err = jobwire_core::InvalidValue>>(
    claim: &str,
    values: Vec<String>,
) -> Result<Option<Vec<T>>, ApiError> {
    if values.iter().any(|v| v == "*") {
        return Ok(None);
    }
    values
        .iter()
        .map(|v| {
            v.parse().map_err(|e| {
                ApiError::Unauthorized(format!("invalid token: `{claim}` holds {v:?}: {e}"))
            })
        })
        .collect::<Result<Vec<T>, _>>()
        .map(Some)
}

/// What every token must satisfy besides its signature and expiry, and what
/// [`JwtKeys::issue`] puts in the tokens it makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRules {
    /// The `aud` every token must carry. Unset: a token carrying one is
    /// refused, as RFC 7519 §4.1.3 asks of a recipient it does not name.
    pub audience: Option<String>,
    /// The `iss` every token must carry. Unset: not checked.
    pub issuer: Option<String>,
    /// The longest lifetime (`exp − iat`) a token may have; a token without
    /// `iat` or issued in the future is refused too. Unset: no limit.
    pub max_ttl: Option<Duration>,
}

/// The HS256 secret, ready to sign and verify, and the rules tokens obey.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    rules: TokenRules,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// The shortest HS256 secret accepted: 256 bits, the size of the hash
/// (RFC 7518 §3.2); a shorter one makes tokens easier to forge by brute force.
pub const MIN_SECRET_BYTES: usize = 32;

/// Clock skew tolerated between the issuer and this API, in seconds.
const LEEWAY_SECS: u64 = 5;

/// Why keys cannot be made, or a token issued.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the JWT secret is {len} bytes long: HS256 needs at least {MIN_SECRET_BYTES} bytes \
         (256 bits), or tokens can be forged by guessing it; make one with `openssl rand -hex 32`"
    )]
    WeakSecret { len: usize },
    #[error(
        "a token valid for {} would outlive the longest token lifetime accepted, {}",
        humantime::format_duration(*.ttl),
        humantime::format_duration(*.max)
    )]
    TtlTooLong { ttl: Duration, max: Duration },
}

impl JwtKeys {
    /// Keys from `secret`, which must hold at least [`MIN_SECRET_BYTES`],
    /// with no [`TokenRules`] beyond signature and expiry.
    pub fn new(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::WeakSecret { len: secret.len() });
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            rules: TokenRules::default(),
        })
    }

    /// These keys, verifying and issuing tokens by `rules`.
    pub fn with_rules(mut self, rules: TokenRules) -> Self {
        let mut required = vec!["exp"];
        if let Some(audience) = &rules.audience {
            self.validation.set_audience(&[audience]);
            required.push("aud");
        }
        if let Some(issuer) = &rules.issuer {
            self.validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        self.validation.set_required_spec_claims(&required);
        self.rules = rules;
        self
    }

    pub fn rules(&self) -> &TokenRules {
        &self.rules
    }

    /// A token for `tenant` valid for `ttl` from now, carrying the audience
    /// and issuer of the rules; refused when `ttl` is over their maximum.
    pub fn issue(&self, tenant: &TenantId, ttl: Duration) -> Result<String, KeyError> {
        if let Some(max) = self.rules.max_ttl
            && ttl > max
        {
            return Err(KeyError::TtlTooLong { ttl, max });
        }
        let now = now_secs();
        Ok(self.sign(&Claims {
            tenant: tenant.clone(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            aud: self.rules.audience.clone(),
            iss: self.rules.issuer.clone(),
        }))
    }

    /// A worker token for `name`, taking jobs of `tenants` and `types`
    /// (empty: any), valid for `ttl`; refused like [`JwtKeys::issue`].
    pub fn issue_worker(
        &self,
        name: &str,
        tenants: &[TenantId],
        types: &[jobwire_core::JobType],
        ttl: Duration,
    ) -> Result<String, KeyError> {
        if let Some(max) = self.rules.max_ttl
            && ttl > max
        {
            return Err(KeyError::TtlTooLong { ttl, max });
        }
        let all = |values: Vec<String>| {
            if values.is_empty() {
                vec!["*".to_owned()]
            } else {
                values
            }
        };
        let now = now_secs();
        let claims = WorkerClaims {
            role: WORKER_ROLE.to_owned(),
            sub: name.to_owned(),
            tenants: all(tenants.iter().map(|t| t.as_str().to_owned()).collect()),
            types: all(types.iter().map(|t| t.as_str().to_owned()).collect()),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            aud: self.rules.audience.clone(),
            iss: self.rules.issuer.clone(),
        };
        // HS256 signing of a plain struct has no failure mode.
        Ok(
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .expect("HS256 signing cannot fail"),
        )
    }

    /// An operator token for `name`, valid for `ttl`; refused like
    /// [`JwtKeys::issue`].
    pub fn issue_operator(&self, name: &str, ttl: Duration) -> Result<String, KeyError> {
        if let Some(max) = self.rules.max_ttl
            && ttl > max
        {
            return Err(KeyError::TtlTooLong { ttl, max });
        }
        let now = now_secs();
        let claims = OperatorClaims {
            role: OPERATOR_ROLE.to_owned(),
            sub: name.to_owned(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            aud: self.rules.audience.clone(),
            iss: self.rules.issuer.clone(),
        };
        // HS256 signing of a plain struct has no failure mode.
        Ok(
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .expect("HS256 signing cannot fail"),
        )
    }

    /// Signs arbitrary claims (for tokens with a chosen expiry).
    pub fn sign(&self, claims: &Claims) -> String {
        // HS256 signing of a plain struct has no failure mode.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The tenant of a valid tenant's token; 401 for anything else, 403 for
    /// a worker's or an operator's token.
    pub fn verify(&self, token: &str) -> Result<TenantId, ApiError> {
        self.verify_bearer(token)?.tenant()
    }

    /// Who a valid token speaks for; 401 for anything else.
    pub(crate) fn verify_bearer(&self, token: &str) -> Result<Bearer, ApiError> {
        let claims = jsonwebtoken::decode::<Verified>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?
            .claims;
        if let Some(max) = self.rules.max_ttl {
            let iat = claims.iat.ok_or_else(|| {
                ApiError::Unauthorized(
                    "invalid token: no `iat`; this API limits how long a token lives, so a \
                     token must say when it was issued"
                        .into(),
                )
            })?;
            if iat > now_secs() + LEEWAY_SECS {
                return Err(ApiError::Unauthorized(
                    "invalid token: its `iat` is in the future".into(),
                ));
            }
            let lifetime = Duration::from_secs(claims.exp.saturating_sub(iat));
            if lifetime > max {
                return Err(ApiError::Unauthorized(format!(
                    "invalid token: it lives {} (exp − iat), longer than the {} this API accepts",
                    humantime::format_duration(lifetime),
                    humantime::format_duration(max)
                )));
            }
        }
        match (claims.role.as_deref(), claims.tenant) {
            (Some(WORKER_ROLE), _) => Ok(Bearer::Worker(WorkerScope {
                name: claims.sub.unwrap_or_else(|| "anonymous".into()),
                tenants: scope("tenants", claims.tenants.unwrap_or_default())?,
                types: scope("types", claims.types.unwrap_or_default())?,
            })),
            (Some(OPERATOR_ROLE), _) => Ok(Bearer::Operator),
            (Some(role), _) => Err(ApiError::Unauthorized(format!(
                "invalid token: unknown role {role:?} (known: {WORKER_ROLE}, {OPERATOR_ROLE})"
            ))),
            (None, Some(tenant)) => Ok(Bearer::Tenant(tenant)),
            (None, None) => Err(ApiError::Unauthorized(
                "invalid token: missing field `tenant`".into(),
            )),
        }
    }
}

/// Seconds since the Unix epoch (0 on a clock set before it).
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
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
