//! Tool arguments whose errors name the field: rmcp's own `Parameters<T>` deserializes with
//! `serde_json::from_value`, whose errors ("invalid type: string \"x\", expected u64") do
//! not say where. The type is called `Parameters` because rmcp's `#[tool]` macro takes a
//! tool's input schema from the argument of that name.

use rmcp::ErrorData as McpError;
use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolRequestParams, CustomRequest, CustomResult, ErrorCode};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub struct Parameters<P>(pub P);

impl<P: JsonSchema> JsonSchema for Parameters<P> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        P::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        P::json_schema(generator)
    }
}

/// Argument names the seed's clients use, and troupe's name for each. Every tool call, over
/// HTTP or through `troupe stdio` (which forwards to HTTP), is read through this one table.
pub const ALIASES: &[(&str, &str)] = &[("parent_id", "parent_instance_id")];

/// Renames aliased keys to troupe's names, and drops keys whose value is `null`, in the
/// arguments and in the objects of their lists (spawn_multiple_instances' entries). A key
/// given under both names keeps troupe's. A `null` reads as the key left out: the tool
/// schemas give an optional field its plain type without `null` (src/mcp/schema.rs), and a
/// client or model that sends `null` all the same gets the default, for every field alike (a
/// required field then says it is missing). Returns each renamed key's path as troupe names
/// it and as the caller wrote it, so an error about it can use the caller's words.
pub fn normalise(arguments: &mut serde_json::Map<String, Value>) -> Vec<(String, String)> {
    let mut renamed = Vec::new();
    rename(arguments, "", &mut renamed);
    renamed
}

fn rename(
    arguments: &mut serde_json::Map<String, Value>,
    at: &str,
    renamed: &mut Vec<(String, String)>,
) {
    arguments.retain(|_, v| !v.is_null());
    for (alias, name) in ALIASES {
        if let Some(v) = arguments.remove(*alias)
            && !arguments.contains_key(*name)
        {
            arguments.insert(name.to_string(), v);
            renamed.push((format!("{at}{name}"), format!("{at}{alias}")));
        }
    }
    for (key, v) in arguments.iter_mut() {
        if let Value::Array(items) = v {
            for (i, item) in items.iter_mut().enumerate() {
                if let Value::Object(inner) = item {
                    rename(inner, &format!("{at}{key}[{i}]."), renamed);
                }
            }
        }
    }
}

/// A deserialization error's path in the caller's words.
fn callers_path(path: String, renamed: &[(String, String)]) -> String {
    for (ours, theirs) in renamed {
        if let Some(rest) = path.strip_prefix(ours.as_str())
            && (rest.is_empty() || rest.starts_with(['.', '[']))
        {
            return format!("{theirs}{rest}");
        }
    }
    path
}

impl<S, P: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Parameters<P> {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, McpError> {
        let mut arguments = context.arguments.take().unwrap_or_default();
        let renamed = normalise(&mut arguments);
        let arguments = Value::Object(arguments);
        serde_path_to_error::deserialize(arguments)
            .map(Parameters)
            // rmcp turns errors with this prefix into a tool error (isError), as before.
            .map_err(|e| {
                let path = callers_path(e.path().to_string(), &renamed);
                let e = e.into_inner();
                let said = if path == "." {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                };
                McpError::invalid_params(format!("failed to deserialize parameters: {said}"), None)
            })
    }
}

/// The answer to a request rmcp could not read as any method it knows.
pub fn custom_request(request: CustomRequest) -> Result<CustomResult, McpError> {
    if request.method == "tools/call" {
        let params = request.params.unwrap_or(Value::Null);
        let why = match serde_path_to_error::deserialize::<_, CallToolRequestParams>(params) {
            Err(e) => e.to_string(),
            Ok(_) => "unreadable params".to_string(),
        };
        return Err(McpError::invalid_params(format!("tools/call: {why}"), None));
    }
    Err(McpError::new(
        ErrorCode::METHOD_NOT_FOUND,
        request.method,
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_seed_argument_names_are_read_as_troupe_names() {
        let mut args = json!({ "parent_id": "a-1", "instances": [{ "parent_id": "b-2" }, 3] })
            .as_object()
            .cloned()
            .unwrap();
        let renamed = normalise(&mut args);
        assert_eq!(
            callers_path("instances[0].parent_instance_id".into(), &renamed),
            "instances[0].parent_id"
        );
        assert_eq!(
            callers_path("parent_instance_id_x".into(), &renamed),
            "parent_instance_id_x"
        );
        assert_eq!(
            Value::Object(args),
            json!({ "parent_instance_id": "a-1", "instances": [{ "parent_instance_id": "b-2" }, 3] })
        );
        let mut both = json!({ "parent_id": "x", "parent_instance_id": "y" })
            .as_object()
            .cloned()
            .unwrap();
        normalise(&mut both);
        assert_eq!(Value::Object(both), json!({ "parent_instance_id": "y" }));
    }

    #[test]
    fn a_null_is_a_key_left_out() {
        let mut args = json!({ "model": null, "parent_id": null, "parent_instance_id": "p",
                               "instances": [{ "role": "dev", "name": null }],
                               "default_models": { "dev": null } })
        .as_object()
        .cloned()
        .unwrap();
        let renamed = normalise(&mut args);
        assert!(renamed.is_empty(), "a null alias renames nothing");
        assert_eq!(
            Value::Object(args),
            json!({ "parent_instance_id": "p", "instances": [{ "role": "dev" }],
                    "default_models": { "dev": null } }),
            "a map's values are data: a null there is refused by the field, naming it"
        );
    }
}
