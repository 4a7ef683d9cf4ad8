//! The kubeconfigs issued to bureau staff: who got one for which environment, until when, and
//! whether the Secret its token is bound to is gone yet. The token itself is never stored.

use jiff::Timestamp;
use serde::Serialize;

use crate::{
    Store,
    error::{Error, Result, db},
    time::{from_micros, to_micros},
    tokens::random,
    with_pool,
};

/// One issued kubeconfig, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kubeconfig {
    /// 16 hex digits; also names the Secret its token is bound to.
    pub id: String,
    /// The bureau.
    pub bureau: String,
    /// The environment.
    pub environment: String,
    /// Its namespace.
    pub namespace: String,
    /// The ServiceAccount the token is for (the admin or the viewer account).
    pub account: String,
    /// The Secret the token is bound to.
    pub secret: String,
    /// Who asked for it: the caller's name in the audit log.
    pub issued_to: String,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When its Secret was deleted (after expiry or revocation).
    pub removed_at: Option<Timestamp>,
}

/// What [`Store::record_kubeconfig`] writes.
#[derive(Clone, Copy, Debug)]
pub struct NewKubeconfig<'a> {
    /// The bureau.
    pub bureau: &'a str,
    /// The environment.
    pub environment: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// The ServiceAccount.
    pub account: &'a str,
    /// Who asked for it.
    pub issued_to: &'a str,
    /// When.
    pub issued_at: Timestamp,
    /// Until when.
    pub expires_at: Timestamp,
}

/// The prefix of the Secret a kubeconfig's token is bound to; its id follows.
pub const KUBECONFIG_SECRET_PREFIX: &str = "zhengyun-kubeconfig-";

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

/// `$before`, the columns of a [`Row`], `$after`: one static statement.
macro_rules! with_columns {
    ($before:literal, $after:literal) => {
        concat!(
            $before,
            "id, bureau, environment, namespace, account, secret, issued_to, issued_us, \
             expires_us, revoked_us, removed_us",
            $after
        )
    };
}

fn from_row(row: Row) -> Result<Kubeconfig> {
    let (
        id,
        bureau,
        environment,
        namespace,
        account,
        secret,
        issued_to,
        issued,
        expires,
        revoked,
        removed,
    ) = row;
    let optional = |at: Option<i64>, what| at.map(|us| from_micros(us, what)).transpose();
    Ok(Kubeconfig {
        id,
        bureau,
        environment,
        namespace,
        account,
        secret,
        issued_to,
        issued_at: from_micros(issued, "kubeconfig issue")?,
        expires_at: from_micros(expires, "kubeconfig expiry")?,
        revoked_at: optional(revoked, "kubeconfig revocation")?,
        removed_at: optional(removed, "kubeconfig removal")?,
    })
}

impl Store {
    /// Records a kubeconfig about to be issued and returns it, with a fresh id and the name of
    /// the Secret its token will be bound to. Written before anything is made in the cluster, so
    /// that whatever is made is found again by [`Store::kubeconfigs_to_remove`].
    pub async fn record_kubeconfig(&self, new: &NewKubeconfig<'_>) -> Result<Kubeconfig> {
        if new.expires_at <= new.issued_at {
            return Err(Error::invalid("expiry", "must be after the issue"));
        }
        for _ in 0..3 {
            let id = hex::encode(random::<8>()?);
            let secret = format!("{KUBECONFIG_SECRET_PREFIX}{id}");
            let inserted = with_pool!(self, pool => sqlx::query(
                "INSERT INTO kubeconfigs (id, bureau, environment, namespace, account, secret, \
                 issued_to, issued_us, expires_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(new.bureau)
            .bind(new.environment)
            .bind(new.namespace)
            .bind(new.account)
            .bind(&secret)
            .bind(new.issued_to)
            .bind(to_micros(new.issued_at))
            .bind(to_micros(new.expires_at))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
            .map_err(db("recording a kubeconfig"))?;
            if inserted == 1 {
                return Ok(Kubeconfig {
                    id,
                    bureau: new.bureau.to_owned(),
                    environment: new.environment.to_owned(),
                    namespace: new.namespace.to_owned(),
                    account: new.account.to_owned(),
                    secret,
                    issued_to: new.issued_to.to_owned(),
                    issued_at: new.issued_at,
                    expires_at: new.expires_at,
                    revoked_at: None,
                    removed_at: None,
                });
            }
        }
        Err(Error::Conflict(
            "three random kubeconfig ids in a row were taken".to_owned(),
        ))
    }

    /// The kubeconfigs issued for `environment` of `bureau`, newest first.
    pub async fn kubeconfigs_of(&self, bureau: &str, environment: &str) -> Result<Vec<Kubeconfig>> {
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query_as(
            with_columns!("SELECT ", " FROM kubeconfigs \
             WHERE bureau = $1 AND environment = $2 ORDER BY issued_us DESC, id"),
        )
        .bind(bureau)
        .bind(environment)
        .fetch_all(pool)
        .await)
        .map_err(db("listing kubeconfigs"))?;
        rows.into_iter().map(from_row).collect()
    }

    /// Revokes kubeconfig `id` of `environment` of `bureau` at `at` (a second revocation keeps
    /// the first time). Its Secret is deleted by the next sweep.
    pub async fn revoke_kubeconfig(
        &self,
        bureau: &str,
        environment: &str,
        id: &str,
        at: Timestamp,
    ) -> Result<Kubeconfig> {
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(
            with_columns!("UPDATE kubeconfigs SET revoked_us = COALESCE(revoked_us, $4) \
             WHERE bureau = $1 AND environment = $2 AND id = $3 RETURNING ", ""),
        )
        .bind(bureau)
        .bind(environment)
        .bind(id)
        .bind(to_micros(at))
        .fetch_optional(pool)
        .await)
        .map_err(db("revoking a kubeconfig"))?;
        let row = row.ok_or_else(|| Error::NotFound(format!("kubeconfig {id}")))?;
        from_row(row)
    }

    /// The kubeconfigs whose Secret should be gone at `now`: expired or revoked, not yet
    /// removed. At most `limit`, the longest overdue first.
    pub async fn kubeconfigs_to_remove(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Kubeconfig>> {
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query_as(
            with_columns!("SELECT ", " FROM kubeconfigs \
             WHERE removed_us IS NULL AND (expires_us <= $1 OR revoked_us IS NOT NULL) \
             ORDER BY expires_us, id LIMIT $2"),
        )
        .bind(to_micros(now))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await)
        .map_err(db("listing kubeconfigs to remove"))?;
        rows.into_iter().map(from_row).collect()
    }

    /// Records that the Secret of kubeconfig `id` is gone.
    pub async fn kubeconfig_removed(&self, id: &str, at: Timestamp) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE kubeconfigs SET removed_us = COALESCE(removed_us, $2) WHERE id = $1",
        )
        .bind(id)
        .bind(to_micros(at))
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(db("recording a kubeconfig's removal"))?;
        Ok(())
    }
}
