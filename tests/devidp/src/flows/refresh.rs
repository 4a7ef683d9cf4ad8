//! Refresh tokens (RFC 6749 6): each is good once, and the answer carries the next, so a
//! stolen one stops working as soon as either party uses it.

use std::time::{Duration, Instant};

use super::{Grants, Refusal, Session, lock, random_token};

/// How long a refresh token may be used.
pub const REFRESH_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug)]
pub(super) struct RefreshGrant {
    client_id: String,
    session: Session,
    expires: Instant,
}

impl Grants {
    /// A new refresh token continuing `session` for `client_id`.
    pub fn issue_refresh(&self, client_id: &str, session: Session, now: Instant) -> String {
        let mut refresh = lock(&self.refresh);
        refresh.retain(|_, grant| grant.expires > now);
        let token = random_token();
        let grant = RefreshGrant {
            client_id: client_id.to_owned(),
            session,
            expires: now + REFRESH_LIFETIME,
        };
        refresh.insert(token.clone(), grant);
        token
    }

    /// Uses up a refresh token and returns its session, narrowed to `scope` when one is asked
    /// for.
    pub fn redeem_refresh(
        &self,
        token: &str,
        client_id: &str,
        scope: Option<&str>,
        now: Instant,
    ) -> Result<Session, Refusal> {
        let mut refresh = lock(&self.refresh);
        let grant = refresh
            .get(token)
            .filter(|grant| grant.expires > now && grant.client_id == client_id)
            .ok_or(Refusal::InvalidGrant(
                "the refresh token is unknown, used or expired",
            ))?;
        let mut session = grant.session.clone();
        if let Some(asked) = scope {
            session.scope = narrow_scope(&session.scope, asked).ok_or(Refusal::InvalidScope)?;
        }
        refresh.remove(token);
        Ok(session)
    }

    /// Revokes every refresh token of a grant family.
    pub(super) fn revoke_family(&self, family: &str) {
        lock(&self.refresh).retain(|_, grant| grant.session.family != family);
    }
}

/// `asked` if every scope in it was granted.
fn narrow_scope(granted: &str, asked: &str) -> Option<String> {
    let granted: Vec<&str> = granted.split_whitespace().collect();
    let asked: Vec<&str> = asked.split_whitespace().collect();
    asked
        .iter()
        .all(|scope| granted.contains(scope))
        .then(|| asked.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_token_is_good_once_and_cannot_widen_the_scope() {
        let grants = Grants::default();
        let now = Instant::now();
        let session = Session::new("chenjing".into(), "openid groups".into(), None);
        let token = grants.issue_refresh("zhengyun", session, now);
        assert_eq!(
            grants.redeem_refresh(&token, "zhengyun", Some("openid email"), now),
            Err(Refusal::InvalidScope)
        );
        let narrowed = grants
            .redeem_refresh(&token, "zhengyun", Some("openid"), now)
            .expect("narrows");
        assert_eq!(narrowed.scope, "openid");
        let again = grants.redeem_refresh(&token, "zhengyun", None, now);
        assert!(matches!(again, Err(Refusal::InvalidGrant(_))));
    }

    #[test]
    fn a_refresh_token_expires_after_a_day() {
        let grants = Grants::default();
        let now = Instant::now();
        let session = Session::new("chenjing".into(), "openid".into(), None);
        let token = grants.issue_refresh("zhengyun", session, now);
        let late = grants.redeem_refresh(&token, "zhengyun", None, now + REFRESH_LIFETIME);
        assert!(matches!(late, Err(Refusal::InvalidGrant(_))));
    }
}
