//! PROTOCOL.md section 7: quiet joins and leaves in large rooms
//! (`--announce-limit`).
mod common;
mod support;

use common::{Client, Server};
use support::nothing_more;

/// Logs `name` in and returns the lines it got up to its own join notice.
fn join(server: &Server, name: &str) -> (Client, Vec<String>) {
    let mut c = server.connect();
    c.expect_prefix("[SERVER]: ");
    c.send(name);
    let before = c.read_until(&format!("[SERVER]: {name} joined the chat!"));
    (c, before)
}

/// `--announce-limit 3`: the 4th and later users' joins and leaves are not
/// broadcast; the newcomer still sees its own join, and its welcome says
/// how many users are online; back at 3 users, notices resume.
#[test]
fn above_the_limit_joins_and_leaves_are_quiet() {
    let server = Server::start(&["--announce-limit", "3"]);
    let (mut a, _) = join(&server, "u1");
    let (mut b, _) = join(&server, "u2");
    a.expect("[SERVER]: u2 joined the chat!");
    let (mut c, welcome) = join(&server, "u3");
    assert!(welcome[0].contains("3 users online"), "{welcome:?}");
    a.expect("[SERVER]: u3 joined the chat!");
    b.expect("[SERVER]: u3 joined the chat!");

    // The 4th and 5th: nobody else hears of them.
    let (mut d, welcome) = join(&server, "u4");
    assert!(welcome[0].contains("4 users online"), "{welcome:?}");
    let (e, _) = join(&server, "u5");
    for x in [&mut a, &mut b, &mut c, &mut d] {
        nothing_more(x);
    }
    // A leave in a room of 5, and one in a room of 4: quiet.
    drop(e);
    d.send("/quit");
    d.expect_prefix("[SERVER]: Goodbye");
    for x in [&mut a, &mut b, &mut c] {
        nothing_more(x);
    }
    // A chat line still reaches everyone.
    c.send("still here");
    for x in [&mut a, &mut b, &mut c] {
        x.expect("u3: still here");
    }
    // At 3 users, a leave is told again; so is the next join.
    c.send("/quit");
    c.expect_prefix("[SERVER]: Goodbye");
    a.expect("[SERVER]: u3 left the chat.");
    b.expect("[SERVER]: u3 left the chat.");
    let (_f, _) = join(&server, "u6");
    a.expect("[SERVER]: u6 joined the chat!");
    // /nick notices always go to everyone.
    b.send("/nick u2b");
    a.expect("[SERVER]: u2 is now known as u2b.");
}

/// `--announce-limit 0`: always announce.
#[test]
fn zero_means_always() {
    let server = Server::start(&["--announce-limit", "0"]);
    let (mut first, _) = join(&server, "first");
    let mut others = Vec::new();
    for i in 0..12 {
        let name = format!("n{i}");
        let (c, _) = join(&server, &name);
        first.expect(&format!("[SERVER]: {name} joined the chat!"));
        others.push(c);
    }
    drop(others.pop());
    first.expect("[SERVER]: n11 has disconnected.");
}

/// Above the limit, `/nick` notices still go to everyone, and a leave by
/// the idle timeout is as quiet as any other leave.
#[test]
fn above_the_limit_renames_are_told_and_timeouts_are_quiet() {
    let server = Server::start(&["--announce-limit", "2", "--idle-timeout", "1.5"]);
    let (mut a, _) = join(&server, "u1");
    let (mut b, _) = join(&server, "u2");
    a.expect("[SERVER]: u2 joined the chat!");
    let (mut c, _) = join(&server, "u3"); // quiet: a room of 3
    c.send("/nick u3b");
    for x in [&mut a, &mut b, &mut c] {
        x.expect("[SERVER]: u3 is now known as u3b.");
    }
    // u3b goes silent and times out (in 1.5 s); the others keep pinging
    // (and so stay) for 3 s and hear nothing of it.
    for _ in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        for x in [&mut a, &mut b] {
            nothing_more(x);
        }
    }
    let rest = c.expect_eof();
    assert_eq!(rest.len(), 1, "its own notice, then EOF: {rest:?}");
    a.send("/who");
    a.expect_prefix("[SERVER]: 2 users online");
}
