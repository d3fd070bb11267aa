//! Exactly once, in order: records arrive on the room's channel in the order
//! Redis made them, but a server may miss some (a lost link, records made
//! between loading the history and subscribing). Every record with a line
//! has an id, one more than the last; [`Order`] delivers each once, in id
//! order, and when an id is skipped asks for the missing ones from the stream
//! (the history kept in Redis), holding newer records until they are in.

use crate::room::cluster::Record;

/// What the caller must do after a record came in.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing: deliverable records (if any) were handed out.
    Go,
    /// Fetch the stream's records after this id (`XRANGE (0-ID +`), then
    /// call [`Order::fetched`].
    Fetch(u64),
}

/// The delivery state of the room's records on this server.
#[derive(Debug)]
pub struct Order {
    /// The last id delivered.
    last: u64,
    /// A fetch is in flight: newer records wait in `held`.
    fetching: bool,
    /// Records held while fetching, in arrival order.
    held: Vec<Record>,
    /// Ids never seen (trimmed from the stream before they could be
    /// fetched), over the server's life.
    lost: u64,
}

impl Order {
    /// Delivery continues after `last`.
    pub fn new(last: u64) -> Self {
        Order {
            last,
            fetching: false,
            held: Vec::new(),
            lost: 0,
        }
    }

    /// The last id delivered.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// A record from the channel: hands out what can be delivered now.
    pub fn live(&mut self, rec: Record, deliver: &mut impl FnMut(Record)) -> Next {
        if self.fetching {
            self.held.push(rec);
            return Next::Go;
        }
        if rec.id == 0 || rec.id <= self.last + 1 {
            self.pass(rec, deliver);
            return Next::Go;
        }
        self.fetching = true;
        self.held.push(rec);
        Next::Fetch(self.last)
    }

    /// Forces a fetch from the last delivered id (after a reconnection);
    /// `None` if one is already in flight.
    pub fn catch_up(&mut self) -> Option<u64> {
        if self.fetching {
            return None;
        }
        self.fetching = true;
        Some(self.last)
    }

    /// The stream's records after the id asked for (in id order), then the
    /// held ones: each delivered once, in order; ids that neither had are
    /// counted as lost. Returns how many were lost in this step.
    pub fn fetched(&mut self, records: Vec<Record>, deliver: &mut impl FnMut(Record)) -> u64 {
        let before = self.lost;
        self.fetching = false;
        for rec in records {
            self.pass(rec, deliver);
        }
        for rec in std::mem::take(&mut self.held) {
            self.pass(rec, deliver);
        }
        self.lost - before
    }

    /// The fetch failed (the link dropped): records held stay held until
    /// the next fetch.
    pub fn fetch_failed(&mut self) {
        self.fetching = false;
    }

    /// Delivers `rec` unless it is a repeat; a skipped id is lost.
    fn pass(&mut self, rec: Record, deliver: &mut impl FnMut(Record)) {
        if rec.id != 0 {
            if rec.id <= self.last {
                return;
            }
            self.lost += rec.id - self.last - 1;
            self.last = rec.id;
        }
        deliver(rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::cluster::Event;

    fn rec(id: u64) -> Record {
        Record {
            id,
            origin: "n".into(),
            conn: 0,
            tag: 0,
            event: Event::Line,
            line: if id == 0 {
                Box::default()
            } else {
                format!("l{id}\n").into_bytes().into()
            },
        }
    }

    fn ids(v: &[Record]) -> Vec<u64> {
        v.iter().map(|r| r.id).collect()
    }

    #[test]
    fn in_order_repeats_dropped() {
        let mut o = Order::new(5);
        let mut got = Vec::new();
        let mut d = |r| got.push(r);
        assert_eq!(o.live(rec(6), &mut d), Next::Go);
        assert_eq!(o.live(rec(6), &mut d), Next::Go);
        assert_eq!(o.live(rec(0), &mut d), Next::Go);
        assert_eq!(o.live(rec(4), &mut d), Next::Go);
        assert_eq!(o.live(rec(7), &mut d), Next::Go);
        assert_eq!(ids(&got), vec![6, 0, 7]);
    }

    #[test]
    fn a_gap_fetches_then_delivers_everything_once() {
        let mut o = Order::new(5);
        let mut got = Vec::new();
        assert_eq!(o.live(rec(8), &mut |r| got.push(r)), Next::Fetch(5));
        assert_eq!(o.live(rec(9), &mut |r| got.push(r)), Next::Go);
        assert_eq!(o.live(rec(0), &mut |r| got.push(r)), Next::Go);
        assert!(got.is_empty());
        // The stream has 6..=9 (9 was published meanwhile).
        let lost = o.fetched(vec![rec(6), rec(7), rec(8), rec(9)], &mut |r| got.push(r));
        assert_eq!(lost, 0);
        assert_eq!(ids(&got), vec![6, 7, 8, 9, 0]);
        assert_eq!(o.last(), 9);
    }

    #[test]
    fn ids_trimmed_away_count_as_lost() {
        let mut o = Order::new(5);
        let mut got = Vec::new();
        assert_eq!(o.live(rec(20), &mut |r| got.push(r)), Next::Fetch(5));
        let lost = o.fetched(vec![rec(15), rec(16)], &mut |r| got.push(r));
        // 6..=14 were trimmed; 17..=19 were neither fetched nor seen.
        assert_eq!(lost, 9 + 3);
        assert_eq!(ids(&got), vec![15, 16, 20]);
        assert_eq!(o.lost, 12);
    }

    #[test]
    fn catch_up_after_a_reconnect() {
        let mut o = Order::new(3);
        assert_eq!(o.catch_up(), Some(3));
        assert_eq!(o.catch_up(), None);
        let mut got = Vec::new();
        o.live(rec(5), &mut |r| got.push(r));
        o.fetched(vec![rec(4), rec(5)], &mut |r| got.push(r));
        assert_eq!(ids(&got), vec![4, 5]);
    }
}
