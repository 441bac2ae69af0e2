//! The controls at work: limits, budgets and allowed models checked before a spawn or a send,
//! and the conversation's changes to them (configure_orchestration).

use serde_json::json;

use super::Supervisor;
use crate::db::audit;
use crate::db::usage::UsageRecord;
use crate::error::{Error, Result};
use crate::settings::{Layer, Settings};

/// Micro-dollars as dollars, for people.
pub fn dollars(micros: i64) -> String {
    format!("${:.2}", micros as f64 / 1e6)
}

impl Supervisor {
    /// Every control, with where its value comes from.
    pub fn settings(&self) -> Settings {
        self.shared.settings()
    }

    /// Changes controls from the conversation (they win over the environment and the config
    /// file until reset) and returns them all.
    pub async fn configure(
        &self,
        update: Layer,
        reset: Vec<String>,
        tools: &[&str],
        caller: Option<&str>,
    ) -> Result<Settings> {
        update.check(tools).map_err(Error::InvalidInput)?;
        if let Some(key) = reset
            .iter()
            .find(|k| !crate::settings::CONTROLS.contains(&k.as_str()))
        {
            return Err(Error::InvalidInput(format!(
                "reset: {key:?} is not a control; the controls are {}",
                crate::settings::CONTROLS.join(", ")
            )));
        }
        crate::db::settings::store(&self.shared.pool, &update, &reset, caller).await?;
        let fresh = crate::db::settings::load(&self.shared.pool).await?;
        *self.shared.controls.write().expect("controls poisoned") = fresh;
        self.shared.publish(super::Event::SettingsChanged);
        audit::record(
            &self.shared.pool,
            caller,
            None,
            "settings.changed",
            json!({ "set": update, "reset": reset }),
        )
        .await;
        tracing::info!("orchestration settings changed: {}", json!(update));
        Ok(self.settings())
    }

    /// Refuses new work when orchestration is switched off.
    pub(crate) fn check_enabled(&self, settings: &Settings) -> Result<()> {
        if settings.enabled.value {
            return Ok(());
        }
        Err(Error::Limit(format!(
            "orchestration is disabled (set in {}); configure_orchestration(enabled=true) turns it \
             back on",
            source_words(settings.enabled.source)
        )))
    }

    /// Refuses new work once a budget is spent: it names the limit, by how much it is passed,
    /// and how to raise it.
    pub(crate) async fn check_spending(&self, settings: &Settings) -> Result<()> {
        if let Some(err) = self.over_budget(settings).await? {
            return Err(Error::Limit(err));
        }
        Ok(())
    }

    /// Which budget is spent, in words, if one is.
    pub(crate) async fn over_budget(&self, settings: &Settings) -> Result<Option<String>> {
        let pool = &self.shared.pool;
        if let Some(max) = settings.max_session_cost.value {
            let spent = UsageRecord::cost_since(pool, &self.shared.started_at).await?;
            let limit = (max * 1e6).round() as i64;
            if spent >= limit {
                return Ok(Some(format!(
                    "this session (since troupe started at {}) has cost {}, which reaches \
                     max_session_cost {} (set in {}){}; raise it with \
                     configure_orchestration(max_session_cost=...) to go on",
                    self.shared.started_at,
                    dollars(spent),
                    dollars(limit),
                    source_words(settings.max_session_cost.source),
                    over(spent, limit)
                )));
            }
        }
        if let Some(max) = settings.max_cost_per_hour.value {
            let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let spent = UsageRecord::cost_since(pool, &hour_ago).await?;
            let limit = (max * 1e6).round() as i64;
            if spent >= limit {
                return Ok(Some(format!(
                    "the last hour has cost {}, which reaches max_cost_per_hour {} (set in {}){}; \
                     wait, or raise it with configure_orchestration(max_cost_per_hour=...)",
                    dollars(spent),
                    dollars(limit),
                    source_words(settings.max_cost_per_hour.source),
                    over(spent, limit)
                )));
            }
        }
        Ok(None)
    }
}

/// A limit and how much of it is used.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LimitUse {
    pub name: &'static str,
    pub used: f64,
    /// None: no limit is set.
    pub limit: Option<f64>,
    /// `instances` or `dollars`.
    pub unit: &'static str,
    /// Where the limit was set, in words.
    pub source: &'static str,
}

impl Supervisor {
    /// The limits in force and how close each is: for a person watching, not a decision.
    pub async fn limits(&self) -> Result<Vec<LimitUse>> {
        let settings = self.settings();
        let pool = &self.shared.pool;
        let live = crate::db::instances::Instance::count_live(pool).await?;
        let session = UsageRecord::cost_since(pool, &self.shared.started_at).await?;
        let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let hour = UsageRecord::cost_since(pool, &hour_ago).await?;
        Ok(vec![
            LimitUse {
                name: "max_instances",
                used: live as f64,
                limit: Some(f64::from(settings.max_instances.value)),
                unit: "instances",
                source: source_words(settings.max_instances.source),
            },
            LimitUse {
                name: "max_session_cost",
                used: session as f64 / 1e6,
                limit: settings.max_session_cost.value,
                unit: "dollars",
                source: source_words(settings.max_session_cost.source),
            },
            LimitUse {
                name: "max_cost_per_hour",
                used: hour as f64 / 1e6,
                limit: settings.max_cost_per_hour.value,
                unit: "dollars",
                source: source_words(settings.max_cost_per_hour.source),
            },
        ])
    }
}

fn over(spent: i64, limit: i64) -> String {
    if spent > limit {
        format!(", {} over", dollars(spent - limit))
    } else {
        String::new()
    }
}

/// Where a setting came from, as a person would say it.
pub fn source_words(source: crate::settings::Source) -> &'static str {
    use crate::settings::Source::*;
    match source {
        Default => "troupe's defaults",
        ConfigFile => "the config file",
        Environment => "the environment or serve's flags",
        Conversation => "the conversation (configure_orchestration)",
    }
}
