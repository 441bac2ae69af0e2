//! Only the clients meant to reach troupe do: every request names an allowed host (loopback,
//! plus any `--allow-host`), so no DNS rebinding; and a browser request must come from a page
//! on such a host, so no cross-site request from any web page the user happens to open.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

const LOOPBACK: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// The host names requests may use: loopback always, and those the user added.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    extra: Vec<String>,
}

impl Allowed {
    pub fn new(extra: &[String]) -> Arc<Allowed> {
        Arc::new(Allowed {
            extra: extra
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        })
    }

    fn host(&self, host: &str) -> bool {
        is_loopback(host) || self.extra.iter().any(|h| host.eq_ignore_ascii_case(h))
    }
}

pub async fn allowed_only(
    State(allowed): State<Arc<Allowed>>,
    req: Request,
    next: Next,
) -> Response {
    match allowed.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(why) => {
            tracing::warn!(
                method = %req.method(),
                path = %req.uri().path(),
                "refused: {why}"
            );
            (StatusCode::FORBIDDEN, Json(json!({ "error": why }))).into_response()
        }
    }
}

impl Allowed {
    /// Why the request is refused, if it is.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .ok_or("the request names no Host")?;
        if !self.host(host_name(host)) {
            return Err(format!(
                "Host {host:?} is not one troupe answers to (loopback, or a name given with \
                 --allow-host)"
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("(not text)");
            let ok = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|authority| self.host(host_name(authority)));
            if !ok {
                return Err(format!(
                    "requests from the web page {origin:?} are refused; troupe answers its own \
                     clients only"
                ));
            }
        }
        Ok(())
    }
}

/// The host of `host[:port]`, `[v6]:port` or `[v6]`.
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn is_loopback(host: &str) -> bool {
    LOOPBACK.iter().any(|l| host.eq_ignore_ascii_case(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn check(h: &HeaderMap) -> Result<(), String> {
        Allowed::default().check(h)
    }

    #[test]
    fn added_hosts_pass_as_loopback_does() {
        let allowed = Allowed::new(&["Box.LAN".into()]);
        assert_eq!(allowed.check(&headers(&[("host", "box.lan:8001")])), Ok(()));
        let h = headers(&[("host", "box.lan:8001"), ("origin", "http://box.lan:8001")]);
        assert_eq!(allowed.check(&h), Ok(()));
        assert!(allowed.check(&headers(&[("host", "other.lan")])).is_err());
        assert!(check(&headers(&[("host", "box.lan")])).is_err());
    }

    #[test]
    fn loopback_hosts_and_origins_pass_others_do_not() {
        for host in [
            "127.0.0.1:8001",
            "localhost:8001",
            "[::1]:8001",
            "localhost",
            "LOCALHOST:1",
        ] {
            assert_eq!(check(&headers(&[("host", host)])), Ok(()), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:8001",
            "0.0.0.0:8001",
            "127.0.0.1.nip.io:80",
        ] {
            assert!(check(&headers(&[("host", host)])).is_err(), "{host}");
        }
        assert!(check(&HeaderMap::new()).is_err());
        let ok = [
            ("host", "127.0.0.1:8001"),
            ("origin", "http://localhost:8001"),
        ];
        assert_eq!(check(&headers(&ok)), Ok(()));
        for origin in [
            "https://evil.example",
            "null",
            "http://127.0.0.1.evil.example",
            "file://",
        ] {
            let h = headers(&[("host", "127.0.0.1:8001"), ("origin", origin)]);
            assert!(check(&h).is_err(), "{origin}");
        }
    }
}
