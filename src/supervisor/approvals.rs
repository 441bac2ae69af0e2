//! Calls of instances that need the person's approval (`require_approval`). The call is
//! recorded and asked of the person wherever they are (a form in their MCP session, the
//! dashboard, `troupe approve`, the REST API); it waits up to `--permission-wait` for the
//! answer and then runs, is refused, or ends with the approval's id to carry on with later.
//! Only the person decides; an approval is good once, for the exact call it was asked for, by
//! the instance that asked.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Event, Supervisor};
use crate::db::approvals::Approval;
use crate::db::audit;
use crate::error::{Error, Result};
use crate::states::ApprovalState;

/// How long an approved call stays good for its one use.
pub const APPROVED_LIFE: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// How long a question waits for the person before it lapses.
pub const PENDING_LIFE: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// What an instance's call carrying an approval may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Run, spending the approval.
    Go,
    /// The person has not answered yet.
    Wait,
    /// Not run: the reason, in words that name the fix.
    No(String),
    /// Not run, and the approval is past its life: it is to be marked expired.
    Lapsed(String),
}

/// Whether `instance`'s call of `tool` with `args` may run on `a`. No I/O: the caller reads
/// the approval and the clock.
pub fn standing(
    a: &Approval,
    instance: &str,
    tool: &str,
    args: &Value,
    now: DateTime<Utc>,
) -> Standing {
    let again = format!("call {tool} without it to ask the person again");
    let asked = serde_json::from_str::<Value>(&a.arguments).unwrap_or(Value::Null);
    if a.instance_id != instance || a.tool != tool || &asked != args {
        return Standing::No(format!(
            "approval {} is for another call ({} by {} with {}): an approval is good only for \
             the exact call it was asked for, by the instance that asked; {again}",
            a.id, a.tool, a.instance_id, a.arguments
        ));
    }
    let age = |at: Option<&str>| {
        at.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| now.signed_duration_since(t.with_timezone(&Utc)))
    };
    match a.state {
        ApprovalState::Pending if age(Some(&a.asked_at)).is_some_and(|d| d > PENDING_LIFE) => {
            Standing::Lapsed(format!(
                "approval {} lapsed: the person did not answer within a day; {again}",
                a.id
            ))
        }
        ApprovalState::Pending => Standing::Wait,
        ApprovalState::Approved
            if age(a.decided_at.as_deref()).is_some_and(|d| d > APPROVED_LIFE) =>
        {
            Standing::Lapsed(format!(
                "approval {} expired: an approved call must be made within an hour of the \
                 answer; {again}",
                a.id
            ))
        }
        ApprovalState::Approved => Standing::Go,
        ApprovalState::Denied => Standing::No(format!(
            "{tool} was not run: the person denied it{}. Ask whoever gave you work what they \
             want instead",
            a.reason
                .as_deref()
                .map(|r| format!(" (\"{r}\")"))
                .unwrap_or_default()
        )),
        ApprovalState::Used => Standing::No(format!(
            "approval {} was used already: each is good for one call; {again}",
            a.id
        )),
        ApprovalState::Expired => Standing::No(format!("approval {} has expired; {again}", a.id)),
    }
}

/// What the person is asked about an instance's call.
pub fn question(a: &Approval, source: &str) -> String {
    format!(
        "troupe: {} asks to run {} {}. Allow it? (require_approval, set in {source}; approval {})",
        a.instance_id, a.tool, a.arguments, a.id
    )
}

impl Supervisor {
    /// Records an instance's call that needs the person's approval and asks them.
    pub async fn ask_approval(
        &self,
        instance_id: &str,
        tool: &str,
        args: &Value,
    ) -> Result<Approval> {
        let pool = self.pool();
        let id = format!("appr-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Approval::insert(pool, &id, instance_id, tool, &args.to_string()).await?;
        audit::record(
            pool,
            Some(instance_id),
            Some(instance_id),
            "approval.asked",
            json!({ "approval_id": id, "tool": tool, "how": "the person is asked" }),
        )
        .await;
        let a = Approval::find(pool, &id)
            .await?
            .ok_or_else(|| Error::InvalidInput(format!("{id} vanished")))?;
        let source = super::controls::source_words(self.settings().require_approval.source);
        let question = question(&a, source);
        tracing::info!(instance = instance_id, approval = %id, "asks the person: {question}");
        self.shared.publish(Event::ApprovalAsked {
            approval_id: id.clone(),
            instance_id: instance_id.to_string(),
            question: question.clone(),
        });
        // Told to everyone who may answer, whatever notify_on says: a call waits on it.
        self.shared.publish(Event::Notice {
            kind: "approval",
            text: format!(
                "{question} Answer with `troupe approve {id}` (or --deny), on the dashboard, or \
                 with respond_to_approval(approval_id=\"{id}\", approve=true or false)"
            ),
        });
        Ok(a)
    }

    /// The approval once the person has answered, or as it stands after `wait`.
    pub async fn await_approval(&self, id: &str, wait: Duration) -> Result<Approval> {
        let mut events = self.subscribe();
        // The person may answer on another host of the fleet: that decision arrives as a
        // database wake-up, not as an event of this process.
        let mut written = self.pool().subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            written.mark_unchanged();
            let a = Approval::find(self.pool(), id)
                .await?
                .ok_or_else(|| unknown(id))?;
            if a.state != ApprovalState::Pending {
                return Ok(a);
            }
            // Any decision, a write elsewhere, or a missed event is a reason to look again.
            loop {
                let woke = tokio::time::timeout_at(deadline, async {
                    tokio::select! {
                        event = events.recv() => Some(event),
                        _ = written.changed() => None,
                    }
                })
                .await;
                match woke {
                    Err(_) => return Ok(a),
                    Ok(None) => break,
                    Ok(Some(Ok(Event::ApprovalDecided { approval_id }))) if approval_id == id => {
                        break;
                    }
                    Ok(Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_)))) => break,
                    Ok(Some(Err(tokio::sync::broadcast::error::RecvError::Closed))) => {
                        return Ok(a);
                    }
                    Ok(Some(Ok(_))) => {}
                }
            }
        }
    }

    /// The person's answer to an approval. `how` says where they gave it (`rest`, `form`,
    /// `mcp`), for the record.
    pub async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        how: &str,
        reason: Option<String>,
    ) -> Result<Approval> {
        let pool = self.pool();
        let a = Approval::find(pool, id).await?.ok_or_else(|| unknown(id))?;
        if a.state != ApprovalState::Pending {
            return Err(Error::Refused(format!(
                "approval {id} is already {}{}; nothing to decide",
                a.state,
                a.decided_by
                    .as_deref()
                    .map(|b| format!(" (by the person, via {b})"))
                    .unwrap_or_default()
            )));
        }
        let reason = reason
            .map(|r| r.trim().chars().take(500).collect::<String>())
            .filter(|r| !r.is_empty());
        let state = if approve {
            ApprovalState::Approved
        } else {
            ApprovalState::Denied
        }
        .as_str();
        if !Approval::decide(pool, id, state, how, reason.as_deref()).await? {
            return Err(Error::Refused(format!(
                "approval {id} was decided meanwhile"
            )));
        }
        let kind = if approve {
            "approval.granted"
        } else {
            "approval.refused"
        };
        audit::record(
            pool,
            None,
            Some(&a.instance_id),
            kind,
            json!({ "approval_id": id, "tool": a.tool, "how": how, "reason": reason }),
        )
        .await;
        tracing::info!(approval = id, instance = %a.instance_id, "{state} by the person via {how}");
        self.shared.publish(Event::ApprovalDecided {
            approval_id: id.to_string(),
        });
        Approval::find(pool, id).await?.ok_or_else(|| unknown(id))
    }

    /// Runs an instance's call on `a` if it may; Err holds what the call answers instead.
    pub async fn spend_approval(
        &self,
        a: &Approval,
        instance: &str,
        tool: &str,
        args: &Value,
    ) -> std::result::Result<(), String> {
        let pool = self.pool();
        let verdict = standing(a, instance, tool, args, Utc::now());
        let lapsed = matches!(verdict, Standing::Lapsed(_));
        match verdict {
            Standing::Go => match Approval::spend(pool, &a.id).await {
                Ok(true) => {
                    audit::record(
                        pool,
                        Some(instance),
                        Some(instance),
                        "approval.used",
                        json!({ "approval_id": a.id, "tool": tool }),
                    )
                    .await;
                    Ok(())
                }
                Ok(false) => Err(format!(
                    "approval {} was used meanwhile: each is good for one call; call {tool} \
                     without it to ask the person again",
                    a.id
                )),
                Err(e) => Err(Error::from(e).to_string()),
            },
            Standing::Wait => Err(format!(
                "{tool} is waiting for the person's approval (approval {id}); nothing has run. \
                 They have been asked (their MCP session, the dashboard, `troupe approve`). \
                 Call get_approval(approval_id=\"{id}\") to see their answer, and once it is \
                 approved call {tool} again with the same arguments and \"approval\": \"{id}\"",
                id = a.id
            )),
            Standing::No(why) | Standing::Lapsed(why) => {
                if lapsed {
                    let _ = Approval::expire(pool, &a.id).await;
                }
                audit::record(
                    pool,
                    Some(instance),
                    Some(instance),
                    "approval.refused",
                    json!({ "approval_id": a.id, "tool": tool, "why": why }),
                )
                .await;
                Err(why)
            }
        }
    }

    /// One approval, for the person or for the instance that asked (or one above it).
    pub async fn approval(&self, caller: Option<&str>, id: &str) -> Result<Approval> {
        let a = Approval::find(self.pool(), id)
            .await?
            .ok_or_else(|| unknown(id))?;
        if caller.is_some() {
            self.visible_to(caller, &a.instance_id)
                .await
                .map_err(|_| unknown(id))?;
        }
        Ok(a)
    }

    /// Approvals waiting for the person (or, with `all`, the newest 200 of any state).
    pub async fn approvals(&self, all: bool) -> Result<Vec<Approval>> {
        Ok(match all {
            true => Approval::recent(self.pool(), 200).await?,
            false => Approval::pending(self.pool()).await?,
        })
    }
}

fn unknown(id: &str) -> Error {
    Error::UnknownApproval(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(state: &str) -> Approval {
        Approval {
            id: "appr-1".into(),
            instance_id: "lead".into(),
            tool: "spawn_claude".into(),
            arguments: r#"{"role":"tester","name":"kid"}"#.into(),
            state: state.to_string().into(),
            decided_by: None,
            reason: None,
            asked_at: "2026-12-06T10:00:00.000Z".into(),
            decided_at: Some("2026-12-06T10:01:00.000Z".into()),
            used_at: None,
        }
    }

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn an_approval_runs_its_own_call_once_and_nothing_else() {
        let now = at("2026-12-06T10:02:00Z");
        let args = json!({ "name": "kid", "role": "tester" });
        let s =
            |a: &Approval, who: &str, tool: &str, args: &Value| standing(a, who, tool, args, now);
        assert_eq!(
            s(&approval("approved"), "lead", "spawn_claude", &args),
            Standing::Go
        );
        assert_eq!(
            s(&approval("pending"), "lead", "spawn_claude", &args),
            Standing::Wait
        );
        // Another caller, tool or arguments: refused, however it was decided.
        for (who, tool, args) in [
            ("kid", "spawn_claude", args.clone()),
            ("lead", "spawn_codex", args.clone()),
            (
                "lead",
                "spawn_claude",
                json!({ "role": "tester", "name": "other" }),
            ),
        ] {
            let Standing::No(why) = s(&approval("approved"), who, tool, &args) else {
                panic!("{who} {tool} {args} was let through");
            };
            assert!(why.contains("exact call"), "{why}");
        }
        let Standing::No(why) = s(&approval("used"), "lead", "spawn_claude", &args) else {
            panic!()
        };
        assert!(why.contains("one call"), "{why}");
        let mut denied = approval("denied");
        denied.reason = Some("not now".into());
        let Standing::No(why) = s(&denied, "lead", "spawn_claude", &args) else {
            panic!()
        };
        assert!(why.contains("denied it (\"not now\")"), "{why}");
    }

    #[test]
    fn approvals_lapse() {
        let args = json!({ "role": "tester", "name": "kid" });
        let late = at("2026-12-06T11:02:00Z");
        let Standing::Lapsed(why) =
            standing(&approval("approved"), "lead", "spawn_claude", &args, late)
        else {
            panic!()
        };
        assert!(why.contains("within an hour"), "{why}");
        assert_eq!(
            standing(&approval("pending"), "lead", "spawn_claude", &args, late),
            Standing::Wait
        );
        let next_day = at("2026-12-07T10:00:01Z");
        let Standing::Lapsed(why) = standing(
            &approval("pending"),
            "lead",
            "spawn_claude",
            &args,
            next_day,
        ) else {
            panic!()
        };
        assert!(why.contains("within a day"), "{why}");
    }
}
