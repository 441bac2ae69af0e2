//! Notices that reach the person wherever they are: the `[[notify]]` sinks of the config
//! file (a signed webhook, ntfy, Slack, Discord), each told of the kinds it asked for, a burst
//! folded into a digest, nothing during its quiet hours. A question carries one-time Allow and
//! Deny links that decide it from a phone.
//!
//! Every delivery is written to the database before its first attempt and retried with
//! backoff, so a receiver that is down, or a server restart, loses nothing.

pub mod gate;
pub mod links;
pub mod notice;
pub mod sink;
pub mod webpush;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::db::Db;
use crate::db::notify::{Delivery, NewDelivery, PushSubscription};
use notice::Notice;
use sink::{Request, Sink};

/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 8;

/// The wait before attempt `n + 1`, after `n` attempts failed: 1 s doubling to a minute;
/// `None` once [`MAX_ATTEMPTS`] are spent (about two minutes in all).
pub fn backoff(attempts: u32) -> Option<Duration> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let secs = 1u64 << attempts.saturating_sub(1).min(6);
    Some(Duration::from_secs(secs.min(60)))
}

/// Where a delivery stands after its `attempts`-th attempt was answered with `status`:
/// `delivered`, `failed`, or `pending` with the wait before the next.
pub fn after_attempt(attempts: u32, status: Option<u16>) -> (&'static str, Option<Duration>) {
    match outcome(status) {
        Outcome::Delivered => ("delivered", None),
        Outcome::Refused => ("failed", None),
        Outcome::Retry => match backoff(attempts) {
            Some(wait) => ("pending", Some(wait)),
            None => ("failed", None),
        },
    }
}

/// What an attempt's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// The receiver may take it later: it failed, was busy, or did not answer.
    Retry,
    /// The receiver refused it for good (a wrong URL or token): trying again changes nothing.
    Refused,
}

/// The outcome of an answer with `status` (none: no answer at all).
pub fn outcome(status: Option<u16>) -> Outcome {
    match status {
        Some(s) if (200..300).contains(&s) => Outcome::Delivered,
        Some(408 | 425 | 429) | None => Outcome::Retry,
        Some(s) if s >= 500 => Outcome::Retry,
        Some(_) => Outcome::Refused,
    }
}

/// The receiver's answer to one attempt.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: Option<u16>,
    /// The first part of the receiver's body, or why there was no answer.
    pub text: String,
}

/// The headers only the sending moment adds: a webhook's signature, an ntfy token. They are
/// never stored.
fn credentials(sink: &Sink, body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(secret) = &sink.secret {
        out.push((
            "X-Troupe-Signature".to_string(),
            sink::signature(secret, body.as_bytes()),
        ));
    }
    if let Some(token) = &sink.token {
        out.push(("Authorization".to_string(), format!("Bearer {token}")));
    }
    out
}

/// Posts `request` to `sink`'s receiver once.
pub async fn attempt(client: &reqwest::Client, sink: &Sink, request: &Request) -> Answer {
    let mut headers = request.headers.clone();
    headers.extend(credentials(sink, &request.body));
    post(
        client,
        &request.url,
        &headers,
        request.body.clone().into_bytes(),
    )
    .await
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Answer {
    let mut req = client.post(url).timeout(ATTEMPT_TIMEOUT).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            Answer {
                status: Some(status),
                text: notice::excerpt(&text, 300),
            }
        }
        Err(e) => Answer {
            status: None,
            text: describe_error(&e),
        },
    }
}

fn describe_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The client deliveries use: no redirects (a receiver that moved is a configuration to fix,
/// and a redirect could carry the signature elsewhere).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("troupe/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// This host's deliveries: written first, then tried until delivered, refused, or out of
/// attempts. Each attempt runs on its own, so a slow receiver holds up no other.
pub struct Outbox {
    db: Db,
    host: String,
    sinks: Arc<Vec<Sink>>,
    /// Where the VAPID key is kept, and who push services see sending.
    vapid_path: std::path::PathBuf,
    vapid: tokio::sync::OnceCell<Arc<webpush::Vapid>>,
    subject: String,
    /// Whether any browser takes Web Push, as last read: with none, nothing is made for the
    /// push sink. On a shared registry another host may add one, so there it is always true.
    browsers: std::sync::atomic::AtomicBool,
    client: reqwest::Client,
    wake: Notify,
    in_flight: Mutex<HashSet<String>>,
}

impl Outbox {
    /// `sinks` as configured; a Web Push sink is added when they have none.
    pub fn new(
        db: Db,
        host: String,
        mut sinks: Vec<Sink>,
        vapid_path: std::path::PathBuf,
        subject: String,
    ) -> Arc<Outbox> {
        if !sinks.iter().any(|s| s.kind == sink::SinkKind::WebPush) {
            sinks.push(Sink::default_push());
        }
        Arc::new(Outbox {
            db,
            host,
            sinks: Arc::new(sinks),
            vapid_path,
            vapid: tokio::sync::OnceCell::new(),
            subject,
            browsers: std::sync::atomic::AtomicBool::new(true),
            client: client(),
            wake: Notify::new(),
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    pub fn sinks(&self) -> &[Sink] {
        &self.sinks
    }

    /// Reads again whether any browser takes Web Push.
    pub async fn refresh_browsers(&self) {
        let any = self.db.is_shared()
            || PushSubscription::list(&self.db)
                .await
                .map_or(true, |l| !l.is_empty());
        self.browsers
            .store(any, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether `sink` has anywhere to send to now.
    pub fn reaches(&self, sink: &Sink) -> bool {
        sink.kind != sink::SinkKind::WebPush
            || self.browsers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The server's VAPID key, read (or made) on first use.
    pub async fn vapid(&self) -> Result<Arc<webpush::Vapid>, String> {
        self.vapid
            .get_or_try_init(|| async {
                let path = self.vapid_path.clone();
                tokio::task::spawn_blocking(move || webpush::Vapid::load_or_create(&path))
                    .await
                    .map_err(|e| e.to_string())?
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// Records a delivery of `notice` to `sink` and wakes the sender. Web Push makes one per
    /// browser, each to its own endpoint.
    pub async fn enqueue(
        &self,
        sink: &Sink,
        notice: &Notice,
        request: &Request,
    ) -> sqlx::Result<()> {
        if sink.kind == sink::SinkKind::WebPush {
            for sub in PushSubscription::list(&self.db).await? {
                let mut one = request.clone();
                one.url = sub.endpoint;
                self.enqueue_one(sink, notice, &one).await?;
            }
            return Ok(());
        }
        self.enqueue_one(sink, notice, request).await
    }

    async fn enqueue_one(
        &self,
        sink: &Sink,
        notice: &Notice,
        request: &Request,
    ) -> sqlx::Result<()> {
        let id = format!("dlv-{}", uuid::Uuid::now_v7().simple());
        let body = serde_json::to_string(request).unwrap_or_default();
        Delivery::insert(
            &self.db,
            &NewDelivery {
                id: &id,
                notice_id: &notice.id,
                host: &self.host,
                sink: &sink.name,
                kind: notice.kind.as_str(),
                title: &notice.title,
                request: &body,
                state: "pending",
            },
        )
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Sends what is due until `stop`; sleeps while nothing is.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let next = self.send_due().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = sleep_until(next) => {}
            }
        }
    }

    /// Starts every due delivery not already under way; returns when the next one is due.
    async fn send_due(self: &Arc<Self>) -> Option<Instant> {
        let pending = match Delivery::pending(&self.db, &self.host).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the notices to deliver; trying again");
                return Some(Instant::now() + Duration::from_secs(5));
            }
        };
        let now = chrono::Utc::now();
        let mut next: Option<Instant> = None;
        for d in pending {
            let due_at = d
                .next_at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            if let Some(at) = due_at.filter(|at| *at > now) {
                let wait = (at - now).to_std().unwrap_or_default();
                let at = Instant::now() + wait;
                next = Some(next.map_or(at, |n| n.min(at)));
                continue;
            }
            if !self
                .in_flight
                .lock()
                .expect("in flight poisoned")
                .insert(d.id.clone())
            {
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move {
                // Read again now that it is ours: an attempt that ended after the list was
                // read may have delivered it already.
                match Delivery::find(&me.db, &d.id).await {
                    Ok(Some(now)) if now.state == "pending" && now.attempts == d.attempts => {
                        me.deliver(&now).await
                    }
                    _ => {}
                }
                me.in_flight
                    .lock()
                    .expect("in flight poisoned")
                    .remove(&d.id);
                me.wake.notify_one();
            });
        }
        next
    }

    async fn deliver(&self, d: &Delivery) {
        let Some(sink) = self.sinks.iter().find(|s| s.name == d.sink) else {
            let why = format!("sink {:?} is no longer in the config file", d.sink);
            let _ = Delivery::attempted(&self.db, &d.id, "failed", None, Some(&why), None).await;
            return;
        };
        let request: Request = match serde_json::from_str(&d.request) {
            Ok(r) => r,
            Err(e) => {
                let why = format!("the stored request does not read: {e}");
                let _ =
                    Delivery::attempted(&self.db, &d.id, "failed", None, Some(&why), None).await;
                return;
            }
        };
        let answer = self.send(sink, &request).await;
        let attempts = u32::try_from(d.attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let status = answer.status.map(i64::from);
        let error = (outcome(answer.status) != Outcome::Delivered).then_some(answer.text.as_str());
        let (state, wait) = after_attempt(attempts, answer.status);
        let next_at = wait.map(|w| {
            crate::db::stamp(chrono::Utc::now() + chrono::Duration::from_std(w).unwrap_or_default())
        });
        match state {
            "delivered" => {
                tracing::info!(sink = %d.sink, notice = %d.notice_id, "notice delivered")
            }
            "failed" => tracing::warn!(
                sink = %d.sink,
                notice = %d.notice_id,
                attempts,
                "notice not delivered: {}",
                answer.text
            ),
            _ => {
                tracing::debug!(sink = %d.sink, notice = %d.notice_id, attempts, "will retry: {}", answer.text)
            }
        }
        if let Err(e) =
            Delivery::attempted(&self.db, &d.id, state, status, error, next_at.as_deref()).await
        {
            tracing::warn!(error = %e, delivery = %d.id, "cannot record a delivery attempt");
        }
    }

    /// One attempt of `request`: Web Push encrypted for its browser and signed with VAPID; a
    /// browser its push service no longer knows (404, 410) is forgotten.
    async fn send(&self, sink: &Sink, request: &Request) -> Answer {
        if sink.kind != sink::SinkKind::WebPush {
            return attempt(&self.client, sink, request).await;
        }
        let refused = |text: String| Answer {
            status: Some(400),
            text,
        };
        let sub = match PushSubscription::find(&self.db, &request.url).await {
            Ok(Some(s)) => s,
            Ok(None) => return refused("the browser no longer takes notifications".into()),
            Err(e) => {
                return Answer {
                    status: None,
                    text: e.to_string(),
                };
            }
        };
        let sub = match webpush::subscription(&sub.endpoint, &sub.p256dh, &sub.auth) {
            Ok(s) => s,
            Err(e) => return refused(e),
        };
        let vapid = match self.vapid().await {
            Ok(v) => v,
            Err(e) => return refused(e),
        };
        let body = match webpush::encrypt(request.body.as_bytes(), &sub) {
            Ok(b) => b,
            Err(e) => return refused(e),
        };
        let now = chrono::Utc::now().timestamp();
        let auth = match vapid.authorization(&sub.endpoint, &self.subject, now) {
            Ok(a) => a,
            Err(e) => return refused(e),
        };
        let mut headers = request.headers.clone();
        headers.push(("Content-Type".into(), "application/octet-stream".into()));
        headers.push(("Content-Encoding".into(), "aes128gcm".into()));
        headers.push(("Authorization".into(), auth));
        let answer = post(&self.client, &sub.endpoint, &headers, body).await;
        if matches!(answer.status, Some(404 | 410)) {
            tracing::info!("a browser's push subscription is gone; forgetting it");
            let _ = PushSubscription::remove(&self.db, &sub.endpoint).await;
            self.refresh_browsers().await;
        }
        answer
    }

    /// Records a test notice's one attempt as a delivery of its own.
    pub async fn record_test(
        &self,
        sink: &Sink,
        notice: &Notice,
        links: &notice::Links,
        url: &str,
        answer: &Answer,
    ) -> sqlx::Result<()> {
        let id = format!("dlv-{}", uuid::Uuid::now_v7().simple());
        let mut request = sink::render(sink, notice, links);
        request.url = url.to_string();
        let request = serde_json::to_string(&request).unwrap_or_default();
        let delivered = outcome(answer.status) == Outcome::Delivered;
        let (state, error) = if delivered {
            ("delivered", None)
        } else {
            ("failed", Some(answer.text.as_str()))
        };
        // Recorded as already tried: the sender never takes it up.
        Delivery::insert(
            &self.db,
            &NewDelivery {
                id: &id,
                notice_id: &notice.id,
                host: &self.host,
                sink: &sink.name,
                kind: notice.kind.as_str(),
                title: &notice.title,
                request: &request,
                state,
            },
        )
        .await?;
        Delivery::attempted(
            &self.db,
            &id,
            state,
            answer.status.map(i64::from),
            error,
            None,
        )
        .await
    }

    /// Sends one sample notice to `sink` now, outside the queue: `troupe notify test`. Web
    /// Push answers for each browser.
    pub async fn test(
        &self,
        sink: &Sink,
        notice: &Notice,
        links: &notice::Links,
    ) -> Vec<(String, Answer)> {
        let request = sink::render(sink, notice, links);
        if sink.kind != sink::SinkKind::WebPush {
            return vec![(request.url.clone(), self.send(sink, &request).await)];
        }
        let subs = PushSubscription::list(&self.db).await.unwrap_or_default();
        let mut out = Vec::new();
        for sub in subs {
            let mut one = request.clone();
            one.url = sub.endpoint;
            let answer = self.send(sink, &one).await;
            out.push((one.url, answer));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute_then_stop() {
        let waits: Vec<u64> = (1..MAX_ATTEMPTS)
            .map(|n| backoff(n).unwrap().as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60]);
        assert_eq!(backoff(MAX_ATTEMPTS), None);
        assert_eq!(backoff(0), Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_delivery_is_retried_until_taken_refused_or_out_of_attempts() {
        assert_eq!(after_attempt(1, Some(201)), ("delivered", None));
        assert_eq!(after_attempt(1, Some(404)), ("failed", None));
        assert_eq!(
            after_attempt(1, Some(500)),
            ("pending", Some(Duration::from_secs(1)))
        );
        assert_eq!(
            after_attempt(2, None),
            ("pending", Some(Duration::from_secs(2)))
        );
        assert_eq!(after_attempt(MAX_ATTEMPTS, Some(503)), ("failed", None));
    }

    #[test]
    fn answers_are_delivered_retried_or_refused() {
        assert_eq!(outcome(Some(200)), Outcome::Delivered);
        assert_eq!(outcome(Some(204)), Outcome::Delivered);
        assert_eq!(outcome(None), Outcome::Retry);
        assert_eq!(outcome(Some(500)), Outcome::Retry);
        assert_eq!(outcome(Some(503)), Outcome::Retry);
        assert_eq!(outcome(Some(429)), Outcome::Retry);
        assert_eq!(outcome(Some(404)), Outcome::Refused);
        assert_eq!(outcome(Some(401)), Outcome::Refused);
        assert_eq!(
            outcome(Some(301)),
            Outcome::Refused,
            "redirects are not followed"
        );
    }
}
