//! Change requests that wait for a platform admin's decision.
//!
//! A bureau asks through the API for something it cannot grant itself: an environment or a
//! resize that needs more than the bureau has left, or more quota for the bureau. The request
//! is kept here, with the JSON the API will apply once it is approved, until a platform admin
//! approves or rejects it. A decision is taken once: [`Store::decide_request`] moves a request
//! out of `pending` atomically, so two admins deciding at the same moment get one success and
//! one [`Error::Conflict`]. When applying an approved request fails, the API hands it back with
//! [`Store::reopen_request`] so nothing is left approved but not applied.

use std::{fmt, str::FromStr};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{
    Store,
    error::{Error, Result, db},
    time::{from_micros, now_micros},
    with_pool,
};

/// What is being asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// A new environment that does not fit in what the bureau has left.
    EnvironmentCreate,
    /// A larger quota for an existing environment that does not fit.
    EnvironmentResize,
    /// More quota for the bureau itself.
    BureauQuota,
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestState {
    /// Waiting for a platform admin.
    Pending,
    /// Approved and applied.
    Approved,
    /// Rejected, with a reason.
    Rejected,
}

macro_rules! text_enum {
    ($ty:ty, $what:literal, $($variant:path => $text:literal),+ $(,)?) => {
        impl $ty {
            /// The stored and serialized form.
            pub fn as_str(self) -> &'static str {
                match self { $($variant => $text),+ }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = Error;

            fn from_str(text: &str) -> Result<Self> {
                match text {
                    $($text => Ok($variant),)+
                    other => Err(Error::invalid($what, format!("unknown {} {other:?}", $what))),
                }
            }
        }
    };
}

text_enum!(RequestKind, "request kind",
    RequestKind::EnvironmentCreate => "environment-create",
    RequestKind::EnvironmentResize => "environment-resize",
    RequestKind::BureauQuota => "bureau-quota",
);

text_enum!(RequestState, "request state",
    RequestState::Pending => "pending",
    RequestState::Approved => "approved",
    RequestState::Rejected => "rejected",
);

/// A request as a bureau files it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRequest {
    /// What is asked for.
    pub kind: RequestKind,
    /// The bureau asking.
    pub bureau: String,
    /// The environment or bureau the request is about.
    pub object: String,
    /// What to apply once approved.
    pub payload: serde_json::Value,
    /// Why it needs a decision (e.g. what the bureau is short of), or the bureau's own reason.
    pub note: String,
    /// Who asked (a token id).
    pub requested_by: String,
}

/// A request as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeRequest {
    /// Random id, 16 hex digits.
    pub id: String,
    /// What is asked for.
    pub kind: RequestKind,
    /// The bureau asking.
    pub bureau: String,
    /// The environment or bureau the request is about.
    pub object: String,
    /// What to apply once approved.
    pub payload: serde_json::Value,
    /// Why it needs a decision.
    pub note: String,
    /// Where it stands.
    pub state: RequestState,
    /// Who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: Timestamp,
    /// Who decided, once decided.
    pub decided_by: Option<String>,
    /// When it was decided.
    pub decided_at: Option<Timestamp>,
    /// The decider's reason (required for a rejection).
    pub decision_reason: Option<String>,
}

/// Which requests to list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestFilter {
    /// Only this bureau's.
    pub bureau: Option<String>,
    /// Only in this state.
    pub state: Option<RequestState>,
}

const MAX_NOTE_LEN: usize = 1000;
const MAX_PAYLOAD_LEN: usize = 64 * 1024;

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
);

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, kind, bureau, object, payload, note, state, requested_by, ",
            "requested_at_us, decided_by, decided_at_us, decision_reason FROM change_requests ",
            $tail
        )
    };
}

fn check_text(field: &'static str, text: &str) -> Result<()> {
    if text.chars().count() > MAX_NOTE_LEN {
        return Err(Error::invalid(
            field,
            format!("longer than {MAX_NOTE_LEN} characters"),
        ));
    }
    Ok(())
}

fn from_row(row: Row) -> Result<ChangeRequest> {
    let (id, kind, bureau, object, payload, note, state, by, at, decided_by, decided_at, why) = row;
    let corrupt = |what: &str| Error::Corrupt(format!("change request {id} has an invalid {what}"));
    Ok(ChangeRequest {
        kind: kind.parse().map_err(|_| corrupt("kind"))?,
        state: state.parse().map_err(|_| corrupt("state"))?,
        payload: serde_json::from_str(&payload).map_err(|_| corrupt("payload"))?,
        requested_at: from_micros(at, "a change request")?,
        decided_at: decided_at
            .map(|t| from_micros(t, "a change request"))
            .transpose()?,
        bureau,
        object,
        note,
        requested_by: by,
        decided_by,
        decision_reason: why,
        id,
    })
}

impl Store {
    /// Files `request` as pending and returns it with its new id.
    pub async fn create_request(&self, request: &NewRequest) -> Result<ChangeRequest> {
        check_text("note", &request.note)?;
        let payload = request.payload.to_string();
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(Error::invalid(
                "payload",
                format!("larger than {MAX_PAYLOAD_LEN} bytes"),
            ));
        }
        let id = hex::encode(crate::tokens::random::<8>()?);
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO change_requests (id, kind, bureau, object, payload, note, state, \
             requested_by, requested_at_us) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
        )
        .bind(&id)
        .bind(request.kind.as_str())
        .bind(&request.bureau)
        .bind(&request.object)
        .bind(&payload)
        .bind(&request.note)
        .bind(&request.requested_by)
        .bind(now_micros())
        .execute(pool)
        .await
        .map(drop))
        .map_err(db("filing a change request"))?;
        self.get_request(&id).await
    }

    /// The request `id`, or [`Error::NotFound`].
    pub async fn get_request(&self, id: &str) -> Result<ChangeRequest> {
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(select!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await)
        .map_err(db("reading a change request"))?;
        row.map(from_row)
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("change request {id}")))
    }

    /// Requests matching `filter`, oldest first.
    pub async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<ChangeRequest>> {
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query_as(select!(
            "WHERE ($1 IS NULL OR bureau = $1) AND ($2 IS NULL OR state = $2) \
             ORDER BY requested_at_us, id"
        ))
        .bind(filter.bureau.as_deref())
        .bind(filter.state.map(RequestState::as_str))
        .fetch_all(pool)
        .await)
        .map_err(db("listing change requests"))?;
        rows.into_iter().map(from_row).collect()
    }

    /// Moves pending request `id` to `decision` (approved or rejected), recording who and why.
    /// A request already decided is an [`Error::Conflict`] naming its state.
    pub async fn decide_request(
        &self,
        id: &str,
        decision: RequestState,
        decided_by: &str,
        reason: Option<&str>,
    ) -> Result<ChangeRequest> {
        if decision == RequestState::Pending {
            return Err(Error::invalid("decision", "must be approved or rejected"));
        }
        if let Some(reason) = reason {
            check_text("reason", reason)?;
        }
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE change_requests SET state = $2, decided_by = $3, decided_at_us = $4, \
             decision_reason = $5 WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(decision.as_str())
        .bind(decided_by)
        .bind(now_micros())
        .bind(reason)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(db("deciding a change request"))?;
        let request = self.get_request(id).await?;
        if updated == 0 {
            return Err(Error::Conflict(format!(
                "change request {id} is already {}",
                request.state
            )));
        }
        Ok(request)
    }

    /// Puts approved request `id` back to pending, for when applying it failed.
    pub async fn reopen_request(&self, id: &str) -> Result<ChangeRequest> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE change_requests SET state = 'pending', decided_by = NULL, \
             decided_at_us = NULL, decision_reason = NULL WHERE id = $1 AND state = 'approved'",
        )
        .bind(id)
        .execute(pool)
        .await
        .map(drop))
        .map_err(db("reopening a change request"))?;
        self.get_request(id).await
    }
}
