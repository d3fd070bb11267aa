//! PROTOCOL.md section 2 (server lines) and section 3.1 to 3.4 (greeting,
//! name, welcome, join, chat), through real sockets.
mod common;
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Client, Server};
use support::{is_server_line, nothing_before_marker, nothing_more, room};

/// Sends `name` on a connection still logging in and returns the refusal
/// notice; checks the server asks again (the connection stays open and
/// answers a `/ping`).
fn refused(c: &mut Client, name: &str) -> String {
    c.send(name);
    let l = c.expect_prefix("[SERVER]: ");
    nothing_more(c);
    l
}

/// Sends `name` on a connection still logging in and checks it is taken:
/// welcome, the room's history, then the join notice.
fn accepted(c: &mut Client, name: &str) {
    c.send(name);
    c.expect_welcome(name);
}

/// A connection that has read its greeting.
fn greeted(s: &Server) -> Client {
    let mut c = s.connect();
    c.expect_prefix("[SERVER]: ");
    c
}

/// §3.1 Greeting: right after accepting, the server sends a notice asking for a name.
#[test]
fn greeting_is_a_notice_sent_first() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let g = c.expect_prefix("[SERVER]: ");
    assert!(g.to_lowercase().contains("name"), "{g:?}");
}

/// §3.2 A name is 2 to 32 characters: 1 and 33 are refused, 2 and 32 taken,
/// and the server asks again on the same connection after each refusal.
#[test]
fn name_length_2_to_32() {
    let s = Server::start(&[]);
    let mut c = greeted(&s);
    refused(&mut c, "a");
    refused(&mut c, &"b".repeat(33));
    accepted(&mut c, &"c".repeat(32));
    let mut d = greeted(&s);
    accepted(&mut d, "dd");
}

/// §3.2 The length is counted in characters, not bytes (multibyte letters).
#[test]
fn name_length_counts_characters() {
    let s = Server::start(&[]);
    let mut c = greeted(&s);
    refused(&mut c, "日"); // 1 character, 3 bytes
    refused(&mut c, &"é".repeat(33)); // 33 characters, 66 bytes
    accepted(&mut c, &"é".repeat(32)); // 32 characters, 64 bytes
    let mut d = greeted(&s);
    accepted(&mut d, "日本");
}

/// §3.2 Each character is a Unicode letter or digit or one of `_ - .`.
#[test]
fn name_letters_digits_and_allowed_punctuation() {
    let s = Server::start(&[]);
    for name in [
        "a_b-c.d",
        "José",
        "Ünïcødé",
        "名前",
        "Ωμέγα",
        "42",
        "x9",
        "._",
        "-.-",
    ] {
        let mut c = greeted(&s);
        accepted(&mut c, name);
    }
}

/// §2/§3.2 Names never contain `[`, `]`, `:`, `*`, spaces, `/` or other
/// punctuation; each refusal asks again on the same connection.
#[test]
fn name_forbidden_characters_are_refused() {
    let (s, mut c) = room(&[], &["alice"]);
    let mut n = greeted(&s);
    for bad in [
        "a[b",
        "a]b",
        "a:b",
        "a*b",
        "a b",
        "a/b",
        "[SERVER]:",
        "bo!",
        "a@b",
        "a,b",
        "a+b",
    ] {
        refused(&mut n, bad);
    }
    accepted(&mut n, "fine");
    c[0].expect("[SERVER]: fine joined the chat!");
}

/// §3.2 A first line starting with `/` is not taken as a name.
#[test]
fn name_starting_with_slash_is_not_a_name() {
    let s = Server::start(&[]);
    let mut n = greeted(&s);
    refused(&mut n, "/bob");
    refused(&mut n, "/nick bob");
    accepted(&mut n, "bob");
}

/// §3.2 `server` and `admin` are reserved in any case.
#[test]
fn reserved_names_in_any_case() {
    let s = Server::start(&[]);
    let mut n = greeted(&s);
    for bad in [
        "server", "SERVER", "Server", "sErVeR", "admin", "ADMIN", "aDmIn",
    ] {
        refused(&mut n, bad);
    }
    accepted(&mut n, "server2");
    let mut m = greeted(&s);
    accepted(&mut m, "admins");
}

/// §3.2 Names are unique without regard to case (also for non-ASCII letters,
/// `straße` and `STRASSE` included).
#[test]
fn taken_names_without_regard_to_case() {
    let (s, mut c) = room(&[], &["alice", "émile", "straße"]);
    let mut n = greeted(&s);
    for bad in [
        "alice", "ALICE", "Alice", "ÉMILE", "Émile", "STRASSE", "strasse",
    ] {
        refused(&mut n, bad);
    }
    accepted(&mut n, "alice2");
    c[0].expect("[SERVER]: alice2 joined the chat!");
    c[1].expect("[SERVER]: alice2 joined the chat!");
    c[2].expect("[SERVER]: alice2 joined the chat!");
}

/// §3.2 "A bad or taken name gets a notice that says why": each reason has
/// its own notice, only the asker sees it.
#[test]
fn refusal_notice_says_why() {
    let (s, mut c) = room(&[], &["alice", "bob"]);
    let mut n = greeted(&s);
    let notices = [
        refused(&mut n, "a"),
        refused(&mut n, "a:b"),
        refused(&mut n, "admin"),
        refused(&mut n, "ALICE"),
    ];
    for (i, a) in notices.iter().enumerate() {
        for b in &notices[i + 1..] {
            assert_ne!(a, b, "two reasons, one notice");
        }
    }
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
}

/// §3.2 `/quit` or its aliases before login close the connection quietly.
#[test]
fn quit_before_login_closes_quietly() {
    let (s, mut c) = room(&[], &["alice", "bob"]);
    for quit in ["/quit", "/QUIT now", "!quit", "{exit}"] {
        let mut n = greeted(&s);
        n.send("x"); // a refused name first: still logging in
        n.expect_prefix("[SERVER]: ");
        n.send(quit);
        for l in n.expect_eof() {
            assert!(l.starts_with("[SERVER]: "), "{quit}: {l:?}");
        }
    }
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
}

/// §3.2 EOF before login closes the connection quietly.
#[test]
fn eof_before_login_closes_quietly() {
    let (s, mut c) = room(&[], &["alice", "bob"]);
    let mut n = greeted(&s);
    n.shutdown_write();
    assert_eq!(n.expect_eof(), Vec::<String>::new());
    // Half a name, then EOF: no login either.
    let mut m = greeted(&s);
    m.send_raw(b"carol");
    m.shutdown_write();
    assert_eq!(m.expect_eof(), Vec::<String>::new());
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
    // The half-sent name was not taken.
    let mut z = greeted(&s);
    accepted(&mut z, "carol");
}

/// §3.2 A connection that has not chosen a name within `--login-timeout` is
/// closed with a notice; sending lines (refused names) does not extend it,
/// nobody else is told, and users who did log in are not affected.
#[test]
fn login_timeout_closes_with_notice() {
    let (s, mut c) = room(&["--login-timeout", "1"], &["alice"]);
    let mut n = greeted(&s);
    let start = Instant::now();
    let mut all = Vec::new();
    loop {
        // Keep sending bad names: activity is not a name.
        let _ = n.stream.write_all(b"x\n");
        match n.try_line() {
            Some(l) => all.push(l),
            None => break,
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "still open: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "closed early"
    );
    assert!(all.iter().all(|l| l.starts_with("[SERVER]: ")), "{all:?}");
    let last = all.last().unwrap();
    assert_ne!(last, &all[0], "the last notice says why, not 'bad name'");
    // alice logged in long ago (more than the login timeout) and is still here.
    assert!(start.elapsed() > Duration::from_secs(1));
    nothing_more(&mut c[0]);
}

/// §3.2 A silent connection that never sends a byte is closed by the login
/// timeout with a notice.
#[test]
fn login_timeout_silent_connection() {
    let s = Server::start(&["--login-timeout", "0.5"]);
    let mut n = greeted(&s);
    let rest = n.expect_eof();
    assert_eq!(rest.len(), 1, "one notice, then EOF: {rest:?}");
    assert!(rest[0].starts_with("[SERVER]: "), "{rest:?}");
}

/// §3.3 Welcome: a notice that welcomes the user by name and says how to get
/// help and how to leave; then the join notice.
#[test]
fn welcome_names_the_user_help_and_quit() {
    let s = Server::start(&[]);
    let mut n = greeted(&s);
    n.send("Zoë");
    let w = n.expect_prefix("[SERVER]: ");
    assert!(w.contains("Zoë"), "{w:?}");
    assert!(w.contains("/help"), "{w:?}");
    assert!(w.contains("/quit"), "{w:?}");
    n.expect("[SERVER]: Zoë joined the chat!");
    nothing_more(&mut n);
}

/// §3.3 Every user, the newcomer included, gets `[SERVER]: NAME joined the chat!`.
#[test]
fn join_notice_goes_to_everyone() {
    let (s, mut c) = room(&[], &["alice", "bob", "carol"]);
    let mut d = greeted(&s);
    d.send("dave");
    d.expect_welcome("dave");
    for u in c.iter_mut() {
        u.expect("[SERVER]: dave joined the chat!");
    }
    nothing_more(&mut d);
}

/// §3.4 A plain line goes to every user, the sender included, as `NAME: TEXT`.
#[test]
fn chat_goes_to_everyone_including_the_sender() {
    let (_s, mut c) = room(&[], &["alice", "bob", "carol"]);
    c[1].send("hello, world: *yes* [ok]");
    for u in c.iter_mut() {
        u.expect("bob: hello, world: *yes* [ok]");
    }
}

/// §2 "no user can forge a notice": a chat line that looks like a notice is
/// still prefixed with the sender's name.
#[test]
fn chat_cannot_forge_a_notice() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("[SERVER]: bob left the chat.");
    c[1].expect("alice: [SERVER]: bob left the chat.");
    c[0].send("/me [PM from bob]: hi");
    c[1].expect("* alice [PM from bob]: hi");
}

/// §2 Every line the server sends is a notice, a chat line, an action, a
/// private message or a pong.
#[test]
fn every_server_line_has_one_of_the_five_forms() {
    let (s, mut c) = room(&[], &["alice", "bob"]);
    let mut carol = greeted(&s);
    carol.send("x:y");
    carol.send("carol");
    c[0].send("hi");
    c[0].send("/me waves");
    c[0].send("/msg bob psst");
    c[0].send("/who");
    c[0].send("/help");
    c[0].send("/nick alicia");
    c[0].send("/frob");
    c[0].send("/msg nobody x");
    c[0].send("/ping");
    c[0].send("/ping tok");
    c[0].send(&"l".repeat(5000));
    c[0].send("/quit bye");
    carol.shutdown_write();
    let mut all = c[0].expect_eof();
    all.extend(c[1].read_until("[SERVER]: carol has disconnected."));
    all.extend(carol.expect_eof());
    assert!(all.len() > 15, "{all:?}");
    for l in &all {
        assert!(is_server_line(l), "not a server line: {l:?}");
    }
}
