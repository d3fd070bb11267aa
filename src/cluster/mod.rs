//! Several servers, one room, through Redis (PROTOCOL.md section 10).
//!
//! Every server started with the same `--redis` URL and `--cluster-name`
//! serves the same room. A server never delivers a public line straight from
//! its own user: the room's [`Ask`]s go to Redis, where a Lua script gives
//! each line its id, appends it to a stream (the history) and publishes it,
//! in one atomic step; every server delivers what comes back on the room's
//! channel, in id order (`order::Order`), so all users see one order with
//! the same ids. Names are claimed in the same way (taken anywhere = taken),
//! each server keeps a heartbeat key with a TTL, and any server takes the
//! users of a server whose heartbeat expired out of the room, once.
//!
//! Redis connections are two more sockets in the loop's `mio::Poll` (one for
//! commands, pipelined and sent once per turn; one subscribed to the room's
//! channel and this server's own), driven as sans-IO RESP with the
//! `redis-protocol` crate (`resp::Link`), so the server stays one thread
//! that never blocks, except at start, where Redis must answer before the
//! server listens (or the server exits with one line).
//!
//! - `record`: a record's text form in Redis.
//! - `scripts`: the Lua scripts.
//! - `resp`: one RESP connection in the loop.
//! - `order`: exactly-once, in-order delivery, and catching up from the
//!   stream after a gap.

mod order;
mod record;
mod resp;
mod scripts;

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;

use crate::room::cluster::{Ask, Event, Record, Remote};
use crate::room::{Outbox, Room};
use crate::text::fold;
use order::{Next, Order};
use resp::{bytes, int, Link};

/// How long Redis has to answer at start.
const START_TIMEOUT: Duration = Duration::from_secs(3);
/// First delay before reconnecting after the link was lost; it doubles up
/// to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
/// The longest delay between reconnection attempts.
const RETRY_MAX: Duration = Duration::from_secs(1);
/// After Redis lost its data (a restart without persistence), how long no
/// server publishes: longer than [`RETRY_MAX`] and a connection, so every
/// server that was connected has reconnected and lifted the id counter to
/// its own last id before any new id is given out.
const FENCE: Duration = Duration::from_secs(2);
/// Heartbeats, and looks for dead servers, per `--node-ttl`: a heartbeat
/// lives [`BEAT_LIFE`] of these periods, so two may be late before the
/// others take this server out, and a dead server is taken out within
/// `--node-ttl` (its last heartbeat expires, then the next look finds it).
const BEATS_PER_TTL: u32 = 5;
/// Periods a heartbeat lives.
const BEAT_LIFE: u32 = 3;
/// Bytes of ordered lines that may wait to be delivered; beyond them the
/// subscribed link is not read (Redis keeps the rest, up to its pubsub
/// output limit; if it drops this server for it, the catch-up from the
/// stream takes over).
const INBOX_MAX: usize = 1 << 20;
/// Bytes read from the subscribed link at a time.
const SUB_READ: usize = 64 * 1024;
/// The stream keeps at least this many records (more if `--history` is
/// larger), so a server that lost its link for a moment can catch up.
const STREAM_MIN: usize = 1000;

/// Where Redis is: `redis://HOST:PORT[/DB]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database number (`SELECT`).
    pub db: u32,
}

impl Url {
    /// Parses `redis://HOST:PORT[/DB]` (the port defaults to 6379).
    pub fn parse(s: &str) -> Result<Url, String> {
        let bad = || format!("{s:?} is not a redis://HOST:PORT[/DB] URL");
        let rest = s.strip_prefix("redis://").ok_or_else(bad)?;
        let (hostport, db) = match rest.split_once('/') {
            Some((hp, "")) => (hp, 0),
            Some((hp, db)) => (hp, db.parse().map_err(|_| bad())?),
            None => (rest, 0),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().map_err(|_| bad())?)
            }
            _ => (hostport, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Url {
            host: host.to_owned(),
            port,
            db,
        })
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis://{}:{}/{}", self.host, self.port, self.db)
    }
}

/// How the cluster is set up (the server's flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--redis`.
    pub url: Url,
    /// `--cluster-name`: the prefix of every key and channel (with the
    /// database, `NAME/DB`, when the URL names one other than 0).
    pub name: String,
    /// `--node-ttl`: a server silent this long is taken out of the room.
    pub node_ttl: Duration,
    /// `--history`: lines loaded at start (the stream keeps at least
    /// `STREAM_MIN`).
    pub history: usize,
    /// `--announce-limit`, applied by the scripts with the whole room's count.
    pub announce_limit: usize,
}

/// What the cluster had when this server started.
#[derive(Debug)]
pub struct Loaded {
    /// The last `--history` public lines, oldest first (LF included).
    pub lines: Vec<(u64, Box<[u8]>)>,
    /// The last id given out.
    pub last_id: u64,
    /// The users on the other servers.
    pub users: Vec<Remote>,
}

/// What a command's reply is for, in the order the commands were sent.
#[derive(Debug)]
enum Reply {
    /// Nothing to do with it; an error is only logged (a link's name, a
    /// private message).
    Ignore(&'static str),
    /// Nothing to do with it, but an error means Redis cannot do its part
    /// now (loading its data, out of memory...): the link is dropped and
    /// made again, and the resync and catch-up that follow put things right
    /// (lines it did not order are told to their senders).
    Must(&'static str),
    /// A login's claim: 0 means the name is taken.
    Join { conn: usize, tag: u64 },
    /// A rename: 0 means the name is taken.
    Rename { conn: usize, tag: u64 },
    /// A heartbeat: 0 means the others took this server out of the room.
    Beat,
    /// The resync after a (re)connection: names another server took.
    Resync,
    /// The names held in the whole room.
    Names,
    /// The stream's records after the last delivered id.
    Range,
    /// This server's users taken out at shutdown.
    Farewell,
}

/// What waits in the inbox, in order.
#[derive(Debug)]
enum Due {
    /// A record to apply.
    Record(Record),
    /// Lines the catch-up did not find: the users are told.
    Lost(u64),
    /// After a catch-up's records: lines sent before the link was lost that
    /// Redis never ordered are told to their senders.
    Settle,
}

/// The cluster driver: the two links, the order, the timers.
pub struct Cluster {
    /// How it is set up.
    settings: Settings,
    /// Redis's address, resolved at start.
    addr: SocketAddr,
    /// This server's id in the cluster.
    node: String,
    /// The scripts with their prelude, ready for `EVAL`.
    scripts: Scripts,
    /// The command link.
    cmd: Option<Link>,
    /// The subscribed link.
    sub: Option<Link>,
    /// The replies the command link owes, oldest first.
    replies: VecDeque<Reply>,
    /// Channels confirmed subscribed on the current sub link.
    subscribed: usize,
    /// The resync after the current connection is done.
    synced: bool,
    /// Both links are ready and the room knows it.
    up: bool,
    /// Redis lost its data: the link goes up at this instant, once every
    /// server had its chance to lift the id counter.
    fence: Option<Instant>,
    /// Reconnecting: the next attempt and the delay after it.
    retry: Option<(Instant, Duration)>,
    /// When the link was lost (for the log).
    lost_at: Option<Instant>,
    /// Delivery order and catch-up.
    order: Order,
    /// Ordered records (and notices between them) not applied yet: the
    /// loop applies them within each turn's output budget, so a burst from
    /// the other servers (or a catch-up) is a reason to deliver over more
    /// turns, never to drop readers.
    inbox: VecDeque<Due>,
    /// Bytes of lines in `inbox`.
    inbox_bytes: usize,
    /// The subscribed link stopped reading with bytes possibly left.
    sub_more: bool,
    /// Public lines sent and not seen back yet: (tag, conn, epoch).
    in_flight: Vec<(u64, usize, u64)>,
    /// Counts link losses; in-flight lines of an earlier epoch that are not
    /// in the stream after the catch-up were never ordered.
    epoch: u64,
    /// When the next heartbeat is due.
    next_beat: Instant,
    /// When the next look for dead servers is due.
    next_reap: Instant,
    /// Shutting down: this server's users were handed back.
    farewell: bool,
    /// The poll tokens of the command and subscribed links.
    tokens: (Token, Token),
}

/// Which script to run.
#[derive(Debug, Clone, Copy)]
enum Script {
    Publish,
    Join,
    Leave,
    Rename,
    Beat,
    Reap,
    Resync,
}

/// The scripts, with the prelude, built once.
struct Scripts {
    publish: String,
    join: String,
    leave: String,
    rename: String,
    beat: String,
    reap: String,
    resync: String,
}

/// A line without its LF (scripts store and publish lines without it).
fn no_lf(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// Channel for the room's records.
fn room_channel(p: &str) -> String {
    format!("{p}:room")
}

/// Channel for private messages to `node`.
fn node_channel(p: &str, node: &str) -> String {
    format!("{p}:to:{node}")
}

/// A blocking call at start: sends `args` and reads one reply.
fn call(stream: &mut std::net::TcpStream, args: &[&[u8]]) -> io::Result<OwnedFrame> {
    let mut out = Vec::new();
    {
        let frames: Vec<redis_protocol::resp2::types::BorrowedFrame<'_>> = args
            .iter()
            .map(|a| redis_protocol::resp2::types::BorrowedFrame::BulkString(a))
            .collect();
        let frame = redis_protocol::resp2::types::BorrowedFrame::Array(&frames);
        out.resize(frame.encode_len(false), 0);
        let n = redis_protocol::resp2::encode::encode_borrowed(&mut out, &frame, false)
            .map_err(|e| io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
        out.truncate(n);
    }
    stream.write_all(&out)?;
    let mut input = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some((frame, _)) =
            decode(&input).map_err(|e| io::Error::new(ErrorKind::InvalidData, e.to_string()))?
        {
            if let OwnedFrame::Error(e) = &frame {
                return Err(io::Error::other(e.clone()));
            }
            return Ok(frame);
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        input.extend_from_slice(&buf[..n]);
    }
}

/// Records from an `XRANGE`/`XREVRANGE` reply: `[[0-ID, [r, BODY]], ...]`.
fn stream_records(frame: &OwnedFrame) -> Vec<Record> {
    let OwnedFrame::Array(entries) = frame else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| match e {
            OwnedFrame::Array(parts) => match (parts.first().and_then(bytes), parts.get(1)) {
                (Some(entry), Some(OwnedFrame::Array(fields))) => {
                    record::from_stream(entry, fields.get(1).and_then(bytes)?)
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Users from an `HGETALL` of the names: `folded, "NODE NAME", ...`.
fn users(frame: &OwnedFrame) -> Vec<Remote> {
    let OwnedFrame::Array(items) = frame else {
        return Vec::new();
    };
    items
        .chunks(2)
        .filter_map(|kv| {
            let v = std::str::from_utf8(bytes(kv.get(1)?)?).ok()?;
            let (node, name) = v.split_once(' ')?;
            Some(Remote {
                name: name.to_owned(),
                node: node.to_owned(),
            })
        })
        .collect()
}

/// A new server id: unique enough among the servers of one room.
fn new_node_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// Connects to Redis at start: it must answer (or the server exits with one
/// line). Loads the history and the names; the links go into the loop with
/// [`Cluster::register`].
pub fn start(mut settings: Settings) -> Result<(Cluster, Loaded), String> {
    // Keys live in the database the URL names, but pub/sub channels are
    // shared by all databases of a Redis: a room in another database gets
    // a prefix of its own ('/' cannot be in a --cluster-name).
    if settings.url.db != 0 {
        settings.name = format!("{}/{}", settings.name, settings.url.db);
    }
    let url = settings.url.clone();
    let fail = |e: &dyn std::fmt::Display| format!("cannot reach Redis at {url}: {e}");
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| fail(&e))?
        .next()
        .ok_or_else(|| fail(&"no address"))?;
    let connect = || -> io::Result<std::net::TcpStream> {
        let s = std::net::TcpStream::connect_timeout(&addr, START_TIMEOUT)?;
        s.set_read_timeout(Some(START_TIMEOUT))?;
        s.set_nodelay(true)?;
        Ok(s)
    };
    let mut cmd = connect().map_err(|e| fail(&e))?;
    call(&mut cmd, &[b"PING"]).map_err(|e| fail(&e))?;
    let db = url.db.to_string();
    if url.db != 0 {
        call(&mut cmd, &[b"SELECT", db.as_bytes()]).map_err(|e| fail(&e))?;
    }
    let p = settings.name.clone();
    let last_id =
        int(&call(&mut cmd, &[b"GET", format!("{p}:id").as_bytes()]).map_err(|e| fail(&e))?)
            .unwrap_or(0) as u64;
    let count = settings.history.to_string();
    let mut lines: Vec<(u64, Box<[u8]>)> = if settings.history == 0 {
        Vec::new()
    } else {
        let frame = call(
            &mut cmd,
            &[
                b"XREVRANGE",
                format!("{p}:log").as_bytes(),
                b"+",
                b"-",
                b"COUNT",
                count.as_bytes(),
            ],
        )
        .map_err(|e| fail(&e))?;
        stream_records(&frame)
            .into_iter()
            .filter(|r| r.id != 0 && r.id <= last_id && !r.line.is_empty())
            .map(|r| (r.id, r.line))
            .collect()
    };
    lines.reverse();
    let names =
        call(&mut cmd, &[b"HGETALL", format!("{p}:names").as_bytes()]).map_err(|e| fail(&e))?;
    let sub = connect().map_err(|e| fail(&e))?;
    let to_mio = |s: std::net::TcpStream| -> io::Result<TcpStream> {
        s.set_read_timeout(None)?;
        s.set_nonblocking(true)?;
        Ok(TcpStream::from_std(s))
    };
    let cmd = to_mio(cmd).map_err(|e| fail(&e))?;
    let sub = to_mio(sub).map_err(|e| fail(&e))?;
    let node = new_node_id();
    let now = Instant::now();
    let cluster = Cluster {
        scripts: Scripts {
            publish: scripts::full(scripts::PUBLISH),
            join: scripts::full(scripts::JOIN),
            leave: scripts::full(scripts::LEAVE),
            rename: scripts::full(scripts::RENAME),
            beat: scripts::full(scripts::BEAT),
            reap: scripts::full(scripts::REAP),
            resync: scripts::full(scripts::RESYNC),
        },
        addr,
        node,
        cmd: Some(Link::new(cmd, true)),
        sub: Some(Link::new(sub, true)),
        replies: VecDeque::new(),
        subscribed: 0,
        synced: false,
        up: true,
        fence: None,
        retry: None,
        lost_at: None,
        order: Order::new(last_id),
        inbox: VecDeque::new(),
        inbox_bytes: 0,
        sub_more: false,
        in_flight: Vec::new(),
        epoch: 0,
        next_beat: now,
        next_reap: now + settings.node_ttl / BEATS_PER_TTL,
        farewell: false,
        tokens: (Token(0), Token(0)),
        settings,
    };
    log::info!(
        "cluster {:?} at {url}: this server is {}, {} user(s) on other servers, last id {last_id}",
        cluster.settings.name,
        cluster.node,
        users(&names).len()
    );
    Ok((
        cluster,
        Loaded {
            lines,
            last_id,
            users: users(&names),
        },
    ))
}

impl Cluster {
    /// This server's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Once the room exists: the first resync, the names, the subscription.
    pub fn begin(&mut self, room: &mut Room) {
        self.hello(room);
    }

    /// Puts the links into the loop's poll (and remembers the tokens for
    /// reconnections).
    pub fn register(&mut self, registry: &Registry, cmd: Token, sub: Token) -> io::Result<()> {
        self.tokens = (cmd, sub);
        for (link, token) in [(self.cmd.as_mut(), cmd), (self.sub.as_mut(), sub)] {
            if let Some(link) = link {
                registry.register(
                    &mut link.stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                link.writable = true;
            }
        }
        Ok(())
    }

    /// The stream's length: at least `--history`, at least [`STREAM_MIN`].
    fn maxlen(&self) -> String {
        self.settings.history.max(STREAM_MIN).to_string()
    }

    /// Queues an `EVAL` of `script` with `args` after the prefix.
    fn eval(&mut self, script: Script, args: &[&[u8]], reply: Reply) {
        let Cluster {
            cmd: Some(cmd),
            scripts,
            settings,
            replies,
            ..
        } = self
        else {
            return;
        };
        let text = match script {
            Script::Publish => &scripts.publish,
            Script::Join => &scripts.join,
            Script::Leave => &scripts.leave,
            Script::Rename => &scripts.rename,
            Script::Beat => &scripts.beat,
            Script::Reap => &scripts.reap,
            Script::Resync => &scripts.resync,
        };
        let mut all: Vec<&[u8]> = vec![b"EVAL", text.as_bytes(), b"0", settings.name.as_bytes()];
        all.extend_from_slice(args);
        cmd.command(&all);
        replies.push_back(reply);
    }

    /// What a fresh connection does first: the database, the leaves the
    /// room kept while the link was down, the resync (this server's users
    /// and ids), the names, and the subscription.
    fn hello(&mut self, room: &mut Room) {
        let db = self.settings.url.db.to_string();
        if self.settings.url.db != 0 {
            if let Some(cmd) = self.cmd.as_mut() {
                cmd.command(&[b"SELECT", db.as_bytes()]);
                self.replies.push_back(Reply::Must("SELECT"));
            }
        }
        // Named, so CLIENT LIST in Redis says which server a link is.
        let name = |what: &str| format!("{}:{}:{what}", self.settings.name, self.node);
        let (cmd_name, sub_name) = (name("cmd"), name("sub"));
        if let Some(cmd) = self.cmd.as_mut() {
            cmd.command(&[b"CLIENT", b"SETNAME", cmd_name.as_bytes()]);
            self.replies.push_back(Reply::Ignore("CLIENT SETNAME"));
        }
        if let Some(sub) = self.sub.as_mut() {
            // Its +OK is not a message: the subscribed side skips it.
            sub.command(&[b"CLIENT", b"SETNAME", sub_name.as_bytes()]);
        }
        let up = std::mem::replace(&mut self.up, true);
        self.send_asks(room);
        self.up = up;
        self.resync(room);
        let p = self.settings.name.clone();
        if let Some(sub) = self.sub.as_mut() {
            sub.command(&[
                b"SUBSCRIBE",
                room_channel(&p).as_bytes(),
                node_channel(&p, &self.node).as_bytes(),
            ]);
        }
        self.subscribed = 0;
    }

    /// How long a heartbeat lives, in ms, as the scripts take it.
    fn beat_life(&self) -> String {
        (self.settings.node_ttl * BEAT_LIFE / BEATS_PER_TTL)
            .as_millis()
            .to_string()
    }

    /// This server's users and ids made to match Redis (after a connection,
    /// or when the others took this server out), then the whole room's
    /// names.
    fn resync(&mut self, room: &Room) {
        let local = room.local_names();
        let maxlen = self.maxlen();
        let limit = self.settings.announce_limit.to_string();
        let ttl = self.beat_life();
        let last = self.order.last().to_string();
        let fence = FENCE.as_millis().to_string();
        let folded: Vec<String> = local.iter().map(|n| fold(n)).collect();
        let local = &local;
        let node = self.node.clone();
        let mut args: Vec<&[u8]> = vec![
            maxlen.as_bytes(),
            limit.as_bytes(),
            node.as_bytes(),
            ttl.as_bytes(),
            last.as_bytes(),
            fence.as_bytes(),
        ];
        for (name, f) in local.iter().zip(&folded) {
            args.push(name.as_bytes());
            args.push(f.as_bytes());
        }
        self.eval(Script::Resync, &args, Reply::Resync);
        if let Some(cmd) = self.cmd.as_mut() {
            cmd.command(&[
                b"HGETALL",
                format!("{}:names", self.settings.name).as_bytes(),
            ]);
            self.replies.push_back(Reply::Names);
        }
        self.synced = false;
        self.next_beat = Instant::now() + self.settings.node_ttl / BEATS_PER_TTL;
    }

    /// The room's asks of this turn go out as commands (nothing while the
    /// link is down: the room refuses what needs the cluster, and keeps its
    /// leaves until the link is back).
    fn send_asks(&mut self, room: &mut Room) {
        if self.cmd.is_none() || self.farewell {
            return;
        }
        let asks = room.take_asks();
        if asks.is_empty() {
            return;
        }
        let maxlen = self.maxlen();
        let limit = self.settings.announce_limit.to_string();
        let node = self.node.clone();
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for ask in asks {
            match ask {
                Ask::Publish { conn, tag, line } => {
                    lines.push(record::body(&node, conn as u64, tag, &Event::Line, &line));
                    self.in_flight.push((tag, conn, self.epoch));
                }
                Ask::Join {
                    conn,
                    tag,
                    name,
                    line,
                } => {
                    let (c, t, f) = (conn.to_string(), tag.to_string(), fold(&name));
                    let line = no_lf(&line);
                    self.eval(
                        Script::Join,
                        &[
                            maxlen.as_bytes(),
                            limit.as_bytes(),
                            node.as_bytes(),
                            c.as_bytes(),
                            t.as_bytes(),
                            name.as_bytes(),
                            f.as_bytes(),
                            line,
                        ],
                        Reply::Join { conn, tag },
                    );
                }
                Ask::Leave { name, line } => {
                    let f = fold(&name);
                    let line = no_lf(&line);
                    self.eval(
                        Script::Leave,
                        &[
                            maxlen.as_bytes(),
                            limit.as_bytes(),
                            node.as_bytes(),
                            name.as_bytes(),
                            f.as_bytes(),
                            line,
                        ],
                        Reply::Must("leave"),
                    );
                }
                Ask::Rename {
                    conn,
                    tag,
                    old,
                    new,
                    line,
                } => {
                    let (c, t) = (conn.to_string(), tag.to_string());
                    let (of, nf) = (fold(&old), fold(&new));
                    let line = no_lf(&line);
                    self.eval(
                        Script::Rename,
                        &[
                            maxlen.as_bytes(),
                            node.as_bytes(),
                            c.as_bytes(),
                            t.as_bytes(),
                            old.as_bytes(),
                            of.as_bytes(),
                            new.as_bytes(),
                            nf.as_bytes(),
                            line,
                        ],
                        Reply::Rename { conn, tag },
                    );
                }
                Ask::Pm {
                    node: to_node,
                    to,
                    line,
                } => {
                    let mut payload = to.into_bytes();
                    payload.push(b'\n');
                    payload.extend_from_slice(&line);
                    let channel = node_channel(&self.settings.name, &to_node);
                    if let Some(cmd) = self.cmd.as_mut() {
                        cmd.command(&[b"PUBLISH", channel.as_bytes(), &payload]);
                        self.replies.push_back(Reply::Ignore("PUBLISH"));
                    }
                }
            }
        }
        if !lines.is_empty() {
            let mut args: Vec<&[u8]> = vec![maxlen.as_bytes()];
            args.extend(lines.iter().map(Vec::as_slice));
            self.eval(Script::Publish, &args, Reply::Must("publish"));
        }
    }

    /// Once per turn: the room's asks, the timers, and the commands written.
    pub fn turn(
        &mut self,
        registry: &Registry,
        room: &mut Room,
        out: &mut impl Outbox,
        now: Instant,
    ) {
        if let Some((at, _)) = self.retry {
            if now >= at && self.cmd.is_none() {
                self.reconnect(registry, now);
            }
        }
        if self.fence.is_some_and(|t| now >= t) {
            self.maybe_up(room, out, now);
        }
        if self.up {
            self.send_asks(room);
        }
        if self.up && !self.farewell {
            if now >= self.next_beat && self.synced {
                let life = self.beat_life();
                let node = self.node.clone();
                self.eval(
                    Script::Beat,
                    &[node.as_bytes(), life.as_bytes()],
                    Reply::Beat,
                );
                self.next_beat = now + self.settings.node_ttl / BEATS_PER_TTL;
            }
            if now >= self.next_reap {
                let (maxlen, limit) = (self.maxlen(), self.settings.announce_limit.to_string());
                let node = self.node.clone();
                self.eval(
                    Script::Reap,
                    &[maxlen.as_bytes(), limit.as_bytes(), node.as_bytes(), b""],
                    Reply::Must("reap"),
                );
                self.next_reap = now + self.settings.node_ttl / BEATS_PER_TTL;
            }
        }
        self.flush(room, out, now);
    }

    /// Writes what the links have queued; a failure drops the link.
    fn flush(&mut self, room: &mut Room, out: &mut impl Outbox, now: Instant) {
        let mut failed = None;
        for link in [self.cmd.as_mut(), self.sub.as_mut()].into_iter().flatten() {
            if link.connected {
                if let Err(e) = link.flush() {
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = failed {
            self.lost(&e, room, out, now);
        }
    }

    /// The next instant a timer of the cluster is due.
    pub fn next_due(&self) -> Instant {
        let mut next = self.next_beat.min(self.next_reap);
        if let Some((at, _)) = self.retry {
            next = next.min(at);
        }
        if let Some(at) = self.fence {
            next = next.min(at);
        }
        next
    }

    /// Whether WRITABLE interest is wanted on a link now (connecting, or
    /// commands waiting), and its registration to change.
    pub fn interest(&mut self, registry: &Registry) {
        let (cmd, sub) = self.tokens;
        for (link, token) in [(self.cmd.as_mut(), cmd), (self.sub.as_mut(), sub)] {
            if let Some(link) = link {
                let want = !link.connected || link.pending();
                if want != link.writable {
                    let interest = if want {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    if registry
                        .reregister(&mut link.stream, token, interest)
                        .is_ok()
                    {
                        link.writable = want;
                    }
                }
            }
        }
    }

    /// A link's socket is ready: finish connecting, write, read.
    pub fn ready(&mut self, is_cmd: bool, room: &mut Room, out: &mut impl Outbox, now: Instant) {
        let link = if is_cmd {
            self.cmd.as_mut()
        } else {
            self.sub.as_mut()
        };
        let Some(link) = link else {
            return;
        };
        if !link.connected {
            match link.stream.take_error() {
                Ok(None) if link.stream.peer_addr().is_ok() => link.connected = true,
                Ok(None) => return, // still connecting
                Ok(Some(e)) | Err(e) => return self.lost(&e, room, out, now),
            }
            let both = [self.cmd.as_ref(), self.sub.as_ref()]
                .into_iter()
                .all(|l| l.is_some_and(|l| l.connected));
            if both {
                self.hello(room);
            }
        }
        let link = if is_cmd {
            self.cmd.as_mut()
        } else {
            self.sub.as_mut()
        };
        let Some(link) = link else {
            return;
        };
        if is_cmd {
            let mut frames = Vec::new();
            let result = link.read(usize::MAX, |f| frames.push(f));
            for frame in frames {
                if self.cmd.is_none() {
                    return; // a reply made this link go: the rest is moot
                }
                self.reply(frame, room, out, now);
            }
            if let Err(e) = result {
                return self.lost(&e, room, out, now);
            }
        } else {
            self.read_sub(room, out, now);
        }
        self.flush(room, out, now);
    }

    /// Reads the subscribed link while the inbox has room; what is left in
    /// the socket is read once the inbox has room again.
    fn read_sub(&mut self, room: &mut Room, out: &mut impl Outbox, now: Instant) {
        self.sub_more = true;
        while self.inbox_bytes < INBOX_MAX {
            let Some(link) = self.sub.as_mut() else {
                return;
            };
            let mut frames = Vec::new();
            let result = link.read(SUB_READ, |f| frames.push(f));
            for frame in frames {
                if self.sub.is_none() {
                    return;
                }
                self.message(frame, room, out, now);
            }
            match result {
                Err(e) => return self.lost(&e, room, out, now),
                Ok(false) => {
                    self.sub_more = false;
                    return;
                }
                Ok(true) => {}
            }
        }
    }

    /// True while ordered records wait to be applied (or to be read): the
    /// loop must not sleep.
    pub fn backlog(&self) -> bool {
        !self.inbox.is_empty() || (self.sub_more && self.sub.is_some())
    }

    /// Applies waiting records in order while `more` says the turn's output
    /// budget allows, then reads on if the link was left with bytes.
    pub fn deliver<O: Outbox>(
        &mut self,
        room: &mut Room,
        out: &mut O,
        now: Instant,
        mut more: impl FnMut(&O) -> bool,
    ) {
        while !self.inbox.is_empty() && more(out) {
            match self.inbox.pop_front() {
                Some(Due::Record(rec)) => {
                    self.inbox_bytes -= rec.line.len();
                    if rec.origin == self.node && rec.event == Event::Line {
                        self.in_flight.retain(|&(tag, _, _)| tag != rec.tag);
                    }
                    room.apply(&rec, now, out);
                }
                Some(Due::Lost(n)) => room.lines_lost(n, out),
                Some(Due::Settle) => self.settle_in_flight(room, out),
                None => break,
            }
        }
        if self.sub_more && self.inbox_bytes < INBOX_MAX {
            self.read_sub(room, out, now);
            self.flush(room, out, now);
        }
    }

    /// A reply on the command link, for the oldest command still owed one.
    fn reply(&mut self, frame: OwnedFrame, room: &mut Room, out: &mut impl Outbox, now: Instant) {
        let Some(what) = self.replies.pop_front() else {
            log::warn!("cluster: a reply nobody asked for");
            return;
        };
        if let OwnedFrame::Error(e) = &frame {
            let what_for = match &what {
                Reply::Ignore(w) | Reply::Must(w) => w,
                Reply::Join { .. } => "a login",
                Reply::Rename { .. } => "a rename",
                Reply::Beat => "the heartbeat",
                Reply::Resync => "the resync",
                Reply::Names => "the names",
                Reply::Range => "the history",
                Reply::Farewell => "the farewell",
            };
            log::error!("cluster: Redis refused {what_for}: {e}");
            if !matches!(what, Reply::Ignore(_) | Reply::Farewell) {
                let e = io::Error::other(format!("{what_for} refused"));
                self.lost(&e, room, out, now);
            }
            return;
        }
        match what {
            Reply::Ignore(_) | Reply::Must(_) | Reply::Farewell => {}
            Reply::Join { conn, tag } | Reply::Rename { conn, tag } => {
                if int(&frame) == Some(0) {
                    room.claim_refused(conn, tag, now, out);
                }
            }
            Reply::Resync => {
                if let OwnedFrame::Array(reply) = &frame {
                    let fence = reply.first().and_then(int).unwrap_or(0);
                    if fence > 0 {
                        log::warn!("cluster: Redis lost its data; public lines wait {fence} ms so that every server's ids are in first");
                        self.fence = Some(now + Duration::from_millis(fence as u64));
                    }
                    for name in reply.iter().skip(1).filter_map(bytes) {
                        let name = String::from_utf8_lossy(name);
                        log::warn!(
                            "cluster: {name} was taken on another server while the link was down"
                        );
                        room.name_lost(&name, out);
                    }
                }
                self.synced = true;
                self.maybe_up(room, out, now);
            }
            Reply::Beat => {
                if int(&frame) == Some(0) && self.synced {
                    log::warn!("cluster: the other servers took this one out of the room (no heartbeat within --node-ttl); putting its users back");
                    self.resync(room);
                }
            }
            Reply::Names => room.set_remote(users(&frame)),
            Reply::Range => {
                let mut deliver = Vec::new();
                let lost = self
                    .order
                    .fetched(stream_records(&frame), &mut |r| deliver.push(r));
                for rec in deliver {
                    self.enqueue(rec);
                }
                if lost > 0 {
                    log::warn!("cluster: {lost} line(s) were no longer in Redis's history");
                    self.inbox.push_back(Due::Lost(lost));
                }
                self.inbox.push_back(Due::Settle);
            }
        }
    }

    /// The link is ready once synced and subscribed: the room is told, and
    /// what was missed meanwhile is fetched.
    fn maybe_up(&mut self, room: &mut Room, out: &mut impl Outbox, now: Instant) {
        if self.up && self.lost_at.is_none() && self.synced && self.subscribed >= 2 {
            // The first start: catch up on what came between loading and
            // subscribing.
            self.fetch_after_catch_up();
            return;
        }
        if self.up || !self.synced || self.subscribed < 2 {
            return;
        }
        if self.fence.is_some_and(|t| now < t) {
            return;
        }
        self.fence = None;
        self.up = true;
        self.retry = None;
        if let Some(at) = self.lost_at.take() {
            log::warn!(
                "cluster: the link to Redis is back after {:.1} s",
                now.duration_since(at).as_secs_f64()
            );
        }
        self.fetch_after_catch_up();
        room.link(true, now, out);
    }

    /// Asks the stream for everything after the last delivered id.
    fn fetch_after_catch_up(&mut self) {
        if let Some(after) = self.order.catch_up() {
            self.fetch(after);
        }
    }

    /// Queues `XRANGE` for the records after `after`.
    fn fetch(&mut self, after: u64) {
        let key = format!("{}:log", self.settings.name);
        let from = format!("(0-{after}");
        if let Some(cmd) = self.cmd.as_mut() {
            cmd.command(&[b"XRANGE", key.as_bytes(), from.as_bytes(), b"+"]);
            self.replies.push_back(Reply::Range);
        }
    }

    /// A message on the subscribed link: records for the room, a private
    /// message for a user here, or a subscription's confirmation.
    fn message(&mut self, frame: OwnedFrame, room: &mut Room, out: &mut impl Outbox, now: Instant) {
        let OwnedFrame::Array(parts) = frame else {
            return;
        };
        let kind = parts.first().and_then(bytes).unwrap_or_default();
        if kind == b"subscribe" {
            self.subscribed += 1;
            if self.subscribed >= 2 {
                self.maybe_up(room, out, now);
            }
            return;
        }
        if kind != b"message" {
            return;
        }
        let channel = parts.get(1).and_then(bytes).unwrap_or_default();
        let Some(payload) = parts.get(2).and_then(bytes) else {
            return;
        };
        if channel == room_channel(&self.settings.name).as_bytes() {
            for text in payload.split(|&b| b == b'\n') {
                let Some(rec) = record::parse(text) else {
                    log::warn!(
                        "cluster: a record that does not parse: {:?}",
                        String::from_utf8_lossy(text)
                    );
                    continue;
                };
                let mut deliver = Vec::new();
                if let Next::Fetch(after) = self.order.live(rec, &mut |r| deliver.push(r)) {
                    self.fetch(after);
                }
                for rec in deliver {
                    self.enqueue(rec);
                }
            }
        } else if let Some(nl) = payload.iter().position(|&b| b == b'\n') {
            let to = String::from_utf8_lossy(&payload[..nl]);
            room.pm_in(&to, &payload[nl + 1..], out);
        }
    }

    /// One record, in order, for [`Cluster::deliver`].
    fn enqueue(&mut self, rec: Record) {
        self.inbox_bytes += rec.line.len();
        self.inbox.push_back(Due::Record(rec));
    }

    /// After a catch-up: lines sent before the link was lost that the
    /// cluster never ordered are told to their senders.
    fn settle_in_flight(&mut self, room: &mut Room, out: &mut impl Outbox) {
        let epoch = self.epoch;
        let mut lost = Vec::new();
        self.in_flight.retain(|&(_, conn, e)| {
            if e < epoch {
                lost.push(conn);
                false
            } else {
                true
            }
        });
        for conn in lost {
            room.not_delivered(conn, out);
        }
    }

    /// The link to Redis failed: the room is told, both links are dropped,
    /// and a reconnection is planned.
    fn lost(&mut self, e: &io::Error, room: &mut Room, out: &mut impl Outbox, now: Instant) {
        if self.farewell {
            self.cmd = None;
            self.sub = None;
            return;
        }
        let delay = self
            .retry
            .map_or(RETRY_MIN, |(_, d)| (d * 2).min(RETRY_MAX));
        if self.lost_at.is_none() {
            log::warn!("cluster: lost the link to Redis ({e}); users stay, public lines wait until it is back");
            self.lost_at = Some(now);
            self.epoch += 1;
        } else {
            log::debug!("cluster: reconnecting failed: {e}");
        }
        self.cmd = None;
        self.sub = None;
        self.replies.clear();
        self.subscribed = 0;
        self.synced = false;
        self.fence = None;
        self.sub_more = false;
        self.order.fetch_failed();
        self.retry = Some((now + delay, delay));
        if self.up {
            self.up = false;
            room.link(false, now, out);
        }
    }

    /// Starts a new connection (both links, non-blocking, registered for
    /// WRITABLE: connected when writable); the next attempt is planned in
    /// case this one fails.
    fn reconnect(&mut self, registry: &Registry, now: Instant) {
        let (_, delay) = self.retry.unwrap_or((now, RETRY_MIN));
        self.retry = Some((now + delay.max(RETRY_MIN), (delay * 2).min(RETRY_MAX)));
        let (Ok(c), Ok(s)) = (TcpStream::connect(self.addr), TcpStream::connect(self.addr)) else {
            return;
        };
        let _ = c.set_nodelay(true);
        let _ = s.set_nodelay(true);
        self.cmd = Some(Link::new(c, false));
        self.sub = Some(Link::new(s, false));
        if let Err(e) = self.register(registry, self.tokens.0, self.tokens.1) {
            log::debug!("cluster: register: {e}");
            self.cmd = None;
            self.sub = None;
        }
    }

    /// At shutdown: this server's users are taken out of the room at once
    /// (the others are told they disconnected).
    pub fn farewell(&mut self) {
        if self.farewell || !self.up {
            self.farewell = true;
            return;
        }
        let (maxlen, limit) = (self.maxlen(), self.settings.announce_limit.to_string());
        let node = self.node.clone();
        self.eval(
            Script::Reap,
            &[
                maxlen.as_bytes(),
                limit.as_bytes(),
                node.as_bytes(),
                node.as_bytes(),
            ],
            Reply::Farewell,
        );
        self.farewell = true;
    }

    /// Nothing left to send or wait for (the farewell was answered).
    pub fn settled(&self) -> bool {
        self.cmd
            .as_ref()
            .is_none_or(|l| !l.pending() && self.replies.is_empty())
    }
}
