use std::time::Duration;

use super::Json;
use super::Parameters;
use rmcp::model::Extensions;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use rmcp::RoleServer;
use rmcp::service::RequestContext;

use super::{Troupe, caller, tool_error};
use crate::db::messages::Message;
use crate::error::Error;
use crate::supervisor::InterruptReport;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SendParams {
    /// The instance id.
    pub instance_id: String,
    /// The message or task. Multi-line text arrives intact.
    pub message: String,
    /// Wait for the answer (default true). When false, returns the message id at once.
    #[serde(default)]
    pub wait_for_response: Option<bool>,
    /// How long to wait for the answer, in seconds (default 300).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MessageView {
    pub message_id: String,
    pub instance_id: String,
    pub status: crate::states::MessageState,
    /// The instance's answer (for an interrupted turn, what it had said so far).
    pub response: Option<String>,
    /// Why the message ended as it did, when not answered.
    pub reason: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        MessageView {
            message_id: m.id,
            instance_id: m.instance_id,
            status: m.state,
            response: m.response,
            reason: m.state_reason,
            created_at: m.created_at,
            finished_at: m.finished_at,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetMessageParams {
    /// The message id returned by send_to_instance.
    pub message_id: String,
    /// Wait up to this many seconds for the answer if it is not there yet (default 0).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct InterruptParams {
    /// The instance id.
    pub instance_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct InterruptResult {
    pub success: bool,
    pub instance_id: String,
    pub message: String,
    pub timestamp: String,
    #[serde(flatten)]
    pub report: InterruptReport,
}

#[tool_router(router = messaging_tools, vis = "pub(super)")]
impl Troupe {
    #[tool(
        name = "send_to_instance",
        description = "Send a message or task to an instance. By default waits for its answer and returns it as `response`; if the wait times out, the error names the message id so get_message can fetch the answer later. For a client that moves long tool calls to the background (Claude Code 2.1.212 and later, after 2 minutes), a wait ends after 100 s with status still `started` and a `reason` naming the message id: call get_message with it and wait_seconds to keep waiting."
    )]
    pub async fn send_to_instance(
        &self,
        Parameters(p): Parameters<SendParams>,
        extensions: Extensions,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<MessageView>, String> {
        let sender = caller(&extensions);
        // Checked before anything is sent, so a bad wait leaves nothing behind.
        let timeout = match p.wait_for_response.unwrap_or(true) {
            true => Some(super::wait_seconds(
                "timeout_seconds",
                p.timeout_seconds,
                self.sup.config().default_wait,
            )?),
            false => None,
        };
        let message = self
            .sup
            .send(&p.instance_id, &p.message, sender.as_deref())
            .await
            .map_err(tool_error)?;
        let Some(timeout) = timeout else {
            return Ok(Json(message.into()));
        };
        if let Some(w) = ctx.extensions.get::<super::rounds::Waiting>() {
            w.on(&message.id, std::time::Instant::now() + timeout);
        }
        let (wait, capped) = self.capped(&ctx, timeout);
        let answered = self
            .with_progress(
                &ctx,
                &format!(
                    "message {} to {} (get_message fetches it if this wait ends)",
                    message.id, p.instance_id
                ),
                self.sup.wait_message(&message.id, wait),
            )
            .await;
        match answered {
            Ok(m) => Ok(Json(m.into())),
            Err(Error::Timeout { .. }) if capped => {
                let mut view: MessageView = find(&self.sup, &message.id).await?.into();
                view.reason = super::still_working(&message.id, wait, timeout);
                Ok(Json(view))
            }
            Err(e) => Err(tool_error(e)),
        }
    }

    #[tool(
        name = "get_message",
        description = "A message sent earlier, with its status and the answer once there is one; optionally waits for it (wait_seconds; for a client that moves long tool calls to the background, at most 100 s per call: call again to wait on)."
    )]
    pub async fn get_message(
        &self,
        Parameters(p): Parameters<GetMessageParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<MessageView>, String> {
        let wait = match p.wait_seconds.filter(|s| *s > 0) {
            Some(s) => Some(super::wait_seconds(
                "wait_seconds",
                Some(s),
                Duration::ZERO,
            )?),
            None => None,
        };
        if let (Some(wait), Some(w)) = (wait, ctx.extensions.get::<super::rounds::Waiting>()) {
            w.on(&p.message_id, std::time::Instant::now() + wait);
        }
        let message = match wait {
            Some(asked) => {
                let (wait, capped) = self.capped(&ctx, asked);
                match self
                    .with_progress(
                        &ctx,
                        &format!("message {}", p.message_id),
                        self.sup.wait_message(&p.message_id, wait),
                    )
                    .await
                {
                    Ok(m) => m.into(),
                    Err(Error::Timeout { .. }) => {
                        let mut view: MessageView = find(&self.sup, &p.message_id).await?.into();
                        if capped {
                            view.reason = super::still_working(&p.message_id, wait, asked);
                        }
                        view
                    }
                    Err(e) => return Err(tool_error(e)),
                }
            }
            None => find(&self.sup, &p.message_id).await?.into(),
        };
        Ok(Json(message))
    }

    #[tool(
        name = "interrupt_instance",
        description = "Stop the instance's running turn (Escape) without ending the instance: the conversation, including the partial answer, is kept and the instance takes new messages."
    )]
    pub async fn interrupt_instance(
        &self,
        Parameters(p): Parameters<InterruptParams>,
        extensions: Extensions,
    ) -> Result<Json<InterruptResult>, String> {
        let report = self
            .sup
            .interrupt(&p.instance_id, caller(&extensions).as_deref())
            .await
            .map_err(tool_error)?;
        Ok(Json(InterruptResult {
            success: report.interrupted,
            instance_id: p.instance_id,
            message: report.detail.clone(),
            timestamp: crate::db::now(),
            report,
        }))
    }
}

async fn find(sup: &crate::supervisor::Supervisor, id: &str) -> Result<Message, String> {
    Message::find(sup.pool(), id)
        .await
        .map_err(|e| tool_error(e.into()))?
        .ok_or_else(|| tool_error(Error::UnknownMessage(id.to_string())))
}
