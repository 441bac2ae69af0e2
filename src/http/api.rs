//! The REST API: the same operations as the MCP tools, for the command-line client and scripts.

use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::db::instances::Instance;
use crate::error::Error;
use crate::supervisor::Supervisor;
use crate::supervisor::attached::{AttachRequest, Attached};
use crate::supervisor::teams::{NewMember, TeamView};

pub fn routes() -> Router<Supervisor> {
    Router::new()
        .route("/api/instances", get(list_instances))
        .route("/api/instances/{id}", get(get_instance))
        .route("/api/instances/{id}/send", post(send))
        .route("/api/instances/{id}/interrupt", post(interrupt))
        .route("/api/instances/{id}/terminate", post(terminate))
        .route("/api/instances/{id}/resume", post(resume))
        .route("/api/tree", get(tree))
        .route("/api/metrics", get(metrics))
        .route("/api/settings", get(settings))
        .route("/api/teams", get(list_teams).post(create_team))
        .route("/api/teams/{name}", get(get_team).delete(dissolve_team))
        .route("/api/teams/{name}/start", post(start_team))
        .route("/api/teams/{name}/resume", post(resume_team))
        .route("/api/sessions", post(attach_session))
        .route("/api/sessions/{id}/end", post(end_session))
        .layer(middleware::from_fn(json_only))
}

/// A request that changes something must say it carries JSON (`{}` when there is nothing to
/// say): a browser sends no such request across sites without asking first, so no web page
/// can make one with a simple form or a no-cors fetch.
async fn json_only(req: Request, next: Next) -> Response {
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if reads || json {
        return next.run(req).await;
    }
    let body = Json(json!({
        "error": format!(
            "{} {} changes something, so it takes a JSON body: send `Content-Type: \
             application/json` (and `{{}}` if there is nothing else to say)",
            req.method(),
            req.uri().path()
        )
    }));
    (StatusCode::UNSUPPORTED_MEDIA_TYPE, body).into_response()
}

/// `GET /api/instances`: the live instances, each with its tokens and cost so far.
async fn list_instances(State(sup): State<Supervisor>) -> Result<Json<Value>, Error> {
    let mut out = Vec::new();
    for inst in Instance::list(sup.pool(), false).await? {
        let usage =
            crate::db::usage::UsageRecord::totals_for_instance(sup.pool(), &inst.id).await?;
        let mut row = serde_json::to_value(&inst).unwrap_or_default();
        row["usage"] = serde_json::to_value(usage).unwrap_or_default();
        out.push(row);
    }
    Ok(Json(json!({ "instances": out })))
}

#[derive(Deserialize)]
struct CreateTeam {
    name: String,
    #[serde(default)]
    description: String,
    members: Vec<NewMember>,
    #[serde(default)]
    project_dir: Option<String>,
}

async fn create_team(
    State(sup): State<Supervisor>,
    Json(body): Json<CreateTeam>,
) -> Result<(StatusCode, Json<TeamView>), Error> {
    let team = sup
        .create_team(
            &body.name,
            &body.description,
            body.members,
            body.project_dir,
            None,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(team)))
}

/// `GET /api/instances/{id}`: one instance, with its usage (404 for an unknown id).
async fn get_instance(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let inst = Instance::find(sup.pool(), &id)
        .await?
        .ok_or_else(|| Error::UnknownInstance(id.clone()))?;
    let usage = crate::db::usage::UsageRecord::totals_for_instance(sup.pool(), &id).await?;
    let mut row = serde_json::to_value(&inst).unwrap_or_default();
    row["usage"] = serde_json::to_value(usage).unwrap_or_default();
    Ok(Json(row))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    message: String,
    /// Wait for the answer (default true).
    #[serde(default)]
    wait: Option<bool>,
    /// Seconds to wait (default: the server's --default-wait).
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

/// `POST /api/instances/{id}/send {"message": ..., "wait": true}`: the message, answered
/// when `wait` (the default), queued otherwise.
async fn send(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
    body: Result<Json<SendBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::db::messages::Message>, Error> {
    let Json(body) = body.map_err(|e| Error::InvalidInput(e.body_text()))?;
    let message = sup.send(&id, &body.message, None).await?;
    if body.wait == Some(false) {
        return Ok(Json(message));
    }
    let wait = match body.timeout_seconds {
        Some(s) if s == 0 || s > crate::supervisor::MAX_WAIT.as_secs() => {
            return Err(Error::InvalidInput(format!(
                "timeout_seconds must be 1 to {}",
                crate::supervisor::MAX_WAIT.as_secs()
            )));
        }
        Some(s) => std::time::Duration::from_secs(s),
        None => sup.config().default_wait,
    };
    Ok(Json(sup.wait_message(&message.id, wait).await?))
}

/// `POST /api/instances/{id}/interrupt`: stops the running turn, keeps the conversation.
async fn interrupt(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
) -> Result<Json<crate::supervisor::instance::InterruptReport>, Error> {
    Ok(Json(sup.interrupt(&id, None).await?))
}

/// `POST /api/instances/{id}/terminate`: ends it and everything under it.
async fn terminate(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let done = sup.terminate(&id, None).await?;
    Ok(Json(json!({ "terminated": done })))
}

/// `POST /api/instances/{id}/resume`: brings a stopped instance back with its conversation.
async fn resume(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
) -> Result<Json<Instance>, Error> {
    Ok(Json(sup.resume_instance(&id, None).await?))
}

/// `GET /api/tree`: the parent/child tree, as text and as nodes.
async fn tree(State(sup): State<Supervisor>) -> Result<Json<Value>, Error> {
    let (roots, text) = sup.tree(None, false).await?;
    Ok(Json(json!({ "text": text, "roots": roots })))
}

#[derive(Deserialize, Default)]
struct MetricsQuery {
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    instance_id: Option<String>,
}

/// `GET /api/metrics[?team=NAME|?instance_id=ID]`: the session's figures.
async fn metrics(
    State(sup): State<Supervisor>,
    axum::extract::Query(q): axum::extract::Query<MetricsQuery>,
) -> Result<Json<crate::supervisor::metrics::Metrics>, Error> {
    let scope = match (q.team, q.instance_id) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidInput(
                "give team or instance_id, not both".into(),
            ));
        }
        (Some(t), None) => crate::supervisor::metrics::Scope::Team(t),
        (None, Some(i)) => crate::supervisor::metrics::Scope::Subtree(i),
        (None, None) => crate::supervisor::metrics::Scope::All,
    };
    Ok(Json(sup.metrics(scope).await?))
}

/// `GET /api/settings`: every control with its source.
async fn settings(State(sup): State<Supervisor>) -> Json<Value> {
    Json(json!({
        "precedence": crate::mcp::SETTINGS_PRECEDENCE,
        "settings": sup.settings(),
    }))
}

async fn list_teams(State(sup): State<Supervisor>) -> Result<Json<Value>, Error> {
    Ok(Json(json!({ "teams": sup.list_teams().await? })))
}

async fn get_team(
    State(sup): State<Supervisor>,
    Path(name): Path<String>,
) -> Result<Json<TeamView>, Error> {
    Ok(Json(sup.team(&name).await?))
}

#[derive(Deserialize, Default)]
struct StartTeam {
    #[serde(default)]
    project_dir: Option<String>,
}

async fn start_team(
    State(sup): State<Supervisor>,
    Path(name): Path<String>,
    body: Option<Json<StartTeam>>,
) -> Result<Json<TeamView>, Error> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    Ok(Json(sup.start_team(&name, body.project_dir, None).await?))
}

async fn resume_team(
    State(sup): State<Supervisor>,
    Path(name): Path<String>,
) -> Result<Json<TeamView>, Error> {
    Ok(Json(sup.resume_team(&name, None).await?))
}

async fn dissolve_team(
    State(sup): State<Supervisor>,
    Path(name): Path<String>,
) -> Result<Json<TeamView>, Error> {
    Ok(Json(sup.dissolve_team(&name, None).await?))
}

/// `troupe chat` attaches the person's own session as a root instance.
async fn attach_session(
    State(sup): State<Supervisor>,
    Json(body): Json<AttachRequest>,
) -> Result<(StatusCode, Json<Attached>), Error> {
    Ok((StatusCode::CREATED, Json(sup.attach(body, None).await?)))
}

async fn end_session(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    sup.detach(&id, None).await?;
    Ok(Json(json!({ "instance_id": id, "state": "terminated" })))
}
