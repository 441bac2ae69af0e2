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
    assert_eq!(health["live_instances"], 0);
    assert!(dir.path().join("data/troupe.db").exists());

    let mcp = McpClient::connect(&format!("{}/mcp", server.url()), &[]).await;
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
