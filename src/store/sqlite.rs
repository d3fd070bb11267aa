//! The history in an SQLite file: open (or refuse), load, append, prune.
//!
//! The schema is two tables: `line (id INTEGER PRIMARY KEY, text)` holds
//! the kept lines, `state` holds one row with a last id. The last id ever
//! assigned is the greater of that row and the newest line. A prune never
//! deletes the newest line when `keep` > 0 and folds its id into the row
//! first, so the row is written only at open, at a prune and, when
//! `keep` = 0 (no line is written), in every transaction: a one-line turn
//! changes one page, which halves what goes through the WAL.
//! `PRAGMA application_id` marks the file as ours and `PRAGMA user_version`
//! is the schema version; a file with anything else is refused before
//! anything is written to it.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{ffi, params, Connection, ErrorCode, OpenFlags, TransactionBehavior, MAIN_DB};

use super::{Backlog, Loaded, Stats, StoredLine};

/// `PRAGMA application_id` of our files: "chat" in ASCII.
const APPLICATION_ID: i32 = 0x6368_6174;
/// `PRAGMA user_version`: the schema this code reads and writes.
const SCHEMA_VERSION: i32 = 1;
/// Fewest written lines between two prunes, so a small `keep` does not
/// mean a DELETE every turn.
const PRUNE_MIN: usize = 64;
/// Bytes the `-wal` file is truncated to after a checkpoint, so one burst
/// does not leave a large file behind.
const WAL_SIZE_LIMIT: i64 = 4 << 20;

/// The tables of a new file (run inside the first transaction, which also
/// sets the mark).
const SCHEMA: &str = "
    CREATE TABLE line (id INTEGER PRIMARY KEY, text TEXT NOT NULL);
    CREATE TABLE state (one INTEGER PRIMARY KEY CHECK (one = 1), last_id INTEGER NOT NULL);
    INSERT INTO state (one, last_id) VALUES (1, 0);
";
/// Writes one line. `OR REPLACE`: a retried line that did reach the file
/// is written again, not refused.
const INSERT: &str = "INSERT OR REPLACE INTO line (id, text) VALUES (?1, ?2)";
/// Raises the last id; never lowers it.
const SET_LAST: &str = "UPDATE state SET last_id = ?1 WHERE last_id < ?1";
/// Folds the newest line's id into the state row, before a prune (at open
/// it also proves the file takes writes).
const FOLD_LAST: &str =
    "UPDATE state SET last_id = max(last_id, coalesce((SELECT max(id) FROM line), 0))";
/// Deletes every line but the newest ?1 (nothing when there are fewer).
const PRUNE: &str =
    "DELETE FROM line WHERE id <= (SELECT id FROM line ORDER BY id DESC LIMIT 1 OFFSET ?1)";
/// The newest ?1 lines, oldest first.
const LOAD: &str =
    "SELECT id, text FROM (SELECT id, text FROM line ORDER BY id DESC LIMIT ?1) ORDER BY id";
/// The last id: the state row, or a kept line if one is somehow newer.
const LAST_ID: &str = "SELECT max(last_id, coalesce((SELECT max(id) FROM line), 0)) FROM state";

/// Why a file was refused at open.
#[derive(Debug)]
pub enum Refusal {
    /// The path names a directory.
    Directory,
    /// The path names a device, FIFO or socket, not a regular file.
    NotAFile,
    /// The file is missing and so is the directory it would be made in.
    NoDirectory(PathBuf),
    /// The OS refused to open or create it for reading and writing.
    CannotOpen(io::Error),
    /// Another process (another chat-server) has it open as its history.
    InUse,
    /// SQLite could open it for reading only.
    ReadOnly,
    /// The file can be written but its directory cannot, and WAL needs to
    /// create the `-wal` and `-shm` files there.
    ReadOnlyDirectory,
    /// It does not start with the SQLite header: some other kind of file,
    /// or one damaged at its start.
    NotSqlite,
    /// SQLite found damage inside.
    Corrupt(String),
    /// An SQLite database of another program (its `application_id`; 0
    /// when it has none but has tables).
    Foreign(i32),
    /// Ours, but another schema version (a newer chatroom wrote it).
    Version(i32),
    /// The file system cannot give SQLite its WAL journal; the mode it kept.
    NoWal(String),
    /// Any other SQLite error, such as a lock held by another program.
    Sqlite(rusqlite::Error),
}

/// A history database that cannot be used; the server prints it and exits 1.
#[derive(Debug)]
pub struct OpenError {
    /// The file, as given.
    pub path: PathBuf,
    /// What is wrong with it.
    pub why: Refusal,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "history database {}: ", self.path.display())?;
        match &self.why {
            Refusal::Directory => write!(f, "is a directory, not a file"),
            Refusal::NotAFile => write!(f, "is not a regular file"),
            Refusal::NoDirectory(dir) => write!(
                f,
                "cannot be created: directory {} does not exist",
                dir.display()
            ),
            Refusal::CannotOpen(e) => write!(f, "cannot be opened for writing: {e}"),
            Refusal::InUse => write!(
                f,
                "is in use by another process (another chat-server with the same --history-db?)"
            ),
            Refusal::ReadOnly => write!(f, "can only be read, not written"),
            Refusal::ReadOnlyDirectory => write!(
                f,
                "cannot be written: its directory is not writable, and SQLite must create its -wal and -shm files there"
            ),
            Refusal::NotSqlite => write!(
                f,
                "is not an SQLite database (another kind of file, or damaged at its start)"
            ),
            Refusal::Corrupt(e) => write!(f, "is damaged: {e}"),
            Refusal::Foreign(0) => write!(
                f,
                "is an SQLite database of another program (it has tables but no chatroom mark)"
            ),
            Refusal::Foreign(id) => write!(
                f,
                "is an SQLite database of another program (application_id {id:#x}, ours is {APPLICATION_ID:#x})"
            ),
            Refusal::Version(v) => write!(
                f,
                "has history schema version {v}; this chatroom reads version {SCHEMA_VERSION}"
            ),
            Refusal::NoWal(mode) => write!(
                f,
                "cannot use SQLite's WAL journal here (the file system kept journal mode {mode:?})"
            ),
            Refusal::Sqlite(e) => write!(f, "cannot be used: {e}"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.why {
            Refusal::CannotOpen(e) => Some(e),
            Refusal::Sqlite(e) => Some(e),
            _ => None,
        }
    }
}

/// A transaction that failed after open; its lines wait in the backlog.
#[derive(Debug)]
pub struct WriteError {
    /// The database file.
    pub path: PathBuf,
    /// What SQLite reported (`SQLITE_FULL` for a full disk).
    pub cause: rusqlite::Error,
    /// Lines now waiting in memory for the next write.
    pub backlog: usize,
    /// Lines dropped from the full backlog since open.
    pub dropped: u64,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "history database {}: write failed: {}; lines waiting in memory for the next write: {}, dropped so far: {}",
            self.path.display(),
            self.cause,
            self.backlog,
            self.dropped
        )
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// An open history database.
#[derive(Debug)]
pub struct Store {
    /// The one connection; its prepared statements are cached on it.
    conn: Connection,
    /// Our own descriptor of the file, holding an exclusive `flock` so a
    /// second server cannot interleave its ids with ours. Declared after
    /// `conn`: closing any descriptor of the file drops the process's
    /// POSIX locks, SQLite's included, so this one closes last.
    _lock: File,
    /// The file, for messages.
    path: PathBuf,
    /// Lines kept (`--history`).
    keep: usize,
    /// Lines written since the last prune.
    since_prune: usize,
    /// Lines (and the last id) that failed to be written.
    backlog: Backlog,
    /// Lines committed since open.
    written_lines: u64,
    /// Transactions that failed since open.
    failed_writes: u64,
}

impl Store {
    /// Opens or creates the history database at `path`, keeping `keep`
    /// lines. Returns the store and the last `keep` lines with the last id
    /// ever assigned. A file that is not ours, or that cannot be read and
    /// written, is refused with an [`OpenError`]; nothing is written to a
    /// file that is not ours.
    pub fn open(path: &Path, keep: usize) -> Result<(Store, Loaded), OpenError> {
        let refuse = |why| OpenError {
            path: path.to_owned(),
            why,
        };
        let lock = lock_file(path).map_err(refuse)?;
        let mut store = Store {
            conn: connect(path).map_err(refuse)?,
            _lock: lock,
            path: path.to_owned(),
            keep,
            since_prune: 0,
            backlog: Backlog::new(keep),
            written_lines: 0,
            failed_writes: 0,
        };
        let loaded = store.start().map_err(refuse)?;
        Ok((store, loaded))
    }

    /// Writes one turn's new public lines `(id, text)`, ids increasing, in
    /// one transaction, after any lines a failed write left behind. Call it
    /// before the turn's output is flushed; with no lines and no backlog it
    /// does nothing. On failure the lines join the backlog and the error
    /// says so; nothing panics.
    pub fn append<'a, I>(&mut self, lines: I) -> Result<(), WriteError>
    where
        I: IntoIterator<Item = (u64, &'a str)>,
        I::IntoIter: Clone,
    {
        let lines = lines.into_iter();
        if let Err(cause) = self.write(lines.clone()) {
            for (id, text) in lines {
                self.backlog.push(id, text);
            }
            return Err(self.failed(cause));
        }
        Ok(())
    }

    /// Writes the backlog, if any: call it from the periodic sweep so a
    /// failed write is retried even when no new line comes.
    pub fn retry(&mut self) -> Result<(), WriteError> {
        self.write(std::iter::empty())
            .map_err(|cause| self.failed(cause))
    }

    /// Counters for the log and `/metrics`.
    pub fn stats(&self) -> Stats {
        Stats {
            written_lines: self.written_lines,
            failed_writes: self.failed_writes,
            dropped_lines: self.backlog.dropped(),
            backlog_lines: self.backlog.len(),
        }
    }

    /// Checks the file is ours (or new), switches to WAL, then in one write
    /// transaction creates the schema or proves the file takes writes,
    /// prunes to `keep` and loads what is left.
    fn start(&mut self) -> Result<Loaded, Refusal> {
        let fresh = self.identify()?;
        self.set_journal()?;
        if !fresh {
            quick_check(&self.conn)?;
        }
        let keep = sql_count(self.keep);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        if fresh {
            tx.execute_batch(SCHEMA)
                .and_then(|()| tx.pragma_update(None, "application_id", APPLICATION_ID))
                .and_then(|()| tx.pragma_update(None, "user_version", SCHEMA_VERSION))
                .map_err(classify)?;
        }
        tx.execute(FOLD_LAST, []).map_err(classify)?;
        tx.execute(PRUNE, [keep]).map_err(classify)?;
        let lines = tx
            .prepare(LOAD)
            .and_then(|mut load| {
                load.query_map([keep], |row| {
                    Ok(StoredLine {
                        id: row.get(0)?,
                        text: row.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(classify)?;
        let last_id = tx
            .query_row(LAST_ID, [], |row| row.get(0))
            .map_err(classify)?;
        tx.commit().map_err(classify)?;
        Ok(Loaded { lines, last_id })
    }

    /// True for a file to initialise (empty, or an SQLite database with no
    /// tables and no mark); `Ok(false)` for one of ours; refuses the rest.
    fn identify(&self) -> Result<bool, Refusal> {
        let pragma = |name| {
            self.conn
                .pragma_query_value(None, name, |row| row.get::<_, i32>(0))
                .map_err(classify)
        };
        let application_id = pragma("application_id")?;
        let version = pragma("user_version")?;
        let tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(classify)?;
        match application_id {
            APPLICATION_ID if version == SCHEMA_VERSION => Ok(false),
            APPLICATION_ID => Err(Refusal::Version(version)),
            0 if tables == 0 => Ok(true),
            other => Err(Refusal::Foreign(other)),
        }
    }

    /// WAL (readers never block the writer, a commit is one append to the
    /// `-wal` file) with `synchronous = NORMAL` (see the module docs).
    fn set_journal(&self) -> Result<(), Refusal> {
        let mode: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
            .map_err(classify)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Refusal::NoWal(mode));
        }
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .and_then(|()| {
                self.conn
                    .pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            })
            .map_err(classify)
    }

    /// One transaction: the backlog, then `new` (or, with `keep` = 0, only
    /// their last id), then a prune when one is due. Clears the backlog once committed.
    fn write<'a>(
        &mut self,
        new: impl Iterator<Item = (u64, &'a str)> + Clone,
    ) -> rusqlite::Result<()> {
        if self.backlog.is_empty() && new.clone().next().is_none() {
            return Ok(());
        }
        let keep = self.keep;
        let mut last_id = self.backlog.last_id().unwrap_or(0);
        let mut written = 0;
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            let mut put = |id: u64, text: &str| {
                last_id = last_id.max(id);
                if keep > 0 {
                    insert.execute(params![id, text])?;
                    written += 1;
                }
                Ok::<_, rusqlite::Error>(())
            };
            for (id, text) in self.backlog.lines() {
                put(id, text)?;
            }
            for (id, text) in new {
                put(id, text)?;
            }
        }
        if keep == 0 {
            tx.prepare_cached(SET_LAST)?.execute([last_id])?;
        }
        let prune = self.since_prune + written >= keep.max(PRUNE_MIN);
        if prune {
            tx.prepare_cached(FOLD_LAST)?.execute([])?;
            tx.prepare_cached(PRUNE)?.execute([sql_count(keep)])?;
        }
        tx.commit()?;
        self.since_prune = if prune { 0 } else { self.since_prune + written };
        self.written_lines += written as u64;
        if !self.backlog.is_empty() {
            log::warn!(
                "history database {}: writing again after {} failed writes; {} lines from the backlog are on disk, {} were dropped",
                self.path.display(),
                self.failed_writes,
                self.backlog.len(),
                self.backlog.dropped()
            );
            self.backlog.clear();
        }
        Ok(())
    }

    /// Counts a failed transaction and describes it.
    fn failed(&mut self, cause: rusqlite::Error) -> WriteError {
        self.failed_writes += 1;
        WriteError {
            path: self.path.clone(),
            cause,
            backlog: self.backlog.len(),
            dropped: self.backlog.dropped(),
        }
    }
}

/// Refuses what is not a regular file, opens (creating if missing) the file
/// ourselves, and takes an exclusive `flock` on it. Our own open gives the
/// OS's reason (permission denied, read-only file system), clearer than
/// SQLite's "unable to open database file". The lock (released by the
/// kernel when the process dies, even by `kill -9`) is independent of
/// SQLite's POSIX locks.
fn lock_file(path: &Path) -> Result<File, Refusal> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Err(Refusal::Directory),
        Ok(meta) if !meta.is_file() => return Err(Refusal::NotAFile),
        _ => {}
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                let dir = match path.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                if dir.is_dir() {
                    Refusal::CannotOpen(e)
                } else {
                    Refusal::NoDirectory(dir.to_owned())
                }
            }
            _ => Refusal::CannotOpen(e),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Refusal::InUse),
        Err(TryLockError::Error(e)) => Err(Refusal::CannotOpen(e)),
    }
}

/// Opens the connection; one that SQLite could only open read-only is
/// refused. Never waits for a lock: the loop must not stall, and a busy
/// file is a failed write like any other.
fn connect(path: &Path) -> Result<Connection, Refusal> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(classify)?;
    conn.busy_timeout(Duration::ZERO).map_err(classify)?;
    if conn.is_readonly(MAIN_DB).map_err(classify)? {
        return Err(Refusal::ReadOnly);
    }
    Ok(conn)
}

/// `PRAGMA quick_check`: reads every page of the (small) file once. Its
/// report (several lines, under a `*** in database main ***` heading)
/// becomes one line.
fn quick_check(conn: &Connection) -> Result<(), Refusal> {
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
        .map_err(classify)?;
    if verdict == "ok" {
        return Ok(());
    }
    let lines: Vec<&str> = verdict.lines().filter(|l| !l.starts_with("***")).collect();
    Err(Refusal::Corrupt(lines.join("; ")))
}

/// Sorts an SQLite error met while opening into a refusal.
fn classify(e: rusqlite::Error) -> Refusal {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Refusal::NotSqlite,
        Some(ErrorCode::DatabaseCorrupt) => Refusal::Corrupt(e.to_string()),
        Some(ErrorCode::ReadOnly) => match e.sqlite_error() {
            Some(code) if code.extended_code == ffi::SQLITE_READONLY_DIRECTORY => {
                Refusal::ReadOnlyDirectory
            }
            _ => Refusal::ReadOnly,
        },
        _ => Refusal::Sqlite(e),
    }
}

/// A line count as an SQL integer (`LIMIT`/`OFFSET`).
fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn tmp() -> TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    fn db(dir: &TempDir) -> PathBuf {
        dir.path().join("history.db")
    }

    fn open(path: &Path, keep: usize) -> (Store, Loaded) {
        Store::open(path, keep).unwrap_or_else(|e| panic!("open: {e}"))
    }

    /// Appends `line ID` for every id in `ids`, as one turn.
    fn turn(store: &mut Store, ids: std::ops::RangeInclusive<u64>) -> Result<(), WriteError> {
        let lines: Vec<(u64, String)> = ids.map(|id| (id, format!("line {id}"))).collect();
        store.append(lines.iter().map(|(id, text)| (*id, text.as_str())))
    }

    fn ids(loaded: &Loaded) -> Vec<u64> {
        loaded.lines.iter().map(|l| l.id).collect()
    }

    /// Ids of the rows in the file, read by a second, read-only connection.
    fn rows(path: &Path) -> Vec<u64> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("second connection");
        let mut select = conn.prepare("SELECT id FROM line ORDER BY id").unwrap();
        let ids = select.query_map([], |row| row.get(0)).unwrap();
        ids.collect::<rusqlite::Result<_>>().unwrap()
    }

    /// The refusal for `path`, after checking its message is one line that
    /// names the file and contains `reason`.
    fn refused(path: &Path, reason: &str) -> Refusal {
        let err = Store::open(path, 10).expect_err("the file must be refused");
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(
            msg.starts_with(&format!("history database {}: ", path.display())),
            "names the file: {msg}"
        );
        assert!(msg.contains(reason), "says {reason:?}: {msg}");
        err.why
    }

    #[test]
    fn creates_a_marked_wal_file() {
        let dir = tmp();
        let path = db(&dir);
        let (_store, loaded) = open(&path, 10);
        assert_eq!(loaded, Loaded::default());
        let other = Connection::open(&path).unwrap();
        let pragma = |name| {
            other
                .pragma_query_value(None, name, |row| row.get::<_, rusqlite::types::Value>(0))
                .unwrap()
        };
        use rusqlite::types::Value::{Integer, Text};
        assert_eq!(pragma("application_id"), Integer(APPLICATION_ID.into()));
        assert_eq!(pragma("user_version"), Integer(SCHEMA_VERSION.into()));
        assert_eq!(pragma("journal_mode"), Text("wal".into()));
    }

    #[test]
    fn an_empty_file_is_initialised() {
        let dir = tmp();
        let path = db(&dir);
        fs::write(&path, b"").unwrap();
        let (mut store, loaded) = open(&path, 10);
        assert_eq!(loaded, Loaded::default());
        turn(&mut store, 1..=1).unwrap();
        assert_eq!(rows(&path), [1]);
    }

    #[test]
    fn reopen_loads_the_lines_and_continues_ids() {
        let dir = tmp();
        let path = db(&dir);
        let (mut store, _) = open(&path, 10);
        turn(&mut store, 1..=2).unwrap();
        turn(&mut store, 3..=3).unwrap();
        store.append(std::iter::empty()).unwrap();
        drop(store);
        let (mut store, loaded) = open(&path, 10);
        assert_eq!(ids(&loaded), [1, 2, 3]);
        assert_eq!(loaded.lines[2].text, "line 3");
        assert_eq!(loaded.last_id, 3);
        turn(&mut store, 4..=4).unwrap();
        drop(store);
        let (store, loaded) = open(&path, 10);
        assert_eq!(loaded.last_id, 4);
        assert_eq!(
            store.stats(),
            Stats::default(),
            "a new store has written nothing"
        );
    }

    #[test]
    fn open_loads_only_the_last_keep_lines_and_prunes_the_rest() {
        let dir = tmp();
        let path = db(&dir);
        let (mut store, _) = open(&path, 5);
        for id in 1..=10 {
            turn(&mut store, id..=id).unwrap();
        }
        drop(store);
        let (_store, loaded) = open(&path, 3);
        assert_eq!(ids(&loaded), [8, 9, 10]);
        assert_eq!(loaded.last_id, 10);
        assert_eq!(rows(&path), [8, 9, 10]);
    }

    #[test]
    fn rows_and_pages_stay_bounded() {
        let dir = tmp();
        let path = db(&dir);
        let keep = 10;
        let (mut store, _) = open(&path, keep);
        let pages = |store: &Store| -> i64 {
            store
                .conn
                .pragma_query_value(None, "page_count", |row| row.get(0))
                .unwrap()
        };
        let mut after_first_thousand = 0;
        for id in 1..=3000 {
            turn(&mut store, id..=id).unwrap();
            assert!(rows(&path).len() <= keep + PRUNE_MIN, "line {id}");
            if id == 1000 {
                after_first_thousand = pages(&store);
            }
        }
        assert_eq!(
            pages(&store),
            after_first_thousand,
            "freed pages are reused"
        );
        assert_eq!(store.stats().written_lines, 3000);
    }

    #[test]
    fn the_last_id_survives_pruning_and_keep_zero() {
        let dir = tmp();
        let path = db(&dir);
        let (mut store, _) = open(&path, 3);
        turn(&mut store, 1..=5).unwrap();
        drop(store);
        let (mut store, loaded) = open(&path, 0);
        assert_eq!((loaded.lines.len(), loaded.last_id), (0, 5));
        assert_eq!(rows(&path), [] as [u64; 0], "keep 0 prunes every line");
        turn(&mut store, 6..=7).unwrap();
        assert_eq!(rows(&path), [] as [u64; 0], "keep 0 writes no text");
        drop(store);
        let (_store, loaded) = open(&path, 3);
        assert_eq!((loaded.lines.len(), loaded.last_id), (0, 7));
    }

    #[test]
    fn another_connection_sees_each_commit_at_once() {
        let dir = tmp();
        let path = db(&dir);
        let (mut store, _) = open(&path, 10);
        turn(&mut store, 1..=3).unwrap();
        assert_eq!(rows(&path), [1, 2, 3], "while the writer is open");
        turn(&mut store, 4..=4).unwrap();
        // Never closed, never checkpointed: what a killed process leaves
        // (the kernel releases its locks).
        let Store { conn, _lock, .. } = store;
        std::mem::forget(conn);
        drop(_lock);
        let wal = fs::metadata(dir.path().join("history.db-wal")).unwrap();
        assert!(
            wal.len() > 0,
            "the lines are in the WAL, not yet in the file"
        );
        let (_store, loaded) = open(&path, 10);
        assert_eq!(ids(&loaded), [1, 2, 3, 4]);
        assert_eq!(loaded.last_id, 4);
    }

    #[test]
    fn refuses_a_file_another_store_has_open() {
        let dir = tmp();
        let path = db(&dir);
        let (store, _) = open(&path, 10);
        let why = refused(&path, "is in use by another process");
        assert!(matches!(why, Refusal::InUse), "{why:?}");
        drop(store);
        open(&path, 10);
    }

    #[test]
    fn refuses_a_directory() {
        let dir = tmp();
        let why = refused(dir.path(), "is a directory");
        assert!(matches!(why, Refusal::Directory), "{why:?}");
    }

    #[test]
    fn refuses_a_device() {
        let why = refused(Path::new("/dev/null"), "not a regular file");
        assert!(matches!(why, Refusal::NotAFile), "{why:?}");
    }

    #[test]
    fn refuses_a_path_in_a_missing_directory() {
        let dir = tmp();
        let missing = dir.path().join("no-such-dir");
        let why = refused(&missing.join("history.db"), "does not exist");
        assert!(
            matches!(&why, Refusal::NoDirectory(d) if *d == missing),
            "{why:?}"
        );
        assert!(!missing.exists(), "nothing was created");

        fs::write(dir.path().join("file"), "x").unwrap();
        let why = refused(&dir.path().join("file/history.db"), "Not a directory");
        assert!(matches!(why, Refusal::CannotOpen(_)), "{why:?}");
    }

    #[test]
    fn refuses_a_file_that_is_not_sqlite() {
        let dir = tmp();
        let path = db(&dir);
        let text = b"alice: hi\nbob: hello\n";
        fs::write(&path, text).unwrap();
        let why = refused(&path, "not an SQLite database");
        assert!(matches!(why, Refusal::NotSqlite), "{why:?}");
        assert_eq!(fs::read(&path).unwrap(), text, "left as it was");
    }

    #[test]
    fn refuses_another_programs_database_and_leaves_it_alone() {
        let dir = tmp();
        for (name, sql, id) in [
            ("plain.db", "CREATE TABLE t (x)", 0),
            (
                "marked.db",
                "PRAGMA application_id = 42; CREATE TABLE t (x)",
                42,
            ),
        ] {
            let path = dir.path().join(name);
            Connection::open(&path).unwrap().execute_batch(sql).unwrap();
            let before = fs::read(&path).unwrap();
            let why = refused(&path, "SQLite database of another program");
            assert!(
                matches!(why, Refusal::Foreign(found) if found == id),
                "{why:?}"
            );
            assert_eq!(fs::read(&path).unwrap(), before, "{name} left as it was");
            assert!(!dir.path().join(format!("{name}-wal")).exists());
        }
    }

    #[test]
    fn refuses_another_schema_version() {
        let dir = tmp();
        let path = db(&dir);
        let (store, _) = open(&path, 10);
        store.conn.pragma_update(None, "user_version", 2).unwrap();
        drop(store);
        let why = refused(&path, "schema version 2; this chatroom reads version 1");
        assert!(matches!(why, Refusal::Version(2)), "{why:?}");
    }

    /// A closed store of 60 lines of 500 bytes: about ten pages.
    fn written_file(path: &Path) {
        let (mut store, _) = open(path, 100);
        let text = "x".repeat(500);
        let lines: Vec<(u64, &str)> = (1..=60).map(|id| (id, text.as_str())).collect();
        store.append(lines.iter().copied()).unwrap();
    }

    #[test]
    fn refuses_a_damaged_file() {
        let dir = tmp();
        let path = db(&dir);
        written_file(&path);
        let good = fs::read(&path).unwrap();
        assert!(
            good.len() >= 3 * 4096,
            "closed and checkpointed: {}",
            good.len()
        );

        // The cells of one page overwritten (a bad sector, a stray write).
        let mut bytes = good.clone();
        bytes[4096 + 100..2 * 4096].fill(0x5a);
        fs::write(&path, &bytes).unwrap();
        let why = refused(&path, "is damaged: ");
        assert!(matches!(why, Refusal::Corrupt(_)), "{why:?}");

        // Cut short (a copy that did not finish).
        fs::write(&path, &good[..2 * 4096]).unwrap();
        let why = refused(&path, "is damaged: ");
        assert!(matches!(why, Refusal::Corrupt(_)), "{why:?}");

        // Its header overwritten.
        let mut bytes = good;
        bytes[..16].copy_from_slice(b"not a database!!");
        fs::write(&path, &bytes).unwrap();
        let why = refused(&path, "not an SQLite database");
        assert!(matches!(why, Refusal::NotSqlite), "{why:?}");
    }

    /// Uid of `nobody`.
    const NOBODY: libc::uid_t = 65534;

    /// Runs `f` under an ordinary user's file permissions. Root ignores
    /// file modes, so when the tests run as root this thread's file-system
    /// uid becomes `nobody` (setfsuid(2) is per thread) until `f` returns.
    fn without_root<T>(f: impl FnOnce() -> T) -> T {
        struct Restore;
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: changes only this thread's file-system uid.
                unsafe { libc::setfsuid(0) };
            }
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return f();
        }
        let _restore = Restore;
        // SAFETY: changes only this thread's file-system uid; the second
        // call reads back the value the first one set.
        let now = unsafe {
            libc::setfsuid(NOBODY);
            libc::setfsuid(NOBODY)
        };
        assert_eq!(
            now as libc::uid_t, NOBODY,
            "setfsuid(nobody) failed: run the tests as an ordinary user or as root with CAP_SETUID"
        );
        f()
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn refuses_a_file_it_may_not_write() {
        let dir = tmp();
        let path = db(&dir);
        written_file(&path);
        chmod(dir.path(), 0o755);
        chmod(&path, 0o444);
        let why =
            without_root(|| refused(&path, "cannot be opened for writing: Permission denied"));
        assert!(matches!(why, Refusal::CannotOpen(_)), "{why:?}");
    }

    #[test]
    fn refuses_a_directory_it_may_not_write() {
        let dir = tmp();
        let path = db(&dir);
        written_file(&path);
        chmod(&path, 0o666);
        chmod(dir.path(), 0o555);
        let new = dir.path().join("new.db");
        let (new_why, old_why) = without_root(|| {
            let new_why = refused(&new, "cannot be opened for writing: Permission denied");
            let old_why = refused(&path, "its directory is not writable");
            (new_why, old_why)
        });
        chmod(dir.path(), 0o700);
        assert!(matches!(new_why, Refusal::CannotOpen(_)), "{new_why:?}");
        assert!(matches!(old_why, Refusal::ReadOnlyDirectory), "{old_why:?}");
    }

    /// Caps the file at its present size: real SQLite then fails with
    /// SQLITE_FULL as soon as a write needs one more page, as on a full disk.
    fn fill_disk(store: &Store) {
        let pages: i64 = store
            .conn
            .pragma_query_value(None, "page_count", |row| row.get(0))
            .unwrap();
        store
            .conn
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
    }

    fn free_disk(store: &Store) {
        store
            .conn
            .pragma_update(None, "max_page_count", 1 << 30)
            .unwrap();
    }

    fn is_full(err: &WriteError) -> bool {
        err.cause.sqlite_error_code() == Some(ErrorCode::DiskFull)
    }

    #[test]
    fn a_failed_write_keeps_its_lines_until_a_write_succeeds() {
        let dir = tmp();
        let path = db(&dir);
        let (mut store, _) = open(&path, 100);
        turn(&mut store, 1..=2).unwrap();
        fill_disk(&store);
        let big = "x".repeat(5000);
        let err = store.append([(3, big.as_str())]).unwrap_err();
        assert!(is_full(&err), "{err:?}");
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(
            msg.starts_with(&format!(
                "history database {}: write failed: ",
                path.display()
            )),
            "{msg}"
        );
        assert!(
            msg.contains("waiting in memory for the next write: 1"),
            "{msg}"
        );

        let err = turn(&mut store, 4..=5).unwrap_err();
        assert!(is_full(&err), "the backlog goes first: {err:?}");
        let err = store.retry().unwrap_err();
        assert!(is_full(&err), "{err:?}");
        let stats = store.stats();
        assert_eq!(
            (
                stats.failed_writes,
                stats.backlog_lines,
                stats.dropped_lines
            ),
            (3, 3, 0)
        );
        assert_eq!(
            rows(&path),
            [1, 2],
            "nothing of a failed write is in the file"
        );

        free_disk(&store);
        store.retry().unwrap();
        assert_eq!(rows(&path), [1, 2, 3, 4, 5]);
        let stats = store.stats();
        assert_eq!((stats.backlog_lines, stats.written_lines), (0, 5));
        store.retry().unwrap();
        drop(store);
        let (_store, loaded) = open(&path, 100);
        assert_eq!(loaded.lines[2].text, big);
        assert_eq!((ids(&loaded), loaded.last_id), (vec![1, 2, 3, 4, 5], 5));
    }

    #[test]
    fn a_full_backlog_drops_the_oldest_lines_and_counts_them() {
        let dir = tmp();
        let path = db(&dir);
        let (mut store, _) = open(&path, 2);
        fill_disk(&store);
        let big = "x".repeat(5000);
        for id in 1..=5 {
            let err = store.append([(id, big.as_str())]).unwrap_err();
            assert!(is_full(&err), "{err:?}");
        }
        let stats = store.stats();
        assert_eq!((stats.backlog_lines, stats.dropped_lines), (2, 3));
        free_disk(&store);
        turn(&mut store, 6..=6).unwrap();
        drop(store);
        let (_store, loaded) = open(&path, 2);
        assert_eq!((ids(&loaded), loaded.last_id), (vec![5, 6], 6));
    }
}
