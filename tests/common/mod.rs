//! Test harness: a real `chat-server` process on port 0 and raw TCP clients.
//!
//! Every read has a timeout, so no test can hang: a missing line fails the
//! test with the lines that did arrive. Synchronise by reading expected lines
//! (or a `/ping TOKEN` round trip), never by sleeping.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a read waits for an expected line.
pub const WAIT: Duration = Duration::from_secs(10);

/// A `chat-server` process, killed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// The address it bound for the line protocol (with `--no-plain`,
    /// `127.0.0.1:0`, where nothing can connect).
    pub addr: SocketAddr,
    /// The address it bound for the line protocol over TLS (with
    /// `--tls-cert`, on `--tls-port 0` unless ARGS names a port).
    pub tls_addr: Option<SocketAddr>,
    /// The address it bound for HTTP and WebSocket (`--web-port 0`).
    pub web_addr: Option<SocketAddr>,
    /// Everything it logged so far.
    pub log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `chat-server --host 127.0.0.1 --port 0 --web-port 0 ARGS...`
    /// and waits for its "listening on" log line (unless ARGS has
    /// `--no-plain`), its TLS line (if ARGS has `--tls-cert`) and its web
    /// line (unless ARGS has `--no-web`).
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(Command::new(env!("CARGO_BIN_EXE_chat-server")), args)
    }

    /// Like [`Server::start`], from a prepared command (e.g. `prlimit ... chat-server`).
    pub fn start_with(cmd: Command, args: &[&str]) -> Server {
        Self::spawn(cmd, 0, args)
    }

    /// Like [`Server::start`], on a given port (a restart on the port an
    /// earlier run got); ARGS may give `--web-port` (else 0).
    pub fn start_at(port: u16, args: &[&str]) -> Server {
        let cmd = Command::new(env!("CARGO_BIN_EXE_chat-server"));
        Self::spawn(cmd, port, args)
    }

    fn spawn(mut cmd: Command, port: u16, args: &[&str]) -> Server {
        let web = !args.contains(&"--no-web");
        let web_port_given = args.contains(&"--web-port");
        let plain = !args.contains(&"--no-plain");
        let tls = args.contains(&"--tls-cert");
        let tls_port = tls && !args.contains(&"--tls-port");
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(if web && !web_port_given {
                &["--web-port", "0"][..]
            } else {
                &[]
            })
            .args(if tls_port {
                &["--tls-port", "0"][..]
            } else {
                &[]
            })
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn chat-server");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let (mut chat, mut tls_addr, mut web_addr) = (None, None, None);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let after = |marker: &str| {
                    let i = line.find(marker)? + marker.len();
                    let rest = &line[i..];
                    let addr = rest.split_once(": ").map_or(rest, |(a, _)| a);
                    Some(addr.trim().to_owned())
                };
                chat = chat.or_else(|| after("listening on "));
                tls_addr = tls_addr.or_else(|| after("listening for TLS on "));
                web_addr = web_addr.or_else(|| after("web on "));
                {
                    let mut l = sink.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                let all = chat.is_some() == plain
                    && tls_addr.is_some() == tls
                    && web_addr.is_some() == web;
                if all {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send((chat.clone(), tls_addr.clone(), web_addr.clone()));
                    }
                }
            }
        });
        let parse = |a: String| a.parse::<SocketAddr>().expect("bound address");
        let (addr, tls_addr, web_addr) = match rx.recv_timeout(WAIT) {
            Ok((a, t, w)) => (
                a.map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)), parse),
                t.map(parse),
                w.map(parse),
            ),
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {}", log.lock().unwrap());
            }
        };
        Server {
            child,
            addr,
            tls_addr,
            web_addr,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server has logged so far.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A raw connection; the greeting is not read yet.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Connects, reads the greeting, sends `name` and reads up to and
    /// including its own join notice.
    pub fn login(&self, name: &str) -> Client {
        let mut c = self.connect();
        c.expect_prefix("[SERVER]: ");
        c.send(name);
        c.read_until(&format!("[SERVER]: {name} joined the chat!"));
        c
    }

    /// Resident memory of the server process in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// Waits for the process to exit and returns its status code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server still running after {limit:?}");
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as i32, sig);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw TCP client, as `nc` would be.
pub struct Client {
    /// For writing.
    pub stream: TcpStream,
    /// For reading lines (a clone of `stream`).
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects to `addr`, with a read timeout on every read.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    /// Sends `line` and an LF.
    pub fn send(&mut self, line: &str) {
        let mut b = line.as_bytes().to_vec();
        b.push(b'\n');
        self.send_raw(&b);
    }

    /// Sends bytes exactly as given.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next line (without LF), or `None` on EOF. Panics on a timeout.
    pub fn try_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                assert_eq!(buf.pop(), Some(b'\n'), "a line ends in LF: {buf:?}");
                Some(String::from_utf8(buf).expect("server lines are UTF-8"))
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "no line within {WAIT:?} (partial: {:?})",
                    String::from_utf8_lossy(&buf)
                )
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("read: {e}"),
        }
    }

    /// The next line; panics on EOF or timeout.
    pub fn line(&mut self) -> String {
        self.try_line()
            .expect("connection closed while a line was expected")
    }

    /// Asserts that the next line is exactly `want`.
    pub fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want);
    }

    /// After a name was sent: the welcome, the room's history block if there
    /// is one (its lines are returned), then the newcomer's own join notice.
    pub fn expect_welcome(&mut self, name: &str) -> Vec<String> {
        let welcome = self.expect_prefix("[SERVER]: Welcome to the chat, ");
        assert!(welcome.contains(name), "{welcome:?}");
        let mut history = Vec::new();
        let mut next = self.line();
        if next.starts_with("[SERVER]: History (") {
            history = self.read_until("[SERVER]: End of history.");
            next = self.line();
        }
        assert_eq!(next, format!("[SERVER]: {name} joined the chat!"));
        history
    }

    /// Asserts that the next line starts with `prefix`; returns it.
    pub fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.line();
        assert!(
            got.starts_with(prefix),
            "expected {prefix:?}..., got {got:?}"
        );
        got
    }

    /// Reads lines until one equals `want`; returns the lines before it.
    pub fn read_until(&mut self, want: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            match self.try_line() {
                Some(l) if l == want => return before,
                Some(l) => before.push(l),
                None => panic!("EOF before {want:?}; got {before:?}"),
            }
        }
    }

    /// Reads lines until one satisfies `pred`; returns it.
    pub fn read_until_match(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let mut before = Vec::new();
        loop {
            match self.try_line() {
                Some(l) if pred(&l) => return l,
                Some(l) => before.push(l),
                None => panic!("EOF before the expected line; got {before:?}"),
            }
        }
    }

    /// A barrier: sends `/ping TOKEN` and returns every line that arrived
    /// before the `/pong TOKEN`.
    pub fn sync(&mut self, token: &str) -> Vec<String> {
        self.send(&format!("/ping {token}"));
        self.read_until(&format!("/pong {token}"))
    }

    /// Reads until EOF (or reset); returns the lines that came before it.
    pub fn expect_eof(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(l) = self.try_line() {
            lines.push(l);
        }
        lines
    }

    /// Bytes readable right now without blocking more than `wait`.
    pub fn drain_for(&mut self, wait: Duration) -> Vec<u8> {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut out = self.reader.buffer().to_vec();
        self.reader.consume(out.len());
        let mut buf = [0u8; 65536];
        loop {
            match self.reader.get_mut().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
        out
    }

    /// Half-closes our side (the server sees EOF).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}
