//! PROTOCOL.md section 5 under load: slow readers, floods, memory at rest.
mod common;
mod support;

use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Server, WAIT};
use support::{one_at_a_time, ping_until_dropped, room_works, wait_log, Drain, Flood};

const TOO_FAST: &str = "[SERVER]: You are sending too fast";

/// One user never reads while another sends big lines as fast as it can:
/// the stalled user is dropped with the reason, a third user's round trips
/// stay fast the whole time, and the server's memory stays bounded by
/// --max-pending, not by the traffic.
#[test]
fn slow_reader_is_dropped_others_unaffected() {
    let _heavy = one_at_a_time();
    const MAX_PENDING: u64 = 64 * 1024;
    let server = Server::start(&["--rate", "0", "--max-pending", "65536"]);
    let baseline = server.rss_kib();
    let slow = server.login("slow");
    let mut pinger = server.login("pinger");
    let sender = server.login("sender");
    pinger.read_until("[SERVER]: sender joined the chat!");

    // The sender's own echo must be read, or it would be the slow one.
    let echo = Drain::start(&sender.stream, 0);
    let flood = Flood::start(&sender.stream);

    let seen = ping_until_dropped(&server, &mut pinger, "slow");
    let sent = flood.stop();
    let (worst, peak_rss) = (seen.worst, seen.peak_rss);
    eprintln!(
        "slow reader: {} MB sent, dropped after {:?}, {} pings, worst round trip {worst:?}, \
         RSS baseline {baseline} KiB, peak {peak_rss} KiB",
        sent >> 20,
        seen.dropped_at,
        seen.pings
    );
    assert!(worst < Duration::from_secs(2), "round trip took {worst:?}");
    let bound = baseline + MAX_PENDING / 1024 + 30 * 1024;
    assert!(peak_rss < bound, "RSS {peak_rss} KiB over {bound} KiB");
    wait_log(&server, "dropped: output passed --max-pending", WAIT);
    assert!(server
        .logs()
        .lines()
        .any(|l| l.contains("(slow) from 127.0.0.1:")
            && l.ends_with("dropped: output passed --max-pending")));
    // The server closed the dropped user's socket: what was queued, then EOF.
    let mut slow = slow;
    slow.drain_for(Duration::from_secs(5));
    slow.stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut byte = [0u8; 1];
    match slow.stream.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the slow reader's socket is still open: {other:?}"),
    }
    drop(echo);
    pinger.send("/who");
    pinger.read_until_match(|l| l.starts_with("[SERVER]: 2 users online: pinger, sender"));
}

#[test]
fn flood_refused_lines_get_a_notice_each() {
    let _heavy = one_at_a_time();
    let server = Server::start(&[]);
    let mut alice = server.login("alice");
    let mut bob = server.login("bob");
    alice.expect("[SERVER]: bob joined the chat!");

    const SENT: usize = 200;
    let burst: String = (0..SENT).map(|i| format!("flood {i}\n")).collect();
    alice.send_raw(burst.as_bytes());
    let got = alice.sync("after-flood");
    let mut delivered = Vec::new();
    let mut refused = 0;
    for l in &got {
        if let Some(i) = l.strip_prefix("alice: flood ") {
            delivered.push(i.parse::<usize>().unwrap());
        } else if l.starts_with(TOO_FAST) {
            assert!(l.contains("not delivered"), "{l}");
            refused += 1;
        } else {
            panic!("unexpected line {l:?}");
        }
    }
    eprintln!("flood: {} delivered, {refused} refused", delivered.len());
    assert_eq!(
        delivered.len() + refused,
        SENT,
        "a line disappeared silently"
    );
    // Burst 40; the bucket refills at 20/s while the flood is read, so a
    // few more may pass, never most of them.
    assert!(
        delivered.len() >= 40 && delivered.len() < 100,
        "{delivered:?}"
    );
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert_eq!(&delivered[..40], &(0..40).collect::<Vec<_>>()[..]);

    // Bob got exactly the delivered lines, in order; refused lines never.
    let to_bob: Vec<usize> = bob
        .sync("bob")
        .iter()
        .map(|l| {
            l.strip_prefix("alice: flood ")
                .unwrap_or_else(|| panic!("bob got {l:?}"))
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(to_bob, delivered);

    // /ping is not limited, even with an empty bucket; /who and /history
    // are (version 2: their answers can be long), each refusal told.
    let mut cmds = String::new();
    for i in 0..60 {
        cmds.push_str(&format!("/ping t{i}\n/who\n/history 1\n"));
    }
    alice.send_raw(cmds.as_bytes());
    let (mut who, mut history, mut told) = (0, 0, 0);
    for i in 0..60 {
        for l in alice.read_until(&format!("/pong t{i}")) {
            assert!(
                l.starts_with(TOO_FAST) || l.starts_with("[SERVER]: "),
                "{l}"
            );
        }
        for _ in 0..2 {
            let l = alice.line();
            if l == "[SERVER]: 2 users online: alice, bob" {
                who += 1;
            } else if l.starts_with("[SERVER]: History (1 line):") {
                history += 1;
                alice.line();
                alice.expect("[SERVER]: End of history.");
            } else {
                assert!(l.starts_with(TOO_FAST), "{l}");
                told += 1;
            }
        }
    }
    assert_eq!(who + history + told, 120, "a /who or /history vanished");
    assert!(
        told > 60,
        "/who and /history were not limited: {told} refused"
    );
    // /me and /msg count: a second flood of them is refused in part, with a
    // notice each.
    let mut cmds = String::new();
    for i in 0..100 {
        cmds.push_str(&format!("/me m{i}\n/msg bob p{i}\n"));
    }
    alice.send_raw(cmds.as_bytes());
    let got = alice.sync("after-me");
    let me = got.iter().filter(|l| l.starts_with("* alice m")).count();
    let pm = got
        .iter()
        .filter(|l| l.starts_with("[PM to bob]: p"))
        .count();
    let no = got.iter().filter(|l| l.starts_with(TOO_FAST)).count();
    assert_eq!(me + pm + no, 200, "{got:?}");
    assert!(no > 0, "/me and /msg were not limited");
    let bob_got = bob.sync("bob2");
    assert_eq!(bob_got.len(), me + pm, "bob got refused lines: {bob_got:?}");
}

#[test]
fn rate_zero_turns_the_limit_off() {
    let _heavy = one_at_a_time();
    let server = Server::start(&["--rate", "0"]);
    let mut alice = server.login("alice");
    let mut bob = server.login("bob");
    alice.expect("[SERVER]: bob joined the chat!");
    let burst: String = (0..500).map(|i| format!("flood {i}\n")).collect();
    alice.send_raw(burst.as_bytes());
    let want: Vec<String> = (0..500).map(|i| format!("alice: flood {i}")).collect();
    assert_eq!(alice.sync("a"), want);
    assert_eq!(bob.sync("b"), want);
}

/// After a burst, an idle connection's buffers shrink back: the server's
/// RSS returns near its baseline once the sweep has run.
#[test]
fn buffers_shrink_after_a_burst() {
    let _heavy = one_at_a_time();
    // A short login timeout makes the sweep run every 100 ms; the users stay
    // (the idle timeout is long). Large --max-pending lets buffers grow.
    let server = Server::start(&[
        "--rate",
        "0",
        "--login-timeout",
        "0.4",
        "--max-pending",
        "67108864",
    ]);
    let mut readers: Vec<_> = (0..4).map(|i| server.login(&format!("r{i}"))).collect();
    let mut sender = server.login("sender");
    for r in &mut readers {
        r.read_until("[SERVER]: sender joined the chat!");
    }
    let baseline = server.rss_kib();

    // 8 MB to each of 5 users while 4 of them do not read: most of it waits
    // in the server's write buffers.
    let echo = Drain::start(&sender.stream, 64);
    let line = format!("{}\n", "y".repeat(4000));
    let n = 2000;
    for _ in 0..n {
        sender.send_raw(line.as_bytes());
    }
    sender.send("/ping end");
    let t = Instant::now();
    let mut peak = 0;
    while echo.bytes.load(Ordering::Relaxed) < (n * line.len() + 10) as u64 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "sender's echo stalled"
        );
        peak = peak.max(server.rss_kib());
        std::thread::sleep(Duration::from_millis(10));
    }
    peak = peak.max(server.rss_kib());
    // Now everyone reads everything.
    for r in &mut readers {
        let got = r.sync("drained");
        assert_eq!(got.len(), n);
    }
    sender.shutdown_write();
    let tail = echo.finish();
    assert!(String::from_utf8_lossy(&tail).contains("/pong end"));
    drop(sender);
    let t = Instant::now();
    let mut rss = server.rss_kib();
    while rss > baseline + 4 * 1024 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        rss = server.rss_kib();
    }
    eprintln!("memory at rest: baseline {baseline} KiB, peak {peak} KiB, after {rss} KiB");
    assert!(
        peak > baseline + 8 * 1024,
        "the burst did not load the server"
    );
    assert!(
        rss <= baseline + 4 * 1024,
        "buffers did not shrink: {rss} KiB vs baseline {baseline} KiB"
    );
    let (a, b) = readers.split_at_mut(1);
    room_works(&mut a[0], "r0", &mut b[0], "r1", "rest");
}
