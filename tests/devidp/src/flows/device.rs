//! Device authorizations (RFC 8628): a device shows a user code, its user approves or refuses
//! it in a browser, and the device polls until then.

use std::time::{Duration, Instant};

use super::{Grants, Refusal, Session, lock, random_bytes, random_token};

/// How long a device authorization waits for the user.
pub const DEVICE_LIFETIME: Duration = Duration::from_secs(600);
/// How often a device may poll at first.
pub const DEVICE_INTERVAL: Duration = Duration::from_secs(1);
/// How much longer a device must wait after polling too fast (RFC 8628 3.5).
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// Letters that cannot be mistaken for one another or for digits, nor spell words (RFC 8628 6.1).
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A device authorization just started: what `/device/code` answers.
#[derive(Clone, Debug)]
pub struct DeviceStart {
    /// The secret the device polls with.
    pub device_code: String,
    /// What the user types, `XXXX-XXXX`.
    pub user_code: String,
}

#[derive(Debug)]
enum Decision {
    Pending,
    Approved(String),
    Denied,
}

#[derive(Debug)]
pub(super) struct DeviceAuthorization {
    client_id: String,
    user_code: String,
    scope: String,
    expires: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
    decision: Decision,
}

impl Grants {
    /// Starts a device authorization for `client_id`.
    pub fn start_device(&self, client_id: &str, scope: String, now: Instant) -> DeviceStart {
        let mut devices = lock(&self.devices);
        // Expired authorizations stay a while so that late polls hear `expired_token`.
        devices.retain(|_, device| device.expires + DEVICE_LIFETIME > now);
        let user_code = loop {
            let candidate = new_user_code();
            if !devices.values().any(|device| device.user_code == candidate) {
                break candidate;
            }
        };
        let device_code = random_token();
        devices.insert(
            device_code.clone(),
            DeviceAuthorization {
                client_id: client_id.to_owned(),
                user_code: user_code.clone(),
                scope,
                expires: now + DEVICE_LIFETIME,
                interval: DEVICE_INTERVAL,
                last_poll: None,
                decision: Decision::Pending,
            },
        );
        DeviceStart {
            device_code,
            user_code,
        }
    }

    /// Records the user's decision on the pending device authorization shown as `user_code`:
    /// approval by `approver`, or refusal when there is none. False if no such authorization is
    /// pending.
    pub fn decide_device(&self, user_code: &str, approver: Option<&str>, now: Instant) -> bool {
        let user_code = normalize_user_code(user_code);
        let mut devices = lock(&self.devices);
        let Some(device) = devices.values_mut().find(|device| {
            device.user_code == user_code
                && device.expires > now
                && matches!(device.decision, Decision::Pending)
        }) else {
            return false;
        };
        device.decision = match approver {
            Some(username) => Decision::Approved(username.to_owned()),
            None => Decision::Denied,
        };
        true
    }

    /// A device's poll: the session once the user approved, else why not yet or not at all.
    pub fn poll_device(
        &self,
        device_code: &str,
        client_id: &str,
        now: Instant,
    ) -> Result<Session, Refusal> {
        let mut devices = lock(&self.devices);
        let device = devices
            .get_mut(device_code)
            .filter(|device| device.client_id == client_id)
            .ok_or(Refusal::InvalidGrant("the device code is unknown"))?;
        if device.expires <= now {
            return Err(Refusal::ExpiredToken);
        }
        let too_soon = device
            .last_poll
            .is_some_and(|last| now.saturating_duration_since(last) < device.interval);
        device.last_poll = Some(now);
        if too_soon {
            device.interval += SLOW_DOWN_STEP;
            return Err(Refusal::SlowDown);
        }
        let username = match &device.decision {
            Decision::Pending => return Err(Refusal::AuthorizationPending),
            Decision::Denied => return Err(Refusal::AccessDenied),
            Decision::Approved(username) => username.clone(),
        };
        let scope = device.scope.clone();
        devices.remove(device_code);
        Ok(Session::new(username, scope, None))
    }
}

/// A user code as typed, made comparable: upper case, the hyphen where it belongs.
pub fn normalize_user_code(typed: &str) -> String {
    let letters: String = typed
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|letter| letter.to_ascii_uppercase())
        .collect();
    if letters.len() == 8 {
        format!("{}-{}", &letters[..4], &letters[4..])
    } else {
        letters
    }
}

/// Eight letters of the alphabet, each equally likely.
fn new_user_code() -> String {
    // 240 is the largest multiple of 20 a byte holds; bytes past it would favour some letters.
    let letters: String = std::iter::repeat_with(random_bytes::<16>)
        .flatten()
        .filter(|byte| *byte < 240)
        .take(8)
        .map(|byte| char::from(USER_CODE_ALPHABET[usize::from(byte) % USER_CODE_ALPHABET.len()]))
        .collect();
    normalize_user_code(&letters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_pending_then_told_to_slow_down_then_gets_its_session() {
        let grants = Grants::default();
        let start = Instant::now();
        let device = grants.start_device("zhengyun", "openid".into(), start);
        let poll = |at: Instant| grants.poll_device(&device.device_code, "zhengyun", at);
        assert_eq!(poll(start), Err(Refusal::AuthorizationPending));
        let soon = start + Duration::from_millis(100);
        assert_eq!(poll(soon), Err(Refusal::SlowDown));
        let typed = device.user_code.to_lowercase();
        assert!(grants.decide_device(&typed, Some("lina"), start));
        // The interval is now 6 s; polling 2 s later is too soon again and makes it 11 s.
        assert_eq!(poll(start + Duration::from_secs(2)), Err(Refusal::SlowDown));
        assert_eq!(
            poll(start + Duration::from_secs(12)),
            Err(Refusal::SlowDown)
        );
        let session = poll(start + Duration::from_secs(30)).expect("approved");
        assert_eq!(session.username, "lina");
        let again = poll(start + Duration::from_secs(60));
        assert!(matches!(again, Err(Refusal::InvalidGrant(_))));
    }

    #[test]
    fn a_refused_device_hears_access_denied_and_a_late_one_expired_token() {
        let grants = Grants::default();
        let start = Instant::now();
        let denied = grants.start_device("zhengyun", "openid".into(), start);
        assert!(grants.decide_device(&denied.user_code, None, start));
        assert_eq!(
            grants.poll_device(&denied.device_code, "zhengyun", start),
            Err(Refusal::AccessDenied)
        );
        let late = grants.start_device("zhengyun", "openid".into(), start);
        let expiry = start + DEVICE_LIFETIME;
        assert_eq!(
            grants.poll_device(&late.device_code, "zhengyun", expiry),
            Err(Refusal::ExpiredToken)
        );
        assert!(!grants.decide_device(&late.user_code, Some("lina"), expiry));
    }

    #[test]
    fn user_codes_use_the_unambiguous_alphabet() {
        let grants = Grants::default();
        let code = grants
            .start_device("zhengyun", "openid".into(), Instant::now())
            .user_code;
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        let letters = code.replace('-', "");
        assert!(
            letters
                .bytes()
                .all(|letter| USER_CODE_ALPHABET.contains(&letter))
        );
        assert_eq!(normalize_user_code(" bcdf ghjk "), "BCDF-GHJK");
    }
}
