//! Hostile bytes (PROTOCOL.md sections 1 and 5): whatever one connection
//! sends, the server stays up, its memory stays bounded and the other users
//! go on chatting.
mod common;
mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Client, Server};
use support::{alive, assert_clean, reset_stream, room_works, Drain, Rng};

const FULL: &str = "[SERVER]: The server is full; please try again later.";

/// A server with two users who check, after each abuse, that they can chat.
fn room(args: &[&str]) -> (Server, Client, Client) {
    let server = Server::start(args);
    let mut a = server.login("alice");
    let b = server.login("bob");
    a.expect("[SERVER]: bob joined the chat!");
    (server, a, b)
}

#[test]
fn random_binary() {
    let (mut server, mut a, mut b) = room(&[]);
    let baseline = server.rss_kib();
    for seed in 1..=4u64 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let mut raw = TcpStream::connect(server.addr).unwrap();
        let drain = Drain::start(&raw, 0);
        let mut left = 512 * 1024;
        while left > 0 {
            let n = (rng.next() % 8192 + 1).min(left as u64) as usize;
            if raw.write_all(&rng.bytes(n)).is_err() {
                break; // the server may close on us (e.g. a random /quit)
            }
            left -= n;
        }
        let _ = raw.shutdown(std::net::Shutdown::Write);
        drain.finish();
        room_works(&mut a, "alice", &mut b, "bob", &format!("seed{seed}"));
    }
    let rss = server.rss_kib();
    assert!(rss < baseline + 10 * 1024, "RSS {rss} KiB from {baseline}");
    assert!(alive(&mut server));
}

/// Many MB without an LF, before and after login: exactly one too-long
/// notice each time, memory bounded, the connection usable afterwards.
#[test]
fn endless_line_without_lf() {
    let (server, mut a, mut b) = room(&[]);
    let baseline = server.rss_kib();
    let chunk = vec![b'z'; 64 * 1024];
    let mut peak = 0;

    let mut raw = server.connect();
    raw.expect_prefix("[SERVER]: ");
    for i in 0..256 {
        raw.send_raw(&chunk); // 16 MB in all
        if i % 32 == 0 {
            peak = peak.max(server.rss_kib());
        }
    }
    raw.send_raw(b"\n");
    let before = raw.sync("one");
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(
        before[0].starts_with("[SERVER]: Line too long"),
        "{before:?}"
    );
    raw.send("carol");
    raw.read_until("[SERVER]: carol joined the chat!");
    a.read_until("[SERVER]: carol joined the chat!");

    // Logged in, in pieces that end in a CR, and with the LF far away.
    for i in 0..256 {
        raw.send_raw(&chunk);
        raw.send_raw(b"\r");
        if i % 32 == 0 {
            peak = peak.max(server.rss_kib());
        }
    }
    raw.send_raw(b"\r\nstill here\n");
    let before = raw.read_until("carol: still here");
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(
        before[0].starts_with("[SERVER]: Line too long"),
        "{before:?}"
    );
    assert!(a.read_until("carol: still here").is_empty());
    assert!(b.read_until("carol: still here").len() == 1); // the join
    peak = peak.max(server.rss_kib());
    eprintln!("endless line: RSS baseline {baseline} KiB, peak {peak} KiB");
    assert!(
        peak < baseline + 8 * 1024,
        "RSS grew with the line: {peak} KiB"
    );
    room_works(&mut a, "alice", &mut b, "bob", "after-endless");
}

/// A client that shuts its sending side is a disconnect, before and after
/// login; the server closes its side too.
#[test]
fn half_open_connections() {
    let (_server, mut a, mut b) = room(&[]);
    let c = _server.login("carol");
    a.expect("[SERVER]: carol joined the chat!");
    b.expect("[SERVER]: carol joined the chat!");
    c.shutdown_write();
    a.expect("[SERVER]: carol has disconnected.");
    b.expect("[SERVER]: carol has disconnected.");
    let mut c = c;
    assert!(c.expect_eof().is_empty());

    let mut d = _server.connect();
    d.expect_prefix("[SERVER]: ");
    d.send_raw(b"dav"); // half a name, then EOF
    d.shutdown_write();
    assert!(d.expect_eof().is_empty());
    room_works(&mut a, "alice", &mut b, "bob", "half-open");
    a.send("/who");
    a.expect("[SERVER]: 2 users online: alice, bob");
}

/// Logs in, retrying while the server reports full (it may still be
/// closing a storm's connections); gives up after `limit`.
fn login_eventually(server: &Server, name: &str, limit: Duration) -> Client {
    let t = Instant::now();
    loop {
        let mut c = server.connect();
        let first = c.line();
        if first == FULL {
            assert!(t.elapsed() < limit, "still full after {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        c.send(name);
        c.read_until(&format!("[SERVER]: {name} joined the chat!"));
        return c;
    }
}

/// Hundreds of connections that close at once, in every way: afterwards
/// every place is free again (--max-clients is small) and memory is flat.
#[test]
fn connect_and_close_storm() {
    let (mut server, mut a, mut b) = room(&["--max-clients", "40"]);
    let baseline = server.rss_kib();
    for i in 0..400 {
        let Ok(mut s) = TcpStream::connect(server.addr) else {
            continue;
        };
        match i % 5 {
            0 => drop(s),
            1 => {
                let _ = s.write_all(b"stor");
                drop(s);
            }
            2 => {
                let _ = s.write_all(b"/quit\n");
                drop(s);
            }
            3 => reset_stream(s),
            _ => {
                let _ = s.write_all(format!("storm{i}\nhello\n").as_bytes());
                reset_stream(s);
            }
        }
    }
    // All 38 free places can be taken again.
    let mut users: Vec<Client> = (0..38)
        .map(|i| login_eventually(&server, &format!("late{i}"), Duration::from_secs(10)))
        .collect();
    let mut extra = server.connect();
    assert_eq!(extra.expect_eof(), vec![FULL]);
    let rss = server.rss_kib();
    eprintln!("storm: RSS baseline {baseline} KiB, after {rss} KiB");
    assert!(rss < baseline + 10 * 1024);
    // Storm connections that got as far as a name came and went; their
    // lines (if read before the reset) were ordinary chat.
    for l in a.read_until("[SERVER]: late37 joined the chat!") {
        assert_clean(&l);
        assert!(
            l.starts_with("[SERVER]: ") || (l.starts_with("storm") && l.ends_with(": hello")),
            "{l:?}"
        );
    }
    room_works(&mut a, "alice", &mut b, "bob", "after-storm");
    users[0].send("still");
    users[37].read_until("late0: still");
    // Nobody from the storm is left in the room.
    let mut names: Vec<String> = (0..38).map(|i| format!("late{i}")).collect();
    names.extend(["alice".into(), "bob".into()]);
    names.sort();
    a.send("/who");
    a.read_until(&format!("[SERVER]: 40 users online: {}", names.join(", ")));
    assert!(alive(&mut server));
}

/// A reset in the middle of a line: the half line is never delivered, the
/// others are told the user has disconnected.
#[test]
fn reset_mid_line() {
    let (server, mut a, mut b) = room(&[]);
    let mut c = server.login("carol");
    a.expect("[SERVER]: carol joined the chat!");
    b.expect("[SERVER]: carol joined the chat!");
    c.send_raw(b"half a li");
    // Not a barrier (nothing can confirm half a line): only makes it likely
    // that the server holds the half line when the reset comes.
    std::thread::sleep(Duration::from_millis(50));
    reset_stream(c.stream.try_clone().unwrap());
    drop(c);
    a.expect("[SERVER]: carol has disconnected.");
    b.expect("[SERVER]: carol has disconnected.");

    let mut d = server.connect();
    d.expect_prefix("[SERVER]: ");
    d.send_raw(b"dav");
    d.send("/ping x");
    // "dav/ping x" was one line: a bad name.
    d.expect_prefix("[SERVER]: Sorry");
    d.send_raw(b"dave_half");
    std::thread::sleep(Duration::from_millis(50));
    reset_stream(d.stream.try_clone().unwrap());
    drop(d);
    room_works(&mut a, "alice", &mut b, "bob", "after-reset");
    a.send("/who");
    a.expect("[SERVER]: 2 users online: alice, bob");
}

/// A name (with a multi-byte character) and a line arriving one byte per
/// packet.
#[test]
fn name_byte_by_byte() {
    let (server, mut a, _b) = room(&[]);
    let mut c = server.connect();
    c.stream.set_nodelay(true).unwrap();
    c.expect_prefix("[SERVER]: ");
    for &byte in "Zoë_日本\r\nhéllo there\n".as_bytes() {
        c.send_raw(&[byte]);
        std::thread::sleep(Duration::from_millis(3)); // one byte per read, mostly
    }
    c.read_until("[SERVER]: Zoë_日本 joined the chat!");
    a.expect("[SERVER]: Zoë_日本 joined the chat!");
    a.expect("Zoë_日本: héllo there");
    c.expect("Zoë_日本: héllo there");
}

/// NUL bytes are control characters: removed from names and from lines
/// others see.
#[test]
fn nul_bytes() {
    let (server, mut a, _b) = room(&[]);
    let mut c = server.connect();
    c.expect_prefix("[SERVER]: ");
    c.send_raw(b"\0\0\0\n"); // nothing left: ignored
    c.send_raw(b"nu\0ll\n");
    c.read_until("[SERVER]: null joined the chat!");
    a.expect("[SERVER]: null joined the chat!");
    c.send_raw(b"a\0b\0\0c\n\0\n");
    a.expect("null: abc");
    c.send_raw(b"/msg alice \0x\0\n");
    a.expect("[PM from null]: x");
    a.sync("nul");
}

/// Invalid UTF-8 in names is refused with the reason; in lines it becomes
/// U+FFFD.
#[test]
fn invalid_utf8_in_names_and_lines() {
    let (server, mut a, _b) = room(&[]);
    let mut c = server.connect();
    c.expect_prefix("[SERVER]: ");
    for bad in [
        &b"\xff\xfe\n"[..],
        b"ab\xc3\n",
        b"\xed\xa0\x80xy\n",
        b"\xc0\xafab\n",
    ] {
        c.send_raw(bad);
        let l = c.expect_prefix("[SERVER]: Sorry, a name may contain only");
        assert_clean(&l);
    }
    c.send_raw(b"ab\xc3\xa9\n"); // valid: "abé"
    c.read_until("[SERVER]: abé joined the chat!");
    a.expect("[SERVER]: abé joined the chat!");
    c.send_raw(b"x\xffy\xc3\n");
    a.expect("abé: x\u{fffd}y\u{fffd}");
    c.send_raw(b"/nick \xff\xff\n");
    c.read_until_match(|l| l.starts_with("[SERVER]: Sorry, a name may contain only"));
    a.sync("utf8");
}
