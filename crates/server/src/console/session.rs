//! Console sessions and CSRF tokens.
//!
//! A session is created only by a successful sign-in, so a client can never choose its
//! own session id (no fixation). The id is 32 random bytes, handed to the browser once in
//! an `HttpOnly; SameSite=Strict` cookie; the server keeps only its SHA-256, so a lookup
//! never compares the secret itself and a memory dump of the table holds no usable ids.
//!
//! Sessions live in memory: a restart signs everyone out, which is the safe direction.
//! Each session ends after [`SessionLimits::idle`] without a request or
//! [`SessionLimits::absolute`] after sign-in, whichever comes first, and the table holds
//! at most [`SessionLimits::max_sessions`] (the least recently used goes first), so no
//! number of sign-ins grows memory without bound.
//!
//! CSRF: every session carries a random token that state-changing requests must echo in
//! the [`CSRF_HEADER`]. Sign-in itself has no session yet, so it uses a double-submit
//! token: the value of the [`SIGN_IN_CSRF_COOKIE`] must come back in the header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64_URL;
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The session cookie. Scoped to `/console` so API clients never send it.
pub const SESSION_COOKIE: &str = "opentrail_session";
/// The pre-sign-in double-submit CSRF cookie.
pub const SIGN_IN_CSRF_COOKIE: &str = "opentrail_sign_in_csrf";
/// Where the console's JavaScript puts the CSRF token on POST and DELETE requests. A
/// custom header also forces a CORS preflight on any cross-origin attempt, which this
/// server never grants.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Cookie path: the console only.
pub const COOKIE_PATH: &str = "/console";

const TOKEN_RANDOM_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomSourceError(String);

/// 32 random bytes as URL-safe base64 (43 characters): session ids and CSRF tokens.
pub fn random_token() -> Result<String, RandomSourceError> {
    let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|error| RandomSourceError(error.to_string()))?;
    Ok(BASE64_URL.encode(bytes))
}

/// Constant-time equality, for comparing a presented token with the expected one.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    // Lengths are not secret (every token has the same length); contents are.
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused for this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub absolute: Duration,
    /// The most sessions kept at once.
    pub max_sessions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 60 * 60),
            max_sessions: 10_000,
        }
    }
}

/// What a session remembers. The key's role and account are not copied here: they are
/// read from the key store on every request, so revoking the key ends the session at once.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    pub access_key_id: String,
    pub csrf_token: String,
    pub signed_in_at: jiff::Timestamp,
    created: Instant,
    last_used: Instant,
}

/// Tokens are credentials: `{:?}` must never put them in a log line.
impl std::fmt::Debug for Session {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("csrf_token", &"<redacted>")
            .field("signed_in_at", &self.signed_in_at)
            .finish_non_exhaustive()
    }
}

/// A new session: the id goes into the cookie, the rest stays on the server.
#[derive(Clone)]
pub struct NewSession {
    pub id: String,
    pub session: Session,
}

type IdHash = [u8; 32];

/// The shared session table. Cloning shares it.
#[derive(Clone)]
pub struct SessionStore {
    limits: SessionLimits,
    sessions: Arc<Mutex<HashMap<IdHash, Session>>>,
}

impl SessionStore {
    pub fn new(limits: SessionLimits) -> SessionStore {
        SessionStore {
            limits,
            sessions: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    /// Starts a session for `access_key_id` (the caller has verified its secret).
    pub fn create(&self, access_key_id: &str) -> Result<NewSession, RandomSourceError> {
        self.create_at(access_key_id, Instant::now())
    }

    pub fn create_at(
        &self,
        access_key_id: &str,
        now: Instant,
    ) -> Result<NewSession, RandomSourceError> {
        let id = random_token()?;
        let session = Session {
            access_key_id: access_key_id.to_owned(),
            csrf_token: random_token()?,
            signed_in_at: jiff::Timestamp::now(),
            created: now,
            last_used: now,
        };
        let mut sessions = self.lock();
        if sessions.len() >= self.limits.max_sessions {
            sessions.retain(|_, existing| !self.is_expired(existing, now));
        }
        while sessions.len() >= self.limits.max_sessions.max(1) {
            // Still full of live sessions: the least recently used one makes room. Only
            // holders of valid keys can create sessions, so this is not an outsider's lever.
            let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, existing)| existing.last_used)
                .map(|(hash, _)| *hash)
            else {
                break;
            };
            sessions.remove(&oldest);
        }
        sessions.insert(id_hash(&id), session.clone());
        metrics::gauge!("opentrail_console_sessions").set(sessions.len() as f64);
        Ok(NewSession { id, session })
    }

    /// The live session for a cookie value, marked as used now; `None` when unknown or
    /// expired (an expired one is removed).
    pub fn touch(&self, id: &str) -> Option<Session> {
        self.touch_at(id, Instant::now())
    }

    pub fn touch_at(&self, id: &str, now: Instant) -> Option<Session> {
        let hash = id_hash(id);
        let mut sessions = self.lock();
        let session = sessions.get_mut(&hash)?;
        if self.is_expired(session, now) {
            sessions.remove(&hash);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    /// Ends a session (sign-out, or its key was revoked). Returns it if it existed.
    pub fn remove(&self, id: &str) -> Option<Session> {
        let removed = self.lock().remove(&id_hash(id));
        metrics::gauge!("opentrail_console_sessions").set(self.len() as f64);
        removed
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_expired(&self, session: &Session, now: Instant) -> bool {
        now.saturating_duration_since(session.last_used) >= self.limits.idle
            || now.saturating_duration_since(session.created) >= self.limits.absolute
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IdHash, Session>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters (each operation is one insert or remove), so keep serving.
        match self.sessions.lock() {
            Ok(sessions) => sessions,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn id_hash(id: &str) -> IdHash {
    Sha256::digest(id.as_bytes()).into()
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`).
pub fn cookie_value<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// A `Set-Cookie` value for a console cookie. `max_age_seconds` `Some(0)` deletes it;
/// `None` makes a browser-session cookie (the server-side expiry is what counts).
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age_seconds: Option<u64>) -> String {
    let mut cookie = format!("{name}={value}; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict");
    if let Some(seconds) = max_age_seconds {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_sessions: usize) -> SessionLimits {
        SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(600),
            max_sessions,
        }
    }

    #[test]
    fn a_session_is_found_by_its_id_and_only_by_it() {
        let store = SessionStore::new(limits(10));
        let now = Instant::now();
        let created = store.create_at("OTAKALICE", now).expect("random");
        assert_eq!(created.id.len(), 43);
        assert_ne!(created.id, created.session.csrf_token);
        let found = store.touch_at(&created.id, now).expect("live");
        assert_eq!(found.access_key_id, "OTAKALICE");
        assert!(store.touch_at("not-a-session", now).is_none());
        assert!(store.touch_at(&created.id[1..], now).is_none());
    }

    #[test]
    fn sessions_expire_when_idle_and_absolutely() {
        let store = SessionStore::new(limits(10));
        let start = Instant::now();
        let idle = store.create_at("OTAKIDLE", start).expect("random");
        assert!(
            store
                .touch_at(&idle.id, start + Duration::from_secs(59))
                .is_some()
        );
        // Used at 59 s, so idle until 119 s.
        assert!(
            store
                .touch_at(&idle.id, start + Duration::from_secs(118))
                .is_some()
        );
        assert!(
            store
                .touch_at(&idle.id, start + Duration::from_secs(178))
                .is_none()
        );
        assert_eq!(store.len(), 0, "an expired session is removed when seen");

        let busy = store.create_at("OTAKBUSY", start).expect("random");
        let mut now = start;
        while now + Duration::from_secs(30) < start + Duration::from_secs(600) {
            now += Duration::from_secs(30);
            assert!(store.touch_at(&busy.id, now).is_some());
        }
        assert!(
            store
                .touch_at(&busy.id, start + Duration::from_secs(600))
                .is_none(),
            "the absolute limit ends even a busy session"
        );
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_least_recently_used() {
        let store = SessionStore::new(limits(3));
        let start = Instant::now();
        let first = store.create_at("OTAK1", start).expect("random");
        let second = store
            .create_at("OTAK2", start + Duration::from_secs(1))
            .expect("random");
        let third = store
            .create_at("OTAK3", start + Duration::from_secs(2))
            .expect("random");
        // The first is used again, so the second is now the least recently used.
        assert!(
            store
                .touch_at(&first.id, start + Duration::from_secs(3))
                .is_some()
        );
        let fourth = store
            .create_at("OTAK4", start + Duration::from_secs(4))
            .expect("random");
        assert_eq!(store.len(), 3);
        let now = start + Duration::from_secs(5);
        assert!(store.touch_at(&second.id, now).is_none());
        for kept in [&first, &third, &fourth] {
            assert!(store.touch_at(&kept.id, now).is_some());
        }
    }

    #[test]
    fn expired_sessions_make_room_before_live_ones_are_dropped() {
        let store = SessionStore::new(limits(2));
        let start = Instant::now();
        let stale = store.create_at("OTAKSTALE", start).expect("random");
        let live = store
            .create_at("OTAKLIVE", start + Duration::from_secs(50))
            .expect("random");
        let later = start + Duration::from_secs(100);
        let newest = store.create_at("OTAKNEW", later).expect("random");
        assert!(store.touch_at(&stale.id, later).is_none());
        assert!(store.touch_at(&live.id, later).is_some());
        assert!(store.touch_at(&newest.id, later).is_some());
    }

    #[test]
    fn removal_ends_a_session() {
        let store = SessionStore::new(limits(10));
        let created = store.create("OTAKBYE").expect("random");
        assert!(store.remove(&created.id).is_some());
        assert!(store.touch(&created.id).is_none());
        assert!(store.remove(&created.id).is_none());
    }

    #[test]
    fn tokens_compare_exactly() {
        let token = random_token().expect("random");
        assert!(tokens_match(&token, &token.clone()));
        assert!(!tokens_match(&token, &random_token().expect("random")));
        assert!(!tokens_match("", &token));
        assert!(!tokens_match(&token[..42], &token));
    }

    #[test]
    fn cookies_are_read_and_written_with_the_safe_attributes() {
        let header = "theme=dark; opentrail_session=abc-123; other=x=y";
        assert_eq!(cookie_value(header, SESSION_COOKIE), Some("abc-123"));
        assert_eq!(cookie_value(header, "other"), Some("x=y"));
        assert_eq!(cookie_value(header, "missing"), None);
        let cookie = set_cookie(SESSION_COOKIE, "abc", false, None);
        assert_eq!(
            cookie,
            "opentrail_session=abc; Path=/console; HttpOnly; SameSite=Strict"
        );
        let deleted = set_cookie(SESSION_COOKIE, "", true, Some(0));
        assert!(deleted.ends_with("; Max-Age=0; Secure"), "{deleted}");
    }
}
