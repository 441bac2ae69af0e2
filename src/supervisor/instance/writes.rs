//! What the instance task writes to the database, kept until it is written. A write that
//! fails (a lock held longer than the busy timeout, a full disk) is retried with backoff, in
//! order, and nothing after it is written first: a waiter never hears of an answer the
//! database does not hold, and no transcript line or hook is lost to a transient error.

use std::collections::VecDeque;

use tokio::time::{Duration, Instant};

use crate::agents::Record;
use crate::states::{InstanceState, InterruptOutcome, MessageState};

/// One row to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Started {
        message_id: String,
        prompt_id: Option<String>,
    },
    Output {
        message_id: Option<String>,
        record: Record,
    },
    Finish {
        message_id: String,
        state: MessageState,
        response: Option<String>,
        reason: String,
    },
    Requeue {
        message_id: String,
    },
    State {
        state: InstanceState,
        reason: String,
    },
    Interrupt {
        id: i64,
        outcome: InterruptOutcome,
        detail: String,
    },
    /// The session id the CLI named.
    Session {
        id: String,
    },
    /// The instance's unfinished messages fail: it ended.
    FailUnfinished {
        reason: String,
    },
}

const FIRST_RETRY: Duration = Duration::from_millis(250);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// The writes not yet done, and when to try again.
#[derive(Debug, Default)]
pub struct Unwritten {
    queue: VecDeque<Write>,
    backoff: Option<Duration>,
    retry_at: Option<Instant>,
}

impl Unwritten {
    pub fn push(&mut self, write: Write) {
        self.queue.push_back(write);
    }

    /// The next write to try, unless a retry is not due yet.
    pub fn next(&self, now: Instant) -> Option<&Write> {
        match self.retry_at {
            Some(at) if at > now => None,
            _ => self.queue.front(),
        }
    }

    /// The write from [`Unwritten::next`] is done.
    pub fn written(&mut self) -> Option<Write> {
        self.backoff = None;
        self.retry_at = None;
        self.queue.pop_front()
    }

    /// The write from [`Unwritten::next`] failed: try again later, waiting longer each time.
    pub fn failed(&mut self, now: Instant) -> Duration {
        let wait = self
            .backoff
            .map_or(FIRST_RETRY, |b| (b * 2).min(LONGEST_RETRY));
        self.backoff = Some(wait);
        self.retry_at = Some(now + wait);
        wait
    }

    /// Makes the next write due at once (a last try before the task ends).
    pub fn due_now(&mut self) {
        self.retry_at = None;
    }

    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requeue(id: &str) -> Write {
        Write::Requeue {
            message_id: id.into(),
        }
    }

    #[test]
    fn a_failed_write_is_retried_in_order_with_growing_waits() {
        let t0 = Instant::now();
        let mut u = Unwritten::default();
        u.push(requeue("a"));
        u.push(requeue("b"));
        assert_eq!(u.next(t0), Some(&requeue("a")));
        assert_eq!(u.failed(t0), FIRST_RETRY);
        assert_eq!(u.next(t0), None, "not before the retry is due");
        assert_eq!(u.next(t0 + FIRST_RETRY), Some(&requeue("a")));
        let mut waits = vec![];
        for _ in 0..6 {
            waits.push(u.failed(t0).as_millis());
        }
        assert_eq!(waits, [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(u.written(), Some(requeue("a")));
        assert_eq!(u.retry_at(), None);
        assert_eq!(u.next(t0), Some(&requeue("b")), "b keeps its place");
        assert_eq!(u.failed(t0), FIRST_RETRY, "a new failure starts short");
        assert_eq!(u.len(), 1);
    }
}
