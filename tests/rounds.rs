//! Big rooms flush in rounds (PROTOCOL.md section 5: one order for
//! everyone, nothing lost): after a flush of 2,048 connections or more the
//! server holds room output for members until the next round, so a busy
//! room of thousands pays one write per member for many lines. Held lines
//! must still reach everyone, in the one order, without anyone sending more
//! (the loop wakes for the round by itself), and output meant for one user
//! (a `/pong`) must never overtake room lines queued for that user before it.
mod common;

use std::time::Duration;

use common::{Client, Server};

/// Users in the room: above the server's round threshold (2,048).
const USERS: usize = 2_100;

/// Raises this process's soft descriptor limit to its hard limit (the
/// server started after it inherits it): the test holds `USERS` sockets and
/// the server as many.
fn raise_nofile(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(
        lim.rlim_cur >= need,
        "this test needs {need} open files; the hard limit is {} (raise it: ulimit -Hn {need})",
        lim.rlim_cur
    );
}

/// Reads `c` until it has `want` chat lines (`NAME: TEXT`) and, if
/// `pongs`, a pong, returning them in arrival order; fails on a drop.
fn collect(c: &mut Client, want: usize, pongs: usize) -> Vec<String> {
    let mut got = Vec::new();
    let (mut chat, mut pong) = (0, 0);
    while chat < want || pong < pongs {
        let line = c.line();
        assert!(!line.contains("too slow"), "{line}");
        if line.starts_with("/pong ") {
            pong += 1;
            got.push(line);
        } else if !line.starts_with("[SERVER]: ") {
            chat += 1;
            got.push(line);
        }
    }
    got
}

#[test]
fn a_room_of_thousands_gets_every_line_in_one_order_and_replies_stay_in_place() {
    raise_nofile(2 * USERS as u64 + 200);
    // --history 0: a newcomer's login is greeting, welcome, its join notice.
    let server = Server::start(&[
        "--history",
        "0",
        "--idle-timeout",
        "300",
        "--log-level",
        "debug",
    ]);
    let mut users: Vec<Client> = (0..USERS).map(|i| server.login(&format!("u{i}"))).collect();

    // Lines in separate writes a little apart (less than the server waits
    // for more input before it writes what it holds), so they arrive over several
    // turns: the first is flushed to all at once (a round), later ones are
    // held for the next round. The watcher u7 says a line and, in a later
    // turn, pings: its pong is meant for it alone and is written at once,
    // after its own line, which the room queued for it first.
    let pause = Duration::from_micros(300);
    for i in 0..10 {
        users[0].send(&format!("a{i}"));
        std::thread::sleep(pause);
    }
    users[7].send("w1");
    std::thread::sleep(pause);
    users[7].send("/ping p1");
    std::thread::sleep(pause);
    for i in 10..20 {
        users[1].send(&format!("b{i}"));
        std::thread::sleep(pause);
    }
    // The last line; nobody sends anything after it, so the lines of the
    // last round arrive only if the server wakes for that round by itself.
    users[2].send("end");

    let mut order: Option<Vec<String>> = None;
    for (i, c) in users.iter_mut().enumerate() {
        let mut got = collect(c, 22, usize::from(i == 7));
        if i == 7 {
            let own = got.iter().position(|l| l == "u7: w1").expect("u7 got w1");
            let pong = got
                .iter()
                .position(|l| l == "/pong p1")
                .expect("u7 got its pong");
            assert!(own < pong, "the pong overtook u7's own line: {got:?}");
            got.remove(pong);
        }
        assert!(got.contains(&"u2: end".to_string()), "u{i} got {got:?}");
        for (sender, range) in [("u0: a", 0..10), ("u1: b", 10..20)] {
            let said: Vec<&String> = got.iter().filter(|l| l.starts_with(sender)).collect();
            let want: Vec<String> = range.map(|n| format!("{sender}{n}")).collect();
            assert_eq!(
                said,
                want.iter().collect::<Vec<_>>(),
                "u{i}: in the order sent"
            );
        }
        match &order {
            None => order = Some(got),
            Some(first) => assert_eq!(&got, first, "u{i} saw another order than u0"),
        }
    }
    // Nobody was dropped: a last line still reaches the first and last user.
    users[3].send("still here");
    users[0].expect("u3: still here");
    users[USERS - 1].expect("u3: still here");
    // And rounds did hold lines: some round wrote connections held since
    // the one before it.
    let logs = server.logs();
    let held = logs
        .lines()
        .filter_map(|l| l.split_once("connections flushed (")?.1.split_once(' '))
        .filter_map(|(n, _)| n.parse::<usize>().ok())
        .max();
    assert!(
        held.is_some_and(|n| n > 0),
        "no round released held output; rounds logged: {:?}",
        logs.lines()
            .filter(|l| l.contains("round:"))
            .collect::<Vec<_>>()
    );
}
