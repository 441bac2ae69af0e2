//! Property: whatever JSON a client throws at any tool, the server never panics, the MCP
//! session lives on, every error says something, and an error caused by a value that breaks
//! the tool's own advertised `inputSchema` names the field it is about.
//!
//! One real server for the whole test (port 0, a temp database, its own tmux socket, a CLI
//! binary that does not exist so a spawn that passes validation fails fast). For every tool
//! in `tools/list` a proptest runner generates arguments: arbitrary JSON (any type, extreme
//! numbers, control characters, NUL, unicode, now and then a 1 MB string, nesting), objects
//! built from the tool's schema with each field omitted, valid, wrong-typed or arbitrary,
//! and plausible objects that get deep (ids of instances the server returned, teams that
//! exist). Cases per tool: `TOOL_INPUT_CASES` (default 256). The tools run at the same
//! time, each on its own thread and MCP session (one round trip takes ~40 ms, nearly all of
//! it waiting), each runner deterministic.
//!
//! A transport failure, a panic anywhere in the process, an answer that is neither a result
//! nor an error, an empty error message, or a session that stops answering (a `ping` on it
//! and `GET /health` after every call, `tools/list` after every 32nd) fails the case at once,
//! and proptest shrinks it. An
//! error for input that breaks the tool's schema but does not name the bad field is
//! recorded, and the test fails at the end with every kind of such message, the fields and
//! the shortest input.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Just, Strategy};
use proptest::test_runner::{
    Config as RunnerConfig, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use serde_json::{Map, Value, json};
use support::mcp::sse_messages;
use support::{TmuxServer, unique_socket};

/// Longest a single tool call may take before it counts as lost.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// A raw MCP client: like tests/support/mcp.rs, but every failure is a value, not a panic,
// so a case can say which input broke the transport.

struct Wire {
    http: reqwest::Client,
    base: String,
    token: String,
    session: Option<String>,
    next_id: AtomicU64,
}

impl Wire {
    async fn connect(base: &str, token: &str) -> Result<Wire, String> {
        let mut wire = Wire {
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .build()
                .unwrap(),
            base: base.to_string(),
            token: token.to_string(),
            session: None,
            next_id: AtomicU64::new(1),
        };
        let (session, init) = wire
            .post(json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": { "name": "troupe-tool-inputs", "version": "0" }
                }
            }))
            .await?;
        if init.get("result").is_none() {
            return Err(format!("initialize failed: {init}"));
        }
        wire.session = session;
        wire.post(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await?;
        Ok(wire)
    }

    /// One JSON-RPC message; for a request, the response with its id.
    async fn post(&self, body: Value) -> Result<(Option<String>, Value), String> {
        let mut req = self
            .http
            .post(format!("{}/mcp", self.base))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.token))
            .body(serde_json::to_vec(&body).unwrap());
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("request not answered: {e:?}"))?;
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
        let text = resp
            .text()
            .await
            .map_err(|e| format!("response body lost ({status}): {e:?}"))?;
        let Some(id) = body.get("id") else {
            return match status.is_success() {
                true => Ok((session, Value::Null)),
                false => Err(format!("notification refused: {status} {}", clip(&text))),
            };
        };
        let message = if is_sse {
            sse_messages(&text).into_iter().find(|m| m["id"] == *id)
        } else {
            serde_json::from_str::<Value>(&text).ok()
        };
        match message {
            Some(m) if !m.is_null() => Ok((session, m)),
            _ => Err(format!("no JSON-RPC answer ({status}): {}", clip(&text))),
        }
    }

    async fn request(&self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.post(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await
            .map(|(_, m)| m)
    }

    async fn health(&self) -> Result<(), String> {
        let r = self
            .http
            .get(format!("{}/health", self.base))
            .send()
            .await
            .map_err(|e| format!("GET /health not answered: {e:?}"))?;
        match r.status().as_u16() {
            200 => Ok(()),
            s => Err(format!("GET /health is {s}")),
        }
    }
}

/// At most 300 characters of `s`, saying how long it was.
fn clip(s: &str) -> String {
    if s.chars().count() <= 300 {
        return s.to_string();
    }
    let head: String = s.chars().take(300).collect();
    format!("{head}… ({} bytes)", s.len())
}

// ---------------------------------------------------------------------------------------
// The tools' input schemas, as troupe advertises them, reduced to what serde checks.

#[derive(Debug, Clone)]
enum Shape {
    Any,
    Str,
    Bool,
    /// A non-negative integer (schemars: `format: uint*` / `minimum: 0`).
    UInt,
    Int,
    Num,
    Array(Box<Shape>),
    Object(Obj),
    Nullable(Box<Shape>),
}

#[derive(Debug, Clone, Default)]
struct Obj {
    props: Vec<(String, Shape)>,
    required: BTreeSet<String>,
}

fn shape_of(schema: &Value, root: &Value, depth: usize) -> Shape {
    if depth > 8 {
        return Shape::Any;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(root, |v, k| &v[k]))
            .unwrap_or(&Value::Null);
        return shape_of(target, root, depth + 1);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let non_null: Vec<&Value> = alts.iter().filter(|a| a["type"] != "null").collect();
            return match (non_null.len(), non_null.len() < alts.len()) {
                (1, true) => Shape::Nullable(Box::new(shape_of(non_null[0], root, depth + 1))),
                (1, false) => shape_of(non_null[0], root, depth + 1),
                _ => Shape::Any,
            };
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Shape::Any,
    };
    let nullable = types.contains(&"null");
    let rest: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    let base = match rest.as_slice() {
        ["string"] => Shape::Str,
        ["boolean"] => Shape::Bool,
        ["number"] => Shape::Num,
        ["integer"] => {
            let unsigned = schema["format"]
                .as_str()
                .is_some_and(|f| f.starts_with("uint"))
                || schema["minimum"].as_f64().is_some_and(|m| m >= 0.0);
            if unsigned { Shape::UInt } else { Shape::Int }
        }
        ["array"] => Shape::Array(Box::new(shape_of(&schema["items"], root, depth + 1))),
        ["object"] => {
            let props = schema["properties"]
                .as_object()
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| (k.clone(), shape_of(v, root, depth + 1)))
                        .collect()
                })
                .unwrap_or_default();
            let required = schema["required"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            Shape::Object(Obj { props, required })
        }
        _ => Shape::Any,
    };
    if nullable {
        Shape::Nullable(Box::new(base))
    } else {
        base
    }
}

/// Serde aliases troupe accepts besides the schema's names (`#[serde(alias)]` is not in
/// the schema).
fn aliases(tool: &str, field: &str) -> &'static [&'static str] {
    match (tool, field) {
        ("get_children" | "broadcast_to_children", "instance_id") => {
            &["parent_id", "parent_instance_id"]
        }
        (_, "parent_instance_id") => &["parent_id"],
        ("send_to_multiple_instances", "messages") => &["tasks"],
        _ => &[],
    }
}

/// A place where the input breaks the schema: the field's name and its path.
#[derive(Debug, Clone)]
struct Violation {
    field: String,
    path: String,
    why: &'static str,
}

fn violations(tool: &str, shape: &Shape, arguments: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    match arguments {
        // No arguments: rmcp deserializes the tool's parameters from {}.
        Value::Null => check(tool, shape, &json!({}), "arguments", "", &mut out),
        v => check(tool, shape, v, "arguments", "", &mut out),
    }
    out
}

fn check(tool: &str, shape: &Shape, v: &Value, field: &str, path: &str, out: &mut Vec<Violation>) {
    let mut bad = |why| {
        out.push(Violation {
            field: field.to_string(),
            path: if path.is_empty() {
                field.to_string()
            } else {
                path.to_string()
            },
            why,
        })
    };
    match shape {
        Shape::Any => {}
        Shape::Nullable(inner) => {
            if !v.is_null() {
                check(tool, inner, v, field, path, out)
            }
        }
        Shape::Str => {
            if !v.is_string() {
                bad("not a string")
            }
        }
        Shape::Bool => {
            if !v.is_boolean() {
                bad("not a boolean")
            }
        }
        Shape::UInt => {
            if v.as_u64().is_none() {
                bad("not a non-negative integer")
            }
        }
        Shape::Int => {
            if v.as_i64().is_none() && v.as_u64().is_none() {
                bad("not an integer")
            }
        }
        Shape::Num => {
            if !v.is_number() {
                bad("not a number")
            }
        }
        Shape::Array(inner) => match v.as_array() {
            None => bad("not an array"),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{}[{i}]", if path.is_empty() { field } else { path });
                    check(tool, inner, item, field, &p, out);
                }
            }
        },
        Shape::Object(obj) => match v.as_object() {
            None => bad("not an object"),
            Some(map) => {
                for (name, prop) in &obj.props {
                    let present: Vec<&str> = std::iter::once(name.as_str())
                        .chain(aliases(tool, name).iter().copied())
                        .filter(|k| map.contains_key(*k))
                        .collect();
                    let p = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    match present.as_slice() {
                        [] if obj.required.contains(name) => out.push(Violation {
                            field: name.clone(),
                            path: p,
                            why: "required and missing",
                        }),
                        [] => {}
                        // troupe reads a null as the key left out (src/mcp/parameters.rs):
                        // its schemas give optional fields their plain type, without null.
                        [k] if map[*k].is_null() && !obj.required.contains(name) => {}
                        [k] if map[*k].is_null() => out.push(Violation {
                            field: name.clone(),
                            path: p.replacen(name.as_str(), k, 1),
                            why: "required and null (read as missing)",
                        }),
                        // serde names the key as the input spelled it (an alias, say).
                        [k] => {
                            let p = p.replacen(name.as_str(), k, 1);
                            check(tool, prop, &map[*k], k, &p, out)
                        }
                        // serde reports whichever comes first: a bad value, or the
                        // duplicate under the schema's name.
                        keys => {
                            for k in keys {
                                let p = p.replacen(name.as_str(), k, 1);
                                check(tool, prop, &map[*k], k, &p, out);
                            }
                            out.push(Violation {
                                field: name.clone(),
                                path: p,
                                why: "given twice (name and alias)",
                            })
                        }
                    }
                }
            }
        },
    }
}

/// Whether `text` names `field` as a word of its own (so `instance_id` is not found in
/// `instance_ids`).
fn names(text: &str, field: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(field).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + field.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

// ---------------------------------------------------------------------------------------
// Generators.

fn big_string() -> String {
    // 1 MB, with some control characters, so the body stays well under any 2 MB limit.
    let mut s = "a".repeat(1 << 20);
    s.replace_range(0..3, "\u{0}\u{1b}\n");
    s
}

fn arb_string() -> BoxedStrategy<String> {
    thread_local! {
        // Built once: a regex strategy parses its regex whenever it is built.
        static STRINGS: BoxedStrategy<String> = {
            let big = Arc::new(big_string());
            let regex = |r: &str| proptest::string::string_regex(r).unwrap().boxed();
            prop_oneof![
                40 => regex("[a-z0-9_-]{0,12}"),
                20 => any::<String>(),
                15 => regex("[\\x00-\\x1f\\x7f]{0,8}"),
                10 => regex("\\PC{0,16}"),
                5 => Just(String::new()),
                5 => Just("\u{0}".to_string()),
                5 => Just("  \t\r\n ".to_string()),
                5 => Just("\u{202e}evil\u{1F600}\u{fffd}\u{10ffff}".to_string()),
                5 => Just("../../../../etc/passwd".to_string()),
                5 => Just("x".repeat(70_000)),
                1 => Just(()).prop_map(move |_| (*big).clone()),
            ]
            .boxed()
        };
    }
    STRINGS.with(Clone::clone)
}

fn arb_number() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1)),
        Just(json!(1u64 << 63)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1e308)),
        Just(json!(-1e308)),
        Just(json!(0.5)),
        Just(json!(18446744073709551616.0_f64)),
        Just(json!(86400)),
        Just(json!(86401)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
    ]
    .boxed()
}

fn arb_json(keys: Vec<String>) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        arb_string().prop_map(Value::String),
    ];
    let key: BoxedStrategy<String> = if keys.is_empty() {
        arb_string()
    } else {
        prop_oneof![2 => proptest::sample::select(keys), 1 => arb_string()].boxed()
    };
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Plausible values for a field, by name, so that some calls get past validation.
fn known_values(field: &str, project_dir: &str) -> Vec<String> {
    let v: &[&str] = match field {
        "role" => &["developer", "architect", "tester", "Reviewer ", "janitor"],
        "model" => &["sonnet", "haiku", "opus-4", "claude-sonnet-4-5", "gpt-5"],
        "name" => &["t1", "dev-team", "a", "bad name!", "-x"],
        "instance_id" | "parent_instance_id" => &[LIVE, LIVE, "developer-0000", "nobody-0000"],
        "instance_ids" => &[LIVE, "developer-0000", "nobody-0000"],
        "project_dir" => &["/", "relative/dir", "/nonexistent/dir", "/etc/passwd"],
        "mode" => &["parallel", "sequential", "consensus", "CONSENSUS", "bogus"],
        "since" => &[
            "2024-01-01T00:00:00Z",
            "not a time",
            "9999-12-31T23:59:59.999Z",
        ],
        "message_id" | "correlation_id" => &["msg-0000", "01970000-0000-7000-8000-000000000000"],
        "agent" => &["claude", "codex", "none"],
        _ => &["hi", "multi\nline\ntext"],
    };
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    if field == "project_dir" {
        v.push(project_dir.to_string());
    }
    v
}

fn known_string(field: &str, ctx: &Gen) -> BoxedStrategy<String> {
    prop_oneof![
        1 => proptest::sample::select(known_values(field, &ctx.project_dir)),
        1 => arb_string(),
    ]
    .boxed()
}

#[derive(Clone)]
struct Gen {
    project_dir: String,
    keys: Vec<String>,
}

/// A value that fits `shape` (for `field`).
fn valid(shape: &Shape, field: &str, ctx: &Gen) -> BoxedStrategy<Value> {
    match shape {
        Shape::Any => arb_json(ctx.keys.clone()),
        Shape::Str => known_string(field, ctx).prop_map(Value::String).boxed(),
        Shape::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Shape::UInt => prop_oneof![
            4 => (0u64..10).prop_map(|n| json!(n)),
            1 => Just(json!(0)),
            1 => Just(json!(86_400)),
            1 => Just(json!(86_401)),
            1 => Just(json!(1u64 << 63)),
            1 => Just(json!(u64::MAX)),
            1 => any::<u64>().prop_map(|n| json!(n)),
        ]
        .boxed(),
        Shape::Int => any::<i64>().prop_map(|n| json!(n)).boxed(),
        Shape::Num => arb_number(),
        Shape::Array(inner) => proptest::collection::vec(valid(inner, field, ctx), 0..3)
            .prop_map(Value::Array)
            .boxed(),
        Shape::Object(obj) => object(obj, ctx),
        Shape::Nullable(inner) => {
            prop_oneof![1 => Just(Value::Null), 4 => valid(inner, field, ctx)].boxed()
        }
    }
}

/// A value of the wrong type for `shape`, or an integer outside its range (`null` too,
/// unless the field may be null).
fn wrong(shape: &Shape, null_ok: bool, ctx: &Gen) -> BoxedStrategy<Value> {
    let s = || arb_string().prop_map(Value::String).boxed();
    let fixed = |vs: Vec<Value>| -> Vec<BoxedStrategy<Value>> {
        vs.into_iter().map(|v| Just(v).boxed()).collect()
    };
    let mut options: Vec<BoxedStrategy<Value>> = match shape {
        Shape::Any => return valid(shape, "", ctx),
        Shape::Nullable(inner) => return wrong(inner, true, ctx),
        Shape::Str => {
            let mut o = fixed(vec![json!(["x"]), json!({ "x": 1 }), json!(true)]);
            o.push(arb_number());
            o
        }
        Shape::Bool => fixed(vec![
            json!("true"),
            json!(0),
            json!(1),
            json!([]),
            json!({}),
        ]),
        Shape::UInt | Shape::Int => {
            let mut o = fixed(vec![
                json!(-1),
                json!(i64::MIN),
                json!(1e308),
                json!(-1e308),
                json!(0.5),
                json!(18446744073709551616.0_f64),
                json!("5"),
                json!(true),
                json!([1]),
            ]);
            if matches!(shape, Shape::Int) {
                o.drain(..2);
            }
            o.push(s());
            o
        }
        Shape::Num => {
            let mut o = fixed(vec![json!(true), json!([])]);
            o.push(s());
            o
        }
        Shape::Array(_) => {
            let mut o = fixed(vec![json!({}), json!({ "0": "x" }), json!(true)]);
            o.push(s());
            o.push(arb_number());
            o
        }
        Shape::Object(_) => {
            let mut o = fixed(vec![json!([]), json!([{}]), json!(false)]);
            o.push(s());
            o.push(arb_number());
            o
        }
    };
    if !null_ok {
        options.push(Just(Value::Null).boxed());
    }
    proptest::strategy::Union::new(options).boxed()
}

/// An object with the schema's fields, each omitted, valid, wrong or arbitrary, plus a
/// few fields the schema does not have.
fn object(obj: &Obj, ctx: &Gen) -> BoxedStrategy<Value> {
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = obj
        .props
        .iter()
        .map(|(name, shape)| {
            let omit = if obj.required.contains(name) { 1 } else { 3 };
            let n = name.clone();
            let n2 = name.clone();
            let n3 = name.clone();
            prop_oneof![
                omit => Just(None),
                4 => valid(shape, name, ctx).prop_map(move |v| Some((n.clone(), v))),
                3 => wrong(shape, false, ctx).prop_map(move |v| Some((n2.clone(), v))),
                1 => arb_json(ctx.keys.clone()).prop_map(move |v| Some((n3.clone(), v))),
            ]
            .boxed()
        })
        .collect();
    let extra = proptest::collection::vec(
        (
            prop_oneof![
                Just("parent_id".to_string()),
                Just("tasks".to_string()),
                Just("unknown_field".to_string()),
                arb_string(),
            ],
            arb_json(Vec::new()),
        ),
        0..2,
    );
    (fields, prop_oneof![4 => Just(Vec::new()), 1 => extra])
        .prop_map(|(fields, extra)| {
            let mut map = Map::new();
            for (k, v) in extra {
                map.insert(k, v);
            }
            for (k, v) in fields.into_iter().flatten() {
                map.insert(k, v);
            }
            Value::Object(map)
        })
        .boxed()
}

/// A value the schema accepts, from the plausible ones, so calls get deep: a team that
/// exists to start, an instance that exists to resume.
fn plausible(shape: &Shape, field: &str, ctx: &Gen) -> BoxedStrategy<Value> {
    match shape {
        Shape::Str => proptest::sample::select(known_values(field, &ctx.project_dir))
            .prop_map(Value::String)
            .boxed(),
        Shape::UInt => (1u64..5).prop_map(|n| json!(n)).boxed(),
        Shape::Array(inner) => proptest::collection::vec(plausible(inner, field, ctx), 1..3)
            .prop_map(Value::Array)
            .boxed(),
        Shape::Nullable(inner) => plausible(inner, field, ctx),
        Shape::Object(obj) => {
            let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = obj
                .props
                .iter()
                .map(|(name, shape)| {
                    let n = name.clone();
                    let value = plausible(shape, name, ctx)
                        .prop_map(move |v| Some((n.clone(), v)))
                        .boxed();
                    match obj.required.contains(name) {
                        true => value,
                        false => prop_oneof![Just(None), value].boxed(),
                    }
                })
                .collect();
            fields
                .prop_map(|f| Value::Object(f.into_iter().flatten().collect()))
                .boxed()
        }
        _ => valid(shape, field, ctx),
    }
}

fn arguments_for(shape: &Shape, ctx: &Gen) -> BoxedStrategy<Value> {
    let obj = match shape {
        Shape::Object(o) => o.clone(),
        _ => Obj::default(),
    };
    prop_oneof![
        2 => arb_json(ctx.keys.clone()),
        5 => object(&obj, ctx),
        2 => plausible(&Shape::Object(obj), "", ctx),
    ]
    .boxed()
}

/// Stands for an instance id the server has returned; replaced at call time.
const LIVE: &str = "$instance";

/// Instance ids the server has returned so far (spawns that failed fast have one too).
static SEEN_IDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn remember_ids(v: &Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if let ("instance_id", Value::String(id)) = (k.as_str(), v) {
                    let mut seen = SEEN_IDS.lock().unwrap();
                    if !seen.contains(id) {
                        seen.push(id.clone());
                    }
                }
                remember_ids(v);
            }
        }
        Value::Array(items) => items.iter().for_each(remember_ids),
        _ => {}
    }
}

/// `arguments` with every [`LIVE`] replaced by an id the server returned (the n-th, round
/// robin), or left as it is while there is none.
fn with_live_ids(v: &Value, n: u64) -> Value {
    match v {
        Value::String(s) if s == LIVE => {
            let seen = SEEN_IDS.lock().unwrap();
            match seen.len() {
                0 => v.clone(),
                len => Value::String(seen[n as usize % len].clone()),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| with_live_ids(i, n)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| (k.clone(), with_live_ids(i, n)))
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// The property.

/// Every panic in the process (server tasks included), by message.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn install_panic_recorder() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        PANICS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("[{thread}] {info}"));
        previous(info);
    }));
}

fn panic_count() -> usize {
    PANICS.lock().unwrap_or_else(|e| e.into_inner()).len()
}

#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    ok: usize,
    tool_errors: usize,
    rpc_errors: usize,
    /// Errors for inputs that break the schema, naming a bad field / not naming one.
    named: usize,
    unnamed: usize,
    /// Inputs that break the schema and were answered without an error.
    schema_breaking_accepted: usize,
    accepted_example: Option<String>,
    /// Fresh sessions opened because the previous one stopped answering.
    reconnects: usize,
    slowest: Duration,
    /// Errors for input the schema accepts (not found, bad role, limits...), by kind.
    other_errors: BTreeMap<String, usize>,
}

/// An error that did not name the bad field.
#[derive(Debug, Clone)]
struct Unnamed {
    tool: String,
    arguments: Value,
    violations: Vec<Violation>,
    kind: &'static str,
    message: String,
    /// For a JSON-RPC error, the whole error object.
    raw: Option<String>,
}

/// What every tool's runner shares.
struct Shared {
    base: String,
    token: String,
    tools: usize,
    tally: Mutex<BTreeMap<String, Tally>>,
    unnamed: Mutex<Vec<Unnamed>>,
}

/// One tool's runner: its own MCP session (replaced when a case broke it, so the next
/// case, and shrinking, start from a live session).
struct Runner<'a> {
    shared: &'a Shared,
    tool: &'a str,
    shape: &'a Shape,
    wire: Mutex<Option<Arc<Wire>>>,
    calls: AtomicU64,
}

impl Runner<'_> {
    fn tally<R>(&self, f: impl FnOnce(&mut Tally) -> R) -> R {
        let mut tally = self.shared.tally.lock().unwrap();
        f(tally.entry(self.tool.to_string()).or_default())
    }

    async fn session(&self) -> Result<Arc<Wire>, String> {
        if let Some(w) = self.wire.lock().unwrap().clone() {
            return Ok(w);
        }
        let w = Arc::new(Wire::connect(&self.shared.base, &self.shared.token).await?);
        *self.wire.lock().unwrap() = Some(w.clone());
        self.tally(|t| t.reconnects += 1);
        Ok(w)
    }

    /// The session still answers, and the server is healthy; every `LIST_EVERY` calls the
    /// session also still lists every tool. (A `tools/list` after every call, some 40 KB to
    /// write and parse, took half of the test's time and most of its CPU.)
    async fn alive(&self, wire: &Wire, calls: u64) -> Result<(), String> {
        const LIST_EVERY: u64 = 32;
        if calls.is_multiple_of(LIST_EVERY) {
            let list = wire.request("tools/list", json!({})).await?;
            let n = list["result"]["tools"].as_array().map_or(0, Vec::len);
            if n != self.shared.tools {
                return Err(format!(
                    "tools/list on the same session answered {}",
                    clip(&list.to_string())
                ));
            }
        } else {
            let pong = wire.request("ping", json!({})).await?;
            if pong.get("result").is_none() {
                return Err(format!(
                    "ping on the same session answered {}",
                    clip(&pong.to_string())
                ));
            }
        }
        wire.health().await
    }

    async fn case(&self, arguments: &Value) -> Result<(), String> {
        let wire = self
            .session()
            .await
            .map_err(|e| format!("no session: {e}"))?;
        let arguments = &with_live_ids(arguments, self.calls.load(Ordering::Relaxed));
        let result = self
            .call(&wire, arguments)
            .await
            .map_err(|e| format!("{e}\n    input as sent: {}", clip(&arguments.to_string())));
        let calls = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let result = match result {
            Ok(()) => self
                .alive(&wire, calls)
                .await
                .map_err(|e| format!("after this call ({calls} so far): {e}")),
            other => other,
        };
        if result.is_err() {
            *self.wire.lock().unwrap() = None;
        }
        result
    }

    async fn call(&self, wire: &Wire, arguments: &Value) -> Result<(), String> {
        let tool = self.tool;
        let panics_before = panic_count();
        let started = Instant::now();
        let response = wire
            .request(
                "tools/call",
                json!({ "name": tool, "arguments": arguments }),
            )
            .await?;
        let took = started.elapsed();
        if panic_count() > panics_before {
            let panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
            return Err(format!(
                "a panic in the process during this call (other tools' calls run at the same \
                 time): {}",
                panics[panics_before..].join("\n")
            ));
        }

        let raw = response.get("error").map(|e| clip(&e.to_string()));
        let (kind, message) = match (response.get("result"), response.get("error")) {
            (Some(result), None) => {
                if !result.is_object() {
                    return Err(format!(
                        "result is not an object: {}",
                        clip(&response.to_string())
                    ));
                }
                match result.get("isError") {
                    None | Some(Value::Bool(false)) => (None, String::new()),
                    Some(Value::Bool(true)) => {
                        let text = result["content"]
                            .as_array()
                            .map(|b| {
                                b.iter()
                                    .filter_map(|b| b["text"].as_str())
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            })
                            .unwrap_or_default();
                        (Some("tool error"), text)
                    }
                    Some(other) => return Err(format!("isError is {other}")),
                }
            }
            (None, Some(error)) => {
                if !error["code"].is_i64() {
                    return Err(format!("JSON-RPC error without a code: {error}"));
                }
                (
                    Some("JSON-RPC error"),
                    error["message"].as_str().unwrap_or_default().to_string(),
                )
            }
            _ => {
                return Err(format!(
                    "neither a result nor an error: {}",
                    clip(&response.to_string())
                ));
            }
        };
        if let Some(kind) = kind
            && message.trim().is_empty()
        {
            return Err(format!(
                "{kind} with an empty message: {}",
                clip(&response.to_string())
            ));
        }

        remember_ids(&response);
        let found = violations(tool, self.shape, arguments);
        let unnamed = self.tally(|t| {
            t.cases += 1;
            t.slowest = t.slowest.max(took);
            match kind {
                None => t.ok += 1,
                Some("tool error") => t.tool_errors += 1,
                Some(_) => t.rpc_errors += 1,
            }
            match (kind, found.is_empty()) {
                (Some(kind), true) => {
                    // The first words only: the rest repeats the input.
                    let class = message_class(kind, &message);
                    let short: Vec<&str> = class
                        .split_whitespace()
                        .take(7)
                        .map(|w| {
                            if w.len() > 2 && w.contains('-') {
                                "ID"
                            } else {
                                w
                            }
                        })
                        .collect();
                    *t.other_errors.entry(short.join(" ")).or_default() += 1;
                    None
                }
                (None, true) => None,
                (None, false) => {
                    t.schema_breaking_accepted += 1;
                    t.accepted_example
                        .get_or_insert_with(|| clip(&arguments.to_string()));
                    None
                }
                (Some(kind), false) => {
                    if found.iter().any(|v| names(&message, &v.field)) {
                        t.named += 1;
                        None
                    } else {
                        t.unnamed += 1;
                        Some(kind)
                    }
                }
            }
        });
        if let Some(kind) = unnamed {
            self.shared.unnamed.lock().unwrap().push(Unnamed {
                tool: tool.to_string(),
                arguments: arguments.clone(),
                violations: found,
                kind,
                message,
                raw,
            });
        }
        Ok(())
    }
}

/// The message with the values taken out, so errors of one kind group together.
fn message_kind(message: &str) -> String {
    let mut out = String::new();
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' | '"' => {
                out.push(c);
                out.push('…');
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                out.push(c);
            }
            '0'..='9' => {
                while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    chars.next();
                }
                out.push('N');
            }
            _ => out.push(c),
        }
    }
    out.chars().take(160).collect()
}

/// The kind of an error message: its values and the JSON types serde names taken out.
fn message_class(kind: &str, message: &str) -> String {
    let mut m = message.to_string();
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(i) = m.find(lead) {
            let from = i + lead.len();
            if let Some(j) = m[from..].find(", expected") {
                m.replace_range(from..from + j, "…");
            }
        }
    }
    format!("{kind}: {}", message_kind(&m))
}

/// Fields whose schema the generator cannot read (they get only arbitrary JSON, and no
/// expectation about their errors).
fn unreadable(shape: &Shape, path: &str, out: &mut Vec<String>) {
    match shape {
        Shape::Any => out.push(path.to_string()),
        Shape::Nullable(inner) => unreadable(inner, path, out),
        Shape::Array(inner) => unreadable(inner, &format!("{path}[]"), out),
        Shape::Object(obj) => {
            for (name, s) in &obj.props {
                unreadable(s, &format!("{path}.{name}"), out)
            }
        }
        _ => {}
    }
}

#[test]
fn arbitrary_json_never_breaks_a_tool_or_the_session_and_errors_name_the_field() {
    install_panic_recorder();
    let cases: u32 = std::env::var("TOOL_INPUT_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project_dir = dir.path().join("project");
    std::fs::create_dir_all(&project_dir).unwrap();
    let socket = unique_socket("p");
    let _tmux = TmuxServer(socket.clone());
    let mut config = troupe::Config::for_data_dir(dir.path().join("data"), &socket);
    config.claude_bin = "/nonexistent/claude".into();
    config.troupe_bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_troupe"));
    config.env_controls.max_instances = Some(3);
    config.max_children = 2;
    config.startup_timeout = Duration::from_secs(10);
    config.db_url = rt.block_on(support::fresh_postgres());
    let server = rt
        .block_on(troupe::Server::start(config))
        .expect("server starts");

    let first = rt
        .block_on(Wire::connect(&server.url(), server.token()))
        .expect("MCP session");
    let list = rt
        .block_on(first.request("tools/list", json!({})))
        .expect("tools/list");
    let tools: Vec<(String, Shape)> = list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| {
            let schema = &t["inputSchema"];
            (
                t["name"].as_str().unwrap().to_string(),
                shape_of(schema, schema, 0),
            )
        })
        .collect();
    assert!(tools.len() >= 25, "only {} tools listed", tools.len());
    let mut not_read = Vec::new();
    for (tool, shape) in &tools {
        unreadable(shape, tool, &mut not_read);
    }
    assert!(
        not_read.is_empty(),
        "schemas this test cannot read (teach shape_of): {not_read:?}"
    );

    let shared = Shared {
        base: server.url(),
        token: server.token().to_string(),
        tools: tools.len(),
        tally: Mutex::new(BTreeMap::new()),
        unnamed: Mutex::new(Vec::new()),
    };
    let started = Instant::now();
    // Every tool at once, each on its own session and thread, each deterministic.
    let broken: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = tools
            .iter()
            .map(|(tool, shape)| {
                let (rt, shared, project_dir) = (&rt, &shared, &project_dir);
                scope.spawn(move || {
                    let keys = match shape {
                        Shape::Object(o) => o.props.iter().map(|(k, _)| k.clone()).collect(),
                        _ => Vec::new(),
                    };
                    let ctx = Gen {
                        project_dir: project_dir.display().to_string(),
                        keys,
                    };
                    let strategy = arguments_for(shape, &ctx);
                    let runner = Runner {
                        shared,
                        tool,
                        shape,
                        wire: Mutex::new(None),
                        calls: AtomicU64::new(0),
                    };
                    let mut proptest = TestRunner::new_with_rng(
                        RunnerConfig {
                            cases,
                            failure_persistence: None,
                            max_shrink_iters: 256,
                            ..RunnerConfig::default()
                        },
                        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
                    );
                    let outcome = proptest.run(&strategy, |arguments| {
                        rt.block_on(runner.case(&arguments))
                            .map_err(TestCaseError::fail)
                    });
                    match outcome {
                        Ok(()) => None,
                        Err(TestError::Fail(why, arguments)) => Some(format!(
                            "{tool}: {why}\n    minimal input: {}",
                            clip(&arguments.to_string())
                        )),
                        Err(TestError::Abort(why)) => Some(format!("{tool}: aborted: {why}")),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| {
                h.join()
                    .unwrap_or_else(|_| Some("a runner panicked".into()))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut broken = broken;
    if let Err(e) = rt.block_on(async {
        let list = first.request("tools/list", json!({})).await?;
        match list["result"]["tools"].as_array().map(Vec::len) {
            Some(n) if n == tools.len() => first.health().await,
            _ => Err(format!(
                "the first session no longer lists the tools: {list}"
            )),
        }
    }) {
        broken.push(format!("at the end: {e}"));
    }
    let panics = PANICS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    rt.block_on(server.stop());

    let tally = shared.tally.lock().unwrap();
    for (tool, t) in tally.iter() {
        eprintln!(
            "{tool}: {} cases, {} ok, {} tool errors, {} JSON-RPC errors; schema-breaking \
             input: {} errors naming the field, {} not, {} accepted; {} sessions, slowest {:?}",
            t.cases,
            t.ok,
            t.tool_errors,
            t.rpc_errors,
            t.named,
            t.unnamed,
            t.schema_breaking_accepted,
            t.reconnects,
            t.slowest
        );
        if let Some(example) = &t.accepted_example {
            eprintln!("    schema-breaking input accepted, e.g. {example}");
        }
        for (class, n) in &t.other_errors {
            eprintln!("    ×{n} {}", clip(class));
        }
    }
    let total: usize = tally.values().map(|t| t.cases).sum();
    let total_named: usize = tally.values().map(|t| t.named).sum();
    let total_unnamed: usize = tally.values().map(|t| t.unnamed).sum();
    eprintln!(
        "{total} calls to {} tools in {:.1}s; errors for schema-breaking input naming the field: \
         {total_named}, not naming it: {total_unnamed}",
        tools.len(),
        elapsed.as_secs_f64()
    );

    // Errors that did not name the bad field, grouped by the kind of message, with the
    // fields they were about and the shortest input of each kind.
    let unnamed = shared.unnamed.lock().unwrap().clone();
    let mut groups: BTreeMap<String, (usize, BTreeSet<String>, Unnamed)> = BTreeMap::new();
    for u in unnamed.iter() {
        let entry = groups.entry(message_class(u.kind, &u.message)).or_insert((
            0,
            BTreeSet::new(),
            u.clone(),
        ));
        entry.0 += 1;
        for v in &u.violations {
            entry.1.insert(format!(
                "{}.{}",
                u.tool,
                v.path.split('[').next().unwrap_or("")
            ));
        }
        if u.arguments.to_string().len() < entry.2.arguments.to_string().len() {
            entry.2 = u.clone();
        }
    }
    let mut report = String::new();
    for (class, (count, fields, u)) in &groups {
        let bad: Vec<String> = u
            .violations
            .iter()
            .map(|v| format!("{} ({})", v.path, v.why))
            .collect();
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        report.push_str(&format!(
            "  ×{count} {class}\n    fields: {}\n    e.g. {}({}) breaks {}\n    -> {}\n",
            clip(&fields.join(", ")),
            u.tool,
            clip(&u.arguments.to_string()),
            bad.join(", "),
            u.raw.clone().unwrap_or_else(|| clip(&u.message)),
        ));
    }

    let mut failures = Vec::new();
    if !panics.is_empty() {
        failures.push(format!("panics in the process:\n  {}", panics.join("\n  ")));
    }
    if !broken.is_empty() {
        failures.push(format!(
            "broken calls or sessions:\n  {}",
            broken.join("\n  ")
        ));
    }
    if !groups.is_empty() {
        failures.push(format!(
            "{total_unnamed} errors for input that breaks the tool's inputSchema do not name \
             the field ({} kinds):\n{report}",
            groups.len()
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
