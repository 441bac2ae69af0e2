use std::path::PathBuf;

use clap::{Parser, Subcommand};
use troupe::agents::AgentKind;
use troupe::config::{self, Config, ServeArgs};

#[derive(Parser)]
#[command(
    name = "troupe",
    version,
    about = "Run a team of Claude Code and Codex instances in tmux from one MCP session"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: MCP (streamable HTTP) at /mcp, the REST API and live events under /api,
    /// the dashboard at /.
    Serve(ServeArgs),
    /// Forward a CLI's hook payload (stdin) to the server; for a permission request, print
    /// the server's answer. Installed by troupe itself.
    Hook {
        #[arg(long)]
        url: String,
        /// The file holding the instance's token.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Talk to your own Claude Code, here, with troupe as its way to a team: the session's
    /// spawns are its children, its cost is counted. Starts `troupe serve` if none answers.
    Chat {
        #[command(flatten)]
        server: ServerUrl,
        /// The first message.
        prompt: Option<String>,
        /// The directory the session (and its helpers) work in [default: here].
        #[arg(long)]
        project: Option<PathBuf>,
        /// Context added to the system prompt.
        #[arg(long)]
        context: Option<String>,
        /// More system prompt, after troupe's orchestrator guidance.
        #[arg(long)]
        system: Option<String>,
        /// The model of the session (claude --model).
        #[arg(long)]
        model: Option<String>,
        /// Start or resume this team first; its members are named in the system prompt.
        #[arg(long)]
        team: Option<String>,
        /// The Claude Code executable.
        #[arg(long, env = "TROUPE_CLAUDE_BIN", default_value = AgentKind::Claude.default_bin())]
        claude_bin: String,
        /// Passed to claude as they are (after --).
        #[arg(last = true)]
        claude_args: Vec<String>,
    },
    /// MCP over stdio, for clients that speak nothing else: forwards to the server at --url
    /// (one registry for both), starting `troupe serve` there if none answers.
    Stdio {
        #[command(flatten)]
        server: ServerUrl,
    },
    /// Check what troupe needs, a line each, with the fix for what is wrong: tmux, the CLIs
    /// (found, version, tested), the token, the data directory and database, the server, and
    /// for a running server its MCP clients (which protocol era each speaks) and the last
    /// failures in its audit log. Exits 1 if something must be fixed.
    Doctor {
        #[command(flatten)]
        server: ServerUrl,
        /// The Claude Code executable.
        #[arg(long, env = "TROUPE_CLAUDE_BIN", default_value = AgentKind::Claude.default_bin())]
        claude_bin: String,
        /// The Codex executable.
        #[arg(long, env = "TROUPE_CODEX_BIN", default_value = AgentKind::Codex.default_bin())]
        codex_bin: String,
        /// The checks as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// List the live instances of a running server (with --all, the ended ones too).
    Ls {
        #[command(flatten)]
        server: ServerUrl,
        /// Ended instances (terminated, failed) too.
        #[arg(long)]
        all: bool,
        /// The server's answer as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// The parent/child tree of the live instances.
    Tree {
        #[command(flatten)]
        server: ServerUrl,
        #[arg(long)]
        json: bool,
    },
    /// Send a message to an instance and print its answer.
    Send {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        id: String,
        /// The message.
        message: String,
        /// Wait for the answer and print it (the default).
        #[arg(long, conflicts_with = "no_wait")]
        wait: bool,
        /// Queue it and print its id instead of waiting for the answer.
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Stop an instance's running turn (or every instance's with --all); conversations are kept.
    Interrupt {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Terminate an instance and everything under it (or every instance with --all).
    Kill {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// What an instance said and did: its recent output, and with -f everything after it,
    /// live, until the instance ends or you press Ctrl-C.
    Logs {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        id: String,
        /// Keep following the output as it is written.
        #[arg(short, long)]
        follow: bool,
        /// How many recent chunks to show first.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: u32,
        /// One JSON object per chunk, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Permission requests waiting for a decision (instances in a prompting permission mode).
    Permissions {
        #[command(flatten)]
        server: ServerUrl,
        #[arg(long)]
        json: bool,
    },
    /// Let an instance go on with the tool use it asks permission for.
    Allow {
        #[command(flatten)]
        server: ServerUrl,
        /// The request id (`perm-…`, from `troupe permissions`).
        request_id: String,
    },
    /// Refuse a tool use an instance asks permission for; it goes on without it.
    Deny {
        #[command(flatten)]
        server: ServerUrl,
        /// The request id (`perm-…`, from `troupe permissions`).
        request_id: String,
        /// Why, for the instance's model.
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Answer an instance's call that waits for your approval (require_approval); without an
    /// id, list the ones waiting.
    Approve {
        #[command(flatten)]
        server: ServerUrl,
        /// The approval id (`appr-…`, from the notice, the dashboard or `troupe approve`).
        approval_id: Option<String>,
        /// Refuse the call instead.
        #[arg(long)]
        deny: bool,
        /// With --deny: why, for the instance.
        #[arg(short, long, requires = "deny")]
        message: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Open an instance's tmux session in this terminal (detach with Ctrl-b d).
    Attach {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        id: String,
    },
    /// Print a one-time link that logs a browser in to the dashboard.
    Open {
        #[command(flatten)]
        server: ServerUrl,
    },
    /// The browsers logged in to the dashboard; --end-all logs every one out.
    Logins {
        #[command(flatten)]
        server: ServerUrl,
        /// End every dashboard login (each browser must open a new link).
        #[arg(long)]
        end_all: bool,
    },
    /// Bring a suspended or stopped instance back with its conversation.
    Resume {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        id: String,
    },
    /// What the session has cost so far: tokens, cost by model, messages, time saved.
    Cost {
        #[command(flatten)]
        server: ServerUrl,
        /// The server's answer as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Add troupe to an MCP client's configuration (or take it out again).
    Mcp {
        #[command(flatten)]
        server: ServerUrl,
        #[command(subcommand)]
        command: McpCommand,
    },
    /// Cost and audit reports, read from the database (the server may be stopped).
    Report {
        /// The database [default: $XDG_DATA_HOME/troupe/troupe.db]
        #[arg(long, env = "TROUPE_DB", global = true)]
        db: Option<PathBuf>,
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Persistent teams: create, list, show, start, resume, dissolve.
    Team {
        #[command(flatten)]
        server: ServerUrl,
        #[command(subcommand)]
        command: TeamCommand,
    },
}

#[derive(clap::Args)]
struct ServerUrl {
    /// The running troupe server.
    #[arg(
        long,
        env = "TROUPE_URL",
        default_value = "http://127.0.0.1:8001",
        global = true
    )]
    url: String,
    /// The server token [default: the `token` file in the server's data directory]
    #[arg(long, env = "TROUPE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// The server's data directory, where its token file is.
    #[arg(long, env = "TROUPE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

impl ServerUrl {
    fn client(&self) -> anyhow::Result<troupe::cli::Client> {
        Ok(troupe::cli::Client::new(&self.url, &self.token()?))
    }

    fn token(&self) -> anyhow::Result<String> {
        Ok(match &self.token {
            Some(t) => t.clone(),
            None => {
                let dir = self
                    .data_dir
                    .clone()
                    .unwrap_or_else(config::default_data_dir);
                let file = dir.join("token");
                std::fs::read_to_string(&file)
                    .map(|t| t.trim().to_string())
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot read the server token from {}: {e}; pass --token or set \
                             TROUPE_TOKEN (troupe serve prints it at start)",
                            file.display()
                        )
                    })?
            }
        })
    }
}

#[derive(Subcommand)]
enum McpCommand {
    /// Write troupe, with the server token, into the client's MCP configuration.
    Install {
        #[arg(long, value_enum, default_value_t = troupe::install::Client::Claude)]
        client: troupe::install::Client,
        #[arg(long, value_enum, default_value = "user")]
        scope: troupe::install::Scope,
        /// The Codex executable (with --client codex).
        #[arg(long, env = "TROUPE_CODEX_BIN", default_value = AgentKind::Codex.default_bin())]
        codex_bin: String,
    },
    /// Take troupe out of the client's MCP configuration.
    Uninstall {
        #[arg(long, value_enum, default_value_t = troupe::install::Client::Claude)]
        client: troupe::install::Client,
        #[arg(long, value_enum, default_value = "user")]
        scope: troupe::install::Scope,
        #[arg(long, env = "TROUPE_CODEX_BIN", default_value = AgentKind::Codex.default_bin())]
        codex_bin: String,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Tokens and cost, grouped by instance, model, team, day or message.
    Cost {
        #[arg(long, value_enum, default_value = "instance")]
        by: troupe::report::By,
        /// Only calls on or after this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Only this team's instances.
        #[arg(long)]
        team: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: troupe::report::Format,
    },
    /// The audit log: spawns, messages' ends, interrupts, settings, refusals.
    Audit {
        /// Only events on or after this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Only this instance's events.
        #[arg(long)]
        instance: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: troupe::report::Format,
    },
}

#[derive(Subcommand)]
enum TeamCommand {
    /// Create a team, e.g. `troupe team create dev-team --members architect:opus,developer:sonnet,tester:haiku`.
    Create {
        name: String,
        /// Members as role[:model] or name=role[:model], comma-separated.
        #[arg(long)]
        members: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Start the members right away.
        #[arg(long)]
        start: bool,
        /// The directory the members work in, kept with the team (relative to here is fine).
        #[arg(long)]
        project_dir: Option<String>,
        /// Each member works in a git worktree of its own (branch troupe/<member>), made from
        /// the project directory's repository.
        #[arg(long)]
        worktrees: bool,
    },
    /// List teams.
    Ls,
    /// Show one team.
    Show { name: String },
    /// Spawn the members that have no instance yet.
    Start {
        name: String,
        /// The directory the members work in, kept as the team's from now on.
        #[arg(long)]
        project_dir: Option<String>,
    },
    /// Bring a team back, each member with its conversation.
    Resume { name: String },
    /// Terminate the members and retire the team.
    Dissolve { name: String },
}

async fn doctor(
    server: ServerUrl,
    claude_bin: String,
    codex_bin: String,
    json: bool,
) -> anyhow::Result<()> {
    use troupe::doctor;
    let setup = doctor::Setup {
        claude_bin,
        codex_bin,
        data_dir: server
            .data_dir
            .clone()
            .unwrap_or_else(config::default_data_dir),
        url: server.url.clone(),
        token: server.token.clone(),
    };
    let facts = doctor::gather(&setup).await;
    let checks = doctor::judge(
        &facts,
        &troupe::agents::claude::TESTED,
        &troupe::agents::codex::TESTED,
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        print!("{}", doctor::render(&checks));
    }
    match checks.iter().any(|c| c.status == doctor::Status::Fail) {
        true => anyhow::bail!("troupe doctor found something to fix (the FAIL lines above)"),
        false => Ok(()),
    }
}

/// Errors are for people: the message and its causes, never a stack trace (even with
/// RUST_BACKTRACE set), and exit status 1.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Hook { url, token_file } => {
            runtime.block_on(troupe::hook::forward(&url, token_file.as_deref()));
            Ok(())
        }
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Doctor {
            server,
            claude_bin,
            codex_bin,
            json,
        } => runtime.block_on(doctor(server, claude_bin, codex_bin, json)),
        Command::Ls { server, json, all } => runtime.block_on(ls(server.client()?, json, all)),
        Command::Cost { server, json } => runtime.block_on(cost(server.client()?, json)),
        Command::Tree { server, json } => runtime.block_on(async {
            let t = server.client()?.tree().await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&t)?),
                false => match t["text"].as_str().filter(|s| !s.trim().is_empty()) {
                    Some(text) => println!("{}", text.trim_end()),
                    None => println!("no live instances"),
                },
            }
            Ok(())
        }),
        Command::Send {
            server,
            id,
            message,
            wait: _,
            no_wait,
            json,
        } => runtime.block_on(async {
            let m = server.client()?.send(&id, &message, !no_wait).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else if no_wait {
                println!("queued as {}", m["id"].as_str().unwrap_or("?"));
            } else {
                match m["state"].as_str() {
                    Some("answered") => println!("{}", m["response"].as_str().unwrap_or("")),
                    other => anyhow::bail!(
                        "message {} ended {}: {}",
                        m["id"].as_str().unwrap_or("?"),
                        other.unwrap_or("?"),
                        m["state_reason"].as_str().unwrap_or("")
                    ),
                }
            }
            Ok(())
        }),
        Command::Interrupt { server, id, all } => {
            runtime.block_on(each(server.client()?, id, all, "interrupt"))
        }
        Command::Kill { server, id, all } => {
            runtime.block_on(each(server.client()?, id, all, "terminate"))
        }
        Command::Logs {
            server,
            id,
            follow,
            lines,
            json,
        } => runtime.block_on(troupe::cli::logs::run(
            &server.client()?,
            &id,
            follow,
            lines,
            json,
        )),
        Command::Attach { server, id } => runtime.block_on(attach(server.client()?, &id)),
        Command::Logins { server, end_all } => runtime.block_on(async {
            let client = server.client()?;
            if end_all {
                let r = client.end_logins().await?;
                println!(
                    "{} dashboard login(s) ended; `troupe open` prints a new link",
                    r["ended"]
                );
                return Ok(());
            }
            let r = client.logins().await?;
            let rows: Vec<Vec<String>> = r["logins"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    let field = |k: &str| l[k].as_str().unwrap_or("").to_string();
                    vec![field("created_at"), field("expires_at")]
                })
                .collect();
            if rows.is_empty() {
                println!("no browser is logged in to the dashboard");
            } else {
                print!("{}", troupe::cli::table(&["LOGGED IN", "UNTIL"], &rows));
                eprintln!("end them all with: troupe logins --end-all");
            }
            Ok(())
        }),
        Command::Open { server } => runtime.block_on(async {
            let link = server.client()?.login_link().await?;
            println!("{}", link["url"].as_str().unwrap_or(""));
            eprintln!(
                "Open it in a browser within {} minutes; it works once.",
                link["expires_in_seconds"].as_u64().unwrap_or(600) / 60
            );
            Ok(())
        }),
        Command::Permissions { server, json } => runtime.block_on(async {
            let p = server.client()?.permissions().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = p["requests"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let field = |k: &str| r[k].as_str().unwrap_or("").to_string();
                    vec![
                        field("request_id"),
                        field("instance_id"),
                        troupe::cli::age(&field("asked_at"), chrono::Utc::now()),
                        field("summary"),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("no permission requests are waiting");
            } else {
                print!(
                    "{}",
                    troupe::cli::table(&["REQUEST", "INSTANCE", "WAITING", "ASKS"], &rows)
                );
                eprintln!("decide with: troupe allow <request> | troupe deny <request> -m <why>");
            }
            Ok(())
        }),
        Command::Allow { server, request_id } => runtime.block_on(async {
            let r = server.client()?.decide(&request_id, "allow", None).await?;
            println!(
                "{request_id} allowed: {} goes on with {}",
                r["instance_id"].as_str().unwrap_or("?"),
                r["summary"].as_str().unwrap_or("it")
            );
            Ok(())
        }),
        Command::Deny {
            server,
            request_id,
            message,
        } => runtime.block_on(async {
            let r = server
                .client()?
                .decide(&request_id, "deny", message.as_deref())
                .await?;
            println!(
                "{request_id} denied: {} goes on without {}",
                r["instance_id"].as_str().unwrap_or("?"),
                r["summary"].as_str().unwrap_or("it")
            );
            Ok(())
        }),
        Command::Approve {
            server,
            approval_id: None,
            json,
            ..
        } => runtime.block_on(async {
            let p = server.client()?.approvals().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = p["approvals"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let field = |k: &str| a[k].as_str().unwrap_or("").to_string();
                    vec![
                        field("approval_id"),
                        field("instance_id"),
                        troupe::cli::age(&field("asked_at"), chrono::Utc::now()),
                        format!("{} {}", field("tool"), a["arguments"]),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("no calls are waiting for your approval");
            } else {
                print!(
                    "{}",
                    troupe::cli::table(&["APPROVAL", "INSTANCE", "WAITING", "CALL"], &rows)
                );
                eprintln!("answer with: troupe approve <approval> | troupe approve <approval> --deny -m <why>");
            }
            Ok(())
        }),
        Command::Approve {
            server,
            approval_id: Some(id),
            deny,
            message,
            json,
        } => runtime.block_on(async {
            let a = server
                .client()?
                .approve(&id, !deny, message.as_deref())
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&a)?);
                return Ok(());
            }
            let (instance, tool) = (
                a["instance_id"].as_str().unwrap_or("?"),
                a["tool"].as_str().unwrap_or("its call"),
            );
            match deny {
                false => println!("{id} approved: {instance} goes on with {tool}"),
                true => println!("{id} denied: {instance} does not run {tool}"),
            }
            Ok(())
        }),
        Command::Resume { server, id } => runtime.block_on(async {
            let i = server.client()?.act(&id, "resume").await?;
            println!(
                "{} is {}",
                i["id"].as_str().unwrap_or(&id),
                i["state"].as_str().unwrap_or("?")
            );
            Ok(())
        }),
        Command::Stdio { server } => runtime.block_on(async {
            let data_dir = server
                .data_dir
                .clone()
                .unwrap_or_else(config::default_data_dir);
            troupe::local::ensure_server(&server.url, &data_dir).await?;
            troupe::stdio::run(&server.url, &server.token()?).await
        }),
        Command::Chat {
            server,
            prompt,
            project,
            context,
            system,
            model,
            team,
            claude_bin,
            claude_args,
        } => {
            let data_dir = server
                .data_dir
                .clone()
                .unwrap_or_else(config::default_data_dir);
            let args = troupe::chat::ChatArgs {
                prompt,
                project,
                context,
                system,
                model,
                team,
                claude_bin,
                claude_args,
            };
            let code = runtime.block_on(troupe::chat::run(
                &server.url,
                &data_dir,
                || server.token(),
                args,
            ))?;
            std::process::exit(code)
        }
        Command::Mcp { server, command } => mcp(&server, command),
        Command::Team { server, command } => runtime.block_on(team(server.client()?, command)),
        Command::Report { db, command } => runtime.block_on(report(db, command)),
    }
}

fn mcp(server: &ServerUrl, command: McpCommand) -> anyhow::Result<()> {
    use troupe::install::{self, Client, Scope};
    let home = std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
        anyhow::anyhow!("HOME is not set; troupe cannot find the client's config")
    })?;
    let cwd = std::env::current_dir()?;
    let mcp_url = format!("{}/mcp", server.url.trim_end_matches('/'));
    let desktop_scope = |scope: Scope| {
        if scope == Scope::Project {
            anyhow::bail!("Claude Desktop has one config per user; leave out --scope project");
        }
        Ok(())
    };
    let codex_scope = |scope: Scope| {
        if scope == Scope::Project {
            anyhow::bail!("Codex keeps MCP servers per user only; leave out --scope project");
        }
        Ok(())
    };
    let outcome = match command {
        McpCommand::Install {
            client,
            scope,
            codex_bin,
        } => match client {
            Client::Claude => install::install_claude(
                scope,
                &install::claude_file(scope, &home, &cwd),
                &mcp_url,
                &server.token()?,
            )?,
            Client::Codex => {
                codex_scope(scope)?;
                install::install_codex(&codex_bin, &mcp_url)?
            }
            Client::Desktop => {
                desktop_scope(scope)?;
                install::install_desktop(
                    &install::desktop_file(&home),
                    &std::env::current_exe()?,
                    server.url.trim_end_matches('/'),
                )?
            }
        },
        McpCommand::Uninstall {
            client,
            scope,
            codex_bin,
        } => match client {
            Client::Claude => install::uninstall_claude(&install::claude_file(scope, &home, &cwd))?,
            Client::Codex => {
                codex_scope(scope)?;
                install::uninstall_codex(&codex_bin)?
            }
            Client::Desktop => {
                desktop_scope(scope)?;
                install::uninstall_claude(&install::desktop_file(&home))?
            }
        },
    };
    println!("{outcome}");
    Ok(())
}

/// Hands the terminal to tmux, attached to the instance's session on troupe's socket.
async fn attach(client: troupe::cli::Client, id: &str) -> anyhow::Result<()> {
    let inst = client.instance(id).await?;
    let (Some(socket), Some(session)) =
        (inst["tmux_socket"].as_str(), inst["tmux_session"].as_str())
    else {
        anyhow::bail!("the server did not say where {id}'s tmux session is");
    };
    if inst["state"] == "attached" {
        anyhow::bail!("{id} is a session troupe did not start; it has no tmux session of troupe's");
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        anyhow::bail!(
            "troupe attach needs a terminal; from a script, run: tmux -L {socket} attach -t {session}"
        );
    }
    let status = troupe::tmux::attach_here(socket, session)
        .map_err(|e| anyhow::anyhow!("cannot run tmux: {e}"))?;
    if !status.success() {
        anyhow::bail!(
            "tmux could not attach to {session} on socket {socket}: is {id} still running? \
             (`troupe resume {id}` brings a stopped one back)"
        );
    }
    Ok(())
}

async fn ls(client: troupe::cli::Client, json: bool, all: bool) -> anyhow::Result<()> {
    let list = match all {
        true => client.all_instances().await?,
        false => client.instances().await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let instances = list["instances"].as_array().cloned().unwrap_or_default();
    if instances.is_empty() {
        println!("no live instances; spawn one from your MCP client, or `troupe team start NAME`");
        return Ok(());
    }
    let now = chrono::Utc::now();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|i| {
            vec![
                s(&i["id"]),
                s(&i["agent"]),
                s(&i["role"]),
                s(&i["model"]),
                s(&i["state"]),
                s(&i["parent_id"]),
                troupe::cli::age(i["created_at"].as_str().unwrap_or(""), now),
                troupe::cli::cost(&i["usage"]),
            ]
        })
        .collect();
    print!(
        "{}",
        troupe::cli::table(
            &[
                "ID", "AGENT", "ROLE", "MODEL", "STATE", "PARENT", "AGE", "COST"
            ],
            &rows
        )
    );
    Ok(())
}

/// `interrupt` or `terminate` one instance, or every live one.
async fn each(
    client: troupe::cli::Client,
    id: Option<String>,
    all: bool,
    action: &str,
) -> anyhow::Result<()> {
    let ids: Vec<String> = match (id, all) {
        (Some(id), _) => vec![id],
        (None, _) => {
            let list = client.instances().await?;
            let live: Vec<&serde_json::Value> =
                list["instances"].as_array().into_iter().flatten().collect();
            let is_live = |id: &serde_json::Value| live.iter().any(|i| i["id"] == *id);
            live.iter()
                // Terminating a parent ends its children first: only the tops are named.
                .filter(|i| action == "interrupt" || !is_live(&i["parent_id"]))
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect()
        }
    };
    if ids.is_empty() {
        println!("no live instances");
    }
    let mut failed = 0;
    for id in ids {
        match client.act(&id, action).await {
            Ok(r) if action == "interrupt" => println!(
                "{id}: {} ({})",
                r["outcome"].as_str().unwrap_or("?"),
                r["detail"].as_str().unwrap_or("")
            ),
            Ok(r) => println!(
                "terminated {}",
                r["terminated"]
                    .as_array()
                    .map(|t| t
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
            Err(e) => {
                eprintln!("{id}: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of them could not be done; `troupe ls` shows what runs");
    }
    Ok(())
}

async fn cost(client: troupe::cli::Client, json: bool) -> anyhow::Result<()> {
    let m = client.metrics().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&m)?);
        return Ok(());
    }
    let n = |k: &str| m[k].as_i64().unwrap_or(0);
    println!(
        "{} spawned, {} active · {} tokens · {}{} · {} of {} messages answered · {:.0} s saved by parallel work",
        n("instances_spawned"),
        n("instances_active"),
        n("total_tokens"),
        m["cost"].as_str().unwrap_or("$0.00"),
        match n("unpriced_calls") {
            0 => String::new(),
            u => format!(" (+{u} unpriced calls)"),
        },
        n("messages_answered"),
        n("messages_sent"),
        m["time_saved_seconds"].as_f64().unwrap_or(0.0)
    );
    let rows: Vec<Vec<String>> = m["cost_by_model"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let i = |k: &str| r[k].as_i64().unwrap_or(0).to_string();
            vec![
                r["model"].as_str().unwrap_or("-").to_string(),
                i("calls"),
                i("input_tokens"),
                i("output_tokens"),
                i("cache_creation_tokens"),
                i("cache_read_tokens"),
                match r["cost_micros"].as_i64() {
                    Some(c) => format!("${:.4}", c as f64 / 1e6),
                    None => "unpriced".into(),
                },
            ]
        })
        .collect();
    if !rows.is_empty() {
        print!(
            "{}",
            troupe::cli::table(
                &[
                    "MODEL",
                    "CALLS",
                    "INPUT",
                    "OUTPUT",
                    "CACHE WRITE",
                    "CACHE READ",
                    "COST"
                ],
                &rows
            )
        );
    }
    Ok(())
}

async fn team(client: troupe::cli::Client, command: TeamCommand) -> anyhow::Result<()> {
    match command {
        TeamCommand::Create {
            name,
            members,
            description,
            start,
            project_dir,
            worktrees,
        } => {
            let mut members = troupe::cli::parse_members(&members)?;
            for m in &mut members {
                m.use_worktree = worktrees;
            }
            let project_dir = project_dir
                .as_deref()
                .map(troupe::cli::absolute_dir)
                .transpose()?;
            let mut team = client
                .create_team(&name, &description, &members, project_dir.as_deref())
                .await?;
            if start {
                team = client.start_team(&name, None).await?;
            }
            troupe::cli::print_team(&team);
        }
        TeamCommand::Ls => {
            let teams = client.teams().await?;
            let teams = teams["teams"].as_array().cloned().unwrap_or_default();
            if teams.is_empty() {
                println!("no teams");
            }
            for t in &teams {
                troupe::cli::print_team(t);
            }
        }
        TeamCommand::Show { name } => troupe::cli::print_team(&client.team(&name).await?),
        TeamCommand::Start { name, project_dir } => {
            let project_dir = project_dir
                .as_deref()
                .map(troupe::cli::absolute_dir)
                .transpose()?;
            troupe::cli::print_team(&client.start_team(&name, project_dir.as_deref()).await?)
        }
        TeamCommand::Resume { name } => troupe::cli::print_team(&client.resume_team(&name).await?),
        TeamCommand::Dissolve { name } => {
            let team = client.dissolve_team(&name).await?;
            troupe::cli::print_team(&team);
            println!("dissolved");
        }
    }
    Ok(())
}

async fn report(db: Option<PathBuf>, command: ReportCommand) -> anyhow::Result<()> {
    let path = db.unwrap_or_else(|| config::default_data_dir().join("troupe.db"));
    let pool = troupe::report::open(&path).await?;
    let day = |d: Option<String>| -> anyhow::Result<Option<String>> {
        match d {
            Some(d) => {
                chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| {
                    anyhow::anyhow!("--since {d:?} is not a day; write it as YYYY-MM-DD")
                })?;
                Ok(Some(d.trim().to_string()))
            }
            None => Ok(None),
        }
    };
    let (report, format) = match command {
        ReportCommand::Cost {
            by,
            since,
            team,
            format,
        } => (
            troupe::report::cost(&pool, by, day(since)?.as_deref(), team.as_deref()).await?,
            format,
        ),
        ReportCommand::Audit {
            since,
            instance,
            format,
        } => (
            troupe::report::audit(&pool, day(since)?.as_deref(), instance.as_deref()).await?,
            format,
        ),
    };
    print!("{}", report.render(format));
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "troupe=info,tower_http=warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();

    let (db_path, data_dir) = args.paths()?;
    let found = troupe::preflight::check(&args.claude_bin, &args.codex_bin, &data_dir)?;
    let config = Config::layered(
        &args,
        db_path,
        data_dir,
        found.codex.clone().err(),
        &troupe::mcp::tool_names(),
    )?;

    let server = troupe::Server::start(config).await?;
    let config = server.supervisor.config();
    tracing::info!(
        url = %server.url(),
        db = %config.db_path.display(),
        tmux_socket = %config.tmux_socket,
        claude = %troupe::agents::claude::TESTED.assess(&found.claude),
        codex = %found
            .codex
            .as_deref()
            .map(|v| troupe::agents::codex::TESTED.assess(v).to_string())
            .unwrap_or_else(|_| "not found".into()),
        tmux = %found.tmux,
        "troupe is serving; MCP at {}/mcp",
        server.url()
    );
    if let Err(why) = &found.codex {
        tracing::info!("Codex instances are off: {why}");
    }
    print_way_in(&server);
    shutdown_signal().await;
    if args.terminate_on_exit {
        tracing::info!("shutting down; terminating instances");
    } else {
        tracing::info!("shutting down; instances keep running in tmux");
    }
    server.stop_with(args.terminate_on_exit).await;
    Ok(())
}

/// How to connect, to stderr like the log: the token itself only when it was just made and a
/// person reads the terminal (a log file may outlive it); otherwise the commands read it from
/// where it is.
fn print_way_in(server: &troupe::Server) {
    let config = server.supervisor.config();
    let mcp = format!("{}/mcp", config.public_url);
    let file = config.data_dir.join("token");
    let (whence, token) = match server.token_source() {
        troupe::auth::TokenSource::Given => (
            "from --token / TROUPE_TOKEN".to_string(),
            "$TROUPE_TOKEN".to_string(),
        ),
        troupe::auth::TokenSource::File => (
            format!("in {}", file.display()),
            format!("$(cat {})", file.display()),
        ),
        // Shown once, to the person at the terminal; a log file gets where it is.
        troupe::auth::TokenSource::Created
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) =>
        {
            (
                format!("new, saved in {}", file.display()),
                server.token().to_string(),
            )
        }
        troupe::auth::TokenSource::Created => (
            format!("new, saved in {}", file.display()),
            format!("$(cat {})", file.display()),
        ),
    };
    eprintln!(
        "\nClients need the server token ({whence}). Add troupe to Claude Code with:\n  \
         claude mcp add --scope user --transport http troupe {mcp} --header \"Authorization: Bearer {token}\"\n\
         and to Codex with:\n  \
         export TROUPE_TOKEN={token}\n  \
         codex mcp add troupe --url {mcp} --bearer-token-env-var TROUPE_TOKEN\n\n\
         The dashboard (a one-time link; `troupe open` makes another):\n  {link}\n",
        link = server.login_link(),
    );
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("cannot install SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
