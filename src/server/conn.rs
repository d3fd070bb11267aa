//! One connection and the loop's [`Outbox`]: its socket, what kind of
//! protocol it speaks, and its output.
//!
//! A connection's output is its private bytes (`out`, consumed by advancing
//! `written`) followed by a range of one of the turn's broadcast logs. There
//! is one log per *variant*, the way a connection sees a public line: a TCP
//! line or a WebSocket frame, with or without `@ID `. A broadcast is
//! encoded once per variant that has a receiver and stored once; a receiver
//! only notes its range, and the flush hands the kernel its private bytes
//! and its range in one `writev`.
//!
//! A connection that came in on a TLS port has a TLS session over its socket
//! ([`super::tls`]): [`Connection::read`] and [`Connection::write_out`], the
//! only two places that touch the socket's bytes, go through it; everything
//! above them sees plaintext.

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;
use rustls::ServerConnection;
use slab::Slab;

use super::places::{Place, Places};
use super::tls;
use crate::line::LineReader;
use crate::room::{with_id, ConnId, Outbox};
use crate::web::http::HeadReader;
use crate::web::ws;

/// How many ways a public line can look on a connection: TCP or WebSocket,
/// with or without ids.
pub const VARIANTS: usize = 4;

/// The protocol a connection speaks and its decoding state.
pub enum Kind {
    /// The line protocol over TCP: LF-framed lines.
    Lines(LineReader),
    /// The web port, before its request is decided: the request head so far.
    Http(HeadReader),
    /// Answered over HTTP; only waits to be closed.
    Answered,
    /// A WebSocket chat connection: frames in, text chunks to lines.
    Ws {
        /// The frame decoder.
        dec: ws::Decoder,
        /// Lines from the text messages (an end of message is an LF).
        lines: LineReader,
    },
}

impl Kind {
    /// True for a WebSocket connection.
    pub fn is_ws(&self) -> bool {
        matches!(self, Kind::Ws { .. })
    }

    /// Its line reader, for the kinds that read lines.
    pub fn lines_mut(&mut self) -> Option<&mut LineReader> {
        match self {
            Kind::Lines(lines) | Kind::Ws { lines, .. } => Some(lines),
            Kind::Http(_) | Kind::Answered => None,
        }
    }
}

/// The transport of a chat connection, for `chat_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The line protocol over TCP.
    Tcp,
    /// WebSocket.
    Ws,
}

/// One client connection.
pub struct Connection {
    /// The socket.
    pub stream: TcpStream,
    /// The TLS session over the socket, for a connection that came in on a
    /// TLS port (boxed: a plain connection pays one pointer for it).
    pub tls: Option<Box<ServerConnection>>,
    /// Peer address, for logs and `--max-per-ip`.
    pub peer: SocketAddr,
    /// Protocol and decoding state.
    pub kind: Kind,
    /// Counted as an open chat connection of this transport (set when it
    /// becomes one; a plain HTTP request never is).
    pub transport: Option<Transport>,
    /// Bytes read but not fed to the room yet because the turn's budget ran
    /// out mid-chunk; fed first on its next turn (at most one chunk).
    pub unread: Vec<u8>,
    /// Its place under `--max-clients`/`--max-per-ip`; given back as soon as
    /// it leaves the room, before its last bytes drain.
    pub place: Option<Place>,
    /// Waiting in the loop's queue of connections with input to read.
    pub queued: bool,
    /// In the loop's list of readers that are behind.
    pub behind: bool,
    /// Which broadcast log its range refers to (see [`variant`]).
    pub variant: usize,
    /// Output not yet taken by the kernel starts at `out[written]`.
    pub out: Vec<u8>,
    /// How much of `out` has been written; advanced, never shifted per write.
    pub written: usize,
    /// Also pending, after `out`: its broadcast log's bytes from `log_from`
    /// to `log_to` (empty when equal). Only set during a turn, or while it
    /// is `held` for the next round (the logs are kept until then): a flush
    /// writes them or copies what the kernel did not take into `out`.
    pub log_from: usize,
    /// End of this connection's range of its broadcast log.
    pub log_to: usize,
    /// When the last byte arrived (idle timeout).
    pub last_seen: Instant,
    /// When it was accepted (login timeout, slow HTTP heads).
    pub accepted: Instant,
    /// WRITABLE interest is registered (only while output is pending).
    pub writable: bool,
    /// Already in the loop's list of connections to flush.
    pub dirty: bool,
    /// In the loop's list of connections whose room output waits for the
    /// next round (its range of the logs, kept until then).
    pub held: bool,
    /// Already in the loop's list of connections to drop.
    pub doomed: bool,
    /// Hung up: flush, send FIN, wait for the peer's FIN until this instant.
    pub closing: Option<Instant>,
    /// Our side has been shut down for writing.
    pub shut: bool,
    /// The peer sent EOF: once our pending output is written, close.
    pub peer_eof: bool,
}

/// The broadcast log a connection of `ws` kind with ids `on` reads.
pub fn variant(ws: bool, ids: bool) -> usize {
    usize::from(ws) * 2 + usize::from(ids)
}

/// How a flush ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Everything was written.
    All,
    /// The kernel took what it could; this much is left.
    Partly(usize),
}

impl Connection {
    /// A new connection of `kind`, holding `place`.
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        kind: Kind,
        place: Place,
        now: Instant,
    ) -> Self {
        let variant = variant(kind.is_ws(), false);
        Connection {
            stream,
            tls: None,
            peer,
            kind,
            transport: None,
            unread: Vec::new(),
            place: Some(place),
            queued: false,
            behind: false,
            variant,
            out: Vec::new(),
            written: 0,
            log_from: 0,
            log_to: 0,
            last_seen: now,
            accepted: now,
            writable: false,
            dirty: false,
            held: false,
            doomed: false,
            closing: None,
            shut: false,
            peer_eof: false,
        }
    }

    /// Bytes of output not yet taken by the kernel.
    pub fn pending(&self) -> usize {
        self.out.len() - self.written + (self.log_to - self.log_from)
    }

    /// Moves this connection's range of its broadcast log into `out`, so
    /// that a line queued next comes after it.
    pub fn take_log(&mut self, logs: &[Vec<u8>; VARIANTS]) {
        if self.log_to > self.log_from {
            let log = &logs[self.variant];
            self.out.extend_from_slice(&log[self.log_from..self.log_to]);
        }
        self.log_from = 0;
        self.log_to = 0;
    }

    /// Whether it takes more output: a connection being dropped or already
    /// shut takes none. Nothing is judged here: a receiver is judged too
    /// slow only after a flush, by what the kernel refused.
    pub fn takes(&self) -> bool {
        !self.doomed && !self.shut
    }

    /// Gives back its place, if it still holds one (it is leaving).
    pub fn leave(&mut self, places: &mut Places) {
        if let Some(p) = self.place.take() {
            places.give_back(p);
        }
    }

    /// Reads from the socket (through its TLS session, if any) into `buf`.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tls.as_deref_mut() {
            None => self.stream.read(buf),
            Some(tls) => tls::read(tls, &mut self.stream, buf),
        }
    }

    /// Whether its TLS session has records to send.
    fn tls_wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Writes its private bytes, then its range of `logs`, until done or
    /// `WouldBlock`: one `writev` per call (over TLS: one hand-over to the
    /// session, then its records); what was not taken moves into `out` (the
    /// logs are emptied once no connection is held for a round).
    pub fn write_out(&mut self, logs: &[Vec<u8>; VARIANTS]) -> io::Result<Flushed> {
        while self.written < self.out.len() || self.log_from < self.log_to || self.tls_wants_write()
        {
            let own = &self.out[self.written..];
            let shared = &logs[self.variant][self.log_from..self.log_to];
            let offered = own.len() + shared.len();
            let result = match (self.tls.as_deref_mut(), own.is_empty(), shared.is_empty()) {
                (Some(tls), _, _) => tls::write(tls, &mut self.stream, own, shared),
                (None, false, false) => self
                    .stream
                    .write_vectored(&[IoSlice::new(own), IoSlice::new(shared)]),
                (None, false, true) => self.stream.write(own),
                (None, ..) => self.stream.write(shared),
            };
            match result {
                Ok(0) if offered > 0 => {
                    return Err(io::Error::new(ErrorKind::WriteZero, "write returned 0"))
                }
                Ok(n) => {
                    let from_own = n.min(own.len());
                    self.written += from_own;
                    self.log_from += n - from_own;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.take_log(logs);
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            if !self.tls_wants_write() {
                return Ok(Flushed::All);
            }
        }
        // Compact only once the written part outweighs the rest: each byte
        // is moved at most once on average.
        if self.written >= self.out.len() - self.written {
            self.out.drain(..self.written);
            self.written = 0;
        }
        Ok(Flushed::Partly(self.out.len() - self.written))
    }

    /// Sends FIN (all said; the peer's FIN is awaited before closing), after
    /// a TLS close_notify.
    pub fn shut_write(&mut self) {
        self.shut = true;
        if let Some(tls) = self.tls.as_deref_mut() {
            tls::close_notify(tls, &mut self.stream);
        }
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Puts `c` (key `id`) on the list of connections to flush, once.
#[inline]
pub fn mark_dirty(c: &mut Connection, id: usize, dirty: &mut Vec<usize>) {
    if !c.dirty {
        c.dirty = true;
        dirty.push(id);
    }
}

/// What the loop counts as output is queued.
#[derive(Debug, Default)]
pub struct Tally {
    /// Bytes queued this turn (a broadcast counted once per variant), against
    /// the turn's budget.
    pub produced: usize,
    /// Lines queued for receivers since start (`chat_deliveries_total`).
    pub deliveries: u64,
}

/// The loop's [`Outbox`]: queues the room's lines for their receivers.
pub struct Wire<'a> {
    /// All connections.
    pub conns: &'a mut Slab<Connection>,
    /// This turn's broadcasts, one log per variant, each line stored once.
    pub logs: &'a mut [Vec<u8>; VARIANTS],
    /// A scratch buffer for lines that need two encodings.
    pub scratch: &'a mut Vec<u8>,
    /// Connections with output to flush this turn.
    pub dirty: &'a mut Vec<usize>,
    /// Places under the limits: a hung-up connection gives its back.
    pub places: &'a mut Places,
    /// What was queued.
    pub tally: &'a mut Tally,
    /// When hung-up connections must be gone.
    pub close_by: Instant,
    /// The WebSocket close code a hang-up sends (1000, or 1001 at shutdown).
    pub close_code: u16,
}

/// Appends public line `id` to `out` as connections of variant `v` see it.
fn encode(v: usize, id: u64, line: &[u8], out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    match v {
        0 => out.extend_from_slice(line),
        1 => with_id(id, line, out),
        2 => ws::encode_text(line, out),
        _ => {
            scratch.clear();
            with_id(id, line, scratch);
            ws::encode_text(scratch, out);
        }
    }
}

impl Wire<'_> {
    /// Queues bytes that are already encoded (an HTTP answer, a WebSocket
    /// control frame) for `to`, after what is queued for it.
    pub fn raw(&mut self, to: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(to) else {
            return;
        };
        if !c.takes() {
            return;
        }
        c.take_log(self.logs);
        c.out.extend_from_slice(bytes);
        mark_dirty(c, to, self.dirty);
    }
}

impl Outbox for Wire<'_> {
    #[inline]
    fn send(&mut self, to: ConnId, line: &[u8]) {
        self.tally.produced += line.len();
        let Some(c) = self.conns.get_mut(to) else {
            return;
        };
        if !c.takes() {
            return;
        }
        self.tally.deliveries += 1;
        c.take_log(self.logs);
        if c.kind.is_ws() {
            ws::encode_text(line, &mut c.out);
        } else {
            c.out.extend_from_slice(line);
        }
        mark_dirty(c, to, self.dirty);
    }

    /// Encodes `line` once per variant that has a receiver, into that
    /// variant's log; each receiver's range of its log grows over it (if
    /// the range ends where the line starts, as it does when every
    /// broadcast reaches everyone) or starts anew at it. A public line for
    /// one receiver (history replay) is written to its own buffer instead.
    fn public(&mut self, to: &[ConnId], id: u64, line: &[u8]) {
        self.tally.produced += line.len();
        if let [one] = to {
            let Some(c) = self.conns.get_mut(*one) else {
                return;
            };
            if !c.takes() {
                return;
            }
            self.tally.deliveries += 1;
            c.take_log(self.logs);
            encode(c.variant, id, line, &mut c.out, self.scratch);
            mark_dirty(c, *one, self.dirty);
            return;
        }
        let mut spans: [Option<(usize, usize)>; VARIANTS] = [None; VARIANTS];
        for &key in to {
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            if !c.takes() {
                continue;
            }
            self.tally.deliveries += 1;
            let v = c.variant;
            let (start, end) = *spans[v].get_or_insert_with(|| {
                let log = &mut self.logs[v];
                let start = log.len();
                encode(v, id, line, log, self.scratch);
                (start, log.len())
            });
            if c.log_to != start {
                // Its range (if any) ends before this line: a broadcast in
                // between was not for it. Keep the range's bytes in `out`
                // and start a new range here.
                c.take_log(self.logs);
                c.log_from = start;
            }
            c.log_to = end;
            mark_dirty(c, key, self.dirty);
        }
    }

    fn show_ids(&mut self, conn: ConnId, on: bool) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.take_log(self.logs);
            c.variant = variant(c.kind.is_ws(), on);
        }
    }

    fn hang_up(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(id) {
            if c.closing.is_none() && c.kind.is_ws() && c.takes() {
                c.take_log(self.logs);
                ws::encode_close(self.close_code, "", &mut c.out);
            }
            c.closing.get_or_insert(self.close_by);
            c.leave(self.places);
            mark_dirty(c, id, self.dirty);
        }
    }
}
