//! What each subcommand does: most ask the server over REST and print its answer for people
//! (tables) or scripts (`--json`); `serve` runs the server.

use std::path::PathBuf;

use clap::Parser;

use super::args::{Cli, Command, McpCommand, ReportCommand, ServerUrl, TeamCommand};
use crate::config;

/// Errors are for people: the message and its causes, never a stack trace (even with
/// RUST_BACKTRACE set), and exit status 1.
pub fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn doctor(
    server: ServerUrl,
    claude_bin: String,
    codex_bin: String,
    db: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    use crate::doctor;
    let setup = doctor::Setup {
        claude_bin,
        codex_bin,
        data_dir: server.data_dir(),
        url: server.url.clone(),
        token: server.token.clone(),
        db,
    };
    let facts = doctor::gather(&setup).await;
    let checks = doctor::judge(
        &facts,
        &crate::agents::claude::TESTED,
        &crate::agents::codex::TESTED,
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

fn run() -> anyhow::Result<()> {
    let command = match Cli::parse().command {
        // Writes client configuration files; needs no runtime.
        Command::Mcp { server, command } => return mcp(&server, command),
        command => command,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(execute(command))
}

async fn execute(command: Command) -> anyhow::Result<()> {
    use super::asks;
    match command {
        Command::Hook { url, token_file } => {
            crate::hook::forward(&url, token_file.as_deref()).await;
            Ok(())
        }
        Command::Serve(args) => super::serve::serve(*args).await,
        Command::Doctor {
            server,
            claude_bin,
            codex_bin,
            db,
            json,
        } => doctor(server, claude_bin, codex_bin, db, json).await,
        Command::Ls { server, json, all } => ls(server.client()?, json, all).await,
        Command::Hosts { server, json } => hosts(server.client()?, json).await,
        Command::Host { server, command } => host(server.client()?, command).await,
        Command::Cost { server, json } => cost(server.client()?, json).await,
        Command::Tree { server, json } => tree(server.client()?, json).await,
        Command::Send {
            server,
            id,
            message,
            no_wait,
            json,
            ..
        } => send(server.client()?, &id, &message, no_wait, json).await,
        Command::Interrupt { server, id, all } => {
            each(server.client()?, id, all, "interrupt").await
        }
        Command::Kill { server, id, all } => each(server.client()?, id, all, "terminate").await,
        Command::Logs {
            server,
            id,
            follow,
            lines,
            json,
        } => super::logs::run(&server.client()?, &id, follow, lines, json).await,
        Command::Attach { server, id } => attach(server.client()?, &id).await,
        Command::Logins { server, end_all } => logins(server.client()?, end_all).await,
        Command::Open { server } => open(server.client()?).await,
        Command::Notify {
            server,
            action,
            name,
            json,
        } => match action {
            Some(_) => super::notify::test(server.client()?, name.as_deref(), json).await,
            None if name.is_some() => {
                anyhow::bail!("a sink's name goes after `test`: troupe notify test NAME")
            }
            None => super::notify::list(server.client()?, json).await,
        },
        Command::Permissions { server, json } => asks::permissions(server.client()?, json).await,
        Command::Allow { server, request_id } => asks::allow(server.client()?, &request_id).await,
        Command::Deny {
            server,
            request_id,
            message,
        } => asks::deny(server.client()?, &request_id, message.as_deref()).await,
        Command::Approve {
            server,
            approval_id,
            deny,
            message,
            json,
        } => match approval_id {
            None => asks::approvals(server.client()?, json).await,
            Some(id) => asks::approve(server.client()?, &id, deny, message.as_deref(), json).await,
        },
        Command::Resume { server, id } => resume(server.client()?, &id).await,
        Command::Stdio { server } => {
            crate::local::ensure_server(&server.url, &server.data_dir()).await?;
            crate::stdio::run(&server.url, &server.token()?).await
        }
        Command::Chat { server, args } => {
            let code =
                crate::chat::run(&server.url, &server.data_dir(), || server.token(), args).await?;
            std::process::exit(code)
        }
        Command::Mcp { server, command } => mcp(&server, command),
        Command::Team { server, command } => team(server.client()?, command).await,
        Command::Report { db, command } => report(db, command).await,
        Command::Migrate { from, to, replace } => migrate(from, &to, replace).await,
    }
}

async fn migrate(from: Option<PathBuf>, to: &str, replace: bool) -> anyhow::Result<()> {
    if !crate::db::is_postgres_url(to) {
        anyhow::bail!(
            "--to {to:?} is not a PostgreSQL URL; write it as postgres://user:password@host:port/db"
        );
    }
    let from = from.unwrap_or_else(|| config::default_data_dir().join("troupe.db"));
    let shown = crate::db::redacted(to);
    eprintln!("copying {} to {shown}", from.display());
    let copied = crate::db::copy::sqlite_to_postgres(&from, to, replace, |table, rows| {
        eprintln!("  {table:<22} {rows:>9} rows");
    })
    .await?;
    let rows: i64 = copied.tables.iter().map(|(_, n)| n).sum();
    println!(
        "Copied {rows} rows in {} tables to {shown}; the row counts agree on both sides, and so \
         does the recorded cost (${:.6}).",
        copied.tables.len(),
        copied.cost_micros as f64 / 1e6
    );
    println!(
        "Start the server on it with `troupe serve --db <the URL>` and the same data directory \
         (it keeps the token and the instances' files)."
    );
    Ok(())
}

fn mcp(server: &ServerUrl, command: McpCommand) -> anyhow::Result<()> {
    use crate::install::{self, Client, Scope};
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
async fn attach(client: crate::cli::Client, id: &str) -> anyhow::Result<()> {
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
    let status = crate::tmux::attach_here(socket, session)
        .map_err(|e| anyhow::anyhow!("cannot run tmux: {e}"))?;
    if !status.success() {
        anyhow::bail!(
            "tmux could not attach to {session} on socket {socket}: is {id} still running? \
             (`troupe resume {id}` brings a stopped one back)"
        );
    }
    Ok(())
}

async fn host(client: crate::cli::Client, command: super::args::HostCommand) -> anyhow::Result<()> {
    use super::args::HostCommand::*;
    match command {
        Drain { name, suspend } => {
            let v = client.drain_host(&name, true, suspend).await?;
            if !suspend {
                println!("{name} is draining: no new instances there; its instances go on");
            } else {
                let ids = |key: &str| -> Vec<String> {
                    v[key]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|i| match i.as_str() {
                                    Some(id) => id.to_string(),
                                    None => format!("{} ({})", i["instance_id"], i["error"]),
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let (done, not) = (ids("suspended"), ids("not_suspended"));
                println!(
                    "{name} is draining: no new instances there; suspended {}",
                    if done.is_empty() {
                        "none".to_string()
                    } else {
                        done.join(", ")
                    }
                );
                if !not.is_empty() {
                    println!("not suspended: {}", not.join(", "));
                }
            }
        }
        Undrain { name } => {
            client.drain_host(&name, false, false).await?;
            println!("{name} takes new instances again");
        }
        Forget { name } => {
            let v = client.forget_host(&name).await?;
            let failed: Vec<&str> = v["failed_instances"]
                .as_array()
                .map(|a| a.iter().filter_map(|i| i.as_str()).collect())
                .unwrap_or_default();
            match failed.is_empty() {
                true => println!("forgot {name}; it ran no instances"),
                false => println!("forgot {name}; its instances failed: {}", failed.join(", ")),
            }
        }
    }
    Ok(())
}

async fn hosts(client: crate::cli::Client, json: bool) -> anyhow::Result<()> {
    let list = client.hosts().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let now = chrono::Utc::now();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let rows: Vec<Vec<String>> = list["hosts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|h| {
            let name = match h["this"].as_bool() {
                Some(true) => format!("{} (this)", s(&h["name"])),
                _ => s(&h["name"]),
            };
            let load = match h["max_instances"].as_i64() {
                Some(max) => format!("{}/{max}", h["instances"]),
                None => h["instances"].to_string(),
            };
            let labels: Vec<String> = h["labels"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default();
            vec![
                name,
                s(&h["state"]),
                s(&h["url"]),
                load,
                h["free_memory_mb"]
                    .as_i64()
                    .map_or("-".into(), |m| format!("{m} MiB")),
                crate::cli::age(h["heartbeat_at"].as_str().unwrap_or(""), now),
                if labels.is_empty() {
                    "-".into()
                } else {
                    labels.join(",")
                },
            ]
        })
        .collect();
    print!(
        "{}",
        crate::cli::table(
            &[
                "HOST",
                "STATE",
                "URL",
                "INSTANCES",
                "FREE",
                "HEARTBEAT",
                "LABELS"
            ],
            &rows
        )
    );
    Ok(())
}

async fn ls(client: crate::cli::Client, json: bool, all: bool) -> anyhow::Result<()> {
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
                crate::cli::age(i["created_at"].as_str().unwrap_or(""), now),
                crate::cli::cost(&i["usage"]),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::cli::table(
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
    client: crate::cli::Client,
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

async fn cost(client: crate::cli::Client, json: bool) -> anyhow::Result<()> {
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
            crate::cli::table(
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

async fn team(client: crate::cli::Client, command: TeamCommand) -> anyhow::Result<()> {
    match command {
        TeamCommand::Create {
            name,
            members,
            description,
            start,
            project_dir,
            worktrees,
        } => {
            let mut members = crate::cli::parse_members(&members)?;
            for m in &mut members {
                m.use_worktree = worktrees;
            }
            let project_dir = project_dir
                .as_deref()
                .map(crate::cli::absolute_dir)
                .transpose()?;
            let mut team = client
                .create_team(&name, &description, &members, project_dir.as_deref())
                .await?;
            if start {
                team = client.start_team(&name, None).await?;
            }
            crate::cli::print_team(&team);
        }
        TeamCommand::Ls => {
            let teams = client.teams().await?;
            let teams = teams["teams"].as_array().cloned().unwrap_or_default();
            if teams.is_empty() {
                println!("no teams");
            }
            for t in &teams {
                crate::cli::print_team(t);
            }
        }
        TeamCommand::Show { name } => crate::cli::print_team(&client.team(&name).await?),
        TeamCommand::Start { name, project_dir } => {
            let project_dir = project_dir
                .as_deref()
                .map(crate::cli::absolute_dir)
                .transpose()?;
            crate::cli::print_team(&client.start_team(&name, project_dir.as_deref()).await?)
        }
        TeamCommand::Resume { name } => crate::cli::print_team(&client.resume_team(&name).await?),
        TeamCommand::Dissolve { name } => {
            let team = client.dissolve_team(&name).await?;
            crate::cli::print_team(&team);
            println!("dissolved");
        }
    }
    Ok(())
}

async fn report(db: Option<PathBuf>, command: ReportCommand) -> anyhow::Result<()> {
    let path = db.unwrap_or_else(|| config::default_data_dir().join("troupe.db"));
    let pool = crate::report::open(&path).await?;
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
            crate::report::cost(&pool, by, day(since)?.as_deref(), team.as_deref()).await?,
            format,
        ),
        ReportCommand::Audit {
            since,
            instance,
            format,
        } => (
            crate::report::audit(&pool, day(since)?.as_deref(), instance.as_deref()).await?,
            format,
        ),
    };
    print!("{}", report.render(format));
    Ok(())
}

async fn tree(client: crate::cli::Client, json: bool) -> anyhow::Result<()> {
    let t = client.tree().await?;
    match json {
        true => println!("{}", serde_json::to_string_pretty(&t)?),
        false => match t["text"].as_str().filter(|s| !s.trim().is_empty()) {
            Some(text) => println!("{}", text.trim_end()),
            None => println!("no live instances"),
        },
    }
    Ok(())
}

async fn send(
    client: crate::cli::Client,
    id: &str,
    message: &str,
    no_wait: bool,
    json: bool,
) -> anyhow::Result<()> {
    let m = client.send(id, message, !no_wait).await?;
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
}

async fn logins(client: crate::cli::Client, end_all: bool) -> anyhow::Result<()> {
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
        print!("{}", crate::cli::table(&["LOGGED IN", "UNTIL"], &rows));
        eprintln!("end them all with: troupe logins --end-all");
    }
    Ok(())
}

async fn open(client: crate::cli::Client) -> anyhow::Result<()> {
    let link = client.login_link().await?;
    println!("{}", link["url"].as_str().unwrap_or(""));
    eprintln!(
        "Open it in a browser within {} minutes; it works once.",
        link["expires_in_seconds"].as_u64().unwrap_or(600) / 60
    );
    Ok(())
}

async fn resume(client: crate::cli::Client, id: &str) -> anyhow::Result<()> {
    let i = client.act(id, "resume").await?;
    println!(
        "{} is {}",
        i["id"].as_str().unwrap_or(id),
        i["state"].as_str().unwrap_or("?")
    );
    Ok(())
}
