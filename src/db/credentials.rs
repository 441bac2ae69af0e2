/// What an instance's CLI was configured with when it last started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub token: String,
    /// The troupe URL in the instance's hook and MCP configuration.
    pub server_url: String,
}

impl Credentials {
    /// The instance's token for a launch against `server_url`: the one it already has (a
    /// resumed CLI keeps its identity), or `fresh` for a new instance. Records the URL.
    pub async fn for_launch(
        db: &super::Db,
        instance_id: &str,
        server_url: &str,
        fresh: &str,
    ) -> sqlx::Result<String> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_scalar!(
                    "INSERT INTO instance_credentials (instance_id, token, server_url) VALUES (?, ?, ?)
                     ON CONFLICT (instance_id) DO UPDATE SET server_url = excluded.server_url
                     RETURNING token",
                    instance_id,
                    fresh,
                    server_url,
                )
                .fetch_one(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_scalar!(
                    "INSERT INTO instance_credentials (instance_id, token, server_url) VALUES ($1, $2, $3)
                     ON CONFLICT (instance_id) DO UPDATE SET server_url = excluded.server_url
                     RETURNING token /* postgres */",
                    instance_id,
                    fresh,
                    server_url,
                )
                .fetch_one(pool)
                .await
            },
        )
    }

    pub async fn find(db: &super::Db, instance_id: &str) -> sqlx::Result<Option<Credentials>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Credentials,
                    "SELECT token, server_url FROM instance_credentials WHERE instance_id = ?",
                    instance_id
                )
                .fetch_optional(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Credentials,
                    "SELECT token, server_url FROM instance_credentials WHERE instance_id = $1 /* postgres */",
                    instance_id
                )
                .fetch_optional(pool)
                .await
            },
        )
    }
}
