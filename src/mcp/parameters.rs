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

impl<S, P: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Parameters<P> {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, McpError> {
        let arguments = Value::Object(context.arguments.take().unwrap_or_default());
        serde_path_to_error::deserialize(arguments)
            .map(Parameters)
            // rmcp turns errors with this prefix into a tool error (isError), as before.
            .map_err(|e| {
                McpError::invalid_params(format!("failed to deserialize parameters: {e}"), None)
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
