//! troupe's controls (limits, budgets, allowed models, approval, notifications) and where each
//! value comes from. Four layers, the later winning: troupe's defaults; the config file's
//! `[orchestration]` table; the environment (the seed's names, `MAX_INSTANCES`, and their
//! `TROUPE_*` forms) and `serve`'s flags; and what was set in the conversation through
//! `configure_orchestration`, kept in the database so it survives restarts. The rules here do
//! no I/O: the layers are read by the caller and handed in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One layer: every control it sets (None: it leaves that control to the layers below).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Whether instances may be spawned and sent work at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Tools that need the person's approval before they run (e.g. ["spawn_claude",
    /// "terminate_instance"]). `true` in the config file means every spawning tool.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "tools_or_bool"
    )]
    pub require_approval: Option<Vec<String>>,
    /// Most instances alive at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// Most dollars all instances together may cost since the server started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_session_cost: Option<f64>,
    /// Most dollars all instances together may cost in any hour (the last 60 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_per_hour: Option<f64>,
    /// The only models instances may run (as asked for: "haiku", "sonnet-4", "gpt-5", or a
    /// full id); empty or unset: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
    /// Models to use, in order of preference, when a spawn names none and its role's own
    /// model is not among them (the seed's PREFERRED_MODELS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_models: Option<Vec<String>>,
    /// The model per role when a spawn names none ("*": every role; the seed's
    /// DEFAULT_MODEL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_models: Option<BTreeMap<String, String>>,
    /// Seconds an instance may sit idle before troupe suspends it (its conversation is kept:
    /// the next message resumes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_terminate_after: Option<u64>,
    /// What the orchestrating session is told about as it happens: spawn, terminate, error,
    /// cost_threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_on: Option<Vec<String>>,
}

/// The tools that start instances: what `require_approval = true` stands for.
pub const SPAWNING_TOOLS: &[&str] = &["spawn_claude", "spawn_codex", "spawn_multiple_instances"];

/// Every control's name, as `Layer` spells its fields (and the settings table its keys).
pub const CONTROLS: &[&str] = &[
    "enabled",
    "require_approval",
    "max_instances",
    "max_session_cost",
    "max_cost_per_hour",
    "allowed_models",
    "preferred_models",
    "default_models",
    "auto_terminate_after",
    "notify_on",
];

/// The kinds `notify_on` takes.
pub const NOTIFY_KINDS: &[&str] = &["spawn", "terminate", "error", "cost_threshold"];

fn tools_or_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ToolsOrBool {
        Bool(bool),
        Tools(Vec<String>),
    }
    Ok(match Option::<ToolsOrBool>::deserialize(d)? {
        None => None,
        Some(ToolsOrBool::Bool(true)) => {
            Some(SPAWNING_TOOLS.iter().map(|t| t.to_string()).collect())
        }
        Some(ToolsOrBool::Bool(false)) => Some(Vec::new()),
        Some(ToolsOrBool::Tools(t)) => Some(t),
    })
}

/// Where a value came from, for the answer that shows the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Default,
    ConfigFile,
    Environment,
    Conversation,
}

/// Every control with its effective value and its source.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Settings {
    pub enabled: Sourced<bool>,
    pub require_approval: Sourced<Vec<String>>,
    pub max_instances: Sourced<u32>,
    pub max_session_cost: Sourced<Option<f64>>,
    pub max_cost_per_hour: Sourced<Option<f64>>,
    pub allowed_models: Sourced<Vec<String>>,
    pub preferred_models: Sourced<Vec<String>>,
    pub default_models: Sourced<BTreeMap<String, String>>,
    pub auto_terminate_after: Sourced<Option<u64>>,
    pub notify_on: Sourced<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

pub const DEFAULT_MAX_INSTANCES: u32 = 50;

impl Settings {
    /// The layers folded: conversation over environment over config file over defaults.
    pub fn resolve(file: &Layer, env: &Layer, conversation: &Layer) -> Settings {
        fn pick<T: Clone>(layers: [(&Option<T>, Source); 3], default: T) -> Sourced<T> {
            for (v, source) in layers.into_iter().rev() {
                if let Some(v) = v {
                    return Sourced {
                        value: v.clone(),
                        source,
                    };
                }
            }
            Sourced {
                value: default,
                source: Source::Default,
            }
        }
        fn pick_opt<T: Clone>(layers: [(&Option<T>, Source); 3]) -> Sourced<Option<T>> {
            for (v, source) in layers.into_iter().rev() {
                if v.is_some() {
                    return Sourced {
                        value: v.clone(),
                        source,
                    };
                }
            }
            Sourced {
                value: None,
                source: Source::Default,
            }
        }
        macro_rules! layers {
            ($f:ident) => {
                [
                    (&file.$f, Source::ConfigFile),
                    (&env.$f, Source::Environment),
                    (&conversation.$f, Source::Conversation),
                ]
            };
        }
        Settings {
            enabled: pick(layers!(enabled), true),
            require_approval: pick(layers!(require_approval), Vec::new()),
            max_instances: pick(layers!(max_instances), DEFAULT_MAX_INSTANCES),
            max_session_cost: pick_opt(layers!(max_session_cost)),
            max_cost_per_hour: pick_opt(layers!(max_cost_per_hour)),
            allowed_models: pick(layers!(allowed_models), Vec::new()),
            preferred_models: pick(layers!(preferred_models), Vec::new()),
            default_models: pick(layers!(default_models), BTreeMap::new()),
            auto_terminate_after: pick_opt(layers!(auto_terminate_after)),
            notify_on: pick(layers!(notify_on), Vec::new()),
        }
    }

    /// Whether `tool` needs the person's approval.
    pub fn needs_approval(&self, tool: &str) -> bool {
        self.require_approval.value.iter().any(|t| t == tool)
    }

    pub fn notifies(&self, kind: &str) -> bool {
        self.notify_on.value.iter().any(|k| k == kind)
    }

    /// Whether `model` (as asked for, and as the CLI will be told) may run: an allowed entry
    /// names it, or names a family it is part of (`haiku` allows `claude-haiku-4-5`,
    /// `sonnet-4` allows `claude-sonnet-4-5`, `gpt-5` allows `gpt-5-mini`, but not `gpt-50`).
    pub fn model_allowed(&self, requested: &str, cli_model: &str) -> bool {
        let allowed = &self.allowed_models.value;
        let part_of = |m: &str, a: &str| {
            m == a
                || m.starts_with(&format!("{a}-"))
                || m.contains(&format!("-{a}-"))
                || m.ends_with(&format!("-{a}"))
        };
        allowed.is_empty()
            || allowed.iter().any(|a| {
                let a = a.trim().to_ascii_lowercase();
                [requested, cli_model]
                    .iter()
                    .any(|m| part_of(&m.trim().to_ascii_lowercase(), &a))
            })
    }

    /// The model a spawn runs when it names none: the role's default from the settings, else
    /// the role's own model if it is preferred (or nothing is), else the first preferred model
    /// the agent can run (`fits`).
    pub fn default_model(
        &self,
        role: &str,
        role_model: &str,
        fits: impl Fn(&str) -> bool,
    ) -> String {
        let defaults = &self.default_models.value;
        if let Some(m) = defaults
            .get(role)
            .or_else(|| defaults.get("*"))
            .filter(|m| fits(m))
        {
            return m.clone();
        }
        let preferred = &self.preferred_models.value;
        if preferred.is_empty() || preferred.iter().any(|p| p == role_model) {
            return role_model.to_string();
        }
        preferred
            .iter()
            .find(|p| fits(p))
            .cloned()
            .unwrap_or_else(|| role_model.to_string())
    }
}

impl Layer {
    /// Checks what a layer says before it is used: names of tools and notification kinds,
    /// numbers in range.
    pub fn check(&self, tools: &[&str]) -> Result<(), String> {
        for t in self.require_approval.iter().flatten() {
            if !tools.contains(&t.as_str()) {
                return Err(format!(
                    "require_approval: {t:?} is not one of troupe's tools (e.g. spawn_claude, \
                     terminate_instance)"
                ));
            }
        }
        for k in self.notify_on.iter().flatten() {
            if !NOTIFY_KINDS.contains(&k.as_str()) {
                return Err(format!(
                    "notify_on: {k:?} is not a kind troupe notifies of; use {}",
                    NOTIFY_KINDS.join(", ")
                ));
            }
        }
        for (name, v) in [
            ("max_session_cost", self.max_session_cost),
            ("max_cost_per_hour", self.max_cost_per_hour),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!(
                    "{name}: {v} is not an amount of dollars (0 or more)"
                ));
            }
        }
        if self.max_instances == Some(0) {
            return Err("max_instances: 0 would refuse every spawn; give 1 or more".into());
        }
        if self.auto_terminate_after == Some(0) {
            return Err(
                "auto_terminate_after: give seconds of idle time (1 or more), or leave it unset"
                    .into(),
            );
        }
        Ok(())
    }

    /// The controls set in the environment: the seed's names, or their `TROUPE_` forms
    /// (which win). `get` reads one variable.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Layer, String> {
        let var = |name: &str| {
            get(&format!("TROUPE_{name}"))
                .or_else(|| get(name))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(|v| (name.to_string(), v))
        };
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        fn number<T: std::str::FromStr>((name, v): (String, String)) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{name}={v:?} is not a number"))
        }
        let mut layer = Layer::default();
        if let Some((name, v)) = var("ORCHESTRATION_ENABLED") {
            layer.enabled =
                Some(parse_bool(&v).ok_or_else(|| format!("{name}={v:?}: say on or off"))?);
        }
        if let Some((_, v)) = var("REQUIRE_APPROVAL") {
            layer.require_approval = Some(match parse_bool(&v) {
                Some(true) => SPAWNING_TOOLS.iter().map(|t| t.to_string()).collect(),
                Some(false) => Vec::new(),
                None => list(&v),
            });
        }
        layer.max_instances = var("MAX_INSTANCES").map(number).transpose()?;
        layer.max_session_cost = var("MAX_SESSION_COST").map(number).transpose()?;
        layer.max_cost_per_hour = var("MAX_COST_PER_HOUR").map(number).transpose()?;
        layer.allowed_models = var("ALLOWED_MODELS").map(|(_, v)| list(&v));
        layer.preferred_models = var("PREFERRED_MODELS").map(|(_, v)| list(&v));
        if let Some((_, v)) = var("DEFAULT_MODEL") {
            layer.default_models = Some(BTreeMap::from([("*".to_string(), v)]));
        }
        layer.auto_terminate_after = var("AUTO_TERMINATE_AFTER").map(number).transpose()?;
        layer.notify_on = var("NOTIFY_ON").map(|(_, v)| list(&v));
        Ok(layer)
    }
}

/// troupe's config file: `[orchestration]` (the controls), `[[prices]]` and `[[notify]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub orchestration: Layer,
    #[serde(default)]
    pub prices: Vec<crate::pricing::Price>,
    /// Where notices go when the person is not looking.
    #[serde(default)]
    pub notify: Vec<crate::notify::sink::SinkConfig>,
}

/// `$XDG_CONFIG_HOME/troupe/config.toml`, i.e. `~/.config/troupe/config.toml` by default.
pub fn default_config_file() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".config")
        });
    base.join("troupe").join("config.toml")
}

/// Reads the config file; a file that is not there is an empty one.
pub fn read_config_file(path: &Path) -> Result<ConfigFile, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    toml::from_str(&text).map_err(|e| format!("{} does not parse: {e}", path.display()))
}

/// A switch as people write it: 1/0, true/false, yes/no, on/off (any case).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" => Some(true),
        "0" | "false" | "no" | "off" | "n" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conversation_wins_over_the_environment_over_the_file() {
        let file: ConfigFile = toml::from_str(
            "[orchestration]\nmax_instances = 10\nmax_session_cost = 50.0\n\
             allowed_models = [\"sonnet-4\", \"haiku\"]\nrequire_approval = true\n\
             auto_terminate_after = 3600\nnotify_on = [\"spawn\", \"error\"]\n",
        )
        .unwrap();
        let env = Layer::from_env(|k| match k {
            "MAX_INSTANCES" => Some("5".into()),
            "TROUPE_MAX_COST_PER_HOUR" => Some("10".into()),
            "MAX_COST_PER_HOUR" => Some("99".into()),
            "PREFERRED_MODELS" => Some("sonnet-4,haiku".into()),
            _ => None,
        })
        .unwrap();
        let conversation = Layer {
            max_instances: Some(3),
            ..Layer::default()
        };
        let s = Settings::resolve(&file.orchestration, &env, &conversation);
        assert_eq!(s.max_instances.value, 3);
        assert_eq!(s.max_instances.source, Source::Conversation);
        assert_eq!(s.max_cost_per_hour.value, Some(10.0), "TROUPE_ form wins");
        assert_eq!(s.max_cost_per_hour.source, Source::Environment);
        assert_eq!(s.max_session_cost.value, Some(50.0));
        assert_eq!(s.max_session_cost.source, Source::ConfigFile);
        assert!(s.needs_approval("spawn_claude") && !s.needs_approval("list_instances"));
        assert!(s.enabled.value);
        assert_eq!(s.enabled.source, Source::Default);
        assert!(s.notifies("spawn") && !s.notifies("terminate"));
    }

    #[test]
    fn allowed_and_default_models() {
        let s = Settings::resolve(
            &Layer {
                allowed_models: Some(vec!["haiku".into(), "gpt-5".into()]),
                preferred_models: Some(vec!["sonnet-4".into(), "haiku".into()]),
                default_models: Some(BTreeMap::from([("tester".into(), "haiku".into())])),
                ..Layer::default()
            },
            &Layer::default(),
            &Layer::default(),
        );
        assert!(s.model_allowed("haiku", "haiku"));
        assert!(s.model_allowed("claude-haiku-4-5", "claude-haiku-4-5"));
        assert!(!s.model_allowed("opus", "opus"));
        assert!(s.model_allowed("gpt-5", "gpt-5"));
        assert!(!s.model_allowed("gpt-50", "gpt-50"));
        let claude = |m: &str| crate::agents::claude::cli_model(m).is_some();
        assert_eq!(s.default_model("tester", "haiku", claude), "haiku");
        assert_eq!(
            s.default_model("architect", "opus", claude),
            "sonnet-4",
            "first preferred"
        );
        assert_eq!(s.default_model("developer", "sonnet", claude), "sonnet-4");
        let codex = |m: &str| crate::agents::codex::cli_model(m).is_some();
        assert_eq!(
            s.default_model("tester", "gpt-5", codex),
            "gpt-5",
            "haiku is not Codex's"
        );
    }

    #[test]
    fn every_control_is_named() {
        let all = Layer {
            enabled: Some(true),
            require_approval: Some(vec![]),
            max_instances: Some(1),
            max_session_cost: Some(0.0),
            max_cost_per_hour: Some(0.0),
            allowed_models: Some(vec![]),
            preferred_models: Some(vec![]),
            default_models: Some(BTreeMap::new()),
            auto_terminate_after: Some(1),
            notify_on: Some(vec![]),
        };
        let v = serde_json::to_value(all).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut named = CONTROLS.to_vec();
        keys.sort_unstable();
        named.sort_unstable();
        assert_eq!(keys, named);
    }

    #[test]
    fn bad_values_are_refused_with_the_field() {
        let tools = ["spawn_claude", "terminate_instance"];
        let e = Layer {
            require_approval: Some(vec!["rm_rf".into()]),
            ..Layer::default()
        }
        .check(&tools)
        .unwrap_err();
        assert!(e.starts_with("require_approval"), "{e}");
        let e = Layer {
            notify_on: Some(vec!["everything".into()]),
            ..Layer::default()
        }
        .check(&tools)
        .unwrap_err();
        assert!(e.starts_with("notify_on"), "{e}");
        let e = Layer {
            max_session_cost: Some(-1.0),
            ..Layer::default()
        }
        .check(&tools)
        .unwrap_err();
        assert!(e.starts_with("max_session_cost"), "{e}");
        assert!(Layer::from_env(|k| (k == "MAX_INSTANCES").then(|| "many".into())).is_err());
        assert!(toml::from_str::<ConfigFile>("[orchestration]\nmax_instance = 3\n").is_err());
    }
}
