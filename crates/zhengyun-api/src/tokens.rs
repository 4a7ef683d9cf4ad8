//! `/api/v1/tokens`: platform admins issue and revoke bearer tokens, auditors read what tokens
//! exist (never their secrets); anyone can ask who they are. Every token expires.

use axum::{extract::State, http::StatusCode};
use jiff::{SignedDuration, Timestamp};
use utoipa_axum::{router::OpenApiRouter, routes};
pub use zhengyun_contract::tokens::{CreateToken, IssuedToken, TokenView, WhoAmI};
use zhengyun_store::{NewToken, Role, TokenId};

use crate::{
    context::{Audit, Caller},
    extract::{Json, Path, Query},
    page::{Page, PageQuery, page},
    problem::{ApiResult, Problem},
    reply::Created,
    state::AppState,
};

/// The token routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(whoami))
}

/// Every token ever issued, revoked and expired ones included, never a secret (platform admin,
/// auditor: audit entries name these ids).
/// Paged: `limit` (500 by default) and `after`, the `x-next-after` (a token id) of the previous
/// page.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(PageQuery),
    responses((status = 200, body = [TokenView],
            headers(("x-next-after" = String, description = "The `after` of the next page, when there is one"))),
        (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> ApiResult<Page<TokenView>> {
    caller.require(&[Role::PlatformAdmin, Role::Auditor])?;
    let tokens = state.store().list_tokens().await?;
    let views: Vec<TokenView> = tokens
        .into_iter()
        .map(|t| TokenView {
            id: t.id.as_str().to_owned(),
            role: t.role.as_str().to_owned(),
            bureau: t.bureau,
            description: t.description,
            created_at: t.created_at.to_string(),
            expires_at: t.expires_at.to_string(),
            revoked_at: t.revoked_at.map(|at| at.to_string()),
        })
        .collect();
    page(views, |t| &t.id, query.limit, query.after.as_deref())
}

/// Issues a token for a role (and bureau) that expires after `lifetimeDays` (platform admin).
/// The secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = IssuedToken), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Json(body): Json<CreateToken>,
) -> ApiResult<Created<IssuedToken>> {
    audit.about("token.create", "tokens".to_owned(), body.bureau.as_deref());
    caller.require(&[Role::PlatformAdmin])?;
    zhengyun_model::names::check_visible_text(&body.description)
        .map_err(|m| Problem::invalid_field("description", m))?;
    let role: Role = body
        .role
        .parse()
        .map_err(|_| Problem::invalid_field("role", format!("unknown role {:?}, expected platform-admin, bureau-admin, bureau-viewer, finance or auditor", body.role)))?;
    let policy = state.token_policy();
    let max_days = policy.max_lifetime.as_hours() / 24;
    let lifetime = match body.lifetime_days {
        None => policy.default_lifetime,
        Some(days) if days >= 1 && i64::from(days) <= max_days => {
            SignedDuration::from_hours(i64::from(days) * 24)
        }
        Some(days) => {
            return Err(Problem::invalid_field(
                "lifetimeDays",
                format!("{days} days: a token lives from 1 to {max_days} days"),
            ));
        }
    };
    let mut bureau_uid = None;
    if let Some(bureau) = body.bureau.as_deref().filter(|_| role.is_bureau_scoped()) {
        zhengyun_model::names::check_bureau_code(bureau)
            .map_err(|m| Problem::invalid_field("bureau", m))?;
        let Some(found) = state.bureaus().get_opt(bureau).await? else {
            return Err(Problem::invalid_field(
                "bureau",
                format!("no bureau {bureau:?}"),
            ));
        };
        bureau_uid = found.metadata.uid;
    }
    // To the microsecond, as stored, so that the expiry shown is the one listed.
    let now = Timestamp::from_microsecond(Timestamp::now().as_microsecond())
        .map_err(|_| Problem::invalid_field("lifetimeDays", "out of range"))?;
    let expires_at = now
        .checked_add(lifetime)
        .map_err(|_| Problem::invalid_field("lifetimeDays", "out of range"))?;
    let (id, secret) = state
        .store()
        .issue_token_at(
            &NewToken {
                role,
                bureau: body.bureau.as_deref(),
                bureau_uid: bureau_uid.as_deref(),
                description: &body.description,
                expires_at,
            },
            now,
        )
        .await?;
    audit.note(|n| n.object = Some(format!("tokens/{id}")));
    Ok(Created {
        location: format!("/api/v1/tokens/{id}"),
        body: IssuedToken {
            id: id.as_str().to_owned(),
            secret: secret.expose().to_owned(),
            role: role.as_str().to_owned(),
            bureau: body.bureau,
            expires_at: expires_at.to_string(),
        },
    })
}

/// Revokes a token; it stops working at once (platform admin).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    audit.about("token.revoke", format!("tokens/{id}"), None);
    caller.require(&[Role::PlatformAdmin])?;
    let id: TokenId = id
        .parse()
        .map_err(|_| Problem::not_found(format!("token {id:?} not found")))?;
    state.store().revoke_token(&id).await?;
    state.token_cache().clear();
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's token id, role and bureau.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "tokens",
    responses((status = 200, body = WhoAmI), (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn whoami(caller: Caller) -> ApiResult<axum::Json<WhoAmI>> {
    Ok(axum::Json(WhoAmI {
        token: caller.name().to_owned(),
        role: caller.role().as_str().to_owned(),
        bureau: caller.bureau().map(str::to_owned),
        expires_at: caller.0.expires_at.to_string(),
    }))
}
