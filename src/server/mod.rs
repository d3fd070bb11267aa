//! The event loop: one thread, one `mio::Poll`, connections in a `Slab`.
//!
//! The loop only moves bytes. Each turn it reads the connections that have
//! input (a fair queue, within a budget), feeds the lines it completes to
//! the [`Room`]; the room's output is queued for its receivers (through
//! `conn::Wire`, the loop's [`Outbox`](crate::room::Outbox)); it writes
//! the turn's new public lines to the history database, if there is one;
//! then every connection that got output is flushed once, so many lines
//! leave in one `writev`. A broadcast is stored once per encoding, in the
//! turn's broadcast logs, and each receiver only notes the range of its log
//! it has to write: a delivery to a member costs a compare and a store, not
//! a copy. WRITABLE interest is registered only while a connection has
//! output the kernel did not take. A periodic sweep closes silent
//! connections and gives back buffers that bursts left large.
//!
//! **Rounds in big rooms.** A write costs a syscall per connection however
//! little it carries, so after a flush of thousands of connections the room's
//! output for members is held for as long as that flush took and then
//! written in one round (output meant for one connection never waits; see
//! `Server::settle`): a mass reconnect or a busy room of thousands pays one
//! write per member for many lines instead of one per line.
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
//!
//! - `conn`: a connection, its kinds (TCP lines, HTTP, WebSocket), its
//!   output, and the `conn::Wire` outbox.
//! - `read`: the turn's reading, per kind of connection.
//! - `web`: HTTP answers, WebSocket frames, `/metrics`.
//! - `places`: `--max-clients` and `--max-per-ip`.
//! - [`tls`]: the certificate and key, and TLS sessions under the
//!   transports (a TLS port for lines; HTTPS and WSS on the web port).
//! - `cluster`: the Redis links of a cluster in the same poll.

pub mod cli;
mod cluster;
mod conn;
mod places;
mod read;
pub mod tls;
mod web;

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::line::LineReader;
use crate::room::{Gone, History, Room, RoomConfig};
use crate::store::{Loaded, Store};
use crate::web::http::HeadReader;
use crate::web::ws;
use conn::{mark_dirty, Connection, Flushed, Kind, Tally, Wire, VARIANTS};
use places::Places;
pub use places::{parse_exempt, Refused};

/// Everything the server can be told on its command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Close a user after this long without a byte from it.
    pub idle_timeout: Duration,
    /// Close a connection that has not chosen a name (or sent its HTTP
    /// request) after this long.
    pub login_timeout: Duration,
    /// Longest line accepted, in bytes, without LF and CR.
    pub max_line: usize,
    /// Open connections, logged in or not, beyond which new ones are refused.
    pub max_clients: usize,
    /// Bytes of output the kernel refused, after a flush, beyond which a
    /// connection is dropped as too slow.
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
    /// Public lines kept for newcomers, `/history` and `/since`.
    pub history: usize,
    /// Kept lines a newcomer gets (at most `history`).
    pub join_history: usize,
    /// `--web-origin`: when not empty, a WebSocket upgrade needs one of
    /// these `Origin`s.
    pub web_origins: Vec<String>,
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
            history: 200,
            join_history: 20,
            web_origins: Vec::new(),
            handle_signals: true,
            drain_timeout: Duration::from_secs(2),
        }
    }
}

/// Where the room's record lives: in memory, in an SQLite file, or in Redis
/// (shared by every server of the cluster).
pub enum Backend {
    /// Memory only.
    Memory,
    /// `--history-db`: the store (boxed, like the cluster: both are large
    /// and made once) and what it loaded.
    Disk(Box<Store>, Loaded),
    /// `--redis`: the cluster driver (boxed: it is large and made once) and
    /// what it loaded.
    Redis(Box<crate::cluster::Cluster>, crate::cluster::Loaded),
}

/// The sockets the server listens on, bound by the caller (port 0 in tests).
#[derive(Debug)]
pub struct Listeners {
    /// The line protocol (`--port`); `None` with `--no-plain`.
    pub chat: Option<std::net::TcpListener>,
    /// HTTP and WebSocket (`--web-port`); `None` with `--no-web`. HTTPS and
    /// WSS when `tls` is given.
    pub web: Option<std::net::TcpListener>,
    /// The line protocol over TLS (`--tls-port`) and the certificate for it
    /// and the web side; `None` without `--tls-cert`.
    pub tls: Option<(std::net::TcpListener, tls::Certs)>,
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// The line protocol, plain (`--port`).
    Chat,
    /// The line protocol over TLS (`--tls-port`).
    TlsChat,
    /// The web side (HTTPS when the server has a certificate).
    Web,
}

/// Token of the line-protocol listener.
const LISTENER: Token = Token(usize::MAX);
/// Token of the signal source.
const SIGNALS: Token = Token(usize::MAX - 1);
/// Token of the web listener.
const WEB_LISTENER: Token = Token(usize::MAX - 2);
/// Token of the TLS line-protocol listener.
const TLS_LISTENER: Token = Token(usize::MAX - 5);

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
/// Freed buffers add up to this much before the heap is trimmed.
const TRIM_AFTER: usize = 1 << 20;
/// A line reader's buffer with more capacity than this is given back by
/// the sweep when empty: every WebSocket message passes through it (its end
/// is an LF fed after it), so it would otherwise keep the longest message
/// (up to 1 KiB) a user ever sent.
const KEEP_LINE_CAPACITY: usize = 128;
/// Capacity each broadcast log keeps between turns.
const LOG_KEEP: usize = 64 * 1024;
/// A flush of at least this many connections is a *round*: until as long
/// after it as it took, room output for members (not output meant for one
/// connection) is held for the next round instead of written at once.
const ROUND_MIN: usize = 2048;
/// A connection holds at most this much room output for the next round;
/// beyond it, it is flushed at once.
const HOLD_MAX: usize = 16 * 1024;
/// Held output is written at once when the loop has had nothing to do for
/// this long: holding pays only while more input keeps coming.
const HOLD_IDLE: Duration = Duration::from_millis(1);
/// Listen backlog: a burst of thousands of connects must not hit SYN retries.
const BACKLOG: i32 = 4096;

/// What the server counts for the log and `/metrics`, beyond the room's
/// own counters.
#[derive(Debug, Default)]
struct Stats {
    /// Open chat connections over TCP (logged in or not).
    tcp: u64,
    /// Open chat connections over WebSocket (logged in or not).
    ws: u64,
    /// Connections dropped as too slow to read.
    too_slow: u64,
    /// Users closed by the idle timeout.
    idle: u64,
    /// Connections closed without a name (or an HTTP request) in time.
    login_timeout: u64,
    /// WebSocket connections failed for breaking the protocol.
    protocol: u64,
    /// Connections refused: server full.
    full: u64,
    /// Connections refused: too many from one address.
    per_ip: u64,
}

/// How often a history database that keeps failing is mentioned again in
/// the log, after the first failure was logged.
const DISK_REMINDER: Duration = Duration::from_secs(60);

/// The history database and the loop's view of its health.
struct Disk {
    /// The open store.
    store: Store,
    /// Writes that failed in a row, 0 while all is well.
    failing: u64,
    /// When the failure was last logged: the first failed write of a run is
    /// logged at once, then a reminder at most every [`DISK_REMINDER`], so
    /// a full disk is loud in the log without a line per turn or per sweep.
    reported: Option<Instant>,
}

impl Disk {
    /// Counts a failed write and logs it if it is the first of a run or a
    /// reminder is due.
    fn failed(&mut self, e: &crate::store::WriteError, now: Instant) {
        self.failing += 1;
        if self.reported.is_some_and(|t| now < t + DISK_REMINDER) {
            return;
        }
        self.reported = Some(now);
        if self.failing == 1 {
            log::error!("{e}; serving from memory, will retry");
        } else {
            log::error!(
                "{e}; {} writes failed in a row, serving from memory",
                self.failing
            );
        }
    }

    /// A write succeeded (or there was nothing to write).
    fn ok(&mut self) {
        self.failing = 0;
        self.reported = None;
    }
}

/// The chat server: the poll loop and everything it owns.
pub struct Server {
    /// Limits and timeouts.
    config: Config,
    /// The one poll instance.
    poll: Poll,
    /// The line-protocol listener; `None` with `--no-plain` or once
    /// shutting down.
    listener: Option<TcpListener>,
    /// The web listener; `None` with `--no-web` or once shutting down.
    web_listener: Option<TcpListener>,
    /// The TLS line-protocol listener; `None` without a certificate or once
    /// shutting down.
    tls_listener: Option<TcpListener>,
    /// Address the line-protocol listener is bound to.
    addr: Option<SocketAddr>,
    /// Address the web listener is bound to.
    web_addr: Option<SocketAddr>,
    /// Address the TLS line-protocol listener is bound to.
    tls_addr: Option<SocketAddr>,
    /// The certificate and key (re-read on SIGHUP); with them the TLS port
    /// and the web side speak TLS.
    certs: Option<tls::Certs>,
    /// Every open connection, keyed by its token.
    conns: Slab<Connection>,
    /// The room's rules and sessions.
    room: Room,
    /// Places under `--max-clients` and `--max-per-ip`.
    places: Places,
    /// The history database (`--history-db`), if any.
    disk: Option<Disk>,
    /// The cluster (`--redis`), if any.
    cluster: Option<Box<crate::cluster::Cluster>>,
    /// The one read buffer, reused for every read.
    scratch: Vec<u8>,
    /// A scratch buffer for encoding a line twice (ids and WebSocket).
    encode_scratch: Vec<u8>,
    /// This turn's broadcast lines (and, while connections are held for a
    /// round, those since the last round), one log per way a line can
    /// look, each line stored once; emptied once every connection has been
    /// flushed and none is held.
    logs: [Vec<u8>; VARIANTS],
    /// Connections with output to flush this turn.
    dirty: Vec<usize>,
    /// Connections whose room output waits for the next round (see
    /// [`ROUND_MIN`]); a key whose connection is no longer `held` is skipped.
    held: Vec<usize>,
    /// Until then, room output for members is held: as long after the last
    /// round as that round took, so in a big, busy room flushing takes at
    /// most about half the loop's time and each write carries many lines.
    next_round: Instant,
    /// Connections to drop this turn.
    doomed: Vec<(usize, Gone)>,
    /// Connections with input not read yet, in the order they get their
    /// turn: a connection cut short by its share or the turn's budget goes
    /// to the back, so every sender gets its turn.
    ready: VecDeque<usize>,
    /// What was queued this turn (against the budget) and in all.
    tally: Tally,
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
    /// Counts for the log and `/metrics`.
    stats: Stats,
    /// When the server started (`chat_uptime_seconds`).
    started: Instant,
}

/// Runs a server on already-bound listeners until SIGINT/SIGTERM, with its
/// record in `backend` (opened by the caller, so a bad file or an absent
/// Redis stops the program before anything listens).
pub fn run(listeners: Listeners, config: Config, backend: Backend) -> io::Result<()> {
    Server::new(listeners, config, backend)?.run()
}

impl Server {
    /// Sets up the loop around `listeners`; `store` with the lines it loaded.
    pub fn new(listeners: Listeners, config: Config, backend: Backend) -> io::Result<Server> {
        let poll = Poll::new()?;
        let (listener, addr) = listen_opt(&poll, listeners.chat, LISTENER)?;
        let (web_listener, web_addr) = listen_opt(&poll, listeners.web, WEB_LISTENER)?;
        let (tls_listener, certs) = listeners.tls.unzip();
        let (tls_listener, tls_addr) = listen_opt(&poll, tls_listener, TLS_LISTENER)?;
        let signals = if config.handle_signals {
            let mut wanted = vec![signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];
            if certs.is_some() {
                // Re-read the certificate (renewal without a restart).
                wanted.push(signal_hook::consts::SIGHUP);
            }
            let mut s = signal_hook_mio::v1_0::Signals::new(wanted)?;
            poll.registry()
                .register(&mut s, SIGNALS, Interest::READABLE)?;
            Some(s)
        } else {
            None
        };
        let shortest = config.idle_timeout.min(config.login_timeout);
        let sweep_every = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let room_config = RoomConfig {
            max_line: config.max_line,
            idle_timeout: config.idle_timeout,
            login_timeout: config.login_timeout,
            rate: config.rate,
            announce_limit: config.announce_limit,
            join_history: config.join_history.min(config.history),
        };
        let (room, disk, cluster) = match backend {
            Backend::Memory => (
                Room::with_history(room_config, History::new(config.history, 0)),
                None,
                None,
            ),
            Backend::Disk(store, loaded) => {
                let mut history = History::new(config.history, loaded.last_id).with_journal();
                history.restore(
                    loaded
                        .lines
                        .into_iter()
                        .map(|l| (l.id, format!("{}\n", l.text).into_bytes().into())),
                );
                log::info!(
                    "history: {} line(s) loaded, last id {}",
                    history.len(),
                    history.last_id()
                );
                let disk = Disk {
                    store: *store,
                    failing: 0,
                    reported: None,
                };
                (Room::with_history(room_config, history), Some(disk), None)
            }
            Backend::Redis(mut cluster, loaded) => {
                let mut history = History::new(config.history, loaded.last_id);
                history.restore(loaded.lines);
                let node = cluster.node().to_owned();
                let mut room = Room::with_cluster(room_config, history, node);
                room.set_remote(loaded.users);
                cluster.register(poll.registry(), cluster::REDIS_CMD, cluster::REDIS_SUB)?;
                cluster.begin(&mut room);
                (room, None, Some(cluster))
            }
        };
        let places = Places::new(
            config.max_clients,
            config.max_per_ip,
            config.per_ip_exempt.clone(),
        );
        Ok(Server {
            poll,
            listener,
            web_listener,
            tls_listener,
            addr,
            web_addr,
            tls_addr,
            certs,
            conns: Slab::with_capacity(1024),
            room,
            places,
            disk,
            cluster,
            scratch: vec![0; READ_CHUNK],
            encode_scratch: Vec::new(),
            logs: std::array::from_fn(|_| Vec::with_capacity(LOG_KEEP)),
            dirty: Vec::new(),
            held: Vec::new(),
            next_round: Instant::now(),
            doomed: Vec::new(),
            ready: VecDeque::new(),
            tally: Tally::default(),
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
            stats: Stats::default(),
            started: Instant::now(),
            config,
        })
    }

    /// The address the line-protocol listener is bound to, if any.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The address the TLS line-protocol listener is bound to, if any.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The address the web listener is bound to, if any.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web_addr
    }

    /// Runs the loop until shutdown has finished.
    pub fn run(mut self) -> io::Result<()> {
        if let Some(addr) = self.addr {
            log::info!("listening on {addr}");
            let port = addr.port();
            log::info!("join with: chat-client localhost {port}   (or: nc localhost {port})");
        }
        if let Some(addr) = self.tls_addr {
            log::info!("listening for TLS on {addr}");
            let port = addr.port();
            log::info!(
                "join with: chat-client --tls HOST {port}   (HOST: a name the certificate is for)"
            );
        }
        if let Some(web) = self.web_addr {
            let scheme = if self.certs.is_some() {
                "https"
            } else {
                "http"
            };
            log::info!(
                "web on {web}: open {scheme}://localhost:{}/ in a browser",
                web.port()
            );
        }
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
            let mut accept_ready = [false; 3];
            for event in events.iter() {
                match event.token() {
                    // Accepted after the reads below, so a connection whose EOF
                    // arrived in the same batch no longer counts as open.
                    LISTENER => accept_ready[0] = true,
                    WEB_LISTENER => accept_ready[1] = true,
                    TLS_LISTENER => accept_ready[2] = true,
                    SIGNALS => self.check_signals(now),
                    cluster::REDIS_CMD => self.redis_ready(true, now),
                    cluster::REDIS_SUB => self.redis_ready(false, now),
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
            let doors = [Door::Chat, Door::Web, Door::TlsChat];
            for (door, _) in doors.into_iter().zip(accept_ready).filter(|(_, r)| *r) {
                self.accept(now, door);
            }
            if self.accept_paused.is_some_and(|t| now >= t) {
                self.accept_paused = None;
                for door in doors {
                    self.accept(now, door);
                }
            }
            if now >= self.next_sweep {
                self.sweep(now);
                self.next_sweep = now + self.sweep_every;
            }
            self.redis_turn(now);
            self.settle(now, events.is_empty());
            if let Some(by) = self.shutdown_by {
                // Done once every connection has been told, flushed and sent
                // its FIN, and the cluster has its users back (or the drain
                // time is up).
                let settled = self.cluster.as_ref().is_none_or(|c| c.settled());
                if (settled && self.conns.iter().all(|(_, c)| c.shut)) || now >= by {
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
        if !self.ready.is_empty() || self.redis_backlog() {
            match self.paused_at {
                Some(t) => next = next.min(t + BEHIND_PAUSE),
                None => return Duration::ZERO,
            }
        }
        if let Some(t) = self.accept_paused {
            next = next.min(t);
        }
        if !self.held.is_empty() {
            next = next.min(self.next_round).min(now + HOLD_IDLE);
        }
        if let Some(t) = self.shutdown_by {
            next = next.min(t);
        }
        if let Some(c) = &self.cluster {
            next = next.min(c.next_due());
        }
        next.saturating_duration_since(now)
    }

    /// The room and the outbox its output goes to.
    fn wire(&mut self, now: Instant) -> (&mut Room, Wire<'_>) {
        (
            &mut self.room,
            Wire {
                conns: &mut self.conns,
                logs: &mut self.logs,
                scratch: &mut self.encode_scratch,
                dirty: &mut self.dirty,
                places: &mut self.places,
                tally: &mut self.tally,
                close_by: now + self.config.drain_timeout,
                close_code: if self.shutdown_by.is_some() {
                    ws::GOING_AWAY
                } else {
                    ws::NORMAL
                },
            },
        )
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            mark_dirty(c, key, &mut self.dirty);
        }
    }

    /// Accepts until `WouldBlock` on the listener of `door`; an error that
    /// is not about one connection pauses accepting for a moment instead of
    /// spinning.
    fn accept(&mut self, now: Instant, door: Door) {
        if self.accept_paused.is_some() {
            return;
        }
        // A connection that failed in this turn's reads frees its place
        // before the newcomers are counted.
        self.close_doomed(now);
        loop {
            let listener = match door {
                Door::Chat => self.listener.as_ref(),
                Door::TlsChat => self.tls_listener.as_ref(),
                Door::Web => self.web_listener.as_ref(),
            };
            let Some(listener) = listener else {
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
                    self.admit(stream, peer, now, door);
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

    /// Gives an accepted connection its place (or refuses it), registers it
    /// and greets it (TCP), or waits for its request (web) or the end of its
    /// TLS handshake.
    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant, door: Door) {
        let web = door == Door::Web;
        let tls = self.certs.is_some() && door != Door::Chat;
        let place = match self.places.take(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                match why {
                    Refused::Full => {
                        self.stats.full += 1;
                        log::warn!(
                            "refused {peer}: server full ({} connections)",
                            self.places.held()
                        );
                    }
                    Refused::PerIp => {
                        self.stats.per_ip += 1;
                        log::warn!("refused {peer}: too many connections from its address");
                    }
                }
                let answer = match (web, why) {
                    (false, _) => why.notice().to_vec(),
                    (true, Refused::Full) => crate::web::http::full(),
                    (true, Refused::PerIp) => crate::web::http::too_many(),
                };
                // Over TLS the answer would need a handshake, which costs
                // what the limit is there to keep: the peer is just closed.
                if !tls {
                    let _ = stream.write(&answer);
                }
                let _ = stream.shutdown(Shutdown::Write);
                return;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("{peer}: set_nodelay: {e}");
        }
        let session = self.certs.as_ref().filter(|_| tls).map(|c| c.session());
        let session = match session.transpose() {
            Ok(s) => s.map(Box::new),
            Err(e) => {
                log::error!("{peer}: cannot start a TLS session: {e}");
                self.places.give_back(place);
                return;
            }
        };
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
        let kind = if web {
            Kind::Http(HeadReader::new())
        } else {
            Kind::Lines(LineReader::new(self.config.max_line))
        };
        let mut conn = Connection::new(stream, peer, kind, place, now);
        let plain_chat = !web && !tls;
        if plain_chat {
            conn.transport = Some(conn::Transport::Tcp);
        }
        conn.tls = session;
        entry.insert(conn);
        if !plain_chat {
            // Web: waits for its request; TLS: for its handshake (`tls`).
            log::debug!("conn {key} ({door:?}) connected from {peer}");
            return;
        }
        self.stats.tcp += 1;
        log::info!("conn {key} connected from {peer}");
        let (room, mut wire) = self.wire(now);
        room.connect(key, &mut wire);
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

    /// Writes what is pending for `key` until done or `WouldBlock`, then
    /// judges it: output the kernel refused beyond `--max-pending` means
    /// this reader does not read.
    fn flush(&mut self, key: usize) {
        let mark = self.behind_mark();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.dirty = false;
        conn.held = false;
        if conn.doomed {
            return;
        }
        let want_writable = match conn.write_out(&self.logs) {
            Err(e) => {
                log::debug!("conn {key}: write: {e}");
                self.doom(key, Gone::Disconnected, "write error");
                return;
            }
            Ok(Flushed::Partly(left)) if left > self.config.max_pending => {
                self.doom(key, Gone::TooSlow, "output passed --max-pending");
                return;
            }
            Ok(Flushed::Partly(left)) => {
                if left > mark && !conn.behind && conn.closing.is_none() {
                    conn.behind = true;
                    self.behind.push(key);
                }
                true
            }
            Ok(Flushed::All) => {
                if conn.closing.is_some() && !conn.shut {
                    // All said: send FIN, then wait for the peer's (lingering
                    // close), so unread input does not turn our close into a
                    // RST that could destroy the goodbye.
                    conn.shut_write();
                }
                if conn.shut && conn.peer_eof {
                    // Both sides are done: nothing to linger for.
                    self.doom(key, Gone::Disconnected, "output written after EOF");
                    return;
                }
                false
            }
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

    /// Half of `--max-pending`: a reader with more unwritten output than
    /// this after a flush is behind.
    fn behind_mark(&self) -> usize {
        self.config.max_pending / 2
    }

    /// Closes the connections doomed so far (their notices go out with the
    /// next flush).
    fn close_doomed(&mut self, now: Instant) {
        for (key, why) in std::mem::take(&mut self.doomed) {
            self.close(key, why, now);
        }
    }

    /// Writes the turn's new public lines to disk, flushes every dirty
    /// connection once and drops the doomed ones, until neither is left (a
    /// drop may tell others, which dirties them). The lines reach the disk
    /// before any socket, so a line anyone received survives `kill -9`.
    ///
    /// **Rounds.** Writing costs a syscall per connection, whatever it
    /// carries, so in a room of thousands a turn's flush is long (about
    /// 5 µs per connection here) and a busy room would spend every turn
    /// writing a few lines to everyone. After a flush of [`ROUND_MIN`] or
    /// more connections (a round), room output for members is held (their
    /// ranges of the logs, which are kept meanwhile: nothing is copied) for
    /// as long as that round took; then the next round writes it all, one
    /// write per connection for many lines. A connection with private bytes
    /// (a reply, a private message, a newcomer's welcome and history, a
    /// hang-up, or what the kernel refused) is never held, nor is more than
    /// [`HOLD_MAX`] per connection, nor anything during shutdown, nor
    /// anything once the loop was `idle` for [`HOLD_IDLE`] (no more input
    /// to wait for). So a line in a big, busy room waits at most one
    /// round's time more, one in a quiet big room about a millisecond, and
    /// small rooms never have rounds.
    fn settle(&mut self, now: Instant, idle: bool) {
        let hold = self.shutdown_by.is_none() && now < self.next_round && !idle;
        let mut released = 0;
        if !hold && !self.held.is_empty() {
            // The round is due: every held connection is flushed with the rest.
            for key in std::mem::take(&mut self.held) {
                if let Some(c) = self.conns.get_mut(key) {
                    if c.held {
                        c.held = false;
                        released += 1;
                        mark_dirty(c, key, &mut self.dirty);
                    }
                }
            }
        }
        let started = Instant::now();
        let mut flushed = 0;
        loop {
            if !self.doomed.is_empty() {
                self.close_doomed(now);
                continue;
            }
            self.save_history(now);
            if self.dirty.is_empty() {
                if self.held.is_empty() {
                    // Every range of the logs has been written or copied out.
                    for log in &mut self.logs {
                        log.clear();
                        if log.capacity() > 4 * LOG_KEEP {
                            log.shrink_to(LOG_KEEP);
                        }
                    }
                }
                break;
            }
            let mut dirty = std::mem::take(&mut self.dirty);
            for &key in &dirty {
                if !(hold && self.try_hold(key)) {
                    self.flush(key);
                    flushed += 1;
                }
            }
            dirty.clear();
            if self.dirty.is_empty() {
                self.dirty = dirty; // keep the capacity
            }
        }
        if flushed >= ROUND_MIN {
            let end = Instant::now();
            let took = end - started;
            self.next_round = end + took;
            log::debug!(
                "round: {flushed} connections flushed ({released} held since the last) in {took:?}"
            );
        }
    }

    /// Holds `key`'s room output for the next round, if it may wait: all
    /// it has is its range of the logs (private bytes are output meant for
    /// it alone, or what the kernel refused), little of it, and it is not
    /// leaving. Its range stays in the logs, which are kept until the round.
    fn try_hold(&mut self, key: usize) -> bool {
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        if c.written < c.out.len() || c.doomed || c.closing.is_some() {
            return false;
        }
        if c.pending() > HOLD_MAX {
            return false;
        }
        c.dirty = false;
        if !c.held {
            c.held = true;
            self.held.push(key);
        }
        true
    }

    /// Hands the lines recorded since the last call to the store, in one
    /// transaction. A failure is logged loudly (once, then a reminder a
    /// minute); the store keeps the lines and writes them once it can again.
    fn save_history(&mut self, now: Instant) {
        let Some(disk) = self.disk.as_mut() else {
            return;
        };
        let journal = self.room.history_mut().take_journal();
        if journal.is_empty() {
            self.room.history_mut().return_journal(journal);
            return;
        }
        let lines = journal.iter().map(|(id, line)| {
            let text = std::str::from_utf8(line).unwrap_or_default();
            (*id, text.strip_suffix('\n').unwrap_or(text))
        });
        match disk.store.append(lines) {
            Ok(()) => disk.ok(),
            Err(e) => disk.failed(&e, now),
        }
        self.room.history_mut().return_journal(journal);
    }

    /// Removes `key`: deregisters it, tells the room (which tells the
    /// others), logs, and closes the socket.
    fn close(&mut self, key: usize, why: Gone, now: Instant) {
        if !self.conns.contains(key) {
            return;
        }
        let mut conn = self.conns.remove(key);
        conn.leave(&mut self.places);
        match conn.transport {
            Some(conn::Transport::Tcp) => self.stats.tcp -= 1,
            Some(conn::Transport::Ws) => self.stats.ws -= 1,
            None => {}
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        // After the shutdown notice, nobody is told about the others leaving.
        let why = if self.shutdown_by.is_some() {
            Gone::Shutdown
        } else {
            why
        };
        if why == Gone::TooSlow {
            self.stats.too_slow += 1;
        }
        let (room, mut wire) = self.wire(now);
        let name = room.disconnect(key, why, &mut wire);
        let reason = match (why, conn.closing.is_some()) {
            (_, true) => "closed after hang-up",
            (Gone::TooSlow, _) => "dropped: output passed --max-pending",
            (Gone::Shutdown, _) => "closed at shutdown",
            (Gone::Disconnected, _) => "disconnected",
        };
        if conn.peer_eof || conn.transport.is_none() {
            // Its disconnect was logged when the EOF arrived, or it was a
            // plain HTTP request.
            log::debug!("conn {key} from {}: closed", conn.peer);
            return;
        }
        match name {
            Some(name) => log::info!("conn {key} ({name}) from {}: {reason}", conn.peer),
            None => log::info!("conn {key} from {}: {reason}", conn.peer),
        }
    }

    /// Times out silent connections, finishes overdue hang-ups, retries
    /// history writes and gives back buffers that bursts left large.
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
            // An empty write buffer is given back whatever its size: the
            // history a newcomer got, a /who answer, a burst all leave one
            // behind, and an idle connection should hold none. A busy one
            // allocates again at most once a sweep.
            if c.pending() == 0 && c.out.capacity() > 0 {
                freed += c.out.capacity();
                c.out = Vec::new();
            }
            if c.unread.is_empty() && c.unread.capacity() > 0 {
                c.unread = Vec::new();
            }
            if let Some(lines) = c.kind.lines_mut() {
                freed += lines.shrink(KEEP_LINE_CAPACITY);
            }
        }
        for &(key, overdue) in &expired {
            if overdue {
                self.close(key, Gone::Disconnected, now);
            } else if self.room.has_session(key) {
                log::info!("conn {key}: timed out");
                if self.room.is_member(key) {
                    self.stats.idle += 1;
                } else {
                    self.stats.login_timeout += 1;
                }
                let (room, mut wire) = self.wire(now);
                room.timed_out(key, &mut wire);
            } else {
                // A web connection whose request never came whole, or a TLS
                // handshake that never finished.
                self.stats.login_timeout += 1;
                self.doom(
                    key,
                    Gone::Disconnected,
                    "no request or handshake within --login-timeout",
                );
            }
        }
        expired.clear();
        self.expired = expired;
        self.retry_history(now);
        if freed >= TRIM_AFTER {
            trim_heap();
        }
    }

    /// Writes the store's backlog after failed writes, so a disk that has
    /// room again gets the lines even when nobody talks.
    fn retry_history(&mut self, now: Instant) {
        let Some(disk) = self.disk.as_mut() else {
            return;
        };
        match disk.store.retry() {
            Ok(()) => disk.ok(),
            Err(e) => disk.failed(&e, now),
        }
    }

    fn check_signals(&mut self, now: Instant) {
        let mut got = None;
        let mut hup = false;
        if let Some(signals) = self.signals.as_mut() {
            for sig in signals.pending() {
                if sig == signal_hook::consts::SIGHUP {
                    hup = true;
                } else {
                    got = Some(sig);
                }
            }
        }
        if hup {
            self.reload_certs();
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
        let listeners = [
            self.listener.take(),
            self.web_listener.take(),
            self.tls_listener.take(),
        ];
        for mut l in listeners.into_iter().flatten() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.shutdown_by = Some(now + self.config.drain_timeout);
        if let Some(c) = self.cluster.as_mut() {
            c.farewell();
        }
        let (room, mut wire) = self.wire(now);
        room.shutdown(&mut wire);
        // Connections without a session (already hanging up, or plain HTTP)
        // keep their deadline; the web ones that are still reading and the
        // TLS ones still in their handshake are cut.
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(c.kind, Kind::Http(_)) || (c.tls.is_some() && c.transport.is_none())
            })
            .map(|(k, _)| k)
            .collect();
        for key in idle {
            self.doom(
                key,
                Gone::Shutdown,
                "shutdown before a request or handshake",
            );
        }
    }
}

/// [`listen`] for a listener that may be absent.
fn listen_opt(
    poll: &Poll,
    listener: Option<std::net::TcpListener>,
    token: Token,
) -> io::Result<(Option<TcpListener>, Option<SocketAddr>)> {
    match listener {
        Some(l) => listen(poll, l, token).map(|(l, a)| (Some(l), Some(a))),
        None => Ok((None, None)),
    }
}

/// Sets a bound listener up for the loop: non-blocking, a deep backlog,
/// registered under `token`.
fn listen(
    poll: &Poll,
    listener: std::net::TcpListener,
    token: Token,
) -> io::Result<(TcpListener, SocketAddr)> {
    listener.set_nonblocking(true)?;
    raise_backlog(&listener);
    let addr = listener.local_addr()?;
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, token, Interest::READABLE)?;
    Ok((listener, addr))
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
