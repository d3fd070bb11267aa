//! PROTOCOL.md section 5: `--max-clients` and running out of descriptors.
mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use support::{alive, cpu_seconds, room_works, try_connect, wait_log};

const FULL: &str = "[SERVER]: The server is full; please try again later.";

#[test]
fn max_clients_refuses_with_notice_and_frees_up() {
    let server = Server::start(&["--max-clients", "3"]);
    let mut alice = server.login("alice");
    let mut bob = server.login("bob");
    alice.expect("[SERVER]: bob joined the chat!");
    // A connection that has not logged in counts too.
    let mut pending = server.connect();
    pending.expect_prefix("[SERVER]: ");

    for _ in 0..3 {
        let mut extra = server.connect();
        assert_eq!(extra.expect_eof(), vec![FULL]);
    }

    // Bob leaves; once his connection is gone there is room for one more.
    bob.send("/quit");
    bob.expect_prefix("[SERVER]: Goodbye");
    assert!(bob.expect_eof().is_empty());
    drop(bob);
    alice.expect("[SERVER]: bob left the chat.");
    let mut carol = server.login("carol");
    alice.expect("[SERVER]: carol joined the chat!");
    let mut extra = server.connect();
    assert_eq!(extra.expect_eof(), vec![FULL]);

    // The pending connection leaves quietly; room again.
    pending.send("/quit");
    assert!(pending.expect_eof().is_empty());
    drop(pending);
    let mut dave = server.login("dave");
    carol.read_until("[SERVER]: dave joined the chat!");
    room_works(&mut carol, "carol", &mut dave, "dave", "after-full");
    wait_log(&server, "server full", Duration::from_secs(5));
}

/// A client that leaves and a newcomer that arrives at the same moment: the
/// newcomer must not be refused for a connection the server already knows is
/// gone (its EOF was read in the same poll iteration).
#[test]
fn max_clients_leaver_and_newcomer_race() {
    let server = Server::start(&["--max-clients", "2"]);
    let mut alice = server.login("alice");
    let mut current = server.login("user0");
    alice.expect("[SERVER]: user0 joined the chat!");
    for i in 1..40 {
        // The only other user closes and a newcomer connects right after.
        drop(current);
        let mut next = server.connect();
        let first = next.line();
        assert_ne!(
            first,
            FULL,
            "round {i}: refused although user{} had left",
            i - 1
        );
        let name = format!("user{i}");
        next.send(&name);
        next.read_until(&format!("[SERVER]: {name} joined the chat!"));
        alice.read_until(&format!("[SERVER]: {name} joined the chat!"));
        current = next;
    }
}

#[test]
fn descriptor_exhaustion_pauses_accepts_without_spinning() {
    // RLIMIT_NOFILE 64 for the server only, set in the child before exec
    // (as `prlimit --nofile=64:64` would, without needing that tool).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut server = Server::start_with(cmd, &[]);
    let mut alice = server.login("alice");
    let mut bob = server.login("bob");
    alice.expect("[SERVER]: bob joined the chat!");

    // Far more connections than descriptors: the kernel completes the
    // handshakes and queues the rest in the backlog; none may block us.
    let mut held: Vec<TcpStream> = Vec::new();
    let mut failed = 0;
    for _ in 0..150 {
        match try_connect(server.addr, Duration::from_secs(2)) {
            Some(s) => held.push(s),
            None => failed += 1,
        }
    }
    wait_log(&server, "accept failed", Duration::from_secs(10));

    // Exhausted: the listener stays readable, accept keeps failing. The
    // server must pause, not spin. Measured over about a second.
    let cpu0 = cpu_seconds(server.pid());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    let busy = (cpu_seconds(server.pid()) - cpu0) / t0.elapsed().as_secs_f64();
    eprintln!(
        "exhausted: {} connects held, {failed} failed, server CPU {:.1}%",
        held.len(),
        busy * 100.0
    );
    assert!(
        busy < 0.30,
        "server spins while out of descriptors: {busy:.2}"
    );
    assert!(alive(&mut server), "server exited when out of descriptors");
    // Users already in keep chatting meanwhile.
    room_works(&mut alice, "alice", &mut bob, "bob", "exhausted");

    // Some of the held connections were accepted and greeted, the rest wait
    // in the backlog without a greeting.
    let mut greeted = 0;
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut b = [0u8; 1];
        if let Ok(1) = s.read(&mut b) {
            greeted += 1;
        }
    }
    assert!(greeted > 0 && greeted < held.len(), "greeted {greeted}");

    // Free the descriptors: newcomers get in and chat.
    drop(held);
    let mut carol = server.login("carol");
    alice.read_until("[SERVER]: carol joined the chat!");
    room_works(&mut alice, "alice", &mut carol, "carol", "recovered");
    wait_log(&server, "accepting again", Duration::from_secs(5));
    assert!(alive(&mut server));
}

/// A client that sends its name right away (before reading the greeting)
/// still reads the "full" notice: the refusal must not turn into a reset
/// that destroys the notice.
#[test]
fn max_clients_notice_survives_early_input() {
    let server = Server::start(&["--max-clients", "1"]);
    let _alice = server.login("alice");
    for i in 0..30 {
        let mut c = server.connect();
        let _ = c
            .stream
            .write_all(format!("eager{i}\nhello there\n").as_bytes());
        let lines = c.expect_eof();
        assert_eq!(lines, vec![FULL], "try {i}");
    }
}
