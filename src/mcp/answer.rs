//! Tool results for two readers: `structuredContent` keeps the JSON for programs, and the text
//! content is written for the person reading the client's TUI: the answer first, line breaks
//! as line breaks, fields as `name: value`, lists as lists. rmcp's own `Json<T>` puts the JSON
//! text there, where every `\n` of an answer shows as a backslash and an n.
//!
//! The type is called `Json` because rmcp's `#[tool]` macro declares a tool's output schema
//! from a return type of that name.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

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
    /// The tool result, built once to be handed out again (see [`crate::kept::Kept`]).
    pub fn rendered(self) -> Result<Rendered, String> {
        let value = serde_json::to_value(self.0)
            .map_err(|e| format!("cannot serialize the result: {e}"))?;
        let mut result = CallToolResult::success(vec![ContentBlock::text(readable(&value))]);
        result.structured_content = Some(value);
        Ok(Rendered(Arc::new(result)))
    }
}

/// A tool result already built: answering with it again costs a copy, not a rendering (see
/// [`crate::kept::Kept`]). Its tool declares its output schema itself (`output_schema =
/// ...`), as `Json<T>` would.
#[derive(Clone)]
pub struct Rendered(Arc<CallToolResult>);

impl IntoCallToolResult for Rendered {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        Ok(Arc::unwrap_or_clone(self.0).into())
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

    #[derive(Serialize, JsonSchema)]
    struct Answer {
        text: String,
    }

    #[test]
    fn a_rendered_result_is_handed_out_whole_each_time() {
        let rendered = Json(Answer {
            text: "at 7".into(),
        })
        .rendered()
        .unwrap();
        for _ in 0..2 {
            let CallToolResponse::Complete(result) =
                rendered.clone().into_call_tool_result().unwrap()
            else {
                panic!("a complete result");
            };
            assert_eq!(result.structured_content, Some(json!({ "text": "at 7" })));
            assert_eq!(result.content[0].as_text().expect("text").text, "at 7");
        }
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
