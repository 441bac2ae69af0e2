//! require_approval: a tool the person must approve asks them through MCP elicitation when
//! their client can show a question; otherwise the call is refused with a one-time code, and
//! the model asks the person and calls again with it. An instance's call is asked of the
//! person and waits for their answer (see [`crate::supervisor::approvals`]). Every question,
//! approval and refusal is audited.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::RoleServer;
use rmcp::model::CallToolRequestParams;
use rmcp::service::ElicitationMode;
use rmcp::service::{ElicitationError, RequestContext};
use serde_json::json;

use crate::db::audit;
use crate::supervisor::Supervisor;

/// The argument that carries a confirmation code.
pub const CODE_ARG: &str = "approval";
/// How long a code is good for.
const CODE_LIFE: Duration = Duration::from_secs(10 * 60);
/// How long the person has to answer the question.
const ASK_WAIT: Duration = Duration::from_secs(10 * 60);

/// Codes handed out and not used yet, for every MCP session of one server: code → (tool, the
/// call's arguments, handed out at). A code approves that exact call, for the person only.
#[derive(Default)]
pub struct Codes(Mutex<HashMap<String, Issued>>);

/// A code's call: the tool, its arguments, and when the code was handed out.
type Issued = (String, String, Instant);

/// The call's arguments, the code taken out, as compared when a code comes back.
fn arguments_of(request: &CallToolRequestParams) -> String {
    request
        .arguments
        .as_ref()
        .map(|a| serde_json::Value::Object(a.clone()).to_string())
        .unwrap_or_else(|| "{}".into())
}

/// The person's answer to "allow this call?".
#[derive(Debug, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
pub struct Approve {
    /// Allow this call.
    pub approve: bool,
}
rmcp::elicit_safe!(Approve);

/// Whether `tool` needs the person's approval before it runs.
pub fn needed(sup: &Supervisor, tool: &str) -> bool {
    sup.settings().needs_approval(tool)
}

/// The question the person is asked about a call.
pub fn question(sup: &Supervisor, request: &CallToolRequestParams) -> String {
    let tool = &request.name;
    let summary = request
        .arguments
        .as_ref()
        .map(|a| {
            let mut a = a.clone();
            a.remove(CODE_ARG);
            serde_json::Value::Object(a).to_string()
        })
        .unwrap_or_else(|| "{}".into());
    let source = crate::supervisor::controls::source_words(sup.settings().require_approval.source);
    format!("troupe: allow {tool} {summary}? (require_approval, set in {source})")
}

/// Whether the call may go on; Err holds the answer to give instead. `answered` is the
/// person's answer to the form, when their client gave it with its retry of the call (the
/// stateless protocol era, see [`super::rounds`]).
pub async fn check(
    sup: &Supervisor,
    codes: &Codes,
    request: &mut CallToolRequestParams,
    ctx: &RequestContext<RoleServer>,
    caller: Option<&str>,
    answered: Option<Result<(), &'static str>>,
) -> Result<(), String> {
    let tool = request.name.to_string();
    let code = request
        .arguments
        .as_mut()
        .and_then(|a| a.remove(CODE_ARG))
        .and_then(|v| v.as_str().map(str::to_string));
    if !sup.settings().needs_approval(&tool) {
        return Ok(());
    }
    // Approval is the person's: an instance's call is asked of the person and waits for
    // their answer; the instance can neither give one nor learn a code.
    if let Some(instance) = caller {
        return instance_call(sup, request, instance, &tool, code).await;
    }
    if let Some(answer) = answered {
        return decided(sup, &tool, "elicitation", answer).await;
    }
    if let Some(code) = code {
        return codes.redeem(sup, request, &tool, &code).await;
    }
    if ctx
        .peer
        .supported_elicitation_modes()
        .contains(&ElicitationMode::Form)
    {
        return ask_by_form(sup, request, ctx, &tool).await;
    }
    codes.issue(sup, request, &tool).await
}

/// An instance's call: asked of the person (or, with an approval id, looked up), waited for,
/// and run only on their approval.
async fn instance_call(
    sup: &Supervisor,
    request: &CallToolRequestParams,
    instance: &str,
    tool: &str,
    approval_id: Option<String>,
) -> Result<(), String> {
    let args = serde_json::Value::Object(request.arguments.clone().unwrap_or_default());
    let asked = match approval_id {
        Some(id) => sup.approval(Some(instance), &id).await,
        None => sup.ask_approval(instance, tool, &args).await,
    }
    .map_err(|e| e.to_string())?;
    let standing = match asked.state {
        crate::states::ApprovalState::Pending => sup
            .await_approval(&asked.id, sup.config().permission_wait)
            .await
            .map_err(|e| e.to_string())?,
        _ => asked,
    };
    sup.spend_approval(&standing, instance, tool, &args).await
}

/// The person's answer to the form, recorded; Err holds what the call answers instead.
async fn decided(
    sup: &Supervisor,
    tool: &str,
    how: &str,
    answer: Result<(), &str>,
) -> Result<(), String> {
    let (kind, why) = match answer {
        Ok(()) => ("approval.granted", "approved"),
        Err(why) => ("approval.refused", why),
    };
    audit::record(
        sup.pool(),
        None,
        None,
        kind,
        json!({ "tool": tool, "how": how, "answer": why }),
    )
    .await;
    answer.map_err(|why| {
        format!("{tool} was not run: the user {why} it. Ask them what they want instead.")
    })
}

/// Asks the person's own session with a form (their client declared it can show one).
async fn ask_by_form(
    sup: &Supervisor,
    request: &CallToolRequestParams,
    ctx: &RequestContext<RoleServer>,
    tool: &str,
) -> Result<(), String> {
    audit::record(
        sup.pool(),
        None,
        None,
        "approval.asked",
        json!({ "tool": tool, "how": "elicitation" }),
    )
    .await;
    let answer = ctx
        .peer
        .elicit_with_timeout::<Approve>(question(sup, request), Some(ASK_WAIT))
        .await;
    let answer = match answer {
        Ok(Some(Approve { approve: true })) => Ok(()),
        Ok(_) => Err("did not approve"),
        Err(ElicitationError::UserDeclined) => Err("declined"),
        Err(ElicitationError::UserCancelled) => Err("cancelled"),
        Err(_) => Err("gave no answer to"),
    };
    decided(sup, tool, "elicitation", answer).await
}

impl Codes {
    /// A code the person was given, for this very call: good once.
    async fn redeem(
        &self,
        sup: &Supervisor,
        request: &CallToolRequestParams,
        tool: &str,
        code: &str,
    ) -> Result<(), String> {
        let valid = {
            let mut codes = self.0.lock().expect("codes poisoned");
            codes.retain(|_, (_, _, at)| at.elapsed() < CODE_LIFE);
            let args = arguments_of(request);
            codes
                .remove(code)
                .is_some_and(|(t, a, _)| t == tool && a == args)
        };
        let (kind, detail) = match valid {
            true => (
                "approval.granted",
                json!({ "tool": tool, "how": "confirmation code" }),
            ),
            false => (
                "approval.refused",
                json!({ "tool": tool, "why": "unknown or used code" }),
            ),
        };
        audit::record(sup.pool(), None, None, kind, detail).await;
        match valid {
            true => Ok(()),
            false => Err(format!(
                "{tool}: the approval code is not valid (each is good once, for 10 minutes, for \
                 the call it was given for, with the same arguments). Call {tool} without it to \
                 get a new one, and ask the user."
            )),
        }
    }

    /// For a client that cannot show a form: the call is refused with a code the model gives
    /// back once the person agrees.
    async fn issue(
        &self,
        sup: &Supervisor,
        request: &CallToolRequestParams,
        tool: &str,
    ) -> Result<(), String> {
        let summary = arguments_of(request);
        let code = format!("ok-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        self.0.lock().expect("codes poisoned").insert(
            code.clone(),
            (tool.to_string(), summary.clone(), Instant::now()),
        );
        audit::record(
            sup.pool(),
            None,
            None,
            "approval.asked",
            json!({ "tool": tool, "how": "confirmation code" }),
        )
        .await;
        let source =
            crate::supervisor::controls::source_words(sup.settings().require_approval.source);
        Err(format!(
            "{tool} needs the user's approval first (require_approval, set in {source}). Ask the \
             user whether to run {tool} with {summary}; if they agree, call {tool} again with \
             the same arguments and \"{CODE_ARG}\": \"{code}\" (good once, for 10 minutes)."
        ))
    }
}

#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
pub struct GetApprovalParams {
    /// The approval's id (`appr-…`), from the answer of the call that asked. Without one: the
    /// approvals still waiting for the person that you can see.
    #[serde(default)]
    pub approval_id: Option<String>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct RespondApprovalParams {
    /// The approval's id (`appr-…`), from the notice or get_approval.
    pub approval_id: String,
    /// true runs the instance's call; false refuses it.
    pub approve: bool,
    /// With a refusal: why, shown to the instance so it can do something else.
    #[serde(default)]
    pub reason: Option<String>,
}

/// An instance's call that needs (or needed) the person's approval.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ApprovalView {
    pub approval_id: String,
    /// The instance whose call it is.
    pub instance_id: String,
    pub tool: String,
    /// The call's arguments: the approval is good for exactly these.
    pub arguments: rmcp::model::JsonObject,
    /// pending, approved, denied, used or expired.
    pub state: crate::states::ApprovalState,
    /// Where the person answered: rest, form or mcp.
    pub decided_by: Option<String>,
    /// Why it was denied, when the person said.
    pub reason: Option<String>,
    pub asked_at: String,
    pub decided_at: Option<String>,
    pub used_at: Option<String>,
    /// What to do next, in a line.
    pub next: String,
}

impl From<crate::db::approvals::Approval> for ApprovalView {
    fn from(a: crate::db::approvals::Approval) -> Self {
        use crate::states::ApprovalState;
        let next = match a.state {
            ApprovalState::Pending => {
                "the person has not answered yet; ask again later".to_string()
            }
            ApprovalState::Approved => format!(
                "call {} again with the same arguments and \"approval\": \"{}\" (once, within \
                 an hour)",
                a.tool, a.id
            ),
            ApprovalState::Denied => {
                "not to be run: ask whoever gave you work what they want instead".into()
            }
            ApprovalState::Used => "done: the call ran".into(),
            ApprovalState::Expired => format!("call {} without an approval to ask again", a.tool),
        };
        ApprovalView {
            arguments: super::schema::stored_object(a.arguments),
            approval_id: a.id,
            instance_id: a.instance_id,
            tool: a.tool,
            state: a.state,
            decided_by: a.decided_by,
            reason: a.reason,
            asked_at: a.asked_at,
            decided_at: a.decided_at,
            used_at: a.used_at,
            next,
        }
    }
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ApprovalsResult {
    /// The approval asked for, or every one still waiting that you can see, oldest first.
    pub approvals: Vec<ApprovalView>,
}

/// Asks the person's client (one that declared form elicitation) to answer an instance's
/// approval; an answer that comes too late (another client answered first) is dropped.
pub async fn ask_person(
    sup: Supervisor,
    peer: rmcp::service::Peer<RoleServer>,
    approval_id: String,
    question: String,
) {
    let wait = sup.config().permission_wait;
    let approve = match peer
        .elicit_with_timeout::<Approve>(question, Some(wait))
        .await
    {
        Ok(Some(Approve { approve })) => approve,
        Err(ElicitationError::UserDeclined) => false,
        // Cancelled, timed out or no form: the approval waits for another answer.
        _ => return,
    };
    if let Err(e) = sup
        .decide_approval(&approval_id, approve, "form", None)
        .await
    {
        tracing::debug!(approval = %approval_id, "the person's answer came too late: {e}");
    }
}

#[rmcp::tool_router(router = approval_tools, vis = "pub(super)")]
impl super::Troupe {
    #[rmcp::tool(
        name = "get_approval",
        description = "How an approval stands: a call that needs the person's approval (require_approval) made by an instance waits for their answer and, when none comes in time, answers with an approval id. pending: not answered yet; approved: call the tool again with the same arguments and \"approval\": \"<id>\"; denied: not to be run. Without an id, lists the approvals still waiting that you can see."
    )]
    pub async fn get_approval(
        &self,
        super::Parameters(p): super::Parameters<GetApprovalParams>,
        extensions: rmcp::model::Extensions,
    ) -> Result<super::Json<ApprovalsResult>, String> {
        let who = super::caller(&extensions);
        let approvals = match p.approval_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => vec![
                self.sup
                    .approval(who.as_deref(), id)
                    .await
                    .map_err(super::tool_error)?,
            ],
            _ => {
                let mut seen = Vec::new();
                for a in self.sup.approvals(false).await.map_err(super::tool_error)? {
                    if self
                        .sup
                        .visible_to(who.as_deref(), &a.instance_id)
                        .await
                        .is_ok()
                    {
                        seen.push(a);
                    }
                }
                seen
            }
        };
        Ok(super::Json(ApprovalsResult {
            approvals: approvals.into_iter().map(Into::into).collect(),
        }))
    }

    #[rmcp::tool(
        name = "respond_to_approval",
        description = "The person's answer to an instance's call that waits for their approval (require_approval): approve runs it, a refusal (with an optional reason the instance reads) stops it. Only the person may answer; the ids are in the notice and in get_approval."
    )]
    pub async fn respond_to_approval(
        &self,
        super::Parameters(p): super::Parameters<RespondApprovalParams>,
    ) -> Result<super::Json<ApprovalView>, String> {
        self.sup
            .decide_approval(p.approval_id.trim(), p.approve, "mcp", p.reason)
            .await
            .map(|a| super::Json(a.into()))
            .map_err(super::tool_error)
    }
}
