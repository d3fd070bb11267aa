//! PROTOCOL.md sections 3.6, 5 and 9 under load, for WebSocket users: a
//! slow WebSocket reader is dropped like a TCP one, a WebSocket reader who
//! keeps up is never dropped in a burst, SIGTERM sends WebSocket users the
//! notice and a close frame, and what an idle WebSocket user costs.
mod common;
mod support;
mod webclient;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use tungstenite::protocol::WebSocketConfig;

use common::{Server, WAIT};
use support::{one_at_a_time, paste_line, ping_until_dropped, read_pastes, wait_log, Drain, Flood};
use webclient::{metrics, web, Chat, WsClient};

/// §5 and §9: a WebSocket user who never reads while another user floods
/// is dropped as too slow, like a TCP one; the others are told why, a
/// third user's round trips stay short, and the server's memory stays
/// bounded by `--max-pending`.
#[test]
fn slow_ws_reader_is_dropped_like_a_tcp_one() {
    let _heavy = one_at_a_time();
    let server = Server::start(&["--rate", "0", "--max-pending", "65536"]);
    let w = web(&server);
    let baseline = server.rss_kib();
    let slow = WsClient::login(w, "slow"); // never reads again
    let mut pinger = server.login("pinger");
    let sender = server.login("sender");
    pinger.read_until("[SERVER]: sender joined the chat!");
    let echo = Drain::start(&sender.stream, 0);
    let flood = Flood::start(&sender.stream);
    let seen = ping_until_dropped(&server, &mut pinger, "slow");
    let sent = flood.stop();
    let (worst, peak_rss) = (seen.worst, seen.peak_rss);
    eprintln!(
        "slow WebSocket reader dropped after {:?}: {} MB sent, {} pings, worst round trip {worst:?}, \
         RSS {baseline} KiB before, peak {peak_rss} KiB",
        seen.dropped_at,
        sent >> 20,
        seen.pings
    );
    assert!(worst < Duration::from_secs(2), "round trip took {worst:?}");
    assert!(
        peak_rss < baseline + 30 * 1024,
        "RSS {peak_rss} KiB (baseline {baseline} KiB)"
    );
    wait_log(&server, "dropped: output passed --max-pending", WAIT);
    assert!(server
        .logs()
        .lines()
        .any(|l| l.contains("(slow) from 127.0.0.1:")
            && l.ends_with("dropped: output passed --max-pending")));
    assert_eq!(metrics(w).get("chat_dropped_total{too_slow}"), 1.0);
    drop(slow);
    drop(echo);
    pinger.send("/who");
    pinger.read_until_match(|l| l.starts_with("[SERVER]: 2 users online: pinger, sender"));
}

/// §5 and §9: 20 WebSocket readers and 2 TCP readers while two TCP users
/// and one WebSocket user each paste 40 lines of 4,000 bytes in the same
/// instant: nobody is dropped, everyone gets all 120 lines in one order,
/// each paster's in the order sent.
#[test]
fn ws_readers_who_keep_up_are_never_dropped_in_a_burst() {
    let _heavy = one_at_a_time();
    const LINES: usize = 40;
    const LEN: usize = 4000;
    let server = Server::start(&[]);
    let w = web(&server);
    let mut users: Vec<(String, Box<dyn Chat + Send>)> = Vec::new();
    let mut pastes: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    // Pasters 0 and 1 over TCP, paster 2 over WebSocket; each writes its
    // paste in one go (a WebSocket paste is 40 messages, sent at once).
    for s in 0..2 {
        let name = format!("s{s}");
        let c = server.login(&name);
        let mut out = c.stream.try_clone().unwrap();
        let paste: String = (0..LINES).map(|i| paste_line(s, i, LEN) + "\n").collect();
        pastes.push(Box::new(move || out.write_all(paste.as_bytes()).unwrap()));
        users.push((name, Box::new(c)));
    }
    let ws_paster = WsClient::login(w, "s2");
    let frames: Vec<u8> = (0..LINES)
        .flat_map(|i| webclient::masked_text(paste_line(2, i, LEN).as_bytes()))
        .collect();
    let mut out = ws_paster.ws.get_ref().try_clone().unwrap();
    pastes.push(Box::new(move || out.write_all(&frames).unwrap()));
    users.push(("s2".into(), Box::new(ws_paster)));
    for r in 0..20 {
        let name = format!("w{r}");
        users.push((name.clone(), Box::new(WsClient::login(w, &name))));
    }
    for r in 0..2 {
        let name = format!("t{r}");
        users.push((name.clone(), Box::new(server.login(&name))));
    }
    // Everyone has read every join before the burst.
    let names: Vec<String> = users.iter().map(|(n, _)| n.clone()).collect();
    for (i, (_, c)) in users.iter_mut().enumerate() {
        for later in &names[i + 1..] {
            c.expect(&format!("[SERVER]: {later} joined the chat!"));
        }
    }
    let total = 3 * LINES;
    let readers: Vec<_> = users
        .into_iter()
        .map(|(_, c)| read_pastes(c, total))
        .collect();
    let gate = Arc::new(Barrier::new(pastes.len()));
    let pasters: Vec<_> = pastes
        .into_iter()
        .map(|paste| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.wait();
                paste();
            })
        })
        .collect();
    for p in pasters {
        p.join().unwrap();
    }
    let seen: Vec<Vec<String>> = readers.into_iter().map(|h| h.join().unwrap()).collect();
    for (who, lines) in seen.iter().enumerate() {
        assert_eq!(lines, &seen[0], "{} saw another order", names[who]);
    }
    for s in 0..3 {
        let mine: Vec<&String> = seen[0]
            .iter()
            .filter(|l| l.starts_with(&format!("s{s}: ")))
            .collect();
        let want: Vec<String> = (0..LINES)
            .map(|i| format!("s{s}: {}", paste_line(s, i, LEN)))
            .collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>(), "s{s}'s lines");
    }
    assert!(
        !server.logs().contains("--max-pending"),
        "someone was dropped:\n{}",
        server.logs()
    );
    assert_eq!(metrics(w).get("chat_dropped_total{too_slow}"), 0.0);
}

/// §3.6 and §9: on SIGTERM every WebSocket connection (logged in or not)
/// gets the shutdown notice, then a close frame (1001, going away), then
/// the end; a TCP user gets the notice; nobody is told about the others
/// leaving; the server exits with status 0.
#[test]
fn sigterm_sends_ws_users_the_notice_and_a_close_frame() {
    let mut server = Server::start(&[]);
    let w = web(&server);
    let mut tcp = server.login("tcp");
    let mut ws = WsClient::login(w, "web");
    tcp.expect("[SERVER]: web joined the chat!");
    let mut anon = WsClient::connect(w);
    anon.expect_prefix("[SERVER]: Welcome!");
    let mut half_head = TcpStream::connect(w).unwrap();
    half_head.write_all(b"GET / HT").unwrap();
    // The server has this head before the signal: /metrics answered after it.
    assert_eq!(metrics(w).get("chat_users"), 2.0);
    server.signal(libc::SIGTERM);
    let notice = "[SERVER]: The server is shutting down. Goodbye!";
    for c in [&mut ws, &mut anon] {
        assert_eq!(c.expect_eof(), vec![notice]);
        assert_eq!(c.close_code(), Some(1001));
    }
    assert_eq!(tcp.expect_eof(), vec![notice]);
    assert!(webclient::read_to_close(&mut half_head).is_empty());
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Logs `n` WebSocket users in (names `PREFIX0`..), each with a small read
/// buffer on our side; they stay idle.
fn ws_crowd(web: SocketAddr, prefix: &str, n: usize) -> Vec<WsClient> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    (0..n)
        .map(|i| WsClient::login_with(web, &format!("{prefix}{i}"), config))
        .collect()
}

/// Memory: what an idle WebSocket user costs the server, next to an idle
/// TCP user, with the default flags (so each got the room's recent lines at
/// login), and again after each WebSocket user sent one long line (every
/// message passes through its line reader). The target is at most 2 KiB;
/// the figures are printed, and the bound is the target plus a quarter,
/// for the noise of a small sample (the benchmark measures 10,000).
#[test]
fn idle_ws_user_costs_little_memory() {
    let _heavy = one_at_a_time();
    const N: usize = 2000;
    const BOUND: f64 = 2560.0;
    // The sweep (once a second) gives back buffers a login left large.
    const SETTLE: Duration = Duration::from_millis(2500);
    let per_conn = |before: u64, after: u64| (after as f64 - before as f64) * 1024.0 / N as f64;
    let server = Server::start(&[]);
    let before = server.rss_kib();
    let mut crowd = ws_crowd(web(&server), "w", N);
    std::thread::sleep(SETTLE);
    let after = server.rss_kib();
    let ws_per = per_conn(before, after);
    // A long line each (a ping: its answer goes to the sender alone).
    let long = format!("/ping {}", "z".repeat(994));
    for c in crowd.iter_mut() {
        c.send(&long);
    }
    let pong = long.replace("/ping", "/pong");
    for c in crowd.iter_mut() {
        c.read_until(&pong); // after the joins it had not read
    }
    std::thread::sleep(SETTLE);
    let after_long = server.rss_kib();
    let ws_long = per_conn(before, after_long);
    drop(crowd);
    let server = Server::start(&[]);
    let before_tcp = server.rss_kib();
    let crowd: Vec<_> = (0..N).map(|i| server.login(&format!("t{i}"))).collect();
    std::thread::sleep(SETTLE);
    let after_tcp = server.rss_kib();
    let tcp_per = per_conn(before_tcp, after_tcp);
    drop(crowd);
    eprintln!(
        "idle users, {N} of each: WebSocket {ws_per:.0} B per connection (RSS {before} -> {after} KiB), \
         {ws_long:.0} B after a 1,000-byte line each ({after_long} KiB); \
         TCP {tcp_per:.0} B (RSS {before_tcp} -> {after_tcp} KiB)"
    );
    assert!(ws_per < BOUND, "{ws_per:.0} B per idle WebSocket user");
    assert!(
        ws_long < BOUND,
        "{ws_long:.0} B per idle WebSocket user after a long line"
    );
}
