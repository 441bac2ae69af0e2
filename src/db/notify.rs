//! Deliveries of notices to the `[[notify]]` sinks, and the one-time links they carry.

/// A delivery as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    pub id: String,
    pub notice_id: String,
    pub sink: String,
    pub kind: String,
    pub title: String,
    /// JSON: [`crate::notify::sink::Request`].
    #[serde(skip)]
    pub request: String,
    /// pending | delivered | failed
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub next_at: Option<String>,
    pub finished_at: Option<String>,
}

pub struct NewDelivery<'a> {
    pub id: &'a str,
    pub notice_id: &'a str,
    pub host: &'a str,
    pub sink: &'a str,
    pub kind: &'a str,
    pub title: &'a str,
    pub request: &'a str,
    /// `pending` (due at once), or the outcome of an attempt already made (a test notice).
    pub state: &'a str,
}

impl Delivery {
    /// Records a delivery: due at once when pending.
    pub async fn insert(db: &super::Db, d: &NewDelivery<'_>) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let next_at = (d.state == "pending").then_some(now.as_str());
                sqlx::query!(
                    "INSERT INTO notify_deliveries
                       (id, notice_id, host, sink, kind, title, request, state, created_at,
                        next_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    d.id, d.notice_id, d.host, d.sink, d.kind, d.title, d.request, d.state, now,
                    next_at
                )
                .execute(pool)
                .await?;
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                let next_at = (d.state == "pending").then_some(now.as_str());
                sqlx::query!(
                    "INSERT INTO notify_deliveries
                       (id, notice_id, host, sink, kind, title, request, state, created_at,
                        next_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) /* postgres */",
                    d.id, d.notice_id, d.host, d.sink, d.kind, d.title, d.request, d.state, now,
                    next_at
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }

    /// This host's pending deliveries, oldest first.
    pub async fn pending(db: &super::Db, host: &str) -> sqlx::Result<Vec<Delivery>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Delivery,
                    r#"SELECT id, notice_id, sink, kind, title, request, state, attempts,
                              last_status, last_error, created_at, next_at, finished_at
                       FROM notify_deliveries WHERE host = ? AND state = 'pending'
                       ORDER BY created_at, id"#,
                    host
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Delivery,
                    r#"SELECT id, notice_id, sink, kind, title, request, state, attempts,
                              last_status, last_error, created_at, next_at, finished_at
                       FROM notify_deliveries WHERE host = $1 AND state = 'pending'
                       ORDER BY created_at, id /* postgres */"#,
                    host
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    pub async fn find(db: &super::Db, id: &str) -> sqlx::Result<Option<Delivery>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Delivery,
                    r#"SELECT id, notice_id, sink, kind, title, request, state, attempts,
                              last_status, last_error, created_at, next_at, finished_at
                       FROM notify_deliveries WHERE id = ?"#,
                    id
                )
                .fetch_optional(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Delivery,
                    r#"SELECT id, notice_id, sink, kind, title, request, state, attempts,
                              last_status, last_error, created_at, next_at, finished_at
                       FROM notify_deliveries WHERE id = $1 /* postgres */"#,
                    id
                )
                .fetch_optional(pool)
                .await
            },
        )
    }

    /// Records one attempt: its outcome, and when the next is due while it stays pending.
    pub async fn attempted(
        db: &super::Db,
        id: &str,
        state: &str,
        status: Option<i64>,
        error: Option<&str>,
        next_at: Option<&str>,
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let finished = (state != "pending").then_some(now.as_str());
                sqlx::query!(
                    "UPDATE notify_deliveries
                     SET state = ?, attempts = attempts + 1, last_status = ?, last_error = ?,
                         next_at = ?, finished_at = ?
                     WHERE id = ?",
                    state, status, error, next_at, finished, id
                )
                .execute(pool)
                .await?;
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                let finished = (state != "pending").then_some(now.as_str());
                sqlx::query!(
                    "UPDATE notify_deliveries
                     SET state = $1, attempts = attempts + 1, last_status = $2, last_error = $3,
                         next_at = $4, finished_at = $5
                     WHERE id = $6 /* postgres */",
                    state, status, error, next_at, finished, id
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }

    /// The latest deliveries, newest first.
    pub async fn recent(db: &super::Db, limit: i64) -> sqlx::Result<Vec<Delivery>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Delivery,
                    r#"SELECT id, notice_id, sink, kind, title, request, state, attempts,
                              last_status, last_error, created_at, next_at, finished_at
                       FROM notify_deliveries ORDER BY created_at DESC, id DESC LIMIT ?"#,
                    limit
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Delivery,
                    r#"SELECT id, notice_id, sink, kind, title, request, state, attempts,
                              last_status, last_error, created_at, next_at, finished_at
                       FROM notify_deliveries ORDER BY created_at DESC, id DESC
                       LIMIT $1 /* postgres */"#,
                    limit
                )
                .fetch_all(pool)
                .await
            },
        )
    }
}

impl Delivery {
    /// Forgets deliveries that ended (delivered or failed) before `before`.
    pub async fn prune(db: &super::Db, before: &str) -> sqlx::Result<u64> {
        super::on!(db,
            sqlite: |pool| {
                Ok(sqlx::query!(
                    "DELETE FROM notify_deliveries WHERE state <> 'pending' AND created_at < ?",
                    before
                )
                .execute(pool)
                .await?
                .rows_affected())
            },
            postgres: |pool| {
                Ok(sqlx::query!(
                    "DELETE FROM notify_deliveries
                     WHERE state <> 'pending' AND created_at < $1 /* postgres */",
                    before
                )
                .execute(pool)
                .await?
                .rows_affected())
            },
        )
    }
}

/// A one-time link as stored.
#[derive(Debug, Clone)]
pub struct Link {
    pub target_kind: String,
    pub target_id: String,
    pub instance_id: String,
    /// allow | deny
    pub decision: String,
    pub sink: String,
    pub expires_at: String,
    pub used_at: Option<String>,
}

pub struct NewLink<'a> {
    pub token_hash: &'a str,
    pub target_kind: &'a str,
    pub target_id: &'a str,
    pub instance_id: &'a str,
    pub decision: &'a str,
    pub sink: &'a str,
    pub expires_at: &'a str,
}

impl Link {
    pub async fn insert(db: &super::Db, l: &NewLink<'_>) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO notify_links
                       (token_hash, target_kind, target_id, instance_id, decision, sink,
                        created_at, expires_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    l.token_hash, l.target_kind, l.target_id, l.instance_id, l.decision,
                    l.sink, now, l.expires_at
                )
                .execute(pool)
                .await?;
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO notify_links
                       (token_hash, target_kind, target_id, instance_id, decision, sink,
                        created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) /* postgres */",
                    l.token_hash, l.target_kind, l.target_id, l.instance_id, l.decision,
                    l.sink, now, l.expires_at
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }

    pub async fn find(db: &super::Db, token_hash: &str) -> sqlx::Result<Option<Link>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Link,
                    "SELECT target_kind, target_id, instance_id, decision, sink, expires_at, used_at
                     FROM notify_links WHERE token_hash = ?",
                    token_hash
                )
                .fetch_optional(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Link,
                    "SELECT target_kind, target_id, instance_id, decision, sink, expires_at, used_at
                     FROM notify_links WHERE token_hash = $1 /* postgres */",
                    token_hash
                )
                .fetch_optional(pool)
                .await
            },
        )
    }

    /// Marks the link used; false when it already was, so one link decides once.
    pub async fn spend(db: &super::Db, token_hash: &str) -> sqlx::Result<bool> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE notify_links SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
                    now, token_hash
                )
                .execute(pool)
                .await?;
                Ok(done.rows_affected() == 1)
            },
            postgres: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE notify_links SET used_at = $1
                     WHERE token_hash = $2 AND used_at IS NULL /* postgres */",
                    now, token_hash
                )
                .execute(pool)
                .await?;
                Ok(done.rows_affected() == 1)
            },
        )
    }

    /// Forgets links that expired before `before`: they can decide nothing.
    pub async fn prune(db: &super::Db, before: &str) -> sqlx::Result<u64> {
        super::on!(db,
            sqlite: |pool| {
                Ok(sqlx::query!("DELETE FROM notify_links WHERE expires_at < ?", before)
                    .execute(pool)
                    .await?
                    .rows_affected())
            },
            postgres: |pool| {
                Ok(sqlx::query!(
                    "DELETE FROM notify_links WHERE expires_at < $1 /* postgres */",
                    before
                )
                .execute(pool)
                .await?
                .rows_affected())
            },
        )
    }
}

/// A browser's Web Push subscription, as stored.
#[derive(Debug, Clone)]
pub struct PushSubscription {
    pub id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub created_at: String,
}

impl PushSubscription {
    /// Keeps a subscription; the same endpoint again replaces its keys (a browser renews
    /// them).
    pub async fn upsert(
        db: &super::Db,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> sqlx::Result<()> {
        let id = format!("push-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO push_subscriptions (id, endpoint, p256dh, auth, created_at)
                     VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (endpoint) DO UPDATE SET p256dh = excluded.p256dh,
                                                          auth = excluded.auth",
                    id, endpoint, p256dh, auth, now
                )
                .execute(pool)
                .await?;
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO push_subscriptions (id, endpoint, p256dh, auth, created_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (endpoint) DO UPDATE SET p256dh = excluded.p256dh,
                                                          auth = excluded.auth /* postgres */",
                    id, endpoint, p256dh, auth, now
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }

    pub async fn list(db: &super::Db) -> sqlx::Result<Vec<PushSubscription>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    PushSubscription,
                    "SELECT id, endpoint, p256dh, auth, created_at FROM push_subscriptions
                     ORDER BY created_at, id"
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    PushSubscription,
                    "SELECT id, endpoint, p256dh, auth, created_at FROM push_subscriptions
                     ORDER BY created_at, id /* postgres */"
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    pub async fn find(db: &super::Db, endpoint: &str) -> sqlx::Result<Option<PushSubscription>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    PushSubscription,
                    "SELECT id, endpoint, p256dh, auth, created_at FROM push_subscriptions
                     WHERE endpoint = ?",
                    endpoint
                )
                .fetch_optional(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    PushSubscription,
                    "SELECT id, endpoint, p256dh, auth, created_at FROM push_subscriptions
                     WHERE endpoint = $1 /* postgres */",
                    endpoint
                )
                .fetch_optional(pool)
                .await
            },
        )
    }

    /// Forgets a subscription; false when there was none.
    pub async fn remove(db: &super::Db, endpoint: &str) -> sqlx::Result<bool> {
        super::on!(db,
            sqlite: |pool| {
                let done = sqlx::query!("DELETE FROM push_subscriptions WHERE endpoint = ?", endpoint)
                    .execute(pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            },
            postgres: |pool| {
                let done = sqlx::query!(
                    "DELETE FROM push_subscriptions WHERE endpoint = $1 /* postgres */",
                    endpoint
                )
                .execute(pool)
                .await?;
                Ok(done.rows_affected() > 0)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> (tempfile::TempDir, super::super::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::open(&dir.path().join("t.db"), std::time::Duration::from_secs(5))
            .await
            .unwrap();
        (dir, db)
    }

    fn new<'a>(id: &'a str, state: &'a str) -> NewDelivery<'a> {
        NewDelivery {
            id,
            notice_id: "ntc-1",
            host: "h",
            sink: "ops",
            kind: "failed",
            title: "x failed",
            request: "{}",
            state,
        }
    }

    #[tokio::test]
    async fn ended_deliveries_are_pruned_and_pending_ones_kept() {
        let (_dir, db) = db().await;
        Delivery::insert(&db, &new("dlv-a", "pending"))
            .await
            .unwrap();
        Delivery::insert(&db, &new("dlv-b", "delivered"))
            .await
            .unwrap();
        Delivery::insert(&db, &new("dlv-c", "failed"))
            .await
            .unwrap();
        let pending = Delivery::pending(&db, "h").await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending[0].next_at,
            Some(pending[0].created_at.clone()),
            "due at once"
        );
        assert!(
            Delivery::pending(&db, "other").await.unwrap().is_empty(),
            "another host's"
        );
        assert_eq!(
            Delivery::prune(&db, "2000-01-01T00:00:00.000Z")
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            Delivery::prune(&db, "2999-01-01T00:00:00.000Z")
                .await
                .unwrap(),
            2
        );
        let left: Vec<String> = Delivery::recent(&db, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(left, ["dlv-a"]);
        Delivery::attempted(&db, "dlv-a", "delivered", Some(200), None, None)
            .await
            .unwrap();
        let d = Delivery::find(&db, "dlv-a").await.unwrap().unwrap();
        assert_eq!(
            (d.state.as_str(), d.attempts, d.last_status),
            ("delivered", 1, Some(200))
        );
        assert!(d.finished_at.is_some());
    }

    #[tokio::test]
    async fn a_link_is_spent_once_and_forgotten_after_it_expires() {
        let (_dir, db) = db().await;
        let link = NewLink {
            token_hash: "h1",
            target_kind: "permission",
            target_id: "perm-1",
            instance_id: "dev-1",
            decision: "allow",
            sink: "ops",
            expires_at: "2030-01-01T00:00:00.000Z",
        };
        Link::insert(&db, &link).await.unwrap();
        assert!(Link::spend(&db, "h1").await.unwrap());
        assert!(!Link::spend(&db, "h1").await.unwrap(), "once");
        assert!(
            Link::find(&db, "h1")
                .await
                .unwrap()
                .unwrap()
                .used_at
                .is_some()
        );
        assert_eq!(
            Link::prune(&db, "2029-12-31T00:00:00.000Z").await.unwrap(),
            0
        );
        assert_eq!(
            Link::prune(&db, "2030-01-02T00:00:00.000Z").await.unwrap(),
            1
        );
        assert!(Link::find(&db, "h1").await.unwrap().is_none());
    }
}
