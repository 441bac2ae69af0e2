use std::collections::BTreeMap;

use super::Json;
use super::Parameters;
use rmcp::model::Extensions;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Troupe, caller, tool_error};
use crate::settings::{Layer, Settings};

/// Changes to troupe's controls; each one given replaces the value from the environment or
/// the config file until it is reset.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ConfigureParams {
    /// false: refuse every spawn and send until it is turned on again.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Tools that need the person's approval before they run, e.g. ["spawn_claude",
    /// "terminate_instance"]; [] for none.
    #[serde(default)]
    pub require_approval: Option<Vec<String>>,
    /// Most instances alive at once.
    #[serde(default)]
    pub max_instances: Option<u64>,
    /// Most dollars all instances may cost since troupe started; reaching it interrupts
    /// running turns and refuses new spawns and sends.
    #[serde(default)]
    pub max_session_cost: Option<f64>,
    /// Most dollars all instances may cost in any hour.
    #[serde(default)]
    pub max_cost_per_hour: Option<f64>,
    /// The only models instances may run (a family such as "haiku" or a full id); [] for any.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Models to use, in order, when a spawn names none and its role's model is not among them.
    #[serde(default)]
    pub preferred_models: Option<Vec<String>>,
    /// The model per role when a spawn names none ("*" for every role).
    #[serde(default)]
    pub default_models: Option<BTreeMap<String, String>>,
    /// Seconds idle before troupe suspends an instance (its conversation is kept).
    #[serde(default)]
    pub auto_terminate_after: Option<u64>,
    /// What to tell the orchestrating session about: spawn, terminate, error, cost_threshold.
    #[serde(default)]
    pub notify_on: Option<Vec<String>>,
    /// Controls to give back to the environment and the config file (their names, e.g.
    /// ["max_instances"]).
    #[serde(default)]
    pub reset: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoParams {}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct MetricsParams {
    /// Only this team's instances.
    #[serde(default)]
    pub team: Option<String>,
    /// Only this instance and everything under it.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Only the calling instance and everything under it.
    #[serde(default)]
    pub mine: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SettingsView {
    /// Which source wins, first to last.
    pub precedence: &'static str,
    /// Each control: its value and where it comes from.
    pub settings: Settings,
}

pub const PRECEDENCE: &str = "conversation (configure_orchestration) > environment and serve's flags > config file > troupe's defaults";

#[tool_router(router = settings_tools, vis = "pub(super)")]
impl Troupe {
    #[tool(
        name = "configure_orchestration",
        description = "Change troupe's controls from the conversation: enabled, require_approval (tools needing the person's approval), max_instances, max_session_cost and max_cost_per_hour (dollars), allowed_models, preferred_models, default_models (per role), auto_terminate_after (idle seconds), notify_on; reset gives controls back to the environment and config file. Kept across restarts. Returns every control and where its value comes from."
    )]
    pub async fn configure_orchestration(
        &self,
        Parameters(p): Parameters<ConfigureParams>,
        extensions: Extensions,
    ) -> Result<Json<SettingsView>, String> {
        let max_instances = match p.max_instances.map(u32::try_from) {
            Some(Err(_)) => {
                return Err(tool_error(crate::error::Error::InvalidInput(format!(
                    "max_instances: {} is more instances than troupe counts; give at most {}",
                    p.max_instances.unwrap_or_default(),
                    u32::MAX
                ))));
            }
            Some(Ok(n)) => Some(n),
            None => None,
        };
        let update = Layer {
            enabled: p.enabled,
            require_approval: p.require_approval,
            max_instances,
            max_session_cost: p.max_session_cost,
            max_cost_per_hour: p.max_cost_per_hour,
            allowed_models: p.allowed_models,
            preferred_models: p.preferred_models,
            default_models: p.default_models,
            auto_terminate_after: p.auto_terminate_after,
            notify_on: p.notify_on,
        };
        let tools = super::tool_names();
        let settings = self
            .sup
            .configure(update, p.reset, &tools, caller(&extensions).as_deref())
            .await
            .map_err(tool_error)?;
        Ok(Json(SettingsView {
            precedence: PRECEDENCE,
            settings,
        }))
    }

    #[tool(
        name = "get_session_metrics",
        description = "What's the total cost so far? Instances spawned and active (by state), tokens by kind, cost by model and in total (unpriced models marked), messages sent and answered, interrupts, and the time working in parallel saved. For every instance, one team (team), one subtree (instance_id), or the caller's own (mine)."
    )]
    pub async fn get_session_metrics(
        &self,
        Parameters(p): Parameters<MetricsParams>,
        extensions: Extensions,
    ) -> Result<Json<crate::supervisor::metrics::Metrics>, String> {
        use crate::supervisor::metrics::Scope;
        let given = [p.team.is_some(), p.instance_id.is_some(), p.mine]
            .iter()
            .filter(|x| **x)
            .count();
        if given > 1 {
            return Err(tool_error(crate::error::Error::InvalidInput(
                "give one of team, instance_id or mine".into(),
            )));
        }
        let scope = if let Some(t) = p.team {
            Scope::Team(t)
        } else if let Some(i) = p.instance_id {
            Scope::Subtree(i)
        } else if p.mine {
            match caller(&extensions) {
                Some(me) => Scope::Subtree(me),
                // The person's session has no instance of its own: everything is theirs.
                None => Scope::All,
            }
        } else {
            Scope::All
        };
        self.sup.metrics(scope).await.map(Json).map_err(tool_error)
    }

    #[tool(
        name = "get_orchestration_settings",
        description = "troupe's controls (limits, budgets, allowed and default models, approval, idle suspension, notifications), each with its value and where it comes from."
    )]
    pub async fn get_orchestration_settings(
        &self,
        Parameters(_): Parameters<NoParams>,
    ) -> Result<Json<SettingsView>, String> {
        Ok(Json(SettingsView {
            precedence: PRECEDENCE,
            settings: self.sup.settings(),
        }))
    }
}
