//! Authorization codes (RFC 6749 4.1) bound to a PKCE challenge (RFC 7636), for native apps
//! that listen on a loopback port (RFC 8252).

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use super::{Grants, Refusal, Session, lock, random_token};

/// How long an authorization code may be exchanged.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// An authorization request the user has approved, waiting to be exchanged for tokens.
#[derive(Clone, Debug)]
pub struct CodeRequest {
    /// The client that asked.
    pub client_id: String,
    /// Where the code was sent; the exchange must name it again.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// Who signed in, with what scope.
    pub session: Session,
}

#[derive(Debug)]
pub(super) struct PendingCode {
    request: CodeRequest,
    expires: Instant,
    redeemed: bool,
}

impl Grants {
    /// Stores an approved authorization request and returns its code.
    pub fn issue_code(&self, request: CodeRequest, now: Instant) -> String {
        let mut codes = lock(&self.codes);
        codes.retain(|_, pending| pending.expires > now);
        let code = random_token();
        let pending = PendingCode {
            request,
            expires: now + CODE_LIFETIME,
            redeemed: false,
        };
        codes.insert(code.clone(), pending);
        code
    }

    /// Exchanges a code. A wrong verifier leaves the code usable; a second exchange after a
    /// successful one fails and revokes the refresh tokens the first one led to.
    pub fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        code_verifier: &str,
        now: Instant,
    ) -> Result<Session, Refusal> {
        let mut codes = lock(&self.codes);
        let pending = codes
            .get_mut(code)
            .filter(|pending| pending.expires > now)
            .ok_or(Refusal::InvalidGrant(
                "the authorization code is unknown or expired",
            ))?;
        if pending.redeemed {
            let family = pending.request.session.family.clone();
            drop(codes);
            self.revoke_family(&family);
            return Err(Refusal::InvalidGrant(
                "the authorization code was already used",
            ));
        }
        let request = &pending.request;
        if request.client_id != client_id {
            return Err(Refusal::InvalidGrant(
                "the authorization code was issued to another client",
            ));
        }
        if request.redirect_uri != redirect_uri {
            return Err(Refusal::InvalidGrant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        if !verifier_matches(code_verifier, &request.code_challenge) {
            return Err(Refusal::InvalidGrant(
                "code_verifier does not match the code_challenge",
            ));
        }
        pending.redeemed = true;
        Ok(request.session.clone())
    }
}

/// Whether `verifier` is a well-formed PKCE verifier whose S256 transform is `challenge`.
fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    is_pkce_string(verifier) && s256(verifier) == challenge
}

/// The S256 transform of a PKCE verifier: base64url(SHA-256(verifier)).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// Whether `value` has the length and alphabet of a PKCE verifier or challenge (RFC 7636 4.1).
pub fn is_pkce_string(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
}

/// `uri` if it is a redirect URI a native app on this machine can listen on (RFC 8252 7.3):
/// plain HTTP to a loopback address, without user information or fragment.
pub fn loopback_redirect(uri: &str) -> Option<Url> {
    let url = Url::parse(uri).ok()?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let plain = url.username().is_empty() && url.password().is_none() && url.fragment().is_none();
    (url.scheme() == "http" && loopback && plain).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const REDIRECT_URI: &str = "http://127.0.0.1:8400/callback";

    fn code_request() -> CodeRequest {
        CodeRequest {
            client_id: "zhengyun".into(),
            redirect_uri: REDIRECT_URI.into(),
            code_challenge: s256(VERIFIER),
            session: Session::new("zhangwei".into(), "openid groups".into(), None),
        }
    }

    #[test]
    fn the_s256_transform_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256(VERIFIER),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_code_is_exchanged_once_and_only_with_its_verifier() {
        let grants = Grants::default();
        let now = Instant::now();
        let code = grants.issue_code(code_request(), now);
        let redeem =
            |verifier: &str| grants.redeem_code(&code, "zhengyun", REDIRECT_URI, verifier, now);
        let wrong = "A".repeat(43);
        assert!(matches!(redeem(&wrong), Err(Refusal::InvalidGrant(_))));
        assert_eq!(
            redeem(VERIFIER).map(|session| session.username),
            Ok("zhangwei".into())
        );
        assert!(matches!(redeem(VERIFIER), Err(Refusal::InvalidGrant(_))));
    }

    #[test]
    fn a_code_expires_after_sixty_seconds() {
        let grants = Grants::default();
        let now = Instant::now();
        let code = grants.issue_code(code_request(), now);
        let later = now + CODE_LIFETIME;
        let redeemed = grants.redeem_code(&code, "zhengyun", REDIRECT_URI, VERIFIER, later);
        assert!(matches!(redeemed, Err(Refusal::InvalidGrant(_))));
    }

    #[test]
    fn a_code_needs_the_same_redirect_uri_and_client() {
        let grants = Grants::default();
        let now = Instant::now();
        let code = grants.issue_code(code_request(), now);
        let elsewhere = "http://127.0.0.1:8401/callback";
        let moved = grants.redeem_code(&code, "zhengyun", elsewhere, VERIFIER, now);
        assert!(matches!(moved, Err(Refusal::InvalidGrant(_))));
        let stranger = grants.redeem_code(&code, "other", REDIRECT_URI, VERIFIER, now);
        assert!(matches!(stranger, Err(Refusal::InvalidGrant(_))));
    }

    #[test]
    fn a_reused_code_revokes_the_refresh_tokens_it_led_to() {
        let grants = Grants::default();
        let now = Instant::now();
        let code = grants.issue_code(code_request(), now);
        let session = grants
            .redeem_code(&code, "zhengyun", REDIRECT_URI, VERIFIER, now)
            .expect("first use");
        let refresh = grants.issue_refresh("zhengyun", session, now);
        let reused = grants.redeem_code(&code, "zhengyun", REDIRECT_URI, VERIFIER, now);
        assert!(matches!(reused, Err(Refusal::InvalidGrant(_))));
        assert!(matches!(
            grants.redeem_refresh(&refresh, "zhengyun", None, now),
            Err(Refusal::InvalidGrant(_))
        ));
    }

    #[test]
    fn only_loopback_http_redirects_are_accepted() {
        assert!(loopback_redirect("http://127.0.0.1:8400/callback").is_some());
        assert!(loopback_redirect("http://localhost:39999/").is_some());
        assert!(loopback_redirect("http://[::1]:8400/cb").is_some());
        assert!(loopback_redirect("https://127.0.0.1:8400/callback").is_none());
        assert!(loopback_redirect("http://evil.example:8400/callback").is_none());
        assert!(loopback_redirect("http://127.0.0.1.evil.example/callback").is_none());
        assert!(loopback_redirect("http://user@127.0.0.1:8400/callback").is_none());
        assert!(loopback_redirect("http://127.0.0.1:8400/callback#fragment").is_none());
        assert!(loopback_redirect("not a url").is_none());
    }
}
