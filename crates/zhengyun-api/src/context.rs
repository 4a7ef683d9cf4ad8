//! What a request carries besides its body: its id, the caller, and the audit note the handler
//! fills in for the audit middleware.

use std::sync::{Arc, Mutex};

use axum::{extract::FromRequestParts, http::request::Parts};
use serde_json::Value;
use zhengyun_store::{Principal, Role};

use crate::problem::Problem;

tokio::task_local! {
    /// The id of the request being served, so a [`Problem`] can carry it wherever it is built.
    pub static REQUEST_ID: String;
}

/// The current request's id, if inside a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The authenticated caller: the principal of the bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub Principal);

impl Caller {
    /// The caller's role.
    pub fn role(&self) -> Role {
        self.0.role
    }

    /// The bureau of a bureau-scoped caller.
    pub fn bureau(&self) -> Option<&str> {
        self.0.bureau.as_deref()
    }

    /// The token id, which names the caller in audit entries and change requests.
    pub fn name(&self) -> &str {
        self.0.token.as_str()
    }

    /// Whether the caller has one of `roles`.
    pub fn is(&self, roles: &[Role]) -> bool {
        roles.contains(&self.role())
    }

    /// Refuses with 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), Problem> {
        if self.is(roles) {
            return Ok(());
        }
        let allowed = roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Err(Problem::forbidden(format!(
            "a {} token may not do this; it needs one of: {allowed}",
            self.role()
        )))
    }

    /// Refuses with 403 unless the caller may look at `bureau`: platform-wide roles see every
    /// bureau, bureau roles only their own. Checked before looking anything up, so the answer
    /// for another bureau is the same whether or not it exists.
    pub fn require_bureau(&self, bureau: &str) -> Result<(), Problem> {
        match self.bureau() {
            Some(own) if own != bureau => Err(Problem::forbidden(format!(
                "this token belongs to bureau {own:?} and cannot reach bureau {bureau:?}"
            ))),
            _ => Ok(()),
        }
    }

    /// Whether a listing of bureaus should show `bureau` to this caller.
    pub fn sees_bureau(&self, bureau: &str) -> bool {
        self.bureau().is_none_or(|own| own == bureau)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Problem::unauthorized("a bearer token is required"))
    }
}

/// What a mutating handler tells the audit log about its call. The middleware writes the entry
/// whatever the outcome; fields the handler never set fall back to what the route says.
#[derive(Clone, Debug, Default)]
pub struct AuditNote {
    /// `environment.create`, `bureau.update`, …
    pub action: Option<String>,
    /// `environments/wjw-prod`, `bureaus/wjw`, `requests/…`, `tokens/…`.
    pub object: Option<String>,
    /// The bureau concerned.
    pub bureau: Option<String>,
    /// The quota before the change.
    pub before: Option<Value>,
    /// The quota after the change.
    pub after: Option<Value>,
    /// A word on the outcome beyond the status code (`pending request 1f…`).
    pub outcome: Option<String>,
}

/// The handler's handle on its [`AuditNote`].
#[derive(Clone, Debug, Default)]
pub struct Audit(Arc<Mutex<AuditNote>>);

impl Audit {
    /// Changes the note.
    pub fn note(&self, change: impl FnOnce(&mut AuditNote)) {
        if let Ok(mut note) = self.0.lock() {
            change(&mut note);
        }
    }

    /// Names the action, the object and the bureau.
    pub fn about(&self, action: &str, object: String, bureau: Option<&str>) {
        self.note(|n| {
            n.action = Some(action.to_owned());
            n.object = Some(object);
            n.bureau = bureau.map(str::to_owned);
        });
    }

    /// Records the quota before and after.
    pub fn quotas(&self, before: Option<Value>, after: Option<Value>) {
        self.note(|n| {
            n.before = before;
            n.after = after;
        });
    }

    /// Records an outcome beyond the status code.
    pub fn outcome(&self, outcome: impl Into<String>) {
        let outcome = outcome.into();
        self.note(|n| n.outcome = Some(outcome));
    }

    /// The note as it stands.
    pub fn snapshot(&self) -> AuditNote {
        self.0.lock().map(|n| n.clone()).unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Audit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Outside the audit middleware (reads) the note goes nowhere.
        Ok(parts.extensions.get::<Audit>().cloned().unwrap_or_default())
    }
}
