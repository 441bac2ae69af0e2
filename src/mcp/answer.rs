//! Tool results for two readers: `structuredContent` keeps the JSON for programs, and the text
//! content is written for the person reading the client's TUI: the answer first, line breaks
//! as line breaks, fields as `name: value`, lists as lists. rmcp's own `Json<T>` puts the JSON
//! text there, where every `\n` of an answer shows as a backslash and an n.
//!
//! The type is called `Json` because rmcp's `#[tool]` macro declares a tool's output schema
//! from a return type of that name.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::OnceCell;

pub struct Json<T>(pub T);

impl<T: JsonSchema> JsonSchema for Json<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

impl<T: Serialize + JsonSchema + 'static> IntoCallToolResult for Json<T> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        let value = serde_json::to_value(self.0).map_err(|e| {
            rmcp::ErrorData::internal_error(format!("cannot serialize the result: {e}"), None)
        })?;
        // Not `CallToolResult::structured`: it renders the JSON as text only to be replaced.
        let mut result = CallToolResult::success(vec![ContentBlock::text(readable(&value))]);
        result.structured_content = Some(value);
        Ok(result.into())
    }
}

impl<T: Serialize + JsonSchema + 'static> Json<T> {
    /// The tool result, built once to be handed out again (see [`Kept`]).
    pub fn rendered(self) -> Result<Rendered, String> {
        let value = serde_json::to_value(self.0)
            .map_err(|e| format!("cannot serialize the result: {e}"))?;
        let mut result = CallToolResult::success(vec![ContentBlock::text(readable(&value))]);
        result.structured_content = Some(value);
        Ok(Rendered(Arc::new(result)))
    }
}

/// A tool result already built: answering with it again costs a copy, not a rendering. Its
/// tool declares its output schema itself (`output_schema = ...`), as `Json<T>` would.
#[derive(Clone)]
pub struct Rendered(Arc<CallToolResult>);

impl IntoCallToolResult for Rendered {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        Ok(Arc::unwrap_or_clone(self.0).into())
    }
}

/// The last few results of a read-only tool, each under the key of what it was made from
/// (the state of the rows it read, the caller, the arguments): dozens of clients listing
/// hundreds of instances at once would otherwise each render the same answer.
pub struct Kept<K> {
    slots: Mutex<VecDeque<(K, Rendered)>>,
    /// Answers being rendered. Callers asking for one meanwhile wait for that rendering and
    /// are all woken when it is done: a lock handed from waiter to waiter served the last of
    /// 64 callers only after 63 hand-overs, each behind other work on the runtime.
    rendering: Mutex<Vec<(K, Arc<OnceCell<Rendered>>)>>,
}

/// How many results a [`Kept`] holds (the person's, and a few instances' of their subtrees).
const KEPT: usize = 8;

impl<K> Default for Kept<K> {
    fn default() -> Self {
        Kept {
            slots: Mutex::new(VecDeque::new()),
            rendering: Mutex::new(Vec::new()),
        }
    }
}

impl<K: PartialEq + Clone> Kept<K> {
    /// The answer kept under `key`, or the one `render` makes: rendered once however many
    /// callers ask for it at the same time. A failed rendering is not kept; the callers
    /// waiting for it render again.
    pub async fn get_or_render<F, Fut>(&self, key: K, render: F) -> Result<Rendered, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Rendered, String>>,
    {
        let cell = {
            // Lock order: rendering, then slots.
            let mut rendering = self.rendering.lock().expect("renderings poisoned");
            if let Some(kept) = self.get(&key) {
                return Ok(kept);
            }
            match rendering.iter().find(|(k, _)| *k == key) {
                Some((_, cell)) => cell.clone(),
                None => {
                    // A rendering whose callers all went away (a client that hung up) leaves
                    // a cell no one holds.
                    rendering.retain(|(_, c)| Arc::strong_count(c) > 1);
                    let cell = Arc::new(OnceCell::new());
                    rendering.push((key.clone(), cell.clone()));
                    cell
                }
            }
        };
        let result = cell.get_or_try_init(render).await.cloned();
        let mut rendering = self.rendering.lock().expect("renderings poisoned");
        if let Some(i) = rendering
            .iter()
            .position(|(k, c)| *k == key && Arc::ptr_eq(c, &cell))
        {
            rendering.swap_remove(i);
            if let Ok(answer) = &result {
                self.keep(key, answer.clone());
            }
        }
        result
    }

    fn get(&self, key: &K) -> Option<Rendered> {
        let slots = self.slots.lock().expect("kept results poisoned");
        slots.iter().find(|(k, _)| k == key).map(|(_, r)| r.clone())
    }

    fn keep(&self, key: K, result: Rendered) {
        let mut slots = self.slots.lock().expect("kept results poisoned");
        slots.retain(|(k, _)| *k != key);
        if slots.len() == KEPT {
            slots.pop_front();
        }
        slots.push_back((key, result));
    }
}

/// Fields that are the answer itself, shown first and as they are.
const LEADS: &[&str] = &["response", "text", "answer"];

/// The value as a person reads it.
pub fn readable(value: &Value) -> String {
    let mut out = String::new();
    if let Value::Object(map) = value {
        for key in LEADS {
            if let Some(Value::String(lead)) = map.get(*key)
                && !lead.is_empty()
            {
                out.push_str(lead.trim_end());
                out.push_str("\n\n");
            }
        }
        fields(map, 0, &mut out);
    } else {
        item(value, 0, &mut out);
    }
    out.truncate(out.trim_end().len());
    out
}

fn fields(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (key, value) in map {
        let shown_first = indent == 0
            && LEADS.contains(&key.as_str())
            && value.as_str().is_some_and(|s| !s.is_empty());
        // Nothing to read: left out rather than shown empty.
        if shown_first || value.is_null() || value.as_str() == Some("") {
            continue;
        }
        match value {
            Value::Object(inner) if inner.is_empty() => {}
            Value::Object(inner) => {
                line_start(out, indent, key);
                out.push('\n');
                fields(inner, indent + 1, out);
            }
            Value::Array(items) if items.is_empty() => {
                line_start(out, indent, key);
                out.push_str(" none\n");
            }
            Value::Array(items) if items.iter().all(is_scalar) => {
                line_start(out, indent, key);
                out.push(' ');
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    scalar(it, out);
                }
                out.push('\n');
            }
            Value::Array(items) => {
                line_start(out, indent, key);
                out.push('\n');
                for it in items {
                    item(it, indent + 1, out);
                }
            }
            Value::String(s) if s.contains('\n') => {
                line_start(out, indent, key);
                out.push('\n');
                lines(s, indent + 1, out);
            }
            other => {
                line_start(out, indent, key);
                out.push(' ');
                scalar(other, out);
                out.push('\n');
            }
        }
    }
}

/// `{pad}{key}:`; written in place because a list of hundreds of instances has thousands.
fn line_start(out: &mut String, indent: usize, key: &str) {
    pad(out, indent);
    out.push_str(key);
    out.push(':');
}

fn pad(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push_str("  ");
    }
}

/// A multi-line text, each line indented.
fn lines(s: &str, indent: usize, out: &mut String) {
    for line in s.trim_end().lines() {
        pad(out, indent);
        out.push_str(line);
        out.push('\n');
    }
}

/// One element of a list: `- ` and its fields beneath.
fn item(value: &Value, indent: usize, out: &mut String) {
    pad(out, indent);
    if let Value::Object(map) = value
        && instance_line(map, out)
    {
        return;
    }
    match value {
        Value::Object(map) => {
            out.push_str("- ");
            // The first field goes on the dash's line: write the fields, then take back the
            // indentation they began with.
            let begin = out.len();
            fields(map, indent + 1, out);
            let lead = out[begin..].len() - out[begin..].trim_start().len();
            out.replace_range(begin..begin + lead, "");
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        Value::String(s) if s.contains('\n') => {
            out.push_str("-\n");
            lines(s, indent + 1, out);
        }
        other => {
            out.push_str("- ");
            scalar(other, out);
            out.push('\n');
        }
    }
}

/// An instance as a listing shows it (only plain fields, with an id, a name and a state):
/// one line, `- id name: state (why) · role · model · agent · parent · host · workdir`. A
/// list of hundreds stays readable; every field is still in the structured result.
fn instance_line(map: &serde_json::Map<String, Value>, out: &mut String) -> bool {
    let text = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (Some(id), Some(name), Some(state)) = (text("instance_id"), text("name"), text("state"))
    else {
        return false;
    };
    if map.values().any(|v| v.is_object() || v.is_array()) {
        return false;
    }
    out.push_str("- ");
    out.push_str(id);
    out.push(' ');
    out.push_str(name);
    out.push_str(": ");
    out.push_str(state);
    if let Some(why) = text("state_reason") {
        out.push_str(" (");
        out.push_str(why);
        out.push(')');
    }
    for (key, label) in [
        ("role", ""),
        ("model", ""),
        ("agent", ""),
        ("parent_instance_id", "parent "),
        ("host", "host "),
        ("workdir", ""),
    ] {
        if let Some(v) = text(key) {
            out.push_str(" · ");
            out.push_str(label);
            out.push_str(v);
        }
    }
    out.push('\n');
    true
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
        && !v.as_str().is_some_and(|s| s.contains('\n'))
}

fn scalar(v: &Value, out: &mut String) {
    use std::fmt::Write;
    match v {
        Value::String(s) => out.push_str(s),
        Value::Null => out.push('-'),
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text_of(r: &Rendered) -> String {
        r.0.content[0].as_text().expect("text").text.clone()
    }

    #[derive(Serialize, JsonSchema)]
    struct Answer {
        text: String,
    }

    fn answer(text: &str) -> Result<Rendered, String> {
        Json(Answer { text: text.into() }).rendered()
    }

    #[test]
    fn a_kept_result_is_found_by_its_whole_key_and_the_oldest_goes_first() {
        let kept: Kept<(u64, Option<String>)> = Kept::default();
        let make = |t: &str| answer(t).unwrap();
        kept.keep((1, None), make("all at 1"));
        kept.keep((1, Some("a".into())), make("a's at 1"));
        assert_eq!(text_of(&kept.get(&(1, None)).unwrap()), "all at 1");
        assert_eq!(
            text_of(&kept.get(&(1, Some("a".into()))).unwrap()),
            "a's at 1"
        );
        // Another state of the rows, or another caller: not the same answer.
        assert!(kept.get(&(2, None)).is_none());
        assert!(kept.get(&(1, Some("b".into()))).is_none());
        // Kept again under the same key: replaced, not doubled.
        kept.keep((1, None), make("all at 1, again"));
        assert_eq!(text_of(&kept.get(&(1, None)).unwrap()), "all at 1, again");
        for v in 2..=(KEPT as u64) {
            kept.keep((v, None), make("later"));
        }
        // Eight held: the caller "a" at 1 was the oldest and is gone.
        assert!(kept.get(&(1, Some("a".into()))).is_none());
        assert!(kept.get(&(1, None)).is_some());
        let r = kept.get(&(2, None)).unwrap();
        let CallToolResponse::Complete(result) = r.into_call_tool_result().unwrap() else {
            panic!("a complete result");
        };
        assert_eq!(result.structured_content, Some(json!({ "text": "later" })));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_arriving_together_share_one_rendering() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let kept: Arc<Kept<u64>> = Arc::default();
        let renders = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let (kept, renders, mut released) =
                    (kept.clone(), renders.clone(), released.clone());
                tokio::spawn(async move {
                    kept.get_or_render(7, async || {
                        renders.fetch_add(1, Ordering::SeqCst);
                        // Held until every caller has asked.
                        released.wait_for(|r| *r).await.map_err(|e| e.to_string())?;
                        answer("at 7")
                    })
                    .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for c in callers {
            assert_eq!(text_of(&c.await.unwrap().unwrap()), "at 7");
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        // Kept: a later caller is answered without a rendering.
        let again = kept
            .get_or_render(7, async || Err("not rendered again".to_string()))
            .await;
        assert_eq!(text_of(&again.unwrap()), "at 7");
        // Another key is its own rendering.
        let other = kept.get_or_render(8, async || answer("at 8")).await;
        assert_eq!(text_of(&other.unwrap()), "at 8");
    }

    #[tokio::test]
    async fn a_failed_rendering_is_not_kept() {
        let kept: Kept<u64> = Kept::default();
        let failed = kept
            .get_or_render(1, async || Err("the database is away".to_string()))
            .await;
        assert_eq!(failed.err().as_deref(), Some("the database is away"));
        let next = kept.get_or_render(1, async || answer("back")).await;
        assert_eq!(text_of(&next.unwrap()), "back");
        assert!(kept.rendering.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_rendering_whose_callers_went_away_is_not_left_behind() {
        let kept: Kept<u64> = Kept::default();
        let hung_up = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            kept.get_or_render(1, async || std::future::pending().await),
        )
        .await;
        assert!(hung_up.is_err());
        assert_eq!(kept.rendering.lock().unwrap().len(), 1);
        let next = kept.get_or_render(2, async || answer("at 2")).await;
        assert_eq!(text_of(&next.unwrap()), "at 2");
        assert!(kept.rendering.lock().unwrap().is_empty());
    }

    #[test]
    fn the_answer_comes_first_with_its_line_breaks() {
        let v = json!({
            "message_id": "msg-1",
            "response": "line one\nline two",
            "status": "answered",
            "finished_at": null
        });
        let text = readable(&v);
        assert!(text.starts_with("line one\nline two\n\n"), "{text}");
        assert!(text.contains("message_id: msg-1\n"), "{text}");
        assert!(text.contains("status: answered"), "{text}");
        assert!(!text.contains("finished_at"), "nulls are left out: {text}");
        assert!(!text.contains("\\n"), "{text}");
        assert_eq!(text.matches("line one").count(), 1, "shown once: {text}");
    }

    #[test]
    fn lists_and_nested_fields_read_as_lists() {
        let v = json!({
            "count": 2,
            "instances": [
                { "instance_id": "dev-1", "state": "idle", "usage": { "cost_micros": 5 } },
                { "instance_id": "qa-2", "state": "busy" }
            ],
            "ids": ["a", "b"],
            "none": []
        });
        let text = readable(&v);
        assert!(text.contains("instances:\n  - instance_id: dev-1\n    state: idle\n    usage:\n      cost_micros: 5\n  - instance_id: qa-2\n"), "{text}");
        assert!(text.contains("ids: a, b"), "{text}");
        assert!(text.contains("none: none"), "{text}");
    }

    #[test]
    fn a_listed_instance_reads_as_one_line() {
        let v = json!({
            "count": 2,
            "instances": [
                { "instance_id": "dev-1a2b", "name": "api", "agent": "claude",
                  "role": "developer", "model": "claude-sonnet-5-5", "state": "idle",
                  "state_reason": "turn finished", "parent_instance_id": null,
                  "workdir": "/w/api", "host": "h1", "tmux_session": "troupe_dev-1a2b" },
                { "instance_id": "qa-3c4d", "name": "qa", "agent": "codex", "role": "tester",
                  "model": "gpt-5", "state": "busy", "state_reason": "",
                  "parent_instance_id": "dev-1a2b", "workdir": "/w/api", "host": "h1" }
            ]
        });
        let text = readable(&v);
        assert!(
            text.contains(
                "instances:\n  - dev-1a2b api: idle (turn finished) · developer · \
                 claude-sonnet-5-5 · claude · host h1 · /w/api\n  - qa-3c4d qa: busy · tester · \
                 gpt-5 · codex · parent dev-1a2b · host h1 · /w/api"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_tree_shows_as_drawn() {
        let v =
            json!({ "text": "main-1\n├── a-2\n└── b-3", "roots": [{ "instance_id": "main-1" }] });
        assert!(readable(&v).starts_with("main-1\n├── a-2\n└── b-3\n\n"));
    }
}
