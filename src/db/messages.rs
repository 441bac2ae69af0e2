use crate::states::MessageState;

/// A message as an instance's task matches a replayed transcript to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownMessage {
    pub id: String,
    pub content: String,
    pub prompt_id: Option<String>,
    pub state: MessageState,
}

/// A message sent to an instance and, once its turn ends, the answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Message {
    pub id: String,
    pub instance_id: String,
    pub sender: Option<String>,
    pub content: String,
    pub state: MessageState,
    pub state_reason: String,
    pub prompt_id: Option<String>,
    pub response: Option<String>,
    pub correlation_id: Option<String>,
    pub created_at: String,
    pub submitted_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Message {
    /// True once the message's turn is over, one way or another.
    pub fn is_finished(&self) -> bool {
        self.state.is_finished()
    }

    pub async fn insert_queued(
        db: &super::Db,
        id: &str,
        instance_id: &str,
        sender: Option<&str>,
        content: &str,
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO messages (id, instance_id, sender, content, state, created_at)
                     VALUES (?, ?, ?, ?, 'queued', ?)",
                    id,
                    instance_id,
                    sender,
                    content,
                    now
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO messages (id, instance_id, sender, content, state, created_at)
                     VALUES ($1, $2, $3, $4, 'queued', $5) /* postgres */",
                    id,
                    instance_id,
                    sender,
                    content,
                    now
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }

    pub async fn find(db: &super::Db, id: &str) -> sqlx::Result<Option<Message>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(Message, "SELECT * FROM messages WHERE id = ?", id)
                    .fetch_optional(pool)
                    .await
            },
            postgres: |pool| {
                sqlx::query_as!(Message, "SELECT * FROM messages WHERE id = $1 /* postgres */", id)
                    .fetch_optional(pool)
                    .await
            },
        )
    }

    /// The oldest message still waiting for its turn on this instance.
    pub async fn next_queued(db: &super::Db, instance_id: &str) -> sqlx::Result<Option<Message>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Message,
                    "SELECT * FROM messages WHERE instance_id = ? AND state = 'queued'
                     ORDER BY created_at, rowid LIMIT 1",
                    instance_id
                )
                .fetch_optional(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Message,
                    "SELECT * FROM messages WHERE instance_id = $1 AND state = 'queued'
                     ORDER BY created_at, id LIMIT 1 /* postgres */",
                    instance_id
                )
                .fetch_optional(pool)
                .await
            },
        )
    }

    pub async fn mark_submitted(db: &super::Db, id: &str) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                sqlx::query!(
                    "UPDATE messages SET state = 'submitted', submitted_at = ? WHERE id = ?",
                    now,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                sqlx::query!(
                    "UPDATE messages SET state = 'submitted', submitted_at = $1 WHERE id = $2 /* postgres */",
                    now,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }

    pub async fn mark_started(
        db: &super::Db,
        id: &str,
        prompt_id: Option<&str>,
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                // A prompt id learned after the start (the transcript before the hook) is kept too.
                sqlx::query!(
                    "UPDATE messages SET
                        state = CASE WHEN state IN ('queued', 'submitted') THEN 'started' ELSE state END,
                        started_at = COALESCE(started_at, ?),
                        prompt_id = COALESCE(prompt_id, ?)
                     WHERE id = ? AND state IN ('queued', 'submitted', 'started')",
                    now,
                    prompt_id,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                // A prompt id learned after the start (the transcript before the hook) is kept too.
                sqlx::query!(
                    "UPDATE messages SET
                        state = CASE WHEN state IN ('queued', 'submitted') THEN 'started' ELSE state END,
                        started_at = COALESCE(started_at, $1),
                        prompt_id = COALESCE(prompt_id, $2)
                     WHERE id = $3 AND state IN ('queued', 'submitted', 'started') /* postgres */",
                    now,
                    prompt_id,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }

    /// Ends the message's turn: answered, interrupted or failed, with what the CLI said.
    pub async fn finish(
        db: &super::Db,
        id: &str,
        state: MessageState,
        response: Option<&str>,
        reason: &str,
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let state = state.as_str();
                // Only an unfinished message ends: replaying a transcript after a restart must not
                // rewrite answers already recorded.
                sqlx::query!(
                    "UPDATE messages SET state = ?, response = ?, state_reason = ?, finished_at = ?
                     WHERE id = ? AND state IN ('queued', 'submitted', 'started')",
                    state,
                    response,
                    reason,
                    now,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                let state = state.as_str();
                let response = response.map(super::pg_text);
                // Only an unfinished message ends: replaying a transcript after a restart must not
                // rewrite answers already recorded.
                sqlx::query!(
                    "UPDATE messages SET state = $1, response = $2, state_reason = $3, finished_at = $4
                     WHERE id = $5 AND state IN ('queued', 'submitted', 'started') /* postgres */",
                    state,
                    response.as_deref(),
                    &*super::pg_text(reason),
                    now,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }

    /// Fails every message of the instance that has not finished (used when it goes away);
    /// returns their ids.
    pub async fn fail_unfinished(
        db: &super::Db,
        instance_id: &str,
        reason: &str,
    ) -> sqlx::Result<Vec<String>> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let ids = sqlx::query_scalar!(
                    "UPDATE messages SET state = 'failed', state_reason = ?, finished_at = ?
                     WHERE instance_id = ? AND state IN ('queued', 'submitted', 'started')
                     RETURNING id",
                    reason,
                    now,
                    instance_id
                )
                .fetch_all(pool)
                .await?;
                db.written();
                Ok(ids)
            },
            postgres: |pool| {
                let now = super::now();
                let ids = sqlx::query_scalar!(
                    "UPDATE messages SET state = 'failed', state_reason = $1, finished_at = $2
                     WHERE instance_id = $3 AND state IN ('queued', 'submitted', 'started')
                     RETURNING id /* postgres */",
                    reason,
                    now,
                    instance_id
                )
                .fetch_all(pool)
                .await?;
                db.written();
                Ok(ids)
            },
        )
    }

    /// What the instance's task needs to match a replayed transcript to messages: every
    /// unfinished message, and every message the CLI named a prompt for. Oldest first.
    pub async fn for_replay(db: &super::Db, instance_id: &str) -> sqlx::Result<Vec<KnownMessage>> {
        super::on!(db,
            sqlite: |pool| {
                let rows = sqlx::query!(
                    "SELECT id, content, prompt_id, state FROM messages
                     WHERE instance_id = ?
                       AND (state IN ('queued', 'submitted', 'started') OR prompt_id IS NOT NULL)
                     ORDER BY created_at, rowid",
                    instance_id
                )
                .fetch_all(pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| KnownMessage {
                        id: r.id,
                        content: r.content,
                        prompt_id: r.prompt_id,
                        state: MessageState::from(r.state),
                    })
                    .collect())
            },
            postgres: |pool| {
                let rows = sqlx::query!(
                    "SELECT id, content, prompt_id, state FROM messages
                     WHERE instance_id = $1
                       AND (state IN ('queued', 'submitted', 'started') OR prompt_id IS NOT NULL)
                     ORDER BY created_at, id /* postgres */",
                    instance_id
                )
                .fetch_all(pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| KnownMessage {
                        id: r.id,
                        content: r.content,
                        prompt_id: r.prompt_id,
                        state: MessageState::from(r.state),
                    })
                    .collect())
            },
        )
    }

    /// The message the instance is working on: typed into its CLI and not finished (the
    /// newest, if several). A tool call made during the turn can come before troupe has read
    /// the CLI's acknowledgement, so a typed message counts too.
    pub async fn in_progress(db: &super::Db, instance_id: &str) -> sqlx::Result<Option<String>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_scalar!(
                    "SELECT id FROM messages WHERE instance_id = ? AND state IN ('submitted', 'started')
                     ORDER BY submitted_at DESC, rowid DESC LIMIT 1",
                    instance_id
                )
                .fetch_optional(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_scalar!(
                    "SELECT id FROM messages WHERE instance_id = $1 AND state IN ('submitted', 'started')
                     ORDER BY submitted_at DESC, id DESC LIMIT 1 /* postgres */",
                    instance_id
                )
                .fetch_optional(pool)
                .await
            },
        )
    }

    /// Puts a message back in the queue (it was typed, but the CLI never saw it).
    pub async fn requeue(db: &super::Db, id: &str) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!(
                    "UPDATE messages SET state = 'queued', submitted_at = NULL WHERE id = ? AND state = 'submitted'",
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!(
                    "UPDATE messages SET state = 'queued', submitted_at = NULL WHERE id = $1 AND state = 'submitted' /* postgres */",
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }

    /// Whether the instance ever had a turn (so there is a conversation to resume).
    pub async fn any_started(db: &super::Db, instance_id: &str) -> sqlx::Result<bool> {
        super::on!(db,
            sqlite: |pool| {
                let n = sqlx::query_scalar!(
                    "SELECT COUNT(*) FROM messages WHERE instance_id = ? AND started_at IS NOT NULL",
                    instance_id
                )
                .fetch_one(pool)
                .await?;
                Ok(n > 0)
            },
            postgres: |pool| {
                let n = sqlx::query_scalar!(
                    "SELECT COUNT(*) AS \"n!\" FROM messages WHERE instance_id = $1 AND started_at IS NOT NULL /* postgres */",
                    instance_id
                )
                .fetch_one(pool)
                .await?;
                Ok(n > 0)
            },
        )
    }

    /// The ids of the instance's messages still queued or in progress, oldest first.
    pub async fn open_ids(db: &super::Db, instance_id: &str) -> sqlx::Result<Vec<String>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_scalar!(
                    "SELECT id FROM messages WHERE instance_id = ? AND state IN ('queued', 'submitted', 'started') ORDER BY created_at, id",
                    instance_id
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_scalar!(
                    "SELECT id FROM messages WHERE instance_id = $1 AND state IN ('queued', 'submitted', 'started') ORDER BY created_at, id /* postgres */",
                    instance_id
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    /// [`Message::open_ids`] of every instance at once, keyed by instance; an instance with
    /// none has no entry. Reached through each instance's index rather than a scan of every
    /// message ever sent.
    pub async fn open_ids_by_instance(
        db: &super::Db,
    ) -> sqlx::Result<std::collections::HashMap<String, Vec<String>>> {
        let rows = super::on!(db,
            sqlite: |pool| {
                sqlx::query!(
                    r#"SELECT m.instance_id AS "instance_id!", m.id AS "id!"
                       FROM instances i JOIN messages m ON m.instance_id = i.id
                       WHERE m.state IN ('queued', 'submitted', 'started')
                       ORDER BY m.created_at, m.id"#
                )
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| (r.instance_id, r.id))
                .collect::<Vec<_>>()
            },
            postgres: |pool| {
                sqlx::query!(
                    r#"SELECT m.instance_id AS "instance_id!", m.id AS "id!"
                       FROM instances i JOIN messages m ON m.instance_id = i.id
                       WHERE m.state IN ('queued', 'submitted', 'started')
                       ORDER BY m.created_at, m.id /* postgres */"#
                )
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| (r.instance_id, r.id))
                .collect::<Vec<_>>()
            },
        );
        let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
        for (instance, id) in rows {
            out.entry(instance).or_default().push(id);
        }
        Ok(out)
    }
}
