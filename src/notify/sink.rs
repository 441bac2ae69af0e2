//! A place notices go (`[[notify]]` in the config file), checked once at start, and what a
//! notice looks like to each kind of receiver. Nothing here does I/O.

use serde::Deserialize;
use serde_json::{Value, json};

use super::notice::{Kind, Links, Notice};

/// What a receiver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// troupe's own JSON, signed with the sink's secret.
    Webhook,
    /// An ntfy topic (ntfy.sh or self-hosted), with Allow / Deny / Open buttons.
    Ntfy,
    /// A Slack incoming webhook.
    Slack,
    /// A Discord webhook.
    Discord,
    /// Every browser that added the dashboard (Web Push); one such sink, built in.
    WebPush,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Ntfy => "ntfy",
            SinkKind::Slack => "slack",
            SinkKind::Discord => "discord",
            SinkKind::WebPush => "webpush",
        }
    }
}

/// A `[[notify]]` table as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    /// The receiver (none for webpush: each browser has its own).
    #[serde(default)]
    pub url: String,
    /// webhook: the HMAC key the receiver checks the signature with.
    #[serde(default)]
    pub secret: Option<String>,
    /// ntfy: an access token for a protected topic (sent as a bearer token).
    #[serde(default)]
    pub token: Option<String>,
    /// The kinds this sink gets [default: all].
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// `HH:MM-HH:MM` in the server's local time: notices wait, and go out as one digest per
    /// kind when the hours end.
    #[serde(default)]
    pub quiet_hours: Option<String>,
}

impl std::fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &redacted_url(&self.url))
            .finish_non_exhaustive()
    }
}

/// A sink, checked. Its Debug form leaves out the secret and the token.
#[derive(Clone)]
pub struct Sink {
    pub name: String,
    pub kind: SinkKind,
    pub url: String,
    pub secret: Option<String>,
    pub token: Option<String>,
    pub kinds: Vec<Kind>,
    pub quiet: Option<super::gate::Quiet>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &redacted_url(&self.url))
            .field("kinds", &self.kinds)
            .field("quiet", &self.quiet)
            .finish_non_exhaustive()
    }
}

impl Sink {
    /// The Web Push sink when the config file names none: every kind, no quiet hours.
    pub fn default_push() -> Sink {
        Sink {
            name: "push".into(),
            kind: SinkKind::WebPush,
            url: String::new(),
            secret: None,
            token: None,
            kinds: Kind::ALL.to_vec(),
            quiet: None,
        }
    }

    pub fn wants(&self, kind: Kind) -> bool {
        self.kinds.contains(&kind)
    }

    /// What the API and `troupe notify` show of a sink: never its secret or token.
    pub fn describe(&self) -> Value {
        json!({
            "name": self.name,
            "kind": self.kind,
            "url": if self.kind == SinkKind::WebPush {
                "each browser's push service".to_string()
            } else {
                redacted_url(&self.url)
            },
            "signed": self.secret.is_some(),
            "events": self.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "quiet_hours": self.quiet.map(|q| q.to_string()),
        })
    }
}

/// A URL with its path cut to the host, for display: Slack's and Discord's webhook paths are
/// their secret, and an ntfy topic name is its only protection.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if rest.len() > authority.len() {
        format!("{scheme}://{host}/…")
    } else {
        format!("{scheme}://{host}")
    }
}

/// Checks every `[[notify]]` table: names unique and plain, URLs http(s), kinds known, a
/// webhook's secret present, quiet hours that parse.
pub fn check(tables: Vec<SinkConfig>) -> Result<Vec<Sink>, String> {
    let mut sinks: Vec<Sink> = Vec::new();
    for t in tables {
        let name = t.name.trim().to_string();
        let at = format!("[[notify]] {name:?}");
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "[[notify]] name {:?}: use 1 to 64 letters, digits, '-' or '_'",
                t.name
            ));
        }
        if sinks.iter().any(|s| s.name == name) {
            return Err(format!(
                "{at}: the name is used twice; give each sink its own"
            ));
        }
        let url = t.url.trim().to_string();
        if t.kind == SinkKind::WebPush {
            if !url.is_empty() {
                return Err(format!(
                    "{at}: a webpush sink has no url: each browser that adds the dashboard \
                     brings its own"
                ));
            }
            if sinks.iter().any(|s| s.kind == SinkKind::WebPush) {
                return Err(format!(
                    "{at}: there is one webpush sink; give it all its kinds"
                ));
            }
        } else {
            let parsed: Result<reqwest::Url, _> = url.parse();
            match parsed {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return Err(format!("{at}: url {url:?} is not an http(s) URL")),
            }
        }
        if t.kind == SinkKind::Ntfy {
            let topic = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            let path_empty = url
                .split_once("://")
                .is_some_and(|(_, r)| !r.trim_end_matches('/').contains('/'));
            if path_empty || topic.is_empty() {
                return Err(format!(
                    "{at}: an ntfy url names its topic, e.g. https://ntfy.sh/my-troupe-topic"
                ));
            }
        }
        let secret = t.secret.filter(|s| !s.is_empty());
        match (t.kind, &secret) {
            (SinkKind::Webhook, None) => {
                return Err(format!(
                    "{at}: a webhook needs a secret, the key its receiver checks \
                     X-Troupe-Signature with: make one with `openssl rand -hex 32` and add \
                     secret = \"<it>\" to the table"
                ));
            }
            (SinkKind::Webhook, Some(s)) if s.len() < 16 => {
                return Err(format!(
                    "{at}: the secret is too short; use 16 characters or more"
                ));
            }
            (SinkKind::Webhook, _) => {}
            (_, Some(_)) => {
                return Err(format!(
                    "{at}: only a webhook takes a secret ({} receivers check none)",
                    t.kind.as_str()
                ));
            }
            (_, None) => {}
        }
        if t.token.is_some() && t.kind != SinkKind::Ntfy {
            return Err(format!("{at}: only an ntfy sink takes a token"));
        }
        let kinds = match t.events {
            None => Kind::ALL.to_vec(),
            Some(names) => {
                let mut kinds = Vec::new();
                for n in &names {
                    let k = Kind::parse(n).filter(|k| *k != Kind::Test).ok_or_else(|| {
                        format!(
                            "{at}: events: {n:?} is not a kind troupe sends; use {}",
                            Kind::ALL
                                .iter()
                                .map(|k| k.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })?;
                    if !kinds.contains(&k) {
                        kinds.push(k);
                    }
                }
                kinds
            }
        };
        let quiet = match &t.quiet_hours {
            None => None,
            Some(q) => Some(super::gate::Quiet::parse(q).map_err(|e| format!("{at}: {e}"))?),
        };
        sinks.push(Sink {
            name,
            kind: t.kind,
            url,
            secret,
            token: t.token.filter(|s| !s.is_empty()),
            kinds,
            quiet,
        });
    }
    Ok(sinks)
}

/// One HTTP request to a receiver: always a POST of JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The request that tells `sink` of `notice`, with `links` for its questions.
pub fn render(sink: &Sink, notice: &Notice, links: &Links) -> Request {
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let (url, body) = match sink.kind {
        SinkKind::Webhook => {
            headers.push(("X-Troupe-Event".into(), notice.kind.as_str().into()));
            headers.push(("X-Troupe-Delivery".into(), notice.id.clone()));
            (sink.url.clone(), webhook(notice, links))
        }
        SinkKind::Ntfy => {
            if let Some(token) = &sink.token {
                headers.push(("Authorization".into(), format!("Bearer {token}")));
            }
            let (base, topic) = ntfy_topic(&sink.url);
            (base, ntfy(topic, notice, links))
        }
        SinkKind::Slack => (sink.url.clone(), slack(notice, links)),
        SinkKind::Discord => (sink.url.clone(), discord(notice, links)),
        // Sent per browser: the caller names the endpoint, and the body is encrypted when sent.
        SinkKind::WebPush => {
            headers = vec![
                ("TTL".into(), "3600".into()),
                ("Urgency".into(), priority(notice.kind).1.into()),
            ];
            (String::new(), push(notice, links))
        }
    };
    Request {
        url,
        headers,
        body: body.to_string(),
    }
}

/// troupe's own JSON: everything a receiver needs to act, and nothing secret.
fn webhook(notice: &Notice, links: &Links) -> Value {
    let mut body = json!({
        "id": notice.id,
        "kind": notice.kind.as_str(),
        "at": notice.at,
        "title": notice.title,
        "text": notice.text,
        "instance": notice.instance.as_ref().map(|i| json!({
            "id": i.id, "name": i.name, "state": i.state,
        })),
    });
    if let Some(target) = &notice.target {
        body[target.field()] = json!(target.id());
    }
    body["links"] = links_json(links);
    if let Some(note) = &links.note {
        body["links_note"] = json!(note);
    }
    if !notice.items.is_empty() {
        body["items"] = json!(
            notice
                .items
                .iter()
                .map(|i| json!({ "id": i.id, "at": i.at, "title": i.title }))
                .collect::<Vec<_>>()
        );
    }
    body
}

fn links_json(links: &Links) -> Value {
    let out: serde_json::Map<String, Value> = links
        .each()
        .map(|(label, url)| (label.to_ascii_lowercase(), json!(url)))
        .collect();
    if out.is_empty() {
        Value::Null
    } else {
        Value::Object(out)
    }
}

/// ntfy's JSON publishing goes to the server's root with the topic in the body; the topic URL
/// as configured is `https://server/topic`.
fn ntfy_topic(url: &str) -> (String, &str) {
    let trimmed = url.trim_end_matches('/');
    let (base, topic) = trimmed.rsplit_once('/').unwrap_or((trimmed, ""));
    (format!("{base}/"), topic)
}

/// A kind's ntfy priority, Web Push urgency and ntfy tag.
fn priority(kind: Kind) -> (u8, &'static str, &'static str) {
    match kind {
        Kind::Permission => (4, "high", "lock"),
        Kind::Approval => (4, "high", "question"),
        Kind::Failed => (4, "high", "warning"),
        Kind::Budget => (4, "high", "moneybag"),
        Kind::HostLost => (4, "high", "rotating_light"),
        Kind::Answered => (3, "normal", "speech_balloon"),
        Kind::TeamIdle => (3, "normal", "zzz"),
        Kind::Test => (3, "normal", "test_tube"),
    }
}

/// What the dashboard's service worker shows: small, since a push service takes 4 KB.
fn push(notice: &Notice, links: &Links) -> Value {
    json!({
        "id": notice.id,
        "kind": notice.kind.as_str(),
        "title": notice.title,
        "body": super::notice::excerpt(&notice.text, 300),
        // The notification replaces an earlier one about the same question.
        "tag": notice.target.as_ref().map_or(notice.id.as_str(), |t| t.id()),
        "url": links.open.clone().unwrap_or_else(|| "/".into()),
    })
}

fn ntfy(topic: &str, notice: &Notice, links: &Links) -> Value {
    let (priority, _, tag) = priority(notice.kind);
    let mut actions = Vec::new();
    // ntfy's http action posts from the phone without opening anything: the decision itself.
    if let (Some(allow), Some(deny)) = (&links.allow, &links.deny) {
        actions.push(json!({ "action": "http", "label": "Allow", "url": allow,
                             "method": "POST", "clear": true }));
        actions.push(json!({ "action": "http", "label": "Deny", "url": deny,
                             "method": "POST", "clear": true }));
    }
    if let Some(open) = &links.open {
        actions.push(json!({ "action": "view", "label": "Open", "url": open }));
    }
    let mut message = notice.text.clone();
    if let Some(note) = &links.note {
        message.push_str("\n\n");
        message.push_str(note);
    }
    let mut body = json!({
        "topic": topic,
        "title": notice.title,
        "message": message,
        "priority": priority,
        "tags": [tag],
    });
    if !actions.is_empty() {
        body["actions"] = json!(actions);
    }
    if let Some(open) = &links.open {
        body["click"] = json!(open);
    }
    body
}

/// Slack reads `<url|label>` as a link and `<!channel>` as a mention: text from instances is
/// escaped so it can be neither.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack(notice: &Notice, links: &Links) -> Value {
    let mut text = format!(
        "*{}*\n{}",
        slack_escape(&notice.title),
        slack_escape(&notice.text)
    );
    let buttons: Vec<String> = links
        .each()
        .map(|(label, url)| format!("<{url}|{label}>"))
        .collect();
    if !buttons.is_empty() {
        text.push('\n');
        text.push_str(&buttons.join(" · "));
    }
    if let Some(note) = &links.note {
        text.push_str("\n_");
        text.push_str(&slack_escape(note));
        text.push('_');
    }
    json!({ "text": text })
}

/// Discord's message limit is 2,000 characters.
const DISCORD_MAX: usize = 2000;

fn discord(notice: &Notice, links: &Links) -> Value {
    let buttons: Vec<String> = links
        .each()
        .map(|(label, url)| format!("[{label}](<{url}>)"))
        .collect();
    let mut tail = String::new();
    if !buttons.is_empty() {
        tail.push('\n');
        tail.push_str(&buttons.join(" · "));
    }
    if let Some(note) = &links.note {
        tail.push_str("\n*");
        tail.push_str(note);
        tail.push('*');
    }
    let head = format!("**{}**\n", notice.title);
    let room = DISCORD_MAX.saturating_sub(head.chars().count() + tail.chars().count());
    let text = super::notice::excerpt(&notice.text, room);
    json!({
        "content": format!("{head}{text}{tail}"),
        // Text from instances could say @everyone: nobody is pinged by a notice.
        "allowed_mentions": { "parse": [] },
    })
}

/// `X-Troupe-Signature`: `sha256=` and the hex HMAC-SHA256 of the body under the secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for b in tag.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::notice::{Instance, Target};

    fn table(kind: &str, extra: &str) -> Result<Vec<Sink>, String> {
        let text = format!(
            "[[notify]]\nname = \"ops\"\nkind = \"{kind}\"\nurl = \"https://example.org/t\"\n{extra}"
        );
        let file: crate::settings::ConfigFile = toml::from_str(&text).map_err(|e| e.to_string())?;
        check(file.notify)
    }

    fn permission() -> Notice {
        Notice {
            id: "ntc-1".into(),
            kind: Kind::Permission,
            at: "2026-12-07T10:00:00.000Z".into(),
            title: "api asks to run Bash".into(),
            text: "Bash: rm -rf build <!channel> @everyone".into(),
            instance: Some(Instance {
                id: "dev-1a2b".into(),
                name: "api".into(),
                state: "waiting_permission".into(),
            }),
            target: Some(Target::Permission("perm-1".into())),
            items: Vec::new(),
        }
    }

    fn links() -> Links {
        Links {
            allow: Some("https://phone.example/n/AAA".into()),
            deny: Some("https://phone.example/n/BBB".into()),
            open: Some("https://phone.example/#dev-1a2b".into()),
            note: None,
        }
    }

    #[test]
    fn sinks_are_checked_with_the_fix_named() {
        assert!(table("webhook", "secret = \"0123456789abcdef\"").is_ok());
        let e = table("webhook", "").unwrap_err();
        assert!(e.contains("needs a secret"), "{e}");
        let e = table("webhook", "secret = \"short\"").unwrap_err();
        assert!(e.contains("too short"), "{e}");
        let e = table("slack", "secret = \"0123456789abcdef\"").unwrap_err();
        assert!(e.contains("only a webhook"), "{e}");
        let e = table("ntfy", "events = [\"permission\", \"lunch\"]").unwrap_err();
        assert!(
            e.contains("\"lunch\" is not a kind") && e.contains("team_idle"),
            "{e}"
        );
        let e = table("ntfy", "quiet_hours = \"25:00-07:00\"").unwrap_err();
        assert!(e.contains("quiet_hours"), "{e}");
        let e = table("pager", "").unwrap_err();
        assert!(e.contains("pager"), "{e}");
        let sinks = table("ntfy", "events = [\"permission\", \"failed\"]").unwrap();
        assert!(sinks[0].wants(Kind::Permission) && !sinks[0].wants(Kind::Answered));
        let all = table("discord", "").unwrap();
        assert_eq!(all[0].kinds.len(), Kind::ALL.len());

        let bad_url = "[[notify]]\nname = \"x\"\nkind = \"slack\"\nurl = \"ftp://h/x\"\n";
        let file: crate::settings::ConfigFile = toml::from_str(bad_url).unwrap();
        assert!(
            check(file.notify)
                .unwrap_err()
                .contains("not an http(s) URL")
        );
        let no_topic = "[[notify]]\nname = \"x\"\nkind = \"ntfy\"\nurl = \"https://ntfy.sh\"\n";
        let file: crate::settings::ConfigFile = toml::from_str(no_topic).unwrap();
        assert!(check(file.notify).unwrap_err().contains("names its topic"));
        let twice = "[[notify]]\nname = \"x\"\nkind = \"slack\"\nurl = \"https://h/a\"\n\
                     [[notify]]\nname = \"x\"\nkind = \"discord\"\nurl = \"https://h/b\"\n";
        let file: crate::settings::ConfigFile = toml::from_str(twice).unwrap();
        assert!(check(file.notify).unwrap_err().contains("used twice"));
        let bad_name = "[[notify]]\nname = \"a b\"\nkind = \"slack\"\nurl = \"https://h/a\"\n";
        let file: crate::settings::ConfigFile = toml::from_str(bad_name).unwrap();
        assert!(check(file.notify).unwrap_err().contains("letters, digits"));
    }

    #[test]
    fn the_api_sees_neither_secret_nor_secret_path() {
        let sink = &table("webhook", "secret = \"0123456789abcdef-secret\"").unwrap()[0];
        let shown = sink.describe().to_string();
        assert!(
            !shown.contains("secret\":\"0123") && !shown.contains("abcdef"),
            "{shown}"
        );
        assert!(shown.contains("https://example.org/…"), "{shown}");
        assert_eq!(
            redacted_url("https://user:pw@hooks.slack.com/services/T/B/X"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redacted_url("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }

    #[test]
    fn a_webhook_carries_ids_links_and_a_signature_over_the_exact_body() {
        let sink = &table("webhook", "secret = \"0123456789abcdef\"").unwrap()[0];
        let req = render(sink, &permission(), &links());
        assert_eq!(req.url, "https://example.org/t");
        let body: Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(body["id"], "ntc-1");
        assert_eq!(body["kind"], "permission");
        assert_eq!(body["request_id"], "perm-1");
        assert_eq!(body["instance"]["name"], "api");
        assert_eq!(body["links"]["allow"], "https://phone.example/n/AAA");
        assert!(
            req.headers
                .contains(&("X-Troupe-Delivery".into(), "ntc-1".into()))
        );
        // The signature any receiver computes: RFC 4231's first HMAC-SHA256 test case.
        let key = String::from_utf8(vec![0x0b; 20]).unwrap();
        assert_eq!(
            signature(&key, b"Hi There"),
            "sha256=b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn ntfy_gets_its_topic_and_buttons_that_decide() {
        let sink = &table("ntfy", "token = \"tk_abc\"").unwrap()[0];
        let req = render(sink, &permission(), &links());
        assert_eq!(req.url, "https://example.org/");
        assert!(
            req.headers
                .contains(&("Authorization".into(), "Bearer tk_abc".into()))
        );
        let body: Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(body["topic"], "t");
        assert_eq!(body["priority"], 4);
        let actions = body["actions"].as_array().unwrap();
        assert_eq!(actions[0]["label"], "Allow");
        assert_eq!(actions[0]["method"], "POST");
        assert_eq!(actions[0]["url"], "https://phone.example/n/AAA");
        assert_eq!(actions[1]["label"], "Deny");
        assert_eq!(actions[2]["action"], "view");
        // Without links, no buttons, and the message says why.
        let none = Links::without("no --public-url");
        let body: Value = serde_json::from_str(&render(sink, &permission(), &none).body).unwrap();
        assert!(body.get("actions").is_none());
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .ends_with("no --public-url")
        );
    }

    #[test]
    fn chat_receivers_cannot_be_made_to_ping_anyone() {
        let sink = &table("slack", "").unwrap()[0];
        let text = serde_json::from_str::<Value>(&render(sink, &permission(), &links()).body)
            .unwrap()["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.contains("&lt;!channel&gt;") && !text.contains("<!channel>"),
            "{text}"
        );
        assert!(
            text.contains("<https://phone.example/n/AAA|Allow>"),
            "{text}"
        );

        let sink = &table("discord", "").unwrap()[0];
        let mut long = permission();
        long.text = "x".repeat(5000);
        let body: Value = serde_json::from_str(&render(sink, &long, &links()).body).unwrap();
        assert_eq!(body["allowed_mentions"]["parse"], json!([]));
        let content = body["content"].as_str().unwrap();
        assert!(content.chars().count() <= DISCORD_MAX, "{}", content.len());
        assert!(content.ends_with("[Open](<https://phone.example/#dev-1a2b>)"));
    }
}
