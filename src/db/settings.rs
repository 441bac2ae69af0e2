//! The controls set in the conversation, one row per control.

use serde_json::Value;

use crate::settings::Layer;

/// The conversation's layer, from its rows. A row troupe cannot read (written by hand, or by
/// another version) is left out and logged, never fatal.
pub async fn load(db: &super::Db) -> sqlx::Result<Layer> {
    super::on!(db,
        sqlite: |pool| {
            let rows = sqlx::query!("SELECT key, value FROM settings ORDER BY key")
                .fetch_all(pool)
                .await?;
            let mut layer = Layer::default();
            for row in rows {
                let Ok(value) = serde_json::from_str::<Value>(&row.value) else {
                    tracing::warn!(key = %row.key, "setting is not JSON; ignored");
                    continue;
                };
                let one = serde_json::json!({ row.key.clone(): value });
                match serde_json::from_value::<Layer>(one) {
                    Ok(l) => merge(&mut layer, l),
                    Err(e) => tracing::warn!(key = %row.key, error = %e, "setting ignored"),
                }
            }
            Ok(layer)
        },
        postgres: |pool| {
            let rows = sqlx::query!("SELECT key, value FROM settings ORDER BY key /* postgres */")
                .fetch_all(pool)
                .await?;
            let mut layer = Layer::default();
            for row in rows {
                let Ok(value) = serde_json::from_str::<Value>(&row.value) else {
                    tracing::warn!(key = %row.key, "setting is not JSON; ignored");
                    continue;
                };
                let one = serde_json::json!({ row.key.clone(): value });
                match serde_json::from_value::<Layer>(one) {
                    Ok(l) => merge(&mut layer, l),
                    Err(e) => tracing::warn!(key = %row.key, error = %e, "setting ignored"),
                }
            }
            Ok(layer)
        },
    )
}

/// Writes the controls `update` sets and deletes those named in `reset`, in one transaction.
pub async fn store(
    db: &super::Db,
    update: &Layer,
    reset: &[String],
    set_by: Option<&str>,
) -> sqlx::Result<()> {
    super::on!(db,
        sqlite: |pool| {
            let now = super::now();
            let mut tx = pool.begin().await?;
            for key in reset {
                sqlx::query!("DELETE FROM settings WHERE key = ?", key)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Value::Object(fields) = serde_json::to_value(update).unwrap_or_default() {
                for (key, value) in fields {
                    let text = value.to_string();
                    sqlx::query!(
                        "INSERT INTO settings (key, value, set_by, updated_at) VALUES (?, ?, ?, ?)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value, set_by = excluded.set_by,
                             updated_at = excluded.updated_at",
                        key,
                        text,
                        set_by,
                        now
                    )
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            db.written();
            Ok(())
        },
        postgres: |pool| {
            let now = super::now();
            let mut tx = pool.begin().await?;
            for key in reset {
                sqlx::query!("DELETE FROM settings WHERE key = $1 /* postgres */", key)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Value::Object(fields) = serde_json::to_value(update).unwrap_or_default() {
                for (key, value) in fields {
                    let text = value.to_string();
                    sqlx::query!(
                        "INSERT INTO settings (key, value, set_by, updated_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value, set_by = excluded.set_by,
                             updated_at = excluded.updated_at /* postgres */",
                        key,
                        text,
                        set_by,
                        now
                    )
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            db.written();
            Ok(())
        },
    )
}

/// `over`'s controls laid on `base`.
pub fn merge(base: &mut Layer, over: Layer) {
    macro_rules! take {
        ($($f:ident),*) => { $( if over.$f.is_some() { base.$f = over.$f; } )* };
    }
    take!(
        enabled,
        require_approval,
        max_instances,
        max_session_cost,
        max_cost_per_hour,
        allowed_models,
        preferred_models,
        default_models,
        auto_terminate_after,
        notify_on
    );
}
