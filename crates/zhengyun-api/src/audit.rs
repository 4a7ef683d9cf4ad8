//! `/api/v1/audit`: the audit log for auditors and platform admins, and the verification of
//! its hash chain.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use zhengyun_store::{AuditFilter, ChainStatus, Role};

use crate::{
    context::Caller,
    extract::{Query, instant},
    problem::{ApiResult, Problem},
    state::AppState,
};

const READERS: [Role; 2] = [Role::PlatformAdmin, Role::Auditor];

/// The audit routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit))
        .routes(routes!(verify_audit))
}

/// Filters for the audit log; all optional.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this bureau.
    pub bureau: Option<String>,
    /// Only this action, e.g. `environment.create`.
    pub action: Option<String>,
    /// Only this principal (token id).
    pub principal: Option<String>,
    /// Entries at or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Entries before this instant (RFC 3339).
    pub to: Option<String>,
    /// Entries after this sequence number (the last of the previous page).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub after: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One audit entry with its place in the hash chain.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// RFC 3339.
    pub at: String,
    /// Token id of the caller.
    pub principal: String,
    /// The caller's role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The bureau concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bureau: Option<String>,
    /// What was done.
    pub action: String,
    /// To what.
    pub object: String,
    /// Quota before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_before: Option<serde_json::Value>,
    /// Quota after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_after: Option<serde_json::Value>,
    /// The HTTP status and outcome.
    pub result: String,
    /// The request id.
    pub request_id: String,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// The result of recomputing the chain.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Whether every entry hashes to what is stored and links to its predecessor.
    pub intact: bool,
    /// Entries checked (when intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// The first broken entry (when not intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_seq: Option<u64>,
    /// What is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Audit entries in chain order, filtered and paged (auditor, platform admin).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [AuditView]), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Response> {
    caller.require(&READERS)?;
    if let Some(limit) = query.limit
        && !(1..=zhengyun_store::audit::MAX_PAGE).contains(&limit)
    {
        return Err(Problem::invalid_field(
            "limit",
            format!("must be between 1 and {}", zhengyun_store::audit::MAX_PAGE),
        ));
    }
    if query
        .after
        .is_some_and(|after| i64::try_from(after).is_err())
    {
        return Err(Problem::invalid_field("after", "must be a sequence number"));
    }
    let filter = AuditFilter {
        bureau: query.bureau,
        action: query.action,
        principal: query.principal,
        from: instant("from", query.from.as_deref())?,
        to: instant("to", query.to.as_deref())?,
        after: query.after,
        limit: query.limit.unwrap_or(0),
    };
    let records = state.store().audit_log(&filter).await?;
    let views: Vec<AuditView> = records
        .into_iter()
        .map(|r| AuditView {
            seq: r.seq,
            at: r.entry.at.to_string(),
            principal: r.entry.principal,
            role: r.entry.role.map(|role| role.as_str().to_owned()),
            bureau: r.entry.bureau,
            action: r.entry.action,
            object: r.entry.object,
            quota_before: r.entry.quota_before,
            quota_after: r.entry.quota_after,
            result: r.entry.result,
            request_id: r.entry.request_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
        })
        .collect();
    Ok(axum::Json(views).into_response())
}

/// Recomputes the whole hash chain and names the first broken entry (auditor, platform
/// admin).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = Verification), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn verify_audit(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require(&READERS)?;
    let verification = match state.store().verify_audit().await? {
        ChainStatus::Intact { entries } => Verification {
            intact: true,
            entries: Some(entries),
            first_broken_seq: None,
            reason: None,
        },
        ChainStatus::Broken { seq, reason } => Verification {
            intact: false,
            entries: None,
            first_broken_seq: Some(seq),
            reason: Some(reason),
        },
    };
    Ok(axum::Json(verification).into_response())
}
