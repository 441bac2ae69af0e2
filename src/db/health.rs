//! Whether the database answers, as the last attempt to use it found. A PostgreSQL server can
//! restart or drop off the network while troupe runs; writes then wait in each instance's
//! queue and retry, `/health` says `degraded` with the reason, and the log says so once when
//! it goes and once when it comes back (not once per failed write).

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// An outage as it stands: since when, and the first error that showed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outage {
    pub since: DateTime<Utc>,
    pub reason: String,
}

impl Outage {
    /// What `/health` and `troupe doctor` say.
    pub fn describe(&self) -> String {
        format!(
            "the database has not answered since {} UTC: {}; writes wait and are retried in order",
            self.since.format("%Y-%m-%d %H:%M:%S"),
            self.reason
        )
    }
}

#[derive(Debug, Default)]
pub struct Health {
    outage: Mutex<Option<Outage>>,
}

impl Health {
    /// Notes a failed use of the database. Only an error that says the server cannot be
    /// reached counts: a refused row (a constraint) is the row's fault, not the server's.
    pub fn failed(&self, error: &sqlx::Error) {
        if unreachable(error) {
            self.down(&error.to_string());
        }
    }

    /// Notes that the database cannot be reached, for `reason`.
    pub fn down(&self, reason: &str) {
        let mut outage = self.lock();
        if outage.is_none() {
            tracing::warn!(
                error = reason,
                "the database cannot be reached; writes wait and are retried in order"
            );
            *outage = Some(Outage {
                since: Utc::now(),
                reason: reason.to_string(),
            });
        }
    }

    /// Notes that the database answered.
    pub fn answered(&self) {
        let mut outage = self.lock();
        if let Some(o) = outage.take() {
            let lasted = (Utc::now() - o.since).num_milliseconds() as f64 / 1000.0;
            tracing::info!("the database answers again, after {lasted:.1} s");
        }
    }

    /// The outage in progress, if any.
    pub fn outage(&self) -> Option<Outage> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outage>> {
        self.outage.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether `error` says the server is out of reach (gone, restarting, refusing connections)
/// rather than that it refused what was asked.
pub fn unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        // troupe closed it itself, stopping: not the server's doing.
        sqlx::Error::PoolClosed => false,
        // PostgreSQL's class 08 (connection exception) and 57P01–57P03 (the server shutting
        // down or starting up).
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_noted_once_and_ends_when_the_database_answers() {
        let h = Health::default();
        assert_eq!(h.outage(), None);
        h.failed(&sqlx::Error::PoolTimedOut);
        let first = h.outage().expect("down");
        assert!(first.reason.contains("timed out"), "{}", first.reason);
        h.down("something later");
        assert_eq!(
            h.outage(),
            Some(first.clone()),
            "the first reason and time stay"
        );
        assert!(first.describe().contains("writes wait"));
        h.answered();
        assert_eq!(h.outage(), None);
    }

    #[test]
    fn a_refused_row_is_not_an_outage() {
        let h = Health::default();
        h.failed(&sqlx::Error::RowNotFound);
        h.failed(&sqlx::Error::ColumnNotFound("x".into()));
        assert_eq!(h.outage(), None);
        assert!(unreachable(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        assert!(
            !unreachable(&sqlx::Error::PoolClosed),
            "closed by troupe, stopping"
        );
    }
}
