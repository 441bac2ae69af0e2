//! What a notice says: its kind, one line that answers "what happened", a few lines of
//! excerpt, the instance and the question it is about. Ids, names, states and short
//! excerpts only: never tokens, system prompts or file contents.

use serde::Serialize;

/// The things troupe tells a person about when they are not looking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A permission request is held for a decision.
    Permission,
    /// An instance's call waits for the person's approval.
    Approval,
    /// One of the person's messages was answered and nobody was waiting for it.
    Answered,
    /// An instance failed, or its CLI exited on its own.
    Failed,
    /// A cost limit was crossed.
    Budget,
    /// Every member of a team is idle after work.
    TeamIdle,
    /// A host of the fleet stopped answering.
    HostLost,
    /// A sample, sent by `troupe notify test` (no sink subscribes to it).
    Test,
}

impl Kind {
    pub const ALL: &[Kind] = &[
        Kind::Permission,
        Kind::Approval,
        Kind::Answered,
        Kind::Failed,
        Kind::Budget,
        Kind::TeamIdle,
        Kind::HostLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Permission => "permission",
            Kind::Approval => "approval",
            Kind::Answered => "answered",
            Kind::Failed => "failed",
            Kind::Budget => "budget",
            Kind::TeamIdle => "team_idle",
            Kind::HostLost => "host_lost",
            Kind::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .chain([Kind::Test])
            .find(|k| k.as_str() == s.trim())
    }

    /// A question carries its own Allow and Deny, so it is never folded into a digest.
    pub fn is_question(self) -> bool {
        matches!(self, Kind::Permission | Kind::Approval)
    }

    /// The digest's title for `n` notices of this kind.
    fn many(self, n: usize) -> String {
        match self {
            Kind::Permission => format!("{n} permission requests wait"),
            Kind::Approval => format!("{n} calls wait for your approval"),
            Kind::Answered => format!("{n} messages answered"),
            Kind::Failed => format!("{n} instances failed or exited"),
            Kind::Budget => format!("{n} cost limits crossed"),
            Kind::TeamIdle => format!("{n} teams idle"),
            Kind::HostLost => format!("{n} hosts lost"),
            Kind::Test => format!("{n} test notices"),
        }
    }
}

/// The instance a notice is about.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub state: String,
}

/// The question a notice asks, which its links decide.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub enum Target {
    Permission(String),
    Approval(String),
}

impl Target {
    pub fn id(&self) -> &str {
        match self {
            Target::Permission(id) | Target::Approval(id) => id,
        }
    }

    /// The field of a webhook body that names it.
    pub fn field(&self) -> &'static str {
        match self {
            Target::Permission(_) => "request_id",
            Target::Approval(_) => "approval_id",
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Target::Permission(_) => "permission",
            Target::Approval(_) => "approval",
        }
    }
}

/// A notice folded into a digest.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Item {
    pub id: String,
    pub at: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Notice {
    /// `ntc-…`: the same in every attempt to deliver it, so a receiver can drop a repeat.
    pub id: String,
    pub kind: Kind,
    /// RFC 3339, UTC.
    pub at: String,
    pub title: String,
    pub text: String,
    pub instance: Option<Instance>,
    pub target: Option<Target>,
    /// A digest's notices, oldest first; empty for a single notice.
    pub items: Vec<Item>,
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let s = String::deserialize(d)?;
        Kind::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown kind {s:?}")))
    }
}

/// Lines of an excerpt.
const EXCERPT_LINES: usize = 6;
/// Characters of an excerpt.
pub const EXCERPT_CHARS: usize = 400;

/// The first lines of `text`, at most `max` characters, marked when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    let text = text.trim();
    let mut out = String::new();
    let mut cut = false;
    for (i, line) in text.lines().enumerate() {
        if i == EXCERPT_LINES {
            cut = true;
            break;
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(line.trim_end());
    }
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(1)).collect();
        cut = true;
    }
    if cut && max > 0 {
        if out.chars().count() >= max {
            out = out.chars().take(max.saturating_sub(1)).collect();
        }
        out.push('…');
    }
    out
}

impl Notice {
    pub fn new(kind: Kind, title: String, text: &str) -> Notice {
        Notice {
            id: format!("ntc-{}", uuid::Uuid::now_v7().simple()),
            kind,
            at: crate::db::now(),
            title,
            text: excerpt(text, EXCERPT_CHARS),
            instance: None,
            target: None,
            items: Vec::new(),
        }
    }

    /// One notice for several of one kind: the newest's instance, and each one's title.
    pub fn digest(mut notices: Vec<Notice>) -> Option<Notice> {
        if notices.len() <= 1 {
            return notices.pop();
        }
        let kind = notices[0].kind;
        let n = notices.len();
        let shown = 10;
        let mut text = notices
            .iter()
            .take(shown)
            .map(|n| format!("- {}", n.title))
            .collect::<Vec<_>>()
            .join("\n");
        if n > shown {
            text.push_str(&format!("\n… and {} more", n - shown));
        }
        let mut digest = Notice::new(kind, kind.many(n), "");
        digest.text = text;
        digest.items = notices
            .into_iter()
            .map(|n| Item {
                id: n.id,
                at: n.at,
                title: n.title,
            })
            .collect();
        Some(digest)
    }
}

/// The links a notice carries for one sink.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Links {
    pub allow: Option<String>,
    pub deny: Option<String>,
    pub open: Option<String>,
    /// Why there are none, when there are none.
    pub note: Option<String>,
}

impl Links {
    /// Each link there is, with its label, in the order receivers show them.
    pub fn each(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("Allow", &self.allow),
            ("Deny", &self.deny),
            ("Open", &self.open),
        ]
        .into_iter()
        .filter_map(|(label, url)| url.as_deref().map(|u| (label, u)))
    }

    pub fn without(why: &str) -> Links {
        Links {
            note: Some(why.to_string()),
            ..Links::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_keep_the_first_lines_and_say_when_cut() {
        assert_eq!(excerpt("  one\ntwo  \n", 100), "one\ntwo");
        let many = (1..=10)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(excerpt(&many, 100), "1\n2\n3\n4\n5\n6…");
        let long = "é".repeat(50);
        let cut = excerpt(&long, 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt("", 10), "");
    }

    #[test]
    fn a_digest_names_each_notice_and_counts_the_rest() {
        let notices: Vec<Notice> = (0..12)
            .map(|i| Notice::new(Kind::Failed, format!("dev-{i} failed"), "why"))
            .collect();
        let first = notices[0].id.clone();
        let d = Notice::digest(notices).unwrap();
        assert_eq!(d.title, "12 instances failed or exited");
        assert_eq!(d.items.len(), 12);
        assert_eq!(d.items[0].id, first);
        assert!(d.text.starts_with("- dev-0 failed\n"), "{}", d.text);
        assert!(d.text.ends_with("… and 2 more"), "{}", d.text);
        let one = Notice::new(Kind::Failed, "x".into(), "");
        assert_eq!(Notice::digest(vec![one.clone()]), Some(one));
        assert_eq!(Notice::digest(Vec::new()), None);
    }

    #[test]
    fn kinds_read_as_written() {
        for k in Kind::ALL.iter().chain(&[Kind::Test]) {
            assert_eq!(Kind::parse(k.as_str()), Some(*k));
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), *k);
        }
        assert_eq!(Kind::parse("lunch"), None);
    }
}
