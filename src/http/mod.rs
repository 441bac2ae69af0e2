//! The HTTP side: one route table, read top to bottom.

pub mod api;
mod auth;
mod dashboard;
mod events;
mod guard;
mod sessions;

/// The largest request body troupe reads: messages and system prompts are at most 100 KB,
/// so this leaves room for JSON escaping and many at once.
pub const MAX_BODY_BYTES: usize = 4 << 20;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::auth::Caller;
use crate::error::Error;
use crate::mcp::Troupe;
use crate::supervisor::Supervisor;

pub fn router(sup: Supervisor, shutdown: CancellationToken) -> Router {
    let mcp_sup = sup.clone();
    let mcp_state = Arc::new(crate::mcp::State::default());
    let mcp = StreamableHttpService::new(
        move || Ok(Troupe::new(mcp_sup.clone(), mcp_state.clone())),
        Arc::new(sessions::Sessions::new(
            sup.config().max_mcp_sessions,
            sup.config().mcp_session_idle,
        )),
        StreamableHttpServerConfig::default()
            .with_max_request_body_bytes(MAX_BODY_BYTES)
            .with_sse_keep_alive(Some(std::time::Duration::from_secs(15)))
            .with_cancellation_token(shutdown.child_token()),
    );
    // Layers run outside in: the token is checked before anything reads the request.
    let authenticated = Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(
            sup.clone(),
            note_instance_client,
        ))
        .merge(api::routes())
        .layer(middleware::from_fn_with_state(
            sup.clone(),
            auth::require_token,
        ));
    let allowed = guard::Allowed::new(&sup.config().allowed_hosts);
    Router::new()
        .route("/health", get(health))
        .route("/", get(dashboard::index))
        .route("/login", get(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .route("/assets/app.js", get(dashboard::app_js))
        .route("/assets/app.css", get(dashboard::app_css))
        .route("/sw.js", get(dashboard::sw_js))
        .route("/hooks/{instance_id}", post(hook))
        // A notification's one-time link is its own proof: no token, no login.
        .route("/n/{token}", get(link_show).post(link_decide))
        .merge(authenticated)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(allowed, guard::allowed_only))
        .layer(TraceLayer::new_for_http())
        .with_state(sup)
}

/// Open to anyone who may reach the server at all, so it says only whether troupe is up and
/// its database answers: `degraded`, with the reason, while it does not (the server still
/// takes hooks and calls; their writes wait and are retried).
async fn health(State(sup): State<Supervisor>) -> Json<Value> {
    match sup.pool().ping(HEALTH_PING).await {
        None => Json(json!({ "status": "ok", "service": "troupe" })),
        Some(outage) => Json(json!({
            "status": "degraded",
            "service": "troupe",
            "reason": outage.describe(),
            "since": outage.since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })),
    }
}

/// How long `/health` waits for the database to answer.
const HEALTH_PING: std::time::Duration = std::time::Duration::from_secs(2);

/// Notices when a spawned instance's MCP client has received troupe's tool and prompt
/// lists, which is when its model can call troupe; requests and responses pass unchanged.
async fn note_instance_client(State(sup): State<Supervisor>, req: Request, next: Next) -> Response {
    let instance = match req.extensions().get::<Caller>() {
        Some(Caller::Instance(id)) => Some(id.clone()),
        _ => None,
    };
    let Some(instance) = instance.filter(|_| req.method() == Method::POST) else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let method = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["method"].as_str().map(str::to_string));
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let list = match method.as_deref() {
        Some("tools/list") => crate::supervisor::McpList::Tools,
        Some("prompts/list") => crate::supervisor::McpList::Prompts,
        _ => return response,
    };
    if !response.status().is_success() {
        return response;
    }
    // Signal once the whole answer has been handed to the client, not when headers go out.
    let (parts, body) = response.into_parts();
    let done = futures::stream::once(async move {
        sup.mcp_list_answered(&instance, list);
    })
    .filter_map(|()| async { None::<Result<axum::body::Bytes, axum::Error>> });
    let body = Body::from_stream(body.into_data_stream().chain(done));
    Response::from_parts(parts, body)
}

/// `GET /n/{token}`: the question a notification's link decides, and a button; never decides.
async fn link_show(State(sup): State<Supervisor>, Path(token): Path<String>) -> Response {
    link_response(sup.link_page(&token, false).await)
}

/// `POST /n/{token}`: decides, once.
async fn link_decide(State(sup): State<Supervisor>, Path(token): Path<String>) -> Response {
    link_response(sup.link_page(&token, true).await)
}

fn link_response((status, html): (StatusCode, String)) -> Response {
    let mut response = (status, axum::response::Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    // Not no-referrer: the button's POST would then say its origin is `null`, which the
    // Host/Origin guard refuses. The page links nowhere else, so the token goes nowhere.
    headers.insert(
        axum::http::header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    response
}

/// An instance's lifecycle hooks post their payload here, with the instance's own token.
async fn hook(
    State(sup): State<Supervisor>,
    Path(instance_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, Response> {
    let presented = crate::auth::presented(&headers, uri.query());
    auth::instance(&sup, &instance_id, presented.as_deref(), uri.path()).await?;
    let Json(payload) = payload.map_err(IntoResponse::into_response)?;
    let answer = sup
        .hook(&instance_id, payload)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(answer))
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
            Error::UnknownInstance(_)
            | Error::UnknownMessage(_)
            | Error::UnknownApproval(_)
            | Error::UnknownTeam(_) => StatusCode::NOT_FOUND,
            Error::NotRunning { .. } | Error::Limit(_) | Error::Refused(_) => StatusCode::CONFLICT,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}
