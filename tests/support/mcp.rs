//! A small MCP client over streamable HTTP (JSON-RPC POSTs, answers as JSON or SSE), so
//! tests speak the real wire protocol to the real server.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

pub struct McpClient {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
    headers: Vec<(String, String)>,
    next_id: AtomicU64,
}

/// A tools/call result.
#[derive(Debug, Clone)]
pub struct ToolResult {
    pub is_error: bool,
    /// All text content joined.
    pub text: String,
    /// structuredContent, or Null.
    pub structured: Value,
}

impl McpClient {
    pub fn placeholder() -> McpClient {
        McpClient {
            http: reqwest::Client::new(),
            url: String::new(),
            session: None,
            headers: Vec::new(),
            next_id: AtomicU64::new(1),
        }
    }

    /// A session of the person's, with the server token.
    pub async fn user(server: &troupe::Server) -> McpClient {
        Self::with_token(&server.url(), server.token()).await
    }

    /// A session at `base` (`http://host:port`) with a bearer token.
    pub async fn with_token(base: &str, token: &str) -> McpClient {
        let auth = format!("Bearer {token}");
        Self::connect(&format!("{base}/mcp"), &[("authorization", &auth)]).await
    }

    /// Initializes a session; `headers` are sent on every request (e.g. X-Troupe-Instance).
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> McpClient {
        Self::connect_declaring(url, headers, json!({})).await
    }

    /// A session of the person's whose client declares `capabilities` (e.g. elicitation).
    pub async fn declaring(server: &troupe::Server, capabilities: Value) -> McpClient {
        let auth = format!("Bearer {}", server.token());
        Self::connect_declaring(
            &format!("{}/mcp", server.url()),
            &[("authorization", &auth)],
            capabilities,
        )
        .await
    }

    pub async fn connect_declaring(
        url: &str,
        headers: &[(&str, &str)],
        capabilities: Value,
    ) -> McpClient {
        let mut client = McpClient {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(600))
                .build()
                .unwrap(),
            url: url.to_string(),
            session: None,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            next_id: AtomicU64::new(1),
        };
        let (session, init) = client
            .post(json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": capabilities,
                    "clientInfo": { "name": "troupe-tests", "version": "0" }
                }
            }))
            .await;
        assert!(init.get("result").is_some(), "initialize failed: {init}");
        client.session = session;
        client
            .post(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await;
        client
    }

    async fn post(&self, body: Value) -> (Option<String>, Value) {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .json(&body);
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("MCP request sent");
        let session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let status = resp.status();
        let is_sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let text = resp.text().await.unwrap_or_default();
        if body.get("id").is_none() {
            assert!(
                status.is_success(),
                "notification rejected: {status} {text}"
            );
            return (session, Value::Null);
        }
        let id = body["id"].clone();
        let message = if is_sse {
            sse_messages(&text)
                .into_iter()
                .find(|m| m["id"] == id)
                .unwrap_or(Value::Null)
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        assert!(!message.is_null(), "no JSON-RPC answer ({status}): {text}");
        (session, message)
    }

    /// Opens the session's own stream (`GET /mcp`): what the server sends outside any request
    /// (log notifications) arrives there. Messages are handed over as they come.
    pub async fn listen(&self) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
        use futures::StreamExt;
        let mut req = self
            .http
            .get(&self.url)
            .header("accept", "text/event-stream");
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("GET /mcp sent");
        assert!(resp.status().is_success(), "GET /mcp: {}", resp.status());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let event: String = buf.drain(..end + 2).collect();
                    for m in sse_messages(&event) {
                        if tx.send(m).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        rx
    }

    /// A JSON-RPC request; returns every message the server sent on its stream
    /// (notifications such as progress, then the response).
    pub async fn request_all(&self, method: &str, params: Value) -> Vec<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .json(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let text = req
            .send()
            .await
            .expect("MCP request sent")
            .text()
            .await
            .unwrap_or_default();
        sse_messages(&text)
    }

    /// A JSON-RPC request; returns the response body as sent (server-sent events), unread.
    #[allow(dead_code)]
    pub async fn request_raw(&self, method: &str, params: Value) -> Vec<u8> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        self.send_raw(&body)
            .await
            .bytes()
            .await
            .map(Vec::from)
            .unwrap_or_default()
    }

    /// A JSON-RPC request; returns the whole response message.
    pub async fn request(&self, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.post(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await
            .1
    }

    /// A tools/call during which the server may ask the client something (elicitation): each
    /// request of the server's is answered with `answer` as its result. Returns the tool's
    /// result and the requests the server made.
    pub async fn call_tool_answering(
        &self,
        name: &str,
        arguments: Value,
        answer: Value,
    ) -> (ToolResult, Vec<Value>) {
        use futures::StreamExt;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
                           "params": { "name": name, "arguments": arguments } });
        let resp = self.send_raw(&body).await;
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        let mut asked = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                for m in sse_messages(&event) {
                    if m.get("method").is_some() && m.get("id").is_some() {
                        asked.push(m.clone());
                        let reply = json!({ "jsonrpc": "2.0", "id": m["id"], "result": answer });
                        self.send_raw(&reply).await;
                    } else if m["id"] == id {
                        let result = tool_result(&m);
                        self.check_output(name, &result).await;
                        return (result, asked);
                    }
                }
            }
        }
        panic!("the stream ended without an answer to {name}");
    }

    /// Answers a request the server made (an elicitation, say) with `result`.
    pub async fn reply(&self, request_id: &Value, result: Value) {
        let reply = json!({ "jsonrpc": "2.0", "id": request_id, "result": result });
        let status = self.send_raw(&reply).await.status();
        assert!(status.is_success(), "the reply was taken: {status}");
    }

    async fn send_raw(&self, body: &Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .json(body);
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req.send().await.expect("MCP request sent")
    }

    pub async fn call_tool(&self, name: &str, arguments: Value) -> ToolResult {
        let response = self
            .request(
                "tools/call",
                json!({ "name": name, "arguments": arguments }),
            )
            .await;
        let result = tool_result(&response);
        self.check_output(name, &result).await;
        result
    }

    /// Every structured result the tests see must be what the tool's published `outputSchema`
    /// says (the schema clients read, after troupe's rewriting for portability); clients such
    /// as Claude Code refuse a result that is not.
    async fn check_output(&self, tool: &str, result: &ToolResult) {
        if result.is_error || result.structured.is_null() {
            return;
        }
        if OUTPUT_SCHEMAS.get().is_none() {
            let listed = self.request("tools/list", json!({})).await;
            let schemas = listed["result"]["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| Some((t["name"].as_str()?.to_string(), t.get("outputSchema")?)))
                .map(|(name, schema)| {
                    let validator = jsonschema::validator_for(schema)
                        .unwrap_or_else(|e| panic!("{name}'s outputSchema is not a schema: {e}"));
                    (name, validator)
                })
                .collect();
            let _ = OUTPUT_SCHEMAS.set(schemas);
        }
        let Some(validator) = OUTPUT_SCHEMAS.get().and_then(|s| s.get(tool)) else {
            return;
        };
        let errors: Vec<String> = validator
            .iter_errors(&result.structured)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{tool}'s result does not match its outputSchema: {errors:#?}\nresult: {}",
            result.structured
        );
    }
}

/// The tools' output schemas, read once per test binary (every server in it is the same build).
static OUTPUT_SCHEMAS: std::sync::OnceLock<
    std::collections::HashMap<String, jsonschema::Validator>,
> = std::sync::OnceLock::new();

/// The JSON-RPC messages in an SSE body (events without JSON data are skipped).
pub fn sse_messages(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|event| {
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            serde_json::from_str::<Value>(&data).ok()
        })
        .collect()
}

/// A tools/call response as a ToolResult; protocol-level failures (bad parameters) read as
/// tool errors in assertions.
fn tool_result(response: &Value) -> ToolResult {
    if let Some(err) = response.get("error") {
        return ToolResult {
            is_error: true,
            text: err["message"].as_str().unwrap_or_default().to_string(),
            structured: Value::Null,
        };
    }
    let result = &response["result"];
    let text = result["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    ToolResult {
        is_error: result["isError"].as_bool().unwrap_or(false),
        text,
        structured: result["structuredContent"].clone(),
    }
}
