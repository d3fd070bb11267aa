//! PROTOCOL.md section 9 through real sockets: the HTTP side (`/`,
//! `/healthz`, `/metrics`, 404, bad and slow heads, the upgrade's rules and
//! `--web-origin`) and WebSocket users in the same room as TCP users, under
//! the same rules (names, commands, ids, order, limits, timeouts).
//!
//! The frame-level rules are in `tests/web_frames.rs`, the ones under load
//! (slow readers, bursts, shutdown, memory) in `tests/web_load.rs`.
mod common;
mod support;
mod webclient;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::Server;
use webclient::{
    get, metrics, read_to_close, request, upgrade_request, wait_metric, web, Chat, WsClient,
};

const PER_IP: &str = "[SERVER]: Too many connections from your address; please try again later.";

// ---- HTTP ----

/// §9: `GET /` is the page, as HTML in UTF-8, from the server itself.
#[test]
fn root_is_the_page_in_utf8_html() {
    let server = Server::start(&[]);
    let resp = get(web(&server), "/");
    assert_eq!(resp.code, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        resp.text()
            .to_ascii_lowercase()
            .starts_with("<!doctype html>"),
        "{}",
        resp.text()
    );
    assert_eq!(resp.header("connection"), Some("close"));
    // It may load nothing from anywhere else: the browser is told so.
    let csp = resp
        .header("content-security-policy")
        .expect("a Content-Security-Policy");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    for directive in csp.split(';').map(str::trim) {
        let sources = directive.split_whitespace().skip(1);
        for src in sources {
            assert!(
                ["'self'", "'none'"].contains(&src)
                    || src.ends_with(&format!("//{}", web(&server))),
                "{directive} lets the page load from {src}"
            );
        }
    }
}

/// §9: every file the page names (its `src` and `href` values) is served
/// from the server, byte for byte as in `web/`, with a content type; none
/// is on another host.
#[test]
fn the_pages_own_files_are_served() {
    let server = Server::start(&[]);
    let w = web(&server);
    let page = get(w, "/").text().to_owned();
    let mut named: Vec<&str> = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for piece in page.split(attr).skip(1) {
            named.push(piece.split('"').next().unwrap_or_default());
        }
    }
    named.sort_unstable();
    named.dedup();
    assert!(!named.is_empty(), "the page names no file:\n{page}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    for name in named {
        assert!(
            !name.contains("//") && !name.contains(':'),
            "the page loads {name} from elsewhere"
        );
        let resp = get(w, &format!("/{}", name.trim_start_matches('/')));
        assert_eq!(resp.code, 200, "{name}");
        assert!(resp.header("content-type").is_some(), "{name}");
        let file = std::fs::read(dir.join(name.trim_start_matches('/'))).expect("the file in web/");
        assert!(resp.body == file, "{name} differs from web/{name}");
    }
}

/// §9: the web side listens on `--host` (the port `--web-port 0` picked is
/// logged with the URL to open); `--no-web` turns it off.
#[test]
fn web_port_is_logged_and_no_web_turns_it_off() {
    let server = Server::start(&[]);
    let w = web(&server);
    assert_eq!(w.ip().to_string(), "127.0.0.1");
    support::wait_log(
        &server,
        &format!(
            "web on {w}: open http://localhost:{}/ in a browser",
            w.port()
        ),
        common::WAIT,
    );
    let off = Server::start(&["--no-web"]);
    assert_eq!(off.web_addr, None);
    assert!(!off.logs().contains("web on"), "{}", off.logs());
    let mut c = off.login("alone");
    c.send("/who");
    c.expect("[SERVER]: 1 user online: alone");
}

/// §9: `GET /healthz` is `200` with the body `ok`; a query string is
/// ignored.
#[test]
fn healthz_is_200_ok() {
    let server = Server::start(&[]);
    for path in ["/healthz", "/healthz?probe=1"] {
        let resp = get(web(&server), path);
        assert_eq!(resp.code, 200, "{path}");
        assert_eq!(resp.text(), "ok", "{path}");
    }
}

/// §9: any other path is `404`.
#[test]
fn other_paths_are_404() {
    let server = Server::start(&[]);
    for path in [
        "/nope",
        "/index.html/x",
        "/healthz/",
        "/ws/",
        "/metricsx",
        "//",
    ] {
        let resp = get(web(&server), path);
        assert_eq!(resp.code, 404, "{path}");
    }
}

/// §9: `/metrics` is Prometheus text with the named families, and they
/// move: connections by transport (logged in or not; a plain HTTP request
/// is not one), users, lines, deliveries.
#[test]
fn metrics_parse_and_move() {
    let server = Server::start(&["--rate", "0"]);
    let w = web(&server);
    let m = metrics(w);
    for key in [
        "chat_users",
        "chat_connections{tcp}",
        "chat_connections{ws}",
        "chat_lines_total",
        "chat_deliveries_total",
    ] {
        assert_eq!(m.get(key), 0.0, "{key}");
    }
    for reason in ["too_slow", "idle", "login_timeout", "protocol"] {
        assert_eq!(m.get(&format!("chat_dropped_total{{{reason}}}")), 0.0);
    }
    for reason in ["full", "per_ip", "rate", "too_long", "binary"] {
        assert_eq!(m.get(&format!("chat_refused_total{{{reason}}}")), 0.0);
    }

    // Two connections not logged in yet, one of each transport.
    let mut tcp = server.connect();
    tcp.expect_prefix("[SERVER]: Welcome");
    let mut ws = WsClient::connect(w);
    ws.expect_prefix("[SERVER]: Welcome");
    let m = metrics(w);
    assert_eq!(m.get("chat_connections{tcp}"), 1.0);
    assert_eq!(m.get("chat_connections{ws}"), 1.0);
    assert_eq!(m.get("chat_users"), 0.0);

    tcp.send("alice");
    tcp.read_until("[SERVER]: alice joined the chat!");
    ws.send("bob");
    ws.read_until("[SERVER]: bob joined the chat!");
    tcp.expect("[SERVER]: bob joined the chat!");
    let before = metrics(w);
    assert_eq!(before.get("chat_users"), 2.0);

    // One chat line from each: two lines, each delivered to both.
    tcp.send("one");
    ws.send("two");
    for c in [&mut tcp as &mut dyn Chat, &mut ws] {
        c.expect("alice: one");
        c.expect("bob: two");
    }
    let after = metrics(w);
    assert_eq!(
        after.get("chat_lines_total") - before.get("chat_lines_total"),
        2.0
    );
    assert_eq!(
        after.get("chat_deliveries_total") - before.get("chat_deliveries_total"),
        4.0
    );

    // The WebSocket user leaves: both gauges go down.
    ws.send("/quit");
    assert_eq!(ws.expect_eof(), vec!["[SERVER]: Goodbye, bob!"]);
    tcp.expect("[SERVER]: bob left the chat.");
    drop(ws);
    wait_metric(w, "chat_connections{ws}", 0.0);
    let m = metrics(w);
    assert_eq!(m.get("chat_users"), 1.0);
    assert_eq!(m.get("chat_connections{tcp}"), 1.0);
}

/// §5 and §9: a connection beyond `--max-clients` is counted as refused
/// (`full`), a TCP one with the notice, a web one with `503`.
#[test]
fn metrics_count_refusals_when_full() {
    let server = Server::start(&["--max-clients", "1"]);
    let w = web(&server);
    let mut held = server.connect();
    held.expect_prefix("[SERVER]: Welcome");
    let mut extra = server.connect();
    assert_eq!(
        extra.expect_eof(),
        vec!["[SERVER]: The server is full; please try again later."]
    );
    let full = get(w, "/healthz");
    assert_eq!(full.code, 503);
    // Leaving frees the place at once, for the scrape.
    held.send("/quit");
    assert!(held.expect_eof().is_empty());
    assert_eq!(metrics(w).get("chat_refused_total{full}"), 2.0);
}

/// §9: `GET /ws` without valid upgrade headers is `400`.
#[test]
fn ws_without_a_valid_upgrade_is_400() {
    let server = Server::start(&[]);
    let w = web(&server);
    let host = format!("Host: {w}\r\n");
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let version = "Sec-WebSocket-Version: 13\r\n";
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    let cases = [
        ("plain GET", format!("GET /ws HTTP/1.1\r\n{host}\r\n")),
        (
            "no key",
            format!("GET /ws HTTP/1.1\r\n{host}{upgrade}{version}\r\n"),
        ),
        (
            "key not 16 bytes",
            format!(
                "GET /ws HTTP/1.1\r\n{host}{upgrade}{version}Sec-WebSocket-Key: c2hvcnQ=\r\n\r\n"
            ),
        ),
        (
            "version 8",
            format!("GET /ws HTTP/1.1\r\n{host}{upgrade}{key}Sec-WebSocket-Version: 8\r\n\r\n"),
        ),
        (
            "upgrade to h2c",
            format!(
                "GET /ws HTTP/1.1\r\n{host}Upgrade: h2c\r\nConnection: Upgrade\r\n{key}{version}\r\n"
            ),
        ),
        (
            "no Connection: Upgrade",
            format!("GET /ws HTTP/1.1\r\n{host}Upgrade: websocket\r\n{key}{version}\r\n"),
        ),
        (
            "HTTP/1.0",
            format!("GET /ws HTTP/1.0\r\n{upgrade}{key}{version}\r\n"),
        ),
    ];
    for (what, req) in cases {
        let resp = request(w, req.as_bytes());
        assert_eq!(resp.code, 400, "{what}");
    }
    // The same headers, complete, are an upgrade.
    let mut s = TcpStream::connect(w).unwrap();
    s.write_all(upgrade_request(w, "").as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    s.set_read_timeout(Some(common::WAIT)).unwrap();
    let n = std::io::Read::read(&mut s, &mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
}

/// §9 `--web-origin`: an upgrade whose `Origin` is missing or not listed
/// gets `403`; a listed one (any case, a trailing `/` in the flag ignored)
/// gets `101` and a chat connection.
#[test]
fn web_origin_mismatch_or_missing_is_403_and_match_is_101() {
    let server = Server::start(&[
        "--web-origin",
        "http://good.example:8080",
        "--web-origin",
        "https://Other.example/",
    ]);
    let w = web(&server);
    let missing = request(w, upgrade_request(w, "").as_bytes());
    assert_eq!(missing.code, 403);
    for bad in [
        "http://evil.example",
        "http://good.example",
        "http://good.example:8080.evil",
        "null",
    ] {
        let resp = request(
            w,
            upgrade_request(w, &format!("Origin: {bad}\r\n")).as_bytes(),
        );
        assert_eq!(resp.code, 403, "Origin {bad}");
        assert_eq!(
            WsClient::connect_with(w, &[("Origin", bad)]).err(),
            Some(403)
        );
    }
    for good in ["http://good.example:8080", "https://other.example"] {
        let mut c = WsClient::connect_with(w, &[("Origin", good)])
            .unwrap_or_else(|code| panic!("Origin {good}: {code}"));
        c.expect_prefix("[SERVER]: Welcome");
    }
    // Without --web-origin any origin may upgrade.
    let open = Server::start(&[]);
    let mut c = WsClient::connect_with(web(&open), &[("Origin", "http://evil.example")])
        .expect("no --web-origin: any Origin");
    c.expect_prefix("[SERVER]: Welcome");
}

/// §9: a request head over 8 KiB gets `431`, whether one long header or
/// many, at once or in pieces.
#[test]
fn head_over_8_kib_is_431() {
    let server = Server::start(&[]);
    let w = web(&server);
    let long = format!(
        "GET / HTTP/1.1\r\nHost: {w}\r\nX-Long: {}\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(request(w, long.as_bytes()).code, 431);
    let many: String = (0..400).map(|i| format!("X-H{i}: {i:020}\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: {w}\r\n{many}\r\n");
    assert!(many.len() > 8192);
    assert_eq!(request(w, many.as_bytes()).code, 431);
    // In pieces, never ending: answered once 8 KiB are in.
    let mut s = TcpStream::connect(w).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {w}\r\n").as_bytes())
        .unwrap();
    for i in 0..10 {
        let piece = format!("X-P{i}: {}\r\n", "b".repeat(1000));
        if s.write_all(piece.as_bytes()).is_err() {
            break; // answered and closed already
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let resp = webclient::parse_response(&read_to_close(&mut s));
    assert_eq!(resp.code, 431);
    // The server is fine afterwards.
    assert_eq!(get(w, "/healthz").code, 200);
}

/// §9: a malformed request head gets `400`.
#[test]
fn malformed_head_is_400() {
    let server = Server::start(&[]);
    let w = web(&server);
    let cases: [&[u8]; 6] = [
        b"HELLO\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n", // HTTP/1.1 without Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\r\n",
    ];
    for req in cases {
        assert_eq!(
            request(w, req).code,
            400,
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
    assert_eq!(get(w, "/healthz").code, 200);
}

/// §9 reading: a method other than GET gets `405`, on any path.
#[test]
fn other_methods_are_405() {
    let server = Server::start(&[]);
    let w = web(&server);
    for (method, path) in [("POST", "/"), ("PUT", "/ws"), ("DELETE", "/healthz")] {
        let req = format!("{method} {path} HTTP/1.1\r\nHost: {w}\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(request(w, req.as_bytes()).code, 405, "{method} {path}");
    }
}

/// §9: a head that is not complete within `--login-timeout` of the accept
/// is closed, even while bytes keep trickling in (slowloris), and counted
/// as a login timeout.
#[test]
fn slow_head_is_closed_at_login_timeout() {
    let server = Server::start(&["--login-timeout", "1"]);
    let w = web(&server);
    let mut silent = TcpStream::connect(w).unwrap();
    silent.write_all(b"GET / HT").unwrap();
    let trickle = TcpStream::connect(w).unwrap();
    trickle.set_nodelay(true).unwrap();
    let t0 = Instant::now();
    let mut writer = trickle.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        let head = b"GET / HTTP/1.1\r\nX-Slow: ";
        let mut sent = 0usize;
        for b in head.iter().chain(std::iter::repeat(&b'z')) {
            if writer.write_all(&[*b]).is_err() || sent > 200 {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        sent
    });
    let got = read_to_close(&mut silent);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let mut trickle = trickle;
    let got = read_to_close(&mut trickle);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let took = t0.elapsed();
    let sent = feeder.join().unwrap();
    assert!(took >= Duration::from_millis(900), "closed early: {took:?}");
    assert!(sent < 200, "the trickle was never cut off");
    assert_eq!(metrics(w).get("chat_dropped_total{login_timeout}"), 2.0);
}

// ---- WebSocket users in the room ----

/// §9: a WebSocket user and a TCP user chat both ways in one room: joins,
/// chat, `/me`, `/msg`, `/who`, `/nick`, names unique across transports,
/// `/quit`.
#[test]
fn ws_and_tcp_users_chat_both_ways() {
    let server = Server::start(&["--rate", "0"]);
    let w = web(&server);
    let mut alice = server.login("alice");
    let mut bob = WsClient::connect(w);
    bob.expect_prefix("[SERVER]: Welcome!");
    bob.send("ALICE");
    bob.expect("[SERVER]: Sorry, the name ALICE is taken. Please choose another name:");
    bob.send("bob");
    bob.expect_welcome_with_history("bob");
    alice.expect("[SERVER]: bob joined the chat!");
    // A TCP newcomer cannot take the WebSocket user's name either.
    let mut carl = server.connect();
    carl.expect_prefix("[SERVER]: Welcome!");
    carl.send("Bob");
    carl.expect("[SERVER]: Sorry, the name Bob is taken. Please choose another name:");
    drop(carl);

    alice.send("hello bob");
    bob.send("hello alice");
    for c in [&mut alice as &mut dyn Chat, &mut bob] {
        c.expect("alice: hello bob");
        c.expect("bob: hello alice");
    }
    bob.send("/me waves");
    alice.expect("* bob waves");
    bob.expect("* bob waves");
    bob.send("/msg ALICE psst");
    bob.expect("[PM to alice]: psst");
    alice.expect("[PM from bob]: psst");
    alice.send("/msg bob back");
    alice.expect("[PM to bob]: back");
    bob.expect("[PM from alice]: back");
    bob.send("/who");
    bob.expect("[SERVER]: 2 users online: alice, bob");
    bob.send("/nick bobby");
    alice.expect("[SERVER]: bob is now known as bobby.");
    bob.expect("[SERVER]: bob is now known as bobby.");
    alice.send("/who");
    alice.expect("[SERVER]: 2 users online: alice, bobby");
    bob.send("/quit see you");
    assert_eq!(bob.expect_eof(), vec!["[SERVER]: Goodbye, bobby!"]);
    assert_eq!(bob.close_code(), Some(1000), "a close frame ends the quit");
    alice.expect("[SERVER]: bobby left the chat. (see you)");
}

/// What `name` sees of `script` (sent at once after logging in, ending in
/// `/quit`), and what a TCP peer in the room sees meanwhile, over TCP or
/// WebSocket.
fn transcript(ws: bool) -> (Vec<String>, Vec<String>) {
    let server = Server::start(&[]);
    let mut peer = server.login("peer");
    let mut user: Box<dyn Chat> = if ws {
        Box::new(WsClient::connect(web(&server)))
    } else {
        Box::new(server.connect())
    };
    let mut seen = Vec::new();
    // Before login: the name rules, /ids and /since.
    for l in [
        "/ids on",
        "/since 0",
        "x",
        "admin",
        "Server",
        "has space",
        "pe:er",
        "PEER",
        "/who",
        "/ids off",
        "u1",
    ] {
        user.send(l);
    }
    seen.extend(user.read_until("[SERVER]: u1 joined the chat!"));
    peer.expect("[SERVER]: u1 joined the chat!");
    let script = [
        "/help",
        "/who",
        "hello",
        "  trimmed  ",
        "tab\there and \x1b[31mno escape\x07",
        "//slash",
        "/ME waves",
        "/me",
        "/msg peer psst",
        "/msg nobody x",
        "/msg",
        "/nick u2",
        "/nick U2",
        "/nick peer",
        "/ping tok",
        "/ping",
        "/history 3",
        "/history x",
        "/since 3",
        "/bogus arg",
        "/ids on",
        "after ids",
        "/ids off",
        "!quit",
    ];
    for l in script {
        user.send(l);
    }
    seen.extend(user.expect_eof());
    let peer_seen = peer.sync("end");
    (seen, peer_seen)
}

/// §9 "exactly the rules of sections 1 to 8": the same session, line for
/// line, gives the same transcript over WebSocket as over TCP, for the user
/// and for a TCP user who watches.
#[test]
fn same_commands_same_answers_over_both_transports() {
    let (tcp, tcp_peer) = transcript(false);
    let (ws, ws_peer) = transcript(true);
    assert_eq!(ws, tcp);
    assert_eq!(ws_peer, tcp_peer);
    // And the script did what it says.
    for want in [
        "[SERVER]: Sorry, the name PEER is taken. Please choose another name:",
        "u1: hello",
        "u1: trimmed",
        "u1: tab\there and [31mno escape",
        "u1: /slash",
        "* u1 waves",
        "[PM to peer]: psst",
        "[SERVER]: u1 is now known as u2.",
        "[SERVER]: u2 is now known as U2.",
        "/pong tok",
        "/pong",
        "[SERVER]: End of history.",
        "[SERVER]: Goodbye, U2!",
    ] {
        assert!(ws.iter().any(|l| l == want), "no {want:?} in {ws:#?}");
    }
    assert!(ws
        .iter()
        .any(|l| l.starts_with("@") && l.ends_with(" U2: after ids")));
    assert!(ws_peer.iter().any(|l| l == "[SERVER]: U2 left the chat."));
}

/// §8 over WebSocket: with `/ids on` public lines carry the same ids on
/// both transports (and only public lines); `/since` resumes a WebSocket
/// user without a missing or repeated line.
#[test]
fn ids_and_resume_over_ws() {
    let server = Server::start(&["--rate", "0"]);
    let w = web(&server);
    let mut tcp = server.login("tcp");
    let mut ws = WsClient::connect(w);
    ws.expect_prefix("[SERVER]: Welcome!");
    ws.send("/ids on");
    ws.expect("[SERVER]: Ids on: public lines now start with @ID.");
    ws.send("web");
    ws.expect_prefix("[SERVER]: Welcome to the chat, web!");
    ws.expect("[SERVER]: History (1 line):");
    ws.expect("@1 [SERVER]: tcp joined the chat!");
    ws.expect("[SERVER]: End of history.");
    ws.expect("@2 [SERVER]: web joined the chat!");
    tcp.expect("[SERVER]: web joined the chat!");
    tcp.send("/ids on");
    tcp.expect("[SERVER]: Ids on: public lines now start with @ID.");
    tcp.send("from tcp");
    ws.send("from web");
    ws.send("/ping x");
    for c in [&mut tcp as &mut dyn Chat, &mut ws] {
        c.expect("@3 tcp: from tcp");
        c.expect("@4 web: from web");
    }
    ws.expect("/pong x");
    ws.send("/msg tcp private");
    ws.expect("[PM to tcp]: private");
    tcp.expect("[PM from web]: private");
    // The WebSocket user goes away; two lines pass; it comes back resuming
    // after the last id it saw.
    ws.close_with(1001);
    assert!(ws.expect_eof().is_empty());
    tcp.expect("@5 [SERVER]: web has disconnected.");
    tcp.send("missed one");
    tcp.send("missed two");
    tcp.expect("@6 tcp: missed one");
    tcp.expect("@7 tcp: missed two");
    let mut back = WsClient::connect(w);
    back.expect_prefix("[SERVER]: Welcome!");
    back.send("/ids on");
    back.send("/since 4");
    back.send("web");
    back.read_until("[SERVER]: History (3 lines):");
    back.expect("@5 [SERVER]: web has disconnected.");
    back.expect("@6 tcp: missed one");
    back.expect("@7 tcp: missed two");
    back.expect("[SERVER]: End of history.");
    back.expect("@8 [SERVER]: web joined the chat!");
    tcp.expect("@8 [SERVER]: web joined the chat!");
    back.send("/ids off");
    back.expect("[SERVER]: Ids off.");
    tcp.send("plain now");
    back.expect("tcp: plain now");
    tcp.expect("@9 tcp: plain now");
}

/// §3.4 and §9: TCP and WebSocket users who all send at once all see all
/// lines in one and the same order, each sender's in the order sent.
#[test]
fn one_order_for_tcp_and_ws_users() {
    const USERS: usize = 3; // of each transport
    const LINES: usize = 40;
    let server = Server::start(&["--rate", "0"]);
    let w = web(&server);
    let mut users: Vec<(String, Box<dyn Chat + Send>)> = Vec::new();
    for i in 0..USERS {
        let t = format!("t{i}");
        users.push((t.clone(), Box::new(server.login(&t))));
        let ws = format!("w{i}");
        users.push((ws.clone(), Box::new(WsClient::login(w, &ws))));
    }
    let total = users.len();
    // Everyone has seen the last join before anyone sends.
    for (i, (_, c)) in users.iter_mut().enumerate() {
        for later in (i + 1)..total {
            let name = if later % 2 == 0 {
                format!("t{}", later / 2)
            } else {
                format!("w{}", later / 2)
            };
            c.expect(&format!("[SERVER]: {name} joined the chat!"));
        }
    }
    let gate = Arc::new(Barrier::new(total));
    let handles: Vec<_> = users
        .into_iter()
        .map(|(name, mut c)| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.wait();
                for i in 0..LINES {
                    c.send(&format!("{name} line {i:02}"));
                }
                let mut got = Vec::new();
                while got.len() < total * LINES {
                    got.push(c.line());
                }
                (name, got)
            })
        })
        .collect();
    let seen: Vec<(String, Vec<String>)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (name, lines) in &seen {
        assert_eq!(
            lines, &seen[0].1,
            "{name} saw another order than {}",
            seen[0].0
        );
    }
    for (name, _) in &seen {
        let mine: Vec<&String> = seen[0]
            .1
            .iter()
            .filter(|l| l.starts_with(&format!("{name}: ")))
            .collect();
        let want: Vec<String> = (0..LINES)
            .map(|i| format!("{name}: {name} line {i:02}"))
            .collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>(), "{name}'s lines");
    }
}

/// §8 and §9: the four ways a public line can look (TCP or WebSocket, with
/// or without ids) in one room, while lines from a paste and a multi-line
/// message are broadcast in one turn with private lines between them: each
/// user gets every line once, in one order, in its own form.
#[test]
fn every_form_of_a_line_in_one_turn() {
    let server = Server::start(&["--rate", "0"]);
    let w = web(&server);
    let mut t = server.login("tt");
    let mut ti = server.login("ti");
    let mut ws = WsClient::login(w, "ww");
    let mut wi = WsClient::login(w, "wi");
    for c in [&mut ti as &mut dyn Chat, &mut wi] {
        c.send("/ids on");
        c.read_until("[SERVER]: Ids on: public lines now start with @ID.");
    }
    t.read_until("[SERVER]: wi joined the chat!");
    ws.read_until("[SERVER]: wi joined the chat!");
    // One write from t: chat, a private answer, chat, an action; then a
    // WebSocket message of three lines with a private one among them.
    t.send_raw(b"a\n/ping x\nb\n/me c\n");
    t.expect("tt: a");
    t.expect("/pong x");
    t.expect("tt: b");
    t.expect("* tt c");
    wi.send("d\n/ping y\ne");
    let plain = ["tt: a", "tt: b", "* tt c", "wi: d", "wi: e"];
    let first = 5; // ids 1-4 are the four join notices
    let with_ids: Vec<String> = plain
        .iter()
        .enumerate()
        .map(|(k, l)| format!("@{} {l}", first + k))
        .collect();
    for (c, want) in [
        (&mut ti as &mut dyn Chat, &with_ids[..]),
        (&mut ws, &plain.map(String::from)[..]),
    ] {
        for l in want {
            c.expect(l);
        }
    }
    for (k, l) in with_ids.iter().enumerate() {
        wi.expect(l);
        if k == 3 {
            wi.expect("/pong y");
        }
    }
    t.expect("wi: d");
    t.expect("wi: e");
}

// ---- limits and timeouts over WebSocket ----

/// §1 and §9: `--max-line` applies to each line after the split at LF; a
/// longer one gets the too-long notice once and the connection stays
/// usable; a CR before an LF is dropped; a line split over fragments counts
/// whole.
#[test]
fn max_line_applies_per_line_over_ws() {
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    use tungstenite::protocol::frame::Frame;
    use tungstenite::Message;
    let server = Server::start(&["--max-line", "10", "--rate", "0"]);
    let w = web(&server);
    let mut tcp = server.login("tcp");
    let mut ws = WsClient::login(w, "ws");
    tcp.expect("[SERVER]: ws joined the chat!");
    let too_long = "[SERVER]: Line too long (limit 10 bytes); it was not delivered.";
    ws.send("short\nxxxxxxxxxxx\nok\r\n0123456789\r");
    ws.expect("ws: short");
    ws.expect(too_long);
    ws.expect("ws: ok");
    ws.expect("ws: 0123456789");
    // 6 + 6 bytes in two fragments: one line of 12.
    let frag = |data: &str, op: Data, fin: bool| {
        Message::Frame(Frame::message(
            data.as_bytes().to_vec(),
            OpCode::Data(op),
            fin,
        ))
    };
    ws.send_message(frag("abcdef", Data::Text, false));
    ws.send_message(frag("ghijkl", Data::Continue, true));
    ws.expect(too_long);
    // A message of 100 KiB: one notice, then the next message is a line.
    ws.send(&"y".repeat(100 * 1024));
    ws.send("still ok");
    ws.expect(too_long);
    ws.expect("ws: still ok");
    for want in ["ws: short", "ws: ok", "ws: 0123456789", "ws: still ok"] {
        tcp.expect(want);
    }
    assert_eq!(metrics(w).get("chat_refused_total{too_long}"), 3.0);
    // Before login too.
    let mut anon = WsClient::connect(w);
    anon.expect_prefix("[SERVER]: Welcome!");
    anon.send("a-name-that-is-too-long");
    anon.expect(too_long);
    anon.send("anon");
    anon.expect_prefix("[SERVER]: Welcome to the chat, anon!");
}

/// §5 over WebSocket: `--rate` refuses lines past the burst with a notice
/// each; refused lines never reach anyone.
#[test]
fn rate_limit_over_ws() {
    let server = Server::start(&["--rate", "1"]);
    let w = web(&server);
    let mut tcp = server.login("tcp");
    let mut ws = WsClient::login(w, "ws");
    tcp.expect("[SERVER]: ws joined the chat!");
    for i in 0..5 {
        ws.send(&format!("m{i}"));
    }
    ws.send("/ping done");
    let got = ws.read_until("/pong done");
    let too_fast =
        "[SERVER]: You are sending too fast (limit 1 lines/s); that line was not delivered.";
    assert_eq!(
        got,
        vec!["ws: m0", "ws: m1", too_fast, too_fast, too_fast],
        "a burst of twice the rate, then refusals"
    );
    tcp.expect("ws: m0");
    tcp.expect("ws: m1");
    support::nothing_more(&mut tcp);
    assert_eq!(metrics(w).get("chat_refused_total{rate}"), 3.0);
}

/// §5 `--max-per-ip` counts TCP and web connections from one address
/// together: beyond it a TCP connection gets the notice, a web one `429`;
/// a place frees when a WebSocket user leaves.
#[test]
fn max_per_ip_counts_tcp_and_web_together() {
    let server = Server::start(&["--max-per-ip", "2", "--per-ip-exempt", ""]);
    let w = web(&server);
    let mut alice = server.login("alice");
    let mut bob = WsClient::login(w, "bob");
    alice.expect("[SERVER]: bob joined the chat!");
    let mut third = server.connect();
    assert_eq!(third.expect_eof(), vec![PER_IP]);
    assert_eq!(get(w, "/healthz").code, 429);
    let upgrade = request(w, upgrade_request(w, "").as_bytes());
    assert_eq!(upgrade.code, 429);
    // bob closes his tab: his place is free for a TCP user.
    bob.close_with(1001);
    assert!(bob.expect_eof().is_empty());
    alice.expect("[SERVER]: bob has disconnected.");
    let mut carol = server.login("carol");
    alice.expect("[SERVER]: carol joined the chat!");
    assert_eq!(WsClient::connect_with(w, &[]).err(), Some(429));
    carol.send("hi");
    alice.expect("carol: hi");
    // carol leaves, so the scrape (a web connection too) gets a place.
    carol.send("/quit");
    carol.expect_eof();
    alice.expect("[SERVER]: carol left the chat.");
    assert_eq!(metrics(w).get("chat_refused_total{per_ip}"), 4.0);
}

/// §3.2 over WebSocket: no name within `--login-timeout`: a notice, a
/// close frame, the end; counted as a login timeout.
#[test]
fn login_timeout_over_ws() {
    let server = Server::start(&["--login-timeout", "1"]);
    let w = web(&server);
    let mut ws = WsClient::connect(w);
    ws.expect_prefix("[SERVER]: Welcome!");
    assert_eq!(
        ws.expect_eof(),
        vec!["[SERVER]: No name chosen within 1 s; closing the connection."]
    );
    assert_eq!(ws.close_code(), Some(1000));
    assert_eq!(metrics(w).get("chat_dropped_total{login_timeout}"), 1.0);
    drop(ws);
    wait_metric(w, "chat_connections{ws}", 0.0);
}

/// §3.5 over WebSocket: a user silent for `--idle-timeout` is told, closed
/// with a close frame, and the others are told it timed out. Any byte
/// counts as activity, a WebSocket ping too.
#[test]
fn idle_timeout_over_ws() {
    let server = Server::start(&["--idle-timeout", "1"]);
    let w = web(&server);
    let mut tcp = server.login("tcp");
    let mut pinger = WsClient::login(w, "pinger");
    tcp.expect("[SERVER]: pinger joined the chat!");
    let mut idler = WsClient::login(w, "idler");
    tcp.expect("[SERVER]: idler joined the chat!");
    pinger.expect("[SERVER]: idler joined the chat!");
    // The TCP watcher stays alive by pinging; so does `pinger`, with
    // WebSocket pings only; `idler` sends nothing.
    let t0 = Instant::now();
    let mut told = false;
    while !told || t0.elapsed() < Duration::from_millis(2500) {
        assert!(t0.elapsed() < common::WAIT, "idler never timed out");
        pinger.send_message(tungstenite::Message::Ping(b"k".to_vec().into()));
        let before = tcp.sync(&format!("t{}", t0.elapsed().as_millis()));
        for l in before {
            assert_eq!(l, "[SERVER]: idler has disconnected (timed out).");
            told = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        idler.expect_eof(),
        vec!["[SERVER]: Nothing received for 1 s; closing the connection (timed out)."]
    );
    assert_eq!(idler.close_code(), Some(1000));
    // pinger is still in the room.
    pinger.send("/who");
    let who = pinger.read_until_match_ws(|l| l.starts_with("[SERVER]: 2 users"));
    assert_eq!(who, "[SERVER]: 2 users online: pinger, tcp");
    assert!(!pinger.pongs.is_empty());
    assert_eq!(metrics(w).get("chat_dropped_total{idle}"), 1.0);
}

/// Helpers only these tests need.
trait WsExt {
    /// After a name: the welcome, any history block, then the join notice.
    fn expect_welcome_with_history(&mut self, name: &str);
    /// Reads lines until one satisfies `pred`; skips the `idler` notices.
    fn read_until_match_ws(&mut self, pred: impl Fn(&str) -> bool) -> String;
}

impl WsExt for WsClient {
    fn expect_welcome_with_history(&mut self, name: &str) {
        self.expect_prefix(&format!("[SERVER]: Welcome to the chat, {name}!"));
        let mut next = self.line();
        if next.starts_with("[SERVER]: History (") {
            self.read_until("[SERVER]: End of history.");
            next = self.line();
        }
        assert_eq!(next, format!("[SERVER]: {name} joined the chat!"));
    }

    fn read_until_match_ws(&mut self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let l = self.line();
            if pred(&l) {
                return l;
            }
            assert!(l.contains("idler"), "unexpected {l:?}");
        }
    }
}
