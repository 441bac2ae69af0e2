//! `GET /api/events`: the event log as server-sent events. Each event carries its log id, so a
//! client that comes back with `Last-Event-ID` (or `?after=`) is given what it missed first.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::db::events::{self, Filter, LoggedEvent};
use crate::error::Error;
use crate::supervisor::Supervisor;

/// Events read from the log at a time.
const BATCH: i64 = 500;

/// The kinds a client may ask for.
pub const KINDS: &[&str] = &[
    "instance",
    "message",
    "output",
    "interrupt",
    "usage",
    "audit",
    "team",
    "settings",
    "permission",
    "approval",
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    instance_id: Option<String>,
    /// Comma-separated kinds.
    #[serde(default)]
    kinds: Option<String>,
    /// The server token, for clients that cannot set headers; checked before this runs.
    #[serde(default)]
    #[allow(dead_code)]
    token: Option<String>,
}

pub async fn stream(
    State(sup): State<Supervisor>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Error> {
    let Query(q) = query.map_err(|e| Error::InvalidInput(e.body_text()))?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    Error::InvalidInput(
                        "Last-Event-ID must be the id of an event this stream sent (a number)"
                            .into(),
                    )
                })?,
        ),
        None => None,
    };
    let kinds: Vec<String> = q
        .kinds
        .as_deref()
        .map(|k| {
            k.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
        return Err(Error::InvalidInput(format!(
            "kinds: {bad:?} is not an event kind; the kinds are {}",
            KINDS.join(", ")
        )));
    }
    let filter = Filter {
        instance_id: q.instance_id,
        kinds,
    };
    // Subscribe before reading where to start, so nothing written in between is missed.
    let written = sup.pool().subscribe();
    let last = match resume.or(q.after) {
        Some(id) if id < 0 => {
            return Err(Error::InvalidInput("after must be 0 or more".into()));
        }
        Some(id) => id,
        None => events::last_id(sup.pool()).await?,
    };
    let tail = Tail {
        pool: sup.pool().clone(),
        written,
        last,
        filter,
        pending: VecDeque::new(),
        stop: sup.stopping(),
    };
    let stream = futures::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        Some((Ok(to_sse(event)), tail))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Tail {
    pool: crate::db::Db,
    written: watch::Receiver<u64>,
    last: i64,
    filter: Filter,
    pending: VecDeque<LoggedEvent>,
    stop: CancellationToken,
}

impl Tail {
    /// The next event the client wants, waiting for it; None when the server stops.
    async fn next(&mut self) -> Option<LoggedEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            self.written.borrow_and_update();
            match events::after(&self.pool, self.last, BATCH).await {
                Ok(rows) if !rows.is_empty() => {
                    self.last = rows.last().map(|e| e.id).unwrap_or(self.last);
                    let filter = &self.filter;
                    self.pending
                        .extend(rows.into_iter().filter(|e| filter.wants(e)));
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    // The client reconnects with the last id it has and loses nothing.
                    tracing::warn!(error = %e, "cannot read the event log; ending the stream");
                    return None;
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                changed = self.written.changed() => changed.ok()?,
            }
        }
    }
}

fn to_sse(event: LoggedEvent) -> SseEvent {
    SseEvent::default()
        .id(event.id.to_string())
        .data(event.data_with_host())
        .event(event.kind)
}
