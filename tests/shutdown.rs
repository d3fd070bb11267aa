//! PROTOCOL.md section 3.6: SIGINT/SIGTERM shut the server down gracefully.
mod common;
mod support;

use std::time::{Duration, Instant};

use common::{Client, Server};
use support::room;

/// Reads `c` to EOF and checks the last line is a `[SERVER]: ` notice;
/// returns the lines before it and the notice.
fn notice_then_eof(c: &mut Client) -> (Vec<String>, String) {
    let mut lines = c.expect_eof();
    let last = lines.pop().expect("a shutdown notice before EOF");
    assert!(last.starts_with("[SERVER]: "), "{last:?}");
    (lines, last)
}

/// The server exits with status 0, within a few seconds of the signal.
fn exits_zero_soon(s: &mut Server, signalled: Instant) {
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Sends `sig`, checks every connection gets the shutdown notice then EOF and
/// the server exits with status 0.
fn shut_down_with(sig: i32) {
    let (mut s, mut c) = room(&["--rate", "0"], &["alice", "bob"]);
    let mut anon = s.connect();
    anon.expect_prefix("[SERVER]: ");
    s.signal(sig);
    let sent = Instant::now();
    let mut notices = Vec::new();
    for u in c.iter_mut() {
        let (before, notice) = notice_then_eof(u);
        assert!(before.is_empty(), "{before:?}");
        notices.push(notice);
    }
    let (before, notice) = notice_then_eof(&mut anon);
    assert!(before.is_empty(), "{before:?}");
    notices.push(notice);
    assert!(notices.iter().all(|n| n == &notices[0]), "{notices:?}");
    drop(c);
    drop(anon);
    exits_zero_soon(&mut s, sent);
}

/// §3.6 SIGTERM: every connection (logged in, not logged in, and one with
/// unread output pending) gets the shutdown notice after its pending output,
/// then EOF; the server exits with status 0 within a few seconds.
#[test]
fn sigterm_notifies_drains_and_exits_zero() {
    let (mut s, mut c) = room(
        &["--rate", "0", "--max-pending", "67108864"],
        &["alice", "bob", "carol"],
    );
    let mut anon = s.connect();
    anon.expect_prefix("[SERVER]: ");
    // bob talks; carol reads nothing of it, so it piles up for her: 8 MB,
    // more than the kernel's socket buffers hold (4 MB send + receive
    // window), so some of it is still in the server's buffer at the signal.
    let n = 2000;
    let body = "d".repeat(4000);
    {
        let [a, b, _] = &mut c[..] else {
            unreachable!()
        };
        for i in 0..n {
            b.send(&format!("{i} {body}"));
        }
        b.sync("b");
        assert_eq!(a.sync("a").len(), n);
    }
    s.signal(libc::SIGTERM);
    let sent = Instant::now();
    let (alice, bob) = {
        let [a, b, _] = &mut c[..] else {
            unreachable!()
        };
        (notice_then_eof(a), notice_then_eof(b))
    };
    assert!(alice.0.is_empty() && bob.0.is_empty(), "{alice:?} {bob:?}");
    let (carol_lines, carol_notice) = notice_then_eof(&mut c[2]);
    assert_eq!(carol_lines.len(), n, "all pending output before the notice");
    for (i, l) in carol_lines.iter().enumerate() {
        assert_eq!(l, &format!("bob: {i} {body}"));
    }
    let (anon_lines, anon_notice) = notice_then_eof(&mut anon);
    assert!(anon_lines.is_empty(), "{anon_lines:?}");
    for notice in [&bob.1, &carol_notice, &anon_notice] {
        assert_eq!(notice, &alice.1);
    }
    drop(c);
    drop(anon);
    exits_zero_soon(&mut s, sent);
}

/// §3.6 SIGINT does the same as SIGTERM.
#[test]
fn sigint_notifies_and_exits_zero() {
    shut_down_with(libc::SIGINT);
}

/// §3.6 SIGTERM with only idle users: notice, EOF, status 0.
#[test]
fn sigterm_with_idle_users_exits_zero() {
    shut_down_with(libc::SIGTERM);
}

/// §3.6 "closes everything and exits": clients that never read the notice
/// nor close their side do not keep the server alive past the drain time.
#[test]
fn shutdown_does_not_wait_for_silent_clients() {
    let (mut s, _c) = room(&[], &["alice", "bob"]);
    let _anon = s.connect();
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
}
