//! The real `chat-client` binary, with piped stdin/stdout/stderr, against a
//! real `chat-server` (or, for the failure cases, a socket the test plays
//! itself). Every read waits at most [`WAIT`]; nothing can hang.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, WAIT};

/// A `chat-client` process; killed when dropped.
struct Cli {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    /// Every stdout line read so far.
    out_seen: Vec<String>,
    /// Every stderr line read so far.
    err_seen: Vec<String>,
}

/// Forwards the lines of `r` to a channel, from a thread of its own.
fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Cli {
    fn start(addr: SocketAddr, args: &[&str]) -> Cli {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-client"))
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chat-client");
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        Cli {
            stdin: child.stdin.take(),
            child,
            out,
            err,
            out_seen: Vec::new(),
            err_seen: Vec::new(),
        }
    }

    /// Types `line` and Enter.
    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Ctrl-D.
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads stdout until a line satisfies `pred`; returns it.
    fn out_until(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = self.out_seen.len();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(l) => {
                    self.out_seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(e) => {
                    let err = self.err_now();
                    panic!(
                        "stdout: no {what} ({e:?}); got {:?}; stderr {err:?}",
                        &self.out_seen[start..]
                    )
                }
            }
        }
    }

    /// Reads stderr until a line contains `part`; returns it.
    fn err_until(&mut self, part: &str) -> String {
        let start = self.err_seen.len();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(l) => {
                    self.err_seen.push(l.clone());
                    if l.contains(part) {
                        return l;
                    }
                }
                Err(e) => panic!(
                    "stderr: no line with {part:?} ({e:?}); got {:?}",
                    &self.err_seen[start..]
                ),
            }
        }
    }

    /// The stderr lines that have arrived so far (all of them).
    fn err_now(&mut self) -> Vec<String> {
        while let Ok(l) = self.err.try_recv() {
            self.err_seen.push(l);
        }
        self.err_seen.clone()
    }

    /// Collects stdout lines for `d`.
    fn out_for(&mut self, d: Duration) -> Vec<String> {
        let deadline = Instant::now() + d;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(l) => {
                    self.out_seen.push(l.clone());
                    got.push(l);
                }
                Err(RecvTimeoutError::Timeout) => return got,
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stdout closed; got {got:?}; stderr {:?}", self.err_now())
                }
            }
        }
    }

    /// Waits for the process to exit; its status code.
    fn wait_exit(&mut self, limit: Duration) -> i32 {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().expect("exited, not killed");
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "chat-client still running after {limit:?}; stderr {:?}",
            self.err_now()
        );
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `chat-server` on 127.0.0.1:`port` (a port an earlier server had),
/// built by hand because [`Server::start`] always asks for port 0; `more`
/// are further flags.
fn server_on(port: u16, more: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--no-web",
        ])
        .args(more)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chat-server");
    let err = lines_of(child.stderr.take().unwrap());
    let log = Arc::new(Mutex::new(String::new()));
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match err.recv_timeout(left) {
            Ok(l) => {
                let mut log = log.lock().unwrap();
                log.push_str(&l);
                log.push('\n');
                if l.contains("listening on ") {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("server on port {port} did not start ({e:?}): {log:?}");
            }
        }
    }
    let sink = log.clone();
    thread::spawn(move || {
        for l in err.iter() {
            let mut log = sink.lock().unwrap();
            log.push_str(&l);
            log.push('\n');
        }
    });
    Server {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        tls_addr: None,
        web_addr: None,
        log,
    }
}

/// A TCP relay between clients and a server that can cut a client off while
/// the server side stays open, as a network cut the server has not noticed.
struct Relay {
    addr: SocketAddr,
    /// (client side, server side) of every relayed connection.
    pairs: Arc<Mutex<Vec<(TcpStream, TcpStream)>>>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let pairs = Arc::new(Mutex::new(Vec::new()));
        let p = pairs.clone();
        // The accept thread ends with the test process; each pump ends with
        // its connection.
        thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { break };
                let Ok(up) = TcpStream::connect(upstream) else {
                    break;
                };
                let (d2, u2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
                p.lock()
                    .unwrap()
                    .push((down.try_clone().unwrap(), up.try_clone().unwrap()));
                // Neither pump passes an EOF on: cutting one side leaves the
                // other open.
                let (mut d, mut u) = (down, up);
                thread::spawn(move || {
                    let _ = std::io::copy(&mut d, &mut { u2 });
                });
                thread::spawn(move || {
                    let _ = std::io::copy(&mut u, &mut { d2 });
                });
            }
        });
        Relay { addr, pairs }
    }

    /// Closes connection `i` on the client's side only.
    fn cut_client(&self, i: usize) {
        let _ = self.pairs.lock().unwrap()[i].0.shutdown(Shutdown::Both);
    }

    /// Closes connection `i` on the server's side.
    fn cut_server(&self, i: usize) {
        let _ = self.pairs.lock().unwrap()[i].1.shutdown(Shutdown::Both);
    }
}

/// A port nothing listens on (bound, then released).
/// A port on which connections are refused and that nobody else can take
/// meanwhile: a TCP socket bound to it that never listens.
fn refusing_port() -> (std::os::fd::OwnedFd, SocketAddr) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor we create and own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let p = &mut sa as *mut libc::sockaddr_in as *mut libc::sockaddr;
        assert_eq!(libc::bind(fd, p, len), 0, "bind");
        let mut got = len;
        assert_eq!(libc::getsockname(fd, p, &mut got), 0, "getsockname");
        let port = u16::from_be(sa.sin_port);
        (owned, SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

#[test]
fn typing_reaches_others_and_their_lines_reach_stdout() {
    let server = Server::start(&[]);
    let mut bob = server.login("bob");
    let mut al = Cli::start(server.addr, &["--name", "al"]);
    assert!(al
        .err_until("in the chat as")
        .ends_with("in the chat as al"));
    bob.expect("[SERVER]: al joined the chat!");
    al.type_line("hello bob");
    bob.expect("al: hello bob");
    bob.send("hi al");
    al.out_until("bob's line", |l| l == "bob: hi al");
    // What came first, in order: greeting, welcome, own join, own line.
    assert!(
        al.out_seen[0].starts_with("[SERVER]: "),
        "{:?}",
        al.out_seen
    );
    let i = al.out_seen.iter().position(|l| l == "al: hello bob");
    let j = al
        .out_seen
        .iter()
        .position(|l| l == "[SERVER]: al joined the chat!");
    assert!(j.is_some() && j < i, "{:?}", al.out_seen);
}

#[test]
fn piped_input_waits_for_the_login() {
    // A script: name, a line, EOF, all written before the client connected.
    let server = Server::start(&[]);
    let mut bob = server.login("bob");
    let mut cy = Cli::start(server.addr, &[]);
    cy.type_line("cy");
    cy.type_line("from a script");
    cy.close_stdin();
    assert_eq!(cy.wait_exit(WAIT), 0);
    bob.expect("[SERVER]: cy joined the chat!");
    bob.expect("cy: from a script");
    bob.expect("[SERVER]: cy left the chat.");
}

#[test]
fn keepalive_pongs_never_reach_stdout() {
    // The server drops anyone silent for 1 s: only the keepalive pings keep
    // the quiet client in, and only their hidden answers keep its own
    // silence rule quiet.
    let server = Server::start(&["--idle-timeout", "1"]);
    let mut al = Cli::start(server.addr, &["--name", "al", "--keepalive", "0.2"]);
    al.err_until("in the chat as al");
    al.type_line("/ping x");
    al.out_for(Duration::from_millis(2000));
    al.type_line("still here");
    al.out_until("own line", |l| l == "al: still here");
    let lines = &al.out_seen;
    let pongs: Vec<&String> = lines.iter().filter(|l| l.starts_with("/pong")).collect();
    assert_eq!(pongs, vec!["/pong x"], "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("timed out")), "{lines:?}");
    let joins = lines.iter().filter(|l| l.ends_with("joined the chat!"));
    assert_eq!(joins.count(), 1, "{lines:?}");
    let err = al.err_now();
    assert_eq!(err, vec!["chat-client: in the chat as al"]);
}

#[test]
fn eof_on_stdin_quits_and_others_see_the_leave() {
    let server = Server::start(&[]);
    let mut bob = server.login("bob");
    let mut al = Cli::start(server.addr, &["--name", "al"]);
    bob.expect("[SERVER]: al joined the chat!");
    al.err_until("in the chat as al");
    al.close_stdin();
    assert_eq!(al.wait_exit(WAIT), 0);
    bob.expect("[SERVER]: al left the chat.");
    al.out_until("goodbye", |l| l == "[SERVER]: Goodbye, al!");
}

#[test]
fn quit_and_its_aliases_exit_zero() {
    let server = Server::start(&[]);
    let mut bob = server.login("bob");
    let quits = [
        ("/quit", ""),
        ("!quit", ""),
        ("{exit}", ""),
        ("/QUIT see you", " (see you)"),
    ];
    for (i, (q, reason)) in quits.iter().enumerate() {
        let name = format!("u{i}");
        let mut c = Cli::start(server.addr, &["--name", &name]);
        bob.expect(&format!("[SERVER]: {name} joined the chat!"));
        c.type_line(q);
        assert_eq!(c.wait_exit(WAIT), 0, "{q}");
        c.out_until("goodbye", |l| l.starts_with("[SERVER]: Goodbye"));
        bob.expect(&format!("[SERVER]: {name} left the chat.{reason}"));
    }
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let server = Server::start(&[]);
    let mut bob = server.login("bob");
    let mut c = Command::new(env!("CARGO_BIN_EXE_chat-client"))
        .args([
            "127.0.0.1",
            &server.addr.port().to_string(),
            "--name",
            "zed",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines_of(c.stderr.take().unwrap());
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    while line != "[SERVER]: zed joined the chat!\n" {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "stdout ended");
    }
    bob.expect("[SERVER]: zed joined the chat!");
    drop(out); // `chat-client | head -3` after the 3rd line
               // The next line the client prints fails; it leaves quietly. (A child
               // that another test thread is spawning at this moment may hold a copy
               // of the pipe's read end until its exec, so one print can still
               // succeed: bob keeps talking until zed is gone.)
    let t = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        bob.send(&format!("anyone? {n}"));
        let got = bob.line();
        if got == "[SERVER]: zed left the chat." {
            break;
        }
        assert_eq!(got, format!("bob: anyone? {n}"));
        assert!(t.elapsed() < WAIT, "zed never left");
        thread::sleep(Duration::from_millis(100));
    }
    let t = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < WAIT, "still running");
        thread::sleep(Duration::from_millis(20));
    };
    let err: Vec<String> = err.iter().collect();
    assert_eq!(status.code(), Some(0), "{err:?}");
    assert_eq!(err, vec!["chat-client: in the chat as zed"]);
}

#[test]
fn comes_back_with_the_same_name_after_a_server_restart() {
    let server = Server::start(&[]);
    let port = server.addr.port();
    // No --name: the user types it at the greeting; the client learns it.
    let mut carol = Cli::start(server.addr, &["--keepalive", "5"]);
    carol.out_until("greeting", |l| l.starts_with("[SERVER]: "));
    carol.type_line("carol");
    carol.out_until("join", |l| l == "[SERVER]: carol joined the chat!");
    carol.err_until("in the chat as carol");
    drop(server); // killed
    let lost = carol.err_until("lost the connection");
    assert!(lost.contains("retrying in 1 s (try 1 of 5)"), "{lost}");
    let server = server_on(port, &[]);
    let back = carol.err_until("back in the chat");
    assert!(back.ends_with("back in the chat as carol"), "{back}");
    carol.out_until("join again", |l| l == "[SERVER]: carol joined the chat!");
    let mut dave = server.login("dave");
    carol.type_line("still here");
    dave.read_until("carol: still here");
    dave.send("/who");
    dave.expect("[SERVER]: 2 users online: carol, dave");
}

#[test]
fn a_held_name_is_waited_for_then_varied() {
    let server = Server::start(&[]);
    let relay = Relay::start(server.addr);
    let mut bob = server.login("bob");
    let mut erin = Cli::start(relay.addr, &["--name", "erin", "--name-wait", "2.5"]);
    bob.expect("[SERVER]: erin joined the chat!");
    erin.err_until("in the chat as erin");
    // The client loses its connection; the server still holds "erin".
    relay.cut_client(0);
    erin.err_until("lost the connection");
    let note = erin.err_until("the name erin is taken");
    assert!(note.contains("trying it again"), "{note}");
    erin.type_line("typed while away");
    erin.err_until("will be sent once the client is back");
    let fallback = erin.err_until("trying erin_ instead");
    assert!(fallback.contains("the name erin is taken"), "{fallback}");
    assert!(erin.err_until("back in the chat").ends_with("as erin_"));
    bob.expect("[SERVER]: erin_ joined the chat!");
    bob.expect("erin_: typed while away");
    // The name to reconnect with is now erin_.
    relay.cut_server(0);
    bob.expect("[SERVER]: erin has disconnected.");
}

#[test]
fn a_held_name_that_frees_up_is_taken_back() {
    let server = Server::start(&[]);
    let relay = Relay::start(server.addr);
    let mut bob = server.login("bob");
    let mut erin = Cli::start(relay.addr, &["--name", "erin"]);
    bob.expect("[SERVER]: erin joined the chat!");
    erin.err_until("in the chat as erin");
    relay.cut_client(0);
    erin.err_until("the name erin is taken");
    // The server notices the old connection is gone; the retry gets it.
    relay.cut_server(0);
    bob.expect("[SERVER]: erin has disconnected.");
    assert!(erin.err_until("back in the chat").ends_with("as erin"));
    bob.expect("[SERVER]: erin joined the chat!");
}

#[test]
fn no_server_means_exit_1_after_the_retries() {
    let (_held, addr) = refusing_port();
    let t = Instant::now();
    let mut c = Cli::start(addr, &["--retries", "2", "--name", "al"]);
    assert_eq!(c.wait_exit(Duration::from_secs(20)), 1);
    let took = t.elapsed();
    let err = c.err_now();
    // One line per failed try, the last one says it gives up.
    assert_eq!(err.len(), 3, "{err:?}");
    assert!(err.iter().all(|l| l.contains("cannot connect")), "{err:?}");
    assert!(err[0].contains("retrying in 1 s (try 1 of 2)"), "{err:?}");
    assert!(err[1].contains("retrying in 2 s (try 2 of 2)"), "{err:?}");
    assert!(err[2].ends_with("giving up after 2 retries"), "{err:?}");
    // The delays were waited (1 s + 2 s).
    assert!(took >= Duration::from_millis(2900), "{took:?}");
}

#[test]
fn a_silent_server_is_a_lost_connection() {
    // A "server" that logs the client in and then never says another word,
    // as a stopped process would.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = Cli::start(
        addr,
        &["--name", "al", "--keepalive", "0.3", "--retries", "1"],
    );
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"[SERVER]: Welcome! Please enter your name:\n")
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    // Before its name the client turns ids on behind a /ping barrier
    // (section 8); the "server" answers those as a real one would.
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "/ids on\n");
    s.write_all(b"[SERVER]: Ids on: public lines now start with @ID.\n")
        .unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    let token = line.strip_prefix("/ping ").expect("the barrier").trim_end();
    s.write_all(format!("/pong {token}\n").as_bytes()).unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "al\n");
    s.write_all(b"@1 [SERVER]: al joined the chat!\n").unwrap();
    c.err_until("in the chat as al");
    // It pings the silent server, then gives the connection up.
    let lost = c.err_until("lost the connection");
    assert!(
        lost.contains("no answer from the server for 0.9 s"),
        "{lost}"
    );
    let mut pings = 0;
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.starts_with("/ping ") => pings += 1,
            Ok(_) => {}
        }
    }
    // The login barrier, then a keepalive ping per period before the third.
    assert!(pings >= 3, "{pings}");
    // The retry finds nothing listening: exit 1.
    drop(listener);
    assert_eq!(c.wait_exit(WAIT), 1);
    assert!(c.err_now().last().unwrap().contains("giving up"));
}

#[test]
fn a_silent_listener_before_login_is_detected_too() {
    // Accepts (the kernel does) but never says a word, not even a greeting.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = Cli::start(addr, &["--keepalive", "0.3", "--retries", "1"]);
    let first = c.err_until("no answer from the server");
    assert!(first.contains("ended before login"), "{first}");
    assert!(first.contains("retrying in 1 s (try 1 of 1)"), "{first}");
    let last = c.err_until("no answer from the server");
    assert!(last.contains("giving up after 1 retry"), "{last}");
    assert_eq!(c.wait_exit(WAIT), 1);
    drop(listener);
}

/// Sends `sig` to the client process (SIGSTOP/SIGCONT: the test decides
/// when it may notice the lost connection, so no line depends on timing).
fn signal(c: &Cli, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(c.child.id() as i32, sig);
    }
}

/// Bob's lines on `c`'s stdout, in order.
fn lines_from(c: &Cli, name: &str) -> Vec<String> {
    let prefix = format!("{name}: ");
    c.out_seen
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .cloned()
        .collect()
}

/// `bob` says `tag 0` ... `tag n-1`; returns the lines as everyone sees them.
fn bob_says(bob: &mut common::Client, tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let line = format!("bob: {tag} {i}");
            bob.send(&format!("{tag} {i}"));
            bob.read_until(&line);
            line
        })
        .collect()
}

/// The server dies (`kill -9`) and comes back on the same port with the
/// same `--history-db`; bob talks before, during (to the new server, while
/// the client cannot be back yet: it is stopped) and after. The client's
/// stdout has each of bob's lines exactly once, in order, without ids, and
/// one status line says how many it missed.
#[test]
fn resumes_across_a_server_restart_without_loss_or_repeat() {
    let dir = tempfile::TempDir::new().unwrap();
    let db = dir.path().join("history.db");
    let db = db.to_str().unwrap();
    let server = Server::start(&["--history-db", db]);
    let port = server.addr.port();
    let mut bob = server.login("bob");
    let mut said = bob_says(&mut bob, "before", 2);
    let mut carol = Cli::start(server.addr, &["--name", "carol"]);
    carol.err_until("in the chat as carol");
    bob.read_until("[SERVER]: carol joined the chat!");
    // A user's /ids off would break the resume: the client does not send it.
    carol.type_line("/ids off");
    carol.err_until("/ids not sent");
    said.extend(bob_says(&mut bob, "before more", 3));
    carol.out_until("bob's last line", |l| l == said.last().unwrap());

    signal(&carol, libc::SIGSTOP);
    drop(server); // kill -9
    let server = server_on(port, &["--history-db", db]);
    let mut bob = server.login("bob");
    said.extend(bob_says(&mut bob, "during", 4));
    signal(&carol, libc::SIGCONT);

    carol.err_until("lost the connection");
    carol.err_until("back in the chat as carol");
    // Bob's join on the new server and his 4 lines.
    let missed = carol.err_until("while away");
    assert!(
        missed.ends_with("missed 5 lines while away (shown)"),
        "{missed}"
    );
    bob.read_until("[SERVER]: carol joined the chat!");
    said.extend(bob_says(&mut bob, "after", 3));
    carol.out_until("bob's last line", |l| l == said.last().unwrap());
    carol.close_stdin();
    assert_eq!(carol.wait_exit(WAIT), 0);
    assert_eq!(lines_from(&carol, "bob"), said);
    let out = &carol.out_seen;
    assert!(
        !out.iter().any(|l| l.starts_with('@')),
        "ids shown: {out:?}"
    );
    // On the reconnect, the missed lines come without the block's framing.
    let frames = out
        .iter()
        .filter(|l| l.starts_with("[SERVER]: History ("))
        .count();
    assert_eq!(frames, 1, "only the first login's block: {out:?}");
    let joins = out
        .iter()
        .filter(|l| *l == "[SERVER]: bob joined the chat!")
        .count();
    assert_eq!(joins, 2, "bob's joins, each once: {out:?}");
}

/// The same with a gap larger than `--history`: the lines still kept are
/// shown once, in order; stderr says how many were lost.
#[test]
fn a_gap_larger_than_the_history_is_said_on_stderr() {
    let dir = tempfile::TempDir::new().unwrap();
    let db = dir.path().join("history.db");
    let db = db.to_str().unwrap();
    let flags = ["--history-db", db, "--history", "4", "--rate", "0"];
    let server = Server::start(&flags);
    let port = server.addr.port();
    let mut bob = server.login("bob");
    let mut carol = Cli::start(server.addr, &["--name", "carol"]);
    carol.err_until("in the chat as carol");
    bob.read_until("[SERVER]: carol joined the chat!");
    let before = bob_says(&mut bob, "before", 2);
    carol.out_until("bob's last line", |l| l == before.last().unwrap());

    signal(&carol, libc::SIGSTOP);
    drop(server);
    let server = server_on(port, &flags);
    let mut bob = server.login("bob");
    let during = bob_says(&mut bob, "during", 9);
    signal(&carol, libc::SIGCONT);

    carol.err_until("back in the chat as carol");
    // 10 lines (bob's join, 9 of his) after the last one carol saw; the
    // server keeps 4 of them.
    let missed = carol.err_until("while away");
    assert!(
        missed.ends_with(
            "missed 10 lines while away: 4 shown, 6 lost (the server no longer kept them)"
        ),
        "{missed}"
    );
    bob.read_until("[SERVER]: carol joined the chat!");
    let after = bob_says(&mut bob, "after", 2);
    carol.out_until("bob's last line", |l| l == after.last().unwrap());
    let mut want = before.clone();
    want.extend_from_slice(&during[5..]);
    want.extend_from_slice(&after);
    assert_eq!(lines_from(&carol, "bob"), want);
    // The server's own notice marks the gap where it is.
    let out = &carol.out_seen;
    let notice = out
        .iter()
        .position(|l| l.contains("6 lines after") && l.contains("no longer kept"))
        .unwrap_or_else(|| panic!("no lost notice: {out:?}"));
    assert_eq!(out[notice + 1], during[5]);
}

/// The first connection shows the recent lines as the server sends them
/// (framed, but without ids), and a join notice in them does not fool a
/// login by hand into taking that name.
#[test]
fn the_first_login_shows_the_recent_lines_as_sent() {
    let server = Server::start(&[]);
    let mut bob = server.login("bob");
    let said = bob_says(&mut bob, "hi", 2);
    let mut carol = Cli::start(server.addr, &[]);
    carol.out_until("greeting", |l| l.starts_with("[SERVER]: Welcome!"));
    carol.type_line("carol");
    carol.out_until("own join", |l| l == "[SERVER]: carol joined the chat!");
    let err = carol.err_until("in the chat as");
    assert!(err.ends_with("in the chat as carol"), "{err}");
    let out = &carol.out_seen;
    let start = out
        .iter()
        .position(|l| l == "[SERVER]: History (3 lines):")
        .unwrap_or_else(|| panic!("no block: {out:?}"));
    assert_eq!(
        out[start + 1..],
        [
            "[SERVER]: bob joined the chat!",
            &said[0],
            &said[1],
            "[SERVER]: End of history.",
            "[SERVER]: carol joined the chat!"
        ]
    );
    assert!(
        !out.iter().any(|l| l.contains("Ids on")),
        "the answer to the client's own /ids on is hidden: {out:?}"
    );
    bob.read_until("[SERVER]: carol joined the chat!");
    bob.send("live");
    carol.out_until("live line", |l| l == "bob: live");
    carol.close_stdin();
    assert_eq!(carol.wait_exit(WAIT), 0);
    assert_eq!(carol.err_now(), ["chat-client: in the chat as carol"]);
}
