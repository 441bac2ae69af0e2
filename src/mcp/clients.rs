//! Which MCP clients talk to troupe, and in which era of the protocol: 2025-11-25 and before
//! open a session with `initialize` and take requests from the server on it; 2026-07-28 has no
//! session, and every request carries the client's version, identity and capabilities in its
//! `_meta`. The era is decided from the first request of each client and logged once;
//! `troupe doctor` shows the list.

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::RoleServer;
use rmcp::model::ProtocolVersion;
use rmcp::service::RequestContext;
use serde::Serialize;

/// The protocol revision where sessions and server-to-client requests gave way to
/// per-request metadata and multi-round-trip results.
pub const STATELESS: &str = "2026-07-28";

/// How a client speaks MCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Era {
    /// `initialize`, a session, and requests from the server on it (2025-11-25 and before).
    Session,
    /// No session: what troupe needs of the client rides on each tool call's result
    /// (`input_required`) and the client's retry (2026-07-28).
    Stateless,
}

impl Era {
    pub fn of_version(version: &str) -> Era {
        // Revisions are dates, so they order as strings.
        if version >= STATELESS {
            Era::Stateless
        } else {
            Era::Session
        }
    }

    /// The era of the request in hand.
    pub fn of(ctx: &RequestContext<RoleServer>) -> Era {
        match ctx.protocol_version() {
            Some(v) => Era::of_version(v.as_str()),
            // A request without a version on a session that never initialized: only the
            // stateless revision sends those.
            None if ctx.peer.peer_info().is_none() => Era::Stateless,
            None => Era::Session,
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Era::Session => "sessions (initialize)",
            Era::Stateless => "stateless (per-request metadata, input_required)",
        }
    }
}

/// One client as troupe last saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    /// The client's own name and version (`claude-code 2.1.328`), or "unnamed".
    pub client: String,
    pub protocol_version: String,
    pub era: Era,
    /// The instance it belongs to, or None for the person's own client.
    pub instance_id: Option<String>,
    /// What it declared it can do for troupe: roots, elicitation.
    pub roots: bool,
    pub elicitation: bool,
    pub first_seen: String,
    pub last_seen: String,
}

/// The clients seen since the server started, by client and caller: bounded, since a client
/// may name itself anything.
#[derive(Debug, Default)]
pub struct Clients {
    seen: Mutex<HashMap<(String, Option<String>), Seen>>,
}

/// At most this many characters of what a client says of itself.
const MAX_NAME: usize = 80;

fn bounded(text: &str) -> String {
    text.chars().take(MAX_NAME).collect()
}

/// The most clients remembered; the oldest is forgotten first.
const MAX_CLIENTS: usize = 512;

impl Clients {
    /// Notes the request's client; the first time one is seen, its era is logged.
    pub fn note(&self, ctx: &RequestContext<RoleServer>, instance_id: Option<&str>) {
        // The client names itself: kept short, so a long name cannot grow the list.
        let client = ctx
            .client_info()
            .map(|i| bounded(&format!("{} {}", i.name, i.version)))
            .unwrap_or_else(|| "unnamed".into());
        let version = ctx
            .protocol_version()
            .unwrap_or(ProtocolVersion::V_2026_07_28);
        let caps = ctx.client_capabilities().unwrap_or_default();
        self.note_parts(
            client,
            &bounded(version.as_str()),
            Era::of(ctx),
            instance_id,
            caps.roots.is_some(),
            caps.elicitation.is_some(),
        );
    }

    fn note_parts(
        &self,
        client: String,
        version: &str,
        era: Era,
        instance_id: Option<&str>,
        roots: bool,
        elicitation: bool,
    ) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut seen = self.seen.lock().expect("clients poisoned");
        let key = (client.clone(), instance_id.map(str::to_string));
        if let Some(s) = seen.get_mut(&key) {
            s.last_seen = now;
            if s.protocol_version != version {
                tracing::debug!(
                    client,
                    version,
                    era = era.words(),
                    "an MCP client changed its protocol version"
                );
                s.protocol_version = version.to_string();
                s.era = era;
            }
            s.roots = roots;
            s.elicitation = elicitation;
            return;
        }
        tracing::debug!(
            client,
            version,
            era = era.words(),
            instance = instance_id.unwrap_or("the person"),
            roots,
            elicitation,
            "a new MCP client"
        );
        if seen.len() >= MAX_CLIENTS
            && let Some(oldest) = seen
                .iter()
                .min_by(|a, b| a.1.last_seen.cmp(&b.1.last_seen))
                .map(|(k, _)| k.clone())
        {
            seen.remove(&oldest);
        }
        seen.insert(
            key,
            Seen {
                client,
                protocol_version: version.to_string(),
                era,
                instance_id: instance_id.map(str::to_string),
                roots,
                elicitation,
                first_seen: now.clone(),
                last_seen: now,
            },
        );
    }

    /// Everyone seen, the most recent first.
    pub fn list(&self) -> Vec<Seen> {
        let mut all: Vec<Seen> = self
            .seen
            .lock()
            .expect("clients poisoned")
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eras_follow_the_revision_date() {
        assert_eq!(Era::of_version("2025-11-25"), Era::Session);
        assert_eq!(Era::of_version("2024-11-05"), Era::Session);
        assert_eq!(Era::of_version("2026-07-28"), Era::Stateless);
        assert_eq!(Era::of_version("2027-01-01"), Era::Stateless);
    }

    #[test]
    fn a_client_is_kept_once_per_caller_and_the_list_is_bounded() {
        let c = Clients::default();
        c.note_parts(
            "claude-code 2.1.328".into(),
            "2026-07-28",
            Era::Stateless,
            None,
            true,
            true,
        );
        c.note_parts(
            "claude-code 2.1.328".into(),
            "2026-07-28",
            Era::Stateless,
            None,
            true,
            true,
        );
        c.note_parts(
            "claude-code 2.1.328".into(),
            "2025-11-25",
            Era::Session,
            Some("inst-1"),
            false,
            false,
        );
        let list = c.list();
        assert_eq!(list.len(), 2);
        assert!(
            list.iter()
                .any(|s| s.instance_id.is_none() && s.era == Era::Stateless)
        );
        for i in 0..MAX_CLIENTS + 10 {
            c.note_parts(
                format!("c{i}"),
                "2025-11-25",
                Era::Session,
                None,
                false,
                false,
            );
        }
        assert_eq!(c.list().len(), MAX_CLIENTS);
        assert_eq!(bounded(&"x".repeat(10_000)).len(), MAX_NAME);
    }
}
