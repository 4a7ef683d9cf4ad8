//! `GET /api/v1/auth/providers`: the identity providers one may sign in with, for
//! `zhengyun login` and the console. No authentication: it is what one needs before having any.

use axum::{Json, extract::State};
use utoipa_axum::{router::OpenApiRouter, routes};
use zhengyun_contract::SignInProvider;

use crate::state::AppState;

/// The sign-in routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(providers))
}

/// The identity providers whose tokens the API accepts, with the client id to sign in as; empty
/// when the API accepts only its own tokens.
#[utoipa::path(get, path = "/api/v1/auth/providers", tag = "tokens",
    responses((status = 200, body = [SignInProvider])))]
async fn providers(State(state): State<AppState>) -> Json<Vec<SignInProvider>> {
    Json(
        state
            .oidc()
            .map(|oidc| {
                oidc.issuers()
                    .map(|issuer| SignInProvider {
                        issuer: issuer.issuer.clone(),
                        client_id: issuer.client_id().to_owned(),
                        display_name: issuer.display_name.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    )
}
