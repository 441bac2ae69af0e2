//! Session metrics: what a set of instances (the whole server, a team, or a subtree) has
//! done and cost, and how much time working in parallel saved.

use std::collections::BTreeMap;

use super::Supervisor;
use crate::db::instances::Instance;
use crate::db::metrics::{self, ModelCost};
use crate::db::teams::Team;
use crate::error::{Error, Result};
use crate::states::InstanceState;

/// Which instances the figures are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Team(String),
    /// An instance and everything under it.
    Subtree(String),
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Metrics {
    /// What the figures cover.
    pub scope: String,
    pub instances_spawned: usize,
    /// Instances not ended (starting, idle, busy, waiting for permission, attached).
    pub instances_active: usize,
    pub instances_by_state: BTreeMap<String, usize>,
    /// Instances by the host that runs them (one entry unless a fleet shares the registry).
    pub instances_by_host: BTreeMap<String, usize>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cache_read_tokens: i64,
    pub total_tokens: i64,
    /// The cost of every priced call, in micro-dollars, and in dollars for people.
    pub cost_micros: i64,
    pub cost: String,
    /// Calls to models with no price: counted in tokens, not in cost.
    pub unpriced_calls: i64,
    pub cost_by_model: Vec<ModelCost>,
    pub messages_sent: i64,
    pub messages_answered: i64,
    pub messages_by_state: BTreeMap<String, i64>,
    pub interrupts: i64,
    pub interrupts_by_outcome: BTreeMap<String, i64>,
    /// Seconds the instances spent on turns, added up.
    pub busy_seconds: f64,
    /// Seconds of wall time during which at least one of them worked.
    pub wall_seconds: f64,
    /// busy_seconds - wall_seconds: what working in parallel saved.
    pub time_saved_seconds: f64,
}

/// The total length of `spans` (start, end in milliseconds), and the length of their union:
/// busy time, and the wall time the overlapping work took. Spans that end before they start
/// count as nothing.
pub fn busy_and_wall(spans: &[(i64, i64)]) -> (i64, i64) {
    let mut spans: Vec<(i64, i64)> = spans.iter().copied().filter(|(a, b)| b > a).collect();
    let busy = spans.iter().map(|(a, b)| b - a).sum();
    spans.sort_unstable();
    let mut wall = 0;
    let mut current: Option<(i64, i64)> = None;
    for (a, b) in spans {
        match &mut current {
            Some((_, end)) if a <= *end => *end = (*end).max(b),
            _ => {
                if let Some((s, e)) = current {
                    wall += e - s;
                }
                current = Some((a, b));
            }
        }
    }
    if let Some((s, e)) = current {
        wall += e - s;
    }
    (busy, wall)
}

fn millis(ts: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl Supervisor {
    pub async fn metrics(&self, scope: Scope) -> Result<Metrics> {
        let pool = &self.shared.pool;
        let all = Instance::list(pool, true).await?;
        let team = match &scope {
            Scope::Team(name) => Some(Team::find_by_name(pool, name.trim()).await?.ok_or_else(
                || {
                    Error::InvalidInput(format!(
                        "no team named {name:?}; list_teams shows the teams"
                    ))
                },
            )?),
            _ => None,
        };
        let (label, chosen) = in_scope(&scope, &all, team.as_ref())?;
        let ids = serde_json::to_string(&chosen.iter().map(|i| &i.id).collect::<Vec<_>>())
            .expect("ids as JSON");
        let (by_state, active) = count_states(&chosen);
        let models = metrics::cost_by_model(pool, &ids).await?;
        let sum = |f: fn(&ModelCost) -> i64| models.iter().map(f).sum::<i64>();
        let (input, output, cache_creation, cache_read) = (
            sum(|m| m.input_tokens),
            sum(|m| m.output_tokens),
            sum(|m| m.cache_creation_tokens),
            sum(|m| m.cache_read_tokens),
        );
        let cost_micros = sum(|m| m.cost_micros.unwrap_or(0));
        let unpriced_calls = models
            .iter()
            .filter(|m| m.cost_micros.is_none())
            .map(|m| m.calls)
            .sum();
        let messages: BTreeMap<String, i64> = metrics::messages_by_state(pool, &ids)
            .await?
            .into_iter()
            .collect();
        let interrupts: BTreeMap<String, i64> = metrics::interrupts_by_outcome(pool, &ids)
            .await?
            .into_iter()
            .collect();
        let spans: Vec<(i64, i64)> = metrics::turn_spans(pool, &ids)
            .await?
            .iter()
            .filter_map(|(a, b)| Some((millis(a)?, millis(b)?)))
            .collect();
        let (busy, wall) = busy_and_wall(&spans);
        Ok(Metrics {
            scope: label,
            instances_spawned: chosen.len(),
            instances_active: active,
            instances_by_state: by_state,
            instances_by_host: by_host(&chosen),
            input_tokens: input,
            output_tokens: output,
            cache_creation_tokens: cache_creation,
            cache_read_tokens: cache_read,
            total_tokens: input + output + cache_creation + cache_read,
            cost_micros,
            cost: super::controls::dollars(cost_micros),
            unpriced_calls,
            cost_by_model: models,
            messages_sent: messages.values().sum(),
            messages_answered: messages.get("answered").copied().unwrap_or(0),
            messages_by_state: messages,
            interrupts: interrupts.values().sum(),
            interrupts_by_outcome: interrupts,
            busy_seconds: busy as f64 / 1000.0,
            wall_seconds: wall as f64 / 1000.0,
            time_saved_seconds: (busy - wall) as f64 / 1000.0,
        })
    }
}

/// How many instances each host runs (or ran).
fn by_host(chosen: &[&Instance]) -> BTreeMap<String, usize> {
    let mut hosts = BTreeMap::new();
    for i in chosen {
        let host = if i.host.is_empty() {
            "(unknown)"
        } else {
            &i.host
        };
        *hosts.entry(host.to_string()).or_insert(0) += 1;
    }
    hosts
}

/// How many instances are in each state, and how many of them are up (running a CLI or
/// attached).
fn count_states(chosen: &[&Instance]) -> (BTreeMap<String, usize>, usize) {
    let mut by_state = BTreeMap::new();
    for i in chosen {
        *by_state.entry(i.state.to_string()).or_insert(0) += 1;
    }
    let active = chosen
        .iter()
        .filter(|i| {
            matches!(
                i.state,
                InstanceState::Starting
                    | InstanceState::Idle
                    | InstanceState::Busy
                    | InstanceState::WaitingPermission
                    | InstanceState::Attached
            )
        })
        .count();
    (by_state, active)
}

/// The instances a scope covers, and the scope in words; `team` is the scope's team, looked up.
fn in_scope<'a>(
    scope: &Scope,
    all: &'a [Instance],
    team: Option<&Team>,
) -> Result<(String, Vec<&'a Instance>)> {
    Ok(match (scope, team) {
        (Scope::Team(_), Some(team)) => (
            format!("team {}", team.name),
            all.iter()
                .filter(|i| i.team_id.as_deref() == Some(team.id.as_str()))
                .collect(),
        ),
        (Scope::Subtree(root), _) => {
            if !all.iter().any(|i| i.id == *root) {
                return Err(Error::UnknownInstance(root.clone()));
            }
            let mut ids = vec![root.clone()];
            let mut i = 0;
            while i < ids.len() {
                let parent = ids[i].clone();
                ids.extend(
                    all.iter()
                        .filter(|c| c.parent_id.as_deref() == Some(parent.as_str()))
                        .map(|c| c.id.clone()),
                );
                i += 1;
            }
            (
                format!("{root} and everything under it"),
                all.iter().filter(|i| ids.contains(&i.id)).collect(),
            )
        }
        _ => ("every instance".into(), all.iter().collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::busy_and_wall;

    #[test]
    fn overlapping_turns_save_their_overlap() {
        // Two 3-second turns, started at once: 6 s of work in 3 s.
        assert_eq!(busy_and_wall(&[(0, 3000), (0, 3000)]), (6000, 3000));
        // One after the other: nothing saved.
        assert_eq!(busy_and_wall(&[(0, 3000), (3000, 6000)]), (6000, 6000));
        // Partly overlapping, and a separate one.
        assert_eq!(
            busy_and_wall(&[(0, 2000), (1000, 4000), (10_000, 11_000)]),
            (6000, 5000)
        );
        // Nested, and a span that ends before it starts.
        assert_eq!(
            busy_and_wall(&[(0, 10_000), (2000, 3000), (5, 1)]),
            (11_000, 10_000)
        );
        assert_eq!(busy_and_wall(&[]), (0, 0));
    }
}
