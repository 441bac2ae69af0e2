//! Deciding permission requests: an instance in a prompting mode waits on each until its
//! parent, the person or a rule decides (see [`crate::supervisor`]'s permissions).

use rmcp::model::Extensions;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Json, Parameters, Troupe, caller, tool_error};
use crate::db::permissions::PermissionAsk;
use crate::permissions::Decision;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RespondParams {
    /// The instance that asks.
    pub instance_id: String,
    /// The request's id (`perm-…`), from the notification, get_pending_permissions or the
    /// instance's state.
    pub request_id: String,
    /// allow or deny.
    #[schemars(regex(pattern = "^(allow|deny)$"))]
    pub decision: String,
    /// With deny: why, shown to the instance's model so it can do something else.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct PendingParams {}

/// A permission request, for the caller to decide.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RequestView {
    pub request_id: String,
    pub instance_id: String,
    /// The message whose turn asked.
    pub message_id: Option<String>,
    pub tool_name: String,
    /// The tool's input, as the CLI sent it (its arguments by name).
    pub tool_input: rmcp::model::JsonObject,
    /// The request in a line: `Bash: npm test`.
    pub summary: String,
    /// pending, allowed, denied or expired.
    pub state: crate::states::AskState,
    /// `person`, an instance id, or `rule <rule>`.
    pub decided_by: Option<String>,
    pub message: Option<String>,
    pub asked_at: String,
    pub decided_at: Option<String>,
}

impl From<PermissionAsk> for RequestView {
    fn from(r: PermissionAsk) -> Self {
        RequestView {
            tool_input: super::schema::stored_object(r.tool_input),
            request_id: r.id,
            instance_id: r.instance_id,
            message_id: r.message_id,
            tool_name: r.tool_name,
            summary: r.summary,
            state: r.state,
            decided_by: r.decided_by,
            message: r.message,
            asked_at: r.asked_at,
            decided_at: r.decided_at,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PendingResult {
    /// Requests waiting for a decision that you may give, oldest first.
    pub requests: Vec<RequestView>,
}

/// The person's answer to a permission question asked through their client.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct PermissionAnswer {
    /// Allow this tool use (leave unchecked to deny it).
    pub allow: bool,
}
rmcp::elicit_safe!(PermissionAnswer);

/// What the person is asked about a permission request.
pub fn question(instance_id: &str, summary: &str) -> String {
    format!("troupe: {instance_id} asks to use {summary}. Allow it?")
}

/// Asks the person's client (one that declared form elicitation) to decide a permission
/// request at once. Any other decider may get there first; then this answer is dropped.
pub async fn ask_person(
    sup: crate::supervisor::Supervisor,
    peer: rmcp::service::Peer<rmcp::RoleServer>,
    instance_id: String,
    request_id: String,
    summary: String,
) {
    let question = question(&instance_id, &summary);
    let wait = sup.config().permission_wait;
    let answer = peer
        .elicit_with_timeout::<PermissionAnswer>(question, Some(wait))
        .await;
    let decision = match answer {
        Ok(Some(PermissionAnswer { allow: true })) => Decision::Allow,
        Ok(Some(PermissionAnswer { allow: false }))
        | Err(rmcp::service::ElicitationError::UserDeclined) => Decision::Deny,
        // Cancelled, timed out or no form: the request waits for another decider.
        _ => return,
    };
    let message = (decision == Decision::Deny).then(|| "the person declined".to_string());
    if let Err(e) = sup
        .respond_to_permission(&instance_id, &request_id, decision, message, None)
        .await
    {
        tracing::debug!(request = %request_id, "the person's answer came too late: {e}");
    }
}

#[tool_router(router = permission_tools, vis = "pub(super)")]
impl Troupe {
    #[tool(
        name = "respond_to_permission",
        description = "Allow or deny a tool use an instance in a prompting permission mode is waiting on (its state is waiting_permission, and the request id is in the notification, its state and get_pending_permissions). Deny takes a message the instance's model reads. The person may decide any request; an instance only those of instances it spawned (and theirs)."
    )]
    pub async fn respond_to_permission(
        &self,
        Parameters(p): Parameters<RespondParams>,
        extensions: Extensions,
    ) -> Result<Json<RequestView>, String> {
        let decision = match p.decision.trim() {
            "allow" => Decision::Allow,
            "deny" => Decision::Deny,
            other => {
                return Err(tool_error(crate::error::Error::InvalidInput(format!(
                    "decision: {other:?} is neither allow nor deny"
                ))));
            }
        };
        self.sup
            .respond_to_permission(
                &p.instance_id,
                &p.request_id,
                decision,
                p.message,
                caller(&extensions).as_deref(),
            )
            .await
            .map(|r| Json(r.into()))
            .map_err(tool_error)
    }

    #[tool(
        name = "get_pending_permissions",
        description = "Permission requests waiting for a decision that you may give (for an instance: those of the instances below it), oldest first; decide each with respond_to_permission."
    )]
    pub async fn get_pending_permissions(
        &self,
        Parameters(_): Parameters<PendingParams>,
        extensions: Extensions,
    ) -> Result<Json<PendingResult>, String> {
        let requests = self
            .sup
            .pending_permissions(caller(&extensions).as_deref())
            .await
            .map_err(tool_error)?;
        Ok(Json(PendingResult {
            requests: requests.into_iter().map(Into::into).collect(),
        }))
    }
}
