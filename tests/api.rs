//! The REST API and its live events against a real server on port 0, with real Claude Code
//! instances answering through the fake model: every route, the errors it gives, the token it
//! wants, and an event stream that resumes from `Last-Event-ID` without losing anything.

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use support::Harness;
use troupe::cli::sse::{Parser, SseEvent};

struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    fn new(h: &Harness) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: h.server().url(),
            token: h.server().token().to_string(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

/// An open `/api/events` stream, read event by event.
struct Stream {
    body: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    parser: Parser,
    ready: std::collections::VecDeque<SseEvent>,
}

impl Stream {
    async fn open(api: &Api, query: &str, last_event_id: Option<&str>) -> Stream {
        let mut req = api
            .http
            .get(format!("{}/api/events{query}", api.url))
            .bearer_auth(&api.token);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Stream {
            body: r.bytes_stream().boxed(),
            parser: Parser::default(),
            ready: Default::default(),
        }
    }

    async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return e;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.body.next())
                .await
                .expect("an event within 30s")
                .expect("the stream goes on")
                .unwrap();
            self.ready.extend(self.parser.feed(&chunk));
        }
    }

    /// Events until one matches `done` (included).
    async fn until(&mut self, done: impl Fn(&SseEvent, &Value) -> bool) -> Vec<(SseEvent, Value)> {
        let mut seen = Vec::new();
        loop {
            let e = self.next().await;
            let data: Value = serde_json::from_str(&e.data).unwrap();
            let stop = done(&e, &data);
            seen.push((e, data));
            if stop {
                return seen;
            }
        }
    }
}

fn id_of(e: &SseEvent) -> i64 {
    e.id.as_deref().unwrap().parse().unwrap()
}

fn answered(id: &str) -> impl Fn(&SseEvent, &Value) -> bool + '_ {
    move |e, d| e.event == "message" && d["id"] == id && d["state"] == "answered"
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_and_refuses_clearly() {
    let h = Harness::start().await;
    let api = Api::new(&h);
    let url = api.url.clone();

    // No token, a wrong token, a made-up cookie: 401 with the fix named.
    let r = api
        .http
        .get(format!("{url}/api/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    for req in [
        api.http
            .get(format!("{url}/api/instances"))
            .bearer_auth("not-the-token"),
        api.http
            .get(format!("{url}/api/events"))
            .header("cookie", "troupe_session=0000"),
    ] {
        assert_eq!(req.send().await.unwrap().status(), 401);
    }

    // Spawn through the API; bad bodies are 400 and name the field, non-JSON is 415.
    let (status, inst) = api
        .post(
            "/api/instances",
            json!({ "role": "developer", "name": "api-dev", "model": "haiku" }),
        )
        .await;
    assert_eq!(status, 201, "{inst}");
    let id = inst["id"].as_str().unwrap().to_string();
    let (status, err) = api
        .post("/api/instances", json!({ "rol": "developer" }))
        .await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("rol"), "{err}");
    let r = api
        .http
        .post(format!("{url}/api/instances"))
        .bearer_auth(&api.token)
        .body("role=developer")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // Filters. The plain list, asked once here, is kept until the rows change.
    let (_, before) = api.get("/api/instances").await;
    assert_eq!(before["instances"][0]["id"], id.as_str(), "{before}");
    let (_, list) = api.get("/api/instances?role=developer&agent=claude").await;
    assert_eq!(list["instances"][0]["id"], id.as_str(), "{list}");
    assert!(list["instances"][0]["usage"]["cost_micros"].is_i64());
    let (_, list) = api.get("/api/instances?role=tester").await;
    assert_eq!(list["instances"], json!([]));
    let (status, err) = api.get("/api/instances?state=sleepy").await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("idle"), "{err}");
    let (status, _) = api.get("/api/instances?team=no-such-team").await;
    assert_eq!(status, 404);
    let (status, _) = api.get("/api/instances?colour=red").await;
    assert_eq!(status, 400);

    // A message, answered; its delivery states and its output.
    let (status, m) = api
        .post(
            &format!("/api/instances/{id}/send"),
            json!({ "message": "hello api" }),
        )
        .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["state"], "answered");
    assert_eq!(m["response"], "ECHO: hello api");
    let msg_id = m["id"].as_str().unwrap().to_string();
    h.wait_for_transcript(&id, &msg_id).await;
    let (status, ms) = api.get(&format!("/api/instances/{id}/messages")).await;
    assert_eq!(status, 200);
    assert_eq!(ms["messages"][0]["id"], msg_id.as_str());
    assert_eq!(ms["messages"][0]["state"], "answered");
    assert_eq!(ms["next_before"], Value::Null);
    let (status, _) = api
        .get(&format!("/api/instances/{id}/messages?before=msg-nope"))
        .await;
    assert_eq!(status, 400);

    let (status, out) = api.get(&format!("/api/instances/{id}/output")).await;
    assert_eq!(status, 200, "{out}");
    let chunks = out["chunks"].as_array().unwrap();
    let sources: Vec<&str> = chunks
        .iter()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"prompt") && sources.contains(&"assistant"),
        "{out}"
    );
    let last = chunks.last().unwrap()["id"].as_i64().unwrap();
    // Paging: one at a time backwards, and what came after a chunk.
    let (_, one) = api
        .get(&format!("/api/instances/{id}/output?limit=1"))
        .await;
    assert_eq!(one["chunks"].as_array().unwrap().len(), 1);
    assert_eq!(one["chunks"][0]["id"], last);
    assert_eq!(one["next_before"], last);
    let (_, older) = api
        .get(&format!("/api/instances/{id}/output?limit=1&before={last}"))
        .await;
    assert!(older["chunks"][0]["id"].as_i64().unwrap() < last, "{older}");
    let (_, after) = api
        .get(&format!("/api/instances/{id}/output?after={last}"))
        .await;
    assert_eq!(after["chunks"], json!([]));
    let (status, _) = api
        .get(&format!("/api/instances/{id}/output?limit=0"))
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .get(&format!("/api/instances/{id}/output?before=1&after=1"))
        .await;
    assert_eq!(status, 400);

    // Unknown instances are 404 everywhere.
    for path in [
        "/api/instances/ghost-0000",
        "/api/instances/ghost-0000/output",
        "/api/instances/ghost-0000/messages",
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains("ghost-0000"));
    }
    for action in ["send", "interrupt", "terminate", "resume"] {
        let (status, body) = api
            .post(
                &format!("/api/instances/ghost-0000/{action}"),
                json!({ "message": "x" }),
            )
            .await;
        assert_eq!(status, 404, "{action}: {body}");
    }

    // Figures.
    let (_, usage) = api.get("/api/usage").await;
    let rows = usage["usage"].as_array().unwrap();
    assert!(!rows.is_empty(), "{usage}");
    // The list's totals (one query for every instance) are the instance's own.
    let (_, list) = api.get("/api/instances").await;
    let (_, one) = api.get(&format!("/api/instances/{id}")).await;
    let listed = list["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .unwrap();
    assert!(one["usage"]["output_tokens"].as_i64().unwrap() > 0, "{one}");
    assert_eq!(listed["usage"], one["usage"]);
    // Every column as the instance's own answer has it (no list kept from before the turn).
    let mut own = one.clone();
    own.as_object_mut().unwrap().remove("tmux_socket");
    assert_eq!(listed, &own);
    assert_ne!(listed, &before["instances"][0]);
    assert_eq!(rows[0]["instance_id"], id.as_str());
    assert!(rows[0]["model"].as_str().unwrap().starts_with("claude-"));
    let (_, limits) = api.get("/api/limits").await;
    let names: Vec<&str> = limits["limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["max_instances", "max_session_cost", "max_cost_per_hour"]
    );
    assert_eq!(limits["limits"][0]["used"], 1.0);
    let (_, audit) = api.get("/api/audit?kind=instance.spawn").await;
    assert_eq!(audit["events"][0]["instance_id"], id.as_str(), "{audit}");
    assert!(audit["events"][0]["detail"].is_object());
    let (_, audit) = api
        .get(&format!("/api/audit?instance_id={id}&limit=1"))
        .await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 1);
    assert!(audit["next_before"].is_i64(), "{audit}");
    let (status, m) = api.get("/api/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(m["messages_answered"], 1);
    let (status, s) = api.get("/api/settings").await;
    assert_eq!(status, 200);
    assert!(s["settings"]["max_instances"]["value"].is_u64(), "{s}");
    let (status, t) = api.get("/api/tree").await;
    assert_eq!(status, 200);
    assert!(t["text"].as_str().unwrap().contains(&id));

    // Interrupt with nothing running, terminate, resume.
    let (status, r) = api
        .post(&format!("/api/instances/{id}/interrupt"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(r["outcome"], "not_busy", "{r}");
    let (status, r) = api
        .post(&format!("/api/instances/{id}/terminate"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(r["terminated"], json!([id]));
    let (status, r) = api
        .post(
            &format!("/api/instances/{id}/send"),
            json!({ "message": "hi" }),
        )
        .await;
    assert_eq!(status, 409, "a terminated instance takes no messages: {r}");
    let (status, r) = api
        .post(&format!("/api/instances/{id}/resume"), json!({}))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["state"], "idle");

    // Teams: create, show, start, resume, dissolve; unknown names are 404.
    let (status, team) = api
        .post(
            "/api/teams",
            json!({ "name": "crew", "members": [{ "role": "tester", "model": "haiku" }] }),
        )
        .await;
    assert_eq!(status, 201, "{team}");
    let (_, teams) = api.get("/api/teams").await;
    assert_eq!(teams["teams"][0]["name"], "crew");
    let (status, team) = api.post("/api/teams/crew/start", json!({})).await;
    assert_eq!(status, 200, "{team}");
    let member = team["members"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, crew) = api.get("/api/instances?team=crew").await;
    assert_eq!(crew["instances"][0]["id"], member.as_str());
    let (status, team) = api.post("/api/teams/crew/resume", json!({})).await;
    assert_eq!(status, 200, "{team}");
    let (status, team) = api.get("/api/teams/crew").await;
    assert_eq!(status, 200);
    assert_eq!(team["members"][0]["instance_id"], member.as_str());
    let (status, _) = api.delete("/api/teams/crew").await;
    assert_eq!(status, 200);
    let (status, body) = api.get("/api/teams/crew").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = api.post("/api/teams/ghost/start", json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_resume_from_the_last_event_id_and_miss_nothing() {
    let h = Harness::start().await;
    let api = Api::new(&h);

    // Bad starts are 400.
    let r = api
        .http
        .get(format!("{}/api/events", api.url))
        .bearer_auth(&api.token)
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, err) = api.get("/api/events?kinds=output,gossip").await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("gossip"), "{err}");

    let mut live = Stream::open(&api, "", None).await;
    let (_, inst) = api
        .post(
            "/api/instances",
            json!({ "role": "developer", "model": "haiku" }),
        )
        .await;
    let id = inst["id"].as_str().unwrap().to_string();
    let (_, m1) = api
        .post(
            &format!("/api/instances/{id}/send"),
            json!({ "message": "first", "wait": false }),
        )
        .await;
    let m1 = m1["id"].as_str().unwrap().to_string();
    let seen = live.until(answered(&m1)).await;
    let kinds: Vec<&str> = seen.iter().map(|(e, _)| e.event.as_str()).collect();
    for kind in ["instance", "message", "audit"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let states: Vec<&str> = seen
        .iter()
        .filter(|(e, d)| e.event == "message" && d["id"] == m1.as_str())
        .map(|(_, d)| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.first(), Some(&"queued"), "{states:?}");
    assert_eq!(states.last(), Some(&"answered"), "{states:?}");
    assert!(states.contains(&"submitted"), "{states:?}");
    // A message event shows the message's text, and the answer only once it was answered.
    let of_m1 = |state: &str| {
        seen.iter()
            .find(|(e, d)| e.event == "message" && d["id"] == m1.as_str() && d["state"] == state)
            .map(|(_, d)| d.clone())
            .unwrap()
    };
    assert_eq!(of_m1("queued")["content"], "first");
    assert_eq!(of_m1("queued")["response"], Value::Null);
    assert_eq!(of_m1("answered")["response"], "ECHO: first");
    assert!(of_m1("answered").get("has_response").is_none());
    // The log itself keeps no copy of that text: output and message events name their row.
    let logged = troupe::db::events::after(h.pool(), 0, 10_000)
        .await
        .unwrap();
    let texts: Vec<&str> = logged
        .iter()
        .filter(|e| e.kind == "output" || e.kind == "message")
        .map(|e| e.data.as_str())
        .collect();
    assert!(texts.len() >= 4, "{texts:?}");
    assert!(
        texts
            .iter()
            .all(|d| !d.contains("\"content\"") && !d.contains("ECHO")),
        "{texts:?}"
    );
    // Each event about an instance names the host that runs it.
    let host = h.config().host;
    assert!(
        seen.iter()
            .filter(|(e, _)| e.event == "message" || e.event == "instance")
            .all(|(_, d)| d["host"] == host.as_str()),
        "{seen:?}"
    );
    let ids: Vec<i64> = seen.iter().map(|(e, _)| id_of(e)).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids only grow: {ids:?}"
    );
    let last_seen = *ids.last().unwrap();
    drop(live);

    // Away: a second message is sent and answered, and its output written.
    let (_, m2) = api
        .post(
            &format!("/api/instances/{id}/send"),
            json!({ "message": "second" }),
        )
        .await;
    assert_eq!(m2["state"], "answered");
    let m2 = m2["id"].as_str().unwrap().to_string();
    h.wait_for_transcript(&id, &m2).await;

    // Back with Last-Event-ID: what was missed comes first, nothing seen comes again.
    let mut back = Stream::open(&api, "", Some(&last_seen.to_string())).await;
    let missed = back
        .until(|e, d| e.event == "output" && d["content"] == "ECHO: second")
        .await;
    assert!(id_of(&missed[0].0) > last_seen, "{:?}", missed[0]);
    assert!(
        missed
            .iter()
            .any(|(e, d)| e.event == "message" && d["id"] == m2.as_str() && d["state"] == "queued"),
        "the queued second message was missed and is given back"
    );
    let missed_ids: Vec<i64> = missed.iter().map(|(e, _)| id_of(e)).collect();
    assert!(
        missed_ids.windows(2).all(|w| w[0] + 1 == w[1]),
        "no gaps: {missed_ids:?}"
    );
    assert_eq!(
        missed_ids[0],
        last_seen + 1,
        "starts right after the last one seen"
    );

    // The same through ?after=, narrowed to one instance's output.
    let mut narrow = Stream::open(
        &api,
        &format!("?after={last_seen}&instance_id={id}&kinds=output"),
        None,
    )
    .await;
    let out = narrow.until(|_, d| d["content"] == "ECHO: second").await;
    assert!(
        out.iter()
            .all(|(e, d)| e.event == "output" && d["instance_id"] == id.as_str())
    );
    assert!(
        out.iter()
            .any(|(_, d)| d["source"] == "prompt" && d["content"] == "second")
    );

    // And live again: a change made now reaches the open stream.
    let (_, _) = api
        .post(&format!("/api/instances/{id}/terminate"), json!({}))
        .await;
    back.until(|e, d| e.event == "instance" && d["state"] == "terminated")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spawn_whose_client_hangs_up_still_finishes() {
    let h = Harness::start().await;
    let api = Api::new(&h);
    // The client gives up before the CLI is ready, as a closed browser tab does, at several
    // points of the spawn.
    for ms in [15, 30, 60, 120, 240] {
        let gone = api
            .http
            .post(format!("{}/api/instances", api.url))
            .bearer_auth(&api.token)
            .json(&json!({ "role": "developer", "name": format!("orphan-{ms}"), "model": "haiku" }))
            .timeout(Duration::from_millis(ms))
            .send()
            .await;
        assert!(gone.is_err(), "the request was cut off: {gone:?}");
    }
    let states = support::eventually("every spawn over", Duration::from_secs(60), || async {
        let (_, list) = api.get("/api/instances?all=true").await;
        let states: Vec<(String, String)> = list["instances"]
            .as_array()?
            .iter()
            .map(|i| {
                let said = |k: &str| i[k].as_str().unwrap_or_default().to_string();
                (said("state"), said("state_reason"))
            })
            .collect();
        (!states.is_empty() && states.iter().all(|(s, _)| s != "starting")).then_some(states)
    })
    .await;
    assert!(
        states.iter().all(|(s, _)| s == "idle"),
        "none left starting with nothing following it: {states:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_cannot_use_the_persons_rest_api() {
    let h = Harness::start().await;
    let id = h
        .spawn(json!({ "role": "developer", "model": "haiku" }))
        .await;
    let token = troupe::db::credentials::Credentials::find(h.pool(), &id)
        .await
        .unwrap()
        .unwrap()
        .token;
    let http = reqwest::Client::new();
    let url = h.server().url();
    for (method, path) in [
        (reqwest::Method::GET, "/api/instances".to_string()),
        (reqwest::Method::POST, "/api/instances".to_string()),
        (
            reqwest::Method::POST,
            format!("/api/instances/{id}/terminate"),
        ),
    ] {
        let r = http
            .request(method.clone(), format!("{url}{path}"))
            .bearer_auth(&token)
            .header("x-troupe-instance", &id)
            .json(&json!({ "role": "developer" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("MCP"), "{body}");
    }
    let (_, list) = Api::new(&h).get("/api/instances").await;
    assert_eq!(
        list["instances"][0]["state"], "idle",
        "nothing was done in its name"
    );
}

/// More callers at once than the database has connections: each waits its turn for one, and
/// none is refused.
#[tokio::test(flavor = "multi_thread")]
async fn callers_beyond_the_pool_queue_and_none_fails() {
    let h = Harness::start().await;
    let api = std::sync::Arc::new(Api::new(&h));
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                let path = match i % 3 {
                    0 => "/api/instances",
                    1 => "/api/audit",
                    _ => "/api/usage",
                };
                api.get(path).await
            })
        })
        .collect();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
}
