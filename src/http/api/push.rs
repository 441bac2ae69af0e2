//! Web Push for the dashboard: the server's VAPID key, and the browsers that take notices.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::db::notify::PushSubscription;
use crate::error::Error;
use crate::supervisor::Supervisor;

/// `GET /api/push`: the key a browser subscribes with, and how many browsers take notices.
pub(super) async fn info(State(sup): State<Supervisor>) -> Result<Json<Value>, Error> {
    let key = sup.vapid_public_key().await?;
    let browsers = PushSubscription::list(sup.pool()).await?.len();
    Ok(Json(json!({ "public_key": key, "browsers": browsers })))
}

#[derive(Deserialize)]
pub(super) struct Keys {
    p256dh: String,
    auth: String,
}

/// A browser's `PushSubscription.toJSON()`.
#[derive(Deserialize)]
pub(super) struct SubscriptionBody {
    endpoint: String,
    keys: Keys,
    #[serde(default, rename = "expirationTime")]
    _expiration_time: Option<Value>,
}

/// `POST /api/push/subscriptions`: this browser takes notices from now on.
pub(super) async fn subscribe(
    State(sup): State<Supervisor>,
    body: Result<Json<SubscriptionBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Error> {
    let Json(b) = body.map_err(|e| Error::InvalidInput(e.body_text()))?;
    crate::notify::webpush::subscription(&b.endpoint, &b.keys.p256dh, &b.keys.auth)
        .map_err(Error::InvalidInput)?;
    PushSubscription::upsert(sup.pool(), &b.endpoint, &b.keys.p256dh, &b.keys.auth).await?;
    sup.push_subscriptions_changed().await;
    crate::db::audit::record(sup.pool(), None, None, "notify.push_subscribed", json!({})).await;
    Ok(Json(json!({ "subscribed": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EndpointBody {
    endpoint: String,
}

/// `DELETE /api/push/subscriptions {"endpoint"}`: this browser takes no more notices.
pub(super) async fn unsubscribe(
    State(sup): State<Supervisor>,
    body: Result<Json<EndpointBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Error> {
    let Json(b) = body.map_err(|e| Error::InvalidInput(e.body_text()))?;
    let removed = PushSubscription::remove(sup.pool(), &b.endpoint).await?;
    sup.push_subscriptions_changed().await;
    Ok(Json(json!({ "removed": removed })))
}
