//! The MCP surface: rmcp tool routers, one file per area. Tools are thin: validate, ask the
//! supervisor, shape the answer. Failures a calling model can act on come back as tool errors
//! (`is_error`), with text that says what to do.

mod instances;
mod messaging;
mod teams;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Extensions, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool_handler};

use crate::supervisor::Supervisor;

/// The header a spawned instance's MCP config carries, naming the instance that calls.
pub const INSTANCE_HEADER: &str = "x-troupe-instance";

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
}

impl Troupe {
    pub fn new(sup: Supervisor) -> Self {
        Troupe {
            sup,
            tool_router: Self::instance_tools()
                + Self::lifecycle_tools()
                + Self::messaging_tools()
                + Self::team_tools(),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Troupe {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("troupe", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

/// The instance making this call, when it is one troupe spawned (its MCP config names it).
fn caller(extensions: &Extensions) -> Option<String> {
    let parts = extensions.get::<axum::http::request::Parts>()?;
    let value = parts.headers.get(INSTANCE_HEADER)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

fn tool_error(e: crate::error::Error) -> String {
    e.to_string()
}
