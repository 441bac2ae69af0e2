//! The figures of a set of instances (ids as a JSON array, so one query takes any set).

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ModelCost {
    pub model: String,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cache_read_tokens: i64,
    /// None: the model has no price (its tokens are counted, its cost is unknown).
    pub cost_micros: Option<i64>,
}

/// Tokens and cost per model.
pub async fn cost_by_model(db: &super::Db, ids: &str) -> sqlx::Result<Vec<ModelCost>> {
    super::on!(db,
        sqlite: |pool| {
            sqlx::query_as!(
                ModelCost,
                r#"SELECT model AS "model!",
                          COUNT(*) AS "calls!: i64",
                          SUM(input_tokens) AS "input_tokens!: i64",
                          SUM(output_tokens) AS "output_tokens!: i64",
                          SUM(cache_creation_tokens) AS "cache_creation_tokens!: i64",
                          SUM(cache_read_tokens) AS "cache_read_tokens!: i64",
                          CASE WHEN COUNT(cost_micros) = 0 THEN NULL ELSE SUM(cost_micros) END
                              AS "cost_micros: i64"
                   FROM usage_records
                   WHERE instance_id IN (SELECT value FROM json_each(?))
                   GROUP BY model ORDER BY model"#,
                ids
            )
            .fetch_all(pool)
            .await
        },
        postgres: |pool| {
            sqlx::query_as!(
                ModelCost,
                r#"SELECT model AS "model!",
                          COUNT(*) AS "calls!: i64",
                          SUM(input_tokens)::bigint AS "input_tokens!: i64",
                          SUM(output_tokens)::bigint AS "output_tokens!: i64",
                          SUM(cache_creation_tokens)::bigint AS "cache_creation_tokens!: i64",
                          SUM(cache_read_tokens)::bigint AS "cache_read_tokens!: i64",
                          CASE WHEN COUNT(cost_micros) = 0 THEN NULL ELSE SUM(cost_micros)::bigint END
                              AS "cost_micros: i64"
                   FROM usage_records
                   WHERE instance_id IN (SELECT value FROM json_array_elements_text($1::text::json))
                   GROUP BY model ORDER BY model /* postgres */"#,
                ids
            )
            .fetch_all(pool)
            .await
        },
    )
}

/// (state, count) of the messages sent to the instances.
pub async fn messages_by_state(db: &super::Db, ids: &str) -> sqlx::Result<Vec<(String, i64)>> {
    super::on!(db,
        sqlite: |pool| {
            let rows = sqlx::query!(
                r#"SELECT state AS "state!", COUNT(*) AS "n!: i64" FROM messages
                   WHERE instance_id IN (SELECT value FROM json_each(?)) GROUP BY state"#,
                ids
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| (r.state, r.n)).collect())
        },
        postgres: |pool| {
            let rows = sqlx::query!(
                r#"SELECT state AS "state!", COUNT(*) AS "n!: i64" FROM messages
                   WHERE instance_id IN (SELECT value FROM json_array_elements_text($1::text::json)) GROUP BY state /* postgres */"#,
                ids
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| (r.state, r.n)).collect())
        },
    )
}

/// (outcome, count) of the interrupts asked for.
pub async fn interrupts_by_outcome(db: &super::Db, ids: &str) -> sqlx::Result<Vec<(String, i64)>> {
    super::on!(db,
        sqlite: |pool| {
            let rows = sqlx::query!(
                r#"SELECT outcome AS "outcome!", COUNT(*) AS "n!: i64" FROM interrupts
                   WHERE instance_id IN (SELECT value FROM json_each(?)) GROUP BY outcome"#,
                ids
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| (r.outcome, r.n)).collect())
        },
        postgres: |pool| {
            let rows = sqlx::query!(
                r#"SELECT outcome AS "outcome!", COUNT(*) AS "n!: i64" FROM interrupts
                   WHERE instance_id IN (SELECT value FROM json_array_elements_text($1::text::json)) GROUP BY outcome /* postgres */"#,
                ids
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| (r.outcome, r.n)).collect())
        },
    )
}

/// When each finished turn ran: from the CLI taking the message (or its being typed) to its
/// end, as RFC 3339 text.
pub async fn turn_spans(db: &super::Db, ids: &str) -> sqlx::Result<Vec<(String, String)>> {
    super::on!(db,
        sqlite: |pool| {
            let rows = sqlx::query!(
                r#"SELECT COALESCE(started_at, submitted_at) AS "from!", finished_at AS "to!"
                   FROM messages
                   WHERE instance_id IN (SELECT value FROM json_each(?))
                     AND finished_at IS NOT NULL AND COALESCE(started_at, submitted_at) IS NOT NULL"#,
                ids
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| (r.from, r.to)).collect())
        },
        postgres: |pool| {
            let rows = sqlx::query!(
                r#"SELECT COALESCE(started_at, submitted_at) AS "from!", finished_at AS "to!"
                   FROM messages
                   WHERE instance_id IN (SELECT value FROM json_array_elements_text($1::text::json))
                     AND finished_at IS NOT NULL AND COALESCE(started_at, submitted_at) IS NOT NULL /* postgres */"#,
                ids
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| (r.from, r.to)).collect())
        },
    )
}
