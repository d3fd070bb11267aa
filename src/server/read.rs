//! The turn's reading: which connections are read, how much, and where their
//! bytes go (TCP lines to the room; web bytes to `web`).

use std::io::ErrorKind;
use std::time::Instant;

use super::conn::Kind;
use super::{Server, BEHIND_PAUSE, PER_CONN_READS};
use crate::line::{Frame, LineReader};
use crate::room::{Gone, Outbox};

/// How a connection's turn at reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Turn {
    /// Nothing more to read now (`WouldBlock`), or it is gone.
    Done,
    /// Its share or the turn's budget ran out: more waits.
    More,
}

impl Server {
    /// Puts `key` in the queue of connections with input to read, once.
    pub(super) fn want_read(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            if !c.queued {
                c.queued = true;
                self.ready.push_back(key);
            }
        }
    }

    /// Whether a reader is still behind; forgets those that caught up, left
    /// or are being dropped.
    fn someone_behind(&mut self) -> bool {
        let mark = self.behind_mark();
        let conns = &mut self.conns;
        self.behind.retain(|&key| match conns.get_mut(key) {
            Some(c) if c.behind => {
                c.behind = c.pending() > mark && c.closing.is_none() && !c.doomed;
                c.behind
            }
            _ => false,
        });
        !self.behind.is_empty()
    }

    /// One turn of reading: each queued connection in order, until the
    /// turn's output budget is spent. While a reader is behind, reading
    /// pauses for [`BEHIND_PAUSE`] between turns of a quarter budget.
    pub(super) fn read_turn(&mut self, now: Instant) {
        self.tally.produced = 0;
        let mut budget = self.turn_budget;
        if self.someone_behind() {
            match self.paused_at {
                None => {
                    self.paused_at = Some(now);
                    return;
                }
                Some(t) if now < t + BEHIND_PAUSE => return,
                Some(_) => self.paused_at = None,
            }
            budget /= 4;
        } else {
            self.paused_at = None;
        }
        for _ in 0..self.ready.len() {
            if self.tally.produced >= budget {
                break;
            }
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let Some(c) = self.conns.get_mut(key) else {
                continue; // closed meanwhile
            };
            c.queued = false;
            if self.read(key, now, budget) == Turn::More {
                self.want_read(key);
            }
        }
    }

    /// Reads `key` until `WouldBlock`, its share of the turn, or the turn's
    /// `budget`, handing what it reads to its kind.
    fn read(&mut self, key: usize, now: Instant, budget: usize) -> Turn {
        // Bytes left over from the last turn go first.
        if self.conns.get(key).is_some_and(|c| !c.unread.is_empty()) {
            let mut unread = std::mem::take(&mut self.conns[key].unread);
            let used = self.feed_lines(key, &unread, now, budget);
            unread.drain(..used);
            if !unread.is_empty() && self.room.has_session(key) {
                if let Some(c) = self.conns.get_mut(key) {
                    c.unread = unread;
                    return Turn::More;
                }
            }
        }
        for _ in 0..PER_CONN_READS {
            if self.tally.produced >= budget {
                return Turn::More;
            }
            let Some(conn) = self.conns.get_mut(key) else {
                return Turn::Done; // closed earlier in this turn
            };
            if conn.doomed {
                return Turn::Done;
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            let result = conn.read(&mut scratch);
            // A handshake may have moved on: send its answer, greet.
            self.tls_progress(key, now);
            let turn = match result {
                Ok(0) => {
                    self.eof(key, now);
                    Some(Turn::Done)
                }
                Ok(n) => self.input(key, &mut scratch[..n], now, budget),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Some(Turn::Done),
                Err(e) if e.kind() == ErrorKind::Interrupted => None,
                Err(e) => {
                    log::debug!("conn {key}: read: {e}");
                    self.doom(key, Gone::Disconnected, "read error");
                    Some(Turn::Done)
                }
            };
            self.scratch = scratch;
            if let Some(turn) = turn {
                return turn;
            }
        }
        Turn::More
    }

    /// The peer sent EOF. The others are told now and its place is free;
    /// what is pending for it is still written (a half-closed peer, like `nc`
    /// fed from a file, reads it), then it is closed.
    fn eof(&mut self, key: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.closing.is_some() {
            self.doom(key, Gone::Disconnected, "closed by peer");
            return;
        }
        conn.peer_eof = true;
        let peer = conn.peer;
        // A chat connection (not a web request, not a TLS handshake).
        let chat = conn.transport.is_some();
        let (room, mut wire) = self.wire(now);
        match room.disconnect(key, Gone::Disconnected, &mut wire) {
            Some(name) => log::info!("conn {key} ({name}) from {peer}: disconnected"),
            None if chat => log::info!("conn {key} from {peer}: disconnected"),
            None => {}
        }
        wire.hang_up(key);
    }

    /// Bytes read from `key`; `Some` ends its turn.
    fn input(&mut self, key: usize, data: &mut [u8], now: Instant, budget: usize) -> Option<Turn> {
        let conn = self.conns.get_mut(key)?;
        conn.last_seen = now;
        if conn.closing.is_some() {
            return None; // hung up: input is discarded until EOF
        }
        match conn.kind {
            Kind::Lines(_) => {
                let used = self.feed_lines(key, data, now, budget);
                if used < data.len() && self.room.has_session(key) {
                    // The budget ran out mid-chunk: keep the rest.
                    if let Some(c) = self.conns.get_mut(key) {
                        c.unread.extend_from_slice(&data[used..]);
                    }
                    return Some(Turn::More);
                }
            }
            Kind::Http(_) => self.http_input(key, data, now),
            Kind::Ws { .. } => self.ws_input(key, data, now),
            Kind::Answered => {}
        }
        None
    }

    /// Feeds TCP bytes from `key` to its line reader and the room, until the
    /// session ends or the turn's `budget` is spent; returns the bytes taken.
    fn feed_lines(&mut self, key: usize, data: &[u8], now: Instant, budget: usize) -> usize {
        let Some(conn) = self.conns.get_mut(key) else {
            return data.len();
        };
        let Kind::Lines(reader) = &mut conn.kind else {
            return data.len();
        };
        let mut reader = std::mem::replace(reader, LineReader::new(0));
        let (room, mut wire) = self.wire(now);
        let used = reader.feed(data, |frame| {
            match frame {
                Frame::Line(line) => room.line(key, line, now, &mut wire),
                Frame::TooLong => room.line_too_long(key, &mut wire),
            }
            room.has_session(key) && wire.tally.produced < budget
        });
        if let Some(Kind::Lines(r)) = self.conns.get_mut(key).map(|c| &mut c.kind) {
            *r = reader;
        }
        used
    }
}
