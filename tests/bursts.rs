//! PROTOCOL.md section 5 (version 2): a client that reads promptly is never
//! dropped, however much the others send at once; a stalled reader still is.
mod common;
mod support;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::{one_at_a_time, paste_line, read_pastes, room};

/// `readers` users who read promptly and `senders` users who read too and
/// each paste `lines` lines of `len` bytes in one write, all in the same
/// instant. Every user gets every line, all in one order, each sender's in
/// the order sent, and nobody is dropped.
fn burst(args: &[&str], readers: usize, senders: usize, lines: usize, len: usize) {
    let mut names: Vec<String> = (0..senders).map(|s| format!("s{s}")).collect();
    names.extend((0..readers).map(|r| format!("r{r}")));
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (server, clients) = room(args, &name_refs);
    let total = senders * lines;
    let mut writers = Vec::new();
    let mut handles = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        if i < senders {
            writers.push(c.stream.try_clone().unwrap());
        }
        handles.push(read_pastes(Box::new(c), total));
    }
    let gate = Arc::new(Barrier::new(senders));
    let pasters: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(s, mut w)| {
            let gate = gate.clone();
            let paste: String = (0..lines).map(|i| paste_line(s, i, len) + "\n").collect();
            std::thread::spawn(move || {
                gate.wait();
                w.write_all(paste.as_bytes()).unwrap();
            })
        })
        .collect();
    for p in pasters {
        p.join().unwrap();
    }
    let seen: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (who, lines_seen) in seen.iter().enumerate() {
        assert_eq!(lines_seen, &seen[0], "{} saw another order", names[who]);
    }
    for s in 0..senders {
        let mine: Vec<&String> = seen[0]
            .iter()
            .filter(|l| l.starts_with(&format!("s{s}: ")))
            .collect();
        let want: Vec<String> = (0..lines)
            .map(|i| format!("s{s}: {}", paste_line(s, i, len)))
            .collect();
        assert_eq!(mine.len(), lines);
        assert!(
            mine.iter().zip(&want).all(|(a, b)| *a == b),
            "s{s} out of order"
        );
    }
    assert!(
        !server.logs().contains("--max-pending"),
        "someone was dropped:\n{}",
        server.logs()
    );
}

/// 20 readers and 3 users who each paste 40 lines of 4,000 bytes at once
/// (within the default rate's burst of 40): all 23 stay and get all 120.
#[test]
fn three_pasters_do_not_empty_the_room() {
    let _heavy = one_at_a_time();
    burst(&[], 20, 3, 40, 4000);
}

/// 10 users each paste 20 lines of 4,000 bytes at once: all 10 stay.
#[test]
fn ten_pasters_all_stay() {
    let _heavy = one_at_a_time();
    burst(&[], 0, 10, 20, 4000);
}

/// With --rate 0 and --max-pending 64 KiB, a user who floods long lines as
/// fast as TCP lets it, and reads everything, stays; so does a user who only
/// reads and sends a probe every 200 ms; both get every line, in order.
#[test]
fn a_flooder_who_reads_and_a_reader_who_probes_both_stay() {
    let _heavy = one_at_a_time();
    let (server, mut clients) = room(
        &["--rate", "0", "--max-pending", "65536"],
        &["flood", "probe"],
    );
    let mut probe = clients.pop().unwrap();
    let flood = clients.pop().unwrap();
    // 80 MB each way, far past any socket buffer: seconds of flooding.
    const LINES: usize = 20_000;
    let mut w = flood.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..LINES {
            let line = paste_line(0, i % 1000, 4000) + "\n";
            w.write_all(line.as_bytes()).unwrap();
        }
    });
    let echo = read_pastes(Box::new(flood), LINES);
    let mut got = 0;
    let mut probes = 0;
    let mut last_probe = Instant::now();
    let t0 = Instant::now();
    while got < LINES {
        assert!(t0.elapsed() < Duration::from_secs(120), "stuck at {got}");
        let line = probe.line();
        assert!(!line.contains("too slow"), "dropped: {line}");
        if line.starts_with("flood: s0 ") {
            let want = format!("flood: {}", paste_line(0, got % 1000, 4000));
            assert!(line == want, "line {got} out of order");
            got += 1;
        } else {
            assert!(line.starts_with("/pong"), "unexpected {line:?}");
        }
        if last_probe.elapsed() >= Duration::from_millis(200) {
            probe.send(&format!("/ping probe{probes}"));
            probes += 1;
            last_probe = Instant::now();
        }
    }
    writer.join().unwrap();
    assert_eq!(echo.join().unwrap().len(), LINES);
    probe.sync("end");
    eprintln!(
        "flood: {LINES} lines of 4000 bytes in {:?}, {probes} probes",
        t0.elapsed()
    );
    assert!(
        !server.logs().contains("--max-pending"),
        "{}",
        server.logs()
    );
}

/// A reader that stops reading is still dropped while the others chat,
/// and their `/ping` round trips stay short meanwhile.
#[test]
fn a_stalled_reader_is_dropped_without_delaying_the_others() {
    let _heavy = one_at_a_time();
    let (server, mut clients) = room(
        &["--rate", "0", "--max-pending", "65536"],
        &["stalled", "talker", "pinger"],
    );
    let mut pinger = clients.pop().unwrap();
    let talker = clients.pop().unwrap();
    let stalled = clients.pop().unwrap(); // never reads again
    let stop = Arc::new(AtomicBool::new(false));
    let echo = support::Drain::start(&talker.stream, 0);
    let mut w = talker.stream.try_clone().unwrap();
    let stop2 = stop.clone();
    let talk = std::thread::spawn(move || {
        let batch = (paste_line(0, 0, 4000) + "\n").repeat(8);
        while !stop2.load(Ordering::Relaxed) {
            if w.write_all(batch.as_bytes()).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let baseline = server.rss_kib();
    let mut rtts = Vec::new();
    let mut peak_rss = 0;
    let t0 = Instant::now();
    let dropped = "[SERVER]: stalled has disconnected (too slow to read).";
    let mut seen = false;
    let mut after = 0;
    while after < 20 {
        assert!(t0.elapsed() < Duration::from_secs(60), "never dropped");
        let token = format!("t{}", rtts.len());
        let t = Instant::now();
        pinger.send(&format!("/ping {token}"));
        let before = pinger.read_until(&format!("/pong {token}"));
        rtts.push(t.elapsed());
        peak_rss = peak_rss.max(server.rss_kib());
        seen |= before.iter().any(|l| l == dropped);
        if seen {
            after += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    talk.join().unwrap();
    drop(stalled);
    drop(echo);
    rtts.sort();
    let median = rtts[rtts.len() / 2];
    let worst = *rtts.last().unwrap();
    eprintln!(
        "stalled reader dropped after {:?}; {} pings, round trip median {median:?}, worst {worst:?}; \
         RSS {baseline} KiB before, peak {peak_rss} KiB",
        t0.elapsed(),
        rtts.len()
    );
    // The bound the issue states is 50 ms; the median is held to it, the
    // worst case gets slack for a CI machine that deschedules the test.
    assert!(
        median < Duration::from_millis(50),
        "median round trip {median:?}"
    );
    assert!(worst < Duration::from_secs(1), "worst round trip {worst:?}");
    // Memory: --max-pending for the stalled reader plus a turn's reading,
    // on top of a few MiB of allocator slack.
    assert!(peak_rss < baseline + 8 * 1024, "RSS {peak_rss} KiB");
}
