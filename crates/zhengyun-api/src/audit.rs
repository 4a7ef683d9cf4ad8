//! `/api/v1/audit`: the audit log for auditors and platform admins, and the verification of
//! its hash chain.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
pub use zhengyun_contract::audit::{AuditHeadView, AuditView, Verification};
use zhengyun_store::{AuditFilter, ChainStatus, Role};

use crate::{
    context::Caller,
    extract::{Query, instant},
    page::Page,
    problem::{ApiResult, Problem},
    state::AppState,
};

const READERS: [Role; 2] = [Role::PlatformAdmin, Role::Auditor];

/// Entries in a page when the caller does not say.
const DEFAULT_LIMIT: u32 = 100;

/// The most bytes of JSON one page of the audit log holds; a page stops before the entry that
/// would pass it (but always holds one entry).
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// The header naming the `after` of the next page whenever entries follow the page.
pub const NEXT_AFTER_HEADER: &str = zhengyun_contract::NEXT_AFTER_HEADER;

/// The audit routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit))
        .routes(routes!(verify_audit))
        .routes(routes!(audit_head))
}

/// The head of the audit chain (auditor, platform admin). Each answer is remembered as
/// published: from then on the verification names a log that was cut back below it or
/// rewritten under it, and this call answers 409 for such a log instead of a smaller head.
#[utoipa::path(get, path = "/api/v1/audit/head", tag = "audit",
    responses(
        (status = 200, body = AuditHeadView),
        (status = 403, body = Problem),
        (status = 409, body = Problem,
            description = "The head is behind or differs from one published before"),
    ),
    security(("bearer" = [])))]
async fn audit_head(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<AuditHeadView>> {
    caller.require(&READERS)?;
    match state.store().publish_audit_head().await {
        Ok(head) => Ok(axum::Json(AuditHeadView {
            seq: head.seq,
            hash: head.hash,
        })),
        Err(zhengyun_store::Error::Corrupt(reason)) => {
            tracing::error!(%reason, "the audit head went backwards or was rewritten");
            Err(Problem::conflict(reason))
        }
        Err(error) => Err(error.into()),
    }
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

/// Audit entries in chain order, filtered and paged (auditor, platform admin). A page holds
/// at most `limit` entries and 1 MiB of JSON; whenever more entries match after it (the page
/// is full, or the size cut it short), the `x-next-after` header gives the `after` of the next
/// page. A page without the header is the last.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [AuditView], headers(("x-next-after" = u64,
            description = "Present whenever more entries match after this page (it holds \
                `limit` entries, or was cut at 1 MiB): pass it as `after` for the next page; \
                absent on the last page"))),
        (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Page<AuditView>> {
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
    let mut filter = AuditFilter {
        bureau: query.bureau,
        action: query.action,
        principal: query.principal,
        from: instant("from", query.from.as_deref())?,
        to: instant("to", query.to.as_deref())?,
        after: query.after,
        limit: query.limit.unwrap_or(DEFAULT_LIMIT),
    };
    let records = state.store().audit_log(&filter).await?;
    // A full page may be followed by more: one entry more is read to know.
    let full = records.len() >= usize::try_from(filter.limit).unwrap_or(usize::MAX);
    let more = match records.last() {
        Some(last) if full => {
            filter.after = Some(last.seq);
            filter.limit = 1;
            !state.store().audit_log(&filter).await?.is_empty()
        }
        _ => false,
    };
    let views: Vec<AuditView> = records
        .into_iter()
        .map(|r| AuditView {
            seq: r.seq,
            at: r.entry.at.to_string(),
            principal: r.entry.principal,
            principal_label: r.entry.principal_label,
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
    let (items, cut_after) = within_bytes(views, MAX_PAGE_BYTES);
    let next_after = cut_after.or_else(|| more.then(|| items.last().map(|v| v.seq)).flatten());
    Ok(Page {
        items,
        next: next_after.map(|after| after.to_string()),
    })
}

/// The leading `views` whose JSON array fits in `max_bytes` (at least one, so paging always
/// moves on), and the `seq` of the last one kept when some were left out.
fn within_bytes(views: Vec<AuditView>, max_bytes: usize) -> (Vec<AuditView>, Option<u64>) {
    let mut size = 2; // `[` and `]`
    let mut kept = Vec::with_capacity(views.len());
    let total = views.len();
    for view in views {
        let bytes = serde_json::to_vec(&view).map_or(0, |json| json.len());
        let separator = usize::from(!kept.is_empty());
        if !kept.is_empty() && size + separator + bytes > max_bytes {
            break;
        }
        size += separator + bytes;
        kept.push(view);
    }
    let next = (kept.len() < total)
        .then(|| kept.last().map(|v| v.seq))
        .flatten();
    (kept, next)
}

/// Recomputes the whole hash chain and names the first broken entry (auditor, platform
/// admin).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = Verification), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn verify_audit(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Verification>> {
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
    Ok(axum::Json(verification))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(seq: u64, object: &str) -> AuditView {
        AuditView {
            seq,
            at: "2026-11-05T08:00:00Z".to_owned(),
            principal: "0123456789abcdef".to_owned(),
            principal_label: None,
            role: None,
            bureau: Some("wjw".to_owned()),
            action: "environment.create".to_owned(),
            object: object.to_owned(),
            quota_before: None,
            quota_after: None,
            result: "201 Created".to_owned(),
            request_id: "req".to_owned(),
            prev_hash: "0".repeat(64),
            hash: "1".repeat(64),
        }
    }

    fn json_len(views: &[AuditView]) -> usize {
        serde_json::to_vec(views).expect("json").len()
    }

    #[test]
    fn a_page_that_fits_is_whole_and_names_no_next_page() {
        let views: Vec<_> = (1..=3).map(|n| view(n, "environments/wjw-dev")).collect();
        let size = json_len(&views);
        let (page, next) = within_bytes(views.clone(), size);
        assert_eq!(page.len(), 3);
        assert_eq!(next, None);
    }

    #[test]
    fn a_page_stops_before_the_entry_that_passes_the_limit_and_names_the_last_seq() {
        let views: Vec<_> = (1..=3).map(|n| view(n, "environments/卫健委")).collect();
        let two = json_len(&views[..2]);
        let (page, next) = within_bytes(views.clone(), two);
        assert_eq!(page.len(), 2);
        assert_eq!(next, Some(2));
        let (page, next) = within_bytes(views, two - 1);
        assert_eq!(page.len(), 1);
        assert_eq!(next, Some(1));
    }

    #[test]
    fn one_entry_larger_than_the_limit_still_makes_a_page() {
        let views = vec![view(7, &"卫".repeat(100)), view(8, "x")];
        let (page, next) = within_bytes(views, 10);
        assert_eq!(page.len(), 1);
        assert_eq!(next, Some(7));
    }
}
