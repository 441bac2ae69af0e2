//! Self-test of the fake Anthropic Messages API server, over real HTTP.

#[path = "support/fake_model.rs"]
mod fake_model;
#[path = "support/clis.rs"]
#[allow(dead_code)]
mod support_clis;

use std::time::{Duration, Instant};

use fake_model::{FakeModel, Reply, conversation_text, last_user_text};
use futures::StreamExt as _;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

fn request(messages: Value, stream: bool) -> Value {
    json!({
        "model": "claude-test-model",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are a test."}],
        "tools": [],
        "messages": messages,
        "stream": stream,
    })
}

fn user(content: impl Into<Value>) -> Value {
    json!([{"role": "user", "content": content.into()}])
}

fn messages_url(fake: &FakeModel) -> String {
    format!("{}/v1/messages?beta=true", fake.base_url())
}

/// Parses an SSE body into `(event name, data)` pairs, checking that each
/// event's name matches its data's `type`.
fn parse_sse(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let mut name = None;
            let mut data = None;
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(d).expect("data is JSON"));
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            let (name, data) = (name.expect("event name"), data.expect("event data"));
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

/// Posts a streaming request and returns the parsed events.
async fn stream(fake: &FakeModel, messages: Value) -> Vec<(String, Value)> {
    let response = reqwest::Client::new()
        .post(messages_url(fake))
        .json(&request(messages, true))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let request_id = response.headers()["request-id"].to_str().unwrap();
    assert!(request_id.starts_with("req_fake_"), "{request_id}");
    parse_sse(&response.text().await.expect("body"))
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().expect("text delta"))
        .collect()
}

fn stop_reason(events: &[(String, Value)]) -> &str {
    let (_, delta) = events
        .iter()
        .find(|(n, _)| n == "message_delta")
        .expect("message_delta");
    delta["delta"]["stop_reason"].as_str().unwrap()
}

#[tokio::test]
async fn echo_streams_the_six_events_in_order() {
    let fake = FakeModel::start().await;
    let events = stream(&fake, user("hello fake world")).await;
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let message = &events[0].1["message"];
    assert!(message["id"].as_str().unwrap().starts_with("msg_fake_"));
    assert_eq!(message["model"], "claude-test-model");
    assert_eq!(message["role"], "assistant");
    assert!(message["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(streamed_text(&events), "ECHO: hello fake world");
    assert_eq!(stop_reason(&events), "end_turn");
    assert_eq!(events[4].1["usage"]["output_tokens"], 4);

    assert_eq!(fake.requests().len(), 1);
    assert_eq!(
        fake.requests()[0]["messages"][0]["content"],
        "hello fake world"
    );
    assert_eq!(fake.last_user_texts(), ["hello fake world"]);
}

#[tokio::test]
async fn long_echo_is_split_into_a_few_deltas() {
    let fake = FakeModel::start().await;
    let text = "one two three four five six seven eight nine ten";
    let events = stream(&fake, user(text)).await;
    let deltas = names(&events)
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count();
    assert!(deltas > 1, "{deltas}");
    assert_eq!(streamed_text(&events), format!("ECHO: {text}"));
}

#[tokio::test]
async fn call_tool_produces_a_tool_use_block() {
    let fake = FakeModel::start().await;
    let content = json!([
        {"type": "text", "text": "<system-reminder>\nSome context.\n</system-reminder>"},
        {"type": "text", "text": "CALL_TOOL Bash {\"command\": \"ls -l\", \"timeout\": 5}"},
    ]);
    let events = stream(&fake, user(content)).await;
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let block = &events[1].1["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "Bash");
    assert_eq!(block["input"], json!({}));
    assert!(block["id"].as_str().unwrap().starts_with("toolu_fake_"));
    let delta = &events[2].1["delta"];
    assert_eq!(delta["type"], "input_json_delta");
    let input: Value = serde_json::from_str(delta["partial_json"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"command": "ls -l", "timeout": 5}));
    assert_eq!(stop_reason(&events), "tool_use");
    assert_eq!(
        fake.last_user_texts(),
        ["CALL_TOOL Bash {\"command\": \"ls -l\", \"timeout\": 5}"]
    );
}

#[tokio::test]
async fn call_tool_without_json_uses_empty_input() {
    let fake = FakeModel::start().await;
    let events = stream(&fake, user("CALL_TOOL TodoWrite")).await;
    assert_eq!(events[1].1["content_block"]["name"], "TodoWrite");
    assert_eq!(events[2].1["delta"]["partial_json"], "{}");
}

#[tokio::test]
async fn tool_result_is_echoed_and_never_calls_a_tool() {
    let fake = FakeModel::start().await;
    let messages = json!([
        {"role": "user", "content": "CALL_TOOL Bash {\"command\": \"ls\"}"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_fake_1", "name": "Bash", "input": {"command": "ls"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_fake_1",
             "content": [{"type": "text", "text": "CALL_TOOL Bash {}"}, {"type": "text", "text": "b.txt"}]}
        ]},
    ]);
    let events = stream(&fake, messages.clone()).await;
    assert_eq!(events[1].1["content_block"]["type"], "text");
    assert_eq!(streamed_text(&events), "ECHO: CALL_TOOL Bash {}\nb.txt");
    assert_eq!(stop_reason(&events), "end_turn");

    let body = &fake.requests()[0];
    assert_eq!(last_user_text(body), "CALL_TOOL Bash {}\nb.txt");
    let conversation = conversation_text(body);
    assert!(conversation.contains("CALL_TOOL Bash {\"command\": \"ls\"}"));
    assert!(conversation.contains("b.txt"));
}

#[tokio::test]
async fn non_streaming_request_gets_a_json_message() {
    let fake = FakeModel::start().await;
    let client = reqwest::Client::new();
    let response = client
        .post(messages_url(&fake))
        .json(&request(user("plain please"), false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("request-id"));
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["model"], "claude-test-model");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "ECHO: plain please"}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["usage"]["output_tokens"], 3);

    // Timing does not apply to non-streamed answers.
    let mut body = request(user("count slowly to 5"), false);
    body.as_object_mut().unwrap().remove("stream");
    let message: Value = client
        .post(messages_url(&fake))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(message["content"][0]["text"], "1 2 3 4 5 ");

    let message: Value = client
        .post(messages_url(&fake))
        .json(&request(
            user("CALL_TOOL Read {\"file_path\": \"/x\"}"),
            false,
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][0]["name"], "Read");
    assert_eq!(message["content"][0]["input"], json!({"file_path": "/x"}));
}

#[tokio::test]
async fn count_slowly_streams_one_number_per_delta() {
    let fake = FakeModel::start().await;
    let started = Instant::now();
    let events = stream(&fake, user("please count slowly to 3")).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["1 ", "2 ", "3 "]);
    assert_eq!(stop_reason(&events), "end_turn");
    assert_eq!(fake.cancelled_streams(), 0);
    assert!(fake.wait_for_idle(WAIT).await);
}

#[tokio::test]
async fn client_disconnect_stops_counting_and_server_keeps_working() {
    let fake = FakeModel::start().await;
    let response = reqwest::Client::new()
        .post(messages_url(&fake))
        .json(&request(user("count slowly"), true))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"text\":\"1 \"") {
        let chunk = body.next().await.expect("stream ended early").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(fake.active_streams(), 1);
    drop(body);

    assert!(fake.wait_for_cancelled_streams(1, WAIT).await);
    assert!(fake.wait_for_idle(WAIT).await);

    let events = stream(&fake, user("still there?")).await;
    assert_eq!(streamed_text(&events), "ECHO: still there?");
}

#[tokio::test]
async fn stall_waits_before_the_first_token() {
    let fake = FakeModel::start().await;
    let started = Instant::now();
    let events = stream(&fake, user("stall for a bit")).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(streamed_text(&events), "ECHO: stall for a bit");

    // `install` is not `stall`.
    let started = Instant::now();
    stream(&fake, user("install it")).await;
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn wait_for_request_finds_earlier_and_later_requests() {
    let fake = FakeModel::start().await;
    stream(&fake, user("first")).await;
    let found = fake
        .wait_for_request(|b| last_user_text(b) == "first", WAIT)
        .await
        .expect("earlier request");
    assert_eq!(found["messages"][0]["content"], "first");

    let (found, _) = tokio::join!(
        fake.wait_for_request(|b| last_user_text(b) == "second", WAIT),
        stream(&fake, user("second")),
    );
    assert_eq!(
        found.expect("later request")["messages"][0]["content"],
        "second"
    );

    let missing = fake
        .wait_for_request(|b| last_user_text(b) == "never", Duration::from_millis(100))
        .await;
    assert!(missing.is_none());
    assert_eq!(fake.last_user_texts(), ["first", "second"]);
}

#[tokio::test]
async fn set_reply_overrides_the_default_rules() {
    let fake = FakeModel::start().await;
    fake.set_reply(|body| match last_user_text(body).as_str() {
        "custom" => Some(Reply::Text("custom answer".into())),
        "tool" => Some(Reply::ToolUse {
            name: "Write".into(),
            input: json!({"file_path": "/tmp/x"}),
        }),
        "slow" => Some(Reply::Slow {
            chunks: vec!["a".into(), "b".into()],
            every: Duration::from_millis(10),
        }),
        _ => None,
    });
    assert_eq!(
        streamed_text(&stream(&fake, user("custom")).await),
        "custom answer"
    );
    let events = stream(&fake, user("tool")).await;
    assert_eq!(events[1].1["content_block"]["name"], "Write");
    assert_eq!(streamed_text(&stream(&fake, user("slow")).await), "ab");
    assert_eq!(
        streamed_text(&stream(&fake, user("other")).await),
        "ECHO: other"
    );
}

#[tokio::test]
async fn other_endpoints_answer() {
    let fake = FakeModel::start().await;
    let client = reqwest::Client::new();
    let tokens: Value = client
        .post(format!(
            "{}/v1/messages/count_tokens?beta=true",
            fake.base_url()
        ))
        .json(&request(user("count my tokens"), false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tokens["input_tokens"].as_u64().unwrap() > 0);

    let response = client
        .get(format!("{}/v1/models", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));

    assert!(fake.requests().is_empty());
    assert_eq!(
        fake.other_requests(),
        ["POST /v1/messages/count_tokens?beta=true", "GET /v1/models"]
    );
}

#[test]
fn helpers_read_message_text() {
    let body = json!({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "ECHO: hi"}]},
        {"role": "user", "content": [
            {"type": "text", "text": "line one"},
            {"type": "image", "source": {}},
            {"type": "text", "text": "line two <system-reminder>noise</system-reminder>"},
        ]},
    ]});
    assert_eq!(last_user_text(&body), "line one\nline two");
    assert_eq!(
        conversation_text(&body),
        "hi\nECHO: hi\nline one\nline two <system-reminder>noise</system-reminder>"
    );
    assert_eq!(last_user_text(&json!({})), "");
}

#[tokio::test]
async fn dropping_the_server_ends_streams_and_closes_the_port() {
    let fake = FakeModel::start().await;
    let url = messages_url(&fake);
    let response = reqwest::Client::new()
        .post(&url)
        .json(&request(user("count slowly"), true))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    body.next().await.expect("first chunk").unwrap();
    drop(fake);

    // The stream is cut short (the producer is aborted), well before 40 numbers.
    let rest = tokio::time::timeout(WAIT, async {
        let mut rest = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        rest
    })
    .await
    .expect("stream ended after drop");
    assert!(!rest.contains("message_stop"), "{rest}");

    // Graceful shutdown closes the listener once the last connection is gone.
    let refused = tokio::time::timeout(WAIT, async {
        loop {
            if reqwest::Client::new().post(&url).send().await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(refused.is_ok(), "server still answering after drop");
}

/// The real Codex CLI (0.169.0) answers through the fake's Responses API, fully offline.
#[tokio::test(flavor = "multi_thread")]
async fn codex_exec_answers_through_the_responses_api() {
    let fake = FakeModel::start().await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("codex-home");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let config = format!(
        "model = \"gpt-5\"\nmodel_provider = \"fake\"\napproval_policy = \"never\"\n\n\
         [model_providers.fake]\nname = \"fake\"\nbase_url = \"{}/v1\"\nwire_api = \"responses\"\n\n\
         [projects.\"{}\"]\ntrust_level = \"trusted\"\n\n[analytics]\nenabled = false\n",
        fake.base_url(),
        work.display()
    );
    std::fs::write(home.join("config.toml"), config).unwrap();
    let out = tokio::process::Command::new(support_clis::codex_bin())
        .args(["exec", "--skip-git-repo-check", "hello responses"])
        .current_dir(&work)
        .env("CODEX_HOME", &home)
        .output()
        .await
        .expect("codex runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ECHO: hello responses"), "{stdout}");
    let asked = fake
        .requests()
        .iter()
        .any(|r| fake_model::responses_user_text(r) == "hello responses");
    assert!(asked, "the request reached the fake");
}
