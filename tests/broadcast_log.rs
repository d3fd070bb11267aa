//! The server stores each broadcast once and lets every receiver write its
//! range of it (see `src/server.rs`). These tests check, through sockets,
//! that this keeps every user's stream exact: private lines interleaved with
//! broadcasts in order, a backlog the kernel would not take written later
//! without loss or repetition, and `--max-pending` still dropping a reader
//! that does not read.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;

#[test]
fn private_lines_and_broadcasts_keep_their_order() {
    let server = Server::start(&["--rate", "0"]);
    let mut alice = server.login("alice");
    let mut bob = server.login("bob");
    alice.expect("[SERVER]: bob joined the chat!");
    // One write, so the server handles all of it in one iteration: bob's
    // stream mixes broadcasts and replies to him alone.
    bob.send_raw(b"one\n/ping a\ntwo\n/msg alice psst\nthree\n/ping b\n");
    bob.expect("bob: one");
    bob.expect("/pong a");
    bob.expect("bob: two");
    bob.expect("[PM to alice]: psst");
    bob.expect("bob: three");
    bob.expect("/pong b");
    alice.expect("bob: one");
    alice.expect("bob: two");
    alice.expect("[PM from bob]: psst");
    alice.expect("bob: three");
}

/// Reads `stream` on a thread until `last` arrives; returns how many lines came.
fn drain_until(stream: TcpStream, last: String) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut r = BufReader::new(stream);
        let mut n = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return n;
            }
            n += 1;
            if line.trim_end() == last {
                return n;
            }
        }
    })
}

fn burst(count: usize) -> Vec<u8> {
    let mut all = Vec::new();
    for i in 0..count {
        all.extend_from_slice(format!("m{i:06} {}\n", "x".repeat(80)).as_bytes());
    }
    all
}

#[test]
fn a_backlog_the_kernel_did_not_take_arrives_whole_and_in_order() {
    const N: usize = 60_000; // about 5.6 MB for alice, who reads nothing yet
    let server = Server::start(&["--rate", "0", "--max-pending", "67108864"]);
    let mut alice = server.login("alice");
    set_rcvbuf(&alice.stream, 65536);
    let mut bob = server.login("bob");
    alice.expect("[SERVER]: bob joined the chat!");
    let last = format!("bob: m{:06} {}", N - 1, "x".repeat(80));
    let echo = drain_until(bob.stream.try_clone().unwrap(), last);
    bob.stream.write_all(&burst(N)).unwrap();
    assert_eq!(echo.join().unwrap(), N, "bob got his own lines back");
    // The server has handled every line; much of alice's share waited in
    // her buffer while the kernel's was full. Now she reads it all.
    for i in 0..N {
        alice.expect(&format!("bob: m{i:06} {}", "x".repeat(80)));
    }
    alice.sync("end");
}

#[test]
fn a_reader_that_never_reads_is_still_dropped_at_max_pending() {
    let server = Server::start(&["--rate", "0", "--max-pending", "65536"]);
    let alice = server.login("alice");
    // A small receive buffer, so the kernel holds little of what alice does
    // not read and the server's own buffer has to take the rest.
    set_rcvbuf(&alice.stream, 4096);
    let mut bob = server.login("bob");
    // bob sends in chunks and reads his own lines back after each, so only
    // alice falls behind.
    let lines: Vec<String> = (0..200_000)
        .map(|i| format!("m{i:06} {}", "x".repeat(80)))
        .collect();
    let mut dropped = false;
    'outer: for chunk in lines.chunks(300) {
        let mut bytes = Vec::new();
        for l in chunk {
            bytes.extend_from_slice(l.as_bytes());
            bytes.push(b'\n');
        }
        bob.send_raw(&bytes);
        let last = format!("bob: {}", chunk.last().unwrap());
        loop {
            let got = bob.line();
            if got == "[SERVER]: alice has disconnected (too slow to read)." {
                dropped = true;
            }
            if got == last {
                if dropped {
                    break 'outer;
                }
                break;
            }
        }
    }
    assert!(dropped, "alice was never dropped: {}", server.logs());
    drop(alice);
    bob.send("after");
    bob.expect("bob: after");
}

fn set_rcvbuf(stream: &TcpStream, bytes: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a socket we own, with a correctly sized int.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}
