//! The rules of a fleet's hosts, apart from I/O: how a host stands (up, draining, stopped or
//! lost, from its row and the time), and whether a starting server may take a host's name.

use chrono::{DateTime, Utc};

use crate::db::hosts::Host;

/// How a host stands, as every other host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Up,
    /// Serving, but taking no new spawns (`troupe host drain`).
    Draining,
    /// Stopped cleanly; its instances wait for it.
    Stopped,
    /// Silent past the heartbeat limit: its last heartbeat.
    Lost {
        since: String,
    },
}

impl Standing {
    pub fn as_str(&self) -> &'static str {
        match self {
            Standing::Up => "up",
            Standing::Draining => "draining",
            Standing::Stopped => "stopped",
            Standing::Lost { .. } => "lost",
        }
    }

    /// Whether the host runs now (as far as anyone can tell).
    pub fn serving(&self) -> bool {
        matches!(self, Standing::Up | Standing::Draining)
    }
}

fn at(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc())
}

/// How `host` stands at `now`, when a heartbeat older than `limit` means lost.
pub fn standing(host: &Host, now: DateTime<Utc>, limit: chrono::Duration) -> Standing {
    match host.state.as_str() {
        "stopped" => Standing::Stopped,
        state => {
            let fresh = at(&host.heartbeat_at).is_some_and(|beat| now - beat <= limit);
            match (fresh, state) {
                (false, _) => Standing::Lost {
                    since: host.heartbeat_at.clone(),
                },
                (true, "draining") => Standing::Draining,
                (true, _) => Standing::Up,
            }
        }
    }
}

/// Who is starting: the name it wants, on which machine.
#[derive(Debug, Clone)]
pub struct Claimant<'a> {
    pub name: &'a str,
    pub machine: &'a str,
}

/// Whether the claimant may take `existing`'s name. A host that stopped or went silent gives
/// it up; one that runs keeps it, unless it is this machine's and its process is gone (a
/// crash, restarted at once: `alive` says whether that pid still runs here).
pub fn may_take(
    existing: &Host,
    claimant: &Claimant,
    now: DateTime<Utc>,
    limit: chrono::Duration,
    alive: impl Fn(i64) -> bool,
) -> Result<(), String> {
    let standing = standing(existing, now, limit);
    if !standing.serving() {
        return Ok(());
    }
    if existing.machine == claimant.machine && !alive(existing.pid) {
        return Ok(());
    }
    let age = at(&existing.heartbeat_at)
        .map(|beat| {
            format!(
                "{:.1} s ago",
                (now - beat).num_milliseconds() as f64 / 1000.0
            )
        })
        .unwrap_or_else(|| "at an unreadable time".into());
    let place = if existing.machine == claimant.machine {
        format!("pid {} on this machine", existing.pid)
    } else {
        format!("machine {}", existing.machine)
    };
    Err(format!(
        "another troupe serve is host {:?} on this registry ({place}, {}, last heartbeat {age}); \
         give this one another name with --host, or stop that one first",
        claimant.name, existing.url
    ))
}

/// Why this server does not act on an instance another host runs, and what to do instead.
/// `host` is that host's row, if the registry has one, with how it stands.
pub fn elsewhere(instance_id: &str, name: &str, host: Option<(&Host, &Standing)>) -> String {
    match host {
        Some((h, Standing::Up | Standing::Draining)) => format!(
            "instance {instance_id} runs on host {name}, and this server acts only on its own \
             host's instances; send this through {name}'s server at {}",
            h.url
        ),
        Some((_, Standing::Lost { since })) => format!(
            "instance {instance_id} runs on host {name}, which has been silent since {since} \
             (lost); its instances are picked up again when {name} comes back, or `troupe host \
             forget {name}` gives up on them"
        ),
        Some((_, Standing::Stopped)) => format!(
            "instance {instance_id} runs on host {name}, which is stopped; start `troupe serve \
             --host {name}` on its machine to bring its instances back"
        ),
        None => format!(
            "instance {instance_id} runs on host {name}, which this registry does not know; \
             `troupe hosts` lists the hosts"
        ),
    }
}

/// The machine a host runs on, as it names itself.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The default host name.
    pub hostname: String,
    /// What tells this machine from another that has the same hostname (`/etc/machine-id`).
    pub id: String,
}

pub fn this_machine() -> Machine {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let hostname = read("/proc/sys/kernel/hostname")
        .or_else(|| std::env::var("HOSTNAME").ok())
        .and_then(|h| checked_name(&h).ok())
        .unwrap_or_else(|| "localhost".into());
    let id = read("/etc/machine-id")
        .or_else(|| read("/var/lib/dbus/machine-id"))
        .unwrap_or_else(|| hostname.clone());
    Machine { hostname, id }
}

/// A host name or label: letters, digits, `.`, `-` and `_`, 1 to 63 characters.
pub fn checked_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{name:?} is not a host name: use 1 to 63 letters, digits, '.', '-' or '_'"
        ))
    }
}

/// An `--advertise-url`: http or https, a host, no path beyond `/`.
pub fn checked_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| format!("--advertise-url {url:?} is not a URL ({e})"))?;
    let fine = matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some()
        && parsed.path() == "/"
        && parsed.query().is_none()
        && parsed.username().is_empty()
        && parsed.password().is_none();
    if !fine {
        return Err(format!(
            "--advertise-url {url:?}: give the address other hosts reach this one at, like \
             http://10.0.0.5:8001 (http or https, no path, no credentials)"
        ));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// The registry's `fleet` key under which the person's token is kept, as its SHA-256.
pub const TOKEN_KEY: &str = "person_token_sha256";

/// The person's token as the registry keeps it: SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a starting host does with the fleet's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStep {
    /// Its token is the fleet's.
    Keep,
    /// Its token becomes the fleet's: the first host, or a new token while no other host
    /// serves (hosts that come back later need the new one).
    Set,
}

/// Whether a host whose token hashes to `mine` may serve a registry that keeps `stored`,
/// while the hosts `others_serving` serve it: every host answers the person with one token, so
/// `troupe mcp install` against any of them works.
pub fn fleet_token(
    stored: Option<&str>,
    mine: &str,
    others_serving: &[String],
) -> Result<TokenStep, String> {
    match stored {
        Some(s) if s == mine => Ok(TokenStep::Keep),
        _ if others_serving.is_empty() => Ok(TokenStep::Set),
        _ => Err(format!(
            "{} {} this registry with another server token, and every host of a fleet answers \
             with the same one; start this host with theirs: --token (or TROUPE_TOKEN) set to \
             the `token` file in {} data directory",
            others_serving.join(", "),
            if others_serving.len() == 1 {
                "serves"
            } else {
                "serve"
            },
            if others_serving.len() == 1 {
                "its"
            } else {
                "their"
            },
        )),
    }
}

/// Free memory below which a host takes no new instance: an idle Claude Code takes 240–340
/// MiB, and a host with less than this left would start swapping.
pub const MIN_FREE_MB: i64 = 512;

/// A host as placement weighs it: its row, how it stands, and how many live instances it runs.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub host: &'a Host,
    pub standing: Standing,
    pub live: i64,
}

impl Candidate<'_> {
    fn labels(&self) -> Vec<String> {
        serde_json::from_str(&self.host.labels).unwrap_or_default()
    }

    /// Why it takes no new instance now, or None when it does.
    fn refusal(&self) -> Option<String> {
        let name = &self.host.name;
        match &self.standing {
            Standing::Up => {}
            Standing::Draining => {
                return Some(format!(
                    "host {name} is draining: it takes no new instances"
                ));
            }
            Standing::Stopped => return Some(format!("host {name} is stopped")),
            Standing::Lost { since } => {
                return Some(format!("host {name} has been silent since {since} (lost)"));
            }
        }
        if let Some(max) = self.host.max_instances.filter(|max| self.live >= *max) {
            return Some(format!(
                "host {name} is full: {} of its {max} instances run",
                self.live
            ));
        }
        if let Some(free) = self.host.free_memory_mb.filter(|f| *f < MIN_FREE_MB) {
            return Some(format!(
                "host {name} is full: {free} MiB of memory free, and an instance needs \
                 {MIN_FREE_MB}"
            ));
        }
        None
    }

    /// Its room, for the fleet's summary: "alpha (17 more instances, 12034 MiB free)".
    fn room(&self) -> String {
        let more = match self.host.max_instances {
            Some(max) => format!("{} more instances", (max - self.live).max(0)),
            None => "no instance limit".into(),
        };
        match self.host.free_memory_mb {
            Some(free) => format!("{} ({more}, {free} MiB free)", self.host.name),
            None => format!("{} ({more})", self.host.name),
        }
    }

    /// How much room it has, larger is roomier: instances left first, then memory.
    fn roominess(&self) -> (i64, i64) {
        (
            self.host
                .max_instances
                .map_or(i64::MAX, |max| max - self.live),
            self.host.free_memory_mb.unwrap_or(i64::MAX),
        )
    }
}

/// What the fleet can take now, for a refusal: the hosts with room and how much.
pub fn free_capacity(fleet: &[Candidate]) -> String {
    let open: Vec<String> = fleet
        .iter()
        .filter(|c| c.refusal().is_none())
        .map(Candidate::room)
        .collect();
    if open.is_empty() {
        "no host of the fleet takes new instances now".into()
    } else {
        format!("hosts with room: {}", open.join(", "))
    }
}

/// The host a new instance goes to. `wanted` is a host's name or `label:NAME` (the roomiest
/// host with that label); without it, `default` (the parent's host, else the host the caller
/// reached). A host that cannot take it is refused with the fleet's free capacity named.
pub fn place(wanted: Option<&str>, default: &str, fleet: &[Candidate]) -> Result<String, String> {
    let wanted = wanted.map(str::trim).filter(|w| !w.is_empty());
    if let Some(label) = wanted.and_then(|w| w.strip_prefix("label:")) {
        let label = label.trim();
        let labelled: Vec<&Candidate> = fleet
            .iter()
            .filter(|c| c.labels().iter().any(|l| l == label))
            .collect();
        if labelled.is_empty() {
            let mut known: Vec<String> = fleet.iter().flat_map(Candidate::labels).collect();
            known.sort();
            known.dedup();
            let known = if known.is_empty() {
                "no host has a label (serve --label NAME gives one)".to_string()
            } else {
                format!("the labels are {}", known.join(", "))
            };
            return Err(format!("no host has the label {label:?}; {known}"));
        }
        return labelled
            .iter()
            .filter(|c| c.refusal().is_none())
            .max_by_key(|c| c.roominess())
            .map(|c| c.host.name.clone())
            .ok_or_else(|| {
                let why: Vec<String> = labelled.iter().filter_map(|c| c.refusal()).collect();
                format!(
                    "no host labelled {label:?} takes a new instance now ({}); {}",
                    why.join("; "),
                    free_capacity(fleet)
                )
            });
    }
    let name = wanted.unwrap_or(default);
    let Some(c) = fleet.iter().find(|c| c.host.name == name) else {
        let names: Vec<&str> = fleet.iter().map(|c| c.host.name.as_str()).collect();
        return Err(format!(
            "no host {name:?} in this fleet; the hosts are {}",
            names.join(", ")
        ));
    };
    match c.refusal() {
        None => Ok(name.to_string()),
        Some(why) => Err(format!("{why}; {}", free_capacity(fleet))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(state: &str, beat: &str, machine: &str, pid: i64) -> Host {
        Host {
            name: "a".into(),
            url: "http://a:8001".into(),
            version: "0.1.0".into(),
            clis: "{}".into(),
            labels: "[]".into(),
            max_instances: None,
            free_memory_mb: None,
            state: state.into(),
            machine: machine.into(),
            pid,
            started_at: "2026-12-06T12:00:00.000Z".into(),
            heartbeat_at: beat.into(),
        }
    }

    fn now() -> DateTime<Utc> {
        at("2026-12-06T12:01:00.000Z").unwrap()
    }

    const LIMIT: chrono::Duration = chrono::Duration::seconds(15);

    #[test]
    fn an_instance_elsewhere_is_named_with_its_host_and_what_to_do() {
        let h = host("up", "2026-12-06T12:00:58.000Z", "m1", 1);
        let up = elsewhere("dev-1", "a", Some((&h, &Standing::Up)));
        assert!(up.contains("through a's server at http://a:8001"), "{up}");
        let lost = Standing::Lost {
            since: "2026-12-06T12:00:00.000Z".into(),
        };
        let said = elsewhere("dev-1", "a", Some((&h, &lost)));
        assert!(
            said.contains("silent since 2026-12-06T12:00:00.000Z"),
            "{said}"
        );
        assert!(said.contains("troupe host forget a"), "{said}");
        let said = elsewhere("dev-1", "a", Some((&h, &Standing::Stopped)));
        assert!(said.contains("troupe serve --host a"), "{said}");
        assert!(elsewhere("dev-1", "a", None).contains("troupe hosts"));
    }

    #[test]
    fn names_and_urls_are_checked() {
        assert_eq!(checked_name(" gpu-1.eu ").unwrap(), "gpu-1.eu");
        for bad in ["", "a b", "x/y", "é", &"a".repeat(64)] {
            assert!(checked_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            checked_url("http://10.0.0.5:8001/").unwrap(),
            "http://10.0.0.5:8001"
        );
        for bad in ["10.0.0.5:8001", "ftp://a", "http://a/mcp", "http://u:p@a:1"] {
            assert!(checked_url(bad).is_err(), "{bad:?}");
        }
        let m = this_machine();
        assert!(checked_name(&m.hostname).is_ok());
        assert!(!m.id.is_empty());
    }

    #[test]
    fn a_host_is_lost_once_its_heartbeat_is_older_than_the_limit() {
        let up = host("up", "2026-12-06T12:00:50.000Z", "m1", 1);
        assert_eq!(standing(&up, now(), LIMIT), Standing::Up);
        let silent = host("up", "2026-12-06T12:00:40.000Z", "m1", 1);
        assert_eq!(
            standing(&silent, now(), LIMIT),
            Standing::Lost {
                since: "2026-12-06T12:00:40.000Z".into()
            }
        );
        let draining = host("draining", "2026-12-06T12:00:59.000Z", "m1", 1);
        assert_eq!(standing(&draining, now(), LIMIT), Standing::Draining);
        let stopped = host("stopped", "2026-12-06T11:00:00.000Z", "m1", 1);
        assert_eq!(standing(&stopped, now(), LIMIT), Standing::Stopped);
        let garbled = host("up", "yesterday", "m1", 1);
        assert_eq!(standing(&garbled, now(), LIMIT).as_str(), "lost");
    }

    #[test]
    fn a_running_host_keeps_its_name_unless_its_process_is_gone_from_this_machine() {
        let me = Claimant {
            name: "a",
            machine: "m1",
        };
        let running = host("up", "2026-12-06T12:00:58.000Z", "m1", 42);
        let err = may_take(&running, &me, now(), LIMIT, |_| true).unwrap_err();
        assert!(err.contains("pid 42 on this machine"), "{err}");
        assert!(err.contains("--host"), "{err}");
        // Killed and restarted at once: the heartbeat is fresh but the process is gone.
        assert!(may_take(&running, &me, now(), LIMIT, |_| false).is_ok());
        // Another machine with that name: its pid means nothing here.
        let elsewhere = host("up", "2026-12-06T12:00:58.000Z", "m2", 42);
        let err = may_take(&elsewhere, &me, now(), LIMIT, |_| false).unwrap_err();
        assert!(err.contains("machine m2"), "{err}");
        // Stopped or silent: the name is free.
        let stopped = host("stopped", "2026-12-06T12:00:58.000Z", "m2", 42);
        assert!(may_take(&stopped, &me, now(), LIMIT, |_| true).is_ok());
        let silent = host("up", "2026-12-06T12:00:00.000Z", "m2", 42);
        assert!(may_take(&silent, &me, now(), LIMIT, |_| true).is_ok());
    }

    fn fleet_host(name: &str, labels: &str, max: Option<i64>, free: Option<i64>) -> Host {
        Host {
            name: name.into(),
            labels: labels.into(),
            max_instances: max,
            free_memory_mb: free,
            ..host("up", "2026-12-06T12:00:58.000Z", "m1", 1)
        }
    }

    #[test]
    fn the_first_host_sets_the_fleets_token_and_the_others_must_bring_it() {
        let (fleet, other) = (
            token_hash("fleet-token-0123456789"),
            token_hash("mine-0123456789"),
        );
        assert_eq!(fleet.len(), 64);
        assert_eq!(fleet_token(None, &fleet, &[]), Ok(TokenStep::Set));
        assert_eq!(
            fleet_token(Some(&fleet), &fleet, &["beta".into()]),
            Ok(TokenStep::Keep)
        );
        let refused = fleet_token(Some(&fleet), &other, &["beta".into()]).unwrap_err();
        assert!(
            refused.starts_with("beta serves this registry with another"),
            "{refused}"
        );
        assert!(refused.contains("--token (or TROUPE_TOKEN)"), "{refused}");
        // Nobody else serves: the new token becomes the fleet's.
        assert_eq!(fleet_token(Some(&fleet), &other, &[]), Ok(TokenStep::Set));
    }

    #[test]
    fn a_new_instance_goes_where_it_is_asked_or_to_its_parents_host() {
        let (a, b, c) = (
            fleet_host("alpha", "[\"eu\"]", Some(4), Some(8000)),
            fleet_host("beta", "[\"gpu\",\"eu\"]", None, Some(3000)),
            fleet_host("gamma", "[\"gpu\"]", Some(10), Some(16000)),
        );
        let fleet = [
            Candidate {
                host: &a,
                standing: Standing::Up,
                live: 4,
            },
            Candidate {
                host: &b,
                standing: Standing::Up,
                live: 1,
            },
            Candidate {
                host: &c,
                standing: Standing::Up,
                live: 2,
            },
        ];
        assert_eq!(place(None, "beta", &fleet), Ok("beta".into()));
        assert_eq!(place(Some("gamma"), "beta", &fleet), Ok("gamma".into()));
        // Unlimited instances count as the most room, then memory.
        assert_eq!(place(Some("label:gpu"), "alpha", &fleet), Ok("beta".into()));
        // alpha is full: refused, with where there is room.
        let full = place(Some("alpha"), "beta", &fleet).unwrap_err();
        assert!(
            full.starts_with("host alpha is full: 4 of its 4 instances run"),
            "{full}"
        );
        assert!(
            full.contains("hosts with room: beta (no instance limit, 3000 MiB free), gamma (8 more instances, 16000 MiB free)"),
            "{full}"
        );
        let none = place(Some("label:arm"), "alpha", &fleet).unwrap_err();
        assert_eq!(
            none,
            "no host has the label \"arm\"; the labels are eu, gpu"
        );
        let unknown = place(Some("delta"), "alpha", &fleet).unwrap_err();
        assert!(
            unknown.contains("the hosts are alpha, beta, gamma"),
            "{unknown}"
        );
    }

    #[test]
    fn a_host_that_cannot_take_an_instance_says_why() {
        let (a, b) = (
            fleet_host("alpha", "[\"gpu\"]", None, Some(300)),
            fleet_host("beta", "[\"gpu\"]", None, None),
        );
        let lost = Standing::Lost {
            since: "2026-12-06T12:00:00.000Z".into(),
        };
        let fleet = [
            Candidate {
                host: &a,
                standing: Standing::Up,
                live: 0,
            },
            Candidate {
                host: &b,
                standing: lost,
                live: 3,
            },
        ];
        let low = place(None, "alpha", &fleet).unwrap_err();
        assert!(low.contains("300 MiB of memory free"), "{low}");
        assert!(
            low.ends_with("no host of the fleet takes new instances now"),
            "{low}"
        );
        let gpu = place(Some("label:gpu"), "alpha", &fleet).unwrap_err();
        assert!(gpu.contains("beta has been silent since"), "{gpu}");
        let draining = [Candidate {
            host: &b,
            standing: Standing::Draining,
            live: 0,
        }];
        assert!(
            place(None, "beta", &draining)
                .unwrap_err()
                .starts_with("host beta is draining")
        );
    }
}
