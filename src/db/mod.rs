//! Everything troupe remembers lives in SQLite; this module is the only place that speaks SQL.
//! One file per table: the row type and the associated functions that read and write it.

pub mod approvals;
pub mod audit;
pub mod copy;
pub mod credentials;
pub mod events;
pub mod health;
pub mod host_calls;
pub mod hosts;
pub mod instances;
pub mod interrupts;
pub mod messages;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod pages;
pub mod permissions;
pub mod replies;
pub mod report;
pub mod settings;
pub mod teams;
pub mod usage;
pub mod web_sessions;
pub mod worktrees;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::watch;

/// Where the registry lives: an SQLite file (the default) or a PostgreSQL database.
#[derive(Clone, Debug)]
pub enum Backend {
    #[cfg(not(troupe_prepare = "postgres"))]
    Sqlite(SqlitePool),
    #[cfg(not(troupe_prepare = "sqlite"))]
    Postgres(sqlx::PgPool),
}

/// Runs the arm written for the backend `db` is on. Each arm's query texts are checked at
/// compile time against their own database: `.ci/prepare-queries` checks the SQLite texts with
/// the PostgreSQL arms compiled out, then the other way round, and keeps both in `.sqlx`.
macro_rules! on {
    ($db:expr, sqlite: |$s:ident| $sqlite:expr, postgres: |$p:ident| $postgres:expr $(,)?) => {
        match $db.backend() {
            #[cfg(not(troupe_prepare = "postgres"))]
            $crate::db::Backend::Sqlite($s) => $sqlite,
            #[cfg(not(troupe_prepare = "sqlite"))]
            $crate::db::Backend::Postgres($p) => $postgres,
        }
    };
}
pub(crate) use on;

/// The registry's database: its connection pool, and the signal that a committed write may
/// have added to the event log (streams and waiters subscribe to it).
#[derive(Clone, Debug)]
pub struct Db {
    backend: Backend,
    written: Arc<watch::Sender<u64>>,
    /// Rings when an act handed between hosts is written or answered (PostgreSQL only).
    calls: Arc<watch::Sender<u64>>,
    health: Arc<health::Health>,
    /// Instance rows as listings read them, kept from one write of those rows to the next.
    listing: Arc<instances::Listing>,
    /// Counts committed writes, so that an answer made from the rows can be kept until the
    /// next one (see [`Db::rows_version`]).
    rows: Arc<std::sync::atomic::AtomicU64>,
    /// The task that turns PostgreSQL notifications into wake-ups; it holds a connection of
    /// the pool, so closing ends it first.
    listener: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// SQLite: connections of their own for the event streams' reads, which would otherwise
    /// queue behind the writes holding the pool's connections while many instances work.
    stream_reads: Option<SqlitePool>,
}

impl Db {
    pub fn new(backend: Backend) -> Db {
        Db {
            backend,
            written: Arc::new(watch::channel(0).0),
            calls: Arc::new(watch::channel(0).0),
            health: Arc::default(),
            listing: Arc::default(),
            rows: Arc::default(),
            listener: Arc::default(),
            stream_reads: None,
        }
    }

    /// The pool the event streams read from: their own, where there is one.
    pub(crate) fn stream_pool<'a>(&'a self, pool: &'a SqlitePool) -> &'a SqlitePool {
        self.stream_reads.as_ref().unwrap_or(pool)
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn sqlite(pool: SqlitePool) -> Db {
        #[cfg(not(troupe_prepare = "postgres"))]
        return Db::new(Backend::Sqlite(pool));
        #[cfg(troupe_prepare = "postgres")]
        unreachable!("only checked, never run: {pool:?}")
    }

    pub fn postgres(pool: sqlx::PgPool) -> Db {
        #[cfg(not(troupe_prepare = "sqlite"))]
        return Db::new(Backend::Postgres(pool));
        #[cfg(troupe_prepare = "sqlite")]
        unreachable!("only checked, never run: {pool:?}")
    }

    /// The SQLite pool, when the registry is an SQLite file (tests read it with plain SQL).
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        on!(self, sqlite: |p| Some(p), postgres: |_p| None)
    }

    /// Which engine, for the start line and `troupe doctor`.
    pub fn engine(&self) -> &'static str {
        on!(self, sqlite: |_p| "SQLite", postgres: |_p| "PostgreSQL")
    }

    /// Closes every connection (a clean stop checkpoints SQLite's WAL).
    pub async fn close(&self) {
        let listener = self.listener.lock().expect("listener poisoned").take();
        if let Some(task) = listener {
            task.abort();
            let _ = task.await;
        }
        if let Some(reads) = &self.stream_reads {
            reads.close().await;
        }
        on!(self, sqlite: |p| p.close().await, postgres: |p| p.close().await)
    }

    /// Whether the database answers, as its last use found.
    pub fn health(&self) -> &health::Health {
        &self.health
    }

    /// Asks the database whether it answers (within `limit`), and notes what it found.
    pub async fn ping(&self, limit: Duration) -> Option<health::Outage> {
        use sqlx::Connection;
        let answer = tokio::time::timeout(limit, async {
            on!(self,
                sqlite: |p| p.acquire().await?.ping().await,
                postgres: |p| p.acquire().await?.ping().await)
        })
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        match answer {
            Ok(()) => self.health.answered(),
            Err(e) => self.health.failed(&e),
        }
        self.health.outage()
    }

    /// Called after each committed write to the columns of `instances` a listing shows.
    pub(crate) fn instances_changed(&self) {
        self.listing.changed();
        self.rows_written();
    }

    /// Called by each write to a table the event log follows, after the write has committed.
    pub(crate) fn written(&self) {
        self.rows_written();
        self.written.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Called after each committed write that neither the event log nor a listing follows
    /// (an instance's transcript path, session id or team); [`Db::written`] and
    /// [`Db::instances_changed`] call it for theirs.
    pub(crate) fn rows_written(&self) {
        self.rows.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// A number that moves with every committed write to the instances and their usage, or
    /// `None` where other hosts write too (PostgreSQL): an answer made from rows read after
    /// this was taken is current until it moves. Take it before the reads, so that a write in
    /// between makes the answer newer than its key, never older.
    pub fn rows_version(&self) -> Option<u64> {
        (!self.is_shared()).then(|| self.rows.load(std::sync::atomic::Ordering::Acquire))
    }

    /// A receiver that wakes after each write: a stream marks the value seen, reads, then
    /// waits for a change, so a write between its read and its wait still wakes it.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// A receiver that wakes when an act handed between hosts is written or answered, used
    /// as [`Db::subscribe`]'s is.
    pub fn subscribe_calls(&self) -> watch::Receiver<u64> {
        self.calls.subscribe()
    }

    /// Whether other hosts may share this registry (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        on!(self, sqlite: |_p| false, postgres: |_p| true)
    }
}

/// Opens (creating if needed) the database file and brings its schema up to date.
/// A write waits up to `busy_timeout` for a lock held elsewhere (a backup, a sqlite3 shell in
/// a transaction): what troupe records is not dropped for a lock that passes.
pub async fn open(path: &Path, busy_timeout: Duration) -> anyhow::Result<Db> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        crate::private::dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    // Private from the start: SQLite gives its WAL and shared-memory files the database
    // file's permissions. Files an older troupe left readable are narrowed too.
    crate::private::touch(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            crate::private::touch(&side)
                .map_err(|e| anyhow::anyhow!("cannot make {} private: {e}", side.display()))?;
        }
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(busy_timeout);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        // Every connection may be waiting on that lock; a caller waits as long for one.
        .acquire_timeout(busy_timeout + Duration::from_secs(5))
        .connect_with(options.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
    sqlx::migrate!()
        .run(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("cannot migrate database {}: {e}", path.display()))?;
    // Read-only, and in WAL mode never blocked by a writer.
    let stream_reads = SqlitePoolOptions::new()
        .max_connections(2)
        .acquire_timeout(busy_timeout + Duration::from_secs(5))
        .connect_with(options.read_only(true))
        .await
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
    let mut db = Db::sqlite(pool);
    db.stream_reads = Some(stream_reads);
    Ok(db)
}

/// Whether `--db` names a PostgreSQL server (else it is an SQLite file).
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// A database URL fit to print: any password replaced.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(a database URL troupe cannot read)".into(),
    }
}

/// Connects to a PostgreSQL registry and brings its schema up to date, then listens for the
/// event log's NOTIFY so a write by any process (another host, `troupe report`, an operator's
/// SQL) wakes this one's streams and waiters.
pub async fn open_postgres(url: &str, acquire_timeout: Duration) -> anyhow::Result<Db> {
    let shown = redacted(url);
    let pool = connect_postgres(url, acquire_timeout).await?;
    let db = Db::postgres(pool.clone());
    let listener = listen(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on the database {shown}: {e}"))?;
    let task = tokio::spawn(follow(
        listener,
        pool,
        Rings {
            written: db.written.clone(),
            calls: db.calls.clone(),
        },
        db.health.clone(),
    ));
    *db.listener.lock().expect("listener poisoned") = Some(task);
    Ok(db)
}

/// A PostgreSQL server's version, or why it did not answer within 5 s (the URL's password
/// taken out), for `troupe doctor`.
pub async fn server_version(url: &str) -> Result<String, String> {
    use sqlx::Connection;
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(version)
    })
    .await;
    match answer {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(no_secret(&e, url)),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

/// A pool on a PostgreSQL registry, its schema made or brought up to date.
pub async fn connect_postgres(
    url: &str,
    acquire_timeout: Duration,
) -> anyhow::Result<sqlx::PgPool> {
    let shown = redacted(url);
    // One connection first: it fails at once with the driver's reason (refused, unknown
    // host, wrong password), where the pool would wait out its timeout and say only that.
    {
        use sqlx::Connection;
        let first = sqlx::PgConnection::connect(url).await.map_err(|e| {
            anyhow::anyhow!("cannot reach the database {shown}: {}", no_secret(&e, url))
        })?;
        let _ = first.close().await;
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        // Under load a call waits for a connection rather than failing.
        .acquire_timeout(acquire_timeout)
        .connect(url)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot reach the database {shown}: {}", no_secret(&e, url))
        })?;
    sqlx::migrate!("migrations/postgres")
        .run(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("cannot migrate the database {shown}: {e}"))?;
    Ok(pool)
}

async fn listen(pool: &sqlx::PgPool) -> sqlx::Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    // A lost connection is answered at once (and the outage noted), not after the pool's
    // wait for a new one.
    listener.eager_reconnect(false);
    listener
        .listen_all(["troupe_events", "troupe_calls"])
        .await?;
    Ok(listener)
}

/// What a notification wakes: waiters on the event log, and the hand-over of acts.
struct Rings {
    written: Arc<watch::Sender<u64>>,
    calls: Arc<watch::Sender<u64>>,
}

impl Rings {
    fn ring(bell: &watch::Sender<u64>) {
        bell.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn all(&self) {
        Rings::ring(&self.written);
        Rings::ring(&self.calls);
    }
}

/// Wakes streams and waiters on each notification. A lost connection is an outage: it is
/// noted, and the listener is made again (with a backoff) until the server answers; then
/// everyone is woken, since whatever was sent meanwhile was lost.
async fn follow(
    mut listener: sqlx::postgres::PgListener,
    pool: sqlx::PgPool,
    rings: Rings,
    health: Arc<health::Health>,
) {
    let wake = || rings.all();
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) if n.channel() == "troupe_calls" => {
                Rings::ring(&rings.calls);
                continue;
            }
            Ok(Some(_)) => {
                Rings::ring(&rings.written);
                continue;
            }
            Ok(None) => health.down("the connection to the database was lost"),
            Err(e) => health.down(&e.to_string()),
        }
        wake();
        let mut retry = Duration::from_millis(100);
        listener = loop {
            // A backoff between attempts, not a wait for an event.
            tokio::time::sleep(retry).await;
            match listen(&pool).await {
                Ok(l) => break l,
                Err(e) => {
                    tracing::debug!(error = %e, "the database still does not answer");
                    retry = (retry * 2).min(Duration::from_secs(2));
                }
            }
        };
        health.answered();
        wake();
    }
}

/// An error's text with the URL's password taken out, should the driver quote it.
fn no_secret(e: &dyn std::fmt::Display, url: &str) -> String {
    let text = e.to_string();
    match reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        Some(pw) if !pw.is_empty() => text.replace(&pw, "***"),
        _ => text,
    }
}

/// Text as PostgreSQL takes it: its `text` type has no NUL character (SQLite's has), and a
/// row refused for one would stall the write queue behind it; each becomes U+FFFD.
pub fn pg_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// The one timestamp format in the database: UTC, milliseconds, sortable as text.
pub fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Now, as [`stamp`] writes it.
pub fn now() -> String {
    stamp(chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_text_has_no_nul() {
        assert_eq!(super::pg_text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(
            super::pg_text("ab"),
            std::borrow::Cow::Borrowed("ab")
        ));
    }
}
