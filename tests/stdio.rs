//! `troupe stdio` forwards MCP from stdin/stdout to the HTTP server: one registry behind both.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{McpClient, unique_socket};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Stdio {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Stdio {
    async fn send(&mut self, message: Value) {
        let line = format!("{message}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next message with this id (others, such as notifications, are skipped).
    async fn answer(&mut self, id: i64) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
                .await
                .expect("an answer within 20 s")
                .unwrap()
                .expect("stdout open");
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if v["id"] == id {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stdio_and_http_share_one_registry() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut config = troupe::Config::for_data_dir(data_dir.clone(), &unique_socket("io"));
    config.db_url = support::fresh_postgres().await;
    let server = troupe::Server::start(config).await.unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("stdio")
        .env("TROUPE_URL", server.url())
        .env("TROUPE_DATA_DIR", &data_dir)
        .env_remove("TROUPE_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut io = Stdio {
        stdin: child.stdin.take().unwrap(),
        lines: BufReader::new(child.stdout.take().unwrap()).lines(),
        child,
    };

    io.send(json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": { "name": "desktop", "version": "0" } }
    }))
    .await;
    let init = io.answer(1).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "troupe", "{init}");
    io.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .await;
    io.send(json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" }))
        .await;
    let tools = io.answer(2).await;
    assert!(
        tools["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "spawn_claude"),
        "{tools}"
    );
    io.send(json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": { "name": "create_team", "arguments": { "name": "via-stdio", "members": [{ "role": "tester" }] } }
    }))
    .await;
    let created = io.answer(3).await;
    assert_eq!(created["result"]["isError"], false, "{created}");

    // The HTTP side sees what stdio made.
    let http = McpClient::user(&server).await;
    let teams = http.call_tool("list_teams", json!({})).await;
    assert!(teams.text.contains("via-stdio"), "{}", teams.text);

    // A line that is not JSON gets a parse error, and the forwarder goes on.
    io.stdin.write_all(b"{ nope\n").await.unwrap();
    let line = io.lines.next_line().await.unwrap().unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    io.send(json!({ "jsonrpc": "2.0", "id": 4, "method": "ping" }))
        .await;
    assert!(io.answer(4).await.get("result").is_some());

    // Closing stdin ends it cleanly.
    drop(io.stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), io.child.wait())
        .await
        .expect("stdio exits when its input ends")
        .unwrap();
    assert!(status.success(), "{status}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_spawned_on_either_transport_are_seen_on_both() {
    let h = support::Harness::start().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("stdio")
        .env("TROUPE_URL", h.server().url())
        .env("TROUPE_TOKEN", h.server().token())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut io = Stdio {
        stdin: child.stdin.take().unwrap(),
        lines: BufReader::new(child.stdout.take().unwrap()).lines(),
        child,
    };
    io.send(json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": { "name": "desktop", "version": "0" } }
    }))
    .await;
    io.answer(1).await;
    io.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .await;

    // Over HTTP: a lead. Through stdio: a Codex helper under it, named with the seed's
    // `parent_id`.
    let lead = h
        .spawn(json!({ "role": "architect", "name": "lead" }))
        .await;
    io.send(json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "spawn_codex", "arguments": { "name": "viastdio", "parent_id": lead } }
    }))
    .await;
    let spawned = io.answer(2).await;
    assert_eq!(spawned["result"]["isError"], false, "{spawned}");
    let helper = spawned["result"]["structuredContent"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();

    let over_http = h.call("list_instances", json!({})).await;
    let ids: Vec<&str> = over_http.structured["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&helper.as_str()) && ids.contains(&lead.as_str()),
        "{ids:?}"
    );
    let kids = h.call("get_children", json!({ "parent_id": lead })).await;
    assert!(kids.text.contains(&helper), "{}", kids.text);

    io.send(json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": { "name": "list_instances", "arguments": {} }
    }))
    .await;
    let listed = io.answer(3).await;
    let text = listed["result"]["structuredContent"].to_string();
    assert!(text.contains(&lead) && text.contains(&helper), "{text}");
}
