//! `users.db`: this instance's view of the accounts stream, in SQLite, used from
//! blocking threads.
//!
//! Rows are written only by applying stream records in stream order (see
//! [`crate::accounts`]), each batch in one transaction with the sequence it reached, so
//! the view is always a prefix of the stream and every instance numbers accounts the
//! same way (an imported id is kept, a new account gets the next one). A file of an
//! earlier version (this table without the `view` table, or the Flask original's) is
//! not a view: its rows are read ([`read_legacy`]), imported into the stream, and the
//! file moved aside ([`retire_legacy`]).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use rusqlite::{Connection, OptionalExtension, params};

use crate::{error::UsersError, record::AccountRecord};

/// A row of `users`.
#[derive(Debug, Clone)]
pub struct StoredUser {
    pub id: i64,
    pub username: String,
    /// The argon2id PHC string (or an imported werkzeug hash until its first login);
    /// never leaves the service.
    pub hash: String,
    /// The stream sequence of the account's latest record.
    pub seq: u64,
}

/// A row of a database of an earlier version, to import.
#[derive(Debug, Clone)]
pub struct LegacyUser {
    pub id: i64,
    pub username: String,
    pub hash: String,
}

/// The view. Statements are microseconds long, so one connection behind a mutex, always
/// locked on a blocking thread, is enough.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

/// Where the view stands: the last stream sequence applied and the stream it came
/// from (its creation time), so that a stream made again is noticed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub applied: u64,
    pub stream_created: String,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS users (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         username TEXT UNIQUE NOT NULL,
         password TEXT NOT NULL,
         seq INTEGER NOT NULL
     );
     CREATE TABLE IF NOT EXISTS view (
         key TEXT PRIMARY KEY,
         value TEXT NOT NULL
     );";

impl Store {
    /// Opens (or creates) the view at `path`. A database of an earlier version there
    /// must have been imported and moved aside first ([`read_legacy`], [`retire_legacy`]).
    pub async fn open(path: &Path) -> Result<Self, UsersError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let conn = connect(&path)?;
            conn.execute_batch(SCHEMA)?;
            Ok(Self {
                conn: Arc::new(Mutex::new(conn)),
            })
        })
        .await?
    }

    /// Runs `f` with the connection on a blocking thread; when traced, in a span for
    /// `operation` on `table`.
    async fn with<T, F>(
        &self,
        (operation, table): (&'static str, &'static str),
        f: F,
    ) -> Result<T, UsersError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let span = bus_schema::trace::start(|| service_kit::trace::sqlite(operation, table));
        let done = tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn).map_err(UsersError::from)
        })
        .await
        .map_err(UsersError::from)
        .and_then(|done| done);
        if let Some(span) = span {
            if let Err(err) = &done {
                span.fail("sqlite", err.to_string());
            }
            span.end();
        }
        done
    }

    pub async fn find(&self, username: String) -> Result<Option<StoredUser>, UsersError> {
        self.with(("SELECT", "users"), move |conn| {
            conn.prepare_cached(
                "SELECT id, username, password, seq FROM users WHERE username = ?1",
            )?
            .query_row(params![username], |row| {
                Ok(StoredUser {
                    id: row.get(0)?,
                    username: row.get(1)?,
                    hash: row.get(2)?,
                    seq: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                })
            })
            .optional()
        })
        .await
    }

    /// Every account of the view, by id.
    pub async fn all(&self) -> Result<Vec<StoredUser>, UsersError> {
        self.with(("SELECT", "users"), |conn| {
            conn.prepare("SELECT id, username, password, seq FROM users ORDER BY id")?
                .query_map([], |row| {
                    Ok(StoredUser {
                        id: row.get(0)?,
                        username: row.get(1)?,
                        hash: row.get(2)?,
                        seq: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })?
                .collect()
        })
        .await
    }

    /// Where the view stands.
    pub async fn position(&self) -> Result<Position, UsersError> {
        self.with(("SELECT", "view"), |conn| {
            let get = |key: &str| {
                conn.query_row("SELECT value FROM view WHERE key = ?1", [key], |row| {
                    row.get::<_, String>(0)
                })
                .optional()
            };
            Ok(Position {
                applied: get("applied")?.and_then(|v| v.parse().ok()).unwrap_or(0),
                stream_created: get("stream_created")?.unwrap_or_default(),
            })
        })
        .await
    }

    /// Empties the view and ties it to the stream created at `stream_created`.
    pub async fn reset(&self, stream_created: String) -> Result<(), UsersError> {
        self.with(("DELETE", "users"), move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM users", [])?;
            tx.execute("DELETE FROM sqlite_sequence WHERE name = 'users'", [])
                .or_else(|err| match err {
                    // No AUTOINCREMENT row was ever used.
                    rusqlite::Error::SqliteFailure(..) => Ok(0),
                    err => Err(err),
                })?;
            tx.execute("DELETE FROM view", [])?;
            tx.execute(
                "INSERT INTO view (key, value) VALUES ('stream_created', ?1), ('applied', '0')",
                [stream_created],
            )?;
            tx.commit()
        })
        .await
    }

    /// Applies `records` (stream order, each with its sequence) in one transaction and
    /// moves the position to `applied`.
    pub async fn apply(
        &self,
        records: Vec<(u64, AccountRecord)>,
        applied: u64,
    ) -> Result<(), UsersError> {
        self.with(("INSERT", "users"), move |conn| {
            let tx = conn.transaction()?;
            for (seq, record) in records {
                let seq = i64::try_from(seq).unwrap_or(i64::MAX);
                let updated = tx
                    .prepare_cached("UPDATE users SET password = ?2, seq = ?3 WHERE username = ?1")?
                    .execute(params![record.username, record.password_hash, seq])?;
                if updated > 0 {
                    continue;
                }
                // An imported id is kept unless a newer account took it; otherwise the
                // next id, as every instance applying the same records gives.
                let id = match record.id {
                    Some(id) if id > 0 => tx
                        .query_row("SELECT 1 FROM users WHERE id = ?1", [id], |_| Ok(()))
                        .optional()?
                        .is_none()
                        .then_some(id),
                    _ => None,
                };
                tx.prepare_cached(
                    "INSERT INTO users (id, username, password, seq) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    id,
                    record.username,
                    record.password_hash,
                    seq
                ])?;
            }
            tx.execute(
                "INSERT INTO view (key, value) VALUES ('applied', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [applied.to_string()],
            )?;
            tx.commit()
        })
        .await
    }

    /// A trivial query, for readiness.
    pub async fn ping(&self) -> Result<(), UsersError> {
        self.with(("SELECT", "sqlite_master"), |conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
        })
        .await
    }
}

/// A connection to `path` (created 0600 in a 0700 directory when missing: the hashes
/// are readable by their owner alone, and SQLite gives the file's mode to its -wal and
/// -shm files too).
fn connect(path: &Path) -> Result<Connection, UsersError> {
    let private = |err: std::io::Error| {
        UsersError::Setup(format!("cannot make {} private: {err}", path.display()))
    };
    service_kit::private::parent_dir(path).map_err(private)?;
    service_kit::private::options(std::fs::OpenOptions::new().create(true).append(true))
        .open(path)
        .map_err(private)?;
    for suffix in ["", "-wal", "-shm"] {
        service_kit::private::file(&with_suffix(path, suffix)).map_err(private)?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The rows of an earlier version's database at `path` (a `users` table and no `view`
/// table: this project's previous version, or the Flask original), if that is what is
/// there.
pub async fn read_legacy(path: &Path) -> Result<Option<Vec<LegacyUser>>, UsersError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        if !path.exists() {
            return Ok(None);
        }
        let conn = connect(&path)?;
        let table = |name: &str| -> Result<bool, rusqlite::Error> {
            conn.query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
        };
        if !table("users")? || table("view")? {
            return Ok(None);
        }
        let mut statement = conn.prepare("SELECT id, username, password FROM users ORDER BY id")?;
        let rows = statement
            .query_map([], |row| {
                Ok(LegacyUser {
                    id: row.get(0)?,
                    username: row.get(1)?,
                    hash: row.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(rows))
    })
    .await?
}

/// Moves an imported database aside to `users.db.imported` (numbered when taken), whole
/// (its WAL folded in), so that it is imported once and kept. Returns where it went.
pub async fn retire_legacy(path: &Path) -> Result<PathBuf, UsersError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        connect(&path)?.pragma_update(None, "journal_mode", "DELETE")?;
        let moved_to = (0..)
            .map(|n| match n {
                0 => with_suffix(&path, ".imported"),
                n => with_suffix(&path, &format!(".imported.{n}")),
            })
            .find(|candidate| !candidate.exists())
            .expect("BUG: some name is free");
        std::fs::rename(&path, &moved_to).map_err(|err| {
            UsersError::Setup(format!(
                "cannot move the imported database {} aside: {err}",
                path.display()
            ))
        })?;
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(&path, suffix));
        }
        Ok(moved_to)
    })
    .await?
}
