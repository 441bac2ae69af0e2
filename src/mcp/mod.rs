//! The MCP surface: rmcp tool routers, one file per area. Tools are thin: validate, ask the
//! supervisor, shape the answer. Failures a calling model can act on come back as tool errors
//! (`is_error`), with text that says what to do.

mod coordination;
mod instances;
mod messaging;
mod teams;

use std::future::Future;
use std::time::Duration;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    Extensions, Implementation, ProgressNotificationParam, PromptMessage, Role, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, prompt, prompt_handler, prompt_router, tool_handler};

use crate::supervisor::Supervisor;

pub const INSTRUCTIONS: &str = "troupe runs other Claude Code instances for you, each in its own \
terminal, and remembers everything in a database.\n\
When a task is big or has separable parts, spawn helpers with spawn_claude: pick the role \
(architect on opus for design, developer or reviewer or researcher on sonnet, tester or \
documenter on haiku) and prefer the cheaper model when the work is simple. Tell the user what \
you spawn and why. Send work with send_to_instance (it waits for the answer by default; on a \
timeout it returns the message id, and get_message fetches the answer later). Read progress \
with get_instance_output and get_instance_status. interrupt_instance stops a turn and keeps \
the conversation, so you can redirect the instance. suspend_instance frees an idle \
instance's memory and the next message resumes it. For work that spans days, create_team and \
start_team; after any restart resume_team brings the members back with their conversations. \
Combine the helpers' answers into one \
reply for the user, and terminate_instance helpers you no longer need.";

#[derive(Clone)]
pub struct Troupe {
    sup: Supervisor,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

impl Troupe {
    pub fn new(sup: Supervisor) -> Self {
        Troupe {
            sup,
            tool_router: Self::instance_tools()
                + Self::lifecycle_tools()
                + Self::messaging_tools()
                + Self::coordination_tools()
                + Self::team_tools(),
            prompt_router: Self::prompt_router(),
        }
    }
}

#[prompt_router]
impl Troupe {
    /// How to orchestrate a team of instances well.
    #[prompt(
        name = "orchestrate",
        description = "Guidance for orchestrating troupe instances: when to spawn, which model for which role, how to report, synthesise and clean up."
    )]
    async fn orchestrate(&self) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(Role::User, ORCHESTRATION_GUIDE)]
    }
}

/// The orchestrator guidance, served as the `orchestrate` prompt.
pub const ORCHESTRATION_GUIDE: &str = "You can run other Claude Code instances through troupe.\n\n\
When to spawn: a task with parts that need different expertise; independent parts that can run \
in parallel; work where a cheaper model is good enough; when the user asks for several \
perspectives. Do small tasks yourself.\n\n\
Which model: architect on opus for design and hard decisions; developer, reviewer and researcher \
on sonnet; tester and documenter on haiku. Prefer the cheaper model whenever the work is simple.\n\n\
How: tell the user what you spawn and why. Give each instance a clear, self-contained task. Use \
coordinate_instances for parallel work (mode parallel), pipelines (sequential) and second \
opinions (consensus); an instance may spawn its own helpers, which become its children \
(get_instance_tree shows the team). Report progress to the user, interrupt_instance to redirect \
work that goes astray (the conversation is kept), and read get_pending_replies for messages \
instances send you.\n\n\
Finish: synthesise the instances' answers into one coherent reply (the user should feel they \
had one conversation), then terminate instances you no longer need (terminate_instance ends \
an instance's children too). Check get_instance_status for tokens and cost.";

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for Troupe {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("troupe", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }
}

/// The instance making this call, when it is one troupe spawned: proven by its token at the
/// HTTP layer, never taken from a header alone.
fn caller(extensions: &Extensions) -> Option<String> {
    let parts = extensions.get::<axum::http::request::Parts>()?;
    match parts.extensions.get::<crate::auth::Caller>()? {
        crate::auth::Caller::Instance(id) => Some(id.clone()),
        crate::auth::Caller::User => None,
    }
}

fn tool_error(e: crate::error::Error) -> String {
    e.to_string()
}

/// How often a long wait tells the client it is still going.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A caller's wait in seconds, checked: at least 1, at most [`crate::supervisor::MAX_WAIT`].
fn wait_seconds(field: &str, seconds: Option<u64>, default: Duration) -> Result<Duration, String> {
    let max = crate::supervisor::MAX_WAIT.as_secs();
    match seconds {
        None => Ok(default),
        Some(0) => Err(format!(
            "{field} must be at least 1 (or do not wait: set wait_for_response to false)"
        )),
        Some(s) if s > max => Err(format!(
            "{field} is {s}; the longest wait is {max} seconds (a day). Wait less, or fetch the \
             answer later with get_message"
        )),
        Some(s) => Ok(Duration::from_secs(s)),
    }
}

/// Runs a long wait, sending MCP progress notifications while it lasts when the caller asked
/// for them (a progressToken), so clients can show progress and keep the call alive.
async fn with_progress<T>(
    ctx: &RequestContext<RoleServer>,
    what: &str,
    work: impl Future<Output = T>,
) -> T {
    let Some(token) = ctx.meta.get_progress_token() else {
        return work.await;
    };
    let started = std::time::Instant::now();
    let mut work = std::pin::pin!(work);
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut step = 0.0;
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticks.tick() => {
                step += 1.0;
                let note = ProgressNotificationParam::new(token.clone(), step)
                    .with_message(format!("{what}: {}s", started.elapsed().as_secs()));
                let _ = ctx.peer.notify_progress(note).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_bounded_and_errors_name_the_field() {
        let d = Duration::from_secs(300);
        assert_eq!(wait_seconds("timeout_seconds", None, d), Ok(d));
        assert_eq!(
            wait_seconds("timeout_seconds", Some(5), d),
            Ok(Duration::from_secs(5))
        );
        let e = wait_seconds("timeout_seconds", Some(1 << 63), d).unwrap_err();
        assert!(
            e.starts_with("timeout_seconds is 9223372036854775808"),
            "{e}"
        );
        let e = wait_seconds("wait_seconds", Some(0), d).unwrap_err();
        assert!(e.starts_with("wait_seconds must be at least 1"), "{e}");
    }
}
