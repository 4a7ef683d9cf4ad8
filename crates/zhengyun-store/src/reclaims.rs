//! Reclaims of borrowed capacity: each burst pod whose room was taken back, by whom it was
//! borrowed, who got the room back and how long it took. A row is written when the reclaim is
//! known and completed once (when the pod is gone, when the beneficiary is found); nothing else
//! about it ever changes.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::Serialize;

use crate::{
    PoolExt, Store,
    error::{Error, Result, db},
    time::{from_micros, to_micros},
    with_pool,
};

/// The most reclaims one listing returns (the queries' `LIMIT`).
pub const MAX_RECLAIMS: usize = 1000;

/// Why a burst pod's room was taken back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReclaimCause {
    /// The scheduler preempted it for a pod of higher priority.
    Preempted,
    /// The operator deleted it above its environment's lowered burst allowance.
    Allowance,
}

impl ReclaimCause {
    /// `preempted` or `allowance`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReclaimCause::Preempted => "preempted",
            ReclaimCause::Allowance => "allowance",
        }
    }
}

impl fmt::Display for ReclaimCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReclaimCause {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "preempted" => Ok(ReclaimCause::Preempted),
            "allowance" => Ok(ReclaimCause::Allowance),
            _ => Err(format!(
                "unknown reclaim cause {text:?}, expected preempted or allowance"
            )),
        }
    }
}

/// One reclaimed burst pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reclaim {
    /// The pod's uid.
    pub pod_uid: String,
    /// Its namespace (its environment).
    pub namespace: String,
    /// Its name.
    pub pod: String,
    /// The bureau that borrowed.
    pub bureau: String,
    /// Why it was reclaimed.
    pub cause: ReclaimCause,
    /// The bureau whose pods got the room back, once known (none when the pool itself shrank).
    pub beneficiary: Option<String>,
    /// When the reclaim started: the preemption, or the operator's deletion.
    pub started: Timestamp,
    /// When the pod was gone, once it is.
    pub freed: Option<Timestamp>,
}

type ReclaimRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
);

macro_rules! columns {
    () => {
        "pod_uid, namespace, pod, bureau, cause, beneficiary, started_us, freed_us"
    };
}

impl Store {
    /// Records `reclaim`; returns whether it is new. A reclaim already recorded for the pod is
    /// only completed: its `freed` and `beneficiary` are set where they were not.
    pub async fn record_reclaim(&self, reclaim: &Reclaim) -> Result<bool> {
        const DOING: &str = "recording a reclaim";
        let started = to_micros(reclaim.started);
        let freed = reclaim.freed.map(|at| to_micros(at).max(started));
        let existed: Option<String> = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(db(DOING))?;
            let existed: Option<String> =
                sqlx::query_scalar("SELECT pod_uid FROM burst_reclaims WHERE pod_uid = $1")
                    .bind(&reclaim.pod_uid)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
            sqlx::query(concat!(
                "INSERT INTO burst_reclaims (",
                columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (pod_uid) DO UPDATE SET \
                 freed_us = COALESCE(burst_reclaims.freed_us, excluded.freed_us), \
                 beneficiary = COALESCE(burst_reclaims.beneficiary, excluded.beneficiary)"
            ))
            .bind(&reclaim.pod_uid)
            .bind(&reclaim.namespace)
            .bind(&reclaim.pod)
            .bind(&reclaim.bureau)
            .bind(reclaim.cause.as_str())
            .bind(reclaim.beneficiary.as_deref())
            .bind(started)
            .bind(freed)
            .execute(&mut *tx)
            .await
            .map_err(db(DOING))?;
            tx.commit().await.map_err(db(DOING))?;
            existed
        });
        Ok(existed.is_none())
    }

    /// Records that the reclaimed pod `pod_uid` was gone at `at`; returns whether a reclaim of
    /// it is recorded (a burst pod that was not reclaimed, deleted by its bureau, has none).
    pub async fn reclaim_freed(&self, pod_uid: &str, at: Timestamp) -> Result<bool> {
        const DOING: &str = "completing a reclaim";
        let found: Option<String> = with_pool!(self, pool => {
            sqlx::query(pool.dialect(
                "UPDATE burst_reclaims SET freed_us = MAX($2, started_us) \
                 WHERE pod_uid = $1 AND freed_us IS NULL",
                "UPDATE burst_reclaims SET freed_us = GREATEST($2, started_us) \
                 WHERE pod_uid = $1 AND freed_us IS NULL",
            ))
            .bind(pod_uid)
            .bind(to_micros(at))
            .execute(pool)
            .await
            .map_err(db(DOING))?;
            sqlx::query_scalar("SELECT pod_uid FROM burst_reclaims WHERE pod_uid = $1")
                .bind(pod_uid)
                .fetch_optional(pool)
                .await
                .map_err(db(DOING))?
        });
        Ok(found.is_some())
    }

    /// Preemptions started at or after `since` whose beneficiary is not known yet.
    pub async fn reclaims_awaiting_beneficiary(&self, since: Timestamp) -> Result<Vec<Reclaim>> {
        let rows: Vec<ReclaimRow> = with_pool!(self, pool =>
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM burst_reclaims \
                 WHERE cause = 'preempted' AND beneficiary IS NULL AND started_us >= $1 \
                 ORDER BY started_us LIMIT 1000"
            ))
            .bind(to_micros(since))
            .fetch_all(pool)
            .await)
        .map_err(db("reading reclaims"))?;
        rows.into_iter().map(reclaim_of).collect()
    }

    /// The reclaims started within `[from, to)` that `bureau` borrowed or benefited from (all
    /// with `None`), newest first, at most [`MAX_RECLAIMS`].
    pub async fn list_reclaims(
        &self,
        bureau: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reclaim>> {
        let rows: Vec<ReclaimRow> = with_pool!(self, pool =>
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM burst_reclaims \
                 WHERE started_us >= $1 AND started_us < $2 \
                 AND ($3 IS NULL OR bureau = $3 OR beneficiary = $3) \
                 ORDER BY started_us DESC, pod_uid LIMIT 1000"
            ))
            .bind(to_micros(from))
            .bind(to_micros(to))
            .bind(bureau)
            .fetch_all(pool)
            .await)
        .map_err(db("listing reclaims"))?;
        rows.into_iter().map(reclaim_of).collect()
    }
}

fn reclaim_of(row: ReclaimRow) -> Result<Reclaim> {
    let (pod_uid, namespace, pod, bureau, cause, beneficiary, started, freed) = row;
    Ok(Reclaim {
        cause: cause
            .parse()
            .map_err(|e: String| Error::Corrupt(format!("reclaim of {pod_uid}: {e}")))?,
        started: from_micros(started, "the start of a reclaim")?,
        freed: freed
            .map(|f| from_micros(f, "the end of a reclaim"))
            .transpose()?,
        pod_uid,
        namespace,
        pod,
        bureau,
        beneficiary,
    })
}
