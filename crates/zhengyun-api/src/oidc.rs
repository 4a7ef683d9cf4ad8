//! Sign-in with the district's identity provider: the API accepts OpenID Connect tokens (JWTs)
//! from the issuers in `--oidc-config`, next to its own bearer tokens.
//!
//! A token is verified against its issuer's published keys ([`keys`]): signature, `iss`, `aud`
//! (one of the issuer's audiences), `exp` and `nbf` (30 s of clock skew allowed). Its claims then
//! name the caller's role and bureau ([`mapping`]). An unknown issuer, a bad signature, a wrong
//! audience, an expired or not yet valid token is 401; a valid identity that names no role, or
//! a bureau that does not exist, is 403.

pub mod config;
pub mod keys;
pub mod mapping;

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jiff::Timestamp;
use jsonwebtoken::{Validation, errors::ErrorKind};
use serde_json::Value;

use self::{
    config::{IssuerConfig, OidcConfig},
    keys::{IssuerKeys, KeyError},
    mapping::{Mapped, map_claims},
};

/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// The largest token looked at.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token makes no caller.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Not a valid token of a trusted issuer (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid identity with no role here (403).
    #[error("{0}")]
    Forbidden(String),
    /// The issuer's keys cannot be fetched and none are known (503).
    #[error("{0}")]
    Unavailable(String),
}

/// A verified caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Who, with what role, for which bureau.
    pub mapped: Mapped,
    /// The issuer's host (and port), which qualifies the subject.
    pub issuer_host: String,
    /// When the token expires.
    pub expires_at: Timestamp,
}

struct Issuer {
    config: IssuerConfig,
    keys: IssuerKeys,
}

/// The trusted issuers.
#[derive(Clone)]
pub struct Oidc(Arc<Vec<Issuer>>);

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|i| &i.config.issuer))
            .finish()
    }
}

/// Whether `token` has the shape of a JWT (three base64url parts): what is tried as one.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let shaped = |part: Option<&str>| {
        part.is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    token.starts_with("eyJ")
        && shaped(parts.next())
        && shaped(parts.next())
        && shaped(parts.next())
        && parts.next().is_none()
}

/// The claims of `token` before any verification: only to find its issuer.
fn unverified_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// Where a browser signs in with an issuer, and as whom.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The authorization endpoint.
    pub authorization: String,
    /// The token endpoint.
    pub token: String,
    /// The client id to sign in as.
    pub client_id: String,
}

impl Oidc {
    fn issuer(&self, index: usize) -> Result<&Issuer, String> {
        self.0
            .get(index)
            .ok_or_else(|| format!("no identity provider {index}"))
    }

    /// The sign-in endpoints of the `index`th issuer, from its discovery document.
    pub async fn endpoints(&self, index: usize) -> Result<Endpoints, String> {
        let issuer = self.issuer(index)?;
        let discovery = issuer.keys.discovery().await.map_err(|e| e.to_string())?;
        match (discovery.authorization_endpoint, discovery.token_endpoint) {
            (Some(authorization), Some(token)) => Ok(Endpoints {
                authorization,
                token,
                client_id: issuer.config.client_id().to_owned(),
            }),
            _ => Err(format!(
                "{} offers no browser sign-in (no authorization or token endpoint)",
                issuer.config.issuer
            )),
        }
    }

    /// Trades an authorization `code` (with its PKCE `verifier`) for the ID token at the
    /// `index`th issuer.
    pub async fn exchange_code(
        &self,
        index: usize,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<String, String> {
        let endpoints = self.endpoints(index).await?;
        let issuer = self.issuer(index)?;
        let (status, answer) = issuer
            .keys
            .post_form(
                &endpoints.token,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                    ("client_id", &endpoints.client_id),
                    ("code_verifier", verifier),
                ],
            )
            .await
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "the identity provider refused the sign-in: {} {}",
                answer["error"].as_str().unwrap_or_default(),
                answer["error_description"].as_str().unwrap_or_default()
            ));
        }
        answer["id_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the identity provider gave no ID token".to_owned())
    }

    /// The verifier of `config`'s issuers; fails if one's CA file cannot be read.
    pub fn new(config: &OidcConfig) -> Result<Self, String> {
        let issuers = config
            .issuers
            .iter()
            .map(|c| {
                Ok(Issuer {
                    keys: IssuerKeys::new(c)?,
                    config: c.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self(Arc::new(issuers)))
    }

    /// The issuers' configurations, for `GET /api/v1/auth/providers`.
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerConfig> {
        self.0.iter().map(|i| &i.config)
    }

    /// Verifies `token` and maps its claims.
    pub async fn verify(&self, token: &str) -> Result<Verified, Refusal> {
        let unauthenticated = |m: &str| Refusal::Unauthenticated(m.to_owned());
        if token.len() > MAX_TOKEN_LEN {
            return Err(unauthenticated("the token is too long"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated("the token is not a valid JWT"))?;
        let claims = unverified_claims(token)
            .ok_or_else(|| unauthenticated("the token is not a valid JWT"))?;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(issuer) = self.0.iter().find(|i| i.config.issuer == iss) else {
            return Err(Refusal::Unauthenticated(format!(
                "the token's issuer {iss:?} is not trusted here"
            )));
        };
        let key = issuer
            .keys
            .key(header.kid.as_deref())
            .await
            .map_err(|e| match e {
                KeyError::UnknownKey => Refusal::Unauthenticated(e.to_string()),
                KeyError::Unreachable { .. } => {
                    tracing::warn!(error = %e, "unable to fetch the identity provider's keys");
                    Refusal::Unavailable(
                        "the identity provider cannot be reached to check the token; retry later"
                            .to_owned(),
                    )
                }
            })?;
        if header.alg != key.algorithm {
            return Err(unauthenticated(
                "the token's algorithm is not its signing key's",
            ));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&issuer.config.issuer]);
        validation.set_audience(&issuer.config.audiences);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let verified =
            jsonwebtoken::decode::<Value>(token, &key.key, &validation).map_err(|e| {
                Refusal::Unauthenticated(
                    match e.kind() {
                        ErrorKind::ExpiredSignature => "the token has expired",
                        ErrorKind::ImmatureSignature => "the token is not valid yet",
                        ErrorKind::InvalidAudience => {
                            "the token is not meant for Zhengyun (its audience)"
                        }
                        ErrorKind::InvalidIssuer => "the token's issuer is not trusted here",
                        ErrorKind::InvalidSignature => "the token's signature does not verify",
                        ErrorKind::MissingRequiredClaim(_) => "the token lacks exp, iss or aud",
                        _ => "the token does not verify",
                    }
                    .to_owned(),
                )
            })?;
        let mapped = map_claims(&verified.claims, &issuer.config.claims)
            .map_err(|e| Refusal::Forbidden(e.to_string()))?;
        let exp = verified
            .claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| unauthenticated("the token's exp is not a number"))?;
        let expires_at = Timestamp::from_second(exp)
            .map_err(|_| unauthenticated("the token's exp is out of range"))?;
        let issuer_host = issuer
            .config
            .issuer
            .parse::<axum::http::Uri>()
            .ok()
            .and_then(|u| u.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| issuer.config.issuer.clone());
        Ok(Verified {
            mapped,
            issuer_host,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_base64url_parts_starting_like_a_json_header_are_taken_for_a_jwt() {
        assert!(looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        for not in [
            "zy_0123456789abcdef_secret",
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0",
            "eyJhbGciOiJFUzI1NiJ9..c2ln",
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln.x",
            "eyJ.a b.c",
        ] {
            assert!(!looks_like_jwt(not), "{not}");
        }
    }
}
