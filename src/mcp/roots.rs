//! The orchestrating client's working directory, from its MCP roots: Claude Code 2.1.197
//! declares the `roots` capability and answers `roots/list` with `file://<its cwd>`. Helpers
//! spawned without a `project_dir` then work where the person works, not in an empty folder.
//! Roots are deprecated in the newest protocol draft (SEP-2577), but the clients of the
//! current protocol offer them, so the warnings are silenced here and only here.
#![allow(deprecated)]

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::service::RequestContext;

/// How long the client may take to answer `roots/list`.
const ROOTS_WAIT: Duration = Duration::from_secs(3);

/// The client's directory as its retry of a call gave it (the stateless era: see
/// [`super::rounds`]), carried to the tool in the request's extensions.
#[derive(Debug, Clone)]
pub struct ClientDir(pub String);

/// The first `file://` root the client names, if it offers roots and answers in time.
pub async fn client_dir(ctx: &RequestContext<RoleServer>) -> Option<String> {
    if let Some(ClientDir(dir)) = ctx.extensions.get::<ClientDir>() {
        return Some(dir.clone());
    }
    let info = ctx.peer.peer_info()?;
    info.capabilities.roots.as_ref()?;
    let listed = tokio::time::timeout(ROOTS_WAIT, ctx.peer.list_roots()).await;
    let roots = match listed {
        Ok(Ok(roots)) => roots,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "the client did not list its roots");
            return None;
        }
        Err(_) => {
            tracing::debug!("the client did not list its roots within {ROOTS_WAIT:?}");
            return None;
        }
    };
    roots.roots.iter().find_map(|r| file_path(&r.uri))
}

/// The path of a `file://` URI (`file:///home/me/my%20app` is `/home/me/my app`).
pub(super) fn file_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("file://")?;
    // An authority other than empty or localhost names another machine.
    let path = match rest.find('/') {
        Some(0) => rest,
        Some(i) if &rest[..i] == "localhost" => &rest[i..],
        _ => return None,
    };
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = path
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok().filter(|p| p.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::file_path;

    #[test]
    fn file_uris_become_paths() {
        assert_eq!(file_path("file:///work/app").as_deref(), Some("/work/app"));
        assert_eq!(
            file_path("file:///home/me/my%20app").as_deref(),
            Some("/home/me/my app")
        );
        assert_eq!(file_path("file://localhost/srv").as_deref(), Some("/srv"));
        assert_eq!(file_path("file://otherhost/srv"), None);
        assert_eq!(file_path("https://example.com/x"), None);
        assert_eq!(file_path("file:///bad%zz").as_deref(), Some("/bad%zz"));
    }
}
