//! Tool schemas every MCP client can read. schemars writes what Rust's types mean in full JSON
//! Schema 2020-12; several clients map tool schemas onto a smaller dialect (one `type` per
//! schema, JSON Schema's own `format`s only), and reject or drop what does not fit. One
//! transform, applied to every tool's input and output schema when the tools are built, rewrites
//! those spellings into ones that mean the same and that every client reads:
//!
//! - `format`s that schemars invents (`uint`, `int64`, `double`, ...) are taken out; the
//!   `minimum` it writes beside them stays.
//! - An optional input field (not in `required`) loses its `null`: troupe's inputs read a
//!   `null` exactly as an absent field (serde's `Option`), so the plain type says the same and
//!   tells a model to leave the field out.
//! - Any other `"type": [T, "null"]` (output fields are always written, `null` included)
//!   becomes `"anyOf": [{"type": T, ...}, {"type": "null"}]`.

use rmcp::model::JsonObject;
use schemars::Schema;
use schemars::transform::{Transform, transform_subschemas};
use serde_json::Value;

/// Which side of a tool a schema describes: what troupe reads, or what it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Input,
    Output,
}

/// Rewrite one tool schema in place (see the module's text).
pub fn make_portable(schema: &mut JsonObject, side: Side) {
    let mut whole = Schema::from(std::mem::take(schema));
    Portable { side }.transform(&mut whole);
    if let Value::Object(map) = Value::from(whole) {
        *schema = map;
    }
}

/// The transform, as schemars' transforms are written: it rewrites one schema, then every
/// subschema it holds.
#[derive(Debug, Clone, Copy)]
pub struct Portable {
    pub side: Side,
}

impl Transform for Portable {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(object) = schema.as_object_mut() {
            strip_format(object);
            if self.side == Side::Input {
                optional_without_null(object);
            }
            split_type_array(object);
        }
        transform_subschemas(self, schema);
    }
}

/// The `format` values of JSON Schema itself; schemars also writes its own (`uint`, `int64`,
/// `double`, ...), which clients such as Claude Code warn about on every start.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

fn strip_format(schema: &mut JsonObject) {
    if let Some(Value::String(f)) = schema.get("format")
        && !STANDARD_FORMATS.contains(&f.as_str())
    {
        schema.remove("format");
    }
}

/// Keywords that describe a schema without constraining it: they stay where they are when a
/// schema is split into branches.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
];

/// Keywords that apply whatever the value's type: they stay beside the new `anyOf`, as they
/// applied beside the `type` array.
const APPLY_TO_ALL: &[&str] = &[
    "$ref",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "$id",
    "$schema",
    "$defs",
    "definitions",
];

fn is_null_schema(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.len() == 1 && o.get("type") == Some(&Value::from("null")))
}

/// Each property that is not required takes `null` out of what it allows.
fn optional_without_null(object: &mut JsonObject) {
    let required: Vec<String> = match object.get("required") {
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let Some(Value::Object(properties)) = object.get_mut("properties") else {
        return;
    };
    for (name, property) in properties.iter_mut() {
        if required.contains(name) {
            continue;
        }
        let Value::Object(property) = property else {
            continue;
        };
        let mut dropped = false;
        if let Some(Value::Array(types)) = property.get_mut("type") {
            let before = types.len();
            types.retain(|t| t != "null");
            dropped = types.len() < before;
            if let [only] = types.as_slice() {
                let only = only.clone();
                property.insert("type".into(), only);
            }
        }
        if let Some(Value::Array(branches)) = property.get_mut("anyOf")
            && branches.len() > 1
            && branches.iter().any(is_null_schema)
        {
            branches.retain(|b| !is_null_schema(b));
            dropped = true;
            if let [only] = branches.as_slice()
                && let Value::Object(only) = only.clone()
                && only.keys().all(|k| !property.contains_key(k))
            {
                property.remove("anyOf");
                property.extend(only);
            }
        }
        if dropped {
            if let Some(Value::Array(values)) = property.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            if property.get("default") == Some(&Value::Null) {
                property.remove("default");
            }
        }
    }
}

/// `"type": [A, B, ...]` becomes an `anyOf` with one branch per type, each branch carrying the
/// type's own keywords. The result accepts exactly what the array did.
fn split_type_array(object: &mut JsonObject) {
    let Some(Value::Array(types)) = object.get("type") else {
        return;
    };
    let mut types: Vec<Value> = types.clone();
    // An `enum` without null already refused null: the null branch would widen it.
    if let Some(Value::Array(values)) = object.get("enum")
        && !values.iter().any(Value::is_null)
    {
        types.retain(|t| t != "null");
    }
    if let [only] = types.as_slice() {
        object.insert("type".into(), only.clone());
        return;
    }
    object.remove("type");
    let mut specific = JsonObject::new();
    for key in object.keys().cloned().collect::<Vec<_>>() {
        if !ANNOTATIONS.contains(&key.as_str()) && !APPLY_TO_ALL.contains(&key.as_str()) {
            specific.insert(key.clone(), object.remove(&key).unwrap_or_default());
        }
    }
    let branches: Vec<Value> = types
        .into_iter()
        .map(|t| {
            if t == "null" {
                return serde_json::json!({ "type": "null" });
            }
            let mut branch = specific.clone();
            if let Some(Value::Array(values)) = branch.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            branch.insert("type".into(), t);
            Value::Object(branch)
        })
        .collect();
    let split = Value::Array(branches);
    if object.contains_key("anyOf") {
        // Two `anyOf`s must both hold: the new one joins an `allOf`.
        let all = object
            .entry("allOf")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(all) = all {
            all.push(serde_json::json!({ "anyOf": split }));
        }
    } else {
        object.insert("anyOf".into(), split);
    }
}

/// Stored JSON text that the CLI or the caller sent as an object (a tool's input, a call's
/// arguments), as the object its schema promises. Anything else (never seen from the pinned
/// CLIs, but the text is theirs) is kept whole under `value`, so nothing is lost.
pub fn stored_object(text: String) -> JsonObject {
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => object,
        Ok(other) => JsonObject::from_iter([("value".to_string(), other)]),
        Err(_) => JsonObject::from_iter([("value".to_string(), Value::String(text))]),
    }
}

/// Where a schema (or a subschema) says nothing portable: a `type` array, or no keyword that
/// constrains a value at all. Each problem comes as its JSON pointer.
#[cfg(test)]
pub fn portability_problems(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    walk(schema, "", &mut problems);
    problems
}

#[cfg(test)]
fn walk(schema: &Value, at: &str, problems: &mut Vec<String>) {
    let Value::Object(object) = schema else {
        if schema == &Value::Bool(true) {
            problems.push(format!("{at}: accepts anything"));
        }
        return;
    };
    if object.get("type").is_some_and(Value::is_array) {
        problems.push(format!("{at}: type is an array"));
    }
    if object
        .keys()
        .all(|k| ANNOTATIONS.contains(&k.as_str()) || k == "$schema" || k == "$id")
    {
        problems.push(format!("{at}: accepts anything"));
    }
    for (key, value) in object {
        let here = format!("{at}/{key}");
        match key.as_str() {
            "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "additionalProperties"
            | "propertyNames"
            | "items"
                if value.is_object() =>
            {
                walk(value, &here, problems)
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                for (i, v) in value.as_array().into_iter().flatten().enumerate() {
                    walk(v, &format!("{here}/{i}"), problems);
                }
            }
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                for (name, v) in value.as_object().into_iter().flatten() {
                    walk(v, &format!("{here}/{name}"), problems);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn portable(mut v: Value, side: Side) -> Value {
        let Value::Object(map) = &mut v else {
            unreachable!()
        };
        make_portable(map, side);
        v
    }

    #[test]
    fn formats_clients_do_not_know_are_taken_out_and_nothing_else() {
        let schema = portable(
            json!({
                "type": "object",
                "properties": {
                    "lines": { "type": "integer", "format": "uint", "minimum": 0 },
                    "since": { "type": "string", "format": "date-time" },
                    "tasks": { "type": "array", "items": { "$ref": "#/$defs/Task" } },
                    "default": { "type": "integer", "format": "int64" }
                },
                "required": ["lines", "since", "tasks", "default"],
                "$defs": { "Task": { "type": "object", "properties": {
                    "n": { "type": "integer", "format": "uint64" } } } },
                "default": { "format": "uint" }
            }),
            Side::Output,
        );
        let p = &schema["properties"];
        assert!(p["lines"].get("format").is_none());
        assert_eq!(p["lines"]["minimum"], 0);
        assert_eq!(p["since"]["format"], "date-time");
        assert!(
            p["default"].get("format").is_none(),
            "a property named default"
        );
        assert!(
            schema["$defs"]["Task"]["properties"]["n"]
                .get("format")
                .is_none()
        );
        assert_eq!(schema["default"]["format"], "uint", "data is left alone");
    }

    #[test]
    fn an_output_null_becomes_its_own_branch() {
        let schema = portable(
            json!({
                "type": "object",
                "properties": {
                    "reason": { "description": "Why.", "type": ["string", "null"], "minLength": 1 },
                    "count": { "type": ["integer", "null"], "format": "uint32", "minimum": 0 },
                    "state": { "type": ["string", "null"], "enum": ["a", "b", null] }
                },
                "required": ["reason", "count", "state"]
            }),
            Side::Output,
        );
        let p = &schema["properties"];
        assert_eq!(
            p["reason"],
            json!({ "description": "Why.", "anyOf": [
                { "type": "string", "minLength": 1 }, { "type": "null" } ] })
        );
        assert_eq!(
            p["count"],
            json!({ "anyOf": [ { "type": "integer", "minimum": 0 }, { "type": "null" } ] })
        );
        assert_eq!(
            p["state"],
            json!({ "anyOf": [ { "type": "string", "enum": ["a", "b"] }, { "type": "null" } ] })
        );
        assert!(portability_problems(&schema).is_empty());
    }

    #[test]
    fn an_optional_input_leaves_null_out_and_a_required_one_keeps_it() {
        let schema = portable(
            json!({
                "type": "object",
                "properties": {
                    "model": { "type": ["string", "null"], "default": null },
                    "role": { "anyOf": [ { "$ref": "#/$defs/Role" }, { "type": "null" } ],
                              "description": "The role." },
                    "wait": { "type": ["boolean", "null"] },
                    "parent": { "type": ["string", "null"] }
                },
                "required": ["parent"],
                "$defs": { "Role": { "type": "string", "enum": ["dev", "test"] } }
            }),
            Side::Input,
        );
        let p = &schema["properties"];
        assert_eq!(p["model"], json!({ "type": "string" }));
        assert_eq!(
            p["role"],
            json!({ "$ref": "#/$defs/Role", "description": "The role." })
        );
        assert_eq!(p["wait"], json!({ "type": "boolean" }));
        assert_eq!(
            p["parent"],
            json!({ "anyOf": [ { "type": "string" }, { "type": "null" } ] })
        );
        assert!(portability_problems(&schema).is_empty());
    }

    #[test]
    fn nested_schemas_and_existing_any_ofs_are_handled() {
        let schema = portable(
            json!({
                "type": "object",
                "properties": {
                    "list": { "type": ["array", "null"],
                              "items": { "type": ["number", "null"], "format": "double" } },
                    "either": { "type": ["string", "null"],
                                "anyOf": [ { "minLength": 2 }, { "maxLength": 0 } ] },
                    "closed": { "type": ["string", "null"], "enum": ["x"] }
                },
                "required": ["list", "either", "closed"]
            }),
            Side::Output,
        );
        let p = &schema["properties"];
        assert_eq!(
            p["list"],
            json!({ "anyOf": [
                { "type": "array", "items": { "anyOf": [ { "type": "number" }, { "type": "null" } ] } },
                { "type": "null" } ] })
        );
        assert_eq!(
            p["either"],
            json!({ "anyOf": [ { "minLength": 2 }, { "maxLength": 0 } ],
                    "allOf": [ { "anyOf": [ { "type": "string" }, { "type": "null" } ] } ] })
        );
        assert_eq!(
            p["closed"],
            json!({ "type": "string", "enum": ["x"] }),
            "null was never allowed"
        );
    }

    #[test]
    fn stored_text_comes_back_as_an_object_and_whole() {
        assert_eq!(
            Value::Object(stored_object(r#"{"command":"ls"}"#.into())),
            json!({ "command": "ls" })
        );
        assert_eq!(
            Value::Object(stored_object("[1,2]".into())),
            json!({ "value": [1, 2] })
        );
        assert_eq!(
            Value::Object(stored_object("not json".into())),
            json!({ "value": "not json" })
        );
    }

    #[test]
    fn problems_are_found_where_they_are() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": { "type": ["string", "null"] },
                "b": { "description": "Anything." },
                "c": true
            },
            "$defs": { "D": { "type": "object", "additionalProperties": true } }
        });
        assert_eq!(
            portability_problems(&schema),
            vec![
                "/properties/a: type is an array",
                "/properties/b: accepts anything",
                "/properties/c: accepts anything"
            ]
        );
    }
}
