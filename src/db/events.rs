//! The event log behind the live stream. Triggers (migration 0011) write a row for every change
//! the stream reports, in the same transaction as the change; this module reads them back in
//! order and tells waiting streams when there may be more.

/// How long events are kept: a client that was away longer starts from what is there.
pub const KEEP_DAYS: i64 = 7;

#[derive(Debug, Clone, serde::Serialize)]
pub struct LoggedEvent {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub instance_id: Option<String>,
    /// The event's JSON, as the trigger wrote it.
    pub data: String,
    /// The host that runs the event's instance, if it has one.
    pub host: Option<String>,
}

impl LoggedEvent {
    /// The event's JSON with its host added (a fleet's clients tell hosts apart by it); as
    /// written when there is no host or the JSON is not an object.
    pub fn data_with_host(&self) -> String {
        let Some(host) = self.host.as_deref().filter(|h| !h.is_empty()) else {
            return self.data.clone();
        };
        match serde_json::from_str::<serde_json::Value>(&self.data) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.entry("host").or_insert_with(|| host.into());
                serde_json::Value::Object(map).to_string()
            }
            _ => self.data.clone(),
        }
    }
}

/// Which events a reader wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub instance_id: Option<String>,
    /// Empty: every kind.
    pub kinds: Vec<String>,
}

impl Filter {
    pub fn wants(&self, event: &LoggedEvent) -> bool {
        let instance = match &self.instance_id {
            Some(id) => event.instance_id.as_deref() == Some(id.as_str()),
            None => true,
        };
        instance && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
    }
}

/// Up to `limit` events after `after`, oldest first.
pub async fn after(db: &super::Db, after: i64, limit: i64) -> sqlx::Result<Vec<LoggedEvent>> {
    super::on!(db,
        sqlite: |pool| {
            sqlx::query_as!(
                LoggedEvent,
                r#"SELECT e.id, e.at, e.kind, e.instance_id, e.data, i.host AS "host?"
                   FROM events e LEFT JOIN instances i ON i.id = e.instance_id
                   WHERE e.id > ? ORDER BY e.id LIMIT ?"#,
                after,
                limit
            )
            .fetch_all(pool)
            .await
        },
        postgres: |pool| {
            sqlx::query_as!(
                LoggedEvent,
                r#"SELECT e.id, e.at, e.kind, e.instance_id, e.data, i.host AS "host?"
                   FROM events e LEFT JOIN instances i ON i.id = e.instance_id
                   WHERE e.id > $1 ORDER BY e.id LIMIT $2 /* postgres */"#,
                after,
                limit
            )
            .fetch_all(pool)
            .await
        },
    )
}

/// The newest event's id (0 when there is none): where a stream that wants only what happens
/// next starts.
pub async fn last_id(db: &super::Db) -> sqlx::Result<i64> {
    super::on!(db,
        sqlite: |pool| {
            let id = sqlx::query_scalar!("SELECT MAX(id) FROM events")
                .fetch_one(pool)
                .await?;
            Ok(id.unwrap_or(0))
        },
        postgres: |pool| {
            let id = sqlx::query_scalar!("SELECT MAX(id) FROM events /* postgres */")
                .fetch_one(pool)
                .await?;
            Ok(id.unwrap_or(0))
        },
    )
}

/// Forgets events older than [`KEEP_DAYS`]; what they reported stays in its own table.
pub async fn prune(db: &super::Db) -> sqlx::Result<u64> {
    super::on!(db,
        sqlite: |pool| {
            let cutoff = (chrono::Utc::now() - chrono::Duration::days(KEEP_DAYS))
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            let done = sqlx::query!("DELETE FROM events WHERE at < ?", cutoff)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        },
        postgres: |pool| {
            let cutoff = (chrono::Utc::now() - chrono::Duration::days(KEEP_DAYS))
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            let done = sqlx::query!("DELETE FROM events WHERE at < $1 /* postgres */", cutoff)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, instance: Option<&str>) -> LoggedEvent {
        LoggedEvent {
            id: 1,
            at: String::new(),
            kind: kind.into(),
            instance_id: instance.map(str::to_string),
            data: "{}".into(),
            host: None,
        }
    }

    #[test]
    fn an_event_names_its_host() {
        let mut e = event("message", Some("dev-1"));
        e.data = r#"{"id":"msg-1","state":"queued"}"#.into();
        assert_eq!(e.data_with_host(), e.data, "no host, as written");
        e.host = Some("beta".into());
        let v: serde_json::Value = serde_json::from_str(&e.data_with_host()).unwrap();
        assert_eq!(v["host"], "beta");
        assert_eq!(v["state"], "queued");
        e.data = "[1]".into();
        assert_eq!(e.data_with_host(), "[1]");
    }

    #[test]
    fn a_filter_keeps_the_instance_and_kinds_asked_for() {
        let all = Filter::default();
        assert!(all.wants(&event("team", None)));
        let one = Filter {
            instance_id: Some("dev-1".into()),
            kinds: vec!["output".into(), "message".into()],
        };
        assert!(one.wants(&event("output", Some("dev-1"))));
        assert!(!one.wants(&event("output", Some("dev-2"))));
        assert!(!one.wants(&event("usage", Some("dev-1"))));
        assert!(!one.wants(&event("team", None)));
    }
}
