//! The room's history on disk (`--history-db PATH`, PROTOCOL.md section 8).
//!
//! [`Store::open`] opens or creates an SQLite database file, refuses any file
//! that is not ours or that another server has open (one-line
//! [`OpenError`]), and hands back the last `keep`
//! lines and the last id ever assigned, so ids continue across restarts.
//! [`Store::append`] writes one loop turn's public lines in one transaction;
//! the server calls it *before* that turn's output is flushed, so a line any
//! user received is in the file.
//!
//! # Durability
//!
//! The database runs in WAL mode with `synchronous = NORMAL`. A commit then
//! `write(2)`s the transaction to the `-wal` file without `fsync`: once
//! [`Store::append`] returns, the lines are in the kernel's page cache and
//! survive the death of the process (`kill -9`, a panic, an abort); another
//! connection sees them at once. An OS crash or power loss may take back the
//! last transactions (the file stays consistent, it only loses its tail);
//! only `synchronous = FULL` survives that, at the price of one `fsync` per
//! turn on the one thread that serves every user. Users who lose power on
//! the server lose their connections too; losing the lines they got in the
//! same instant is the trade we make for a loop that does not wait on the
//! disk at every turn. (`synchronous = OFF` would only drop the checkpoints'
//! `fsync`s, and could leave a damaged file after a power loss.)
//!
//! The `fsync`s happen at checkpoints: SQLite copies the WAL back into the
//! file every 1000 WAL pages, inside the commit that crosses the mark. A
//! one-line turn adds one page, so that is about every 1000 such turns.
//!
//! # Cost
//!
//! Measured with `examples/history_store.rs` (2 shared cores, ext4 on a
//! virtual disk, 60-byte lines, `keep` 200; p50 per `append`):
//!
//! | turn of | tmpfs | ext4 | ext4, `synchronous = FULL` |
//! | --- | --- | --- | --- |
//! | 1 line | 12 µs | 12 µs | 160 µs (mean 1.4 ms) |
//! | 10 lines | 16 µs | 18 µs | 250 µs (mean 2.0 ms) |
//! | 100 lines | 92 µs | 103 µs | |
//!
//! About 10 µs per transaction plus 1 µs per line (callgrind: 19,000
//! instructions for a one-line transaction, 5,500 per further line). A
//! checkpoint costs 0.1 ms on tmpfs and 5 to 13 ms on the disk (once 217 ms
//! on the busy machine): that is the turn that crosses the mark.
//!
//! # Bounds
//!
//! Rows beyond the last `keep` are deleted in one statement every
//! `max(keep, 64)` written lines (and at open), in the transaction that
//! crosses the mark, so a committed file holds fewer than
//! `keep + max(keep, 64)` lines; freed pages are reused, so the file stops
//! growing. The last id has a row of its own, brought up to date before each
//! prune (and in every transaction when `keep` = 0, which writes no text at
//! all), so pruning never loses it.
//!
//! # Failures
//!
//! A write that fails (disk full, I/O error, a lock held by another program)
//! never panics and loses no line silently: [`Store::append`] returns a
//! [`WriteError`] for the server to log, and the lines go to a backlog of
//! at most `keep` lines that the next transaction writes first.
//! [`Store::retry`], called from the periodic sweep, writes the backlog when
//! no new line comes. [`Stats`] counts failures and lines dropped from a full
//! backlog, for the log and `/metrics`.
//!
//! The module is split into the SQLite side ([`sqlite`]) and the plain data
//! it hands over (this file), which is tested without a database.

use std::collections::VecDeque;

pub mod sqlite;

pub use sqlite::{OpenError, Refusal, Store, WriteError};

/// One kept public line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    /// Its id, as every receiver saw it.
    pub id: u64,
    /// The line as users saw it, without LF and without an `@ID ` prefix.
    pub text: String,
}

/// What [`Store::open`] read back: the room resumes from this.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loaded {
    /// The last `keep` kept lines, oldest first.
    pub lines: Vec<StoredLine>,
    /// The last id ever assigned (0 for a new file): the next line gets
    /// this plus one, even when no line is kept.
    pub last_id: u64,
}

/// Counters for the log and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Lines committed to the file since open.
    pub written_lines: u64,
    /// Transactions that failed (each one returned a [`WriteError`]).
    pub failed_writes: u64,
    /// Lines pushed out of a full backlog: never written. They were older
    /// than the last `keep` lines, so a restart would not have loaded them.
    pub dropped_lines: u64,
    /// Lines waiting in memory for the next successful write.
    pub backlog_lines: usize,
}

/// Lines a failed write could not store, oldest first, waiting for the next
/// transaction. Holds at most `keep` lines (older ones would be pruned from
/// the file anyway) but always the highest id not yet written, so the last
/// id is never lost, even with `keep` = 0.
#[derive(Debug)]
pub(crate) struct Backlog {
    /// The lines, oldest first.
    lines: VecDeque<StoredLine>,
    /// Most lines held: the store's `keep`.
    cap: usize,
    /// Highest id not yet committed; `None` when nothing waits.
    last_id: Option<u64>,
    /// Lines pushed out because the backlog was full.
    dropped: u64,
}

impl Backlog {
    /// An empty backlog that holds at most `cap` lines.
    pub fn new(cap: usize) -> Self {
        Backlog {
            lines: VecDeque::new(),
            cap,
            last_id: None,
            dropped: 0,
        }
    }

    /// Keeps a line that failed to be written, dropping the oldest when full.
    pub fn push(&mut self, id: u64, text: &str) {
        self.last_id = Some(self.last_id.map_or(id, |last| last.max(id)));
        if self.cap == 0 {
            return;
        }
        if self.lines.len() == self.cap {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(StoredLine {
            id,
            text: text.to_owned(),
        });
    }

    /// True when nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.last_id.is_none()
    }

    /// The waiting lines, oldest first, as [`Store::append`] takes them.
    pub fn lines(&self) -> impl Iterator<Item = (u64, &str)> + Clone {
        self.lines.iter().map(|l| (l.id, l.text.as_str()))
    }

    /// Highest id not yet written, if any.
    pub fn last_id(&self) -> Option<u64> {
        self.last_id
    }

    /// Lines waiting.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Lines pushed out because the backlog was full, since it was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Everything was written: forget it (the count of dropped lines stays).
    pub fn clear(&mut self) {
        self.lines.clear();
        self.last_id = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(b: &Backlog) -> Vec<u64> {
        b.lines().map(|(id, _)| id).collect()
    }

    #[test]
    fn keeps_the_newest_lines_and_counts_the_dropped() {
        let mut b = Backlog::new(2);
        assert!(b.is_empty());
        for id in 1..=5 {
            b.push(id, &format!("line {id}"));
        }
        assert_eq!(ids(&b), [4, 5]);
        assert_eq!(b.lines().last(), Some((5, "line 5")));
        assert_eq!((b.len(), b.dropped(), b.last_id()), (2, 3, Some(5)));
    }

    #[test]
    fn keep_zero_holds_no_text_but_the_last_id() {
        let mut b = Backlog::new(0);
        b.push(7, "a");
        b.push(8, "b");
        assert!(!b.is_empty());
        assert_eq!((b.len(), b.dropped(), b.last_id()), (0, 0, Some(8)));
    }

    #[test]
    fn clear_forgets_the_lines_not_the_drop_count() {
        let mut b = Backlog::new(1);
        b.push(1, "a");
        b.push(2, "b");
        b.clear();
        assert!(b.is_empty());
        assert_eq!((b.len(), b.dropped(), b.last_id()), (0, 1, None));
    }
}
