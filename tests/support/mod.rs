//! Helpers shared by the protocol tests (on top of `tests/common`).
//!
//! Use with `mod common; mod support;` in a test file.
#![allow(dead_code)]

use crate::common::{Client, Server};
use std::io::Write;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Starts a server with the given flags and logs in `names`, in order; each
/// client has read every join notice up to the last one, so all start level.
pub fn room(args: &[&str], names: &[&str]) -> (Server, Vec<Client>) {
    let server = Server::start(args);
    let mut clients: Vec<Client> = Vec::new();
    for name in names {
        let c = server.login(name);
        for earlier in clients.iter_mut() {
            earlier.expect(&format!("[SERVER]: {name} joined the chat!"));
        }
        clients.push(c);
    }
    (server, clients)
}

/// Shows that nothing reached `watchers` before this point: `sender` (named
/// `sender_name`) sends a marker chat line and it must be the very next line
/// every watcher reads (the sender included, which also reads it).
pub fn nothing_before_marker(sender: &mut Client, sender_name: &str, watchers: &mut [&mut Client]) {
    let marker = format!("marker-{}", next_id());
    sender.send(&marker);
    let want = format!("{sender_name}: {marker}");
    for w in watchers.iter_mut() {
        w.expect(&want);
    }
    sender.expect(&want);
}

/// Shows that `client` got nothing more: a `/ping` barrier returns no line.
pub fn nothing_more(client: &mut Client) {
    let token = format!("quiet{}", next_id());
    let got = client.sync(&token);
    assert!(got.is_empty(), "unexpected lines: {got:?}");
}

/// A unique number for markers and ping tokens.
pub fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Writes `bytes` one byte per `write` (Nagle off, a short pause between
/// bytes), so the server gets them in many reads.
pub fn send_bytewise(client: &mut Client, bytes: &[u8]) {
    client.stream.set_nodelay(true).unwrap();
    for b in bytes {
        client.stream.write_all(&[*b]).expect("send");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Closes `client` with a reset: SO_LINGER on with a zero timeout, then close.
pub fn reset(client: Client) {
    let fd = client.stream.as_raw_fd();
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket this client owns, with a valid option value.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
    drop(client);
}

/// True if `line` has one of the forms of PROTOCOL.md section 2.
pub fn is_server_line(line: &str) -> bool {
    fn name_ok(n: &str) -> bool {
        let len = n.chars().count();
        (2..=32).contains(&len)
            && n.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
    }
    if line.starts_with("[SERVER]: ") || line == "/pong" || line.starts_with("/pong ") {
        return true;
    }
    for pm in ["[PM from ", "[PM to "] {
        if let Some(rest) = line.strip_prefix(pm) {
            return rest.split_once("]: ").is_some_and(|(n, _)| name_ok(n));
        }
    }
    if let Some(rest) = line.strip_prefix("* ") {
        return rest.split_once(' ').is_some_and(|(n, _)| name_ok(n));
    }
    line.split_once(": ").is_some_and(|(n, _)| name_ok(n))
}

// ---- helpers of the abuse tests ----

/// CPU time (user + system) the process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name may contain spaces; the fields after it do not.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// True if the process is still running (not exited, not a zombie).
pub fn alive(server: &mut Server) -> bool {
    server.child.try_wait().unwrap().is_none()
}

/// Waits until the server's log contains `needle`; panics after `limit`.
pub fn wait_log(server: &Server, needle: &str, limit: Duration) {
    let t = Instant::now();
    while !server.logs().contains(needle) {
        assert!(
            t.elapsed() < limit,
            "log never showed {needle:?}:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Closes `stream` with a reset (SO_LINGER 0) instead of a FIN.
pub fn reset_stream(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a properly sized value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(stream);
}

/// Asserts that a line the server sent is safe for a terminal: no control
/// characters except TAB (the harness already checked UTF-8 and one LF).
pub fn assert_clean(line: &str) {
    assert!(
        !line.chars().any(|c| c.is_control() && c != '\t'),
        "control character in {line:?}"
    );
}

/// Reads `stream` on a thread until EOF or an error, counting bytes, so a
/// connection that must keep reading (a flooder's echo) never stalls.
pub struct Drain {
    /// Bytes read so far.
    pub bytes: Arc<AtomicU64>,
    handle: JoinHandle<Vec<u8>>,
}

impl Drain {
    /// Starts draining a clone of `stream`; keeps the last `keep` bytes.
    pub fn start(stream: &TcpStream, keep: usize) -> Drain {
        let mut s = stream.try_clone().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let bytes = Arc::new(AtomicU64::new(0));
        let counter = bytes.clone();
        let handle = std::thread::spawn(move || {
            let mut tail = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > 2 * keep.max(1) {
                            tail.drain(..tail.len() - keep);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            if tail.len() > keep {
                tail.drain(..tail.len() - keep);
            }
            tail
        });
        Drain { bytes, handle }
    }

    /// Waits for EOF and returns the last bytes read.
    pub fn finish(self) -> Vec<u8> {
        self.handle.join().unwrap()
    }
}

/// Two users exchange lines both ways: the room still works. Lines that
/// arrive before the expected ones (e.g. junk another connection made) are
/// skipped but must be clean.
pub fn room_works(a: &mut Client, a_name: &str, b: &mut Client, b_name: &str, tag: &str) {
    a.send(&format!("ping from {a_name} {tag}"));
    for l in b.read_until(&format!("{a_name}: ping from {a_name} {tag}")) {
        assert_clean(&l);
    }
    b.send(&format!("pong from {b_name} {tag}"));
    for l in a.read_until(&format!("{b_name}: pong from {b_name} {tag}")) {
        assert_clean(&l);
    }
}

/// Connects with a timeout; `None` if the connect failed or timed out.
pub fn try_connect(addr: SocketAddr, limit: Duration) -> Option<TcpStream> {
    TcpStream::connect_timeout(&addr, limit).ok()
}

/// A deterministic pseudo-random byte stream (xorshift64*), so a failure
/// can be replayed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What a chat user does, whatever the transport.
pub trait Chat {
    /// Sends one line (an LF-terminated line on TCP, a text message on
    /// WebSocket).
    fn send(&mut self, line: &str);

    /// The next line, or `None` once the server closed. Panics on a timeout.
    fn try_line(&mut self) -> Option<String>;

    /// The next line; panics on EOF or timeout.
    fn line(&mut self) -> String {
        self.try_line()
            .expect("connection closed while a line was expected")
    }

    /// Asserts that the next line is exactly `want`.
    fn expect(&mut self, want: &str) {
        assert_eq!(self.line(), want);
    }

    /// Asserts that the next line starts with `prefix`; returns it.
    fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.line();
        assert!(
            got.starts_with(prefix),
            "expected {prefix:?}..., got {got:?}"
        );
        got
    }

    /// Reads lines until one equals `want`; returns the lines before it.
    fn read_until(&mut self, want: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            match self.try_line() {
                Some(l) if l == want => return before,
                Some(l) => before.push(l),
                None => panic!("EOF before {want:?}; got {before:?}"),
            }
        }
    }

    /// A barrier: sends `/ping TOKEN`; returns the lines before the pong.
    fn sync(&mut self, token: &str) -> Vec<String> {
        self.send(&format!("/ping {token}"));
        self.read_until(&format!("/pong {token}"))
    }

    /// Reads until the server closes; returns the lines before that.
    fn expect_eof(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(l) = self.try_line() {
            lines.push(l);
        }
        lines
    }
}

impl Chat for Client {
    fn send(&mut self, line: &str) {
        Client::send(self, line);
    }

    fn try_line(&mut self) -> Option<String> {
        Client::try_line(self)
    }
}

/// Tests that load the machine on purpose take this lock, one at a time,
/// so that one's load does not starve another's readers (2 shared cores in
/// CI). One lock per test binary.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A flood on its own thread, written to a logged-in user's socket: 16 lines
/// of 4,000 bytes every 10 ms (at most ~6 MB/s, so readers that read keep up
/// even on a busy machine), at most 400 MB: far past what the kernel's
/// socket buffers absorb.
pub struct Flood {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl Flood {
    /// Starts flooding through a clone of `stream`.
    pub fn start(stream: &TcpStream) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let mut out = stream.try_clone().unwrap();
        let thread = std::thread::spawn(move || {
            let batch = format!("{}\n", "x".repeat(4000)).repeat(16);
            let mut sent = 0u64;
            while !stopped.load(Ordering::Relaxed) && sent < 400 << 20 {
                if out.write_all(batch.as_bytes()).is_err() {
                    break;
                }
                sent += batch.len() as u64;
                std::thread::sleep(Duration::from_millis(10));
            }
            sent
        });
        Flood { stop, thread }
    }

    /// Stops the flood; returns the bytes it sent.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Line `i` of paster `s`: `s{s} {i:03} ` padded with `x` to `len` bytes.
pub fn paste_line(s: usize, i: usize, len: usize) -> String {
    let head = format!("s{s} {i:03} ");
    format!("{head}{}", "x".repeat(len - head.len()))
}

/// Reads on a thread until `want` pasted lines ([`paste_line`], from any
/// sender) arrived; fails on a drop notice or the end. Returns those lines
/// in arrival order.
pub fn read_pastes(mut c: Box<dyn Chat + Send>, want: usize) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut got = Vec::with_capacity(want);
        while got.len() < want {
            let Some(line) = c.try_line() else {
                panic!("closed after {} of {want} lines", got.len());
            };
            assert!(!line.contains("too slow"), "a reader was dropped: {line}");
            let pasted = line.split_once(": ").is_some_and(|(_, text)| {
                text.starts_with('s') && text[1..].starts_with(|c: char| c.is_ascii_digit())
            });
            if pasted {
                got.push(line);
            }
        }
        got
    })
}

/// What [`ping_until_dropped`] saw.
pub struct WhileFlooded {
    /// The slowest `/ping` round trip.
    pub worst: Duration,
    /// The server's highest RSS, KiB, sampled after each round trip.
    pub peak_rss: u64,
    /// Round trips made.
    pub pings: usize,
    /// When the drop notice came, from the first ping.
    pub dropped_at: Duration,
}

/// While another user floods (only its lines may arrive meanwhile),
/// `pinger` pings every 2 ms until the notice that `slow` was dropped as too
/// slow to read came, then 20 more times; fails after 60 s without it.
pub fn ping_until_dropped(server: &Server, pinger: &mut Client, slow: &str) -> WhileFlooded {
    let dropped = format!("[SERVER]: {slow} has disconnected (too slow to read).");
    let mut seen = WhileFlooded {
        worst: Duration::ZERO,
        peak_rss: 0,
        pings: 0,
        dropped_at: Duration::ZERO,
    };
    let mut after_drop = None;
    let t0 = Instant::now();
    while after_drop.is_none_or(|n| n < 20) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{slow} never dropped"
        );
        let t = Instant::now();
        let before = pinger.sync(&format!("p{}", seen.pings));
        seen.worst = seen.worst.max(t.elapsed());
        seen.pings += 1;
        seen.peak_rss = seen.peak_rss.max(server.rss_kib());
        for l in &before {
            assert!(
                l.starts_with("sender: ") || *l == dropped,
                "unexpected line {l:?}"
            );
        }
        after_drop = match after_drop {
            None if before.contains(&dropped) => {
                seen.dropped_at = t0.elapsed();
                Some(1)
            }
            None => None,
            Some(n) => Some(n + 1),
        };
        std::thread::sleep(Duration::from_millis(2)); // pacing, not a barrier
    }
    seen
}
