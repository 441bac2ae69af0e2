//! The registry's hosts over REST: the list, draining one, and forgetting one that will not
//! come back.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Error;
use crate::supervisor::Supervisor;

/// `GET /api/hosts`.
pub(super) async fn list(State(sup): State<Supervisor>) -> Result<Json<Value>, Error> {
    Ok(Json(json!({ "hosts": sup.hosts().await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DrainBody {
    /// false takes spawns again.
    #[serde(default = "yes")]
    drain: bool,
    /// Also suspend its running instances (their conversations kept).
    #[serde(default)]
    suspend: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/hosts/{name}/drain {"drain": true|false, "suspend": bool}`: no new spawns there
/// (or again); `suspend` also suspends its running instances.
pub(super) async fn drain(
    State(sup): State<Supervisor>,
    Path(name): Path<String>,
    body: Result<Json<DrainBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Error> {
    let Json(b) = body.map_err(|e| Error::InvalidInput(e.body_text()))?;
    sup.drain_host(&name, b.drain, None).await?;
    let (suspended, not_suspended) = match b.suspend && b.drain {
        true => sup.suspend_host(&name, None).await?,
        false => Default::default(),
    };
    let not_suspended: Vec<Value> = not_suspended
        .into_iter()
        .map(|(id, why)| json!({ "instance_id": id, "error": why }))
        .collect();
    Ok(Json(json!({
        "host": name,
        "state": if b.drain { "draining" } else { "up" },
        "suspended": suspended,
        "not_suspended": not_suspended,
    })))
}

/// `POST /api/hosts/{name}/forget`: its instances that have not ended become failed.
pub(super) async fn forget(
    State(sup): State<Supervisor>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Error> {
    let given_up = sup.forget_host(&name, None).await?;
    Ok(Json(json!({ "host": name, "failed_instances": given_up })))
}
