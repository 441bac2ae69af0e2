//! The MCP surface: rmcp tool routers, one file per area. Tools are thin: validate, ask the
//! supervisor, shape the answer. Failures a calling model can act on come back as tool errors
//! (`is_error`), with text that says what to do.

mod answer;
mod approval;
pub mod clients;
mod coordination;
mod files;
mod instances;
mod logging;
mod messaging;
mod parameters;
mod permissions;
mod roots;
mod rounds;
mod schema;
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
pub(crate) use approval::ApprovalView;
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
/// holds is cheap to clone. The routers are built once for the whole server, not copied per
/// call (the tools' map took 2 µs to copy).
#[derive(Clone)]
pub struct Troupe {
    sup: Supervisor,
    /// What every session of this server shares.
    state: Arc<State>,
    tool_router: &'static ToolRouter<Self>,
    prompt_router: &'static PromptRouter<Self>,
    /// The least severe log level the client wants (`logging/setLevel`).
    log_level: logging::LogLevel,
}

/// The tools, built once: their schemas are rewritten in spellings every client reads.
static TOOLS: LazyLock<ToolRouter<Troupe>> = LazyLock::new(|| {
    let mut router = Troupe::instance_tools()
        + Troupe::lifecycle_tools()
        + Troupe::messaging_tools()
        + Troupe::coordination_tools()
        + Troupe::team_tools()
        + Troupe::worktree_tools()
        + Troupe::file_tools()
        + Troupe::permission_tools()
        + Troupe::approval_tools()
        + Troupe::settings_tools();
    for route in router.map.values_mut() {
        schema::make_portable(
            Arc::make_mut(&mut route.attr.input_schema),
            schema::Side::Input,
        );
        if let Some(out) = route.attr.output_schema.as_mut() {
            schema::make_portable(Arc::make_mut(out), schema::Side::Output);
        }
    }
    router
});

static PROMPTS: LazyLock<PromptRouter<Troupe>> = LazyLock::new(Troupe::prompt_router);

/// The names of troupe's tools (for settings that name tools).
pub fn tool_names() -> Vec<&'static str> {
    let router: &'static ToolRouter<Troupe> = &TOOLS;
    let mut names: Vec<&'static str> = router.map.keys().map(|k| k.as_ref()).collect();
    names.sort_unstable();
    names
}

/// What every MCP session of one server shares: the rounds asked of stateless clients and not
/// finished, and the approval codes handed out and not used. A stateless client's retry may
/// come on another session than the call that asked.
#[derive(Default)]
pub struct State {
    rounds: rounds::Rounds,
    codes: approval::Codes,
    /// `list_instances` answers, by what they were made from.
    lists: crate::kept::Kept<instances::ListKey, answer::Rendered>,
}

impl Troupe {
    pub fn new(sup: Supervisor, state: Arc<State>) -> Self {
        Troupe {
            sup,
            state,
            tool_router: &TOOLS,
            prompt_router: &PROMPTS,
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

    /// This caller's longest single wait, if shorter than what it may ask for.
    fn cap(&self, ctx: &RequestContext<RoleServer>) -> Option<Duration> {
        let is_person = caller(&ctx.extensions).is_none();
        wait_cap(
            self.sup.config().person_wait,
            is_person,
            ctx.client_info().as_ref(),
        )
    }

    /// `asked`, or the caller's cap if shorter; true when capped.
    fn capped(&self, ctx: &RequestContext<RoleServer>, asked: Duration) -> (Duration, bool) {
        match self.cap(ctx) {
            Some(cap) if cap < asked => (cap, true),
            _ => (asked, false),
        }
    }

    /// Runs a long wait and keeps the caller informed while it lasts: MCP progress
    /// notifications every few seconds when the caller asked for them (a progressToken),
    /// else an info log line now and then. Either also keeps the session from expiring as
    /// idle during a wait longer than [`crate::config::MCP_SESSION_IDLE`].
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

/// The tools whose waits a permission question may end in the stateless era.
const WAITING_TOOLS: &[&str] = &["send_to_instance", "get_message"];

impl Troupe {
    /// Runs a waiting call of the person's stateless client. If an instance asks for a
    /// permission while the call waits for a message, the wait ends with `input_required`:
    /// the form goes to the person, and the client's retry of `original` decides it and goes
    /// on waiting for the same message.
    async fn call_watching(
        &self,
        request: rmcp::model::CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
        original: (String, Option<JsonObject>),
    ) -> Result<rmcp::model::CallToolResponse, McpError> {
        use crate::supervisor::Event;
        use tokio::sync::broadcast::error::RecvError;
        let waiting = rounds::Waiting::default();
        context.extensions.insert(waiting.clone());
        let mut events = self.sup.subscribe();
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        let call = self.tool_router.call(tcc);
        let mut call = std::pin::pin!(call);
        loop {
            tokio::select! {
                out = &mut call => return out,
                event = events.recv() => match event {
                    Ok(Event::PermissionAsked { instance_id, request_id, summary }) => {
                        let Some((message_id, until)) = waiting.get() else { continue };
                        let question = permissions::question(&instance_id, &summary);
                        let asked = rounds::Asked::Permission { instance_id, request_id, message_id, until };
                        let ask = self.state.rounds.ask_permission(&original.0, original.1.as_ref(), asked, &question);
                        return Ok(rmcp::model::CallToolResponse::InputRequired(ask));
                    }
                    Ok(Event::ApprovalAsked { approval_id, question, .. }) => {
                        let Some((message_id, until)) = waiting.get() else { continue };
                        let asked = rounds::Asked::Approval { approval_id, message_id, until };
                        let ask = self.state.rounds.ask_approval(&original.0, original.1.as_ref(), asked, &question);
                        return Ok(rmcp::model::CallToolResponse::InputRequired(ask));
                    }
                    Err(RecvError::Closed) => return call.await,
                    _ => {}
                },
            }
        }
    }

    /// Whether the instance `me` may make this call, by [`crate::access`]'s rule for the tool
    /// and where each instance it names stands relative to `me`. An id that names no instance
    /// is left to the tool, which says so.
    async fn authorize(
        &self,
        me: &str,
        request: &rmcp::model::CallToolRequestParams,
    ) -> Result<(), String> {
        use crate::access::{self, Place, Rule};
        let tool = request.name.as_ref();
        let rule = match access::rule(tool) {
            Some(Rule::PersonOnly) | None => return Err(access::refusal(tool, None)),
            Some(rule) => rule,
        };
        let args = serde_json::Value::Object(request.arguments.clone().unwrap_or_default());
        for (act, name, path) in access::targets(rule, &args) {
            let place = match path {
                "message_id" => {
                    match crate::db::messages::Message::find(self.sup.pool(), &name).await {
                        Ok(Some(m)) => self.sup.place_of(me, &m.instance_id).await,
                        _ => continue,
                    }
                }
                "team" => self.sup.team_place(me, &name).await,
                _ => self.sup.place_of(me, &name).await,
            };
            let place = match place {
                Ok(p) => p,
                Err(crate::error::Error::UnknownInstance(_)) => continue,
                Err(e) => return Err(e.to_string()),
            };
            if !access::may(act, place) {
                let target = match path {
                    "message_id" => format!("message {name}"),
                    "team" => format!("team {name}"),
                    _ => name,
                };
                return Err(access::refusal(tool, Some((act, &target))));
            }
            debug_assert!(place != Place::Outside || !access::may(act, place));
        }
        Ok(())
    }

    /// After the person answered a question asked during their wait for `message_id`: goes on
    /// waiting for it until `until`, as the original call would have.
    async fn wait_on(
        &self,
        request: &rmcp::model::CallToolRequestParams,
        context: RequestContext<RoleServer>,
        message_id: String,
        until: std::time::Instant,
    ) -> Result<rmcp::model::CallToolResponse, McpError> {
        let left = until.saturating_duration_since(std::time::Instant::now());
        let mut args = JsonObject::new();
        args.insert("message_id".into(), message_id.into());
        if left.as_secs() >= 1 {
            args.insert("wait_seconds".into(), left.as_secs().into());
        }
        let again = rmcp::model::CallToolRequestParams::new("get_message").with_arguments(args);
        let original = (request.name.to_string(), request.arguments.clone());
        self.call_watching(again, context, original).await
    }

    /// An instance's call its place in the tree does not allow: logged, audited, answered.
    async fn access_refused(
        &self,
        me: &str,
        request: &rmcp::model::CallToolRequestParams,
        text: String,
    ) -> rmcp::model::CallToolResponse {
        tracing::info!(instance = me, "refused a call: {text}");
        crate::db::audit::record(
            self.sup.pool(),
            Some(me),
            None,
            "access.refused",
            serde_json::json!({ "tool": request.name, "why": text }),
        )
        .await;
        refusal(text)
    }

    /// A round to start before the call can run, in the stateless era: the client's roots for
    /// a spawn that names no directory, the person's approval for a tool that needs it (unless
    /// the call carries a code).
    async fn start_round(
        &self,
        request: &rmcp::model::CallToolRequestParams,
        can: rounds::Needs,
    ) -> Option<rmcp::model::InputRequiredResult> {
        let has_code = request
            .arguments
            .as_ref()
            .is_some_and(|a| a.contains_key(approval::CODE_ARG));
        let needs = rounds::Needs {
            roots: can.roots && rounds::wants_roots(&request.name, request.arguments.as_ref()),
            approval: can.approval && !has_code && approval::needed(&self.sup, &request.name),
        };
        if !needs.any() {
            return None;
        }
        if needs.approval {
            crate::db::audit::record(
                self.sup.pool(),
                None,
                None,
                "approval.asked",
                serde_json::json!({ "tool": request.name, "how": "elicitation" }),
            )
            .await;
        }
        let question = approval::question(&self.sup, request);
        let args = request.arguments.as_ref();
        Some(self.state.rounds.ask(&request.name, args, needs, &question))
    }

    /// The person's answer to an approval form, carried by their client's retry. No answer
    /// (cancelled) leaves the approval waiting for another.
    async fn decide_approval(&self, approval_id: &str, responses: &rmcp::model::InputResponses) {
        let approve = match rounds::answered_approval(responses) {
            Ok(()) => true,
            Err("declined" | "did not approve") => false,
            Err(_) => return,
        };
        if let Err(e) = self
            .sup
            .decide_approval(approval_id, approve, "form", None)
            .await
        {
            tracing::debug!(
                approval = approval_id,
                "the person's answer came too late: {e}"
            );
        }
    }

    /// The person's answer to a permission form, carried by their client's retry.
    async fn decide_permission(
        &self,
        instance_id: &str,
        request_id: &str,
        responses: &rmcp::model::InputResponses,
    ) {
        let Some(allow) = rounds::answered_permission(responses) else {
            return;
        };
        let (decision, message) = match allow {
            true => (crate::permissions::Decision::Allow, None),
            false => (
                crate::permissions::Decision::Deny,
                Some("the person declined".to_string()),
            ),
        };
        if let Err(e) = self
            .sup
            .respond_to_permission(instance_id, request_id, decision, message, None)
            .await
        {
            tracing::debug!(request = %request_id, "the person's answer came too late: {e}");
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

    /// Both eras: sessions (2025-11-25 and before), where troupe asks the person's client
    /// for its roots and approvals on the session, and the stateless 2026-07-28, where it asks
    /// with `input_required` results (see [`rounds`]). Claude Code 2.1.328 takes 2026-07-28.
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2026_07_28))
    }

    /// As rmcp's own, and the client is noted: an instance's client lists troupe's tools
    /// before its model may call any.
    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, McpError> {
        self.sup
            .mcp_clients()
            .note(&context, caller(&context.extensions).as_deref());
        let stateless = clients::Era::of(&context) == clients::Era::Stateless;
        Ok(rmcp::model::ListToolsResult {
            result_type: Some(rmcp::model::ResultType::COMPLETE),
            tools: self.tool_router.list_all(),
            meta: None,
            next_cursor: None,
            ttl_ms: stateless.then_some(0),
            cache_scope: stateless.then_some(rmcp::model::CacheScope::Public),
        })
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

    /// A tool the person must approve is asked about (or refused) before it runs. In the
    /// stateless era, what the call needs from the person's client (its roots, their
    /// approval) is asked for first with an `input_required` answer, and taken from the
    /// client's retry.
    async fn call_tool(
        &self,
        mut request: rmcp::model::CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, McpError> {
        let who = caller(&context.extensions);
        self.sup.mcp_clients().note(&context, who.as_deref());
        let state = request.request_state.take();
        let responses = request.input_responses.take().unwrap_or_default();
        let stateless_person =
            who.is_none() && clients::Era::of(&context) == clients::Era::Stateless;
        let can = match stateless_person {
            true => rounds::can_answer(&context.client_capabilities().unwrap_or_default()),
            false => rounds::Needs::default(),
        };
        let finished = state.as_deref().filter(|_| stateless_person).and_then(|s| {
            self.state
                .rounds
                .finish(s, &request.name, request.arguments.as_ref())
        });
        let mut answered = None;
        match finished {
            Some(rounds::Asked::Permission {
                instance_id,
                request_id,
                message_id,
                until,
            }) => {
                self.decide_permission(&instance_id, &request_id, &responses)
                    .await;
                return self.wait_on(&request, context, message_id, until).await;
            }
            Some(rounds::Asked::Approval {
                approval_id,
                message_id,
                until,
            }) => {
                self.decide_approval(&approval_id, &responses).await;
                return self.wait_on(&request, context, message_id, until).await;
            }
            Some(rounds::Asked::Inputs(asked)) => {
                if asked.roots
                    && let Some(dir) = rounds::answered_dir(&responses)
                {
                    context.extensions.insert(roots::ClientDir(dir));
                }
                if asked.approval {
                    answered = Some(rounds::answered_approval(&responses));
                }
            }
            None => {
                if let Some(ask) = self.start_round(&request, can).await {
                    return Ok(rmcp::model::CallToolResponse::InputRequired(ask));
                }
            }
        }
        if let Some(me) = who.as_deref()
            && let Err(text) = self.authorize(me, &request).await
        {
            return Ok(self.access_refused(me, &request, text).await);
        }
        let codes = &self.state.codes;
        let who = who.as_deref();
        if let Err(text) =
            approval::check(&self.sup, codes, &mut request, &context, who, answered).await
        {
            tracing::info!("refused a call: {text}");
            return Ok(refusal(text));
        }
        if can.approval && WAITING_TOOLS.contains(&request.name.as_ref()) {
            let original = (request.name.to_string(), request.arguments.clone());
            return self.call_watching(request, context, original).await;
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

/// A tool call answered with an error the caller reads.
fn refusal(text: String) -> rmcp::model::CallToolResponse {
    rmcp::model::CallToolResult::error(vec![rmcp::model::ContentBlock::text(text)]).into()
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

/// How long before a client's own limit troupe answers a capped wait.
const CAP_MARGIN: Duration = Duration::from_secs(20);

/// The longest one wait may last for this caller, when shorter than any it asks for: the
/// person's own Claude Code (2.1.212 and later) moves a call past 2 minutes to the
/// background, so its waits end before that with the message id and how to wait on. The CLIs
/// troupe starts are told not to (`CLAUDE_CODE_MCP_AUTO_BACKGROUND_MS=0`), and other clients
/// have no known limit; `--person-wait` sets the person's limit for every client.
fn wait_cap(
    configured: Option<Duration>,
    is_person: bool,
    client: Option<&Implementation>,
) -> Option<Duration> {
    if !is_person {
        return None;
    }
    if configured.is_some() {
        return configured;
    }
    let client = client?;
    if client.name != crate::agents::claude::MCP_CLIENT_NAME {
        return None;
    }
    let version = crate::agents::versions::Version::find(&client.version)?;
    crate::agents::claude::mcp_calls_background_after(version)
        .map(|limit| limit.saturating_sub(CAP_MARGIN).max(Duration::from_secs(1)))
}

/// What a capped wait says instead of the answer that is not there yet.
fn still_working(message_id: &str, waited: Duration, asked: Duration) -> String {
    let left = asked.saturating_sub(waited).as_secs();
    let mut text = format!(
        "still working after {}s; troupe answers now because your MCP client moves a tool call \
         that runs longer to the background. Call get_message with message_id \"{message_id}\" \
         and wait_seconds {} to keep waiting",
        waited.as_secs(),
        waited.as_secs()
    );
    if left > 0 {
        text.push_str(&format!(" ({left}s remain of the wait you asked for)"));
    }
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
mod tests;
