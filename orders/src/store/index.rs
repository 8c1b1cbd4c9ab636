//! The history index on disk: `purchases.json.index`, a SQLite database beside the
//! file, so that no request reads the file and an instance's memory and start-up do not
//! grow with the shop. Blocking: call from a blocking thread.
//!
//! The index is derived from `purchases.json` and written after it: the appender
//! appends and fsyncs a batch of lines, then applies them here in one transaction with
//! how far into the file the index now reaches ([`Covered`]). At start only the lines
//! past that point are read; an index that does not match the file (a file replaced,
//! cut or rewritten) is built again from the whole file. The index is never fsynced on
//! its own (WAL, `synchronous = NORMAL`): after a power cut it may lack the last
//! batches, which the file still holds, and the next start reads them again.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use bus_schema::orders::{Article, Cursor, MAX_PAGE_BYTES};
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use uuid::Uuid;

use super::{
    pages::{Page, Pages},
    sibling,
};
use crate::domain::purchase::Line;

/// Read connections: enough for both cores' blocking reads and some waiting.
pub const READERS: usize = 4;
/// Page cache of each connection, in KiB (SQLite's negative `cache_size`): SQLite's
/// default. Not more: a transaction that follows another connection's write clears the
/// cache, and clearing walks the cache's whole table; with 64 MiB the writer's commits
/// on a full index spent a sixth of orders' time there (`perf`, `make bench-scale`), and
/// with 2 MiB a full index takes buys at 94% of an empty one's rate (`write_rate`).
const CACHE_KIB: i64 = 2 * 1024;
/// Bytes of a database page. A batch lands on as many pages as it has buyers, and each
/// page it changes is written whole to the WAL: small pages write less per purchase.
const PAGE_SIZE: i64 = 1024;
/// Pages in the WAL before they are copied into the database: a page changed by many
/// batches in between is copied once.
const CHECKPOINT_PAGES: i64 = 16 * 1024;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS purchases (
        user TEXT NOT NULL,
        pos INTEGER NOT NULL,
        id BLOB NOT NULL,
        article_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        price INTEGER NOT NULL,
        purchased_at TEXT NOT NULL,
        key TEXT,
        PRIMARY KEY (user, pos)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX IF NOT EXISTS purchases_by_id ON purchases (id);
    CREATE INDEX IF NOT EXISTS purchases_by_key ON purchases (user, key) WHERE key IS NOT NULL;
    CREATE TABLE IF NOT EXISTS users (
        user TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        total INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS spans (
        first INTEGER PRIMARY KEY,
        last INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS covered (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        len INTEGER NOT NULL,
        tail_start INTEGER NOT NULL,
        tail_seq INTEGER,
        tail_id BLOB,
        count INTEGER NOT NULL
    );";

/// Where the index database of `purchases` lives.
pub fn index_path(purchases: &Path) -> PathBuf {
    sibling(purchases, ".index")
}

/// How much of `purchases.json` the index holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Covered {
    /// Bytes of the file, up to the end of a line.
    pub len: u64,
    /// Where the last line covered starts (when `tail` is some).
    pub tail_start: u64,
    /// That line's stream sequence and event id.
    pub tail: Option<(u64, Uuid)>,
}

/// The stream sequences the file holds, as runs of consecutive numbers (first -> last),
/// and its last line: what the appender needs to find the events the file lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    /// The last line in file order: its stream sequence and event id. Lines are appended
    /// in stream order, so this is how far the file has followed the stream.
    pub tail: Option<(u64, Uuid)>,
    pub spans: Spans,
}

impl Positions {
    /// The first sequence from `first` up to the tail's that no line has: a line lost
    /// after it was written (taken out as damaged, removed by hand), if any.
    pub fn first_gap(&self, first: u64) -> Option<u64> {
        let (tail, _) = self.tail?;
        let mut expected = first;
        for (&start, &end) in &self.spans.0 {
            if end < expected {
                continue;
            }
            if expected > tail {
                break;
            }
            if start > expected {
                return Some(expected);
            }
            expected = end + 1;
        }
        (expected <= tail).then_some(expected)
    }
}

/// Runs of consecutive sequences, by their first: one run for a file that followed the
/// stream without a hole, whatever its length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans(BTreeMap<u64, u64>);

impl Spans {
    /// Adds `seq`; returns the runs removed (by first) and the run that now holds it.
    fn insert(&mut self, seq: u64) -> (Vec<u64>, (u64, u64)) {
        let before = self.0.range(..=seq).next_back().map(|(&f, &l)| (f, l));
        if let Some((first, last)) = before
            && last >= seq
        {
            return (Vec::new(), (first, last));
        }
        let mut removed = Vec::new();
        let (mut first, mut last) = (seq, seq);
        if let Some((f, l)) = before
            && l + 1 == seq
        {
            first = f;
            removed.push(f);
        }
        if let Some(l) = seq
            .checked_add(1)
            .and_then(|next| self.0.get(&next).copied())
        {
            last = l;
            removed.push(seq + 1);
        }
        for f in &removed {
            self.0.remove(f);
        }
        self.0.insert(first, last);
        (removed, (first, last))
    }
}

/// One recorded purchase, as the index gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: Uuid,
    pub article: Article,
    pub purchased_at: String,
}

/// The index: one connection writes (the appender's, and start-up's), a few read.
#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Purchases in the index.
    count: AtomicU64,
    /// Pages lately read.
    pages: Pages,
}

#[derive(Debug)]
struct Writer {
    conn: Connection,
    covered: Covered,
    spans: Spans,
}

impl Index {
    /// Opens (or creates) the index at `path`.
    pub fn open(path: &Path) -> Result<Self, String> {
        let fail = |err: String| format!("cannot open the index {}: {err}", path.display());
        let conn = connect(path).map_err(fail)?;
        conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)
            .map_err(|err| fail(err.to_string()))?;
        conn.execute_batch(SCHEMA)
            .map_err(|err| fail(err.to_string()))?;
        let (covered, count, spans) = load(&conn).map_err(|err| fail(err.to_string()))?;
        let readers = (0..READERS)
            .map(|_| connect(path).map(Mutex::new))
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(Writer {
                conn,
                covered,
                spans,
            }),
            readers,
            next_reader: AtomicUsize::new(0),
            count: AtomicU64::new(count),
            pages: Pages::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How much of the file the index holds.
    pub fn covered(&self) -> Covered {
        self.writer().covered
    }

    /// The file's positions against the stream, as the index knows them.
    pub fn positions(&self) -> Positions {
        let writer = self.writer();
        Positions {
            tail: writer.covered.tail,
            spans: writer.spans.clone(),
        }
    }

    /// Purchases in the index.
    pub fn len(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the index (to build it again from a file, or for a file started again).
    pub fn clear(&self) -> Result<(), String> {
        let mut writer = self.writer();
        writer
            .conn
            .execute_batch(
                "BEGIN; DELETE FROM purchases; DELETE FROM users; DELETE FROM spans;
                 DELETE FROM covered; COMMIT;",
            )
            .map_err(|err| format!("cannot empty the index: {err}"))?;
        writer.covered = Covered::default();
        writer.spans = Spans::default();
        self.count.store(0, Ordering::Relaxed);
        self.pages.clear();
        Ok(())
    }

    /// Which of `ids` the index holds.
    pub fn known(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, String> {
        let writer = self.writer();
        let mut statement = writer
            .conn
            .prepare_cached("SELECT 1 FROM purchases WHERE id = ?1")
            .map_err(|err| err.to_string())?;
        let mut known = HashSet::new();
        for id in ids {
            if statement
                .exists(params![id.as_bytes()])
                .map_err(|err| err.to_string())?
            {
                known.insert(*id);
            }
        }
        Ok(known)
    }

    /// Adds `lines` (in file order, none in the index yet) and records that the index
    /// now covers the file up to `len`, its last line starting at `tail_start`: one
    /// transaction.
    pub fn apply(&self, lines: &[(Uuid, Line)], len: u64, tail_start: u64) -> Result<(), String> {
        let mut writer = self.writer();
        let Writer {
            conn,
            covered,
            spans,
        } = &mut *writer;
        let mut spans_after = spans.clone();
        let tx = conn.transaction().map_err(|err| err.to_string())?;
        let added = insert(&tx, lines, &mut spans_after).map_err(|err| err.to_string())?;
        let after = Covered {
            len,
            tail_start,
            tail: lines
                .last()
                .map(|(id, line)| (line.seq, *id))
                .or(covered.tail),
        };
        let count = self.len() + added;
        write_covered(&tx, &after, count).map_err(|err| err.to_string())?;
        tx.commit().map_err(|err| err.to_string())?;
        self.pages.forget(
            &lines
                .iter()
                .map(|(_, line)| line.event.username.as_str())
                .collect(),
        );
        *covered = after;
        *spans = spans_after;
        self.count.store(count, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the event `id` is in the index.
    pub fn contains(&self, id: &Uuid) -> Result<bool, rusqlite::Error> {
        self.reader()
            .prepare_cached("SELECT 1 FROM purchases WHERE id = ?1")?
            .exists(params![id.as_bytes()])
    }

    /// The purchase `username` made with idempotency key `key`, if any.
    pub fn by_key(&self, username: &str, key: &str) -> Result<Option<Item>, rusqlite::Error> {
        self.reader()
            .prepare_cached(
                "SELECT id, article_id, name, price, purchased_at FROM purchases
                 WHERE user = ?1 AND key = ?2 ORDER BY pos LIMIT 1",
            )?
            .query_row(params![username, key], item)
            .optional()
    }

    /// Up to `limit` purchases of `username` from `cursor` on, fewer when they would not
    /// fit [`MAX_PAGE_BYTES`] (one at least), with the cursor of the next page and the
    /// count and total of all of them: the reply of `orders.purchases`, encoded (the JSON
    /// of a [`PurchasesReply`](bus_schema::orders::PurchasesReply)) with its tag. Written straight from
    /// the rows, with no value made per purchase: for a page of a thousand, making and
    /// encoding those values cost orders more than reading the rows did. The page is kept
    /// until its user buys again ([`Self::kept_page`]).
    pub fn page(
        &self,
        username: &str,
        cursor: Cursor,
        limit: usize,
    ) -> Result<Page, rusqlite::Error> {
        let epoch = self.pages.epoch();
        let conn = self.reader();
        // One read transaction: the count and the rows of the same moment.
        // Prepared once per connection, like the reads (parsing them again each time
        // showed in a profile of first pages).
        conn.prepare_cached("BEGIN")?.execute([])?;
        let page = read_page(&conn, username, cursor, limit);
        conn.prepare_cached("COMMIT")?.execute([])?;
        let page = Page::of(Bytes::from(page?));
        self.pages.keep(epoch, username, cursor, limit, &page);
        Ok(page)
    }

    /// [`Self::page`] as it was last read, if it is kept and its user has not bought
    /// since: without a read of the index (not blocking).
    pub fn kept_page(&self, username: &str, cursor: Cursor, limit: usize) -> Option<Page> {
        self.pages.get(username, cursor, limit)
    }

    /// How many pages were found kept and how many read, in the Prometheus text format.
    pub fn pages_metrics(&self) -> String {
        self.pages.metrics()
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A free read connection, or the next one in turn when all are taken.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        for reader in &self.readers {
            if let Ok(conn) = reader.try_lock() {
                return conn;
            }
        }
        let turn = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[turn].lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn connect(path: &Path) -> Result<Connection, String> {
    let private = |err: std::io::Error| format!("cannot make it private: {err}");
    service_kit::private::parent_dir(path).map_err(private)?;
    service_kit::private::options(std::fs::OpenOptions::new().create(true).append(true))
        .open(path)
        .map_err(private)?;
    for suffix in ["", "-wal", "-shm"] {
        service_kit::private::file(&sibling(path, suffix)).map_err(private)?;
    }
    let conn = Connection::open(path).map_err(|err| err.to_string())?;
    let setup = || -> Result<(), rusqlite::Error> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        Ok(())
    };
    setup().map_err(|err| err.to_string())?;
    Ok(conn)
}

fn load(conn: &Connection) -> Result<(Covered, u64, Spans), rusqlite::Error> {
    let row = conn
        .query_row(
            "SELECT len, tail_start, tail_seq, tail_id, count FROM covered WHERE one = 1",
            [],
            |row| {
                let tail = match (
                    row.get::<_, Option<i64>>(2)?,
                    row.get::<_, Option<Vec<u8>>>(3)?,
                ) {
                    (Some(seq), Some(id)) => Uuid::from_slice(&id).ok().map(|id| (seq as u64, id)),
                    _ => None,
                };
                Ok((
                    Covered {
                        len: row.get::<_, i64>(0)? as u64,
                        tail_start: row.get::<_, i64>(1)? as u64,
                        tail,
                    },
                    row.get::<_, i64>(4)? as u64,
                ))
            },
        )
        .optional()?;
    let (covered, count) = row.unwrap_or_default();
    let mut spans = Spans::default();
    let mut statement = conn.prepare("SELECT first, last FROM spans")?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
    })?;
    for row in rows {
        let (first, last) = row?;
        spans.0.insert(first, last);
    }
    Ok((covered, count, spans))
}

/// Inserts `lines`, each user's position after the last, and their runs of sequences;
/// how many were new. Users and runs are written once per batch, not once per line.
fn insert(
    tx: &Transaction<'_>,
    lines: &[(Uuid, Line)],
    spans: &mut Spans,
) -> Result<u64, rusqlite::Error> {
    let mut purchase = tx.prepare_cached(
        "INSERT OR IGNORE INTO purchases (user, pos, id, article_id, name, price, purchased_at, key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut count_of = tx.prepare_cached("SELECT count FROM users WHERE user = ?1")?;
    // user -> (count before, count after, total added)
    let mut users: HashMap<&str, (u64, u64, u64)> = HashMap::new();
    let (mut removed, mut touched) = (HashSet::new(), HashSet::new());
    let mut added = 0;
    for (id, line) in lines {
        let event = &line.event;
        let user = match users.get_mut(event.username.as_str()) {
            Some(user) => user,
            None => {
                let count = count_of
                    .query_row(params![event.username], |row| row.get::<_, i64>(0))
                    .optional()?
                    .unwrap_or(0) as u64;
                users
                    .entry(event.username.as_str())
                    .or_insert((count, count, 0))
            }
        };
        let new = purchase.execute(params![
            event.username,
            user.1 as i64,
            id.as_bytes(),
            event.article.id,
            event.article.name,
            event.article.price,
            event.purchased_at,
            event.idempotency_key,
        ])? == 1;
        if new {
            user.1 += 1;
            user.2 += u64::from(event.article.price);
            added += 1;
        }
        let (gone, (first, _)) = spans.insert(line.seq);
        removed.extend(gone);
        touched.insert(first);
    }
    let mut put_user = tx.prepare_cached(
        "INSERT INTO users (user, count, total) VALUES (?1, ?2, ?3)
         ON CONFLICT (user) DO UPDATE SET count = excluded.count, total = total + excluded.total",
    )?;
    for (user, (before, after, total)) in users {
        if after != before {
            put_user.execute(params![user, after as i64, total as i64])?;
        }
    }
    let mut remove_span = tx.prepare_cached("DELETE FROM spans WHERE first = ?1")?;
    for first in removed.iter().filter(|first| !spans.0.contains_key(first)) {
        remove_span.execute(params![*first as i64])?;
    }
    let mut put_span =
        tx.prepare_cached("INSERT OR REPLACE INTO spans (first, last) VALUES (?1, ?2)")?;
    for first in touched {
        if let Some(&last) = spans.0.get(&first) {
            put_span.execute(params![first as i64, last as i64])?;
        }
    }
    Ok(added)
}

fn write_covered(
    tx: &Transaction<'_>,
    covered: &Covered,
    count: u64,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO covered (one, len, tail_start, tail_seq, tail_id, count)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        covered.len as i64,
        covered.tail_start as i64,
        covered.tail.map(|(seq, _)| seq as i64),
        covered.tail.map(|(_, id)| id.as_bytes().to_vec()),
        count as i64,
    ])?;
    Ok(())
}

fn item(row: &rusqlite::Row<'_>) -> Result<Item, rusqlite::Error> {
    let id: Vec<u8> = row.get(0)?;
    Ok(Item {
        id: Uuid::from_slice(&id).unwrap_or_default(),
        article: Article {
            id: row.get(1)?,
            name: row.get(2)?,
            price: row.get(3)?,
        },
        purchased_at: row.get(4)?,
    })
}

fn read_page(
    conn: &Connection,
    username: &str,
    cursor: Cursor,
    limit: usize,
) -> Result<Vec<u8>, rusqlite::Error> {
    let (count, total) = conn
        .prepare_cached("SELECT count, total FROM users WHERE user = ?1")?
        .query_row(params![username], |row| {
            Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
        })
        .optional()?
        .unwrap_or((0, 0));
    let (sql, from) = match cursor {
        Cursor::From(start) => (
            "SELECT id, article_id, name, price, purchased_at FROM purchases
             WHERE user = ?1 AND pos >= ?2 ORDER BY pos LIMIT ?3",
            start.min(count),
        ),
        Cursor::Before(end) => (
            "SELECT id, article_id, name, price, purchased_at FROM purchases
             WHERE user = ?1 AND pos < ?2 ORDER BY pos DESC LIMIT ?3",
            end.min(count),
        ),
    };
    let mut user = Vec::with_capacity(username.len() + 2);
    json_str(&mut user, username.as_bytes());
    // What the purchases leave room for: the user, and the other members (names,
    // brackets, three numbers of at most 20 digits) in under 128 bytes.
    let room = MAX_PAGE_BYTES.saturating_sub(128 + user.len());
    // Room for the rows the page can hold, at a usual name's length.
    let expected = limit.min(usize::try_from(count).unwrap_or(usize::MAX));
    let (mut names, mut items) = (
        Vec::with_capacity((16 * expected).min(room)),
        Vec::with_capacity((160 * expected).min(room)),
    );
    let mut taken = 0u64;
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params![username, from as i64, limit as i64])?;
    while let Some(row) = rows.next()? {
        let (names_end, items_end) = (names.len(), items.len());
        if taken > 0 {
            names.push(b',');
            items.push(b',');
        }
        let name = text(row, 2)?;
        json_str(&mut names, name);
        items.extend_from_slice(b"{\"id\":\"");
        let id =
            Uuid::from_slice(row.get_ref(0)?.as_blob().unwrap_or_default()).unwrap_or_default();
        items.extend_from_slice(
            id.hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        items.extend_from_slice(b"\",\"article\":{\"id\":");
        number(&mut items, row.get::<_, i64>(1)?);
        items.extend_from_slice(b",\"name\":");
        json_str(&mut items, name);
        items.extend_from_slice(b",\"price\":");
        number(&mut items, row.get::<_, i64>(3)?);
        items.extend_from_slice(b"},\"purchased_at\":");
        json_str(&mut items, text(row, 4)?);
        items.push(b'}');
        if taken > 0 && names.len() + items.len() > room {
            names.truncate(names_end);
            items.truncate(items_end);
            break;
        }
        taken += 1;
    }
    let next = match cursor {
        Cursor::From(_) => (from + taken < count).then_some(Cursor::From(from + taken)),
        Cursor::Before(_) => (from > taken).then(|| Cursor::Before(from - taken)),
    };
    // The members in the order serde writes a `PurchasesReply`.
    let mut reply = Vec::with_capacity(names.len() + items.len() + user.len() + 128);
    reply.extend_from_slice(b"{\"user\":");
    reply.extend_from_slice(&user);
    reply.extend_from_slice(b",\"purchases\":[");
    reply.extend_from_slice(&names);
    reply.extend_from_slice(b"],\"items\":[");
    reply.extend_from_slice(&items);
    reply.extend_from_slice(b"],\"count\":");
    number(&mut reply, count);
    reply.extend_from_slice(b",\"total\":");
    number(&mut reply, total);
    if let Some(next) = next {
        reply.extend_from_slice(b",\"next\":\"");
        reply.extend_from_slice(next.to_string().as_bytes());
        reply.push(b'"');
    }
    reply.push(b'}');
    Ok(reply)
}

/// Column `i` of `row`, a text: its bytes, UTF-8 as the index was written from Rust
/// strings (not checked again: that was a tenth of a long page's time).
fn text<'row>(row: &'row rusqlite::Row<'_>, i: usize) -> Result<&'row [u8], rusqlite::Error> {
    row.get_ref(i)?.as_bytes().map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(err))
    })
}

/// `n` in decimal.
fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `s` (UTF-8) as a JSON string, escaped as serde_json escapes it.
fn json_str(out: &mut Vec<u8>, s: &[u8]) {
    // No early exit: the loop is vectorised.
    let plain = s.iter().fold(true, |plain, &b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, &String::from_utf8_lossy(s))
            .expect("BUG: a string always encodes");
    }
}

#[cfg(test)]
mod tests {
    use bus_schema::orders::{PurchasedEvent, PurchasesReply};

    use super::*;

    fn lines_of(user: &str, names: &[String], first_seq: u64) -> Vec<(Uuid, Line)> {
        names
            .iter()
            .enumerate()
            .map(|(n, name)| {
                let id = Uuid::now_v7();
                let event = PurchasedEvent {
                    id: id.to_string(),
                    username: user.into(),
                    article: Article {
                        id: 1,
                        name: name.clone(),
                        price: 100 + n as u32,
                    },
                    purchased_at: "2026-12-06T12:00:00Z".into(),
                    idempotency_key: (n == 2).then(|| "key-2".to_owned()),
                };
                (id, Line::new(event, first_seq + n as u64))
            })
            .collect()
    }

    /// A page as a client reads it.
    fn page(index: &Index, user: &str, cursor: Cursor, limit: usize) -> PurchasesReply {
        let json = index.page(user, cursor, limit).expect("page").reply;
        serde_json::from_slice(&json).expect("a reply of orders.purchases")
    }

    fn next(page: &PurchasesReply) -> Option<Cursor> {
        page.next
            .as_deref()
            .map(|c| Cursor::parse(c).expect("a cursor"))
    }

    #[test]
    fn pages_walk_a_history_both_ways_with_its_count_and_total() {
        let dir = tempfile::tempdir().expect("dir");
        let index = Index::open(&dir.path().join("index")).expect("open");
        let all: Vec<String> = (0..7).map(|n| format!("a{n}")).collect();
        let lines = lines_of("ada", &all, 1);
        index.apply(&lines, 700, 600).expect("apply");
        let mut seen = Vec::new();
        let mut cursor = Cursor::From(0);
        loop {
            let page = page(&index, "ada", cursor, 3);
            assert_eq!((page.count, page.total), (7, 721));
            seen.extend(page.purchases.clone());
            match next(&page) {
                Some(next) => cursor = next,
                None => break,
            }
        }
        assert_eq!(seen, all);
        let first = page(&index, "ada", Cursor::Before(u64::MAX), 3);
        assert_eq!(first.purchases, ["a6", "a5", "a4"]);
        let second = page(&index, "ada", next(&first).expect("more"), 3);
        assert_eq!(second.purchases, ["a3", "a2", "a1"]);
        let last = page(&index, "ada", next(&second).expect("more"), 3);
        assert_eq!((last.purchases, last.next), (vec!["a0".to_owned()], None));
        let nobody = page(&index, "bob", Cursor::From(0), 3);
        assert_eq!(
            (nobody.items.len(), nobody.count, nobody.next),
            (0, 0, None)
        );
        // A cursor past the end is an empty last page, not an error.
        assert!(page(&index, "ada", Cursor::From(99), 3).items.is_empty());
        assert_eq!(
            index.by_key("ada", "key-2").expect("read").map(|i| i.id),
            Some(lines[2].0)
        );
        assert_eq!(index.by_key("bob", "key-2").expect("read"), None);
        assert!(index.contains(&lines[6].0).expect("read"));
    }

    #[test]
    fn a_page_is_written_as_serde_writes_the_reply_whatever_the_names() {
        let dir = tempfile::tempdir().expect("dir");
        let index = Index::open(&dir.path().join("index")).expect("open");
        let names: Vec<String> = [
            "Plain",
            "a \"quoted\" \\ name",
            "tab\there\u{1}",
            "é ünicode ✓ </b>",
        ]
        .map(String::from)
        .to_vec();
        index
            .apply(&lines_of("ada", &names, 1), 400, 300)
            .expect("apply");
        for (cursor, limit) in [
            (Cursor::From(0), 1000),
            (Cursor::From(1), 2),
            (Cursor::Before(3), 1),
        ] {
            let json = index.page("ada", cursor, limit).expect("page").reply;
            let reply: PurchasesReply = serde_json::from_slice(&json).expect("a reply");
            assert_eq!(
                String::from_utf8(json.to_vec()).expect("utf-8"),
                serde_json::to_string(&reply).expect("encodes"),
            );
        }
        let whole = page(&index, "ada", Cursor::From(0), 1000);
        assert_eq!(whole.purchases, names);
        assert_eq!(
            whole
                .items
                .iter()
                .map(|i| &i.article.name)
                .collect::<Vec<_>>(),
            names.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_index_is_found_again_as_it_was_left() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("index");
        let first = lines_of("ada", &["a".into(), "b".into()], 1);
        let later = lines_of("bob", &["c".into()], 4);
        {
            let index = Index::open(&path).expect("open");
            index.apply(&first, 200, 100).expect("apply");
            // A line already in the index (a replay) is not counted twice.
            index.apply(&first[1..], 200, 100).expect("apply");
            index.apply(&later, 300, 200).expect("apply");
        }
        let index = Index::open(&path).expect("reopen");
        assert_eq!(index.len(), 3);
        assert_eq!(
            index.covered(),
            Covered {
                len: 300,
                tail_start: 200,
                tail: Some((4, later[0].0)),
            }
        );
        let positions = index.positions();
        assert_eq!(positions.first_gap(1), Some(3));
        assert_eq!(
            index
                .known(&[first[0].0, Uuid::now_v7()])
                .expect("known")
                .len(),
            1
        );
        index.clear().expect("clear");
        assert_eq!((index.len(), index.covered()), (0, Covered::default()));
        assert_eq!(page(&index, "ada", Cursor::From(0), 10).count, 0);
    }

    #[test]
    fn a_page_of_long_names_is_cut_to_fit_one_message() {
        let dir = tempfile::tempdir().expect("dir");
        let index = Index::open(&dir.path().join("index")).expect("open");
        let long: Vec<String> = (0..400)
            .map(|n| format!("{n:04}{}", "x".repeat(2000)))
            .collect();
        index
            .apply(&lines_of("ada", &long, 1), 1, 0)
            .expect("apply");
        let json = index
            .page("ada", Cursor::From(0), 1000)
            .expect("page")
            .reply;
        assert!(json.len() <= MAX_PAGE_BYTES, "{}", json.len());
        let page: PurchasesReply = serde_json::from_slice(&json).expect("a reply");
        assert!(page.items.len() < 400 && !page.items.is_empty());
        assert_eq!(page.purchases, long[..page.items.len()]);
        assert_eq!(next(&page), Some(Cursor::From(page.items.len() as u64)));
    }

    #[test]
    fn runs_of_sequences_merge_and_gaps_are_found() {
        let mut spans = Spans::default();
        for seq in [1, 2, 3, 7, 5] {
            spans.insert(seq);
        }
        assert_eq!(spans.0, BTreeMap::from([(1, 3), (5, 5), (7, 7)]));
        assert_eq!(spans.insert(6), (vec![5, 7], (5, 7)));
        assert_eq!(spans.insert(6), (vec![], (5, 7)));
        let id = Uuid::now_v7();
        let at = |seqs: &[u64], tail: u64| {
            let mut spans = Spans::default();
            for &seq in seqs {
                spans.insert(seq);
            }
            Positions {
                tail: Some((tail, id)),
                spans,
            }
        };
        assert_eq!(at(&[1, 2, 3], 3).first_gap(1), None);
        assert_eq!(at(&[1, 3], 3).first_gap(1), Some(2));
        assert_eq!(at(&[2, 3], 3).first_gap(1), Some(1));
        // Sequences the stream no longer holds (below its first) are not gaps.
        assert_eq!(at(&[2, 3], 3).first_gap(2), None);
        assert_eq!(at(&[1, 2, 5, 6], 6).first_gap(2), Some(3));
        // A line filled in later sits after the tail in the file, in the runs all the same.
        assert_eq!(at(&[1, 2, 3, 4], 3).first_gap(1), None);
        assert_eq!(Positions::default().first_gap(1), None);
    }
}

#[cfg(test)]
mod write_rate {
    use bus_schema::orders::PurchasedEvent;

    use super::*;

    fn batch(seq: &mut u64, size: usize, user: impl Fn(u64) -> String) -> Vec<(Uuid, Line)> {
        (0..size)
            .map(|_| {
                *seq += 1;
                let id = Uuid::now_v7();
                let event = PurchasedEvent {
                    id: id.to_string(),
                    username: user(*seq),
                    article: Article {
                        id: 1,
                        name: "Article 1".into(),
                        price: 1000,
                    },
                    purchased_at: "2026-12-07T12:00:00Z".into(),
                    idempotency_key: None,
                };
                (id, Line::new(event, *seq))
            })
            .collect()
    }

    /// What the appender does per batch: which ids are known, then the batch.
    fn write(index: &Index, batch: &[(Uuid, Line)], seq: u64) {
        let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        assert!(index.known(&ids).expect("known").is_empty());
        index
            .apply(batch, seq * 200, seq * 200 - 200)
            .expect("apply");
    }

    /// Batches of 8 by one buyer, as buys come: a second's worth, timed.
    fn buys(index: &Index, seq: &mut u64) -> f64 {
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            let b = batch(seq, 8, |_| "buyer".to_owned());
            write(index, &b, *seq);
        }
        8000.0 / started.elapsed().as_secs_f64()
    }

    /// `cargo test --release -p orders --lib write_rate -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn a_million_purchases_of_ten_thousand_buyers_in_batches_of_1024() {
        let dir = tempfile::tempdir().expect("dir");
        let index = Index::open(&dir.path().join("index")).expect("open");
        let mut seq = 0;
        let empty = buys(&index, &mut seq);
        let started = std::time::Instant::now();
        for _ in 0..1_000 {
            let b = batch(&mut seq, 1024, |n| format!("user{}", n % 10_000));
            write(&index, &b, seq);
        }
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "{seq} purchases in {seconds:.1} s: {:.0} a second",
            1_024_000.0 / seconds
        );
        let full = buys(&index, &mut seq);
        eprintln!(
            "buys in batches of 8: {empty:.0} a second on an empty index, {full:.0} on a full one"
        );
        // As the appender writes: 8 lines appended and fsynced, with and without the
        // index's transaction after each.
        let mut file = std::fs::File::create(dir.path().join("purchases.json")).expect("file");
        let line = vec![b'x'; 199];
        for with_index in [false, true, false, true] {
            let started = std::time::Instant::now();
            for _ in 0..500 {
                for _ in 0..8 {
                    std::io::Write::write_all(&mut file, &line).expect("write");
                }
                file.sync_data().expect("fsync");
                if with_index {
                    let b = batch(&mut seq, 8, |_| "buyer".to_owned());
                    write(&index, &b, seq);
                }
            }
            eprintln!(
                "fsynced batches of 8 {}: {:.0} µs each",
                if with_index { "and the index" } else { "alone" },
                started.elapsed().as_secs_f64() * 1e6 / 500.0
            );
        }
    }
}
