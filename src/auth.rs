//! Who is calling. Nothing is taken on its word: the person's clients (MCP, REST, the command
//! line) carry the server token, and each instance troupe starts carries a token of its own on
//! its hooks and on its MCP calls, next to the header that names it.

use std::path::Path;

use axum::http::{HeaderMap, header};

/// The header a spawned instance's MCP config carries, naming the instance that calls. Only
/// believed together with that instance's token.
pub const INSTANCE_HEADER: &str = "x-troupe-instance";

/// The query parameter that carries a token for clients that cannot set headers.
pub const TOKEN_PARAM: &str = "token";

/// A proven caller, put into the request's extensions by the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Holds the server token: the person, through any client.
    User,
    /// One of troupe's own instances, by its own token.
    Instance(String),
}

/// A new random token: 32 bytes as hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares in time that depends on the lengths only, so a guess learns nothing from timing.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The token a request presents: `Authorization: Bearer <token>`, else `?token=<token>`.
pub fn presented(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        });
    bearer.or_else(|| {
        query?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == TOKEN_PARAM).then(|| v.to_string())
        })
    })
}

/// The instance a request names, if it names one.
pub fn claimed_instance(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(INSTANCE_HEADER)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// A token a person chose must survive a URL's query as it is.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.len() < 16 {
        return Err(format!(
            "the server token is {} characters; use at least 16 (or leave it unset and troupe \
             makes one)",
            token.len()
        ));
    }
    if let Some(c) = token
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')))
    {
        return Err(format!(
            "the server token contains {c:?}; use letters, digits, '-', '_', '.' or '~'"
        ));
    }
    Ok(())
}

/// Where the server token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token` / `TROUPE_TOKEN`.
    Given,
    /// The `token` file in the data directory, from an earlier start.
    File,
    /// Made now and saved in the data directory.
    Created,
}

/// The server token: the one given, else the data directory's `token` file, else a new one
/// written there (600), so clients configured once keep working across restarts.
pub fn server_token(data_dir: &Path, given: &str) -> std::io::Result<(String, TokenSource)> {
    if !given.is_empty() {
        check_token(given).map_err(std::io::Error::other)?;
        return Ok((given.to_string(), TokenSource::Given));
    }
    let path = data_dir.join("token");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_string();
            check_token(&token).map_err(|e| {
                std::io::Error::other(format!(
                    "{}: {e}; delete it to get a new one",
                    path.display()
                ))
            })?;
            crate::private::touch(&path)?;
            Ok((token, TokenSource::File))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = new_token();
            crate::private::write(&path, format!("{token}\n").as_bytes())?;
            Ok((token, TokenSource::Created))
        }
        Err(e) => Err(e),
    }
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

    #[test]
    fn a_token_is_read_from_the_header_or_the_query() {
        let h = headers(&[("authorization", "Bearer abc")]);
        assert_eq!(presented(&h, None).as_deref(), Some("abc"));
        let h = headers(&[("authorization", "bearer  abc ")]);
        assert_eq!(presented(&h, None).as_deref(), Some("abc"));
        let h = headers(&[("authorization", "Basic abc")]);
        assert_eq!(presented(&h, None), None);
        assert_eq!(
            presented(&HeaderMap::new(), Some("a=1&token=xyz")).as_deref(),
            Some("xyz")
        );
        assert_eq!(presented(&HeaderMap::new(), Some("tokens=xyz")), None);
        // The header wins over the query.
        let h = headers(&[("authorization", "Bearer abc")]);
        assert_eq!(presented(&h, Some("token=xyz")).as_deref(), Some("abc"));
    }

    #[test]
    fn tokens_compare_exactly() {
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert!(same(&t, &t.clone()));
        assert!(!same(&t, &t[..63]));
        assert!(!same(&t, &new_token()));
        assert!(!same("", "x"));
    }

    #[test]
    fn chosen_tokens_must_be_long_and_url_safe() {
        assert!(check_token("short").is_err());
        assert!(check_token("0123456789abcdef").is_ok());
        let e = check_token("0123456789abcdef&x=1").unwrap_err();
        assert!(e.contains("'&'"), "{e}");
    }

    #[test]
    fn the_server_token_is_made_once_and_kept_private() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (first, source) = server_token(dir.path(), "").unwrap();
        assert_eq!(source, TokenSource::Created);
        let mode = std::fs::metadata(dir.path().join("token")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, source) = server_token(dir.path(), "").unwrap();
        assert_eq!(
            (again.as_str(), source),
            (first.as_str(), TokenSource::File)
        );
        let (given, source) = server_token(dir.path(), "my-own-token-123456").unwrap();
        assert_eq!(
            (given.as_str(), source),
            ("my-own-token-123456", TokenSource::Given)
        );
        assert!(server_token(dir.path(), "bad token with spaces").is_err());
    }

    #[test]
    fn an_identity_is_only_a_claim_until_its_token_matches() {
        let h = headers(&[("x-troupe-instance", " dev-1a2b ")]);
        assert_eq!(claimed_instance(&h).as_deref(), Some("dev-1a2b"));
        assert_eq!(
            claimed_instance(&headers(&[("x-troupe-instance", "")])),
            None
        );
    }
}
