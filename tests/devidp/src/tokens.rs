//! What a token says. The access token and the ID token are the same JWT, so a relying party
//! can verify either with the JWKS alone.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::users::User;

/// The claims of every token this provider signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer URL.
    pub iss: String,
    /// The username.
    pub sub: String,
    /// The client id the token is for.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// Not valid before, seconds since the epoch.
    pub nbf: i64,
    /// The display name, in Chinese.
    pub name: String,
    /// The username again, as OpenID Connect names it.
    pub preferred_username: String,
    /// The e-mail address, absent from minted tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The groups, such as `zhengyun:rsj:bureau-viewer`.
    pub groups: Vec<String>,
    /// The `nonce` of the authorization request, when it had one (OpenID Connect Core 3.1.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Who issues tokens, for whom, and for how long.
#[derive(Clone, Debug)]
pub struct Issuer {
    /// The `iss` of every token.
    pub url: String,
    /// The only client, and the `aud` of every token.
    pub client_id: String,
    /// How long a token is valid.
    pub lifetime: SignedDuration,
}

impl Issuer {
    /// The claims of a token for `user`, issued at `now`.
    pub fn claims_for(&self, user: &User, now: Timestamp, nonce: Option<String>) -> Claims {
        let now = now.as_second();
        Claims {
            iss: self.url.clone(),
            sub: user.username.clone(),
            aud: self.client_id.clone(),
            exp: now + self.lifetime.as_secs(),
            iat: now,
            nbf: now,
            name: user.name.clone(),
            preferred_username: user.username.clone(),
            email: Some(user.email.clone()),
            groups: user.groups.clone(),
            nonce,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_token_is_for_the_client_and_expires_after_the_lifetime() {
        let issuer = Issuer {
            url: "https://127.0.0.1:5556".into(),
            client_id: "zhengyun".into(),
            lifetime: SignedDuration::from_hours(1),
        };
        let user = User {
            username: "lina".into(),
            password: "zhengyun-dev".into(),
            name: "李娜".into(),
            email: "lina@wjw.example.gov.cn".into(),
            groups: vec!["zhengyun:wjw:bureau-viewer".into()],
        };
        let now = Timestamp::from_second(1_750_000_000).expect("a valid instant");
        let claims = issuer.claims_for(&user, now, None);
        assert_eq!(claims.aud, "zhengyun");
        assert_eq!(
            (claims.iat, claims.nbf, claims.exp),
            (1_750_000_000, 1_750_000_000, 1_750_003_600)
        );
        assert_eq!(claims.preferred_username, "lina");
        assert_eq!(claims.name, "李娜");
    }
}
