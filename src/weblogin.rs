//! Logging in to the dashboard, Jupyter's way: `serve` prints a link with a one-time code,
//! the browser trades it for a session cookie, and the page itself never holds a token.
//!
//! The cookie is derived from the server token, so it survives a restart and a new token
//! signs every browser out. It is HttpOnly (no script reads it) and SameSite=Strict (no other
//! site's page sends it).

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

/// The cookie value for a server token.
pub fn session_value(server_token: &str) -> String {
    let digest = Sha256::digest(format!("troupe dashboard session\n{server_token}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Set-Cookie` header that logs a browser in.
pub fn set_cookie(server_token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000{}",
        session_value(server_token),
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the request carries this server's session cookie.
pub fn has_session(headers: &HeaderMap, server_token: &str) -> bool {
    let want = session_value(server_token);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(k, v)| k == COOKIE && crate::auth::same(v, &want))
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
    fn the_cookie_is_this_servers_and_strict() {
        let set = set_cookie("tok-a", false);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(
            !set.contains("tok-a"),
            "the token itself is not in the cookie"
        );
        let value = session_value("tok-a");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={value}")).unwrap(),
        );
        assert!(has_session(&headers, "tok-a"));
        assert!(
            !has_session(&headers, "tok-b"),
            "a new token signs browsers out"
        );
        assert!(!has_session(&HeaderMap::new(), "tok-a"));
    }
}
