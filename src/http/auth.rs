//! Every request to /mcp and /api proves who sends it (see [`crate::auth`]); /hooks/<id> takes
//! only that instance's token. A refused identity claim is written to the audit log.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::{self, Caller};
use crate::db::audit;
use crate::supervisor::Supervisor;

/// Puts the proven [`Caller`] into the request's extensions, or answers 401.
pub async fn require_token(
    State(sup): State<Supervisor>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = auth::presented(req.headers(), req.uri().query());
    let claimed = auth::claimed_instance(req.headers());
    let path = req.uri().path().to_string();
    let caller = match claimed {
        Some(id) => match instance(&sup, &id, presented.as_deref(), &path).await {
            Ok(()) => Caller::Instance(id),
            Err(response) => return response,
        },
        None => match presented {
            Some(t) if auth::same(&t, &sup.config().token) => Caller::User,
            Some(_) => return refuse("the token is not this server's", &sup),
            // The dashboard's cookie: only this server's pages send it (SameSite=Strict).
            None if !path.starts_with("/mcp")
                && super::dashboard::signed_in(&sup, req.headers()).await =>
            {
                Caller::User
            }
            None => return refuse("this request carries no token", &sup),
        },
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Whether `presented` is instance `id`'s own token; a refusal is audited.
pub async fn instance(
    sup: &Supervisor,
    id: &str,
    presented: Option<&str>,
    path: &str,
) -> Result<(), Response> {
    let token = match sup.instance_token(id).await {
        Ok(t) => t,
        Err(e) => {
            let body = Json(json!({ "error": format!("database error: {e}") }));
            return Err((StatusCode::INTERNAL_SERVER_ERROR, body).into_response());
        }
    };
    let why = match (token, presented) {
        (Some(c), Some(t)) if auth::same(t, &c) => return Ok(()),
        (None, _) => "no instance by that name has a token",
        (Some(_), None) => "it carries no token",
        (Some(_), Some(_)) => "its token is not that instance's",
    };
    tracing::warn!(
        instance = id,
        path,
        "refused a request in an instance's name: {why}"
    );
    // The claimed id may be anything; only a known instance's log row names it.
    let known = crate::db::instances::Instance::exists(sup.pool(), id)
        .await
        .unwrap_or(false);
    audit::record(
        sup.pool(),
        None,
        known.then_some(id),
        "auth.refused",
        json!({ "claimed_instance": id, "path": path, "why": why }),
    )
    .await;
    let body = Json(json!({
        "error": format!(
            "refused: this request speaks for instance {id:?}, but {why}. Only that instance \
             may, with its own token as `Authorization: Bearer <token>`; the person's clients \
             send the server token and no instance header"
        )
    }));
    Err((StatusCode::UNAUTHORIZED, body).into_response())
}

fn refuse(why: &str, sup: &Supervisor) -> Response {
    let token_file = sup.config().data_dir.join("token");
    let body = Json(json!({
        "error": format!(
            "{why}. troupe needs its token: send `Authorization: Bearer <token>` (or add \
             `?token=<token>` to the URL). The token is in {} unless the server was started \
             with --token or TROUPE_TOKEN.",
            token_file.display()
        )
    }));
    let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"troupe\""),
    );
    response
}
