//! MCP logging: the client picks a level (`logging/setLevel`), troupe sends it log lines at
//! that level or above (`notifications/message`). The newest protocol draft deprecates
//! logging (SEP-2577), but the clients of the current protocol use it, so the warnings are
//! silenced here and only here.
#![allow(deprecated)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use rmcp::RoleServer;
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam, SetLevelRequestParams};
use rmcp::service::RequestContext;

/// One session's level; shared by the clones rmcp makes of the session's handler.
#[derive(Debug, Clone)]
pub struct LogLevel(Arc<AtomicU8>);

impl Default for LogLevel {
    fn default() -> Self {
        LogLevel(Arc::new(AtomicU8::new(rank(LoggingLevel::Info))))
    }
}

impl LogLevel {
    pub fn set(&self, request: &SetLevelRequestParams) {
        self.0.store(rank(request.level), Ordering::Relaxed);
    }

    fn allows(&self, level: LoggingLevel) -> bool {
        rank(level) >= self.0.load(Ordering::Relaxed)
    }

    /// Sends an info line, if the client wants those.
    pub async fn info(&self, ctx: &RequestContext<RoleServer>, text: String) {
        if self.allows(LoggingLevel::Info) {
            let note = LoggingMessageNotificationParam::new(LoggingLevel::Info, text.into())
                .with_logger("troupe");
            let _ = ctx.peer.notify_logging_message(note).await;
        }
    }
}

/// Sends each notice to the session until it is gone: budget crossings and errors as
/// warnings, spawns and terminations as notices.
pub async fn forward_notices(
    sup: crate::supervisor::Supervisor,
    mut events: tokio::sync::broadcast::Receiver<crate::supervisor::Event>,
    peer: rmcp::service::Peer<RoleServer>,
    level: LogLevel,
) {
    use tokio::sync::broadcast::error::RecvError;
    let asks = peer
        .supported_elicitation_modes()
        .contains(&rmcp::service::ElicitationMode::Form);
    loop {
        match events.recv().await {
            Ok(crate::supervisor::Event::PermissionAsked {
                instance_id,
                request_id,
                summary,
            }) if asks => {
                tokio::spawn(super::permissions::ask_person(
                    sup.clone(),
                    peer.clone(),
                    instance_id,
                    request_id,
                    summary,
                ));
            }
            Ok(crate::supervisor::Event::ApprovalAsked {
                approval_id,
                question,
                ..
            }) if asks => {
                tokio::spawn(super::approval::ask_person(
                    sup.clone(),
                    peer.clone(),
                    approval_id,
                    question,
                ));
            }
            Ok(crate::supervisor::Event::Notice { kind, text }) => {
                let severity = match kind {
                    "error" | "cost_threshold" => LoggingLevel::Warning,
                    _ => LoggingLevel::Notice,
                };
                if !level.allows(severity) {
                    continue;
                }
                let note = LoggingMessageNotificationParam::new(
                    severity,
                    serde_json::json!({ "kind": kind, "text": text }),
                )
                .with_logger("troupe");
                if peer.notify_logging_message(note).await.is_err() {
                    break;
                }
            }
            Ok(_) if peer.is_transport_closed() => break,
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => break,
        }
    }
}

/// Log levels in order of severity, for comparing.
fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_lets_through_what_is_at_least_as_severe() {
        let level = LogLevel::default();
        assert!(level.allows(LoggingLevel::Info) && !level.allows(LoggingLevel::Debug));
        level.set(&SetLevelRequestParams::new(LoggingLevel::Warning));
        assert!(!level.allows(LoggingLevel::Info));
        assert!(level.allows(LoggingLevel::Error));
        level.set(&SetLevelRequestParams::new(LoggingLevel::Debug));
        assert!(level.allows(LoggingLevel::Debug));
    }
}
