//! One-time links that decide a question from a notification: `/n/<token>`. A GET shows the
//! question and a button; only a POST decides, so a chat app's link preview never does. The
//! token is 256 random bits; the database keeps only its SHA-256.

use base64::Engine;
use sha2::{Digest, Sha256};

/// Where the links live, under `--public-url`.
pub const PREFIX: &str = "/n/";

/// A fresh link token.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a token.
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// A token as a link can carry one: 43 characters of base64url. Anything else is refused
/// before the database is asked.
pub fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a request to a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Its question was decided (by anyone): say by whom, change nothing.
    Decided,
    /// The link outlived its question's wait.
    Expired,
    /// A GET: show the question and the button.
    Show,
    /// A POST: decide, if the link is not spent.
    Decide,
}

/// The step for a link whose question is `open` (or decided), that expires at `expires_at`,
/// asked at `now` (both as the database writes times), by a POST or not.
pub fn step(open: bool, expires_at: &str, now: &str, post: bool) -> Step {
    if !open {
        Step::Decided
    } else if expires_at < now {
        Step::Expired
    } else if post {
        Step::Decide
    } else {
        Step::Show
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A small page a phone shows well. `lines` are plain text (escaped here); `button`, when
/// given, is a form that POSTs back to the same link.
pub fn page(title: &str, lines: &[String], button: Option<&str>) -> String {
    let mut body = String::new();
    for l in lines {
        body.push_str("<p>");
        body.push_str(&escape(l));
        body.push_str("</p>\n");
    }
    if let Some(label) = button {
        body.push_str(&format!(
            "<form method=\"post\"><button type=\"submit\">{}</button></form>\n",
            escape(label)
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"same-origin\">\
         <title>{t} · troupe</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;\
         padding:0 1rem;line-height:1.4}}p{{white-space:pre-wrap;word-break:break-word}}\
         button{{font-size:1.2rem;padding:.6rem 1.6rem}}</style></head>\n\
         <body><h1>{t}</h1>\n{body}</body></html>\n",
        t = escape(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_kept_only_as_hashes() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(well_formed(&a), "{a}");
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        assert!(!hash(&a).contains(&a));
        for bad in [
            "",
            "short",
            &format!("{a}x"),
            &a.replace(a.chars().next().unwrap(), "/"),
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn only_a_post_on_an_open_question_before_expiry_decides() {
        let (early, late) = ("2026-12-07T10:00:00.000Z", "2026-12-07T11:00:00.000Z");
        assert_eq!(step(true, late, early, true), Step::Decide);
        assert_eq!(
            step(true, late, early, false),
            Step::Show,
            "a preview never decides"
        );
        assert_eq!(step(true, early, late, true), Step::Expired);
        assert_eq!(step(false, late, early, true), Step::Decided);
        assert_eq!(
            step(false, early, late, false),
            Step::Decided,
            "who decided, even expired"
        );
    }

    #[test]
    fn pages_escape_what_instances_wrote() {
        let p = page(
            "Allow <b>?",
            &["Bash: echo '<script>alert(1)</script>' & done".into()],
            Some("Allow"),
        );
        assert!(!p.contains("<script>"), "{p}");
        assert!(p.contains("&lt;script&gt;") && p.contains("&amp; done"));
        assert!(p.contains("<form method=\"post\"><button type=\"submit\">Allow</button></form>"));
        assert!(!page("Done", &[], None).contains("<form"));
    }
}
