//! Paged reads for the REST API: newest `limit` rows before a cursor, returned oldest first,
//! with the cursor for the page before them.

use super::audit::AuditEvent;
use super::messages::Message;
use super::output::OutputChunk;
use super::usage::UsageRecord;

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// One page of rows, oldest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub rows: Vec<T>,
    /// The cursor for the page before this one; None when this page reaches the start.
    pub next_before: Option<String>,
}

/// Turns `limit + 1` rows read newest first into a page: the extra row only says there is more.
fn page<T>(mut newest_first: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Page<T> {
    let more = newest_first.len() as i64 > limit;
    newest_first.truncate(limit as usize);
    newest_first.reverse();
    let next_before = if more {
        newest_first.first().map(&cursor)
    } else {
        None
    };
    Page {
        rows: newest_first,
        next_before,
    }
}

pub async fn output(
    db: &super::Db,
    instance_id: &str,
    before: Option<i64>,
    after: Option<i64>,
    limit: i64,
) -> sqlx::Result<Page<OutputChunk>> {
    super::on!(db,
        sqlite: |pool| {
            if let Some(after) = after {
                // Forward reads catch up from a known chunk: oldest first, no cursor back.
                let rows = sqlx::query_as!(
                    OutputChunk,
                    "SELECT * FROM output_chunks WHERE instance_id = ? AND id > ? ORDER BY id LIMIT ?",
                    instance_id,
                    after,
                    limit
                )
                .fetch_all(pool)
                .await?;
                return Ok(Page {
                    rows,
                    next_before: None,
                });
            }
            let fetch = limit + 1;
            let rows = sqlx::query_as!(
                OutputChunk,
                "SELECT * FROM output_chunks WHERE instance_id = ? AND (? IS NULL OR id < ?)
                 ORDER BY id DESC LIMIT ?",
                instance_id,
                before,
                before,
                fetch
            )
            .fetch_all(pool)
            .await?;
            Ok(page(rows, limit, |c| c.id.to_string()))
        },
        postgres: |pool| {
            if let Some(after) = after {
                // Forward reads catch up from a known chunk: oldest first, no cursor back.
                let rows = sqlx::query_as!(
                    OutputChunk,
                    "SELECT * FROM output_chunks WHERE instance_id = $1 AND id > $2 ORDER BY id LIMIT $3 /* postgres */",
                    instance_id,
                    after,
                    limit
                )
                .fetch_all(pool)
                .await?;
                return Ok(Page {
                    rows,
                    next_before: None,
                });
            }
            let fetch = limit + 1;
            let rows = sqlx::query_as!(
                OutputChunk,
                "SELECT * FROM output_chunks WHERE instance_id = $1 AND ($2::bigint IS NULL OR id < $3)
                 ORDER BY id DESC LIMIT $4 /* postgres */",
                instance_id,
                before,
                before,
                fetch
            )
            .fetch_all(pool)
            .await?;
            Ok(page(rows, limit, |c| c.id.to_string()))
        },
    )
}

pub async fn messages(
    db: &super::Db,
    instance_id: &str,
    before: Option<&str>,
    limit: i64,
) -> sqlx::Result<Page<Message>> {
    super::on!(db,
        sqlite: |pool| {
            let fetch = limit + 1;
            let rows = sqlx::query_as!(
                Message,
                r#"SELECT m.id AS "id!", m.instance_id AS "instance_id!", m.sender, m.content AS "content!",
                          m.state AS "state!", m.state_reason AS "state_reason!", m.prompt_id, m.response,
                          m.correlation_id, m.created_at AS "created_at!", m.submitted_at, m.started_at,
                          m.finished_at
                   FROM messages m
                   WHERE m.instance_id = ?
                     AND (? IS NULL OR m.rowid < (SELECT b.rowid FROM messages b WHERE b.id = ?))
                   ORDER BY m.rowid DESC LIMIT ?"#,
                instance_id,
                before,
                before,
                fetch
            )
            .fetch_all(pool)
            .await?;
            Ok(page(rows, limit, |m| m.id.clone()))
        },
        postgres: |pool| {
            let fetch = limit + 1;
            let rows = sqlx::query_as!(
                Message,
                r#"SELECT m.id AS "id!", m.instance_id AS "instance_id!", m.sender, m.content AS "content!",
                          m.state AS "state!", m.state_reason AS "state_reason!", m.prompt_id, m.response,
                          m.correlation_id, m.created_at AS "created_at!", m.submitted_at, m.started_at,
                          m.finished_at
                   FROM messages m
                   WHERE m.instance_id = $1
                     AND ($2::text IS NULL
                          OR (m.created_at, m.id) < (SELECT b.created_at, b.id FROM messages b WHERE b.id = $3))
                   ORDER BY m.created_at DESC, m.id DESC LIMIT $4 /* postgres */"#,
                instance_id,
                before,
                before,
                fetch
            )
            .fetch_all(pool)
            .await?;
            Ok(page(rows, limit, |m| m.id.clone()))
        },
    )
}

pub async fn usage(
    db: &super::Db,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Page<UsageRecord>> {
    super::on!(db,
        sqlite: |pool| {
            let fetch = limit + 1;
            let rows = sqlx::query_as!(
                UsageRecord,
                "SELECT * FROM usage_records WHERE (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
                before,
                before,
                fetch
            )
            .fetch_all(pool)
            .await?;
            Ok(page(rows, limit, |u| u.id.to_string()))
        },
        postgres: |pool| {
            let fetch = limit + 1;
            let rows = sqlx::query_as!(
                UsageRecord,
                "SELECT * FROM usage_records WHERE ($1::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3 /* postgres */",
                before,
                before,
                fetch
            )
            .fetch_all(pool)
            .await?;
            Ok(page(rows, limit, |u| u.id.to_string()))
        },
    )
}

pub async fn audit(
    db: &super::Db,
    instance_id: Option<&str>,
    kind: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Page<AuditEvent>> {
    super::on!(db,
        sqlite: |pool| {
            let fetch = limit + 1;
            let rows = sqlx::query_as!(
                AuditEvent,
                "SELECT * FROM audit_events
                 WHERE (? IS NULL OR instance_id = ?) AND (? IS NULL OR kind = ?) AND (? IS NULL OR id < ?)
                 ORDER BY id DESC LIMIT ?",
                instance_id,
                instance_id,
                kind,
                kind,
                before,
                before,
                fetch
            )
            .fetch_all(pool)
            .await?;
            Ok(page(rows, limit, |a| a.id.to_string()))
        },
        postgres: |pool| {
            let fetch = limit + 1;
            let rows = sqlx::query_as!(
                AuditEvent,
                "SELECT * FROM audit_events
                 WHERE ($1::text IS NULL OR instance_id = $2) AND ($3::text IS NULL OR kind = $4)
                   AND ($5::bigint IS NULL OR id < $6)
                 ORDER BY id DESC LIMIT $7 /* postgres */",
                instance_id,
                instance_id,
                kind,
                kind,
                before,
                before,
                fetch
            )
            .fetch_all(pool)
            .await?;
            Ok(page(rows, limit, |a| a.id.to_string()))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn a_page_is_oldest_first_with_a_cursor_when_there_is_more() {
        let p = page(vec![5, 4, 3], 2, |n| n.to_string());
        assert_eq!(p.rows, vec![4, 5]);
        assert_eq!(p.next_before.as_deref(), Some("4"));
        let last = page(vec![2, 1], 2, |n| n.to_string());
        assert_eq!(last.rows, vec![1, 2]);
        assert_eq!(last.next_before, None, "the start is reached");
        let empty = page(Vec::<i32>::new(), 2, |n| n.to_string());
        assert!(empty.rows.is_empty() && empty.next_before.is_none());
    }
}
