/// Appends one line to the audit log. Failures are logged, never fatal: the audit trail
/// must not be the reason an instance operation fails.
pub async fn record(
    db: &super::Db,
    actor: Option<&str>,
    instance_id: Option<&str>,
    kind: &str,
    detail: serde_json::Value,
) {
    super::on!(db,
        sqlite: |pool| {
            let now = super::now();
            let detail = detail.to_string();
            let result = sqlx::query!(
                "INSERT INTO audit_events (at, actor, instance_id, kind, detail) VALUES (?, ?, ?, ?, ?)",
                now,
                actor,
                instance_id,
                kind,
                detail
            )
            .execute(pool)
            .await;
            db.written();
            if let Err(e) = result {
                tracing::warn!(kind, error = %e, "could not write audit event");
            }
        },
        postgres: |pool| {
            let now = super::now();
            let detail = detail.to_string();
            let result = sqlx::query!(
                "INSERT INTO audit_events (at, actor, instance_id, kind, detail) VALUES ($1, $2, $3, $4, $5) /* postgres */",
                now,
                actor,
                instance_id,
                kind,
                detail
            )
            .execute(pool)
            .await;
            db.written();
            if let Err(e) = result {
                tracing::warn!(kind, error = %e, "could not write audit event");
            }
        },
    )
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: String,
    pub actor: Option<String>,
    pub instance_id: Option<String>,
    pub kind: String,
    pub detail: String,
}

pub async fn for_instance(db: &super::Db, instance_id: &str) -> sqlx::Result<Vec<AuditEvent>> {
    super::on!(db,
        sqlite: |pool| {
            sqlx::query_as!(
                AuditEvent,
                "SELECT * FROM audit_events WHERE instance_id = ? ORDER BY id",
                instance_id
            )
            .fetch_all(pool)
            .await
        },
        postgres: |pool| {
            sqlx::query_as!(
                AuditEvent,
                "SELECT * FROM audit_events WHERE instance_id = $1 ORDER BY id /* postgres */",
                instance_id
            )
            .fetch_all(pool)
            .await
        },
    )
}

pub async fn of_kind(db: &super::Db, kind: &str) -> sqlx::Result<Vec<AuditEvent>> {
    super::on!(db,
        sqlite: |pool| {
            sqlx::query_as!(
                AuditEvent,
                "SELECT * FROM audit_events WHERE kind = ? ORDER BY id",
                kind
            )
            .fetch_all(pool)
            .await
        },
        postgres: |pool| {
            sqlx::query_as!(
                AuditEvent,
                "SELECT * FROM audit_events WHERE kind = $1 ORDER BY id /* postgres */",
                kind
            )
            .fetch_all(pool)
            .await
        },
    )
}
