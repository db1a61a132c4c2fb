//! [`PgStore`]: the [`HistoryStore`] operations as SQL over a connection pool.
//!
//! Every operation takes a pooled connection, runs its statements (pipelined when there are
//! several, so each operation costs about one round trip) and gives the connection back. An
//! append is one statement whatever the batch size: the channel row is upserted only if the
//! batch follows the stored position (or starts a new epoch), and the batch's rows are inserted
//! from arrays with `unnest`, all in one implicit transaction.

use std::collections::HashMap;
use std::error::Error as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use futures_util::future::try_join_all;
use livehub_core::{
    ChannelName, Epoch, Error, HistoryQuery, HistoryStore, Payload, Publication, StoredEntry, StoredHistory,
    StoredStream, StreamPosition, IDEMPOTENCY_WINDOW,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::schema;
use crate::settings::PgSettings;
use crate::PgStoreError;

/// Appends a batch to a channel. The channel row changes only when the batch follows the stored
/// position in the stored epoch, or starts a new epoch at offset 1 that is not one of the
/// channel's abandoned epochs; every other part runs only when it did (`EXISTS (SELECT 1 FROM
/// chan)`), so any other batch changes nothing and returns 0. A new epoch deletes the old one's
/// rows in the same statement (only then: the `previous` condition is a one-time filter, so an
/// append in the same epoch never scans the channel's rows) and adds the old epoch and `$14` (epochs whose writes failed on
/// this store) to the abandoned ones, keeping the newest [`DEAD_EPOCHS`].
///
/// The conditions are evaluated on the newest version of the locked channel row, so a late write
/// of an abandoned epoch (one the database received after livehub gave up on it) cannot replace
/// the epoch that followed, however the two statements interleave.
const APPEND: &str = "
WITH previous AS (
    SELECT epoch FROM livehub_channels WHERE channel = $1
), chan AS (
    INSERT INTO livehub_channels AS c
        (channel, epoch, last_pos, latest_ts, latest_binary, latest_data, dead_epochs)
    VALUES ($1, $2, $4, $5, $6, $7, $14)
    ON CONFLICT (channel) DO UPDATE SET
        epoch = EXCLUDED.epoch, last_pos = EXCLUDED.last_pos, latest_ts = EXCLUDED.latest_ts,
        latest_binary = EXCLUDED.latest_binary, latest_data = EXCLUDED.latest_data,
        dead_epochs = CASE WHEN c.epoch = EXCLUDED.epoch THEN c.dead_epochs ELSE
            (c.dead_epochs || EXCLUDED.dead_epochs || c.epoch)[greatest(1,
                cardinality(c.dead_epochs || EXCLUDED.dead_epochs || c.epoch) - $15::int4 + 1):] END
    WHERE (c.epoch = EXCLUDED.epoch AND c.last_pos = $3::int8 - 1)
       OR (c.epoch <> EXCLUDED.epoch AND $3::int8 = 1 AND NOT EXCLUDED.epoch = ANY(c.dead_epochs))
    RETURNING 1
), old_publications AS (
    DELETE FROM livehub_publications
    WHERE channel = $1 AND epoch <> $2 AND EXISTS (SELECT 1 FROM chan)
      AND EXISTS (SELECT 1 FROM previous WHERE previous.epoch <> $2)
), old_keys AS (
    DELETE FROM livehub_keys
    WHERE channel = $1 AND epoch <> $2 AND EXISTS (SELECT 1 FROM chan)
      AND EXISTS (SELECT 1 FROM previous WHERE previous.epoch <> $2)
), publications AS (
    INSERT INTO livehub_publications (channel, epoch, pos, ts, is_binary, data)
    SELECT $1, $2, u.pos, u.ts, u.is_binary, u.data
    FROM unnest($8::int8[], $9::int8[], $10::bool[], $11::bytea[]) AS u(pos, ts, is_binary, data)
    WHERE EXISTS (SELECT 1 FROM chan)
), keys AS (
    INSERT INTO livehub_keys (channel, epoch, pos, key)
    SELECT $1, $2, u.pos, u.key FROM unnest($12::int8[], $13::text[]) AS u(pos, key)
    WHERE EXISTS (SELECT 1 FROM chan)
)
SELECT count(*) FROM chan";

/// How many abandoned epochs a channel remembers. An epoch is abandoned when a write fails; a
/// late write of it can only arrive while the database is slow or partitioned, so the last few
/// suffice.
const DEAD_EPOCHS: i32 = 16;

/// A channel's stored state, with the offset of its oldest stored publication.
const LOAD: &str = "
SELECT c.epoch, c.last_pos, c.latest_ts, c.latest_binary, c.latest_data,
       (SELECT min(p.pos) FROM livehub_publications p WHERE p.channel = c.channel AND p.epoch = c.epoch)
FROM livehub_channels c WHERE c.channel = $1";

/// The newest idempotency keys of a channel's current epoch, newest first.
const KEYS: &str = "
SELECT k.pos, k.key FROM livehub_keys k
JOIN livehub_channels c ON c.channel = k.channel AND c.epoch = k.epoch
WHERE k.channel = $1 ORDER BY k.pos DESC LIMIT $2";

/// The oldest matching publications of the current epoch, after `$2`, in `$3..$4`.
const READ_FORWARD: &str = "
SELECT p.pos, p.ts, p.is_binary, p.data, p.epoch FROM livehub_publications p
JOIN livehub_channels c ON c.channel = p.channel AND c.epoch = p.epoch
WHERE p.channel = $1 AND p.pos > $2 AND p.ts >= $3 AND p.ts < $4
ORDER BY p.pos ASC LIMIT $5";

/// The newest matching publications, newest first.
const READ_BACKWARD: &str = "
SELECT p.pos, p.ts, p.is_binary, p.data, p.epoch FROM livehub_publications p
JOIN livehub_channels c ON c.channel = p.channel AND c.epoch = p.epoch
WHERE p.channel = $1 AND p.pos > $2 AND p.ts >= $3 AND p.ts < $4
ORDER BY p.pos DESC LIMIT $5";

/// The offset of a channel's oldest stored publication, and its position.
const OLDEST: &str = "
SELECT c.last_pos,
       (SELECT min(p.pos) FROM livehub_publications p WHERE p.channel = c.channel AND p.epoch = c.epoch)
FROM livehub_channels c WHERE c.channel = $1";

/// Drops all but the newest `$2` publications and those older than `$3` (and any of an old
/// epoch), trims the keys to the newest window, and returns the oldest offset still stored,
/// computed from the statement's snapshot by the same condition the deletes keep.
const EVICT: &str = "
WITH c AS (
    SELECT channel, epoch, last_pos FROM livehub_channels WHERE channel = $1
), gone AS (
    DELETE FROM livehub_publications p USING c
    WHERE p.channel = c.channel AND (p.epoch <> c.epoch OR p.pos <= c.last_pos - $2 OR p.ts < $3)
), old_keys AS (
    DELETE FROM livehub_keys k USING c
    WHERE k.channel = c.channel AND (k.epoch <> c.epoch OR k.pos < (
        SELECT k2.pos FROM livehub_keys k2 WHERE k2.channel = c.channel AND k2.epoch = c.epoch
        ORDER BY k2.pos DESC OFFSET $4 LIMIT 1))
)
SELECT coalesce(
    (SELECT min(p.pos) FROM livehub_publications p
     WHERE p.channel = c.channel AND p.epoch = c.epoch AND p.pos > c.last_pos - $2 AND p.ts >= $3),
    c.last_pos + 1)
FROM c";

/// What `livehub store stats` shows of a PostgreSQL store.
const STATS: &str = "
SELECT (SELECT count(*) FROM livehub_channels),
       (SELECT count(*) FROM livehub_publications),
       pg_total_relation_size('livehub_channels') + pg_total_relation_size('livehub_publications')
           + pg_total_relation_size('livehub_keys'),
       (SELECT min((SELECT min(p.ts) FROM livehub_publications p
                    WHERE p.channel = c.channel AND p.epoch = c.epoch))
        FROM livehub_channels c),
       (SELECT max(latest_ts) FROM livehub_channels)";

/// A [`HistoryStore`] in a PostgreSQL database; cheap to clone (a handle to a shared pool).
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
    /// To the committers: each takes every append waiting and writes them as one transaction.
    commits: mpsc::UnboundedSender<Commit>,
}

/// One channel's batch waiting for a committer.
struct Commit {
    channel: ChannelName,
    entries: Vec<StoredEntry>,
    done: oneshot::Sender<Result<(), Error>>,
}

/// Most channels' batches one transaction takes.
const MAX_GROUP: usize = 512;

/// A committer: waits for appends, takes every one waiting (up to [`MAX_GROUP`]) and writes them
/// in one transaction. Several run, so that one group is being gathered while others commit;
/// they end when the last handle of the store is dropped.
async fn committer(shared: Arc<Shared>, queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Commit>>>) {
    loop {
        let mut commits = Vec::new();
        {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(commit) => commits.push(commit),
                None => return,
            }
            while commits.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(commit) => commits.push(commit),
                    Err(_) => break,
                }
            }
        }
        let batches: Vec<_> = commits.iter().map(|c| (&c.channel, &c.entries[..])).collect();
        let outcomes = shared.write(&batches).await;
        drop(batches);
        for (commit, outcome) in commits.into_iter().zip(outcomes) {
            // The publisher may have gone; its batch's outcome stands in the broker regardless.
            let _ = commit.done.send(outcome);
        }
    }
}

/// One request of a pipelined transaction.
type Step<'a> = Pin<Box<dyn Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send + 'a>>;

struct Shared {
    pool: Pool,
    settings: PgSettings,
    health: Health,
    /// Per channel, the epochs whose writes failed here since its last successful write. The
    /// broker abandons an epoch whose write failed; the next write records them in the database,
    /// so that a late arrival of the failed write is refused there.
    abandoned: Mutex<HashMap<ChannelName, Vec<String>>>,
}

/// Whether the database answered the last operation, for `/health`.
#[derive(Default)]
struct Health {
    degraded: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Health {
    fn ok(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("the PostgreSQL store is reachable again");
            *self.error.lock() = None;
        }
    }

    fn failed(&self, error: &str) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error, "the PostgreSQL store is degraded");
        }
        *self.error.lock() = Some(error.to_owned());
    }
}

/// The store's state, as `/health` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgStatus {
    /// The last operation failed because the database was unreachable or unresponsive.
    pub degraded: bool,
    /// That failure.
    pub error: Option<String>,
    /// Connections open in the pool.
    pub connections: usize,
    /// Of those, idle.
    pub idle: usize,
    /// Most connections the pool opens.
    pub max_connections: usize,
}

/// What `livehub store stats` prints of a PostgreSQL store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgStats {
    /// The schema version of the database.
    pub schema_version: i32,
    /// Bytes the store's tables and indexes take.
    pub size_bytes: u64,
    /// Channels with a stored position.
    pub channels: u64,
    /// Stored publications, all channels together.
    pub entries: u64,
    /// Server time of the oldest stored publication, in Unix milliseconds.
    pub oldest_ts: Option<u64>,
    /// Server time of the newest publication, in Unix milliseconds.
    pub newest_ts: Option<u64>,
}

/// One statement's failure, classified.
struct Failure {
    message: String,
    /// The database was unreachable or unresponsive (rather than refusing the statement).
    unreachable: bool,
}

impl PgStore {
    /// Connects to the database, applies the migrations it lacks, and returns the store.
    /// Fails within about the connect timeout when the database is unreachable, and refuses a
    /// schema newer than this build's.
    pub async fn open(settings: PgSettings) -> Result<Self, PgStoreError> {
        let mut config = settings.client_config()?;
        config.tcp_user_timeout(settings.operation_timeout());
        let manager = Manager::from_config(
            config,
            NoTls,
            // `Fast` hands out a connection after checking only that it is not closed: a
            // restarted database closes them all, and a statement on one that died silently
            // fails once and is then dropped, which costs less than a round trip per checkout.
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.operation_timeout()))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| PgStoreError::Connect(e.to_string()))?;
        let mut client = pool.get().await.map_err(|e| PgStoreError::Connect(describe_pool(&e).message))?;
        let version = schema::migrate(&mut client).await?;
        tracing::debug!(version, "opened the PostgreSQL store");
        let committers = settings.committers.max(1);
        let shared =
            Arc::new(Shared { pool, settings, health: Health::default(), abandoned: Mutex::default() });
        let (commits, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        for _ in 0..committers {
            tokio::spawn(committer(shared.clone(), queue.clone()));
        }
        Ok(Self { shared, commits })
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &PgSettings {
        &self.shared.settings
    }

    /// The state of the store as the last operation found it, without asking the database.
    pub fn status(&self) -> PgStatus {
        let pool = self.shared.pool.status();
        let health = &self.shared.health;
        PgStatus {
            degraded: health.degraded.load(Ordering::Relaxed),
            error: health.error.lock().clone(),
            connections: pool.size,
            idle: pool.available,
            max_connections: pool.max_size,
        }
    }

    /// Asks the database whether it answers (within the timeouts), updating [`status`](Self::status).
    pub async fn check(&self) -> PgStatus {
        let _ = self
            .shared
            .run("health check", async |client| client.simple_query("SELECT 1").await.map(drop))
            .await;
        self.status()
    }

    /// Size, channels and the oldest entry of the store.
    pub async fn stats(&self) -> Result<PgStats, Error> {
        self.shared
            .run("stats", async |client| {
                let (version, row) =
                    tokio::try_join!(schema::version(&***client), client.query_one(STATS, &[]))?;
                Ok(PgStats {
                    schema_version: version,
                    channels: row.try_get::<_, i64>(0)?.max(0) as u64,
                    entries: row.try_get::<_, i64>(1)?.max(0) as u64,
                    size_bytes: row.try_get::<_, i64>(2)?.max(0) as u64,
                    oldest_ts: row.try_get::<_, Option<i64>>(3)?.map(to_u64),
                    newest_ts: row.try_get::<_, Option<i64>>(4)?.map(to_u64),
                })
            })
            .await
    }

    /// Up to `limit` stored channel names after `after`, in order: what retention walks.
    pub async fn channel_names(&self, after: Option<String>, limit: usize) -> Result<Vec<String>, Error> {
        let after = after.unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .shared
            .run("list channels", async |client| {
                let statement = client
                    .prepare_cached(
                        "SELECT channel FROM livehub_channels WHERE channel > $1 ORDER BY channel LIMIT $2",
                    )
                    .await?;
                client.query(&statement, &[&after, &limit]).await
            })
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(|e| self.shared.failed("list channels", classify(&e))))
            .collect()
    }

    /// Closes the pool: idle connections now, the others when their operation ends. Later
    /// operations fail.
    pub fn close(&self) {
        self.shared.pool.close();
    }

    /// Stores the batches of several channels in one transaction (each as
    /// [`HistoryStore::append`] would), pipelined: the write half of write-behind. Fails if any
    /// batch was not stored.
    pub async fn append_many(&self, batches: &[(ChannelName, Vec<StoredEntry>)]) -> Result<(), Error> {
        let batches: Vec<_> = batches
            .iter()
            .filter(|(_, entries)| !entries.is_empty())
            .map(|(channel, entries)| (channel, &entries[..]))
            .collect();
        if batches.is_empty() {
            return Ok(());
        }
        self.shared.write(&batches).await.into_iter().collect()
    }
}

impl Shared {
    /// Writes `batches` (each non-empty, of distinct channels) in one transaction: BEGIN, one
    /// statement per batch and COMMIT are sent together, pipelined on one connection, so the
    /// group costs one round trip and one commit. Returns, per batch, whether it was stored; a
    /// batch that does not follow changes nothing and does not stop the others.
    async fn write(&self, batches: &[(&ChannelName, &[StoredEntry])]) -> Vec<Result<(), Error>> {
        let dead: Vec<_> = batches.iter().map(|(channel, _)| self.abandoned(channel)).collect();
        let params: Vec<AppendParams<'_>> = batches
            .iter()
            .zip(&dead)
            .map(|((channel, entries), dead)| AppendParams::new(channel, entries, dead))
            .collect();
        let written = self
            .run("append", async |client| {
                let client: &Object = client;
                let statement = client.prepare_cached(APPEND).await?;
                let refs: Vec<_> = params.iter().map(AppendParams::refs).collect();
                if let [one] = &refs[..] {
                    // One statement is its own transaction.
                    let row = client.query_one(&statement, &one[..]).await?;
                    return Ok(vec![appended(&row)]);
                }
                // try_join_all polls its futures in order, and each sends its request when first
                // polled: BEGIN, the statements and COMMIT leave in that order. A failing
                // statement aborts the transaction, and the COMMIT then rolls it back.
                let mut steps: Vec<Step<'_>> = Vec::with_capacity(refs.len() + 2);
                steps.push(Box::pin(async { client.batch_execute("BEGIN").await.map(|()| None) }));
                for r in &refs {
                    let statement = &statement;
                    steps.push(Box::pin(async move { client.query_one(statement, &r[..]).await.map(Some) }));
                }
                steps.push(Box::pin(async { client.batch_execute("COMMIT").await.map(|()| None) }));
                let rows = try_join_all(steps).await?;
                Ok(rows.iter().flatten().map(appended).collect())
            })
            .await;
        let outcomes: Vec<Result<(), Error>> = match written {
            Ok(stored) => batches
                .iter()
                .zip(stored)
                .map(|((channel, entries), stored)| {
                    if stored {
                        Ok(())
                    } else {
                        Err(not_following(channel, entries[0].publication.position.offset))
                    }
                })
                .collect(),
            Err(e) => vec![Err(e); batches.len()],
        };
        for ((channel, entries), outcome) in batches.iter().zip(&outcomes) {
            self.settle(channel, entries, outcome.is_ok());
        }
        outcomes
    }

    /// The epochs of `channel` whose writes failed here since its last successful write.
    fn abandoned(&self, channel: &ChannelName) -> Vec<String> {
        self.abandoned.lock().get(channel).cloned().unwrap_or_default()
    }

    /// After a write of `entries`: forgets the channel's abandoned epochs once a write (which
    /// recorded them) succeeded, or adds the batch's epoch to them when it failed, because the
    /// broker abandons it.
    fn settle(&self, channel: &ChannelName, entries: &[StoredEntry], stored: bool) {
        let mut abandoned = self.abandoned.lock();
        if stored {
            abandoned.remove(channel);
            return;
        }
        let Some(first) = entries.first() else { return };
        let epoch = first.publication.position.epoch.as_str();
        let dead = abandoned.entry(channel.clone()).or_default();
        if !dead.iter().any(|e| e == epoch) {
            dead.push(epoch.to_owned());
            if dead.len() > DEAD_EPOCHS as usize {
                dead.remove(0);
            }
        }
    }

    /// Takes a pooled connection and runs `op` on it within the operation timeout, keeping the
    /// health flag and turning failures into [`Error::Broker`] naming `what`.
    async fn run<T>(
        &self,
        what: &str,
        op: impl AsyncFnOnce(&mut Object) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, Error> {
        let shared = self;
        let mut client = match shared.pool.get().await {
            Ok(client) => client,
            Err(e) => return Err(self.failed(what, describe_pool(&e))),
        };
        let outcome = tokio::time::timeout(shared.settings.operation_timeout(), op(&mut client)).await;
        match outcome {
            Ok(Ok(value)) => {
                shared.health.ok();
                Ok(value)
            }
            Ok(Err(e)) => {
                let failure = classify(&e);
                if failure.unreachable {
                    // The connection may be dead; do not hand it out again.
                    drop(Object::take(client));
                }
                Err(self.failed(what, failure))
            }
            Err(_) => {
                // The statement may still be running on the server: the connection's replies
                // would be out of step, so it is closed rather than reused.
                drop(Object::take(client));
                let timeout = shared.settings.operation_timeout();
                Err(self.failed(
                    what,
                    Failure {
                        message: format!("no answer from the database within {} ms", timeout.as_millis()),
                        unreachable: true,
                    },
                ))
            }
        }
    }

    fn failed(&self, what: &str, failure: Failure) -> Error {
        let message = format!("PostgreSQL store: {what} failed: {}", failure.message);
        if failure.unreachable {
            self.health.failed(&message);
        }
        Error::Broker(message)
    }
}

#[async_trait]
impl HistoryStore for PgStore {
    async fn load(&self, channel: &ChannelName) -> Result<Option<StoredStream>, Error> {
        let window = IDEMPOTENCY_WINDOW as i64;
        let (row, keys) = self
            .shared
            .run("load", async |client| {
                let (load, keys) =
                    tokio::try_join!(client.prepare_cached(LOAD), client.prepare_cached(KEYS))?;
                let name = channel.as_str();
                let (load_params, keys_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 2]) =
                    ([&name], [&name, &window]);
                tokio::try_join!(client.query_opt(&load, &load_params), client.query(&keys, &keys_params))
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        let stored = (|| -> Result<StoredStream, tokio_postgres::Error> {
            let epoch = Epoch::from_client(row.try_get(0)?);
            let offset = to_u64(row.try_get(1)?);
            let latest = Publication::with_ts(
                channel.clone(),
                payload(row.try_get(3)?, row.try_get(4)?),
                StreamPosition { offset, epoch: epoch.clone() },
                to_u64(row.try_get(2)?),
            );
            let oldest = row.try_get::<_, Option<i64>>(5)?.map_or(offset + 1, to_u64);
            let mut stored_keys = Vec::with_capacity(keys.len());
            for key in keys.iter().rev() {
                stored_keys.push((key.try_get::<_, &str>(1)?.into(), to_u64(key.try_get(0)?)));
            }
            Ok(StoredStream { epoch, offset, oldest, latest: Some(Arc::new(latest)), keys: stored_keys })
        })()
        .map_err(|e| self.shared.failed("load", classify(&e)))?;
        Ok(Some(stored))
    }

    async fn append(&self, channel: &ChannelName, entries: &[StoredEntry]) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let (done, outcome) = oneshot::channel();
        let commit = Commit { channel: channel.clone(), entries: entries.to_vec(), done };
        if self.commits.send(commit).is_err() {
            return Err(Error::Broker("PostgreSQL store: its committers stopped".into()));
        }
        outcome
            .await
            .unwrap_or_else(|_| Err(Error::Broker("PostgreSQL store: its committers stopped".into())))
    }

    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<StoredHistory, Error> {
        let after = query.after.map_or(0, to_i64);
        let from = query.from_ms.map_or(0, to_i64);
        let to = query.to_ms.map_or(i64::MAX, to_i64);
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let sql = if query.is_forward() { READ_FORWARD } else { READ_BACKWARD };
        let (rows, oldest) = self
            .shared
            .run("read", async |client| {
                let (read, oldest) =
                    tokio::try_join!(client.prepare_cached(sql), client.prepare_cached(OLDEST))?;
                let name = channel.as_str();
                let (read_params, oldest_params): ([&(dyn ToSql + Sync); 5], [&(dyn ToSql + Sync); 1]) =
                    ([&name, &after, &from, &to, &limit], [&name]);
                tokio::try_join!(client.query(&read, &read_params), client.query_opt(&oldest, &oldest_params))
            })
            .await?;
        let decode = || -> Result<StoredHistory, tokio_postgres::Error> {
            let oldest = match &oldest {
                Some(row) => {
                    let last = to_u64(row.try_get(0)?);
                    row.try_get::<_, Option<i64>>(1)?.map_or(last + 1, to_u64)
                }
                None => 1,
            };
            let mut epoch: Option<Epoch> = None;
            let mut publications = Vec::with_capacity(rows.len());
            for row in &rows {
                let text: &str = row.try_get(4)?;
                // One shared epoch for the whole read, as a broker's own publications share it.
                let epoch = match &epoch {
                    Some(e) if e.as_str() == text => e.clone(),
                    _ => epoch.insert(Epoch::from_client(text)).clone(),
                };
                publications.push(publication(channel, row, epoch)?);
            }
            if !query.is_forward() {
                publications.reverse();
            }
            Ok(StoredHistory { publications, oldest })
        };
        decode().map_err(|e| self.shared.failed("read", classify(&e)))
    }

    async fn evict(&self, channel: &ChannelName, size: usize, min_ts: u64) -> Result<u64, Error> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let min_ts = to_i64(min_ts);
        let keep_keys = IDEMPOTENCY_WINDOW as i64 - 1;
        let row = self
            .shared
            .run("evict", async |client| {
                let statement = client.prepare_cached(EVICT).await?;
                client.query_opt(&statement, &[&channel.as_str(), &size, &min_ts, &keep_keys]).await
            })
            .await?;
        match row {
            Some(row) => {
                row.try_get::<_, i64>(0).map(to_u64).map_err(|e| self.shared.failed("evict", classify(&e)))
            }
            None => Ok(1),
        }
    }
}

/// The parameters of [`APPEND`] for one channel's batch.
struct AppendParams<'a> {
    channel: &'a str,
    epoch: &'a str,
    first: i64,
    last: i64,
    latest_ts: i64,
    latest_binary: bool,
    latest_data: &'a [u8],
    offsets: Vec<i64>,
    ts: Vec<i64>,
    binary: Vec<bool>,
    data: Vec<&'a [u8]>,
    key_offsets: Vec<i64>,
    keys: Vec<&'a str>,
    dead: &'a [String],
    dead_max: i32,
}

impl<'a> AppendParams<'a> {
    /// For a non-empty batch.
    fn new(channel: &'a ChannelName, entries: &'a [StoredEntry], dead: &'a [String]) -> Self {
        let n = entries.len();
        let mut p = Self {
            channel: channel.as_str(),
            epoch: "",
            first: 0,
            last: 0,
            latest_ts: 0,
            latest_binary: false,
            latest_data: &[],
            offsets: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            binary: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
            key_offsets: Vec::new(),
            keys: Vec::new(),
            dead,
            dead_max: DEAD_EPOCHS,
        };
        for entry in entries {
            let publication = &entry.publication;
            let offset = to_i64(publication.position.offset);
            let (binary, data) = match &publication.data {
                Payload::Json(bytes) => (false, &bytes[..]),
                Payload::Binary(bytes) => (true, &bytes[..]),
            };
            p.offsets.push(offset);
            p.ts.push(to_i64(publication.ts));
            p.binary.push(binary);
            p.data.push(data);
            if let Some(key) = &entry.key {
                p.key_offsets.push(offset);
                p.keys.push(key);
            }
            p.epoch = publication.position.epoch.as_str();
            p.last = offset;
            p.latest_ts = to_i64(publication.ts);
            p.latest_binary = binary;
            p.latest_data = data;
        }
        p.first = p.offsets.first().copied().unwrap_or(0);
        p
    }

    fn refs(&self) -> [&(dyn ToSql + Sync); 15] {
        [
            &self.channel,
            &self.epoch,
            &self.first,
            &self.last,
            &self.latest_ts,
            &self.latest_binary,
            &self.latest_data,
            &self.offsets,
            &self.ts,
            &self.binary,
            &self.data,
            &self.key_offsets,
            &self.keys,
            &self.dead,
            &self.dead_max,
        ]
    }
}

/// Whether [`APPEND`] stored its batch.
fn appended(row: &Row) -> bool {
    row.try_get::<_, i64>(0).is_ok_and(|n| n == 1)
}

fn not_following(channel: &ChannelName, first: u64) -> Error {
    Error::Broker(format!(
        "PostgreSQL store: {channel}: offset {first} does not follow the stored position (is another \
         livehub writing this channel to the same database?)"
    ))
}

fn publication(
    channel: &ChannelName,
    row: &Row,
    epoch: Epoch,
) -> Result<Arc<Publication>, tokio_postgres::Error> {
    let offset = to_u64(row.try_get(0)?);
    let ts = to_u64(row.try_get(1)?);
    let data = payload(row.try_get(2)?, row.try_get(3)?);
    Ok(Arc::new(Publication::with_ts(channel.clone(), data, StreamPosition { offset, epoch }, ts)))
}

/// Stored data was checked when it was published, so it is wrapped as it is.
fn payload(binary: bool, data: Vec<u8>) -> Payload {
    if binary {
        Payload::Binary(Bytes::from(data))
    } else {
        Payload::Json(Bytes::from(data))
    }
}

/// Offsets and timestamps are stored as `bigint`: a value past `i64::MAX` (which no clock or
/// counter reaches) saturates.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    v.max(0) as u64
}

/// The error of a statement, with its cause (tokio-postgres' own message is often only
/// "db error" or "error communicating with the server").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
    }
    match e.source() {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

fn classify(e: &tokio_postgres::Error) -> Failure {
    // Class 08 is a connection exception, 57 an operator intervention (shutdown, cancelled by
    // the statement timeout), 53 insufficient resources: the database, not the statement, failed.
    let unreachable = match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57") || code.starts_with("53")
        }
        None => true,
    };
    Failure { message: describe(e), unreachable }
}

fn describe_pool(e: &PoolError) -> Failure {
    let message = match e {
        PoolError::Backend(e) => return classify(e),
        PoolError::Timeout(_) => format!("{e} (the database did not accept a connection in time)"),
        _ => e.to_string(),
    };
    Failure { message, unreachable: true }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("status", &self.status()).finish_non_exhaustive()
    }
}

/// The write half of write-behind, for [`livehub_store::Durability`]: the batches go through
/// [`PgStore::append_many`], one transaction for all of them.
#[async_trait]
impl livehub_store::WriteBehind for PgStore {
    async fn append_behind(&self, batches: Vec<(ChannelName, Vec<StoredEntry>)>) -> Result<(), Error> {
        self.append_many(&batches).await
    }
}
