//! The server without any CLI: health, the MCP handshake and the tool list.

mod support;

use serde_json::json;
use support::{McpClient, unique_socket};

#[tokio::test]
async fn health_and_tool_list_over_real_http() {
    let dir = tempfile::tempdir().unwrap();
    let config = troupe::Config::for_data_dir(dir.path().join("data"), &unique_socket("s"));
    let server = troupe::Server::start(config).await.unwrap();

    let health: serde_json::Value = reqwest::get(format!("{}/health", server.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health, json!({ "status": "ok", "service": "troupe" }));
    assert!(dir.path().join("data/troupe.db").exists());

    let mcp = McpClient::user(&server).await;
    let tools = mcp.request("tools/list", json!({})).await;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "spawn_claude",
        "send_to_instance",
        "get_instance_output",
        "get_instance_status",
        "list_instances",
        "interrupt_instance",
        "terminate_instance",
        "get_message",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let spawn = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "spawn_claude")
        .unwrap();
    assert!(spawn["inputSchema"]["properties"]["role"]["description"].is_string());
    assert!(
        spawn["outputSchema"].is_object(),
        "structured output is declared"
    );

    server.stop().await;
}

#[tokio::test]
async fn team_commands_of_the_cli_talk_to_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = troupe::Config::for_data_dir(dir.path().join("data"), &unique_socket("c"));
    let server = troupe::Server::start(config).await.unwrap();
    let url = server.url();
    let data_dir = dir.path().join("data");
    let troupe = |args: &[&str]| {
        let url = url.clone();
        let data_dir = data_dir.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                // The client finds the token where the server saved it.
                std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
                    .args(&args)
                    .env("TROUPE_URL", url)
                    .env("TROUPE_DATA_DIR", data_dir)
                    .env_remove("TROUPE_TOKEN")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = troupe(&["ls", "--token", "not-the-token-at-all"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the token is not this server's"), "{err}");

    let out = troupe(&[
        "team",
        "create",
        "dev-team",
        "--members",
        "architect:opus,developer:sonnet,tester:haiku",
        "--description",
        "the login page",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains("dev-team — the login page"), "{shown}");
    for seat in ["architect", "developer", "tester"] {
        assert!(shown.contains(seat), "{shown}");
    }
    assert!(shown.contains("not_started"), "{shown}");

    let out = troupe(&["team", "ls"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("dev-team"));

    // The same name twice is refused with a reason, and the command fails.
    let out = troupe(&["team", "create", "dev-team", "--members", "tester"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    let out = troupe(&["team", "create", "odd", "--members", "jug/gler:opus"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not usable"));

    let out = troupe(&["team", "dissolve", "dev-team"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = troupe(&["team", "show", "dev-team"]).await;
    assert!(
        !out.status.success(),
        "a dissolved team is gone from the list"
    );
    let out = troupe(&["ls"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("no live instances"));
    server.stop().await;
}

/// A wait of 2^63 seconds once overflowed a deadline and took the MCP session down with it.
#[tokio::test]
async fn huge_waits_are_refused_by_name_and_the_session_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = troupe::Config::for_data_dir(dir.path().join("data"), &unique_socket("s"));
    let server = troupe::Server::start(config).await.unwrap();
    let mcp = McpClient::user(&server).await;

    let huge = 1u64 << 63;
    let r = mcp
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": "nobody-0000", "message": "hi", "timeout_seconds": huge }),
        )
        .await;
    assert!(r.is_error);
    assert!(
        r.text.contains("timeout_seconds is 9223372036854775808"),
        "{}",
        r.text
    );
    let r = mcp
        .call_tool(
            "get_message",
            json!({ "message_id": "msg-nothing", "wait_seconds": huge }),
        )
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("wait_seconds is"), "{}", r.text);
    let r = mcp
        .call_tool(
            "coordinate_instances",
            json!({ "tasks": [], "timeout_seconds": huge }),
        )
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("timeout_seconds is"), "{}", r.text);

    // The same session still answers.
    let r = mcp.call_tool("list_instances", json!({})).await;
    assert!(!r.is_error, "{}", r.text);
    server.stop().await;
}

/// DNS rebinding (a foreign Host) and cross-site requests (a foreign Origin, as a no-cors
/// fetch sends) are refused on every route family, before anything acts.
#[tokio::test]
async fn foreign_hosts_and_web_origins_are_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let config = troupe::Config::for_data_dir(dir.path().join("data"), &unique_socket("s"));
    let server = troupe::Server::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let url = server.url();
    let routes = [
        (reqwest::Method::GET, "/health"),
        (reqwest::Method::GET, "/api/instances"),
        (reqwest::Method::POST, "/api/teams/dev-team/start"),
        (reqwest::Method::DELETE, "/api/teams/dev-team"),
        (reqwest::Method::POST, "/hooks/someone-0000"),
        (reqwest::Method::POST, "/mcp"),
    ];
    for (method, path) in &routes {
        let r = http
            .request(method.clone(), format!("{url}{path}"))
            .header("host", "attacker.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "Host attacker.example on {method} {path}");
        let r = http
            .request(method.clone(), format!("{url}{path}"))
            .header("origin", "https://attacker.example")
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            403,
            "Origin attacker.example on {method} {path}"
        );
    }
    // Local clients, with or without a local page's Origin, get through.
    let r = http.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let port = server.addr.port();
    let r = http
        .get(format!("{url}/api/instances"))
        .bearer_auth(server.token())
        .header("origin", format!("http://localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

/// Everything but /health wants a token: the server's for the person's clients, an
/// instance's own for its hooks and for calls in its name. A claimed identity without its
/// token is refused and audited.
#[tokio::test]
async fn every_route_but_health_wants_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = troupe::Config::for_data_dir(dir.path().join("data"), &unique_socket("s"));
    let server = troupe::Server::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let url = server.url();
    let token = server.token().to_string();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/token"))
            .unwrap()
            .trim(),
        token,
        "the token is saved for the command line"
    );
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": { "name": "probe", "version": "0" } }
    });
    let routes = [
        (reqwest::Method::GET, "/api/instances", None),
        (
            reqwest::Method::POST,
            "/api/teams/dev-team/start",
            Some(json!({})),
        ),
        (reqwest::Method::DELETE, "/api/teams/dev-team", None),
        (reqwest::Method::POST, "/mcp", Some(init.clone())),
        (
            reqwest::Method::POST,
            "/hooks/someone-0000",
            Some(json!({ "hook_event_name": "Stop", "last_assistant_message": "FORGED" })),
        ),
    ];
    for (method, path, body) in &routes {
        let send = |auth: Option<String>| {
            let mut req = http
                .request(method.clone(), format!("{url}{path}"))
                .header("accept", "application/json, text/event-stream");
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            req.send()
        };
        let r = send(None).await.unwrap();
        assert_eq!(r.status(), 401, "no token on {method} {path}");
        let text = r.text().await.unwrap();
        assert!(
            text.contains("Bearer"),
            "the refusal says what to send: {text}"
        );
        let r = send(Some("Bearer wrong-token".into())).await.unwrap();
        assert_eq!(r.status(), 401, "a wrong token on {method} {path}");
    }
    // The server token opens /api and /mcp, as a header or in the URL.
    let r = http
        .get(format!("{url}/api/instances"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{url}/api/instances?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{url}/mcp?token={token}"))
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A change arrives as JSON or not at all: no simple cross-site request gets through.
    let r = http
        .delete(format!("{url}/api/teams/dev-team"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("application/json"));
    let r = http
        .post(format!("{url}/api/teams/dev-team/start?token={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Not a hook's, though: a hook needs its instance's own token.
    let r = http
        .post(format!("{url}/hooks/someone-0000"))
        .bearer_auth(&token)
        .json(&json!({ "hook_event_name": "Stop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Speaking for an instance takes that instance's token, not the server's.
    let r = http
        .post(format!("{url}/mcp"))
        .bearer_auth(&token)
        .header("x-troupe-instance", "someone-0000")
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let refused = troupe::db::audit::of_kind(server.supervisor.pool(), "auth.refused")
        .await
        .unwrap();
    assert!(
        refused
            .iter()
            .any(|e| e.detail.contains("someone-0000") && e.detail.contains("/mcp")),
        "{refused:?}"
    );
    server.stop().await;
}

/// A non-loopback address is served only when asked for explicitly.
#[tokio::test]
async fn a_network_bind_needs_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = troupe::Config::for_data_dir(dir.path().join("data"), &unique_socket("s"));
    config.bind = "0.0.0.0:0".parse().unwrap();
    let err = troupe::Server::start(config.clone()).await.err().unwrap();
    assert!(err.to_string().contains("--allow-remote"), "{err}");
    config.allow_remote = true;
    let server = troupe::Server::start(config).await.unwrap();
    // troupe's own instances are told a loopback address, which the guard lets through.
    let public = &server.supervisor.config().public_url;
    assert!(public.starts_with("http://127.0.0.1:"), "{public}");
    let r = reqwest::Client::new()
        .get(format!("{public}/api/instances"))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

/// Sizes have limits with errors that say so, before anything is started or queued.
#[tokio::test]
async fn oversized_messages_and_prompts_are_refused_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = troupe::Config::for_data_dir(dir.path().join("data"), &unique_socket("s"));
    let server = troupe::Server::start(config).await.unwrap();
    let mcp = McpClient::user(&server).await;
    let big = "x".repeat(1_000_000);
    let r = mcp
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": "nobody-0000", "message": big }),
        )
        .await;
    assert!(r.is_error);
    assert!(
        r.text
            .contains("message is 1000000 bytes; the most is 100000"),
        "{}",
        r.text
    );
    let r = mcp
        .call_tool("spawn_claude", json!({ "system_prompt": big }))
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("the most is 100000"), "{}", r.text);
    let r = mcp.call_tool("list_instances", json!({})).await;
    assert_eq!(r.structured["count"], 0, "nothing was started");
    server.stop().await;
}

async fn initialize(http: &reqwest::Client, server: &troupe::Server) -> reqwest::Response {
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": { "name": "flood", "version": "0" } }
    });
    http.post(format!("{}/mcp", server.url()))
        .bearer_auth(server.token())
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap()
}

/// Bare `initialize` calls that never come back once grew the server by 60 KB each, for good.
/// Sessions are capped: the rest are refused with the reason, and memory stays flat.
#[tokio::test(flavor = "multi_thread")]
async fn mcp_sessions_are_capped() {
    fn rss_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = troupe::Config::for_data_dir(dir.path().join("data"), &unique_socket("s"));
    config.max_mcp_sessions = 100;
    let server = troupe::Server::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let mut accepted = 0;
    let mut refused = String::new();
    let mut rss_at_cap = 0;
    for i in 0..3000 {
        let r = initialize(&http, &server).await;
        if r.status() == 200 {
            accepted += 1;
        } else if refused.is_empty() {
            refused = format!("{} {}", r.status(), r.text().await.unwrap());
        }
        if i == 299 {
            rss_at_cap = rss_kb();
        }
    }
    let rss_end = rss_kb();
    println!("RSS after 300 initializes: {rss_at_cap} kB; after 3000: {rss_end} kB");
    assert_eq!(accepted, 100);
    assert!(refused.contains("100 MCP sessions open"), "{refused}");
    assert!(
        rss_end < rss_at_cap + 20_000,
        "RSS grew from {rss_at_cap} kB to {rss_end} kB past the cap"
    );
    server.stop().await;
}

/// A session with no message for the idle limit ends, and makes room for a new client.
#[tokio::test(flavor = "multi_thread")]
async fn idle_mcp_sessions_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = troupe::Config::for_data_dir(dir.path().join("data"), &unique_socket("s"));
    config.max_mcp_sessions = 3;
    config.mcp_session_idle = std::time::Duration::from_secs(2);
    let server = troupe::Server::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let statuses = futures::future::join_all((0..4).map(|_| initialize(&http, &server))).await;
    let ok = statuses.iter().filter(|r| r.status() == 200).count();
    assert_eq!(ok, 3, "the fourth is refused while three are open");
    support::eventually(
        "idle sessions to end",
        std::time::Duration::from_secs(15),
        || async { (initialize(&http, &server).await.status() == 200).then_some(()) },
    )
    .await;
    server.stop().await;
}

/// `troupe mcp install` writes troupe with the token into the client's own configuration, the
/// real client then connects, a second install changes nothing, and uninstall removes it.
#[tokio::test(flavor = "multi_thread")]
async fn mcp_install_puts_troupe_into_claude_code_codex_and_desktop() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    let data_dir = dir.path().join("data");
    let config = troupe::Config::for_data_dir(data_dir.clone(), &unique_socket("i"));
    let server = troupe::Server::start(config).await.unwrap();
    let url = server.url();
    let claude = support::clis::claude_bin();
    let codex = support::clis::codex_bin();
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .current_dir(dir.path())
            .env("HOME", &home)
            .env("CODEX_HOME", home.join(".codex"))
            .env_remove("XDG_CONFIG_HOME")
            .env("TROUPE_URL", &url)
            .env("TROUPE_DATA_DIR", &data_dir)
            .env("TROUPE_CODEX_BIN", &codex)
            .env_remove("TROUPE_TOKEN")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    // The commands below call the server, which runs on this runtime.
    let troupe = env!("CARGO_BIN_EXE_troupe");

    let (ok, said) = tokio::task::block_in_place(|| run(troupe, &["mcp", "install"]));
    assert!(ok, "{said}");
    assert!(said.starts_with("added troupe"), "{said}");
    let (ok, said) = tokio::task::block_in_place(|| run(troupe, &["mcp", "install"]));
    assert!(ok && said.contains("nothing changed"), "{said}");
    let (ok, listed) = tokio::task::block_in_place(|| run(&claude, &["mcp", "list"]));
    assert!(ok, "{listed}");
    assert!(
        listed.contains("troupe") && listed.contains("Connected"),
        "{listed}"
    );
    assert!(
        !listed.contains("unknown format"),
        "no schema warnings: {listed}"
    );
    let (ok, said) = tokio::task::block_in_place(|| run(troupe, &["mcp", "uninstall"]));
    assert!(ok && said.starts_with("removed"), "{said}");
    let (_, listed) = tokio::task::block_in_place(|| run(&claude, &["mcp", "list"]));
    assert!(!listed.contains("troupe"), "{listed}");

    let (ok, said) =
        tokio::task::block_in_place(|| run(troupe, &["mcp", "install", "--client", "codex"]));
    assert!(ok, "{said}");
    assert!(said.contains("TROUPE_TOKEN"), "{said}");
    let (ok, shown) =
        tokio::task::block_in_place(|| run(&codex, &["mcp", "get", "troupe", "--json"]));
    assert!(ok, "{shown}");
    assert!(shown.contains(&format!("{url}/mcp")), "{shown}");
    let (ok, said) =
        tokio::task::block_in_place(|| run(troupe, &["mcp", "install", "--client", "codex"]));
    assert!(ok && said.contains("nothing changed"), "{said}");
    let (ok, said) =
        tokio::task::block_in_place(|| run(troupe, &["mcp", "uninstall", "--client", "codex"]));
    assert!(ok && said.starts_with("removed"), "{said}");

    // Claude Desktop runs `troupe stdio`, which finds the token itself.
    let (ok, said) =
        tokio::task::block_in_place(|| run(troupe, &["mcp", "install", "--client", "desktop"]));
    assert!(ok && said.starts_with("added troupe"), "{said}");
    let file = home.join(".config/Claude/claude_desktop_config.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(server.token()),
        "no token in the Desktop's file: {text}"
    );
    let entry: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = &entry["mcpServers"]["troupe"];
    assert_eq!(entry["args"], json!(["stdio"]));
    // Run it as the Desktop would: it answers an initialize.
    let out = tokio::task::block_in_place(|| {
        use std::io::Write;
        let mut child = std::process::Command::new(entry["command"].as_str().unwrap())
            .args(["stdio"])
            .env("TROUPE_URL", entry["env"]["TROUPE_URL"].as_str().unwrap())
            .env("TROUPE_DATA_DIR", &data_dir)
            .env_remove("TROUPE_TOKEN")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let init = json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": { "protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": { "name": "desktop", "version": "0" } }
        });
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{init}").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    });
    let answered = String::from_utf8_lossy(&out.stdout);
    assert!(answered.contains("\"serverInfo\""), "{answered}");
    let (ok, said) =
        tokio::task::block_in_place(|| run(troupe, &["mcp", "uninstall", "--client", "desktop"]));
    assert!(ok && said.starts_with("removed"), "{said}");
    server.stop().await;
}
