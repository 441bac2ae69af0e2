//! Permission requests from instances in a prompting mode: the rules that decide known
//! requests without asking anyone. No I/O here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Allow and deny lists: each entry a tool name, optionally with a pattern on its input,
/// `Bash(npm test*)`, `Write(src/*)`, `mcp__troupe__spawn_claude`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Requests these match are allowed without asking.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Requests these match are denied without asking (deny wins over allow).
    #[serde(default)]
    pub deny: Vec<String>,
}
