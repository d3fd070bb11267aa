//! PROTOCOL.md section 3.5: the three ways of leaving (quit, disconnect,
//! idle timeout), through real sockets.
mod common;
mod support;

use std::time::{Duration, Instant};

use common::Client;
use support::{next_id, nothing_more, reset, room};

/// Quits with `line` and checks the quitter's side: one goodbye notice, then EOF.
fn quit_and_check_goodbye(c: &mut Client, line: &str) {
    c.send(line);
    let rest = c.expect_eof();
    assert_eq!(rest.len(), 1, "one goodbye notice, then EOF: {rest:?}");
    assert!(rest[0].starts_with("[SERVER]: "), "{rest:?}");
}

/// §3.5 `/quit`: the quitter gets a goodbye notice then EOF; everyone else
/// gets `[SERVER]: NAME left the chat.`; the name is free afterwards.
#[test]
fn quit_says_goodbye_closes_and_tells_the_others() {
    let (s, mut c) = room(&[], &["alice", "bob", "carol"]);
    quit_and_check_goodbye(&mut c[0], "/quit");
    c[1].expect("[SERVER]: alice left the chat.");
    c[2].expect("[SERVER]: alice left the chat.");
    nothing_more(&mut c[1]);
    let _again = s.login("alice");
    c[1].expect("[SERVER]: alice joined the chat!");
}

/// §3.5 "an optional reason may follow `/quit`": the others see it.
#[test]
fn quit_with_a_reason() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    quit_and_check_goodbye(&mut c[0], "/quit  gone fishing: back at 5 ");
    let l = c[1].expect_prefix("[SERVER]: alice left the chat.");
    assert!(l.contains("gone fishing: back at 5"), "{l:?}");
}

/// §3.5 `!quit` is an alias of `/quit`.
#[test]
fn bang_quit_alias() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    quit_and_check_goodbye(&mut c[0], "!quit");
    c[1].expect("[SERVER]: alice left the chat.");
}

/// §3.5 `{exit}` is an alias of `/quit`.
#[test]
fn brace_exit_alias() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    quit_and_check_goodbye(&mut c[0], "{exit}");
    c[1].expect("[SERVER]: alice left the chat.");
}

/// §3.5 "flushes what was pending for it": output the quitter had not read
/// yet arrives in full before the goodbye and EOF, and lines sent after the
/// quit are not delivered.
#[test]
fn quit_flushes_pending_output_first() {
    let (_s, mut c) = room(
        &["--rate", "0", "--max-pending", "8388608"],
        &["alice", "bob"],
    );
    let n = 300;
    let body = "p".repeat(1000);
    for i in 0..n {
        c[1].send(&format!("{i} {body}"));
    }
    c[1].sync("sent");
    c[0].send_raw(b"/quit\nnot delivered\n");
    let got = c[0].expect_eof();
    assert_eq!(got.len(), n + 1, "all {n} lines, then the goodbye");
    for (i, l) in got[..n].iter().enumerate() {
        assert_eq!(l, &format!("bob: {i} {body}"));
    }
    assert!(got[n].starts_with("[SERVER]: "), "{:?}", got[n]);
    c[1].expect("[SERVER]: alice left the chat.");
    nothing_more(&mut c[1]);
}

/// §3.5 EOF: everyone else gets `[SERVER]: NAME has disconnected.`
#[test]
fn eof_is_has_disconnected() {
    let (_s, mut c) = room(&[], &["alice", "bob", "carol"]);
    c[0].shutdown_write();
    c[1].expect("[SERVER]: alice has disconnected.");
    c[2].expect("[SERVER]: alice has disconnected.");
    assert_eq!(c[0].expect_eof(), Vec::<String>::new());
}

/// §3.5 EOF right after input (as `printf 'name\nhi\n' | nc` sends it): the
/// lines before the EOF are handled, the others are told the user has
/// disconnected, and what the server had for the leaver still reaches it
/// before the close.
#[test]
fn eof_after_input_still_gets_the_replies() {
    let (s, mut c) = room(&[], &["alice"]);
    let mut d = s.connect();
    d.send_raw(b"dave\nhello from a pipe\n/ping last\n");
    d.shutdown_write();
    c[0].expect("[SERVER]: dave joined the chat!");
    c[0].expect("dave: hello from a pipe");
    c[0].expect("[SERVER]: dave has disconnected.");
    let got = d.expect_eof();
    assert!(got[0].starts_with("[SERVER]: "), "greeting: {got:?}");
    assert!(
        got[1].starts_with("[SERVER]: ") && got[1].contains("dave"),
        "welcome: {got:?}"
    );
    assert_eq!(
        got[2..],
        [
            "[SERVER]: History (1 line):",
            "[SERVER]: alice joined the chat!",
            "[SERVER]: End of history.",
            "[SERVER]: dave joined the chat!",
            "dave: hello from a pipe",
            "/pong last"
        ]
    );
}

/// §3.5 a reset: everyone else gets `[SERVER]: NAME has disconnected.`
#[test]
fn reset_is_has_disconnected() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    let alice = c.remove(0);
    reset(alice);
    c[0].expect("[SERVER]: alice has disconnected.");
    nothing_more(&mut c[0]);
}

/// §3.5 a reset while the server still has output for the peer: the others
/// are told once, and the server carries on.
#[test]
fn reset_with_unread_output_is_has_disconnected() {
    let (s, mut c) = room(&["--rate", "0"], &["alice", "bob"]);
    for i in 0..50 {
        c[1].send(&format!("line {i} {}", "r".repeat(2000)));
    }
    c[1].sync("s");
    let alice = c.remove(0);
    reset(alice);
    c[0].expect("[SERVER]: alice has disconnected.");
    nothing_more(&mut c[0]);
    let _again = s.login("alice");
    c[0].expect("[SERVER]: alice joined the chat!");
}

/// Collects what `watcher` reads while it keeps itself alive with a `/ping`
/// every 200 ms, until a line satisfies `done` (10 s at most).
fn watch_alive(watcher: &mut Client, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        for l in watcher.sync(&format!("alive{}", next_id())) {
            if done(&l) {
                return l;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("nothing matched within 10 s");
}

/// §3.5 idle timeout: no bytes for `--idle-timeout`: the user gets a notice
/// saying why and is closed; everyone else is told NAME has disconnected
/// (timed out).
#[test]
fn idle_timeout_closes_with_notice_and_tells_the_others() {
    let (_s, mut c) = room(&["--idle-timeout", "1"], &["alice", "bob"]);
    let mut bob = c.pop().unwrap();
    let mut alice = c.pop().unwrap();
    let watcher = std::thread::spawn(move || {
        let l = watch_alive(&mut bob, |l| l.contains("alice has disconnected"));
        (l, bob)
    });
    // alice's last byte: half a line (no answer), sent after `start`.
    let start = Instant::now();
    alice.send_raw(b"half a li");
    let rest = alice.expect_eof();
    let idle_for = start.elapsed();
    assert!(idle_for >= Duration::from_millis(950), "{idle_for:?}");
    assert_eq!(rest.len(), 1, "one notice, then EOF: {rest:?}");
    let why = rest[0].to_lowercase();
    assert!(rest[0].starts_with("[SERVER]: "), "{rest:?}");
    assert!(
        why.contains("timed out") || why.contains("idle") || why.contains("inactiv"),
        "the notice says why: {rest:?}"
    );
    let (l, mut bob) = watcher.join().unwrap();
    assert!(l.starts_with("[SERVER]: alice has disconnected"), "{l:?}");
    assert!(l.contains("timed out"), "{l:?}");
    nothing_more(&mut bob);
}

/// §3.5 "the last-seen time is updated by every byte received": a line
/// dribbled out one byte at a time, slower in total than the idle timeout,
/// keeps the user connected.
#[test]
fn idle_timer_is_reset_by_any_byte() {
    let (_s, mut c) = room(&["--idle-timeout", "1.5"], &["alice"]);
    let start = Instant::now();
    let text = b"slowly_but_surely";
    let mut sent = 0;
    // 3.5 s of partial line, one byte every 200 ms: no complete line at all.
    while start.elapsed() < Duration::from_millis(3500) {
        c[0].send_raw(&text[sent % text.len()..sent % text.len() + 1]);
        sent += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    c[0].send_raw(b"\n");
    let l = c[0].expect_prefix("alice: ");
    assert_eq!(l.len(), "alice: ".len() + sent, "{l:?}");
    nothing_more(&mut c[0]);
}
