//! PROTOCOL.md section 11 through real sockets and the real binaries: the
//! line protocol over TLS beside plain TCP, HTTPS and WSS on the web port,
//! `chat-client --tls`, certificate reloads on SIGHUP, and bad input on
//! either port. Certificates (a test CA and server certificates) are made
//! here, at test time, with rcgen; nothing secret is in the repository.
mod common;
mod support;
mod tls_support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use common::{Client, Server, WAIT};
use support::{wait_log, Chat};
use tls_support::{tls_server, Pki};

/// A client configuration that trusts the CA in `ca`.
fn client_config(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS stream to `addr` for the name `host`, handshake done (or its error).
fn tls_connect(
    addr: SocketAddr,
    ca: &Path,
    host: &str,
) -> Result<StreamOwned<ClientConnection, TcpStream>, std::io::Error> {
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let name = ServerName::try_from(host.to_owned()).unwrap();
    let conn = ClientConnection::new(client_config(ca), name).unwrap();
    let mut s = StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// A user of the line protocol over TLS, as the test's own Rust client.
struct TlsUser {
    r: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsUser {
    /// Connects to the server's TLS port (name `localhost`).
    fn connect(server: &Server, ca: &Path) -> TlsUser {
        let s = tls_connect(server.tls_addr.unwrap(), ca, "localhost").expect("TLS handshake");
        TlsUser {
            r: BufReader::new(s),
        }
    }

    /// Connects and logs in as `name`, reading up to its join notice.
    fn login(server: &Server, ca: &Path, name: &str) -> TlsUser {
        let mut u = TlsUser::connect(server, ca);
        u.expect_prefix("[SERVER]: ");
        u.send(name);
        u.read_until(&format!("[SERVER]: {name} joined the chat!"));
        u
    }

    /// The DER of the certificate the server showed.
    fn server_cert(&self) -> Vec<u8> {
        let certs = self.r.get_ref().conn.peer_certificates().unwrap();
        certs[0].to_vec()
    }

    /// The raw socket under the session.
    fn socket(&self) -> &TcpStream {
        &self.r.get_ref().sock
    }
}

impl Chat for TlsUser {
    fn send(&mut self, line: &str) {
        let s = self.r.get_mut();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        s.flush().unwrap();
    }

    /// The next line, or `None` at the end of the session.
    fn try_line(&mut self) -> Option<String> {
        let mut buf = String::new();
        match self.r.read_line(&mut buf) {
            Ok(0) => None,
            Ok(_) => Some(buf.trim_end_matches('\n').to_owned()),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => None,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("TLS read: {e} (partial {buf:?})"),
        }
    }
}

/// A `chat-client` process with piped stdio; killed when dropped.
struct Cli {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
}

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
    /// `chat-client --tls HOST PORT ARGS...`
    fn start(host: &str, port: u16, args: &[&str]) -> Cli {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-client"))
            .args(["--tls", host, &port.to_string(), "--retries", "3"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chat-client");
        Cli {
            out: lines_of(child.stdout.take().unwrap()),
            err: lines_of(child.stderr.take().unwrap()),
            stdin: child.stdin.take(),
            child,
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Reads stdout until `want`.
    fn out_until(&mut self, want: &str) {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while let Ok(l) = self
            .out
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if l == want {
                return;
            }
            seen.push(l);
        }
        panic!("chat-client never printed {want:?}; got {seen:?}");
    }

    /// Waits for the exit; returns its code and everything on stderr.
    fn finish(mut self) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + WAIT;
        let code = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s.code();
            }
            assert!(Instant::now() < deadline, "chat-client did not exit");
            thread::sleep(Duration::from_millis(20));
        };
        // Everything it wrote, up to the end of the pipe.
        let mut err = Vec::new();
        while let Ok(l) = self.err.recv_timeout(WAIT) {
            err.push(l);
        }
        (code, err)
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No line of the server's log is a warning or an error.
fn no_warnings(server: &Server) {
    let logs = server.logs();
    for l in logs.lines() {
        assert!(
            !l.contains(" WARN ") && !l.contains(" ERROR "),
            "unexpected log line {l:?}"
        );
    }
}

/// Every byte until the peer closes (EOF, reset, or the read timeout).
fn read_to_close(mut s: TcpStream, limit: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("not closed within {limit:?}: {e} (got {got:?})"),
        }
    }
}

/// The first bytes a real TLS client sends: its ClientHello.
fn client_hello(ca: &Path) -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(client_config(ca), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

#[test]
fn tls_users_and_a_plain_user_chat_together() {
    let pki = Pki::new("chat test CA");
    let (cert, key, _) = pki.server("srv", &["localhost", "127.0.0.1"]);
    let server = tls_server(&cert, &key, &[]);
    let mut plain = server.login("plainpat");
    let mut tls = TlsUser::login(&server, &pki.ca, "tlstom");
    plain.expect("[SERVER]: tlstom joined the chat!");

    let port = server.tls_addr.unwrap().port();
    let ca = pki.ca.to_str().unwrap();
    let mut cli = Cli::start("localhost", port, &["--ca", ca, "--name", "clicy"]);
    plain.expect("[SERVER]: clicy joined the chat!");
    tls.expect_prefix("[SERVER]: clicy joined the chat!");

    plain.send("hello from plain");
    plain.expect("plainpat: hello from plain");
    tls.read_until("plainpat: hello from plain");
    cli.out_until("plainpat: hello from plain");

    tls.send("hello from tls");
    plain.expect("tlstom: hello from tls");
    tls.read_until("tlstom: hello from tls");
    cli.out_until("tlstom: hello from tls");

    cli.type_line("hello from chat-client");
    plain.expect("clicy: hello from chat-client");
    cli.out_until("clicy: hello from chat-client");
    tls.read_until("clicy: hello from chat-client");

    tls.send("/who");
    tls.read_until("[SERVER]: 3 users online: clicy, plainpat, tlstom");
    cli.type_line("/quit");
    plain.expect("[SERVER]: clicy left the chat.");
    let (code, _) = cli.finish();
    assert_eq!(code, Some(0));
    tls.send("/quit");
    plain.expect("[SERVER]: tlstom left the chat.");
    no_warnings(&server);
}

#[test]
fn https_get_and_wss_chat() {
    let pki = Pki::new("web test CA");
    let (cert, key, _) = pki.server("srv", &["localhost"]);
    let server = tls_server(&cert, &key, &[]);
    let web = server.web_addr.unwrap();
    assert!(server
        .logs()
        .contains(&format!("open https://localhost:{}/", web.port())));

    let mut s = tls_connect(web, &pki.ca, "localhost").expect("HTTPS handshake");
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("HTTPS read: {e}"),
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("text/html"), "{answer}");

    // Plain HTTP on the HTTPS port is not answered in the clear.
    let mut raw = TcpStream::connect(web).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let got = read_to_close(raw, WAIT);
    assert!(!got.starts_with(b"HTTP/"), "{got:?}");

    let mut plain = server.login("plainpat");
    let s = tls_connect(web, &pki.ca, "localhost").expect("WSS handshake");
    let url = format!("wss://localhost:{}/ws", web.port());
    let (mut ws, response) = tungstenite::client(url, s).expect("WebSocket upgrade");
    assert_eq!(response.status(), 101);
    match ws.read().expect("WSS read") {
        tungstenite::Message::Text(t) => assert!(t.starts_with("[SERVER]: "), "{t}"),
        other => panic!("expected the greeting, got {other:?}"),
    }
    ws.send(tungstenite::Message::text("wendy")).unwrap();
    plain.expect("[SERVER]: wendy joined the chat!");
    ws.send(tungstenite::Message::text("hello over wss"))
        .unwrap();
    plain.expect("wendy: hello over wss");
    plain.send("hello back");
    loop {
        if let tungstenite::Message::Text(t) = ws.read().unwrap() {
            if t.as_str() == "plainpat: hello back" {
                break;
            }
        }
    }
    no_warnings(&server);
}

#[test]
fn chat_client_refuses_an_unknown_ca_without_retrying() {
    let pki = Pki::new("the server's CA");
    let other = Pki::new("some other CA");
    let (cert, key, _) = pki.server("srv", &["localhost"]);
    let server = tls_server(&cert, &key, &[]);
    let port = server.tls_addr.unwrap().port();
    let ca = other.ca.to_str().unwrap();
    for args in [&["--ca", ca, "--name", "carl"][..], &["--name", "carl"]] {
        let (code, err) = Cli::start("localhost", port, args).finish();
        assert_eq!(code, Some(1), "{args:?}: {err:?}");
        assert_eq!(err.len(), 1, "one clear line: {err:?}");
        assert!(err[0].contains("CA"), "{err:?}");
        assert!(err[0].starts_with("chat-client: "), "{err:?}");
    }
    // With the other CA the reason is the certificate, not a missing store.
    let (_, err) = Cli::start("localhost", port, &["--ca", ca]).finish();
    assert!(err[0].contains("certificate is not trusted"), "{err:?}");
}

#[test]
fn chat_client_refuses_a_wrong_host_name() {
    let pki = Pki::new("chat test CA");
    let (cert, key, _) = pki.server("srv", &["chat.example"]);
    let server = tls_server(&cert, &key, &[]);
    let port = server.tls_addr.unwrap().port();
    let ca = pki.ca.to_str().unwrap();
    let (code, err) = Cli::start("localhost", port, &["--ca", ca, "--name", "nora"]).finish();
    assert_eq!(code, Some(1), "{err:?}");
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].contains("not valid for the name localhost"),
        "{err:?}"
    );
}

#[test]
fn chat_client_insecure_connects_and_says_so() {
    let pki = Pki::new("nobody's CA");
    let (cert, key, _) = pki.server("srv", &["chat.example"]);
    let server = tls_server(&cert, &key, &[]);
    let mut plain = server.login("plainpat");
    let port = server.tls_addr.unwrap().port();
    let mut cli = Cli::start("127.0.0.1", port, &["--insecure", "--name", "ivan"]);
    plain.expect("[SERVER]: ivan joined the chat!");
    cli.type_line("no checks here");
    plain.expect("ivan: no checks here");
    cli.type_line("/quit");
    let (code, err) = cli.finish();
    assert_eq!(code, Some(0));
    assert!(err.iter().any(|l| l.contains("NOT checked")), "{err:?}");
}

#[test]
fn plain_text_on_the_tls_port_closes_that_connection_only() {
    let pki = Pki::new("chat test CA");
    let (cert, key, _) = pki.server("srv", &["localhost"]);
    let server = tls_server(&cert, &key, &[]);
    let mut plain = server.login("plainpat");
    let mut tls = TlsUser::login(&server, &pki.ca, "tlstom");
    plain.expect("[SERVER]: tlstom joined the chat!");

    let mut raw = TcpStream::connect(server.tls_addr.unwrap()).unwrap();
    raw.write_all(b"mallory\nhello in the clear\n").unwrap();
    let got = read_to_close(raw, WAIT);
    assert!(
        !String::from_utf8_lossy(&got).contains("[SERVER]"),
        "{got:?}"
    );

    plain.send("still here");
    tls.read_until("plainpat: still here");
    plain.expect("plainpat: still here");
    support::nothing_more(&mut plain);
    no_warnings(&server);
}

#[test]
fn a_client_hello_on_the_plain_port_is_a_bad_name() {
    let pki = Pki::new("chat test CA");
    let (cert, key, _) = pki.server("srv", &["localhost"]);
    let server = tls_server(&cert, &key, &[]);
    let mut watcher = server.login("watcher");

    // What the bytes get: the greeting, then the room's answers to the
    // lines they make (a hello always holds LFs: the supported_groups
    // extension is type 0x000a). Each is a bad name, except that a line
    // cut just before the server name is the valid name "localhost".
    let mut c = Client::connect(server.addr);
    c.expect_prefix("[SERVER]: ");
    c.send_raw(&client_hello(&pki.ca));
    c.send_raw(b"\n");
    c.shutdown_write();
    let answers = c.expect_eof();
    assert!(!answers.is_empty());
    for a in &answers {
        assert!(a.starts_with("[SERVER]: "), "{answers:?}");
        if a.contains("Welcome to the chat") {
            assert!(a.contains("localhost!"), "{answers:?}");
        }
    }

    // A TLS client there fails its handshake on the plain greeting.
    let err = tls_connect(server.addr, &pki.ca, "localhost").unwrap_err();
    assert!(err.to_string().contains("corrupt message"), "{err}");
    // chat-client --tls says so once and exits 1.
    let ca = pki.ca.to_str().unwrap();
    let (code, err) = Cli::start("localhost", server.addr.port(), &["--ca", ca]).finish();
    assert_eq!(code, Some(1), "{err:?}");
    assert!(err[0].contains("TLS handshake failed"), "{err:?}");

    // Their hellos were lines too: where an LF in the random bytes falls
    // just before the server name, "localhost" is a valid name, and that
    // user joins and is gone at once. Nothing else reaches the room.
    let token = format!("after{}", support::next_id());
    for line in watcher.sync(&token) {
        assert!(
            line == "[SERVER]: localhost joined the chat!"
                || line == "[SERVER]: localhost has disconnected.",
            "{line:?}"
        );
    }
    no_warnings(&server);
}

#[test]
fn a_stalled_handshake_is_closed_at_the_login_timeout() {
    let pki = Pki::new("chat test CA");
    let (cert, key, _) = pki.server("srv", &["localhost"]);
    let server = tls_server(&cert, &key, &["--login-timeout", "1"]);
    let hello = client_hello(&pki.ca);
    // Half a ClientHello, then nothing; and a connection that says nothing.
    let mut half = TcpStream::connect(server.tls_addr.unwrap()).unwrap();
    half.write_all(&hello[..hello.len() / 2]).unwrap();
    let silent = TcpStream::connect(server.tls_addr.unwrap()).unwrap();
    let web = TcpStream::connect(server.web_addr.unwrap()).unwrap();
    for s in [half, silent, web] {
        assert!(read_to_close(s, WAIT).is_empty());
    }
    let mut a = server.login("afterwards");
    support::nothing_more(&mut a);
    no_warnings(&server);
}

#[test]
fn a_truncated_or_forged_record_closes_that_connection_only() {
    let pki = Pki::new("chat test CA");
    let (cert, key, _) = pki.server("srv", &["localhost"]);
    let server = tls_server(&cert, &key, &[]);
    let mut watcher = server.login("watcher");

    // Half an application-data record, then EOF.
    let t = TlsUser::login(&server, &pki.ca, "trudy");
    watcher.expect("[SERVER]: trudy joined the chat!");
    let mut sock = t.socket().try_clone().unwrap();
    sock.write_all(&[0x17, 0x03, 0x03, 0x00, 0x64]).unwrap();
    sock.write_all(&[0u8; 10]).unwrap();
    sock.shutdown(Shutdown::Write).unwrap();
    watcher.expect("[SERVER]: trudy has disconnected.");

    // A whole record that was not made with the session's keys.
    let f = TlsUser::login(&server, &pki.ca, "forger");
    watcher.expect("[SERVER]: forger joined the chat!");
    let mut sock = f.socket().try_clone().unwrap();
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    record.extend_from_slice(&[0x5a; 0x40]);
    sock.write_all(&record).unwrap();
    watcher.expect("[SERVER]: forger has disconnected.");
    read_to_close(sock, WAIT);

    support::nothing_more(&mut watcher);
    no_warnings(&server);
}

#[test]
fn a_tls_user_who_never_reads_is_dropped_and_memory_stays_bounded() {
    let pki = Pki::new("chat test CA");
    let (cert, key, _) = pki.server("srv", &["localhost"]);
    let server = tls_server(&cert, &key, &["--rate", "0", "--max-pending", "65536"]);
    let baseline = server.rss_kib();
    let sleepy = TlsUser::login(&server, &pki.ca, "sleepy");
    let mut watcher = server.login("watcher");
    let sender = server.login("sender");
    watcher.expect("[SERVER]: sender joined the chat!");

    // The sender reads its own echo, or it would be the slow one.
    let mut echo = sender.stream.try_clone().unwrap();
    thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while matches!(echo.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut out = sender.stream.try_clone().unwrap();
    let flood = thread::spawn(move || {
        let batch = format!("{}\n", "x".repeat(4000)).repeat(16);
        for _ in 0..2000 {
            if out.write_all(batch.as_bytes()).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
    });
    let dropped = "[SERVER]: sleepy has disconnected (too slow to read).";
    let mut peak = 0;
    loop {
        let l = watcher.line();
        peak = peak.max(server.rss_kib());
        if l == dropped {
            break;
        }
        assert!(l.starts_with("sender: "), "{l:?}");
    }
    drop(sender);
    let _ = flood.join();
    eprintln!("never-reading TLS user: RSS baseline {baseline} KiB, peak {peak} KiB");
    assert!(peak < baseline + 30 * 1024, "RSS {peak} KiB");
    drop(sleepy);
    no_warnings(&server);
}

#[test]
fn sighup_reloads_the_pair_and_keeps_the_old_one_when_broken() {
    let pki = Pki::new("chat test CA");
    let (cert_a, key_a, der_a) = pki.server("a", &["localhost"]);
    let (cert_b, key_b, der_b) = pki.server("b", &["localhost"]);
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    std::fs::copy(&cert_a, &cert).unwrap();
    std::fs::copy(&key_a, &key).unwrap();
    let server = tls_server(&cert, &key, &[]);
    let mut old = TlsUser::login(&server, &pki.ca, "olga");
    assert_eq!(old.server_cert(), der_a);

    std::fs::copy(&cert_b, &cert).unwrap();
    std::fs::copy(&key_b, &key).unwrap();
    server.signal(libc::SIGHUP);
    wait_log(&server, "TLS certificate reloaded", WAIT);
    let mut new = TlsUser::login(&server, &pki.ca, "nina");
    assert_eq!(new.server_cert(), der_b);
    old.read_until("[SERVER]: nina joined the chat!");
    old.send("my session stays");
    new.read_until("olga: my session stays");
    old.read_until("olga: my session stays");

    // B's certificate with A's key: refused, B stays in use.
    std::fs::copy(&key_a, &key).unwrap();
    server.signal(libc::SIGHUP);
    wait_log(&server, "does not match", WAIT);
    let logs = server.logs();
    let line = logs.lines().find(|l| l.contains("does not match")).unwrap();
    assert!(line.contains(" ERROR "), "{line}");
    assert!(line.contains(key.to_str().unwrap()), "{line}");
    let third = TlsUser::connect(&server, &pki.ca);
    assert_eq!(third.server_cert(), der_b);
    old.send("still fine");
    new.read_until("olga: still fine");
}

#[test]
fn no_plain_listens_for_tls_only() {
    let pki = Pki::new("chat test CA");
    let (cert, key, _) = pki.server("srv", &["localhost"]);
    let server = tls_server(&cert, &key, &["--no-plain", "--no-web"]);
    assert!(
        !server.logs().contains("listening on "),
        "{}",
        server.logs()
    );
    assert_eq!(
        listening_ports(server.pid()),
        vec![server.tls_addr.unwrap().port()]
    );
    let mut u = TlsUser::login(&server, &pki.ca, "solo");
    u.send("/who");
    u.read_until("[SERVER]: 1 user online: solo");
}

/// The TCP ports process `pid` listens on (from /proc).
fn listening_ports(pid: u32) -> Vec<u16> {
    let mut inodes = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let link = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
        let link = link.to_string_lossy();
        if let Some(i) = link.strip_prefix("socket:[") {
            inodes.push(i.trim_end_matches(']').to_owned());
        }
    }
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for row in text.lines().skip(1) {
            let f: Vec<&str> = row.split_whitespace().collect();
            // local address, state (0A = LISTEN), inode
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let port = f[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

/// `chat-server --host 127.0.0.1 --no-web ARGS`, which must exit within
/// [`WAIT`]; its exit code and stderr.
fn server_fails(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--host", "127.0.0.1", "--no-web"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chat-server {args:?} did not exit");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (code, err)
}

#[test]
fn bad_certificate_or_key_files_stop_the_server_naming_the_file() {
    let pki = Pki::new("chat test CA");
    let (cert, key, _) = pki.server("a", &["localhost"]);
    let (_, other_key, _) = pki.server("b", &["localhost"]);
    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = pki.path("missing.pem");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            vec![s(&missing), s(&key)],
            "cannot read the TLS certificate",
            "missing.pem",
        ),
        (
            vec![s(&cert), s(&missing)],
            "cannot read the TLS key",
            "missing.pem",
        ),
        (
            vec![s(&garbage), s(&key)],
            "no TLS certificate found",
            "garbage.pem",
        ),
        (
            vec![s(&cert), s(&garbage)],
            "no TLS key found",
            "garbage.pem",
        ),
        (
            vec![s(&cert), s(&other_key)],
            "does not match the certificate",
            "b-key.pem",
        ),
        // The key where the certificate belongs.
        (
            vec![s(&key), s(&key)],
            "no TLS certificate found",
            "a-key.pem",
        ),
    ];
    for (files, what, file) in cases {
        let (code, err) = server_fails(&[
            "--port",
            "0",
            "--tls-port",
            "0",
            "--tls-cert",
            &files[0],
            "--tls-key",
            &files[1],
        ]);
        assert_eq!(code, Some(1), "{files:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(what) && err.contains(file), "{files:?}: {err}");
    }
    // Checked before binding: a port in use is not what it reports.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let (code, err) = server_fails(&[
        "--port",
        &port,
        "--tls-port",
        &port,
        "--tls-cert",
        &s(&missing),
        "--tls-key",
        &s(&key),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("missing.pem"), "{err}");
    // Both or neither; --no-plain needs them.
    let (code, err) = server_fails(&["--tls-cert", &s(&cert)]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--tls-key"), "{err}");
    let (code, err) = server_fails(&["--no-plain"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--tls-cert"), "{err}");
}

#[test]
fn sigterm_tells_tls_users_and_ends_their_sessions_cleanly() {
    let pki = Pki::new("chat test CA");
    let (cert, key, _) = pki.server("srv", &["localhost"]);
    let mut server = tls_server(&cert, &key, &["--login-timeout", "30"]);
    let mut user = TlsUser::login(&server, &pki.ca, "tina");
    let hello = client_hello(&pki.ca);
    let mut half = TcpStream::connect(server.tls_addr.unwrap()).unwrap();
    half.write_all(&hello[..hello.len() / 2]).unwrap();
    user.send("/ping ready");
    user.read_until("/pong ready");
    server.signal(libc::SIGTERM);
    // The notice, then a close_notify (a clean end, not a cut).
    let mut lines = Vec::new();
    loop {
        let mut buf = String::new();
        match user.r.read_line(&mut buf) {
            Ok(0) => break,
            Ok(_) => lines.push(buf),
            Err(e) => panic!("not a clean end after {lines:?}: {e}"),
        }
    }
    let last = lines.pop().expect("the shutdown notice");
    assert!(last.starts_with("[SERVER]: "), "{last:?}");
    // A handshake still under way is cut, not waited for.
    assert!(read_to_close(half, WAIT).is_empty());
    assert_eq!(server.wait_exit(WAIT), Some(0));
}

/// §11 reading: over TLS a connection beyond `--max-clients` is closed
/// without the notice (it would need a handshake first): it gets no
/// plaintext at all, and the user inside is not disturbed.
#[test]
fn tls_beyond_max_clients_is_closed_without_a_notice() {
    let pki = Pki::new("limit test CA");
    let (cert, key, _) = pki.server("srv", &["localhost", "127.0.0.1"]);
    let server = tls_server(&cert, &key, &["--no-plain", "--max-clients", "1"]);
    let mut inside = TlsUser::login(&server, &pki.ca, "inside");
    // A raw connection sees the close and not one byte before it.
    let mut raw = TcpStream::connect(server.tls_addr.unwrap()).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    match raw.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the refused connection stayed open: {e}"),
    }
    assert!(
        got.is_empty(),
        "bytes reached a refused connection: {got:?}"
    );
    // A TLS client is refused too.
    assert!(tls_connect(server.tls_addr.unwrap(), &pki.ca, "localhost").is_err());
    inside.send("/who");
    inside.expect("[SERVER]: 1 user online: inside");
}
