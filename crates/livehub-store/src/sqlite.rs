//! [`SqliteStore`]: history in one SQLite database (WAL mode) under the data directory.
//!
//! One writer thread owns the write connection. Every write (an append, an eviction) is a
//! message to it; it takes whatever messages are waiting, runs them all in **one** transaction
//! and commits once, so many publishers share one fsync (group commit), then answers each. Reads
//! run on a small pool of read connections beside it (WAL lets readers and the writer proceed
//! together), on Tokio's blocking threads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytes::Bytes;
use livehub_core::{
    ChannelName, Epoch, Error, HistoryQuery, HistoryStore, Payload, Publication, StoredEntry, StoredHistory,
    StoredStream, StreamPosition,
};
use parking_lot::{Mutex, RwLock};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use crate::dir::DataDir;
use crate::{schema, StoreError, WriteBehind};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "livehub.sqlite3";

/// Most messages the writer puts in one transaction: bounds how long one commit takes.
const MAX_GROUP: usize = 4096;

/// Most entries one eviction deletes, so that a large backlog of expired history is removed over
/// several sweeps instead of stalling the publishes that share its transaction.
const MAX_EVICT: i64 = 50_000;

/// Most idempotency keys kept per channel (the broker uses the newest
/// [`IDEMPOTENCY_WINDOW`](livehub_core::IDEMPOTENCY_WINDOW)).
const KEYS_KEPT: i64 = livehub_core::IDEMPOTENCY_WINDOW as i64;

/// Read connections kept open for reuse.
const READERS: usize = 4;

/// Pages the write-ahead log may hold before a commit folds it back into the database
/// (SQLite's default is 1,000, 4 MiB). A group commit of publishers on many channels dirties two
/// pages per channel (its tail in the entries and in the time index), so with the default the
/// writer checkpointed every two or three commits, copying and syncing those pages again each
/// time. Every commit is still synced to the log; only the copy waits longer. The cost: up to
/// about 40 MiB of log to replay when opening after a crash.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// The writer's page cache, in KiB (SQLite's default is 2 MiB). It holds the tail pages of the
/// channels being written (two per channel, with the B-trees' inner pages), so that a group
/// commit over a thousand channels does not read them back from the OS each time. Grows only as
/// pages are used.
const WRITER_CACHE_KIB: i64 = 32 * 1024;

/// Size the log file is cut back to after a checkpoint, once a large transaction (a big
/// write-behind flush) has grown it past this.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 << 20;

/// History in an embedded SQLite database; see the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: PathBuf,
    writer: RwLock<Option<mpsc::Sender<Op>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    dir: Mutex<Option<DataDir>>,
    unclean: bool,
    failed_writes: Arc<AtomicU64>,
}

/// One write for the writer thread.
enum Op {
    /// Stores a channel's entries; `done` (when given) hears whether they were committed.
    Append {
        channel: ChannelName,
        entries: Vec<StoredEntry>,
        done: Option<oneshot::Sender<Result<(), Error>>>,
    },
    /// Evicts history, answering the oldest offset still stored.
    Evict { channel: ChannelName, size: usize, min_ts: u64, done: oneshot::Sender<Result<u64, Error>> },
    /// Answers once every message before it is committed.
    Barrier { durable: bool, done: oneshot::Sender<Result<(), Error>> },
}

impl SqliteStore {
    /// Opens (creating when missing) the store in the data directory `dir`, locking it against
    /// other processes. After an unclean stop, every channel for which `durable` is false gets a
    /// new epoch: publications acknowledged before they were written may be missing, so clients
    /// positioned past what is stored must not recover as if nothing was lost. Their stored
    /// history stays readable under the new epoch, with offsets continuing from the last one
    /// stored.
    pub fn open(dir: &Path, durable: impl Fn(&str) -> bool) -> Result<Self, StoreError> {
        let data_dir = DataDir::open(dir)?;
        let db = data_dir.path().join(DB_FILE);
        let mut conn = Connection::open(&db)?;
        configure(&conn)?;
        schema::migrate(&mut conn)?;
        let unclean = data_dir.unclean();
        if unclean {
            let renewed = new_epochs(&mut conn, &durable)?;
            tracing::warn!(
                channels = renewed,
                "the store was not closed cleanly (crash or kill): write-behind channels get new epochs"
            );
        }
        let (tx, rx) = mpsc::channel();
        let failed_writes = Arc::new(AtomicU64::new(0));
        let failed = failed_writes.clone();
        let thread = std::thread::Builder::new()
            .name("livehub-store".into())
            .spawn(move || Writer::new(conn, failed).run(rx))
            .map_err(|e| StoreError::io(&db, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                writer: RwLock::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Vec::new()),
                dir: Mutex::new(Some(data_dir)),
                unclean,
                failed_writes,
            }),
        })
    }

    /// Whether the previous process left the store without closing it.
    pub fn was_unclean(&self) -> bool {
        self.inner.unclean
    }

    /// Writes that failed since open (each logged); a non-zero count makes the store degraded.
    pub fn failed_writes(&self) -> u64 {
        self.inner.failed_writes.load(Ordering::Relaxed)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.db
    }

    /// Finishes every write, stops the writer and marks the directory as cleanly closed. Writes
    /// after it fail.
    pub async fn close(&self) -> Result<(), StoreError> {
        let sender = self.inner.writer.write().take();
        drop(sender);
        let thread = self.inner.thread.lock().take();
        if let Some(thread) = thread {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| StoreError::Closed(e.to_string()))?
                .map_err(|_| StoreError::Closed("the writer thread panicked".into()))?;
        }
        self.inner.readers.lock().clear();
        let dir = self.inner.dir.lock().take();
        match dir {
            Some(dir) => dir.close(),
            None => Ok(()),
        }
    }

    fn send(&self, op: Op) -> Result<(), Error> {
        let writer = self.inner.writer.read();
        let Some(writer) = writer.as_ref() else {
            return Err(Error::Broker("the store is closed".into()));
        };
        writer.send(op).map_err(|_| Error::Broker("the store's writer stopped".into()))
    }

    /// Waits for every write sent before it; with `durable`, also for them to be on disk.
    pub async fn barrier(&self, durable: bool) -> Result<(), Error> {
        let (done, answer) = oneshot::channel();
        self.send(Op::Barrier { durable, done })?;
        answer.await.map_err(|_| Error::Broker("the store's writer stopped".into()))?
    }

    /// Up to `limit` stored channel names after `after`, sorted.
    pub async fn channel_names(&self, after: Option<String>, limit: usize) -> Result<Vec<String>, Error> {
        self.read_with(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT name FROM channels WHERE name > ?1 ORDER BY name LIMIT ?2")?;
            let names =
                stmt.query_map(params![after.unwrap_or_default(), int(limit as u64)], |row| row.get(0))?;
            names.collect()
        })
        .await
    }

    /// Runs `read` on a read connection on a blocking thread.
    async fn read_with<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.readers.lock().pop();
            let conn = match conn {
                Some(conn) => conn,
                None => open_reader(&inner.db).map_err(|e| Error::Broker(e.to_string()))?,
            };
            let result = read(&conn).map_err(|e| Error::Broker(format!("store read: {e}")));
            let mut readers = inner.readers.lock();
            if readers.len() < READERS {
                readers.push(conn);
            }
            result
        })
        .await
        .map_err(|e| Error::Broker(format!("store read: {e}")))?
    }
}

impl Drop for Inner {
    /// Dropped without [`SqliteStore::close`]: the writer finishes what it was sent and stops,
    /// but the marker stays, so the next open treats this as the crash it may have been.
    fn drop(&mut self) {
        self.writer.get_mut().take();
        if let Some(thread) = self.thread.get_mut().take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("db", &self.inner.db).finish()
    }
}

/// Settings of the writer's connection: WAL (readers beside the writer, one fsync per commit),
/// full sync by default (a commit survives a power cut), patience with a briefly locked file, and
/// the checkpoint interval and page cache that keep a group commit's cost to its log pages.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
    Ok(())
}

fn open_reader(db: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Gives every channel `durable` rejects a new epoch; returns how many.
fn new_epochs(conn: &mut Connection, durable: &impl Fn(&str) -> bool) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    let names: Vec<(i64, String)> = {
        let mut stmt = tx.prepare("SELECT id, name FROM channels")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut renewed = 0;
    for (id, name) in names {
        if !durable(&name) {
            tx.execute(
                "UPDATE channels SET epoch = ?1 WHERE id = ?2",
                params![Epoch::random().as_str(), id],
            )?;
            renewed += 1;
        }
    }
    tx.commit()?;
    Ok(renewed)
}

/// Converts an offset or timestamp for SQLite, which stores signed 64-bit integers.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn payload(binary: bool, data: Vec<u8>) -> Payload {
    if binary {
        Payload::Binary(Bytes::from(data))
    } else {
        // Stored only after `Payload::json` accepted it.
        Payload::Json(Bytes::from(data))
    }
}

fn split(payload: &Payload) -> (bool, &[u8]) {
    match payload {
        Payload::Json(b) => (false, b),
        Payload::Binary(b) => (true, b),
    }
}

/// What the writer knows of a channel's row.
struct Row {
    id: i64,
    epoch: String,
    last_seq: u64,
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    rows: HashMap<ChannelName, Row>,
    synchronous_full: bool,
    failed: Arc<AtomicU64>,
}

impl Writer {
    fn new(conn: Connection, failed: Arc<AtomicU64>) -> Self {
        Self { conn, rows: HashMap::new(), synchronous_full: true, failed }
    }

    fn run(mut self, rx: mpsc::Receiver<Op>) {
        while let Ok(first) = rx.recv() {
            let mut ops = vec![first];
            while ops.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.group(ops);
        }
        // Every sender is gone: fold the WAL back into the database before closing.
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %e, "store checkpoint at close failed");
        }
    }

    /// Runs `ops` in one transaction and answers each.
    fn group(&mut self, ops: Vec<Op>) {
        // Only a group with a durable writer waiting needs the fsync; write-behind batches
        // survive a process crash without it (the OS has the pages), just not a power cut.
        let durable = ops.iter().any(|op| match op {
            Op::Append { done, .. } => done.is_some(),
            Op::Evict { .. } => false,
            Op::Barrier { durable, .. } => *durable,
        });
        if durable != self.synchronous_full {
            let mode = if durable { "FULL" } else { "NORMAL" };
            if let Err(e) = self.conn.pragma_update(None, "synchronous", mode) {
                tracing::warn!(error = %e, "store: cannot set synchronous mode");
            } else {
                self.synchronous_full = durable;
            }
        }
        let mut answers = Vec::with_capacity(ops.len());
        let outcome = (|| -> rusqlite::Result<()> {
            let tx =
                rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)?;
            for op in ops {
                match op {
                    Op::Append { channel, entries, done } => {
                        let result = append(&tx, &mut self.rows, &channel, &entries)?;
                        answers.push(Answer::Append(channel, result, done));
                    }
                    Op::Evict { channel, size, min_ts, done } => {
                        let result = evict(&tx, &channel, size, min_ts)?;
                        answers.push(Answer::Evict(result, done));
                    }
                    Op::Barrier { done, .. } => answers.push(Answer::Barrier(done)),
                }
            }
            tx.commit()
        })();
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "store write failed");
            // What the failed transaction did to the cached rows is unknown: reload them.
            self.rows.clear();
        }
        for answer in answers {
            let failed = |e: &rusqlite::Error| Error::Broker(format!("store write: {e}"));
            match answer {
                Answer::Append(channel, result, done) => {
                    let result = match &outcome {
                        Ok(()) => result,
                        Err(e) => Err(failed(e)),
                    };
                    if let Err(e) = &result {
                        self.failed.fetch_add(1, Ordering::Relaxed);
                        if done.is_none() {
                            tracing::error!(channel = %channel, error = %e, "write-behind batch lost");
                        }
                    }
                    if let Some(done) = done {
                        let _ = done.send(result);
                    }
                }
                Answer::Evict(result, done) => {
                    let _ = done.send(outcome.as_ref().map_err(failed).and(result));
                }
                Answer::Barrier(done) => {
                    let _ = done.send(outcome.as_ref().map(|_| ()).map_err(failed));
                }
            }
        }
    }
}

enum Answer {
    Append(ChannelName, Result<(), Error>, Option<oneshot::Sender<Result<(), Error>>>),
    Evict(Result<u64, Error>, oneshot::Sender<Result<u64, Error>>),
    Barrier(oneshot::Sender<Result<(), Error>>),
}

/// Stores one batch of a channel. Refusals (a gap in offsets) are the inner `Err`; SQLite's own
/// failures the outer one, which fails the whole transaction.
fn append(
    tx: &Connection,
    rows: &mut HashMap<ChannelName, Row>,
    channel: &ChannelName,
    entries: &[StoredEntry],
) -> rusqlite::Result<Result<(), Error>> {
    let Some(first) = entries.first() else { return Ok(Ok(())) };
    let epoch = first.publication.position.epoch.as_str();
    if !rows.contains_key(channel) {
        let found = tx
            .query_row(
                "SELECT id, epoch, last_seq FROM channels WHERE name = ?1",
                [channel.as_str()],
                |row| Ok(Row { id: row.get(0)?, epoch: row.get(1)?, last_seq: row.get::<_, i64>(2)? as u64 }),
            )
            .optional()?;
        let row = match found {
            Some(row) => row,
            None => {
                tx.execute(
                    "INSERT INTO channels (name, epoch, last_seq) VALUES (?1, ?2, 0)",
                    params![channel.as_str(), epoch],
                )?;
                Row { id: tx.last_insert_rowid(), epoch: epoch.to_owned(), last_seq: 0 }
            }
        };
        rows.insert(channel.clone(), row);
    }
    let Some(row) = rows.get_mut(channel) else { return Ok(Ok(())) };
    if row.epoch != epoch {
        // A new epoch replaces the old one's history, latest value and keys.
        tx.execute("DELETE FROM entries WHERE channel = ?1", [row.id])?;
        tx.execute("DELETE FROM idempotency_keys WHERE channel = ?1", [row.id])?;
        tx.execute(
            "UPDATE channels SET epoch = ?1, last_seq = 0, latest_ts = NULL, latest_binary = NULL, \
             latest_data = NULL WHERE id = ?2",
            params![epoch, row.id],
        )?;
        row.epoch = epoch.to_owned();
        row.last_seq = 0;
    }
    let mut insert = tx
        .prepare_cached("INSERT INTO entries (channel, seq, ts, binary, data) VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut keyed = false;
    let mut last = None;
    for entry in entries {
        let p = &entry.publication;
        if p.position.epoch.as_str() != row.epoch || p.position.offset != row.last_seq + 1 {
            return Ok(Err(Error::Broker(format!(
                "store: {channel} offset {} does not follow {} in epoch {}",
                p.position.offset, row.last_seq, row.epoch
            ))));
        }
        let (binary, data) = split(&p.data);
        insert.execute(params![row.id, int(p.position.offset), int(p.ts), binary, data])?;
        if let Some(key) = &entry.key {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys (channel, seq, key) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![row.id, int(p.position.offset), key.as_ref()])?;
            keyed = true;
        }
        row.last_seq = p.position.offset;
        last = Some(p);
    }
    if let Some(p) = last {
        let (binary, data) = split(&p.data);
        tx.prepare_cached(
            "UPDATE channels SET last_seq = ?1, latest_ts = ?2, latest_binary = ?3, latest_data = ?4 WHERE id = ?5",
        )?
        .execute(params![int(p.position.offset), int(p.ts), binary, data, row.id])?;
    }
    if keyed {
        tx.prepare_cached(
            "DELETE FROM idempotency_keys WHERE channel = ?1 AND seq < (SELECT seq FROM idempotency_keys \
             WHERE channel = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
        )?
        .execute(params![row.id, KEYS_KEPT - 1])?;
    }
    Ok(Ok(()))
}

/// Evicts a channel's history beyond `size` entries or older than `min_ts`, at most
/// [`MAX_EVICT`] entries at a time; answers the oldest offset still stored.
fn evict(
    tx: &Connection,
    channel: &ChannelName,
    size: usize,
    min_ts: u64,
) -> rusqlite::Result<Result<u64, Error>> {
    let Some((id, last)) = tx
        .query_row("SELECT id, last_seq FROM channels WHERE name = ?1", [channel.as_str()], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })
        .optional()?
    else {
        return Ok(Ok(1));
    };
    let by_size = last.saturating_sub(int(size as u64)).saturating_add(1);
    let by_age: i64 = tx.query_row(
        "SELECT COALESCE(MIN(seq), ?3) FROM entries WHERE channel = ?1 AND ts >= ?2",
        params![id, int(min_ts), last + 1],
        |row| row.get(0),
    )?;
    let keep_from = by_size.max(by_age);
    let oldest: Option<i64> =
        tx.query_row("SELECT MIN(seq) FROM entries WHERE channel = ?1", [id], |row| row.get(0))?;
    let Some(oldest) = oldest else { return Ok(Ok(last as u64 + 1)) };
    if keep_from > oldest {
        let upto = keep_from.min(oldest.saturating_add(MAX_EVICT));
        tx.prepare_cached("DELETE FROM entries WHERE channel = ?1 AND seq < ?2")?
            .execute(params![id, upto])?;
        return Ok(Ok(upto as u64));
    }
    Ok(Ok(oldest as u64))
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn load(&self, channel: &ChannelName) -> Result<Option<StoredStream>, Error> {
        let name = channel.clone();
        self.read_with(move |conn| {
            let Some((id, epoch, last, latest)) = conn
                .query_row(
                    "SELECT id, epoch, last_seq, latest_ts, latest_binary, latest_data FROM channels WHERE name = ?1",
                    [name.as_str()],
                    |row| {
                        let latest = match row.get::<_, Option<i64>>(3)? {
                            Some(ts) => Some((ts as u64, row.get::<_, bool>(4)?, row.get::<_, Vec<u8>>(5)?)),
                            None => None,
                        };
                        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)? as u64, latest))
                    },
                )
                .optional()?
            else {
                return Ok(None);
            };
            let epoch = Epoch::from_client(&epoch);
            let oldest: Option<i64> =
                conn.query_row("SELECT MIN(seq) FROM entries WHERE channel = ?1", [id], |row| row.get(0))?;
            let mut stmt = conn.prepare_cached("SELECT key, seq FROM idempotency_keys WHERE channel = ?1 ORDER BY seq")?;
            let keys = stmt
                .query_map([id], |row| Ok((row.get::<_, String>(0)?.into_boxed_str(), row.get::<_, i64>(1)? as u64)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let latest = latest.map(|(ts, binary, data)| {
                let position = StreamPosition { offset: last, epoch: epoch.clone() };
                Arc::new(Publication::with_ts(name.clone(), payload(binary, data), position, ts))
            });
            Ok(Some(StoredStream { epoch, offset: last, oldest: oldest.map_or(last + 1, |o| o as u64), latest, keys }))
        })
        .await
    }

    async fn append(&self, channel: &ChannelName, entries: &[StoredEntry]) -> Result<(), Error> {
        let (done, answer) = oneshot::channel();
        self.send(Op::Append { channel: channel.clone(), entries: entries.to_vec(), done: Some(done) })?;
        answer.await.map_err(|_| Error::Broker("the store's writer stopped".into()))?
    }

    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<StoredHistory, Error> {
        let name = channel.clone();
        self.read_with(move |conn| {
            let Some((id, epoch, last)) = conn
                .query_row(
                    "SELECT id, epoch, last_seq FROM channels WHERE name = ?1",
                    [name.as_str()],
                    |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)),
                )
                .optional()?
            else {
                return Ok(StoredHistory::default());
            };
            let epoch = Epoch::from_client(&epoch);
            let oldest: Option<i64> =
                conn.query_row("SELECT MIN(seq) FROM entries WHERE channel = ?1", [id], |row| row.get(0))?;
            let after = int(query.after.unwrap_or(0));
            let from = int(query.from_ms.unwrap_or(0));
            let to = int(query.to_ms.unwrap_or(u64::MAX));
            let limit = int(query.limit as u64);
            let sql = if query.is_forward() {
                "SELECT seq, ts, binary, data FROM entries WHERE channel = ?1 AND seq > ?2 AND ts >= ?3 \
                 AND ts < ?4 ORDER BY seq ASC LIMIT ?5"
            } else {
                "SELECT seq, ts, binary, data FROM entries WHERE channel = ?1 AND seq > ?2 AND ts >= ?3 \
                 AND ts < ?4 ORDER BY seq DESC LIMIT ?5"
            };
            let mut stmt = conn.prepare_cached(sql)?;
            let mut publications = stmt
                .query_map(params![id, after, from, to, limit], |row| {
                    let position =
                        StreamPosition { offset: row.get::<_, i64>(0)? as u64, epoch: epoch.clone() };
                    let data = payload(row.get(2)?, row.get(3)?);
                    Ok(Arc::new(Publication::with_ts(
                        name.clone(),
                        data,
                        position,
                        row.get::<_, i64>(1)? as u64,
                    )))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if !query.is_forward() {
                publications.reverse();
            }
            Ok(StoredHistory { publications, oldest: oldest.map_or(last as u64 + 1, |o| o as u64) })
        })
        .await
    }

    async fn evict(&self, channel: &ChannelName, size: usize, min_ts: u64) -> Result<u64, Error> {
        let (done, answer) = oneshot::channel();
        self.send(Op::Evict { channel: channel.clone(), size, min_ts, done })?;
        answer.await.map_err(|_| Error::Broker("the store's writer stopped".into()))?
    }
}

#[async_trait]
impl WriteBehind for SqliteStore {
    async fn append_behind(&self, batches: Vec<(ChannelName, Vec<StoredEntry>)>) -> Result<(), Error> {
        for (channel, entries) in batches {
            self.send(Op::Append { channel, entries, done: None })?;
        }
        // Not durable: the group commits without an fsync, which a process crash survives.
        self.barrier(false).await
    }
}
