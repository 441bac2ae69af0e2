//! What happens, told to the `[[notify]]` sinks: one task reads the supervisor's events, makes
//! a notice of those a sink asked for, lets each sink's gate fold bursts and keep quiet hours,
//! and hands what goes out to the outbox. With no sink configured, nothing runs.
//!
//! The one-time Allow / Deny links a question carries are answered here too.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::{Event, Supervisor};
use crate::db::approvals::Approval;
use crate::db::instances::Instance;
use crate::db::messages::Message;
use crate::db::notify::{Link, NewLink};
use crate::db::permissions::PermissionAsk;
use crate::error::Error;
use crate::notify::gate::Gate;
use crate::notify::links;
use crate::notify::notice::{Kind, Links, Notice, Target};
use crate::notify::sink::{Sink, SinkKind, render};
use crate::notify::{Answer, Outbox};
use crate::permissions::Decision;
use crate::states::{AskState, InstanceState, MessageState};

/// Messages whose answer somebody waits for now, or took when it came: those are not
/// "answered with nobody waiting". The taken ones are a short memory, enough to cover the
/// moment between an answer's event and the notifier reading it.
#[derive(Default)]
pub(crate) struct Waits {
    live: HashMap<String, usize>,
    taken: VecDeque<String>,
}

const TAKEN_KEPT: usize = 1024;

/// One wait on a message's answer, from its start until its end.
pub(crate) struct Waiting<'a> {
    waits: &'a std::sync::Mutex<Waits>,
    id: String,
    /// The wait ended with the answer in hand.
    pub taken: bool,
}

impl Waits {
    pub fn begin<'a>(waits: &'a std::sync::Mutex<Waits>, id: &str) -> Waiting<'a> {
        *waits
            .lock()
            .expect("waits poisoned")
            .live
            .entry(id.to_string())
            .or_default() += 1;
        Waiting {
            waits,
            id: id.to_string(),
            taken: false,
        }
    }

    fn awaited(&self, id: &str) -> bool {
        self.live.get(id).is_some_and(|n| *n > 0) || self.taken.iter().any(|t| t == id)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut w = self.waits.lock().expect("waits poisoned");
        if let Some(n) = w.live.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                w.live.remove(&self.id);
            }
        }
        if self.taken {
            if w.taken.len() == TAKEN_KEPT {
                w.taken.pop_front();
            }
            w.taken.push_back(self.id.clone());
        }
    }
}

/// Starts the notifier and its outbox, if any sink is configured.
pub(crate) fn spawn(sup: Supervisor) {
    let Some(outbox) = sup.shared.outbox.clone() else {
        return;
    };
    let shutdown = sup.shared.shutdown.clone();
    sup.shared.tasks.spawn(outbox.clone().run(shutdown.clone()));
    let mut events = sup.subscribe();
    let tasks = sup.shared.tasks.clone();
    tasks.spawn(async move {
        let sinks: Vec<Sink> = outbox.sinks().to_vec();
        let mut gates: HashMap<String, Gate> = sinks
            .iter()
            .map(|s| (s.name.clone(), Gate::new(s.quiet, sup.config().notify_digest)))
            .collect();
        outbox.refresh_browsers().await;
        let mut memory = Memory::default();
        loop {
            let local = chrono::Local::now().time();
            let next = gates
                .values()
                .filter_map(|g| g.next_due(Instant::now(), local))
                .min();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = super::instance::sleep_until(next) => {
                    let local = chrono::Local::now().time();
                    for sink in &sinks {
                        let due = gates
                            .get_mut(&sink.name)
                            .map(|g| g.due(Instant::now(), local))
                            .unwrap_or_default();
                        for notice in due {
                            sup.send_notice(&outbox, sink, &notice).await;
                        }
                    }
                }
                event = events.recv() => match event {
                    Ok(event) => {
                        // Only what some sink can be sent now is made into a notice.
                        let wanted: HashSet<Kind> = sinks
                            .iter()
                            .filter(|s| outbox.reaches(s))
                            .flat_map(|s| s.kinds.iter().copied())
                            .collect();
                        let Some(notice) = sup.notice_for(&event, &wanted, &mut memory).await else {
                            continue;
                        };
                        let local = chrono::Local::now().time();
                        for sink in sinks.iter().filter(|s| s.wants(notice.kind) && outbox.reaches(s)) {
                            let Some(gate) = gates.get_mut(&sink.name) else { continue };
                            if let Some(n) = gate.offer(notice.clone(), Instant::now(), local) {
                                sup.send_notice(&outbox, sink, &n).await;
                            }
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("the notifier fell {n} events behind; their notices are lost")
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
    });
}

/// What the notifier remembers between events.
#[derive(Default)]
struct Memory {
    /// Teams a member of which worked since the team was last told idle.
    worked: HashSet<String>,
    /// Instances told failed or exited since they last ran: an ending written twice, or an
    /// exit then a failure, is told once.
    told: HashSet<String>,
}

/// An instance as a notice names it.
fn about(inst: &Instance) -> crate::notify::notice::Instance {
    crate::notify::notice::Instance {
        id: inst.id.clone(),
        name: inst.name.clone(),
        state: inst.state.to_string(),
    }
}

impl Supervisor {
    /// Another host went silent, and this one marked its instances.
    pub fn host_lost(&self, host: &str, reason: &str) {
        self.shared.publish(Event::HostLost {
            host: host.to_string(),
            reason: reason.to_string(),
        });
    }

    /// Whether a wait on `message_id` is under way, or ended with its answer.
    fn awaited(&self, message_id: &str) -> bool {
        self.shared
            .waits
            .lock()
            .expect("waits poisoned")
            .awaited(message_id)
    }

    /// The notice `event` makes, if it makes one a sink wants.
    async fn notice_for(
        &self,
        event: &Event,
        wanted: &HashSet<Kind>,
        memory: &mut Memory,
    ) -> Option<Notice> {
        let pool = &self.shared.pool;
        let find = |id: &str| {
            let id = id.to_string();
            async move { Instance::find(pool, &id).await.ok().flatten() }
        };
        match event {
            Event::PermissionAsked {
                instance_id,
                request_id,
                summary,
            } if wanted.contains(&Kind::Permission) => {
                let inst = find(instance_id).await?;
                let mut n = Notice::new(
                    Kind::Permission,
                    format!("{} asks permission", inst.name),
                    summary,
                );
                n.instance = Some(about(&inst));
                n.target = Some(Target::Permission(request_id.clone()));
                Some(n)
            }
            Event::ApprovalAsked {
                approval_id,
                instance_id,
                question,
            } if wanted.contains(&Kind::Approval) => {
                let inst = find(instance_id).await?;
                let mut n = Notice::new(
                    Kind::Approval,
                    format!("{} waits for your approval", inst.name),
                    question,
                );
                n.instance = Some(about(&inst));
                n.target = Some(Target::Approval(approval_id.clone()));
                Some(n)
            }
            Event::Message {
                instance_id,
                message_id,
                state: MessageState::Answered,
            } if wanted.contains(&Kind::Answered) && !self.awaited(message_id) => {
                let m = Message::find(pool, message_id).await.ok().flatten()?;
                // The person's own messages: an instance's go back to the instance that sent them.
                if m.sender.is_some() {
                    return None;
                }
                let inst = find(instance_id).await?;
                let asked = crate::notify::notice::excerpt(&m.content.replace('\n', " "), 60);
                let mut n = Notice::new(
                    Kind::Answered,
                    format!("{} answered \u{201c}{asked}\u{201d}", inst.name),
                    m.response.as_deref().unwrap_or(""),
                );
                n.instance = Some(about(&inst));
                Some(n)
            }
            Event::InstanceState { instance_id, state } => {
                self.state_notice(instance_id, *state, wanted, memory).await
            }
            Event::BudgetCrossed { reason } if wanted.contains(&Kind::Budget) => Some(Notice::new(
                Kind::Budget,
                "A cost limit was crossed".into(),
                &format!(
                    "{reason}. Running turns were interrupted; new spawns and messages are \
                     refused until the limit is raised."
                ),
            )),
            Event::HostLost { host, reason } if wanted.contains(&Kind::HostLost) => Some(
                Notice::new(Kind::HostLost, format!("Host {host} is lost"), reason),
            ),
            _ => None,
        }
    }

    async fn state_notice(
        &self,
        instance_id: &str,
        state: InstanceState,
        wanted: &HashSet<Kind>,
        memory: &mut Memory,
    ) -> Option<Notice> {
        let pool = &self.shared.pool;
        let ending = matches!(state, InstanceState::Failed | InstanceState::Exited);
        if ending {
            if !memory.told.insert(instance_id.to_string()) {
                return None;
            }
        } else {
            memory.told.remove(instance_id);
        }
        let worked = &mut memory.worked;
        match state {
            InstanceState::Failed | InstanceState::Exited if wanted.contains(&Kind::Failed) => {
                let inst = Instance::find(pool, instance_id).await.ok().flatten()?;
                let title = if state == InstanceState::Failed {
                    format!("{} failed", inst.name)
                } else {
                    format!("{}'s CLI exited", inst.name)
                };
                let mut n = Notice::new(Kind::Failed, title, &inst.state_reason);
                n.instance = Some(about(&inst));
                Some(n)
            }
            InstanceState::Busy if wanted.contains(&Kind::TeamIdle) => {
                let inst = Instance::find(pool, instance_id).await.ok().flatten()?;
                worked.insert(inst.team_id?);
                None
            }
            InstanceState::Idle if wanted.contains(&Kind::TeamIdle) && !worked.is_empty() => {
                let inst = Instance::find(pool, instance_id).await.ok().flatten()?;
                let team_id = inst.team_id.filter(|t| worked.contains(t))?;
                let members = crate::db::teams::TeamMember::for_team(pool, &team_id)
                    .await
                    .ok()?;
                let mut names = Vec::new();
                for id in members.iter().filter_map(|m| m.instance_id.as_deref()) {
                    let Some(member) = Instance::find(pool, id).await.ok().flatten() else {
                        continue;
                    };
                    match member.state {
                        InstanceState::Idle | InstanceState::Suspended => names.push(member.name),
                        s if s.is_ended() => {}
                        _ => return None,
                    }
                }
                worked.remove(&team_id);
                let team = crate::db::teams::Team::find_by_id(pool, &team_id)
                    .await
                    .ok()
                    .flatten()
                    .map_or(team_id.clone(), |t| t.name);
                Some(Notice::new(
                    Kind::TeamIdle,
                    format!("Team {team} is idle"),
                    &format!("Every member is idle after its work: {}", names.join(", ")),
                ))
            }
            _ => None,
        }
    }

    /// Links for `notice` as `sink` sends it: Allow and Deny for a single question, Open for
    /// everything; none without `--public-url`.
    async fn links_for(&self, sink: &Sink, notice: &Notice) -> Links {
        let Some(base) = self.config().link_url.as_deref() else {
            return Links::without(
                "No links: troupe serve runs without --public-url (the address a phone can \
                 reach it at).",
            );
        };
        let open = Some(format!("{base}/"));
        let (Some(target), Some(inst)) = (&notice.target, &notice.instance) else {
            return Links {
                open,
                ..Links::default()
            };
        };
        let wait = chrono::Duration::from_std(self.config().permission_wait)
            .unwrap_or(chrono::Duration::minutes(5));
        let expires_at = crate::db::stamp(chrono::Utc::now() + wait);
        let mut urls = Vec::new();
        for decision in ["allow", "deny"] {
            let token = links::new_token();
            let made = Link::insert(
                &self.shared.pool,
                &NewLink {
                    token_hash: &links::hash(&token),
                    target_kind: target.kind(),
                    target_id: target.id(),
                    instance_id: &inst.id,
                    decision,
                    sink: &sink.name,
                    expires_at: &expires_at,
                },
            )
            .await;
            if let Err(e) = made {
                tracing::warn!(error = %e, "cannot record a notification link");
                return Links {
                    open,
                    note: Some("Allow and Deny links could not be made; use Open.".into()),
                    ..Links::default()
                };
            }
            urls.push(format!("{base}{}{token}", links::PREFIX));
        }
        let deny = urls.pop();
        Links {
            allow: urls.pop(),
            deny,
            open,
            note: None,
        }
    }

    async fn send_notice(&self, outbox: &Outbox, sink: &Sink, notice: &Notice) {
        let links = if notice.items.is_empty() {
            self.links_for(sink, notice).await
        } else {
            // A digest's questions are answered where Open leads.
            let mut l = self
                .links_for(
                    sink,
                    &Notice {
                        target: None,
                        ..notice.clone()
                    },
                )
                .await;
            l.allow = None;
            l.deny = None;
            l
        };
        let request = render(sink, notice, &links);
        if let Err(e) = outbox.enqueue(sink, notice, &request).await {
            tracing::warn!(error = %e, sink = %sink.name, "cannot record a notice to deliver; it is lost");
        }
    }

    /// A browser took or dropped Web Push.
    pub async fn push_subscriptions_changed(&self) {
        if let Some(outbox) = &self.shared.outbox {
            outbox.refresh_browsers().await;
        }
    }

    /// The VAPID public key browsers subscribe with (made on first use).
    pub async fn vapid_public_key(&self) -> crate::error::Result<String> {
        let outbox = self
            .shared
            .outbox
            .clone()
            .ok_or_else(|| Error::Agent("notifications are off".into()))?;
        Ok(outbox.vapid().await.map_err(Error::Agent)?.public_key())
    }

    /// The sinks, as the API shows them.
    pub fn notify_sinks(&self) -> Vec<Sink> {
        self.shared
            .outbox
            .as_ref()
            .map(|o| o.sinks().to_vec())
            .unwrap_or_default()
    }

    /// Sends a sample notice to each sink (or the one named) now: what each receiver answered.
    pub async fn notify_test(
        &self,
        name: Option<&str>,
    ) -> crate::error::Result<Vec<(Sink, Answer)>> {
        let Some(outbox) = self.shared.outbox.clone() else {
            return Err(Error::InvalidInput(
                "no [[notify]] sink is configured; add one to the config file (see the README's \
                 Notifications) and restart troupe serve"
                    .into(),
            ));
        };
        let browsers = crate::db::notify::PushSubscription::list(&self.shared.pool)
            .await?
            .len();
        let sinks: Vec<Sink> = outbox
            .sinks()
            .iter()
            .filter(|s| match name {
                Some(n) => s.name == n,
                // Web Push only when a browser added the dashboard.
                None => s.kind != SinkKind::WebPush || browsers > 0,
            })
            .cloned()
            .collect();
        if sinks.is_empty() {
            if name.is_none() {
                return Err(Error::InvalidInput(
                    "nowhere to send a notice: add a [[notify]] table to the config file (see \
                     the README's Notifications) and restart troupe serve, or turn on \
                     notifications in the dashboard"
                        .into(),
                ));
            }
            let names: Vec<&str> = outbox.sinks().iter().map(|s| s.name.as_str()).collect();
            return Err(Error::InvalidInput(format!(
                "no sink is named {:?}; the sinks are: {}",
                name.unwrap_or(""),
                names.join(", ")
            )));
        }
        let mut out = Vec::new();
        for sink in sinks {
            let notice = Notice::new(
                Kind::Test,
                "troupe test notice".into(),
                &format!(
                    "If you read this, troupe reaches sink {:?} ({}).",
                    sink.name,
                    sink.kind.as_str()
                ),
            );
            let links = self.links_for(&sink, &notice).await;
            let answers = outbox.test(&sink, &notice, &links).await;
            if answers.is_empty() {
                out.push((
                    sink.clone(),
                    Answer {
                        status: None,
                        text: "no browser has turned on notifications in the dashboard".into(),
                    },
                ));
            }
            for (url, answer) in answers {
                if let Err(e) = outbox
                    .record_test(&sink, &notice, &links, &url, &answer)
                    .await
                {
                    tracing::warn!(error = %e, "cannot record a test notice's delivery");
                }
                crate::db::audit::record(
                    &self.shared.pool,
                    None,
                    None,
                    "notify.test",
                    serde_json::json!({ "sink": sink.name, "status": answer.status }),
                )
                .await;
                out.push((sink.clone(), answer));
            }
        }
        Ok(out)
    }

    /// `GET` (show) or `POST` (decide) of a one-time link: the status and the page.
    pub async fn link_page(&self, token: &str, decide: bool) -> (StatusCode, String) {
        let unknown = || {
            (
                StatusCode::NOT_FOUND,
                links::page(
                    "Unknown link",
                    &[
                        "This link is not one troupe made, or it was forgotten. Decide in the \
                       dashboard, or with `troupe permissions`."
                            .into(),
                    ],
                    None,
                ),
            )
        };
        if !links::well_formed(token) {
            return unknown();
        }
        let hash = links::hash(token);
        let link = match Link::find(&self.shared.pool, &hash).await {
            Ok(Some(l)) => l,
            Ok(None) => return unknown(),
            Err(e) => return unavailable(&e.to_string()),
        };
        let allow = link.decision == "allow";
        let verb = if allow { "Allow" } else { "Deny" };
        let name = Instance::find(&self.shared.pool, &link.instance_id)
            .await
            .ok()
            .flatten()
            .map_or(link.instance_id.clone(), |i| i.name);
        // Where the question stands now: open, or decided by someone.
        let (open, what, decided) = match link.target_kind.as_str() {
            "permission" => match PermissionAsk::find(&self.shared.pool, &link.target_id).await {
                Ok(Some(r)) => (
                    r.state == AskState::Pending,
                    r.summary.clone(),
                    format!(
                        "It is already {} ({}{}).",
                        r.state,
                        r.decided_by
                            .as_deref()
                            .map_or("nobody decided in time".to_string(), |b| format!("by {b}")),
                        r.decided_at.map(|t| format!(", {t}")).unwrap_or_default()
                    ),
                ),
                Ok(None) => return unknown(),
                Err(e) => return unavailable(&e.to_string()),
            },
            _ => match Approval::find(&self.shared.pool, &link.target_id).await {
                Ok(Some(a)) => (
                    a.state == crate::states::ApprovalState::Pending,
                    super::approvals::question(&a, "a notification"),
                    format!(
                        "It is already {}{}.",
                        a.state,
                        a.decided_by
                            .as_deref()
                            .map(|b| format!(" (by the person, via {b})"))
                            .unwrap_or_default()
                    ),
                ),
                Ok(None) => return unknown(),
                Err(e) => return unavailable(&e.to_string()),
            },
        };
        let title = format!("{verb} {name}'s request?");
        match links::step(open, &link.expires_at, &crate::db::now(), decide) {
            links::Step::Decided => {
                return (
                    StatusCode::CONFLICT,
                    links::page(
                        "Already decided",
                        &[what, format!("{decided} Nothing was changed.")],
                        None,
                    ),
                );
            }
            links::Step::Expired => {
                return (
                    StatusCode::GONE,
                    links::page(
                        "Link expired",
                        &[
                            what,
                            format!(
                                "This link stopped working at {}. Decide in the dashboard, or \
                                 at the instance's screen (troupe attach {}).",
                                link.expires_at, link.instance_id
                            ),
                        ],
                        None,
                    ),
                );
            }
            links::Step::Show => {
                return (
                    StatusCode::OK,
                    links::page(
                        &title,
                        &[what, format!("Instance {}.", link.instance_id)],
                        Some(verb),
                    ),
                );
            }
            links::Step::Decide => {}
        }
        match Link::spend(&self.shared.pool, &hash).await {
            Ok(true) => {}
            Ok(false) => {
                return (
                    StatusCode::CONFLICT,
                    links::page(
                        "Link already used",
                        &[
                            what,
                            "This link was used already; each decides once.".into(),
                        ],
                        None,
                    ),
                );
            }
            Err(e) => return unavailable(&e.to_string()),
        }
        let by = format!("notify:{}", link.sink);
        let done = match link.target_kind.as_str() {
            "permission" => {
                let decision = if allow {
                    Decision::Allow
                } else {
                    Decision::Deny
                };
                let message =
                    (!allow).then(|| "The person denied this from a notification.".to_string());
                self.respond_to_permission_by(
                    &link.instance_id,
                    &link.target_id,
                    decision,
                    message,
                    None,
                    Some(&by),
                )
                .await
                .map(|_| ())
            }
            _ => self
                .decide_approval(&link.target_id, allow, &by, None)
                .await
                .map(|_| ()),
        };
        match done {
            Ok(()) => (
                StatusCode::OK,
                links::page(
                    if allow { "Allowed" } else { "Denied" },
                    &[
                        what,
                        if allow {
                            format!("{name} goes on.")
                        } else {
                            format!("{name} goes on without it.")
                        },
                    ],
                    None,
                ),
            ),
            Err(e) => (
                StatusCode::CONFLICT,
                links::page("Not decided", &[what, e.to_string()], None),
            ),
        }
    }
}

fn unavailable(why: &str) -> (StatusCode, String) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        links::page(
            "Try again",
            &[format!(
                "troupe could not read its database ({why}). Try the link again."
            )],
            None,
        ),
    )
}

/// The outbox for `config`'s sinks and the browsers that add the dashboard.
pub(crate) fn outbox(config: &crate::config::Config, db: &crate::db::Db) -> Option<Arc<Outbox>> {
    // Push services want a way to reach the sender: the public address when there is one.
    let subject = match config.link_url.as_deref() {
        Some(url) if url.starts_with("https://") => url.to_string(),
        _ => "mailto:troupe@localhost".to_string(),
    };
    Some(Outbox::new(
        db.clone(),
        config.host.clone(),
        config.notify.clone(),
        config.data_dir.join("vapid.key"),
        subject,
    ))
}
