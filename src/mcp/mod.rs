//! The MCP surface: rmcp tool routers, one file per area. Tools are thin: validate, ask the
//! supervisor, shape the answer. Failures a calling model can act on come back as tool errors
//! (`is_error`), with text that says what to do.

mod answer;
mod approval;
mod coordination;
mod files;
mod instances;
mod logging;
mod messaging;
mod parameters;
mod permissions;
mod roots;
mod settings;
pub use settings::PRECEDENCE as SETTINGS_PRECEDENCE;
mod teams;
mod worktrees;

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    Extensions, Implementation, JsonObject, ProgressNotificationParam, PromptMessage,
    ProtocolVersion, Role, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, prompt, prompt_handler, prompt_router, tool_handler};

use crate::supervisor::Supervisor;
use answer::Json;
use parameters::Parameters;

pub const INSTRUCTIONS: &str = "troupe runs other Claude Code instances for you, each in its own \
terminal, and remembers everything in a database.\n\
When a task is big or has separable parts, spawn helpers with spawn_claude: pick the role \
(architect on opus for design, developer or reviewer or researcher on sonnet, tester or \
documenter on haiku) and prefer the cheaper model when the work is simple. Tell the user what \
you spawn and why. Helpers work in project_dir: pass the absolute path of the code they \
should see (it defaults to your client's working directory when your client tells troupe its \
roots, else to an empty workspace). Send work with send_to_instance (it waits for the answer by default; on a \
timeout it returns the message id, and get_message fetches the answer later). Read progress \
with get_instance_output and get_instance_status. interrupt_instance stops a turn and keeps \
the conversation, so you can redirect the instance. suspend_instance frees an idle \
instance's memory and the next message resumes it. For work that spans days, create_team and \
start_team; after any restart resume_team brings the members back with their conversations. \
Combine the helpers' answers into one \
reply for the user, and terminate_instance helpers you no longer need.";

/// One per MCP session: rmcp makes one for each session (and for each tool call), so what it
/// holds is cheap to clone.
#[derive(Clone)]
pub struct Troupe {
    sup: Supervisor,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
    /// The least severe log level the client wants (`logging/setLevel`).
    log_level: logging::LogLevel,
}

/// The tools, built once: their schemas are cleaned of formats clients do not know.
static TOOLS: LazyLock<ToolRouter<Troupe>> = LazyLock::new(|| {
    let mut router = Troupe::instance_tools()
        + Troupe::lifecycle_tools()
        + Troupe::messaging_tools()
        + Troupe::coordination_tools()
        + Troupe::team_tools()
        + Troupe::worktree_tools()
        + Troupe::file_tools()
        + Troupe::permission_tools()
        + Troupe::settings_tools();
    for route in router.map.values_mut() {
        strip_formats(Arc::make_mut(&mut route.attr.input_schema));
        if let Some(out) = route.attr.output_schema.as_mut() {
            strip_formats(Arc::make_mut(out));
        }
    }
    router
});

/// The names of troupe's tools (for settings that name tools).
pub fn tool_names() -> Vec<&'static str> {
    let router: &'static ToolRouter<Troupe> = &TOOLS;
    let mut names: Vec<&'static str> = router.map.keys().map(|k| k.as_ref()).collect();
    names.sort_unstable();
    names
}

impl Troupe {
    pub fn new(sup: Supervisor) -> Self {
        Troupe {
            sup,
            tool_router: TOOLS.clone(),
            prompt_router: Self::prompt_router(),
            log_level: logging::LogLevel::default(),
        }
    }

    /// Where an instance works when the caller named no `project_dir`: for the person's own
    /// session, the directory its client works in (its MCP roots); an instance's helpers
    /// inherit its directory in the supervisor.
    async fn default_dir(
        &self,
        ctx: &RequestContext<RoleServer>,
        caller: Option<&str>,
        given: Option<String>,
    ) -> Option<String> {
        match given.filter(|d| !d.trim().is_empty()) {
            Some(dir) => Some(dir),
            None if caller.is_none() => roots::client_dir(ctx).await,
            None => None,
        }
    }

    /// Runs a long wait and keeps the caller informed while it lasts: MCP progress
    /// notifications every few seconds when the caller asked for them (a progressToken),
    /// else an info log line now and then. Either also keeps the session from expiring as
    /// idle during a wait longer than [`crate::http::MCP_SESSION_IDLE`].
    async fn with_progress<T>(
        &self,
        ctx: &RequestContext<RoleServer>,
        what: &str,
        work: impl Future<Output = T>,
    ) -> T {
        let token = ctx.meta.get_progress_token();
        let every = if token.is_some() {
            PROGRESS_EVERY
        } else {
            LOG_EVERY
        };
        let started = std::time::Instant::now();
        let mut work = std::pin::pin!(work);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut step = 0.0;
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = ticks.tick() => {
                    step += 1.0;
                    let text = format!("{what}: still waiting after {}s", started.elapsed().as_secs());
                    match &token {
                        Some(token) => {
                            let note = ProgressNotificationParam::new(token.clone(), step)
                                .with_message(text);
                            let _ = ctx.peer.notify_progress(note).await;
                        }
                        None => self.log_level.info(ctx, text).await,
                    }
                }
            }
        }
    }
}

/// The `format` values of JSON Schema itself; schemars also writes its own (`uint`, `int64`,
/// `double`, ...), which clients such as Claude Code warn about on every start.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

fn strip_formats(schema: &mut JsonObject) {
    if let Some(serde_json::Value::String(f)) = schema.get("format")
        && !STANDARD_FORMATS.contains(&f.as_str())
    {
        schema.remove("format");
    }
    for (key, value) in schema.iter_mut() {
        match key.as_str() {
            // Data, not schemas.
            "default" | "const" | "enum" | "examples" => {}
            "properties" | "$defs" | "definitions" | "patternProperties" => {
                if let serde_json::Value::Object(map) = value {
                    for sub in map.values_mut() {
                        if let serde_json::Value::Object(o) = sub {
                            strip_formats(o);
                        }
                    }
                }
            }
            _ => match value {
                serde_json::Value::Object(o) => strip_formats(o),
                serde_json::Value::Array(items) => {
                    for item in items {
                        if let serde_json::Value::Object(o) = item {
                            strip_formats(o);
                        }
                    }
                }
                _ => {}
            },
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
How: tell the user what you spawn and why. Give each instance a clear, self-contained task, \
and the project_dir (absolute path) of the code it should work on. Use \
coordinate_instances for parallel work (mode parallel), pipelines (sequential) and second \
opinions (consensus); an instance may spawn its own helpers, which become its children \
(get_instance_tree shows the team). Report progress to the user, interrupt_instance to redirect \
work that goes astray (the conversation is kept), and read get_pending_replies for messages \
instances send you.\n\n\
Finish: synthesise the instances' answers into one coherent reply (the user should feel they \
had one conversation), then terminate instances you no longer need (terminate_instance ends \
an instance's children too). Check get_instance_status for tokens and cost.";

/// troupe's tools that only read: a person's `troupe chat` session runs them without a
/// permission dialog (the rest ask, or follow the person's own rules).
pub const READ_ONLY_TOOLS: &[&str] = &[
    "list_instances",
    "get_instance_status",
    "get_instance_output",
    "get_instance_tree",
    "get_children",
    "get_message",
    "get_pending_replies",
    "get_pending_permissions",
    "get_session_metrics",
    "get_orchestration_settings",
    "list_teams",
    "get_team",
    "get_worktree_status",
    "list_instance_files",
    "retrieve_instance_file",
];

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for Troupe {
    fn get_info(&self) -> ServerConfig {
        // Logging is deprecated in the newest protocol draft, but clients of the current
        // one use it, and long waits speak through it.
        #[allow(deprecated)]
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_prompts()
            .enable_logging()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("troupe", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    /// troupe speaks MCP 2025-11-25 and the revisions before it, not yet the stateless
    /// 2026-07-28. What troupe needs of a person's client is server-to-client requests on
    /// a session: its roots (a helper works in the person's project), elicitation (approval
    /// forms, permission questions) and notifications. Offered 2026-07-28, Claude Code 2.1.328
    /// takes it, and each request then arrives as a session of its own with no capabilities,
    /// so none of those reach it. Without 2026-07-28 in `server/discover`'s answer, it falls
    /// back to `initialize` on 2025-11-25, with roots and elicitation (verified on 2.1.328).
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.log_level.set(&request);
        Ok(())
    }

    /// A tool the person must approve is asked about (or refused) before it runs.
    async fn call_tool(
        &self,
        mut request: rmcp::model::CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, McpError> {
        let who = caller(&context.extensions);
        if let Err(text) = approval::check(&self.sup, &mut request, &context, who.as_deref()).await
        {
            tracing::info!("refused a call: {text}");
            return Ok(
                rmcp::model::CallToolResult::error(vec![rmcp::model::ContentBlock::text(text)])
                    .into(),
            );
        }
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await
    }

    /// The person's session hears of what `notify_on` names (spawns, terminations, errors,
    /// budgets) as log notifications, for as long as it stays connected.
    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        if caller(&context.extensions).is_some() {
            return;
        }
        let events = self.sup.subscribe();
        let level = self.log_level.clone();
        tokio::spawn(logging::forward_notices(
            self.sup.clone(),
            events,
            context.peer,
            level,
        ));
    }

    /// rmcp reads a `tools/call` whose params do not parse (`arguments` that is not an
    /// object, say) as an unknown method, and would answer -32601 with the message
    /// "tools/call". Say what is wrong instead.
    async fn on_custom_request(
        &self,
        request: rmcp::model::CustomRequest,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CustomResult, McpError> {
        parameters::custom_request(request)
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
    let text = e.to_string();
    tracing::info!("refused a call: {text}");
    text
}

/// How often a long wait tells the client it is still going: progress, when asked for.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// ... else a log line, rarely: well within the session's idle limit.
const LOG_EVERY: Duration = Duration::from_secs(5 * 60);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_only_tools_are_tools() {
        let names = tool_names();
        for t in READ_ONLY_TOOLS {
            assert!(names.contains(t), "{t} is not one of troupe's tools");
        }
    }

    #[test]
    fn formats_clients_do_not_know_are_taken_out_and_nothing_else() {
        let mut schema = serde_json::json!({
            "type": "object",
            "properties": {
                "lines": { "type": "integer", "format": "uint", "minimum": 0 },
                "since": { "type": "string", "format": "date-time" },
                "tasks": { "type": "array", "items": { "$ref": "#/$defs/Task" } },
                "default": { "type": "integer", "format": "int64" }
            },
            "$defs": { "Task": { "type": "object", "properties": {
                "n": { "type": ["integer", "null"], "format": "uint64" } } } },
            "default": { "format": "uint" }
        });
        let serde_json::Value::Object(map) = &mut schema else {
            unreachable!()
        };
        strip_formats(map);
        let p = &schema["properties"];
        assert!(p["lines"].get("format").is_none());
        assert_eq!(p["lines"]["minimum"], 0);
        assert_eq!(p["since"]["format"], "date-time");
        assert!(
            p["default"].get("format").is_none(),
            "a property named default"
        );
        assert!(
            schema["$defs"]["Task"]["properties"]["n"]
                .get("format")
                .is_none()
        );
        assert_eq!(schema["default"]["format"], "uint", "data is left alone");
        // The real tool list carries none.
        let text = serde_json::to_string(
            &TOOLS
                .list_all()
                .iter()
                .map(|t| (t.input_schema.clone(), t.output_schema.clone()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for bad in ["\"uint", "\"int64", "\"int32", "\"double", "\"float"] {
            assert!(!text.contains(bad), "{bad} in the tool schemas");
        }
    }

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
