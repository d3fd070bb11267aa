//! A real `redis-server` for the cluster tests (PROTOCOL.md section 10), and
//! helpers to run several `chat-server`s against it.
//!
//! [`Redis::start`] runs Debian's `redis-server` on a free loopback port in a
//! temporary directory, waits until it answers `PING`, and kills it (by PID)
//! when dropped. It can be killed (`SIGTERM` or `kill -9`) and restarted on
//! the same port with the same directory, to play a Redis that goes away.
//! Without `redis-server` the test fails with one line saying what to
//! install; it never skips.
//!
//! Use with `mod common; mod redis_support;` in a test file.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};

use crate::common::{Client, Server};

/// Where Debian's `redis-server` package puts the server (`REDIS_SERVER`
/// overrides).
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// How long Redis has to answer `PING` after it was started.
const READY: Duration = Duration::from_secs(10);

/// What Redis keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Nothing (`--save '' --appendonly no`): a restart is a fresh Redis.
    Nothing,
    /// An append-only file written before each reply (`--appendonly yes
    /// --appendfsync always`): a restart has every acknowledged write back.
    /// (With the default `everysec`, Redis may answer before it wrote when
    /// the disk is slow, and a `kill -9` then loses up to 2 s.)
    Aof,
}

/// A `redis-server` process on a loopback port, killed when dropped.
pub struct Redis {
    /// The process, while it runs.
    child: Option<Child>,
    /// The port it listens on (the same after a restart).
    pub port: u16,
    /// Its working directory (data files, log), removed when dropped.
    dir: tempfile::TempDir,
    /// What it keeps on disk.
    keep: Keep,
}

/// The `redis-server` binary, or a failure naming the package.
fn binary() -> PathBuf {
    let path = std::env::var_os("REDIS_SERVER").map_or(PathBuf::from(REDIS_SERVER), PathBuf::from);
    assert!(
        path.exists(),
        "redis-server not found at {}: install it with `apt-get install redis-server` (or run scripts/test.sh)",
        path.display()
    );
    path
}

/// A loopback port that was free a moment ago (the OS picked it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

impl Redis {
    /// A fresh Redis that keeps nothing on disk.
    pub fn start() -> Redis {
        Self::start_keeping(Keep::Nothing)
    }

    /// A fresh Redis that keeps `keep` on disk.
    pub fn start_keeping(keep: Keep) -> Redis {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir,
            keep,
        };
        redis.launch();
        redis
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process on `self.port` and waits until it answers.
    fn launch(&mut self) {
        let (appendonly, fsync) = match self.keep {
            Keep::Nothing => ("no", "everysec"),
            Keep::Aof => ("yes", "always"),
        };
        let log = self.dir.path().join("redis.log");
        let child = Command::new(binary())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", appendonly])
            .args(["--appendfsync", fsync])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let t = Instant::now();
        loop {
            if let Ok(OwnedFrame::SimpleString(s)) = self.try_call(&["PING"]) {
                if s == b"PONG" {
                    return;
                }
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || t.elapsed() > READY {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                self.kill();
                panic!(
                    "redis-server did not answer PING on port {} (exit {exited:?}):\n{text}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it with SIGTERM (Redis shuts down cleanly, writing its data if it
    /// keeps any) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let t = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if t.elapsed() > READY {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.wait();
        }
    }

    /// Kills it with SIGKILL (`kill -9`: a crash) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same directory (after
    /// [`Redis::stop`] or [`Redis::kill`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running redis-server");
        self.launch();
    }

    /// What it logged (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// One command on a new connection; the reply (errors as `Err`).
    pub fn try_call(&self, args: &[&str]) -> std::io::Result<OwnedFrame> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let frames: Vec<BorrowedFrame<'_>> = args
            .iter()
            .map(|a| BorrowedFrame::BulkString(a.as_bytes()))
            .collect();
        let frame = BorrowedFrame::Array(&frames);
        let mut out = vec![0; frame.encode_len(false)];
        let n = encode_borrowed(&mut out, &frame, false)
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
        s.write_all(&out[..n])?;
        let mut input = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let parsed = decode(&input)
                .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
            if let Some((frame, _)) = parsed {
                if let OwnedFrame::Error(e) = &frame {
                    return Err(std::io::Error::other(e.clone()));
                }
                return Ok(frame);
            }
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            input.extend_from_slice(&buf[..n]);
        }
    }

    /// One command; panics if Redis does not answer or refuses it.
    pub fn call(&self, args: &[&str]) -> OwnedFrame {
        self.try_call(args)
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// A string or integer reply as text (`""` for nil).
    pub fn text(&self, args: &[&str]) -> String {
        match self.call(args) {
            OwnedFrame::BulkString(b) | OwnedFrame::SimpleString(b) => {
                String::from_utf8_lossy(&b).into_owned()
            }
            OwnedFrame::Integer(i) => i.to_string(),
            OwnedFrame::Null => String::new(),
            f => panic!("redis {args:?}: not a string: {f:?}"),
        }
    }

    /// One field of `INFO SECTION` (e.g. `used_cpu_sys` of `cpu`).
    pub fn info(&self, section: &str, field: &str) -> String {
        let text = self.text(&["INFO", section]);
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("INFO {section} has no {field}:\n{text}"))
            .trim()
            .to_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a `chat-server` of the cluster at `redis` with `args` besides
/// `--redis URL`.
pub fn node(redis: &Redis, args: &[&str]) -> Server {
    let url = redis.url();
    let mut all = vec!["--redis", url.as_str()];
    all.extend_from_slice(args);
    Server::start(&all)
}

/// Starts `n` servers of one cluster with the same `args`.
pub fn nodes(redis: &Redis, n: usize, args: &[&str]) -> Vec<Server> {
    (0..n).map(|_| node(redis, args)).collect()
}

/// Logs `name` in on `server` with ids on (`/ids on` before the name);
/// returns the client, which has read up to its own join notice.
pub fn login_ids(server: &Server, name: &str) -> Client {
    let mut c = server.connect();
    c.expect_prefix("[SERVER]: ");
    c.send("/ids on");
    c.expect_prefix("[SERVER]: Ids on");
    c.send(name);
    c.read_until_match(|l| l.ends_with(&format!("[SERVER]: {name} joined the chat!")));
    c
}

/// The id of a public line as a client with ids on sees it (`@ID ...`).
pub fn id_of(line: &str) -> Option<u64> {
    line.strip_prefix('@')?.split_once(' ')?.0.parse().ok()
}

/// Reads `client`'s lines until `done` says so (given every public line
/// read so far, with ids); returns them, and the other lines apart.
pub fn read_public(
    client: &mut Client,
    mut done: impl FnMut(&[(u64, String)]) -> bool,
) -> (Vec<(u64, String)>, Vec<String>) {
    let mut public = Vec::new();
    let mut other = Vec::new();
    while !done(&public) {
        let l = client.line();
        match id_of(&l) {
            Some(id) => {
                let text = l.split_once(' ').map_or("", |(_, t)| t).to_owned();
                public.push((id, text));
            }
            None => other.push(l),
        }
    }
    (public, other)
}

/// Waits (polling) until `cond` holds; panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    wait_on(&[], what, limit, cond);
}

/// Like [`wait_for`]; the panic shows what `servers` logged.
pub fn wait_on(servers: &[Server], what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() >= limit {
            let logs: Vec<String> = servers.iter().map(Server::logs).collect();
            panic!(
                "{what}: not within {limit:?}; the servers logged:\n{}",
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The chat address of `server` (for a client of another kind).
pub fn addr(server: &Server) -> SocketAddr {
    server.addr
}

/// Logs `names` in one by one, the i-th on `servers[i % len]`, with ids on
/// (`ids`) or off; every earlier user reads each newcomer's join notice, so
/// all start level.
pub fn spread(servers: &[Server], names: &[&str], ids: bool) -> Vec<Client> {
    let mut clients: Vec<Client> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let server = &servers[i % servers.len()];
        let c = if ids {
            login_ids(server, name)
        } else {
            server.login(name)
        };
        let joined = format!("[SERVER]: {name} joined the chat!");
        for earlier in clients.iter_mut() {
            earlier.read_until_match(|l| l.ends_with(&joined));
        }
        clients.push(c);
    }
    clients
}

/// After a name was sent by a client with ids on: the welcome, the history
/// block if there is one (its lines are returned), then the newcomer's own
/// join notice (with or without an id: quiet joins have none).
pub fn welcome_with_ids(c: &mut Client, name: &str) -> Vec<String> {
    let welcome = c.expect_prefix("[SERVER]: Welcome to the chat, ");
    assert!(welcome.contains(name), "{welcome:?}");
    let mut history = Vec::new();
    let mut next = c.line();
    if next.starts_with("[SERVER]: History (") {
        history = c.read_until("[SERVER]: End of history.");
        next = c.line();
    }
    assert!(
        next.ends_with(&format!("[SERVER]: {name} joined the chat!")),
        "{next:?}"
    );
    history
}

/// Logs `name` in on `server` and reads its welcome, the room's history (a
/// name that was in the room before is in it) and its own join notice.
pub fn enter(server: &Server, name: &str) -> Client {
    let mut c = server.connect();
    c.expect_prefix("[SERVER]: ");
    c.send(name);
    c.expect_welcome(name);
    c
}

/// This server's id in the cluster, from its log.
pub fn node_id(server: &Server) -> String {
    let log = server.logs();
    let at = log
        .find("this server is ")
        .unwrap_or_else(|| panic!("no node id in the log:\n{log}"));
    let rest = &log[at + "this server is ".len()..];
    rest.split(|c: char| c == ',' || c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

impl Redis {
    /// Closes (`CLIENT KILL`) every connection whose name contains `part`
    /// (a server names its links after its node id); returns how many.
    pub fn kill_clients(&self, part: &str) -> usize {
        let list = self.text(&["CLIENT", "LIST"]);
        let ids: Vec<String> = list
            .lines()
            .filter(|l| {
                l.split(' ')
                    .any(|f| f.strip_prefix("name=").is_some_and(|n| n.contains(part)))
            })
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
            .map(str::to_owned)
            .collect();
        for id in &ids {
            self.call(&["CLIENT", "KILL", "ID", id]);
        }
        ids.len()
    }
}
