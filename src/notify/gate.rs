//! When a sink's notices go out: the first of a kind at once, the rest of that minute as one
//! digest, and nothing during quiet hours but one digest per kind when they end. Questions
//! (permission, approval) each go alone, since each carries its own Allow and Deny. No I/O:
//! the caller passes the clock.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{NaiveTime, Timelike};
use tokio::time::{Duration, Instant};

use super::notice::{Kind, Notice};

/// How long after a notice others of its kind are folded into one digest (the default of
/// `Config::notify_digest`).
pub const DIGEST_WINDOW: Duration = Duration::from_secs(60);

/// Hours of the day (server's local time) a sink is not to be disturbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    /// Minutes after midnight.
    start: u32,
    end: u32,
}

fn minute_of(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.trim().len() == 5).then_some(h * 60 + m)
}

impl Quiet {
    pub fn parse(s: &str) -> Result<Quiet, String> {
        let bad = || {
            format!(
                "quiet_hours {s:?}: write HH:MM-HH:MM in the server's local time, e.g. \
                 \"22:00-07:00\""
            )
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minute_of(a).ok_or_else(bad)?, minute_of(b).ok_or_else(bad)?);
        if start == end {
            return Err(format!(
                "quiet_hours {s:?}: start and end are the same time"
            ));
        }
        Ok(Quiet { start, end })
    }

    fn minute(t: NaiveTime) -> u32 {
        t.hour() * 60 + t.minute()
    }

    pub fn contains(&self, t: NaiveTime) -> bool {
        let m = Quiet::minute(t);
        if self.start < self.end {
            (self.start..self.end).contains(&m)
        } else {
            m >= self.start || m < self.end
        }
    }

    /// How long from `t` until the hours end (zero outside them).
    pub fn until_end(&self, t: NaiveTime) -> Duration {
        if !self.contains(t) {
            return Duration::ZERO;
        }
        let now = t.num_seconds_from_midnight();
        let end = self.end * 60;
        let secs = if end > now {
            end - now
        } else {
            end + 86_400 - now
        };
        Duration::from_secs(u64::from(secs))
    }
}

impl fmt::Display for Quiet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

struct Window {
    closes: Instant,
    held: Vec<Notice>,
}

/// One sink's notices on their way out.
pub struct Gate {
    quiet: Option<Quiet>,
    window: Duration,
    windows: BTreeMap<Kind, Window>,
    quiet_held: Vec<Notice>,
}

impl Gate {
    /// A gate that folds a kind's notices for `window` after one goes out.
    pub fn new(quiet: Option<Quiet>, window: Duration) -> Gate {
        Gate {
            quiet,
            window,
            windows: BTreeMap::new(),
            quiet_held: Vec::new(),
        }
    }

    fn is_quiet(&self, local: NaiveTime) -> bool {
        self.quiet.is_some_and(|q| q.contains(local))
    }

    /// A notice for this sink: returned when it goes out now, kept when it waits.
    pub fn offer(&mut self, notice: Notice, now: Instant, local: NaiveTime) -> Option<Notice> {
        if self.is_quiet(local) {
            self.quiet_held.push(notice);
            return None;
        }
        if notice.kind.is_question() {
            return Some(notice);
        }
        match self.windows.get_mut(&notice.kind) {
            Some(w) if now < w.closes => {
                w.held.push(notice);
                None
            }
            _ => {
                self.windows.insert(
                    notice.kind,
                    Window {
                        closes: now + self.window,
                        held: Vec::new(),
                    },
                );
                Some(notice)
            }
        }
    }

    /// The digests whose wait is over. A window that had more keeps folding for another
    /// minute, so a storm gives one digest a minute.
    pub fn due(&mut self, now: Instant, local: NaiveTime) -> Vec<Notice> {
        let mut out = Vec::new();
        let window = self.window;
        if !self.quiet_held.is_empty() && !self.is_quiet(local) {
            let mut by_kind: BTreeMap<Kind, Vec<Notice>> = BTreeMap::new();
            for n in self.quiet_held.drain(..) {
                by_kind.entry(n.kind).or_default().push(n);
            }
            out.extend(by_kind.into_values().filter_map(Notice::digest));
        }
        self.windows.retain(|_, w| {
            if now < w.closes {
                return true;
            }
            if w.held.is_empty() {
                return false;
            }
            out.extend(Notice::digest(std::mem::take(&mut w.held)));
            w.closes = now + window;
            true
        });
        out
    }

    /// When [`Gate::due`] next has something, if anything waits.
    pub fn next_due(&self, now: Instant, local: NaiveTime) -> Option<Instant> {
        let window = self
            .windows
            .values()
            .filter(|w| !w.held.is_empty())
            .map(|w| w.closes)
            .min();
        let quiet = (!self.quiet_held.is_empty())
            .then(|| now + self.quiet.map_or(Duration::ZERO, |q| q.until_end(local)));
        match (window, quiet) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn failed(i: usize) -> Notice {
        Notice::new(Kind::Failed, format!("dev-{i} failed"), "")
    }

    #[test]
    fn quiet_hours_parse_and_wrap_midnight() {
        let q = Quiet::parse("22:00-07:00").unwrap();
        assert_eq!(q.to_string(), "22:00-07:00");
        assert!(q.contains(at(23, 59)) && q.contains(at(0, 0)) && q.contains(at(6, 59)));
        assert!(!q.contains(at(7, 0)) && !q.contains(at(21, 59)));
        assert_eq!(q.until_end(at(6, 30)), Duration::from_secs(30 * 60));
        assert_eq!(q.until_end(at(22, 0)), Duration::from_secs(9 * 3600));
        assert_eq!(q.until_end(at(12, 0)), Duration::ZERO);
        let day = Quiet::parse("12:00-13:30").unwrap();
        assert!(day.contains(at(13, 29)) && !day.contains(at(13, 30)) && !day.contains(at(11, 0)));
        for bad in [
            "22-07",
            "22:00",
            "24:00-07:00",
            "22:00-07:60",
            "7:00-8:00",
            "09:00-09:00",
        ] {
            assert!(Quiet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_of_twenty_failures_is_the_first_and_one_digest() {
        let mut g = Gate::new(None, DIGEST_WINDOW);
        let t0 = Instant::now();
        let noon = at(12, 0);
        let first = g
            .offer(failed(0), t0, noon)
            .expect("the first goes at once");
        assert_eq!(first.title, "dev-0 failed");
        for i in 1..20 {
            let t = t0 + Duration::from_millis(100 * i as u64);
            assert!(g.offer(failed(i), t, noon).is_none(), "{i} waits");
        }
        assert_eq!(g.next_due(t0, noon), Some(t0 + DIGEST_WINDOW));
        assert!(g.due(t0 + Duration::from_secs(59), noon).is_empty());
        let digest = g.due(t0 + DIGEST_WINDOW, noon);
        assert_eq!(digest.len(), 1);
        assert_eq!(digest[0].items.len(), 19);
        assert_eq!(digest[0].title, "19 instances failed or exited");
        assert_eq!(g.next_due(t0 + DIGEST_WINDOW, noon), None);
        // The window stays open a minute after a digest: the next one is folded too.
        let t1 = t0 + DIGEST_WINDOW + Duration::from_secs(1);
        assert!(g.offer(failed(20), t1, noon).is_none());
        let later = g.due(t0 + DIGEST_WINDOW * 2, noon);
        assert_eq!(later.len(), 1);
        assert_eq!(
            later[0].title, "dev-20 failed",
            "a digest of one is the notice itself"
        );
        // A quiet minute later, the next goes at once again.
        assert!(g.due(t0 + DIGEST_WINDOW * 3, noon).is_empty());
        assert!(g.offer(failed(21), t0 + DIGEST_WINDOW * 3, noon).is_some());
    }

    #[test]
    fn questions_are_never_folded_and_kinds_fold_apart() {
        let mut g = Gate::new(None, DIGEST_WINDOW);
        let t0 = Instant::now();
        let noon = at(12, 0);
        for i in 0..3 {
            let n = Notice::new(Kind::Permission, format!("p{i}"), "");
            assert!(g.offer(n, t0, noon).is_some());
        }
        assert!(g.offer(failed(0), t0, noon).is_some());
        let answered = Notice::new(Kind::Answered, "a".into(), "");
        assert!(
            g.offer(answered, t0, noon).is_some(),
            "another kind is not folded"
        );
        assert!(g.offer(failed(1), t0, noon).is_none());
    }

    #[test]
    fn quiet_hours_hold_everything_until_they_end_then_one_digest_per_kind() {
        let mut g = Gate::new(Some(Quiet::parse("22:00-07:00").unwrap()), DIGEST_WINDOW);
        let t0 = Instant::now();
        assert!(g.offer(failed(0), t0, at(23, 0)).is_none());
        assert!(g.offer(failed(1), t0, at(23, 5)).is_none());
        let p = Notice::new(Kind::Permission, "p".into(), "");
        assert!(g.offer(p, t0, at(23, 6)).is_none(), "even a question waits");
        assert_eq!(
            g.next_due(t0, at(6, 0)),
            Some(t0 + Duration::from_secs(3600))
        );
        assert!(g.due(t0, at(6, 59)).is_empty());
        let out = g.due(t0, at(7, 0));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].kind, Kind::Permission);
        assert_eq!(out[1].title, "2 instances failed or exited");
        assert_eq!(g.next_due(t0, at(7, 0)), None);
    }
}
