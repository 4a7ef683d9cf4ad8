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
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zhengyun_model::names::check_bureau_code;

use crate::{
    PoolExt, Store,
    error::{Error, Result, db},
    time::{from_micros, now_micros, to_micros},
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
    /// Reads the audit log, verifies it, and lists tokens (never their secrets).
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
/// How long a token lives when its issuer does not say: 90 days. Also the lifetime the schema
/// migration gave tokens issued before tokens expired.
pub const DEFAULT_TOKEN_LIFETIME: SignedDuration = SignedDuration::from_hours(90 * 24);
/// The longest lifetime a token may be given: 365 days.
pub const MAX_TOKEN_LIFETIME: SignedDuration = SignedDuration::from_hours(365 * 24);

impl TokenId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the bootstrap token.
    pub fn bootstrap() -> Self {
        Self(BOOTSTRAP_ID.to_owned())
    }

    /// The name of a person signed in through an identity provider rather than with a token:
    /// `<subject>@<issuer host>`. Never parsed from text: no stored token has such an id.
    pub fn signed_in(subject: &str, issuer_host: &str) -> Self {
        Self(format!("{subject}@{issuer_host}"))
    }

    /// Whether this names a person signed in through an identity provider.
    pub fn is_signed_in(&self) -> bool {
        self.0.contains('@')
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
    /// The Kubernetes uid of that bureau when the token was issued, if it was recorded: a
    /// bureau deleted and created again under the same code has another uid.
    pub bureau_uid: Option<String>,
    /// What the token is for, as given when it was issued.
    pub description: String,
    /// When the token stops authenticating.
    pub expires_at: Timestamp,
}

impl Principal {
    /// The principal as an auditor reads it: `token 3f2a… (bureau-admin wjw: "卫健委 CI")`, or
    /// for a person signed in, `user zhangwei@sso.haidian.gov.cn (bureau-admin wjw: "张伟")`.
    pub fn label(&self) -> String {
        let scope = match &self.bureau {
            Some(bureau) => format!("{} {bureau}", self.role),
            None => self.role.to_string(),
        };
        let kind = if self.token.is_signed_in() {
            "user"
        } else {
            "token"
        };
        format!("{kind} {} ({scope}: {:?})", self.token, self.description)
    }
}

/// A token to issue with [`Store::issue_token`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken<'a> {
    /// Its role.
    pub role: Role,
    /// Its bureau: required for bureau roles, refused for the others.
    pub bureau: Option<&'a str>,
    /// The Kubernetes uid of that bureau now, so that a re-created bureau is not reached.
    pub bureau_uid: Option<&'a str>,
    /// What it is for (at most 200 characters).
    pub description: &'a str,
    /// When it stops authenticating: after now, at most [`MAX_TOKEN_LIFETIME`] after `now`.
    pub expires_at: Timestamp,
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
    /// When it expires (or expired).
    pub expires_at: Timestamp,
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
    /// It exists with this secret but has expired, and restarting does not renew it: set a new
    /// secret to bootstrap again.
    Expired,
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

type TokenRow = (
    String,
    Vec<u8>,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<i64>,
);

fn check_description(description: &str) -> Result<()> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(Error::invalid(
            "description",
            format!("longer than {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    Ok(())
}

/// Refuses an expiry that is not after `now` or further than [`MAX_TOKEN_LIFETIME`] from it.
pub fn check_expiry(expires_at: Timestamp, now: Timestamp) -> Result<()> {
    let lifetime = expires_at.duration_since(now);
    if lifetime <= SignedDuration::ZERO {
        return Err(Error::invalid("expiry", "must be in the future"));
    }
    if lifetime > MAX_TOKEN_LIFETIME {
        return Err(Error::invalid(
            "expiry",
            format!(
                "more than {} days ahead",
                MAX_TOKEN_LIFETIME.as_hours() / 24
            ),
        ));
    }
    Ok(())
}

/// The digest a secret is known by: what a cache of authentications may keep instead of the
/// secret itself.
pub fn secret_digest(secret: &str) -> [u8; 32] {
    sha256(secret)
}

impl Store {
    /// Issues a token for `role` (and `bureau`, required for bureau roles and refused for the
    /// others) that expires [`DEFAULT_TOKEN_LIFETIME`] from now. Returns its id and its secret;
    /// the secret cannot be recovered later.
    pub async fn create_token(
        &self,
        role: Role,
        bureau: Option<&str>,
        description: &str,
    ) -> Result<(TokenId, TokenSecret)> {
        let expires_at = Timestamp::now()
            .checked_add(DEFAULT_TOKEN_LIFETIME)
            .map_err(|_| Error::invalid("expiry", "out of range"))?;
        self.issue_token(&NewToken {
            role,
            bureau,
            bureau_uid: None,
            description,
            expires_at,
        })
        .await
    }

    /// Issues `token`. Returns its id and its secret; the secret cannot be recovered later.
    /// The expiry is checked against the current time (see [`check_expiry`]).
    pub async fn issue_token(&self, token: &NewToken<'_>) -> Result<(TokenId, TokenSecret)> {
        self.issue_token_at(token, Timestamp::now()).await
    }

    /// [`Store::issue_token`] as if it were `now`.
    pub async fn issue_token_at(
        &self,
        token: &NewToken<'_>,
        now: Timestamp,
    ) -> Result<(TokenId, TokenSecret)> {
        let NewToken {
            role,
            bureau,
            bureau_uid,
            description,
            expires_at,
        } = *token;
        check_scope(role, bureau)?;
        check_description(description)?;
        check_expiry(expires_at, now)?;
        // 64 random bits make a clash practically impossible; a few retries make it harmless.
        for _ in 0..3 {
            let id = hex::encode(random::<ID_BYTES>()?);
            let tail = URL_SAFE_NO_PAD.encode(random::<SECRET_BYTES>()?);
            let secret = format!("{SECRET_PREFIX}{id}_{tail}");
            let hash = sha256(&secret).to_vec();
            let inserted = with_pool!(self, pool => sqlx::query(
                "INSERT INTO api_tokens (id, secret_sha256, role, bureau, bureau_uid, description, \
                 created_at_us, expires_at_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(hash)
            .bind(role.as_str())
            .bind(bureau)
            .bind(bureau.and(bureau_uid))
            .bind(description)
            .bind(to_micros(now))
            .bind(to_micros(expires_at))
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

    /// The principal `secret` stands for, or `None` if it is unknown, wrong, revoked or
    /// expired.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>> {
        self.authenticate_at(secret, Timestamp::now()).await
    }

    /// [`Store::authenticate`] as if it were `now`: a token whose expiry is at or before `now`
    /// authenticates nobody.
    pub async fn authenticate_at(&self, secret: &str, now: Timestamp) -> Result<Option<Principal>> {
        let presented = sha256(secret);
        if let Some(id) = id_of(secret)
            && let Some(principal) = self.match_token(id, &presented).await?
        {
            return Ok((principal.expires_at > now).then_some(principal));
        }
        let principal = self.match_token(BOOTSTRAP_ID, &presented).await?;
        Ok(principal.filter(|p| p.expires_at > now))
    }

    /// The principal of token `id` while it is in force at `now` (issued, not revoked, not
    /// expired), found by its id alone: for a session opened with the token, which keeps no
    /// secret, to end when the token does.
    pub async fn token_in_force(&self, id: &TokenId, now: Timestamp) -> Result<Option<Principal>> {
        let Some((_, principal)) = self.token_by_id(id.as_str()).await? else {
            return Ok(None);
        };
        Ok(principal.filter(|p| p.expires_at > now))
    }

    async fn match_token(&self, id: &str, presented: &[u8; 32]) -> Result<Option<Principal>> {
        let Some((stored, principal)) = self.token_by_id(id).await? else {
            return Ok(None);
        };
        let matches: bool = stored.as_slice().ct_eq(presented.as_slice()).into();
        Ok(principal.filter(|_| matches))
    }

    /// Token `id`'s stored secret hash and, unless it was revoked, its principal (expired or
    /// not); `None` when no such token was issued.
    async fn token_by_id(&self, id: &str) -> Result<Option<(Vec<u8>, Option<Principal>)>> {
        let row: Option<TokenRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT id, secret_sha256, role, bureau, bureau_uid, description, expires_at_us, \
             revoked_at_us FROM api_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)
        .map_err(db("reading a token"))?;
        let Some((id, stored, role, bureau, bureau_uid, description, expires, revoked_at)) = row
        else {
            return Ok(None);
        };
        if revoked_at.is_some() {
            return Ok(Some((stored, None)));
        }
        let principal = Principal {
            token: TokenId(id),
            role: stored_role(&role)?,
            bureau,
            bureau_uid,
            description,
            expires_at: from_micros(expires, "a token")?,
        };
        Ok(Some((stored, Some(principal))))
    }

    /// Revokes every token of `bureau` not yet revoked, as when the bureau is deleted; returns
    /// how many.
    pub async fn revoke_bureau_tokens(&self, bureau: &str) -> Result<u64> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE api_tokens SET revoked_at_us = $2 WHERE bureau = $1 AND revoked_at_us IS NULL",
        )
        .bind(bureau)
        .bind(now_micros())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(db("revoking a bureau's tokens"))
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
        type Row = (
            String,
            String,
            Option<String>,
            String,
            i64,
            i64,
            Option<i64>,
        );
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query_as(
            "SELECT id, role, bureau, description, created_at_us, expires_at_us, revoked_at_us \
             FROM api_tokens ORDER BY created_at_us, id",
        )
        .fetch_all(pool)
        .await)
        .map_err(db("listing tokens"))?;
        rows.into_iter()
            .map(
                |(id, role, bureau, description, created, expires, revoked)| {
                    Ok(TokenInfo {
                        id: TokenId(id),
                        role: stored_role(&role)?,
                        bureau,
                        description,
                        created_at: from_micros(created, "a token")?,
                        expires_at: from_micros(expires, "a token")?,
                        revoked_at: revoked.map(|r| from_micros(r, "a token")).transpose()?,
                    })
                },
            )
            .collect()
    }

    /// Registers `secret` as the platform-admin token `bootstrap`, idempotently: run it at
    /// every start with `ZHENGYUN_BOOTSTRAP_TOKEN`. The secret must be at least
    /// [`MIN_BOOTSTRAP_SECRET_LEN`] characters. A newly registered secret expires
    /// [`DEFAULT_TOKEN_LIFETIME`] later; see [`Store::bootstrap_admin_at`].
    pub async fn bootstrap_admin(&self, secret: &str) -> Result<BootstrapOutcome> {
        self.bootstrap_admin_at(secret, Timestamp::now(), DEFAULT_TOKEN_LIFETIME)
            .await
    }

    /// [`Store::bootstrap_admin`] as if it were `now`, a new secret living `lifetime` (at most
    /// [`MAX_TOKEN_LIFETIME`]). Registering the secret already registered changes nothing, its
    /// expiry included: restarts do not keep a secret alive, setting a new one does.
    ///
    /// One statement decides: any number of processes bootstrapping one database at once
    /// (replicas starting together) make one `bootstrap` token, and exactly one of them reports
    /// it [`BootstrapOutcome::Created`] (or `Replaced`); the others see it `Unchanged`.
    pub async fn bootstrap_admin_at(
        &self,
        secret: &str,
        now: Timestamp,
        lifetime: SignedDuration,
    ) -> Result<BootstrapOutcome> {
        const DOING: &str = "bootstrapping the admin token";
        if secret.chars().count() < MIN_BOOTSTRAP_SECRET_LEN {
            return Err(Error::invalid(
                "bootstrap token",
                format!(
                    "shorter than {MIN_BOOTSTRAP_SECRET_LEN} characters; generate one, e.g. \
                     `openssl rand -hex 32`"
                ),
            ));
        }
        let expires_at = now
            .checked_add(lifetime)
            .map_err(|_| Error::invalid("bootstrap token lifetime", "out of range"))?;
        check_expiry(expires_at, now)?;
        let hash = sha256(secret).to_vec();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(db(DOING))?;
            // The insert is the decision: the primary key lets one concurrent insert through
            // and makes the others wait for it and then do nothing.
            let inserted = sqlx::query(
                "INSERT INTO api_tokens (id, secret_sha256, role, description, created_at_us, \
                 expires_at_us) \
                 VALUES ($1, $2, 'platform-admin', 'bootstrap (ZHENGYUN_BOOTSTRAP_TOKEN)', $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(BOOTSTRAP_ID)
            .bind(&hash)
            .bind(to_micros(now))
            .bind(to_micros(expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db(DOING))?
            .rows_affected();
            if inserted == 1 {
                tx.commit().await.map_err(db(DOING))?;
                return Ok(BootstrapOutcome::Created);
            }
            // A replacement is conditional on the stored secret being another one, so of two
            // processes registering the same new secret only the first replaces it.
            let replaced = sqlx::query(
                "UPDATE api_tokens SET secret_sha256 = $2, created_at_us = $3, \
                 expires_at_us = $4, revoked_at_us = NULL WHERE id = $1 AND secret_sha256 <> $2",
            )
            .bind(BOOTSTRAP_ID)
            .bind(&hash)
            .bind(to_micros(now))
            .bind(to_micros(expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db(DOING))?
            .rows_affected();
            if replaced == 1 {
                tx.commit().await.map_err(db(DOING))?;
                return Ok(BootstrapOutcome::Replaced);
            }
            let (revoked, expires): (Option<i64>, i64) = sqlx::query_as(
                "SELECT revoked_at_us, expires_at_us FROM api_tokens WHERE id = $1",
            )
            .bind(BOOTSTRAP_ID)
            .fetch_one(&mut *tx)
            .await
            .map_err(db(DOING))?;
            tx.commit().await.map_err(db(DOING))?;
            Ok(if revoked.is_some() {
                BootstrapOutcome::Revoked
            } else if expires <= to_micros(now) {
                BootstrapOutcome::Expired
            } else {
                BootstrapOutcome::Unchanged
            })
        })
    }
}

fn stored_role(text: &str) -> Result<Role> {
    text.parse()
        .map_err(|_| Error::Corrupt(format!("a token has the unknown role {text:?}")))
}
