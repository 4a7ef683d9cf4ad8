//! An issuer's signing keys: found through its discovery document, fetched from its JWKS,
//! kept for [`MAX_KEY_AGE`], and fetched again at once when a token names a key not seen yet
//! (a key rotated in at the provider), at most once per [`MIN_UNKNOWN_KEY_REFRESH`].

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet},
};
use serde::Deserialize;

use super::config::IssuerConfig;

/// How long fetched keys are used before they are fetched again.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(300);

/// The least time between two fetches caused by tokens naming unknown keys.
pub const MIN_UNKNOWN_KEY_REFRESH: Duration = Duration::from_secs(1);

/// How long one fetch from the provider may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest discovery document or key set read.
const MAX_DOCUMENT: usize = 1 << 20;

/// Why no key verifies a token.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The provider could not be reached or answered nonsense.
    #[error("the identity provider {issuer} cannot be reached: {detail}")]
    Unreachable {
        /// The issuer.
        issuer: String,
        /// What went wrong.
        detail: String,
    },
    /// The provider has no such key.
    #[error("the token was signed with a key its issuer does not publish")]
    UnknownKey,
}

/// A key and the one algorithm it verifies.
#[derive(Clone)]
pub struct Key {
    /// The key.
    pub key: DecodingKey,
    /// Its algorithm.
    pub algorithm: Algorithm,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Cached {
    keys: Arc<HashMap<String, Key>>,
    fetched: Option<Instant>,
    unknown_refresh: Option<Instant>,
}

/// The keys of one issuer.
pub struct IssuerKeys {
    issuer: String,
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    cached: RwLock<Cached>,
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The parts of a discovery document the API uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    /// The issuer.
    pub issuer: String,
    /// Where the keys are.
    pub jwks_uri: String,
    /// Where a browser signs in.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Where a code is traded for tokens.
    #[serde(default)]
    pub token_endpoint: Option<String>,
}

impl IssuerKeys {
    /// Keys of `config`'s issuer, fetched on first use; fails if its CA file cannot be read.
    pub fn new(config: &IssuerConfig) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let tls = match &config.ca_file {
            Some(path) => {
                use rustls::pki_types::{CertificateDer, pem::PemObject};
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("caFile {}: {e}", path.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("caFile {}: {e}", path.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("caFile {}: {e}", path.display()))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            issuer: config.issuer.clone(),
            http: Client::builder(TokioExecutor::new()).build(https),
            cached: RwLock::new(Cached::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn cached(&self) -> std::sync::RwLockReadGuard<'_, Cached> {
        self.cached
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key `kid` names (the only key, when the token names none).
    pub async fn key(&self, kid: Option<&str>) -> Result<Key, KeyError> {
        let pick = |keys: &HashMap<String, Key>| match kid {
            Some(kid) => keys.get(kid).cloned(),
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        };
        let (fresh, found, may_refresh, seen) = {
            let cached = self.cached();
            let fresh = cached.fetched.is_some_and(|at| at.elapsed() < MAX_KEY_AGE);
            let may_refresh = cached
                .unknown_refresh
                .is_none_or(|at| at.elapsed() >= MIN_UNKNOWN_KEY_REFRESH);
            (fresh, pick(&cached.keys), may_refresh, cached.fetched)
        };
        match (fresh, found) {
            (true, Some(key)) => return Ok(key),
            (true, None) if !may_refresh => return Err(KeyError::UnknownKey),
            _ => {}
        }
        let _one_fetch = self.fetching.lock().await;
        // Another caller may have fetched while this one waited: its keys answer.
        {
            let cached = self.cached();
            if cached.fetched != seen && cached.fetched.is_some() {
                return pick(&cached.keys).ok_or(KeyError::UnknownKey);
            }
        }
        let keys = self.fetch().await;
        let mut cached = self
            .cached
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if fresh {
            cached.unknown_refresh = Some(now);
        }
        match keys {
            Ok(keys) => {
                cached.keys = Arc::new(keys);
                cached.fetched = Some(now);
                pick(&cached.keys).ok_or(KeyError::UnknownKey)
            }
            // Keys fetched before still verify while the provider is away.
            Err(error) => pick(&cached.keys).ok_or(error),
        }
    }

    /// The issuer's discovery document, checked to name this issuer.
    pub async fn discovery(&self) -> Result<Discovery, KeyError> {
        let unreachable = |detail: String| KeyError::Unreachable {
            issuer: self.issuer.clone(),
            detail,
        };
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let discovery: Discovery = serde_json::from_slice(&self.get(&discovery_url).await?)
            .map_err(|e| unreachable(format!("its discovery document: {e}")))?;
        if discovery.issuer != self.issuer {
            return Err(unreachable(format!(
                "its discovery document names the issuer {:?}",
                discovery.issuer
            )));
        }
        Ok(discovery)
    }

    /// POSTs the form `fields` to `url` of the provider; its JSON answer and status.
    pub async fn post_form(
        &self,
        url: &str,
        fields: &[(&str, &str)],
    ) -> Result<(axum::http::StatusCode, serde_json::Value), KeyError> {
        let unreachable = |detail: String| KeyError::Unreachable {
            issuer: self.issuer.clone(),
            detail,
        };
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = axum::http::Request::post(url)
            .header(
                axum::http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(axum::http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| unreachable(format!("{url}: {e}")))?;
        let answer = tokio::time::timeout(FETCH_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| unreachable(format!("{url}: no answer in {FETCH_TIMEOUT:?}")))?
            .map_err(|e| unreachable(format!("{url}: {e}")))?;
        let status = answer.status();
        let body = Limited::new(answer.into_body(), MAX_DOCUMENT)
            .collect()
            .await
            .map_err(|e| unreachable(format!("{url}: {e}")))?
            .to_bytes();
        Ok((status, serde_json::from_slice(&body).unwrap_or_default()))
    }

    async fn fetch(&self) -> Result<HashMap<String, Key>, KeyError> {
        let unreachable = |detail: String| KeyError::Unreachable {
            issuer: self.issuer.clone(),
            detail,
        };
        let discovery = self.discovery().await?;
        let set: JwkSet = serde_json::from_slice(&self.get(&discovery.jwks_uri).await?)
            .map_err(|e| unreachable(format!("its key set: {e}")))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(algorithm) = algorithm_of(jwk) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            keys.insert(kid, Key { key, algorithm });
        }
        tracing::info!(issuer = %self.issuer, keys = keys.len(), "fetched the identity provider's keys");
        Ok(keys)
    }

    async fn get(&self, url: &str) -> Result<Bytes, KeyError> {
        let unreachable = |detail: String| KeyError::Unreachable {
            issuer: self.issuer.clone(),
            detail,
        };
        let uri: axum::http::Uri = url
            .parse()
            .map_err(|_| unreachable(format!("{url:?} is not a URL")))?;
        let answer = tokio::time::timeout(FETCH_TIMEOUT, self.http.get(uri))
            .await
            .map_err(|_| unreachable(format!("{url}: no answer in {FETCH_TIMEOUT:?}")))?
            .map_err(|e| unreachable(format!("{url}: {e}")))?;
        if !answer.status().is_success() {
            return Err(unreachable(format!("{url}: {}", answer.status())));
        }
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(answer.into_body(), MAX_DOCUMENT).collect(),
        )
        .await
        .map_err(|_| {
            unreachable(format!(
                "{url}: the answer took longer than {FETCH_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| unreachable(format!("{url}: {e}")))?;
        Ok(body.to_bytes())
    }
}

/// The one asymmetric algorithm a published key verifies; `None` for keys not for signatures
/// or of a kind not accepted (symmetric keys above all: a public "secret" would let anyone
/// sign).
fn algorithm_of(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    use jsonwebtoken::jwk::{KeyAlgorithm, PublicKeyUse};
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let declared = jwk.common.key_algorithm.and_then(|alg| match alg {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::RS384 => Some(Algorithm::RS384),
        KeyAlgorithm::RS512 => Some(Algorithm::RS512),
        KeyAlgorithm::PS256 => Some(Algorithm::PS256),
        KeyAlgorithm::PS384 => Some(Algorithm::PS384),
        KeyAlgorithm::PS512 => Some(Algorithm::PS512),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        KeyAlgorithm::ES384 => Some(Algorithm::ES384),
        KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
        _ => None,
    });
    match (&jwk.algorithm, declared) {
        (AlgorithmParameters::RSA(_), Some(alg))
            if matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) =>
        {
            Some(alg)
        }
        (AlgorithmParameters::RSA(_), None) => Some(Algorithm::RS256),
        (AlgorithmParameters::EllipticCurve(ec), declared) => {
            let by_curve = match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return None,
            };
            (declared.is_none() || declared == Some(by_curve)).then_some(by_curve)
        }
        (AlgorithmParameters::OctetKeyPair(_), None | Some(Algorithm::EdDSA)) => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    }
}
