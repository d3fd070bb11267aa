//! The event loop: one thread, one `mio::Poll`, connections in a `Slab`.
//!
//! The loop only moves bytes. Each iteration it accepts, reads every readable
//! connection until `WouldBlock` and feeds the lines it completes to the
//! [`Room`]; the room's output is queued for its receivers (through
//! [`Wire`], the loop's [`Outbox`]); then every connection that got output is
//! flushed once, so many lines leave in one `write`. A broadcast is stored
//! once, in the iteration's broadcast log, and each receiver only notes the
//! range of the log it has to write: a delivery to a member costs a compare
//! and a store, not a copy; the flush hands the kernel its private bytes and
//! its range of the log in one `writev`. WRITABLE
//! interest is registered only while a connection has output the kernel did
//! not take. A periodic sweep closes silent connections and gives back
//! buffers that bursts left large.

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::line::{Frame, LineReader};
use crate::room::{ConnId, Gone, Outbox, Room, RoomConfig};

/// Everything the server can be told on its command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Close a user after this long without a byte from it.
    pub idle_timeout: Duration,
    /// Close a connection that has not chosen a name after this long.
    pub login_timeout: Duration,
    /// Longest line accepted, in bytes, without LF and CR.
    pub max_line: usize,
    /// Open connections, logged in or not, beyond which new ones are refused.
    pub max_clients: usize,
    /// Bytes of unwritten output after which a connection is dropped.
    pub max_pending: usize,
    /// Lines per second a user may sustain (burst twice that); 0 is no limit.
    pub rate: f64,
    /// Stop on SIGINT and SIGTERM (off when the server runs inside a test).
    pub handle_signals: bool,
    /// How long pending output may drain after a hang-up or at shutdown.
    pub drain_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            idle_timeout: Duration::from_secs(120),
            login_timeout: Duration::from_secs(30),
            max_line: 4096,
            max_clients: 10_000,
            max_pending: 256 * 1024,
            rate: 20.0,
            handle_signals: true,
            drain_timeout: Duration::from_secs(2),
        }
    }
}

/// Token of the listening socket.
const LISTENER: Token = Token(usize::MAX);
/// Token of the signal source.
const SIGNALS: Token = Token(usize::MAX - 1);

/// Bytes read per `read` call into the loop's one scratch buffer.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per connection per iteration before others get their turn.
const READS_PER_TURN: usize = 16;
/// How long accepting pauses after an error such as EMFILE.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// A write buffer with more capacity than this is given back when empty.
const KEEP_OUT_CAPACITY: usize = 4096;
/// Capacity the broadcast log keeps between iterations.
const LOG_KEEP: usize = 64 * 1024;
/// Listen backlog: a burst of thousands of connects must not hit SYN retries.
const BACKLOG: i32 = 4096;

/// One client connection.
struct Connection {
    /// The socket.
    stream: TcpStream,
    /// Peer address, for logs.
    peer: SocketAddr,
    /// Reassembles lines from what is read.
    reader: LineReader,
    /// Output not yet taken by the kernel starts at `out[written]`.
    out: Vec<u8>,
    /// How much of `out` has been written; advanced, never shifted per write.
    written: usize,
    /// Also pending, after `out`: the broadcast log's bytes from `log_from`
    /// to `log_to` (empty when equal). Only set during an iteration: a flush
    /// writes them or copies what the kernel did not take into `out`.
    log_from: usize,
    /// End of this connection's range of the broadcast log.
    log_to: usize,
    /// When the last byte arrived (idle timeout).
    last_seen: Instant,
    /// When it was accepted (login timeout).
    accepted: Instant,
    /// WRITABLE interest is registered (only while output is pending).
    writable: bool,
    /// Already in the loop's list of connections to flush.
    dirty: bool,
    /// Already in the loop's list of connections to drop.
    doomed: bool,
    /// Hung up: flush, send FIN, wait for the peer's FIN until this instant.
    closing: Option<Instant>,
    /// Our side has been shut down for writing.
    shut: bool,
    /// The peer sent EOF: once our pending output is written, close.
    peer_eof: bool,
}

impl Connection {
    fn pending(&self) -> usize {
        self.out.len() - self.written + (self.log_to - self.log_from)
    }

    /// Moves this connection's range of the broadcast log into `out`, so
    /// that a line queued next comes after it.
    fn take_log(&mut self, log: &[u8]) {
        if self.log_to > self.log_from {
            self.out.extend_from_slice(&log[self.log_from..self.log_to]);
        }
        self.log_from = 0;
        self.log_to = 0;
    }
}

/// Puts `c` (key `id`) on the list of connections to flush, once.
#[inline]
fn mark_dirty(c: &mut Connection, id: usize, dirty: &mut Vec<usize>) {
    if !c.dirty {
        c.dirty = true;
        dirty.push(id);
    }
}

/// Whether `c` (key `id`) takes `len` more bytes of output. A connection
/// being dropped or already shut takes none; one whose unwritten output
/// would pass `--max-pending` is doomed instead.
#[inline]
fn takes(
    c: &mut Connection,
    id: usize,
    len: usize,
    max_pending: usize,
    doomed: &mut Vec<(usize, Gone)>,
) -> bool {
    if c.doomed || c.shut {
        return false;
    }
    if c.pending() + len > max_pending {
        c.doomed = true;
        doomed.push((id, Gone::TooSlow));
        return false;
    }
    true
}

/// The loop's [`Outbox`]: queues the room's lines for their receivers.
struct Wire<'a> {
    /// All connections.
    conns: &'a mut Slab<Connection>,
    /// This iteration's broadcasts, each stored once.
    log: &'a mut Vec<u8>,
    /// Connections with output to flush this iteration.
    dirty: &'a mut Vec<usize>,
    /// Connections to drop this iteration, with the reason.
    doomed: &'a mut Vec<(usize, Gone)>,
    /// `--max-pending`.
    max_pending: usize,
    /// When hung-up connections must be gone.
    close_by: Instant,
}

impl Outbox for Wire<'_> {
    #[inline]
    fn send(&mut self, to: ConnId, line: &[u8]) {
        let Some(c) = self.conns.get_mut(to) else {
            return;
        };
        if !takes(c, to, line.len(), self.max_pending, self.doomed) {
            return;
        }
        c.take_log(self.log);
        c.out.extend_from_slice(line);
        mark_dirty(c, to, self.dirty);
    }

    /// Appends `line` to the broadcast log once; each receiver's range of
    /// the log grows over it (if the range ends where the line starts, as it
    /// does when every broadcast reaches everyone) or starts anew at it.
    fn broadcast(&mut self, to: &[ConnId], line: &[u8]) {
        let start = self.log.len();
        self.log.extend_from_slice(line);
        let end = self.log.len();
        for &id in to {
            let Some(c) = self.conns.get_mut(id) else {
                continue;
            };
            if !takes(c, id, line.len(), self.max_pending, self.doomed) {
                continue;
            }
            if c.log_to != start {
                // Its range (if any) ends before this line: a broadcast in
                // between was not for it. Keep the range's bytes in `out`
                // and start a new range here.
                c.take_log(self.log);
                c.log_from = start;
            }
            c.log_to = end;
            mark_dirty(c, id, self.dirty);
        }
    }

    fn hang_up(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(id) {
            c.closing.get_or_insert(self.close_by);
            mark_dirty(c, id, self.dirty);
        }
    }
}

/// The chat server: the poll loop and everything it owns.
pub struct Server {
    /// Limits and timeouts.
    config: Config,
    /// The one poll instance.
    poll: Poll,
    /// The listening socket; `None` once shutting down.
    listener: Option<TcpListener>,
    /// Address actually bound.
    addr: SocketAddr,
    /// Every open connection, keyed by its token.
    conns: Slab<Connection>,
    /// The room's rules and sessions.
    room: Room,
    /// The one read buffer, reused for every read.
    scratch: Vec<u8>,
    /// This iteration's broadcast lines, each stored once; emptied once
    /// every connection has been flushed.
    log: Vec<u8>,
    /// Connections with output to flush this iteration.
    dirty: Vec<usize>,
    /// Connections to drop this iteration.
    doomed: Vec<(usize, Gone)>,
    /// Connections whose read was cut short for fairness; read again next turn.
    read_again: Vec<usize>,
    /// Accepting is paused until then after an accept error.
    accept_paused: Option<Instant>,
    /// Accept errors since accepting last worked, for quiet logging.
    accept_errors: u64,
    /// SIGINT/SIGTERM as a poll source.
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// Shutting down: exit when every connection is gone or at this instant.
    shutdown_by: Option<Instant>,
    /// When the next sweep is due.
    next_sweep: Instant,
    /// Time between sweeps.
    sweep_every: Duration,
    /// Keys found by a sweep (reused list).
    expired: Vec<(usize, bool)>,
    /// Connections whose peer has sent EOF and that only finish writing:
    /// they no longer take a place under `--max-clients`.
    leaving: usize,
}

/// Runs a server on an already-bound listener until SIGINT/SIGTERM.
pub fn run(listener: std::net::TcpListener, config: Config) -> io::Result<()> {
    Server::new(listener, config)?.run()
}

impl Server {
    /// Sets up the loop around `listener` (bind port 0 in tests).
    pub fn new(listener: std::net::TcpListener, config: Config) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        raise_backlog(&listener);
        let addr = listener.local_addr()?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let signals = if config.handle_signals {
            let mut s = signal_hook_mio::v1_0::Signals::new([
                signal_hook::consts::SIGINT,
                signal_hook::consts::SIGTERM,
            ])?;
            poll.registry()
                .register(&mut s, SIGNALS, Interest::READABLE)?;
            Some(s)
        } else {
            None
        };
        let shortest = config.idle_timeout.min(config.login_timeout);
        let sweep_every = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let room = Room::new(RoomConfig {
            max_line: config.max_line,
            idle_timeout: config.idle_timeout,
            login_timeout: config.login_timeout,
            rate: config.rate,
        });
        Ok(Server {
            poll,
            listener: Some(listener),
            addr,
            conns: Slab::with_capacity(1024),
            room,
            scratch: vec![0; READ_CHUNK],
            log: Vec::with_capacity(LOG_KEEP),
            dirty: Vec::new(),
            doomed: Vec::new(),
            read_again: Vec::new(),
            accept_paused: None,
            accept_errors: 0,
            signals,
            shutdown_by: None,
            next_sweep: Instant::now() + sweep_every,
            sweep_every,
            expired: Vec::new(),
            leaving: 0,
            config,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs the loop until shutdown has finished.
    pub fn run(mut self) -> io::Result<()> {
        log::info!("listening on {}", self.addr);
        let port = self.addr.port();
        log::info!("join with: chat-client localhost {port}   (or: nc localhost {port})");
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            let mut accept_ready = false;
            for event in events.iter() {
                match event.token() {
                    // Accepted after the reads below, so a connection whose EOF
                    // arrived in the same batch no longer counts as open.
                    LISTENER => accept_ready = true,
                    SIGNALS => self.check_signals(now),
                    Token(key) => {
                        // Errors and hang-ups show up as readable: the read says which.
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(key, now);
                        }
                        if event.is_writable() {
                            self.mark_dirty(key);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.read_again) {
                self.read(key, now);
            }
            if accept_ready {
                self.accept(now);
            }
            if self.accept_paused.is_some_and(|t| now >= t) {
                self.accept_paused = None;
                self.accept(now);
            }
            if now >= self.next_sweep {
                self.sweep(now);
                self.next_sweep = now + self.sweep_every;
            }
            self.settle(now);
            if let Some(by) = self.shutdown_by {
                // Done once every connection has been told, flushed and sent
                // its FIN (or the drain time is up).
                if self.conns.iter().all(|(_, c)| c.shut) || now >= by {
                    let cut = self.conns.iter().filter(|(_, c)| !c.shut).count();
                    log::info!(
                        "shut down: {} connection(s) closed, {cut} with output not fully sent",
                        self.conns.len()
                    );
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        if !self.read_again.is_empty() {
            return Duration::ZERO;
        }
        let mut next = self.next_sweep;
        if let Some(t) = self.accept_paused {
            next = next.min(t);
        }
        if let Some(t) = self.shutdown_by {
            next = next.min(t);
        }
        next.saturating_duration_since(now)
    }

    fn wire(&mut self, now: Instant) -> (&mut Room, Wire<'_>) {
        (
            &mut self.room,
            Wire {
                conns: &mut self.conns,
                log: &mut self.log,
                dirty: &mut self.dirty,
                doomed: &mut self.doomed,
                max_pending: self.config.max_pending,
                close_by: now + self.config.drain_timeout,
            },
        )
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            mark_dirty(c, key, &mut self.dirty);
        }
    }

    /// Accepts until `WouldBlock`; an error that is not about one connection
    /// pauses accepting for a moment instead of spinning.
    fn accept(&mut self, now: Instant) {
        if self.accept_paused.is_some() {
            return;
        }
        // A connection that failed in this iteration's reads frees its place
        // before the newcomers are counted.
        self.close_doomed(now);
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    if self.accept_errors > 0 {
                        log::warn!(
                            "accepting again after {} failed accept(s)",
                            self.accept_errors
                        );
                        self.accept_errors = 0;
                    }
                    self.admit(stream, peer, now);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionAborted
                            | ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionRefused
                    ) =>
                {
                    log::debug!("accept: {e}");
                    continue;
                }
                Err(e) => {
                    if self.accept_errors == 0 {
                        log::warn!("accept failed: {e}; pausing accepts for {:?}", ACCEPT_PAUSE);
                    }
                    self.accept_errors += 1;
                    self.accept_paused = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        // Connections whose peer sent EOF only finish writing: they take
        // no place (doomed ones were closed before accepting).
        let open = self.conns.len() - self.leaving;
        if open >= self.config.max_clients {
            log::warn!("refused {peer}: server full ({open} connections)");
            let _ = stream.write(Room::full_notice());
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("{peer}: set_nodelay: {e}");
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            log::warn!("{peer}: register: {e}");
            return;
        }
        entry.insert(Connection {
            stream,
            peer,
            reader: LineReader::new(self.config.max_line),
            out: Vec::new(),
            written: 0,
            log_from: 0,
            log_to: 0,
            last_seen: now,
            accepted: now,
            writable: false,
            dirty: false,
            doomed: false,
            closing: None,
            shut: false,
            peer_eof: false,
        });
        log::info!("conn {key} connected from {peer}");
        let (room, mut wire) = self.wire(now);
        room.connect(key, &mut wire);
    }

    /// Reads `key` until `WouldBlock` (or its turn is over), feeding lines in.
    fn read(&mut self, key: usize, now: Instant) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(key) else {
                return; // stale key, or closed earlier in this iteration
            };
            if conn.doomed {
                return;
            }
            match conn.stream.read(&mut self.scratch) {
                Ok(0) if conn.closing.is_some() => {
                    self.doom(key, Gone::Disconnected, "closed by peer");
                    return;
                }
                Ok(0) => {
                    // EOF: the others are told now; what is pending for this
                    // connection is still written (a half-closed peer, like
                    // `nc` fed from a file, reads it), then it is closed.
                    conn.peer_eof = true;
                    self.leaving += 1;
                    let peer = conn.peer;
                    let (room, mut wire) = self.wire(now);
                    match room.disconnect(key, Gone::Disconnected, &mut wire) {
                        Some(name) => log::info!("conn {key} ({name}) from {peer}: disconnected"),
                        None => log::info!("conn {key} from {peer}: disconnected"),
                    }
                    wire.hang_up(key);
                    return;
                }
                Ok(n) => {
                    conn.last_seen = now;
                    if conn.closing.is_some() {
                        continue; // hung up: input is discarded until EOF
                    }
                    let mut reader = std::mem::replace(&mut conn.reader, LineReader::new(0));
                    let Server {
                        room,
                        conns,
                        log,
                        dirty,
                        doomed,
                        scratch,
                        config,
                        ..
                    } = self;
                    let mut wire = Wire {
                        conns,
                        log,
                        dirty,
                        doomed,
                        max_pending: config.max_pending,
                        close_by: now + config.drain_timeout,
                    };
                    reader.feed(&scratch[..n], |frame| {
                        match frame {
                            Frame::Line(line) => room.line(key, line, now, &mut wire),
                            Frame::TooLong => room.line_too_long(key, &mut wire),
                        }
                        room.has_session(key)
                    });
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.reader = reader;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("conn {key}: read: {e}");
                    self.doom(key, Gone::Disconnected, "read error");
                    return;
                }
            }
        }
        self.read_again.push(key);
    }

    fn doom(&mut self, key: usize, why: Gone, what: &str) {
        if let Some(c) = self.conns.get_mut(key) {
            if !c.doomed {
                log::debug!("conn {key}: {what}");
                c.doomed = true;
                self.doomed.push((key, why));
            }
        }
    }

    /// Writes what is pending for `key` until done or `WouldBlock`.
    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.dirty = false;
        if conn.doomed {
            return;
        }
        // Private bytes first, then this connection's range of the
        // broadcast log: one writev, no copy.
        while conn.written < conn.out.len() || conn.log_from < conn.log_to {
            let own = &conn.out[conn.written..];
            let shared = &self.log[conn.log_from..conn.log_to];
            let result = match (own.is_empty(), shared.is_empty()) {
                (false, false) => conn
                    .stream
                    .write_vectored(&[IoSlice::new(own), IoSlice::new(shared)]),
                (false, true) => conn.stream.write(own),
                _ => conn.stream.write(shared),
            };
            match result {
                Ok(0) => {
                    self.doom(key, Gone::Disconnected, "write returned 0");
                    return;
                }
                Ok(n) => {
                    let from_own = n.min(own.len());
                    conn.written += from_own;
                    conn.log_from += n - from_own;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("conn {key}: write: {e}");
                    self.doom(key, Gone::Disconnected, "write error");
                    return;
                }
            }
        }
        // What the kernel did not take moves into `out`: the log is emptied
        // at the end of the iteration.
        conn.take_log(&self.log);
        let want_writable = if conn.written == conn.out.len() {
            conn.out.clear();
            conn.written = 0;
            if conn.closing.is_some() && !conn.shut {
                // All said: send FIN, then wait for the peer's (lingering
                // close), so unread input does not turn our close into a RST
                // that could destroy the goodbye.
                conn.shut = true;
                let _ = conn.stream.shutdown(Shutdown::Write);
            }
            if conn.shut && conn.peer_eof {
                // Both sides are done: nothing to linger for.
                self.doom(key, Gone::Disconnected, "output written after EOF");
                return;
            }
            false
        } else {
            // Compact only once the written part outweighs the rest: each
            // byte is moved at most once on average.
            if conn.written >= conn.out.len() - conn.written {
                conn.out.drain(..conn.written);
                conn.written = 0;
            }
            true
        };
        if want_writable != conn.writable {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            match self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key), interest)
            {
                Ok(()) => conn.writable = want_writable,
                Err(e) => {
                    log::warn!("conn {key}: reregister: {e}");
                    self.doom(key, Gone::Disconnected, "reregister failed");
                }
            }
        }
    }

    /// Closes the connections doomed so far (their notices go out with the
    /// next flush).
    fn close_doomed(&mut self, now: Instant) {
        for (key, why) in std::mem::take(&mut self.doomed) {
            self.close(key, why, now);
        }
    }

    /// Flushes every dirty connection once and drops the doomed ones, until
    /// neither is left (a drop may tell others, which dirties them).
    fn settle(&mut self, now: Instant) {
        loop {
            if !self.doomed.is_empty() {
                self.close_doomed(now);
                continue;
            }
            if self.dirty.is_empty() {
                // Every range of the log has been written or copied out.
                self.log.clear();
                if self.log.capacity() > 4 * LOG_KEEP {
                    self.log.shrink_to(LOG_KEEP);
                }
                return;
            }
            let mut dirty = std::mem::take(&mut self.dirty);
            for &key in &dirty {
                self.flush(key);
            }
            dirty.clear();
            if self.dirty.is_empty() {
                self.dirty = dirty; // keep the capacity
            }
        }
    }

    /// Removes `key`: deregisters it, tells the room (which tells the
    /// others), logs, and closes the socket.
    fn close(&mut self, key: usize, why: Gone, now: Instant) {
        if !self.conns.contains(key) {
            return;
        }
        let mut conn = self.conns.remove(key);
        if conn.peer_eof {
            self.leaving -= 1;
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        // After the shutdown notice, nobody is told about the others leaving.
        let why = if self.shutdown_by.is_some() {
            Gone::Shutdown
        } else {
            why
        };
        let (room, mut wire) = self.wire(now);
        let name = room.disconnect(key, why, &mut wire);
        let reason = match (why, conn.closing.is_some()) {
            (_, true) => "closed after hang-up",
            (Gone::TooSlow, _) => "dropped: output passed --max-pending",
            (Gone::Shutdown, _) => "closed at shutdown",
            (Gone::Disconnected, _) => "disconnected",
        };
        if conn.peer_eof {
            // Its disconnect was logged when the EOF arrived.
            log::debug!("conn {key} from {}: closed after EOF", conn.peer);
            return;
        }
        match name {
            Some(name) => log::info!("conn {key} ({name}) from {}: {reason}", conn.peer),
            None => log::info!("conn {key} from {}: {reason}", conn.peer),
        }
    }

    /// Times out silent connections, finishes overdue hang-ups and gives
    /// back buffers that bursts left large.
    fn sweep(&mut self, now: Instant) {
        let mut expired = std::mem::take(&mut self.expired);
        let (idle, login) = (self.config.idle_timeout, self.config.login_timeout);
        let mut freed = 0usize;
        for (key, c) in self.conns.iter_mut() {
            if let Some(by) = c.closing {
                if now >= by {
                    expired.push((key, true));
                }
            } else if self.room.is_member(key) {
                if now.duration_since(c.last_seen) >= idle {
                    expired.push((key, false));
                }
            } else if now.duration_since(c.accepted) >= login {
                expired.push((key, false));
            }
            if c.pending() == 0 && c.out.capacity() > KEEP_OUT_CAPACITY {
                freed += c.out.capacity();
                c.out = Vec::new();
            }
        }
        for &(key, overdue) in &expired {
            if overdue {
                self.close(key, Gone::Disconnected, now);
            } else {
                log::info!("conn {key}: timed out");
                let (room, mut wire) = self.wire(now);
                room.timed_out(key, &mut wire);
            }
        }
        expired.clear();
        self.expired = expired;
        if freed >= 1 << 20 {
            trim_heap();
        }
    }

    fn check_signals(&mut self, now: Instant) {
        let mut got = None;
        if let Some(signals) = self.signals.as_mut() {
            for sig in signals.pending() {
                got = Some(sig);
            }
        }
        if let Some(sig) = got {
            self.begin_shutdown(
                now,
                if sig == signal_hook::consts::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                },
            );
        }
    }

    /// Stops accepting, tells every connection, and lets output drain for
    /// at most `drain_timeout`.
    fn begin_shutdown(&mut self, now: Instant, why: &str) {
        if self.shutdown_by.is_some() {
            return;
        }
        log::info!(
            "{why}: shutting down, {} connection(s) open",
            self.conns.len()
        );
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.shutdown_by = Some(now + self.config.drain_timeout);
        let (room, mut wire) = self.wire(now);
        room.shutdown(&mut wire);
        // Connections without a session (already hanging up) keep their deadline.
    }
}

/// Raises the listen backlog of an already-listening socket (Linux allows
/// `listen` again), so a connect storm is queued instead of retried.
fn raise_backlog(listener: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: listen(2) on a descriptor we own; failure only leaves the old backlog.
    unsafe {
        libc::listen(listener.as_raw_fd(), BACKLOG);
    }
}

/// Gives freed heap memory back to the OS after large buffers were released.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
