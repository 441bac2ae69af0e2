//! The event log behind the live stream. Triggers (migration 0011) write a row for every change
//! the stream reports, in the same transaction as the change; this module reads them back in
//! order and tells waiting streams when there may be more. Output and message events name
//! their row instead of copying its text (migration 0019): the text is read from the row.

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
    /// An output event's chunk text, read from its row.
    pub output_text: Option<String>,
    /// A message event's content and response (the first 2,000 characters of each), read
    /// from its row.
    pub message_content: Option<String>,
    pub message_response: Option<String>,
}

/// How much of a message's content and response an event shows.
pub const MESSAGE_EXCERPT_CHARS: i64 = 2000;

impl LoggedEvent {
    /// The event as clients see it: the trigger's JSON with the text of the row it names, and
    /// its host (a fleet's clients tell hosts apart by it). As written when the JSON is not an
    /// object; an event that carries its own copy (written before migration 0019) keeps it.
    pub fn data_with_host(&self) -> String {
        let host = self.host.as_deref().filter(|h| !h.is_empty());
        let refers = matches!(self.kind.as_str(), "output" | "message");
        if host.is_none() && !refers {
            return self.data.clone();
        }
        let Ok(serde_json::Value::Object(mut map)) =
            serde_json::from_str::<serde_json::Value>(&self.data)
        else {
            return self.data.clone();
        };
        let text = |t: &Option<String>| t.clone().map_or(serde_json::Value::Null, Into::into);
        match self.kind.as_str() {
            "output" if !map.contains_key("content") => {
                map.insert("content".into(), text(&self.output_text));
            }
            "message" if !map.contains_key("content") => {
                // The response as it stood then: an earlier state's event shows none.
                let answered = map.remove("has_response") == Some(serde_json::Value::Bool(true));
                let response = if answered {
                    text(&self.message_response)
                } else {
                    serde_json::Value::Null
                };
                let created = map.remove("created_at");
                let finished = map.remove("finished_at");
                map.insert("content".into(), text(&self.message_content));
                map.insert("response".into(), response);
                // The order the copies had.
                if let Some(v) = created {
                    map.insert("created_at".into(), v);
                }
                if let Some(v) = finished {
                    map.insert("finished_at".into(), v);
                }
            }
            _ => {}
        }
        if let Some(host) = host {
            map.entry("host").or_insert_with(|| host.into());
        }
        serde_json::Value::Object(map).to_string()
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
            let pool = db.stream_pool(pool);
            sqlx::query_as!(
                LoggedEvent,
                r#"SELECT e.id AS "id!", e.at AS "at!", e.kind AS "kind!", e.instance_id,
                          e.data AS "data!", i.host AS "host?", o.content AS "output_text?",
                          substr(m.content, 1, ?) AS "message_content?: String",
                          substr(m.response, 1, ?) AS "message_response?: String"
                   FROM events e LEFT JOIN instances i ON i.id = e.instance_id
                   LEFT JOIN output_chunks o
                          ON e.kind = 'output' AND o.id = json_extract(e.data, '$.id')
                   LEFT JOIN messages m
                          ON e.kind = 'message' AND m.id = json_extract(e.data, '$.id')
                   WHERE e.id > ? ORDER BY e.id LIMIT ?"#,
                MESSAGE_EXCERPT_CHARS,
                MESSAGE_EXCERPT_CHARS,
                after,
                limit
            )
            .fetch_all(pool)
            .await
        },
        postgres: |pool| {
            sqlx::query_as!(
                LoggedEvent,
                r#"SELECT e.id, e.at, e.kind, e.instance_id, e.data, i.host AS "host?",
                          o.content AS "output_text?",
                          substr(m.content, 1, $3::int) AS "message_content?",
                          substr(m.response, 1, $3::int) AS "message_response?"
                   FROM events e LEFT JOIN instances i ON i.id = e.instance_id
                   LEFT JOIN output_chunks o ON o.id = CASE WHEN e.kind = 'output'
                          THEN (e.data::json ->> 'id')::bigint END
                   LEFT JOIN messages m ON e.kind = 'message' AND m.id = (e.data::json ->> 'id')
                   WHERE e.id > $1 ORDER BY e.id LIMIT $2 /* postgres */"#,
                after,
                limit,
                MESSAGE_EXCERPT_CHARS as i32
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

/// Forgets events older than `keep`; what they reported stays in its own table.
pub async fn prune(db: &super::Db, keep: std::time::Duration) -> sqlx::Result<u64> {
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let cutoff = super::stamp(
        chrono::Utc::now()
            .checked_sub_signed(keep)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
    );
    super::on!(db,
        sqlite: |pool| {
            let done = sqlx::query!("DELETE FROM events WHERE at < ?", cutoff)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        },
        postgres: |pool| {
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
            output_text: None,
            message_content: None,
            message_response: None,
        }
    }

    #[test]
    fn an_event_names_its_host() {
        let mut e = event("usage", Some("dev-1"));
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
    fn text_is_read_from_the_row_an_event_names() {
        let mut out = event("output", Some("dev-1"));
        out.data = r#"{"id":7,"instance_id":"dev-1","source":"assistant"}"#.into();
        out.output_text = Some("hello".into());
        let v: serde_json::Value = serde_json::from_str(&out.data_with_host()).unwrap();
        assert_eq!(v["content"], "hello");
        assert_eq!(v["source"], "assistant");

        let mut msg = event("message", Some("dev-1"));
        msg.message_content = Some("do it".into());
        msg.message_response = Some("done".into());
        msg.data = r#"{"id":"m","state":"running","has_response":false,"created_at":"t0","finished_at":null}"#.into();
        let v: serde_json::Value = serde_json::from_str(&msg.data_with_host()).unwrap();
        assert_eq!(v["content"], "do it");
        assert_eq!(v["response"], serde_json::Value::Null, "not answered then");
        assert!(v.get("has_response").is_none());
        assert_eq!(v["created_at"], "t0");
        msg.data = r#"{"id":"m","state":"answered","has_response":true}"#.into();
        let v: serde_json::Value = serde_json::from_str(&msg.data_with_host()).unwrap();
        assert_eq!(v["response"], "done");

        // Written before events named their rows: the copy stands.
        msg.data = r#"{"id":"m","state":"answered","content":"old","response":"kept"}"#.into();
        let v: serde_json::Value = serde_json::from_str(&msg.data_with_host()).unwrap();
        assert_eq!(
            (&v["content"], &v["response"]),
            (&"old".into(), &"kept".into())
        );
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
