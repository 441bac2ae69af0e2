//! Permission requests from instances in a prompting mode: the rules that decide known
//! requests without asking anyone. No I/O here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Allow and deny lists: each entry a tool name, optionally with a pattern on its input,
/// `Bash(npm test*)`, `Write(src/*)`, `mcp__troupe__spawn_claude`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct Rules {
    /// Requests these match are allowed without asking.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Requests these match are denied without asking (deny wins over allow).
    #[serde(default)]
    pub deny: Vec<String>,
}

/// Read from a JSON object only (serde would take a list for a struct too), so `[]` is an
/// error that names the field.
impl TryFrom<serde_json::Map<String, serde_json::Value>> for Rules {
    type Error = String;

    fn try_from(map: serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let list = |key: &str| -> Result<Vec<String>, String> {
            match map.get(key) {
                None | Some(serde_json::Value::Null) => Ok(Vec::new()),
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|_| format!("{key} must be a list of rules like \"Bash(npm test*)\"")),
            }
        };
        Ok(Rules {
            allow: list("allow")?,
            deny: list("deny")?,
        })
    }
}

/// What became of a permission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }

    /// The state a decided request is stored in.
    pub fn state(self) -> &'static str {
        match self {
            Decision::Allow => "allowed",
            Decision::Deny => "denied",
        }
    }
}

/// A rule that decided a request, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    pub decision: Decision,
    pub rule: String,
}

impl Rules {
    /// Checks every rule for being `Tool` or `Tool(pattern)`, so a typo is refused when the
    /// rule is set, not silently never matched.
    pub fn check(&self) -> Result<(), String> {
        for rule in self.allow.iter().chain(&self.deny) {
            parse_rule(rule)?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// The first rule that decides a request for `tool` with `input`: a deny rule wins over
    /// an allow rule that matches too.
    pub fn decide(&self, tool: &str, input: &serde_json::Value) -> Option<RuleMatch> {
        let hit = |rules: &[String]| {
            rules
                .iter()
                .find(|r| parse_rule(r).is_ok_and(|(t, p)| matches(t, p, tool, input)))
                .cloned()
        };
        if let Some(rule) = hit(&self.deny) {
            return Some(RuleMatch {
                decision: Decision::Deny,
                rule,
            });
        }
        hit(&self.allow).map(|rule| RuleMatch {
            decision: Decision::Allow,
            rule,
        })
    }

    /// These rules followed by `more`'s (an instance's own, then its team's).
    pub fn with(&self, more: &Rules) -> Rules {
        Rules {
            allow: self.allow.iter().chain(&more.allow).cloned().collect(),
            deny: self.deny.iter().chain(&more.deny).cloned().collect(),
        }
    }
}

/// `Bash(npm test*)` → (`Bash`, Some(`npm test*`)); `Read` → (`Read`, None).
fn parse_rule(rule: &str) -> Result<(&str, Option<&str>), String> {
    let rule = rule.trim();
    let (tool, pattern) = match rule.split_once('(') {
        Some((tool, rest)) => {
            let Some(pattern) = rest.strip_suffix(')') else {
                return Err(format!(
                    "rule {rule:?} opens a pattern it does not close; write Tool(pattern), e.g. Bash(npm test*)"
                ));
            };
            (tool.trim(), Some(pattern))
        }
        None => (rule, None),
    };
    let ok = !tool.is_empty()
        && tool
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(format!(
            "rule {rule:?} must start with a tool name (letters, digits, _ and -), e.g. Bash(npm test*) or Read"
        ));
    }
    Ok((tool, pattern))
}

fn matches(rule_tool: &str, pattern: Option<&str>, tool: &str, input: &serde_json::Value) -> bool {
    if rule_tool != tool {
        return false;
    }
    match pattern {
        None => true,
        Some(p) => glob(p, &subject(tool, input)),
    }
}

/// What a rule's pattern is matched against: the command for a shell, the path for a file
/// tool, the address for a fetch, else the input as compact JSON.
pub fn subject(tool: &str, input: &serde_json::Value) -> String {
    let field = match tool {
        "Bash" | "shell" | "exec_command" | "local_shell" => "command",
        "Read" | "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => "file_path",
        "WebFetch" => "url",
        "Glob" | "Grep" => "pattern",
        _ => "",
    };
    match input.get(field) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(parts)) => parts
            .iter()
            .map(|p| {
                p.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| p.to_string())
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => input.to_string(),
    }
}

/// A request in a line for people: `Bash: npm test`.
pub fn describe(tool: &str, input: &serde_json::Value) -> String {
    let mut what = subject(tool, input).replace(['\n', '\r'], " ");
    if what.chars().count() > 200 {
        what = what.chars().take(200).collect::<String>() + "…";
    }
    format!("{tool}: {what}")
}

/// `*` is any run of characters (including none), `?` any one; everything else is itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // The classic two-pointer match with backtracking to the last star: linear in practice,
    // never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_match_as_shells_do() {
        assert!(glob("npm test*", "npm test -- --watch"));
        assert!(glob("npm test*", "npm test"));
        assert!(!glob("npm test*", "npm install"));
        assert!(glob("touch *", "touch made_by_bash.txt"));
        assert!(glob("*.rs", "src/main.rs"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("*", ""));
        assert!(!glob("", "x"));
        // Many stars and a long miss stay quick.
        let long = "a".repeat(5000);
        assert!(!glob("*a*a*a*a*a*b", &long));
    }

    #[test]
    fn rules_decide_known_requests_and_deny_wins() {
        let rules = Rules {
            allow: vec!["Bash(touch *)".into(), "Read".into()],
            deny: vec!["Bash(touch /etc/*)".into()],
        };
        let bash = |c: &str| json!({ "command": c, "description": "x" });
        let hit = rules.decide("Bash", &bash("touch made.txt")).unwrap();
        assert_eq!(hit.decision, Decision::Allow);
        assert_eq!(hit.rule, "Bash(touch *)");
        let hit = rules.decide("Bash", &bash("touch /etc/passwd")).unwrap();
        assert_eq!(hit.decision, Decision::Deny);
        assert_eq!(rules.decide("Bash", &bash("rm -rf /")), None);
        assert_eq!(
            rules
                .decide("Read", &json!({ "file_path": "/x" }))
                .unwrap()
                .decision,
            Decision::Allow
        );
        assert_eq!(rules.decide("Write", &json!({ "file_path": "/x" })), None);
    }

    #[test]
    fn bad_rules_are_refused_with_an_example() {
        assert!(
            Rules {
                allow: vec!["Bash(npm test*".into()],
                deny: vec![]
            }
            .check()
            .is_err()
        );
        assert!(
            Rules {
                allow: vec!["(x)".into()],
                deny: vec![]
            }
            .check()
            .is_err()
        );
        assert!(
            Rules {
                allow: vec!["mcp__troupe__spawn_claude".into()],
                deny: vec![]
            }
            .check()
            .is_ok()
        );
    }

    #[test]
    fn requests_read_in_one_line() {
        assert_eq!(
            describe("Bash", &json!({ "command": "touch a\nb" })),
            "Bash: touch a b"
        );
        assert_eq!(
            describe(
                "Write",
                &json!({ "file_path": "/w/x.txt", "content": "hi" })
            ),
            "Write: /w/x.txt"
        );
        assert_eq!(describe("Other", &json!({ "k": 1 })), "Other: {\"k\":1}");
    }
}
