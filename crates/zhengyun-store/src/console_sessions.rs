//! Sessions of the web console: a cookie names one, the database keeps who signed in (a
//! [`Principal`], never a token or password) and the form token of the session, found by the
//! SHA-256 of the cookie. Any API replica serves any session.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    Principal, Role, Store, TokenId,
    error::{Error, Result, db},
    time::{from_micros, to_micros},
    tokens::random,
    with_pool,
};

/// A console session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    /// Who signed in.
    pub principal: Principal,
    /// The token every form of the session carries.
    pub csrf: String,
    /// When the session ends.
    pub expires_at: Timestamp,
}

/// The principal as stored: plain fields.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    name: String,
    role: Role,
    bureau: Option<String>,
    bureau_uid: Option<String>,
    description: String,
    expires_at: Timestamp,
}

fn digest(cookie: &str) -> Vec<u8> {
    Sha256::digest(cookie.as_bytes()).to_vec()
}

fn principal_of(stored: Stored) -> Principal {
    let token = match stored.name.split_once('@') {
        Some((subject, host)) => TokenId::signed_in(subject, host),
        None => stored.name.parse().unwrap_or_else(|_| TokenId::bootstrap()),
    };
    Principal {
        token,
        role: stored.role,
        bureau: stored.bureau,
        bureau_uid: stored.bureau_uid,
        description: stored.description,
        expires_at: stored.expires_at,
    }
}

impl Store {
    /// Opens a session for `principal` until `expires_at`; returns the cookie value (32 random
    /// bytes) and the session.
    pub async fn open_console_session(
        &self,
        principal: &Principal,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(String, ConsoleSession)> {
        if expires_at <= now {
            return Err(Error::invalid("expiry", "the sign-in has already expired"));
        }
        let cookie = URL_SAFE_NO_PAD.encode(random::<32>()?);
        let csrf = URL_SAFE_NO_PAD.encode(random::<32>()?);
        let stored = serde_json::to_string(&Stored {
            name: principal.token.as_str().to_owned(),
            role: principal.role,
            bureau: principal.bureau.clone(),
            bureau_uid: principal.bureau_uid.clone(),
            description: principal.description.clone(),
            expires_at: principal.expires_at,
        })
        .map_err(|e| Error::invalid("principal", e.to_string()))?;
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO console_sessions (id_sha256, principal, csrf, created_us, expires_us) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest(&cookie))
        .bind(&stored)
        .bind(&csrf)
        .bind(to_micros(now))
        .bind(to_micros(expires_at))
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(db("opening a console session"))?;
        Ok((
            cookie,
            ConsoleSession {
                principal: principal.clone(),
                csrf,
                expires_at,
            },
        ))
    }

    /// The session `cookie` names, if it exists and has not ended at `now`.
    pub async fn console_session(
        &self,
        cookie: &str,
        now: Timestamp,
    ) -> Result<Option<ConsoleSession>> {
        let row: Option<(String, String, i64)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT principal, csrf, expires_us FROM console_sessions \
             WHERE id_sha256 = $1 AND expires_us > $2",
        )
        .bind(digest(cookie))
        .bind(to_micros(now))
        .fetch_optional(pool)
        .await)
        .map_err(db("reading a console session"))?;
        let Some((stored, csrf, expires)) = row else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_str(&stored)
            .map_err(|e| Error::invalid("console session", e.to_string()))?;
        Ok(Some(ConsoleSession {
            principal: principal_of(stored),
            csrf,
            expires_at: from_micros(expires, "console session expiry")?,
        }))
    }

    /// Remembers `lang` (a language code, at most 16 characters) as the console language of
    /// the principal named `principal` (a token id or `<subject>@<issuer host>`).
    pub async fn set_console_language(
        &self,
        principal: &str,
        lang: &str,
        now: Timestamp,
    ) -> Result<()> {
        if lang.is_empty() || lang.len() > 16 {
            return Err(Error::invalid(
                "lang",
                "a language code of 1 to 16 characters",
            ));
        }
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO console_languages (principal, lang, updated_us) VALUES ($1, $2, $3) \
             ON CONFLICT (principal) DO UPDATE SET lang = excluded.lang, \
             updated_us = excluded.updated_us",
        )
        .bind(principal)
        .bind(lang)
        .bind(to_micros(now))
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(db("remembering a console language"))?;
        Ok(())
    }

    /// The console language the principal named `principal` chose last, if any.
    pub async fn console_language(&self, principal: &str) -> Result<Option<String>> {
        with_pool!(self, pool => sqlx::query_scalar(
            "SELECT lang FROM console_languages WHERE principal = $1",
        )
        .bind(principal)
        .fetch_optional(pool)
        .await)
        .map_err(db("reading a console language"))
    }

    /// Ends the session `cookie` names (signing out), and every session that ended before
    /// `now`.
    pub async fn close_console_session(&self, cookie: &str, now: Timestamp) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "DELETE FROM console_sessions WHERE id_sha256 = $1 OR expires_us <= $2",
        )
        .bind(digest(cookie))
        .bind(to_micros(now))
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(db("closing a console session"))?;
        Ok(())
    }
}
