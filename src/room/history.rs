//! The room's record (PROTOCOL.md section 8): every public line gets the next
//! id, and the last `--history` of them are kept in a ring for newcomers,
//! `/history` and `/since`.
//!
//! Keeping a line is one copy into the ring per public line, never per
//! delivery. With a store on disk (`--history-db`) the lines of a turn are
//! also kept in a journal until the event loop has written them.

use std::collections::VecDeque;

/// One kept public line: its id and its bytes as users see them without an
/// id (LF included).
pub type Kept = (u64, Box<[u8]>);

/// The ring of kept lines and the id counter.
#[derive(Debug)]
pub struct History {
    /// How many lines are kept (`--history`); 0 keeps none, ids still count.
    keep: usize,
    /// The kept lines, oldest first; ids are consecutive.
    ring: VecDeque<Kept>,
    /// The last id given out; 0 before the room's first public line.
    last_id: u64,
    /// Lines not yet handed to the store, oldest first; `None` when there is
    /// no store (nothing is journalled).
    journal: Option<Vec<Kept>>,
}

/// What `/since ID` finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Since {
    /// Lines after the id: `lost` of them are no longer kept, the rest
    /// follow from `from` (an index into the ring).
    After {
        /// Lines after the id that are no longer kept.
        lost: u64,
        /// Index in the ring of the first line to replay.
        from: usize,
    },
    /// The id is beyond the last line: the room's ids started over (a server
    /// without `--history-db` was restarted).
    Future,
}

impl History {
    /// An empty record that keeps `keep` lines and continues after `last_id`
    /// (0 for a new room).
    pub fn new(keep: usize, last_id: u64) -> Self {
        History {
            keep,
            ring: VecDeque::with_capacity(keep.min(1024)),
            last_id,
            journal: None,
        }
    }

    /// Journal every new line for a store; see [`History::take_journal`].
    pub fn with_journal(mut self) -> Self {
        self.journal = Some(Vec::new());
        self
    }

    /// Puts lines loaded from the store back into the ring (oldest first;
    /// ids up to the `last_id` given to [`History::new`]).
    pub fn restore(&mut self, lines: impl IntoIterator<Item = Kept>) {
        for kept in lines {
            self.keep_line(kept);
        }
    }

    /// How many lines are kept at most.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// The last id given out (0: none yet).
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// How many lines are kept now.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when no line is kept.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Records a new public line and returns its id.
    pub fn record(&mut self, line: &[u8]) -> u64 {
        self.last_id += 1;
        let id = self.last_id;
        if let Some(journal) = &mut self.journal {
            journal.push((id, line.into()));
        }
        if self.keep > 0 {
            self.keep_line((id, line.into()));
        }
        id
    }

    /// Records a public line whose id was given elsewhere (the cluster's
    /// order). Ids only grow; a gap means lines were lost on the way.
    pub fn record_as(&mut self, id: u64, line: &[u8]) {
        if id <= self.last_id {
            return;
        }
        self.last_id = id;
        if self.keep > 0 {
            self.keep_line((id, line.into()));
        }
    }

    /// Adds a line to the ring, dropping the oldest beyond `keep`.
    fn keep_line(&mut self, kept: Kept) {
        if self.keep == 0 {
            return;
        }
        if self.ring.len() == self.keep {
            self.ring.pop_front();
        }
        self.ring.push_back(kept);
    }

    /// The last `n` kept lines (fewer if fewer are kept), oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &Kept> + '_ {
        self.ring.iter().skip(self.ring.len().saturating_sub(n))
    }

    /// Where the lines after `id` start, and how many of them are lost (ids
    /// after `id` that are not kept: too old, or never received).
    pub fn since(&self, id: u64) -> Since {
        if id > self.last_id {
            return Since::Future;
        }
        let from = self.ring.partition_point(|(i, _)| *i <= id);
        let kept = (self.ring.len() - from) as u64;
        Since::After {
            lost: self.last_id - id - kept,
            from,
        }
    }

    /// The kept lines from ring index `from` on.
    pub fn from_index(&self, from: usize) -> impl Iterator<Item = &Kept> + '_ {
        self.ring.iter().skip(from)
    }

    /// The lines recorded since the last call, oldest first, for the store;
    /// the caller gives the vector back with [`History::return_journal`] so
    /// its capacity is reused. Empty without a journal.
    pub fn take_journal(&mut self) -> Vec<Kept> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Gives an emptied journal vector back (keeps its capacity).
    pub fn return_journal(&mut self, mut v: Vec<Kept>) {
        v.clear();
        if let Some(j) = &mut self.journal {
            if j.is_empty() && v.capacity() <= 4096 {
                *j = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids<'a>(it: impl Iterator<Item = &'a Kept>) -> Vec<u64> {
        it.map(|(i, _)| *i).collect()
    }

    #[test]
    fn ids_count_up_and_the_ring_keeps_the_last() {
        let mut h = History::new(3, 0);
        for n in 1..=5u64 {
            assert_eq!(h.record(format!("l{n}\n").as_bytes()), n);
        }
        assert_eq!(ids(h.last(10)), vec![3, 4, 5]);
        assert_eq!(ids(h.last(2)), vec![4, 5]);
        assert_eq!(&*h.last(1).next().unwrap().1, b"l5\n");
    }

    #[test]
    fn since_counts_lost_lines() {
        let mut h = History::new(3, 0);
        for _ in 0..5 {
            h.record(b"x\n");
        }
        // Kept: 3, 4, 5.
        assert_eq!(h.since(5), Since::After { lost: 0, from: 3 });
        assert_eq!(h.since(3), Since::After { lost: 0, from: 1 });
        assert_eq!(h.since(2), Since::After { lost: 0, from: 0 });
        assert_eq!(h.since(1), Since::After { lost: 1, from: 0 });
        assert_eq!(h.since(0), Since::After { lost: 2, from: 0 });
        assert_eq!(h.since(6), Since::Future);
        assert_eq!(ids(h.from_index(1)), vec![4, 5]);
    }

    #[test]
    fn keep_zero_counts_ids_and_loses_everything() {
        let mut h = History::new(0, 41);
        assert_eq!(h.record(b"x\n"), 42);
        assert_eq!(h.record(b"y\n"), 43);
        assert!(h.is_empty());
        assert_eq!(h.since(40), Since::After { lost: 3, from: 0 });
        assert_eq!(h.since(43), Since::After { lost: 0, from: 0 });
    }

    #[test]
    fn restore_then_continue() {
        let mut h = History::new(2, 10);
        h.restore([
            (8, b"a\n".to_vec().into()),
            (9, b"b\n".to_vec().into()),
            (10, b"c\n".to_vec().into()),
        ]);
        assert_eq!(ids(h.last(5)), vec![9, 10]);
        assert_eq!(h.record(b"d\n"), 11);
        assert_eq!(h.since(8), Since::After { lost: 1, from: 0 });
    }

    #[test]
    fn journal_holds_each_new_line_once() {
        let mut h = History::new(1, 0).with_journal();
        h.record(b"a\n");
        h.record(b"b\n");
        let j = h.take_journal();
        assert_eq!(ids(j.iter()), vec![1, 2]);
        h.return_journal(j);
        assert!(h.take_journal().is_empty());
        h.record(b"c\n");
        assert_eq!(ids(h.take_journal().iter()), vec![3]);
        let mut plain = History::new(5, 0);
        plain.record(b"a\n");
        assert!(plain.take_journal().is_empty());
    }
}
