//! `troupe chat`: the person's own Claude Code, in their own terminal, as the orchestrator.
//! It makes sure a server answers (starting `troupe serve` in the background when none does),
//! attaches the session as a root instance, so its spawns are its children and its tokens and
//! cost are counted, and runs `claude` with troupe as its MCP server and the orchestrator
//! guidance in its system prompt. When `claude` exits, the session is detached.

use serde_json::json;
use std::path::{Path, PathBuf};

use crate::agents::claude;
use crate::cli::Client;

#[derive(clap::Args)]
pub struct ChatArgs {
    /// The first message.
    pub prompt: Option<String>,
    /// The directory the session (and its helpers) work in [default: here].
    #[arg(long)]
    pub project: Option<PathBuf>,
    /// Context added to the system prompt.
    #[arg(long)]
    pub context: Option<String>,
    /// More system prompt, after troupe's orchestrator guidance.
    #[arg(long)]
    pub system: Option<String>,
    /// The model of the session (claude --model).
    #[arg(long)]
    pub model: Option<String>,
    /// Start or resume this team first; its members are named in the system prompt.
    #[arg(long)]
    pub team: Option<String>,
    /// The Claude Code executable.
    #[arg(long, env = "TROUPE_CLAUDE_BIN", default_value = crate::agents::AgentKind::Claude.default_bin())]
    pub claude_bin: String,
    /// Passed to claude as they are (after --).
    #[arg(last = true)]
    pub claude_args: Vec<String>,
}

/// Runs the chat; returns the CLI's exit code.
pub async fn run(
    url: &str,
    data_dir: &Path,
    token: impl Fn() -> anyhow::Result<String>,
    args: ChatArgs,
) -> anyhow::Result<i32> {
    let url = url.trim_end_matches('/');
    crate::local::ensure_server(url, data_dir).await?;
    let client = Client::new(url, &token()?);

    let project = std::path::absolute(args.project.clone().unwrap_or(std::env::current_dir()?))?;
    let project = project
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("--project {}: {e}", project.display()))?;
    let roster = match &args.team {
        Some(team) => Some(team_roster(&client, team).await?),
        None => None,
    };

    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("HOME is not set; claude keeps its sessions under it"))?;
    let session = uuid::Uuid::new_v4().to_string();
    let transcript = claude::transcript_path(&home, &project, &session);
    let attached = client
        .attach(&json!({
            "role": "orchestrator",
            "model": args.model,
            "project_dir": project.display().to_string(),
            "session_id": session,
            "transcript_path": transcript.display().to_string(),
        }))
        .await?;
    let id = attached["instance_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the server did not name the attached session"))?
        .to_string();
    let instance_token = attached["token"].as_str().unwrap_or_default();

    let dir = data_dir.join("instances").join(&id);
    crate::private::dir(&dir)?;
    let mcp_file = dir.join("chat-mcp.json");
    let mcp = claude::mcp_config(url, &id, instance_token);
    crate::private::write(&mcp_file, serde_json::to_string_pretty(&mcp)?.as_bytes())?;
    let prompt_file = dir.join("chat-prompt.md");
    let prompt = system_prompt(&args, roster.as_deref());
    crate::private::write(&prompt_file, prompt.as_bytes())?;

    let mut cmd = claude::chat_command(&claude::ChatLaunch {
        bin: &args.claude_bin,
        project: &project,
        session: &session,
        mcp_file: &mcp_file,
        prompt_file: &prompt_file,
        model: args.model.as_deref(),
        read_only_tools: crate::mcp::READ_ONLY_TOOLS,
        extra_args: &args.claude_args,
        prompt: args.prompt.as_deref(),
    });
    // Ctrl-C belongs to the CLI in the foreground; this process only waits for it.
    let swallow = tokio::spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });
    let status = cmd.status().await;
    swallow.abort();
    let ended = client.detach(&id).await;
    let status = status.map_err(|e| {
        anyhow::anyhow!(
            "cannot run the Claude Code CLI {:?}: {e}; install it with `npm install -g {}` or \
             name it with --claude-bin",
            args.claude_bin,
            crate::agents::AgentKind::Claude.npm_package()
        )
    })?;
    if let Err(e) = ended {
        eprintln!("troupe: the session ended, but the server was not told: {e}");
    }
    Ok(status.code().unwrap_or(1))
}

/// The orchestrator guidance, then what the person added, then the team.
fn system_prompt(args: &ChatArgs, roster: Option<&str>) -> String {
    let mut parts = vec![crate::mcp::ORCHESTRATION_GUIDE.to_string()];
    if let Some(system) = args.system.as_deref().filter(|s| !s.trim().is_empty()) {
        parts.push(system.to_string());
    }
    if let Some(context) = args.context.as_deref().filter(|s| !s.trim().is_empty()) {
        parts.push(format!("Context: {context}"));
    }
    if let Some(roster) = roster {
        parts.push(roster.to_string());
    }
    parts.join("\n\n")
}

/// Starts or resumes the team, and names its members for the system prompt.
async fn team_roster(client: &Client, team: &str) -> anyhow::Result<String> {
    client.team(team).await.map_err(|e| {
        anyhow::anyhow!("{e}; create the team first with `troupe team create {team} --members …`")
    })?;
    let view = client.resume_team(team).await?;
    let mut lines = vec![format!(
        "Your team {team} is running; send its members work with send_to_instance:"
    )];
    for m in view["members"].as_array().into_iter().flatten() {
        lines.push(format!(
            "- {} ({}, {}): instance_id {}",
            m["name"].as_str().unwrap_or("?"),
            m["role"].as_str().unwrap_or("?"),
            m["model"].as_str().unwrap_or("?"),
            m["instance_id"].as_str().unwrap_or("(not started)")
        ));
    }
    Ok(lines.join("\n"))
}
