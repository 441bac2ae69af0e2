//! The `[[notify]]` sinks over REST: what they are and what was delivered, and a test notice.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::db::notify::Delivery;
use crate::error::Error;
use crate::supervisor::Supervisor;

/// Deliveries `GET /api/notify` shows.
const RECENT: i64 = 50;

/// `GET /api/notify`: the sinks (never a secret, a token, or a webhook's secret path), the
/// address links use, and the latest deliveries, newest first.
pub(super) async fn list(State(sup): State<Supervisor>) -> Result<Json<Value>, Error> {
    let sinks: Vec<Value> = sup.notify_sinks().iter().map(|s| s.describe()).collect();
    let deliveries = Delivery::recent(sup.pool(), RECENT).await?;
    Ok(Json(json!({
        "sinks": sinks,
        "public_url": sup.config().link_url,
        "deliveries": deliveries,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct TestBody {
    /// One sink's name; every sink when absent.
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/notify/test {"name": …}`: a sample notice to each sink (or the one named), sent
/// at once; what each receiver answered.
pub(super) async fn test(
    State(sup): State<Supervisor>,
    body: Result<Json<TestBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Error> {
    let Json(b) = body.map_err(|e| Error::InvalidInput(e.body_text()))?;
    let results = sup.notify_test(b.name.as_deref()).await?;
    let results: Vec<Value> = results
        .into_iter()
        .map(|(sink, answer)| {
            json!({
                "sink": sink.name,
                "kind": sink.kind,
                "delivered": crate::notify::outcome(answer.status)
                    == crate::notify::Outcome::Delivered,
                "status": answer.status,
                "answer": answer.text,
            })
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}
