//! `troupe stdio`: MCP over stdio for clients that speak nothing else (Claude Desktop's local
//! config, and others). It holds no state of its own: every message read from stdin (one
//! JSON-RPC message per line) is posted to the HTTP server's `/mcp` with the server token,
//! and everything the server answers (a JSON body, or the events of an SSE stream: progress,
//! logs, requests such as `roots/list`, then the response) is written to stdout, one message
//! per line. Both transports therefore see one registry.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, mpsc};

/// What the forwarder keeps of the MCP session it opened on the server's side.
#[derive(Default)]
struct Session {
    id: Option<String>,
    protocol: Option<String>,
}

pub async fn run(url: &str, token: &str) -> anyhow::Result<()> {
    let mcp = format!("{}/mcp", url.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let session = std::sync::Arc::new(Mutex::new(Session::default()));
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(message) = out_rx.recv().await {
            let mut line = message.to_string();
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut calls = tokio::task::JoinSet::new();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let _ = out_tx.send(error_reply(&Value::Null, -32700, &format!("not JSON: {e}")));
                continue;
            }
        };
        let forward = Forward {
            http: http.clone(),
            mcp: mcp.clone(),
            token: token.to_string(),
            session: session.clone(),
            out: out_tx.clone(),
        };
        // The session exists only once initialize is answered: it goes first, alone.
        if message["method"] == "initialize" {
            forward.send(message).await;
        } else {
            calls.spawn(async move { forward.send(message).await });
        }
    }
    // stdin closed: the client is gone. Let answers in flight reach it, then end the session.
    while calls.join_next().await.is_some() {}
    let id = session.lock().await.id.clone();
    if let Some(id) = id {
        let _ = http
            .delete(&mcp)
            .bearer_auth(token)
            .header("mcp-session-id", id)
            .send()
            .await;
    }
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

struct Forward {
    http: reqwest::Client,
    mcp: String,
    token: String,
    session: std::sync::Arc<Mutex<Session>>,
    out: mpsc::UnboundedSender<Value>,
}

impl Forward {
    async fn send(&self, message: Value) {
        let id = message.get("id").cloned();
        let mut req = self
            .http
            .post(&self.mcp)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(&message);
        {
            let s = self.session.lock().await;
            if let Some(sid) = &s.id {
                req = req.header("mcp-session-id", sid);
            }
            if let Some(v) = &s.protocol {
                req = req.header("mcp-protocol-version", v);
            }
        }
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) => return self.fail(id, &format!("cannot reach troupe at {}: {e}", self.mcp)),
        };
        if let Some(sid) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session.lock().await.id = Some(sid.to_string());
        }
        let status = response.status();
        if status == reqwest::StatusCode::ACCEPTED {
            return;
        }
        let sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let said = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(body);
            return self.fail(id, &format!("troupe answered {status}: {said}"));
        }
        if !sse {
            match response.json::<Value>().await {
                Ok(v) => self.deliver(v).await,
                Err(e) => self.fail(id, &format!("troupe's answer is not JSON: {e}")),
            }
            return;
        }
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else {
                return self.fail(id, "troupe's event stream broke off");
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if let Some(v) = event_data(&event) {
                    self.deliver(v).await;
                }
            }
        }
    }

    /// Writes a server message out; an initialize answer also fixes the protocol version.
    async fn deliver(&self, message: Value) {
        if let Some(v) = message["result"]["protocolVersion"].as_str() {
            self.session.lock().await.protocol = Some(v.to_string());
        }
        let _ = self.out.send(message);
    }

    fn fail(&self, id: Option<Value>, why: &str) {
        // A notification has no one to tell; a request gets its error.
        if let Some(id) = id {
            let _ = self.out.send(error_reply(&id, -32603, why));
        } else {
            eprintln!("troupe stdio: {why}");
        }
    }
}

/// The JSON of an SSE event's `data:` lines, if it has any (a priming event has none).
fn event_data(event: &str) -> Option<Value> {
    let data: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    if data.is_empty() {
        return None;
    }
    serde_json::from_str(&data.join("\n")).ok()
}

fn error_reply(id: &Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_give_their_data_and_priming_events_nothing() {
        assert_eq!(
            event_data("id: 0\nretry: 3000\ndata:\n\n"),
            None,
            "an empty priming event"
        );
        assert_eq!(event_data("id: 1\n\n"), None);
        let v = event_data("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1}\n\n").unwrap();
        assert_eq!(v["id"], 1);
        let v = event_data("data: {\"a\":\ndata: 1}\n\n").unwrap();
        assert_eq!(v["a"], 1);
        let e = error_reply(&json!(7), -32603, "down");
        assert_eq!(e["id"], 7);
        assert_eq!(e["error"]["message"], "down");
    }
}
