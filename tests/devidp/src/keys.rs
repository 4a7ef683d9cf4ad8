//! The provider's signing keys: ES256 (ECDSA over P-256 with SHA-256), one PKCS#8 PEM file each
//! in `keys/` of the state directory, numbered in the order they were made. The newest signs;
//! every key found there is published in the JWKS, so tokens signed before a rotation still
//! verify. A key is retired by deleting its file while the provider is stopped.
//!
//! A key's `kid` is its JWK thumbprint (RFC 7638), so it follows from the key alone.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};

use crate::tokens::Claims;
use crate::{Error, Result, files};

const PEM_TAG: &str = "PRIVATE KEY";

/// One P-256 private key and what the JWKS says of it.
pub struct SigningKey {
    jwk: Jwk,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key and its PKCS#8 document.
    fn generate() -> Result<(Self, Vec<u8>), String> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| "the system's random source failed".to_string())?;
        let key = Self::from_pkcs8(pkcs8.as_ref())?;
        Ok((key, pkcs8.as_ref().to_vec()))
    }

    /// The key of a PKCS#8 document, which must hold a P-256 key.
    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, String> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|rejected| format!("not a P-256 PKCS#8 key ({rejected})"))?;
        // An uncompressed SEC1 point: 0x04, then x and y of 32 bytes each.
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        Ok(Self {
            jwk: Jwk::es256(URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y)),
            encoding: EncodingKey::from_ec_der(pkcs8),
        })
    }

    /// The key's id, its JWK thumbprint.
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public half as published in the JWKS.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// `claims` as a compact JWS whose header names `kid`.
    fn sign_as(&self, kid: &str, claims: &Claims) -> Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(Error::Sign)
    }
}

/// A public key as RFC 7517 writes it, restricted to what ES256 needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `EC`.
    pub kty: String,
    /// Always `P-256`.
    pub crv: String,
    /// The point's x coordinate, base64url without padding.
    pub x: String,
    /// The point's y coordinate, base64url without padding.
    pub y: String,
    /// The RFC 7638 thumbprint of the above.
    pub kid: String,
    /// Always `ES256`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub usage: String,
}

impl Jwk {
    fn es256(x: String, y: String) -> Self {
        // RFC 7638: the required members, in lexicographic order, without whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        Self {
            kty: "EC".into(),
            crv: "P-256".into(),
            kid: URL_SAFE_NO_PAD.encode(thumbprint),
            x,
            y,
            alg: "ES256".into(),
            usage: "sig".into(),
        }
    }
}

/// The body of `/jwks`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JwkSet {
    /// Every published key, oldest first.
    pub keys: Vec<Jwk>,
}

/// The keys of the state directory, oldest first; the last one signs.
#[derive(Debug)]
pub struct KeyRing {
    dir: PathBuf,
    keys: Mutex<Vec<(u32, Arc<SigningKey>)>>,
}

impl KeyRing {
    /// Loads the keys of `dir`, making it and a first key if there are none.
    pub fn open(dir: &Path) -> Result<Self> {
        files::ensure_dir(dir)?;
        let mut keys = Vec::new();
        let entries = fs::read_dir(dir).map_err(|source| files::io_error("list", dir, source))?;
        for entry in entries {
            let path = entry
                .map_err(|source| files::io_error("list", dir, source))?
                .path();
            if let Some(number) = key_number(&path) {
                keys.push((number, Arc::new(load(&path)?)));
            }
        }
        keys.sort_by_key(|(number, _)| *number);
        let ring = Self {
            dir: dir.to_owned(),
            keys: Mutex::new(keys),
        };
        if ring.lock().is_empty() {
            ring.rotate()?;
        }
        Ok(ring)
    }

    /// Makes and saves a new key, which signs from now on; returns its kid.
    pub fn rotate(&self) -> Result<String> {
        let mut keys = self.lock();
        let number = keys.last().map_or(1, |(number, _)| number + 1);
        let path = self.dir.join(format!("{number:04}.pem"));
        let (key, pkcs8) = SigningKey::generate().map_err(|reason| Error::SigningKey {
            path: path.clone(),
            reason,
        })?;
        let document = pem::encode_config(
            &pem::Pem::new(PEM_TAG, pkcs8),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        files::create_private(&path, document.as_bytes())?;
        let kid = key.kid().to_owned();
        keys.push((number, Arc::new(key)));
        Ok(kid)
    }

    /// The key that signs now.
    pub fn current(&self) -> Arc<SigningKey> {
        let keys = self.lock();
        let (_, key) = keys
            .last()
            .expect("a key ring always holds a key once opened");
        Arc::clone(key)
    }

    /// Every key, oldest first, as the JWKS publishes them.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .lock()
                .iter()
                .map(|(_, key)| key.jwk().clone())
                .collect(),
        }
    }

    /// `claims` signed by the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let key = self.current();
        key.sign_as(key.kid(), claims)
    }

    /// `claims` signed by a throwaway key that no JWKS publishes, under the current key's kid:
    /// a verifier finds a key for the token and then rejects its signature.
    pub fn sign_foreign(&self, claims: &Claims) -> Result<String> {
        let (stranger, _) = SigningKey::generate().map_err(|reason| Error::SigningKey {
            path: PathBuf::from("(in memory)"),
            reason,
        })?;
        stranger.sign_as(self.current().kid(), claims)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u32, Arc<SigningKey>)>> {
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sequence number of a key file, `0001.pem` → 1; `None` for anything else.
fn key_number(path: &Path) -> Option<u32> {
    if path.extension()? != "pem" {
        return None;
    }
    path.file_stem()?.to_str()?.parse().ok()
}

fn load(path: &Path) -> Result<SigningKey> {
    let rejected = |reason: String| Error::SigningKey {
        path: path.to_owned(),
        reason,
    };
    let document = pem::parse(files::read(path)?).map_err(|error| rejected(error.to_string()))?;
    if document.tag() != PEM_TAG {
        return Err(rejected(format!("a PEM block of type {}", document.tag())));
    }
    SigningKey::from_pkcs8(document.contents()).map_err(rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_ring_makes_one_private_key_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ring = KeyRing::open(dir.path()).expect("the ring opens");
        assert_eq!(ring.jwks().keys.len(), 1);
        let mode = fs::metadata(dir.path().join("0001.pem"))
            .expect("the key file exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_newest_key_signs_and_the_older_ones_stay_published_across_reopening() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let first = KeyRing::open(dir.path())
            .expect("the ring opens")
            .current()
            .kid()
            .to_owned();
        let second = KeyRing::open(dir.path())
            .expect("the ring reopens")
            .rotate()
            .expect("rotates");
        let ring = KeyRing::open(dir.path()).expect("the ring reopens");
        assert_ne!(first, second);
        assert_eq!(ring.current().kid(), second);
        let kids: Vec<_> = ring.jwks().keys.into_iter().map(|jwk| jwk.kid).collect();
        assert_eq!(kids, vec![first, second]);
    }

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ring = KeyRing::open(dir.path()).expect("the ring opens");
        let ours = ring.current().jwk().clone();
        let theirs: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(serde_json::to_value(&ours).expect("serializes"))
                .expect("jsonwebtoken reads the JWK");
        let thumbprint = theirs
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .expect("a thumbprint");
        assert_eq!(ours.kid, thumbprint);
    }

    #[test]
    fn a_signed_token_verifies_with_an_independent_ecdsa_implementation() {
        use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ring_of_keys = KeyRing::open(dir.path()).expect("the ring opens");
        let claims = Claims {
            iss: "https://127.0.0.1:5556".into(),
            sub: "zhaolei".into(),
            aud: "zhengyun".into(),
            exp: 2,
            iat: 1,
            nbf: 1,
            name: "赵磊".into(),
            preferred_username: "zhaolei".into(),
            email: None,
            groups: vec!["zhengyun:auditor".into()],
            nonce: None,
        };
        let token = ring_of_keys.sign(&claims).expect("signs");
        let (signed, signature) = token.rsplit_once('.').expect("a compact JWS");
        let jwk = ring_of_keys.current().jwk().clone();
        let mut point = vec![4];
        point.extend(URL_SAFE_NO_PAD.decode(&jwk.x).expect("x is base64url"));
        point.extend(URL_SAFE_NO_PAD.decode(&jwk.y).expect("y is base64url"));
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .expect("the signature is base64url");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(signed.as_bytes(), &signature)
            .expect("ring accepts the signature over the header and claims");
        let stranger = ring_of_keys.sign_foreign(&claims).expect("signs");
        let (signed, signature) = stranger.rsplit_once('.').expect("a compact JWS");
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .expect("the signature is base64url");
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                .verify(signed.as_bytes(), &signature)
                .is_err()
        );
    }

    #[test]
    fn a_file_that_is_not_a_private_key_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        fs::write(
            dir.path().join("0001.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("writes");
        assert!(matches!(
            KeyRing::open(dir.path()),
            Err(Error::SigningKey { .. })
        ));
    }
}
