//! Errors as `application/problem+json` (RFC 9457), the only error shape the API returns.
//!
//! Every failure a handler can meet becomes a [`Problem`]: bad input is a 4xx that says what to
//! fix (422 names the fields), an unreachable cluster or database is a 503 the caller may retry,
//! and anything else is a 500 whose cause is logged with the request id and never shown.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use zhengyun_model::ValidationErrors;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct InvalidField {
    /// JSON path of the field in the request body (`quota.cpu`), or the parameter name.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `https://zhengyun.io/problems/not-found`.
    #[serde(rename = "type", serialize_with = "problem_uri")]
    #[schema(value_type = String, example = "https://zhengyun.io/problems/not-found")]
    pub kind: &'static str,
    /// A short summary of the kind of problem.
    #[schema(value_type = String)]
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What happened this time, for a human.
    pub detail: String,
    /// The request id, also in the `x-request-id` header and the server's logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For 422: every invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<InvalidField>,
}

impl Problem {
    /// A problem of `status`, with `slug` naming its kind and `title` summarising it.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: slug,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            request_id: None,
            errors: Vec::new(),
        }
    }

    /// 400: the request cannot be read (malformed JSON, a bad query string).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// 401: no token, or one that is unknown or revoked.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail,
        )
    }

    /// 403: the caller's role or bureau does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail)
    }

    /// 404: no such object (or route).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 409: the request contradicts the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// 422: the request is well-formed but some fields are invalid.
    pub fn invalid(errors: Vec<InvalidField>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "Invalid request",
                detail,
            )
        }
    }

    /// 422 for one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(vec![InvalidField {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// 422 from the model's validation, with `spec.` and `metadata.` stripped so the fields
    /// are named as they are in the request body.
    pub fn from_validation(errors: &ValidationErrors) -> Self {
        let fields = errors
            .errors()
            .iter()
            .map(|e| InvalidField {
                field: body_field(&e.field),
                message: e.message.clone(),
            })
            .collect();
        Self::invalid(fields)
    }

    /// 429: too many failed authentications from this address; `retry_after` says when it may
    /// try again (also in the `Retry-After` header).
    pub fn too_many_failures(retry_after: std::time::Duration) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-failed-authentications",
            "Too many failed authentications",
            format!(
                "too many failed authentications (missing, malformed, unknown or revoked tokens) \
                 from this address; retry in {} s",
                retry_seconds(retry_after)
            ),
        )
    }

    /// 503: the cluster or the database cannot be reached; retry later.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// 504: a change did not answer in time but is still being carried out; its outcome will
    /// be in the audit log (as Kubernetes answers a slow write).
    pub fn still_running(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "still-running",
            "Still running",
            detail,
        )
    }

    /// 500: a fault of the server. The cause goes to the log, the caller sees only this.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %ErrorChain(cause), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed; the error is logged under this request id",
        )
    }

    /// What went wrong, in words.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// Whole seconds to wait, rounded up, at least 1.
pub fn retry_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1)
}

fn problem_uri<S: serde::Serializer>(
    slug: &&'static str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("https://zhengyun.io/problems/{slug}"))
}

fn body_field(path: &str) -> String {
    if path == "metadata.name" {
        return "name".to_owned();
    }
    path.strip_prefix("spec.").unwrap_or(path).to_owned()
}

/// Displays an error with its sources, `outer: inner: innermost`.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        if self.request_id.is_none() {
            self.request_id = crate::context::current_request_id();
        }
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"zhengyun\""),
            );
        }
        response
    }
}

impl From<zhengyun_store::Error> for Problem {
    fn from(error: zhengyun_store::Error) -> Self {
        use zhengyun_store::Error as E;
        match &error {
            _ if error.is_unavailable() => {
                tracing::warn!(error = %ErrorChain(&error), "database unavailable");
                Problem::unavailable("the database is unavailable; retry later")
            }
            E::Conflict(message) => Problem::conflict(message.clone()),
            E::NotFound(what) => Problem::not_found(format!("{what} not found")),
            E::Invalid { field, reason } => Problem::invalid_field(*field, reason.clone()),
            // The ledger and the rate cards disagree (usage before the first rate card, a
            // budget that is not whole fen): a state to fix, not a fault of the request.
            E::Metering { what, source } => {
                Problem::conflict(format!("unable to price the {what}: {source}"))
            }
            _ => Problem::internal(&error),
        }
    }
}

impl From<kube::Error> for Problem {
    fn from(error: kube::Error) -> Self {
        match &error {
            kube::Error::Api(status) => match status.code {
                404 => Problem::not_found(status.message.clone()),
                409 => Problem::conflict(status.message.clone()),
                // Admission (a ValidatingAdmissionPolicy's default reason) or RBAC refused the
                // API's write: the change is not allowed, and nothing was changed.
                403 => {
                    tracing::warn!(error = %ErrorChain(&error), "the cluster refused the API's request");
                    Problem::forbidden(format!(
                        "the cluster refused the change: {}",
                        status.message
                    ))
                }
                400 | 422 => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    "Invalid request",
                    format!("the cluster refused the object: {}", status.message),
                ),
                429 | 500..=599 => {
                    tracing::warn!(error = %ErrorChain(&error), "cluster unavailable");
                    Problem::unavailable("the cluster is unavailable; retry later")
                }
                _ => Problem::internal(&error),
            },
            kube::Error::HyperError(_)
            | kube::Error::Service(_)
            | kube::Error::HttpError(_)
            | kube::Error::ReadEvents(_) => {
                tracing::warn!(error = %ErrorChain(&error), "cluster unreachable");
                Problem::unavailable("the cluster is unreachable; retry later")
            }
            _ => Problem::internal(&error),
        }
    }
}

/// `Result` whose error is a [`Problem`].
pub type ApiResult<T> = Result<T, Problem>;

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "message": message, "reason": "Forbidden"
        }))
        .expect("a Status");
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_write_the_cluster_forbids_is_a_403_with_its_reason_not_a_500() {
        let problem = Problem::from(refused(
            403,
            "environments.zhengyun.io \"wjw-dev\" is forbidden: ValidatingAdmissionPolicy denied",
        ));
        assert_eq!(problem.status(), StatusCode::FORBIDDEN);
        assert!(problem.detail.contains("ValidatingAdmissionPolicy denied"));
    }
}
