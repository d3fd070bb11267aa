//! A fleet of chat clients in one thread: one `mio::Poll`, edge-triggered,
//! every socket read until `WouldBlock`, lines split in place out of one
//! reused read buffer.
//!
//! Client `i` logs in as `PREFIX{i}`. Clients `0..senders` send chat lines
//! whose text starts with a sequence number and the instant the line was
//! *scheduled* (both hex), padded so that the line every user receives,
//! `NAME: TEXT\n`, has exactly the configured size. Every client checks each
//! sender's sequence (a gap is a lost line, a step back a reordering) and
//! records latency = time of the read that returned the line minus its
//! scheduled time, so a late send or a slow server cannot hide. On request
//! ([`Fleet::track_order`]) every client also keeps a fingerprint of the
//! order in which it got the lines of all senders, so the run can check that
//! all users saw one and the same order.
//!
//! With [`Fleet::tls`] every client speaks TLS in the same loop: what a
//! socket read returns goes through the client's session (fed from the read
//! buffer, no extra system call), its plaintext into the same line
//! splitting; what a client sends is encrypted and written at once, the
//! rest when the socket is writable again.
//!
//! Over WebSocket ([`Fleet::websocket`]: all clients, or a share of them
//! spread evenly, senders included) a client upgrades `GET /ws` on the
//! server's web port first, sends each line as one masked text message and
//! reads each server line as one text frame, parsed in place in the same
//! read buffer (see [`super::ws`]); only a frame cut off by the end of a
//! read is kept, in the same small per-client buffer a cut line uses.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use std::sync::Arc;

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustls::{ClientConfig, ClientConnection};

use super::hist::Histogram;
use super::sys::{now_ns, TimerFd};
use super::ws;

const TIMER: Token = Token(usize::MAX);
/// Bytes per `read`.
const READ_BUF: usize = 256 * 1024;
/// Hex digits of the sequence number and of the scheduled time in a line.
const SEQ_HEX: usize = 8;
const TIME_HEX: usize = 16;
/// The longest a single `poll` waits, so callers re-check their deadlines.
const MAX_BLOCK: Duration = Duration::from_millis(50);
/// A login is over once everyone is in and no join notice came for this
/// long (in a large room the server may send only the newcomer its own).
const JOINS_QUIET_NS: u64 = 1_000_000_000;
/// What a dropped client's reason is when no notice about it reached us.
pub const NO_NOTICE: &str = "no notice reached a client still in the room (the server's log says why: --server-arg=--log-level=info)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// WebSocket: the upgrade request is sent (or queued), its answer is
    /// awaited.
    Upgrading,
    /// Connecting, waiting for the greeting.
    Greeting,
    /// Sent the name, waiting for its own join notice.
    Naming,
    /// In the room.
    In,
    /// Closed by the server (or failed).
    Gone,
}

struct Client {
    stream: TcpStream,
    /// Its TLS session, when the fleet speaks TLS.
    tls: Option<Box<ClientConnection>>,
    state: State,
    /// Talks WebSocket instead of lines over TCP.
    ws: bool,
    /// WebSocket: the `Sec-WebSocket-Key` sent, until the answer is checked.
    key: Option<Box<str>>,
    /// Start of a line (or of a WebSocket frame, or of the upgrade's
    /// answer) that has not ended yet (usually empty).
    partial: Vec<u8>,
    /// Bytes the kernel has not taken yet (usually empty).
    out: Vec<u8>,
    /// Join notices it has read (its own included): the first to join reads
    /// every join the server announces to everyone.
    joins: u32,
    /// Chat lines from our senders it has read, and a fingerprint of their
    /// order (kept only when the fleet tracks order).
    order: Order,
    /// Inside a history block (`History (K lines):` .. `End of history.`):
    /// replayed lines are counted apart, not as live lines.
    replaying: bool,
}

impl Client {
    /// Whether it has bytes the socket did not take yet.
    fn pending(&self) -> bool {
        !self.out.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }
}

/// The lines one client got, in order: equal fingerprints and counts mean
/// the same lines in the same order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Order {
    /// Lines received.
    pub lines: u64,
    /// FNV-1a over each line's (sender, sequence number), in arrival order.
    pub hash: u64,
}

impl Order {
    const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn push(&mut self, sender: usize, seq: u32) {
        if self.lines == 0 {
            self.hash = Self::BASIS;
        }
        self.lines += 1;
        let key = (sender as u64) << 32 | u64::from(seq);
        self.hash = (self.hash ^ key).wrapping_mul(Self::PRIME);
    }
}

/// What the fleet has seen so far.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// `joined the chat!` notices received, over all clients.
    pub joins: u64,
    /// Clients that have seen their own join notice.
    pub logged_in: usize,
    /// When the last client saw its own join notice.
    pub last_login_ns: u64,
    /// When the last join notice was read.
    pub last_join_ns: u64,
    /// Chat lines from our senders received, over all clients.
    pub chat: u64,
    /// ... of which were read inside the measuring window.
    pub chat_in_window: u64,
    /// ... of which were read at or after the start of the window.
    pub chat_since_window: u64,
    /// When the last chat line was read.
    pub last_chat_ns: u64,
    /// Lines missing in a sender's sequence, seen as gaps.
    pub gaps: u64,
    /// Lines that arrived after a later line of the same sender.
    pub reordered: u64,
    /// "too fast" notices (the server's rate limit is on).
    pub refused: u64,
    /// Notices that somebody left or was disconnected.
    pub departures: u64,
    /// Our connections closed by the server or failed after login.
    pub dropped: usize,
    /// Failures during login (refused names, connect errors, server full).
    pub login_errors: usize,
    /// The first unexpected thing the server said, for the report.
    pub first_error: Option<String>,
    /// Lines nobody expected (another user's chat, unknown notices).
    pub other: u64,
    /// Lines replayed from the room's history (at login), over all clients.
    pub replayed: u64,
}

/// Why the server dropped some of our clients, as far as we could see.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drops {
    /// `(reason, clients)`, most frequent first. The reason is the one the
    /// departure notice gave (`too slow to read`, `timed out`,
    /// `disconnected` when it gave none), or [`NO_NOTICE`].
    pub reasons: Vec<(String, usize)>,
}

/// Many clients, one poll.
pub struct Fleet {
    poll: Poll,
    events: Events,
    /// Events from the last poll; those from `next_ready` on are not
    /// handled yet (a turn stops early when the caller has a line due).
    ready: Vec<(usize, bool, bool)>,
    next_ready: usize,
    /// The servers; client `i` connects to `addrs[i % len]` (a cluster's
    /// servers share the clients).
    addrs: Vec<SocketAddr>,
    prefix: String,
    clients: Vec<Client>,
    target: usize,
    max_inflight: usize,
    inflight: usize,
    senders: usize,
    /// Next expected sequence number, `[receiver * senders + sender]`.
    next_seq: Vec<u32>,
    /// Padding per sender that brings its lines to the wanted size.
    pads: Vec<usize>,
    line_size: usize,
    /// No login: the greeting means connected, and senders write
    /// `NAME: TEXT` themselves (for the bare broadcaster of [`super::ideal`]).
    raw: bool,
    /// Whether every client fingerprints the order of the lines it gets.
    track_order: bool,
    /// Every client sends `/since ID` before its name (a resume): the room's
    /// lines after ID come instead of the recent ones.
    since: Option<u64>,
    /// TLS for every client, with this configuration.
    tls: Option<Arc<ClientConfig>>,
    /// The server's web port, for clients that talk WebSocket.
    web: Option<SocketAddr>,
    /// The share of clients that talk WebSocket (0: none, 1: all).
    ws_share: f64,
    /// Plaintext out of a TLS session (reused).
    plain: Vec<u8>,
    /// Our clients the server dropped after login, in the order seen.
    dropped_ids: Vec<usize>,
    /// Departure notices about users: name -> the reason given.
    departed: HashMap<Vec<u8>, String>,
    scratch: Vec<u8>,
    line_buf: Vec<u8>,
    /// A line being framed for a WebSocket sender.
    frame_buf: Vec<u8>,
    timer: TimerFd,
    /// Lines scheduled at or after this go into the histogram.
    measure_from: u64,
    /// Receipt window for throughput.
    window: (u64, u64),
    /// Latency from scheduled send to read.
    pub latency: Histogram,
    /// How late lines were actually written, relative to their schedule.
    pub send_lag: Histogram,
    /// Counters.
    pub c: Counters,
}

impl Fleet {
    /// A fleet that will log in as `PREFIX0`, `PREFIX1`, ... (client `i` to
    /// `addrs[i % addrs.len()]`); clients `0..senders` send lines of
    /// `line_size` bytes as received.
    pub fn new(
        addrs: &[SocketAddr],
        prefix: &str,
        senders: usize,
        line_size: usize,
        max_inflight: usize,
    ) -> io::Result<Fleet> {
        let poll = Poll::new()?;
        let timer = TimerFd::new()?;
        poll.registry()
            .register(&mut SourceFd(&timer.raw()), TIMER, Interest::READABLE)?;
        let pads = (0..senders)
            .map(|s| {
                let fixed = prefix.len() + s.to_string().len() + 2 + SEQ_HEX + TIME_HEX + 1;
                line_size.saturating_sub(fixed)
            })
            .collect();
        Ok(Fleet {
            poll,
            events: Events::with_capacity(4096),
            ready: Vec::with_capacity(4096),
            next_ready: 0,
            addrs: addrs.to_vec(),
            prefix: prefix.to_owned(),
            clients: Vec::new(),
            target: 0,
            max_inflight: if max_inflight == 0 {
                usize::MAX
            } else {
                max_inflight
            },
            inflight: 0,
            senders,
            next_seq: Vec::new(),
            pads,
            line_size,
            raw: false,
            track_order: false,
            since: None,
            tls: None,
            web: None,
            ws_share: 0.0,
            plain: vec![0; 64 * 1024],
            dropped_ids: Vec::new(),
            departed: HashMap::new(),
            scratch: vec![0; READ_BUF],
            line_buf: Vec::with_capacity(line_size.max(64)),
            frame_buf: Vec::with_capacity(line_size.max(64)),
            timer,
            measure_from: u64::MAX,
            window: (u64::MAX, u64::MAX),
            latency: Histogram::new(),
            send_lag: Histogram::new(),
            c: Counters::default(),
        })
    }

    /// Talk to a bare broadcaster: no login, senders write the name.
    pub fn raw(mut self) -> Self {
        self.raw = true;
        self
    }

    /// Every client sends `/since ID` before its name, as a client that
    /// resumes after a lost connection does (section 8 of the protocol).
    pub fn since(mut self, id: Option<u64>) -> Self {
        self.since = id;
        self
    }

    /// Every client speaks TLS with `config` (nothing changes with `None`).
    pub fn tls(mut self, config: Option<Arc<ClientConfig>>) -> Self {
        self.tls = config;
        self
    }

    /// Whether the clients speak TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A `share` of the clients (0 to 1, spread evenly over the client
    /// numbers, so over the senders too) talk WebSocket to `web`.
    pub fn websocket(mut self, web: SocketAddr, share: f64) -> Self {
        self.web = Some(web);
        self.ws_share = share.clamp(0.0, 1.0);
        self
    }

    /// Whether client `i` talks WebSocket: with a share s, client i does
    /// when floor((i + 1) s) > floor(i s), so any prefix of the clients has
    /// its share of them.
    pub fn is_ws(&self, i: usize) -> bool {
        self.web.is_some()
            && ((i + 1) as f64 * self.ws_share).floor() > (i as f64 * self.ws_share).floor()
    }

    /// Clients opened so far that talk WebSocket.
    pub fn ws_clients(&self) -> usize {
        self.clients.iter().filter(|c| c.ws).count()
    }

    /// Every client keeps a fingerprint of the order of its lines
    /// (see [`Fleet::orders`]).
    pub fn track_order(mut self) -> Self {
        self.track_order = true;
        self
    }

    /// Join notices a login of `n` clients into an empty room brings when
    /// every join goes to everyone: `N(N+1)/2` (the k-th to join reads the
    /// joins of users k..N); none when raw.
    pub fn all_joins(&self, n: usize) -> u64 {
        if self.raw {
            0
        } else {
            (n as u64) * (n as u64 + 1) / 2
        }
    }

    /// Joins the server announced to everyone during the login: the most
    /// join notices any client read (the first to join reads them all).
    /// `n` when every join went to everyone; less when the server stops
    /// announcing joins in a large room (`--announce-limit`).
    pub fn announced(&self) -> usize {
        self.clients
            .iter()
            .map(|c| c.joins as usize)
            .max()
            .unwrap_or(0)
    }

    /// Join notices a login of `n` clients into an empty room brings if the
    /// first `m` joins went to everyone and each later one only to the
    /// newcomer: `m(m+1)/2 + (n - m)`; none when raw.
    pub fn joins_for(&self, n: usize, m: usize) -> u64 {
        let m = m.min(n);
        self.all_joins(m) + if self.raw { 0 } else { (n - m) as u64 }
    }

    /// The smallest line size the sender names allow.
    pub fn min_line_size(prefix: &str, senders: usize) -> usize {
        prefix.len() + senders.saturating_sub(1).to_string().len() + 2 + SEQ_HEX + TIME_HEX + 1
    }

    /// Clients opened so far.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True before any client was opened.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Whether client `i` is in the room.
    pub fn is_in(&self, i: usize) -> bool {
        self.clients.get(i).is_some_and(|c| c.state == State::In)
    }

    /// Clients in the room right now.
    pub fn live(&self) -> usize {
        self.clients.iter().filter(|c| c.state == State::In).count()
    }

    /// Opens clients until `n` exist (at most `max_inflight` logging in at a
    /// time, 0 for no limit) and runs the loop until all are in and every
    /// join notice has been read, or `limit` passes. The k-th user to join
    /// gets the join notices of everyone from k on, so all is read when
    /// `N(N+1)/2` notices have arrived (counting from an empty fleet); a
    /// server that announces joins only in small rooms sends fewer, so the
    /// login also ends when everyone is in and no join notice came for 1 s
    /// (the caller checks the count against [`Fleet::announced`]).
    pub fn login(&mut self, n: usize, limit: Duration) -> bool {
        self.target = n;
        self.next_seq.resize(n * self.senders, 0);
        let want_joins = self.all_joins(n);
        let deadline = now_ns() + limit.as_nanos() as u64;
        loop {
            self.open_more();
            if self.c.logged_in == n
                && (self.c.joins >= want_joins
                    || now_ns().saturating_sub(self.c.last_join_ns) >= JOINS_QUIET_NS)
            {
                return true;
            }
            if self.c.login_errors > 0 && self.inflight == 0 && self.clients.len() == n {
                return false;
            }
            let now = now_ns();
            if now >= deadline {
                return false;
            }
            if let Err(e) = self.turn(Some(deadline)) {
                self.note_error(format!("poll: {e}"));
                return false;
            }
        }
    }

    fn open_more(&mut self) {
        while self.clients.len() < self.target && self.inflight < self.max_inflight {
            let i = self.clients.len();
            let ws = self.is_ws(i);
            let addr = match (ws, self.web) {
                (true, Some(web)) => web,
                _ => self.addrs[i % self.addrs.len()],
            };
            let opened = TcpStream::connect(addr).and_then(|mut s| {
                self.poll.registry().register(
                    &mut s,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                let tls = match &self.tls {
                    Some(config) => Some(Box::new(crate::tls::session(config)?)),
                    None => None,
                };
                Ok((s, tls))
            });
            match opened {
                Ok((stream, tls)) => {
                    let _ = stream.set_nodelay(true);
                    // The upgrade request waits in `out` until the connect
                    // completes (the first WRITABLE event).
                    let key = ws.then(ws::new_key);
                    let out = key
                        .as_deref()
                        .map_or_else(Vec::new, |k| ws::upgrade_request(addr, k));
                    self.clients.push(Client {
                        stream,
                        tls,
                        state: if ws {
                            State::Upgrading
                        } else {
                            State::Greeting
                        },
                        ws,
                        key: key.map(String::into_boxed_str),
                        partial: Vec::new(),
                        out,
                        joins: 0,
                        order: Order::default(),
                        replaying: false,
                    });
                    self.inflight += 1;
                }
                Err(e) => {
                    // Out of descriptors or ports: nothing more will open.
                    self.note_error(format!("connect: {e}"));
                    self.c.login_errors += self.target - self.clients.len();
                    self.target = self.clients.len();
                    return;
                }
            }
        }
    }

    fn note_error(&mut self, what: String) {
        if self.c.first_error.is_none() {
            self.c.first_error = Some(what);
        }
    }

    /// Sets which lines count: latency for lines scheduled at or after
    /// `from`, throughput for lines read in `[from, to)`.
    pub fn measure(&mut self, from: u64, to: u64) {
        self.measure_from = from;
        self.window = (from, to);
        self.latency.clear();
        self.send_lag.clear();
        self.c.chat_in_window = 0;
        self.c.chat_since_window = 0;
    }

    /// Sets every client's expected next sequence number from `sender` to `seq`.
    pub fn expect_from(&mut self, sender: usize, seq: u32) {
        let s = self.senders;
        for r in 0..self.clients.len() {
            self.next_seq[r * s + sender] = seq;
        }
    }

    /// Sends sender `s`'s line number `seq`, scheduled at `sched` (ns).
    pub fn send_line(&mut self, s: usize, seq: u32, sched: u64) {
        self.send_lines(s, seq, 1, sched);
    }

    /// Sends sender `s`'s lines `seq..seq + count`, all scheduled at `sched`
    /// (ns), in one write: a paste.
    pub fn send_lines(&mut self, s: usize, seq: u32, count: u32, sched: u64) {
        let mut buf = std::mem::take(&mut self.line_buf);
        buf.clear();
        if self.clients.get(s).is_some_and(|c| c.ws) {
            // One text message per line, as a browser sends each Enter.
            let mut line = std::mem::take(&mut self.frame_buf);
            for q in seq..seq + count {
                line.clear();
                self.push_line(&mut line, s, q, sched);
                line.pop(); // the LF
                ws::push_text(&mut buf, &line, ws::mask_for(s));
            }
            self.frame_buf = line;
        } else {
            for q in seq..seq + count {
                self.push_line(&mut buf, s, q, sched);
            }
        }
        let now = now_ns();
        self.send_lag.record(now.saturating_sub(sched));
        self.write_to(s, &buf);
        self.line_buf = buf;
    }

    /// Appends sender `s`'s line `seq` (scheduled at `sched`), LF included.
    fn push_line(&self, buf: &mut Vec<u8>, s: usize, seq: u32, sched: u64) {
        if self.raw {
            buf.extend_from_slice(self.prefix.as_bytes());
            buf.extend_from_slice(s.to_string().as_bytes());
            buf.extend_from_slice(b": ");
        }
        push_hex(buf, u64::from(seq), SEQ_HEX);
        push_hex(buf, sched, TIME_HEX);
        buf.resize(buf.len() + self.pads[s], b'.');
        buf.push(b'\n');
    }

    /// Sends raw bytes from client `i`.
    pub fn send_raw(&mut self, i: usize, bytes: &[u8]) {
        self.write_to(i, bytes);
    }

    /// Sends `lines` (each without its LF) from client `i` in one write,
    /// framed as its transport wants.
    fn send_text(&mut self, i: usize, lines: &[&str]) {
        let mut buf = Vec::new();
        for line in lines {
            if self.clients[i].ws {
                ws::push_text(&mut buf, line.as_bytes(), ws::mask_for(i));
            } else {
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
            }
        }
        self.write_to(i, &buf);
    }

    fn write_to(&mut self, i: usize, bytes: &[u8]) {
        let c = &mut self.clients[i];
        if c.state == State::Gone {
            return;
        }
        if let Some(tls) = c.tls.as_deref_mut() {
            // The session keeps what the socket does not take yet.
            let sent = tls
                .writer()
                .write_all(bytes)
                .and_then(|()| crate::tls::send_records(tls, &mut c.stream));
            if let Err(e) = sent {
                self.gone(i, &e.to_string());
            }
            return;
        }
        if !c.out.is_empty() {
            c.out.extend_from_slice(bytes);
            return;
        }
        let done = match write_some(&mut c.stream, bytes) {
            Ok(done) => done,
            Err(e) => return self.gone(i, &e.to_string()),
        };
        if done < bytes.len() {
            self.clients[i].out.extend_from_slice(&bytes[done..]);
        }
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.clients[i];
        if let Some(tls) = c.tls.as_deref_mut() {
            if let Err(e) = crate::tls::send_records(tls, &mut c.stream) {
                self.gone(i, &e.to_string());
            }
            return;
        }
        let done = match write_some(&mut c.stream, &c.out) {
            Ok(done) => done,
            Err(e) => return self.gone(i, &e.to_string()),
        };
        c.out.drain(..done);
    }

    /// Waits for events (until `wake_at`, ns, at the latest, and never more
    /// than 50 ms) and handles them; stops early once `wake_at` has come, so
    /// the caller can send on time, and handles the rest in the next turn.
    pub fn turn(&mut self, wake_at: Option<u64>) -> io::Result<()> {
        if self.next_ready == self.ready.len() {
            self.poll_events(wake_at)?;
        }
        while self.next_ready < self.ready.len() {
            let (key, readable, writable) = self.ready[self.next_ready];
            self.next_ready += 1;
            if key == TIMER.0 {
                self.timer.fired();
                continue;
            }
            if key >= self.clients.len() || self.clients[key].state == State::Gone {
                continue;
            }
            if writable && self.clients[key].pending() {
                self.flush(key);
            }
            if readable {
                self.read(key);
            }
            if wake_at.is_some_and(|t| now_ns() >= t) {
                break;
            }
        }
        Ok(())
    }

    fn poll_events(&mut self, wake_at: Option<u64>) -> io::Result<()> {
        let now = now_ns();
        let timeout = match wake_at {
            Some(t) if t <= now => Some(Duration::ZERO),
            Some(t) => {
                if t - now < MAX_BLOCK.as_nanos() as u64 {
                    self.timer.arm(t);
                }
                Some(MAX_BLOCK)
            }
            None => Some(MAX_BLOCK),
        };
        self.ready.clear();
        self.next_ready = 0;
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() == ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        for ev in self.events.iter() {
            let r = ev.is_readable() || ev.is_read_closed() || ev.is_error();
            self.ready.push((ev.token().0, r, ev.is_writable()));
        }
        Ok(())
    }

    /// Reads client `i` until `WouldBlock`.
    fn read(&mut self, i: usize) {
        let mut buf = std::mem::take(&mut self.scratch);
        loop {
            let c = &mut self.clients[i];
            if c.state == State::Gone {
                break;
            }
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    self.gone(i, "EOF");
                    break;
                }
                Ok(n) => {
                    let t = now_ns();
                    if self.clients[i].tls.is_some() {
                        self.take_tls(i, &buf[..n], t);
                    } else if self.clients[i].ws {
                        self.take_frames(i, &buf[..n], t);
                    } else {
                        self.take_lines(i, &buf[..n], t);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.gone(i, &e.to_string());
                    break;
                }
            }
        }
        self.scratch = buf;
    }

    /// Bytes read by TLS client `i`: through its session, plaintext lines
    /// to [`Fleet::take_lines`]; then what the session has to send.
    fn take_tls(&mut self, i: usize, mut raw: &[u8], t: u64) {
        let mut plain = std::mem::take(&mut self.plain);
        let mut failed = None;
        'records: while !raw.is_empty() {
            let Some(tls) = self.clients[i].tls.as_deref_mut() else {
                break;
            };
            if let Err(e) = tls.read_tls(&mut raw).and_then(|_| {
                tls.process_new_packets()
                    .map(drop)
                    .map_err(|e| io::Error::other(e.to_string()))
            }) {
                failed = Some(e.to_string());
                break;
            }
            loop {
                let c = &mut self.clients[i];
                let Some(tls) = c.tls.as_deref_mut() else {
                    break 'records;
                };
                if c.state == State::Gone {
                    break 'records;
                }
                match tls.reader().read(&mut plain) {
                    Ok(0) => {
                        failed = Some("close_notify".into());
                        break 'records;
                    }
                    Ok(m) => self.take_lines(i, &plain[..m], t),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        failed = Some(e.to_string());
                        break 'records;
                    }
                }
            }
        }
        self.plain = plain;
        match failed {
            Some(why) => self.gone(i, &why),
            None => self.flush(i),
        }
    }

    fn take_lines(&mut self, i: usize, mut data: &[u8], t: u64) {
        if !self.clients[i].partial.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(p) => {
                    let mut line = std::mem::take(&mut self.clients[i].partial);
                    line.extend_from_slice(&data[..p]);
                    self.on_line(i, &line, t);
                    line.clear();
                    if line.capacity() <= 1024 {
                        self.clients[i].partial = line;
                    }
                    data = &data[p + 1..];
                }
                None => {
                    self.clients[i].partial.extend_from_slice(data);
                    return;
                }
            }
        }
        let mut start = 0;
        for p in memchr::memchr_iter(b'\n', data) {
            self.on_line(i, &data[start..p], t);
            start = p + 1;
        }
        if start < data.len() {
            self.clients[i].partial.extend_from_slice(&data[start..]);
        }
    }

    /// WebSocket bytes from client `i`: the upgrade's answer, then frames,
    /// each parsed where it lies in `data`; a frame cut off at the end
    /// waits in `partial`.
    fn take_frames(&mut self, i: usize, mut data: &[u8], t: u64) {
        if self.clients[i].state == State::Upgrading {
            let c = &mut self.clients[i];
            c.partial.extend_from_slice(data);
            let Some(end) = ws::head_end(&c.partial) else {
                return;
            };
            let mut head = std::mem::take(&mut c.partial);
            let rest = head.split_off(end);
            let key = c.key.take().unwrap_or_default();
            if let Err(e) = ws::check_answer(&head, &key) {
                return self.login_failed(i, e.as_bytes());
            }
            c.state = State::Greeting;
            if !rest.is_empty() {
                self.take_frames(i, &rest, t);
            }
            return;
        }
        if !self.clients[i].partial.is_empty() {
            let used = self.finish_frame(i, data, t);
            data = &data[used..];
            if data.is_empty() {
                return;
            }
        }
        let mut at = 0;
        while at < data.len() && self.clients[i].state != State::Gone {
            match ws::parse(&data[at..]) {
                Ok(Some(f)) if f.len() <= data.len() - at => {
                    self.on_frame(i, f.kind, &data[at + f.header..at + f.len()], t);
                    at += f.len();
                }
                Ok(_) => break,
                Err(e) => return self.gone(i, &e),
            }
        }
        if self.clients[i].state != State::Gone {
            self.clients[i].partial.extend_from_slice(&data[at..]);
        }
    }

    /// Completes the frame `partial` holds the start of with bytes from
    /// `data`; returns how many of them it took.
    fn finish_frame(&mut self, i: usize, data: &[u8], t: u64) -> usize {
        let mut p = std::mem::take(&mut self.clients[i].partial);
        let old = p.len();
        // Enough for any header.
        let k = data.len().min(ws::MAX_HEADER);
        p.extend_from_slice(&data[..k]);
        let used = match ws::parse(&p) {
            Err(e) => {
                self.gone(i, &e);
                return data.len();
            }
            Ok(None) => data.len(), // fewer than 14 bytes came: all kept
            Ok(Some(f)) => {
                if p.len() < f.len() {
                    let more = (f.len() - p.len()).min(data.len() - k);
                    p.extend_from_slice(&data[k..k + more]);
                }
                if p.len() >= f.len() {
                    self.on_frame(i, f.kind, &p[f.header..f.len()], t);
                    let used = f.len() - old;
                    p.clear();
                    used
                } else {
                    data.len()
                }
            }
        };
        // Kept unless the client is gone, or the buffer is empty and a
        // long frame left it large (given back; never an unfinished frame).
        if self.clients[i].state != State::Gone && !(p.is_empty() && p.capacity() > 1024) {
            self.clients[i].partial = p;
        }
        used
    }

    /// One whole frame from the server to client `i`.
    fn on_frame(&mut self, i: usize, kind: ws::Kind, payload: &[u8], t: u64) {
        match kind {
            ws::Kind::Line => self.on_line(i, payload, t),
            ws::Kind::Close => self.gone(i, "close frame"),
            ws::Kind::Ping => {
                let mut pong = Vec::with_capacity(payload.len() + ws::MAX_HEADER);
                ws::push_pong(&mut pong, payload, ws::mask_for(i));
                self.write_to(i, &pong);
            }
            ws::Kind::Other => self.c.other += 1,
        }
    }

    fn on_line(&mut self, i: usize, line: &[u8], t: u64) {
        if self.clients[i].replaying {
            if line == b"[SERVER]: End of history." {
                self.clients[i].replaying = false;
            } else {
                self.c.replayed += 1;
            }
            return;
        }
        if line.starts_with(b"[SERVER]: History (") {
            self.clients[i].replaying = true;
            return;
        }
        if let Some(notice) = line.strip_prefix(b"[SERVER]: ") {
            return self.on_notice(i, notice, t);
        }
        if self.on_chat(i, line, t).is_none() {
            self.c.other += 1;
        }
    }

    fn on_notice(&mut self, i: usize, text: &[u8], t: u64) {
        if text.ends_with(b" joined the chat!") {
            self.c.joins += 1;
            self.c.last_join_ns = t;
            self.clients[i].joins += 1;
            // Before login a client is not in the room, so the first join
            // notice it gets is its own.
            if self.clients[i].state == State::Naming {
                self.clients[i].state = State::In;
                self.c.logged_in += 1;
                self.c.last_login_ns = t;
                self.inflight -= 1;
            }
            return;
        }
        match self.clients[i].state {
            State::Greeting if self.raw && text.starts_with(b"Welcome!") => {
                self.clients[i].state = State::In;
                self.c.logged_in += 1;
                self.c.last_login_ns = t;
                self.inflight -= 1;
            }
            State::Greeting => {
                if text.starts_with(b"Welcome!") {
                    let since = self.since.map(|id| format!("/since {id}"));
                    let name = format!("{}{i}", self.prefix);
                    let lines: Vec<&str> =
                        since.iter().map(String::as_str).chain([&*name]).collect();
                    self.clients[i].state = State::Naming;
                    self.send_text(i, &lines);
                } else {
                    self.login_failed(i, text);
                }
            }
            State::Naming => {
                let resuming = self.since.is_some() && resume_notice(text);
                if !text.starts_with(b"Welcome to the chat") && !resuming {
                    self.login_failed(i, text);
                }
            }
            State::Upgrading => self.login_failed(i, text),
            State::In | State::Gone => {
                if let Some((name, reason)) = departure(text) {
                    self.c.departures += 1;
                    if !self.departed.contains_key(name) {
                        self.departed.insert(name.to_vec(), reason.to_owned());
                    }
                } else if text.starts_with(b"You are sending too fast") {
                    self.c.refused += 1;
                } else {
                    self.c.other += 1;
                }
            }
        }
    }

    fn login_failed(&mut self, i: usize, text: &[u8]) {
        self.c.login_errors += 1;
        self.note_error(format!(
            "client {i} at login: {}",
            String::from_utf8_lossy(text)
        ));
        self.inflight -= 1;
        self.clients[i].state = State::Gone;
        let _ = self.poll.registry().deregister(&mut self.clients[i].stream);
    }

    /// A chat line from one of our senders: `PREFIX{s}: SEQ TIME pad`.
    fn on_chat(&mut self, i: usize, line: &[u8], t: u64) -> Option<()> {
        let rest = line.strip_prefix(self.prefix.as_bytes())?;
        let colon = memchr::memchr(b':', rest)?;
        let s = parse_dec(&rest[..colon])?;
        if s >= self.senders {
            return None;
        }
        let text = rest.get(colon + 2..)?;
        let seq = parse_hex(text.get(..SEQ_HEX)?)? as u32;
        let sched = parse_hex(text.get(SEQ_HEX..SEQ_HEX + TIME_HEX)?)?;
        let k = i * self.senders + s;
        let next = self.next_seq.get_mut(k)?;
        if seq == *next {
            *next = seq.wrapping_add(1);
        } else if seq > *next {
            self.c.gaps += u64::from(seq - *next);
            *next = seq.wrapping_add(1);
        } else {
            self.c.reordered += 1;
        }
        if self.track_order {
            self.clients[i].order.push(s, seq);
        }
        self.c.chat += 1;
        self.c.last_chat_ns = self.c.last_chat_ns.max(t);
        if t >= self.window.0 {
            self.c.chat_since_window += 1;
            if t < self.window.1 {
                self.c.chat_in_window += 1;
            }
        }
        if sched >= self.measure_from {
            self.latency.record(t.saturating_sub(sched));
        }
        Some(())
    }

    /// Client `i`'s connection ended (`how`: EOF or the error).
    fn gone(&mut self, i: usize, how: &str) {
        let c = &mut self.clients[i];
        match c.state {
            State::Gone => return,
            State::In => {
                self.c.dropped += 1;
                self.dropped_ids.push(i);
            }
            State::Upgrading | State::Greeting | State::Naming => {
                self.c.login_errors += 1;
                self.inflight -= 1;
            }
        }
        c.state = State::Gone;
        let _ = self.poll.registry().deregister(&mut c.stream);
        self.note_error(format!(
            "client {i}: connection closed by the server ({how})"
        ));
    }

    /// Why our dropped clients were dropped: the reason in the departure
    /// notice the others got about each, or [`NO_NOTICE`] (when everyone
    /// was dropped at once nobody is left to be told).
    pub fn drops(&self) -> Drops {
        let mut count: HashMap<&str, usize> = HashMap::new();
        for &i in &self.dropped_ids {
            let name = format!("{}{i}", self.prefix);
            let why = self
                .departed
                .get(name.as_bytes())
                .map_or(NO_NOTICE, String::as_str);
            *count.entry(why).or_default() += 1;
        }
        let mut reasons: Vec<(String, usize)> =
            count.into_iter().map(|(r, n)| (r.to_owned(), n)).collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Drops { reasons }
    }

    /// Over all clients: how many got `lines` lines, and how many distinct
    /// orders those had (1: all saw one and the same order). Needs
    /// [`Fleet::track_order`].
    pub fn orders(&self, lines: u64) -> (usize, usize) {
        let complete: Vec<Order> = self
            .clients
            .iter()
            .map(|c| c.order)
            .filter(|o| o.lines == lines)
            .collect();
        let mut distinct: Vec<u64> = complete.iter().map(|o| o.hash).collect();
        distinct.sort_unstable();
        distinct.dedup();
        (complete.len(), distinct.len())
    }

    /// The line size lines are padded to.
    pub fn line_size(&self) -> usize {
        self.line_size
    }

    /// Closes every connection with a reset (`SO_LINGER` 0), so no
    /// TIME_WAIT is left behind to eat the ephemeral ports of later runs.
    pub fn close(self) {
        for c in &self.clients {
            set_linger_zero(c.stream.as_raw_fd());
        }
    }
}

/// Closes `fd` with a reset when it is closed (`SO_LINGER` 0).
pub(crate) fn set_linger_zero(fd: i32) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized option.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// A departure notice's name and reason: `NAME has disconnected (WHY).`,
/// `NAME has disconnected.` (`disconnected`), `NAME left the chat.` (`left`).
fn departure(text: &[u8]) -> Option<(&[u8], &str)> {
    if let Some(name) = text.strip_suffix(b" left the chat.") {
        return Some((name, "left"));
    }
    if let Some(name) = text.strip_suffix(b" has disconnected.") {
        return Some((name, "disconnected"));
    }
    const WHY: &[u8] = b" has disconnected (";
    let at = memchr::memmem::find(text, WHY)?;
    let why = text[at + WHY.len()..].strip_suffix(b").")?;
    Some((&text[..at], std::str::from_utf8(why).ok()?))
}

/// A notice a resuming login gets before its join notice: the answer to
/// `/since`, the count of lines no longer kept, or ids that started over.
fn resume_notice(text: &[u8]) -> bool {
    text.starts_with(b"You will get the lines after")
        || text.starts_with(b"There is no line")
        || memchr::memmem::find(text, b" no longer kept").is_some()
}

fn push_hex(buf: &mut Vec<u8>, v: u64, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for k in (0..digits).rev() {
        buf.push(HEX[((v >> (4 * k)) & 0xf) as usize]);
    }
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &b in s {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

fn parse_dec(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    let mut v = 0usize;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + usize::from(b - b'0');
    }
    Some(v)
}

/// Writes as much of `bytes` as the socket takes now; `Err` on a hard error.
fn write_some(stream: &mut impl Write, bytes: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < bytes.len() {
        match stream.write(&bytes[done..]) {
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let mut b = Vec::new();
        push_hex(&mut b, 0xdead_beef_0123_4567, 16);
        assert_eq!(b, b"deadbeef01234567");
        assert_eq!(parse_hex(&b), Some(0xdead_beef_0123_4567));
        assert_eq!(parse_hex(b"12g"), None);
        assert_eq!(parse_dec(b"123"), Some(123));
        assert_eq!(parse_dec(b""), None);
        assert_eq!(parse_dec(b"1x"), None);
    }

    #[test]
    fn departures_name_their_reason() {
        assert_eq!(
            departure(b"b7 has disconnected (too slow to read)."),
            Some((&b"b7"[..], "too slow to read"))
        );
        assert_eq!(
            departure(b"b7 has disconnected."),
            Some((&b"b7"[..], "disconnected"))
        );
        assert_eq!(departure(b"b7 left the chat."), Some((&b"b7"[..], "left")));
        assert_eq!(departure(b"b7 joined the chat!"), None);
    }

    #[test]
    fn order_fingerprint_tells_orders_apart() {
        let (mut a, mut b, mut c) = (Order::default(), Order::default(), Order::default());
        for (s, q) in [(0, 0), (1, 0), (0, 1)] {
            a.push(s, q);
        }
        for (s, q) in [(0, 0), (1, 0), (0, 1)] {
            b.push(s, q);
        }
        for (s, q) in [(1, 0), (0, 0), (0, 1)] {
            c.push(s, q);
        }
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.lines, 3);
    }

    #[test]
    fn joins_of_a_login() {
        let f = Fleet::new(&[([127, 0, 0, 1], 9).into()], "b", 1, 64, 0).expect("a poll");
        assert_eq!(f.all_joins(10), 55);
        assert_eq!(f.joins_for(10, 10), 55);
        // The first 4 joins went to everyone, the 6 later ones only to the newcomer.
        assert_eq!(f.joins_for(10, 4), 10 + 6);
    }

    #[test]
    fn a_frame_cut_twice_is_read_whole() {
        // One WebSocket client (its socket connects to a listener that never
        // answers), already in the room.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut f = Fleet::new(&[addr], "b", 1, 64, 0)
            .unwrap()
            .websocket(addr, 1.0);
        f.target = 1;
        f.open_more();
        f.clients[0].state = State::In;
        // A server text frame of 3,000 bytes arriving in three reads: the
        // part kept after the second is over 1 KiB.
        let text = vec![b'x'; 3000];
        let mut frame = vec![0x81, 126, (3000 >> 8) as u8, (3000 & 0xff) as u8];
        frame.extend_from_slice(&text);
        for chunk in [&frame[..10], &frame[10..1500], &frame[1500..]] {
            f.take_frames(0, chunk, 0);
        }
        assert_eq!(f.clients[0].state, State::In);
        assert_eq!(f.c.other, 1, "the line arrived once, whole");
        assert!(f.clients[0].partial.is_empty());
    }

    #[test]
    fn line_size_includes_name_and_lf() {
        // "b3: " + 8 + 16 + pad + "\n" == 64
        assert_eq!(Fleet::min_line_size("b", 10), 1 + 1 + 2 + 24 + 1);
    }
}
