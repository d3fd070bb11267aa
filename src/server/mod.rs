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
//!
//! **Budgets, not drops.** Memory is bounded by what the loop *reads* per
//! turn: readable connections wait in a fair queue, each turn reads at most
//! [`PER_CONN_READS`] chunks from each and stops feeding lines once the
//! turn's output reaches its budget (the rest of a chunk waits in the
//! connection for the next turn). A connection is judged too slow only
//! after a flush, for output the kernel refused beyond `--max-pending`; a
//! reader that falls behind by half of that slows reading down for everyone
//! (short pauses, smaller turns) so it can catch up, while a reader that
//! stalls keeps falling behind and is dropped. So a burst from many senders
//! is read over several turns, and a reader who keeps up is never dropped.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::line::{Frame, LineReader};
use crate::room::{ConnId, Gone, Outbox, Room, RoomConfig};

mod places;
pub use places::{parse_exempt, Refused};
use places::{Place, Places};

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
    /// Open connections from one address beyond which new ones are refused;
    /// 0 is no limit.
    pub max_per_ip: usize,
    /// Addresses and prefixes not counted under `max_per_ip`.
    pub per_ip_exempt: Vec<ipnet::IpNet>,
    /// Join and leave notices go to everyone only up to this many users.
    pub announce_limit: usize,
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
            max_per_ip: 20,
            per_ip_exempt: parse_exempt("127.0.0.0/8,::1").expect("valid default"),
            announce_limit: 1000,
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
const READ_CHUNK: usize = 16 * 1024;
/// Reads per connection per turn before the others get theirs.
pub const PER_CONN_READS: usize = 4;
/// Bounds of one turn's output budget (bytes the room may queue per turn,
/// a broadcast counted once); within them it is a quarter of
/// `--max-pending`, so one turn can never push a reader past the limit.
const TURN_BUDGET_MIN: usize = 4 * 1024;
const TURN_BUDGET_MAX: usize = 64 * 1024;
/// While a reader is behind, reading pauses this long between turns, and a
/// turn's budget is a quarter of the usual one.
const BEHIND_PAUSE: Duration = Duration::from_millis(5);
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
    /// Bytes read but not fed to the room yet because the turn's budget ran
    /// out mid-chunk; fed first on its next turn (at most one chunk).
    unread: Vec<u8>,
    /// Its place under `--max-clients`/`--max-per-ip`; given back as soon as
    /// it leaves the room, before its last bytes drain.
    place: Option<Place>,
    /// Waiting in the loop's queue of connections with input to read.
    queued: bool,
    /// In the loop's list of readers that are behind (see `Server::behind`).
    behind: bool,
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

/// Whether `c` takes more output: a connection being dropped or already
/// shut takes none. Nothing is judged here: a receiver is judged too slow
/// only after a flush, by what the kernel refused.
#[inline]
fn takes(c: &Connection) -> bool {
    !c.doomed && !c.shut
}

/// Gives back `c`'s place, if it still holds one (it is leaving).
fn leave(c: &mut Connection, places: &mut Places) {
    if let Some(p) = c.place.take() {
        places.give_back(p);
    }
}

/// The loop's [`Outbox`]: queues the room's lines for their receivers.
struct Wire<'a> {
    /// All connections.
    conns: &'a mut Slab<Connection>,
    /// This iteration's broadcasts, each stored once.
    log: &'a mut Vec<u8>,
    /// Connections with output to flush this iteration.
    dirty: &'a mut Vec<usize>,
    /// Places under the limits: a hung-up connection gives its back.
    places: &'a mut Places,
    /// Bytes queued this turn (a broadcast counted once), against the budget.
    produced: &'a mut usize,
    /// When hung-up connections must be gone.
    close_by: Instant,
}

impl Outbox for Wire<'_> {
    #[inline]
    fn send(&mut self, to: ConnId, line: &[u8]) {
        *self.produced += line.len();
        let Some(c) = self.conns.get_mut(to) else {
            return;
        };
        if !takes(c) {
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
        *self.produced += line.len();
        let start = self.log.len();
        self.log.extend_from_slice(line);
        let end = self.log.len();
        for &id in to {
            let Some(c) = self.conns.get_mut(id) else {
                continue;
            };
            if !takes(c) {
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
            leave(c, self.places);
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
    /// Places under `--max-clients` and `--max-per-ip`.
    places: Places,
    /// The one read buffer, reused for every read.
    scratch: Vec<u8>,
    /// This iteration's broadcast lines, each stored once; emptied once
    /// every connection has been flushed.
    log: Vec<u8>,
    /// Connections with output to flush this iteration.
    dirty: Vec<usize>,
    /// Connections to drop this iteration.
    doomed: Vec<(usize, Gone)>,
    /// Connections with input not read yet, in the order they get their
    /// turn: a connection cut short by its share or the turn's budget goes
    /// to the back, so every sender gets its turn.
    ready: VecDeque<usize>,
    /// Bytes the room queued this turn (a broadcast counted once).
    produced: usize,
    /// The usual output budget of one turn (see [`TURN_BUDGET_MAX`]).
    turn_budget: usize,
    /// Readers whose unwritten output, after a flush, passed half of
    /// `--max-pending`: while one of them is behind, reading slows down.
    behind: Vec<usize>,
    /// Reading paused at this instant because a reader was behind.
    paused_at: Option<Instant>,
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
}

/// Runs a server on an already-bound listener until SIGINT/SIGTERM.
pub fn run(listener: std::net::TcpListener, config: Config) -> io::Result<()> {
    Server::new(listener, config)?.run()
}

/// How a connection's turn at reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Nothing more to read now (`WouldBlock`), or it is gone.
    Done,
    /// Its share or the turn's budget ran out: more waits.
    More,
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
            announce_limit: config.announce_limit,
        });
        let places = Places::new(
            config.max_clients,
            config.max_per_ip,
            config.per_ip_exempt.clone(),
        );
        Ok(Server {
            poll,
            listener: Some(listener),
            addr,
            conns: Slab::with_capacity(1024),
            room,
            places,
            scratch: vec![0; READ_CHUNK],
            log: Vec::with_capacity(LOG_KEEP),
            dirty: Vec::new(),
            doomed: Vec::new(),
            ready: VecDeque::new(),
            produced: 0,
            turn_budget: (config.max_pending / 4).clamp(TURN_BUDGET_MIN, TURN_BUDGET_MAX),
            behind: Vec::new(),
            paused_at: None,
            accept_paused: None,
            accept_errors: 0,
            signals,
            shutdown_by: None,
            next_sweep: Instant::now() + sweep_every,
            sweep_every,
            expired: Vec::new(),
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
                            self.want_read(key);
                        }
                        if event.is_writable() {
                            self.mark_dirty(key);
                        }
                    }
                }
            }
            self.read_turn(now);
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
        let mut next = self.next_sweep;
        if !self.ready.is_empty() {
            match self.paused_at {
                Some(t) => next = next.min(t + BEHIND_PAUSE),
                None => return Duration::ZERO,
            }
        }
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
                places: &mut self.places,
                produced: &mut self.produced,
                close_by: now + self.config.drain_timeout,
            },
        )
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            mark_dirty(c, key, &mut self.dirty);
        }
    }

    /// Puts `key` in the queue of connections with input to read, once.
    fn want_read(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            if !c.queued {
                c.queued = true;
                self.ready.push_back(key);
            }
        }
    }

    /// Half of `--max-pending`: a reader with more unwritten output than
    /// this after a flush is behind.
    fn behind_mark(&self) -> usize {
        self.config.max_pending / 2
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
    fn read_turn(&mut self, now: Instant) {
        self.produced = 0;
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
            if self.produced >= budget {
                break;
            }
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let Some(c) = self.conns.get_mut(key) else {
                continue; // closed meanwhile; the key may be reused later
            };
            c.queued = false;
            if self.read(key, now, budget) == Turn::More {
                self.want_read(key);
            }
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
        let place = match self.places.take(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                match why {
                    Refused::Full => log::warn!(
                        "refused {peer}: server full ({} connections)",
                        self.places.held()
                    ),
                    Refused::PerIp => {
                        log::warn!("refused {peer}: too many connections from its address")
                    }
                }
                let _ = stream.write(why.notice());
                let _ = stream.shutdown(Shutdown::Write);
                return;
            }
        };
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
            self.places.give_back(place);
            return;
        }
        entry.insert(Connection {
            stream,
            peer,
            reader: LineReader::new(self.config.max_line),
            unread: Vec::new(),
            place: Some(place),
            queued: false,
            behind: false,
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

    /// Reads `key` until `WouldBlock`, its share of the turn, or the turn's
    /// `budget`, feeding complete lines to the room.
    fn read(&mut self, key: usize, now: Instant, budget: usize) -> Turn {
        // Bytes left over from the last turn go first.
        if let Some(c) = self.conns.get_mut(key) {
            if !c.unread.is_empty() {
                let mut unread = std::mem::take(&mut c.unread);
                let used = self.feed(key, &unread, now, budget);
                unread.drain(..used);
                if let Some(c) = self.conns.get_mut(key) {
                    if !unread.is_empty() && self.room.has_session(key) {
                        c.unread = unread;
                        return Turn::More;
                    }
                }
            }
        }
        for _ in 0..PER_CONN_READS {
            if self.produced >= budget {
                return Turn::More;
            }
            let Some(conn) = self.conns.get_mut(key) else {
                return Turn::Done; // closed earlier in this iteration
            };
            if conn.doomed {
                return Turn::Done;
            }
            match conn.stream.read(&mut self.scratch) {
                Ok(0) if conn.closing.is_some() => {
                    self.doom(key, Gone::Disconnected, "closed by peer");
                    return Turn::Done;
                }
                Ok(0) => {
                    // EOF: the others are told now and its place is free;
                    // what is pending for this connection is still written
                    // (a half-closed peer, like `nc` fed from a file, reads
                    // it), then it is closed.
                    conn.peer_eof = true;
                    let peer = conn.peer;
                    let (room, mut wire) = self.wire(now);
                    match room.disconnect(key, Gone::Disconnected, &mut wire) {
                        Some(name) => log::info!("conn {key} ({name}) from {peer}: disconnected"),
                        None => log::info!("conn {key} from {peer}: disconnected"),
                    }
                    wire.hang_up(key);
                    return Turn::Done;
                }
                Ok(n) => {
                    conn.last_seen = now;
                    if conn.closing.is_some() {
                        continue; // hung up: input is discarded until EOF
                    }
                    let scratch = std::mem::take(&mut self.scratch);
                    let used = self.feed(key, &scratch[..n], now, budget);
                    if used < n && self.room.has_session(key) {
                        // The budget ran out mid-chunk: keep the rest.
                        if let Some(c) = self.conns.get_mut(key) {
                            c.unread.extend_from_slice(&scratch[used..n]);
                        }
                        self.scratch = scratch;
                        return Turn::More;
                    }
                    self.scratch = scratch;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Turn::Done,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("conn {key}: read: {e}");
                    self.doom(key, Gone::Disconnected, "read error");
                    return Turn::Done;
                }
            }
        }
        Turn::More
    }

    /// Feeds `data` read from `key` to its framer and the room, until the
    /// session ends or the turn's `budget` is spent; returns the bytes taken.
    fn feed(&mut self, key: usize, data: &[u8], now: Instant, budget: usize) -> usize {
        let Some(conn) = self.conns.get_mut(key) else {
            return data.len();
        };
        let mut reader = std::mem::replace(&mut conn.reader, LineReader::new(0));
        let (room, mut wire) = self.wire(now);
        let used = reader.feed(data, |frame| {
            match frame {
                Frame::Line(line) => room.line(key, line, now, &mut wire),
                Frame::TooLong => room.line_too_long(key, &mut wire),
            }
            room.has_session(key) && *wire.produced < budget
        });
        if let Some(conn) = self.conns.get_mut(key) {
            conn.reader = reader;
        }
        used
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
        // Judged here, after it was offered everything: what the kernel
        // refused beyond --max-pending means this reader does not read.
        let unwritten = conn.out.len() - conn.written;
        if unwritten > self.config.max_pending {
            self.doom(key, Gone::TooSlow, "output passed --max-pending");
            return;
        }
        if unwritten > self.config.max_pending / 2 && !conn.behind && conn.closing.is_none() {
            conn.behind = true;
            self.behind.push(key);
        }
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
        leave(&mut conn, &mut self.places);
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
