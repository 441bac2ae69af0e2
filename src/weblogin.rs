//! Logging in to the dashboard, Jupyter's way: `serve` prints a link with a one-time code,
//! the browser trades it for a session cookie, and the page itself never holds a token.
//!
//! Each login gets its own random session id; the server keeps its hash (in the database, so
//! a restart keeps browsers logged in), `/logout` ends one and `troupe logins --end-all` every
//! one, and a new server token ends them all. The cookie is HttpOnly (no script reads it) and
//! SameSite=Strict (no other site's page sends it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header;
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "troupe_session";

/// How long the link `troupe open` prints stays good.
pub const LINK_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// The link `serve` prints at start: good until used, or a day.
pub const START_LINK_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Codes not yet used, at most: each `troupe open` makes one, and old ones expire.
const MAX_CODES: usize = 64;

/// How long a browser stays logged in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// What ties a login to the server token it was made under: a new token ends every login.
pub fn token_binding(server_token: &str) -> String {
    hash(&format!("troupe dashboard session\n{server_token}"))
}

/// A new browser session: the id for its cookie, and the hash the server keeps.
pub fn new_session() -> (String, String) {
    let id = crate::auth::new_token();
    let kept = hash(&id);
    (id, kept)
}

/// The hash under which a session id is kept.
pub fn session_hash(id: &str) -> String {
    hash(id)
}

/// The `Set-Cookie` header that logs a browser in with session `id`.
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` header that forgets the session.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session id the request's cookie carries, if any.
pub fn presented(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == COOKIE && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// One-time login codes, kept as hashes until used or expired.
#[derive(Default)]
pub struct Codes {
    live: Mutex<HashMap<String, Instant>>,
}

impl Codes {
    /// A new code, good once within `lifetime`.
    pub fn issue(&self, lifetime: Duration) -> String {
        let code = crate::auth::new_token();
        let now = Instant::now();
        let mut live = self.live.lock().expect("login codes poisoned");
        live.retain(|_, until| *until > now);
        if live.len() >= MAX_CODES {
            // The oldest give way: a flood of `troupe open` cannot grow this without bound.
            if let Some(oldest) = live.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                live.remove(&oldest);
            }
        }
        live.insert(hash(&code), now + lifetime);
        code
    }

    /// Uses up `code`: true once, if it was issued and has not expired.
    pub fn redeem(&self, code: &str) -> bool {
        let mut live = self.live.lock().expect("login codes poisoned");
        match live.remove(&hash(code)) {
            Some(until) => until > Instant::now(),
            None => false,
        }
    }
}

fn hash(code: &str) -> String {
    let digest = Sha256::digest(code.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_code_works_once() {
        let codes = Codes::default();
        let code = codes.issue(LINK_LIFETIME);
        assert!(!codes.redeem("not-a-code"));
        assert!(codes.redeem(&code));
        assert!(!codes.redeem(&code), "a second use is refused");
    }

    #[test]
    fn an_expired_code_is_refused() {
        let codes = Codes::default();
        let code = codes.issue(Duration::ZERO);
        assert!(!codes.redeem(&code));
    }

    #[test]
    fn codes_are_bounded() {
        let codes = Codes::default();
        let first = codes.issue(LINK_LIFETIME);
        for _ in 0..MAX_CODES {
            codes.issue(LINK_LIFETIME);
        }
        assert_eq!(codes.live.lock().unwrap().len(), MAX_CODES);
        assert!(!codes.redeem(&first), "the oldest gave way");
    }

    #[test]
    fn each_login_has_its_own_id_and_the_cookie_is_strict() {
        let (a, kept_a) = new_session();
        let (b, _) = new_session();
        assert_ne!(a, b);
        assert_eq!(session_hash(&a), kept_a);
        assert_ne!(kept_a, a, "the server keeps a hash, not the id");
        let set = set_cookie(&a, false);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(!set.contains("Secure"));
        assert!(set_cookie(&a, true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={a}")).unwrap(),
        );
        assert_eq!(presented(&headers).as_deref(), Some(a.as_str()));
        assert_ne!(token_binding("tok-a"), token_binding("tok-b"));
    }
}
