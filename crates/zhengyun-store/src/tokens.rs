//! API bearer tokens and the principals they stand for.
//!
//! A secret is `zy_<id>_<43 characters of base64url>`: the id is 16 hex digits (8 random
//! bytes, not secret, shown in listings and audit entries), the tail 32 bytes from the
//! operating system's CSPRNG. Only SHA-256 of the whole secret is stored: the secret has 256
//! bits of entropy, so a slow password hash would add nothing. [`Store::authenticate`] looks the
//! row up by the id and compares hashes in constant time, so response timing reveals nothing
//! about the secret.
//!
//! The bootstrap token (`ZHENGYUN_BOOTSTRAP_TOKEN`) is chosen by the operator, so it has any
//! shape; it is the row with id `bootstrap`, tried when a secret is not of the form above or
//! names no token.

use std::{fmt, str::FromStr};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zhengyun_model::names::check_bureau_code;

use crate::{
    PoolExt, Store,
    error::{Error, Result, db},
    time::{from_micros, now_micros},
    with_pool,
};

/// What a token may do. Bureau roles are scoped to one bureau; the others are platform-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Onboards bureaus, sets quotas, approves requests, issues tokens.
    PlatformAdmin,
    /// Manages the environments of one bureau.
    BureauAdmin,
    /// Reads the environments, usage and bill of one bureau.
    BureauViewer,
    /// Reads every bureau's usage and statements.
    Finance,
    /// Reads the audit log and verifies it.
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::PlatformAdmin,
        Role::BureauAdmin,
        Role::BureauViewer,
        Role::Finance,
        Role::Auditor,
    ];

    /// `platform-admin`, `bureau-admin`, `bureau-viewer`, `finance` or `auditor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform-admin",
            Role::BureauAdmin => "bureau-admin",
            Role::BureauViewer => "bureau-viewer",
            Role::Finance => "finance",
            Role::Auditor => "auditor",
        }
    }

    /// Whether a token of this role belongs to exactly one bureau.
    pub fn is_bureau_scoped(self) -> bool {
        matches!(self, Role::BureauAdmin | Role::BureauViewer)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                Error::invalid(
                    "role",
                    format!(
                        "unknown role {text:?}, expected platform-admin, bureau-admin, \
                         bureau-viewer, finance or auditor"
                    ),
                )
            })
    }
}

/// The public name of a token: 16 lowercase hex digits, or `bootstrap`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenId(String);

const BOOTSTRAP_ID: &str = "bootstrap";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const SECRET_PREFIX: &str = "zy_";
/// The shortest bootstrap secret accepted: it may be a human's choice, so insist on length.
pub const MIN_BOOTSTRAP_SECRET_LEN: usize = 32;
const MAX_DESCRIPTION_LEN: usize = 200;

impl TokenId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the bootstrap token.
    pub fn bootstrap() -> Self {
        Self(BOOTSTRAP_ID.to_owned())
    }

    fn is_generated(text: &str) -> bool {
        text.len() == ID_BYTES * 2
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TokenId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        if text == BOOTSTRAP_ID || Self::is_generated(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Error::invalid(
                "token id",
                "expected 16 lowercase hex digits or \"bootstrap\"",
            ))
        }
    }
}

impl TryFrom<String> for TokenId {
    type Error = Error;

    fn try_from(text: String) -> Result<Self> {
        text.parse()
    }
}

impl From<TokenId> for String {
    fn from(id: TokenId) -> Self {
        id.0
    }
}

/// A token's secret, returned once by [`Store::create_token`]. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// The secret, to show the caller once (`Authorization: Bearer …`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(…)")
    }
}

/// Who is calling: what an authenticated token stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    /// The token used.
    pub token: TokenId,
    /// Its role.
    pub role: Role,
    /// The bureau of a bureau role; `None` for platform-wide roles.
    pub bureau: Option<String>,
}

/// A token as listed: everything but the secret, which is not stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// The token's id.
    pub id: TokenId,
    /// Its role.
    pub role: Role,
    /// Its bureau, for bureau roles.
    pub bureau: Option<String>,
    /// What it is for, as given when it was issued.
    pub description: String,
    /// When it was issued (to the microsecond).
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// What [`Store::bootstrap_admin`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// The bootstrap token did not exist and now does.
    Created,
    /// It already existed with this secret.
    Unchanged,
    /// It existed with another secret, which no longer works; this one does.
    Replaced,
    /// It exists with this secret but was revoked, and stays revoked: restarting must not undo
    /// an administrator's revocation. Set a new secret to bootstrap again.
    Revoked,
}

fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(Error::Random)?;
    Ok(bytes)
}

/// The id named by a secret of the generated form, if it is one.
fn id_of(secret: &str) -> Option<&str> {
    let (id, _) = secret.strip_prefix(SECRET_PREFIX)?.split_once('_')?;
    TokenId::is_generated(id).then_some(id)
}

fn check_scope(role: Role, bureau: Option<&str>) -> Result<()> {
    match (role.is_bureau_scoped(), bureau) {
        (true, Some(bureau)) => check_bureau_code(bureau).map_err(|e| Error::invalid("bureau", e)),
        (true, None) => Err(Error::invalid(
            "bureau",
            format!("a {role} token must name its bureau"),
        )),
        (false, Some(_)) => Err(Error::invalid(
            "bureau",
            format!("a {role} token is platform-wide and takes no bureau"),
        )),
        (false, None) => Ok(()),
    }
}

type TokenRow = (String, Vec<u8>, String, Option<String>, Option<i64>);

impl Store {
    /// Issues a token for `role` (and `bureau`, required for bureau roles and refused for the
    /// others). Returns its id and its secret; the secret cannot be recovered later.
    pub async fn create_token(
        &self,
        role: Role,
        bureau: Option<&str>,
        description: &str,
    ) -> Result<(TokenId, TokenSecret)> {
        check_scope(role, bureau)?;
        if description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(Error::invalid(
                "description",
                format!("longer than {MAX_DESCRIPTION_LEN} characters"),
            ));
        }
        // 64 random bits make a clash practically impossible; a few retries make it harmless.
        for _ in 0..3 {
            let id = hex::encode(random::<ID_BYTES>()?);
            let tail = URL_SAFE_NO_PAD.encode(random::<SECRET_BYTES>()?);
            let secret = format!("{SECRET_PREFIX}{id}_{tail}");
            let hash = sha256(&secret).to_vec();
            let inserted = with_pool!(self, pool => sqlx::query(
                "INSERT INTO api_tokens (id, secret_sha256, role, bureau, description, created_at_us) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(hash)
            .bind(role.as_str())
            .bind(bureau)
            .bind(description)
            .bind(now_micros())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
            .map_err(db("issuing a token"))?;
            if inserted == 1 {
                return Ok((TokenId(id), TokenSecret(secret)));
            }
        }
        Err(Error::Conflict(
            "three random token ids in a row were taken".to_owned(),
        ))
    }

    /// The principal `secret` stands for, or `None` if it is unknown, wrong or revoked.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>> {
        let presented = sha256(secret);
        if let Some(id) = id_of(secret)
            && let Some(principal) = self.match_token(id, &presented).await?
        {
            return Ok(Some(principal));
        }
        self.match_token(BOOTSTRAP_ID, &presented).await
    }

    async fn match_token(&self, id: &str, presented: &[u8; 32]) -> Result<Option<Principal>> {
        let row: Option<TokenRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT id, secret_sha256, role, bureau, revoked_at_us FROM api_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)
        .map_err(db("authenticating a token"))?;
        let Some((id, stored, role, bureau, revoked_at)) = row else {
            return Ok(None);
        };
        let matches: bool = stored.as_slice().ct_eq(presented.as_slice()).into();
        if !matches || revoked_at.is_some() {
            return Ok(None);
        }
        Ok(Some(Principal {
            token: TokenId(id),
            role: stored_role(&role)?,
            bureau,
        }))
    }

    /// Revokes token `id`; it stops authenticating at once. Revoking twice is not an error
    /// and keeps the first revocation time.
    pub async fn revoke_token(&self, id: &TokenId) -> Result<()> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE api_tokens SET revoked_at_us = COALESCE(revoked_at_us, $2) WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(now_micros())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(db("revoking a token"))?;
        if updated == 0 {
            return Err(Error::NotFound(format!("token {id}")));
        }
        Ok(())
    }

    /// Every token ever issued, oldest first, revoked ones included. Never the secrets.
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        type Row = (String, String, Option<String>, String, i64, Option<i64>);
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query_as(
            "SELECT id, role, bureau, description, created_at_us, revoked_at_us \
             FROM api_tokens ORDER BY created_at_us, id",
        )
        .fetch_all(pool)
        .await)
        .map_err(db("listing tokens"))?;
        rows.into_iter()
            .map(|(id, role, bureau, description, created, revoked)| {
                Ok(TokenInfo {
                    id: TokenId(id),
                    role: stored_role(&role)?,
                    bureau,
                    description,
                    created_at: from_micros(created, "a token")?,
                    revoked_at: revoked.map(|r| from_micros(r, "a token")).transpose()?,
                })
            })
            .collect()
    }

    /// Registers `secret` as the platform-admin token `bootstrap`, idempotently: run it at
    /// every start with `ZHENGYUN_BOOTSTRAP_TOKEN`. The secret must be at least
    /// [`MIN_BOOTSTRAP_SECRET_LEN`] characters.
    pub async fn bootstrap_admin(&self, secret: &str) -> Result<BootstrapOutcome> {
        if secret.chars().count() < MIN_BOOTSTRAP_SECRET_LEN {
            return Err(Error::invalid(
                "bootstrap token",
                format!(
                    "shorter than {MIN_BOOTSTRAP_SECRET_LEN} characters; generate one, e.g. \
                     `openssl rand -hex 32`"
                ),
            ));
        }
        let hash = sha256(secret).to_vec();
        let now = now_micros();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(db("bootstrapping the admin token"))?;
            let existing: Option<(Vec<u8>, Option<i64>)> = sqlx::query_as(
                "SELECT secret_sha256, revoked_at_us FROM api_tokens WHERE id = $1",
            )
            .bind(BOOTSTRAP_ID)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("bootstrapping the admin token"))?;
            let (outcome, sql) = match existing {
                None => (
                    BootstrapOutcome::Created,
                    "INSERT INTO api_tokens (id, secret_sha256, role, description, created_at_us) \
                     VALUES ($1, $2, 'platform-admin', 'bootstrap (ZHENGYUN_BOOTSTRAP_TOKEN)', $3) \
                     ON CONFLICT (id) DO NOTHING",
                ),
                Some((stored, revoked)) => {
                    let same: bool = stored.as_slice().ct_eq(hash.as_slice()).into();
                    match (same, revoked) {
                        (true, None) => (BootstrapOutcome::Unchanged, ""),
                        (true, Some(_)) => (BootstrapOutcome::Revoked, ""),
                        (false, _) => (
                            BootstrapOutcome::Replaced,
                            "UPDATE api_tokens SET secret_sha256 = $2, created_at_us = $3, \
                             revoked_at_us = NULL WHERE id = $1",
                        ),
                    }
                }
            };
            if !sql.is_empty() {
                sqlx::query(sql)
                    .bind(BOOTSTRAP_ID)
                    .bind(&hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("bootstrapping the admin token"))?;
            }
            tx.commit().await.map_err(db("bootstrapping the admin token"))?;
            Ok(outcome)
        })
    }
}

fn stored_role(text: &str) -> Result<Role> {
    text.parse()
        .map_err(|_| Error::Corrupt(format!("a token has the unknown role {text:?}")))
}
