//! The person's answers and logins over REST: permission requests, approvals, dashboard
//! login links and sessions.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Error;
use crate::supervisor::Supervisor;

/// `GET /api/permissions`: permission requests waiting for a decision.
pub(super) async fn pending_permissions(
    State(sup): State<Supervisor>,
) -> Result<Json<Value>, Error> {
    let requests: Vec<Value> = sup
        .pending_permissions(None)
        .await?
        .into_iter()
        .map(permission_json)
        .collect();
    Ok(Json(json!({ "requests": requests })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RespondBody {
    decision: crate::permissions::Decision,
    #[serde(default)]
    message: Option<String>,
}

/// `POST /api/instances/{id}/permissions/{request_id} {"decision": "allow"|"deny"}`.
pub(super) async fn respond_to_permission(
    State(sup): State<Supervisor>,
    Path((id, request_id)): Path<(String, String)>,
    body: Result<Json<RespondBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Error> {
    let Json(b) = body.map_err(|e| Error::InvalidInput(e.body_text()))?;
    super::known(&sup, &id).await?;
    let req = sup
        .respond_to_permission(&id, &request_id, b.decision, b.message, None)
        .await?;
    Ok(Json(permission_json(req)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ApprovalsQuery {
    /// Every state, newest first, rather than the ones waiting.
    #[serde(default)]
    all: bool,
}

/// `GET /api/approvals[?all=true]`: instances' calls waiting for the person's approval.
pub(super) async fn approvals(
    State(sup): State<Supervisor>,
    query: Result<Query<ApprovalsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Error> {
    let Query(q) = query.map_err(|e| Error::InvalidInput(e.body_text()))?;
    let list: Vec<crate::mcp::ApprovalView> = sup
        .approvals(q.all)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(json!({ "approvals": list })))
}

/// `GET /api/approvals/{id}`.
pub(super) async fn get_approval(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
) -> Result<Json<crate::mcp::ApprovalView>, Error> {
    Ok(Json(sup.approval(None, &id).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApproveBody {
    approve: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/approvals/{id} {"approve": true|false, "reason": "…"}`: the person's answer.
pub(super) async fn respond_to_approval(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
    body: Result<Json<ApproveBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::mcp::ApprovalView>, Error> {
    let Json(b) = body.map_err(|e| Error::InvalidInput(e.body_text()))?;
    let a = sup
        .decide_approval(&id, b.approve, "rest", b.reason)
        .await?;
    Ok(Json(a.into()))
}

fn permission_json(r: crate::db::permissions::PermissionAsk) -> Value {
    let input = serde_json::from_str::<Value>(&r.tool_input).unwrap_or(Value::String(r.tool_input));
    json!({
        "request_id": r.id, "instance_id": r.instance_id, "message_id": r.message_id,
        "tool_name": r.tool_name, "tool_input": input, "summary": r.summary, "state": r.state,
        "decided_by": r.decided_by, "message": r.message, "asked_at": r.asked_at,
        "decided_at": r.decided_at,
    })
}

/// `POST /api/login-link`: a one-time dashboard link (what `troupe open` prints).
pub(super) async fn login_link(State(sup): State<Supervisor>) -> Json<Value> {
    let code = sup.logins().issue(crate::weblogin::LINK_LIFETIME);
    Json(json!({
        "url": format!("{}/login?code={code}", sup.config().public_url),
        "expires_in_seconds": crate::weblogin::LINK_LIFETIME.as_secs(),
    }))
}

/// `GET /api/logins`: the dashboard logins that are live (when made, until when).
pub(super) async fn logins(State(sup): State<Supervisor>) -> Result<Json<Value>, Error> {
    let open = crate::db::web_sessions::WebSession::open(sup.pool()).await?;
    Ok(Json(json!({ "logins": open })))
}

/// `DELETE /api/logins`: ends every dashboard login; each browser must log in again.
pub(super) async fn end_logins(State(sup): State<Supervisor>) -> Result<Json<Value>, Error> {
    let ended = crate::db::web_sessions::WebSession::end_all(sup.pool()).await?;
    crate::db::audit::record(
        sup.pool(),
        None,
        None,
        "logins.ended",
        json!({ "ended": ended }),
    )
    .await;
    Ok(Json(json!({ "ended": ended })))
}
