//! The dashboard: a page and two assets compiled into the binary, and the login that trades a
//! one-time code (or the server token) for a session cookie.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::db::web_sessions::WebSession;
use crate::supervisor::Supervisor;
use crate::weblogin;

const INDEX: &str = include_str!("dashboard/index.html");
/// The page with the CLIs troupe runs in its spawn form.
static INDEX_PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let options: Vec<String> = crate::agents::AgentKind::ALL
        .iter()
        .map(|k| format!("<option value=\"{k}\">{k}</option>"))
        .collect();
    INDEX.replace("<!-- agents -->", &options.join("\n              "))
});
const LOGIN: &str = include_str!("dashboard/login.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");
const SW_JS: &str = include_str!("dashboard/sw.js");

/// Nothing but the page's own files may run or load, and no other site may frame it.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// Whether the request comes from a logged-in browser: its cookie names a live session made
/// under the current server token.
pub async fn signed_in(sup: &Supervisor, headers: &HeaderMap) -> bool {
    let Some(id) = weblogin::presented(headers) else {
        return false;
    };
    let binding = weblogin::token_binding(&sup.config().token);
    WebSession::live(sup.pool(), &weblogin::session_hash(&id), &binding)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("cannot check a dashboard login: {e}");
            false
        })
}

/// `GET /`: the dashboard for a logged-in browser, else how to log in.
pub async fn index(State(sup): State<Supervisor>, headers: HeaderMap) -> Response {
    if signed_in(&sup, &headers).await {
        page(StatusCode::OK, &INDEX_PAGE)
    } else {
        page(StatusCode::OK, LOGIN)
    }
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /sw.js`: the service worker that shows Web Push notices (served from the root, so its
/// scope is the whole dashboard).
pub async fn sw_js() -> Response {
    asset("text/javascript; charset=utf-8", SW_JS)
}

pub async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    code: Option<String>,
}

/// `GET /login?code=…`: sets the session cookie and sends the browser to `/`, so the code
/// leaves the address bar at once. Only one-time codes log in: the server token in a URL would
/// stay in the browser's history.
pub async fn login(
    State(sup): State<Supervisor>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let token = &sup.config().token;
    let ok = q
        .code
        .as_deref()
        .is_some_and(|code| sup.logins().redeem(code));
    if !ok {
        tracing::warn!("refused a dashboard login: the link's code is used, expired or wrong");
        let mut response = page(StatusCode::UNAUTHORIZED, LOGIN);
        response.headers_mut().insert(
            "x-troupe-login",
            HeaderValue::from_static("the link is used, expired or wrong"),
        );
        return response;
    }
    let (id, kept) = weblogin::new_session();
    let expires = crate::db::stamp(
        chrono::Utc::now()
            + chrono::TimeDelta::from_std(weblogin::SESSION_LIFETIME).unwrap_or_default(),
    );
    if let Err(e) =
        WebSession::insert(sup.pool(), &kept, &weblogin::token_binding(token), &expires).await
    {
        tracing::warn!("cannot record a dashboard login: {e}");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "troupe could not record the login; try the link again",
        )
            .into_response();
    }
    tracing::info!("a browser logged in to the dashboard");
    let secure = sup.config().public_url.starts_with("https://");
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&weblogin::set_cookie(&id, secure)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    no_store(&mut response);
    response
}

/// `POST /logout`: ends this browser's login and forgets its cookie. The cookie is
/// SameSite=Strict, so another site's page cannot log the person out either.
pub async fn logout(State(sup): State<Supervisor>, headers: HeaderMap) -> Response {
    if let Some(id) = weblogin::presented(&headers) {
        match WebSession::end(sup.pool(), &weblogin::session_hash(&id)).await {
            Ok(true) => tracing::info!("a browser logged out of the dashboard"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!("cannot end a dashboard login: {e}");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "troupe could not end the login; try again",
                )
                    .into_response();
            }
        }
    }
    let secure = sup.config().public_url.starts_with("https://");
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&weblogin::clear_cookie(secure)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    no_store(&mut response);
    response
}

fn page(status: StatusCode, html: &'static str) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    no_store(&mut response);
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A new binary may bring new assets under the same names.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_spawn_form_offers_every_agent() {
        for kind in crate::agents::AgentKind::ALL {
            assert!(
                super::INDEX_PAGE.contains(&format!("<option value=\"{kind}\">{kind}</option>")),
                "{kind}"
            );
        }
        assert!(!super::INDEX_PAGE.contains("<!-- agents -->"));
    }
}
