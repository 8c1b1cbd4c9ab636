//! The `users` table in SQLite, used from blocking threads.
//!
//! One process owns `users.db`: a second instance of the service must use its own file
//! or share this one only through SQLite's own locking (WAL, busy timeout).

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::error::UsersError;

/// A row of `users`.
#[derive(Debug, Clone)]
pub struct StoredUser {
    pub id: i64,
    pub username: String,
    /// The argon2id PHC string; never leaves the service.
    pub hash: String,
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Inserted,
    /// The UNIQUE constraint refused it: the name is taken.
    Duplicate,
}

/// The user table. Statements are microseconds long, so one connection behind a mutex,
/// always locked on a blocking thread, is enough.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (or creates) the database at `path` with the schema of the original.
    pub async fn open(path: &Path) -> Result<Self, UsersError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path)).await?
    }

    fn open_blocking(path: &Path) -> Result<Self, UsersError> {
        // The hashes are readable by their owner alone: the directory 0700, the database
        // 0600 (made empty here when new, so that SQLite keeps its mode and gives it to
        // its -wal and -shm files too).
        let private = |err: std::io::Error| {
            UsersError::Setup(format!("cannot make {} private: {err}", path.display()))
        };
        service_kit::private::parent_dir(path).map_err(private)?;
        service_kit::private::options(std::fs::OpenOptions::new().create(true).append(true))
            .open(path)
            .map_err(private)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            service_kit::private::file(Path::new(&name)).map_err(private)?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS users (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 username TEXT UNIQUE NOT NULL,
                 password TEXT NOT NULL
             );",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn with<T, F>(&self, f: F) -> Result<T, UsersError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&conn).map_err(UsersError::from)
        })
        .await?
    }

    /// Whether no account was ever created (AUTOINCREMENT never used).
    pub async fn is_new(&self) -> Result<bool, UsersError> {
        self.with(|conn| {
            let used: Option<i64> = conn
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'users'",
                    [],
                    |row| row.get(0),
                )
                .optional()?;
            let rows: i64 = conn.query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))?;
            Ok(used.is_none() && rows == 0)
        })
        .await
    }

    pub async fn find(&self, username: String) -> Result<Option<StoredUser>, UsersError> {
        self.with(move |conn| {
            conn.prepare_cached("SELECT id, username, password FROM users WHERE username = ?1")?
                .query_row(params![username], |row| {
                    Ok(StoredUser {
                        id: row.get(0)?,
                        username: row.get(1)?,
                        hash: row.get(2)?,
                    })
                })
                .optional()
        })
        .await
    }

    pub async fn insert(&self, username: String, hash: String) -> Result<StoreOutcome, UsersError> {
        self.with(move |conn| {
            match conn
                .prepare_cached("INSERT INTO users (username, password) VALUES (?1, ?2)")?
                .execute(params![username, hash])
            {
                Ok(_) => Ok(StoreOutcome::Inserted),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == ErrorCode::ConstraintViolation =>
                {
                    Ok(StoreOutcome::Duplicate)
                }
                Err(err) => Err(err),
            }
        })
        .await
    }

    /// A trivial query, for readiness.
    pub async fn ping(&self) -> Result<(), UsersError> {
        self.with(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }
}
