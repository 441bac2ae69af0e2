//! The REST API: the same operations as the MCP tools, for the command-line client and scripts.

use axum::body::Bytes;
use axum::extract::{Extension, FromRequestParts, Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::db::instances::Instance;
use crate::db::pages;
use crate::error::Error;
use crate::kept::Kept;
use crate::states::InstanceState;
use crate::supervisor::Supervisor;
use crate::supervisor::attached::{AttachRequest, Attached};
use crate::supervisor::teams::{NewMember, TeamView};

mod asks;
mod hosts;
mod notify;
mod push;

pub fn routes() -> Router<Supervisor> {
    Router::new()
        .route("/api/instances", get(list_instances).post(spawn))
        .route("/api/instances/{id}", get(get_instance))
        .route("/api/instances/{id}/output", get(output))
        .route("/api/instances/{id}/messages", get(messages))
        .route("/api/instances/{id}/files", get(files))
        .route("/api/instances/{id}/files/content", get(file_content))
        .route("/api/instances/{id}/send", post(send))
        .route("/api/instances/{id}/interrupt", post(interrupt))
        .route("/api/instances/{id}/terminate", post(terminate))
        .route("/api/instances/{id}/resume", post(resume))
        .route("/api/instances/{id}/worktree", get(worktree_status))
        .route("/api/instances/{id}/worktree/remove", post(remove_worktree))
        .route("/api/tree", get(tree))
        .route("/api/hosts", get(hosts::list))
        .route("/api/hosts/{name}/drain", post(hosts::drain))
        .route("/api/hosts/{name}/forget", post(hosts::forget))
        .route("/api/metrics", get(metrics))
        .route("/api/settings", get(settings))
        .route("/api/usage", get(usage))
        .route("/api/limits", get(limits))
        .route("/api/mcp-clients", get(mcp_clients))
        .route("/api/audit", get(audit))
        .route("/api/events", get(super::events::stream))
        .route("/api/login-link", post(asks::login_link))
        .route("/api/logins", get(asks::logins).delete(asks::end_logins))
        .route("/api/permissions", get(asks::pending_permissions))
        .route(
            "/api/instances/{id}/permissions/{request_id}",
            post(asks::respond_to_permission),
        )
        .route("/api/approvals", get(asks::approvals))
        .route(
            "/api/approvals/{id}",
            get(asks::get_approval).post(asks::respond_to_approval),
        )
        .route("/api/teams", get(list_teams).post(create_team))
        .route("/api/teams/{name}", get(get_team).delete(dissolve_team))
        .route("/api/teams/{name}/start", post(start_team))
        .route("/api/teams/{name}/resume", post(resume_team))
        .route("/api/sessions", post(attach_session))
        .route("/api/sessions/{id}/end", post(end_session))
        .route("/api/notify", get(notify::list))
        .route("/api/notify/test", post(notify::test))
        .route("/api/push", get(push::info))
        .route(
            "/api/push/subscriptions",
            post(push::subscribe).delete(push::unsubscribe),
        )
        .layer(Extension(KeptLists::default()))
        .layer(middleware::from_fn(json_only))
        .layer(middleware::from_fn(person_only))
}

/// Every REST route (method and path) in [`routes`], all of them the person's (see
/// [`person_only`]); a unit test holds this to the router, and the access tests try each with
/// an instance's token.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/instances"),
    ("POST", "/api/instances"),
    ("GET", "/api/instances/{id}"),
    ("GET", "/api/instances/{id}/output"),
    ("GET", "/api/instances/{id}/messages"),
    ("GET", "/api/instances/{id}/files"),
    ("GET", "/api/instances/{id}/files/content"),
    ("POST", "/api/instances/{id}/send"),
    ("POST", "/api/instances/{id}/interrupt"),
    ("POST", "/api/instances/{id}/terminate"),
    ("POST", "/api/instances/{id}/resume"),
    ("GET", "/api/instances/{id}/worktree"),
    ("POST", "/api/instances/{id}/worktree/remove"),
    ("GET", "/api/tree"),
    ("GET", "/api/hosts"),
    ("POST", "/api/hosts/{name}/drain"),
    ("POST", "/api/hosts/{name}/forget"),
    ("GET", "/api/metrics"),
    ("GET", "/api/settings"),
    ("GET", "/api/usage"),
    ("GET", "/api/limits"),
    ("GET", "/api/mcp-clients"),
    ("GET", "/api/audit"),
    ("GET", "/api/events"),
    ("POST", "/api/login-link"),
    ("GET", "/api/logins"),
    ("DELETE", "/api/logins"),
    ("GET", "/api/permissions"),
    ("POST", "/api/instances/{id}/permissions/{request_id}"),
    ("GET", "/api/approvals"),
    ("GET", "/api/approvals/{id}"),
    ("POST", "/api/approvals/{id}"),
    ("GET", "/api/teams"),
    ("POST", "/api/teams"),
    ("GET", "/api/teams/{name}"),
    ("DELETE", "/api/teams/{name}"),
    ("POST", "/api/teams/{name}/start"),
    ("POST", "/api/teams/{name}/resume"),
    ("POST", "/api/sessions"),
    ("POST", "/api/sessions/{id}/end"),
    ("GET", "/api/notify"),
    ("POST", "/api/notify/test"),
    ("GET", "/api/push"),
    ("POST", "/api/push/subscriptions"),
    ("DELETE", "/api/push/subscriptions"),
];

/// The REST API acts for the person: an instance proves who it is to reach MCP, where each
/// tool checks what that instance may do, and gets no way around those checks here.
async fn person_only(req: Request, next: Next) -> Response {
    match req.extensions().get::<crate::auth::Caller>() {
        Some(crate::auth::Caller::Instance(id)) => {
            let body = Json(json!({
                "error": format!(
                    "the REST API is for the person's clients; instance {id} talks to troupe \
                     through its MCP tools"
                )
            }));
            (StatusCode::FORBIDDEN, body).into_response()
        }
        _ => next.run(req).await,
    }
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

/// A query string read into `T`; a bad one is a 400 that says what is wrong.
struct Params<T>(T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Error> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(Params(t)),
            Err(e) => Err(Error::InvalidInput(e.body_text())),
        }
    }
}

/// `limit` as asked, checked.
fn limit(asked: Option<i64>) -> Result<i64, Error> {
    match asked {
        None => Ok(pages::DEFAULT_LIMIT),
        Some(n) if (1..=pages::MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(Error::InvalidInput(format!(
            "limit must be 1 to {}, not {n}",
            pages::MAX_LIMIT
        ))),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    all: Option<bool>,
    /// Comma-separated states.
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

/// What a `GET /api/instances` answer was made from.
#[derive(Clone, PartialEq)]
struct ListKey {
    version: u64,
    all: bool,
    states: Vec<InstanceState>,
    role: Option<String>,
    agent: Option<String>,
    team_id: Option<String>,
    parent: Option<String>,
}

/// `GET /api/instances` answers, kept from one write of the rows to the next: every
/// dashboard open on hundreds of instances asks again after each change it is told of, and
/// reading and writing out every column of every row took 5-9 ms of CPU per call at 300
/// instances.
type KeptLists = std::sync::Arc<Kept<ListKey, Bytes>>;

/// `GET /api/instances`: the instances (live ones unless `all=true`), each with its tokens
/// and cost so far, narrowed by state, role, agent, team or parent.
async fn list_instances(
    State(sup): State<Supervisor>,
    Extension(kept): Extension<KeptLists>,
    Params(q): Params<ListQuery>,
) -> Result<Response, Error> {
    let _ = q.token;
    let states: Vec<InstanceState> = match &q.state {
        Some(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                serde_json::from_value(Value::String(s.to_string())).map_err(|_| {
                    Error::InvalidInput(format!(
                        "state: {s:?} is not an instance state; the states are starting, idle, \
                         busy, waiting_permission, suspended, exited, terminated, failed, attached"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let team_id = match &q.team {
        Some(name) => Some(sup.team(name).await?.team_id),
        None => None,
    };
    // Asking for ended states means asking for ended instances.
    let all = q.all.unwrap_or(false) || states.iter().any(|s| s.is_ended());
    let pool = sup.pool();
    let key = pool.rows_version().map(|version| ListKey {
        version,
        all,
        states: states.clone(),
        role: q.role.clone(),
        agent: q.agent.clone(),
        team_id: team_id.clone(),
        parent: q.parent.clone(),
    });
    let render = async || -> Result<Bytes, Error> {
        let mut out = Vec::new();
        let mut usage = crate::db::usage::UsageRecord::totals_by_instance(pool).await?;
        for inst in Instance::list(pool, all).await? {
            let keep = (states.is_empty() || states.contains(&inst.state))
                && q.role.as_ref().is_none_or(|r| *r == inst.role)
                && q.agent.as_ref().is_none_or(|a| *a == inst.agent.as_str())
                && team_id
                    .as_ref()
                    .is_none_or(|t| inst.team_id.as_ref() == Some(t))
                && q.parent
                    .as_ref()
                    .is_none_or(|p| inst.parent_id.as_ref() == Some(p));
            if !keep {
                continue;
            }
            let usage = usage.remove(&inst.id).unwrap_or_default();
            out.push(Listed { inst, usage });
        }
        let body =
            serde_json::to_vec(&Instances { instances: out }).map_err(|e| Error::Io(e.into()))?;
        Ok(Bytes::from(body))
    };
    let body = match key {
        Some(key) => kept.get_or_render(key, render).await?,
        None => render().await?,
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /api/instances`'s answer, written straight from the rows.
#[derive(serde::Serialize)]
struct Instances {
    instances: Vec<Listed>,
}

#[derive(serde::Serialize)]
struct Listed {
    #[serde(flatten)]
    inst: Instance,
    usage: crate::db::usage::UsageTotals,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpawnBody {
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    project_dir: Option<String>,
    #[serde(default)]
    parent_instance_id: Option<String>,
    #[serde(default)]
    sandbox_mode: Option<String>,
    #[serde(default)]
    use_worktree: bool,
    #[serde(default)]
    permission_mode: Option<String>,
    #[serde(default)]
    permission_rules: Option<crate::permissions::Rules>,
    #[serde(default)]
    host: Option<String>,
}

/// `POST /api/instances`: spawns an instance for the person.
async fn spawn(
    State(sup): State<Supervisor>,
    body: Result<Json<SpawnBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Instance>), Error> {
    let Json(b) = body.map_err(|e| Error::InvalidInput(e.body_text()))?;
    let req = crate::supervisor::SpawnRequest {
        agent: b.agent,
        sandbox_mode: b.sandbox_mode,
        name: b.name,
        role: b.role,
        model: b.model,
        system_prompt: b.system_prompt,
        context: b.context,
        project_dir: b.project_dir,
        parent_instance_id: b.parent_instance_id,
        use_worktree: b.use_worktree,
        permission_mode: b.permission_mode,
        permission_rules: b.permission_rules,
        host: b.host,
    };
    Ok((StatusCode::CREATED, Json(sup.spawn(req, None).await?)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OutputQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    token: Option<String>,
}

/// `GET /api/instances/{id}/output`: what it said and did, a page at a time.
async fn output(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
    Params(q): Params<OutputQuery>,
) -> Result<Json<Value>, Error> {
    let _ = q.token;
    known(&sup, &id).await?;
    if q.before.is_some() && q.after.is_some() {
        return Err(Error::InvalidInput("give before or after, not both".into()));
    }
    let page = pages::output(sup.pool(), &id, q.before, q.after, limit(q.limit)?).await?;
    Ok(Json(json!({
        "chunks": page.rows,
        "next_before": page.next_before.and_then(|c| c.parse::<i64>().ok()),
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MessagesQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

/// `GET /api/instances/{id}/messages`: the messages sent to it, with their delivery states.
async fn messages(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
    Params(q): Params<MessagesQuery>,
) -> Result<Json<Value>, Error> {
    let _ = q.token;
    known(&sup, &id).await?;
    if let Some(before) = &q.before {
        let found = crate::db::messages::Message::find(sup.pool(), before).await?;
        if found.is_none_or(|m| m.instance_id != id) {
            return Err(Error::InvalidInput(format!(
                "before: {before:?} is not one of {id}'s messages"
            )));
        }
    }
    let page = pages::messages(sup.pool(), &id, q.before.as_deref(), limit(q.limit)?).await?;
    Ok(Json(
        json!({ "messages": page.rows, "next_before": page.next_before }),
    ))
}

async fn known(sup: &Supervisor, id: &str) -> Result<(), Error> {
    if Instance::exists(sup.pool(), id).await? {
        Ok(())
    } else {
        Err(Error::UnknownInstance(id.to_string()))
    }
}

/// The instance a request speaks for, if it is one (then it sees only its own tree's files).
fn calling_instance(caller: &crate::auth::Caller) -> Option<&str> {
    match caller {
        crate::auth::Caller::Instance(id) => Some(id),
        crate::auth::Caller::User => None,
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FilesQuery {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    recursive: Option<bool>,
    #[serde(default)]
    max_entries: Option<u64>,
    #[serde(default)]
    token: Option<String>,
}

/// `GET /api/instances/{id}/files?path=<dir>&recursive=true`: what is in its working
/// directory, as list_instance_files answers.
async fn files(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    Params(q): Params<FilesQuery>,
) -> Result<Json<crate::files::Listing>, Error> {
    let _ = q.token;
    let path = q.path.unwrap_or_default();
    let recursive = q.recursive.unwrap_or(false);
    let who = calling_instance(&caller);
    let listing = sup
        .list_files(who, &id, &path, recursive, q.max_entries)
        .await?;
    Ok(Json(listing))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(default)]
    token: Option<String>,
}

/// `GET /api/instances/{id}/files/content?path=<file>&max_bytes=N`: one file from its
/// working directory, as retrieve_instance_file answers.
async fn file_content(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    Params(q): Params<FileQuery>,
) -> Result<Json<crate::files::FileContent>, Error> {
    let _ = q.token;
    let path = q.path.unwrap_or_default();
    let who = calling_instance(&caller);
    Ok(Json(sup.read_file(who, &id, &path, q.max_bytes).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    token: Option<String>,
}

/// `GET /api/usage`: one row per model call, newest page first.
async fn usage(
    State(sup): State<Supervisor>,
    Params(q): Params<UsageQuery>,
) -> Result<Json<Value>, Error> {
    let _ = q.token;
    let page = pages::usage(sup.pool(), q.before, limit(q.limit)?).await?;
    Ok(Json(json!({
        "usage": page.rows,
        "next_before": page.next_before.and_then(|c| c.parse::<i64>().ok()),
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

/// `GET /api/audit`: the audit log, a page at a time.
async fn audit(
    State(sup): State<Supervisor>,
    Params(q): Params<AuditQuery>,
) -> Result<Json<Value>, Error> {
    let _ = q.token;
    let page = pages::audit(
        sup.pool(),
        q.instance_id.as_deref(),
        q.kind.as_deref(),
        q.before,
        limit(q.limit)?,
    )
    .await?;
    let events: Vec<Value> = page
        .rows
        .into_iter()
        .map(|e| {
            let detail =
                serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::String(e.detail));
            json!({
                "id": e.id, "at": e.at, "actor": e.actor, "instance_id": e.instance_id,
                "kind": e.kind, "detail": detail,
            })
        })
        .collect();
    Ok(Json(json!({
        "events": events,
        "next_before": page.next_before.and_then(|c| c.parse::<i64>().ok()),
    })))
}

/// `GET /api/limits`: each limit with how much of it is used.
async fn limits(State(sup): State<Supervisor>) -> Result<Json<Value>, Error> {
    Ok(Json(json!({ "limits": sup.limits().await? })))
}

/// `GET /api/mcp-clients`: the MCP clients seen since the server started, the most recent
/// first, each with the protocol era it speaks.
async fn mcp_clients(State(sup): State<Supervisor>) -> Json<Value> {
    Json(json!({ "clients": sup.mcp_clients().list() }))
}

#[derive(Deserialize)]
struct CreateTeam {
    name: String,
    #[serde(default)]
    description: String,
    members: Vec<NewMember>,
    #[serde(default)]
    project_dir: Option<String>,
    #[serde(default)]
    permission_rules: Option<crate::permissions::Rules>,
}

async fn create_team(
    State(sup): State<Supervisor>,
    Json(body): Json<CreateTeam>,
) -> Result<(StatusCode, Json<TeamView>), Error> {
    if let Some(rules) = &body.permission_rules {
        rules.check().map_err(Error::InvalidInput)?;
    }
    let team = sup
        .create_team(
            &body.name,
            &body.description,
            body.members,
            body.project_dir,
            None,
        )
        .await?;
    let team = match body.permission_rules.filter(|r| !r.is_empty()) {
        Some(rules) => {
            sup.set_team_permission_rules(&team.name, &rules, None)
                .await?
        }
        None => team,
    };
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
    // Where `troupe attach` finds it: `tmux -L <socket> attach -t <session>`.
    row["tmux_socket"] = json!(sup.config().tmux_socket);
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
) -> Result<Json<crate::supervisor::InterruptReport>, Error> {
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

/// The instance a request comes from, when it is one.
fn instance_caller(caller: &crate::auth::Caller) -> Option<&str> {
    match caller {
        crate::auth::Caller::Instance(id) => Some(id),
        crate::auth::Caller::User => None,
    }
}

/// `GET /api/instances/{id}/worktree`: its worktree's branch, base, uncommitted files, diff
/// stat and commits ahead, as get_worktree_status answers.
async fn worktree_status(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
) -> Result<Json<crate::supervisor::worktrees::WorktreeStatus>, Error> {
    Ok(Json(
        sup.worktree_status(&id, instance_caller(&caller)).await?,
    ))
}

/// `POST /api/instances/{id}/worktree/remove`: removes an ended instance's clean worktree
/// and keeps its branch; 409 with the reason when anything would be lost.
async fn remove_worktree(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    body: Option<Json<RemoveWorktree>>,
) -> Result<Json<crate::supervisor::worktrees::WorktreeRemoved>, Error> {
    let force_ignored = body.is_some_and(|Json(b)| b.force_ignored);
    Ok(Json(
        sup.remove_worktree(&id, instance_caller(&caller), force_ignored)
            .await?,
    ))
}

#[derive(Deserialize, Default)]
struct RemoveWorktree {
    /// Let git delete the worktree's ignored files with it.
    #[serde(default)]
    force_ignored: bool,
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

#[cfg(test)]
mod tests;
