//! require_approval: a tool the person must approve asks them through MCP elicitation when
//! their client can show a question; otherwise the call is refused with a one-time code, and
//! the model asks the person and calls again with it. Every question, approval and refusal
//! is audited.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
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

/// Codes handed out and not used yet: code → (tool, the call's arguments, handed out at).
/// A code approves that exact call, for the person only.
static CODES: LazyLock<Mutex<HashMap<String, Issued>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

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
    request: &mut CallToolRequestParams,
    ctx: &RequestContext<RoleServer>,
    caller: Option<&str>,
    answered: Option<Result<(), &'static str>>,
) -> Result<(), String> {
    let tool = request.name.to_string();
    let settings = sup.settings();
    let code = request
        .arguments
        .as_mut()
        .and_then(|a| a.remove(CODE_ARG))
        .and_then(|v| v.as_str().map(str::to_string));
    if !settings.needs_approval(&tool) {
        return Ok(());
    }
    let pool = sup.pool();
    // Approval is the person's: an instance neither gets a code nor may use one, whatever it
    // learned; it is told to ask.
    if let Some(instance) = caller {
        let source = crate::supervisor::controls::source_words(settings.require_approval.source);
        audit::record(
            pool,
            Some(instance),
            Some(instance),
            "approval.refused",
            json!({ "tool": tool, "why": "an instance asked", "code_given": code.is_some() }),
        )
        .await;
        return Err(format!(
            "{tool} needs the person's approval (require_approval, set in {source}), which an \
             instance can neither give nor obtain. Ask whoever gave you work (reply_to_caller) \
             to run it or to approve it."
        ));
    }
    if let Some(answer) = answered {
        let (kind, why) = match answer {
            Ok(()) => ("approval.granted", "approved"),
            Err(why) => ("approval.refused", why),
        };
        audit::record(
            pool,
            caller,
            None,
            kind,
            json!({ "tool": tool, "how": "elicitation", "answer": why }),
        )
        .await;
        return answer.map_err(|why| {
            format!("{tool} was not run: the user {why} it. Ask them what they want instead.")
        });
    }
    if let Some(code) = code {
        let valid = {
            let mut codes = CODES.lock().expect("codes poisoned");
            codes.retain(|_, (_, _, at)| at.elapsed() < CODE_LIFE);
            let args = arguments_of(request);
            codes
                .remove(&code)
                .is_some_and(|(t, a, _)| t == tool && a == args)
        };
        if valid {
            audit::record(
                pool,
                caller,
                None,
                "approval.granted",
                json!({ "tool": tool, "how": "confirmation code" }),
            )
            .await;
            return Ok(());
        }
        audit::record(
            pool,
            caller,
            None,
            "approval.refused",
            json!({ "tool": tool, "why": "unknown or used code" }),
        )
        .await;
        return Err(format!(
            "{tool}: the approval code is not valid (each is good once, for 10 minutes, for the \
             call it was given for, with the same arguments). Call {tool} without it to get a \
             new one, and ask the user."
        ));
    }
    let summary = request
        .arguments
        .as_ref()
        .map(|a| serde_json::Value::Object(a.clone()).to_string())
        .unwrap_or_else(|| "{}".into());
    let source = crate::supervisor::controls::source_words(settings.require_approval.source);
    // Only the person's own session can show them a question; an instance's would be asked
    // in a pane nobody watches.
    if caller.is_none()
        && ctx
            .peer
            .supported_elicitation_modes()
            .contains(&ElicitationMode::Form)
    {
        audit::record(
            pool,
            caller,
            None,
            "approval.asked",
            json!({ "tool": tool, "how": "elicitation" }),
        )
        .await;
        let question = question(sup, request);
        let answer = ctx
            .peer
            .elicit_with_timeout::<Approve>(question, Some(ASK_WAIT))
            .await;
        let (allowed, why) = match answer {
            Ok(Some(Approve { approve: true })) => (true, "approved"),
            Ok(_) => (false, "not approved"),
            Err(ElicitationError::UserDeclined) => (false, "declined"),
            Err(ElicitationError::UserCancelled) => (false, "cancelled"),
            Err(_) => (false, "no answer"),
        };
        let kind = if allowed {
            "approval.granted"
        } else {
            "approval.refused"
        };
        audit::record(
            pool,
            caller,
            None,
            kind,
            json!({ "tool": tool, "how": "elicitation", "answer": why }),
        )
        .await;
        return if allowed {
            Ok(())
        } else {
            Err(format!(
                "{tool} was not run: the user {why} it. Ask them what they want instead."
            ))
        };
    }
    let code = format!("ok-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    CODES.lock().expect("codes poisoned").insert(
        code.clone(),
        (tool.clone(), arguments_of(request), Instant::now()),
    );
    audit::record(
        pool,
        caller,
        None,
        "approval.asked",
        json!({ "tool": tool, "how": "confirmation code" }),
    )
    .await;
    Err(format!(
        "{tool} needs the user's approval first (require_approval, set in {source}). Ask the \
         user whether to run {tool} with {summary}; if they agree, call {tool} again with the \
         same arguments and \"{CODE_ARG}\": \"{code}\" (good once, for 10 minutes)."
    ))
}
