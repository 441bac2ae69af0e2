/// Tokens and cost of one model call, read from the transcript.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UsageRecord {
    pub id: i64,
    pub instance_id: String,
    pub message_id: Option<String>,
    pub source_id: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cache_read_tokens: i64,
    /// None: the model has no price.
    pub cost_micros: Option<i64>,
    pub created_at: String,
}

pub struct NewUsage<'a> {
    pub instance_id: &'a str,
    pub message_id: Option<&'a str>,
    pub source_id: &'a str,
    pub model: &'a str,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cache_read_tokens: i64,
    pub cost_micros: Option<i64>,
}

/// Totals over some usage rows.
#[derive(Debug, Clone, Default, serde::Serialize, schemars::JsonSchema)]
pub struct UsageTotals {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cache_read_tokens: i64,
    /// The cost of the priced calls.
    pub cost_micros: i64,
    /// Calls to models with no price: their tokens are counted, their cost is not known.
    pub unpriced_calls: i64,
}

impl UsageRecord {
    /// One row per model call: a response id seen again (a re-read transcript, a split
    /// assistant message) is ignored.
    pub async fn insert(db: &super::Db, new: &NewUsage<'_>) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO usage_records (instance_id, message_id, source_id, model, input_tokens,
                        output_tokens, cache_creation_tokens, cache_read_tokens, cost_micros, created_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (instance_id, source_id) DO NOTHING",
                    new.instance_id,
                    new.message_id,
                    new.source_id,
                    new.model,
                    new.input_tokens,
                    new.output_tokens,
                    new.cache_creation_tokens,
                    new.cache_read_tokens,
                    new.cost_micros,
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
                    "INSERT INTO usage_records (instance_id, message_id, source_id, model, input_tokens,
                        output_tokens, cache_creation_tokens, cache_read_tokens, cost_micros, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (instance_id, source_id) DO NOTHING /* postgres */",
                    new.instance_id,
                    new.message_id,
                    new.source_id,
                    new.model,
                    new.input_tokens,
                    new.output_tokens,
                    new.cache_creation_tokens,
                    new.cache_read_tokens,
                    new.cost_micros,
                    now
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }

    pub async fn for_instance(db: &super::Db, instance_id: &str) -> sqlx::Result<Vec<UsageRecord>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    UsageRecord,
                    "SELECT * FROM usage_records WHERE instance_id = ? ORDER BY id",
                    instance_id
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    UsageRecord,
                    "SELECT * FROM usage_records WHERE instance_id = $1 ORDER BY id /* postgres */",
                    instance_id
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    pub async fn totals_for_instance(
        db: &super::Db,
        instance_id: &str,
    ) -> sqlx::Result<UsageTotals> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    UsageTotals,
                    r#"SELECT COALESCE(SUM(input_tokens), 0) AS "input_tokens!: i64",
                              COALESCE(SUM(output_tokens), 0) AS "output_tokens!: i64",
                              COALESCE(SUM(cache_creation_tokens), 0) AS "cache_creation_tokens!: i64",
                              COALESCE(SUM(cache_read_tokens), 0) AS "cache_read_tokens!: i64",
                              COALESCE(SUM(cost_micros), 0) AS "cost_micros!: i64",
                              COUNT(*) - COUNT(cost_micros) AS "unpriced_calls!: i64"
                       FROM usage_records WHERE instance_id = ?"#,
                    instance_id
                )
                .fetch_one(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    UsageTotals,
                    r#"SELECT COALESCE(SUM(input_tokens)::bigint, 0) AS "input_tokens!: i64",
                              COALESCE(SUM(output_tokens)::bigint, 0) AS "output_tokens!: i64",
                              COALESCE(SUM(cache_creation_tokens)::bigint, 0) AS "cache_creation_tokens!: i64",
                              COALESCE(SUM(cache_read_tokens)::bigint, 0) AS "cache_read_tokens!: i64",
                              COALESCE(SUM(cost_micros)::bigint, 0) AS "cost_micros!: i64",
                              COUNT(*) - COUNT(cost_micros) AS "unpriced_calls!: i64"
                       FROM usage_records WHERE instance_id = $1 /* postgres */"#,
                    instance_id
                )
                .fetch_one(pool)
                .await
            },
        )
    }
}

/// One instance's totals, as a list of every instance's reads them.
struct InstanceTotals {
    instance_id: String,
    input_tokens: i64,
    output_tokens: i64,
    cache_creation_tokens: i64,
    cache_read_tokens: i64,
    cost_micros: i64,
    unpriced_calls: i64,
}

impl UsageRecord {
    /// Every instance's totals in one query (a list of instances would otherwise ask once per
    /// row); an instance with no calls is not in the map.
    pub async fn totals_by_instance(
        db: &super::Db,
    ) -> sqlx::Result<std::collections::HashMap<String, UsageTotals>> {
        let rows = super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    InstanceTotals,
                    r#"SELECT instance_id AS "instance_id!",
                              COALESCE(SUM(input_tokens), 0) AS "input_tokens!: i64",
                              COALESCE(SUM(output_tokens), 0) AS "output_tokens!: i64",
                              COALESCE(SUM(cache_creation_tokens), 0) AS "cache_creation_tokens!: i64",
                              COALESCE(SUM(cache_read_tokens), 0) AS "cache_read_tokens!: i64",
                              COALESCE(SUM(cost_micros), 0) AS "cost_micros!: i64",
                              COUNT(*) - COUNT(cost_micros) AS "unpriced_calls!: i64"
                       FROM usage_records GROUP BY instance_id"#
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    InstanceTotals,
                    r#"SELECT instance_id AS "instance_id!",
                              COALESCE(SUM(input_tokens)::bigint, 0) AS "input_tokens!: i64",
                              COALESCE(SUM(output_tokens)::bigint, 0) AS "output_tokens!: i64",
                              COALESCE(SUM(cache_creation_tokens)::bigint, 0) AS "cache_creation_tokens!: i64",
                              COALESCE(SUM(cache_read_tokens)::bigint, 0) AS "cache_read_tokens!: i64",
                              COALESCE(SUM(cost_micros)::bigint, 0) AS "cost_micros!: i64",
                              COUNT(*) - COUNT(cost_micros) AS "unpriced_calls!: i64"
                       FROM usage_records GROUP BY instance_id /* postgres */"#
                )
                .fetch_all(pool)
                .await
            },
        )?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let totals = UsageTotals {
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                    cache_creation_tokens: r.cache_creation_tokens,
                    cache_read_tokens: r.cache_read_tokens,
                    cost_micros: r.cost_micros,
                    unpriced_calls: r.unpriced_calls,
                };
                (r.instance_id, totals)
            })
            .collect())
    }

    /// The cost (micro-dollars) of every priced call recorded at or after `since` (an RFC 3339
    /// timestamp as the rows hold them).
    pub async fn cost_since(db: &super::Db, since: &str) -> sqlx::Result<i64> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_scalar!(
                    r#"SELECT COALESCE(SUM(cost_micros), 0) AS "cost!: i64" FROM usage_records
                       WHERE created_at >= ?"#,
                    since
                )
                .fetch_one(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_scalar!(
                    r#"SELECT COALESCE(SUM(cost_micros)::bigint, 0) AS "cost!: i64" FROM usage_records
                       WHERE created_at >= $1 /* postgres */"#,
                    since
                )
                .fetch_one(pool)
                .await
            },
        )
    }
}
